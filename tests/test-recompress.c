/* uzram: unit test of recompression (plugin/recompress.c) through zram's
 * attribute files (recomp_algorithm, recompress) on the real engine,
 * allocator and compressors, without FUSE or nbdkit.
 *
 * The listing and every error of both files; idle pages recompressed from
 * lzo to zstd shrinking compr_data_size and, after compaction,
 * mem_used_total, with every byte intact and each block read with the
 * algorithm that wrote it; threshold= and max_pages= honoured; huge pages
 * recompressed once they fit; pages no algorithm shrinks marked
 * incompressible and not tried again; one recompress at a time (EAGAIN);
 * then recompression racing with writes, reads, trims, idle marking and
 * compaction (for TSan and ASan).
 */
#include <config.h>

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attrs.h"
#include "comp.h"
#include "engine.h"
#define TESTLIB_SEED 0x13198a2e03707344
#include "testlib.h"
#include "attrlib.h"

#define BS ZRAM_BLOCK_SIZE

static struct zram_test_slot
slot (uint64_t index)
{
  struct zram_test_slot s;

  CHECK (zram_test_slot (zram, index, &s) == 0);
  return s;
}

/* Pages of three kinds, each a function of its seed:
 *   text   words with spaces: lzo shrinks it, zstd more
 *   nibble random bytes of 16 values: 4 bits a byte that only entropy
 *          coding finds, so lzo stores it huge and zstd about halves it
 *   random no algorithm shrinks it
 */
enum kind { TEXT, NIBBLE, RANDOM };

static void
make_page (unsigned char *p, enum kind kind, uint64_t seed)
{
  static const char *words[] = {
    "static", "int", "return", "struct", "zram", "slot", "handle", "page",
    "if", "else", "for", "while", "(void)", "{", "}", ";", "size", "count",
    "recompress", "priority", "threshold", "idle", "huge", "zstd",
  };
  uint64_t st = seed * 2 + 1;
  size_t i = 0;

  switch (kind) {
  case TEXT:
    /* A few random bytes per page make the sizes differ from page to page. */
    while (i < BS) {
      const char *w = words[xorshift64 (&st) % 24];
      size_t l = strlen (w);

      if (i + l + 1 > BS) {
        memset (p + i, ' ', BS - i);
        break;
      }
      memcpy (p + i, w, l);
      i += l;
      p[i++] = xorshift64 (&st) % (8 + seed % 64) ? ' ' : xorshift64 (&st);
    }
    break;
  case NIBBLE:
    for (i = 0; i < BS; i++)
      p[i] = "abcdefghijklmnop"[xorshift64 (&st) & 15];
    break;
  case RANDOM:
    for (i = 0; i < BS; i += 8) {
      uint64_t w = xorshift64 (&st);
      memcpy (p + i, &w, 8);
    }
    break;
  }
}

static void
write_page (uint64_t index, enum kind kind, uint64_t seed)
{
  unsigned char p[BS];

  make_page (p, kind, seed);
  CHECK_EQ (zram_write (zram, p, BS, index * BS), 0);
}

static void
check_page (uint64_t index, enum kind kind, uint64_t seed)
{
  unsigned char want[BS], got[BS];

  make_page (want, kind, seed);
  CHECK_EQ (zram_read (zram, got, BS, index * BS), 0);
  if (memcmp (want, got, BS) != 0)
    FAIL ("block %llu differs", (unsigned long long) index);
}

/* A fresh device of size bytes: lzo, zstd at priority 1, and lz4 at 2 if
 * second.
 */
static void
fresh (const char *size, bool second)
{
  int r = zram_reset (zram);

  CHECK_EQ (r, 0);
  expect_store ("comp_algorithm", "lzo", 0);
  expect_store ("recomp_algorithm", "algo=zstd", 0);
  if (second)
    expect_store ("recomp_algorithm", "algo=lz4 priority=2", 0);
  expect_store ("disksize", size, 0);
}

