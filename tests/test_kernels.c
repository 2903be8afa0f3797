/* Fast GEMM-class kernels (fast.c: conv2d, linear, matmul, attention) against
 * double-precision loops in this file, for every ISA the CPU has (generic,
 * avx2, avx512), both precisions, 1 and 2 threads, every weight dtype, odd
 * shapes.  Tolerances, relative to sum_k |a_k * b_k| of each output element
 * (attention: relative to max |v|):
 *   f32 precision   1e-5
 *   bf16 precision  1e-2 (inputs rounded to bf16, f32 accumulation)
 * Results must also be bit-identical between 1 and 2 threads. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "t.h"
#include "tensor/gemm.h"
#include "tensor/kernels.h"
#include "tensor/ops.h"
#include "tensor/tensor.h"

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static float frand(void) { /* uniform [-1, 1) */
  rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
  return (float)((double)(rng_state >> 40) / (double)(1ull << 24) * 2.0 - 1.0);
}

/* A weight-like tensor of dtype t with random values; vals gets the exact f32 values. */
static void *rand_data(dg_dtype t, int64_t n, float *vals) {
  void *p = malloc((size_t)(n > 0 ? n : 1) * dg_dtype_size(t));
  for (int64_t i = 0; i < n; i++) {
    float f = frand();
    if (t == DG_DTYPE_F16) {
      ((uint16_t *)p)[i] = dg_f32_to_f16(f);
      vals[i] = dg_f16_to_f32(((uint16_t *)p)[i]);
    } else if (t == DG_DTYPE_BF16) {
      ((uint16_t *)p)[i] = dg_f32_to_bf16(f);
      vals[i] = dg_bf16_to_f32(((uint16_t *)p)[i]);
    } else {
      ((float *)p)[i] = f;
      vals[i] = f;
    }
  }
  return p;
}

typedef struct cfg {
  dg_engine *e[2]; /* 1 and 2 threads */
  const char *name;
  double tol;
} cfg;

static int ncfg;
static cfg cfgs[8];

static void add_cfg(dg_isa isa, dg_precision prec, const char *name) {
  cfg *c = &cfgs[ncfg];
  for (int t = 0; t < 2; t++) {
    dg_engine_params p = dg_engine_params_default();
    p.n_threads = t + 1;
    p.isa = isa;
    p.precision = prec;
    if (dg_engine_new(&p, &c->e[t]) != DG_STATUS_OK) {
      fprintf(stderr, "engine %s unavailable\n", name);
      if (t == 1) dg_engine_free(c->e[0]);
      return;
    }
  }
  c->name = name;
  /* bf16 rounding only happens where the kernel supports it */
  c->tol = (prec == DG_PRECISION_BF16 && isa == DG_ISA_AVX512 && dg_cpu_has_avx512bf16()) ? 1e-2 : 1e-5;
  ncfg++;
}

/* Compare y against ref with per-element scale; count violations. */
static int compare(const char *what, const cfg *c, const float *y, const double *ref, const double *mag,
                   int64_t n) {
  double worst = 0.0;
  int64_t wi = 0;
  for (int64_t i = 0; i < n; i++) {
    double err = fabs((double)y[i] - ref[i]) / (mag[i] + 1e-30);
    if (!(err <= worst)) {
      worst = err;
      wi = i;
    }
  }
  int ok = worst <= c->tol;
  CHECK_MSG(ok, "%s [%s]: worst rel err %.3g at %lld (got %.8g want %.8g)", what, c->name, worst,
            (long long)wi, n ? (double)y[wi] : 0.0, n ? ref[wi] : 0.0);
  return ok;
}

