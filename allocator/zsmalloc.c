/* uzram: libzsmalloc, a userspace zsmalloc.
 *
 * Data structure
 * --------------
 * Objects of 1..4096 bytes are rounded up to a size class (32 bytes, then
 * steps of ZS_CLASS_DELTA).  A size class cuts zspages into equal slots: a
 * zspage is a chain of pages_per_zspage single 4 KiB pages from the page
 * source (pagesrc.c), not contiguous, and a slot may span the boundary
 * between two of them:
 *
 *   e.g. slots of 1328 bytes in 3 pages: 9 slots, 336 bytes of tail waste
 *
 *   pages[0]                pages[1]                pages[2]
 *   [ 0  ][ 1  ][ 2  ][ 3 : 3 ][ 4  ][ 5  ][ 6 : 6 ][ 7  ][ 8  ][tail]
 *                      slot 3 spans        slot 6 spans
 *
 * Per class, pages_per_zspage (1..ZS_MAX_PAGES_PER_ZSPAGE) is the chain
 * that wastes least in its tail (see the constants); neighbouring classes
 * that end up with the same pages and objects per zspage are merged into the
 * largest of them, as they would hold the same count in the same pages.
 * The class of one object per page is the huge class; zs_huge_class_size()
 * is the smallest size that lands there.
 *
 * The page bytes hold nothing but object data.  Per zspage, a small header
 * (struct zspage, malloc'd, or with a reserve for swap carved from the
 * source's pages: alloc_header) holds the page pointers and the reverse map:
 * one 32-bit word per slot, the handle index of the object in it, or, for a
 * free slot, the next free slot (the zspage's free list).  A zspage takes
 * each page only when a slot first lies on it; a new zspage hands out its
 * slots in order, so a class's last, partly filled zspage holds only the
 * pages it uses (the kernel's allocates all of them at once).
 *
 * Handles: an object's handle is the index of a handle slot, a word that
 * holds the object's location (zspage, slot, class).  Compaction moves the
 * object and rewrites the word; the handle never changes.  Handle slots
 * live in chunks of HANDLE_CHUNK slots, reached through a directory that is
 * filled in with a compare-and-swap, so the table grows without a lock.
 * Free handle slots are chained through their own word, in HANDLE_SHARDS
 * free lists, each with its own lock; a thread uses one shard and steals
 * from the others before taking a never-used index.  Cost: 8 bytes per
 * handle, plus the 4-byte reverse map word per slot.
 *
 *   handle slot word, live:  zspage>>4 (44 bits) | class (8) | slot (11) | 1
 *   handle slot word, free:  next free handle index << 1
 *
 * Fullness: each class keeps its zspages in ZS_NR_FULLNESS lists by the
 * share of slots in use (0 empty, 1..9 up to 10..90 %, 10 over 90 % but not
 * full, 11 full).  Allocation takes the fullest zspage that has room;
 * compaction empties the sparsest into the fullest and frees it, then
 * packs each partly filled zspage into its lowest slots and gives back the
 * pages past them.
 *
 * Mapping: zs_map_object looks the handle up under the class's migrate
 * lock (read side), pins the zspage (zspage->pins) and drops the lock; the
 * pin alone keeps compaction from moving anything out of that zspage until
 * zs_unmap_object.  An object inside one page is returned in place; one
 * that spans two pages is copied into a per-thread buffer (in for RO and
 * RW) and back (out for WO and RW) at unmap.
 *
 * Lock order
 * ----------
 *   class->migrate (rwlock)  write: zs_compact; read: zs_map_object lookup
 *     class->lock (mutex)    zspage lists, slots, reverse maps, counters,
 *                            and the handle words of the class's objects
 *       shard->lock          leaf: a handle free list
 *       src->lock            leaf: the page source (pagesrc.c)
 * Only one class's locks are held at a time.  zspage->pins is not a lock:
 * it is taken under migrate (read) and dropped with no lock held.  Shard
 * locks are in fact taken only outside class->lock.  The page source is
 * called under class->lock for single pages (a slot's first use, packing),
 * and may then map a 2 MiB chunk or madvise a batch of pages, once per
 * hundreds of pages; whole zspages are freed with no lock held.
 *
 * To do: per-thread handle and zspage caches if profiles show the shard or
 * class locks; migration of pages for NUMA or defragmentation.
 */
#include <config.h>

#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "zsmalloc.h"
#include "pagesrc.h"

/* Largest object: a 4 KiB block that did not compress. */
#define ZS_MAX_ALLOC 4096

/* Smallest slot.  Smaller objects share it; below 32 bytes the per-object
 * metadata (12 bytes) would cost more than finer classes save.
 */
#define ZS_MIN_ALLOC 32

/* Class spacing.  A multiple of 8, so that every slot starts 8-aligned
 * (slot offsets are multiples of the class size), and fine enough that
 * rounding up wastes ~ZS_CLASS_DELTA/2 bytes per object, under 0.5 % of a
 * typical 1.4 KiB compressed page.
 */
#ifndef ZS_CLASS_DELTA
#define ZS_CLASS_DELTA 16
#endif

/* Longest chain, and how a class picks its chain length: the shortest
 * chain whose tail wastes at most ZS_TAIL_WASTE_PPM of it, else the one
 * that wastes least (0: simply the least waste, the shorter on a tie).
 * A longer chain wastes less in its tail, but after compaction a class may
 * keep up to a zspage's worth of free slots, and more objects span pages
 * (and are copied when mapped).  Measured with tests/bench-zsmalloc
 * (fio-jobs/README.md has the figures), longer chains win on large pools
 * and lose on small ones once compacted: 8, as the kernel's default, is
 * the even choice across pool sizes.  A threshold helped only before
 * pages were lazy and zspages packed.  Steps of 8 did worse.
 * Overridable at build time for such experiments.
 */
#ifndef ZS_MAX_PAGES_PER_ZSPAGE
#define ZS_MAX_PAGES_PER_ZSPAGE 8
#endif
#ifndef ZS_TAIL_WASTE_PPM
#define ZS_TAIL_WASTE_PPM 0
#endif