/* "#N: " and comp_algorithm's list with cur in brackets. */
static void
listing_line (char *buf, size_t len, int prio, const char *cur)
{
  const char *const *names = zram_comp_algorithms ();
  size_t at = snprintf (buf, len, "#%d: ", prio);
  size_t i;

  for (i = 0; names[i]; i++)
    at += snprintf (buf + at, len - at,
                    strcmp (names[i], cur) == 0 ? "[%s] " : "%s ", names[i]);
  snprintf (buf + at, len - at, "\n");
}

static void
test_listing_and_errors (void)
{
  char want[2048], l1[512], l2[512], l3[512], name[200];

  CHECK_EQ (zram_reset (zram), 0);
  expect_show ("recomp_algorithm", "");

  /* recompress on an uninitialised device: EINVAL. */
  expect_store ("recompress", "type=idle", EINVAL);

  /* recomp_algorithm's errors, nothing changed by any. */
  expect_store ("recomp_algorithm", "", EINVAL);              /* no algo= */
  expect_store ("recomp_algorithm", "priority=2", EINVAL);
  expect_store ("recomp_algorithm", "algo", EINVAL);
  expect_store ("recomp_algorithm", "algo=", EINVAL);
  expect_store ("recomp_algorithm", "algo=zstd priority=0", EINVAL);
  expect_store ("recomp_algorithm", "algo=zstd priority=4", EINVAL);
  expect_store ("recomp_algorithm", "algo=zstd priority=-1", EINVAL);
  expect_store ("recomp_algorithm", "algo=zstd priority=x", EINVAL);
  expect_store ("recomp_algorithm", "algo=zstd priority=99999999999", ERANGE);
  expect_store ("recomp_algorithm", "algo=nosuch", EINVAL);
  expect_store ("recomp_algorithm", "algo=zstd colour=red", EINVAL);
  memset (name, 'z', 150);
  strcpy (name, "algo=");
  memset (name + 5, 'z', 150);
  name[155] = '\0';
  expect_store ("recomp_algorithm", name, E2BIG);
  expect_show ("recomp_algorithm", "");

  /* The listing: one line per priority set, in priority order. */
  expect_store ("recomp_algorithm", "algo=lz4 priority=3\n", 0);
  expect_store ("recomp_algorithm", "priority=1 algo=zstd", 0);
  listing_line (l1, sizeof l1, 1, "zstd");
  listing_line (l3, sizeof l3, 3, "lz4");
  snprintf (want, sizeof want, "%s%s", l1, l3);
  expect_show ("recomp_algorithm", want);
  expect_store ("recomp_algorithm", "algo=deflate priority=2", 0);
  listing_line (l2, sizeof l2, 2, "deflate");
  snprintf (want, sizeof want, "%s%s%s", l1, l2, l3);
  expect_show ("recomp_algorithm", want);
  /* Setting a priority again replaces it. */
  expect_store ("recomp_algorithm", "algo=lz4hc priority=2", 0);
  listing_line (l2, sizeof l2, 2, "lz4hc");
  snprintf (want, sizeof want, "%s%s%s", l1, l2, l3);
  expect_show ("recomp_algorithm", want);
  /* algorithm_params' algo= finds a recompression algorithm now. */
  expect_store ("algorithm_params", "algo=lz4hc level=9", 0);
  expect_store ("algorithm_params", "algo=nosuch level=9", EINVAL);

  /* recompress's parse errors, before the device's. */
  expect_store ("disksize", "1M", 0);
  expect_store ("recomp_algorithm", "algo=zstd", EBUSY);
  expect_show ("recomp_algorithm", want);
  expect_store ("recompress", "type", EINVAL);
  expect_store ("recompress", "type=", EINVAL);
  expect_store ("recompress", "type=cold", EINVAL);
  expect_store ("recompress", "max_pages=-1", EINVAL);
  expect_store ("recompress", "max_pages=x", EINVAL);
  expect_store ("recompress", "max_pages=99999999999999999999999", ERANGE);
  expect_store ("recompress", "threshold=4294967296", ERANGE);
  expect_store ("recompress", "priority=4294967296", ERANGE);
  expect_store ("recompress", "threshold=-5", EINVAL);
  expect_store ("recompress", "colour=red", EINVAL);
  /* ... and the device's: a threshold not below the huge class size, an
   * algorithm not set, a priority with none.
   */
  expect_store ("recompress", "threshold=4096", EINVAL);
  expect_store ("recompress", "type=huge threshold=4095", EINVAL);
  expect_store ("recompress", "algo=lzo", EINVAL);
  expect_store ("recompress", "algo=zstd priority=2", EINVAL);
  expect_store ("recompress", "priority=4", EINVAL);
  expect_store ("recompress", "priority=99", EINVAL);
  /* The good ones, on an empty device. */
  expect_store ("recompress", "", 0);
  expect_store ("recompress", "type=idle\n", 0);
  expect_store ("recompress", "type=huge_idle max_pages=0 threshold=100", 0);
  expect_store ("recompress", "algo=zstd", 0);
  expect_store ("recompress", "algo=lz4", 0);
  expect_store ("recompress", "priority=0", 0);
  expect_store ("recompress", "priority=3", 0);

  /* reset clears the recompression algorithms: then no priority has one. */
  CHECK_EQ (zram_reset (zram), 0);
  expect_show ("recomp_algorithm", "");
  expect_store ("disksize", "1M", 0);
  expect_store ("recompress", "type=idle", EINVAL);
  expect_store ("recompress", "priority=1", EINVAL);
  printf ("listing and errors: ok\n");
}

