/* CLIP text encoder (transformers CLIPTextModel semantics).
 *
 * One config-driven network for every CLIP text tower diffusion models use:
 * SD1.5 (OpenAI ViT-L/14: 768 wide, 12 layers, quick_gelu), and SDXL's two
 * encoders (ViT-L/14 penultimate layer, OpenCLIP bigG with text_projection).
 *
 * Weights use the HF names ("text_model.embeddings.token_embedding.weight",
 * "text_model.encoder.layers.N.self_attn.q_proj.weight", ...,
 * "text_projection.weight" when present), read in their stored dtype.
 *
 *   x   = token_embedding[ids] + position_embedding[0..L)          (B, L, C)
 *   for each layer:  x = x + out_proj(attn_causal(ln1(x)))
 *                    x = x + fc2(act(fc1(ln2(x))))
 *   last_hidden_state = final_layer_norm(x)
 *   pooled = last_hidden_state[b, argmax(ids[b])]                 (B, C)
 *   text_embeds = pooled @ text_projection^T                       (B, P)
 */
#ifndef DG_MODELS_CLIP_TEXT_H
#define DG_MODELS_CLIP_TEXT_H

#include <stddef.h>

#include "tensor/tensor.h"
#include "weights/weights.h"

typedef enum dg_clip_act {
  DG_CLIP_ACT_QUICK_GELU, /* x * sigmoid(1.702 x) (OpenAI CLIP) */
  DG_CLIP_ACT_GELU        /* erf GELU (OpenCLIP) */
} dg_clip_act;

typedef struct dg_clip_text_config {
  int vocab_size;        /* 49408 */
  int hidden_size;       /* C: 768 (SD1.5), 1280 (bigG) */
  int n_layers;          /* 12 */
  int n_heads;           /* 12 (head dim 64) */
  int intermediate_size; /* 3072 */
  int max_positions;     /* 77 */
  dg_clip_act act;
  float eps;             /* LayerNorm eps, 1e-5 */
  int projection_dim;    /* 0 = no text_projection; else P (bigG: 1280) */
} dg_clip_text_config;

/* SD1.5's text encoder (openai/clip-vit-large-patch14 text tower). */
dg_clip_text_config dg_clip_text_config_sd15(void);
/* Tiny test config of the fixtures (hidden 32, 2 layers, 4 heads, intermediate 37). */
dg_clip_text_config dg_clip_text_config_tiny(void);
/* Parse an HF config.json (CLIPTextConfig, or CLIPTextModelWithProjection). */
dg_status dg_clip_text_config_from_json(const char *json_text, dg_clip_text_config *c, char *err,
                                        size_t errlen);
/* Infer the config from the weights' names and shapes.  The number of heads is
 * not visible in the shapes: hidden/64 (every published CLIP text tower uses a
 * head dim of 64) unless n_heads_hint > 0.  The activation cannot be seen
 * either: quick_gelu unless act_hint says otherwise (pass -1 for "no hint"). */
dg_status dg_clip_text_config_detect(const dg_weights *w, int n_heads_hint, int act_hint,
                                     dg_clip_text_config *c, char *err, size_t errlen);
/* ERR_INVALID with a message if a config is unusable. */
dg_status dg_clip_text_config_check(const dg_clip_text_config *c, char *err, size_t errlen);

/* Every weight the config needs, in the order transformers' named_parameters()
 * lists them (so a seeded random init matches PyTorch's), with HF names.
 * Return non-zero from cb to stop; the enumeration then returns that value
 * (0 when all were visited; -1 for an invalid config).  Same callback type as
 * dg_unet_enumerate. */
typedef int (*dg_clip_text_param_fn)(void *ud, const char *name, int ndim, const int64_t *shape);
int dg_clip_text_enumerate(const dg_clip_text_config *c, dg_clip_text_param_fn fn, void *ud);

/* OpenCLIP names (an SDXL single file's "conditioner.embedders.1.model."
 * tensors, prefix removed) -> the names this model binds.  The fused
 * attn.in_proj (3C, C) becomes "...self_attn.in_proj.weight" (q, k, v are
 * taken as row views of it) and "text_projection" (C, P) keeps its name (it
 * is transposed into an owned F32 copy when bound).  0 for other names. */
int dg_clip_text_openclip_key_map(const char *name, char *out, size_t n, void *ud);

typedef struct dg_clip_text dg_clip_text;

/* Bind the weights (borrowed: they must outlive the model); every tensor is
 * checked for presence, shape and float dtype (ERR_FORMAT + message). */
dg_status dg_clip_text_new(const dg_clip_text_config *c, const dg_weights *w, dg_clip_text **out,
                           char *err, size_t errlen);
void dg_clip_text_free(dg_clip_text *m);
const dg_clip_text_config *dg_clip_text_get_config(const dg_clip_text *m);

/* What a forward pass produces (all outputs caller-allocated F32, nullable
 * except `hidden`). */
typedef struct dg_clip_text_run {
  /* Which hidden state to return in `hidden`: 0 = the last layer's output,
   * k = hidden_states[-(k+1)] (diffusers clip_skip k; SDXL uses k = 1 without
   * final norm); k = n_layers gives the embeddings. */
  int skip;
  int final_norm;           /* apply final_layer_norm to it (SD1.5: 1, SDXL: 0) */
  dg_tensor *hidden;        /* (B, L, C) */
  dg_tensor *pooled;        /* (B, C): final_layer_norm(last layer)[b, argmax ids[b]] */
  dg_tensor *text_embeds;   /* (B, P): pooled @ text_projection^T (needs a projection) */
} dg_clip_text_run;

dg_clip_text_run dg_clip_text_run_default(void); /* skip 0, final_norm 1, no outputs */

/* ids (B, L) I64 or I32 with L <= max_positions.  Temporaries go to `arena`
 * and are released (reset to the entry mark) before returning. */
dg_status dg_clip_text_forward(const dg_clip_text *m, dg_engine *e, dg_arena *arena,
                               const dg_tensor *ids, dg_clip_text_run *run, char *err,
                               size_t errlen);

#endif
