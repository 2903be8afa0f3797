/* sd1.5-img2img, the recipe of diffusers' StableDiffusionImg2ImgPipeline
 * (v0.27), step by step:
 *
 *   prompt, negative -> CLIP tokenizer -> CLIP text encoder    (2, 77, C)
 *   image -> RGB -> resize to width x height (PIL Lanczos) -> [-1, 1] NCHW
 *   VAE encode -> mean + std * randn (1st draw) -> * scaling_factor
 *   scheduler.set_timesteps(steps); timesteps[t_start:] by strength
 *   latents = add_noise(init, randn (2nd draw), first loop timestep)
 *   loop: eps = UNet(cat[x, x] scaled, t, cat[neg, pos]); CFG; scheduler step
 *         (stochastic schedulers draw from the same generator)
 *   VAE decode(latents / scaling_factor) -> round(clamp(x/2+0.5) * 255)
 *
 * All noise comes from one generator seeded like torch.Generator().manual_seed
 * (src/base/rng.h), so a seed reproduces the reference's images. */
#include "pipelines/sd15_img2img.h"

#include <dirent.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/file.h"
#include "base/rng.h"
#include "sampling/scheduler.h"
#include "tensor/ops.h"
#include "base/status.h"

#define SD15_DIR "sd1.5-img2img"

/* The first *.safetensors file of dir (sorted by name), or 0 if none. */
static int find_single_file(const char *dir, char *out, size_t n) {
  DIR *d = opendir(dir);
  if (!d) return 0;
  char best[1024] = "";
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    size_t len = strlen(e->d_name);
    if (len < 12 || strcmp(e->d_name + len - 12, ".safetensors") != 0) continue;
    if (len >= sizeof best) continue;
    if (!best[0] || strcmp(e->d_name, best) < 0) snprintf(best, sizeof best, "%s", e->d_name);
  }
  closedir(d);
  if (!best[0]) return 0;
  snprintf(out, n, "%s/%s", dir, best);
  return 1;
}

static void append_missing(char *missing, size_t n, const char *what) {
  size_t len = strlen(missing);
  if (len + 1 >= n) return;
  snprintf(missing + len, n - len, "%s%s", len ? ", " : "", what);
}

dg_status dg_sd15_img2img_check(const char *models_dir, char *missing, size_t n) {
  char dir[4096], path[4200];
  if (n) missing[0] = '\0';
  snprintf(dir, sizeof dir, "%s/" SD15_DIR, models_dir ? models_dir : "models");
  snprintf(path, sizeof path, "%s/model_index.json", dir);
  if (dg_is_file(path)) {
    static const char *const parts[] = {"unet", "vae", "text_encoder"};
    for (int i = 0; i < 3; i++) {
      if (snprintf(path, sizeof path, "%s/%s", dir, parts[i]) >= (int)sizeof path || !dg_is_dir(path))
        append_missing(missing, n, path);
    }
  } else if (!find_single_file(dir, path, sizeof path)) {
    append_missing(missing, n, dir);
    append_missing(missing, n, "either model_index.json + unet/ vae/ text_encoder/ (diffusers folder) "
                               "or one <checkpoint>.safetensors (single file)");
  }
  static const char *const tok[] = {"tokenizer/vocab.json", "tokenizer/merges.txt"};
  for (int i = 0; i < 2; i++) {
    snprintf(path, sizeof path, "%s/%s", dir, tok[i]);
    if (!dg_is_file(path)) append_missing(missing, n, path);
  }
  return (n && missing[0]) ? DG_STATUS_ERR_UNAVAILABLE : DG_STATUS_OK;
}

dg_status dg_sd15_img2img_open_model(const char *models_dir, dg_sd15 **out, char *err,
                                     size_t errlen) {
  char dir[4096], path[4200], tok[4200];
  snprintf(dir, sizeof dir, "%s/" SD15_DIR, models_dir ? models_dir : "models");
  snprintf(tok, sizeof tok, "%s/tokenizer", dir);
  dg_sd15_params p = dg_sd15_params_default();
  snprintf(path, sizeof path, "%s/model_index.json", dir);
  if (dg_is_file(path)) {
    p.path = dir;
  } else if (find_single_file(dir, path, sizeof path)) {
    p.path = path;
    p.tokenizer_dir = tok;
  } else {
    dg_set_error(err, errlen, "sd1.5-img2img: no model under %s", dir);
    return DG_STATUS_ERR_UNAVAILABLE;
  }
  return dg_sd15_open(&p, out, err, errlen);
}

