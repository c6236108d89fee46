/* uzram engine: the slot table's mappings and the slot lock.  slot.h
 * describes the table, the slots' states and the lock.
 */
#include <config.h>

#include <errno.h>
#include <linux/futex.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "slot.h"

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

void
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

bool
slot_trylock (struct zram_slot *s)
{
  uint32_t f = __atomic_load_n (&s->flags, __ATOMIC_RELAXED);

  while (!(f & SLOT_LOCKED))
    if (__atomic_compare_exchange_n (&s->flags, &f, f | SLOT_LOCKED, true,
                                     __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
      return true;
  return false;
}

void
slot_unlock (struct zram_slot *s)
{
  uint32_t old = __atomic_fetch_and (&s->flags, ~SLOT_LOCK_BITS,
                                     __ATOMIC_RELEASE);

  if (old & SLOT_WAITERS)
    futex (&s->flags, FUTEX_WAKE_PRIVATE, 1);
}

int
slot_table_create (struct slot_table *t, uint64_t nr_slots)
{
  size_t table_bytes = nr_slots * sizeof (struct zram_slot);
  uint64_t nr_pages = (nr_slots + SLOTS_PER_TABLE_PAGE - 1)
    / SLOTS_PER_TABLE_PAGE;
  size_t touched_bytes = (nr_pages + 63) / 64 * sizeof (uint64_t);
  size_t atime_bytes = nr_slots * sizeof (slot_time);
  struct zram_slot *slots;
  uint64_t *touched;
  slot_time *atime;

  slots = mmap (NULL, table_bytes, PROT_READ | PROT_WRITE,
                MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (slots == MAP_FAILED)
    return -ENOMEM;
  /* A huge page would back 32768 slots at the first write to any of them:
   * keep the table's memory in step with the blocks stored.
   */
  madvise (slots, table_bytes, MADV_NOHUGEPAGE);
  touched = mmap (NULL, touched_bytes, PROT_READ | PROT_WRITE,
                  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (touched == MAP_FAILED) {
    munmap (slots, table_bytes);
    return -ENOMEM;
  }
  atime = mmap (NULL, atime_bytes, PROT_READ | PROT_WRITE,
                MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (atime == MAP_FAILED) {
    munmap (touched, touched_bytes);
    munmap (slots, table_bytes);
    return -ENOMEM;
  }
  madvise (atime, atime_bytes, MADV_NOHUGEPAGE);
  t->slots = slots;
  t->atime = atime;
  t->touched = touched;
  t->touched_bytes = touched_bytes;
  t->nr_slots = nr_slots;
  return 0;
}

size_t
slot_table_bytes (uint64_t nr_slots)
{
  return nr_slots * (sizeof (struct zram_slot) + sizeof (slot_time))
    + nr_slots / 8;
}

/* One write to each page of [p, p + len), an atomic add of 0, so that a
 * concurrent update is not lost.  Not MADV_POPULATE_WRITE: that holds the
 * process's mmap lock for reading while it waits for memory, and another
 * device's swap I/O thread that needs the lock for writing (a malloc
 * growing its heap) would wait behind it (pagesrc.c's fault_in, the same).
 */
void
zram_touch_pages (void *p, size_t len)
{
  size_t off;

  for (off = 0; off < len; off += 4096)
    __atomic_fetch_add ((char *) p + off, 0, __ATOMIC_RELAXED);
}

void
slot_table_populate (struct slot_table *t)
{
  zram_touch_pages (t->slots, t->nr_slots * sizeof (struct zram_slot));
  zram_touch_pages (t->atime, t->nr_slots * sizeof (slot_time));
  zram_touch_pages (t->touched, t->touched_bytes);
}

void
slot_table_destroy (struct slot_table *t)
{
  if (t->slots) {
    munmap (t->slots, t->nr_slots * sizeof (struct zram_slot));
    munmap (t->touched, t->touched_bytes);
    munmap (t->atime, t->nr_slots * sizeof (slot_time));
  }
  memset (t, 0, sizeof *t);
}

slot_time
slot_now (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_BOOTTIME, &ts);
  return ts.tv_sec > 0 ? (slot_time) ts.tv_sec : 1;
}