/* ---- linear ---------------------------------------------------------------- */
static void test_linear(int64_t m, int64_t k, int64_t n, dg_dtype wt, int bias, int w4d) {
  float *x = malloc(sizeof(float) * (size_t)(m * k)), *wv = malloc(sizeof(float) * (size_t)(n * k));
  float *bv = malloc(sizeof(float) * (size_t)n);
  for (int64_t i = 0; i < m * k; i++) x[i] = frand();
  void *w = rand_data(wt, n * k, wv);
  void *b = bias ? rand_data(wt, n, bv) : NULL;
  double *ref = malloc(sizeof(double) * (size_t)(m * n)), *mag = malloc(sizeof(double) * (size_t)(m * n));
  for (int64_t i = 0; i < m; i++)
    for (int64_t j = 0; j < n; j++) {
      double s = bias ? bv[j] : 0.0, a = bias ? fabs(bv[j]) : 0.0;
      for (int64_t q = 0; q < k; q++) {
        s += (double)x[i * k + q] * wv[j * k + q];
        a += fabs((double)x[i * k + q] * wv[j * k + q]);
      }
      ref[i * n + j] = s;
      mag[i * n + j] = a;
    }
  int64_t xs[2] = {m, k}, ws[4] = {n, k, 1, 1}, bs[1] = {n}, ys[2] = {m, n};
  dg_tensor tx = dg_tensor_make(DG_DTYPE_F32, 2, xs, x), tw = dg_tensor_make(wt, w4d ? 4 : 2, ws, w);
  dg_tensor tb = dg_tensor_make(wt, 1, bs, b);
  float *y[2];
  char what[128];
  snprintf(what, sizeof what, "linear m=%lld k=%lld n=%lld %s%s", (long long)m, (long long)k, (long long)n,
           dg_dtype_name(wt), bias ? " +bias" : "");
  for (int ci = 0; ci < ncfg; ci++) {
    for (int t = 0; t < 2; t++) {
      y[t] = malloc(sizeof(float) * (size_t)(m * n + 1));
      dg_tensor ty = dg_tensor_make(DG_DTYPE_F32, 2, ys, y[t]);
      dg_status st = dg_linear(cfgs[ci].e[t], &ty, &tx, &tw, bias ? &tb : NULL);
      CHECK_MSG(st == DG_STATUS_OK, "%s: %s", what, dg_strerror(st));
      compare(what, &cfgs[ci], y[t], ref, mag, m * n);
    }
    CHECK_MSG(memcmp(y[0], y[1], sizeof(float) * (size_t)(m * n)) == 0, "%s [%s]: 1 vs 2 threads differ",
              what, cfgs[ci].name);
    free(y[0]);
    free(y[1]);
  }
  free(x), free(wv), free(bv), free(w), free(b), free(ref), free(mag);
}

