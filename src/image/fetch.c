/* Fetching image URLs with libcurl as a security boundary: http/https only
 * (also on redirects), bounded redirects, size and time limits, no content
 * decoding, no proxies, and every connection's actual address checked in the
 * open-socket callback (so a redirect or a DNS answer that changes between
 * checks cannot reach loopback/private ranges unless allow_private). */
#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "image/image.h"
#include "image/image_internal.h"

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void) { curl_global_init(CURL_GLOBAL_DEFAULT); }

static int v4_is_public(uint32_t a) { /* host byte order */
  uint8_t b0 = (uint8_t)(a >> 24), b1 = (uint8_t)(a >> 16), b2 = (uint8_t)(a >> 8);
  if (b0 == 0 || b0 == 10 || b0 == 127) return 0;         /* this net, private, loopback */
  if (b0 == 100 && (b1 & 0xC0) == 64) return 0;           /* CGNAT 100.64/10 */
  if (b0 == 169 && b1 == 254) return 0;                   /* link-local */
  if (b0 == 172 && (b1 & 0xF0) == 16) return 0;           /* 172.16/12 */
  if (b0 == 192 && b1 == 168) return 0;                   /* 192.168/16 */
  if (b0 == 192 && b1 == 0 && (b2 == 0 || b2 == 2)) return 0; /* IETF, TEST-NET-1 */
  if (b0 == 198 && (b1 & 0xFE) == 18) return 0;           /* benchmarking 198.18/15 */
  if (b0 == 198 && b1 == 51 && b2 == 100) return 0;       /* TEST-NET-2 */
  if (b0 == 203 && b1 == 0 && b2 == 113) return 0;        /* TEST-NET-3 */
  if (b0 >= 224) return 0;                                /* multicast, reserved, broadcast */
  return 1;
}

static int v6_is_public(const uint8_t *a) {
  static const uint8_t zero[16];
  if (memcmp(a, zero, 15) == 0 && (a[15] == 0 || a[15] == 1)) return 0; /* ::, ::1 */
  if (memcmp(a, zero, 10) == 0 && a[10] == 0xFF && a[11] == 0xFF) return 0; /* v4-mapped */
  if (memcmp(a, zero, 12) == 0) return 0;              /* v4-compatible (deprecated) */
  if ((a[0] & 0xFE) == 0xFC) return 0;                 /* ULA fc00::/7 */
  if (a[0] == 0xFE && (a[1] & 0xC0) == 0x80) return 0; /* link-local fe80::/10 */
  if (a[0] == 0xFE && (a[1] & 0xC0) == 0xC0) return 0; /* site-local fec0::/10 */
  if (a[0] == 0xFF) return 0;                          /* multicast */
  if (a[0] == 0x20 && a[1] == 0x01 && a[2] == 0x0D && a[3] == 0xB8) return 0; /* doc */
  if (a[0] == 0x20 && a[1] == 0x02) {                  /* 6to4: embedded IPv4 */
    uint32_t v4 = (uint32_t)a[2] << 24 | (uint32_t)a[3] << 16 | (uint32_t)a[4] << 8 | a[5];
    return v4_is_public(v4);
  }
  static const uint8_t nat64[12] = {0x00, 0x64, 0xFF, 0x9B};
  if (memcmp(a, nat64, 12) == 0) {                     /* 64:ff9b::/96 */
    uint32_t v4 = (uint32_t)a[12] << 24 | (uint32_t)a[13] << 16 | (uint32_t)a[14] << 8 | a[15];
    return v4_is_public(v4);
  }
  return 1;
}

int dg__image_ip_is_public(const char *ip) {
  struct in_addr a4;
  struct in6_addr a6;
  if (inet_pton(AF_INET, ip, &a4) == 1) return v4_is_public(ntohl(a4.s_addr));
  if (inet_pton(AF_INET6, ip, &a6) == 1) return v6_is_public(a6.s6_addr);
  return 0;
}

typedef struct fetch_ctx {
  const dg_fetch_limits *fl;
  const char *trusted;
  uint8_t *buf;
  size_t n, cap;
  int over_limit;
  char refused[INET6_ADDRSTRLEN]; /* first refused address */
} fetch_ctx;

static curl_socket_t open_socket(void *userp, curlsocktype purpose, struct curl_sockaddr *sa) {
  fetch_ctx *c = userp;
  (void)purpose;
  char ip[INET6_ADDRSTRLEN] = "?";
  int port = 0, ok = 0;
  if (sa->family == AF_INET && sa->addrlen >= sizeof(struct sockaddr_in)) {
    const struct sockaddr_in *s = (const struct sockaddr_in *)&sa->addr;
    inet_ntop(AF_INET, &s->sin_addr, ip, sizeof ip);
    port = ntohs(s->sin_port);
    ok = v4_is_public(ntohl(s->sin_addr.s_addr));
  } else if (sa->family == AF_INET6 && sa->addrlen >= sizeof(struct sockaddr_in6)) {
    const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)&sa->addr;
    inet_ntop(AF_INET6, &s->sin6_addr, ip, sizeof ip);
    port = ntohs(s->sin6_port);
    ok = v6_is_public(s->sin6_addr.s6_addr);
  } else {
    snprintf(ip, sizeof ip, "(family %d)", sa->family);
  }
  if (!ok && c->trusted) {
    char hp[INET6_ADDRSTRLEN + 8];
    snprintf(hp, sizeof hp, "%s:%d", ip, port);
    if (strcmp(hp, c->trusted) == 0) ok = 1;
  }
  if (!ok && !c->fl->allow_private) {
    if (!c->refused[0]) snprintf(c->refused, sizeof c->refused, "%s", ip);
    return CURL_SOCKET_BAD;
  }
  return socket(sa->family, sa->socktype, sa->protocol);
}

