/* safetensors reader (mmap, zero-copy) and writer.
 *
 * Format: 8-byte little-endian header length N, N bytes of UTF-8 JSON
 * {name: {"dtype": "F32", "shape": [..], "data_offsets": [begin, end)}, ...,
 *  "__metadata__": {key: string}}, then the data area; offsets are relative to
 * the start of the data area.
 *
 * Everything in the header is untrusted and checked before a tensor is exposed:
 *  - N within the file and <= DG__ST_MAX_HEADER (100 MiB);
 *  - the header is valid UTF-8 JSON, an object, without duplicate keys;
 *  - each entry is an object with a known dtype string, a shape of 0..4
 *    non-negative integers whose byte size does not overflow, and integer
 *    data_offsets with end - begin == byte size, end within the data area;
 *  - no two non-empty tensors overlap (sorted by begin and compared).
 * Holes between tensors are tolerated (nothing is exposed from them).
 *
 * Dtypes: F32 F16 BF16 F64 I64 I32 U8 are supported.  A tensor with more than
 * 4 dims, or with a dtype string the format defines that the engine does not
 * use (BOOL, I8, I16, U16, U32, U64, F8_E4M3, F8_E5M2), makes the whole file
 * fail with ERR_UNSUPPORTED and a message naming the tensor; an unknown dtype
 * string is ERR_FORMAT.  (Rejecting up front is simplest and no Stable
 * Diffusion checkpoint contains such tensors.)
 *
 * A 0-dim tensor (shape [], e.g. "model_ema.num_updates") is exposed as
 * ndim 1, shape [1] (dg_tensor has 1..4 dims); the writer accepts ndim 0 and
 * writes shape [].
 *
 * Alignment is NOT required by the format: a tensor's data may start at any
 * byte.  Views keep the original address; kernels must read weights with
 * memcpy / unaligned vector loads (loadu), never assume alignment.
 *
 * Names are looked up through an open-addressing hash table (FNV-1a).
 *
 * The mapping is private and read-only: writing through a view faults, and a
 * file truncated by someone else while mapped raises SIGBUS on access (the
 * usual mmap caveat; model files are not modified in place). */
#include "weights/safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include "base/status.h"

#define DG__ST_MAX_HEADER ((uint64_t)100 * 1024 * 1024)

struct dg_safetensors {
  const uint8_t *map; /* whole file (mmap) or caller's buffer */
  size_t map_size;
  int mapped;         /* 1: munmap on close */
  size_t n;
  dg_tensor *tensors; /* [n], header order; names point into `names` */
  char *names;        /* all names, NUL-separated */
  uint32_t *slots;    /* hash table of tensor index + 1 (0 = empty) */
  size_t nslots;      /* power of two */
  size_t nmeta;
  char **meta;        /* [2 * nmeta]: key, value, ... */
};

/* ---- dtypes -------------------------------------------------------------- */

static const struct {
  const char *name;
  dg_dtype dtype;
  size_t size;
} st_dtypes[] = {
    {"F32", DG_DTYPE_F32, 4}, {"F16", DG_DTYPE_F16, 2}, {"BF16", DG_DTYPE_BF16, 2},
    {"F64", DG_DTYPE_F64, 8}, {"I64", DG_DTYPE_I64, 8}, {"I32", DG_DTYPE_I32, 4},
    {"U8", DG_DTYPE_U8, 1},
};

/* Dtypes the format defines but the engine does not load. */
static const char *const st_unsupported[] = {"BOOL", "I8",  "I16",     "U16",     "U32",
                                             "U64",  "F8_E4M3", "F8_E5M2", "F8_E4M3FN",
                                             "F8_E5M2FNUZ", "F8_E4M3FNUZ", "F4", "F6_E2M3",
                                             "F6_E3M2", "E8M0", "C64"};

