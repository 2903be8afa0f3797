/* Fast forms of the non-GEMM ops: threaded with dg_engine_parallel (rows,
 * groups or element blocks split contiguously over threads), the inner loops
 * in per-ISA vector row kernels (generic C here; AVX2 / AVX-512 in
 * ops_avx2.c / ops_avx512.c).  Statistics accumulate in f32 lanes over short
 * blocks, then in double. */
#include <math.h>
#include <string.h>

#include "tensor/kernels.h"
#include "tensor/ops_internal.h"

/* ---- Generic vector kernels --------------------------------------------- */

#define LANES 8
#define BLOCK 1024

static double g_sum(const float *x, int64_t n) {
  double tot = 0.0;
  for (int64_t i = 0; i < n; i += BLOCK) {
    int64_t m = n - i < BLOCK ? n - i : BLOCK, j = 0;
    float acc[LANES] = {0};
    for (; j + LANES <= m; j += LANES)
      for (int l = 0; l < LANES; l++) acc[l] += x[i + j + l];
    double part = 0.0;
    for (int l = 0; l < LANES; l++) part += acc[l];
    for (; j < m; j++) part += x[i + j];
    tot += part;
  }
  return tot;
}

static double g_sum_sq_dev(const float *x, int64_t n, float mean) {
  double tot = 0.0;
  for (int64_t i = 0; i < n; i += BLOCK) {
    int64_t m = n - i < BLOCK ? n - i : BLOCK, j = 0;
    float acc[LANES] = {0};
    for (; j + LANES <= m; j += LANES)
      for (int l = 0; l < LANES; l++) {
        float d = x[i + j + l] - mean;
        acc[l] += d * d;
      }
    double part = 0.0;
    for (int l = 0; l < LANES; l++) part += acc[l];
    for (; j < m; j++) {
      float d = x[i + j] - mean;
      part += d * d;
    }
    tot += part;
  }
  return tot;
}

static void g_sums_shifted(const float *x, int64_t n, float k, double s[2]) {
  double t1 = 0.0, t2 = 0.0;
  for (int64_t i = 0; i < n; i += BLOCK) {
    int64_t m = n - i < BLOCK ? n - i : BLOCK, j = 0;
    float a[LANES] = {0}, q[LANES] = {0};
    for (; j + LANES <= m; j += LANES)
      for (int l = 0; l < LANES; l++) {
        float d = x[i + j + l] - k;
        a[l] += d;
        q[l] += d * d;
      }
    double p1 = 0.0, p2 = 0.0;
    for (int l = 0; l < LANES; l++) p1 += a[l], p2 += q[l];
    for (; j < m; j++) {
      float d = x[i + j] - k;
      p1 += d;
      p2 += d * d;
    }
    t1 += p1, t2 += p2;
  }
  s[0] = t1, s[1] = t2;
}

/* ---- Portable vector exp / GELU ------------------------------------------
 * Written as straight-line loops over CH-element local arrays (no aliasing,
 * no branches, no libm calls) so the compiler vectorises them with whatever
 * vector ISA the generic build targets.  exp: Cody-Waite reduction by ln 2,
 * the same degree-6 polynomial as the AVX files, 2^n applied as two exact
 * power-of-two factors so results down to the subnormals round once (~1-2
 * ulp).  GELU: erfc(|z|) = t exp(-z^2 + P(t)), t = 1/(1 + |z|/2) (relative
 * error of erfc < 1.2e-7) with x^2/2 carried exactly, as the AVX files. */

#define CH 64

