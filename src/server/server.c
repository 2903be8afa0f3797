/* HTTP plumbing: libmicrohttpd (a thread per connection, bounded by a
 * connection limit, an idle timeout, a per-connection memory limit and a body
 * limit), routing, responses, metrics, and the server's lifecycle. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "base/log.h"
#include "pipelines/pipeline.h"
#include "pipelines/schema.h"
#include "server/server_internal.h"

static const double lat_bounds[DG__LAT_BUCKETS] = {0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600};

dg_server_params dg_server_params_default(void) {
  dg_server_params c;
  memset(&c, 0, sizeof c);
  c.host = "127.0.0.1";
  c.port = 8080;
  c.data_dir = "data";
  c.models_dir = "models";
  c.workers = 1;
  c.retention_s = 3600;
  c.sync_timeout_s = 300;
  c.max_body = 32u << 20;
  c.max_body_total = (size_t)512 << 20;
  c.client_timeout_s = 30;
  c.max_connections = 512;
  c.conn_memory = 64u << 10;
  c.max_attempts = 2;
  c.webhook_attempts = 6;
  return c;
}

/* ---- responses ---- */

enum MHD_Result dg__send(dg_server *s, struct MHD_Connection *c, unsigned code, const char *ctype, void *buf,
                         size_t n, const char *const *headers) {
  struct MHD_Response *r = MHD_create_response_from_buffer(n, buf, MHD_RESPMEM_MUST_FREE);
  if (!r) {
    free(buf);
    return MHD_NO;
  }
  if (ctype) MHD_add_response_header(r, "Content-Type", ctype);
  MHD_add_response_header(r, "Cache-Control", "no-store");
  for (int i = 0; headers && headers[i] && headers[i + 1]; i += 2) MHD_add_response_header(r, headers[i], headers[i + 1]);
  enum MHD_Result ret = MHD_queue_response(c, code, r);
  MHD_destroy_response(r);
  pthread_mutex_lock(&s->mu);
  if (code < 600) s->http_by_code[code]++;
  pthread_mutex_unlock(&s->mu);
  return ret;
}

enum MHD_Result dg__send_json(dg_server *s, struct MHD_Connection *c, unsigned code, json_t *obj,
                              const char *const *headers) {
  char *txt = obj ? json_dumps(obj, JSON_COMPACT) : NULL;
  json_decref(obj);
  if (!txt) txt = strdup("{\"error\":\"out of memory\",\"code\":\"INTERNAL\",\"retryable\":true}");
  if (!txt) return MHD_NO;
  return dg__send(s, c, code, "application/json", txt, strlen(txt), headers);
}

/* Length of the valid UTF-8 sequence at p (1..4), 0 if invalid. */
static size_t utf8_seq(const unsigned char *p) {
  if (p[0] < 0x80) return 1;
  size_t n = p[0] >= 0xC2 && p[0] <= 0xDF ? 2 : p[0] >= 0xE0 && p[0] <= 0xEF ? 3 : p[0] >= 0xF0 && p[0] <= 0xF4 ? 4 : 0;
  for (size_t i = 1; i < n; i++)
    if ((p[i] & 0xC0) != 0x80) return 0;
  if (n == 3 && ((p[0] == 0xE0 && p[1] < 0xA0) || (p[0] == 0xED && p[1] >= 0xA0))) return 0; /* overlong, surrogate */
  if (n == 4 && ((p[0] == 0xF0 && p[1] < 0x90) || (p[0] == 0xF4 && p[1] >= 0x90))) return 0; /* overlong, > U+10FFFF */
  return n;
}

/* Error messages quote client bytes (paths, names) and cut them to a length:
 * replace what is not UTF-8 so that the JSON body can always be built. */
static void utf8_fix(char *m) {
  unsigned char *p = (unsigned char *)m;
  while (*p) {
    size_t n = utf8_seq(p);
    if (n == 0) {
      *p++ = '?';
    } else {
      p += n;
    }
  }
}