#define ZS_NR_SIZES ((ZS_MAX_ALLOC - ZS_MIN_ALLOC) / ZS_CLASS_DELTA + 1)

/* Handle word fields (see the top).  The zspage header is 16-aligned (as
 * malloc aligns anyway on 64-bit), so its low 4 bits are zero, and user
 * addresses are below 2^48, so the pointer fits in the top 44 bits.  That
 * leaves 11 bits for the slot (at most 8 * 4096 / 32 = 1024 slots) and 8
 * for the class (255 sizes in steps of 16).
 */
#define OBJ_IDX_BITS 11
#define CLASS_IDX_BITS 8
#define OBJ_IDX_SHIFT 1
#define CLASS_IDX_SHIFT (OBJ_IDX_SHIFT + OBJ_IDX_BITS)
#define ZSPAGE_SHIFT (CLASS_IDX_SHIFT + CLASS_IDX_BITS)
#define ZSPAGE_ALIGN 16
#define ZSPAGE_ALIGN_BITS 4
#define HANDLE_LIVE 1UL

/* Reverse map: a free slot's word has REVMAP_FREE set and the next free
 * slot below it (REVMAP_NIL ends the list).  So handle indices stay below
 * 2^31 (HANDLE_MAX).
 */
#define REVMAP_FREE 0x80000000u
#define REVMAP_NIL 0xffffu

/* Handle table: 8192 words (64 KiB) per chunk, 2^18 chunks in the
 * directory: up to 2^31 handles, as many as the reverse map can name
 * (HANDLE_MAX), with at most one chunk (64 KiB) of handle words not yet
 * used.  The directory is 2 MiB of address space, but calloc maps so
 * large a block fresh, and only the pages of chunks in use are touched.
 */
#define HANDLE_CHUNK_BITS 13
#define HANDLE_CHUNK (1UL << HANDLE_CHUNK_BITS)
#define HANDLE_DIR_BITS 18
#define HANDLE_MAX (1UL << (HANDLE_CHUNK_BITS + HANDLE_DIR_BITS))

/* Handle free lists: enough that a few dozen threads rarely share one. */
#define HANDLE_SHARDS 16

enum fullness {
  ZS_EMPTY = 0,
  ZS_ALMOST_FULL = ZS_NR_FULLNESS - 2,   /* over 90 %, not full */
  ZS_FULL = ZS_NR_FULLNESS - 1,
};

_Static_assert (sizeof (unsigned long) == 8 && sizeof (void *) == 8,
                "handle words pack a pointer: 64-bit only");
_Static_assert (ZS_CLASS_DELTA % 8 == 0, "slots must stay 8-aligned");
_Static_assert (ZS_MAX_PAGES_PER_ZSPAGE * ZS_PAGE_SIZE / ZS_MIN_ALLOC
                < (1 << OBJ_IDX_BITS), "slot index must fit its field");
_Static_assert (ZS_MAX_PAGES_PER_ZSPAGE * ZS_PAGE_SIZE / ZS_MIN_ALLOC
                < REVMAP_NIL, "slot index must not reach REVMAP_NIL");
_Static_assert (ZS_NR_SIZES <= (1 << CLASS_IDX_BITS),
                "class index must fit its field");
_Static_assert (ZSPAGE_SHIFT + 48 - ZSPAGE_ALIGN_BITS <= 64,
                "zspage pointer must fit the handle word");
_Static_assert (HANDLE_MAX <= REVMAP_FREE, "handle index must fit revmap");
_Static_assert (HANDLE_MAX - 1 == ZS_MAX_OBJECTS,
                "zsmalloc.h must say how many objects a pool holds");
_Static_assert (ZS_MAX_PAGES_PER_ZSPAGE <= UINT8_MAX,
                "zspage->nr_pages must count them");

struct size_class;

struct zspage {
  struct zspage *prev, *next;      /* fullness list; class->lock */
  struct size_class *class;
  atomic_int pins;                 /* mapped objects; see zs_map_object */
  uint16_t inuse;                  /* class->lock */
  uint16_t free_head;              /* first free slot; class->lock */
  uint8_t fullness;                /* class->lock */
  uint8_t nr_pages;                /* pages[] not NULL; class->lock */
  bool on_page;                    /* header carved from a pool page */
  /* pages_per_zspage page pointers, NULL until a slot first needs that
   * page (class->lock); then the revmap.
   */
  void *pages[];
};

struct size_class {
  alignas (64) pthread_mutex_t lock;
  pthread_rwlock_t migrate;
  unsigned index;                  /* in pool->classes[] and handle words */
  unsigned size;                   /* slot size */
  unsigned objs_per_zspage;
  unsigned pages_per_zspage;
  size_t header_size;              /* bytes of struct zspage + arrays */
  /* class->lock: */
  struct zspage *fullness_list[ZS_NR_FULLNESS];
  unsigned long nr_fullness[ZS_NR_FULLNESS];
  unsigned long zspages;
  unsigned long pages;             /* pages the zspages hold */
  unsigned long obj_used;
  /* With a reserve (pagesrc_reserving): headers carved from pages of
   * the source, and the free ones; class->lock.
   */
  struct zspage *free_headers;
  void *header_pages;              /* linked through their first word */
};

struct handle_shard {
  alignas (64) pthread_mutex_t lock;
  atomic_ulong head;               /* free handle index, 0: none; lock */
};

struct zs_pool {
  char *name;
  struct page_source *src;
  /* classes[i] serves sizes up to ZS_MIN_ALLOC + i * ZS_CLASS_DELTA;
   * merged entries point to the same class.
   */
  struct size_class *classes[ZS_NR_SIZES];
  size_t huge_class_size;
  atomic_ulong pages_total;
  /* Handle table. */
  _Atomic (unsigned long *) *handle_dir;
  atomic_ulong handle_next;        /* never used indices start here */
  struct handle_shard shards[HANDLE_SHARDS];
};

/* ---- handles ---- */

static atomic_uint shard_seq;
static __thread int my_shard = -1;

