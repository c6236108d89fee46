/* uzram: unit test of the engine (plugin/engine.h), linked with the real
 * allocator and compressors, no nbdkit.
 *
 * For every compressor built: random reads, writes, trims and zeroes at
 * unaligned offsets checked against a shadow copy; same-filled and huge
 * pages in the statistics; trim and zero giving the memory back; extents;
 * corrupt data giving EIO; mem_limit giving ENOSPC with the old data kept;
 * a page source that runs dry giving ENOMEM.  Then the life cycle (EBUSY,
 * ENXIO, reset back to the defaults), a sparse 1 TiB disk, and threads
 * hammering the same blocks while others read the statistics, compact and
 * mark idle (for the sanitizers).
 */
#include <config.h>

#undef NDEBUG
#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine.h"
#include "zsmalloc.h"
#define TESTLIB_SEED 0x243f6a8885a308d3
#include "testlib.h"

#define BS ZRAM_BLOCK_SIZE

/* Text that compresses about as well as source code does. */
static void
fill_text (unsigned char *p, size_t n, unsigned seed)
{
  static const char *words[] = {
    "static", "int", "return", "struct", "zram", "slot", "handle", "page",
    "if", "else", "for", "while", "(void)", "{", "}", ";", "size", "count",
  };
  size_t i = 0;

  while (i < n) {
    const char *w = words[(seed = seed * 1103515245 + 12345) >> 16 & 15];
    size_t l = strlen (w);

    if (l > n - i - 1 || i + 1 >= n) {
      memset (p + i, '\n', n - i);
      break;
    }
    memcpy (p + i, w, l);
    i += l;
    p[i++] = (seed >> 8) % 7 ? ' ' : '\n';
  }
}

static struct zram_stats
stats (struct zram *z)
{
  struct zram_stats st;

  zram_get_stats (z, &st);
  return st;
}

/* --- Random operations against a shadow copy --- */

static void
random_ops (struct zram *z, size_t size, unsigned rounds)
{
  unsigned char *shadow = calloc (1, size), *buf = malloc (5 * BS);
  unsigned i;

  CHECK (shadow && buf);
  for (i = 0; i < rounds; i++) {
    uint32_t count = 1 + rnd () % (3 * BS + 100);
    uint64_t offset = rnd () % (size - count + 1);
    int op = rnd () % 10;

    if (op < 4) {                       /* write: random, text or words */
      int kind = rnd () % 3;
      if (kind == 0)
        fill_random (buf, count);
      else if (kind == 1)
        fill_text (buf, count, rnd ());
      else {
        uint64_t w = rnd () % 2 ? 0 : rnd ();
        uint32_t j;
        for (j = 0; j < count; j++)
          buf[j] = ((unsigned char *) &w)[(offset + j) % 8];
      }
      CHECK_EQ (zram_write (z, buf, count, offset), 0);
      memcpy (shadow + offset, buf, count);
    }
    else if (op < 8) {                  /* read */
      CHECK_EQ (zram_read (z, buf, count, offset), 0);
      CHECK (memcmp (buf, shadow + offset, count) == 0);
    }
    else if (op == 8) {                 /* trim: whole blocks become zero */
      uint64_t a = (offset + BS - 1) / BS * BS, b = (offset + count) / BS * BS;
      CHECK_EQ (zram_discard (z, count, offset), 0);
      if (b > a)
        memset (shadow + a, 0, b - a);
    }
    else {                              /* write zeroes */
      CHECK_EQ (zram_write_zeroes (z, count, offset), 0);
      memset (shadow + offset, 0, count);
    }
  }
  /* Everything, in one pass. */
  for (i = 0; i < size / BS; i++) {
    CHECK_EQ (zram_read (z, buf, BS, (uint64_t) i * BS), 0);
    CHECK (memcmp (buf, shadow + (size_t) i * BS, BS) == 0);
  }
  free (shadow);
  free (buf);
}

