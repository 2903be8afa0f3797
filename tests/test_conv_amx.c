/* The AMX 3x3 convolution of the bf16 precision (src/tensor/conv_amx_avx512.c)
 * against a double-precision reference of the bf16-rounded operands, through
 * dg_conv2d: planes from 1x1 to wider than a tile, odd channel counts on both
 * sides of the 32-channel chunks and panels, batch > 1, every weight dtype,
 * with and without bias, both input layouts (rows of wide images, planes of
 * narrow ones), 1 and 2 threads (bit-identical), and DG_CONV_AMX=0
 * (the im2col GEMM path) for comparison.  Skipped (with a note) on CPUs or
 * kernels without AMX-BF16. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "t.h"
#include "tensor/conv_amx.h"
#include "tensor/ops.h"


static float bf16r(float v) { return dg_bf16_to_f32(dg_f32_to_bf16(v)); }

static void put(void *d, dg_dtype dt, int64_t i, float v, float *vals) {
  if (dt == DG_DTYPE_F32)
    ((float *)d)[i] = v, vals[i] = v;
  else if (dt == DG_DTYPE_F16)
    ((uint16_t *)d)[i] = dg_f32_to_f16(v), vals[i] = dg_f16_to_f32(((uint16_t *)d)[i]);
  else
    ((uint16_t *)d)[i] = dg_f32_to_bf16(v), vals[i] = dg_bf16_to_f32(((uint16_t *)d)[i]);
}

static dg_engine *engine(int threads) {
  dg_engine_params p = dg_engine_params_default();
  p.n_threads = threads;
  p.isa = DG_ISA_AVX512;
  p.precision = DG_PRECISION_BF16;
  dg_engine *e = NULL;
  if (dg_engine_new(&p, &e) != DG_STATUS_OK) return NULL;
  return e;
}

static double g_worst; /* worst |error| / sum |x w| over every case */

static void run_case(dg_engine *e1, dg_engine *e2, int64_t n, int64_t ci, int64_t co, int64_t h, int64_t w,
                     dg_dtype dt, int has_b, int layout) {
  dg__conv_amx_set_layout(layout);
  int64_t nx = n * ci * h * w, nw = co * ci * 9, ny = n * co * h * w;
  float *x = malloc((size_t)nx * sizeof *x), *wv = malloc((size_t)nw * sizeof *wv);
  float *bv = malloc((size_t)co * sizeof *bv);
  void *wd = malloc((size_t)nw * 4), *bd = malloc((size_t)co * 4);
  for (int64_t i = 0; i < nx; i++) x[i] = t_runif(1.0f);
  for (int64_t i = 0; i < nw; i++) put(wd, dt, i, t_runif(1.0f / sqrtf((float)ci * 9.0f)), wv);
  for (int64_t i = 0; i < co; i++) put(bd, dt, i, t_runif(0.5f), bv);
  int64_t xs[4] = {n, ci, h, w}, ws[4] = {co, ci, 3, 3}, ys[4] = {n, co, h, w}, bs[1] = {co};
  dg_tensor X, W, B, Y1, Y2, Y3;
  X = dg_tensor_make(DG_DTYPE_F32, 4, xs, x);
  W = dg_tensor_make(dt, 4, ws, wd);
  B = dg_tensor_make(dt, 1, bs, bd);
  float *y1 = malloc((size_t)ny * sizeof *y1), *y2 = malloc((size_t)ny * sizeof *y2),
        *y3 = malloc((size_t)ny * sizeof *y3);
  Y1 = dg_tensor_make(DG_DTYPE_F32, 4, ys, y1);
  Y2 = dg_tensor_make(DG_DTYPE_F32, 4, ys, y2);
  Y3 = dg_tensor_make(DG_DTYPE_F32, 4, ys, y3);
  CHECK(dg__conv_amx_usable(e1, &X, &W, 1, 1));
  CHECK(dg_conv2d(e1, &Y1, &X, &W, has_b ? &B : NULL, 1, 1) == DG_STATUS_OK);
  CHECK(dg_conv2d(e2, &Y2, &X, &W, has_b ? &B : NULL, 1, 1) == DG_STATUS_OK);
  setenv("DG_CONV_AMX", "0", 1);
  CHECK(!dg__conv_amx_usable(e1, &X, &W, 1, 1));
  CHECK(dg_conv2d(e2, &Y3, &X, &W, has_b ? &B : NULL, 1, 1) == DG_STATUS_OK);
  unsetenv("DG_CONV_AMX");
  CHECK_MSG(!memcmp(y1, y2, (size_t)ny * sizeof *y1), "1 vs 2 threads bit-identical (%lld,%lld->%lld,%lldx%lld)",
            (long long)n, (long long)ci, (long long)co, (long long)h, (long long)w);
  double worst = 0.0, worst_gemm = 0.0;
  for (int64_t b = 0; b < n; b++)
    for (int64_t o = 0; o < co; o++)
      for (int64_t oy = 0; oy < h; oy++)
        for (int64_t ox = 0; ox < w; ox++) {
          double acc = has_b ? bv[o] : 0.0, mag = has_b ? fabs(bv[o]) : 0.0;
          for (int64_t k = 0; k < ci; k++)
            for (int ky = 0; ky < 3; ky++)
              for (int kx = 0; kx < 3; kx++) {
                int64_t iy = oy - 1 + ky, ix = ox - 1 + kx;
                if (iy < 0 || iy >= h || ix < 0 || ix >= w) continue;
                double p = (double)bf16r(x[((b * ci + k) * h + iy) * w + ix]) *
                           bf16r(wv[((o * ci + k) * 3 + ky) * 3 + kx]);
                acc += p;
                mag += fabs(p);
              }
          int64_t i = ((b * co + o) * h + oy) * w + ox;
          double err = fabs(y1[i] - acc) / (mag + 1e-30), eg = fabs(y3[i] - acc) / (mag + 1e-30);
          if (!(err <= worst)) worst = err; /* NaN counts as worst */
          if (eg > worst_gemm) worst_gemm = eg;
        }
  CHECK_MSG(worst < 2e-6, "AMX conv (%lld,%lld->%lld,%lldx%lld, %s%s, layout %d): worst error / sum|xw| %.3g",
            (long long)n, (long long)ci, (long long)co, (long long)h, (long long)w, dg_dtype_name(dt),
            has_b ? ", bias" : "", layout, worst);
  CHECK_MSG(worst_gemm < 2e-6, "GEMM bf16 conv worst %.3g", worst_gemm);
  if (worst > g_worst) g_worst = worst;
  free(x), free(wv), free(bv), free(wd), free(bd), free(y1), free(y2), free(y3);
}

