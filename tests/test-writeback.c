/* uzram: writeback to a backing file, through zram's attribute files
 * (plugin/attrs.c) and the engine, with the real allocator, compressors
 * and a real file opened O_DIRECT; no nbdkit.
 *
 * The ABI's errors (none, EBUSY, ENOTBLK, ENODEV, EINVAL, ERANGE, EIO for
 * the limit, ENOSPC for a full backing file), writeback of huge, idle,
 * page_index and page_indexes with bd_stat, mm_stat and block_state after
 * each, the data intact across writeback, read-back, overwrite, trim and
 * reset, idle by age, and backing I/O errors: a backing file cut short
 * (reads fail) and RLIMIT_FSIZE (writes fail), where the reader of that
 * block gets EIO, the failure is counted, and nothing else is lost.  The
 * policy: near_limit, writeback_idle and recompress_idle.  Then threads
 * writing, reading and trimming their own blocks while others mark idle,
 * write back and compact, and the policy's thread writes back or
 * recompresses (for TSan).
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "attrs.h"
#include "comp.h"
#include "engine.h"
#define TESTLIB_SEED 0x9e3779b97f4a7c15
#include "testlib.h"
#include "attrlib.h"

#define BS ZRAM_BLOCK_SIZE
#define NR_BLOCKS 256                   /* the device: 1 MiB */
#define BACKING_BLOCKS 65               /* block 0 is never used: 64 */

static char backing[] = "/var/tmp/uzram-test-writeback.XXXXXX";

/* bd_stat's three numbers. */
static void
bd_stat (uint64_t *count, uint64_t *reads, uint64_t *writes)
{
  unsigned long long c, r, w;

  CHECK (sscanf (show ("bd_stat"), "%llu %llu %llu", &c, &r, &w) == 3);
  *count = c;
  *reads = r;
  *writes = w;
}

/* block_state's flags for index, "" if it has no line. */
static const char *
block_flags (uint64_t index, unsigned long long *secs)
{
  static char flags[8];
  const char *p = show ("block_state");
  unsigned long long i, s;
  unsigned long us;
  int used;

  while (sscanf (p, "%llu %llu.%lu %7s%n", &i, &s, &us, flags, &used) == 4) {
    CHECK_EQ (us, 0);
    if (i == index) {
      if (secs)
        *secs = s;
      return flags;
    }
    p += used;
  }
  return "";
}

/* The contents block i holds in the shadow: kind 0 empty, 1 compressible
 * text, 2 incompressible (huge), 3 same-filled, 4 random bytes of 16
 * values (4 bits a byte that only entropy coding finds: lzo-rle stores it
 * huge, zstd about halves it), 5 half random (about half a page, not
 * huge).
 */
static unsigned char shadow[NR_BLOCKS][BS];

static void
make_block (unsigned i, int kind, uint64_t seed)
{
  unsigned char *p = shadow[i];

  switch (kind) {
  case 0: memset (p, 0, BS); break;
  case 1:
    fill_pattern (p, 64, seed);
    memset (p + 64, 'a' + seed % 26, BS - 64);
    break;
  case 2: fill_pattern (p, BS, seed); break;
  case 3: memset (p, 0x5a, BS); break;
  case 4:
    for (size_t k = 0; k < BS; k++)
      p[k] = "abcdefghijklmnop"[xorshift64 (&seed) & 15];
    break;
  case 5:
    fill_pattern (p, BS / 2, seed);
    memset (p + BS / 2, 'a' + seed % 26, BS / 2);
    break;
  }
}

static void
write_block (unsigned i, int kind, uint64_t seed)
{
  make_block (i, kind, seed);
  CHECK_EQ (zram_write (zram, shadow[i], BS, (uint64_t) i * BS), 0);
}

/* Every block against the shadow, whole and in an unaligned piece. */
static void
check_all (void)
{
  static unsigned char buf[BS];
  unsigned i;

  for (i = 0; i < NR_BLOCKS; i++) {
    CHECK_EQ (zram_read (zram, buf, BS, (uint64_t) i * BS), 0);
    if (memcmp (buf, shadow[i], BS) != 0)
      FAIL ("block %u differs", i);
    CHECK_EQ (zram_read (zram, buf, 100, (uint64_t) i * BS + 1000), 0);
    if (memcmp (buf, shadow[i] + 1000, 100) != 0)
      FAIL ("block %u's piece differs", i);
  }
}

