/* diffusers UNet2DConditionModel in plain C calls of ops (see unet.h).
 *
 * One layout (which blocks exist, their channels and names) is derived from the
 * config; the same walk over it enumerates the parameters (dg_unet_enumerate),
 * resolves them at load time (dg_unet_new) and numbers the cross-attention
 * layers, so names and shapes have a single source of truth.
 *
 * Memory plan of a forward pass (all in the caller's arena):
 *   - the skip connections (conv_in output, every down resnet/attention and
 *     downsampler output) are allocated up front and written in place;
 *   - two ping-pong buffers, sized for the largest middle/up activation,
 *     carry the hidden state through the middle and up blocks;
 *   - every block allocates its temporaries above a mark and releases them
 *     when it is done, so the peak is skips + 2 buffers + one block's scratch. */
#include "models/unet.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tensor/ops.h"
#include "base/status.h"

/* ---- Configs ------------------------------------------------------------- */

static void config_defaults(dg_unet_config *c) {
  memset(c, 0, sizeof *c);
  c->in_channels = 4;
  c->out_channels = 4;
  c->mid_block_cross_attn = 1;
  c->norm_num_groups = 32;
  c->norm_eps = 1e-5f;
  c->transformer_norm_eps = 1e-6f;
  c->layer_norm_eps = 1e-5f;
  c->flip_sin_to_cos = 1;
  c->freq_shift = 0.0f;
  c->downsample_padding = 1;
  c->mid_block_scale_factor = 1.0f;
  c->resnet_out_scale_factor = 1.0f;
}

dg_unet_config dg_unet_config_sd15(void) {
  dg_unet_config c;
  static const int boc[4] = {320, 640, 1280, 1280};
  config_defaults(&c);
  c.n_levels = 4;
  for (int i = 0; i < 4; i++) {
    c.block_out_channels[i] = boc[i];
    c.layers_per_block[i] = 2;
    c.down_cross_attn[i] = i < 3;  /* CrossAttnDown x3, DownBlock2D */
    c.up_cross_attn[i] = i > 0;    /* UpBlock2D, CrossAttnUp x3 */
    c.num_attention_heads[i] = 8;
    c.transformer_layers_per_block[i] = 1;
  }
  c.cross_attention_dim = 768;
  c.time_embed_dim = 4 * boc[0];
  c.sample_size = 64;
  return c;
}

dg_unet_config dg_unet_config_sdxl(void) {
  dg_unet_config c;
  static const int boc[3] = {320, 640, 1280};
  static const int heads[3] = {5, 10, 20};
  static const int tl[3] = {1, 2, 10};
  config_defaults(&c);
  c.n_levels = 3;
  for (int i = 0; i < 3; i++) {
    c.block_out_channels[i] = boc[i];
    c.layers_per_block[i] = 2;
    c.down_cross_attn[i] = i > 0;  /* DownBlock2D, CrossAttnDown x2 */
    c.up_cross_attn[i] = i < 2;    /* CrossAttnUp x2, UpBlock2D */
    c.num_attention_heads[i] = heads[i];
    c.transformer_layers_per_block[i] = tl[i];
  }
  c.cross_attention_dim = 2048;
  c.use_linear_projection = 1;
  c.time_embed_dim = 4 * boc[0];
  c.addition_text_time = 1;
  c.addition_time_embed_dim = 256;
  c.projection_class_embeddings_input_dim = 2816;
  c.sample_size = 128;
  return c;
}

dg_status dg_unet_config_validate(const dg_unet_config *c, char *err, size_t n) {
  if (!c) return DG_STATUS_ERR_INVALID;
  if (c->n_levels < 1 || c->n_levels > DG_UNET_MAX_LEVELS) {
    dg_set_error(err, n, "unet config: %d levels (1..%d supported)", c->n_levels, DG_UNET_MAX_LEVELS);
    return DG_STATUS_ERR_INVALID;
  }
  if (c->in_channels < 1 || c->out_channels < 1 || c->norm_num_groups < 1 ||
      c->cross_attention_dim < 1 || c->time_embed_dim < 1 || c->in_channels > 4096 ||
      c->out_channels > 4096 || c->cross_attention_dim > 65536 || c->time_embed_dim > 65536) {
    dg_set_error(err, n, "unet config: bad channel counts");
    return DG_STATUS_ERR_INVALID;
  }
  if (c->block_out_channels[0] % 2 != 0) {
    dg_set_error(err, n, "unet config: block_out_channels[0] must be even (timestep embedding)");
    return DG_STATUS_ERR_INVALID;
  }
  for (int i = 0; i < c->n_levels; i++) {
    int ch = c->block_out_channels[i];
    if (ch < 1 || ch > 65536 || ch % c->norm_num_groups != 0) {
      dg_set_error(err, n, "unet config: block_out_channels[%d]=%d not a multiple of %d groups", i, ch,
             c->norm_num_groups);
      return DG_STATUS_ERR_INVALID;
    }
    if (c->layers_per_block[i] < 1 || c->layers_per_block[i] > 16) {
      dg_set_error(err, n, "unet config: layers_per_block[%d]=%d", i, c->layers_per_block[i]);
      return DG_STATUS_ERR_INVALID;
    }
    int needs_attn = c->down_cross_attn[i] || c->up_cross_attn[c->n_levels - 1 - i] ||
                     (i == c->n_levels - 1 && c->mid_block_cross_attn);
    if (needs_attn) {
      int h = c->num_attention_heads[i];
      if (h < 1 || ch % h != 0) {
        dg_set_error(err, n, "unet config: %d heads do not divide %d channels at level %d", h, ch, i);
        return DG_STATUS_ERR_INVALID;
      }
      if (c->transformer_layers_per_block[i] < 1 || c->transformer_layers_per_block[i] > 64) {
        dg_set_error(err, n, "unet config: transformer_layers_per_block[%d]=%d", i,
               c->transformer_layers_per_block[i]);
        return DG_STATUS_ERR_INVALID;
      }
    }
  }
  if (c->addition_text_time &&
      (c->addition_time_embed_dim < 2 || c->addition_time_embed_dim % 2 != 0 ||
       c->projection_class_embeddings_input_dim < 1)) {
    dg_set_error(err, n, "unet config: text_time addition embedding needs addition_time_embed_dim "
                   "(even) and projection_class_embeddings_input_dim");
    return DG_STATUS_ERR_INVALID;
  }
  if (!(c->mid_block_scale_factor > 0.0f)) {
    dg_set_error(err, n, "unet config: mid_block_scale_factor must be > 0");
    return DG_STATUS_ERR_INVALID;
  }
  if (c->downsample_padding != 1) {
    dg_set_error(err, n, "unet config: downsample_padding %d unsupported", c->downsample_padding);
    return DG_STATUS_ERR_UNSUPPORTED;
  }
  return DG_STATUS_OK;
}

