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
 * Writeback's files are CONFIG_ZRAM_WRITEBACK's: backing_dev (a regular
 * file as well as a block device), writeback in both its legacy and its
 * Linux 6.16 forms, writeback_limit, writeback_limit_enable and bd_stat.
 * idle also takes an age in seconds (CONFIG_ZRAM_TRACK_ENTRY_ACTIME), and
 * block_state, which zram keeps in debugfs (CONFIG_ZRAM_MEMORY_TRACKING),
 * is a file here.
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
#include "slot.h"
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

/* kstrtoull: an optional '+', then digits in base (0: a 0x prefix for
 * hex, a leading 0 for octal, else decimal), the whole of the write but
 * for one trailing newline.
 */
static int
parse_ull (const char *buf, size_t len, int base, uint64_t *out)
{
  size_t n = zram_strip_newline (buf, len);
  char s[32], *end;

  if (n > 0 && buf[0] == '+') {
    buf++;
    n--;
  }
  if (n == 0 || n >= sizeof s || memchr (buf, '\0', n) ||
      !((buf[0] >= '0' && buf[0] <= '9') ||
        (base == 16 && strchr ("abcdefABCDEF", buf[0]))))
    return -EINVAL;
  memcpy (s, buf, n);
  s[n] = '\0';
  errno = 0;
  *out = strtoull (s, &end, base);
  if (*end != '\0')
    return -EINVAL;
  return errno == ERANGE ? -ERANGE : 0;
}

static ssize_t
idle_store (struct zram *zram, const char *buf, size_t len)
{
  size_t n = zram_strip_newline (buf, len);
  uint64_t age = 0;
  int r;

  /* "all", or an age in seconds (kstrtoull base 0, as zram): blocks not
   * accessed for that long.  0 marks all of them, as zram's cutoff 0.
   */
  if (!(n == 3 && memcmp (buf, "all", 3) == 0) &&
      parse_ull (buf, len, 0, &age) < 0)
    return -EINVAL;
  r = zram_mark_idle (zram, age);
  return r < 0 ? r : (ssize_t) len;
}

/* --- Writeback --- */

static ssize_t
backing_dev_show (struct zram *zram, char *buf, size_t len)
{
  int n = zram_backing_dev (zram, buf, len);

  /* Room for the newline, or ask again with one more byte. */
  if ((size_t) n + 1 >= len)
    return n + 1;
  buf[n] = '\n';
  buf[n + 1] = '\0';
  return n + 1;
}

static ssize_t
backing_dev_store (struct zram *zram, const char *buf, size_t len)
{
  size_t n = zram_strip_newline (buf, len);
  char path[ZRAM_ATTR_MAX_WRITE + 1];
  int r;

  /* As zram: EBUSY on an initialised device before the name is looked
   * at; then open's error (ENOENT for an empty name).
   */
  if (zram_initialised (zram))
    return -EBUSY;
  if (n >= sizeof path || memchr (buf, '\0', n))
    return -EINVAL;
  memcpy (path, buf, n);
  path[n] = '\0';
  r = zram_set_backing_dev (zram, path);
  return r < 0 ? r : (ssize_t) len;
}

/* zram's parse_mode: the writeback types. */
static int
parse_wb_mode (const char *s, unsigned *mode)
{
  if (strcmp (s, "idle") == 0)
    *mode = ZRAM_WB_IDLE;
  else if (strcmp (s, "huge") == 0)
    *mode = ZRAM_WB_HUGE;
  else if (strcmp (s, "huge_idle") == 0)
    *mode = ZRAM_WB_IDLE | ZRAM_WB_HUGE;
  else if (strcmp (s, "incompressible") == 0)
    *mode = ZRAM_WB_INCOMPRESSIBLE;
  else
    return -EINVAL;
  return 0;
}

/* kstrtoul base 10 of a NUL-terminated string. */
static int
parse_index (const char *s, uint64_t *out)
{
  return parse_ull (s, strlen (s), 10, out);
}

