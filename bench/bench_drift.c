/* Where does bf16 mode drift from f32?  One call of each network of an SD1.5
 * model, in f32 and in bf16 precision on the same inputs, compared layer by
 * layer (relative L2 error ||bf16 - f32|| / ||f32|| of every activation the
 * models' debug hooks report), next to control runs that use NO bf16 kernel
 * at all:
 *
 *   bf16        the bf16 engine (conv/linear/attention operands rounded to
 *               bf16, f32 accumulation), same f32 inputs;
 *   f32 rnd-in  the f32 engine with only the UNet's inputs (latent, text
 *               context) rounded to bf16 once: a perturbation of 2^-9
 *               relative at the input and exact arithmetic afterwards;
 *   f32 1e-6    the f32 engine with the latent times (1 + 1e-6 r), r ~ N(0,1):
 *               a perturbation at the level of f32 rounding;
 *   f32 ISA     the f32 engine of another ISA (AVX2 when the default is
 *               AVX-512, else the generic C one), same inputs: only the order
 *               of the f32 summations differs (what another CPU would give).
 *
 * If the controls drift as much as bf16 does, the network amplifies any
 * perturbation (it is chaotic) and the bf16 path is not at fault; if bf16
 * drifts much more than "f32 rnd-in", something in the bf16 path loses more
 * than rounding the GEMM operands should.
 *
 * For every UNet attention layer it also gives the statistics of the logits
 * q.k/sqrt(D) of the f32 run (sampled queries of batch 0, all heads): std
 * within a row, mean top softmax probability, the fraction of rows whose
 * argmax key changes and the mean total-variation distance of the softmax
 * when q and k are rounded to bf16; and the op-local error of dg_attention
 * on the recorded f32 q, k, v: bf16 engine vs f32 engine, next to the f32
 * engine on bf16-rounded q, k, v (what rounding the inputs alone costs).
 *
 * Last, the kernels themselves: linear and conv2d in bf16 mode against an
 * exact (double) product of the bf16-rounded operands, on awkward shapes
 * (edge tiles, K not a multiple of 32): the error must be f32 accumulation
 * error (~1e-6), not bf16 rounding (~1e-3).
 *
 *   bench_drift MODEL [--latent 32] [--threads 1] [--t 500] [--seed 0]
 *               [--parts clip,unet,vae,ops] [--tokenizer DIR] [--all-rows]
 *
 * MODEL: a models directory (with sd1.5-img2img/), a diffusers folder or a
 * single .safetensors file (tokenizer from --tokenizer or <dir>/tokenizer).
 * The UNet runs on a (1, 4, L, L) latent ~ N(0,1) at timestep t with the
 * f32 text context of a fixed prompt (the same context for all runs); the
 * VAE decodes (1, 4, L, L) ~ N(0,1)/0.18215, what the pipeline hands it.
 * --all-rows prints every UNet activation (default: blocks and outputs). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/file.h"
#include "base/rng.h"
#include "models/sd15.h"
#include "pipelines/sd15_img2img.h"
#include "tensor/ops.h"

#define N_CMP 4 /* bf16, f32 rnd-in, f32 1e-6, f32 other ISA */

typedef struct rec {
  char name[160];
  float *data;
  int64_t n;
  dg_tensor t; /* header of the copy */
  double err[N_CMP];
  int have[N_CMP];
} rec;

typedef struct recs {
  rec *v;
  size_t n, cap;
  int cmp;       /* -1: record; 0..N_CMP-1: compare into err[cmp] */
  size_t cursor; /* names arrive in the same order: search from here */
  int oom;
} recs;

static double rel_l2(const float *ref, const float *x, int64_t n) {
  double d = 0, r = 0;
  for (int64_t i = 0; i < n; i++) {
    double e = (double)x[i] - (double)ref[i];
    d += e * e;
    r += (double)ref[i] * (double)ref[i];
  }
  return r > 0 ? sqrt(d / r) : sqrt(d);
}

static rec *recs_find(recs *R, const char *name) {
  for (size_t k = 0; k < R->n; k++) {
    size_t i = (R->cursor + k) % R->n;
    if (strcmp(R->v[i].name, name) == 0) {
      R->cursor = i + 1;
      return &R->v[i];
    }
  }
  return NULL;
}

