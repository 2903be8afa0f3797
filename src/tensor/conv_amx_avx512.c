/* 3x3 stride-1 pad-1 convolution on AMX-BF16 without im2col (see conv_amx.h).
 *
 * The input is converted once per call to bf16 channel pairs on a zero-padded
 * grid (Hp = H + 2, Wp = W + 2): pair plane p (channels 2p, 2p + 1), padded
 * position (py, px) holds x[2p + e][py - 1][px - 1] at
 *   xp[2 (img * istride + p * pstride + py * rstride + px) + e].
 * The B tile of filter tap (dy, dx) for 16 output positions starting at (y, x)
 * is then 16 pair planes (rows, pstride apart) of 16 positions from
 * (y + dy, x + dx): the same memory for every tap, shifted; nothing is packed.
 * Two layouts:
 *  - rows (W >= 32): xp (N, Hp, planes, Wp, 2), an output tile is 32 positions
 *    of one output row; a tile's planes are Wp apart, i.e. a few KiB of memory
 *    per (row, chunk) that the prefetchers follow.
 *  - planes (narrow images): xp (N, planes, PL, 2), outputs on the padded width
 *    as one line of positions q = y * Wp + x (columns x >= W computed, dropped),
 *    so that a tile of 32 positions spans several rows of an 8 x 8 or 16 x 16
 *    image instead of being mostly empty.
 *
 * One output tile is 32 output channels x 32 positions in the four C tile
 * registers, accumulated over every 32-channel chunk and tap (K = 9 Ci) before
 * it is stored once.  The weights of one 32-channel panel are converted per
 * thread into the kernel's tiled A layout (gemm.h),
 *   wt[chunk][tap][r][k] = w[co0 + r][32 chunk + k][tap]   (bf16, zero padded),
 * right before that thread's first tile of the panel. */
#include <immintrin.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "tensor/conv_amx.h"
#include "tensor/gemm.h"
#include "tensor/gemm_avx512.h"
#include "tensor/kernels.h"

#define AMX_ATTR __attribute__((target("amx-tile,amx-bf16")))
#define TILE_GROUP 8 /* output tiles (of 32 positions) per work unit */

static int g_mode; /* 0: layout by width, 1: planes, 2: rows (tests) */
void dg__conv_amx_set_layout(int mode) { g_mode = mode; }

typedef struct cjob {
  dg_engine *e;
  const dg__ukernel *uk; /* the AMX kernel: tile configuration (thread_begin / _end) */
  const float *x;        /* (N, Ci, H, W) */
  const void *w;         /* (Co, Ci, 3, 3), dtype wdt */
  dg_dtype wdt;
  float *y;              /* (N, Co, H, W) */
  const float *bias;     /* Co values or NULL */
  int64_t n, ci, co, h, wd, wp, hp;
  int64_t nch;           /* 32-channel chunks of Ci */
  int64_t npl;           /* pair planes per image: 16 * nch */
  int rows;              /* layout: rows (1) or planes (0) */
  int64_t istride, pstride, rstride; /* xp strides (positions): image, plane, padded row */
  int64_t tpr;           /* rows layout: tiles per output row */
  int64_t q, nt, ng;     /* planes layout: output positions per image (h * wp); tiles, tile groups */
  int64_t ncop;          /* 32-channel output panels */
  uint16_t *xp;
  size_t wt_bytes;
  atomic_int failed;
} cjob;

/* ---- input: bf16 pairs on the padded grid ------------------------------------- */

static void xp_task(void *arg, int64_t u0, int64_t u1, int ti) {
  cjob *j = arg;
  float *zero = dg__engine_scratch(j->e, ti, (size_t)j->wd * sizeof(float));
  if (!zero) {
    atomic_store(&j->failed, 1);
    return;
  }
  memset(zero, 0, (size_t)j->wd * sizeof(float));
  for (int64_t u = u0; u < u1; u++) {
    int64_t img = u / j->npl, p = u % j->npl, c0 = 2 * p;
    uint16_t *d = j->xp + (size_t)(img * j->istride + p * j->pstride) * 2;
    memset(d, 0, (size_t)j->wp * 4); /* top padding row */
    for (int64_t py = 1; py <= j->h; py++) {
      uint16_t *row = d + py * j->rstride * 2;
      const float *r0 = c0 < j->ci ? j->x + ((img * j->ci + c0) * j->h + py - 1) * j->wd : zero;
      const float *r1 = c0 + 1 < j->ci ? j->x + ((img * j->ci + c0 + 1) * j->h + py - 1) * j->wd : zero;
      row[0] = row[1] = 0;
      dg__cvt_pairs_avx512(r0, r1, (int)j->wd, row + 2);
      row[2 * j->wp - 2] = row[2 * j->wp - 1] = 0;
    }
    memset(d + (j->h + 1) * j->rstride * 2, 0, (size_t)j->wp * 4); /* bottom padding row */
    if (!j->rows) /* the slack read by the last tiles */
      memset(d + j->hp * j->wp * 2, 0, (size_t)(j->pstride - j->hp * j->wp) * 4);
  }
}

