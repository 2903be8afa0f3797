/* daguerre gen-model: random-weight models of the published architectures,
 * for tests (tiny) and benchmarks (full size), in either checkpoint layout.
 *
 *   daguerre gen-model --arch sd15 --size tiny|full --dtype f32|f16|bf16
 *                      --layout single|diffusers --seed N [--init fixture|torch]
 *                      [--qk-gain G] [--metadata dg|none] [--tokenizer DIR] -o PATH
 *   daguerre gen-model --verify PATH [--tokenizer DIR] [--config-dir DIR] [--threads N]
 *
 * Initialisation (as the fixtures' generator): one PyTorch-compatible
 * generator per model (UNet, VAE, text encoder) seeded with N; each parameter
 * in torch named_parameters() order gets randn(shape) scaled: norm weights
 * 1 + 0.05 r, attention query/key weights 0.25 r, everything else 0.05 r
 * (computed in float32, then rounded to the requested dtype).  The same seed
 * gives the same weights in both layouts.
 *
 * --init torch instead gives PyTorch's default initialisation of each layer
 * type (the scales of a freshly constructed diffusers/transformers model
 * before any training; same distributions, not the same numbers): Linear and
 * Conv2d weights and biases U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (kaiming_uniform
 * with a = sqrt(5); fan_in = in_channels * kh * kw), GroupNorm/LayerNorm weight
 * 1 and bias 0, Embedding N(0, 1).  Its activations keep realistic scales
 * (attention logits of std ~0.3 instead of ~20-50 with the fixture init,
 * whose softmaxes are nearly one-hot), which makes it the model to judge
 * numerical drift (bf16 vs f32) on.  Uniform values come from the same
 * generator's 32-bit draws (24 bits each).
 *
 * --qk-gain G (default 1) multiplies every attention query and key
 * projection (weights and biases) by G after either init: the logits scale by
 * G^2, so one can sweep how peaked the softmaxes are.
 *
 * Files are streamed (one tensor in memory at a time), so a full-size f32
 * checkpoint (4.3 GB) needs little RAM.  A single file carries the configs in
 * its "__metadata__" (dg.unet_config, dg.vae_config, dg.text_encoder_config);
 * --metadata none leaves it empty, as in the published checkpoints, whose
 * configs the loader infers from the tensor shapes (the test suite's
 * single-file model is made so: tests/CMakeLists.txt).
 *
 * --verify opens a model with the SD1.5 loader and runs each part once on
 * fixed inputs (tokenized prompt or fixed ids, an 8x8 latent from seed 0),
 * printing one line per output with its shape, mean |x| and a hash of its
 * bytes: two layouts of the same weights print identical lines. */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/rng.h"
#include "cli/commands.h"
#include "models/sd15.h"
#include "tensor/ops.h"

enum { M_UNET, M_VAE, M_TEXT, M_COUNT };

typedef struct gm_entry {
  char name[256];  /* name written to the file */
  char canon[200]; /* diffusers/HF name (decides the init scale) */
  int model;       /* M_*, or -1 for text position_ids */
  int ndim;
  int64_t shape[4];
  dg_dtype dtype;
} gm_entry;

typedef struct gm_list {
  gm_entry *v;
  size_t n, cap;
  int model;
  int single;
  const dg_unet_config *unet;
  int vae_levels;
  dg_dtype dtype;
  int failed;
} gm_list;

enum { INIT_FIXTURE, INIT_TORCH };

static int ends_with(const char *s, const char *suf) {
  size_t a = strlen(s), b = strlen(suf);
  return a >= b && strcmp(s + a - b, suf) == 0;
}

/* ---- diffusers -> LDM UNet names (inverse of dg_unet_ldm_key_map) -------- */

static int res_to_ldm(const char *rest, char *out, size_t n, const char *prefix) {
  static const char *const tab[][2] = {
      {"norm1.", "in_layers.0."},  {"conv1.", "in_layers.2."},  {"time_emb_proj.", "emb_layers.1."},
      {"norm2.", "out_layers.0."}, {"conv2.", "out_layers.3."}, {"conv_shortcut.", "skip_connection."},
  };
  for (size_t i = 0; i < sizeof tab / sizeof tab[0]; i++) {
    size_t l = strlen(tab[i][0]);
    if (strncmp(rest, tab[i][0], l) == 0)
      return snprintf(out, n, "%s%s%s", prefix, tab[i][1], rest + l) < (int)n;
  }
  return 0;
}

