/* Scheduler object: names, the training noise schedule, set_timesteps for every
 * kind (timestep spacing, sigma interpolation, Karras sigmas, interleaved
 * Heun/KDPM2 schedules), img2img truncation, add_noise, scale_model_input and
 * the step dispatch. The update rules live in sched_alpha.c (DDIM, PNDM,
 * DDPM), sched_k.c (Euler, Euler a, Heun, LMS, DPM2, DPM2 a) and sched_dpm.c
 * (DPM-Solver++ 2M / singlestep, UniPC).
 *
 * Precision follows diffusers: tables and per-step scalars are float32 where
 * torch computes them in float32, schedule construction is float64 where numpy
 * does it in float64. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sampling/sched_internal.h"

static const struct {
  const char *name;
  const char *id;
  int order;
} kinds[DG_SCHED_KIND_COUNT_] = {
    [DG_SCHED_KIND_DDIM] = {"DDIM", "ddim", 1},
    [DG_SCHED_KIND_PNDM] = {"PNDM", "pndm", 1},
    [DG_SCHED_KIND_LMS] = {"LMS", "lms", 1},
    [DG_SCHED_KIND_EULER] = {"Euler", "euler", 1},
    [DG_SCHED_KIND_EULER_A] = {"Euler a", "euler_a", 1},
    [DG_SCHED_KIND_HEUN] = {"Heun", "heun", 2},
    [DG_SCHED_KIND_DPM2_KARRAS] = {"DPM2 Karras", "dpm2_karras", 2},
    [DG_SCHED_KIND_DPM2_A_KARRAS] = {"DPM2 a Karras", "dpm2_a_karras", 2},
    [DG_SCHED_KIND_DPMPP_2M] = {"DPM Multi", "dpmpp_2m", 1},
    [DG_SCHED_KIND_DPMPP_2M_KARRAS] = {"DPM Multi Karras", "dpmpp_2m_karras", 1},
    [DG_SCHED_KIND_DPMPP_SINGLESTEP] = {"DPM Single", "dpmpp_singlestep", 1},
    [DG_SCHED_KIND_UNIPC] = {"UniPC", "unipc", 1},
    [DG_SCHED_KIND_DDPM] = {"DDPM", "ddpm", 1},
};

void dg_scheduler_config_default(dg_scheduler_config *cfg) {
  memset(cfg, 0, sizeof *cfg);
  cfg->num_train_timesteps = 1000;
  cfg->beta_start = 0.00085;
  cfg->beta_end = 0.012;
  cfg->beta_schedule = DG_SCHED_BETAS_SCALED_LINEAR;
  cfg->steps_offset = 1;
  cfg->set_alpha_to_one = 0;
  cfg->spacing = DG_SCHED_SPACING_DEFAULT;
}

dg_status dg_scheduler_kind_from_name(const char *name, dg_sched_kind *out) {
  if (!name || !out) return DG_STATUS_ERR_INVALID;
  for (int k = 0; k < DG_SCHED_KIND_COUNT_; k++) {
    if (strcmp(name, kinds[k].name) == 0 || strcmp(name, kinds[k].id) == 0) {
      *out = (dg_sched_kind)k;
      return DG_STATUS_OK;
    }
  }
  return DG_STATUS_ERR_NOT_FOUND;
}

const char *dg_scheduler_kind_name(dg_sched_kind kind) {
  return (unsigned)kind < DG_SCHED_KIND_COUNT_ ? kinds[kind].name : "?";
}

const char *dg_scheduler_kind_id(dg_sched_kind kind) {
  return (unsigned)kind < DG_SCHED_KIND_COUNT_ ? kinds[kind].id : "?";
}

static int is_alpha_kind(dg_sched_kind k) {
  return k == DG_SCHED_KIND_DDIM || k == DG_SCHED_KIND_PNDM || k == DG_SCHED_KIND_DDPM;
}

static int is_dpm_kind(dg_sched_kind k) {
  return k == DG_SCHED_KIND_DPMPP_2M || k == DG_SCHED_KIND_DPMPP_2M_KARRAS ||
         k == DG_SCHED_KIND_DPMPP_SINGLESTEP || k == DG_SCHED_KIND_UNIPC;
}

/* torch.linspace(start, end, steps, dtype=float32) on the CPU, bit for bit:
 * ATen's two-sided formula (start + step*i below the halfway point, end -
 * step*(steps-1-i) above), evaluated as its AVX2 kernel does: chunks of 8
 * lanes whose base is computed with a fused multiply-add, lanes at base +
 * k*step, and a scalar (fused) tail. */