static void on_debug(void *ud, const char *name, const dg_tensor *t) {
  recs *R = ud;
  if (t->dtype != DG_DTYPE_F32) return;
  int64_t n = dg_tensor_numel(t);
  if (R->cmp >= 0) {
    rec *r = recs_find(R, name);
    if (r && r->n == n) {
      r->err[R->cmp] = rel_l2(r->data, t->data, n);
      r->have[R->cmp] = 1;
    }
    return;
  }
  if (R->n == R->cap) {
    size_t cap = R->cap ? 2 * R->cap : 256;
    rec *v = realloc(R->v, cap * sizeof *v);
    if (!v) {
      R->oom = 1;
      return;
    }
    R->v = v;
    R->cap = cap;
  }
  rec *r = &R->v[R->n];
  memset(r, 0, sizeof *r);
  snprintf(r->name, sizeof r->name, "%s", name);
  r->data = malloc((size_t)n * sizeof(float));
  if (!r->data) {
    R->oom = 1;
    return;
  }
  memcpy(r->data, t->data, (size_t)n * sizeof(float));
  r->n = n;
  r->t = dg_tensor_make(DG_DTYPE_F32, t->ndim, t->shape, r->data);
  R->n++;
}

static void recs_free(recs *R) {
  for (size_t i = 0; i < R->n; i++) free(R->v[i].data);
  free(R->v);
  memset(R, 0, sizeof *R);
}

static int ends_with(const char *s, const char *suf) {
  size_t a = strlen(s), b = strlen(suf);
  return a >= b && strcmp(s + a - b, suf) == 0;
}

static float bf16_round(float x) { return dg_bf16_to_f32(dg_f32_to_bf16(x)); }

static double cpu_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct opts {
  const char *model, *tokenizer;
  int latent, threads, all_rows;
  float t;
  uint64_t seed;
  int p_clip, p_unet, p_vae, p_ops;
} opts;

static dg_status open_model(const opts *o, dg_sd15 **m, char *err, size_t errlen) {
  return dg_sd15_open_path(o->model, o->tokenizer, m, err, errlen);
}

/* ---- CLIP: every hidden state, f32 vs bf16 --------------------------------- */

static const char *PROMPT = "a watercolor painting of a lighthouse on a cliff at sunset, detailed";

static int run_clip(dg_sd15 *m, dg_engine *e32, dg_engine *e16, dg_arena *a, dg_tensor *ctx_out,
                    int report) {
  const dg_tokenizer *tok = dg_sd15_tokenizer(m);
  dg_clip_text *te = dg_sd15_text_encoder(m);
  if (!tok || !te) return -1;
  const dg_clip_text_config *tc = dg_clip_text_get_config(te);
  int64_t s_ids[2] = {1, 77}, C = ctx_out->shape[2], s_h[3] = {1, 77, C};
  dg_tensor *ids = dg_arena_tensor(a, DG_DTYPE_I64, 2, s_ids);
  dg_tensor *h32 = dg_arena_tensor(a, DG_DTYPE_F32, 3, s_h), *h16 = dg_arena_tensor(a, DG_DTYPE_F32, 3, s_h);
  if (!ids || !h32 || !h16) return -1;
  if (dg_tokenizer_encode(tok, PROMPT, ids->data) != DG_STATUS_OK) return -1;
  char err[256];
  if (report) printf("\n## CLIP text encoder: hidden states, bf16 vs f32 (rel L2)\n\n| layer | rel err |\n|---|---:|\n");
  for (int k = report ? tc->n_layers : 0; k >= 0; k--) {
    dg_clip_text_run r = dg_clip_text_run_default();
    r.skip = k;
    r.final_norm = k == 0;
    r.hidden = h32;
    if (dg_clip_text_forward(te, e32, a, ids, &r, err, sizeof err) != DG_STATUS_OK) return -1;
    if (!report) break;
    r.hidden = h16;
    if (dg_clip_text_forward(te, e16, a, ids, &r, err, sizeof err) != DG_STATUS_OK) return -1;
    char nm[64];
    if (k == tc->n_layers) snprintf(nm, sizeof nm, "embeddings");
    else if (k == 0) snprintf(nm, sizeof nm, "layer %d + final norm (the context)", tc->n_layers);
    else snprintf(nm, sizeof nm, "layer %d", tc->n_layers - k);
    printf("| %s | %.3g |\n", nm, rel_l2(h32->data, h16->data, dg_tensor_numel(h32)));
  }
  memcpy(ctx_out->data, h32->data, dg_tensor_nbytes(h32));
  return 0;
}

