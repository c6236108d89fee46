/* uzram: sizes and booleans, parsed one way everywhere (parse.h). */
#include <config.h>

#include <errno.h>
#include <string.h>
#include <strings.h>

#include "parse.h"

size_t
zram_strip_newline (const char *buf, size_t len)
{
  if (len > 0 && buf[len - 1] == '\n')
    len--;
  return len;
}

int
zram_parse_u64 (const char *buf, size_t len, uint64_t *out, size_t *used)
{
  uint64_t v = 0;
  size_t i;

  for (i = 0; i < len && buf[i] >= '0' && buf[i] <= '9'; i++) {
    unsigned d = buf[i] - '0';
    if (v > (UINT64_MAX - d) / 10)
      return -EINVAL;             /* out of range */
    v = v * 10 + d;
  }
  if (i == 0)
    return -EINVAL;               /* empty, negative, garbage */
  *out = v;
  *used = i;
  return 0;
}

/* memparse, strictly; with unit, a suffix may be spelt with "iB" or "B"
 * after it, as nbdkit's own sizes may.
 */
static int
parse_size (const char *buf, size_t len, bool unit, uint64_t *out)
{
  uint64_t v;
  size_t used, i;
  unsigned shift = 0;

  len = zram_strip_newline (buf, len);
  if (zram_parse_u64 (buf, len, &v, &used)) {
    /* All digits, yet no number: too many of them. */
    for (i = 0; i < len && buf[i] >= '0' && buf[i] <= '9'; i++)
      ;
    return i > 0 && i == len ? -ERANGE : -EINVAL;
  }
  if (used < len) {
    switch (buf[used]) {
    case 'E': case 'e': shift = 60; break;
    case 'P': case 'p': shift = 50; break;
    case 'T': case 't': shift = 40; break;
    case 'G': case 'g': shift = 30; break;
    case 'M': case 'm': shift = 20; break;
    case 'K': case 'k': shift = 10; break;
    default: return -EINVAL;
    }
    used++;
    if (unit && len - used == 2 && buf[used] == 'i' && buf[used + 1] == 'B')
      used += 2;
    else if (unit && len - used == 1 && buf[used] == 'B')
      used++;
  }
  if (used != len)
    return -EINVAL;
  if (shift && v > (UINT64_MAX >> shift))
    return -ERANGE;
  *out = v << shift;
  return 0;
}

int
zram_parse_size (const char *buf, size_t len, uint64_t *out)
{
  return parse_size (buf, len, false, out);
}

int
zram_parse_size_arg (const char *s, uint64_t *out)
{
  return parse_size (s, strlen (s), true, out);
}

int
zram_parse_bool (const char *s, bool *out)
{
  static const char *const yes[] = { "1", "true", "yes", "on", NULL };
  static const char *const no[] = { "0", "false", "no", "off", NULL };
  const char *const *w;

  for (w = yes; *w; w++)
    if (strcasecmp (*w, s) == 0) {
      *out = true;
      return 0;
    }
  for (w = no; *w; w++)
    if (strcasecmp (*w, s) == 0) {
      *out = false;
      return 0;
    }
  return -EINVAL;
}

int
zram_parse_auto_bool (const char *s, bool *is_auto, bool *on)
{
  *is_auto = strcasecmp (s, "auto") == 0;
  if (*is_auto)
    return 0;
  return zram_parse_bool (s, on);
}