static float linspace_at(float start, float end, float step, int steps, int idx) {
  int halfway = steps / 2;
  return idx < halfway ? fmaf(step, (float)idx, start)
                       : fmaf(-step, (float)(steps - idx - 1), end);
}

static void torch_linspace_f32(double start_d, double end_d, int steps, float *out) {
  enum { V = 8 };
  float start = (float)start_d, end = (float)end_d;
  if (steps == 1) {
    out[0] = start;
    return;
  }
  float step = (end - start) / (float)(steps - 1);
  int i = 0, vec_end = steps / (2 * V) * (2 * V); /* the kernel takes vector pairs */
  for (; i < vec_end; i += V) {
    float base = linspace_at(start, end, step, steps, i);
    for (int k = 0; k < V; k++) out[i + k] = base + (float)k * step;
  }
  for (; i < steps; i++) out[i] = linspace_at(start, end, step, steps, i);
}

/* np.linspace(start, stop, num) in float64. */
static void np_linspace(double start, double stop, int num, double *out) {
  if (num <= 0) return;
  if (num == 1) {
    out[0] = start;
    return;
  }
  double step = (stop - start) / (double)(num - 1);
  for (int i = 0; i < num; i++) out[i] = (double)i * step + start;
  out[num - 1] = stop;
}

/* np.interp(x, arange(T), fp) with fp float32. */
static double np_interp(double x, const float *fp, int T) {
  if (!(x >= 0)) return fp[0];
  if (x >= (double)(T - 1)) return fp[T - 1];
  int j = (int)floor(x);
  if ((double)j == x) return fp[j];
  double slope = ((double)fp[j + 1] - (double)fp[j]) / 1.0;
  return slope * (x - (double)j) + (double)fp[j];
}

/* Karras et al. (2022) sigmas, rho = 7, as diffusers' _convert_to_karras. */
static void karras_sigmas(double sigma_min, double sigma_max, int n, double *out) {
  const double rho = 7.0;
  double min_inv = pow(sigma_min, 1.0 / rho), max_inv = pow(sigma_max, 1.0 / rho);
  np_linspace(0.0, 1.0, n, out); /* ramp */
  for (int i = 0; i < n; i++) out[i] = pow(max_inv + out[i] * (min_inv - max_inv), rho);
}

/* diffusers' _sigma_to_t: piecewise-linear inverse of log sigma over t. */
static double sigma_to_t(const dg_scheduler *s, double sigma) {
  double log_sigma = log(sigma > 1e-10 ? sigma : 1e-10);
  if (isnan(sigma)) log_sigma = NAN;
  int T = s->T, low = 0;
  for (int i = 0; i < T; i++)
    if (log_sigma - (double)s->log_sigmas[i] >= 0) low = i;
  if (low > T - 2) low = T - 2;
  double lo = s->log_sigmas[low], hi = s->log_sigmas[low + 1];
  double w = (lo - log_sigma) / (lo - hi);
  if (w < 0) w = 0;
  if (w > 1) w = 1;
  return (1 - w) * low + w * (low + 1);
}

/* The same for KDPM2's interpolated timesteps, where diffusers hands 0-d
 * float32 tensors to it and torch's promotion makes the arithmetic float32
 * (matches the reference to the bit for all but ~3 of 39, which are 1 ulp). */
static double sigma_to_t_f32(const dg_scheduler *s, float sigma) {
  float log_sigma = logf(sigma > 1e-10f ? sigma : 1e-10f);
  int T = s->T, low = 0;
  for (int i = 0; i < T; i++)
    if (log_sigma - s->log_sigmas[i] >= 0) low = i;
  if (low > T - 2) low = T - 2;
  float lo = s->log_sigmas[low], hi = s->log_sigmas[low + 1];
  float w = (lo - log_sigma) / (lo - hi);
  if (w < 0) w = 0;
  if (w > 1) w = 1;
  return (1.0f - w) * (float)low + w * (float)(low + 1);
}