/* ---- UNet --------------------------------------------------------------------- */

static int heads_for(const dg_unet_config *c, const char *name) {
  int i;
  if (sscanf(name, "down_blocks.%d.", &i) == 1 && i >= 0 && i < c->n_levels) return c->num_attention_heads[i];
  if (sscanf(name, "up_blocks.%d.", &i) == 1 && i >= 0 && i < c->n_levels)
    return c->num_attention_heads[c->n_levels - 1 - i];
  return c->num_attention_heads[c->n_levels - 1];
}

/* Logit statistics of one attention layer (batch 0, every head, <= 64 sampled queries). */
static void logit_stats(const dg_tensor *q, const dg_tensor *k, int heads, double *row_std, double *pmax,
                        double *flip, double *tv) {
  int64_t Lq = q->shape[1], Lk = k->shape[1], C = q->shape[2], D = C / heads;
  int64_t step = Lq > 64 ? Lq / 64 : 1;
  double scale = 1.0 / sqrt((double)D);
  double *l = malloc((size_t)Lk * sizeof *l), *lr = malloc((size_t)Lk * sizeof *lr);
  double s_std = 0, s_pmax = 0, s_tv = 0;
  int64_t rows = 0, flips = 0;
  if (!l || !lr) goto out;
  const float *qd = q->data, *kd = k->data;
  for (int h = 0; h < heads; h++)
    for (int64_t i = 0; i < Lq; i += step) {
      const float *qi = qd + i * C + h * D;
      double mean = 0, mx = -INFINITY, mxr = -INFINITY;
      int64_t am = 0, amr = 0;
      for (int64_t j = 0; j < Lk; j++) {
        const float *kj = kd + j * C + h * D;
        double s = 0, sr = 0;
        for (int64_t d = 0; d < D; d++) {
          s += (double)qi[d] * kj[d];
          sr += (double)bf16_round(qi[d]) * bf16_round(kj[d]);
        }
        l[j] = s * scale;
        lr[j] = sr * scale;
        mean += l[j];
        if (l[j] > mx) mx = l[j], am = j;
        if (lr[j] > mxr) mxr = lr[j], amr = j;
      }
      mean /= (double)Lk;
      double var = 0, z = 0, zr = 0;
      for (int64_t j = 0; j < Lk; j++) {
        var += (l[j] - mean) * (l[j] - mean);
        z += exp(l[j] - mx);
        zr += exp(lr[j] - mxr);
      }
      double t = 0;
      for (int64_t j = 0; j < Lk; j++) t += fabs(exp(l[j] - mx) / z - exp(lr[j] - mxr) / zr);
      s_std += sqrt(var / (double)Lk);
      s_pmax += 1.0 / z;
      s_tv += 0.5 * t;
      flips += am != amr;
      rows++;
    }
out:
  *row_std = rows ? s_std / (double)rows : NAN;
  *pmax = rows ? s_pmax / (double)rows : NAN;
  *flip = rows ? (double)flips / (double)rows : NAN;
  *tv = rows ? s_tv / (double)rows : NAN;
  free(l);
  free(lr);
}

static dg_tensor *round_copy(dg_arena *a, const dg_tensor *x) {
  dg_tensor *y = dg_arena_tensor(a, DG_DTYPE_F32, x->ndim, x->shape);
  if (!y) return NULL;
  for (int64_t i = 0; i < dg_tensor_numel(x); i++) ((float *)y->data)[i] = bf16_round(((const float *)x->data)[i]);
  return y;
}

