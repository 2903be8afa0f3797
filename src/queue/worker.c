#include "queue/worker.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/log.h"
#include "pipelines/pipeline.h"
#include "pipelines/schema.h"

typedef struct worker {
  struct dg_worker_pool *pool;
  pthread_t thread;
  int index;
  int started;
} worker;

struct dg_worker_pool {
  dg_worker_params p;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int stop;
  int pending; /* notifications not yet consumed */
  int busy;
  char prefix[160]; /* "<host>:<pid>/": names this process's workers */
  worker *workers;
};

/* Per-job context for the progress / cancel callbacks. */
typedef struct job_ctx {
  dg_worker_pool *pool;
  const char *id;
  int cancel;
  double last_write;
} job_ctx;

dg_worker_params dg_worker_params_default(void) {
  dg_worker_params p;
  memset(&p, 0, sizeof p);
  p.n_workers = 1;
  p.models_dir = "models";
  p.limits = dg_image_limits_default();
  p.poll_s = 1.0;
  return p;
}

static int stopping(dg_worker_pool *w) {
  pthread_mutex_lock(&w->mu);
  int s = w->stop;
  pthread_mutex_unlock(&w->mu);
  return s;
}

static void on_progress(void *ud, int step, int total) {
  job_ctx *c = ud;
  int cancel = 0;
  dg_store_progress(c->pool->p.store, c->id, step, total, &cancel);
  if (cancel) c->cancel = 1;
}

static int on_cancelled(void *ud) {
  job_ctx *c = ud;
  return c->cancel || stopping(c->pool);
}

static void fail_job(dg_worker_pool *w, dg_job *job, const char *msg) {
  DG_WARN("job %s (%s) failed: %s", job->id, job->slug, msg);
  dg_store_fail(w->p.store, job->id, msg);
  if (w->p.on_finish) w->p.on_finish(w->p.ud, job, 0);
}

static double mono(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void run_job(dg_worker_pool *w, dg_job *job) {
  const dg_pipeline *p = dg_pipeline_find(job->slug);
  char msg[1024];
  if (!p) {
    snprintf(msg, sizeof msg, "model '%s' is not available on this server", job->slug);
    fail_job(w, job, msg);
    return;
  }
  if (job->cancel_requested) {
    fail_job(w, job, "cancelled by the client");
    return;
  }
  json_t *params = json_loads(job->params_json ? job->params_json : "{}", 0, NULL);
  if (!params) {
    fail_job(w, job, "stored parameters are unreadable");
    return;
  }
  dg_job_image images[16];
  int n_images = 0;
  dg_job_io io;
  memset(&io, 0, sizeof io);
  int ok = 0;
  /* Decode the image inputs stored at submit. */
  for (int i = 0; i < p->n_params && n_images < 16; i++) {
    if (p->params[i].type != DG_PARAM_TYPE_IMAGE || !json_is_string(json_object_get(params, p->params[i].name)))
      continue;
    uint8_t *raw = NULL;
    size_t n = 0;
    if (dg_store_input_get(w->p.store, job->id, p->params[i].name, &raw, &n) != DG_STATUS_OK) {
      snprintf(msg, sizeof msg, "input image '%s' is missing from the job store", p->params[i].name);
      goto done;
    }
    dg_image *img = NULL;
    char err[256] = "";
    dg_status st = dg_image_decode(raw, n, &w->p.limits, &img, err, sizeof err);
    free(raw);
    if (st != DG_STATUS_OK) {
      snprintf(msg, sizeof msg, "parameter '%s': %s", p->params[i].name, err[0] ? err : dg_strerror(st));
      goto done;
    }
    images[n_images].name = p->params[i].name;
    images[n_images].image = img;
    n_images++;
  }
  job_ctx ctx = {w, job->id, 0, 0};
  io.params_json = job->params_json;
  io.seed = job->seed;
  io.images = images;
  io.n_images = n_images;
  io.models_dir = w->p.models_dir;
  io.n_threads = w->p.n_threads;
  io.progress = on_progress;
  io.cancelled = on_cancelled;
  io.ud = &ctx;
  double t0 = mono();
  dg_status st = p->run(&io);
  double t = mono() - t0;
  if (st != DG_STATUS_OK) {
    if (st == DG_STATUS_ERR_CANCELLED && !ctx.cancel && stopping(w)) {
      /* Shutdown: back to the queue, the attempt not counted. */
      DG_INFO("job %s interrupted by shutdown: re-queued", job->id);
      dg_store_release(w->p.store, job->id);
      msg[0] = '\0';
      ok = 2;
      goto done;
    }
    if (st == DG_STATUS_ERR_CANCELLED)
      snprintf(msg, sizeof msg, "cancelled by the client while running");
    else
      snprintf(msg, sizeof msg, "%s", io.error[0] ? io.error : dg_strerror(st));
    goto done;
  }
  if (io.n_outputs <= 0) {
    snprintf(msg, sizeof msg, "the model produced no output");
    goto done;
  }
  dg_output_opts oo;
  dg_schema_output_opts(params, &oo);
  json_t *outs = json_array();
  for (int i = 0; i < io.n_outputs; i++) {
    uint8_t *enc = NULL;
    size_t n = 0;
    char mid[DG_ID_LEN];
    if (!io.outputs[i] || dg_image_encode(io.outputs[i], oo.format, oo.quality, &enc, &n) != DG_STATUS_OK) {
      snprintf(msg, sizeof msg, "could not encode output image %d as %s", i, dg_image_format_ext(oo.format));
      free(enc);
      json_decref(outs);
      goto done;
    }
    dg_status ms = dg_store_media_put(w->p.store, job->id, dg_image_format_mime(oo.format), enc, n, mid);
    free(enc);
    if (ms != DG_STATUS_OK) {
      snprintf(msg, sizeof msg, "could not store output image %d", i);
      json_decref(outs);
      goto done;
    }
    json_array_append_new(outs, json_pack("{s:s, s:s, s:s}", "id", mid, "mime", dg_image_format_mime(oo.format),
                                          "ext", dg_image_format_ext(oo.format)));
  }
  char *oj = json_dumps(outs, JSON_COMPACT);
  json_decref(outs);
  dg_status cs = oj ? dg_store_complete(w->p.store, job->id, oj, t) : DG_STATUS_ERR_NOMEM;
  free(oj);
  if (cs == DG_STATUS_OK) {
    ok = 1;
  } else if (cs == DG_STATUS_ERR_NOT_FOUND) {
    ok = 2; /* cancelled / taken away meanwhile: its state is already final */
  } else {
    snprintf(msg, sizeof msg, "could not record the result: %s", dg_strerror(cs));
  }
done:
  for (int i = 0; i < n_images; i++) dg_image_free(images[i].image);
  for (int i = 0; i < io.n_outputs && i < DG_JOB_MAX_OUTPUTS; i++) dg_image_free(io.outputs[i]);
  json_decref(params);
  if (ok == 1) {
    if (w->p.on_finish) w->p.on_finish(w->p.ud, job, 1);
  } else if (ok == 0) {
    fail_job(w, job, msg);
  } else if (w->p.on_finish) {
    w->p.on_finish(w->p.ud, job, -1); /* no final state from this worker: just wake waiters */
  }
}

static void *worker_main(void *arg) {
  worker *me = arg;
  dg_worker_pool *w = me->pool;
  char name[200];
  snprintf(name, sizeof name, "%s%d", w->prefix, me->index);
  while (!stopping(w)) {
    dg_job job;
    dg_status st = dg_store_claim(w->p.store, name, &job);
    if (st == DG_STATUS_OK) {
      pthread_mutex_lock(&w->mu);
      w->busy++;
      pthread_mutex_unlock(&w->mu);
      run_job(w, &job);
      dg_job_clear(&job);
      pthread_mutex_lock(&w->mu);
      w->busy--;
      pthread_mutex_unlock(&w->mu);
      continue;
    }
    /* Idle: wait for a notification or the poll period. */
    pthread_mutex_lock(&w->mu);
    if (!w->pending && !w->stop) {
      struct timespec ts;
      clock_gettime(CLOCK_REALTIME, &ts);
      double wait = st == DG_STATUS_ERR_NOT_FOUND ? w->p.poll_s : 0.2;
      ts.tv_sec += (time_t)wait;
      ts.tv_nsec += (long)((wait - (double)(time_t)wait) * 1e9);
      if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
      }
      pthread_cond_timedwait(&w->cv, &w->mu, &ts);
    }
    if (w->pending > 0) w->pending--;
    pthread_mutex_unlock(&w->mu);
  }
  return NULL;
}

