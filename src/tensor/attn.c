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

/* What every attention path needs to know of the call: sizes, mask, the
 * query scale (scale * log2 e: scores live in the log2 domain), and the
 * current batch's rows. */
typedef struct attn_geom {
  int64_t lq, lk, c, d, h;  /* query / key tokens, channels, head width, heads */
  int causal;
  float qscale;
  const float *q, *k, *v;   /* this batch: (Lq, C), (Lk, C), (Lk, C) */
  float *y;                 /* this batch: (Lq, C) */
} attn_geom;

static attn_geom geom_of(const dg_tensor *q, const dg_tensor *k, int n_heads, int causal, float qscale) {
  attn_geom g = {0};
  g.lq = q->shape[1];
  g.lk = k->shape[1];
  g.c = q->shape[2];
  g.h = n_heads;
  g.d = g.c / n_heads;
  g.causal = causal != 0;
  g.qscale = qscale;
  return g;
}

/* Point g at batch b of the tensors. */
static void geom_batch(attn_geom *g, int64_t b, const dg_tensor *q, const dg_tensor *k, const dg_tensor *v,
                       dg_tensor *y) {
  g->q = (const float *)q->data + b * g->lq * g->c;
  g->k = (const float *)k->data + b * g->lk * g->c;
  g->v = (const float *)v->data + b * g->lk * g->c;
  g->y = (float *)y->data + b * g->lq * g->c;
}

typedef struct attn_job {
  const dg__ukernel *uk;
  dg__attn_softmax_fn softmax;
  int store_avx512;         /* transpose O^T into y with dg__attn_store_avx512 (NR == 32) */
  void (*rescale)(float *o, int64_t d, const float *alpha); /* O^T *= alpha per column, or NULL (C) */
  dg_engine *e;
  attn_geom g;
  int64_t bk;               /* keys per block */
  /* all_heads: the packs of every head of the batch exist at once and a task is
   * NR queries x every head (short key sequences: each task reads and writes
   * whole rows of q and y).  Otherwise one head at a time (`head`), a task is
   * NR queries, and the head's K / V^T packs stay hot in L2 across its tasks. */
  int all_heads;
  int64_t head;
  char *kp, *vp;            /* shared packed K panels and V^T panels, per head: khead, vhead bytes */
  size_t kpan, vpan;        /* bytes per K panel, per V^T panel */
  size_t khead, vhead;      /* bytes of one head's K panels, V^T panels (every key block) */
  int64_t nkp, nvp, nblk;   /* K panels; V^T panels per key block (ceil(D / MR)); key blocks */
  size_t priv;              /* bytes of per-thread scratch */
  size_t shared;            /* bytes of shared packs at the start of thread 0's scratch */
  atomic_int failed;
} attn_job;

/* Pack units [u0, u1): per head, nkp key panels then nvp * nblk V^T panels;
 * V^T panel (blk, dp) holds rows d = dp*MR.. of keys [blk*bk, blk*bk + bk). */
static void attn_pack(void *arg, int64_t u0, int64_t u1, int ti) {
  (void)ti;
  attn_job *j = arg;
  const dg__ukernel *uk = j->uk;
  int64_t per = j->nkp + j->nvp * j->nblk;
  for (int64_t u = u0; u < u1; u++) {
    int64_t hh = j->all_heads ? u / per : j->head, w = u % per, slot = j->all_heads ? hh : 0;
    char *kp = j->kp + (size_t)slot * j->khead, *vp = j->vp + (size_t)slot * j->vhead;
    if (w < j->nkp) {
      dg__opnd ko = {DG__OPND_IK, DG_DTYPE_F32, j->g.k + hh * j->g.d, j->g.c, 1.0f, NULL};
      int64_t i0 = w * uk->mr, rows = j->g.lk - i0 < uk->mr ? j->g.lk - i0 : uk->mr;
      dg__pack_panel(uk, &ko, 1, uk->mr, i0, rows, 0, j->g.d, kp + (size_t)w * j->kpan);
    } else {
      dg__opnd vo = {DG__OPND_KI, DG_DTYPE_F32, j->g.v + hh * j->g.d, j->g.c, 1.0f, NULL};
      w -= j->nkp;
      int64_t blk = w / j->nvp, j0 = blk * j->bk;
      int64_t i0 = (w % j->nvp) * uk->mr, rows = j->g.d - i0 < uk->mr ? j->g.d - i0 : uk->mr;
      int64_t kcb = j->g.lk - j0 < j->bk ? j->g.lk - j0 : j->bk;
      dg__pack_panel(uk, &vo, 1, uk->mr, i0, rows, j0, kcb, vp + (size_t)w * j->vpan);
    }
  }
}