static unsigned
get_shard (void)
{
  if (my_shard < 0)
    my_shard = atomic_fetch_add_explicit (&shard_seq, 1, memory_order_relaxed)
      % HANDLE_SHARDS;
  return my_shard;
}

/* The word of handle index h, whose chunk must exist. */
static inline unsigned long *
handle_word (struct zs_pool *pool, unsigned long h)
{
  unsigned long *chunk =
    atomic_load_explicit (&pool->handle_dir[h >> HANDLE_CHUNK_BITS],
                          memory_order_acquire);

  assert (h > 0 && h < HANDLE_MAX && chunk);
  return &chunk[h & (HANDLE_CHUNK - 1)];
}

static inline unsigned long
load_handle (struct zs_pool *pool, unsigned long h)
{
  return __atomic_load_n (handle_word (pool, h), __ATOMIC_ACQUIRE);
}

static inline void
store_handle (struct zs_pool *pool, unsigned long h, unsigned long v)
{
  __atomic_store_n (handle_word (pool, h), v, __ATOMIC_RELEASE);
}

static unsigned long
pop_shard (struct zs_pool *pool, struct handle_shard *s)
{
  unsigned long h;

  /* Peek first: most shards are empty while a pool fills. */
  if (!atomic_load_explicit (&s->head, memory_order_relaxed))
    return 0;
  pthread_mutex_lock (&s->lock);
  h = atomic_load_explicit (&s->head, memory_order_relaxed);
  if (h) {
    unsigned long v = load_handle (pool, h);

    assert (!(v & HANDLE_LIVE));
    atomic_store_explicit (&s->head, v >> 1, memory_order_relaxed);
  }
  pthread_mutex_unlock (&s->lock);
  return h;
}

/* Installs chunk c of the handle table if no thread has yet.  0, or -1
 * with errno ENOMEM.
 */
static int
add_handle_chunk (struct zs_pool *pool, unsigned long c)
{
  unsigned long *chunk, *expected = NULL;

  if (atomic_load_explicit (&pool->handle_dir[c], memory_order_acquire))
    return 0;
  chunk = calloc (HANDLE_CHUNK, sizeof *chunk);
  if (!chunk) {
    errno = ENOMEM;
    return -1;
  }
  if (!atomic_compare_exchange_strong (&pool->handle_dir[c], &expected,
                                       chunk))
    free (chunk);
  return 0;
}

int
zs_populate_handles (struct zs_pool *pool, unsigned long n)
{
  unsigned long c, last, *chunk;
  size_t i;

  if (n > HANDLE_MAX)
    n = HANDLE_MAX;
  /* One chunk more than n: index 0 is never handed out, and a handle
   * freed on one shard can be free while another thread takes a new one.
   */
  last = (n + HANDLE_CHUNK) >> HANDLE_CHUNK_BITS;
  if (last >= 1UL << HANDLE_DIR_BITS)
    last = (1UL << HANDLE_DIR_BITS) - 1;
  for (c = 0; c <= last; c++) {
    if (add_handle_chunk (pool, c) == -1)
      return -1;
    /* One write per page (calloc may have left fresh pages untouched),
     * an atomic add of 0 so as to change nothing a user of the pool
     * writes meanwhile.
     */
    chunk = atomic_load_explicit (&pool->handle_dir[c], memory_order_acquire);
    for (i = 0; i < HANDLE_CHUNK; i += ZS_PAGE_SIZE / sizeof *chunk)
      __atomic_fetch_add (&chunk[i], 0, __ATOMIC_RELAXED);
  }
  return 0;
}

/* Returns a free handle index, or 0 with errno ENOMEM. */
static unsigned long
alloc_handle (struct zs_pool *pool)
{
  unsigned me = get_shard (), i;
  unsigned long h, c;

  for (i = 0; i < HANDLE_SHARDS; i++) {
    h = pop_shard (pool, &pool->shards[(me + i) % HANDLE_SHARDS]);
    if (h)
      return h;
  }

  h = atomic_fetch_add_explicit (&pool->handle_next, 1, memory_order_relaxed);
  if (h >= HANDLE_MAX) {
    errno = ENOMEM;
    return 0;
  }
  c = h >> HANDLE_CHUNK_BITS;
  /* On failure the index is lost; the next caller in this chunk tries
   * again.
   */
  return add_handle_chunk (pool, c) == 0 ? h : 0;
}

static void
free_handle (struct zs_pool *pool, unsigned long h)
{
  struct handle_shard *s = &pool->shards[get_shard ()];

  pthread_mutex_lock (&s->lock);
  store_handle (pool, h,
                atomic_load_explicit (&s->head, memory_order_relaxed) << 1);
  atomic_store_explicit (&s->head, h, memory_order_relaxed);
  pthread_mutex_unlock (&s->lock);
}

static inline unsigned long
encode_loc (struct zspage *zspage, unsigned class_idx, unsigned obj_idx)
{
  uintptr_t p = (uintptr_t) zspage;

  assert ((p & (ZSPAGE_ALIGN - 1)) == 0 && p >> 48 == 0);
  return (unsigned long) (p >> ZSPAGE_ALIGN_BITS) << ZSPAGE_SHIFT
    | (unsigned long) class_idx << CLASS_IDX_SHIFT
    | (unsigned long) obj_idx << OBJ_IDX_SHIFT
    | HANDLE_LIVE;
}

static inline struct zspage *
loc_zspage (unsigned long v)
{
  return (struct zspage *) (uintptr_t) ((v >> ZSPAGE_SHIFT)
                                        << ZSPAGE_ALIGN_BITS);
}

static inline unsigned
loc_class (unsigned long v)
{
  return (v >> CLASS_IDX_SHIFT) & ((1u << CLASS_IDX_BITS) - 1);
}

static inline unsigned
loc_obj (unsigned long v)
{
  return (v >> OBJ_IDX_SHIFT) & ((1u << OBJ_IDX_BITS) - 1);
}

/* ---- size classes ---- */

static inline unsigned
get_size_class_index (size_t size)
{
  if (size <= ZS_MIN_ALLOC)
    return 0;
  return (size - ZS_MIN_ALLOC + ZS_CLASS_DELTA - 1) / ZS_CLASS_DELTA;
}

