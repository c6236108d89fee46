/* uzram: LZO1X-1 with zero runs, the stream Linux's "lzo-rle" writes.
 *
 * The stream is LZO1X (Documentation/staging/lzo.rst) as Linux's
 * lib/lzo reads it.  Version 1 (lzo-rle) begins with the two bytes 17, 1
 * and may use one more instruction: a run of 4 to 2051 zero bytes, coded
 * as an M4 copy whose distance would be 0xbfff followed by a fourth byte.
 * Version 0 is plain LZO1X, what Linux's "lzo" writes.
 *
 * The compressor makes the same choices as Linux's LZO1X-1 (a 2^13-entry
 * hash of 4-byte sequences, literal runs skipped ahead faster the longer
 * they get), so that a page compresses to the size the kernel's zram
 * gives it.  It takes one block of at most LZORLE_MAX_INPUT bytes: the
 * kernel cuts longer input into such blocks, which uzram never needs.
 *
 * The decompressor checks every read and every write: any input gives
 * either the page or an error, never an access outside the two buffers.
 */
#ifndef UZRAM_LZORLE_H
#define UZRAM_LZORLE_H

#include <stddef.h>
#include <stdint.h>

/* Work memory of the compressor: the hash table of 2^13 16-bit positions. */
#define LZORLE_WORK_SIZE (8192 * sizeof (uint16_t))

/* The largest input the compressor takes in one block: the biggest M4
 * distance of a version 1 stream plus one (0xbfff itself marks a zero run).
 */
#define LZORLE_MAX_INPUT 0xbfff

/* The worst case of the output for n bytes of input: LZO1X's bound
 * (n + n/16 + 64 + 3) and the two version bytes.
 */
#define LZORLE_BOUND(n) ((n) + (n) / 16 + 64 + 3 + 2)

/* Compresses len bytes at src (len <= LZORLE_MAX_INPUT) into dst, which
 * must hold LZORLE_BOUND (len) bytes, as stream version 1 (lzo-rle) or
 * 0 (lzo).  work: LZORLE_WORK_SIZE bytes, any contents.  Returns the
 * compressed length, or 0 if len is too big or version not 0 or 1.
 */
size_t lzorle_compress (const void *src, size_t len, void *dst, void *work,
                        int version);

/* Decompresses the len bytes at src, a stream of version 0 or 1, into dst
 * of *dst_len bytes.  Returns 0 and sets *dst_len to the bytes written if
 * the stream is whole and fits; -1 for anything else (truncated, corrupt,
 * too big for dst, or bytes after its end).
 */
int lzorle_decompress (const void *src, size_t len, void *dst,
                       size_t *dst_len);

#endif /* UZRAM_LZORLE_H */
