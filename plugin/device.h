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
 *                     decompression, a partial block's read-modify-write
 *                     and one backing read or write.  A second slot's lock
 *                     is only ever tried (slot_trylock: the policy's reclaim
 *                     on the write path), never waited for.
 *   backing->lock     the backing device's bitmap (backing.h): one search,
 *                     no I/O under it.
 *   (allocator)       zsmalloc's own locks, inside zs_* calls.
 */
#ifndef UZRAM_DEVICE_H
#define UZRAM_DEVICE_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "zsmalloc.h"
#include "backing.h"
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
  int pp_in_progress;                   /* atomic: recompress or writeback runs */

  const struct zcomp *default_comp;     /* what reset returns to */
  uint64_t default_mem_limit;

  bool has_pages;
  struct zs_ops pages;                  /* the pool's page source */
  bool populate;                        /* zram_set_populate, under init_lock */

  uint64_t limit_pages;                 /* atomic; 0: no limit */
  uint64_t max_used_pages;              /* atomic */
  uint64_t clients;                     /* atomic */
  /* Set under init_lock held for writing while no client holds the
   * device (zram_retire): zram_get refuses from then on.
   */
  bool retired;

  /* Set under init_lock held for writing while uninitialised (backing_dev)
   * or by reset; read freely by the I/O path and by writeback.
   */
  struct backing *backing;              /* NULL: none */
  uint64_t wb_limit;                    /* atomic: 4 KiB blocks */
  bool wb_limit_enable;                 /* atomic */

  /* The writeback policy (policy.c); kept across reset. */
  uint64_t policy_idle_secs;            /* atomic; 0: off */
  uint64_t policy_recomp_secs;          /* atomic; 0: off */
  bool policy_near_limit;               /* atomic */
  uint64_t policy_cursor;               /* atomic: where reclaim goes on */
  struct policy_thread *policy;         /* NULL: not running */

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

/* The I/O path's slot operations, shared with writeback (io.c). */
struct slot_val {
  uint64_t handle;      /* handle, word with SLOT_SAME, block with SLOT_WB */
  uint32_t size;
  uint32_t flags;       /* SLOT_SAME, SLOT_HUGE, SLOT_WB or 0 */
};

/* Under the slot lock: bytes [off, off+n) of the block into dst.  -EIO
 * for data that does not decompress to exactly one page, or a failed
 * backing read.
 */
int slot_read_locked (struct zram *zram, struct zram_slot *s,
                      unsigned char *dst, uint32_t off, uint32_t n);
/* Under the slot lock: puts val into the slot, what was there into *old. */
void slot_swap (struct zram *zram, struct zram_slot *s,
                const struct slot_val *val, struct slot_val *old);
/* After unlocking: frees what slot_swap took out; true if anything. */
bool release_old (struct zram *zram, const struct slot_val *old);

/* Writeback of one slot (writeback.c), for writeback and the policy:
 * with cutoff (not 0), only a slot last accessed before it; with trylock,
 * skipping a slot whose lock is held.  Returns one of WB_*, or stops
 * writeback with -EIO (the writeback limit is used up) or -ENOSPC (the
 * backing device is full).  Under init_lock or as a client, with a backing
 * device.
 */
enum { WB_SKIPPED, WB_WRITTEN, WB_FAILED };
int writeback_slot (struct zram *zram, uint64_t index, unsigned mode,
                    slot_time cutoff, bool trylock);
bool wb_limit_left (struct zram *zram);

/* zram_recompress under init_lock (read), for recompress and the policy:
 * with cutoff (not 0), only slots last accessed before it.  *done: the
 * slots a smaller object was swapped into.
 */
struct zram_recompress_req;
int recompress_locked (struct zram *zram, const struct zram_recompress_req *req,
                       slot_time cutoff, uint64_t *done);

/* A write over mem_limit (io.c), as a client, holding at most one slot
 * lock: with the policy's near_limit on, writes back idle then huge
 * blocks and compacts.  True if memory was freed: try again.
 */
bool policy_reclaim (struct zram *zram);

#endif /* UZRAM_DEVICE_H */
