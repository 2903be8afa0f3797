/* The operations diffusion models are built from, with the exact semantics of
 * their PyTorch counterparts.
 *
 * Conventions for every op:
 * - The engine comes first, the output tensor second; the output is allocated
 *   by the caller (usually in an arena) with the right shape and dtype F32.
 * - Activations (x, q, k, v, ...) are F32 and contiguous.  Weights and biases
 *   (w, b, gamma, beta, table) may be F32, F16 or BF16 and are read as stored.
 * - Optional tensors may be NULL.  Shapes and dtypes are checked: a mismatch is
 *   DG_STATUS_ERR_SHAPE (or ERR_INVALID), never a crash.  Ops never allocate
 *   on the heap in their hot path beyond per-thread scratch owned by the engine.
 * - Unless stated, y may not alias an input; element-wise ops allow y == x.
 * - Every op has a plain reference kernel (DG_ISA_REF) beside its fast path.
 */
#ifndef DG_TENSOR_OPS_H
#define DG_TENSOR_OPS_H

#include "tensor/tensor.h"

/* torch.nn.functional.conv2d, groups=1, dilation=1, zero padding.
 * x (N, Ci, H, W); w (Co, Ci, kh, kw); b (Co); y (N, Co, Ho, Wo) with
 * Ho = (H + 2*pad - kh)/stride + 1. */
dg_status dg_conv2d(dg_engine *e, dg_tensor *y, const dg_tensor *x, const dg_tensor *w,
                    const dg_tensor *b, int stride, int pad);

/* torch.nn.functional.linear: y = x w^T + b.
 * x (..., K) (all leading dims are rows); w (N, K) or (N, K, 1, 1); b (N); y (..., N). */
dg_status dg_linear(dg_engine *e, dg_tensor *y, const dg_tensor *x, const dg_tensor *w,
                    const dg_tensor *b);

/* Batched matmul, alpha * a @ b (or a @ b^T when transpose_b).
 * a (B, M, K); b (B, K, N), or (B, N, K) when transpose_b; y (B, M, N).
 * 2-D tensors are treated as B = 1.  All F32. */
dg_status dg_matmul(dg_engine *e, dg_tensor *y, const dg_tensor *a, const dg_tensor *b,
                    int transpose_b, float alpha);

/* Multi-head scaled-dot-product attention (torch SDPA on heads split out of C):
 * q (B, Lq, H*D), k (B, Lk, H*D), v (B, Lk, H*D) -> y (B, Lq, H*D),
 * y_h = softmax(q_h k_h^T * scale [+ causal mask]) v_h; scale <= 0 means 1/sqrt(D).
 * Never materialises the whole (Lq, Lk) score matrix for large L. */
dg_status dg_attention(dg_engine *e, dg_tensor *y, const dg_tensor *q, const dg_tensor *k,
                       const dg_tensor *v, int n_heads, int causal, float scale);

/* torch.nn.GroupNorm over x (N, C, ...) with affine gamma/beta (C) (nullable),
 * optionally followed by SiLU (fused). */
dg_status dg_group_norm(dg_engine *e, dg_tensor *y, const dg_tensor *x, int n_groups, float eps,
                        const dg_tensor *gamma, const dg_tensor *beta, int silu);

/* torch.nn.LayerNorm over the last dimension; gamma/beta (C) nullable. */
dg_status dg_layer_norm(dg_engine *e, dg_tensor *y, const dg_tensor *x, float eps,
                        const dg_tensor *gamma, const dg_tensor *beta);

/* Softmax over the last dimension. y may equal x. */
dg_status dg_softmax(dg_engine *e, dg_tensor *y, const dg_tensor *x);

/* Element-wise activations. y may equal x. */
dg_status dg_silu(dg_engine *e, dg_tensor *y, const dg_tensor *x);
dg_status dg_gelu(dg_engine *e, dg_tensor *y, const dg_tensor *x);       /* erf form */
dg_status dg_quick_gelu(dg_engine *e, dg_tensor *y, const dg_tensor *x); /* x*sigmoid(1.702x) */

/* GEGLU as in diffusers: x (..., 2N) -> y (..., N) = x[..., :N] * gelu(x[..., N:]). */
dg_status dg_geglu(dg_engine *e, dg_tensor *y, const dg_tensor *x);

/* Nearest-neighbour 2x upsampling: x (N, C, H, W) -> y (N, C, 2H, 2W). */
dg_status dg_upsample_nearest2x(dg_engine *e, dg_tensor *y, const dg_tensor *x);

/* y = a + b, y = a * b.  b has a's shape, or is broadcast when its shape is a's
 * with leading dims and/or trailing dims equal to 1 (e.g. (N, C, 1, 1) against
 * (N, C, H, W), or (C) against (..., C)).  y may equal a. */
dg_status dg_add(dg_engine *e, dg_tensor *y, const dg_tensor *a, const dg_tensor *b);
dg_status dg_mul(dg_engine *e, dg_tensor *y, const dg_tensor *a, const dg_tensor *b);
/* y = alpha * x + beta (scalars). y may equal x. */
dg_status dg_scale(dg_engine *e, dg_tensor *y, const dg_tensor *x, float alpha, float beta);

/* Concatenate along dimension dim (torch.cat). */
dg_status dg_concat(dg_engine *e, dg_tensor *y, const dg_tensor *a, const dg_tensor *b, int dim);
/* y = x.narrow(dim, start, y.shape[dim]) made contiguous. */
dg_status dg_slice(dg_engine *e, dg_tensor *y, const dg_tensor *x, int dim, int64_t start);

/* (N, C, H, W) -> (N, H*W, C) and back: the token layout of transformer blocks. */
dg_status dg_nchw_to_nlc(dg_engine *e, dg_tensor *y, const dg_tensor *x);
dg_status dg_nlc_to_nchw(dg_engine *e, dg_tensor *y, const dg_tensor *x); /* y shape gives H, W */

/* Sinusoidal timestep embedding as diffusers get_timestep_embedding:
 * t (N) F32 -> y (N, dim); exponent = -ln(max_period) * i / (half - freq_shift),
 * emb = [sin, cos] (or [cos, sin] with flip_sin_to_cos); odd dim zero-padded. */
dg_status dg_timestep_embedding(dg_engine *e, dg_tensor *y, const dg_tensor *t,
                                int flip_sin_to_cos, float freq_shift, float max_period);

/* Row gather: ids (N) or (B, L) of I64/I32 -> y (..., C) = table[id]; table (V, C)
 * of any float dtype.  An id outside [0, V) is ERR_INVALID. */
dg_status dg_embedding(dg_engine *e, dg_tensor *y, const dg_tensor *ids, const dg_tensor *table);

/* Convert between float dtypes (F32/F16/BF16), same shape. */
dg_status dg_convert(dg_engine *e, dg_tensor *y, const dg_tensor *x);

#endif