/* ---- Layout -------------------------------------------------------------- */

typedef struct lin {
  const dg_tensor *w, *b;
} lin;

typedef struct resnet {
  lin norm1, conv1, temb, norm2, conv2, shortcut;
  int cin, cout, has_shortcut;
  float out_scale; /* output = (shortcut + h) / out_scale */
  char name[64];
} resnet;

typedef struct tblock {
  lin norm1, q1, k1, v1, o1, norm2, q2, k2, v2, o2, norm3, ff1, ff2;
  int xattn; /* cross-attention layer index */
  char name[96];
} tblock;

typedef struct xformer {
  lin norm, proj_in, proj_out;
  tblock *tb;
  int n_tb, heads, ch;
  char name[64];
} xformer;

typedef struct block {
  resnet *res;
  xformer *attn; /* NULL for blocks without attention */
  int n_res;
  int has_sampler;
  lin sampler;
  int cout;
  char name[32];
} block;

struct dg_unet {
  dg_unet_config cfg;
  lin conv_in, time1, time2, add1, add2, norm_out, conv_out;
  block down[DG_UNET_MAX_LEVELS], up[DG_UNET_MAX_LEVELS];
  int has_mid;
  resnet mid_res[2];
  xformer mid_attn;
  int n_xattn;
};

static void layout_free(dg_unet *u) {
  for (int i = 0; i < DG_UNET_MAX_LEVELS; i++) {
    block *bl[2] = {&u->down[i], &u->up[i]};
    for (int k = 0; k < 2; k++) {
      if (bl[k]->attn)
        for (int j = 0; j < bl[k]->n_res; j++) free(bl[k]->attn[j].tb);
      free(bl[k]->attn);
      free(bl[k]->res);
    }
  }
  free(u->mid_attn.tb);
}

static int xformer_init(xformer *x, int ch, int heads, int n_tb, int *xattn, const char *name) {
  x->ch = ch;
  x->heads = heads;
  x->n_tb = n_tb;
  snprintf(x->name, sizeof x->name, "%s", name);
  x->tb = calloc((size_t)n_tb, sizeof *x->tb);
  if (!x->tb) return -1;
  for (int t = 0; t < n_tb; t++) {
    x->tb[t].xattn = (*xattn)++;
    snprintf(x->tb[t].name, sizeof x->tb[t].name, "%s.transformer_blocks.%d", name, t);
  }
  return 0;
}

static void resnet_init(resnet *r, int cin, int cout, const char *name) {
  r->cin = cin;
  r->cout = cout;
  r->has_shortcut = cin != cout;
  r->out_scale = 1.0f;
  snprintf(r->name, sizeof r->name, "%s", name);
}

/* Builds blocks, channels and names from a validated config.  The
 * cross-attention layers are numbered down, up, mid (diffusers' order). */
static int layout_build(dg_unet *u) {
  const dg_unet_config *c = &u->cfg;
  int n = c->n_levels;
  const int *boc = c->block_out_channels;
  char name[64];
  int xattn = 0;
  for (int i = 0; i < n; i++) {
    block *b = &u->down[i];
    int cin = i == 0 ? boc[0] : boc[i - 1];
    b->cout = boc[i];
    b->n_res = c->layers_per_block[i];
    b->has_sampler = i < n - 1;
    snprintf(b->name, sizeof b->name, "down_blocks.%d", i);
    b->res = calloc((size_t)b->n_res, sizeof *b->res);
    if (!b->res) return -1;
    if (c->down_cross_attn[i]) {
      b->attn = calloc((size_t)b->n_res, sizeof *b->attn);
      if (!b->attn) return -1;
    }
    for (int j = 0; j < b->n_res; j++) {
      snprintf(name, sizeof name, "down_blocks.%d.resnets.%d", i, j);
      resnet_init(&b->res[j], j == 0 ? cin : boc[i], boc[i], name);
      if (b->attn) {
        snprintf(name, sizeof name, "down_blocks.%d.attentions.%d", i, j);
        if (xformer_init(&b->attn[j], boc[i], c->num_attention_heads[i],
                         c->transformer_layers_per_block[i], &xattn, name))
          return -1;
      }
    }
  }
  for (int i = 0; i < n; i++) {
    block *b = &u->up[i];
    int r = n - 1 - i;
    int prev_out = i == 0 ? boc[n - 1] : boc[n - i];
    int in = boc[r > 0 ? r - 1 : 0];
    b->cout = boc[r];
    b->n_res = c->layers_per_block[r] + 1;
    b->has_sampler = i < n - 1;
    snprintf(b->name, sizeof b->name, "up_blocks.%d", i);
    b->res = calloc((size_t)b->n_res, sizeof *b->res);
    if (!b->res) return -1;
    if (c->up_cross_attn[i]) {
      b->attn = calloc((size_t)b->n_res, sizeof *b->attn);
      if (!b->attn) return -1;
    }
    for (int j = 0; j < b->n_res; j++) {
      int skip_ch = j == b->n_res - 1 ? in : boc[r];
      int res_in = j == 0 ? prev_out : boc[r];
      snprintf(name, sizeof name, "up_blocks.%d.resnets.%d", i, j);
      resnet_init(&b->res[j], res_in + skip_ch, boc[r], name);
      if (b->attn) {
        snprintf(name, sizeof name, "up_blocks.%d.attentions.%d", i, j);
        if (xformer_init(&b->attn[j], boc[r], c->num_attention_heads[r],
                         c->transformer_layers_per_block[r], &xattn, name))
          return -1;
      }
    }
  }
  u->has_mid = c->mid_block_cross_attn;
  if (u->has_mid) {
    int ch = boc[n - 1];
    resnet_init(&u->mid_res[0], ch, ch, "mid_block.resnets.0");
    resnet_init(&u->mid_res[1], ch, ch, "mid_block.resnets.1");
    /* diffusers hands mid_block_scale_factor to the middle resnets only;
     * resnet_out_scale_factor is not used by (CrossAttn)Down/UpBlock2D. */
    u->mid_res[0].out_scale = u->mid_res[1].out_scale = c->mid_block_scale_factor;
    if (xformer_init(&u->mid_attn, ch, c->num_attention_heads[n - 1],
                     c->transformer_layers_per_block[n - 1], &xattn, "mid_block.attentions.0"))
      return -1;
  }
  u->n_xattn = xattn;
  return 0;
}

/* ---- The parameter walk (single source of names and shapes) ------------- */

typedef int (*slot_fn)(void *ud, const char *name, int ndim, const int64_t *shape,
                       const dg_tensor **slot);
typedef struct walker {
  slot_fn cb;
  void *ud;
  int rc;
} walker;

