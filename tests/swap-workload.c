/* A workload that makes the kernel swap: fill SIZE MiB of anonymous memory
 * with page contents derived from each page's index, touch it again in
 * passes, and check every byte at the end.  Run it in a memory cgroup whose
 * limit is well below SIZE, with swap on the device under test, and its
 * pages go out to the device and come back.
 *
 *   swap-workload SIZE_MIB [PASSES [RANDOM_BYTES]]
 *
 * Exit 0: every byte checked out; 1: a mismatch (the first is printed);
 * 2: bad arguments or no memory.
 *
 * A page is text-like (compressible, as heap pages are) but for its last
 * RANDOM_BYTES (default half the page), a xorshift stream seeded by the
 * page index (incompressible), so the device sees both; one page in 16 is
 * all zeroes (same-filled).  A smaller RANDOM_BYTES makes pages that
 * compress well enough for a working set of twice the RAM to fit in RAM
 * once compressed, as under global memory pressure it must.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#define PAGE 4096

/* Bytes at the end of each page that are random: a multiple of 8. */
static size_t random_bytes = PAGE / 2;

static void
fill_page (uint64_t *w, uint64_t index)
{
  static const char text[] =
    "struct zspage { unsigned int huge; unsigned int fullness; "
    "unsigned int class; unsigned int isolated; unsigned int magic; } ";
  size_t i;

  if (index % 16 == 5) {
    memset (w, 0, PAGE);
    return;
  }
  for (i = 0; i < (PAGE - random_bytes) / 8; i++) {
    char *c = (char *) w + i * 8;
    memcpy (c, text + (index + i) % (sizeof text - 9), 8);
  }
  uint64_t x = index * 0x9E3779B97F4A7C15ull + 1;
  for (i = (PAGE - random_bytes) / 8; i < PAGE / 8; i++) {
    x ^= x << 13; x ^= x >> 7; x ^= x << 17;
    w[i] = x;
  }
}

static double
now (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

int
main (int argc, char **argv)
{
  if (argc < 2 || atol (argv[1]) <= 0 ||
      (argc > 3 && (atol (argv[3]) < 0 || atol (argv[3]) > PAGE ||
                    atol (argv[3]) % 8 != 0))) {
    fprintf (stderr, "usage: swap-workload SIZE_MIB [PASSES [RANDOM_BYTES]]\n"
             "(RANDOM_BYTES: 0 to 4096, a multiple of 8)\n");
    return 2;
  }
  if (argc > 3)
    random_bytes = atol (argv[3]);
  uint64_t pages = (uint64_t) atol (argv[1]) * 1024 * 1024 / PAGE;
  int passes = argc > 2 ? atoi (argv[2]) : 2;
  uint64_t page[PAGE / 8];
  double t0 = now ();

  char *mem = mmap (NULL, pages * PAGE, PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) {
    perror ("swap-workload: mmap");
    return 2;
  }
  for (uint64_t p = 0; p < pages; p++)
    fill_page ((uint64_t *) (mem + p * PAGE), p);
  printf ("filled %lu pages in %.2f s\n", (unsigned long) pages, now () - t0);
  fflush (stdout);

  /* Passes in a scattered order: each brings back pages that went out. */
  uint64_t step = 7919;   /* a prime, so the walk visits every page */
  for (int pass = 0; pass < passes; pass++) {
    uint64_t p = pass;
    for (uint64_t n = 0; n < pages; n++) {
      p = (p + step) % pages;
      volatile char *c = mem + p * PAGE;
      c[100] = c[100];   /* touch: swap it in, dirty it */
    }
  }

  for (uint64_t p = 0; p < pages; p++) {
    fill_page (page, p);
    if (memcmp (page, mem + p * PAGE, PAGE) != 0) {
      size_t i = 0;
      while (((char *) page)[i] == mem[p * PAGE + i])
        i++;
      fprintf (stderr, "swap-workload: page %lu differs at byte %zu\n",
               (unsigned long) p, i);
      return 1;
    }
  }
  printf ("checked %lu pages in %.2f s total\n", (unsigned long) pages,
          now () - t0);
  return 0;
}
