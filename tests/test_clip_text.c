/* CLIP text encoder against the reference goldens (tests/data/sd15-tiny):
 * last_hidden_state, every hidden state, clip_skip 1 and the pooled output,
 * from both checkpoint layouts, reference and default kernels, 1 and 2
 * threads; plus config parsing/detection, enumeration and error paths. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "models/clip_text.h"
#include "t.h"
#include "tensor/ops.h"
#include "weights/safetensors.h"

#define TOL 1e-4

static dg_safetensors *golden;
static double worst;

static const dg_tensor *gold(const char *name) {
  const dg_tensor *t = dg_safetensors_find(golden, name);
  CHECK_MSG(t != NULL, "golden %s missing", name);
  return t;
}

static double max_diff(const dg_tensor *a, const dg_tensor *b) {
  if (!a || !b || dg_tensor_numel(a) != dg_tensor_numel(b)) return 1e30;
  double m = 0;
  for (int64_t i = 0; i < dg_tensor_numel(a); i++) {
    double d = fabs((double)dg_load_f32(a->data, a->dtype, i) - dg_load_f32(b->data, b->dtype, i));
    if (d != d) return 1e30;
    if (d > m) m = d;
  }
  return m;
}

static void compare(const char *what, const char *label, const dg_tensor *got, const dg_tensor *g) {
  double d = max_diff(got, g);
  if (d > worst && d < 1e29) worst = d;
  CHECK_MSG(d <= TOL, "%s: %s max |diff| %g", what, label, d);
}

static char *slurp(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *s = malloc((size_t)n + 1);
  if (s && fread(s, 1, (size_t)n, f) != (size_t)n) {
    free(s);
    s = NULL;
  }
  if (s) s[n] = 0;
  fclose(f);
  return s;
}

static void run_all(dg_clip_text *m, dg_engine *e, dg_arena *a, const char *what, int i32_ids) {
  char err[256];
  const dg_tensor *ids = gold("input_ids"), *lhs = gold("last_hidden_state");
  const dg_tensor *hs = gold("hidden_states"), *skip1 = gold("last_hidden_state_clip_skip1");
  const dg_tensor *pooled_g = gold("pooler_output");
  if (!ids || !lhs || !hs || !skip1 || !pooled_g) return;
  const int64_t B = ids->shape[0], L = ids->shape[1], C = lhs->shape[2];
  dg_arena_mark mark = dg_arena_get_mark(a);
  dg_tensor idt = *ids;
  if (i32_ids) { /* the same ids as I32 */
    dg_tensor *t = dg_arena_tensor(a, DG_DTYPE_I32, 2, ids->shape);
    for (int64_t i = 0; i < B * L; i++) ((int32_t *)t->data)[i] = (int32_t)((const int64_t *)ids->data)[i];
    idt = *t;
  }
  int64_t s3[3] = {B, L, C}, s2[2] = {B, C};
  dg_tensor *hidden = dg_arena_tensor(a, DG_DTYPE_F32, 3, s3);
  dg_tensor *pooled = dg_arena_tensor(a, DG_DTYPE_F32, 2, s2);

  /* SD1.5 prompt embeddings + pooled output */
  dg_clip_text_run r = dg_clip_text_run_default();
  r.hidden = hidden;
  r.pooled = pooled;
  dg_status st = dg_clip_text_forward(m, e, a, &idt, &r, err, sizeof err);
  CHECK_MSG(st == DG_STATUS_OK, "%s: forward: %s", what, err);
  compare(what, "last_hidden_state", hidden, lhs);
  compare(what, "pooler_output", pooled, pooled_g);

  /* clip_skip 1 (A1111 "CLIP skip 2"): final norm over the penultimate layer */
  r = dg_clip_text_run_default();
  r.hidden = hidden;
  r.skip = 1;
  st = dg_clip_text_forward(m, e, a, &idt, &r, err, sizeof err);
  CHECK_MSG(st == DG_STATUS_OK, "%s: forward skip 1: %s", what, err);
  compare(what, "last_hidden_state_clip_skip1", hidden, skip1);

  /* hidden_states[i], i = 0 (embeddings) .. n_layers, without the final norm */
  const int n_layers = dg_clip_text_get_config(m)->n_layers;
  CHECK(hs->shape[0] == n_layers + 1);
  for (int i = 0; i <= n_layers; i++) {
    r = dg_clip_text_run_default();
    r.hidden = hidden;
    r.skip = n_layers - i;
    r.final_norm = 0;
    if (i == 1) r.pooled = pooled; /* pooling still runs every layer */
    st = dg_clip_text_forward(m, e, a, &idt, &r, err, sizeof err);
    CHECK_MSG(st == DG_STATUS_OK, "%s: forward hidden %d: %s", what, i, err);
    dg_tensor g = dg_tensor_narrow0(hs, i, 1);
    char label[64];
    snprintf(label, sizeof label, "hidden_states[%d]", i);
    compare(what, label, hidden, &g);
    if (i == 1) compare(what, "pooler_output (with skip)", pooled, pooled_g);
  }

  /* one prompt alone gives the same embeddings as inside the batch */
  dg_tensor one_ids = dg_tensor_narrow0(&idt, 2, 1);
  int64_t s1[3] = {1, L, C};
  dg_tensor *h1 = dg_arena_tensor(a, DG_DTYPE_F32, 3, s1);
  r = dg_clip_text_run_default();
  r.hidden = h1;
  CHECK(dg_clip_text_forward(m, e, a, &one_ids, &r, err, sizeof err) == DG_STATUS_OK);
  dg_tensor g2 = dg_tensor_narrow0(lhs, 2, 1);
  compare(what, "last_hidden_state[2] alone", h1, &g2);
  dg_arena_reset(a, mark);
}

