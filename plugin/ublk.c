/* uzram: the engine as /dev/ublkbN (see ublk.h).
 *
 * The kernel's side (drivers/block/ublk_drv.c, Documentation/block/ublk.rst):
 *
 *   - /dev/ublk-control takes admin commands as io_uring URING_CMDs
 *     (SQE128: the command lives in the SQE's 80-byte area): ADD_DEV
 *     creates the character device /dev/ublkcN, SET_PARAMS gives the
 *     block device's size and limits, START_DEV adds /dev/ublkbN once
 *     every queue has a FETCH_REQ waiting for each of its tags, STOP_DEV
 *     removes it (after the requests in flight are answered) and DEL_DEV
 *     removes /dev/ublkcN (after it is closed).
 *   - /dev/ublkcN: each queue's request descriptors (op, sector, count)
 *     are an array, one per tag, mmapped read-only.  A tag's FETCH_REQ
 *     completes when a request arrives on it; COMMIT_AND_FETCH_REQ gives
 *     the result and waits for the next one in the same command.  All of
 *     a queue's commands come from the one thread that serves it.
 *   - Data: with UBLK_F_USER_COPY (Linux 6.5+) the server reads a write's
 *     data and writes a read's data with pread/pwrite on /dev/ublkcN at an
 *     offset naming the queue and tag (ublk_pos); without it the kernel
 *     copies to and from a buffer per tag, given with each FETCH_REQ.
 *     User copy needs one buffer per queue instead of one per tag: the
 *     engine calls are synchronous, so a queue serves one request at a
 *     time.
 *   - Commands have two encodings: the first kernels' plain numbers and
 *     ioctl-style ones (UBLK_F_CMD_IOCTL_ENCODE, Linux 6.5+, the only ones
 *     a kernel built without BLKDEV_UBLK_LEGACY_OPCODES takes).  GET_FEATURES
 *     exists only in the new encoding; where it fails the kernel predates
 *     both flags, and the old numbers are the ones to use.
 *   - When the server's process dies, the kernel cancels its commands,
 *     fails the requests and removes /dev/ublkbN (without
 *     UBLK_F_USER_RECOVERY, which this never asks for: the data dies with
 *     the process).  /dev/ublkcN stays until a DEL_DEV: the next start
 *     deletes dead devices whose server is gone (sweep_dead).
 *
 * Ours: one queue per CPU, each served by its own thread with its own
 * ring, pinned to the queue's CPUs (GET_QUEUE_AFFINITY), marked
 * I/O flushers (io_flusher.h): swap on /dev/ublkbN reclaims memory
 * through these threads, so their own allocations must not wait for that
 * reclaim.
 * Nothing is allocated on the I/O path: the buffers are mapped when the
 * queue starts.  A thread serves every completed command of a batch, then
 * submits all the commits in the io_uring_enter that waits for the next.
 *
 * Stopping: STOP_DEV, then an eventfd that every queue's ring polls wakes
 * the threads, which leave with their FETCH_REQs outstanding; tearing the
 * ring down cancels them.  (Some kernels also complete them with
 * UBLK_IO_RES_ABORT on STOP_DEV; either way the thread ends.)
 *
 * reset must be refused while the block device is in use, but ublk tells
 * its server nothing of opens: ublk_in_use looks for an exclusive holder
 * (a mount, swap, a device-mapper or md device) by opening it O_EXCL, and
 * for any process with it open in /proc/[pid]/fd, as fuser does.
 *
 * Still to do: zero copy (UBLK_F_SUPPORT_ZERO_COPY, registered buffers);
 * a queue serving several requests at once.
 */
#include <config.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/types.h>

#include <nbdkit-plugin.h>

#include "engine.h"
#include "io_flusher.h"
#include "parse.h"
#include "ublk.h"

#define UBLK_CONTROL "/dev/ublk-control"

/* -D zram.ublk_tag_buffers=1: per-tag buffers even where the kernel has
 * user copy, so that the tests reach that path on any kernel.
 */
NBDKIT_DLL_PUBLIC int zram_debug_ublk_tag_buffers;

int
ublk_parse_mode (const char *s, enum ublk_mode *mode)
{
  bool is_auto, on;

  if (zram_parse_auto_bool (s, &is_auto, &on) < 0)
    return -1;
  *mode = is_auto ? UBLK_AUTO : on ? UBLK_ON : UBLK_OFF;
  return 0;
}

#ifndef HAVE_LIBURING

const char *
ublk_unusable (void)
{
  return "built without liburing";
}

struct ublk *
ublk_start (struct zram *zram, enum ublk_mode mode)
{
  (void) zram;
  if (mode == UBLK_ON) {
    nbdkit_error ("ublk=on: %s", ublk_unusable ());
    return NULL;
  }
  return (struct ublk *) calloc (1, 1);
}