/* Per-thread work buffers (in the thread's scratch). */
typedef struct attn_ws {
  char *qp;      /* packed (scale * log2e * Q)^T panel, D x NR */
  float *o;      /* O^T (dp, NR) */
  float *s;      /* S^T, then P^T (f32) (bk, NR) */
  uint16_t *pb;  /* P^T as bf16 pairs (bk, NR) */
} attn_ws;

/* NR queries from q0 of head hh: y[q0.., hh*D..] = softmax(Q K^T) V. */
static void attn_block(const attn_job *j, const attn_ws *w, int64_t hh, int64_t q0) {
  const dg__ukernel *uk = j->uk;
  const int MR = uk->mr, NR = uk->nr, bf = uk->bf16;
  int64_t slot = j->all_heads ? hh : 0;
  const char *kp = j->kp + (size_t)slot * j->khead, *vp = j->vp + (size_t)slot * j->vhead;
  int64_t rows = j->g.lq - q0 < NR ? j->g.lq - q0 : NR;
  int64_t dp = (j->g.d + MR - 1) / MR * MR;
  float *o = w->o, *s = w->s;
  float m[64], l[64], alpha[64]; /* (NR) */
  dg__opnd qo = {DG__OPND_IK, DG_DTYPE_F32, j->g.q + hh * j->g.d, j->g.c, j->g.qscale, NULL};
  dg__pack_panel(uk, &qo, 0, NR, q0, rows, 0, j->g.d, w->qp);
  for (int c = 0; c < NR; c++) {
    m[c] = -INFINITY;
    l[c] = 0.0f;
  }
  int64_t ksteps_d = dg__ksteps(uk, j->g.d);
  int64_t kend = j->g.lk;
  if (j->g.causal && q0 + rows < kend) kend = q0 + rows; /* keys past the last query are masked */
  for (int64_t j0 = 0; j0 < kend; j0 += j->bk) {
    int64_t bkv = kend - j0 < j->bk ? kend - j0 : j->bk; /* valid keys in the block */
    int64_t srows = (bkv + MR - 1) / MR * MR;
    for (int64_t r = 0; r < srows; r += MR)
      uk->fn(ksteps_d, kp + (size_t)((j0 + r) / MR) * j->kpan, w->qp, s + r * NR, NR, 0, NULL, NULL);
    /* P^T rows = the V^T panel's keys (a causal cut leaves zeros past bkv) */
    int64_t kcb = j->g.lk - j0 < j->bk ? j->g.lk - j0 : j->bk;
    int64_t ka = uk->kalign > 1 ? uk->kalign : 1, prow = (kcb + ka - 1) / ka * ka;
    j->softmax(s, prow, NR, bkv, j0, q0, j->g.causal, m, l, alpha, w->pb, bf);
    /* the first block (key 0 is visible to every query) starts O^T: no old O to rescale */
    int first = j0 == 0;
    if (!first) {
      int rescale = 0;
      for (int c = 0; c < NR; c++) rescale |= alpha[c] != 1.0f;
      if (rescale && j->rescale)
        j->rescale(o, j->g.d, alpha);
      else if (rescale)
        for (int64_t d = 0; d < j->g.d; d++)
          for (int c = 0; c < NR; c++) o[d * NR + c] *= alpha[c];
    }
    int64_t ks = dg__ksteps(uk, kcb);
    const char *vblk = vp + (size_t)(j0 / j->bk * j->nvp) * j->vpan;
    for (int64_t d0 = 0; d0 < dp; d0 += MR) {
      const char *va = vblk + (size_t)(d0 / MR) * j->vpan;
      const void *pv = bf ? (const void *)w->pb : (const void *)s;
      if (uk->fn_part && j->g.d - d0 < MR) /* the head width's tail: rows past D skipped where possible */
        uk->fn_part(ks, va, pv, o + d0 * NR, NR, !first, (int)(j->g.d - d0), NR);
      else
        uk->fn(ks, va, pv, o + d0 * NR, NR, !first, NULL, NULL);
    }
  }
  float *yb = j->g.y + q0 * j->g.c + hh * j->g.d;
  if (j->store_avx512) {
    dg__attn_store_avx512(o, j->g.d, rows, l, yb, j->g.c);
  } else {
    for (int64_t c = 0; c < rows; c++) {
      float inv = l[c] > 0.0f ? 1.0f / l[c] : 0.0f;
      float *yr = yb + c * j->g.c;
      for (int64_t d = 0; d < j->g.d; d++) yr[d] = o[d * NR + c] * inv;
    }
  }
}

