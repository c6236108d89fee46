/* uzram: libzsmalloc's page source.
 *
 * The built-in source maps anonymous memory in chunks of CHUNK_PAGES pages
 * and hands out single 4 KiB pages:
 *
 *   src->chunks[]  sorted by address    src->hot[]: recently freed pages,
 *   +---------+---------+---------+     still resident, handed out first
 *   | chunk 0 | chunk 1 | chunk 2 |
 *   +---------+---------+---------+
 *     |  base: 2 MiB of PROT_READ|WRITE, MADV_NOHUGEPAGE
 *     |  free[]: stack of the indices of its pages not handed out
 *
 * A freed page goes on the hot stack; when that is full, its oldest half
 * is given back to the system with madvise(MADV_DONTNEED_LOCKED) (so
 * RssAnon falls, also under mlockall, see give_back) and returns to the
 * chunks' free stacks.  pagesrc_trim gives back the whole hot stack.  A
 * chunk whose pages are all free is unmapped, except one kept as a spare
 * against map/unmap churn; src->nempty counts the empty chunks, so that
 * keeping the spare costs no scan.  Allocation takes the lowest-addressed
 * chunk with a free page, so that pages concentrate in few chunks and the
 * others can empty.
 *
 * For swap (zs_set_reserve), a reserve sits between the hot stack and the
 * chunks: pages taken from the chunks and faulted in ahead of use by a
 * thread of the source's own, the refiller.  An allocation takes the hot
 * stack, then the reserve, and only then pages that may still need the
 * kernel to find memory, and it wakes the refiller once the reserve is
 * half gone.  A swap device's server that has to fault in a page while
 * the system is out of memory waits for reclaim, and reclaim waits for
 * swap writes that the server is there to serve: Linux's zsmalloc, on
 * that path, allocates from the reserves that reclaim may dip into, a
 * thing userspace cannot do.  So the server's I/O threads take pages
 * that are already there, and the refiller, which serves no I/O, is the
 * one that waits for reclaim, while the swap writes it waits for go on
 * with what the reserve still holds.  (Under mlockall the reserve stays
 * resident.)
 *
 * With a reserve, the threads that allocate and free (the server's I/O
 * threads, and compaction under its class locks) make no system call on
 * the process's memory map either: no mmap, munmap or madvise.  munmap and
 * mmap lock the mapping they change, and chunks mapped side by side merge
 * into one mapping, so they wait for every page fault in it to finish; the
 * refiller's faults there wait for reclaim, and reclaim for the I/O
 * thread.  So freed pages past the hot stack top the reserve up, and the
 * rest go to the refiller to give back (src->spill, a list threaded
 * through the pages themselves, so that it needs no memory and has no
 * bound).  And they take only pages that are
 * resident already, never a chunk's page that would fault in: one that
 * finds none waits a moment for the refiller (as when the reserve has
 * just started), then fails with ENOMEM, as zram's write fails when
 * zs_malloc does; swap keeps the page and writes it again later.  Until
 * the refiller adds pages, the next ones fail at once.
 *
 * With struct zs_ops, every call goes to the caller's functions one page at
 * a time, and no state is kept here.
 *
 * Locking: src->lock protects everything above; it is a leaf lock (nothing
 * else is taken while it is held) and no system call runs under it.  It is
 * taken once per zspage created or freed, not per object.
 *
 * To do: per-thread hot stacks if the one lock ever shows in profiles.
 */
#include <config.h>

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/mman.h>
#include <sys/prctl.h>

#ifndef PR_SET_IO_FLUSHER
#define PR_SET_IO_FLUSHER 57
#endif

#include "pagesrc.h"

/* 2 MiB: one huge-page-sized mapping per 512 pages keeps the number of
 * mappings (and munmap calls) low; the page indices fit in uint16_t.
 */
#define CHUNK_PAGES 512
#define CHUNK_SIZE (CHUNK_PAGES * ZS_PAGE_SIZE)

