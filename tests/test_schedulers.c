/* The twelve (+ DPM++ 2M Karras) schedulers against diffusers v0.27.2 goldens
 * (tests/data/sd15-tiny/goldens/schedulers/, README "schedulers/"): schedule
 * (timesteps, sigmas, init_noise_sigma), img2img truncation, add_noise,
 * scale_model_input, and whole trajectories replayed with the toy model
 * eps = 0.9*tanh(x_in) + 0.05*(t/1000) and the recorded step noise, feeding
 * our own x back (errors accumulate as they would in use). Then the two full
 * pipeline trajectories (img2img_ddim / img2img_euler_a) with the recorded
 * guided noise predictions. A tiny private safetensors reader keeps this test
 * independent of the weights module. */
#include <jansson.h>
#include <stdint.h>

#include "base/rng.h"
#include "sampling/sched_internal.h"
#include "sampling/scheduler.h"
#include "t.h"

/* ---- minimal safetensors reader (test only) ---- */
typedef struct {
  char *buf;
  size_t size;
  json_t *hdr;
  size_t data_off;
} stfile;

typedef struct {
  const char *dtype;
  int64_t shape[8];
  int ndim;
  int64_t n;
  const unsigned char *data;
} sttensor;

static int st_open(stfile *f, const char *path) {
  memset(f, 0, sizeof *f);
  FILE *fp = fopen(path, "rb");
  if (!fp) return -1;
  fseek(fp, 0, SEEK_END);
  long sz = ftell(fp);
  fseek(fp, 0, SEEK_SET);
  f->buf = malloc((size_t)sz);
  if (!f->buf || fread(f->buf, 1, (size_t)sz, fp) != (size_t)sz) {
    fclose(fp);
    free(f->buf);
    return -1;
  }
  fclose(fp);
  f->size = (size_t)sz;
  uint64_t hl = 0;
  for (int i = 7; i >= 0; i--) hl = (hl << 8) | (unsigned char)f->buf[i];
  if (hl + 8 > f->size) return -1;
  json_error_t e;
  f->hdr = json_loadb(f->buf + 8, (size_t)hl, 0, &e);
  f->data_off = 8 + (size_t)hl;
  return f->hdr ? 0 : -1;
}

static void st_close(stfile *f) {
  json_decref(f->hdr);
  free(f->buf);
}

static int st_get(const stfile *f, const char *name, sttensor *t) {
  json_t *o = json_object_get(f->hdr, name);
  if (!o) return -1;
  t->dtype = json_string_value(json_object_get(o, "dtype"));
  json_t *sh = json_object_get(o, "shape");
  t->ndim = (int)json_array_size(sh);
  t->n = 1;
  for (int i = 0; i < t->ndim && i < 8; i++) {
    t->shape[i] = json_integer_value(json_array_get(sh, (size_t)i));
    t->n *= t->shape[i];
  }
  json_t *off = json_object_get(o, "data_offsets");
  t->data = (const unsigned char *)f->buf + f->data_off +
            json_integer_value(json_array_get(off, 0));
  return 0;
}

static double st_val(const sttensor *t, int64_t i) {
  const unsigned char *p = t->data;
  if (!strcmp(t->dtype, "F32")) {
    float v;
    memcpy(&v, p + 4 * i, 4);
    return v;
  }
  if (!strcmp(t->dtype, "F64")) {
    double v;
    memcpy(&v, p + 8 * i, 8);
    return v;
  }
  if (!strcmp(t->dtype, "I64")) {
    int64_t v;
    memcpy(&v, p + 8 * i, 8);
    return (double)v;
  }
  if (!strcmp(t->dtype, "I32")) {
    int32_t v;
    memcpy(&v, p + 4 * i, 4);
    return v;
  }
  return NAN;
}

/* F32 tensor data (aligned copy). */
static float *st_f32(const stfile *f, const char *name, int64_t *n) {
  sttensor t;
  if (st_get(f, name, &t) || strcmp(t.dtype, "F32")) return NULL;
  float *v = malloc(sizeof(float) * (size_t)(t.n ? t.n : 1));
  memcpy(v, t.data, sizeof(float) * (size_t)t.n);
  if (n) *n = t.n;
  return v;
}