static void attn_task(void *arg, int64_t t0, int64_t t1, int ti) {
  attn_job *j = arg;
  const dg__ukernel *uk = j->uk;
  const int NR = uk->nr;
  char *scr = dg__engine_scratch(j->e, ti, (ti == 0 ? j->shared : 0) + j->priv);
  if (!scr) {
    atomic_store(&j->failed, 1);
    return;
  }
  if (ti == 0) scr += j->shared;
  if (uk->thread_begin) uk->thread_begin();
  int64_t dp = (j->g.d + uk->mr - 1) / uk->mr * uk->mr;
  attn_ws w;
  w.qp = scr;
  w.o = (float *)(scr + (dg__panel_bytes(uk, NR, j->g.d) + 63) / 64 * 64);
  w.s = w.o + dp * NR;
  w.pb = (uint16_t *)(w.s + j->bk * NR);
  for (int64_t t = t0; t < t1; t++) {
    if (j->all_heads)
      for (int64_t hh = 0; hh < j->g.h; hh++) attn_block(j, &w, hh, t * NR);
    else
      attn_block(j, &w, j->head, t * NR);
  }
  if (uk->thread_end) uk->thread_end();
}

/* Packs of every head at once (and tasks over all heads) while they take at most this. */
#define ATTN_ALL_HEADS_BYTES ((size_t)4 << 20)

/* ---- short key sequences, f32 (dg__attn_short_avx512 / _avx2) -------------- */

#define SHORT_QB 32 /* queries per task (x every head) */

typedef void (*short_fn)(const float *q, int64_t ldq, const float *kt, const float *vp, int64_t lk, int64_t d,
                         int64_t q0, int64_t rows, int causal, float *p, float *inv, float *y, int64_t ldy);

typedef struct short_job {
  short_fn fn;
  int w;                    /* vector width: ldk, ldv are multiples of it */
  dg_engine *e;
  attn_geom g;
  int64_t ldk, ldv;
  float *kt, *vp;           /* per head: kt (D, ldk) = (qscale * K)^T, vp (Lk, ldv) = V, zero padded */
  size_t khead, vhead;      /* floats per head of kt, vp */
  size_t shared, priv;      /* bytes: packs at the start of thread 0's scratch; per-thread p and inv */
  atomic_int failed;
} short_job;

static void short_pack(void *arg, int64_t h0, int64_t h1, int ti) {
  (void)ti;
  short_job *j = arg;
  for (int64_t hh = h0; hh < h1; hh++) {
    float *kt = j->kt + (size_t)hh * j->khead, *vp = j->vp + (size_t)hh * j->vhead;
    memset(kt, 0, j->khead * sizeof *kt);
    for (int64_t t = 0; t < j->g.lk; t++) {
      const float *kr = j->g.k + t * j->g.c + hh * j->g.d;
      for (int64_t dd = 0; dd < j->g.d; dd++) kt[dd * j->ldk + t] = kr[dd] * j->g.qscale;
    }
    for (int64_t t = 0; t < j->g.lk; t++) {
      memcpy(vp + t * j->ldv, j->g.v + t * j->g.c + hh * j->g.d, (size_t)j->g.d * sizeof *vp);
      memset(vp + t * j->ldv + j->g.d, 0, (size_t)(j->ldv - j->g.d) * sizeof *vp);
    }
  }
}