static int st_dtype_lookup(const char *s, dg_dtype *dt, size_t *size) {
  for (size_t i = 0; i < sizeof st_dtypes / sizeof st_dtypes[0]; i++) {
    if (strcmp(s, st_dtypes[i].name) == 0) {
      *dt = st_dtypes[i].dtype;
      *size = st_dtypes[i].size;
      return 1;
    }
  }
  return 0;
}

static const char *st_dtype_str(dg_dtype dt, size_t *size) {
  for (size_t i = 0; i < sizeof st_dtypes / sizeof st_dtypes[0]; i++) {
    if (st_dtypes[i].dtype == dt) {
      if (size) *size = st_dtypes[i].size;
      return st_dtypes[i].name;
    }
  }
  return NULL;
}

static int st_is_unsupported(const char *s) {
  for (size_t i = 0; i < sizeof st_unsupported / sizeof st_unsupported[0]; i++)
    if (strcmp(s, st_unsupported[i]) == 0) return 1;
  return 0;
}

/* ---- hash ---------------------------------------------------------------- */

static uint64_t st_hash(const char *s) {
  uint64_t h = 1469598103934665603ull;
  for (; *s; s++) {
    h ^= (unsigned char)*s;
    h *= 1099511628211ull;
  }
  return h;
}

/* ---- parsing ------------------------------------------------------------- */

typedef struct st_span {
  uint64_t begin, end;
  size_t index;
} st_span;

static int st_span_cmp(const void *a, const void *b) {
  const st_span *x = a, *y = b;
  if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
  if (x->end != y->end) return x->end < y->end ? -1 : 1;
  return 0;
}

/* A JSON integer >= 0 as uint64, or -1 on a wrong type / negative value. */
static int st_get_u64(const json_t *v, uint64_t *out) {
  if (!json_is_integer(v)) return -1;
  json_int_t i = json_integer_value(v);
  if (i < 0) return -1;
  *out = (uint64_t)i;
  return 0;
}

static void st_free_parts(dg_safetensors *st) {
  if (!st) return;
  free(st->tensors);
  free(st->names);
  free(st->slots);
  if (st->meta) {
    for (size_t i = 0; i < 2 * st->nmeta; i++) free(st->meta[i]);
    free(st->meta);
  }
}

static char *st_strdup(const char *s) {
  size_t n = strlen(s) + 1;
  char *d = malloc(n);
  if (d) memcpy(d, s, n);
  return d;
}

static dg_status st_parse_metadata(dg_safetensors *st, json_t *md, char *err, size_t errlen) {
  if (!json_is_object(md)) {
    dg_set_error(err, errlen, "safetensors: __metadata__ is not an object");
    return DG_STATUS_ERR_FORMAT;
  }
  size_t n = json_object_size(md);
  if (n == 0) return DG_STATUS_OK;
  st->meta = calloc(2 * n, sizeof(char *));
  if (!st->meta) return DG_STATUS_ERR_NOMEM;
  const char *k;
  json_t *v;
  json_object_foreach(md, k, v) {
    if (!json_is_string(v)) {
      dg_set_error(err, errlen, "safetensors: __metadata__ entry '%s' is not a string", k);
      return DG_STATUS_ERR_FORMAT;
    }
    char *kk = st_strdup(k), *vv = st_strdup(json_string_value(v));
    st->meta[2 * st->nmeta] = kk;
    st->meta[2 * st->nmeta + 1] = vv;
    st->nmeta++;
    if (!kk || !vv) return DG_STATUS_ERR_NOMEM;
  }
  return DG_STATUS_OK;
}

