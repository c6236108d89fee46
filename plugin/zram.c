/* nbdkit-zram-plugin: nbdkit's glue around the uzram engine.
 *
 * One engine (engine.h) per device, and num_devices= devices to start
 * with (devices.h), more through the control filesystem's hot_add.  Device
 * N is the export zramN (.list_exports lists them; "" is zram0).  Each NBD
 * connection holds its device (zram_get in .open, zram_put in .close), so
 * the control filesystem's reset and hot_remove are refused while anyone
 * is connected, and a device that is not initialised refuses connections.  Every request goes straight to the
 * engine, which does its own per-slot locking: THREAD_MODEL_PARALLEL.
 *
 * Errors come back from the engine as negative errno values and leave
 * here in errno (.errno_is_preserved), so the client sees ENOSPC over
 * mem_limit and EIO for corrupt data.
 *
 * mlock=true locks the process's memory for swap on the device; the
 * `disk` file and its I/O-flusher threads are the control filesystem's.
 * nbdkit's own worker threads, which serve NBD clients (nbd-client,
 * nbdfuse: swap on `--via nbd` and `--via nbdfuse`), mark themselves
 * I/O flushers on their first request (io_flusher.h).
 * ublk=on|auto adds a third front end, a /dev/ublkbM (ublk.c) for every
 * device, those of num_devices= and hot_add's alike, kept with the device
 * (devices.h's front end): it holds its device while it exists, goes away
 * before a reset or hot_remove, and zramN/ublk_dev names it.
 *
 * TLS is nbdkit's, as for any plugin.  nbdkit (1.32 here, and later ones)
 * tells a plugin whether a connection is TLS but not its PSK identity, so
 * a client is confined to its own export by a TLS front end per client
 * (README's "A memory server for many hosts"), not by this plugin.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define NBDKIT_API_VERSION 2
#include <nbdkit-plugin.h>

#include "devices.h"
#include "engine.h"
#include "io_flusher.h"
#include "parse.h"
#include "zsmalloc.h"
#include "control/control.h"
#include "attrs.h"
#include "ublk.h"

/* The statistics are printed as debug messages (so only with -v) when
 * nbdkit unloads the plugin, and with -D zram.stats=1 also whenever a
 * connection closes.
 */
NBDKIT_DLL_PUBLIC int zram_debug_stats;

/* The largest request: nbdkit's own limit for pread/pwrite is 64 MiB; half
 * of it keeps one request's buffer modest.
 */
#define MAX_REQUEST (32 * 1024 * 1024)

/* At most this many extents per reply: a disk alternating data and holes
 * every block would otherwise give a million for a 4 GiB query.
 */
#define MAX_EXTENTS 65536

static int64_t size = -1;               /* -1: not given */
static unsigned num_devices = 1;        /* at start-up */
static const char *comp_algorithm = ZRAM_DEFAULT_COMP;
static char *comp_algorithm_buf;
static uint64_t mem_limit;
static char *control_dir;
static struct control *control;
static bool mlock_all;
static bool allow_other;                /* others may read the control files */
static enum uring_mode uring_mode = URING_AUTO;  /* `disk` over io_uring */
static unsigned uring_threads = URING_THREADS_DEFAULT; /* per CPU */
static enum ublk_mode ublk_mode = UBLK_OFF;     /* /dev/ublkbN */

/* Sizes as the control files read them (memparse's suffixes, which may be
 * followed by "iB" or "B" here), with an error that names the parameter.  Up to INT64_MAX, as
 * nbdkit's own sizes, so that rounding up to a block cannot wrap.
 */
static int
parse_size (const char *key, const char *value, uint64_t *out)
{
  int r = zram_parse_size_arg (value, out);

  if (r == 0 && *out > INT64_MAX)
    r = -ERANGE;
  if (r == -ERANGE)
    nbdkit_error ("%s=%s: too large", key, value);
  else if (r < 0)
    nbdkit_error ("%s=%s: not a size (a number with an optional "
                  "K, M, G, T, P or E suffix)", key, value);
  return r < 0 ? -1 : 0;
}

