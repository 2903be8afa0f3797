/* bf16 precision against f32 (issue #3: "images in bf16 mode must stay
 * visually identical to f32").  See bench/RESULTS.md "bf16 vs f32 drift".
 *
 * 1. The bf16 path rounds exactly what it should: linear and conv2d in bf16
 *    mode equal the exact (double) product of the bf16-rounded operands up to
 *    f32 accumulation error.  Measured <= 8.3e-8 of sum |products|; bound
 *    5e-6.  The same outputs against the UNrounded operands are off by
 *    1.2e-4 .. 2.6e-3 of that sum (measured on these cases): an operand left
 *    unrounded, or rounded differently (truncation, twice), shows at 25x-500x
 *    the bound.
 * 2. One call of each network of the tiny fixture model, bf16 vs f32 on the
 *    same inputs (relative L2): CLIP 0.0031, UNet 0.011, VAE decode 0.016
 *    measured; bounds 3x that (0.01, 0.03, 0.05).  Compare: rounding only the
 *    UNet's inputs (latent, context) to bf16 and computing in f32 costs 0.0029;
 *    every GEMM of the UNet rounds its operands, so ~4x that is expected.
 * 3. The whole img2img pipeline on the tiny model at the settings
 *    (64x64, 20 steps, strength 0.75, CFG 7.5, DDIM, seed 42), f32 vs bf16
 *    8-bit images: measured max |diff| 21, mean 1.22 (at 19c224f) and 14,
 *    1.26 (with the attention and GELU changes after it); bench_sd15 with its
 *    synthetic input: max 14-17, mean 1.06-1.29.  Bounds: mean <= 2.5 (1% of the
 *    range: not visible) and max <= 48 (isolated pixels; 15 sampler steps
 *    with CFG 7.5 amplify the per-call error above). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/rng.h"
#include "models/sd15.h"
#include "pipelines/sd15_img2img.h"
#include "t.h"
#include "tensor/ops.h"
#include "weights/safetensors.h"

static float rnd(float x) { return dg_bf16_to_f32(dg_f32_to_bf16(x)); }

static dg_engine *engine(dg_precision p, int threads) {
  dg_engine_params ep = dg_engine_params_default();
  ep.precision = p;
  ep.n_threads = threads;
  dg_engine *e = NULL;
  CHECK(dg_engine_new(&ep, &e) == DG_STATUS_OK);
  return e;
}

static double rel_l2(const float *ref, const float *x, int64_t n) {
  double d = 0, r = 0;
  for (int64_t i = 0; i < n; i++) {
    d += ((double)x[i] - ref[i]) * ((double)x[i] - ref[i]);
    r += (double)ref[i] * ref[i];
  }
  return sqrt(d / r);
}

/* ---- 1. kernels ------------------------------------------------------------ */

static int bf16_kernels; /* 1 when the bf16 precision has a bf16 kernel on this CPU */

static void linear_case(dg_engine *e, int64_t M, int64_t N, int64_t K, int f16w) {
  float *x = malloc((size_t)(M * K) * 4), *wf = malloc((size_t)(N * K) * 4), *b = malloc((size_t)N * 4);
  float *y = malloc((size_t)(M * N) * 4);
  uint16_t *wh = malloc((size_t)(N * K) * 2);
  dg_rng r;
  dg_rng_seed(&r, (uint64_t)(M + 100 * N + 10000 * K));
  dg_rng_randn(&r, x, M * K);
  dg_rng_randn(&r, wf, N * K);
  dg_rng_randn(&r, b, N);
  for (int64_t i = 0; i < N * K; i++) {
    wh[i] = dg_f32_to_f16(wf[i]);
    if (f16w) wf[i] = dg_f16_to_f32(wh[i]);
  }
  int64_t sx[2] = {M, K}, sw[2] = {N, K}, sb[1] = {N}, sy[2] = {M, N};
  dg_tensor tx = dg_tensor_make(DG_DTYPE_F32, 2, sx, x), tb = dg_tensor_make(DG_DTYPE_F32, 1, sb, b);
  dg_tensor tw = f16w ? dg_tensor_make(DG_DTYPE_F16, 2, sw, wh) : dg_tensor_make(DG_DTYPE_F32, 2, sw, wf);
  dg_tensor ty = dg_tensor_make(DG_DTYPE_F32, 2, sy, y);
  CHECK(dg_linear(e, &ty, &tx, &tw, &tb) == DG_STATUS_OK);
  double worst = 0;
  for (int64_t i = 0; i < M; i++)
    for (int64_t j = 0; j < N; j++) {
      double s = b[j], sa = fabs(b[j]);
      for (int64_t k = 0; k < K; k++) {
        double p = bf16_kernels ? (double)rnd(x[i * K + k]) * rnd(wf[j * K + k]) : (double)x[i * K + k] * wf[j * K + k];
        s += p;
        sa += fabs(p);
      }
      worst = fmax(worst, fabs(y[i * N + j] - s) / sa);
    }
  printf("linear %lldx%lldx%lld %s weights: %.3g of sum|products|\n", (long long)M, (long long)N, (long long)K,
         f16w ? "f16" : "f32", worst);
  CHECK_MSG(worst <= 5e-6, "linear M %lld N %lld K %lld: %g", (long long)M, (long long)N, (long long)K, worst);
  free(x), free(wf), free(b), free(y), free(wh);
}