/* Fill one tensor from its header entry; data_size = size of the data area. */
static dg_status st_parse_entry(const char *name, json_t *e, const uint8_t *data,
                                uint64_t data_size, dg_tensor *t, st_span *span, char *err,
                                size_t errlen) {
  if (!json_is_object(e)) {
    dg_set_error(err, errlen, "safetensors: entry '%s' is not an object", name);
    return DG_STATUS_ERR_FORMAT;
  }
  json_t *jd = json_object_get(e, "dtype");
  json_t *js = json_object_get(e, "shape");
  json_t *jo = json_object_get(e, "data_offsets");
  if (!jd || !js || !jo) {
    dg_set_error(err, errlen, "safetensors: tensor '%s' lacks %s", name,
           !jd ? "dtype" : !js ? "shape" : "data_offsets");
    return DG_STATUS_ERR_FORMAT;
  }
  if (!json_is_string(jd)) {
    dg_set_error(err, errlen, "safetensors: tensor '%s': dtype is not a string", name);
    return DG_STATUS_ERR_FORMAT;
  }
  const char *ds = json_string_value(jd);
  dg_dtype dt;
  size_t esize;
  if (!st_dtype_lookup(ds, &dt, &esize)) {
    if (st_is_unsupported(ds)) {
      dg_set_error(err, errlen,
             "safetensors: tensor '%s' has dtype %s, which is not supported "
             "(F32 F16 BF16 F64 I64 I32 U8 are)",
             name, ds);
      return DG_STATUS_ERR_UNSUPPORTED;
    }
    dg_set_error(err, errlen, "safetensors: tensor '%s' has unknown dtype '%.32s'", name, ds);
    return DG_STATUS_ERR_FORMAT;
  }
  if (!json_is_array(js)) {
    dg_set_error(err, errlen, "safetensors: tensor '%s': shape is not an array", name);
    return DG_STATUS_ERR_FORMAT;
  }
  size_t nd = json_array_size(js);
  if (nd > DG_MAX_DIMS) {
    dg_set_error(err, errlen, "safetensors: tensor '%s' has %zu dims; at most %d are supported", name,
           nd, DG_MAX_DIMS);
    return DG_STATUS_ERR_UNSUPPORTED;
  }
  uint64_t nbytes = esize;
  t->dtype = dt;
  t->ndim = (int)nd;
  for (int d = 0; d < DG_MAX_DIMS; d++) t->shape[d] = 1;
  for (size_t d = 0; d < nd; d++) {
    uint64_t s;
    if (st_get_u64(json_array_get(js, d), &s) != 0) {
      dg_set_error(err, errlen, "safetensors: tensor '%s': shape[%zu] is not a non-negative integer",
             name, d);
      return DG_STATUS_ERR_FORMAT;
    }
    if (s != 0 && nbytes > UINT64_MAX / s) {
      dg_set_error(err, errlen, "safetensors: tensor '%s': shape overflows", name);
      return DG_STATUS_ERR_FORMAT;
    }
    nbytes *= s;
    t->shape[d] = (int64_t)s;
  }
  if (nd == 0) t->ndim = 1; /* scalar: shape [1] */
  /* INT64_MAX bound keeps numel and nbytes representable everywhere. */
  if (nbytes > (uint64_t)INT64_MAX || nbytes > (uint64_t)SIZE_MAX) {
    dg_set_error(err, errlen, "safetensors: tensor '%s': shape overflows", name);
    return DG_STATUS_ERR_FORMAT;
  }
  uint64_t b, en;
  if (!json_is_array(jo) || json_array_size(jo) != 2 ||
      st_get_u64(json_array_get(jo, 0), &b) != 0 || st_get_u64(json_array_get(jo, 1), &en) != 0) {
    dg_set_error(err, errlen,
           "safetensors: tensor '%s': data_offsets is not [begin, end] of non-negative integers",
           name);
    return DG_STATUS_ERR_FORMAT;
  }
  if (en < b || en - b != nbytes) {
    dg_set_error(err, errlen,
           "safetensors: tensor '%s': data_offsets [%llu, %llu) do not hold %llu bytes", name,
           (unsigned long long)b, (unsigned long long)en, (unsigned long long)nbytes);
    return DG_STATUS_ERR_FORMAT;
  }
  if (en > data_size) {
    dg_set_error(err, errlen,
           "safetensors: tensor '%s': data_offsets [%llu, %llu) past the data area (%llu bytes)",
           name, (unsigned long long)b, (unsigned long long)en, (unsigned long long)data_size);
    return DG_STATUS_ERR_FORMAT;
  }
  t->data = (void *)(uintptr_t)(data + b); /* read-only mapping: never written */
  span->begin = b;
  span->end = en;
  return DG_STATUS_OK;
}

