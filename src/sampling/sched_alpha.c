/* The alpha-cumprod schedulers: DDIM (eta 0), PNDM (PLMS with skip_prk_steps)
 * and DDPM (fixed_small variance). Scalars are float32 as in diffusers (0-d
 * float32 tensors); element-wise expressions keep torch's evaluation order. */
#include <math.h>
#include <string.h>

#include "sampling/sched_internal.h"

static float alpha_at(const dg_scheduler *s, int t, float final) {
  return t >= 0 ? s->alphas_cumprod[t] : final;
}

/* DDIMScheduler.step, eta = 0, epsilon prediction, no clipping. */
static void step_ddim(dg_scheduler *s, int t, const float *eps, float *x, int64_t n) {
  int prev_t = t - s->T / s->steps;
  float a_t = s->alphas_cumprod[t];
  float a_prev = alpha_at(s, prev_t, s->final_alpha_cumprod);
  float beta_t = 1.0f - a_t;
  float sb = sqrtf(beta_t), sa = sqrtf(a_t), sap = sqrtf(a_prev);
  float dir = sqrtf(1.0f - a_prev - 0.0f); /* std_dev_t = 0 */
  for (int64_t j = 0; j < n; j++) {
    float x0 = (x[j] - sb * eps[j]) / sa;     /* pred_original_sample */
    x[j] = sap * x0 + dir * eps[j];            /* + pred_sample_direction */
  }
}

/* PNDM's _get_prev_sample (formula (9) of the PNDM paper). */
static void pndm_prev_sample(const dg_scheduler *s, const float *sample, int t, int prev_t,
                             const float *mo, float *out, int64_t n) {
  float a_t = s->alphas_cumprod[t];
  float a_prev = alpha_at(s, prev_t, s->final_alpha_cumprod);
  float beta_t = 1.0f - a_t;
  float beta_prev = 1.0f - a_prev;
  float sample_coeff = sqrtf(a_prev / a_t);
  float denom = a_t * sqrtf(beta_prev) + sqrtf(a_t * beta_t * a_prev);
  float c = a_prev - a_t;
  for (int64_t j = 0; j < n; j++) out[j] = sample_coeff * sample[j] - c * mo[j] / denom;
}

/* PNDMScheduler.step_plms (skip_prk_steps): ets live in sb[M0..M3], oldest
 * first, n_models of them. */
static void step_pndm(dg_scheduler *s, int t, const float *eps, float *x, int64_t n) {
  int ratio = s->T / s->steps;
  int prev_t = t - ratio;
  if (s->counter != 1) {
    if (s->n_models == 4) { /* ets = ets[-3:] */
      float *old = s->sb[DG__SB_M0];
      memmove(&s->sb[DG__SB_M0], &s->sb[DG__SB_M1], 3 * sizeof(float *));
      s->sb[DG__SB_M3] = old;
      s->n_models = 3;
    }
    memcpy(s->sb[DG__SB_M0 + s->n_models], eps, sizeof(float) * (size_t)n);
    s->n_models++;
  } else {
    prev_t = t;
    t = t + ratio;
  }
  int ne = s->n_models;
  const float *e1 = ne >= 1 ? s->sb[DG__SB_M0 + ne - 1] : NULL;
  const float *e2 = ne >= 2 ? s->sb[DG__SB_M0 + ne - 2] : NULL;
  const float *e3 = ne >= 3 ? s->sb[DG__SB_M0 + ne - 3] : NULL;
  const float *e4 = ne >= 4 ? s->sb[DG__SB_M0 + ne - 4] : NULL;
  float *mo = s->sb[DG__SB_TMP];
  const float *sample = x;
  if (ne == 1 && s->counter == 0) {
    memcpy(mo, eps, sizeof(float) * (size_t)n);
    memcpy(s->sb[DG__SB_A], x, sizeof(float) * (size_t)n); /* cur_sample */
  } else if (ne == 1 && s->counter == 1) {
    for (int64_t j = 0; j < n; j++) mo[j] = (eps[j] + e1[j]) / 2.0f;
    sample = s->sb[DG__SB_A];
  } else if (ne == 2) {
    for (int64_t j = 0; j < n; j++) mo[j] = (3.0f * e1[j] - e2[j]) / 2.0f;
  } else if (ne == 3) {
    for (int64_t j = 0; j < n; j++) mo[j] = (23.0f * e1[j] - 16.0f * e2[j] + 5.0f * e3[j]) / 12.0f;
  } else {
    const float c = (float)(1.0 / 24.0);
    for (int64_t j = 0; j < n; j++)
      mo[j] = c * (55.0f * e1[j] - 59.0f * e2[j] + 37.0f * e3[j] - 9.0f * e4[j]);
  }
  pndm_prev_sample(s, sample, t, prev_t, mo, x, n);
  s->counter++;
}

/* DDPMScheduler.step, fixed_small variance, epsilon prediction. */
static dg_status step_ddpm(dg_scheduler *s, int t, const float *eps, float *x, int64_t n,
                           dg_noise_fn noise, void *noise_ctx) {
  int prev_t = t - s->T / s->steps;
  float a_t = s->alphas_cumprod[t];
  float a_prev = alpha_at(s, prev_t, 1.0f);
  float beta_t = 1.0f - a_t;
  float beta_prev = 1.0f - a_prev;
  float cur_alpha = a_t / a_prev;
  float cur_beta = 1.0f - cur_alpha;
  float sa = sqrtf(a_t), sb = sqrtf(beta_t);
  float c0 = sqrtf(a_prev) * cur_beta / beta_t;     /* pred_original_sample_coeff */
  float c1 = sqrtf(cur_alpha) * beta_prev / beta_t; /* current_sample_coeff */
  float *z = NULL;
  float std = 0.0f;
  if (t > 0) {
    if (!noise) return DG_STATUS_ERR_INVALID;
    z = s->sb[DG__SB_TMP];
    dg_status st = noise(noise_ctx, z, n);
    if (st != DG_STATUS_OK) return st;
    float var = (1.0f - a_prev) / (1.0f - a_t) * (1.0f - a_t / a_prev);
    if (var < 1e-20f) var = 1e-20f;
    std = sqrtf(var);
  }
  for (int64_t j = 0; j < n; j++) {
    float x0 = (x[j] - sb * eps[j]) / sa;
    float prev = c0 * x0 + c1 * x[j];
    if (z) prev = prev + std * z[j];
    x[j] = prev;
  }
  return DG_STATUS_OK;
}

dg_status dg__sched_step_alpha(dg_scheduler *s, int k, const float *eps, float *x, int64_t n,
                               dg_noise_fn noise, void *noise_ctx) {
  int t = (int)s->ts[k];
  switch (s->kind) {
  case DG_SCHED_KIND_DDIM:
    step_ddim(s, t, eps, x, n);
    return DG_STATUS_OK;
  case DG_SCHED_KIND_PNDM:
    step_pndm(s, t, eps, x, n);
    return DG_STATUS_OK;
  case DG_SCHED_KIND_DDPM:
    return step_ddpm(s, t, eps, x, n, noise, noise_ctx);
  default:
    return DG_STATUS_ERR_INTERNAL;
  }
}
