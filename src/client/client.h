/* A small C client for the daguerre HTTP API (API.md), mirroring the hosted
 * service's SDK: submit (POST /v2/{slug}), status, result, wait, call
 * (sync v1, or submit + wait) and media download.  One dg_client per thread
 * (it owns a curl handle); calls are blocking. */
#ifndef DG_CLIENT_CLIENT_H
#define DG_CLIENT_CLIENT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "base/status.h"

typedef struct dg_client dg_client;

/* base_url NULL: env DAGUERRE_URL, else "http://127.0.0.1:8080"; a trailing
 * "/" or "/v1" / "/v2" is dropped.  api_key NULL: env DAGUERRE_API_KEY (may
 * stay unset).  NULL on OOM. */
dg_client *dg_client_new(const char *base_url, const char *api_key);
void dg_client_free(dg_client *c);
const char *dg_client_base_url(const dg_client *c);
/* An extra header "Name: value" sent with every request (e.g.
 * "Idempotency-Key: k1"); ERR_INVALID for a malformed one. */
dg_status dg_client_add_header(dg_client *c, const char *header);
/* Per-HTTP-request timeout in seconds (default 60; sync calls use their own). */
void dg_client_set_http_timeout(dg_client *c, double seconds);

/* Every call fills one of these: the HTTP code and the parsed JSON body (or
 * the raw bytes when the body is not JSON, e.g. an image from v1). */
typedef struct dg_client_response {
  long http_status;         /* 0 when no HTTP answer (transport error) */
  json_t *json;             /* parsed body, or NULL */
  uint8_t *body;            /* raw body, NUL-terminated */
  size_t body_n;
  char content_type[128];
  char request_id[128];     /* x-request-id header, if any */
} dg_client_response;
void dg_client_response_clear(dg_client_response *r);

/* Return conventions: DG_STATUS_OK when the server answered 2xx, or answered
 * with a terminal status body (COMPLETED / FAILED, whatever the HTTP code);
 * DG_STATUS_ERR_NETWORK for transport failures and other HTTP errors, with
 * err holding "HTTP 404: <server's error>" or curl's message. */

/* POST /v2/{slug} with a JSON object of parameters; request_id (malloc'd). */
dg_status dg_client_submit(dg_client *c, const char *slug, const json_t *params,
                           char **request_id, dg_client_response *resp, char *err, size_t errlen);
/* GET /v2/requests/{id}/status */
dg_status dg_client_status(dg_client *c, const char *id, dg_client_response *resp, char *err,
                           size_t errlen);
/* GET /v2/requests/{id} */
dg_status dg_client_result(dg_client *c, const char *id, dg_client_response *resp, char *err,
                           size_t errlen);
/* POST /v2/requests/{id}/cancel (the server's extension): resp holds the
 * status body after the request (a queued request ends FAILED, a running
 * one stops at its next step). */
dg_status dg_client_cancel(dg_client *c, const char *id, dg_client_response *resp, char *err,
                           size_t errlen);
/* Poll status every interval_s until COMPLETED or FAILED, then fetch the
 * result into resp (for FAILED, the failure body).  ERR_TIMEOUT after
 * timeout_s (resp then holds the last status).  Up to 5 consecutive
 * transient failures (no answer, 502/503/504) are retried. */
dg_status dg_client_wait(dg_client *c, const char *id, double timeout_s, double interval_s,
                         dg_client_response *resp, char *err, size_t errlen);
/* submit + wait (sync = 0: polls the status_url the server returned) or a
 * sync POST /v1/{slug} (sync = 1); resp ends as for dg_client_wait or
 * dg_client_run_sync.  *request_id (optional, malloc'd) when known. */
dg_status dg_client_call(dg_client *c, const char *slug, const json_t *params, int sync,
                         double timeout_s, double interval_s, char **request_id,
                         dg_client_response *resp, char *err, size_t errlen);
/* POST /v1/{slug} (blocking on the server), the raw body in resp. */
dg_status dg_client_run_sync(dg_client *c, const char *slug, const json_t *params,
                             double timeout_s, dg_client_response *resp, char *err, size_t errlen);
/* GET an absolute media URL (or a path under the base URL). */
dg_status dg_client_download(dg_client *c, const char *url, dg_client_response *resp, char *err,
                             size_t errlen);

/* "COMPLETED", "FAILED", ... from a status/result body; NULL if none. */
const char *dg_client_body_status(const json_t *body);

/* One output of a finished request. */
typedef struct dg_client_media {
  uint8_t *data;
  size_t n;
  char ext[8]; /* "png", "jpg", "webp" or "bin" */
} dg_client_media;
/* The outputs of a COMPLETED result body (URLs downloaded, base64 decoded),
 * or of a v1 sync response (raw image, {"image"} or {"images"}).  *media is a
 * malloc'd array of *n; free with dg_client_media_free. */
dg_status dg_client_outputs(dg_client *c, const dg_client_response *result, dg_client_media **media,
                            size_t *n, char *err, size_t errlen);
void dg_client_media_free(dg_client_media *media, size_t n);

/* ---- helpers for command-line front ends (args.c) ---- */

/* Add one "key=value" argument to a JSON object:
 *   k=v      number / true / false / null when v is exactly one, else string
 *   k:=JSON  raw JSON value
 *   k=@path  the file's bytes as base64 (for image parameters)
 * ERR_INVALID with a message on a malformed argument or unreadable file. */
dg_status dg_client_parse_param(const char *arg, json_t *obj, char *err, size_t errlen);

/* Path of output `index` (0-based) of `count`: "{id}", "{n}" (1-based) and
 * "{ext}" are substituted in pattern; a pattern without "{n}" used for
 * several outputs gets "-N" before its extension.  NULL pattern:
 * "{id}.{ext}" (plus "-N" when several).  ERR_LIMIT if out is too small. */
dg_status dg_client_output_path(const char *pattern, const char *request_id, size_t index,
                                size_t count, const char *ext, char *out, size_t outlen);

#endif