static void attention_report(const recs *R, const dg_unet_config *cfg, dg_engine *e32, dg_engine *e16,
                             dg_arena *a) {
  printf("\n## UNet attention layers (f32 run): logits q.k/sqrt(D) and the op-local error\n\n"
         "| layer | Lq x Lk, heads x D | logit row std | mean max p | argmax flips (q,k in bf16) | "
         "softmax TV (q,k in bf16) | attention bf16 engine | f32 engine, q/k/v rounded |\n"
         "|---|---|---:|---:|---:|---:|---:|---:|\n");
  for (size_t i = 0; i + 2 < R->n; i++) {
    const rec *q = &R->v[i], *k = &R->v[i + 1], *v = &R->v[i + 2];
    if (!ends_with(q->name, ".q") || !ends_with(k->name, ".k") || !ends_with(v->name, ".v")) continue;
    int heads = heads_for(cfg, q->name);
    double sd, pm, fl, tv;
    logit_stats(&q->t, &k->t, heads, &sd, &pm, &fl, &tv);
    dg_arena_mark mk = dg_arena_get_mark(a);
    dg_tensor *y32 = dg_arena_tensor(a, DG_DTYPE_F32, 3, q->t.shape);
    dg_tensor *y16 = dg_arena_tensor(a, DG_DTYPE_F32, 3, q->t.shape);
    dg_tensor *yr = dg_arena_tensor(a, DG_DTYPE_F32, 3, q->t.shape);
    dg_tensor *qr = round_copy(a, &q->t), *kr = round_copy(a, &k->t), *vr = round_copy(a, &v->t);
    double e16v = NAN, erv = NAN;
    if (y32 && y16 && yr && qr && kr && vr && dg_attention(e32, y32, &q->t, &k->t, &v->t, heads, 0, 0) == DG_STATUS_OK &&
        dg_attention(e16, y16, &q->t, &k->t, &v->t, heads, 0, 0) == DG_STATUS_OK &&
        dg_attention(e32, yr, qr, kr, vr, heads, 0, 0) == DG_STATUS_OK) {
      e16v = rel_l2(y32->data, y16->data, dg_tensor_numel(y32));
      erv = rel_l2(y32->data, yr->data, dg_tensor_numel(y32));
    }
    dg_arena_reset(a, mk);
    char nm[160];
    snprintf(nm, sizeof nm, "%.*s", (int)strlen(q->name) - 2, q->name);
    printf("| %s | %lld x %lld, %d x %lld | %.3g | %.3f | %.1f%% | %.3g | %.3g | %.3g |\n", nm,
           (long long)q->t.shape[1], (long long)k->t.shape[1], heads, (long long)(q->t.shape[2] / heads), sd,
           pm, 100.0 * fl, tv, e16v, erv);
  }
}

static int top_level(const char *n) {
  return !strchr(n, '.') || (strncmp(n, "down_blocks.", 12) == 0 && !strchr(n + 12, '.')) ||
         (strncmp(n, "up_blocks.", 10) == 0 && !strchr(n + 10, '.'));
}