static int unet_to_ldm(const dg_unet_config *c, const char *name, char *out, size_t n) {
  static const char *const simple[][2] = {
      {"time_embedding.linear_1.", "time_embed.0."}, {"time_embedding.linear_2.", "time_embed.2."},
      {"add_embedding.linear_1.", "label_emb.0.0."}, {"add_embedding.linear_2.", "label_emb.0.2."},
      {"conv_in.", "input_blocks.0.0."},             {"conv_norm_out.", "out.0."},
      {"conv_out.", "out.2."},                       {"mid_block.attentions.0.", "middle_block.1."},
  };
  for (size_t i = 0; i < sizeof simple / sizeof simple[0]; i++) {
    size_t l = strlen(simple[i][0]);
    if (strncmp(name, simple[i][0], l) == 0)
      return snprintf(out, n, "%s%s", simple[i][1], name + l) < (int)n;
  }
  int a, b, used = 0;
  char pre[64];
  if (sscanf(name, "mid_block.resnets.%d.%n", &a, &used) == 1 && used) {
    snprintf(pre, sizeof pre, "middle_block.%d.", 2 * a);
    return res_to_ldm(name + used, out, n, pre);
  }
  const int nl = c->n_levels;
  if (strncmp(name, "down_blocks.", 12) == 0) {
    if (sscanf(name, "down_blocks.%d.%n", &a, &used) != 1 || a < 0 || a >= nl) return 0;
    int k = 1;
    for (int l = 0; l < a; l++) k += c->layers_per_block[l] + 1;
    const char *r = name + used;
    int u2 = 0;
    if (sscanf(r, "resnets.%d.%n", &b, &u2) == 1 && u2) {
      snprintf(pre, sizeof pre, "input_blocks.%d.0.", k + b);
      return res_to_ldm(r + u2, out, n, pre);
    }
    if (sscanf(r, "attentions.%d.%n", &b, &u2) == 1 && u2)
      return snprintf(out, n, "input_blocks.%d.1.%s", k + b, r + u2) < (int)n;
    if (strncmp(r, "downsamplers.0.conv.", 20) == 0)
      return snprintf(out, n, "input_blocks.%d.0.op.%s", k + c->layers_per_block[a], r + 20) < (int)n;
    return 0;
  }
  if (strncmp(name, "up_blocks.", 10) == 0) {
    if (sscanf(name, "up_blocks.%d.%n", &a, &used) != 1 || a < 0 || a >= nl) return 0;
    int k = 0;
    for (int l = 0; l < a; l++) k += c->layers_per_block[nl - 1 - l] + 1;
    const int lu = c->layers_per_block[nl - 1 - a] + 1;
    const char *r = name + used;
    int u2 = 0;
    if (sscanf(r, "resnets.%d.%n", &b, &u2) == 1 && u2) {
      snprintf(pre, sizeof pre, "output_blocks.%d.0.", k + b);
      return res_to_ldm(r + u2, out, n, pre);
    }
    if (sscanf(r, "attentions.%d.%n", &b, &u2) == 1 && u2)
      return snprintf(out, n, "output_blocks.%d.1.%s", k + b, r + u2) < (int)n;
    if (strncmp(r, "upsamplers.0.conv.", 18) == 0)
      return snprintf(out, n, "output_blocks.%d.%d.conv.%s", k + lu - 1, c->up_cross_attn[a] ? 2 : 1,
                      r + 18) < (int)n;
    return 0;
  }
  return 0;
}

/* ---- listing the tensors of a file ---------------------------------------- */

static gm_entry *gm_push(gm_list *L) {
  if (L->n == L->cap) {
    size_t cap = L->cap ? 2 * L->cap : 1024;
    gm_entry *v = realloc(L->v, cap * sizeof *v);
    if (!v) {
      L->failed = 1;
      return NULL;
    }
    L->v = v;
    L->cap = cap;
  }
  gm_entry *e = &L->v[L->n++];
  memset(e, 0, sizeof *e);
  return e;
}

static int gm_param(void *ud, const char *name, int ndim, const int64_t *shape) {
  gm_list *L = ud;
  gm_entry *e = gm_push(L);
  if (!e) return 1;
  snprintf(e->canon, sizeof e->canon, "%s", name);
  e->model = L->model;
  e->ndim = ndim;
  for (int i = 0; i < 4; i++) e->shape[i] = i < ndim ? shape[i] : 1;
  e->dtype = L->dtype;
  if (!L->single) {
    snprintf(e->name, sizeof e->name, "%s", name);
    return 0;
  }
  char ldm[200], back[200];
  int ok = 0;
  if (L->model == M_UNET) {
    ok = unet_to_ldm(L->unet, name, ldm, sizeof ldm);
    /* the loader's map must bring the name back */
    ok = ok && dg_unet_ldm_key_map(ldm, back, sizeof back, (void *)L->unet) && strcmp(back, name) == 0;
    if (ok) snprintf(e->name, sizeof e->name, "model.diffusion_model.%s", ldm);
  } else if (L->model == M_VAE) {
    ok = dg_vae_diffusers_to_ldm(name, ldm, sizeof ldm, &L->vae_levels);
    if (ok) snprintf(e->name, sizeof e->name, "first_stage_model.%s", ldm);
    /* LDM stores the mid attention projections as 1x1 convs */
    if (ok && strstr(name, ".mid_block.attentions.0.to_") && ndim == 2) {
      e->ndim = 4;
      e->shape[2] = e->shape[3] = 1;
    }
  } else {
    ok = snprintf(e->name, sizeof e->name, "cond_stage_model.transformer.%s", name) < (int)sizeof e->name;
  }
  if (!ok) {
    fprintf(stderr, "gen-model: no single-file name for %s\n", name);
    L->failed = 1;
    return 1;
  }
  return 0;
}