static void
make_backing (uint64_t blocks)
{
  int fd = open (backing, O_RDWR | O_CREAT | O_TRUNC, 0600);

  CHECK (fd >= 0);
  CHECK (ftruncate (fd, blocks * BS) == 0);
  close (fd);
}

static void
init (void)
{
  char path[sizeof backing + 1];

  make_backing (BACKING_BLOCKS);
  expect_store ("backing_dev", backing, 0);
  snprintf (path, sizeof path, "%s\n", backing);
  expect_show ("backing_dev", path);
  expect_store ("disksize", "1M", 0);
  CHECK (zram_get (zram) == 0);
  memset (shadow, 0, sizeof shadow);
}

static void
reset (void)
{
  zram_put (zram);
  expect_store ("reset", "1", 0);
  expect_show ("backing_dev", "none\n");
}

/* --- The ABI's errors --- */

static void
test_errors (void)
{
  expect_show ("backing_dev", "none\n");
  expect_show ("bd_stat", "       0        0        0\n");
  expect_show ("writeback_limit_enable", "0\n");
  expect_show ("writeback_limit", "0\n");
  expect_store ("writeback", "idle", EINVAL);        /* uninitialised */
  expect_store ("backing_dev", "/nonexistent/file", ENOENT);
  expect_store ("backing_dev", "/dev/null", ENOTBLK);
  expect_store ("writeback_limit", "x", EINVAL);
  expect_store ("writeback_limit_enable", "-1", EINVAL);

  expect_store ("disksize", "1M", 0);
  expect_store ("writeback", "idle", ENODEV);
  expect_store ("writeback", "page_index=0", ENODEV);
  expect_store ("backing_dev", backing, EBUSY);
  expect_store ("reset", "1", 0);

  init ();
  write_block (3, 1, 3);
  expect_store ("backing_dev", backing, EBUSY);
  expect_store ("writeback", "bogus", EINVAL);
  expect_store ("writeback", "type=bogus", EINVAL);
  expect_store ("writeback", "page_index=x", EINVAL);
  expect_store ("writeback", "page_indexes=5", EINVAL);
  expect_store ("writeback", "page_index=256", ERANGE);
  expect_store ("writeback", "page_indexes=5-256", ERANGE);
  expect_store ("writeback", "page_indexes=256-300", ERANGE);
  expect_store ("writeback", "page_indexes=6-5", ERANGE);
  /* A bad argument after a good one: nothing is written back. */
  expect_store ("writeback", "page_index=3 page_index=999", ERANGE);
  expect_show ("bd_stat", "       0        0        0\n");
  /* Names zram does not know are ignored. */
  expect_store ("writeback", "colour=blue", 0);
  expect_store ("writeback", "huge\n", 0);
  expect_show ("bd_stat", "       0        0        0\n");
  check_all ();
  reset ();
}

/* --- Writeback of each type, with the statistics --- */