void ublk_initialised (struct ublk *u) { (void) u; }
int ublk_release (struct ublk *u) { (void) u; return 0; }
void ublk_stop (struct ublk *u) { free (u); }
int ublk_dev_id (struct ublk *u) { (void) u; return -1; }

#else /* HAVE_LIBURING */

#include <liburing.h>
#include <linux/ublk_cmd.h>

/* What Debian 12's linux/ublk_cmd.h (Linux 6.1's) lacks, from the
 * kernel's uapi as of 6.12: the ioctl encodings and the flags that say a
 * kernel takes them, user copy, and the offsets that address a tag's
 * data on /dev/ublkcN.
 */
#ifndef UBLK_F_CMD_IOCTL_ENCODE
#define UBLK_F_CMD_IOCTL_ENCODE (1ULL << 6)
#endif
#ifndef UBLK_F_USER_COPY
#define UBLK_F_USER_COPY (1ULL << 7)
#endif
#ifndef UBLK_CMD_GET_FEATURES
#define UBLK_CMD_GET_FEATURES 0x13
#endif
#ifndef UBLK_IO_BUF_BITS
#define UBLK_IO_BUF_BITS 25     /* a request's bytes: up to 32 MiB */
#define UBLK_TAG_OFF     UBLK_IO_BUF_BITS
#define UBLK_TAG_BITS    16
#define UBLK_QID_OFF     (UBLK_TAG_OFF + UBLK_TAG_BITS)
#endif

/* A command in either encoding: the old number, or the ioctl form (the
 * data is a ublksrv_ctrl_cmd or ublksrv_io_cmd; the direction bits are
 * the kernel's choices, which it checks).
 */
#define CTRL_R(nr)  _IOR ('u', (nr), struct ublksrv_ctrl_cmd)
#define CTRL_RW(nr) _IOWR ('u', (nr), struct ublksrv_ctrl_cmd)
#define IO_RW(nr)   _IOWR ('u', (nr), struct ublksrv_io_cmd)

/* Tags per queue.  Deep enough for swap's and fio's bursts to reach the
 * engine from several CPUs, but no deeper: swap-out pages stay in the
 * swap cache, charged to their memory cgroup, until their write
 * completes, and with twice this many a cgroup swapping through a slow
 * server was killed for want of memory while its writes waited.  Each
 * tag also costs a descriptor (and, without user copy, a buffer of MAX_IO
 * bytes of address space).
 */
#define QUEUE_DEPTH 64
/* The largest request: large sequential I/O goes through in few round
 * trips, and with per-tag buffers QUEUE_DEPTH of these are only address
 * space until a request that large comes.
 */
#define MAX_IO (1u << 20)
/* One discard or write-zeroes request at most: the engine's count is
 * 32-bit, and freeing this many blocks takes milliseconds, not seconds.
 */
#define MAX_DISCARD (1u << 30)

/* user_data of the stop eventfd's poll; tags are below QUEUE_DEPTH. */
#define STOP_DATA UINT64_MAX

struct ublk_dev;

struct ublk_queue {
  struct ublk_dev *dev;
  unsigned q_id;
  pthread_t thread;
  bool thread_started;
  cpu_set_t cpus;
  bool have_cpus;
  struct io_uring ring;
  struct ublksrv_io_desc *descs;  /* QUEUE_DEPTH of them, the kernel's */
  size_t descs_len;
  char *bufs;                     /* user copy: one MAX_IO; else per tag */
  size_t bufs_len;
  /* Set by the thread once its FETCH_REQs are submitted (ready 1) or it
   * failed (ready -1), under dev->lock.
   */
  int ready;
};

struct ublk_dev {
  struct ublk *u;
  int dev_id;
  int cdev_fd;
  int stop_fd;                    /* eventfd the rings poll */
  bool user_copy;
  unsigned nr_queues;
  struct ublk_queue *queues;
  pthread_mutex_t lock;
  pthread_cond_t cond;
  bool started;                   /* START_DEV succeeded */
};

struct ublk {
  struct zram *zram;
  enum ublk_mode mode;
  pthread_mutex_t lock;           /* the device's life cycle */
  int ctrl_fd;
  struct io_uring ctrl;           /* admin commands, under lock */
  uint64_t features;              /* GET_FEATURES, 0 on old kernels */
  bool ioctl_encode;
  struct ublk_dev *dev;           /* NULL: no block device */
  /* dev's number, or -1: set under lock, read without it (ublk_dev_id,
   * for the control files, which must not wait out a STOP_DEV).
   */
  int dev_id;
  int last_dev_id;                /* the last block device's, or -1 */
};

/* u->dev = d, and its number for ublk_dev_id.  Call with u->lock held. */
static void
set_dev (struct ublk *u, struct ublk_dev *d)
{
  u->dev = d;
  __atomic_store_n (&u->dev_id, d ? d->dev_id : -1, __ATOMIC_RELAXED);
}

