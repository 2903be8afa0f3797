/* The daguerre API client on libcurl + jansson. */
#include "client/client.h"

#include <curl/curl.h>
#include <ctype.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "base/base64.h"
#include "base/status.h"

struct dg_client {
  char *base;  /* no trailing slash, no /v1 or /v2 */
  char *key;   /* may be NULL */
  CURL *curl;
  double http_timeout_s;
  struct curl_slist *extra; /* dg_client_add_header */
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void) { curl_global_init(CURL_GLOBAL_DEFAULT); }

dg_client *dg_client_new(const char *base_url, const char *api_key) {
  pthread_once(&curl_once, curl_init_once);
  if (!base_url || !*base_url) base_url = getenv("DAGUERRE_URL");
  if (!base_url || !*base_url) base_url = "http://127.0.0.1:8080";
  if (!api_key || !*api_key) api_key = getenv("DAGUERRE_API_KEY");
  dg_client *c = calloc(1, sizeof *c);
  if (!c) return NULL;
  c->base = strdup(base_url);
  c->key = api_key && *api_key ? strdup(api_key) : NULL;
  c->curl = curl_easy_init();
  c->http_timeout_s = 60;
  if (!c->base || !c->curl || (api_key && *api_key && !c->key)) {
    dg_client_free(c);
    return NULL;
  }
  size_t n = strlen(c->base);
  for (;;) {
    while (n && c->base[n - 1] == '/') c->base[--n] = '\0';
    if (n >= 3 && (strcmp(c->base + n - 3, "/v1") == 0 || strcmp(c->base + n - 3, "/v2") == 0)) {
      n -= 3;
      c->base[n] = '\0';
      continue;
    }
    break;
  }
  return c;
}

void dg_client_free(dg_client *c) {
  if (!c) return;
  if (c->curl) curl_easy_cleanup(c->curl);
  curl_slist_free_all(c->extra);
  free(c->base);
  free(c->key);
  free(c);
}

const char *dg_client_base_url(const dg_client *c) { return c->base; }

dg_status dg_client_add_header(dg_client *c, const char *header) {
  const char *colon = header ? strchr(header, ':') : NULL;
  if (!colon || colon == header || strpbrk(header, "\r\n")) return DG_STATUS_ERR_INVALID;
  for (const char *p = header; p < colon; p++)
    if (*p <= ' ' || *p >= 127) return DG_STATUS_ERR_INVALID;
  struct curl_slist *l = curl_slist_append(c->extra, header);
  if (!l) return DG_STATUS_ERR_NOMEM;
  c->extra = l;
  return DG_STATUS_OK;
}

void dg_client_set_http_timeout(dg_client *c, double seconds) {
  if (seconds > 0) c->http_timeout_s = seconds;
}

void dg_client_response_clear(dg_client_response *r) {
  if (!r) return;
  json_decref(r->json);
  free(r->body);
  memset(r, 0, sizeof *r);
}

/* ---- one HTTP exchange */

typedef struct body_buf {
  dg_client_response *r;
  size_t cap;
} body_buf;

static size_t on_body(char *p, size_t size, size_t nmemb, void *userp) {
  body_buf *b = userp;
  size_t len = size * nmemb;
  dg_client_response *r = b->r;
  if (r->body_n + len + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 8192;
    while (cap < r->body_n + len + 1) cap *= 2;
    uint8_t *nb = realloc(r->body, cap);
    if (!nb) return 0;
    r->body = nb;
    b->cap = cap;
  }
  memcpy(r->body + r->body_n, p, len);
  r->body_n += len;
  r->body[r->body_n] = '\0';
  return len;
}

static void copy_header_value(const char *line, size_t n, size_t namelen, char *out, size_t outlen) {
  const char *v = line + namelen;
  size_t vn = n - namelen;
  while (vn && (*v == ' ' || *v == '\t')) v++, vn--;
  while (vn && (v[vn - 1] == '\r' || v[vn - 1] == '\n' || v[vn - 1] == ' ')) vn--;
  if (vn >= outlen) vn = outlen - 1;
  memcpy(out, v, vn);
  out[vn] = '\0';
}

static size_t on_header(char *p, size_t size, size_t nmemb, void *userp) {
  dg_client_response *r = ((body_buf *)userp)->r;
  size_t n = size * nmemb;
  if (n > 13 && strncasecmp(p, "content-type:", 13) == 0)
    copy_header_value(p, n, 13, r->content_type, sizeof r->content_type);
  else if (n > 13 && strncasecmp(p, "x-request-id:", 13) == 0)
    copy_header_value(p, n, 13, r->request_id, sizeof r->request_id);
  return n;
}

