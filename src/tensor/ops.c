/* Public ops: argument, shape and dtype checks, then dispatch to the
 * reference kernels (DG_ISA_REF) or the fast ones.  Nothing here touches
 * tensor data except dg_embedding's id range check. */
#include "tensor/ops.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "tensor/kernels.h"
#include "tensor/ops_internal.h"
#include "tensor/conv_amx.h"
#include "tensor/winograd.h"

#define CHECK_OK(expr)                       \
  do {                                       \
    dg_status s__ = (expr);                  \
    if (s__ != DG_STATUS_OK) return s__;     \
  } while (0)

/* A tensor header we can trust: sane ndim and sizes, data when non-empty. */
static dg_status valid(const dg_tensor *t) {
  if (!t) return DG_STATUS_ERR_INVALID;
  if (t->ndim < 1 || t->ndim > DG_MAX_DIMS) return DG_STATUS_ERR_SHAPE;
  if ((int)t->dtype < 0 || t->dtype >= DG_DTYPE_COUNT_) return DG_STATUS_ERR_INVALID;
  int64_t n = 1;
  for (int i = 0; i < t->ndim; i++) {
    if (t->shape[i] < 0) return DG_STATUS_ERR_SHAPE;
    if (t->shape[i] > 0 && n > INT64_MAX / 16 / t->shape[i]) return DG_STATUS_ERR_SHAPE;
    n *= t->shape[i];
  }
  if (n > 0 && !t->data) return DG_STATUS_ERR_INVALID;
  return DG_STATUS_OK;
}

static dg_status valid_f32(const dg_tensor *t) {
  CHECK_OK(valid(t));
  return t->dtype == DG_DTYPE_F32 ? DG_STATUS_OK : DG_STATUS_ERR_INVALID;
}

static int is_float(dg_dtype d) {
  return d == DG_DTYPE_F32 || d == DG_DTYPE_F16 || d == DG_DTYPE_BF16;
}

static dg_status valid_float(const dg_tensor *t) {
  CHECK_OK(valid(t));
  return is_float(t->dtype) ? DG_STATUS_OK : DG_STATUS_ERR_INVALID;
}

/* Optional weight vector of exactly c elements (any float dtype). */
static dg_status valid_vec(const dg_tensor *t, int64_t c) {
  if (!t) return DG_STATUS_OK;
  CHECK_OK(valid_float(t));
  return dg_tensor_numel(t) == c ? DG_STATUS_OK : DG_STATUS_ERR_SHAPE;
}

static int same_shape(const dg_tensor *a, const dg_tensor *b) {
  if (a->ndim != b->ndim) return 0;
  for (int i = 0; i < a->ndim; i++)
    if (a->shape[i] != b->shape[i]) return 0;
  return 1;
}

static int is_ref(const dg_engine *e) { return dg_engine_isa(e) == DG_ISA_REF; }

/* ---- GEMM-class ---------------------------------------------------------- */

static dg_status conv2d_impl(dg_engine *e, dg_tensor *y, const dg_tensor *x, const dg_tensor *w, const dg_tensor *b,
                             int stride, int pad) {
  if (!e) return DG_STATUS_ERR_INVALID;
  CHECK_OK(valid_f32(y));
  CHECK_OK(valid_f32(x));
  CHECK_OK(valid_float(w));
  if (stride < 1 || pad < 0) return DG_STATUS_ERR_INVALID;
  if (x->ndim != 4 || w->ndim != 4 || y->ndim != 4) return DG_STATUS_ERR_SHAPE;
  int64_t n = x->shape[0], ci = x->shape[1], h = x->shape[2], wd = x->shape[3];
  int64_t co = w->shape[0], kh = w->shape[2], kw = w->shape[3];
  if (w->shape[1] != ci || kh < 1 || kw < 1) return DG_STATUS_ERR_SHAPE;
  CHECK_OK(valid_vec(b, co));
  if (h + 2 * pad < kh || wd + 2 * pad < kw) return DG_STATUS_ERR_SHAPE;
  int64_t ho = (h + 2 * pad - kh) / stride + 1, wo = (wd + 2 * pad - kw) / stride + 1;
  if (y->shape[0] != n || y->shape[1] != co || y->shape[2] != ho || y->shape[3] != wo)
    return DG_STATUS_ERR_SHAPE;
  if (y->data == x->data && dg_tensor_numel(y) > 0) return DG_STATUS_ERR_INVALID;
  if (dg_tensor_numel(y) == 0) return DG_STATUS_OK;
  return is_ref(e) ? dg__conv2d_ref(e, y, x, w, b, stride, pad)
                   : dg__conv2d_fast(e, y, x, w, b, stride, pad);
}

