/* uzram: unit test of libzsmalloc.
 *
 * Edge sizes, objects spanning pages in the three map modes, handles and
 * contents through zs_compact, a mapped object pinned through it, a page
 * source that runs dry, memory going back to the system after a mass free
 * and after a free of every other object and compaction (also under
 * mlockall, as nbdkit runs with mlock=true), the built-in page source
 * unmapping chunks that empty together, the per-class statistics, and
 * the reserve for swap faulted in off the allocating thread.
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
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <linux/audit.h>
#include <sys/wait.h>
#include <unistd.h>

#include "zsmalloc.h"
#define TESTLIB_SEED 88172645463325252UL
#include "testlib.h"
#include "pagesrc.h"

#define PAGE 4096

static void
fill (struct zs_pool *pool, unsigned long h, size_t size, unsigned long seed)
{
  fill_pattern (zs_map_object (pool, h, ZS_MM_WO), size, seed);
  zs_unmap_object (pool, h);
}

/* N objects of SIZE bytes into H[], object i filled with seed i. */
static void
fill_objects (struct zs_pool *pool, unsigned long *h, int n, size_t size)
{
  int i;

  for (i = 0; i < n; i++) {
    h[i] = zs_malloc (pool, size);
    assert (h[i]);
    fill (pool, h[i], size, i);
  }
}

static int
check (struct zs_pool *pool, unsigned long h, size_t size, unsigned long seed)
{
  int ok = check_pattern (zs_map_object (pool, h, ZS_MM_RO), size, seed)
    == size;

  zs_unmap_object (pool, h);
  return ok;
}


static void
test_edge_sizes (void)
{
  static const size_t good[] = { 1, 31, 32, 33, 4095, 4096 };
  static const size_t bad[] = { 0, 4097, 100000 };
  unsigned long h[6];
  struct zs_pool *pool = zs_create_pool ("edge", NULL);
  size_t i;

  assert (pool);
  for (i = 0; i < 6; i++) {
    h[i] = zs_malloc (pool, good[i]);
    if (!h[i])
      FAIL ("zs_malloc (%zu): %m", good[i]);
    fill (pool, h[i], good[i], i);
  }
  for (i = 0; i < 6; i++)
    if (!check (pool, h[i], good[i], i))
      FAIL ("content of size %zu", good[i]);
  for (i = 0; i < 3; i++) {
    errno = 0;
    if (zs_malloc (pool, bad[i]) != 0 || errno != EINVAL)
      FAIL ("zs_malloc (%zu) should fail with EINVAL", bad[i]);
  }
  zs_free (pool, 0);                      /* ignored */
  for (i = 0; i < 6; i++)
    zs_free (pool, h[i]);
  if (zs_get_total_pages (pool) != 0)
    FAIL ("%lu pages left after freeing all", zs_get_total_pages (pool));
  zs_destroy_pool (pool);
}

/* Objects of 3000 bytes: most straddle a page boundary.  A spanning
 * object maps to the per-thread buffer, the same address for all of them.
 */
static void
test_spanning (void)
{
  enum { N = 64, SIZE = 3000 };
  struct zs_pool *pool = zs_create_pool ("span", NULL);
  unsigned long h[N];
  void *ptr[N];
  void *buffer = NULL;
  int span[N], nspan = 0, i, j, s1 = -1, s2 = -1;
  unsigned char *p;

  for (i = 0; i < N; i++) {
    h[i] = zs_malloc (pool, SIZE);
    assert (h[i]);
    fill (pool, h[i], SIZE, 1000 + i);
  }
  for (i = 0; i < N; i++) {
    ptr[i] = zs_map_object (pool, h[i], ZS_MM_RO);
    zs_unmap_object (pool, h[i]);
  }
  for (i = 0; i < N && !buffer; i++)
    for (j = i + 1; j < N; j++)
      if (ptr[i] == ptr[j]) {
        buffer = ptr[i];
        break;
      }
  if (!buffer)
    FAIL ("no object of %d bytes spans a page", SIZE);
  for (i = 0; i < N; i++) {
    span[i] = ptr[i] == buffer;
    nspan += span[i];
    if (span[i] && s1 < 0)
      s1 = i;
    else if (span[i] && s2 < 0)
      s2 = i;
  }
  printf ("spanning: %d of %d objects of %d bytes\n", nspan, N, SIZE);
  assert (s1 >= 0 && s2 >= 0);

  /* RO: copied in, not written back. */
  p = zs_map_object (pool, h[s1], ZS_MM_RO);
  for (i = 0; i < SIZE; i++)
    if (p[i] != pattern_byte (1000 + s1, i))
      FAIL ("RO mapping did not copy in");
  memset (p, 0xee, SIZE);
  zs_unmap_object (pool, h[s1]);
  if (!check (pool, h[s1], SIZE, 1000 + s1))
    FAIL ("RO mapping wrote back");

  /* WO: the buffer still holds s1's bytes (mapped last), not s2's. */
  p = zs_map_object (pool, h[s2], ZS_MM_WO);
  if (memcmp (p, buffer, 1) != 0 || p[0] != pattern_byte (1000 + s1, 0)
      || p[100] != pattern_byte (1000 + s1, 100))
    FAIL ("WO mapping copied in");
  for (i = 0; i < SIZE; i++)
    p[i] = pattern_byte (2000 + s2, i);
  zs_unmap_object (pool, h[s2]);
  if (!check (pool, h[s2], SIZE, 2000 + s2))
    FAIL ("WO mapping did not write back");

  /* RW: both. */
  p = zs_map_object (pool, h[s1], ZS_MM_RW);
  for (i = 0; i < SIZE; i++) {
    if (p[i] != pattern_byte (1000 + s1, i))
      FAIL ("RW mapping did not copy in");
    p[i] = pattern_byte (3000 + s1, i);
  }
  zs_unmap_object (pool, h[s1]);
  if (!check (pool, h[s1], SIZE, 3000 + s1))
    FAIL ("RW mapping did not write back");

  /* The neighbours of the spanning objects are untouched. */
  for (i = 0; i < N; i++)
    if (i != s1 && i != s2 && !check (pool, h[i], SIZE, 1000 + i))
      FAIL ("object %d damaged", i);
  zs_destroy_pool (pool);
}

