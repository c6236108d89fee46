/* uzram: LZO1X-1 with zero runs (lzo-rle); see lzorle.h.
 *
 * The instructions, as the decompressor reads them (state: how many
 * literals the previous instruction copied, 4 meaning "4 or more"):
 *
 *   0000LLLL   state 0: literal run, 3 + L bytes (L = 0: 18 + extension)
 *   0000DDSS B state 1-3: copy 2 bytes from 1 + D + 4B back
 *              state 4:   copy 3 bytes from 2049 + D + 4B back
 *   0001HLLL   copy 2 + L bytes (L = 0: 9 + extension) from
 *   DDDDDDSS   16384 + 16384H + D back; H = 0 and D = 0 is the end
 *   DDDDDDDD   (then L must be 1);  version 1: H = 1 and D all ones is
 *   [X]        a run of (8X | L) + 4 zero bytes instead, X following
 *   001LLLLL   copy 2 + L bytes (L = 0: 33 + extension) from 1 + D back,
 *   DDDDDDSS   D the 14 bits of the two bytes that follow
 *   DDDDDDDD
 *   LLLDDDSS B copy L + 1 bytes (L >= 2) from 1 + D + 8B back
 *
 * SS is the number of literals (0-3) copied after the instruction.  An
 * extension is any number of zero bytes, each adding 255, and then one
 * nonzero byte added as it is.  The first byte of a stream may also be
 * 18..255: a literal run of byte - 17.  Version 1 streams start with
 * 17, 1 (17 cannot otherwise start a stream of 5 bytes or more).
 *
 * The compressor is Linux's LZO1X-1 in its choices, not in its code:
 * that is what makes its sizes the kernel's.  Positions are hashed from
 * their next four bytes; the table remembers the last position with each
 * hash; a position whose four bytes match the remembered one's starts a
 * match, extended as far as the bytes agree.  Between matches the scan
 * steps faster through input that finds none (1 + run/32 bytes a step),
 * which is what makes LZO fast on incompressible data.  In version 1 a
 * position whose four bytes are zero starts a zero run instead of a hash
 * lookup.
 */
#include <config.h>

#include <endian.h>
#include <string.h>

#include "lzorle.h"

#define D_BITS 13                     /* the hash table's size, as Linux's */
#define HASH_MUL 0x1824429du          /* Linux's LZO1X-1 multiplier */

#define M2_MAX_LEN 8
#define M2_MAX_OFFSET 0x0800
#define M3_MAX_OFFSET 0x4000
#define M3_MARKER 32
#define M4_MARKER 16
#define MIN_ZERO_RUN 4
#define MAX_ZERO_RUN (2047 + MIN_ZERO_RUN)   /* 11 bits of length */

/* Neither the compressor nor the decompressor looks further than this
 * from the end of the input for a match: the last bytes are literals.
 */
#define TAIL 20

static inline uint32_t
load32 (const unsigned char *p)
{
  uint32_t v;

  memcpy (&v, p, sizeof v);
  return le32toh (v);
}

static inline uint64_t
load64 (const unsigned char *p)
{
  uint64_t v;

  memcpy (&v, p, sizeof v);
  return le64toh (v);
}

/* --- Compressor --- */

/* A count n in an instruction whose field holds up to max: n itself if
 * it fits (n is never 0 here), else a zero field and an extension.
 */
static unsigned char *
put_count (unsigned char *op, unsigned marker, size_t n, size_t max)
{
  if (n <= max) {
    *op++ = marker | n;
    return op;
  }
  *op++ = marker;
  n -= max;
  while (n > 255) {
    n -= 255;
    *op++ = 0;
  }
  *op++ = n;
  return op;
}

/* The instruction, or SS bits, for t literals after the instruction whose
 * SS bits are at op[state]; the literals themselves follow it.
 */
static inline unsigned char *
put_literal_count (unsigned char *op, int state, size_t t)
{
  if (t <= 3)
    op[state] |= t;
  else if (t <= 18)
    *op++ = t - 3;
  else
    op = put_count (op, 0, t - 3, 15);
  return op;
}

/* How many zero bytes start at ip (whose first four are zero), up to
 * limit and MAX_ZERO_RUN.
 */
static size_t
zero_run (const unsigned char *ip, const unsigned char *limit)
{
  const unsigned char *ir = ip + 4;
  size_t n;

  for (; ir + 8 <= limit; ir += 8) {
    uint64_t v = load64 (ir);

    if (v) {
      ir += __builtin_ctzll (v) / 8;
      goto done;
    }
  }
  while (ir < limit && *ir == 0)
    ir++;
 done:
  n = ir - ip;
  return n > MAX_ZERO_RUN ? MAX_ZERO_RUN : n;
}

/* How far the bytes at ip and m agree, given that the first four do;
 * stops once ip reaches ip_end (reading at most 16 bytes past it).
 */