/* The server's {"error": ...} (or the start of the body) for messages. */
static const char *server_error(const dg_client_response *r) {
  const json_t *e = r->json ? json_object_get(r->json, "error") : NULL;
  if (e && json_is_string(e)) return json_string_value(e);
  return r->body && r->body_n && !r->json ? (const char *)r->body : "";
}

static dg_status http(dg_client *c, const char *method, const char *url, const json_t *body,
                      double timeout_s, dg_client_response *r, char *err, size_t errlen) {
  memset(r, 0, sizeof *r);
  CURL *h = c->curl;
  curl_easy_reset(h);
  char *payload = NULL;
  struct curl_slist *hdrs = NULL;
  char keyhdr[1024];
  if (c->key) {
    snprintf(keyhdr, sizeof keyhdr, "x-api-key: %s", c->key);
    hdrs = curl_slist_append(hdrs, keyhdr);
  }
  hdrs = curl_slist_append(hdrs, "Accept: application/json, image/*");
  for (const struct curl_slist *e = c->extra; e; e = e->next) hdrs = curl_slist_append(hdrs, e->data);
  if (body) {
    payload = json_dumps(body, JSON_COMPACT);
    if (!payload) {
      curl_slist_free_all(hdrs);
      dg_set_error(err, errlen, "out of memory");
      return DG_STATUS_ERR_NOMEM;
    }
    hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, payload);
  } else if (strcmp(method, "POST") == 0) {
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, ""); /* Content-Length: 0 */
  }
  body_buf bb = {r, 0};
  char cerr[CURL_ERROR_SIZE] = "";
  curl_easy_setopt(h, CURLOPT_URL, url);
  curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &bb);
  curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(h, CURLOPT_HEADERDATA, &bb);
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, cerr);
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)(timeout_s * 1000));
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
  curl_easy_setopt(h, CURLOPT_USERAGENT, "daguerre-client/1");
  CURLcode rc = curl_easy_perform(h);
  curl_slist_free_all(hdrs);
  free(payload);
  if (rc != CURLE_OK) {
    dg_set_error(err, errlen, "%s %s: %s", method, url, cerr[0] ? cerr : curl_easy_strerror(rc));
    return DG_STATUS_ERR_NETWORK;
  }
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r->http_status);
  if (r->body_n && (strncasecmp(r->content_type, "application/json", 16) == 0 || r->body[0] == '{' ||
                    r->body[0] == '['))
    r->json = json_loadb((const char *)r->body, r->body_n, 0, NULL);
  return DG_STATUS_OK;
}

static int is_terminal(const char *s) {
  return s && (strcmp(s, "COMPLETED") == 0 || strcmp(s, "FAILED") == 0);
}

const char *dg_client_body_status(const json_t *body) {
  const json_t *s = body ? json_object_get(body, "status") : NULL;
  return s && json_is_string(s) ? json_string_value(s) : NULL;
}

/* 2xx, or a terminal status body whatever the code (as the hosted SDK). */
static dg_status check(const dg_client_response *r, char *err, size_t errlen) {
  if (r->http_status >= 200 && r->http_status < 300) return DG_STATUS_OK;
  if (is_terminal(dg_client_body_status(r->json))) return DG_STATUS_OK;
  dg_set_error(err, errlen, "HTTP %ld: %s", r->http_status, server_error(r));
  return DG_STATUS_ERR_NETWORK;
}

static char *url_for(const dg_client *c, const char *fmt, const char *arg) {
  size_t n = strlen(c->base) + strlen(fmt) + strlen(arg) + 1;
  char *u = malloc(n);
  if (!u) return NULL;
  memcpy(u, c->base, strlen(c->base) + 1);
  snprintf(u + strlen(c->base), n - strlen(c->base), fmt, arg);
  return u;
}

/* Slugs and ids go into the path: refuse anything that would change it. */
static int path_safe(const char *s) {
  if (!s || !*s) return 0;
  for (const char *p = s; *p; p++)
    if (!(isalnum((unsigned char)*p) || *p == '-' || *p == '_' || *p == '.')) return 0;
  return 1;
}