dg_status dg_scheduler_new_kind(dg_sched_kind kind, const dg_scheduler_config *cfg,
                                dg_scheduler **out) {
  if (!out || (unsigned)kind >= DG_SCHED_KIND_COUNT_) return DG_STATUS_ERR_INVALID;
  *out = NULL;
  dg_scheduler_config def;
  if (!cfg) {
    dg_scheduler_config_default(&def);
    cfg = &def;
  }
  if (cfg->num_train_timesteps < 2 || cfg->num_train_timesteps > 100000 ||
      !(cfg->beta_start > 0) || !(cfg->beta_end > 0) || !(cfg->beta_end < 1) ||
      !(cfg->beta_start < 1))
    return DG_STATUS_ERR_INVALID;
  dg_scheduler *s = calloc(1, sizeof *s);
  if (!s) return DG_STATUS_ERR_NOMEM;
  s->kind = kind;
  s->cfg = *cfg;
  s->order = kinds[kind].order;
  s->T = cfg->num_train_timesteps;
  s->spacing = cfg->spacing;
  if (s->spacing == DG_SCHED_SPACING_DEFAULT)
    s->spacing = is_alpha_kind(kind) ? DG_SCHED_SPACING_LEADING : DG_SCHED_SPACING_LINSPACE;
  int T = s->T;
  s->alphas_cumprod = malloc(sizeof(float) * (size_t)T);
  s->train_sigmas = malloc(sizeof(float) * (size_t)T);
  s->log_sigmas = malloc(sizeof(float) * (size_t)T);
  if (!s->alphas_cumprod || !s->train_sigmas || !s->log_sigmas) {
    dg_scheduler_free(s);
    return DG_STATUS_ERR_NOMEM;
  }
  float *betas = s->train_sigmas; /* scratch */
  if (cfg->beta_schedule == DG_SCHED_BETAS_LINEAR) {
    torch_linspace_f32(cfg->beta_start, cfg->beta_end, T, betas);
  } else {
    torch_linspace_f32(sqrt(cfg->beta_start), sqrt(cfg->beta_end), T, betas);
    for (int i = 0; i < T; i++) betas[i] = betas[i] * betas[i];
  }
  double cum = 1.0; /* torch.cumprod on CPU accumulates in double */
  for (int i = 0; i < T; i++) {
    cum *= (double)(1.0f - betas[i]);
    s->alphas_cumprod[i] = (float)cum;
  }
  for (int i = 0; i < T; i++) {
    float ac = s->alphas_cumprod[i];
    s->train_sigmas[i] = sqrtf((1.0f - ac) / ac);
    s->log_sigmas[i] = logf(s->train_sigmas[i]);
  }
  s->final_alpha_cumprod = cfg->set_alpha_to_one ? 1.0f : s->alphas_cumprod[0];
  s->init_noise_sigma = 1.0f;
  *out = s;
  return DG_STATUS_OK;
}

dg_status dg_scheduler_new(const char *name, dg_scheduler **out) {
  dg_sched_kind kind;
  if (!out) return DG_STATUS_ERR_INVALID;
  *out = NULL;
  dg_status st = dg_scheduler_kind_from_name(name, &kind);
  if (st != DG_STATUS_OK) return st;
  return dg_scheduler_new_kind(kind, NULL, out);
}

static void free_state(dg_scheduler *s) {
  for (int i = 0; i < DG__SB_COUNT; i++) {
    free(s->sb[i]);
    s->sb[i] = NULL;
  }
  s->n = 0;
}

static void reset_state(dg_scheduler *s) {
  s->next_i = 0;
  s->n_models = 0;
  s->counter = 0;
  s->lower_order_nums = 0;
  s->this_order = 0;
  s->first_order_state = 1;
  s->heun_dt = 0;
  s->lms_ncoeffs = 0;
  memset(s->lms_coeffs, 0, sizeof s->lms_coeffs);
}