static size_t
match_len (const unsigned char *ip, const unsigned char *m,
           const unsigned char *ip_end)
{
  size_t n = 4;
  uint64_t v = load64 (ip + n) ^ load64 (m + n);

  while (v == 0) {
    n += 8;
    v = load64 (ip + n) ^ load64 (m + n);
    if (ip + n >= ip_end)
      return n;
  }
  return n + __builtin_ctzll (v) / 8;
}

/* One block: every instruction but the trailing literals and the end.
 * *state is where the last instruction's SS bits are, relative to the
 * returned output pointer; *lit the first input byte not yet written.
 * op_limit is 16 bytes before the end of dst.  Inlined once for each
 * version, so that the version test leaves the scan's loop.
 */
static inline __attribute__ ((always_inline)) unsigned char *
compress_block (const unsigned char *in, size_t len, unsigned char *op,
                const unsigned char *op_limit, uint16_t *dict, int version,
                int *statep, const unsigned char **lit)
{
  const unsigned char *ip_end = in + len - TAIL;
  int state = *statep;
  const unsigned char *ii = in;         /* literals start here */
  const unsigned char *ip = in + 4;

  for (;;) {
    const unsigned char *m_pos = NULL;
    size_t m_len, m_off, run;
    uint32_t dv;

    ip += 1 + ((ip - ii) >> 5);
  next:
    if (ip >= ip_end)
      break;
    run = 0;
    dv = load32 (ip);
    if (dv == 0 && version) {
      const unsigned char *limit = ip + MAX_ZERO_RUN + 1;

      run = zero_run (ip, limit < ip_end ? limit : ip_end);
    }
    else {
      uint32_t h = (dv * HASH_MUL) >> (32 - D_BITS);

      m_pos = in + dict[h];
      dict[h] = ip - in;
      if (dv != load32 (m_pos))
        continue;
    }

    if (ip > ii) {
      size_t t = ip - ii;

      /* A short run is copied 16 bytes at once, a fixed-size copy instead
       * of a call: the input has them (the scan stops TAIL bytes before
       * its end), and op_limit keeps the bytes beyond the run inside dst.
       */
      op = put_literal_count (op, state, t);
      if (t <= 16 && op <= op_limit)
        memcpy (op, ii, 16);
      else
        memcpy (op, ii, t);
      op += t;
    }

    if (run) {
      /* An M4 with H = 1 and every distance bit set, SS 0, then X. */
      size_t r = run - MIN_ZERO_RUN;

      *op++ = M4_MARKER | 8 | (r & 7);
      *op++ = 0xfc;
      *op++ = 0xff;
      *op++ = r >> 3;
      state = -3;
      ip += run;
      ii = ip;
      goto next;
    }

    m_len = match_len (ip, m_pos, ip_end);
    m_off = ip - m_pos;
    ip += m_len;
    if (m_len <= M2_MAX_LEN && m_off <= M2_MAX_OFFSET) {
      m_off -= 1;
      *op++ = ((m_len - 1) << 5) | ((m_off & 7) << 2);
      *op++ = m_off >> 3;
    }
    else if (m_off <= M3_MAX_OFFSET) {
      m_off -= 1;
      op = put_count (op, M3_MARKER, m_len - 2, 31);
      *op++ = (m_off & 0x3f) << 2;
      *op++ = m_off >> 6;
    }
    else {
      m_off -= 0x4000;
      /* In version 1, an extended M4 of length 261..264 whose distance
       * has these bits set reads like a zero run: shorten it.
       */
      if (version && (m_off & 0x403f) == 0x403f && m_len >= 261 &&
          m_len <= 264) {
        ip -= m_len - 260;
        m_len = 260;
      }
      op = put_count (op, M4_MARKER | ((m_off >> 11) & 8), m_len - 2, 7);
      *op++ = (m_off & 0x3f) << 2;
      *op++ = m_off >> 6;
    }
    state = -2;
    ii = ip;
    goto next;
  }
  *statep = state;
  *lit = ii;
  return op;
}

size_t
lzorle_compress (const void *src, size_t len, void *dst, void *work,
                 int version)
{
  const unsigned char *in = src, *ii = in;
  unsigned char *out = dst, *op = out, *data_start;
  int state = -2;
  size_t t;

  if (len > LZORLE_MAX_INPUT || (version != 0 && version != 1))
    return 0;
  if (version) {
    *op++ = 17;
    *op++ = version;
  }
  data_start = op;
  if (len > TAIL) {
    const unsigned char *op_limit = out + LZORLE_BOUND (len) - 16;

    memset (work, 0, LZORLE_WORK_SIZE);
    if (version)
      op = compress_block (in, len, op, op_limit, work, 1, &state, &ii);
    else
      op = compress_block (in, len, op, op_limit, work, 0, &state, &ii);
  }
  t = in + len - ii;
  if (t > 0) {
    if (op == data_start && t <= 238) {
      *op++ = 17 + t;
      memcpy (op, ii, t);
      op += t;
    }
    else {
      op = put_literal_count (op, state, t);
      memcpy (op, ii, t);
      op += t;
    }
  }
  /* The end: an M4 of length 3 at distance 16384. */
  *op++ = M4_MARKER | 1;
  *op++ = 0;
  *op++ = 0;
  return op - out;
}

