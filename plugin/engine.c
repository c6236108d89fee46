/* uzram engine: one device's life cycle, its settings and the snapshot of
 * its statistics.  See engine.h for the contract, device.h for the device
 * and its locking, slot.h for the slot table, io.c for the I/O path and
 * stats.h for the counters.
 *
 * Writeback, idle marking and block_state are writeback.c's;
 * recompression is recompress.c's.
 */
#include <config.h>

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "zsmalloc.h"
#include "device.h"

/* Each block's object, and as many again for rewrites in flight (the new
 * object is allocated before the old one is freed): the pool's handles
 * must cover the largest disk.
 */
_Static_assert (ZRAM_MAX_DISKSIZE / ZRAM_BLOCK_SIZE * 2 <= ZS_MAX_OBJECTS + 1,
                "the allocator's handles must address the largest disk");

/* --- Life cycle --- */

struct zram *
zram_create_with (const struct zs_ops *pages)
{
  struct zram *zram;
  size_t i;
  int err;

  zram = calloc (1, sizeof *zram);
  if (zram == NULL)
    return NULL;
  if (counters_create (&zram->stats) < 0) {
    free (zram);
    errno = ENOMEM;
    return NULL;
  }
  err = pthread_rwlock_init (&zram->init_lock, NULL);
  if (err) {
    counters_destroy (&zram->stats);
    free (zram);
    errno = err;
    return NULL;
  }
  zram->default_comp = zram->comp = zcomp_find (ZRAM_DEFAULT_COMP);
  for (i = 0; i < ZRAM_MAX_COMPS; i++)
    zcomp_params_init (&zram->params[i]);
  if (pages) {
    zram->has_pages = true;
    zram->pages = *pages;
  }
  return zram;
}

struct zram *
zram_create (void)
{
  return zram_create_with (NULL);
}

/* Under init_lock for writing: the compressors' confs. */
static void
free_confs (struct zram *zram)
{
  size_t i;

  for (i = 0; i < ZRAM_MAX_COMPS; i++) {
    zcomp_conf_free (zram->confs[i]);
    zram->confs[i] = NULL;
  }
  zram->nr_prios = 0;
}

/* Under init_lock for writing: makes a conf for every priority that has
 * an algorithm, as zram's disksize_store makes its zcomps.  0 or the
 * first error, with none made.
 */
static int
make_confs (struct zram *zram)
{
  size_t i;
  int r = 0;

  for (i = 0; i < ZRAM_MAX_COMPS; i++) {
    const struct zcomp *comp = i == 0 ? zram->comp : zram->recomp[i];

    if (comp == NULL)
      continue;
    zram->confs[i] = zcomp_conf_new (comp, &zram->params[i], &r);
    if (zram->confs[i] == NULL) {
      free_confs (zram);
      return r;
    }
    zram->nr_prios = i + 1;
  }
  return 0;
}

/* Under init_lock for writing: frees the table and the pool and zeroes
 * the statistics.
 */
static void
teardown (struct zram *zram)
{
  /* Destroying the pool frees every object at once. */
  if (zram->pool)
    zs_destroy_pool (zram->pool);
  __atomic_store_n (&zram->disksize, 0, __ATOMIC_RELEASE);
  slot_table_destroy (&zram->table);
  zram->pool = NULL;
  free_confs (zram);
  counters_zero (&zram->stats);
  __atomic_store_n (&zram->max_used_pages, 0, __ATOMIC_RELAXED);
  /* As zram's reset_bdev: reset lets go of the backing device. */
  backing_close (zram->backing);
  zram->backing = NULL;
}

void
zram_destroy (struct zram *zram)
{
  size_t i;

  if (zram == NULL)
    return;
  zram_policy_stop (zram);
  teardown (zram);
  for (i = 0; i < ZRAM_MAX_COMPS; i++)
    zcomp_params_clear (&zram->params[i]);
  pthread_rwlock_destroy (&zram->init_lock);
  counters_destroy (&zram->stats);
  free (zram);
}