static void free_schedule(dg_scheduler *s) {
  free(s->ts);
  free(s->sigmas);
  free(s->sig_interp);
  free(s->sig_up);
  free(s->sig_down);
  free(s->order_list);
  s->ts = NULL;
  s->sigmas = s->sig_interp = s->sig_up = s->sig_down = NULL;
  s->order_list = NULL;
  s->n_ts = s->n_sig = 0;
  s->steps = 0;
}

void dg_scheduler_free(dg_scheduler *s) {
  if (!s) return;
  free_state(s);
  free_schedule(s);
  free(s->alphas_cumprod);
  free(s->train_sigmas);
  free(s->log_sigmas);
  free(s);
}

dg_sched_kind dg_scheduler_kind(const dg_scheduler *s) { return s->kind; }
int dg_scheduler_order(const dg_scheduler *s) { return s->order; }

/* The class's base timesteps for `steps` (float64 holding integers or the
 * float32 values of the k-diffusion schedulers). Returns the count. */
static int base_timesteps(const dg_scheduler *s, int steps, double *ts, int float32_ts) {
  int T = s->T;
  switch (s->spacing) {
  case DG_SCHED_SPACING_LINSPACE:
    np_linspace(0, T - 1, steps, ts);
    for (int i = 0; i < steps; i++) ts[i] = float32_ts ? (double)(float)ts[i] : nearbyint(ts[i]);
    break;
  case DG_SCHED_SPACING_TRAILING: {
    double ratio = (double)T / steps;
    int cnt = (int)ceil((double)T / ratio);
    if (cnt > steps) cnt = steps;
    for (int i = 0; i < cnt; i++) ts[steps - 1 - i] = nearbyint((double)T - i * ratio) - 1;
    for (int i = cnt; i < steps; i++) ts[steps - 1 - i] = 0;
    break;
  }
  default: {
    int ratio = T / steps;
    for (int i = 0; i < steps; i++) ts[i] = (double)i * ratio + s->cfg.steps_offset;
    break;
  }
  }
  /* ascending -> descending */
  for (int i = 0, j = steps - 1; i < j; i++, j--) {
    double tmp = ts[i];
    ts[i] = ts[j];
    ts[j] = tmp;
  }
  return steps;
}

/* cat(x[:1], x[1:].repeat_interleave(2), x[-1:]) of an (m)-array into 2m. */
static void interleave(const float *x, int m, float *out) {
  int o = 0;
  out[o++] = x[0];
  for (int j = 1; j < m; j++) {
    out[o++] = x[j];
    out[o++] = x[j];
  }
  out[o++] = x[m - 1];
}

static float lerp_half_exp(float a, float b) {
  /* exp(lerp(log a, log b, 0.5)) as torch: weight >= 0.5 -> b - (b - a) * (1 - w) */
  float la = logf(a), lb = logf(b);
  return expf(lb - (lb - la) * 0.5f);
}