dg_status dg_sd15_open_path(const char *path, const char *tokenizer_dir, dg_sd15 **out, char *err,
                            size_t errlen) {
  char p[4200], tok[4200];
  snprintf(p, sizeof p, "%s/sd1.5-img2img", path);
  if (dg_is_dir(p)) return dg_sd15_img2img_open_model(path, out, err, errlen);
  dg_sd15_params prm = dg_sd15_params_default();
  prm.path = path;
  if (dg_is_file(path) && !tokenizer_dir) {
    const char *slash = strrchr(path, '/');
    int dl = slash ? (int)(slash - path) : 1;
    snprintf(tok, sizeof tok, "%.*s/tokenizer", dl, slash ? path : ".");
    prm.tokenizer_dir = tok;
  } else {
    prm.tokenizer_dir = tokenizer_dir;
  }
  return dg_sd15_open(&prm, out, err, errlen);
}

/* ---- The pipeline --------------------------------------------------------- */

typedef struct sd15_job {
  dg_sd15 *model;
  dg_engine *e;
  dg_arena *arena;
  const dg_sd15_img2img_request *req;
  dg_rng rng;
  dg_scheduler *sched;
  int cfg;        /* classifier-free guidance on (guidance_scale > 1) */
  int64_t S;      /* samples */
  int64_t h, w;   /* latent size */
  dg_tensor *context; /* (cfg ? 2S : S, 77, C): [negative x S; positive x S] */
  float *latents;     /* (S, 4, h, w) */
  char *err;
  size_t errlen;
} sd15_job;

static dg_tensor *new_tensor(sd15_job *j, int ndim, int64_t a, int64_t b, int64_t c, int64_t d) {
  int64_t shape[4] = {a, b, c, d};
  dg_tensor *t = dg_arena_tensor(j->arena, DG_DTYPE_F32, ndim, shape);
  if (!t) dg_set_error(j->err, j->errlen, "out of memory");
  return t;
}

/* Prompt embeddings for [negative, positive], repeated per sample. */
static dg_status encode_prompts(sd15_job *j) {
  const dg_tokenizer *tok = dg_sd15_tokenizer(j->model);
  dg_clip_text *te = dg_sd15_text_encoder(j->model);
  if (!tok || !te) {
    dg_set_error(j->err, j->errlen, "sd1.5-img2img: text encoder not loaded");
    return DG_STATUS_ERR_INTERNAL;
  }
  const char *neg = j->req->negative_prompt ? j->req->negative_prompt : "";
  int64_t shape_ids[2] = {2, DG_TOKENIZER_CONTEXT};
  dg_tensor *ids = dg_arena_tensor(j->arena, DG_DTYPE_I64, 2, shape_ids); // (2, 77): [neg, pos]
  if (!ids) return DG_STATUS_ERR_NOMEM;
  int64_t *id = ids->data;
  dg_status st = dg_tokenizer_encode(tok, neg, id);
  if (st == DG_STATUS_OK) st = dg_tokenizer_encode(tok, j->req->prompt ? j->req->prompt : "",
                                                   id + DG_TOKENIZER_CONTEXT);
  if (st != DG_STATUS_OK) {
    dg_set_error(j->err, j->errlen, "prompt: could not tokenize (%s)", dg_strerror(st));
    return st;
  }
  int64_t C = dg_clip_text_get_config(te)->hidden_size;
  dg_tensor *hidden = new_tensor(j, 3, 2, DG_TOKENIZER_CONTEXT, C, 1); // (2, 77, C)
  if (!hidden) return DG_STATUS_ERR_NOMEM;
  dg_clip_text_run run = dg_clip_text_run_default();
  run.hidden = hidden;
  st = dg_clip_text_forward(te, j->e, j->arena, ids, &run, j->err, j->errlen);
  if (st != DG_STATUS_OK) return st;
  int64_t rows = j->cfg ? 2 * j->S : j->S;
  j->context = new_tensor(j, 3, rows, DG_TOKENIZER_CONTEXT, C, 1); // (rows, 77, C)
  if (!j->context) return DG_STATUS_ERR_NOMEM;
  size_t one = (size_t)DG_TOKENIZER_CONTEXT * (size_t)C;
  const float *hn = hidden->data, *hp = (const float *)hidden->data + one;
  float *ctx = j->context->data;
  for (int64_t r = 0; r < rows; r++) {
    const float *src = (j->cfg && r < j->S) ? hn : hp;
    memcpy(ctx + (size_t)r * one, src, one * sizeof(float));
  }
  return DG_STATUS_OK;
}