enum MHD_Result dg__send_error(dg_server *s, struct MHD_Connection *c, unsigned code, const char *codename,
                               int retryable, const char *const *headers, const char *fmt, ...) {
  char msg[2048];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  utf8_fix(msg);
  return dg__send_json(s, c, code, json_pack("{s:s, s:s, s:b}", "error", msg, "code", codename, "retryable", retryable),
                       headers);
}

void dg__base_url(dg_server *s, struct MHD_Connection *c, char *out, size_t n) {
  if (s->public_url[0]) {
    snprintf(out, n, "%s", s->public_url);
    return;
  }
  const char *host = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Host");
  int ok = host && *host && strlen(host) < 256;
  for (const char *p = host; ok && *p; p++)
    if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || strchr(".-:[]", *p)))
      ok = 0;
  if (ok)
    snprintf(out, n, "http://%s", host);
  else
    snprintf(out, n, "http://%s:%d", s->host, s->port);
}

/* ---- auth ---- */

int dg__auth(dg_server *s, struct MHD_Connection *c, dg_key_info *key, enum MHD_Result *sent) {
  const char *k = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "x-api-key");
  if (!k || !*k) {
    const char *a = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    if (a && strncasecmp(a, "Bearer ", 7) == 0) {
      k = a + 7;
      while (*k == ' ') k++;
    }
  }
  if (!k || !*k) {
    *sent = dg__send_error(s, c, 401, "UNAUTHORIZED", 0, NULL,
                           "missing API key: send it in the x-api-key header (or Authorization: Bearer)");
    return 0;
  }
  dg_status st = dg_store_key_lookup(s->store, k, key);
  if (st == DG_STATUS_ERR_NOT_FOUND) {
    *sent = dg__send_error(s, c, 401, "UNAUTHORIZED", 0, NULL, "invalid or revoked API key");
    return 0;
  }
  if (st != DG_STATUS_OK) {
    *sent = dg__send_error(s, c, 500, "INTERNAL", 1, NULL, "job store error while checking the API key");
    return 0;
  }
  return 1;
}

/* ---- small routes ---- */

static enum MHD_Result send_healthz(dg_server *s, struct MHD_Connection *c) {
  dg_store_stats st;
  dg_status rc = dg_store_stats_get(s->store, &st);
  json_t *o = json_pack("{s:s, s:i, s:i, s:I, s:I}", "status", rc == DG_STATUS_OK ? "ok" : "degraded", "workers",
                        s->cfg.workers, "workers_busy", dg_worker_pool_busy(s->pool), "queued",
                        (json_int_t)st.queued, "processing", (json_int_t)st.processing);
  return dg__send_json(s, c, rc == DG_STATUS_OK ? 200 : 503, o, NULL);
}

