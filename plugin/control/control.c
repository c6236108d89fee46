/* uzram control filesystem: the FUSE side (see control.h).
 *
 * A fixed inode table, modeled on libfuse's example/hello_ll.c:
 *
 *   1                  the root directory (0755)
 *   2 .. 1+N           zram_attrs[0 .. N-1] (attrs.c), zram's modes
 *   2+N                disk, the device's contents (0600)
 *
 * One stat helper fills every inode's attributes; every handler ends in
 * exactly one fuse_reply_*.
 *
 * Attribute files are generated when read at offset 0 (open, or a pread
 * from the start, as sysfs's seq_file does) into a per-open snapshot, and
 * every write(2) is one store.  They are opened direct_io, so each open
 * sees fresh values and the page cache keeps nothing.
 *
 * `disk` goes to the engine's I/O functions, the same ones NBD requests
 * use (zram_read, zram_write, zram_discard, zram_write_zeroes,
 * zram_flush): there is one I/O path.  It too is direct_io, so no
 * uncompressed copy sits in the page cache.  An open `disk` holds the
 * device (zram_get) until release, so reset is EBUSY meanwhile.
 *
 * Threads: fuse_session_loop_mt with clone_fd (one /dev/fuse fd per
 * worker) and up to CONTROL_MAX_THREADS workers, all started by one
 * session thread created in control_start, after nbdkit's fork.  Workers
 * that serve `disk` mark themselves PR_SET_IO_FLUSHER so that swap on a
 * loop device over `disk` does not recurse into reclaim.
 *
 * Start-up: control_check_dir (before nbdkit forks) makes a missing DIR
 * whose parent exists, refuses a non-directory and a DIR another live
 * FUSE server has mounted, and lazily detaches a stale mount (ENOTCONN:
 * its server was killed), saying so.
 *
 * Locks: live_lock guards `live` (the one running instance); an
 * attr_handle's lock guards its snapshot.  Neither is held across an
 * engine call that can wait for I/O: show functions read the engine's
 * lock-free statistics, so reading stats never stalls I/O nor the other
 * way round.
 *
 * Shut-down: control_stop aborts the connection with a forced lazy
 * unmount (MNT_FORCE makes FUSE's umount_begin abort it, so a loop device
 * still attached gets errors instead of hanging on a server that is gone),
 * then joins the session thread.  It runs from the plugin's .cleanup and,
 * as a backstop, at exit.
 *
 * `disk` is opened with FOPEN_PARALLEL_DIRECT_WRITES, built by hand since
 * libfuse 3.14 cannot set it (disk_reply_open).
 *
 * FUSE over io_uring (uring.c): where the kernel offers it, requests come
 * through io_urings (uring_threads= per CPU) instead of /dev/fuse, into
 * the same handlers through libfuse's own dispatcher; the classic loop
 * keeps serving what stays on /dev/fuse (forgets, interrupts) and
 * everything where the rings are not in use.  uring=off leaves libfuse's
 * I/O alone.
 *
 * Still to do: poll(2) notification on the stats files.
 */
#include <config.h>

#define FUSE_USE_VERSION 312   /* 3.12: the loop config with max_threads */

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <mntent.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>

#include <fuse_lowlevel.h>
#include <linux/fuse.h>     /* struct fuse_open_out: see disk_reply_open */

#define NBDKIT_API_VERSION 2
#include <nbdkit-plugin.h>

#include "attrs.h"
#include "control/control.h"
#include "engine.h"

#ifndef PR_SET_IO_FLUSHER
#define PR_SET_IO_FLUSHER 57
#endif

/* Queue depth 32 on a loop device becomes up to 32 FUSE requests in
 * flight, plus a few for the stats files while they run.
 */
#define CONTROL_MAX_THREADS 40

/* Requests of up to 1 MiB: libfuse's receive buffer is 256 pages, and a
 * loop device splits nothing smaller.
 */
#define CONTROL_MAX_WRITE (1024 * 1024)

/* With FUSE over io_uring every ring entry has a payload buffer as large
 * as the largest request, 16 entries per CPU: 256 KiB keeps that at 4 MiB
 * per CPU (touched only by requests that large), and a loop device's
 * large requests are split into 256 KiB ones served in parallel.
 */
#define CONTROL_URING_MAX_WRITE (256 * 1024)

/* The kernel queues asynchronous direct I/O (what a loop device issues)
 * as background requests, at most max_background at once (default 12):
 * room for queue depth 32 and more.
 */
#define CONTROL_MAX_BACKGROUND 64

/* fallocate ranges are split into engine calls of this many bytes (the
 * engine's count is 32 bits); a multiple of the block size.
 */
#define CONTROL_FALLOC_CHUNK (1u << 30)

NBDKIT_DLL_PUBLIC int zram_debug_control;

