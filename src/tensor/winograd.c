/* Winograd F(m x m, 3 x 3) convolution on the f32 GEMM micro-kernels (see
 * winograd.h for the algorithm and the layouts). */
#include "tensor/winograd.h"

#include <stdlib.h>
#include <string.h>

#include "tensor/gemm.h"
#include "tensor/kernels.h"
#include "tensor/winograd_int.h"

#define WG_TABLE dg__wg_generic
#include "tensor/winograd_body.h"

/* Workspace budgets: transformed inputs + products of one tile block, and the
 * transformed weights of one chunk of output channels. */
#define WG_BLOCK_BYTES ((size_t)12 << 20)
#define WG_U_BYTES ((size_t)32 << 20)
static size_t block_budget = WG_BLOCK_BYTES, u_budget = WG_U_BYTES;

void dg__winograd_set_budgets(size_t block_bytes, size_t u_bytes) {
  block_budget = block_bytes ? block_bytes : WG_BLOCK_BYTES;
  u_budget = u_bytes ? u_bytes : WG_U_BYTES;
}
#define WG_KMAX 512    /* longest K block of one micro-kernel call */

typedef dg__wg wg;

/* ---- Products: M[xi] = U[xi] . V[xi] ------------------------------------------ */

/* Units [u0, u1): unit = (xi, tile panel). */
static void m_task(void *arg, int64_t u0, int64_t u1, int ti) {
  (void)ti;
  wg *g = arg;
  const dg__ukernel *uk = g->uk;
  const int64_t mr = g->mr, nr = g->nr;
  if (uk->thread_begin) uk->thread_begin();
  for (int64_t u = u0; u < u1; u++) {
    int64_t xi = u / g->np, p = u % g->np;
    for (int64_t k0 = 0; k0 < g->ci; k0 += g->kcb) {
      int64_t kc = g->ci - k0 < g->kcb ? g->ci - k0 : g->kcb;
      const float *vb = g->V + ((xi * g->np + p) * g->ci + k0) * nr;
      for (int64_t cp = 0; cp < g->ncop; cp++) {
        const float *ua = g->U + ((xi * g->ncop + cp) * g->ci + k0) * mr;
        float *c = g->M + (xi * g->cc + cp * mr) * g->ldm + p * nr;
        uk->fn(kc, ua, vb, c, g->ldm, k0 > 0, NULL, NULL);
      }
    }
  }
  if (uk->thread_end) uk->thread_end();
}

/* ---- Driver ------------------------------------------------------------------- */

int dg__winograd_choose(const dg_engine *e, const dg_tensor *x, const dg_tensor *w, int stride) {
  if (dg_engine_precision(e) != DG_PRECISION_F32) return 0;
  if (w->ndim != 4 || w->shape[2] != 3 || w->shape[3] != 3 || stride != 1) return 0;
  if (x->dtype != DG_DTYPE_F32) return 0;
  const char *env = getenv("DG_WINOGRAD");
  int force = 0;
  if (env && *env) {
    force = atoi(env);
    if (force == 0) return 0;
    if (force != 2 && force != 4) force = 0;
  }
  int64_t ci = w->shape[1], co = w->shape[0], h = x->shape[2], wd = x->shape[3];
  if (ci == 0) return 0;
  if (force) return h >= 2 && wd >= 2 ? force : 0;
  if (ci < 32 || co < 32) return 0; /* the tiny channel counts of the first / last layers */
  /* Measured on the UNet and VAE shapes (bench/bench_winograd.c, bench/RESULTS.md
   * "Winograd"): F(4) takes 0.45-0.75x the direct convolution's time from
   * 32 x 32 planes up and beats F(2) there (it moves 2.25 transformed values
   * per output through memory against F(2)'s 4). */
  if (h * wd >= 24 * 24) return 4;
  /* Smaller planes: the filter transform (~a^2 values per (co, ci) pair,
   * whatever the number of tiles) and the tiles padded to the kernel's NR
   * weigh more.  Per (co, ci) pair the direct convolution costs ~9 N H W
   * multiply-adds and F(4) ~36 tiles (padded to NR) plus ~1700 equivalents
   * for the transforms (measured at 16 x 16, batch 2: 0.4-0.7x the direct
   * time on AVX-512 and AVX2; 8 x 8 batch 2 loses).  The portable filter
   * transform is scalar: direct below 24 x 24 there. */
  dg_isa isa = dg_engine_isa(e);
  if (!((isa == DG_ISA_AVX512 && dg__wg_avx512()) || ((isa == DG_ISA_AVX512 || isa == DG_ISA_AVX2) && dg__wg_avx2())))
    return 0;
  int64_t nr = dg__ukernel_for(isa, DG_PRECISION_F32)->nr;
  int64_t n = x->shape[0], tiles = n * ((h + 3) / 4) * ((wd + 3) / 4);
  int64_t direct = 9 * n * h * wd, wino = 36 * ((tiles + nr - 1) / nr * nr) + 1700;
  return 5 * wino < 4 * direct ? 4 : 0;
}