static void
list_algorithms (char *buf, size_t n)
{
  const char *const *a;
  size_t used = 0;

  buf[0] = '\0';
  for (a = zram_comp_algorithms (); *a && used < n; a++)
    used += snprintf (buf + used, n - used, "%s%s", used ? " " : "", *a);
}

/* zram_parse_bool, with an error that names the parameter. */
static int
parse_bool (const char *key, const char *value, bool *out)
{
  if (zram_parse_bool (value, out) == 0)
    return 0;
  nbdkit_error ("%s=%s: not a boolean (true or false)", key, value);
  return -1;
}

static int
zram_config (const char *key, const char *value)
{
  uint64_t n;

  if (strcmp (key, "size") == 0) {
    if (parse_size (key, value, &n) == -1)
      return -1;
    if (n == 0) {
      nbdkit_error ("size=%s: the disk needs at least one byte", value);
      return -1;
    }
    if (n > ZRAM_MAX_DISKSIZE) {
      nbdkit_error ("size=%s: larger than the largest disk, "
                    ZRAM_MAX_DISKSIZE_TEXT " (the allocator's handles "
                    "address no more blocks)", value);
      return -1;
    }
    size = n;
  }
  else if (strcmp (key, "comp_algorithm") == 0) {
    const char *const *a;
    char list[256];

    for (a = zram_comp_algorithms (); *a; a++)
      if (strcmp (*a, value) == 0)
        break;
    if (*a == NULL) {
      list_algorithms (list, sizeof list);
      nbdkit_error ("comp_algorithm=%s: not built in; available: %s",
                    value, list);
      return -1;
    }
    free (comp_algorithm_buf);
    comp_algorithm = comp_algorithm_buf = strdup (value);
    if (comp_algorithm == NULL) {
      nbdkit_error ("strdup: %m");
      return -1;
    }
  }
  else if (strcmp (key, "mem_limit") == 0) {
    if (parse_size (key, value, &n) == -1)
      return -1;
    mem_limit = n;
  }
  else if (strcmp (key, "num_devices") == 0) {
    if (nbdkit_parse_unsigned (key, value, &num_devices) == -1)
      return -1;
    if (num_devices < 1 || num_devices > ZRAM_MAX_DEVICES) {
      nbdkit_error ("num_devices: expected 1 to %d, not '%s'",
                    ZRAM_MAX_DEVICES, value);
      return -1;
    }
  }
  else if (strcmp (key, "mlock") == 0) {
    if (parse_bool (key, value, &mlock_all) == -1)
      return -1;
  }
  else if (strcmp (key, "allow_other") == 0) {
    if (parse_bool (key, value, &allow_other) == -1)
      return -1;
  }
  else if (strcmp (key, "uring") == 0) {
    if (uring_parse_mode (value, &uring_mode) == -1) {
      nbdkit_error ("uring: expected auto, on or off, not '%s'", value);
      return -1;
    }
  }
  else if (strcmp (key, "uring_threads") == 0) {
    if (nbdkit_parse_unsigned (key, value, &uring_threads) == -1)
      return -1;
    if (uring_threads < 1 || uring_threads > URING_THREADS_MAX) {
      nbdkit_error ("uring_threads: expected 1 to %d, not '%s'",
                    URING_THREADS_MAX, value);
      return -1;
    }
  }
  else if (strcmp (key, "ublk") == 0) {
    if (ublk_parse_mode (value, &ublk_mode) == -1) {
      nbdkit_error ("ublk: expected auto, on or off, not '%s'", value);
      return -1;
    }
  }
  else if (strcmp (key, "control") == 0) {
    free (control_dir);
    control_dir = nbdkit_absolute_path (value);
    if (control_dir == NULL)
      return -1;
  }
  else {
    nbdkit_error ("unknown parameter '%s'", key);
    return -1;
  }
  return 0;
}