/* --- Statistics of known patterns --- */

static int
count_extent (void *opaque, uint64_t offset, uint64_t length, bool hole)
{
  uint64_t *v = opaque;    /* [0] next offset, [1] hole bytes, [2] extents */

  CHECK_EQ (offset, v[0]);
  v[0] = offset + length;
  if (hole)
    v[1] += length;
  v[2]++;
  return 0;
}

static void
known_patterns (struct zram *z)
{
  unsigned char page[BS], back[BS];
  struct zram_stats st;
  uint64_t word = 0x0123456789abcdef, ext[3];
  size_t huge_bytes = 0;
  unsigned i;

  /* A zero block and a repeated word: same pages, no memory. */
  memset (page, 0, BS);
  CHECK_EQ (zram_write (z, page, BS, 0), 0);
  for (i = 0; i < BS; i += 8)
    memcpy (page + i, &word, 8);
  CHECK_EQ (zram_write (z, page, BS, BS), 0);
  st = stats (z);
  CHECK_EQ (st.same_pages, 2);
  CHECK_EQ (st.pages_stored, 0);
  CHECK_EQ (st.orig_data_size, 2 * BS);
  CHECK_EQ (st.mem_used_total, 0);
  CHECK_EQ (zram_read (z, back, 13, BS + 5), 0);
  CHECK (memcmp (back, page + 5, 13) == 0);

  /* Text: compressed, stored. */
  fill_text (page, BS, 7);
  CHECK_EQ (zram_write (z, page, BS, 2 * BS), 0);
  st = stats (z);
  CHECK_EQ (st.pages_stored, 1);
  fprintf (stderr, "text block: %llu bytes\n", (unsigned long long) st.compr_data_size);
  CHECK (st.compr_data_size > 0 && st.compr_data_size < BS * 3 / 4);
  CHECK (st.mem_used_total > 0);
  CHECK_EQ (st.huge_pages, 0);

  /* Random: huge. */
  for (i = 3; i < 6; i++) {
    fill_random (page, BS);
    CHECK_EQ (zram_write (z, page, BS, i * BS), 0);
    huge_bytes += BS;
  }
  st = stats (z);
  CHECK_EQ (st.huge_pages, 3);
  CHECK_EQ (st.huge_pages_since, 3);
  CHECK_EQ (st.pages_stored, 4);
  CHECK_EQ (st.orig_data_size, 6 * BS);
  CHECK (st.compr_data_size > huge_bytes);
  CHECK (st.mem_used_max >= st.mem_used_total);
  CHECK_EQ (zram_read (z, back, BS, 5 * BS), 0);
  CHECK (memcmp (back, page, BS) == 0);

  /* Extents: 0 (zero) hole, 1-5 data, the rest holes. */
  memset (ext, 0, sizeof ext);
  CHECK_EQ (zram_extents (z, 16 * BS - 1, 0, count_extent, ext), 0);
  CHECK_EQ (ext[0], 16 * BS);
  CHECK_EQ (ext[1], 11 * BS);
  CHECK_EQ (ext[2], 3);

  /* Overwriting a huge page with text: huge_pages down, _since not. */
  fill_text (page, BS, 9);
  CHECK_EQ (zram_write (z, page, BS, 5 * BS), 0);
  st = stats (z);
  CHECK_EQ (st.huge_pages, 2);
  CHECK_EQ (st.huge_pages_since, 3);

  /* A partial zero over a text block rewrites it; a partial trim leaves
   * it alone.
   */
  CHECK_EQ (zram_write_zeroes (z, 100, 2 * BS + 10), 0);
  CHECK_EQ (zram_discard (z, BS - 1, 2 * BS + 1), 0);
  fill_text (page, BS, 7);
  memset (page + 10, 0, 100);
  CHECK_EQ (zram_read (z, back, BS, 2 * BS), 0);
  CHECK (memcmp (back, page, BS) == 0);
  CHECK_EQ (stats (z).notify_free, 0);
  /* A partial zero of an empty block leaves it empty. */
  st = stats (z);
  CHECK_EQ (zram_write_zeroes (z, 100, 7 * BS + 1), 0);
  CHECK_EQ (stats (z).same_pages, st.same_pages);
  CHECK_EQ (stats (z).orig_data_size, st.orig_data_size);

  /* Trim 0-3 and zero 4-6: every whole block counts in notify_free, 6
   * was already empty.
   */
  CHECK_EQ (zram_discard (z, 4 * BS, 0), 0);
  CHECK_EQ (zram_write_zeroes (z, 3 * BS, 4 * BS), 0);
  st = stats (z);
  CHECK_EQ (st.notify_free, 7);
  CHECK_EQ (st.miss_free, 1);
  CHECK_EQ (st.same_pages, 0);
  CHECK_EQ (st.pages_stored, 0);
  CHECK_EQ (st.huge_pages, 0);
  CHECK_EQ (st.compr_data_size, 0);
  CHECK_EQ (st.orig_data_size, 0);
  CHECK_EQ (st.mem_used_total, 0);       /* every zspage emptied and freed */
  CHECK (st.mem_used_max > 0);
  CHECK_EQ (st.discard_ios, 5);
  memset (ext, 0, sizeof ext);
  CHECK_EQ (zram_extents (z, 16 * BS, 0, count_extent, ext), 0);
  CHECK_EQ (ext[1], 16 * BS);
  CHECK_EQ (ext[2], 1);
  zram_reset_mem_used_max (z);
  CHECK_EQ (stats (z).mem_used_max, 0);

  /* Out of range. */
  CHECK_EQ (zram_read (z, back, 2, zram_disksize (z) - 1), -EINVAL);
  CHECK_EQ (zram_write (z, back, 1, zram_disksize (z) + BS), -EINVAL);
  CHECK_EQ (stats (z).invalid_io, 2);
}