static void P(walker *wk, const dg_tensor **slot, int ndim, int64_t d0, int64_t d1, int64_t d2,
              int64_t d3, const char *fmt, ...) {
  if (wk->rc) return;
  char name[160];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(name, sizeof name, fmt, ap);
  va_end(ap);
  int64_t shape[4] = {d0, d1, d2, d3};
  for (int i = ndim; i < 4; i++) shape[i] = 1;
  wk->rc = wk->cb(wk->ud, name, ndim, shape, slot);
}

static void walk_lin(walker *wk, lin *l, int64_t out, int64_t in, const char *p) {
  P(wk, &l->w, 2, out, in, 1, 1, "%s.weight", p);
  P(wk, &l->b, 1, out, 1, 1, 1, "%s.bias", p);
}

static void walk_conv(walker *wk, lin *l, int64_t out, int64_t in, int k, const char *p) {
  P(wk, &l->w, 4, out, in, k, k, "%s.weight", p);
  P(wk, &l->b, 1, out, 1, 1, 1, "%s.bias", p);
}

static void walk_norm(walker *wk, lin *l, int64_t ch, const char *p) {
  P(wk, &l->w, 1, ch, 1, 1, 1, "%s.weight", p);
  P(wk, &l->b, 1, ch, 1, 1, 1, "%s.bias", p);
}

static void walk_resnet(walker *wk, const dg_unet_config *c, resnet *r) {
  char p[128];
  snprintf(p, sizeof p, "%s.norm1", r->name);
  walk_norm(wk, &r->norm1, r->cin, p);
  snprintf(p, sizeof p, "%s.conv1", r->name);
  walk_conv(wk, &r->conv1, r->cout, r->cin, 3, p);
  snprintf(p, sizeof p, "%s.time_emb_proj", r->name);
  walk_lin(wk, &r->temb, r->cout, c->time_embed_dim, p);
  snprintf(p, sizeof p, "%s.norm2", r->name);
  walk_norm(wk, &r->norm2, r->cout, p);
  snprintf(p, sizeof p, "%s.conv2", r->name);
  walk_conv(wk, &r->conv2, r->cout, r->cout, 3, p);
  if (r->has_shortcut) {
    snprintf(p, sizeof p, "%s.conv_shortcut", r->name);
    walk_conv(wk, &r->shortcut, r->cout, r->cin, 1, p);
  }
}

static void walk_xformer(walker *wk, const dg_unet_config *c, xformer *x) {
  char p[160];
  int64_t ch = x->ch, ctx = c->cross_attention_dim;
  snprintf(p, sizeof p, "%s.norm", x->name);
  walk_norm(wk, &x->norm, ch, p);
  snprintf(p, sizeof p, "%s.proj_in", x->name);
  if (c->use_linear_projection) walk_lin(wk, &x->proj_in, ch, ch, p);
  else walk_conv(wk, &x->proj_in, ch, ch, 1, p);
  for (int t = 0; t < x->n_tb; t++) {
    tblock *b = &x->tb[t];
    const char *n = b->name;
    snprintf(p, sizeof p, "%s.norm1", n);
    walk_norm(wk, &b->norm1, ch, p);
    P(wk, &b->q1.w, 2, ch, ch, 1, 1, "%s.attn1.to_q.weight", n);
    P(wk, &b->k1.w, 2, ch, ch, 1, 1, "%s.attn1.to_k.weight", n);
    P(wk, &b->v1.w, 2, ch, ch, 1, 1, "%s.attn1.to_v.weight", n);
    snprintf(p, sizeof p, "%s.attn1.to_out.0", n);
    walk_lin(wk, &b->o1, ch, ch, p);
    snprintf(p, sizeof p, "%s.norm2", n);
    walk_norm(wk, &b->norm2, ch, p);
    P(wk, &b->q2.w, 2, ch, ch, 1, 1, "%s.attn2.to_q.weight", n);
    P(wk, &b->k2.w, 2, ch, ctx, 1, 1, "%s.attn2.to_k.weight", n);
    P(wk, &b->v2.w, 2, ch, ctx, 1, 1, "%s.attn2.to_v.weight", n);
    snprintf(p, sizeof p, "%s.attn2.to_out.0", n);
    walk_lin(wk, &b->o2, ch, ch, p);
    snprintf(p, sizeof p, "%s.norm3", n);
    walk_norm(wk, &b->norm3, ch, p);
    snprintf(p, sizeof p, "%s.ff.net.0.proj", n);
    walk_lin(wk, &b->ff1, 8 * ch, ch, p);
    snprintf(p, sizeof p, "%s.ff.net.2", n);
    walk_lin(wk, &b->ff2, ch, 4 * ch, p);
  }
  snprintf(p, sizeof p, "%s.proj_out", x->name);
  if (c->use_linear_projection) walk_lin(wk, &x->proj_out, ch, ch, p);
  else walk_conv(wk, &x->proj_out, ch, ch, 1, p);
}

static void walk_block(walker *wk, const dg_unet_config *c, block *b, int up) {
  char p[64];
  for (int j = 0; j < b->n_res; j++) {
    walk_resnet(wk, c, &b->res[j]);
    if (b->attn) walk_xformer(wk, c, &b->attn[j]);
  }
  if (b->has_sampler) {
    snprintf(p, sizeof p, "%s.%s.0.conv", b->name, up ? "upsamplers" : "downsamplers");
    walk_conv(wk, &b->sampler, b->cout, b->cout, 3, p);
  }
}

/* diffusers module order: conv_in, time_embedding, add_embedding, down_blocks,
 * up_blocks, mid_block, conv_norm_out, conv_out. */
static int walk(dg_unet *u, slot_fn cb, void *ud) {
  const dg_unet_config *c = &u->cfg;
  walker wk = {cb, ud, 0};
  int c0 = c->block_out_channels[0], te = c->time_embed_dim;
  walk_conv(&wk, &u->conv_in, c0, c->in_channels, 3, "conv_in");
  walk_lin(&wk, &u->time1, te, c0, "time_embedding.linear_1");
  walk_lin(&wk, &u->time2, te, te, "time_embedding.linear_2");
  if (c->addition_text_time) {
    walk_lin(&wk, &u->add1, te, c->projection_class_embeddings_input_dim,
             "add_embedding.linear_1");
    walk_lin(&wk, &u->add2, te, te, "add_embedding.linear_2");
  }
  for (int i = 0; i < c->n_levels; i++) walk_block(&wk, c, &u->down[i], 0);
  for (int i = 0; i < c->n_levels; i++) walk_block(&wk, c, &u->up[i], 1);
  if (u->has_mid) {
    walk_resnet(&wk, c, &u->mid_res[0]);
    walk_xformer(&wk, c, &u->mid_attn);
    walk_resnet(&wk, c, &u->mid_res[1]);
  }
  walk_norm(&wk, &u->norm_out, c0, "conv_norm_out");
  walk_conv(&wk, &u->conv_out, c->out_channels, c0, 3, "conv_out");
  return wk.rc;
}

