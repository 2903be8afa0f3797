/* Winograd F(2x2,3x3) and F(4x4,3x3) convolution (src/tensor/winograd.c)
 * against a double-precision reference and against the direct (implicit-GEMM)
 * convolution: random shapes with odd sizes, batch > 1, non-square planes,
 * channel counts off the micro-kernel's tile sizes, pad 0 and 1, every weight
 * dtype, with and without bias, every ISA the CPU has, 1 and 2 threads
 * (bit-identical), and tiny workspace budgets so that the output-channel
 * chunks and tile blocks are exercised. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "t.h"
#include "tensor/ops.h"
#include "tensor/winograd.h"


typedef struct cs {
  int64_t n, ci, co, h, w;
  int pad, has_b;
  dg_dtype dt;
  float *x, *wv;   /* x values; weight values as stored (after rounding to dt) */
  void *wdata, *bdata;
  float *bv;
  double *ref, *mag; /* reference output; sum |x w| per output (error scale) */
  int64_t ho, wo;
} cs;

static void store(void *d, dg_dtype dt, int64_t i, float v, float *vals) {
  if (dt == DG_DTYPE_F32)
    ((float *)d)[i] = v;
  else if (dt == DG_DTYPE_F16)
    ((uint16_t *)d)[i] = dg_f32_to_f16(v);
  else
    ((uint16_t *)d)[i] = dg_f32_to_bf16(v);
  vals[i] = dt == DG_DTYPE_F32 ? v : dt == DG_DTYPE_F16 ? dg_f16_to_f32(((uint16_t *)d)[i])
                                                      : dg_bf16_to_f32(((uint16_t *)d)[i]);
}

static float g_wscale = 1.0f; /* weight magnitude factor (subnormal f16 weights) */

static cs make_case(int64_t n, int64_t ci, int64_t co, int64_t h, int64_t w, int pad, int has_b, dg_dtype dt) {
  cs c;
  memset(&c, 0, sizeof c);
  c.n = n, c.ci = ci, c.co = co, c.h = h, c.w = w, c.pad = pad, c.has_b = has_b, c.dt = dt;
  c.ho = h + 2 * pad - 2;
  c.wo = w + 2 * pad - 2;
  int64_t nx = n * ci * h * w, nw = co * ci * 9, ny = n * co * c.ho * c.wo;
  c.x = malloc((size_t)nx * sizeof(float));
  for (int64_t i = 0; i < nx; i++) c.x[i] = t_runif(1.0f);
  float wa = g_wscale / sqrtf((float)(ci * 9));
  c.wdata = malloc((size_t)nw * 4);
  c.wv = malloc((size_t)nw * sizeof(float));
  for (int64_t i = 0; i < nw; i++) store(c.wdata, dt, i, t_runif(wa), c.wv);
  c.bdata = malloc((size_t)co * 4);
  c.bv = malloc((size_t)co * sizeof(float));
  for (int64_t i = 0; i < co; i++) store(c.bdata, dt, i, t_runif(0.5f), c.bv);
  c.ref = calloc((size_t)ny, sizeof(double));
  c.mag = calloc((size_t)ny, sizeof(double));
  for (int64_t b = 0; b < n; b++)
    for (int64_t o = 0; o < co; o++)
      for (int64_t oy = 0; oy < c.ho; oy++)
        for (int64_t ox = 0; ox < c.wo; ox++) {
          double acc = has_b ? c.bv[o] : 0.0, mag = has_b ? fabs(c.bv[o]) : 0.0;
          for (int64_t k = 0; k < ci; k++)
            for (int ky = 0; ky < 3; ky++)
              for (int kx = 0; kx < 3; kx++) {
                int64_t iy = oy - pad + ky, ix = ox - pad + kx;
                if (iy < 0 || iy >= h || ix < 0 || ix >= w) continue;
                double p = (double)c.x[((b * ci + k) * h + iy) * w + ix] * c.wv[((o * ci + k) * 3 + ky) * 3 + kx];
                acc += p;
                mag += fabs(p);
              }
          int64_t i = ((b * co + o) * c.ho + oy) * c.wo + ox;
          c.ref[i] = acc;
          c.mag[i] = mag;
        }
  return c;
}

