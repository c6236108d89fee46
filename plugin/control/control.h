/* uzram control filesystem: zram's sysfs files, and the device as `disk`.
 *
 * A FUSE filesystem (libfuse3, low level) mounted at DIR inside the nbdkit
 * process, serving the files Linux shows in /sys/block/zramN/ (same names,
 * modes, formats, write rules and error codes) plus `classes` and `disk`.
 * The attribute table (names, modes, show/store) is in attrs.h; this is the
 * FUSE side and the mount's life cycle.
 *
 * The mount serves every device of the server (devices.h): device 0's
 * files at its root, as with one device, and each device's in its
 * directory zramN/, with zram-control/hot_add and hot_remove beside them.
 */
#ifndef UZRAM_CONTROL_H
#define UZRAM_CONTROL_H

#include <stdbool.h>

#include "control/uring.h"

struct control_opts {
  bool allow_other;   /* let other users read (modes still apply) */
  enum uring_mode uring;  /* FUSE over io_uring: auto (0), on, off */
  unsigned uring_threads; /* per CPU; 0: URING_THREADS_DEFAULT */
};

/* Checks DIR before nbdkit forks: it must be a directory (or a mountpoint
 * left stale by a killed earlier run, which control_start remounts).
 * Returns 0, or -1 after nbdkit_error naming the problem.
 */
int control_check_dir (const char *dir);

/* Mounts the filesystem at DIR and starts its threads (call it after
 * nbdkit forks).  Returns NULL after nbdkit_error on failure.
 */
struct control *control_start (const char *dir,
                               const struct control_opts *opts);

/* Unmounts and joins the threads.  Safe to call with NULL, and from an
 * atexit handler.
 */
void control_stop (struct control *control);

#endif /* UZRAM_CONTROL_H */
