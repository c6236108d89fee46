/* uzram: libzsmalloc benchmark (not a test: `make bench`).
 *
 *   bench-zsmalloc IMAGE
 *
 * IMAGE is a file of 4 KiB pages of real data.  Each page is compressed as
 * zram would: same-filled pages (one repeated machine word) are skipped,
 * the rest compressed with liblzo2's lzo1x_1, and a page that compresses to
 * zs_huge_class_size() or more is stored raw, 4096 bytes.  The objects go
 * into a pool, and the allocator's overhead is
 *
 *   overhead = pages held * 4096 / live bytes - 1
 *
 * (pages held: zs_get_total_pages, as zram's mem_used_total; live bytes: the
 * objects' sizes, as compr_data_size) after filling, after freeing a random
 * half, and after zs_compact.  Beside it: the same with the metadata
 * (handle table and zspage headers, as malloc'd bytes), the RssAnon the
 * process gained, and glibc malloc holding the same objects.  Then
 * throughput with 1 and 2 threads: storing all objects (zs_malloc and a
 * WO mapping) and freeing them all, then overwrites with the pool full.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <lzo/lzo1x.h>

#include "zsmalloc.h"

#define PAGE 4096

struct obj {
  uint64_t off;        /* in cdata */
  uint32_t len;
};

static unsigned char *cdata;
static struct obj *objs;
static size_t nobjs;
static unsigned long *handles;
static size_t *order;     /* a random permutation of the objects */