/* Corrupt data: EIO on reads, full and partial, and on a partial write,
 * never an overrun (the sanitizer builds watch that).
 */
static void
corruption (struct zram *z)
{
  unsigned char page[BS], back[BS];
  struct zram_stats st;
  unsigned i;
  int r;

  fill_text (page, BS, 3);
  CHECK_EQ (zram_write (z, page, BS, 0), 0);
  CHECK_EQ (zram_test_corrupt (z, 1, 0, 1), -ENOENT);
  for (i = 0; i < 256; i++) {
    CHECK_EQ (zram_write (z, page, BS, 0), 0);
    CHECK_EQ (zram_test_corrupt (z, 0, rnd (), 1 + rnd () % 255), 0);
    r = zram_read (z, back, BS, 0);
    CHECK (r == 0 || r == -EIO);
  }
  /* Not every corruption shows (lz4 and zstd frames carry no checksum
   * here, and a flipped literal decodes fine): find one that does.
   */
  for (i = 0; i < 64; i++) {
    CHECK_EQ (zram_write (z, page, BS, 0), 0);
    CHECK_EQ (zram_test_corrupt (z, 0, i, 0xff), 0);
    st = stats (z);
    r = zram_read (z, back, BS, 0);
    if (r == -EIO)
      break;
    CHECK_EQ (r, 0);
  }
  CHECK (i < 64);
  CHECK_EQ (stats (z).failed_reads, st.failed_reads + 1);
  CHECK_EQ (zram_read (z, back, 10, 100), -EIO);
  CHECK_EQ (zram_write (z, back, 10, 100), -EIO);
  CHECK_EQ (stats (z).failed_reads, st.failed_reads + 2);
  CHECK_EQ (stats (z).failed_writes, st.failed_writes + 1);
  /* A whole-block write replaces it. */
  CHECK_EQ (zram_write (z, page, BS, 0), 0);
  CHECK_EQ (zram_read (z, back, BS, 0), 0);
  CHECK (memcmp (back, page, BS) == 0);
  CHECK_EQ (zram_discard (z, BS, 0), 0);
}

