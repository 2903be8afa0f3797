/* CLIP text encoder: see clip_text.h for the computation. */
#include "models/clip_text.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tensor/ops.h"
#include "base/status.h"

#define DG__CLIP_MAX_LAYERS 64

typedef struct dg__clip_layer {
  const dg_tensor *ln1_w, *ln1_b;
  const dg_tensor *q_w, *q_b, *k_w, *k_b, *v_w, *v_b, *o_w, *o_b;
  const dg_tensor *ln2_w, *ln2_b;
  const dg_tensor *fc1_w, *fc1_b, *fc2_w, *fc2_b;
  dg_tensor fused[6]; /* q, k, v weight and bias views of a fused in_proj (OpenCLIP) */
} dg__clip_layer;

struct dg_clip_text {
  dg_clip_text_config cfg;
  const dg_tensor *tok_emb; /* (V, C) */
  const dg_tensor *pos_emb; /* (P, C) */
  dg__clip_layer *layers;   /* n_layers */
  const dg_tensor *lnf_w, *lnf_b;
  const dg_tensor *proj; /* (P, C) or NULL */
  dg_tensor proj_t;      /* owned F32 (P, C) copy of an OpenCLIP (C, P) text_projection */
};

/* ---- configs -------------------------------------------------------------- */

dg_clip_text_config dg_clip_text_config_sd15(void) {
  dg_clip_text_config c;
  c.vocab_size = 49408;
  c.hidden_size = 768;
  c.n_layers = 12;
  c.n_heads = 12;
  c.intermediate_size = 3072;
  c.max_positions = 77;
  c.act = DG_CLIP_ACT_QUICK_GELU;
  c.eps = 1e-5f;
  c.projection_dim = 0;
  return c;
}

dg_clip_text_config dg_clip_text_config_tiny(void) {
  dg_clip_text_config c = dg_clip_text_config_sd15();
  c.hidden_size = 32;
  c.n_layers = 2;
  c.n_heads = 4;
  c.intermediate_size = 37;
  return c;
}

dg_status dg_clip_text_config_check(const dg_clip_text_config *c, char *err, size_t errlen) {
  if (c->vocab_size <= 0 || c->hidden_size <= 0 || c->n_layers <= 0 || c->n_heads <= 0 ||
      c->intermediate_size <= 0 || c->max_positions <= 0 || c->projection_dim < 0) {
    dg_set_error(err, errlen, "clip_text: non-positive size in config");
    return DG_STATUS_ERR_INVALID;
  }
  if (c->n_layers > DG__CLIP_MAX_LAYERS || c->hidden_size > 65536 || c->vocab_size > (1 << 24) ||
      c->max_positions > 4096 || c->intermediate_size > (1 << 20) || c->projection_dim > 65536) {
    dg_set_error(err, errlen, "clip_text: config size out of range");
    return DG_STATUS_ERR_INVALID;
  }
  if (c->hidden_size % c->n_heads) {
    dg_set_error(err, errlen, "clip_text: hidden_size %d not divisible by %d heads", c->hidden_size,
           c->n_heads);
    return DG_STATUS_ERR_INVALID;
  }
  if (c->act != DG_CLIP_ACT_QUICK_GELU && c->act != DG_CLIP_ACT_GELU) {
    dg_set_error(err, errlen, "clip_text: unknown activation");
    return DG_STATUS_ERR_INVALID;
  }
  if (!(c->eps > 0.0f)) {
    dg_set_error(err, errlen, "clip_text: layer_norm_eps must be positive");
    return DG_STATUS_ERR_INVALID;
  }
  return DG_STATUS_OK;
}

static int json_int(json_t *o, const char *key, int *out) {
  json_t *v = json_object_get(o, key);
  if (!v) return 0;
  if (!json_is_integer(v)) return -1;
  json_int_t x = json_integer_value(v);
  if (x < 0 || x > (1 << 30)) return -1;
  *out = (int)x;
  return 1;
}

