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
#include "zsmalloc.h"

/* Older headers than the kernels that have it. */
#ifndef PR_SET_IO_FLUSHER
#define PR_SET_IO_FLUSHER 57
#endif

/* Set before any thread serves I/O. */
static bool swap;

/* How much of its stack below the first request an I/O thread faults in
 * ahead, with mlock=true (which keeps it): a generous bound on what the
 * engine's deepest path, through a compressor, takes.
 */
#define STACK_AHEAD (256 << 10)

/* Faults in STACK_AHEAD bytes of the stack below the caller.  A swap
 * device's I/O thread that first reaches a new stack page while memory
 * is short waits for reclaim, which waits for the requests that thread
 * serves (seen in a guest: a ublk queue's thread faulting on a `call`,
 * with every other task waiting for a bio).
 */
static void __attribute__ ((noinline))
stack_ahead (void)
{
  volatile char buf[STACK_AHEAD];
  size_t i;

  for (i = 0; i < sizeof buf; i += 4096)
    buf[i] = 0;
  buf[sizeof buf - 1] = 0;
}

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
  if (swap) {
    stack_ahead ();
    zs_prepare_thread ();
  }
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
