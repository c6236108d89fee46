/* uzram: what the C tests that drive zram's attribute files share (header
 * only, like testlib.h): the device under test, and show and store by
 * file name through the attribute table (plugin/attrs.c), as the control
 * filesystem calls them.
 *
 * Include it after testlib.h; the test creates the device into zram.
 */
#ifndef UZRAM_ATTRLIB_H
#define UZRAM_ATTRLIB_H

#include <string.h>
#include <sys/types.h>

#include "attrs.h"
#include "engine.h"
#include "testlib.h"

static struct zram *zram;

static inline const struct zram_attr *
attr (const char *name)
{
  const struct zram_attr *a = zram_attr_find (name);

  if (a == NULL)
    FAIL ("no attribute %s", name);
  return a;
}

/* The attribute's whole text, in a static buffer (block_state's lines for
 * a whole test device fit).
 */
static inline const char *
show (const char *name)
{
  static char buf[1 << 20];
  const struct zram_attr *a = attr (name);
  ssize_t n;

  if (a->show == NULL)
    FAIL ("%s is not readable", name);
  n = a->show (zram, buf, sizeof buf);
  CHECK (n >= 0 && (size_t) n < sizeof buf);
  return buf;
}

static inline void
expect_show (const char *name, const char *want)
{
  const char *got = show (name);

  if (strcmp (got, want) != 0)
    FAIL ("%s is \"%s\", expected \"%s\"", name, got, want);
}

/* The store's result: the length on success, else -errno. */
static inline ssize_t
store (const char *name, const char *value)
{
  const struct zram_attr *a = attr (name);

  if (a->store == NULL)
    FAIL ("%s is not writable", name);
  return a->store (zram, value, strlen (value));
}

/* want: 0 for success, else the errno the store must fail with. */
static inline void
expect_store (const char *name, const char *value, int want)
{
  ssize_t r = store (name, value);
  ssize_t w = want ? -want : (ssize_t) strlen (value);

  if (r != w)
    FAIL ("store \"%s\" to %s gave %zd, expected %zd", value, name, r, w);
}

static inline struct zram_stats
stats (void)
{
  struct zram_stats st;

  zram_get_stats (zram, &st);
  return st;
}

#endif /* UZRAM_ATTRLIB_H */