#define N_IDLE 2048

/* Idle pages from lzo to zstd: smaller, intact, read with zstd. */
static void
test_idle (void)
{
  struct zram_stats before, after, compacted;

  setvbuf (stdout, NULL, _IOLBF, 0);
  uint64_t i;
  unsigned recompressed = 0;

  fresh ("16M", false);
  /* text pages, some nibble pages (huge under lzo), same-filled pages. */
  for (i = 0; i < N_IDLE; i++)
    if (i % 16 == 5)
      write_page (i, NIBBLE, i);
    else if (i % 16 == 9) {
      unsigned char z[BS];
      memset (z, 0, BS);
      CHECK_EQ (zram_write (zram, z, BS, i * BS), 0);
    }
    else
      write_page (i, TEXT, i);
  expect_store ("idle", "all", 0);
  /* The first 32 blocks are rewritten after marking: not idle. */
  for (i = 0; i < 32; i++)
    if (i % 16 != 9)
      write_page (i, i % 16 == 5 ? NIBBLE : TEXT, i + 100000);
  before = stats ();
  CHECK (before.huge_pages == N_IDLE / 16);

  expect_store ("recompress", "type=idle", 0);
  after = stats ();
  for (i = 0; i < N_IDLE; i++) {
    struct zram_test_slot s = slot (i);

    if (i % 16 == 9)
      CHECK_EQ (s.size, 0);
    else if (i < 32) {
      CHECK_EQ (s.prio, 0);
      check_page (i, i % 16 == 5 ? NIBBLE : TEXT, i + 100000);
    }
    else {
      CHECK_EQ (s.prio, 1);
      CHECK (!s.idle && !s.huge);
      recompressed++;
      check_page (i, i % 16 == 5 ? NIBBLE : TEXT, i);
    }
  }
  CHECK (after.compr_data_size < before.compr_data_size);
  CHECK_EQ (after.huge_pages, 2);       /* the two in the first 32 */
  CHECK_EQ (after.pages_stored, before.pages_stored);
  CHECK_EQ (after.same_pages, before.same_pages);
  zram_compact (zram);
  compacted = stats ();
  CHECK (compacted.mem_used_total < before.mem_used_total);
  printf ("idle lzo -> zstd: %u blocks, compr_data_size %llu -> %llu, "
          "mem_used_total %llu -> %llu (compacted)\n", recompressed,
          (unsigned long long) before.compr_data_size,
          (unsigned long long) after.compr_data_size,
          (unsigned long long) before.mem_used_total,
          (unsigned long long) compacted.mem_used_total);

  /* Blocks already at the last priority are not tried again; the first
   * 32, idle now, are recompressed.
   */
  expect_store ("idle", "all", 0);
  expect_store ("recompress", "type=idle", 0);
  {
    uint64_t below32 = 0;

    for (i = 0; i < N_IDLE; i++) {
      struct zram_test_slot s = slot (i);

      if (i % 16 == 9)
        continue;
      CHECK_EQ (s.prio, 1);
      if (i >= 32)
        CHECK (s.idle);           /* not touched by the second run */
      else
        below32 += s.size;
    }
    CHECK (stats ().compr_data_size < after.compr_data_size);
    (void) below32;
  }
  /* A rewrite goes back to the primary algorithm. */
  write_page (40, TEXT, 7);
  CHECK_EQ (slot (40).prio, 0);
  check_page (40, TEXT, 7);
}