/* Input image -> (1, 3, H, W) in [-1, 1] (VaeImageProcessor.preprocess). */
static dg_status preprocess_image(sd15_job *j, dg_tensor **out) {
  const dg_image *src = j->req->image;
  int W = j->req->width, H = j->req->height;
  dg_image *rgb = NULL, *sized = NULL;
  dg_status st = DG_STATUS_OK;
  if (!src || !src->pixels || src->width < 1 || src->height < 1) {
    dg_set_error(j->err, j->errlen, "image: missing input image");
    return DG_STATUS_ERR_INVALID;
  }
  const dg_image *cur = src;
  if (src->channels != 3) {
    st = dg_image_to_channels(src, 3, &rgb);
    if (st != DG_STATUS_OK) goto done;
    cur = rgb;
  }
  if (cur->width != W || cur->height != H) {
    st = dg_image_resize(cur, W, H, &sized);
    if (st != DG_STATUS_OK) goto done;
    cur = sized;
  }
  dg_tensor *x = new_tensor(j, 4, 1, 3, H, W); // (1, 3, H, W)
  if (!x) { st = DG_STATUS_ERR_NOMEM; goto done; }
  float *px = x->data;
  size_t plane = (size_t)H * (size_t)W;
  for (size_t p = 0; p < plane; p++)
    for (int c = 0; c < 3; c++) {
      float v = (float)cur->pixels[p * 3 + (size_t)c] / 255.0f;
      px[(size_t)c * plane + p] = 2.0f * v - 1.0f;
    }
  *out = x;
done:
  if (st != DG_STATUS_OK && !j->err[0]) dg_set_error(j->err, j->errlen, "image: %s", dg_strerror(st));
  dg_image_free(rgb);
  dg_image_free(sized);
  return st;
}

/* init latents = scaling_factor * (mean + std * randn), repeated per sample. */
static dg_status encode_image(sd15_job *j, float *init) {
  const dg_vae *vae = dg_sd15_vae(j->model);
  const dg_vae_config *vc = dg_vae_get_config(vae);
  dg_arena_mark mark = dg_arena_get_mark(j->arena);
  dg_tensor *image = NULL;
  dg_status st = preprocess_image(j, &image);
  if (st != DG_STATUS_OK) return st;
  int64_t Z = vc->latent_channels;
  dg_tensor *moments = new_tensor(j, 4, 1, 2 * Z, j->h, j->w); // (1, 2Z, h, w)
  dg_tensor *mean = new_tensor(j, 4, 1, Z, j->h, j->w);        // (1, Z, h, w)
  dg_tensor *std = new_tensor(j, 4, 1, Z, j->h, j->w);         // (1, Z, h, w)
  if (!moments || !mean || !std) return DG_STATUS_ERR_NOMEM;
  st = dg_vae_encode(vae, j->e, j->arena, image, moments, NULL);
  if (st == DG_STATUS_OK) st = dg_vae_moments_split(moments, mean, NULL, std);
  if (st != DG_STATUS_OK) {
    dg_set_error(j->err, j->errlen, "VAE encode failed: %s", dg_strerror(st));
    return st;
  }
  int64_t n = Z * j->h * j->w;
  float *noise = malloc((size_t)n * sizeof(float));
  if (!noise) return DG_STATUS_ERR_NOMEM;
  dg_rng_randn(&j->rng, noise, n); /* latent_dist.sample(generator) */
  const float *m = mean->data, *s = std->data;
  float sf = vc->scaling_factor;
  for (int64_t i = 0; i < n; i++) init[i] = sf * (m[i] + s[i] * noise[i]);
  for (int64_t b = 1; b < j->S; b++) memcpy(init + b * n, init, (size_t)n * sizeof(float));
  free(noise);
  dg_arena_reset(j->arena, mark);
  return DG_STATUS_OK;
}

