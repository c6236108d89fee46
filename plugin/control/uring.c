/* uzram control filesystem: FUSE over io_uring (see uring.h).
 *
 * The kernel's side (fs/fuse/dev_uring.c, Linux 6.14+):
 *
 *   - The server accepts by setting FUSE_OVER_IO_URING in its INIT reply
 *     (only if the kernel offered it: FUSE_INIT_EXT and flags2 bit 9).
 *     From then on the kernel holds every new request (fuse_block_alloc)
 *     until the ring is ready: each possible CPU's queue has at least one
 *     entry registered.  A REGISTER that fails clears the connection's
 *     io_uring flag and releases them to /dev/fuse; so does
 *     uring_poison() below, for failures of our own after the reply.
 *   - A request goes to the queue of the CPU its sender runs on.  It is
 *     copied into an available entry: fuse_in_header into the header's
 *     in_out, the opcode's fixed argument (in_args[0]) into op_in, the
 *     rest into the payload buffer, payload_sz and commit_id (the
 *     request's unique) into ring_ent_in_out; then the entry's command
 *     completes (CQE res 0).
 *   - COMMIT_AND_FETCH answers it: fuse_out_header in in_out, the reply's
 *     arguments in the payload, their size in payload_sz; the same
 *     command then waits for the next request.
 *   - Forgets, interrupts and notifications stay on /dev/fuse, so the
 *     classic loop keeps running beside the rings.
 *   - When the connection is aborted, waiting commands complete with
 *     -ENOTCONN, and a commit for a torn-down entry fails with it: every
 *     queue thread sees each of its entries end, and exits.
 *
 * Ours: uring_threads= threads per possible CPU's queue (1 by default),
 * each with its own ring (SQE128, for the command's 80-byte area) and
 * URING_QUEUE_DEPTH / threads entries registered on that queue.  An
 * entry's memory is one page for its header, then the payload buffer:
 *
 *   | fuse_uring_req_header ...  [in_header op_in] | payload ............ |
 *   ^ hdr (kernel)               ^ rebuilt here    ^ payload (kernel)
 *
 * Before dispatch the thread copies fuse_in_header and op_in to just
 * below the payload, so that the whole request lies in one piece, as
 * read(2) from /dev/fuse would have left it, with no copy of the payload:
 * that is what fuse_session_process_buf() takes.  The length of op_in is
 * the request's len less the header and payload_sz (the kernel sets len
 * for every request), so no table of opcodes is needed.
 *
 * Replies come back through libfuse's fuse_send_msg() to the custom
 * writev: the thread marks the entry it is serving (cur_ent, a thread
 * local that never leaves this file: the handlers reach the entry only
 * through uring_reply_buffer, with their session's struct uring), and a
 * reply whose unique is that entry's is copied into the entry instead of
 * being written to /dev/fuse.  Everything else
 * (notifications, replies to requests read from /dev/fuse) goes to the
 * fd.  This needs every handler to reply before it returns, which all of
 * handlers.c's do; a request left unanswered gets EIO, and says so.
 *
 * The batch: a thread takes every completed entry, serves each, queues
 * its COMMIT_AND_FETCH, and submits them all in the io_uring_enter that
 * waits for the next; after a batch of writes, that waits for two
 * requests for a few microseconds (ring_wait).
 *
 * A read of `disk` goes straight into the entry's payload
 * (uring_reply_buffer), so the reply has nothing left to copy.
 *
 * Still to do: registered buffers.
 */
#include <config.h>

#define FUSE_USE_VERSION 312

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <poll.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>

#include <fuse_lowlevel.h>
#include <linux/fuse.h>

#ifdef HAVE_LIBURING
#include <sys/eventfd.h>
#include <liburing.h>
#endif

#if defined __has_include
#if __has_include (<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#endif
#endif
#ifndef RUNNING_ON_VALGRIND
#define RUNNING_ON_VALGRIND 0
#endif

#define NBDKIT_API_VERSION 2
#include <nbdkit-plugin.h>

#include "control/uring.h"
#include "io_flusher.h"
#include "parse.h"

#define ENABLE_URING_PARAM "/sys/module/fuse/parameters/enable_uring"

int
uring_parse_mode (const char *s, enum uring_mode *mode)
{
  bool is_auto, on;

  if (zram_parse_auto_bool (s, &is_auto, &on) < 0)
    return -1;
  *mode = is_auto ? URING_AUTO : on ? URING_ON : URING_OFF;
  return 0;
}

int
uring_kernel_enabled (void)
{
  char c = 0;
  int fd = open (ENABLE_URING_PARAM, O_RDONLY | O_CLOEXEC);

  if (fd == -1)
    return -1;
  if (read (fd, &c, 1) != 1)
    c = 0;
  close (fd);
  return c == 'Y' || c == 'y' || c == '1';
}

#ifndef HAVE_LIBURING

/* Built without liburing: the classic loop only. */
struct uring { int unused; };