#define N_SIZED 512

static void
test_threshold_and_max_pages (void)
{
  uint32_t lzo_size[N_SIZED], min_done = UINT32_MAX, max_left = 0;
  uint32_t threshold;
  uint64_t i;
  unsigned below = 0, done = 0, sorted[N_SIZED];
  char cmd[64];

  /* threshold: only objects at least that big are tried, and kept only if
   * the new one is below it.
   */
  fresh ("4M", false);
  for (i = 0; i < N_SIZED; i++) {
    write_page (i, TEXT, i);
    lzo_size[i] = sorted[i] = slot (i).size;
  }
  /* The median lzo size. */
  for (i = 1; i < N_SIZED; i++) {
    unsigned v = sorted[i];
    uint64_t j = i;
    while (j > 0 && sorted[j - 1] > v) {
      sorted[j] = sorted[j - 1];
      j--;
    }
    sorted[j] = v;
  }
  threshold = sorted[N_SIZED / 2];
  snprintf (cmd, sizeof cmd, "threshold=%u", threshold);
  expect_store ("recompress", cmd, 0);
  for (i = 0; i < N_SIZED; i++) {
    struct zram_test_slot s = slot (i);

    if (lzo_size[i] < threshold)
      CHECK_EQ (s.prio, 0);
    if (s.prio == 1) {
      CHECK (s.size < threshold);
      done++;
    }
    below += lzo_size[i] < threshold;
    check_page (i, TEXT, i);
  }
  CHECK (done > 0 && done <= N_SIZED - below);
  printf ("threshold=%u: %u of %u blocks at or above it recompressed\n",
          threshold, done, N_SIZED - below);

  /* max_pages: exactly that many tried, the largest first. */
  fresh ("4M", false);
  for (i = 0; i < N_SIZED; i++) {
    write_page (i, TEXT, i);
    lzo_size[i] = slot (i).size;
  }
  expect_store ("recompress", "max_pages=100", 0);
  done = 0;
  for (i = 0; i < N_SIZED; i++) {
    struct zram_test_slot s = slot (i);

    if (s.prio == 1) {
      done++;
      if (lzo_size[i] < min_done)
        min_done = lzo_size[i];
    }
    else if (lzo_size[i] > max_left)
      max_left = lzo_size[i];
  }
  CHECK_EQ (done, 100);
  /* Taken by size in 64-byte buckets, as zram does. */
  CHECK (min_done / 64 >= max_left / 64);
  expect_store ("recompress", "max_pages=0", 0);
  for (i = 0, done = 0; i < N_SIZED; i++)
    done += slot (i).prio == 1;
  CHECK_EQ (done, 100);
  for (i = 0; i < N_SIZED; i++)
    check_page (i, TEXT, i);
  printf ("max_pages=100: 100 recompressed, the largest\n");
}

