/* UNet: configs, parameter enumeration, LDM key map, and the golden outputs
 * of diffusers' UNet2DConditionModel on the sd15-tiny model
 * (tests/data/sd15-tiny/goldens/unet.safetensors), in both checkpoint
 * layouts, with the reference and the default kernels, 1 and 2 threads, and
 * with the weights converted to f16 and bf16. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "models/unet.h"
#include "t.h"
#include "tensor/ops.h"
#include "weights/safetensors.h"
#include "weights/weights.h"

#define TOL_F32 1e-4

static char err[512];

/* ---- helpers ------------------------------------------------------------- */

static dg_safetensors *open_st(const char *rel) {
  dg_safetensors *st = NULL;
  dg_status s = dg_safetensors_open(t_data(rel), &st, err, sizeof err);
  CHECK_MSG(s == DG_STATUS_OK, "%s: %s", rel, err);
  return st;
}

static dg_weights *weights_from(const dg_safetensors *st, const char *prefix, dg_key_map_fn map,
                                void *ud) {
  dg_weights *w = dg_weights_new();
  dg_status s = dg_weights_add(w, st, prefix, map, ud, err, sizeof err);
  CHECK_MSG(s == DG_STATUS_OK, "weights_add: %s", err);
  return w;
}

static double max_abs_diff(const dg_tensor *a, const dg_tensor *b) {
  int64_t n = dg_tensor_numel(a);
  if (n != dg_tensor_numel(b)) return 1e30;
  double m = 0;
  for (int64_t i = 0; i < n; i++) {
    double d = fabs((double)dg_load_f32(a->data, a->dtype, i) - dg_load_f32(b->data, b->dtype, i));
    if (!(d <= m)) m = d; /* NaN propagates */
  }
  return m;
}

static double max_abs(const dg_tensor *a) {
  double m = 0;
  for (int64_t i = 0; i < dg_tensor_numel(a); i++) {
    double v = fabs((double)dg_load_f32(a->data, a->dtype, i));
    if (v > m) m = v;
  }
  return m;
}

static dg_engine *engine(dg_isa isa, int threads) {
  dg_engine_params p = dg_engine_params_default();
  p.isa = isa;
  p.n_threads = threads;
  dg_engine *e = NULL;
  CHECK(dg_engine_new(&p, &e) == DG_STATUS_OK);
  return e;
}

static const dg_tensor *gold(const dg_safetensors *g, const char *c, const char *what) {
  char name[160];
  snprintf(name, sizeof name, "%s.%s", c, what);
  const dg_tensor *t = dg_safetensors_find(g, name);
  CHECK_MSG(t != NULL, "golden %s missing", name);
  return t;
}

/* Run one golden case; returns the max abs difference (or 1e30 on failure). */
static double run_case(const dg_unet *u, dg_engine *e, dg_arena *a, const dg_safetensors *g,
                       const char *c, const dg_unet_extras *ex, dg_tensor *out_copy) {
  const dg_tensor *x = gold(g, c, "sample"), *t = gold(g, c, "timestep");
  const dg_tensor *ctx = gold(g, c, "encoder_hidden_states"), *want = gold(g, c, "out");
  if (!x || !t || !ctx || !want) return 1e30;
  float *buf = malloc(dg_tensor_nbytes(want));
  dg_tensor y = dg_tensor_make(DG_DTYPE_F32, 4, want->shape, buf);
  dg_status s = dg_unet_forward(u, e, a, x, t, ctx, ex, &y);
  CHECK_MSG(s == DG_STATUS_OK, "forward %s: %s", c, dg_strerror(s));
  double d = s == DG_STATUS_OK ? max_abs_diff(&y, want) : 1e30;
  if (out_copy) memcpy(out_copy->data, buf, dg_tensor_nbytes(want));
  free(buf);
  return d;
}

/* ---- configs and enumeration --------------------------------------------- */

typedef struct count_ctx {
  int n;
  int64_t params;
  const dg_safetensors *st; /* when set: every name must exist with the same shape */
  int bad;
} count_ctx;

static int count_cb(void *ud, const char *name, int ndim, const int64_t *shape) {
  count_ctx *c = ud;
  int64_t p = 1;
  for (int i = 0; i < ndim; i++) p *= shape[i];
  c->n++;
  c->params += p;
  if (c->st) {
    const dg_tensor *t = dg_safetensors_find(c->st, name);
    int ok = t && t->ndim == ndim;
    for (int i = 0; ok && i < ndim; i++) ok = t->shape[i] == shape[i];
    if (!ok) {
      if (c->bad++ < 5) fprintf(stderr, "enumerate: %s not in the file with that shape\n", name);
    }
  }
  return 0;
}

static int stop_cb(void *ud, const char *name, int ndim, const int64_t *shape) {
  (void)name, (void)ndim, (void)shape;
  return ++*(int *)ud == 3 ? 7 : 0;
}

static void same_config(const dg_unet_config *a, const dg_unet_config *b, const char *what) {
  int ok = a->n_levels == b->n_levels && a->in_channels == b->in_channels &&
           a->out_channels == b->out_channels && a->cross_attention_dim == b->cross_attention_dim &&
           a->use_linear_projection == b->use_linear_projection &&
           a->mid_block_cross_attn == b->mid_block_cross_attn &&
           a->time_embed_dim == b->time_embed_dim && a->addition_text_time == b->addition_text_time;
  for (int i = 0; ok && i < a->n_levels; i++)
    ok = a->block_out_channels[i] == b->block_out_channels[i] &&
         a->layers_per_block[i] == b->layers_per_block[i] &&
         a->down_cross_attn[i] == b->down_cross_attn[i] &&
         a->up_cross_attn[i] == b->up_cross_attn[i] &&
         a->num_attention_heads[i] == b->num_attention_heads[i] &&
         a->transformer_layers_per_block[i] == b->transformer_layers_per_block[i];
  CHECK_MSG(ok, "config mismatch: %s", what);
}