static dg_unet *layout_new(const dg_unet_config *cfg, char *err, size_t n) {
  if (dg_unet_config_validate(cfg, err, n) != DG_STATUS_OK) return NULL;
  dg_unet *u = calloc(1, sizeof *u);
  if (!u) {
    dg_set_error(err, n, "out of memory");
    return NULL;
  }
  u->cfg = *cfg;
  if (layout_build(u)) {
    layout_free(u);
    free(u);
    dg_set_error(err, n, "out of memory");
    return NULL;
  }
  return u;
}

typedef struct enum_ctx {
  dg_unet_param_fn cb;
  void *ud;
} enum_ctx;

static int enum_cb(void *ud, const char *name, int ndim, const int64_t *shape,
                   const dg_tensor **slot) {
  enum_ctx *e = ud;
  (void)slot;
  return e->cb(e->ud, name, ndim, shape);
}

int dg_unet_enumerate(const dg_unet_config *cfg, dg_unet_param_fn cb, void *ud) {
  dg_unet *u = layout_new(cfg, NULL, 0);
  if (!u) return -1;
  enum_ctx e = {cb, ud};
  int rc = walk(u, enum_cb, &e);
  layout_free(u);
  free(u);
  return rc;
}

int dg_unet_n_cross_attn_layers(const dg_unet_config *cfg) {
  dg_unet *u = layout_new(cfg, NULL, 0);
  if (!u) return 0;
  int n = u->n_xattn;
  layout_free(u);
  free(u);
  return n;
}

static const tblock *find_xattn(const dg_unet *u, int l) {
  const xformer *xs[3 * DG_UNET_MAX_LEVELS * 17 + 1];
  int nx = 0;
  for (int k = 0; k < 2; k++)
    for (int i = 0; i < u->cfg.n_levels; i++) {
      const block *b = k ? &u->up[i] : &u->down[i];
      if (b->attn)
        for (int j = 0; j < b->n_res; j++) xs[nx++] = &b->attn[j];
    }
  if (u->has_mid) xs[nx++] = &u->mid_attn;
  for (int i = 0; i < nx; i++)
    for (int t = 0; t < xs[i]->n_tb; t++)
      if (xs[i]->tb[t].xattn == l) return &xs[i]->tb[t];
  return NULL;
}

dg_status dg_unet_cross_attn_layer_name(const dg_unet_config *cfg, int l, char *out, size_t n) {
  dg_unet *u = layout_new(cfg, NULL, 0);
  if (!u) return DG_STATUS_ERR_INVALID;
  const tblock *t = find_xattn(u, l);
  dg_status st = DG_STATUS_ERR_INVALID;
  if (t) {
    snprintf(out, n, "%s.attn2", t->name);
    st = DG_STATUS_OK;
  }
  layout_free(u);
  free(u);
  return st;
}

/* ---- Loading ------------------------------------------------------------- */

typedef struct load_ctx {
  const dg_weights *w;
  char *err;
  size_t errlen;
} load_ctx;

static int load_cb(void *ud, const char *name, int ndim, const int64_t *shape,
                   const dg_tensor **slot) {
  load_ctx *l = ud;
  const dg_tensor *t = dg_weights_need(l->w, name, ndim, shape, l->err, l->errlen);
  if (!t) {
    if (l->err && l->errlen && !l->err[0]) dg_set_error(l->err, l->errlen, "unet: bad tensor %s", name);
    return 1;
  }
  *slot = t;
  return 0;
}

dg_unet *dg_unet_new(const dg_unet_config *cfg, const dg_weights *w, char *err, size_t errlen) {
  if (err && errlen) err[0] = 0;
  if (!cfg || !w) {
    dg_set_error(err, errlen, "unet: no config or weights");
    return NULL;
  }
  dg_unet *u = layout_new(cfg, err, errlen);
  if (!u) return NULL;
  load_ctx l = {w, err, errlen};
  if (walk(u, load_cb, &l)) {
    dg_unet_free(u);
    return NULL;
  }
  return u;
}

void dg_unet_free(dg_unet *u) {
  if (!u) return;
  layout_free(u);
  free(u);
}

const dg_unet_config *dg_unet_get_config(const dg_unet *u) { return &u->cfg; }

/* ---- Skips --------------------------------------------------------------- */

static int64_t down_size(int64_t s, int pad) { return (s + 2 * pad - 3) / 2 + 1; }

int dg_unet_n_skips(const dg_unet_config *c) {
  int n = 1;
  for (int i = 0; i < c->n_levels; i++) n += c->layers_per_block[i] + (i < c->n_levels - 1);
  return n;
}

dg_status dg_unet_skip_shape(const dg_unet_config *c, int idx, int64_t batch, int64_t h,
                             int64_t w, int64_t shape[4]) {
  int k = 0;
  if (idx < 0 || h < 1 || w < 1) return DG_STATUS_ERR_INVALID;
  if (idx == 0) {
    shape[0] = batch, shape[1] = c->block_out_channels[0], shape[2] = h, shape[3] = w;
    return DG_STATUS_OK;
  }
  k = 1;
  for (int i = 0; i < c->n_levels; i++) {
    int n = c->layers_per_block[i] + (i < c->n_levels - 1);
    for (int j = 0; j < n; j++, k++) {
      if (j == c->layers_per_block[i]) {
        h = down_size(h, c->downsample_padding);
        w = down_size(w, c->downsample_padding);
      }
      if (k == idx) {
        shape[0] = batch, shape[1] = c->block_out_channels[i], shape[2] = h, shape[3] = w;
        return DG_STATUS_OK;
      }
    }
  }
  return DG_STATUS_ERR_INVALID;
}

/* ---- Forward ------------------------------------------------------------- */

#define TRY(x)                                     \
  do {                                             \
    dg_status s__ = (x);                           \
    if (s__ != DG_STATUS_OK) return s__;           \
  } while (0)

#define NEW(var, ...)                                             \
  do {                                                            \
    int64_t sh__[] = {__VA_ARGS__};                               \
    var = dg_arena_tensor(f->a, DG_DTYPE_F32, (int)(sizeof sh__ / sizeof sh__[0]), sh__); \
    if (!var) return DG_STATUS_ERR_NOMEM;                         \
  } while (0)

typedef struct fwd {
  const dg_unet *u;
  const dg_unet_config *c;
  dg_engine *e;
  dg_arena *a;
  const dg_unet_extras *ex;
  const dg_tensor *temb; /* (B, Temb) silu(time embedding) */
  const dg_tensor *ctx;  /* (B, L, Cctx) */
  int64_t B;
} fwd;

