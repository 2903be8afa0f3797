/* AVX2 + FMA online-softmax block for flash attention (attn.h), 16 query
 * columns as two ymm per key row; exp2 by range reduction + degree-6
 * polynomial (relative error ~2e-7), exact 0 below 2^-126. */
#include <immintrin.h>
#include <math.h>

#include "tensor/attn.h"

static inline __m256 exp2_ps(__m256 x) {
  __m256 tiny = _mm256_cmp_ps(x, _mm256_set1_ps(-126.0f), _CMP_LT_OQ); /* also -inf */
  x = _mm256_max_ps(x, _mm256_set1_ps(-126.0f));
  x = _mm256_min_ps(x, _mm256_set1_ps(127.0f));
  __m256 xi = _mm256_round_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 f = _mm256_sub_ps(x, xi);
  __m256 p = _mm256_set1_ps(1.5403530e-4f);
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(1.3333558e-3f));
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(9.6181291e-3f));
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(5.5504109e-2f));
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(2.4022651e-1f));
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(6.9314718e-1f));
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(1.0f));
  __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(xi), _mm256_set1_epi32(127)), 23);
  __m256 r = _mm256_mul_ps(p, _mm256_castsi256_ps(e));
  return _mm256_andnot_ps(tiny, r);
}

void dg__attn_softmax_avx2(float *s, int64_t nrows, int nr, int64_t valid, int64_t j0, int64_t q0, int causal,
                           float *m, float *l, float *alpha, void *p, int bf16) {
  (void)nr; /* 16 */
  (void)p;
  (void)bf16; /* f32 only: bf16 kernels are AVX-512 */
  const __m256 ninf = _mm256_set1_ps(-INFINITY);
  const __m256i c_lo = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  const __m256i c_hi = _mm256_add_epi32(c_lo, _mm256_set1_epi32(8));
  __m256 mo0 = _mm256_loadu_ps(m), mo1 = _mm256_loadu_ps(m + 8);
  __m256 mx0 = mo0, mx1 = mo1;
  for (int64_t r = 0; r < nrows; r++) {
    float *sr = s + r * 16;
    __m256 v0 = _mm256_loadu_ps(sr), v1 = _mm256_loadu_ps(sr + 8);
    if (r >= valid) {
      v0 = v1 = ninf;
    } else if (causal && j0 + r > q0) {
      /* visible when c >= j0 + r - q0, i.e. hidden when lim > c */
      __m256i lim = _mm256_set1_epi32((int)(j0 + r - q0 > 64 ? 64 : j0 + r - q0));
      v0 = _mm256_blendv_ps(v0, ninf, _mm256_castsi256_ps(_mm256_cmpgt_epi32(lim, c_lo)));
      v1 = _mm256_blendv_ps(v1, ninf, _mm256_castsi256_ps(_mm256_cmpgt_epi32(lim, c_hi)));
    }
    _mm256_storeu_ps(sr, v0);
    _mm256_storeu_ps(sr + 8, v1);
    mx0 = _mm256_max_ps(mx0, v0);
    mx1 = _mm256_max_ps(mx1, v1);
  }
  __m256 z0 = _mm256_cmp_ps(mx0, ninf, _CMP_EQ_OQ), z1 = _mm256_cmp_ps(mx1, ninf, _CMP_EQ_OQ);
  __m256 b0 = _mm256_andnot_ps(z0, mx0), b1 = _mm256_andnot_ps(z1, mx1); /* base 0 where nothing visible */
  __m256 a0 = _mm256_blendv_ps(exp2_ps(_mm256_sub_ps(mo0, b0)), _mm256_set1_ps(1.0f), z0);
  __m256 a1 = _mm256_blendv_ps(exp2_ps(_mm256_sub_ps(mo1, b1)), _mm256_set1_ps(1.0f), z1);
  __m256 sum0 = _mm256_setzero_ps(), sum1 = _mm256_setzero_ps();
  for (int64_t r = 0; r < nrows; r++) {
    float *sr = s + r * 16;
    __m256 p0 = exp2_ps(_mm256_sub_ps(_mm256_loadu_ps(sr), b0));
    __m256 p1 = exp2_ps(_mm256_sub_ps(_mm256_loadu_ps(sr + 8), b1));
    sum0 = _mm256_add_ps(sum0, p0);
    sum1 = _mm256_add_ps(sum1, p1);
    _mm256_storeu_ps(sr, p0);
    _mm256_storeu_ps(sr + 8, p1);
  }
  _mm256_storeu_ps(l, _mm256_fmadd_ps(_mm256_loadu_ps(l), a0, sum0));
  _mm256_storeu_ps(l + 8, _mm256_fmadd_ps(_mm256_loadu_ps(l + 8), a1, sum1));
  _mm256_storeu_ps(alpha, a0);
  _mm256_storeu_ps(alpha + 8, a1);
  _mm256_storeu_ps(m, mx0);
  _mm256_storeu_ps(m + 8, mx1);
}

void dg__attn_rescale_avx2(float *o, int64_t d, const float *alpha) {
  __m256 a0 = _mm256_loadu_ps(alpha), a1 = _mm256_loadu_ps(alpha + 8);
  for (int64_t r = 0; r < d; r++) {
    _mm256_storeu_ps(o + r * 16, _mm256_mul_ps(_mm256_loadu_ps(o + r * 16), a0));
    _mm256_storeu_ps(o + r * 16 + 8, _mm256_mul_ps(_mm256_loadu_ps(o + r * 16 + 8), a1));
  }
}
