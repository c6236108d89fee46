/* uzram control filesystem: the mount's life cycle (see control.h).
 *
 * Start-up: control_check_dir (before nbdkit forks) makes a missing DIR
 * whose parent exists, refuses a non-directory and a DIR another live
 * FUSE server has mounted, and lazily detaches a stale mount (ENOTCONN:
 * its server was killed), saying so.  control_start (after the fork)
 * mounts, puts the chosen transport under libfuse, and starts one session
 * thread, which runs fuse_session_loop_mt with clone_fd (one /dev/fuse fd
 * per worker) and up to CONTROL_MAX_THREADS workers.
 *
 * Transports: libfuse's own read(2)/writev(2) on /dev/fuse, or, where the
 * kernel offers it, FUSE over io_uring (uring.c), whose requests come
 * through io_urings (uring_threads= per CPU) into the same handlers
 * through libfuse's own dispatcher; the classic loop keeps serving what
 * stays on /dev/fuse (forgets, interrupts) and everything where the rings
 * are not in use.  uring=off leaves libfuse's I/O alone.
 *
 * Shut-down: control_stop aborts the connection with a forced lazy
 * unmount (MNT_FORCE makes FUSE's umount_begin abort it, so a loop device
 * still attached gets errors instead of hanging on a server that is gone),
 * then joins the session thread.  It runs from the plugin's .cleanup and,
 * as a backstop, at exit.
 *
 * Admin work: the control files' stores run on the admin worker
 * (admin.c), started before the session and stopped after it.
 *
 * A transport that fails once serving (control_abort, called by uring.c)
 * ends the connection the same ways, so that clients get errors.
 *
 * Locks: live_lock guards `live` (the one running instance).
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <mntent.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "control/internal.h"

/* The instance control_stop has not stopped yet, for the atexit backstop
 * and so that a second control_stop of the same pointer does nothing.
 */
static pthread_mutex_t live_lock = PTHREAD_MUTEX_INITIALIZER;
static struct control *live;
static bool atexit_registered;

/* Queue depth 32 on a loop device becomes up to 32 FUSE requests in
 * flight, plus a few for the stats files while they run.
 */
#define CONTROL_MAX_THREADS 40

NBDKIT_DLL_PUBLIC int zram_debug_ring_fail;

/* --- The io_uring transport under libfuse (uring.c) --- */

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

/* --- Ending the connection --- */

/* The connection's number under /sys/fs/fuse/connections: its device's
 * minor, as /proc/self/mountinfo gives it for the mount on real (asking
 * the mount itself would be a request to our own server).  -1 if not
 * found.
 */
static int
find_conn (const char *real)
{
  FILE *fp = fopen ("/proc/self/mountinfo", "re");
  char line[4096], mnt[4096];
  unsigned maj, min;
  int conn = -1;

  if (!fp)
    return -1;
  while (fgets (line, sizeof line, fp))
    if (sscanf (line, "%*u %*u %u:%u %*s %4095s", &maj, &min, mnt) == 3 &&
        strcmp (mnt, real) == 0)
      conn = min;               /* the last one is the one on top */
  fclose (fp);
  return conn;
}

/* Writes fusectl's abort file: works for the mount's owner, root or not,
 * where fusectl is mounted.  0, or -1 with errno.
 */
static int
abort_by_fusectl (struct control *c)
{
  char path[64];
  int fd, r;

  if (c->conn < 0) {
    errno = ENOENT;
    return -1;
  }
  snprintf (path, sizeof path, "/sys/fs/fuse/connections/%d/abort", c->conn);
  fd = open (path, O_WRONLY | O_CLOEXEC);
  if (fd == -1)
    return -1;
  r = write (fd, "1", 1) == 1 ? 0 : -1;
  close (fd);
  return r;
}

void
control_abort (struct control *c)
{
  int err;

  if (abort_by_fusectl (c) == 0) {
    nbdkit_debug ("control: aborted the connection of %s through fusectl",
                  c->dir);
    return;
  }
  err = errno;
  /* MNT_FORCE: FUSE's umount_begin aborts the connection before the
   * unmount looks at whether the mount is busy, so EBUSY (a loop device
   * holds `disk`) still means aborted.
   */
  if (umount2 (c->dir, MNT_FORCE) == 0 || errno == EBUSY) {
    nbdkit_debug ("control: aborted the connection of %s (forced unmount)",
                  c->dir);
    return;
  }
  nbdkit_error ("control: cannot end the connection of %s (fusectl: %s; "
                "forced unmount: %m): I/O on `disk` may hang until nbdkit "
                "stops", c->dir, strerror (err));
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
control_start (const char *dir, const struct control_opts *opts)
{
  struct control *c;
  char optstr[128];
  char *argv[] = { "nbdkit-zram", "-o", optstr, NULL };
  struct fuse_args args = FUSE_ARGS_INIT (3, argv);
  sigset_t all, old;
  struct stat st;
  char *real;
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
  c->conn = -1;
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
  /* Before the mount: resolving it after would ask our own server. */
  real = realpath (dir, NULL);
  if (fuse_session_mount (c->se, dir) != 0) {
    nbdkit_error ("control: cannot mount the control filesystem on %s", dir);
    free (real);
    goto err;
  }
  if (real)
    c->conn = find_conn (real);
  free (real);
  c->admin = admin_start ();
  if (!c->admin) {
    fuse_session_unmount (c->se);
    goto err;
  }
  /* The kernel has queued FUSE_INIT; nothing has read it yet. */
  if (uring) {
    struct uring_opts uo = {
      .mode = opts ? opts->uring : URING_AUTO,
      .threads = opts ? opts->uring_threads : 0,
      .debug = zram_debug_control,
      .on_failure = (void (*) (void *)) control_abort,
      .arg = c,
      .fail_after = zram_debug_ring_fail > 0 ? zram_debug_ring_fail : 0,
    };
    c->uring = uring_new (c->se, &uo);
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
  admin_stop (c->admin);
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
  /* Stores still queued answer before the rings go. */
  admin_stop (c->admin);
  /* The connection is aborted, so the rings' threads are ending. */
  uring_free (c->uring);
  /* Closes the session's own fd; the mount is gone already. */
  fuse_session_unmount (c->se);
  fuse_session_destroy (c->se);
  nbdkit_debug ("control: unmounted %s", c->dir);
  free (c->dir);
  free (c);
}
