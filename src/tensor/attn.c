/* Flash attention driver (see attn.h) and the portable online-softmax block. */
#include "tensor/attn.h"

#include <math.h>
#include <stdatomic.h>
#include <string.h>

#include "tensor/gemm.h"
#include "tensor/kernels.h"

#define LOG2E 1.4426950408889634f

void dg__attn_softmax_generic(float *s, int64_t nrows, int nr, int64_t valid, int64_t j0, int64_t q0,
                              int causal, float *m, float *l, float *alpha, void *p, int bf16) {
  for (int c = 0; c < nr; c++) {
    /* rows visible to column c: r < lim */
    int64_t lim = valid;
    if (causal && q0 + c - j0 + 1 < lim) lim = q0 + c - j0 + 1;
    if (lim < 0) lim = 0;
    float mx = m[c];
    for (int64_t r = 0; r < lim; r++)
      if (s[r * nr + c] > mx) mx = s[r * nr + c];
    float base = mx == -INFINITY ? 0.0f : mx;
    alpha[c] = m[c] == -INFINITY ? (mx == -INFINITY ? 1.0f : 0.0f) : exp2f(m[c] - base);
    float sum = 0.0f;
    for (int64_t r = 0; r < nrows; r++) {
      float pv = r < lim ? exp2f(s[r * nr + c] - base) : 0.0f;
      sum += pv;
      if (bf16)
        ((uint16_t *)p)[(r >> 1) * 2 * nr + 2 * c + (r & 1)] = dg__bf16_rne(pv);
      else
        s[r * nr + c] = pv;
    }
    l[c] = l[c] * alpha[c] + sum;
    m[c] = mx;
  }
}

typedef struct attn_job {
  const dg__ukernel *uk;
  dg__attn_softmax_fn softmax;
  int store_avx512;         /* transpose O^T into y with dg__attn_store_avx512 (NR == 32) */
  dg_engine *e;
  int64_t lq, lk, c, d, h, bk;
  int causal;
  float qscale;
  const float *qb, *kb, *vb; /* this (batch, head): q + b*Lq*C + h*D, ... */
  float *yb;
  char *kp, *vp;            /* shared packed K panels and V^T panels (per key block) */
  size_t kpan, vpan;        /* bytes per K panel, per V^T panel */
  int64_t nvp;              /* V^T panels per key block: ceil(D / MR) */
  size_t priv;              /* bytes of per-thread scratch */
  size_t shared;            /* bytes of shared packs at the start of thread 0's scratch */
  atomic_int failed;
} attn_job;

/* Pack key panels [u0, u1) and then V^T panels (units past the key panels):
 * V^T panel (blk, dp) holds rows d = dp*MR.. of keys [blk*bk, blk*bk + bk). */
static void attn_pack(void *arg, int64_t u0, int64_t u1, int ti) {
  (void)ti;
  attn_job *j = arg;
  const dg__ukernel *uk = j->uk;
  int64_t nkp = (j->lk + uk->mr - 1) / uk->mr;
  dg__opnd ko = {DG__OPND_IK, DG_DTYPE_F32, j->kb, j->c, 1.0f, NULL};
  dg__opnd vo = {DG__OPND_KI, DG_DTYPE_F32, j->vb, j->c, 1.0f, NULL};
  for (int64_t u = u0; u < u1; u++) {
    if (u < nkp) {
      int64_t i0 = u * uk->mr, rows = j->lk - i0 < uk->mr ? j->lk - i0 : uk->mr;
      dg__pack_panel(uk, &ko, 1, uk->mr, i0, rows, 0, j->d, j->kp + (size_t)u * j->kpan);
    } else {
      int64_t w = u - nkp, blk = w / j->nvp, j0 = blk * j->bk;
      int64_t i0 = (w % j->nvp) * uk->mr, rows = j->d - i0 < uk->mr ? j->d - i0 : uk->mr;
      int64_t kcb = j->lk - j0 < j->bk ? j->lk - j0 : j->bk;
      dg__pack_panel(uk, &vo, 1, uk->mr, i0, rows, j0, kcb, j->vp + (size_t)w * j->vpan);
    }
  }
}

