/* Opening an SD1.x model from a single-file checkpoint or a diffusers folder. */
#include "models/sd15.h"

#include "base/file.h"

#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "base/status.h"

#define SD15_PREFIX_UNET "model.diffusion_model."
#define SD15_PREFIX_VAE "first_stage_model."
#define SD15_PREFIX_TEXT "cond_stage_model.transformer."

enum { PART_UNET, PART_VAE, PART_TEXT, PART_COUNT };

struct dg_sd15 {
  dg_sd15_layout layout;
  dg_safetensors *files[PART_COUNT]; /* single file: files[0] only */
  dg_weights *w[PART_COUNT];
  dg_unet_config unet_cfg;
  dg_vae_config vae_cfg;
  dg_clip_text_config text_cfg;
  dg_unet *unet;
  dg_vae *vae;
  dg_clip_text *text;
  dg_tokenizer *tok;
  char *scheduler_json;
};

dg_sd15_params dg_sd15_params_default(void) {
  dg_sd15_params p;
  memset(&p, 0, sizeof p);
  p.text_encoder = p.unet = p.vae_encoder = p.vae_decoder = 1;
  return p;
}

/* Whole small text file (configs); NULL if absent or larger than 1 MiB. */
static char *slurp(const char *path) {
  char *s = NULL;
  size_t n;
  return dg_read_file(path, (size_t)1 << 20, &s, &n, NULL, 0) == DG_STATUS_OK ? s : NULL;
}

static int ends_with(const char *s, const char *suf) {
  size_t a = strlen(s), b = strlen(suf);
  return a >= b && strcmp(s + a - b, suf) == 0;
}

/* ---- single-file helpers ------------------------------------------------- */

/* Older SD1 files store the CLIP text model without "text_model.". */
static int text_legacy_map(const char *name, char *out, size_t n, void *ud) {
  (void)ud;
  return snprintf(out, n, "text_model.%s", name) < (int)n;
}

static int has_prefix_tensor(const dg_safetensors *f, const char *prefix) {
  size_t lp = strlen(prefix);
  for (size_t i = 0; i < dg_safetensors_count(f); i++)
    if (strncmp(dg_safetensors_at(f, i)->name, prefix, lp) == 0) return 1;
  return 0;
}

/* Number of VAE levels in LDM names: 1 + the largest N of
 * "first_stage_model.{encoder.down|decoder.up}.N.". */
static int ldm_vae_levels(const dg_safetensors *f) {
  int n = 0;
  static const char *const pre[2] = {SD15_PREFIX_VAE "encoder.down.", SD15_PREFIX_VAE "decoder.up."};
  for (size_t i = 0; i < dg_safetensors_count(f); i++) {
    const char *name = dg_safetensors_at(f, i)->name;
    for (int k = 0; k < 2; k++) {
      size_t lp = strlen(pre[k]);
      if (strncmp(name, pre[k], lp) != 0) continue;
      char *end;
      long v = strtol(name + lp, &end, 10);
      if (end != name + lp && *end == '.' && v >= 0 && v < DG_VAE_MAX_LEVELS && v + 1 > n)
        n = (int)v + 1;
    }
  }
  return n;
}

/* A config JSON from (1) config_dir/<sub>/config.json, (2) file metadata. */
static char *single_config(const dg_sd15_params *p, const dg_safetensors *f, const char *sub,
                           const char *meta_key) {
  if (p->config_dir) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s/config.json", p->config_dir, sub);
    char *s = slurp(path);
    if (s) return s;
  }
  const char *m = dg_safetensors_metadata(f, meta_key);
  return m ? strdup(m) : NULL;
}

/* ---- diffusers-folder helpers -------------------------------------------- */

static dg_status open_part(const char *dir, const char *sub, const char *const *names,
                           dg_safetensors **out, char *err, size_t errlen) {
  char path[4096];
  for (int i = 0; names[i]; i++) {
    snprintf(path, sizeof path, "%s/%s/%s", dir, sub, names[i]);
    if (dg_is_file(path)) return dg_safetensors_open(path, out, err, errlen);
  }
  snprintf(path, sizeof path, "%s/%s/diffusion_pytorch_model.bin", dir, sub);
  char path2[4096];
  snprintf(path2, sizeof path2, "%s/%s/pytorch_model.bin", dir, sub);
  if (dg_is_file(path) || dg_is_file(path2)) {
    dg_set_error(err, errlen, "%s/%s: only .safetensors weights are supported (found a .bin pickle)", dir, sub);
    return DG_STATUS_ERR_UNSUPPORTED;
  }
  dg_set_error(err, errlen, "%s/%s/%s not found", dir, sub, names[0]);
  return DG_STATUS_ERR_NOT_FOUND;
}