static void g_exp_ch(float *v) { /* v (CH), in place */
  /* Clamp to [-104, 89] and detect NaN on the bit patterns: integer compares
   * and selects if-convert and vectorise (float ones may trap, so GCC will
   * not if-convert them without -fno-trapping-math). */
  uint32_t u[CH], nanm[CH];
  float xc[CH];
  memcpy(u, v, sizeof u);
  for (int i = 0; i < CH; i++) {
    uint32_t b = u[i];
    nanm[i] = (b & 0x7fffffffu) > 0x7f800000u ? 0xffffffffu : 0u;
    b = (int32_t)b > (int32_t)0x42B20000 ? 0x42B20000u : b; /* x > 89 (positive) */
    b = b > 0xC2D00000u ? 0xC2D00000u : b;                  /* x < -104 (negative) */
    u[i] = b;
  }
  memcpy(xc, u, sizeof xc);
  int32_t n[CH];
  float p[CH], s1[CH], s2[CH];
  for (int i = 0; i < CH; i++) {
    float x = xc[i];
    float fn = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f; /* round to nearest */
    float r = x - fn * 0.693359375f;
    r = r - fn * -2.12194440e-4f;
    float q = 1.9875691500e-4f;
    q = q * r + 1.3981999507e-3f;
    q = q * r + 8.3334519073e-3f;
    q = q * r + 4.1665795894e-2f;
    q = q * r + 1.6666665459e-1f;
    q = q * r + 5.0000001201e-1f;
    p[i] = q * (r * r) + (r + 1.0f);
    n[i] = (int32_t)fn; /* [-150, 129] */
  }
  uint32_t b1[CH], b2[CH];
  for (int i = 0; i < CH; i++) {
    int32_t h = n[i] / 2;
    b1[i] = (uint32_t)(h + 127) << 23;
    b2[i] = (uint32_t)(n[i] - h + 127) << 23;
  }
  memcpy(s1, b1, sizeof s1);
  memcpy(s2, b2, sizeof s2);
  for (int i = 0; i < CH; i++) p[i] = p[i] * s1[i] * s2[i];
  memcpy(b1, p, sizeof b1);
  memcpy(b2, v, sizeof b2);
  for (int i = 0; i < CH; i++) b1[i] = (b2[i] & nanm[i]) | (b1[i] & ~nanm[i]); /* NaN in, NaN out */
  memcpy(v, b1, sizeof b1);
}

static void g_exp(float *y, const float *x, int64_t n) {
  float v[CH];
  for (int64_t i = 0; i < n; i += CH) {
    int64_t m = n - i < CH ? n - i : CH;
    memset(v, 0, sizeof v);
    memcpy(v, x + i, (size_t)m * sizeof(float));
    g_exp_ch(v);
    memcpy(y + i, v, (size_t)m * sizeof(float));
  }
}

/* y = x * sigmoid(k x), in place on v (CH) */
static void g_silu_ch(float *v, float k) {
  float e[CH];
  for (int i = 0; i < CH; i++) e[i] = -k * v[i];
  g_exp_ch(e);
  for (int i = 0; i < CH; i++) v[i] = v[i] / (1.0f + e[i]);
}

/* x^2/2 = s + slo exactly (Dekker's product, x split into 12 + 12 significant
 * bits: no FMA needed), then exp(a) (1 + da) with a + da = P(t) - s - slo (see ops_avx512.c) */
static void g_gelu_ch(float *v) {
  float t[CH], e[CH], d[CH], xh[CH];
  uint32_t xb[CH], xb0[CH];
  memcpy(xb, v, sizeof xb);
  memcpy(xb0, v, sizeof xb0);
  for (int i = 0; i < CH; i++) xb[i] &= 0xfffff000u;
  memcpy(xh, xb, sizeof xh);
  for (int i = 0; i < CH; i++) {
    float x = v[i], hi = xh[i], lo = x - hi;
    float xx = x * x, xxlo = ((hi * hi - xx) + 2.0f * hi * lo) + lo * lo; /* Dekker: xx + xxlo = x^2 */
    float s = 0.5f * xx, slo = 0.5f * xxlo;
    float z = fabsf(x * 0.70710678118654752f);
    float tt = 1.0f / (z * 0.5f + 1.0f);
    float q = 0.17087277f;
    q = q * tt - 0.82215223f;
    q = q * tt + 1.48851587f;
    q = q * tt - 1.13520398f;
    q = q * tt + 0.27886807f;
    q = q * tt - 0.18628806f;
    q = q * tt + 0.09678418f;
    q = q * tt + 0.37409196f;
    q = q * tt + 1.00002368f;
    q = q * tt - 1.26551223f;
    float a = q - s, bb = a - q;
    t[i] = tt;
    e[i] = a;
    d[i] = ((q - (a - bb)) - (s + bb)) - slo;
  }
  g_exp_ch(e);
  uint32_t eb[CH], tb[CH];
  for (int i = 0; i < CH; i++) {
    float ec = t[i] * (e[i] + e[i] * d[i]); /* erfc(|z|) */
    e[i] = ec;
    t[i] = 2.0f - ec;
  }
  memcpy(eb, e, sizeof eb);
  memcpy(tb, t, sizeof tb);
  for (int i = 0; i < CH; i++) {
    uint32_t neg = xb0[i] >> 31 ? 0xffffffffu : 0u; /* 1 + erf(z): erfc(|z|) for x < 0, else 2 - erfc(|z|) */
    eb[i] = (eb[i] & neg) | (tb[i] & ~neg);
  }
  memcpy(e, eb, sizeof e);
  for (int i = 0; i < CH; i++) v[i] = 0.5f * v[i] * e[i];
}