static dg_status st_parse_header(dg_safetensors *st, char *err, size_t errlen) {
  const uint8_t *p = st->map;
  size_t size = st->map_size;
  if (size < 8) {
    dg_set_error(err, errlen, "safetensors: file too short (%zu bytes)", size);
    return DG_STATUS_ERR_FORMAT;
  }
  uint64_t hlen = 0;
  for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | p[i];
  if (hlen > DG__ST_MAX_HEADER) {
    dg_set_error(err, errlen, "safetensors: header length %llu exceeds the 100 MiB limit",
           (unsigned long long)hlen);
    return DG_STATUS_ERR_FORMAT;
  }
  if (hlen > size - 8) {
    dg_set_error(err, errlen, "safetensors: header length %llu past the end of the file (%zu bytes)",
           (unsigned long long)hlen, size);
    return DG_STATUS_ERR_FORMAT;
  }
  if (hlen < 2) {
    dg_set_error(err, errlen, "safetensors: header too short");
    return DG_STATUS_ERR_FORMAT;
  }
  const uint8_t *data = p + 8 + hlen;
  uint64_t data_size = size - 8 - hlen;

  json_error_t jerr;
  json_t *root = json_loadb((const char *)p + 8, (size_t)hlen, JSON_REJECT_DUPLICATES, &jerr);
  if (!root) {
    dg_set_error(err, errlen, "safetensors: header is not valid JSON: %s (byte %d)", jerr.text,
           jerr.position);
    return DG_STATUS_ERR_FORMAT;
  }
  dg_status rc = DG_STATUS_OK;
  st_span *spans = NULL;
  if (!json_is_object(root)) {
    dg_set_error(err, errlen, "safetensors: header is not a JSON object");
    rc = DG_STATUS_ERR_FORMAT;
    goto done;
  }

  size_t nkeys = json_object_size(root), names_len = 0;
  const char *k;
  json_t *v;
  json_object_foreach(root, k, v) {
    if (strcmp(k, "__metadata__") != 0) names_len += strlen(k) + 1;
  }
  st->tensors = calloc(nkeys ? nkeys : 1, sizeof(dg_tensor));
  st->names = malloc(names_len ? names_len : 1);
  spans = malloc((nkeys ? nkeys : 1) * sizeof(st_span));
  if (!st->tensors || !st->names || !spans) {
    rc = DG_STATUS_ERR_NOMEM;
    goto done;
  }
  size_t npos = 0;
  json_object_foreach(root, k, v) {
    if (strcmp(k, "__metadata__") == 0) {
      rc = st_parse_metadata(st, v, err, errlen);
      if (rc != DG_STATUS_OK) goto done;
      continue;
    }
    dg_tensor *t = &st->tensors[st->n];
    rc = st_parse_entry(k, v, data, data_size, t, &spans[st->n], err, errlen);
    if (rc != DG_STATUS_OK) goto done;
    size_t kl = strlen(k) + 1;
    memcpy(st->names + npos, k, kl);
    t->name = st->names + npos;
    npos += kl;
    spans[st->n].index = st->n;
    st->n++;
  }
  if (st->n > UINT32_MAX - 1) {
    dg_set_error(err, errlen, "safetensors: too many tensors");
    rc = DG_STATUS_ERR_FORMAT;
    goto done;
  }

  /* Overlaps: sort non-empty spans by begin; each must end before the next. */
  size_t ns = 0;
  for (size_t i = 0; i < st->n; i++)
    if (spans[i].end > spans[i].begin) spans[ns++] = spans[i];
  qsort(spans, ns, sizeof(st_span), st_span_cmp);
  for (size_t i = 1; i < ns; i++) {
    if (spans[i].begin < spans[i - 1].end) {
      dg_set_error(err, errlen, "safetensors: tensors '%s' and '%s' overlap",
             st->tensors[spans[i - 1].index].name, st->tensors[spans[i].index].name);
      rc = DG_STATUS_ERR_FORMAT;
      goto done;
    }
  }

  /* Name index. */
  st->nslots = 16;
  while (st->nslots < 2 * st->n) st->nslots *= 2;
  st->slots = calloc(st->nslots, sizeof(uint32_t));
  if (!st->slots) {
    rc = DG_STATUS_ERR_NOMEM;
    goto done;
  }
  for (size_t i = 0; i < st->n; i++) {
    size_t m = st->nslots - 1, j = (size_t)st_hash(st->tensors[i].name) & m;
    while (st->slots[j]) j = (j + 1) & m;
    st->slots[j] = (uint32_t)(i + 1);
  }
done:
  free(spans);
  json_decref(root);
  if (rc == DG_STATUS_ERR_NOMEM) dg_set_error(err, errlen, "safetensors: out of memory");
  return rc;
}

