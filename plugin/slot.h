/* uzram engine: the slot table, its entries' states and flags, and the
 * slot lock.
 *
 * The slot table has one 16-byte entry per 4 KiB block, as Linux zram's
 * zram->table does:
 *
 *   table ─┬─ slot 0  { handle | word : 64 } { size : 32 } { flags : 32 }
 *          ├─ slot 1
 *          ┆
 *          └─ slot disksize/4096 - 1
 *
 * A slot's state, from its handle and flags:
 *
 *   empty         no SLOT_SAME, handle 0: never written, trimmed or freed
 *   same-filled   SLOT_SAME: `handle` holds the repeated 8-byte word,
 *                 nothing is allocated
 *   stored        `handle` is a zsmalloc handle of `size` bytes: compressed
 *                 data, or with SLOT_HUGE the raw page
 *   written back  SLOT_WB: `handle` is the index of the block on the
 *                 backing device holding the raw page (never 0, see
 *                 backing.h), `size` is 0
 *
 * and, beside the state, SLOT_IDLE (not accessed since the last
 * zram_mark_idle), SLOT_WB (written back: the handle is the block's
 * index on the backing device, writeback.c) and the two lock bits.  A stored slot also says
 * which compressor wrote it: the priority (0: comp_algorithm, 1 to 3: the
 * recompression algorithms) in SLOT_PRIO_MASK, zram's ZRAM_COMP_PRIORITY
 * bits, so a recompressed block is read with its own algorithm; and
 * SLOT_INCOMPRESSIBLE (zram's ZRAM_INCOMPRESSIBLE) once no recompression
 * algorithm made it smaller, so recompression does not try it again.
 * Both belong to the stored value: a write replaces them (SLOT_STATE_BITS).
 * SLOT_PP marks a slot picked by recompression (zram's ZRAM_PP_SLOT):
 * any change of the slot's value clears it, which is how recompression,
 * compressing outside the lock, knows the slot did not change meanwhile.
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
 * operations too (slot_update_flags).  The lock covers one block's entry
 * and object, never more than one slot.
 *
 * Still to do: giving table pages back to the kernel when a trim empties
 * all 256 slots of one (the lock words live in those pages, so that needs a
 * quiescent point).
 */
#ifndef UZRAM_SLOT_H
#define UZRAM_SLOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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
#define SLOT_IDLE    (1u << 4)   /* not accessed since zram_mark_idle */
#define SLOT_WB      (1u << 5)   /* written back: handle is a backing block */
#define SLOT_INCOMPRESSIBLE (1u << 6)   /* no recompression shrank it */
#define SLOT_PRIO_SHIFT 7               /* compressor priority, 0..3 */
#define SLOT_PRIO_MASK  (3u << SLOT_PRIO_SHIFT)
#define SLOT_PP      (1u << 9)   /* picked by recompression, unchanged since */
#define SLOT_LOCK_BITS  (SLOT_LOCKED | SLOT_WAITERS)
/* What says how the slot's contents are kept: a slot's value carries these
 * (struct slot_val), and storing a new value replaces them.
 */
#define SLOT_STATE_BITS (SLOT_SAME | SLOT_HUGE | SLOT_WB | \
                         SLOT_INCOMPRESSIBLE | SLOT_PRIO_MASK)

static inline unsigned
slot_prio_of (uint32_t flags)
{
  return (flags & SLOT_PRIO_MASK) >> SLOT_PRIO_SHIFT;
}

/* Slots per 4 KiB page of the table: the unit the kernel backs with
 * memory, and the unit of the touched bitmap.
 */
#define SLOTS_PER_TABLE_PAGE (4096 / sizeof (struct zram_slot))