static void g_affine(float *y, const float *x, int64_t n, float m, float a, float b, int silu, const float *pf) {
  (void)pf;
  if (silu) {
    float v[CH];
    for (int64_t i = 0; i < n; i += CH) {
      int64_t c = n - i < CH ? n - i : CH;
      memset(v, 0, sizeof v);
      for (int64_t k = 0; k < c; k++) v[k] = (x[i + k] - m) * a + b;
      g_silu_ch(v, 1.0f);
      memcpy(y + i, v, (size_t)c * sizeof(float));
    }
  } else {
    for (int64_t i = 0; i < n; i++) y[i] = (x[i] - m) * a + b;
  }
}

static void g_normalize(float *y, const float *x, int64_t n, float mean, float rstd, const float *g,
                        const float *b, const float *pf) {
  (void)pf;
  for (int64_t i = 0; i < n; i++) {
    float v = (x[i] - mean) * rstd;
    if (g) v *= g[i];
    if (b) v += b[i];
    y[i] = v;
  }
}

static void g_softmax_row(float *y, const float *x, int64_t n) {
  float mx = -INFINITY;
  for (int64_t i = 0; i < n; i++) mx = x[i] > mx ? x[i] : mx;
  if (mx == -INFINITY) mx = 0.0f; /* fully masked row: sum 0 -> NaN, as torch */
  double sum = 0.0;
  float v[CH];
  for (int64_t i = 0; i < n; i += CH) {
    int64_t c = n - i < CH ? n - i : CH;
    memset(v, 0, sizeof v);
    for (int64_t k = 0; k < c; k++) v[k] = x[i + k] - mx;
    g_exp_ch(v);
    float part = 0.0f;
    for (int64_t k = 0; k < c; k++) part += v[k];
    sum += part;
    memcpy(y + i, v, (size_t)c * sizeof(float));
  }
  float inv = (float)(1.0 / sum);
  for (int64_t i = 0; i < n; i++) y[i] *= inv;
}

static void g_softmax(float *y, const float *x, int64_t rows, int64_t n) {
  for (int64_t r = 0; r < rows; r++) g_softmax_row(y + r * n, x + r * n, n);
}

static void g_unary(dg__unary_op op, float *y, const float *x, int64_t n) {
  float v[CH];
  for (int64_t i = 0; i < n; i += CH) {
    int64_t c = n - i < CH ? n - i : CH;
    memset(v, 0, sizeof v);
    memcpy(v, x + i, (size_t)c * sizeof(float));
    if (op == DG__UNARY_GELU)
      g_gelu_ch(v);
    else
      g_silu_ch(v, op == DG__UNARY_SILU ? 1.0f : 1.702f);
    memcpy(y + i, v, (size_t)c * sizeof(float));
  }
}

static void g_binary_vec(dg__binary_op op, float *y, const float *a, const float *b, int64_t n) {
  if (op == DG__BINARY_ADD)
    for (int64_t i = 0; i < n; i++) y[i] = a[i] + b[i];
  else
    for (int64_t i = 0; i < n; i++) y[i] = a[i] * b[i];
}

static void g_binary_scalar(dg__binary_op op, float *y, const float *a, float s, int64_t n) {
  if (op == DG__BINARY_ADD)
    for (int64_t i = 0; i < n; i++) y[i] = a[i] + s;
  else
    for (int64_t i = 0; i < n; i++) y[i] = a[i] * s;
}

static void g_scale(float *y, const float *x, int64_t n, float alpha, float beta) {
  for (int64_t i = 0; i < n; i++) y[i] = alpha * x[i] + beta;
}

/* y = a * GELU(gate): the gate's GELU into y, then the product (same rounding as unary + binary) */
static void g_geglu(float *y, const float *a, const float *gate, int64_t n) {
  g_unary(DG__UNARY_GELU, y, gate, n);
  g_binary_vec(DG__BINARY_MUL, y, a, y, n);
}