static void
check_stats (struct zs_pool *pool, unsigned long live, int compacted)
{
  struct zs_class_stat st[600];
  size_t n = zs_pool_class_stats (pool, st, 600), i, g;
  unsigned long pages = 0, used = 0;

  assert (n > 0 && n <= 600);
  assert (zs_pool_class_stats (pool, st, 0) == n);
  for (i = 0; i < n; i++) {
    unsigned long zsp = 0;

    if (i > 0 && st[i].size <= st[i - 1].size)
      FAIL ("classes not ascending at %zu", i);
    if (st[i].obj_used > st[i].obj_allocated)
      FAIL ("class %u: obj_used > obj_allocated", st[i].size);
    if (st[i].pages_used > st[i].zspages * st[i].pages_per_zspage
        || st[i].pages_used < st[i].zspages)
      FAIL ("class %u: %lu pages for %lu zspages", st[i].size,
            st[i].pages_used, st[i].zspages);
    if ((unsigned long) st[i].objs_per_zspage * st[i].size
        > (unsigned long) st[i].pages_per_zspage * PAGE)
      FAIL ("class %u: objects do not fit the zspage", st[i].size);
    for (g = 0; g < ZS_NR_FULLNESS; g++)
      zsp += st[i].fullness[g];
    if (zsp != st[i].zspages)
      FAIL ("class %u: fullness sums to %lu, not %lu", st[i].size, zsp,
            st[i].zspages);
    if (st[i].fullness[ZS_NR_FULLNESS - 1] * st[i].objs_per_zspage
        > st[i].obj_used)
      FAIL ("class %u: full zspages exceed objects", st[i].size);
    if (compacted && st[i].freeable != 0)
      FAIL ("class %u: %lu freeable after compaction", st[i].size,
            st[i].freeable);
    pages += st[i].pages_used;
    used += st[i].obj_used;
  }
  if (st[n - 1].size != PAGE || st[n - 1].objs_per_zspage != 1
      || st[n - 1].pages_per_zspage != 1)
    FAIL ("the last class is not the huge class");
  if (pages != zs_get_total_pages (pool))
    FAIL ("classes hold %lu pages, zs_get_total_pages says %lu", pages,
          zs_get_total_pages (pool));
  if (used != live)
    FAIL ("classes hold %lu objects, %lu live", used, live);
}


static void
test_compact (void)
{
  enum { N = 40000 };
  struct zs_pool *pool = zs_create_pool ("compact", NULL);
  unsigned long *h = calloc (N, sizeof *h);
  unsigned short *size = calloc (N, sizeof *size);
  unsigned long before, after, freed, live = 0;
  size_t huge = zs_huge_class_size (pool);
  int i;

  printf ("huge class size: %zu\n", huge);
  if (huge <= 3000 || huge > PAGE)
    FAIL ("huge class size %zu", huge);
  for (i = 0; i < N; i++) {
    size[i] = 1 + rnd () % PAGE;
    h[i] = zs_malloc (pool, size[i]);
    assert (h[i]);
    fill (pool, h[i], size[i], h[i] * 7 + 1);
  }
  check_stats (pool, N, 0);
  /* Free three of every four, plus a run of whole neighbourhoods. */
  for (i = 0; i < N; i++)
    if (i % 4 != 0 || (i / 1000) % 5 == 0) {
      zs_free (pool, h[i]);
      h[i] = 0;
    }
    else
      live++;
  check_stats (pool, live, 0);
  before = zs_get_total_pages (pool);
  freed = zs_compact (pool);
  after = zs_get_total_pages (pool);
  printf ("compact: %lu pages -> %lu (%lu freed)\n", before, after, freed);
  if (freed == 0 || after != before - freed)
    FAIL ("compaction freed %lu, pages %lu -> %lu", freed, before, after);
  check_stats (pool, live, 1);
  for (i = 0; i < N; i++)
    if (h[i] && !check (pool, h[i], size[i], h[i] * 7 + 1))
      FAIL ("object %d (handle %lu) damaged by compaction", i, h[i]);
  if (zs_compact (pool) != 0)
    FAIL ("second compaction freed pages");
  /* Handles stay usable: rewrite, free. */
  for (i = 0; i < N; i++)
    if (h[i]) {
      fill (pool, h[i], size[i], i);
      if (!check (pool, h[i], size[i], i))
        FAIL ("object %d after rewrite", i);
      zs_free (pool, h[i]);
    }
  check_stats (pool, 0, 1);
  if (zs_get_total_pages (pool) != 0)
    FAIL ("pages left after freeing everything");
  zs_destroy_pool (pool);
  free (h);
  free (size);
}

