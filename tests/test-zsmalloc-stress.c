/* uzram: multi-threaded stress test of libzsmalloc.
 *
 * NR_WORKERS threads share a table of slots, each guarded by its own mutex
 * (the caller's locking, as the plugin's slot table has).  A worker picks
 * a random slot and allocates into it (random size 1..4096, written through
 * a WO or RW mapping), or reads it back and checks every byte, or rewrites
 * it in place through RW, or frees it.  Objects are freed by other threads
 * than the ones that allocated them.  Meanwhile one more thread runs
 * zs_compact, the class statistics and zs_get_total_pages in a loop.
 *
 * Runs STRESS_SECONDS seconds (default 3), half on a pool as it is by
 * default and half with a reserve for swap (zs_set_reserve: zspage
 * headers from the source's pages); after each half it checks every
 * object once more, frees all and checks that no page is left.
 */
#include <config.h>

#undef NDEBUG
#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "zsmalloc.h"
#include "testlib.h"

#define NR_WORKERS 4
#define NR_SLOTS 8192

struct slot {
  pthread_mutex_t lock;
  unsigned long handle;
  unsigned size;
  uint64_t seed;
};

static struct zs_pool *pool;
static struct slot slots[NR_SLOTS];
static atomic_bool stop;
static atomic_ulong nr_ops, nr_checks, nr_compacted;

static void
write_object (unsigned long h, unsigned size, uint64_t seed,
              enum zs_mapmode mm)
{
  unsigned char *p = zs_map_object (pool, h, mm);
  unsigned i;

  for (i = 0; i < size; i++)
    p[i] = pattern_byte (seed, i);
  zs_unmap_object (pool, h);
}

static void
check_bytes (const unsigned char *p, struct slot *s)
{
  unsigned i;

  for (i = 0; i < s->size; i++)
    if (p[i] != pattern_byte (s->seed, i)) {
      fprintf (stderr, "FAIL: handle %lu size %u: byte %u is %#x, "
               "not %#x\n", s->handle, s->size, i, p[i],
               pattern_byte (s->seed, i));
      abort ();
    }
  atomic_fetch_add_explicit (&nr_checks, 1, memory_order_relaxed);
}

static void
check_object (struct slot *s)
{
  const unsigned char *p = zs_map_object (pool, s->handle, ZS_MM_RO);

  check_bytes (p, s);
  zs_unmap_object (pool, s->handle);
}

static void *
worker (void *arg)
{
  uint64_t r = 0x1234567890abcdefULL * ((uintptr_t) arg + 1);

  while (!atomic_load_explicit (&stop, memory_order_relaxed)) {
    struct slot *s = &slots[xorshift64 (&r) % NR_SLOTS];
    unsigned what = xorshift64 (&r) % 8;

    pthread_mutex_lock (&s->lock);
    if (!s->handle) {
      /* Mostly small objects, as compressed pages are, some large. */
      unsigned size = what < 6 ? 1 + xorshift64 (&r) % 2048 : 1 + xorshift64 (&r) % 4096;

      s->handle = zs_malloc (pool, size);
      if (!s->handle) {
        fprintf (stderr, "FAIL: zs_malloc (%u): %s\n", size, strerror (errno));
        abort ();
      }
      s->size = size;
      s->seed = xorshift64 (&r);
      write_object (s->handle, size, s->seed, what & 1 ? ZS_MM_WO : ZS_MM_RW);
    }
    else if (what < 4)
      check_object (s);
    else if (what < 6) {
      /* Read, then rewrite in place through one RW mapping. */
      unsigned char *p = zs_map_object (pool, s->handle, ZS_MM_RW);
      unsigned i;

      check_bytes (p, s);
      s->seed = xorshift64 (&r);
      for (i = 0; i < s->size; i++)
        p[i] = pattern_byte (s->seed, i);
      zs_unmap_object (pool, s->handle);
    }
    else {
      check_object (s);
      zs_free (pool, s->handle);
      s->handle = 0;
    }
    pthread_mutex_unlock (&s->lock);
    atomic_fetch_add_explicit (&nr_ops, 1, memory_order_relaxed);
  }
  return NULL;
}

static void *
compactor (void *arg)
{
  struct zs_class_stat st[600];

  (void) arg;
  while (!atomic_load_explicit (&stop, memory_order_relaxed)) {
    size_t n, i;
    unsigned long pages = 0;

    atomic_fetch_add_explicit (&nr_compacted, zs_compact (pool),
                               memory_order_relaxed);
    n = zs_pool_class_stats (pool, st, 600);
    assert (n <= 600);
    for (i = 0; i < n; i++) {
      assert (st[i].obj_used <= st[i].obj_allocated);
      pages += st[i].pages_used;
    }
    (void) pages;
    (void) zs_get_total_pages (pool);
    usleep (1000);
  }
  return NULL;
}

/* One run of `seconds`, on a fresh pool; 0 if it passed. */
static int
stress (const char *what, double seconds)
{
  pthread_t t[NR_WORKERS + 1];
  struct timespec ts;
  unsigned long live = 0;
  int i;

  pool = zs_create_pool ("stress", NULL);
  assert (pool);
  atomic_store (&stop, 0);
  atomic_store (&nr_ops, 0);
  atomic_store (&nr_checks, 0);
  atomic_store (&nr_compacted, 0);
  for (i = 0; i < NR_WORKERS; i++)
    assert (pthread_create (&t[i], NULL, worker, (void *) (uintptr_t) i) == 0);
  assert (pthread_create (&t[NR_WORKERS], NULL, compactor, NULL) == 0);

  ts.tv_sec = seconds;
  ts.tv_nsec = (seconds - ts.tv_sec) * 1e9;
  nanosleep (&ts, NULL);
  atomic_store (&stop, 1);
  for (i = 0; i <= NR_WORKERS; i++)
    pthread_join (t[i], NULL);

  for (i = 0; i < NR_SLOTS; i++)
    if (slots[i].handle) {
      check_object (&slots[i]);
      live++;
    }
  printf ("%s: %lu operations, %lu objects checked, %lu pages compacted, "
          "%lu live objects in %lu pages\n", what,
          atomic_load (&nr_ops), atomic_load (&nr_checks),
          atomic_load (&nr_compacted), live, zs_get_total_pages (pool));
  zs_compact (pool);
  for (i = 0; i < NR_SLOTS; i++)
    if (slots[i].handle)
      check_object (&slots[i]);
  for (i = 0; i < NR_SLOTS; i++) {
    zs_free (pool, slots[i].handle);
    slots[i].handle = 0;
  }
  if (zs_get_total_pages (pool) != 0) {
    fprintf (stderr, "FAIL: %s: %lu pages left\n", what,
             zs_get_total_pages (pool));
    return 1;
  }
  zs_destroy_pool (pool);
  return 0;
}

int
main (void)
{
  const char *env = getenv ("STRESS_SECONDS");
  double seconds = env ? atof (env) : 3;
  int i;

  for (i = 0; i < NR_SLOTS; i++)
    pthread_mutex_init (&slots[i].lock, NULL);
  if (stress ("malloc'd headers", seconds / 2))
    return 1;
  /* As a swap server runs (mlock=true): zspage headers carved from the
   * reserve's pages, freed and reused across threads and compaction.
   */
  zs_set_reserve (1024);
  if (stress ("with a reserve", seconds / 2))
    return 1;
  zs_set_reserve (0);
  printf ("PASS\n");
  return 0;
}