static dg_status linear_impl(dg_engine *e, dg_tensor *y, const dg_tensor *x, const dg_tensor *w, const dg_tensor *b) {
  if (!e) return DG_STATUS_ERR_INVALID;
  CHECK_OK(valid_f32(y));
  CHECK_OK(valid_f32(x));
  CHECK_OK(valid_float(w));
  int64_t k = x->shape[x->ndim - 1];
  if (w->ndim == 4) {
    if (w->shape[2] != 1 || w->shape[3] != 1) return DG_STATUS_ERR_SHAPE;
  } else if (w->ndim != 2) {
    return DG_STATUS_ERR_SHAPE;
  }
  int64_t nout = w->shape[0];
  if (w->shape[1] != k) return DG_STATUS_ERR_SHAPE;
  CHECK_OK(valid_vec(b, nout));
  if (y->ndim != x->ndim || y->shape[y->ndim - 1] != nout) return DG_STATUS_ERR_SHAPE;
  for (int i = 0; i < x->ndim - 1; i++)
    if (y->shape[i] != x->shape[i]) return DG_STATUS_ERR_SHAPE;
  if (y->data == x->data && dg_tensor_numel(y) > 0) return DG_STATUS_ERR_INVALID;
  if (dg_tensor_numel(y) == 0) return DG_STATUS_OK;
  return is_ref(e) ? dg__linear_ref(e, y, x, w, b) : dg__linear_fast(e, y, x, w, b);
}

static dg_status matmul_impl(dg_engine *e, dg_tensor *y, const dg_tensor *a, const dg_tensor *b, int transpose_b,
                             float alpha) {
  if (!e) return DG_STATUS_ERR_INVALID;
  CHECK_OK(valid_f32(y));
  CHECK_OK(valid_f32(a));
  CHECK_OK(valid_f32(b));
  if (a->ndim < 2 || a->ndim != b->ndim || a->ndim != y->ndim) return DG_STATUS_ERR_SHAPE;
  int nd = a->ndim;
  for (int i = 0; i < nd - 2; i++)
    if (b->shape[i] != a->shape[i] || y->shape[i] != a->shape[i]) return DG_STATUS_ERR_SHAPE;
  int64_t m = a->shape[nd - 2], k = a->shape[nd - 1];
  int64_t bk = transpose_b ? b->shape[nd - 1] : b->shape[nd - 2];
  int64_t nn = transpose_b ? b->shape[nd - 2] : b->shape[nd - 1];
  if (bk != k || y->shape[nd - 2] != m || y->shape[nd - 1] != nn) return DG_STATUS_ERR_SHAPE;
  if (dg_tensor_numel(y) > 0 && (y->data == a->data || y->data == b->data)) return DG_STATUS_ERR_INVALID;
  if (dg_tensor_numel(y) == 0) return DG_STATUS_OK;
  return is_ref(e) ? dg__matmul_ref(e, y, a, b, transpose_b, alpha)
                   : dg__matmul_fast(e, y, a, b, transpose_b, alpha);
}

static dg_status attention_impl(dg_engine *e, dg_tensor *y, const dg_tensor *q, const dg_tensor *k, const dg_tensor *v,
                                int n_heads, int causal, float scale) {
  if (!e) return DG_STATUS_ERR_INVALID;
  CHECK_OK(valid_f32(y));
  CHECK_OK(valid_f32(q));
  CHECK_OK(valid_f32(k));
  CHECK_OK(valid_f32(v));
  if (n_heads < 1) return DG_STATUS_ERR_INVALID;
  if (q->ndim != 3 || k->ndim != 3 || v->ndim != 3 || y->ndim != 3) return DG_STATUS_ERR_SHAPE;
  int64_t bq = q->shape[0], c = q->shape[2];
  if (c % n_heads != 0 || c == 0) return DG_STATUS_ERR_SHAPE;
  if (k->shape[0] != bq || v->shape[0] != bq || k->shape[2] != c || v->shape[2] != c)
    return DG_STATUS_ERR_SHAPE;
  if (v->shape[1] != k->shape[1] || !same_shape(y, q)) return DG_STATUS_ERR_SHAPE;
  if (k->shape[1] == 0 && q->shape[1] > 0) return DG_STATUS_ERR_SHAPE;
  if (dg_tensor_numel(y) > 0 && (y->data == q->data || y->data == k->data || y->data == v->data))
    return DG_STATUS_ERR_INVALID;
  if (dg_tensor_numel(y) == 0) return DG_STATUS_OK;
  return is_ref(e) ? dg__attention_ref(e, y, q, k, v, n_heads, causal, scale)
                   : dg__attention_fast(e, y, q, k, v, n_heads, causal, scale);
}

/* ---- Normalisation ------------------------------------------------------- */

