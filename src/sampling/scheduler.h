/* Diffusion schedulers ("samplers"), number for number with diffusers v0.27.2
 * as Stable Diffusion 1.5 ships them: scaled_linear betas 0.00085..0.012, 1000
 * train steps, steps_offset 1, epsilon prediction, each class with its own
 * default timestep spacing (DDIM/PNDM/DDPM "leading", the others "linspace").
 *
 * A scheduler is element-wise: tensors are plain float32 arrays of n elements
 * (any latent shape, e.g. (B, 4, H/8, W/8) flattened). The network is not
 * called from here: the caller runs the loop (or uses dg_scheduler_run with a
 * denoiser callback).
 *
 * Usage (StableDiffusionImg2ImgPipeline semantics):
 *   dg_scheduler_new("Euler a", &s);
 *   dg_scheduler_set_timesteps(s, steps);
 *   dg_scheduler_set_strength(s, strength);          // img2img only
 *   dg_scheduler_add_noise(s, x0, noise, x, n);      // img2img: x = noised x0
 *   // txt2img instead: x = noise * dg_scheduler_init_noise_sigma(s)
 *   for (i = 0; i < dg_scheduler_loop_len(s); i++) {
 *     t = dg_scheduler_loop_timestep(s, i);
 *     dg_scheduler_scale_model_input(s, i, x, x_in, n);
 *     eps = unet(x_in, t);
 *     dg_scheduler_step(s, i, eps, x, n, noise_fn, noise_ctx);   // x in place
 *   }
 *
 * Stochastic schedulers draw N(0,1) noise through a dg_noise_fn, in exactly the
 * order and number diffusers calls randn_tensor (Euler draws one tensor per
 * step even though it does not use it with s_churn = 0; DDPM draws while t > 0;
 * Euler a, DPM2 a draw every step). With dg_scheduler_rng_noise and a dg_rng the
 * stream matches torch's generator; tests inject recorded noise instead.
 */
#ifndef DG_SAMPLING_SCHEDULER_H
#define DG_SAMPLING_SCHEDULER_H

#include <stddef.h>
#include <stdint.h>

#include "base/status.h"

typedef enum dg_sched_kind {
  DG_SCHED_KIND_DDIM,              /* "DDIM"          DDIMScheduler */
  DG_SCHED_KIND_PNDM,              /* "PNDM"          PNDMScheduler (skip_prk_steps) */
  DG_SCHED_KIND_LMS,               /* "LMS"           LMSDiscreteScheduler */
  DG_SCHED_KIND_EULER,             /* "Euler"         EulerDiscreteScheduler */
  DG_SCHED_KIND_EULER_A,           /* "Euler a"       EulerAncestralDiscreteScheduler */
  DG_SCHED_KIND_HEUN,              /* "Heun"          HeunDiscreteScheduler */
  DG_SCHED_KIND_DPM2_KARRAS,       /* "DPM2 Karras"   KDPM2DiscreteScheduler + Karras */
  DG_SCHED_KIND_DPM2_A_KARRAS,     /* "DPM2 a Karras" KDPM2AncestralDiscreteScheduler + Karras */
  DG_SCHED_KIND_DPMPP_2M,          /* "DPM Multi"     DPMSolverMultistepScheduler */
  DG_SCHED_KIND_DPMPP_2M_KARRAS,   /* "DPM Multi Karras" (same, use_karras_sigmas) */
  DG_SCHED_KIND_DPMPP_SINGLESTEP,  /* "DPM Single"    DPMSolverSinglestepScheduler */
  DG_SCHED_KIND_UNIPC,             /* "UniPC"         UniPCMultistepScheduler (bh2) */
  DG_SCHED_KIND_DDPM,              /* "DDPM"          DDPMScheduler (fixed_small) */
  DG_SCHED_KIND_COUNT_
} dg_sched_kind;

typedef enum dg_sched_spacing {
  DG_SCHED_SPACING_DEFAULT, /* the class default (as diffusers' from_config) */
  DG_SCHED_SPACING_LEADING,
  DG_SCHED_SPACING_LINSPACE,
  DG_SCHED_SPACING_TRAILING
} dg_sched_spacing;

typedef enum dg_sched_betas {
  DG_SCHED_BETAS_SCALED_LINEAR, /* linspace(sqrt(start), sqrt(end))^2 */
  DG_SCHED_BETAS_LINEAR
} dg_sched_betas;

/* The training noise schedule and the options SD1.5's scheduler_config sets. */
typedef struct dg_scheduler_config {
  int num_train_timesteps;  /* 1000 */
  double beta_start;        /* 0.00085 */
  double beta_end;          /* 0.012 */
  dg_sched_betas beta_schedule;
  int steps_offset;         /* 1 (leading spacing only) */
  int set_alpha_to_one;     /* 0 (DDIM/PNDM final alpha) */
  dg_sched_spacing spacing; /* DEFAULT */
} dg_scheduler_config;