static void gm_position_ids(gm_list *L, const char *prefix, int64_t n) {
  gm_entry *e = gm_push(L);
  if (!e) return;
  snprintf(e->name, sizeof e->name, "%stext_model.embeddings.position_ids", prefix);
  e->model = -1;
  e->ndim = 2;
  e->shape[0] = 1;
  e->shape[1] = n;
  e->shape[2] = e->shape[3] = 1;
  e->dtype = DG_DTYPE_I64;
}

static int64_t numel(const gm_entry *e) {
  int64_t n = 1;
  for (int i = 0; i < e->ndim; i++) n *= e->shape[i];
  return n;
}

/* ---- writing a safetensors file, one tensor at a time --------------------- */

typedef struct gm_models {
  const dg_unet_config *unet;
  const dg_vae_config *vae;
  const dg_clip_text_config *text;
} gm_models;

static float init_scale(const gm_entry *e, int *plus_one) {
  *plus_one = e->ndim == 1 && ends_with(e->canon, ".weight"); /* norm weights */
  if (ends_with(e->canon, "to_q.weight") || ends_with(e->canon, "to_k.weight") ||
      ends_with(e->canon, "q_proj.weight") || ends_with(e->canon, "k_proj.weight"))
    return 0.25f;
  return 0.05f;
}

/* --init torch: how entry i is drawn.  *kind: 0 constant *a, 1 uniform in
 * [-*a, *a), 2 normal with std *a. */
static void torch_init(const gm_list *L, size_t i, int *kind, float *a) {
  const gm_entry *e = &L->v[i];
  const char *nm = e->canon;
  size_t len = strlen(nm);
  *kind = 1;
  if (e->model == M_TEXT && ends_with(nm, "_embedding.weight")) { /* nn.Embedding */
    *kind = 2;
    *a = 1.0f;
    return;
  }
  if (e->ndim >= 2) { /* Linear (N, K) / Conv2d (Co, Ci, kh, kw) weight */
    int64_t fan_in = 1;
    for (int d = 1; d < e->ndim; d++) fan_in *= e->shape[d];
    *a = (float)(1.0 / sqrt((double)fan_in));
    return;
  }
  if (ends_with(nm, ".weight")) { /* a 1-D weight is a norm's gamma */
    *kind = 0;
    *a = 1.0f;
    return;
  }
  /* a bias: its layer's weight is the "<prefix>.weight" entry listed before it
   * (a norm's beta is 0; a Linear/Conv bias is uniform with the weight's fan_in) */
  *kind = 0;
  *a = 0.0f;
  if (len < 5 || !ends_with(nm, ".bias")) return;
  for (size_t j = i; j-- > 0;) {
    const gm_entry *w = &L->v[j];
    if (w->model != e->model || strlen(w->canon) != len + 2 || strncmp(w->canon, nm, len - 4) != 0 ||
        strcmp(w->canon + len - 4, "weight") != 0)
      continue;
    if (w->ndim >= 2) {
      int64_t fan_in = 1;
      for (int d = 1; d < w->ndim; d++) fan_in *= w->shape[d];
      *kind = 1;
      *a = (float)(1.0 / sqrt((double)fan_in));
    }
    return;
  }
}

static void fill_torch(const gm_list *L, size_t i, float *r, int64_t n, dg_rng *rng) {
  int kind;
  float a;
  torch_init(L, i, &kind, &a);
  if (kind == 2) {
    dg_rng_randn(rng, r, n);
    for (int64_t k = 0; k < n; k++) r[k] *= a;
  } else if (kind == 1) {
    for (int64_t k = 0; k < n; k++) {
      float u = (float)(dg_rng_u32(rng) >> 8) * (1.0f / 16777216.0f); /* [0, 1) */
      r[k] = a * (2.0f * u - 1.0f);
    }
  } else {
    for (int64_t k = 0; k < n; k++) r[k] = a;
  }
}

static int is_qk(const char *canon) {
  static const char *const suf[] = {"to_q.weight", "to_k.weight", "q_proj.weight", "k_proj.weight",
                                    "to_q.bias",   "to_k.bias",   "q_proj.bias",   "k_proj.bias"};
  for (size_t i = 0; i < sizeof suf / sizeof suf[0]; i++)
    if (ends_with(canon, suf[i])) return 1;
  return 0;
}

