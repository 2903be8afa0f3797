/* Benchmark: one full-size UNet evaluation (a CFG step: batch 2) with random
 * weights generated in memory from dg_unet_enumerate (no file needed).
 *
 *   bench_unet [--config sd15|sdxl] [--size 512] [--batch 2] [--wdtype f16|bf16|f32]
 *              [--precision f32|bf16|both] [--threads N] [--iters N] [--isa auto|ref|...]
 *
 * Prints seconds per UNet call for each precision (after one warm-up call),
 * the arena peak and the process peak RSS. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "models/unet.h"
#include "tensor/tensor.h"
#include "weights/safetensors.h"
#include "weights/weights.h"

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

static double peak_rss_mb(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)ru.ru_maxrss / 1024.0;
}

/* ---- an in-memory safetensors image of random weights ---------------------- */

typedef struct gen {
  dg_dtype dt;
  size_t n, cap;     /* tensors */
  char **names;
  int64_t (*shapes)[4];
  int *ndims;
  size_t *offs, *sizes;
  size_t data_bytes;
} gen;

static int collect(void *ud, const char *name, int ndim, const int64_t *shape) {
  gen *g = ud;
  if (g->n == g->cap) {
    g->cap = g->cap ? 2 * g->cap : 1024;
    g->names = realloc(g->names, g->cap * sizeof *g->names);
    g->shapes = realloc(g->shapes, g->cap * sizeof *g->shapes);
    g->ndims = realloc(g->ndims, g->cap * sizeof *g->ndims);
    g->offs = realloc(g->offs, g->cap * sizeof *g->offs);
    g->sizes = realloc(g->sizes, g->cap * sizeof *g->sizes);
    if (!g->names || !g->shapes || !g->ndims || !g->offs || !g->sizes) return 1;
  }
  int64_t m = 1;
  for (int i = 0; i < ndim; i++) m *= shape[i];
  g->names[g->n] = strdup(name);
  memcpy(g->shapes[g->n], shape, 4 * sizeof(int64_t));
  g->ndims[g->n] = ndim;
  g->offs[g->n] = g->data_bytes;
  g->sizes[g->n] = (size_t)m * dg_dtype_size(g->dt);
  g->data_bytes += g->sizes[g->n];
  g->n++;
  return 0;
}

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static inline float urand(void) { /* uniform in [-1, 1) */
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return (float)(rng_state >> 40) / 8388608.0f - 1.0f;
}

/* Header + data, as the safetensors format lays them out. */
static unsigned char *build_file(gen *g, size_t *size) {
  size_t hcap = g->n * 200 + 64, hl = 0;
  char *h = malloc(hcap);
  if (!h) return NULL;
  hl += (size_t)snprintf(h + hl, hcap - hl, "{");
  for (size_t i = 0; i < g->n; i++) {
    hl += (size_t)snprintf(h + hl, hcap - hl, "%s\"%s\":{\"dtype\":\"%s\",\"shape\":[", i ? "," : "",
                           g->names[i], dg_dtype_name(g->dt));
    for (int d = 0; d < g->ndims[i]; d++)
      hl += (size_t)snprintf(h + hl, hcap - hl, "%s%lld", d ? "," : "", (long long)g->shapes[i][d]);
    hl += (size_t)snprintf(h + hl, hcap - hl, "],\"data_offsets\":[%zu,%zu]}", g->offs[i],
                           g->offs[i] + g->sizes[i]);
  }
  hl += (size_t)snprintf(h + hl, hcap - hl, "}");
  while (hl % 8) h[hl++] = ' ';
  *size = 8 + hl + g->data_bytes;
  unsigned char *buf = malloc(*size);
  if (!buf) {
    free(h);
    return NULL;
  }
  uint64_t L = hl;
  for (int i = 0; i < 8; i++) buf[i] = (unsigned char)(L >> (8 * i));
  memcpy(buf + 8, h, hl);
  free(h);
  unsigned char *data = buf + 8 + hl;
  for (size_t i = 0; i < g->n; i++) {
    /* N(0,~0.03)-like uniform noise; norm weights around 1 (keeps activations sane) */
    int is_norm_w = strstr(g->names[i], "norm") && strstr(g->names[i], ".weight");
    size_t m = g->sizes[i] / dg_dtype_size(g->dt);
    float scale = 0.05f;
    if (g->ndims[i] >= 2) {
      int64_t fan_in = 1;
      for (int d = 1; d < g->ndims[i]; d++) fan_in *= g->shapes[i][d];
      scale = 1.7f / sqrtf((float)fan_in);
    }
    unsigned char *p = data + g->offs[i];
    size_t es = dg_dtype_size(g->dt);
    /* 61,417 fresh values per tensor, then repeated (the timing does not depend
     * on the values; this keeps generating 0.9-2.6 G weights to a few seconds) */
    size_t period = m < 61417 ? m : 61417;
    for (size_t j = 0; j < period; j++) {
      float v = (is_norm_w ? 1.0f : 0.0f) + scale * urand();
      if (g->dt == DG_DTYPE_F32) memcpy(p + 4 * j, &v, 4);
      else {
        uint16_t b = g->dt == DG_DTYPE_F16 ? dg_f32_to_f16(v) : dg_f32_to_bf16(v);
        memcpy(p + 2 * j, &b, 2);
      }
    }
    for (size_t j = period; j < m; j += period)
      memcpy(p + j * es, p, (m - j < period ? m - j : period) * es);
  }
  return buf;
}

