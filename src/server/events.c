/* GET /v2/requests/{id}/events: the status body as a server-sent-event
 * stream ("event: status", one message per change: state, step, progress),
 * ending after COMPLETED or FAILED; comment lines keep idle streams alive. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "server/server_internal.h"

typedef struct sse {
  dg_server *s;
  char id[DG_ID_LEN];
  char *pending; /* bytes not yet handed to libmicrohttpd */
  size_t n, off;
  char *last;    /* last status body sent */
  int finished;  /* the terminal event is queued */
  double last_send;
} sse;

static void sse_free(void *cls) {
  sse *e = cls;
  free(e->pending);
  free(e->last);
  free(e);
}

static int stopping(dg_server *s) {
  pthread_mutex_lock(&s->mu);
  int st = s->stop;
  pthread_mutex_unlock(&s->mu);
  return st;
}

static void nap(double seconds) {
  struct timespec ts = {(time_t)seconds, (long)((seconds - (double)(time_t)seconds) * 1e9)};
  nanosleep(&ts, NULL);
}

/* Fill e->pending with the next message (blocking while nothing changes). */
static int next_message(sse *e) {
  double keepalive = e->s->cfg.client_timeout_s / 2.0;
  if (keepalive > 10) keepalive = 10;
  if (keepalive < 0.5) keepalive = 0.5;
  for (;;) {
    if (stopping(e->s)) return 0;
    dg_job j;
    dg_status st = dg_store_get(e->s->store, e->id, &j);
    if (st != DG_STATUS_OK) {
      const char *msg = "event: error\ndata: {\"error\":\"unknown or expired request id\",\"code\":\"NOT_FOUND\"}\n\n";
      e->pending = strdup(msg);
      e->n = e->pending ? strlen(msg) : 0;
      e->finished = 1;
      return e->pending != NULL;
    }
    json_t *b = dg__status_body(&j);
    /* eta_s changes every call; leave it out of the change test. */
    json_t *cmp = json_deep_copy(b);
    json_object_del(cmp, "eta_s");
    char *key = json_dumps(cmp, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(cmp);
    int terminal = j.state == DG_JOB_STATE_COMPLETED || j.state == DG_JOB_STATE_FAILED;
    dg_job_clear(&j);
    if (key && (!e->last || strcmp(key, e->last) != 0)) {
      char *txt = json_dumps(b, JSON_COMPACT);
      json_decref(b);
      free(e->last);
      e->last = key;
      if (!txt) return 0;
      size_t len = strlen(txt) + 32;
      e->pending = malloc(len);
      if (!e->pending) {
        free(txt);
        return 0;
      }
      e->n = (size_t)snprintf(e->pending, len, "event: status\ndata: %s\n\n", txt);
      free(txt);
      e->finished = terminal;
      e->last_send = dg_now();
      return 1;
    }
    free(key);
    json_decref(b);
    if (dg_now() - e->last_send >= keepalive) {
      e->pending = strdup(": keepalive\n\n");
      e->n = e->pending ? strlen(e->pending) : 0;
      e->last_send = dg_now();
      return e->pending != NULL;
    }
    nap(0.1);
  }
}

static ssize_t sse_read(void *cls, uint64_t pos, char *buf, size_t max) {
  sse *e = cls;
  (void)pos;
  if (!e->pending || e->off >= e->n) {
    free(e->pending);
    e->pending = NULL;
    e->n = e->off = 0;
    if (e->finished) return MHD_CONTENT_READER_END_OF_STREAM;
    if (!next_message(e)) return MHD_CONTENT_READER_END_OF_STREAM;
  }
  size_t k = e->n - e->off;
  if (k > max) k = max;
  memcpy(buf, e->pending + e->off, k);
  e->off += k;
  return (ssize_t)k;
}

enum MHD_Result dg__api_events(dg_server *s, struct MHD_Connection *c, const char *id) {
  dg_job j;
  enum MHD_Result sent = MHD_NO;
  if (!dg__load_own(s, c, id, &j, &sent)) return sent;
  dg_job_clear(&j);
  sse *e = calloc(1, sizeof *e);
  if (!e) return MHD_NO;
  e->s = s;
  snprintf(e->id, sizeof e->id, "%s", id);
  struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, sse_read, e, sse_free);
  if (!r) {
    sse_free(e);
    return MHD_NO;
  }
  MHD_add_response_header(r, "Content-Type", "text/event-stream");
  MHD_add_response_header(r, "Cache-Control", "no-store");
  enum MHD_Result ret = MHD_queue_response(c, 200, r);
  MHD_destroy_response(r);
  pthread_mutex_lock(&s->mu);
  s->http_by_code[200]++;
  pthread_mutex_unlock(&s->mu);
  return ret;
}