/* ---- conv2d ---------------------------------------------------------------- */
static void test_conv(int64_t nb, int64_t ci, int64_t h, int64_t w, int64_t co, int ks, int stride, int pad,
                      dg_dtype wt, int bias) {
  int64_t ho = (h + 2 * pad - ks) / stride + 1, wo = (w + 2 * pad - ks) / stride + 1;
  int64_t nx = nb * ci * h * w, nw = co * ci * ks * ks, ny = nb * co * ho * wo;
  float *x = malloc(sizeof(float) * (size_t)nx), *wv = malloc(sizeof(float) * (size_t)nw);
  float *bv = malloc(sizeof(float) * (size_t)co);
  for (int64_t i = 0; i < nx; i++) x[i] = frand();
  void *wd = rand_data(wt, nw, wv);
  void *bd = bias ? rand_data(wt, co, bv) : NULL;
  double *ref = malloc(sizeof(double) * (size_t)ny), *mag = malloc(sizeof(double) * (size_t)ny);
  for (int64_t n = 0; n < nb; n++)
    for (int64_t o = 0; o < co; o++)
      for (int64_t oy = 0; oy < ho; oy++)
        for (int64_t ox = 0; ox < wo; ox++) {
          double s = bias ? bv[o] : 0.0, a = bias ? fabs(bv[o]) : 0.0;
          for (int64_t c = 0; c < ci; c++)
            for (int dy = 0; dy < ks; dy++)
              for (int dx = 0; dx < ks; dx++) {
                int64_t sy = oy * stride + dy - pad, sx = ox * stride + dx - pad;
                if (sy < 0 || sy >= h || sx < 0 || sx >= w) continue;
                double p = (double)x[((n * ci + c) * h + sy) * w + sx] * wv[((o * ci + c) * ks + dy) * ks + dx];
                s += p;
                a += fabs(p);
              }
          int64_t yi = ((n * co + o) * ho + oy) * wo + ox;
          ref[yi] = s;
          mag[yi] = a;
        }
  int64_t xs[4] = {nb, ci, h, w}, ws[4] = {co, ci, ks, ks}, bs[1] = {co}, ys[4] = {nb, co, ho, wo};
  dg_tensor tx = dg_tensor_make(DG_DTYPE_F32, 4, xs, x), tw = dg_tensor_make(wt, 4, ws, wd);
  dg_tensor tb = dg_tensor_make(wt, 1, bs, bd);
  char what[160];
  snprintf(what, sizeof what, "conv n=%lld ci=%lld %lldx%lld co=%lld k=%d s=%d p=%d %s%s", (long long)nb,
           (long long)ci, (long long)h, (long long)w, (long long)co, ks, stride, pad, dg_dtype_name(wt),
           bias ? " +bias" : "");
  for (int c = 0; c < ncfg; c++) {
    float *y[2];
    for (int t = 0; t < 2; t++) {
      y[t] = malloc(sizeof(float) * (size_t)ny);
      dg_tensor ty = dg_tensor_make(DG_DTYPE_F32, 4, ys, y[t]);
      dg_status st = dg_conv2d(cfgs[c].e[t], &ty, &tx, &tw, bias ? &tb : NULL, stride, pad);
      CHECK_MSG(st == DG_STATUS_OK, "%s: %s", what, dg_strerror(st));
      compare(what, &cfgs[c], y[t], ref, mag, ny);
    }
    CHECK_MSG(memcmp(y[0], y[1], sizeof(float) * (size_t)ny) == 0, "%s [%s]: 1 vs 2 threads differ", what,
              cfgs[c].name);
    free(y[0]);
    free(y[1]);
  }
  free(x), free(wv), free(bv), free(wd), free(bd), free(ref), free(mag);
}

/* ---- matmul ---------------------------------------------------------------- */
static void test_matmul(int64_t nb, int64_t m, int64_t k, int64_t n, int tb, float alpha) {
  float *a = malloc(sizeof(float) * (size_t)(nb * m * k)), *b = malloc(sizeof(float) * (size_t)(nb * k * n));
  for (int64_t i = 0; i < nb * m * k; i++) a[i] = frand();
  for (int64_t i = 0; i < nb * k * n; i++) b[i] = frand();
  int64_t ny = nb * m * n;
  double *ref = malloc(sizeof(double) * (size_t)ny), *mag = malloc(sizeof(double) * (size_t)ny);
  for (int64_t bi = 0; bi < nb; bi++)
    for (int64_t i = 0; i < m; i++)
      for (int64_t j = 0; j < n; j++) {
        double s = 0, g = 0;
        for (int64_t q = 0; q < k; q++) {
          double bb = tb ? b[(bi * n + j) * k + q] : b[(bi * k + q) * n + j];
          double p = (double)alpha * a[(bi * m + i) * k + q] * bb;
          s += p;
          g += fabs(p);
        }
        ref[(bi * m + i) * n + j] = s;
        mag[(bi * m + i) * n + j] = g;
      }
  int64_t as[3] = {nb, m, k}, bs[3] = {nb, tb ? n : k, tb ? k : n}, ys[3] = {nb, m, n};
  dg_tensor ta = dg_tensor_make(DG_DTYPE_F32, 3, as, a), tbt = dg_tensor_make(DG_DTYPE_F32, 3, bs, b);
  char what[128];
  snprintf(what, sizeof what, "matmul b=%lld m=%lld k=%lld n=%lld tb=%d alpha=%g", (long long)nb, (long long)m,
           (long long)k, (long long)n, tb, (double)alpha);
  for (int c = 0; c < ncfg; c++) {
    float *y[2];
    for (int t = 0; t < 2; t++) {
      y[t] = malloc(sizeof(float) * (size_t)ny);
      dg_tensor ty = dg_tensor_make(DG_DTYPE_F32, 3, ys, y[t]);
      dg_status st = dg_matmul(cfgs[c].e[t], &ty, &ta, &tbt, tb, alpha);
      CHECK_MSG(st == DG_STATUS_OK, "%s: %s", what, dg_strerror(st));
      compare(what, &cfgs[c], y[t], ref, mag, ny);
    }
    CHECK_MSG(memcmp(y[0], y[1], sizeof(float) * (size_t)ny) == 0, "%s [%s]: 1 vs 2 threads differ", what,
              cfgs[c].name);
    free(y[0]);
    free(y[1]);
  }
  free(a), free(b), free(ref), free(mag);
}