dg_status dg_clip_text_config_from_json(const char *json_text, dg_clip_text_config *c, char *err,
                                        size_t errlen) {
  json_error_t je;
  json_t *root = json_loads(json_text, 0, &je);
  if (!root || !json_is_object(root)) {
    dg_set_error(err, errlen, "clip_text config: bad JSON (line %d: %s)", je.line, je.text);
    json_decref(root);
    return DG_STATUS_ERR_FORMAT;
  }
  /* A full CLIPConfig nests the text tower under "text_config". */
  json_t *o = root;
  json_t *tc = json_object_get(root, "text_config");
  if (tc && json_is_object(tc)) o = tc;

  dg_clip_text_config r = dg_clip_text_config_sd15();
  static const struct {
    const char *key;
    size_t off;
  } ints[] = {
      {"vocab_size", offsetof(dg_clip_text_config, vocab_size)},
      {"hidden_size", offsetof(dg_clip_text_config, hidden_size)},
      {"num_hidden_layers", offsetof(dg_clip_text_config, n_layers)},
      {"num_attention_heads", offsetof(dg_clip_text_config, n_heads)},
      {"intermediate_size", offsetof(dg_clip_text_config, intermediate_size)},
      {"max_position_embeddings", offsetof(dg_clip_text_config, max_positions)},
  };
  for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
    if (json_int(o, ints[i].key, (int *)((char *)&r + ints[i].off)) < 0) {
      dg_set_error(err, errlen, "clip_text config: \"%s\" is not a valid integer", ints[i].key);
      json_decref(root);
      return DG_STATUS_ERR_FORMAT;
    }
  }
  json_t *act = json_object_get(o, "hidden_act");
  if (act) {
    const char *s = json_string_value(act);
    if (s && strcmp(s, "quick_gelu") == 0) {
      r.act = DG_CLIP_ACT_QUICK_GELU;
    } else if (s && (strcmp(s, "gelu") == 0)) {
      r.act = DG_CLIP_ACT_GELU;
    } else {
      dg_set_error(err, errlen, "clip_text config: unsupported hidden_act \"%s\"", s ? s : "?");
      json_decref(root);
      return DG_STATUS_ERR_UNSUPPORTED;
    }
  }
  json_t *eps = json_object_get(o, "layer_norm_eps");
  if (eps) {
    if (!json_is_number(eps)) {
      dg_set_error(err, errlen, "clip_text config: layer_norm_eps is not a number");
      json_decref(root);
      return DG_STATUS_ERR_FORMAT;
    }
    r.eps = (float)json_number_value(eps);
  }
  /* Only CLIPTextModelWithProjection has a text_projection (projection_dim is
   * present in every CLIPTextConfig). */
  r.projection_dim = 0;
  json_t *arch = json_object_get(root, "architectures");
  size_t ai;
  json_t *av;
  json_array_foreach(arch, ai, av) {
    const char *s = json_string_value(av);
    if (s && strcmp(s, "CLIPTextModelWithProjection") == 0) {
      int p = r.hidden_size;
      if (json_int(o, "projection_dim", &p) < 0) p = r.hidden_size;
      r.projection_dim = p;
    }
  }
  json_decref(root);
  dg_status st = dg_clip_text_config_check(&r, err, errlen);
  if (st == DG_STATUS_OK) *c = r;
  return st;
}

dg_status dg_clip_text_config_detect(const dg_weights *w, int n_heads_hint, int act_hint,
                                     dg_clip_text_config *c, char *err, size_t errlen) {
  const dg_tensor *tok = dg_weights_get(w, "text_model.embeddings.token_embedding.weight");
  const dg_tensor *pos = dg_weights_get(w, "text_model.embeddings.position_embedding.weight");
  const dg_tensor *fc1 = dg_weights_get(w, "text_model.encoder.layers.0.mlp.fc1.weight");
  if (act_hint < 0 && dg_weights_get(w, "text_model.encoder.layers.0.self_attn.in_proj.weight"))
    act_hint = DG_CLIP_ACT_GELU; /* OpenCLIP towers use erf GELU */
  if (!tok || !pos || !fc1 || tok->ndim != 2 || pos->ndim != 2 || fc1->ndim != 2) {
    dg_set_error(err, errlen, "clip_text: cannot detect config (token/position embedding or fc1 missing)");
    return DG_STATUS_ERR_FORMAT;
  }
  dg_clip_text_config r = dg_clip_text_config_sd15();
  r.vocab_size = (int)tok->shape[0];
  r.hidden_size = (int)tok->shape[1];
  r.max_positions = (int)pos->shape[0];
  r.intermediate_size = (int)fc1->shape[0];
  int n = 0;
  char name[128];
  for (; n <= DG__CLIP_MAX_LAYERS; n++) {
    snprintf(name, sizeof name, "text_model.encoder.layers.%d.layer_norm1.weight", n);
    if (!dg_weights_get(w, name)) break;
  }
  r.n_layers = n;
  r.n_heads = n_heads_hint > 0 ? n_heads_hint : (r.hidden_size % 64 == 0 ? r.hidden_size / 64 : 1);
  if (act_hint == (int)DG_CLIP_ACT_GELU) r.act = DG_CLIP_ACT_GELU;
  else r.act = DG_CLIP_ACT_QUICK_GELU;
  const dg_tensor *proj = dg_weights_get(w, "text_projection.weight");
  const dg_tensor *proj_t = dg_weights_get(w, "text_projection");
  r.projection_dim = proj && proj->ndim == 2         ? (int)proj->shape[0]
                     : proj_t && proj_t->ndim == 2 ? (int)proj_t->shape[1]
                                                   : 0;
  dg_status st = dg_clip_text_config_check(&r, err, errlen);
  if (st == DG_STATUS_OK) *c = r;
  return st;
}