const char *
uring_unusable (void)
{
  return "this plugin was built without liburing";
}
struct uring *
uring_new (struct fuse_session *se, const struct uring_opts *opts)
{
  (void) se; (void) opts;
  return NULL;
}
ssize_t
uring_io_read (struct uring *u, int fd, void *buf, size_t len)
{
  (void) u;
  return read (fd, buf, len);
}
ssize_t
uring_io_writev (struct uring *u, int fd, struct iovec *iov, int count)
{
  (void) u;
  return writev (fd, iov, count);
}
void *
uring_reply_buffer (struct uring *u, size_t size)
{
  (void) u; (void) size;
  return NULL;
}
struct uring_ent *uring_hold (struct uring *u) { (void) u; return NULL; }
void uring_held_begin (struct uring_ent *e) { (void) e; }
void uring_held_end (struct uring_ent *e) { (void) e; }
bool uring_offered (struct uring *u) { (void) u; return false; }
uint64_t uring_requests (struct uring *u) { (void) u; return 0; }
void uring_free (struct uring *u) { (void) u; }

#else /* HAVE_LIBURING */

/* What Debian 12's <linux/fuse.h> (7.37) lacks, as Linux 6.18's
 * include/uapi/linux/fuse.h (7.42 added them) defines it.
 */
#ifndef FUSE_OVER_IO_URING
#define FUSE_OVER_IO_URING (1ULL << 41)
#endif
#ifndef FUSE_URING_IN_OUT_HEADER_SZ
#define FUSE_URING_IN_OUT_HEADER_SZ 128
#define FUSE_URING_OP_IN_OUT_SZ 128

struct fuse_uring_ent_in_out {
  uint64_t flags;
  uint64_t commit_id;         /* the request's unique, for the commit */
  uint32_t payload_sz;        /* bytes in the payload, either way */
  uint32_t padding;
  uint64_t reserved;
};

struct fuse_uring_req_header {
  char in_out[FUSE_URING_IN_OUT_HEADER_SZ];   /* fuse_in/out_header */
  char op_in[FUSE_URING_OP_IN_OUT_SZ];        /* the opcode's in_args[0] */
  struct fuse_uring_ent_in_out ring_ent_in_out;
};

enum fuse_uring_cmd {
  FUSE_IO_URING_CMD_INVALID = 0,
  FUSE_IO_URING_CMD_REGISTER = 1,
  FUSE_IO_URING_CMD_COMMIT_AND_FETCH = 2,
};

/* In the SQE's 80-byte command area. */
struct fuse_uring_cmd_req {
  uint64_t flags;
  uint64_t commit_id;
  uint16_t qid;
  uint8_t padding[6];
};
#endif

_Static_assert (sizeof (struct fuse_uring_req_header) == 288,
                "fuse_uring_req_header as in Linux 6.18");
_Static_assert (sizeof (struct fuse_uring_cmd_req) == 24,
                "fuse_uring_cmd_req as in Linux 6.18");
_Static_assert (offsetof (struct fuse_init_out, flags2) == 32,
                "fuse_init_out.flags2");
_Static_assert (offsetof (struct fuse_init_in, flags2) == 16,
                "fuse_init_in.flags2");

/* Requests in flight per kernel queue (so 32 for queue depth 32 on 2
 * CPUs), shared out among the queue's threads (uring_threads=, 1 to
 * URING_THREADS_MAX), each with its own ring.  The kernel hands a new
 * request to the entry that became free last (fs/fuse/dev_uring.c puts
 * free entries at the head of its list), so with one thread per queue a
 * busy thread finds the next requests waiting when it asks for more,
 * without sleeping; with two, the idle one is often woken instead.  But
 * a loop device's requests mostly come from one CPU at a time, so one
 * thread per queue serves them all on one CPU at a time.  One thread of
 * 16 entries beat two of 8 at 4 KiB and lost at 128 KiB sequential
 * reads; pinning a thread to its queue's CPU cost sequential I/O
 * (fio-jobs/README.md has the figures).
 */
#define URING_QUEUE_DEPTH 16

/* After a wake that brought two requests or more, writes among them, a
 * thread asks to be woken for two, or for one after this long: one wake
 * and one batch of commits (one completion softirq) for two writes.
 * Writes cost the server a compression each and keep it busy, so the
 * next requests are usually already waiting; reads are cheap, and made
 * to wait they lose more in latency than the saved wake-ups give (so
 * reads are not paired; fio-jobs/README.md has the figures, and why not
 * longer).  Never at queue depth 1: a lone request never pairs.
 */
#define URING_PAIR_WAIT_US 5

/* IORING_ENTER_EXT_ARG's argument as Linux 6.12 has it (Debian 12's
 * headers call min_wait_usec "pad"), and the feature bit saying so.
 */
struct uring_getevents_arg {
  uint64_t sigmask;
  uint32_t sigmask_sz;
  uint32_t min_wait_usec;
  uint64_t ts;
};
#ifndef IORING_FEAT_MIN_TIMEOUT
#define IORING_FEAT_MIN_TIMEOUT (1U << 15)
#endif

/* An entry's header page: the kernel's header at its start, the request's
 * fuse_in_header and op_in rebuilt at its end, just below the payload.
 */
#define ENT_HEAD 4096

/* The kernel's FUSE_MIN_READ_BUFFER and FUSE_DEFAULT_MAX_PAGES_PER_REQ:
 * its payload size is max (8192, max_write, max_pages * 4096), with
 * max_pages 32 unless the INIT reply sets FUSE_MAX_PAGES.
 */
#define KERNEL_MIN_PAYLOAD 8192
#define KERNEL_DEFAULT_MAX_PAGES 32