static void test_configs(const dg_unet_config *tiny) {
  CHECK(tiny->n_levels == 2);
  CHECK(tiny->block_out_channels[0] == 32 && tiny->block_out_channels[1] == 64);
  CHECK(tiny->down_cross_attn[0] == 1 && tiny->down_cross_attn[1] == 0);
  CHECK(tiny->up_cross_attn[0] == 0 && tiny->up_cross_attn[1] == 1);
  CHECK(tiny->num_attention_heads[0] == 8 && tiny->num_attention_heads[1] == 8);
  CHECK(tiny->cross_attention_dim == 32 && tiny->time_embed_dim == 128);
  CHECK(tiny->layers_per_block[0] == 2 && tiny->mid_block_cross_attn == 1);
  CHECK(!tiny->use_linear_projection && tiny->flip_sin_to_cos && tiny->freq_shift == 0.0f);
  CHECK_NEAR(tiny->norm_eps, 1e-5, 1e-12);

  /* Full-size architectures: tensor and parameter counts of the published models. */
  dg_unet_config sd15 = dg_unet_config_sd15();
  count_ctx cc = {0};
  CHECK(dg_unet_enumerate(&sd15, count_cb, &cc) == 0);
  CHECK_MSG(cc.n == 686 && cc.params == 859520964LL, "sd15: %d tensors, %lld params", cc.n,
            (long long)cc.params);
  CHECK(dg_unet_n_cross_attn_layers(&sd15) == 16);
  CHECK(dg_unet_n_skips(&sd15) == 12);
  char nm[128];
  CHECK(dg_unet_cross_attn_layer_name(&sd15, 0, nm, sizeof nm) == DG_STATUS_OK &&
        strcmp(nm, "down_blocks.0.attentions.0.transformer_blocks.0.attn2") == 0);
  CHECK(dg_unet_cross_attn_layer_name(&sd15, 6, nm, sizeof nm) == DG_STATUS_OK &&
        strcmp(nm, "up_blocks.1.attentions.0.transformer_blocks.0.attn2") == 0);
  CHECK(dg_unet_cross_attn_layer_name(&sd15, 15, nm, sizeof nm) == DG_STATUS_OK &&
        strcmp(nm, "mid_block.attentions.0.transformer_blocks.0.attn2") == 0);
  CHECK(dg_unet_cross_attn_layer_name(&sd15, 16, nm, sizeof nm) == DG_STATUS_ERR_INVALID);
  int64_t sh[4];
  CHECK(dg_unet_skip_shape(&sd15, 11, 2, 64, 64, sh) == DG_STATUS_OK && sh[0] == 2 &&
        sh[1] == 1280 && sh[2] == 8 && sh[3] == 8);
  CHECK(dg_unet_skip_shape(&sd15, 3, 1, 64, 64, sh) == DG_STATUS_OK && sh[1] == 320 &&
        sh[2] == 32);
  CHECK(dg_unet_skip_shape(&sd15, 12, 1, 64, 64, sh) == DG_STATUS_ERR_INVALID);
  dg_unet_config xl = dg_unet_config_sdxl();
  cc = (count_ctx){0};
  CHECK(dg_unet_enumerate(&xl, count_cb, &cc) == 0);
  CHECK_MSG(cc.n == 1680 && cc.params == 2567463684LL, "sdxl: %d tensors, %lld params", cc.n,
            (long long)cc.params);
  CHECK(dg_unet_n_cross_attn_layers(&xl) == 70);
  CHECK(dg_unet_n_skips(&xl) == 9);
  int k = 0;
  CHECK(dg_unet_enumerate(&sd15, stop_cb, &k) == 7 && k == 3);

  /* JSON text: SDXL-style lists, text_time; errors. */
  dg_unet_config c;
  const char *xl_json =
      "{\"_class_name\":\"UNet2DConditionModel\",\"block_out_channels\":[320,640,1280],"
      "\"down_block_types\":[\"DownBlock2D\",\"CrossAttnDownBlock2D\",\"CrossAttnDownBlock2D\"],"
      "\"up_block_types\":[\"CrossAttnUpBlock2D\",\"CrossAttnUpBlock2D\",\"UpBlock2D\"],"
      "\"attention_head_dim\":[5,10,20],\"transformer_layers_per_block\":[1,2,10],"
      "\"cross_attention_dim\":2048,\"use_linear_projection\":true,\"addition_embed_type\":"
      "\"text_time\",\"addition_time_embed_dim\":256,\"projection_class_embeddings_input_dim\":"
      "2816,\"layers_per_block\":2,\"num_attention_heads\":null,\"class_embed_type\":null}";
  CHECK_MSG(dg_unet_config_parse_json(xl_json, &c, err, sizeof err) == DG_STATUS_OK, "%s", err);
  same_config(&c, &xl, "sdxl json");
  CHECK(c.projection_class_embeddings_input_dim == 2816 && c.addition_time_embed_dim == 256);
  CHECK(dg_unet_config_parse_json("{\"block_out_channels\":[32,64],\"down_block_types\":"
                                  "[\"SimpleCrossAttnDownBlock2D\",\"DownBlock2D\"]}",
                                  &c, err, sizeof err) == DG_STATUS_ERR_UNSUPPORTED);
  CHECK(strstr(err, "SimpleCrossAttnDownBlock2D") != NULL);
  CHECK(dg_unet_config_parse_json("{\"class_embed_type\":\"timestep\"}", &c, err, sizeof err) ==
        DG_STATUS_ERR_UNSUPPORTED);
  CHECK(dg_unet_config_parse_json("{\"block_out_channels\":[30,64],\"down_block_types\":"
                                  "[\"DownBlock2D\",\"DownBlock2D\"],\"up_block_types\":"
                                  "[\"UpBlock2D\",\"UpBlock2D\"]}",
                                  &c, err, sizeof err) == DG_STATUS_ERR_INVALID);
  CHECK(dg_unet_config_parse_json("{ not json", &c, err, sizeof err) == DG_STATUS_ERR_FORMAT);
  CHECK(dg_unet_config_parse_json("no/such/config.json", &c, err, sizeof err) ==
        DG_STATUS_ERR_IO);
}

/* ---- key map --------------------------------------------------------------- */

