/* GEMM-class kernel benchmark: machine peak (OpenBLAS sgemm 2048^3, an FMA
 * loop, a vdpbf16ps loop) and GFLOP/s of conv2d / linear / attention at the
 * SD1.5 UNet shapes (batch 2), f32 and bf16 precision, each also as % of the
 * sgemm rate measured in the same run.
 *
 *   bench_kernels [--quick] [--threads N] [--only SUBSTRING] [--no-peak] [--peak-only] [--cpu-time] [--paired] [--attn-all]
 *
 * (--only attention --no-peak: the attention cases alone; --attn-all adds the other SD1.5 shapes;
 * --peak-only: the machine peak section alone, a reading of the host's speed for other benchmarks.)
 *
 * Weights are F16 (as in the published checkpoints); activations F32. */
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tensor/gemm.h" /* dg__ukernel_amx_bf16(): AMX availability + OS permission */
#include "tensor/ops.h"
#include "tensor/tensor.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

static int g_cpu_time; /* --cpu-time: process CPU time (for tuning on a busy machine, 1 thread) */
static double now(void) {
  struct timespec ts;
  clock_gettime(g_cpu_time ? CLOCK_PROCESS_CPUTIME_ID : CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int g_quick, g_no_peak, g_peak_only;
static int g_attn_all; /* --attn-all: attention at every SD1.5 UNet level and CLIP text too */
static const char *g_only; /* run only the cases whose name contains this */
static double g_min_time = 1.0;

/* Best time of repeated runs of fn(arg) (at least 3 runs and g_min_time seconds). */
static double time_best(void (*fn)(void *), void *arg) {
  fn(arg); /* warm-up: scratch, page faults, caches */
  double best = 1e30, t_start = now();
  int runs = 0;
  while (runs < 3 || now() - t_start < g_min_time) {
    double t0 = now();
    fn(arg);
    double dt = now() - t0;
    if (dt < best) best = dt;
    runs++;
    if (runs >= 50) break;
  }
  return best;
}

static float *rand_f32(int64_t n) {
  float *p = malloc((size_t)n * sizeof *p);
  uint64_t s = 0x243f6a8885a308d3ull + (uint64_t)n;
  for (int64_t i = 0; i < n; i++) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    p[i] = (float)((double)(s >> 40) / (double)(1ull << 24) * 2.0 - 1.0);
  }
  return p;
}

static uint16_t *rand_f16(int64_t n, float scale) {
  float *f = rand_f32(n);
  uint16_t *p = malloc((size_t)n * sizeof *p);
  for (int64_t i = 0; i < n; i++) p[i] = dg_f32_to_f16(f[i] * scale);
  free(f);
  return p;
}

/* ---- machine peak -------------------------------------------------------- */
#ifdef DG_HAVE_OPENBLAS
/* cblas.h is not on the default include path on every distribution. */
void cblas_sgemm(int order, int ta, int tb, int m, int n, int k, float alpha, const float *a, int lda,
                 const float *b, int ldb, float beta, float *c, int ldc);
void openblas_set_num_threads(int n);
typedef struct sg_arg { float *a, *b, *c; int n; } sg_arg;
static void run_sgemm(void *p) {
  sg_arg *s = p;
  cblas_sgemm(101 /* row major */, 111, 111, s->n, s->n, s->n, 1.0f, s->a, s->n, s->b, s->n, 0.0f, s->c, s->n);
}
#endif

static double sgemm_rate(void) {
#ifdef DG_HAVE_OPENBLAS
  static sg_arg s;
  if (!s.a) {
    s.a = rand_f32(2048 * 2048), s.b = rand_f32(2048 * 2048), s.c = malloc(sizeof(float) * 2048 * 2048), s.n = 2048;
  }
  double save = g_min_time;
  g_min_time = 0.3;
  double t = time_best(run_sgemm, &s);
  g_min_time = save;
  return 2.0 * 2048.0 * 2048.0 * 2048.0 / t * 1e-9;
#else
  return 0.0;
#endif
}

#if defined(__x86_64__)
#define FMA_ITERS 20000000L
__attribute__((target("avx512f"))) static void *fma_loop(void *out) {
  __m512 acc[24];
  __m512 m = _mm512_set1_ps(0.999999f), a = _mm512_set1_ps(1e-7f);
  for (int i = 0; i < 24; i++) acc[i] = _mm512_set1_ps((float)i);
  for (long it = 0; it < FMA_ITERS; it++) {
#pragma GCC unroll 24
    for (int i = 0; i < 24; i++) acc[i] = _mm512_fmadd_ps(acc[i], m, a);
  }
  __m512 s = acc[0];
  for (int i = 1; i < 24; i++) s = _mm512_add_ps(s, acc[i]);
  *(float *)out = _mm512_reduce_add_ps(s);
  return NULL;
}
__attribute__((target("avx512f,avx512bf16"))) static void *dpbf16_loop(void *out) {
  __m512 acc[24];
  __m512bh a = (__m512bh)_mm512_set1_epi32(0x3f803f80), b = (__m512bh)_mm512_set1_epi32(0x33803380);
  for (int i = 0; i < 24; i++) acc[i] = _mm512_set1_ps((float)i);
  for (long it = 0; it < FMA_ITERS; it++) {
#pragma GCC unroll 24
    for (int i = 0; i < 24; i++) acc[i] = _mm512_dpbf16_ps(acc[i], a, b);
  }
  __m512 s = acc[0];
  for (int i = 1; i < 24; i++) s = _mm512_add_ps(s, acc[i]);
  *(float *)out = _mm512_reduce_add_ps(s);
  return NULL;
}
/* AMX: 4 accumulator tiles, operands resident in tiles (tdpbf16ps throughput). */
typedef struct amx_cfg_t {
  uint8_t palette, start_row, reserved[14];
  uint16_t colsb[16];
  uint8_t rows[16];
} amx_cfg_t;
__attribute__((target("amx-tile,amx-bf16"))) static void *amx_loop(void *out) {
  static _Alignas(64) uint16_t ab[16 * 32];
  static _Alignas(64) float c[16 * 16];
  _Alignas(64) amx_cfg_t cfg;
  memset(&cfg, 0, sizeof cfg);
  cfg.palette = 1;
  for (int i = 0; i < 8; i++) cfg.colsb[i] = 64, cfg.rows[i] = 16;
  for (int i = 0; i < 16 * 32; i++) ab[i] = 0x3f80; /* 1.0 */
  _tile_loadconfig(&cfg);
  _tile_zero(0);
  _tile_zero(1);
  _tile_zero(2);
  _tile_zero(3);
  _tile_loadd(4, ab, 64);
  _tile_loadd(5, ab, 64);
  _tile_loadd(6, ab, 64);
  _tile_loadd(7, ab, 64);
  for (long it = 0; it < FMA_ITERS / 4; it++) {
    _tile_dpbf16ps(0, 4, 6);
    _tile_dpbf16ps(1, 4, 7);
    _tile_dpbf16ps(2, 5, 6);
    _tile_dpbf16ps(3, 5, 7);
  }
  _tile_stored(0, c, 64);
  _tile_release();
  *(float *)out = c[0];
  return NULL;
}

/* GFLOP/s of fn on nt threads; flops per iteration per thread given. */
static double loop_peak(void *(*fn)(void *), int nt, double flops_per_iter) {
  pthread_t th[64];
  float out[64];
  double t0 = now();
  for (int i = 1; i < nt; i++) pthread_create(&th[i], NULL, fn, &out[i]);
  fn(&out[0]);
  for (int i = 1; i < nt; i++) pthread_join(th[i], NULL);
  double dt = now() - t0;
  return (double)nt * flops_per_iter * (double)FMA_ITERS / dt * 1e-9;
}
#endif

/* ---- our kernels --------------------------------------------------------- */
typedef struct conv_arg {
  dg_engine *e;
  dg_tensor y, x, w, b;
  int stride, pad;
} conv_arg;
static void run_conv(void *p) {
  conv_arg *a = p;
  if (dg_conv2d(a->e, &a->y, &a->x, &a->w, &a->b, a->stride, a->pad) != DG_STATUS_OK) abort();
}
typedef struct lin_arg {
  dg_engine *e;
  dg_tensor y, x, w, b;
} lin_arg;
static void run_linear(void *p) {
  lin_arg *a = p;
  if (dg_linear(a->e, &a->y, &a->x, &a->w, &a->b) != DG_STATUS_OK) abort();
}
typedef struct att_arg {
  dg_engine *e;
  dg_tensor y, q, k, v;
  int heads;
} att_arg;
static void run_attn(void *p) {
  att_arg *a = p;
  if (dg_attention(a->e, &a->y, &a->q, &a->k, &a->v, a->heads, 0, 0.0f) != DG_STATUS_OK) abort();
}

static double g_sgemm = 0.0;
static int g_paired; /* --paired: re-measure sgemm right before every case (busy machines) */
static double sgemm_rate(void);

static int skip(const char *prec, const char *what) {
  char full[160];
  snprintf(full, sizeof full, "%s %s", prec, what);
  return g_only && !strstr(full, g_only);
}

static void report(const char *prec, const char *what, double flops, double secs) {
  double gf = flops / secs * 1e-9;
  if (g_paired && g_sgemm > 0)
    printf("| %-4s | %-44s | %8.2f | %7.1f | %5.1f%% | %6.1f |\n", prec, what, secs * 1e3, gf, 100.0 * gf / g_sgemm,
           g_sgemm);
  else if (g_sgemm > 0)
    printf("| %-4s | %-44s | %8.2f | %7.1f | %5.1f%% |\n", prec, what, secs * 1e3, gf, 100.0 * gf / g_sgemm);
  else
    printf("| %-4s | %-44s | %8.2f | %7.1f |   n/a |\n", prec, what, secs * 1e3, gf);
  fflush(stdout);
}

static void bench_conv(dg_engine *e, const char *prec, int64_t n, int64_t c, int64_t hw, int ks) {
  int pad = ks / 2;
  char what[96];
  snprintf(what, sizeof what, "conv%dx%d %lldx%lldx%lld -> %lld, batch %lld", ks, ks, (long long)hw,
           (long long)hw, (long long)c, (long long)c, (long long)n);
  if (skip(prec, what)) return; /* before allocating: --only runs fast */
  int64_t xs[4] = {n, c, hw, hw}, ws[4] = {c, c, ks, ks}, bs[1] = {c};
  float *x = rand_f32(n * c * hw * hw), *y = malloc(sizeof(float) * (size_t)(n * c * hw * hw));
  uint16_t *w = rand_f16(c * c * ks * ks, 0.05f), *b = rand_f16(c, 0.1f);
  conv_arg a = {e, dg_tensor_make(DG_DTYPE_F32, 4, xs, y), dg_tensor_make(DG_DTYPE_F32, 4, xs, x),
                dg_tensor_make(DG_DTYPE_F16, 4, ws, w), dg_tensor_make(DG_DTYPE_F16, 1, bs, b), 1, pad};
  if (g_paired && !skip(prec, what)) g_sgemm = sgemm_rate();
  double t = skip(prec, what) ? 0.0 : time_best(run_conv, &a);
  if (t > 0) report(prec, what, 2.0 * (double)(n * c * c * ks * ks * hw * hw), t);
  free(x), free(y), free(w), free(b);
}

static void bench_linear(dg_engine *e, const char *prec, int64_t m, int64_t k, int64_t nout, const char *tag) {
  char what[96];
  snprintf(what, sizeof what, "linear %lld x %lld -> %lld (%s)", (long long)m, (long long)k, (long long)nout, tag);
  if (skip(prec, what)) return;
  int64_t xs[2] = {m, k}, ws[2] = {nout, k}, bs[1] = {nout}, ys[2] = {m, nout};
  float *x = rand_f32(m * k), *y = malloc(sizeof(float) * (size_t)(m * nout));
  uint16_t *w = rand_f16(nout * k, 0.05f), *b = rand_f16(nout, 0.1f);
  lin_arg a = {e, dg_tensor_make(DG_DTYPE_F32, 2, ys, y), dg_tensor_make(DG_DTYPE_F32, 2, xs, x),
               dg_tensor_make(DG_DTYPE_F16, 2, ws, w), dg_tensor_make(DG_DTYPE_F16, 1, bs, b)};
  if (g_paired && !skip(prec, what)) g_sgemm = sgemm_rate();
  double t = skip(prec, what) ? 0.0 : time_best(run_linear, &a);
  if (t > 0) report(prec, what, 2.0 * (double)(m * k * nout), t);
  free(x), free(y), free(w), free(b);
}

static void bench_attn(dg_engine *e, const char *prec, int64_t nb, int64_t lq, int64_t lk, int heads, int64_t d) {
  int64_t c = heads * d, qs[3] = {nb, lq, c}, ks[3] = {nb, lk, c};
  float *q = rand_f32(nb * lq * c), *k = rand_f32(nb * lk * c), *v = rand_f32(nb * lk * c);
  float *y = malloc(sizeof(float) * (size_t)(nb * lq * c));
  att_arg a = {e, dg_tensor_make(DG_DTYPE_F32, 3, qs, y), dg_tensor_make(DG_DTYPE_F32, 3, qs, q),
               dg_tensor_make(DG_DTYPE_F32, 3, ks, k), dg_tensor_make(DG_DTYPE_F32, 3, ks, v), heads};
  char what[96];
  snprintf(what, sizeof what, "attention %lld x %lld tokens, %d x %lld, batch %lld", (long long)lq, (long long)lk,
           heads, (long long)d, (long long)nb);
  if (g_paired && !skip(prec, what)) g_sgemm = sgemm_rate();
  double t = skip(prec, what) ? 0.0 : time_best(run_attn, &a);
  if (t > 0) report(prec, what, 4.0 * (double)(nb * heads * lq * lk * d), t);
  free(q), free(k), free(v), free(y);
}

int main(int argc, char **argv) {
  int nt = 0;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--quick")) g_quick = 1;
    else if (!strcmp(argv[i], "--threads") && i + 1 < argc) nt = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--only") && i + 1 < argc) g_only = argv[++i];
    else if (!strcmp(argv[i], "--no-peak")) g_no_peak = 1;
    else if (!strcmp(argv[i], "--peak-only")) g_peak_only = 1;
    else if (!strcmp(argv[i], "--cpu-time")) g_cpu_time = 1;
    else if (!strcmp(argv[i], "--paired")) g_paired = 1;
    else if (!strcmp(argv[i], "--attn-all")) g_attn_all = 1;
  }
  if (g_quick) g_min_time = 0.2;
  dg_engine_params p = dg_engine_params_default();
  p.n_threads = nt;
  dg_engine *ef = NULL, *eb = NULL;
  if (dg_engine_new(&p, &ef) != DG_STATUS_OK) return 1;
  nt = dg_engine_threads(ef);
  p.precision = DG_PRECISION_BF16;
  if (dg_engine_new(&p, &eb) != DG_STATUS_OK) return 1;
  printf("threads %d, isa %s, avx512bf16 %s\n\n", nt, dg_isa_name(dg_engine_isa(ef)),
         dg_cpu_has_avx512bf16() ? "yes" : "no");

  printf("## Machine peak\n\n");
#ifdef DG_HAVE_OPENBLAS
  openblas_set_num_threads(nt); /* also for --no-peak --paired (the yardstick gets the same threads) */
#endif
  if (!g_no_peak) {
#ifdef DG_HAVE_OPENBLAS
  {
    openblas_set_num_threads(nt);
    sg_arg s = {rand_f32(2048 * 2048), rand_f32(2048 * 2048), malloc(sizeof(float) * 2048 * 2048), 2048};
    double t = time_best(run_sgemm, &s);
    g_sgemm = 2.0 * 2048.0 * 2048.0 * 2048.0 / t * 1e-9;
    printf("OpenBLAS sgemm 2048^3 f32: %.1f GFLOP/s (%.2f ms)\n", g_sgemm, t * 1e3);
    free(s.a), free(s.b), free(s.c);
  }
#else
  printf("OpenBLAS sgemm: not built (no libopenblas)\n");
#endif
#if defined(__x86_64__)
  if (dg_cpu_has_avx512()) {
    double fp = loop_peak(fma_loop, nt, 24.0 * 32.0);
    printf("FMA loop (zmm vfmadd231ps) f32: %.1f GFLOP/s\n", fp);
  }
  if (dg_cpu_has_avx512bf16()) {
    double bp = loop_peak(dpbf16_loop, nt, 24.0 * 64.0);
    printf("vdpbf16ps loop (bf16 pairs, f32 accumulate): %.1f GFLOP/s\n", bp);
  }
  if (dg_cpu_has_avx512() && dg__ukernel_amx_bf16()) {
    double ap = loop_peak(amx_loop, nt, 4.0 * 16 * 16 * 32 * 2 / 4.0);
    printf("AMX tdpbf16ps loop (4 tiles, operands resident): %.1f GFLOP/s\n", ap);
  }
#endif

  }
  if (g_peak_only) {
    dg_engine_free(ef);
    dg_engine_free(eb);
    return 0;
  }
  printf("\n## GEMM-class kernels\n\n");
  if (g_paired)
    printf("| prec | op | ms | GFLOP/s | %% sgemm | sgemm GFLOP/s just before |\n|---|---|---:|---:|---:|---:|\n");
  else
    printf("| prec | op | ms | GFLOP/s | %% sgemm |\n|---|---|---:|---:|---:|\n");
  dg_engine *engines[2] = {ef, eb};
  const char *pn[2] = {"f32", "bf16"};
  static const int64_t conv_shapes[4][2] = {{64, 320}, {32, 640}, {16, 1280}, {8, 1280}};
  static const int64_t tok[3][2] = {{4096, 320}, {1024, 640}, {256, 1280}};
  for (int pi = 0; pi < 2; pi++) {
    dg_engine *e = engines[pi];
    for (int s = 0; s < 4; s++) bench_conv(e, pn[pi], 2, conv_shapes[s][1], conv_shapes[s][0], 3);
    for (int s = 0; s < 4; s++) bench_conv(e, pn[pi], 2, conv_shapes[s][1], conv_shapes[s][0], 1);
    for (int s = 0; s < 3; s++) {
      int64_t m = 2 * tok[s][0], c = tok[s][1];
      bench_linear(e, pn[pi], m, c, c, "C->C");
      bench_linear(e, pn[pi], m, c, 8 * c, "GEGLU C->8C");
      bench_linear(e, pn[pi], m, 4 * c, c, "FF 4C->C");
    }
    bench_attn(e, pn[pi], 2, 4096, 4096, 8, 40);
    bench_attn(e, pn[pi], 2, 4096, 77, 8, 40);
    if (g_attn_all) { /* the other SD1.5 UNet levels (self and text cross attention) and CLIP text */
      bench_attn(e, pn[pi], 2, 1024, 1024, 8, 80);
      bench_attn(e, pn[pi], 2, 1024, 77, 8, 80);
      bench_attn(e, pn[pi], 2, 256, 256, 8, 160);
      bench_attn(e, pn[pi], 2, 256, 77, 8, 160);
      bench_attn(e, pn[pi], 2, 64, 64, 8, 160);
      bench_attn(e, pn[pi], 2, 64, 77, 8, 160);
      bench_attn(e, pn[pi], 1, 77, 77, 12, 64);
    }
  }
#ifdef DG_HAVE_OPENBLAS
  if (!g_no_peak) { /* again, to see whether the machine's load changed during the run */
    sg_arg s = {rand_f32(2048 * 2048), rand_f32(2048 * 2048), malloc(sizeof(float) * 2048 * 2048), 2048};
    double t = time_best(run_sgemm, &s);
    printf("\nOpenBLAS sgemm 2048^3 f32 again at the end: %.1f GFLOP/s\n", 2.0 * 2048.0 * 2048.0 * 2048.0 / t * 1e-9);
    free(s.a), free(s.b), free(s.c);
  }
#endif
  dg_engine_free(ef);
  dg_engine_free(eb);
  return 0;
}