/* ---- weights: one output panel in the tiled A layout --------------------------- */

/* The 32 x 9 -> 9 x 32 transpose of one (output channel, chunk) run of weights
 * in registers: the run, as bf16, is v[0..8] (32 values each); tap s gathers
 * values 9 k + s (k < 32) with one two-source permute per vector pair. */
typedef struct tr_tab {
  __m512i ix[9][5];
  __mmask32 mk[9][5];
} tr_tab;

static void tr_init(tr_tab *tb) {
  for (int s = 0; s < 9; s++)
    for (int m = 0; m < 5; m++) {
      _Alignas(64) uint16_t ix[32];
      uint32_t mk = 0;
      for (int k = 0; k < 32; k++) {
        int e = 9 * k + s - 64 * m;
        ix[k] = (uint16_t)(e & 63);
        if (e >= 0 && e < 64) mk |= 1u << k;
      }
      tb->ix[s][m] = _mm512_load_si512((const void *)ix);
      tb->mk[s][m] = (__mmask32)mk;
    }
}

#ifndef PF_CH
#define PF_CH 2
#endif
static void pack_panel(const cjob *j, const tr_tab *tb, int64_t cop, uint16_t *wt) {
  for (int64_t ch = 0; ch < j->nch; ch++) {
    int64_t nk = j->ci - 32 * ch < 32 ? j->ci - 32 * ch : 32; /* valid input channels */
    for (int r = 0; r < 32; r++) {
      int64_t co = cop * 32 + r;
      uint16_t *d = wt + (size_t)ch * 9 * 1024 + (size_t)r * 32; /* + tap * 1024 */
      if (co >= j->co) {
        for (int s = 0; s < 9; s++) memset(d + s * 1024, 0, 64);
        continue;
      }
      /* the 9 nk values of (co, chunk) are contiguous: w[co][32 ch ..][0..8] */
      int64_t off = (co * j->ci + 32 * ch) * 9, n = nk * 9;
      if (ch + PF_CH < j->nch) { /* 32 rows 4 KiB+ apart defeat the hardware prefetcher: the chunk PF_CH ahead into L2 */
        const char *pf = (const char *)j->w + (size_t)(off + 32 * 9 * PF_CH) * (size_t)dg_dtype_size(j->wdt);
        size_t nb = (size_t)32 * 9 * (size_t)dg_dtype_size(j->wdt);
        for (size_t q = 0; q < nb; q += 64) _mm_prefetch(pf + q, _MM_HINT_T1);
      }
      __m512i v[9];
      for (int t = 0; t < 9; t++)
        v[t] = (__m512i)_mm512_cvtne2ps_pbh(dg__load16_avx512(j->w, j->wdt, off + 32 * t + 16, (int)(n - 32 * t - 16)),
                                            dg__load16_avx512(j->w, j->wdt, off + 32 * t, (int)(n - 32 * t)));
      for (int s = 0; s < 9; s++) {
        __m512i o = _mm512_maskz_permutex2var_epi16(tb->mk[s][0], v[0], tb->ix[s][0], v[1]);
        for (int m = 1; m < 4; m++)
          o = _mm512_mask_mov_epi16(o, tb->mk[s][m], _mm512_permutex2var_epi16(v[2 * m], tb->ix[s][m], v[2 * m + 1]));
        o = _mm512_mask_mov_epi16(o, tb->mk[s][4], _mm512_permutexvar_epi16(tb->ix[s][4], v[8]));
        _mm512_storeu_si512(d + s * 1024, o);
      }
    }
  }
}

/* ---- products ------------------------------------------------------------------ */