static void short_task(void *arg, int64_t t0, int64_t t1, int ti) {
  short_job *j = arg;
  char *scr = dg__engine_scratch(j->e, ti, (ti == 0 ? j->shared : 0) + j->priv);
  if (!scr) {
    atomic_store(&j->failed, 1);
    return;
  }
  if (ti == 0) scr += j->shared;
  float *p = (float *)scr, *inv = p + SHORT_QB * j->ldk; /* (SHORT_QB, ldk), (SHORT_QB) */
  for (int64_t t = t0; t < t1; t++) {
    int64_t q0 = t * SHORT_QB, rows = j->g.lq - q0 < SHORT_QB ? j->g.lq - q0 : SHORT_QB;
    for (int64_t hh = 0; hh < j->g.h; hh++) {
      /* (software prefetch of q / y measured no gain here: the loads overlap the FMAs) */
      j->fn(j->g.q + q0 * j->g.c + hh * j->g.d, j->g.c, j->kt + (size_t)hh * j->khead,
                            j->vp + (size_t)hh * j->vhead, j->g.lk, j->g.d, q0, rows, j->g.causal, p, inv,
                            j->g.y + q0 * j->g.c + hh * j->g.d, j->g.c);
    }
  }
}

static dg_status attention_short(dg_engine *e, short_fn fn, int w, dg_tensor *y, const dg_tensor *q,
                                 const dg_tensor *k, const dg_tensor *v, int n_heads, int causal, float qscale) {
  short_job j;
  memset(&j, 0, sizeof j);
  atomic_init(&j.failed, 0);
  j.fn = fn;
  j.w = w;
  j.e = e;
  int64_t nb = q->shape[0];
  j.g = geom_of(q, k, n_heads, causal, qscale);
  j.ldk = (j.g.lk + w - 1) / w * w;
  j.ldv = (j.g.d + w - 1) / w * w;
  j.khead = (size_t)(j.g.d * j.ldk + 15) / 16 * 16;
  j.vhead = (size_t)(j.g.lk * j.ldv);
  j.shared = (j.khead + j.vhead) * (size_t)n_heads * sizeof(float);
  j.priv = (size_t)(SHORT_QB * j.ldk + SHORT_QB) * sizeof(float) + 64;
  char *shared = dg__engine_scratch(e, 0, j.shared + j.priv);
  if (!shared) return DG_STATUS_ERR_NOMEM;
  j.kt = (float *)shared;
  j.vp = j.kt + j.khead * (size_t)n_heads;
  int64_t ntask = (j.g.lq + SHORT_QB - 1) / SHORT_QB;
  for (int64_t b = 0; b < nb; b++) {
    geom_batch(&j.g, b, q, k, v, y);
    dg_engine_parallel(e, n_heads, short_pack, &j);
    dg_engine_parallel(e, ntask, short_task, &j);
    if (atomic_load(&j.failed)) return DG_STATUS_ERR_NOMEM;
  }
  return DG_STATUS_OK;
}

/* Ask for the lines of rows x [0, n) floats at p (row stride ld) ahead of use:
 * q and y blocks are column slices of (tokens, C) rows, which the hardware
 * prefetchers follow poorly (the AMX path is bound by them without this). */
static void prefetch_rows(const float *p, int64_t ld, int64_t rows, int64_t n, int write) {
  for (int64_t r = 0; r < rows; r++) {
    const char *a = (const char *)(p + r * ld), *e = (const char *)(p + r * ld + n);
    for (uintptr_t x = (uintptr_t)a & ~(uintptr_t)63; x < (uintptr_t)e; x += 64) {
      if (write)
        __builtin_prefetch((const void *)x, 1, 3);
      else
        __builtin_prefetch((const void *)x, 0, 3);
    }
  }
}

/* ---- short key sequences on AMX (row-major tiled A panels): queries as rows ------ */

/* Per batch, every head packed once: K as B panels (32 keys, pairs over D), V as
 * B panels (32 of D, pairs over keys).  A task takes 32 queries x every head:
 *   S (32, 32*nkp) = (scale*log2e * Q) (32, D) . K^T     uk, Q packed row-major (no transpose)
 *   P = 2^(S - rowmax) as bf16 rows = the next A panel; inv = 1 / rowsum
 *   O (32, 32*nvp) = P (32, Lk) . V                      uk, rows scaled by inv into y. */
typedef struct rows_job {
  const dg__ukernel *uk;    /* nr == mr == 32, pack_a_tiled */
  dg_engine *e;
  attn_geom g;
  char *kb, *vb;            /* per head: nkp K panels, nvp V panels */
  size_t kpan, vpan;        /* bytes per panel */
  int64_t nkp, nvp;         /* ceil(Lk / 32), ceil(D / 32) */
  int64_t kpad;             /* keys padded for P: multiple of uk->kalign */
  size_t shared, priv;
  atomic_int failed;
} rows_job;