/* A mapped object stays where it is through zs_compact (here run by the
 * mapping thread itself, which the locking allows), and moves once
 * unmapped.  512-byte objects never span, so the mapping is in place.
 */
static void
test_pinned (void)
{
  enum { N = 4000, SIZE = 512 };
  struct zs_pool *pool = zs_create_pool ("pinned", NULL);
  unsigned long h[N];
  const unsigned char *p, *q;
  int i, pinned = 0;

  fill_objects (pool, h, N, SIZE);
  /* Keep every 16th object: zspages of 8 slots end up half empty or
   * empty, and the survivor pinned (the first) sits in a sparse one.
   */
  for (i = 0; i < N; i++)
    if (i % 16 != 0 && i % 16 != 9) {
      zs_free (pool, h[i]);
      h[i] = 0;
    }
  p = zs_map_object (pool, h[pinned], ZS_MM_RO);
  if (zs_compact (pool) == 0)
    FAIL ("nothing compacted around the pinned zspage");
  for (i = 0; i < SIZE; i++)
    if (p[i] != pattern_byte (pinned, i))
      FAIL ("the mapped object changed under compaction");
  zs_unmap_object (pool, h[pinned]);
  q = zs_map_object (pool, h[pinned], ZS_MM_RO);
  zs_unmap_object (pool, h[pinned]);
  if (q != p)
    FAIL ("the mapped object moved");
  zs_compact (pool);
  for (i = 0; i < N; i++)
    if (h[i] && !check (pool, h[i], SIZE, i))
      FAIL ("object %d damaged", i);
  for (i = 0; i < N; i++)
    zs_free (pool, h[i]);
  zs_destroy_pool (pool);
}

/* Packing a zspage moves its objects down into free low slots; a mapped
 * one stays put.  One zspage of a multi-page class with only its first
 * and last slots in use: compaction may not move the last while it is
 * mapped, and packs it down (freeing the tail pages) once it is not.
 */
static void
test_pinned_pack (void)
{
  struct zs_class_stat st[600];
  struct zs_pool *pool = NULL;
  unsigned long h[1024];
  unsigned size, csize = 0, objs = 0, ppz = 0, i;
  const unsigned char *p, *q;
  unsigned long before;

  for (size = 700; size < 3600; size += 16) {
    size_t n, k;

    pool = zs_create_pool ("pack", NULL);
    h[0] = zs_malloc (pool, size);
    n = zs_pool_class_stats (pool, st, 600);
    for (k = 0; k < n; k++)
      if (st[k].obj_used == 1) {
        csize = st[k].size;
        objs = st[k].objs_per_zspage;
        ppz = st[k].pages_per_zspage;
      }
    zs_free (pool, h[0]);
    /* Want: several pages, and a last slot inside one page. */
    if (ppz >= 3 && (objs - 1) * csize / PAGE == (objs * csize - 1) / PAGE)
      break;
    zs_destroy_pool (pool);
    pool = NULL;
  }
  if (!pool)
    FAIL ("no class fit for the packing test");
  for (i = 0; i < objs; i++) {
    h[i] = zs_malloc (pool, size);
    fill (pool, h[i], size, 500 + i);
  }
  for (i = 1; i + 1 < objs; i++)
    zs_free (pool, h[i]);
  before = zs_get_total_pages (pool);
  if (before != ppz)
    FAIL ("%lu pages for one zspage of %u", before, ppz);

  p = zs_map_object (pool, h[objs - 1], ZS_MM_RO);
  zs_compact (pool);
  zs_unmap_object (pool, h[objs - 1]);
  q = zs_map_object (pool, h[objs - 1], ZS_MM_RO);
  zs_unmap_object (pool, h[objs - 1]);
  if (p != q)
    FAIL ("a mapped object was packed away");
  if (zs_get_total_pages (pool) != before)
    FAIL ("pages freed under a mapped object");

  if (zs_compact (pool) != ppz - 1 || zs_get_total_pages (pool) != 1)
    FAIL ("packing left %lu pages, not 1", zs_get_total_pages (pool));
  if (!check (pool, h[0], size, 500) || !check (pool, h[objs - 1], size,
                                                 500 + objs - 1))
    FAIL ("objects damaged by packing");
  printf ("packing: class %u (%u slots in %u pages) packed to 1 page\n",
          csize, objs, ppz);
  /* The freed slots refill the page held, then take new pages. */
  for (i = 1; i + 1 < objs; i++) {
    h[i] = zs_malloc (pool, size);
    fill (pool, h[i], size, 900 + i);
  }
  for (i = 1; i + 1 < objs; i++)
    if (!check (pool, h[i], size, 900 + i))
      FAIL ("refilled object %u damaged", i);
  check_stats (pool, objs, 0);
  for (i = 0; i < objs; i++)
    zs_free (pool, h[i]);
  zs_destroy_pool (pool);
}

