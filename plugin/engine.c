/* uzram engine: the slot table, the I/O path, the statistics and the life
 * cycle of one compressed RAM block device.  See engine.h for the contract.
 *
 * The slot table has one 16-byte entry per 4 KiB block, as Linux zram's
 * zram->table does:
 *
 *   table ─┬─ slot 0  { handle | word : 64 } { size : 32 } { flags : 32 }
 *          ├─ slot 1
 *          ┆
 *          └─ slot disksize/4096 - 1
 *
 *   empty slot:        flags has no SLOT_SAME, handle 0
 *   same-filled slot:  SLOT_SAME; `handle` holds the repeated 8-byte word,
 *                      nothing is allocated
 *   stored slot:       `handle` is a zsmalloc handle of `size` bytes:
 *                      compressed data, or with SLOT_HUGE the raw page
 *
 * The table is one private anonymous mapping with MAP_NORESERVE: the kernel
 * backs a 4 KiB page of it (256 slots, 1 MiB of disk) only when a slot in it
 * is first written, so an empty 1 TiB disk costs 4 GiB of address space and
 * no memory, and a 64 GiB disk holding 100 MiB costs at most one table page
 * per block stored.  Beside it, a bitmap with one bit per table page
 * (1 bit per MiB of disk, 128 KiB for 1 TiB, also mapped lazily) says
 * which table pages a write ever reached: a clear bit means all 256 slots
 * are empty, so reads, trims, extents and idle marking skip untouched
 * megabytes without loading, let alone faulting in, the table there.
 *
 * Slot lock: bits 0 and 1 of a slot's flags word are a futex-based mutex
 * (Drepper's "Futexes are tricky", mutex 3): SLOT_LOCKED, and SLOT_WAITERS
 * when a thread may be sleeping in FUTEX_WAIT on the word.  So locking costs
 * no memory beyond the entry, uncontended locking is one compare-and-swap,
 * and contended waiters sleep.  Because waiters set SLOT_WAITERS while the
 * holder runs, the holder changes the other flag bits with atomic
 * operations too (slot_update_flags).
 *
 * Locking (outermost first):
 *   zram->init_lock   (rwlock) the life cycle: held for writing by
 *                     disksize and reset, for reading by zram_get, the
 *                     statistics, compact and idle.  Never on the I/O path:
 *                     I/O runs only between zram_get and zram_put, and
 *                     reset is refused while any client holds the device.
 *   slot lock         one block's entry and object; held over decompression
 *                     and a partial block's read-modify-write, never over
 *                     more than one slot.
 *   (allocator)       zsmalloc's own locks, inside zs_* calls.
 *
 * A full-block write compresses and allocates before it takes the slot
 * lock, and frees the old object after dropping it, so the lock covers only
 * the swap of the entry.
 *
 * Statistics are relaxed atomic counters in NR_STRIPES cache-line-aligned
 * stripes; a thread always adds to the same stripe, and a snapshot sums
 * them, so counting never blocks I/O and threads rarely share a line.  The
 * gauges (same_pages, compr_data_size ...) go up and down in different
 * stripes; only their sum means anything.
 *
 * Still to do: writeback of idle pages to a backing device (the IDLE flag
 * is kept for it), recompression, and giving table pages back to the
 * kernel when a trim empties all 256 slots of one (the lock words live in
 * those pages, so that needs a quiescent point).
 */
#include <config.h>

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "zsmalloc.h"
#include "comp.h"
#include "engine.h"

/* --- The slot table --- */

struct zram_slot {
  uint64_t handle;   /* zsmalloc handle, or the word of a same-filled page */
  uint32_t size;     /* bytes of the stored object, 0 if none; slot lock */
  uint32_t flags;    /* SLOT_*; changed only with atomic operations */
};
_Static_assert (sizeof (struct zram_slot) == 16, "a slot is 16 bytes");