static dg_status setup_k(dg_scheduler *s, int steps) {
  int N = steps;
  int karras = s->kind == DG_SCHED_KIND_DPM2_KARRAS || s->kind == DG_SCHED_KIND_DPM2_A_KARRAS;
  double *ts = malloc(sizeof(double) * (size_t)N);
  double *sg = malloc(sizeof(double) * (size_t)N);
  float *sig = malloc(sizeof(float) * (size_t)(N + 1));
  if (!ts || !sg || !sig) {
    free(ts);
    free(sg);
    free(sig);
    return DG_STATUS_ERR_NOMEM;
  }
  base_timesteps(s, N, ts, 1);
  for (int i = 0; i < N; i++) sg[i] = np_interp(ts[i], s->train_sigmas, s->T);
  if (karras) {
    double smin = sg[N - 1], smax = sg[0];
    karras_sigmas(smin, smax, N, sg);
    for (int i = 0; i < N; i++) ts[i] = nearbyint(sigma_to_t(s, sg[i]));
  }
  for (int i = 0; i < N; i++) sig[i] = (float)sg[i];
  sig[N] = 0.0f;
  free(sg);
  dg_status st = DG_STATUS_OK;
  switch (s->kind) {
  case DG_SCHED_KIND_HEUN:
    s->n_sig = 2 * N;
    s->n_ts = 2 * N - 1;
    s->sigmas = malloc(sizeof(float) * (size_t)s->n_sig);
    s->ts = malloc(sizeof(double) * (size_t)s->n_ts);
    if (!s->sigmas || !s->ts) {
      st = DG_STATUS_ERR_NOMEM;
      break;
    }
    /* cat(s[:1], s[1:-1].repeat_interleave(2), s[-1:]) */
    s->sigmas[0] = sig[0];
    for (int j = 1; j < N; j++) s->sigmas[2 * j - 1] = s->sigmas[2 * j] = sig[j];
    s->sigmas[2 * N - 1] = sig[N];
    s->ts[0] = ts[0];
    for (int j = 1; j < N; j++) s->ts[2 * j - 1] = s->ts[2 * j] = ts[j];
    break;
  case DG_SCHED_KIND_DPM2_KARRAS:
  case DG_SCHED_KIND_DPM2_A_KARRAS: {
    int M = N + 1; /* sigmas incl. the final 0 */
    int ancestral = s->kind == DG_SCHED_KIND_DPM2_A_KARRAS;
    float up[M], down[M], interp[M];
    if (ancestral) {
      for (int j = 0; j < M; j++) {
        float sj = sig[j], nx = j + 1 < M ? sig[j + 1] : 0.0f;
        up[j] = sqrtf(nx * nx * (sj * sj - nx * nx) / (sj * sj));
        down[j] = sqrtf(nx * nx - up[j] * up[j]);
      }
      down[M - 1] = 0.0f;
      for (int j = 0; j < M; j++) interp[j] = lerp_half_exp(sig[j], down[j]);
      interp[M - 1] = interp[M - 2] = 0.0f;
    } else {
      for (int j = 0; j < M; j++) interp[j] = lerp_half_exp(sig[j], sig[(j + M - 1) % M]);
    }
    s->n_sig = 2 * M;
    s->n_ts = 2 * N - 1;
    s->sigmas = malloc(sizeof(float) * (size_t)s->n_sig);
    s->sig_interp = malloc(sizeof(float) * (size_t)s->n_sig);
    s->ts = malloc(sizeof(double) * (size_t)s->n_ts);
    if (ancestral) {
      s->sig_up = malloc(sizeof(float) * (size_t)s->n_sig);
      s->sig_down = malloc(sizeof(float) * (size_t)s->n_sig);
    }
    if (!s->sigmas || !s->sig_interp || !s->ts ||
        (ancestral && (!s->sig_up || !s->sig_down))) {
      st = DG_STATUS_ERR_NOMEM;
      break;
    }
    interleave(sig, M, s->sigmas);
    interleave(interp, M, s->sig_interp);
    if (ancestral) {
      interleave(up, M, s->sig_up);
      interleave(down, M, s->sig_down);
    }
    s->ts[0] = ts[0];
    for (int j = 1; j < N; j++) {
      /* KDPM2: (t_interp[j], t[j]); KDPM2a: (t_interp[j-1], t[j]) */
      s->ts[2 * j - 1] = sigma_to_t_f32(s, interp[ancestral ? j - 1 : j]);
      s->ts[2 * j] = ts[j];
    }
    break;
  }
  default: /* Euler, Euler a, LMS */
    s->n_sig = N + 1;
    s->n_ts = N;
    s->sigmas = sig;
    s->ts = ts;
    sig = NULL;
    ts = NULL;
    break;
  }
  free(sig);
  free(ts);
  if (st != DG_STATUS_OK) return st;
  float mx = 0;
  for (int j = 0; j < s->n_sig; j++)
    if (s->sigmas[j] > mx) mx = s->sigmas[j];
  s->init_noise_sigma = (s->spacing == DG_SCHED_SPACING_LINSPACE ||
                         s->spacing == DG_SCHED_SPACING_TRAILING)
                            ? mx
                            : sqrtf(mx * mx + 1.0f);
  return DG_STATUS_OK;
}