static void
test_types (void)
{
  uint64_t c, r, w, huge = 0, text = 0, same = 0;
  struct zram_stats before, after;
  unsigned i;

  init ();
  /* 40 huge, 40 compressible, 20 same-filled, the rest empty. */
  for (i = 0; i < 100; i++) {
    int kind = i < 40 ? 2 : i < 80 ? 1 : 3;

    write_block (i, kind, i);
    huge += kind == 2;
    text += kind == 1;
    same += kind == 3;
  }
  before = stats ();
  CHECK_EQ (before.huge_pages, huge);
  CHECK_EQ (before.same_pages, same);
  CHECK (strcmp (block_flags (0, NULL), "..h...") == 0);
  CHECK (strcmp (block_flags (50, NULL), "......") == 0);
  CHECK (strcmp (block_flags (90, NULL), "s.....") == 0);
  CHECK (strcmp (block_flags (150, NULL), "") == 0);

  /* huge_idle takes none: nothing is idle yet. */
  expect_store ("writeback", "huge_idle", 0);
  bd_stat (&c, &r, &w);
  CHECK_EQ (c, 0);
  expect_store ("writeback", "type=huge", 0);
  bd_stat (&c, &r, &w);
  CHECK_EQ (c, huge);
  CHECK_EQ (w, huge);
  CHECK_EQ (r, 0);
  after = stats ();
  CHECK_EQ (after.huge_pages, 0);
  CHECK_EQ (after.huge_pages_since, huge);
  CHECK_EQ (after.orig_data_size, before.orig_data_size);
  CHECK_EQ (after.compr_data_size, before.compr_data_size - huge * BS);
  CHECK (after.mem_used_total < before.mem_used_total);
  {
    unsigned long long secs = 1;

    CHECK (strcmp (block_flags (0, &secs), ".w....") == 0);
    CHECK_EQ (secs, 0);         /* zram zeroes the time it frees */
  }

  /* Read back from the backing file: the data, and bd_reads. */
  check_all ();
  bd_stat (&c, &r, &w);
  CHECK_EQ (r, 2 * huge);       /* a whole read and a piece of each */
  {
    unsigned long long secs = 0;

    CHECK (strcmp (block_flags (0, &secs), ".w....") == 0);
    CHECK (secs > 0);           /* a read is an access */
  }

  /* idle all marks neither written-back nor same-filled blocks, as
   * zram's mark_idle; writeback idle takes the compressible ones, then
   * the device holds 64.
   */
  expect_store ("idle", "all", 0);
  CHECK (strcmp (block_flags (0, NULL), ".w....") == 0);
  CHECK (strcmp (block_flags (90, NULL), "s.....") == 0);
  CHECK (strcmp (block_flags (50, NULL), "...i..") == 0);
  expect_store ("writeback", "idle", ENOSPC);
  bd_stat (&c, &r, &w);
  CHECK_EQ (c, BACKING_BLOCKS - 1);
  CHECK_EQ (stats ().bd_writes, BACKING_BLOCKS - 1);
  CHECK (strcmp (block_flags (90, NULL), "s.....") == 0);
  check_all ();

  /* Overwrite and trim free backing blocks; partial overwrite of a
   * written-back block reads it first.
   */
  write_block (0, 1, 1000);
  CHECK_EQ (stats ().bd_count, BACKING_BLOCKS - 2);
  CHECK_EQ (zram_discard (zram, BS, 1 * BS), 0);
  make_block (1, 0, 0);
  CHECK_EQ (stats ().bd_count, BACKING_BLOCKS - 3);
  memset (shadow[2] + 10, 0x77, 20);
  CHECK_EQ (zram_write (zram, shadow[2] + 10, 20, 2 * BS + 10), 0);
  CHECK_EQ (stats ().bd_count, BACKING_BLOCKS - 4);
  check_all ();

  /* Three blocks free again: page_index and page_indexes take any type
   * that is in memory, repeated, and stop when full.
   */
  CHECK (strcmp (block_flags (0, NULL), "......") == 0);
  expect_store ("writeback", "page_index=0 page_index=0 page_indexes=2-2", 0);
  CHECK_EQ (stats ().bd_count, BACKING_BLOCKS - 2);
  CHECK (strcmp (block_flags (0, NULL), ".w....") == 0);
  expect_store ("writeback", "page_index=90", 0);       /* same-filled: skipped */
  CHECK_EQ (stats ().bd_count, BACKING_BLOCKS - 2);
  expect_store ("writeback", "page_indexes=60-99", ENOSPC);
  CHECK_EQ (stats ().bd_count, BACKING_BLOCKS - 1);
  check_all ();

  /* Reset frees everything and lets go of the backing file. */
  reset ();
  init ();
  write_block (7, 2, 7);
  expect_store ("writeback", "page_index=7", 0);
  bd_stat (&c, &r, &w);
  CHECK_EQ (c, 1);
  CHECK_EQ (w, 1);
  check_all ();
  reset ();
}

/* --- writeback_limit --- */

