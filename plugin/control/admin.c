/* uzram control filesystem: the admin worker (see admin.h).
 *
 * One thread and a FIFO of jobs under one mutex.  One thread is enough:
 * zram's own stores serialise on its init_lock anyway, and a job that
 * waits (reset's grace for a closing client) delays only other admin
 * work, never I/O.
 *
 * Locks: lock guards head, tail and stopping.
 */
#include <config.h>

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>

#define NBDKIT_API_VERSION 2
#include <nbdkit-plugin.h>

#include "control/admin.h"

struct admin {
  pthread_mutex_t lock;
  pthread_cond_t cond;
  struct admin_job *head, *tail;
  bool stopping;
  pthread_t thread;
};

static void *
admin_thread (void *arg)
{
  struct admin *a = arg;
  struct admin_job *job;

  pthread_setname_np (pthread_self (), "zram-admin");
  pthread_mutex_lock (&a->lock);
  for (;;) {
    while (!a->head && !a->stopping)
      pthread_cond_wait (&a->cond, &a->lock);
    job = a->head;
    if (!job)
      break;                    /* stopping, and nothing left */
    a->head = job->next;
    if (!a->head)
      a->tail = NULL;
    pthread_mutex_unlock (&a->lock);
    job->run (job);
    pthread_mutex_lock (&a->lock);
  }
  pthread_mutex_unlock (&a->lock);
  return NULL;
}

struct admin *
admin_start (void)
{
  struct admin *a = calloc (1, sizeof *a);
  sigset_t all, old;
  int err;

  if (!a) {
    nbdkit_error ("calloc: %m");
    return NULL;
  }
  pthread_mutex_init (&a->lock, NULL);
  pthread_cond_init (&a->cond, NULL);
  sigfillset (&all);
  pthread_sigmask (SIG_SETMASK, &all, &old);
  err = pthread_create (&a->thread, NULL, admin_thread, a);
  pthread_sigmask (SIG_SETMASK, &old, NULL);
  if (err) {
    errno = err;
    nbdkit_error ("control: admin worker: pthread_create: %m");
    pthread_cond_destroy (&a->cond);
    pthread_mutex_destroy (&a->lock);
    free (a);
    return NULL;
  }
  return a;
}

void
admin_submit (struct admin *a, struct admin_job *job)
{
  job->next = NULL;
  if (a) {
    pthread_mutex_lock (&a->lock);
    if (!a->stopping) {
      if (a->tail)
        a->tail->next = job;
      else
        a->head = job;
      a->tail = job;
      pthread_cond_signal (&a->cond);
      pthread_mutex_unlock (&a->lock);
      return;
    }
    pthread_mutex_unlock (&a->lock);
  }
  job->run (job);
}

void
admin_stop (struct admin *a)
{
  if (!a)
    return;
  pthread_mutex_lock (&a->lock);
  a->stopping = true;
  pthread_cond_signal (&a->cond);
  pthread_mutex_unlock (&a->lock);
  pthread_join (a->thread, NULL);
  pthread_cond_destroy (&a->cond);
  pthread_mutex_destroy (&a->lock);
  free (a);
}