/* user_data of the stop eventfd's poll and of the queue's wake
 * eventfd's (held entries answered); entries are their index.
 */
#define STOP_TAG UINT64_MAX
#define WAKE_TAG (UINT64_MAX - 1)

struct uring_ent {
  struct uring_queue *q;
  struct fuse_uring_req_header *hdr;
  char *payload;
  struct iovec iov[2];        /* REGISTER's {header, payload} */
  uint64_t unique;            /* the request being served */
  bool replied;
  bool held;                  /* answered by another thread (uring_hold) */
  struct uring_ent *next_done;  /* in q->done, answered, to commit */
};

struct uring_queue {
  struct uring *u;
  unsigned qid;                 /* the kernel's queue (a CPU) */
  unsigned idx;                 /* this ring among all of them */
  struct io_uring ring;
  bool ring_ok;
  bool need_enable;           /* created IORING_SETUP_R_DISABLED */
  bool min_wait_ok;           /* IORING_FEAT_MIN_TIMEOUT: ring_wait pairs */
  char *area;                 /* the entries' memory */
  size_t area_size;
  struct uring_ent ents[URING_QUEUE_DEPTH];
  unsigned nr_ents;           /* of ents[] in use: per thread's share */
  pthread_t thread;
  bool started;
  bool said_serving;
  /* Held entries answered by another thread, for this ring's thread to
   * commit: it alone may submit to its ring.  wake_fd (an eventfd it
   * polls) says there are some.
   */
  pthread_mutex_t done_lock;
  struct uring_ent *done;
  int wake_fd;
};

struct uring {
  struct fuse_session *se;
  enum uring_mode mode;
  bool debug;                       /* -D zram.control=1 */
  void (*on_failure) (void *arg);   /* see struct uring_opts */
  void *failure_arg;
  atomic_bool failed;               /* on_failure called */
  unsigned fail_after;              /* -D zram.ring_fail= */
  atomic_bool fail_injected;
  int fuse_fd;
  int stop_fd;                      /* eventfd: every queue thread exits */
  /* The INIT handshake: set by the classic worker that reads the INIT
   * request, read by the one that writes its reply.
   */
  _Atomic uint64_t init_unique;     /* 0: INIT not seen (yet) */
  atomic_bool offered;
  atomic_bool init_done;
  size_t payload;                   /* the kernel's max payload size */
  unsigned nr_queues;               /* the kernel's, one per possible CPU */
  unsigned threads;                 /* rings (threads) per queue */
  unsigned nr_rings;                /* threads per queue, times queues */
  struct uring_queue *queues;
  bool started;
  atomic_uint_fast64_t requests;
};

/* The entry this thread is serving, for uring_io_writev. */
static __thread struct uring_ent *cur_ent;

const char *
uring_unusable (void)
{
  /* valgrind (3.19) keeps its big lock across io_uring_enter, so a ring
   * thread waiting for requests stops every other thread, the one that
   * would register the other queues included: the kernel would hold
   * every request forever.
   */
  if (RUNNING_ON_VALGRIND)
    return "running under valgrind, whose threads stop while one waits "
           "in io_uring_enter";
  return NULL;
}

struct uring *
uring_new (struct fuse_session *se, const struct uring_opts *opts)
{
  struct uring *u = calloc (1, sizeof *u);

  if (!u)
    return NULL;
  u->se = se;
  u->mode = opts->mode;
  u->debug = opts->debug;
  u->on_failure = opts->on_failure;
  u->failure_arg = opts->arg;
  u->fail_after = opts->fail_after;
  u->threads = opts->threads >= 1 && opts->threads <= URING_THREADS_MAX
    ? opts->threads : URING_THREADS_DEFAULT;
  u->fuse_fd = fuse_session_fd (se);
  u->stop_fd = -1;
  return u;
}

void *
uring_reply_buffer (struct uring *u, size_t size)
{
  struct uring_ent *e = cur_ent;

  return u && e && e->q->u == u && size <= u->payload ? e->payload : NULL;
}

struct uring_ent *
uring_hold (struct uring *u)
{
  struct uring_ent *e = cur_ent;

  if (!u || !e || e->q->u != u)
    return NULL;
  e->held = true;
  return e;
}

void
uring_held_begin (struct uring_ent *e)
{
  if (e)
    cur_ent = e;
}

static void ring_reply_err (struct uring_ent *e, int err);

void
uring_held_end (struct uring_ent *e)
{
  struct uring_queue *q;
  uint64_t one = 1;

  if (!e)
    return;
  cur_ent = NULL;
  if (!e->replied) {
    nbdkit_error ("control: FUSE over io_uring: a held request was not "
                  "answered: answering EIO");
    ring_reply_err (e, EIO);
  }
  q = e->q;
  pthread_mutex_lock (&q->done_lock);
  e->next_done = q->done;
  q->done = e;
  pthread_mutex_unlock (&q->done_lock);
  /* Only fails if the counter would overflow, when a wake is pending. */
  if (write (q->wake_fd, &one, sizeof one) != sizeof one)
    nbdkit_debug ("control: FUSE over io_uring: eventfd write: %m");
}

bool
uring_offered (struct uring *u)
{
  return u && atomic_load (&u->offered);
}