const char *
ublk_unusable (void)
{
  if (access (UBLK_CONTROL, F_OK) == 0)
    return NULL;
  /* The module may just not be loaded; as root, load it. */
  if (geteuid () == 0 &&
      system ("modprobe ublk_drv >/dev/null 2>&1") == 0 &&
      access (UBLK_CONTROL, F_OK) == 0)
    return NULL;
  return "the kernel has no ublk (" UBLK_CONTROL " is missing and "
    "ublk_drv does not load)";
}

/* One admin command on /dev/ublk-control; the kernel's result (0 or
 * -errno).  Call with u->lock held.
 */
static int
ctrl_cmd (struct ublk *u, unsigned nr, bool writes, uint32_t dev_id,
          uint16_t q_id, void *addr, uint16_t len, uint64_t data)
{
  struct io_uring_sqe *sqe;
  struct io_uring_cqe *cqe;
  struct ublksrv_ctrl_cmd *cmd;
  int r;

  sqe = io_uring_get_sqe (&u->ctrl);
  if (!sqe)
    return -EAGAIN;
  io_uring_prep_rw (IORING_OP_URING_CMD, sqe, u->ctrl_fd, NULL, 0, 0);
  memset (sqe->cmd, 0, sizeof (struct ublksrv_ctrl_cmd));
  cmd = (struct ublksrv_ctrl_cmd *) sqe->cmd;
  cmd->dev_id = dev_id;
  cmd->queue_id = q_id;
  cmd->addr = (uintptr_t) addr;
  cmd->len = len;
  cmd->data[0] = data;
  if (nr == UBLK_CMD_GET_FEATURES || u->ioctl_encode)
    sqe->cmd_op = writes ? CTRL_RW (nr) : CTRL_R (nr);
  else
    sqe->cmd_op = nr;
  r = io_uring_submit_and_wait (&u->ctrl, 1);
  if (r < 0)
    return r;
  r = io_uring_peek_cqe (&u->ctrl, &cqe);
  if (r < 0)
    return r;
  r = cqe->res;
  io_uring_cqe_seen (&u->ctrl, cqe);
  return r;
}

/* The byte offset on /dev/ublkcN of tag's data in queue q_id. */
static off_t
ublk_pos (unsigned q_id, unsigned tag)
{
  return UBLKSRV_IO_BUF_OFFSET + ((off_t) q_id << UBLK_QID_OFF) +
    ((off_t) tag << UBLK_TAG_OFF);
}

/* pread/pwrite on /dev/ublkcN until done: the kernel may copy less than
 * asked when the request's pages are not contiguous.
 */
static int
user_copy (int fd, bool to_kernel, char *buf, uint32_t len, off_t pos)
{
  while (len > 0) {
    ssize_t n = to_kernel ? pwrite (fd, buf, len, pos)
                          : pread (fd, buf, len, pos);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return n < 0 ? -errno : -EIO;
    buf += n;
    pos += n;
    len -= n;
  }
  return 0;
}

/* Discard or write-zeroes over a 64-bit byte count. */
static int
free_range (struct zram *zram, bool zero, uint64_t off, uint64_t len)
{
  int r = 0;

  while (len > 0 && r == 0) {
    uint32_t n = len > MAX_DISCARD ? MAX_DISCARD : len;
    r = zero ? zram_write_zeroes (zram, n, off) : zram_discard (zram, n, off);
    off += n;
    len -= n;
  }
  return r;
}

/* Serves tag's request; the result for COMMIT: bytes done, 0 or -errno. */
static int
serve (struct ublk_queue *q, unsigned tag)
{
  struct ublk_dev *d = q->dev;
  struct zram *zram = d->u->zram;
  const struct ublksrv_io_desc *iod = &q->descs[tag];
  uint64_t off = iod->start_sector << 9;
  uint64_t len = (uint64_t) iod->nr_sectors << 9;
  char *buf = d->user_copy ? q->bufs : q->bufs + (size_t) tag * MAX_IO;
  int r;

  switch (ublksrv_get_op (iod)) {
  case UBLK_IO_OP_READ:
    if (len > MAX_IO)
      return -EINVAL;
    r = zram_read (zram, buf, len, off);
    if (r == 0 && d->user_copy)
      r = user_copy (d->cdev_fd, true, buf, len, ublk_pos (q->q_id, tag));
    return r < 0 ? r : (int) len;
  case UBLK_IO_OP_WRITE:
    if (len > MAX_IO)
      return -EINVAL;
    r = 0;
    if (d->user_copy)
      r = user_copy (d->cdev_fd, false, buf, len, ublk_pos (q->q_id, tag));
    if (r == 0)
      r = zram_write (zram, buf, len, off);
    return r < 0 ? r : (int) len;
  case UBLK_IO_OP_FLUSH:
    return zram_flush (zram);
  case UBLK_IO_OP_DISCARD:
    return free_range (zram, false, off, len);
  case UBLK_IO_OP_WRITE_ZEROES:
    return free_range (zram, true, off, len);
  default:
    return -EOPNOTSUPP;
  }
}

