/* UNet configs from a diffusers config.json (jansson) and from the tensors of
 * a checkpoint (names + shapes), see unet.h. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "models/unet.h"
#include "base/status.h"

/* Start from the SD1.5 defaults of UNet2DConditionModel.__init__ for keys the
 * file leaves out. */
static void json_defaults(dg_unet_config *c) {
  *c = dg_unet_config_sd15();
  c->cross_attention_dim = 1280; /* diffusers default */
  c->time_embed_dim = 0;         /* derived unless time_embedding_dim */
  c->sample_size = 0;
}

static int is_null(const json_t *v) { return !v || json_is_null(v); }

/* int or list of ints (one per level) into dst[n]. */
static int int_or_list(json_t *v, int *dst, int n, const char *key, char *err, size_t el) {
  if (is_null(v)) return 0;
  if (json_is_integer(v)) {
    for (int i = 0; i < n; i++) dst[i] = (int)json_integer_value(v);
    return 0;
  }
  if (json_is_array(v) && (int)json_array_size(v) == n) {
    for (int i = 0; i < n; i++) {
      json_t *e = json_array_get(v, (size_t)i);
      if (!json_is_integer(e)) break;
      dst[i] = (int)json_integer_value(e);
      if (i == n - 1) return 0;
    }
  }
  dg_set_error(err, el, "unet config: %s must be an integer or a list of %d integers", key, n);
  return -1;
}

static int get_int(json_t *root, const char *key, int *dst, char *err, size_t el) {
  json_t *v = json_object_get(root, key);
  if (is_null(v)) return 0;
  if (!json_is_integer(v)) {
    dg_set_error(err, el, "unet config: %s must be an integer", key);
    return -1;
  }
  *dst = (int)json_integer_value(v);
  return 0;
}

static int get_num(json_t *root, const char *key, float *dst, char *err, size_t el) {
  json_t *v = json_object_get(root, key);
  if (is_null(v)) return 0;
  if (!json_is_number(v)) {
    dg_set_error(err, el, "unet config: %s must be a number", key);
    return -1;
  }
  *dst = (float)json_number_value(v);
  return 0;
}

static int get_bool(json_t *root, const char *key, int *dst, char *err, size_t el) {
  json_t *v = json_object_get(root, key);
  if (is_null(v)) return 0;
  if (!json_is_boolean(v)) {
    dg_set_error(err, el, "unet config: %s must be a boolean", key);
    return -1;
  }
  *dst = json_is_true(v);
  return 0;
}

/* A key that must be absent, null or equal to the given default. */
static int want(json_t *root, const char *key, const char *def_str, int def_bool, char *err,
                size_t el) {
  json_t *v = json_object_get(root, key);
  if (is_null(v)) return 0;
  if (def_str && json_is_string(v) && strcmp(json_string_value(v), def_str) == 0) return 0;
  if (!def_str && json_is_boolean(v) && json_is_true(v) == def_bool) return 0;
  if (!def_str && def_bool == 0 && json_is_integer(v) && json_integer_value(v) == 0) return 0;
  dg_set_error(err, el, "unet config: unsupported %s", key);
  return -1;
}

