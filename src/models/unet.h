/* The config-driven conditional UNet: diffusers' UNet2DConditionModel, number
 * for number, for every size of the Stable Diffusion family (SD1.x, SD2.x and
 * SDXL are the same code with different configs).
 *
 * Weights are looked up by their diffusers names ("down_blocks.0.resnets.0.
 * conv1.weight", ...).  A single-file (original LDM) checkpoint is loaded by
 * adding its "model.diffusion_model." tensors to a dg_weights through
 * dg_unet_ldm_key_map (which renames input_blocks/middle_block/output_blocks/
 * time_embed/label_emb/out to the diffusers names).
 *
 * Typical use:
 *   dg_unet_config cfg = dg_unet_config_sd15();      // or _parse_json / _from_weights
 *   dg_unet *u = dg_unet_new(&cfg, weights, err, sizeof err);
 *   dg_unet_forward(u, engine, arena, x, t, ctx, NULL, eps);
 *   dg_unet_free(u);
 */
#ifndef DG_MODELS_UNET_H
#define DG_MODELS_UNET_H

#include <stddef.h>
#include <stdint.h>

#include "base/status.h"
#include "tensor/tensor.h"
#include "weights/weights.h"

#define DG_UNET_MAX_LEVELS 6

/* Every UNet2DConditionModel field the SD family needs.  Per-level arrays are
 * indexed by the DOWN level (0 = highest resolution); the up path uses them
 * reversed, exactly as diffusers does. */
typedef struct dg_unet_config {
  int in_channels;                                  /* 4 */
  int out_channels;                                 /* 4 */
  int n_levels;                                     /* len(block_out_channels) */
  int block_out_channels[DG_UNET_MAX_LEVELS];       /* (320, 640, 1280, 1280) */
  int layers_per_block[DG_UNET_MAX_LEVELS];         /* resnets per down block (up: +1) */
  int down_cross_attn[DG_UNET_MAX_LEVELS];          /* 1 = CrossAttnDownBlock2D, 0 = DownBlock2D */
  int up_cross_attn[DG_UNET_MAX_LEVELS];            /* in UP order: 1 = CrossAttnUpBlock2D */
  /* Number of attention heads per level.  diffusers names this
   * `attention_head_dim` (a historical misnomer: for SD1.5 it is 8 heads) unless
   * `num_attention_heads` is given. */
  int num_attention_heads[DG_UNET_MAX_LEVELS];
  int transformer_layers_per_block[DG_UNET_MAX_LEVELS]; /* per down level; up reversed */
  int mid_block_cross_attn;                         /* 1 = UNetMidBlock2DCrossAttn, 0 = no mid block */
  int cross_attention_dim;                          /* 768 (SD1), 1024 (SD2), 2048 (SDXL) */
  int use_linear_projection;                        /* proj_in/out Linear (1) or 1x1 conv (0) */
  int upcast_attention;                             /* softmax in f32 (we always compute in f32) */
  int norm_num_groups;                              /* 32 */
  float norm_eps;                                   /* resnets + conv_norm_out: 1e-5 */
  float transformer_norm_eps;                       /* Transformer2DModel GroupNorm: 1e-6 (fixed in diffusers) */
  float layer_norm_eps;                             /* transformer-block LayerNorms: 1e-5 (fixed) */
  int flip_sin_to_cos;                              /* 1 */
  float freq_shift;                                 /* 0 */
  int time_embed_dim;                               /* 4 * block_out_channels[0] unless time_embedding_dim */
  int downsample_padding;                           /* 1 */
  float mid_block_scale_factor;                     /* 1 */
  float resnet_out_scale_factor;                    /* 1 */
  /* SDXL micro-conditioning: addition_embed_type "text_time". */
  int addition_text_time;                           /* 1 for SDXL */
  int addition_time_embed_dim;                      /* 256 */
  int projection_class_embeddings_input_dim;        /* 2816 = 1280 text_embeds + 6 * 256 */
  int sample_size;                                  /* informational (64 for SD1.5) */
} dg_unet_config;

