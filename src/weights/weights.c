/* Weights table: canonical name -> tensor view, over one or more safetensors
 * files.  Entries are kept in insertion order with an open-addressing hash
 * index (FNV-1a, linear probing) rebuilt when it grows or after a failed add. */
#include "weights/weights.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "base/status.h"

#define DG__W_MAX_NAME 1024

typedef struct w_entry {
  char *name; /* owned, canonical */
  const dg_tensor *t;
} w_entry;

struct dg_weights {
  w_entry *e;
  size_t n, cap;
  uint32_t *slots; /* entry index + 1; 0 = empty */
  size_t nslots;   /* power of two, >= 2 n */
};

static uint64_t w_hash(const char *s) {
  uint64_t h = 1469598103934665603ull;
  for (; *s; s++) {
    h ^= (unsigned char)*s;
    h *= 1099511628211ull;
  }
  return h;
}

dg_weights *dg_weights_new(void) { return calloc(1, sizeof(dg_weights)); }

void dg_weights_free(dg_weights *w) {
  if (!w) return;
  for (size_t i = 0; i < w->n; i++) free(w->e[i].name);
  free(w->e);
  free(w->slots);
  free(w);
}

static long w_find(const dg_weights *w, const char *name) {
  if (!w->nslots) return -1;
  size_t m = w->nslots - 1, j = (size_t)w_hash(name) & m;
  while (w->slots[j]) {
    size_t i = w->slots[j] - 1;
    if (strcmp(w->e[i].name, name) == 0) return (long)i;
    j = (j + 1) & m;
  }
  return -1;
}

static void w_slot_insert(dg_weights *w, size_t i) {
  size_t m = w->nslots - 1, j = (size_t)w_hash(w->e[i].name) & m;
  while (w->slots[j]) j = (j + 1) & m;
  w->slots[j] = (uint32_t)(i + 1);
}

/* Rebuild the index for the first w->n entries with at least `want` slots. */
static int w_rehash(dg_weights *w, size_t want) {
  size_t ns = 16;
  while (ns < want) ns *= 2;
  uint32_t *s = calloc(ns, sizeof *s);
  if (!s) return -1;
  free(w->slots);
  w->slots = s;
  w->nslots = ns;
  for (size_t i = 0; i < w->n; i++) w_slot_insert(w, i);
  return 0;
}

/* Drop entries added after `keep` (a failed add) and rebuild the index. */
static void w_truncate(dg_weights *w, size_t keep) {
  for (size_t i = keep; i < w->n; i++) free(w->e[i].name);
  w->n = keep;
  memset(w->slots, 0, w->nslots * sizeof *w->slots);
  for (size_t i = 0; i < w->n; i++) w_slot_insert(w, i);
}

dg_status dg_weights_add(dg_weights *w, const dg_safetensors *file, const char *prefix,
                         dg_key_map_fn map, void *ud, char *err, size_t errlen) {
  if (!w || !file) return DG_STATUS_ERR_INVALID;
  if (!prefix) prefix = "";
  size_t pl = strlen(prefix), start = w->n, nf = dg_safetensors_count(file);
  if (w->n + nf > UINT32_MAX - 1) return DG_STATUS_ERR_LIMIT;
  if (w->cap < w->n + nf) {
    size_t nc = w->n + nf;
    w_entry *ne = realloc(w->e, nc * sizeof *ne);
    if (!ne) goto nomem;
    w->e = ne;
    w->cap = nc;
  }
  if (w->nslots < 2 * (w->n + nf) && w_rehash(w, 2 * (w->n + nf)) != 0) goto nomem;
  char buf[DG__W_MAX_NAME];
  for (size_t i = 0; i < nf; i++) {
    const dg_tensor *t = dg_safetensors_at(file, i);
    if (strncmp(t->name, prefix, pl) != 0) continue;
    const char *name = t->name + pl;
    if (map) {
      buf[0] = 0;
      if (!map(name, buf, sizeof buf, ud)) continue;
      buf[sizeof buf - 1] = 0;
      name = buf;
    }
    long prev = w_find(w, name);
    if (prev >= 0) {
      dg_set_error(err, errlen, "weights: two tensors map to '%s' ('%s' and '%s')", name,
            w->e[prev].t->name ? w->e[prev].t->name : "?", t->name);
      w_truncate(w, start);
      return DG_STATUS_ERR_FORMAT;
    }
    size_t nl = strlen(name) + 1;
    char *copy = malloc(nl);
    if (!copy) {
      w_truncate(w, start);
      goto nomem;
    }
    memcpy(copy, name, nl);
    w->e[w->n].name = copy;
    w->e[w->n].t = t;
    w_slot_insert(w, w->n);
    w->n++;
  }
  return DG_STATUS_OK;
nomem:
  dg_set_error(err, errlen, "weights: out of memory");
  return DG_STATUS_ERR_NOMEM;
}

size_t dg_weights_count(const dg_weights *w) { return w ? w->n : 0; }

const dg_tensor *dg_weights_get(const dg_weights *w, const char *name) {
  if (!w || !name) return NULL;
  long i = w_find(w, name);
  return i < 0 ? NULL : w->e[i].t;
}

static const char *w_dtype_name(dg_dtype t) {
  static const char *const names[] = {"F32", "F16", "BF16", "F64", "I64", "I32", "U8"};
  return (unsigned)t < sizeof names / sizeof names[0] ? names[t] : "?";
}

/* "[77, 32]" (with -1 shown as "*") into buf. */
static void w_shape_str(int ndim, const int64_t *shape, char *buf, size_t n) {
  size_t o = 0;
  o += (size_t)snprintf(buf + o, n - o, "[");
  for (int d = 0; d < ndim && o < n; d++) {
    if (shape[d] < 0)
      o += (size_t)snprintf(buf + o, n - o, "%s*", d ? ", " : "");
    else
      o += (size_t)snprintf(buf + o, n - o, "%s%lld", d ? ", " : "", (long long)shape[d]);
  }
  if (o < n) snprintf(buf + o, n - o, "]");
}

const dg_tensor *dg_weights_need(const dg_weights *w, const char *name, int ndim,
                                 const int64_t *shape, char *err, size_t errlen) {
  if (!name) return NULL;
  const dg_tensor *t = dg_weights_get(w, name);
  if (!t) {
    dg_set_error(err, errlen, "weights: tensor '%s' is missing", name);
    return NULL;
  }
  int ok = t->ndim == ndim;
  for (int d = 0; ok && d < ndim; d++) ok = shape[d] < 0 || shape[d] == t->shape[d];
  if (!ok) {
    char want[128], got[128];
    w_shape_str(ndim, shape, want, sizeof want);
    w_shape_str(t->ndim, t->shape, got, sizeof got);
    dg_set_error(err, errlen, "weights: tensor '%s' has shape %s, expected %s", name, got, want);
    return NULL;
  }
  if (t->dtype != DG_DTYPE_F32 && t->dtype != DG_DTYPE_F16 && t->dtype != DG_DTYPE_BF16) {
    dg_set_error(err, errlen, "weights: tensor '%s' has dtype %s, expected a float (F32/F16/BF16)", name,
          w_dtype_name(t->dtype));
    return NULL;
  }
  return t;
}