static dg_status group_norm_impl(dg_engine *e, dg_tensor *y, const dg_tensor *x, int n_groups, float eps,
                                 const dg_tensor *gamma, const dg_tensor *beta, int silu) {
  if (!e) return DG_STATUS_ERR_INVALID;
  CHECK_OK(valid_f32(y));
  CHECK_OK(valid_f32(x));
  if (x->ndim < 2 || !same_shape(x, y)) return DG_STATUS_ERR_SHAPE;
  if (n_groups < 1 || !(eps >= 0.0f)) return DG_STATUS_ERR_INVALID;
  int64_t c = x->shape[1];
  if (c % n_groups != 0) return DG_STATUS_ERR_SHAPE;
  CHECK_OK(valid_vec(gamma, c));
  CHECK_OK(valid_vec(beta, c));
  if (dg_tensor_numel(x) == 0) return DG_STATUS_OK;
  dg__gn_args a;
  a.y = y->data;
  a.x = x->data;
  a.n = x->shape[0];
  a.c = c;
  a.s = dg_tensor_numel(x) / (a.n * c);
  a.g = n_groups;
  a.eps = eps;
  a.gamma = gamma;
  a.beta = beta;
  a.silu = silu != 0;
  if (is_ref(e))
    dg__group_norm_ref(e, &a);
  else
    dg__group_norm_fast(e, &a);
  return DG_STATUS_OK;
}

static dg_status layer_norm_impl(dg_engine *e, dg_tensor *y, const dg_tensor *x, float eps, const dg_tensor *gamma,
                                 const dg_tensor *beta) {
  if (!e) return DG_STATUS_ERR_INVALID;
  CHECK_OK(valid_f32(y));
  CHECK_OK(valid_f32(x));
  if (!same_shape(x, y)) return DG_STATUS_ERR_SHAPE;
  if (!(eps >= 0.0f)) return DG_STATUS_ERR_INVALID;
  int64_t c = x->shape[x->ndim - 1];
  CHECK_OK(valid_vec(gamma, c));
  CHECK_OK(valid_vec(beta, c));
  if (dg_tensor_numel(x) == 0) return DG_STATUS_OK;
  dg__ln_args a;
  a.y = y->data;
  a.x = x->data;
  a.c = c;
  a.rows = dg_tensor_numel(x) / c;
  a.eps = eps;
  a.gamma = gamma;
  a.beta = beta;
  if (is_ref(e))
    dg__layer_norm_ref(e, &a);
  else
    dg__layer_norm_fast(e, &a);
  return DG_STATUS_OK;
}

static dg_status softmax_impl(dg_engine *e, dg_tensor *y, const dg_tensor *x) {
  if (!e) return DG_STATUS_ERR_INVALID;
  CHECK_OK(valid_f32(y));
  CHECK_OK(valid_f32(x));
  if (!same_shape(x, y)) return DG_STATUS_ERR_SHAPE;
  int64_t c = x->shape[x->ndim - 1];
  if (dg_tensor_numel(x) == 0) return DG_STATUS_OK;
  int64_t rows = dg_tensor_numel(x) / c;
  if (is_ref(e))
    dg__softmax_ref(e, y->data, x->data, rows, c);
  else
    dg__softmax_fast(e, y->data, x->data, rows, c);
  return DG_STATUS_OK;
}

/* ---- Element-wise -------------------------------------------------------- */

static dg_status unary(dg_engine *e, dg__unary_op op, dg_tensor *y, const dg_tensor *x) {
  if (!e) return DG_STATUS_ERR_INVALID;
  CHECK_OK(valid_f32(y));
  CHECK_OK(valid_f32(x));
  if (!same_shape(x, y)) return DG_STATUS_ERR_SHAPE;
  int64_t n = dg_tensor_numel(x);
  if (n == 0) return DG_STATUS_OK;
  if (is_ref(e))
    dg__unary_ref(e, op, y->data, x->data, n);
  else
    dg__unary_fast(e, op, y->data, x->data, n);
  return DG_STATUS_OK;
}

static dg_status silu_impl(dg_engine *e, dg_tensor *y, const dg_tensor *x) {
  return unary(e, DG__UNARY_SILU, y, x);
}
static dg_status gelu_impl(dg_engine *e, dg_tensor *y, const dg_tensor *x) {
  return unary(e, DG__UNARY_GELU, y, x);
}
static dg_status quick_gelu_impl(dg_engine *e, dg_tensor *y, const dg_tensor *x) {
  return unary(e, DG__UNARY_QUICK_GELU, y, x);
}