static size_t on_data(char *p, size_t size, size_t nmemb, void *userp) {
  fetch_ctx *c = userp;
  size_t len = size * nmemb;
  if (len > c->fl->max_bytes - c->n) {
    c->over_limit = 1;
    return 0; /* aborts the transfer */
  }
  if (c->n + len > c->cap) {
    size_t cap = c->cap ? c->cap : 65536;
    while (cap < c->n + len) cap *= 2;
    if (cap > c->fl->max_bytes) cap = c->fl->max_bytes;
    uint8_t *nb = realloc(c->buf, cap);
    if (!nb) return 0;
    c->buf = nb;
    c->cap = cap;
  }
  memcpy(c->buf + c->n, p, len);
  c->n += len;
  return len;
}

dg_status dg__image_fetch(const char *url, const dg_fetch_limits *fl, const char *trusted,
                          uint8_t **out, size_t *n, char *err, size_t errlen) {
  *out = NULL;
  *n = 0;
  pthread_once(&curl_once, curl_init_once);
  dg_fetch_limits lim = *fl;
  if (lim.max_bytes == 0) lim.max_bytes = dg_fetch_limits_default().max_bytes;
  fl = &lim;
  fetch_ctx c;
  memset(&c, 0, sizeof c);
  c.fl = fl;
  c.trusted = trusted;
  CURL *h = curl_easy_init();
  if (!h) return DG_STATUS_ERR_NOMEM;
  char cerr[CURL_ERROR_SIZE] = "";
  curl_easy_setopt(h, CURLOPT_URL, url);
  curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt(h, CURLOPT_MAXREDIRS, (long)(fl->max_redirects > 0 ? fl->max_redirects : 0));
  curl_easy_setopt(h, CURLOPT_PROXY, ""); /* never an environment proxy */
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, fl->timeout_ms > 0 ? fl->timeout_ms : 15000L);
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
                   fl->connect_timeout_ms > 0 ? fl->connect_timeout_ms : 5000L);
  curl_easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)fl->max_bytes);
  curl_easy_setopt(h, CURLOPT_OPENSOCKETFUNCTION, open_socket);
  curl_easy_setopt(h, CURLOPT_OPENSOCKETDATA, &c);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &c);
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, cerr);
  curl_easy_setopt(h, CURLOPT_USERAGENT, "daguerre-image-fetch/1");
  curl_easy_setopt(h, CURLOPT_FORBID_REUSE, 1L);
  CURLcode rc = curl_easy_perform(h);
  long code = 0;
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
  curl_easy_cleanup(h);
  dg_status st = DG_STATUS_OK;
  if (c.refused[0]) {
    dg__image_err(err, errlen, "image: address %s is not allowed", c.refused);
    st = DG_STATUS_ERR_NETWORK;
  } else if (c.over_limit || rc == CURLE_FILESIZE_EXCEEDED) {
    dg__image_err(err, errlen, "image: URL body is over the %zu byte limit", fl->max_bytes);
    st = DG_STATUS_ERR_LIMIT;
  } else if (rc == CURLE_OPERATION_TIMEDOUT) {
    dg__image_err(err, errlen, "image: could not fetch URL: timed out after %ld ms",
                  fl->timeout_ms);
    st = DG_STATUS_ERR_NETWORK;
  } else if (rc == CURLE_TOO_MANY_REDIRECTS) {
    dg__image_err(err, errlen, "image: could not fetch URL: more than %d redirects",
                  fl->max_redirects);
    st = DG_STATUS_ERR_NETWORK;
  } else if (rc == CURLE_UNSUPPORTED_PROTOCOL) {
    dg__image_err(err, errlen, "image: could not fetch URL: only http and https are allowed");
    st = DG_STATUS_ERR_NETWORK;
  } else if (rc != CURLE_OK) {
    dg__image_err(err, errlen, "image: could not fetch URL: %s",
                  cerr[0] ? cerr : curl_easy_strerror(rc));
    st = DG_STATUS_ERR_NETWORK;
  } else if (code < 200 || code >= 300) {
    dg__image_err(err, errlen, "image: could not fetch URL: HTTP %ld", code);
    st = DG_STATUS_ERR_NETWORK;
  }
  if (st != DG_STATUS_OK) {
    free(c.buf);
    return st;
  }
  if (!c.buf) { /* empty body */
    dg__image_err(err, errlen, "image: not a PNG, JPEG or WebP image");
    return DG_STATUS_ERR_FORMAT;
  }
  *out = c.buf;
  *n = c.n;
  return DG_STATUS_OK;
}