static int run_unet(const opts *o, dg_sd15 *m, dg_engine *e32, dg_engine *e16, dg_engine *ealt,
                    dg_arena *a, const dg_tensor *ctx) {
  const dg_unet *u = dg_sd15_unet(m);
  if (!u) return -1;
  const dg_unet_config *cfg = dg_unet_get_config(u);
  int64_t L = o->latent, s_x[4] = {1, cfg->in_channels, L, L}, s_y[4] = {1, cfg->out_channels, L, L};
  int64_t s_t[1] = {1};
  dg_tensor *x = dg_arena_tensor(a, DG_DTYPE_F32, 4, s_x), *xp = dg_arena_tensor(a, DG_DTYPE_F32, 4, s_x);
  dg_tensor *t = dg_arena_tensor(a, DG_DTYPE_F32, 1, s_t);
  dg_tensor *ctxr = round_copy(a, ctx);
  dg_tensor *y[1 + N_CMP];
  for (int i = 0; i <= N_CMP; i++) y[i] = dg_arena_tensor(a, DG_DTYPE_F32, 4, s_y);
  for (int i = 0; i <= N_CMP; i++)
    if (!y[i]) return -1;
  if (!x || !xp || !t || !ctxr) return -1;
  dg_rng rng;
  dg_rng_seed(&rng, o->seed);
  dg_rng_randn(&rng, x->data, dg_tensor_numel(x));
  ((float *)t->data)[0] = o->t;
  recs R = {0};
  R.cmp = -1;
  dg_unet_extras ex;
  memset(&ex, 0, sizeof ex);
  ex.debug = on_debug;
  ex.debug_ud = &R;
  double c0 = cpu_now();
  dg_status st = dg_unet_forward(u, e32, a, x, t, ctx, &ex, y[0]);
  double c1 = cpu_now();
  if (st != DG_STATUS_OK || R.oom) {
    fprintf(stderr, "unet f32: %s\n", dg_strerror(st));
    recs_free(&R);
    return -1;
  }
  char alt[64];
  snprintf(alt, sizeof alt, "f32 %s", dg_isa_name(dg_engine_isa(ealt)));
  const char *labels[N_CMP] = {"bf16", "f32 rnd-in", "f32 1e-6", alt};
  double cs[N_CMP];
  for (int c = 0; c < N_CMP && st == DG_STATUS_OK; c++) {
    R.cmp = c;
    R.cursor = 0;
    const dg_tensor *xin = x, *cin = ctx;
    dg_engine *e = e32;
    if (c == 0) e = e16;
    if (c == 3) e = ealt;
    if (c == 1) {
      for (int64_t i = 0; i < dg_tensor_numel(x); i++) ((float *)xp->data)[i] = bf16_round(((float *)x->data)[i]);
      xin = xp;
      cin = ctxr;
    }
    if (c == 2) {
      dg_rng r2;
      dg_rng_seed(&r2, o->seed + 1);
      dg_rng_randn(&r2, xp->data, dg_tensor_numel(xp));
      for (int64_t i = 0; i < dg_tensor_numel(x); i++)
        ((float *)xp->data)[i] = ((float *)x->data)[i] * (1.0f + 1e-6f * ((float *)xp->data)[i]);
      xin = xp;
    }
    double t0 = cpu_now();
    st = dg_unet_forward(u, e, a, xin, t, cin, &ex, y[1 + c]);
    cs[c] = cpu_now() - t0;
  }
  if (st != DG_STATUS_OK) {
    fprintf(stderr, "unet: %s\n", dg_strerror(st));
    recs_free(&R);
    return -1;
  }
  printf("\n## UNet, one call: latent (1, %d, %lld, %lld), t = %g; rel L2 error against the f32 run\n\n",
         cfg->in_channels, (long long)L, (long long)L, (double)o->t);
  printf("CPU-s per call: f32 %.2f, bf16 %.2f\n\n", c1 - c0, cs[0]);
  printf("| activation | %s | %s | %s | %s |\n|---|---:|---:|---:|---:|\n", labels[0], labels[1], labels[2],
         labels[3]);
  for (size_t i = 0; i < R.n; i++) {
    const rec *r = &R.v[i];
    if (ends_with(r->name, ".q") || ends_with(r->name, ".k") || ends_with(r->name, ".v")) continue;
    if (!o->all_rows && !top_level(r->name)) continue;
    printf("| %s | %.3g | %.3g | %.3g | %.3g |\n", r->name, r->err[0], r->err[1], r->err[2], r->err[3]);
  }
  printf("| **output (eps)** |");
  for (int c = 0; c < N_CMP; c++) printf(" %.3g |", rel_l2(y[0]->data, y[1 + c]->data, dg_tensor_numel(y[0])));
  printf("\n");
  attention_report(&R, cfg, e32, e16, a);
  recs_free(&R);
  return 0;
}

/* ---- VAE decoder ---------------------------------------------------------------- */

static void on_vae(void *ud, const char *name, const dg_tensor *t) { on_debug(ud, name, t); }