static void debug(fwd *f, const char *name, const dg_tensor *t) {
  if (f->ex && f->ex->debug) f->ex->debug(f->ex->debug_ud, name, t);
}

static dg_tensor view4(void *data, int64_t n, int64_t c, int64_t h, int64_t w) {
  int64_t s[4] = {n, c, h, w};
  return dg_tensor_make(DG_DTYPE_F32, 4, s, data);
}

/* Nearest-neighbour resize to (H2, W2) as torch.nn.functional.interpolate
 * (mode "nearest", size given): src = min(floor(dst * (in/out)), in-1) in float. */
static void nearest_src(int64_t *idx, int64_t in, int64_t out) {
  float scale = (float)in / (float)out;
  for (int64_t o = 0; o < out; o++) {
    int64_t s;
    if (out == in) s = o;
    else if (out == 2 * in) s = o >> 1;
    else {
      s = (int64_t)floorf((float)o * scale);
      if (s > in - 1) s = in - 1;
    }
    idx[o] = s;
  }
}

static dg_status upsample_to(fwd *f, dg_tensor *y, const dg_tensor *x) {
  int64_t N = x->shape[0], C = x->shape[1], H = x->shape[2], W = x->shape[3];
  int64_t H2 = y->shape[2], W2 = y->shape[3];
  if (H2 == 2 * H && W2 == 2 * W) return dg_upsample_nearest2x(f->e, y, x);
  int64_t *iy = dg_arena_alloc(f->a, (size_t)(H2 + W2) * sizeof *iy);
  if (!iy) return DG_STATUS_ERR_NOMEM;
  int64_t *ix = iy + H2;
  nearest_src(iy, H, H2);
  nearest_src(ix, W, W2);
  const float *src = x->data;
  float *dst = y->data;
  for (int64_t p = 0; p < N * C; p++) {
    const float *sp = src + p * H * W;
    float *dp = dst + p * H2 * W2;
    for (int64_t r = 0; r < H2; r++)
      for (int64_t q = 0; q < W2; q++) dp[r * W2 + q] = sp[iy[r] * W + ix[q]];
  }
  return DG_STATUS_OK;
}

/* ResnetBlock2D: y (B, cout, H, W) = shortcut(x) + conv2(silu(gn2(conv1(silu(gn1(x))) + temb))) */
static dg_status resnet_fwd(fwd *f, const resnet *r, dg_tensor *y, const dg_tensor *x) {
  const dg_unet_config *c = f->c;
  int64_t B = x->shape[0], H = x->shape[2], W = x->shape[3];
  dg_arena_mark m = dg_arena_get_mark(f->a);
  dg_tensor *h, *h1, *t, *h2;
  NEW(h, B, r->cin, H, W); /* (B, cin, H, W) */
  TRY(dg_group_norm(f->e, h, x, c->norm_num_groups, c->norm_eps, r->norm1.w, r->norm1.b, 1));
  NEW(h1, B, r->cout, H, W); /* (B, cout, H, W) */
  TRY(dg_conv2d(f->e, h1, h, r->conv1.w, r->conv1.b, 1, 1));
  NEW(t, B, r->cout, 1, 1); /* (B, cout, 1, 1) */
  dg_tensor t2;
  int64_t s2[2] = {B, r->cout};
  TRY(dg_tensor_reshape(t, 2, s2, &t2)); /* (B, cout) */
  TRY(dg_linear(f->e, &t2, f->temb, r->temb.w, r->temb.b));
  TRY(dg_add(f->e, h1, h1, t));
  NEW(h2, B, r->cout, H, W); /* (B, cout, H, W) */
  TRY(dg_group_norm(f->e, h2, h1, c->norm_num_groups, c->norm_eps, r->norm2.w, r->norm2.b, 1));
  TRY(dg_conv2d(f->e, y, h2, r->conv2.w, r->conv2.b, 1, 1)); /* (B, cout, H, W) */
  if (r->has_shortcut) {
    dg_tensor *s;
    NEW(s, B, r->cout, H, W); /* (B, cout, H, W) */
    TRY(dg_conv2d(f->e, s, x, r->shortcut.w, r->shortcut.b, 1, 0));
    TRY(dg_add(f->e, y, s, y));
  } else {
    TRY(dg_add(f->e, y, x, y));
  }
  if (r->out_scale != 1.0f) TRY(dg_scale(f->e, y, y, 1.0f / r->out_scale, 0.0f));
  dg_arena_reset(f->a, m);
  debug(f, r->name, y);
  return DG_STATUS_OK;
}

/* Attention (diffusers Attention + AttnProcessor / IPAdapterAttnProcessor):
 * h (B, L, C) += to_out(sdpa(q(n), k(kv), v(kv)) [+ ip sets]). */
static dg_status attn_fwd(fwd *f, const tblock *b, int cross, dg_tensor *h, const dg_tensor *n,
                          int heads) {
  int64_t B = h->shape[0], L = h->shape[1], C = h->shape[2];
  const dg_tensor *kv = cross ? f->ctx : n;
  int64_t Lk = kv->shape[1];
  const lin *q = cross ? &b->q2 : &b->q1, *k = cross ? &b->k2 : &b->k1;
  const lin *v = cross ? &b->v2 : &b->v1, *o = cross ? &b->o2 : &b->o1;
  dg_tensor *tq, *tk, *tv, *ta, *to;
  NEW(tq, B, L, C);  /* (B, L, C) */
  NEW(tk, B, Lk, C); /* (B, Lk, C) */
  NEW(tv, B, Lk, C); /* (B, Lk, C) */
  NEW(ta, B, L, C);  /* (B, L, C) */
  TRY(dg_linear(f->e, tq, n, q->w, NULL));
  TRY(dg_linear(f->e, tk, kv, k->w, NULL));
  TRY(dg_linear(f->e, tv, kv, v->w, NULL));
  if (f->ex && f->ex->debug) { /* the attention's inputs: "<block>.attn1.q", ".k", ".v" */
    char nm[128];
    const dg_tensor *qkv[3] = {tq, tk, tv};
    for (int i = 0; i < 3; i++) {
      snprintf(nm, sizeof nm, "%s.%s.%c", b->name, cross ? "attn2" : "attn1", "qkv"[i]);
      debug(f, nm, qkv[i]);
    }
  }
  TRY(dg_attention(f->e, ta, tq, tk, tv, heads, 0, 0.0f));
  if (cross && f->ex) {
    for (int i = 0; i < f->ex->n_ip && i < DG_UNET_MAX_IP; i++) {
      const dg_unet_ip *ip = &f->ex->ip[i];
      if (!ip->tokens || !ip->to_k || !ip->to_v || !ip->to_k[b->xattn] || !ip->to_v[b->xattn])
        continue;
      float s = ip->scale * (ip->layer_scale ? ip->layer_scale[b->xattn] : 1.0f);
      if (s == 0.0f) continue;
      if (ip->tokens->ndim != 3 || ip->tokens->shape[0] != B) return DG_STATUS_ERR_SHAPE;
      int64_t Li = ip->tokens->shape[1];
      dg_tensor *ik, *iv, *ia;
      NEW(ik, B, Li, C); /* (B, Lip, C) */
      NEW(iv, B, Li, C); /* (B, Lip, C) */
      NEW(ia, B, L, C);  /* (B, L, C) */
      TRY(dg_linear(f->e, ik, ip->tokens, ip->to_k[b->xattn], NULL));
      TRY(dg_linear(f->e, iv, ip->tokens, ip->to_v[b->xattn], NULL));
      TRY(dg_attention(f->e, ia, tq, ik, iv, heads, 0, 0.0f));
      TRY(dg_scale(f->e, ia, ia, s, 0.0f));
      TRY(dg_add(f->e, ta, ta, ia));
    }
  }
  NEW(to, B, L, C); /* (B, L, C) */
  TRY(dg_linear(f->e, to, ta, o->w, o->b));
  if (f->ex && f->ex->debug) {
    char nm[128];
    snprintf(nm, sizeof nm, "%s.%s", b->name, cross ? "attn2" : "attn1");
    debug(f, nm, to);
  }
  return dg_add(f->e, h, h, to);
}

