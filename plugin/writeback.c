/* uzram engine: writeback of stored blocks to the backing device
 * (backing.h), idle marking by age, and the slots' state for block_state.
 * zram's CONFIG_ZRAM_WRITEBACK, CONFIG_ZRAM_TRACK_ENTRY_ACTIME and
 * CONFIG_ZRAM_MEMORY_TRACKING; engine.h has the contract.
 *
 * One slot at a time, under its slot lock alone: the page is read out
 * (decompressed) into an aligned buffer, written to a newly allocated
 * backing block, and the slot swapped to hold that block's index; its
 * object is freed after the lock is dropped, as a write frees the old one.
 * zram drops the slot lock over the backing write and checks afterwards
 * that nobody touched the slot (ZRAM_PP_SLOT); holding the lock instead
 * costs the same where it matters (one slow block holds up only that
 * block's readers and writers, never another slot) and leaves no window
 * in which the slot and the backing block disagree.
 *
 * Writeback runs under init_lock held for reading, like compaction and
 * idle marking, so reset waits for it; pp_in_progress keeps two of them,
 * or a writeback and a recompression, from running at once (EAGAIN, as
 * zram shares pp_in_progress between the two).
 *
 * The policy that runs writeback by itself is policy.c's.
 */
#include <config.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "device.h"

int
zram_set_backing_dev (struct zram *zram, const char *path)
{
  struct backing *b;
  int r = 0;

  pthread_rwlock_wrlock (&zram->init_lock);
  if (zram_has_table (zram)) {
    r = -EBUSY;
    goto out;
  }
  b = backing_open (path, &r);
  if (b == NULL)
    goto out;
  backing_close (zram->backing);
  zram->backing = b;
 out:
  pthread_rwlock_unlock (&zram->init_lock);
  return r;
}

int
zram_backing_dev (struct zram *zram, char *buf, size_t len)
{
  int r;

  pthread_rwlock_rdlock (&zram->init_lock);
  r = snprintf (buf, len, "%s",
                zram->backing ? zram->backing->path : "none");
  pthread_rwlock_unlock (&zram->init_lock);
  return r;
}

void
zram_set_wb_limit (struct zram *zram, uint64_t blocks)
{
  __atomic_store_n (&zram->wb_limit, blocks, __ATOMIC_RELAXED);
}

uint64_t
zram_wb_limit (struct zram *zram)
{
  return __atomic_load_n (&zram->wb_limit, __ATOMIC_RELAXED);
}

void
zram_set_wb_limit_enable (struct zram *zram, bool on)
{
  __atomic_store_n (&zram->wb_limit_enable, on, __ATOMIC_RELAXED);
}

bool
zram_wb_limit_enable (struct zram *zram)
{
  return __atomic_load_n (&zram->wb_limit_enable, __ATOMIC_RELAXED);
}

/* True if writeback may write one more block (limit off, or not used up). */
static bool
wb_limit_allows (struct zram *zram)
{
  return !zram_wb_limit_enable (zram) || zram_wb_limit (zram) > 0;
}

/* One block written: take it off the limit, which never goes below 0
 * (the limit may have been lowered meanwhile).
 */
static void
wb_limit_charge (struct zram *zram)
{
  uint64_t v = zram_wb_limit (zram);

  if (!zram_wb_limit_enable (zram))
    return;
  while (v > 0 &&
         !__atomic_compare_exchange_n (&zram->wb_limit, &v, v - 1, true,
                                       __ATOMIC_RELAXED, __ATOMIC_RELAXED))
    ;
}

/* True if writeback may write one more block: see wb_limit_allows. */
bool
wb_limit_left (struct zram *zram)
{
  return wb_limit_allows (zram);
}

/* Under init_lock (read). */
static int
check_locked (struct zram *zram)
{
  if (!zram_has_table (zram))
    return -EINVAL;
  if (zram->backing == NULL)
    return -ENODEV;
  return 0;
}

int
zram_writeback_check (struct zram *zram)
{
  int r;

  pthread_rwlock_rdlock (&zram->init_lock);
  r = check_locked (zram);
  pthread_rwlock_unlock (&zram->init_lock);
  return r;
}

/* Whether a slot with flags f is one writeback takes in mode, as zram's
 * scan_slots_for_writeback: stored in memory, and idle, huge or
 * incompressible as the mode asks (huge_idle asks both).
 */
static bool
wb_wants (uint32_t f, uint64_t handle, unsigned mode)
{
  if (handle == 0 || (f & (SLOT_SAME | SLOT_WB)))
    return false;
  if ((mode & ZRAM_WB_IDLE) && !(f & SLOT_IDLE))
    return false;
  if ((mode & ZRAM_WB_HUGE) && !(f & SLOT_HUGE))
    return false;
  if ((mode & ZRAM_WB_INCOMPRESSIBLE) && !(f & SLOT_INCOMPRESSIBLE))
    return false;
  return true;
}

/* Writes back slot index if mode wants it and, with cutoff, it was last
 * accessed before cutoff.  With trylock, a slot whose lock is held is
 * skipped: the caller may hold a slot lock itself (policy.c).
 */