static void
test_limit (void)
{
  unsigned i;

  init ();
  for (i = 0; i < 10; i++)
    write_block (i, 2, i + 500);
  expect_store ("writeback_limit", "3", 0);
  expect_show ("writeback_limit", "3\n");
  /* Not enabled: no effect. */
  expect_store ("writeback", "page_index=9", 0);
  expect_show ("writeback_limit", "3\n");
  expect_store ("writeback_limit_enable", "7\n", 0);   /* any non-zero */
  expect_show ("writeback_limit_enable", "1\n");
  expect_store ("writeback", "huge", EIO);
  CHECK_EQ (stats ().bd_count, 4);
  expect_show ("writeback_limit", "0\n");
  expect_store ("writeback", "page_index=8", EIO);
  /* Nothing selected: no error even with the limit used up. */
  expect_store ("writeback", "page_index=200", 0);
  expect_store ("writeback_limit_enable", "0", 0);
  expect_store ("writeback", "huge", 0);
  CHECK_EQ (stats ().bd_count, 10);
  check_all ();
  reset ();
}

/* --- Idle by age --- */

static void
test_idle_age (void)
{
  init ();
  write_block (1, 1, 1);
  write_block (2, 3, 2);
  expect_store ("idle", "soon", EINVAL);
  expect_store ("idle", "-5", EINVAL);
  expect_store ("idle", "3600", 0);
  CHECK (strcmp (block_flags (1, NULL), "......") == 0);
  sleep (2);
  write_block (2, 3, 2);
  expect_store ("idle", "1\n", 0);
  CHECK (strcmp (block_flags (1, NULL), "...i..") == 0);
  CHECK (strcmp (block_flags (2, NULL), "s.....") == 0);
  write_block (1, 1, 1);
  CHECK (strcmp (block_flags (1, NULL), "......") == 0);
  expect_store ("idle", "0x0", 0);                     /* 0 (base 0): all */
  CHECK (strcmp (block_flags (1, NULL), "...i..") == 0);
  CHECK (strcmp (block_flags (2, NULL), "s.....") == 0);
  /* A read makes a block young. */
  check_all ();
  CHECK (strcmp (block_flags (1, NULL), "......") == 0);
  reset ();
  expect_store ("idle", "all", EINVAL);
  expect_store ("idle", "10", EINVAL);
}

/* --- Backing I/O errors --- */

static void
test_io_errors (void)
{
  struct rlimit old, small;
  static unsigned char buf[BS];
  unsigned i;

  /* Reads: cut the backing file short under the written-back blocks. */
  init ();
  for (i = 0; i < 20; i++)
    write_block (i, 2, i + 900);
  expect_store ("writeback", "page_indexes=10-19", 0);
  CHECK (truncate (backing, 5 * BS) == 0);      /* blocks 1-4 stay */
  for (i = 0; i < 20; i++) {
    /* Blocks 10-13 are on backing blocks 1-4, the rest are gone. */
    int r = zram_read (zram, buf, BS, (uint64_t) i * BS);

    if (i >= 14) {
      CHECK_EQ (r, -EIO);
      continue;
    }
    CHECK_EQ (r, 0);
    CHECK (memcmp (buf, shadow[i], BS) == 0);
  }
  CHECK_EQ (stats ().bd_read_errors, 6);
  CHECK_EQ (stats ().failed_reads, 6);
  /* An overwrite of a lost block works: the write needs no read. */
  write_block (15, 1, 15);
  CHECK_EQ (zram_read (zram, buf, BS, 15 * BS), 0);
  CHECK (memcmp (buf, shadow[15], BS) == 0);
  reset ();

  /* Writes: RLIMIT_FSIZE lets the backing file hold 8 blocks; writeback
   * of the rest fails, is counted, and those blocks stay in memory.
   */
  init ();
  CHECK (truncate (backing, 0) == 0);
  for (i = 0; i < 20; i++)
    write_block (i, 2, i + 700);
  signal (SIGXFSZ, SIG_IGN);
  CHECK (getrlimit (RLIMIT_FSIZE, &old) == 0);
  small = old;
  small.rlim_cur = 9 * BS;
  CHECK (setrlimit (RLIMIT_FSIZE, &small) == 0);
  expect_store ("writeback", "huge", EIO);
  CHECK (setrlimit (RLIMIT_FSIZE, &old) == 0);
  CHECK_EQ (stats ().bd_writes, 8);
  CHECK_EQ (stats ().bd_count, 8);
  CHECK_EQ (stats ().bd_write_errors, 12);
  CHECK_EQ (stats ().huge_pages, 12);
  check_all ();
  reset ();
}