static void test_keymap(dg_unet_config *cfg) {
  static const char *const pairs[][2] = {
      {"input_blocks.0.0.weight", "conv_in.weight"},
      {"input_blocks.1.0.in_layers.0.weight", "down_blocks.0.resnets.0.norm1.weight"},
      {"input_blocks.2.1.proj_in.bias", "down_blocks.0.attentions.1.proj_in.bias"},
      {"input_blocks.3.0.op.weight", "down_blocks.0.downsamplers.0.conv.weight"},
      {"input_blocks.4.0.skip_connection.weight", "down_blocks.1.resnets.0.conv_shortcut.weight"},
      {"input_blocks.5.0.emb_layers.1.bias", "down_blocks.1.resnets.1.time_emb_proj.bias"},
      {"middle_block.1.transformer_blocks.0.attn2.to_k.weight",
       "mid_block.attentions.0.transformer_blocks.0.attn2.to_k.weight"},
      {"middle_block.2.out_layers.3.weight", "mid_block.resnets.1.conv2.weight"},
      {"output_blocks.2.1.conv.weight", "up_blocks.0.upsamplers.0.conv.weight"},
      {"output_blocks.5.1.transformer_blocks.0.ff.net.2.weight",
       "up_blocks.1.attentions.2.transformer_blocks.0.ff.net.2.weight"},
      {"time_embed.2.bias", "time_embedding.linear_2.bias"},
      {"out.0.weight", "conv_norm_out.weight"},
      {"out.2.bias", "conv_out.bias"},
  };
  char out[160];
  for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
    int ok = dg_unet_ldm_key_map(pairs[i][0], out, sizeof out, cfg);
    CHECK_MSG(ok && strcmp(out, pairs[i][1]) == 0, "%s -> %s", pairs[i][0], ok ? out : "(none)");
  }
  CHECK(!dg_unet_ldm_key_map("input_blocks.6.0.in_layers.0.weight", out, sizeof out, cfg));
  CHECK(!dg_unet_ldm_key_map("output_blocks.6.0.in_layers.0.weight", out, sizeof out, cfg));
  CHECK(!dg_unet_ldm_key_map("betas", out, sizeof out, cfg));
  /* SD1.5 / SDXL numbering */
  dg_unet_config sd15 = dg_unet_config_sd15(), xl = dg_unet_config_sdxl();
  CHECK(dg_unet_ldm_key_map("output_blocks.8.2.conv.weight", out, sizeof out, &sd15) &&
        strcmp(out, "up_blocks.2.upsamplers.0.conv.weight") == 0);
  CHECK(dg_unet_ldm_key_map("input_blocks.11.0.out_layers.3.bias", out, sizeof out, &sd15) &&
        strcmp(out, "down_blocks.3.resnets.1.conv2.bias") == 0);
  CHECK(dg_unet_ldm_key_map("label_emb.0.0.weight", out, sizeof out, &xl) &&
        strcmp(out, "add_embedding.linear_1.weight") == 0);
  CHECK(dg_unet_ldm_key_map("input_blocks.3.0.op.bias", out, sizeof out, &xl) &&
        strcmp(out, "down_blocks.0.downsamplers.0.conv.bias") == 0);
  CHECK(dg_unet_ldm_key_map("output_blocks.2.2.conv.weight", out, sizeof out, &xl) &&
        strcmp(out, "up_blocks.0.upsamplers.0.conv.weight") == 0);
  CHECK(dg_unet_ldm_key_map("input_blocks.8.1.transformer_blocks.9.norm3.weight", out, sizeof out,
                            &xl) &&
        strcmp(out, "down_blocks.2.attentions.1.transformer_blocks.9.norm3.weight") == 0);
}

/* Every parameter of the full SD1.5 and SDXL UNets survives diffusers -> LDM
 * (written here independently, with the fixed "3*i + j" numbering of
 * layers_per_block = 2, as diffusers' conversion script does) -> dg_unet_ldm_key_map. */
typedef struct rt_ctx {
  const dg_unet_config *c;
  int n, bad;
} rt_ctx;

static int to_ldm(const dg_unet_config *c, const char *d, char *out, size_t n) {
  static const char *const res[][2] = {{"norm1.", "in_layers.0."},   {"conv1.", "in_layers.2."},
                                       {"time_emb_proj.", "emb_layers.1."},
                                       {"norm2.", "out_layers.0."}, {"conv2.", "out_layers.3."},
                                       {"conv_shortcut.", "skip_connection."}};
  static const char *const top[][2] = {{"conv_in.", "input_blocks.0.0."},
                                       {"time_embedding.linear_1.", "time_embed.0."},
                                       {"time_embedding.linear_2.", "time_embed.2."},
                                       {"add_embedding.linear_1.", "label_emb.0.0."},
                                       {"add_embedding.linear_2.", "label_emb.0.2."},
                                       {"conv_norm_out.", "out.0."},
                                       {"conv_out.", "out.2."}};
  for (size_t k = 0; k < sizeof top / sizeof top[0]; k++)
    if (!strncmp(d, top[k][0], strlen(top[k][0])))
      return snprintf(out, n, "%s%s", top[k][1], d + strlen(top[k][0])) > 0;
  int i, j, off = 0;
  char blk[96];
  const char *rest;
  if (sscanf(d, "down_blocks.%d.resnets.%d.%n", &i, &j, &off) == 2 && off) {
    snprintf(blk, sizeof blk, "input_blocks.%d.0.", 3 * i + j + 1);
    rest = d + off;
  } else if (sscanf(d, "down_blocks.%d.attentions.%d.%n", &i, &j, &off) == 2 && off) {
    return snprintf(out, n, "input_blocks.%d.1.%s", 3 * i + j + 1, d + off) > 0;
  } else if (sscanf(d, "down_blocks.%d.downsamplers.0.conv.%n", &i, &off) == 1 && off) {
    return snprintf(out, n, "input_blocks.%d.0.op.%s", 3 * (i + 1), d + off) > 0;
  } else if (sscanf(d, "up_blocks.%d.resnets.%d.%n", &i, &j, &off) == 2 && off) {
    snprintf(blk, sizeof blk, "output_blocks.%d.0.", 3 * i + j);
    rest = d + off;
  } else if (sscanf(d, "up_blocks.%d.attentions.%d.%n", &i, &j, &off) == 2 && off) {
    return snprintf(out, n, "output_blocks.%d.1.%s", 3 * i + j, d + off) > 0;
  } else if (sscanf(d, "up_blocks.%d.upsamplers.0.conv.%n", &i, &off) == 1 && off) {
    return snprintf(out, n, "output_blocks.%d.%d.conv.%s", 3 * i + 2, c->up_cross_attn[i] ? 2 : 1,
                    d + off) > 0;
  } else if (sscanf(d, "mid_block.attentions.0.%n", &off) == 0 && off) {
    return snprintf(out, n, "middle_block.1.%s", d + off) > 0;
  } else if (sscanf(d, "mid_block.resnets.%d.%n", &j, &off) == 1 && off) {
    snprintf(blk, sizeof blk, "middle_block.%d.", 2 * j);
    rest = d + off;
  } else {
    return 0;
  }
  for (size_t k = 0; k < sizeof res / sizeof res[0]; k++)
    if (!strncmp(rest, res[k][0], strlen(res[k][0])))
      return snprintf(out, n, "%s%s%s", blk, res[k][1], rest + strlen(res[k][0])) > 0;
  return 0;
}