/* At most this many freed pages stay resident for reuse (1 MiB, small
 * against any pool worth compressing): it spares a madvise and a page fault
 * each time a zspage is freed and another created soon after.  When the
 * stack fills, its oldest PURGE_BATCH pages go back to the system in one
 * go, sorted so that neighbours share one madvise call.
 */
#define HOT_PAGES 256
#define PURGE_BATCH 128

/* A chunk's fresh pages are handed out in address order, so instead of
 * taking one page fault per page, the source populates them POPULATE_PAGES
 * at a time with madvise(MADV_POPULATE_WRITE) (Linux 5.14) as allocation
 * reaches them: one system call instead of 32 faults.  This cut nbdkit's
 * page-fault time in a copy-in.  At most POPULATE_PAGES - 1 pages (124 KiB)
 * per chunk are resident ahead of use.
 */
#define POPULATE_PAGES 32
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

/* Freed pages go back with MADV_DONTNEED_LOCKED (Linux 5.18): plain
 * MADV_DONTNEED fails with EINVAL on a VM_LOCKED mapping, and
 * mlockall (MCL_FUTURE | MCL_ONFAULT), which the plugin's mlock=true
 * uses for swap, makes every chunk VM_LOCKED.  On an unlocked mapping
 * both do the same.  A page given back this way faults in again, locked,
 * when it is next used.
 */
#ifndef MADV_DONTNEED_LOCKED
#define MADV_DONTNEED_LOCKED 24
#endif

/* zs_set_reserve's value: the reserve each builtin source keeps. */
static atomic_size_t reserve_pages;

/* The refiller faults pages in this many at a time, taking src->lock
 * between batches only.
 */
#define REFILL_BATCH 64

/* With a reserve, an allocation that finds no resident page waits this
 * long for the refiller before it fails: long enough that a refiller
 * merely kept off the CPU by a busy host (or a sanitizer) catches up,
 * short enough that a swap write which cannot get memory fails well
 * before reclaim gives up on it.
 */
#define READY_WAIT_MS 500

/* Ranges to populate, noted under the lock and populated outside it. */
struct populate {
  unsigned n;
  struct { char *addr; size_t len; } r[4];
};

struct chunk {
  char *base;
  unsigned nfree;                  /* entries in free[] */
  unsigned populated;              /* pages below this were populated */
  uint16_t free[CHUNK_PAGES];
};

struct page_source {
  struct zs_ops ops;
  int builtin;
  pthread_mutex_t lock;
  struct chunk **chunks;           /* sorted by base */
  size_t nchunks, cap;
  size_t first_free;               /* no chunk below this has a free page */
  size_t nempty;                   /* chunks with every page free */
  void *hot[HOT_PAGES];
  unsigned nhot;
  /* The reserve: res[0..nres-1] faulted in, handed out after the hot
   * stack; the refiller tops it up to res_target when woken.
   */
  void **res;
  size_t nres, res_target;
  bool refill_running, refill_wanted, refill_stop;
  /* Freed pages for the refiller to give back (with a reserve): each
   * page's first word points to the next.
   */
  void *spill;
  size_t nspill;
  pthread_t refill;
  pthread_cond_t refill_cond;       /* wakes the refiller */
  pthread_cond_t refilled_cond;     /* the refiller added to the reserve */
  bool dry;                         /* an allocation waited in vain */
};

struct page_source *
pagesrc_create (const struct zs_ops *ops)
{
  struct page_source *src = calloc (1, sizeof *src);

  if (!src)
    return NULL;
  if (ops)
    src->ops = *ops;
  else
    src->builtin = 1;
  pthread_mutex_init (&src->lock, NULL);
  pthread_cond_init (&src->refill_cond, NULL);
  {
    pthread_condattr_t attr;

    pthread_condattr_init (&attr);
    pthread_condattr_setclock (&attr, CLOCK_MONOTONIC);
    pthread_cond_init (&src->refilled_cond, &attr);
    pthread_condattr_destroy (&attr);
  }
  return src;
}

