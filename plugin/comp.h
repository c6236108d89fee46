/* uzram compressors: zram's list, in zram's order: lzo-rle, lzo, lz4,
 * lz4hc, zstd, deflate (842 is not built: see comp.c).  lzo-rle is
 * uzram's own (lzorle.c), lzo is liblzo2's; the others are built where
 * configure found their libraries.
 *
 * Every backend compresses exactly one 4 KiB page into the calling thread's
 * output buffer and decompresses with a bounds-checked ("safe")
 * decompressor, so corrupt data gives an error and never writes past the
 * page.  Work memory is per thread, allocated on a thread's first use of a
 * backend and freed when the thread exits (a pthread key destructor): the
 * compressors share nothing and take no locks.
 *
 * Parameters (algorithm_params) are taken as zram takes them: written into
 * a struct zcomp_params while the device is uninitialised, and made into
 * a struct zcomp_conf (the algorithm, its level, its prepared dictionary)
 * when it initialises.  A conf is read-only once made, so any number of
 * threads compress and decompress with it at once.
 *
 * Each algorithm has a small id (enum zcomp_id), fixed whatever is built,
 * so that a stored block can say which algorithm wrote it: a block must be
 * decompressed by the conf that compressed it (with a dictionary, by that
 * very dictionary), which is what recompression will rely on.
 */
#ifndef UZRAM_COMP_H
#define UZRAM_COMP_H

#include <limits.h>
#include <stddef.h>

struct zcomp;
struct zcomp_conf;

/* Fixed numbers, in zram's order; an id may not be built in. */
enum zcomp_id {
  ZCOMP_LZO_RLE,
  ZCOMP_LZO,
  ZCOMP_LZ4,
  ZCOMP_LZ4HC,
  ZCOMP_ZSTD,
  ZCOMP_DEFLATE,
  ZCOMP_842,
  ZCOMP_NR_IDS
};

/* A parameter not given: the backend's default (zram's ZCOMP_PARAM_NOT_SET). */
#define ZCOMP_PARAM_NOT_SET INT_MIN
#define ZCOMP_LEVEL_DEFAULT ZCOMP_PARAM_NOT_SET

/* What algorithm_params sets for one priority.  level: zstd's and
 * deflate's level, lz4's acceleration, lz4hc's level; lzo and lzo-rle
 * have none.  deflate_winbits: zlib's windowBits, negative for raw
 * deflate (zram's default, -11), 9..15 for a zlib stream.  dict: the
 * bytes of a dictionary file (zstd, lz4, lz4hc use it; the others ignore
 * it, as zram's do), owned by the struct.
 */
struct zcomp_params {
  int level;
  int deflate_winbits;
  void *dict;
  size_t dict_len;
};

/* Every field not set, no dictionary. */
void zcomp_params_init (struct zcomp_params *p);
/* Frees the dictionary and sets every field back to not set. */
void zcomp_params_clear (struct zcomp_params *p);
/* Reads the file at path as p's dictionary (an empty file: none).
 * Returns 0, or -EINVAL if it cannot be read (as zram answers), -ENOMEM.
 */
int zcomp_params_load_dict (struct zcomp_params *p, const char *path);
/* Whether winbits is a windowBits zlib takes (raw or zlib stream). */
int zcomp_winbits_valid (int winbits);

/* The backend called name, or NULL if it is not built in. */
const struct zcomp *zcomp_find (const char *name);
/* The backend with this id, or NULL if it is not built in. */
const struct zcomp *zcomp_by_id (unsigned id);
const char *zcomp_name (const struct zcomp *comp);
enum zcomp_id zcomp_id (const struct zcomp *comp);

/* The names of the backends built in, NULL-terminated, in zram's order. */
const char *const *zcomp_names (void);

/* comp with params (NULL: every default), ready to use: a zstd dictionary
 * is digested here, once.  NULL with *err -ENOMEM, or -EINVAL if the
 * library refuses the parameters (a zstd dictionary it cannot load).
 */
struct zcomp_conf *zcomp_conf_new (const struct zcomp *comp,
                                   const struct zcomp_params *params,
                                   int *err);
void zcomp_conf_free (struct zcomp_conf *conf);
const struct zcomp *zcomp_conf_comp (const struct zcomp_conf *conf);

/* Compresses the 4096 bytes at src into the calling thread's buffer.
 * Out-of-range levels are clamped as the libraries clamp them.  On
 * success sets *dst (valid until this thread's next zcomp_compress) and
 * *dst_len, and returns 0.  Returns -ENOMEM when the thread's work memory
 * cannot be allocated, -EIO if the library fails.  The result may be
 * larger than 4096 bytes for incompressible input.
 */
int zcomp_compress (const struct zcomp_conf *conf, const void *src,
                    const void **dst, size_t *dst_len);

/* Decompresses src_len bytes at src, which must give exactly 4096 bytes, to
 * dst.  Returns 0, -EIO for corrupt data (never writing past dst + 4096), or
 * -ENOMEM when the thread's work memory cannot be allocated.
 */
int zcomp_decompress (const struct zcomp_conf *conf, const void *src,
                      size_t src_len, void *dst);

#endif /* UZRAM_COMP_H */
