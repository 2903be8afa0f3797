/* A Stable Diffusion 1.x model: tokenizer, CLIP text encoder, UNet and VAE,
 * opened from either published layout:
 *
 *  - single file (original LDM checkpoint, ".safetensors"): tensors under
 *    "model.diffusion_model." (UNet), "first_stage_model." (VAE) and
 *    "cond_stage_model.transformer." (CLIP text encoder, HF names); renamed to
 *    diffusers names by the UNet/VAE key maps.  Configs come from, in order:
 *    a config folder given by the caller (diffusers layout: unet/config.json,
 *    vae/config.json, text_encoder/config.json), the file's "__metadata__"
 *    entries "dg.unet_config" / "dg.vae_config" / "dg.text_encoder_config"
 *    (written by `daguerre gen-model`), or detection from the tensor shapes.
 *    The tokenizer comes from a directory given by the caller.
 *  - diffusers folder (model_index.json + unet/ vae/ text_encoder/
 *    tokenizer/ [scheduler/]): each part's config.json and
 *    diffusion_pytorch_model[.fp16].safetensors / model[.fp16].safetensors.
 *
 * Weights stay memory-mapped in their stored dtype (F32/F16/BF16). */
#ifndef DG_MODELS_SD15_H
#define DG_MODELS_SD15_H

#include <stddef.h>

#include "models/clip_text.h"
#include "models/tokenizer.h"
#include "models/unet.h"
#include "models/vae.h"

typedef enum dg_sd15_layout {
  DG_SD15_LAYOUT_SINGLE,   /* one .safetensors file, LDM names */
  DG_SD15_LAYOUT_DIFFUSERS /* folder with model_index.json */
} dg_sd15_layout;

typedef struct dg_sd15_params {
  const char *path;          /* .safetensors file or diffusers folder */
  const char *tokenizer_dir; /* vocab.json + merges.txt; required for single files
                                (diffusers: overrides the folder's tokenizer/) */
  const char *config_dir;    /* optional configs for a single file (see above) */
  int text_encoder;          /* load the tokenizer + text encoder (default 1) */
  int unet;                  /* load the UNet (default 1) */
  int vae_encoder;           /* default 1 */
  int vae_decoder;           /* default 1 */
} dg_sd15_params;

dg_sd15_params dg_sd15_params_default(void);

typedef struct dg_sd15 dg_sd15;

/* Errors: ERR_NOT_FOUND / ERR_IO (missing files), ERR_FORMAT (bad or
 * incomplete checkpoint, with the first bad tensor named), ERR_UNSUPPORTED
 * (e.g. a .ckpt/.bin pickle), ERR_INVALID (bad params). */
dg_status dg_sd15_open(const dg_sd15_params *p, dg_sd15 **out, char *err, size_t errlen);
void dg_sd15_close(dg_sd15 *m);

dg_sd15_layout dg_sd15_get_layout(const dg_sd15 *m);
/* The parts (NULL when not loaded).  Owned by the model. */
const dg_tokenizer *dg_sd15_tokenizer(const dg_sd15 *m);
dg_clip_text *dg_sd15_text_encoder(const dg_sd15 *m);
const dg_unet *dg_sd15_unet(const dg_sd15 *m);
const dg_vae *dg_sd15_vae(const dg_sd15 *m);
/* scheduler/scheduler_config.json of a diffusers folder (text), or NULL. */
const char *dg_sd15_scheduler_config(const dg_sd15 *m);

/* Config JSON texts as the loader understands them (for writing metadata and
 * config.json files): diffusers/HF keys.  Return a malloc'd string (free()),
 * NULL on OOM. */
char *dg_sd15_unet_config_json(const dg_unet_config *c);
char *dg_sd15_vae_config_json(const dg_vae_config *c);
char *dg_sd15_text_config_json(const dg_clip_text_config *c);

#endif