void
zs_set_reserve (size_t pages)
{
  atomic_store (&reserve_pages, pages);
}

bool
pagesrc_reserving (const struct page_source *src)
{
  return src->builtin &&
    atomic_load_explicit (&reserve_pages, memory_order_relaxed) > 0;
}

void
pagesrc_destroy (struct page_source *src)
{
  size_t i;

  if (!src)
    return;
  if (src->refill_running) {
    pthread_mutex_lock (&src->lock);
    src->refill_stop = true;
    pthread_cond_signal (&src->refill_cond);
    pthread_mutex_unlock (&src->lock);
    pthread_join (src->refill, NULL);
  }
  free (src->res);
  pthread_cond_destroy (&src->refill_cond);
  pthread_cond_destroy (&src->refilled_cond);
  for (i = 0; i < src->nchunks; i++) {
    munmap (src->chunks[i]->base, CHUNK_SIZE);
    free (src->chunks[i]);
  }
  free (src->chunks);
  pthread_mutex_destroy (&src->lock);
  free (src);
}

/* --- Warnings --- */

static void
warn_stderr (const char *msg)
{
  fprintf (stderr, "zsmalloc: %s\n", msg);
}

static void (*_Atomic warn_fn) (const char *msg) = warn_stderr;

void
zs_set_warn (void (*fn) (const char *msg))
{
  atomic_store (&warn_fn, fn ? fn : warn_stderr);
}

/* Each kind of failure is reported once per process: they repeat on
 * every purge, and one line says all there is to say.
 */
enum warning { WARN_FALLBACK, WARN_GIVE_BACK, WARN_LOCKED, WARN_POPULATE, WARN_NOHUGEPAGE,
               WARN_RESERVE, WARN_KINDS };
static atomic_bool warned[WARN_KINDS];

static void
warn_once (enum warning w, int err, const char *what)
{
  char msg[256];

  if (atomic_exchange (&warned[w], true))
    return;
  snprintf (msg, sizeof msg, "%s: %s", what, strerror (err));
  atomic_load (&warn_fn) (msg);
}

/* MADV_DONTNEED_LOCKED until the kernel says it does not know it
 * (EINVAL before Linux 5.18), then MADV_DONTNEED for good.
 */
static atomic_int dontneed = MADV_DONTNEED_LOCKED;

/* Gives len bytes at addr back to the system; they read as zeroes after.
 * Never fails: a range that stays resident costs memory, not data.
 */
static void
give_back (void *addr, size_t len)
{
  int advice = atomic_load_explicit (&dontneed, memory_order_relaxed);
  int err;

  if (madvise (addr, len, advice) == 0)
    return;
  err = errno;
  if (err == EINVAL && advice == MADV_DONTNEED_LOCKED) {
    warn_once (WARN_FALLBACK, err,
               "madvise MADV_DONTNEED_LOCKED (Linux 5.18) refused; using "
               "MADV_DONTNEED, which cannot give back memory under mlock");
    atomic_store_explicit (&dontneed, MADV_DONTNEED, memory_order_relaxed);
    if (madvise (addr, len, MADV_DONTNEED) == 0)
      return;
    err = errno;
  }
  if (err == EINVAL)
    warn_once (WARN_LOCKED, err,
               "madvise MADV_DONTNEED on locked memory: freed pages stay "
               "resident (mlock=true needs Linux 5.18 to give them back)");
  else
    warn_once (WARN_GIVE_BACK, err, "madvise: freed pages stay resident");
}

/* The chunk holding page, or the index where a chunk at page would go. */
static size_t
find_chunk (struct page_source *src, const void *page)
{
  size_t lo = 0, hi = src->nchunks;

  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    const char *b = src->chunks[mid]->base;

    if ((const char *) page < b)
      hi = mid;
    else if ((const char *) page >= b + CHUNK_SIZE)
      lo = mid + 1;
    else
      return mid;
  }
  return lo;
}