static void g_transpose(float *y, int64_t ldy, const float *x, int64_t ldx, int rows, int cols) {
  for (int i = 0; i < rows; i++)
    for (int c = 0; c < cols; c++) y[c * ldy + i] = x[i * ldx + c];
}

const dg__vec_kernels dg__vec_generic = {g_sum,   g_sum_sq_dev,    g_sums_shifted, g_affine, g_normalize,
                                         g_softmax, g_unary,       g_binary_vec,   g_binary_scalar,
                                         g_scale, g_exp,           g_geglu,        g_transpose};

static const dg__vec_kernels *vk(const dg_engine *e) {
  const dg__vec_kernels *k = NULL;
  if (dg_engine_isa(e) == DG_ISA_AVX512) k = dg__vec_avx512();
  if (dg_engine_isa(e) == DG_ISA_AVX2) k = dg__vec_avx2();
  return k ? k : &dg__vec_generic;
}

/* Run inline when the whole job is small (thread wake-up would dominate). */
static void run(dg_engine *e, int64_t units, int64_t work_per_unit, dg_range_fn fn, void *arg) {
  if (units <= 0) return;
  if (units == 1 || units * work_per_unit < 16384 || dg_engine_threads(e) == 1)
    fn(arg, 0, units, 0);
  else
    dg_engine_parallel(e, units, fn, arg);
}

#define EBLOCK 8192 /* elements per unit of element-wise jobs (32 KiB of f32) */

static int64_t eblocks(int64_t n) { return (n + EBLOCK - 1) / EBLOCK; }

/* ---- Group norm (+ SiLU) ------------------------------------------------ */

typedef struct gn_job {
  const dg__gn_args *a;
  const dg__vec_kernels *k;
} gn_job;

static void gn_range(void *arg, int64_t begin, int64_t end, int ti) {
  const gn_job *j = arg;
  const dg__gn_args *a = j->a;
  (void)ti;
  int64_t cpg = a->c / a->g, len = cpg * a->s, units = a->n * a->g;
  for (int64_t u = begin; u < end; u++) {
    int64_t n = u / a->g, g = u % a->g;
    const float *x = a->x + (n * a->c + g * cpg) * a->s; /* (cpg, s) */
    float *y = a->y + (n * a->c + g * cpg) * a->s;
    /* one pass over the group, shifted by its first element k (so the sums
     * are of x - k and the cancellation in var is bounded by how far k lies
     * from the mean in standard deviations, not by |mean| / std) */
    double sums[2];
    j->k->sums_shifted(x, len, x[0], sums);
    double d1 = sums[0] / (double)len;
    double mean = (double)x[0] + d1;
    double var = sums[1] / (double)len - d1 * d1;
    if (var < 0.0) var = 0.0;
    double rstd = 1.0 / sqrt(var + (double)a->eps);
    for (int64_t c = 0; c < cpg; c++) {
      int64_t ch = g * cpg + c;
      double gm = a->gamma ? dg_load_f32(a->gamma->data, a->gamma->dtype, ch) : 1.0;
      double bt = a->beta ? dg_load_f32(a->beta->data, a->beta->dtype, ch) : 0.0;
      double sc = rstd * gm;
      /* (x - fm) * sc + bt', with bt' correcting for the f32 rounding of the mean */
      float fm = (float)mean;
      /* the next group (contiguous) is fetched while this one is written */
      const float *pf = u + 1 < units ? x + len + c * a->s : NULL;
      j->k->affine(y + c * a->s, x + c * a->s, a->s, fm, (float)sc, (float)(bt + ((double)fm - mean) * sc),
                   a->silu, pf);
    }
  }
}

void dg__group_norm_fast(dg_engine *e, const dg__gn_args *a) {
  gn_job j = {a, vk(e)};
  run(e, a->n * a->g, a->c / a->g * a->s, gn_range, &j);
}

/* ---- Layer norm ----------------------------------------------------------- */

typedef struct ln_job {
  dg_engine *e;
  const dg__ln_args *a;
  const dg__vec_kernels *k;
  int oom;
} ln_job;