/* A page source that gives out limit pages and then fails. */
struct limited {
  unsigned long limit, out, given;
};

static void *
limited_alloc (void *ctx)
{
  struct limited *l = ctx;
  void *p;

  if (l->out >= l->limit)
    return NULL;
  p = aligned_alloc (PAGE, PAGE);
  if (p) {
    l->out++;
    l->given++;
  }
  return p;
}

static void
limited_free (void *ctx, void *page)
{
  struct limited *l = ctx;

  assert (l->out > 0);
  l->out--;
  free (page);
}

static void
test_page_source_failure (void)
{
  enum { N = 100000 };
  struct limited l = { .limit = 300 };
  struct zs_ops ops = { limited_alloc, limited_free, &l };
  struct zs_pool *pool = zs_create_pool ("limited", &ops);
  unsigned long *h = calloc (N, sizeof *h);
  unsigned short *size = calloc (N, sizeof *size);
  int i, n = 0, failures = 0;

  for (i = 0; i < N && failures < 200; i++) {
    size_t s = 1 + rnd () % PAGE;
    unsigned long x;

    errno = 0;
    x = zs_malloc (pool, s);
    if (!x) {
      if (errno != ENOMEM)
        FAIL ("zs_malloc failed with %m, not ENOMEM");
      failures++;
      continue;
    }
    h[n] = x;
    size[n] = s;
    fill (pool, x, s, x + 99);
    n++;
  }
  printf ("page source failure: %d objects stored in %lu pages, "
          "%d failures\n", n, l.out, failures);
  if (failures == 0 || l.out > l.limit || zs_get_total_pages (pool) != l.out)
    FAIL ("pages out %lu, pool %lu", l.out, zs_get_total_pages (pool));
  for (i = 0; i < n; i++)
    if (!check (pool, h[i], size[i], h[i] + 99))
      FAIL ("object %d damaged by a failed allocation", i);
  check_stats (pool, n, 0);
  for (i = 0; i < n; i++)
    zs_free (pool, h[i]);
  if (l.out != 0)
    FAIL ("%lu pages not given back", l.out);
  /* With pages back, allocation works again. */
  h[0] = zs_malloc (pool, 4000);
  if (!h[0])
    FAIL ("zs_malloc after the page source recovered: %m");
  zs_free (pool, h[0]);
  zs_destroy_pool (pool);
  free (h);
  free (size);
}

static int
cmp_addr (const void *a, const void *b)
{
  const char *x = *(char *const *) a, *y = *(char *const *) b;

  return (x > y) - (x < y);
}

static long
rss_anon_kb (void)
{
  FILE *f = fopen ("/proc/self/status", "r");
  char line[256];
  long kb = -1;

  assert (f);
  while (fgets (line, sizeof line, f))
    if (sscanf (line, "RssAnon: %ld kB", &kb) == 1)
      break;
  fclose (f);
  return kb;
}

/* Sanitizers keep memory of their own that moves with the pool's: shadow
 * of its pages, and ASan's quarantine of freed metadata.
 */
static int
running_sanitizer (void)
{
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
  return 1;
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer) || __has_feature(address_sanitizer)
  return 1;
#endif
#endif
  return 0;
}

static void
test_rss (void)
{
  enum { N = 32768, SIZE = 2000 };   /* 64 MB of objects */
  struct zs_pool *pool = zs_create_pool ("rss", NULL);
  unsigned long *h = calloc (N, sizeof *h);
  long base, full, freed;
  int i;

  memset (h, 0, N * sizeof *h);       /* resident before the baseline */
  base = rss_anon_kb ();
  fill_objects (pool, h, N, SIZE);
  full = rss_anon_kb ();
  for (i = 0; i < N; i++)
    zs_free (pool, h[i]);
  freed = rss_anon_kb ();
  printf ("RssAnon: %ld kB at start, %ld kB full, %ld kB after free\n",
          base, full, freed);
  if (full - base < 50000)
    FAIL ("RssAnon rose by only %ld kB for 64 MB", full - base);
  /* Plainly, what stays is the page source's cache of recently freed
   * pages (1 MiB) and malloc's retained metadata.  Under a sanitizer
   * RssAnon also counts its shadow of the pool's pages, part of which it
   * keeps: allow that, but still demand most of the rise back.
   */
  if (freed - base > (full - base) / (running_sanitizer () ? 5 : 20))
    FAIL ("RssAnon stays %ld kB above the start after freeing all",
          freed - base);
  zs_destroy_pool (pool);
  free (h);
}

/* Frees every other object and compacts: the pages given back are
 * scattered over the page source's chunks, so none of them empties and
 * the memory returns only through madvise.  RssAnon must then fall to
 * about what the pool holds.  Returns the growth over the start as a
 * ratio to zs_get_total_pages.
 */
