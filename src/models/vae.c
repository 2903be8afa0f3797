/* AutoencoderKL encoder and decoder: see vae.h.
 *
 * Memory: a forward pass keeps the running activation in one of two "carry"
 * buffers sized for the largest block output (ping-pong), and every block's
 * temporaries are released with an arena mark.  At 512x512 with the SD VAE
 * the decoder holds two 256x512x512 carries (2 x 268 MB) plus at most
 * max(C_in, C_out) + C_out channels of temporaries at full resolution. */
#include "models/vae.h"

#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tensor/ops.h"
#include "base/status.h"

typedef struct dg__vae_res {
  int cin, cout;
  const dg_tensor *n1w, *n1b, *c1w, *c1b, *n2w, *n2b, *c2w, *c2b;
  const dg_tensor *scw, *scb; /* 1x1 conv_shortcut when cin != cout */
} dg__vae_res;

typedef struct dg__vae_attn {
  const dg_tensor *gnw, *gnb, *qw, *qb, *kw, *kb, *vw, *vb, *ow, *ob;
} dg__vae_attn;

typedef struct dg__vae_mid {
  dg__vae_res res[2];
  dg__vae_attn attn;
} dg__vae_mid;

struct dg_vae {
  dg_vae_config cfg;
  int has_enc, has_dec;
  /* encoder */
  const dg_tensor *e_in_w, *e_in_b;
  dg__vae_res *e_res; /* [n_levels * layers_per_block] */
  const dg_tensor *e_down_w[DG_VAE_MAX_LEVELS], *e_down_b[DG_VAE_MAX_LEVELS];
  dg__vae_mid e_mid;
  const dg_tensor *e_nout_w, *e_nout_b, *e_out_w, *e_out_b;
  const dg_tensor *quant_w, *quant_b;
  /* decoder */
  const dg_tensor *pquant_w, *pquant_b;
  const dg_tensor *d_in_w, *d_in_b;
  dg__vae_mid d_mid;
  dg__vae_res *d_res; /* [n_levels * (layers_per_block + 1)], diffusers up order */
  const dg_tensor *d_up_w[DG_VAE_MAX_LEVELS], *d_up_b[DG_VAE_MAX_LEVELS];
  const dg_tensor *d_nout_w, *d_nout_b, *d_out_w, *d_out_b;
};

/* ---- config --------------------------------------------------------------- */

dg_vae_config dg_vae_config_sd15(void) {
  dg_vae_config c;
  memset(&c, 0, sizeof c);
  c.in_channels = 3;
  c.out_channels = 3;
  c.latent_channels = 4;
  c.n_levels = 4;
  c.block_out_channels[0] = 128;
  c.block_out_channels[1] = 256;
  c.block_out_channels[2] = 512;
  c.block_out_channels[3] = 512;
  c.layers_per_block = 2;
  c.norm_num_groups = 32;
  c.eps = 1e-6f;
  c.scaling_factor = 0.18215f;
  c.mid_attention = 1;
  c.use_quant_conv = 1;
  return c;
}

dg_vae_config dg_vae_config_tiny(void) {
  dg_vae_config c = dg_vae_config_sd15();
  c.block_out_channels[0] = 32;
  c.block_out_channels[1] = 32;
  c.block_out_channels[2] = 32;
  c.block_out_channels[3] = 64;
  return c;
}

int dg_vae_factor(const dg_vae_config *c) { return 1 << (c->n_levels - 1); }

dg_status dg_vae_config_check(const dg_vae_config *c, char *err, size_t errlen) {
  if (c->n_levels < 1 || c->n_levels > DG_VAE_MAX_LEVELS) {
    dg_set_error(err, errlen, "vae: %d levels (1..%d supported)", c->n_levels, DG_VAE_MAX_LEVELS);
    return DG_STATUS_ERR_INVALID;
  }
  if (c->in_channels < 1 || c->out_channels < 1 || c->latent_channels < 1 ||
      c->layers_per_block < 1 || c->norm_num_groups < 1 || c->in_channels > 64 ||
      c->out_channels > 64 || c->latent_channels > 1024 || c->layers_per_block > 16) {
    dg_set_error(err, errlen, "vae: channel or layer count out of range");
    return DG_STATUS_ERR_INVALID;
  }
  for (int i = 0; i < c->n_levels; i++) {
    int ch = c->block_out_channels[i];
    if (ch < 1 || ch > 16384 || ch % c->norm_num_groups) {
      dg_set_error(err, errlen, "vae: block_out_channels[%d] = %d is not a positive multiple of %d groups",
             i, ch, c->norm_num_groups);
      return DG_STATUS_ERR_INVALID;
    }
  }
  if (!(c->eps > 0.0f) || !(c->scaling_factor > 0.0f)) {
    dg_set_error(err, errlen, "vae: eps and scaling_factor must be positive");
    return DG_STATUS_ERR_INVALID;
  }
  return DG_STATUS_OK;
}

static int jint(json_t *o, const char *key, int *out) {
  json_t *v = json_object_get(o, key);
  if (!v) return 0;
  if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > (1 << 20)) return -1;
  *out = (int)json_integer_value(v);
  return 1;
}

dg_status dg_vae_config_from_json(const char *json_text, dg_vae_config *c, char *err, size_t errlen) {
  json_error_t je;
  json_t *o = json_loads(json_text, 0, &je);
  dg_status st = DG_STATUS_ERR_FORMAT;
  if (!o || !json_is_object(o)) {
    dg_set_error(err, errlen, "vae config: bad JSON (line %d: %s)", je.line, je.text);
    json_decref(o);
    return DG_STATUS_ERR_FORMAT;
  }
  dg_vae_config r = dg_vae_config_sd15();
  if (jint(o, "in_channels", &r.in_channels) < 0 || jint(o, "out_channels", &r.out_channels) < 0 ||
      jint(o, "latent_channels", &r.latent_channels) < 0 ||
      jint(o, "layers_per_block", &r.layers_per_block) < 0 ||
      jint(o, "norm_num_groups", &r.norm_num_groups) < 0) {
    dg_set_error(err, errlen, "vae config: an integer field is invalid");
    goto out;
  }
  json_t *boc = json_object_get(o, "block_out_channels");
  if (boc) {
    if (!json_is_array(boc) || json_array_size(boc) < 1 || json_array_size(boc) > DG_VAE_MAX_LEVELS) {
      dg_set_error(err, errlen, "vae config: block_out_channels must be an array of 1..%d integers",
             DG_VAE_MAX_LEVELS);
      goto out;
    }
    r.n_levels = (int)json_array_size(boc);
    for (int i = 0; i < r.n_levels; i++) {
      json_t *v = json_array_get(boc, (size_t)i);
      if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 16384) {
        dg_set_error(err, errlen, "vae config: block_out_channels[%d] invalid", i);
        goto out;
      }
      r.block_out_channels[i] = (int)json_integer_value(v);
    }
  }
  json_t *sf = json_object_get(o, "scaling_factor");
  if (sf && json_is_number(sf)) r.scaling_factor = (float)json_number_value(sf);
  json_t *act = json_object_get(o, "act_fn");
  if (act && (!json_is_string(act) || strcmp(json_string_value(act), "silu") != 0)) {
    dg_set_error(err, errlen, "vae config: only act_fn \"silu\" is supported");
    st = DG_STATUS_ERR_UNSUPPORTED;
    goto out;
  }
  const char *const kinds[2] = {"down_block_types", "up_block_types"};
  const char *const want[2] = {"DownEncoderBlock2D", "UpDecoderBlock2D"};
  for (int k = 0; k < 2; k++) {
    json_t *a = json_object_get(o, kinds[k]);
    size_t i;
    json_t *v;
    json_array_foreach(a, i, v) {
      if (!json_is_string(v) || strcmp(json_string_value(v), want[k]) != 0) {
        dg_set_error(err, errlen, "vae config: %s must all be %s", kinds[k], want[k]);
        st = DG_STATUS_ERR_UNSUPPORTED;
        goto out;
      }
    }
  }
  json_t *ma = json_object_get(o, "mid_block_add_attention");
  if (ma && json_is_boolean(ma)) r.mid_attention = json_is_true(ma);
  json_t *uq = json_object_get(o, "use_quant_conv");
  if (uq && json_is_boolean(uq)) r.use_quant_conv = json_is_true(uq);
  st = dg_vae_config_check(&r, err, errlen);
  if (st == DG_STATUS_OK) *c = r;
