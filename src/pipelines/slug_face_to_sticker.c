/* face-to-sticker: parameter table exactly as seeds/face-to-sticker.txt.
 * The seed gives no range for width, height, steps, upscale_steps and
 * prompt_strength; bounded here (README "Serving"): width/height 256..2048,
 * steps 1..100, upscale_steps 1..100, prompt_strength 0..20. */
#include <stdio.h>

#include "pipelines/schema.h"

static const dg_param_spec params[] = {
    {"height", DG_PARAM_TYPE_INTEGER, 0, "1024", 1, 1, 256, 2048, NULL, NULL},
    {"image", DG_PARAM_TYPE_IMAGE, 0,
     "\"https://segmind-sd-models.s3.amazonaws.com/display_images/face-to-sticker-input.jpg\"", 0, 0, 0, 0, NULL,
     "An image of a person to be converted to a sticker"},
    {"instant_id_strength", DG_PARAM_TYPE_NUMBER, 0, "1", 1, 1, 0, 1, NULL, "How strong the InstantID will be."},
    {"ip_adapter_noise", DG_PARAM_TYPE_NUMBER, 0, "0.5", 1, 1, 0, 1, NULL,
     "How much noise is added to the IP adapter input"},
    {"ip_adapter_weight", DG_PARAM_TYPE_NUMBER, 0, "0.2", 1, 1, 0, 1, NULL,
     "How much the IP adapter will influence the image"},
    {"negative_prompt", DG_PARAM_TYPE_STRING, 0, "\"\"", 0, 0, 0, 0, NULL, "Things you do not want in the image"},
    {"prompt", DG_PARAM_TYPE_STRING, 0, "\"a person\"", 0, 0, 0, 0, NULL, NULL},
    {"prompt_strength", DG_PARAM_TYPE_NUMBER, 0, "7", 1, 1, 0, 20, NULL,
     "Strength of the prompt. This is the CFG scale, higher numbers lead to stronger prompt, lower numbers will "
     "keep more of a likeness to the original."},
    {"seed", DG_PARAM_TYPE_SEED, 0, "321312", 0, 0, 0, 0, NULL, "Fix the random seed for reproducibility"},
    {"steps", DG_PARAM_TYPE_INTEGER, 0, "20", 1, 1, 1, 100, NULL, NULL},
    {"upscale", DG_PARAM_TYPE_BOOLEAN, 0, "false", 0, 0, 0, 0, NULL, "2x upscale the sticker"},
    {"upscale_steps", DG_PARAM_TYPE_INTEGER, 0, "10", 1, 1, 1, 100, NULL, "Number of steps to upscale"},
    {"width", DG_PARAM_TYPE_INTEGER, 0, "1024", 1, 1, 256, 2048, NULL, NULL},
};

static const char *const files[] = {
    "checkpoints/albedobaseXL_v13.safetensors",
    "instantid/ip-adapter.bin",
    "instantid/ControlNetModel/diffusion_pytorch_model.safetensors",
    "insightface/antelopev2/scrfd_10g_bnkps.onnx",
    "insightface/antelopev2/glintr100.onnx",
    "ipadapter/ip-adapter-plus-face_sdxl_vit-h.safetensors",
    "clip_vision/CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors",
    "controlnet/depth-zoe-xl-v1.0.safetensors",
    "depth/ZoeD_M12_N.pt",
    "rmbg/RMBG-1.4.safetensors",
    "upscale_models/4x-AnimeSharp.pth",
    "checkpoints/dreamshaper_8.safetensors",
    NULL,
};

static dg_status check(const char *models_dir, char *missing, size_t n) {
  char list[3072];
  int k = dg__pipeline_missing_files(models_dir, files, list, sizeof list);
  snprintf(missing, n, "the face-to-sticker (SDXL) pipeline is not built yet; it will need %s%s",
           k ? "these missing files: " : "the installed files (all present)", k ? list : "");
  return DG_STATUS_ERR_UNAVAILABLE;
}

static dg_status run(dg_job_io *io) {
  snprintf(io->error, sizeof io->error, "the face-to-sticker pipeline is not available in this build");
  return DG_STATUS_ERR_UNAVAILABLE;
}

const dg_pipeline dg_slug_face_to_sticker = {
    "face-to-sticker", "Face to sticker (SDXL + InstantID)", params, (int)(sizeof params / sizeof params[0]), 1.0,
    check, run,
};
