/* Signed completion webhooks: a request submitted with `x-webhook-url` gets
 * its final body (the result body when COMPLETED, the status body when
 * FAILED) POSTed there once it ends, with
 *   x-daguerre-signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>
 * Retries with exponential backoff (1, 2, 4, ... s) until a 2xx or the
 * configured number of attempts.  The delivery state lives in the job store,
 * so pending deliveries survive a restart.  Loopback/private targets are
 * refused unless --allow-private-urls; redirects are not followed. */
#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "base/log.h"
#include "image/image_internal.h" /* dg__image_ip_is_public: the same address rules as image URLs */
#include "server/server_internal.h"

int dg__webhook_url_ok(const char *url) {
  size_t n = strlen(url);
  if (n > 2000 || n < 8) return 0;
  if (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0) return 0;
  for (size_t i = 0; i < n; i++)
    if ((unsigned char)url[i] <= ' ' || url[i] == 0x7f) return 0;
  return 1;
}

typedef struct hook_ctx {
  int allow_private;
  int refused;
} hook_ctx;

static curl_socket_t open_socket(void *userp, curlsocktype purpose, struct curl_sockaddr *sa) {
  hook_ctx *c = userp;
  (void)purpose;
  char ip[INET6_ADDRSTRLEN] = "";
  if (sa->family == AF_INET)
    inet_ntop(AF_INET, &((const struct sockaddr_in *)&sa->addr)->sin_addr, ip, sizeof ip);
  else if (sa->family == AF_INET6)
    inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)&sa->addr)->sin6_addr, ip, sizeof ip);
  if (!c->allow_private && !dg__image_ip_is_public(ip)) {
    c->refused = 1;
    return CURL_SOCKET_BAD;
  }
  return socket(sa->family, sa->socktype, sa->protocol);
}

static size_t discard(char *p, size_t size, size_t nmemb, void *userp) {
  (void)p;
  (void)userp;
  return size * nmemb;
}

/* 1 on a 2xx answer. */
static int post(dg_server *s, const char *url, const char *id, const char *body, char *why, size_t whylen) {
  char ts[32], sig[300], hdr_sig[400], hdr_id[96];
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int maclen = 0;
  snprintf(ts, sizeof ts, "%lld", (long long)time(NULL));
  size_t tn = strlen(ts), bn = strlen(body);
  char *msg = malloc(tn + 1 + bn + 1);
  if (!msg) return 0;
  memcpy(msg, ts, tn);
  msg[tn] = '.';
  memcpy(msg + tn + 1, body, bn + 1);
  HMAC(EVP_sha256(), s->webhook_secret, (int)strlen(s->webhook_secret), (const unsigned char *)msg, tn + 1 + bn, mac,
       &maclen);
  free(msg);
  for (unsigned int i = 0; i < maclen && i < 32; i++) snprintf(sig + 2 * i, 3, "%02x", mac[i]);
  snprintf(hdr_sig, sizeof hdr_sig, "x-daguerre-signature: t=%s,v1=%s", ts, sig);
  snprintf(hdr_id, sizeof hdr_id, "x-request-id: %s", id);
  CURL *h = curl_easy_init();
  if (!h) return 0;
  struct curl_slist *hdrs = NULL;
  hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
  hdrs = curl_slist_append(hdrs, hdr_sig);
  hdrs = curl_slist_append(hdrs, hdr_id);
  hook_ctx ctx = {s->cfg.allow_private_urls, 0};
  curl_easy_setopt(h, CURLOPT_URL, url);
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
  curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
  curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)bn);
  curl_easy_setopt(h, CURLOPT_USERAGENT, "daguerre-webhook/1");
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 10000L);
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
  curl_easy_setopt(h, CURLOPT_OPENSOCKETFUNCTION, open_socket);
  curl_easy_setopt(h, CURLOPT_OPENSOCKETDATA, &ctx);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard);
#if LIBCURL_VERSION_NUM >= 0x075500
  curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
#else
  curl_easy_setopt(h, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
  CURLcode rc = curl_easy_perform(h);
  long code = 0;
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
  curl_slist_free_all(hdrs);
  curl_easy_cleanup(h);
  if (ctx.refused)
    snprintf(why, whylen, "address not allowed (private/loopback; see --allow-private-urls)");
  else if (rc != CURLE_OK)
    snprintf(why, whylen, "%s", curl_easy_strerror(rc));
  else
    snprintf(why, whylen, "HTTP %ld", code);
  return rc == CURLE_OK && code >= 200 && code < 300;
}