static void conv_case(dg_engine *e, int64_t Ci, int64_t Co, int64_t H, int64_t W, int k, int stride) {
  int pad = k / 2;
  int64_t Ho = (H + 2 * pad - k) / stride + 1, Wo = (W + 2 * pad - k) / stride + 1;
  float *x = malloc((size_t)(Ci * H * W) * 4), *w = malloc((size_t)(Co * Ci * k * k) * 4);
  float *b = malloc((size_t)Co * 4), *y = malloc((size_t)(Co * Ho * Wo) * 4);
  dg_rng r;
  dg_rng_seed(&r, (uint64_t)(Ci + 7 * Co + 1000 * H));
  dg_rng_randn(&r, x, Ci * H * W);
  dg_rng_randn(&r, w, Co * Ci * k * k);
  dg_rng_randn(&r, b, Co);
  int64_t sx[4] = {1, Ci, H, W}, sw[4] = {Co, Ci, k, k}, sb[1] = {Co}, sy[4] = {1, Co, Ho, Wo};
  dg_tensor tx = dg_tensor_make(DG_DTYPE_F32, 4, sx, x), tw = dg_tensor_make(DG_DTYPE_F32, 4, sw, w);
  dg_tensor tb = dg_tensor_make(DG_DTYPE_F32, 1, sb, b), ty = dg_tensor_make(DG_DTYPE_F32, 4, sy, y);
  CHECK(dg_conv2d(e, &ty, &tx, &tw, &tb, stride, pad) == DG_STATUS_OK);
  double worst = 0;
  for (int64_t co = 0; co < Co; co++)
    for (int64_t oy = 0; oy < Ho; oy++)
      for (int64_t ox = 0; ox < Wo; ox++) {
        double s = b[co], sa = fabs(b[co]);
        for (int64_t ci = 0; ci < Ci; ci++)
          for (int dy = 0; dy < k; dy++)
            for (int dx = 0; dx < k; dx++) {
              int64_t iy = oy * stride + dy - pad, ix = ox * stride + dx - pad;
              if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
              float xv = x[(ci * H + iy) * W + ix], wv = w[((co * Ci + ci) * k + dy) * k + dx];
              double p = bf16_kernels ? (double)rnd(xv) * rnd(wv) : (double)xv * wv;
              s += p;
              sa += fabs(p);
            }
        worst = fmax(worst, fabs(y[(co * Ho + oy) * Wo + ox] - s) / sa);
      }
  printf("conv%dx%d Ci %lld Co %lld %lldx%lld stride %d: %.3g of sum|products|\n", k, k, (long long)Ci,
         (long long)Co, (long long)H, (long long)W, stride, worst);
  CHECK_MSG(worst <= 5e-6, "conv Ci %lld Co %lld: %g", (long long)Ci, (long long)Co, worst);
  free(x), free(w), free(b), free(y);
}