int main(int argc, char **argv) {
  const char *config = "sd15", *wdt = "f16", *prec = "both", *isa_s = "auto";
  int size = 512, batch = 2, threads = 0, iters = 1;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!v) goto usage;
    if (!strcmp(a, "--config")) config = v;
    else if (!strcmp(a, "--size")) size = atoi(v);
    else if (!strcmp(a, "--batch")) batch = atoi(v);
    else if (!strcmp(a, "--wdtype")) wdt = v;
    else if (!strcmp(a, "--precision")) prec = v;
    else if (!strcmp(a, "--threads")) threads = atoi(v);
    else if (!strcmp(a, "--iters")) iters = atoi(v);
    else if (!strcmp(a, "--isa")) isa_s = v;
    else goto usage;
    i++;
  }
  if (size < 8 || size % 8 || batch < 1 || iters < 1) goto usage;
  dg_unet_config cfg = !strcmp(config, "sdxl") ? dg_unet_config_sdxl() : dg_unet_config_sd15();
  gen g = {0};
  g.dt = !strcmp(wdt, "f32") ? DG_DTYPE_F32 : !strcmp(wdt, "bf16") ? DG_DTYPE_BF16 : DG_DTYPE_F16;
  double t0 = now();
  if (dg_unet_enumerate(&cfg, collect, &g) != 0) return 1;
  size_t fsize = 0;
  unsigned char *file = build_file(&g, &fsize);
  if (!file) {
    fprintf(stderr, "out of memory building %zu bytes of weights\n", g.data_bytes);
    return 1;
  }
  char err[512];
  dg_safetensors *st = NULL;
  dg_weights *w = dg_weights_new();
  if (dg_safetensors_parse(file, fsize, &st, err, sizeof err) != DG_STATUS_OK ||
      dg_weights_add(w, st, "", NULL, NULL, err, sizeof err) != DG_STATUS_OK) {
    fprintf(stderr, "weights: %s\n", err);
    return 1;
  }
  dg_unet *u = dg_unet_new(&cfg, w, err, sizeof err);
  if (!u) {
    fprintf(stderr, "unet: %s\n", err);
    return 1;
  }
  printf("unet %s: %zu tensors, %.2f GB of %s weights (generated in %.1f s)\n", config, g.n,
         (double)g.data_bytes / 1e9, dg_dtype_name(g.dt), now() - t0);

  int64_t h = size / 8, ctx_len = 77;
  int64_t xs[4] = {batch, cfg.in_channels, h, h}, cs[3] = {batch, ctx_len, cfg.cross_attention_dim};
  int64_t ts[1] = {batch};
  float *xb = malloc((size_t)(xs[0] * xs[1] * xs[2] * xs[3]) * 4);
  float *yb = malloc((size_t)(xs[0] * xs[1] * xs[2] * xs[3]) * 4);
  float *cb = malloc((size_t)(cs[0] * cs[1] * cs[2]) * 4), *tb = malloc((size_t)batch * 4);
  for (int64_t i = 0; i < xs[0] * xs[1] * xs[2] * xs[3]; i++) xb[i] = urand();
  for (int64_t i = 0; i < cs[0] * cs[1] * cs[2]; i++) cb[i] = urand();
  for (int i = 0; i < batch; i++) tb[i] = 500.0f;
  dg_tensor x = dg_tensor_make(DG_DTYPE_F32, 4, xs, xb), y = dg_tensor_make(DG_DTYPE_F32, 4, xs, yb);
  dg_tensor c = dg_tensor_make(DG_DTYPE_F32, 3, cs, cb), t = dg_tensor_make(DG_DTYPE_F32, 1, ts, tb);
  dg_unet_extras ex;
  memset(&ex, 0, sizeof ex);
  int64_t es[2] = {batch, 1280}, is[2] = {batch, 6};
  float *eb = NULL, *ib = NULL;
  dg_tensor te, ti;
  if (cfg.addition_text_time) {
    eb = calloc((size_t)batch * 1280, 4);
    ib = calloc((size_t)batch * 6, 4);
    for (int i = 0; i < batch * 6; i++) ib[i] = (float)(i % 6 < 2 || i % 6 >= 4 ? size : 0);
    te = dg_tensor_make(DG_DTYPE_F32, 2, es, eb);
    ti = dg_tensor_make(DG_DTYPE_F32, 2, is, ib);
    ex.text_embeds = &te;
    ex.time_ids = &ti;
  }

  for (int pi = 0; pi < 2; pi++) {
    dg_precision p = pi ? DG_PRECISION_BF16 : DG_PRECISION_F32;
    if ((p == DG_PRECISION_F32 && !strcmp(prec, "bf16")) ||
        (p == DG_PRECISION_BF16 && !strcmp(prec, "f32")))
      continue;
    dg_engine_params ep = dg_engine_params_default();
    ep.n_threads = threads;
    ep.precision = p;
    ep.isa = !strcmp(isa_s, "ref")       ? DG_ISA_REF
             : !strcmp(isa_s, "generic") ? DG_ISA_GENERIC
             : !strcmp(isa_s, "avx2")    ? DG_ISA_AVX2
             : !strcmp(isa_s, "avx512")  ? DG_ISA_AVX512
                                         : DG_ISA_AUTO;
    dg_engine *e = NULL;
    if (dg_engine_new(&ep, &e) != DG_STATUS_OK) {
      fprintf(stderr, "engine: unsupported\n");
      return 1;
    }
    dg_arena *a = dg_arena_new((size_t)64 << 20);
    double tw = now();
    dg_status s = dg_unet_forward(u, e, a, &x, &t, &c, &ex, &y);
    tw = now() - tw;
    if (s != DG_STATUS_OK) {
      fprintf(stderr, "forward: %s\n", dg_strerror(s));
      return 1;
    }
    double best = 1e30, sum = 0, cpu0 = cpu_now();
    for (int it = 0; it < iters; it++) {
      double t1 = now();
      dg_unet_forward(u, e, a, &x, &t, &c, &ex, &y);
      double d = now() - t1;
      sum += d;
      if (d < best) best = d;
    }
    double cpu = (cpu_now() - cpu0) / iters;
    double chk = 0;
    for (int64_t i = 0; i < xs[0] * xs[1] * xs[2] * xs[3]; i++) chk += yb[i] * yb[i];
    printf("precision %-4s isa %-7s threads %d: %dx%d batch %d: %.2f s per UNet call (mean of %d, "
           "best %.2f; warm-up %.2f; %.2f CPU-s per call), arena peak %.0f MB, out rms %.3g\n",
           p == DG_PRECISION_BF16 ? "bf16" : "f32", dg_isa_name(dg_engine_isa(e)),
           dg_engine_threads(e), size, size, batch, sum / iters, iters, best, tw, cpu,
           (double)dg_arena_peak_bytes(a) / 1e6, sqrt(chk / (double)(xs[0] * xs[1] * xs[2] * xs[3])));
    dg_arena_free(a);
    dg_engine_free(e);
  }
  printf("peak RSS %.0f MB\n", peak_rss_mb());
  dg_unet_free(u);
  dg_weights_free(w);
  dg_safetensors_close(st);
  free(file);
  for (size_t i = 0; i < g.n; i++) free(g.names[i]);
  free(g.names), free(g.shapes), free(g.ndims), free(g.offs), free(g.sizes);
  free(xb), free(yb), free(cb), free(tb), free(eb), free(ib);
  return 0;
usage:
  fprintf(stderr,
          "usage: bench_unet [--config sd15|sdxl] [--size 512] [--batch 2] [--wdtype f16|bf16|f32]\n"
          "                  [--precision f32|bf16|both] [--threads N] [--iters N] [--isa auto|ref]\n");
  return 2;
}