static int write_file(const char *path, const gm_list *L, const char *metadata_json, dg_rng *rng,
                      int init, float qk_gain) {
  json_t *hdr = json_object();
  uint64_t off = 0;
  json_t *meta = metadata_json ? json_loads(metadata_json, 0, NULL) : json_object();
  json_object_set_new(hdr, "__metadata__", meta);
  for (size_t i = 0; i < L->n; i++) {
    const gm_entry *e = &L->v[i];
    json_t *t = json_object(), *shape = json_array(), *offs = json_array();
    for (int d = 0; d < e->ndim; d++) json_array_append_new(shape, json_integer(e->shape[d]));
    uint64_t bytes = (uint64_t)numel(e) * dg_dtype_size(e->dtype);
    json_array_append_new(offs, json_integer((json_int_t)off));
    json_array_append_new(offs, json_integer((json_int_t)(off + bytes)));
    json_object_set_new(t, "dtype", json_string(dg_dtype_name(e->dtype)));
    json_object_set_new(t, "shape", shape);
    json_object_set_new(t, "data_offsets", offs);
    json_object_set_new(hdr, e->name, t);
    off += bytes;
  }
  char *h = json_dumps(hdr, JSON_COMPACT | JSON_PRESERVE_ORDER);
  json_decref(hdr);
  if (!h) return -1;
  size_t hl = strlen(h), padded = (hl + 7) / 8 * 8;
  FILE *f = fopen(path, "wb");
  if (!f) {
    fprintf(stderr, "gen-model: %s: %s\n", path, strerror(errno));
    free(h);
    return -1;
  }
  unsigned char len8[8];
  for (int i = 0; i < 8; i++) len8[i] = (unsigned char)((uint64_t)padded >> (8 * i));
  int ok = fwrite(len8, 1, 8, f) == 8 && fwrite(h, 1, hl, f) == hl;
  for (size_t i = hl; ok && i < padded; i++) ok = fputc(' ', f) != EOF;
  free(h);

  for (size_t i = 0; ok && i < L->n; i++) {
    const gm_entry *e = &L->v[i];
    int64_t n = numel(e);
    size_t esz = dg_dtype_size(e->dtype);
    void *out = malloc((size_t)n * (esz > 4 ? esz : 4));
    if (!out) {
      ok = 0;
      break;
    }
    if (e->model < 0) {
      for (int64_t k = 0; k < n; k++) ((int64_t *)out)[k] = k;
    } else {
      float *r = out; /* generated in place as f32, then narrowed */
      if (init == INIT_TORCH) {
        fill_torch(L, i, r, n, rng);
      } else {
        dg_rng_randn(rng, r, n);
        int plus_one;
        float s = init_scale(e, &plus_one);
        for (int64_t k = 0; k < n; k++) r[k] = plus_one ? 1.0f + r[k] * s : r[k] * s;
      }
      if (qk_gain != 1.0f && is_qk(e->canon))
        for (int64_t k = 0; k < n; k++) r[k] *= qk_gain;
      if (e->dtype == DG_DTYPE_F16)
        for (int64_t k = 0; k < n; k++) ((uint16_t *)out)[k] = dg_f32_to_f16(r[k]);
      else if (e->dtype == DG_DTYPE_BF16)
        for (int64_t k = 0; k < n; k++) ((uint16_t *)out)[k] = dg_f32_to_bf16(r[k]);
    }
    ok = fwrite(out, esz, (size_t)n, f) == (size_t)n;
    free(out);
  }
  if (fclose(f) != 0) ok = 0;
  if (!ok) fprintf(stderr, "gen-model: writing %s failed\n", path);
  return ok ? 0 : -1;
}

/* ---- the command ----------------------------------------------------------- */

static int write_text(const char *path, const char *text) {
  FILE *f = fopen(path, "wb");
  if (!f) {
    fprintf(stderr, "gen-model: %s: %s\n", path, strerror(errno));
    return -1;
  }
  int ok = fputs(text, f) >= 0;
  if (fclose(f) != 0) ok = 0;
  return ok ? 0 : -1;
}

static int copy_file(const char *from, const char *to) {
  FILE *a = fopen(from, "rb");
  if (!a) return -1;
  FILE *b = fopen(to, "wb");
  if (!b) {
    fclose(a);
    return -1;
  }
  char buf[65536];
  size_t k;
  int ok = 1;
  while (ok && (k = fread(buf, 1, sizeof buf, a)) > 0) ok = fwrite(buf, 1, k, b) == k;
  fclose(a);
  if (fclose(b) != 0) ok = 0;
  return ok ? 0 : -1;
}

static int mkdir_p(const char *path) {
  if (mkdir(path, 0755) == 0 || errno == EEXIST) return 0;
  fprintf(stderr, "gen-model: mkdir %s: %s\n", path, strerror(errno));
  return -1;
}

static const char model_index_json[] =
    "{\n  \"_class_name\": \"StableDiffusionPipeline\",\n  \"_diffusers_version\": \"0.27.2\",\n"
    "  \"feature_extractor\": [null, null],\n  \"requires_safety_checker\": false,\n"
    "  \"safety_checker\": [null, null],\n  \"scheduler\": [\"diffusers\", \"PNDMScheduler\"],\n"
    "  \"text_encoder\": [\"transformers\", \"CLIPTextModel\"],\n"
    "  \"tokenizer\": [\"transformers\", \"CLIPTokenizer\"],\n"
    "  \"unet\": [\"diffusers\", \"UNet2DConditionModel\"],\n"
    "  \"vae\": [\"diffusers\", \"AutoencoderKL\"]\n}\n";