static void attn_task(void *arg, int64_t t0, int64_t t1, int ti) {
  attn_job *j = arg;
  const dg__ukernel *uk = j->uk;
  const int MR = uk->mr, NR = uk->nr, bf = uk->bf16;
  char *scr = dg__engine_scratch(j->e, ti, (ti == 0 ? j->shared : 0) + j->priv);
  if (!scr) {
    atomic_store(&j->failed, 1);
    return;
  }
  if (ti == 0) scr += j->shared;
  if (uk->thread_begin) uk->thread_begin();
  int64_t dp = (j->d + MR - 1) / MR * MR;
  size_t qpan = dg__panel_bytes(uk, NR, j->d);
  char *qp = scr;
  float *o = (float *)(scr + (qpan + 63) / 64 * 64); /* (dp, NR) */
  float *s = o + dp * NR;                           /* (bk, NR) */
  uint16_t *pb = (uint16_t *)(s + j->bk * NR);      /* (bk, NR) bf16 */
  float m[64], l[64], alpha[64];
  int64_t ksteps_d = dg__ksteps(uk, j->d);
  dg__opnd qo = {DG__OPND_IK, DG_DTYPE_F32, j->qb, j->c, j->qscale, NULL};
  for (int64_t t = t0; t < t1; t++) {
    int64_t q0 = t * NR, rows = j->lq - q0 < NR ? j->lq - q0 : NR;
    dg__pack_panel(uk, &qo, 0, NR, q0, rows, 0, j->d, qp);
    memset(o, 0, (size_t)(dp * NR) * sizeof *o);
    for (int c = 0; c < NR; c++) {
      m[c] = -INFINITY;
      l[c] = 0.0f;
    }
    int64_t kend = j->lk;
    if (j->causal && q0 + rows < kend) kend = q0 + rows; /* keys past the last query are masked */
    for (int64_t j0 = 0; j0 < kend; j0 += j->bk) {
      int64_t bkv = kend - j0 < j->bk ? kend - j0 : j->bk; /* valid keys in the block */
      int64_t srows = (bkv + MR - 1) / MR * MR;
      for (int64_t r = 0; r < srows; r += MR)
        uk->fn(ksteps_d, j->kp + (size_t)((j0 + r) / MR) * j->kpan, qp, s + r * NR, NR, 0, NULL, NULL);
      /* P^T rows = the V^T panel's keys (a causal cut leaves zeros past bkv) */
      int64_t kcb = j->lk - j0 < j->bk ? j->lk - j0 : j->bk;
      int64_t ka = uk->kalign > 1 ? uk->kalign : 1, prow = (kcb + ka - 1) / ka * ka;
      j->softmax(s, prow, NR, bkv, j0, q0, j->causal, m, l, alpha, pb, bf);
      int rescale = 0;
      for (int c = 0; c < NR; c++) rescale |= alpha[c] != 1.0f;
      if (rescale)
        for (int64_t d = 0; d < j->d; d++)
          for (int c = 0; c < NR; c++) o[d * NR + c] *= alpha[c];
      int64_t ks = dg__ksteps(uk, kcb);
      const char *vblk = j->vp + (size_t)(j0 / j->bk * j->nvp) * j->vpan;
      for (int64_t d0 = 0; d0 < dp; d0 += MR)
        uk->fn(ks, vblk + (size_t)(d0 / MR) * j->vpan, bf ? (const void *)pb : (const void *)s, o + d0 * NR, NR,
               1, NULL, NULL);
    }
    if (j->store_avx512) {
      dg__attn_store_avx512(o, j->d, rows, l, j->yb + q0 * j->c, j->c);
    } else {
      for (int64_t c = 0; c < rows; c++) {
        float inv = l[c] > 0.0f ? 1.0f / l[c] : 0.0f;
        float *yr = j->yb + (q0 + c) * j->c;
        for (int64_t d = 0; d < j->d; d++) yr[d] = o[d * NR + c] * inv;
      }
    }
  }
  if (uk->thread_end) uk->thread_end();
}