static void rows_pack(void *arg, int64_t u0, int64_t u1, int ti) {
  (void)ti;
  rows_job *j = arg;
  const dg__ukernel *uk = j->uk;
  int64_t per = j->nkp + j->nvp;
  for (int64_t u = u0; u < u1; u++) {
    int64_t hh = u / per, w = u % per;
    if (w < j->nkp) {
      dg__opnd ko = {DG__OPND_IK, DG_DTYPE_F32, j->g.k + hh * j->g.d, j->g.c, 1.0f, NULL};
      int64_t i0 = w * uk->nr, n = j->g.lk - i0 < uk->nr ? j->g.lk - i0 : uk->nr;
      dg__pack_panel(uk, &ko, 0, uk->nr, i0, n, 0, j->g.d, j->kb + (size_t)(hh * j->nkp + w) * j->kpan);
    } else {
      w -= j->nkp;
      dg__opnd vo = {DG__OPND_KI, DG_DTYPE_F32, j->g.v + hh * j->g.d, j->g.c, 1.0f, NULL};
      int64_t i0 = w * uk->nr, n = j->g.d - i0 < uk->nr ? j->g.d - i0 : uk->nr;
      dg__pack_panel(uk, &vo, 0, uk->nr, i0, n, 0, j->g.lk, j->vb + (size_t)(hh * j->nvp + w) * j->vpan);
    }
  }
}

static void rows_task(void *arg, int64_t t0, int64_t t1, int ti) {
  rows_job *j = arg;
  const dg__ukernel *uk = j->uk;
  const int R = uk->mr;
  char *scr = dg__engine_scratch(j->e, ti, (ti == 0 ? j->shared : 0) + j->priv);
  if (!scr) {
    atomic_store(&j->failed, 1);
    return;
  }
  if (ti == 0) scr += j->shared;
  size_t qbytes = (dg__panel_bytes(uk, R, j->g.d) + 63) / 64 * 64;
  int64_t lds = j->nkp * uk->nr, ldo = j->nvp * uk->nr;
  char *qa = scr;                                      /* Q panel (R, kpad(D)) bf16 */
  float *s = (float *)(scr + qbytes);                  /* (R, lds) */
  float *o = s + R * lds;                              /* (R, ldo) */
  uint16_t *p = (uint16_t *)(o + R * ldo);             /* (R, kpad) bf16 */
  float *inv = (float *)(p + R * j->kpad);             /* (R) */
  int64_t ksd = dg__ksteps(uk, j->g.d), ksk = dg__ksteps(uk, j->g.lk);
  if (uk->thread_begin) uk->thread_begin();
  for (int64_t t = t0; t < t1; t++) {
    int64_t q0 = t * R, rows = j->g.lq - q0 < R ? j->g.lq - q0 : R;
    for (int64_t hh = 0; hh < j->g.h; hh++) {
      /* next head's (or block's) q, this head's y: in flight during the products */
      int64_t nq0 = hh + 1 < j->g.h ? q0 : q0 + R, nh = hh + 1 < j->g.h ? hh + 1 : 0;
      if (nq0 < j->g.lq)
        prefetch_rows(j->g.q + nq0 * j->g.c + nh * j->g.d, j->g.c, j->g.lq - nq0 < R ? j->g.lq - nq0 : R, j->g.d, 0);
      prefetch_rows(j->g.y + q0 * j->g.c + hh * j->g.d, j->g.c, rows, j->g.d, 1);
      dg__opnd qo = {DG__OPND_IK, DG_DTYPE_F32, j->g.q + hh * j->g.d, j->g.c, j->g.qscale, NULL};
      dg__pack_panel(uk, &qo, 1, R, q0, rows, 0, j->g.d, qa);
      const char *kb = j->kb + (size_t)(hh * j->nkp) * j->kpan, *vb = j->vb + (size_t)(hh * j->nvp) * j->vpan;
      /* fn_part: only the valid queries (rows) and keys / head columns (a tail panel's) */
      for (int64_t w = 0; w < j->nkp; w++) {
        int cols = j->g.lk - w * uk->nr < uk->nr ? (int)(j->g.lk - w * uk->nr) : uk->nr;
        if (uk->fn_part)
          uk->fn_part(ksd, qa, kb + (size_t)w * j->kpan, s + w * uk->nr, lds, 0, (int)rows, cols);
        else
          uk->fn(ksd, qa, kb + (size_t)w * j->kpan, s + w * uk->nr, lds, 0, NULL, NULL);
      }
      dg__attn_rowsoftmax_bf16_avx512(s, lds, R, j->g.lk, j->kpad, j->g.causal, q0, p, inv);
      for (int64_t w = 0; w < j->nvp; w++) {
        int cols = j->g.d - w * uk->nr < uk->nr ? (int)(j->g.d - w * uk->nr) : uk->nr;
        if (uk->fn_part)
          uk->fn_part(ksk, p, vb + (size_t)w * j->vpan, o + w * uk->nr, ldo, 0, (int)rows, cols);
        else
          uk->fn(ksk, p, vb + (size_t)w * j->vpan, o + w * uk->nr, ldo, 0, NULL, NULL);
      }
      dg__attn_rowstore_avx512(o, ldo, (int)rows, inv, j->g.d, j->g.y + q0 * j->g.c + hh * j->g.d, j->g.c);
    }
  }
  if (uk->thread_end) uk->thread_end();
}