static void test_errors(dg_clip_text *m, dg_engine *e, dg_arena *a) {
  char err[256];
  int64_t s2[2] = {1, 78}, s3[3] = {1, 78, 32}, ok2[2] = {1, 5}, ok3[3] = {1, 5, 32};
  dg_tensor *ids = dg_arena_tensor(a, DG_DTYPE_I64, 2, s2);
  memset(ids->data, 0, dg_tensor_nbytes(ids));
  dg_tensor *h = dg_arena_tensor(a, DG_DTYPE_F32, 3, s3);
  dg_clip_text_run r = dg_clip_text_run_default();
  r.hidden = h;
  CHECK(dg_clip_text_forward(m, e, a, ids, &r, err, sizeof err) == DG_STATUS_ERR_SHAPE); /* 78 > 77 */
  dg_tensor *ids5 = dg_arena_tensor(a, DG_DTYPE_I64, 2, ok2);
  dg_tensor *h5 = dg_arena_tensor(a, DG_DTYPE_F32, 3, ok3);
  for (int i = 0; i < 5; i++) ((int64_t *)ids5->data)[i] = i;
  r.hidden = h5;
  CHECK(dg_clip_text_forward(m, e, a, ids5, &r, err, sizeof err) == DG_STATUS_OK); /* short is fine */
  ((int64_t *)ids5->data)[3] = 49408;
  CHECK(dg_clip_text_forward(m, e, a, ids5, &r, err, sizeof err) == DG_STATUS_ERR_INVALID);
  CHECK(strstr(err, "49408") != NULL);
  ((int64_t *)ids5->data)[3] = -1;
  CHECK(dg_clip_text_forward(m, e, a, ids5, &r, err, sizeof err) == DG_STATUS_ERR_INVALID);
  ((int64_t *)ids5->data)[3] = 3;
  r.skip = 3;
  CHECK(dg_clip_text_forward(m, e, a, ids5, &r, err, sizeof err) == DG_STATUS_ERR_INVALID);
  r.skip = 0;
  r.hidden = h; /* wrong L */
  CHECK(dg_clip_text_forward(m, e, a, ids5, &r, err, sizeof err) == DG_STATUS_ERR_SHAPE);
  r.hidden = h5;
  int64_t sp[2] = {1, 32};
  r.text_embeds = dg_arena_tensor(a, DG_DTYPE_F32, 2, sp); /* no projection in this model */
  CHECK(dg_clip_text_forward(m, e, a, ids5, &r, err, sizeof err) == DG_STATUS_ERR_SHAPE);
}


/* The same tiny weights in OpenCLIP naming (fused in_proj, (C, P)
 * text_projection), written to a file, loaded through the OpenCLIP key map:
 * the hidden states must equal the goldens and text_embeds = pooled @ P. */