#define zram_config_help \
  "[size=]SIZE              Disk size (rounded up to 4 KiB); without it the\n" \
  "                         device starts uninitialised (see control=).\n" \
  "comp_algorithm=ALGO      Compressor: lzo-rle (default), lzo, lz4, lz4hc,\n" \
  "                         zstd or deflate, as built.\n" \
  "mem_limit=SIZE           Refuse writes (ENOSPC) past this much memory.\n" \
  "num_devices=N            Devices to start with (default 1), each with\n" \
  "                         size=, comp_algorithm= and mem_limit=; the\n" \
  "                         export zramN is device N.\n" \
  "control=DIR              Mount zram's sysfs files at DIR (FUSE).\n" \
  "mlock=true               Lock nbdkit's memory (for swap on the device).\n" \
  "allow_other=true         Let other users reach the control files (their\n" \
  "                         modes still apply).\n" \
  "uring=auto|on|off        Serve the control files (and `disk`) through\n" \
  "                         FUSE over io_uring where the kernel offers it\n" \
  "                         (auto, the default), or must (on), or never.\n" \
  "uring_threads=N          Threads (io_urings) per CPU for that: 1 (the\n" \
  "                         default) to 4.\n" \
  "ublk=on|auto|off         Also serve each device as a /dev/ublkbN where\n" \
  "                         the kernel has ublk (auto), or must (on); off\n" \
  "                         is the default."

static int
zram_config_complete (void)
{
  io_flusher_set_swap (mlock_all);
  if (control_dir && control_check_dir (control_dir) == -1)
    return -1;
  return 0;
}

/* The allocator's page source says once what it cannot do, e.g. give
 * freed memory back under mlock on a kernel before 5.18.
 */
static void
zs_warn (const char *msg)
{
  nbdkit_error ("zsmalloc: %s", msg);
}

static int
zram_get_ready (void)
{
  unsigned i;
  int r;

  zs_set_warn (zs_warn);
  /* mlockall proper waits for after_fork (locks are not inherited), but
   * an error there goes to syslog, where who started nbdkit may never look:
   * try it here, on stderr, and undo it.
   */
  if (mlock_all) {
    if (mlockall (MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT) == -1) {
      nbdkit_error ("mlock=true: mlockall: %m (see ulimit -l, or run as "
                    "root)");
      return -1;
    }
    munlockall ();
  }
  r = devices_set_defaults (comp_algorithm, mem_limit);
  if (r < 0) {
    nbdkit_error ("comp_algorithm=%s: %s", comp_algorithm, strerror (-r));
    return -1;
  }
  for (i = 0; i < num_devices; i++) {
    struct zram *zram;

    r = devices_hot_add ();
    if (r < 0) {
      nbdkit_error ("device %u: %s", i, strerror (-r));
      return -1;
    }
    zram = devices_get (r);
    if (size > 0)
      r = zram_set_disksize (zram, size);
    devices_put (zram);
    if (r < 0) {
      nbdkit_error ("size=%" PRIi64 ": %s", size, strerror (-r));
      return -1;
    }
  }
  return 0;
}

/* ublk.h's front end as devices.h keeps one per device. */
static void *
ublk_front_start (struct zram *zram)
{
  return ublk_start (zram, ublk_mode);
}

static int
ublk_front_release (void *front)
{
  return ublk_release (front);
}

static void
ublk_front_initialised (void *front)
{
  ublk_initialised (front);
}

static int
ublk_front_dev_id (void *front)
{
  return ublk_dev_id (front);
}

static void
ublk_front_stop (void *front)
{
  ublk_stop (front);
}

/* mlock=true's reserve of faulted-in pages (zs_set_reserve): 1/32 of the
 * RAM, the most that swap writes may store before the reserve's thread
 * has found memory again, between 1 MiB and 16 MiB (it stays resident for
 * good, used or not).
 */
