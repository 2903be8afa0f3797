/* sd1.5-img2img: parameter table exactly as the public documentation
 * (seeds/sd1.5-img2img.txt); scheduler enum = the twelve names of API.md;
 * img_width/img_height: integers restricted to 512 or 768 (the seed lists
 * "512" as default and "512, 768" as the allowed values). */
#include "pipelines/schema.h"
#include "pipelines/sd15_img2img.h"

static const char *const schedulers[] = {"DDIM",  "DPM Multi",     "DPM Single",  "Euler a",
                                         "Euler", "Heun",          "DPM2 a Karras", "DPM2 Karras",
                                         "LMS",   "PNDM",          "UniPC",       "DDPM",
                                         NULL};
static const char *const sizes[] = {"512", "768", NULL};

static const dg_param_spec params[] = {
    {"image", DG_PARAM_TYPE_IMAGE, 1, NULL, 0, 0, 0, 0, NULL, "Input Image."},
    {"prompt", DG_PARAM_TYPE_STRING, 1, NULL, 0, 0, 0, 0, NULL, "Prompt to render"},
    {"base64", DG_PARAM_TYPE_BOOLEAN, 0, "false", 0, 0, 0, 0, NULL, "Base64 encoding of the output image."},
    {"guidance_scale", DG_PARAM_TYPE_NUMBER, 0, "7.5", 1, 1, 0.1, 25, NULL, "Scale for classifier-free guidance"},
    {"img_height", DG_PARAM_TYPE_INTEGER, 0, "512", 0, 0, 0, 0, sizes, "Image resolution."},
    {"img_width", DG_PARAM_TYPE_INTEGER, 0, "512", 0, 0, 0, 0, sizes, "Image resolution."},
    {"negative_prompt", DG_PARAM_TYPE_STRING, 0, NULL, 0, 0, 0, 0, NULL,
     "Prompts to exclude, eg. 'bad anatomy, bad hands, missing fingers'"},
    {"num_inference_steps", DG_PARAM_TYPE_INTEGER, 0, "20", 1, 1, 20, 100, NULL, "Number of denoising steps."},
    {"samples", DG_PARAM_TYPE_INTEGER, 0, "1", 1, 1, 1, 4, NULL, "Number of samples to generate."},
    {"scheduler", DG_PARAM_TYPE_ENUM, 0, "\"DDIM\"", 0, 0, 0, 0, schedulers, "Type of scheduler."},
    {"seed", DG_PARAM_TYPE_SEED, 0, "-1", 0, 0, 0, 0, NULL, "Seed for image generation."},
    {"strength", DG_PARAM_TYPE_NUMBER, 0, "1", 1, 1, 0.1, 1, NULL, "How much to transform the reference image"},
};

const dg_pipeline dg_slug_sd15_img2img = {
    "sd1.5-img2img", "Stable Diffusion 1.5 img2img", params, (int)(sizeof params / sizeof params[0]), 1.0,
    dg_sd15_img2img_check, dg_sd15_img2img_run,
};
