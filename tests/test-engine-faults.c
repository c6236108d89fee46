/* The engine under faults, through its own API (the code NBD and `disk`
 * both run):
 * - the page source fails in the middle of a multi-block write: the write
 *   fails with ENOMEM, failed_writes counts it, each block holds its old or
 *   its new contents, every earlier block is unchanged, and the device
 *   serves again once pages come back;
 * - a stored object is corrupted (test hook): reading that block fails
 *   with EIO, failed_reads counts it, the other blocks read back intact,
 *   and rewriting the block heals it;
 * - requests past the end fail with EINVAL and count in invalid_io;
 * - I/O on an uninitialised device is refused.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "zsmalloc.h"
#include "testlib.h"

#define BS ZRAM_BLOCK_SIZE
#define NBLOCKS 256


static long pages_left = -1;    /* -1: no limit */
static long pages_out;

static void *
src_alloc (void *ctx)
{
  void *p;
  (void) ctx;
  if (pages_left == 0)
    return NULL;
  if (posix_memalign (&p, 4096, 4096) != 0)
    return NULL;
  if (pages_left > 0)
    pages_left--;
  __atomic_add_fetch (&pages_out, 1, __ATOMIC_RELAXED);
  return p;
}

static void
src_free (void *ctx, void *page)
{
  (void) ctx;
  __atomic_sub_fetch (&pages_out, 1, __ATOMIC_RELAXED);
  free (page);
}

/* Text-like, compressible, different for every block and generation. */
static void
fill (uint8_t *b, uint64_t block, int gen)
{
  static const char words[] = "slot handle zspage size class fullness huge same ";
  uint64_t x = block * 0x9E3779B97F4A7C15ull + gen + 1;
  for (size_t i = 0; i < BS; i++)
    b[i] = words[(i * 7 + block * 13 + gen) % (sizeof words - 1)] ^ (i % 61 == 0 ? (uint8_t) block : 0);
  /* From generation 1 on, a quarter of noise: about 1 KiB compressed, in
   * other size classes than generation 0's, so a rewrite needs new pages.
   */
  for (size_t i = 0; gen > 0 && i < BS / 4; i++) {
    b[i] = (uint8_t) xorshift64 (&x);
  }
}

int
main (void)
{
  static uint8_t buf[NBLOCKS * BS], want[NBLOCKS * BS], rd[NBLOCKS * BS];
  struct zs_ops ops = { src_alloc, src_free, NULL };
  struct zram_stats st;
  struct zram *z = zram_create_with (&ops);
  CHECK (z);

  /* Uninitialised: no clients, no I/O. */
  CHECK (zram_get (z) == -ENXIO);
  CHECK (zram_set_disksize (z, NBLOCKS * BS) == 0);
  CHECK (zram_get (z) == 0);

  for (uint64_t b = 0; b < NBLOCKS; b++)
    fill (want + b * BS, b, 0);
  CHECK (zram_write (z, want, sizeof want, 0) == 0);

  /* The page source runs dry a few pages into a 128-block rewrite. */
  for (uint64_t b = 0; b < NBLOCKS; b++)
    fill (buf + b * BS, b, 1);
  pages_left = 3;
  int r = zram_write (z, buf + 64 * BS, 128 * BS, 64 * BS);
  if (r != -ENOMEM)
    fprintf (stderr, "write with a failing page source: %d\n", r);
  CHECK (r == -ENOMEM);
  pages_left = -1;
  zram_get_stats (z, &st);
  CHECK (st.failed_writes >= 1);
  CHECK (zram_read (z, rd, sizeof rd, 0) == 0);
  for (uint64_t b = 0; b < NBLOCKS; b++) {
    int old = memcmp (rd + b * BS, want + b * BS, BS) == 0;
    int new = memcmp (rd + b * BS, buf + b * BS, BS) == 0;
    if (b < 64 || b >= 192)
      CHECK (old);              /* outside the write: untouched */
    else
      CHECK (old || new);       /* inside: old or new, nothing else */
    if (new)
      memcpy (want + b * BS, buf + b * BS, BS);
  }
  /* Pages are back: the same write now succeeds. */
  CHECK (zram_write (z, buf + 64 * BS, 128 * BS, 64 * BS) == 0);
  memcpy (want + 64 * BS, buf + 64 * BS, 128 * BS);
  CHECK (zram_read (z, rd, sizeof rd, 0) == 0);
  CHECK (memcmp (rd, want, sizeof want) == 0);

  /* Corruption: block 10's compressed object gets bits flipped. */
  zram_get_stats (z, &st);
  uint64_t failed_reads = st.failed_reads;
  CHECK (zram_test_corrupt (z, 10, 0, 0xff) == 0);
  CHECK (zram_test_corrupt (z, 10, 1, 0xff) == 0);
  CHECK (zram_test_corrupt (z, 10, 17, 0x55) == 0);
  r = zram_read (z, rd, BS, 10 * BS);
  CHECK (r == -EIO);
  zram_get_stats (z, &st);
  CHECK (st.failed_reads == failed_reads + 1);
  /* A read spanning the bad block fails too; others are intact. */
  CHECK (zram_read (z, rd, 3 * BS, 9 * BS) == -EIO);
  for (uint64_t b = 0; b < NBLOCKS; b++) {
    if (b == 10)
      continue;
    CHECK (zram_read (z, rd, BS, b * BS) == 0);
    CHECK (memcmp (rd, want + b * BS, BS) == 0);
  }
  /* A partial write into the bad block can't read-modify-write it. */
  CHECK (zram_write (z, buf, 100, 10 * BS + 7) == -EIO);
  /* A whole-block write replaces it. */
  CHECK (zram_write (z, want + 10 * BS, BS, 10 * BS) == 0);
  CHECK (zram_read (z, rd, BS, 10 * BS) == 0);
  CHECK (memcmp (rd, want + 10 * BS, BS) == 0);
  CHECK (zram_test_corrupt (z, NBLOCKS + 5, 0, 1) != 0);

  /* Past the end. */
  zram_get_stats (z, &st);
  uint64_t invalid = st.invalid_io;
  CHECK (zram_read (z, rd, BS, NBLOCKS * BS) == -EINVAL);
  CHECK (zram_write (z, buf, 2, NBLOCKS * BS - 1) == -EINVAL);
  CHECK (zram_discard (z, BS, (uint64_t) -BS) == -EINVAL);
  CHECK (zram_write_zeroes (z, BS, NBLOCKS * BS) == -EINVAL);
  zram_get_stats (z, &st);
  CHECK (st.invalid_io == invalid + 4);
  CHECK (zram_read (z, rd, sizeof rd, 0) == 0);
  CHECK (memcmp (rd, want, sizeof want) == 0);

  /* reset is refused while we hold the device, then frees everything. */
  CHECK (zram_reset (z) == -EBUSY);
  zram_put (z);
  CHECK (zram_reset (z) == 0);
  CHECK (!zram_initialised (z));
  zram_get_stats (z, &st);
  CHECK (st.mem_used_total == 0 && st.orig_data_size == 0);
  zram_destroy (z);
  CHECK (pages_out == 0);
  printf ("engine faults: OK\n");
  return 0;
}