static int rt_cb(void *ud, const char *name, int ndim, const int64_t *shape) {
  rt_ctx *r = ud;
  char ldm[200], back[200];
  (void)ndim, (void)shape;
  r->n++;
  int ok = to_ldm(r->c, name, ldm, sizeof ldm) &&
           dg_unet_ldm_key_map(ldm, back, sizeof back, (void *)r->c) && !strcmp(back, name);
  if (!ok && r->bad++ < 5) fprintf(stderr, "key map round trip: %s\n", name);
  return 0;
}

static void test_keymap_full(void) {
  dg_unet_config cs[2] = {dg_unet_config_sd15(), dg_unet_config_sdxl()};
  for (int k = 0; k < 2; k++) {
    rt_ctx r = {&cs[k], 0, 0};
    CHECK(dg_unet_enumerate(&cs[k], rt_cb, &r) == 0);
    CHECK_MSG(r.bad == 0 && r.n == (k ? 1680 : 686), "%s: %d names, %d bad", k ? "sdxl" : "sd15",
              r.n, r.bad);
  }
}

/* ---- golden forward --------------------------------------------------------- */

static const char *const cases[] = {"b1", "b2", "b2t", "ns"};

static void test_goldens(const dg_unet *u, const dg_safetensors *g, const char *layout,
                         double tol, int n_configs) {
  static const struct { dg_isa isa; int threads; } runs[] = {
      {DG_ISA_REF, 1}, {DG_ISA_AUTO, 1}, {DG_ISA_REF, 2}, {DG_ISA_AUTO, 2}};
  dg_arena *a = dg_arena_new(1 << 20);
  for (int r = 0; r < n_configs; r++) {
    dg_engine *e = engine(runs[r].isa, runs[r].threads);
    if (!e) continue;
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
      double d = run_case(u, e, a, g, cases[c], NULL, NULL);
      printf("unet %-6s %-5s isa=%-7s threads=%d: max|diff| %.3g\n", layout, cases[c],
             dg_isa_name(dg_engine_isa(e)), runs[r].threads, d);
      CHECK_MSG(d <= tol, "%s %s isa %s threads %d: %g > %g", layout, cases[c],
                dg_isa_name(dg_engine_isa(e)), runs[r].threads, d, tol);
    }
    dg_engine_free(e);
  }
  dg_arena_free(a);
}

typedef struct dbg_ctx {
  const dg_safetensors *g;
  int seen, bad;
} dbg_ctx;

static void dbg_cb(void *ud, const char *name, const dg_tensor *t) {
  dbg_ctx *d = ud;
  char key[200];
  snprintf(key, sizeof key, "b1.debug.%s", name);
  const dg_tensor *want = dg_safetensors_find(d->g, key);
  if (!want) return;
  d->seen++;
  double diff = max_abs_diff(t, want);
  if (!(diff <= TOL_F32)) {
    d->bad++;
    fprintf(stderr, "debug %s: max|diff| %g\n", name, diff);
  }
}

static void test_debug(const dg_unet *u, const dg_safetensors *g) {
  dg_engine *e = engine(DG_ISA_AUTO, 1);
  dg_arena *a = dg_arena_new(1 << 20);
  dbg_ctx d = {g, 0, 0};
  dg_unet_extras ex;
  memset(&ex, 0, sizeof ex);
  ex.debug = dbg_cb;
  ex.debug_ud = &d;
  double diff = run_case(u, e, a, g, "b1", &ex, NULL);
  CHECK(diff <= TOL_F32);
  CHECK_MSG(d.seen == 15 && d.bad == 0, "debug activations: %d compared, %d bad", d.seen, d.bad);
  dg_arena_free(a);
  dg_engine_free(e);
}

/* ---- f16 / bf16 copies of the tiny model ---------------------------------- */

/* The diffusers file with every F32 tensor rounded to dt; stored as dt, or
 * (roundtrip) rounded and stored back as F32. */
static char *write_converted(const dg_safetensors *src, dg_dtype dt, int roundtrip) {
  size_t n = dg_safetensors_count(src);
  dg_tensor *ts = calloc(n, sizeof *ts);
  const dg_tensor **ptrs = calloc(n, sizeof *ptrs);
  for (size_t i = 0; i < n; i++) {
    const dg_tensor *t = dg_safetensors_at(src, i);
    ts[i] = *t;
    if (t->dtype == DG_DTYPE_F32) {
      int64_t m = dg_tensor_numel(t);
      uint16_t *d = malloc((size_t)m * 2);
      float *f = roundtrip ? malloc((size_t)m * 4) : NULL;
      for (int64_t j = 0; j < m; j++) {
        float v = ((const float *)t->data)[j];
        d[j] = dt == DG_DTYPE_F16 ? dg_f32_to_f16(v) : dg_f32_to_bf16(v);
        if (f) f[j] = dt == DG_DTYPE_F16 ? dg_f16_to_f32(d[j]) : dg_bf16_to_f32(d[j]);
      }
      ts[i].dtype = roundtrip ? DG_DTYPE_F32 : dt;
      ts[i].data = d;
      if (f) {
        free(d);
        ts[i].data = f;
      }
    }
    ptrs[i] = &ts[i];
  }
  const char *tmp = getenv("TMPDIR");
  char *path = malloc(4096);
  snprintf(path, 4096, "%s/dg_test_unet_%d_%s%s.safetensors", tmp && *tmp ? tmp : "/tmp",
           (int)getpid(), dg_dtype_name(dt), roundtrip ? "_rt" : "");
  dg_status s = dg_safetensors_write(path, ptrs, n, NULL, err, sizeof err);
  CHECK_MSG(s == DG_STATUS_OK, "write %s: %s", path, err);
  for (size_t i = 0; i < n; i++)
    if (ts[i].data != dg_safetensors_at(src, i)->data) free(ts[i].data);
  free(ts);
  free(ptrs);
  return path;
}

