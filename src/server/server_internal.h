/* Internal to src/server: the server object and the HTTP helpers shared by
 * server.c (plumbing) and api.c (the API routes). */
#ifndef DG_SERVER_SERVER_INTERNAL_H
#define DG_SERVER_SERVER_INTERNAL_H

#include <jansson.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdint.h>

#include "queue/store.h"
#include "queue/worker.h"
#include "server/server.h"

#define DG__RATE_SLOTS 1024
#define DG__LAT_BUCKETS 12

typedef struct dg__rate_slot {
  int64_t key_id;
  int64_t window; /* minute number */
  int count;
} dg__rate_slot;

struct dg_server {
  dg_server_params cfg;
  char data_dir[1024], store_url[1100], models_dir[1024], public_url[512], host[128];
  dg_store *store;
  dg_worker_pool *pool;
  struct MHD_Daemon *mhd;
  int port;
  pthread_t sweeper;
  int sweeper_started;
  pthread_t webhook;
  int webhook_started;
  char webhook_secret[129];
  uint64_t webhooks_delivered, webhooks_failed;
  pthread_mutex_t mu; /* guards everything below */
  pthread_cond_t cv;  /* broadcast when a job finishes, or on stop */
  int stop;
  uint64_t finished_gen;
  size_t body_bytes; /* request bodies buffered right now, all connections */
  size_t decode_bytes;      /* pixels of submitted images being decoded right now (bytes) */
  pthread_cond_t decode_cv; /* broadcast when decode_bytes or fetch_bytes drops */
  size_t fetch_bytes;       /* image URL downloads in flight, at their size limit */
  dg__rate_slot rate[DG__RATE_SLOTS];
  /* metrics */
  uint64_t http_by_code[600];
  uint64_t jobs_submitted, jobs_completed, jobs_failed, jobs_expired;
  uint64_t lat_count, lat_bucket[DG__LAT_BUCKETS];
  double lat_sum;
  double started_at;
};

/* Per-request state kept across libmicrohttpd's calls. */
typedef struct dg__req {
  char *body;
  size_t n, cap;
  int too_large;
  int busy; /* the server-wide body budget was exhausted */
  int discard; /* a body nobody reads (not a submit, or already answered): dropped, not buffered */
  int started;
} dg__req;

/* Responses: every send counts in the metrics.  `headers` is a
 * NULL-terminated list of name, value pairs (may be NULL). */
enum MHD_Result dg__send(dg_server *s, struct MHD_Connection *c, unsigned code, const char *ctype, void *buf,
                         size_t n, const char *const *headers);
enum MHD_Result dg__send_json(dg_server *s, struct MHD_Connection *c, unsigned code, json_t *obj,
                              const char *const *headers);
enum MHD_Result dg__send_error(dg_server *s, struct MHD_Connection *c, unsigned code, const char *codename,
                               int retryable, const char *const *headers, const char *fmt, ...)
    __attribute__((format(printf, 7, 8)));

/* The absolute base URL for links in responses. */
void dg__base_url(dg_server *s, struct MHD_Connection *c, char *out, size_t n);

/* API routes (api.c). */
enum MHD_Result dg__api_submit(dg_server *s, struct MHD_Connection *c, const char *slug, int sync, int validate_only,
                               const char *body, size_t n);
enum MHD_Result dg__api_status(dg_server *s, struct MHD_Connection *c, const char *id, int result);
enum MHD_Result dg__api_cancel(dg_server *s, struct MHD_Connection *c, const char *id);
enum MHD_Result dg__api_media(dg_server *s, struct MHD_Connection *c, const char *name);
enum MHD_Result dg__api_events(dg_server *s, struct MHD_Connection *c, const char *id);
/* The status body of a job (new reference). */
json_t *dg__status_body(const dg_job *j);
/* The final body of a COMPLETED job with media links under `base` (new
 * reference; NULL if its media expired meanwhile). */
json_t *dg__result_body(dg_server *s, const dg_job *j, const char *base);
/* Webhooks (webhook.c): URL syntax check, and the delivery thread. */
int dg__webhook_url_ok(const char *url);
dg_status dg__webhook_start(dg_server *s, char *err, size_t errlen);
void dg__webhook_stop(dg_server *s);
/* Authenticate and load a job owned by the caller's key; on failure the
 * error response (401/404/500) is already queued in *sent. */
int dg__load_own(dg_server *s, struct MHD_Connection *c, const char *id, dg_job *j, enum MHD_Result *sent);
/* Authenticate: on failure the error response is already queued (*sent). */
int dg__auth(dg_server *s, struct MHD_Connection *c, dg_key_info *key, enum MHD_Result *sent);

#endif
