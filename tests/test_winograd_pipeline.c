/* Winograd convolutions through the real path: the tiny SD1.5 model's
 * img2img at 512 x 512 (64 x 64 latents: the UNet's 3x3 convolutions of 32 and
 * 64 channels take F(4x4,3x3) at 64 x 64 and 32 x 32, the VAE's at every size) against the same run with DG_WINOGRAD=0 (direct convolutions
 * only).  The two must differ (the Winograd path really ran) by no more than
 * float rounding: decoded image within 2e-3, 8-bit pixels off by at most 1. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pipelines/sd15_img2img.h"
#include "t.h"
#include "weights/safetensors.h"

/* 512 in the Release run; 256 under the sanitizers (DG_SANITIZE=1), where
 * a 512 run costs minutes. */
static int S = 512;

static int run(dg_sd15 *m, const dg_image *img, float *image_out, dg_image **out) {
  dg_engine_params ep = dg_engine_params_default();
  ep.n_threads = 2;
  dg_engine *e = NULL;
  if (dg_engine_new(&ep, &e) != DG_STATUS_OK) return 0;
  dg_sd15_img2img_request r = {0};
  r.image = img;
  r.prompt = "a watercolor painting of a lighthouse at dusk";
  r.negative_prompt = "blurry";
  r.samples = 1;
  r.scheduler = "DDIM";
  r.steps = 10;
  r.guidance_scale = 7.5;
  r.strength = S == 512 ? 0.3 : 0.2; /* 3 (2) UNet steps */
  r.seed = 7;
  r.width = S;
  r.height = S;
  r.image_out = image_out;
  char err[512];
  dg_status st = dg_sd15_img2img_generate(m, e, &r, out, err, sizeof err);
  CHECK_MSG(st == DG_STATUS_OK, "generate: %s", err);
  dg_engine_free(e);
  return st == DG_STATUS_OK;
}

int main(void) {
  if (getenv("DG_SANITIZE") && atoi(getenv("DG_SANITIZE"))) S = 256;
  dg_sd15_params p = dg_sd15_params_default();
  p.path = t_data("sd15-tiny/diffusers");
  dg_sd15 *m = NULL;
  char err[512];
  CHECK_MSG(dg_sd15_open(&p, &m, err, sizeof err) == DG_STATUS_OK, "open: %s", err);
  if (!m) T_DONE();
  dg_safetensors *gs = NULL;
  CHECK(dg_safetensors_open(t_data("sd15-tiny/goldens/img2img_ddim.safetensors"), &gs, err, sizeof err) ==
        DG_STATUS_OK);
  const dg_tensor *in = gs ? dg_safetensors_find(gs, "image_u8_hwc") : NULL;
  CHECK(in != NULL);
  if (!in) T_DONE();
  dg_image *img = dg_image_new(64, 64, 3);
  memcpy(img->pixels, in->data, 64 * 64 * 3);

  float *direct = malloc((size_t)(3 * S * S) * sizeof(float)), *wino = malloc((size_t)(3 * S * S) * sizeof(float));
  dg_image *od[1] = {0}, *ow[1] = {0};
  setenv("DG_WINOGRAD", "0", 1);
  int ok = run(m, img, direct, od);
  unsetenv("DG_WINOGRAD");
  ok = ok && run(m, img, wino, ow);
  if (ok) {
    double dmax = 0.0, amax = 0.0;
    int du = 0;
    for (int i = 0; i < 3 * S * S; i++) {
      dmax = fmax(dmax, fabs((double)wino[i] - direct[i]));
      amax = fmax(amax, fabs((double)direct[i]));
    }
    for (int i = 0; i < S * S * 3; i++) {
      int d = abs((int)ow[0]->pixels[i] - (int)od[0]->pixels[i]);
      if (d > du) du = d;
    }
    printf("%dx%d img2img, Winograd vs direct: image max diff %.3g (max |x| %.3g), u8 max diff %d\n", S, S, dmax, amax,
           du);
    CHECK_MSG(dmax > 0.0, "identical outputs: the Winograd path did not run");
    CHECK_MSG(dmax <= 2e-3, "image differs by %.3g", dmax);
    CHECK_MSG(du <= 1, "u8 differs by %d", du);
  }
  dg_image_free(od[0]);
  dg_image_free(ow[0]);
  dg_image_free(img);
  free(direct);
  free(wino);
  dg_safetensors_close(gs);
  dg_sd15_close(m);
  T_DONE();
}