/* g, b as F32: the tensors' own data, or converted into thread scratch. */
static int ln_weights(dg_engine *e, int ti, const dg__ln_args *a, const float **g, const float **b) {
  int need_g = a->gamma && a->gamma->dtype != DG_DTYPE_F32;
  int need_b = a->beta && a->beta->dtype != DG_DTYPE_F32;
  *g = a->gamma ? a->gamma->data : NULL;
  *b = a->beta ? a->beta->data : NULL;
  if (!need_g && !need_b) return 1;
  float *s = dg__engine_scratch(e, ti, (size_t)(2 * a->c) * sizeof(float)); /* (2, c) */
  if (!s) return 0;
  if (need_g) {
    for (int64_t i = 0; i < a->c; i++) s[i] = dg_load_f32(a->gamma->data, a->gamma->dtype, i);
    *g = s;
  }
  if (need_b) {
    for (int64_t i = 0; i < a->c; i++) s[a->c + i] = dg_load_f32(a->beta->data, a->beta->dtype, i);
    *b = s + a->c;
  }
  return 1;
}

static void ln_row(const dg__vec_kernels *k, const dg__ln_args *a, int64_t r, const float *g, const float *b) {
  const float *x = a->x + r * a->c; /* (c) */
  float *y = a->y + r * a->c;
  double mean = k->sum(x, a->c) / (double)a->c;
  double var = k->sum_sq_dev(x, a->c, (float)mean) / (double)a->c;
  double dm = mean - (double)(float)mean;
  var -= dm * dm;
  if (var < 0.0) var = 0.0;
  const float *pf = r + 1 < a->rows ? x + a->c : NULL; /* the next row */
  k->normalize(y, x, a->c, (float)mean, (float)(1.0 / sqrt(var + (double)a->eps)), g, b, pf);
}

static void ln_range(void *arg, int64_t begin, int64_t end, int ti) {
  ln_job *j = arg;
  const float *g, *b;
  if (!ln_weights(j->e, ti, j->a, &g, &b)) {
    /* out of scratch memory: fall back to the reference for these rows */
    dg__ln_args sub = *j->a;
    sub.x += begin * sub.c;
    sub.y += begin * sub.c;
    sub.rows = end - begin;
    dg__layer_norm_ref(j->e, &sub);
    return;
  }
  for (int64_t r = begin; r < end; r++) ln_row(j->k, j->a, r, g, b);
}

void dg__layer_norm_fast(dg_engine *e, const dg__ln_args *a) {
  ln_job j = {e, a, vk(e), 0};
  run(e, a->rows, a->c, ln_range, &j);
}

/* ---- Softmax -------------------------------------------------------------- */

typedef struct rows_job {
  const dg__vec_kernels *k;
  float *y;
  const float *x;
  int64_t c;
  dg__unary_op op;
  float alpha, beta;
} rows_job;

static void softmax_range(void *arg, int64_t begin, int64_t end, int ti) {
  const rows_job *j = arg;
  (void)ti;
  j->k->softmax(j->y + begin * j->c, j->x + begin * j->c, end - begin, j->c);
}

void dg__softmax_fast(dg_engine *e, float *y, const float *x, int64_t rows, int64_t c) {
  rows_job j = {vk(e), y, x, c, DG__UNARY_SILU, 0, 0};
  run(e, rows, c, softmax_range, &j);
}

/* ---- Element-wise ------------------------------------------------------- */

typedef struct elem_job {
  const dg__vec_kernels *k;
  float *y;
  const float *x;
  int64_t n;
  dg__unary_op op;
  float alpha, beta;
} elem_job;

static void unary_range(void *arg, int64_t begin, int64_t end, int ti) {
  const elem_job *j = arg;
  (void)ti;
  int64_t i0 = begin * EBLOCK, i1 = end * EBLOCK < j->n ? end * EBLOCK : j->n;
  j->k->unary(j->op, j->y + i0, j->x + i0, i1 - i0);
}

void dg__unary_fast(dg_engine *e, dg__unary_op op, float *y, const float *x, int64_t n) {
  elem_job j = {vk(e), y, x, n, op, 0, 0};
  run(e, eblocks(n), EBLOCK, unary_range, &j);
}

static void scale_range(void *arg, int64_t begin, int64_t end, int ti) {
  const elem_job *j = arg;
  (void)ti;
  int64_t i0 = begin * EBLOCK, i1 = end * EBLOCK < j->n ? end * EBLOCK : j->n;
  j->k->scale(j->y + i0, j->x + i0, i1 - i0, j->alpha, j->beta);
}