/* mem_limit: writes fail with ENOSPC and keep the old contents. */
static void
mem_limit (struct zram *z)
{
  unsigned char page[BS], back[BS], first[BS];
  struct zram_stats st, st0 = stats (z);
  unsigned i, n = 0;
  int r = 0;

  zram_set_mem_limit (z, 64 * 1024);
  fill_text (first, BS, 1);
  CHECK_EQ (zram_write (z, first, BS, 0), 0);
  for (i = 1; i < 64; i++) {
    fill_random (page, BS);
    r = zram_write (z, page, BS, (uint64_t) i * BS);
    if (r < 0)
      break;
    n++;
  }
  CHECK_EQ (r, -ENOSPC);
  CHECK (n >= 8 && n <= 16);
  st = stats (z);
  CHECK_EQ (st.failed_writes, st0.failed_writes + 1);
  CHECK_EQ (st.mem_limit, 64 * 1024);
  CHECK (st.mem_used_total <= 64 * 1024);
  /* The failed block is still empty; block 0 over its old text fails too
   * (random data needs a new huge object) and keeps the text.
   */
  CHECK_EQ (zram_read (z, back, BS, (uint64_t) (n + 1) * BS), 0);
  for (i = 0; i < BS; i++)
    CHECK (back[i] == 0);
  fill_random (page, BS);
  CHECK_EQ (zram_write (z, page, BS, 0), -ENOSPC);
  CHECK_EQ (zram_read (z, back, BS, 0), 0);
  CHECK (memcmp (back, first, BS) == 0);
  CHECK_EQ (stats (z).failed_writes, st0.failed_writes + 2);
  /* Same pages need no memory. */
  memset (page, 0, BS);
  CHECK_EQ (zram_write (z, page, BS, 63 * BS), 0);
  /* Freeing makes room again. */
  CHECK_EQ (zram_discard (z, 32 * BS, 0), 0);
  fill_random (page, BS);
  CHECK_EQ (zram_write (z, page, BS, 0), 0);
  zram_set_mem_limit (z, 0);
  CHECK_EQ (zram_discard (z, 64 * BS, 0), 0);
}

/* --- A page source that runs dry --- */

static int pages_left;

static void *
dry_alloc (void *ctx)
{
  (void) ctx;
  if (__atomic_sub_fetch (&pages_left, 1, __ATOMIC_RELAXED) < 0)
    return NULL;
  return aligned_alloc (BS, BS);
}

static void
dry_free (void *ctx, void *page)
{
  (void) ctx;
  free (page);
}

static void
no_memory (void)
{
  struct zs_ops ops = { dry_alloc, dry_free, NULL };
  struct zram *z = zram_create_with (&ops);
  unsigned char page[BS];
  unsigned i;
  int r = 0;

  CHECK (z);
  pages_left = 8;
  CHECK_EQ (zram_set_disksize (z, 1 << 20), 0);
  CHECK_EQ (zram_get (z), 0);
  for (i = 0; i < 64; i++) {
    fill_random (page, BS);
    r = zram_write (z, page, BS, (uint64_t) i * BS);
    if (r < 0)
      break;
  }
  CHECK_EQ (r, -ENOMEM);
  CHECK (i >= 4);
  CHECK_EQ (stats (z).failed_writes, 1);
  zram_put (z);
  zram_destroy (z);
}

/* --- Life cycle --- */

