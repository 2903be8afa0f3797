/* AutoencoderKL (diffusers semantics): the SD VAE encoder and decoder.
 *
 * Config-driven: the same code serves SD1.x/SD2.x/SDXL VAEs (they differ in
 * scaling factor and weights only) and the tiny test models.  Weights use the
 * diffusers names ("encoder.down_blocks.0.resnets.0.conv1.weight", ...,
 * "decoder.mid_block.attentions.0.to_q.weight"); dg_vae_ldm_key_map renames
 * an original single-file checkpoint's "first_stage_model." tensors.  The
 * mid-block attention projections may be Linear [C, C] (diffusers) or 1x1
 * convs [C, C, 1, 1] (LDM); both are accepted as stored.
 *
 *   encode: image (N, 3, H, W) in [-1, 1] -> moments (N, 2*Z, H/f, W/f)
 *           (f = 2^(levels-1)); mean = moments[:, :Z], logvar = clamp(moments[:, Z:], -30, 20)
 *   decode: latent z (N, Z, h, w) (already divided by scaling_factor) -> image (N, 3, f*h, f*w)
 * Odd sizes follow diffusers exactly (the encoder's downsamplers pad right and
 * bottom by one, so H/f rounds up). */
#ifndef DG_MODELS_VAE_H
#define DG_MODELS_VAE_H

#include <stddef.h>
#include <stdint.h>

#include "tensor/tensor.h"
#include "weights/weights.h"

#define DG_VAE_MAX_LEVELS 8

typedef struct dg_vae_config {
  int in_channels;                          /* 3 */
  int out_channels;                         /* 3 */
  int latent_channels;                      /* Z: 4 */
  int n_levels;                             /* len(block_out_channels): 4 */
  int block_out_channels[DG_VAE_MAX_LEVELS]; /* (128, 256, 512, 512) */
  int layers_per_block;                     /* 2 (decoder: +1 per level) */
  int norm_num_groups;                      /* 32 */
  float eps;                                /* 1e-6 everywhere */
  float scaling_factor;                     /* 0.18215 (SD1/2), 0.13025 (SDXL) */
  int mid_attention;                        /* 1: UNetMidBlock2D with attention */
  int use_quant_conv;                       /* 1: quant_conv / post_quant_conv present */
} dg_vae_config;

dg_vae_config dg_vae_config_sd15(void);
/* The fixtures' tiny VAE: (32, 32, 32, 64), 2 layers per block, 32 groups. */
dg_vae_config dg_vae_config_tiny(void);
/* Parse a diffusers vae/config.json (text). */
dg_status dg_vae_config_from_json(const char *json_text, dg_vae_config *c, char *err, size_t errlen);
/* Infer the config from tensors in diffusers names (after the LDM key map);
 * the scaling factor (not in the weights) is left at 0.18215. */
dg_status dg_vae_config_detect(const dg_weights *w, dg_vae_config *c, char *err, size_t errlen);
dg_status dg_vae_config_check(const dg_vae_config *c, char *err, size_t errlen);
/* Spatial downsampling factor, 2^(n_levels-1). */
int dg_vae_factor(const dg_vae_config *c);

/* Every parameter, diffusers names, in torch named_parameters() order (encoder,
 * decoder, quant_conv, post_quant_conv).  Mid attention weights are listed as
 * Linear [C, C].  Return non-zero from cb to stop; the enumeration returns it
 * (0 when all were visited, -1 for an invalid config). */
typedef int (*dg_vae_param_fn)(void *ud, const char *name, int ndim, const int64_t *shape);
int dg_vae_enumerate(const dg_vae_config *c, dg_vae_param_fn cb, void *ud);

/* LDM single-file name (without "first_stage_model.") -> diffusers name.
 * `ud` points to an int: the number of levels (needed to reverse decoder.up.N).
 * Returns 0 for names that are not VAE parameters. */
int dg_vae_ldm_key_map(const char *name, char *out, size_t n, void *ud);
/* The inverse (for writing single-file checkpoints); `ud` as above. */
int dg_vae_diffusers_to_ldm(const char *name, char *out, size_t n, void *ud);

typedef struct dg_vae dg_vae;

/* Bind the weights (borrowed).  want_encoder / want_decoder select the halves
 * that must be present (a decoder-only file is fine for txt2img). */
dg_status dg_vae_new(const dg_vae_config *c, const dg_weights *w, int want_encoder,
                     int want_decoder, dg_vae **out, char *err, size_t errlen);
void dg_vae_free(dg_vae *v);
const dg_vae_config *dg_vae_get_config(const dg_vae *v);

/* Optional probe of intermediate activations, named as the diffusers modules
 * ("encoder.down_blocks.1", "encoder.mid_block.attentions.0", "encoder",
 * "quant_conv", "post_quant_conv", "decoder.conv_in", "decoder.mid_block",
 * "decoder.up_blocks.0", ...).  The tensor is only valid during the call. */
typedef struct dg_vae_hooks {
  void (*debug)(void *ud, const char *name, const dg_tensor *t);
  void *debug_ud;
} dg_vae_hooks;

/* image (N, in_channels, H, W) F32 -> moments (N, 2Z, ceil(H/f), ceil(W/f)) F32
 * (caller-allocated).  Temporaries live in `arena` and are released. */
dg_status dg_vae_encode(const dg_vae *v, dg_engine *e, dg_arena *arena, const dg_tensor *image,
                        dg_tensor *moments, const dg_vae_hooks *hooks);
/* Split moments into mean, std = exp(0.5 * clamp(logvar, -30, 20)) and
 * logvar (clamped); any output may be NULL.  All (N, Z, h, w) F32. */
dg_status dg_vae_moments_split(const dg_tensor *moments, dg_tensor *mean, dg_tensor *logvar,
                               dg_tensor *std);
/* z (N, Z, h, w) F32 -> image (N, out_channels, f*h, f*w) F32 (not clamped). */
dg_status dg_vae_decode(const dg_vae *v, dg_engine *e, dg_arena *arena, const dg_tensor *z,
                        dg_tensor *image, const dg_vae_hooks *hooks);

/* Tiled decode, as diffusers' AutoencoderKL.tiled_decode (enable_tiling):
 * latent tiles of tile_latent x tile_latent (64 for SD at 512) with 25%
 * overlap (stride tile_latent * 3/4), each decoded alone, blended linearly
 * over a quarter tile with the tiles above and to the left, cropped and
 * joined.  Peak memory is that of one tile's decode.  When z fits in one tile
 * this is exactly dg_vae_decode.  tile_latent must be a positive multiple of
 * 4; ERR_INVALID otherwise. */
dg_status dg_vae_decode_tiled(const dg_vae *v, dg_engine *e, dg_arena *arena, const dg_tensor *z,
                              dg_tensor *image, int tile_latent);

/* Output size of the encoder for an input size (diffusers rounding). */
int64_t dg_vae_latent_size(const dg_vae_config *c, int64_t pixels);

#endif
