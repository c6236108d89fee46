/* uzram engine: the I/O path.  Requests walk their range a block at a
 * time; each block goes through its slot (slot.h) under the slot lock, and
 * every request is counted (stats.h).
 *
 * A full-block write compresses and allocates before it takes the slot
 * lock, and frees the old object after dropping it, so the lock covers only
 * the swap of the entry.
 */
#include <config.h>

#include <errno.h>
#include <string.h>

#include "device.h"

/* How many times a write over mem_limit lets the policy make room before
 * it fails with ENOSPC: each try writes back a batch, and other writers
 * may take the room first.
 */
#define POLICY_RETRIES 4

/* Checks a request's range; out of range or uninitialised is invalid_io. */
static int
check_range (struct zram *zram, uint32_t count, uint64_t offset)
{
  if (!zram_has_table (zram) || offset > zram->disksize ||
      count > zram->disksize - offset) {
    STAT_INC (&zram->stats, invalid_io);
    return !zram_has_table (zram) ? -ENXIO : -EINVAL;
  }
  return 0;
}

/* --- Pages --- */

static inline uint64_t
load_word (const unsigned char *p)
{
  uint64_t w;

  memcpy (&w, p, sizeof w);
  return w;
}

/* True if every 8-byte word of the page is equal, as zram's
 * page_same_filled: the last word first, since pages of one value but for
 * a tail are common (zeroed buffers with a header).
 */
static bool
page_same_filled (const unsigned char *page, uint64_t *word)
{
  uint64_t w = load_word (page);
  size_t i;

  if (load_word (page + ZRAM_BLOCK_SIZE - 8) != w)
    return false;
  for (i = 8; i < ZRAM_BLOCK_SIZE - 8; i += 8)
    if (load_word (page + i) != w)
      return false;
  *word = w;
  return true;
}

/* Bytes [off, off+n) of a page filled with word. */
static void
fill_word (unsigned char *dst, uint64_t word, uint32_t off, uint32_t n)
{
  unsigned char b[8];
  uint32_t i;

  if (word == 0) {
    memset (dst, 0, n);
    return;
  }
  memcpy (b, &word, 8);
  for (i = 0; i < n; i++)
    dst[i] = b[(off + i) & 7];
}

static void
update_used_max (struct zram *zram, uint64_t pages)
{
  uint64_t max = __atomic_load_n (&zram->max_used_pages, __ATOMIC_RELAXED);

  while (pages > max &&
         !__atomic_compare_exchange_n (&zram->max_used_pages, &max, pages,
                                       true, __ATOMIC_RELAXED,
                                       __ATOMIC_RELAXED))
    ;
}

/* Turns one page into what a slot will hold, without any slot lock:
 * the same-filled word, or a new object holding the compressed (or, when
 * that is no smaller than the huge class, the raw) page.  -ENOSPC over
 * mem_limit, -ENOMEM, -EIO if the compressor failed.
 */
static int
prepare_page (struct zram *zram, const unsigned char *page,
              struct slot_val *val)
{
  const void *data;
  size_t len;
  unsigned long handle;
  uint64_t pages, limit;
  unsigned tries;
  void *dst;
  int r;

  if (page_same_filled (page, &val->handle)) {
    val->size = 0;
    val->flags = SLOT_SAME;
    return 0;
  }

  r = zcomp_compress (zram->confs[0], page, &data, &len);
  if (r < 0)
    return r;
  val->flags = 0;
  if (len >= zram->huge_class_size) {
    data = page;
    len = ZRAM_BLOCK_SIZE;
    val->flags = SLOT_HUGE;
  }

  for (tries = 0; ; tries++) {
    handle = zs_malloc (zram->pool, len);
    if (handle == 0)
      return -ENOMEM;
    /* As zram: the peak counts even an allocation the limit then
     * refuses.
     */
    pages = zs_get_total_pages (zram->pool);
    update_used_max (zram, pages);
    limit = __atomic_load_n (&zram->limit_pages, __ATOMIC_RELAXED);
    if (!limit || pages <= limit)
      break;
    zs_free (zram->pool, handle);
    /* Beyond zram: the policy may make room on the backing device. */
    if (tries >= POLICY_RETRIES || !policy_reclaim (zram))
      return -ENOSPC;
  }

  dst = zs_map_object (zram->pool, handle, ZS_MM_WO);
  memcpy (dst, data, len);
  zs_unmap_object (zram->pool, handle);
  val->handle = handle;
  val->size = len;
  return 0;
}

/* Under the slot lock: puts val into the slot and returns what was there
 * in *old (to be released after unlocking).  The new handle or word is
 * stored before the flags change, so slot_empty_unlocked never sees a
 * stored slot as empty.
 */
