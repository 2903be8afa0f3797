/* Reference kernels of the GEMM-class ops: plain loops, f32 accumulation,
 * weights read through dg_load_f32 (any float dtype).  Threaded over output
 * channels / rows so the tiny-model tests stay fast; each output element is
 * computed by exactly one thread in a fixed order (deterministic). */
#include <math.h>
#include <string.h>

#include "tensor/kernels.h"

/* ---- conv2d -------------------------------------------------------------- */

typedef struct conv_job {
  float *y;
  const float *x;
  const dg_tensor *w, *b;
  int64_t n, ci, h, wd, co, kh, kw, ho, wo;
  int stride, pad;
} conv_job;

/* One (image, output channel) plane per unit. */
static void conv_range(void *arg, int64_t begin, int64_t end, int ti) {
  const conv_job *j = arg;
  (void)ti;
  for (int64_t u = begin; u < end; u++) {
    int64_t img = u / j->co, oc = u % j->co;
    float *yp = j->y + u * j->ho * j->wo; /* (ho, wo) */
    float bias = j->b ? dg_load_f32(j->b->data, j->b->dtype, oc) : 0.0f;
    for (int64_t i = 0; i < j->ho * j->wo; i++) yp[i] = bias;
    for (int64_t ic = 0; ic < j->ci; ic++) {
      const float *xp = j->x + (img * j->ci + ic) * j->h * j->wd; /* (h, wd) */
      for (int64_t ky = 0; ky < j->kh; ky++) {
        for (int64_t kx = 0; kx < j->kw; kx++) {
          float wv = dg_load_f32(j->w->data, j->w->dtype, ((oc * j->ci + ic) * j->kh + ky) * j->kw + kx);
          for (int64_t oy = 0; oy < j->ho; oy++) {
            int64_t iy = oy * j->stride - j->pad + ky;
            if (iy < 0 || iy >= j->h) continue;
            for (int64_t ox = 0; ox < j->wo; ox++) {
              int64_t ix = ox * j->stride - j->pad + kx;
              if (ix < 0 || ix >= j->wd) continue;
              yp[oy * j->wo + ox] += wv * xp[iy * j->wd + ix];
            }
          }
        }
      }
    }
  }
}

dg_status dg__conv2d_ref(dg_engine *e, dg_tensor *y, const dg_tensor *x, const dg_tensor *w,
                         const dg_tensor *b, int stride, int pad) {
  conv_job j;
  j.y = y->data;
  j.x = x->data;
  j.w = w;
  j.b = b;
  j.n = x->shape[0];
  j.ci = x->shape[1];
  j.h = x->shape[2];
  j.wd = x->shape[3];
  j.co = w->shape[0];
  j.kh = w->shape[2];
  j.kw = w->shape[3];
  j.ho = y->shape[2];
  j.wo = y->shape[3];
  j.stride = stride;
  j.pad = pad;
  dg_engine_parallel(e, j.n * j.co, conv_range, &j);
  return DG_STATUS_OK;
}

/* ---- linear -------------------------------------------------------------- */

typedef struct linear_job {
  dg_engine *e;
  float *y;
  const float *x;
  const dg_tensor *w, *b;
  int64_t m, k, n;
  int oom;
} linear_job;

/* Output features [begin, end) for every row. */
static void linear_range(void *arg, int64_t begin, int64_t end, int ti) {
  linear_job *j = arg;
  float *wrow = dg__engine_scratch(j->e, ti, (size_t)j->k * sizeof(float)); /* (k) */
  if (!wrow) {
    j->oom = 1;
    return;
  }
  for (int64_t o = begin; o < end; o++) {
    for (int64_t i = 0; i < j->k; i++) wrow[i] = dg_load_f32(j->w->data, j->w->dtype, o * j->k + i);
    float bias = j->b ? dg_load_f32(j->b->data, j->b->dtype, o) : 0.0f;
    for (int64_t r = 0; r < j->m; r++) {
      const float *xr = j->x + r * j->k;
      float acc = 0.0f;
      for (int64_t i = 0; i < j->k; i++) acc += xr[i] * wrow[i];
      j->y[r * j->n + o] = acc + bias;
    }
  }
}

dg_status dg__linear_ref(dg_engine *e, dg_tensor *y, const dg_tensor *x, const dg_tensor *w,
                         const dg_tensor *b) {
  linear_job j;
  j.e = e;
  j.y = y->data;
  j.x = x->data;
  j.w = w;
  j.b = b;
  j.k = x->shape[x->ndim - 1];
  j.n = w->shape[0];
  j.m = j.k > 0 ? dg_tensor_numel(x) / j.k : dg_tensor_numel(y) / j.n;
  j.oom = 0;
  dg_engine_parallel(e, j.n, linear_range, &j);
  return j.oom ? DG_STATUS_ERR_NOMEM : DG_STATUS_OK;
}