uint64_t
uring_requests (struct uring *u)
{
  return u ? atomic_load (&u->requests) : 0;
}

/* Logs why the rings are not used: an error with uring=on, where the
 * user asked for them, otherwise a debug message.
 */
static void __attribute__ ((format (printf, 2, 3)))
uring_fail (struct uring *u, const char *fmt, ...)
{
  char msg[256];
  va_list ap;

  va_start (ap, fmt);
  vsnprintf (msg, sizeof msg, fmt, ap);
  va_end (ap);
  if (u->mode == URING_ON)
    nbdkit_error ("control: FUSE over io_uring: %s; serving over /dev/fuse",
                  msg);
  else
    nbdkit_debug ("control: FUSE over io_uring: %s; serving over /dev/fuse",
                  msg);
}

/* The number of possible CPUs, which is the kernel's number of queues
 * (num_possible_cpus).  /sys/devices/system/cpu/possible is a list of
 * ranges such as "0-3" or "0,2-5".
 */
static unsigned
possible_cpus (void)
{
  FILE *fp = fopen ("/sys/devices/system/cpu/possible", "re");
  unsigned n = 0, a, b;
  int c;

  if (!fp)
    return 0;
  for (;;) {
    if (fscanf (fp, "%u", &a) != 1)
      break;
    b = a;
    c = fgetc (fp);
    if (c == '-') {
      if (fscanf (fp, "%u", &b) != 1)
        break;
      c = fgetc (fp);
    }
    if (b >= a)
      n += b - a + 1;
    if (c != ',')
      break;
  }
  fclose (fp);
  return n;
}

static void
prep_cmd (struct uring_queue *q, struct io_uring_sqe *sqe, uint32_t op,
          struct uring_ent *e)
{
  struct fuse_uring_cmd_req *cr;

  memset (sqe, 0, 128);                 /* an SQE128 slot */
  sqe->opcode = IORING_OP_URING_CMD;
  sqe->fd = q->u->fuse_fd;
  sqe->cmd_op = op;
  sqe->user_data = e - q->ents;
  cr = (struct fuse_uring_cmd_req *) sqe->cmd;
  cr->qid = q->qid;
  if (op == FUSE_IO_URING_CMD_REGISTER) {
    sqe->addr = (uintptr_t) e->iov;
    sqe->len = 2;
  }
  else
    cr->commit_id = e->unique;
}

/* A free SQE; at most one per entry is queued between submits, and the
 * ring has room for all of them, so this only submits in a pinch.
 */
static struct io_uring_sqe *
get_sqe (struct io_uring *ring)
{
  struct io_uring_sqe *sqe;

  while ((sqe = io_uring_get_sqe (ring)) == NULL)
    io_uring_submit (ring);
  return sqe;
}

/* Makes the kernel give up waiting for the rings: a REGISTER for a queue
 * that does not exist fails, and a failed REGISTER clears the
 * connection's io_uring flag (fuse_uring_cmd), which releases the
 * requests held for the ring to /dev/fuse.  For failures after the INIT
 * reply accepted the offer.
 */
static void
uring_poison (struct uring *u)
{
  struct fuse_uring_req_header hdr;
  struct io_uring ring;
  struct io_uring_sqe *sqe;
  struct io_uring_cqe *cqe;
  struct uring_queue q = { .u = u, .qid = UINT16_MAX };
  static char payload[KERNEL_MIN_PAYLOAD];
  int r;

  r = io_uring_queue_init (2, &ring, IORING_SETUP_SQE128);
  if (r < 0) {
    nbdkit_error ("control: FUSE over io_uring: io_uring_queue_init: %s; "
                  "`disk` may hang", strerror (-r));
    return;
  }
  q.ents[0].hdr = &hdr;
  q.ents[0].iov[0] = (struct iovec) { &hdr, sizeof hdr };
  q.ents[0].iov[1] = (struct iovec) { payload, sizeof payload };
  sqe = get_sqe (&ring);
  prep_cmd (&q, sqe, FUSE_IO_URING_CMD_REGISTER, &q.ents[0]);
  r = io_uring_submit_and_wait (&ring, 1);
  if (r >= 0 && io_uring_peek_cqe (&ring, &cqe) == 0) {
    nbdkit_debug ("control: FUSE over io_uring: released the connection "
                  "to /dev/fuse (%s)", strerror (-cqe->res));
    io_uring_cqe_seen (&ring, cqe);
  }
  io_uring_queue_exit (&ring);
}

/* Copies a reply (fuse_out_header, then its arguments, as libfuse hands
 * it to writev) into the entry being served.
 */
static ssize_t
ring_reply (struct uring_ent *e, const struct iovec *iov, int count)
{
  struct fuse_out_header oh;
  size_t total = 0, cap = e->q->u->payload;
  int i;

  memcpy (&oh, iov[0].iov_base, sizeof oh);
  for (i = 0; i < count; i++) {
    const char *base = iov[i].iov_base;
    size_t len = iov[i].iov_len;

    if (i == 0) {
      base += sizeof oh;
      len -= sizeof oh;
    }
    if (len > cap - total) {
      errno = EINVAL;           /* libfuse says so; serve() answers EIO */
      return -1;
    }
    /* memmove: a reply may quote the request, which is in the payload.
     * Data already in place (uring_reply_buffer) is not copied at all.
     */
    if (base != e->payload + total)
      memmove (e->payload + total, base, len);
    total += len;
  }
  memcpy (e->hdr->in_out, &oh, sizeof oh);
  e->hdr->ring_ent_in_out.payload_sz = total;
  e->replied = true;
  return sizeof oh + total;
}