/* writeback, as Linux 6.16's writeback_store: space-separated arguments,
 * each a type (`idle`, `huge`, `huge_idle`, `incompressible`, bare as
 * before 6.16 or as type=...), page_index=N or page_indexes=LO-HI (both
 * inclusive), which may repeat.  A type writes back the slots of that
 * type in the last range given (all of them if none) and ends the list;
 * each page_index or page_indexes writes back its slots whatever their
 * type.  Everything is parsed before anything is written.  Errors in
 * zram's order: EINVAL uninitialised, ENODEV without a backing device,
 * then EINVAL for what does not parse and ERANGE for an index past the
 * end; then writeback's own (engine.h).  zram ignores name=value pairs it
 * does not know, and so does this.
 */
static ssize_t
writeback_store (struct zram *zram, const char *buf, size_t len)
{
  char args[ZRAM_ATTR_MAX_WRITE + 1], *save, *tok;
  /* The shortest range, "page_index=0 ", takes 13 bytes of the write. */
  struct zram_wb_range ranges[ZRAM_ATTR_MAX_WRITE / 13 + 1];
  uint64_t nr = zram_disksize (zram) >> ZRAM_BLOCK_SHIFT;
  uint64_t lo = 0, hi = nr;
  size_t n = 0;
  int r;

  r = zram_writeback_check (zram);
  if (r < 0)
    return r;
  if (len >= sizeof args || memchr (buf, '\0', len))
    return -EINVAL;
  memcpy (args, buf, len);
  args[len] = '\0';
  for (tok = strtok_r (args, " \t\n", &save); tok;
       tok = strtok_r (NULL, " \t\n", &save)) {
    char *val = strchr (tok, '=');
    unsigned mode;

    if (val)
      *val++ = '\0';
    if (val == NULL || strcmp (tok, "type") == 0) {
      if (parse_wb_mode (val ? val : tok, &mode) < 0)
        return -EINVAL;
      ranges[n++] = (struct zram_wb_range) { mode, lo, hi };
      break;
    }
    if (strcmp (tok, "page_index") == 0) {
      if ((r = parse_index (val, &lo)) < 0)
        return r;
      if (lo >= nr)
        return -ERANGE;
      hi = lo + 1;
    }
    else if (strcmp (tok, "page_indexes") == 0) {
      char *dash = strchr (val, '-');

      if (dash == NULL)
        return -EINVAL;
      *dash = '\0';
      if ((r = parse_index (val, &lo)) < 0)
        return r;
      if (lo >= nr)
        return -ERANGE;
      if ((r = parse_index (dash + 1, &hi)) < 0)
        return r;
      if (hi >= nr || lo > hi)
        return -ERANGE;
      hi++;
    }
    else
      continue;
    ranges[n++] = (struct zram_wb_range) { 0, lo, hi };
  }
  r = zram_writeback (zram, ranges, n, NULL);
  return r < 0 ? r : (ssize_t) len;
}

static ssize_t
writeback_limit_show (struct zram *zram, char *buf, size_t len)
{
  return snprintf (buf, len, "%" PRIu64 "\n", zram_wb_limit (zram));
}

static ssize_t
writeback_limit_store (struct zram *zram, const char *buf, size_t len)
{
  uint64_t v;

  /* kstrtoull base 10; in 4 KiB blocks. */
  if (parse_ull (buf, len, 10, &v) < 0)
    return -EINVAL;
  zram_set_wb_limit (zram, v);
  return len;
}

static ssize_t
writeback_limit_enable_show (struct zram *zram, char *buf, size_t len)
{
  return snprintf (buf, len, "%d\n", zram_wb_limit_enable (zram) ? 1 : 0);
}

static ssize_t
writeback_limit_enable_store (struct zram *zram, const char *buf, size_t len)
{
  uint64_t v;

  /* kstrtoull base 10: any number, non-zero enables. */
  if (parse_ull (buf, len, 10, &v) < 0)
    return -EINVAL;
  zram_set_wb_limit_enable (zram, v != 0);
  return len;
}

