/* uzram: libzsmalloc, a userspace zsmalloc.
 *
 * A memory allocator for many small objects of 1 to 4096 bytes, shaped after
 * Linux's mm/zsmalloc.c.  Objects live in zspages: chains of single 4 KiB
 * pages, not necessarily contiguous, cut into equal slots of one size class.
 * An object may span the boundary between two pages of its zspage, so the
 * caller never sees a pointer from zs_malloc, only an opaque handle, which it
 * maps before use and unmaps after.  Handles stay valid until zs_free,
 * through any number of zs_compact calls.
 *
 * Threads: any number of threads may call every function at once, on one
 * pool.  A thread maps at most one object at a time (the mapping of an object
 * that spans pages uses a per-thread buffer).
 */
#ifndef UZRAM_ZSMALLOC_H
#define UZRAM_ZSMALLOC_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The page source.  alloc_page returns one 4 KiB-aligned, 4 KiB page, or
 * NULL when there is none (zs_malloc then fails with ENOMEM).  free_page
 * takes back a page that alloc_page gave.  Both may be called from any
 * thread, concurrently.
 */
struct zs_ops {
  void *(*alloc_page) (void *ctx);
  void (*free_page) (void *ctx, void *page);
  void *ctx;
};

enum zs_mapmode {
  ZS_MM_RW,   /* read and write: an object spanning pages is copied in and out */
  ZS_MM_RO,   /* read only: copied in, not out */
  ZS_MM_WO,   /* write only: not copied in, copied out */
};

/* Creates a pool.  ops NULL: the built-in page source, which maps anonymous
 * memory in large chunks and gives freed pages back to the system.  ops is
 * copied.  Returns NULL with errno set on failure.
 */
struct zs_pool *zs_create_pool (const char *name, const struct zs_ops *ops);

/* Frees every object and page of the pool, and the pool. */
void zs_destroy_pool (struct zs_pool *pool);

/* Allocates an object of size bytes (1 to 4096).  Returns its handle, or 0
 * with errno EINVAL (size 0 or over 4096) or ENOMEM (the page source had no
 * page, or the handle table could not grow).
 */
unsigned long zs_malloc (struct zs_pool *pool, size_t size);

/* Frees the object.  handle 0 is ignored. */
void zs_free (struct zs_pool *pool, unsigned long handle);

/* Maps the object and returns a pointer to its bytes, valid until
 * zs_unmap_object.  Never fails for a live handle.  While an object is
 * mapped, compaction does not move it.
 */
void *zs_map_object (struct zs_pool *pool, unsigned long handle,
                     enum zs_mapmode mm);
void zs_unmap_object (struct zs_pool *pool, unsigned long handle);

/* Objects of at least this size go into the huge class: one object per
 * page, so storing them compressed saves nothing over storing them raw.
 */
size_t zs_huge_class_size (struct zs_pool *pool);
/* The size class an object of size bytes (1..4096) would go to, as the
 * kernel's zs_lookup_class_index: equal sizes of merged classes give one
 * index, so a smaller index means a smaller footprint.
 */
unsigned zs_lookup_class_index (struct zs_pool *pool, size_t size);

/* The most objects a pool holds at once (handle 0 is never given out);
 * past it zs_malloc fails with ENOMEM.
 */
#define ZS_MAX_OBJECTS ((1UL << 31) - 1)

/* The number of 4 KiB pages currently backing zspages. */
unsigned long zs_get_total_pages (struct zs_pool *pool);

/* Moves objects from the sparsest zspages of each class into the fullest
 * and frees the emptied zspages.  Returns the number of pages freed.
 */
unsigned long zs_compact (struct zs_pool *pool);

/* Where the built-in page source reports what it cannot do (give freed
 * memory back, populate pages), once per kind of failure per process:
 * the memory is then only used less well, so none of these is an error
 * to the caller.  fn NULL: standard error, the default.
 */
void zs_set_warn (void (*fn) (const char *msg));

/* For a pool that serves swap: the built-in page source of every pool keeps
 * up to pages pages faulted in ahead of use, refilled by a thread of its
 * own, so that zs_malloc takes memory that is already there instead of
 * waiting, on the swap device's I/O path, for reclaim that may be waiting
 * on that very I/O (as Linux's zsmalloc allocates from the reserves that
 * reclaim may dip into).  Under mlockall the pages stay resident.  0, the
 * default, keeps none.  Takes effect at each pool's next allocation;
 * call it after any fork, as the thread is not inherited.
 */
void zs_set_reserve (size_t pages);

/* Allocates and faults in the handle table for n objects now, as Linux's
 * zram allocates its table at disksize, so that a swap write does not
 * wait for memory on the I/O path when its object is the first of a
 * chunk.  0, or -1 with errno ENOMEM.
 */
int zs_populate_handles (struct zs_pool *pool, unsigned long n);

/* Faults in the calling thread's own buffer for objects that span two
 * pages (zs_map_object copies them there), for the same reason: call it
 * when a swap device's I/O thread starts.
 */
void zs_prepare_thread (void);

#define ZS_NR_FULLNESS 12

/* One size class, as zsmalloc's debugfs `classes` file shows it.  Classes
 * merged into one share a single entry (the largest size of the merge).
 */
struct zs_class_stat {
  unsigned int index;          /* the class's index */
  unsigned int size;           /* object slot size, bytes */
  unsigned int objs_per_zspage;
  unsigned int pages_per_zspage;
  unsigned long zspages;       /* zspages now allocated */
  unsigned long pages_used;    /* pages those zspages hold: at most
                                  zspages * pages_per_zspage, as a zspage
                                  takes a page when a slot first needs it */
  unsigned long obj_allocated; /* slots in those zspages */
  unsigned long obj_used;      /* slots holding a live object */
  /* zspages by how full they are, as the kernel groups them: [0] empty,
   * [1] up to 10 % in use, [2] up to 20 %, ... [9] up to 90 %, [10] over
   * 90 % but not full, [11] full.  Debugfs prints [1] to [11] as
   * "10%" .. "90%", "99%", "100%".
   */
  unsigned long fullness[ZS_NR_FULLNESS];
  unsigned long freeable;      /* zspages compaction could free now */
};

/* Fills out with up to n classes, smallest first, and returns how many
 * distinct classes the pool has (which may exceed n).
 */
size_t zs_pool_class_stats (struct zs_pool *pool,
                            struct zs_class_stat *out, size_t n);

#ifdef __cplusplus
}
#endif

#endif /* UZRAM_ZSMALLOC_H */
