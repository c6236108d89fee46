/* uzram compressors: see comp.h.
 *
 * A backend is a row of `backends`, the one table: its name, its id, how
 * to make and free one thread's work memory, how to prepare a conf, and
 * compress/decompress of one page.  The table is in zram's order and only
 * holds what is built, so the comp_algorithm listing is the table.  A
 * thread's state (struct comp_thread) holds the output buffer and one work
 * pointer per id, each made on first use:
 *
 *   thread ──key──> comp_thread { out[8 KiB], work[ZCOMP_NR_IDS] }
 *
 * lzo-rle: lzorle.c, the kernel's stream version 1, in the kernel's
 *       choices (its sizes are the kernel zram's; fio-jobs/README.md).
 * lzo:  lzo1x_1_15_compress, LZO1X-1 with a 15-bit dictionary index (128 KiB
 *       of dictionary per thread); lzo1x_decompress_safe.  The stream is
 *       LZO1X, as Linux's "lzo" writes.  Of liblzo2's LZO1X-1 variants this
 *       one comes closest to the kernel's sizes (equal to lzorle.c's
 *       version 0, which is the kernel's LZO1X-1), and it compresses faster
 *       than lzo1x_1, whose per-call dictionary clearing showed in
 *       nbdkit's profile.
 * lz4:  LZ4_compress_fast_extState at acceleration 1 (LZ4_compress_default,
 *       as Linux's "lz4") or the level given (lz4 takes <1 as 1 and caps
 *       it at 65537); LZ4_decompress_safe.  With a dictionary, a stream
 *       with it loaded, copied for each page, and
 *       LZ4_decompress_safe_usingDict.
 * lz4hc: LZ4_compress_HC_extStateHC at level 9 (lz4's and zram's
 *       default) or the level given (lz4 takes <1 as 9, caps at 12); the
 *       same stream and decompressor as lz4.
 * zstd: level 3 (zstd's default, which zram's zstd backend takes when no
 *       level is given) or the level given (zstd clamps it to its range;
 *       0 is its default too), one compression and one decompression
 *       context per thread; ZSTD_decompressDCtx, which checks every
 *       bound.  With a dictionary, a CDict and a DDict made once per conf
 *       and shared.
 * deflate: zlib's deflate at level 6 (Z_DEFAULT_COMPRESSION, zram's) and
 *       windowBits -11 (raw, zram's) unless given, memLevel 7 (zram's
 *       is 9: see DEFLATE_MEMLEVEL); each thread's z_streams
 *       re-initialised when a conf differs from the last one it used.
 * 842:  not built.  Nothing in Debian implements it in software (the
 *       kernel's lib/842 is its own reimplementation of a format made for
 *       POWER's hardware), and no kernel this project runs on offers it.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lzo/lzo1x.h>
#ifdef HAVE_LZ4
#include <lz4.h>
#include <lz4hc.h>
#endif
#ifdef HAVE_ZSTD
#include <zstd.h>
#endif
#ifdef HAVE_ZLIB
#include <zlib.h>
#endif

#include "comp.h"
#include "lzorle.h"

#define PAGE_BYTES 4096

/* Room for the worst case of every backend on a 4 KiB page: lzo's bound is
 * 4096 + 4096/16 + 64 + 3 = 4419 bytes (lzo-rle's 2 more), lz4's 4128,
 * zstd's 4174, deflate's about 4120.
 */
#define COMP_OUT_SIZE (2 * PAGE_BYTES)

struct zcomp_conf {
  const struct zcomp *comp;
  int level;                            /* ZCOMP_PARAM_NOT_SET or given */
  int winbits;                          /* deflate's, always set */
  void *dict;                           /* a copy, or NULL */
  size_t dict_len;
  void *cdict, *ddict;                  /* zstd's, made from dict */
  void *stream;                         /* lz4's and lz4hc's, dict loaded */
};