out:
  json_decref(o);
  return st;
}

static const dg_tensor *wget(const dg_weights *w, const char *fmt, ...) {
  char name[192];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(name, sizeof name, fmt, ap);
  va_end(ap);
  return dg_weights_get(w, name);
}

dg_status dg_vae_config_detect(const dg_weights *w, dg_vae_config *c, char *err, size_t errlen) {
  dg_vae_config r = dg_vae_config_sd15();
  int n = 0;
  while (n < DG_VAE_MAX_LEVELS && (wget(w, "encoder.down_blocks.%d.resnets.0.conv1.weight", n) ||
                                   wget(w, "decoder.up_blocks.%d.resnets.0.conv1.weight", n)))
    n++;
  if (n == 0) {
    dg_set_error(err, errlen, "vae: no encoder.down_blocks / decoder.up_blocks tensors");
    return DG_STATUS_ERR_FORMAT;
  }
  r.n_levels = n;
  for (int i = 0; i < n; i++) {
    const dg_tensor *t = wget(w, "encoder.down_blocks.%d.resnets.0.conv1.weight", i);
    if (!t) t = wget(w, "decoder.up_blocks.%d.resnets.0.conv1.weight", n - 1 - i);
    if (!t || t->ndim != 4) {
      dg_set_error(err, errlen, "vae: cannot see the channels of level %d", i);
      return DG_STATUS_ERR_FORMAT;
    }
    r.block_out_channels[i] = (int)t->shape[0];
  }
  int lpb = 0;
  if (wget(w, "encoder.down_blocks.0.resnets.0.conv1.weight")) {
    while (lpb < 16 && wget(w, "encoder.down_blocks.0.resnets.%d.conv1.weight", lpb)) lpb++;
  } else {
    while (lpb < 17 && wget(w, "decoder.up_blocks.0.resnets.%d.conv1.weight", lpb)) lpb++;
    lpb--;
  }
  r.layers_per_block = lpb;
  const dg_tensor *t;
  if ((t = dg_weights_get(w, "encoder.conv_in.weight")) && t->ndim == 4)
    r.in_channels = (int)t->shape[1];
  if ((t = dg_weights_get(w, "decoder.conv_out.weight")) && t->ndim == 4)
    r.out_channels = (int)t->shape[0];
  if ((t = dg_weights_get(w, "decoder.conv_in.weight")) && t->ndim == 4)
    r.latent_channels = (int)t->shape[1];
  else if ((t = dg_weights_get(w, "encoder.conv_out.weight")) && t->ndim == 4)
    r.latent_channels = (int)t->shape[0] / 2;
  r.mid_attention = dg_weights_get(w, "decoder.mid_block.attentions.0.to_q.weight") ||
                    dg_weights_get(w, "encoder.mid_block.attentions.0.to_q.weight");
  r.use_quant_conv = dg_weights_get(w, "quant_conv.weight") || dg_weights_get(w, "post_quant_conv.weight");
  /* GroupNorm groups are not visible in the shapes: 32 as every SD VAE, or
   * the largest divisor of the channel counts below it. */
  int g = 32;
  for (; g > 1; g--) {
    int ok = 1;
    for (int i = 0; i < n; i++) ok &= r.block_out_channels[i] % g == 0;
    if (ok) break;
  }
  r.norm_num_groups = g;
  dg_status st = dg_vae_config_check(&r, err, errlen);
  if (st == DG_STATUS_OK) *c = r;
  return st;
}

int64_t dg_vae_latent_size(const dg_vae_config *c, int64_t pixels) {
  int64_t s = pixels;
  for (int i = 0; i < c->n_levels - 1; i++) {
    if (s < 2) return 0;
    s = (s + 1 - 3) / 2 + 1; /* pad (0, 1), kernel 3, stride 2 */
  }
  return s;
}

/* ---- parameter names ------------------------------------------------------ */

typedef struct dg__vae_names {
  dg_vae_param_fn cb;
  void *ud;
  int stop;
} dg__vae_names;

static void pemit(dg__vae_names *nm, int ndim, int64_t d0, int64_t d1, int64_t k, const char *fmt, ...) {
  if (nm->stop) return;
  char name[192];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(name, sizeof name, fmt, ap);
  va_end(ap);
  int64_t shape[DG_MAX_DIMS] = {d0, ndim > 1 ? d1 : 1, ndim > 2 ? k : 1, ndim > 3 ? k : 1};
  nm->stop = nm->cb(nm->ud, name, ndim, shape);
}

static void pconv(dg__vae_names *nm, const char *base, int cout, int cin, int k) {
  pemit(nm, 4, cout, cin, k, "%s.weight", base);
  pemit(nm, 1, cout, 0, 0, "%s.bias", base);
}

static void pnorm(dg__vae_names *nm, const char *base, int c) {
  pemit(nm, 1, c, 0, 0, "%s.weight", base);
  pemit(nm, 1, c, 0, 0, "%s.bias", base);
}

static void pres(dg__vae_names *nm, const char *base, int cin, int cout) {
  char b[192];
  snprintf(b, sizeof b, "%s.norm1", base);
  pnorm(nm, b, cin);
  snprintf(b, sizeof b, "%s.conv1", base);
  pconv(nm, b, cout, cin, 3);
  snprintf(b, sizeof b, "%s.norm2", base);
  pnorm(nm, b, cout);
  snprintf(b, sizeof b, "%s.conv2", base);
  pconv(nm, b, cout, cout, 3);
  if (cin != cout) {
    snprintf(b, sizeof b, "%s.conv_shortcut", base);
    pconv(nm, b, cout, cin, 1);
  }
}

/* UNetMidBlock2D registers `attentions` before `resnets`. */
static void pmid(dg__vae_names *nm, const char *part, int c, int attn) {
  char b[192];
  if (attn) {
    static const char *const lin[] = {"to_q", "to_k", "to_v", "to_out.0"};
    snprintf(b, sizeof b, "%s.mid_block.attentions.0.group_norm", part);
    pnorm(nm, b, c);
    for (int i = 0; i < 4; i++) {
      pemit(nm, 2, c, c, 0, "%s.mid_block.attentions.0.%s.weight", part, lin[i]);
      pemit(nm, 1, c, 0, 0, "%s.mid_block.attentions.0.%s.bias", part, lin[i]);
    }
  }
  for (int r = 0; r < 2; r++) {
    snprintf(b, sizeof b, "%s.mid_block.resnets.%d", part, r);
    pres(nm, b, c, c);
  }
}

