/* uzram: zram's sysfs attributes (see attrs.h).
 *
 * Formats are the kernel's, byte for byte, as of Linux 6.x:
 * - mm_stat, io_stat, debug_stat, comp_algorithm, disksize, initstate:
 *   drivers/block/zram/zram_drv.c and zcomp.c;
 * - stat: block/genhd.c part_stat_show (17 fields, times in ms);
 * - classes: mm/zsmalloc.c zs_stats_size_show (debugfs).
 * Write rules are zram's: disksize and comp_algorithm only while
 * uninitialised (EBUSY after), reset refused while a client holds the
 * device, mem_used_max takes only 0, idle only "all".  Where the kernel is
 * lax (memparse stops at the first bad character, octal "010") we are
 * strict: a write that does not parse whole is EINVAL and changes nothing.
 *
 * algorithm_params takes zram's priority= (0 to 3), algo=, level=, dict=
 * and deflate.winbits=; where zram ignores a parameter it does not know,
 * that is EINVAL here.  So do recomp_algorithm (algo=, priority=) and
 * recompress (type=, max_pages=, threshold=, algo=, priority=).
 *
 * Still to do: writeback and its files (bd_stat, backing_dev).
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "attrs.h"
#include "comp.h"
#include "engine.h"
#include "parse.h"
#include "zsmalloc.h"

#define NSEC_PER_MSEC 1000000ull

/* How long reset waits for clients that are closing (see reset_store):
 * long enough for a release in flight, short enough that EBUSY for a
 * client that stays is prompt.
 */
#define RESET_GRACE_MS 250

static struct zram_attr_hooks hooks;

void
zram_attr_set_hooks (const struct zram_attr_hooks *h)
{
  hooks = h ? *h : (struct zram_attr_hooks) { 0 };
}

/* Rounds bytes up to whole 4 KiB blocks (PAGE_ALIGN); -EINVAL on overflow. */
static int
block_align (uint64_t *bytes)
{
  if (*bytes > UINT64_MAX - (ZRAM_BLOCK_SIZE - 1))
    return -EINVAL;
  *bytes = (*bytes + ZRAM_BLOCK_SIZE - 1) & ~(uint64_t) (ZRAM_BLOCK_SIZE - 1);
  return 0;
}

/* --- Read-write --- */

static ssize_t
disksize_show (struct zram *zram, char *buf, size_t len)
{
  return snprintf (buf, len, "%" PRIu64 "\n", zram_disksize (zram));
}

static ssize_t
disksize_store (struct zram *zram, const char *buf, size_t len)
{
  uint64_t bytes;
  int r;

  /* zram checks the number before the state: garbage is EINVAL even on an
   * initialised device.
   */
  if (zram_parse_size (buf, len, &bytes) || bytes == 0 ||
      block_align (&bytes))
    return -EINVAL;
  r = zram_set_disksize (zram, bytes);
  if (r == 0 && hooks.initialised)
    hooks.initialised (hooks.opaque);
  return r < 0 ? r : (ssize_t) len;
}

static ssize_t
comp_algorithm_show (struct zram *zram, char *buf, size_t len)
{
  const char *const *names = zram_comp_algorithms ();
  const char *cur = zram_comp_algorithm (zram);
  size_t at = 0;
  size_t i;

  /* zcomp_available_show: every name followed by a space, the current one
   * in brackets, then a newline.
   */
  for (i = 0; names[i]; i++) {
    bool is_cur = strcmp (names[i], cur) == 0;
    at += snprintf (at < len ? buf + at : NULL, at < len ? len - at : 0,
                    is_cur ? "[%s] " : "%s ", names[i]);
  }
  at += snprintf (at < len ? buf + at : NULL, at < len ? len - at : 0, "\n");
  return at;
}