struct zcomp {
  const char *name;
  enum zcomp_id id;                     /* also the index in comp_thread.work */
  void *(*work_new) (void);             /* NULL: needs no work memory */
  void (*work_free) (void *work);
  /* Prepares what conf needs beyond its fields; NULL: nothing.  Returns
   * 0 or a negative errno.
   */
  int (*conf_setup) (struct zcomp_conf *conf);
  void (*conf_release) (struct zcomp_conf *conf);
  /* Returns the compressed length, or 0 if the library failed. */
  size_t (*compress) (void *work, const struct zcomp_conf *conf,
                      const void *src, void *dst, size_t cap);
  /* Returns 0 if exactly PAGE_BYTES came out, else -1. */
  int (*decompress) (void *work, const struct zcomp_conf *conf,
                     const void *src, size_t len, void *dst);
};

/* --- lzo-rle --- */

static void *
lzorle_work_new (void)
{
  return malloc (LZORLE_WORK_SIZE);
}

static size_t
lzorle_comp (void *work, const struct zcomp_conf *conf, const void *src,
             void *dst, size_t cap)
{
  (void) conf;
  if (cap < LZORLE_BOUND (PAGE_BYTES))
    return 0;
  return lzorle_compress (src, PAGE_BYTES, dst, work, 1);
}

static int
lzorle_decomp (void *work, const struct zcomp_conf *conf, const void *src,
               size_t len, void *dst)
{
  size_t out_len = PAGE_BYTES;

  (void) work;
  (void) conf;
  return lzorle_decompress (src, len, dst, &out_len) == 0 &&
    out_len == PAGE_BYTES ? 0 : -1;
}

/* --- lzo --- */

static void *
lzo_work_new (void)
{
  return malloc (LZO1X_1_15_MEM_COMPRESS);
}

static size_t
lzo_comp (void *work, const struct zcomp_conf *conf, const void *src,
          void *dst, size_t cap)
{
  lzo_uint len = cap;

  (void) conf;
  if (lzo1x_1_15_compress (src, PAGE_BYTES, dst, &len, work) != LZO_E_OK)
    return 0;
  return len;
}

static int
lzo_decomp (void *work, const struct zcomp_conf *conf, const void *src,
            size_t len, void *dst)
{
  lzo_uint out_len = PAGE_BYTES;
  int r;

  (void) work;
  (void) conf;
  r = lzo1x_decompress_safe (src, len, dst, &out_len, NULL);
  return r == LZO_E_OK && out_len == PAGE_BYTES ? 0 : -1;
}

/* --- lz4, lz4hc --- */

#ifdef HAVE_LZ4
static void *
lz4_work_new (void)
{
  return malloc (sizeof (LZ4_stream_t));
}

static size_t
lz4_comp (void *work, const struct zcomp_conf *conf, const void *src,
          void *dst, size_t cap)
{
  int accel = conf->level == ZCOMP_PARAM_NOT_SET ? 1 : conf->level;
  int r;

  if (conf->stream) {
    memcpy (work, conf->stream, sizeof (LZ4_stream_t));
    r = LZ4_compress_fast_continue (work, src, dst, PAGE_BYTES, cap, accel);
  }
  else
    r = LZ4_compress_fast_extState (work, src, dst, PAGE_BYTES, cap, accel);
  return r > 0 ? (size_t) r : 0;
}

/* lz4 and lz4hc write the same stream. */
static int
lz4_decomp (void *work, const struct zcomp_conf *conf, const void *src,
            size_t len, void *dst)
{
  int r;

  (void) work;
  if (len > INT_MAX)
    return -1;
  if (conf->dict)
    r = LZ4_decompress_safe_usingDict (src, dst, len, PAGE_BYTES, conf->dict,
                                       conf->dict_len);
  else
    r = LZ4_decompress_safe (src, dst, len, PAGE_BYTES);
  return r == PAGE_BYTES ? 0 : -1;
}

/* With a dictionary: a stream with it loaded, made once and copied for
 * each page.  zram's backends load the dictionary for every page; the
 * copy gives the same stream at a fraction of the cost (lz4's loading
 * hashes the whole dictionary, lz4hc's chains every position of it), and
 * the library has no stable call that attaches one instead.
 */
static int
lz4_conf_setup (struct zcomp_conf *conf)
{
  if (conf->dict == NULL)
    return 0;
  conf->stream = malloc (sizeof (LZ4_stream_t));
  if (conf->stream == NULL)
    return -ENOMEM;
  LZ4_initStream (conf->stream, sizeof (LZ4_stream_t));
  LZ4_loadDict (conf->stream, conf->dict, conf->dict_len);
  return 0;
}

