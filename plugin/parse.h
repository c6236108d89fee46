/* uzram: the one parser of each kind of value the plugin is given, on its
 * command line (zram.c, control/uring.c) and in the control files
 * (attrs.c), so that both read a size or a boolean the same way.
 */
#ifndef UZRAM_PARSE_H
#define UZRAM_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* sysfs_streq and kstrto* accept exactly one trailing newline (what
 * `echo` adds): the length without it.
 */
size_t zram_strip_newline (const char *buf, size_t len);

/* Decimal digits only, as many as there are at the start of [buf,
 * buf+len), at least one; *used says how many.  -EINVAL for none (empty,
 * a sign, garbage) or a number past UINT64_MAX.
 */
int zram_parse_u64 (const char *buf, size_t len, uint64_t *out,
                    size_t *used);

/* Parses a size as the kernel's memparse does (a decimal number with an
 * optional K, M, G, T, P or E suffix in either case, powers of 1024, and
 * one optional trailing newline), but strictly: anything else or an empty
 * string is -EINVAL, a size past UINT64_MAX -ERANGE.
 */
int zram_parse_size (const char *buf, size_t len, uint64_t *out);

/* The same for a command-line parameter (a string): a suffix may also be
 * spelt as nbdkit's sizes and people write them, "KiB" or "KB" for "K".
 */
int zram_parse_size_arg (const char *s, uint64_t *out);

/* A boolean, in any case: 1, true, yes, on or 0, false, no, off (the
 * words nbdkit_parse_bool takes).  -EINVAL for anything else.
 */
int zram_parse_bool (const char *s, bool *out);

/* A front end's switch: "auto" (*is_auto true), or a boolean as
 * zram_parse_bool takes it (*on).  -EINVAL for anything else.
 */
int zram_parse_auto_bool (const char *s, bool *is_auto, bool *on);

#endif /* UZRAM_PARSE_H */
