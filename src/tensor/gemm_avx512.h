/* Internal helpers shared by the AVX-512 files (include only from *_avx512.c). */
#ifndef DG_TENSOR_GEMM_AVX512_H
#define DG_TENSOR_GEMM_AVX512_H

#include <immintrin.h>

/* In-register 16 x 16 transpose: v[r][c] -> v[c][r]. */
#define TRANSPOSE16(v)                                                       \
  do {                                                                       \
    __m512 t_[16];                                                           \
    _Pragma("GCC unroll 8") for (int i = 0; i < 16; i += 2) {                \
      t_[i] = _mm512_unpacklo_ps(v[i], v[i + 1]);                            \
      t_[i + 1] = _mm512_unpackhi_ps(v[i], v[i + 1]);                        \
    }                                                                        \
    _Pragma("GCC unroll 4") for (int i = 0; i < 16; i += 4) {                \
      v[i] = _mm512_shuffle_ps(t_[i], t_[i + 2], 0x44);                      \
      v[i + 1] = _mm512_shuffle_ps(t_[i], t_[i + 2], 0xee);                  \
      v[i + 2] = _mm512_shuffle_ps(t_[i + 1], t_[i + 3], 0x44);              \
      v[i + 3] = _mm512_shuffle_ps(t_[i + 1], t_[i + 3], 0xee);              \
    }                                                                        \
    _Pragma("GCC unroll 4") for (int i = 0; i < 4; i++) {                    \
      t_[i] = _mm512_shuffle_f32x4(v[i], v[i + 4], 0x88);                    \
      t_[i + 4] = _mm512_shuffle_f32x4(v[i], v[i + 4], 0xdd);                \
      t_[i + 8] = _mm512_shuffle_f32x4(v[i + 8], v[i + 12], 0x88);           \
      t_[i + 12] = _mm512_shuffle_f32x4(v[i + 8], v[i + 12], 0xdd);          \
    }                                                                        \
    _Pragma("GCC unroll 4") for (int i = 0; i < 4; i++) {                    \
      v[i] = _mm512_shuffle_f32x4(t_[i], t_[i + 8], 0x88);                   \
      v[i + 8] = _mm512_shuffle_f32x4(t_[i], t_[i + 8], 0xdd);               \
      v[i + 4] = _mm512_shuffle_f32x4(t_[i + 4], t_[i + 12], 0x88);          \
      v[i + 12] = _mm512_shuffle_f32x4(t_[i + 4], t_[i + 12], 0xdd);         \
    }                                                                        \
  } while (0)

#include <stdint.h>

#include "tensor/tensor.h"

/* Up to 16 values of p (dtype F32, F16 or BF16) from element off as f32, zero
 * past n (n <= 0: all zero; masked lanes read nothing). */
static inline __m512 dg__load16_avx512(const void *p, dg_dtype t, int64_t off, int n) {
  __mmask16 m = (__mmask16)(n >= 16 ? 0xffff : n <= 0 ? 0 : (1u << n) - 1);
  switch (t) {
    case DG_DTYPE_F16: return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, (const uint16_t *)p + off));
    case DG_DTYPE_BF16:
      return _mm512_castsi512_ps(
          _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, (const uint16_t *)p + off)), 16));
    default: return _mm512_maskz_loadu_ps(m, (const float *)p + off);
  }
}

/* gemm_avx512.c: two f32 rows of R values -> bf16 pairs d[2c] = r0[c], d[2c + 1] = r1[c];
 * the IK panel packer and the stride-1 im2col run of the AVX-512 kernels (gemm.h). */
void dg__cvt_pairs_avx512(const float *r0, const float *r1, int R, uint16_t *d);
struct dg__opnd;
void dg__pack_ik_avx512(const struct dg__opnd *o, int R, int bf16, int64_t i0, int64_t rows, int64_t k0,
                        int64_t kc, int64_t kpad, void *dst);
void dg__im2col_run_avx512(const float *xr, int64_t sx0, int64_t w, int len, float *d);

#endif
