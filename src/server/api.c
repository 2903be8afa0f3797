/* The API routes of API.md: submit (v1 sync, v2 async, validate), status,
 * result, cancel, media. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "base/base64.h"
#include "base/log.h"
#include "pipelines/pipeline.h"
#include "pipelines/schema.h"
#include "server/server_internal.h"

#define MAX_IMAGE_PARAMS 8
/* Submitted images are decoded on the connection threads to check them: a
 * tiny PNG can claim 40 Mpx (160 MB decoded), so the decodes in flight share
 * one budget; a request that needs more waits (one at a time always runs). */
#define DECODE_BUDGET ((size_t)512 << 20)

/* Image URL downloads (up to 20 MB each, outside the body budget) likewise. */
#define FETCH_BUDGET ((size_t)256 << 20)

static void budget_acquire(dg_server *s, size_t *used, size_t budget, size_t need) {
  pthread_mutex_lock(&s->mu);
  while (*used > 0 && *used + need > budget) pthread_cond_wait(&s->decode_cv, &s->mu);
  *used += need;
  pthread_mutex_unlock(&s->mu);
}

static void budget_release(dg_server *s, size_t *used, size_t need) {
  pthread_mutex_lock(&s->mu);
  *used -= need;
  pthread_cond_broadcast(&s->decode_cv);
  pthread_mutex_unlock(&s->mu);
}

static void decode_acquire(dg_server *s, size_t need) { budget_acquire(s, &s->decode_bytes, DECODE_BUDGET, need); }
static void decode_release(dg_server *s, size_t need) { budget_release(s, &s->decode_bytes, need); }

/* Fetch/unwrap an image parameter, check its header, then decode it fully
 * (a truncated or corrupt image is the client's 400) within the budget. */
static dg_status load_image_param(dg_server *s, const char *value, const dg_fetch_limits *fl,
                                  const dg_image_limits *il, uint8_t **raw, size_t *rn, char *err, size_t errlen) {
  dg_status st = dg_image_load_param(value, fl, il, raw, rn, NULL, err, errlen);
  if (st != DG_STATUS_OK) return st;
  int w = 0, h = 0;
  st = dg_image_probe(*raw, *rn, il, NULL, &w, &h, err, errlen);
  if (st != DG_STATUS_OK) return st;
  size_t need = (size_t)(w > 0 ? w : 1) * (size_t)(h > 0 ? h : 1) * 4;
  decode_acquire(s, need);
  dg_image *img = NULL;
  st = dg_image_decode(*raw, *rn, il, &img, err, errlen);
  dg_image_free(img);
  decode_release(s, need);
  return st;
}

