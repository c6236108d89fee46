/* uzram engine: the backing device that writeback moves blocks to.
 *
 * A block device or a regular file, opened with O_DIRECT so that backing
 * I/O bypasses the page cache (a block moved out of RAM must not come back
 * into RAM as cache).  Its size is cut to whole 4 KiB blocks; a bitmap
 * with one bit per block says which are in use:
 *
 *   bitmap  [0|1 1 0 1 0 0 ...]     block 0 is never handed out: a slot
 *            ^                      holding a backing block keeps its
 *            reserved               index in `handle`, and handle 0 means
 *                                   empty (zram reserves block 0 too, so
 *                                   the two fill up at the same count)
 *
 * Only the allocator takes the backing device's mutex, for a bitmap search
 * and one bit; reads and writes are plain pread/pwrite of one block into a
 * 4 KiB aligned buffer, under the caller's slot lock alone.  A slow backing
 * device therefore holds up only the slots whose blocks are on it.
 *
 * The counters (bd_count, bd_reads, bd_writes) are the engine's (stats.h).
 */
#ifndef UZRAM_BACKING_H
#define UZRAM_BACKING_H

#include <pthread.h>
#include <stdint.h>

struct backing {
  int fd;
  char *path;                 /* as given, for backing_dev's show */
  uint64_t nr_blocks;         /* 4 KiB blocks, block 0 included */
  uint64_t *bitmap;           /* bit set: in use; under lock */
  uint64_t next;              /* where the next search starts; under lock */
  pthread_mutex_t lock;
};

/* Opens path (a block device or a regular file) for backing I/O.
 * A block device is opened exclusively (O_EXCL), as zram holds its
 * backing device.  NULL with -errno in *err: -ENOENT, -EACCES ..., -EBUSY
 * for a block device in use (mounted, another backing device, held
 * exclusively), -EINVAL for a file of fewer than two blocks, -ENOTBLK for
 * neither a file nor a block device, -ENOMEM.
 */
struct backing *backing_open (const char *path, int *err);
void backing_close (struct backing *b);

/* A free block's index (never 0), or 0 when the device is full. */
uint64_t backing_alloc (struct backing *b);
void backing_free (struct backing *b, uint64_t block);

/* One 4 KiB block to or from buf, which is aligned to 4096.  0 or -EIO
 * (any failure of the backing device, short transfers included).
 */
int backing_read (struct backing *b, uint64_t block, void *buf);
int backing_write (struct backing *b, uint64_t block, const void *buf);

#endif /* UZRAM_BACKING_H */