static void test_kernels(void) {
  for (int threads = 1; threads <= 2; threads++) {
    dg_engine *e = engine(DG_PRECISION_BF16, threads);
    if (!e) return;
    /* as dg__ukernel_for: bf16 kernels need AVX-512 (ISA not overridden by DG_ISA) + avx512bf16 */
    bf16_kernels = dg_engine_isa(e) == DG_ISA_AVX512 && dg_cpu_has_avx512bf16();
    if (!bf16_kernels && threads == 1) printf("note: bf16 mode runs the f32 kernels here, checked as such\n");
    linear_case(e, 1, 1, 1, 0);
    linear_case(e, 33, 17, 31, 0);
    linear_case(e, 33, 17, 31, 1);
    linear_case(e, 77, 96, 769, 1);
    linear_case(e, 50, 130, 95, 0);
    conv_case(e, 3, 5, 7, 9, 3, 1);
    conv_case(e, 35, 33, 13, 11, 3, 1);
    conv_case(e, 40, 24, 9, 7, 3, 2);
    conv_case(e, 96, 40, 6, 5, 1, 1);
    dg_engine_free(e);
  }
}

/* ---- 2. one call of each network ------------------------------------------- */

static void test_networks(dg_sd15 *m, dg_engine *e32, dg_engine *e16) {
  dg_arena *a = dg_arena_new(16 << 20);
  const dg_unet *u = dg_sd15_unet(m);
  const dg_vae *v = dg_sd15_vae(m);
  dg_clip_text *te = dg_sd15_text_encoder(m);
  const int64_t C = dg_unet_get_config(u)->cross_attention_dim;
  int64_t s_ids[2] = {1, 77}, s_ctx[3] = {1, 77, C}, s_x[4] = {1, 4, 8, 8}, s_t[1] = {1};
  int64_t s_img[4] = {1, 3, 8 * dg_vae_factor(dg_vae_get_config(v)), 8 * dg_vae_factor(dg_vae_get_config(v))};
  dg_tensor *ids = dg_arena_tensor(a, DG_DTYPE_I64, 2, s_ids);
  dg_tensor *c32 = dg_arena_tensor(a, DG_DTYPE_F32, 3, s_ctx), *c16 = dg_arena_tensor(a, DG_DTYPE_F32, 3, s_ctx);
  dg_tensor *x = dg_arena_tensor(a, DG_DTYPE_F32, 4, s_x), *t = dg_arena_tensor(a, DG_DTYPE_F32, 1, s_t);
  dg_tensor *y32 = dg_arena_tensor(a, DG_DTYPE_F32, 4, s_x), *y16 = dg_arena_tensor(a, DG_DTYPE_F32, 4, s_x);
  dg_tensor *i32 = dg_arena_tensor(a, DG_DTYPE_F32, 4, s_img), *i16 = dg_arena_tensor(a, DG_DTYPE_F32, 4, s_img);
  char err[256];
  CHECK(dg_tokenizer_encode(dg_sd15_tokenizer(m), "a watercolor painting of a lighthouse on a cliff", ids->data) ==
        DG_STATUS_OK);
  dg_clip_text_run r = dg_clip_text_run_default();
  r.hidden = c32;
  CHECK(dg_clip_text_forward(te, e32, a, ids, &r, err, sizeof err) == DG_STATUS_OK);
  r.hidden = c16;
  CHECK(dg_clip_text_forward(te, e16, a, ids, &r, err, sizeof err) == DG_STATUS_OK);
  double ec = rel_l2(c32->data, c16->data, dg_tensor_numel(c32));
  dg_rng rng;
  dg_rng_seed(&rng, 0);
  dg_rng_randn(&rng, x->data, dg_tensor_numel(x));
  ((float *)t->data)[0] = 500.0f;
  CHECK(dg_unet_forward(u, e32, a, x, t, c32, NULL, y32) == DG_STATUS_OK);
  CHECK(dg_unet_forward(u, e16, a, x, t, c32, NULL, y16) == DG_STATUS_OK);
  double eu = rel_l2(y32->data, y16->data, dg_tensor_numel(y32));
  for (int64_t i = 0; i < dg_tensor_numel(x); i++) ((float *)x->data)[i] /= 0.18215f;
  CHECK(dg_vae_decode(v, e32, a, x, i32, NULL) == DG_STATUS_OK);
  CHECK(dg_vae_decode(v, e16, a, x, i16, NULL) == DG_STATUS_OK);
  double ev = rel_l2(i32->data, i16->data, dg_tensor_numel(i32));
  printf("tiny model, bf16 vs f32 rel L2: CLIP %.3g, UNet %.3g, VAE decode %.3g\n", ec, eu, ev);
  if (bf16_kernels) {
    CHECK_MSG(ec > 0 && ec <= 0.01, "CLIP %g", ec);
    CHECK_MSG(eu > 0 && eu <= 0.03, "UNet %g", eu);
    CHECK_MSG(ev > 0 && ev <= 0.05, "VAE %g", ev);
  } else {
    CHECK(ec == 0 && eu == 0 && ev == 0);
  }
  dg_arena_free(a);
}