static dg_status denoise(sd15_job *j) {
  const dg_unet *unet = dg_sd15_unet(j->model);
  int64_t Z = dg_unet_get_config(unet)->in_channels;
  int64_t n = j->S * Z * j->h * j->w; /* elements of the latents */
  int64_t B = j->cfg ? 2 * j->S : j->S;
  dg_tensor *x_in = new_tensor(j, 4, B, Z, j->h, j->w);  // (B, 4, h, w)
  dg_tensor *eps = new_tensor(j, 4, B, Z, j->h, j->w);   // (B, 4, h, w)
  dg_tensor *t = new_tensor(j, 1, B, 1, 1, 1);           // (B)
  if (!x_in || !eps || !t) return DG_STATUS_ERR_NOMEM;
  float *xi = x_in->data, *ep = eps->data, *tt = t->data;
  float g = (float)j->req->guidance_scale;
  int total = dg_scheduler_loop_len(j->sched);
  for (int i = 0; i < total; i++) {
    if (j->req->cancelled && j->req->cancelled(j->req->ud)) {
      dg_set_error(j->err, j->errlen, "cancelled");
      return DG_STATUS_ERR_CANCELLED;
    }
    double tv = dg_scheduler_loop_timestep(j->sched, i);
    dg_status st = dg_scheduler_scale_model_input(j->sched, i, j->latents, xi, n);
    if (st != DG_STATUS_OK) return st;
    if (j->cfg) memcpy(xi + n, xi, (size_t)n * sizeof(float));
    for (int64_t b = 0; b < B; b++) tt[b] = (float)tv;
    dg_arena_mark mark = dg_arena_get_mark(j->arena);
    st = dg_unet_forward(unet, j->e, j->arena, x_in, t, j->context, NULL, eps);
    dg_arena_reset(j->arena, mark);
    if (st != DG_STATUS_OK) {
      dg_set_error(j->err, j->errlen, "UNet failed at step %d: %s", i + 1, dg_strerror(st));
      return st;
    }
    if (j->cfg) /* noise_pred_uncond + g * (noise_pred_text - noise_pred_uncond) */
      for (int64_t k = 0; k < n; k++) ep[k] = ep[k] + g * (ep[n + k] - ep[k]);
    st = dg_scheduler_step(j->sched, i, ep, j->latents, n, dg_scheduler_rng_noise, &j->rng);
    if (st != DG_STATUS_OK) {
      dg_set_error(j->err, j->errlen, "scheduler step %d failed: %s", i + 1, dg_strerror(st));
      return st;
    }
    if (j->req->progress) j->req->progress(j->req->ud, i + 1, total);
  }
  return DG_STATUS_OK;
}

static dg_status decode(sd15_job *j, dg_image **outs) {
  const dg_vae *vae = dg_sd15_vae(j->model);
  const dg_vae_config *vc = dg_vae_get_config(vae);
  int64_t Z = vc->latent_channels, f = dg_vae_factor(vc);
  int64_t H = j->h * f, W = j->w * f;
  dg_tensor *z = new_tensor(j, 4, j->S, Z, j->h, j->w);     // (S, Z, h, w)
  dg_tensor *img = new_tensor(j, 4, j->S, 3, H, W);         // (S, 3, H, W)
  if (!z || !img) return DG_STATUS_ERR_NOMEM;
  float *zp = z->data;
  int64_t n = j->S * Z * j->h * j->w;
  float sf = vc->scaling_factor;
  for (int64_t i = 0; i < n; i++) zp[i] = j->latents[i] / sf;
  dg_status st = dg_vae_decode(vae, j->e, j->arena, z, img, NULL);
  if (st != DG_STATUS_OK) {
    dg_set_error(j->err, j->errlen, "VAE decode failed: %s", dg_strerror(st));
    return st;
  }
  const float *ip = img->data;
  size_t plane = (size_t)H * (size_t)W;
  if (j->req->image_out) memcpy(j->req->image_out, ip, (size_t)j->S * 3 * plane * sizeof(float));
  for (int64_t b = 0; b < j->S; b++) {
    dg_image *o = dg_image_new((int)W, (int)H, 3);
    if (!o) return DG_STATUS_ERR_NOMEM;
    outs[b] = o;
    const float *src = ip + (size_t)b * 3 * plane;
    for (size_t p = 0; p < plane; p++)
      for (int c = 0; c < 3; c++) {
        float v = src[(size_t)c * plane + p] / 2.0f + 0.5f;
        v = v < 0.0f ? 0.0f : (v > 1.0f ? 1.0f : v);
        o->pixels[p * 3 + (size_t)c] = (uint8_t)nearbyintf(v * 255.0f); /* numpy round: half to even */
      }
  }
  return DG_STATUS_OK;
}