typedef struct loaded {
  char *path;
  dg_safetensors *st;
  dg_weights *w;
  dg_unet *u;
} loaded;

static loaded load_converted(const dg_unet_config *cfg, const dg_safetensors *src, dg_dtype dt,
                             int roundtrip) {
  loaded l = {write_converted(src, dt, roundtrip), NULL, NULL, NULL};
  CHECK(dg_safetensors_open(l.path, &l.st, err, sizeof err) == DG_STATUS_OK);
  if (!l.st) return l;
  l.w = weights_from(l.st, "", NULL, NULL);
  l.u = dg_unet_new(cfg, l.w, err, sizeof err);
  CHECK_MSG(l.u != NULL, "%s", err);
  return l;
}

static void unload(loaded *l) {
  dg_unet_free(l->u);
  dg_weights_free(l->w);
  dg_safetensors_close(l->st);
  unlink(l->path);
  free(l->path);
}

/* Half weights: (1) the kernels read f16/bf16 exactly: same output as the f32
 * model whose weights were rounded the same way (<= 1e-4); (2) the distance to
 * the f32 golden is the weight rounding alone, stated relative to max|out|. */
static void test_half(const dg_unet_config *cfg, const dg_safetensors *diff_st,
                      const dg_safetensors *g, dg_dtype dt, double rel_tol) {
  loaded h = load_converted(cfg, diff_st, dt, 0), r = load_converted(cfg, diff_st, dt, 1);
  if (h.u && r.u) {
    dg_engine *e = engine(DG_ISA_AUTO, 2);
    dg_arena *a = dg_arena_new(1 << 20);
    const dg_tensor *want = gold(g, "b2", "out");
    float *b = malloc(dg_tensor_nbytes(want));
    dg_tensor yr = dg_tensor_make(DG_DTYPE_F32, 4, want->shape, b);
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
      const dg_tensor *o = gold(g, cases[c], "out");
      yr.shape[2] = o->shape[2], yr.shape[3] = o->shape[3], yr.shape[0] = o->shape[0];
      double d = run_case(h.u, e, a, g, cases[c], NULL, NULL);
      run_case(r.u, e, a, g, cases[c], NULL, &yr);
      double m = max_abs(o);
      /* same kernels on the same rounded values, read as half vs as f32 */
      dg_tensor yh = yr;
      float *b2 = malloc(dg_tensor_nbytes(o));
      yh.data = b2;
      run_case(h.u, e, a, g, cases[c], NULL, &yh);
      double dr = max_abs_diff(&yh, &yr);
      free(b2);
      printf("unet %s weights %-4s: vs golden %.3g (%.3g of max|out| %.3g); vs f32-rounded %.3g\n",
             dg_dtype_name(dt), cases[c], d, d / m, m, dr);
      CHECK_MSG(dr <= TOL_F32, "%s %s: half vs rounded f32 %g", dg_dtype_name(dt), cases[c], dr);
      CHECK_MSG(d <= rel_tol * m, "%s %s: %g > %g * %g", dg_dtype_name(dt), cases[c], d, rel_tol,
                m);
    }
    free(b);
    dg_arena_free(a);
    dg_engine_free(e);
  }
  unload(&h);
  unload(&r);
}

/* ---- hooks: ControlNet residuals, IP-Adapter sets ------------------------- */