static ssize_t
bd_stat_show (struct zram *zram, char *buf, size_t len)
{
  struct zram_stats s;

  /* bd_count, bd_reads, bd_writes, in 4 KiB blocks. */
  zram_get_stats (zram, &s);
  return snprintf (buf, len, "%8llu %8llu %8llu\n",
                   (unsigned long long) s.bd_count,
                   (unsigned long long) s.bd_reads,
                   (unsigned long long) s.bd_writes);
}

/* --- The writeback policy, beyond zram (policy.c) --- */

static ssize_t
writeback_policy_show (struct zram *zram, char *buf, size_t len)
{
  return snprintf (buf, len, "writeback_idle=%" PRIu64 " near_limit=%d"
                   " recompress_idle=%" PRIu64 "\n",
                   zram_wb_idle (zram), zram_wb_near_limit (zram) ? 1 : 0,
                   zram_recomp_idle (zram));
}

/* Space-separated writeback_idle=SECONDS (0: off), near_limit=BOOL and
 * recompress_idle=SECONDS (0: off), all checked before anything changes;
 * at any time.
 */
static ssize_t
writeback_policy_store (struct zram *zram, const char *buf, size_t len)
{
  char args[ZRAM_ATTR_MAX_WRITE + 1], *save, *tok;
  uint64_t secs = zram_wb_idle (zram), recomp = zram_recomp_idle (zram);
  bool near = zram_wb_near_limit (zram);

  if (len >= sizeof args || memchr (buf, '\0', len))
    return -EINVAL;
  memcpy (args, buf, len);
  args[len] = '\0';
  tok = strtok_r (args, " \t\n", &save);
  if (tok == NULL)
    return -EINVAL;
  for (; tok; tok = strtok_r (NULL, " \t\n", &save)) {
    char *val = strchr (tok, '=');

    if (val == NULL)
      return -EINVAL;
    *val++ = '\0';
    if (strcmp (tok, "writeback_idle") == 0) {
      if (parse_ull (val, strlen (val), 10, &secs) < 0)
        return -EINVAL;
    }
    else if (strcmp (tok, "near_limit") == 0) {
      if (zram_parse_bool (val, &near) < 0)
        return -EINVAL;
    }
    else if (strcmp (tok, "recompress_idle") == 0) {
      if (parse_ull (val, strlen (val), 10, &recomp) < 0)
        return -EINVAL;
    }
    else
      return -EINVAL;
  }
  zram_set_wb_idle (zram, secs);
  zram_set_recomp_idle (zram, recomp);
  zram_set_wb_near_limit (zram, near);
  return len;
}

static ssize_t
policy_stat_show (struct zram *zram, char *buf, size_t len)
{
  struct zram_stats s;

  /* What the policy did: wrote back for writeback_idle and near
   * mem_limit, and recompressed for recompress_idle.
   */
  zram_get_stats (zram, &s);
  return snprintf (buf, len, "%8llu %8llu %8llu\n",
                   (unsigned long long) s.policy_idle_writes,
                   (unsigned long long) s.policy_limit_writes,
                   (unsigned long long) s.policy_recompressed);
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

static ssize_t
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
  { "backing_dev",    0644, backing_dev_show,    backing_dev_store },
  { "writeback",      0200, NULL,                writeback_store },
  { "writeback_limit", 0644, writeback_limit_show, writeback_limit_store },
  { "writeback_limit_enable", 0644, writeback_limit_enable_show,
    writeback_limit_enable_store },
  { "bd_stat",        0444, bd_stat_show,        NULL },
  { "block_state",    0444, block_state_show,    NULL },
  { "writeback_policy", 0644, writeback_policy_show, writeback_policy_store },
  { "policy_stat",    0444, policy_stat_show,    NULL },
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
