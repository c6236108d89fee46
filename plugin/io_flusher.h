/* uzram: the threads that serve the device's I/O mark themselves I/O
 * flushers (PR_SET_IO_FLUSHER, Linux 5.6), whichever front end they serve:
 * nbdkit's workers (zram.c), the `disk` handlers and the FUSE rings
 * (control/handlers.c, control/uring.c), and the ublk queues (ublk.c).
 *
 * Swap on the device reclaims memory through these threads, so their own
 * allocations must not wait on reclaim, which may be waiting on that very
 * I/O.  prctl needs CAP_SYS_RESOURCE; without it the device works, but
 * swap on it may deadlock under memory pressure.  One refusal is logged
 * for the whole process (every thread is refused alike): an error where
 * mlock=true says the device is for swap, else a debug message.
 */
#ifndef UZRAM_IO_FLUSHER_H
#define UZRAM_IO_FLUSHER_H

#include <stdbool.h>

/* Whether a refusal is an error (mlock=true: swap is the device's use).
 * Called once, before any thread serves I/O.
 */
void io_flusher_set_swap (bool swap);

/* Marks the calling thread an I/O flusher, once: later calls on the same
 * thread return at once, so a front end may call it on every request.
 * For swap it also faults in, while memory is still there, what the
 * thread would otherwise first touch on some later request: its stack
 * below the caller and its zsmalloc mapping buffer.
 */
void io_flusher (void);

#endif /* UZRAM_IO_FLUSHER_H */