static dg_status parse_root(json_t *root, dg_unet_config *c, char *err, size_t el) {
  json_defaults(c);
  if (!json_is_object(root)) {
    dg_set_error(err, el, "unet config: not a JSON object");
    return DG_STATUS_ERR_FORMAT;
  }
  const char *cls = json_string_value(json_object_get(root, "_class_name"));
  if (cls && strcmp(cls, "UNet2DConditionModel") != 0) {
    dg_set_error(err, el, "unet config: class %s is not UNet2DConditionModel", cls);
    return DG_STATUS_ERR_UNSUPPORTED;
  }
  /* Features the SD family does not use. */
  static const struct { const char *key, *def; int defb; } fixed[] = {
      {"act_fn", "silu", 0},
      {"time_embedding_type", "positional", 0},
      {"resnet_time_scale_shift", "default", 0},
      {"attention_type", "default", 0},
      {"center_input_sample", NULL, 0},
      {"dual_cross_attention", NULL, 0},
      {"resnet_skip_time_act", NULL, 0},
      {"class_embeddings_concat", NULL, 0},
      {"mid_block_only_cross_attention", NULL, 0},
      {"class_embed_type", "", 0},
      {"num_class_embeds", "", 0},
      {"encoder_hid_dim", "", 0},
      {"encoder_hid_dim_type", "", 0},
      {"time_cond_proj_dim", "", 0},
      {"timestep_post_act", "", 0},
      {"time_embedding_act_fn", "", 0},
      {"cross_attention_norm", "", 0},
      {"reverse_transformer_layers_per_block", "", 0},
  };
  for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
    if (want(root, fixed[i].key, fixed[i].def, fixed[i].defb, err, el))
      return DG_STATUS_ERR_UNSUPPORTED;
  json_t *oca = json_object_get(root, "only_cross_attention");
  int oca_on = json_is_true(oca);
  for (size_t i = 0; json_is_array(oca) && i < json_array_size(oca); i++)
    oca_on |= json_is_true(json_array_get(oca, i));
  if (oca_on) {
    dg_set_error(err, el, "unet config: only_cross_attention unsupported");
    return DG_STATUS_ERR_UNSUPPORTED;
  }
  static const char *const kernels[2] = {"conv_in_kernel", "conv_out_kernel"};
  for (int i = 0; i < 2; i++) {
    int k = 3;
    if (get_int(root, kernels[i], &k, err, el)) return DG_STATUS_ERR_FORMAT;
    if (k != 3) {
      dg_set_error(err, el, "unet config: %s %d unsupported", kernels[i], k);
      return DG_STATUS_ERR_UNSUPPORTED;
    }
  }

  json_t *boc = json_object_get(root, "block_out_channels");
  if (!is_null(boc)) {
    if (!json_is_array(boc) || json_array_size(boc) < 1 ||
        json_array_size(boc) > DG_UNET_MAX_LEVELS) {
      dg_set_error(err, el, "unet config: block_out_channels must be a list of 1..%d integers",
             DG_UNET_MAX_LEVELS);
      return DG_STATUS_ERR_FORMAT;
    }
    c->n_levels = (int)json_array_size(boc);
    if (int_or_list(boc, c->block_out_channels, c->n_levels, "block_out_channels", err, el))
      return DG_STATUS_ERR_FORMAT;
  }
  int n = c->n_levels;
  static const char *const dkeys[2] = {"down_block_types", "up_block_types"};
  static const char *const names[2][2] = {{"DownBlock2D", "CrossAttnDownBlock2D"},
                                          {"UpBlock2D", "CrossAttnUpBlock2D"}};
  for (int d = 0; d < 2; d++) {
    json_t *a = json_object_get(root, dkeys[d]);
    int *dst = d ? c->up_cross_attn : c->down_cross_attn;
    if (is_null(a)) {
      if (n != 4) {
        dg_set_error(err, el, "unet config: %s missing", dkeys[d]);
        return DG_STATUS_ERR_FORMAT;
      }
      continue;
    }
    if (!json_is_array(a) || (int)json_array_size(a) != n) {
      dg_set_error(err, el, "unet config: %s must list %d block types", dkeys[d], n);
      return DG_STATUS_ERR_FORMAT;
    }
    for (int i = 0; i < n; i++) {
      const char *s = json_string_value(json_array_get(a, (size_t)i));
      if (s && strcmp(s, names[d][0]) == 0) dst[i] = 0;
      else if (s && strcmp(s, names[d][1]) == 0) dst[i] = 1;
      else {
        dg_set_error(err, el, "unet config: block type %s unsupported", s ? s : "(not a string)");
        return DG_STATUS_ERR_UNSUPPORTED;
      }
    }
  }
  json_t *mid = json_object_get(root, "mid_block_type");
  if (mid && json_is_null(mid)) c->mid_block_cross_attn = 0;
  else if (mid) {
    const char *s = json_string_value(mid);
    if (!s || strcmp(s, "UNetMidBlock2DCrossAttn") != 0) {
      dg_set_error(err, el, "unet config: mid_block_type %s unsupported", s ? s : "(not a string)");
      return DG_STATUS_ERR_UNSUPPORTED;
    }
    c->mid_block_cross_attn = 1;
  }
  if (int_or_list(json_object_get(root, "layers_per_block"), c->layers_per_block, n,
                  "layers_per_block", err, el))
    return DG_STATUS_ERR_FORMAT;
  /* diffusers: num_attention_heads = num_attention_heads or attention_head_dim */
  json_t *heads = json_object_get(root, "num_attention_heads");
  if (is_null(heads)) heads = json_object_get(root, "attention_head_dim");
  if (int_or_list(heads, c->num_attention_heads, n, "attention_head_dim", err, el))
    return DG_STATUS_ERR_FORMAT;
  if (int_or_list(json_object_get(root, "transformer_layers_per_block"),
                  c->transformer_layers_per_block, n, "transformer_layers_per_block", err, el))
    return DG_STATUS_ERR_FORMAT;
  int cad[DG_UNET_MAX_LEVELS];
  for (int i = 0; i < n; i++) cad[i] = c->cross_attention_dim;
  if (int_or_list(json_object_get(root, "cross_attention_dim"), cad, n, "cross_attention_dim",
                  err, el))
    return DG_STATUS_ERR_FORMAT;
  for (int i = 1; i < n; i++)
    if (cad[i] != cad[0]) {
      dg_set_error(err, el, "unet config: per-level cross_attention_dim unsupported");
      return DG_STATUS_ERR_UNSUPPORTED;
    }
  c->cross_attention_dim = cad[0];
  if (get_int(root, "in_channels", &c->in_channels, err, el) ||
      get_int(root, "out_channels", &c->out_channels, err, el) ||
      get_bool(root, "use_linear_projection", &c->use_linear_projection, err, el) ||
      get_bool(root, "upcast_attention", &c->upcast_attention, err, el) ||
      get_int(root, "norm_num_groups", &c->norm_num_groups, err, el) ||
      get_num(root, "norm_eps", &c->norm_eps, err, el) ||
      get_bool(root, "flip_sin_to_cos", &c->flip_sin_to_cos, err, el) ||
      get_num(root, "freq_shift", &c->freq_shift, err, el) ||
      get_int(root, "time_embedding_dim", &c->time_embed_dim, err, el) ||
      get_int(root, "downsample_padding", &c->downsample_padding, err, el) ||
      get_num(root, "mid_block_scale_factor", &c->mid_block_scale_factor, err, el) ||
      get_num(root, "resnet_out_scale_factor", &c->resnet_out_scale_factor, err, el) ||
      get_int(root, "addition_time_embed_dim", &c->addition_time_embed_dim, err, el) ||
      get_int(root, "projection_class_embeddings_input_dim",
              &c->projection_class_embeddings_input_dim, err, el) ||
      get_int(root, "sample_size", &c->sample_size, err, el))
    return DG_STATUS_ERR_FORMAT;
  if (c->time_embed_dim == 0) c->time_embed_dim = 4 * c->block_out_channels[0];
  json_t *aet = json_object_get(root, "addition_embed_type");
  c->addition_text_time = 0;
  if (!is_null(aet)) {
    const char *s = json_string_value(aet);
    if (!s || strcmp(s, "text_time") != 0) {
      dg_set_error(err, el, "unet config: addition_embed_type %s unsupported", s ? s : "?");
      return DG_STATUS_ERR_UNSUPPORTED;
    }
    c->addition_text_time = 1;
  }
  return dg_unet_config_validate(c, err, el);
}