/* The shortest chain wasting at most ZS_TAIL_WASTE_PPM in its tail, else
 * the chain that wastes the smallest share (on a tie the shorter).
 */
static unsigned
get_pages_per_zspage (unsigned size)
{
  unsigned k, best = 1;
  unsigned long best_waste_ppm = ULONG_MAX;

  for (k = 1; k <= ZS_MAX_PAGES_PER_ZSPAGE; k++) {
    unsigned long bytes = k * ZS_PAGE_SIZE;
    unsigned long waste_ppm = (bytes % size) * 1000000 / bytes;

    if (waste_ppm <= ZS_TAIL_WASTE_PPM)
      return k;
    if (waste_ppm < best_waste_ppm) {
      best_waste_ppm = waste_ppm;
      best = k;
    }
  }
  return best;
}

static inline uint32_t *
zspage_revmap (struct size_class *class, struct zspage *zspage)
{
  return (uint32_t *) &zspage->pages[class->pages_per_zspage];
}

static enum fullness
get_fullness_group (struct size_class *class, unsigned inuse)
{
  if (inuse == 0)
    return ZS_EMPTY;
  if (inuse == class->objs_per_zspage)
    return ZS_FULL;
  /* 0..99 %: 1 for under 10 %, ... 10 for 90..99 %. */
  return inuse * 100 / class->objs_per_zspage / 10 + 1;
}

/* ---- zspage lists (class->lock) ---- */

static void
insert_zspage (struct size_class *class, struct zspage *zspage)
{
  enum fullness g = get_fullness_group (class, zspage->inuse);
  struct zspage *head = class->fullness_list[g];

  zspage->fullness = g;
  zspage->prev = NULL;
  zspage->next = head;
  if (head)
    head->prev = zspage;
  class->fullness_list[g] = zspage;
  class->nr_fullness[g]++;
}

static void
remove_zspage (struct size_class *class, struct zspage *zspage)
{
  enum fullness g = zspage->fullness;

  assert (class->nr_fullness[g] > 0);
  if (zspage->prev)
    zspage->prev->next = zspage->next;
  else
    class->fullness_list[g] = zspage->next;
  if (zspage->next)
    zspage->next->prev = zspage->prev;
  class->nr_fullness[g]--;
}

/* Moves zspage to the list its use now calls for. */
static void
fix_fullness_group (struct size_class *class, struct zspage *zspage)
{
  if (get_fullness_group (class, zspage->inuse) == zspage->fullness)
    return;
  remove_zspage (class, zspage);
  insert_zspage (class, zspage);
}

/* The fullest zspage with a free slot, or NULL. */
static struct zspage *
find_get_zspage (struct size_class *class)
{
  int g;

  for (g = ZS_ALMOST_FULL; g >= ZS_EMPTY; g--)
    if (class->fullness_list[g])
      return class->fullness_list[g];
  return NULL;
}

/* ---- zspages ---- */

/* Room for a header page's link, keeping the headers after it aligned. */
#define HEADER_PAGE_LINK ZSPAGE_ALIGN

/* A zspage header.  With a reserve for swap it comes from a page of the
 * source, carved into headers of this class: a swap server's I/O thread
 * that created a zspage would otherwise touch fresh malloc memory now and
 * then, wait for memory, and so wait for the swap writes it is there to
 * serve.  Those pages stay with the class for its free headers until the
 * pool goes.  NULL with errno ENOMEM.
 */
static struct zspage *
alloc_header (struct zs_pool *pool, struct size_class *class)
{
  size_t n = (ZS_PAGE_SIZE - HEADER_PAGE_LINK) / class->header_size, i;
  struct zspage *z;
  char *page;

  if (n == 0 || !pagesrc_reserving (pool->src)) {
    z = aligned_alloc (ZSPAGE_ALIGN, class->header_size);
    if (z)
      z->on_page = false;
    else
      errno = ENOMEM;
    return z;
  }
  pthread_mutex_lock (&class->lock);
  z = class->free_headers;
  if (z)
    class->free_headers = z->next;
  pthread_mutex_unlock (&class->lock);
  if (z)
    return z;
  if (pagesrc_alloc (pool->src, (void **) &page, 1))
    return NULL;
  pthread_mutex_lock (&class->lock);
  *(void **) page = class->header_pages;
  class->header_pages = page;
  for (i = 1; i < n; i++) {
    struct zspage *f = (struct zspage *)
      (page + HEADER_PAGE_LINK + i * class->header_size);

    f->on_page = true;
    f->next = class->free_headers;
    class->free_headers = f;
  }
  pthread_mutex_unlock (&class->lock);
  z = (struct zspage *) (page + HEADER_PAGE_LINK);
  z->on_page = true;
  return z;
}

/* Gives back a header alloc_header gave, with no lock held. */
static void
free_header (struct size_class *class, struct zspage *zspage)
{
  if (!zspage->on_page) {
    free (zspage);
    return;
  }
  pthread_mutex_lock (&class->lock);
  zspage->next = class->free_headers;
  class->free_headers = zspage;
  pthread_mutex_unlock (&class->lock);
}

/* Creates an empty zspage with no pages yet, not on any list.  NULL with
 * errno ENOMEM when there is no memory for its header.
 */
static struct zspage *
create_zspage (struct zs_pool *pool, struct size_class *class)
{
  struct zspage *zspage = alloc_header (pool, class);
  uint32_t *revmap;
  unsigned i;

  if (!zspage)
    return NULL;
  for (i = 0; i < class->pages_per_zspage; i++)
    zspage->pages[i] = NULL;
  zspage->nr_pages = 0;
  zspage->prev = zspage->next = NULL;
  zspage->class = class;
  atomic_init (&zspage->pins, 0);
  zspage->inuse = 0;
  zspage->fullness = ZS_EMPTY;
  zspage->free_head = 0;
  revmap = zspage_revmap (class, zspage);
  /* Slots are first handed out in order, so pages are taken in order. */
  for (i = 0; i < class->objs_per_zspage; i++)
    revmap[i] = REVMAP_FREE
      | (i + 1 < class->objs_per_zspage ? i + 1 : REVMAP_NIL);
  return zspage;
}