/* Output tile tt of image img, channels co0.. (t: 32 x 32 f32, channel-major). */
static void store_tile(const cjob *j, int64_t img, int64_t co0, int64_t tt, const float *t) {
  int64_t rs[34], re[34], dst[34]; /* runs: tile columns [rs, re) -> y plane offset dst */
  int nr = 0;
  if (j->rows) {
    int64_t y = tt / j->tpr, x0 = tt % j->tpr * 32;
    rs[0] = 0;
    re[0] = j->wd - x0 < 32 ? j->wd - x0 : 32;
    dst[0] = y * j->wd + x0;
    nr = 1;
  } else {
    int64_t q0 = tt * 32;
    for (int64_t q = q0; q < q0 + 32 && q < j->q;) {
      int64_t py = q / j->wp, px = q % j->wp, len = j->wp - px;
      if (len > q0 + 32 - q) len = q0 + 32 - q;
      if (px < j->wd) {
        rs[nr] = q - q0;
        re[nr] = q - q0 + (j->wd - px < len ? j->wd - px : len);
        dst[nr] = py * j->wd + px;
        nr++;
      }
      q += len;
    }
  }
  int64_t rows = j->co - co0 < 32 ? j->co - co0 : 32, plane = j->h * j->wd;
  for (int64_t r = 0; r < rows; r++) {
    float *yp = j->y + (img * j->co + co0 + r) * plane;
    __m512 b = _mm512_set1_ps(j->bias ? j->bias[co0 + r] : 0.0f);
    const float *tr = t + r * 32;
    for (int k = 0; k < nr; k++) {
      for (int64_t c = rs[k]; c < re[k]; c += 16) {
        int64_t n = re[k] - c;
        __mmask16 m = (__mmask16)(n >= 16 ? 0xffff : (1u << n) - 1);
        _mm512_mask_storeu_ps(yp + dst[k] + (c - rs[k]), m, _mm512_add_ps(_mm512_maskz_loadu_ps(m, tr + c), b));
      }
    }
  }
}

/* xb: the tile's first input position (tap (0, 0)) in pair plane 0. */
AMX_ATTR static void tile_products(const cjob *j, const uint16_t *wt, const uint16_t *xb, float *t) {
  const int64_t bstride = j->pstride * 4; /* bytes between pair planes */
  int64_t tap[9];
  for (int s = 0; s < 9; s++) tap[s] = ((s / 3) * j->rstride + s % 3) * 2;
  _tile_zero(0);
  _tile_zero(1);
  _tile_zero(2);
  _tile_zero(3);
  for (int64_t ch = 0; ch < j->nch; ch++) {
    const uint16_t *xc = xb + (size_t)ch * 16 * (size_t)j->pstride * 2, *wc = wt + (size_t)ch * 9 * 1024;
    for (int s = 0; s < 9; s++) {
      _tile_loadd(4, wc + s * 1024, 64);
      _tile_loadd(5, wc + s * 1024 + 512, 64);
      _tile_loadd(6, xc + tap[s], bstride);
      _tile_loadd(7, xc + tap[s] + 32, bstride);
      _tile_dpbf16ps(0, 4, 6);
      _tile_dpbf16ps(1, 4, 7);
      _tile_dpbf16ps(2, 5, 6);
      _tile_dpbf16ps(3, 5, 7);
    }
  }
  _tile_stored(0, t, 128);
  _tile_stored(1, t + 16, 128);
  _tile_stored(2, t + 512, 128);
  _tile_stored(3, t + 528, 128);
}

/* Units: (output panel, image, tile group), panel-major: a thread converts a
 * panel's weights once and reuses them (in L2) for every image and tile. */
static void conv_task(void *arg, int64_t u0, int64_t u1, int ti) {
  cjob *j = arg;
  char *scr = dg__engine_scratch(j->e, ti, j->wt_bytes + 32 * 32 * sizeof(float) + 64);
  if (!scr) {
    atomic_store(&j->failed, 1);
    return;
  }
  uint16_t *wt = (uint16_t *)scr;
  float *t = (float *)(scr + (j->wt_bytes + 63) / 64 * 64);
  int64_t have = -1;
  tr_tab tb;
  tr_init(&tb);
  j->uk->thread_begin();
  for (int64_t u = u0; u < u1; u++) {
    int64_t cop = u / (j->n * j->ng), img = u / j->ng % j->n, g = u % j->ng;
    if (cop != have) {
      pack_panel(j, &tb, cop, wt);
      have = cop;
    }
    const uint16_t *xb = j->xp + (size_t)(img * j->istride) * 2;
    for (int64_t tt = g * TILE_GROUP; tt < (g + 1) * TILE_GROUP && tt < j->nt; tt++) {
      int64_t pos = j->rows ? tt / j->tpr * j->rstride + tt % j->tpr * 32 : tt * 32;
      tile_products(j, wt, xb + pos * 2, t);
      store_tile(j, img, cop * 32, tt, t);
    }
  }
  j->uk->thread_end();
}