int dg_vae_enumerate(const dg_vae_config *c, dg_vae_param_fn cb, void *ud) {
  if (dg_vae_config_check(c, NULL, 0) != DG_STATUS_OK) return -1;
  dg__vae_names nm = {cb, ud, 0};
  const int n = c->n_levels, *boc = c->block_out_channels, Z = c->latent_channels;
  char b[192];
  /* encoder */
  pconv(&nm, "encoder.conv_in", boc[0], c->in_channels, 3);
  for (int i = 0; i < n; i++) {
    int cin = i == 0 ? boc[0] : boc[i - 1];
    for (int j = 0; j < c->layers_per_block; j++) {
      snprintf(b, sizeof b, "encoder.down_blocks.%d.resnets.%d", i, j);
      pres(&nm, b, j == 0 ? cin : boc[i], boc[i]);
    }
    if (i < n - 1) {
      snprintf(b, sizeof b, "encoder.down_blocks.%d.downsamplers.0.conv", i);
      pconv(&nm, b, boc[i], boc[i], 3);
    }
  }
  pmid(&nm, "encoder", boc[n - 1], c->mid_attention);
  pnorm(&nm, "encoder.conv_norm_out", boc[n - 1]);
  pconv(&nm, "encoder.conv_out", 2 * Z, boc[n - 1], 3);
  /* decoder: conv_in, up_blocks, mid_block (registered after up_blocks), out */
  pconv(&nm, "decoder.conv_in", boc[n - 1], Z, 3);
  for (int i = 0; i < n; i++) {
    int out = boc[n - 1 - i], prev = i == 0 ? boc[n - 1] : boc[n - i];
    for (int j = 0; j <= c->layers_per_block; j++) {
      snprintf(b, sizeof b, "decoder.up_blocks.%d.resnets.%d", i, j);
      pres(&nm, b, j == 0 ? prev : out, out);
    }
    if (i < n - 1) {
      snprintf(b, sizeof b, "decoder.up_blocks.%d.upsamplers.0.conv", i);
      pconv(&nm, b, out, out, 3);
    }
  }
  pmid(&nm, "decoder", boc[n - 1], c->mid_attention);
  pnorm(&nm, "decoder.conv_norm_out", boc[0]);
  pconv(&nm, "decoder.conv_out", c->out_channels, boc[0], 3);
  if (c->use_quant_conv) {
    pconv(&nm, "quant_conv", 2 * Z, 2 * Z, 1);
    pconv(&nm, "post_quant_conv", Z, Z, 1);
  }
  return nm.stop;
}

/* ---- LDM <-> diffusers names ---------------------------------------------- */

/* '#' matches a decimal number; rev marks the decoder's reversed level index. */
static const struct {
  const char *ldm, *diff;
  int rev;
} vae_rules[] = {
    {"encoder.down.#.block.#.", "encoder.down_blocks.#.resnets.#.", 0},
    {"encoder.down.#.downsample.", "encoder.down_blocks.#.downsamplers.0.", 0},
    {"decoder.up.#.block.#.", "decoder.up_blocks.#.resnets.#.", 1},
    {"decoder.up.#.upsample.", "decoder.up_blocks.#.upsamplers.0.", 1},
    {"encoder.mid.block_1.", "encoder.mid_block.resnets.0.", 0},
    {"encoder.mid.block_2.", "encoder.mid_block.resnets.1.", 0},
    {"decoder.mid.block_1.", "decoder.mid_block.resnets.0.", 0},
    {"decoder.mid.block_2.", "decoder.mid_block.resnets.1.", 0},
    {"encoder.mid.attn_1.norm.", "encoder.mid_block.attentions.0.group_norm.", 0},
    {"encoder.mid.attn_1.q.", "encoder.mid_block.attentions.0.to_q.", 0},
    {"encoder.mid.attn_1.k.", "encoder.mid_block.attentions.0.to_k.", 0},
    {"encoder.mid.attn_1.v.", "encoder.mid_block.attentions.0.to_v.", 0},
    {"encoder.mid.attn_1.proj_out.", "encoder.mid_block.attentions.0.to_out.0.", 0},
    {"decoder.mid.attn_1.norm.", "decoder.mid_block.attentions.0.group_norm.", 0},
    {"decoder.mid.attn_1.q.", "decoder.mid_block.attentions.0.to_q.", 0},
    {"decoder.mid.attn_1.k.", "decoder.mid_block.attentions.0.to_k.", 0},
    {"decoder.mid.attn_1.v.", "decoder.mid_block.attentions.0.to_v.", 0},
    {"decoder.mid.attn_1.proj_out.", "decoder.mid_block.attentions.0.to_out.0.", 0},
    {"encoder.norm_out.", "encoder.conv_norm_out.", 0},
    {"decoder.norm_out.", "decoder.conv_norm_out.", 0},
    {"encoder.conv_in.", "encoder.conv_in.", 0},
    {"encoder.conv_out.", "encoder.conv_out.", 0},
    {"decoder.conv_in.", "decoder.conv_in.", 0},
    {"decoder.conv_out.", "decoder.conv_out.", 0},
    {"quant_conv.", "quant_conv.", 0},
    {"post_quant_conv.", "post_quant_conv.", 0},
};

/* Match `name` against pattern; on success return the length consumed and
 * the captured numbers. */
static size_t pat_match(const char *pat, const char *name, long *nums, int *nnum) {
  const char *s = name;
  *nnum = 0;
  for (const char *p = pat; *p; p++) {
    if (*p == '#') {
      if (*s < '0' || *s > '9') return 0;
      long v = 0;
      while (*s >= '0' && *s <= '9') {
        if (v > 100000) return 0;
        v = v * 10 + (*s++ - '0');
      }
      if (*nnum >= 2) return 0;
      nums[(*nnum)++] = v;
    } else if (*s++ != *p) {
      return 0;
    }
  }
  return (size_t)(s - name);
}

static int pat_write(const char *pat, const long *nums, const char *suffix, char *out, size_t n) {
  size_t o = 0;
  int k = 0;
  for (const char *p = pat; *p; p++) {
    if (*p == '#') {
      int w = snprintf(out + o, o < n ? n - o : 0, "%ld", nums[k++]);
      if (w < 0) return 0;
      o += (size_t)w;
    } else {
      if (o + 1 >= n) return 0;
      out[o++] = *p;
    }
  }
  int w = snprintf(out + o, o < n ? n - o : 0, "%s", suffix);
  return w >= 0 && o + (size_t)w < n;
}

static int vae_map(const char *name, char *out, size_t n, int n_levels, int to_diffusers) {
  for (size_t r = 0; r < sizeof vae_rules / sizeof vae_rules[0]; r++) {
    const char *from = to_diffusers ? vae_rules[r].ldm : vae_rules[r].diff;
    const char *to = to_diffusers ? vae_rules[r].diff : vae_rules[r].ldm;
    long nums[2];
    int nnum;
    size_t used = pat_match(from, name, nums, &nnum);
    if (!used) continue;
    if (vae_rules[r].rev) {
      if (nums[0] >= n_levels) return 0;
      nums[0] = n_levels - 1 - nums[0];
    }
    const char *suffix = name + used;
    char buf[192];
    if (to_diffusers && strncmp(suffix, "nin_shortcut.", 13) == 0) {
      snprintf(buf, sizeof buf, "conv_shortcut.%s", suffix + 13);
      suffix = buf;
    } else if (!to_diffusers && strncmp(suffix, "conv_shortcut.", 14) == 0) {
      snprintf(buf, sizeof buf, "nin_shortcut.%s", suffix + 14);
      suffix = buf;
    }
    return pat_write(to, nums, suffix, out, n);
  }
  return 0;
}

