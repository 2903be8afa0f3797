/* face-to-many: parameter table exactly as seeds/face-to-many.txt. */
#include <stdio.h>

#include "pipelines/schema.h"

static const char *const styles[] = {"3D", "Emoji", "Video game", "Pixels", "Clay", "Toy", NULL};

static const dg_param_spec params[] = {
    {"control_depth_strength", DG_PARAM_TYPE_NUMBER, 0, "0.8", 1, 1, 0, 1, NULL,
     "Strength of depth controlnet. The bigger this is, the more controlnet affects the output."},
    {"custom_lora_url", DG_PARAM_TYPE_STRING, 0, "null", 0, 0, 0, 0, NULL,
     "URL to a Replicate custom LoRA. Must be in the format "
     "https://replicate.delivery/pbxt/[id]/trained_model.tar or https://pbxt.replicate.delivery/[id]/trained_model.tar"},
    {"denoising_strength", DG_PARAM_TYPE_NUMBER, 0, "0.65", 1, 1, 0, 1, NULL,
     "How much of the original image to keep. 1 is the complete destruction of the original image, 0 is the "
     "original image"},
    {"image", DG_PARAM_TYPE_IMAGE, 0, "\"https://segmind-sd-models.s3.amazonaws.com/display_images/Ftm_ip.png.jpg\"",
     0, 0, 0, 0, NULL, "An image of a person to be converted"},
    {"instant_id_strength", DG_PARAM_TYPE_NUMBER, 0, "1", 1, 1, 0, 1, NULL, "How strong the InstantID will be."},
    {"lora_scale", DG_PARAM_TYPE_NUMBER, 0, "1", 1, 1, 0, 1, NULL, "How strong the LoRA will be"},
    {"negative_prompt", DG_PARAM_TYPE_STRING, 0, "\"\"", 0, 0, 0, 0, NULL, "Things you do not want in the image"},
    {"prompt", DG_PARAM_TYPE_STRING, 0, "\"a person\"", 0, 0, 0, 0, NULL, NULL},
    {"prompt_strength", DG_PARAM_TYPE_NUMBER, 0, "4.5", 1, 1, 0, 20, NULL,
     "Strength of the prompt. This is the CFG scale, higher numbers lead to stronger prompt, lower numbers will "
     "keep more of a likeness to the original."},
    {"seed", DG_PARAM_TYPE_SEED, 0, "-1", 0, 0, 0, 0, NULL, "Fix the random seed for reproducibility"},
    {"style", DG_PARAM_TYPE_ENUM, 0, "\"3D\"", 0, 0, 0, 0, styles, "An enumeration."},
};

static const char *const files[] = {
    "checkpoints/albedobaseXL_v13.safetensors",
    "loras/3DRedmond-3DRenderStyle-3DRenderAF.safetensors",
    "loras/emoji.safetensors",
    "loras/PS1Redmond-PS1Game-Playstation1Graphics.safetensors",
    "loras/PixelArtRedmond-Lite64.safetensors",
    "loras/ClayAnimationRedm.safetensors",
    "loras/ToyRedmond-FnkRedmAF.safetensors",
    "controlnet/depth-zoe-xl-v1.0.safetensors",
    "depth/dpt_hybrid-midas-501f0c75.pt",
    "instantid/ip-adapter.bin",
    "instantid/ControlNetModel/diffusion_pytorch_model.safetensors",
    "insightface/antelopev2/scrfd_10g_bnkps.onnx",
    "insightface/antelopev2/glintr100.onnx",
    NULL,
};

static dg_status check(const char *models_dir, char *missing, size_t n) {
  char list[3072];
  int k = dg__pipeline_missing_files(models_dir, files, list, sizeof list);
  snprintf(missing, n, "the face-to-many (SDXL) pipeline is not built yet; it will need %s%s",
           k ? "these missing files: " : "the installed files (all present)", k ? list : "");
  return DG_STATUS_ERR_UNAVAILABLE;
}

static dg_status run(dg_job_io *io) {
  snprintf(io->error, sizeof io->error, "the face-to-many pipeline is not available in this build");
  return DG_STATUS_ERR_UNAVAILABLE;
}

const dg_pipeline dg_slug_face_to_many = {
    "face-to-many", "Face to many (SDXL + InstantID)", params, (int)(sizeof params / sizeof params[0]), 1.0,
    check, run,
};