/* Gives slot idx the pages it lies on, where the zspage lacks them.
 * class->lock held (the page-source lock is a leaf below it).  Returns 0,
 * or -1 with errno ENOMEM; pages got before a failure stay with the zspage.
 */
static int
get_slot_pages (struct zs_pool *pool, struct size_class *class,
                struct zspage *zspage, unsigned idx)
{
  unsigned long off = (unsigned long) idx * class->size;
  unsigned p = off >> ZS_PAGE_SHIFT;
  unsigned last = (off + class->size - 1) >> ZS_PAGE_SHIFT;

  for (; p <= last; p++) {
    if (zspage->pages[p])
      continue;
    if (pagesrc_alloc (pool->src, &zspage->pages[p], 1))
      return -1;
    zspage->nr_pages++;
    class->pages++;
    atomic_fetch_add_explicit (&pool->pages_total, 1, memory_order_relaxed);
  }
  return 0;
}

/* Takes an empty zspage out of the class's counts; it must be off the
 * lists.  class->lock held.  free_zspage then frees it, unlocked.
 */
static void
detach_zspage (struct size_class *class, struct zspage *zspage)
{
  assert (zspage->inuse == 0 && class->zspages > 0);
  class->zspages--;
  class->pages -= zspage->nr_pages;
}

/* Gives the zspage's pages back to the page source. */
static void
release_pages (struct zs_pool *pool, struct size_class *class,
               struct zspage *zspage)
{
  void *pages[ZS_MAX_PAGES_PER_ZSPAGE];
  unsigned i, n = 0;

  for (i = 0; i < class->pages_per_zspage; i++)
    if (zspage->pages[i])
      pages[n++] = zspage->pages[i];
  assert (n == zspage->nr_pages);
  if (n)
    pagesrc_free (pool->src, pages, n);
}

/* Frees a detached zspage, with no lock held. */
static void
free_zspage (struct zs_pool *pool, struct zspage *zspage)
{
  assert (zspage->inuse == 0);
  assert (atomic_load (&zspage->pins) == 0);
  release_pages (pool, zspage->class, zspage);
  atomic_fetch_sub_explicit (&pool->pages_total, zspage->nr_pages,
                             memory_order_relaxed);
  free_header (zspage->class, zspage);
}

/* Takes a free slot of zspage for handle h.  class->lock held. */
static unsigned
obj_malloc (struct size_class *class, struct zspage *zspage, unsigned long h)
{
  uint32_t *revmap = zspage_revmap (class, zspage);
  unsigned idx = zspage->free_head;

  assert (idx != REVMAP_NIL && (revmap[idx] & REVMAP_FREE));
  zspage->free_head = revmap[idx] & ~REVMAP_FREE;
  revmap[idx] = h;
  zspage->inuse++;
  class->obj_used++;
  return idx;
}

/* Frees slot idx of zspage.  class->lock held. */
static void
obj_free (struct size_class *class, struct zspage *zspage, unsigned idx)
{
  uint32_t *revmap = zspage_revmap (class, zspage);

  assert (!(revmap[idx] & REVMAP_FREE) && zspage->inuse > 0);
  revmap[idx] = REVMAP_FREE | zspage->free_head;
  zspage->free_head = idx;
  zspage->inuse--;
  class->obj_used--;
}

/* ---- pool ---- */