static void free_case(cs *c) {
  free(c->x), free(c->wv), free(c->wdata), free(c->bdata), free(c->bv), free(c->ref), free(c->mag);
}

/* Run one convolution: m = 0 direct (dg_conv2d with DG_WINOGRAD=0), else Winograd F(m). */
static float *run(dg_engine *e, const cs *c, int m) {
  int64_t ny = c->n * c->co * c->ho * c->wo;
  float *y = malloc((size_t)(ny > 0 ? ny : 1) * sizeof(float));
  for (int64_t i = 0; i < ny; i++) y[i] = NAN; /* every output must be written */
  int64_t sx[4] = {c->n, c->ci, c->h, c->w}, sw[4] = {c->co, c->ci, 3, 3}, sb[1] = {c->co},
          sy[4] = {c->n, c->co, c->ho, c->wo};
  dg_tensor tx = dg_tensor_make(DG_DTYPE_F32, 4, sx, c->x), tw = dg_tensor_make(c->dt, 4, sw, c->wdata);
  dg_tensor tb = dg_tensor_make(c->dt, 1, sb, c->bdata), ty = dg_tensor_make(DG_DTYPE_F32, 4, sy, y);
  dg_status st;
  if (m == 0) {
    setenv("DG_WINOGRAD", "0", 1);
    st = dg_conv2d(e, &ty, &tx, &tw, c->has_b ? &tb : NULL, 1, c->pad);
    unsetenv("DG_WINOGRAD");
  } else {
    st = dg__conv2d_winograd(e, &ty, &tx, &tw, c->has_b ? &tb : NULL, c->pad, m);
  }
  CHECK_MSG(st == DG_STATUS_OK, "conv status %s", dg_strerror(st));
  return y;
}

/* max |y - ref| / (mag + 1e-30) and whether every element is within rtol * (mag + |ref|) + atol */
static double rel_err(const cs *c, const float *y, double tol, const char *what) {
  int64_t ny = c->n * c->co * c->ho * c->wo, bad = 0, first = -1;
  double worst = 0.0;
  for (int64_t i = 0; i < ny; i++) {
    double d = fabs((double)y[i] - c->ref[i]);
    double r = d / (c->mag[i] + 1e-30);
    if (!(d <= tol * c->mag[i] + 1e-30)) { /* NaN fails too */
      if (first < 0) first = i;
      bad++;
    }
    if (r > worst || r != r) worst = r;
  }
  CHECK_MSG(bad == 0, "%s: %lld of %lld outputs off (first %lld: %.9g vs %.9g), worst rel %.3g", what,
            (long long)bad, (long long)ny, (long long)first, first >= 0 ? y[first] : 0.0,
            first >= 0 ? c->ref[first] : 0.0, worst);
  return worst;
}

static dg_engine *engine(dg_isa isa, int nt) {
  dg_engine_params p = dg_engine_params_default();
  p.isa = isa;
  p.n_threads = nt;
  dg_engine *e = NULL;
  CHECK(dg_engine_new(&p, &e) == DG_STATUS_OK);
  return e;
}

