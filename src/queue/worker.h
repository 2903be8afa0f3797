/* The worker pool inside `serve`: N threads that claim jobs from the store,
 * decode their input images, run the pipeline with progress and cancel,
 * encode and store the outputs, and mark the job COMPLETED or FAILED. */
#ifndef DG_QUEUE_WORKER_H
#define DG_QUEUE_WORKER_H

#include "image/image.h"
#include "queue/store.h"

typedef struct dg_worker_pool dg_worker_pool;

typedef struct dg_worker_params {
  dg_store *store;
  int n_workers;
  const char *models_dir;
  int n_threads;              /* compute threads per job (0 = all) */
  dg_image_limits limits;     /* for decoding the stored inputs */
  double poll_s;              /* idle re-check of the store (other processes' jobs) */
  /* Called (from a worker thread) after each job: ok = 1 COMPLETED, 0 FAILED,
   * -1 no final state set by the worker (re-queued at shutdown, cancelled). */
  void (*on_finish)(void *ud, const dg_job *job, int ok);
  void *ud;
} dg_worker_params;

dg_worker_params dg_worker_params_default(void);

dg_status dg_worker_pool_new(const dg_worker_params *p, dg_worker_pool **out);
/* Wake an idle worker: a job was queued. */
void dg_worker_pool_notify(dg_worker_pool *w);
/* Number of workers running a job right now. */
int dg_worker_pool_busy(dg_worker_pool *w);
/* Refresh the heartbeat of this pool's running jobs (call periodically). */
void dg_worker_pool_heartbeat(dg_worker_pool *w);
/* Stops the workers: a running job is asked to stop and put back in the
 * queue (its attempt not counted). */
void dg_worker_pool_free(dg_worker_pool *w);

#endif