#define ROOT_INO ((fuse_ino_t) FUSE_ROOT_ID)
#define ATTR_INO(i) ((fuse_ino_t) (2 + (i)))
#define DISK_INO ((fuse_ino_t) (2 + zram_nr_attrs))
#define DISK_NAME "disk"

struct control {
  struct zram *zram;
  char *dir;
  struct fuse_session *se;
  struct uring *uring;        /* NULL: libfuse's own I/O on /dev/fuse */
  pthread_t thread;
  bool thread_started;
  uid_t uid;
  gid_t gid;
  struct timespec mtime;      /* every inode's times: when we mounted */
};

/* One open attribute file: the text last shown, regenerated by a read at
 * offset 0.  The lock covers two threads reading one file handle at once.
 */
struct attr_handle {
  const struct zram_attr *attr;
  pthread_mutex_t lock;
  char *text;
  size_t len;
};

/* The instance control_stop has not stopped yet, for the atexit backstop
 * and so that a second control_stop of the same pointer does nothing.
 */
static pthread_mutex_t live_lock = PTHREAD_MUTEX_INITIALIZER;
static struct control *live;
static bool atexit_registered;

/* --- Helpers --- */

static const struct zram_attr *
ino_attr (fuse_ino_t ino)
{
  if (ino >= ATTR_INO (0) && ino < ATTR_INO (zram_nr_attrs))
    return &zram_attrs[ino - ATTR_INO (0)];
  return NULL;
}

/* The one stat helper.  -1 for an inode that does not exist. */
static int
control_stat (struct control *c, fuse_ino_t ino, struct stat *st)
{
  const struct zram_attr *attr;

  memset (st, 0, sizeof *st);
  st->st_ino = ino;
  st->st_uid = c->uid;
  st->st_gid = c->gid;
  st->st_atim = st->st_mtim = st->st_ctim = c->mtime;
  st->st_blksize = ZRAM_BLOCK_SIZE;
  if (ino == ROOT_INO) {
    st->st_mode = S_IFDIR | 0755;
    st->st_nlink = 2;
  }
  else if ((attr = ino_attr (ino)) != NULL) {
    /* sysfs says 4096 for every attribute, debugfs (classes, which can
     * be longer) 0; reads ignore it (direct_io), but tail(1) seeks by it.
     */
    st->st_mode = S_IFREG | attr->mode;
    st->st_nlink = 1;
    st->st_size = strcmp (attr->name, "classes") == 0 ? 0 : 4096;
  }
  else if (ino == DISK_INO) {
    st->st_mode = S_IFREG | 0600;
    st->st_nlink = 1;
    st->st_size = zram_disksize (c->zram);
    st->st_blocks = st->st_size / 512;
  }
  else
    return -1;
  return 0;
}

/* Generates the attribute's text into h (h->lock held). */
static int
attr_refresh (struct control *c, struct attr_handle *h)
{
  char small[4096];
  ssize_t n;
  char *text;

  n = h->attr->show (c->zram, small, sizeof small);
  if (n < 0)
    return n;
  text = malloc (n + 1);
  if (!text)
    return -ENOMEM;
  if ((size_t) n < sizeof small)
    memcpy (text, small, n + 1);
  else {
    /* Grew past a page (classes): show again into a buffer that fits. */
    ssize_t m = h->attr->show (c->zram, text, n + 1);
    if (m < 0 || m > n) {
      free (text);
      return m < 0 ? m : -EAGAIN;
    }
    n = m;
  }
  free (h->text);
  h->text = text;
  h->len = n;
  return 0;
}

/* PR_SET_IO_FLUSHER, once per worker thread (Linux 5.6; needs
 * CAP_SYS_RESOURCE).  Without it swap over `disk` may deadlock in reclaim,
 * but everything else works, so a refusal is only a debug message.
 */
static void
set_io_flusher (void)
{
  static __thread bool done;
  static atomic_bool said;

  if (done)
    return;
  done = true;
  if (prctl (PR_SET_IO_FLUSHER, 1, 0, 0, 0) == -1 &&
      !atomic_exchange (&said, true))
    nbdkit_debug ("control: prctl PR_SET_IO_FLUSHER: %m "
                  "(swap on `disk` could deadlock under memory pressure)");
}

/* Per worker thread: one buffer for `disk` reads, as large as the largest
 * request, freed when the thread exits.
 */
static pthread_key_t read_buf_key;
static pthread_once_t read_buf_once = PTHREAD_ONCE_INIT;

static void
read_buf_key_create (void)
{
  pthread_key_create (&read_buf_key, free);
}

static void *
read_buf (size_t size)
{
  struct rb { size_t cap; char data[]; } *rb;

  pthread_once (&read_buf_once, read_buf_key_create);
  rb = pthread_getspecific (read_buf_key);
  if (rb && rb->cap >= size)
    return rb->data;
  if (size < 128 * 1024)
    size = 128 * 1024;
  free (rb);
  rb = malloc (sizeof *rb + size);
  pthread_setspecific (read_buf_key, rb);
  if (!rb)
    return NULL;
  rb->cap = size;
  return rb->data;
}