dg_status dg__attention_flash(dg_engine *e, dg_tensor *y, const dg_tensor *q, const dg_tensor *k,
                              const dg_tensor *v, int n_heads, int causal, float scale) {
  const dg__ukernel *uk = dg__ukernel_for(dg_engine_isa(e), dg_engine_precision(e));
  attn_job j;
  memset(&j, 0, sizeof j);
  atomic_init(&j.failed, 0);
  j.uk = uk;
  j.softmax = dg__attn_softmax_generic;
  if (uk->nr == 32 && dg_engine_isa(e) == DG_ISA_AVX512) {
    j.softmax = dg__attn_softmax_avx512;
    j.store_avx512 = 1;
  }
  if (uk->nr == 16 && !uk->bf16 && (dg_engine_isa(e) == DG_ISA_AVX2 || dg_engine_isa(e) == DG_ISA_AVX512))
    j.softmax = dg__attn_softmax_avx2;
  j.e = e;
  int64_t nb = q->shape[0];
  j.lq = q->shape[1];
  j.lk = k->shape[1];
  j.c = q->shape[2];
  j.h = n_heads;
  j.d = j.c / n_heads;
  j.causal = causal != 0;
  if (scale <= 0.0f) scale = (float)(1.0 / sqrt((double)j.d));
  j.qscale = scale * LOG2E;
  j.bk = (128 / uk->mr) * uk->mr;
  if (j.bk % 2) j.bk -= uk->mr;
  if (j.lq == 0 || j.d == 0) return DG_STATUS_OK;
  int64_t nkp = (j.lk + uk->mr - 1) / uk->mr, nvp = (j.d + uk->mr - 1) / uk->mr;
  int64_t nblk = (j.lk + j.bk - 1) / j.bk;
  j.nvp = nvp;
  j.kpan = dg__panel_bytes(uk, uk->mr, j.d);
  j.vpan = (dg__panel_bytes(uk, uk->mr, j.bk) + 63) / 64 * 64;
  j.kpan = (j.kpan + 63) / 64 * 64;
  j.shared = j.kpan * (size_t)nkp + j.vpan * (size_t)(nvp * nblk);
  int64_t dp = nvp * uk->mr;
  j.priv = (dg__panel_bytes(uk, uk->nr, j.d) + 63) / 64 * 64 +
           (size_t)(dp * uk->nr + j.bk * uk->nr) * sizeof(float) + (size_t)(j.bk * uk->nr) * 2 + 64;
  char *shared = dg__engine_scratch(e, 0, j.shared + j.priv);
  if (!shared) return DG_STATUS_ERR_NOMEM;
  j.kp = shared;
  j.vp = shared + j.kpan * (size_t)nkp;
  int64_t ntask = (j.lq + uk->nr - 1) / uk->nr;
  for (int64_t b = 0; b < nb; b++) {
    for (int64_t h = 0; h < n_heads; h++) {
      j.qb = (const float *)q->data + b * j.lq * j.c + h * j.d;
      j.kb = (const float *)k->data + b * j.lk * j.c + h * j.d;
      j.vb = (const float *)v->data + b * j.lk * j.c + h * j.d;
      j.yb = (float *)y->data + b * j.lq * j.c + h * j.d;
      dg_engine_parallel(e, nkp + nvp * nblk, attn_pack, &j);
      dg_engine_parallel(e, ntask, attn_task, &j);
      if (atomic_load(&j.failed)) return DG_STATUS_ERR_NOMEM;
    }
  }
  return DG_STATUS_OK;
}
