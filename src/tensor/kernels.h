/* Internal: the fast paths of the GEMM-class ops.  ops.c checks shapes and
 * dtypes, then calls dg__<op>_ref when the engine's ISA is DG_ISA_REF and
 * dg__<op>_fast otherwise.  The fast versions pick their AVX-512 / AVX2 /
 * generic implementation from dg_engine_isa() and dg_engine_precision(). */
#ifndef DG_TENSOR_KERNELS_H
#define DG_TENSOR_KERNELS_H

#include "tensor/tensor.h"

dg_status dg__conv2d_ref(dg_engine *e, dg_tensor *y, const dg_tensor *x, const dg_tensor *w,
                         const dg_tensor *b, int stride, int pad);
dg_status dg__linear_ref(dg_engine *e, dg_tensor *y, const dg_tensor *x, const dg_tensor *w,
                         const dg_tensor *b);
dg_status dg__matmul_ref(dg_engine *e, dg_tensor *y, const dg_tensor *a, const dg_tensor *b,
                         int transpose_b, float alpha);
dg_status dg__attention_ref(dg_engine *e, dg_tensor *y, const dg_tensor *q, const dg_tensor *k,
                            const dg_tensor *v, int n_heads, int causal, float scale);

dg_status dg__conv2d_fast(dg_engine *e, dg_tensor *y, const dg_tensor *x, const dg_tensor *w,
                          const dg_tensor *b, int stride, int pad);
dg_status dg__linear_fast(dg_engine *e, dg_tensor *y, const dg_tensor *x, const dg_tensor *w,
                          const dg_tensor *b);
dg_status dg__matmul_fast(dg_engine *e, dg_tensor *y, const dg_tensor *a, const dg_tensor *b,
                          int transpose_b, float alpha);
dg_status dg__attention_fast(dg_engine *e, dg_tensor *y, const dg_tensor *q, const dg_tensor *k,
                             const dg_tensor *v, int n_heads, int causal, float scale);

/* Per-thread scratch owned by the engine (grown on demand, freed with it). NULL on OOM. */
void *dg__engine_scratch(dg_engine *e, int thread_index, size_t bytes);

/* Engine-wide workspaces for one op at a time (not per thread: an op's
 * parallel tasks share them), e.g. the transformed operands of a Winograd
 * convolution.  Slot < DG__ENGINE_WORKSPACES; grown on demand, 64-byte
 * aligned, freed with the engine; NULL on OOM.  Contents are not kept. */
#define DG__ENGINE_WORKSPACES 4
void *dg__engine_workspace(dg_engine *e, int slot, size_t bytes);

/* Op profile (engine.c): start returns a time stamp (0 when profiling is off),
 * add records the op's wall time since t0 under key, with its flop count. */
double dg__prof_start(const dg_engine *e);
void dg__prof_add(dg_engine *e, const char *key, double t0, double flop);

#endif
