/* uzram: the lzo-rle codec (plugin/lzorle.c) on its own.
 *
 * - Round trips of every kind of block, at sizes 0 to 49151, in both
 *   stream versions, compressed into a buffer of exactly LZORLE_BOUND
 *   bytes on the heap (the compressor copies short literal runs 16 bytes
 *   at a time: under ASan a write past the bound would fail).
 * - Version 0 is LZO1X: liblzo2's safe decompressor reads what ours
 *   writes, and ours reads what liblzo2's LZO1X-1 writes.  That checks
 *   every instruction but the zero run against an independent decoder.
 * - The zero run, as Documentation/staging/lzo.rst codes it, from a
 *   stream built by hand; and a version 1 stream of a page with zero runs
 *   uses it (it is shorter than the version 0 stream of the same page).
 * - Streams that must be refused: truncated, a copy from before the
 *   start, output past the buffer, bytes after the end, no end.
 */
#include <config.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lzo/lzo1x.h>

#include "lzorle.h"

#define MAX LZORLE_MAX_INPUT

static unsigned failures;

#define CHECK(cond, ...) do {                                   \
    if (!(cond)) {                                              \
      fprintf (stderr, "FAIL: %s:%d: ", __FILE__, __LINE__);    \
      fprintf (stderr, __VA_ARGS__);                            \
      fputc ('\n', stderr);                                     \
      failures++;                                               \
    }                                                           \
  } while (0)

static uint64_t rng = 0x9e3779b97f4a7c15;

static uint64_t
rnd (void)
{
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return rng;
}

/* Blocks of several kinds: zero runs of every length among text, random
 * bytes, short repeats, and long repeats far back (M4 copies).
 */
static void
make_block (unsigned char *p, size_t n, unsigned kind)
{
  size_t i;

  switch (kind % 6) {
  case 0:
    memset (p, 0, n);
    break;
  case 1:
    for (i = 0; i < n; i++)
      p[i] = rnd ();
    break;
  case 2:
    for (i = 0; i < n; i++)
      p[i] = "lorem ipsum dolor sit amet, consectetur\n"[(i * 3 + i / 97) % 40];
    break;
  case 3:                               /* zero runs among random bytes */
    for (i = 0; i < n; ) {
      size_t run = rnd () % 3000, lit = rnd () % 40, j;

      for (j = 0; j < run && i < n; j++)
        p[i++] = 0;
      for (j = 0; j < lit && i < n; j++)
        p[i++] = rnd ();
    }
    break;
  case 4:                               /* structs: small words, pointers */
    for (i = 0; i < n; i++)
      p[i] = i % 16 < 8 ? (i / 16) & 0xff : (rnd () % 5 == 0 ? rnd () : 0);
    break;
  default:                              /* a random head repeated far on */
    for (i = 0; i < n; i++)
      p[i] = i < 300 ? rnd () : (unsigned char) (p[i % 20000 < 300 ? i % 20000 : i - 1] + (i % 7 == 0));
    break;
  }
}

static void
roundtrip (const unsigned char *in, size_t n, int version, void *work)
{
  static unsigned char z[LZORLE_BOUND (MAX)], out[MAX + 64];
  unsigned char *exact = malloc (LZORLE_BOUND (n));
  size_t zlen, olen = n;
  lzo_uint llen = n;

  if (exact == NULL)
    abort ();
  zlen = lzorle_compress (in, n, exact, work, version);
  CHECK (zlen > 0 && zlen <= LZORLE_BOUND (n),
         "compress v%d n=%zu gave %zu", version, n, zlen);
  if (zlen > 0 && zlen <= LZORLE_BOUND (n))
    memcpy (z, exact, zlen);
  free (exact);
  if (zlen == 0 || zlen > LZORLE_BOUND (n))
    return;
  if (version) {
    CHECK (z[0] == 17 && z[1] == 1, "v1 stream starts %u %u", z[0], z[1]);
  }
  CHECK (lzorle_decompress (z, zlen, out, &olen) == 0 && olen == n &&
         memcmp (out, in, n) == 0, "round trip v%d n=%zu", version, n);
  /* Too small an output buffer is an error, not an overrun. */
  if (n > 0) {
    olen = n - 1;
    CHECK (lzorle_decompress (z, zlen, out, &olen) == -1,
           "v%d n=%zu decoded into n-1 bytes", version, n);
  }
  if (version == 0) {
    CHECK (lzo1x_decompress_safe (z, zlen, out, &llen, NULL) == LZO_E_OK &&
           llen == n && memcmp (out, in, n) == 0,
           "liblzo2 cannot read our v0 stream n=%zu", n);
  }
}