/* Queues tag's FETCH_REQ (result < 0 is not used) or COMMIT_AND_FETCH_REQ
 * with result.  The SQ holds QUEUE_DEPTH + 1, so there is always room.
 */
static void
queue_cmd (struct ublk_queue *q, unsigned tag, bool commit, int result)
{
  struct ublk_dev *d = q->dev;
  struct io_uring_sqe *sqe = io_uring_get_sqe (&q->ring);
  struct ublksrv_io_cmd *cmd;
  unsigned nr = commit ? UBLK_IO_COMMIT_AND_FETCH_REQ : UBLK_IO_FETCH_REQ;

  io_uring_prep_rw (IORING_OP_URING_CMD, sqe, d->cdev_fd, NULL, 0, 0);
  memset (sqe->cmd, 0, sizeof *cmd);
  cmd = (struct ublksrv_io_cmd *) sqe->cmd;
  cmd->q_id = q->q_id;
  cmd->tag = tag;
  cmd->result = result;
  cmd->addr = d->user_copy ? 0 : (uintptr_t) (q->bufs + (size_t) tag * MAX_IO);
  sqe->cmd_op = d->u->ioctl_encode ? IO_RW (nr) : nr;
  io_uring_sqe_set_data64 (sqe, tag);
}

static void
queue_ready (struct ublk_queue *q, int ready)
{
  pthread_mutex_lock (&q->dev->lock);
  q->ready = ready;
  pthread_cond_broadcast (&q->dev->cond);
  pthread_mutex_unlock (&q->dev->lock);
}

static void *
queue_thread (void *arg)
{
  struct ublk_queue *q = arg;
  struct ublk_dev *d = q->dev;
  struct io_uring_params p = {
    .flags = IORING_SETUP_SQE128 | IORING_SETUP_COOP_TASKRUN |
             IORING_SETUP_SINGLE_ISSUER,
  };
  struct io_uring_cqe *cqe;
  struct io_uring_sqe *sqe;
  unsigned tag, head, seen, active = QUEUE_DEPTH, served = 0;
  bool stopping = false;
  int r;

  io_flusher ();
  zram_prepare_thread (d->u->zram);
  if (q->have_cpus)
    pthread_setaffinity_np (pthread_self (), sizeof q->cpus, &q->cpus);
  /* One more entry than tags, for the stop poll. */
  r = io_uring_queue_init_params (QUEUE_DEPTH + 1, &q->ring, &p);
  if (r == -EINVAL) {           /* before Linux 6.0: no SINGLE_ISSUER */
    p = (struct io_uring_params) { .flags = IORING_SETUP_SQE128 };
    r = io_uring_queue_init_params (QUEUE_DEPTH + 1, &q->ring, &p);
  }
  if (r < 0) {
    errno = -r;
    nbdkit_error ("ublk: queue %u: io_uring_queue_init: %m", q->q_id);
    queue_ready (q, -1);
    return NULL;
  }
  for (tag = 0; tag < QUEUE_DEPTH; tag++)
    queue_cmd (q, tag, false, 0);
  sqe = io_uring_get_sqe (&q->ring);
  io_uring_prep_poll_add (sqe, d->stop_fd, POLLIN);
  io_uring_sqe_set_data64 (sqe, STOP_DATA);
  r = io_uring_submit (&q->ring);
  if (r != QUEUE_DEPTH + 1) {
    errno = r < 0 ? -r : EIO;
    nbdkit_error ("ublk: queue %u: submitting FETCH_REQ: %m", q->q_id);
    io_uring_queue_exit (&q->ring);
    queue_ready (q, -1);
    return NULL;
  }
  queue_ready (q, 1);

  while (!stopping && active > 0) {
    r = io_uring_submit_and_wait (&q->ring, 1);
    if (r < 0 && r != -EINTR && r != -EAGAIN && r != -EBUSY) {
      errno = -r;
      nbdkit_error ("ublk: queue %u: io_uring_submit_and_wait: %m",
                    q->q_id);
      break;
    }
    seen = 0;
    io_uring_for_each_cqe (&q->ring, head, cqe) {
      uint64_t data = io_uring_cqe_get_data64 (cqe);
      seen++;
      if (data == STOP_DATA) {
        stopping = true;
        continue;
      }
      tag = data;
      if (cqe->res == UBLK_IO_RES_OK) {
        queue_cmd (q, tag, true, serve (q, tag));
        served++;
      }
      else {
        /* UBLK_IO_RES_ABORT: the device is going; anything else is a
         * command the kernel refused.  Either way this tag is done.
         */
        if (cqe->res != UBLK_IO_RES_ABORT)
          nbdkit_debug ("ublk: queue %u tag %u: %s", q->q_id, tag,
                        strerror (-cqe->res));
        active--;
      }
    }
    io_uring_cq_advance (&q->ring, seen);
  }
  /* Outstanding commands are cancelled as the ring goes. */
  io_uring_queue_exit (&q->ring);
  nbdkit_debug ("ublk: queue %u: served %u requests", q->q_id, served);
  return NULL;
}

