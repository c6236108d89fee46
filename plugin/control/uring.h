/* uzram control filesystem: FUSE over io_uring (Linux 6.14+).
 *
 * The control filesystem's requests normally come through read(2) and
 * writev(2) on /dev/fuse.  Where the kernel offers it (CONFIG_FUSE_IO_URING
 * and /sys/module/fuse/parameters/enable_uring = Y), this moves them onto
 * io_urings instead, one or more per possible CPU, which saves most of the
 * system calls and wake-ups per request.  libfuse 3.14 knows nothing of it,
 * so this sits under libfuse as its custom I/O (fuse_session_custom_io): it
 * sees the FUSE_INIT request and reply go by, accepts the kernel's offer
 * in the reply, then registers ring entries and feeds the requests that
 * arrive on them to libfuse's own dispatcher (fuse_session_process_buf),
 * catching each reply on its way back to put it into the ring entry.  One
 * dispatcher, the same handlers, for both transports.
 */
#ifndef UZRAM_CONTROL_URING_H
#define UZRAM_CONTROL_URING_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

struct fuse_session;

enum uring_mode {
  URING_AUTO,       /* use it when the kernel offers it */
  URING_ON,         /* as auto, but a kernel without it is an error */
  URING_OFF,        /* /dev/fuse only: no custom I/O at all */
};

/* Threads (each with its own io_uring) per possible CPU: uring_threads=. */
#define URING_THREADS_DEFAULT 1
#define URING_THREADS_MAX 4

/* Parses "auto", or a boolean (zram_parse_bool) for on or off, in any
 * case.  Returns 0, or -1 for anything else.
 */
int uring_parse_mode (const char *s, enum uring_mode *mode);

/* Why the rings cannot be used in this process whatever the kernel says
 * (built without liburing, running under valgrind), or NULL.
 */
const char *uring_unusable (void);

/* Whether the kernel lets FUSE use io_uring now: 1 yes, 0 no (the module
 * parameter is N), -1 this kernel has no such parameter.
 */
int uring_kernel_enabled (void);

/* The transport's interface: the mount's life cycle (mount.c) makes one
 * per session with uring_new, puts uring_io_read and uring_io_writev under
 * libfuse as its custom I/O, and frees it with uring_free; the handlers
 * (handlers.c) ask it only uring_offered and uring_reply_buffer, passing
 * the session's struct uring each time.
 *
 * The state for one session, mounted (its fd is the one the rings use).
 * With URING_ON a failure to set the rings up is an nbdkit_error, with
 * URING_AUTO only a debug message; either way the session goes on over
 * /dev/fuse.  threads: per possible CPU, 1 to URING_THREADS_MAX (anything
 * else is URING_THREADS_DEFAULT).  debug: say when each ring starts and
 * stops serving.  NULL on ENOMEM.
 */
struct uring_opts {
  enum uring_mode mode;
  unsigned threads;
  bool debug;
  /* A ring that fails once serving (its io_uring_enter, a ring thread,
   * an entry's command) leaves requests in entries nobody will answer,
   * and its CPU's I/O would hang: the transport logs it and calls this,
   * which must end the connection (clients then get errors).
   */
  void (*on_failure) (void *arg);
  void *arg;
  /* Test hook (-D zram.ring_fail=N): after N requests a ring's next
   * io_uring_enter fails, as a broken ring's would.  0: never.
   */
  unsigned fail_after;
};

struct uring *uring_new (struct fuse_session *se,
                         const struct uring_opts *opts);

/* The session's custom I/O (control.c's fuse_custom_io calls these). */
ssize_t uring_io_read (struct uring *u, int fd, void *buf, size_t len);
ssize_t uring_io_writev (struct uring *u, int fd, struct iovec *iov,
                         int count);

/* Where a handler serving a request of u's may build its reply's data,
 * for a reply of at most size bytes: the payload of the ring entry this
 * thread is serving, so that the reply needs no copy (pass this pointer to
 * fuse_reply_buf).  NULL where the request did not come through one of
 * u's rings, or u is NULL (then use a buffer of your own).  Valid until
 * the handler replies.
 */
void *uring_reply_buffer (struct uring *u, size_t size);

/* A reply from another thread.  A handler that hands its request to
 * another thread (the admin worker) calls uring_hold before returning
 * without a reply; the ring entry then stays out of the ring, and its
 * thread goes on serving the others.  The thread that replies brackets
 * its fuse_reply_* with uring_held_begin and uring_held_end, which hands
 * the entry back to its ring thread to commit (EIO if nothing was
 * replied).  uring_hold returns NULL where the request did not come
 * through a ring of u's: then a reply from any thread goes to /dev/fuse as
 * it is, and the brackets do nothing with NULL.
 */
struct uring_ent;
struct uring_ent *uring_hold (struct uring *u);
void uring_held_begin (struct uring_ent *e);
void uring_held_end (struct uring_ent *e);

/* True between the FUSE_INIT request that offered io_uring and its reply:
 * the init handler then limits max_write to the ring's payload size.
 */
bool uring_offered (struct uring *u);

/* Requests served through the rings so far. */
uint64_t uring_requests (struct uring *u);

/* Stops and joins the ring threads (call it once the connection is
 * aborted, so that they are not serving anything, and once no held entry
 * is still to be answered) and frees u.  NULL is fine.
 */
void uring_free (struct uring *u);

#endif /* UZRAM_CONTROL_URING_H */