/* --- The policy, beyond zram --- */

/* Policy rounds pass until policy_recompressed reaches want, then for
 * extra tenths of a second more, reading block 0 meanwhile so that it
 * stays hot; at most 5 s before the extra.
 */
static void
wait_recompressed (uint64_t want, unsigned extra)
{
  static unsigned char buf[BS];
  unsigned i;

  for (i = 0; i < 50 && stats ().policy_recompressed < want; i++) {
    CHECK_EQ (zram_read (zram, buf, BS, 0), 0);
    usleep (100000);
  }
  for (i = 0; i < extra; i++) {
    CHECK_EQ (zram_read (zram, buf, BS, 0), 0);
    usleep (100000);
  }
}

/* recompress_idle: the thread recompresses, with zstd, the blocks not
 * accessed for a second (lzo-rle stores them huge), leaves the one read
 * meanwhile, tries each only once, and is bounded by nothing else: no
 * backing device write, no writeback.
 */
static void
test_policy_recompress (void)
{
  struct zram_stats before;
  unsigned i;

  if (!zcomp_find ("zstd")) {
    fprintf (stderr, "%s: zstd not built, recompress_idle not tested\n",
             __func__);
    return;
  }

  expect_store ("writeback_policy", "recompress_idle=1", 0);
  expect_store ("recomp_algorithm", "algo=zstd", 0);
  init ();
  for (i = 0; i < 20; i++)
    write_block (i, 4, i + 5000);
  write_block (20, 2, 5020);            /* random: zstd can't shrink it */
  write_block (21, 3, 0);               /* same-filled: nothing to do */
  before = stats ();
  CHECK_EQ (before.huge_pages, 21);
  CHECK (strcmp (block_flags (1, NULL), "..h...") == 0);
  expect_show ("writeback_policy", "writeback_idle=0 near_limit=0 recompress_idle=1\n");
  CHECK_EQ (zram_policy_start (zram), 0);
  /* A round more: nothing is tried again. */
  wait_recompressed (19, 12);
  zram_policy_stop (zram);
  CHECK_EQ (stats ().policy_recompressed, 19);
  CHECK_EQ (stats ().huge_pages, 2);    /* block 0, hot; block 20 */
  CHECK (stats ().compr_data_size < before.compr_data_size);
  CHECK_EQ (stats ().bd_count, 0);
  CHECK (strcmp (block_flags (0, NULL), "..h...") == 0);
  CHECK (strcmp (block_flags (1, NULL), "....r.") == 0);
  CHECK (strcmp (block_flags (20, NULL), "..h..n") == 0);
  CHECK (strcmp (block_flags (21, NULL), "s.....") == 0);
  expect_show ("policy_stat", "       0        0       19\n");
  check_all ();

  /* Set at run time, and off: a block rewritten and left idle stays as
   * it is written.
   */
  expect_store ("writeback_policy", "recompress_idle=0", 0);
  write_block (1, 4, 6001);
  CHECK_EQ (zram_policy_start (zram), 0);
  usleep (2500000);
  zram_policy_stop (zram);
  CHECK_EQ (stats ().policy_recompressed, 19);
  CHECK (strcmp (block_flags (1, NULL), "..h...") == 0);

  /* With writeback_idle: recompressed first, then written back. */
  expect_store ("writeback_policy", "recompress_idle=1 writeback_idle=1", 0);
  CHECK_EQ (zram_policy_start (zram), 0);
  for (i = 0; i < 50 && stats ().policy_idle_writes < 21; i++)
    usleep (100000);
  zram_policy_stop (zram);
  /* Blocks 0 (hot no more) and 1 recompressed; all but the same-filled
   * block written back.
   */
  CHECK_EQ (stats ().policy_recompressed, 21);
  CHECK_EQ (stats ().policy_idle_writes, 21);
  CHECK (strcmp (block_flags (1, NULL), ".w....") == 0);
  check_all ();
  expect_store ("writeback_policy", "recompress_idle=0 writeback_idle=0", 0);
  reset ();
}