dg_status dg_safetensors_parse(const void *data, size_t size, dg_safetensors **out, char *err,
                               size_t errlen) {
  if (!out || (!data && size)) return DG_STATUS_ERR_INVALID;
  *out = NULL;
  dg_safetensors *st = calloc(1, sizeof *st);
  if (!st) return DG_STATUS_ERR_NOMEM;
  st->map = data;
  st->map_size = size;
  dg_status rc = st_parse_header(st, err, errlen);
  if (rc != DG_STATUS_OK) {
    st_free_parts(st);
    free(st);
    return rc;
  }
  *out = st;
  return DG_STATUS_OK;
}

dg_status dg_safetensors_open(const char *path, dg_safetensors **out, char *err, size_t errlen) {
  if (!out || !path) return DG_STATUS_ERR_INVALID;
  *out = NULL;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    dg_set_error(err, errlen, "cannot open %s: %s", path, strerror(errno));
    return DG_STATUS_ERR_IO;
  }
  struct stat sb;
  if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
    dg_set_error(err, errlen, "cannot read %s: not a regular file", path);
    close(fd);
    return DG_STATUS_ERR_IO;
  }
  size_t size = (size_t)sb.st_size;
  if (size < 8) {
    close(fd);
    dg_set_error(err, errlen, "%s: safetensors file too short (%zu bytes)", path, size);
    return DG_STATUS_ERR_FORMAT;
  }
  void *m = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
  int e = errno;
  close(fd);
  if (m == MAP_FAILED) {
    dg_set_error(err, errlen, "cannot map %s: %s", path, strerror(e));
    return DG_STATUS_ERR_IO;
  }
  char msg[512] = "";
  dg_safetensors *st = NULL;
  dg_status rc = dg_safetensors_parse(m, size, &st, msg, sizeof msg);
  if (rc != DG_STATUS_OK) {
    munmap(m, size);
    dg_set_error(err, errlen, "%s: %s", path, msg);
    return rc;
  }
  st->mapped = 1;
  *out = st;
  return DG_STATUS_OK;
}

void dg_safetensors_close(dg_safetensors *st) {
  if (!st) return;
  if (st->mapped) munmap((void *)(uintptr_t)st->map, st->map_size);
  st_free_parts(st);
  free(st);
}

size_t dg_safetensors_count(const dg_safetensors *st) { return st ? st->n : 0; }

const dg_tensor *dg_safetensors_at(const dg_safetensors *st, size_t i) {
  if (!st || i >= st->n) return NULL;
  return &st->tensors[i];
}

