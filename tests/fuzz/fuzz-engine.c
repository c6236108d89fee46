/* libFuzzer target: the engine's request path against a flat shadow image.
 *
 * The input is a program of byte-coded requests on a small device: pread,
 * pwrite, trim, write-zeroes and flush at arbitrary offsets and lengths
 * (some past the end), with mem_limit changes and compactions mixed in.
 * Write data is drawn from a few kinds of page content (zeroes, one
 * repeated word, text, noise) so that same-filled, compressed and huge
 * slots all occur.  Every read must match the shadow.  A write that fails
 * (mem_limit) must leave each block holding either its old or its new
 * contents, never anything else, and the device must keep serving.
 */
#include <assert.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"

#define BLOCKS 40
#define DISK (BLOCKS * ZRAM_BLOCK_SIZE - 1000) /* rounds up to BLOCKS */
#define MAX_IO (3 * ZRAM_BLOCK_SIZE + 100)

static uint8_t shadow[BLOCKS * ZRAM_BLOCK_SIZE];

static void
make_data (uint8_t *buf, size_t len, uint8_t kind, uint8_t seed)
{
  static const char text[] = "orig_data_size compr_data_size mem_used_total ";
  uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
  for (size_t i = 0; i < len; i++) {
    switch (kind % 4) {
    case 0: buf[i] = 0; break;
    case 1: buf[i] = (uint8_t) (seed + (i & 7)); break;       /* one word */
    case 2: buf[i] = text[(i + seed) % (sizeof text - 1)]; break;
    case 3: x ^= x << 13; x ^= x >> 7; x ^= x << 17; buf[i] = x; break;
    }
  }
}

