/* uzram engine: one compressed RAM block device.
 *
 * This is the single I/O path behind both front ends: nbdkit's NBD requests
 * (zram.c) and the `disk` file of the control filesystem (control/).  It owns
 * the slot table, the compressors, the zsmalloc pool, the statistics and the
 * device's life cycle, which follows Linux zram's:
 *
 *   uninitialised --disksize--> initialised --reset--> uninitialised
 *
 * comp_algorithm may change only while uninitialised; disksize is set only
 * while uninitialised; reset is refused while any client holds the device.
 *
 * Every function is safe to call from any thread at any time.  No function
 * on the I/O path takes a lock wider than one slot.
 *
 * Errors are returned as negative errno values, never through errno.
 */
#ifndef UZRAM_ENGINE_H
#define UZRAM_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ZRAM_BLOCK_SHIFT 12
#define ZRAM_BLOCK_SIZE  (1u << ZRAM_BLOCK_SHIFT)  /* one slot: a 4 KiB page */
#define ZRAM_SECTOR_SIZE 512                       /* the `stat` file's unit */
/* The largest disksize, 4 TiB: every stored block is one zsmalloc
 * object, and a pool holds at most ZS_MAX_OBJECTS (2^31 - 1).  A rewrite
 * allocates the new object before it frees the old one, so half of them
 * are left for writes in flight (engine.c asserts it).  Its slot table
 * (16 GiB of address space) costs no memory until used.
 */
#define ZRAM_MAX_DISKSIZE (UINT64_C (1) << 42)
#define ZRAM_MAX_DISKSIZE_TEXT "4T"

/* The primary compressor and three for recompression, as zram's
 * ZRAM_MAX_COMPS with CONFIG_ZRAM_MULTI_COMP.
 */
#define ZRAM_MAX_COMPS 4

/* What a new device compresses with: zram's default (CONFIG_ZRAM_DEF_COMP). */
#define ZRAM_DEFAULT_COMP "lzo-rle"


/* Counters, listed once so that the struct, the printed names and every
 * consumer agree (mimalloc's habit).  All count events since the device was
 * created or last reset, except where zram keeps them across reset.
 *
 * X(name, what)
 */
#define ZRAM_COUNTERS(X)                                                     \
  X (pages_stored,     "slots holding compressed data (not same-filled)")   \
  X (compr_data_size,  "bytes of compressed data stored")                   \
  X (same_pages,       "slots holding a same-filled page, no allocation")   \
  X (huge_pages,       "slots stored uncompressed")                         \
  X (huge_pages_since, "huge pages ever stored since init")                 \
  X (pages_compacted,  "pages freed by compaction")                         \
  X (failed_reads,     "reads that failed (corrupt data)")                  \
  X (failed_writes,    "writes that failed (mem_limit, no memory)")         \
  X (invalid_io,       "requests out of range or on an uninitialised device") \
  X (notify_free,      "whole blocks trimmed or zeroed, as zram counts")    \
  X (miss_free,        "of those, blocks that were already empty")          \
  X (read_ios,         "read requests completed")                           \
  X (read_sectors,     "512-byte sectors read")                             \
  X (read_ticks_ns,    "time spent on reads, ns")                           \
  X (write_ios,        "write requests completed")                          \
  X (write_sectors,    "512-byte sectors written")                          \
  X (write_ticks_ns,   "time spent on writes, ns")                          \
  X (discard_ios,      "trim and write-zeroes requests completed")          \
  X (discard_sectors,  "512-byte sectors trimmed or zeroed")                \
  X (discard_ticks_ns, "time spent on trims, ns")                           \
  X (flush_ios,        "flush requests completed")                          \
  X (bd_count,         "blocks on the backing device, as bd_stat")          \
  X (bd_reads,         "blocks read from the backing device")               \
  X (bd_writes,        "blocks written back to the backing device")         \
  X (bd_read_errors,   "reads of the backing device that failed (EIO)")     \
  X (bd_write_errors,  "writebacks that failed on the backing device")      \
  X (policy_idle_writes, "blocks the policy wrote back for writeback_idle") \
  X (policy_limit_writes, "blocks the policy wrote back near mem_limit")    \
  X (policy_recompressed, "blocks the policy recompressed (recompress_idle)") \
  X (flush_ticks_ns,   "time spent on flushes, ns")                         \
  X (io_ticks_ns,      "time with at least one request in flight, ns")      \
  X (time_in_queue_ns, "sum of all requests' times, ns")