const dg_tensor *dg_safetensors_find(const dg_safetensors *st, const char *name) {
  if (!st || !name || st->n == 0) return NULL;
  size_t m = st->nslots - 1, j = (size_t)st_hash(name) & m;
  while (st->slots[j]) {
    const dg_tensor *t = &st->tensors[st->slots[j] - 1];
    if (strcmp(t->name, name) == 0) return t;
    j = (j + 1) & m;
  }
  return NULL;
}

const char *dg_safetensors_metadata(const dg_safetensors *st, const char *key) {
  if (!st || !key) return NULL;
  for (size_t i = 0; i < st->nmeta; i++)
    if (strcmp(st->meta[2 * i], key) == 0) return st->meta[2 * i + 1];
  return NULL;
}

/* ---- writer -------------------------------------------------------------- */

typedef struct st_order {
  size_t esize, index;
} st_order;

static int st_order_cmp(const void *a, const void *b) {
  const st_order *x = a, *y = b;
  if (x->esize != y->esize) return x->esize > y->esize ? -1 : 1; /* larger first */
  return x->index < y->index ? -1 : (x->index > y->index);       /* stable */
}

static dg_status st_write_all(FILE *f, const void *p, size_t n) {
  return (n == 0 || fwrite(p, 1, n, f) == n) ? DG_STATUS_OK : DG_STATUS_ERR_IO;
}