void
slot_swap (struct zram *zram, struct zram_slot *s, const struct slot_val *val,
           struct slot_val *old)
{
  old->handle = s->handle;
  old->size = s->size;
  old->flags = slot_flags (s) & SLOT_STATE_BITS;

  __atomic_store_n (&s->handle, val->handle, __ATOMIC_RELAXED);
  s->size = val->size;
  slot_update_flags (s, SLOT_STATE_BITS | SLOT_IDLE | SLOT_PP, val->flags);

  if (val->flags & SLOT_SAME)
    STAT_INC (&zram->stats, same_pages);
  else if (val->flags & SLOT_WB)
    /* As zram: a written-back page still counts as stored (mm_stat's
     * orig_data_size), not in compr_data_size.
     */
    STAT_INC (&zram->stats, pages_stored);
  else if (val->handle) {
    STAT_INC (&zram->stats, pages_stored);
    STAT_ADD (&zram->stats, compr_data_size, val->size);
    if (val->flags & SLOT_HUGE) {
      STAT_INC (&zram->stats, huge_pages);
      STAT_INC (&zram->stats, huge_pages_since);
    }
  }
}

/* After unlocking: frees what slot_swap took out.  Returns true if the slot
 * held anything.
 */
bool
release_old (struct zram *zram, const struct slot_val *old)
{
  if (old->flags & SLOT_SAME) {
    STAT_DEC (&zram->stats, same_pages);
    return true;
  }
  if (old->flags & SLOT_WB) {
    backing_free (zram->backing, old->handle);
    STAT_DEC (&zram->stats, bd_count);
    STAT_DEC (&zram->stats, pages_stored);
    return true;
  }
  if (old->handle == 0)
    return false;
  zs_free (zram->pool, old->handle);
  STAT_DEC (&zram->stats, pages_stored);
  STAT_SUB (&zram->stats, compr_data_size, old->size);
  if (old->flags & SLOT_HUGE)
    STAT_DEC (&zram->stats, huge_pages);
  return true;
}

static const struct slot_val empty_val = { 0, 0, 0 };

/* Under the slot lock: a written-back block's bytes, read straight from
 * the backing device into an aligned page (O_DIRECT's rule).
 */
static int
read_backing (struct zram *zram, uint64_t block, unsigned char *dst,
              uint32_t off, uint32_t n)
{
  unsigned char page[ZRAM_BLOCK_SIZE] __attribute__ ((aligned (4096)));
  int r = backing_read (zram->backing, block, page);

  if (r < 0) {
    STAT_INC (&zram->stats, bd_read_errors);
    return r;
  }
  STAT_INC (&zram->stats, bd_reads);
  memcpy (dst, page + off, n);
  return 0;
}

int
slot_read_locked (struct zram *zram, struct zram_slot *s, unsigned char *dst,
                  uint32_t off, uint32_t n)
{
  uint32_t f = slot_flags (s);
  unsigned char page[ZRAM_BLOCK_SIZE];
  const struct zcomp_conf *conf;
  const unsigned char *src;
  int r = 0;

  if (f & SLOT_SAME) {
    fill_word (dst, s->handle, off, n);
    return 0;
  }
  if (f & SLOT_WB)
    return read_backing (zram, s->handle, dst, off, n);
  if (s->handle == 0) {
    memset (dst, 0, n);
    return 0;
  }

  /* The conf of the priority that wrote the block: a recompressed one is
   * read with its recompression algorithm.
   */
  conf = zram->confs[slot_prio_of (f)];
  src = zs_map_object (zram->pool, s->handle, ZS_MM_RO);
  if (f & SLOT_HUGE)
    memcpy (dst, src + off, n);
  else if (n == ZRAM_BLOCK_SIZE)
    r = zcomp_decompress (conf, src, s->size, dst);
  else {
    r = zcomp_decompress (conf, src, s->size, page);
    if (r == 0)
      memcpy (dst, page + off, n);
  }
  zs_unmap_object (zram->pool, s->handle);
  return r;
}

static int
read_block (struct zram *zram, uint64_t index, unsigned char *dst,
            uint32_t off, uint32_t n, slot_time now)
{
  struct zram_slot *s = &zram->table.slots[index];
  int r;

  if (table_slot_empty_unlocked (&zram->table, index)) {
    memset (dst, 0, n);
    return 0;
  }
  slot_lock (s);
  r = slot_read_locked (zram, s, dst, off, n);
  /* zram_accessed: a read makes the block young again. */
  if (slot_flags (s) & SLOT_IDLE)
    slot_update_flags (s, SLOT_IDLE, 0);
  slot_touch (&zram->table, index, now);
  slot_unlock (s);
  return r;
}