static size_t
swap_reserve_pages (void)
{
  long ram = sysconf (_SC_PHYS_PAGES), page = sysconf (_SC_PAGESIZE);
  size_t pages = ram > 0 && page > 0 ? (size_t) ram * page / 32 / 4096 : 0;
  size_t lo = (1 << 20) / 4096, hi = (16 << 20) / 4096;

  return pages < lo ? lo : pages > hi ? hi : pages;
}

static int
zram_after_fork (void)
{
  struct control_opts opts = {
    .allow_other = allow_other, .uring = uring_mode,
    .uring_threads = uring_threads,
  };
  const char *why;
  int err;

  /* Here, not in get_ready: locks are not inherited across nbdkit's fork.
   * MCL_ONFAULT locks pages as they are first touched, so the slot table
   * (address space for the whole disk) is not populated up front.
   */
  if (mlock_all && mlockall (MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT) == -1) {
    nbdkit_error ("mlock=true: mlockall: %m (see ulimit -l, or run as root)");
    return -1;
  }
  if (mlock_all) {
    zs_set_reserve (swap_reserve_pages ());
    devices_set_populate ();
  }
  /* ublk=auto on a kernel without it: no front ends at all, rather than
   * one per device that each looks again (and runs modprobe as root).
   */
  why = ublk_mode == UBLK_AUTO ? ublk_unusable () : NULL;
  if (why) {
    nbdkit_debug ("ublk: not used: %s", why);
    ublk_mode = UBLK_OFF;
  }
  /* Before the control filesystem, so that its reset and disksize find
   * every device's block device in place.
   */
  if (ublk_mode != UBLK_OFF) {
    static const struct devices_front front = {
      .start = ublk_front_start, .release = ublk_front_release,
      .initialised = ublk_front_initialised, .dev_id = ublk_front_dev_id,
      .stop = ublk_front_stop,
    };
    if (devices_set_front (&front) < 0)
      return -1;                /* ublk_start said why */
  }
  if (control_dir) {
    control = control_start (control_dir, &opts);
    if (control == NULL)
      return -1;
  }
  /* The writeback policies' threads: idle while a policy is off. */
  err = devices_start ();
  if (err < 0) {
    errno = -err;
    nbdkit_error ("writeback policy thread: %m");
    return -1;
  }
  return 0;
}

static void
print_stats (struct zram *zram, const char *when)
{
  struct zram_stats st;

  zram_get_stats (zram, &st);
  /* The kernel's mm_stat and io_stat layouts, then every counter by name. */
  nbdkit_debug ("%s: mm_stat: %8" PRIu64 " %8" PRIu64 " %8" PRIu64
                " %8" PRIu64 " %8" PRIu64 " %8" PRIu64 " %8" PRIu64
                " %8" PRIu64 " %8" PRIu64, when,
                st.orig_data_size, st.compr_data_size, st.mem_used_total,
                st.mem_limit, st.mem_used_max, st.same_pages,
                st.pages_compacted, st.huge_pages, st.huge_pages_since);
  nbdkit_debug ("%s: io_stat: %8" PRIu64 " %8" PRIu64 " %8" PRIu64
                " %8" PRIu64, when, st.failed_reads, st.failed_writes,
                st.invalid_io, st.notify_free);
  nbdkit_debug ("%s: stats:"
#define X(name, what) " " #name "=%" PRIu64
                ZRAM_COUNTERS (X)
#undef X
                " disksize=%" PRIu64 " orig_data_size=%" PRIu64
                " mem_used_total=%" PRIu64 " mem_used_max=%" PRIu64, when,
#define X(name, what) st.name,
                ZRAM_COUNTERS (X)
#undef X
                st.disksize, st.orig_data_size, st.mem_used_total,
                st.mem_used_max);
}

