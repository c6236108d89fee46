/* uzram compressors: lzo (liblzo2's lzo1x_1), and lz4 and zstd where
 * configure found their libraries.
 *
 * Every backend compresses exactly one 4 KiB page into the calling thread's
 * output buffer and decompresses with its library's bounds-checked ("safe")
 * decompressor, so corrupt data gives an error and never writes past the
 * page.  Work memory is per thread, allocated on a thread's first use of a
 * backend and freed when the thread exits (a pthread key destructor): the
 * compressors share nothing and take no locks.
 *
 * A level (algorithm_params' level=) is passed with every compression,
 * as zram's backends take it: zstd's compression level, lz4's
 * acceleration; lzo has none and ignores it.  ZCOMP_LEVEL_DEFAULT is each
 * backend's own default.
 *
 * Still to do: recompression with a secondary algorithm, as Linux 6.x zram
 * has.
 */
#ifndef UZRAM_COMP_H
#define UZRAM_COMP_H

#include <limits.h>
#include <stddef.h>

struct zcomp;

/* No level given: the backend's default (zram's ZCOMP_PARAM_NOT_SET). */
#define ZCOMP_LEVEL_DEFAULT INT_MIN

/* The backend called name, or NULL if it is not built in. */
const struct zcomp *zcomp_find (const char *name);
const char *zcomp_name (const struct zcomp *comp);

/* The names of the backends built in, NULL-terminated: lzo first, then lz4
 * and zstd where built.
 */
const char *const *zcomp_names (void);

/* Compresses the 4096 bytes at src, at level (ZCOMP_LEVEL_DEFAULT, or
 * any int: out-of-range levels are clamped as zstd and lz4 clamp them),
 * into the calling thread's buffer.  On success sets *dst (valid until
 * this thread's next zcomp_compress) and *dst_len, and returns 0.  Returns -ENOMEM when the thread's work memory
 * cannot be allocated, -EIO if the library fails.  The result may be
 * larger than 4096 bytes for incompressible input.
 */
int zcomp_compress (const struct zcomp *comp, int level, const void *src,
                    const void **dst, size_t *dst_len);

/* Decompresses src_len bytes at src, which must give exactly 4096 bytes, to
 * dst.  Returns 0, -EIO for corrupt data (never writing past dst + 4096), or
 * -ENOMEM when the thread's work memory cannot be allocated.
 */
int zcomp_decompress (const struct zcomp *comp, const void *src,
                      size_t src_len, void *dst);

#endif /* UZRAM_COMP_H */
