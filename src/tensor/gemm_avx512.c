/* AVX-512 GEMM micro-kernels: f32 14 x 32 (28 zmm accumulators, FMA against
 * two B vectors per broadcast A value) and bf16 14 x 32 (vdpbf16ps on pairs
 * of k, f32 accumulation).  See gemm.h for the panel layouts. */
#include <immintrin.h>
#include <string.h>

#include "tensor/gemm.h"

#define MR 14

/* Epilogue shared by both kernels: c (MR x 32) = tile [+ bias] or += tile. */
#define STORE_TILE()                                                                   \
  do {                                                                                 \
    if (acc) {                                                                         \
      _Pragma("GCC unroll 14") for (int r = 0; r < MR; r++) {                          \
        float *cr = c + r * ldc;                                                       \
        _mm512_storeu_ps(cr, _mm512_add_ps(_mm512_loadu_ps(cr), c0[r]));               \
        _mm512_storeu_ps(cr + 16, _mm512_add_ps(_mm512_loadu_ps(cr + 16), c1[r]));     \
      }                                                                                \
    } else {                                                                           \
      __m512 cb0 = _mm512_setzero_ps(), cb1 = _mm512_setzero_ps();                     \
      if (col_bias) {                                                                  \
        cb0 = _mm512_loadu_ps(col_bias);                                               \
        cb1 = _mm512_loadu_ps(col_bias + 16);                                          \
      }                                                                                \
      _Pragma("GCC unroll 14") for (int r = 0; r < MR; r++) {                          \
        float *cr = c + r * ldc;                                                       \
        __m512 rb = _mm512_set1_ps(row_bias ? row_bias[r] : 0.0f);                     \
        _mm512_storeu_ps(cr, _mm512_add_ps(c0[r], _mm512_add_ps(cb0, rb)));            \
        _mm512_storeu_ps(cr + 16, _mm512_add_ps(c1[r], _mm512_add_ps(cb1, rb)));       \
      }                                                                                \
    }                                                                                  \
  } while (0)

static void uk_f32(int64_t kc, const void *av, const void *bv, float *c, int64_t ldc, int acc,
                   const float *row_bias, const float *col_bias) {
  const float *a = av, *b = bv;
  __m512 c0[MR], c1[MR];
#pragma GCC unroll 14
  for (int r = 0; r < MR; r++) c0[r] = c1[r] = _mm512_setzero_ps();
  for (int64_t k = 0; k < kc; k++) {
    __m512 b0 = _mm512_load_ps(b), b1 = _mm512_load_ps(b + 16);
    _mm_prefetch((const char *)(b + 512), _MM_HINT_T0);
#pragma GCC unroll 14
    for (int r = 0; r < MR; r++) {
      __m512 ar = _mm512_set1_ps(a[r]);
      c0[r] = _mm512_fmadd_ps(ar, b0, c0[r]);
      c1[r] = _mm512_fmadd_ps(ar, b1, c1[r]);
    }
    a += MR;
    b += 32;
  }
  STORE_TILE();
}

static void uk_bf16(int64_t kc, const void *av, const void *bv, float *c, int64_t ldc, int acc,
                    const float *row_bias, const float *col_bias) {
  const uint16_t *a = av, *b = bv;
  __m512 c0[MR], c1[MR];
#pragma GCC unroll 14
  for (int r = 0; r < MR; r++) c0[r] = c1[r] = _mm512_setzero_ps();
  for (int64_t k = 0; k < kc; k++) {
    __m512bh b0 = (__m512bh)_mm512_load_si512((const void *)b);
    __m512bh b1 = (__m512bh)_mm512_load_si512((const void *)(b + 32));
    _mm_prefetch((const char *)(b + 1024), _MM_HINT_T0);
#pragma GCC unroll 14
    for (int r = 0; r < MR; r++) {
      int32_t pr;
      memcpy(&pr, a + 2 * r, sizeof pr);
      __m512bh ar = (__m512bh)_mm512_set1_epi32(pr);
      c0[r] = _mm512_dpbf16_ps(c0[r], ar, b0);
      c1[r] = _mm512_dpbf16_ps(c1[r], ar, b1);
    }
    a += 2 * MR;
    b += 64;
  }
  STORE_TILE();
}

static const dg__ukernel k_f32 = {MR, 32, 0, uk_f32, "avx512-14x32-f32"};
static const dg__ukernel k_bf16 = {MR, 32, 1, uk_bf16, "avx512bf16-14x32-bf16"};

const dg__ukernel *dg__ukernel_avx512(void) { return &k_f32; }
const dg__ukernel *dg__ukernel_avx512_bf16(void) { return &k_bf16; }
