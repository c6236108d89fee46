/* uzram engine: a writeback policy that runs by itself, beyond zram.
 *
 * zram writes back and recompresses only when told (`idle`, then
 * `writeback` or `recompress`), so every user needs a job of their own.
 * Three rules here do it instead, all off by default and changed at run
 * time (the writeback_policy control file):
 *
 *   recompress_idle=SECONDS a background thread recompresses, with the
 *                           recompression algorithms (recomp_algorithm),
 *                           the blocks not accessed for that long, once a
 *                           second;
 *   writeback_idle=SECONDS  the thread writes back every block not
 *                           accessed for that long, once a second;
 *   near_limit=1            a write that would pass mem_limit first writes
 *                           back idle blocks (SLOT_IDLE), then huge ones,
 *                           then any not accessed for RECLAIM_COLD_SECS,
 *                           a batch at a time, and compacts, instead of
 *                           failing with ENOSPC; the thread does the same
 *                           ahead of time above NEAR_LIMIT_PERCENT.
 *
 * Both need a backing device, and writeback_limit bounds both.  What they
 * wrote shows in the counters policy_idle_writes and policy_limit_writes
 * (the policy_stat file).
 *
 * The thread starts in nbdkit's .after_fork (threads do not survive its
 * fork) and stops in .cleanup.  It takes init_lock for reading, as the
 * writeback file does; the reclaim on the write path runs as the writing
 * client and takes other slots' locks only with trylock, since the writer
 * may hold the lock of the block it writes (a partial block).
 */
#include <config.h>

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include "device.h"

/* Above this share of mem_limit the thread starts making room, so that
 * writes seldom have to wait for it; it stops below NEAR_LIMIT_LOW.
 */
#define NEAR_LIMIT_PERCENT 90
#define NEAR_LIMIT_LOW 80
/* Blocks one reclaim on the write path writes back: enough to free whole
 * zspages for the next writes, few enough that one write is not held up
 * for long.
 */
#define RECLAIM_BATCH 64
/* Near mem_limit, a block not accessed for this long may go out even if
 * nobody marked it idle: not the one being written, nor those in use.
 */
#define RECLAIM_COLD_SECS 1
/* Blocks one round of recompress_idle tries at most (zram's max_pages):
 * a bounded share of one CPU, so the thread still comes round to
 * writeback and reclaim each second.
 */
#define RECOMPRESS_BATCH 1024

struct policy_thread {
  pthread_t thread;
  pthread_mutex_t lock;
  pthread_cond_t cond;
  bool stop;                            /* under lock */
};

void
zram_set_wb_idle (struct zram *zram, uint64_t secs)
{
  __atomic_store_n (&zram->policy_idle_secs, secs, __ATOMIC_RELAXED);
}

uint64_t
zram_wb_idle (struct zram *zram)
{
  return __atomic_load_n (&zram->policy_idle_secs, __ATOMIC_RELAXED);
}

void
zram_set_recomp_idle (struct zram *zram, uint64_t secs)
{
  __atomic_store_n (&zram->policy_recomp_secs, secs, __ATOMIC_RELAXED);
}

uint64_t
zram_recomp_idle (struct zram *zram)
{
  return __atomic_load_n (&zram->policy_recomp_secs, __ATOMIC_RELAXED);
}

void
zram_set_wb_near_limit (struct zram *zram, bool on)
{
  __atomic_store_n (&zram->policy_near_limit, on, __ATOMIC_RELAXED);
}

bool
zram_wb_near_limit (struct zram *zram)
{
  return __atomic_load_n (&zram->policy_near_limit, __ATOMIC_RELAXED);
}

/* Writes back up to max blocks of mode (with trylock) and, with cutoff,
 * last accessed before it, going on from the cursor round the table once.
 * Returns how many.
 */
static uint64_t
reclaim_pass (struct zram *zram, unsigned mode, slot_time cutoff,
              uint64_t max)
{
  uint64_t nr = zram->table.nr_slots, start, i, n, done = 0;

  start = __atomic_load_n (&zram->policy_cursor, __ATOMIC_RELAXED) % nr;
  for (n = 0, i = start; n < nr && done < max; n++, i = (i + 1) % nr) {
    int r;

    if (!table_page_touched (&zram->table, i)) {
      uint64_t skip = next_table_page (i) - i - 1;

      n += skip;
      i += skip;
      continue;
    }
    r = writeback_slot (zram, i, mode, cutoff, true);
    if (r < 0)
      break;
    if (r == WB_WRITTEN)
      done++;
  }
  __atomic_store_n (&zram->policy_cursor, i, __ATOMIC_RELAXED);
  return done;
}

/* Idle blocks first, then huge: huge blocks free a whole page each but
 * may be hot.  Then, as nothing marked idle or huge may be left (swap's
 * pages compress, and nothing marks them idle), any block not accessed
 * for RECLAIM_COLD_SECS, in table order from the cursor: for swap, whose
 * allocator hands out slots in runs, near enough the oldest first.
 */