/* ---- OpenCLIP names ------------------------------------------------------- */

int dg_clip_text_openclip_key_map(const char *name, char *out, size_t n, void *ud) {
  (void)ud;
  static const char *const top[][2] = {
      {"token_embedding.weight", "text_model.embeddings.token_embedding.weight"},
      {"positional_embedding", "text_model.embeddings.position_embedding.weight"},
      {"ln_final.weight", "text_model.final_layer_norm.weight"},
      {"ln_final.bias", "text_model.final_layer_norm.bias"},
      {"text_projection", "text_projection"},
  };
  for (size_t i = 0; i < sizeof top / sizeof top[0]; i++)
    if (strcmp(name, top[i][0]) == 0) return snprintf(out, n, "%s", top[i][1]) < (int)n;
  static const char *const blk[][2] = {
      {"ln_1.", "layer_norm1."},
      {"ln_2.", "layer_norm2."},
      {"attn.in_proj_weight", "self_attn.in_proj.weight"},
      {"attn.in_proj_bias", "self_attn.in_proj.bias"},
      {"attn.out_proj.", "self_attn.out_proj."},
      {"mlp.c_fc.", "mlp.fc1."},
      {"mlp.c_proj.", "mlp.fc2."},
  };
  int l, used = 0;
  if (sscanf(name, "transformer.resblocks.%d.%n", &l, &used) != 1 || !used || l < 0) return 0;
  const char *r = name + used;
  for (size_t i = 0; i < sizeof blk / sizeof blk[0]; i++) {
    size_t k = strlen(blk[i][0]);
    if (strncmp(r, blk[i][0], k) == 0)
      return snprintf(out, n, "text_model.encoder.layers.%d.%s%s", l, blk[i][1], r + k) < (int)n;
  }
  return 0;
}

/* ---- weights -------------------------------------------------------------- */

typedef struct dg__clip_names {
  dg_clip_text_param_fn fn;
  void *ud;
  int stop;
} dg__clip_names;

static void emit(dg__clip_names *nm, const char *name, int ndim, int64_t d0, int64_t d1) {
  if (nm->stop) return;
  int64_t shape[DG_MAX_DIMS] = {d0, d1, 1, 1};
  if (ndim == 1) shape[1] = 1;
  nm->stop = nm->fn(nm->ud, name, ndim, shape);
}

static void emit_linear(dg__clip_names *nm, const char *base, int64_t out, int64_t in) {
  char name[160];
  snprintf(name, sizeof name, "%s.weight", base);
  emit(nm, name, 2, out, in);
  snprintf(name, sizeof name, "%s.bias", base);
  emit(nm, name, 1, out, 0);
}

static void emit_ln(dg__clip_names *nm, const char *base, int64_t c) {
  char name[160];
  snprintf(name, sizeof name, "%s.weight", base);
  emit(nm, name, 1, c, 0);
  snprintf(name, sizeof name, "%s.bias", base);
  emit(nm, name, 1, c, 0);
}

