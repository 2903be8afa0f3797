/* The k-diffusion family over sigmas: Euler, Euler ancestral, Heun, LMS, DPM2
 * (KDPM2) and DPM2 ancestral, as diffusers' *DiscreteScheduler classes.
 * x is the sigma-scaled latent; eps predictions give the denoised estimate
 * x0 = x - sigma * eps. Per-step scalars are float32 (0-d tensors in torch). */
#include <math.h>
#include <string.h>

#include "sampling/sched_internal.h"

/* Euler (s_churn = 0: gamma = 0, sigma_hat = sigma). diffusers still draws one
 * noise tensor per step, which keeps the generator stream aligned. */
static dg_status step_euler(dg_scheduler *s, int k, const float *eps, float *x, int64_t n,
                            dg_noise_fn noise, void *noise_ctx) {
  if (!noise) return DG_STATUS_ERR_INVALID;
  dg_status st = noise(noise_ctx, s->sb[DG__SB_TMP], n); /* drawn, unused */
  if (st != DG_STATUS_OK) return st;
  float sigma_hat = s->sigmas[k];
  float dt = s->sigmas[k + 1] - sigma_hat;
  for (int64_t j = 0; j < n; j++) {
    float x0 = x[j] - sigma_hat * eps[j];
    float d = (x[j] - x0) / sigma_hat;
    x[j] = x[j] + d * dt;
  }
  return DG_STATUS_OK;
}

static dg_status step_euler_a(dg_scheduler *s, int k, const float *eps, float *x, int64_t n,
                              dg_noise_fn noise, void *noise_ctx) {
  if (!noise) return DG_STATUS_ERR_INVALID;
  float sigma = s->sigmas[k];
  float from = sigma, to = s->sigmas[k + 1];
  float up = sqrtf(to * to * (from * from - to * to) / (from * from));
  float down = sqrtf(to * to - up * up);
  float dt = down - sigma;
  float *z = s->sb[DG__SB_TMP];
  dg_status st = noise(noise_ctx, z, n);
  if (st != DG_STATUS_OK) return st;
  for (int64_t j = 0; j < n; j++) {
    float x0 = x[j] - sigma * eps[j];
    float d = (x[j] - x0) / sigma;
    float prev = x[j] + d * dt;
    x[j] = prev + z[j] * up;
  }
  return DG_STATUS_OK;
}

/* Heun: a first-order (Euler) step to sigma_next, then a correction with the
 * derivative at sigma_next averaged with the first one. */
static void step_heun(dg_scheduler *s, int k, const float *eps, float *x, int64_t n) {
  float *prev_d = s->sb[DG__SB_A], *sample = s->sb[DG__SB_B];
  if (s->first_order_state) {
    float sigma = s->sigmas[k], next = s->sigmas[k + 1];
    float dt = next - sigma;
    for (int64_t j = 0; j < n; j++) {
      float x0 = x[j] - sigma * eps[j];
      float d = (x[j] - x0) / sigma;
      prev_d[j] = d;
      sample[j] = x[j];
      x[j] = x[j] + d * dt;
    }
    s->heun_dt = dt;
    s->first_order_state = 0;
  } else {
    float next = s->sigmas[k];
    float dt = s->heun_dt;
    for (int64_t j = 0; j < n; j++) {
      float x0 = x[j] - next * eps[j];
      float d = (x[j] - x0) / next;
      d = (prev_d[j] + d) / 2.0f;
      x[j] = sample[j] + d * dt;
    }
    s->first_order_state = 1;
  }
}

/* KDPM2 (DPM-Solver-2 in k-diffusion's form): first a step to the midpoint
 * sigma (geometric mean), then the full step with the midpoint derivative.
 * The ancestral variant steps to sigma_down and adds sigma_up noise (drawn on
 * every call, used on the second). */
static dg_status step_kdpm2(dg_scheduler *s, int k, const float *eps, float *x, int64_t n,
                            dg_noise_fn noise, void *noise_ctx, int ancestral) {
  float *sample = s->sb[DG__SB_A];
  float *z = s->sb[DG__SB_TMP];
  if (ancestral) {
    if (!noise) return DG_STATUS_ERR_INVALID;
    dg_status st = noise(noise_ctx, z, n);
    if (st != DG_STATUS_OK) return st;
  }
  if (s->first_order_state) {
    float sigma = s->sigmas[k];
    float si = ancestral ? s->sig_interp[k] : s->sig_interp[k + 1];
    float dt = si - sigma;
    for (int64_t j = 0; j < n; j++) {
      float x0 = x[j] - sigma * eps[j];
      float d = (x[j] - x0) / sigma;
      sample[j] = x[j];
      x[j] = x[j] + d * dt;
    }
    s->first_order_state = 0;
  } else {
    float sigma = s->sigmas[k - 1];
    float si = ancestral ? s->sig_interp[k - 1] : s->sig_interp[k];
    float target = ancestral ? s->sig_down[k - 1] : s->sigmas[k];
    float up = ancestral ? s->sig_up[k - 1] : 0.0f;
    float dt = target - sigma;
    for (int64_t j = 0; j < n; j++) {
      float x0 = x[j] - si * eps[j];
      float d = (x[j] - x0) / si;
      float prev = sample[j] + d * dt;
      x[j] = ancestral ? prev + z[j] * up : prev;
    }
    s->first_order_state = 1;
  }
  return DG_STATUS_OK;
}

/* QUADPACK's 21-point Gauss-Kronrod rule (dqk21): Kronrod abscissae (the odd
 * ones, 1-based even, are the 10-point Gauss nodes) and weights. */
