/* Image parameters: data: URIs, bare base64 and http(s) URLs (fetch.c). */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/base64.h"
#include "image/image.h"
#include "image/image_internal.h"

dg_fetch_limits dg_fetch_limits_default(void) {
  dg_fetch_limits l;
  l.max_bytes = (size_t)20 << 20;
  l.timeout_ms = 15000;
  l.connect_timeout_ms = 5000;
  l.max_redirects = 3;
  l.allow_private = 0;
  return l;
}

/* "data:image/png;base64,...." -> the base64 part; NULL with a message if
 * the URI is not a base64 image data URI. */
static const char *data_uri_payload(const char *v, size_t n, size_t *pn, char *err,
                                    size_t errlen) {
  const char *comma = memchr(v, ',', n);
  if (!comma) {
    dg__image_err(err, errlen, "image: malformed data URI (no ',')");
    return NULL;
  }
  /* header: "data:" mediatype *( ";" param ) ";base64" */
  const char *h = v + 5;
  size_t hn = (size_t)(comma - h);
  const char *semi = memchr(h, ';', hn);
  size_t mt_n = semi ? (size_t)(semi - h) : hn;
  static const char *const types[] = {"image/png", "image/jpeg", "image/jpg", "image/webp"};
  int ok = 0;
  for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
    if (mt_n == strlen(types[i]) && strncasecmp(h, types[i], mt_n) == 0) ok = 1;
  if (!ok) {
    dg__image_err(err, errlen, "image: data URI must be image/png, image/jpeg or image/webp");
    return NULL;
  }
  int b64 = 0;
  while (semi) {
    const char *p = semi + 1;
    const char *next = memchr(p, ';', (size_t)(comma - p));
    size_t pl = next ? (size_t)(next - p) : (size_t)(comma - p);
    if (pl == 6 && strncasecmp(p, "base64", 6) == 0) b64 = 1;
    semi = next;
  }
  if (!b64) {
    dg__image_err(err, errlen, "image: data URI must be base64-encoded (';base64,')");
    return NULL;
  }
  *pn = n - (size_t)(comma + 1 - v);
  return comma + 1;
}

dg_status dg_image_load_param(const char *value, const dg_fetch_limits *fl,
                              const dg_image_limits *il, uint8_t **raw, size_t *raw_n,
                              dg_image **img, char *err, size_t errlen) {
  if (raw) *raw = NULL;
  if (raw_n) *raw_n = 0;
  if (img) *img = NULL;
  if (err && errlen) err[0] = '\0';
  dg_fetch_limits fdef = dg_fetch_limits_default();
  dg_image_limits idef = dg_image_limits_default();
  if (!fl) fl = &fdef;
  if (!il) il = &idef;
  if (!value) {
    dg__image_err(err, errlen, "image: missing value");
    return DG_STATUS_ERR_FORMAT;
  }
  size_t n = strlen(value);
  while (n && isspace((unsigned char)*value)) value++, n--;
  while (n && isspace((unsigned char)value[n - 1])) n--;
  if (n == 0) {
    dg__image_err(err, errlen, "image: empty value");
    return DG_STATUS_ERR_FORMAT;
  }
  uint8_t *bytes = NULL;
  size_t nb = 0;
  dg_status st;
  if ((n > 7 && strncasecmp(value, "http://", 7) == 0) ||
      (n > 8 && strncasecmp(value, "https://", 8) == 0)) {
    char *url = strndup(value, n);
    if (!url) return DG_STATUS_ERR_NOMEM;
    dg_fetch_limits f2 = *fl;
    if (il->max_bytes && (f2.max_bytes == 0 || il->max_bytes < f2.max_bytes))
      f2.max_bytes = il->max_bytes;
    st = dg__image_fetch(url, &f2, NULL, &bytes, &nb, err, errlen);
    free(url);
    if (st != DG_STATUS_OK) return st;
  } else {
    const char *b = value;
    size_t bn = n;
    if (n >= 5 && strncasecmp(value, "data:", 5) == 0) {
      b = data_uri_payload(value, n, &bn, err, errlen);
      if (!b) return DG_STATUS_ERR_FORMAT;
    } else if (strstr(value, "://")) {
      dg__image_err(err, errlen, "image: only http and https URLs are supported");
      return DG_STATUS_ERR_FORMAT;
    }
    /* decoded size before decoding (slack for line breaks and spaces; the
     * exact size is checked again on the bytes) */
    if (il->max_bytes && bn / 4 * 3 > il->max_bytes + il->max_bytes / 8 + 3) {
      dg__image_err(err, errlen, "image: encoded image is over the %zu byte limit", il->max_bytes);
      return DG_STATUS_ERR_LIMIT;
    }
    st = dg_base64_decode(b, bn, &bytes, &nb);
    if (st == DG_STATUS_ERR_NOMEM) return st;
    if (st != DG_STATUS_OK) {
      dg__image_err(err, errlen,
                    b == value ? "image: not an http(s) URL, a data URI or base64"
                               : "image: invalid base64 in data URI");
      return DG_STATUS_ERR_FORMAT;
    }
  }
  if (img)
    st = dg_image_decode(bytes, nb, il, img, err, errlen);
  else
    st = dg_image_probe(bytes, nb, il, NULL, NULL, NULL, err, errlen);
  if (st != DG_STATUS_OK || !raw) {
    free(bytes);
  } else {
    *raw = bytes;
    if (raw_n) *raw_n = nb;
  }
  return st;
}