/* --- Handlers --- */

static void
ctl_init (void *userdata, struct fuse_conn_info *conn)
{
  struct control *c = userdata;

  conn->max_write = uring_offered (c->uring) ? CONTROL_URING_MAX_WRITE
                                             : CONTROL_MAX_WRITE;
  conn->max_background = CONTROL_MAX_BACKGROUND;
  conn->congestion_threshold = CONTROL_MAX_BACKGROUND * 3 / 4;
  if (conn->capable & FUSE_CAP_ASYNC_DIO)
    conn->want |= FUSE_CAP_ASYNC_DIO;
  /* Every write must reach the engine at once: no writeback cache. */
  conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
}

static void
ctl_lookup (fuse_req_t req, fuse_ino_t parent, const char *name)
{
  struct control *c = fuse_req_userdata (req);
  struct fuse_entry_param e;
  const struct zram_attr *attr;
  fuse_ino_t ino;

  if (parent != ROOT_INO) {
    fuse_reply_err (req, ENOTDIR);
    return;
  }
  if (strcmp (name, DISK_NAME) == 0)
    ino = DISK_INO;
  else if ((attr = zram_attr_find (name)) != NULL)
    ino = ATTR_INO (attr - zram_attrs);
  else {
    fuse_reply_err (req, ENOENT);
    return;
  }
  memset (&e, 0, sizeof e);
  e.ino = ino;
  /* Names never change; disk's size does (disksize, reset), so its
   * attributes are never cached.
   */
  e.entry_timeout = 3600;
  e.attr_timeout = ino == DISK_INO ? 0 : 3600;
  control_stat (c, ino, &e.attr);
  fuse_reply_entry (req, &e);
}

static void
ctl_getattr (fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
  struct control *c = fuse_req_userdata (req);
  struct stat st;

  (void) fi;
  if (control_stat (c, ino, &st) == -1)
    fuse_reply_err (req, ENOENT);
  else
    fuse_reply_attr (req, &st, ino == DISK_INO ? 0 : 3600);
}

static void
ctl_setattr (fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
             struct fuse_file_info *fi)
{
  struct control *c = fuse_req_userdata (req);
  struct stat st;

  (void) attr; (void) fi;
  /* A size change is ignored, as a block device and sysfs ignore
   * O_TRUNC: `echo 1 > reset` truncates first, and `dd of=disk` must not
   * shrink the device.  Owners and modes are fixed.
   */
  if (to_set & (FUSE_SET_ATTR_MODE | FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID))
    fuse_reply_err (req, EPERM);
  else if (control_stat (c, ino, &st) == -1)
    fuse_reply_err (req, ENOENT);
  else
    fuse_reply_attr (req, &st, ino == DISK_INO ? 0 : 3600);
}

/* hello_ll's directory buffer. */
struct dirbuf {
  char *p;
  size_t size;
};

static int
dirbuf_add (fuse_req_t req, struct dirbuf *b, const char *name,
            fuse_ino_t ino, mode_t mode)
{
  struct stat st = { .st_ino = ino, .st_mode = mode };
  size_t oldsize = b->size;
  char *p;

  b->size += fuse_add_direntry (req, NULL, 0, name, NULL, 0);
  p = realloc (b->p, b->size);
  if (!p)
    return -1;
  b->p = p;
  fuse_add_direntry (req, b->p + oldsize, b->size - oldsize, name, &st,
                     b->size);
  return 0;
}

static void
ctl_readdir (fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
             struct fuse_file_info *fi)
{
  struct dirbuf b = { NULL, 0 };
  size_t i;
  int err = 0;

  (void) fi;
  if (ino != ROOT_INO) {
    fuse_reply_err (req, ENOTDIR);
    return;
  }
  err |= dirbuf_add (req, &b, ".", ROOT_INO, S_IFDIR);
  err |= dirbuf_add (req, &b, "..", ROOT_INO, S_IFDIR);
  for (i = 0; i < zram_nr_attrs; i++)
    err |= dirbuf_add (req, &b, zram_attrs[i].name, ATTR_INO (i), S_IFREG);
  err |= dirbuf_add (req, &b, DISK_NAME, DISK_INO, S_IFREG);
  if (err)
    fuse_reply_err (req, ENOMEM);
  else if ((size_t) off < b.size)
    fuse_reply_buf (req, b.p + off,
                    b.size - off < size ? b.size - off : size);
  else
    fuse_reply_buf (req, NULL, 0);
  free (b.p);
}