static dg_status setup_dpm(dg_scheduler *s, int steps) {
  int N = steps;
  int karras = s->kind == DG_SCHED_KIND_DPMPP_2M_KARRAS;
  s->ts = malloc(sizeof(double) * (size_t)(N + 1));
  s->sigmas = malloc(sizeof(float) * (size_t)(N + 1));
  double *sg = malloc(sizeof(double) * (size_t)(N + 1));
  if (!s->ts || !s->sigmas || !sg) {
    free(sg);
    return DG_STATUS_ERR_NOMEM;
  }
  int T = s->T;
  /* lambda_min_clipped = -inf: last_timestep = T */
  if (s->spacing == DG_SCHED_SPACING_LEADING && s->kind != DG_SCHED_KIND_DPMPP_SINGLESTEP) {
    int ratio = T / (N + 1);
    for (int i = 0; i < N; i++) s->ts[i] = (double)(N - i) * ratio + s->cfg.steps_offset;
  } else if (s->spacing == DG_SCHED_SPACING_TRAILING &&
             s->kind != DG_SCHED_KIND_DPMPP_SINGLESTEP) {
    double ratio = (double)T / N;
    for (int i = 0; i < N; i++) s->ts[i] = nearbyint((double)T - i * ratio) - 1;
  } else {
    np_linspace(0, T - 1, N + 1, sg);
    for (int i = 0; i < N; i++) s->ts[i] = nearbyint(sg[N - i]);
  }
  if (karras) {
    karras_sigmas(s->train_sigmas[0], s->train_sigmas[T - 1], N, sg);
    for (int i = 0; i < N; i++) s->ts[i] = nearbyint(sigma_to_t(s, sg[i]));
  } else {
    for (int i = 0; i < N; i++) sg[i] = np_interp(s->ts[i], s->train_sigmas, T);
  }
  for (int i = 0; i < N; i++) s->sigmas[i] = (float)sg[i];
  /* final sigma: 0 for DPM-Solver ("zero"); UniPC uses sigma_min (Karras:
   * repeats the last one) */
  s->sigmas[N] = s->kind == DG_SCHED_KIND_UNIPC ? s->train_sigmas[0] : 0.0f;
  free(sg);
  s->n_ts = N;
  s->n_sig = N + 1;
  s->init_noise_sigma = 1.0f;
  if (s->kind == DG_SCHED_KIND_DPMPP_SINGLESTEP) {
    /* lower_order_final is forced on by set_timesteps (final sigma 0);
     * solver_order 2: [1,2]* (N/2-1) + [1,1] or [1,2]*(N/2) + [1] */
    s->order_list = malloc(sizeof(int) * (size_t)N);
    if (!s->order_list) return DG_STATUS_ERR_NOMEM;
    for (int i = 0; i < N; i++) s->order_list[i] = (i % 2) ? 2 : 1;
    if (N % 2 == 0) s->order_list[N - 1] = 1;
  }
  return DG_STATUS_OK;
}

static dg_status setup_alpha(dg_scheduler *s, int steps) {
  int N = steps;
  if (s->kind == DG_SCHED_KIND_PNDM) {
    /* skip_prk_steps: plms timesteps = ts[:-1] + ts[-2:-1] + ts[-1:], reversed */
    double base[N];
    base_timesteps(s, N, base, 0); /* descending */
    s->n_ts = N == 1 ? 1 : N + 1;
    s->ts = malloc(sizeof(double) * (size_t)s->n_ts);
    if (!s->ts) return DG_STATUS_ERR_NOMEM;
    if (N == 1) {
      s->ts[0] = base[0];
    } else {
      s->ts[0] = base[0];
      s->ts[1] = base[1];
      for (int i = 1; i < N; i++) s->ts[i + 1] = base[i];
    }
  } else {
    s->n_ts = N;
    s->ts = malloc(sizeof(double) * (size_t)N);
    if (!s->ts) return DG_STATUS_ERR_NOMEM;
    base_timesteps(s, N, s->ts, 0);
  }
  for (int i = 0; i < s->n_ts; i++) {
    if (s->ts[i] < 0) s->ts[i] = 0;
    if (s->ts[i] > s->T - 1) s->ts[i] = s->T - 1;
  }
  s->init_noise_sigma = 1.0f;
  return DG_STATUS_OK;
}