static ssize_t
comp_algorithm_store (struct zram *zram, const char *buf, size_t len)
{
  const char *const *names = zram_comp_algorithms ();
  size_t n = zram_strip_newline (buf, len);
  char name[64];
  size_t i;
  int r;

  if (n == 0 || n >= sizeof name || memchr (buf, '\0', n))
    return -EINVAL;
  memcpy (name, buf, n);
  name[n] = '\0';
  /* As zram: an unknown name is EINVAL whatever the state. */
  for (i = 0; names[i]; i++)
    if (strcmp (names[i], name) == 0)
      break;
  if (!names[i])
    return -EINVAL;
  r = zram_set_comp_algorithm (zram, name);
  return r < 0 ? r : (ssize_t) len;
}

/* kstrtoint (base 10): an optional sign, then decimal digits, the whole
 * of the string; -ERANGE when it does not fit an int.
 */
static int
parse_int (const char *s, int *out)
{
  bool neg = *s == '-';
  uint64_t v;
  size_t used, n;

  if (*s == '-' || *s == '+')
    s++;
  n = strlen (s);
  if (n == 0 || strspn (s, "0123456789") != n)
    return -EINVAL;
  if (zram_parse_u64 (s, n, &v, &used) || v > (uint64_t) INT_MAX + neg)
    return -ERANGE;
  *out = neg ? (int) -(int64_t) v : (int) v;
  return 0;
}

/* kstrtoull / kstrtouint (base 10): an optional '+', then decimal digits,
 * the whole string; -ERANGE past max.
 */
static int
parse_unsigned (const char *s, uint64_t max, uint64_t *out)
{
  uint64_t v;
  size_t used, n;

  if (*s == '+')
    s++;
  n = strlen (s);
  if (n == 0 || strspn (s, "0123456789") != n)
    return -EINVAL;
  if (zram_parse_u64 (s, n, &v, &used) || v > max)
    return -ERANGE;
  *out = v;
  return 0;
}

/* The name=value pairs of a write, as the kernel's next_arg splits them:
 * copies buf into args (NUL-terminated) for next_pair.  -EINVAL for a
 * write too long or holding a NUL.
 */
static int
pairs_start (char *args, size_t size, const char *buf, size_t len)
{
  if (len >= size || memchr (buf, '\0', len))
    return -EINVAL;
  memcpy (args, buf, len);
  args[len] = '\0';
  return 0;
}

/* The next pair: 1 with *name and *val set, 0 at the end, -EINVAL for a
 * name without a value (zram: "if (!val || !*val) return -EINVAL").
 */
static int
next_pair (char *args, char **save, bool first, char **name, char **val)
{
  char *tok = strtok_r (first ? args : NULL, " \t\n", save);

  if (tok == NULL)
    return 0;
  *val = strchr (tok, '=');
  if (*val == NULL || (*val)[1] == '\0')
    return -EINVAL;
  *(*val)++ = '\0';
  *name = tok;
  return 1;
}

/* recomp_algorithm_show: one line per priority that has an algorithm,
 * "#N: " and then comp_algorithm's list with that algorithm in brackets.
 */
static ssize_t
recomp_algorithm_show (struct zram *zram, char *buf, size_t len)
{
  const char *const *names = zram_comp_algorithms ();
  size_t at = 0;
  int prio;
  size_t i;

  if (len > 0)
    buf[0] = '\0';               /* none set: an empty file */
  for (prio = 1; prio < ZRAM_MAX_COMPS; prio++) {
    const char *cur = zram_recomp_algorithm (zram, prio);

    if (cur == NULL)
      continue;
    at += snprintf (at < len ? buf + at : NULL, at < len ? len - at : 0,
                    "#%d: ", prio);
    for (i = 0; names[i]; i++) {
      bool is_cur = strcmp (names[i], cur) == 0;
      at += snprintf (at < len ? buf + at : NULL, at < len ? len - at : 0,
                      is_cur ? "[%s] " : "%s ", names[i]);
    }
    at += snprintf (at < len ? buf + at : NULL, at < len ? len - at : 0,
                    "\n");
  }
  return at;
}

