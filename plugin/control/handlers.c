/* uzram control filesystem: the FUSE handlers (see control.h; the mount
 * and its threads are mount.c's, the transports libfuse's /dev/fuse loop
 * and uring.c).
 *
 * A fixed inode table, modeled on libfuse's example/hello_ll.c, with one
 * block of it per device (devices.h):
 *
 *   1                  the root directory (0755): device 0's files, as a
 *                      server with one device has always shown them
 *   2 .. 1+N           zram_attrs[0 .. N-1] (attrs.c), zram's modes
 *   2+N                disk, the device's contents (0600)
 *   3+N                zram-control/ (0755), as /sys/class/zram-control/
 *   4+N, 5+N           zram-control/hot_add (0400), hot_remove (0200)
 *   DEV_INO (id, 0)    zramN/, device id's directory (0755)
 *   DEV_INO (id, 1+k)  its attribute k, and its disk, as at the root
 *
 * so the root's files and zram0/'s are the same device under two names.
 * A device's directory is looked up afresh every time (entry timeout 0):
 * devices come and go.  Reading hot_add creates a device and shows its
 * id, once per read from offset 0 (not at open, so `cat` makes one);
 * each write to hot_remove removes the device it names.
 *
 * One stat helper fills every inode's attributes; every handler ends in
 * exactly one fuse_reply_*.
 *
 * Every open file holds its device (devices_get), so a removed device's
 * memory lives until the last of them is closed.
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
 * Workers that serve `disk` mark themselves I/O flushers (io_flusher.h)
 * so that swap on a loop device over `disk` does not recurse into
 * reclaim.  A read of `disk` goes straight into the transport's reply
 * buffer where it has one (uring_reply_buffer).
 *
 * Locks: an attr_handle's lock guards its snapshot.  It is not held
 * across an engine call that can wait for I/O: show functions read the engine's
 * lock-free statistics, so reading stats never stalls I/O nor the other
 * way round.
 *
 * `disk` is opened with FOPEN_PARALLEL_DIRECT_WRITES, built by hand since
 * libfuse 3.14 cannot set it (disk_reply_open).
 *
 * No handler waits: a write to a control file (a store: reset, compact,
 * idle, mem_limit ...) goes to the admin worker (admin.h), which stores
 * and replies from its own thread (uring_hold where the request came
 * through a ring), so the thread that took it goes back to serving I/O.
 *
 * Still to do: poll(2) notification on the stats files.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#include "control/internal.h"
#include <linux/fuse.h>     /* struct fuse_open_out: see disk_reply_open */

#include "attrs.h"
#include "devices.h"
#include "engine.h"
#include "io_flusher.h"

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
/* A device's file k (1 + attribute index, or DISK_K) at the root (device
 * 0) or in the device's directory.
 */
#define ROOT_FILE_INO(k) ((fuse_ino_t) (1 + (k)))
#define DISK_K (1 + zram_nr_attrs)
#define DISK_INO ROOT_FILE_INO (DISK_K)
#define CTL_DIR_INO ((fuse_ino_t) (3 + zram_nr_attrs))
#define HOT_ADD_INO ((fuse_ino_t) (4 + zram_nr_attrs))
#define HOT_REMOVE_INO ((fuse_ino_t) (5 + zram_nr_attrs))
/* Room for a directory, every attribute and disk per device. */
#define DEV_STRIDE 256
#define DEV_BASE ((fuse_ino_t) 0x10000)
#define DEV_INO(id, k) (DEV_BASE + (fuse_ino_t) (id) * DEV_STRIDE + (k))
#define DISK_NAME "disk"
#define CTL_DIR_NAME "zram-control"

/* What an inode is. */
enum node_kind {
  N_NONE, N_ROOT, N_ATTR, N_DISK, N_CTL_DIR, N_HOT_ADD, N_HOT_REMOVE,
  N_DEV_DIR,
};

struct node {
  enum node_kind kind;
  unsigned dev;                 /* N_ATTR, N_DISK, N_DEV_DIR */
  const struct zram_attr *attr; /* N_ATTR */
};