void dg__scale_fast(dg_engine *e, float *y, const float *x, int64_t n, float alpha, float beta) {
  elem_job j = {vk(e), y, x, n, DG__UNARY_SILU, alpha, beta};
  run(e, eblocks(n), EBLOCK, scale_range, &j);
}

static void geglu_range(void *arg, int64_t begin, int64_t end, int ti) {
  const rows_job *j = arg;
  (void)ti;
  for (int64_t r = begin; r < end; r++) {
    float *yr = j->y + r * j->c;           /* (n) */
    const float *xr = j->x + r * 2 * j->c; /* (2n): [value | gate] */
    j->k->geglu(yr, xr, xr + j->c, j->c);
  }
}

void dg__geglu_fast(dg_engine *e, float *y, const float *x, int64_t rows, int64_t n) {
  rows_job j = {vk(e), y, x, n, DG__UNARY_GELU, 0, 0};
  run(e, rows, 3 * n, geglu_range, &j);
}

typedef struct bin_job {
  const dg__vec_kernels *k;
  const dg__bin_args *a;
} bin_job;

/* same shape: element blocks */
static void bin_same_range(void *arg, int64_t begin, int64_t end, int ti) {
  const bin_job *j = arg;
  (void)ti;
  int64_t n = j->a->nb, i0 = begin * EBLOCK, i1 = end * EBLOCK < n ? end * EBLOCK : n;
  j->k->binary_vec(j->a->op, j->a->y + i0, j->a->a + i0, j->a->b + i0, i1 - i0);
}

/* b (nb) against rows of nb: one row per unit */
static void bin_rows_range(void *arg, int64_t begin, int64_t end, int ti) {
  const bin_job *j = arg;
  (void)ti;
  int64_t nb = j->a->nb;
  for (int64_t r = begin; r < end; r++) j->k->binary_vec(j->a->op, j->a->y + r * nb, j->a->a + r * nb, j->a->b, nb);
}

/* b[j] scalar against spans of inner: one span per unit */
static void bin_span_range(void *arg, int64_t begin, int64_t end, int ti) {
  const bin_job *j = arg;
  (void)ti;
  int64_t in = j->a->inner;
  for (int64_t u = begin; u < end; u++)
    j->k->binary_scalar(j->a->op, j->a->y + u * in, j->a->a + u * in, j->a->b[u % j->a->nb], in);
}

void dg__binary_fast(dg_engine *e, const dg__bin_args *a) {
  bin_job j = {vk(e), a};
  if (a->inner == 1 && a->outer == 1)
    run(e, eblocks(a->nb), EBLOCK, bin_same_range, &j);
  else if (a->inner == 1)
    run(e, a->outer, a->nb, bin_rows_range, &j);
  else
    run(e, a->outer * a->nb, a->inner, bin_span_range, &j);
}

/* ---- Layout ----------------------------------------------------------------- */

typedef struct up_job {
  float *y;
  const float *x;
  int64_t h, w;
} up_job;

/* One input row -> two output rows per unit. */
static void up_range(void *arg, int64_t begin, int64_t end, int ti) {
  const up_job *j = arg;
  (void)ti;
  for (int64_t u = begin; u < end; u++) {
    const float *xr = j->x + u * j->w; /* (w) */
    float *y0 = j->y + u * 4 * j->w;   /* (2, 2w) */
    for (int64_t i = 0; i < j->w; i++) y0[2 * i] = y0[2 * i + 1] = xr[i];
    memcpy(y0 + 2 * j->w, y0, (size_t)(2 * j->w) * sizeof(float));
  }
}

void dg__upsample2x_fast(dg_engine *e, float *y, const float *x, int64_t planes, int64_t h, int64_t w) {
  up_job j = {y, x, h, w};
  run(e, planes * h, 4 * w, up_range, &j);
}

#define CCHUNK 16384 /* elements per unit when a copy has few rows */

typedef struct copy_job {
  const dg__copy_args *a;
  int64_t chunks; /* per row */
} copy_job;

static void copy_range(void *arg, int64_t begin, int64_t end, int ti) {
  const copy_job *j = arg;
  const dg__copy_args *a = j->a;
  (void)ti;
  for (int64_t u = begin; u < end; u++) {
    int64_t r = u / j->chunks, c0 = (u % j->chunks) * CCHUNK;
    int64_t len = a->len - c0 < CCHUNK ? a->len - c0 : CCHUNK;
    if (j->chunks == 1) len = a->len, c0 = 0;
    memcpy(a->dst + (size_t)(r * a->dst_stride + c0) * a->esize,
           a->src + (size_t)(r * a->src_stride + c0) * a->esize, (size_t)len * a->esize);
  }
}

