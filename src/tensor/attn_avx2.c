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

/* ---- short key sequences (attn.h: dg__attn_short_avx2) -------------------- */

#define AI static inline __attribute__((always_inline))

/* R rows x NV vectors of 8 columns: acc = sum_k a[r * lda + k] * b[k * ldb + 8v + lane].
 * Rows past ra repeat the last valid row and are not stored.  inv == NULL: c[r * ldc + col] = acc
 * (all 8 NV columns); else c[...] = acc * inv[r] for the first ncols columns only. */
AI void tile8(const int NV, const int R, const float *a, int64_t lda, int ra, const float *b, int64_t ldb, int64_t kc,
              float *c, int64_t ldc, const float *inv, int64_t ncols) {
  const float *ar[4];
#pragma GCC unroll 4
  for (int r = 0; r < R; r++) ar[r] = a + (r < ra ? r : ra - 1) * lda;
  __m256 acc[4][3];
#pragma GCC unroll 4
  for (int r = 0; r < R; r++)
#pragma GCC unroll 3
    for (int v = 0; v < NV; v++) acc[r][v] = _mm256_setzero_ps();
  for (int64_t k = 0; k < kc; k++) {
    __m256 bv[3];
#pragma GCC unroll 3
    for (int v = 0; v < NV; v++) bv[v] = _mm256_loadu_ps(b + k * ldb + 8 * v);
#pragma GCC unroll 4
    for (int r = 0; r < R; r++) {
      __m256 bc = _mm256_broadcast_ss(ar[r] + k);
#pragma GCC unroll 3
      for (int v = 0; v < NV; v++) acc[r][v] = _mm256_fmadd_ps(bc, bv[v], acc[r][v]);
    }
  }
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
#pragma GCC unroll 4
  for (int r = 0; r < R; r++) {
    if (r >= ra) break;
    if (!inv) {
#pragma GCC unroll 3
      for (int v = 0; v < NV; v++) _mm256_storeu_ps(c + r * ldc + 8 * v, acc[r][v]);
    } else {
      __m256 s = _mm256_set1_ps(inv[r]);
#pragma GCC unroll 3
      for (int v = 0; v < NV; v++) {
        int64_t left = ncols - 8 * v;
        if (left >= 8)
          _mm256_storeu_ps(c + r * ldc + 8 * v, _mm256_mul_ps(acc[r][v], s));
        else if (left > 0)
          _mm256_maskstore_ps(c + r * ldc + 8 * v, _mm256_cmpgt_epi32(_mm256_set1_epi32((int)left), lane),
                              _mm256_mul_ps(acc[r][v], s));
      }
    }
  }
}

/* Every column group of a rows x (8 * nv) product, 4 rows x 3 vectors at a time
 * (12 accumulators + 3 of B + 1 broadcast = the 16 ymm). */
static void product8(const float *a, int64_t lda, int64_t rows, const float *b, int64_t ldb, int64_t kc, int64_t nv,
                     float *c, int64_t ldc, const float *inv, int64_t ncols) {
  for (int64_t r0 = 0; r0 < rows; r0 += 4) {
    int ra = rows - r0 < 4 ? (int)(rows - r0) : 4;
    const float *ar = a + r0 * lda, *iv = inv ? inv + r0 : NULL;
    float *cr = c + r0 * ldc;
    int64_t v = 0;
    for (; v + 3 <= nv; v += 3) tile8(3, 4, ar, lda, ra, b + 8 * v, ldb, kc, cr + 8 * v, ldc, iv, ncols - 8 * v);
    if (nv - v == 2) tile8(2, 4, ar, lda, ra, b + 8 * v, ldb, kc, cr + 8 * v, ldc, iv, ncols - 8 * v);
    if (nv - v == 1) tile8(1, 4, ar, lda, ra, b + 8 * v, ldb, kc, cr + 8 * v, ldc, iv, ncols - 8 * v);
  }
}

static inline float hmax8(__m256 v) {
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  m = _mm_max_ss(m, _mm_movehdup_ps(m));
  return _mm_cvtss_f32(m);
}
static inline float hsum8(__m256 v) {
  __m128 m = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  m = _mm_add_ps(m, _mm_movehl_ps(m, m));
  m = _mm_add_ss(m, _mm_movehdup_ps(m));
  return _mm_cvtss_f32(m);
}

void dg__attn_short_avx2(const float *q, int64_t ldq, const float *kt, const float *vp, int64_t lk, int64_t d,
                         int64_t q0, int64_t rows, int causal, float *p, float *inv, float *y, int64_t ldy) {
  int64_t nv = (lk + 7) / 8, nd = (d + 7) / 8, ldk = 8 * nv, ldv = 8 * nd;
  product8(q, ldq, rows, kt, ldk, d, nv, p, ldk, NULL, ldk); /* S (rows, ldk) */
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  const __m256 ninf = _mm256_set1_ps(-INFINITY);
  for (int64_t r = 0; r < rows; r++) {
    float *pr = p + r * ldk;
    int64_t lim = lk; /* keys [0, lim) visible */
    if (causal && q0 + r + 1 < lim) lim = q0 + r + 1;
    __m256 mx = ninf;
    for (int64_t v = 0; v < nv; v++) {
      int64_t left = lim - 8 * v;
      __m256 vis = _mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_set1_epi32((int)(left > 8 ? 8 : left)), lane));
      mx = _mm256_max_ps(mx, _mm256_blendv_ps(ninf, _mm256_loadu_ps(pr + 8 * v), vis));
    }
    __m256 m = _mm256_set1_ps(hmax8(mx)), sum = _mm256_setzero_ps();
    for (int64_t v = 0; v < nv; v++) {
      int64_t left = lim - 8 * v;
      __m256 vis = _mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_set1_epi32((int)(left > 8 ? 8 : left)), lane));
      __m256 e = _mm256_and_ps(vis, exp2_ps(_mm256_sub_ps(_mm256_loadu_ps(pr + 8 * v), m)));
      sum = _mm256_add_ps(sum, e);
      _mm256_storeu_ps(pr + 8 * v, e);
    }
    float s = hsum8(sum);
    inv[r] = s > 0.0f ? 1.0f / s : 0.0f;
  }
  int64_t nk = causal && q0 + rows < lk ? q0 + rows : lk; /* later keys have p = 0 in every row */
  product8(p, ldk, rows, vp, ldv, nk, nd, y, ldy, inv, d);
}