/* Answers the open of `disk` with FOPEN_PARALLEL_DIRECT_WRITES (Linux
 * 6.2) beside FOPEN_DIRECT_IO.  Without it the kernel holds the inode's
 * lock exclusively over every direct write to the file (over a
 * synchronous write's whole round trip to us), so writers to `disk` wait
 * for each other.  With it (fs/fuse/file.c, fuse_dio_wr_exclusive_lock)
 * the lock is shared for a write that is not O_APPEND, does not reach past
 * the file's size (the device never grows) and while no open of the inode
 * caches pages (every open of `disk` is direct_io, and shared mmap of a
 * direct_io file is refused).  The engine locks per block, so concurrent
 * writes are as safe as over NBD.  Measured: 4 threads of synchronous
 * 4 KiB writes straight to `disk` 1.3x faster; a loop device gains little,
 * as it submits from one worker and does not wait.
 *
 * libfuse 3.14 has no field for the flag (3.15 added
 * fi->parallel_direct_writes), so this builds what fuse_reply_open sends,
 * a zeroed struct fuse_open_out with fh and open_flags, and sends it with
 * fuse_reply_iov: the same bytes and the same return value (-ENOENT when
 * the open was interrupted); libfuse keeps no state about an open.  A
 * kernel older than 6.2 ignores the flag.
 */
static int
disk_reply_open (fuse_req_t req, const struct fuse_file_info *fi)
{
  struct fuse_open_out arg;
  struct iovec iov = { .iov_base = &arg, .iov_len = sizeof arg };

  memset (&arg, 0, sizeof arg);
  arg.fh = fi->fh;
  arg.open_flags = FOPEN_DIRECT_IO | FOPEN_PARALLEL_DIRECT_WRITES;
  return fuse_reply_iov (req, &iov, 1);
}

static void
disk_open (fuse_req_t req, struct control *c, struct fuse_file_info *fi)
{
  int r;

  /* An open `disk` is a client: it needs an initialised device, and holds
   * it (reset is EBUSY) until release.
   */
  r = zram_get (c->zram);
  if (r < 0) {
    fuse_reply_err (req, -r);
    return;
  }
  fi->fh = 0;
  if (disk_reply_open (req, fi) == -ENOENT)
    zram_put (c->zram);         /* interrupted: no release will come */
}

static void
ctl_open (fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
  struct control *c = fuse_req_userdata (req);
  const struct zram_attr *attr;
  struct attr_handle *h;
  int acc = fi->flags & O_ACCMODE;
  int r;

  if (ino == DISK_INO) {
    disk_open (req, c, fi);
    return;
  }
  attr = ino_attr (ino);
  if (!attr) {
    fuse_reply_err (req, ino == ROOT_INO ? EISDIR : ENOENT);
    return;
  }
  /* As kernfs: opening for a direction the attribute lacks is EACCES, even
   * for root.
   */
  if ((acc != O_WRONLY && !attr->show) || (acc != O_RDONLY && !attr->store)) {
    fuse_reply_err (req, EACCES);
    return;
  }
  h = calloc (1, sizeof *h);
  if (!h) {
    fuse_reply_err (req, ENOMEM);
    return;
  }
  h->attr = attr;
  pthread_mutex_init (&h->lock, NULL);
  if (attr->show && acc != O_WRONLY && (r = attr_refresh (c, h)) < 0) {
    pthread_mutex_destroy (&h->lock);
    free (h);
    fuse_reply_err (req, -r);
    return;
  }
  fi->fh = (uintptr_t) h;
  fi->direct_io = 1;
  if (fuse_reply_open (req, fi) == -ENOENT) {
    pthread_mutex_destroy (&h->lock);
    free (h->text);
    free (h);
  }
}

static void
disk_read (fuse_req_t req, struct control *c, size_t size, off_t off)
{
  uint64_t disksize = zram_disksize (c->zram);
  void *buf;
  int r;

  set_io_flusher ();
  if (off < 0 || (uint64_t) off >= disksize || size == 0) {
    fuse_reply_buf (req, NULL, 0);              /* end of the device */
    return;
  }
  if (size > disksize - off)
    size = disksize - off;
  buf = uring_reply_buffer (size);
  if (!buf)
    buf = read_buf (size);
  if (!buf) {
    fuse_reply_err (req, ENOMEM);
    return;
  }
  r = zram_read (c->zram, buf, size, off);
  if (r < 0)
    fuse_reply_err (req, -r);
  else
    fuse_reply_buf (req, buf, size);
}

static void
ctl_read (fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
          struct fuse_file_info *fi)
{
  struct control *c = fuse_req_userdata (req);
  struct attr_handle *h = (struct attr_handle *) (uintptr_t) fi->fh;
  int r = 0;