static void
life_cycle (void)
{
  struct zram *z = zram_create ();
  const char *const *algs = zram_comp_algorithms ();
  unsigned char page[BS];

  CHECK (z);
  CHECK (strcmp (algs[0], "lzo") == 0);
  CHECK (strcmp (zram_comp_algorithm (z), "lzo") == 0);
  CHECK (!zram_initialised (z));
  CHECK_EQ (zram_get (z), -ENXIO);
  CHECK_EQ (zram_mark_idle_all (z), -EINVAL);
  CHECK_EQ (zram_set_comp_algorithm (z, "nope"), -EINVAL);
  CHECK_EQ (zram_set_defaults (z, "nope", 0), -EINVAL);
  CHECK_EQ (zram_set_disksize (z, 0), -EINVAL);
  CHECK_EQ (zram_set_disksize (z, UINT64_MAX), -EINVAL);
  CHECK_EQ (zram_reset (z), 0);          /* uninitialised: nothing to do */

  /* The last built algorithm as the default, with a limit. */
  while (algs[1])
    algs++;
  CHECK_EQ (zram_set_defaults (z, *algs, 1 << 20), 0);
  CHECK (strcmp (zram_comp_algorithm (z), *algs) == 0);
  CHECK_EQ (stats (z).mem_limit, 1 << 20);
  CHECK_EQ (zram_set_comp_algorithm (z, "lzo"), 0);
  zram_set_mem_limit (z, 0);

  CHECK_EQ (zram_set_disksize (z, 10000), 0);
  CHECK_EQ (zram_disksize (z), 3 * BS);
  CHECK (zram_initialised (z));
  CHECK_EQ (zram_set_disksize (z, BS), -EBUSY);
  CHECK_EQ (zram_set_comp_algorithm (z, "lzo"), -EBUSY);
  CHECK_EQ (zram_get (z), 0);
  CHECK_EQ (zram_get (z), 0);
  CHECK_EQ (stats (z).clients, 2);
  fill_text (page, BS, 5);
  CHECK_EQ (zram_write (z, page, BS, 0), 0);
  CHECK_EQ (zram_flush (z), 0);
  CHECK_EQ (zram_mark_idle_all (z), 0);
  CHECK_EQ (zram_reset (z), -EBUSY);
  zram_put (z);
  CHECK_EQ (zram_reset (z), -EBUSY);
  zram_put (z);
  CHECK_EQ (zram_reset (z), 0);
  CHECK (!zram_initialised (z));
  CHECK_EQ (zram_disksize (z), 0);
  /* Back to the defaults; every statistic zeroed. */
  CHECK (strcmp (zram_comp_algorithm (z), *algs) == 0);
  CHECK_EQ (stats (z).mem_limit, 1 << 20);
  CHECK_EQ (stats (z).write_ios, 0);
  CHECK_EQ (stats (z).pages_stored, 0);
  CHECK_EQ (stats (z).mem_used_max, 0);
  CHECK_EQ (zram_class_stats (z, NULL, 0), 0);

  /* And again, with the same engine. */
  CHECK_EQ (zram_set_disksize (z, 2 * BS), 0);
  CHECK_EQ (zram_get (z), 0);
  CHECK_EQ (zram_read (z, page, BS, BS), 0);
  CHECK (page[0] == 0 && page[BS - 1] == 0);
  CHECK (zram_class_stats (z, NULL, 0) > 0);
  zram_put (z);
  zram_destroy (z);
}

/* A 1 TiB disk: reads, trims and extents of empty blocks must not touch
 * the slot table (which would cost 4 GiB).
 */
static long
rss_kib (void)
{
  FILE *f = fopen ("/proc/self/statm", "r");
  long size, rss;

  CHECK (f);
  CHECK (fscanf (f, "%ld %ld", &size, &rss) == 2);
  fclose (f);
  return rss * (sysconf (_SC_PAGESIZE) / 1024);
}

static int
one_hole (void *opaque, uint64_t offset, uint64_t length, bool hole)
{
  (void) offset;
  CHECK (hole);
  *(uint64_t *) opaque += length;
  return 0;
}