static void
test_huge_and_incompressible (void)
{
  struct zram_stats st;
  uint64_t i;

  /* Huge pages are recompressed when they now fit; others are left. */
  fresh ("4M", false);
  for (i = 0; i < 64; i++)
    write_page (i, i % 2 ? NIBBLE : TEXT, i);
  CHECK_EQ (stats ().huge_pages, 32);
  expect_store ("recompress", "type=huge", 0);
  st = stats ();
  CHECK_EQ (st.huge_pages, 0);
  for (i = 0; i < 64; i++) {
    struct zram_test_slot s = slot (i);

    CHECK_EQ (s.prio, i % 2 ? 1 : 0);
    CHECK (!s.huge && !s.incompressible);
    if (i % 2)
      CHECK (s.size < 3500);
    check_page (i, i % 2 ? NIBBLE : TEXT, i);
  }

  /* Random pages: huge, and no algorithm shrinks them, so they are
   * marked incompressible...
   */
  fresh ("4M", true);
  for (i = 1; i <= 64; i++)
    write_page (i, RANDOM, i);
  expect_store ("recompress", "type=huge", 0);
  for (i = 1; i <= 64; i++) {
    struct zram_test_slot s = slot (i);

    CHECK (s.huge && s.incompressible);
    CHECK_EQ (s.prio, 0);
    check_page (i, RANDOM, i);
  }
  CHECK_EQ (stats ().huge_pages, 64);
  /* ... and not tried again: they are as big as block 0, a nibble page
   * now, and after it in the order taken (the last index first), so with
   * max_pages=1 one of them would take the one try if they were retried.
   */
  write_page (0, NIBBLE, 0);
  expect_store ("recompress", "type=huge max_pages=1", 0);
  CHECK_EQ (slot (0).prio, 1);
  CHECK_EQ (stats ().huge_pages, 64);
  check_page (0, NIBBLE, 0);
  /* Only the last priority's failure marks it: with priority=1 alone (lz4
   * is 2) nothing is marked.
   */
  write_page (70, RANDOM, 70);
  expect_store ("recompress", "type=huge priority=1", 0);
  CHECK (!slot (70).incompressible);
  expect_store ("recompress", "type=huge algo=lz4", 0);
  CHECK (slot (70).incompressible);
  /* A rewrite clears the mark. */
  write_page (1, RANDOM, 1000);
  CHECK (!slot (1).incompressible && slot (1).huge);
  printf ("huge recompressed when they fit; incompressible not retried\n");
}

/* --- one at a time --- */

static atomic_int busy_done;
static atomic_int eagain;

static void *
busy_recompress (void *arg)
{
  (void) arg;
  if (store ("recompress", "") == -EAGAIN)
    eagain++;
  busy_done = 1;
  return NULL;
}

static void
test_eagain (void)
{
  pthread_t t;
  uint64_t i;
  ssize_t r;

  fresh ("16M", true);
  for (i = 0; i < 4096; i++)
    write_page (i, TEXT, i);
  busy_done = 0;
  eagain = 0;
  CHECK_EQ (pthread_create (&t, NULL, busy_recompress, NULL), 0);
  while (!busy_done) {
    r = store ("recompress", "");
    CHECK (r == 0 || r == -EAGAIN);
    if (r == -EAGAIN)
      eagain++;
  }
  pthread_join (t, NULL);
  CHECK (eagain > 0);
  for (i = 0; i < 4096; i++)
    check_page (i, TEXT, i);
  printf ("concurrent recompress: EAGAIN %d times\n", (int) eagain);
}

/* --- races --- */

#define RACE_BLOCKS 512
#define RACE_ROUNDS 3000

/* Each block's current seed; blocks are owned by one I/O thread each
 * (index % 2), so the shadow needs no lock.  0: trimmed.
 */
static uint64_t shadow[RACE_BLOCKS];
static atomic_int io_left;

static enum kind
kind_of (uint64_t seed)
{
  return seed % 5 == 0 ? NIBBLE : seed % 11 == 0 ? RANDOM : TEXT;
}

