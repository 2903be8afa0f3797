/* Exponential-integrator solvers in data (x0) prediction over sigmas, as
 * diffusers' DPMSolverMultistepScheduler (DPM-Solver++ 2M, midpoint, lower
 * order final), DPMSolverSinglestepScheduler (order 2, order list 1,2,1,2..)
 * and UniPCMultistepScheduler (bh2 predictor + corrector, order 2).
 * Scalars are float32 as diffusers computes them with 0-d tensors. */
#include <math.h>
#include <string.h>

#include "sampling/sched_internal.h"

typedef struct {
  float alpha, sigma, lambda;
} ast;

static ast alpha_sigma(float sigma) {
  ast r;
  r.alpha = 1.0f / sqrtf(sigma * sigma + 1.0f);
  r.sigma = sigma * r.alpha;
  r.lambda = logf(r.alpha) - logf(r.sigma);
  return r;
}

/* x0 = (x - sigma_t * eps) / alpha_t at sigmas[k]. */
static void convert_x0(const dg_scheduler *s, int k, const float *eps, const float *x,
                       float *out, int64_t n) {
  ast a = alpha_sigma(s->sigmas[k]);
  for (int64_t j = 0; j < n; j++) out[j] = (x[j] - a.sigma * eps[j]) / a.alpha;
}

/* Push a model output: sb[M0] (older) <- sb[M1] (newer) <- new; returns the
 * buffer to fill. */
static float *push_model(dg_scheduler *s) {
  float *old = s->sb[DG__SB_M0];
  s->sb[DG__SB_M0] = s->sb[DG__SB_M1];
  s->sb[DG__SB_M1] = old;
  if (s->n_models < 2) s->n_models++;
  return old;
}

/* First-order DPM-Solver++ (= DDIM in x0 form) from sigmas[k] to sigmas[k+1]. */
static void dpm_first(const dg_scheduler *s, int k, const float *m, const float *x, float *out,
                      int64_t n) {
  ast t = alpha_sigma(s->sigmas[k + 1]), s0 = alpha_sigma(s->sigmas[k]);
  float h = t.lambda - s0.lambda;
  float c1 = t.sigma / s0.sigma;
  float c2 = t.alpha * (expf(-h) - 1.0f);
  for (int64_t j = 0; j < n; j++) out[j] = c1 * x[j] - c2 * m[j];
}

/* Second-order midpoint update. Multistep: from sigmas[k] using m0 (at k) and
 * m1 (at k-1). Singlestep: from sigmas[k-1] (sample taken there) using m1 (at
 * k-1) and m0 (at k). */
static void dpm_second(const dg_scheduler *s, int k, const float *m0, const float *m1,
                       const float *x, float *out, int64_t n, int singlestep) {
  ast t = alpha_sigma(s->sigmas[k + 1]), a0 = alpha_sigma(s->sigmas[k]),
      a1 = alpha_sigma(s->sigmas[k - 1]);
  float h, h0, base_sigma;
  const float *d0;
  if (singlestep) {
    h = t.lambda - a1.lambda;
    h0 = a0.lambda - a1.lambda;
    base_sigma = a1.sigma;
    d0 = m1;
  } else {
    h = t.lambda - a0.lambda;
    h0 = a0.lambda - a1.lambda;
    base_sigma = a0.sigma;
    d0 = m0;
  }
  float r0 = h0 / h;
  float inv_r0 = 1.0f / r0;
  float c1 = t.sigma / base_sigma;
  float c2 = t.alpha * (expf(-h) - 1.0f);
  float c3 = 0.5f * c2;
  for (int64_t j = 0; j < n; j++) {
    float d1 = inv_r0 * (m0[j] - m1[j]);
    out[j] = c1 * x[j] - c2 * d0[j] - c3 * d1;
  }
}

/* solver_order 2: first order on the first step (no history) and on the last
 * one (final sigma 0), second order in between. */
static void step_2m(dg_scheduler *s, int k, const float *eps, float *x, int64_t n) {
  int last = k == s->n_ts - 1; /* final_sigmas_type "zero": always first order */
  float *m = push_model(s);
  convert_x0(s, k, eps, x, m, n);
  if (s->lower_order_nums < 1 || last)
    dpm_first(s, k, m, x, x, n);
  else
    dpm_second(s, k, s->sb[DG__SB_M1], s->sb[DG__SB_M0], x, x, n, 0);
  if (s->lower_order_nums < 2) s->lower_order_nums++;
}

static void step_single(dg_scheduler *s, int k, const float *eps, float *x, int64_t n) {
  float *m = push_model(s);
  convert_x0(s, k, eps, x, m, n);
  int order = s->order_list[k];
  if (order > s->n_models) order = s->n_models;
  float *sample = s->sb[DG__SB_B];
  if (order == 1) {
    memcpy(sample, x, sizeof(float) * (size_t)n);
    dpm_first(s, k, m, sample, x, n);
  } else {
    dpm_second(s, k, s->sb[DG__SB_M1], s->sb[DG__SB_M0], sample, x, n, 1);
  }
}

/* UniPC bh2 coefficients. */
static void unipc_b(float hh, int order, float *b, float *B_h_out) {
  float h_phi_1 = expm1f(hh);
  float h_phi_k = h_phi_1 / hh - 1.0f;
  float B_h = expm1f(hh);
  int factorial = 1;
  for (int i = 1; i <= order; i++) {
    b[i - 1] = h_phi_k * (float)factorial / B_h;
    factorial *= i + 1;
    h_phi_k = h_phi_k / hh - 1.0f / (float)factorial;
  }
  *B_h_out = B_h;
}