static void test_hooks(const dg_unet *u, const dg_unet_config *cfg, const dg_safetensors *g,
                       const dg_weights *w) {
  dg_engine *e = engine(DG_ISA_AUTO, 1);
  dg_arena *a = dg_arena_new(1 << 20);
  const dg_tensor *want = gold(g, "b2", "out");
  int64_t n = dg_tensor_numel(want);
  float *b0 = malloc((size_t)n * 4), *b1 = malloc((size_t)n * 4), *b2 = malloc((size_t)n * 4);
  dg_tensor y0 = dg_tensor_make(DG_DTYPE_F32, 4, want->shape, b0);
  dg_tensor y1 = dg_tensor_make(DG_DTYPE_F32, 4, want->shape, b1);
  dg_tensor y2 = dg_tensor_make(DG_DTYPE_F32, 4, want->shape, b2);
  run_case(u, e, a, g, "b2", NULL, &y0);

  /* ControlNet residuals: deterministic pseudo-random tensors of every skip's shape. */
  int ns = dg_unet_n_skips(cfg);
  CHECK(ns == 6);
  dg_tensor res[16], mid;
  const dg_tensor *resp[16];
  float *store[17];
  uint32_t seed = 12345;
  for (int i = 0; i <= ns; i++) {
    int64_t sh[4];
    if (i < ns) CHECK(dg_unet_skip_shape(cfg, i, 2, 8, 8, sh) == DG_STATUS_OK);
    else sh[0] = 2, sh[1] = 64, sh[2] = 4, sh[3] = 4;
    int64_t m = sh[0] * sh[1] * sh[2] * sh[3];
    store[i] = malloc((size_t)m * 4);
    for (int64_t j = 0; j < m; j++) {
      seed = seed * 1664525u + 1013904223u;
      store[i][j] = ((float)(seed >> 8) / 16777216.0f - 0.5f) * 0.4f;
    }
    if (i < ns) {
      res[i] = dg_tensor_make(DG_DTYPE_F32, 4, sh, store[i]);
      resp[i] = &res[i];
    } else {
      mid = dg_tensor_make(DG_DTYPE_F32, 4, sh, store[i]);
    }
  }
  dg_unet_extras ex;
  memset(&ex, 0, sizeof ex);
  ex.n_control = 1;
  ex.control[0] = (dg_unet_control){resp, ns, &mid, 0.0f};
  run_case(u, e, a, g, "b2", &ex, &y1);
  CHECK_MSG(max_abs_diff(&y0, &y1) == 0, "control at scale 0 changed the output");
  ex.control[0].scale = 0.5f;
  run_case(u, e, a, g, "b2", &ex, &y1);
  double dc = max_abs_diff(&y0, &y1);
  CHECK_MSG(dc > 1e-3, "control residuals had no effect (%g)", dc);
  /* Two sets at 0.25 each == one set at 0.5 (the residuals are exact multiples). */
  ex.n_control = 2;
  ex.control[0].scale = 0.25f;
  ex.control[1] = ex.control[0];
  run_case(u, e, a, g, "b2", &ex, &y2);
  CHECK_MSG(max_abs_diff(&y1, &y2) <= 1e-5, "two control sets: %g", max_abs_diff(&y1, &y2));
  /* Wrong count of residuals is a shape error, not a crash. */
  ex.n_control = 1;
  ex.control[0].n_down = ns - 1;
  {
    const dg_safetensors *gg = g;
    dg_status s = dg_unet_forward(u, e, a, gold(gg, "b2", "sample"), gold(gg, "b2", "timestep"),
                                  gold(gg, "b2", "encoder_hidden_states"), &ex, &y2);
    CHECK(s == DG_STATUS_ERR_SHAPE);
  }

  /* IP-Adapter hook: use the text context as image tokens and each layer's own
   * attn2 K/V weights; with layer scales 0 nothing changes, with scale s > 0 the
   * output moves. */
  int nx = dg_unet_n_cross_attn_layers(cfg);
  CHECK(nx == 6);
  const dg_tensor *tk[8], *tv[8];
  float ls[8];
  for (int l = 0; l < nx && l < 8; l++) {
    char nm[160], kn[200];
    CHECK(dg_unet_cross_attn_layer_name(cfg, l, nm, sizeof nm) == DG_STATUS_OK);
    snprintf(kn, sizeof kn, "%s.to_k.weight", nm);
    tk[l] = dg_weights_get(w, kn);
    snprintf(kn, sizeof kn, "%s.to_v.weight", nm);
    tv[l] = dg_weights_get(w, kn);
    CHECK(tk[l] && tv[l]);
    ls[l] = 0.0f;
  }
  memset(&ex, 0, sizeof ex);
  ex.n_ip = 1;
  ex.ip[0] = (dg_unet_ip){gold(g, "b2", "encoder_hidden_states"), tk, tv, ls, 1.0f};
  run_case(u, e, a, g, "b2", &ex, &y1);
  CHECK_MSG(max_abs_diff(&y0, &y1) == 0, "ip with layer scales 0 changed the output");
  ex.ip[0].layer_scale = NULL;
  ex.ip[0].scale = 0.7f;
  run_case(u, e, a, g, "b2", &ex, &y1);
  double di = max_abs_diff(&y0, &y1);
  CHECK_MSG(di > 1e-3, "ip set had no effect (%g)", di);

  for (int i = 0; i <= ns; i++) free(store[i]);
  free(b0), free(b1), free(b2);
  dg_arena_free(a);
  dg_engine_free(e);
}

/* Odd latent sizes: every upsampling must meet its skip's size. */
static void test_odd(const dg_unet *u) {
  dg_engine *e = engine(DG_ISA_AUTO, 2);
  dg_arena *a = dg_arena_new(1 << 20);
  static const int64_t sizes[][2] = {{9, 7}, {5, 13}, {1, 1}, {3, 2}};
  for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
    int64_t xs[4] = {1, 4, sizes[s][0], sizes[s][1]}, cs[3] = {1, 5, 32}, ts[1] = {1};
    int64_t n = xs[2] * xs[3] * 4;
    float *xb = malloc((size_t)n * 4), *yb = malloc((size_t)n * 4), cb[5 * 32], tb[1] = {500.0f};
    for (int64_t i = 0; i < n; i++) xb[i] = (float)((i * 37) % 17) / 8.0f - 1.0f;
    for (int i = 0; i < 5 * 32; i++) cb[i] = (float)((i * 11) % 13) / 6.0f - 1.0f;
    dg_tensor x = dg_tensor_make(DG_DTYPE_F32, 4, xs, xb), y = dg_tensor_make(DG_DTYPE_F32, 4, xs, yb);
    dg_tensor c = dg_tensor_make(DG_DTYPE_F32, 3, cs, cb), t = dg_tensor_make(DG_DTYPE_F32, 1, ts, tb);
    dg_status st = dg_unet_forward(u, e, a, &x, &t, &c, NULL, &y);
    CHECK_MSG(st == DG_STATUS_OK, "%lldx%lld: %s", (long long)xs[2], (long long)xs[3],
              dg_strerror(st));
    int finite = 1;
    for (int64_t i = 0; i < n; i++) finite &= isfinite(yb[i]) ? 1 : 0;
    CHECK(finite);
    free(xb), free(yb);
  }
  /* Bad shapes are errors. */
  int64_t xs[4] = {1, 3, 8, 8}, cs[3] = {1, 77, 32}, ts[1] = {1};
  float xb[3 * 64], yb[4 * 64], cb[77 * 32], tb[1] = {1};
  dg_tensor x = dg_tensor_make(DG_DTYPE_F32, 4, xs, xb);
  int64_t ys[4] = {1, 4, 8, 8};
  dg_tensor y = dg_tensor_make(DG_DTYPE_F32, 4, ys, yb);
  dg_tensor c = dg_tensor_make(DG_DTYPE_F32, 3, cs, cb), t = dg_tensor_make(DG_DTYPE_F32, 1, ts, tb);
  CHECK(dg_unet_forward(u, e, a, &x, &t, &c, NULL, &y) == DG_STATUS_ERR_SHAPE);
  dg_arena_free(a);
  dg_engine_free(e);
}