int main(void) {
  t_seed(0x2545f4914f6cdd1dull);
  dg_engine *e1 = dg_cpu_has_avx512bf16() ? engine(1) : NULL, *e2 = e1 ? engine(2) : NULL;
  dg_tensor x0, w0;
  int64_t xs[4] = {1, 32, 8, 8}, ws[4] = {32, 32, 3, 3};
  float dummy = 0.0f;
  if (e1) {
    x0 = dg_tensor_make(DG_DTYPE_F32, 4, xs, &dummy);
    w0 = dg_tensor_make(DG_DTYPE_F16, 4, ws, &dummy);
  }
  if (!e1 || !e2 || !dg__conv_amx_usable(e1, &x0, &w0, 1, 1)) {
    fprintf(stderr, "note: no AMX-BF16 on this CPU (or not granted by the OS): AMX convolution not tested\n");
    dg_engine_free(e1);
    dg_engine_free(e2);
    T_DONE();
  }
  /* not taken: stride 2, pad 0, 1x1, too few input channels */
  CHECK(!dg__conv_amx_usable(e1, &x0, &w0, 2, 1));
  CHECK(!dg__conv_amx_usable(e1, &x0, &w0, 1, 0));
  xs[1] = 8;
  ws[1] = 8;
  x0 = dg_tensor_make(DG_DTYPE_F32, 4, xs, &dummy);
  w0 = dg_tensor_make(DG_DTYPE_F16, 4, ws, &dummy);
  CHECK(!dg__conv_amx_usable(e1, &x0, &w0, 1, 1));

  const dg_dtype dts[3] = {DG_DTYPE_F16, DG_DTYPE_BF16, DG_DTYPE_F32};
  /* n, ci, co, h, w */
  const int64_t shapes[][5] = {
      {1, 32, 32, 8, 8},    {2, 16, 5, 1, 1},     {1, 17, 33, 3, 2},   {3, 33, 31, 5, 7},  {1, 64, 70, 16, 16},
      {2, 40, 64, 2, 37},   {1, 31, 1, 9, 30},    {1, 96, 40, 13, 11}, {2, 48, 65, 34, 3}, {1, 320, 36, 12, 12},
      {1, 20, 24, 40, 33},  {2, 32, 40, 6, 64},   {1, 16, 8, 3, 96},
  };
  int ns = (int)(sizeof shapes / sizeof shapes[0]);
  for (int layout = 0; layout <= 2; layout++)
    for (int i = 0; i < ns; i++)
      run_case(e1, e2, shapes[i][0], shapes[i][1], shapes[i][2], shapes[i][3], shapes[i][4], dts[(i + layout) % 3],
               i % 2 == 0, layout);
  dg__conv_amx_set_layout(0);
  fprintf(stderr, "AMX conv: worst error / sum|xw| over %d cases x 3 layouts: %.3g\n", ns, g_worst);
  dg_engine_free(e1);
  dg_engine_free(e2);
  T_DONE();
}