/* Writes bytes [off, off+n) of block index from src.  A whole block is
 * compressed and allocated before the lock is taken; a partial one is
 * read, modified and written back under it.  now is the access time the
 * request gives every block it touches: the clock is read once a
 * request, not once a block inside its lock.
 */
static int
write_block (struct zram *zram, uint64_t index, const unsigned char *src,
             uint32_t off, uint32_t n, slot_time now)
{
  struct zram_slot *s = &zram->table.slots[index];
  struct slot_val val, old;
  unsigned char page[ZRAM_BLOCK_SIZE];
  int r;

  table_touch_page (&zram->table, index);
  if (n == ZRAM_BLOCK_SIZE) {
    r = prepare_page (zram, src, &val);
    if (r < 0)
      return r;
    slot_lock (s);
    slot_swap (zram, s, &val, &old);
    slot_touch (&zram->table, index, now);
    slot_unlock (s);
  }
  else {
    slot_lock (s);
    r = slot_read_locked (zram, s, page, 0, ZRAM_BLOCK_SIZE);
    if (r == 0) {
      memcpy (page + off, src, n);
      r = prepare_page (zram, page, &val);
    }
    if (r < 0) {
      slot_unlock (s);
      return r;
    }
    slot_swap (zram, s, &val, &old);
    slot_touch (&zram->table, index, now);
    slot_unlock (s);
  }
  release_old (zram, &old);
  return 0;
}

/* Frees one whole block (trim, write-zeroes). */
static void
free_block (struct zram *zram, uint64_t index)
{
  struct zram_slot *s = &zram->table.slots[index];
  struct slot_val old;

  /* Counted whether or not the slot held anything, as zram's discard
   * counts every whole page it is asked to free.
   */
  STAT_INC (&zram->stats, notify_free);
  if (table_slot_empty_unlocked (&zram->table, index)) {
    STAT_INC (&zram->stats, miss_free);
    return;
  }
  slot_lock (s);
  slot_swap (zram, s, &empty_val, &old);
  slot_touch (&zram->table, index, 0);
  slot_unlock (s);
  if (!release_old (zram, &old))
    STAT_INC (&zram->stats, miss_free);
}

/* --- I/O --- */

/* Reads or writes [offset, offset+count) a block piece at a time, and
 * counts the request: both directions walk blocks the same way.  buf is
 * only read from when op is IO_WRITE.
 */
static int
rw_range (struct zram *zram, enum io_op op, unsigned char *buf,
          uint32_t count, uint64_t offset)
{
  unsigned char *p = buf;
  uint64_t start;
  slot_time now;
  int r = check_range (zram, count, offset);

  if (r < 0)
    return r;
  start = io_start (&zram->stats);
  now = slot_now ();
  while (count > 0) {
    uint32_t off = offset & (ZRAM_BLOCK_SIZE - 1);
    uint32_t n = ZRAM_BLOCK_SIZE - off;
    uint64_t index = offset >> ZRAM_BLOCK_SHIFT;

    if (n > count)
      n = count;
    if (op == IO_READ) {
      r = read_block (zram, index, p, off, n, now);
      if (r < 0)
        STAT_INC (&zram->stats, failed_reads);
    }
    else {
      r = write_block (zram, index, p, off, n, now);
      if (r < 0)
        STAT_INC (&zram->stats, failed_writes);
    }
    if (r < 0)
      break;
    p += n;
    offset += n;
    count -= n;
  }
  io_done (&zram->stats, op, start, p - buf);
  return r;
}

int
zram_read (struct zram *zram, void *buf, uint32_t count, uint64_t offset)
{
  return rw_range (zram, IO_READ, buf, count, offset);
}

int
zram_write (struct zram *zram, const void *buf, uint32_t count,
            uint64_t offset)
{
  /* rw_range writes through buf only for IO_READ. */
  return rw_range (zram, IO_WRITE, (unsigned char *) buf, count, offset);
}

/* Trim and write-zeroes: free the whole blocks of the range; with zero,
 * rewrite the partial ones at either end with zeroes.
 */
