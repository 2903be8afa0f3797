/* Command-line helpers of the client: typed key=value parameters and output
 * file naming. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base64.h"
#include "base/file.h"
#include "client/client.h"

enum { MAX_PARAM_FILE = 64 << 20 };

/* A JSON scalar when v is exactly a number / true / false / null. */
static json_t *typed(const char *v) {
  if (strcmp(v, "true") == 0) return json_true();
  if (strcmp(v, "false") == 0) return json_false();
  if (strcmp(v, "null") == 0) return json_null();
  /* JSON number grammar: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */
  const char *p = v;
  if (*p == '-') p++;
  if (*p == '0') p++;
  else if (*p >= '1' && *p <= '9')
    while (*p >= '0' && *p <= '9') p++;
  else
    return NULL;
  int is_real = 0;
  if (*p == '.') {
    p++;
    if (!(*p >= '0' && *p <= '9')) return NULL;
    while (*p >= '0' && *p <= '9') p++;
    is_real = 1;
  }
  if (*p == 'e' || *p == 'E') {
    p++;
    if (*p == '+' || *p == '-') p++;
    if (!(*p >= '0' && *p <= '9')) return NULL;
    while (*p >= '0' && *p <= '9') p++;
    is_real = 1;
  }
  if (*p) return NULL;
  if (!is_real) {
    errno = 0;
    long long ll = strtoll(v, NULL, 10);
    if (errno == 0) return json_integer((json_int_t)ll);
  }
  return json_real(strtod(v, NULL));
}

dg_status dg_client_parse_param(const char *arg, json_t *obj, char *err, size_t errlen) {
  const char *eq = strchr(arg, '=');
  if (!eq || eq == arg || (eq == arg + 1 && arg[0] == ':')) {
    snprintf(err, errlen, "expected key=value, key:=JSON or key=@file, got '%s'", arg);
    return DG_STATUS_ERR_INVALID;
  }
  int raw = eq[-1] == ':';
  size_t klen = (size_t)(eq - arg) - (raw ? 1 : 0);
  char *key = strndup(arg, klen);
  if (!key) return DG_STATUS_ERR_NOMEM;
  const char *v = eq + 1;
  json_t *val = NULL;
  dg_status st = DG_STATUS_OK;
  if (raw) {
    json_error_t je;
    val = json_loads(v, JSON_DECODE_ANY, &je);
    if (!val) {
      snprintf(err, errlen, "%s: invalid JSON: %s", key, je.text);
      st = DG_STATUS_ERR_INVALID;
    }
  } else if (v[0] == '@') {
    size_t n;
    char *data = NULL;
    if (dg_read_file(v + 1, MAX_PARAM_FILE, &data, &n, err, errlen) != DG_STATUS_OK) {
      st = DG_STATUS_ERR_INVALID;
    } else {
      char *b64 = dg_base64_encode((const uint8_t *)data, n, NULL);
      free(data);
      if (!b64) {
        st = DG_STATUS_ERR_NOMEM;
      } else {
        val = json_string(b64);
        free(b64);
      }
    }
  } else {
    val = typed(v);
    if (!val) val = json_string(v);
    if (!val) { /* not UTF-8 */
      snprintf(err, errlen, "%s: value is not valid UTF-8", key);
      st = DG_STATUS_ERR_INVALID;
    }
  }
  if (st == DG_STATUS_OK && json_object_set_new(obj, key, val) != 0) {
    snprintf(err, errlen, "%s: invalid key", key);
    st = DG_STATUS_ERR_INVALID;
  }
  free(key);
  return st;
}

/* Append s at *o, counting what does not fit (the caller checks *o). */
static void append(char *out, size_t outlen, size_t *o, const char *s) {
  for (; *s; s++, (*o)++)
    if (*o + 1 < outlen) out[*o] = *s;
}

dg_status dg_client_output_path(const char *pattern, const char *request_id, size_t index,
                                size_t count, const char *ext, char *out, size_t outlen) {
  if (!pattern || !*pattern) pattern = "{id}.{ext}";
  if (!request_id) request_id = "output";
  if (!ext) ext = "bin";
  int has_n = strstr(pattern, "{n}") != NULL;
  char num[32];
  snprintf(num, sizeof num, "%zu", index + 1);
  /* the "-N" goes before the extension of the last path component */
  const char *slash = strrchr(pattern, '/');
  const char *dot = strrchr(slash ? slash : pattern, '.');
  const char *insert_at = (!has_n && count > 1) ? (dot ? dot : pattern + strlen(pattern)) : NULL;
  size_t o = 0;
  for (const char *p = pattern;; p++) {
    if (p == insert_at) {
      append(out, outlen, &o, "-");
      append(out, outlen, &o, num);
    }
    if (!*p) break;
    const char *sub = NULL;
    size_t skip = 0;
    if (strncmp(p, "{id}", 4) == 0) sub = request_id, skip = 4;
    else if (strncmp(p, "{n}", 3) == 0) sub = num, skip = 3;
    else if (strncmp(p, "{ext}", 5) == 0) sub = ext, skip = 5;
    if (sub) {
      append(out, outlen, &o, sub);
      p += skip - 1;
    } else {
      if (o + 1 < outlen) out[o] = *p;
      o++;
    }
  }
  if (o >= outlen) {
    if (outlen) out[0] = '\0';
    return DG_STATUS_ERR_LIMIT;
  }
  out[o] = '\0';
  return DG_STATUS_OK;
}