#define SLOT_LOCKED  (1u << 0)   /* the slot lock is held */
#define SLOT_WAITERS (1u << 1)   /* a thread may sleep on the lock */
#define SLOT_SAME    (1u << 2)   /* same-filled: handle is the word */
#define SLOT_HUGE    (1u << 3)   /* stored raw, size is 4096 */
#define SLOT_IDLE    (1u << 4)   /* not accessed since zram_mark_idle_all */
#define SLOT_LOCK_BITS (SLOT_LOCKED | SLOT_WAITERS)

/* Slots per 4 KiB page of the table: the unit the kernel backs with
 * memory, and the unit of zram->touched.
 */
#define SLOTS_PER_TABLE_PAGE (4096 / sizeof (struct zram_slot))

/* How many times a locker spins on a held slot lock before it sleeps.
 * Critical sections are one decompression (a few microseconds) or an entry
 * swap (nanoseconds); a short spin catches the latter without a syscall.
 */
#define SLOT_SPIN 64

static long
futex (uint32_t *uaddr, int op, uint32_t val)
{
  return syscall (SYS_futex, uaddr, op, val, NULL, NULL, 0);
}

static inline uint32_t
slot_flags (const struct zram_slot *s)
{
  return __atomic_load_n (&s->flags, __ATOMIC_ACQUIRE);
}

static inline uint64_t
slot_handle (const struct zram_slot *s)
{
  return __atomic_load_n (&s->handle, __ATOMIC_RELAXED);
}

