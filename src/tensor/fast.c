/* Fast paths of the GEMM-class ops: each op is expressed as one packed GEMM
 * (gemm.h) run with the micro-kernel of the engine's ISA and precision.
 * ops.c has already checked shapes and dtypes. */
#include "tensor/gemm.h"
#include "tensor/kernels.h"
#include "tensor/attn.h"
#include "tensor/conv_amx.h"
#include "tensor/winograd.h"

static const dg__ukernel *kernel_of(const dg_engine *e) {
  return dg__ukernel_for(dg_engine_isa(e), dg_engine_precision(e));
}

/* conv2d as implicit GEMM per call:
 *   y (N, Co, Ho*Wo) = w (Co, Ci*kh*kw) . im2col(x) (Ci*kh*kw, N*Ho*Wo)
 * The im2col operand is only ever materialised one packed kc x NR panel at a
 * time, in per-thread scratch. */
dg_status dg__conv2d_fast(dg_engine *e, dg_tensor *y, const dg_tensor *x, const dg_tensor *w,
                          const dg_tensor *b, int stride, int pad) {
  int wm = dg__winograd_choose(e, x, w, stride);
  if (wm) return dg__conv2d_winograd(e, y, x, w, b, pad, wm);
  if (dg__conv_amx_usable(e, x, w, stride, pad)) return dg__conv2d_amx(e, y, x, w, b);
  dg__conv_geom cg;
  cg.n = x->shape[0];
  cg.ci = x->shape[1];
  cg.h = x->shape[2];
  cg.w = x->shape[3];
  cg.ho = y->shape[2];
  cg.wo = y->shape[3];
  cg.kh = (int)w->shape[2];
  cg.kw = (int)w->shape[3];
  cg.stride = stride;
  cg.pad = pad;
  if (cg.kh == 1 && cg.kw == 1 && stride == 1 && pad == 0) { /* pointwise: one flat row per plane */
    cg.w = cg.wo = cg.h * cg.w;
    cg.h = cg.ho = 1;
  }
  int64_t co = w->shape[0], P = y->shape[2] * y->shape[3];
  dg__gemm g = {0};
  g.m = co;
  g.n = cg.n * P;
  g.k = cg.ci * cg.kh * cg.kw;
  g.a = (dg__opnd){DG__OPND_IK, w->dtype, w->data, g.k, 1.0f, NULL};
  g.b = (dg__opnd){DG__OPND_IM2COL, DG_DTYPE_F32, x->data, 0, 1.0f, &cg};
  g.c = y->data;
  g.ldc = P;
  g.jdiv = P;
  g.cimg = co * P;
  if (b) {
    g.row_bias = b->data;
    g.bias_dtype = b->dtype;
  }
  return dg__gemm_run(e, kernel_of(e), &g);
}

/* linear: y (M, N) = x (M, K) . w (N, K)^T + b (N). */
dg_status dg__linear_fast(dg_engine *e, dg_tensor *y, const dg_tensor *x, const dg_tensor *w,
                          const dg_tensor *b) {
  int64_t k = x->shape[x->ndim - 1], n = w->shape[0];
  dg__gemm g = {0};
  g.m = dg_tensor_numel(y) / (n > 0 ? n : 1); /* rows of y (also right when K = 0) */
  g.n = n;
  g.k = k;
  g.a = (dg__opnd){DG__OPND_IK, DG_DTYPE_F32, x->data, k, 1.0f, NULL};
  g.b = (dg__opnd){DG__OPND_IK, w->dtype, w->data, k, 1.0f, NULL};
  g.c = y->data;
  g.ldc = n;
  g.jdiv = n;
  g.cimg = 0;
  if (b) {
    g.col_bias = b->data;
    g.bias_dtype = b->dtype;
  }
  return dg__gemm_run(e, kernel_of(e), &g);
}

/* matmul: y_b (M, N) = alpha * a_b (M, K) . b_b (K, N) (or b_b (N, K)^T). */
dg_status dg__matmul_fast(dg_engine *e, dg_tensor *y, const dg_tensor *a, const dg_tensor *b,
                          int transpose_b, float alpha) {
  int64_t m = a->shape[a->ndim - 2], k = a->shape[a->ndim - 1];
  int64_t n = transpose_b ? b->shape[b->ndim - 2] : b->shape[b->ndim - 1];
  int64_t batch = (m * k) > 0 ? dg_tensor_numel(a) / (m * k) : 0;
  if (batch == 0) batch = dg_tensor_numel(y) / (m * n > 0 ? m * n : 1);
  const dg__ukernel *uk = kernel_of(e);
  for (int64_t i = 0; i < batch; i++) {
    dg__gemm g = {0};
    g.m = m;
    g.n = n;
    g.k = k;
    g.a = (dg__opnd){DG__OPND_IK, DG_DTYPE_F32, (const float *)a->data + i * m * k, k, alpha, NULL};
    g.b = (dg__opnd){transpose_b ? DG__OPND_IK : DG__OPND_KI, DG_DTYPE_F32,
                     (const float *)b->data + i * k * n, transpose_b ? k : n, 1.0f, NULL};
    g.c = (float *)y->data + i * m * n;
    g.ldc = n;
    g.jdiv = n;
    dg_status st = dg__gemm_run(e, uk, &g);
    if (st != DG_STATUS_OK) return st;
  }
  return DG_STATUS_OK;
}

dg_status dg__attention_fast(dg_engine *e, dg_tensor *y, const dg_tensor *q, const dg_tensor *k,
                             const dg_tensor *v, int n_heads, int causal, float scale) {
  return dg__attention_flash(e, y, q, k, v, n_heads, causal, scale);
}