static dg_status geglu_impl(dg_engine *e, dg_tensor *y, const dg_tensor *x) {
  if (!e) return DG_STATUS_ERR_INVALID;
  CHECK_OK(valid_f32(y));
  CHECK_OK(valid_f32(x));
  int nd = x->ndim;
  if (y->ndim != nd) return DG_STATUS_ERR_SHAPE;
  for (int i = 0; i < nd - 1; i++)
    if (y->shape[i] != x->shape[i]) return DG_STATUS_ERR_SHAPE;
  if (x->shape[nd - 1] % 2 != 0 || y->shape[nd - 1] * 2 != x->shape[nd - 1]) return DG_STATUS_ERR_SHAPE;
  if (dg_tensor_numel(y) == 0) return DG_STATUS_OK;
  if (y->data == x->data) return DG_STATUS_ERR_INVALID;
  int64_t n = y->shape[nd - 1], rows = dg_tensor_numel(y) / n;
  if (is_ref(e))
    dg__geglu_ref(e, y->data, x->data, rows, n);
  else
    dg__geglu_fast(e, y->data, x->data, rows, n);
  return DG_STATUS_OK;
}

static dg_status upsample_nearest2x_impl(dg_engine *e, dg_tensor *y, const dg_tensor *x) {
  if (!e) return DG_STATUS_ERR_INVALID;
  CHECK_OK(valid_f32(y));
  CHECK_OK(valid_f32(x));
  if (x->ndim != 4 || y->ndim != 4) return DG_STATUS_ERR_SHAPE;
  if (y->shape[0] != x->shape[0] || y->shape[1] != x->shape[1] || y->shape[2] != 2 * x->shape[2] ||
      y->shape[3] != 2 * x->shape[3])
    return DG_STATUS_ERR_SHAPE;
  if (dg_tensor_numel(y) == 0) return DG_STATUS_OK;
  if (y->data == x->data) return DG_STATUS_ERR_INVALID;
  int64_t planes = x->shape[0] * x->shape[1];
  if (is_ref(e))
    dg__upsample2x_ref(e, y->data, x->data, planes, x->shape[2], x->shape[3]);
  else
    dg__upsample2x_fast(e, y->data, x->data, planes, x->shape[2], x->shape[3]);
  return DG_STATUS_OK;
}

/* b's shape right-aligned against a's: leading 1s, then a's dims, then 1s. */
static dg_status broadcast_split(const dg_tensor *a, const dg_tensor *b, dg__bin_args *r) {
  int nd = a->ndim;
  if (b->ndim > nd) {
    for (int i = 0; i < b->ndim - nd; i++)
      if (b->shape[i] != 1) return DG_STATUS_ERR_SHAPE;
  }
  int64_t bs[DG_MAX_DIMS];
  for (int i = 0; i < nd; i++) {
    int j = i - (nd - b->ndim);
    bs[i] = j >= 0 ? b->shape[j] : 1;
  }
  int first = -1, last = -1;
  for (int i = 0; i < nd; i++) {
    if (bs[i] != 1 && bs[i] != a->shape[i]) return DG_STATUS_ERR_SHAPE;
    if (bs[i] != 1) {
      if (first < 0) first = i;
      last = i;
    }
  }
  r->outer = 1;
  r->nb = 1;
  r->inner = 1;
  if (first < 0) {
    r->outer = dg_tensor_numel(a);
    return DG_STATUS_OK;
  }
  for (int i = 0; i < nd; i++) {
    if (i < first)
      r->outer *= a->shape[i];
    else if (i > last)
      r->inner *= a->shape[i];
    else if (bs[i] != a->shape[i])
      return DG_STATUS_ERR_SHAPE;
    else
      r->nb *= a->shape[i];
  }
  return DG_STATUS_OK;
}

static dg_status binary(dg_engine *e, dg__binary_op op, dg_tensor *y, const dg_tensor *a, const dg_tensor *b) {
  if (!e) return DG_STATUS_ERR_INVALID;
  CHECK_OK(valid_f32(y));
  CHECK_OK(valid_f32(a));
  CHECK_OK(valid_f32(b));
  if (!same_shape(a, y)) return DG_STATUS_ERR_SHAPE;
  dg__bin_args r;
  CHECK_OK(broadcast_split(a, b, &r));
  if (dg_tensor_numel(y) == 0) return DG_STATUS_OK;
  /* y may equal a (and b when b has a's shape); partial overlap is not allowed */
  if (y->data == b->data && dg_tensor_numel(b) != dg_tensor_numel(y)) return DG_STATUS_ERR_INVALID;
  r.op = op;
  r.y = y->data;
  r.a = a->data;
  r.b = b->data;
  if (is_ref(e))
    dg__binary_ref(e, &r);
  else
    dg__binary_fast(e, &r);
  return DG_STATUS_OK;
}