/* ---- attention ------------------------------------------------------------- */
static void test_attention(int64_t nb, int64_t lq, int64_t lk, int nh, int64_t d, int causal, float scale) {
  int64_t c = nh * d;
  float *q = malloc(sizeof(float) * (size_t)(nb * lq * c)), *k = malloc(sizeof(float) * (size_t)(nb * lk * c));
  float *v = malloc(sizeof(float) * (size_t)(nb * lk * c));
  /* larger q/k spread makes the softmax peaky, which exercises the running max */
  for (int64_t i = 0; i < nb * lq * c; i++) q[i] = 2.0f * frand();
  for (int64_t i = 0; i < nb * lk * c; i++) k[i] = 2.0f * frand();
  double vmax = 0;
  for (int64_t i = 0; i < nb * lk * c; i++) {
    v[i] = frand();
    if (fabs(v[i]) > vmax) vmax = fabs(v[i]);
  }
  int64_t ny = nb * lq * c;
  double *ref = malloc(sizeof(double) * (size_t)ny), *mag = malloc(sizeof(double) * (size_t)ny);
  double *sc = malloc(sizeof(double) * (size_t)lk);
  double sf = scale > 0 ? scale : 1.0 / sqrt((double)d);
  for (int64_t b = 0; b < nb; b++)
    for (int h = 0; h < nh; h++)
      for (int64_t i = 0; i < lq; i++) {
        int64_t nk = causal ? (i + 1 < lk ? i + 1 : lk) : lk;
        double mx = -INFINITY, sum = 0;
        for (int64_t j = 0; j < nk; j++) {
          double s = 0;
          for (int64_t t = 0; t < d; t++) s += (double)q[(b * lq + i) * c + h * d + t] * k[(b * lk + j) * c + h * d + t];
          sc[j] = s * sf;
          if (sc[j] > mx) mx = sc[j];
        }
        for (int64_t j = 0; j < nk; j++) sum += (sc[j] = exp(sc[j] - mx));
        for (int64_t t = 0; t < d; t++) {
          double o = 0;
          for (int64_t j = 0; j < nk; j++) o += sc[j] * v[(b * lk + j) * c + h * d + t];
          ref[(b * lq + i) * c + h * d + t] = o / sum;
          mag[(b * lq + i) * c + h * d + t] = vmax;
        }
      }
  int64_t qs[3] = {nb, lq, c}, ks[3] = {nb, lk, c};
  dg_tensor tq = dg_tensor_make(DG_DTYPE_F32, 3, qs, q), tk = dg_tensor_make(DG_DTYPE_F32, 3, ks, k);
  dg_tensor tv = dg_tensor_make(DG_DTYPE_F32, 3, ks, v);
  char what[128];
  snprintf(what, sizeof what, "attention b=%lld lq=%lld lk=%lld h=%d d=%lld causal=%d", (long long)nb,
           (long long)lq, (long long)lk, nh, (long long)d, causal);
  for (int ci = 0; ci < ncfg; ci++) {
    float *y[2];
    for (int t = 0; t < 2; t++) {
      y[t] = malloc(sizeof(float) * (size_t)ny);
      dg_tensor ty = dg_tensor_make(DG_DTYPE_F32, 3, qs, y[t]);
      dg_status st = dg_attention(cfgs[ci].e[t], &ty, &tq, &tk, &tv, nh, causal, scale);
      CHECK_MSG(st == DG_STATUS_OK, "%s: %s", what, dg_strerror(st));
      cfg cc = cfgs[ci];
      cc.tol *= 3; /* exp2 polynomial + two chained products */
      compare(what, &cc, y[t], ref, mag, ny);
    }
    CHECK_MSG(memcmp(y[0], y[1], sizeof(float) * (size_t)ny) == 0, "%s [%s]: 1 vs 2 threads differ", what,
              cfgs[ci].name);
    free(y[0]);
    free(y[1]);
  }
  free(q), free(k), free(v), free(ref), free(mag), free(sc);
}