static char *part_config(const char *dir, const char *sub) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s/config.json", dir, sub);
  return slurp(path);
}

/* ---- open ----------------------------------------------------------------- */

static dg_status load_text_cfg(dg_sd15 *m, const char *json, char *err, size_t errlen) {
  if (json) return dg_clip_text_config_from_json(json, &m->text_cfg, err, errlen);
  /* Not in the shapes: head count (64-wide heads as published; narrower test
   * models use 8-wide heads) and the activation (quick_gelu for SD1). */
  const dg_tensor *t = dg_weights_get(m->w[PART_TEXT], "text_model.embeddings.token_embedding.weight");
  int heads = 0;
  if (t && t->ndim == 2) {
    int64_t c = t->shape[1];
    heads = c % 64 == 0 ? (int)(c / 64) : (c % 8 == 0 ? (int)(c / 8) : 1);
  }
  return dg_clip_text_config_detect(m->w[PART_TEXT], heads, -1, &m->text_cfg, err, errlen);
}

static dg_status open_single(dg_sd15 *m, const dg_sd15_params *p, char *err, size_t errlen) {
  dg_status st = dg_safetensors_open(p->path, &m->files[0], err, errlen);
  if (st != DG_STATUS_OK) return st;
  const dg_safetensors *f = m->files[0];
  char *js = NULL;
  if (p->unet) {
    js = single_config(p, f, "unet", "dg.unet_config");
    if (js) {
      st = dg_unet_config_parse_json(js, &m->unet_cfg, err, errlen);
    } else {
      dg_weights *raw = dg_weights_new();
      if (!raw) return DG_STATUS_ERR_NOMEM;
      st = dg_weights_add(raw, f, SD15_PREFIX_UNET, NULL, NULL, err, errlen);
      if (st == DG_STATUS_OK) st = dg_unet_config_from_weights(raw, &m->unet_cfg, err, errlen);
      dg_weights_free(raw);
    }
    free(js);
    if (st != DG_STATUS_OK) return st;
    if (!(m->w[PART_UNET] = dg_weights_new())) return DG_STATUS_ERR_NOMEM;
    st = dg_weights_add(m->w[PART_UNET], f, SD15_PREFIX_UNET, dg_unet_ldm_key_map, &m->unet_cfg,
                        err, errlen);
    if (st != DG_STATUS_OK) return st;
  }
  if (p->vae_encoder || p->vae_decoder) {
    int levels = ldm_vae_levels(f);
    if (levels == 0) {
      dg_set_error(err, errlen, "%s: no first_stage_model.* (VAE) tensors", p->path);
      return DG_STATUS_ERR_FORMAT;
    }
    if (!(m->w[PART_VAE] = dg_weights_new())) return DG_STATUS_ERR_NOMEM;
    st = dg_weights_add(m->w[PART_VAE], f, SD15_PREFIX_VAE, dg_vae_ldm_key_map, &levels, err, errlen);
    if (st != DG_STATUS_OK) return st;
    js = single_config(p, f, "vae", "dg.vae_config");
    st = js ? dg_vae_config_from_json(js, &m->vae_cfg, err, errlen)
            : dg_vae_config_detect(m->w[PART_VAE], &m->vae_cfg, err, errlen);
    free(js);
    if (st != DG_STATUS_OK) return st;
  }
  if (p->text_encoder) {
    if (!(m->w[PART_TEXT] = dg_weights_new())) return DG_STATUS_ERR_NOMEM;
    if (has_prefix_tensor(f, SD15_PREFIX_TEXT "text_model."))
      st = dg_weights_add(m->w[PART_TEXT], f, SD15_PREFIX_TEXT, NULL, NULL, err, errlen);
    else if (has_prefix_tensor(f, SD15_PREFIX_TEXT "embeddings."))
      st = dg_weights_add(m->w[PART_TEXT], f, SD15_PREFIX_TEXT, text_legacy_map, NULL, err, errlen);
    else {
      dg_set_error(err, errlen, "%s: no " SD15_PREFIX_TEXT "* (CLIP text encoder) tensors%s", p->path,
             has_prefix_tensor(f, "cond_stage_model.model.") ? " (an SD2 OpenCLIP encoder is not SD1.5)" : "");
      return DG_STATUS_ERR_FORMAT;
    }
    if (st != DG_STATUS_OK) return st;
    js = single_config(p, f, "text_encoder", "dg.text_encoder_config");
    st = load_text_cfg(m, js, err, errlen);
    free(js);
    if (st != DG_STATUS_OK) return st;
    if (!p->tokenizer_dir) {
      dg_set_error(err, errlen, "a single-file checkpoint needs a tokenizer directory (vocab.json, merges.txt)");
      return DG_STATUS_ERR_INVALID;
    }
    st = dg_tokenizer_open(p->tokenizer_dir, &m->tok, err, errlen);
    if (st != DG_STATUS_OK) return st;
  }
  return DG_STATUS_OK;
}