/* Answers the entry's request with -err, without libfuse. */
static void
ring_reply_err (struct uring_ent *e, int err)
{
  struct fuse_out_header oh = {
    .len = sizeof oh, .error = -err, .unique = e->unique,
  };

  memcpy (e->hdr->in_out, &oh, sizeof oh);
  e->hdr->ring_ent_in_out.payload_sz = 0;
  e->replied = true;
}

/* One request from the ring, through libfuse's dispatcher.  Returns its
 * opcode.
 */
static uint32_t
serve (struct uring_queue *q, struct uring_ent *e)
{
  struct uring *u = q->u;
  struct fuse_uring_req_header *h = e->hdr;
  struct fuse_in_header in;
  uint32_t psz = h->ring_ent_in_out.payload_sz;
  struct fuse_buf fb;
  size_t oplen;
  char *start;

  memcpy (&in, h->in_out, sizeof in);
  e->unique = h->ring_ent_in_out.commit_id;
  e->replied = false;
  if (in.len < sizeof in + (uint64_t) psz || psz > u->payload ||
      (oplen = in.len - sizeof in - psz) > FUSE_URING_OP_IN_OUT_SZ) {
    nbdkit_error ("control: FUSE over io_uring: request %" PRIu64
                  " opcode %" PRIu32 " has len %" PRIu32 " but a payload "
                  "of %" PRIu32 ": answering EIO", e->unique, in.opcode,
                  in.len, psz);
    ring_reply_err (e, EIO);
    return in.opcode;
  }
  start = e->payload - sizeof in - oplen;
  memcpy (start, &in, sizeof in);
  memcpy (start + sizeof in, h->op_in, oplen);
  memset (&fb, 0, sizeof fb);
  fb.mem = start;
  fb.size = in.len;

  if (!q->said_serving) {
    q->said_serving = true;
    nbdkit_debug ("control: FUSE over io_uring: queue %u serving (ring %u)",
                  q->qid, q->idx);
  }
  atomic_fetch_add_explicit (&u->requests, 1, memory_order_relaxed);
  cur_ent = e;
  fuse_session_process_buf (u->se, &fb);
  cur_ent = NULL;
  /* held first: a held entry's replied is the replying thread's. */
  if (!e->held && !e->replied) {
    nbdkit_error ("control: FUSE over io_uring: opcode %" PRIu32
                  " was not answered before its handler returned: "
                  "answering EIO", in.opcode);
    ring_reply_err (e, EIO);
  }
  return in.opcode;
}

/* Submits the queued commits and waits for requests: for one, or, with
 * pair, for two, but for one only once URING_PAIR_WAIT_US have passed
 * (IORING_ENTER_EXT_ARG's min_wait_usec, Linux 6.12).  Debian's liburing
 * 2.3 has no call for that, so the SQ tail is published here as its
 * io_uring_submit would.
 */
static int
ring_wait (struct uring_queue *q, bool pair)
{
  struct io_uring_sq *sq = &q->ring.sq;
  struct __kernel_timespec ts = { .tv_sec = 1 };
  struct uring_getevents_arg arg = {
    .sigmask_sz = _NSIG / 8, .min_wait_usec = URING_PAIR_WAIT_US,
    .ts = (uintptr_t) &ts,
  };
  unsigned tail;
  int r;

  /* The test hook: the system call, on no ring, fails as a broken ring's
   * would, and the commits queued stay unsent.
   */
  if (q->u->fail_after &&
      atomic_load (&q->u->requests) >= q->u->fail_after &&
      !atomic_exchange (&q->u->fail_injected, true)) {
    nbdkit_debug ("control: FUSE over io_uring: queue %u (ring %u): "
                  "failing io_uring_enter (-D zram.ring_fail)", q->qid,
                  q->idx);
    syscall (__NR_io_uring_enter, -1, 0, 1, IORING_ENTER_GETEVENTS, NULL, 0);
    return -errno;
  }
  if (!pair || !q->min_wait_ok)
    return io_uring_submit_and_wait (&q->ring, 1);
  tail = sq->sqe_tail;
  if (sq->sqe_head != tail) {
    sq->sqe_head = tail;
    io_uring_smp_store_release (sq->ktail, tail);
  }
  r = syscall (__NR_io_uring_enter, q->ring.ring_fd,
               tail - io_uring_smp_load_acquire (sq->khead), 2,
               IORING_ENTER_GETEVENTS | IORING_ENTER_EXT_ARG,
               &arg, sizeof arg);
  if (r == -1)
    return errno == ETIME ? 0 : -errno;
  return r;
}

static bool
is_teardown (int err)
{
  return err == ENOTCONN || err == ECONNABORTED || err == ECANCELED ||
         err == ENODEV;
}

/* A ring failed once serving: its entries may hold requests nobody will
 * answer, and new ones may still be routed to them, so that CPU's I/O
 * would wait forever.  Say so, and have the connection ended (once).
 */