  if (ino == DISK_INO) {
    disk_read (req, c, size, off);
    return;
  }
  if (!h || !h->attr->show) {
    fuse_reply_err (req, EBADF);
    return;
  }
  /* Copy the slice out and unlock before replying: once the reply is
   * sent the reader may close the file, and the release (on another
   * thread) frees h, lock included.
   */
  char *slice = NULL;
  size_t n = 0;
  pthread_mutex_lock (&h->lock);
  if (off == 0)
    r = attr_refresh (c, h);
  if (r == 0 && off >= 0 && (size_t) off < h->len) {
    n = h->len - off < size ? h->len - off : size;
    slice = malloc (n);
    if (slice)
      memcpy (slice, h->text + off, n);
    else
      r = -ENOMEM;
  }
  pthread_mutex_unlock (&h->lock);
  if (r < 0)
    fuse_reply_err (req, -r);
  else
    fuse_reply_buf (req, slice, n);
  free (slice);
}

static void
disk_write (fuse_req_t req, struct control *c, const char *buf, size_t size,
            off_t off)
{
  uint64_t disksize = zram_disksize (c->zram);
  int r;

  set_io_flusher ();
  if (size == 0) {
    fuse_reply_write (req, 0);
    return;
  }
  /* Past the end: ENOSPC, as a block device says; across it: a short
   * write of what fits.
   */
  if (off < 0 || (uint64_t) off >= disksize) {
    fuse_reply_err (req, ENOSPC);
    return;
  }
  if (size > disksize - off)
    size = disksize - off;
  r = zram_write (c->zram, buf, size, off);
  if (r < 0)
    fuse_reply_err (req, -r);
  else
    fuse_reply_write (req, size);
}

static void
ctl_write (fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size,
           off_t off, struct fuse_file_info *fi)
{
  struct control *c = fuse_req_userdata (req);
  struct attr_handle *h = (struct attr_handle *) (uintptr_t) fi->fh;
  ssize_t r;

  if (ino == DISK_INO) {
    disk_write (req, c, buf, size, off);
    return;
  }
  if (!h || !h->attr->store) {
    fuse_reply_err (req, EBADF);
    return;
  }
  /* Each write(2) is one store, whatever the offset, as sysfs does.  An
   * empty or overlong one cannot be a valid value.
   */
  if (size == 0 || size > ZRAM_ATTR_MAX_WRITE) {
    fuse_reply_err (req, EINVAL);
    return;
  }
  r = h->attr->store (c->zram, buf, size);
  if (r < 0) {
    fuse_reply_err (req, -r);
    return;
  }
  /* disksize and reset change `disk`'s size: drop the kernel's copy of its
   * attributes (attribute-only invalidation takes no inode lock), so that
   * even a reader that never stats it sees the new size.
   */
  fuse_lowlevel_notify_inval_inode (c->se, DISK_INO, -1, 0);
  fuse_reply_write (req, size);
}

static void
ctl_flush (fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
  struct control *c = fuse_req_userdata (req);
  int r = 0;

  (void) fi;
  /* close(2) of `disk`: the engine's flush, as an NBD flush would. */
  if (ino == DISK_INO) {
    set_io_flusher ();
    r = zram_flush (c->zram);
  }
  fuse_reply_err (req, r < 0 ? -r : 0);
}

static void
ctl_fsync (fuse_req_t req, fuse_ino_t ino, int datasync,
           struct fuse_file_info *fi)
{
  (void) datasync;
  ctl_flush (req, ino, fi);
}

static void
ctl_release (fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
  struct control *c = fuse_req_userdata (req);
  struct attr_handle *h = (struct attr_handle *) (uintptr_t) fi->fh;

  if (ino == DISK_INO)
    zram_put (c->zram);
  else if (h) {
    pthread_mutex_destroy (&h->lock);
    free (h->text);
    free (h);
  }
  fuse_reply_err (req, 0);
}

/* Calls the engine's trim or zero over [off, off+len), in chunks its
 * 32-bit count can hold.
 */
static int
disk_falloc_range (struct control *c, bool zero, uint64_t off, uint64_t len)
{
  int r = 0;

  while (len > 0 && r == 0) {
    uint32_t n = len > CONTROL_FALLOC_CHUNK ? CONTROL_FALLOC_CHUNK : len;
    r = zero ? zram_write_zeroes (c->zram, n, off)
             : zram_discard (c->zram, n, off);
    off += n;
    len -= n;
  }
  return r;
}