/* ---- every micro-kernel directly through the GEMM driver ------------------ */
/* C (m, n) = A (m, k) . B (k, n) + row bias, A stored IK in dtype at, B stored KI or
 * IK (f32), with alpha folded into A's scale. */
static void test_ukernel(dg_engine *e, const dg__ukernel *uk, int64_t m, int64_t k, int64_t n, dg_dtype at,
                         int b_ik, float alpha) {
  float *av = malloc(sizeof(float) * (size_t)(m * k)), *b = malloc(sizeof(float) * (size_t)(k * n));
  float *bias = malloc(sizeof(float) * (size_t)m), *c = malloc(sizeof(float) * (size_t)(m * n));
  void *a = rand_data(at, m * k, av);
  for (int64_t i = 0; i < k * n; i++) b[i] = frand();
  for (int64_t i = 0; i < m; i++) bias[i] = frand();
  double *ref = malloc(sizeof(double) * (size_t)(m * n)), *mag = malloc(sizeof(double) * (size_t)(m * n));
  for (int64_t i = 0; i < m; i++)
    for (int64_t j = 0; j < n; j++) {
      double s = bias[i], g = fabs(bias[i]);
      for (int64_t q = 0; q < k; q++) {
        double p = (double)alpha * av[i * k + q] * (b_ik ? b[j * k + q] : b[q * n + j]);
        s += p;
        g += fabs(p);
      }
      ref[i * n + j] = s;
      mag[i * n + j] = g;
    }
  dg__gemm g;
  memset(&g, 0, sizeof g);
  g.m = m;
  g.n = n;
  g.k = k;
  g.a = (dg__opnd){DG__OPND_IK, at, a, k, alpha, NULL};
  g.b = (dg__opnd){b_ik ? DG__OPND_IK : DG__OPND_KI, DG_DTYPE_F32, b, b_ik ? k : n, 1.0f, NULL};
  g.c = c;
  g.ldc = n;
  g.jdiv = n;
  g.row_bias = bias;
  g.bias_dtype = DG_DTYPE_F32;
  dg_status st = dg__gemm_run(e, uk, &g);
  CHECK(st == DG_STATUS_OK);
  cfg cc;
  memset(&cc, 0, sizeof cc);
  cc.name = uk->name;
  cc.tol = uk->bf16 ? 1e-2 : 1e-5;
  char what[128];
  snprintf(what, sizeof what, "ukernel gemm m=%lld k=%lld n=%lld A %s B %s", (long long)m, (long long)k,
           (long long)n, dg_dtype_name(at), b_ik ? "IK" : "KI");
  compare(what, &cc, c, ref, mag, m * n);
  free(av), free(b), free(bias), free(c), free(a), free(ref), free(mag);
}