static struct size_class *
create_class (unsigned index, unsigned size, unsigned pages, unsigned objs)
{
  struct size_class *class = aligned_alloc (64, sizeof *class);
  pthread_rwlockattr_t attr;

  if (!class)
    return NULL;
  memset (class, 0, sizeof *class);
  pthread_mutex_init (&class->lock, NULL);
  /* Compaction must not starve behind a stream of mappers. */
  pthread_rwlockattr_init (&attr);
  pthread_rwlockattr_setkind_np (&attr,
                                 PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
  pthread_rwlock_init (&class->migrate, &attr);
  pthread_rwlockattr_destroy (&attr);
  class->index = index;
  class->size = size;
  class->pages_per_zspage = pages;
  class->objs_per_zspage = objs;
  class->header_size = sizeof (struct zspage) + pages * sizeof (void *)
    + objs * sizeof (uint32_t);
  /* aligned_alloc wants a multiple of the alignment; with glibc's own
   * alignment it costs nothing over malloc.
   */
  class->header_size = (class->header_size + ZSPAGE_ALIGN - 1)
    & ~(size_t) (ZSPAGE_ALIGN - 1);
  return class;
}

/* Loops over each distinct class, smallest first. */
#define for_each_class(pool, i, class)                                   \
  for (i = 0; i < ZS_NR_SIZES; i++)                                      \
    if ((class = (pool)->classes[i])->index != i) continue; else

/**
 * zs_create_pool - creates a pool
 * Returns NULL with errno ENOMEM when memory for the pool is short.
 */
struct zs_pool *
zs_create_pool (const char *name, const struct zs_ops *ops)
{
  struct zs_pool *pool = calloc (1, sizeof *pool);
  struct size_class *prev = NULL;
  int i;

  if (!pool)
    return NULL;
  pool->name = strdup (name ? name : "zsmalloc");
  pool->src = pagesrc_create (ops);
  pool->handle_dir = calloc (1UL << HANDLE_DIR_BITS, sizeof *pool->handle_dir);
  if (!pool->name || !pool->src || !pool->handle_dir)
    goto fail;
  atomic_init (&pool->handle_next, 1);       /* handle 0 means failure */
  atomic_init (&pool->pages_total, 0);
  for (i = 0; i < HANDLE_SHARDS; i++)
    pthread_mutex_init (&pool->shards[i].lock, NULL);

  /* Largest first, so a class can merge into the next larger one. */
  for (i = ZS_NR_SIZES - 1; i >= 0; i--) {
    unsigned size = ZS_MIN_ALLOC + i * ZS_CLASS_DELTA;
    unsigned pages = get_pages_per_zspage (size);
    unsigned objs = pages * ZS_PAGE_SIZE / size;

    if (prev && prev->pages_per_zspage == pages
        && prev->objs_per_zspage == objs) {
      pool->classes[i] = prev;
      continue;
    }
    if (prev && prev->pages_per_zspage == 1 && prev->objs_per_zspage == 1)
      pool->huge_class_size = size + 1;
    prev = create_class (i, size, pages, objs);
    if (!prev)
      goto fail;
    pool->classes[i] = prev;
  }
  return pool;

 fail:
  zs_destroy_pool (pool);
  errno = ENOMEM;
  return NULL;
}

/**
 * zs_destroy_pool - frees every object and page of the pool
 */
void
zs_destroy_pool (struct zs_pool *pool)
{
  unsigned i, g;
  struct size_class *class;

  if (!pool)
    return;
  for (i = 0; i < ZS_NR_SIZES; i++) {
    class = pool->classes[i];
    if (!class || class->index != i)
      continue;
    for (g = 0; g < ZS_NR_FULLNESS; g++) {
      struct zspage *z, *next;

      for (z = class->fullness_list[g]; z; z = next) {
        next = z->next;
        if (pool->src)
          release_pages (pool, class, z);
        if (!z->on_page)
          free (z);
      }
    }
    /* The free headers go with their pages. */
    while (class->header_pages) {
      void *page = class->header_pages;

      class->header_pages = *(void **) page;
      if (pool->src)
        pagesrc_free (pool->src, &page, 1);
    }
    pthread_mutex_destroy (&class->lock);
    pthread_rwlock_destroy (&class->migrate);
    free (class);
  }
  if (pool->handle_dir) {
    for (i = 0; i < 1U << HANDLE_DIR_BITS; i++)
      free (atomic_load (&pool->handle_dir[i]));
    free (pool->handle_dir);
  }
  for (i = 0; i < HANDLE_SHARDS; i++)
    pthread_mutex_destroy (&pool->shards[i].lock);
  pagesrc_destroy (pool->src);
  free (pool->name);
  free (pool);
}

/**
 * zs_malloc - allocates an object of size bytes
 * Returns its handle, or 0 with errno EINVAL (size 0 or over 4096) or
 * ENOMEM (no page from the page source, or no memory for metadata).
 * Stored objects are untouched by a failure.
 */
unsigned long
zs_malloc (struct zs_pool *pool, size_t size)
{
  struct size_class *class;
  struct zspage *zspage, *fresh;
  unsigned long h;
  unsigned idx;

  if (size == 0 || size > ZS_MAX_ALLOC) {
    errno = EINVAL;
    return 0;
  }
  class = pool->classes[get_size_class_index (size)];
  h = alloc_handle (pool);
  if (!h)
    return 0;

  pthread_mutex_lock (&class->lock);
  zspage = find_get_zspage (class);
  if (!zspage) {
    pthread_mutex_unlock (&class->lock);
    fresh = create_zspage (pool, class);
    if (!fresh) {
      free_handle (pool, h);
      return 0;
    }
    pthread_mutex_lock (&class->lock);
    zspage = fresh;
    class->zspages++;
  }
  else
    remove_zspage (class, zspage);
  if (get_slot_pages (pool, class, zspage, zspage->free_head)) {
    if (zspage->inuse == 0)
      detach_zspage (class, zspage);
    else {
      insert_zspage (class, zspage);
      zspage = NULL;
    }
    pthread_mutex_unlock (&class->lock);
    if (zspage)
      free_zspage (pool, zspage);
    free_handle (pool, h);
    errno = ENOMEM;
    return 0;
  }
  idx = obj_malloc (class, zspage, h);
  insert_zspage (class, zspage);
  store_handle (pool, h, encode_loc (zspage, class->index, idx));
  pthread_mutex_unlock (&class->lock);
  return h;
}

/**
 * zs_free - frees the object of handle; 0 is ignored
 */
void
zs_free (struct zs_pool *pool, unsigned long h)
{
  struct size_class *class;
  struct zspage *zspage;
  unsigned long v;

  if (!h)
    return;
  /* The class is fixed for the object's life; its location is only
   * stable under class->lock, which compaction holds to move it.
   */
  v = load_handle (pool, h);
  assert (v & HANDLE_LIVE);
  class = pool->classes[loc_class (v)];
  pthread_mutex_lock (&class->lock);
  v = load_handle (pool, h);
  zspage = loc_zspage (v);
  assert (zspage->class == class);
  assert (zspage_revmap (class, zspage)[loc_obj (v)] == h);
  obj_free (class, zspage, loc_obj (v));
  if (zspage->inuse == 0) {
    remove_zspage (class, zspage);
    detach_zspage (class, zspage);
  }
  else {
    fix_fullness_group (class, zspage);
    zspage = NULL;
  }
  pthread_mutex_unlock (&class->lock);
  if (zspage)
    free_zspage (pool, zspage);
  free_handle (pool, h);
}

/* ---- mapping ---- */

/* The one mapping a thread may hold. */
struct mapping {
  struct zspage *zspage;
  unsigned long handle;
  enum zs_mapmode mm;
  char *part0, *part1;    /* a spanning object's two pieces, else NULL */
  unsigned len0, len1;
};
static __thread struct mapping my_mapping;
static __thread char my_buffer[ZS_MAX_ALLOC] __attribute__ ((aligned (64)));

void
zs_prepare_thread (void)
{
  size_t i;

  for (i = 0; i < sizeof my_buffer; i += ZS_PAGE_SIZE)
    ((volatile char *) my_buffer)[i] = 0;
  ((volatile char *) my_buffer)[sizeof my_buffer - 1] = 0;
}

/**
 * zs_map_object - maps the object of handle
 * Returns a pointer to its bytes (class-size bytes are valid), valid until
 * zs_unmap_object.  Never fails for a live handle.
 */
void *
zs_map_object (struct zs_pool *pool, unsigned long h, enum zs_mapmode mm)
{
  struct mapping *m = &my_mapping;
  struct size_class *class;
  struct zspage *zspage;
  unsigned long v, off;
  unsigned page, poff;

  assert (m->zspage == NULL);   /* one mapping per thread */
  v = load_handle (pool, h);
  assert (v & HANDLE_LIVE);
  class = pool->classes[loc_class (v)];

  pthread_rwlock_rdlock (&class->migrate);
  v = load_handle (pool, h);
  zspage = loc_zspage (v);
  atomic_fetch_add_explicit (&zspage->pins, 1, memory_order_acquire);
  pthread_rwlock_unlock (&class->migrate);

  assert (zspage->class == class);
  m->zspage = zspage;
  m->handle = h;
  m->mm = mm;
  off = (unsigned long) loc_obj (v) * class->size;
  page = off >> ZS_PAGE_SHIFT;
  poff = off & (ZS_PAGE_SIZE - 1);
  if (poff + class->size <= ZS_PAGE_SIZE) {
    m->part0 = NULL;
    return (char *) zspage->pages[page] + poff;
  }

  m->part0 = (char *) zspage->pages[page] + poff;
  m->len0 = ZS_PAGE_SIZE - poff;
  m->part1 = zspage->pages[page + 1];
  m->len1 = class->size - m->len0;
  if (mm != ZS_MM_WO) {
    memcpy (my_buffer, m->part0, m->len0);
    memcpy (my_buffer + m->len0, m->part1, m->len1);
  }
  return my_buffer;
}

/**
 * zs_unmap_object - ends the mapping zs_map_object made
 */
void
zs_unmap_object (struct zs_pool *pool, unsigned long h)
{
  struct mapping *m = &my_mapping;

  (void) pool;
  (void) h;
  assert (m->zspage && m->handle == h);
  if (m->part0 && m->mm != ZS_MM_RO) {
    memcpy (m->part0, my_buffer, m->len0);
    memcpy (m->part1, my_buffer + m->len0, m->len1);
  }
  atomic_fetch_sub_explicit (&m->zspage->pins, 1, memory_order_release);
  m->zspage = NULL;
}

/**
 * zs_huge_class_size - the smallest size stored one object per page
 */
size_t
zs_huge_class_size (struct zs_pool *pool)
{
  return pool->huge_class_size;
}

/**
 * zs_lookup_class_index - the class index size bytes would be stored in
 */
unsigned
zs_lookup_class_index (struct zs_pool *pool, size_t size)
{
  if (size > ZS_MAX_ALLOC)
    size = ZS_MAX_ALLOC;
  return pool->classes[get_size_class_index (size)]->index;
}

/**
 * zs_get_total_pages - 4 KiB pages backing zspages now
 */
unsigned long
zs_get_total_pages (struct zs_pool *pool)
{
  return atomic_load_explicit (&pool->pages_total, memory_order_relaxed);
}

/* ---- compaction ---- */

/* Copies one slot's bytes between two zspages, piece by piece across the
 * page boundaries of either.
 */
static void
copy_object (struct size_class *class, struct zspage *dst, unsigned didx,
             struct zspage *src, unsigned sidx)
{
  unsigned long doff = (unsigned long) didx * class->size;
  unsigned long soff = (unsigned long) sidx * class->size;
  unsigned left = class->size;

  while (left > 0) {
    unsigned dpo = doff & (ZS_PAGE_SIZE - 1), spo = soff & (ZS_PAGE_SIZE - 1);
    unsigned n = left;

    if (n > ZS_PAGE_SIZE - dpo)
      n = ZS_PAGE_SIZE - dpo;
    if (n > ZS_PAGE_SIZE - spo)
      n = ZS_PAGE_SIZE - spo;
    memcpy ((char *) dst->pages[doff >> ZS_PAGE_SHIFT] + dpo,
            (char *) src->pages[soff >> ZS_PAGE_SHIFT] + spo, n);
    doff += n;
    soff += n;
    left -= n;
  }
}

/* Zspages' worth of unused slots on the pages the class holds (slots on
 * pages not taken yet cost nothing): what compaction could free now.
 * class->lock held.
 */
static unsigned long
zs_can_compact (struct size_class *class)
{
  unsigned long room = class->pages * class->objs_per_zspage
    / class->pages_per_zspage;

  if (room <= class->obj_used)
    return 0;
  return (room - class->obj_used) / class->objs_per_zspage;
}

/* The sparsest zspage that is not full and not mapped, or NULL.  Both
 * class locks held, so no pin can appear.
 */
static struct zspage *
find_source (struct size_class *class)
{
  int g;

  for (g = ZS_EMPTY + 1; g <= ZS_ALMOST_FULL; g++) {
    struct zspage *z;

    for (z = class->fullness_list[g]; z; z = z->next)
      if (atomic_load_explicit (&z->pins, memory_order_acquire) == 0)
        return z;
  }
  return NULL;
}

/* Moves src's objects into the fullest zspages until src is empty or no
 * other zspage has room.  src is off the lists.  Both class locks held.
 */
static void
migrate_zspage (struct zs_pool *pool, struct size_class *class,
                struct zspage *src)
{
  uint32_t *srevmap = zspage_revmap (class, src);
  unsigned sidx = 0;

  while (src->inuse > 0) {
    struct zspage *dst = find_get_zspage (class);

    if (!dst)
      return;
    remove_zspage (class, dst);
    while (src->inuse > 0 && dst->inuse < class->objs_per_zspage) {
      unsigned long h;
      unsigned didx;

      if (get_slot_pages (pool, class, dst, dst->free_head)) {
        insert_zspage (class, dst);
        return;
      }
      while (srevmap[sidx] & REVMAP_FREE)
        sidx++;
      h = srevmap[sidx];
      didx = obj_malloc (class, dst, h);
      copy_object (class, dst, didx, src, sidx);
      store_handle (pool, h, encode_loc (dst, class->index, didx));
      obj_free (class, src, sidx);
    }
    insert_zspage (class, dst);
  }
}

/* The pages a zspage needs once its inuse objects sit in its lowest slots. */
static unsigned
packed_pages (struct size_class *class, unsigned inuse)
{
  return ((unsigned long) inuse * class->size + ZS_PAGE_SIZE - 1)
    >> ZS_PAGE_SHIFT;
}

/* Moves a zspage's objects from its highest slots into its lowest free
 * ones and gives back the pages no slot in use lies on any more.  The free
 * list is rebuilt lowest slot first, so allocation refills the pages held
 * before it takes new ones.  zspage must not be mapped.  Both class locks
 * held (the page-source lock is a leaf below them).  Returns pages freed.
 */
static unsigned
pack_zspage (struct zs_pool *pool, struct size_class *class,
             struct zspage *zspage)
{
  uint32_t *revmap = zspage_revmap (class, zspage);
  unsigned objs = class->objs_per_zspage, lo = 0, hi = objs - 1, p, n = 0;
  unsigned keep;
  uint16_t head = REVMAP_NIL;
  void *pages[ZS_MAX_PAGES_PER_ZSPAGE];

  assert (zspage->inuse > 0);
  for (;;) {
    unsigned long h;

    while (lo < objs && !(revmap[lo] & REVMAP_FREE))
      lo++;
    while (hi > lo && (revmap[hi] & REVMAP_FREE))
      hi--;
    if (lo >= hi)
      break;
    if (get_slot_pages (pool, class, zspage, lo))
      break;                    /* it stays as it is, only less packed */
    h = revmap[hi];
    copy_object (class, zspage, lo, zspage, hi);
    revmap[lo] = h;
    revmap[hi] = REVMAP_FREE;
    store_handle (pool, h, encode_loc (zspage, class->index, lo));
  }
  for (p = objs; p-- > 0;)
    if (revmap[p] & REVMAP_FREE) {
      revmap[p] = REVMAP_FREE | head;
      head = p;
    }
  zspage->free_head = head;

  /* Pages past the last slot in use. */
  for (hi = objs; hi-- > 0;)
    if (!(revmap[hi] & REVMAP_FREE))
      break;
  keep = (((unsigned long) hi * class->size + class->size - 1)
          >> ZS_PAGE_SHIFT) + 1;
  for (p = keep; p < class->pages_per_zspage; p++)
    if (zspage->pages[p]) {
      pages[n++] = zspage->pages[p];
      zspage->pages[p] = NULL;
    }
  if (n) {
    zspage->nr_pages -= n;
    class->pages -= n;
    atomic_fetch_sub_explicit (&pool->pages_total, n, memory_order_relaxed);
    pagesrc_free (pool->src, pages, n);
  }
  return n;
}

/* Packs every unmapped, partly filled zspage that would give a page back.
 * Both class locks held.  Returns pages freed.
 */
static unsigned long
pack_class (struct zs_pool *pool, struct size_class *class)
{
  unsigned long freed = 0;
  int g;

  for (g = ZS_EMPTY + 1; g <= ZS_ALMOST_FULL; g++) {
    struct zspage *z;

    for (z = class->fullness_list[g]; z; z = z->next)
      if (z->nr_pages > packed_pages (class, z->inuse)
          && atomic_load_explicit (&z->pins, memory_order_acquire) == 0)
        freed += pack_zspage (pool, class, z);
  }
  return freed;
}

static unsigned long
compact_class (struct zs_pool *pool, struct size_class *class)
{
  long freed = 0;

  for (;;) {
    struct zspage *src, *empty = NULL;
    unsigned long before;

    pthread_rwlock_wrlock (&class->migrate);
    pthread_mutex_lock (&class->lock);
    before = class->pages;
    src = zs_can_compact (class) ? find_source (class) : NULL;
    if (src) {
      remove_zspage (class, src);
      migrate_zspage (pool, class, src);
      if (src->inuse == 0) {
        detach_zspage (class, src);
        empty = src;
      }
      else
        insert_zspage (class, src);
    }
    /* Destinations may have taken pages for their slots. */
    freed += (long) before - (long) class->pages;
    pthread_mutex_unlock (&class->lock);
    pthread_rwlock_unlock (&class->migrate);
    /* Each round either frees a zspage or finds nothing to do: the
     * loop ends, and allocators get the locks between rounds.
     */
    if (!empty)
      break;
    free_zspage (pool, empty);
  }

  /* What is left is under a zspage's worth of free slots, scattered over
   * the partly filled zspages: pack them to free whole pages.
   */
  pthread_rwlock_wrlock (&class->migrate);
  pthread_mutex_lock (&class->lock);
  freed += pack_class (pool, class);
  pthread_mutex_unlock (&class->lock);
  pthread_rwlock_unlock (&class->migrate);
  return freed > 0 ? freed : 0;
}

/**
 * zs_compact - frees zspages by moving objects out of the sparsest ones
 * Returns the number of pages freed (0 when nothing could be freed).
 */
unsigned long
zs_compact (struct zs_pool *pool)
{
  unsigned long freed = 0;
  struct size_class *class;
  unsigned i;

  for_each_class (pool, i, class)
    freed += compact_class (pool, class);
  /* Compaction is when the user wants memory back: all of it. */
  pagesrc_trim (pool->src);
  return freed;
}

/**
 * zs_pool_class_stats - per-class statistics, smallest class first
 * Returns the number of distinct classes (which may exceed n).
 */
size_t
zs_pool_class_stats (struct zs_pool *pool, struct zs_class_stat *out,
                     size_t n)
{
  struct size_class *class;
  unsigned i, g;
  size_t nr = 0;

  for_each_class (pool, i, class) {
    if (nr < n) {
      struct zs_class_stat *s = &out[nr];

      memset (s, 0, sizeof *s);
      s->index = class->index;
      s->size = class->size;
      s->objs_per_zspage = class->objs_per_zspage;
      s->pages_per_zspage = class->pages_per_zspage;
      pthread_mutex_lock (&class->lock);
      s->zspages = class->zspages;
      s->pages_used = class->pages;
      s->obj_used = class->obj_used;
      for (g = 0; g < ZS_NR_FULLNESS; g++)
        s->fullness[g] = class->nr_fullness[g];
      s->freeable = zs_can_compact (class);
      pthread_mutex_unlock (&class->lock);
      s->obj_allocated = s->zspages * s->objs_per_zspage;
    }
    nr++;
  }
  return nr;
}