/* ---- matmul -------------------------------------------------------------- */

typedef struct matmul_job {
  float *y;
  const float *a, *b;
  int64_t m, k, n;
  int tb;
  float alpha;
} matmul_job;

/* One output row (batch * m + row) per unit. */
static void matmul_range(void *arg, int64_t begin, int64_t end, int ti) {
  const matmul_job *j = arg;
  (void)ti;
  for (int64_t u = begin; u < end; u++) {
    int64_t bt = u / j->m;
    const float *ar = j->a + u * j->k;                 /* (k) */
    const float *bm = j->b + bt * j->k * j->n;         /* (k, n) or (n, k) */
    float *yr = j->y + u * j->n;                        /* (n) */
    for (int64_t c = 0; c < j->n; c++) {
      float acc = 0.0f;
      for (int64_t i = 0; i < j->k; i++) acc += ar[i] * (j->tb ? bm[c * j->k + i] : bm[i * j->n + c]);
      yr[c] = j->alpha * acc;
    }
  }
}

dg_status dg__matmul_ref(dg_engine *e, dg_tensor *y, const dg_tensor *a, const dg_tensor *b,
                         int transpose_b, float alpha) {
  int nd = a->ndim;
  matmul_job j;
  j.y = y->data;
  j.a = a->data;
  j.b = b->data;
  j.m = a->shape[nd - 2];
  j.k = a->shape[nd - 1];
  j.n = y->shape[nd - 1];
  j.tb = transpose_b != 0;
  j.alpha = alpha;
  int64_t batch = 1;
  for (int i = 0; i < nd - 2; i++) batch *= a->shape[i];
  dg_engine_parallel(e, batch * j.m, matmul_range, &j);
  return DG_STATUS_OK;
}

/* ---- attention ----------------------------------------------------------- */

typedef struct attn_job {
  dg_engine *e;
  float *y;
  const float *q, *k, *v;
  int64_t lq, lk, c, d, heads;
  int causal;
  float scale;
  int oom;
} attn_job;

/* One (batch, head, query row) per unit; the scores of that row are
 * materialised in per-thread scratch (lk floats). */
static void attn_range(void *arg, int64_t begin, int64_t end, int ti) {
  attn_job *j = arg;
  float *s = dg__engine_scratch(j->e, ti, (size_t)j->lk * sizeof(float)); /* (lk) */
  if (!s) {
    j->oom = 1;
    return;
  }
  for (int64_t u = begin; u < end; u++) {
    int64_t i = u % j->lq, h = (u / j->lq) % j->heads, bt = u / (j->lq * j->heads);
    const float *qr = j->q + (bt * j->lq + i) * j->c + h * j->d; /* (d) */
    float *yr = j->y + (bt * j->lq + i) * j->c + h * j->d;       /* (d) */
    /* torch SDPA is_causal: key j is visible to query i when j <= i (top-left aligned) */
    int64_t nk = j->causal ? (i + 1 < j->lk ? i + 1 : j->lk) : j->lk;
    float mx = -INFINITY;
    for (int64_t t = 0; t < nk; t++) {
      const float *kr = j->k + (bt * j->lk + t) * j->c + h * j->d;
      float acc = 0.0f;
      for (int64_t x = 0; x < j->d; x++) acc += qr[x] * kr[x];
      s[t] = acc * j->scale;
      if (s[t] > mx) mx = s[t];
    }
    float sum = 0.0f;
    for (int64_t t = 0; t < nk; t++) {
      s[t] = expf(s[t] - mx);
      sum += s[t];
    }
    for (int64_t x = 0; x < j->d; x++) yr[x] = 0.0f;
    for (int64_t t = 0; t < nk; t++) {
      const float *vr = j->v + (bt * j->lk + t) * j->c + h * j->d;
      float p = s[t] / sum;
      for (int64_t x = 0; x < j->d; x++) yr[x] += p * vr[x];
    }
  }
}

dg_status dg__attention_ref(dg_engine *e, dg_tensor *y, const dg_tensor *q, const dg_tensor *k,
                            const dg_tensor *v, int n_heads, int causal, float scale) {
  attn_job j;
  j.e = e;
  j.y = y->data;
  j.q = q->data;
  j.k = k->data;
  j.v = v->data;
  j.lq = q->shape[1];
  j.lk = k->shape[1];
  j.c = q->shape[2];
  j.heads = n_heads;
  j.d = j.c / n_heads;
  j.causal = causal != 0;
  j.scale = scale > 0.0f ? scale : (float)(1.0 / sqrt((double)j.d));
  j.oom = 0;
  dg_engine_parallel(e, q->shape[0] * n_heads * j.lq, attn_range, &j);
  return j.oom ? DG_STATUS_ERR_NOMEM : DG_STATUS_OK;
}