static void
ring_failed (struct uring_queue *q, const char *why)
{
  struct uring *u = q->u;

  nbdkit_error ("control: FUSE over io_uring: queue %u (ring %u) failed "
                "(%s): ending the connection, so that clients get errors "
                "instead of waiting forever", q->qid, q->idx, why);
  if (!atomic_exchange (&u->failed, true) && u->on_failure)
    u->on_failure (u->failure_arg);
}

/* Arms the poll of the queue's wake eventfd. */
static void
arm_wake (struct uring_queue *q)
{
  struct io_uring_sqe *sqe = get_sqe (&q->ring);

  io_uring_prep_poll_add (sqe, q->wake_fd, POLLIN);
  sqe->user_data = WAKE_TAG;
}

/* Queues the commits of held entries answered since the last wake. */
static void
commit_done (struct uring_queue *q)
{
  struct uring_ent *e, *next;
  uint64_t v;

  /* Read first: an entry added after this read writes the eventfd again. */
  if (read (q->wake_fd, &v, sizeof v) == -1 && errno != EAGAIN)
    nbdkit_debug ("control: FUSE over io_uring: eventfd read: %m");
  pthread_mutex_lock (&q->done_lock);
  e = q->done;
  q->done = NULL;
  pthread_mutex_unlock (&q->done_lock);
  for (; e; e = next) {
    next = e->next_done;
    e->held = false;
    prep_cmd (q, get_sqe (&q->ring), FUSE_IO_URING_CMD_COMMIT_AND_FETCH, e);
  }
}

static void *
queue_thread (void *arg)
{
  struct uring_queue *q = arg;
  struct uring *u = q->u;
  struct io_uring_sqe *sqe;
  struct io_uring_cqe *cqe;
  unsigned live = q->nr_ents, i, head, n, writes;
  bool stop = false, said = false, pair = false, wake;
  const char *failure = NULL;
  char why[128];
  int r;

  {
    char name[16];
    snprintf (name, sizeof name, "zram-ring%u", q->idx);
    pthread_setname_np (pthread_self (), name);
  }
  /* As the handlers' threads, for swap on `disk`. */
  io_flusher ();

  /* Debian's liburing 2.3 declares io_uring_enable_rings but does not
   * export it: the system call, then.
   */
  if (q->need_enable &&
      syscall (__NR_io_uring_register, q->ring.ring_fd,
               IORING_REGISTER_ENABLE_RINGS, NULL, 0) == -1) {
    uring_fail (u, "queue %u: IORING_REGISTER_ENABLE_RINGS: %s", q->qid,
                strerror (errno));
    uring_poison (u);
    return NULL;
  }
  for (i = 0; i < q->nr_ents; i++)
    prep_cmd (q, get_sqe (&q->ring), FUSE_IO_URING_CMD_REGISTER,
              &q->ents[i]);
  sqe = get_sqe (&q->ring);
  io_uring_prep_poll_add (sqe, u->stop_fd, POLLIN);
  sqe->user_data = STOP_TAG;
  arm_wake (q);
  r = io_uring_submit (&q->ring);
  if (r < 0) {
    uring_fail (u, "queue %u: io_uring_submit: %s", q->qid, strerror (-r));
    uring_poison (u);
    return NULL;
  }
  if (u->debug)
    nbdkit_debug ("control: FUSE over io_uring: queue %u: %u entries "
                  "of %zu KiB", q->qid, q->nr_ents, u->payload >> 10);

  while (!stop && live > 0 && !failure) {
    r = ring_wait (q, pair);
    if (r < 0 && r != -EINTR && r != -EAGAIN && r != -EBUSY) {
      snprintf (why, sizeof why, "io_uring_enter: %s", strerror (-r));
      failure = why;
      break;
    }
    n = writes = 0;
    wake = false;
    io_uring_for_each_cqe (&q->ring, head, cqe) {
      struct uring_ent *e;

      n++;
      if (cqe->user_data == STOP_TAG) {
        stop = true;
        continue;
      }
      if (cqe->user_data == WAKE_TAG) {
        wake = cqe->res >= 0;
        continue;
      }
      e = &q->ents[cqe->user_data];
      if (cqe->res < 0) {
        /* The entry is gone: torn down with the connection, or refused.
         * A REGISTER's error has already sent the kernel back to
         * /dev/fuse; a commit's leaves a request unanswered.
         */
        live--;
        if (is_teardown (-cqe->res))
          continue;
        if (e->unique == 0) {
          if (!said) {
            said = true;
            uring_fail (u, "queue %u: REGISTER: %s", q->qid,
                        strerror (-cqe->res));
          }
          continue;
        }
        snprintf (why, sizeof why, "COMMIT_AND_FETCH: %s",
                  strerror (-cqe->res));
        failure = why;
        continue;
      }
      if (serve (q, e) == FUSE_WRITE)
        writes++;
      if (!e->held)
        prep_cmd (q, get_sqe (&q->ring),
                  FUSE_IO_URING_CMD_COMMIT_AND_FETCH, e);
    }
    io_uring_cq_advance (&q->ring, n);
    if (wake) {
      commit_done (q);
      arm_wake (q);
    }
    pair = n >= 2 && writes > 0;
  }
  if (failure && !stop) {
    ring_failed (q, failure);
    /* The abort ends what the kernel had given this ring's entries, but
     * not a request it had routed here and not yet copied in: with
     * DEFER_TASKRUN that copy waits for this thread to ask for
     * completions, which it never will.  Closing the ring runs it as
     * cancelled, which ends the request (else a client waits until nbdkit
     * exits).  The thread that issues is the one that closes.
     */
    io_uring_queue_exit (&q->ring);
    q->ring_ok = false;
  }
  else
    /* Answers still queued go to the kernel before the ring closes. */
    io_uring_submit (&q->ring);
  if (u->debug)
    nbdkit_debug ("control: FUSE over io_uring: queue %u ends (%s)",
                  q->qid, stop ? "stopped" : failure ? "failed"
                                                     : "connection ended");
  return NULL;
}