static void test_openclip(const dg_weights *hf, dg_engine *e, dg_arena *a) {
  char err[256] = "", path[] = "/tmp/dg_test_openclip_XXXXXX";
  int fd = mkstemp(path);
  CHECK(fd >= 0);
  if (fd < 0) return;
  close(fd);
  const int C = 32, P = 16, NL = 2;
  dg_tensor ts[64];
  const dg_tensor *tp[64];
  float *bufs[8];
  int nt = 0, nb = 0;
  char names[64][96];
  static const char *const simple[][2] = {
      {"token_embedding.weight", "text_model.embeddings.token_embedding.weight"},
      {"positional_embedding", "text_model.embeddings.position_embedding.weight"},
      {"ln_final.weight", "text_model.final_layer_norm.weight"},
      {"ln_final.bias", "text_model.final_layer_norm.bias"}};
  for (int i = 0; i < 4; i++) {
    ts[nt] = *dg_weights_get(hf, simple[i][1]);
    snprintf(names[nt], 96, "%s", simple[i][0]);
    ts[nt].name = names[nt];
    nt++;
  }
  static const char *const per[][2] = {{"ln_1.weight", "layer_norm1.weight"}, {"ln_1.bias", "layer_norm1.bias"},
                                       {"ln_2.weight", "layer_norm2.weight"}, {"ln_2.bias", "layer_norm2.bias"},
                                       {"attn.out_proj.weight", "self_attn.out_proj.weight"},
                                       {"attn.out_proj.bias", "self_attn.out_proj.bias"},
                                       {"mlp.c_fc.weight", "mlp.fc1.weight"}, {"mlp.c_fc.bias", "mlp.fc1.bias"},
                                       {"mlp.c_proj.weight", "mlp.fc2.weight"}, {"mlp.c_proj.bias", "mlp.fc2.bias"}};
  char hn[128];
  for (int l = 0; l < NL; l++) {
    for (int i = 0; i < 10; i++) {
      snprintf(hn, sizeof hn, "text_model.encoder.layers.%d.%s", l, per[i][1]);
      ts[nt] = *dg_weights_get(hf, hn);
      snprintf(names[nt], 96, "transformer.resblocks.%d.%s", l, per[i][0]);
      ts[nt].name = names[nt];
      nt++;
    }
    for (int wb = 0; wb < 2; wb++) { /* fused q, k, v */
      int64_t per_rows = wb ? 1 : C;
      float *f = malloc(sizeof(float) * 3 * C * per_rows);
      bufs[nb++] = f;
      static const char *const qkv[3] = {"q_proj", "k_proj", "v_proj"};
      for (int j = 0; j < 3; j++) {
        snprintf(hn, sizeof hn, "text_model.encoder.layers.%d.self_attn.%s.%s", l, qkv[j], wb ? "bias" : "weight");
        memcpy(f + j * C * per_rows, dg_weights_get(hf, hn)->data, sizeof(float) * C * per_rows);
      }
      int64_t shp[2] = {3 * C, C};
      ts[nt] = dg_tensor_make(DG_DTYPE_F32, wb ? 1 : 2, shp, f);
      snprintf(names[nt], 96, "transformer.resblocks.%d.attn.in_proj_%s", l, wb ? "bias" : "weight");
      ts[nt].name = names[nt];
      nt++;
    }
  }
  float *proj = malloc(sizeof(float) * C * P); /* (C, P) */
  bufs[nb++] = proj;
  for (int i = 0; i < C * P; i++) proj[i] = (float)((i * 37) % 23 - 11) / 16.0f;
  int64_t pshape[2] = {C, P};
  ts[nt] = dg_tensor_make(DG_DTYPE_F32, 2, pshape, proj);
  ts[nt].name = "text_projection";
  nt++;
  for (int i = 0; i < nt; i++) tp[i] = &ts[i];
  CHECK(dg_safetensors_write(path, tp, (size_t)nt, NULL, err, sizeof err) == DG_STATUS_OK);

  dg_safetensors *f = NULL;
  dg_weights *w = dg_weights_new();
  dg_clip_text *m = NULL;
  dg_clip_text_config cfg;
  CHECK(dg_safetensors_open(path, &f, err, sizeof err) == DG_STATUS_OK);
  CHECK(f && dg_weights_add(w, f, "", dg_clip_text_openclip_key_map, NULL, err, sizeof err) == DG_STATUS_OK);
  CHECK(dg_clip_text_config_detect(w, 4, -1, &cfg, err, sizeof err) == DG_STATUS_OK);
  CHECK(cfg.act == DG_CLIP_ACT_GELU && cfg.projection_dim == P && cfg.n_layers == NL); /* OpenCLIP default */
  cfg.act = DG_CLIP_ACT_QUICK_GELU; /* these weights are the quick_gelu tower */
  dg_status st = dg_clip_text_new(&cfg, w, &m, err, sizeof err);
  CHECK_MSG(st == DG_STATUS_OK, "openclip new: %s", err);
  if (st == DG_STATUS_OK) {
    const dg_tensor *ids = gold("input_ids"), *lhs = gold("last_hidden_state");
    dg_arena_mark mk = dg_arena_get_mark(a);
    int64_t s3[3] = {4, 77, C}, s2[2] = {4, C}, sp[2] = {4, P};
    dg_clip_text_run r = dg_clip_text_run_default();
    r.hidden = dg_arena_tensor(a, DG_DTYPE_F32, 3, s3);
    r.pooled = dg_arena_tensor(a, DG_DTYPE_F32, 2, s2);
    r.text_embeds = dg_arena_tensor(a, DG_DTYPE_F32, 2, sp);
    CHECK(dg_clip_text_forward(m, e, a, ids, &r, err, sizeof err) == DG_STATUS_OK);
    compare("openclip names", "last_hidden_state", r.hidden, lhs);
    compare("openclip names", "pooler_output", r.pooled, gold("pooler_output"));
    double d = 0;
    for (int b = 0; b < 4; b++)
      for (int j = 0; j < P; j++) {
        double acc = 0;
        for (int i = 0; i < C; i++) acc += (double)((float *)r.pooled->data)[b * C + i] * proj[i * P + j];
        d = fmax(d, fabs(acc - ((float *)r.text_embeds->data)[b * P + j]));
      }
    CHECK_MSG(d < 1e-5, "text_embeds off by %g", d);
    dg_arena_reset(a, mk);
  }
  char out[64];
  CHECK(dg_clip_text_openclip_key_map("logit_scale", out, sizeof out, NULL) == 0);
  CHECK(dg_clip_text_openclip_key_map("transformer.resblocks.x.ln_1.weight", out, sizeof out, NULL) == 0);
  dg_clip_text_free(m);
  dg_weights_free(w);
  dg_safetensors_close(f);
  for (int i = 0; i < nb; i++) free(bufs[i]);
  unlink(path);
}

