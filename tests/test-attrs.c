/* uzram: unit test of the sysfs attribute table (plugin/attrs.c) against
 * the real engine, without FUSE or nbdkit.
 *
 * Every attribute's show gives zram's exact bytes; every store takes what
 * zram takes (with and without echo's newline) and refuses the rest with
 * EINVAL or EBUSY, changing nothing; show is snprintf-style when the buffer
 * is short.  Then threads write while others show every file, compact and
 * change mem_limit through the table (for the sanitizers).
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
#include <unistd.h>

#include "attrs.h"
#include "comp.h"
#include "engine.h"
#include "testlib.h"
#include "attrlib.h"

#define BS ZRAM_BLOCK_SIZE

static uint64_t
mm_field (int n)
{
  unsigned long long f[9];

  CHECK (sscanf (show ("mm_stat"), "%llu %llu %llu %llu %llu %llu %llu %llu %llu",
                 &f[0], &f[1], &f[2], &f[3], &f[4], &f[5], &f[6], &f[7],
                 &f[8]) == 9);
  return f[n - 1];
}

static void
test_parse_size (void)
{
  static const struct { const char *s; int ok; uint64_t v; } cases[] = {
    { "0", 1, 0 }, { "4096", 1, 4096 }, { "1k", 1, 1024 }, { "1K\n", 1, 1024 },
    { "3M", 1, 3 << 20 }, { "2G", 1, 2ull << 30 }, { "1T", 1, 1ull << 40 },
    { "1p", 1, 1ull << 50 }, { "15E", 1, 15ull << 60 },
    { "18446744073709551615", 1, UINT64_MAX },
    { "18446744073709551616", 0, 0 }, { "16E", 0, 0 }, { "", 0, 0 },
    { "\n", 0, 0 }, { "-1", 0, 0 }, { "+1", 0, 0 }, { "1x", 0, 0 },
    { "1MB", 0, 0 }, { " 1", 0, 0 }, { "1 ", 0, 0 }, { "1\n\n", 0, 0 },
    { "0x10", 0, 0 }, { "K", 0, 0 },
  };
  size_t i;
  uint64_t v;

  for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    int r = zram_parse_size (cases[i].s, strlen (cases[i].s), &v);
    if ((r == 0) != cases[i].ok || (r == 0 && v != cases[i].v)) {
      fprintf (stderr, "FAIL: zram_parse_size \"%s\": %d\n", cases[i].s, r);
      exit (1);
    }
  }
}

static void
test_formats_and_rules (void)
{
  const char *const *algs = zram_comp_algorithms ();
  const char *z8 = "       0";
  char want[512], buf[8];
  size_t at = 0, i;
  ssize_t n;

  expect_show ("disksize", "0\n");
  expect_show ("initstate", "0\n");
  expect_show ("size", "0\n");
  snprintf (want, sizeof want, "%s %s %s %s %s %s %s %s %s\n",
            z8, z8, z8, z8, z8, z8, z8, z8, z8);
  expect_show ("mm_stat", want);
  snprintf (want, sizeof want, "%s %s 0 %s\n", z8, z8, z8);
  expect_show ("io_stat", want);
  snprintf (want, sizeof want, "version: 1\n0 %s\n", z8);
  expect_show ("debug_stat", want);
  for (i = 0; algs[i]; i++)
    at += snprintf (want + at, sizeof want - at,
                    i == 0 ? "[%s] " : "%s ", algs[i]);
  snprintf (want + at, sizeof want - at, "\n");
  expect_show ("comp_algorithm", want);

  /* snprintf-style: a short buffer gets a truncated, terminated text and
   * the length needed.
   */
  n = attr ("mm_stat")->show (zram, buf, sizeof buf);
  CHECK (n == 9 * 9 && strlen (buf) == sizeof buf - 1);
  n = attr ("comp_algorithm")->show (zram, buf, sizeof buf);
  CHECK (n == (ssize_t) strlen (want) && strlen (buf) == sizeof buf - 1);

  /* Before init. */
  expect_store ("disksize", "x", EINVAL);
  expect_store ("disksize", "0", EINVAL);
  expect_store ("disksize", "18446744073709551615", EINVAL);  /* rounds over */
  expect_store ("comp_algorithm", "nosuch", EINVAL);
  expect_store ("comp_algorithm", "lzo\n\n", EINVAL);
  expect_store ("mem_used_max", "1", EINVAL);
  expect_store ("mem_used_max", "0\n", 0);
  expect_store ("reset", "0", EINVAL);
  expect_store ("reset", "65536", EINVAL);
  expect_store ("reset", "1\n", 0);
  expect_store ("idle", "all", EINVAL);
  expect_store ("idle", "some", EINVAL);
  expect_store ("compact", "1", EINVAL);
  expect_store ("mem_limit", "-5", EINVAL);
  expect_store ("mem_limit", "1000", 0);
  CHECK (mm_field (4) == 4096);
  expect_store ("mem_limit", "0\n", 0);
  CHECK (mm_field (4) == 0);
  expect_show ("initstate", "0\n");

  /* Init, then the rules of an initialised device. */
  expect_store ("comp_algorithm", algs[0], 0);
  expect_store ("disksize", "1M\n", 0);
  expect_show ("disksize", "1048576\n");
  expect_show ("initstate", "1\n");
  expect_show ("size", "2048\n");
  expect_store ("disksize", "2M", EBUSY);
  expect_store ("disksize", "junk", EINVAL);
  expect_store ("comp_algorithm", algs[0], EBUSY);
  expect_store ("comp_algorithm", "nosuch", EINVAL);
  expect_store ("idle", "all\n", 0);
  expect_store ("compact", "anything", 0);

  /* A client holds it: reset is EBUSY (after its grace), then works. */
  CHECK (zram_get (zram) == 0);
  expect_store ("reset", "1", EBUSY);
  zram_put (zram);
  expect_store ("reset", "1", 0);
  expect_show ("disksize", "0\n");
}

