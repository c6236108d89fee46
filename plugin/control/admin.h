/* uzram control filesystem: the admin worker.
 *
 * Writes to the control files (reset, compact, idle, mem_limit, disksize
 * and the rest) can take long: compaction walks the whole pool, reset frees
 * it, idle walks every slot, and reset waits a moment for a client that is
 * on its way out.  Served inline they would hold the thread that took the
 * request, and with FUSE over io_uring that thread is its CPU's ring: every
 * `disk` request from that CPU would wait behind them, the RELEASE that
 * reset waits for included.  So the handlers hand them to one thread of
 * their own, which runs them in order and replies from there.
 */
#ifndef UZRAM_CONTROL_ADMIN_H
#define UZRAM_CONTROL_ADMIN_H

struct admin;

/* One piece of work; the submitter embeds it in a struct of its own and
 * run frees that struct.
 */
struct admin_job {
  void (*run) (struct admin_job *job);
  struct admin_job *next;
};

/* Starts the worker (every signal blocked, as the FUSE workers).  NULL
 * after nbdkit_error.
 */
struct admin *admin_start (void);

/* Queues job; it runs on the worker, after every job queued before it.
 * With a NULL or stopped worker it runs here and now.
 */
void admin_submit (struct admin *a, struct admin_job *job);

/* Runs what is queued, then stops and joins the worker.  NULL is fine. */
void admin_stop (struct admin *a);

#endif /* UZRAM_CONTROL_ADMIN_H */