static void deliver(dg_server *s, dg_job *j) {
  json_t *body = NULL;
  if (j->state == DG_JOB_STATE_COMPLETED)
    body = dg__result_body(s, j, s->public_url[0] ? s->public_url : (j->webhook_base ? j->webhook_base : ""));
  else
    body = dg__status_body(j);
  char *txt = body ? json_dumps(body, JSON_COMPACT) : NULL;
  json_decref(body);
  char why[256] = "could not build the body";
  int ok = txt && post(s, j->webhook_url, j->id, txt, why, sizeof why);
  free(txt);
  int attempt = j->webhook_attempts + 1;
  double next = 0;
  if (!ok && attempt < s->cfg.webhook_attempts) next = dg_now() + (double)(1 << (attempt - 1 < 16 ? attempt - 1 : 16));
  dg_store_webhook_done(s->store, j->id, ok, next);
  pthread_mutex_lock(&s->mu);
  if (ok)
    s->webhooks_delivered++;
  else
    s->webhooks_failed++;
  pthread_mutex_unlock(&s->mu);
  if (!ok)
    DG_WARN("webhook for %s, attempt %d: %s%s", j->id, attempt, why, next > 0 ? " (will retry)" : " (giving up)");
}

static void *webhook_main(void *arg) {
  dg_server *s = arg;
  for (;;) {
    pthread_mutex_lock(&s->mu);
    int stop = s->stop;
    pthread_mutex_unlock(&s->mu);
    if (stop) break;
    dg_job *due = NULL;
    int n = 0;
    dg_store_webhooks_due(s->store, 16, &due, &n);
    for (int i = 0; i < n; i++) {
      deliver(s, &due[i]);
      dg_job_clear(&due[i]);
    }
    free(due);
    if (n == 0) {
      pthread_mutex_lock(&s->mu);
      if (!s->stop) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 200000000L;
        if (ts.tv_nsec >= 1000000000L) {
          ts.tv_sec++;
          ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&s->cv, &s->mu, &ts);
      }
      pthread_mutex_unlock(&s->mu);
    }
  }
  return NULL;
}

/* The secret: --webhook-secret, else DATA_DIR/webhook_secret (created once, 0600). */
static dg_status load_secret(dg_server *s, char *err, size_t errlen) {
  if (s->cfg.webhook_secret && *s->cfg.webhook_secret) {
    snprintf(s->webhook_secret, sizeof s->webhook_secret, "%s", s->cfg.webhook_secret);
    return DG_STATUS_OK;
  }
  char path[1200];
  snprintf(path, sizeof path, "%s/webhook_secret", s->data_dir);
  int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
  if (fd >= 0) {
    char hex[65];
    dg_random_hex(hex, 32);
    ssize_t w = write(fd, hex, 64);
    close(fd);
    if (w != 64) {
      snprintf(err, errlen, "cannot write %s", path);
      return DG_STATUS_ERR_IO;
    }
  } else if (errno != EEXIST) {
    snprintf(err, errlen, "cannot create %s: %s", path, strerror(errno));
    return DG_STATUS_ERR_IO;
  }
  FILE *f = fopen(path, "r");
  if (!f) {
    snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
    return DG_STATUS_ERR_IO;
  }
  size_t n = fread(s->webhook_secret, 1, sizeof s->webhook_secret - 1, f);
  fclose(f);
  s->webhook_secret[n] = '\0';
  while (n && (s->webhook_secret[n - 1] == '\n' || s->webhook_secret[n - 1] == ' ')) s->webhook_secret[--n] = '\0';
  if (n == 0) {
    snprintf(err, errlen, "%s is empty", path);
    return DG_STATUS_ERR_FORMAT;
  }
  return DG_STATUS_OK;
}

dg_status dg__webhook_start(dg_server *s, char *err, size_t errlen) {
  dg_status st = load_secret(s, err, errlen);
  if (st != DG_STATUS_OK) return st;
  curl_global_init(CURL_GLOBAL_DEFAULT);
  if (pthread_create(&s->webhook, NULL, webhook_main, s) != 0) {
    snprintf(err, errlen, "cannot start the webhook thread");
    return DG_STATUS_ERR_INTERNAL;
  }
  s->webhook_started = 1;
  return DG_STATUS_OK;
}

void dg__webhook_stop(dg_server *s) {
  if (!s->webhook_started) return;
  pthread_join(s->webhook, NULL);
  s->webhook_started = 0;
  curl_global_cleanup();
}