static enum MHD_Result send_metrics(dg_server *s, struct MHD_Connection *c) {
  dg_store_stats st;
  memset(&st, 0, sizeof st);
  dg_store_stats_get(s->store, &st);
  size_t cap = 16384, off = 0;
  char *b = malloc(cap);
  if (!b) return MHD_NO;
#define P(...)                                                            \
  do {                                                                    \
    if (off < cap) off += (size_t)snprintf(b + off, cap - off, __VA_ARGS__); \
  } while (0)
  pthread_mutex_lock(&s->mu);
  P("# HELP daguerre_http_responses_total HTTP responses by status code.\n");
  P("# TYPE daguerre_http_responses_total counter\n");
  for (int i = 100; i < 600; i++)
    if (s->http_by_code[i]) P("daguerre_http_responses_total{code=\"%d\"} %llu\n", i, (unsigned long long)s->http_by_code[i]);
  P("# HELP daguerre_jobs_submitted_total Jobs accepted.\n# TYPE daguerre_jobs_submitted_total counter\n");
  P("daguerre_jobs_submitted_total %llu\n", (unsigned long long)s->jobs_submitted);
  P("# HELP daguerre_jobs_finished_total Jobs finished by this process.\n");
  P("# TYPE daguerre_jobs_finished_total counter\n");
  P("daguerre_jobs_finished_total{state=\"COMPLETED\"} %llu\n", (unsigned long long)s->jobs_completed);
  P("daguerre_jobs_finished_total{state=\"FAILED\"} %llu\n", (unsigned long long)s->jobs_failed);
  P("# HELP daguerre_jobs_expired_total Finished jobs deleted after the retention period.\n");
  P("# TYPE daguerre_jobs_expired_total counter\ndaguerre_jobs_expired_total %llu\n",
    (unsigned long long)s->jobs_expired);
  P("# HELP daguerre_webhooks_total Webhook deliveries.\n# TYPE daguerre_webhooks_total counter\n");
  P("daguerre_webhooks_total{result=\"delivered\"} %llu\n", (unsigned long long)s->webhooks_delivered);
  P("daguerre_webhooks_total{result=\"failed_attempt\"} %llu\n", (unsigned long long)s->webhooks_failed);
  P("# HELP daguerre_job_latency_seconds Submit to finish time of jobs.\n");
  P("# TYPE daguerre_job_latency_seconds histogram\n");
  uint64_t cum = 0;
  for (int i = 0; i < DG__LAT_BUCKETS; i++) {
    cum += s->lat_bucket[i];
    P("daguerre_job_latency_seconds_bucket{le=\"%g\"} %llu\n", lat_bounds[i], (unsigned long long)cum);
  }
  P("daguerre_job_latency_seconds_bucket{le=\"+Inf\"} %llu\n", (unsigned long long)s->lat_count);
  P("daguerre_job_latency_seconds_sum %.6f\n", s->lat_sum);
  P("daguerre_job_latency_seconds_count %llu\n", (unsigned long long)s->lat_count);
  pthread_mutex_unlock(&s->mu);
  P("# HELP daguerre_queue_depth Jobs by state in the job store.\n# TYPE daguerre_queue_depth gauge\n");
  P("daguerre_queue_depth{state=\"QUEUED\"} %lld\n", (long long)st.queued);
  P("daguerre_queue_depth{state=\"PROCESSING\"} %lld\n", (long long)st.processing);
  P("daguerre_queue_depth{state=\"COMPLETED\"} %lld\n", (long long)st.completed);
  P("daguerre_queue_depth{state=\"FAILED\"} %lld\n", (long long)st.failed);
  P("# HELP daguerre_workers Worker threads by state.\n# TYPE daguerre_workers gauge\n");
  int busy = dg_worker_pool_busy(s->pool);
  P("daguerre_workers{state=\"busy\"} %d\n", busy);
  P("daguerre_workers{state=\"idle\"} %d\n", s->cfg.workers - busy);
  P("# HELP daguerre_uptime_seconds Seconds since start.\n# TYPE daguerre_uptime_seconds gauge\n");
  P("daguerre_uptime_seconds %.3f\n", dg_now() - s->started_at);
#undef P
  if (off >= cap) off = cap - 1;
  return dg__send(s, c, 200, "text/plain; version=0.0.4", b, off, NULL);
}

static enum MHD_Result send_openapi(dg_server *s, struct MHD_Connection *c) {
  char base[600];
  dg__base_url(s, c, base, sizeof base);
  return dg__send_json(s, c, 200, dg_schema_openapi(base), NULL);
}

/* ---- routing ---- */

static int is_id(const char *p, size_t n) {
  if (n == 0 || n >= DG_ID_LEN) return 0;
  for (size_t i = 0; i < n; i++)
    if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f') || p[i] == '-')) return 0;
  return 1;
}