/* ---- noise injection ---- */
typedef struct {
  const float *noise; /* [steps, n] */
  int64_t n;
  int step;
  int draws;
  int bad;
} rec_noise;

static dg_status rec_noise_fn(void *ctx, float *out, int64_t n) {
  rec_noise *r = ctx;
  if (n != r->n || !r->noise) {
    r->bad = 1;
    memset(out, 0, sizeof(float) * (size_t)n);
  } else {
    memcpy(out, r->noise + (int64_t)r->step * n, sizeof(float) * (size_t)n);
  }
  r->draws++;
  return DG_STATUS_OK;
}

static void toy_model(const float *x_in, double t, float *eps, int64_t n) {
  float add = (float)(0.05 * (double)(float)t / 1000.0);
  for (int64_t j = 0; j < n; j++) eps[j] = 0.9f * tanhf(x_in[j]) + add;
}

static double max_abs(const float *a, int64_t n) {
  double m = 0;
  for (int64_t j = 0; j < n; j++)
    if (fabs(a[j]) > m) m = fabs(a[j]);
  return m;
}

static double max_diff(const float *a, const float *b, int64_t n) {
  double m = 0;
  for (int64_t j = 0; j < n; j++) {
    double d = fabs((double)a[j] - (double)b[j]);
    if (!(d <= m)) m = d;
  }
  return m;
}

static const char *ids[] = {"ddim",        "pndm",          "lms",
                            "euler",       "euler_a",       "heun",
                            "dpm2_karras", "dpm2_a_karras", "dpmpp_2m",
                            "dpmpp_2m_karras", "dpmpp_singlestep", "unipc",
                            "ddpm"};

static double worst_rel[16], worst_forced[16];
static int exact_steps, total_steps;
static double worst_lms;

static void check_schedule(const stfile *f, dg_scheduler *s, int N, const char *id) {
  char key[128];
  sttensor t;
  snprintf(key, sizeof key, "n%d.timesteps", N);
  CHECK(st_get(f, key, &t) == 0);
  CHECK_MSG(t.n == dg_scheduler_num_timesteps(s), "%s N=%d: %lld timesteps vs %d", id, N,
            (long long)t.n, dg_scheduler_num_timesteps(s));
  if (t.n == dg_scheduler_num_timesteps(s)) {
    double md = 0;
    for (int64_t k = 0; k < t.n; k++) {
      double d = fabs(st_val(&t, k) - dg_scheduler_timestep(s, (int)k));
      if (!(d <= md)) md = d;
    }
    /* integer schedules exactly; interpolated KDPM2 timesteps to 1 float32 ulp */
    CHECK_MSG(md <= 1e-4, "%s N=%d timesteps max diff %g", id, N, md);
  }
  snprintf(key, sizeof key, "n%d.sigmas", N);
  if (st_get(f, key, &t) == 0) {
    CHECK_MSG(t.n == dg_scheduler_num_sigmas(s), "%s N=%d: %lld sigmas vs %d", id, N,
              (long long)t.n, dg_scheduler_num_sigmas(s));
    if (t.n == dg_scheduler_num_sigmas(s)) {
      double mr = 0;
      for (int64_t k = 0; k < t.n; k++) {
        double g = st_val(&t, k), m = dg_scheduler_sigma(s, (int)k);
        double d = fabs(g - m) / (fabs(g) > 1e-3 ? fabs(g) : 1e-3);
        if (!(d <= mr)) mr = d;
      }
      CHECK_MSG(mr <= 1.2e-7, "%s N=%d sigmas max rel diff %g", id, N, mr); /* <= 1 ulp */
    }
  } else {
    CHECK(dg_scheduler_num_sigmas(s) == 0 || !strcmp(id, "dpmpp_2m") ||
          !strcmp(id, "dpmpp_2m_karras") || !strcmp(id, "dpmpp_singlestep"));
  }
  snprintf(key, sizeof key, "n%d.init_noise_sigma", N);
  CHECK(st_get(f, key, &t) == 0);
  CHECK_NEAR(dg_scheduler_init_noise_sigma(s), st_val(&t, 0), 1e-6 * st_val(&t, 0));
}

