/* uzram engine: the device, shared by its life cycle (engine.c) and its
 * I/O path (io.c).  Not part of the engine's API (engine.h).
 *
 * Locking (outermost first):
 *   zram->init_lock   (rwlock) the life cycle: held for writing by
 *                     disksize and reset, for reading by zram_get, the
 *                     statistics, compact and idle.  Never on the I/O path:
 *                     I/O runs only between zram_get and zram_put, and
 *                     reset is refused while any client holds the device.
 *   slot lock         one block's entry and object (slot.h); held over
 *                     decompression and a partial block's
 *                     read-modify-write, never over more than one slot.
 *   (allocator)       zsmalloc's own locks, inside zs_* calls.
 */
#ifndef UZRAM_DEVICE_H
#define UZRAM_DEVICE_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "zsmalloc.h"
#include "comp.h"
#include "engine.h"
#include "slot.h"
#include "stats.h"

struct zram {
  pthread_rwlock_t init_lock;
  /* Set under init_lock held for writing, while no client holds the
   * device; read freely between zram_get and zram_put.
   */
  struct slot_table table;              /* table.slots NULL: uninitialised */
  uint64_t disksize;                    /* atomic: 0 while uninitialised */
  struct zs_pool *pool;
  size_t huge_class_size;               /* objects this big are stored raw */
  const struct zcomp *comp;             /* atomic: read without the lock */
  /* The recompression algorithms by priority (recomp[0] unused: that is
   * comp), set while uninitialised, cleared by reset.
   */
  const struct zcomp *recomp[ZRAM_MAX_COMPS];
  /* algorithm_params per priority (0: comp), written while uninitialised;
   * confs[prio] is made from the priority's algorithm and params[prio] at
   * initialisation (NULL for a priority without one), freed at reset, and
   * only read between the two.  A stored slot's priority picks the conf
   * that decompresses it.
   */
  struct zcomp_params params[ZRAM_MAX_COMPS];
  struct zcomp_conf *confs[ZRAM_MAX_COMPS];
  /* One above the highest priority with a conf: recompression's upper
   * bound (zram's num_active_comps, for priorities set without gaps).
   */
  unsigned nr_prios;
  int pp_in_progress;                   /* atomic: recompress running */

  const struct zcomp *default_comp;     /* what reset returns to */
  uint64_t default_mem_limit;

  bool has_pages;
  struct zs_ops pages;                  /* the pool's page source */

  uint64_t limit_pages;                 /* atomic; 0: no limit */
  uint64_t max_used_pages;              /* atomic */
  uint64_t clients;                     /* atomic */

  struct counters stats;
};

/* io.c: under the slot lock, bytes [off, off+n) of the block into dst;
 * -EIO for data that does not decompress to exactly one page.
 */
int slot_read_locked (struct zram *zram, struct zram_slot *s,
                      unsigned char *dst, uint32_t off, uint32_t n);

static inline bool
zram_has_table (const struct zram *zram)
{
  return zram->table.slots != NULL;
}

#endif /* UZRAM_DEVICE_H */