/* The compressed size of 64 pages of text-like data (words drawn from a
 * small vocabulary) written to a fresh device with algorithm alg and
 * algorithm_params params (NULL: none), and late written after disksize.
 */
static uint64_t
compressed_size (const char *alg, const char *params, const char *late)
{
  static const char *const words[] = {
    "zram ", "page ", "swap ", "compress ", "memory ", "block ", "device ",
    "the ", "of ", "and ", "a ", "to ", "in ", "is ", "object ", "class ",
  };
  char *buf = malloc (64 * BS);
  unsigned seed = 7;
  size_t at = 0;
  uint64_t size;

  CHECK (buf);
  while (at < 64 * BS) {
    const char *w = words[rand_r (&seed) % 16];
    size_t n = strlen (w);
    memcpy (buf + at, w, n < 64 * BS - at ? n : 64 * BS - at);
    at += n;
  }
  expect_store ("comp_algorithm", alg, 0);
  if (params)
    expect_store ("algorithm_params", params, 0);
  expect_store ("disksize", "1M", 0);
  if (late)
    expect_store ("algorithm_params", late, 0);
  CHECK (zram_write (zram, buf, 64 * BS, 0) == 0);
  size = mm_field (2);
  {
    char *back = malloc (64 * BS);

    CHECK (back && zram_read (zram, back, 64 * BS, 0) == 0 &&
           memcmp (back, buf, 64 * BS) == 0);
    free (back);
  }
  expect_store ("reset", "1", 0);
  free (buf);
  return size;
}

static bool
built_in (const char *alg)
{
  const char *const *a;

  for (a = zram_comp_algorithms (); *a; a++)
    if (strcmp (*a, alg) == 0)
      return true;
  return false;
}

/* A dictionary file of the vocabulary compressed_size draws from; its
 * path in dict_path.
 */
static char dict_path[] = "/tmp/test-attrs-dict.XXXXXX";
static size_t dict_len;

static void
make_dict (void)
{
  static const char text[] =
    "zram page swap compress memory block device the of and a to in is "
    "object class zram compress page memory swap device block the a of ";
  int fd = mkstemp (dict_path);
  int i;

  CHECK (fd >= 0);
  for (i = 0; i < 16; i++)
    CHECK (write (fd, text, sizeof text - 1) == (ssize_t) sizeof text - 1);
  dict_len = 16 * (sizeof text - 1);
  close (fd);
}