int dg_clip_text_enumerate(const dg_clip_text_config *c, dg_clip_text_param_fn fn, void *ud) {
  if (dg_clip_text_config_check(c, NULL, 0) != DG_STATUS_OK) return -1;
  dg__clip_names nm = {fn, ud, 0};
  const int64_t C = c->hidden_size, I = c->intermediate_size;
  emit(&nm, "text_model.embeddings.token_embedding.weight", 2, c->vocab_size, C);
  emit(&nm, "text_model.embeddings.position_embedding.weight", 2, c->max_positions, C);
  char base[128];
  /* named_parameters() order of the reference (checked against the fixtures'
   * generator): q, k, v, out. */
  static const char *const attn[] = {"q_proj", "k_proj", "v_proj", "out_proj"};
  for (int l = 0; l < c->n_layers; l++) {
    for (int j = 0; j < 4; j++) {
      snprintf(base, sizeof base, "text_model.encoder.layers.%d.self_attn.%s", l, attn[j]);
      emit_linear(&nm, base, C, C);
    }
    snprintf(base, sizeof base, "text_model.encoder.layers.%d.layer_norm1", l);
    emit_ln(&nm, base, C);
    snprintf(base, sizeof base, "text_model.encoder.layers.%d.mlp.fc1", l);
    emit_linear(&nm, base, I, C);
    snprintf(base, sizeof base, "text_model.encoder.layers.%d.mlp.fc2", l);
    emit_linear(&nm, base, C, I);
    snprintf(base, sizeof base, "text_model.encoder.layers.%d.layer_norm2", l);
    emit_ln(&nm, base, C);
  }
  emit_ln(&nm, "text_model.final_layer_norm", C);
  if (c->projection_dim > 0) emit(&nm, "text_projection.weight", 2, c->projection_dim, C);
  return nm.stop;
}

typedef struct dg__bind {
  const dg_weights *w;
  char *err;
  size_t errlen;
  int failed;
} dg__bind;

static const dg_tensor *need(dg__bind *b, const char *name, int ndim, int64_t d0, int64_t d1) {
  if (b->failed) return NULL;
  int64_t shape[2] = {d0, d1};
  const dg_tensor *t = dg_weights_need(b->w, name, ndim, shape, b->err, b->errlen);
  if (!t) b->failed = 1;
  return t;
}

/* A Linear (in > 0: weight (out, in)) or a LayerNorm (in == 0: weight (out)). */
static void need_linear(dg__bind *b, const char *base, int64_t out, int64_t in, const dg_tensor **w,
                        const dg_tensor **bias) {
  char name[160];
  snprintf(name, sizeof name, "%s.weight", base);
  *w = in > 0 ? need(b, name, 2, out, in) : need(b, name, 1, out, 0);
  snprintf(name, sizeof name, "%s.bias", base);
  *bias = need(b, name, 1, out, 0);
}