static void
sparse (void)
{
  struct zram *z = zram_create ();
  unsigned char *buf = malloc (1 << 20);
  uint64_t tib = UINT64_C (1) << 40, off, holes = 0;
  long before;
  unsigned i;

  CHECK (z && buf);
  CHECK_EQ (zram_set_disksize (z, tib), 0);
  CHECK_EQ (zram_get (z), 0);
  before = rss_kib ();
  for (off = 0; off < tib; off += tib / 64) {
    CHECK_EQ (zram_read (z, buf, 1 << 20, off), 0);
    CHECK_EQ (zram_discard (z, 1 << 20, off), 0);
  }
  CHECK_EQ (zram_extents (z, UINT32_MAX, tib / 2, one_hole, &holes), 0);
  CHECK (holes >= UINT32_MAX);
  /* 256 written blocks spread 4 GiB apart: one table page each. */
  for (i = 0; i < 256; i++) {
    memset (buf, i, BS);
    CHECK_EQ (zram_write (z, buf, BS, (uint64_t) i << 32), 0);
  }
  /* Sanitizers' shadow memory makes RSS meaningless. */
  if (getenv ("SANITIZERS") == NULL || *getenv ("SANITIZERS") == '\0')
    CHECK (rss_kib () - before < 4 * 1024);
  CHECK_EQ (stats (z).same_pages, 256);
  zram_put (z);
  zram_destroy (z);
  free (buf);
}

/* Extents, trims and reads across table pages (256 slots, 1 MiB) that a
 * write has or has not reached, against a model of which blocks hold data.
 */
struct extent_check {
  const bool *data;       /* per block: holds non-zero data */
  uint64_t next;          /* where the next run must start */
  bool last_hole, any;
};

static int
check_extent (void *opaque, uint64_t offset, uint64_t length, bool hole)
{
  struct extent_check *c = opaque;
  uint64_t b;

  CHECK_EQ (offset, c->next);
  CHECK (length > 0 && length % BS == 0);
  if (c->any)
    CHECK (hole != c->last_hole);       /* runs are maximal */
  for (b = offset / BS; b < (offset + length) / BS; b++)
    CHECK (c->data[b] == !hole);
  c->next = offset + length;
  c->last_hole = hole;
  c->any = true;
  return 0;
}

static void
table_pages (void)
{
  const uint64_t blocks = 64 * 256;     /* 64 table pages */
  struct zram *z = zram_create ();
  bool *data = calloc (blocks, sizeof *data);
  unsigned char page[BS];
  struct zram_stats st;
  unsigned i;

  CHECK (z && data);
  CHECK_EQ (zram_set_disksize (z, blocks * BS), 0);
  CHECK_EQ (zram_get (z), 0);
  /* Data in a few table pages only, zeroes in others. */
  for (i = 0; i < 400; i++) {
    uint64_t b = (rnd () % 20) * 768 + rnd () % 300;   /* pages 0,3,6.. */
    if (b >= blocks)
      continue;
    if (rnd () % 4 == 0) {
      memset (page, 0, BS);
      data[b] = false;
    }
    else {
      fill_text (page, BS, rnd ());
      data[b] = true;
    }
    CHECK_EQ (zram_write (z, page, BS, b * BS), 0);
  }
  /* Trims that span touched and untouched pages, some unaligned. */
  for (i = 0; i < 20; i++) {
    uint64_t off = rnd () % (blocks * BS - 3 * 1048576);
    uint32_t n = rnd () % (3 * 1048576);
    uint64_t b;
    CHECK_EQ (zram_discard (z, n, off), 0);
    for (b = (off + BS - 1) / BS; b < (off + n) / BS; b++)
      data[b] = false;
  }
  /* Extents over random ranges, and over everything. */
  for (i = 0; i < 200; i++) {
    uint64_t off = rnd () % (blocks * BS);
    uint32_t n = 1 + rnd () % (blocks * BS - off);
    struct extent_check c = { data, off / BS * BS, false, false };
    CHECK_EQ (zram_extents (z, n, off, check_extent, &c), 0);
    CHECK (c.next >= off + n && c.next <= (off + n + BS - 1) / BS * BS);
  }
  {
    struct extent_check c = { data, 0, false, false };
    CHECK_EQ (zram_extents (z, blocks * BS, 0, check_extent, &c), 0);
    CHECK_EQ (c.next, blocks * BS);
  }
  /* Reads agree; idle marking walks only touched pages. */
  for (i = 0; i < blocks; i += 97) {
    CHECK_EQ (zram_read (z, page, BS, (uint64_t) i * BS), 0);
    CHECK (data[i] ? page[0] != 0 : page[0] == 0 && page[BS - 1] == 0);
  }
  CHECK_EQ (zram_mark_idle_all (z), 0);
  /* Zeroing everything counts every whole block; memory goes back. */
  st = stats (z);
  CHECK_EQ (zram_write_zeroes (z, blocks * BS, 0), 0);
  CHECK_EQ (stats (z).notify_free, st.notify_free + blocks);
  CHECK_EQ (stats (z).orig_data_size, 0);
  CHECK_EQ (stats (z).mem_used_total, 0);
  zram_put (z);
  zram_destroy (z);
  free (data);
}