/* BasicTransformerBlock: h (B, L, C) updated in place. */
static dg_status tblock_fwd(fwd *f, const tblock *b, dg_tensor *h, int heads) {
  const dg_unet_config *c = f->c;
  int64_t B = h->shape[0], L = h->shape[1], C = h->shape[2];
  dg_arena_mark m = dg_arena_get_mark(f->a);
  dg_tensor *n, *g, *gg, *o;
  NEW(n, B, L, C); /* (B, L, C) */
  TRY(dg_layer_norm(f->e, n, h, c->layer_norm_eps, b->norm1.w, b->norm1.b));
  TRY(attn_fwd(f, b, 0, h, n, heads));
  dg_arena_reset(f->a, m);
  NEW(n, B, L, C); /* (B, L, C) */
  TRY(dg_layer_norm(f->e, n, h, c->layer_norm_eps, b->norm2.w, b->norm2.b));
  TRY(attn_fwd(f, b, 1, h, n, heads));
  dg_arena_reset(f->a, m);
  NEW(n, B, L, C); /* (B, L, C) */
  TRY(dg_layer_norm(f->e, n, h, c->layer_norm_eps, b->norm3.w, b->norm3.b));
  NEW(g, B, L, 8 * C);  /* (B, L, 8C) */
  TRY(dg_linear(f->e, g, n, b->ff1.w, b->ff1.b));
  NEW(gg, B, L, 4 * C); /* (B, L, 4C) */
  TRY(dg_geglu(f->e, gg, g));
  NEW(o, B, L, C);      /* (B, L, C) */
  TRY(dg_linear(f->e, o, gg, b->ff2.w, b->ff2.b));
  if (f->ex && f->ex->debug) {
    char nm[128];
    snprintf(nm, sizeof nm, "%s.ff", b->name);
    debug(f, nm, o);
  }
  TRY(dg_add(f->e, h, h, o));
  dg_arena_reset(f->a, m);
  return DG_STATUS_OK;
}

/* Transformer2DModel: y (B, C, H, W) = x + proj_out(blocks(proj_in(gn(x)))). */
static dg_status xformer_fwd(fwd *f, const xformer *xf, dg_tensor *y, const dg_tensor *x) {
  const dg_unet_config *c = f->c;
  int64_t B = x->shape[0], C = x->shape[1], H = x->shape[2], W = x->shape[3];
  dg_arena_mark m = dg_arena_get_mark(f->a);
  dg_tensor *n, *tok, *h, *o;
  NEW(n, B, C, H, W); /* (B, C, H, W) */
  TRY(dg_group_norm(f->e, n, x, c->norm_num_groups, c->transformer_norm_eps, xf->norm.w,
                    xf->norm.b, 0));
  NEW(tok, B, H * W, C); /* (B, HW, C) */
  TRY(dg_nchw_to_nlc(f->e, tok, n));
  NEW(h, B, H * W, C); /* (B, HW, C) */
  TRY(dg_linear(f->e, h, tok, xf->proj_in.w, xf->proj_in.b));
  for (int t = 0; t < xf->n_tb; t++) TRY(tblock_fwd(f, &xf->tb[t], h, xf->heads));
  NEW(o, B, H * W, C); /* (B, HW, C) */
  TRY(dg_linear(f->e, o, h, xf->proj_out.w, xf->proj_out.b));
  TRY(dg_nlc_to_nchw(f->e, y, o)); /* (B, C, H, W) */
  TRY(dg_add(f->e, y, y, x));
  dg_arena_reset(f->a, m);
  debug(f, xf->name, y);
  return DG_STATUS_OK;
}

/* Up-block resnet on cat([h, skip], dim=1): y (B, cout, H, W). */
static dg_status up_resnet_fwd(fwd *f, const resnet *r, dg_tensor *y, const dg_tensor *h,
                               const dg_tensor *skip) {
  int64_t B = h->shape[0], H = h->shape[2], W = h->shape[3];
  if (skip->shape[2] != H || skip->shape[3] != W ||
      h->shape[1] + skip->shape[1] != r->cin)
    return DG_STATUS_ERR_SHAPE;
  dg_arena_mark m = dg_arena_get_mark(f->a);
  dg_tensor *cat;
  NEW(cat, B, r->cin, H, W); /* (B, Ch + Cskip, H, W) */
  TRY(dg_concat(f->e, cat, h, skip, 1));
  TRY(resnet_fwd(f, r, y, cat));
  dg_arena_reset(f->a, m);
  return DG_STATUS_OK;
}