int dg_vae_ldm_key_map(const char *name, char *out, size_t n, void *ud) {
  int levels = ud ? *(const int *)ud : 4;
  return vae_map(name, out, n, levels, 1);
}

int dg_vae_diffusers_to_ldm(const char *name, char *out, size_t n, void *ud) {
  int levels = ud ? *(const int *)ud : 4;
  return vae_map(name, out, n, levels, 0);
}

/* ---- binding -------------------------------------------------------------- */

typedef struct dg__vbind {
  const dg_weights *w;
  char *err;
  size_t errlen;
  int failed;
} dg__vbind;

static const dg_tensor *vneed(dg__vbind *b, int ndim, int64_t d0, int64_t d1, int64_t k,
                              const char *fmt, ...) {
  if (b->failed) return NULL;
  char name[192];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(name, sizeof name, fmt, ap);
  va_end(ap);
  int64_t shape[4] = {d0, d1, k, k};
  const dg_tensor *t = dg_weights_need(b->w, name, ndim, shape, b->err, b->errlen);
  if (!t) b->failed = 1;
  return t;
}

/* Attention projections: Linear [C, C] or 1x1 conv [C, C, 1, 1]. */
static const dg_tensor *vneed_proj(dg__vbind *b, int64_t c, const char *fmt, const char *part,
                                   const char *lin) {
  if (b->failed) return NULL;
  char name[192];
  snprintf(name, sizeof name, fmt, part, lin);
  const dg_tensor *t = dg_weights_get(b->w, name);
  if (t && t->ndim == 4) {
    int64_t shape[4] = {c, c, 1, 1};
    t = dg_weights_need(b->w, name, 4, shape, b->err, b->errlen);
  } else {
    int64_t shape[2] = {c, c};
    t = dg_weights_need(b->w, name, 2, shape, b->err, b->errlen);
  }
  if (!t) b->failed = 1;
  return t;
}

static void bind_res(dg__vbind *b, dg__vae_res *r, const char *base, int cin, int cout) {
  r->cin = cin;
  r->cout = cout;
  r->n1w = vneed(b, 1, cin, 0, 0, "%s.norm1.weight", base);
  r->n1b = vneed(b, 1, cin, 0, 0, "%s.norm1.bias", base);
  r->c1w = vneed(b, 4, cout, cin, 3, "%s.conv1.weight", base);
  r->c1b = vneed(b, 1, cout, 0, 0, "%s.conv1.bias", base);
  r->n2w = vneed(b, 1, cout, 0, 0, "%s.norm2.weight", base);
  r->n2b = vneed(b, 1, cout, 0, 0, "%s.norm2.bias", base);
  r->c2w = vneed(b, 4, cout, cout, 3, "%s.conv2.weight", base);
  r->c2b = vneed(b, 1, cout, 0, 0, "%s.conv2.bias", base);
  if (cin != cout) {
    r->scw = vneed(b, 4, cout, cin, 1, "%s.conv_shortcut.weight", base);
    r->scb = vneed(b, 1, cout, 0, 0, "%s.conv_shortcut.bias", base);
  }
}

static void bind_mid(dg__vbind *b, dg__vae_mid *m, const char *part, int c, int attn) {
  char base[96];
  for (int r = 0; r < 2; r++) {
    snprintf(base, sizeof base, "%s.mid_block.resnets.%d", part, r);
    bind_res(b, &m->res[r], base, c, c);
  }
  if (!attn) return;
  dg__vae_attn *a = &m->attn;
  const char *f = "%s.mid_block.attentions.0.%s";
  a->gnw = vneed(b, 1, c, 0, 0, "%s.mid_block.attentions.0.group_norm.weight", part);
  a->gnb = vneed(b, 1, c, 0, 0, "%s.mid_block.attentions.0.group_norm.bias", part);
  a->qw = vneed_proj(b, c, f, part, "to_q.weight");
  a->kw = vneed_proj(b, c, f, part, "to_k.weight");
  a->vw = vneed_proj(b, c, f, part, "to_v.weight");
  a->ow = vneed_proj(b, c, f, part, "to_out.0.weight");
  a->qb = vneed(b, 1, c, 0, 0, "%s.mid_block.attentions.0.to_q.bias", part);
  a->kb = vneed(b, 1, c, 0, 0, "%s.mid_block.attentions.0.to_k.bias", part);
  a->vb = vneed(b, 1, c, 0, 0, "%s.mid_block.attentions.0.to_v.bias", part);
  a->ob = vneed(b, 1, c, 0, 0, "%s.mid_block.attentions.0.to_out.0.bias", part);
}

dg_status dg_vae_new(const dg_vae_config *c, const dg_weights *w, int want_encoder,
                     int want_decoder, dg_vae **out, char *err, size_t errlen) {
  *out = NULL;
  dg_status st = dg_vae_config_check(c, err, errlen);
  if (st != DG_STATUS_OK) return st;
  if (!want_encoder && !want_decoder) {
    dg_set_error(err, errlen, "vae: neither encoder nor decoder requested");
    return DG_STATUS_ERR_INVALID;
  }
  dg_vae *v = calloc(1, sizeof *v);
  if (!v) return DG_STATUS_ERR_NOMEM;
  v->cfg = *c;
  const int n = c->n_levels, lpb = c->layers_per_block, *boc = c->block_out_channels;
  const int Z = c->latent_channels;
  v->e_res = calloc((size_t)(n * lpb), sizeof *v->e_res);
  v->d_res = calloc((size_t)(n * (lpb + 1)), sizeof *v->d_res);
  if (!v->e_res || !v->d_res) {
    dg_vae_free(v);
    return DG_STATUS_ERR_NOMEM;
  }
  dg__vbind b = {w, err, errlen, 0};
  char base[96];
  if (want_encoder) {
    v->has_enc = 1;
    v->e_in_w = vneed(&b, 4, boc[0], c->in_channels, 3, "encoder.conv_in.weight");
    v->e_in_b = vneed(&b, 1, boc[0], 0, 0, "encoder.conv_in.bias");
    for (int i = 0; i < n; i++) {
      int cin = i == 0 ? boc[0] : boc[i - 1];
      for (int j = 0; j < lpb; j++) {
        snprintf(base, sizeof base, "encoder.down_blocks.%d.resnets.%d", i, j);
        bind_res(&b, &v->e_res[i * lpb + j], base, j == 0 ? cin : boc[i], boc[i]);
      }
      if (i < n - 1) {
        v->e_down_w[i] = vneed(&b, 4, boc[i], boc[i], 3, "encoder.down_blocks.%d.downsamplers.0.conv.weight", i);
        v->e_down_b[i] = vneed(&b, 1, boc[i], 0, 0, "encoder.down_blocks.%d.downsamplers.0.conv.bias", i);
      }
    }
    bind_mid(&b, &v->e_mid, "encoder", boc[n - 1], c->mid_attention);
    v->e_nout_w = vneed(&b, 1, boc[n - 1], 0, 0, "encoder.conv_norm_out.weight");
    v->e_nout_b = vneed(&b, 1, boc[n - 1], 0, 0, "encoder.conv_norm_out.bias");
    v->e_out_w = vneed(&b, 4, 2 * Z, boc[n - 1], 3, "encoder.conv_out.weight");
    v->e_out_b = vneed(&b, 1, 2 * Z, 0, 0, "encoder.conv_out.bias");
    if (c->use_quant_conv) {
      v->quant_w = vneed(&b, 4, 2 * Z, 2 * Z, 1, "quant_conv.weight");
      v->quant_b = vneed(&b, 1, 2 * Z, 0, 0, "quant_conv.bias");
    }
  }
  if (want_decoder) {
    v->has_dec = 1;
    if (c->use_quant_conv) {
      v->pquant_w = vneed(&b, 4, Z, Z, 1, "post_quant_conv.weight");
      v->pquant_b = vneed(&b, 1, Z, 0, 0, "post_quant_conv.bias");
    }
    v->d_in_w = vneed(&b, 4, boc[n - 1], Z, 3, "decoder.conv_in.weight");
    v->d_in_b = vneed(&b, 1, boc[n - 1], 0, 0, "decoder.conv_in.bias");
    bind_mid(&b, &v->d_mid, "decoder", boc[n - 1], c->mid_attention);
    for (int i = 0; i < n; i++) {
      int cout = boc[n - 1 - i], prev = i == 0 ? boc[n - 1] : boc[n - i];
      for (int j = 0; j <= lpb; j++) {
        snprintf(base, sizeof base, "decoder.up_blocks.%d.resnets.%d", i, j);
        bind_res(&b, &v->d_res[i * (lpb + 1) + j], base, j == 0 ? prev : cout, cout);
      }
      if (i < n - 1) {
        v->d_up_w[i] = vneed(&b, 4, cout, cout, 3, "decoder.up_blocks.%d.upsamplers.0.conv.weight", i);
        v->d_up_b[i] = vneed(&b, 1, cout, 0, 0, "decoder.up_blocks.%d.upsamplers.0.conv.bias", i);
      }
    }
    v->d_nout_w = vneed(&b, 1, boc[0], 0, 0, "decoder.conv_norm_out.weight");
    v->d_nout_b = vneed(&b, 1, boc[0], 0, 0, "decoder.conv_norm_out.bias");
    v->d_out_w = vneed(&b, 4, c->out_channels, boc[0], 3, "decoder.conv_out.weight");
    v->d_out_b = vneed(&b, 1, c->out_channels, 0, 0, "decoder.conv_out.bias");
  }
  if (b.failed) {
    dg_vae_free(v);
    return DG_STATUS_ERR_FORMAT;
  }
  *out = v;
  return DG_STATUS_OK;
}