dg_status dg_unet_config_parse_json(const char *json, dg_unet_config *cfg, char *err,
                                    size_t errlen) {
  if (!json || !cfg) return DG_STATUS_ERR_INVALID;
  const char *p = json;
  while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') p++;
  json_error_t je;
  json_t *root = *p == '{' ? json_loads(p, 0, &je) : json_load_file(json, 0, &je);
  if (!root) {
    dg_set_error(err, errlen, "unet config: %s (line %d)", je.text, je.line);
    return *p == '{' ? DG_STATUS_ERR_FORMAT : DG_STATUS_ERR_IO;
  }
  dg_status st = parse_root(root, cfg, err, errlen);
  json_decref(root);
  return st;
}

/* ---- Detection from tensors ------------------------------------------------ */

typedef struct probe {
  const dg_weights *w;
  int ldm;
} probe;

static const dg_tensor *getf(const probe *pr, const char *fmt, ...) {
  char name[160];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(name, sizeof name, fmt, ap);
  va_end(ap);
  return dg_weights_get(pr->w, name);
}

/* Attention at `prefix` (diffusers or LDM prefix, same inside): number of
 * transformer blocks, linear projection, context dim. */
static int probe_attn(const probe *pr, const char *prefix, int *n_tb, int *linear, int *ctx) {
  const dg_tensor *pin = getf(pr, "%s.proj_in.weight", prefix);
  if (!pin) return 0;
  *linear = pin->ndim == 2;
  int t = 0;
  while (getf(pr, "%s.transformer_blocks.%d.attn1.to_q.weight", prefix, t)) t++;
  *n_tb = t;
  const dg_tensor *k = getf(pr, "%s.transformer_blocks.0.attn2.to_k.weight", prefix);
  if (k && k->ndim == 2) *ctx = (int)k->shape[1];
  return 1;
}