static void
test_algorithm_params (void)
{
  char cmd[256];
  const char *cur = zram_comp_algorithm (zram);

  /* zram's syntax: name=value pairs, every one checked first. */
  expect_store ("algorithm_params", "level=3", 0);
  expect_store ("algorithm_params", "level=-3\n", 0);
  expect_store ("algorithm_params", "priority=0 level=+3", 0);
  expect_store ("algorithm_params", " level=1\tpriority=0 \n", 0);
  snprintf (cmd, sizeof cmd, "algo=%s level=2", cur);
  expect_store ("algorithm_params", cmd, 0);
  expect_store ("algorithm_params", "\n", 0);
  expect_store ("algorithm_params", "level", EINVAL);
  expect_store ("algorithm_params", "level=", EINVAL);
  expect_store ("algorithm_params", "level=x", EINVAL);
  expect_store ("algorithm_params", "level=3x", EINVAL);
  expect_store ("algorithm_params", "level=--3", EINVAL);
  expect_store ("algorithm_params", "level=2147483648", ERANGE);
  expect_store ("algorithm_params", "level=-2147483649", ERANGE);
  expect_store ("algorithm_params", "level=99999999999999999999", ERANGE);
  /* Priorities 0 to 3, as zram with recompression; algo= must name an
   * algorithm of some priority (only the primary has one yet).
   */
  expect_store ("algorithm_params", "priority=1 level=3", 0);
  expect_store ("algorithm_params", "priority=3 level=7 deflate.winbits=12", 0);
  CHECK (zram_comp_params (zram, 1)->level == 3);
  CHECK (zram_comp_params (zram, 3)->level == 7);
  CHECK (zram_comp_params (zram, 3)->deflate_winbits == 12);
  expect_store ("algorithm_params", "priority=4 level=3", EINVAL);
  expect_store ("algorithm_params", "priority=-1 level=3", EINVAL);
  expect_store ("algorithm_params", "priority=x level=3", EINVAL);
  expect_store ("algorithm_params", "algo=nosuch level=3", EINVAL);
  expect_store ("algorithm_params", "algo=nosuch priority=1", EINVAL);
  if (built_in ("zstd"))
    expect_store ("algorithm_params", "algo=zstd level=3", EINVAL);
  /* A failed write leaves what was stored. */
  CHECK (zram_comp_params (zram, 1)->level == 3);
  /* A write replaces the priority's parameters: none left clears them. */
  expect_store ("algorithm_params", "priority=1", 0);
  CHECK (zram_comp_params (zram, 1)->level == ZCOMP_PARAM_NOT_SET);
  /* dict= reads the file at once: one that cannot be read is EINVAL. */
  expect_store ("algorithm_params", "dict=/nonexistent/dict", EINVAL);
  expect_store ("algorithm_params", "dict=/", EINVAL);
  snprintf (cmd, sizeof cmd, "priority=2 dict=%s", dict_path);
  expect_store ("algorithm_params", cmd, 0);
  CHECK (zram_comp_params (zram, 2)->dict_len == dict_len);
  /* deflate.winbits: zlib's windowBits, raw (negative) or zlib. */
  expect_store ("algorithm_params", "deflate.winbits=-15", 0);
  expect_store ("algorithm_params", "deflate.winbits=9", 0);
  expect_store ("algorithm_params", "deflate.winbits=0", EINVAL);
  expect_store ("algorithm_params", "deflate.winbits=16", EINVAL);
  expect_store ("algorithm_params", "deflate.winbits=-8", EINVAL);
  expect_store ("algorithm_params", "deflate.winbits=x", EINVAL);
  /* What zram ignores. */
  expect_store ("algorithm_params", "nosuch=1", EINVAL);
  expect_store ("algorithm_params", "level=3 nosuch=1", EINVAL);
  /* reset clears every priority's parameters. */
  expect_store ("reset", "1", 0);
  CHECK (zram_comp_params (zram, 2)->dict == NULL);
  CHECK (zram_comp_params (zram, 0)->level == ZCOMP_PARAM_NOT_SET);

  /* Once initialised, as Linux 6.18: taken, changing nothing (below);
   * garbage and another algorithm are still EINVAL.
   */
  expect_store ("disksize", "1M", 0);
  expect_store ("algorithm_params", "level=3", 0);
  expect_store ("algorithm_params", "level=x", EINVAL);
  expect_store ("algorithm_params", "algo=nosuch level=3", EINVAL);
  expect_store ("reset", "1", 0);

  /* The level reaches the compressor: zstd's and lz4's sizes follow it;
   * no level, a level written once initialised, and reset give the
   * default; comp_algorithm keeps it.
   */
  if (built_in ("zstd")) {
    uint64_t dflt = compressed_size ("zstd", NULL, NULL);
    uint64_t fast = compressed_size ("zstd", "level=-50", NULL);
    uint64_t again = compressed_size ("zstd", NULL, NULL);   /* after reset */
    uint64_t best = compressed_size ("zstd", "algo=zstd level=19", NULL);

    CHECK (dflt > 0 && best < dflt && dflt < fast && again == dflt);
    CHECK (compressed_size ("zstd", "level=3", NULL) == dflt);   /* zram's */
    CHECK (compressed_size ("zstd", "level=1", NULL) > dflt);
    CHECK (compressed_size ("zstd", NULL, "level=19") == dflt);
    CHECK (compressed_size ("zstd", NULL, NULL) == dflt);
    expect_store ("algorithm_params", "level=19", 0);
    CHECK (compressed_size ("zstd", NULL, NULL) == best); /* lzo, then zstd */
    /* A dictionary of the same words: smaller, and read back whole. */
    snprintf (cmd, sizeof cmd, "dict=%s", dict_path);
    CHECK (compressed_size ("zstd", cmd, NULL) < dflt);
  }
  if (built_in ("lz4")) {
    uint64_t dflt = compressed_size ("lz4", NULL, NULL);

    CHECK (compressed_size ("lz4", "level=65537", NULL) > dflt);
    CHECK (compressed_size ("lz4", "level=0", NULL) == dflt);  /* <1 is 1 */
    snprintf (cmd, sizeof cmd, "dict=%s", dict_path);
    CHECK (compressed_size ("lz4", cmd, NULL) < dflt);
    /* lz4hc: smaller than lz4; its level counts (1 is its weakest). */
    CHECK (compressed_size ("lz4hc", NULL, NULL) < dflt);
    CHECK (compressed_size ("lz4hc", "level=1", NULL) >
           compressed_size ("lz4hc", "level=12", NULL));
    CHECK (compressed_size ("lz4hc", cmd, NULL) <
           compressed_size ("lz4hc", NULL, NULL));
  }
  if (built_in ("deflate")) {
    uint64_t dflt = compressed_size ("deflate", NULL, NULL);

    /* A zlib stream is the raw one plus 2 bytes of header and 4 of
     * Adler-32, on each of the 64 pages.
     */
    CHECK (compressed_size ("deflate", "deflate.winbits=11", NULL) ==
           dflt + 64 * 6);
    CHECK (compressed_size ("deflate", "level=1", NULL) > dflt);
  }
  /* lzo and lzo-rle have no level and no dictionary. */
  CHECK (compressed_size ("lzo", "level=9", NULL) ==
         compressed_size ("lzo", NULL, NULL));
  snprintf (cmd, sizeof cmd, "level=9 dict=%s", dict_path);
  CHECK (compressed_size ("lzo-rle", cmd, NULL) ==
         compressed_size ("lzo-rle", NULL, NULL));
  unlink (dict_path);
}

