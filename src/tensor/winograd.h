/* Internal: 3x3 stride-1 convolution by Winograd's minimal filtering,
 * F(m x m, 3 x 3) with m = 2 (4 x 4 tiles) or m = 4 (6 x 6 tiles).
 *
 * With a = m + 2, every output tile of m x m pixels is
 *   Y = A^T [ sum_ci (G g G^T) (.) (B^T d B) ] A
 * for the a x a input patch d and the 3 x 3 filter g of each (co, ci):
 * a^2 independent GEMMs of (Co x Ci) . (Ci x tiles) instead of one of
 * (Co x 9 Ci) . (9 Ci x pixels), i.e. a^2 / m^2 multiplies per output and
 * channel pair instead of 9 (2.25x fewer for m = 2, 4x for m = 4).
 *
 * Layout (f32, the GEMM micro-kernel's packed panels, so nothing is packed
 * twice):
 *   U[xi][co panel][ci][r]     = (G g G^T)[xi] of filter (co panel * MR + r, ci)
 *   V[xi][tile panel][ci][j]   = (B^T d B)[xi] of tile (panel * NR + j), channel ci
 *   M[xi][co][j]               = sum_ci U . V  (micro-kernel output, row stride ldm)
 * The tiles are processed in blocks (bounded V and M), the output channels in
 * chunks (bounded U); the transforms run in parallel over channels, the
 * products over (xi, tile panel) pairs.  When all tiles fit one block, the
 * inputs are transformed once for every output-channel chunk.  Every sum has
 * a fixed order, so results are bit-identical for any thread count.  The
 * AVX-512 and AVX2 filter transforms work on 16 / 8 output channels per
 * vector (f16 weights converted by vcvtph2ps); the portable one is plain C.
 *
 * Numerics: m = 2 only adds and halves, close to the direct convolution;
 * m = 4 scales by up to 5 and 1/24, a few times the direct rounding error
 * (both measured in tests/test_winograd.c). */
#ifndef DG_TENSOR_WINOGRAD_H
#define DG_TENSOR_WINOGRAD_H

#include "tensor/tensor.h"

/* Which m to use for this convolution (0 = use the direct convolution), from
 * the shapes (f32, 3x3 stride 1, >= 32 channels in and out, planes of 24 x 24
 * and larger: F(4); on AVX-512 / AVX2 also smaller planes with enough tiles,
 * e.g. 16 x 16 at batch 2) and DG_WINOGRAD (0 = off, 2 or 4 = force m). */
int dg__winograd_choose(const dg_engine *e, const dg_tensor *x, const dg_tensor *w, int stride);

/* y (N, Co, Ho, Wo) = conv3x3(x (N, Ci, H, W), w (Co, Ci, 3, 3)) + b, stride 1,
 * padding pad; m = 2 or 4.  w and b are F32, F16 or BF16; x, y F32.
 * ERR_NOMEM when the workspaces cannot be allocated, ERR_INVALID for Ci = 0
 * (dg__winograd_choose never picks it then). */
dg_status dg__conv2d_winograd(dg_engine *e, dg_tensor *y, const dg_tensor *x, const dg_tensor *w,
                              const dg_tensor *b, int pad, int m);

/* Tests: shrink the workspace budgets (bytes; 0 = default) to exercise the
 * chunked and blocked paths on small shapes.  Not thread-safe. */
void dg__winograd_set_budgets(size_t block_bytes, size_t u_bytes);

#endif