/* Corrector: refine the sample x_t predicted at the previous step (from
 * last_sample at sigmas[k-1] to sigmas[k]) with the new model output mt. */
static void unipc_corrector(dg_scheduler *s, int k, const float *mt, float *x, int64_t n) {
  int order = s->this_order;
  const float *m0 = s->sb[DG__SB_M1], *m1 = s->sb[DG__SB_M0];
  const float *last = s->sb[DG__SB_A];
  ast t = alpha_sigma(s->sigmas[k]), a0 = alpha_sigma(s->sigmas[k - 1]);
  float h = t.lambda - a0.lambda;
  float hh = -h;
  float h_phi_1 = expm1f(hh);
  float b[2], B_h;
  unipc_b(hh, order, b, &B_h);
  float rho0 = 0.0f, rho_last = 0.5f, rk = 1.0f;
  if (order == 2) {
    ast ai = alpha_sigma(s->sigmas[k - 2]);
    rk = (ai.lambda - a0.lambda) / h;
    /* solve [[1, 1], [rk, 1]] rho = b with partial pivoting (as LAPACK) */
    float r00 = 1.0f, r01 = 1.0f, r10 = rk, r11 = 1.0f, b0 = b[0], b1 = b[1];
    if (fabsf(r10) > fabsf(r00)) {
      float tmp;
      tmp = r00, r00 = r10, r10 = tmp;
      tmp = r01, r01 = r11, r11 = tmp;
      tmp = b0, b0 = b1, b1 = tmp;
    }
    float l = r10 * (1.0f / r00);
    float u11 = r11 - l * r01;
    float y1 = b1 - l * b0;
    rho_last = y1 / u11;
    rho0 = (b0 - r01 * rho_last) / r00;
  }
  float c1 = t.sigma / a0.sigma;
  float c2 = t.alpha * h_phi_1;
  float c3 = t.alpha * B_h;
  for (int64_t j = 0; j < n; j++) {
    float xt_ = c1 * last[j] - c2 * m0[j];
    float d1t = mt[j] - m0[j];
    float corr;
    if (order == 2) {
      float d1 = (m1[j] - m0[j]) / rk;
      corr = rho0 * d1 + rho_last * d1t;
    } else {
      corr = rho_last * d1t;
    }
    x[j] = xt_ - c3 * corr;
  }
}

/* Predictor from sigmas[k] to sigmas[k+1]. */
static void unipc_predictor(dg_scheduler *s, int k, int order, float *x, int64_t n) {
  const float *m0 = s->sb[DG__SB_M1], *m1 = s->sb[DG__SB_M0];
  ast t = alpha_sigma(s->sigmas[k + 1]), a0 = alpha_sigma(s->sigmas[k]);
  float h = t.lambda - a0.lambda;
  float hh = -h;
  float h_phi_1 = expm1f(hh);
  float B_h = expm1f(hh);
  float rk = 1.0f;
  if (order == 2) {
    ast ai = alpha_sigma(s->sigmas[k - 1]);
    rk = (ai.lambda - a0.lambda) / h;
  }
  float c1 = t.sigma / a0.sigma;
  float c2 = t.alpha * h_phi_1;
  float c3 = t.alpha * B_h;
  for (int64_t j = 0; j < n; j++) {
    float xt_ = c1 * x[j] - c2 * m0[j];
    if (order == 2) {
      float d1 = (m1[j] - m0[j]) / rk;
      x[j] = xt_ - c3 * (0.5f * d1);
    } else {
      x[j] = xt_;
    }
  }
}

static void step_unipc(dg_scheduler *s, int k, const float *eps, float *x, int64_t n) {
  int use_corrector = k > 0 && s->this_order > 0; /* last_sample exists */
  float *mc = s->sb[DG__SB_TMP2];
  convert_x0(s, k, eps, x, mc, n);
  if (use_corrector) unipc_corrector(s, k, mc, x, n);
  float *m = push_model(s);
  memcpy(m, mc, sizeof(float) * (size_t)n);
  int this_order = s->n_ts - k < 2 ? s->n_ts - k : 2; /* lower_order_final */
  if (this_order > s->lower_order_nums + 1) this_order = s->lower_order_nums + 1;
  s->this_order = this_order;
  memcpy(s->sb[DG__SB_A], x, sizeof(float) * (size_t)n); /* last_sample */
  unipc_predictor(s, k, this_order, x, n);
  if (s->lower_order_nums < 2) s->lower_order_nums++;
}

dg_status dg__sched_step_dpm(dg_scheduler *s, int k, const float *eps, float *x, int64_t n) {
  switch (s->kind) {
  case DG_SCHED_KIND_DPMPP_2M:
  case DG_SCHED_KIND_DPMPP_2M_KARRAS:
    step_2m(s, k, eps, x, n);
    return DG_STATUS_OK;
  case DG_SCHED_KIND_DPMPP_SINGLESTEP:
    step_single(s, k, eps, x, n);
    return DG_STATUS_OK;
  case DG_SCHED_KIND_UNIPC:
    step_unipc(s, k, eps, x, n);
    return DG_STATUS_OK;
  default:
    return DG_STATUS_ERR_INTERNAL;
  }
}