static const double qk21_x[11] = {
    0.995657163025808080735527280689003, 0.973906528517171720077964012084452,
    0.930157491355708226001207180059508, 0.865063366688984510732096688423493,
    0.780817726586416897063717578345042, 0.679409568299024406234327365114874,
    0.562757134668604683339000099272694, 0.433395394129247190799265943165784,
    0.294392862701460198131126603103866, 0.148874338981631210884826001129720,
    0.0};
static const double qk21_w[11] = {
    0.011694638867371874278064396062192, 0.032558162307964727478818972459390,
    0.054755896574351996031381300244580, 0.075039674810919952767043140916190,
    0.093125454583697605535065465083366, 0.109387158802297641899210590325805,
    0.123491976262065851077208976252570, 0.134709217311473325928054001771707,
    0.142775938577060080797094273138717, 0.147739104901338491374841515972068,
    0.149445554002916905664936468389821};

/* The Lagrange basis polynomial of node `cur` over sigmas[k], sigmas[k-1], ..,
 * sigmas[k-order+1] at tau, evaluated as diffusers' lms_derivative does: in
 * float32 (tau - 0-d float32 tensor), product starting from 1.0. */
static double lms_basis(const float *sigmas, int order, int k, int cur, double tau) {
  float prod = 1.0f;
  for (int j = 0; j < order; j++) {
    if (j == cur) continue;
    prod *= ((float)tau - sigmas[k - j]) / (sigmas[k - cur] - sigmas[k - j]);
  }
  return prod;
}

/* Integral over [sigmas[k], sigmas[k+1]] of that polynomial. diffusers calls
 * scipy's quad (QAGS, epsrel 1e-4): for a polynomial of degree <= 3 its first
 * 21-point Gauss-Kronrod estimate already meets the tolerance and is returned,
 * so that single rule, with the float32 integrand, reproduces its value to the
 * last bits (the exact integral differs from it by ~1e-7). */
double dg__lms_coefficient(const float *sigmas, int order, int k, int cur) {
  double a = sigmas[k], b = sigmas[k + 1];
  double centr = 0.5 * (a + b), hlgth = 0.5 * (b - a);
  double resk = qk21_w[10] * lms_basis(sigmas, order, k, cur, centr);
  for (int j = 1; j < 10; j += 2) { /* Gauss nodes first, as dqk21 */
    double absc = hlgth * qk21_x[j];
    double fsum = lms_basis(sigmas, order, k, cur, centr - absc) +
                  lms_basis(sigmas, order, k, cur, centr + absc);
    resk += qk21_w[j] * fsum;
  }
  for (int j = 0; j < 10; j += 2) {
    double absc = hlgth * qk21_x[j];
    double fsum = lms_basis(sigmas, order, k, cur, centr - absc) +
                  lms_basis(sigmas, order, k, cur, centr + absc);
    resk += qk21_w[j] * fsum;
  }
  return resk * hlgth;
}

/* LMS: linear multistep over up to 4 stored derivatives (newest last). */
static void step_lms(dg_scheduler *s, int k, const float *eps, float *x, int64_t n) {
  float sigma = s->sigmas[k];
  if (s->n_models == 4) { /* pop(0) */
    float *old = s->sb[DG__SB_M0];
    memmove(&s->sb[DG__SB_M0], &s->sb[DG__SB_M1], 3 * sizeof(float *));
    s->sb[DG__SB_M3] = old;
    s->n_models = 3;
  }
  float *d = s->sb[DG__SB_M0 + s->n_models];
  for (int64_t j = 0; j < n; j++) {
    float x0 = x[j] - sigma * eps[j];
    d[j] = (x[j] - x0) / sigma;
  }
  s->n_models++;
  int order = k + 1 < 4 ? k + 1 : 4;
  memset(s->lms_coeffs, 0, sizeof s->lms_coeffs);
  for (int c = 0; c < order; c++) s->lms_coeffs[c] = dg__lms_coefficient(s->sigmas, order, k, c);
  s->lms_ncoeffs = order;
  /* zip(coeffs, reversed(derivatives)) stops at the shorter one */
  int m = order < s->n_models ? order : s->n_models;
  float cf[4];
  for (int c = 0; c < m; c++) cf[c] = (float)s->lms_coeffs[c];
  for (int64_t j = 0; j < n; j++) {
    float acc = 0.0f;
    for (int c = 0; c < m; c++) acc = acc + cf[c] * s->sb[DG__SB_M0 + s->n_models - 1 - c][j];
    x[j] = x[j] + acc;
  }
}

dg_status dg__sched_step_k(dg_scheduler *s, int k, const float *eps, float *x, int64_t n,
                           dg_noise_fn noise, void *noise_ctx) {
  switch (s->kind) {
  case DG_SCHED_KIND_EULER:
    return step_euler(s, k, eps, x, n, noise, noise_ctx);
  case DG_SCHED_KIND_EULER_A:
    return step_euler_a(s, k, eps, x, n, noise, noise_ctx);
  case DG_SCHED_KIND_HEUN:
    step_heun(s, k, eps, x, n);
    return DG_STATUS_OK;
  case DG_SCHED_KIND_LMS:
    step_lms(s, k, eps, x, n);
    return DG_STATUS_OK;
  case DG_SCHED_KIND_DPM2_KARRAS:
    return step_kdpm2(s, k, eps, x, n, noise, noise_ctx, 0);
  case DG_SCHED_KIND_DPM2_A_KARRAS:
    return step_kdpm2(s, k, eps, x, n, noise, noise_ctx, 1);
  default:
    return DG_STATUS_ERR_INTERNAL;
  }
}