static void
test_policy (void)
{
  unsigned i;
  int r = 0;

  expect_show ("writeback_policy", "writeback_idle=0 near_limit=0 recompress_idle=0\n");
  expect_store ("writeback_policy", "", EINVAL);
  expect_store ("writeback_policy", "writeback_idle=x", EINVAL);
  expect_store ("writeback_policy", "near_limit=maybe", EINVAL);
  expect_store ("writeback_policy", "near_limit=1 colour=blue", EINVAL);
  expect_store ("writeback_policy", "recompress_idle=-1", EINVAL);
  expect_store ("writeback_policy", "recompress_idle=5 near_limit=2", EINVAL);
  expect_show ("writeback_policy", "writeback_idle=0 near_limit=0 recompress_idle=0\n");
  expect_show ("policy_stat", "       0        0        0\n");

  /* Off: a write past mem_limit is ENOSPC, as in zram. */
  init ();
  expect_store ("mem_limit", "400K", 0);
  for (i = 0; i < 150 && r == 0; i++) {
    make_block (i, 2, i + 3000);
    r = zram_write (zram, shadow[i], BS, (uint64_t) i * BS);
  }
  CHECK_EQ (r, -ENOSPC);
  make_block (i - 1, 0, 0);
  CHECK_EQ (stats ().bd_count, 0);
  reset ();

  /* near_limit: the same writes all go in, by writeback of huge blocks
   * (nothing is idle), and the data stays intact.
   */
  init ();
  expect_store ("mem_limit", "400K", 0);
  expect_store ("writeback_policy", "near_limit=on\n", 0);
  for (i = 0; i < 150; i++)
    write_block (i, 2, i + 3000);
  CHECK (stats ().bd_count > 0);
  CHECK_EQ (stats ().policy_limit_writes, stats ().bd_count);
  CHECK (stats ().mem_used_total <= 400 * 1024);
  check_all ();
  /* writeback_limit bounds it: used up, writes fail again. */
  expect_store ("writeback_limit", "0", 0);
  expect_store ("writeback_limit_enable", "1", 0);
  r = 0;
  for (i = 150; i < 250 && r == 0; i++) {
    make_block (i, 2, i + 3000);
    r = zram_write (zram, shadow[i], BS, (uint64_t) i * BS);
  }
  CHECK_EQ (r, -ENOSPC);
  make_block (i - 1, 0, 0);
  expect_store ("writeback_limit_enable", "0", 0);
  check_all ();
  reset ();

  /* near_limit with nothing idle nor huge: the blocks not accessed for a
   * few seconds go out, the ones just written stay.
   */
  init ();
  expect_store ("mem_limit", "200K", 0);
  expect_store ("writeback_policy", "near_limit=1", 0);
  for (i = 0; i < 70; i++)
    write_block (i, 5, i + 3500);
  CHECK_EQ (stats ().huge_pages, 0);
  sleep (3);
  for (i = 70; i < 130; i++)
    write_block (i, 5, i + 3500);
  CHECK (stats ().bd_count > 0);
  CHECK_EQ (stats ().policy_limit_writes, stats ().bd_count);
  CHECK (strcmp (block_flags (129, NULL), "......") == 0);
  check_all ();
  reset ();

  /* writeback_idle: the thread writes back what has not been accessed
   * for a second, and leaves what is read meanwhile.  recompress_idle,
   * which goes first in a round, does nothing without a recompression
   * algorithm.
   */
  init ();
  for (i = 0; i < 20; i++)
    write_block (i, 1, i + 4000);
  expect_store ("writeback_policy", "writeback_idle=1 near_limit=0 "
            "recompress_idle=1", 0);
  CHECK_EQ (zram_policy_start (zram), 0);
  for (i = 0; i < 50 && stats ().bd_count < 19; i++) {
    static unsigned char buf[BS];

    CHECK_EQ (zram_read (zram, buf, BS, 0), 0);   /* block 0 stays hot */
    usleep (100000);
  }
  zram_policy_stop (zram);
  CHECK_EQ (stats ().bd_count, 19);
  CHECK_EQ (stats ().policy_idle_writes, 19);
  CHECK_EQ (stats ().policy_recompressed, 0);
  CHECK (strcmp (block_flags (0, NULL), "......") == 0);
  CHECK (strcmp (block_flags (1, NULL), ".w....") == 0);
  check_all ();
  expect_store ("writeback_policy", "writeback_idle=0 recompress_idle=0", 0);
  reset ();

  test_policy_recompress ();
}