static dg_status add_impl(dg_engine *e, dg_tensor *y, const dg_tensor *a, const dg_tensor *b) {
  return binary(e, DG__BINARY_ADD, y, a, b);
}
static dg_status mul_impl(dg_engine *e, dg_tensor *y, const dg_tensor *a, const dg_tensor *b) {
  return binary(e, DG__BINARY_MUL, y, a, b);
}

static dg_status scale_impl(dg_engine *e, dg_tensor *y, const dg_tensor *x, float alpha, float beta) {
  if (!e) return DG_STATUS_ERR_INVALID;
  CHECK_OK(valid_f32(y));
  CHECK_OK(valid_f32(x));
  if (!same_shape(x, y)) return DG_STATUS_ERR_SHAPE;
  int64_t n = dg_tensor_numel(x);
  if (n == 0) return DG_STATUS_OK;
  if (is_ref(e))
    dg__scale_ref(e, y->data, x->data, n, alpha, beta);
  else
    dg__scale_fast(e, y->data, x->data, n, alpha, beta);
  return DG_STATUS_OK;
}

/* ---- Layout -------------------------------------------------------------- */

static void copy_rows(dg_engine *e, const dg__copy_args *c) {
  if (c->rows == 0 || c->len == 0) return;
  if (is_ref(e))
    dg__copy_rows_ref(e, c);
  else
    dg__copy_rows_fast(e, c);
}

static dg_status concat_impl(dg_engine *e, dg_tensor *y, const dg_tensor *a, const dg_tensor *b, int dim) {
  if (!e) return DG_STATUS_ERR_INVALID;
  CHECK_OK(valid(y));
  CHECK_OK(valid(a));
  CHECK_OK(valid(b));
  if (a->dtype != y->dtype || b->dtype != y->dtype) return DG_STATUS_ERR_INVALID;
  int nd = y->ndim;
  if (a->ndim != nd || b->ndim != nd) return DG_STATUS_ERR_SHAPE;
  if (dim < 0) dim += nd;
  if (dim < 0 || dim >= nd) return DG_STATUS_ERR_INVALID;
  int64_t outer = 1, inner = 1;
  for (int i = 0; i < nd; i++) {
    if (i == dim) {
      if (a->shape[i] + b->shape[i] != y->shape[i]) return DG_STATUS_ERR_SHAPE;
      continue;
    }
    if (a->shape[i] != y->shape[i] || b->shape[i] != y->shape[i]) return DG_STATUS_ERR_SHAPE;
    if (i < dim)
      outer *= y->shape[i];
    else
      inner *= y->shape[i];
  }
  if (dg_tensor_numel(y) == 0) return DG_STATUS_OK;
  if ((dg_tensor_numel(a) > 0 && y->data == a->data) || (dg_tensor_numel(b) > 0 && y->data == b->data))
    return DG_STATUS_ERR_INVALID;
  int64_t da = a->shape[dim] * inner, db = b->shape[dim] * inner, dy = y->shape[dim] * inner;
  size_t es = dg_dtype_size(y->dtype);
  dg__copy_args c = {(char *)y->data, a->data, outer, da, dy, da, es};
  copy_rows(e, &c);
  dg__copy_args c2 = {(char *)y->data + (size_t)da * es, b->data, outer, db, dy, db, es};
  copy_rows(e, &c2);
  return DG_STATUS_OK;
}

static dg_status slice_impl(dg_engine *e, dg_tensor *y, const dg_tensor *x, int dim, int64_t start) {
  if (!e) return DG_STATUS_ERR_INVALID;
  CHECK_OK(valid(y));
  CHECK_OK(valid(x));
  if (x->dtype != y->dtype) return DG_STATUS_ERR_INVALID;
  int nd = x->ndim;
  if (y->ndim != nd) return DG_STATUS_ERR_SHAPE;
  if (dim < 0) dim += nd;
  if (dim < 0 || dim >= nd) return DG_STATUS_ERR_INVALID;
  if (start < 0 || start > x->shape[dim] || y->shape[dim] > x->shape[dim] - start)
    return DG_STATUS_ERR_SHAPE;
  int64_t outer = 1, inner = 1;
  for (int i = 0; i < nd; i++) {
    if (i == dim) continue;
    if (x->shape[i] != y->shape[i]) return DG_STATUS_ERR_SHAPE;
    if (i < dim)
      outer *= x->shape[i];
    else
      inner *= x->shape[i];
  }
  if (dg_tensor_numel(y) == 0) return DG_STATUS_OK;
  if (y->data == x->data) return DG_STATUS_ERR_INVALID;
  size_t es = dg_dtype_size(x->dtype);
  int64_t dx = x->shape[dim] * inner, dy = y->shape[dim] * inner;
  dg__copy_args c = {(char *)y->data, (const char *)x->data + (size_t)(start * inner) * es,
                     outer, dy, dy, dx, es};
  copy_rows(e, &c);
  return DG_STATUS_OK;
}

