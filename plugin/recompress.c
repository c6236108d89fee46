/* uzram engine: recompression (zram's CONFIG_ZRAM_MULTI_COMP).
 *
 * recomp_algorithm gives up to three more algorithms, priorities 1 to 3.
 * A write to recompress picks stored slots (idle, huge, or both, or all)
 * and compresses each again with those algorithms in priority order,
 * keeping the first result that lands in a smaller size class than the
 * object it replaces (and, with threshold=, is below it).  The slot then
 * records the priority that wrote it (SLOT_PRIO_MASK, slot.h), and reads
 * decompress it with that priority's conf.  A slot that even the last
 * algorithm could not shrink is marked SLOT_INCOMPRESSIBLE and is not
 * picked again until rewritten.
 *
 * As zram_drv.c does it (6.12 and later):
 *   1. scan: under each slot's lock, mark the slots that qualify SLOT_PP
 *      (stored, not same-filled nor incompressible, idle and/or huge as
 *      type= asks, not yet written by the last priority asked for) and
 *      sort them into buckets by object size;
 *   2. take them largest first (max_pages spends itself on the biggest
 *      savings), each one:
 *        lock, check SLOT_PP, copy the page out (decompressed, or raw for
 *        a huge one), clear SLOT_IDLE, unlock;
 *        compress and allocate with no lock held, as the write path does;
 *        lock again: if SLOT_PP is still set nothing wrote or freed the
 *        slot meanwhile (slot_swap clears it), so swap the new object in;
 *        otherwise drop the new object, the slot has newer data.
 * So recompression runs beside I/O without stopping it: a request waits
 * at most for one slot's copy or swap.  init_lock is held for reading
 * throughout, so reset waits for it; one recompress runs at a time
 * (-EAGAIN, zram's pp_in_progress).
 *
 * zram's own choices kept: max_pages counts every slot tried, even one
 * not shrunk; an allocation failure or a compressor error stops the run
 * with that error (the slot keeps its old object); recompression does not
 * check mem_limit (it only frees memory overall, one object at a time).
 *
 * Where this differs from zram: zram_drv.c bounds the priorities tried by
 * the number of algorithms set (num_active_comps), which with a gap
 * (priority 2 set, 1 not) never reaches the last one; here the bound is
 * one above the highest priority set.
 */
#include <config.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "device.h"

/* zram's PP_BUCKET_SIZE_RANGE: slots whose sizes differ by less than this
 * are taken in no particular order.
 */
#define PP_BUCKET_SIZE 64
#define NR_PP_BUCKETS (ZRAM_BLOCK_SIZE / PP_BUCKET_SIZE + 1)

struct pp_ctl {
  uint64_t *index;                      /* slots picked, largest last */
  uint64_t n;
};

/* Under the slot lock: whether recompression of this mode takes slot
 * index (and, with cutoff, only if last accessed before it).
 */
static bool
slot_qualifies (struct zram *zram, uint64_t index, unsigned mode,
                unsigned prio_max, slot_time cutoff)
{
  struct zram_slot *s = &zram->table.slots[index];
  uint32_t f = slot_flags (s);

  if (s->handle == 0 || (f & (SLOT_SAME | SLOT_INCOMPRESSIBLE)))
    return false;
#ifdef SLOT_WB
  /* Written back: nothing in memory to shrink (zram skips ZRAM_WB). */
  if (f & SLOT_WB)
    return false;
#endif
  /* Already written by the last priority asked for, or a later one. */
  if (slot_prio_of (f) + 1 >= prio_max)
    return false;
  if ((mode & ZRAM_RECOMP_IDLE) && !(f & SLOT_IDLE))
    return false;
  if ((mode & ZRAM_RECOMP_HUGE) && !(f & SLOT_HUGE))
    return false;
  if (cutoff && !(slot_atime (&zram->table, index) < cutoff))
    return false;
  return true;
}

/* Marks the slots to recompress SLOT_PP and lists them by size bucket,
 * smallest first, so the caller takes them from the end.  -ENOMEM.
 */