/* --- Races, for TSan --- */

#define RACE_THREADS 3
#define RACE_PER_THREAD 24
#define RACE_ROUNDS 3000

static bool race_stop;
static unsigned wb_passes;              /* atomic: race_wb's rounds */
/* The I/O threads go on until the policy has recompressed this many. */
static uint64_t race_recompressed;

/* Each thread owns its blocks and keeps their expected contents, so it
 * checks every read while writeback moves them under it.
 */
static void *
race_io (void *arg)
{
  unsigned t = (uintptr_t) arg, first = t * RACE_PER_THREAD;
  uint64_t st = 0x1234567 + t;
  unsigned char *want = calloc (RACE_PER_THREAD, BS), *buf = malloc (BS);
  unsigned k;
  bool waiting = race_recompressed > 0;

  CHECK (buf && want);
  /* At least RACE_ROUNDS, and on until writeback has gone round a few
   * times among them and the policy has recompressed what it should.
   */

  for (k = 0; k < RACE_ROUNDS ||
         __atomic_load_n (&wb_passes, __ATOMIC_RELAXED) < 20 || waiting;
       k++) {
    if (waiting && k % 256 == 0)
      waiting = stats ().policy_recompressed < race_recompressed;
    unsigned j = xorshift64 (&st) % RACE_PER_THREAD;
    uint64_t off = (uint64_t) (first + j) * BS;
    unsigned char *w = want + (size_t) j * BS;
    int op = xorshift64 (&st) % 8;

    if (op < 3) {
      unsigned char *next = buf;
      int r;

      fill_pattern (next, BS, xorshift64 (&st));
      if (op == 0)              /* compressible, not huge */
        memset (next + 64, 0, BS - 64);
      /* Over mem_limit with the backing file full the policy can't make
       * room: ENOSPC, and the block keeps what it had.
       */
      r = zram_write (zram, next, BS, off);
      CHECK (r == 0 || r == -ENOSPC);
      if (r == 0)
        memcpy (w, next, BS);
    }
    else if (op == 3) {
      memset (w, 0, BS);
      CHECK_EQ (zram_discard (zram, BS, off), 0);
    }
    else {
      CHECK_EQ (zram_read (zram, buf, BS, off), 0);
      if (memcmp (buf, w, BS) != 0)
        FAIL ("thread %u: block %u differs", t, first + j);
    }
  }
  free (buf);
  free (want);
  return NULL;
}

static void *
race_wb (void *arg)
{
  (void) arg;
  while (!__atomic_load_n (&race_stop, __ATOMIC_RELAXED)) {
    ssize_t r;

    CHECK_EQ (zram_mark_idle_all (zram), 0);
    /* Without recompress_idle, writeback of all that is idle; with it,
     * only of the I/O threads' blocks (the policy's are left to it),
     * and EAGAIN while the policy recompresses.
     */
    if (race_recompressed == 0) {
      r = store ("writeback", "idle");
      CHECK (r > 0 || r == -ENOSPC);
    }
    r = store ("writeback", "page_indexes=0-71");
    CHECK (r > 0 || r == -ENOSPC || (race_recompressed && r == -EAGAIN));
    zram_compact (zram);
    CHECK (show ("block_state") != NULL);
    CHECK (show ("bd_stat") != NULL);
    __atomic_fetch_add (&wb_passes, 1, __ATOMIC_RELAXED);
    /* Room for the policy's rounds, which a writeback running skips. */
    if (race_recompressed)
      usleep (2000);
  }
  return NULL;
}