/* Last access times, one 32-bit count of CLOCK_BOOTTIME seconds per slot
 * (zram's ac_time, CONFIG_ZRAM_TRACK_ENTRY_ACTIME), in an array beside the
 * table rather than in the entry: 4 bytes a slot instead of growing the
 * 16-byte entry, mapped lazily like the table so untouched megabytes cost
 * nothing.  Seconds are all that `idle SECONDS` needs; a 32-bit count of
 * them outlasts any uptime.  0: never accessed, or freed (zram
 * zeroes ac_time when it frees a slot).  Written under the slot lock, read
 * with relaxed atomics.
 */
typedef uint32_t slot_time;

struct slot_table {
  struct zram_slot *slots;              /* NULL: no table */
  slot_time *atime;                     /* nr_slots of them */
  uint64_t *touched;                    /* bit per table page; atomic */
  size_t touched_bytes;
  uint64_t nr_slots;
};

/* Maps an empty table of nr_slots slots.  -ENOMEM. */
int slot_table_create (struct slot_table *t, uint64_t nr_slots);
/* Unmaps it (no object is freed: the pool owns them) and clears *t. */
void slot_table_destroy (struct slot_table *t);

/* About how many bytes a table of nr_slots takes once faulted in whole. */
size_t slot_table_bytes (uint64_t nr_slots);
/* Faults the whole table in now, as Linux's zram allocates its table at
 * disksize, for a device that holds swap (zram_set_populate).
 */
void slot_table_populate (struct slot_table *t);

void slot_lock (struct zram_slot *s);
/* The lock if it is free, without waiting: true if taken. */
bool slot_trylock (struct zram_slot *s);
void slot_unlock (struct zram_slot *s);

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

/* Under the slot lock: clears then sets flag bits, leaving the lock bits. */
static inline void
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
static inline bool
slot_empty_unlocked (const struct zram_slot *s)
{
  uint32_t f = slot_flags (s);

  return !(f & (SLOT_SAME | SLOT_LOCKED)) && slot_handle (s) == 0;
}

/* Without the lock, for extents: true for an empty slot or zeroes.  Both
 * and only they have handle 0 (a same-filled slot keeps its word there,
 * and zs_malloc never returns handle 0).
 */
static inline bool
slot_hole_unlocked (const struct zram_slot *s)
{
  return slot_handle (s) == 0;
}

/* Whether a write ever reached the table page holding slot index.  A
 * clear bit means every slot of that page is empty: a write sets it before
 * it takes the first lock there (table_touch_page), and only a write makes
 * an empty slot non-empty.  Bits are never cleared while the table lives.
 */
static inline bool
table_page_touched (const struct slot_table *t, uint64_t index)
{
  uint64_t page = index / SLOTS_PER_TABLE_PAGE;

  return __atomic_load_n (&t->touched[page / 64], __ATOMIC_ACQUIRE)
    & (UINT64_C (1) << (page % 64));
}

static inline void
table_touch_page (struct slot_table *t, uint64_t index)
{
  uint64_t page = index / SLOTS_PER_TABLE_PAGE;

  if (!table_page_touched (t, index))
    __atomic_fetch_or (&t->touched[page / 64],
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
table_slot_empty_unlocked (const struct slot_table *t, uint64_t index)
{
  return !table_page_touched (t, index) ||
    slot_empty_unlocked (&t->slots[index]);
}

/* Without the lock: true for a slot that is empty or holds zeroes. */
static inline bool
table_slot_hole_unlocked (const struct slot_table *t, uint64_t index)
{
  return !table_page_touched (t, index) ||
    slot_hole_unlocked (&t->slots[index]);
}

/* Seconds since boot (CLOCK_BOOTTIME, as zram's ktime_get_boottime), at
 * least 1 so that 0 keeps meaning "never".
 */
slot_time slot_now (void);

static inline void
slot_touch (struct slot_table *t, uint64_t index, slot_time now)
{
  __atomic_store_n (&t->atime[index], now, __ATOMIC_RELAXED);
}

static inline slot_time
slot_atime (const struct slot_table *t, uint64_t index)
{
  return __atomic_load_n (&t->atime[index], __ATOMIC_RELAXED);
}

#endif /* UZRAM_SLOT_H */