static double
rss_after_compact (const char *what)
{
  enum { N = 32768, SIZE = 2000 };   /* 64 MB of objects */
  struct zs_pool *pool = zs_create_pool ("rss-compact", NULL);
  unsigned long *h = calloc (N, sizeof *h);
  long base, full, after;
  double total_kb, ratio;
  int i;

  assert (pool && h);
  base = rss_anon_kb ();
  fill_objects (pool, h, N, SIZE);
  full = rss_anon_kb ();
  for (i = 0; i < N; i += 2)
    zs_free (pool, h[i]);
  zs_compact (pool);
  after = rss_anon_kb ();
  total_kb = zs_get_total_pages (pool) * (PAGE / 1024.0);
  ratio = (after - base) / total_kb;
  printf ("%s: RssAnon %ld kB at start, %ld kB full, %ld kB after freeing "
          "half and compacting; pool %.0f kB; growth/pool %.3f\n",
          what, base, full, after, total_kb, ratio);
  for (i = 1; i < N; i += 2)
    if (!check (pool, h[i], SIZE, i))
      FAIL ("%s: object %d changed through compaction", what, i);
  zs_destroy_pool (pool);
  free (h);
  return ratio;
}

/* The pool's memory is 4 KiB pages plus its metadata (handle words,
 * zspage headers: about 1 % here); the rest of the allowance is
 * malloc's slack.
 */
#define RSS_RATIO_MAX 1.10

static void
test_rss_compact (void)
{
  double r = rss_after_compact ("unlocked");

  if (!running_sanitizer () && r > RSS_RATIO_MAX)
    FAIL ("unlocked: RssAnon grew %.2fx what the pool holds", r);
}

/* The same under mlockall (MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT), as
 * nbdkit's mlock=true locks the process: MADV_DONTNEED fails on locked
 * mappings, so without MADV_DONTNEED_LOCKED nothing freed would go back.
 * In a child, so that the lock ends with it.
 */
static void
test_rss_compact_locked (void)
{
  struct rlimit rl;
  pid_t pid;
  int status;

  /* Without root, the memlock limit (often 8 MiB) would refuse the pool
   * well before it held 64 MB.
   */
  if (geteuid () != 0 && getrlimit (RLIMIT_MEMLOCK, &rl) == 0
      && rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < (256 << 20)) {
    printf ("rss under mlock: skipped: not root, and RLIMIT_MEMLOCK is "
            "%lu bytes\n", (unsigned long) rl.rlim_cur);
    return;
  }
  if (running_sanitizer ()) {
    printf ("rss under mlock: skipped under a sanitizer (its shadow "
            "memory would be locked too)\n");
    return;
  }
  fflush (stdout);
  pid = fork ();
  assert (pid >= 0);
  if (pid == 0) {
    double r;

    if (mlockall (MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT) == -1) {
      printf ("rss under mlock: skipped: mlockall: %m\n");
      _exit (0);
    }
    r = rss_after_compact ("mlockall");
    if (r > RSS_RATIO_MAX)
      FAIL ("mlockall: RssAnon grew %.2fx what the pool holds", r);
    fflush (stdout);
    _exit (0);
  }
  assert (waitpid (pid, &status, 0) == pid);
  if (!WIFEXITED (status) || WEXITSTATUS (status) != 0)
    FAIL ("the mlockall child failed");
}

/* Still mapped?  msync fails with ENOMEM on an unmapped range. */
static int
mapped (void *addr)
{
  return msync (addr, PAGE, MS_ASYNC) == 0;
}

/* Four chunks of the built-in page source that empty in the same purge
 * batch: all but the one kept as a spare must be unmapped.  (Removing a
 * chunk shifts its neighbours' indices, which once made the purge skip
 * the chunk after each one it unmapped.)
 */
static void
test_purge_adjacent_chunks (void)
{
  enum { CHUNK = 512, NCHUNKS = 4, N = CHUNK * NCHUNKS };
  struct page_source *src = pagesrc_create (NULL);
  void **pages = calloc (N, sizeof *pages);
  void *keep[NCHUNKS], *base[NCHUNKS];
  unsigned i, still = 0;

  assert (src && pages);
  for (i = 0; i < N; i++) {
    if (pagesrc_alloc (src, &pages[i], 1))
      FAIL ("pagesrc_alloc: %m");
    memset (pages[i], 0xa5, 8);
  }
  qsort (pages, N, sizeof *pages, cmp_addr);
  for (i = 0; i < NCHUNKS; i++) {
    base[i] = pages[i * CHUNK];
    /* Chunks are CHUNK pages each, mapped whole: sorted, they follow on. */
    if ((char *) pages[i * CHUNK + CHUNK - 1]
        != (char *) base[i] + (CHUNK - 1) * PAGE)
      FAIL ("page source chunks are not %d contiguous pages", CHUNK);
    keep[i] = base[i];
    pages[i * CHUNK] = NULL;
  }
  /* Everything but one page per chunk back to the chunks... */
  for (i = 0; i < N; i++)
    if (pages[i])
      pagesrc_free (src, &pages[i], 1);
  pagesrc_trim (src);
  for (i = 0; i < NCHUNKS; i++)
    if (!mapped (base[i]))
      FAIL ("chunk %u unmapped while one of its pages is out", i);
  /* ... then the last page of each, in one batch. */
  pagesrc_free (src, keep, NCHUNKS);
  pagesrc_trim (src);
  for (i = 0; i < NCHUNKS; i++)
    still += mapped (base[i]);
  printf ("purge: %u of %d emptied chunks still mapped\n", still, NCHUNKS);
  if (still != 1)
    FAIL ("%u chunks still mapped after all emptied; want 1, the spare",
          still);
  pagesrc_destroy (src);
  free (pages);
}