/* The policy's thread, race_wb and the I/O threads, until they end. */
static void
run_races (void)
{
  pthread_t io[RACE_THREADS], wb;
  uintptr_t t;

  __atomic_store_n (&race_stop, false, __ATOMIC_RELAXED);
  __atomic_store_n (&wb_passes, 0, __ATOMIC_RELAXED);
  CHECK_EQ (zram_policy_start (zram), 0);
  CHECK (pthread_create (&wb, NULL, race_wb, NULL) == 0);
  for (t = 0; t < RACE_THREADS; t++)
    CHECK (pthread_create (&io[t], NULL, race_io, (void *) t) == 0);
  for (t = 0; t < RACE_THREADS; t++)
    CHECK (pthread_join (io[t], NULL) == 0);
  __atomic_store_n (&race_stop, true, __ATOMIC_RELAXED);
  CHECK (pthread_join (wb, NULL) == 0);
  zram_policy_stop (zram);
}

static void
test_races (void)
{
  init ();
  /* The policy's thread and its reclaim on the write path join in. */
  expect_store ("mem_limit", "128K", 0);
  expect_store ("writeback_policy", "writeback_idle=1 near_limit=1", 0);
  run_races ();
  fprintf (stderr, "races: bd_writes %llu bd_reads %llu policy %llu %llu\n",
           (unsigned long long) stats ().bd_writes,
           (unsigned long long) stats ().bd_reads,
           (unsigned long long) stats ().policy_idle_writes,
           (unsigned long long) stats ().policy_limit_writes);
  /* Writeback really ran among the I/O. */
  CHECK (stats ().bd_writes > 0);
  CHECK (stats ().bd_reads > 0);
  CHECK (stats ().policy_limit_writes > 0);
  expect_store ("writeback_policy", "writeback_idle=0 near_limit=0", 0);
  expect_store ("mem_limit", "0", 0);
  reset ();
}

/* The policy recompresses cold blocks while the I/O threads work on
 * theirs, writeback of those and compaction go on beside, and the cold
 * blocks stay intact.
 */
#define COLD_FIRST 128
#define COLD_BLOCKS 64

static void
test_races_recompress (void)
{
  unsigned i;

  if (!zcomp_find ("zstd")) {
    fprintf (stderr, "%s: zstd not built, recompress_idle not tested\n",
             __func__);
    return;
  }

  expect_store ("recomp_algorithm", "algo=zstd", 0);
  init ();
  for (i = COLD_FIRST; i < COLD_FIRST + COLD_BLOCKS; i++)
    write_block (i, 4, i + 7000);
  race_recompressed = COLD_BLOCKS;
  expect_store ("writeback_policy", "recompress_idle=1", 0);
  run_races ();
  fprintf (stderr, "races: recompressed %llu bd_writes %llu\n",
           (unsigned long long) stats ().policy_recompressed,
           (unsigned long long) stats ().bd_writes);
  /* All the cold blocks (and none of the I/O threads', never idle long),
   * left in memory, recompressed, not huge; idle as race_wb marks them.
   */
  CHECK_EQ (stats ().policy_recompressed, COLD_BLOCKS);
  for (i = COLD_FIRST; i < COLD_FIRST + COLD_BLOCKS; i++) {
    static unsigned char buf[BS];
    const char *f = block_flags (i, NULL);

    if (strcmp (f, "....r.") != 0 && strcmp (f, "...ir.") != 0)
      FAIL ("cold block %u: flags %s", i, f);
    CHECK_EQ (zram_read (zram, buf, BS, (uint64_t) i * BS), 0);
    if (memcmp (buf, shadow[i], BS) != 0)
      FAIL ("cold block %u differs", i);
  }
  expect_store ("writeback_policy", "recompress_idle=0", 0);
  reset ();
}

int
main (void)
{
  int fd = mkstemp (backing);

  CHECK (fd >= 0);
  close (fd);
  zram = zram_create ();
  CHECK (zram);
  test_errors ();
  test_types ();
  test_limit ();
  test_idle_age ();
  test_io_errors ();
  test_policy ();
  test_races ();
  test_races_recompress ();
  zram_destroy (zram);
  unlink (backing);
  printf ("test-writeback: ok\n");
  return 0;
}