static int run_vae(const opts *o, dg_sd15 *m, dg_engine *e32, dg_engine *e16, dg_arena *a) {
  const dg_vae *v = dg_sd15_vae(m);
  if (!v) return -1;
  const dg_vae_config *vc = dg_vae_get_config(v);
  int f = dg_vae_factor(vc);
  int64_t L = o->latent, s_z[4] = {1, 4, L, L}, s_i[4] = {1, 3, f * L, f * L};
  dg_tensor *z = dg_arena_tensor(a, DG_DTYPE_F32, 4, s_z);
  dg_tensor *i32 = dg_arena_tensor(a, DG_DTYPE_F32, 4, s_i), *i16 = dg_arena_tensor(a, DG_DTYPE_F32, 4, s_i);
  if (!z || !i32 || !i16) return -1;
  dg_rng rng;
  dg_rng_seed(&rng, o->seed + 7);
  dg_rng_randn(&rng, z->data, dg_tensor_numel(z));
  for (int64_t i = 0; i < dg_tensor_numel(z); i++) ((float *)z->data)[i] /= 0.18215f;
  recs R = {0};
  R.cmp = -1;
  dg_vae_hooks hk = {on_vae, &R};
  double c0 = cpu_now();
  dg_status st = dg_vae_decode(v, e32, a, z, i32, &hk);
  double c1 = cpu_now();
  R.cmp = 0;
  if (st == DG_STATUS_OK) st = dg_vae_decode(v, e16, a, z, i16, &hk);
  double c2 = cpu_now();
  if (st != DG_STATUS_OK || R.oom) {
    fprintf(stderr, "vae: %s\n", dg_strerror(st));
    recs_free(&R);
    return -1;
  }
  printf("\n## VAE decode: z (1, 4, %lld, %lld) ~ N(0,1)/0.18215; bf16 vs f32\n\nCPU-s: f32 %.2f, bf16 %.2f\n\n"
         "| activation | rel L2 |\n|---|---:|\n",
         (long long)L, (long long)L, c1 - c0, c2 - c1);
  for (size_t i = 0; i < R.n; i++) printf("| %s | %.3g |\n", R.v[i].name, R.v[i].err[0]);
  int64_t n = dg_tensor_numel(i32), maxd = 0;
  double sum = 0;
  for (int64_t i = 0; i < n; i++) {
    float p = ((float *)i32->data)[i], q = ((float *)i16->data)[i];
    long a8 = lrintf(fminf(fmaxf((p + 1.0f) * 127.5f, 0.0f), 255.0f));
    long b8 = lrintf(fminf(fmaxf((q + 1.0f) * 127.5f, 0.0f), 255.0f));
    long d = labs(a8 - b8);
    if (d > maxd) maxd = d;
    sum += (double)d;
  }
  printf("| **image** | %.3g |\n\n8-bit image: max |diff| %lld, mean %.3f\n", rel_l2(i32->data, i16->data, n),
         (long long)maxd, sum / (double)n);
  recs_free(&R);
  return 0;
}

/* ---- kernels: bf16 mode vs exact products of bf16-rounded operands -------- */

static double check_linear(dg_engine *e16, dg_arena *a, int64_t M, int64_t N, int64_t K, dg_dtype wt) {
  dg_arena_mark mk = dg_arena_get_mark(a);
  int64_t sx[2] = {M, K}, sw[2] = {N, K}, sb[1] = {N}, sy[2] = {M, N};
  dg_tensor *x = dg_arena_tensor(a, DG_DTYPE_F32, 2, sx), *w = dg_arena_tensor(a, wt, 2, sw);
  dg_tensor *b = dg_arena_tensor(a, DG_DTYPE_F32, 1, sb), *y = dg_arena_tensor(a, DG_DTYPE_F32, 2, sy);
  double worst = -1;
  if (!x || !w || !b || !y) goto out;
  dg_rng r;
  dg_rng_seed(&r, (uint64_t)(M * 131 + N * 7 + K));
  dg_rng_randn(&r, x->data, M * K);
  dg_rng_randn(&r, b->data, N);
  float *wf = malloc((size_t)(N * K) * sizeof *wf);
  if (!wf) goto out;
  dg_rng_randn(&r, wf, N * K);
  for (int64_t i = 0; i < N * K; i++) {
    if (wt == DG_DTYPE_F16) {
      ((uint16_t *)w->data)[i] = dg_f32_to_f16(wf[i]);
      wf[i] = dg_f16_to_f32(((uint16_t *)w->data)[i]);
    } else {
      ((float *)w->data)[i] = wf[i];
    }
  }
  if (dg_linear(e16, y, x, w, b) == DG_STATUS_OK) {
    worst = 0;
    const float *xd = x->data, *bd = b->data, *yd = y->data;
    for (int64_t i = 0; i < M; i++)
      for (int64_t j = 0; j < N; j++) {
        double s = 0, sa = 0;
        for (int64_t k = 0; k < K; k++) {
          double p = (double)bf16_round(xd[i * K + k]) * bf16_round(wf[j * K + k]);
          s += p;
          sa += fabs(p);
        }
        s += bd[j];
        double err = fabs(yd[i * N + j] - s) / (sa + fabs(bd[j]));
        if (err > worst) worst = err;
      }
  }
  free(wf);
out:
  dg_arena_reset(a, mk);
  return worst;
}