/* The published SD1.5 scheduler config. */
static const char scheduler_json[] =
    "{\n  \"_class_name\": \"PNDMScheduler\",\n  \"_diffusers_version\": \"0.6.0\",\n"
    "  \"beta_end\": 0.012,\n  \"beta_schedule\": \"scaled_linear\",\n  \"beta_start\": 0.00085,\n"
    "  \"num_train_timesteps\": 1000,\n  \"set_alpha_to_one\": false,\n  \"skip_prk_steps\": true,\n"
    "  \"steps_offset\": 1,\n  \"trained_betas\": null,\n  \"clip_sample\": false\n}\n";

static dg_unet_config unet_tiny(void) {
  dg_unet_config c = dg_unet_config_sd15();
  c.n_levels = 2;
  c.block_out_channels[0] = 32;
  c.block_out_channels[1] = 64;
  c.down_cross_attn[0] = 1;
  c.down_cross_attn[1] = 0;
  c.up_cross_attn[0] = 0;
  c.up_cross_attn[1] = 1;
  c.cross_attention_dim = 32;
  c.time_embed_dim = 128;
  c.sample_size = 8;
  return c;
}

static void usage(FILE *f) {
  fprintf(f,
          "usage: daguerre gen-model --arch sd15 --size tiny|full --dtype f32|f16|bf16\n"
          "                          --layout single|diffusers --seed N [--init fixture|torch]\n"
          "                          [--qk-gain G] [--metadata dg|none] [--tokenizer DIR] -o PATH\n"
          "       daguerre gen-model --verify PATH [--tokenizer DIR] [--config-dir DIR] [--threads N]\n"
          "Writes a random-weight SD1.5-architecture model (tiny = the test fixtures' config,\n"
          "full = the published SD1.5 sizes); --verify loads one and runs every part once.\n"
          "--init fixture (default): the fixtures' randn scales (attention query/key 0.25);\n"
          "--init torch: PyTorch's default layer init (realistic activation scales);\n"
          "--qk-gain G: attention query/key projections times G (logits times G^2).\n"
          "--metadata none: single file without the dg.* configs (as published checkpoints).\n");
}

/* diffusers' CrossAttn*Block2D and UNetMidBlock2DCrossAttn register their
 * `attentions` before their `resnets`: move each block's attention tensors in
 * front of its resnets (stable), so the init follows named_parameters(). */
static int block_of(const char *name, char *blk, size_t n) {
  int a, used = 0;
  if (sscanf(name, "down_blocks.%d.%n", &a, &used) == 1 && used) snprintf(blk, n, "%.*s", used, name);
  else if (sscanf(name, "up_blocks.%d.%n", &a, &used) == 1 && used) snprintf(blk, n, "%.*s", used, name);
  else if (strncmp(name, "mid_block.", 10) == 0) snprintf(blk, n, "mid_block.");
  else return 0;
  return 1;
}

static int sub_rank(const char *name, const char *blk) {
  const char *r = name + strlen(blk);
  return strncmp(r, "attentions.", 11) == 0 ? 0 : strncmp(r, "resnets.", 8) == 0 ? 1 : 2;
}

static void torch_order_unet(gm_entry *v, size_t n) {
  for (size_t i = 0; i < n;) {
    char blk[64];
    if (!block_of(v[i].canon, blk, sizeof blk)) {
      i++;
      continue;
    }
    size_t j = i;
    while (j < n && strncmp(v[j].canon, blk, strlen(blk)) == 0) j++;
    /* insertion sort by rank within [i, j): stable */
    for (size_t a = i + 1; a < j; a++) {
      gm_entry t = v[a];
      int rk = sub_rank(t.canon, blk);
      size_t b = a;
      while (b > i && sub_rank(v[b - 1].canon, blk) > rk) {
        v[b] = v[b - 1];
        b--;
      }
      v[b] = t;
    }
    i = j;
  }
}

static int gen_list(gm_list *L, int model, gm_models *gm) {
  L->model = model;
  size_t first = L->n;
  int r = model == M_UNET ? dg_unet_enumerate(gm->unet, gm_param, L)
          : model == M_VAE ? dg_vae_enumerate(gm->vae, gm_param, L)
                           : dg_clip_text_enumerate(gm->text, gm_param, L);
  if (model == M_UNET && !L->failed) torch_order_unet(L->v + first, L->n - first);
  return r || L->failed ? -1 : 0;
}

