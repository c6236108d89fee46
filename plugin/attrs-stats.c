/* uzram: zram's statistics files (see attrs.h): what the engine counts
 * (stats.h) and what the allocator and the slot table hold, printed as
 * the kernel prints them, byte for byte, as of Linux 6.x:
 * - mm_stat, io_stat, debug_stat: drivers/block/zram/zram_drv.c;
 * - stat: block/genhd.c part_stat_show (17 fields, times in ms);
 * - classes: mm/zsmalloc.c zs_stats_size_show (debugfs);
 * - block_state, which zram keeps in debugfs
 *   (CONFIG_ZRAM_MEMORY_TRACKING), is a file here.
 * Writeback's own counters (bd_stat, policy_stat) are attrs-writeback.c's.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "attrs-internal.h"
#include "engine.h"
#include "slot.h"
#include "zsmalloc.h"

#define NSEC_PER_MSEC 1000000ull

ssize_t
mm_stat_show (struct zram *zram, char *buf, size_t len)
{
  struct zram_stats s;

  zram_get_stats (zram, &s);
  return snprintf (buf, len,
                   "%8llu %8llu %8llu %8lu %8ld %8llu %8lu %8llu %8llu\n",
                   (unsigned long long) s.orig_data_size,
                   (unsigned long long) s.compr_data_size,
                   (unsigned long long) s.mem_used_total,
                   (unsigned long) s.mem_limit,
                   (long) s.mem_used_max,
                   (unsigned long long) s.same_pages,
                   (unsigned long) s.pages_compacted,
                   (unsigned long long) s.huge_pages,
                   (unsigned long long) s.huge_pages_since);
}

ssize_t
io_stat_show (struct zram *zram, char *buf, size_t len)
{
  struct zram_stats s;

  /* Linux 6.x prints a constant "0" where invalid_io was; we still count
   * it, unpadded in the same place, so the bytes are the kernel's while it
   * is 0.
   */
  zram_get_stats (zram, &s);
  return snprintf (buf, len, "%8llu %8llu %llu %8llu\n",
                   (unsigned long long) s.failed_reads,
                   (unsigned long long) s.failed_writes,
                   (unsigned long long) s.invalid_io,
                   (unsigned long long) s.notify_free);
}

ssize_t
debug_stat_show (struct zram *zram, char *buf, size_t len)
{
  struct zram_stats s;

  /* version 1; the "0" is where writestall was before Linux 6.1. */
  zram_get_stats (zram, &s);
  return snprintf (buf, len, "version: %d\n0 %8llu\n", 1,
                   (unsigned long long) s.miss_free);
}

static unsigned
ns_to_ms (uint64_t ns)
{
  return (unsigned) (ns / NSEC_PER_MSEC);   /* truncates as the kernel does */
}

ssize_t
stat_show (struct zram *zram, char *buf, size_t len)
{
  struct zram_stats s;

  /* part_stat_show: reads, writes, in-flight, io_ticks, time_in_queue,
   * discards, flushes.  Merges are always 0 here: the engine sees requests,
   * not a queue that merges them.
   */
  zram_get_stats (zram, &s);
  return snprintf (buf, len,
                   "%8lu %8lu %8llu %8u "
                   "%8lu %8lu %8llu %8u "
                   "%8u %8u %8u "
                   "%8lu %8lu %8llu %8u "
                   "%8lu %8u"
                   "\n",
                   (unsigned long) s.read_ios, 0ul,
                   (unsigned long long) s.read_sectors,
                   ns_to_ms (s.read_ticks_ns),
                   (unsigned long) s.write_ios, 0ul,
                   (unsigned long long) s.write_sectors,
                   ns_to_ms (s.write_ticks_ns),
                   (unsigned) s.in_flight,
                   ns_to_ms (s.io_ticks_ns),
                   ns_to_ms (s.time_in_queue_ns),
                   (unsigned long) s.discard_ios, 0ul,
                   (unsigned long long) s.discard_sectors,
                   ns_to_ms (s.discard_ticks_ns),
                   (unsigned long) s.flush_ios,
                   ns_to_ms (s.flush_ticks_ns));
}