static enum MHD_Result route(dg_server *s, struct MHD_Connection *c, const char *url, const char *method,
                             dg__req *r) {
  int get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
  int post = strcmp(method, "POST") == 0;
  int del = strcmp(method, "DELETE") == 0;
  static const char *const allow_get[] = {"Allow", "GET", NULL};
  static const char *const allow_post[] = {"Allow", "POST", NULL};
  if (strcmp(url, "/healthz") == 0) return get ? send_healthz(s, c) : dg__send_error(s, c, 405, "METHOD_NOT_ALLOWED", 0, allow_get, "use GET");
  if (strcmp(url, "/metrics") == 0) return get ? send_metrics(s, c) : dg__send_error(s, c, 405, "METHOD_NOT_ALLOWED", 0, allow_get, "use GET");
  if (strcmp(url, "/openapi.json") == 0) return get ? send_openapi(s, c) : dg__send_error(s, c, 405, "METHOD_NOT_ALLOWED", 0, allow_get, "use GET");
  if (strncmp(url, "/v2/media/", 10) == 0) return get ? dg__api_media(s, c, url + 10) : dg__send_error(s, c, 405, "METHOD_NOT_ALLOWED", 0, allow_get, "use GET");
  if (strncmp(url, "/v2/requests/", 13) == 0) {
    const char *id = url + 13;
    const char *slash = strchr(id, '/');
    size_t idn = slash ? (size_t)(slash - id) : strlen(id);
    char idb[DG_ID_LEN];
    if (!is_id(id, idn)) return dg__send_error(s, c, 404, "NOT_FOUND", 0, NULL, "unknown or expired request id");
    memcpy(idb, id, idn);
    idb[idn] = '\0';
    if (!slash) {
      if (get) return dg__api_status(s, c, idb, 1);
      if (del) return dg__api_cancel(s, c, idb);
      return dg__send_error(s, c, 405, "METHOD_NOT_ALLOWED", 0, allow_get, "use GET (or DELETE to cancel)");
    }
    if (strcmp(slash, "/status") == 0)
      return get ? dg__api_status(s, c, idb, 0) : dg__send_error(s, c, 405, "METHOD_NOT_ALLOWED", 0, allow_get, "use GET");
    if (strcmp(slash, "/events") == 0)
      return get ? dg__api_events(s, c, idb) : dg__send_error(s, c, 405, "METHOD_NOT_ALLOWED", 0, allow_get, "use GET");
    if (strcmp(slash, "/cancel") == 0)
      return post || del ? dg__api_cancel(s, c, idb) : dg__send_error(s, c, 405, "METHOD_NOT_ALLOWED", 0, allow_post, "use POST");
    return dg__send_error(s, c, 404, "NOT_FOUND", 0, NULL, "no such endpoint: %.200s", url);
  }
  int v1 = strncmp(url, "/v1/", 4) == 0, v2 = strncmp(url, "/v2/", 4) == 0;
  if (v1 || v2) {
    char slug[128];
    const char *sl = url + 4;
    const char *slash = strchr(sl, '/');
    size_t sn = slash ? (size_t)(slash - sl) : strlen(sl);
    int validate = 0;
    if (slash) {
      if (strcmp(slash, "/validate") != 0 || !v2)
        return dg__send_error(s, c, 404, "NOT_FOUND", 0, NULL, "no such endpoint: %.200s", url);
      validate = 1;
    }
    if (sn == 0 || sn >= sizeof slug) return dg__send_error(s, c, 404, "NOT_FOUND", 0, NULL, "no such model");
    memcpy(slug, sl, sn);
    slug[sn] = '\0';
    if (!post) return dg__send_error(s, c, 405, "METHOD_NOT_ALLOWED", 0, allow_post, "use POST with a JSON body");
    if (r->busy)
      return dg__send_error(s, c, 503, "BUSY", 1, NULL, "too many large requests in flight; retry shortly");
    if (r->too_large)
      return dg__send_error(s, c, 413, "PAYLOAD_TOO_LARGE", 0, NULL, "request body too large (limit %zu bytes)",
                            s->cfg.max_body);
    return dg__api_submit(s, c, slug, v1, validate, r->body ? r->body : "", r->n);
  }
  return dg__send_error(s, c, 404, "NOT_FOUND", 0, NULL, "no such endpoint: %.200s", url);
}