dg_status dg_scheduler_set_timesteps(dg_scheduler *s, int steps) {
  if (!s || steps < 1 || steps > s->T) return DG_STATUS_ERR_INVALID;
  free_schedule(s);
  reset_state(s);
  s->begin = 0;
  dg_status st;
  if (is_alpha_kind(s->kind))
    st = setup_alpha(s, steps);
  else if (is_dpm_kind(s->kind))
    st = setup_dpm(s, steps);
  else
    st = setup_k(s, steps);
  if (st != DG_STATUS_OK) {
    free_schedule(s);
    return st;
  }
  s->steps = steps;
  return DG_STATUS_OK;
}

int dg_scheduler_num_timesteps(const dg_scheduler *s) { return s->n_ts; }
double dg_scheduler_timestep(const dg_scheduler *s, int k) {
  return k >= 0 && k < s->n_ts ? s->ts[k] : NAN;
}
int dg_scheduler_num_sigmas(const dg_scheduler *s) { return s->n_sig; }
float dg_scheduler_sigma(const dg_scheduler *s, int k) {
  return k >= 0 && k < s->n_sig ? s->sigmas[k] : NAN;
}
float dg_scheduler_init_noise_sigma(const dg_scheduler *s) { return s->init_noise_sigma; }

dg_status dg_scheduler_set_strength(dg_scheduler *s, double strength, int *t_start_out) {
  if (!s || !s->steps || !(strength > 0) || !(strength <= 1)) return DG_STATUS_ERR_INVALID;
  int N = s->steps;
  int init_timestep = (int)(N * strength);
  if (init_timestep > N) init_timestep = N;
  int t_start = N - init_timestep;
  if (t_start < 0) t_start = 0;
  int begin = t_start * s->order;
  if (begin >= s->n_ts) return DG_STATUS_ERR_INVALID;
  reset_state(s);
  s->begin = begin;
  if (t_start_out) *t_start_out = t_start;
  return DG_STATUS_OK;
}

int dg_scheduler_loop_len(const dg_scheduler *s) { return s->steps ? s->n_ts - s->begin : 0; }

double dg_scheduler_loop_timestep(const dg_scheduler *s, int i) {
  return dg_scheduler_timestep(s, s->begin + i);
}

dg_status dg_scheduler_add_noise(const dg_scheduler *s, const float *x0, const float *noise,
                                 float *out, int64_t n) {
  if (!s || !s->steps || !x0 || !noise || !out || n < 0) return DG_STATUS_ERR_INVALID;
  if (is_alpha_kind(s->kind)) {
    int t = (int)s->ts[s->begin];
    float ac = s->alphas_cumprod[t];
    float a = sqrtf(ac), b = sqrtf(1.0f - ac);
    for (int64_t j = 0; j < n; j++) out[j] = a * x0[j] + b * noise[j];
  } else if (is_dpm_kind(s->kind)) {
    float sigma = s->sigmas[s->begin];
    float alpha_t = 1.0f / sqrtf(sigma * sigma + 1.0f);
    float sigma_t = sigma * alpha_t;
    for (int64_t j = 0; j < n; j++) out[j] = alpha_t * x0[j] + sigma_t * noise[j];
  } else {
    float sigma = s->sigmas[s->begin];
    for (int64_t j = 0; j < n; j++) out[j] = x0[j] + noise[j] * sigma;
  }
  return DG_STATUS_OK;
}