struct zram_stats {
#define X(name, what) uint64_t name;
  ZRAM_COUNTERS (X)
#undef X
  /* Gauges and settings, read at the time of the snapshot. */
  uint64_t disksize;        /* bytes; 0 while uninitialised */
  uint64_t orig_data_size;  /* bytes: (pages_stored + same_pages) * 4096 */
  uint64_t mem_used_total;  /* bytes: zs_get_total_pages * 4096 */
  uint64_t mem_limit;       /* bytes; 0: no limit */
  uint64_t mem_used_max;    /* bytes: the peak of mem_used_total */
  uint64_t in_flight;       /* requests now in progress */
  uint64_t clients;         /* front-end clients holding the device */
  bool initialised;
};

struct zram;

/* A new, uninitialised device with comp_algorithm ZRAM_DEFAULT_COMP and
 * no mem_limit.
 * NULL with errno set on failure.
 */
struct zram *zram_create (void);
/* The same, with a page source for the pool (tests inject failures);
 * pages NULL: the built-in one.
 */
struct zs_ops;
struct zram *zram_create_with (const struct zs_ops *pages);
void zram_destroy (struct zram *zram);

/* --- Configuration and life cycle (the control files' writes) --- */

/* -EBUSY once initialised; -EINVAL for a name not built in. */
int zram_set_comp_algorithm (struct zram *zram, const char *name);
/* algorithm_params for priority prio (0: comp_algorithm's, 1 to 3: the
 * recompression algorithms'), taken at initialisation; algo, if not NULL,
 * names the algorithm instead and picks its priority (-EINVAL if no
 * priority has it).  -EINVAL for a priority out of 0..3.  Takes params
 * (leaving it cleared) whatever the result.  Once initialised it succeeds
 * and changes nothing, as in Linux 6.18.  comp_algorithm does not clear
 * the parameters; reset does.
 */
struct zcomp_params;
int zram_set_comp_params (struct zram *zram, const char *algo, int prio,
                          struct zcomp_params *params);
/* recomp_algorithm: the algorithm of recompression priority prio (1 to
 * 3).  -EINVAL for a priority out of range or a name not built in, -EBUSY
 * once initialised.  reset clears them.
 */
int zram_set_recomp_algorithm (struct zram *zram, int prio, const char *name);
/* The algorithm set for priority prio (1 to 3), or NULL. */
const char *zram_recomp_algorithm (struct zram *zram, int prio);

/* recompress's type= bits (zram's RECOMPRESS_IDLE and RECOMPRESS_HUGE);
 * none: every stored slot.
 */
#define ZRAM_RECOMP_IDLE 1u
#define ZRAM_RECOMP_HUGE 2u

/* One write to recompress, parsed as zram_drv.c's recompress_store parses
 * it: prio and prio_max (exclusive) from priority= (default 1 and
 * ZRAM_MAX_COMPS), algo (NULL: any) picks one priority at or above prio.
 */
struct zram_recompress_req {
  unsigned mode;                        /* ZRAM_RECOMP_* */
  uint64_t max_pages;                   /* UINT64_MAX: no limit */
  uint32_t threshold;                   /* 0: none */
  const char *algo;
  unsigned prio, prio_max;
};

/* Recompresses the stored slots the request picks, largest first, with
 * the recompression algorithms, beside I/O.  0, or the kernel's errors:
 * -EINVAL (threshold not below the huge class size, uninitialised, algo
 * not set, no algorithm in the priorities asked for), -EAGAIN while
 * another recompress runs, -ENOMEM, -EIO (a block that doesn't
 * decompress).  Stored data is intact whatever the result.
 */
int zram_recompress (struct zram *zram, const struct zram_recompress_req *req);

/* The parameters stored for priority prio (0..ZRAM_MAX_COMPS-1); read
 * under the same rules as they are written.
 */
const struct zcomp_params *zram_comp_params (struct zram *zram, int prio);
/* The current algorithm's name, e.g. "lzo-rle". */
const char *zram_comp_algorithm (struct zram *zram);
/* The algorithms built in, NULL-terminated, in the order the comp_algorithm
 * file lists them.
 */
const char *const *zram_comp_algorithms (void);

/* Initialises the device with bytes rounded up to 4096.  -EBUSY once
 * initialised; -EINVAL for 0 or a size the slot table cannot address;
 * -ENOMEM.
 */
int zram_set_disksize (struct zram *zram, uint64_t bytes);
/* For swap: the device's tables are faulted in whole at disksize (now, if
 * it is set), as Linux's zram allocates its table, so that a swap write
 * to a block not written before does not wait for memory on the I/O path.
 * Only while they take at most a sixteenth of the RAM and 64 MiB.
 */
void zram_set_populate (struct zram *zram);