/* A missing or misshapen tensor fails dg_unet_new with its name. */
static int drop_one(const char *name, char *out, size_t n, void *ud) {
  (void)ud;
  if (strcmp(name, "up_blocks.1.attentions.2.transformer_blocks.0.attn2.to_v.weight") == 0)
    return 0;
  snprintf(out, n, "%s", name);
  return 1;
}

static void test_bad_weights(const dg_unet_config *cfg, const dg_safetensors *st) {
  dg_weights *w = weights_from(st, "", drop_one, NULL);
  dg_unet *u = dg_unet_new(cfg, w, err, sizeof err);
  CHECK(u == NULL);
  CHECK_MSG(strstr(err, "up_blocks.1.attentions.2.transformer_blocks.0.attn2.to_v.weight") &&
                strstr(err, "missing"),
            "%s", err);
  dg_weights_free(w);
  dg_unet_config c2 = *cfg;
  c2.cross_attention_dim = 48;
  w = weights_from(st, "", NULL, NULL);
  u = dg_unet_new(&c2, w, err, sizeof err);
  CHECK(u == NULL);
  CHECK_MSG(strstr(err, "attn2.to_k.weight") && strstr(err, "shape"), "%s", err);
  c2 = *cfg;
  c2.num_attention_heads[0] = 5; /* does not divide 32 */
  u = dg_unet_new(&c2, w, err, sizeof err);
  CHECK(u == NULL && strstr(err, "heads"));
  dg_weights_free(w);
}

/* SDXL-style micro-conditioning path on a tiny text_time config with
 * pseudo-random weights written from dg_unet_enumerate (as gen-model does). */
typedef struct gen_ctx {
  dg_tensor *ts;
  float **bufs;
  char **names;
  int n;
  uint32_t seed;
} gen_ctx;

static int gen_cb(void *ud, const char *name, int ndim, const int64_t *shape) {
  gen_ctx *g = ud;
  int64_t m = 1;
  for (int i = 0; i < ndim; i++) m *= shape[i];
  float *d = malloc((size_t)m * 4);
  int is_norm = strstr(name, "norm") != NULL && strstr(name, ".weight") != NULL;
  for (int64_t j = 0; j < m; j++) {
    g->seed = g->seed * 1664525u + 1013904223u;
    float r = ((float)(g->seed >> 8) / 16777216.0f - 0.5f) * 0.2f;
    d[j] = is_norm ? 1.0f + r : r;
  }
  g->names[g->n] = strdup(name);
  g->bufs[g->n] = d;
  g->ts[g->n] = dg_tensor_make(DG_DTYPE_F32, ndim, shape, d);
  g->ts[g->n].name = g->names[g->n];
  g->n++;
  return 0;
}

static void test_text_time(void) {
  dg_unet_config c = dg_unet_config_sdxl();
  c.block_out_channels[0] = 32, c.block_out_channels[1] = 64, c.block_out_channels[2] = 64;
  c.num_attention_heads[0] = 2, c.num_attention_heads[1] = 2, c.num_attention_heads[2] = 4;
  c.transformer_layers_per_block[2] = 2;
  c.cross_attention_dim = 24;
  c.time_embed_dim = 128;
  c.addition_time_embed_dim = 8;
  c.projection_class_embeddings_input_dim = 16 + 6 * 8;
  count_ctx cc = {0};
  CHECK(dg_unet_enumerate(&c, count_cb, &cc) == 0);
  gen_ctx gc = {calloc((size_t)cc.n, sizeof(dg_tensor)), calloc((size_t)cc.n, sizeof(float *)),
                calloc((size_t)cc.n, sizeof(char *)), 0, 777};
  CHECK(dg_unet_enumerate(&c, gen_cb, &gc) == 0);
  const dg_tensor **ptrs = calloc((size_t)gc.n, sizeof *ptrs);
  for (int i = 0; i < gc.n; i++) ptrs[i] = &gc.ts[i];
  const char *tmp = getenv("TMPDIR");
  char path[4096];
  snprintf(path, sizeof path, "%s/dg_test_unet_%d_xl.safetensors", tmp && *tmp ? tmp : "/tmp",
           (int)getpid());
  CHECK(dg_safetensors_write(path, ptrs, (size_t)gc.n, NULL, err, sizeof err) == DG_STATUS_OK);
  dg_safetensors *st = NULL;
  CHECK(dg_safetensors_open(path, &st, err, sizeof err) == DG_STATUS_OK);
  dg_weights *w = st ? weights_from(st, "", NULL, NULL) : NULL;
  dg_unet_config det;
  if (w) {
    CHECK_MSG(dg_unet_config_from_weights(w, &det, err, sizeof err) == DG_STATUS_OK, "%s", err);
    det.num_attention_heads[0] = 2, det.num_attention_heads[1] = 2, det.num_attention_heads[2] = 4;
    det.addition_time_embed_dim = 8;
    same_config(&det, &c, "detected text_time config");
  }
  dg_unet *u = w ? dg_unet_new(&c, w, err, sizeof err) : NULL;
  CHECK_MSG(u != NULL, "%s", err);
  if (u) {
    dg_engine *e = engine(DG_ISA_AUTO, 2);
    dg_arena *a = dg_arena_new(1 << 20);
    int64_t xs[4] = {2, 4, 8, 6}, cs[3] = {2, 7, 24}, ts[1] = {2}, es[2] = {2, 16}, is[2] = {2, 6};
    float xb[2 * 4 * 48], yb[2 * 4 * 48], y2[2 * 4 * 48], cb[2 * 7 * 24], tb[2] = {999, 10};
    float eb[32], ib[12] = {1024, 1024, 0, 0, 1024, 1024, 768, 512, 16, 32, 1024, 1024};
    for (int i = 0; i < 2 * 4 * 48; i++) xb[i] = (float)((i * 29) % 23) / 11.0f - 1.0f;
    for (int i = 0; i < 2 * 7 * 24; i++) cb[i] = (float)((i * 7) % 19) / 9.0f - 1.0f;
    for (int i = 0; i < 32; i++) eb[i] = (float)((i * 5) % 11) / 5.0f - 1.0f;
    dg_tensor x = dg_tensor_make(DG_DTYPE_F32, 4, xs, xb), y = dg_tensor_make(DG_DTYPE_F32, 4, xs, yb);
    dg_tensor yy = dg_tensor_make(DG_DTYPE_F32, 4, xs, y2);
    dg_tensor ctx = dg_tensor_make(DG_DTYPE_F32, 3, cs, cb), t = dg_tensor_make(DG_DTYPE_F32, 1, ts, tb);
    dg_tensor te = dg_tensor_make(DG_DTYPE_F32, 2, es, eb), ti = dg_tensor_make(DG_DTYPE_F32, 2, is, ib);
    /* text_time without the added conditions is an error */
    CHECK(dg_unet_forward(u, e, a, &x, &t, &ctx, NULL, &y) == DG_STATUS_ERR_SHAPE);
    dg_unet_extras ex;
    memset(&ex, 0, sizeof ex);
    ex.text_embeds = &te;
    ex.time_ids = &ti;
    CHECK(dg_unet_forward(u, e, a, &x, &t, &ctx, &ex, &y) == DG_STATUS_OK);
    ib[6] = 512; /* sample 1: other original size: only sample 1 changes */
    CHECK(dg_unet_forward(u, e, a, &x, &t, &ctx, &ex, &yy) == DG_STATUS_OK);
    double d0 = 0, d1 = 0;
    for (int i = 0; i < 4 * 48; i++) {
      d0 = fmax(d0, fabs(yb[i] - y2[i]));
      d1 = fmax(d1, fabs(yb[4 * 48 + i] - y2[4 * 48 + i]));
    }
    CHECK_MSG(d0 == 0 && d1 > 1e-4, "time_ids effect: sample0 %g sample1 %g", d0, d1);
    dg_arena_free(a);
    dg_engine_free(e);
    dg_unet_free(u);
  }
  dg_weights_free(w);
  dg_safetensors_close(st);
  unlink(path);
  for (int i = 0; i < gc.n; i++) free(gc.bufs[i]), free(gc.names[i]);
  free(gc.ts), free(gc.bufs), free(gc.names), free(ptrs);
}

