/* uzram compressors: see comp.h.
 *
 * A backend is a row of `backends`: its name, how to make and free one
 * thread's work memory, and compress/decompress of one page.  A thread's
 * state (struct comp_thread) holds the output buffer and one work pointer
 * per backend, each made on first use:
 *
 *   thread ──key──> comp_thread { out[8 KiB], work[lzo], work[lz4], work[zstd] }
 *
 * lzo:  lzo1x_1_15_compress, LZO1X-1 with a 15-bit dictionary index (128 KiB
 *       of dictionary per thread); lzo1x_decompress_safe.  The stream is
 *       LZO1X, as Linux's "lzo" writes.  Of liblzo2's LZO1X-1 variants this
 *       one comes closest to the kernel's sizes: on the 256 MiB corpus of
 *       scripts/make-corpus.sh it stored 91769961 bytes against the kernel
 *       zram's 91771360 (lzo1x_1: 91660241, 1_12: 91988208), and it
 *       compresses about 8 % faster than lzo1x_1 (830 against 765 MB/s on
 *       one core here), whose per-call dictionary clearing was 4 % of
 *       nbdkit's time in a 4 KiB random-write profile.
 *       No levels: a level is ignored, as Linux's lzo backend does.
 * lz4:  LZ4_compress_fast_extState at acceleration 1 (LZ4_compress_default,
 *       as Linux's "lz4") or the level given (lz4 takes <1 as 1 and caps
 *       it at 65537); LZ4_decompress_safe.
 * zstd: level 1 or the level given (zstd clamps it to its range; 0 is its
 *       default, 3), one compression and one decompression context per
 *       thread; ZSTD_decompressDCtx, which checks every bound.
 */
#include <config.h>

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <lzo/lzo1x.h>
#ifdef HAVE_LZ4
#include <lz4.h>
#endif
#ifdef HAVE_ZSTD
#include <zstd.h>
#endif

#include "comp.h"

#define PAGE_BYTES 4096

/* Room for the worst case of every backend on a 4 KiB page: lzo's bound is
 * 4096 + 4096/16 + 64 + 3 = 4419 bytes, lz4's 4128, zstd's 4174.
 */
#define COMP_OUT_SIZE (2 * PAGE_BYTES)

struct zcomp {
  const char *name;
  unsigned index;                           /* in comp_thread.work */
  void *(*work_new) (void);                 /* NULL: needs no work memory */
  void (*work_free) (void *work);
  /* Returns the compressed length, or 0 if the library failed.  level:
   * ZCOMP_LEVEL_DEFAULT or the backend's own.
   */
  size_t (*compress) (void *work, int level, const void *src, void *dst,
                      size_t cap);
  /* Returns 0 if exactly PAGE_BYTES came out, else -1. */
  int (*decompress) (void *work, const void *src, size_t len, void *dst);
};

/* --- lzo --- */

static void *
lzo_work_new (void)
{
  return malloc (LZO1X_1_15_MEM_COMPRESS);
}

static size_t
lzo_compress (void *work, int level, const void *src, void *dst, size_t cap)
{
  lzo_uint len = cap;

  (void) level;
  if (lzo1x_1_15_compress (src, PAGE_BYTES, dst, &len, work) != LZO_E_OK)
    return 0;
  return len;
}

static int
lzo_decompress (void *work, const void *src, size_t len, void *dst)
{
  lzo_uint out_len = PAGE_BYTES;
  int r;

  (void) work;
  r = lzo1x_decompress_safe (src, len, dst, &out_len, NULL);
  return r == LZO_E_OK && out_len == PAGE_BYTES ? 0 : -1;
}

/* --- lz4 --- */

#ifdef HAVE_LZ4
static void *
lz4_work_new (void)
{
  return malloc (LZ4_sizeofState ());
}

static size_t
lz4_compress (void *work, int level, const void *src, void *dst, size_t cap)
{
  int accel = level == ZCOMP_LEVEL_DEFAULT ? 1 : level;
  int r = LZ4_compress_fast_extState (work, src, dst, PAGE_BYTES, cap, accel);

  return r > 0 ? (size_t) r : 0;
}

static int
lz4_decompress (void *work, const void *src, size_t len, void *dst)
{
  (void) work;
  return LZ4_decompress_safe (src, dst, len, PAGE_BYTES) == PAGE_BYTES
    ? 0 : -1;
}
#endif

/* --- zstd --- */

#ifdef HAVE_ZSTD
/* Unless algorithm_params gives a level: 1, the fastest of zstd's standard
 * levels.  Linux's zram uses zstd's default, 3.
 */
#define ZSTD_LEVEL 1

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

static size_t
zstd_compress (void *work, int level, const void *src, void *dst, size_t cap)
{
  struct zstd_work *w = work;
  size_t r = ZSTD_compressCCtx (w->cctx, dst, cap, src, PAGE_BYTES,
                                level == ZCOMP_LEVEL_DEFAULT ? ZSTD_LEVEL
                                                             : level);

  return ZSTD_isError (r) ? 0 : r;
}

static int
zstd_decompress (void *work, const void *src, size_t len, void *dst)
{
  struct zstd_work *w = work;
  size_t r = ZSTD_decompressDCtx (w->dctx, dst, PAGE_BYTES, src, len);

  return !ZSTD_isError (r) && r == PAGE_BYTES ? 0 : -1;
}
#endif

/* The order the comp_algorithm file lists them in. */
static const struct zcomp backends[] = {
  { "lzo", 0, lzo_work_new, free, lzo_compress, lzo_decompress },
#ifdef HAVE_LZ4
  { "lz4", 1, lz4_work_new, free, lz4_compress, lz4_decompress },
#endif
#ifdef HAVE_ZSTD
  { "zstd", 2, zstd_work_new, zstd_work_free, zstd_compress, zstd_decompress },
#endif
};
#define NR_BACKENDS (sizeof backends / sizeof backends[0])
#define NR_WORK 3                       /* every index above, built or not */

static const char *const names[] = {
  "lzo",
#ifdef HAVE_LZ4
  "lz4",
#endif
#ifdef HAVE_ZSTD
  "zstd",
#endif
  NULL
};

/* --- Per-thread state --- */

struct comp_thread {
  unsigned char out[COMP_OUT_SIZE];
  void *work[NR_WORK];
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
    if (t->work[backends[i].index])
      backends[i].work_free (t->work[backends[i].index]);
  free (t);
}

static void
init_once (void)
{
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
  if (t->work[comp->index] == NULL && comp->work_new) {
    t->work[comp->index] = comp->work_new ();
    if (t->work[comp->index] == NULL) {
      *err = -ENOMEM;
      return NULL;
    }
  }
  *work = t->work[comp->index];
  return t;
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

const char *
zcomp_name (const struct zcomp *comp)
{
  return comp->name;
}

const char *const *
zcomp_names (void)
{
  return names;
}

int
zcomp_compress (const struct zcomp *comp, int level, const void *src,
                const void **dst, size_t *dst_len)
{
  struct comp_thread *t;
  void *work;
  size_t len;
  int err;

  t = get_thread (comp, &work, &err);
  if (t == NULL)
    return err;
  len = comp->compress (work, level, src, t->out, sizeof t->out);
  if (len == 0)
    return -EIO;
  *dst = t->out;
  *dst_len = len;
  return 0;
}

int
zcomp_decompress (const struct zcomp *comp, const void *src, size_t src_len,
                  void *dst)
{
  void *work;
  int err;

  if (get_thread (comp, &work, &err) == NULL)
    return err;
  return comp->decompress (work, src, src_len, dst) == 0 ? 0 : -EIO;
}