static void test_all_ukernels(void) {
  const dg__ukernel *uks[5];
  int nk = 0;
  uks[nk++] = dg__ukernel_generic();
  if (dg_cpu_has_avx2()) uks[nk++] = dg__ukernel_avx2();
  if (dg_cpu_has_avx512()) uks[nk++] = dg__ukernel_avx512();
  if (dg_cpu_has_avx512bf16()) uks[nk++] = dg__ukernel_avx512_bf16();
  if (dg_cpu_has_avx512() && dg__ukernel_amx_bf16()) uks[nk++] = dg__ukernel_amx_bf16();
  printf("micro-kernels tested:");
  for (int i = 0; i < nk; i++) printf(" %s", uks[i]->name);
  printf("\n");
  dg_engine_params p = dg_engine_params_default();
  p.n_threads = 2;
  dg_engine *e = NULL;
  if (dg_engine_new(&p, &e) != DG_STATUS_OK) {
    CHECK(0);
    return;
  }
  const dg_dtype wts[3] = {DG_DTYPE_F32, DG_DTYPE_F16, DG_DTYPE_BF16};
  for (int i = 0; i < nk; i++)
    for (int t = 0; t < 3; t++) {
      test_ukernel(e, uks[i], 1, 1, 1, wts[t], 0, 1.0f);
      test_ukernel(e, uks[i], 45, 37, 70, wts[t], 0, 0.5f);
      test_ukernel(e, uks[i], 70, 545, 33, wts[t], 1, 1.0f); /* K > one K block, odd */
      test_ukernel(e, uks[i], 64, 64, 64, wts[t], 1, 1.0f);  /* whole tiles only */
      test_ukernel(e, uks[i], 20, 2100, 40, wts[t], 0, 1.0f); /* several K blocks for bf16 too */
    }
  /* rows per thread too many for one A block: row blocks, B packed a whole block ahead
   * (smaller M packs B panels just before use), K blocks accumulating */
  for (int i = 0; i < nk; i++) test_ukernel(e, uks[i], 2000, 1500, 40, DG_DTYPE_F16, 1, 1.0f);
  dg_engine_free(e);
}

