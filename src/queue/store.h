/* The job store: jobs, their input/output media, API keys and credits.
 * One opaque handle; the backend is chosen by URL ("sqlite:PATH" today; a
 * "postgresql://..." backend implements the same dg__store_backend table in
 * store_backend.h so that API servers and workers on many machines can share
 * one queue).  All SQL is kept portable (no SQLite-only syntax in the queries
 * that matter: claim is one UPDATE ... WHERE state='QUEUED' ... RETURNING).
 *
 * Credits: charged at submit (atomically with the insert), refunded exactly
 * once when a job becomes FAILED (including cancelled and interrupted jobs).
 * Thread-safe: every call may be made from any thread. */
#ifndef DG_QUEUE_STORE_H
#define DG_QUEUE_STORE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "base/status.h"

typedef struct dg_store dg_store;

typedef enum dg_job_state {
  DG_JOB_STATE_QUEUED,
  DG_JOB_STATE_PROCESSING,
  DG_JOB_STATE_COMPLETED,
  DG_JOB_STATE_FAILED
} dg_job_state;
const char *dg_job_state_name(dg_job_state s); /* "QUEUED", ... */

#define DG_ID_LEN 40 /* buffer size for request / media ids */

/* Open by URL: "sqlite:/path/to/daguerre.db". */
dg_status dg_store_open(const char *url, dg_store **out, char *err, size_t errlen);
void dg_store_close(dg_store *s);
/* Seconds a finished job (and its media) stays readable (default 3600). */
void dg_store_set_retention(dg_store *s, double seconds);

/* ---- keys ---- */
typedef struct dg_key_info {
  int64_t id;
  char name[64];
  double credits;
  char slugs[512];  /* comma-separated allowed slugs, or "*" for all */
  int rate_per_min; /* 0 = unlimited */
  int revoked;
} dg_key_info;

/* Creates a key; the plain key (shown once, never stored) goes to key_out. */
dg_status dg_store_key_create(dg_store *s, const char *name, double credits, const char *slugs, int rate_per_min,
                              char *key_out, size_t key_n, int64_t *id);
/* NOT_FOUND for an unknown or revoked key. */
dg_status dg_store_key_lookup(dg_store *s, const char *plain_key, dg_key_info *out);
dg_status dg_store_key_list(dg_store *s, json_t **out); /* array of objects */
dg_status dg_store_key_revoke(dg_store *s, int64_t id);
dg_status dg_store_key_credit(dg_store *s, int64_t id, double delta, double *balance);
int dg_key_allows(const dg_key_info *k, const char *slug);

/* ---- jobs ---- */
typedef struct dg_job_input {
  const char *name;
  const uint8_t *data;
  size_t n;
} dg_job_input;

typedef struct dg_job_submit {
  const char *slug;
  const char *params_json;
  int64_t seed;
  int64_t key_id;
  double cost;
  const char *idem_key; /* NULL = none */
  const dg_job_input *inputs;
  int n_inputs;
  const char *webhook_url;  /* NULL = none: POSTed the final body when the job ends */
  const char *webhook_base; /* base URL for the media links in that body */
} dg_job_submit;

/* Charges the key and queues the job in one transaction.  ERR_LIMIT: not
 * enough credits (nothing queued).  With an idempotency key already used by
 * this API key, returns that job's id with *existing = 1 and charges nothing. */
dg_status dg_store_submit(dg_store *s, const dg_job_submit *j, char id_out[DG_ID_LEN], int *existing,
                          double *remaining);

typedef struct dg_job {
  char id[DG_ID_LEN];
  char slug[64];
  dg_job_state state;
  char *params_json; /* owned */
  int64_t seed;
  int64_t key_id;
  double cost;
  double created_at, started_at, finished_at, expires_at; /* unix seconds; 0 = not yet */
  int step, total_steps;
  int attempts;
  int cancel_requested;
  char *error;        /* owned, NULL unless FAILED */
  char *outputs_json; /* owned: JSON array of media ids, NULL unless COMPLETED */
  double inference_time;
  int64_t queue_position; /* jobs ahead while QUEUED */
  double remaining_credits;
  char *webhook_url;  /* owned, NULL if none */
  char *webhook_base; /* owned */
  int webhook_attempts;
} dg_job;
void dg_job_clear(dg_job *j);

/* NOT_FOUND for an unknown or expired id. */
dg_status dg_store_get(dg_store *s, const char *id, dg_job *out);
/* Atomically move the oldest QUEUED job to PROCESSING for `worker`.
 * NOT_FOUND when the queue is empty. */
dg_status dg_store_claim(dg_store *s, const char *worker, dg_job *out);
/* Input bytes stored at submit (malloc'd). */
dg_status dg_store_input_get(dg_store *s, const char *job_id, const char *name, uint8_t **data, size_t *n);
/* Progress + heartbeat; *cancel_requested tells the worker to stop. */
dg_status dg_store_progress(dg_store *s, const char *id, int step, int total, int *cancel_requested);
dg_status dg_store_media_put(dg_store *s, const char *job_id, const char *mime, const uint8_t *data, size_t n,
                             char media_id[DG_ID_LEN]);
/* NOT_FOUND for unknown or expired media. */
dg_status dg_store_media_get(dg_store *s, const char *media_id, uint8_t **data, size_t *n, char mime[32]);
/* PROCESSING -> COMPLETED. */
dg_status dg_store_complete(dg_store *s, const char *id, const char *outputs_json, double inference_time);
/* QUEUED/PROCESSING -> FAILED with the message; refunds the cost once. */
dg_status dg_store_fail(dg_store *s, const char *id, const char *error);
/* QUEUED: FAILED ("cancelled") at once, refunded.  PROCESSING: cancel
 * requested (the worker stops at its next step).  *state_out = state after. */
dg_status dg_store_cancel(dg_store *s, const char *id, dg_job_state *state_out);
/* Startup recovery after a crash: PROCESSING jobs go back to QUEUED while
 * attempts < max_attempts, else FAILED with a clear error (refunded).
 * stale_s > 0: only jobs whose heartbeat is older than that (multi-process). */
dg_status dg_store_recover(dg_store *s, int max_attempts, double stale_s, int *requeued, int *failed);
/* PROCESSING -> QUEUED without counting the attempt (graceful shutdown). */
dg_status dg_store_release(dg_store *s, const char *id);
/* Webhooks of finished jobs due for a delivery attempt (at most max_jobs;
 * *out is a malloc'd array of *n jobs, each cleared by dg_job_clear, then
 * the array freed). */
dg_status dg_store_webhooks_due(dg_store *s, int max_jobs, dg_job **out, int *n);
/* Record an attempt: delivered, or retry at next_at (<= 0: give up). */
dg_status dg_store_webhook_done(dg_store *s, const char *id, int delivered, double next_at);

/* Refresh the heartbeat of every PROCESSING job whose worker name starts
 * with worker_prefix (a process's workers, while a step runs for long). */
dg_status dg_store_heartbeat(dg_store *s, const char *worker_prefix);
/* Delete expired jobs and their media. */
dg_status dg_store_sweep(dg_store *s, int *deleted);

typedef struct dg_store_stats {
  int64_t queued, processing, completed, failed;
} dg_store_stats;
dg_status dg_store_stats_get(dg_store *s, dg_store_stats *st);

/* Helpers shared by backends and the server. */
double dg_now(void);                    /* unix time, seconds */
void dg_random_hex(char *out, int nbytes); /* 2*nbytes hex chars + NUL, from the OS CSPRNG */
void dg_sha256_hex(const char *s, char out[65]);

#endif