/* forced = 0: closed loop (our x, our toy eps). forced = 1: teacher forcing,
 * every step starts from the recorded x with the recorded eps, which isolates
 * the scheduler arithmetic from the toy model's tanh. */
static void replay(const stfile *f, dg_scheduler *s, int N, const char *mode, int kidx,
                   const char *id, int forced) {
  char key[160];
  int64_t n = 0, nn;
#define K(suffix) (snprintf(key, sizeof key, "n%d.%s.%s", N, mode, suffix), key)
  float *noise = st_f32(f, K("noise"), &n);
  float *x_init = st_f32(f, K("x_init"), &nn);
  float *model_in = st_f32(f, K("model_in"), NULL);
  float *eps_g = st_f32(f, K("eps"), NULL);
  float *x_out = st_f32(f, K("x_out"), NULL);
  float *step_noise = st_f32(f, K("step_noise"), NULL);
  sttensor ts, tt, nnz, lms;
  int have_lms = st_get(f, K("lms_coeffs"), &lms) == 0;
  CHECK(noise && x_init && model_in && eps_g && x_out && nn == n);
  CHECK(st_get(f, K("timesteps"), &ts) == 0 && st_get(f, K("t"), &tt) == 0 &&
        st_get(f, K("n_noise"), &nnz) == 0);
  if (!noise || !x_init || !model_in || !eps_g || !x_out) goto out;

  float x[4096], x_in[4096], eps[4096];
  if (n > 4096) goto out;
  if (!strcmp(mode, "txt2img")) {
    float sig = dg_scheduler_init_noise_sigma(s);
    for (int64_t j = 0; j < n; j++) x[j] = noise[j] * sig;
  } else {
    double strength = !strcmp(mode, "img2img_s100") ? 1.0 : 0.75;
    int t_start = -1;
    CHECK(dg_scheduler_set_strength(s, strength, &t_start) == DG_STATUS_OK);
    CHECK(t_start == (int)(N - (int)(N * strength)));
    float *x0 = st_f32(f, K("x0"), NULL);
    CHECK(x0 != NULL);
    if (!x0) goto out;
    CHECK(dg_scheduler_add_noise(s, x0, noise, x, n) == DG_STATUS_OK);
    free(x0);
    sttensor lt;
    CHECK(st_get(f, K("latent_timestep"), &lt) == 0);
    CHECK_NEAR(dg_scheduler_loop_timestep(s, 0), st_val(&lt, 0), 2e-3);
  }
  double d0 = max_diff(x, x_init, n);
  CHECK_MSG(d0 <= 1e-6 * (max_abs(x_init, n) + 1), "%s N=%d %s x_init diff %g", id, N, mode, d0);

  int len = dg_scheduler_loop_len(s);
  CHECK_MSG(len == ts.n, "%s N=%d %s loop len %d vs %lld", id, N, mode, len, (long long)ts.n);
  if (len != ts.n) goto out;
  rec_noise rn = {step_noise, n, 0, 0, 0};
  double worst = 0;
  for (int i = 0; i < len; i++) {
    double t = dg_scheduler_loop_timestep(s, i);
    CHECK_MSG(fabs(t - st_val(&tt, i)) <= 2e-3, "%s N=%d %s step %d t %.9g vs %.9g", id, N,
              mode, i, t, st_val(&tt, i));
    CHECK(dg_scheduler_scale_model_input(s, i, x, x_in, n) == DG_STATUS_OK);
    double dm = max_diff(x_in, model_in + (int64_t)i * n, n);
    double sm = max_abs(model_in + (int64_t)i * n, n);
    CHECK_MSG(dm <= 1e-5 * sm + 1e-7, "%s N=%d %s step %d model_in diff %g (max %g)", id, N,
              mode, i, dm, sm);
    toy_model(x_in, t, eps, n);
    double de = max_diff(eps, eps_g + (int64_t)i * n, n);
    CHECK_MSG(de <= 1e-5, "%s N=%d %s step %d eps diff %g", id, N, mode, i, de);
    if (forced) {
      memcpy(eps, eps_g + (int64_t)i * n, sizeof(float) * (size_t)n);
      memcpy(x, i ? x_out + (int64_t)(i - 1) * n : x_init, sizeof(float) * (size_t)n);
    }
    rn.step = i;
    int before = rn.draws;
    dg_status st = dg_scheduler_step(s, i, eps, x, n, rec_noise_fn, &rn);
    CHECK_MSG(st == DG_STATUS_OK, "%s step %d: %s", id, i, dg_strerror(st));
    CHECK_MSG(rn.draws - before == (int)st_val(&nnz, i), "%s N=%d %s step %d draws %d vs %d", id,
              N, mode, i, rn.draws - before, (int)st_val(&nnz, i));
    const float *g = x_out + (int64_t)i * n;
    double dx = max_diff(x, g, n), sx = max_abs(g, n);
    double rel = dx / (sx > 0 ? sx : 1);
    if (!(rel <= worst)) worst = rel;
    if (forced && dx == 0) exact_steps++;
    if (forced) total_steps++;
    CHECK_MSG(rel <= (forced ? 1e-6 : 1e-5), "%s N=%d %s%s step %d x_out diff %g (max|x| %g)", id,
              N, mode, forced ? " (forced)" : "", i, dx, sx);
    if (have_lms) {
      double c[4];
      int nc = dg_scheduler_lms_coeffs(s, c);
      CHECK(nc >= 1 && nc <= 4);
      for (int q = 0; q < 4; q++) {
        double gq = st_val(&lms, (int64_t)i * 4 + q);
        double d = fabs(c[q] - gq);
        if (d > worst_lms) worst_lms = d;
        CHECK_MSG(d <= 1e-9, "lms N=%d %s step %d coeff %d: %.12g vs %.12g", N, mode, i, q, c[q],
                  gq);
      }
    }
  }
  CHECK(!rn.bad);
  /* a step out of order is refused */
  CHECK(dg_scheduler_step(s, len + 5, eps, x, n, rec_noise_fn, &rn) == DG_STATUS_ERR_INVALID);
  if (forced) {
    if (worst > worst_forced[kidx]) worst_forced[kidx] = worst;
  } else if (worst > worst_rel[kidx]) {
    worst_rel[kidx] = worst;
  }
out:
  free(noise);
  free(x_init);
  free(model_in);
  free(eps_g);
  free(x_out);
  free(step_noise);
#undef K
}