int main(void) {
  dg_unet_config cfg;
  dg_status s = dg_unet_config_parse_json(t_data("sd15-tiny/diffusers/unet/config.json"), &cfg,
                                          err, sizeof err);
  CHECK_MSG(s == DG_STATUS_OK, "%s", err);
  if (s != DG_STATUS_OK) T_DONE();
  test_configs(&cfg);
  test_keymap(&cfg);
  test_keymap_full();

  dg_safetensors *dst = open_st("sd15-tiny/diffusers/unet/diffusion_pytorch_model.safetensors");
  dg_safetensors *lst = open_st("sd15-tiny/sd15-tiny.safetensors");
  dg_safetensors *g = open_st("sd15-tiny/goldens/unet.safetensors");
  if (!dst || !lst || !g) T_DONE();

  /* enumerate == the diffusers file, name for name */
  count_ctx cc = {0, 0, dst, 0};
  CHECK(dg_unet_enumerate(&cfg, count_cb, &cc) == 0);
  CHECK_MSG(cc.n == 304 && cc.bad == 0 && dg_safetensors_count(dst) == 304, "%d tensors, %d bad",
            cc.n, cc.bad);

  dg_weights *wd = weights_from(dst, "", NULL, NULL);
  dg_weights *wl = weights_from(lst, "model.diffusion_model.", dg_unet_ldm_key_map, &cfg);
  CHECK_MSG(dg_weights_count(wl) == 304, "LDM file gave %zu UNet tensors", dg_weights_count(wl));
  /* the key map reproduces the diffusers tensors exactly */
  int same = 0;
  for (size_t i = 0; i < dg_safetensors_count(dst); i++) {
    const dg_tensor *a = dg_safetensors_at(dst, i);
    const dg_tensor *b = dg_weights_get(wl, a->name);
    same += b && dg_tensor_nbytes(a) == dg_tensor_nbytes(b) &&
            memcmp(a->data, b->data, dg_tensor_nbytes(a)) == 0;
  }
  CHECK_MSG(same == 304, "%d of 304 LDM tensors equal their diffusers twins", same);

  /* config detection from both layouts */
  dg_unet_config det;
  CHECK_MSG(dg_unet_config_from_weights(wd, &det, err, sizeof err) == DG_STATUS_OK, "%s", err);
  same_config(&det, &cfg, "detected from diffusers names");
  dg_weights *wraw = weights_from(lst, "model.diffusion_model.", NULL, NULL);
  CHECK_MSG(dg_unet_config_from_weights(wraw, &det, err, sizeof err) == DG_STATUS_OK, "%s", err);
  same_config(&det, &cfg, "detected from LDM names");
  dg_weights_free(wraw);

  dg_unet *ud = dg_unet_new(&cfg, wd, err, sizeof err);
  CHECK_MSG(ud != NULL, "diffusers: %s", err);
  dg_unet *ul = dg_unet_new(&cfg, wl, err, sizeof err);
  CHECK_MSG(ul != NULL, "ldm: %s", err);
  if (ud) {
    test_goldens(ud, g, "diff", TOL_F32, 4);
    test_debug(ud, g);
    test_hooks(ud, &cfg, g, wd);
    test_odd(ud);
  }
  if (ul) test_goldens(ul, g, "ldm", TOL_F32, 4);
  test_bad_weights(&cfg, dst);
  /* f16 / bf16 weights (activations and accumulation stay f32): measured
   * ~1.7e-3 (f16) and ~1.4e-2 (bf16) of max|out| on this model; bounds 5e-3 / 4e-2. */
  test_half(&cfg, dst, g, DG_DTYPE_F16, 5e-3);
  test_half(&cfg, dst, g, DG_DTYPE_BF16, 4e-2);
  test_text_time();

  dg_unet_free(ud);
  dg_unet_free(ul);
  dg_weights_free(wd);
  dg_weights_free(wl);
  dg_safetensors_close(dst);
  dg_safetensors_close(lst);
  dg_safetensors_close(g);
  T_DONE();
}
