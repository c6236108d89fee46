/* libFuzzer target: the allocator against a shadow model.
 *
 * The input is a program of byte-coded operations on a pool whose page
 * source can be told to fail: malloc, free, map and write, map and check,
 * compact, and page-source failure on/off.  A shadow copy of every live
 * object's bytes is kept; every read must match it, and at the end every
 * object is checked, freed, and the pool must hold no pages.
 */
#include <assert.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "zsmalloc.h"

#define MAX_OBJS 512

struct obj {
  unsigned long handle;
  size_t size;
  uint8_t *shadow;
};

struct source {
  int failing;
  long pages;
};

static void *
src_alloc (void *ctx)
{
  struct source *s = ctx;
  void *p;
  if (s->failing)
    return NULL;
  if (posix_memalign (&p, 4096, 4096) != 0)
    return NULL;
  s->pages++;
  return p;
}

static void
src_free (void *ctx, void *page)
{
  struct source *s = ctx;
  s->pages--;
  free (page);
}

static void
check (struct zs_pool *pool, struct obj *o)
{
  const uint8_t *p = zs_map_object (pool, o->handle, ZS_MM_RO);
  if (memcmp (p, o->shadow, o->size) != 0) {
    fprintf (stderr, "object %#lx of %zu bytes differs from its shadow\n",
             o->handle, o->size);
    abort ();
  }
  zs_unmap_object (pool, o->handle);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t len)
{
  struct source src = { 0, 0 };
  struct zs_ops ops = { src_alloc, src_free, &src };
  struct zs_pool *pool = zs_create_pool ("fuzz", &ops);
  static struct obj objs[MAX_OBJS];
  size_t n = 0, i = 0;
  uint8_t fill = 1;

  assert (pool);
  while (i + 3 <= len) {
    uint8_t op = data[i] % 6;
    unsigned arg = data[i + 1] | (data[i + 2] << 8);
    i += 3;
    switch (op) {
    case 0: case 1: {           /* malloc: sizes 0..4097 and beyond */
      size_t size = arg % 4100;
      unsigned long h;
      if (n == MAX_OBJS)
        break;
      errno = 0;
      h = zs_malloc (pool, size);
      if (size == 0 || size > 4096) {
        if (h != 0 || errno != EINVAL)
          abort ();
        break;
      }
      if (h == 0) {
        if (errno != ENOMEM || !src.failing)
          abort ();
        break;
      }
      objs[n].handle = h;
      objs[n].size = size;
      objs[n].shadow = malloc (size);
      memset (objs[n].shadow, fill, size);
      for (size_t b = 0; b < size; b += 97)
        objs[n].shadow[b] = (uint8_t) (b ^ fill);
      uint8_t *p = zs_map_object (pool, h, ZS_MM_WO);
      memcpy (p, objs[n].shadow, size);
      zs_unmap_object (pool, h);
      fill++;
      n++;
      break;
    }
    case 2:                     /* free */
      if (n) {
        struct obj *o = &objs[arg % n];
        check (pool, o);
        zs_free (pool, o->handle);
        free (o->shadow);
        *o = objs[--n];
      }
      break;
    case 3:                     /* RW map: change some bytes in place */
      if (n) {
        struct obj *o = &objs[arg % n];
        uint8_t *p = zs_map_object (pool, o->handle, ZS_MM_RW);
        size_t at = (arg >> 3) % o->size;
        if (memcmp (p, o->shadow, o->size) != 0)
          abort ();
        p[at] ^= 0x5a;
        o->shadow[at] ^= 0x5a;
        zs_unmap_object (pool, o->handle);
      }
      break;
    case 4:                     /* compact */
      zs_compact (pool);
      break;
    case 5:                     /* page source fails / recovers */
      src.failing = arg & 1;
      break;
    }
  }
  for (size_t k = 0; k < n; k++) {
    check (pool, &objs[k]);
    zs_free (pool, objs[k].handle);
    free (objs[k].shadow);
  }
  zs_compact (pool);
  if (zs_get_total_pages (pool) != 0) {
    fprintf (stderr, "%lu pages held with no object live\n",
             zs_get_total_pages (pool));
    abort ();
  }
  zs_destroy_pool (pool);
  if (src.pages != 0) {
    fprintf (stderr, "%ld pages not given back by zs_destroy_pool\n", src.pages);
    abort ();
  }
  return 0;
}