static void
lz4_conf_release (struct zcomp_conf *conf)
{
  free (conf->stream);
}

static int
lz4hc_conf_setup (struct zcomp_conf *conf)
{
  int level = conf->level == ZCOMP_PARAM_NOT_SET ? LZ4HC_CLEVEL_DEFAULT
                                                 : conf->level;

  if (conf->dict == NULL)
    return 0;
  conf->stream = malloc (sizeof (LZ4_streamHC_t));
  if (conf->stream == NULL)
    return -ENOMEM;
  LZ4_initStreamHC (conf->stream, sizeof (LZ4_streamHC_t));
  LZ4_resetStreamHC_fast (conf->stream, level);
  LZ4_loadDictHC (conf->stream, conf->dict, conf->dict_len);
  return 0;
}

static void *
lz4hc_work_new (void)
{
  return malloc (sizeof (LZ4_streamHC_t));
}

static size_t
lz4hc_comp (void *work, const struct zcomp_conf *conf, const void *src,
            void *dst, size_t cap)
{
  int level = conf->level == ZCOMP_PARAM_NOT_SET ? LZ4HC_CLEVEL_DEFAULT
                                                 : conf->level;
  int r;

  if (conf->stream) {
    memcpy (work, conf->stream, sizeof (LZ4_streamHC_t));
    r = LZ4_compress_HC_continue (work, src, dst, PAGE_BYTES, cap);
  }
  else
    r = LZ4_compress_HC_extStateHC (work, src, dst, PAGE_BYTES, cap, level);
  return r > 0 ? (size_t) r : 0;
}
#endif

/* --- zstd --- */

#ifdef HAVE_ZSTD
/* Unless algorithm_params gives a level: zstd's default, as zram's. */
#define ZSTD_LEVEL ZSTD_CLEVEL_DEFAULT

struct zstd_work {
  ZSTD_CCtx *cctx;
  ZSTD_DCtx *dctx;
};

static void
zstd_work_free (void *p)
{
  struct zstd_work *w = p;

  if (w == NULL)
    return;
  ZSTD_freeCCtx (w->cctx);
  ZSTD_freeDCtx (w->dctx);
  free (w);
}

static void *
zstd_work_new (void)
{
  struct zstd_work *w = calloc (1, sizeof *w);

  if (w == NULL)
    return NULL;
  w->cctx = ZSTD_createCCtx ();
  w->dctx = ZSTD_createDCtx ();
  if (w->cctx == NULL || w->dctx == NULL) {
    zstd_work_free (w);
    errno = ENOMEM;
    return NULL;
  }
  return w;
}

static int
zstd_conf_level (const struct zcomp_conf *conf)
{
  return conf->level == ZCOMP_PARAM_NOT_SET ? ZSTD_LEVEL : conf->level;
}

static int
zstd_conf_setup (struct zcomp_conf *conf)
{
  if (conf->dict == NULL)
    return 0;
  conf->cdict = ZSTD_createCDict (conf->dict, conf->dict_len,
                                  zstd_conf_level (conf));
  conf->ddict = ZSTD_createDDict (conf->dict, conf->dict_len);
  return conf->cdict && conf->ddict ? 0 : -EINVAL;
}

static void
zstd_conf_release (struct zcomp_conf *conf)
{
  ZSTD_freeCDict (conf->cdict);
  ZSTD_freeDDict (conf->ddict);
}

static size_t
zstd_comp (void *work, const struct zcomp_conf *conf, const void *src,
           void *dst, size_t cap)
{
  struct zstd_work *w = work;
  size_t r;

  if (conf->cdict)
    r = ZSTD_compress_usingCDict (w->cctx, dst, cap, src, PAGE_BYTES,
                                  conf->cdict);
  else
    r = ZSTD_compressCCtx (w->cctx, dst, cap, src, PAGE_BYTES,
                           zstd_conf_level (conf));
  return ZSTD_isError (r) ? 0 : r;
}