dg_status dg_clip_text_new(const dg_clip_text_config *c, const dg_weights *w, dg_clip_text **out,
                           char *err, size_t errlen) {
  *out = NULL;
  dg_status st = dg_clip_text_config_check(c, err, errlen);
  if (st != DG_STATUS_OK) return st;
  dg_clip_text *m = calloc(1, sizeof *m);
  if (!m) return DG_STATUS_ERR_NOMEM;
  m->cfg = *c;
  m->layers = calloc((size_t)c->n_layers, sizeof *m->layers);
  if (!m->layers) {
    free(m);
    return DG_STATUS_ERR_NOMEM;
  }
  const int64_t C = c->hidden_size, I = c->intermediate_size;
  dg__bind b = {w, err, errlen, 0};
  m->tok_emb = need(&b, "text_model.embeddings.token_embedding.weight", 2, c->vocab_size, C);
  m->pos_emb = need(&b, "text_model.embeddings.position_embedding.weight", 2, c->max_positions, C);
  char base[128];
  for (int l = 0; l < c->n_layers && !b.failed; l++) {
    dg__clip_layer *L = &m->layers[l];
    snprintf(base, sizeof base, "text_model.encoder.layers.%d.layer_norm1", l);
    need_linear(&b, base, C, 0, &L->ln1_w, &L->ln1_b);
    snprintf(base, sizeof base, "text_model.encoder.layers.%d.self_attn.in_proj", l);
    char qname[160];
    snprintf(qname, sizeof qname, "text_model.encoder.layers.%d.self_attn.q_proj.weight", l);
    if (!dg_weights_get(w, qname) && !b.failed) {
      /* OpenCLIP: one in_proj (3C, C) + (3C); q, k, v are row blocks of it */
      const dg_tensor *fw, *fb;
      need_linear(&b, base, 3 * C, C, &fw, &fb);
      for (int j = 0; j < 3 && !b.failed; j++) {
        L->fused[j] = dg_tensor_narrow0(fw, j * C, C);
        L->fused[3 + j] = dg_tensor_narrow0(fb, j * C, C);
      }
      L->q_w = &L->fused[0], L->k_w = &L->fused[1], L->v_w = &L->fused[2];
      L->q_b = &L->fused[3], L->k_b = &L->fused[4], L->v_b = &L->fused[5];
    } else {
      snprintf(base, sizeof base, "text_model.encoder.layers.%d.self_attn.q_proj", l);
      need_linear(&b, base, C, C, &L->q_w, &L->q_b);
      snprintf(base, sizeof base, "text_model.encoder.layers.%d.self_attn.k_proj", l);
      need_linear(&b, base, C, C, &L->k_w, &L->k_b);
      snprintf(base, sizeof base, "text_model.encoder.layers.%d.self_attn.v_proj", l);
      need_linear(&b, base, C, C, &L->v_w, &L->v_b);
    }
    snprintf(base, sizeof base, "text_model.encoder.layers.%d.self_attn.out_proj", l);
    need_linear(&b, base, C, C, &L->o_w, &L->o_b);
    snprintf(base, sizeof base, "text_model.encoder.layers.%d.layer_norm2", l);
    need_linear(&b, base, C, 0, &L->ln2_w, &L->ln2_b);
    snprintf(base, sizeof base, "text_model.encoder.layers.%d.mlp.fc1", l);
    need_linear(&b, base, I, C, &L->fc1_w, &L->fc1_b);
    snprintf(base, sizeof base, "text_model.encoder.layers.%d.mlp.fc2", l);
    need_linear(&b, base, C, I, &L->fc2_w, &L->fc2_b);
  }
  need_linear(&b, "text_model.final_layer_norm", C, 0, &m->lnf_w, &m->lnf_b);
  const dg_tensor *pt = dg_weights_get(w, "text_projection");
  if (c->projection_dim > 0 && !dg_weights_get(w, "text_projection.weight") && pt && !b.failed) {
    /* OpenCLIP stores the projection as (C, P) for x @ P: keep an F32 (P, C) copy */
    const dg_tensor *t = need(&b, "text_projection", 2, C, c->projection_dim);
    const int64_t P = c->projection_dim;
    float *d = t ? malloc((size_t)(P * C) * sizeof(float)) : NULL;
    if (t && !d) {
      dg_clip_text_free(m);
      return DG_STATUS_ERR_NOMEM;
    }
    if (t) {
      for (int64_t i = 0; i < C; i++)
        for (int64_t j = 0; j < P; j++) d[j * C + i] = dg_load_f32(t->data, t->dtype, i * P + j);
      int64_t shp[2] = {P, C};
      m->proj_t = dg_tensor_make(DG_DTYPE_F32, 2, shp, d);
      m->proj = &m->proj_t;
    }
  } else if (c->projection_dim > 0) {
    m->proj = need(&b, "text_projection.weight", 2, c->projection_dim, C);
  }
  if (b.failed) {
    dg_clip_text_free(m);
    return DG_STATUS_ERR_FORMAT;
  }
  *out = m;
  return DG_STATUS_OK;
}

void dg_clip_text_free(dg_clip_text *m) {
  if (!m) return;
  free(m->proj_t.data);
  free(m->layers);
  free(m);
}

const dg_clip_text_config *dg_clip_text_get_config(const dg_clip_text *m) { return &m->cfg; }

dg_clip_text_run dg_clip_text_run_default(void) {
  dg_clip_text_run r;
  memset(&r, 0, sizeof r);
  r.final_norm = 1;
  return r;
}

/* ---- forward -------------------------------------------------------------- */

#define TRY(x)                        \
  do {                                \
    st = (x);                         \
    if (st != DG_STATUS_OK) goto out; \
  } while (0)