int
writeback_slot (struct zram *zram, uint64_t index, unsigned mode,
                slot_time cutoff, bool trylock)
{
  unsigned char page[ZRAM_BLOCK_SIZE] __attribute__ ((aligned (4096)));
  struct zram_slot *s = &zram->table.slots[index];
  struct slot_val val, old;
  uint64_t block;
  int r;

  if (slot_empty_unlocked (s))
    return WB_SKIPPED;
  if (trylock) {
    if (!slot_trylock (s))
      return WB_SKIPPED;
  }
  else
    slot_lock (s);
  if (!wb_wants (slot_flags (s), s->handle, mode) ||
      (cutoff && !(slot_atime (&zram->table, index) < cutoff))) {
    slot_unlock (s);
    return WB_SKIPPED;
  }
  if (!wb_limit_allows (zram)) {
    slot_unlock (s);
    return -EIO;
  }
  block = backing_alloc (zram->backing);
  if (block == 0) {
    slot_unlock (s);
    return -ENOSPC;
  }
  r = slot_read_locked (zram, s, page, 0, ZRAM_BLOCK_SIZE);
  if (r < 0) {
    /* Corrupt in memory: leave it there, where a read reports it. */
    slot_unlock (s);
    backing_free (zram->backing, block);
    return WB_SKIPPED;
  }
  r = backing_write (zram->backing, block, page);
  if (r < 0) {
    slot_unlock (s);
    backing_free (zram->backing, block);
    STAT_INC (&zram->stats, bd_write_errors);
    return WB_FAILED;
  }
  val.handle = block;
  val.size = 0;
  val.flags = SLOT_WB;
  slot_swap (zram, s, &val, &old);
  /* zram frees the slot before it marks it written back: no access time
   * until the block is next read or written.
   */
  slot_touch (&zram->table, index, 0);
  slot_unlock (s);
  STAT_INC (&zram->stats, bd_writes);
  STAT_INC (&zram->stats, bd_count);
  wb_limit_charge (zram);
  release_old (zram, &old);
  return WB_WRITTEN;
}

int
zram_writeback (struct zram *zram, const struct zram_wb_range *ranges,
                size_t n, uint64_t *written)
{
  uint64_t count = 0, i;
  size_t k;
  int r, err = 0;

  pthread_rwlock_rdlock (&zram->init_lock);
  r = check_locked (zram);
  if (r < 0)
    goto out;
  for (k = 0; k < n; k++)
    if (ranges[k].lo >= ranges[k].hi || ranges[k].hi > zram->table.nr_slots) {
      r = -ERANGE;
      goto out;
    }
  if (__atomic_exchange_n (&zram->pp_in_progress, 1, __ATOMIC_ACQUIRE)) {
    r = -EAGAIN;
    goto out;
  }
  for (k = 0; k < n && r == 0; k++)
    for (i = ranges[k].lo; i < ranges[k].hi; i++) {
      if (!table_page_touched (&zram->table, i)) {
        i = next_table_page (i) - 1;
        continue;
      }
      r = writeback_slot (zram, i, ranges[k].mode, 0, false);
      if (r < 0)
        break;
      if (r == WB_WRITTEN)
        count++;
      /* A backing write failed: as zram, go on with the rest and report
       * the error at the end.
       */
      else if (r == WB_FAILED)
        err = -EIO;
      r = 0;
    }
  __atomic_store_n (&zram->pp_in_progress, 0, __ATOMIC_RELEASE);
  if (r == 0)
    r = err;
 out:
  pthread_rwlock_unlock (&zram->init_lock);
  if (written)
    *written = count;
  return r;
}

int
zram_mark_idle (struct zram *zram, uint64_t age_secs)
{
  slot_time now = slot_now (), cutoff = 0;
  /* An age beyond the uptime: nothing was accessed that long ago. */
  bool none = age_secs > 0 && age_secs >= now;
  uint64_t i;
  int r = 0;

  /* zram marks a slot whose access time is before now - age; age 0 (and
   * `all`) marks every slot.
   */
  if (age_secs > 0 && !none)
    cutoff = now - (slot_time) age_secs;

  pthread_rwlock_rdlock (&zram->init_lock);
  if (!zram_has_table (zram))
    r = -EINVAL;
  else if (!none) {
    for (i = 0; i < zram->table.nr_slots; i++) {
      struct zram_slot *s = &zram->table.slots[i];

      if (!table_page_touched (&zram->table, i)) {
        i = next_table_page (i) - 1;
        continue;
      }
      if (slot_empty_unlocked (s))
        continue;
      /* As zram's mark_idle: a stored slot in memory, not a same-filled
       * one (nothing is ever done to it) nor one written back (which
       * zram says cannot be idle).
       */
      slot_lock (s);
      if (s->handle && !(slot_flags (s) & (SLOT_SAME | SLOT_WB)) &&
          (cutoff == 0 || slot_atime (&zram->table, i) < cutoff))
        slot_update_flags (s, 0, SLOT_IDLE);
      slot_unlock (s);
    }
  }
  pthread_rwlock_unlock (&zram->init_lock);
  return r;
}

int
zram_mark_idle_all (struct zram *zram)
{
  return zram_mark_idle (zram, 0);
}

int
zram_block_state (struct zram *zram, zram_block_fn fn, void *opaque)
{
  uint64_t i;
  int r = 0;

  pthread_rwlock_rdlock (&zram->init_lock);
  if (!zram_has_table (zram))
    r = -EINVAL;
  else
    for (i = 0; i < zram->table.nr_slots && r == 0; i++) {
      struct zram_slot *s = &zram->table.slots[i];
      uint32_t f, t;
      bool allocated;

      if (!table_page_touched (&zram->table, i)) {
        i = next_table_page (i) - 1;
        continue;
      }
      if (slot_empty_unlocked (s))
        continue;
      slot_lock (s);
      f = slot_flags (s);
      allocated = (f & SLOT_SAME) || s->handle;
      t = slot_atime (&zram->table, i);
      slot_unlock (s);
      if (allocated)
        r = fn (opaque, i, t, f);
    }
  pthread_rwlock_unlock (&zram->init_lock);
  return r;
}
