/* AVX2 + FMA row kernels of the memory-bound ops (table in ops_internal.h);
 * the 8-lane twin of ops_avx512.c.  Only reached when the engine's ISA is
 * DG_ISA_AVX2.  Tails use vmaskmovps.  exp: same reduction and polynomial as
 * the AVX-512 file, 2^n applied as two exponent-field factors (correct down to
 * the subnormals). */
#include "tensor/ops_internal.h"

#if defined(__x86_64__) && defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#include <math.h>

#define W 8
#define BLOCK 1024

static inline __m256i tail_mask(int64_t r) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)(r < W ? r : W)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
static inline __m256 load(const float *p, int64_t r) {
  return r >= W ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, tail_mask(r));
}
static inline void store(float *p, int64_t r, __m256 v) {
  if (r >= W)
    _mm256_storeu_ps(p, v);
  else
    _mm256_maskstore_ps(p, tail_mask(r), v);
}

static inline __m256 exp8(__m256 x) {
  x = _mm256_min_ps(x, _mm256_set1_ps(89.0f));
  x = _mm256_max_ps(x, _mm256_set1_ps(-104.0f));
  __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                             _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.9875691500e-4f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
  p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
  /* 2^n as two exact factors 2^h 2^(n-h), n in [-150, 129]: subnormal results round once */
  __m256i ni = _mm256_cvtps_epi32(n), h = _mm256_srai_epi32(ni, 1), bias = _mm256_set1_epi32(127);
  __m256 s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(h, bias), 23));
  __m256 s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(_mm256_sub_epi32(ni, h), bias), 23));
  return _mm256_mul_ps(_mm256_mul_ps(p, s1), s2);
}

static inline __m256 silu8(__m256 v) {
  __m256 en = exp8(_mm256_sub_ps(_mm256_setzero_ps(), v));
  return _mm256_div_ps(v, _mm256_add_ps(_mm256_set1_ps(1.0f), en));
}

/* 0.5 x (1 + erf(x / sqrt 2)) via erfc(|z|) = t exp(-z^2 + P(t)), t = 1/(1 + |z|/2);
 * z^2 = x^2/2 as an exact hi + lo pair, exp(a) (1 + da) (see ops_avx512.c) */
static inline __m256 gelu8_erfc(__m256 x) {
  __m256 h = _mm256_mul_ps(x, _mm256_set1_ps(0.5f));
  __m256 s = _mm256_mul_ps(h, x), slo = _mm256_fmsub_ps(h, x, s);
  __m256 z = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), _mm256_mul_ps(x, _mm256_set1_ps(0.70710678118654752f)));
  __m256 t = _mm256_div_ps(_mm256_set1_ps(1.0f), _mm256_fmadd_ps(z, _mm256_set1_ps(0.5f), _mm256_set1_ps(1.0f)));
  __m256 p = _mm256_set1_ps(0.17087277f);
  p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(-0.82215223f));
  p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(1.48851587f));
  p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(-1.13520398f));
  p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(0.27886807f));
  p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(-0.18628806f));
  p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(0.09678418f));
  p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(0.37409196f));
  p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(1.00002368f));
  p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(-1.26551223f));
  __m256 a = _mm256_sub_ps(p, s), bb = _mm256_sub_ps(a, p);
  __m256 da = _mm256_sub_ps(_mm256_sub_ps(p, _mm256_sub_ps(a, bb)), _mm256_add_ps(s, bb));
  da = _mm256_sub_ps(da, slo);
  __m256 ea = exp8(a);
  __m256 e = _mm256_mul_ps(t, _mm256_fmadd_ps(ea, da, ea));
  __m256 neg = _mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_LT_OQ);
  __m256 onep = _mm256_blendv_ps(_mm256_sub_ps(_mm256_set1_ps(2.0f), e), e, neg);
  return _mm256_mul_ps(h, onep);
}