/* --- threads: I/O against the table's show and store --- */

static atomic_bool stop;

static void *
writer (void *arg)
{
  unsigned seed = (uintptr_t) arg;
  char *buf = malloc (BS * 4);
  unsigned i;

  CHECK (buf);
  while (!stop) {
    uint64_t blk = rand_r (&seed) % 1000;
    for (i = 0; i < BS * 4; i++)
      buf[i] = (i % 64) < seed % 32 ? (char) rand_r (&seed) : 'z';
    CHECK (zram_write (zram, buf, BS * 4, blk * BS) == 0);
    if (blk % 7 == 0)
      zram_discard (zram, BS * 2, blk * BS);
  }
  free (buf);
  return NULL;
}

static void *
shower (void *arg)
{
  char *buf = malloc (65536);
  size_t i;

  (void) arg;
  CHECK (buf);
  while (!stop)
    for (i = 0; i < zram_nr_attrs; i++)
      if (zram_attrs[i].show) {
        ssize_t n = zram_attrs[i].show (zram, buf, 65536);

        /* recomp_algorithm is empty while no priority has an algorithm,
         * block_state while no block is stored, ublk_dev while there is
         * no block device (an engine outside devices.h has none). */
        CHECK (n > 0 ||
               (n == 0 && (strcmp (zram_attrs[i].name, "recomp_algorithm") == 0 ||
                           strcmp (zram_attrs[i].name, "block_state") == 0 ||
                           strcmp (zram_attrs[i].name, "ublk_dev") == 0)));
      }
  free (buf);
  return NULL;
}

static void *
storer (void *arg)
{
  (void) arg;
  while (!stop) {
    CHECK (store ("compact", "1") == 1);
    CHECK (store ("mem_limit", "64M") == 3);
    CHECK (store ("mem_used_max", "0") == 1);
    CHECK (store ("idle", "all") == 3);
    CHECK (store ("disksize", "1M") == -EBUSY);
    CHECK (store ("algorithm_params", "level=1") == 7);
    CHECK (store ("mem_limit", "0") == 1);
  }
  return NULL;
}

static void
test_threads (void)
{
  pthread_t w[2], s, t;
  int i;

  CHECK (store ("disksize", "8M") == 2);
  CHECK (zram_get (zram) == 0);
  for (i = 0; i < 2; i++)
    CHECK (pthread_create (&w[i], NULL, writer, (void *) (uintptr_t) (i + 1)) == 0);
  CHECK (pthread_create (&s, NULL, shower, NULL) == 0);
  CHECK (pthread_create (&t, NULL, storer, NULL) == 0);
  sleep (2);
  stop = true;
  for (i = 0; i < 2; i++)
    pthread_join (w[i], NULL);
  pthread_join (s, NULL);
  pthread_join (t, NULL);
  zram_put (zram);
  CHECK (mm_field (1) > 0);
  CHECK (store ("reset", "1") == 1);
}

int
main (void)
{
  zram = zram_create ();
  CHECK (zram);
  test_parse_size ();
  test_formats_and_rules ();
  make_dict ();
  test_algorithm_params ();
  test_threads ();
  zram_destroy (zram);
  printf ("PASS: test-attrs\n");
  return 0;
}