dg_status dg_unet_config_from_weights(const dg_weights *w, dg_unet_config *c, char *err,
                                      size_t el) {
  if (!w || !c) return DG_STATUS_ERR_INVALID;
  probe pr = {w, 0};
  const dg_tensor *cin = dg_weights_get(w, "conv_in.weight");
  if (!cin) {
    cin = dg_weights_get(w, "input_blocks.0.0.weight");
    pr.ldm = 1;
  }
  const dg_tensor *cout = dg_weights_get(w, pr.ldm ? "out.2.weight" : "conv_out.weight");
  const dg_tensor *t1 =
      dg_weights_get(w, pr.ldm ? "time_embed.0.weight" : "time_embedding.linear_1.weight");
  if (!cin || !cout || !t1 || cin->ndim != 4 || cout->ndim != 4 || t1->ndim != 2) {
    dg_set_error(err, el, "unet weights: no conv_in/conv_out/time embedding (not a UNet?)");
    return DG_STATUS_ERR_FORMAT;
  }
  *c = dg_unet_config_sd15();
  c->in_channels = (int)cin->shape[1];
  c->out_channels = (int)cout->shape[0];
  c->time_embed_dim = (int)t1->shape[0];
  c->use_linear_projection = 0;
  c->sample_size = 0;
  for (int i = 0; i < DG_UNET_MAX_LEVELS; i++) {
    c->block_out_channels[i] = c->layers_per_block[i] = 0;
    c->down_cross_attn[i] = c->up_cross_attn[i] = 0;
    c->num_attention_heads[i] = c->transformer_layers_per_block[i] = 0;
  }
  int n = 0, ntl[DG_UNET_MAX_LEVELS] = {0}, ctx = 0, linear = 0, any_attn = 0;
  char p[96];
  if (!pr.ldm) {
    while (n < DG_UNET_MAX_LEVELS && getf(&pr, "down_blocks.%d.resnets.0.conv1.weight", n)) {
      const dg_tensor *cv = getf(&pr, "down_blocks.%d.resnets.0.conv1.weight", n);
      c->block_out_channels[n] = (int)cv->shape[0];
      int j = 0;
      while (getf(&pr, "down_blocks.%d.resnets.%d.conv1.weight", n, j)) j++;
      c->layers_per_block[n] = j;
      snprintf(p, sizeof p, "down_blocks.%d.attentions.0", n);
      c->down_cross_attn[n] = probe_attn(&pr, p, &ntl[n], &linear, &ctx);
      any_attn |= c->down_cross_attn[n];
      n++;
    }
    for (int i = 0; i < n; i++) {
      int tl = 0;
      snprintf(p, sizeof p, "up_blocks.%d.attentions.0", i);
      c->up_cross_attn[i] = probe_attn(&pr, p, &tl, &linear, &ctx);
      if (c->up_cross_attn[i] && !ntl[n - 1 - i]) ntl[n - 1 - i] = tl;
    }
  } else {
    int k = 1, level = 0, j = 0;
    for (;;) {
      if (getf(&pr, "input_blocks.%d.0.op.weight", k)) {
        c->layers_per_block[level] = j;
        level++;
        j = 0;
        k++;
        if (level >= DG_UNET_MAX_LEVELS) break;
        continue;
      }
      const dg_tensor *cv = getf(&pr, "input_blocks.%d.0.in_layers.2.weight", k);
      if (!cv) break;
      c->block_out_channels[level] = (int)cv->shape[0];
      snprintf(p, sizeof p, "input_blocks.%d.1", k);
      int tl = 0;
      if (probe_attn(&pr, p, &tl, &linear, &ctx)) {
        c->down_cross_attn[level] = 1;
        ntl[level] = tl;
        any_attn = 1;
      }
      j++;
      k++;
    }
    c->layers_per_block[level] = j;
    n = j > 0 ? level + 1 : level;
    k = 0;
    for (int i = 0; i < n; i++) {
      int r = n - 1 - i;
      snprintf(p, sizeof p, "output_blocks.%d.1", k);
      int tl = 0;
      const dg_tensor *is_attn = getf(&pr, "output_blocks.%d.1.proj_in.weight", k);
      c->up_cross_attn[i] = is_attn && probe_attn(&pr, p, &tl, &linear, &ctx);
      if (c->up_cross_attn[i] && !ntl[r]) ntl[r] = tl;
      k += c->layers_per_block[r] + 1;
    }
  }
  if (n < 1) {
    dg_set_error(err, el, "unet weights: no down blocks found");
    return DG_STATUS_ERR_FORMAT;
  }
  c->n_levels = n;
  int mtl = 0;
  c->mid_block_cross_attn =
      probe_attn(&pr, pr.ldm ? "middle_block.1" : "mid_block.attentions.0", &mtl, &linear, &ctx);
  if (c->mid_block_cross_attn && !ntl[n - 1]) ntl[n - 1] = mtl;
  any_attn |= c->mid_block_cross_attn;
  c->use_linear_projection = linear;
  if (any_attn && ctx > 0) c->cross_attention_dim = ctx;
  for (int i = 0; i < n; i++) {
    int ch = c->block_out_channels[i];
    c->transformer_layers_per_block[i] = ntl[i] ? ntl[i] : 1;
    /* SD1.x: 8 heads (conv projections); SD2.x/SDXL: head dim 64 (linear). */
    if (linear && ch % 64 == 0) c->num_attention_heads[i] = ch / 64;
    else if (ch % 8 == 0) c->num_attention_heads[i] = 8;
    else c->num_attention_heads[i] = 1;
  }
  const dg_tensor *a1 =
      dg_weights_get(w, pr.ldm ? "label_emb.0.0.weight" : "add_embedding.linear_1.weight");
  c->addition_text_time = 0;
  if (a1 && a1->ndim == 2) {
    c->addition_text_time = 1;
    c->addition_time_embed_dim = 256;
    c->projection_class_embeddings_input_dim = (int)a1->shape[1];
  }
  return dg_unet_config_validate(c, err, el);
}