static int
scan_slots (struct zram *zram, unsigned mode, unsigned prio_max,
            slot_time cutoff, struct pp_ctl *ctl)
{
  uint64_t count[NR_PP_BUCKETS] = { 0 }, pos[NR_PP_BUCKETS];
  uint64_t i, n = 0, cap = 0;
  uint64_t *picked = NULL;
  uint16_t *bucket = NULL;
  size_t b;

  for (i = 0; i < zram->table.nr_slots; i++) {
    struct zram_slot *s = &zram->table.slots[i];
    bool ok;

    if (!table_page_touched (&zram->table, i)) {
      i = next_table_page (i) - 1;
      continue;
    }
    if (slot_empty_unlocked (s))
      continue;
    if (n == cap) {
      uint64_t ncap = cap ? cap * 2 : 1024;
      void *p = realloc (picked, ncap * sizeof *picked);
      void *q;

      if (p == NULL)
        goto nomem;
      picked = p;
      q = realloc (bucket, ncap * sizeof *bucket);
      if (q == NULL)
        goto nomem;
      bucket = q;
      cap = ncap;
    }
    slot_lock (s);
    ok = slot_qualifies (zram, i, mode, prio_max, cutoff);
    if (ok) {
      slot_update_flags (s, 0, SLOT_PP);
      picked[n] = i;
      bucket[n] = s->size / PP_BUCKET_SIZE;
      count[bucket[n]]++;
      n++;
    }
    slot_unlock (s);
  }

  /* A counting sort by bucket, index order within one. */
  ctl->index = malloc ((n ? n : 1) * sizeof *ctl->index);
  if (ctl->index == NULL)
    goto nomem;
  for (b = 0, i = 0; b < NR_PP_BUCKETS; b++) {
    pos[b] = i;
    i += count[b];
  }
  for (i = 0; i < n; i++)
    ctl->index[pos[bucket[i]]++] = picked[i];
  ctl->n = n;
  free (picked);
  free (bucket);
  return 0;

 nomem:
  /* Unmark what was marked. */
  for (i = 0; i < n; i++) {
    struct zram_slot *s = &zram->table.slots[picked[i]];

    slot_lock (s);
    slot_update_flags (s, SLOT_PP, 0);
    slot_unlock (s);
  }
  free (picked);
  free (bucket);
  return -ENOMEM;
}

static void
release_pp_slot (struct zram_slot *s)
{
  slot_lock (s);
  slot_update_flags (s, SLOT_PP, 0);
  slot_unlock (s);
}

/* Recompresses slot index with priorities prio..prio_max-1, as zram's
 * recompress_slot.  Returns 1 (a smaller object swapped in), 0 (kept, or
 * the slot changed meanwhile) or an error that stops the run.  Leaves
 * SLOT_PP cleared.
 */