static int generate(const char *out, int single, dg_dtype dtype, uint64_t seed, int full,
                    const char *tok_dir, int init, float qk_gain, int plain) {
  dg_unet_config ucfg = full ? dg_unet_config_sd15() : unet_tiny();
  dg_vae_config vcfg = full ? dg_vae_config_sd15() : dg_vae_config_tiny();
  dg_clip_text_config tcfg = full ? dg_clip_text_config_sd15() : dg_clip_text_config_tiny();
  gm_models gm = {&ucfg, &vcfg, &tcfg};
  char *uj = dg_sd15_unet_config_json(&ucfg), *vj = dg_sd15_vae_config_json(&vcfg);
  char *tj = dg_sd15_text_config_json(&tcfg);
  int rc = -1;
  dg_rng *rng = malloc(sizeof *rng);
  if (!uj || !vj || !tj || !rng) goto done;
  dg_rng_seed(rng, seed);
  if (single) {
    gm_list L = {0};
    L.single = 1;
    L.unet = &ucfg;
    L.vae_levels = vcfg.n_levels;
    L.dtype = dtype;
    gm_position_ids(&L, "cond_stage_model.transformer.", tcfg.max_positions);
    if (gen_list(&L, M_UNET, &gm) == 0 && gen_list(&L, M_VAE, &gm) == 0 &&
        gen_list(&L, M_TEXT, &gm) == 0) {
      json_t *meta = json_object();
      json_object_set_new(meta, "format", json_string("pt"));
      json_object_set_new(meta, "dg.unet_config", json_string(uj));
      json_object_set_new(meta, "dg.vae_config", json_string(vj));
      json_object_set_new(meta, "dg.text_encoder_config", json_string(tj));
      char *ms = json_dumps(meta, JSON_COMPACT | JSON_PRESERVE_ORDER);
      json_decref(meta);
      /* plain: an empty __metadata__, like the published checkpoints (configs from the shapes) */
      rc = ms ? write_file(out, &L, plain ? "{}" : ms, rng, init, qk_gain) : -1;
      free(ms);
    }
    free(L.v);
    goto done;
  }
  /* diffusers folder */
  char p[4096];
  static const char *const subs[] = {"", "/unet", "/vae", "/text_encoder", "/tokenizer", "/scheduler"};
  for (size_t i = 0; i < sizeof subs / sizeof subs[0]; i++) {
    snprintf(p, sizeof p, "%s%s", out, subs[i]);
    if (mkdir_p(p)) goto done;
  }
  snprintf(p, sizeof p, "%s/model_index.json", out);
  if (write_text(p, model_index_json)) goto done;
  snprintf(p, sizeof p, "%s/scheduler/scheduler_config.json", out);
  if (write_text(p, scheduler_json)) goto done;
  static const struct {
    int model;
    const char *sub, *file;
  } parts[] = {{M_UNET, "unet", "diffusion_pytorch_model.safetensors"},
               {M_VAE, "vae", "diffusion_pytorch_model.safetensors"},
               {M_TEXT, "text_encoder", "model.safetensors"}};
  for (int i = 0; i < 3; i++) {
    gm_list L = {0};
    L.dtype = dtype;
    if (parts[i].model == M_TEXT) gm_position_ids(&L, "", tcfg.max_positions);
    int ok = gen_list(&L, parts[i].model, &gm) == 0;
    snprintf(p, sizeof p, "%s/%s/%s", out, parts[i].sub, parts[i].file);
    ok = ok && write_file(p, &L, "{\"format\": \"pt\"}", rng, init, qk_gain) == 0;
    free(L.v);
    snprintf(p, sizeof p, "%s/%s/config.json", out, parts[i].sub);
    ok = ok && write_text(p, parts[i].model == M_UNET ? uj : parts[i].model == M_VAE ? vj : tj) == 0;
    if (!ok) goto done;
  }
  static const char *const tok_files[] = {"vocab.json", "merges.txt", "special_tokens_map.json",
                                          "tokenizer_config.json"};
  if (tok_dir) {
    for (int i = 0; i < 4; i++) {
      char from[4096];
      snprintf(from, sizeof from, "%s/%s", tok_dir, tok_files[i]);
      snprintf(p, sizeof p, "%s/tokenizer/%s", out, tok_files[i]);
      if (copy_file(from, p) && i < 2) {
        fprintf(stderr, "gen-model: cannot copy %s\n", from);
        goto done;
      }
    }
  } else {
    snprintf(p, sizeof p, "%s/tokenizer/README.txt", out);
    if (write_text(p, "The CLIP tokenizer files (vocab.json, merges.txt) were not copied: run\n"
                      "gen-model with --tokenizer DIR, or copy them from the SD1.5 tokenizer/.\n"))
      goto done;
    fprintf(stderr, "gen-model: note: no --tokenizer given; %s/tokenizer/ has no vocabulary\n", out);
  }
  rc = 0;
done:
  free(rng);
  free(uj);
  free(vj);
  free(tj);
  return rc;
}

/* ---- --verify ------------------------------------------------------------- */

