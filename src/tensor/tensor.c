/* Dtypes, exact half-precision conversions, tensor headers and the arena. */
#include "tensor/tensor.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- Dtypes -------------------------------------------------------------- */

size_t dg_dtype_size(dg_dtype t) {
  switch (t) {
    case DG_DTYPE_F32: return 4;
    case DG_DTYPE_F16: return 2;
    case DG_DTYPE_BF16: return 2;
    case DG_DTYPE_F64: return 8;
    case DG_DTYPE_I64: return 8;
    case DG_DTYPE_I32: return 4;
    case DG_DTYPE_U8: return 1;
    default: return 0;
  }
}

const char *dg_dtype_name(dg_dtype t) {
  switch (t) {
    case DG_DTYPE_F32: return "F32";
    case DG_DTYPE_F16: return "F16";
    case DG_DTYPE_BF16: return "BF16";
    case DG_DTYPE_F64: return "F64";
    case DG_DTYPE_I64: return "I64";
    case DG_DTYPE_I32: return "I32";
    case DG_DTYPE_U8: return "U8";
    default: return "?";
  }
}

static uint32_t f32_bits(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  return u;
}

static float bits_f32(uint32_t u) {
  float f;
  memcpy(&f, &u, 4);
  return f;
}

float dg_f16_to_f32(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
  uint32_t e = (h >> 10) & 0x1fu;
  uint32_t m = h & 0x3ffu;
  if (e == 0) {
    /* zero or subnormal: m * 2^-24, exact in f32 */
    float v = (float)m * (1.0f / 16777216.0f);
    return sign ? -v : v;
  }
  if (e == 31) return bits_f32(sign | 0x7f800000u | (m << 13)); /* Inf / NaN (payload kept) */
  return bits_f32(sign | ((e + 112u) << 23) | (m << 13));
}

uint16_t dg_f32_to_f16(float f) {
  uint32_t x = f32_bits(f);
  uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
  uint32_t ax = x & 0x7fffffffu;
  if (ax >= 0x7f800000u) {
    if (ax > 0x7f800000u) /* NaN: keep it quiet and keep the top payload bits */
      return (uint16_t)(sign | 0x7e00u | ((ax >> 13) & 0x3ffu));
    return (uint16_t)(sign | 0x7c00u);
  }
  if (ax < 0x38800000u) { /* below 2^-14: f16 subnormal or zero */
    if (ax <= 0x33000000u) return sign; /* <= 2^-25 rounds (ties to even) to zero */
    uint32_t exp = ax >> 23;            /* 102..112 */
    uint32_t m = (ax & 0x7fffffu) | 0x800000u;
    uint32_t s = 126u - exp;            /* 14..24 */
    uint32_t q = m >> s;
    uint32_t rem = m & ((1u << s) - 1u);
    uint32_t half = 1u << (s - 1u);
    if (rem > half || (rem == half && (q & 1u))) q++;
    return (uint16_t)(sign | q);
  }
  uint32_t base = ax - 0x38000000u; /* rebias 127 -> 15 */
  uint32_t q = base >> 13;
  uint32_t rem = base & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (q & 1u))) q++;
  if (q >= 0x7c00u) q = 0x7c00u; /* overflow to Inf */
  return (uint16_t)(sign | q);
}

float dg_bf16_to_f32(uint16_t h) { return bits_f32((uint32_t)h << 16); }

uint16_t dg_f32_to_bf16(float f) {
  uint32_t x = f32_bits(f);
  if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40u); /* quiet NaN */
  x += 0x7fffu + ((x >> 16) & 1u);
  return (uint16_t)(x >> 16);
}

float dg_load_f32(const void *data, dg_dtype t, int64_t i) {
  switch (t) {
    case DG_DTYPE_F32: return ((const float *)data)[i];
    case DG_DTYPE_F16: return dg_f16_to_f32(((const uint16_t *)data)[i]);
    case DG_DTYPE_BF16: return dg_bf16_to_f32(((const uint16_t *)data)[i]);
    case DG_DTYPE_F64: return (float)((const double *)data)[i];
    case DG_DTYPE_I64: return (float)((const int64_t *)data)[i];
    case DG_DTYPE_I32: return (float)((const int32_t *)data)[i];
    case DG_DTYPE_U8: return (float)((const uint8_t *)data)[i];
    default: return 0.0f;
  }
}