void dg_vae_free(dg_vae *v) {
  if (!v) return;
  free(v->e_res);
  free(v->d_res);
  free(v);
}

const dg_vae_config *dg_vae_get_config(const dg_vae *v) { return &v->cfg; }

/* ---- forward -------------------------------------------------------------- */

typedef struct dg__vctx {
  const dg_vae *v;
  dg_engine *e;
  dg_arena *arena;
  const dg_vae_hooks *hooks;
  float *carry[2]; /* ping-pong buffers for block outputs */
  int cur;         /* carry holding the current activation */
  dg_tensor x;     /* current activation (view into carry[cur]) */
} dg__vctx;

#define TRY(expr)                     \
  do {                                \
    st = (expr);                      \
    if (st != DG_STATUS_OK) goto out; \
  } while (0)

static dg_tensor *tmp4(dg_arena *a, int64_t n, int64_t c, int64_t h, int64_t w) {
  int64_t s[4] = {n, c, h, w};
  return dg_arena_tensor(a, DG_DTYPE_F32, 4, s);
}

static void probe(dg__vctx *cx, const char *name, const dg_tensor *t) {
  if (cx->hooks && cx->hooks->debug) cx->hooks->debug(cx->hooks->debug_ud, name, t);
}

/* The other carry, shaped (N, C, H, W): where the next block writes. */
static dg_tensor next_out(dg__vctx *cx, int64_t c, int64_t h, int64_t w) {
  int64_t s[4] = {cx->x.shape[0], c, h, w};
  return dg_tensor_make(DG_DTYPE_F32, 4, s, cx->carry[cx->cur ^ 1]);
}

static void advance(dg__vctx *cx, const dg_tensor *y) {
  cx->cur ^= 1;
  cx->x = *y;
}

/* ResnetBlock2D without time embedding:
 * y = shortcut(x) + conv2(silu(gn2(conv1(silu(gn1(x)))))). */
static dg_status resnet(dg__vctx *cx, const dg__vae_res *r) {
  dg_status st = DG_STATUS_OK;
  const dg_vae_config *c = &cx->v->cfg;
  const dg_tensor *x = &cx->x;
  const int64_t N = x->shape[0], H = x->shape[2], W = x->shape[3];
  dg_arena_mark mark = dg_arena_get_mark(cx->arena);
  dg_tensor y = next_out(cx, r->cout, H, W); /* (N, Cout, H, W) */
  int64_t cmax = r->cin > r->cout ? r->cin : r->cout;
  dg_tensor *t1 = tmp4(cx->arena, N, cmax, H, W);     /* (N, max(Cin, Cout), H, W) */
  dg_tensor *t2 = tmp4(cx->arena, N, r->cout, H, W);  /* (N, Cout, H, W) */
  if (!t1 || !t2) {
    st = DG_STATUS_ERR_NOMEM;
    goto out;
  }
  dg_tensor h1 = dg_tensor_make(DG_DTYPE_F32, 4, x->shape, t1->data);  /* (N, Cin, H, W) */
  dg_tensor h2 = dg_tensor_make(DG_DTYPE_F32, 4, t2->shape, t1->data); /* (N, Cout, H, W) */
  TRY(dg_group_norm(cx->e, &h1, x, c->norm_num_groups, c->eps, r->n1w, r->n1b, 1));
  TRY(dg_conv2d(cx->e, t2, &h1, r->c1w, r->c1b, 1, 1));
  TRY(dg_group_norm(cx->e, &h2, t2, c->norm_num_groups, c->eps, r->n2w, r->n2b, 1));
  TRY(dg_conv2d(cx->e, &y, &h2, r->c2w, r->c2b, 1, 1));
  if (r->scw) {
    TRY(dg_conv2d(cx->e, t2, x, r->scw, r->scb, 1, 0));
    TRY(dg_add(cx->e, &y, &y, t2)); /* x + h: addition commutes exactly */
  } else {
    TRY(dg_add(cx->e, &y, &y, x));
  }
  advance(cx, &y);
out:
  dg_arena_reset(cx->arena, mark);
  return st;
}

