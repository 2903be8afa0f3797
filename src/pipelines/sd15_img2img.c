/* Placeholder until the SD1.5 engine pipeline lands. */
#include "pipelines/sd15_img2img.h"

#include <stdio.h>

dg_status dg_sd15_img2img_check(const char *models_dir, char *missing, size_t n) {
  snprintf(missing, n, "%s/sd1.5-img2img/ (the sd1.5-img2img pipeline is not built yet)",
           models_dir ? models_dir : "models");
  return DG_STATUS_ERR_UNAVAILABLE;
}

dg_status dg_sd15_img2img_run(dg_job_io *io) {
  snprintf(io->error, sizeof io->error, "sd1.5-img2img pipeline is not built yet");
  return DG_STATUS_ERR_UNAVAILABLE;
}