static int
zstd_decomp (void *work, const struct zcomp_conf *conf, const void *src,
             size_t len, void *dst)
{
  struct zstd_work *w = work;
  size_t r;

  if (conf->ddict)
    r = ZSTD_decompress_usingDDict (w->dctx, dst, PAGE_BYTES, src, len,
                                    conf->ddict);
  else
    r = ZSTD_decompressDCtx (w->dctx, dst, PAGE_BYTES, src, len);
  return !ZSTD_isError (r) && r == PAGE_BYTES ? 0 : -1;
}
#endif

/* --- deflate --- */

#ifdef HAVE_ZLIB
#define DEFLATE_WINBITS (-11)           /* zram's: raw deflate, 2 KiB window */
/* zram's is 9 (MAX_MEM_LEVEL): a hash of 2^16 heads, which deflateReset
 * clears for every page and which a 4 KiB page cannot fill.  7 is the
 * smallest level whose symbol buffer, 2^(7 + 6), still holds a whole
 * page's symbols, so that a page stays one deflate block; its 2^14 heads
 * put more strings on each chain, which costs a search some reach but
 * leaves the stream what any inflate reads.
 */
#define DEFLATE_MEMLEVEL 7

/* A thread's two z_streams, and the parameters each was set up with. */
struct deflate_work {
  z_stream c, d;
  bool c_ready, d_ready;
  int c_level, c_winbits, d_winbits;
};

static void *
deflate_work_new (void)
{
  return calloc (1, sizeof (struct deflate_work));
}

static void
deflate_work_free (void *p)
{
  struct deflate_work *w = p;

  if (w == NULL)
    return;
  if (w->c_ready)
    deflateEnd (&w->c);
  if (w->d_ready)
    inflateEnd (&w->d);
  free (w);
}

static int
deflate_conf_level (const struct zcomp_conf *conf)
{
  if (conf->level == ZCOMP_PARAM_NOT_SET)
    return Z_DEFAULT_COMPRESSION;
  /* Clamped, as zstd and lz4 clamp theirs. */
  return conf->level < Z_DEFAULT_COMPRESSION ? Z_DEFAULT_COMPRESSION
    : conf->level > Z_BEST_COMPRESSION ? Z_BEST_COMPRESSION : conf->level;
}

static size_t
deflate_comp (void *work, const struct zcomp_conf *conf, const void *src,
              void *dst, size_t cap)
{
  struct deflate_work *w = work;
  int level = deflate_conf_level (conf);

  if (w->c_ready && (w->c_level != level || w->c_winbits != conf->winbits)) {
    deflateEnd (&w->c);
    w->c_ready = false;
  }
  if (!w->c_ready) {
    memset (&w->c, 0, sizeof w->c);
    if (deflateInit2 (&w->c, level, Z_DEFLATED, conf->winbits,
                      DEFLATE_MEMLEVEL, Z_DEFAULT_STRATEGY) != Z_OK)
      return 0;
    w->c_ready = true;
    w->c_level = level;
    w->c_winbits = conf->winbits;
  }
  else if (deflateReset (&w->c) != Z_OK)
    return 0;
  w->c.next_in = (Bytef *) src;
  w->c.avail_in = PAGE_BYTES;
  w->c.next_out = dst;
  w->c.avail_out = cap;
  if (deflate (&w->c, Z_FINISH) != Z_STREAM_END)
    return 0;
  return cap - w->c.avail_out;
}

static int
deflate_decomp (void *work, const struct zcomp_conf *conf, const void *src,
                size_t len, void *dst)
{
  struct deflate_work *w = work;

  if (w->d_ready && w->d_winbits != conf->winbits) {
    inflateEnd (&w->d);
    w->d_ready = false;
  }
  if (!w->d_ready) {
    memset (&w->d, 0, sizeof w->d);
    if (inflateInit2 (&w->d, conf->winbits) != Z_OK)
      return -1;
    w->d_ready = true;
    w->d_winbits = conf->winbits;
  }
  else if (inflateReset (&w->d) != Z_OK)
    return -1;
  if (len > UINT_MAX)
    return -1;
  w->d.next_in = (Bytef *) src;
  w->d.avail_in = len;
  w->d.next_out = dst;
  w->d.avail_out = PAGE_BYTES;
  if (inflate (&w->d, Z_FINISH) != Z_STREAM_END || w->d.avail_out != 0)
    return -1;
  return 0;
}
#endif