/* ---- Tensor headers ------------------------------------------------------ */

int64_t dg_tensor_numel(const dg_tensor *t) {
  if (!t || t->ndim < 1 || t->ndim > DG_MAX_DIMS) return 0;
  int64_t n = 1;
  for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
  return n;
}

size_t dg_tensor_nbytes(const dg_tensor *t) {
  return t ? (size_t)dg_tensor_numel(t) * dg_dtype_size(t->dtype) : 0;
}

dg_tensor dg_tensor_make(dg_dtype dtype, int ndim, const int64_t *shape, void *data) {
  dg_tensor t;
  memset(&t, 0, sizeof t);
  t.dtype = dtype;
  if (ndim < 1) ndim = 1;
  if (ndim > DG_MAX_DIMS) ndim = DG_MAX_DIMS;
  t.ndim = ndim;
  for (int i = 0; i < DG_MAX_DIMS; i++) t.shape[i] = (i < ndim && shape) ? shape[i] : 1;
  t.data = data;
  t.name = NULL;
  return t;
}

dg_status dg_tensor_reshape(const dg_tensor *t, int ndim, const int64_t *shape, dg_tensor *out) {
  if (!t || !shape || !out || ndim < 1 || ndim > DG_MAX_DIMS) return DG_STATUS_ERR_INVALID;
  int64_t n = 1;
  for (int i = 0; i < ndim; i++) {
    if (shape[i] < 0) return DG_STATUS_ERR_SHAPE;
    n *= shape[i];
  }
  if (n != dg_tensor_numel(t)) return DG_STATUS_ERR_SHAPE;
  const char *name = t->name;
  *out = dg_tensor_make(t->dtype, ndim, shape, t->data);
  out->name = name;
  return DG_STATUS_OK;
}

dg_tensor dg_tensor_narrow0(const dg_tensor *t, int64_t start, int64_t count) {
  dg_tensor r = *t;
  int64_t row = 1;
  for (int i = 1; i < t->ndim; i++) row *= t->shape[i];
  if (start < 0) start = 0;
  if (start > t->shape[0]) start = t->shape[0];
  if (count < 0 || count > t->shape[0] - start) count = t->shape[0] - start;
  r.shape[0] = count;
  if (t->data) r.data = (char *)t->data + (size_t)(start * row) * dg_dtype_size(t->dtype);
  return r;
}

const char *dg_tensor_describe(const dg_tensor *t, char *buf, size_t n) {
  if (!buf || n == 0) return buf;
  if (!t) {
    snprintf(buf, n, "(null)");
    return buf;
  }
  size_t off = 0;
  int w = snprintf(buf, n, "(");
  if (w > 0) off = (size_t)w < n ? (size_t)w : n - 1;
  for (int i = 0; i < t->ndim && i < DG_MAX_DIMS; i++) {
    w = snprintf(buf + off, n - off, "%s%lld", i ? ", " : "", (long long)t->shape[i]);
    if (w > 0) off += (size_t)w < n - off ? (size_t)w : n - off - 1;
  }
  snprintf(buf + off, n - off, ") %s", dg_dtype_name(t->dtype));
  return buf;
}

/* ---- Arena --------------------------------------------------------------- */

#define ARENA_ALIGN 64u

typedef struct arena_block {
  struct arena_block *next;
  size_t cap;  /* usable bytes after the header */
  size_t base; /* sum of the capacities of the blocks before this one */
  size_t used;
} arena_block;

/* header rounded up so that data starts 64-byte aligned */
#define BLOCK_HDR (((sizeof(arena_block) + ARENA_ALIGN - 1) / ARENA_ALIGN) * ARENA_ALIGN)

struct dg_arena {
  arena_block *first;
  arena_block *cur;
  size_t block_bytes;
  size_t peak;
};