/* Unmaps the queues' descriptors (each mapping holds /dev/ublkcN open,
 * and DEL_DEV waits for its last close) and buffers.
 */
static void
unmap_queues (struct ublk_dev *d)
{
  unsigned i;

  for (i = 0; d->queues && i < d->nr_queues; i++) {
    struct ublk_queue *q = &d->queues[i];
    if (q->descs)
      munmap (q->descs, q->descs_len);
    if (q->bufs)
      munmap (q->bufs, q->bufs_len);
    q->descs = NULL;
    q->bufs = NULL;
  }
}

static void
dev_free (struct ublk_dev *d)
{
  if (!d)
    return;
  unmap_queues (d);
  free (d->queues);
  if (d->cdev_fd >= 0)
    close (d->cdev_fd);
  if (d->stop_fd >= 0)
    close (d->stop_fd);
  pthread_mutex_destroy (&d->lock);
  pthread_cond_destroy (&d->cond);
  free (d);
}

/* Wakes and joins every queue thread.  The block device must be stopped
 * (or never started): a thread that leaves would strand its requests.
 */
static void
join_queues (struct ublk_dev *d)
{
  unsigned i;

  if (d->stop_fd >= 0 &&
      eventfd_write (d->stop_fd, 1) == -1)
    nbdkit_error ("ublk: eventfd_write: %m");
  for (i = 0; i < d->nr_queues; i++)
    if (d->queues[i].thread_started) {
      pthread_join (d->queues[i].thread, NULL);
      d->queues[i].thread_started = false;
    }
}

/* Stops and deletes d, then frees it.  Call with u->lock held. */
static void
dev_delete (struct ublk *u, struct ublk_dev *d)
{
  int r;

  if (d->started) {
    r = ctrl_cmd (u, UBLK_CMD_STOP_DEV, true, d->dev_id, 0, NULL, 0, 0);
    if (r < 0)
      nbdkit_error ("ublk: STOP_DEV %d: %s", d->dev_id, strerror (-r));
  }
  join_queues (d);
  /* DEL_DEV waits for /dev/ublkcN to be closed, mappings included. */
  unmap_queues (d);
  if (d->cdev_fd >= 0) {
    close (d->cdev_fd);
    d->cdev_fd = -1;
  }
  r = ctrl_cmd (u, UBLK_CMD_DEL_DEV, true, d->dev_id, 0, NULL, 0, 0);
  if (r < 0)
    nbdkit_error ("ublk: DEL_DEV %d: %s", d->dev_id, strerror (-r));
  else
    nbdkit_debug ("ublk: deleted /dev/ublkb%d", d->dev_id);
  dev_free (d);
}

static bool node_open_anywhere (dev_t rdev, bool blk);

/* Whether pid is a live process: a zombie is not (a killed server
 * stays one until its parent reaps it).
 */
static bool
process_alive (pid_t pid)
{
  char path[64], buf[512], *p;
  FILE *f;
  bool alive = false;

  snprintf (path, sizeof path, "/proc/%d/stat", (int) pid);
  f = fopen (path, "re");
  if (!f)
    return errno != ENOENT;
  if (fgets (buf, sizeof buf, f) && (p = strrchr (buf, ')')) != NULL)
    alive = p[1] == ' ' && p[2] != 'Z' && p[2] != 'X';
  fclose (f);
  return alive;
}

/* Deletes the devices a killed server left: dead, with no recovery, its
 * server's process gone and /dev/ublkcN open nowhere.  Anyone's, not only this plugin's: such a
 * device can serve nothing, and without a ublk tool (ublksrv is not
 * packaged everywhere) nothing else would delete it.
 */
static void
sweep_dead (struct ublk *u)
{
  DIR *dir = opendir ("/sys/class/ublk-char");
  struct dirent *e;

  if (!dir)
    return;
  while ((e = readdir (dir)) != NULL) {
    struct ublksrv_ctrl_dev_info info = { 0 };
    char path[64];
    struct stat st;
    int id;

    if (sscanf (e->d_name, "ublkc%d", &id) != 1)
      continue;
    if (ctrl_cmd (u, UBLK_CMD_GET_DEV_INFO, false, id, 0, &info,
                  sizeof info, 0) < 0)
      continue;
    /* The kernel sets the pid to -1 when the server goes; a server
     * still setting its device up has /dev/ublkcN open.
     */
    snprintf (path, sizeof path, "/dev/ublkc%d", id);
    if (info.state != UBLK_S_DEV_DEAD ||
        (info.flags & UBLK_F_USER_RECOVERY) ||
        (info.ublksrv_pid > 0 && process_alive (info.ublksrv_pid)) ||
        stat (path, &st) == -1 || node_open_anywhere (st.st_rdev, false)) {
      nbdkit_debug ("ublk: /dev/ublkc%d: state %u, server pid %d: kept",
                    id, info.state, info.ublksrv_pid);
      continue;
    }
    if (ctrl_cmd (u, UBLK_CMD_DEL_DEV, true, id, 0, NULL, 0, 0) == 0)
      nbdkit_debug ("ublk: deleted /dev/ublkc%d, left by pid %d", id,
                    info.ublksrv_pid);
  }
  closedir (dir);
}