/* The one table, in the order the comp_algorithm file lists them. */
static const struct zcomp backends[] = {
  { "lzo-rle", ZCOMP_LZO_RLE, lzorle_work_new, free, NULL, NULL,
    lzorle_comp, lzorle_decomp },
  { "lzo", ZCOMP_LZO, lzo_work_new, free, NULL, NULL, lzo_comp, lzo_decomp },
#ifdef HAVE_LZ4
  { "lz4", ZCOMP_LZ4, lz4_work_new, free, lz4_conf_setup, lz4_conf_release,
    lz4_comp, lz4_decomp },
  { "lz4hc", ZCOMP_LZ4HC, lz4hc_work_new, free, lz4hc_conf_setup,
    lz4_conf_release, lz4hc_comp, lz4_decomp },
#endif
#ifdef HAVE_ZSTD
  { "zstd", ZCOMP_ZSTD, zstd_work_new, zstd_work_free,
    zstd_conf_setup, zstd_conf_release, zstd_comp, zstd_decomp },
#endif
#ifdef HAVE_ZLIB
  { "deflate", ZCOMP_DEFLATE, deflate_work_new, deflate_work_free,
    NULL, NULL, deflate_comp, deflate_decomp },
#endif
};
#define NR_BACKENDS (sizeof backends / sizeof backends[0])

/* The table's names, filled once. */
static const char *names[NR_BACKENDS + 1];

/* --- Per-thread state --- */

struct comp_thread {
  unsigned char out[COMP_OUT_SIZE];
  void *work[ZCOMP_NR_IDS];
};

static pthread_once_t once = PTHREAD_ONCE_INIT;
static pthread_key_t key;
static int init_error;                  /* set once, read after `once` */

static void
thread_free (void *p)
{
  struct comp_thread *t = p;
  size_t i;

  for (i = 0; i < NR_BACKENDS; i++)
    if (t->work[backends[i].id])
      backends[i].work_free (t->work[backends[i].id]);
  free (t);
}

static void
init_once (void)
{
  size_t i;

  for (i = 0; i < NR_BACKENDS; i++)
    names[i] = backends[i].name;
  /* lzo_init checks that the library was built for this ABI. */
  if (lzo_init () != LZO_E_OK)
    init_error = -EIO;
  else if (pthread_key_create (&key, thread_free) != 0)
    init_error = -ENOMEM;
}

/* The calling thread's work memory for comp, made on first use; NULL with
 * *err set on failure.
 */
static struct comp_thread *
get_thread (const struct zcomp *comp, void **work, int *err)
{
  struct comp_thread *t;

  pthread_once (&once, init_once);
  if (init_error) {
    *err = init_error;
    return NULL;
  }
  t = pthread_getspecific (key);
  if (t == NULL) {
    t = calloc (1, sizeof *t);
    if (t == NULL || pthread_setspecific (key, t) != 0) {
      free (t);
      *err = -ENOMEM;
      return NULL;
    }
  }
  if (t->work[comp->id] == NULL && comp->work_new) {
    t->work[comp->id] = comp->work_new ();
    if (t->work[comp->id] == NULL) {
      *err = -ENOMEM;
      return NULL;
    }
  }
  *work = t->work[comp->id];
  return t;
}

/* --- Parameters --- */

void
zcomp_params_init (struct zcomp_params *p)
{
  p->level = ZCOMP_PARAM_NOT_SET;
  p->deflate_winbits = ZCOMP_PARAM_NOT_SET;
  p->dict = NULL;
  p->dict_len = 0;
}

void
zcomp_params_clear (struct zcomp_params *p)
{
  free (p->dict);
  zcomp_params_init (p);
}

