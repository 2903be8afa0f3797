/* The HTTP API server (libmicrohttpd): the routes of API.md, auth, rate
 * limits, credits, the worker pool and the retention sweeper.  See README
 * "Serving" for the decisions and limits. */
#ifndef DG_SERVER_SERVER_H
#define DG_SERVER_SERVER_H

#include <stddef.h>

#include "base/status.h"

#define DG_SERVER_MAX_PRICES 32

typedef struct dg_server_params {
  const char *host;          /* bind address (default 127.0.0.1) */
  int port;                  /* 0 = any free port */
  const char *port_file;     /* write the bound port here (tests) */
  const char *data_dir;      /* job store + media (default ./data) */
  const char *store_url;     /* default sqlite:<data_dir>/daguerre.db */
  const char *models_dir;    /* weights (default ./models) */
  const char *public_url;    /* base of absolute URLs; default from the Host header */
  int workers;               /* worker threads (default 1) */
  int threads_per_job;       /* compute threads per job (0 = all) */
  double retention_s;        /* results kept (default 3600) */
  double sync_timeout_s;     /* POST /v1 waits at most this long (default 300) -> 504 */
  size_t max_body;           /* request body limit (default 32 MiB) -> 413 */
  size_t max_body_total;     /* bodies buffered at once, all connections (default 512 MiB) -> 503 */
  int client_timeout_s;      /* idle connection timeout (default 30) */
  int max_connections;       /* concurrent connections (default 512) */
  size_t conn_memory;        /* per-connection header memory (default 64 KiB) */
  int max_attempts;          /* runs of a job interrupted by crashes before FAILED (default 2) */
  int allow_private_urls;    /* let image URLs reach loopback/private addresses */
  int test_pipelines;        /* register "test-echo" */
  const char *webhook_secret; /* HMAC key for webhook signatures; default: DATA_DIR/webhook_secret (made once) */
  int webhook_attempts;       /* deliveries tried before giving up (default 6; backoff 1, 2, 4, ... s) */
  int n_prices;              /* operator price table */
  const char *price_slug[DG_SERVER_MAX_PRICES];
  double price[DG_SERVER_MAX_PRICES];
} dg_server_params;

dg_server_params dg_server_params_default(void);

typedef struct dg_server dg_server;

/* Opens the store (recovering interrupted jobs), starts workers, sweeper and
 * HTTP.  Errors go to err. */
dg_status dg_server_new(const dg_server_params *cfg, dg_server **out, char *err, size_t errlen);
int dg_server_port(const dg_server *s);
/* Stops HTTP, the sweeper, webhooks and workers (a running job goes back to
 * the queue) and closes the store. */
void dg_server_free(dg_server *s);

#endif