/* Mid-block single-head self-attention with residual. */
static dg_status attention(dg__vctx *cx, const dg__vae_attn *a) {
  dg_status st = DG_STATUS_OK;
  const dg_vae_config *c = &cx->v->cfg;
  const dg_tensor *x = &cx->x;
  const int64_t N = x->shape[0], C = x->shape[1], H = x->shape[2], W = x->shape[3];
  dg_arena_mark mark = dg_arena_get_mark(cx->arena);
  dg_tensor y = next_out(cx, C, H, W); /* (N, C, H, W) */
  int64_t ts[3] = {N, H * W, C};
  dg_tensor *hn = tmp4(cx->arena, N, C, H, W);                  /* (N, C, H, W) */
  dg_tensor *tok = dg_arena_tensor(cx->arena, DG_DTYPE_F32, 3, ts); /* (N, HW, C) */
  dg_tensor *q = dg_arena_tensor(cx->arena, DG_DTYPE_F32, 3, ts);   /* (N, HW, C) */
  dg_tensor *k = dg_arena_tensor(cx->arena, DG_DTYPE_F32, 3, ts);   /* (N, HW, C) */
  dg_tensor *v = dg_arena_tensor(cx->arena, DG_DTYPE_F32, 3, ts);   /* (N, HW, C) */
  if (!hn || !tok || !q || !k || !v) {
    st = DG_STATUS_ERR_NOMEM;
    goto out;
  }
  TRY(dg_group_norm(cx->e, hn, x, c->norm_num_groups, c->eps, a->gnw, a->gnb, 0));
  TRY(dg_nchw_to_nlc(cx->e, tok, hn));
  TRY(dg_linear(cx->e, q, tok, a->qw, a->qb));
  TRY(dg_linear(cx->e, k, tok, a->kw, a->kb));
  TRY(dg_linear(cx->e, v, tok, a->vw, a->vb));
  TRY(dg_attention(cx->e, tok, q, k, v, 1, 0, 0.0f)); /* (N, HW, C), scale 1/sqrt(C) */
  TRY(dg_linear(cx->e, q, tok, a->ow, a->ob));
  TRY(dg_nlc_to_nchw(cx->e, &y, q));
  TRY(dg_add(cx->e, &y, &y, x));
  advance(cx, &y);
out:
  dg_arena_reset(cx->arena, mark);
  return st;
}

static dg_status mid_block(dg__vctx *cx, const dg__vae_mid *m, const char *part) {
  dg_status st;
  char name[64];
  if ((st = resnet(cx, &m->res[0])) != DG_STATUS_OK) return st;
  if (cx->v->cfg.mid_attention) {
    if ((st = attention(cx, &m->attn)) != DG_STATUS_OK) return st;
    snprintf(name, sizeof name, "%s.mid_block.attentions.0", part);
    probe(cx, name, &cx->x);
  }
  if ((st = resnet(cx, &m->res[1])) != DG_STATUS_OK) return st;
  snprintf(name, sizeof name, "%s.mid_block", part);
  probe(cx, name, &cx->x);
  return DG_STATUS_OK;
}

typedef struct dg__pad_arg {
  const float *x;
  float *y;
  int64_t H, W;
} dg__pad_arg;

/* F.pad(x, (0, 1, 0, 1)): one zero column on the right, one zero row below. */
static void pad_rows(void *arg, int64_t begin, int64_t end, int thread_index) {
  (void)thread_index;
  const dg__pad_arg *p = arg;
  const int64_t H = p->H, W = p->W;
  for (int64_t pl = begin; pl < end; pl++) {
    const float *src = p->x + pl * H * W;
    float *dst = p->y + pl * (H + 1) * (W + 1);
    for (int64_t i = 0; i < H; i++) {
      memcpy(dst + i * (W + 1), src + i * W, (size_t)W * sizeof(float));
      dst[i * (W + 1) + W] = 0.0f;
    }
    memset(dst + H * (W + 1), 0, (size_t)(W + 1) * sizeof(float));
  }
}

/* Downsample2D of the VAE encoder: pad (0, 1, 0, 1), conv 3x3 stride 2. */
static dg_status downsample(dg__vctx *cx, const dg_tensor *w, const dg_tensor *b) {
  dg_status st = DG_STATUS_OK;
  const dg_tensor *x = &cx->x;
  const int64_t N = x->shape[0], C = x->shape[1], H = x->shape[2], W = x->shape[3];
  dg_arena_mark mark = dg_arena_get_mark(cx->arena);
  dg_tensor y = next_out(cx, C, (H - 2) / 2 + 1, (W - 2) / 2 + 1); /* (N, C, H/2, W/2) */
  dg_tensor *xp = tmp4(cx->arena, N, C, H + 1, W + 1);            /* (N, C, H+1, W+1) */
  if (!xp) {
    st = DG_STATUS_ERR_NOMEM;
    goto out;
  }
  dg__pad_arg pa = {x->data, xp->data, H, W};
  dg_engine_parallel(cx->e, N * C, pad_rows, &pa);
  TRY(dg_conv2d(cx->e, &y, xp, w, b, 2, 0));
  advance(cx, &y);
out:
  dg_arena_reset(cx->arena, mark);
  return st;
}

/* Upsample2D: nearest 2x, conv 3x3. */
static dg_status upsample(dg__vctx *cx, const dg_tensor *w, const dg_tensor *b) {
  dg_status st = DG_STATUS_OK;
  const dg_tensor *x = &cx->x;
  const int64_t N = x->shape[0], C = x->shape[1], H = x->shape[2], W = x->shape[3];
  dg_arena_mark mark = dg_arena_get_mark(cx->arena);
  dg_tensor y = next_out(cx, C, 2 * H, 2 * W);         /* (N, C, 2H, 2W) */
  dg_tensor *up = tmp4(cx->arena, N, C, 2 * H, 2 * W); /* (N, C, 2H, 2W) */
  if (!up) {
    st = DG_STATUS_ERR_NOMEM;
    goto out;
  }
  TRY(dg_upsample_nearest2x(cx->e, up, x));
  TRY(dg_conv2d(cx->e, &y, up, w, b, 1, 1));
  advance(cx, &y);
out:
  dg_arena_reset(cx->arena, mark);
  return st;
}

/* conv_norm_out + SiLU + conv_out into `y` (caller's tensor or a carry). */
static dg_status norm_out_conv(dg__vctx *cx, const dg_tensor *nw, const dg_tensor *nb,
                               const dg_tensor *cw, const dg_tensor *cb, dg_tensor *y) {
  dg_status st = DG_STATUS_OK;
  const dg_vae_config *c = &cx->v->cfg;
  dg_arena_mark mark = dg_arena_get_mark(cx->arena);
  const dg_tensor *x = &cx->x;
  dg_tensor *h = tmp4(cx->arena, x->shape[0], x->shape[1], x->shape[2], x->shape[3]); /* like x */
  if (!h) {
    st = DG_STATUS_ERR_NOMEM;
    goto out;
  }
  TRY(dg_group_norm(cx->e, h, x, c->norm_num_groups, c->eps, nw, nb, 1));
  TRY(dg_conv2d(cx->e, y, h, cw, cb, 1, 1));
out:
  dg_arena_reset(cx->arena, mark);
  return st;
}

static int is_f32_4d(const dg_tensor *t) {
  return t && t->dtype == DG_DTYPE_F32 && t->ndim == 4 && t->data;
}

static dg_status alloc_carries(dg__vctx *cx, int64_t elems) {
  for (int i = 0; i < 2; i++) {
    cx->carry[i] = dg_arena_alloc(cx->arena, (size_t)elems * sizeof(float));
    if (!cx->carry[i]) return DG_STATUS_ERR_NOMEM;
  }
  return DG_STATUS_OK;
}

#define VAE_MAX_PIXELS ((int64_t)1 << 26) /* 8192 x 8192 */

