/* sd1.5-img2img: diffusers StableDiffusionImg2ImgPipeline semantics, natively.
 *
 * Weights live under <models_dir>/sd1.5-img2img/, in either published layout:
 *   - a diffusers folder: model_index.json, unet/, vae/, text_encoder/,
 *     tokenizer/ (and scheduler/, which is not needed: the schedulers are
 *     configured as SD1.5 ships them);
 *   - one single-file checkpoint (*.safetensors, e.g. v1-5-pruned-emaonly.safetensors)
 *     plus tokenizer/vocab.json and tokenizer/merges.txt beside it. */
#ifndef DG_PIPELINES_SD15_IMG2IMG_H
#define DG_PIPELINES_SD15_IMG2IMG_H

#include <stdint.h>

#include "models/sd15.h"
#include "pipelines/pipeline.h"

dg_status dg_sd15_img2img_check(const char *models_dir, char *missing, size_t n);
dg_status dg_sd15_img2img_run(dg_job_io *io);

/* Open the model installed under <models_dir>/sd1.5-img2img (either layout). */
dg_status dg_sd15_img2img_open_model(const char *models_dir, dg_sd15 **out, char *err,
                                     size_t errlen);

/* Open an SD1.5 model from any of: a models directory (with sd1.5-img2img/
 * inside), a diffusers folder, or a single .safetensors checkpoint whose
 * tokenizer is tokenizer_dir or, when NULL, the folder "tokenizer" beside
 * the file (benchmarks and tools taking one path). */
dg_status dg_sd15_open_path(const char *path, const char *tokenizer_dir, dg_sd15 **out, char *err,
                            size_t errlen);

/* One request, with the public parameters' meaning. */
typedef struct dg_sd15_img2img_request {
  const dg_image *image;        /* input (RGB or RGBA; alpha dropped) */
  const char *prompt;
  const char *negative_prompt;  /* NULL or "" = unconditional */
  int samples;                  /* images, generated as one batch */
  const char *scheduler;        /* API name, e.g. "DDIM" */
  int steps;                    /* num_inference_steps */
  double guidance_scale;        /* CFG when > 1 */
  double strength;              /* (0, 1] */
  uint64_t seed;
  int width, height;            /* the input is resized to this (Lanczos, as PIL); multiples of 8 */
  /* Progress / cancel (may be NULL). */
  void (*progress)(void *ud, int step, int total_steps);
  int (*cancelled)(void *ud);
  void *ud;
  /* Optional outputs for tests: final latents (samples*4*h*w floats) and the
   * decoded image before clamping (samples*3*H*W floats, NCHW). */
  float *latents_out;
  float *image_out;
} dg_sd15_img2img_request;

/* Run the pipeline: outs[0..samples) receive RGB images (caller frees). */
dg_status dg_sd15_img2img_generate(dg_sd15 *model, dg_engine *engine,
                                   const dg_sd15_img2img_request *req, dg_image **outs,
                                   char *err, size_t errlen);

#endif