static arena_block *block_new(size_t cap, size_t base) {
  void *p = NULL;
  if (cap > SIZE_MAX - BLOCK_HDR) return NULL;
  if (posix_memalign(&p, ARENA_ALIGN, BLOCK_HDR + cap) != 0) return NULL;
  arena_block *b = p;
  b->next = NULL;
  b->cap = cap;
  b->base = base;
  b->used = 0;
  return b;
}

static void blocks_free(arena_block *b) {
  while (b) {
    arena_block *n = b->next;
    free(b);
    b = n;
  }
}

dg_arena *dg_arena_new(size_t block_bytes) {
  dg_arena *a = calloc(1, sizeof *a);
  if (!a) return NULL;
  if (block_bytes < 4096) block_bytes = 4096;
  block_bytes = (block_bytes + ARENA_ALIGN - 1) / ARENA_ALIGN * ARENA_ALIGN;
  a->block_bytes = block_bytes;
  a->first = a->cur = block_new(block_bytes, 0);
  if (!a->first) {
    free(a);
    return NULL;
  }
  return a;
}

void dg_arena_free(dg_arena *a) {
  if (!a) return;
  blocks_free(a->first);
  free(a);
}

void *dg_arena_alloc(dg_arena *a, size_t bytes) {
  if (!a) return NULL;
  if (bytes > SIZE_MAX / 2) return NULL;
  size_t need = (bytes + ARENA_ALIGN - 1) / ARENA_ALIGN * ARENA_ALIGN;
  arena_block *b = a->cur;
  if (b->cap - b->used < need) {
    /* Blocks after cur are free (allocation is a stack); reuse the next one
     * if it is big enough, otherwise drop the tail and append a new block. */
    arena_block *n = b->next;
    if (n && n->cap >= need) {
      n->used = 0;
      b = n;
    } else {
      size_t cap = need > a->block_bytes ? need : a->block_bytes;
      arena_block *nb = block_new(cap, b->base + b->cap);
      if (!nb) return NULL;
      blocks_free(n);
      b->next = nb;
      b = nb;
    }
    a->cur = b;
  }
  void *p = (char *)b + BLOCK_HDR + b->used;
  b->used += need;
  size_t in_use = b->base + b->used;
  if (in_use > a->peak) a->peak = in_use;
  return p;
}

dg_tensor *dg_arena_tensor(dg_arena *a, dg_dtype dtype, int ndim, const int64_t *shape) {
  if (!a || !shape || ndim < 1 || ndim > DG_MAX_DIMS || dg_dtype_size(dtype) == 0) return NULL;
  size_t n = 1;
  for (int i = 0; i < ndim; i++) {
    if (shape[i] < 0) return NULL;
    if (shape[i] > 0 && n > (SIZE_MAX / 4) / (size_t)shape[i]) return NULL;
    n *= (size_t)shape[i];
  }
  if (n > (SIZE_MAX / 4) / dg_dtype_size(dtype)) return NULL;
  dg_tensor *t = dg_arena_alloc(a, sizeof *t);
  if (!t) return NULL;
  void *data = dg_arena_alloc(a, n * dg_dtype_size(dtype));
  if (!data) return NULL;
  *t = dg_tensor_make(dtype, ndim, shape, data);
  return t;
}

dg_arena_mark dg_arena_get_mark(const dg_arena *a) {
  dg_arena_mark m = {NULL, 0};
  if (!a) return m;
  m.block = a->cur;
  m.used = a->cur->used;
  return m;
}

void dg_arena_reset(dg_arena *a, dg_arena_mark m) {
  if (!a) return;
  arena_block *b = m.block ? (arena_block *)m.block : a->first;
  size_t used = m.block ? m.used : 0;
  /* the mark must name a block of this arena */
  arena_block *it = a->first;
  while (it && it != b) it = it->next;
  if (!it) return;
  a->cur = b;
  b->used = used <= b->cap ? used : b->cap;
}

size_t dg_arena_peak_bytes(const dg_arena *a) { return a ? a->peak : 0; }