static void release_body(dg_server *s, dg__req *r) {
  pthread_mutex_lock(&s->mu);
  s->body_bytes -= r->cap;
  pthread_mutex_unlock(&s->mu);
  free(r->body);
  r->body = NULL;
  r->n = r->cap = 0;
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                               const char *version, const char *upload_data, size_t *upload_data_size,
                               void **con_cls) {
  dg_server *s = cls;
  (void)version;
  dg__req *r = *con_cls;
  if (!r) {
    r = calloc(1, sizeof *r);
    if (!r) return MHD_NO;
    *con_cls = r;
    const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
    if (cl) {
      errno = 0;
      char *end = NULL;
      unsigned long long v = strtoull(cl, &end, 10);
      if (errno || end == cl || v > s->cfg.max_body) {
        r->too_large = 1;
        /* Answer now; libmicrohttpd closes the connection without reading the body. */
        return dg__send_error(s, c, 413, "PAYLOAD_TOO_LARGE", 0, NULL, "request body too large (limit %zu bytes)",
                              s->cfg.max_body);
      }
    }
    /* Only submits read a body, and only a valid key's submit may use the
     * server-wide body budget: other bodies are read and dropped (the route
     * then answers, e.g. 401, once the request is complete). */
    if (strcmp(method, "POST") != 0 || strncmp(url, "/v2/requests/", 13) == 0 ||
        (strncmp(url, "/v1/", 4) != 0 && strncmp(url, "/v2/", 4) != 0)) {
      r->discard = 1;
    } else {
      const char *k = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "x-api-key");
      const char *a = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
      if (!k || !*k) k = a && strncasecmp(a, "Bearer ", 7) == 0 ? a + 7 + strspn(a + 7, " ") : NULL;
      dg_key_info key;
      if (!k || !*k || dg_store_key_lookup(s->store, k, &key) != DG_STATUS_OK) r->discard = 1;
    }
    return MHD_YES;
  }
  if (*upload_data_size) {
    size_t n = *upload_data_size;
    *upload_data_size = 0;
    if (r->too_large || r->discard) return MHD_YES;
    if (r->busy) return MHD_YES;
    if (r->n + n > s->cfg.max_body) {
      r->too_large = 1;
      release_body(s, r);
      return MHD_YES;
    }
    if (r->n + n + 1 > r->cap) {
      size_t cap = r->cap ? r->cap : 4096;
      while (cap < r->n + n + 1) cap *= 2;
      pthread_mutex_lock(&s->mu);
      int over = s->body_bytes + (cap - r->cap) > s->cfg.max_body_total;
      if (!over) s->body_bytes += cap - r->cap;
      pthread_mutex_unlock(&s->mu);
      if (over) {
        r->busy = 1;
        release_body(s, r);
        return MHD_YES;
      }
      char *nb = realloc(r->body, cap);
      if (!nb) {
        pthread_mutex_lock(&s->mu);
        s->body_bytes -= cap - r->cap;
        pthread_mutex_unlock(&s->mu);
        return MHD_NO;
      }
      r->body = nb;
      r->cap = cap;
    }
    memcpy(r->body + r->n, upload_data, n);
    r->n += n;
    r->body[r->n] = '\0';
    return MHD_YES;
  }
  return route(s, c, url, method, r);
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe) {
  dg_server *s = cls;
  (void)c;
  (void)toe;
  dg__req *r = *con_cls;
  if (r) {
    release_body(s, r);
    free(r);
  }
  *con_cls = NULL;
}

/* ---- workers, sweeper ---- */