static int
discard_range (struct zram *zram, uint32_t count, uint64_t offset, bool zero)
{
  static const unsigned char zeroes[ZRAM_BLOCK_SIZE];
  uint64_t start, end = offset + count;
  int r = check_range (zram, count, offset);

  if (r < 0)
    return r;
  start = io_start (&zram->stats);
  while (offset < end) {
    uint32_t off = offset & (ZRAM_BLOCK_SIZE - 1);
    uint32_t n = ZRAM_BLOCK_SIZE - off;

    if (n > end - offset)
      n = end - offset;
    if (n == ZRAM_BLOCK_SIZE &&
        !table_page_touched (&zram->table, offset >> ZRAM_BLOCK_SHIFT)) {
      /* A whole untouched table page at once: nothing there to free. */
      uint64_t index = offset >> ZRAM_BLOCK_SHIFT;
      uint64_t k = next_table_page (index) - index;

      if (k > (end - offset) >> ZRAM_BLOCK_SHIFT)
        k = (end - offset) >> ZRAM_BLOCK_SHIFT;
      STAT_ADD (&zram->stats, notify_free, k);
      STAT_ADD (&zram->stats, miss_free, k);
      offset += k << ZRAM_BLOCK_SHIFT;
      continue;
    }
    if (n == ZRAM_BLOCK_SIZE)
      free_block (zram, offset >> ZRAM_BLOCK_SHIFT);
    /* A block that is empty or all zeroes needs no zeroing: don't make a
     * same page of it.
     */
    else if (zero &&
             !table_slot_hole_unlocked (&zram->table,
                                        offset >> ZRAM_BLOCK_SHIFT)) {
      r = write_block (zram, offset >> ZRAM_BLOCK_SHIFT, zeroes, off, n,
                       slot_now ());
      if (r < 0) {
        STAT_INC (&zram->stats, failed_writes);
        break;
      }
    }
    offset += n;
  }
  io_done (&zram->stats, IO_DISCARD, start, count);
  return r;
}

int
zram_discard (struct zram *zram, uint32_t count, uint64_t offset)
{
  return discard_range (zram, count, offset, false);
}

int
zram_write_zeroes (struct zram *zram, uint32_t count, uint64_t offset)
{
  return discard_range (zram, count, offset, true);
}

int
zram_flush (struct zram *zram)
{
  uint64_t start;

  if (!zram_has_table (zram)) {
    STAT_INC (&zram->stats, invalid_io);
    return -ENXIO;
  }
  /* Every write is in memory the moment it returns: nothing to do. */
  start = io_start (&zram->stats);
  io_done (&zram->stats, IO_FLUSH, start, 0);
  return 0;
}

int
zram_extents (struct zram *zram, uint32_t count, uint64_t offset,
              zram_extent_fn fn, void *opaque)
{
  uint64_t i, first, last, run;
  bool hole;
  int r;

  r = check_range (zram, count, offset);
  if (r < 0)
    return r;
  if (count == 0)
    return 0;
  first = offset >> ZRAM_BLOCK_SHIFT;
  last = (offset + count - 1) >> ZRAM_BLOCK_SHIFT;
  run = first;
  hole = table_slot_hole_unlocked (&zram->table, first);
  for (i = first; i <= last; ) {
    uint64_t step = 1;
    bool h;

    /* An untouched table page is 256 empty slots at once. */
    if (!table_page_touched (&zram->table, i)) {
      h = true;
      step = next_table_page (i) - i;
    }
    else
      h = slot_hole_unlocked (&zram->table.slots[i]);
    if (h != hole) {
      r = fn (opaque, run << ZRAM_BLOCK_SHIFT, (i - run) << ZRAM_BLOCK_SHIFT,
              hole);
      if (r)
        return r;
      run = i;
      hole = h;
    }
    i += step;
  }
  if (i > last + 1)
    i = last + 1;
  return fn (opaque, run << ZRAM_BLOCK_SHIFT, (i - run) << ZRAM_BLOCK_SHIFT,
             hole);
}

/* --- Test hooks --- */

int
zram_test_corrupt (struct zram *zram, uint64_t index, uint32_t byte,
                   uint8_t mask)
{
  struct zram_slot *s;
  unsigned char *p;
  int r = 0;

  if (!zram_has_table (zram) || index >= zram->table.nr_slots)
    return -EINVAL;
  s = &zram->table.slots[index];
  slot_lock (s);
  if ((slot_flags (s) & (SLOT_SAME | SLOT_WB)) || s->handle == 0)
    r = -ENOENT;
  else {
    p = zs_map_object (zram->pool, s->handle, ZS_MM_RW);
    p[byte % s->size] ^= mask;
    zs_unmap_object (zram->pool, s->handle);
  }
  slot_unlock (s);
  return r;
}

int
zram_test_slot (struct zram *zram, uint64_t index, struct zram_test_slot *out)
{
  struct zram_slot *s;
  uint32_t f;

  if (!zram_has_table (zram) || index >= zram->table.nr_slots)
    return -EINVAL;
  s = &zram->table.slots[index];
  slot_lock (s);
  f = slot_flags (s);
  out->prio = slot_prio_of (f);
  out->huge = f & SLOT_HUGE;
  out->incompressible = f & SLOT_INCOMPRESSIBLE;
  out->idle = f & SLOT_IDLE;
  out->size = (f & SLOT_SAME) ? 0 : s->size;
  slot_unlock (s);
  return 0;
}
