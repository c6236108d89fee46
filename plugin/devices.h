/* uzram: the devices of one server, zram-control's hot_add and hot_remove.
 *
 * One server holds several devices, each an engine (engine.h) with its own
 * slot table, pool, mem_limit and statistics, numbered as zram numbers
 * them: the lowest free id, from 0.  The NBD front end serves device N as
 * the export zramN, the control filesystem as its directory zramN/.
 *
 * A front end looks a device up by id and holds a reference while it uses
 * it (devices_get, devices_put): that keeps the engine's memory alive, not
 * the device in the table.  A client that serves I/O (an NBD connection,
 * an open `disk`) also takes the engine (zram_get), and that is what
 * makes hot_remove EBUSY, as an opener of /dev/zramN does.  A device
 * removed while references remain (an attribute file still open) leaves
 * the table at once and is destroyed by the last devices_put.
 *
 * Each device may also have a front end that holds the engine for as long
 * as its block device exists (ublk's /dev/ublkbN, ublk.h), kept here with
 * the device: the control files' reset and hot_remove ask it to let go
 * first (devices_front_release), and it is freed with the device.  The
 * plugin provides it (devices_set_front); this library does not know what
 * it is.
 *
 * Device 0 is the server's own: the control mount's root and the default
 * export serve it, so it stays for as long as the server runs
 * (hot_remove of 0 is EBUSY, where zram removes an unused zram0).
 *
 * Locks: devices_lock (devices.c) guards the table and every reference
 * count; it is never held across an engine call that can wait.
 */
#ifndef UZRAM_DEVICES_H
#define UZRAM_DEVICES_H

#include <stdint.h>

struct zram;

/* Ids 0 to ZRAM_MAX_DEVICES - 1. */
#define ZRAM_MAX_DEVICES 256

/* What every new device starts with, and returns to at reset
 * (zram_set_defaults).  -EINVAL for an algorithm not built in.
 */
int devices_set_defaults (const char *comp_algorithm, uint64_t mem_limit);

/* hot_add: creates a device, uninitialised, under the lowest free id, and
 * returns that id; -ENOSPC when every id is taken, -ENOMEM, or the error
 * of starting its writeback policy thread.
 */
int devices_hot_add (void);

/* hot_remove: -ENODEV for no such device, -EBUSY for device 0 and while a
 * client holds the device (its front end's block device open included);
 * 0 once it has left the table, its block device deleted.  Refused, it
 * keeps everything: a block device the front end had deleted on the way
 * is added again.
 */
int devices_hot_remove (unsigned id);

/* The front end every device has (see the top): start gives a device
 * its own, or NULL after logging why (hot_add is then -ENOMEM); release
 * deletes its block device and lets go of the engine, 0 or -EBUSY while
 * the block device is in use; initialised adds the block device if the
 * engine is initialised and it has none; dev_id is the block device's
 * number, or -1 for none, and must not wait; stop deletes the block
 * device whatever holds it and frees the front end.
 */
struct devices_front {
  void *(*start) (struct zram *zram);
  int (*release) (void *front);
  void (*initialised) (void *front);
  int (*dev_id) (void *front);
  void (*stop) (void *front);
};

/* Gives every device there is a front end, and every one added from now
 * on.  Call it once, after nbdkit forks and before the control
 * filesystem starts.  -ENOMEM when a start fails (devices_stop_fronts
 * undoes the others).
 */
int devices_set_front (const struct devices_front *front);

/* The front end of zram's device: release before reset (0 if it has
 * none), initialised after disksize (and after a reset refused once
 * release had succeeded), the block device's number (-1: none).  zram
 * is held (devices_get); an engine not in the table has no front end.
 */
int devices_front_release (struct zram *zram);
void devices_front_initialised (struct zram *zram);
int devices_front_dev_id (struct zram *zram);

/* Stops and frees every device's front end, deleting the block devices
 * (nbdkit's .cleanup, once the control filesystem has stopped).
 */
void devices_stop_fronts (void);

/* For swap (mlock=true): every device, and every one added from now on,
 * gets zram_set_populate.
 */
void devices_set_populate (void);
/* Starts the writeback policy threads, of the devices there are and of
 * every one added from now on (call it after nbdkit forks).  -errno.
 */
int devices_start (void);

/* The id a device's name gives, "zramN" (decimal, no leading zero, below
 * ZRAM_MAX_DEVICES), or -1: its directory's and its export's name.
 */
int devices_name_id (const char *name);

/* Device id with a reference, or NULL if there is none. */
struct zram *devices_get (unsigned id);
/* Gives back a reference devices_get gave. */
void devices_put (struct zram *zram);

/* The id of the first device above `after` (-1: the first of all), or
 * -1 if there is none.  For listings; a device may come or go meanwhile.
 */
int devices_next (int after);

/* Stops every policy thread (nbdkit's .cleanup). */
void devices_stop (void);
/* Destroys every device, referenced or not (nbdkit's .unload). */
void devices_destroy_all (void);

#endif /* UZRAM_DEVICES_H */
