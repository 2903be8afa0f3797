/* Base64 encode/decode (RFC 4648, sections 4 and 5). */
#include "base/base64.h"

#include <stdlib.h>

static const char std_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char url_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

size_t dg_base64_encoded_len(size_t n) { return (n + 2) / 3 * 4; }

size_t dg_base64_decoded_max(size_t n) { return n / 4 * 3 + 3; }

static char *encode(const uint8_t *in, size_t n, const char *abc, int pad, size_t *out_len) {
  if (n > (SIZE_MAX - 1) / 4 * 3 - 3) return NULL;
  char *out = malloc(dg_base64_encoded_len(n) + 1);
  if (!out) return NULL;
  size_t o = 0, i = 0;
  for (; i + 3 <= n; i += 3) {
    uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
    out[o++] = abc[v >> 18 & 63];
    out[o++] = abc[v >> 12 & 63];
    out[o++] = abc[v >> 6 & 63];
    out[o++] = abc[v & 63];
  }
  if (n - i == 1) {
    uint32_t v = (uint32_t)in[i] << 16;
    out[o++] = abc[v >> 18 & 63];
    out[o++] = abc[v >> 12 & 63];
    if (pad) {
      out[o++] = '=';
      out[o++] = '=';
    }
  } else if (n - i == 2) {
    uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
    out[o++] = abc[v >> 18 & 63];
    out[o++] = abc[v >> 12 & 63];
    out[o++] = abc[v >> 6 & 63];
    if (pad) out[o++] = '=';
  }
  out[o] = '\0';
  if (out_len) *out_len = o;
  return out;
}

char *dg_base64_encode(const uint8_t *data, size_t n, size_t *out_len) {
  return encode(data, n, std_alphabet, 1, out_len);
}

char *dg_base64url_encode(const uint8_t *data, size_t n, size_t *out_len) {
  return encode(data, n, url_alphabet, 0, out_len);
}

/* 0..63 for a digit of either alphabet, -1 for whitespace, -2 for '=',
 * -3 for anything else. */
static int digit(unsigned char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+' || c == '-') return 62;
  if (c == '/' || c == '_') return 63;
  if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v') return -1;
  if (c == '=') return -2;
  return -3;
}

dg_status dg_base64_decode(const char *s, size_t n, uint8_t **out, size_t *out_n) {
  *out = NULL;
  *out_n = 0;
  uint8_t *buf = malloc(dg_base64_decoded_max(n));
  if (!buf) return DG_STATUS_ERR_NOMEM;
  size_t o = 0, q = 0; /* q: digits in the current quantum */
  uint32_t acc = 0;
  size_t pads = 0;
  int std = 0, url = 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    int d = digit(c);
    if (d == -1) continue;
    if (d == -3) goto bad;
    if (d == -2) {
      pads++;
      continue;
    }
    if (pads) goto bad; /* data after padding */
    if (c == '+' || c == '/') std = 1;
    if (c == '-' || c == '_') url = 1;
    acc = acc << 6 | (uint32_t)d;
    if (++q == 4) {
      buf[o++] = (uint8_t)(acc >> 16);
      buf[o++] = (uint8_t)(acc >> 8);
      buf[o++] = (uint8_t)acc;
      q = 0;
      acc = 0;
    }
  }
  if (std && url) goto bad; /* mixed alphabets */
  if (q == 1) goto bad;     /* 6 bits cannot make a byte */
  if (pads && (q == 0 || q + pads != 4)) goto bad;
  if (q == 2) {
    buf[o++] = (uint8_t)(acc >> 4);
  } else if (q == 3) {
    buf[o++] = (uint8_t)(acc >> 10);
    buf[o++] = (uint8_t)(acc >> 2);
  }
  *out = buf;
  *out_n = o;
  return DG_STATUS_OK;
bad:
  free(buf);
  return DG_STATUS_ERR_FORMAT;
}
