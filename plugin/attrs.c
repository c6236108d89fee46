/* uzram: zram's sysfs attributes (see attrs.h): the table, the device's
 * own files (disksize, initstate, reset, compact, mem_limit,
 * mem_used_max, idle, size) and the compressors' (comp_algorithm,
 * algorithm_params, recomp_algorithm, recompress).  The statistics files
 * are attrs-stats.c's, writeback's attrs-writeback.c's.  One file is
 * ours, not zram's: ublk_dev names the device's /dev/ublkbN.
 *
 * A front end that holds the device while its block device exists (ublk's,
 * devices.h) lets go before reset and comes back once disksize is written:
 * reset and disksize ask the device's own (devices_front_*).
 *
 * Formats are the kernel's, byte for byte, as of Linux 6.x:
 * drivers/block/zram/zram_drv.c and zcomp.c, and block/genhd.c for
 * `size`.  Write rules are zram's: disksize and comp_algorithm only while
 * uninitialised (EBUSY after), reset refused while a client holds the
 * device, mem_used_max takes only 0, idle "all" or an age in seconds
 * (CONFIG_ZRAM_TRACK_ENTRY_ACTIME).  Where the kernel is lax (memparse
 * stops at the first bad character, octal "010") we are strict: a write
 * that does not parse whole is EINVAL and changes nothing.
 *
 * algorithm_params takes zram's priority= (0 to 3), algo=, level=, dict=
 * and deflate.winbits=; where zram ignores a parameter it does not know,
 * that is EINVAL here.  So do recomp_algorithm (algo=, priority=) and
 * recompress (type=, max_pages=, threshold=, algo=, priority=).
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

#include "attrs-internal.h"
#include "comp.h"
#include "devices.h"
#include "engine.h"
#include "parse.h"

/* How long reset waits for clients that are closing (see reset_store):
 * long enough for a release in flight, short enough that EBUSY for a
 * client that stays is prompt.
 */
#define RESET_GRACE_MS 250

/* Rounds bytes up to whole 4 KiB blocks (PAGE_ALIGN); -EINVAL on overflow. */
static int
block_align (uint64_t *bytes)
{
  if (*bytes > UINT64_MAX - (ZRAM_BLOCK_SIZE - 1))
    return -EINVAL;
  *bytes = (*bytes + ZRAM_BLOCK_SIZE - 1) & ~(uint64_t) (ZRAM_BLOCK_SIZE - 1);
  return 0;
}

/* --- The parsers of zram's write formats --- */

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

/* next_arg's name=value pairs (attrs-internal.h). */
int
attr_pairs_start (char *args, size_t size, const char *buf, size_t len)
{
  if (len >= size || memchr (buf, '\0', len))
    return -EINVAL;
  memcpy (args, buf, len);
  args[len] = '\0';
  return 0;
}

int
attr_next_pair (char *args, char **save, bool first, char **name,
                char **val)
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

/* kstrtoull (attrs-internal.h). */
int
attr_parse_ull (const char *buf, size_t len, int base, uint64_t *out)
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

/* --- Read-write --- */

static ssize_t
disksize_show (struct zram *zram, char *buf, size_t len)
{
  return show_u64 (buf, len, zram_disksize (zram));
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
  if (r == 0)
    devices_front_initialised (zram);
  return r < 0 ? r : (ssize_t) len;
}

/* zcomp_available_show, appended at `at`: every name followed by a
 * space, cur in brackets, then a newline.  The length needed.
 */
static size_t
emit_algorithms (char *buf, size_t len, size_t at, const char *cur)
{
  const char *const *names = zram_comp_algorithms ();
  size_t i;

  for (i = 0; names[i]; i++)
    EMIT (strcmp (names[i], cur) == 0 ? "[%s] " : "%s ", names[i]);
  EMIT ("\n");
  return at;
}

