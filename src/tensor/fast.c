/* Fast paths of the GEMM-class ops.  Placeholder: forwards to the reference
 * kernels until the blocked/SIMD kernels replace it. */
#include "tensor/kernels.h"

dg_status dg__conv2d_fast(dg_engine *e, dg_tensor *y, const dg_tensor *x, const dg_tensor *w,
                          const dg_tensor *b, int stride, int pad) {
  return dg__conv2d_ref(e, y, x, w, b, stride, pad);
}
dg_status dg__linear_fast(dg_engine *e, dg_tensor *y, const dg_tensor *x, const dg_tensor *w,
                          const dg_tensor *b) {
  return dg__linear_ref(e, y, x, w, b);
}
dg_status dg__matmul_fast(dg_engine *e, dg_tensor *y, const dg_tensor *a, const dg_tensor *b,
                          int transpose_b, float alpha) {
  return dg__matmul_ref(e, y, a, b, transpose_b, alpha);
}
dg_status dg__attention_fast(dg_engine *e, dg_tensor *y, const dg_tensor *q, const dg_tensor *k,
                             const dg_tensor *v, int n_heads, int causal, float scale) {
  return dg__attention_ref(e, y, q, k, v, n_heads, causal, scale);
}
