/* uzram: the devices of one server (see devices.h).
 *
 * The table is an array indexed by id.  An entry carries the engine and
 * the number of references front ends hold; hot_remove retires the engine
 * (zram_retire: no new clients) and takes the entry out of the array, onto
 * the list of the removed, which the last devices_put empties.  Engines
 * are created and destroyed outside devices_lock: both can take long (a
 * destroy frees the whole pool) and must not stall lookups.  So are
 * front ends started, released and stopped (a ublk block device's STOP_DEV
 * waits for its requests in flight): the lock only finds them.
 */
#include <config.h>

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "devices.h"
#include "engine.h"

struct entry {
  struct zram *zram;
  void *front;                  /* front.start's, NULL: none */
  unsigned refs;                /* devices_get's and hot_remove's, not put */
  struct entry *next;           /* on `removed` */
};

static pthread_mutex_t devices_lock = PTHREAD_MUTEX_INITIALIZER;
static struct entry *table[ZRAM_MAX_DEVICES];
static struct entry *removed;   /* out of the table, still referenced */
static bool started;            /* devices_start has run */
/* Set once before any thread but the first runs (devices_set_front). */
static struct devices_front front;

/* Set once before any device exists (the plugin's get_ready). */
static const char *default_comp = ZRAM_DEFAULT_COMP;
static uint64_t default_mem_limit;
static bool populate;           /* devices_set_populate */

int
devices_set_defaults (const char *comp_algorithm, uint64_t mem_limit)
{
  const char *const *a;

  for (a = zram_comp_algorithms (); *a; a++)
    if (strcmp (*a, comp_algorithm) == 0)
      break;
  if (*a == NULL)
    return -EINVAL;
  default_comp = *a;
  default_mem_limit = mem_limit;
  return 0;
}

/* The entry that holds zram, in the table or removed; devices_lock held. */
static struct entry *
entry_of (struct zram *zram)
{
  struct entry *e;
  unsigned id;

  for (id = 0; id < ZRAM_MAX_DEVICES; id++)
    if (table[id] && table[id]->zram == zram)
      return table[id];
  for (e = removed; e; e = e->next)
    if (e->zram == zram)
      return e;
  return NULL;
}

/* Frees e, out of the table and unreferenced.  The front end goes first:
 * it holds the engine while its block device exists.
 */
static void
entry_destroy (struct entry *e)
{
  if (e->front)
    front.stop (e->front);
  zram_destroy (e->zram);
  free (e);
}

int
devices_hot_add (void)
{
  struct entry *e = calloc (1, sizeof *e);
  unsigned id;
  int r;

  if (!e)
    return -ENOMEM;
  e->zram = zram_create ();
  if (!e->zram) {
    r = -errno;
    free (e);
    return r;
  }
  r = zram_set_defaults (e->zram, default_comp, default_mem_limit);
  if (r == 0 && __atomic_load_n (&populate, __ATOMIC_RELAXED))
    zram_set_populate (e->zram);
  if (r == 0 && front.start && (e->front = front.start (e->zram)) == NULL)
    r = -ENOMEM;
  pthread_mutex_lock (&devices_lock);
  if (r == 0 && started)
    r = zram_policy_start (e->zram);
  for (id = 0; r == 0 && id < ZRAM_MAX_DEVICES && table[id]; id++)
    ;
  if (r == 0 && id == ZRAM_MAX_DEVICES)
    r = -ENOSPC;
  if (r == 0)
    table[id] = e;
  pthread_mutex_unlock (&devices_lock);
  if (r < 0) {
    entry_destroy (e);
    return r;
  }
  return id;
}

int
devices_hot_remove (unsigned id)
{
  struct entry *e;
  void *fe = NULL;
  bool released = false;
  int r = 0;

  pthread_mutex_lock (&devices_lock);
  e = id < ZRAM_MAX_DEVICES ? table[id] : NULL;
  if (!e)
    r = -ENODEV;
  else if (id == 0)
    r = -EBUSY;
  else {
    e->refs++;                  /* ours, while unlocked */
    fe = e->front;
  }
  pthread_mutex_unlock (&devices_lock);
  if (r < 0)
    return r;
  /* The front end holds the engine while its block device exists, so
   * retire would count it as a client: it lets go first, and refuses
   * while its block device is in use.
   */
  if (fe) {
    r = front.release (fe);
    released = r == 0;
  }
  pthread_mutex_lock (&devices_lock);
  if (r == 0 && table[id] != e)
    r = -ENODEV;                /* removed meanwhile */
  if (r == 0 && (r = zram_retire (e->zram)) == 0) {
    table[id] = NULL;
    e->next = removed;
    removed = e;
  }
  pthread_mutex_unlock (&devices_lock);
  /* A client came in between: the block device comes back, and the
   * device keeps everything.
   */
  if (r < 0 && released)
    front.initialised (fe);
  devices_put (e->zram);        /* the last reference destroys it */
  return r;
}

int
devices_set_front (const struct devices_front *f)
{
  unsigned id;

  front = *f;
  for (id = 0; id < ZRAM_MAX_DEVICES; id++) {
    struct entry *e;
    void *fe;

    pthread_mutex_lock (&devices_lock);
    e = table[id];
    pthread_mutex_unlock (&devices_lock);
    if (!e)
      continue;
    /* Nothing removes a device before the control filesystem starts. */
    fe = front.start (e->zram);
    if (!fe)
      return -ENOMEM;
    pthread_mutex_lock (&devices_lock);
    e->front = fe;
    pthread_mutex_unlock (&devices_lock);
  }
  return 0;
}