/* The longest algorithm name zram takes (ZRAM_MAX_ALGO_NAME_SZ); longer
 * is E2BIG.
 */
#define MAX_ALGO_NAME 128

/* recomp_algorithm_store: algo=NAME (required), priority=1..3 (default
 * 1).  Errors in zram's order: a pair without a value, a priority that
 * doesn't parse, no algo= or a priority out of range (EINVAL), an
 * overlong name (E2BIG), a name not built in (EINVAL), initialised
 * (EBUSY).
 */
static ssize_t
recomp_algorithm_store (struct zram *zram, const char *buf, size_t len)
{
  char args[ZRAM_ATTR_MAX_WRITE + 1], *save, *name, *val;
  const char *algo = NULL;
  uint64_t prio = 1;
  bool first = true;
  int r;

  if ((r = pairs_start (args, sizeof args, buf, len)) < 0)
    return r;
  while ((r = next_pair (args, &save, first, &name, &val)) > 0) {
    first = false;
    if (strcmp (name, "algo") == 0)
      algo = val;
    else if (strcmp (name, "priority") == 0) {
      int p;

      if ((r = parse_int (val, &p)) < 0)
        return r;
      prio = p < 0 ? UINT64_MAX : (uint64_t) p;
    }
    else
      return -EINVAL;           /* unknown (zram ignores it) */
  }
  if (r < 0)
    return r;
  if (algo == NULL || prio < 1 || prio >= ZRAM_MAX_COMPS)
    return -EINVAL;
  if (strlen (algo) >= MAX_ALGO_NAME)
    return -E2BIG;
  r = zram_set_recomp_algorithm (zram, (int) prio, algo);
  return r < 0 ? r : (ssize_t) len;
}

/* recompress_store: type=idle|huge|huge_idle, max_pages=N, threshold=N,
 * algo=NAME, priority=N, parsed as zram parses them (priority=0 means 1,
 * and bounds the run to that one priority); the engine gives the errors
 * that depend on the device (zram_recompress).
 */
static ssize_t
recompress_store (struct zram *zram, const char *buf, size_t len)
{
  char args[ZRAM_ATTR_MAX_WRITE + 1], *save, *name, *val;
  struct zram_recompress_req req = {
    .mode = 0, .max_pages = UINT64_MAX, .threshold = 0, .algo = NULL,
    .prio = 1, .prio_max = ZRAM_MAX_COMPS,
  };
  bool first = true;
  uint64_t v;
  int r;

  if ((r = pairs_start (args, sizeof args, buf, len)) < 0)
    return r;
  while ((r = next_pair (args, &save, first, &name, &val)) > 0) {
    first = false;
    if (strcmp (name, "type") == 0) {
      if (strcmp (val, "idle") == 0)
        req.mode = ZRAM_RECOMP_IDLE;
      else if (strcmp (val, "huge") == 0)
        req.mode = ZRAM_RECOMP_HUGE;
      else if (strcmp (val, "huge_idle") == 0)
        req.mode = ZRAM_RECOMP_IDLE | ZRAM_RECOMP_HUGE;
      else
        return -EINVAL;
    }
    else if (strcmp (name, "max_pages") == 0) {
      if ((r = parse_unsigned (val, UINT64_MAX, &req.max_pages)) < 0)
        return r;
    }
    else if (strcmp (name, "threshold") == 0) {
      if ((r = parse_unsigned (val, UINT32_MAX, &v)) < 0)
        return r;
      req.threshold = v;
    }
    else if (strcmp (name, "algo") == 0)
      req.algo = val;
    else if (strcmp (name, "priority") == 0) {
      if ((r = parse_unsigned (val, UINT32_MAX, &v)) < 0)
        return r;
      req.prio = v == 0 ? 1 : v;
      req.prio_max = req.prio + 1;
    }
    else
      return -EINVAL;           /* unknown (zram ignores it) */
  }
  if (r < 0)
    return r;
  r = zram_recompress (zram, &req);
  return r < 0 ? r : (ssize_t) len;
}