dg_status dg__conv2d_winograd(dg_engine *e, dg_tensor *y, const dg_tensor *x, const dg_tensor *w,
                              const dg_tensor *b, int pad, int m) {
  wg g;
  memset(&g, 0, sizeof g);
  g.e = e;
  g.uk = dg__ukernel_for(dg_engine_isa(e), DG_PRECISION_F32);
  const dg__wg_kernels *k = &dg__wg_generic;
  if (dg_engine_isa(e) == DG_ISA_AVX512 && dg__wg_avx512()) k = dg__wg_avx512();
  else if ((dg_engine_isa(e) == DG_ISA_AVX512 || dg_engine_isa(e) == DG_ISA_AVX2) && dg__wg_avx2()) k = dg__wg_avx2();
  if (g.uk->bf16 || (m != 2 && m != 4) || w->shape[1] == 0) return DG_STATUS_ERR_INVALID; /* Ci = 0: direct */
  g.m = m;
  g.a = m + 2;
  g.a2 = g.a * g.a;
  g.mr = g.uk->mr;
  g.nr = g.uk->nr;
  g.n = x->shape[0];
  g.ci = x->shape[1];
  g.h = x->shape[2];
  g.w = x->shape[3];
  g.co = w->shape[0];
  g.ho = y->shape[2];
  g.wo = y->shape[3];
  g.pad = pad;
  g.th = (g.ho + m - 1) / m;
  g.tw = (g.wo + m - 1) / m;
  g.tiles = g.n * g.th * g.tw;
  g.x = x->data;
  g.y = y->data;
  g.wt = w;
  g.bias = b;
  if (g.tiles == 0 || g.co == 0) return DG_STATUS_OK;
  /* output-channel chunk: its transformed filters within WG_U_BYTES */
  int64_t co_pad = (g.co + g.mr - 1) / g.mr * g.mr;
  int64_t cc = (int64_t)(u_budget / ((size_t)g.a2 * (size_t)g.ci * sizeof(float))) / g.mr * g.mr;
  if (cc < g.mr) cc = g.mr;
  if (cc > co_pad) cc = co_pad;
  int64_t nchunks = (co_pad + cc - 1) / cc; /* then even chunks */
  cc = ((co_pad + nchunks - 1) / nchunks + g.mr - 1) / g.mr * g.mr;
  g.cc = cc;
  /* tile block: its V and M within WG_BLOCK_BYTES */
  int64_t tiles_pad = (g.tiles + g.nr - 1) / g.nr * g.nr;
  int64_t tb = (int64_t)(block_budget / ((size_t)g.a2 * (size_t)(g.ci + cc) * sizeof(float))) / g.nr * g.nr;
  if (tb < g.nr) tb = g.nr;
  if (tb > tiles_pad) tb = tiles_pad;
  int64_t nblocks = (tiles_pad + tb - 1) / tb;
  tb = ((tiles_pad + nblocks - 1) / nblocks + g.nr - 1) / g.nr * g.nr;
  g.tb = tb;
  g.ldm = tb + 16; /* rows of M not 4 KiB apart */
  int64_t nkb = (g.ci + WG_KMAX - 1) / WG_KMAX;
  g.kcb = (g.ci + nkb - 1) / nkb;

  size_t ubytes = (size_t)g.a2 * (size_t)cc * (size_t)g.ci * sizeof(float);
  size_t vbytes = (size_t)g.a2 * (size_t)tb * (size_t)g.ci * sizeof(float);
  size_t mbytes = (size_t)g.a2 * (size_t)cc * (size_t)g.ldm * sizeof(float);
  g.U = dg__engine_workspace(e, 0, ubytes);
  g.V = dg__engine_workspace(e, 1, vbytes);
  g.M = dg__engine_workspace(e, 2, mbytes);
  if (!g.U || !g.V || !g.M) return DG_STATUS_ERR_NOMEM;

  /* one tile block: its transformed inputs serve every output-channel chunk */
  int one_block = tb >= tiles_pad;
  if (one_block) {
    g.t0 = 0;
    g.nt = g.tiles;
    g.np = (g.nt + g.nr - 1) / g.nr;
    dg_engine_parallel(e, g.ci, k->inputs, &g);
    if (g.failed) return DG_STATUS_ERR_NOMEM;
  }
  for (g.co0 = 0; g.co0 < g.co; g.co0 += cc) {
    g.ncv = g.co - g.co0 < cc ? g.co - g.co0 : cc;
    g.ncop = (g.ncv + g.mr - 1) / g.mr;
    dg_engine_parallel(e, g.ncop, k->filters, &g);
    if (g.failed) return DG_STATUS_ERR_NOMEM;
    for (g.t0 = 0; g.t0 < g.tiles; g.t0 += tb) {
      g.nt = g.tiles - g.t0 < tb ? g.tiles - g.t0 : tb;
      g.np = (g.nt + g.nr - 1) / g.nr;
      if (!one_block) dg_engine_parallel(e, g.ci, k->inputs, &g);
      if (g.failed) return DG_STATUS_ERR_NOMEM;
      dg_engine_parallel(e, (int64_t)g.a2 * g.np, m_task, &g);
      dg_engine_parallel(e, g.ncv, k->outputs, &g);
    }
  }
  return DG_STATUS_OK;
}