/* The purge's batch ends with two pages of the last chunk, and that chunk
 * is unmapped (an earlier empty chunk is the spare): the second page must
 * be taken as part of the run of the chunk just removed, not looked up
 * again (the lookup once ran off the end of the chunk array).
 */
static void
test_purge_last_chunk (void)
{
  enum { CHUNK = 512, NCHUNKS = 4, N = CHUNK * NCHUNKS };
  struct page_source *src = pagesrc_create (NULL);
  void **pages = calloc (N, sizeof *pages);
  void *keep[NCHUNKS], *base[NCHUNKS];
  unsigned i, nkeep = 0, still = 0;

  assert (src && pages);
  for (i = 0; i < N; i++)
    if (pagesrc_alloc (src, &pages[i], 1))
      FAIL ("pagesrc_alloc: %m");
  qsort (pages, N, sizeof *pages, cmp_addr);
  for (i = 0; i < NCHUNKS; i++)
    base[i] = pages[i * CHUNK];
  /* Chunk 0 empties first and becomes the spare; chunks 1 and 2 keep one
   * page out, the last chunk two.
   */
  for (i = 1; i < NCHUNKS; i++) {
    keep[nkeep++] = pages[i * CHUNK];
    pages[i * CHUNK] = NULL;
  }
  keep[nkeep++] = pages[(NCHUNKS - 1) * CHUNK + 1];
  pages[(NCHUNKS - 1) * CHUNK + 1] = NULL;
  for (i = 0; i < N; i++)
    if (pages[i])
      pagesrc_free (src, &pages[i], 1);
  pagesrc_trim (src);
  pagesrc_free (src, keep, nkeep);
  pagesrc_trim (src);
  for (i = 0; i < NCHUNKS; i++)
    still += mapped (base[i]);
  printf ("purge, last chunk: %u of %d emptied chunks still mapped\n", still,
          NCHUNKS);
  if (still != 1)
    FAIL ("%u chunks still mapped after all emptied; want 1, the spare",
          still);
  pagesrc_destroy (src);
  free (pages);
}

static long
minflt (int who)
{
  struct rusage ru;

  assert (getrusage (who, &ru) == 0);
  return ru.ru_minflt;
}

/* zs_set_reserve: the built-in source's refiller faults the reserve in
 * on its own thread, so an allocation that the reserve covers takes no
 * page fault on the thread that asks (a swap server's I/O thread, which
 * must not wait for reclaim).  Without the reserve, every fresh page
 * faults in on the allocating thread (MADV_POPULATE_WRITE counts there).
 */
static void
test_reserve (void)
{
  enum { RES = 1024, TAKE = RES / 2 };
  struct page_source *src;
  void **pages = calloc (TAKE + 1, sizeof *pages);
  long self0, mine0, mine;
  unsigned i;
  int waited = 0;

  assert (pages);
  zs_set_reserve (RES);
  src = pagesrc_create (NULL);
  assert (src);
  self0 = minflt (RUSAGE_SELF);
  /* The first allocation starts the refiller. */
  if (pagesrc_alloc (src, &pages[TAKE], 1))
    FAIL ("pagesrc_alloc: %m");
  while (minflt (RUSAGE_SELF) - self0 < RES * 9 / 10) {
    if (++waited > 1000)
      FAIL ("the reserve's thread faulted in only %ld pages of %d in 10 s",
            minflt (RUSAGE_SELF) - self0, RES);
    usleep (10000);
  }
  mine0 = minflt (RUSAGE_THREAD);
  for (i = 0; i < TAKE; i++) {
    if (pagesrc_alloc (src, &pages[i], 1))
      FAIL ("pagesrc_alloc: %m");
    memset (pages[i], 0x5a, PAGE);
  }
  mine = minflt (RUSAGE_THREAD) - mine0;
  printf ("reserve: %d pages taken, %ld page faults on the taking thread\n",
          TAKE, mine);
  /* A sanitizer's shadow of the pages faults in on this thread. */
  if (running_sanitizer ())
    printf ("reserve: the fault count is not checked under a sanitizer\n");
  else if (mine > TAKE / 8)
    FAIL ("%ld page faults taking %d pages from a reserve of %d",
          mine, TAKE, RES);
  pagesrc_free (src, pages, TAKE + 1);
  /* Stops and joins the refiller. */
  pagesrc_destroy (src);
  zs_set_reserve (0);
  free (pages);
}

/* The same for a whole pool (zs_malloc), as a swap server's I/O thread
 * uses it: with a reserve, and the handle table populated for the
 * objects to come (as the engine does at disksize under mlock=true), a
 * thread that allocates thousands of objects, creating hundreds of
 * zspages and crossing two handle-table chunks, takes no page fault of
 * its own: the zspages' pages and their headers come from the reserve,
 * the handle table is there.  On a fresh thread, whose malloc arena is
 * fresh too, so that headers from malloc or handle chunks made on the
 * way would fault.
 */
enum { POOL_RES = 2048, POOL_OBJS = 17000, POOL_OBJ_SIZE = 200 };