static void test_goldens(void) {
  stfile cf;
  CHECK(st_open(&cf, t_data("sd15-tiny/goldens/schedulers/common.safetensors")) == 0);
  dg_scheduler *s0 = NULL;
  CHECK(dg_scheduler_new("DDIM", &s0) == DG_STATUS_OK);
  if (s0) {
    sttensor ac;
    if (st_get(&cf, "alphas_cumprod", &ac) == 0) {
      int mism = 0; /* torch.linspace's float32 kernel and cumprod, bit for bit */
      for (int i = 0; i < 1000; i++) mism += (float)st_val(&ac, i) != s0->alphas_cumprod[i];
      CHECK_MSG(mism == 0, "alphas_cumprod: %d of 1000 differ", mism);
    }
    dg_scheduler_free(s0);
  }
  st_close(&cf);

  for (int kidx = 0; kidx < (int)(sizeof ids / sizeof ids[0]); kidx++) {
    char rel[256];
    snprintf(rel, sizeof rel, "sd15-tiny/goldens/schedulers/%s.safetensors", ids[kidx]);
    stfile f;
    if (st_open(&f, t_data(rel)) != 0) {
      CHECK_MSG(0, "cannot read %s", rel);
      continue;
    }
    static const char *modes[] = {"txt2img", "img2img_s100", "img2img_s075"};
    for (int N = 20; N <= 25; N += 5) {
      for (int m = 0; m < 3; m++) {
        dg_scheduler *s = NULL;
        CHECK(dg_scheduler_new(ids[kidx], &s) == DG_STATUS_OK);
        if (!s) continue;
        CHECK(dg_scheduler_set_timesteps(s, N) == DG_STATUS_OK);
        if (m == 0) check_schedule(&f, s, N, ids[kidx]);
        replay(&f, s, N, modes[m], kidx, ids[kidx], 0);
        CHECK(dg_scheduler_set_timesteps(s, N) == DG_STATUS_OK);
        replay(&f, s, N, modes[m], kidx, ids[kidx], 1);
        dg_scheduler_free(s);
      }
    }
    printf("%-17s worst x_out error relative to max|x|: closed loop %.3g, forced %.3g\n",
           ids[kidx], worst_rel[kidx], worst_forced[kidx]);
    st_close(&f);
  }
  printf("lms_coeffs worst abs error %.3g; forced steps bit-exact: %d of %d\n", worst_lms,
         exact_steps, total_steps);
}

