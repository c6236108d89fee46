/* uzram: zram's sysfs attributes, as a table the control filesystem serves.
 *
 * Each entry is one file of /sys/block/zramN/, kernel style: a name, the
 * mode sysfs gives it, and show/store functions that format or parse the
 * bytes exactly as drivers/block/zram/zram_drv.c (and block/genhd.c for
 * `stat`, mm/zsmalloc.c's debugfs for `classes`) do.  The functions talk
 * only to the engine (engine.h), so the table is front-end neutral: the
 * FUSE side in control/ only moves bytes.
 *
 * show (zram, buf, len) writes the file's whole text into buf and returns
 * its length, snprintf-style: a result >= len means buf was too small and
 * the caller retries with at least result + 1 bytes.  Negative: -errno.
 *
 * store (zram, buf, len) parses one write(2) of len bytes (not
 * NUL-terminated; a single trailing newline is accepted, as sysfs_streq and
 * kstrto* accept it) and returns len on success or -errno.  A write that
 * does not parse is -EINVAL and changes nothing.
 *
 * The `disk` file is not here: it is the device's contents, not an
 * attribute (control/handlers.c serves it).
 */
#ifndef UZRAM_ATTRS_H
#define UZRAM_ATTRS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct zram;

/* The longest write an attribute accepts: sysfs hands store at most one
 * page, and nothing zram parses comes near it.
 */
#define ZRAM_ATTR_MAX_WRITE 4096

struct zram_attr {
  const char *name;
  mode_t mode;        /* permission bits only: 0644, 0444 or 0200 */
  ssize_t (*show) (struct zram *zram, char *buf, size_t len);
  ssize_t (*store) (struct zram *zram, const char *buf, size_t len);
};

/* The attributes in the order a directory listing shows them. */
extern const struct zram_attr zram_attrs[];
extern const size_t zram_nr_attrs;

/* The attribute called name, or NULL. */
const struct zram_attr *zram_attr_find (const char *name);

/* The size parser the stores use, zram_parse_size, is parse.h's. */
#include "parse.h"

#endif /* UZRAM_ATTRS_H */