static dg_status time_embedding(fwd *f, const dg_tensor *timesteps) {
  const dg_unet *u = f->u;
  const dg_unet_config *c = f->c;
  int64_t B = f->B, te = c->time_embed_dim, c0 = c->block_out_channels[0];
  dg_tensor *t, *tp, *e1, *emb, *act;
  NEW(t, B); /* (B) */
  float *td = t->data;
  const float *ts = timesteps->data;
  for (int64_t i = 0; i < B; i++) td[i] = ts[timesteps->shape[0] == 1 ? 0 : i];
  NEW(tp, B, c0); /* (B, C0) */
  TRY(dg_timestep_embedding(f->e, tp, t, c->flip_sin_to_cos, c->freq_shift, 10000.0f));
  debug(f, "time_proj", tp);
  NEW(e1, B, te); /* (B, Temb) */
  TRY(dg_linear(f->e, e1, tp, u->time1.w, u->time1.b));
  TRY(dg_silu(f->e, e1, e1));
  NEW(emb, B, te); /* (B, Temb) */
  TRY(dg_linear(f->e, emb, e1, u->time2.w, u->time2.b));
  debug(f, "time_embedding", emb);
  if (c->addition_text_time) {
    const dg_tensor *te_in = f->ex ? f->ex->text_embeds : NULL;
    const dg_tensor *ids = f->ex ? f->ex->time_ids : NULL;
    if (!te_in || !ids || te_in->dtype != DG_DTYPE_F32 || ids->dtype != DG_DTYPE_F32 ||
        te_in->ndim != 2 || ids->ndim != 2 || te_in->shape[0] != B || ids->shape[0] != B)
      return DG_STATUS_ERR_SHAPE;
    int64_t dt = te_in->shape[1], k = ids->shape[1], ad = c->addition_time_embed_dim;
    if (dt + k * ad != c->projection_class_embeddings_input_dim) return DG_STATUS_ERR_SHAPE;
    dg_tensor flat, *ta, *cat, *a1, *a2;
    int64_t fs[1] = {B * k};
    TRY(dg_tensor_reshape(ids, 1, fs, &flat)); /* (B*k) */
    NEW(ta, B, k * ad);                        /* (B, k*256) */
    dg_tensor ta2;
    int64_t s2[2] = {B * k, ad};
    TRY(dg_tensor_reshape(ta, 2, s2, &ta2)); /* (B*k, 256) */
    TRY(dg_timestep_embedding(f->e, &ta2, &flat, c->flip_sin_to_cos, c->freq_shift, 10000.0f));
    NEW(cat, B, dt + k * ad); /* (B, 2816) */
    TRY(dg_concat(f->e, cat, te_in, ta, 1));
    NEW(a1, B, te); /* (B, Temb) */
    TRY(dg_linear(f->e, a1, cat, u->add1.w, u->add1.b));
    TRY(dg_silu(f->e, a1, a1));
    NEW(a2, B, te); /* (B, Temb) */
    TRY(dg_linear(f->e, a2, a1, u->add2.w, u->add2.b));
    TRY(dg_add(f->e, emb, emb, a2));
  }
  NEW(act, B, te); /* (B, Temb): silu(emb), the input of every time_emb_proj */
  TRY(dg_silu(f->e, act, emb));
  f->temb = act;
  return DG_STATUS_OK;
}

static int is_f32_4d(const dg_tensor *t) { return t && t->dtype == DG_DTYPE_F32 && t->ndim == 4; }

static dg_status add_control(fwd *f, dg_tensor **skips, int n_skips, dg_tensor *mid) {
  const dg_unet_extras *ex = f->ex;
  for (int s = 0; ex && s < ex->n_control && s < DG_UNET_MAX_CONTROL; s++) {
    const dg_unet_control *ct = &ex->control[s];
    if (ct->down) {
      if (ct->n_down != n_skips) return DG_STATUS_ERR_SHAPE;
      for (int i = 0; i < n_skips; i++) {
        const dg_tensor *r = ct->down[i];
        if (!is_f32_4d(r) || memcmp(r->shape, skips[i]->shape, sizeof r->shape) != 0)
          return DG_STATUS_ERR_SHAPE;
        dg_arena_mark m = dg_arena_get_mark(f->a);
        dg_tensor *t;
        NEW(t, r->shape[0], r->shape[1], r->shape[2], r->shape[3]); /* skip's shape */
        TRY(dg_scale(f->e, t, r, ct->scale, 0.0f));
        TRY(dg_add(f->e, skips[i], skips[i], t));
        dg_arena_reset(f->a, m);
      }
    }
    if (ct->mid) {
      if (!mid || !is_f32_4d(ct->mid) || memcmp(ct->mid->shape, mid->shape, sizeof mid->shape))
        return DG_STATUS_ERR_SHAPE;
      dg_arena_mark m = dg_arena_get_mark(f->a);
      dg_tensor *t;
      NEW(t, mid->shape[0], mid->shape[1], mid->shape[2], mid->shape[3]); /* (B, C, h, w) */
      TRY(dg_scale(f->e, t, ct->mid, ct->scale, 0.0f));
      TRY(dg_add(f->e, mid, mid, t));
      dg_arena_reset(f->a, m);
    }
  }
  return DG_STATUS_OK;
}