static dg_status nchw_to_nlc_impl(dg_engine *e, dg_tensor *y, const dg_tensor *x) {
  if (!e) return DG_STATUS_ERR_INVALID;
  CHECK_OK(valid_f32(y));
  CHECK_OK(valid_f32(x));
  if (x->ndim != 4 || y->ndim != 3) return DG_STATUS_ERR_SHAPE;
  int64_t n = x->shape[0], c = x->shape[1], l = x->shape[2] * x->shape[3];
  if (y->shape[0] != n || y->shape[1] != l || y->shape[2] != c) return DG_STATUS_ERR_SHAPE;
  if (dg_tensor_numel(y) == 0) return DG_STATUS_OK;
  if (y->data == x->data) return DG_STATUS_ERR_INVALID;
  /* y (n, l, c) = x (n, c, l) transposed */
  if (is_ref(e))
    dg__transpose_ref(e, y->data, x->data, n, c, l);
  else
    dg__transpose_fast(e, y->data, x->data, n, c, l);
  return DG_STATUS_OK;
}

static dg_status nlc_to_nchw_impl(dg_engine *e, dg_tensor *y, const dg_tensor *x) {
  if (!e) return DG_STATUS_ERR_INVALID;
  CHECK_OK(valid_f32(y));
  CHECK_OK(valid_f32(x));
  if (x->ndim != 3 || y->ndim != 4) return DG_STATUS_ERR_SHAPE;
  int64_t n = y->shape[0], c = y->shape[1], l = y->shape[2] * y->shape[3];
  if (x->shape[0] != n || x->shape[1] != l || x->shape[2] != c) return DG_STATUS_ERR_SHAPE;
  if (dg_tensor_numel(y) == 0) return DG_STATUS_OK;
  if (y->data == x->data) return DG_STATUS_ERR_INVALID;
  if (is_ref(e))
    dg__transpose_ref(e, y->data, x->data, n, l, c);
  else
    dg__transpose_fast(e, y->data, x->data, n, l, c);
  return DG_STATUS_OK;
}

/* ---- Embeddings and conversion ------------------------------------------ */

static dg_status timestep_embedding_impl(dg_engine *e, dg_tensor *y, const dg_tensor *t, int flip_sin_to_cos,
                                         float freq_shift, float max_period) {
  if (!e) return DG_STATUS_ERR_INVALID;
  CHECK_OK(valid_f32(y));
  CHECK_OK(valid_f32(t));
  if (t->ndim != 1 || y->ndim != 2 || y->shape[0] != t->shape[0]) return DG_STATUS_ERR_SHAPE;
  int64_t dim = y->shape[1];
  if (!(max_period > 0.0f)) return DG_STATUS_ERR_INVALID;
  if (dim >= 2 && (float)(dim / 2) - freq_shift == 0.0f) return DG_STATUS_ERR_INVALID;
  if (dg_tensor_numel(y) == 0) return DG_STATUS_OK;
  dg__timestep_embedding(y->data, t->data, t->shape[0], dim, flip_sin_to_cos, freq_shift, max_period);
  return DG_STATUS_OK;
}

static dg_status embedding_impl(dg_engine *e, dg_tensor *y, const dg_tensor *ids, const dg_tensor *table) {
  if (!e) return DG_STATUS_ERR_INVALID;
  CHECK_OK(valid_f32(y));
  CHECK_OK(valid(ids));
  CHECK_OK(valid_float(table));
  if (ids->dtype != DG_DTYPE_I64 && ids->dtype != DG_DTYPE_I32) return DG_STATUS_ERR_INVALID;
  if (ids->ndim > 2 || table->ndim != 2 || y->ndim != ids->ndim + 1) return DG_STATUS_ERR_SHAPE;
  for (int i = 0; i < ids->ndim; i++)
    if (y->shape[i] != ids->shape[i]) return DG_STATUS_ERR_SHAPE;
  if (y->shape[ids->ndim] != table->shape[1]) return DG_STATUS_ERR_SHAPE;
  int64_t n = dg_tensor_numel(ids), v = table->shape[0];
  for (int64_t i = 0; i < n; i++) {
    int64_t id = ids->dtype == DG_DTYPE_I64 ? ((const int64_t *)ids->data)[i]
                                             : ((const int32_t *)ids->data)[i];
    if (id < 0 || id >= v) return DG_STATUS_ERR_INVALID;
  }
  if (dg_tensor_numel(y) == 0) return DG_STATUS_OK;
  if (is_ref(e))
    dg__embedding_ref(e, y->data, ids->data, ids->dtype, n, table);
  else
    dg__embedding_fast(e, y->data, ids->data, ids->dtype, n, table);
  return DG_STATUS_OK;
}

