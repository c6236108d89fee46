/* uzram: PR_SET_IO_FLUSHER for the threads that serve I/O (see
 * io_flusher.h).
 */
#include <config.h>

#include <stdatomic.h>
#include <stdbool.h>
#include <sys/prctl.h>

#define NBDKIT_API_VERSION 2
#include <nbdkit-plugin.h>

#include "io_flusher.h"

/* Older headers than the kernels that have it. */
#ifndef PR_SET_IO_FLUSHER
#define PR_SET_IO_FLUSHER 57
#endif

/* Set before any thread serves I/O. */
static bool swap;

void
io_flusher_set_swap (bool on)
{
  swap = on;
}

void
io_flusher (void)
{
  static __thread bool done;
  static atomic_bool said;

  if (done)
    return;
  done = true;
  if (prctl (PR_SET_IO_FLUSHER, 1, 0, 0, 0) == 0 ||
      atomic_exchange (&said, true))
    return;
  if (swap)
    nbdkit_error ("prctl PR_SET_IO_FLUSHER: %m (needs CAP_SYS_RESOURCE): "
                  "swap on this device may deadlock under memory pressure");
  else
    nbdkit_debug ("prctl PR_SET_IO_FLUSHER: %m (swap on this device "
                  "could deadlock under memory pressure)");
}