static struct node
decode (fuse_ino_t ino)
{
  struct node n = { .kind = N_NONE };
  fuse_ino_t k;

  if (ino == ROOT_INO)
    n.kind = N_ROOT;
  else if (ino == CTL_DIR_INO)
    n.kind = N_CTL_DIR;
  else if (ino == HOT_ADD_INO)
    n.kind = N_HOT_ADD;
  else if (ino == HOT_REMOVE_INO)
    n.kind = N_HOT_REMOVE;
  else if (ino >= DEV_BASE &&
           (ino - DEV_BASE) / DEV_STRIDE < ZRAM_MAX_DEVICES) {
    n.dev = (ino - DEV_BASE) / DEV_STRIDE;
    k = (ino - DEV_BASE) % DEV_STRIDE;
    if (k == 0)
      n.kind = N_DEV_DIR;
    else if (k < DISK_K) {
      n.kind = N_ATTR;
      n.attr = &zram_attrs[k - 1];
    }
    else if (k == DISK_K)
      n.kind = N_DISK;
  }
  else if (ino > ROOT_INO && ino < DISK_INO) {
    n.kind = N_ATTR;
    n.attr = &zram_attrs[ino - ROOT_FILE_INO (1)];
  }
  else if (ino == DISK_INO)
    n.kind = N_DISK;
  return n;
}

/* The inode of a device's file k as seen from parent (the root or the
 * device's directory).
 */
static fuse_ino_t
file_ino (fuse_ino_t parent, unsigned dev, fuse_ino_t k)
{
  return parent == ROOT_INO ? ROOT_FILE_INO (k) : DEV_INO (dev, k);
}

/* One open control file: for an attribute, the text last shown,
 * regenerated by a read at offset 0 (the same for hot_add, whose every
 * showing adds a device).  The lock covers two threads reading one file
 * handle at once.
 */
struct attr_handle {
  enum node_kind kind;          /* N_ATTR, N_HOT_ADD or N_HOT_REMOVE */
  const struct zram_attr *attr; /* N_ATTR */
  struct zram *zram;            /* N_ATTR: held (devices_get) */
  unsigned dev;
  pthread_mutex_t lock;
  char *text;
  size_t len;
};

/* --- Helpers --- */

/* The one stat helper.  -1 for an inode that does not exist. */
static int
control_stat (struct control *c, fuse_ino_t ino, struct stat *st)
{
  struct node n = decode (ino);
  struct zram *zram = NULL;

  memset (st, 0, sizeof *st);
  st->st_ino = ino;
  st->st_uid = c->uid;
  st->st_gid = c->gid;
  st->st_atim = st->st_mtim = st->st_ctim = c->mtime;
  st->st_blksize = ZRAM_BLOCK_SIZE;
  if (n.kind == N_ATTR || n.kind == N_DISK || n.kind == N_DEV_DIR) {
    zram = devices_get (n.dev);
    if (!zram)
      return -1;
  }
  switch (n.kind) {
  case N_ROOT: case N_CTL_DIR: case N_DEV_DIR:
    st->st_mode = S_IFDIR | 0755;
    st->st_nlink = 2;
    break;
  case N_ATTR:
    /* sysfs says 4096 for every attribute, debugfs (classes, which can
     * be longer) 0; reads ignore it (direct_io), but tail(1) seeks by it.
     */
    st->st_mode = S_IFREG | n.attr->mode;
    st->st_nlink = 1;
    st->st_size = strcmp (n.attr->name, "classes") == 0 ? 0 : 4096;
    break;
  case N_HOT_ADD: case N_HOT_REMOVE:
    st->st_mode = S_IFREG | (n.kind == N_HOT_ADD ? 0400 : 0200);
    st->st_nlink = 1;
    st->st_size = 4096;
    break;
  case N_DISK:
    st->st_mode = S_IFREG | 0600;
    st->st_nlink = 1;
    st->st_size = zram_disksize (zram);
    st->st_blocks = st->st_size / 512;
    break;
  default:
    return -1;
  }
  if (zram)
    devices_put (zram);
  return 0;
}