static dg_status forward(fwd *f, const dg_tensor *x, const dg_tensor *timesteps, dg_tensor *y) {
  const dg_unet *u = f->u;
  const dg_unet_config *c = f->c;
  int n = c->n_levels;
  int64_t B = f->B, H0 = x->shape[2], W0 = x->shape[3];
  int64_t hs[DG_UNET_MAX_LEVELS], ws[DG_UNET_MAX_LEVELS];
  hs[0] = H0, ws[0] = W0;
  for (int i = 1; i < n; i++) {
    hs[i] = down_size(hs[i - 1], c->downsample_padding);
    ws[i] = down_size(ws[i - 1], c->downsample_padding);
    if (hs[i] < 1 || ws[i] < 1) return DG_STATUS_ERR_SHAPE;
  }

  TRY(time_embedding(f, timesteps));

  /* Skip connections, allocated up front. */
  int n_skips = dg_unet_n_skips(c);
  dg_tensor **skips = dg_arena_alloc(f->a, (size_t)n_skips * sizeof *skips);
  if (!skips) return DG_STATUS_ERR_NOMEM;
  for (int i = 0; i < n_skips; i++) {
    int64_t s[4];
    TRY(dg_unet_skip_shape(c, i, B, H0, W0, s));
    NEW(skips[i], s[0], s[1], s[2], s[3]); /* (B, C_i, H_i, W_i) */
  }
  /* Ping-pong buffers for the middle and up path. */
  size_t maxel = 0;
  for (int r = 0; r < n; r++) {
    size_t el = (size_t)c->block_out_channels[r] * (size_t)(hs[r] * ws[r]);
    if (el > maxel) maxel = el;
    if (r > 0) {
      el = (size_t)c->block_out_channels[r] * (size_t)(hs[r - 1] * ws[r - 1]);
      if (el > maxel) maxel = el;
    }
  }
  float *pp[2];
  for (int i = 0; i < 2; i++) {
    pp[i] = dg_arena_alloc(f->a, (size_t)B * maxel * sizeof(float));
    if (!pp[i]) return DG_STATUS_ERR_NOMEM;
  }

  /* conv_in */
  TRY(dg_conv2d(f->e, skips[0], x, u->conv_in.w, u->conv_in.b, 1, 1)); /* (B, C0, H, W) */
  debug(f, "conv_in", skips[0]);

  /* Down path: every resnet/attention/downsampler output is a skip. */
  int k = 1;
  dg_tensor *h = skips[0];
  for (int i = 0; i < n; i++) {
    const block *b = &u->down[i];
    for (int j = 0; j < b->n_res; j++) {
      dg_tensor *dst = skips[k++]; /* (B, C_i, H_i, W_i) */
      if (b->attn) {
        dg_arena_mark m = dg_arena_get_mark(f->a);
        dg_tensor *tmp;
        NEW(tmp, B, b->cout, hs[i], ws[i]); /* (B, C_i, H_i, W_i) */
        TRY(resnet_fwd(f, &b->res[j], tmp, h));
        TRY(xformer_fwd(f, &b->attn[j], dst, tmp));
        dg_arena_reset(f->a, m);
      } else {
        TRY(resnet_fwd(f, &b->res[j], dst, h));
      }
      h = dst;
    }
    if (b->has_sampler) {
      dg_tensor *dst = skips[k++]; /* (B, C_i, H_{i+1}, W_{i+1}) */
      TRY(dg_conv2d(f->e, dst, h, b->sampler.w, b->sampler.b, 2, c->downsample_padding));
      h = dst;
    }
    debug(f, b->name, h);
  }

  /* Middle block. */
  int cur = 0;
  int64_t Cl = c->block_out_channels[n - 1];
  dg_tensor hb = view4(pp[0], B, Cl, hs[n - 1], ws[n - 1]); /* (B, C_last, h_min, w_min) */
  if (u->has_mid) {
    dg_tensor t1 = view4(pp[1], B, Cl, hs[n - 1], ws[n - 1]); /* (B, C_last, h_min, w_min) */
    TRY(resnet_fwd(f, &u->mid_res[0], &hb, h));
    TRY(xformer_fwd(f, &u->mid_attn, &t1, &hb));
    TRY(resnet_fwd(f, &u->mid_res[1], &hb, &t1));
  } else {
    memcpy(hb.data, h->data, dg_tensor_nbytes(h));
  }
  debug(f, "mid_block", &hb);
  TRY(add_control(f, skips, n_skips, &hb));

  /* Up path: the hidden state alternates between the two buffers. */
  dg_tensor cur_t = hb;
  for (int i = 0; i < n; i++) {
    const block *b = &u->up[i];
    int r = n - 1 - i;
    for (int j = 0; j < b->n_res; j++) {
      const dg_tensor *skip = skips[--k];
      dg_tensor out = view4(pp[1 - cur], B, b->cout, hs[r], ws[r]); /* (B, C_r, H_r, W_r) */
      TRY(up_resnet_fwd(f, &b->res[j], &out, &cur_t, skip));
      cur = 1 - cur;
      cur_t = out;
      if (b->attn) {
        dg_tensor o2 = view4(pp[1 - cur], B, b->cout, hs[r], ws[r]); /* (B, C_r, H_r, W_r) */
        TRY(xformer_fwd(f, &b->attn[j], &o2, &cur_t));
        cur = 1 - cur;
        cur_t = o2;
      }
    }
    if (b->has_sampler) {
      /* Upsample to the size of the next skip (odd latent sizes). */
      const dg_tensor *next = skips[k - 1];
      int64_t H2 = next->shape[2], W2 = next->shape[3];
      dg_tensor up = view4(pp[1 - cur], B, b->cout, H2, W2); /* (B, C_r, H_{r-1}, W_{r-1}) */
      TRY(upsample_to(f, &up, &cur_t));
      dg_tensor o2 = view4(pp[cur], B, b->cout, H2, W2); /* (B, C_r, H_{r-1}, W_{r-1}) */
      TRY(dg_conv2d(f->e, &o2, &up, b->sampler.w, b->sampler.b, 1, 1));
      cur_t = o2;
    }
    debug(f, b->name, &cur_t);
  }
  if (k != 0) return DG_STATUS_ERR_INTERNAL;

  /* conv_norm_out + SiLU + conv_out */
  dg_tensor *nrm;
  int64_t C0 = c->block_out_channels[0];
  NEW(nrm, B, C0, H0, W0); /* (B, C0, H, W) */
  if (f->ex && f->ex->debug) {
    TRY(dg_group_norm(f->e, nrm, &cur_t, c->norm_num_groups, c->norm_eps, u->norm_out.w,
                      u->norm_out.b, 0));
    debug(f, "conv_norm_out", nrm);
    TRY(dg_silu(f->e, nrm, nrm));
  } else {
    TRY(dg_group_norm(f->e, nrm, &cur_t, c->norm_num_groups, c->norm_eps, u->norm_out.w,
                      u->norm_out.b, 1));
  }
  TRY(dg_conv2d(f->e, y, nrm, u->conv_out.w, u->conv_out.b, 1, 1)); /* (B, Cout, H, W) */
  debug(f, "conv_out", y);
  return DG_STATUS_OK;
}

dg_status dg_unet_forward(const dg_unet *u, dg_engine *e, dg_arena *arena, const dg_tensor *x,
                          const dg_tensor *timesteps, const dg_tensor *context,
                          const dg_unet_extras *extras, dg_tensor *y) {
  if (!u || !e || !arena || !x || !timesteps || !context || !y) return DG_STATUS_ERR_INVALID;
  const dg_unet_config *c = &u->cfg;
  if (!is_f32_4d(x) || !is_f32_4d(y) || x->shape[1] != c->in_channels ||
      y->shape[0] != x->shape[0] || y->shape[1] != c->out_channels ||
      y->shape[2] != x->shape[2] || y->shape[3] != x->shape[3] || x->shape[0] < 1 ||
      x->shape[2] < 1 || x->shape[3] < 1)
    return DG_STATUS_ERR_SHAPE;
  if (timesteps->dtype != DG_DTYPE_F32 || timesteps->ndim != 1 ||
      (timesteps->shape[0] != x->shape[0] && timesteps->shape[0] != 1))
    return DG_STATUS_ERR_SHAPE;
  if (context->dtype != DG_DTYPE_F32 || context->ndim != 3 || context->shape[0] != x->shape[0] ||
      context->shape[1] < 1 || context->shape[2] != c->cross_attention_dim)
    return DG_STATUS_ERR_SHAPE;
  fwd f = {u, c, e, arena, extras, NULL, context, x->shape[0]};
  dg_arena_mark m = dg_arena_get_mark(arena);
  dg_status st = forward(&f, x, timesteps, y);
  dg_arena_reset(arena, m);
  return st;
}