static void
zram_cleanup (void)
{
  char when[32];
  int id;

  devices_stop ();
  control_stop (control);
  control = NULL;
  /* After the control filesystem, whose reset and hot_remove call them:
   * every /dev/ublkbM goes.
   */
  devices_stop_fronts ();
  for (id = devices_next (-1); id >= 0; id = devices_next (id)) {
    struct zram *zram = devices_get (id);

    if (zram) {
      snprintf (when, sizeof when, "unload: zram%d", id);
      print_stats (zram, when);
      devices_put (zram);
    }
  }
}

static void
zram_unload (void)
{
  devices_destroy_all ();
  free (comp_algorithm_buf);
  free (control_dir);
}

static void
zram_dump_plugin (void)
{
  char list[256];

  list_algorithms (list, sizeof list);
  printf ("zram_comp_algorithms=%s\n", list);
  printf ("zram_default_comp_algorithm=%s\n", ZRAM_DEFAULT_COMP);
  printf ("zram_block_size=%u\n", ZRAM_BLOCK_SIZE);
  printf ("zram_uring=%s\n", uring_unusable () ? "no" : "yes");
  printf ("zram_ublk=%s\n", ublk_unusable () ? "no" : "yes");
}

/* The device id an export name names: "" (the default export) and zram0
 * are device 0, zramN device N (digits, no leading zero); -1 for any
 * other name.
 */
static int
export_id (const char *name)
{
  return name[0] == '\0' ? 0 : devices_name_id (name);
}

static int
zram_list_exports (int readonly, int is_tls, struct nbdkit_exports *exports)
{
  char name[32];
  int id;

  (void) readonly; (void) is_tls;
  for (id = devices_next (-1); id >= 0; id = devices_next (id)) {
    snprintf (name, sizeof name, "zram%d", id);
    if (nbdkit_add_export (exports, name, NULL) == -1)
      return -1;
  }
  return 0;
}

static const char *
zram_default_export (int readonly, int is_tls)
{
  (void) readonly; (void) is_tls;
  return "zram0";
}

static void *
zram_open (int readonly)
{
  const char *name = nbdkit_export_name ();
  struct zram *zram;
  int id, r;

  (void) readonly;
  if (name == NULL)
    name = "";
  id = export_id (name);
  zram = id >= 0 ? devices_get (id) : NULL;
  if (zram == NULL) {
    nbdkit_error ("export '%s': no such device (the exports are zramN, "
                  "see nbdinfo --list)", name);
    errno = ENOENT;
    return NULL;
  }
  r = zram_get (zram);
  if (r < 0) {
    devices_put (zram);
    if (r == -ENODEV)
      nbdkit_error ("export '%s': the device is being removed", name);
    else if (control_dir && id == 0)
      nbdkit_error ("not initialised: write disksize in %s/disksize",
                    control_dir);
    else if (control_dir)
      nbdkit_error ("zram%d not initialised: write disksize in "
                    "%s/zram%d/disksize", id, control_dir, id);
    else
      nbdkit_error ("not initialised: start nbdkit with size=SIZE, or with "
                    "control=DIR and write DIR/disksize");
    errno = r == -ENODEV ? ENOENT : ENXIO;
    return NULL;
  }
  return zram;
}

static void
zram_close (void *handle)
{
  zram_put (handle);
  if (zram_debug_stats)
    print_stats (handle, "close");
  devices_put (handle);
}

static int64_t
zram_get_size (void *handle)
{
  return zram_disksize (handle);
}

static int
zram_block_size (void *handle, uint32_t *minimum, uint32_t *preferred,
                 uint32_t *maximum)
{
  (void) handle;
  /* Any size works (partial blocks are read-modified-written), but whole
   * 4 KiB blocks are what the slot table stores.
   */
  *minimum = 1;
  *preferred = ZRAM_BLOCK_SIZE;
  *maximum = MAX_REQUEST;
  return 0;
}