dg_status dg_sd15_img2img_generate(dg_sd15 *model, dg_engine *engine,
                                   const dg_sd15_img2img_request *req, dg_image **outs,
                                   char *err, size_t errlen) {
  if (errlen) err[0] = '\0';
  if (!model || !engine || !req || !outs) return DG_STATUS_ERR_INVALID;
  if (!dg_sd15_unet(model) || !dg_sd15_vae(model)) {
    dg_set_error(err, errlen, "sd1.5-img2img: model has no UNet or VAE");
    return DG_STATUS_ERR_INVALID;
  }
  int f = dg_vae_factor(dg_vae_get_config(dg_sd15_vae(model)));
  if (req->samples < 1 || req->samples > DG_JOB_MAX_OUTPUTS) {
    dg_set_error(err, errlen, "samples: must be 1..%d", DG_JOB_MAX_OUTPUTS);
    return DG_STATUS_ERR_INVALID;
  }
  if (req->width < f || req->height < f || req->width % f || req->height % f ||
      req->width > 4096 || req->height > 4096) {
    dg_set_error(err, errlen, "img_width/img_height: must be multiples of %d up to 4096 (got %dx%d)", f,
           req->width, req->height);
    return DG_STATUS_ERR_INVALID;
  }
  sd15_job j = {0};
  j.model = model;
  j.e = engine;
  j.req = req;
  j.err = err;
  j.errlen = errlen;
  j.cfg = req->guidance_scale > 1.0;
  j.S = req->samples;
  j.h = req->height / f;
  j.w = req->width / f;
  dg_rng_seed(&j.rng, req->seed);
  dg_status st = dg_scheduler_new(req->scheduler ? req->scheduler : "DDIM", &j.sched);
  if (st != DG_STATUS_OK) {
    dg_set_error(err, errlen, "scheduler: unknown scheduler '%s'", req->scheduler ? req->scheduler : "");
    return DG_STATUS_ERR_INVALID;
  }
  st = dg_scheduler_set_timesteps(j.sched, req->steps);
  if (st == DG_STATUS_OK) st = dg_scheduler_set_strength(j.sched, req->strength, NULL);
  if (st != DG_STATUS_OK) {
    dg_set_error(err, errlen,
           "num_inference_steps/strength: %d steps at strength %g leave no denoising step", req->steps,
           req->strength);
    dg_scheduler_free(j.sched);
    return DG_STATUS_ERR_INVALID;
  }
  int64_t Z = dg_unet_get_config(dg_sd15_unet(model))->in_channels;
  int64_t n = j.S * Z * j.h * j.w;
  j.latents = malloc((size_t)n * sizeof(float));
  float *noise = malloc((size_t)n * sizeof(float));
  j.arena = dg_arena_new((size_t)64 << 20);
  for (int b = 0; b < req->samples; b++) outs[b] = NULL;
  if (!j.latents || !noise || !j.arena) {
    st = DG_STATUS_ERR_NOMEM;
    goto done;
  }
  st = encode_prompts(&j);
  if (st == DG_STATUS_OK) st = encode_image(&j, j.latents);
  if (st == DG_STATUS_OK) {
    dg_rng_randn(&j.rng, noise, n); /* randn_tensor(shape, generator) */
    st = dg_scheduler_add_noise(j.sched, j.latents, noise, j.latents, n);
  }
  if (st == DG_STATUS_OK) st = denoise(&j);
  if (st == DG_STATUS_OK && req->latents_out) memcpy(req->latents_out, j.latents, (size_t)n * sizeof(float));
  if (st == DG_STATUS_OK) st = decode(&j, outs);
done:
  if (st != DG_STATUS_OK) {
    if (errlen && !err[0]) dg_set_error(err, errlen, "sd1.5-img2img: %s", dg_strerror(st));
    for (int b = 0; b < req->samples; b++) {
      dg_image_free(outs[b]);
      outs[b] = NULL;
    }
  }
  dg_arena_free(j.arena);
  free(noise);
  free(j.latents);
  dg_scheduler_free(j.sched);
  return st;
}