static int
recompress_slot (struct zram *zram, uint64_t index, uint64_t *max_pages,
                 uint32_t threshold, unsigned prio, unsigned prio_max)
{
  struct zram_slot *s = &zram->table.slots[index];
  unsigned char page[ZRAM_BLOCK_SIZE];
  uint64_t handle_old;
  uint32_t size_old, f;
  unsigned class_old;
  const void *data = NULL;
  size_t len = 0;
  unsigned long handle_new;
  bool found = false;
  void *dst;
  int r;

  slot_lock (s);
  f = slot_flags (s);
  if (!(f & SLOT_PP)) {
    /* Written or freed since the scan. */
    slot_unlock (s);
    return 0;
  }
  handle_old = s->handle;
  size_old = s->size;
  if (prio < slot_prio_of (f) + 1)
    prio = slot_prio_of (f) + 1;
  /* Objects already "small enough", or already written by the last
   * priority asked for, are left alone and not counted.
   */
  if (size_old < threshold || prio >= prio_max) {
    slot_update_flags (s, SLOT_PP, 0);
    slot_unlock (s);
    return 0;
  }
  r = slot_read_locked (zram, s, page, 0, ZRAM_BLOCK_SIZE);
  if (r < 0) {
    slot_update_flags (s, SLOT_PP, 0);
    slot_unlock (s);
    return r;
  }
  /* Touched now: not idle any more, so a later writeback or recompress
   * of idle pages doesn't take it for one, as zram clears ZRAM_IDLE.
   */
  slot_update_flags (s, SLOT_IDLE, 0);
  slot_unlock (s);

  class_old = zs_lookup_class_index (zram->pool, size_old);
  for (; prio < prio_max; prio++) {
    if (zram->confs[prio] == NULL)
      continue;
    r = zcomp_compress (zram->confs[prio], page, &data, &len);
    if (r < 0)
      break;
    /* Keep going until one saves memory: a smaller size class. */
    if (len >= ZRAM_BLOCK_SIZE ||
        zs_lookup_class_index (zram->pool, len) >= class_old ||
        (threshold && len >= threshold))
      continue;
    found = true;
    break;
  }

  /* Counted even when nothing was gained: the work was done. */
  if (*max_pages)
    (*max_pages)--;

  if (r < 0) {
    release_pp_slot (s);
    return r;
  }
  if (!found) {
    slot_lock (s);
    /* The last algorithm could not shrink it either: don't try again. */
    if ((slot_flags (s) & SLOT_PP) && prio >= zram->nr_prios)
      slot_update_flags (s, SLOT_PP, SLOT_INCOMPRESSIBLE);
    else
      slot_update_flags (s, SLOT_PP, 0);
    slot_unlock (s);
    return 0;
  }

  handle_new = zs_malloc (zram->pool, len);
  if (handle_new == 0) {
    release_pp_slot (s);
    return -ENOMEM;
  }
  dst = zs_map_object (zram->pool, handle_new, ZS_MM_WO);
  memcpy (dst, data, len);
  zs_unmap_object (zram->pool, handle_new);

  slot_lock (s);
  f = slot_flags (s);
  if (!(f & SLOT_PP) || s->handle != handle_old) {
    /* Rewritten or freed while we compressed: its data is newer. */
    slot_unlock (s);
    zs_free (zram->pool, handle_new);
    return 0;
  }
  __atomic_store_n (&s->handle, handle_new, __ATOMIC_RELAXED);
  s->size = len;
  slot_update_flags (s, SLOT_PP | SLOT_HUGE | SLOT_PRIO_MASK | SLOT_IDLE,
                     prio << SLOT_PRIO_SHIFT);
  slot_unlock (s);

  zs_free (zram->pool, handle_old);
  STAT_ADD (&zram->stats, compr_data_size, len);
  STAT_SUB (&zram->stats, compr_data_size, size_old);
  if (f & SLOT_HUGE)
    STAT_DEC (&zram->stats, huge_pages);
  return 1;
}

int
recompress_locked (struct zram *zram, const struct zram_recompress_req *req,
                   slot_time cutoff, uint64_t *done)
{
  unsigned prio = req->prio, prio_max = req->prio_max;
  uint64_t max_pages = req->max_pages;
  struct pp_ctl ctl = { NULL, 0 };
  uint64_t i;
  int r = 0;

  *done = 0;
  if (!zram_has_table (zram) || req->threshold >= zram->huge_class_size)
    return -EINVAL;
  if (__atomic_exchange_n (&zram->pp_in_progress, 1, __ATOMIC_ACQUIRE))
    return -EAGAIN;

  if (req->algo) {
    bool found = false;

    for (; prio < ZRAM_MAX_COMPS; prio++) {
      if (zram->recomp[prio] == NULL || zram->confs[prio] == NULL)
        continue;
      if (strcmp (zcomp_name (zram->recomp[prio]), req->algo) == 0) {
        prio_max = prio + 1;
        found = true;
        break;
      }
    }
    if (!found) {
      r = -EINVAL;
      goto out;
    }
  }
  if (prio_max > zram->nr_prios)
    prio_max = zram->nr_prios;
  if (prio >= prio_max) {
    r = -EINVAL;
    goto out;
  }

  r = scan_slots (zram, req->mode, prio_max, cutoff, &ctl);
  if (r < 0)
    goto out;
  for (i = ctl.n; i > 0; i--) {
    if (max_pages == 0)
      break;
    r = recompress_slot (zram, ctl.index[i - 1], &max_pages, req->threshold,
                         prio, prio_max);
    if (r < 0) {
      i--;
      break;
    }
    *done += r;
    r = 0;
  }
  /* What was picked and not reached loses its mark. */
  for (; i > 0; i--)
    release_pp_slot (&zram->table.slots[ctl.index[i - 1]]);
  free (ctl.index);

 out:
  __atomic_store_n (&zram->pp_in_progress, 0, __ATOMIC_RELEASE);
  return r;
}

int
zram_recompress (struct zram *zram, const struct zram_recompress_req *req)
{
  uint64_t done;
  int r;

  pthread_rwlock_rdlock (&zram->init_lock);
  r = recompress_locked (zram, req, 0, &done);
  pthread_rwlock_unlock (&zram->init_lock);
  return r;
}