static dg_status attention_rows(dg_engine *e, const dg__ukernel *uk, dg_tensor *y, const dg_tensor *q,
                                const dg_tensor *k, const dg_tensor *v, int n_heads, int causal, float qscale) {
  rows_job j;
  memset(&j, 0, sizeof j);
  atomic_init(&j.failed, 0);
  j.uk = uk;
  j.e = e;
  int64_t nb = q->shape[0];
  j.g = geom_of(q, k, n_heads, causal, qscale);
  j.nkp = (j.g.lk + uk->nr - 1) / uk->nr;
  j.nvp = (j.g.d + uk->nr - 1) / uk->nr;
  j.kpad = dg__ksteps(uk, j.g.lk) * 2;
  j.kpan = (dg__panel_bytes(uk, uk->nr, j.g.d) + 63) / 64 * 64;
  j.vpan = (dg__panel_bytes(uk, uk->nr, j.g.lk) + 63) / 64 * 64;
  j.shared = (j.kpan * (size_t)j.nkp + j.vpan * (size_t)j.nvp) * (size_t)n_heads;
  int R = uk->mr;
  j.priv = (dg__panel_bytes(uk, R, j.g.d) + 63) / 64 * 64 +
           (size_t)(R * (j.nkp + j.nvp) * uk->nr) * sizeof(float) + (size_t)(R * j.kpad) * 2 +
           (size_t)R * sizeof(float) + 64;
  char *shared = dg__engine_scratch(e, 0, j.shared + j.priv);
  if (!shared) return DG_STATUS_ERR_NOMEM;
  j.kb = shared;
  j.vb = shared + j.kpan * (size_t)(j.nkp * n_heads);
  int64_t ntask = (j.g.lq + R - 1) / R;
  for (int64_t b = 0; b < nb; b++) {
    geom_batch(&j.g, b, q, k, v, y);
    dg_engine_parallel(e, (j.nkp + j.nvp) * n_heads, rows_pack, &j);
    dg_engine_parallel(e, ntask, rows_task, &j);
    if (atomic_load(&j.failed)) return DG_STATUS_ERR_NOMEM;
  }
  return DG_STATUS_OK;
}