static double check_conv(dg_engine *e16, dg_arena *a, int64_t Ci, int64_t Co, int64_t H, int64_t W, int k,
                         int stride) {
  dg_arena_mark mk = dg_arena_get_mark(a);
  int pad = k / 2;
  int64_t Ho = (H + 2 * pad - k) / stride + 1, Wo = (W + 2 * pad - k) / stride + 1;
  int64_t sx[4] = {1, Ci, H, W}, sw[4] = {Co, Ci, k, k}, sb[1] = {Co}, sy[4] = {1, Co, Ho, Wo};
  dg_tensor *x = dg_arena_tensor(a, DG_DTYPE_F32, 4, sx), *w = dg_arena_tensor(a, DG_DTYPE_F32, 4, sw);
  dg_tensor *b = dg_arena_tensor(a, DG_DTYPE_F32, 1, sb), *y = dg_arena_tensor(a, DG_DTYPE_F32, 4, sy);
  double worst = -1;
  if (!x || !w || !b || !y) goto out;
  dg_rng r;
  dg_rng_seed(&r, (uint64_t)(Ci * 31 + Co * 17 + H));
  dg_rng_randn(&r, x->data, dg_tensor_numel(x));
  dg_rng_randn(&r, w->data, dg_tensor_numel(w));
  dg_rng_randn(&r, b->data, Co);
  if (dg_conv2d(e16, y, x, w, b, stride, pad) != DG_STATUS_OK) goto out;
  worst = 0;
  const float *xd = x->data, *wd = w->data, *bd = b->data, *yd = y->data;
  for (int64_t co = 0; co < Co; co++)
    for (int64_t oy = 0; oy < Ho; oy++)
      for (int64_t ox = 0; ox < Wo; ox++) {
        double s = bd[co], sa = fabs(bd[co]);
        for (int64_t ci = 0; ci < Ci; ci++)
          for (int dy = 0; dy < k; dy++)
            for (int dx = 0; dx < k; dx++) {
              int64_t iy = oy * stride + dy - pad, ix = ox * stride + dx - pad;
              if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
              double p = (double)bf16_round(xd[(ci * H + iy) * W + ix]) *
                         bf16_round(wd[((co * Ci + ci) * k + dy) * k + dx]);
              s += p;
              sa += fabs(p);
            }
        double err = fabs(yd[(co * Ho + oy) * Wo + ox] - s) / sa;
        if (err > worst) worst = err;
      }
out:
  dg_arena_reset(a, mk);
  return worst;
}

static void run_ops(dg_engine *e16, dg_arena *a) {
  printf("\n## Kernels in bf16 mode vs exact products of the bf16-rounded operands\n\n"
         "max over outputs of |y - exact| / sum |products| (f32 accumulation gives ~1e-7..1e-6; a\n"
         "missing or double rounding would give ~1e-3)\n\n| op | error |\n|---|---:|\n");
  static const int64_t lin[][3] = {{1, 1, 1}, {33, 17, 31}, {77, 768, 769}, {129, 320, 1280}, {50, 1000, 95}};
  for (size_t i = 0; i < sizeof lin / sizeof lin[0]; i++)
    for (int f16 = 0; f16 < 2; f16++)
      printf("| linear M %lld N %lld K %lld, %s weights | %.3g |\n", (long long)lin[i][0], (long long)lin[i][1],
             (long long)lin[i][2], f16 ? "f16" : "f32",
             check_linear(e16, a, lin[i][0], lin[i][1], lin[i][2], f16 ? DG_DTYPE_F16 : DG_DTYPE_F32));
  static const int64_t cv[][6] = {{3, 5, 7, 9, 3, 1}, {35, 33, 13, 11, 3, 1}, {64, 48, 17, 15, 3, 2},
                                  {320, 40, 10, 10, 1, 1}};
  for (size_t i = 0; i < sizeof cv / sizeof cv[0]; i++)
    printf("| conv%lldx%lld Ci %lld Co %lld %lldx%lld stride %lld | %.3g |\n", (long long)cv[i][4],
           (long long)cv[i][4], (long long)cv[i][0], (long long)cv[i][1], (long long)cv[i][2], (long long)cv[i][3],
           (long long)cv[i][5],
           check_conv(e16, a, cv[i][0], cv[i][1], cv[i][2], cv[i][3], (int)cv[i][4], (int)cv[i][5]));
}