/* The published SD1.5 (runwayml / CompVis v1-5) UNet. */
dg_unet_config dg_unet_config_sd15(void);
/* The published SDXL base 1.0 UNet. */
dg_unet_config dg_unet_config_sdxl(void);

/* A diffusers unet/config.json: `json` is a path to a file, or JSON text when it
 * starts with '{'.  Unsupported features (class embeddings, other block types,
 * non-default time embedding, ...) are ERR_UNSUPPORTED with a message. */
dg_status dg_unet_config_parse_json(const char *json, dg_unet_config *cfg, char *err,
                                    size_t errlen);

/* Detect the config from tensor names and shapes, for checkpoints that come
 * without a config.  `w` holds the UNet tensors with the file prefix removed,
 * either in diffusers names or in original LDM names (no key map).
 * Not visible in shapes, so chosen as the published models do:
 * heads = 8 per level with conv projections (SD1.x); head dim 64 with linear
 * projections (SD2.x, SDXL); addition_time_embed_dim 256. */
dg_status dg_unet_config_from_weights(const dg_weights *w, dg_unet_config *cfg, char *err,
                                      size_t errlen);

/* Check a config for consistency (channels divisible by groups and heads,
 * level counts, ...).  ERR_INVALID with a message. */
dg_status dg_unet_config_validate(const dg_unet_config *cfg, char *err, size_t errlen);

/* Every parameter tensor the config expects, with its diffusers name and shape
 * (PyTorch order; entries >= ndim are 1).  Return non-zero from cb to stop;
 * dg_unet_enumerate then returns that value (0 when all were visited). */
typedef int (*dg_unet_param_fn)(void *ud, const char *name, int ndim, const int64_t *shape);
int dg_unet_enumerate(const dg_unet_config *cfg, dg_unet_param_fn cb, void *ud);

/* Number of cross-attention layers (attn2), in diffusers' attn_processors order
 * (down_blocks, then up_blocks, then mid_block).  For the SD1.5 UNet this is 16.
 * IP-Adapter checkpoints number these layers 1, 3, 5, ... (2*l + 1). */
int dg_unet_n_cross_attn_layers(const dg_unet_config *cfg);
/* diffusers prefix of cross-attention layer l, e.g.
 * "down_blocks.0.attentions.1.transformer_blocks.0.attn2" (ERR_INVALID if out of range). */
dg_status dg_unet_cross_attn_layer_name(const dg_unet_config *cfg, int l, char *out, size_t n);

/* LDM (original single-file) name -> diffusers name.  `ud` is the
 * const dg_unet_config * of the checkpoint.  Names without the
 * "model.diffusion_model." prefix (pass it to dg_weights_add).  Returns 0 for
 * names that are not UNet parameters. */
int dg_unet_ldm_key_map(const char *name, char *out, size_t n, void *ud);

/* ---- The network ---------------------------------------------------------- */
typedef struct dg_unet dg_unet;

/* Resolve every tensor the config expects (presence, shape, float dtype are
 * checked up front).  Weights are borrowed (keep `w` and its files alive).
 * NULL on failure, with a message naming the first bad tensor in err. */
dg_unet *dg_unet_new(const dg_unet_config *cfg, const dg_weights *w, char *err, size_t errlen);
void dg_unet_free(dg_unet *u);
const dg_unet_config *dg_unet_get_config(const dg_unet *u);

/* ---- Hooks for later models ---------------------------------------------- */

#define DG_UNET_MAX_CONTROL 4
#define DG_UNET_MAX_IP 4

/* ControlNet output: one residual per skip connection (diffusers'
 * down_block_res_samples order: conv_in output, then every resnet/attention
 * output and downsampler output of each down block; dg_unet_n_skips() of
 * them, each with the skip's shape) and one for the middle block output.
 * Added as skip += scale * residual, mid += scale * mid_residual.
 * Several ControlNets: several sets (their scaled sum is added). */