dg_status dg_scheduler_scale_model_input(const dg_scheduler *s, int i, const float *x,
                                         float *x_in, int64_t n) {
  if (!s || !s->steps || !x || !x_in || n < 0 || i < 0 || s->begin + i >= s->n_ts)
    return DG_STATUS_ERR_INVALID;
  int k = s->begin + i;
  float sigma;
  switch (s->kind) {
  case DG_SCHED_KIND_LMS:
  case DG_SCHED_KIND_EULER:
  case DG_SCHED_KIND_EULER_A:
  case DG_SCHED_KIND_HEUN:
    sigma = s->sigmas[k];
    break;
  case DG_SCHED_KIND_DPM2_KARRAS:
    /* second-order steps are the odd offsets from the (even) begin index */
    sigma = ((k - s->begin) % 2 == 0) ? s->sigmas[k] : s->sig_interp[k];
    break;
  case DG_SCHED_KIND_DPM2_A_KARRAS:
    sigma = ((k - s->begin) % 2 == 0) ? s->sigmas[k] : s->sig_interp[k - 1];
    break;
  default:
    if (x_in != x) memcpy(x_in, x, sizeof(float) * (size_t)n);
    return DG_STATUS_OK;
  }
  float d = sqrtf(sigma * sigma + 1.0f);
  for (int64_t j = 0; j < n; j++) x_in[j] = x[j] / d;
  return DG_STATUS_OK;
}

static dg_status ensure_state(dg_scheduler *s, int64_t n) {
  if (s->n == n && s->sb[0]) return DG_STATUS_OK;
  free_state(s);
  for (int b = 0; b < DG__SB_COUNT; b++) {
    s->sb[b] = calloc((size_t)(n > 0 ? n : 1), sizeof(float));
    if (!s->sb[b]) {
      free_state(s);
      return DG_STATUS_ERR_NOMEM;
    }
  }
  s->n = n;
  return DG_STATUS_OK;
}

dg_status dg_scheduler_step(dg_scheduler *s, int i, const float *eps, float *x, int64_t n,
                            dg_noise_fn noise, void *noise_ctx) {
  if (!s || !s->steps || !eps || !x || n <= 0) return DG_STATUS_ERR_INVALID;
  if (i != s->next_i || s->begin + i >= s->n_ts) return DG_STATUS_ERR_INVALID;
  if (i > 0 && n != s->n) return DG_STATUS_ERR_INVALID;
  if (n > (int64_t)(SIZE_MAX / sizeof(float) / 2)) return DG_STATUS_ERR_LIMIT;
  dg_status st = ensure_state(s, n);
  if (st != DG_STATUS_OK) return st;
  int k = s->begin + i;
  if (is_alpha_kind(s->kind))
    st = dg__sched_step_alpha(s, k, eps, x, n, noise, noise_ctx);
  else if (is_dpm_kind(s->kind))
    st = dg__sched_step_dpm(s, k, eps, x, n);
  else
    st = dg__sched_step_k(s, k, eps, x, n, noise, noise_ctx);
  if (st == DG_STATUS_OK) s->next_i++;
  return st;
}

dg_status dg_scheduler_run(dg_scheduler *s, float *x, int64_t n, dg_denoise_fn denoise,
                           void *denoise_ctx, dg_noise_fn noise, void *noise_ctx) {
  if (!s || !s->steps || !x || n <= 0 || !denoise) return DG_STATUS_ERR_INVALID;
  if (s->next_i != 0) return DG_STATUS_ERR_INVALID;
  float *x_in = malloc(sizeof(float) * (size_t)n);
  float *eps = malloc(sizeof(float) * (size_t)n);
  dg_status st = (x_in && eps) ? DG_STATUS_OK : DG_STATUS_ERR_NOMEM;
  int len = dg_scheduler_loop_len(s);
  for (int i = 0; i < len && st == DG_STATUS_OK; i++) {
    st = dg_scheduler_scale_model_input(s, i, x, x_in, n);
    if (st == DG_STATUS_OK)
      st = denoise(denoise_ctx, x_in, dg_scheduler_loop_timestep(s, i), eps, n);
    if (st == DG_STATUS_OK) st = dg_scheduler_step(s, i, eps, x, n, noise, noise_ctx);
  }
  free(x_in);
  free(eps);
  return st;
}

int dg_scheduler_lms_coeffs(const dg_scheduler *s, double coeffs[4]) {
  if (s->kind != DG_SCHED_KIND_LMS) return 0;
  for (int j = 0; j < 4; j++) coeffs[j] = s->lms_coeffs[j];
  return s->lms_ncoeffs;
}