int
zcomp_params_load_dict (struct zcomp_params *p, const char *path)
{
  unsigned char *buf = NULL;
  size_t len = 0, cap = 0;
  int fd = open (path, O_RDONLY | O_CLOEXEC);

  if (fd < 0)
    return -EINVAL;
  for (;;) {
    ssize_t n;

    if (len == cap) {
      unsigned char *nb;

      /* zram reads at most INT_MAX bytes; so does lz4's API. */
      if (cap >= INT_MAX)
        goto einval;
      cap = cap ? 2 * cap : 65536;
      if (cap > INT_MAX)
        cap = INT_MAX;
      nb = realloc (buf, cap);
      if (nb == NULL) {
        free (buf);
        close (fd);
        return -ENOMEM;
      }
      buf = nb;
    }
    n = read (fd, buf + len, cap - len);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      goto einval;
    }
    if (n == 0)
      break;
    len += n;
  }
  close (fd);
  free (p->dict);
  p->dict = len ? buf : NULL;
  p->dict_len = len;
  if (len == 0)
    free (buf);
  return 0;

 einval:
  free (buf);
  close (fd);
  return -EINVAL;
}

int
zcomp_winbits_valid (int winbits)
{
  return (winbits >= 9 && winbits <= 15) || (winbits >= -15 && winbits <= -9);
}

/* --- The interface --- */

const struct zcomp *
zcomp_find (const char *name)
{
  size_t i;

  for (i = 0; i < NR_BACKENDS; i++)
    if (strcmp (backends[i].name, name) == 0)
      return &backends[i];
  return NULL;
}

const struct zcomp *
zcomp_by_id (unsigned id)
{
  size_t i;

  for (i = 0; i < NR_BACKENDS; i++)
    if (backends[i].id == id)
      return &backends[i];
  return NULL;
}

const char *
zcomp_name (const struct zcomp *comp)
{
  return comp->name;
}

enum zcomp_id
zcomp_id (const struct zcomp *comp)
{
  return comp->id;
}

const char *const *
zcomp_names (void)
{
  pthread_once (&once, init_once);
  return names;
}

struct zcomp_conf *
zcomp_conf_new (const struct zcomp *comp, const struct zcomp_params *params,
                int *err)
{
  struct zcomp_conf *conf = calloc (1, sizeof *conf);
  int r;

  if (conf == NULL) {
    *err = -ENOMEM;
    return NULL;
  }
  conf->comp = comp;
  conf->level = ZCOMP_PARAM_NOT_SET;
#ifdef HAVE_ZLIB
  conf->winbits = DEFLATE_WINBITS;
#endif
  if (params) {
    conf->level = params->level;
    if (params->deflate_winbits != ZCOMP_PARAM_NOT_SET)
      conf->winbits = params->deflate_winbits;
    if (params->dict_len) {
      conf->dict = malloc (params->dict_len);
      if (conf->dict == NULL) {
        free (conf);
        *err = -ENOMEM;
        return NULL;
      }
      memcpy (conf->dict, params->dict, params->dict_len);
      conf->dict_len = params->dict_len;
    }
  }
  if (comp->conf_setup && (r = comp->conf_setup (conf)) < 0) {
    zcomp_conf_free (conf);
    *err = r;
    return NULL;
  }
  return conf;
}

void
zcomp_conf_free (struct zcomp_conf *conf)
{
  if (conf == NULL)
    return;
  if (conf->comp->conf_release)
    conf->comp->conf_release (conf);
  free (conf->dict);
  free (conf);
}

const struct zcomp *
zcomp_conf_comp (const struct zcomp_conf *conf)
{
  return conf->comp;
}

int
zcomp_compress (const struct zcomp_conf *conf, const void *src,
                const void **dst, size_t *dst_len)
{
  struct comp_thread *t;
  void *work;
  size_t len;
  int err;

  t = get_thread (conf->comp, &work, &err);
  if (t == NULL)
    return err;
  len = conf->comp->compress (work, conf, src, t->out, sizeof t->out);
  if (len == 0)
    return -EIO;
  *dst = t->out;
  *dst_len = len;
  return 0;
}

int
zcomp_decompress (const struct zcomp_conf *conf, const void *src,
                  size_t src_len, void *dst)
{
  void *work;
  int err;

  if (get_thread (conf->comp, &work, &err) == NULL)
    return err;
  return conf->comp->decompress (work, conf, src, src_len, dst) == 0
    ? 0 : -EIO;
}