/* zram's algorithm_params_store: space-separated name=value pairs, all
 * checked before anything changes.  The pairs given replace everything
 * stored for that priority, so no pair at all clears it, as zram's
 * comp_params_store does.  dict= is read at once (an unreadable file is
 * EINVAL, as in zram); deflate.winbits must be one zlib takes (zram
 * would take any and fail at initialisation).
 */
static ssize_t
algorithm_params_store (struct zram *zram, const char *buf, size_t len)
{
  char args[ZRAM_ATTR_MAX_WRITE + 1], *save, *tok;
  const char *algo = NULL, *dict = NULL;
  struct zcomp_params params;
  int prio = 0, r;

  if (len >= sizeof args || memchr (buf, '\0', len))
    return -EINVAL;
  memcpy (args, buf, len);
  args[len] = '\0';
  zcomp_params_init (&params);
  for (tok = strtok_r (args, " \t\n", &save); tok;
       tok = strtok_r (NULL, " \t\n", &save)) {
    char *val = strchr (tok, '=');

    if (val == NULL || val[1] == '\0')
      return -EINVAL;           /* as zram: every name needs a value */
    *val++ = '\0';
    if (strcmp (tok, "priority") == 0) {
      if ((r = parse_int (val, &prio)) < 0)
        return r;
    }
    else if (strcmp (tok, "level") == 0) {
      if ((r = parse_int (val, &params.level)) < 0)
        return r;
    }
    else if (strcmp (tok, "deflate.winbits") == 0) {
      if ((r = parse_int (val, &params.deflate_winbits)) < 0)
        return r;
      if (!zcomp_winbits_valid (params.deflate_winbits))
        return -EINVAL;
    }
    else if (strcmp (tok, "algo") == 0)
      algo = val;
    else if (strcmp (tok, "dict") == 0)
      dict = val;
    else
      return -EINVAL;           /* unknown (zram ignores it) */
  }
  if (dict && (r = zcomp_params_load_dict (&params, dict)) < 0)
    return r;
  r = zram_set_comp_params (zram, algo, prio, &params);
  return r < 0 ? r : (ssize_t) len;
}

/* --- Read-only --- */

static ssize_t
initstate_show (struct zram *zram, char *buf, size_t len)
{
  return snprintf (buf, len, "%u\n", zram_initialised (zram) ? 1u : 0u);
}

/* The block layer's `size`: the capacity in 512-byte sectors. */
static ssize_t
size_show (struct zram *zram, char *buf, size_t len)
{
  return snprintf (buf, len, "%" PRIu64 "\n",
                   zram_disksize (zram) / ZRAM_SECTOR_SIZE);
}

static ssize_t
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

static ssize_t
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

static ssize_t
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

static ssize_t
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

/* Appends to buf as snprintf would, tracking the length needed. */
#define EMIT(...)                                                       \
  (at += snprintf (at < len ? buf + at : NULL, at < len ? len - at : 0, \
                   __VA_ARGS__))

static ssize_t
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

/* --- Write-only --- */

static ssize_t
mem_limit_store (struct zram *zram, const char *buf, size_t len)
{
  uint64_t bytes;

  /* Any time; 0 removes the limit.  Rounded up to whole pages, so mm_stat
   * shows what is enforced.
   */
  if (zram_parse_size (buf, len, &bytes) || block_align (&bytes))
    return -EINVAL;
  zram_set_mem_limit (zram, bytes);
  return len;
}

static ssize_t
mem_used_max_store (struct zram *zram, const char *buf, size_t len)
{
  size_t n = zram_strip_newline (buf, len), used;
  uint64_t v;

  /* Only 0, which restarts the peak from the current use. */
  if (zram_parse_u64 (buf, n, &v, &used) || used != n || v != 0)
    return -EINVAL;
  zram_reset_mem_used_max (zram);
  return len;
}