int main(void) {
  t_seed(0x9e3779b97f4a7c15ull);
  static const dg_dtype dts[3] = {DG_DTYPE_F32, DG_DTYPE_F16, DG_DTYPE_BF16};
  dg_isa isas[3] = {DG_ISA_GENERIC, DG_ISA_AVX2, DG_ISA_AVX512};
  double worst[5] = {0}; /* by m: direct, -, F(2), -, F(4) */
  for (int ii = 0; ii < 3; ii++) {
    if (isas[ii] == DG_ISA_AVX2 && !dg_cpu_has_avx2()) continue;
    if (isas[ii] == DG_ISA_AVX512 && !dg_cpu_has_avx512()) continue;
    dg_engine *e1 = engine(isas[ii], 1), *e2 = engine(isas[ii], 2);
    if (!e1 || !e2) return 1;
    for (int it = 0; it < 16; it++) {
      int64_t n = t_rint(1, 3), ci = t_rint(1, 40), co = t_rint(1, 45), h = t_rint(1, 23), w = t_rint(1, 23);
      int pad = t_rint(0, 1), has_b = it % 3 != 1;
      if (it == 0) n = 2, ci = 64, co = 70, h = 19, w = 13, pad = 1; /* several tiles panels and chunks */
      if (it == 1) n = 1, ci = 3, co = 1, h = 3, w = 3, pad = 0;     /* one output pixel */
      if (h + 2 * pad < 3) h = 3 - 2 * pad;
      if (w + 2 * pad < 3) w = 3 - 2 * pad;
      cs c = make_case(n, ci, co, h, w, pad, has_b, dts[it % 3]);
      /* tiny budgets on odd iterations: several output-channel chunks and tile blocks */
      if (it % 2) dg__winograd_set_budgets((size_t)t_rint(1, 64) << 10, (size_t)t_rint(1, 64) << 10);
      for (int m = 2; m <= 4; m += 2) {
        char what[160];
        snprintf(what, sizeof what, "[%s] F(%d) n%lld ci%lld co%lld %lldx%lld p%d %s%s", dg_isa_name(isas[ii]), m,
                 (long long)n, (long long)ci, (long long)co, (long long)h, (long long)w, pad,
                 dg_dtype_name(c.dt), has_b ? " bias" : "");
        float *y1 = run(e1, &c, m), *y2 = run(e2, &c, m);
        /* F(2): within 4 x the direct convolution's bound (1e-6); F(4): 2e-5 of sum |x w| */
        double r = rel_err(&c, y1, m == 2 ? 4e-6 : 2e-5, what);
        if (r > worst[m]) worst[m] = r;
        int64_t ny = n * co * c.ho * c.wo;
        CHECK_MSG(memcmp(y1, y2, (size_t)ny * sizeof(float)) == 0, "%s: 1 and 2 threads differ", what);
        free(y1), free(y2);
      }
      float *yd = run(e1, &c, 0);
      double r = rel_err(&c, yd, 4e-6, "direct");
      if (r > worst[0]) worst[0] = r;
      free(yd);
      dg__winograd_set_budgets(0, 0);
      free_case(&c);
    }
    dg_engine_free(e1);
    dg_engine_free(e2);
  }
  printf("worst error / sum|x w|: direct %.3g, F(2x2,3x3) %.3g, F(4x4,3x3) %.3g\n", worst[0], worst[2], worst[4]);

  /* f16 weights that are mostly subnormal halves (|w| < 2^-14), converted
   * exactly by every ISA's filter transform (none may flush them to zero). */
  for (int ii = 0; ii < 3; ii++) {
    if (isas[ii] == DG_ISA_AVX2 && !dg_cpu_has_avx2()) continue;
    if (isas[ii] == DG_ISA_AVX512 && !dg_cpu_has_avx512()) continue;
    dg_engine *e = engine(isas[ii], 2);
    g_wscale = 1e-3f;
    cs c = make_case(2, 37, 19, 9, 11, 1, 0, DG_DTYPE_F16);
    g_wscale = 1.0f;
    int64_t nsub = 0;
    for (int64_t i = 0; i < 19 * 37 * 9; i++) nsub += c.wv[i] != 0.0f && fabsf(c.wv[i]) < 0x1p-14f;
    CHECK_MSG(nsub > 19 * 37 * 9 / 2, "%lld subnormal weights", (long long)nsub);
    for (int m = 2; m <= 4; m += 2) {
      char what[64];
      snprintf(what, sizeof what, "[%s] F(%d) subnormal f16 weights", dg_isa_name(isas[ii]), m);
      float *y = run(e, &c, m);
      rel_err(&c, y, m == 2 ? 4e-6 : 2e-5, what);
      free(y);
    }
    free_case(&c);
    dg_engine_free(e);
  }

  /* The automatic choice by plane size and batch: F(4) from 24 x 24 on every
   * ISA; on AVX-512 and AVX2 (vectorised filter transforms) also 16 x 16 at
   * batch 2, not 16 x 16 alone nor 8 x 8 at batch 2. */
  for (int ii = 0; ii < 3; ii++) {
    if (isas[ii] == DG_ISA_AVX2 && !dg_cpu_has_avx2()) continue;
    if (isas[ii] == DG_ISA_AVX512 && !dg_cpu_has_avx512()) continue;
    dg_engine *e = engine(isas[ii], 1);
    static const int64_t sh[4][3] = {{1, 24, 24}, {2, 16, 16}, {1, 16, 16}, {2, 8, 8}};
    for (int q = 0; q < 4; q++) {
      int64_t sx[4] = {sh[q][0], 64, sh[q][1], sh[q][2]}, sw[4] = {64, 64, 3, 3};
      dg_tensor tx = dg_tensor_make(DG_DTYPE_F32, 4, sx, NULL), tw = dg_tensor_make(DG_DTYPE_F16, 4, sw, NULL);
      int want = q == 0 || (q == 1 && isas[ii] != DG_ISA_GENERIC) ? 4 : 0;
      int got = dg__winograd_choose(e, &tx, &tw, 1);
      CHECK_MSG(got == want, "[%s] choice for %lldx64x%lldx%lld: F(%d), want F(%d)", dg_isa_name(isas[ii]),
                (long long)sh[q][0], (long long)sh[q][1], (long long)sh[q][2], got, want);
    }
    dg_engine_free(e);
  }

  /* An SD-sized layer: 64 channels in and out, 32 x 32, the automatic choice
   * (dg_conv2d with DG_WINOGRAD unset) against the reference. */
  {
    dg_engine *e = engine(DG_ISA_AUTO, 2);
    cs c = make_case(2, 64, 64, 32, 32, 1, 1, DG_DTYPE_F16);
    int64_t sx[4] = {2, 64, 32, 32}, sw[4] = {64, 64, 3, 3};
    dg_tensor tx = dg_tensor_make(DG_DTYPE_F32, 4, sx, c.x), tw = dg_tensor_make(DG_DTYPE_F16, 4, sw, c.wdata);
    int m = dg__winograd_choose(e, &tx, &tw, 1);
    printf("auto choice for 2x64x32x32 -> 64: F(%d)\n", m);
    CHECK(m == 2 || m == 4);
    setenv("DG_WINOGRAD", "0", 1);
    CHECK(dg__winograd_choose(e, &tx, &tw, 1) == 0);
    unsetenv("DG_WINOGRAD");
    CHECK(dg__winograd_choose(e, &tx, &tw, 2) == 0); /* stride 2: direct */
    int64_t ny = 2 * 64 * 32 * 32;
    float *y = malloc((size_t)ny * sizeof(float));
    int64_t sb[1] = {64}, sy[4] = {2, 64, 32, 32};
    dg_tensor tb = dg_tensor_make(DG_DTYPE_F16, 1, sb, c.bdata), ty = dg_tensor_make(DG_DTYPE_F32, 4, sy, y);
    CHECK(dg_conv2d(e, &ty, &tx, &tw, &tb, 1, 1) == DG_STATUS_OK);
    rel_err(&c, y, 2e-5, "auto 2x64x32x32");
    free(y);
    free_case(&c);
    dg_engine_free(e);
  }
  T_DONE();
}