/* Maps a queue's descriptors and buffers. */
static int
queue_map (struct ublk_dev *d, struct ublk_queue *q)
{
  long page = sysconf (_SC_PAGESIZE);
  size_t max_descs = (UBLK_MAX_QUEUE_DEPTH * sizeof *q->descs + page - 1)
                     / page * page;
  void *p;

  q->descs_len = (QUEUE_DEPTH * sizeof *q->descs + page - 1) / page * page;
  p = mmap (NULL, q->descs_len, PROT_READ, MAP_SHARED | MAP_POPULATE,
            d->cdev_fd, UBLKSRV_CMD_BUF_OFFSET + (off_t) q->q_id * max_descs);
  if (p == MAP_FAILED) {
    nbdkit_error ("ublk: mmap /dev/ublkc%d queue %u: %m", d->dev_id,
                  q->q_id);
    return -1;
  }
  q->descs = p;
  /* Anonymous and unreserved: only what requests touch becomes memory
   * (and is locked by mlock=true's MCL_ONFAULT).  User copy's one buffer
   * is faulted in now, so that no request, swap's included, waits for a
   * page fault on it (seen in a guest: the pread of a swap write's data,
   * stuck in reclaim on the buffer's first touch).  Not MAP_POPULATE: the
   * kernel skips it on an MCL_ONFAULT mapping.  Per-tag buffers are too
   * large for that.
   */
  q->bufs_len = d->user_copy ? MAX_IO : (size_t) QUEUE_DEPTH * MAX_IO;
  p = mmap (NULL, q->bufs_len, PROT_READ | PROT_WRITE,
            MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) {
    nbdkit_error ("ublk: mmap buffers: %m");
    return -1;
  }
  q->bufs = p;
  if (d->user_copy)
    zram_touch_pages (p, q->bufs_len);
  return 0;
}

/* Adds, configures and starts the block device.  Call with u->lock
 * held and the engine initialised.  0, or -1 after nbdkit_error.
 */
