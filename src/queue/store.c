/* The job store front: picks a backend by URL, generates ids and key hashes,
 * and forwards each call. */
#include "queue/store.h"

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "queue/store_backend.h"

struct dg_store {
  const dg__store_backend *be;
  void *impl;
};

static const dg__store_backend *const backends[] = {&dg__store_sqlite};

const char *dg_job_state_name(dg_job_state s) {
  switch (s) {
  case DG_JOB_STATE_QUEUED: return "QUEUED";
  case DG_JOB_STATE_PROCESSING: return "PROCESSING";
  case DG_JOB_STATE_COMPLETED: return "COMPLETED";
  case DG_JOB_STATE_FAILED: return "FAILED";
  }
  return "UNKNOWN";
}

double dg_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void dg_random_hex(char *out, int nbytes) {
  unsigned char b[64];
  if (nbytes > 64) nbytes = 64;
  if (RAND_bytes(b, nbytes) != 1) {
    /* The CSPRNG never fails on Linux; if it did, refuse to make guessable ids. */
    FILE *f = fopen("/dev/urandom", "rb");
    size_t got = f ? fread(b, 1, (size_t)nbytes, f) : 0;
    if (f) fclose(f);
    if (got != (size_t)nbytes) memset(b, 0, sizeof b);
  }
  for (int i = 0; i < nbytes; i++) snprintf(out + 2 * i, 3, "%02x", b[i]);
  out[2 * nbytes] = '\0';
}

void dg_sha256_hex(const char *s, char out[65]) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_Digest(s, strlen(s), md, &n, EVP_sha256(), NULL);
  for (unsigned int i = 0; i < n && i < 32; i++) snprintf(out + 2 * i, 3, "%02x", md[i]);
  out[64] = '\0';
}

dg_status dg_store_open(const char *url, dg_store **out, char *err, size_t errlen) {
  *out = NULL;
  for (size_t i = 0; i < sizeof backends / sizeof backends[0]; i++) {
    size_t k = strlen(backends[i]->scheme);
    if (strncmp(url, backends[i]->scheme, k) != 0) continue;
    dg_store *s = calloc(1, sizeof *s);
    if (!s) return DG_STATUS_ERR_NOMEM;
    s->be = backends[i];
    dg_status st = s->be->open(url + k, &s->impl, err, errlen);
    if (st != DG_STATUS_OK) {
      free(s);
      return st;
    }
    *out = s;
    return DG_STATUS_OK;
  }
  snprintf(err, errlen, "unsupported job store URL '%s' (supported: sqlite:PATH)", url);
  return DG_STATUS_ERR_UNSUPPORTED;
}

void dg_store_close(dg_store *s) {
  if (!s) return;
  s->be->close(s->impl);
  free(s);
}

void dg_store_set_retention(dg_store *s, double seconds) { s->be->set_retention(s->impl, seconds); }

dg_status dg_store_key_create(dg_store *s, const char *name, double credits, const char *slugs, int rate_per_min,
                              char *key_out, size_t key_n, int64_t *id) {
  char hex[65], hash[65];
  if (key_n < 68) return DG_STATUS_ERR_INVALID;
  dg_random_hex(hex, 32);
  snprintf(key_out, key_n, "dg_%s", hex);
  dg_sha256_hex(key_out, hash);
  return s->be->key_create(s->impl, name ? name : "", credits, slugs && *slugs ? slugs : "*", rate_per_min, hash,
                           id);
}

dg_status dg_store_key_lookup(dg_store *s, const char *plain_key, dg_key_info *out) {
  char hash[65];
  if (!plain_key || !*plain_key || strlen(plain_key) > 256) return DG_STATUS_ERR_NOT_FOUND;
  dg_sha256_hex(plain_key, hash);
  return s->be->key_lookup(s->impl, hash, out);
}

dg_status dg_store_key_list(dg_store *s, json_t **out) { return s->be->key_list(s->impl, out); }
dg_status dg_store_key_revoke(dg_store *s, int64_t id) { return s->be->key_revoke(s->impl, id); }
dg_status dg_store_key_credit(dg_store *s, int64_t id, double delta, double *balance) {
  return s->be->key_credit(s->impl, id, delta, balance);
}