dg_status dg_vae_encode(const dg_vae *v, dg_engine *e, dg_arena *arena, const dg_tensor *image,
                        dg_tensor *moments, const dg_vae_hooks *hooks) {
  const dg_vae_config *c = &v->cfg;
  if (!v->has_enc) return DG_STATUS_ERR_UNSUPPORTED;
  if (!is_f32_4d(image) || image->shape[1] != c->in_channels || !is_f32_4d(moments))
    return DG_STATUS_ERR_SHAPE;
  const int64_t N = image->shape[0], H = image->shape[2], W = image->shape[3];
  const int64_t h = dg_vae_latent_size(c, H), w = dg_vae_latent_size(c, W);
  if (N < 1 || N > 64 || h < 1 || w < 1 || H * W > VAE_MAX_PIXELS) return DG_STATUS_ERR_SHAPE;
  if (moments->shape[0] != N || moments->shape[1] != 2 * c->latent_channels ||
      moments->shape[2] != h || moments->shape[3] != w)
    return DG_STATUS_ERR_SHAPE;

  const int n = c->n_levels, lpb = c->layers_per_block, *boc = c->block_out_channels;
  /* Largest block output: level i holds boc[i] channels at its resolution. */
  int64_t maxe = 0, rh = H, rw = W;
  for (int i = 0; i < n; i++) {
    int64_t in = (i == 0 ? boc[0] : boc[i - 1]) > boc[i] ? (i == 0 ? boc[0] : boc[i - 1]) : boc[i];
    if (in * rh * rw > maxe) maxe = in * rh * rw;
    if (i < n - 1) {
      rh = (rh - 2) / 2 + 1;
      rw = (rw - 2) / 2 + 1;
    }
  }
  if (2 * c->latent_channels * h * w > maxe) maxe = 2 * c->latent_channels * h * w;
  maxe *= N;

  dg_status st = DG_STATUS_OK;
  dg_arena_mark mark = dg_arena_get_mark(arena);
  dg__vctx cx = {v, e, arena, hooks, {NULL, NULL}, 0, {0}};
  TRY(alloc_carries(&cx, maxe));
  {
    int64_t s[4] = {N, boc[0], H, W};
    cx.x = dg_tensor_make(DG_DTYPE_F32, 4, s, cx.carry[0]); /* (N, boc0, H, W) */
    TRY(dg_conv2d(e, &cx.x, image, v->e_in_w, v->e_in_b, 1, 1));
  }
  char name[64];
  for (int i = 0; i < n; i++) {
    for (int j = 0; j < lpb; j++) TRY(resnet(&cx, &v->e_res[i * lpb + j]));
    if (i < n - 1) TRY(downsample(&cx, v->e_down_w[i], v->e_down_b[i]));
    snprintf(name, sizeof name, "encoder.down_blocks.%d", i);
    probe(&cx, name, &cx.x); /* (N, boc[i], H_(i+1), W_(i+1)) */
  }
  TRY(mid_block(&cx, &v->e_mid, "encoder"));
  if (c->use_quant_conv) {
    dg_tensor y = next_out(&cx, 2 * c->latent_channels, h, w); /* (N, 2Z, h, w) */
    TRY(norm_out_conv(&cx, v->e_nout_w, v->e_nout_b, v->e_out_w, v->e_out_b, &y));
    advance(&cx, &y);
    probe(&cx, "encoder", &cx.x);
    TRY(dg_conv2d(e, moments, &cx.x, v->quant_w, v->quant_b, 1, 0));
    probe(&cx, "quant_conv", moments);
  } else {
    TRY(norm_out_conv(&cx, v->e_nout_w, v->e_nout_b, v->e_out_w, v->e_out_b, moments));
    probe(&cx, "encoder", moments);
  }
out:
  dg_arena_reset(arena, mark);
  return st;
}

dg_status dg_vae_moments_split(const dg_tensor *moments, dg_tensor *mean, dg_tensor *logvar,
                               dg_tensor *std) {
  if (!is_f32_4d(moments) || moments->shape[1] % 2) return DG_STATUS_ERR_SHAPE;
  const int64_t N = moments->shape[0], Z = moments->shape[1] / 2;
  const int64_t hw = moments->shape[2] * moments->shape[3];
  dg_tensor *outs[3] = {mean, logvar, std};
  for (int i = 0; i < 3; i++) {
    const dg_tensor *t = outs[i];
    if (!t) continue;
    if (!is_f32_4d(t) || t->shape[0] != N || t->shape[1] != Z || t->shape[2] != moments->shape[2] ||
        t->shape[3] != moments->shape[3])
      return DG_STATUS_ERR_SHAPE;
  }
  const float *m = moments->data;
  for (int64_t b = 0; b < N; b++) {
    for (int64_t i = 0; i < Z * hw; i++) {
      float mu = m[b * 2 * Z * hw + i];
      float lv = m[b * 2 * Z * hw + Z * hw + i];
      lv = lv < -30.0f ? -30.0f : (lv > 20.0f ? 20.0f : lv);
      if (mean) ((float *)mean->data)[b * Z * hw + i] = mu;
      if (logvar) ((float *)logvar->data)[b * Z * hw + i] = lv;
      if (std) ((float *)std->data)[b * Z * hw + i] = expf(0.5f * lv);
    }
  }
  return DG_STATUS_OK;
}

dg_status dg_vae_decode(const dg_vae *v, dg_engine *e, dg_arena *arena, const dg_tensor *z,
                        dg_tensor *image, const dg_vae_hooks *hooks) {
  const dg_vae_config *c = &v->cfg;
  if (!v->has_dec) return DG_STATUS_ERR_UNSUPPORTED;
  if (!is_f32_4d(z) || z->shape[1] != c->latent_channels || !is_f32_4d(image))
    return DG_STATUS_ERR_SHAPE;
  const int n = c->n_levels, lpb = c->layers_per_block, *boc = c->block_out_channels;
  const int64_t N = z->shape[0], h = z->shape[2], w = z->shape[3], f = dg_vae_factor(c);
  if (N < 1 || N > 64 || h < 1 || w < 1 || h > VAE_MAX_PIXELS || w > VAE_MAX_PIXELS ||
      h * w * f * f > VAE_MAX_PIXELS)
    return DG_STATUS_ERR_SHAPE;
  if (image->shape[0] != N || image->shape[1] != c->out_channels || image->shape[2] != f * h ||
      image->shape[3] != f * w)
    return DG_STATUS_ERR_SHAPE;

  /* Largest block output: up level i holds boc[n-1-i] channels at h*2^i and
   * its upsampler writes them at h*2^(i+1); level i's first resnet reads the
   * previous level's channels. */
  int64_t maxe = 0;
  for (int i = 0; i < n; i++) {
    int64_t ch = boc[n - 1 - i], prev = i == 0 ? boc[n - 1] : boc[n - i];
    int64_t px = (h << i) * (w << i);
    int64_t cm = ch > prev ? ch : prev;
    if (cm * px > maxe) maxe = cm * px;
    if (i < n - 1 && ch * px * 4 > maxe) maxe = ch * px * 4;
  }
  maxe *= N;

  dg_status st = DG_STATUS_OK;
  dg_arena_mark mark = dg_arena_get_mark(arena);
  dg__vctx cx = {v, e, arena, hooks, {NULL, NULL}, 0, {0}};
  TRY(alloc_carries(&cx, maxe));
  const dg_tensor *zin = z;
  dg_tensor *pq = NULL;
  if (c->use_quant_conv) {
    pq = tmp4(arena, N, c->latent_channels, h, w); /* (N, Z, h, w) */
    if (!pq) {
      st = DG_STATUS_ERR_NOMEM;
      goto out;
    }
    TRY(dg_conv2d(e, pq, z, v->pquant_w, v->pquant_b, 1, 0));
    probe(&cx, "post_quant_conv", pq);
    zin = pq;
  }
  {
    int64_t s[4] = {N, boc[n - 1], h, w};
    cx.x = dg_tensor_make(DG_DTYPE_F32, 4, s, cx.carry[0]); /* (N, boc[-1], h, w) */
    TRY(dg_conv2d(e, &cx.x, zin, v->d_in_w, v->d_in_b, 1, 1));
    probe(&cx, "decoder.conv_in", &cx.x);
  }
  TRY(mid_block(&cx, &v->d_mid, "decoder"));
  char name[64];
  for (int i = 0; i < n; i++) {
    for (int j = 0; j <= lpb; j++) TRY(resnet(&cx, &v->d_res[i * (lpb + 1) + j]));
    if (i < n - 1) TRY(upsample(&cx, v->d_up_w[i], v->d_up_b[i]));
    snprintf(name, sizeof name, "decoder.up_blocks.%d", i);
    probe(&cx, name, &cx.x); /* (N, boc[n-1-i], h*2^(i+1), w*2^(i+1)) */
  }
  TRY(norm_out_conv(&cx, v->d_nout_w, v->d_nout_b, v->d_out_w, v->d_out_b, image));
out:
  dg_arena_reset(arena, mark);
  return st;
}

