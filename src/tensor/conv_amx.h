/* Internal: 3x3 stride-1 pad-1 convolution for the bf16 precision on AMX,
 * without im2col: the input is converted once to bf16 channel pairs on a
 * zero-padded grid and every filter tap reads it as a shifted B operand
 * (conv_amx_avx512.c).  Same numerics as the bf16 GEMM path (operands rounded
 * to bf16, f32 accumulation); the accumulation order differs.  Results are
 * bit-identical for any thread count. */
#ifndef DG_TENSOR_CONV_AMX_H
#define DG_TENSOR_CONV_AMX_H

#include "tensor/tensor.h"

/* Whether dg__conv2d_amx takes this convolution: bf16 precision on AVX-512
 * with AMX-BF16 granted by the OS, a 3x3 filter, stride 1, padding 1, F32
 * input, >= 16 input channels. */
int dg__conv_amx_usable(const dg_engine *e, const dg_tensor *x, const dg_tensor *w, int stride, int pad);

/* y (N, Co, H, W) = conv3x3(x (N, Ci, H, W), w (Co, Ci, 3, 3), pad 1) + b (Co).
 * w and b F32, F16 or BF16.  ERR_NOMEM when a workspace cannot be allocated. */
dg_status dg__conv2d_amx(dg_engine *e, dg_tensor *y, const dg_tensor *x, const dg_tensor *w, const dg_tensor *b);

/* Tests: force the input layout (0 = by width, 1 = planes, 2 = rows; see
 * conv_amx_avx512.c).  Not thread-safe. */
void dg__conv_amx_set_layout(int mode);

#endif
