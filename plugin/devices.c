/* uzram: the devices of one server (see devices.h).
 *
 * The table is an array indexed by id.  An entry carries the engine and
 * the number of references front ends hold; hot_remove retires the engine
 * (zram_retire: no new clients) and takes the entry out of the array, onto
 * the list of the removed, which the last devices_put empties.  Engines
 * are created and destroyed outside devices_lock: both can take long (a
 * destroy frees the whole pool) and must not stall lookups.
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
  unsigned refs;                /* devices_get's, not yet put */
  struct entry *next;           /* on `removed` */
};

static pthread_mutex_t devices_lock = PTHREAD_MUTEX_INITIALIZER;
static struct entry *table[ZRAM_MAX_DEVICES];
static struct entry *removed;   /* out of the table, still referenced */
static bool started;            /* devices_start has run */

/* Set once before any device exists (the plugin's get_ready). */
static const char *default_comp = ZRAM_DEFAULT_COMP;
static uint64_t default_mem_limit;

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
    zram_destroy (e->zram);
    free (e);
    return r;
  }
  return id;
}

int
devices_hot_remove (unsigned id)
{
  struct entry *e;
  int r = 0;

  pthread_mutex_lock (&devices_lock);
  e = id < ZRAM_MAX_DEVICES ? table[id] : NULL;
  if (!e)
    r = -ENODEV;
  else if (id == 0)
    r = -EBUSY;
  else if ((r = zram_retire (e->zram)) == 0) {
    table[id] = NULL;
    if (e->refs > 0) {
      e->next = removed;
      removed = e;
      e = NULL;                 /* the last devices_put destroys it */
    }
  }
  pthread_mutex_unlock (&devices_lock);
  if (r == 0 && e) {
    zram_destroy (e->zram);
    free (e);
  }
  return r;
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
  if (gone) {
    zram_destroy (gone->zram);
    free (gone);
  }
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
    zram_destroy (e->zram);
    free (e);
    e = next;
  }
}