/* ---- The worker entry point ---------------------------------------------- */

static const char *json_str(json_t *o, const char *k, const char *def) {
  json_t *v = json_object_get(o, k);
  return json_is_string(v) ? json_string_value(v) : def;
}
static double json_num(json_t *o, const char *k, double def) {
  json_t *v = json_object_get(o, k);
  return json_is_number(v) ? json_number_value(v) : def;
}

static int precision_from_env(void) {
  const char *p = getenv("DG_PRECISION");
  return p && strcmp(p, "bf16") == 0;
}

dg_status dg_sd15_img2img_run(dg_job_io *io) {
  json_error_t jerr;
  json_t *params = json_loads(io->params_json ? io->params_json : "{}", 0, &jerr);
  if (!json_is_object(params)) {
    json_decref(params);
    snprintf(io->error, sizeof io->error, "sd1.5-img2img: parameters are not a JSON object");
    return DG_STATUS_ERR_INVALID;
  }
  const dg_image *image = NULL;
  for (int i = 0; i < io->n_images; i++)
    if (io->images[i].name && strcmp(io->images[i].name, "image") == 0) image = io->images[i].image;

  dg_sd15_img2img_request req = {0};
  req.image = image;
  req.prompt = json_str(params, "prompt", "");
  req.negative_prompt = json_str(params, "negative_prompt", NULL);
  req.samples = (int)json_num(params, "samples", 1);
  req.scheduler = json_str(params, "scheduler", "DDIM");
  req.steps = (int)json_num(params, "num_inference_steps", 20);
  req.guidance_scale = json_num(params, "guidance_scale", 7.5);
  req.strength = json_num(params, "strength", 1.0);
  req.seed = (uint64_t)io->seed;
  req.width = (int)json_num(params, "img_width", 512);
  req.height = (int)json_num(params, "img_height", 512);
  req.progress = io->progress;
  req.cancelled = io->cancelled;
  req.ud = io->ud;

  dg_sd15 *model = NULL;
  dg_engine *engine = NULL;
  dg_status st = dg_sd15_img2img_open_model(io->models_dir, &model, io->error, sizeof io->error);
  if (st == DG_STATUS_OK) {
    dg_engine_params ep = dg_engine_params_default();
    ep.n_threads = io->n_threads;
    if (precision_from_env()) ep.precision = DG_PRECISION_BF16;
    st = dg_engine_new(&ep, &engine);
    if (st != DG_STATUS_OK) snprintf(io->error, sizeof io->error, "engine: %s", dg_strerror(st));
  } else if (st != DG_STATUS_ERR_UNAVAILABLE) {
    char tmp[sizeof io->error];
    snprintf(tmp, sizeof tmp, "%s", io->error);
    dg_set_error(io->error, sizeof io->error, "sd1.5-img2img: cannot load the model: %s", tmp);
  }
  if (st == DG_STATUS_OK) {
    dg_image *outs[DG_JOB_MAX_OUTPUTS] = {0};
    st = dg_sd15_img2img_generate(model, engine, &req, outs, io->error, sizeof io->error);
    if (st == DG_STATUS_OK) {
      for (int b = 0; b < req.samples; b++) io->outputs[b] = outs[b];
      io->n_outputs = req.samples;
    }
  }
  dg_engine_free(engine);
  dg_sd15_close(model);
  json_decref(params);
  return st;
}
