/* uzram: libzsmalloc's page source, internal to allocator/.
 *
 * Hands out single 4 KiB pages to zspages and takes them back.  Either the
 * caller's struct zs_ops, or the built-in source (pagesrc.c), which maps
 * anonymous memory in 2 MiB chunks and gives freed pages back to the system.
 */
#ifndef UZRAM_PAGESRC_H
#define UZRAM_PAGESRC_H

#include <stdbool.h>

#include "zsmalloc.h"

#define ZS_PAGE_SHIFT 12
#define ZS_PAGE_SIZE (1UL << ZS_PAGE_SHIFT)

struct page_source;

/* ops NULL: the built-in mmap source.  Returns NULL with errno on failure. */
struct page_source *pagesrc_create (const struct zs_ops *ops);

/* Unmaps every chunk of the built-in source; pages still out are lost. */
void pagesrc_destroy (struct page_source *src);

/* Fills pages[0..n-1].  Returns 0, or -1 with errno ENOMEM and no page taken. */
int pagesrc_alloc (struct page_source *src, void **pages, unsigned n);

/* Takes back n pages that pagesrc_alloc gave. */
void pagesrc_free (struct page_source *src, void *const *pages, unsigned n);

/* Whether the source keeps a reserve for swap (zs_set_reserve): then
 * the pool's own bookkeeping also comes from pages that are already
 * there, not from malloc.
 */
bool pagesrc_reserving (const struct page_source *src);

/* Gives every cached free page back to the system now. */
void pagesrc_trim (struct page_source *src);

#endif /* UZRAM_PAGESRC_H */