typedef struct enum_ctx {
  const dg_weights *w;
  int n, bad;
} enum_ctx;

static int enum_cb(void *ud, const char *name, int ndim, const int64_t *shape) {
  enum_ctx *c = ud;
  c->n++;
  const dg_tensor *t = dg_weights_get(c->w, name);
  int ok = t && t->ndim == ndim;
  for (int d = 0; ok && d < ndim; d++) ok = t->shape[d] == shape[d];
  if (!ok) {
    c->bad++;
    fprintf(stderr, "enumerate: %s not in the file with that shape\n", name);
  }
  return 0;
}

int main(void) {
  char err[256] = "";
  dg_status st = dg_safetensors_open(t_data("sd15-tiny/goldens/text_encoder.safetensors"), &golden,
                                     err, sizeof err);
  CHECK_MSG(st == DG_STATUS_OK, "golden: %s", err);
  if (st != DG_STATUS_OK) T_DONE();

  /* configs */
  dg_clip_text_config tiny = dg_clip_text_config_tiny(), cfg_json, cfg_det;
  char *js = slurp(t_data("sd15-tiny/diffusers/text_encoder/config.json"));
  CHECK(js != NULL);
  st = dg_clip_text_config_from_json(js ? js : "", &cfg_json, err, sizeof err);
  free(js);
  CHECK_MSG(st == DG_STATUS_OK, "config.json: %s", err);
  CHECK(memcmp(&cfg_json, &tiny, sizeof tiny) == 0);
  CHECK(dg_clip_text_config_from_json("{\"hidden_act\": \"relu\"}", &cfg_det, err, sizeof err) ==
        DG_STATUS_ERR_UNSUPPORTED);
  CHECK(dg_clip_text_config_from_json("{\"hidden_size\": 30, \"num_attention_heads\": 4}", &cfg_det,
                                      err, sizeof err) == DG_STATUS_ERR_INVALID);
  CHECK(dg_clip_text_config_from_json("[", &cfg_det, err, sizeof err) == DG_STATUS_ERR_FORMAT);
  CHECK(dg_clip_text_config_from_json(
            "{\"architectures\": [\"CLIPTextModelWithProjection\"], \"hidden_size\": 1280, "
            "\"num_attention_heads\": 20, \"projection_dim\": 1280, \"hidden_act\": \"gelu\"}",
            &cfg_det, err, sizeof err) == DG_STATUS_OK);
  CHECK(cfg_det.projection_dim == 1280 && cfg_det.act == DG_CLIP_ACT_GELU && cfg_det.n_heads == 20);

  /* both layouts */
  dg_safetensors *files[2] = {NULL, NULL};
  dg_weights *ws[2] = {NULL, NULL};
  const char *paths[2] = {t_data("sd15-tiny/diffusers/text_encoder/model.safetensors"),
                          t_data("sd15-tiny/sd15-tiny.safetensors")};
  const char *prefixes[2] = {"", "cond_stage_model.transformer."};
  for (int i = 0; i < 2; i++) {
    st = dg_safetensors_open(paths[i], &files[i], err, sizeof err);
    CHECK_MSG(st == DG_STATUS_OK, "open: %s", err);
    if (st != DG_STATUS_OK) T_DONE();
    ws[i] = dg_weights_new();
    CHECK(dg_weights_add(ws[i], files[i], prefixes[i], NULL, NULL, err, sizeof err) == DG_STATUS_OK);
  }
  CHECK(dg_weights_count(ws[0]) == 37);
  /* detection: everything but the head count is in the shapes */
  st = dg_clip_text_config_detect(ws[1], 4, -1, &cfg_det, err, sizeof err);
  CHECK_MSG(st == DG_STATUS_OK, "detect: %s", err);
  CHECK(memcmp(&cfg_det, &tiny, sizeof tiny) == 0);

  enum_ctx ec = {ws[0], 0, 0};
  CHECK(dg_clip_text_enumerate(&tiny, enum_cb, &ec) == 0);
  CHECK(ec.n == 36 && ec.bad == 0);

  dg_arena *arena = dg_arena_new(1 << 20);
  struct {
    dg_isa isa;
    int threads;
  } engines[] = {{DG_ISA_REF, 1}, {DG_ISA_REF, 2}, {DG_ISA_AUTO, 1}, {DG_ISA_AUTO, 2}};
  for (size_t ei = 0; ei < sizeof engines / sizeof engines[0]; ei++) {
    dg_engine_params ep = dg_engine_params_default();
    ep.isa = engines[ei].isa;
    ep.n_threads = engines[ei].threads;
    dg_engine *e = NULL;
    st = dg_engine_new(&ep, &e);
    CHECK_MSG(st == DG_STATUS_OK, "engine: %s", dg_strerror(st));
    if (st != DG_STATUS_OK) continue;
    for (int li = 0; li < 2; li++) {
      char what[96];
      snprintf(what, sizeof what, "%s layout, %s, %d thread(s)", li ? "single-file" : "diffusers",
               dg_isa_name(dg_engine_isa(e)), engines[ei].threads);
      dg_clip_text *m = NULL;
      st = dg_clip_text_new(li ? &cfg_det : &cfg_json, ws[li], &m, err, sizeof err);
      CHECK_MSG(st == DG_STATUS_OK, "%s: new: %s", what, err);
      if (st != DG_STATUS_OK) continue;
      run_all(m, e, arena, what, (int)(ei & 1));
      if (ei == 0 && li == 0) test_errors(m, e, arena);
      if (ei == 3 && li == 0) test_openclip(ws[0], e, arena);
      dg_clip_text_free(m);
    }
    dg_engine_free(e);
  }
  /* a missing tensor is a message naming it */
  dg_weights *half = dg_weights_new();
  CHECK(dg_weights_add(half, files[0], "text_model.embeddings.", NULL, NULL, err, sizeof err) ==
        DG_STATUS_OK);
  dg_clip_text *m = NULL;
  CHECK(dg_clip_text_new(&tiny, half, &m, err, sizeof err) == DG_STATUS_ERR_FORMAT && !m);
  CHECK(strstr(err, "token_embedding") != NULL);
  dg_weights_free(half);
  dg_clip_text_config proj = tiny;
  proj.projection_dim = 32;
  CHECK(dg_clip_text_new(&proj, ws[0], &m, err, sizeof err) == DG_STATUS_ERR_FORMAT);
  CHECK(strstr(err, "text_projection") != NULL);

  printf("clip_text: largest |difference| from the goldens: %.3g\n", worst);
  dg_arena_free(arena);
  for (int i = 0; i < 2; i++) {
    dg_weights_free(ws[i]);
    dg_safetensors_close(files[i]);
  }
  dg_safetensors_close(golden);
  T_DONE();
}