/* GELU = x Phi(x), Phi(x) = Q(-x) = 1 - Q(x), Q(a) = 0.5 erfc(a / sqrt 2) (see ops_avx512.c).
 * For |x| < 4: Q(|x|) from a piecewise polynomial, 8 intervals of width 1/2 on
 * [0, 4), degree 8 in u = 2 (2|x| - i) - 1 on interval i, coefficients looked
 * up per lane with vpermps (relative minimax fit per interval, as in
 * ops_avx512.c: 2.1e-7 relative with float Horner).  For 4 <= |x| < 8 (only
 * evaluated when a vector has such lanes): 16 intervals of width 1/4, degree 8,
 * each coefficient from two vpermps and a blend (2.8e-7).  x >= 8 gives x; lanes
 * with x <= -8 or NaN take the erfc form above, blended per lane. */
static _Alignas(32) const float gelu_q[9][8] = {
    {0.401293665f, 0.22662735f, 0.105649777f, 0.0400591567f, 0.0122244731f, 0.00297976332f, 0.000577025057f,
     8.84172841e-05f},
    {-0.096667029f, -0.0752843544f, -0.0456622727f, -0.0215693302f, -0.00793491304f, -0.00227339054f,
     -0.000507262012f, -8.81489177e-05f},
    {0.00302084466f, 0.00705790846f, 0.00713473f, 0.00471829111f, 0.00223169429f, 0.000781478011f,
     0.000206075187f, 4.13198068e-05f},
    {0.000944013824f, 0.000343092863f, -0.000267552241f, -0.000463403587f, -0.000335787394f,
     -0.000155407572f, -5.05280404e-05f, -1.19942169e-05f},
    {-4.62173739e-05f, -8.9602283e-05f, -5.34175197e-05f, 1.53586723e-06f, 2.39732326e-05f, 1.85702793e-05f,
     8.11691007e-06f, 2.38073653e-06f},
    {-8.27187523e-06f, 1.43233223e-07f, 5.8464625e-06f, 4.21011919e-06f, 4.51217261e-07f, -1.09645111e-06f,
     -8.45341674e-07f, -3.33958241e-07f},
    {4.71333323e-07f, 7.42069972e-07f, 1.40542653e-07f, -3.19711972e-07f, -2.41989682e-07f, -2.91211339e-08f,
     4.68007642e-08f, 3.23309344e-08f},
    {5.66211504e-08f, -2.04613908e-08f, -4.91877614e-08f, -1.1479325e-08f, 1.58140327e-08f, 1.09958647e-08f,
     9.20565346e-10f, -1.82222615e-09f},
    {-3.58222829e-09f, -4.38541248e-09f, 1.02254794e-09f, 2.7099718e-09f, 4.60208094e-10f, -7.42260309e-10f,
     -3.87791105e-10f, 2.41563974e-12f},
};

