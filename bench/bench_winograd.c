/* 3x3 stride-1 convolutions of the SD1.5 UNet and VAE: direct (implicit GEMM)
 * against Winograd F(2x2,3x3) and F(4x4,3x3), same engine, back to back.
 * GFLOP/s counts the direct convolution's 2 * N * Co * Ci * 9 * Ho * Wo for
 * every variant ("effective" rate), so the columns compare wall times.
 *
 *   bench_winograd [--threads N] [--iters N] [--only unet|vae] [--f16|--f32]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tensor/ops.h"
#include "tensor/winograd.h"

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
static double cpu_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct shape {
  const char *what;
  int64_t n, ci, co, h, w;
} shape;

static const shape SHAPES[] = {
    {"unet", 2, 320, 320, 64, 64},   {"unet", 2, 640, 320, 64, 64},   {"unet", 2, 640, 640, 32, 32},
    {"unet", 2, 1280, 640, 32, 32},  {"unet", 2, 1280, 1280, 16, 16}, {"unet", 2, 2560, 1280, 16, 16},
    {"unet", 2, 1280, 1280, 8, 8},   {"unet", 2, 2560, 1280, 8, 8},   {"vae", 1, 512, 512, 64, 64},
    {"vae", 1, 512, 512, 128, 128},  {"vae", 1, 512, 256, 256, 256},  {"vae", 1, 256, 256, 256, 256},
    {"vae", 1, 256, 128, 512, 512},  {"vae", 1, 128, 128, 512, 512},
};

int main(int argc, char **argv) {
  int threads = 0, iters = 3, f16 = 1;
  const char *only = NULL;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--iters") && i + 1 < argc) iters = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--only") && i + 1 < argc) only = argv[++i];
    else if (!strcmp(argv[i], "--f32")) f16 = 0;
    else if (!strcmp(argv[i], "--f16")) f16 = 1;
    else {
      fprintf(stderr, "usage: bench_winograd [--threads N] [--iters N] [--only unet|vae] [--f16|--f32]\n");
      return 2;
    }
  }
  dg_engine_params p = dg_engine_params_default();
  p.n_threads = threads;
  dg_engine *e = NULL;
  if (dg_engine_new(&p, &e) != DG_STATUS_OK) return 1;
  printf("isa %s, %d threads, weights %s, mean of %d calls after one warm-up\n", dg_isa_name(dg_engine_isa(e)),
         dg_engine_threads(e), f16 ? "f16" : "f32", iters);
  printf("| net | conv (N, Ci -> Co, HxW) | direct ms | F(2) ms | F(4) ms | direct GF/s | F(2) eff GF/s | F(4) eff GF/s | direct CPU-ms | F(2) CPU-ms | F(4) CPU-ms |\n");
  printf("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
  for (size_t s = 0; s < sizeof SHAPES / sizeof SHAPES[0]; s++) {
    const shape *sh = &SHAPES[s];
    if (only && strcmp(only, sh->what)) continue;
    int64_t nx = sh->n * sh->ci * sh->h * sh->w, nw = sh->co * sh->ci * 9, ny = sh->n * sh->co * sh->h * sh->w;
    float *x = malloc((size_t)nx * 4), *y = malloc((size_t)ny * 4);
    void *w = malloc((size_t)nw * 4), *b = malloc((size_t)sh->co * 4);
    if (!x || !y || !w || !b) return 1;
    uint64_t r = 12345;
    for (int64_t i = 0; i < nx; i++) {
      r = r * 6364136223846793005ull + 1442695040888963407ull;
      x[i] = (float)((double)(r >> 40) / (double)(1ull << 24) - 0.5);
    }
    for (int64_t i = 0; i < nw; i++) {
      r = r * 6364136223846793005ull + 1442695040888963407ull;
      float v = (float)(((double)(r >> 40) / (double)(1ull << 24) - 0.5) * 0.05);
      if (f16) ((uint16_t *)w)[i] = dg_f32_to_f16(v);
      else ((float *)w)[i] = v;
    }
    for (int64_t i = 0; i < sh->co; i++) {
      if (f16) ((uint16_t *)b)[i] = dg_f32_to_f16(0.01f);
      else ((float *)b)[i] = 0.01f;
    }
    dg_dtype wd = f16 ? DG_DTYPE_F16 : DG_DTYPE_F32;
    int64_t sx[4] = {sh->n, sh->ci, sh->h, sh->w}, sw[4] = {sh->co, sh->ci, 3, 3}, sb[1] = {sh->co},
            sy[4] = {sh->n, sh->co, sh->h, sh->w};
    dg_tensor tx = dg_tensor_make(DG_DTYPE_F32, 4, sx, x), tw = dg_tensor_make(wd, 4, sw, w);
    dg_tensor tb = dg_tensor_make(wd, 1, sb, b), ty = dg_tensor_make(DG_DTYPE_F32, 4, sy, y);
    double ms[3], cpu[3];
    const char *modes[3] = {"0", "2", "4"};
    for (int v = 0; v < 3; v++) {
      setenv("DG_WINOGRAD", modes[v], 1);
      dg_conv2d(e, &ty, &tx, &tw, &tb, 1, 1);
      double t0 = now(), c0 = cpu_now();
      for (int it = 0; it < iters; it++) dg_conv2d(e, &ty, &tx, &tw, &tb, 1, 1);
      ms[v] = (now() - t0) * 1e3 / iters;
      cpu[v] = (cpu_now() - c0) * 1e3 / iters;
    }
    double gf = 2.0 * (double)sh->n * (double)sh->co * (double)sh->ci * 9.0 * (double)sh->h * (double)sh->w * 1e-9;
    printf("| %s | %lld, %lld -> %lld, %lldx%lld | %.2f | %.2f | %.2f | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f |\n",
           sh->what, (long long)sh->n, (long long)sh->ci, (long long)sh->co, (long long)sh->h, (long long)sh->w,
           ms[0], ms[1], ms[2], gf / ms[0] * 1e3, gf / ms[1] * 1e3, gf / ms[2] * 1e3, cpu[0], cpu[1], cpu[2]);
    fflush(stdout);
    free(x), free(y), free(w), free(b);
  }
  dg_engine_free(e);
  return 0;
}