/* zram's front end, or NULL.  It lives as long as the entry, which the
 * caller's reference keeps, or until devices_stop_fronts.
 */
static void *
front_of (struct zram *zram)
{
  struct entry *e;
  void *fe = NULL;

  pthread_mutex_lock (&devices_lock);
  e = entry_of (zram);
  if (e)
    fe = e->front;
  pthread_mutex_unlock (&devices_lock);
  return fe;
}

int
devices_front_release (struct zram *zram)
{
  void *fe = front_of (zram);

  return fe ? front.release (fe) : 0;
}

void
devices_front_initialised (struct zram *zram)
{
  void *fe = front_of (zram);

  if (fe)
    front.initialised (fe);
}

int
devices_front_dev_id (struct zram *zram)
{
  void *fe = front_of (zram);

  return fe ? front.dev_id (fe) : -1;
}

void
devices_stop_fronts (void)
{
  void *fe;

  /* One at a time, each stopped outside the lock. */
  do {
    struct entry *e;
    unsigned id;

    fe = NULL;
    pthread_mutex_lock (&devices_lock);
    for (id = 0; !fe && id < ZRAM_MAX_DEVICES; id++)
      if (table[id] && table[id]->front) {
        fe = table[id]->front;
        table[id]->front = NULL;
      }
    for (e = removed; !fe && e; e = e->next)
      if (e->front) {
        fe = e->front;
        e->front = NULL;
      }
    pthread_mutex_unlock (&devices_lock);
    if (fe)
      front.stop (fe);
  } while (fe);
}

void
devices_set_populate (void)
{
  int id;

  __atomic_store_n (&populate, true, __ATOMIC_RELAXED);
  for (id = devices_next (-1); id >= 0; id = devices_next (id)) {
    struct zram *zram = devices_get (id);

    if (zram) {
      zram_set_populate (zram);
      devices_put (zram);
    }
  }
}

int
devices_start (void)
{
  unsigned id;
  int r = 0;

  pthread_mutex_lock (&devices_lock);
  for (id = 0; r == 0 && id < ZRAM_MAX_DEVICES; id++)
    if (table[id])
      r = zram_policy_start (table[id]->zram);
  started = r == 0;
  pthread_mutex_unlock (&devices_lock);
  return r;
}

int
devices_name_id (const char *name)
{
  unsigned long id;
  char *end;

  if (strncmp (name, "zram", 4) != 0 || name[4] < '0' || name[4] > '9' ||
      (name[4] == '0' && name[5] != '\0'))
    return -1;
  errno = 0;
  id = strtoul (name + 4, &end, 10);
  if (errno || *end || id >= ZRAM_MAX_DEVICES)
    return -1;
  return id;
}

struct zram *
devices_get (unsigned id)
{
  struct zram *zram = NULL;

  pthread_mutex_lock (&devices_lock);
  if (id < ZRAM_MAX_DEVICES && table[id]) {
    table[id]->refs++;
    zram = table[id]->zram;
  }
  pthread_mutex_unlock (&devices_lock);
  return zram;
}

void
devices_put (struct zram *zram)
{
  struct entry *e, **p, *gone = NULL;
  unsigned id;

  pthread_mutex_lock (&devices_lock);
  for (id = 0; id < ZRAM_MAX_DEVICES; id++)
    if (table[id] && table[id]->zram == zram) {
      table[id]->refs--;
      goto out;
    }
  for (p = &removed; (e = *p) != NULL; p = &e->next)
    if (e->zram == zram) {
      if (--e->refs == 0) {
        *p = e->next;
        gone = e;
      }
      break;
    }
 out:
  pthread_mutex_unlock (&devices_lock);
  if (gone)
    entry_destroy (gone);
}

int
devices_next (int after)
{
  int id, r = -1;

  pthread_mutex_lock (&devices_lock);
  for (id = after < 0 ? 0 : after + 1; id < ZRAM_MAX_DEVICES; id++)
    if (table[id]) {
      r = id;
      break;
    }
  pthread_mutex_unlock (&devices_lock);
  return r;
}

void
devices_stop (void)
{
  struct entry *e;
  unsigned id;

  pthread_mutex_lock (&devices_lock);
  started = false;
  for (id = 0; id < ZRAM_MAX_DEVICES; id++)
    if (table[id])
      zram_policy_stop (table[id]->zram);
  for (e = removed; e; e = e->next)
    zram_policy_stop (e->zram);
  pthread_mutex_unlock (&devices_lock);
}

void
devices_destroy_all (void)
{
  struct entry *e;
  unsigned id;

  pthread_mutex_lock (&devices_lock);
  for (id = 0; id < ZRAM_MAX_DEVICES; id++)
    if ((e = table[id]) != NULL) {
      table[id] = NULL;
      e->next = removed;
      removed = e;
    }
  e = removed;
  removed = NULL;
  pthread_mutex_unlock (&devices_lock);
  while (e) {
    struct entry *next = e->next;
    entry_destroy (e);
    e = next;
  }
}