/* Writes refused at mem_limit (ENOSPC) or for want of memory (ENOMEM)
 * come in floods while the device stays full, one per request, and zram
 * only counts them (failed_writes): the log gets at most one line about
 * them per this many seconds, saying how many it left out.
 */
#define FULL_LOG_INTERVAL 10

static atomic_int_fast64_t full_next_log;   /* CLOCK_MONOTONIC seconds */
static atomic_uint_fast64_t full_unlogged;

/* Whether to log this refusal; *unlogged: how many were not since. */
static bool
full_log_now (uint64_t *unlogged)
{
  struct timespec ts;
  int_fast64_t next = atomic_load (&full_next_log);

  clock_gettime (CLOCK_MONOTONIC, &ts);
  if (ts.tv_sec < next ||
      !atomic_compare_exchange_strong (&full_next_log, &next,
                                       ts.tv_sec + FULL_LOG_INTERVAL)) {
    atomic_fetch_add (&full_unlogged, 1);
    return false;
  }
  *unlogged = atomic_exchange (&full_unlogged, 0);
  return true;
}

/* Engine error to the client's errno, with one line saying what failed
 * (for a full device, rate-limited as above).
 */
static int
fail (const char *op, int r, uint32_t count, uint64_t offset)
{
  uint64_t unlogged;

  if (-r != ENOSPC && -r != ENOMEM) {
    errno = -r;
    nbdkit_error ("%s: %" PRIu32 " bytes at %" PRIu64 ": %m", op, count,
                  offset);
  }
  else if (full_log_now (&unlogged)) {
    errno = -r;
    nbdkit_error ("%s: %" PRIu32 " bytes at %" PRIu64 ": %m (%s; such "
                  "failures are logged once per %d s, %" PRIu64 " were "
                  "not since the last)", op, count, offset,
                  -r == ENOSPC ? "mem_limit reached" : "out of memory",
                  FULL_LOG_INTERVAL, unlogged);
  }
  nbdkit_set_error (-r);
  errno = -r;
  return -1;
}

/* Every request starts here: the thread is an I/O flusher, and, for swap,
 * has its work memory before it needs it (zram_prepare_thread; a thread
 * that serves several devices prepares for the first one with a disksize
 * that it serves).
 */
static void
io_thread (struct zram *zram)
{
  static __thread bool prepared;

  io_flusher ();
  if (!prepared)
    prepared = zram_prepare_thread (zram);
}

static int
zram_pread (void *handle, void *buf, uint32_t count, uint64_t offset,
            uint32_t flags)
{
  int r;

  io_thread (handle);
  r = zram_read (handle, buf, count, offset);
  (void) flags;
  return r < 0 ? fail ("read", r, count, offset) : 0;
}

static int
zram_pwrite (void *handle, const void *buf, uint32_t count, uint64_t offset,
             uint32_t flags)
{
  /* NBDKIT_FLAG_FUA needs nothing: a write is in memory when it returns. */
  int r;

  io_thread (handle);
  r = zram_write (handle, buf, count, offset);
  (void) flags;
  return r < 0 ? fail ("write", r, count, offset) : 0;
}

static int
zram_trim (void *handle, uint32_t count, uint64_t offset, uint32_t flags)
{
  int r;

  io_thread (handle);
  r = zram_discard (handle, count, offset);
  (void) flags;
  return r < 0 ? fail ("trim", r, count, offset) : 0;
}

static int
zram_zero (void *handle, uint32_t count, uint64_t offset, uint32_t flags)
{
  /* Always fast, so NBDKIT_FLAG_FAST_ZERO needs nothing either: whole
   * blocks are freed, at most two partial ones rewritten.
   */
  int r;

  io_thread (handle);
  r = zram_write_zeroes (handle, count, offset);
  (void) flags;
  return r < 0 ? fail ("zero", r, count, offset) : 0;
}