static void
die (const char *what, uint64_t off, uint64_t len, int r)
{
  fprintf (stderr, "fuzz-engine: %s at %lu+%lu: %d\n", what,
           (unsigned long) off, (unsigned long) len, r);
  abort ();
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t len)
{
  /* Aligned requests round MAX_IO up to whole blocks. */
  static uint8_t buf[MAX_IO + ZRAM_BLOCK_SIZE], rbuf[MAX_IO + ZRAM_BLOCK_SIZE],
    old[MAX_IO + ZRAM_BLOCK_SIZE];
  struct zram *z = zram_create ();
  size_t i = 0;
  int r;

  assert (z);
  if (zram_set_disksize (z, DISK) != 0 || zram_get (z) != 0)
    abort ();
  assert (zram_disksize (z) == sizeof shadow);
  memset (shadow, 0, sizeof shadow);

  while (i + 6 <= len) {
    uint8_t op = data[i] % 8, kind = data[i + 1];
    uint64_t off = (data[i + 2] | (data[i + 3] << 8) | ((data[i + 4] & 3) << 16))
                   % (sizeof shadow + 2 * ZRAM_BLOCK_SIZE);
    uint32_t n = 1 + ((data[i + 4] >> 2) | (data[i + 5] << 6)) % MAX_IO;
    bool in_range = off + n <= sizeof shadow;
    i += 6;
    if (op <= 4 && (data[i - 1] & 0x80)) {
      /* Half the requests are block-aligned, as most clients send. */
      off &= ~(uint64_t) (ZRAM_BLOCK_SIZE - 1);
      n = (n + ZRAM_BLOCK_SIZE - 1) & ~(ZRAM_BLOCK_SIZE - 1);
      in_range = off + n <= sizeof shadow;
    }
    switch (op) {
    case 0: case 1:             /* pwrite */
      make_data (buf, n, kind, data[i - 2]);
      r = zram_write (z, buf, n, off);
      if (!in_range) {
        if (r != -EINVAL) die ("write past the end", off, n, r);
        break;
      }
      if (r == 0) {
        memcpy (shadow + off, buf, n);
        break;
      }
      if (r != -ENOSPC && r != -ENOMEM) die ("write", off, n, r);
      /* Each block: old or new, nothing else. */
      memcpy (old, shadow + off, n);
      if (zram_read (z, rbuf, n, off) != 0) die ("read after failed write", off, n, -1);
      for (uint32_t b = 0; b < n; ) {
        uint32_t end = ((off + b) | (ZRAM_BLOCK_SIZE - 1)) + 1 - off;
        if (end > n) end = n;
        if (memcmp (rbuf + b, old + b, end - b) != 0 &&
            memcmp (rbuf + b, buf + b, end - b) != 0)
          die ("a failed write left a block neither old nor new", off + b, end - b, r);
        b = end;
      }
      memcpy (shadow + off, rbuf, n);
      break;
    case 2:                     /* pread */
      r = zram_read (z, rbuf, n, off);
      if (!in_range) {
        if (r != -EINVAL) die ("read past the end", off, n, r);
        break;
      }
      if (r != 0) die ("read", off, n, r);
      if (memcmp (rbuf, shadow + off, n) != 0) die ("read differs from shadow", off, n, 0);
      break;
    case 3:                     /* trim: whole blocks inside read back as zeroes */
      r = zram_discard (z, n, off);
      if (!in_range) {
        if (r != -EINVAL) die ("trim past the end", off, n, r);
        break;
      }
      if (r != 0) die ("trim", off, n, r);
      {
        uint64_t first = (off + ZRAM_BLOCK_SIZE - 1) / ZRAM_BLOCK_SIZE;
        uint64_t last = (off + n) / ZRAM_BLOCK_SIZE;
        for (uint64_t b = first; b < last; b++)
          memset (shadow + b * ZRAM_BLOCK_SIZE, 0, ZRAM_BLOCK_SIZE);
      }
      break;
    case 4:                     /* write zeroes */
      r = zram_write_zeroes (z, n, off);
      if (!in_range) {
        if (r != -EINVAL) die ("zero past the end", off, n, r);
        break;
      }
      if (r == 0)
        memset (shadow + off, 0, n);
      else if (r == -ENOSPC || r == -ENOMEM) {
        /* A partial block's rewrite can fail over mem_limit: resync. */
        if (zram_read (z, rbuf, n, off) != 0) die ("read after failed zero", off, n, -1);
        for (uint32_t b = 0; b < n; b++)
          if (rbuf[b] != 0 && rbuf[b] != shadow[off + b])
            die ("a failed zero left a byte neither old nor zero", off + b, 1, r);
        memcpy (shadow + off, rbuf, n);
      }
      else
        die ("zero", off, n, r);
      break;
    case 5:
      if (zram_flush (z) != 0) die ("flush", 0, 0, -1);
      break;
    case 6:                     /* mem_limit: none, or a few pages */
      zram_set_mem_limit (z, (kind & 1) ? 0 : (uint64_t) (kind >> 1) * 4096);
      break;
    case 7:
      zram_compact (z);
      break;
    }
  }
  /* Everything still reads back as the shadow says. */
  zram_set_mem_limit (z, 0);
  if (zram_read (z, rbuf, 0, 0) != 0) die ("empty read", 0, 0, -1);
  for (uint64_t off = 0; off < sizeof shadow; off += ZRAM_BLOCK_SIZE) {
    if (zram_read (z, rbuf, ZRAM_BLOCK_SIZE, off) != 0) die ("final read", off, ZRAM_BLOCK_SIZE, -1);
    if (memcmp (rbuf, shadow + off, ZRAM_BLOCK_SIZE) != 0) die ("final read differs", off, ZRAM_BLOCK_SIZE, 0);
  }
  /* Trimmed whole, the device holds nothing. */
  if (zram_discard (z, sizeof shadow, 0) != 0) die ("trim all", 0, sizeof shadow, -1);
  zram_compact (z);
  struct zram_stats st;
  zram_get_stats (z, &st);
  if (st.orig_data_size != 0 || st.mem_used_total != 0 || st.same_pages != 0)
    die ("memory held after trimming everything", st.orig_data_size, st.mem_used_total, 0);
  zram_put (z);
  if (zram_reset (z) != 0) die ("reset", 0, 0, -1);
  zram_destroy (z);
  return 0;
}
