/* uzram engine: one device's life cycle, its settings and the snapshot of
 * its statistics.  See engine.h for the contract, device.h for the device
 * and its locking, slot.h for the slot table, io.c for the I/O path and
 * stats.h for the counters.
 *
 * Writeback, idle marking and block_state are writeback.c's.
 *
 * Still to do: recompression.
 */
#include <config.h>

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "device.h"
/* --- Life cycle --- */

struct zram *
zram_create_with (const struct zs_ops *pages)
{
  struct zram *zram;
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
  zram->default_comp = zram->comp = zcomp_find ("lzo");
  zram->comp_level = ZCOMP_LEVEL_DEFAULT;
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
  counters_zero (&zram->stats);
  __atomic_store_n (&zram->max_used_pages, 0, __ATOMIC_RELAXED);
  /* As zram's reset_bdev: reset lets go of the backing device. */
  backing_close (zram->backing);
  zram->backing = NULL;
}

void
zram_destroy (struct zram *zram)
{
  if (zram == NULL)
    return;
  zram_policy_stop (zram);
  teardown (zram);
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
zram_set_comp_params (struct zram *zram, const char *algo, int level)
{
  int r = 0;

  pthread_rwlock_wrlock (&zram->init_lock);
  if (algo && strcmp (algo, zcomp_name (zram->comp)) != 0)
    r = -EINVAL;
  else if (!zram_has_table (zram))
    __atomic_store_n (&zram->comp_level, level, __ATOMIC_RELAXED);
  /* Initialised: the write is taken and changes nothing, as in Linux
   * 6.18, whose compressor took its level at initialisation (and whose
   * reset clears it).
   */
  pthread_rwlock_unlock (&zram->init_lock);
  return r;
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
  pool = zs_create_pool ("zram", zram->has_pages ? &zram->pages : NULL);
  if (pool == NULL) {
    r = -errno;
    goto out;
  }
  r = slot_table_create (&zram->table, nr_slots);
  if (r < 0) {
    zs_destroy_pool (pool);
    goto out;
  }
  zram->pool = pool;
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
    __atomic_store_n (&zram->comp_level, ZCOMP_LEVEL_DEFAULT,
                      __ATOMIC_RELAXED);
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
  if (!zram_has_table (zram))
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