/* Full StableDiffusionImg2ImgPipeline trajectories (strength 0.75, 20 steps,
 * CFG-guided noise predictions recorded). */
static void test_pipeline(const char *file, const char *name) {
  stfile f;
  CHECK(st_open(&f, t_data(file)) == 0);
  int64_t n = 0;
  float *init = st_f32(&f, "init_latents", &n);
  float *noise = st_f32(&f, "noise", NULL);
  float *lat_init = st_f32(&f, "latents_init", NULL);
  float *pred = st_f32(&f, "step_noise_pred", NULL);
  float *lat = st_f32(&f, "step_latents", NULL);
  float *fin = st_f32(&f, "latents_final", NULL);
  float *step_noise = st_f32(&f, "step_noise", NULL);
  sttensor all, ts, st_t;
  CHECK(init && noise && lat_init && pred && lat && fin);
  CHECK(st_get(&f, "all_timesteps", &all) == 0 && st_get(&f, "timesteps", &ts) == 0 &&
        st_get(&f, "step_t", &st_t) == 0);
  dg_scheduler *s = NULL;
  CHECK(dg_scheduler_new(name, &s) == DG_STATUS_OK);
  if (!s || !init || !noise || !lat_init || !pred || !lat || !fin) goto out;
  CHECK(dg_scheduler_set_timesteps(s, (int)all.n) == DG_STATUS_OK);
  for (int k = 0; k < all.n; k++) CHECK_NEAR(dg_scheduler_timestep(s, k), st_val(&all, k), 1e-3);
  CHECK(dg_scheduler_set_strength(s, 0.75, NULL) == DG_STATUS_OK);
  CHECK(dg_scheduler_loop_len(s) == ts.n);
  float *x = malloc(sizeof(float) * (size_t)n);
  float *x_in = malloc(sizeof(float) * (size_t)n);
  CHECK(dg_scheduler_add_noise(s, init, noise, x, n) == DG_STATUS_OK);
  CHECK(max_diff(x, lat_init, n) <= 1e-6 * max_abs(lat_init, n));
  rec_noise rn = {step_noise, n, 0, 0, 0};
  double worst = 0;
  for (int i = 0; i < dg_scheduler_loop_len(s) && i < ts.n; i++) {
    CHECK_NEAR(dg_scheduler_loop_timestep(s, i), st_val(&st_t, i), 1e-3);
    CHECK(dg_scheduler_scale_model_input(s, i, x, x_in, n) == DG_STATUS_OK);
    rn.step = i;
    CHECK(dg_scheduler_step(s, i, pred + (int64_t)i * n, x, n, rec_noise_fn, &rn) ==
          DG_STATUS_OK);
    double rel = max_diff(x, lat + (int64_t)i * n, n) / max_abs(lat + (int64_t)i * n, n);
    if (rel > worst) worst = rel;
    CHECK_MSG(rel <= 1e-5, "%s step %d rel diff %g", name, i, rel);
  }
  CHECK(!rn.bad);
  CHECK(max_diff(x, fin, n) <= 1e-5 * max_abs(fin, n));
  printf("pipeline %-8s worst step error %.3g (relative to max|x|)\n", name, worst);
  free(x);
  free(x_in);
out:
  dg_scheduler_free(s);
  free(init);
  free(noise);
  free(lat_init);
  free(pred);
  free(lat);
  free(fin);
  free(step_noise);
  st_close(&f);
}