static dg_status open_diffusers(dg_sd15 *m, const dg_sd15_params *p, char *err, size_t errlen) {
  char path[4096];
  snprintf(path, sizeof path, "%s/model_index.json", p->path);
  if (!dg_is_file(path)) {
    dg_set_error(err, errlen, "%s is a folder without model_index.json (not a diffusers model)", p->path);
    return DG_STATUS_ERR_NOT_FOUND;
  }
  static const char *const unet_files[] = {"diffusion_pytorch_model.safetensors",
                                           "diffusion_pytorch_model.fp16.safetensors", NULL};
  static const char *const text_files[] = {"model.safetensors", "model.fp16.safetensors", NULL};
  dg_status st;
  char *js;
  if (p->unet) {
    st = open_part(p->path, "unet", unet_files, &m->files[PART_UNET], err, errlen);
    if (st != DG_STATUS_OK) return st;
    if (!(m->w[PART_UNET] = dg_weights_new())) return DG_STATUS_ERR_NOMEM;
    st = dg_weights_add(m->w[PART_UNET], m->files[PART_UNET], "", NULL, NULL, err, errlen);
    if (st != DG_STATUS_OK) return st;
    js = part_config(p->path, "unet");
    st = js ? dg_unet_config_parse_json(js, &m->unet_cfg, err, errlen)
            : dg_unet_config_from_weights(m->w[PART_UNET], &m->unet_cfg, err, errlen);
    free(js);
    if (st != DG_STATUS_OK) return st;
  }
  if (p->vae_encoder || p->vae_decoder) {
    st = open_part(p->path, "vae", unet_files, &m->files[PART_VAE], err, errlen);
    if (st != DG_STATUS_OK) return st;
    if (!(m->w[PART_VAE] = dg_weights_new())) return DG_STATUS_ERR_NOMEM;
    st = dg_weights_add(m->w[PART_VAE], m->files[PART_VAE], "", NULL, NULL, err, errlen);
    if (st != DG_STATUS_OK) return st;
    js = part_config(p->path, "vae");
    st = js ? dg_vae_config_from_json(js, &m->vae_cfg, err, errlen)
            : dg_vae_config_detect(m->w[PART_VAE], &m->vae_cfg, err, errlen);
    free(js);
    if (st != DG_STATUS_OK) return st;
  }
  if (p->text_encoder) {
    st = open_part(p->path, "text_encoder", text_files, &m->files[PART_TEXT], err, errlen);
    if (st != DG_STATUS_OK) return st;
    if (!(m->w[PART_TEXT] = dg_weights_new())) return DG_STATUS_ERR_NOMEM;
    st = dg_weights_add(m->w[PART_TEXT], m->files[PART_TEXT], "", NULL, NULL, err, errlen);
    if (st != DG_STATUS_OK) return st;
    js = part_config(p->path, "text_encoder");
    st = load_text_cfg(m, js, err, errlen);
    free(js);
    if (st != DG_STATUS_OK) return st;
    if (p->tokenizer_dir) {
      st = dg_tokenizer_open(p->tokenizer_dir, &m->tok, err, errlen);
    } else {
      snprintf(path, sizeof path, "%s/tokenizer", p->path);
      st = dg_tokenizer_open(path, &m->tok, err, errlen);
    }
    if (st != DG_STATUS_OK) return st;
  }
  m->scheduler_json = part_config(p->path, "scheduler");
  return DG_STATUS_OK;
}

