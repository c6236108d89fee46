/* uzram engine: the statistics' counters and the block layer's times.
 *
 * Counters are relaxed atomics in NR_STRIPES cache-line-aligned stripes; a
 * thread always adds to the same stripe, and a snapshot sums them, so
 * counting never blocks I/O and threads rarely share a line.  The gauges
 * (same_pages, compr_data_size ...) go up and down in different stripes;
 * only their sum means anything.  The counters themselves are listed once,
 * in engine.h's ZRAM_COUNTERS.
 */
#ifndef UZRAM_STATS_H
#define UZRAM_STATS_H

#include <stdbool.h>
#include <stdint.h>

#include "engine.h"

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

struct counters {
  struct stripe *stripes;               /* NR_STRIPES of them */
  uint64_t io_stamp_ms;                 /* atomic: last io_ticks update */
};

/* 0, or -ENOMEM. */
int counters_create (struct counters *c);
void counters_destroy (struct counters *c);
/* Every counter back to 0 (reset). */
void counters_zero (struct counters *c);

extern __thread unsigned counters_my_stripe;   /* 1 + index; 0: not chosen */
unsigned counters_pick_stripe (void);

static inline struct stripe *
stripe_of (struct counters *c)
{
  if (counters_my_stripe == 0)
    counters_my_stripe = counters_pick_stripe ();
  return &c->stripes[counters_my_stripe - 1];
}

#define STAT_ADD(c, name, n) \
  __atomic_fetch_add (&stripe_of (c)->name, (uint64_t) (n), \
                      __ATOMIC_RELAXED)
#define STAT_SUB(c, name, n) \
  __atomic_fetch_sub (&stripe_of (c)->name, (uint64_t) (n), \
                      __ATOMIC_RELAXED)
#define STAT_INC(c, name) STAT_ADD (c, name, 1)
#define STAT_DEC(c, name) STAT_SUB (c, name, 1)

/* A request's accounting: io_start when it begins (returns its start time),
 * io_done with what it moved when it ends, as the block layer's stat file
 * counts ios, sectors, ticks, io_ticks and time_in_queue.
 */
enum io_op { IO_READ, IO_WRITE, IO_DISCARD, IO_FLUSH };

uint64_t io_start (struct counters *c);
void io_done (struct counters *c, enum io_op op, uint64_t start,
              uint32_t count);

/* Brings io_ticks up to now (a snapshot calls it first). */
void counters_update_io_ticks (struct counters *c);
/* Adds every counter and in_flight into out's. */
void counters_sum (struct counters *c, struct zram_stats *out);

#endif /* UZRAM_STATS_H */