static ssize_t
comp_algorithm_show (struct zram *zram, char *buf, size_t len)
{
  return emit_algorithms (buf, len, 0, zram_comp_algorithm (zram));
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

/* recomp_algorithm_show: one line per priority that has an algorithm,
 * "#N: " and then comp_algorithm's list with that algorithm in brackets.
 */
static ssize_t
recomp_algorithm_show (struct zram *zram, char *buf, size_t len)
{
  size_t at = 0;
  int prio;

  if (len > 0)
    buf[0] = '\0';               /* none set: an empty file */
  for (prio = 1; prio < ZRAM_MAX_COMPS; prio++) {
    const char *cur = zram_recomp_algorithm (zram, prio);

    if (cur == NULL)
      continue;
    EMIT ("#%d: ", prio);
    at = emit_algorithms (buf, len, at, cur);
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

  if ((r = attr_pairs_start (args, sizeof args, buf, len)) < 0)
    return r;
  while ((r = attr_next_pair (args, &save, first, &name, &val)) > 0) {
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

  if ((r = attr_pairs_start (args, sizeof args, buf, len)) < 0)
    return r;
  while ((r = attr_next_pair (args, &save, first, &name, &val)) > 0) {
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
  char args[ZRAM_ATTR_MAX_WRITE + 1], *save, *name, *val;
  const char *algo = NULL, *dict = NULL;
  struct zcomp_params params;
  bool first = true;
  int prio = 0, r;

  if ((r = attr_pairs_start (args, sizeof args, buf, len)) < 0)
    return r;
  zcomp_params_init (&params);
  while ((r = attr_next_pair (args, &save, first, &name, &val)) > 0) {
    first = false;
    if (strcmp (name, "priority") == 0) {
      if ((r = parse_int (val, &prio)) < 0)
        return r;
    }
    else if (strcmp (name, "level") == 0) {
      if ((r = parse_int (val, &params.level)) < 0)
        return r;
    }
    else if (strcmp (name, "deflate.winbits") == 0) {
      if ((r = parse_int (val, &params.deflate_winbits)) < 0)
        return r;
      if (!zcomp_winbits_valid (params.deflate_winbits))
        return -EINVAL;
    }
    else if (strcmp (name, "algo") == 0)
      algo = val;
    else if (strcmp (name, "dict") == 0)
      dict = val;
    else
      return -EINVAL;           /* unknown (zram ignores it) */
  }
  if (r < 0)
    return r;
  if (dict && (r = zcomp_params_load_dict (&params, dict)) < 0)
    return r;
  r = zram_set_comp_params (zram, algo, prio, &params);
  return r < 0 ? r : (ssize_t) len;
}

/* --- Read-only --- */

static ssize_t
initstate_show (struct zram *zram, char *buf, size_t len)
{
  return show_u64 (buf, len, zram_initialised (zram) ? 1 : 0);
}

/* The block layer's `size`: the capacity in 512-byte sectors. */
static ssize_t
size_show (struct zram *zram, char *buf, size_t len)
{
  return show_u64 (buf, len, zram_disksize (zram) / ZRAM_SECTOR_SIZE);
}

/* Ours: the block device that serves this device (ublk=), as a path, or
 * nothing while it has none, so that `cat` gives what to open.
 */
static ssize_t
ublk_dev_show (struct zram *zram, char *buf, size_t len)
{
  int id = devices_front_dev_id (zram);

  if (id < 0) {
    if (len > 0)
      buf[0] = '\0';
    return 0;
  }
  return snprintf (buf, len, "/dev/ublkb%d\n", id);
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
  if ((r = devices_front_release (zram)) < 0)
    return r;
  for (i = 0; (r = zram_reset (zram)) == -EBUSY && i < RESET_GRACE_MS; i++)
    nanosleep (&(struct timespec) { .tv_nsec = 1000000 }, NULL);
  /* Refused after all: the front end that let go comes back. */
  if (r < 0 && zram_initialised (zram))
    devices_front_initialised (zram);
  return r < 0 ? r : (ssize_t) len;
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
      attr_parse_ull (buf, len, 0, &age) < 0)
    return -EINVAL;
  r = zram_mark_idle (zram, age);
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
  { "backing_dev",    0644, backing_dev_show,    backing_dev_store },
  { "writeback",      0200, NULL,                writeback_store },
  { "writeback_limit", 0644, writeback_limit_show, writeback_limit_store },
  { "writeback_limit_enable", 0644, writeback_limit_enable_show,
    writeback_limit_enable_store },
  { "bd_stat",        0444, bd_stat_show,        NULL },
  { "block_state",    0444, block_state_show,    NULL },
  { "writeback_policy", 0644, writeback_policy_show, writeback_policy_store },
  { "policy_stat",    0444, policy_stat_show,    NULL },
  { "ublk_dev",       0444, ublk_dev_show,       NULL },
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