int
zram_set_comp_algorithm (struct zram *zram, const char *name)
{
  const struct zcomp *comp = zcomp_find (name);
  int r = 0;

  if (comp == NULL)
    return -EINVAL;
  pthread_rwlock_wrlock (&zram->init_lock);
  if (zram_has_table (zram))
    r = -EBUSY;
  else
    __atomic_store_n (&zram->comp, comp, __ATOMIC_RELAXED);
  pthread_rwlock_unlock (&zram->init_lock);
  return r;
}

int
zram_set_comp_params (struct zram *zram, const char *algo, int prio,
                      struct zcomp_params *params)
{
  int r = 0;

  pthread_rwlock_wrlock (&zram->init_lock);
  /* As zram: algo= picks the first priority whose algorithm has that
   * name.
   */
  if (algo) {
    int p;

    prio = -1;
    for (p = ZRAM_MAX_COMPS - 1; p >= 0; p--) {
      const struct zcomp *c = p == 0 ? zram->comp : zram->recomp[p];

      if (c && strcmp (algo, zcomp_name (c)) == 0)
        prio = p;
    }
  }
  if (prio < 0 || prio >= ZRAM_MAX_COMPS)
    r = -EINVAL;
  else if (!zram_has_table (zram)) {
    zcomp_params_clear (&zram->params[prio]);
    zram->params[prio] = *params;
    zcomp_params_init (params);
  }
  /* Initialised: the write is taken and changes nothing, as in Linux
   * 6.18, whose compressor took its parameters at initialisation (and
   * whose reset clears them).
   */
  pthread_rwlock_unlock (&zram->init_lock);
  zcomp_params_clear (params);
  return r;
}

int
zram_set_recomp_algorithm (struct zram *zram, int prio, const char *name)
{
  const struct zcomp *comp = zcomp_find (name);
  int r = 0;

  if (prio < 1 || prio >= ZRAM_MAX_COMPS || comp == NULL)
    return -EINVAL;
  pthread_rwlock_wrlock (&zram->init_lock);
  if (zram_has_table (zram))
    r = -EBUSY;
  else
    zram->recomp[prio] = comp;
  pthread_rwlock_unlock (&zram->init_lock);
  return r;
}

const char *
zram_recomp_algorithm (struct zram *zram, int prio)
{
  const char *name = NULL;

  if (prio < 1 || prio >= ZRAM_MAX_COMPS)
    return NULL;
  pthread_rwlock_rdlock (&zram->init_lock);
  if (zram->recomp[prio])
    name = zcomp_name (zram->recomp[prio]);
  pthread_rwlock_unlock (&zram->init_lock);
  return name;
}

const struct zcomp_params *
zram_comp_params (struct zram *zram, int prio)
{
  return &zram->params[prio];
}

const char *
zram_comp_algorithm (struct zram *zram)
{
  return zcomp_name (__atomic_load_n (&zram->comp, __ATOMIC_RELAXED));
}

const char *const *
zram_comp_algorithms (void)
{
  return zcomp_names ();
}

int
zram_set_defaults (struct zram *zram, const char *comp_algorithm,
                   uint64_t mem_limit)
{
  const struct zcomp *comp = zcomp_find (comp_algorithm);

  if (comp == NULL)
    return -EINVAL;
  pthread_rwlock_wrlock (&zram->init_lock);
  zram->default_comp = comp;
  zram->default_mem_limit = mem_limit;
  if (!zram_has_table (zram)) {
    __atomic_store_n (&zram->comp, comp, __ATOMIC_RELAXED);
    zram_set_mem_limit (zram, mem_limit);
  }
  pthread_rwlock_unlock (&zram->init_lock);
  return 0;
}

/* The most populate faults in: a sixteenth of the RAM, and 64 MiB (the
 * tables of a 9 GiB disk).  A larger disk than that is far more swap than
 * this machine can fill, and keeps its tables sparse, locked as touched.
 */
#define POPULATE_MAX (64ULL << 20)

/* For swap: the slot table and the handle table faulted in whole, as
 * Linux's zram allocates its table at disksize.  An I/O thread that
 * touches a page of either for the first time waits for memory, and under
 * the whole machine's pressure that memory waits for the swap writes the
 * thread is there to serve.  init_lock held for writing.
 */