/* Frees the rings and memory of queues whose threads are not running. */
static void
queues_free (struct uring *u)
{
  unsigned i;

  for (i = 0; i < u->nr_rings; i++) {
    struct uring_queue *q = &u->queues[i];

    if (q->ring_ok)
      io_uring_queue_exit (&q->ring);
    if (q->area)
      munmap (q->area, q->area_size);
    if (q->wake_fd >= 0) {
      close (q->wake_fd);
      pthread_mutex_destroy (&q->done_lock);
    }
  }
  free (u->queues);
  u->queues = NULL;
  u->nr_rings = 0;
  if (u->stop_fd >= 0)
    close (u->stop_fd);
  u->stop_fd = -1;
}

/* Creates one ring (of a queue thread).  DEFER_TASKRUN (6.1) runs the
 * kernel's part of a completion (copying the request in) only when the
 * thread asks for completions, in one batch; it needs SINGLE_ISSUER, and
 * the issuer is the thread that enables a ring created disabled.
 */
static int
ring_create (struct uring_queue *q)
{
  static const unsigned flag_sets[] = {
    IORING_SETUP_SQE128 | IORING_SETUP_R_DISABLED |
      IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
    IORING_SETUP_SQE128 | IORING_SETUP_COOP_TASKRUN,
    IORING_SETUP_SQE128,
  };
  size_t i;
  int r = -EINVAL;

  /* Room for every entry's command and the two polls, twice over. */
  for (i = 0; i < sizeof flag_sets / sizeof flag_sets[0]; i++) {
    struct io_uring_params p = { .flags = flag_sets[i] };

    r = io_uring_queue_init_params (2 * (q->nr_ents + 2), &q->ring, &p);
    if (r == 0) {
      q->ring_ok = true;
      q->need_enable = flag_sets[i] & IORING_SETUP_R_DISABLED;
      q->min_wait_ok = p.features & IORING_FEAT_MIN_TIMEOUT;
      return 0;
    }
    if (r != -EINVAL)
      break;
  }
  return r;
}

/* Everything that can fail before the INIT reply accepts the offer:
 * rings, memory, the stop eventfd.  0, or -1 after saying why.
 */