static void *
reserve_pool_thread (void *arg)
{
  struct zs_pool *pool = arg;
  unsigned long *h = malloc (POOL_OBJS * sizeof *h);
  long mine0, mine;
  unsigned i;

  assert (h);
  memset (h, 0, POOL_OBJS * sizeof *h);  /* faulted in before counting */
  mine0 = minflt (RUSAGE_THREAD);
  for (i = 0; i < POOL_OBJS; i++) {
    char *p;

    h[i] = zs_malloc (pool, POOL_OBJ_SIZE);
    if (!h[i])
      FAIL ("zs_malloc: %m");
    p = zs_map_object (pool, h[i], ZS_MM_WO);
    memset (p, i, POOL_OBJ_SIZE);
    zs_unmap_object (pool, h[i]);
  }
  mine = minflt (RUSAGE_THREAD) - mine0;
  printf ("reserve pool: %d objects in %lu pages, %ld page faults on the "
          "allocating thread\n", POOL_OBJS, zs_get_total_pages (pool), mine);
  if (running_sanitizer ())
    printf ("reserve pool: the fault count is not checked under a "
            "sanitizer\n");
  else if (mine > 8)
    FAIL ("%ld page faults allocating %d objects with a reserve of %d "
          "pages and the handle table populated", mine, POOL_OBJS, POOL_RES);
  for (i = 0; i < POOL_OBJS; i++)
    zs_free (pool, h[i]);
  free (h);
  return NULL;
}

static void
test_reserve_pool (void)
{
  struct zs_pool *pool;
  pthread_t t;
  long self0;
  int waited = 0;

  zs_set_reserve (POOL_RES);
  pool = zs_create_pool ("reserve", NULL);
  assert (pool);
  if (zs_populate_handles (pool, POOL_OBJS) == -1)
    FAIL ("zs_populate_handles: %m");
  self0 = minflt (RUSAGE_SELF);
  /* The first allocation starts the refiller. */
  zs_free (pool, zs_malloc (pool, POOL_OBJ_SIZE));
  while (minflt (RUSAGE_SELF) - self0 < POOL_RES * 9 / 10) {
    if (++waited > 1000)
      FAIL ("the reserve's thread faulted in only %ld pages of %d in 10 s",
            minflt (RUSAGE_SELF) - self0, POOL_RES);
    usleep (10000);
  }
  assert (pthread_create (&t, NULL, reserve_pool_thread, pool) == 0);
  assert (pthread_join (t, NULL) == 0);
  zs_destroy_pool (pool);
  zs_set_reserve (0);
}

/* With a reserve, the threads that allocate and free make no system call
 * on the memory map (pagesrc.c): munmap and mmap wait for every page fault
 * in the mapping they change, and the refiller's faults there wait for
 * reclaim, which waits for a swap server's I/O thread.  A thread under a
 * seccomp filter that traps mmap, munmap, mremap, mprotect, madvise and
 * brk allocates and frees zspages in rounds: through the hot stack and
 * past it into the reserve and the refiller's spill, through compaction's
 * trim, and with a reserve far too small, where an allocation that finds
 * no page resident waits for the refiller or fails (ENOMEM) rather than
 * map one.  (Before,
 * the freeing thread gave pages back with madvise and unmapped empty
 * chunks, and the allocating one mapped chunks and populated them.)
 */
#if defined(__x86_64__)
static atomic_int map_calls, last_map_call;

static void
on_sigsys (int sig, siginfo_t *si, void *uc_)
{
  ucontext_t *uc = uc_;

  (void) sig;
  atomic_fetch_add (&map_calls, 1);
  atomic_store (&last_map_call, si->si_syscall);
  uc->uc_mcontext.gregs[REG_RAX] = -EPERM;
}

