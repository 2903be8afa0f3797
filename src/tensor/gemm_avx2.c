/* AVX2 + FMA GEMM micro-kernel: f32 6 x 16 (12 ymm accumulators). */
#include <immintrin.h>

#include "tensor/gemm.h"

#define MR 6

static void uk_f32(int64_t kc, const void *av, const void *bv, float *c, int64_t ldc, int acc,
                   const float *row_bias, const float *col_bias) {
  const float *a = av, *b = bv;
  __m256 c0[MR], c1[MR];
#pragma GCC unroll 6
  for (int r = 0; r < MR; r++) c0[r] = c1[r] = _mm256_setzero_ps();
  for (int64_t k = 0; k < kc; k++) {
    __m256 b0 = _mm256_load_ps(b), b1 = _mm256_load_ps(b + 8);
#pragma GCC unroll 6
    for (int r = 0; r < MR; r++) {
      __m256 ar = _mm256_broadcast_ss(a + r);
      c0[r] = _mm256_fmadd_ps(ar, b0, c0[r]);
      c1[r] = _mm256_fmadd_ps(ar, b1, c1[r]);
    }
    a += MR;
    b += 16;
  }
  if (acc) {
#pragma GCC unroll 6
    for (int r = 0; r < MR; r++) {
      float *cr = c + r * ldc;
      _mm256_storeu_ps(cr, _mm256_add_ps(_mm256_loadu_ps(cr), c0[r]));
      _mm256_storeu_ps(cr + 8, _mm256_add_ps(_mm256_loadu_ps(cr + 8), c1[r]));
    }
  } else {
    __m256 cb0 = _mm256_setzero_ps(), cb1 = _mm256_setzero_ps();
    if (col_bias) {
      cb0 = _mm256_loadu_ps(col_bias);
      cb1 = _mm256_loadu_ps(col_bias + 8);
    }
#pragma GCC unroll 6
    for (int r = 0; r < MR; r++) {
      float *cr = c + r * ldc;
      __m256 rb = _mm256_set1_ps(row_bias ? row_bias[r] : 0.0f);
      _mm256_storeu_ps(cr, _mm256_add_ps(c0[r], _mm256_add_ps(cb0, rb)));
      _mm256_storeu_ps(cr + 8, _mm256_add_ps(c1[r], _mm256_add_ps(cb1, rb)));
    }
  }
}

static const dg__ukernel k_f32 = {.mr = MR, .nr = 16, .bf16 = 0, .kalign = 1, .fn = uk_f32, .name = "avx2-6x16-f32"};

const dg__ukernel *dg__ukernel_avx2(void) { return &k_f32; }