static int
zram_flush_ (void *handle, uint32_t flags)
{
  int r;

  io_thread (handle);
  r = zram_flush (handle);
  (void) flags;
  return r < 0 ? fail ("flush", r, 0, 0) : 0;
}

struct extents_ctx {
  struct nbdkit_extents *extents;
  uint64_t start, end;                  /* the request */
  unsigned n;
  bool req_one;
};

static int
add_extent (void *opaque, uint64_t offset, uint64_t length, bool hole)
{
  struct extents_ctx *ctx = opaque;
  uint64_t end = offset + length;

  /* The engine reports whole blocks, which may reach past the request at
   * either end; nbdkit 1.32 asserts that no extent is longer than the
   * request (whose length is 32-bit), so clip to it.
   */
  if (offset < ctx->start)
    offset = ctx->start;
  if (end > ctx->end)
    end = ctx->end;
  if (end <= offset)
    return 0;
  length = end - offset;

  if (nbdkit_add_extent (ctx->extents, offset, length,
                         hole ? NBDKIT_EXTENT_HOLE | NBDKIT_EXTENT_ZERO : 0)
      == -1)
    return -1;
  /* Stop early: the client asks again from where this reply ends. */
  if (ctx->req_one || ++ctx->n >= MAX_EXTENTS)
    return 1;
  return 0;
}

static int
zram_extents_ (void *handle, uint32_t count, uint64_t offset, uint32_t flags,
               struct nbdkit_extents *extents)
{
  struct extents_ctx ctx = {
    .extents = extents,
    .start = offset,
    .end = offset + count,
    .req_one = flags & NBDKIT_FLAG_REQ_ONE,
  };
  int r = zram_extents (handle, count, offset, add_extent, &ctx);

  if (r == -1)
    return -1;            /* nbdkit_add_extent said why */
  if (r < 0)
    return fail ("extents", r, count, offset);
  return 0;
}

static int
zram_can_fua (void *handle)
{
  (void) handle;
  return NBDKIT_FUA_NATIVE;
}

static int
zram_can_yes (void *handle)
{
  (void) handle;
  return 1;
}

static int
zram_is_rotational (void *handle)
{
  (void) handle;
  return 0;
}

static struct nbdkit_plugin plugin = {
  .name              = "zram",
  .version           = PACKAGE_VERSION,
  .longname          = "nbdkit zram plugin: a userspace compressed RAM disk",
  .description       = "A compressed RAM block device with Linux zram's "
                       "semantics and statistics.",
  .magic_config_key  = "size",
  .config            = zram_config,
  .config_help       = zram_config_help,
  .config_complete   = zram_config_complete,
  .get_ready         = zram_get_ready,
  .after_fork        = zram_after_fork,
  .cleanup           = zram_cleanup,
  .unload            = zram_unload,
  .dump_plugin       = zram_dump_plugin,
  .list_exports      = zram_list_exports,
  .default_export    = zram_default_export,
  .open              = zram_open,
  .close             = zram_close,
  .get_size          = zram_get_size,
  .block_size        = zram_block_size,
  .is_rotational     = zram_is_rotational,
  .can_write         = zram_can_yes,
  .can_flush         = zram_can_yes,
  .can_trim          = zram_can_yes,
  .can_zero          = zram_can_yes,
  .can_fast_zero     = zram_can_yes,
  .can_fua           = zram_can_fua,
  .can_multi_conn    = zram_can_yes,
  .can_extents       = zram_can_yes,
  .pread             = zram_pread,
  .pwrite            = zram_pwrite,
  .trim              = zram_trim,
  .zero              = zram_zero,
  .flush             = zram_flush_,
  .extents           = zram_extents_,
  .errno_is_preserved = 1,
};

#define THREAD_MODEL NBDKIT_THREAD_MODEL_PARALLEL
NBDKIT_REGISTER_PLUGIN (plugin)