/* Faults in each page of [p, p + len) with one write that keeps what is
 * there: under mlockall (MCL_ONFAULT), as mlock=true has it, the pages
 * then stay.  (MAP_POPULATE does nothing on such a mapping.)
 */
void zram_touch_pages (void *p, size_t len);

/* With zram_set_populate (swap), makes and faults in the calling thread's
 * work memory for each of the device's algorithms, by compressing and
 * decompressing one page, so that the thread's first swap request, which
 * comes when memory is already short, need not.  Call it as an I/O
 * thread starts serving the device; it does nothing otherwise.  Returns
 * false when it must be called again: the device has no disksize yet
 * (and so no algorithms settled).
 */
bool zram_prepare_thread (struct zram *zram);
/* Both cost one atomic load (no lock): fine on every request. */
uint64_t zram_disksize (struct zram *zram);
bool zram_initialised (struct zram *zram);

/* Frees every slot and the pool and returns to uninitialised.  -EBUSY while
 * any client holds the device.  Zeroes every statistic (mem_used_max
 * included), and, as Linux 6.18 does, puts comp_algorithm and mem_limit
 * back to their defaults (see zram_set_defaults).
 */
int zram_reset (struct zram *zram);

/* The comp_algorithm and mem_limit that reset returns to: ZRAM_DEFAULT_COMP
 * and 0 (no
 * limit) unless set here.  Linux returns to its built-in default compressor
 * and no limit; the plugin makes its command line's comp_algorithm= and
 * mem_limit= the defaults.  Applies them at once if uninitialised.
 * -EINVAL for an algorithm not built in.
 */
int zram_set_defaults (struct zram *zram, const char *comp_algorithm,
                       uint64_t mem_limit);

/* bytes 0: no limit.  Applies to later writes; stored data stays. */
void zram_set_mem_limit (struct zram *zram, uint64_t bytes);
/* mem_used_max := the current mem_used_total. */
void zram_reset_mem_used_max (struct zram *zram);
/* zs_compact; adds the pages freed to pages_compacted. */
void zram_compact (struct zram *zram);
/* Marks every stored slot idle.  -EINVAL while uninitialised. */
int zram_mark_idle_all (struct zram *zram);
/* Marks idle every stored slot not accessed for at least age_secs seconds
 * (zram's `idle SECONDS`); age 0 marks them all.  -EINVAL while
 * uninitialised.
 */
int zram_mark_idle (struct zram *zram, uint64_t age_secs);

/* --- Writeback (writeback.c) --- */

/* Opens path, a block device or regular file, as the backing device, in
 * place of any before.  -EBUSY once initialised (as zram); the open's
 * -errno; -ENOTBLK for neither a file nor a block device; -EINVAL for
 * one smaller than two blocks.  Reset closes it.
 */
int zram_set_backing_dev (struct zram *zram, const char *path);
/* The backing device's path, or "none", snprintf-style into buf. */
int zram_backing_dev (struct zram *zram, char *buf, size_t len);

/* What writeback takes, zram's modes; 0: any stored slot. */
#define ZRAM_WB_IDLE           1u
#define ZRAM_WB_HUGE           2u
#define ZRAM_WB_INCOMPRESSIBLE 4u

struct zram_wb_range {
  unsigned mode;                /* ZRAM_WB_* */
  uint64_t lo, hi;              /* slots [lo, hi) */
};

/* Whether writeback can run at all, in zram's order: -EINVAL while
 * uninitialised, -ENODEV without a backing device.
 */
int zram_writeback_check (struct zram *zram);
/* Writes back the slots of each range that match its mode, in order:
 * raw pages to free backing blocks, the slot then holding the block's
 * index and its memory freed.  Same-filled and written-back slots are
 * skipped.  Errors as zram's: those of zram_writeback_check; -ERANGE for
 * a range past the end; -EAGAIN while another writeback runs; -EIO when
 * the writeback limit is used up, -ENOSPC when the backing device is full
 * (both stop it); -EIO if a backing write failed (the rest go on; that
 * slot stays in memory).  *written, if not NULL, counts the slots moved.
 */
int zram_writeback (struct zram *zram, const struct zram_wb_range *ranges,
                    size_t n, uint64_t *written);

/* writeback_limit, in 4 KiB blocks: while enabled, writeback stops with
 * -EIO once it reaches 0, and every block written takes one off it.
 */
void zram_set_wb_limit (struct zram *zram, uint64_t blocks);
uint64_t zram_wb_limit (struct zram *zram);
void zram_set_wb_limit_enable (struct zram *zram, bool on);
bool zram_wb_limit_enable (struct zram *zram);

/* --- The writeback policy, beyond zram (policy.c) --- */

/* writeback_idle: blocks not accessed for secs seconds are written back by
 * the policy's thread; 0 (the default) turns it off.
 */