static void on_finish(void *ud, const dg_job *job, int ok) {
  dg_server *s = ud;
  double lat = dg_now() - job->created_at;
  pthread_mutex_lock(&s->mu);
  if (ok >= 0) {
    if (ok)
      s->jobs_completed++;
    else
      s->jobs_failed++;
    s->lat_count++;
    s->lat_sum += lat;
    for (int i = 0; i < DG__LAT_BUCKETS; i++)
      if (lat <= lat_bounds[i]) {
        s->lat_bucket[i]++;
        break;
      }
  }
  s->finished_gen++;
  pthread_cond_broadcast(&s->cv);
  pthread_mutex_unlock(&s->mu);
}

static void *sweeper_main(void *arg) {
  dg_server *s = arg;
  double period = s->cfg.retention_s / 4;
  if (period > 30) period = 30;
  if (period < 0.25) period = 0.25;
  pthread_mutex_lock(&s->mu);
  while (!s->stop) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    double t = (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9 + period;
    ts.tv_sec = (time_t)t;
    ts.tv_nsec = (long)((t - (double)ts.tv_sec) * 1e9);
    pthread_cond_timedwait(&s->cv, &s->mu, &ts);
    if (s->stop) break;
    pthread_mutex_unlock(&s->mu);
    int deleted = 0, rq = 0, fl = 0;
    dg_worker_pool_heartbeat(s->pool);
    dg_store_sweep(s->store, &deleted);
    /* Jobs of another process that died (no heartbeat for 10 minutes). */
    dg_store_recover(s->store, s->cfg.max_attempts, 600, &rq, &fl);
    if (rq) dg_worker_pool_notify(s->pool);
    pthread_mutex_lock(&s->mu);
    s->jobs_expired += (uint64_t)deleted;
  }
  pthread_mutex_unlock(&s->mu);
  return NULL;
}

/* ---- lifecycle ---- */

int dg_server_port(const dg_server *s) { return s->port; }