int main(void) {
  add_cfg(DG_ISA_GENERIC, DG_PRECISION_F32, "generic");
  if (dg_cpu_has_avx2()) add_cfg(DG_ISA_AVX2, DG_PRECISION_F32, "avx2");
  if (dg_cpu_has_avx512()) add_cfg(DG_ISA_AVX512, DG_PRECISION_F32, "avx512");
  if (dg_cpu_has_avx512bf16()) add_cfg(DG_ISA_AVX512, DG_PRECISION_BF16, "avx512-bf16");
  else if (dg_cpu_has_avx512()) fprintf(stderr, "note: no avx512bf16 on this CPU, bf16 path not tested\n");
  CHECK(ncfg >= 1);
  test_all_ukernels();

  const dg_dtype wts[3] = {DG_DTYPE_F32, DG_DTYPE_F16, DG_DTYPE_BF16};
  for (int i = 0; i < 3; i++) {
    dg_dtype wt = wts[i];
    test_linear(1, 1, 1, wt, 1, 0);
    test_linear(3, 0, 5, wt, 1, 0); /* K = 0: y = bias */
    test_linear(7, 13, 5, wt, 0, 0);
    test_linear(37, 64, 33, wt, 1, 1);
    test_linear(130, 77, 50, wt, 1, 0);
    test_linear(29, 600, 71, wt, 1, 0);   /* K spans several K blocks (f32) */
    test_linear(9, 2100, 20, wt, 1, 0);   /* several K blocks for bf16 too */
    test_linear(200, 40, 300, wt, 0, 0);  /* N > M: split over columns */
    test_conv(1, 3, 9, 7, 5, 3, 1, 1, wt, 1);
    test_conv(2, 8, 12, 10, 17, 3, 2, 1, wt, 1);
    test_conv(2, 16, 8, 8, 33, 1, 1, 0, wt, 1);
    test_conv(1, 5, 11, 13, 7, 3, 2, 0, wt, 0);
    test_conv(1, 40, 16, 12, 29, 3, 1, 1, wt, 1); /* K = 360 */
    test_conv(1, 120, 6, 5, 9, 3, 1, 1, wt, 1);   /* K = 1080: K blocks end inside a channel */
    test_conv(2, 4, 37, 41, 3, 3, 1, 1, wt, 0);   /* rows wider than a panel */
    test_conv(1, 6, 9, 11, 70, 1, 2, 0, wt, 1);   /* 1x1 stride 2, Co > N */
  }
  test_matmul(1, 1, 1, 1, 0, 1.0f);
  test_matmul(2, 3, 0, 4, 0, 1.0f); /* K = 0: zeros */
  test_matmul(3, 17, 23, 35, 0, 0.5f);
  test_matmul(2, 40, 300, 19, 1, 1.0f);
  test_matmul(2, 33, 8, 70, 1, -2.0f);
  test_attention(1, 1, 1, 1, 8, 0, 0.0f);
  test_attention(2, 37, 45, 3, 8, 0, 0.0f);
  test_attention(1, 50, 50, 2, 16, 1, 0.0f);
  test_attention(2, 70, 77, 2, 40, 0, 0.0f);   /* cross attention, 77 text tokens */
  test_attention(1, 33, 300, 1, 5, 0, 0.3f);   /* odd head dim, several key blocks */
  test_attention(1, 300, 300, 1, 40, 1, 0.0f); /* causal across key blocks */
  test_attention(1, 90, 20, 2, 24, 1, 0.0f);   /* causal, Lq > Lk */
  test_attention(1, 40, 2100, 2, 64, 0, 0.0f); /* several key blocks, all heads per task */
  test_attention(1, 20, 4000, 4, 64, 0, 0.0f); /* packs of all heads > 4 MiB: one head at a time */
  test_attention(3, 45, 77, 8, 40, 0, 0.0f);   /* 8 heads x 40, batch 3: all heads per task */
  /* short key sequences (<= 128 keys): every key count and head width of register tiles */
  test_attention(1, 19, 128, 2, 160, 0, 0.0f);
  test_attention(2, 21, 16, 1, 256, 1, 0.0f);
  test_attention(1, 67, 97, 3, 80, 1, 0.5f);
  test_attention(1, 41, 129, 2, 33, 0, 0.0f); /* just past the short path */
  /* bf16 on AMX: queries as rows up to 1024 keys, the key-blocked loop beyond */
  test_attention(2, 70, 1024, 2, 40, 1, 0.0f);
  test_attention(1, 33, 1025, 1, 80, 0, 0.0f);
  test_attention(1, 50, 1100, 2, 40, 1, 0.0f); /* key blocks, head width 40: a 32-row tail panel */
  for (int64_t lk = 1; lk <= 112; lk += 37) test_attention(1, 35, lk, 2, 16 * (lk % 5) + 7, lk & 1, 0.0f);

  for (int c = 0; c < ncfg; c++) {
    dg_engine_free(cfgs[c].e[0]);
    dg_engine_free(cfgs[c].e[1]);
  }
  /* With AMX the bf16 precision runs on the AMX kernel; run everything once more
   * with DG_AMX=0 so the vdpbf16ps kernel is covered through the ops too. */
  if (!getenv("DG_AMX") && dg_cpu_has_avx512() && dg__ukernel_amx_bf16()) {
    printf("re-running with DG_AMX=0\n");
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
      setenv("DG_AMX", "0", 1);
      execl("/proc/self/exe", "test_kernels", (char *)NULL);
      _exit(127);
    }
    int ws = 0;
    CHECK(pid > 0 && waitpid(pid, &ws, 0) == pid && WIFEXITED(ws) && WEXITSTATUS(ws) == 0);
  }
  T_DONE();
}