#define ALLOC(t, nd, ...)                                                   \
  do {                                                                      \
    int64_t shp_[] = {__VA_ARGS__};                                         \
    (t) = dg_arena_tensor(arena, DG_DTYPE_F32, (nd), shp_);                 \
    if (!(t)) {                                                             \
      st = DG_STATUS_ERR_NOMEM;                                             \
      goto out;                                                             \
    }                                                                       \
  } while (0)

static int shape_is(const dg_tensor *t, int ndim, int64_t d0, int64_t d1, int64_t d2) {
  if (!t || t->dtype != DG_DTYPE_F32 || t->ndim != ndim) return 0;
  int64_t d[3] = {d0, d1, d2};
  for (int i = 0; i < ndim; i++)
    if (t->shape[i] != d[i]) return 0;
  return 1;
}

/* One pre-LN transformer layer, x (B, L, C) updated in place. */
static dg_status clip_layer(const dg_clip_text *m, const dg__clip_layer *Lw, dg_engine *e,
                            dg_arena *arena, dg_tensor *x) {
  dg_status st = DG_STATUS_OK;
  const int64_t B = x->shape[0], L = x->shape[1], C = m->cfg.hidden_size;
  const int64_t I = m->cfg.intermediate_size;
  dg_arena_mark mark = dg_arena_get_mark(arena);
  dg_tensor *h, *q, *k, *v, *a, *o, *f;
  ALLOC(h, 3, B, L, C); /* (B, L, C) */
  ALLOC(q, 3, B, L, C); /* (B, L, C) */
  ALLOC(k, 3, B, L, C); /* (B, L, C) */
  ALLOC(v, 3, B, L, C); /* (B, L, C) */
  ALLOC(a, 3, B, L, C); /* (B, L, C) */
  TRY(dg_layer_norm(e, h, x, m->cfg.eps, Lw->ln1_w, Lw->ln1_b));
  TRY(dg_linear(e, q, h, Lw->q_w, Lw->q_b));
  TRY(dg_linear(e, k, h, Lw->k_w, Lw->k_b));
  TRY(dg_linear(e, v, h, Lw->v_w, Lw->v_b));
  TRY(dg_attention(e, a, q, k, v, m->cfg.n_heads, 1, 0.0f));
  o = q; /* (B, L, C), q is no longer needed */
  TRY(dg_linear(e, o, a, Lw->o_w, Lw->o_b));
  TRY(dg_add(e, x, x, o));
  TRY(dg_layer_norm(e, h, x, m->cfg.eps, Lw->ln2_w, Lw->ln2_b));
  ALLOC(f, 3, B, L, I); /* (B, L, I) */
  TRY(dg_linear(e, f, h, Lw->fc1_w, Lw->fc1_b));
  if (m->cfg.act == DG_CLIP_ACT_QUICK_GELU) TRY(dg_quick_gelu(e, f, f));
  else TRY(dg_gelu(e, f, f));
  TRY(dg_linear(e, o, f, Lw->fc2_w, Lw->fc2_b));
  TRY(dg_add(e, x, x, o));
out:
  dg_arena_reset(arena, mark);
  return st;
}

static dg_status emit_hidden(const dg_clip_text *m, dg_engine *e, const dg_clip_text_run *run,
                             const dg_tensor *x) {
  if (run->final_norm) return dg_layer_norm(e, run->hidden, x, m->cfg.eps, m->lnf_w, m->lnf_b);
  return dg_scale(e, run->hidden, x, 1.0f, 0.0f);
}