/* ---- 3. the pipeline ----------------------------------------------------- */

static void test_pipeline(dg_sd15 *m, dg_engine *e32, dg_engine *e16) {
  char err[512];
  dg_safetensors *g = NULL;
  CHECK(dg_safetensors_open(t_data("sd15-tiny/goldens/img2img_ddim.safetensors"), &g, err, sizeof err) ==
        DG_STATUS_OK);
  const dg_tensor *in = g ? dg_safetensors_find(g, "image_u8_hwc") : NULL;
  CHECK(in && dg_tensor_nbytes(in) == 64 * 64 * 3);
  if (!in || dg_tensor_nbytes(in) != 64 * 64 * 3) {
    dg_safetensors_close(g);
    return;
  }
  dg_image *img = dg_image_new(64, 64, 3);
  memcpy(img->pixels, in->data, 64 * 64 * 3);
  dg_sd15_img2img_request r = {0};
  r.image = img;
  r.prompt = "a watercolor painting of a lighthouse at dusk";
  r.negative_prompt = "blurry, low quality";
  r.samples = 1;
  r.scheduler = "DDIM";
  r.steps = 20;
  r.guidance_scale = 7.5;
  r.strength = 0.75;
  r.seed = 42;
  r.width = 64;
  r.height = 64;
  dg_image *o32 = NULL, *o16 = NULL;
  CHECK(dg_sd15_img2img_generate(m, e32, &r, &o32, err, sizeof err) == DG_STATUS_OK);
  CHECK(dg_sd15_img2img_generate(m, e16, &r, &o16, err, sizeof err) == DG_STATUS_OK);
  if (o32 && o16) {
    int maxd = 0;
    double sum = 0;
    for (int i = 0; i < 64 * 64 * 3; i++) {
      int d = abs((int)o32->pixels[i] - (int)o16->pixels[i]);
      maxd = d > maxd ? d : maxd;
      sum += d;
    }
    double mean = sum / (64 * 64 * 3);
    printf("img2img 64x64, 20 steps, strength 0.75, CFG 7.5: f32 vs bf16 max |diff| %d, mean %.3f\n", maxd, mean);
    CHECK_MSG(maxd <= 48 && mean <= 2.5, "max %d mean %.3f", maxd, mean);
    if (bf16_kernels) CHECK(maxd > 0); /* the two precisions did run differently */
  }
  dg_image_free(o32);
  dg_image_free(o16);
  dg_image_free(img);
  dg_safetensors_close(g);
}

int main(void) {
  test_kernels();
  dg_sd15_params p = dg_sd15_params_default();
  p.path = t_data("sd15-tiny/diffusers");
  dg_sd15 *m = NULL;
  char err[512];
  dg_status st = dg_sd15_open(&p, &m, err, sizeof err);
  CHECK_MSG(st == DG_STATUS_OK, "open: %s", err);
  dg_engine *e32 = engine(DG_PRECISION_F32, 2), *e16 = engine(DG_PRECISION_BF16, 2);
  if (m && e32 && e16) {
    test_networks(m, e32, e16);
    test_pipeline(m, e32, e16);
  }
  dg_engine_free(e32);
  dg_engine_free(e16);
  dg_sd15_close(m);
  T_DONE();
}