/* --- Threads ---
 *
 * Writers put self-describing blocks (a seed in the first 8 bytes, the
 * rest derived from it) into a small hot range, so every read must see
 * some writer's whole block, never a mix.  Others trim, zero, read the
 * statistics, compact and mark idle meanwhile.
 */
#define HOT_BLOCKS 16
#define THREAD_OPS 10000

static void
make_block (unsigned char *p, uint64_t seed)
{
  uint64_t x = seed | 1;
  size_t i;

  memcpy (p, &seed, 8);
  if (seed % 4 == 0) {                  /* same-filled */
    for (i = 8; i < BS; i += 8)
      memcpy (p + i, &seed, 8);
    return;
  }
  for (i = 8; i < BS; i++) {
    x ^= x << 13; x ^= x >> 7; x ^= x << 17;
    /* Half of them compressible. */
    p[i] = seed % 4 == 1 ? (x & 3) + 'a' : x;
  }
}

static void
check_block (const unsigned char *p)
{
  unsigned char want[BS];
  uint64_t seed;
  size_t i;

  memcpy (&seed, p, 8);
  if (seed == 0) {                      /* trimmed or zeroed */
    for (i = 0; i < BS; i++)
      CHECK (p[i] == 0);
    return;
  }
  make_block (want, seed);
  CHECK (memcmp (p, want, BS) == 0);
}

struct worker {
  struct zram *z;
  unsigned id;
  uint64_t rng;
  unsigned char shadow[BS];
};

static void *
io_thread (void *arg)
{
  struct worker *w = arg;
  unsigned char *page = malloc (2 * BS);
  unsigned i;

  CHECK (page);
  for (i = 0; i < THREAD_OPS; i++) {
    uint64_t x = w->rng;
    uint64_t blk, seed;

    x ^= x << 13; x ^= x >> 7; x ^= x << 17;
    w->rng = x;
    blk = x % HOT_BLOCKS;
    switch ((x >> 8) % 8) {
    case 0: case 1: case 2:
      seed = (x >> 16) | 1ULL << 63 | (x >> 8 & 3);
      make_block (page, seed);
      CHECK_EQ (zram_write (w->z, page, BS, blk * BS), 0);
      break;
    case 3:
      CHECK_EQ (zram_discard (w->z, BS, blk * BS), 0);
      break;
    case 4:
      CHECK_EQ (zram_write_zeroes (w->z, BS, blk * BS), 0);
      break;
    case 5: {
      /* Partial writes into this thread's own block, checked against a
       * shadow copy.
       */
      uint64_t own = (HOT_BLOCKS + w->id) * (uint64_t) BS;
      uint32_t off = x >> 20 & (BS - 1), n = 1 + (x >> 40) % (BS - off);
      memset (page, (int) (x >> 32) & 0xff, n);
      CHECK_EQ (zram_write (w->z, page, n, own + off), 0);
      memcpy (w->shadow + off, page, n);
      CHECK_EQ (zram_read (w->z, page, BS, own), 0);
      CHECK (memcmp (page, w->shadow, BS) == 0);
      break;
    }
    default:
      CHECK_EQ (zram_read (w->z, page, BS, blk * BS), 0);
      check_block (page);
      break;
    }
  }
  free (page);
  return NULL;
}