static int
queues_prepare (struct uring *u)
{
  size_t ent_size = ENT_HEAD + u->payload;
  unsigned i, j;
  int r;

  u->nr_queues = possible_cpus ();
  if (u->nr_queues == 0 || u->nr_queues > UINT16_MAX) {
    uring_fail (u, "cannot count the possible CPUs");
    return -1;
  }
  u->nr_rings = u->nr_queues * u->threads;
  u->queues = calloc (u->nr_rings, sizeof *u->queues);
  if (!u->queues) {
    uring_fail (u, "calloc: %s", strerror (errno));
    return -1;
  }
  for (i = 0; i < u->nr_rings; i++) {
    struct uring_queue *q = &u->queues[i];

    q->u = u;
    q->qid = i % u->nr_queues;
    q->idx = i;
    q->nr_ents = URING_QUEUE_DEPTH / u->threads;
    q->wake_fd = -1;
  }
  u->stop_fd = eventfd (0, EFD_CLOEXEC);
  if (u->stop_fd == -1) {
    uring_fail (u, "eventfd: %s", strerror (errno));
    goto err;
  }
  for (i = 0; i < u->nr_rings; i++) {
    struct uring_queue *q = &u->queues[i];

    q->wake_fd = eventfd (0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (q->wake_fd == -1) {
      uring_fail (u, "eventfd: %s", strerror (errno));
      goto err;
    }
    pthread_mutex_init (&q->done_lock, NULL);
    r = ring_create (q);
    if (r < 0) {
      uring_fail (u, "io_uring_queue_init: %s", strerror (-r));
      goto err;
    }
    /* Untouched pages cost nothing (mlock=true locks on fault), so a
     * payload sized for the largest request only costs memory when such
     * requests come.
     */
    q->area_size = q->nr_ents * ent_size;
    q->area = mmap (NULL, q->area_size, PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (q->area == MAP_FAILED) {
      q->area = NULL;
      uring_fail (u, "mmap %zu bytes: %s", q->area_size, strerror (errno));
      goto err;
    }
    for (j = 0; j < q->nr_ents; j++) {
      struct uring_ent *e = &q->ents[j];

      e->q = q;
      e->hdr = (struct fuse_uring_req_header *) (q->area + j * ent_size);
      e->payload = q->area + j * ent_size + ENT_HEAD;
      e->iov[0] = (struct iovec) { e->hdr, sizeof *e->hdr };
      e->iov[1] = (struct iovec) { e->payload, u->payload };
    }
  }
  return 0;

 err:
  queues_free (u);
  return -1;
}

/* After the INIT reply: one thread per ring.  A thread that cannot
 * start leaves its queue without entries, and the ring would never be
 * ready: give the connection back to /dev/fuse then.
 */
static void
queues_start (struct uring *u)
{
  unsigned i;
  int err;

  for (i = 0; i < u->nr_rings; i++) {
    struct uring_queue *q = &u->queues[i];

    /* The classic worker running this blocks every signal already, and
     * the thread inherits that.
     */
    err = pthread_create (&q->thread, NULL, queue_thread, q);
    if (err) {
      uring_fail (u, "pthread_create: %s", strerror (err));
      uring_poison (u);
      break;
    }
    q->started = true;
  }
  u->started = true;
  nbdkit_debug ("control: FUSE over io_uring: %u queues, %u threads of "
                "%u entries each, %zu KiB payloads", u->nr_queues,
                u->nr_rings, u->queues[0].nr_ents, u->payload >> 10);
}

ssize_t
uring_io_read (struct uring *u, int fd, void *buf, size_t len)
{
  ssize_t res = read (fd, buf, len);
  const struct fuse_in_header *in = buf;
  const struct fuse_init_in *arg;

  /* FUSE_INIT comes first, once; the kernel offers io_uring with
   * FUSE_INIT_EXT and FUSE_OVER_IO_URING in flags2.
   */
  if (res >= (ssize_t) (sizeof *in + offsetof (struct fuse_init_in, flags2)
                        + sizeof arg->flags2) &&
      in->opcode == FUSE_INIT && !atomic_load (&u->init_done)) {
    arg = (const struct fuse_init_in *) &in[1];
    atomic_store (&u->offered,
                  (arg->flags & FUSE_INIT_EXT) &&
                  (arg->flags2 & (FUSE_OVER_IO_URING >> 32)));
    atomic_store (&u->init_unique, in->unique);
    if (!atomic_load (&u->offered))
      uring_fail (u, "the kernel does not offer it (%s is N?)",
                  ENABLE_URING_PARAM);
  }
  return res;
}

/* The INIT reply: accept the offer if the rings could be made. */
static ssize_t
init_reply (struct uring *u, int fd, struct iovec *iov, int count)
{
  struct fuse_init_out out;
  struct iovec v[2];
  size_t pages;
  ssize_t r;
  int err;

  atomic_store (&u->init_done, true);
  if (!atomic_load (&u->offered) || count != 2 ||
      iov[1].iov_len < offsetof (struct fuse_init_out, flags2) +
                       sizeof out.flags2 ||
      iov[1].iov_len > sizeof out)
    return writev (fd, iov, count);

  memset (&out, 0, sizeof out);
  memcpy (&out, iov[1].iov_base, iov[1].iov_len);
  pages = out.flags & FUSE_MAX_PAGES && out.max_pages ? out.max_pages
                                                     : KERNEL_DEFAULT_MAX_PAGES;
  u->payload = KERNEL_MIN_PAYLOAD;
  if (out.max_write > u->payload)
    u->payload = out.max_write;
  if (pages * 4096 > u->payload)
    u->payload = pages * 4096;
  u->payload = (u->payload + 4095) & ~(size_t) 4095;
  if (queues_prepare (u) == -1) {
    atomic_store (&u->offered, false);
    return writev (fd, iov, count);
  }

  out.flags |= FUSE_INIT_EXT;
  out.flags2 |= FUSE_OVER_IO_URING >> 32;
  v[0] = iov[0];
  v[1] = (struct iovec) { &out, iov[1].iov_len };
  r = writev (fd, v, 2);
  if (r == -1) {
    err = errno;
    queues_free (u);
    errno = err;
    return r;
  }
  /* fuse_dev_write has run process_init_reply: the connection is
   * initialised and REGISTER may come.
   */
  queues_start (u);
  return r;
}

ssize_t
uring_io_writev (struct uring *u, int fd, struct iovec *iov, int count)
{
  const struct fuse_out_header *oh = iov[0].iov_base;
  uint64_t init_unique;

  if (count < 1 || iov[0].iov_len < sizeof *oh)
    return writev (fd, iov, count);
  if (cur_ent && oh->unique == cur_ent->unique)
    return ring_reply (cur_ent, iov, count);
  init_unique = atomic_load (&u->init_unique);
  if (init_unique && oh->unique == init_unique &&
      !atomic_load (&u->init_done) && oh->error == 0)
    return init_reply (u, fd, iov, count);
  return writev (fd, iov, count);
}

void
uring_free (struct uring *u)
{
  uint64_t one = 1;
  unsigned i;

  if (!u)
    return;
  if (u->started) {
    if (write (u->stop_fd, &one, sizeof one) != sizeof one)
      nbdkit_debug ("control: FUSE over io_uring: eventfd write: %m");
    for (i = 0; i < u->nr_rings; i++)
      if (u->queues[i].started)
        pthread_join (u->queues[i].thread, NULL);
    nbdkit_debug ("control: FUSE over io_uring served %" PRIu64
                  " requests", uring_requests (u));
  }
  queues_free (u);
  free (u);
}

#endif /* HAVE_LIBURING */