dg_status dg_clip_text_forward(const dg_clip_text *m, dg_engine *e, dg_arena *arena,
                               const dg_tensor *ids, dg_clip_text_run *run, char *err,
                               size_t errlen) {
  const dg_clip_text_config *c = &m->cfg;
  if (!ids || ids->ndim != 2 || (ids->dtype != DG_DTYPE_I64 && ids->dtype != DG_DTYPE_I32)) {
    dg_set_error(err, errlen, "clip_text: ids must be (B, L) I64 or I32");
    return DG_STATUS_ERR_SHAPE;
  }
  const int64_t B = ids->shape[0], L = ids->shape[1], C = c->hidden_size;
  if (B <= 0 || L <= 0 || L > c->max_positions) {
    dg_set_error(err, errlen, "clip_text: %lld tokens (at most %d)", (long long)L, c->max_positions);
    return DG_STATUS_ERR_SHAPE;
  }
  if (run->skip < 0 || run->skip > c->n_layers) {
    dg_set_error(err, errlen, "clip_text: skip %d out of range [0, %d]", run->skip, c->n_layers);
    return DG_STATUS_ERR_INVALID;
  }
  if (!shape_is(run->hidden, 3, B, L, C) || (run->pooled && !shape_is(run->pooled, 2, B, C, 0))) {
    dg_set_error(err, errlen, "clip_text: output tensors must be F32 (B, L, C) / (B, C)");
    return DG_STATUS_ERR_SHAPE;
  }
  if (run->text_embeds && (!m->proj || !shape_is(run->text_embeds, 2, B, c->projection_dim, 0))) {
    dg_set_error(err, errlen, "clip_text: text_embeds needs a text_projection and a (B, P) F32 output");
    return DG_STATUS_ERR_SHAPE;
  }
  /* Token ids are checked here too, so that a bad id names itself. */
  for (int64_t i = 0; i < B * L; i++) {
    int64_t id = ids->dtype == DG_DTYPE_I64 ? ((const int64_t *)ids->data)[i]
                                            : ((const int32_t *)ids->data)[i];
    if (id < 0 || id >= c->vocab_size) {
      dg_set_error(err, errlen, "clip_text: token id %lld outside the vocabulary (%d)", (long long)id,
             c->vocab_size);
      return DG_STATUS_ERR_INVALID;
    }
  }

  dg_status st = DG_STATUS_OK;
  dg_arena_mark mark = dg_arena_get_mark(arena);
  const int want_pool = run->pooled || run->text_embeds;
  /* Layers to run: all of them for the pooled output, else up to the one asked for. */
  const int n_run = want_pool ? c->n_layers : c->n_layers - run->skip;

  dg_tensor *x, *pos, *pos_ids;
  ALLOC(x, 3, B, L, C);  /* (B, L, C) */
  ALLOC(pos, 3, 1, L, C); /* (1, L, C) */
  {
    int64_t n = L;
    pos_ids = dg_arena_tensor(arena, DG_DTYPE_I64, 1, &n); /* (L) */
    if (!pos_ids) {
      st = DG_STATUS_ERR_NOMEM;
      goto out;
    }
    for (int64_t i = 0; i < L; i++) ((int64_t *)pos_ids->data)[i] = i;
  }
  {
    dg_tensor pos2;
    int64_t s2[2] = {L, C};
    TRY(dg_tensor_reshape(pos, 2, s2, &pos2)); /* (L, C) view */
    TRY(dg_embedding(e, x, ids, m->tok_emb));
    TRY(dg_embedding(e, &pos2, pos_ids, m->pos_emb));
    TRY(dg_add(e, x, x, pos));
  }
  if (run->skip == c->n_layers) TRY(emit_hidden(m, e, run, x));
  for (int l = 0; l < n_run; l++) {
    TRY(clip_layer(m, &m->layers[l], e, arena, x));
    if (l == c->n_layers - 1 - run->skip) TRY(emit_hidden(m, e, run, x));
  }
  if (want_pool) {
    dg_tensor *xn, *pooled = run->pooled;
    ALLOC(xn, 3, B, L, C); /* (B, L, C) */
    TRY(dg_layer_norm(e, xn, x, c->eps, m->lnf_w, m->lnf_b));
    if (!pooled) ALLOC(pooled, 2, B, C); /* (B, C) */
    for (int64_t b = 0; b < B; b++) {
      /* torch.argmax: the first position of the largest id (the first EOS). */
      int64_t best = 0, best_id = -1;
      for (int64_t i = 0; i < L; i++) {
        int64_t id = ids->dtype == DG_DTYPE_I64 ? ((const int64_t *)ids->data)[b * L + i]
                                                : ((const int32_t *)ids->data)[b * L + i];
        if (id > best_id) {
          best_id = id;
          best = i;
        }
      }
      memcpy((float *)pooled->data + b * C, (const float *)xn->data + (b * L + best) * C,
             (size_t)C * sizeof(float));
    }
    if (run->text_embeds) TRY(dg_linear(e, run->text_embeds, pooled, m->proj, NULL));
  }
out:
  if (st != DG_STATUS_OK)
    dg_set_error(err, errlen, "clip_text forward: %s", dg_strerror(st));
  dg_arena_reset(arena, mark);
  return st;
}