static void
trap_map_calls (void)
{
  static const int nrs[] = { SYS_mmap, SYS_munmap, SYS_mremap, SYS_mprotect,
                             SYS_madvise, SYS_brk };
  struct sock_filter f[4 + 2 * 6 + 1];
  struct sock_fprog prog = { .filter = f };
  unsigned n = 0, i;

  f[n++] = (struct sock_filter) BPF_STMT (BPF_LD | BPF_W | BPF_ABS,
                                          offsetof (struct seccomp_data, arch));
  f[n++] = (struct sock_filter) BPF_JUMP (BPF_JMP | BPF_JEQ | BPF_K,
                                          AUDIT_ARCH_X86_64, 1, 0);
  f[n++] = (struct sock_filter) BPF_STMT (BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
  f[n++] = (struct sock_filter) BPF_STMT (BPF_LD | BPF_W | BPF_ABS,
                                          offsetof (struct seccomp_data, nr));
  for (i = 0; i < 6; i++) {
    f[n++] = (struct sock_filter) BPF_JUMP (BPF_JMP | BPF_JEQ | BPF_K,
                                            nrs[i], 0, 1);
    f[n++] = (struct sock_filter) BPF_STMT (BPF_RET | BPF_K, SECCOMP_RET_TRAP);
  }
  f[n++] = (struct sock_filter) BPF_STMT (BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
  prog.len = n;
  if (prctl (PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == -1)
    FAIL ("prctl PR_SET_NO_NEW_PRIVS: %m");
  /* Without SECCOMP_FILTER_FLAG_TSYNC: this thread only. */
  if (syscall (SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) == -1)
    FAIL ("seccomp: %m");
}

enum { NOMAP_OBJS = 3000, NOMAP_SIZE = 1000, NOMAP_ROUNDS = 8 };

struct nomap {
  int map_calls, last_map_call;
  unsigned long failed;           /* allocations that failed (ENOMEM) */
};

/* In a child process, whose main thread is the one filtered: a thread
 * that ends calls madvise on its own stack with every signal blocked,
 * which a trap would turn into death; _exit ends the child at once.
 */
static void
nomap_child (size_t reserve, bool trap, int fd)
{
  struct zs_pool *pool;
  unsigned long *h = calloc (NOMAP_OBJS, sizeof *h);
  struct nomap res = { 0 };
  unsigned r, i;

  assert (h);
  zs_set_reserve (reserve);
  pool = zs_create_pool ("nomap", NULL);
  assert (pool);
  if (zs_populate_handles (pool, NOMAP_OBJS + 1) == -1)
    FAIL ("zs_populate_handles: %m");
  /* The first allocation starts the refiller, before the filter, which
   * is this thread's only.
   */
  h[0] = zs_malloc (pool, NOMAP_SIZE);
  zs_free (pool, h[0]);
  if (trap) {
    trap_map_calls ();
    /* The filter works: this one call is trapped, and not counted. */
    if (madvise (h, 0, MADV_NORMAL) != -1 || errno != EPERM ||
        atomic_load (&map_calls) != 1)
      FAIL ("the seccomp filter did not trap madvise");
    atomic_store (&map_calls, 0);
  }
  for (r = 0; r < NOMAP_ROUNDS; r++) {
    for (i = 0; i < NOMAP_OBJS; i++) {
      h[i] = zs_malloc (pool, NOMAP_SIZE);
      if (h[i] == 0) {
        if (errno != ENOMEM)
          FAIL ("zs_malloc: %m, not ENOMEM");
        res.failed++;
        continue;
      }
      memset (zs_map_object (pool, h[i], ZS_MM_WO), i, NOMAP_SIZE);
      zs_unmap_object (pool, h[i]);
    }
    for (i = 0; i < NOMAP_OBJS; i++)
      if (h[i])
        zs_free (pool, h[i]);
    if (r % 2)
      zs_compact (pool);
  }
  res.map_calls = atomic_load (&map_calls);
  res.last_map_call = atomic_load (&last_map_call);
  if (write (fd, &res, sizeof res) != sizeof res)
    _exit (2);
  _exit (0);
}

static void
test_reserve_no_map_calls (void)
{
  static const size_t reserves[] = { 2048, 64 };
  struct sigaction sa = { .sa_sigaction = on_sigsys,
                          .sa_flags = SA_SIGINFO };
  /* A sanitizer's allocator maps memory of its own on any thread. */
  bool trap = !running_sanitizer ();
  unsigned k;

  for (k = 0; k < 2; k++) {
    struct nomap res;
    int fds[2], status;
    pid_t pid;

    assert (pipe (fds) == 0);
    fflush (stdout);
    pid = fork ();
    assert (pid >= 0);
    if (pid == 0) {
      close (fds[0]);
      assert (sigaction (SIGSYS, &sa, NULL) == 0);
      nomap_child (reserves[k], trap, fds[1]);
    }
    close (fds[1]);
    if (read (fds[0], &res, sizeof res) != sizeof res)
      FAIL ("the child checking map calls (reserve %zu) died", reserves[k]);
    close (fds[0]);
    assert (waitpid (pid, &status, 0) == pid);
    if (!WIFEXITED (status) || WEXITSTATUS (status) != 0)
      FAIL ("the child checking map calls (reserve %zu) failed", reserves[k]);
    printf ("no map calls: reserve %zu pages, %d rounds of %d objects: %d "
            "map calls, %lu allocations failed%s\n", reserves[k],
            NOMAP_ROUNDS, NOMAP_OBJS, res.map_calls, res.failed,
            trap ? "" : " (not trapped under a sanitizer)");
    if (res.map_calls)
      FAIL ("a thread allocating and freeing with a reserve of %zu pages "
            "made %d calls on the memory map, the last system call %d",
            reserves[k], res.map_calls, res.last_map_call);
    /* The large reserve covers every round (the refiller keeps up). */
    if (k == 0 && res.failed)
      FAIL ("%lu allocations failed with a reserve of %zu pages",
            res.failed, reserves[k]);
  }
}
#else
static void
test_reserve_no_map_calls (void)
{
  printf ("no map calls: not checked here (the seccomp filter is written "
          "for x86_64)\n");
}
#endif

int
main (void)
{
  test_edge_sizes ();
  test_spanning ();
  test_compact ();
  test_pinned ();
  test_pinned_pack ();
  test_page_source_failure ();
  test_rss ();
  test_rss_compact ();
  test_rss_compact_locked ();
  test_purge_adjacent_chunks ();
  test_purge_last_chunk ();
  test_reserve ();
  test_reserve_pool ();
  test_reserve_no_map_calls ();
  printf ("PASS\n");
  return 0;
}