/* Maps a new chunk outside the lock.  NULL on failure. */
static struct chunk *
map_chunk (void)
{
  struct chunk *c = malloc (sizeof *c);
  unsigned i;

  if (!c)
    return NULL;
  c->base = mmap (NULL, CHUNK_SIZE, PROT_READ | PROT_WRITE,
                  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (c->base == MAP_FAILED) {
    free (c);
    return NULL;
  }
  /* A transparent huge page would make one touched 4 KiB page cost 2 MiB
   * of RSS, and madvise of a single page would have to split it.  EINVAL:
   * a kernel without transparent huge pages, where none can form.
   */
  if (madvise (c->base, CHUNK_SIZE, MADV_NOHUGEPAGE) == -1 && errno != EINVAL)
    warn_once (WARN_NOHUGEPAGE, errno, "madvise MADV_NOHUGEPAGE");
  /* Lowest page on top of the stack: pages fill the chunk in order. */
  c->nfree = CHUNK_PAGES;
  c->populated = 0;
  for (i = 0; i < CHUNK_PAGES; i++)
    c->free[i] = CHUNK_PAGES - 1 - i;
  return c;
}

/* Inserts c in address order.  Called with src->lock held.  -1 if the
 * array cannot grow.
 */
static int
insert_chunk (struct page_source *src, struct chunk *c)
{
  size_t at;

  if (src->nchunks == src->cap) {
    size_t cap = src->cap ? src->cap * 2 : 16;
    struct chunk **a = realloc (src->chunks, cap * sizeof *a);

    if (!a)
      return -1;
    src->chunks = a;
    src->cap = cap;
  }
  at = find_chunk (src, c->base);
  memmove (&src->chunks[at + 1], &src->chunks[at],
           (src->nchunks - at) * sizeof *src->chunks);
  src->chunks[at] = c;
  src->nchunks++;
  if (c->nfree == CHUNK_PAGES)
    src->nempty++;
  if (at < src->first_free)
    src->first_free = at;
  return 0;
}

static void
spill_push (struct page_source *src, void *page)
{
  *(void **) page = src->spill;
  src->spill = page;
  src->nspill++;
}

static void *
spill_pop (struct page_source *src)
{
  void *page = src->spill;

  src->spill = *(void **) page;
  src->nspill--;
  return page;
}

/* What take_pages may take: pages known to be resident (the hot stack,
 * the spill and the reserve), and the chunks' free pages.
 */
enum { TAKE_READY = 1, TAKE_CHUNKS = 2 };

/* Takes up to n pages from what `from` names, in that order.  Called with
 * src->lock held.  Returns how many it took.
 */
static unsigned
take_pages (struct page_source *src, void **pages, unsigned n,
            struct populate *pop, int from)
{
  unsigned got = 0;

  if (from & TAKE_READY) {
    while (got < n && src->nhot > 0)
      pages[got++] = src->hot[--src->nhot];
    while (got < n && src->nspill > 0)
      pages[got++] = spill_pop (src);
    while (got < n && src->nres > 0)
      pages[got++] = src->res[--src->nres];
    if (src->res_target && !src->refill_wanted &&
        (got < n || src->nres < src->res_target / 2)) {
      src->refill_wanted = true;
      pthread_cond_signal (&src->refill_cond);
    }
  }
  if (!(from & TAKE_CHUNKS))
    return got;
  while (got < n && src->first_free < src->nchunks) {
    struct chunk *c = src->chunks[src->first_free];

    if (c->nfree == 0) {
      src->first_free++;
      continue;
    }
    if (c->nfree == CHUNK_PAGES)
      src->nempty--;
    unsigned idx = c->free[--c->nfree];
    pages[got++] = c->base + (size_t) idx * ZS_PAGE_SIZE;
    if (idx >= c->populated && pop->n < 4) {
      unsigned end = idx + POPULATE_PAGES;

      if (end > CHUNK_PAGES)
        end = CHUNK_PAGES;
      pop->r[pop->n].addr = c->base + (size_t) idx * ZS_PAGE_SIZE;
      pop->r[pop->n].len = (size_t) (end - idx) * ZS_PAGE_SIZE;
      pop->n++;
      c->populated = end;
    }
  }
  return got;
}

/* Puts n pages back on their chunks' free stacks, as they are (resident
 * or not).  Called with src->lock held.
 */
static void
return_pages (struct page_source *src, void *const *pages, unsigned n)
{
  unsigned i;

  for (i = 0; i < n; i++) {
    size_t at = find_chunk (src, pages[i]);
    struct chunk *c;

    assert (at < src->nchunks);
    c = src->chunks[at];
    assert (c->nfree < CHUNK_PAGES);
    c->free[c->nfree++] = ((char *) pages[i] - c->base) >> ZS_PAGE_SHIFT;
    if (c->nfree == CHUNK_PAGES)
      src->nempty++;
    if (at < src->first_free)
      src->first_free = at;
  }
}

static int
cmp_ptr (const void *a, const void *b)
{
  const char *x = *(char *const *) a, *y = *(char *const *) b;

  return (x > y) - (x < y);
}

/* Maps a chunk and adds it.  Called with src->lock held, which it drops
 * while mapping.  -1 when there is no more memory to map.
 */
static int
grow (struct page_source *src)
{
  struct chunk *c;

  pthread_mutex_unlock (&src->lock);
  c = map_chunk ();
  pthread_mutex_lock (&src->lock);
  if (c && insert_chunk (src, c) == 0)
    return 0;
  if (c) {
    pthread_mutex_unlock (&src->lock);
    munmap (c->base, CHUNK_SIZE);
    free (c);
    pthread_mutex_lock (&src->lock);
  }
  return -1;
}

/* Populates what take_pages noted.  Best effort: where the kernel lacks
 * MADV_POPULATE_WRITE (EINVAL before Linux 5.14), the pages fault in on
 * use, as they would anyway.
 */
static void
populate (const struct populate *pop)
{
  unsigned i;

  for (i = 0; i < pop->n; i++)
    if (madvise (pop->r[i].addr, pop->r[i].len, MADV_POPULATE_WRITE) == -1
        && errno != EINVAL)
      warn_once (WARN_POPULATE, errno, "madvise MADV_POPULATE_WRITE");
}

/* Faults in n pages that nobody uses, one write to each.  Not
 * MADV_POPULATE_WRITE: that holds the process's mmap lock for reading
 * while it waits for memory, and an I/O thread whose malloc grows a heap
 * (mprotect, which takes the lock for writing) then waits behind it for
 * as long as reclaim takes, which is for ever when reclaim waits on that
 * thread's swap I/O (seen in a guest on /dev/ublkbN).  A page fault takes
 * only its own mapping's lock (Linux 6.4+).
 */
static void
fault_in (void **pages, unsigned n)
{
  unsigned i;

  for (i = 0; i < n; i++)
    *(volatile char *) pages[i] = 0;
}

static void purge_pages (struct page_source *src, void **pages, unsigned n);
static void spill_locked (struct page_source *src, void *const *pages,
                          unsigned n);

/* The refiller: gives back the pages freed into src->spill, and tops the
 * reserve up to res_target whenever an allocation wakes it, mapping chunks
 * as needed.  It serves no I/O, so it may wait for reclaim as long as
 * reclaim takes.
 */
static void *
refill_main (void *arg)
{
  struct page_source *src = arg;
  void *batch[REFILL_BATCH];
  void *cold[PURGE_BATCH];

  /* Started by an I/O thread, it inherits PR_SET_IO_FLUSHER, under which
   * the kernel neither writes pages out nor kills for the memory a fault
   * needs, and waits for others to free it.  The refiller is the one
   * thread that must get memory by every means reclaim has.  (Without
   * CAP_SYS_RESOURCE neither thread had the flag.)
   */
  prctl (PR_SET_IO_FLUSHER, 0, 0, 0, 0);
  pthread_mutex_lock (&src->lock);
  for (;;) {
    while (!src->refill_stop && !src->refill_wanted && src->nspill == 0)
      pthread_cond_wait (&src->refill_cond, &src->lock);
    if (src->refill_stop)
      break;
    while (src->nspill > 0) {
      unsigned n = 0;

      while (n < PURGE_BATCH && src->nspill > 0)
        cold[n++] = spill_pop (src);
      pthread_mutex_unlock (&src->lock);
      purge_pages (src, cold, n);
      pthread_mutex_lock (&src->lock);
    }
    if (!src->refill_wanted)
      continue;
    while (!src->refill_stop && src->nres < src->res_target) {
      struct populate pop = { .n = 0 };
      size_t want = src->res_target - src->nres;
      unsigned n = want < REFILL_BATCH ? want : REFILL_BATCH, got;

      got = take_pages (src, batch, n, &pop, TAKE_CHUNKS);
      if (got == 0) {
        /* Out of address space: allocations fail once the reserve is
         * gone, until one wakes the refiller again.
         */
        if (grow (src) == -1)
          break;
        continue;
      }
      pthread_mutex_unlock (&src->lock);
      /* pop's ranges are left alone, for the same reason. */
      fault_in (batch, got);
      pthread_mutex_lock (&src->lock);
      /* Freed pages may have filled the reserve meanwhile: what has no
       * room goes where freed pages go.
       */
      {
        size_t room = src->res_target - src->nres;
        unsigned put = got < room ? got : (unsigned) room;

        memcpy (&src->res[src->nres], batch, put * sizeof *batch);
        src->nres += put;
        if (put < got)
          spill_locked (src, batch + put, got - put);
      }
      src->dry = false;
      pthread_cond_broadcast (&src->refilled_cond);
    }
    src->refill_wanted = false;
    pthread_cond_broadcast (&src->refilled_cond);
  }
  pthread_mutex_unlock (&src->lock);
  return NULL;
}

/* Starts the refiller the first time an allocation finds zs_set_reserve
 * set.  Called without src->lock; an allocation that cannot start it
 * goes on without a reserve, as the source always did.
 */
static void
start_refill (struct page_source *src)
{
  size_t target = atomic_load_explicit (&reserve_pages, memory_order_relaxed);
  void **res;
  int err;

  if (target == 0 || __atomic_load_n (&src->refill_running, __ATOMIC_ACQUIRE))
    return;
  res = malloc (target * sizeof *res);
  pthread_mutex_lock (&src->lock);
  if (src->refill_running || !res) {
    pthread_mutex_unlock (&src->lock);
    free (res);
    return;
  }
  src->res = res;
  src->res_target = target;
  src->refill_wanted = true;
  err = pthread_create (&src->refill, NULL, refill_main, src);
  if (err) {
    src->res = NULL;
    src->res_target = 0;
    pthread_mutex_unlock (&src->lock);
    free (res);
    warn_once (WARN_RESERVE, err, "no reserve for swap: pthread_create");
    return;
  }
  pthread_setname_np (src->refill, "zs-reserve");
  __atomic_store_n (&src->refill_running, true, __ATOMIC_RELEASE);
  pthread_mutex_unlock (&src->lock);
}

/* alloc_builtin with a reserve: only pages already resident (see the top
 * of the file), waiting up to READY_WAIT_MS for the refiller when there
 * are none, as when the reserve has just started.  Called with src->lock
 * held, which it drops.
 */
static int
alloc_ready (struct page_source *src, void **pages, unsigned n)
{
  struct timespec until;
  unsigned got;

  got = take_pages (src, pages, n, NULL, TAKE_READY);
  if (got < n && !src->dry) {
    clock_gettime (CLOCK_MONOTONIC, &until);
    until.tv_nsec += (READY_WAIT_MS % 1000) * 1000000L;
    until.tv_sec += READY_WAIT_MS / 1000 + until.tv_nsec / 1000000000L;
    until.tv_nsec %= 1000000000L;
  }
  while (got < n && !src->dry) {
    int r = pthread_cond_timedwait (&src->refilled_cond, &src->lock, &until);

    got += take_pages (src, pages + got, n - got, NULL, TAKE_READY);
    if (r == ETIMEDOUT)
      break;
  }
  if (got < n) {
    /* Until the refiller adds pages, the next ones fail at once. */
    src->dry = true;
    spill_locked (src, pages, got);
    pthread_mutex_unlock (&src->lock);
    errno = ENOMEM;
    return -1;
  }
  pthread_mutex_unlock (&src->lock);
  return 0;
}

static int
alloc_builtin (struct page_source *src, void **pages, unsigned n)
{
  struct populate pop = { .n = 0 };
  unsigned got;

  start_refill (src);
  pthread_mutex_lock (&src->lock);
  if (src->res_target)
    return alloc_ready (src, pages, n);
  got = take_pages (src, pages, n, &pop, TAKE_READY | TAKE_CHUNKS);
  while (got < n) {
    if (grow (src) == -1) {
      pthread_mutex_unlock (&src->lock);
      if (got)
        pagesrc_free (src, pages, got);
      errno = ENOMEM;
      return -1;
    }
    got += take_pages (src, pages + got, n - got, &pop,
                       TAKE_READY | TAKE_CHUNKS);
  }
  pthread_mutex_unlock (&src->lock);
  populate (&pop);
  return 0;
}

int
pagesrc_alloc (struct page_source *src, void **pages, unsigned n)
{
  unsigned i;

  if (src->builtin)
    return alloc_builtin (src, pages, n);
  for (i = 0; i < n; i++) {
    pages[i] = src->ops.alloc_page (src->ops.ctx);
    if (!pages[i]) {
      while (i-- > 0)
        src->ops.free_page (src->ops.ctx, pages[i]);
      errno = ENOMEM;
      return -1;
    }
  }
  return 0;
}

/* Gives pages (taken off every free list) back to the system, coalescing
 * neighbours into one madvise, then returns them to their chunks and
 * unmaps chunks that became empty, keeping one as a spare.  Called without
 * src->lock; takes it.
 */
static void
purge_pages (struct page_source *src, void **pages, unsigned n)
{
  struct chunk *empty[PURGE_BATCH + 1];
  struct chunk *prev = NULL;
  unsigned i, j, nempty = 0;

  qsort (pages, n, sizeof *pages, cmp_ptr);
  for (i = 0; i < n; i = j) {
    for (j = i + 1; j < n; j++)
      if ((char *) pages[j] != (char *) pages[j - 1] + ZS_PAGE_SIZE)
        break;
    give_back (pages[i], (j - i) * ZS_PAGE_SIZE);
  }

  pthread_mutex_lock (&src->lock);
  return_pages (src, pages, n);
  /* Pages are sorted, so each chunk touched comes as one run.  The rest
   * of a run is recognised by the run's chunk's address range, not by
   * looking the page up: once that chunk is removed below, a lookup finds
   * a neighbour, or nothing when it was the last.
   */
  for (i = 0; i < n; i++) {
    char *p = pages[i];
    size_t at;
    struct chunk *c;

    if (prev && p >= (char *) prev->base &&
        p < (char *) prev->base + CHUNK_SIZE)
      continue;
    at = find_chunk (src, p);
    assert (at < src->nchunks);
    c = prev = src->chunks[at];
    if (c->nfree < CHUNK_PAGES || src->nempty < 2)
      continue;                 /* in use, or the spare */
    empty[nempty++] = c;
    memmove (&src->chunks[at], &src->chunks[at + 1],
             (src->nchunks - at - 1) * sizeof *src->chunks);
    src->nchunks--;
    src->nempty--;
    src->first_free = 0;
  }
  pthread_mutex_unlock (&src->lock);

  for (i = 0; i < nempty; i++) {
    munmap (empty[i]->base, CHUNK_SIZE);
    free (empty[i]);
  }
}

/* pagesrc_free with a reserve: no system call (see the top of the file).
 * Called with src->lock held.
 */
static void
spill_locked (struct page_source *src, void *const *pages, unsigned n)
{
  unsigned i, j;

  for (i = 0; i < n; i++) {
    if (src->nhot == HOT_PAGES) {
      /* The oldest hot pages move on: to the reserve, or to the
       * refiller to give back.
       */
      for (j = 0; j < PURGE_BATCH; j++) {
        void *p = src->hot[j];

        if (src->nres < src->res_target)
          src->res[src->nres++] = p;
        else
          spill_push (src, p);
      }
      memmove (src->hot, src->hot + PURGE_BATCH,
               (HOT_PAGES - PURGE_BATCH) * sizeof *src->hot);
      src->nhot -= PURGE_BATCH;
    }
    src->hot[src->nhot++] = pages[i];
  }
  if (src->nspill >= PURGE_BATCH)
    pthread_cond_signal (&src->refill_cond);
}

void
pagesrc_free (struct page_source *src, void *const *pages, unsigned n)
{
  void *cold[PURGE_BATCH];
  unsigned i, ncold = 0;

  if (!src->builtin) {
    for (i = 0; i < n; i++)
      src->ops.free_page (src->ops.ctx, pages[i]);
    return;
  }

  pthread_mutex_lock (&src->lock);
  if (src->res_target) {
    spill_locked (src, pages, n);
    pthread_mutex_unlock (&src->lock);
    return;
  }
  for (i = 0; i < n; i++) {
    src->hot[src->nhot++] = pages[i];
    if (src->nhot == HOT_PAGES) {
      /* The oldest pages go back to the system in one batch. */
      assert (ncold == 0);
      ncold = PURGE_BATCH;
      memcpy (cold, src->hot, sizeof cold);
      memmove (src->hot, src->hot + PURGE_BATCH,
               (HOT_PAGES - PURGE_BATCH) * sizeof *src->hot);
      src->nhot -= PURGE_BATCH;
      if (i + 1 < n) {
        pthread_mutex_unlock (&src->lock);
        purge_pages (src, cold, ncold);
        ncold = 0;
        pthread_mutex_lock (&src->lock);
      }
    }
  }
  pthread_mutex_unlock (&src->lock);
  if (ncold)
    purge_pages (src, cold, ncold);
}

void
pagesrc_trim (struct page_source *src)
{
  void *cold[PURGE_BATCH];
  unsigned n;

  if (!src->builtin)
    return;
  pthread_mutex_lock (&src->lock);
  if (src->res_target) {
    /* The refiller gives them back (see the top of the file): trim may
     * be called on the write path, by the policy's reclaim.
     */
    while (src->nhot > 0)
      spill_push (src, src->hot[--src->nhot]);
    pthread_cond_signal (&src->refill_cond);
    pthread_mutex_unlock (&src->lock);
    return;
  }
  pthread_mutex_unlock (&src->lock);
  do {
    pthread_mutex_lock (&src->lock);
    n = src->nhot < PURGE_BATCH ? src->nhot : PURGE_BATCH;
    src->nhot -= n;
    memcpy (cold, src->hot + src->nhot, n * sizeof *cold);
    pthread_mutex_unlock (&src->lock);
    if (n)
      purge_pages (src, cold, n);
  } while (n);
}