static ssize_t
compact_store (struct zram *zram, const char *buf, size_t len)
{
  (void) buf;
  /* As zram: whatever was written, compaction runs; there is nothing to
   * compact before init, which is EINVAL.
   */
  if (!zram_initialised (zram))
    return -EINVAL;
  zram_compact (zram);
  return len;
}

static ssize_t
reset_store (struct zram *zram, const char *buf, size_t len)
{
  size_t n = zram_strip_newline (buf, len), used;
  uint64_t v;
  int r, i;

  /* kstrtou16: a number up to 65535; 0 is EINVAL, anything else resets. */
  if (zram_parse_u64 (buf, n, &v, &used) || used != n || v == 0 || v > 65535)
    return -EINVAL;
  /* A client that has just gone may still be on its way out: FUSE sends
   * `disk`'s release after close(2) has returned, and nbdkit closes a
   * connection after the client's exit.  `losetup -d; echo 1 > reset`
   * should work as it does with zram, so give them a moment.  The control
   * filesystem runs stores on its admin worker, never on a thread that
   * serves I/O, so the release is served meanwhile and this waits only as
   * long as it takes.
   */
  if (hooks.release && (r = hooks.release (hooks.opaque)) < 0)
    return r;
  for (i = 0; (r = zram_reset (zram)) == -EBUSY && i < RESET_GRACE_MS; i++)
    nanosleep (&(struct timespec) { .tv_nsec = 1000000 }, NULL);
  /* Refused after all: the front end that let go comes back. */
  if (r < 0 && hooks.initialised && zram_initialised (zram))
    hooks.initialised (hooks.opaque);
  return r < 0 ? r : (ssize_t) len;
}

static ssize_t
idle_store (struct zram *zram, const char *buf, size_t len)
{
  size_t n = zram_strip_newline (buf, len);
  int r;

  /* Only "all": the kernel also takes an age in seconds, but only with
   * CONFIG_ZRAM_TRACK_ENTRY_ACTIME, which this device does not track.
   */
  if (n != 3 || memcmp (buf, "all", 3) != 0)
    return -EINVAL;
  r = zram_mark_idle_all (zram);
  return r < 0 ? r : (ssize_t) len;
}

/* In the order `ls -f /sys/block/zram0` lists them, roughly: the zram
 * attributes, then the block layer's `size` and `stat`, then `classes`.
 */
const struct zram_attr zram_attrs[] = {
  { "disksize",       0644, disksize_show,       disksize_store },
  { "initstate",      0444, initstate_show,      NULL },
  { "reset",          0200, NULL,                reset_store },
  { "compact",        0200, NULL,                compact_store },
  { "mem_limit",      0200, NULL,                mem_limit_store },
  { "mem_used_max",   0200, NULL,                mem_used_max_store },
  { "idle",           0200, NULL,                idle_store },
  { "comp_algorithm", 0644, comp_algorithm_show, comp_algorithm_store },
  { "algorithm_params", 0200, NULL,              algorithm_params_store },
  { "recomp_algorithm", 0644, recomp_algorithm_show, recomp_algorithm_store },
  { "recompress",     0200, NULL,                recompress_store },
  { "io_stat",        0444, io_stat_show,        NULL },
  { "mm_stat",        0444, mm_stat_show,        NULL },
  { "debug_stat",     0444, debug_stat_show,     NULL },
  { "size",           0444, size_show,           NULL },
  { "stat",           0444, stat_show,           NULL },
  { "classes",        0444, classes_show,        NULL },
};
const size_t zram_nr_attrs = sizeof zram_attrs / sizeof zram_attrs[0];

const struct zram_attr *
zram_attr_find (const char *name)
{
  size_t i;

  for (i = 0; i < zram_nr_attrs; i++)
    if (strcmp (zram_attrs[i].name, name) == 0)
      return &zram_attrs[i];
  return NULL;
}