static int
dev_add (struct ublk *u)
{
  struct ublksrv_ctrl_dev_info info = { 0 };
  struct ublk_params params = { 0 };
  struct ublk_dev *d;
  char path[64];
  uint64_t disksize;
  uint32_t want;
  long ncpus = sysconf (_SC_NPROCESSORS_CONF);
  unsigned i;
  int r, err = 0;

  sweep_dead (u);
  d = calloc (1, sizeof *d);
  if (!d) {
    nbdkit_error ("calloc: %m");
    return -1;
  }
  d->u = u;
  d->dev_id = -1;
  d->cdev_fd = d->stop_fd = -1;
  pthread_mutex_init (&d->lock, NULL);
  pthread_cond_init (&d->cond, NULL);
  d->user_copy = (u->features & UBLK_F_USER_COPY) != 0 &&
                 !zram_debug_ublk_tag_buffers;
  d->nr_queues = ncpus < 1 ? 1 : ncpus > 64 ? 64 : ncpus;

  r = zram_get (u->zram);
  if (r < 0) {
    nbdkit_error ("ublk: the device is not initialised");
    dev_free (d);
    return -1;
  }
  disksize = zram_disksize (u->zram);

  info.nr_hw_queues = d->nr_queues;
  info.queue_depth = QUEUE_DEPTH;
  info.max_io_buf_bytes = MAX_IO;
  info.flags = (d->user_copy ? UBLK_F_USER_COPY : 0) |
               (u->ioctl_encode ? UBLK_F_CMD_IOCTL_ENCODE : 0);
  /* The number the last one had, as zram keeps /dev/zramN across reset
   * (and a refused hot_remove brings the same one back), unless taken
   * since: then whatever the kernel chooses.
   */
  want = u->last_dev_id >= 0 ? (uint32_t) u->last_dev_id : UINT32_MAX;
  for (;;) {
    info.dev_id = want;
    r = ctrl_cmd (u, UBLK_CMD_ADD_DEV, true, want, UINT16_MAX, &info,
                  sizeof info, 0);
    if (r != -EEXIST || want == UINT32_MAX)
      break;
    want = UINT32_MAX;
  }
  if (r < 0) {
    nbdkit_error ("ublk: ADD_DEV: %s", strerror (-r));
    zram_put (u->zram);
    dev_free (d);
    return -1;
  }
  d->dev_id = info.dev_id;
  u->last_dev_id = d->dev_id;

  params.len = sizeof params;
  params.types = UBLK_PARAM_TYPE_BASIC | UBLK_PARAM_TYPE_DISCARD;
  /* A write cache only so that flushes reach the engine, as NBD's do;
   * a write is in memory when it completes, so FUA needs nothing.
   */
  params.basic.attrs = UBLK_ATTR_VOLATILE_CACHE | UBLK_ATTR_FUA;
  params.basic.logical_bs_shift = ZRAM_BLOCK_SHIFT;
  params.basic.physical_bs_shift = ZRAM_BLOCK_SHIFT;
  params.basic.io_opt_shift = ZRAM_BLOCK_SHIFT;
  params.basic.io_min_shift = ZRAM_BLOCK_SHIFT;
  params.basic.max_sectors = MAX_IO >> 9;
  params.basic.dev_sectors = disksize >> 9;
  params.discard.discard_granularity = ZRAM_BLOCK_SIZE;
  params.discard.max_discard_sectors = MAX_DISCARD >> 9;
  params.discard.max_write_zeroes_sectors = MAX_DISCARD >> 9;
  params.discard.max_discard_segments = 1;
  r = ctrl_cmd (u, UBLK_CMD_SET_PARAMS, true, d->dev_id, 0, &params,
                sizeof params, 0);
  if (r < 0) {
    nbdkit_error ("ublk: SET_PARAMS: %s", strerror (-r));
    goto fail;
  }

  snprintf (path, sizeof path, "/dev/ublkc%d", d->dev_id);
  /* udev may still be setting the node up; devtmpfs has made it. */
  for (i = 0; i < 1000; i++) {
    d->cdev_fd = open (path, O_RDWR | O_CLOEXEC);
    if (d->cdev_fd >= 0 || errno != ENOENT)
      break;
    usleep (1000);
  }
  if (d->cdev_fd < 0) {
    nbdkit_error ("ublk: open %s: %m", path);
    goto fail;
  }
  d->stop_fd = eventfd (0, EFD_CLOEXEC);
  if (d->stop_fd < 0) {
    nbdkit_error ("ublk: eventfd: %m");
    goto fail;
  }
  d->queues = calloc (d->nr_queues, sizeof *d->queues);
  if (!d->queues) {
    nbdkit_error ("calloc: %m");
    goto fail;
  }
  for (i = 0; i < d->nr_queues; i++) {
    struct ublk_queue *q = &d->queues[i];
    q->dev = d;
    q->q_id = i;
    if (queue_map (d, q) == -1)
      goto fail;
    q->have_cpus = ctrl_cmd (u, UBLK_CMD_GET_QUEUE_AFFINITY, false,
                             d->dev_id, i, &q->cpus, sizeof q->cpus, 0) >= 0;
  }
  for (i = 0; i < d->nr_queues; i++) {
    err = pthread_create (&d->queues[i].thread, NULL, queue_thread,
                          &d->queues[i]);
    if (err) {
      errno = err;
      nbdkit_error ("ublk: pthread_create: %m");
      goto fail;
    }
    d->queues[i].thread_started = true;
  }
  /* START_DEV waits in the kernel for every tag's FETCH_REQ: make sure
   * each thread got that far, or it would wait for ever.
   */
  pthread_mutex_lock (&d->lock);
  for (i = 0; i < d->nr_queues; i++) {
    while (d->queues[i].ready == 0)
      pthread_cond_wait (&d->cond, &d->lock);
    if (d->queues[i].ready < 0)
      err = -1;
  }
  pthread_mutex_unlock (&d->lock);
  if (err)
    goto fail;
  r = ctrl_cmd (u, UBLK_CMD_START_DEV, true, d->dev_id, 0, NULL, 0,
                getpid ());
  if (r < 0) {
    nbdkit_error ("ublk: START_DEV: %s", strerror (-r));
    goto fail;
  }
  d->started = true;
  set_dev (u, d);
  nbdkit_debug ("ublk: /dev/ublkb%d: %" PRIu64 " bytes, %u queues of %u, "
                "%s", d->dev_id, disksize, d->nr_queues, QUEUE_DEPTH,
                d->user_copy ? "user copy (pread/pwrite on /dev/ublkcN)"
                             : "per-tag buffers");
  return 0;

 fail:
  dev_delete (u, d);
  zram_put (u->zram);
  return -1;
}

