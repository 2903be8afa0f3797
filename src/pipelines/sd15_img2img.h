/* sd1.5-img2img: diffusers StableDiffusionImg2ImgPipeline semantics, natively. */
#ifndef DG_PIPELINES_SD15_IMG2IMG_H
#define DG_PIPELINES_SD15_IMG2IMG_H

#include "pipelines/pipeline.h"

/* Weights under <models_dir>/sd1.5-img2img/ (see README). */
dg_status dg_sd15_img2img_check(const char *models_dir, char *missing, size_t n);
dg_status dg_sd15_img2img_run(dg_job_io *io);

#endif