void dg__copy_rows_fast(dg_engine *e, const dg__copy_args *a) {
  copy_job j = {a, 1};
  if (a->rows < 2 * dg_engine_threads(e) && a->len > CCHUNK) j.chunks = (a->len + CCHUNK - 1) / CCHUNK;
  run(e, a->rows * j.chunks, a->len / j.chunks, copy_range, &j);
}

#define TILE 32

typedef struct tr_job {
  float *y;
  const float *x;
  int64_t b, r, c, strips;
  const dg__vec_kernels *k;
} tr_job;

/* One strip of TILE input rows of one batch per unit, in TILE x TILE tiles. */
static void tr_range(void *arg, int64_t begin, int64_t end, int ti) {
  const tr_job *j = arg;
  (void)ti;
  for (int64_t u = begin; u < end; u++) {
    int64_t k = u / j->strips, i0 = (u % j->strips) * TILE;
    int rows = (int)(j->r - i0 < TILE ? j->r - i0 : TILE);
    const float *x = j->x + k * j->r * j->c; /* (r, c) */
    float *y = j->y + k * j->r * j->c;       /* (c, r) */
    for (int64_t c0 = 0; c0 < j->c; c0 += TILE)
      j->k->transpose(y + c0 * j->r + i0, j->r, x + i0 * j->c + c0, j->c, rows,
                      (int)(j->c - c0 < TILE ? j->c - c0 : TILE));
  }
}

void dg__transpose_fast(dg_engine *e, float *y, const float *x, int64_t b, int64_t r, int64_t c) {
  tr_job j = {y, x, b, r, c, (r + TILE - 1) / TILE, vk(e)};
  run(e, b * j.strips, TILE * c, tr_range, &j);
}

/* ---- Gather and conversion ------------------------------------------------ */

typedef struct emb_job {
  float *y;
  const void *ids;
  dg_dtype id_type;
  const dg_tensor *table;
} emb_job;

static void emb_range(void *arg, int64_t begin, int64_t end, int ti) {
  const emb_job *j = arg;
  (void)ti;
  int64_t c = j->table->shape[1];
  for (int64_t i = begin; i < end; i++) {
    int64_t id = j->id_type == DG_DTYPE_I64 ? ((const int64_t *)j->ids)[i] : ((const int32_t *)j->ids)[i];
    if (j->table->dtype == DG_DTYPE_F32)
      memcpy(j->y + i * c, (const float *)j->table->data + id * c, (size_t)c * sizeof(float));
    else
      for (int64_t k = 0; k < c; k++) j->y[i * c + k] = dg_load_f32(j->table->data, j->table->dtype, id * c + k);
  }
}

void dg__embedding_fast(dg_engine *e, float *y, const void *ids, dg_dtype id_type, int64_t n,
                        const dg_tensor *table) {
  emb_job j = {y, ids, id_type, table};
  run(e, n, table->shape[1], emb_range, &j);
}

typedef struct conv_job {
  dg_engine *e;
  void *y;
  dg_dtype yt;
  const void *x;
  dg_dtype xt;
  int64_t n;
} conv_job;

static void convert_range(void *arg, int64_t begin, int64_t end, int ti) {
  const conv_job *j = arg;
  (void)ti;
  int64_t i0 = begin * EBLOCK, i1 = end * EBLOCK < j->n ? end * EBLOCK : j->n;
  size_t xs = dg_dtype_size(j->xt), ys = dg_dtype_size(j->yt);
  if (j->xt == j->yt) {
    memcpy((char *)j->y + (size_t)i0 * ys, (const char *)j->x + (size_t)i0 * xs, (size_t)(i1 - i0) * xs);
    return;
  }
  dg__convert_ref(j->e, (char *)j->y + (size_t)i0 * ys, j->yt, (const char *)j->x + (size_t)i0 * xs, j->xt,
                  i1 - i0);
}

void dg__convert_fast(dg_engine *e, void *y, dg_dtype yt, const void *x, dg_dtype xt, int64_t n) {
  conv_job j = {e, y, yt, x, xt, n};
  run(e, eblocks(n), EBLOCK, convert_range, &j);
}