static void
populate (struct zram *zram)
{
  uint64_t n = zram->table.nr_slots, max = POPULATE_MAX;
  uint64_t bytes = slot_table_bytes (n) + n * sizeof (uint64_t);
  long ram = sysconf (_SC_PHYS_PAGES), page = sysconf (_SC_PAGESIZE);

  if (ram > 0 && page > 0 && (uint64_t) ram * page / 16 < max)
    max = (uint64_t) ram * page / 16;
  if (bytes > max)
    return;
  slot_table_populate (&zram->table);
  /* Best effort, as the slot table's: the device works without. */
  zs_populate_handles (zram->pool, n);
}

int
zram_set_disksize (struct zram *zram, uint64_t bytes)
{
  struct zs_pool *pool;
  uint64_t nr_slots;
  int r = 0;

  if (bytes == 0 || bytes > ZRAM_MAX_DISKSIZE)
    return -EINVAL;
  nr_slots = (bytes + ZRAM_BLOCK_SIZE - 1) >> ZRAM_BLOCK_SHIFT;

  pthread_rwlock_wrlock (&zram->init_lock);
  if (zram_has_table (zram)) {
    r = -EBUSY;
    goto out;
  }
  /* The compressors take algorithm_params now, as zram's do. */
  r = make_confs (zram);
  if (r < 0)
    goto out;
  pool = zs_create_pool ("zram", zram->has_pages ? &zram->pages : NULL);
  if (pool == NULL) {
    r = -errno;
    free_confs (zram);
    goto out;
  }
  r = slot_table_create (&zram->table, nr_slots);
  if (r < 0) {
    zs_destroy_pool (pool);
    free_confs (zram);
    goto out;
  }
  zram->pool = pool;
  if (zram->populate)
    populate (zram);
  zram->huge_class_size = zs_huge_class_size (pool);
  __atomic_store_n (&zram->disksize, nr_slots << ZRAM_BLOCK_SHIFT,
                    __ATOMIC_RELEASE);
 out:
  pthread_rwlock_unlock (&zram->init_lock);
  return r;
}

/* Both without the lock: front ends ask for the size on every request
 * (the `disk` file checks its ranges), so it must cost one load.
 */
void
zram_set_populate (struct zram *zram)
{
  pthread_rwlock_wrlock (&zram->init_lock);
  zram->populate = true;
  if (zram_has_table (zram))
    populate (zram);
  pthread_rwlock_unlock (&zram->init_lock);
}

bool
zram_prepare_thread (struct zram *zram)
{
  unsigned char page[2][ZRAM_BLOCK_SIZE], back[ZRAM_BLOCK_SIZE];
  const void *out;
  uint32_t x = 1;
  size_t len, i, k;
  bool done;

  /* One page that compresses, for the decompressor's memory too, and one
   * that does not, whose output fills the thread's output buffer.
   */
  for (i = 0; i < ZRAM_BLOCK_SIZE; i++) {
    page[0][i] = (unsigned char) (i * 31 ^ i >> 5);
    x = x * 1103515245 + 12345;
    page[1][i] = (unsigned char) (x >> 16);
  }
  pthread_rwlock_rdlock (&zram->init_lock);
  done = !zram->populate || zram_has_table (zram);
  if (zram->populate && zram_has_table (zram))
    for (i = 0; i < ZRAM_MAX_COMPS; i++)
      for (k = 0; k < 2 && zram->confs[i]; k++)
        if (zcomp_compress (zram->confs[i], page[k], &out, &len) == 0 &&
            len <= ZRAM_BLOCK_SIZE)
          (void) zcomp_decompress (zram->confs[i], out, len, back);
  pthread_rwlock_unlock (&zram->init_lock);
  return done;
}

uint64_t
zram_disksize (struct zram *zram)
{
  return __atomic_load_n (&zram->disksize, __ATOMIC_ACQUIRE);
}

bool
zram_initialised (struct zram *zram)
{
  return zram_disksize (zram) != 0;
}