static void *
io_thread (void *arg)
{
  uint64_t st = (uintptr_t) arg * 7919 + 1, me = (uintptr_t) arg;
  unsigned char zero[BS], got[BS], want[BS];
  unsigned n;

  memset (zero, 0, BS);
  for (n = 0; n < RACE_ROUNDS; n++) {
    uint64_t i = (xorshift64 (&st) % (RACE_BLOCKS / 2)) * 2 + me;
    unsigned op = xorshift64 (&st) % 8;

    if (op < 3) {
      uint64_t seed = xorshift64 (&st) | 1;

      write_page (i, kind_of (seed), seed);
      shadow[i] = seed;
    }
    else if (op == 3) {
      CHECK_EQ (zram_discard (zram, BS, i * BS), 0);
      shadow[i] = 0;
    }
    else {
      CHECK_EQ (zram_read (zram, got, BS, i * BS), 0);
      if (shadow[i])
        make_page (want, kind_of (shadow[i]), shadow[i]);
      if (memcmp (got, shadow[i] ? want : zero, BS) != 0)
        FAIL ("block %llu differs under recompression",
              (unsigned long long) i);
    }
  }
  io_left--;
  return NULL;
}

static void *
admin_thread (void *arg)
{
  unsigned n = 0;
  ssize_t r;

  (void) arg;
  while (io_left > 0) {
    switch (n++ % 5) {
    case 0: r = store ("idle", "all"); break;
    case 1: r = store ("recompress", "type=idle"); break;
    case 2: r = store ("recompress", "type=huge max_pages=20"); break;
    case 3: zram_compact (zram); r = 0; break;
    default: r = store ("recompress", "threshold=1000 algo=lz4"); break;
    }
    CHECK (r >= 0 || r == -EAGAIN);
  }
  return NULL;
}

static void
test_races (void)
{
  pthread_t io[2], admin[2];
  struct zram_stats st;
  uint64_t i;
  unsigned char zero[BS];

  fresh ("4M", true);
  memset (shadow, 0, sizeof shadow);
  io_left = 2;
  for (i = 0; i < 2; i++)
    CHECK_EQ (pthread_create (&io[i], NULL, io_thread, (void *) (uintptr_t) i),
              0);
  for (i = 0; i < 2; i++)
    CHECK_EQ (pthread_create (&admin[i], NULL, admin_thread, NULL), 0);
  for (i = 0; i < 2; i++)
    pthread_join (io[i], NULL);
  for (i = 0; i < 2; i++)
    pthread_join (admin[i], NULL);
  memset (zero, 0, BS);
  for (i = 0; i < RACE_BLOCKS; i++)
    if (shadow[i])
      check_page (i, kind_of (shadow[i]), shadow[i]);
  /* The counters agree with what the slots hold. */
  st = stats ();
  {
    uint64_t stored = 0, bytes = 0, huge = 0;

    for (i = 0; i < RACE_BLOCKS; i++) {
      struct zram_test_slot s = slot (i);

      if (s.size) {
        stored++;
        bytes += s.size;
        huge += s.huge;
      }
    }
    CHECK_EQ (st.pages_stored, stored);
    CHECK_EQ (st.compr_data_size, bytes);
    CHECK_EQ (st.huge_pages, huge);
  }
  printf ("races: 2 I/O threads, recompress, idle and compact: ok\n");
}

int
main (void)
{
  if (!zcomp_find ("lzo") || !zcomp_find ("zstd") || !zcomp_find ("lz4") ||
      !zcomp_find ("lz4hc") || !zcomp_find ("deflate")) {
    printf ("SKIP: lzo, lz4, lz4hc, zstd and deflate are not all built\n");
    return 77;
  }
  zram = zram_create ();
  CHECK (zram != NULL);
  test_listing_and_errors ();
  test_idle ();
  test_threshold_and_max_pages ();
  test_huge_and_incompressible ();
  test_eagain ();
  test_races ();
  CHECK_EQ (zram_reset (zram), 0);
  zram_destroy (zram);
  return 0;
}
