/* style-transfer: parameter table exactly as seeds/style-transfer.txt.
 * width/height have no documented range: bounded here to 256..2048. */
#include <stdio.h>

#include "pipelines/schema.h"

static const char *const models[] = {"fast", "high-quality", "realistic", "cinematic", "animated", NULL};
static const char *const formats[] = {"webp", "jpg", "png", NULL};

static const dg_param_spec params[] = {
    {"style_image", DG_PARAM_TYPE_IMAGE, 1, NULL, 0, 0, 0, 0, NULL, "Copy the style from this image"},
    {"height", DG_PARAM_TYPE_INTEGER, 0, "1024", 1, 1, 256, 2048, NULL,
     "Height of the output image (ignored if structure image given)"},
    {"model", DG_PARAM_TYPE_ENUM, 0, "\"fast\"", 0, 0, 0, 0, models, "An enumeration."},
    {"negative_prompt", DG_PARAM_TYPE_STRING, 0, "\"\"", 0, 0, 0, 0, NULL,
     "Things you do not want to see in your image"},
    {"number_of_images", DG_PARAM_TYPE_INTEGER, 0, "1", 1, 1, 1, 10, NULL, "Number of images to generate"},
    {"output_format", DG_PARAM_TYPE_ENUM, 0, "\"webp\"", 0, 0, 0, 0, formats, "An enumeration."},
    {"output_quality", DG_PARAM_TYPE_INTEGER, 0, "80", 1, 1, 0, 100, NULL,
     "Quality of the output images, from 0 to 100. 100 is best quality, 0 is lowest quality."},
    {"prompt", DG_PARAM_TYPE_STRING, 0, "\"A panda running on a jogging track\"", 0, 0, 0, 0, NULL,
     "Prompt for the image"},
    {"seed", DG_PARAM_TYPE_SEED, 0, "null", 0, 0, 0, 0, NULL, "Set a seed for reproducibility. Random by default."},
    {"structure_denoising_strength", DG_PARAM_TYPE_NUMBER, 0, "0.65", 1, 1, 0, 1, NULL,
     "How much of the original image (and colors) to preserve (0 is all, 1 is none, 0.65 is a good balance)"},
    {"structure_depth_strength", DG_PARAM_TYPE_NUMBER, 0, "1", 1, 1, 0, 2, NULL, "Strength of the depth controlnet"},
    {"structure_image", DG_PARAM_TYPE_IMAGE, 0, "null", 0, 0, 0, 0, NULL,
     "An optional image to copy structure from. Output images will use the same aspect ratio."},
    {"width", DG_PARAM_TYPE_INTEGER, 0, "1024", 1, 1, 256, 2048, NULL,
     "Width of the output image (ignored if structure image given)"},
};

static const char *const files[] = {
    "checkpoints/dreamshaperXL_lightningDPMSDE.safetensors",
    "checkpoints/albedobaseXL_v21.safetensors",
    "checkpoints/RealVisXL_V4.0.safetensors",
    "checkpoints/CinematicRedmond.safetensors",
    "checkpoints/starlightXLAnimated_v3.safetensors",
    "ipadapter/ip-adapter-plus_sdxl_vit-h.safetensors",
    "clip_vision/CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors",
    "controlnet/depth-zoe-xl-v1.0.safetensors",
    "depth/dpt_hybrid-midas-501f0c75.pt",
    NULL,
};

static dg_status check(const char *models_dir, char *missing, size_t n) {
  char list[3072];
  int k = dg__pipeline_missing_files(models_dir, files, list, sizeof list);
  snprintf(missing, n, "the style-transfer (SDXL) pipeline is not built yet; it will need %s%s",
           k ? "these missing files: " : "the installed files (all present)", k ? list : "");
  return DG_STATUS_ERR_UNAVAILABLE;
}

static dg_status run(dg_job_io *io) {
  snprintf(io->error, sizeof io->error, "the style-transfer pipeline is not available in this build");
  return DG_STATUS_ERR_UNAVAILABLE;
}

const dg_pipeline dg_slug_style_transfer = {
    "style-transfer", "IPAdapter Style Transfer (SDXL)", params, (int)(sizeof params / sizeof params[0]), 1.0,
    check, run,
};
