/* uzram: what the C tests share (header only, nothing to link): the CHECK
 * macros, the PRNG, and the byte patterns objects and blocks are filled
 * with and checked against.
 *
 * Define TESTLIB_SEED before including it for a file-wide rnd() starting
 * there; threads keep their own state and call xorshift64.
 */
#ifndef UZRAM_TESTLIB_H
#define UZRAM_TESTLIB_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define FAIL(...) do {                                          \
    fprintf (stderr, "FAIL: %s:%d: ", __FILE__, __LINE__);      \
    fprintf (stderr, __VA_ARGS__);                              \
    fputc ('\n', stderr);                                       \
    exit (1);                                                   \
  } while (0)

#define CHECK(cond) do {                                                \
    if (!(cond)) {                                                      \
      fprintf (stderr, "FAIL: %s:%d: %s\n", __FILE__, __LINE__, #cond); \
      exit (1);                                                         \
    }                                                                   \
  } while (0)

#define CHECK_EQ(a, b) do {                                             \
    long long a_ = (long long) (a), b_ = (long long) (b);               \
    if (a_ != b_) {                                                     \
      fprintf (stderr, "FAIL: %s:%d: %s == %lld, expected %s == %lld\n", \
               __FILE__, __LINE__, #a, a_, #b, b_);                     \
      exit (1);                                                         \
    }                                                                   \
  } while (0)

/* Marsaglia's xorshift64 (13, 7, 17): one step of *state, never 0. */
static inline uint64_t
xorshift64 (uint64_t *state)
{
  uint64_t x = *state;

  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  return *state = x;
}

#ifdef TESTLIB_SEED
static uint64_t rng_state = TESTLIB_SEED;

static inline uint64_t
rnd (void)
{
  return xorshift64 (&rng_state);
}

static inline void
fill_random (unsigned char *p, size_t n)
{
  size_t i;

  for (i = 0; i < n; i++)
    p[i] = rnd ();
}
#endif

/* Byte i of the pattern that seed names: different for every seed and
 * offset, so a byte in the wrong place or from another object shows.
 */
static inline unsigned char
pattern_byte (uint64_t seed, size_t i)
{
  uint64_t x = seed * 0x9e3779b97f4a7c15ULL + i * 0xbf58476d1ce4e5b9ULL;

  x ^= x >> 31;
  return x & 0xff;
}

static inline void
fill_pattern (unsigned char *p, size_t n, uint64_t seed)
{
  size_t i;

  for (i = 0; i < n; i++)
    p[i] = pattern_byte (seed, i);
}

/* The offset of the first byte that is not seed's pattern, or n. */
static inline size_t
check_pattern (const unsigned char *p, size_t n, uint64_t seed)
{
  size_t i;

  for (i = 0; i < n && p[i] == pattern_byte (seed, i); i++)
    ;
  return i;
}

#endif /* UZRAM_TESTLIB_H */