/* Generates the attribute's text into h (h->lock held). */
static int
attr_refresh (struct control *c, struct attr_handle *h)
{
  char small[4096];
  ssize_t n;
  char *text;

  (void) c;
  if (h->kind == N_HOT_ADD) {
    int id = devices_hot_add ();
    if (id < 0)
      return id;
    n = snprintf (small, sizeof small, "%d\n", id);
  }
  else
    n = h->attr->show (h->zram, small, sizeof small);
  if (n < 0)
    return n;
  text = malloc (n + 1);
  if (!text)
    return -ENOMEM;
  if ((size_t) n < sizeof small)
    memcpy (text, small, n + 1);
  else {
    /* Grew past a page (classes): show again into a buffer that fits. */
    ssize_t m = h->attr->show (h->zram, text, n + 1);
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
  struct node p = decode (parent);
  fuse_ino_t ino = 0;
  int id;

  if (p.kind != N_ROOT && p.kind != N_CTL_DIR && p.kind != N_DEV_DIR) {
    fuse_reply_err (req, p.kind == N_NONE ? ENOENT : ENOTDIR);
    return;
  }
  if (p.kind == N_CTL_DIR) {
    if (strcmp (name, "hot_add") == 0)
      ino = HOT_ADD_INO;
    else if (strcmp (name, "hot_remove") == 0)
      ino = HOT_REMOVE_INO;
  }
  else if (strcmp (name, DISK_NAME) == 0)
    ino = file_ino (parent, p.dev, DISK_K);
  else if ((attr = zram_attr_find (name)) != NULL)
    ino = file_ino (parent, p.dev, 1 + (attr - zram_attrs));
  else if (p.kind == N_ROOT && strcmp (name, CTL_DIR_NAME) == 0)
    ino = CTL_DIR_INO;
  else if (p.kind == N_ROOT && (id = devices_name_id (name)) >= 0)
    ino = DEV_INO (id, 0);
  memset (&e, 0, sizeof e);
  if (ino == 0 || control_stat (c, ino, &e.attr) == -1) {
    fuse_reply_err (req, ENOENT);
    return;
  }
  e.ino = ino;
  /* Names never change but for the devices' directories (hot_add,
   * hot_remove), which are looked up again on every use; disk's size
   * changes (disksize, reset), so its attributes are never cached.
   */
  e.entry_timeout = decode (ino).kind == N_DEV_DIR ? 0 : 3600;
  e.attr_timeout = decode (ino).kind == N_DISK ? 0 : 3600;
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
    fuse_reply_attr (req, &st, decode (ino).kind == N_DISK ? 0 : 3600);
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
    fuse_reply_attr (req, &st, decode (ino).kind == N_DISK ? 0 : 3600);
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
  struct node n = decode (ino);
  char name[32];
  size_t i;
  int err = 0, id;

  (void) fi;
  if (n.kind != N_ROOT && n.kind != N_CTL_DIR && n.kind != N_DEV_DIR) {
    fuse_reply_err (req, n.kind == N_NONE ? ENOENT : ENOTDIR);
    return;
  }
  err |= dirbuf_add (req, &b, ".", ino, S_IFDIR);
  err |= dirbuf_add (req, &b, "..", ROOT_INO, S_IFDIR);
  if (n.kind == N_CTL_DIR) {
    err |= dirbuf_add (req, &b, "hot_add", HOT_ADD_INO, S_IFREG);
    err |= dirbuf_add (req, &b, "hot_remove", HOT_REMOVE_INO, S_IFREG);
  }
  else {
    for (i = 0; i < zram_nr_attrs; i++)
      err |= dirbuf_add (req, &b, zram_attrs[i].name,
                         file_ino (ino, n.dev, 1 + i), S_IFREG);
    err |= dirbuf_add (req, &b, DISK_NAME, file_ino (ino, n.dev, DISK_K),
                       S_IFREG);
  }
  if (n.kind == N_ROOT) {
    err |= dirbuf_add (req, &b, CTL_DIR_NAME, CTL_DIR_INO, S_IFDIR);
    for (id = devices_next (-1); id >= 0; id = devices_next (id)) {
      snprintf (name, sizeof name, "zram%d", id);
      err |= dirbuf_add (req, &b, name, DEV_INO (id, 0), S_IFDIR);
    }
  }
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
 * writes are as safe as over NBD.  Threads writing straight to `disk`
 * gain (fio-jobs/README.md has the figures); a loop device gains little,
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
disk_open (fuse_req_t req, unsigned dev, struct fuse_file_info *fi)
{
  struct zram *zram = devices_get (dev);
  int r;

  if (!zram) {
    fuse_reply_err (req, ENOENT);
    return;
  }
  /* An open `disk` is a client: it needs an initialised device, and holds
   * it (reset and hot_remove are EBUSY) until release.
   */
  r = zram_get (zram);
  if (r < 0) {
    devices_put (zram);
    fuse_reply_err (req, -r);
    return;
  }
  fi->fh = (uintptr_t) zram;
  if (disk_reply_open (req, fi) == -ENOENT) {
    zram_put (zram);            /* interrupted: no release will come */
    devices_put (zram);
  }
}

/* An open disk's device. */
static struct zram *
fi_zram (const struct fuse_file_info *fi)
{
  return (struct zram *) (uintptr_t) fi->fh;
}

static void
attr_handle_free (struct attr_handle *h)
{
  pthread_mutex_destroy (&h->lock);
  free (h->text);
  if (h->zram)
    devices_put (h->zram);
  free (h);
}

static void
ctl_open (fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
  struct control *c = fuse_req_userdata (req);
  struct node n = decode (ino);
  struct attr_handle *h;
  int acc = fi->flags & O_ACCMODE;
  bool can_show, can_store;
  int r;

  if (n.kind == N_DISK) {
    disk_open (req, n.dev, fi);
    return;
  }
  if (n.kind != N_ATTR && n.kind != N_HOT_ADD && n.kind != N_HOT_REMOVE) {
    fuse_reply_err (req, n.kind == N_NONE ? ENOENT : EISDIR);
    return;
  }
  can_show = n.kind == N_HOT_ADD || (n.kind == N_ATTR && n.attr->show);
  can_store = n.kind == N_HOT_REMOVE || (n.kind == N_ATTR && n.attr->store);
  /* As kernfs: opening for a direction the attribute lacks is EACCES, even
   * for root.
   */
  if ((acc != O_WRONLY && !can_show) || (acc != O_RDONLY && !can_store)) {
    fuse_reply_err (req, EACCES);
    return;
  }
  h = calloc (1, sizeof *h);
  if (!h) {
    fuse_reply_err (req, ENOMEM);
    return;
  }
  h->kind = n.kind;
  h->attr = n.attr;
  h->dev = n.dev;
  pthread_mutex_init (&h->lock, NULL);
  if (n.kind == N_ATTR && (h->zram = devices_get (n.dev)) == NULL) {
    attr_handle_free (h);
    fuse_reply_err (req, ENOENT);
    return;
  }
  /* hot_add shows (adds a device) only when read. */
  if (n.kind == N_ATTR && can_show && acc != O_WRONLY &&
      (r = attr_refresh (c, h)) < 0) {
    attr_handle_free (h);
    fuse_reply_err (req, -r);
    return;
  }
  fi->fh = (uintptr_t) h;
  fi->direct_io = 1;
  if (fuse_reply_open (req, fi) == -ENOENT)
    attr_handle_free (h);
}

static void
disk_read (fuse_req_t req, struct control *c, struct zram *zram,
           size_t size, off_t off)
{
  uint64_t disksize = zram_disksize (zram);
  void *buf;
  int r;

  io_flusher ();
  if (off < 0 || (uint64_t) off >= disksize || size == 0) {
    fuse_reply_buf (req, NULL, 0);              /* end of the device */
    return;
  }
  if (size > disksize - off)
    size = disksize - off;
  buf = uring_reply_buffer (c->uring, size);
  if (!buf)
    buf = read_buf (size);
  if (!buf) {
    fuse_reply_err (req, ENOMEM);
    return;
  }
  r = zram_read (zram, buf, size, off);
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

  if (decode (ino).kind == N_DISK) {
    disk_read (req, c, fi_zram (fi), size, off);
    return;
  }
  if (!h || h->kind == N_HOT_REMOVE || (h->attr && !h->attr->show)) {
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
disk_write (fuse_req_t req, struct zram *zram, const char *buf, size_t size,
            off_t off)
{
  uint64_t disksize = zram_disksize (zram);
  int r;

  io_flusher ();
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
  r = zram_write (zram, buf, size, off);
  if (r < 0)
    fuse_reply_err (req, -r);
  else
    fuse_reply_write (req, size);
}

/* One store, for the admin worker: the request and a copy of what was
 * written (the request's buffer is the transport's, reused once the
 * handler returns).
 */
struct store_job {
  struct admin_job job;
  struct control *c;
  fuse_req_t req;
  const struct zram_attr *attr; /* NULL: hot_remove */
  struct zram *zram;            /* the handle's, held until its release */
  unsigned dev;
  struct uring_ent *held;       /* NULL: not through a ring */
  size_t size;
  char buf[];
};

/* hot_remove's store: an id as kstrtoint (buf, 10) reads it (an optional
 * sign, decimal digits, one trailing newline), then zram's errors:
 * EINVAL for a negative one or junk, ENODEV for no such device, EBUSY
 * while it is in use.
 */
static ssize_t
hot_remove_store (const char *buf, size_t len)
{
  size_t n = zram_strip_newline (buf, len), used, sign = 0;
  uint64_t id;
  int r;

  if (n > 0 && (buf[0] == '+' || buf[0] == '-'))
    sign = 1;
  if (zram_parse_u64 (buf + sign, n - sign, &id, &used) || used != n - sign)
    return -EINVAL;
  if (id > INT_MAX)
    return -ERANGE;
  if (buf[0] == '-' && id > 0)
    return -EINVAL;
  if (id >= ZRAM_MAX_DEVICES)
    return -ENODEV;
  r = devices_hot_remove (id);
  return r < 0 ? r : (ssize_t) len;
}

static void
store_run (struct admin_job *job)
{
  struct store_job *sj = (struct store_job *) job;
  struct control *c = sj->c;
  ssize_t r;

  r = sj->attr ? sj->attr->store (sj->zram, sj->buf, sj->size)
               : hot_remove_store (sj->buf, sj->size);
  uring_held_begin (sj->held);
  if (r < 0)
    fuse_reply_err (sj->req, -r);
  else {
    /* disksize and reset change `disk`'s size: drop the kernel's copy of
     * its attributes (attribute-only invalidation takes no inode lock),
     * so that even a reader that never stats it sees the new size.
     */
    if (sj->attr) {
      fuse_lowlevel_notify_inval_inode (c->se, DEV_INO (sj->dev, DISK_K),
                                        -1, 0);
      if (sj->dev == 0)
        fuse_lowlevel_notify_inval_inode (c->se, DISK_INO, -1, 0);
    }
    fuse_reply_write (sj->req, sj->size);
  }
  uring_held_end (sj->held);
  free (sj);
}

static void
ctl_write (fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size,
           off_t off, struct fuse_file_info *fi)
{
  struct control *c = fuse_req_userdata (req);
  struct attr_handle *h = (struct attr_handle *) (uintptr_t) fi->fh;
  struct store_job *sj;

  if (decode (ino).kind == N_DISK) {
    disk_write (req, fi_zram (fi), buf, size, off);
    return;
  }
  if (!h || h->kind == N_HOT_ADD || (h->attr && !h->attr->store)) {
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
  sj = malloc (sizeof *sj + size);
  if (!sj) {
    fuse_reply_err (req, ENOMEM);
    return;
  }
  sj->job.run = store_run;
  sj->c = c;
  sj->req = req;
  sj->attr = h->attr;
  sj->zram = h->zram;
  sj->dev = h->dev;
  sj->size = size;
  memcpy (sj->buf, buf, size);
  sj->held = uring_hold (c->uring);
  admin_submit (c->admin, &sj->job);
}

static void
ctl_flush (fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
  int r = 0;

  /* close(2) of `disk`: the engine's flush, as an NBD flush would. */
  if (decode (ino).kind == N_DISK) {
    io_flusher ();
    r = zram_flush (fi_zram (fi));
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
  struct attr_handle *h = (struct attr_handle *) (uintptr_t) fi->fh;

  if (decode (ino).kind == N_DISK) {
    zram_put (fi_zram (fi));
    devices_put (fi_zram (fi));
  }
  else if (h)
    attr_handle_free (h);
  fuse_reply_err (req, 0);
}

/* Calls the engine's trim or zero over [off, off+len), in chunks its
 * 32-bit count can hold.
 */
static int
disk_falloc_range (struct zram *zram, bool zero, uint64_t off, uint64_t len)
{
  int r = 0;

  while (len > 0 && r == 0) {
    uint32_t n = len > CONTROL_FALLOC_CHUNK ? CONTROL_FALLOC_CHUNK : len;
    r = zero ? zram_write_zeroes (zram, n, off)
             : zram_discard (zram, n, off);
    off += n;
    len -= n;
  }
  return r;
}

static void
ctl_fallocate (fuse_req_t req, fuse_ino_t ino, int mode, off_t off,
               off_t len, struct fuse_file_info *fi)
{
  struct zram *zram;
  uint64_t disksize;
  int r = 0;

  if (decode (ino).kind != N_DISK) {
    fuse_reply_err (req, EOPNOTSUPP);
    return;
  }
  zram = fi_zram (fi);
  disksize = zram_disksize (zram);
  io_flusher ();
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
    r = disk_falloc_range (zram, false, off, len);
  }
  else if ((mode & ~FALLOC_FL_KEEP_SIZE) == FALLOC_FL_ZERO_RANGE) {
    if (zram_debug_control)
      nbdkit_debug ("control: disk: zero range %" PRIi64 "+%" PRIi64,
                    (int64_t) off, (int64_t) len);
    r = disk_falloc_range (zram, true, off, len);
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
  struct zram *zram = devices_get (0);
  struct statvfs sv;

  (void) ino;
  /* f_bsize is the discard granularity a loop device over `disk` uses. */
  memset (&sv, 0, sizeof sv);
  sv.f_bsize = ZRAM_BLOCK_SIZE;
  sv.f_frsize = ZRAM_BLOCK_SIZE;
  sv.f_blocks = zram ? zram_disksize (zram) / ZRAM_BLOCK_SIZE : 0;
  if (zram)
    devices_put (zram);
  sv.f_files = 2 + zram_nr_attrs;
  sv.f_namemax = NAME_MAX;
  fuse_reply_statfs (req, &sv);
}

const struct fuse_lowlevel_ops control_ops = {
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