static double
now (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* This thread's CPU time: rates per CPU second hold up when other
 * processes load the machine, as wall-clock rates do not.
 */
static double
cpu_now (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static long
rss_anon_kb (void)
{
  FILE *f = fopen ("/proc/self/status", "r");
  char line[256];
  long kb = -1;

  if (!f)
    return -1;
  while (fgets (line, sizeof line, f))
    if (sscanf (line, "RssAnon: %ld kB", &kb) == 1)
      break;
  fclose (f);
  return kb;
}

static size_t
malloced (void)
{
  struct mallinfo2 mi = mallinfo2 ();

  return mi.uordblks + mi.hblkhd;
}

#define TESTLIB_SEED 0x2545f4914f6cdd1dULL
#include "testlib.h"

static int
same_filled (const unsigned char *page)
{
  const uint64_t *w = (const uint64_t *) page;
  size_t i;

  for (i = 1; i < PAGE / 8; i++)
    if (w[i] != w[0])
      return 0;
  return 1;
}

/* Compresses the image into cdata/objs. */
static void
load_image (const char *path, size_t huge)
{
  int fd = open (path, O_RDONLY);
  struct stat st;
  const unsigned char *img;
  size_t npages, i, same = 0, nhuge = 0, used = 0;
  unsigned char wrk[LZO1X_1_MEM_COMPRESS] __attribute__ ((aligned (16)));
  unsigned char out[PAGE + PAGE / 16 + 64 + 3];

  if (fd < 0 || fstat (fd, &st) < 0) {
    perror (path);
    exit (1);
  }
  npages = st.st_size / PAGE;
  img = mmap (NULL, npages * PAGE, PROT_READ, MAP_PRIVATE, fd, 0);
  if (img == MAP_FAILED) {
    perror ("mmap");
    exit (1);
  }
  cdata = malloc (npages * PAGE);
  objs = malloc (npages * sizeof *objs);
  if (!cdata || !objs || lzo_init () != LZO_E_OK) {
    fprintf (stderr, "out of memory or lzo_init failed\n");
    exit (1);
  }
  for (i = 0; i < npages; i++) {
    const unsigned char *p = img + i * PAGE;
    lzo_uint len = sizeof out;

    if (same_filled (p)) {
      same++;
      continue;
    }
    lzo1x_1_compress (p, PAGE, out, &len, wrk);
    if (len >= huge) {
      /* zram stores such a page raw. */
      memcpy (cdata + used, p, PAGE);
      len = PAGE;
      nhuge++;
    }
    else
      memcpy (cdata + used, out, len);
    objs[nobjs].off = used;
    objs[nobjs].len = len;
    used += len;
    nobjs++;
  }
  munmap ((void *) img, npages * PAGE);
  close (fd);
  printf ("image: %zu pages: %zu same-filled (skipped), %zu stored, "
          "%zu of them huge (>= %zu bytes, stored raw)\n"
          "       %.1f MB stored, %.0f bytes per object, ratio %.2f "
          "(stored pages)\n",
          npages, same, nobjs, nhuge, huge, used / 1e6,
          (double) used / nobjs, (double) nobjs * PAGE / used);
}

static void
shuffle (size_t *a, size_t n)
{
  size_t i;

  for (i = 0; i < n; i++)
    a[i] = i;
  for (i = n - 1; i > 0; i--) {
    size_t j = rnd () % (i + 1), t = a[i];

    a[i] = a[j];
    a[j] = t;
  }
}

static void
report (const char *what, unsigned long pages, size_t live, size_t meta,
        long rss_kb)
{
  double held = (double) pages * PAGE;

  printf ("  %-22s %8lu pages %8.1f MB for %8.1f MB: overhead %6.2f %%"
          "   +metadata %6.2f %%   RssAnon %6.2f %%\n",
          what, pages, held / 1e6, live / 1e6,
          100.0 * (held / live - 1),
          100.0 * ((held + meta) / live - 1),
          100.0 * (rss_kb * 1024.0 / live - 1));
}

static void
store (struct zs_pool *pool, size_t i)
{
  unsigned long h = zs_malloc (pool, objs[i].len);
  void *p;

  if (!h) {
    perror ("zs_malloc");
    exit (1);
  }
  p = zs_map_object (pool, h, ZS_MM_WO);
  memcpy (p, cdata + objs[i].off, objs[i].len);
  zs_unmap_object (pool, h);
  handles[i] = h;
}

static void
verify (struct zs_pool *pool)
{
  size_t i;

  for (i = 0; i < nobjs; i++)
    if (handles[i]) {
      const void *p = zs_map_object (pool, handles[i], ZS_MM_RO);
      int bad = memcmp (p, cdata + objs[i].off, objs[i].len);

      zs_unmap_object (pool, handles[i]);
      if (bad) {
        fprintf (stderr, "object %zu damaged\n", i);
        exit (1);
      }
    }
}

static void
bench_overhead (void)
{
  long rss0 = rss_anon_kb ();
  size_t meta0 = malloced (), live = 0, i;
  struct zs_pool *pool = zs_create_pool ("bench", NULL);
  double t;
  unsigned long freed;

  printf ("zsmalloc:\n");
  for (i = 0; i < nobjs; i++) {
    store (pool, i);
    live += objs[i].len;
  }
  report ("after filling", zs_get_total_pages (pool), live,
          malloced () - meta0, rss_anon_kb () - rss0);
  for (i = 0; i < nobjs / 2; i++) {
    size_t k = order[i];

    zs_free (pool, handles[k]);
    handles[k] = 0;
    live -= objs[k].len;
  }
  report ("after freeing half", zs_get_total_pages (pool), live,
          malloced () - meta0, rss_anon_kb () - rss0);
  t = now ();
  freed = zs_compact (pool);
  t = now () - t;
  report ("after zs_compact", zs_get_total_pages (pool), live,
          malloced () - meta0, rss_anon_kb () - rss0);
  printf ("  zs_compact freed %lu pages in %.1f ms\n", freed, t * 1e3);
  verify (pool);
  for (i = 0; i < nobjs; i++)
    zs_free (pool, handles[i]);
  zs_destroy_pool (pool);
}

static void
bench_glibc (void)
{
  long rss0;
  size_t live = 0, i;
  void **ptrs = malloc (nobjs * sizeof *ptrs);

  memset (ptrs, 0, nobjs * sizeof *ptrs);
  malloc_trim (0);
  rss0 = rss_anon_kb ();
  printf ("glibc malloc (RssAnon gained):\n");
  for (i = 0; i < nobjs; i++) {
    ptrs[i] = malloc (objs[i].len);
    memcpy (ptrs[i], cdata + objs[i].off, objs[i].len);
    live += objs[i].len;
  }
  printf ("  %-22s %8.1f MB for %8.1f MB: overhead %6.2f %%\n",
          "after filling", (rss_anon_kb () - rss0) * 1024 / 1e6,
          live / 1e6, 100.0 * ((rss_anon_kb () - rss0) * 1024.0 / live - 1));
  for (i = 0; i < nobjs / 2; i++) {
    size_t k = order[i];

    free (ptrs[k]);
    ptrs[k] = NULL;
    live -= objs[k].len;
  }
  printf ("  %-22s %8.1f MB for %8.1f MB: overhead %6.2f %%\n",
          "after freeing half", (rss_anon_kb () - rss0) * 1024 / 1e6,
          live / 1e6, 100.0 * ((rss_anon_kb () - rss0) * 1024.0 / live - 1));
  malloc_trim (0);
  printf ("  %-22s %8.1f MB for %8.1f MB: overhead %6.2f %%\n",
          "after malloc_trim", (rss_anon_kb () - rss0) * 1024 / 1e6,
          live / 1e6, 100.0 * ((rss_anon_kb () - rss0) * 1024.0 / live - 1));
  for (i = 0; i < nobjs; i++)
    free (ptrs[i]);
  free (ptrs);
  malloc_trim (0);
}

/* ---- throughput ---- */

enum { ROUNDS = 3 };

struct worker {
  pthread_t thread;
  struct zs_pool *pool;      /* NULL: glibc */
  size_t first, step;
  double alloc_s, free_s, overwrite_s;      /* wall clock */
  double alloc_cpu, free_cpu, overwrite_cpu; /* this thread's CPU time */
  size_t ops, overwrites;
};

static void *
run_worker (void *arg)
{
  struct worker *w = arg;
  size_t n = (nobjs - w->first + w->step - 1) / w->step, r, i;
  unsigned long *h = malloc (n * sizeof *h);
  void **p = malloc (n * sizeof *p);

  for (r = 0; r < ROUNDS; r++) {
    double t = now (), c = cpu_now ();

    for (i = 0; i < n; i++) {
      const struct obj *o = &objs[w->first + i * w->step];

      if (w->pool) {
        void *m;

        h[i] = zs_malloc (w->pool, o->len);
        m = zs_map_object (w->pool, h[i], ZS_MM_WO);
        memcpy (m, cdata + o->off, o->len);
        zs_unmap_object (w->pool, h[i]);
      }
      else {
        p[i] = malloc (o->len);
        memcpy (p[i], cdata + o->off, o->len);
      }
    }
    w->alloc_s += now () - t;
    w->alloc_cpu += cpu_now () - c;
    t = now ();
    c = cpu_now ();
    /* Free in a scattered order, as a disk's overwrites come. */
    for (i = 0; i < n; i++) {
      size_t k = (i * 7919) % n;

      if (w->pool)
        zs_free (w->pool, h[k]);
      else
        free (p[k]);
    }
    w->free_s += now () - t;
    w->free_cpu += cpu_now () - c;
    w->ops += n;
  }

  /* Steady state, as a full disk's overwrites: the subset stays stored,
   * and each step frees one object and stores another of a new size.
   */
  {
    uint64_t r = 0x9e3779b97f4a7c15ULL * (w->first + 1);
    size_t steps = n * ROUNDS;
    double t, c;

    for (i = 0; i < n; i++) {
      const struct obj *o = &objs[w->first + i * w->step];

      if (w->pool) {
        h[i] = zs_malloc (w->pool, o->len);
        memcpy (zs_map_object (w->pool, h[i], ZS_MM_WO), cdata + o->off,
                o->len);
        zs_unmap_object (w->pool, h[i]);
      }
      else {
        p[i] = malloc (o->len);
        memcpy (p[i], cdata + o->off, o->len);
      }
    }
    t = now ();
    c = cpu_now ();
    for (r = r | 1, i = 0; i < steps; i++) {
      size_t k, j;
      const struct obj *o;

      r ^= r << 13; r ^= r >> 7; r ^= r << 17;
      k = r % n;
      j = (r >> 32) % n;
      o = &objs[w->first + j * w->step];
      if (w->pool) {
        zs_free (w->pool, h[k]);
        h[k] = zs_malloc (w->pool, o->len);
        memcpy (zs_map_object (w->pool, h[k], ZS_MM_WO), cdata + o->off,
                o->len);
        zs_unmap_object (w->pool, h[k]);
      }
      else {
        free (p[k]);
        p[k] = malloc (o->len);
        memcpy (p[k], cdata + o->off, o->len);
      }
    }
    w->overwrite_s = now () - t;
    w->overwrite_cpu = cpu_now () - c;
    w->overwrites = steps;
    for (i = 0; i < n; i++) {
      if (w->pool)
        zs_free (w->pool, h[i]);
      else
        free (p[i]);
    }
  }
  free (h);
  free (p);
  return NULL;
}

static void
bench_throughput (int zs, int nthreads)
{
  struct worker w[2];
  struct zs_pool *pool = zs ? zs_create_pool ("bench", NULL) : NULL;
  double alloc_s = 0, free_s = 0, overwrite_s = 0, wall = now ();
  double alloc_cpu = 0, free_cpu = 0, overwrite_cpu = 0;
  size_t ops = 0, overwrites = 0;
  int i;

  for (i = 0; i < nthreads; i++) {
    w[i] = (struct worker) { .pool = pool, .first = i, .step = nthreads };
    pthread_create (&w[i].thread, NULL, run_worker, &w[i]);
  }
  for (i = 0; i < nthreads; i++) {
    pthread_join (w[i].thread, NULL);
    alloc_s += w[i].alloc_s;
    free_s += w[i].free_s;
    ops += w[i].ops;
    overwrite_s += w[i].overwrite_s;
    alloc_cpu += w[i].alloc_cpu;
    free_cpu += w[i].free_cpu;
    overwrite_cpu += w[i].overwrite_cpu;
    overwrites += w[i].overwrites;
  }
  wall = now () - wall;
  /* Per-thread rates summed: the pool's aggregate rate. */
  printf ("  %-8s %d thread%s  wall clock:   alloc+write %5.2f M/s   "
          "free %5.2f M/s   overwrite %5.2f M/s   (%.2f s)\n",
          zs ? "zsmalloc" : "glibc", nthreads, nthreads > 1 ? "s" : " ",
          ops / (alloc_s / nthreads) / 1e6, ops / (free_s / nthreads) / 1e6,
          overwrites / (overwrite_s / nthreads) / 1e6, wall);
  printf ("  %-8s %d thread%s  per CPU-sec:  alloc+write %5.2f M/s   "
          "free %5.2f M/s   overwrite %5.2f M/s\n",
          "", nthreads, nthreads > 1 ? "s" : " ",
          ops / alloc_cpu / 1e6, ops / free_cpu / 1e6,
          overwrites / overwrite_cpu / 1e6);
  zs_destroy_pool (pool);
}

int
main (int argc, char **argv)
{
  struct zs_pool *probe;
  size_t huge;

  if (argc != 2) {
    fprintf (stderr, "usage: %s PAGE-IMAGE\n", argv[0]);
    return 2;
  }
  probe = zs_create_pool ("probe", NULL);
  huge = zs_huge_class_size (probe);
  zs_destroy_pool (probe);

  load_image (argv[1], huge);
  handles = malloc (nobjs * sizeof *handles);
  order = malloc (nobjs * sizeof *order);
  /* Resident now, so that the RssAnon deltas below are the allocators'. */
  memset (handles, 0, nobjs * sizeof *handles);
  shuffle (order, nobjs);

  bench_overhead ();
  bench_glibc ();
  printf ("throughput: %d rounds of storing all objects (zs_malloc + WO map)"
          " and freeing them,\n"
          "then overwrites (free one, store another) with the pool full.\n"
          "Wall-clock rates are summed over threads; per CPU-sec is per\n"
          "second of each thread's own CPU time (steady under other load):\n",
          ROUNDS);
  bench_throughput (1, 1);
  bench_throughput (1, 2);
  bench_throughput (0, 1);
  bench_throughput (0, 2);
  return 0;
}