dg_status dg_sd15_open(const dg_sd15_params *p, dg_sd15 **out, char *err, size_t errlen) {
  *out = NULL;
  if (!p || !p->path || !*p->path) {
    dg_set_error(err, errlen, "sd15: no model path");
    return DG_STATUS_ERR_INVALID;
  }
  dg_sd15 *m = calloc(1, sizeof *m);
  if (!m) return DG_STATUS_ERR_NOMEM;
  dg_status st;
  if (dg_is_dir(p->path)) {
    m->layout = DG_SD15_LAYOUT_DIFFUSERS;
    st = open_diffusers(m, p, err, errlen);
  } else if (dg_is_file(p->path)) {
    m->layout = DG_SD15_LAYOUT_SINGLE;
    if (ends_with(p->path, ".ckpt") || ends_with(p->path, ".pt") || ends_with(p->path, ".bin")) {
      dg_set_error(err, errlen, "%s: pickle checkpoints are not supported; use the .safetensors file", p->path);
      st = DG_STATUS_ERR_UNSUPPORTED;
    } else {
      st = open_single(m, p, err, errlen);
    }
  } else {
    dg_set_error(err, errlen, "%s: %s", p->path, strerror(errno));
    st = DG_STATUS_ERR_NOT_FOUND;
  }
  if (st == DG_STATUS_OK && p->unet) {
    m->unet = dg_unet_new(&m->unet_cfg, m->w[PART_UNET], err, errlen);
    if (!m->unet) st = DG_STATUS_ERR_FORMAT;
  }
  if (st == DG_STATUS_OK && (p->vae_encoder || p->vae_decoder))
    st = dg_vae_new(&m->vae_cfg, m->w[PART_VAE], p->vae_encoder, p->vae_decoder, &m->vae, err, errlen);
  if (st == DG_STATUS_OK && p->text_encoder)
    st = dg_clip_text_new(&m->text_cfg, m->w[PART_TEXT], &m->text, err, errlen);
  if (st != DG_STATUS_OK) {
    dg_sd15_close(m);
    return st;
  }
  *out = m;
  return DG_STATUS_OK;
}

void dg_sd15_close(dg_sd15 *m) {
  if (!m) return;
  dg_unet_free(m->unet);
  dg_vae_free(m->vae);
  dg_clip_text_free(m->text);
  dg_tokenizer_close(m->tok);
  for (int i = 0; i < PART_COUNT; i++) {
    dg_weights_free(m->w[i]);
    dg_safetensors_close(m->files[i]);
  }
  free(m->scheduler_json);
  free(m);
}

dg_sd15_layout dg_sd15_get_layout(const dg_sd15 *m) { return m->layout; }
const dg_tokenizer *dg_sd15_tokenizer(const dg_sd15 *m) { return m->tok; }
dg_clip_text *dg_sd15_text_encoder(const dg_sd15 *m) { return m->text; }
const dg_unet *dg_sd15_unet(const dg_sd15 *m) { return m->unet; }
const dg_vae *dg_sd15_vae(const dg_sd15 *m) { return m->vae; }
const char *dg_sd15_scheduler_config(const dg_sd15 *m) { return m->scheduler_json; }

/* ---- config JSON writers -------------------------------------------------- */

static json_t *int_list(const int *v, int n) {
  json_t *a = json_array();
  for (int i = 0; i < n; i++) json_array_append_new(a, json_integer(v[i]));
  return a;
}

static char *dump(json_t *o) {
  char *s = o ? json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
  json_decref(o);
  return s;
}

char *dg_sd15_unet_config_json(const dg_unet_config *c) {
  json_t *o = json_object();
  if (!o) return NULL;
  const int n = c->n_levels;
  json_object_set_new(o, "_class_name", json_string("UNet2DConditionModel"));
  json_object_set_new(o, "in_channels", json_integer(c->in_channels));
  json_object_set_new(o, "out_channels", json_integer(c->out_channels));
  json_object_set_new(o, "block_out_channels", int_list(c->block_out_channels, n));
  json_t *down = json_array(), *up = json_array();
  for (int i = 0; i < n; i++) {
    json_array_append_new(down, json_string(c->down_cross_attn[i] ? "CrossAttnDownBlock2D" : "DownBlock2D"));
    json_array_append_new(up, json_string(c->up_cross_attn[i] ? "CrossAttnUpBlock2D" : "UpBlock2D"));
  }
  json_object_set_new(o, "down_block_types", down);
  json_object_set_new(o, "up_block_types", up);
  json_object_set_new(o, "mid_block_type",
                      c->mid_block_cross_attn ? json_string("UNetMidBlock2DCrossAttn") : json_null());
  json_object_set_new(o, "layers_per_block", int_list(c->layers_per_block, n));
  json_object_set_new(o, "attention_head_dim", int_list(c->num_attention_heads, n));
  json_object_set_new(o, "transformer_layers_per_block", int_list(c->transformer_layers_per_block, n));
  json_object_set_new(o, "cross_attention_dim", json_integer(c->cross_attention_dim));
  json_object_set_new(o, "use_linear_projection", json_boolean(c->use_linear_projection));
  json_object_set_new(o, "upcast_attention", json_boolean(c->upcast_attention));
  json_object_set_new(o, "norm_num_groups", json_integer(c->norm_num_groups));
  json_object_set_new(o, "norm_eps", json_real(c->norm_eps));
  json_object_set_new(o, "flip_sin_to_cos", json_boolean(c->flip_sin_to_cos));
  json_object_set_new(o, "freq_shift", json_integer((json_int_t)c->freq_shift));
  if (c->time_embed_dim != 4 * c->block_out_channels[0])
    json_object_set_new(o, "time_embedding_dim", json_integer(c->time_embed_dim));
  json_object_set_new(o, "downsample_padding", json_integer(c->downsample_padding));
  json_object_set_new(o, "mid_block_scale_factor", json_real(c->mid_block_scale_factor));
  json_object_set_new(o, "resnet_out_scale_factor", json_real(c->resnet_out_scale_factor));
  json_object_set_new(o, "act_fn", json_string("silu"));
  if (c->addition_text_time) {
    json_object_set_new(o, "addition_embed_type", json_string("text_time"));
    json_object_set_new(o, "addition_time_embed_dim", json_integer(c->addition_time_embed_dim));
    json_object_set_new(o, "projection_class_embeddings_input_dim",
                        json_integer(c->projection_class_embeddings_input_dim));
  } else {
    json_object_set_new(o, "addition_embed_type", json_null());
  }
  json_object_set_new(o, "sample_size", json_integer(c->sample_size));
  return dump(o);
}