/* ---- tiled decode ---------------------------------------------------------- */

typedef struct dg__tile {
  int64_t y0, x0, h, w; /* latent origin and size */
  float *img;           /* (N, C, f*h, f*w) */
} dg__tile;

/* b[.., y, ..] = a[.., ha - ext + y, ..] * (1 - y/ext) + b[.., y, ..] * (y/ext), y < ext
 * (vertical: rows; horizontal: columns), in float as torch computes it. */
static void blend(const dg__tile *a, dg__tile *b, int64_t nc, int64_t f, int64_t ext, int vertical) {
  const int64_t ha = f * a->h, wa = f * a->w, hb = f * b->h, wb = f * b->w;
  if (vertical) {
    if (ha < ext) ext = ha;
    if (hb < ext) ext = hb;
  } else {
    if (wa < ext) ext = wa;
    if (wb < ext) ext = wb;
  }
  for (int64_t k = 0; k < ext; k++) {
    const float wa_ = (float)(1.0 - (double)k / (double)ext), wb_ = (float)((double)k / (double)ext);
    for (int64_t p = 0; p < nc; p++) {
      const float *A = a->img + p * ha * wa;
      float *B = b->img + p * hb * wb;
      if (vertical) {
        for (int64_t x = 0; x < wb; x++) {
          float t1 = A[(ha - ext + k) * wa + x] * wa_, t2 = B[k * wb + x] * wb_;
          B[k * wb + x] = t1 + t2;
        }
      } else {
        for (int64_t y = 0; y < hb; y++) {
          float t1 = A[y * wa + (wa - ext + k)] * wa_, t2 = B[y * wb + k] * wb_;
          B[y * wb + k] = t1 + t2;
        }
      }
    }
  }
}

dg_status dg_vae_decode_tiled(const dg_vae *v, dg_engine *e, dg_arena *arena, const dg_tensor *z,
                              dg_tensor *image, int tile_latent) {
  const dg_vae_config *c = &v->cfg;
  if (tile_latent < 4 || tile_latent % 4) return DG_STATUS_ERR_INVALID;
  if (!is_f32_4d(z) || !is_f32_4d(image)) return DG_STATUS_ERR_SHAPE;
  const int64_t N = z->shape[0], Z = z->shape[1], h = z->shape[2], w = z->shape[3];
  if (h <= tile_latent && w <= tile_latent) return dg_vae_decode(v, e, arena, z, image, NULL);
  const int64_t f = dg_vae_factor(c), C = c->out_channels;
  if (Z != c->latent_channels || N < 1 || N > 64 || image->shape[0] != N || image->shape[1] != C ||
      image->shape[2] != f * h || image->shape[3] != f * w || h > VAE_MAX_PIXELS ||
      w > VAE_MAX_PIXELS || h * w * f * f > VAE_MAX_PIXELS)
    return DG_STATUS_ERR_SHAPE;
  /* diffusers: overlap_size = int(T * 0.75), blend_extent = int(f*T * 0.25),
   * row_limit = f*T - blend_extent (= f * overlap_size for T % 4 == 0) */
  const int64_t T = tile_latent, stride = T * 3 / 4, ext = f * T / 4, limit = f * T - ext;
  const int64_t ny = (h + stride - 1) / stride, nx = (w + stride - 1) / stride;
  dg_status st = DG_STATUS_OK;
  dg_arena_mark mark = dg_arena_get_mark(arena);
  dg__tile *tiles = dg_arena_alloc(arena, (size_t)(ny * nx) * sizeof *tiles);
  if (!tiles) return DG_STATUS_ERR_NOMEM;
  for (int64_t ty = 0; ty < ny; ty++)
    for (int64_t tx = 0; tx < nx; tx++) {
      dg__tile *t = &tiles[ty * nx + tx];
      t->y0 = ty * stride;
      t->x0 = tx * stride;
      t->h = h - t->y0 < T ? h - t->y0 : T;
      t->w = w - t->x0 < T ? w - t->x0 : T;
      t->img = dg_arena_alloc(arena, (size_t)(N * C * f * t->h * f * t->w) * sizeof(float));
      if (!t->img) {
        st = DG_STATUS_ERR_NOMEM;
        goto out;
      }
    }
  for (int64_t i = 0; i < ny * nx; i++) {
    dg__tile *t = &tiles[i];
    dg_arena_mark tm = dg_arena_get_mark(arena);
    int64_t zs[4] = {N, Z, t->h, t->w}, is[4] = {N, C, f * t->h, f * t->w};
    dg_tensor *zt = dg_arena_tensor(arena, DG_DTYPE_F32, 4, zs); /* (N, Z, th, tw) */
    if (!zt) {
      st = DG_STATUS_ERR_NOMEM;
      goto out;
    }
    for (int64_t p = 0; p < N * Z; p++)
      for (int64_t y = 0; y < t->h; y++)
        memcpy((float *)zt->data + (p * t->h + y) * t->w,
               (const float *)z->data + (p * h + t->y0 + y) * w + t->x0, (size_t)t->w * sizeof(float));
    dg_tensor ti = dg_tensor_make(DG_DTYPE_F32, 4, is, t->img); /* (N, C, f*th, f*tw) */
    st = dg_vae_decode(v, e, arena, zt, &ti, NULL);
    dg_arena_reset(arena, tm);
    if (st != DG_STATUS_OK) goto out;
  }
  /* blend in place, in diffusers' order (top neighbour, then left), then crop */
  for (int64_t ty = 0; ty < ny; ty++)
    for (int64_t tx = 0; tx < nx; tx++) {
      dg__tile *t = &tiles[ty * nx + tx];
      if (ty > 0) blend(&tiles[(ty - 1) * nx + tx], t, N * C, f, ext, 1);
      if (tx > 0) blend(&tiles[ty * nx + tx - 1], t, N * C, f, ext, 0);
      const int64_t th = f * t->h, tw = f * t->w;
      const int64_t ch = th < limit ? th : limit, cw = tw < limit ? tw : limit;
      const int64_t oy = ty * limit, ox = tx * limit, H = f * h, W = f * w;
      for (int64_t p = 0; p < N * C; p++)
        for (int64_t y = 0; y < ch && oy + y < H; y++)
          memcpy((float *)image->data + (p * H + oy + y) * W + ox, t->img + (p * th + y) * tw,
                 (size_t)(ox + cw <= W ? cw : W - ox) * sizeof(float));
    }
out:
  dg_arena_reset(arena, mark);
  return st;
}