static void report(const char *what, const dg_tensor *t) {
  uint64_t h = 1469598103934665603ull;
  const unsigned char *b = t->data;
  for (size_t i = 0; i < dg_tensor_nbytes(t); i++) h = (h ^ b[i]) * 1099511628211ull;
  double s = 0;
  for (int64_t i = 0; i < dg_tensor_numel(t); i++) s += fabs(((const float *)t->data)[i]);
  char d[64];
  printf("%-14s %-22s mean|x| %.6g  hash %016llx\n", what, dg_tensor_describe(t, d, sizeof d),
         s / (double)dg_tensor_numel(t), (unsigned long long)h);
}

static int verify(const char *path, const char *tok_dir, const char *config_dir, int threads) {
  char err[512] = "";
  dg_sd15_params p = dg_sd15_params_default();
  p.path = path;
  p.tokenizer_dir = tok_dir;
  p.config_dir = config_dir;
  /* a folder without tokenizer files still verifies its networks */
  char tpath[4096];
  snprintf(tpath, sizeof tpath, "%s/tokenizer/vocab.json", path);
  struct stat sb;
  int have_tok = tok_dir || stat(tpath, &sb) == 0;
  dg_sd15 *m = NULL;
  dg_status st = DG_STATUS_OK;
  if (!have_tok) {
    fprintf(stderr, "gen-model: no tokenizer: using fixed token ids\n");
    p.tokenizer_dir = NULL;
  }
  if (!have_tok && stat(path, &sb) == 0 && S_ISREG(sb.st_mode)) {
    /* single file without a tokenizer: load everything but the text side, then it alone */
    p.text_encoder = 0;
  }
  st = dg_sd15_open(&p, &m, err, sizeof err);
  if (st != DG_STATUS_OK && !have_tok && p.text_encoder) {
    /* diffusers folder without tokenizer files */
    p.text_encoder = 0;
    st = dg_sd15_open(&p, &m, err, sizeof err);
  }
  if (st != DG_STATUS_OK) {
    fprintf(stderr, "gen-model --verify: %s: %s (%s)\n", path, err, dg_strerror(st));
    return 1;
  }
  dg_engine_params ep = dg_engine_params_default();
  ep.n_threads = threads;
  dg_engine *e = NULL;
  if (dg_engine_new(&ep, &e) != DG_STATUS_OK) {
    dg_sd15_close(m);
    return 1;
  }
  dg_arena *a = dg_arena_new(64 << 20);
  int rc = 1;
  printf("layout %s\n", dg_sd15_get_layout(m) == DG_SD15_LAYOUT_SINGLE ? "single" : "diffusers");
  const dg_unet_config *uc = dg_unet_get_config(dg_sd15_unet(m));
  int64_t C = uc->cross_attention_dim;
  int64_t s_ids[2] = {1, 77}, s_ctx[3] = {1, 77, C}, s_lat[4] = {1, 4, 8, 8}, s_t[1] = {1};
  dg_tensor *ids = dg_arena_tensor(a, DG_DTYPE_I64, 2, s_ids);
  dg_tensor *ctx = dg_arena_tensor(a, DG_DTYPE_F32, 3, s_ctx);
  dg_tensor *lat = dg_arena_tensor(a, DG_DTYPE_F32, 4, s_lat);
  dg_tensor *eps = dg_arena_tensor(a, DG_DTYPE_F32, 4, s_lat);
  dg_tensor *t = dg_arena_tensor(a, DG_DTYPE_F32, 1, s_t);
  if (!a || !ids || !ctx || !lat || !eps || !t) goto out;
  int64_t *idv = ids->data;
  if (dg_sd15_tokenizer(m)) {
    st = dg_tokenizer_encode(dg_sd15_tokenizer(m), "a photograph of an astronaut riding a horse", idv);
    if (st != DG_STATUS_OK) goto out;
  } else {
    static const int64_t fixed[] = {49406, 320, 8853, 539, 550, 18376, 6765, 320, 4558, 49407};
    for (int i = 0; i < 77; i++) idv[i] = i < 10 ? fixed[i] : 49407;
  }
  if (dg_sd15_text_encoder(m)) {
    dg_clip_text_run r = dg_clip_text_run_default();
    r.hidden = ctx;
    st = dg_clip_text_forward(dg_sd15_text_encoder(m), e, a, ids, &r, err, sizeof err);
    if (st != DG_STATUS_OK) goto out;
    report("text_encoder", ctx);
  } else {
    for (int64_t i = 0; i < dg_tensor_numel(ctx); i++) ((float *)ctx->data)[i] = 0.01f * (float)(i % 97);
  }
  dg_rng rng;
  dg_rng_seed(&rng, 0);
  dg_rng_randn(&rng, lat->data, dg_tensor_numel(lat));
  ((float *)t->data)[0] = 500.0f;
  st = dg_unet_forward(dg_sd15_unet(m), e, a, lat, t, ctx, NULL, eps);
  if (st != DG_STATUS_OK) goto out;
  report("unet", eps);
  const dg_vae *v = dg_sd15_vae(m);
  const int f = dg_vae_factor(dg_vae_get_config(v));
  int64_t s_img[4] = {1, 3, 8 * f, 8 * f}, s_mom[4] = {1, 8, 8, 8};
  dg_tensor *img = dg_arena_tensor(a, DG_DTYPE_F32, 4, s_img);
  dg_tensor *mom = dg_arena_tensor(a, DG_DTYPE_F32, 4, s_mom);
  if (!img || !mom) goto out;
  st = dg_vae_decode(v, e, a, lat, img, NULL);
  if (st != DG_STATUS_OK) goto out;
  report("vae.decode", img);
  st = dg_vae_encode(v, e, a, img, mom, NULL);
  if (st != DG_STATUS_OK) goto out;
  report("vae.encode", mom);
  rc = 0;
out:
  if (rc) fprintf(stderr, "gen-model --verify: %s %s\n", dg_strerror(st), err);
  dg_arena_free(a);
  dg_engine_free(e);
  dg_sd15_close(m);
  return rc;
}

