/* uzram: what the attribute files share (attrs.h's table is in attrs.c,
 * the statistics files in attrs-stats.c, writeback's in
 * attrs-writeback.c): the show and store functions the table names, the
 * parsers of zram's write formats that more than one of them uses, and
 * how a show appends text.
 */
#ifndef UZRAM_ATTRS_INTERNAL_H
#define UZRAM_ATTRS_INTERNAL_H

#include <inttypes.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "attrs.h"

/* Appends to buf as snprintf would, tracking in `at` the length needed,
 * so that a show is snprintf-style however many pieces it prints.
 */
#define EMIT(...)                                                       \
  (at += snprintf (at < len ? buf + at : NULL, at < len ? len - at : 0, \
                   __VA_ARGS__))

/* A file of one number and a newline (disksize, initstate, ...). */
static inline ssize_t
show_u64 (char *buf, size_t len, uint64_t v)
{
  return snprintf (buf, len, "%" PRIu64 "\n", v);
}

/* kstrtoull: an optional '+', then digits in base (0: a 0x prefix for
 * hex, a leading 0 for octal, else decimal), the whole of the write but
 * for one trailing newline.  -EINVAL, or -ERANGE past UINT64_MAX.
 */
int attr_parse_ull (const char *buf, size_t len, int base, uint64_t *out);

/* The name=value pairs of a write, as the kernel's next_arg splits them:
 * attr_pairs_start copies buf into args (NUL-terminated; -EINVAL for a
 * write too long or holding a NUL), then each attr_next_pair gives 1 with
 * *name and *val set, 0 at the end, -EINVAL for a name without a value
 * (zram: "if (!val || !*val) return -EINVAL").
 */
int attr_pairs_start (char *args, size_t size, const char *buf, size_t len);
int attr_next_pair (char *args, char **save, bool first, char **name,
                    char **val);

/* attrs-stats.c */
ssize_t mm_stat_show (struct zram *zram, char *buf, size_t len);
ssize_t io_stat_show (struct zram *zram, char *buf, size_t len);
ssize_t debug_stat_show (struct zram *zram, char *buf, size_t len);
ssize_t stat_show (struct zram *zram, char *buf, size_t len);
ssize_t classes_show (struct zram *zram, char *buf, size_t len);
ssize_t block_state_show (struct zram *zram, char *buf, size_t len);

/* attrs-writeback.c */
ssize_t backing_dev_show (struct zram *zram, char *buf, size_t len);
ssize_t backing_dev_store (struct zram *zram, const char *buf, size_t len);
ssize_t writeback_store (struct zram *zram, const char *buf, size_t len);
ssize_t writeback_limit_show (struct zram *zram, char *buf, size_t len);
ssize_t writeback_limit_store (struct zram *zram, const char *buf,
                               size_t len);
ssize_t writeback_limit_enable_show (struct zram *zram, char *buf,
                                     size_t len);
ssize_t writeback_limit_enable_store (struct zram *zram, const char *buf,
                                      size_t len);
ssize_t bd_stat_show (struct zram *zram, char *buf, size_t len);
ssize_t writeback_policy_show (struct zram *zram, char *buf, size_t len);
ssize_t writeback_policy_store (struct zram *zram, const char *buf,
                                size_t len);
ssize_t policy_stat_show (struct zram *zram, char *buf, size_t len);

#endif /* UZRAM_ATTRS_INTERNAL_H */
