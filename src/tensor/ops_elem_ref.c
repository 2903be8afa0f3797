/* Reference kernels of the non-GEMM ops (DG_ISA_REF): single-threaded plain
 * loops, statistics and transcendental functions in double.  The fast forms
 * in ops_fast.c are tested against these. */
#include <math.h>
#include <string.h>

#include "tensor/ops_internal.h"

static double wval(const dg_tensor *t, int64_t i, double dflt) {
  return t ? (double)dg_load_f32(t->data, t->dtype, i) : dflt;
}

static double silu_d(double v) { return v / (1.0 + exp(-v)); }

void dg__group_norm_ref(dg_engine *e, const dg__gn_args *a) {
  (void)e;
  int64_t cpg = a->c / a->g, len = cpg * a->s;
  for (int64_t n = 0; n < a->n; n++) {
    for (int64_t g = 0; g < a->g; g++) {
      const float *x = a->x + (n * a->c + g * cpg) * a->s; /* (cpg, s) */
      float *y = a->y + (n * a->c + g * cpg) * a->s;
      double sum = 0.0;
      for (int64_t i = 0; i < len; i++) sum += x[i];
      double mean = len ? sum / (double)len : 0.0, var = 0.0;
      for (int64_t i = 0; i < len; i++) var += ((double)x[i] - mean) * ((double)x[i] - mean);
      var = len ? var / (double)len : 0.0;
      double rstd = 1.0 / sqrt(var + (double)a->eps);
      for (int64_t c = 0; c < cpg; c++) {
        double gm = wval(a->gamma, g * cpg + c, 1.0), bt = wval(a->beta, g * cpg + c, 0.0);
        for (int64_t i = 0; i < a->s; i++) {
          double v = ((double)x[c * a->s + i] - mean) * rstd * gm + bt;
          y[c * a->s + i] = (float)(a->silu ? silu_d(v) : v);
        }
      }
    }
  }
}

void dg__layer_norm_ref(dg_engine *e, const dg__ln_args *a) {
  (void)e;
  for (int64_t r = 0; r < a->rows; r++) {
    const float *x = a->x + r * a->c; /* (c) */
    float *y = a->y + r * a->c;
    double sum = 0.0, var = 0.0;
    for (int64_t i = 0; i < a->c; i++) sum += x[i];
    double mean = sum / (double)a->c;
    for (int64_t i = 0; i < a->c; i++) var += ((double)x[i] - mean) * ((double)x[i] - mean);
    double rstd = 1.0 / sqrt(var / (double)a->c + (double)a->eps);
    for (int64_t i = 0; i < a->c; i++)
      y[i] = (float)(((double)x[i] - mean) * rstd * wval(a->gamma, i, 1.0) + wval(a->beta, i, 0.0));
  }
}

void dg__softmax_ref(dg_engine *e, float *y, const float *x, int64_t rows, int64_t c) {
  (void)e;
  for (int64_t r = 0; r < rows; r++) {
    const float *xr = x + r * c; /* (c) */
    float *yr = y + r * c;
    double mx = -INFINITY, sum = 0.0;
    for (int64_t i = 0; i < c; i++)
      if (xr[i] > mx) mx = xr[i];
    for (int64_t i = 0; i < c; i++) sum += exp((double)xr[i] - mx);
    for (int64_t i = 0; i < c; i++) yr[i] = (float)(exp((double)xr[i] - mx) / sum);
  }
}

static double unary_d(dg__unary_op op, double v) {
  switch (op) {
    case DG__UNARY_SILU: return silu_d(v);
    case DG__UNARY_GELU: return 0.5 * v * (1.0 + erf(v / sqrt(2.0)));
    case DG__UNARY_QUICK_GELU: return v / (1.0 + exp(-1.702 * v));
  }
  return v;
}

void dg__unary_ref(dg_engine *e, dg__unary_op op, float *y, const float *x, int64_t n) {
  (void)e;
  for (int64_t i = 0; i < n; i++) y[i] = (float)unary_d(op, x[i]);
}

void dg__geglu_ref(dg_engine *e, float *y, const float *x, int64_t rows, int64_t n) {
  (void)e;
  for (int64_t r = 0; r < rows; r++) {
    const float *xr = x + r * 2 * n; /* (2n): [value | gate] */
    for (int64_t i = 0; i < n; i++)
      y[r * n + i] = (float)((double)xr[i] * unary_d(DG__UNARY_GELU, xr[n + i]));
  }
}

