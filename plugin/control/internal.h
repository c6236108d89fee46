/* uzram control filesystem: the one mounted instance, shared by the FUSE
 * handlers (handlers.c) and the mount's life cycle (mount.c).  Not part
 * of the plugin's interface (control.h).
 */
#ifndef UZRAM_CONTROL_INTERNAL_H
#define UZRAM_CONTROL_INTERNAL_H

#define FUSE_USE_VERSION 312   /* 3.12: the loop config with max_threads */

#include <pthread.h>
#include <stdbool.h>
#include <sys/types.h>
#include <time.h>

#include <fuse_lowlevel.h>

#define NBDKIT_API_VERSION 2
#include <nbdkit-plugin.h>

#include "control/admin.h"
#include "control/control.h"
#include "control/uring.h"

struct control {
  char *dir;
  struct fuse_session *se;
  struct uring *uring;        /* NULL: libfuse's own I/O on /dev/fuse */
  struct admin *admin;        /* runs the control files' stores */
  pthread_t thread;
  bool thread_started;
  uid_t uid;
  gid_t gid;
  struct timespec mtime;      /* every inode's times: when we mounted */
  int conn;                   /* the connection's number in fusectl; -1 */
};

/* The handlers (handlers.c), for fuse_session_new. */
extern const struct fuse_lowlevel_ops control_ops;

/* -D zram.control=1: say more about requests and the session. */
extern NBDKIT_DLL_PUBLIC int zram_debug_control;
/* -D zram.ring_fail=N: a test hook, see struct uring_opts. */
extern NBDKIT_DLL_PUBLIC int zram_debug_ring_fail;

/* Ends the connection (mount.c): every request waiting on it, and every
 * one to come, fails.  For a transport that cannot go on.
 */
void control_abort (struct control *c);

#endif /* UZRAM_CONTROL_INTERNAL_H */