static void
ctl_fallocate (fuse_req_t req, fuse_ino_t ino, int mode, off_t off,
               off_t len, struct fuse_file_info *fi)
{
  struct control *c = fuse_req_userdata (req);
  uint64_t disksize = zram_disksize (c->zram);
  int r = 0;

  (void) fi;
  if (ino != DISK_INO) {
    fuse_reply_err (req, EOPNOTSUPP);
    return;
  }
  set_io_flusher ();
  if (off < 0 || len <= 0) {
    fuse_reply_err (req, EINVAL);
    return;
  }
  /* The device never grows: clip to its end. */
  if ((uint64_t) off >= disksize)
    len = 0;
  else if ((uint64_t) len > disksize - off)
    len = disksize - off;

  /* A loop device sends discard as PUNCH_HOLE|KEEP_SIZE and write-zeroes
   * as ZERO_RANGE (or PUNCH_HOLE without REQ_NOUNMAP).
   */
  if (mode == (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE)) {
    if (zram_debug_control)
      nbdkit_debug ("control: disk: punch hole %" PRIi64 "+%" PRIi64,
                    (int64_t) off, (int64_t) len);
    r = disk_falloc_range (c, false, off, len);
  }
  else if ((mode & ~FALLOC_FL_KEEP_SIZE) == FALLOC_FL_ZERO_RANGE) {
    if (zram_debug_control)
      nbdkit_debug ("control: disk: zero range %" PRIi64 "+%" PRIi64,
                    (int64_t) off, (int64_t) len);
    r = disk_falloc_range (c, true, off, len);
  }
  else if ((mode & ~FALLOC_FL_KEEP_SIZE) == 0)
    r = 0;        /* allocate: every block of a RAM disk already exists */
  else
    r = -EOPNOTSUPP;
  fuse_reply_err (req, r < 0 ? -r : 0);
}

static void
ctl_statfs (fuse_req_t req, fuse_ino_t ino)
{
  struct control *c = fuse_req_userdata (req);
  struct statvfs sv;

  (void) ino;
  /* f_bsize is the discard granularity a loop device over `disk` uses. */
  memset (&sv, 0, sizeof sv);
  sv.f_bsize = ZRAM_BLOCK_SIZE;
  sv.f_frsize = ZRAM_BLOCK_SIZE;
  sv.f_blocks = zram_disksize (c->zram) / ZRAM_BLOCK_SIZE;
  sv.f_files = 2 + zram_nr_attrs;
  sv.f_namemax = NAME_MAX;
  fuse_reply_statfs (req, &sv);
}

static const struct fuse_lowlevel_ops control_ops = {
  .init = ctl_init,
  .lookup = ctl_lookup,
  .getattr = ctl_getattr,
  .setattr = ctl_setattr,
  .readdir = ctl_readdir,
  .open = ctl_open,
  .read = ctl_read,
  .write = ctl_write,
  .flush = ctl_flush,
  .fsync = ctl_fsync,
  .release = ctl_release,
  .fallocate = ctl_fallocate,
  .statfs = ctl_statfs,
};

/* --- I/O under libfuse (uring.c) --- */

static ssize_t
ctl_io_read (int fd, void *buf, size_t len, void *userdata)
{
  struct control *c = userdata;
  return uring_io_read (c->uring, fd, buf, len);
}

static ssize_t
ctl_io_writev (int fd, struct iovec *iov, int count, void *userdata)
{
  struct control *c = userdata;
  return uring_io_writev (c->uring, fd, iov, count);
}

static const struct fuse_custom_io control_io = {
  .read = ctl_io_read,
  .writev = ctl_io_writev,
};

/* Whether to put uring.c under libfuse: not for uring=off, nor where the
 * kernel will not offer io_uring (then libfuse's I/O is left exactly as
 * it is).  -1 for uring=on where it cannot be had.
 */
static int
want_uring (enum uring_mode mode)
{
  const char *why;
  int k;

  if (mode == URING_OFF)
    return 0;
  why = uring_unusable ();
  if (why) {
    if (mode == URING_ON) {
      nbdkit_error ("control: uring=on, but %s", why);
      return -1;
    }
    nbdkit_debug ("control: FUSE over io_uring not used (%s): serving over "
                  "/dev/fuse", why);
    return 0;
  }
  k = uring_kernel_enabled ();
  if (k == 1)
    return 1;
  if (mode == URING_ON) {
    nbdkit_error ("control: uring=on, but %s",
                  k == 0 ? "/sys/module/fuse/parameters/enable_uring is N "
                           "(echo Y > it as root)"
                         : "this kernel has no FUSE over io_uring "
                           "(CONFIG_FUSE_IO_URING, Linux 6.14)");
    return -1;
  }
  nbdkit_debug ("control: FUSE over io_uring not available (%s): "
                "serving over /dev/fuse",
                k == 0 ? "enable_uring is N" : "not in this kernel");
  return 0;
}

/* --- Mount life cycle --- */

/* fusermount3 -u -z DIR, for when we may not umount2 ourselves. */
static int
run_fusermount_lazy (const char *dir)
{
  char *argv[] = { "fusermount3", "-u", "-z", (char *) dir, NULL };
  extern char **environ;
  pid_t pid;
  int status;

  errno = posix_spawnp (&pid, "fusermount3", NULL, NULL, argv, environ);
  if (errno)
    return -1;
  if (waitpid (pid, &status, 0) == -1)
    return -1;
  if (!WIFEXITED (status) || WEXITSTATUS (status) != 0) {
    errno = EIO;
    return -1;
  }
  return 0;
}