dg_status dg_safetensors_write(const char *path, const dg_tensor *const *tensors, size_t n,
                               const char *metadata_json, char *err, size_t errlen) {
  if (!path || (!tensors && n)) return DG_STATUS_ERR_INVALID;
  dg_status rc = DG_STATUS_OK;
  json_t *root = json_object();
  st_order *order = calloc(n ? n : 1, sizeof *order);
  uint64_t *sizes = calloc(n ? n : 1, sizeof *sizes);
  char *header = NULL, *tmp = NULL;
  FILE *f = NULL;
  if (!root || !order || !sizes) {
    rc = DG_STATUS_ERR_NOMEM;
    goto done;
  }
  if (metadata_json) {
    json_error_t jerr;
    json_t *md = json_loads(metadata_json, 0, &jerr);
    if (!md || !json_is_object(md)) {
      json_decref(md);
      dg_set_error(err, errlen, "safetensors write: metadata is not a JSON object");
      rc = DG_STATUS_ERR_INVALID;
      goto done;
    }
    const char *k;
    json_t *v;
    json_object_foreach(md, k, v) {
      if (!json_is_string(v)) {
        dg_set_error(err, errlen, "safetensors write: metadata value '%s' is not a string", k);
        json_decref(md);
        rc = DG_STATUS_ERR_INVALID;
        goto done;
      }
    }
    json_object_set_new(root, "__metadata__", md);
  }
  for (size_t i = 0; i < n; i++) {
    const dg_tensor *t = tensors[i];
    size_t es;
    if (!t || !t->name || !st_dtype_str(t->dtype, &es) || t->ndim < 0 || t->ndim > DG_MAX_DIMS ||
        strcmp(t->name, "__metadata__") == 0) {
      dg_set_error(err, errlen, "safetensors write: tensor %zu is invalid (name, dtype or ndim)", i);
      rc = DG_STATUS_ERR_INVALID;
      goto done;
    }
    uint64_t nb = es;
    for (int d = 0; d < t->ndim; d++) {
      if (t->shape[d] < 0 || (t->shape[d] && nb > UINT64_MAX / (uint64_t)t->shape[d])) {
        dg_set_error(err, errlen, "safetensors write: tensor '%s' has a bad shape", t->name);
        rc = DG_STATUS_ERR_INVALID;
        goto done;
      }
      nb *= (uint64_t)t->shape[d];
    }
    if (nb && !t->data) {
      dg_set_error(err, errlen, "safetensors write: tensor '%s' has no data", t->name);
      rc = DG_STATUS_ERR_INVALID;
      goto done;
    }
    sizes[i] = nb;
    order[i].esize = es;
    order[i].index = i;
  }
  /* Data sorted by element size (descending): every tensor is aligned to its
   * element size (the data area starts at a multiple of 8) and contiguous. */
  qsort(order, n, sizeof *order, st_order_cmp);
  uint64_t off = 0;
  for (size_t k = 0; k < n; k++) {
    size_t i = order[k].index;
    const dg_tensor *t = tensors[i];
    json_t *e = json_object(), *shape = json_array(), *offs = json_array();
    if (!e || !shape || !offs) {
      json_decref(e);
      json_decref(shape);
      json_decref(offs);
      rc = DG_STATUS_ERR_NOMEM;
      goto done;
    }
    for (int d = 0; d < t->ndim; d++) json_array_append_new(shape, json_integer(t->shape[d]));
    json_array_append_new(offs, json_integer((json_int_t)off));
    json_array_append_new(offs, json_integer((json_int_t)(off + sizes[i])));
    json_object_set_new(e, "dtype", json_string(st_dtype_str(t->dtype, NULL)));
    json_object_set_new(e, "shape", shape);
    json_object_set_new(e, "data_offsets", offs);
    if (json_object_get(root, t->name)) {
      json_decref(e);
      dg_set_error(err, errlen, "safetensors write: duplicate tensor name '%s'", t->name);
      rc = DG_STATUS_ERR_INVALID;
      goto done;
    }
    if (json_object_set_new(root, t->name, e) != 0) {
      dg_set_error(err, errlen, "safetensors write: bad tensor name (tensor %zu)", i);
      rc = DG_STATUS_ERR_INVALID;
      goto done;
    }
    off += sizes[i];
  }
  header = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
  if (!header) {
    rc = DG_STATUS_ERR_NOMEM;
    goto done;
  }
  size_t hl = strlen(header), padded = (hl + 7) & ~(size_t)7;
  uint8_t lenbuf[8];
  for (int i = 0; i < 8; i++) lenbuf[i] = (uint8_t)((uint64_t)padded >> (8 * i));

  size_t pl = strlen(path);
  tmp = malloc(pl + 16);
  if (!tmp) {
    rc = DG_STATUS_ERR_NOMEM;
    goto done;
  }
  snprintf(tmp, pl + 16, "%s.tmp%ld", path, (long)getpid());
  f = fopen(tmp, "wb");
  if (!f) {
    dg_set_error(err, errlen, "cannot create %s: %s", tmp, strerror(errno));
    rc = DG_STATUS_ERR_IO;
    goto done;
  }
  static const char spaces[8] = "        ";
  rc = st_write_all(f, lenbuf, 8);
  if (rc == DG_STATUS_OK) rc = st_write_all(f, header, hl);
  if (rc == DG_STATUS_OK) rc = st_write_all(f, spaces, padded - hl);
  for (size_t k = 0; k < n && rc == DG_STATUS_OK; k++) {
    size_t i = order[k].index;
    rc = st_write_all(f, tensors[i]->data, (size_t)sizes[i]);
  }
  if (fclose(f) != 0 && rc == DG_STATUS_OK) rc = DG_STATUS_ERR_IO;
  f = NULL;
  if (rc == DG_STATUS_OK && rename(tmp, path) != 0) rc = DG_STATUS_ERR_IO;
  if (rc != DG_STATUS_OK) {
    dg_set_error(err, errlen, "cannot write %s: %s", path, strerror(errno));
    remove(tmp);
  }
done:
  if (rc == DG_STATUS_ERR_NOMEM) dg_set_error(err, errlen, "safetensors write: out of memory");
  free(tmp);
  free(header);
  free(order);
  free(sizes);
  json_decref(root);
  return rc;
}