static _Alignas(32) const float gelu_q2[9][16] = {
    {1.85367371e-05f, 6.07162383e-06f, 1.87299202e-06f, 5.4404228e-07f, 1.48768876e-07f, 3.82913399e-08f,
     9.27539912e-09f, 2.1142168e-09f, 4.53418025e-10f, 9.14814752e-11f, 1.73624084e-11f, 3.09949288e-12f,
     5.20403436e-13f, 8.21725229e-14f, 1.22017197e-14f, 1.70371424e-15f},
    {-1.00675561e-05f, -3.47925425e-06f, -1.12954854e-06f, -3.44492832e-07f, -9.86988482e-08f,
     -2.65644342e-08f, -6.71654066e-09f, -1.59531832e-09f, -3.5596362e-10f, -7.46140302e-11f,
     -1.46923741e-11f, -2.71781577e-12f, -4.72285568e-13f, -7.70984974e-14f, -1.18234373e-14f,
     -1.70332767e-15f},
    {2.5955419e-06f, 9.51358572e-07f, 3.26510104e-07f, 1.04962659e-07f, 3.16144728e-08f, 8.92398955e-09f,
     2.36128384e-09f, 5.85780924e-10f, 1.36267331e-10f, 2.97290283e-11f, 6.08356117e-12f, 1.16781162e-12f,
     2.10314689e-13f, 3.5537596e-14f, 5.63460843e-15f, 8.38356842e-16f},
    {-4.19891165e-07f, -1.64364181e-07f, -5.99796905e-08f, -2.04234247e-08f, -6.49398002e-09f,
     -1.92942395e-09f, -5.35935074e-10f, -1.3923987e-10f, -3.38495863e-11f, -7.70247147e-12f,
     -1.64105654e-12f, -3.27452122e-13f, -6.12073665e-14f, -1.07196517e-14f, -1.75937637e-15f,
     -2.70650955e-16f},
    {4.73673687e-08f, 1.99941681e-08f, 7.81865062e-09f, 2.83803958e-09f, 9.57721347e-10f, 3.00843017e-10f,
     8.80579984e-11f, 2.40380355e-11f, 6.12413722e-12f, 1.45705008e-12f, 3.23905209e-13f, 6.73092766e-14f,
     1.30803588e-14f, 2.37796432e-15f, 4.0454553e-16f, 6.44208129e-17f},
    {-3.90064114e-09f, -1.8016274e-09f, -7.63447583e-10f, -2.98014086e-10f, -1.07485208e-10f,
     -3.59024477e-11f, -1.11265303e-11f, -3.20404228e-12f, -8.58354457e-13f, -2.14143048e-13f,
     -4.979437e-14f, -1.07996819e-14f, -2.18608785e-15f, -4.13224309e-16f, -7.29745949e-17f, -1.2044988e-17f},
    {2.36529962e-10f, 1.22559379e-10f, 5.72755385e-11f, 2.43566087e-11f, 9.4822622e-12f, 3.39418034e-12f,
     1.12070401e-12f, 3.4218765e-13f, 9.68085746e-14f, 2.54175563e-14f, 6.20148438e-15f, 1.40759141e-15f,
     2.97495521e-16f, 5.85938747e-17f, 1.07619233e-17f, 1.84438963e-18f},
    {-1.01658864e-11f, -6.23214674e-12f, -3.31923768e-12f, -1.57230294e-12f, -6.71427215e-13f,
     -2.6072246e-13f, -9.26090259e-14f, -3.02197706e-14f, -9.08865421e-15f, -2.52564705e-15f,
     -6.49803867e-16f, -1.55037668e-16f, -3.43497503e-17f, -7.07510987e-18f, -1.35607648e-18f, -2.4206691e-19f},
    {2.58428668e-13f, 2.18881947e-13f, 1.42174074e-13f, 7.77617445e-14f, 3.71995661e-14f, 1.58752321e-14f,
     6.11593702e-15f, 2.14366463e-15f, 6.87358608e-16f, 2.02440689e-16f, 5.49339942e-17f, 1.37678522e-17f,
     3.19313265e-18f, 6.86412567e-19f, 1.3694642e-19f, 2.53866431e-20f},
};

static inline __m256 gelu8(__m256 x) {
  __m256 a = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), x);
  __m256 slow = _mm256_cmp_ps(a, _mm256_set1_ps(4.0f), _CMP_NLT_UQ);
  __m256 t = _mm256_mul_ps(a, _mm256_set1_ps(2.0f)); /* exact */
  __m256i i = _mm256_cvttps_epi32(t);               /* interval; only its low 3 bits are used */
  __m256 u = _mm256_fmsub_ps(_mm256_sub_ps(t, _mm256_cvtepi32_ps(i)), _mm256_set1_ps(2.0f), _mm256_set1_ps(1.0f));
#define Q_COEF(j) _mm256_permutevar8x32_ps(_mm256_load_ps(gelu_q[j]), i)
  __m256 q = Q_COEF(8);
  q = _mm256_fmadd_ps(q, u, Q_COEF(7));
  q = _mm256_fmadd_ps(q, u, Q_COEF(6));
  q = _mm256_fmadd_ps(q, u, Q_COEF(5));
  q = _mm256_fmadd_ps(q, u, Q_COEF(4));
  q = _mm256_fmadd_ps(q, u, Q_COEF(3));
  q = _mm256_fmadd_ps(q, u, Q_COEF(2));
  q = _mm256_fmadd_ps(q, u, Q_COEF(1));
  q = _mm256_fmadd_ps(q, u, Q_COEF(0));