dg_status dg__attention_flash(dg_engine *e, dg_tensor *y, const dg_tensor *q, const dg_tensor *k,
                              const dg_tensor *v, int n_heads, int causal, float scale) {
  const dg__ukernel *uk = dg__ukernel_for(dg_engine_isa(e), dg_engine_precision(e));
  dg_isa isa = dg_engine_isa(e);
  /* scores in the log2 domain: q scaled by scale (default 1 / sqrt(D)) * log2 e */
  float qs = (scale > 0.0f ? scale : (float)(1.0 / sqrt((double)(q->shape[2] / n_heads)))) * LOG2E;
  /* AMX: queries as rows (whole rows of scores, one exact softmax, P . V as one long product)
   * up to 1024 keys: 1.2-1.6x the key-blocked flash loop at 256-1024 keys, 2.3x slower at 4096
   * (its 32 x Lk score rows leave L1/L2), measured with bench_kernels --attn-all */
  int64_t short_max = uk->bf16 && uk->pack_a_tiled ? 1024 : 128;
  if ((isa == DG_ISA_AVX512 || isa == DG_ISA_AVX2) && k->shape[1] <= short_max && q->shape[2] / n_heads <= 256 &&
      q->shape[1] > 0 && q->shape[2] > 0) {
    if (isa == DG_ISA_AVX2 && !uk->bf16 && k->shape[1] <= 128)
      return attention_short(e, dg__attn_short_avx2, 8, y, q, k, v, n_heads, causal, qs);
    if (isa == DG_ISA_AVX512 && !uk->bf16 && k->shape[1] <= 128)
      return attention_short(e, dg__attn_short_avx512, 16, y, q, k, v, n_heads, causal, qs);
    if (isa == DG_ISA_AVX512 && uk->pack_a_tiled && uk->mr == 32 && uk->nr == 32)
      return attention_rows(e, uk, y, q, k, v, n_heads, causal, qs);
  }
  attn_job j;
  memset(&j, 0, sizeof j);
  atomic_init(&j.failed, 0);
  j.uk = uk;
  j.softmax = dg__attn_softmax_generic;
  if (uk->nr == 32 && dg_engine_isa(e) == DG_ISA_AVX512) {
    j.softmax = dg__attn_softmax_avx512;
    j.store_avx512 = 1;
    j.rescale = dg__attn_rescale_avx512;
  }
  if (uk->nr == 16 && (dg_engine_isa(e) == DG_ISA_AVX2 || dg_engine_isa(e) == DG_ISA_AVX512)) {
    if (!uk->bf16) j.softmax = dg__attn_softmax_avx2;
    j.rescale = dg__attn_rescale_avx2;
  }
  j.e = e;
  int64_t nb = q->shape[0];
  j.g = geom_of(q, k, n_heads, causal, qs);
  j.bk = (128 / uk->mr) * uk->mr;
  if (j.bk % 2) j.bk -= uk->mr;
  if (j.g.lq == 0 || j.g.d == 0) return DG_STATUS_OK;
  j.nkp = (j.g.lk + uk->mr - 1) / uk->mr;
  j.nvp = (j.g.d + uk->mr - 1) / uk->mr;
  j.nblk = (j.g.lk + j.bk - 1) / j.bk;
  j.kpan = (dg__panel_bytes(uk, uk->mr, j.g.d) + 63) / 64 * 64;
  j.vpan = (dg__panel_bytes(uk, uk->mr, j.bk) + 63) / 64 * 64;
  j.khead = j.kpan * (size_t)j.nkp;
  j.vhead = j.vpan * (size_t)(j.nvp * j.nblk);
  j.all_heads = (j.khead + j.vhead) * (size_t)n_heads <= ATTN_ALL_HEADS_BYTES;
  j.shared = (j.khead + j.vhead) * (size_t)(j.all_heads ? n_heads : 1);
  int64_t dp = j.nvp * uk->mr;
  j.priv = (dg__panel_bytes(uk, uk->nr, j.g.d) + 63) / 64 * 64 +
           (size_t)(dp * uk->nr + j.bk * uk->nr) * sizeof(float) + (size_t)(j.bk * uk->nr) * 2 + 64;
  char *shared = dg__engine_scratch(e, 0, j.shared + j.priv);
  if (!shared) return DG_STATUS_ERR_NOMEM;
  j.kp = shared;
  j.vp = shared + (j.all_heads ? (size_t)n_heads : 1) * j.khead;
  int64_t ntask = (j.g.lq + uk->nr - 1) / uk->nr, per = j.nkp + j.nvp * j.nblk;
  for (int64_t b = 0; b < nb; b++) {
    geom_batch(&j.g, b, q, k, v, y);
    if (j.all_heads) {
      dg_engine_parallel(e, per * n_heads, attn_pack, &j);
      dg_engine_parallel(e, ntask, attn_task, &j);
      if (atomic_load(&j.failed)) return DG_STATUS_ERR_NOMEM;
      continue;
    }
    for (int64_t h = 0; h < n_heads; h++) {
      j.head = h;
      dg_engine_parallel(e, per, attn_pack, &j);
      dg_engine_parallel(e, ntask, attn_task, &j);
      if (atomic_load(&j.failed)) return DG_STATUS_ERR_NOMEM;
    }
  }
  return DG_STATUS_OK;
}
