/* uzram engine: the backing device and its block allocator (backing.h). */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backing.h"
#include "engine.h"

/* A block device is claimed exclusively, as zram claims its backing
 * device (an exclusive holder): Linux's O_EXCL on a block device fails
 * with EBUSY while it is mounted, another zram's or uzram's backing
 * device, or held by anyone else that way, and keeps them off it while
 * open.  Reopens path so (fd was opened without it, to see what path
 * is), checks it is still the same device, and closes fd.  The new fd,
 * or -errno.
 */
static int
open_exclusive (const char *path, int fd, const struct stat *was)
{
  struct stat st;
  int xfd = open (path, O_RDWR | O_CLOEXEC | O_LARGEFILE | O_EXCL);
  int err = errno;

  close (fd);
  if (xfd < 0)
    return -err;
  if (fstat (xfd, &st) < 0 || !S_ISBLK (st.st_mode) ||
      st.st_rdev != was->st_rdev) {
    /* Renamed over meanwhile: as if it were busy. */
    close (xfd);
    return -EBUSY;
  }
  return xfd;
}

struct backing *
backing_open (const char *path, int *err)
{
  struct backing *b;
  struct stat st;
  uint64_t bytes;
  int fd;

  /* O_DIRECT after the type check: what is not a file or a block device
   * is ENOTBLK, as in zram, whatever O_DIRECT would make of it.
   */
  fd = open (path, O_RDWR | O_CLOEXEC | O_LARGEFILE);
  if (fd < 0) {
    *err = -errno;
    return NULL;
  }
  if (fstat (fd, &st) < 0)
    goto fail_errno;
  if (S_ISREG (st.st_mode))
    bytes = st.st_size;
  else if (S_ISBLK (st.st_mode)) {
    fd = open_exclusive (path, fd, &st);
    if (fd < 0) {
      *err = fd;
      return NULL;
    }
    if (ioctl (fd, BLKGETSIZE64, &bytes) < 0)
      goto fail_errno;
  }
  else {
    *err = -ENOTBLK;            /* zram's error for what is not a device */
    close (fd);
    return NULL;
  }
  if (fcntl (fd, F_SETFL, O_DIRECT) < 0)
    goto fail_errno;
  if ((bytes >> ZRAM_BLOCK_SHIFT) < 2) {
    *err = -EINVAL;
    close (fd);
    return NULL;
  }
  b = calloc (1, sizeof *b);
  if (b == NULL)
    goto fail_nomem;
  b->nr_blocks = bytes >> ZRAM_BLOCK_SHIFT;
  b->bitmap = calloc ((b->nr_blocks + 63) / 64, sizeof (uint64_t));
  /* backing_dev shows the path the kernel's file_path would: absolute,
   * with links resolved.
   */
  b->path = realpath (path, NULL);
  if (b->bitmap == NULL || b->path == NULL) {
    free (b->bitmap);
    free (b->path);
    free (b);
    goto fail_nomem;
  }
  b->bitmap[0] = 1;             /* block 0: reserved, see backing.h */
  b->next = 1;
  b->fd = fd;
  pthread_mutex_init (&b->lock, NULL);
  return b;

 fail_nomem:
  errno = ENOMEM;
 fail_errno:
  *err = -errno;
  close (fd);
  return NULL;
}

void
backing_close (struct backing *b)
{
  if (b == NULL)
    return;
  close (b->fd);
  pthread_mutex_destroy (&b->lock);
  free (b->bitmap);
  free (b->path);
  free (b);
}

uint64_t
backing_alloc (struct backing *b)
{
  uint64_t words = (b->nr_blocks + 63) / 64, w, i, block = 0;

  pthread_mutex_lock (&b->lock);
  /* From where the last allocation ended, once round the bitmap: blocks
   * are handed out in order, so a backing file fills front to back.
   */
  for (i = 0; i <= words; i++) {
    w = (b->next / 64 + i) % words;
    if (~b->bitmap[w]) {
      uint64_t bit = __builtin_ctzll (~b->bitmap[w]);

      if (w * 64 + bit < b->nr_blocks) {
        block = w * 64 + bit;
        b->bitmap[w] |= UINT64_C (1) << bit;
        b->next = block + 1 < b->nr_blocks ? block + 1 : 1;
        break;
      }
    }
  }
  pthread_mutex_unlock (&b->lock);
  return block;
}

void
backing_free (struct backing *b, uint64_t block)
{
  pthread_mutex_lock (&b->lock);
  b->bitmap[block / 64] &= ~(UINT64_C (1) << (block % 64));
  pthread_mutex_unlock (&b->lock);
}

int
backing_read (struct backing *b, uint64_t block, void *buf)
{
  ssize_t r;

  do
    r = pread (b->fd, buf, ZRAM_BLOCK_SIZE, block << ZRAM_BLOCK_SHIFT);
  while (r < 0 && errno == EINTR);
  return r == ZRAM_BLOCK_SIZE ? 0 : -EIO;
}

int
backing_write (struct backing *b, uint64_t block, const void *buf)
{
  ssize_t r;

  do
    r = pwrite (b->fd, buf, ZRAM_BLOCK_SIZE, block << ZRAM_BLOCK_SHIFT);
  while (r < 0 && errno == EINTR);
  return r == ZRAM_BLOCK_SIZE ? 0 : -EIO;
}