dg_status dg_client_submit(dg_client *c, const char *slug, const json_t *params, char **request_id,
                           dg_client_response *resp, char *err, size_t errlen) {
  if (request_id) *request_id = NULL;
  memset(resp, 0, sizeof *resp);
  if (!path_safe(slug)) {
    dg_set_error(err, errlen, "invalid model name '%s'", slug ? slug : "");
    return DG_STATUS_ERR_INVALID;
  }
  char *u = url_for(c, "/v2/%s", slug);
  if (!u) return DG_STATUS_ERR_NOMEM;
  dg_status st = http(c, "POST", u, params, c->http_timeout_s, resp, err, errlen);
  free(u);
  if (st != DG_STATUS_OK) return st;
  if ((st = check(resp, err, errlen)) != DG_STATUS_OK) return st;
  const json_t *id = json_object_get(resp->json, "request_id");
  if (!json_is_string(id)) {
    dg_set_error(err, errlen, "HTTP %ld: the answer has no request_id", resp->http_status);
    return DG_STATUS_ERR_NETWORK;
  }
  if (request_id && !(*request_id = strdup(json_string_value(id)))) return DG_STATUS_ERR_NOMEM;
  return DG_STATUS_OK;
}

static dg_status get_request(dg_client *c, const char *fmt, const char *id, dg_client_response *resp,
                             char *err, size_t errlen) {
  memset(resp, 0, sizeof *resp);
  if (!path_safe(id)) {
    dg_set_error(err, errlen, "invalid request id '%s'", id ? id : "");
    return DG_STATUS_ERR_INVALID;
  }
  char *u = url_for(c, fmt, id);
  if (!u) return DG_STATUS_ERR_NOMEM;
  dg_status st = http(c, "GET", u, NULL, c->http_timeout_s, resp, err, errlen);
  free(u);
  if (st != DG_STATUS_OK) return st;
  return check(resp, err, errlen);
}

dg_status dg_client_status(dg_client *c, const char *id, dg_client_response *resp, char *err,
                           size_t errlen) {
  return get_request(c, "/v2/requests/%s/status", id, resp, err, errlen);
}

dg_status dg_client_result(dg_client *c, const char *id, dg_client_response *resp, char *err,
                           size_t errlen) {
  return get_request(c, "/v2/requests/%s", id, resp, err, errlen);
}

