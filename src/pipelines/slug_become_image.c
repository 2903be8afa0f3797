/* become-image: parameter table exactly as seeds/become-image.txt. */
#include <stdio.h>

#include "pipelines/schema.h"

static const dg_param_spec params[] = {
    {"control_depth_strength", DG_PARAM_TYPE_NUMBER, 0, "0.8", 1, 1, 0, 1, NULL,
     "Strength of depth controlnet. The bigger this is, the more controlnet affects the output."},
    {"denoising_strength", DG_PARAM_TYPE_NUMBER, 0, "1", 1, 1, 0, 1, NULL,
     "How much of the original image of the person to keep. 1 is the complete destruction of the original image, "
     "0 is the original image"},
    {"disable_safety_checker", DG_PARAM_TYPE_BOOLEAN, 0, "true", 0, 0, 0, 0, NULL,
     "Disable safety checker for generated images"},
    {"image", DG_PARAM_TYPE_IMAGE, 0,
     "\"https://segmind-inference-io.s3.us-east-1.amazonaws.com/sample_images/image_71.webp\"", 0, 0, 0, 0, NULL,
     "An image of a person to be converted"},
    {"image_to_become", DG_PARAM_TYPE_IMAGE, 0,
     "\"https://segmind-inference-io.s3.amazonaws.com/sample_images/40548cb9-ae1f-4caa-969d-382c913a74ef.webp\"", 0,
     0, 0, 0, NULL, "Any image to convert the person to"},
    {"image_to_become_noise", DG_PARAM_TYPE_NUMBER, 0, "0.3", 1, 1, 0, 1, NULL,
     "How much noise to add to the style image before processing. An alternative way of controlling stength."},
    {"image_to_become_strength", DG_PARAM_TYPE_NUMBER, 0, "0.75", 1, 1, 0, 1, NULL,
     "How strong the style will be applied"},
    {"instant_id_strength", DG_PARAM_TYPE_NUMBER, 0, "1", 1, 1, 0, 1, NULL, "How strong the InstantID will be."},
    {"negative_prompt", DG_PARAM_TYPE_STRING, 0, "\"\"", 0, 0, 0, 0, NULL, "Things you do not want in the image"},
    {"number_of_images", DG_PARAM_TYPE_INTEGER, 0, "2", 1, 1, 1, 10, NULL, "Number of images to generate"},
    {"prompt", DG_PARAM_TYPE_STRING, 0, "\"a person\"", 0, 0, 0, 0, NULL, NULL},
    {"prompt_strength", DG_PARAM_TYPE_NUMBER, 0, "2", 1, 1, 0, 3, NULL,
     "Strength of the prompt. This is the CFG scale, higher numbers lead to stronger prompt, lower numbers will "
     "keep more of a likeness to the original."},
    {"seed", DG_PARAM_TYPE_SEED, 0, "null", 0, 0, 0, 0, NULL, "Fix the random seed for reproducibility"},
};

static const char *const files[] = {
    "checkpoints/dreamshaperXL_lightningDPMSDE.safetensors",
    "controlnet/depth-zoe-xl-v1.0.safetensors",
    "depth/dpt_hybrid-midas-501f0c75.pt",
    "instantid/ip-adapter.bin",
    "instantid/ControlNetModel/diffusion_pytorch_model.safetensors",
    "insightface/antelopev2/scrfd_10g_bnkps.onnx",
    "insightface/antelopev2/glintr100.onnx",
    "ipadapter/ip-adapter-plus_sdxl_vit-h.safetensors",
    "clip_vision/CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors",
    NULL,
};

static dg_status check(const char *models_dir, char *missing, size_t n) {
  char list[3072];
  int k = dg__pipeline_missing_files(models_dir, files, list, sizeof list);
  snprintf(missing, n, "the become-image (SDXL) pipeline is not built yet; it will need %s%s",
           k ? "these missing files: " : "the installed files (all present)", k ? list : "");
  return DG_STATUS_ERR_UNAVAILABLE;
}

static dg_status run(dg_job_io *io) {
  snprintf(io->error, sizeof io->error, "the become-image pipeline is not available in this build");
  return DG_STATUS_ERR_UNAVAILABLE;
}

const dg_pipeline dg_slug_become_image = {
    "become-image", "Become image (SDXL + InstantID + IP-Adapter)", params, (int)(sizeof params / sizeof params[0]),
    1.0, check, run,
};