#undef Q_COEF
  __m256 mid = _mm256_and_ps(slow, _mm256_cmp_ps(a, _mm256_set1_ps(8.0f), _CMP_LT_OQ)); /* 4 <= |x| < 8 */
  if (_mm256_movemask_ps(mid)) {
    __m256 t2 = _mm256_mul_ps(a, _mm256_set1_ps(4.0f)); /* exact */
    __m256i j = _mm256_cvttps_epi32(t2);                /* 16..31 on these lanes */
    __m256 u2 = _mm256_fmsub_ps(_mm256_sub_ps(t2, _mm256_cvtepi32_ps(j)), _mm256_set1_ps(2.0f), _mm256_set1_ps(1.0f));
    __m256 upper = _mm256_castsi256_ps(_mm256_slli_epi32(j, 28)); /* sign bit = bit 3 of j: intervals 8..15 */
#define Q2_COEF(c)                                                                  \
  _mm256_blendv_ps(_mm256_permutevar8x32_ps(_mm256_load_ps(gelu_q2[c]), j),        \
                   _mm256_permutevar8x32_ps(_mm256_load_ps(gelu_q2[c] + 8), j), upper)
    __m256 q2 = Q2_COEF(8);
    q2 = _mm256_fmadd_ps(q2, u2, Q2_COEF(7));
    q2 = _mm256_fmadd_ps(q2, u2, Q2_COEF(6));
    q2 = _mm256_fmadd_ps(q2, u2, Q2_COEF(5));
    q2 = _mm256_fmadd_ps(q2, u2, Q2_COEF(4));
    q2 = _mm256_fmadd_ps(q2, u2, Q2_COEF(3));
    q2 = _mm256_fmadd_ps(q2, u2, Q2_COEF(2));
    q2 = _mm256_fmadd_ps(q2, u2, Q2_COEF(1));
    q2 = _mm256_fmadd_ps(q2, u2, Q2_COEF(0));
#undef Q2_COEF
    q = _mm256_blendv_ps(q, q2, mid);
    slow = _mm256_andnot_ps(mid, slow);
  }
  __m256 neg = _mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_LT_OQ);
  __m256 phi = _mm256_blendv_ps(_mm256_sub_ps(_mm256_set1_ps(1.0f), q), q, neg);
  __m256 r = _mm256_mul_ps(x, phi);
  __m256 hi = _mm256_cmp_ps(x, _mm256_set1_ps(8.0f), _CMP_GE_OQ); /* Q(8) = 6e-16: GELU = x */
  r = _mm256_blendv_ps(r, x, hi);
  slow = _mm256_andnot_ps(hi, slow);
  if (_mm256_movemask_ps(slow)) r = _mm256_blendv_ps(r, gelu8_erfc(x), slow);
  return r;
}

static inline double hsum_d(__m256 v) {
  __m256d a = _mm256_cvtps_pd(_mm256_castps256_ps128(v)), b = _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1));
  __m256d s = _mm256_add_pd(a, b);
  __m128d h = _mm_add_pd(_mm256_castpd256_pd128(s), _mm256_extractf128_pd(s, 1));
  return _mm_cvtsd_f64(_mm_add_sd(h, _mm_unpackhi_pd(h, h)));
}