char *dg_sd15_vae_config_json(const dg_vae_config *c) {
  json_t *o = json_object();
  if (!o) return NULL;
  json_object_set_new(o, "_class_name", json_string("AutoencoderKL"));
  json_object_set_new(o, "act_fn", json_string("silu"));
  json_object_set_new(o, "block_out_channels", int_list(c->block_out_channels, c->n_levels));
  json_t *down = json_array(), *up = json_array();
  for (int i = 0; i < c->n_levels; i++) {
    json_array_append_new(down, json_string("DownEncoderBlock2D"));
    json_array_append_new(up, json_string("UpDecoderBlock2D"));
  }
  json_object_set_new(o, "down_block_types", down);
  json_object_set_new(o, "up_block_types", up);
  json_object_set_new(o, "in_channels", json_integer(c->in_channels));
  json_object_set_new(o, "out_channels", json_integer(c->out_channels));
  json_object_set_new(o, "latent_channels", json_integer(c->latent_channels));
  json_object_set_new(o, "layers_per_block", json_integer(c->layers_per_block));
  json_object_set_new(o, "norm_num_groups", json_integer(c->norm_num_groups));
  json_object_set_new(o, "scaling_factor", json_real(c->scaling_factor));
  json_object_set_new(o, "mid_block_add_attention", json_boolean(c->mid_attention));
  json_object_set_new(o, "use_quant_conv", json_boolean(c->use_quant_conv));
  json_object_set_new(o, "use_post_quant_conv", json_boolean(c->use_quant_conv));
  return dump(o);
}

char *dg_sd15_text_config_json(const dg_clip_text_config *c) {
  json_t *o = json_object();
  if (!o) return NULL;
  json_t *arch = json_array();
  json_array_append_new(arch, json_string(c->projection_dim ? "CLIPTextModelWithProjection"
                                                            : "CLIPTextModel"));
  json_object_set_new(o, "architectures", arch);
  json_object_set_new(o, "model_type", json_string("clip_text_model"));
  json_object_set_new(o, "vocab_size", json_integer(c->vocab_size));
  json_object_set_new(o, "hidden_size", json_integer(c->hidden_size));
  json_object_set_new(o, "intermediate_size", json_integer(c->intermediate_size));
  json_object_set_new(o, "num_hidden_layers", json_integer(c->n_layers));
  json_object_set_new(o, "num_attention_heads", json_integer(c->n_heads));
  json_object_set_new(o, "max_position_embeddings", json_integer(c->max_positions));
  json_object_set_new(o, "hidden_act",
                      json_string(c->act == DG_CLIP_ACT_GELU ? "gelu" : "quick_gelu"));
  json_object_set_new(o, "layer_norm_eps", json_real(c->eps));
  json_object_set_new(o, "projection_dim", json_integer(c->projection_dim ? c->projection_dim : c->hidden_size));
  json_object_set_new(o, "bos_token_id", json_integer(0));
  json_object_set_new(o, "eos_token_id", json_integer(2));
  json_object_set_new(o, "pad_token_id", json_integer(1));
  json_object_set_new(o, "torch_dtype", json_string("float32"));
  return dump(o);
}