static dg_status convert_impl(dg_engine *e, dg_tensor *y, const dg_tensor *x) {
  if (!e) return DG_STATUS_ERR_INVALID;
  CHECK_OK(valid_float(y));
  CHECK_OK(valid_float(x));
  if (!same_shape(x, y)) return DG_STATUS_ERR_SHAPE;
  int64_t n = dg_tensor_numel(x);
  if (n == 0) return DG_STATUS_OK;
  if (x->data == y->data) {
    if (x->dtype == y->dtype) return DG_STATUS_OK;
    return DG_STATUS_ERR_INVALID;
  }
  if (is_ref(e))
    dg__convert_ref(e, y->data, y->dtype, x->data, x->dtype, n);
  else
    dg__convert_fast(e, y->data, y->dtype, x->data, x->dtype, n);
  return DG_STATUS_OK;
}

/* ---- Entry points: the checked ops above, timed under DG_PROFILE ---------- */

/* Return the checked op `call`, recorded under `name` when profiling. */
#define TIMED(name, call)                                                      \
  do {                                                                         \
    double t0_ = dg__prof_start(e);                                            \
    dg_status s_ = (call);                                                     \
    if (t0_ > 0.0 && s_ == DG_STATUS_OK) dg__prof_add(e, (name), t0_, 0.0);    \
    return s_;                                                                 \
  } while (0)

/* Record a GEMM-class op under a key made from fmt (its shape and path). */
static void prof_op(dg_engine *e, double t0, double flop, const char *fmt, ...) {
  char key[112];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(key, sizeof key, fmt, ap);
  va_end(ap);
  dg__prof_add(e, key, t0, flop);
}

static const char *conv_path(const dg_engine *e, const dg_tensor *x, const dg_tensor *w, int stride, int pad) {
  if (is_ref(e)) return "ref";
  int m = dg__winograd_choose(e, x, w, stride);
  if (m == 4) return "winograd F(4)";
  if (m == 2) return "winograd F(2)";
  return dg__conv_amx_usable(e, x, w, stride, pad) ? "amx direct" : "gemm";
}

dg_status dg_conv2d(dg_engine *e, dg_tensor *y, const dg_tensor *x, const dg_tensor *w, const dg_tensor *b, int stride,
                    int pad) {
  double t0 = dg__prof_start(e);
  dg_status s = conv2d_impl(e, y, x, w, b, stride, pad);
  if (t0 > 0.0 && s == DG_STATUS_OK) {
    int64_t ho = y->shape[2], wo = y->shape[3];
    prof_op(e, t0,
            2.0 * (double)x->shape[0] * (double)w->shape[0] * (double)(ho * wo) * (double)x->shape[1] *
                (double)(w->shape[2] * w->shape[3]),
            "conv2d %lldx%lld/s%d %lld->%lld at %lldx%lld, batch %lld (%s)", (long long)w->shape[2],
            (long long)w->shape[3], stride, (long long)x->shape[1], (long long)w->shape[0], (long long)ho,
            (long long)wo, (long long)x->shape[0], conv_path(e, x, w, stride, pad));
  }
  return s;
}

dg_status dg_linear(dg_engine *e, dg_tensor *y, const dg_tensor *x, const dg_tensor *w, const dg_tensor *b) {
  double t0 = dg__prof_start(e);
  dg_status s = linear_impl(e, y, x, w, b);
  if (t0 > 0.0 && s == DG_STATUS_OK) {
    int64_t k = x->shape[x->ndim - 1], n = w->shape[0], m = dg_tensor_numel(y) / n;
    prof_op(e, t0, 2.0 * (double)m * (double)k * (double)n, "linear %lld x %lld -> %lld%s", (long long)m,
            (long long)k, (long long)n, b ? " +bias" : "");
  }
  return s;
}

dg_status dg_matmul(dg_engine *e, dg_tensor *y, const dg_tensor *a, const dg_tensor *b, int transpose_b, float alpha) {
  double t0 = dg__prof_start(e);
  dg_status s = matmul_impl(e, y, a, b, transpose_b, alpha);
  if (t0 > 0.0 && s == DG_STATUS_OK) {
    int nd = a->ndim;
    int64_t m = a->shape[nd - 2], k = a->shape[nd - 1], n = y->shape[nd - 1], bt = dg_tensor_numel(y) / (m * n);
    prof_op(e, t0, 2.0 * (double)bt * (double)m * (double)k * (double)n, "matmul %lld x (%lld x %lld . %lld x %lld)",
            (long long)bt, (long long)m, (long long)k, (long long)k, (long long)n);
  }
  return s;
}

