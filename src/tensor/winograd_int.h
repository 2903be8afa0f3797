/* Internal to the Winograd convolution: the state shared by the driver
 * (winograd.c) and the transform tasks, which are compiled once per ISA
 * from winograd_body.h (winograd.c: portable C, winograd_avx2.c,
 * winograd_avx512.c: the same C vectorised by the compiler for that ISA). */
#ifndef DG_TENSOR_WINOGRAD_INT_H
#define DG_TENSOR_WINOGRAD_INT_H

#include "tensor/gemm.h"
#include "tensor/tensor.h"

typedef struct dg__wg {
  dg_engine *e;
  const dg__ukernel *uk;
  int m, a, a2, mr, nr;
  int64_t n, ci, h, w, co, ho, wo, pad;
  int64_t th, tw, tiles;       /* tiles per column / row of an image, in all */
  const float *x;
  float *y;
  const dg_tensor *wt, *bias;
  int64_t cc, ncop, co0, ncv;  /* chunk size (multiple of mr), its panels, start, valid channels */
  int64_t tb, np, t0, nt;      /* block size (multiple of nr), its panels, start, valid tiles */
  int64_t ldm, kcb;
  float *U, *V, *M;
  int failed;                  /* a task could not get its scratch */
} dg__wg;

/* The three transforms, as dg_engine_parallel tasks over (arg = dg__wg *):
 * filters (range: panels of the chunk), inputs (range: input channels),
 * outputs (range: output channels of the chunk). */
typedef struct dg__wg_kernels {
  void (*filters)(void *arg, int64_t begin, int64_t end, int ti);
  void (*inputs)(void *arg, int64_t begin, int64_t end, int ti);
  void (*outputs)(void *arg, int64_t begin, int64_t end, int ti);
} dg__wg_kernels;

extern const dg__wg_kernels dg__wg_generic;
const dg__wg_kernels *dg__wg_avx2(void);   /* NULL when not built */
const dg__wg_kernels *dg__wg_avx512(void); /* NULL when not built */

#endif