/* stat's errno for a mount whose server is gone.  ENOTCONN, or just after
 * a server that used FUSE over io_uring was killed, ECONNABORTED: the
 * kernel tears its rings down after the process, and a request queued on
 * them meanwhile is ended with that.
 */
static bool
dead_server (int err)
{
  return err == ENOTCONN || err == ECONNABORTED;
}

/* DIR's FUSE server died without unmounting (a killed earlier run): every
 * access fails (dead_server) until it is unmounted.  Detach it lazily.
 */
static int
detach_stale (const char *dir)
{
  nbdkit_error ("control: %s is a stale mount left by an earlier run "
                "that did not exit cleanly; unmounting it and mounting "
                "again", dir);
  if (umount2 (dir, MNT_DETACH) == 0)
    return 0;
  if (run_fusermount_lazy (dir) == 0)
    return 0;
  nbdkit_error ("control: could not unmount the stale mount %s: %m "
                "(try: fusermount3 -u -z %s)", dir, dir);
  return -1;
}

/* True if DIR is itself the mount point of a FUSE file system (which
 * answered stat, so it is alive): mounting over it would hide it.
 */
static bool
live_fuse_mount (const char *dir)
{
  char *real = realpath (dir, NULL);
  struct mntent *m;
  bool found = false;
  FILE *fp;

  if (!real)
    return false;
  fp = setmntent ("/proc/self/mounts", "r");
  while (fp && (m = getmntent (fp)) != NULL)
    if (strcmp (m->mnt_dir, real) == 0 &&
        strncmp (m->mnt_type, "fuse", 4) == 0)
      found = true;
  if (fp)
    endmntent (fp);
  free (real);
  return found;
}

int
control_check_dir (const char *dir)
{
  struct stat st;

  if (!dir || !*dir) {
    nbdkit_error ("control: the control directory is an empty path");
    return -1;
  }
  if (stat (dir, &st) == -1) {
    if (dead_server (errno)) {
      if (detach_stale (dir) == -1)
        return -1;
      if (stat (dir, &st) == -1) {
        nbdkit_error ("control: %s: %m", dir);
        return -1;
      }
    }
    else if (errno == ENOENT) {
      /* The directory itself may be missing: make it, if its parent is
       * there.
       */
      if (mkdir (dir, 0755) == -1) {
        if (errno == ENOENT)
          nbdkit_error ("control: cannot create %s: its parent directory "
                        "does not exist", dir);
        else
          nbdkit_error ("control: cannot create %s: %m", dir);
        return -1;
      }
      nbdkit_debug ("control: created %s", dir);
      if (stat (dir, &st) == -1) {
        nbdkit_error ("control: %s: %m", dir);
        return -1;
      }
    }
    else {
      nbdkit_error ("control: %s: %m", dir);
      return -1;
    }
  }
  if (!S_ISDIR (st.st_mode)) {
    nbdkit_error ("control: %s is not a directory", dir);
    return -1;
  }
  if (live_fuse_mount (dir)) {
    nbdkit_error ("control: %s is already a FUSE mount that answers: is "
                  "another nbdkit serving it?  Stop that one first, or "
                  "choose another directory", dir);
    return -1;
  }
  return 0;
}

static void *
session_thread (void *arg)
{
  struct control *c = arg;
  struct fuse_loop_config *cfg;
  int r;

  cfg = fuse_loop_cfg_create ();
  if (!cfg) {
    nbdkit_error ("control: fuse_loop_cfg_create failed");
    return NULL;
  }
  fuse_loop_cfg_set_clone_fd (cfg, 1);
  fuse_loop_cfg_set_max_threads (cfg, CONTROL_MAX_THREADS);
  r = fuse_session_loop_mt (c->se, cfg);
  fuse_loop_cfg_destroy (cfg);
  if (zram_debug_control)
    nbdkit_debug ("control: session loop ended (%d)", r);
  return NULL;
}

/* Registered with the plugin's own __dso_handle, which is what atexit()
 * does in a shared object under glibc: it then runs when nbdkit unloads
 * the plugin, or at exit if that comes first, and never after the
 * plugin's code is gone.  Calling atexit() would do the same, but TSan
 * intercepts atexit() and keeps the handler for the very end of the
 * process, after the unload, where calling it crashes nbdkit.
 */
extern void *__dso_handle;
extern int __cxa_atexit (void (*fn) (void *), void *arg, void *dso);

static void
control_atexit (void *arg)
{
  struct control *c;

  (void) arg;

  pthread_mutex_lock (&live_lock);
  c = live;
  pthread_mutex_unlock (&live_lock);
  control_stop (c);
}