/* liblzo2 writes, we read. */
static void
from_liblzo2 (const unsigned char *in, size_t n)
{
  static unsigned char z[LZORLE_BOUND (MAX)], out[MAX];
  static unsigned char wrk[LZO1X_1_MEM_COMPRESS];
  lzo_uint zlen = sizeof z;
  size_t olen = n;

  if (lzo1x_1_compress (in, n, z, &zlen, wrk) != LZO_E_OK)
    abort ();
  CHECK (lzorle_decompress (z, zlen, out, &olen) == 0 && olen == n &&
         memcmp (out, in, n) == 0, "cannot read liblzo2's stream n=%zu", n);
}

static int
decode (const unsigned char *z, size_t zlen, unsigned char *out, size_t cap)
{
  size_t olen = cap;

  return lzorle_decompress (z, zlen, out, &olen) == 0 ? (int) olen : -1;
}

static void
hand_built (void)
{
  /* "ABCD", 100 zeros (run 96: L = 0, X = 12), two literals after the run
   * (its SS), the end.
   */
  static const unsigned char s[] = {
    17, 1, 17 + 4, 'A', 'B', 'C', 'D',
    0x18, 0xfc | 2, 0xff, 12, 'x', 'y',
    0x11, 0, 0
  };
  unsigned char out[256], want[106];
  unsigned char bad[sizeof s + 1];
  size_t i;

  memcpy (want, "ABCD", 4);
  memset (want + 4, 0, 100);
  memcpy (want + 104, "xy", 2);
  CHECK (decode (s, sizeof s, out, sizeof out) == 106 &&
         memcmp (out, want, 106) == 0, "hand-built zero run");
  /* The same bytes without the version: an M4 copy from far before the
   * start, refused.
   */
  CHECK (decode (s + 2, sizeof s - 2, out, sizeof out) == -1,
         "zero run read in a version 0 stream");
  /* Every truncation, and a byte after the end. */
  for (i = 0; i < sizeof s; i++)
    CHECK (decode (s, i, out, sizeof out) == -1, "truncated at %zu", i);
  memcpy (bad, s, sizeof s);
  bad[sizeof s] = 0;
  CHECK (decode (bad, sizeof bad, out, sizeof out) == -1, "trailing byte");
  /* The run past the output. */
  CHECK (decode (s, sizeof s, out, 105) == -1, "run past the output");
  /* The empty stream, and an end of the wrong length. */
  {
    static const unsigned char empty[] = { 0x11, 0, 0 };
    static const unsigned char long_end[] = { 17 + 1, 'a', 0x12, 0, 0 };
    static const unsigned char back[] = { 17 + 2, 'a', 'b', 0x4c, 0x10, 0x11, 0, 0 };

    CHECK (decode (empty, sizeof empty, out, sizeof out) == 0, "empty stream");
    CHECK (decode (long_end, sizeof long_end, out, sizeof out) == -1,
           "end of length 4");
    CHECK (decode (back, sizeof back, out, sizeof out) == -1,
           "copy from before the start");
  }
}

int
main (void)
{
  static unsigned char in[MAX];
  static const size_t sizes[] = {
    0, 1, 2, 3, 4, 5, 17, 20, 21, 22, 25, 64, 238, 239, 300, 1000, 4095,
    4096, 4097, 8192, 16384, 16385, 30000, MAX
  };
  void *work = malloc (LZORLE_WORK_SIZE);
  size_t s, k, z0, z1;
  unsigned char z[LZORLE_BOUND (4096)];

  if (work == NULL || lzo_init () != LZO_E_OK)
    return 1;
  for (s = 0; s < sizeof sizes / sizeof sizes[0]; s++)
    for (k = 0; k < 12; k++) {
      make_block (in, sizes[s], k);
      roundtrip (in, sizes[s], 1, work);
      roundtrip (in, sizes[s], 0, work);
      from_liblzo2 (in, sizes[s]);
    }
  for (k = 0; k < 2000; k++) {                /* random sizes and kinds */
    size_t n = rnd () % (MAX + 1);

    make_block (in, n, rnd ());
    roundtrip (in, n, k & 1, work);
  }
  CHECK (lzorle_compress (in, MAX + 1, z, work, 1) == 0, "too long taken");

  /* A page with long zero runs: version 1 codes them as runs. */
  make_block (in, 4096, 3);
  z0 = lzorle_compress (in, 4096, z, work, 0);
  z1 = lzorle_compress (in, 4096, z, work, 1);
  CHECK (z1 < z0, "zero runs: v1 %zu bytes, v0 %zu", z1, z0);
  printf ("zero-run page: version 0 %zu bytes, version 1 %zu\n", z0, z1);

  hand_built ();
  free (work);
  if (failures) {
    fprintf (stderr, "%u failures\n", failures);
    return 1;
  }
  printf ("lzo-rle: all round trips and refusals as expected\n");
  return 0;
}