static uint64_t
reclaim (struct zram *zram, uint64_t max)
{
  uint64_t done = reclaim_pass (zram, ZRAM_WB_IDLE, 0, max);
  slot_time now;

  if (done < max)
    done += reclaim_pass (zram, ZRAM_WB_HUGE, 0, max - done);
  now = slot_now ();
  if (done < max && now > RECLAIM_COLD_SECS)
    done += reclaim_pass (zram, 0, now - RECLAIM_COLD_SECS, max - done);
  if (done)
    STAT_ADD (&zram->stats, pages_compacted, zs_compact (zram->pool));
  STAT_ADD (&zram->stats, policy_limit_writes, done);
  return done;
}

bool
policy_reclaim (struct zram *zram)
{
  if (!zram_wb_near_limit (zram) || zram->backing == NULL ||
      !wb_limit_left (zram))
    return false;
  return reclaim (zram, RECLAIM_BATCH) > 0;
}

/* recompress_idle's part of a round: one recompress run over the blocks
 * idle for secs, with every recompression algorithm set.
 */
static void
recompress_idle (struct zram *zram, uint64_t secs, slot_time now)
{
  struct zram_recompress_req req = {
    .mode = 0, .max_pages = RECOMPRESS_BATCH, .threshold = 0, .algo = NULL,
    .prio = 1, .prio_max = ZRAM_MAX_COMPS,
  };
  uint64_t done = 0;

  if (secs == 0 || secs >= now || zram->nr_prios < 2)
    return;
  /* -EAGAIN (a recompress or writeback runs) waits for the next round;
   * -ENOMEM or a block that doesn't decompress stops only this round,
   * as they stop a recompress, and the slots keep their objects.
   */
  recompress_locked (zram, &req, now - (slot_time) secs, &done);
  STAT_ADD (&zram->stats, policy_recompressed, done);
}

/* One round of the thread's work, under init_lock (read). */
static void
policy_tick (struct zram *zram)
{
  uint64_t secs = zram_wb_idle (zram), limit, i;
  slot_time now = slot_now ();

  if (!zram_has_table (zram))
    return;
  recompress_idle (zram, zram_recomp_idle (zram), now);
  if (zram->backing == NULL)
    return;
  if (secs > 0 && secs < now) {
    slot_time cutoff = now - (slot_time) secs;

    for (i = 0; i < zram->table.nr_slots; i++) {
      int r;

      if (!table_page_touched (&zram->table, i)) {
        i = next_table_page (i) - 1;
        continue;
      }
      r = writeback_slot (zram, i, 0, cutoff, false);
      if (r < 0)
        break;
      if (r == WB_WRITTEN)
        STAT_INC (&zram->stats, policy_idle_writes);
    }
  }
  limit = __atomic_load_n (&zram->limit_pages, __ATOMIC_RELAXED);
  if (zram_wb_near_limit (zram) && limit &&
      zs_get_total_pages (zram->pool) * 100 >= limit * NEAR_LIMIT_PERCENT)
    while (zs_get_total_pages (zram->pool) * 100 >= limit * NEAR_LIMIT_LOW &&
           reclaim (zram, RECLAIM_BATCH) > 0)
      ;
}

static void *
policy_main (void *arg)
{
  struct zram *zram = arg;
  struct policy_thread *p = zram->policy;
  struct timespec ts;

  pthread_mutex_lock (&p->lock);
  while (!p->stop) {
    pthread_mutex_unlock (&p->lock);
    pthread_rwlock_rdlock (&zram->init_lock);
    policy_tick (zram);
    pthread_rwlock_unlock (&zram->init_lock);
    pthread_mutex_lock (&p->lock);
    clock_gettime (CLOCK_MONOTONIC, &ts);
    ts.tv_sec += 1;
    while (!p->stop &&
           pthread_cond_timedwait (&p->cond, &p->lock, &ts) != ETIMEDOUT)
      ;
  }
  pthread_mutex_unlock (&p->lock);
  return NULL;
}

int
zram_policy_start (struct zram *zram)
{
  struct policy_thread *p;
  pthread_condattr_t attr;
  int err;

  if (zram->policy)
    return 0;
  p = calloc (1, sizeof *p);
  if (p == NULL)
    return -ENOMEM;
  pthread_mutex_init (&p->lock, NULL);
  pthread_condattr_init (&attr);
  pthread_condattr_setclock (&attr, CLOCK_MONOTONIC);
  pthread_cond_init (&p->cond, &attr);
  pthread_condattr_destroy (&attr);
  zram->policy = p;
  err = pthread_create (&p->thread, NULL, policy_main, zram);
  if (err) {
    zram->policy = NULL;
    pthread_cond_destroy (&p->cond);
    pthread_mutex_destroy (&p->lock);
    free (p);
    return -err;
  }
  return 0;
}

void
zram_policy_stop (struct zram *zram)
{
  struct policy_thread *p = zram->policy;

  if (p == NULL)
    return;
  pthread_mutex_lock (&p->lock);
  p->stop = true;
  pthread_cond_signal (&p->cond);
  pthread_mutex_unlock (&p->lock);
  pthread_join (p->thread, NULL);
  pthread_cond_destroy (&p->cond);
  pthread_mutex_destroy (&p->lock);
  free (p);
  zram->policy = NULL;
}