void zram_set_wb_idle (struct zram *zram, uint64_t secs);
uint64_t zram_wb_idle (struct zram *zram);
/* recompress_idle: blocks not accessed for secs seconds are recompressed
 * by the policy's thread with the recompression algorithms; 0 (the
 * default) turns it off.
 */
void zram_set_recomp_idle (struct zram *zram, uint64_t secs);
uint64_t zram_recomp_idle (struct zram *zram);
/* near_limit: make room by writeback instead of failing writes over
 * mem_limit with ENOSPC.  Off by default.
 */
void zram_set_wb_near_limit (struct zram *zram, bool on);
bool zram_wb_near_limit (struct zram *zram);
/* The policy's thread: start it after any fork (nbdkit's .after_fork),
 * stop it before zram_destroy (which stops it too).  -errno.
 */
int zram_policy_start (struct zram *zram);
void zram_policy_stop (struct zram *zram);

/* block_state: fn for each allocated slot in order, with its last access
 * time (CLOCK_BOOTTIME seconds, 0 if none since it was stored) and its
 * SLOT_* flags (slot.h).  Stops at fn's first non-zero return and returns
 * it; -EINVAL while uninitialised.
 */
typedef int (*zram_block_fn) (void *opaque, uint64_t index, uint32_t atime,
                              uint32_t flags);
int zram_block_state (struct zram *zram, zram_block_fn fn, void *opaque);

/* --- Clients --- */

/* A front end takes the device before serving it (an NBD connection, an
 * open `disk` file) and puts it back after.  -ENXIO while uninitialised,
 * -ENODEV once retired.
 */
int zram_get (struct zram *zram);
void zram_put (struct zram *zram);
/* For hot_remove: from now on zram_get refuses (-ENODEV), so that the
 * device can be destroyed once the last reference to it goes (devices.h).
 * -EBUSY while any client holds it, and then nothing changes.
 */
int zram_retire (struct zram *zram);

/* --- I/O, only between zram_get and zram_put ---
 *
 * Any offset and count within disksize; a partial block is
 * read-modified-written under its slot's lock.  Out of range: -EINVAL
 * (invalid_io counts it).  Read of corrupt data, or a backing device
 * read that failed: -EIO (failed_reads; the latter also bd_read_errors).
 * Write over mem_limit: -ENOSPC, allocation failure: -ENOMEM (both count in
 * failed_writes); the block keeps its old contents.
 */
int zram_read (struct zram *zram, void *buf, uint32_t count, uint64_t offset);
int zram_write (struct zram *zram, const void *buf, uint32_t count,
                uint64_t offset);
/* Frees whole blocks in the range (notify_free); partial blocks at either
 * end are left as they are (trim may do nothing).
 */
int zram_discard (struct zram *zram, uint32_t count, uint64_t offset);
/* Whole blocks are freed, partial ones rewritten with zeroes (unless they
 * are empty or zero already).
 */
int zram_write_zeroes (struct zram *zram, uint32_t count, uint64_t offset);
int zram_flush (struct zram *zram);

/* Calls fn for consecutive runs covering at least [offset, offset+count),
 * each of whole blocks: hole true for blocks never written, trimmed or
 * holding zeroes, false for data.  Stops at fn's first non-zero return and
 * returns it.
 */
typedef int (*zram_extent_fn) (void *opaque, uint64_t offset,
                               uint64_t length, bool hole);
int zram_extents (struct zram *zram, uint32_t count, uint64_t offset,
                  zram_extent_fn fn, void *opaque);

/* --- Statistics: never block I/O --- */
void zram_get_stats (struct zram *zram, struct zram_stats *out);
/* The pool's size classes, as zs_pool_class_stats; 0 while uninitialised. */
struct zs_class_stat;
size_t zram_class_stats (struct zram *zram, struct zs_class_stat *out,
                         size_t n);

/* --- Test hooks --- */
/* Flips the bits of mask in byte `byte` of the stored object of block
 * `index` (compressed or huge).  -ENOENT if the slot holds no object.
 */
int zram_test_corrupt (struct zram *zram, uint64_t index, uint32_t byte,
                       uint8_t mask);
/* What block `index` holds, under its lock: the compressor priority that
 * wrote it (0 to 3), whether it is huge, incompressible or idle, and the
 * stored object's size (0: none).  -EINVAL out of range or uninitialised.
 */
struct zram_test_slot {
  unsigned prio;
  bool huge, incompressible, idle;
  uint32_t size;
};
int zram_test_slot (struct zram *zram, uint64_t index,
                    struct zram_test_slot *out);

#endif /* UZRAM_ENGINE_H */