static void
slot_lock (struct zram_slot *s)
{
  uint32_t f = __atomic_load_n (&s->flags, __ATOMIC_RELAXED);
  uint32_t take = SLOT_LOCKED;
  unsigned spin = 0;

  for (;;) {
    if (!(f & SLOT_LOCKED)) {
      /* After sleeping once, take it as contended: others may sleep too,
       * and unlock must wake them.
       */
      if (__atomic_compare_exchange_n (&s->flags, &f, f | take, true,
                                       __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
        return;
      continue;
    }
    if (spin < SLOT_SPIN) {
      spin++;
#if defined(__x86_64__) || defined(__i386__)
      __builtin_ia32_pause ();
#endif
      f = __atomic_load_n (&s->flags, __ATOMIC_RELAXED);
      continue;
    }
    if (!(f & SLOT_WAITERS) &&
        !__atomic_compare_exchange_n (&s->flags, &f, f | SLOT_WAITERS, true,
                                      __ATOMIC_RELAXED, __ATOMIC_RELAXED))
      continue;
    /* Sleeps unless the word changed meanwhile (EAGAIN): then look again. */
    futex (&s->flags, FUTEX_WAIT_PRIVATE, f | SLOT_WAITERS);
    take = SLOT_LOCKED | SLOT_WAITERS;
    f = __atomic_load_n (&s->flags, __ATOMIC_RELAXED);
  }
}

static void
slot_unlock (struct zram_slot *s)
{
  uint32_t old = __atomic_fetch_and (&s->flags, ~SLOT_LOCK_BITS,
                                     __ATOMIC_RELEASE);

  if (old & SLOT_WAITERS)
    futex (&s->flags, FUTEX_WAKE_PRIVATE, 1);
}

/* Under the slot lock: clears then sets flag bits, leaving the lock bits. */
static void
slot_update_flags (struct zram_slot *s, uint32_t clear, uint32_t set)
{
  uint32_t f = __atomic_load_n (&s->flags, __ATOMIC_RELAXED);

  while (!__atomic_compare_exchange_n (&s->flags, &f, (f & ~clear) | set,
                                       true, __ATOMIC_RELEASE,
                                       __ATOMIC_RELAXED))
    ;
}

/* Without the lock: true if the slot holds nothing (never written, or
 * freed).  A writer racing with this may or may not be seen, as with any
 * request overlapping a write; a slot in transition between two stored
 * states never looks empty, because the new handle or word is stored
 * before the flags change (slot_swap).
 */
static bool
slot_empty_unlocked (const struct zram_slot *s)
{
  uint32_t f = slot_flags (s);

  return !(f & (SLOT_SAME | SLOT_LOCKED)) && slot_handle (s) == 0;
}

/* Without the lock, for extents: true for an empty slot or zeroes.  Both
 * and only they have handle 0 (a same-filled slot keeps its word there,
 * and zs_malloc never returns handle 0).
 */
static bool
slot_hole_unlocked (const struct zram_slot *s)
{
  return slot_handle (s) == 0;
}

/* --- Statistics --- */

/* Enough stripes that the threads of a busy nbdkit (16 per connection by
 * default) seldom share one.
 */
#define NR_STRIPES 32

struct stripe {
#define X(name, what) uint64_t name;
  ZRAM_COUNTERS (X)
#undef X
  uint64_t in_flight;
} __attribute__ ((aligned (64)));

static unsigned next_stripe;
static __thread unsigned my_stripe;   /* 1 + index; 0: not yet chosen */

static inline struct stripe *
stripe_of (struct zram *zram);

#define STAT_ADD(zram, name, n) \
  __atomic_fetch_add (&stripe_of (zram)->name, (uint64_t) (n), \
                      __ATOMIC_RELAXED)
#define STAT_SUB(zram, name, n) \
  __atomic_fetch_sub (&stripe_of (zram)->name, (uint64_t) (n), \
                      __ATOMIC_RELAXED)
#define STAT_INC(zram, name) STAT_ADD (zram, name, 1)
#define STAT_DEC(zram, name) STAT_SUB (zram, name, 1)

/* --- The device --- */

struct zram {
  pthread_rwlock_t init_lock;
  /* Set under init_lock held for writing, while no client holds the
   * device; read freely between zram_get and zram_put.
   */
  struct zram_slot *table;              /* NULL: uninitialised */
  uint64_t *touched;                    /* bit per table page; atomic */
  size_t touched_bytes;
  uint64_t nr_slots;
  uint64_t disksize;                    /* atomic: 0 while uninitialised */
  struct zs_pool *pool;
  size_t huge_class_size;               /* objects this big are stored raw */
  const struct zcomp *comp;             /* atomic: read without the lock */
  /* algorithm_params per priority (0: comp), written while uninitialised;
   * conf is made from comp and params[0] at initialisation, freed at
   * reset, and only read between the two.
   */
  struct zcomp_params params[ZRAM_MAX_COMPS];
  struct zcomp_conf *conf;

  const struct zcomp *default_comp;     /* what reset returns to */
  uint64_t default_mem_limit;

  bool has_pages;
  struct zs_ops pages;                  /* the pool's page source */

  uint64_t limit_pages;                 /* atomic; 0: no limit */
  uint64_t max_used_pages;              /* atomic */
  uint64_t clients;                     /* atomic */
  uint64_t io_stamp_ms;                 /* atomic: last io_ticks update */

  struct stripe *stripes;               /* NR_STRIPES of them */
};

static inline struct stripe *
stripe_of (struct zram *zram)
{
  if (my_stripe == 0)
    my_stripe = __atomic_fetch_add (&next_stripe, 1, __ATOMIC_RELAXED)
      % NR_STRIPES + 1;
  return &zram->stripes[my_stripe - 1];
}

/* Whether a write ever reached the table page holding slot index.  A
 * clear bit means every slot of that page is empty: a write sets it before
 * it takes the first lock there (touch_table_page), and only a write makes
 * an empty slot non-empty.  Bits are never cleared while initialised.
 */
static inline bool
table_page_touched (struct zram *zram, uint64_t index)
{
  uint64_t page = index / SLOTS_PER_TABLE_PAGE;

  return __atomic_load_n (&zram->touched[page / 64], __ATOMIC_ACQUIRE)
    & (UINT64_C (1) << (page % 64));
}

static inline void
touch_table_page (struct zram *zram, uint64_t index)
{
  uint64_t page = index / SLOTS_PER_TABLE_PAGE;

  if (!table_page_touched (zram, index))
    __atomic_fetch_or (&zram->touched[page / 64],
                       UINT64_C (1) << (page % 64), __ATOMIC_RELEASE);
}

/* The first slot of the next table page after index. */
static inline uint64_t
next_table_page (uint64_t index)
{
  return (index / SLOTS_PER_TABLE_PAGE + 1) * SLOTS_PER_TABLE_PAGE;
}

/* Without the lock: true if slot index surely holds nothing. */
static inline bool
empty_unlocked (struct zram *zram, uint64_t index)
{
  return !table_page_touched (zram, index) ||
    slot_empty_unlocked (&zram->table[index]);
}

static uint64_t
now_ns (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (uint64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static uint64_t
sum_in_flight (struct zram *zram)
{
  uint64_t n = 0;
  unsigned i;

  for (i = 0; i < NR_STRIPES; i++)
    n += __atomic_load_n (&zram->stripes[i].in_flight, __ATOMIC_RELAXED);
  return n;
}

/* io_ticks, the time with at least one request in flight, the way the
 * block layer keeps it (update_io_ticks): whoever first sees the clock pass
 * the stamp moves the stamp and, if requests were in flight, adds the
 * interval.  In whole milliseconds, as the stat file shows it, so the
 * shared stamp changes at most once a millisecond however busy the device.
 */
static void
update_io_ticks (struct zram *zram, uint64_t now, bool end)
{
  uint64_t now_ms = now / 1000000;
  uint64_t stamp = __atomic_load_n (&zram->io_stamp_ms, __ATOMIC_RELAXED);

  if (now_ms > stamp &&
      __atomic_compare_exchange_n (&zram->io_stamp_ms, &stamp, now_ms, false,
                                   __ATOMIC_RELAXED, __ATOMIC_RELAXED) &&
      (end || sum_in_flight (zram) > 0))
    STAT_ADD (zram, io_ticks_ns, (now_ms - stamp) * 1000000);
}

enum io_op { IO_READ, IO_WRITE, IO_DISCARD, IO_FLUSH };

static uint64_t
io_start (struct zram *zram)
{
  uint64_t now = now_ns ();

  update_io_ticks (zram, now, false);
  STAT_INC (zram, in_flight);
  return now;
}

static void
io_done (struct zram *zram, enum io_op op, uint64_t start, uint32_t count)
{
  uint64_t now = now_ns ();
  uint64_t t = now - start;
  uint64_t sectors = ((uint64_t) count + ZRAM_SECTOR_SIZE - 1)
    / ZRAM_SECTOR_SIZE;

  update_io_ticks (zram, now, true);
  STAT_DEC (zram, in_flight);
  STAT_ADD (zram, time_in_queue_ns, t);
  switch (op) {
  case IO_READ:
    STAT_INC (zram, read_ios);
    STAT_ADD (zram, read_sectors, sectors);
    STAT_ADD (zram, read_ticks_ns, t);
    break;
  case IO_WRITE:
    STAT_INC (zram, write_ios);
    STAT_ADD (zram, write_sectors, sectors);
    STAT_ADD (zram, write_ticks_ns, t);
    break;
  case IO_DISCARD:
    STAT_INC (zram, discard_ios);
    STAT_ADD (zram, discard_sectors, sectors);
    STAT_ADD (zram, discard_ticks_ns, t);
    break;
  case IO_FLUSH:
    STAT_INC (zram, flush_ios);
    STAT_ADD (zram, flush_ticks_ns, t);
    break;
  }
}

/* Checks a request's range; out of range or uninitialised is invalid_io. */
static int
check_range (struct zram *zram, uint32_t count, uint64_t offset)
{
  if (zram->table == NULL || offset > zram->disksize ||
      count > zram->disksize - offset) {
    STAT_INC (zram, invalid_io);
    return zram->table == NULL ? -ENXIO : -EINVAL;
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

/* A stored page ready to go into a slot, or taken out of one. */
struct slot_val {
  uint64_t handle;      /* handle, or word with SLOT_SAME */
  uint32_t size;
  uint32_t flags;       /* SLOT_SAME, SLOT_HUGE or 0 */
};

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
  void *dst;
  int r;

  if (page_same_filled (page, &val->handle)) {
    val->size = 0;
    val->flags = SLOT_SAME;
    return 0;
  }

  r = zcomp_compress (zram->conf, page, &data, &len);
  if (r < 0)
    return r;
  val->flags = 0;
  if (len >= zram->huge_class_size) {
    data = page;
    len = ZRAM_BLOCK_SIZE;
    val->flags = SLOT_HUGE;
  }

  handle = zs_malloc (zram->pool, len);
  if (handle == 0)
    return -ENOMEM;
  /* As zram: the peak counts even an allocation the limit then refuses. */
  pages = zs_get_total_pages (zram->pool);
  update_used_max (zram, pages);
  limit = __atomic_load_n (&zram->limit_pages, __ATOMIC_RELAXED);
  if (limit && pages > limit) {
    zs_free (zram->pool, handle);
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
static void
slot_swap (struct zram *zram, struct zram_slot *s, const struct slot_val *val,
           struct slot_val *old)
{
  old->handle = s->handle;
  old->size = s->size;
  old->flags = slot_flags (s) & (SLOT_SAME | SLOT_HUGE);

  __atomic_store_n (&s->handle, val->handle, __ATOMIC_RELAXED);
  s->size = val->size;
  slot_update_flags (s, SLOT_SAME | SLOT_HUGE | SLOT_IDLE, val->flags);

  if (val->flags & SLOT_SAME)
    STAT_INC (zram, same_pages);
  else if (val->handle) {
    STAT_INC (zram, pages_stored);
    STAT_ADD (zram, compr_data_size, val->size);
    if (val->flags & SLOT_HUGE) {
      STAT_INC (zram, huge_pages);
      STAT_INC (zram, huge_pages_since);
    }
  }
}

/* After unlocking: frees what slot_swap took out.  Returns true if the slot
 * held anything.
 */
static bool
release_old (struct zram *zram, const struct slot_val *old)
{
  if (old->flags & SLOT_SAME) {
    STAT_DEC (zram, same_pages);
    return true;
  }
  if (old->handle == 0)
    return false;
  zs_free (zram->pool, old->handle);
  STAT_DEC (zram, pages_stored);
  STAT_SUB (zram, compr_data_size, old->size);
  if (old->flags & SLOT_HUGE)
    STAT_DEC (zram, huge_pages);
  return true;
}

static const struct slot_val empty_val = { 0, 0, 0 };

/* Under the slot lock: bytes [off, off+n) of the block into dst.
 * -EIO for data that does not decompress to exactly one page.
 */
static int
slot_read_locked (struct zram *zram, struct zram_slot *s, unsigned char *dst,
                  uint32_t off, uint32_t n)
{
  uint32_t f = slot_flags (s);
  unsigned char page[ZRAM_BLOCK_SIZE];
  const unsigned char *src;
  int r = 0;

  if (f & SLOT_SAME) {
    fill_word (dst, s->handle, off, n);
    return 0;
  }
  if (s->handle == 0) {
    memset (dst, 0, n);
    return 0;
  }

  src = zs_map_object (zram->pool, s->handle, ZS_MM_RO);
  if (f & SLOT_HUGE)
    memcpy (dst, src + off, n);
  else if (n == ZRAM_BLOCK_SIZE)
    r = zcomp_decompress (zram->conf, src, s->size, dst);
  else {
    r = zcomp_decompress (zram->conf, src, s->size, page);
    if (r == 0)
      memcpy (dst, page + off, n);
  }
  zs_unmap_object (zram->pool, s->handle);
  return r;
}

static int
read_block (struct zram *zram, uint64_t index, unsigned char *dst,
            uint32_t off, uint32_t n)
{
  struct zram_slot *s = &zram->table[index];
  int r;

  if (empty_unlocked (zram, index)) {
    memset (dst, 0, n);
    return 0;
  }
  slot_lock (s);
  r = slot_read_locked (zram, s, dst, off, n);
  if (slot_flags (s) & SLOT_IDLE)
    slot_update_flags (s, SLOT_IDLE, 0);
  slot_unlock (s);
  return r;
}

/* Writes bytes [off, off+n) of block index from src.  A whole block is
 * compressed and allocated before the lock is taken; a partial one is
 * read, modified and written back under it.
 */
static int
write_block (struct zram *zram, uint64_t index, const unsigned char *src,
             uint32_t off, uint32_t n)
{
  struct zram_slot *s = &zram->table[index];
  struct slot_val val, old;
  unsigned char page[ZRAM_BLOCK_SIZE];
  int r;

  touch_table_page (zram, index);
  if (n == ZRAM_BLOCK_SIZE) {
    r = prepare_page (zram, src, &val);
    if (r < 0)
      return r;
    slot_lock (s);
    slot_swap (zram, s, &val, &old);
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
    slot_unlock (s);
  }
  release_old (zram, &old);
  return 0;
}

/* Frees one whole block (trim, write-zeroes). */
static void
free_block (struct zram *zram, uint64_t index)
{
  struct zram_slot *s = &zram->table[index];
  struct slot_val old;

  /* Counted whether or not the slot held anything, as zram's discard
   * counts every whole page it is asked to free.
   */
  STAT_INC (zram, notify_free);
  if (empty_unlocked (zram, index)) {
    STAT_INC (zram, miss_free);
    return;
  }
  slot_lock (s);
  slot_swap (zram, s, &empty_val, &old);
  slot_unlock (s);
  if (!release_old (zram, &old))
    STAT_INC (zram, miss_free);
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
  int r = check_range (zram, count, offset);

  if (r < 0)
    return r;
  start = io_start (zram);
  while (count > 0) {
    uint32_t off = offset & (ZRAM_BLOCK_SIZE - 1);
    uint32_t n = ZRAM_BLOCK_SIZE - off;
    uint64_t index = offset >> ZRAM_BLOCK_SHIFT;

    if (n > count)
      n = count;
    if (op == IO_READ) {
      r = read_block (zram, index, p, off, n);
      if (r < 0)
        STAT_INC (zram, failed_reads);
    }
    else {
      r = write_block (zram, index, p, off, n);
      if (r < 0)
        STAT_INC (zram, failed_writes);
    }
    if (r < 0)
      break;
    p += n;
    offset += n;
    count -= n;
  }
  io_done (zram, op, start, p - buf);
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
  start = io_start (zram);
  while (offset < end) {
    uint32_t off = offset & (ZRAM_BLOCK_SIZE - 1);
    uint32_t n = ZRAM_BLOCK_SIZE - off;

    if (n > end - offset)
      n = end - offset;
    if (n == ZRAM_BLOCK_SIZE &&
        !table_page_touched (zram, offset >> ZRAM_BLOCK_SHIFT)) {
      /* A whole untouched table page at once: nothing there to free. */
      uint64_t index = offset >> ZRAM_BLOCK_SHIFT;
      uint64_t k = next_table_page (index) - index;

      if (k > (end - offset) >> ZRAM_BLOCK_SHIFT)
        k = (end - offset) >> ZRAM_BLOCK_SHIFT;
      STAT_ADD (zram, notify_free, k);
      STAT_ADD (zram, miss_free, k);
      offset += k << ZRAM_BLOCK_SHIFT;
      continue;
    }
    if (n == ZRAM_BLOCK_SIZE)
      free_block (zram, offset >> ZRAM_BLOCK_SHIFT);
    /* A block that is empty or all zeroes needs no zeroing: don't make a
     * same page of it.
     */
    else if (zero &&
             !empty_unlocked (zram, offset >> ZRAM_BLOCK_SHIFT) &&
             !slot_hole_unlocked (&zram->table[offset >> ZRAM_BLOCK_SHIFT])) {
      r = write_block (zram, offset >> ZRAM_BLOCK_SHIFT, zeroes, off, n);
      if (r < 0) {
        STAT_INC (zram, failed_writes);
        break;
      }
    }
    offset += n;
  }
  io_done (zram, IO_DISCARD, start, count);
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

  if (zram->table == NULL) {
    STAT_INC (zram, invalid_io);
    return -ENXIO;
  }
  /* Every write is in memory the moment it returns: nothing to do. */
  start = io_start (zram);
  io_done (zram, IO_FLUSH, start, 0);
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
  hole = !table_page_touched (zram, first) ||
    slot_hole_unlocked (&zram->table[first]);
  for (i = first; i <= last; ) {
    uint64_t step = 1;
    bool h;

    /* An untouched table page is 256 empty slots at once. */
    if (!table_page_touched (zram, i)) {
      h = true;
      step = next_table_page (i) - i;
    }
    else
      h = slot_hole_unlocked (&zram->table[i]);
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
  zram->stripes = aligned_alloc (64, NR_STRIPES * sizeof (struct stripe));
  if (zram->stripes == NULL) {
    free (zram);
    errno = ENOMEM;
    return NULL;
  }
  memset (zram->stripes, 0, NR_STRIPES * sizeof (struct stripe));
  err = pthread_rwlock_init (&zram->init_lock, NULL);
  if (err) {
    free (zram->stripes);
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

/* Under init_lock for writing: frees the table and the pool and zeroes
 * the statistics.
 */
static void
teardown (struct zram *zram)
{
  if (zram->table) {
    /* Destroying the pool frees every object at once. */
    zs_destroy_pool (zram->pool);
    munmap (zram->table, zram->nr_slots * sizeof (struct zram_slot));
    munmap (zram->touched, zram->touched_bytes);
  }
  __atomic_store_n (&zram->disksize, 0, __ATOMIC_RELEASE);
  zram->table = NULL;
  zram->touched = NULL;
  zram->pool = NULL;
  zram->nr_slots = 0;
  zcomp_conf_free (zram->conf);
  zram->conf = NULL;
  memset (zram->stripes, 0, NR_STRIPES * sizeof (struct stripe));
  __atomic_store_n (&zram->max_used_pages, 0, __ATOMIC_RELAXED);
}

void
zram_destroy (struct zram *zram)
{
  size_t i;

  if (zram == NULL)
    return;
  teardown (zram);
  for (i = 0; i < ZRAM_MAX_COMPS; i++)
    zcomp_params_clear (&zram->params[i]);
  pthread_rwlock_destroy (&zram->init_lock);
  free (zram->stripes);
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
  if (zram->table)
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
  /* As zram: algo= picks the priority of the algorithm of that name;
   * only the primary has one until recompression's algorithms exist.
   */
  if (algo)
    prio = strcmp (algo, zcomp_name (zram->comp)) == 0 ? 0 : -1;
  if (prio < 0 || prio >= ZRAM_MAX_COMPS)
    r = -EINVAL;
  else if (zram->table == NULL) {
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
  if (zram->table == NULL) {
    __atomic_store_n (&zram->comp, comp, __ATOMIC_RELAXED);
    zram_set_mem_limit (zram, mem_limit);
  }
  pthread_rwlock_unlock (&zram->init_lock);
  return 0;
}

int
zram_set_disksize (struct zram *zram, uint64_t bytes)
{
  struct zram_slot *table;
  uint64_t *touched;
  struct zs_pool *pool;
  uint64_t nr_slots, nr_pages;
  size_t table_bytes, touched_bytes;
  int r = 0;

  if (bytes == 0 || bytes > ZRAM_MAX_DISKSIZE)
    return -EINVAL;
  nr_slots = (bytes + ZRAM_BLOCK_SIZE - 1) >> ZRAM_BLOCK_SHIFT;
  table_bytes = nr_slots * sizeof (struct zram_slot);
  nr_pages = (nr_slots + SLOTS_PER_TABLE_PAGE - 1) / SLOTS_PER_TABLE_PAGE;
  touched_bytes = (nr_pages + 63) / 64 * sizeof (uint64_t);

  pthread_rwlock_wrlock (&zram->init_lock);
  if (zram->table) {
    r = -EBUSY;
    goto out;
  }
  table = mmap (NULL, table_bytes, PROT_READ | PROT_WRITE,
                MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (table == MAP_FAILED) {
    r = -ENOMEM;
    goto out;
  }
  /* A huge page would back 32768 slots at the first write to any of them:
   * keep the table's memory in step with the blocks stored.
   */
  madvise (table, table_bytes, MADV_NOHUGEPAGE);
  touched = mmap (NULL, touched_bytes, PROT_READ | PROT_WRITE,
                  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (touched == MAP_FAILED) {
    r = -ENOMEM;
    munmap (table, table_bytes);
    goto out;
  }
  /* The compressor takes algorithm_params now, as zram's does. */
  zram->conf = zcomp_conf_new (zram->comp, &zram->params[0], &r);
  if (zram->conf == NULL) {
    munmap (table, table_bytes);
    munmap (touched, touched_bytes);
    goto out;
  }
  pool = zs_create_pool ("zram", zram->has_pages ? &zram->pages : NULL);
  if (pool == NULL) {
    r = -errno;
    munmap (table, table_bytes);
    munmap (touched, touched_bytes);
    zcomp_conf_free (zram->conf);
    zram->conf = NULL;
    goto out;
  }
  zram->pool = pool;
  zram->huge_class_size = zs_huge_class_size (pool);
  zram->nr_slots = nr_slots;
  zram->touched = touched;
  zram->touched_bytes = touched_bytes;
  zram->table = table;
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
    for (i = 0; i < ZRAM_MAX_COMPS; i++)
      zcomp_params_clear (&zram->params[i]);
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
    STAT_ADD (zram, pages_compacted, zs_compact (zram->pool));
  pthread_rwlock_unlock (&zram->init_lock);
}

int
zram_mark_idle_all (struct zram *zram)
{
  uint64_t i;
  int r = 0;

  pthread_rwlock_rdlock (&zram->init_lock);
  if (zram->table == NULL)
    r = -EINVAL;
  else {
    for (i = 0; i < zram->nr_slots; i++) {
      struct zram_slot *s = &zram->table[i];

      if (!table_page_touched (zram, i)) {
        i = next_table_page (i) - 1;
        continue;
      }
      if (slot_empty_unlocked (s))
        continue;
      slot_lock (s);
      if ((slot_flags (s) & SLOT_SAME) || s->handle)
        slot_update_flags (s, 0, SLOT_IDLE);
      slot_unlock (s);
    }
  }
  pthread_rwlock_unlock (&zram->init_lock);
  return r;
}

int
zram_get (struct zram *zram)
{
  int r = 0;

  pthread_rwlock_rdlock (&zram->init_lock);
  if (zram->table == NULL)
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
  unsigned i;

  memset (out, 0, sizeof *out);
  pthread_rwlock_rdlock (&zram->init_lock);
  if (zram->table)
    update_io_ticks (zram, now_ns (), false);
  for (i = 0; i < NR_STRIPES; i++) {
    const struct stripe *st = &zram->stripes[i];
#define X(name, what) \
    out->name += __atomic_load_n (&st->name, __ATOMIC_RELAXED);
    ZRAM_COUNTERS (X)
#undef X
    out->in_flight += __atomic_load_n (&st->in_flight, __ATOMIC_RELAXED);
  }
  out->disksize = zram->disksize;
  out->initialised = zram->table != NULL;
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

/* --- Test hooks --- */

int
zram_test_corrupt (struct zram *zram, uint64_t index, uint32_t byte,
                   uint8_t mask)
{
  struct zram_slot *s;
  unsigned char *p;
  int r = 0;

  if (zram->table == NULL || index >= zram->nr_slots)
    return -EINVAL;
  s = &zram->table[index];
  slot_lock (s);
  if ((slot_flags (s) & SLOT_SAME) || s->handle == 0)
    r = -ENOENT;
  else {
    p = zs_map_object (zram->pool, s->handle, ZS_MM_RW);
    p[byte % s->size] ^= mask;
    zs_unmap_object (zram->pool, s->handle);
  }
  slot_unlock (s);
  return r;
}
