/* uzram: writeback's files (see attrs.h), CONFIG_ZRAM_WRITEBACK's:
 * backing_dev (a regular file as well as a block device), writeback in
 * both its legacy and its Linux 6.16 forms, writeback_limit,
 * writeback_limit_enable and bd_stat, as drivers/block/zram/zram_drv.c
 * parses and prints them; then the writeback policy's two files, which
 * zram does not have (policy.c).  The engine's side is writeback.c and
 * backing.c.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "attrs-internal.h"
#include "engine.h"
#include "parse.h"

/* --- Writeback --- */

ssize_t
backing_dev_show (struct zram *zram, char *buf, size_t len)
{
  int n = zram_backing_dev (zram, buf, len);

  /* Room for the newline, or ask again with one more byte. */
  if ((size_t) n + 1 >= len)
    return n + 1;
  buf[n] = '\n';
  buf[n + 1] = '\0';
  return n + 1;
}

ssize_t
backing_dev_store (struct zram *zram, const char *buf, size_t len)
{
  size_t n = zram_strip_newline (buf, len);
  char path[ZRAM_ATTR_MAX_WRITE + 1];
  int r;

  /* As zram: EBUSY on an initialised device before the name is looked
   * at; then open's error (ENOENT for an empty name).
   */
  if (zram_initialised (zram))
    return -EBUSY;
  if (n >= sizeof path || memchr (buf, '\0', n))
    return -EINVAL;
  memcpy (path, buf, n);
  path[n] = '\0';
  r = zram_set_backing_dev (zram, path);
  return r < 0 ? r : (ssize_t) len;
}

/* zram's parse_mode: the writeback types. */
static int
parse_wb_mode (const char *s, unsigned *mode)
{
  if (strcmp (s, "idle") == 0)
    *mode = ZRAM_WB_IDLE;
  else if (strcmp (s, "huge") == 0)
    *mode = ZRAM_WB_HUGE;
  else if (strcmp (s, "huge_idle") == 0)
    *mode = ZRAM_WB_IDLE | ZRAM_WB_HUGE;
  else if (strcmp (s, "incompressible") == 0)
    *mode = ZRAM_WB_INCOMPRESSIBLE;
  else
    return -EINVAL;
  return 0;
}

/* kstrtoul base 10 of a NUL-terminated string. */
static int
parse_index (const char *s, uint64_t *out)
{
  return attr_parse_ull (s, strlen (s), 10, out);
}

/* writeback, as Linux 6.16's writeback_store: space-separated arguments,
 * each a type (`idle`, `huge`, `huge_idle`, `incompressible`, bare as
 * before 6.16 or as type=...), page_index=N or page_indexes=LO-HI (both
 * inclusive), which may repeat.  A type writes back the slots of that
 * type in the last range given (all of them if none) and ends the list;
 * each page_index or page_indexes writes back its slots whatever their
 * type.  Everything is parsed before anything is written.  Errors in
 * zram's order: EINVAL uninitialised, ENODEV without a backing device,
 * then EINVAL for what does not parse and ERANGE for an index past the
 * end; then writeback's own (engine.h).  zram ignores name=value pairs it
 * does not know, and so does this.
 */
ssize_t
writeback_store (struct zram *zram, const char *buf, size_t len)
{
  char args[ZRAM_ATTR_MAX_WRITE + 1], *save, *tok;
  /* The shortest range, "page_index=0 ", takes 13 bytes of the write. */
  struct zram_wb_range ranges[ZRAM_ATTR_MAX_WRITE / 13 + 1];
  uint64_t nr = zram_disksize (zram) >> ZRAM_BLOCK_SHIFT;
  uint64_t lo = 0, hi = nr;
  size_t n = 0;
  int r;

  r = zram_writeback_check (zram);
  if (r < 0)
    return r;
  if ((r = attr_pairs_start (args, sizeof args, buf, len)) < 0)
    return r;
  /* Not attr_next_pair: a bare type has no value. */
  for (tok = strtok_r (args, " \t\n", &save); tok;
       tok = strtok_r (NULL, " \t\n", &save)) {
    char *val = strchr (tok, '=');
    unsigned mode;

    if (val)
      *val++ = '\0';
    if (val == NULL || strcmp (tok, "type") == 0) {
      if (parse_wb_mode (val ? val : tok, &mode) < 0)
        return -EINVAL;
      ranges[n++] = (struct zram_wb_range) { mode, lo, hi };
      break;
    }
    if (strcmp (tok, "page_index") == 0) {
      if ((r = parse_index (val, &lo)) < 0)
        return r;
      if (lo >= nr)
        return -ERANGE;
      hi = lo + 1;
    }
    else if (strcmp (tok, "page_indexes") == 0) {
      char *dash = strchr (val, '-');

      if (dash == NULL)
        return -EINVAL;
      *dash = '\0';
      if ((r = parse_index (val, &lo)) < 0)
        return r;
      if (lo >= nr)
        return -ERANGE;
      if ((r = parse_index (dash + 1, &hi)) < 0)
        return r;
      if (hi >= nr || lo > hi)
        return -ERANGE;
      hi++;
    }
    else
      continue;
    ranges[n++] = (struct zram_wb_range) { 0, lo, hi };
  }
  r = zram_writeback (zram, ranges, n, NULL);
  return r < 0 ? r : (ssize_t) len;
}