/* ---- main -------------------------------------------------------------------- */

static void usage(FILE *f) {
  fprintf(f, "usage: bench_drift MODEL [--latent 32] [--threads 1] [--t 500] [--seed 0]\n"
             "                   [--parts clip,unet,vae,ops] [--tokenizer DIR] [--all-rows]\n");
}

int main(int argc, char **argv) {
  opts o = {0};
  o.latent = 32;
  o.threads = 1;
  o.t = 500.0f;
  const char *parts = "clip,unet,vae,ops";
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "--all-rows")) o.all_rows = 1;
    else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
      usage(stdout);
      return 0;
    } else if (a[0] == '-' && !v) {
      usage(stderr);
      return 2;
    } else if (!strcmp(a, "--latent")) o.latent = atoi(v), i++;
    else if (!strcmp(a, "--threads")) o.threads = atoi(v), i++;
    else if (!strcmp(a, "--t")) o.t = (float)atof(v), i++;
    else if (!strcmp(a, "--seed")) o.seed = strtoull(v, NULL, 10), i++;
    else if (!strcmp(a, "--parts")) parts = v, i++;
    else if (!strcmp(a, "--tokenizer")) o.tokenizer = v, i++;
    else if (a[0] != '-' && !o.model) o.model = a;
    else {
      usage(stderr);
      return 2;
    }
  }
  if (!o.model || o.latent < 1 || o.latent > 256) {
    usage(stderr);
    return 2;
  }
  o.p_clip = strstr(parts, "clip") != NULL;
  o.p_unet = strstr(parts, "unet") != NULL;
  o.p_vae = strstr(parts, "vae") != NULL;
  o.p_ops = strstr(parts, "ops") != NULL;
  char err[512] = "";
  dg_sd15 *m = NULL;
  dg_engine *e32 = NULL, *e16 = NULL, *ealt = NULL;
  dg_arena *a = dg_arena_new(64 << 20);
  dg_status st = open_model(&o, &m, err, sizeof err);
  if (st != DG_STATUS_OK) {
    fprintf(stderr, "bench_drift: %s: %s (%s)\n", o.model, err, dg_strerror(st));
    return 1;
  }
  dg_engine_params ep = dg_engine_params_default();
  ep.n_threads = o.threads;
  ep.precision = DG_PRECISION_F32;
  if (dg_engine_new(&ep, &e32) != DG_STATUS_OK) return 1;
  ep.precision = DG_PRECISION_BF16;
  if (dg_engine_new(&ep, &e16) != DG_STATUS_OK) return 1;
  ep.precision = DG_PRECISION_F32;
  ep.isa = dg_engine_isa(e32) == DG_ISA_AVX512 ? DG_ISA_AVX2 : DG_ISA_GENERIC;
  if (dg_engine_new(&ep, &ealt) != DG_STATUS_OK) return 1;
  printf("# bench_drift %s: latent %d, threads %d, ISA %s\n", o.model, o.latent, o.threads,
         dg_isa_name(dg_engine_isa(e16)));
  int rc = 0;
  const dg_unet *u = dg_sd15_unet(m);
  int64_t C = u ? dg_unet_get_config(u)->cross_attention_dim : 768, s_ctx[3] = {1, 77, C};
  dg_tensor *ctx = dg_arena_tensor(a, DG_DTYPE_F32, 3, s_ctx);
  if (!a || !ctx) return 1;
  if (run_clip(m, e32, e16, a, ctx, o.p_clip) != 0) {
    fprintf(stderr, "bench_drift: no text encoder/tokenizer: a fixed context is used\n");
    for (int64_t i = 0; i < dg_tensor_numel(ctx); i++) ((float *)ctx->data)[i] = (float)sin(0.37 * (double)i);
  }
  if (o.p_unet && run_unet(&o, m, e32, e16, ealt, a, ctx) != 0) rc = 1;
  if (o.p_vae && run_vae(&o, m, e32, e16, a) != 0) rc = 1;
  if (o.p_ops) run_ops(e16, a);
  dg_arena_free(a);
  dg_engine_free(e32);
  dg_engine_free(e16);
  dg_engine_free(ealt);
  dg_sd15_close(m);
  return rc;
}