dg_status dg_client_cancel(dg_client *c, const char *id, dg_client_response *resp, char *err,
                           size_t errlen) {
  memset(resp, 0, sizeof *resp);
  if (!path_safe(id)) {
    dg_set_error(err, errlen, "invalid request id '%s'", id ? id : "");
    return DG_STATUS_ERR_INVALID;
  }
  char *u = url_for(c, "/v2/requests/%s/cancel", id);
  if (!u) return DG_STATUS_ERR_NOMEM;
  dg_status st = http(c, "POST", u, NULL, c->http_timeout_s, resp, err, errlen);
  free(u);
  if (st != DG_STATUS_OK) return st;
  return check(resp, err, errlen);
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void sleep_s(double s) {
  if (s <= 0) return;
  struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
  while (nanosleep(&ts, &ts) != 0) {
  }
}

/* GET an absolute URL with the status/result conventions of check(). */
static dg_status get_url(dg_client *c, const char *url, dg_client_response *resp, char *err,
                         size_t errlen) {
  dg_status st = http(c, "GET", url, NULL, c->http_timeout_s, resp, err, errlen);
  if (st != DG_STATUS_OK) return st;
  return check(resp, err, errlen);
}

/* A poll that may be retried: no HTTP answer, or 502/503/504. */
static int transient(const dg_client_response *r, dg_status st) {
  return st == DG_STATUS_ERR_NETWORK &&
         (r->http_status == 0 || r->http_status == 502 || r->http_status == 503 || r->http_status == 504);
}

enum { MAX_TRANSIENT = 5 };

/* Poll status_url until COMPLETED/FAILED, then GET response_url. */
static dg_status wait_urls(dg_client *c, const char *id, const char *status_url,
                           const char *response_url, double timeout_s, double interval_s,
                           dg_client_response *resp, char *err, size_t errlen) {
  if (timeout_s <= 0) timeout_s = 600;
  double deadline = now_s() + timeout_s;
  if (interval_s <= 0) interval_s = 1;
  int failures = 0;
  for (;;) {
    dg_status st = get_url(c, status_url, resp, err, errlen);
    const char *s = st == DG_STATUS_OK ? dg_client_body_status(resp->json) : NULL;
    if (st != DG_STATUS_OK && !(transient(resp, st) && ++failures < MAX_TRANSIENT)) return st;
    if (st == DG_STATUS_OK) failures = 0;
    if (s && strcmp(s, "FAILED") == 0) return DG_STATUS_OK; /* the failure body */
    if (s && strcmp(s, "COMPLETED") == 0) {
      for (;;) {
        dg_client_response_clear(resp);
        st = get_url(c, response_url, resp, err, errlen);
        if (!(transient(resp, st) && ++failures < MAX_TRANSIENT && now_s() < deadline)) return st;
        sleep_s(interval_s);
      }
    }
    double left = deadline - now_s();
    if (left <= 0) {
      dg_set_error(err, errlen, "request %s did not finish within %g s (last status %s)", id, timeout_s,
             s ? s : "unknown");
      return DG_STATUS_ERR_TIMEOUT;
    }
    dg_client_response_clear(resp);
    sleep_s(interval_s < left ? interval_s : left);
  }
}

dg_status dg_client_wait(dg_client *c, const char *id, double timeout_s, double interval_s,
                         dg_client_response *resp, char *err, size_t errlen) {
  memset(resp, 0, sizeof *resp);
  if (!path_safe(id)) {
    dg_set_error(err, errlen, "invalid request id '%s'", id ? id : "");
    return DG_STATUS_ERR_INVALID;
  }
  char *su = url_for(c, "/v2/requests/%s/status", id), *ru = url_for(c, "/v2/requests/%s", id);
  dg_status st = su && ru ? wait_urls(c, id, su, ru, timeout_s, interval_s, resp, err, errlen)
                          : DG_STATUS_ERR_NOMEM;
  free(su);
  free(ru);
  return st;
}

dg_status dg_client_call(dg_client *c, const char *slug, const json_t *params, int sync,
                         double timeout_s, double interval_s, char **request_id,
                         dg_client_response *resp, char *err, size_t errlen) {
  if (request_id) *request_id = NULL;
  if (sync) {
    dg_status st = dg_client_run_sync(c, slug, params, timeout_s, resp, err, errlen);
    if (st == DG_STATUS_OK && request_id && resp->request_id[0] &&
        !(*request_id = strdup(resp->request_id)))
      return DG_STATUS_ERR_NOMEM;
    return st;
  }
  char *id = NULL;
  dg_status st = dg_client_submit(c, slug, params, &id, resp, err, errlen);
  if (st != DG_STATUS_OK) return st;
  /* Use the URLs the server gave (API.md: clients derive nothing). */
  const char *su = json_string_value(json_object_get(resp->json, "status_url"));
  const char *ru = json_string_value(json_object_get(resp->json, "response_url"));
  char *su_c = su ? strdup(su) : url_for(c, "/v2/requests/%s/status", id);
  char *ru_c = ru ? strdup(ru) : url_for(c, "/v2/requests/%s", id);
  dg_client_response_clear(resp);
  st = su_c && ru_c ? wait_urls(c, id, su_c, ru_c, timeout_s, interval_s, resp, err, errlen)
                    : DG_STATUS_ERR_NOMEM;
  free(su_c);
  free(ru_c);
  if (request_id)
    *request_id = id;
  else
    free(id);
  return st;
}

dg_status dg_client_run_sync(dg_client *c, const char *slug, const json_t *params, double timeout_s,
                             dg_client_response *resp, char *err, size_t errlen) {
  memset(resp, 0, sizeof *resp);
  if (!path_safe(slug)) {
    dg_set_error(err, errlen, "invalid model name '%s'", slug ? slug : "");
    return DG_STATUS_ERR_INVALID;
  }
  char *u = url_for(c, "/v1/%s", slug);
  if (!u) return DG_STATUS_ERR_NOMEM;
  dg_status st = http(c, "POST", u, params, timeout_s > 0 ? timeout_s + 30 : 660, resp, err, errlen);
  free(u);
  if (st != DG_STATUS_OK) return st;
  if (resp->http_status >= 200 && resp->http_status < 300) return DG_STATUS_OK;
  if (resp->http_status == 504) {
    dg_set_error(err, errlen, "HTTP 504: %s", server_error(resp));
    return DG_STATUS_ERR_TIMEOUT;
  }
  dg_set_error(err, errlen, "HTTP %ld: %s", resp->http_status, server_error(resp));
  return DG_STATUS_ERR_NETWORK;
}

dg_status dg_client_download(dg_client *c, const char *url, dg_client_response *resp, char *err,
                             size_t errlen) {
  memset(resp, 0, sizeof *resp);
  char *u;
  if (strncmp(url, "http://", 7) == 0 || strncmp(url, "https://", 8) == 0) {
    u = strdup(url);
  } else {
    u = url_for(c, url[0] == '/' ? "%s" : "/%s", url);
  }
  if (!u) return DG_STATUS_ERR_NOMEM;
  dg_status st = http(c, "GET", u, NULL, c->http_timeout_s * 5, resp, err, errlen);
  free(u);
  if (st != DG_STATUS_OK) return st;
  if (resp->http_status >= 200 && resp->http_status < 300) return DG_STATUS_OK;
  dg_set_error(err, errlen, "HTTP %ld: %s", resp->http_status, server_error(resp));
  return DG_STATUS_ERR_NETWORK;
}

/* ---- outputs */

static void ext_of(const uint8_t *d, size_t n, const char *ctype, char ext[8]) {
  static const uint8_t png[8] = {0x89, 'P', 'N', 'G', 0x0D, 0x0A, 0x1A, 0x0A};
  const char *e = "bin";
  if (n >= 8 && memcmp(d, png, 8) == 0) e = "png";
  else if (n >= 3 && d[0] == 0xFF && d[1] == 0xD8 && d[2] == 0xFF) e = "jpg";
  else if (n >= 12 && memcmp(d, "RIFF", 4) == 0 && memcmp(d + 8, "WEBP", 4) == 0) e = "webp";
  else if (ctype && strncasecmp(ctype, "image/png", 9) == 0) e = "png";
  else if (ctype && strncasecmp(ctype, "image/jpeg", 10) == 0) e = "jpg";
  else if (ctype && strncasecmp(ctype, "image/webp", 10) == 0) e = "webp";
  snprintf(ext, 8, "%s", e);
}

void dg_client_media_free(dg_client_media *media, size_t n) {
  if (!media) return;
  for (size_t i = 0; i < n; i++) free(media[i].data);
  free(media);
}

/* One output value: a URL (downloaded), a data: URI or bare base64. */
static dg_status one_output(dg_client *c, const char *v, dg_client_media *m, char *err,
                            size_t errlen) {
  if (strncmp(v, "http://", 7) == 0 || strncmp(v, "https://", 8) == 0 || v[0] == '/') {
    dg_client_response r;
    dg_status st = dg_client_download(c, v, &r, err, errlen);
    if (st == DG_STATUS_OK) {
      m->data = r.body ? r.body : malloc(1);
      m->n = r.body_n;
      ext_of(m->data, m->n, r.content_type, m->ext);
      r.body = NULL;
    }
    dg_client_response_clear(&r);
    return st;
  }
  const char *b = v;
  if (strncmp(v, "data:", 5) == 0) {
    const char *comma = strchr(v, ',');
    b = comma ? comma + 1 : v + strlen(v);
  }
  if (dg_base64_decode(b, strlen(b), &m->data, &m->n) != DG_STATUS_OK) {
    dg_set_error(err, errlen, "an output is neither a URL nor base64");
    return DG_STATUS_ERR_FORMAT;
  }
  ext_of(m->data, m->n, NULL, m->ext);
  return DG_STATUS_OK;
}

dg_status dg_client_outputs(dg_client *c, const dg_client_response *result, dg_client_media **media,
                            size_t *n, char *err, size_t errlen) {
  *media = NULL;
  *n = 0;
  /* a raw image (v1 sync) */
  if (!result->json) {
    if (!result->body_n) {
      dg_set_error(err, errlen, "empty response");
      return DG_STATUS_ERR_FORMAT;
    }
    dg_client_media *m = calloc(1, sizeof *m);
    if (!m) return DG_STATUS_ERR_NOMEM;
    m->data = malloc(result->body_n);
    if (!m->data) {
      free(m);
      return DG_STATUS_ERR_NOMEM;
    }
    memcpy(m->data, result->body, result->body_n);
    m->n = result->body_n;
    ext_of(m->data, m->n, result->content_type, m->ext);
    *media = m;
    *n = 1;
    return DG_STATUS_OK;
  }
  const json_t *o = json_object_get(result->json, "output");
  if (!o) o = json_object_get(result->json, "images");
  if (!o) o = json_object_get(result->json, "image");
  if (!o || json_is_null(o)) {
    dg_set_error(err, errlen, "the response has no output");
    return DG_STATUS_ERR_FORMAT;
  }
  size_t count = json_is_array(o) ? json_array_size(o) : 1;
  dg_client_media *m = calloc(count ? count : 1, sizeof *m);
  if (!m) return DG_STATUS_ERR_NOMEM;
  for (size_t i = 0; i < count; i++) {
    const json_t *v = json_is_array(o) ? json_array_get(o, i) : o;
    if (!json_is_string(v)) {
      dg_set_error(err, errlen, "output %zu is not a string", i + 1);
      dg_client_media_free(m, count);
      return DG_STATUS_ERR_FORMAT;
    }
    dg_status st = one_output(c, json_string_value(v), &m[i], err, errlen);
    if (st != DG_STATUS_OK) {
      dg_client_media_free(m, count);
      return st;
    }
  }
  *media = m;
  *n = count;
  return DG_STATUS_OK;
}