typedef struct dg_unet_control {
  const dg_tensor *const *down; /* n_down tensors (B, C_i, H_i, W_i); NULL = none */
  int n_down;                   /* must equal dg_unet_n_skips() when down != NULL */
  const dg_tensor *mid;         /* (B, C_last, H_min, W_min) or NULL */
  float scale;                  /* conditioning scale (1 = add as given) */
} dg_unet_control;

/* One extra cross-attention K/V set (IP-Adapter, InstantID's face adapter):
 * in every cross-attention layer l, next to the text attention,
 *   h_attn += scale * layer_scale[l] * attention(q, tokens to_k[l]^T, tokens to_v[l]^T)
 * before the layer's to_out projection (diffusers IPAdapterAttnProcessor).
 * to_k[l] / to_v[l] are (inner, C_tokens) weights (no bias); a NULL entry
 * skips that layer (e.g. "style transfer" weight types use only some blocks). */
typedef struct dg_unet_ip {
  const dg_tensor *tokens;              /* (B, L_ip, C_tokens) F32 */
  const dg_tensor *const *to_k;         /* dg_unet_n_cross_attn_layers() entries */
  const dg_tensor *const *to_v;
  const float *layer_scale;             /* per layer, NULL = all 1 */
  float scale;                          /* adapter weight */
} dg_unet_ip;

/* Everything beyond (x, t, text context).  A zero-initialised struct is "no
 * extras"; the whole struct may be NULL.  Start/end fractions of the sampling
 * schedule (ControlNet guidance ranges, IP-Adapter "active for the first 20%")
 * are the sampler loop's business: it passes a set only on the steps where it
 * is active. */
typedef struct dg_unet_extras {
  /* SDXL added conditions (addition_embed_type "text_time"); required then. */
  const dg_tensor *text_embeds; /* (B, 1280) pooled text embedding */
  const dg_tensor *time_ids;    /* (B, 6): orig h, w, crop top, left, target h, w */
  dg_unet_control control[DG_UNET_MAX_CONTROL];
  int n_control;
  dg_unet_ip ip[DG_UNET_MAX_IP];
  int n_ip;
  /* Optional: called with intermediate activations named as diffusers modules
   * ("time_proj", "time_embedding", "conv_in", "down_blocks.0", "mid_block",
   * "up_blocks.1", "conv_norm_out", "conv_out", ...; an attention's inputs as
   * "<block>.attn1.q" / ".k" / ".v", (B, L, C)).  For tests/debugging;
   * the tensor is only valid during the call. */
  void (*debug)(void *ud, const char *name, const dg_tensor *t);
  void *debug_ud;
} dg_unet_extras;

/* Number of skip connections (= ControlNet down residuals): 12 for SD1.5. */
int dg_unet_n_skips(const dg_unet_config *cfg);
/* Shape of skip i for a latent of h x w (B, C, H_i, W_i), with B = batch. */
dg_status dg_unet_skip_shape(const dg_unet_config *cfg, int i, int64_t batch, int64_t h,
                             int64_t w, int64_t shape[4]);

/* One UNet evaluation (the epsilon / v prediction):
 *   x (B, in_channels, h, w) F32, any h, w >= 1 (odd sizes work: every
 *   upsampling matches its skip's size); timesteps (B) F32, or (1) broadcast;
 *   context (B, L, cross_attention_dim) F32; y (B, out_channels, h, w) F32,
 *   caller-allocated (not in the part of the arena used here).
 * Activations live in `arena` and are released before returning. */
dg_status dg_unet_forward(const dg_unet *u, dg_engine *e, dg_arena *arena, const dg_tensor *x,
                          const dg_tensor *timesteps, const dg_tensor *context,
                          const dg_unet_extras *extras, dg_tensor *y);

#endif