dg_status dg_attention(dg_engine *e, dg_tensor *y, const dg_tensor *q, const dg_tensor *k, const dg_tensor *v,
                       int n_heads, int causal, float scale) {
  double t0 = dg__prof_start(e);
  dg_status s = attention_impl(e, y, q, k, v, n_heads, causal, scale);
  if (t0 > 0.0 && s == DG_STATUS_OK) {
    int64_t lq = q->shape[1], lk = k->shape[1], c = q->shape[2];
    prof_op(e, t0, 4.0 * (double)q->shape[0] * (double)lq * (double)lk * (double)c,
            "attention %lld x %lld tokens, %d x %lld, batch %lld%s", (long long)lq, (long long)lk, n_heads,
            (long long)(c / n_heads), (long long)q->shape[0], causal ? ", causal" : "");
  }
  return s;
}

dg_status dg_group_norm(dg_engine *e, dg_tensor *y, const dg_tensor *x, int n_groups, float eps, const dg_tensor *gamma,
                        const dg_tensor *beta, int silu) {
  TIMED(silu ? "group_norm + silu" : "group_norm", group_norm_impl(e, y, x, n_groups, eps, gamma, beta, silu));
}

dg_status dg_layer_norm(dg_engine *e, dg_tensor *y, const dg_tensor *x, float eps, const dg_tensor *gamma,
                        const dg_tensor *beta) {
  TIMED("layer_norm", layer_norm_impl(e, y, x, eps, gamma, beta));
}

dg_status dg_softmax(dg_engine *e, dg_tensor *y, const dg_tensor *x) {
  TIMED("softmax", softmax_impl(e, y, x));
}

dg_status dg_silu(dg_engine *e, dg_tensor *y, const dg_tensor *x) {
  TIMED("silu", silu_impl(e, y, x));
}

dg_status dg_gelu(dg_engine *e, dg_tensor *y, const dg_tensor *x) {
  TIMED("gelu", gelu_impl(e, y, x));
}

dg_status dg_quick_gelu(dg_engine *e, dg_tensor *y, const dg_tensor *x) {
  TIMED("quick_gelu", quick_gelu_impl(e, y, x));
}

dg_status dg_geglu(dg_engine *e, dg_tensor *y, const dg_tensor *x) {
  TIMED("geglu", geglu_impl(e, y, x));
}

dg_status dg_upsample_nearest2x(dg_engine *e, dg_tensor *y, const dg_tensor *x) {
  TIMED("upsample_nearest2x", upsample_nearest2x_impl(e, y, x));
}

dg_status dg_add(dg_engine *e, dg_tensor *y, const dg_tensor *a, const dg_tensor *b) {
  TIMED("add", add_impl(e, y, a, b));
}

dg_status dg_mul(dg_engine *e, dg_tensor *y, const dg_tensor *a, const dg_tensor *b) {
  TIMED("mul", mul_impl(e, y, a, b));
}

dg_status dg_scale(dg_engine *e, dg_tensor *y, const dg_tensor *x, float alpha, float beta) {
  TIMED("scale", scale_impl(e, y, x, alpha, beta));
}

dg_status dg_concat(dg_engine *e, dg_tensor *y, const dg_tensor *a, const dg_tensor *b, int dim) {
  TIMED("concat", concat_impl(e, y, a, b, dim));
}

dg_status dg_slice(dg_engine *e, dg_tensor *y, const dg_tensor *x, int dim, int64_t start) {
  TIMED("slice", slice_impl(e, y, x, dim, start));
}

dg_status dg_nchw_to_nlc(dg_engine *e, dg_tensor *y, const dg_tensor *x) {
  TIMED("nchw_to_nlc", nchw_to_nlc_impl(e, y, x));
}

dg_status dg_nlc_to_nchw(dg_engine *e, dg_tensor *y, const dg_tensor *x) {
  TIMED("nlc_to_nchw", nlc_to_nchw_impl(e, y, x));
}

dg_status dg_timestep_embedding(dg_engine *e, dg_tensor *y, const dg_tensor *t, int flip_sin_to_cos, float freq_shift,
                                float max_period) {
  TIMED("timestep_embedding", timestep_embedding_impl(e, y, t, flip_sin_to_cos, freq_shift, max_period));
}

dg_status dg_embedding(dg_engine *e, dg_tensor *y, const dg_tensor *ids, const dg_tensor *table) {
  TIMED("embedding", embedding_impl(e, y, ids, table));
}

dg_status dg_convert(dg_engine *e, dg_tensor *y, const dg_tensor *x) {
  TIMED("convert", convert_impl(e, y, x));
}