ssize_t
writeback_limit_show (struct zram *zram, char *buf, size_t len)
{
  return show_u64 (buf, len, zram_wb_limit (zram));
}

ssize_t
writeback_limit_store (struct zram *zram, const char *buf, size_t len)
{
  uint64_t v;

  /* kstrtoull base 10; in 4 KiB blocks. */
  if (attr_parse_ull (buf, len, 10, &v) < 0)
    return -EINVAL;
  zram_set_wb_limit (zram, v);
  return len;
}

ssize_t
writeback_limit_enable_show (struct zram *zram, char *buf, size_t len)
{
  return show_u64 (buf, len, zram_wb_limit_enable (zram) ? 1 : 0);
}

ssize_t
writeback_limit_enable_store (struct zram *zram, const char *buf, size_t len)
{
  uint64_t v;

  /* kstrtoull base 10: any number, non-zero enables. */
  if (attr_parse_ull (buf, len, 10, &v) < 0)
    return -EINVAL;
  zram_set_wb_limit_enable (zram, v != 0);
  return len;
}

ssize_t
bd_stat_show (struct zram *zram, char *buf, size_t len)
{
  struct zram_stats s;

  /* bd_count, bd_reads, bd_writes, in 4 KiB blocks. */
  zram_get_stats (zram, &s);
  return snprintf (buf, len, "%8llu %8llu %8llu\n",
                   (unsigned long long) s.bd_count,
                   (unsigned long long) s.bd_reads,
                   (unsigned long long) s.bd_writes);
}

/* --- The writeback policy, beyond zram (policy.c) --- */

ssize_t
writeback_policy_show (struct zram *zram, char *buf, size_t len)
{
  return snprintf (buf, len, "writeback_idle=%" PRIu64 " near_limit=%d"
                   " recompress_idle=%" PRIu64 "\n",
                   zram_wb_idle (zram), zram_wb_near_limit (zram) ? 1 : 0,
                   zram_recomp_idle (zram));
}

/* Space-separated writeback_idle=SECONDS (0: off), near_limit=BOOL and
 * recompress_idle=SECONDS (0: off), all checked before anything changes;
 * at any time.
 */
ssize_t
writeback_policy_store (struct zram *zram, const char *buf, size_t len)
{
  char args[ZRAM_ATTR_MAX_WRITE + 1], *save, *name, *val;
  uint64_t secs = zram_wb_idle (zram), recomp = zram_recomp_idle (zram);
  bool near = zram_wb_near_limit (zram), first = true;
  int r;

  if (attr_pairs_start (args, sizeof args, buf, len) < 0)
    return -EINVAL;
  while ((r = attr_next_pair (args, &save, first, &name, &val)) > 0) {
    first = false;
    if (strcmp (name, "writeback_idle") == 0) {
      if (attr_parse_ull (val, strlen (val), 10, &secs) < 0)
        return -EINVAL;
    }
    else if (strcmp (name, "near_limit") == 0) {
      if (zram_parse_bool (val, &near) < 0)
        return -EINVAL;
    }
    else if (strcmp (name, "recompress_idle") == 0) {
      if (attr_parse_ull (val, strlen (val), 10, &recomp) < 0)
        return -EINVAL;
    }
    else
      return -EINVAL;
  }
  if (r < 0 || first)           /* nothing written is EINVAL too */
    return -EINVAL;
  zram_set_wb_idle (zram, secs);
  zram_set_recomp_idle (zram, recomp);
  zram_set_wb_near_limit (zram, near);
  return len;
}

ssize_t
policy_stat_show (struct zram *zram, char *buf, size_t len)
{
  struct zram_stats s;

  /* What the policy did: wrote back for writeback_idle and near
   * mem_limit, and recompressed for recompress_idle.
   */
  zram_get_stats (zram, &s);
  return snprintf (buf, len, "%8llu %8llu %8llu\n",
                   (unsigned long long) s.policy_idle_writes,
                   (unsigned long long) s.policy_limit_writes,
                   (unsigned long long) s.policy_recompressed);
}