int dg__conv_amx_usable(const dg_engine *e, const dg_tensor *x, const dg_tensor *w, int stride, int pad) {
  if (dg_engine_precision(e) != DG_PRECISION_BF16 || dg_engine_isa(e) != DG_ISA_AVX512) return 0;
  if (w->ndim != 4 || w->shape[2] != 3 || w->shape[3] != 3 || stride != 1 || pad != 1) return 0;
  if (x->dtype != DG_DTYPE_F32 || w->shape[1] < 16 || w->shape[0] < 1) return 0;
  const char *env = getenv("DG_CONV_AMX"); /* 0: the im2col GEMM path instead */
  if (env && env[0] == '0') return 0;
  const dg__ukernel *uk = dg__ukernel_amx_bf16();
  return uk && uk->thread_begin && x->shape[3] >= 1 && x->shape[2] >= 1;
}

dg_status dg__conv2d_amx(dg_engine *e, dg_tensor *y, const dg_tensor *x, const dg_tensor *w, const dg_tensor *b) {
  cjob j;
  memset(&j, 0, sizeof j);
  atomic_init(&j.failed, 0);
  j.e = e;
  j.uk = dg__ukernel_amx_bf16();
  if (!j.uk) return DG_STATUS_ERR_INVALID;
  j.x = x->data;
  j.w = w->data;
  j.wdt = w->dtype;
  j.y = y->data;
  j.n = x->shape[0];
  j.ci = x->shape[1];
  j.h = x->shape[2];
  j.wd = x->shape[3];
  j.co = w->shape[0];
  j.wp = j.wd + 2;
  j.hp = j.h + 2;
  j.nch = (j.ci + 31) / 32;
  j.npl = 16 * j.nch;
  j.rows = g_mode ? g_mode == 2 : j.wd >= 32;
  if (j.rows) {
    j.tpr = (j.wd + 31) / 32;
    j.nt = j.h * j.tpr;
    j.pstride = j.wp;
    j.rstride = j.npl * j.wp;
    /* a partial last tile reads up to 32 positions past the end of the last row */
    j.istride = j.hp * j.rstride + (j.wd % 32 ? 32 : 0);
  } else {
    j.q = j.h * j.wp;
    j.nt = (j.q + 31) / 32;
    /* the last tile reads up to position 32 nt - 1 + 2 Wp + 2; a plane stride that is
     * not a multiple of 1 KiB keeps a tile's 16 rows in different cache sets */
    int64_t pl = 32 * j.nt + 2 * j.wp + 2;
    if (pl < j.hp * j.wp) pl = j.hp * j.wp;
    pl = (pl + 15) / 16 * 16;
    if ((pl * 4) % 1024 == 0) pl += 16;
    j.pstride = pl;
    j.rstride = j.wp;
    j.istride = j.npl * pl;
  }
  j.ng = (j.nt + TILE_GROUP - 1) / TILE_GROUP;
  j.ncop = (j.co + 31) / 32;
  j.wt_bytes = (size_t)j.nch * 9 * 1024 * sizeof(uint16_t);
  if (j.n == 0 || j.co == 0 || j.h == 0 || j.wd == 0) return DG_STATUS_OK;
  size_t xbytes = (size_t)j.n * (size_t)j.istride * 4;
  j.xp = dg__engine_workspace(e, 0, xbytes);
  float *bias = NULL;
  if (b) {
    bias = dg__engine_workspace(e, 1, (size_t)j.co * sizeof(float));
    if (!bias) return DG_STATUS_ERR_NOMEM;
    for (int64_t i = 0; i < j.co; i++) bias[i] = dg_load_f32(b->data, b->dtype, i);
  }
  j.bias = bias;
  if (!j.xp) return DG_STATUS_ERR_NOMEM;
  if (j.rows && j.wd % 32) /* slack after each image: read by partial tiles, zero */
    for (int64_t i = 0; i < j.n; i++) memset(j.xp + (size_t)((i + 1) * j.istride - 32) * 2, 0, 32 * 4);
  dg_engine_parallel(e, j.n * j.npl, xp_task, &j);
  if (atomic_load(&j.failed)) return DG_STATUS_ERR_NOMEM;
  dg_engine_parallel(e, j.ncop * j.n * j.ng, conv_task, &j);
  return atomic_load(&j.failed) ? DG_STATUS_ERR_NOMEM : DG_STATUS_OK;
}