int
zram_reset (struct zram *zram)
{
  size_t i;
  int r = 0;

  pthread_rwlock_wrlock (&zram->init_lock);
  /* Acquire, pairing with zram_put's release: every access a client made
   * before it let go happens before the teardown frees what it touched.
   */
  if (__atomic_load_n (&zram->clients, __ATOMIC_ACQUIRE) > 0)
    r = -EBUSY;
  else {
    teardown (zram);
    /* Linux 6.18 goes back to its default compressor, without
     * algorithm_params, and no limit.
     */
    __atomic_store_n (&zram->comp, zram->default_comp, __ATOMIC_RELAXED);
    for (i = 0; i < ZRAM_MAX_COMPS; i++) {
      zcomp_params_clear (&zram->params[i]);
      zram->recomp[i] = NULL;
    }
    zram_set_mem_limit (zram, zram->default_mem_limit);
  }
  pthread_rwlock_unlock (&zram->init_lock);
  return r;
}

void
zram_set_mem_limit (struct zram *zram, uint64_t bytes)
{
  /* zram keeps the limit in whole pages, rounding up. */
  __atomic_store_n (&zram->limit_pages,
                    (bytes + ZRAM_BLOCK_SIZE - 1) >> ZRAM_BLOCK_SHIFT,
                    __ATOMIC_RELAXED);
}

void
zram_reset_mem_used_max (struct zram *zram)
{
  pthread_rwlock_rdlock (&zram->init_lock);
  __atomic_store_n (&zram->max_used_pages,
                    zram->pool ? zs_get_total_pages (zram->pool) : 0,
                    __ATOMIC_RELAXED);
  pthread_rwlock_unlock (&zram->init_lock);
}

void
zram_compact (struct zram *zram)
{
  pthread_rwlock_rdlock (&zram->init_lock);
  if (zram->pool)
    STAT_ADD (&zram->stats, pages_compacted, zs_compact (zram->pool));
  pthread_rwlock_unlock (&zram->init_lock);
}

int
zram_get (struct zram *zram)
{
  int r = 0;

  pthread_rwlock_rdlock (&zram->init_lock);
  if (zram->retired)
    r = -ENODEV;
  else if (!zram_has_table (zram))
    r = -ENXIO;
  else
    __atomic_fetch_add (&zram->clients, 1, __ATOMIC_RELAXED);
  pthread_rwlock_unlock (&zram->init_lock);
  return r;
}

void
zram_put (struct zram *zram)
{
  __atomic_fetch_sub (&zram->clients, 1, __ATOMIC_RELEASE);
}

int
zram_retire (struct zram *zram)
{
  int r = 0;

  pthread_rwlock_wrlock (&zram->init_lock);
  if (__atomic_load_n (&zram->clients, __ATOMIC_ACQUIRE) > 0)
    r = -EBUSY;
  else
    zram->retired = true;
  pthread_rwlock_unlock (&zram->init_lock);
  return r;
}

/* --- Statistics --- */

void
zram_get_stats (struct zram *zram, struct zram_stats *out)
{
  memset (out, 0, sizeof *out);
  pthread_rwlock_rdlock (&zram->init_lock);
  if (zram_has_table (zram))
    counters_update_io_ticks (&zram->stats);
  counters_sum (&zram->stats, out);
  out->disksize = zram->disksize;
  out->initialised = zram_has_table (zram);
  out->orig_data_size = (out->pages_stored + out->same_pages)
    << ZRAM_BLOCK_SHIFT;
  out->mem_used_total = zram->pool
    ? (uint64_t) zs_get_total_pages (zram->pool) << ZRAM_BLOCK_SHIFT : 0;
  out->mem_limit = __atomic_load_n (&zram->limit_pages, __ATOMIC_RELAXED)
    << ZRAM_BLOCK_SHIFT;
  out->mem_used_max = __atomic_load_n (&zram->max_used_pages,
                                       __ATOMIC_RELAXED) << ZRAM_BLOCK_SHIFT;
  out->clients = __atomic_load_n (&zram->clients, __ATOMIC_RELAXED);
  pthread_rwlock_unlock (&zram->init_lock);
}

size_t
zram_class_stats (struct zram *zram, struct zs_class_stat *out, size_t n)
{
  size_t r = 0;

  pthread_rwlock_rdlock (&zram->init_lock);
  if (zram->pool)
    r = zs_pool_class_stats (zram->pool, out, n);
  pthread_rwlock_unlock (&zram->init_lock);
  return r;
}

