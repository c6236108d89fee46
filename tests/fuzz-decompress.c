/* uzram: the decompressors against hostile input.
 *
 * Every read decompresses whatever the slot's object holds; if that was
 * corrupted, the "safe" decompressors must report it and never write past
 * the 4 KiB page.  The output page here is malloc'd at exactly 4096 bytes,
 * so ASan (scripts/test.sh's sanitizer stage) catches any overrun; without
 * ASan, canary bytes behind the page do.
 *
 * Two ways to run it:
 * - as a test (the default build): a fixed-seed driver mutates real
 *   compressed pages (bit flips, truncation, splices, garbage) for every
 *   compressor built and decompresses each;
 * - as a libFuzzer target, built only on request, with clang:
 *     make -C tests fuzz-decompress-lf && tests/fuzz-decompress-lf -max_len=8192
 *   (the first byte picks the compressor, the rest is the stream).  The
 *   distribution's compression libraries carry no coverage instrumentation,
 *   so libFuzzer mutates blind there: a random-input overrun check under
 *   ASan, about 180 000 streams a second.
 */
#include <config.h>

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "comp.h"
#include "testlib.h"

#define PAGE 4096
#define CANARY 64

static size_t nr_comps;
static const struct zcomp *comps[8];

static void
init (void)
{
  const char *const *n;

  if (nr_comps)
    return;
  for (n = zcomp_names (); *n && nr_comps < 8; n++)
    comps[nr_comps++] = zcomp_find (*n);
}

/* Decompresses and checks the canaries; aborts on an overrun or on a
 * result that is neither success nor -EIO.
 */
static int
try_decompress (const struct zcomp *comp, const void *src, size_t len)
{
  unsigned char *out = malloc (PAGE + CANARY);
  size_t i;
  int r;

  if (out == NULL)
    abort ();
  memset (out + PAGE, 0xa5, CANARY);
  r = zcomp_decompress (comp, src, len, out);
  for (i = PAGE; i < PAGE + CANARY; i++)
    if (out[i] != 0xa5) {
      fprintf (stderr, "FAIL: %s wrote past the page (len %zu)\n",
               zcomp_name (comp), len);
      abort ();
    }
  if (r != 0 && r != -EIO) {
    fprintf (stderr, "FAIL: %s returned %d\n", zcomp_name (comp), r);
    abort ();
  }
  free (out);
  return r;
}

#ifdef USE_LIBFUZZER

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  init ();
  if (size < 1)
    return 0;
  try_decompress (comps[data[0] % nr_comps], data + 1, size - 1);
  return 0;
}

#else

static uint64_t rng = 0x853c49e6748fea9b;

static uint64_t
rnd (void)
{
  return xorshift64 (&rng);
}

/* Pages of three kinds: text, structured binary, half zero. */
static void
make_page (unsigned char *p, unsigned kind)
{
  size_t i;

  for (i = 0; i < PAGE; i++) {
    switch (kind % 3) {
    case 0: p[i] = "the quick brown fox jumps over\n"[(i * 7 + kind) % 31]; break;
    case 1: p[i] = i % 8 < 4 ? (i / 8) & 0xff : rnd () % 4; break;
    default: p[i] = i < PAGE / 2 ? 0 : rnd (); break;
    }
  }
}

int
main (void)
{
  unsigned char page[PAGE], buf[2 * PAGE];
  size_t c, k, len;
  unsigned i, eio;

  init ();
  for (c = 0; c < nr_comps; c++) {
    eio = 0;
    for (k = 0; k < 30; k++) {
      const void *z;

      make_page (page, k);
      if (zcomp_compress (comps[c], ZCOMP_LEVEL_DEFAULT, page, &z, &len) != 0)
        abort ();
      memcpy (buf, z, len);
      /* The intact stream decodes to the page. */
      {
        unsigned char *out = malloc (PAGE);
        if (out == NULL || zcomp_decompress (comps[c], buf, len, out) != 0 ||
            memcmp (out, page, PAGE) != 0) {
          fprintf (stderr, "FAIL: %s: round trip\n", zcomp_name (comps[c]));
          return 1;
        }
        free (out);
      }
      for (i = 0; i < 1000; i++) {
        unsigned char m[2 * PAGE];
        size_t mlen = len, j, n;

        memcpy (m, buf, len);
        switch (rnd () % 5) {
        case 0:                         /* a few bit flips */
          for (j = 1 + rnd () % 4; j > 0; j--)
            m[rnd () % mlen] ^= 1 << (rnd () % 8);
          break;
        case 1:                         /* truncated */
          mlen = rnd () % len;
          break;
        case 2:                         /* a run of garbage */
          n = 1 + rnd () % 64;
          for (j = rnd () % mlen; n > 0 && j < mlen; j++, n--)
            m[j] = rnd ();
          break;
        case 3:                         /* extended with garbage */
          n = 1 + rnd () % 256;
          for (j = 0; j < n && mlen < sizeof m; j++)
            m[mlen++] = rnd ();
          break;
        default:                        /* pure garbage */
          mlen = 1 + rnd () % (2 * PAGE - 1);
          for (j = 0; j < mlen; j++)
            m[j] = rnd ();
          break;
        }
        eio += try_decompress (comps[c], m, mlen) == -EIO;
      }
    }
    printf ("%s: 30000 mutated streams, %u rejected, no overrun\n",
            zcomp_name (comps[c]), eio);
    if (eio == 0)
      return 1;
  }
  return 0;
}

#endif