static void iso_time(double t, char *b, size_t n) {
  time_t tt = (time_t)t;
  struct tm tm;
  gmtime_r(&tt, &tm);
  strftime(b, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static json_t *json_time(double t) {
  char b[32];
  if (t <= 0) return json_null();
  iso_time(t, b, sizeof b);
  return json_string(b);
}

static double price_of(dg_server *s, const dg_pipeline *p) {
  for (int i = 0; i < s->cfg.n_prices; i++)
    if (strcmp(s->cfg.price_slug[i], p->slug) == 0) return s->cfg.price[i];
  return p->default_cost;
}

/* Fixed one-minute windows per key (per process). 1 = allowed. */
static int rate_ok(dg_server *s, const dg_key_info *k, int *retry_after, double *reset_at) {
  if (k->rate_per_min <= 0) return 1;
  double now = dg_now();
  int64_t win = (int64_t)floor(now / 60.0);
  int ok = 1;
  pthread_mutex_lock(&s->mu);
  dg__rate_slot *slot = NULL;
  for (int i = 0; i < 8; i++) {
    dg__rate_slot *c = &s->rate[(size_t)(k->id + i) % DG__RATE_SLOTS];
    if (c->key_id == k->id || c->window < win - 1 || c->key_id == 0) {
      slot = c;
      break;
    }
  }
  if (!slot) slot = &s->rate[(size_t)k->id % DG__RATE_SLOTS];
  if (slot->key_id != k->id || slot->window != win) {
    slot->key_id = k->id;
    slot->window = win;
    slot->count = 0;
  }
  if (slot->count >= k->rate_per_min)
    ok = 0;
  else
    slot->count++;
  pthread_mutex_unlock(&s->mu);
  *reset_at = (double)(win + 1) * 60.0;
  *retry_after = (int)ceil(*reset_at - now);
  if (*retry_after < 1) *retry_after = 1;
  return ok;
}

static void urls(dg_server *s, struct MHD_Connection *c, const char *id, char *status, char *response, size_t n) {
  char base[600];
  dg__base_url(s, c, base, sizeof base);
  snprintf(status, n, "%s/v2/requests/%s/status", base, id);
  snprintf(response, n, "%s/v2/requests/%s", base, id);
}

static json_t *metrics_of(const dg_job *j) {
  double queue_time = j->started_at > 0 ? j->started_at - j->created_at : (j->finished_at > 0 ? j->finished_at - j->created_at : 0);
  double total = j->finished_at > 0 ? j->finished_at - j->created_at : dg_now() - j->created_at;
  return json_pack("{s:f, s:f, s:f, s:f, s:f}", "inference_time", j->inference_time, "queue_time",
                   queue_time < 0 ? 0 : queue_time, "total_time", total < 0 ? 0 : total, "cost",
                   j->state == DG_JOB_STATE_FAILED ? 0.0 : j->cost, "remaining_credits", j->remaining_credits);
}

/* The status body, common to the status, result (unfinished) and cancel routes. */
json_t *dg__status_body(const dg_job *j) {
  json_t *o = json_pack("{s:s, s:s, s:o, s:o}", "request_id", j->id, "status", dg_job_state_name(j->state),
                        "created_at", json_time(j->created_at), "expires_at", json_time(j->expires_at));
  switch (j->state) {
  case DG_JOB_STATE_QUEUED:
    json_object_set_new(o, "queue_position", json_integer(j->queue_position));
    json_object_set_new(o, "progress", json_real(0));
    break;
  case DG_JOB_STATE_PROCESSING: {
    double prog = j->total_steps > 0 ? (double)j->step / j->total_steps : 0;
    if (prog > 1) prog = 1;
    json_object_set_new(o, "progress", json_real(prog));
    json_object_set_new(o, "step", json_integer(j->step));
    json_object_set_new(o, "total_steps", json_integer(j->total_steps));
    if (j->step > 0 && j->total_steps > 0 && j->started_at > 0) {
      double el = dg_now() - j->started_at;
      json_object_set_new(o, "eta_s", json_real(el / j->step * (j->total_steps - j->step)));
    } else {
      json_object_set_new(o, "eta_s", json_null());
    }
    if (j->cancel_requested) json_object_set_new(o, "cancel_requested", json_true());
    break;
  }
  case DG_JOB_STATE_COMPLETED:
    json_object_set_new(o, "progress", json_real(1));
    json_object_set_new(o, "step", json_integer(j->total_steps));
    json_object_set_new(o, "total_steps", json_integer(j->total_steps));
    break;
  case DG_JOB_STATE_FAILED:
    json_object_set_new(o, "error", json_string(j->error ? j->error : "failed"));
    json_object_set_new(o, "metrics", metrics_of(j));
    break;
  }
  return o;
}

static json_t *outputs_of(const dg_job *j) {
  json_t *o = j->outputs_json ? json_loads(j->outputs_json, 0, NULL) : NULL;
  if (!json_is_array(o)) {
    json_decref(o);
    o = json_array();
  }
  return o;
}

static char *media_b64(dg_server *s, json_t *item) {
  uint8_t *data = NULL;
  size_t n = 0;
  char mime[32];
  const char *id = json_string_value(json_object_get(item, "id"));
  if (!id || dg_store_media_get(s->store, id, &data, &n, mime) != DG_STATUS_OK) return NULL;
  char *b = dg_base64_encode(data, n, NULL);
  free(data);
  return b;
}

json_t *dg__result_body(dg_server *s, const dg_job *j, const char *base) {
  json_t *params = json_loads(j->params_json ? j->params_json : "{}", 0, NULL);
  dg_output_opts oo;
  dg_schema_output_opts(params, &oo);
  json_decref(params);
  json_t *outs = outputs_of(j), *urls_arr = json_array(), *b64 = oo.base64 ? json_array() : NULL;
  size_t i;
  json_t *item;
  json_array_foreach(outs, i, item) {
    char u[800];
    snprintf(u, sizeof u, "%s/v2/media/%s.%s", base, json_string_value(json_object_get(item, "id")),
             json_string_value(json_object_get(item, "ext")));
    json_array_append_new(urls_arr, json_string(u));
    if (b64) {
      char *e = media_b64(s, item);
      if (!e) {
        json_decref(outs);
        json_decref(urls_arr);
        json_decref(b64);
        return NULL; /* expired meanwhile */
      }
      json_array_append_new(b64, json_string(e));
      free(e);
    }
  }
  json_decref(outs);
  json_t *shown = b64 ? b64 : urls_arr;
  json_t *output = json_array_size(shown) == 1 ? json_incref(json_array_get(shown, 0)) : json_incref(shown);
  json_t *o = json_pack("{s:s, s:s, s:n, s:o, s:I, s:o, s:o, s:o}", "request_id", j->id, "status", "COMPLETED",
                        "error", "output", output, "seed", (json_int_t)j->seed, "metrics", metrics_of(j),
                        "created_at", json_time(j->created_at), "expires_at", json_time(j->expires_at));
  if (b64) json_object_set(o, "media_urls", urls_arr);
  json_decref(urls_arr);
  json_decref(b64);
  return o;
}

static enum MHD_Result send_result(dg_server *s, struct MHD_Connection *c, const dg_job *j) {
  char base[600];
  dg__base_url(s, c, base, sizeof base);
  json_t *o = dg__result_body(s, j, base);
  if (!o) return dg__send_error(s, c, 404, "NOT_FOUND", 0, NULL, "the result has expired");
  return dg__send_json(s, c, 200, o, NULL);
}

/* ---- status / result ---- */

int dg__load_own(dg_server *s, struct MHD_Connection *c, const char *id, dg_job *j, enum MHD_Result *sent) {
  dg_key_info key;
  if (!dg__auth(s, c, &key, sent)) return 0;
  dg_status st = dg_store_get(s->store, id, j);
  if (st == DG_STATUS_OK && j->key_id != key.id) {
    dg_job_clear(j);
    st = DG_STATUS_ERR_NOT_FOUND; /* other keys' requests do not exist for you */
  }
  if (st == DG_STATUS_ERR_NOT_FOUND) {
    *sent = dg__send_error(s, c, 404, "NOT_FOUND", 0, NULL, "unknown or expired request id '%s'", id);
    return 0;
  }
  if (st != DG_STATUS_OK) {
    *sent = dg__send_error(s, c, 500, "INTERNAL", 1, NULL, "job store error");
    return 0;
  }
  return 1;
}

enum MHD_Result dg__api_status(dg_server *s, struct MHD_Connection *c, const char *id, int result) {
  dg_job j;
  enum MHD_Result sent = MHD_NO;
  if (!dg__load_own(s, c, id, &j, &sent)) return sent;
  enum MHD_Result r;
  if (result && j.state == DG_JOB_STATE_COMPLETED)
    r = send_result(s, c, &j);
  else if (j.state == DG_JOB_STATE_FAILED)
    r = dg__send_json(s, c, 422, dg__status_body(&j), NULL);
  else
    r = dg__send_json(s, c, result && j.state != DG_JOB_STATE_COMPLETED ? 202 : 200, dg__status_body(&j), NULL);
  dg_job_clear(&j);
  return r;
}

enum MHD_Result dg__api_cancel(dg_server *s, struct MHD_Connection *c, const char *id) {
  dg_job j;
  enum MHD_Result sent = MHD_NO;
  if (!dg__load_own(s, c, id, &j, &sent)) return sent;
  dg_job_state after = j.state;
  const char *what = "too_late";
  if (j.state == DG_JOB_STATE_QUEUED || j.state == DG_JOB_STATE_PROCESSING) {
    dg_status st = dg_store_cancel(s->store, id, &after);
    if (st != DG_STATUS_OK && st != DG_STATUS_ERR_NOT_FOUND) {
      dg_job_clear(&j);
      return dg__send_error(s, c, 500, "INTERNAL", 1, NULL, "job store error");
    }
    what = after == DG_JOB_STATE_FAILED ? "cancelled" : after == DG_JOB_STATE_PROCESSING ? "requested" : "too_late";
    if (after == DG_JOB_STATE_FAILED) {
      pthread_mutex_lock(&s->mu);
      s->finished_gen++;
      pthread_cond_broadcast(&s->cv);
      pthread_mutex_unlock(&s->mu);
    }
  }
  dg_job_clear(&j);
  if (dg_store_get(s->store, id, &j) != DG_STATUS_OK)
    return dg__send_error(s, c, 404, "NOT_FOUND", 0, NULL, "unknown or expired request id '%s'", id);
  json_t *o = dg__status_body(&j);
  json_object_set_new(o, "cancel", json_string(what));
  dg_job_clear(&j);
  return dg__send_json(s, c, 200, o, NULL);
}

enum MHD_Result dg__api_media(dg_server *s, struct MHD_Connection *c, const char *name) {
  char id[DG_ID_LEN];
  size_t n = strcspn(name, ".");
  if (n != 32) return dg__send_error(s, c, 404, "NOT_FOUND", 0, NULL, "unknown or expired media");
  for (size_t i = 0; i < n; i++)
    if (!((name[i] >= '0' && name[i] <= '9') || (name[i] >= 'a' && name[i] <= 'f')))
      return dg__send_error(s, c, 404, "NOT_FOUND", 0, NULL, "unknown or expired media");
  memcpy(id, name, n);
  id[n] = '\0';
  uint8_t *data = NULL;
  size_t len = 0;
  char mime[32];
  dg_status st = dg_store_media_get(s->store, id, &data, &len, mime);
  if (st == DG_STATUS_ERR_NOT_FOUND) return dg__send_error(s, c, 404, "NOT_FOUND", 0, NULL, "unknown or expired media");
  if (st != DG_STATUS_OK) return dg__send_error(s, c, 500, "INTERNAL", 1, NULL, "job store error");
  return dg__send(s, c, 200, mime, data, len, NULL);
}

/* ---- submit ---- */

/* Waits for a sync request; answers with the image / JSON, 500 on failure, 504 on timeout. */
static enum MHD_Result sync_wait(dg_server *s, struct MHD_Connection *c, const char *id) {
  double deadline = dg_now() + s->cfg.sync_timeout_s;
  char st_url[800], rs_url[800];
  for (;;) {
    dg_job j;
    dg_status st = dg_store_get(s->store, id, &j);
    if (st != DG_STATUS_OK) return dg__send_error(s, c, 500, "INTERNAL", 1, NULL, "request %s vanished", id);
    if (j.state == DG_JOB_STATE_COMPLETED || j.state == DG_JOB_STATE_FAILED) {
      enum MHD_Result r;
      char gen[32], cost[32], rem[32], seed[32];
      snprintf(gen, sizeof gen, "%.3f", j.inference_time);
      snprintf(cost, sizeof cost, "%g", j.state == DG_JOB_STATE_FAILED ? 0.0 : j.cost);
      snprintf(rem, sizeof rem, "%g", j.remaining_credits);
      snprintf(seed, sizeof seed, "%lld", (long long)j.seed);
      const char *hdr[] = {"x-request-id", j.id, "x-generation-time", gen, "x-cost", cost,
                           "x-remaining-credits", rem, "x-seed-value", seed, NULL};
      if (j.state == DG_JOB_STATE_FAILED) {
        json_t *o = json_pack("{s:s, s:s, s:b, s:s}", "error", j.error ? j.error : "failed", "code", "JOB_FAILED",
                              "retryable", 0, "request_id", j.id);
        r = dg__send_json(s, c, 500, o, hdr);
        dg_job_clear(&j);
        return r;
      }
      json_t *params = json_loads(j.params_json ? j.params_json : "{}", 0, NULL);
      dg_output_opts oo;
      dg_schema_output_opts(params, &oo);
      json_decref(params);
      json_t *outs = outputs_of(&j);
      size_t nout = json_array_size(outs);
      if (nout == 1 && !oo.base64) {
        uint8_t *data = NULL;
        size_t len = 0;
        char mime[32];
        const char *mid = json_string_value(json_object_get(json_array_get(outs, 0), "id"));
        if (mid && dg_store_media_get(s->store, mid, &data, &len, mime) == DG_STATUS_OK)
          r = dg__send(s, c, 200, mime, data, len, hdr);
        else
          r = dg__send_error(s, c, 500, "INTERNAL", 1, hdr, "the output of %s is missing", j.id);
      } else {
        json_t *arr = json_array();
        size_t i;
        json_t *item;
        int bad = 0;
        json_array_foreach(outs, i, item) {
          char *e = media_b64(s, item);
          if (!e) {
            bad = 1;
            break;
          }
          json_array_append_new(arr, json_string(e));
          free(e);
        }
        if (bad) {
          json_decref(arr);
          r = dg__send_error(s, c, 500, "INTERNAL", 1, hdr, "the output of %s is missing", j.id);
        } else if (nout == 1) {
          r = dg__send_json(s, c, 200, json_pack("{s:O}", "image", json_array_get(arr, 0)), hdr);
          json_decref(arr);
        } else {
          r = dg__send_json(s, c, 200, json_pack("{s:o}", "images", arr), hdr);
        }
      }
      json_decref(outs);
      dg_job_clear(&j);
      return r;
    }
    dg_job_clear(&j);
    double now = dg_now();
    pthread_mutex_lock(&s->mu);
    int stop = s->stop;
    if (!stop && now < deadline) {
      double until = now + 0.25 < deadline ? now + 0.25 : deadline;
      struct timespec ts;
      ts.tv_sec = (time_t)until;
      ts.tv_nsec = (long)((until - (double)ts.tv_sec) * 1e9);
      pthread_cond_timedwait(&s->cv, &s->mu, &ts);
    }
    pthread_mutex_unlock(&s->mu);
    if (stop || now >= deadline) {
      urls(s, c, id, st_url, rs_url, sizeof st_url);
      json_t *o = json_pack("{s:s, s:s, s:b, s:s, s:s, s:s}", "error",
                            stop ? "the server is shutting down; the request continues after restart"
                                 : "timed out waiting for the result; the request continues: poll status_url",
                            "code", stop ? "UNAVAILABLE" : "TIMEOUT", "retryable", 1, "request_id", id, "status_url",
                            st_url, "response_url", rs_url);
      const char *hdr[] = {"x-request-id", id, NULL};
      return dg__send_json(s, c, stop ? 503 : 504, o, hdr);
    }
  }
}

enum MHD_Result dg__api_submit(dg_server *s, struct MHD_Connection *c, const char *slug, int sync, int validate_only,
                               const char *body, size_t n) {
  dg_key_info key;
  enum MHD_Result sent = MHD_NO;
  char err[2048] = "";
  if (!dg__auth(s, c, &key, &sent)) return sent;
  const dg_pipeline *p = dg_pipeline_find(slug);
  if (!p) {
    size_t np = 0, off = 0;
    char names[512] = "";
    const dg_pipeline *const *list = dg_pipeline_list(&np);
    for (size_t i = 0; i < np && off < sizeof names; i++)
      off += (size_t)snprintf(names + off, sizeof names - off, "%s%s", i ? ", " : "", list[i]->slug);
    return dg__send_error(s, c, 404, "NOT_FOUND", 0, NULL, "unknown model '%.100s' (available: %s)", slug, names);
  }
  if (!dg_key_allows(&key, slug))
    return dg__send_error(s, c, 403, "FORBIDDEN", 0, NULL, "this API key may not use model '%s'", slug);
  if (!validate_only) {
    int retry = 0;
    double reset = 0;
    if (!rate_ok(s, &key, &retry, &reset)) {
      char ra[16], rs[32];
      snprintf(ra, sizeof ra, "%d", retry);
      iso_time(reset, rs, sizeof rs);
      const char *hdr[] = {"Retry-After", ra, "x-rate-limit-reset-at-utc", rs, NULL};
      return dg__send_error(s, c, 429, "RATE_LIMITED", 1, hdr,
                            "rate limit exceeded: %d requests per minute for this key; retry after %d s",
                            key.rate_per_min, retry);
    }
  }
  json_error_t je;
  json_t *req = n ? json_loadb(body, n, JSON_REJECT_DUPLICATES, &je) : json_object();
  if (!req)
    return dg__send_error(s, c, 400, "INVALID_JSON", 0, NULL, "the body is not valid JSON: %s (line %d, column %d)",
                          je.text, je.line, je.column);
  json_t *params = NULL;
  int64_t seed = 0;
  dg_status st = dg_schema_validate(p, req, &params, &seed, err, sizeof err);
  json_decref(req);
  if (st != DG_STATUS_OK) return dg__send_error(s, c, 400, "INVALID_PARAMETER", 0, NULL, "%s", err);
  double cost = price_of(s, p);
  if (validate_only)
    return dg__send_json(s, c, 200, json_pack("{s:s, s:o, s:f}", "model", p->slug, "params", params, "cost", cost),
                         NULL);
  char missing[4096] = "";
  st = p->check(s->models_dir, missing, sizeof missing);
  if (st != DG_STATUS_OK) {
    json_decref(params);
    return dg__send_error(s, c, 502, "MODEL_UNAVAILABLE", 0, NULL, "model '%s' is not available: %s", slug,
                          missing[0] ? missing : dg_strerror(st));
  }
  /* Resolve the image parameters now: a bad image is the client's 400. */
  dg_job_input inputs[MAX_IMAGE_PARAMS];
  uint8_t *raws[MAX_IMAGE_PARAMS];
  int nin = 0;
  dg_fetch_limits fl = dg_fetch_limits_default();
  fl.allow_private = s->cfg.allow_private_urls;
  dg_image_limits il = dg_image_limits_default();
  enum MHD_Result r;
  /* The request's URL downloads are reserved at once (no hold-and-wait) and
   * held until the bytes are stored. */
  size_t fetch_held = 0, one_fetch = fl.max_bytes && fl.max_bytes < il.max_bytes ? fl.max_bytes : il.max_bytes;
  for (int i = 0, k = 0; i < p->n_params && k < MAX_IMAGE_PARAMS; i++) {
    const char *v = json_string_value(json_object_get(params, p->params[i].name));
    if (p->params[i].type != DG_PARAM_TYPE_IMAGE || !v) continue;
    k++;
    v += strspn(v, " \t\r\n\f\v");
    if (strncasecmp(v, "http://", 7) == 0 || strncasecmp(v, "https://", 8) == 0) fetch_held += one_fetch;
  }
  if (fetch_held > FETCH_BUDGET) fetch_held = FETCH_BUDGET;
  if (fetch_held) budget_acquire(s, &s->fetch_bytes, FETCH_BUDGET, fetch_held);
  for (int i = 0; i < p->n_params && nin < MAX_IMAGE_PARAMS; i++) {
    const dg_param_spec *ps = &p->params[i];
    json_t *v = json_object_get(params, ps->name);
    if (ps->type != DG_PARAM_TYPE_IMAGE || !json_is_string(v)) continue;
    uint8_t *raw = NULL;
    size_t rn = 0;
    char ierr[512] = "";
    st = load_image_param(s, json_string_value(v), &fl, &il, &raw, &rn, ierr, sizeof ierr);
    if (st != DG_STATUS_OK) {
      free(raw);
      r = dg__send_error(s, c, 400, "INVALID_IMAGE", 0, NULL, "parameter '%s': %s",
                         ps->name, ierr[0] ? ierr : dg_strerror(st));
      goto out;
    }
    raws[nin] = raw;
    inputs[nin].name = ps->name;
    inputs[nin].data = raw;
    inputs[nin].n = rn;
    nin++;
    if (json_string_length(v) > 300) {
      char desc[96];
      snprintf(desc, sizeof desc, "(inline image, %zu bytes)", rn);
      json_object_set_new(params, ps->name, json_string(desc));
    }
  }
  const char *hook = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "x-webhook-url");
  if (hook && !dg__webhook_url_ok(hook)) {
    r = dg__send_error(s, c, 400, "INVALID_HEADER", 0, NULL,
                       "x-webhook-url must be an http:// or https:// URL of at most 2000 characters");
    goto out;
  }
  char hook_base[600];
  dg__base_url(s, c, hook_base, sizeof hook_base);
  char *pj = json_dumps(params, JSON_COMPACT);
  const char *idem = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Idempotency-Key");
  if (idem && (strlen(idem) == 0 || strlen(idem) > 200)) {
    free(pj);
    r = dg__send_error(s, c, 400, "INVALID_HEADER", 0, NULL, "Idempotency-Key must be 1 to 200 characters");
    goto out;
  }
  dg_job_submit js = {p->slug, pj ? pj : "{}", seed, key.id, cost, idem, inputs, nin, hook, hook_base};
  char id[DG_ID_LEN];
  int existing = 0;
  double remaining = 0;
  st = dg_store_submit(s->store, &js, id, &existing, &remaining);
  free(pj);
  if (st == DG_STATUS_ERR_LIMIT) {
    r = dg__send_error(s, c, 406, "INSUFFICIENT_CREDITS", 0, NULL,
                       "insufficient credits: model '%s' costs %g per request, this key has %g", slug, cost, remaining);
    goto out;
  }
  if (st != DG_STATUS_OK) {
    r = dg__send_error(s, c, 500, "INTERNAL", 1, NULL, "could not queue the request (job store error)");
    goto out;
  }
  if (!existing) {
    pthread_mutex_lock(&s->mu);
    s->jobs_submitted++;
    pthread_mutex_unlock(&s->mu);
    dg_worker_pool_notify(s->pool);
  }
  if (sync) {
    r = sync_wait(s, c, id);
  } else {
    char st_url[800], rs_url[800];
    urls(s, c, id, st_url, rs_url, sizeof st_url);
    const char *state = "QUEUED";
    dg_job j;
    if (existing && dg_store_get(s->store, id, &j) == DG_STATUS_OK) {
      state = dg_job_state_name(j.state);
      seed = j.seed;
      dg_job_clear(&j);
    }
    json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:f, s:f}", "request_id", id, "status", state, "poll_url",
                          st_url, "status_url", st_url, "response_url", rs_url, "seed", (json_int_t)seed, "cost",
                          cost, "remaining_credits", remaining);
    if (existing) json_object_set_new(o, "idempotent_replay", json_true());
    const char *hdr[] = {"x-request-id", id, NULL};
    r = dg__send_json(s, c, 200, o, hdr);
  }
out:
  for (int i = 0; i < nin; i++) free(raws[i]);
  if (fetch_held) budget_release(s, &s->fetch_bytes, fetch_held);
  json_decref(params);
  return r;
}