void dg__upsample2x_ref(dg_engine *e, float *y, const float *x, int64_t planes, int64_t h, int64_t w) {
  (void)e;
  for (int64_t p = 0; p < planes; p++)
    for (int64_t i = 0; i < 2 * h; i++)
      for (int64_t j = 0; j < 2 * w; j++) y[(p * 2 * h + i) * 2 * w + j] = x[(p * h + i / 2) * w + j / 2];
}

void dg__binary_ref(dg_engine *e, const dg__bin_args *a) {
  (void)e;
  for (int64_t o = 0; o < a->outer; o++)
    for (int64_t j = 0; j < a->nb; j++)
      for (int64_t i = 0; i < a->inner; i++) {
        int64_t idx = (o * a->nb + j) * a->inner + i;
        float bv = a->b[j];
        a->y[idx] = a->op == DG__BINARY_ADD ? a->a[idx] + bv : a->a[idx] * bv;
      }
}

void dg__scale_ref(dg_engine *e, float *y, const float *x, int64_t n, float alpha, float beta) {
  (void)e;
  for (int64_t i = 0; i < n; i++) y[i] = alpha * x[i] + beta;
}

void dg__copy_rows_ref(dg_engine *e, const dg__copy_args *a) {
  (void)e;
  for (int64_t r = 0; r < a->rows; r++)
    memcpy(a->dst + (size_t)(r * a->dst_stride) * a->esize, a->src + (size_t)(r * a->src_stride) * a->esize,
           (size_t)a->len * a->esize);
}

void dg__transpose_ref(dg_engine *e, float *y, const float *x, int64_t b, int64_t r, int64_t c) {
  (void)e;
  for (int64_t k = 0; k < b; k++)
    for (int64_t i = 0; i < r; i++)
      for (int64_t j = 0; j < c; j++) y[(k * c + j) * r + i] = x[(k * r + i) * c + j];
}

void dg__embedding_ref(dg_engine *e, float *y, const void *ids, dg_dtype id_type, int64_t n,
                       const dg_tensor *table) {
  (void)e;
  int64_t c = table->shape[1];
  for (int64_t i = 0; i < n; i++) {
    int64_t id = id_type == DG_DTYPE_I64 ? ((const int64_t *)ids)[i] : ((const int32_t *)ids)[i];
    for (int64_t j = 0; j < c; j++) y[i * c + j] = dg_load_f32(table->data, table->dtype, id * c + j);
  }
}

static void store_f32(void *y, dg_dtype t, int64_t i, float v) {
  switch (t) {
    case DG_DTYPE_F32: ((float *)y)[i] = v; break;
    case DG_DTYPE_F16: ((uint16_t *)y)[i] = dg_f32_to_f16(v); break;
    case DG_DTYPE_BF16: ((uint16_t *)y)[i] = dg_f32_to_bf16(v); break;
    default: break;
  }
}

void dg__convert_ref(dg_engine *e, void *y, dg_dtype yt, const void *x, dg_dtype xt, int64_t n) {
  (void)e;
  for (int64_t i = 0; i < n; i++) store_f32(y, yt, i, dg_load_f32(x, xt, i));
}

/* diffusers get_timestep_embedding, following torch's f32 arithmetic:
 * exponent = -ln(max_period) * arange(half) / (half - shift); emb = t * exp(exponent). */
void dg__timestep_embedding(float *y, const float *t, int64_t n, int64_t dim, int flip_sin_to_cos,
                            float freq_shift, float max_period) {
  int64_t half = dim / 2;
  float nl = (float)(-log((double)max_period));
  float den = (float)half - freq_shift;
  for (int64_t r = 0; r < n; r++) {
    float *yr = y + r * dim; /* (dim) */
    for (int64_t i = 0; i < half; i++) {
      float ex = (nl * (float)i) / den;
      float freq = (float)exp((double)ex);
      float arg = t[r] * freq;
      float s = (float)sin((double)arg), c = (float)cos((double)arg);
      yr[i] = flip_sin_to_cos ? c : s;
      yr[half + i] = flip_sin_to_cos ? s : c;
    }
    if (dim % 2) yr[dim - 1] = 0.0f;
  }
}
