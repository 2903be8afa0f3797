/* Internal: the table of operations a job-store backend implements.  The
 * SQLite backend is store_sqlite.c; a PostgreSQL backend adds one more file
 * and one more URL scheme in store.c. */
#ifndef DG_QUEUE_STORE_BACKEND_H
#define DG_QUEUE_STORE_BACKEND_H

#include "queue/store.h"

typedef struct dg__store_backend {
  const char *scheme; /* "sqlite:" */
  dg_status (*open)(const char *rest, void **impl, char *err, size_t errlen);
  void (*close)(void *impl);
  void (*set_retention)(void *impl, double seconds);
  dg_status (*key_create)(void *impl, const char *name, double credits, const char *slugs, int rate,
                          const char *hash, int64_t *id);
  dg_status (*key_lookup)(void *impl, const char *hash, dg_key_info *out);
  dg_status (*key_list)(void *impl, json_t **out);
  dg_status (*key_revoke)(void *impl, int64_t id);
  dg_status (*key_credit)(void *impl, int64_t id, double delta, double *balance);
  dg_status (*submit)(void *impl, const dg_job_submit *j, const char *new_id, char id_out[DG_ID_LEN],
                      int *existing, double *remaining);
  dg_status (*get)(void *impl, const char *id, dg_job *out);
  dg_status (*claim)(void *impl, const char *worker, dg_job *out);
  dg_status (*input_get)(void *impl, const char *job_id, const char *name, uint8_t **data, size_t *n);
  dg_status (*progress)(void *impl, const char *id, int step, int total, int *cancel_requested);
  dg_status (*media_put)(void *impl, const char *job_id, const char *mime, const uint8_t *data, size_t n,
                         const char *media_id);
  dg_status (*media_get)(void *impl, const char *media_id, uint8_t **data, size_t *n, char mime[32]);
  dg_status (*complete)(void *impl, const char *id, const char *outputs_json, double inference_time);
  dg_status (*fail)(void *impl, const char *id, const char *error);
  dg_status (*cancel)(void *impl, const char *id, dg_job_state *state_out);
  dg_status (*recover)(void *impl, int max_attempts, double stale_s, int *requeued, int *failed);
  dg_status (*release)(void *impl, const char *id);
  dg_status (*webhooks_due)(void *impl, int max_jobs, dg_job **out, int *n);
  dg_status (*webhook_done)(void *impl, const char *id, int delivered, double next_at);
  dg_status (*heartbeat)(void *impl, const char *worker_prefix);
  dg_status (*sweep)(void *impl, int *deleted);
  dg_status (*stats)(void *impl, dg_store_stats *st);
} dg__store_backend;

extern const dg__store_backend dg__store_sqlite;

#endif