int dg_cmd_gen_model(int argc, char **argv) {
  const char *arch = "sd15", *size = "tiny", *dtype_s = "f32", *layout = "diffusers";
  const char *out = NULL, *tok = NULL, *verify_path = NULL, *config_dir = NULL, *init_s = "fixture";
  const char *meta_s = "dg";
  unsigned long long seed = 0;
  int threads = 0;
  float qk_gain = 1.0f;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
      usage(stdout);
      return 0;
    }
    if (!v) {
      fprintf(stderr, "gen-model: %s needs a value\n", a);
      return 2;
    }
    i++;
    if (!strcmp(a, "--arch")) arch = v;
    else if (!strcmp(a, "--size")) size = v;
    else if (!strcmp(a, "--dtype")) dtype_s = v;
    else if (!strcmp(a, "--layout")) layout = v;
    else if (!strcmp(a, "--tokenizer")) tok = v;
    else if (!strcmp(a, "--init")) init_s = v;
    else if (!strcmp(a, "--metadata")) meta_s = v;
    else if (!strcmp(a, "--qk-gain")) {
      char *end;
      qk_gain = strtof(v, &end);
      if (*end || !(qk_gain > 0.0f && qk_gain <= 1e3f)) {
        fprintf(stderr, "gen-model: bad --qk-gain '%s'\n", v);
        return 2;
      }
    }
    else if (!strcmp(a, "--verify")) verify_path = v;
    else if (!strcmp(a, "--config-dir")) config_dir = v;
    else if (!strcmp(a, "--threads")) threads = atoi(v);
    else if (!strcmp(a, "-o") || !strcmp(a, "--output")) out = v;
    else if (!strcmp(a, "--seed")) {
      char *end;
      errno = 0;
      seed = strtoull(v, &end, 10);
      if (errno || *end || *v == '-') {
        fprintf(stderr, "gen-model: bad seed '%s'\n", v);
        return 2;
      }
    } else {
      fprintf(stderr, "gen-model: unknown option %s\n", a);
      usage(stderr);
      return 2;
    }
  }
  if (verify_path) return verify(verify_path, tok, config_dir, threads);
  dg_dtype dtype;
  if (!strcmp(dtype_s, "f32")) dtype = DG_DTYPE_F32;
  else if (!strcmp(dtype_s, "f16")) dtype = DG_DTYPE_F16;
  else if (!strcmp(dtype_s, "bf16")) dtype = DG_DTYPE_BF16;
  else {
    fprintf(stderr, "gen-model: --dtype must be f32, f16 or bf16\n");
    return 2;
  }
  if (strcmp(arch, "sd15") != 0) {
    fprintf(stderr, "gen-model: only --arch sd15 is implemented\n");
    return 2;
  }
  if (strcmp(size, "tiny") != 0 && strcmp(size, "full") != 0) {
    fprintf(stderr, "gen-model: --size must be tiny or full\n");
    return 2;
  }
  if (strcmp(layout, "single") != 0 && strcmp(layout, "diffusers") != 0) {
    fprintf(stderr, "gen-model: --layout must be single or diffusers\n");
    return 2;
  }
  if (strcmp(init_s, "fixture") != 0 && strcmp(init_s, "torch") != 0) {
    fprintf(stderr, "gen-model: --init must be fixture or torch\n");
    return 2;
  }
  if (strcmp(meta_s, "dg") != 0 && strcmp(meta_s, "none") != 0) {
    fprintf(stderr, "gen-model: --metadata must be dg or none\n");
    return 2;
  }
  if (!out) {
    fprintf(stderr, "gen-model: -o PATH is required\n");
    usage(stderr);
    return 2;
  }
  int rc = generate(out, !strcmp(layout, "single"), dtype, seed, !strcmp(size, "full"), tok,
                    !strcmp(init_s, "torch") ? INIT_TORCH : INIT_FIXTURE, qk_gain, !strcmp(meta_s, "none"));
  if (rc == 0)
    fprintf(stderr, "gen-model: wrote %s (%s %s, %s, seed %llu, init %s, qk gain %g)\n", out, size, dtype_s,
            layout, seed, init_s, (double)qk_gain);
  return rc ? 1 : 0;
}