dg_status dg_server_new(const dg_server_params *cfg, dg_server **out, char *err, size_t errlen) {
  *out = NULL;
  dg_server *s = calloc(1, sizeof *s);
  if (!s) return DG_STATUS_ERR_NOMEM;
  s->cfg = *cfg;
  s->started_at = dg_now();
  snprintf(s->data_dir, sizeof s->data_dir, "%s", cfg->data_dir ? cfg->data_dir : "data");
  snprintf(s->models_dir, sizeof s->models_dir, "%s", cfg->models_dir ? cfg->models_dir : "models");
  snprintf(s->host, sizeof s->host, "%s", cfg->host ? cfg->host : "127.0.0.1");
  if (cfg->public_url) {
    snprintf(s->public_url, sizeof s->public_url, "%s", cfg->public_url);
    size_t n = strlen(s->public_url);
    while (n && s->public_url[n - 1] == '/') s->public_url[--n] = '\0';
  }
  if (cfg->store_url)
    snprintf(s->store_url, sizeof s->store_url, "%s", cfg->store_url);
  else
    snprintf(s->store_url, sizeof s->store_url, "sqlite:%s/daguerre.db", s->data_dir);
  s->cfg.data_dir = s->data_dir;
  s->cfg.models_dir = s->models_dir;
  s->cfg.host = s->host;
  s->cfg.store_url = s->store_url;
  if (s->cfg.workers < 0) s->cfg.workers = 0;
  if (s->cfg.max_attempts < 1) s->cfg.max_attempts = 1;
  pthread_mutex_init(&s->mu, NULL);
  pthread_cond_init(&s->cv, NULL);
  pthread_cond_init(&s->decode_cv, NULL);
  if (cfg->test_pipelines) dg_pipeline_register(dg_pipeline_test_echo());
  if (mkdir(s->data_dir, 0700) != 0 && errno != EEXIST) {
    snprintf(err, errlen, "cannot create data directory %s: %s", s->data_dir, strerror(errno));
    dg_server_free(s);
    return DG_STATUS_ERR_IO;
  }
  dg_status st = dg_store_open(s->store_url, &s->store, err, errlen);
  if (st != DG_STATUS_OK) {
    dg_server_free(s);
    return st;
  }
  dg_store_set_retention(s->store, s->cfg.retention_s);
  int rq = 0, fl = 0;
  st = dg_store_recover(s->store, s->cfg.max_attempts, 0, &rq, &fl);
  if (st != DG_STATUS_OK) {
    snprintf(err, errlen, "job store recovery failed");
    dg_server_free(s);
    return st;
  }
  if (rq || fl) DG_INFO("recovery: %d interrupted job(s) re-queued, %d failed after too many attempts", rq, fl);
  dg_worker_params wp = dg_worker_params_default();
  wp.store = s->store;
  wp.n_workers = s->cfg.workers;
  wp.models_dir = s->models_dir;
  wp.n_threads = s->cfg.threads_per_job;
  wp.on_finish = on_finish;
  wp.ud = s;
  st = dg_worker_pool_new(&wp, &s->pool);
  if (st != DG_STATUS_OK) {
    snprintf(err, errlen, "cannot start workers");
    dg_server_free(s);
    return st;
  }
  if (pthread_create(&s->sweeper, NULL, sweeper_main, s) == 0) s->sweeper_started = 1;
  st = dg__webhook_start(s, err, errlen);
  if (st != DG_STATUS_OK) {
    dg_server_free(s);
    return st;
  }

  struct sockaddr_in a4;
  struct sockaddr_in6 a6;
  struct sockaddr *sa;
  unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL;
  memset(&a4, 0, sizeof a4);
  memset(&a6, 0, sizeof a6);
  if (inet_pton(AF_INET, s->host, &a4.sin_addr) == 1) {
    a4.sin_family = AF_INET;
    a4.sin_port = htons((uint16_t)cfg->port);
    sa = (struct sockaddr *)&a4;
  } else if (inet_pton(AF_INET6, s->host, &a6.sin6_addr) == 1) {
    a6.sin6_family = AF_INET6;
    a6.sin6_port = htons((uint16_t)cfg->port);
    sa = (struct sockaddr *)&a6;
    flags |= MHD_USE_IPv6;
  } else {
    snprintf(err, errlen, "--host must be a numeric IPv4 or IPv6 address (got '%s')", s->host);
    dg_server_free(s);
    return DG_STATUS_ERR_INVALID;
  }
  s->mhd = MHD_start_daemon(flags, (uint16_t)cfg->port, NULL, NULL, handler, s, MHD_OPTION_SOCK_ADDR, sa,
                            MHD_OPTION_CONNECTION_LIMIT, (unsigned)s->cfg.max_connections,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)s->cfg.client_timeout_s,
                            MHD_OPTION_CONNECTION_MEMORY_LIMIT, s->cfg.conn_memory, MHD_OPTION_NOTIFY_COMPLETED,
                            completed, s, MHD_OPTION_LISTEN_BACKLOG_SIZE, 512u, MHD_OPTION_END);
  if (!s->mhd) {
    snprintf(err, errlen, "cannot listen on %s:%d (address in use or not permitted)", s->host, cfg->port);
    dg_server_free(s);
    return DG_STATUS_ERR_IO;
  }
  const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->mhd, MHD_DAEMON_INFO_BIND_PORT);
  s->port = di ? di->port : cfg->port;
  *out = s;
  return DG_STATUS_OK;
}

void dg_server_free(dg_server *s) {
  if (!s) return;
  /* Waiting /v1 handlers see `stop` and answer before the daemon joins them. */
  pthread_mutex_lock(&s->mu);
  s->stop = 1;
  pthread_cond_broadcast(&s->cv);
  pthread_mutex_unlock(&s->mu);
  if (s->mhd) MHD_stop_daemon(s->mhd);
  if (s->sweeper_started) pthread_join(s->sweeper, NULL);
  dg__webhook_stop(s);
  dg_worker_pool_free(s->pool);
  dg_store_close(s->store);
  pthread_cond_destroy(&s->cv);
  pthread_cond_destroy(&s->decode_cv);
  pthread_mutex_destroy(&s->mu);
  free(s);
}
