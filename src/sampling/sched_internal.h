/* Internals shared by the scheduler files (not a public header). */
#ifndef DG_SAMPLING_SCHED_INTERNAL_H
#define DG_SAMPLING_SCHED_INTERNAL_H

#include "sampling/scheduler.h"

/* Solver state buffers (each n floats, allocated on the first step). */
enum {
  DG__SB_A, /* Heun prev_derivative / KDPM2 sample / PNDM cur_sample / UniPC last_sample */
  DG__SB_B, /* Heun sample / singlestep sample */
  DG__SB_M0, /* multistep model outputs, oldest .. newest (DG__SB_M0 + j) */
  DG__SB_M1,
  DG__SB_M2,
  DG__SB_M3,
  DG__SB_TMP,
  DG__SB_TMP2,
  DG__SB_COUNT
};

struct dg_scheduler {
  dg_sched_kind kind;
  dg_scheduler_config cfg;
  dg_sched_spacing spacing; /* resolved */
  int order;                /* diffusers' scheduler.order */
  int T;                    /* num_train_timesteps */
  float *alphas_cumprod;    /* [T] float32, as torch.cumprod */
  float *train_sigmas;      /* [T] float32 sqrt((1-ac)/ac) */
  float *log_sigmas;        /* [T] float32 log(train_sigmas) */
  float final_alpha_cumprod;

  int steps;            /* num_inference_steps given to set_timesteps; 0 = unset */
  int n_ts;             /* full schedule length */
  double *ts;           /* [n_ts] */
  int n_sig;            /* sigmas length (0 for alpha schedulers) */
  float *sigmas;        /* [n_sig] */
  float *sig_interp;    /* KDPM2 / KDPM2a, [n_sig] */
  float *sig_up;        /* KDPM2a, [n_sig] */
  float *sig_down;      /* KDPM2a, [n_sig] */
  int *order_list;      /* singlestep, [steps] */
  float init_noise_sigma;
  int begin; /* first loop index into ts */

  /* loop state */
  int next_i;
  int64_t n;
  float *sb[DG__SB_COUNT];
  int n_models;          /* multistep: valid model outputs held (<= 4) */
  int counter;           /* PNDM counter */
  int lower_order_nums;  /* DPM++ 2M / UniPC */
  int this_order;        /* UniPC */
  int first_order_state; /* Heun / KDPM2: 1 = next step is the first-order one */
  float heun_dt;
  double lms_coeffs[4];
  int lms_ncoeffs;
};

/* Step functions: k = global index into ts, t = ts[k]. */
dg_status dg__sched_step_alpha(dg_scheduler *s, int k, const float *eps, float *x, int64_t n,
                               dg_noise_fn noise, void *noise_ctx);
dg_status dg__sched_step_k(dg_scheduler *s, int k, const float *eps, float *x, int64_t n,
                           dg_noise_fn noise, void *noise_ctx);
dg_status dg__sched_step_dpm(dg_scheduler *s, int k, const float *eps, float *x, int64_t n);
/* LMS coefficient of derivative `cur` for an `order`-step method at index k. */
double dg__lms_coefficient(const float *sigmas, int order, int k, int cur);

#endif