struct control *
control_start (struct zram *zram, const char *dir,
               const struct control_opts *opts)
{
  struct control *c;
  char optstr[128];
  char *argv[] = { "nbdkit-zram", "-o", optstr, NULL };
  struct fuse_args args = FUSE_ARGS_INIT (3, argv);
  sigset_t all, old;
  struct stat st;
  int err, uring;

  /* nbdkit may have forked since control_check_dir; a stale mount could
   * also have appeared meanwhile.
   */
  if (stat (dir, &st) == -1 && dead_server (errno) && detach_stale (dir) == -1)
    return NULL;
  uring = want_uring (opts ? opts->uring : URING_AUTO);
  if (uring == -1)
    return NULL;

  c = calloc (1, sizeof *c);
  if (!c) {
    nbdkit_error ("calloc: %m");
    return NULL;
  }
  c->zram = zram;
  c->uid = getuid ();
  c->gid = getgid ();
  clock_gettime (CLOCK_REALTIME, &c->mtime);
  c->dir = strdup (dir);
  if (!c->dir) {
    nbdkit_error ("strdup: %m");
    goto err;
  }

  /* default_permissions: the kernel enforces the modes for other users
   * (with allow_other); root is still refused the wrong direction by
   * ctl_open, as sysfs refuses it.
   */
  snprintf (optstr, sizeof optstr,
            "default_permissions,fsname=uzram,subtype=zram%s",
            opts && opts->allow_other ? ",allow_other" : "");
  c->se = fuse_session_new (&args, &control_ops, sizeof control_ops, c);
  fuse_opt_free_args (&args);
  if (!c->se) {
    nbdkit_error ("control: fuse_session_new failed (options %s)", optstr);
    goto err;
  }
  if (fuse_session_mount (c->se, dir) != 0) {
    nbdkit_error ("control: cannot mount the control filesystem on %s", dir);
    goto err;
  }
  /* The kernel has queued FUSE_INIT; nothing has read it yet. */
  if (uring) {
    c->uring = uring_new (c->se, opts ? opts->uring : URING_AUTO,
                          opts ? opts->uring_threads : 0);
    if (!c->uring ||
        fuse_session_custom_io (c->se, &control_io,
                                fuse_session_fd (c->se)) != 0) {
      nbdkit_error ("control: cannot set up FUSE over io_uring (%s)",
                    c->uring ? "fuse_session_custom_io failed" : "ENOMEM");
      fuse_session_unmount (c->se);
      goto err;
    }
  }

  /* The workers block every signal: nbdkit's main thread handles them. */
  sigfillset (&all);
  pthread_sigmask (SIG_SETMASK, &all, &old);
  err = pthread_create (&c->thread, NULL, session_thread, c);
  pthread_sigmask (SIG_SETMASK, &old, NULL);
  if (err) {
    errno = err;
    nbdkit_error ("control: pthread_create: %m");
    fuse_session_unmount (c->se);
    goto err;
  }
  c->thread_started = true;

  pthread_mutex_lock (&live_lock);
  live = c;
  if (!atexit_registered &&
      __cxa_atexit (control_atexit, NULL, __dso_handle) == 0)
    atexit_registered = true;
  pthread_mutex_unlock (&live_lock);
  nbdkit_debug ("control: mounted on %s", dir);
  return c;

 err:
  if (c->se)
    fuse_session_destroy (c->se);
  uring_free (c->uring);
  free (c->dir);
  free (c);
  return NULL;
}

void
control_stop (struct control *c)
{
  pthread_mutex_lock (&live_lock);
  if (c == NULL || c != live) {
    pthread_mutex_unlock (&live_lock);
    return;                     /* NULL, or already stopped */
  }
  live = NULL;
  pthread_mutex_unlock (&live_lock);

  fuse_session_exit (c->se);
  /* MNT_FORCE makes FUSE abort the connection (umount_begin), which wakes
   * every worker, and fails whatever a loop device still sends instead of
   * leaving it hanging; MNT_DETACH unmounts even while `disk` is open.
   * Without the right to umount2, fusermount3 -u -z does the unmount and
   * the last user's close ends the connection.
   */
  if (umount2 (c->dir, MNT_FORCE | MNT_DETACH) == -1) {
    nbdkit_debug ("control: umount2 %s: %m; using fusermount3", c->dir);
    fuse_session_unmount (c->se);
  }
  if (c->thread_started)
    pthread_join (c->thread, NULL);
  /* The connection is aborted, so the rings' threads are ending. */
  uring_free (c->uring);
  /* Closes the session's own fd; the mount is gone already. */
  fuse_session_unmount (c->se);
  fuse_session_destroy (c->se);
  nbdkit_debug ("control: unmounted %s", c->dir);
  free (c->dir);
  free (c);
}