dg_status dg_worker_pool_new(const dg_worker_params *p, dg_worker_pool **out) {
  *out = NULL;
  dg_worker_pool *w = calloc(1, sizeof *w);
  if (!w) return DG_STATUS_ERR_NOMEM;
  w->p = *p;
  char host[64] = "host";
  gethostname(host, sizeof host - 1);
  host[sizeof host - 1] = '\0';
  snprintf(w->prefix, sizeof w->prefix, "%s:%ld/", host, (long)getpid());
  pthread_mutex_init(&w->mu, NULL);
  pthread_cond_init(&w->cv, NULL);
  if (w->p.n_workers > 0) {
    w->workers = calloc((size_t)w->p.n_workers, sizeof *w->workers);
    if (!w->workers) {
      dg_worker_pool_free(w);
      return DG_STATUS_ERR_NOMEM;
    }
  }
  for (int i = 0; i < w->p.n_workers; i++) {
    w->workers[i].pool = w;
    w->workers[i].index = i;
    if (pthread_create(&w->workers[i].thread, NULL, worker_main, &w->workers[i]) != 0) {
      dg_worker_pool_free(w);
      return DG_STATUS_ERR_INTERNAL;
    }
    w->workers[i].started = 1;
  }
  *out = w;
  return DG_STATUS_OK;
}

void dg_worker_pool_notify(dg_worker_pool *w) {
  if (!w) return;
  pthread_mutex_lock(&w->mu);
  w->pending++;
  if (w->pending > w->p.n_workers) w->pending = w->p.n_workers;
  pthread_cond_signal(&w->cv);
  pthread_mutex_unlock(&w->mu);
}

int dg_worker_pool_busy(dg_worker_pool *w) {
  if (!w) return 0;
  pthread_mutex_lock(&w->mu);
  int b = w->busy;
  pthread_mutex_unlock(&w->mu);
  return b;
}

void dg_worker_pool_heartbeat(dg_worker_pool *w) {
  if (w && w->p.n_workers > 0) dg_store_heartbeat(w->p.store, w->prefix);
}

void dg_worker_pool_free(dg_worker_pool *w) {
  if (!w) return;
  pthread_mutex_lock(&w->mu);
  w->stop = 1;
  pthread_cond_broadcast(&w->cv);
  pthread_mutex_unlock(&w->mu);
  for (int i = 0; w->workers && i < w->p.n_workers; i++)
    if (w->workers[i].started) pthread_join(w->workers[i].thread, NULL);
  free(w->workers);
  pthread_cond_destroy(&w->cv);
  pthread_mutex_destroy(&w->mu);
  free(w);
}
