/* uzram engine: the statistics' stripes and the block layer's times
 * (stats.h).
 */
#include <config.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "stats.h"

static unsigned next_stripe;
__thread unsigned counters_my_stripe;

unsigned
counters_pick_stripe (void)
{
  return __atomic_fetch_add (&next_stripe, 1, __ATOMIC_RELAXED)
    % NR_STRIPES + 1;
}

int
counters_create (struct counters *c)
{
  c->stripes = aligned_alloc (64, NR_STRIPES * sizeof (struct stripe));
  if (c->stripes == NULL)
    return -ENOMEM;
  counters_zero (c);
  c->io_stamp_ms = 0;
  return 0;
}

void
counters_destroy (struct counters *c)
{
  free (c->stripes);
  c->stripes = NULL;
}

void
counters_zero (struct counters *c)
{
  memset (c->stripes, 0, NR_STRIPES * sizeof (struct stripe));
}

static uint64_t
now_ns (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (uint64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static uint64_t
sum_in_flight (struct counters *c)
{
  uint64_t n = 0;
  unsigned i;

  for (i = 0; i < NR_STRIPES; i++)
    n += __atomic_load_n (&c->stripes[i].in_flight, __ATOMIC_RELAXED);
  return n;
}

/* io_ticks, the time with at least one request in flight, the way the
 * block layer keeps it (update_io_ticks): whoever first sees the clock pass
 * the stamp moves the stamp and, if requests were in flight, adds the
 * interval.  In whole milliseconds, as the stat file shows it, so the
 * shared stamp changes at most once a millisecond however busy the device.
 */
static void
update_io_ticks (struct counters *c, uint64_t now, bool end)
{
  uint64_t now_ms = now / 1000000;
  uint64_t stamp = __atomic_load_n (&c->io_stamp_ms, __ATOMIC_RELAXED);

  if (now_ms > stamp &&
      __atomic_compare_exchange_n (&c->io_stamp_ms, &stamp, now_ms, false,
                                   __ATOMIC_RELAXED, __ATOMIC_RELAXED) &&
      (end || sum_in_flight (c) > 0))
    STAT_ADD (c, io_ticks_ns, (now_ms - stamp) * 1000000);
}

void
counters_update_io_ticks (struct counters *c)
{
  update_io_ticks (c, now_ns (), false);
}

uint64_t
io_start (struct counters *c)
{
  uint64_t now = now_ns ();

  update_io_ticks (c, now, false);
  STAT_INC (c, in_flight);
  return now;
}

void
io_done (struct counters *c, enum io_op op, uint64_t start, uint32_t count)
{
  uint64_t now = now_ns ();
  uint64_t t = now - start;
  uint64_t sectors = ((uint64_t) count + ZRAM_SECTOR_SIZE - 1)
    / ZRAM_SECTOR_SIZE;

  update_io_ticks (c, now, true);
  STAT_DEC (c, in_flight);
  STAT_ADD (c, time_in_queue_ns, t);
  switch (op) {
  case IO_READ:
    STAT_INC (c, read_ios);
    STAT_ADD (c, read_sectors, sectors);
    STAT_ADD (c, read_ticks_ns, t);
    break;
  case IO_WRITE:
    STAT_INC (c, write_ios);
    STAT_ADD (c, write_sectors, sectors);
    STAT_ADD (c, write_ticks_ns, t);
    break;
  case IO_DISCARD:
    STAT_INC (c, discard_ios);
    STAT_ADD (c, discard_sectors, sectors);
    STAT_ADD (c, discard_ticks_ns, t);
    break;
  case IO_FLUSH:
    STAT_INC (c, flush_ios);
    STAT_ADD (c, flush_ticks_ns, t);
    break;
  }
}

void
counters_sum (struct counters *c, struct zram_stats *out)
{
  unsigned i;

  for (i = 0; i < NR_STRIPES; i++) {
    const struct stripe *st = &c->stripes[i];
#define X(name, what) \
    out->name += __atomic_load_n (&st->name, __ATOMIC_RELAXED);
    ZRAM_COUNTERS (X)
#undef X
    out->in_flight += __atomic_load_n (&st->in_flight, __ATOMIC_RELAXED);
  }
}
