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
  int comp_level;                       /* algorithm_params' level; atomic */

  const struct zcomp *default_comp;     /* what reset returns to */
  uint64_t default_mem_limit;

  bool has_pages;
  struct zs_ops pages;                  /* the pool's page source */

  uint64_t limit_pages;                 /* atomic; 0: no limit */
  uint64_t max_used_pages;              /* atomic */
  uint64_t clients;                     /* atomic */

  struct counters stats;
};

static inline bool
zram_has_table (const struct zram *zram)
{
  return zram->table.slots != NULL;
}

#endif /* UZRAM_DEVICE_H */