typedef struct dg_scheduler dg_scheduler;

/* Source of N(0,1) float32 noise: fill out[0..n). */
typedef dg_status (*dg_noise_fn)(void *ctx, float *out, int64_t n);
/* Denoiser: eps = model(x_in, t) for the scaled input x_in (n floats). */
typedef dg_status (*dg_denoise_fn)(void *ctx, const float *x_in, double t, float *eps, int64_t n);

/* SD1.5 defaults. */
void dg_scheduler_config_default(dg_scheduler_config *cfg);

/* Kind from an API name ("DDIM", "DPM Multi", "Euler a", ...) or a short id
 * ("ddim", "dpmpp_2m_karras", "euler_a", ...). ERR_NOT_FOUND if unknown. */
dg_status dg_scheduler_kind_from_name(const char *name, dg_sched_kind *out);
const char *dg_scheduler_kind_name(dg_sched_kind kind); /* API name; "?" if invalid */
const char *dg_scheduler_kind_id(dg_sched_kind kind);   /* short id; "?" if invalid */

/* Create with the SD1.5 config. ERR_NOT_FOUND (unknown name), ERR_NOMEM. */
dg_status dg_scheduler_new(const char *name, dg_scheduler **out);
dg_status dg_scheduler_new_kind(dg_sched_kind kind, const dg_scheduler_config *cfg,
                                dg_scheduler **out);
void dg_scheduler_free(dg_scheduler *s);

dg_sched_kind dg_scheduler_kind(const dg_scheduler *s);
/* diffusers' `order` (2 for Heun / DPM2 / DPM2 a, else 1). */
int dg_scheduler_order(const dg_scheduler *s);

/* set_timesteps(steps): 1 <= steps <= num_train_timesteps, else ERR_INVALID.
 * Resets all solver state and any strength truncation. */
dg_status dg_scheduler_set_timesteps(dg_scheduler *s, int steps);
/* Full schedule after set_timesteps (as diffusers' scheduler.timesteps). */
int dg_scheduler_num_timesteps(const dg_scheduler *s);
double dg_scheduler_timestep(const dg_scheduler *s, int k);
/* sigmas (sigma schedulers incl. DPM/UniPC; k-diffusion ones end with 0);
 * returns 0 for DDIM/PNDM/DDPM which have none. */
int dg_scheduler_num_sigmas(const dg_scheduler *s);
float dg_scheduler_sigma(const dg_scheduler *s, int k);
float dg_scheduler_init_noise_sigma(const dg_scheduler *s);

/* img2img truncation (StableDiffusionImg2ImgPipeline.get_timesteps):
 * init_timestep = min(int(steps*strength), steps), t_start = steps -
 * init_timestep, the loop runs timesteps[t_start*order:] and the scheduler's
 * begin index is t_start*order. strength in (0, 1], else ERR_INVALID.
 * *t_start_out (may be NULL) receives t_start. An empty loop (strength too
 * small for the step count) gives ERR_INVALID. */
dg_status dg_scheduler_set_strength(dg_scheduler *s, double strength, int *t_start_out);

/* The loop: its length and timesteps (the value handed to the network). */
int dg_scheduler_loop_len(const dg_scheduler *s);
double dg_scheduler_loop_timestep(const dg_scheduler *s, int i);

/* out = add_noise(x0, noise, loop timestep 0); out may alias x0 or noise. */
dg_status dg_scheduler_add_noise(const dg_scheduler *s, const float *x0, const float *noise,
                                 float *out, int64_t n);
/* x_in = scale_model_input(x, loop timestep i); x_in may alias x. */
dg_status dg_scheduler_scale_model_input(const dg_scheduler *s, int i, const float *x,
                                         float *x_in, int64_t n);
/* One step: x (n floats) <- step(eps, loop timestep i, x).prev_sample.
 * Steps must be taken in order i = 0, 1, ... with the same n (ERR_INVALID
 * otherwise). noise may be NULL for deterministic schedulers; a stochastic one
 * then fails with ERR_INVALID. */
dg_status dg_scheduler_step(dg_scheduler *s, int i, const float *eps, float *x, int64_t n,
                            dg_noise_fn noise, void *noise_ctx);

/* The whole loop over a denoiser: x holds the initial latents on entry (already
 * noised / scaled by init_noise_sigma) and the result on return. */
dg_status dg_scheduler_run(dg_scheduler *s, float *x, int64_t n, dg_denoise_fn denoise,
                           void *denoise_ctx, dg_noise_fn noise, void *noise_ctx);

/* LMS only: the coefficients used by the last step (newest derivative first),
 * their count returned (0 for other kinds). coeffs must hold 4 doubles. */
int dg_scheduler_lms_coeffs(const dg_scheduler *s, double coeffs[4]);

/* A dg_noise_fn over a dg_rng (ctx = dg_rng *): torch.randn semantics. */
dg_status dg_scheduler_rng_noise(void *rng, float *out, int64_t n);

#endif