/* --- Decompressor --- */

/* An extension at *ipp: zero bytes worth 255 each, then a nonzero byte.
 * Returns -1 if the input ends first.
 */
static int
get_extension (const unsigned char **ipp, const unsigned char *ip_end,
               size_t *n)
{
  const unsigned char *ip = *ipp;
  size_t zeros = 0;

  while (ip < ip_end && *ip == 0) {
    ip++;
    zeros++;
  }
  if (ip >= ip_end)
    return -1;
  *n = zeros * 255 + *ip++;
  *ipp = ip;
  return 0;
}

/* Copies n bytes from dist back; the regions may overlap (a run). */
static void
copy_match (unsigned char *op, size_t dist, size_t n)
{
  const unsigned char *m = op - dist;

  if (dist >= 8) {
    for (; n >= 8; n -= 8, op += 8, m += 8)
      memcpy (op, m, 8);
  }
  while (n--)
    *op++ = *m++;
}

int
lzorle_decompress (const void *src, size_t len, void *dst, size_t *dst_len)
{
  const unsigned char *ip = src, *const ip_end = ip + len;
  unsigned char *const out = dst, *op = out;
  unsigned char *const op_end = out + *dst_len;
  size_t t, m_len, dist, next, state = 0;
  int version = 0;

#define NEED_IP(n) do { if ((size_t) (ip_end - ip) < (n)) return -1; } while (0)
#define NEED_OP(n) do { if ((size_t) (op_end - op) < (n)) return -1; } while (0)

  if (len < 3)
    return -1;
  if (len >= 5 && ip[0] == 17) {
    version = ip[1];
    ip += 2;
  }
  if (*ip > 17) {
    t = *ip++ - 17;
    if (t < 4) {
      next = t;
      goto literals_after;
    }
    goto literal_run;
  }

  for (;;) {
    NEED_IP (1);
    t = *ip++;
    if (t < 16) {
      if (state == 0) {
        if (t == 0) {
          if (get_extension (&ip, ip_end, &t) < 0)
            return -1;
          t += 15;
        }
        t += 3;
      literal_run:
        NEED_IP (t);
        NEED_OP (t);
        memcpy (op, ip, t);
        op += t;
        ip += t;
        state = 4;
        continue;
      }
      NEED_IP (1);
      next = t & 3;
      dist = 1 + (t >> 2) + ((size_t) *ip++ << 2);
      if (state == 4) {
        dist += M2_MAX_OFFSET;
        m_len = 3;
      }
      else
        m_len = 2;
    }
    else if (t >= 64) {
      NEED_IP (1);
      next = t & 3;
      dist = 1 + ((t >> 2) & 7) + ((size_t) *ip++ << 3);
      m_len = (t >> 5) + 1;
    }
    else if (t >= 32) {
      m_len = t & 31;
      if (m_len == 0) {
        if (get_extension (&ip, ip_end, &m_len) < 0)
          return -1;
        m_len += 31;
      }
      m_len += 2;
      NEED_IP (2);
      next = ip[0] & 3;
      dist = 1 + ((ip[0] >> 2) | ((size_t) ip[1] << 6));
      ip += 2;
    }
    else {
      NEED_IP (2);
      if (version && (t & 0xf8) == 0x18 && (ip[0] & 0xfc) == 0xfc &&
          ip[1] == 0xff) {
        /* A zero run. */
        NEED_IP (3);
        m_len = ((t & 7) | ((size_t) ip[2] << 3)) + MIN_ZERO_RUN;
        next = ip[0] & 3;
        ip += 3;
        NEED_OP (m_len);
        memset (op, 0, m_len);
        op += m_len;
        goto literals_after;
      }
      m_len = t & 7;
      if (m_len == 0) {
        if (get_extension (&ip, ip_end, &m_len) < 0)
          return -1;
        m_len += 7;
        NEED_IP (2);
      }
      m_len += 2;
      next = ip[0] & 3;
      dist = ((t & 8) << 11) + ((ip[0] >> 2) | ((size_t) ip[1] << 6));
      ip += 2;
      if (dist == 0) {
        /* The end: it must be the length-3 form, and the last bytes. */
        if (m_len != 3 || ip != ip_end)
          return -1;
        *dst_len = op - out;
        return 0;
      }
      dist += 0x4000;
    }

    if (dist > (size_t) (op - out))
      return -1;
    NEED_OP (m_len);
    copy_match (op, dist, m_len);
    op += m_len;

  literals_after:
    state = next;
    if (next) {
      NEED_IP (next);
      NEED_OP (next);
      memcpy (op, ip, next);
      op += next;
      ip += next;
    }
  }
#undef NEED_IP
#undef NEED_OP
}