/* The Euler a pipeline again, this time drawing every noise from the engine's
 * generator seeded like the reference (seed 42: VAE sample noise, add_noise
 * noise, then one draw per step through dg_scheduler_rng_noise). */
static void test_pipeline_rng(void) {
  stfile f;
  CHECK(st_open(&f, t_data("sd15-tiny/goldens/img2img_euler_a.safetensors")) == 0);
  int64_t n = 0;
  float *vae_noise = st_f32(&f, "vae_sample_noise", &n);
  float *init = st_f32(&f, "init_latents", NULL);
  float *noise = st_f32(&f, "noise", NULL);
  float *pred = st_f32(&f, "step_noise_pred", NULL);
  float *lat = st_f32(&f, "step_latents", NULL);
  float *buf = malloc(sizeof(float) * (size_t)(n ? n : 1));
  float *x = malloc(sizeof(float) * (size_t)(n ? n : 1));
  dg_scheduler *s = NULL;
  CHECK(vae_noise && init && noise && pred && lat && n > 0);
  CHECK(dg_scheduler_new("Euler a", &s) == DG_STATUS_OK);
  if (vae_noise && init && noise && pred && lat && s) {
    dg_rng rng;
    dg_rng_seed(&rng, 42);
    dg_rng_randn(&rng, buf, n);
    CHECK(max_diff(buf, vae_noise, n) == 0);
    dg_rng_randn(&rng, buf, n);
    CHECK(max_diff(buf, noise, n) == 0);
    CHECK(dg_scheduler_set_timesteps(s, 20) == DG_STATUS_OK);
    CHECK(dg_scheduler_set_strength(s, 0.75, NULL) == DG_STATUS_OK);
    CHECK(dg_scheduler_add_noise(s, init, buf, x, n) == DG_STATUS_OK);
    double worst = 0;
    for (int i = 0; i < dg_scheduler_loop_len(s); i++) {
      CHECK(dg_scheduler_step(s, i, pred + (int64_t)i * n, x, n, dg_scheduler_rng_noise, &rng) ==
            DG_STATUS_OK);
      double rel = max_diff(x, lat + (int64_t)i * n, n) / max_abs(lat + (int64_t)i * n, n);
      if (rel > worst) worst = rel;
    }
    CHECK_MSG(worst <= 1e-6, "Euler a with dg_rng: worst step error %g", worst);
    printf("pipeline Euler a with dg_rng seed 42: worst step error %.3g\n", worst);
  }
  dg_scheduler_free(s);
  free(vae_noise);
  free(init);
  free(noise);
  free(pred);
  free(lat);
  free(buf);
  free(x);
  st_close(&f);
}

/* dg_scheduler_run over a callback equals the hand-written loop. */
typedef struct {
  int calls;
} toy_ctx;

static dg_status toy_denoise(void *ctx, const float *x_in, double t, float *eps, int64_t n) {
  ((toy_ctx *)ctx)->calls++;
  toy_model(x_in, t, eps, n);
  return DG_STATUS_OK;
}

typedef struct {
  uint64_t state;
} lcg_noise;

static dg_status lcg_fn(void *ctx, float *out, int64_t n) {
  lcg_noise *l = ctx;
  for (int64_t j = 0; j < n; j++) {
    l->state = l->state * 6364136223846793005ULL + 1442695040888963407ULL;
    out[j] = (float)((double)(l->state >> 40) / (double)(1ULL << 24) - 0.5) * 2.0f;
  }
  return DG_STATUS_OK;
}