ssize_t
classes_show (struct zram *zram, char *buf, size_t len)
{
  /* zsmalloc has at most 255 classes for 4 KiB pages; ask again if the
   * pool ever reports more.
   */
  size_t cap = 256, n, i;
  struct zs_class_stat *cs = NULL, *tmp;
  unsigned long totals[ZS_NR_FULLNESS] = { 0 };
  unsigned long total_objs = 0, total_used = 0, total_pages = 0;
  unsigned long total_freeable = 0;
  size_t at = 0;
  int fg;

  for (;;) {
    tmp = realloc (cs, cap * sizeof *cs);
    if (!tmp) {
      free (cs);
      return -ENOMEM;
    }
    cs = tmp;
    n = zram_class_stats (zram, cs, cap);
    if (n <= cap)
      break;
    cap = n;
  }

  EMIT (" %5s %5s %9s %9s %9s %9s %9s %9s %9s %9s %9s %9s %9s %13s %10s %10s %16s %8s\n",
        "class", "size", "10%", "20%", "30%", "40%",
        "50%", "60%", "70%", "80%", "90%", "99%", "100%",
        "obj_allocated", "obj_used", "pages_used",
        "pages_per_zspage", "freeable");
  for (i = 0; i < n; i++) {
    EMIT (" %5u %5u ", cs[i].index, cs[i].size);
    /* Group 0 (empty zspages) is not printed, as in the kernel. */
    for (fg = 1; fg < ZS_NR_FULLNESS; fg++) {
      totals[fg] += cs[i].fullness[fg];
      EMIT ("%9lu ", cs[i].fullness[fg]);
    }
    EMIT ("%13lu %10lu %10lu %16d %8lu\n",
          cs[i].obj_allocated, cs[i].obj_used, cs[i].pages_used,
          (int) cs[i].pages_per_zspage, cs[i].freeable);
    total_objs += cs[i].obj_allocated;
    total_used += cs[i].obj_used;
    total_pages += cs[i].pages_used;
    total_freeable += cs[i].freeable;
  }
  EMIT ("\n");
  EMIT (" %5s %5s ", "Total", "");
  for (fg = 1; fg < ZS_NR_FULLNESS; fg++)
    EMIT ("%9lu ", totals[fg]);
  EMIT ("%13lu %10lu %10lu %16s %8lu\n",
        total_objs, total_used, total_pages, "", total_freeable);

  free (cs);
  return at;
}

struct block_state_buf {
  char *buf;
  size_t len, at;
};

static int
block_state_line (void *opaque, uint64_t index, uint32_t atime,
                  uint32_t f)
{
  struct block_state_buf *b = opaque;
  char *buf = b->buf;
  size_t len = b->len, at = b->at;

  /* zram's read_block_state: index, access time as seconds.micros (only
   * whole seconds are kept here), then s(ame) w(ritten back) h(uge)
   * i(dle) r(ecompressed) (i)n(compressible).
   */
  EMIT ("%12" PRIu64 " %12lld.%06lu %c%c%c%c%c%c\n", index,
        (long long) atime, 0ul,
        f & SLOT_SAME ? 's' : '.', f & SLOT_WB ? 'w' : '.',
        f & SLOT_HUGE ? 'h' : '.', f & SLOT_IDLE ? 'i' : '.',
        slot_prio_of (f) ? 'r' : '.', f & SLOT_INCOMPRESSIBLE ? 'n' : '.');
  b->at = at;
  return 0;
}

ssize_t
block_state_show (struct zram *zram, char *buf, size_t len)
{
  struct block_state_buf b = { buf, len, 0 };
  int r;

  if (len > 0)
    buf[0] = '\0';
  /* Uninitialised: an empty file (zram has no entries to show). */
  r = zram_block_state (zram, block_state_line, &b);
  if (r < 0 && r != -EINVAL)
    return r;
  return b.at;
}
