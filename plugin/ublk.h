/* uzram: the engine as a real block device through ublk (Linux 6.0+).
 *
 * A third front end beside NBD (zram.c) and the control filesystem's
 * `disk` file: the plugin adds /dev/ublkbN through /dev/ublk-control and
 * serves its requests itself, one thread and io_uring per queue, calling
 * the same engine functions (engine.h) as the others.  There is no loop
 * device and no FUSE on the way.  One front end serves one engine: every
 * device of a server has its own (devices.h keeps it).
 *
 * The block device exists while the engine is initialised: it holds the
 * engine (zram_get) from its creation to its deletion, and the control
 * filesystem's reset and hot_remove ask it to go first (ublk_release),
 * which it refuses while anything has the block device open.
 */
#ifndef UZRAM_UBLK_H
#define UZRAM_UBLK_H

struct zram;

enum ublk_mode {
  UBLK_OFF,         /* no block device (the default) */
  UBLK_AUTO,        /* a block device where the kernel has ublk */
  UBLK_ON,          /* as auto, but a kernel without ublk is an error */
};

/* Parses "auto", or a boolean (parse.h's zram_parse_bool) for on/off.
 * Returns 0, or -1 for anything else.
 */
int ublk_parse_mode (const char *s, enum ublk_mode *mode);

/* Why this process cannot serve ublk whatever the device (built without
 * liburing, no /dev/ublk-control), or NULL.
 */
const char *ublk_unusable (void);

/* The front end for one engine.  Adds the block device at once if the
 * engine is initialised, else at ublk_initialised.  Call it after nbdkit
 * forks (it starts threads).  NULL after nbdkit_error if mode is UBLK_ON
 * and it cannot, or on ENOMEM; with UBLK_AUTO a kernel without ublk is
 * only a debug message, and the front end stays idle.
 */
struct ublk *ublk_start (struct zram *zram, enum ublk_mode mode);

/* The engine has just been initialised (disksize written): add the block
 * device, under the number the last one had where no one has taken it.
 * Failures are logged; the engine stays usable over NBD.
 */
void ublk_initialised (struct ublk *u);

/* Before reset: deletes the block device and lets go of the engine.
 * -EBUSY, keeping it, while the block device is open, mounted, used for
 * swap or held by another device; 0 if there was none.
 */
int ublk_release (struct ublk *u);

/* Deletes the block device (whatever holds it open: that gets I/O errors)
 * and frees everything.  Safe to call with NULL.
 */
void ublk_stop (struct ublk *u);

/* The block device's number N (/dev/ublkbN), or -1 if there is none.
 * Never waits.
 */
int ublk_dev_id (struct ublk *u);

#endif /* UZRAM_UBLK_H */