static void test_api(void) {
  dg_sched_kind k;
  CHECK(dg_scheduler_kind_from_name("DDIM", &k) == DG_STATUS_OK && k == DG_SCHED_KIND_DDIM);
  CHECK(dg_scheduler_kind_from_name("DPM Multi", &k) == DG_STATUS_OK &&
        k == DG_SCHED_KIND_DPMPP_2M);
  CHECK(dg_scheduler_kind_from_name("DPM Single", &k) == DG_STATUS_OK &&
        k == DG_SCHED_KIND_DPMPP_SINGLESTEP);
  CHECK(dg_scheduler_kind_from_name("Euler a", &k) == DG_STATUS_OK &&
        k == DG_SCHED_KIND_EULER_A);
  CHECK(dg_scheduler_kind_from_name("DPM2 a Karras", &k) == DG_STATUS_OK &&
        k == DG_SCHED_KIND_DPM2_A_KARRAS);
  CHECK(dg_scheduler_kind_from_name("euler a", &k) == DG_STATUS_ERR_NOT_FOUND);
  CHECK(dg_scheduler_kind_from_name(NULL, &k) == DG_STATUS_ERR_INVALID);
  static const char *api[] = {"DDIM", "DPM Multi", "DPM Single", "Euler a", "Euler", "Heun",
                              "DPM2 a Karras", "DPM2 Karras", "LMS", "PNDM", "UniPC", "DDPM"};
  for (int i = 0; i < 12; i++) {
    dg_scheduler *s = NULL;
    CHECK_MSG(dg_scheduler_new(api[i], &s) == DG_STATUS_OK, "%s", api[i]);
    if (!s) continue;
    CHECK(!strcmp(dg_scheduler_kind_name(dg_scheduler_kind(s)), api[i]));
    CHECK(dg_scheduler_set_timesteps(s, 0) == DG_STATUS_ERR_INVALID);
    CHECK(dg_scheduler_set_timesteps(s, 1001) == DG_STATUS_ERR_INVALID);
    float x[8] = {0};
    CHECK(dg_scheduler_step(s, 0, x, x, 8, NULL, NULL) == DG_STATUS_ERR_INVALID); /* no schedule */
    /* odd step counts, few steps, and a run through the callback */
    int counts[] = {1, 2, 3, 7, 50};
    for (int c = 0; c < 5; c++) {
      CHECK(dg_scheduler_set_timesteps(s, counts[c]) == DG_STATUS_OK);
      CHECK(dg_scheduler_set_strength(s, 0.0, NULL) == DG_STATUS_ERR_INVALID);
      CHECK(dg_scheduler_set_strength(s, 1.5, NULL) == DG_STATUS_ERR_INVALID);
      CHECK(dg_scheduler_set_strength(s, 1.0, NULL) == DG_STATUS_OK);
      float v[64];
      for (int j = 0; j < 64; j++) v[j] = (float)sin(j * 0.7) * dg_scheduler_init_noise_sigma(s);
      toy_ctx tc = {0};
      lcg_noise ln = {42};
      dg_status st = dg_scheduler_run(s, v, 64, toy_denoise, &tc, lcg_fn, &ln);
      CHECK_MSG(st == DG_STATUS_OK, "%s steps %d: %s", api[i], counts[c], dg_strerror(st));
      CHECK(tc.calls == dg_scheduler_loop_len(s));
      int finite = 1;
      for (int j = 0; j < 64; j++) finite &= isfinite(v[j]) && fabsf(v[j]) < 10;
      CHECK_MSG(finite, "%s steps %d: non-finite or diverged result", api[i], counts[c]);
    }
    dg_scheduler_free(s);
  }
}

int main(void) {
  test_api();
  test_goldens();
  test_pipeline("sd15-tiny/goldens/img2img_ddim.safetensors", "DDIM");
  test_pipeline("sd15-tiny/goldens/img2img_euler_a.safetensors", "Euler a");
  test_pipeline_rng();
  T_DONE();
}