static int stop_admin;

static void *
admin_thread (void *arg)
{
  struct zram *z = arg;
  struct zram_stats st;
  struct zs_class_stat cs[8];

  while (!__atomic_load_n (&stop_admin, __ATOMIC_RELAXED)) {
    zram_get_stats (z, &st);
    CHECK (st.initialised);
    zram_compact (z);
    CHECK_EQ (zram_mark_idle_all (z), 0);
    zram_class_stats (z, cs, 8);
    zram_reset_mem_used_max (z);
  }
  return NULL;
}

static void
threads (void)
{
  struct zram *z = zram_create ();
  struct worker w[4];
  pthread_t t[4], admin;
  struct zram_stats st;
  unsigned char page[BS];
  unsigned i;

  CHECK (z);
  CHECK_EQ (zram_set_disksize (z, (HOT_BLOCKS + 4) * BS), 0);
  CHECK_EQ (zram_get (z), 0);
  CHECK_EQ (pthread_create (&admin, NULL, admin_thread, z), 0);
  for (i = 0; i < 4; i++) {
    memset (&w[i], 0, sizeof w[i]);
    w[i].z = z;
    w[i].id = i;
    w[i].rng = 0x9e3779b97f4a7c15ULL * (i + 1);
    CHECK_EQ (pthread_create (&t[i], NULL, io_thread, &w[i]), 0);
  }
  for (i = 0; i < 4; i++)
    CHECK_EQ (pthread_join (t[i], NULL), 0);
  __atomic_store_n (&stop_admin, 1, __ATOMIC_RELAXED);
  CHECK_EQ (pthread_join (admin, NULL), 0);

  /* The gauges add up after all that churn. */
  st = stats (z);
  for (i = 0; i < HOT_BLOCKS; i++) {
    CHECK_EQ (zram_read (z, page, BS, (uint64_t) i * BS), 0);
    check_block (page);
  }
  CHECK (st.pages_stored + st.same_pages <= HOT_BLOCKS + 4);
  CHECK (st.huge_pages <= st.pages_stored);
  CHECK_EQ (st.in_flight, 0);
  CHECK_EQ (zram_discard (z, (HOT_BLOCKS + 4) * BS, 0), 0);
  st = stats (z);
  CHECK_EQ (st.pages_stored, 0);
  CHECK_EQ (st.same_pages, 0);
  CHECK_EQ (st.compr_data_size, 0);
  CHECK_EQ (st.mem_used_total, 0);
  zram_put (z);
  zram_destroy (z);
}

int
main (void)
{
  const char *const *alg;

  for (alg = zram_comp_algorithms (); *alg; alg++) {
    struct zram *z = zram_create ();

    CHECK (z);
    CHECK_EQ (zram_set_comp_algorithm (z, *alg), 0);
    CHECK_EQ (zram_set_disksize (z, 1 << 20), 0);
    CHECK_EQ (zram_get (z), 0);
    known_patterns (z);
    corruption (z);
    mem_limit (z);
    random_ops (z, 1 << 20, 3000);
    zram_put (z);
    zram_destroy (z);
    printf ("%s: ok\n", *alg);
  }
  no_memory ();
  life_cycle ();
  sparse ();
  table_pages ();
  threads ();
  printf ("life cycle, sparse, threads: ok\n");
  return 0;
}