static double v_sum(const float *x, int64_t n) {
  double tot = 0.0;
  for (int64_t i = 0; i < n; i += BLOCK) {
    int64_t m = n - i < BLOCK ? n - i : BLOCK, j = 0;
    const float *p = x + i;
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (; j + 4 * W <= m; j += 4 * W) {
      a0 = _mm256_add_ps(a0, _mm256_loadu_ps(p + j));
      a1 = _mm256_add_ps(a1, _mm256_loadu_ps(p + j + W));
      a2 = _mm256_add_ps(a2, _mm256_loadu_ps(p + j + 2 * W));
      a3 = _mm256_add_ps(a3, _mm256_loadu_ps(p + j + 3 * W));
    }
    for (; j < m; j += W) a0 = _mm256_add_ps(a0, load(p + j, m - j));
    tot += hsum_d(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
  }
  return tot;
}

static double v_sum_sq_dev(const float *x, int64_t n, float mean) {
  double tot = 0.0;
  __m256 mu = _mm256_set1_ps(mean);
  for (int64_t i = 0; i < n; i += BLOCK) {
    int64_t m = n - i < BLOCK ? n - i : BLOCK, j = 0;
    const float *p = x + i;
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (; j + 4 * W <= m; j += 4 * W) {
      __m256 d0 = _mm256_sub_ps(_mm256_loadu_ps(p + j), mu), d1 = _mm256_sub_ps(_mm256_loadu_ps(p + j + W), mu);
      __m256 d2 = _mm256_sub_ps(_mm256_loadu_ps(p + j + 2 * W), mu);
      __m256 d3 = _mm256_sub_ps(_mm256_loadu_ps(p + j + 3 * W), mu);
      a0 = _mm256_fmadd_ps(d0, d0, a0);
      a1 = _mm256_fmadd_ps(d1, d1, a1);
      a2 = _mm256_fmadd_ps(d2, d2, a2);
      a3 = _mm256_fmadd_ps(d3, d3, a3);
    }
    for (; j < m; j += W) {
      __m256 d = _mm256_and_ps(_mm256_sub_ps(load(p + j, m - j), mu), _mm256_castsi256_ps(tail_mask(m - j)));
      a0 = _mm256_fmadd_ps(d, d, a0);
    }
    tot += hsum_d(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
  }
  return tot;
}

static void v_sums_shifted(const float *x, int64_t n, float k, double s[2]) {
  double t1 = 0.0, t2 = 0.0;
  __m256 mu = _mm256_set1_ps(k);
  for (int64_t i = 0; i < n; i += BLOCK) {
    int64_t m = n - i < BLOCK ? n - i : BLOCK, j = 0;
    const float *p = x + i;
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, q0 = a0, q1 = a0;
    for (; j + 2 * W <= m; j += 2 * W) {
      __m256 d0 = _mm256_sub_ps(_mm256_loadu_ps(p + j), mu), d1 = _mm256_sub_ps(_mm256_loadu_ps(p + j + W), mu);
      a0 = _mm256_add_ps(a0, d0);
      a1 = _mm256_add_ps(a1, d1);
      q0 = _mm256_fmadd_ps(d0, d0, q0);
      q1 = _mm256_fmadd_ps(d1, d1, q1);
    }
    for (; j < m; j += W) {
      __m256 d = _mm256_and_ps(_mm256_sub_ps(load(p + j, m - j), mu), _mm256_castsi256_ps(tail_mask(m - j)));
      a0 = _mm256_add_ps(a0, d);
      q0 = _mm256_fmadd_ps(d, d, q0);
    }
    t1 += hsum_d(_mm256_add_ps(a0, a1));
    t2 += hsum_d(_mm256_add_ps(q0, q1));
  }
  s[0] = t1, s[1] = t2;
}

static void v_affine(float *y, const float *x, int64_t n, float m, float a, float b, int silu, const float *pf) {
  __m256 vm = _mm256_set1_ps(m), va = _mm256_set1_ps(a), vb = _mm256_set1_ps(b);
  for (int64_t i = 0; i < n; i += W) {
    if (pf && !(i & 15)) _mm_prefetch((const char *)(pf + i), _MM_HINT_T1); /* a hint: never faults */
    __m256 v = _mm256_fmadd_ps(_mm256_sub_ps(load(x + i, n - i), vm), va, vb);
    if (silu) v = silu8(v);
    store(y + i, n - i, v);
  }
}

static void v_normalize(float *y, const float *x, int64_t n, float mean, float rstd, const float *g,
                        const float *b, const float *pf) {
  __m256 vm = _mm256_set1_ps(mean), vr = _mm256_set1_ps(rstd);
  for (int64_t i = 0; i < n; i += W) {
    if (pf && !(i & 15)) _mm_prefetch((const char *)(pf + i), _MM_HINT_T0);
    __m256 v = _mm256_mul_ps(_mm256_sub_ps(load(x + i, n - i), vm), vr);
    if (g) v = _mm256_mul_ps(v, load(g + i, n - i));
    if (b) v = _mm256_add_ps(v, load(b + i, n - i));
    store(y + i, n - i, v);
  }
}

/* Rows of up to 8 vectors (n <= 64) held in registers, R rows at a time to
 * hide each row's latency (see ops_avx512.c): the same operations in the same
 * order as the long form, identical results. */
#define SHORT_R 4
static void softmax_short(float *y, const float *x, int64_t rows, int64_t n) {
  __m256 v[SHORT_R][8], ninf = _mm256_set1_ps(-INFINITY);
  int nv = (int)((n + W - 1) / W);
  __m256 kl = _mm256_castsi256_ps(tail_mask(n % W ? n % W : W)); /* the last vector's lanes */
  for (int64_t r0 = 0; r0 < rows; r0 += SHORT_R) {
    int nr = rows - r0 < SHORT_R ? (int)(rows - r0) : SHORT_R;
    __m256 vm[SHORT_R], acc[SHORT_R];
    for (int r = 0; r < nr; r++) {
      const float *xr = x + (r0 + r) * n; /* (n) */
      __m256 mx = ninf;
      for (int q = 0; q < nv; q++) {
        v[r][q] = load(xr + q * W, n - q * W);
        if (q == nv - 1) v[r][q] = _mm256_blendv_ps(ninf, v[r][q], kl);
        mx = _mm256_max_ps(mx, v[r][q]);
      }
      float lanes[W], m = -INFINITY;
      _mm256_storeu_ps(lanes, mx);
      for (int l = 0; l < W; l++) m = lanes[l] > m ? lanes[l] : m;
      if (m == -INFINITY) m = 0.0f;
      vm[r] = _mm256_set1_ps(m);
      acc[r] = _mm256_setzero_ps();
    }
    for (int q = 0; q < nv; q++)
      for (int r = 0; r < nr; r++) {
        v[r][q] = exp8(_mm256_sub_ps(v[r][q], vm[r]));
        if (q == nv - 1) v[r][q] = _mm256_and_ps(v[r][q], kl);
        acc[r] = _mm256_add_ps(acc[r], v[r][q]);
      }
    for (int r = 0; r < nr; r++) {
      __m256 inv = _mm256_set1_ps((float)(1.0 / hsum_d(acc[r])));
      float *yr = y + (r0 + r) * n;
      for (int q = 0; q < nv; q++) store(yr + q * W, n - q * W, _mm256_mul_ps(v[r][q], inv));
    }
  }
}

/* Long rows: max pass, exp pass (the next row's x lines prefetched meanwhile), scale pass. */
static void softmax_long(float *y, const float *x, int64_t n) {
  __m256 ninf = _mm256_set1_ps(-INFINITY), mx = ninf;
  for (int64_t i = 0; i < n; i += W) {
    __m256 v = load(x + i, n - i);
    if (n - i < W) v = _mm256_blendv_ps(ninf, v, _mm256_castsi256_ps(tail_mask(n - i)));
    mx = _mm256_max_ps(mx, v);
  }
  float lanes[W], m = -INFINITY;
  _mm256_storeu_ps(lanes, mx);
  for (int l = 0; l < W; l++) m = lanes[l] > m ? lanes[l] : m;
  if (m == -INFINITY) m = 0.0f; /* fully masked row: sum 0 -> NaN, as torch */
  __m256 vm = _mm256_set1_ps(m);
  double sum = 0.0;
  for (int64_t i = 0; i < n; i += BLOCK) {
    int64_t e = n - i < BLOCK ? n : i + BLOCK;
    __m256 acc = _mm256_setzero_ps();
    for (int64_t j = i; j < e; j += W) {
      if (!((j - i) & 15)) _mm_prefetch((const char *)(x + n + j), _MM_HINT_T0); /* a hint: never faults */
      __m256 v = exp8(_mm256_sub_ps(load(x + j, e - j), vm));
      if (e - j < W) v = _mm256_and_ps(v, _mm256_castsi256_ps(tail_mask(e - j)));
      acc = _mm256_add_ps(acc, v);
      store(y + j, e - j, v);
    }
    sum += hsum_d(acc);
  }
  __m256 inv = _mm256_set1_ps((float)(1.0 / sum));
  for (int64_t i = 0; i < n; i += W) store(y + i, n - i, _mm256_mul_ps(load(y + i, n - i), inv));
}

static void v_softmax(float *y, const float *x, int64_t rows, int64_t n) {
  if (n <= 8 * W)
    softmax_short(y, x, rows, n);
  else
    for (int64_t r = 0; r < rows; r++) softmax_long(y + r * n, x + r * n, n);
}

static inline __m256 quick_gelu8(__m256 v) {
  __m256 en = exp8(_mm256_mul_ps(v, _mm256_set1_ps(-1.702f)));
  return _mm256_div_ps(v, _mm256_add_ps(_mm256_set1_ps(1.0f), en));
}

/* one loop per op: a shared loop made GCC keep GELU's tables live through the SiLU path */
static void v_unary(dg__unary_op op, float *y, const float *x, int64_t n) {
  if (op == DG__UNARY_SILU)
    for (int64_t i = 0; i < n; i += W) store(y + i, n - i, silu8(load(x + i, n - i)));
  else if (op == DG__UNARY_GELU)
    for (int64_t i = 0; i < n; i += W) store(y + i, n - i, gelu8(load(x + i, n - i)));
  else
    for (int64_t i = 0; i < n; i += W) store(y + i, n - i, quick_gelu8(load(x + i, n - i)));
}

static void v_binary_vec(dg__binary_op op, float *y, const float *a, const float *b, int64_t n) {
  for (int64_t i = 0; i < n; i += W) {
    __m256 va = load(a + i, n - i), vb = load(b + i, n - i);
    store(y + i, n - i, op == DG__BINARY_ADD ? _mm256_add_ps(va, vb) : _mm256_mul_ps(va, vb));
  }
}

static void v_binary_scalar(dg__binary_op op, float *y, const float *a, float s, int64_t n) {
  __m256 vb = _mm256_set1_ps(s);
  for (int64_t i = 0; i < n; i += W) {
    __m256 va = load(a + i, n - i);
    store(y + i, n - i, op == DG__BINARY_ADD ? _mm256_add_ps(va, vb) : _mm256_mul_ps(va, vb));
  }
}

static void v_scale(float *y, const float *x, int64_t n, float alpha, float beta) {
  __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
  for (int64_t i = 0; i < n; i += W) store(y + i, n - i, _mm256_fmadd_ps(load(x + i, n - i), va, vb));
}

static void v_exp(float *y, const float *x, int64_t n) {
  for (int64_t i = 0; i < n; i += W) store(y + i, n - i, exp8(load(x + i, n - i)));
}

static void v_geglu(float *y, const float *a, const float *gate, int64_t n) {
  for (int64_t i = 0; i < n; i += W) store(y + i, n - i, _mm256_mul_ps(load(a + i, n - i), gelu8(load(gate + i, n - i))));
}

static const dg__vec_kernels table = {v_sum,   v_sum_sq_dev, v_sums_shifted,  v_affine, v_normalize, v_softmax,
                                      v_unary, v_binary_vec, v_binary_scalar, v_scale,  v_exp,       v_geglu};

const dg__vec_kernels *dg__vec_avx2(void) { return &table; }

#else

const dg__vec_kernels *dg__vec_avx2(void) { return 0; }

#endif