struct ublk *
ublk_start (struct zram *zram, enum ublk_mode mode)
{
  struct ublk *u;
  const char *why;
  int r;

  u = calloc (1, sizeof *u);
  if (!u) {
    nbdkit_error ("calloc: %m");
    return NULL;
  }
  u->zram = zram;
  u->mode = mode;
  u->ctrl_fd = -1;
  u->dev_id = u->last_dev_id = -1;
  pthread_mutex_init (&u->lock, NULL);
  if (mode == UBLK_OFF)
    return u;

  why = ublk_unusable ();
  if (why) {
    if (mode == UBLK_ON) {
      nbdkit_error ("ublk=on: %s", why);
      goto fail;
    }
    nbdkit_debug ("ublk: not used: %s", why);
    u->mode = UBLK_OFF;
    return u;
  }
  u->ctrl_fd = open (UBLK_CONTROL, O_RDWR | O_CLOEXEC);
  if (u->ctrl_fd < 0) {
    if (mode == UBLK_ON) {
      nbdkit_error ("ublk=on: open " UBLK_CONTROL ": %m");
      goto fail;
    }
    nbdkit_debug ("ublk: not used: open " UBLK_CONTROL ": %m");
    u->mode = UBLK_OFF;
    return u;
  }
  r = io_uring_queue_init (4, &u->ctrl, IORING_SETUP_SQE128);
  if (r < 0) {
    errno = -r;
    nbdkit_error ("ublk: io_uring_queue_init: %m");
    close (u->ctrl_fd);
    u->ctrl_fd = -1;
    goto fail;
  }
  pthread_mutex_lock (&u->lock);
  r = ctrl_cmd (u, UBLK_CMD_GET_FEATURES, false, UINT32_MAX, 0,
                &u->features, sizeof u->features, 0);
  if (r < 0) {
    nbdkit_debug ("ublk: GET_FEATURES: %s: an old kernel, old commands",
                  strerror (-r));
    u->features = 0;
  }
  u->ioctl_encode = (u->features & UBLK_F_CMD_IOCTL_ENCODE) != 0;
  nbdkit_debug ("ublk: kernel features %#" PRIx64, u->features);
  r = 0;
  if (zram_initialised (zram))
    r = dev_add (u);
  pthread_mutex_unlock (&u->lock);
  if (r == -1 && mode == UBLK_ON) {
    ublk_stop (u);
    return NULL;
  }
  return u;

 fail:
  pthread_mutex_destroy (&u->lock);
  free (u);
  return NULL;
}

void
ublk_initialised (struct ublk *u)
{
  if (!u || u->mode == UBLK_OFF)
    return;
  pthread_mutex_lock (&u->lock);
  if (!u->dev && zram_initialised (u->zram))
    dev_add (u);
  pthread_mutex_unlock (&u->lock);
}

/* Whether any process has the device node rdev (a block device if blk,
 * else a character device) open: its /proc/[pid]/fd, as fuser looks.
 */
static bool
node_open_anywhere (dev_t rdev, bool blk)
{
  char path[PATH_MAX];
  DIR *proc, *fds;
  struct dirent *p, *f;
  bool used = false;

  proc = opendir ("/proc");
  if (!proc)
    return false;
  while (!used && (p = readdir (proc)) != NULL) {
    if (p->d_name[0] < '1' || p->d_name[0] > '9')
      continue;
    snprintf (path, sizeof path, "/proc/%s/fd", p->d_name);
    fds = opendir (path);
    if (!fds)
      continue;
    while (!used && (f = readdir (fds)) != NULL) {
      struct stat st;
      if (f->d_name[0] == '.')
        continue;
      if (fstatat (dirfd (fds), f->d_name, &st, 0) == 0 &&
          (blk ? S_ISBLK (st.st_mode) : S_ISCHR (st.st_mode)) &&
          st.st_rdev == rdev)
        used = true;
    }
    closedir (fds);
  }
  closedir (proc);
  return used;
}

/* Whether anything holds the block device dev: see the top of the file. */
static bool
ublk_in_use (int dev_id)
{
  char path[64];
  struct stat st;
  int fd;

  snprintf (path, sizeof path, "/dev/ublkb%d", dev_id);
  if (stat (path, &st) == -1 || !S_ISBLK (st.st_mode))
    return false;
  fd = open (path, O_RDONLY | O_EXCL | O_CLOEXEC);
  if (fd == -1)
    return errno == EBUSY;
  close (fd);
  return node_open_anywhere (st.st_rdev, true);
}

int
ublk_release (struct ublk *u)
{
  int r = 0;

  if (!u)
    return 0;
  pthread_mutex_lock (&u->lock);
  if (u->dev) {
    if (ublk_in_use (u->dev->dev_id))
      r = -EBUSY;
    else {
      dev_delete (u, u->dev);
      set_dev (u, NULL);
      zram_put (u->zram);
    }
  }
  pthread_mutex_unlock (&u->lock);
  return r;
}

void
ublk_stop (struct ublk *u)
{
  if (!u)
    return;
  pthread_mutex_lock (&u->lock);
  if (u->dev) {
    dev_delete (u, u->dev);
    set_dev (u, NULL);
    zram_put (u->zram);
  }
  pthread_mutex_unlock (&u->lock);
  if (u->ctrl_fd >= 0) {
    io_uring_queue_exit (&u->ctrl);
    close (u->ctrl_fd);
  }
  pthread_mutex_destroy (&u->lock);
  free (u);
}

int
ublk_dev_id (struct ublk *u)
{
  return u ? __atomic_load_n (&u->dev_id, __ATOMIC_RELAXED) : -1;
}

#endif /* HAVE_LIBURING */