int dg_key_allows(const dg_key_info *k, const char *slug) {
  if (strcmp(k->slugs, "*") == 0 || k->slugs[0] == '\0') return 1;
  size_t n = strlen(slug);
  const char *p = k->slugs;
  while (*p) {
    const char *e = strchr(p, ',');
    size_t len = e ? (size_t)(e - p) : strlen(p);
    if (len == n && strncmp(p, slug, n) == 0) return 1;
    if (!e) break;
    p = e + 1;
  }
  return 0;
}

dg_status dg_store_submit(dg_store *s, const dg_job_submit *j, char id_out[DG_ID_LEN], int *existing,
                          double *remaining) {
  /* Request ids look like UUIDv4, from 122 random bits. */
  char hex[33], id[DG_ID_LEN];
  dg_random_hex(hex, 16);
  hex[12] = '4';
  hex[16] = "89ab"[(hex[16] >= 'a' ? hex[16] - 'a' + 10 : hex[16] - '0') & 3];
  snprintf(id, sizeof id, "%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8, hex + 12, hex + 16, hex + 20);
  *existing = 0;
  return s->be->submit(s->impl, j, id, id_out, existing, remaining);
}

void dg_job_clear(dg_job *j) {
  free(j->params_json);
  free(j->error);
  free(j->outputs_json);
  free(j->webhook_url);
  free(j->webhook_base);
  memset(j, 0, sizeof *j);
}

dg_status dg_store_get(dg_store *s, const char *id, dg_job *out) { return s->be->get(s->impl, id, out); }
dg_status dg_store_claim(dg_store *s, const char *worker, dg_job *out) { return s->be->claim(s->impl, worker, out); }
dg_status dg_store_input_get(dg_store *s, const char *job_id, const char *name, uint8_t **data, size_t *n) {
  return s->be->input_get(s->impl, job_id, name, data, n);
}
dg_status dg_store_progress(dg_store *s, const char *id, int step, int total, int *cancel_requested) {
  return s->be->progress(s->impl, id, step, total, cancel_requested);
}
dg_status dg_store_media_put(dg_store *s, const char *job_id, const char *mime, const uint8_t *data, size_t n,
                             char media_id[DG_ID_LEN]) {
  dg_random_hex(media_id, 16); /* 128 random bits: unguessable */
  return s->be->media_put(s->impl, job_id, mime, data, n, media_id);
}
dg_status dg_store_media_get(dg_store *s, const char *media_id, uint8_t **data, size_t *n, char mime[32]) {
  return s->be->media_get(s->impl, media_id, data, n, mime);
}
dg_status dg_store_complete(dg_store *s, const char *id, const char *outputs_json, double inference_time) {
  return s->be->complete(s->impl, id, outputs_json, inference_time);
}
dg_status dg_store_fail(dg_store *s, const char *id, const char *error) { return s->be->fail(s->impl, id, error); }
dg_status dg_store_cancel(dg_store *s, const char *id, dg_job_state *state_out) {
  return s->be->cancel(s->impl, id, state_out);
}
dg_status dg_store_recover(dg_store *s, int max_attempts, double stale_s, int *requeued, int *failed) {
  return s->be->recover(s->impl, max_attempts, stale_s, requeued, failed);
}
dg_status dg_store_release(dg_store *s, const char *id) { return s->be->release(s->impl, id); }
dg_status dg_store_webhooks_due(dg_store *s, int max_jobs, dg_job **out, int *n) {
  return s->be->webhooks_due(s->impl, max_jobs, out, n);
}
dg_status dg_store_webhook_done(dg_store *s, const char *id, int delivered, double next_at) {
  return s->be->webhook_done(s->impl, id, delivered, next_at);
}
dg_status dg_store_heartbeat(dg_store *s, const char *worker_prefix) {
  return s->be->heartbeat(s->impl, worker_prefix);
}
dg_status dg_store_sweep(dg_store *s, int *deleted) { return s->be->sweep(s->impl, deleted); }
dg_status dg_store_stats_get(dg_store *s, dg_store_stats *st) { return s->be->stats(s->impl, st); }
