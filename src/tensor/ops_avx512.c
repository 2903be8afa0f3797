/* AVX-512 row kernels of the memory-bound ops (table in ops_internal.h).
 * Compiled with AVX-512 flags; only reached when the engine's ISA is
 * DG_ISA_AVX512 (checked at run time).  Tails use masked loads/stores.
 * exp: Cody-Waite range reduction + degree-6 polynomial, scaled by 2^n
 * with vscalefps (correct underflow to subnormals / zero); ~1-2 ulp. */
#include "tensor/ops_internal.h"

#if defined(__x86_64__) && defined(__AVX512F__)
#include <immintrin.h>
#include <math.h>

#include "tensor/gemm_avx512.h" /* TRANSPOSE16 */

#define W 16
#define BLOCK 1024

static inline __mmask16 tail_mask(int64_t r) { return (__mmask16)((1u << r) - 1u); }

/* Streaming loops prefetch their inputs and their output PF_AHEAD floats
 * (4 KiB) ahead into L1, one prefetch per 64-byte line (a hint: never faults,
 * harmless past the end).  The output matters as much as the input: a store
 * to a line not in cache waits for its read-for-ownership.  From DRAM, 1
 * thread: SiLU ~1.3x, softmax over 77-wide rows ~1.3x (bench/RESULTS.md). */
#define PF_AHEAD 1024
#define PF_STREAM(p) _mm_prefetch((const char *)((p) + PF_AHEAD), _MM_HINT_T0)

/* e^x for x clamped by the caller (NaN propagates): reduction x = n ln2 + r,
 * e^r = 1 + r + r^2 q(r), q of degree 4 (relative minimax on |r| <= ln2/2,
 * 3.8e-9 with float coefficients), scaled by 2^n with vscalefps (correct
 * underflow to subnormals / zero, overflow to inf). */
static inline __m512 exp16_core(__m512 x) {
  __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                  _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.381459180e-03f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.368719369e-03f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.166838899e-02f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.666652113e-01f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.999999404e-01f));
  p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
  return _mm512_scalef_ps(p, n);
}

/* e^x, x clamped to [-110, 88.7228394] (+-inf: r would be NaN) */
static inline __m512 exp16(__m512 x) {
  return exp16_core(_mm512_max_ps(_mm512_set1_ps(-110.0f), _mm512_min_ps(_mm512_set1_ps(88.7228394f), x)));
}

/* e^d for d = x - max <= 0 (or NaN, kept): only the lower clamp (-inf from masked entries) */
static inline __m512 exp16_neg(__m512 d) { return exp16_core(_mm512_max_ps(_mm512_set1_ps(-110.0f), d)); }

/* 1/d: rcp14 + one Newton step (relative error ~2^-28); d = +inf gives 0 */
static inline __m512 recip16(__m512 d) {
  __m512 r = _mm512_rcp14_ps(d);
  __m512 e = _mm512_fnmadd_ps(d, r, _mm512_set1_ps(1.0f));
  __m512 rr = _mm512_fmadd_ps(r, e, r);
  /* keep rcp14's exact 0 for d = inf (the Newton step would make it NaN) */
  return _mm512_mask_mov_ps(rr, _mm512_cmp_ps_mask(r, _mm512_setzero_ps(), _CMP_EQ_OQ), r);
}

/* x sigmoid(k x) = x / (1 + e^(-k x)), e^(-k x) clamped to [-110, 88] so that
 * 1 + e stays finite and the Newton step cannot meet inf * 0 (x < -88/k gives
 * x / 1.7e38: |result| < 1e-35, the exact value being smaller still) */
static inline __m512 silu16(__m512 v, __m512 negk) {
  __m512 a = _mm512_max_ps(_mm512_set1_ps(-110.0f), _mm512_min_ps(_mm512_set1_ps(88.0f), _mm512_mul_ps(v, negk)));
  __m512 d = _mm512_add_ps(_mm512_set1_ps(1.0f), exp16_core(a));
  __m512 r = _mm512_rcp14_ps(d);
  r = _mm512_fmadd_ps(r, _mm512_fnmadd_ps(d, r, _mm512_set1_ps(1.0f)), r); /* one Newton step: ~2^-28 */
  return _mm512_mul_ps(v, r);
}

/* 0.5 x (1 + erf(x / sqrt 2)) via erfc(|z|) = t exp(-z^2 + P(t)), t = 1/(1 + |z|/2)
 * (Numerical Recipes erfcc, relative error < 1.2e-7 everywhere).  z^2 = x^2/2 is
 * carried as an exact hi + lo pair (FMA) and the rounding of the exponent's
 * argument is put back as exp(a) (1 + da): rounding z = x/sqrt 2 itself would
 * cost a relative error of ~2 z^2 2^-24 (1.4e-6 at x = -5). */
static inline __m512 gelu16_erfc(__m512 x) {
  __m512 h = _mm512_mul_ps(x, _mm512_set1_ps(0.5f));
  __m512 s = _mm512_mul_ps(h, x), slo = _mm512_fmsub_ps(h, x, s); /* s + slo = x^2 / 2 */
  __m512 z = _mm512_abs_ps(_mm512_mul_ps(x, _mm512_set1_ps(0.70710678118654752f)));
  __m512 t = recip16(_mm512_fmadd_ps(z, _mm512_set1_ps(0.5f), _mm512_set1_ps(1.0f)));
  __m512 p = _mm512_set1_ps(0.17087277f);
  p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(-0.82215223f));
  p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(1.48851587f));
  p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(-1.13520398f));
  p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(0.27886807f));
  p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(-0.18628806f));
  p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(0.09678418f));
  p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(0.37409196f));
  p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(1.00002368f));
  p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(-1.26551223f));
  /* a + da = p - s - slo (TwoSum of p and -s) */
  __m512 a = _mm512_sub_ps(p, s), bb = _mm512_sub_ps(a, p);
  __m512 da = _mm512_sub_ps(_mm512_sub_ps(p, _mm512_sub_ps(a, bb)), _mm512_add_ps(s, bb));
  da = _mm512_sub_ps(da, slo);
  __m512 ea = exp16(a);
  __m512 e = _mm512_mul_ps(t, _mm512_fmadd_ps(ea, da, ea)); /* erfc(|z|) */
  /* 1 + erf(z) = erfc(|z|) for x < 0, 2 - erfc(|z|) otherwise */
  __mmask16 neg = _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_LT_OQ);
  __m512 onep = _mm512_mask_blend_ps(neg, _mm512_sub_ps(_mm512_set1_ps(2.0f), e), e);
  return _mm512_mul_ps(h, onep);
}

/* GELU = x Phi(x), Phi(x) = 0.5 erfc(-x / sqrt 2) = Q(-x) = 1 - Q(x), Q(a) = 0.5 erfc(a / sqrt 2).
 * For |x| < 8: Q(|x|) from a piecewise polynomial, 32 intervals of width 1/4 on
 * [0, 8), degree 7 in u = 2 (4|x| - i) - 1 in [-1, 1] on interval i; the eight
 * coefficients are looked up per lane with vpermt2ps from two registers each.
 * Coefficients: relative minimax fit of Q on each interval (weighted least
 * squares at 60 Chebyshev nodes with Lawson's reweighting, long double, then
 * rounded to float): 2.5e-7 relative with float Horner.  Then Phi = Q for x < 0
 * (relative accuracy kept in the tail), 1 - Q for x >= 0; x >= 8 gives x
 * (Q(8) = 6e-16).  Lanes with x <= -8 or NaN (6e-16 of N(0, 1) samples) take
 * the erfc form above, blended per lane, so each element's result depends only
 * on its value. */
static _Alignas(64) const float gelu_q[8][32] = {
    {0.450261772f, 0.353830248f, 0.265985519f, 0.190786958f, 0.130294517f, 0.0845657215f, 0.0520812795f,
     0.0303963609f, 0.0167933069f, 0.00877447519f, 0.00433244836f, 0.00202013738f, 0.000889025279f,
     0.000369078451f, 0.000144480728f, 5.33123493e-05f, 1.85367371e-05f, 6.07162383e-06f, 1.87299202e-06f,
     5.4404228e-07f, 1.48768876e-07f, 3.82913399e-08f, 9.27539912e-09f, 2.1142168e-09f, 4.53418025e-10f,
     9.14814752e-11f, 1.73624084e-11f, 3.09949288e-12f, 5.20403436e-13f, 8.21725229e-14f, 1.22017188e-14f,
     1.70371413e-15f},
    {-0.0494797118f, -0.046481885f, -0.0410201214f, -0.034006875f, -0.0264845807f, -0.0193765331f,
     -0.0133172832f, -0.0085982848f, -0.0052151233f, -0.00297148759f, -0.0015905227f, -0.000799765054f,
     -0.000377782242f, -0.000167639853f, -6.98826916e-05f, -2.73664555e-05f, -1.00675561e-05f,
     -3.47925425e-06f, -1.12954854e-06f, -3.44492832e-07f, -9.86988482e-08f, -2.65644342e-08f,
     -6.7165411e-09f, -1.59531832e-09f, -3.55963647e-10f, -7.46140372e-11f, -1.46923758e-11f,
     -2.71781642e-12f, -4.72285676e-13f, -7.70985313e-14f, -1.18234441e-14f, -1.70332884e-15f},
    {0.000386560248f, 0.00108941924f, 0.00160234852f, 0.00185975095f, 0.00186219707f, 0.00166517077f,
     0.00135253661f, 0.00100761151f, 0.000692633563f, 0.000441080192f, 0.000260945118f, 0.000143707774f,
     7.37855953e-05f, 3.53615324e-05f, 1.58327966e-05f, 6.62781349e-06f, 2.5955419e-06f, 9.51358629e-07f,
     3.26510133e-07f, 1.04962673e-07f, 3.16144835e-08f, 8.9239931e-09f, 2.36128517e-09f, 5.85781423e-10f,
     1.3626747e-10f, 2.97290699e-11f, 6.08357245e-12f, 1.16781433e-12f, 2.10315326e-13f, 3.55377315e-14f,
     5.63463469e-15f, 8.38361659e-16f},
    {0.000126840081f, 0.000104024402f, 6.50954025e-05f, 2.07561479e-05f, -1.83202264e-05f, -4.49406871e-05f,
     -5.68975738e-05f, -5.63282774e-05f, -4.7745878e-05f, -3.59103105e-05f, -2.4398887e-05f,
     -1.51322738e-05f, -8.62369234e-06f, -4.53615348e-06f, -2.20942593e-06f, -9.98848805e-07f,
     -4.1989108e-07f, -1.64364138e-07f, -5.9979655e-08f, -2.04234034e-08f, -6.49396981e-09f,
     -1.92941951e-09f, -5.35933242e-10f, -1.39239217e-10f, -3.38493712e-11f, -7.70240555e-12f,
     -1.641038e-12f, -3.27447325e-13f, -6.12062145e-14f, -1.07193968e-14f, -1.75932396e-15f, -2.70640976e-16f},
    {-1.50212691e-06f, -4.05604214e-06f, -5.44415207e-06f, -5.41063628e-06f, -4.20539936e-06f,
     -2.40534678e-06f, -6.32914805e-07f, 6.76485627e-07f, 1.36688618e-06f, 1.51657218e-06f, 1.32192974e-06f,
     9.85304723e-07f, 6.50009952e-07f, 3.86336382e-07f, 2.09055585e-07f, 1.03694248e-07f, 4.73670632e-08f,
     1.99939088e-08f, 7.81848275e-09f, 2.83794788e-09f, 9.57677826e-10f, 3.00824476e-10f, 8.80508999e-11f,
     2.40355617e-11f, 6.12334879e-12f, 1.45681937e-12f, 3.23843057e-13f, 6.72938132e-14f, 1.30768013e-14f,
     2.37720623e-15f, 4.04395631e-16f, 6.43932909e-17f},
    {-2.92584843e-07f, -2.05778633e-07f, -6.74997622e-08f, 6.97115397e-08f, 1.61213848e-07f, 1.88010844e-07f,
     1.59062736e-07f, 1.00306835e-07f, 3.92877162e-08f, -5.88125015e-09f, -2.95655784e-08f, -3.53512952e-08f,
     -3.05693959e-08f, -2.19651195e-08f, -1.37672593e-08f, -7.70443975e-09f, -3.90076327e-09f,
     -1.80173465e-09f, -7.6352008e-10f, -2.98055414e-10f, -1.07505803e-10f, -3.59115897e-11f,
     -1.11301888e-11f, -3.20537325e-12f, -8.58797083e-13f, -2.14278194e-13f, -4.98323679e-14f,
     -1.08095389e-14f, -2.1884515e-15f, -4.13748966e-16f, -7.3082585e-17f, -1.20656278e-17f},
    {3.87633081e-09f, 1.00205497e-08f, 1.21803865e-08f, 9.97582106e-09f, 4.98014385e-09f, -3.58898217e-10f,
     -4.04396072e-09f, -5.30945288e-09f, -4.57839766e-09f, -2.86870772e-09f, -1.14210619e-09f,
     5.89821109e-11f, 6.31886043e-10f, 7.37515771e-10f, 6.03694317e-10f, 4.06233797e-10f, 2.3703689e-10f,
     1.22988147e-10f, 5.755358e-11f, 2.45084075e-11f, 9.55474068e-12f, 3.42504909e-12f, 1.13257049e-12f,
     3.46337163e-13f, 9.81357058e-14f, 2.58073473e-14f, 6.30694973e-15f, 1.43394356e-15f, 3.03587858e-16f,
     5.98991194e-17f, 1.10214041e-17f, 1.89231048e-18f},
    {5.33148636e-10f, 3.13247456e-10f, -1.19178027e-11f, -2.85609369e-10f, -3.98551359e-10f,
     -3.38708478e-10f, -1.76401616e-10f, -7.47858633e-12f, 1.00946938e-10f, 1.32096167e-10f, 1.07653005e-10f,
     6.1913065e-11f, 2.10698126e-11f, -3.81470983e-12f, -1.34786444e-11f, -1.36875277e-11f, -1.00955728e-11f,
     -6.17044653e-12f, -3.27746619e-12f, -1.54847684e-12f, -6.59549347e-13f, -2.55445675e-13f,
     -9.04950485e-14f, -2.94499227e-14f, -8.83233695e-15f, -2.44729947e-15f, -6.27753111e-16f,
     -1.49311156e-16f, -3.29751349e-17f, -6.76960519e-18f, -1.29311243e-18f, -2.30017628e-19f},
};

static inline __m512 gelu16(__m512 x) {
  __m512 a = _mm512_abs_ps(x);
  __mmask16 big = _mm512_cmp_ps_mask(a, _mm512_set1_ps(8.0f), _CMP_NLT_UQ); /* |x| >= 8 or NaN */
  __mmask16 pos = _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_GE_OQ);
  __m512 t = _mm512_mul_ps(a, _mm512_set1_ps(4.0f)); /* exact */
  __m512i i = _mm512_cvttps_epi32(t);               /* interval; only its low 5 bits are used */
  __m512 u = _mm512_fmsub_ps(_mm512_sub_ps(t, _mm512_cvtepi32_ps(i)), _mm512_set1_ps(2.0f), _mm512_set1_ps(1.0f));
#define Q_COEF(j) _mm512_permutex2var_ps(_mm512_load_ps(gelu_q[j]), i, _mm512_load_ps(gelu_q[j] + 16))
  __m512 q = Q_COEF(7);
  q = _mm512_fmadd_ps(q, u, Q_COEF(6));
  q = _mm512_fmadd_ps(q, u, Q_COEF(5));
  q = _mm512_fmadd_ps(q, u, Q_COEF(4));
  q = _mm512_fmadd_ps(q, u, Q_COEF(3));
  q = _mm512_fmadd_ps(q, u, Q_COEF(2));
  q = _mm512_fmadd_ps(q, u, Q_COEF(1));
  q = _mm512_fmadd_ps(q, u, Q_COEF(0));
#undef Q_COEF
  __m512 phi = _mm512_mask_sub_ps(q, pos, _mm512_set1_ps(1.0f), q);
  __m512 r = _mm512_mul_ps(x, phi);
  r = _mm512_mask_mov_ps(r, big & pos, x); /* x >= 8 (and +inf) */
  __mmask16 slow = big & ~pos;              /* x <= -8 or NaN */
  if (slow) r = _mm512_mask_mov_ps(r, slow, gelu16_erfc(x));
  return r;
}

static inline double hsum_d(__m512 v) {
  __m256 lo = _mm512_castps512_ps256(v);
  __m256 hi = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1));
  __m512d a = _mm512_cvtps_pd(lo), b = _mm512_cvtps_pd(hi);
  return _mm512_reduce_add_pd(_mm512_add_pd(a, b));
}

static double v_sum(const float *x, int64_t n) {
  double tot = 0.0;
  for (int64_t i = 0; i < n; i += BLOCK) {
    int64_t m = n - i < BLOCK ? n - i : BLOCK, j = 0;
    const float *p = x + i;
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (; j + 4 * W <= m; j += 4 * W) {
      a0 = _mm512_add_ps(a0, _mm512_loadu_ps(p + j));
      a1 = _mm512_add_ps(a1, _mm512_loadu_ps(p + j + W));
      a2 = _mm512_add_ps(a2, _mm512_loadu_ps(p + j + 2 * W));
      a3 = _mm512_add_ps(a3, _mm512_loadu_ps(p + j + 3 * W));
    }
    for (; j < m; j += W) {
      __mmask16 k = m - j >= W ? (__mmask16)0xffff : tail_mask(m - j);
      a0 = _mm512_add_ps(a0, _mm512_maskz_loadu_ps(k, p + j));
    }
    tot += hsum_d(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
  }
  return tot;
}

static double v_sum_sq_dev(const float *x, int64_t n, float mean) {
  double tot = 0.0;
  __m512 mu = _mm512_set1_ps(mean);
  for (int64_t i = 0; i < n; i += BLOCK) {
    int64_t m = n - i < BLOCK ? n - i : BLOCK, j = 0;
    const float *p = x + i;
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (; j + 4 * W <= m; j += 4 * W) {
      __m512 d0 = _mm512_sub_ps(_mm512_loadu_ps(p + j), mu), d1 = _mm512_sub_ps(_mm512_loadu_ps(p + j + W), mu);
      __m512 d2 = _mm512_sub_ps(_mm512_loadu_ps(p + j + 2 * W), mu);
      __m512 d3 = _mm512_sub_ps(_mm512_loadu_ps(p + j + 3 * W), mu);
      a0 = _mm512_fmadd_ps(d0, d0, a0);
      a1 = _mm512_fmadd_ps(d1, d1, a1);
      a2 = _mm512_fmadd_ps(d2, d2, a2);
      a3 = _mm512_fmadd_ps(d3, d3, a3);
    }
    for (; j < m; j += W) {
      __mmask16 k = m - j >= W ? (__mmask16)0xffff : tail_mask(m - j);
      __m512 d = _mm512_maskz_sub_ps(k, _mm512_maskz_loadu_ps(k, p + j), mu);
      a0 = _mm512_fmadd_ps(d, d, a0);
    }
    tot += hsum_d(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
  }
  return tot;
}

static void v_sums_shifted(const float *x, int64_t n, float k, double s[2]) {
  double t1 = 0.0, t2 = 0.0;
  __m512 mu = _mm512_set1_ps(k);
  for (int64_t i = 0; i < n; i += BLOCK) {
    int64_t m = n - i < BLOCK ? n - i : BLOCK, j = 0;
    const float *p = x + i;
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, q0 = a0, q1 = a0;
    for (; j + 2 * W <= m; j += 2 * W) {
      __m512 d0 = _mm512_sub_ps(_mm512_loadu_ps(p + j), mu), d1 = _mm512_sub_ps(_mm512_loadu_ps(p + j + W), mu);
      a0 = _mm512_add_ps(a0, d0);
      a1 = _mm512_add_ps(a1, d1);
      q0 = _mm512_fmadd_ps(d0, d0, q0);
      q1 = _mm512_fmadd_ps(d1, d1, q1);
    }
    for (; j < m; j += W) {
      __mmask16 km = m - j >= W ? (__mmask16)0xffff : tail_mask(m - j);
      __m512 d = _mm512_maskz_sub_ps(km, _mm512_maskz_loadu_ps(km, p + j), mu);
      a0 = _mm512_add_ps(a0, d);
      q0 = _mm512_fmadd_ps(d, d, q0);
    }
    t1 += hsum_d(_mm512_add_ps(a0, a1));
    t2 += hsum_d(_mm512_add_ps(q0, q1));
  }
  s[0] = t1, s[1] = t2;
}

static void v_affine(float *y, const float *x, int64_t n, float m, float a, float b, int silu, const float *pf) {
  __m512 vm = _mm512_set1_ps(m), va = _mm512_set1_ps(a), vb = _mm512_set1_ps(b);
  for (int64_t i = 0; i < n; i += W) {
    __mmask16 k = n - i >= W ? (__mmask16)0xffff : tail_mask(n - i);
    if (pf) _mm_prefetch((const char *)(pf + i), _MM_HINT_T1); /* a hint: never faults */
    PF_STREAM(y + i);
    __m512 v = _mm512_fmadd_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, x + i), vm), va, vb);
    if (silu) v = silu16(v, _mm512_set1_ps(-1.0f));
    _mm512_mask_storeu_ps(y + i, k, v);
  }
}

static void v_normalize(float *y, const float *x, int64_t n, float mean, float rstd, const float *g,
                        const float *b, const float *pf) {
  __m512 vm = _mm512_set1_ps(mean), vr = _mm512_set1_ps(rstd);
  for (int64_t i = 0; i < n; i += W) {
    __mmask16 k = n - i >= W ? (__mmask16)0xffff : tail_mask(n - i);
    if (pf) _mm_prefetch((const char *)(pf + i), _MM_HINT_T0);
    PF_STREAM(y + i);
    __m512 v = _mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, x + i), vm), vr);
    if (g) v = _mm512_mul_ps(v, _mm512_maskz_loadu_ps(k, g + i));
    if (b) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(k, b + i));
    _mm512_mask_storeu_ps(y + i, k, v);
  }
}

/* Per-row max / sum of four vectors at once: 128-bit lane j of the result
 * holds row j's value in all four floats.  Every row goes through the same
 * tree (lanes L0 op L2, L1 op L3, then those two, then the pairs inside the
 * lane) whatever its position, so a row's result does not depend on its
 * neighbours. */
#define RED4(name, OP)                                                                          \
  static inline __m512 name(__m512 a, __m512 b, __m512 c, __m512 d) {                           \
    __m512 ab = OP(_mm512_shuffle_f32x4(a, b, 0x44), _mm512_shuffle_f32x4(a, b, 0xEE));         \
    __m512 cd = OP(_mm512_shuffle_f32x4(c, d, 0x44), _mm512_shuffle_f32x4(c, d, 0xEE));         \
    __m512 u = OP(_mm512_shuffle_f32x4(ab, cd, 0x88), _mm512_shuffle_f32x4(ab, cd, 0xDD));      \
    u = OP(u, _mm512_permute_ps(u, 0x4E));                                                      \
    return OP(u, _mm512_permute_ps(u, 0xB1));                                                   \
  }
RED4(red4_max, _mm512_max_ps)
RED4(red4_add, _mm512_add_ps)
#undef RED4

/* lane j of a red4 result in every float */
/* 128-bit block j of u in every block (a permute: j need not be a constant, as at -O0/-O1) */
#define LANE_BCAST(u, j) \
  _mm512_permutexvar_ps(_mm512_add_epi32(_mm512_setr_epi32(0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3), \
                                         _mm512_set1_epi32(4 * (j))), (u))

/* Four rows of nv <= 8 vectors (n <= 128, e.g. the 77 keys of the text
 * encoder's attention) in registers; nv is a constant at each call site, so the
 * loops unroll.  A row is one dependency chain (max, reduce, exp, sum, reduce,
 * divide): four of them interleave, their reductions share the shuffles above,
 * the sum stays in f32 (<= 128 terms in [0, 1], one of them 1) and one divide
 * serves the four rows.  Rows past nr (the last group) repeat row nr - 1 and
 * are not stored.  A fully masked row (max -inf) gives 0 / 0 = NaN, as torch. */
#define SHORT_R 4
static inline __attribute__((always_inline)) void softmax_rows4(float *y, const float *x, int64_t n, int nr,
                                                                const int nv, __mmask16 kl) {
  __m512 v[SHORT_R][8], mx[SHORT_R], acc[SHORT_R], m[SHORT_R], ninf = _mm512_set1_ps(-INFINITY);
  /* x of the rows 4 groups ahead and y of the rows 2 groups ahead (the output
   * lines, so that the stores do not wait for them): prefetched, a hint that
   * never faults.  Without the y prefetch 77-wide rows from DRAM took ~1.3x. */
  for (int64_t o = 0; o < SHORT_R * n; o += W) {
    _mm_prefetch((const char *)(x + 4 * SHORT_R * n + o), _MM_HINT_T0);
    _mm_prefetch((const char *)(y + 2 * SHORT_R * n + o), _MM_HINT_T0);
  }
#pragma GCC unroll 4
  for (int r = 0; r < SHORT_R; r++) {
    const float *xr = x + (r < nr ? r : nr - 1) * n; /* (n) */
    mx[r] = v[r][nv - 1] = _mm512_mask_loadu_ps(ninf, kl, xr + (nv - 1) * W);
#pragma GCC unroll 8
    for (int q = 0; q < nv - 1; q++) {
      v[r][q] = _mm512_loadu_ps(xr + q * W);
      mx[r] = _mm512_max_ps(mx[r], v[r][q]);
    }
  }
  /* -FLT_MAX for a fully masked row: then every x - max = -inf, e = 0, sum 0 */
  __m512 u = _mm512_max_ps(red4_max(mx[0], mx[1], mx[2], mx[3]), _mm512_set1_ps(-3.40282347e38f));
  m[0] = LANE_BCAST(u, 0), m[1] = LANE_BCAST(u, 1), m[2] = LANE_BCAST(u, 2), m[3] = LANE_BCAST(u, 3);
#pragma GCC unroll 4
  for (int r = 0; r < SHORT_R; r++) acc[r] = _mm512_setzero_ps();
#pragma GCC unroll 8
  for (int q = 0; q < nv; q++)
#pragma GCC unroll 4
    for (int r = 0; r < SHORT_R; r++) {
      __m512 e = exp16_neg(_mm512_sub_ps(v[r][q], m[r]));
      if (q == nv - 1) e = _mm512_maskz_mov_ps(kl, e);
      acc[r] = _mm512_add_ps(acc[r], e);
      v[r][q] = e;
    }
  __m512 inv = _mm512_div_ps(_mm512_set1_ps(1.0f), red4_add(acc[0], acc[1], acc[2], acc[3]));
#pragma GCC unroll 4
  for (int r = 0; r < SHORT_R; r++) {
    if (r >= nr) break;
    __m512 ir = LANE_BCAST(inv, r);
    float *yr = y + r * n;
#pragma GCC unroll 8
    for (int q = 0; q < nv - 1; q++) _mm512_storeu_ps(yr + q * W, _mm512_mul_ps(v[r][q], ir));
    _mm512_mask_storeu_ps(yr + (nv - 1) * W, kl, _mm512_mul_ps(v[r][nv - 1], ir));
  }
}

#define SHORT_CASE(k) \
  case k:             \
    for (int64_t r0 = 0; r0 < rows; r0 += SHORT_R) \
      softmax_rows4(y + r0 * n, x + r0 * n, n, rows - r0 < SHORT_R ? (int)(rows - r0) : SHORT_R, k, kl); \
    break;
static void softmax_short(float *y, const float *x, int64_t rows, int64_t n) {
  int nv = (int)((n + W - 1) / W);
  __mmask16 kl = n % W ? tail_mask(n % W) : (__mmask16)0xffff; /* the last vector's lanes */
  switch (nv) {
    SHORT_CASE(1) SHORT_CASE(2) SHORT_CASE(3) SHORT_CASE(4) SHORT_CASE(5) SHORT_CASE(6) SHORT_CASE(7) SHORT_CASE(8)
  }
}
#undef SHORT_CASE
#undef LANE_BCAST

/* Long rows: max pass, exp pass (storing exp into y, the next row's x lines
 * prefetched meanwhile: rows are contiguous in the callers), scale pass over y in L1/L2. */
static void softmax_long(float *y, const float *x, int64_t n) {
  __m512 mx = _mm512_set1_ps(-INFINITY);
  for (int64_t i = 0; i < n; i += W) {
    __mmask16 k = n - i >= W ? (__mmask16)0xffff : tail_mask(n - i);
    mx = _mm512_max_ps(mx, _mm512_mask_loadu_ps(_mm512_set1_ps(-INFINITY), k, x + i));
  }
  float m = _mm512_reduce_max_ps(mx);
  if (m == -INFINITY) m = 0.0f; /* a fully masked row: exp(-inf) = 0 everywhere, sum 0 -> NaN as in torch */
  __m512 vm = _mm512_set1_ps(m);
  double sum = 0.0;
  for (int64_t i = 0; i < n; i += BLOCK) {
    int64_t e = n - i < BLOCK ? n : i + BLOCK;
    __m512 acc = _mm512_setzero_ps();
    for (int64_t j = i; j < e; j += W) {
      __mmask16 k = e - j >= W ? (__mmask16)0xffff : tail_mask(e - j);
      _mm_prefetch((const char *)(x + n + j), _MM_HINT_T0); /* a hint: never faults */
      PF_STREAM(y + j);
      __m512 v = exp16_neg(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, x + j), vm));
      v = _mm512_maskz_mov_ps(k, v);
      acc = _mm512_add_ps(acc, v);
      _mm512_mask_storeu_ps(y + j, k, v);
    }
    sum += hsum_d(acc);
  }
  __m512 inv = _mm512_set1_ps((float)(1.0 / sum));
  for (int64_t i = 0; i < n; i += W) {
    __mmask16 k = n - i >= W ? (__mmask16)0xffff : tail_mask(n - i);
    _mm512_mask_storeu_ps(y + i, k, _mm512_mul_ps(_mm512_maskz_loadu_ps(k, y + i), inv));
  }
}

static void v_softmax(float *y, const float *x, int64_t rows, int64_t n) {
  if (n <= 8 * W)
    softmax_short(y, x, rows, n);
  else
    for (int64_t r = 0; r < rows; r++) softmax_long(y + r * n, x + r * n, n);
}

/* one loop per op: a shared loop made GCC keep GELU's tables live through the SiLU path */
#define UNARY_LOOP(expr)                                                   \
  for (int64_t i = 0; i < n; i += W) {                                     \
    __mmask16 k = n - i >= W ? (__mmask16)0xffff : tail_mask(n - i);       \
    PF_STREAM(x + i);                                                      \
    PF_STREAM(y + i);                                                      \
    __m512 v = _mm512_maskz_loadu_ps(k, x + i);                            \
    _mm512_mask_storeu_ps(y + i, k, expr);                                 \
  }

static inline __m512 quick_gelu16(__m512 v) { return silu16(v, _mm512_set1_ps(-1.702f)); }

static void v_unary(dg__unary_op op, float *y, const float *x, int64_t n) {
  if (op == DG__UNARY_SILU)
    UNARY_LOOP(silu16(v, _mm512_set1_ps(-1.0f)))
  else if (op == DG__UNARY_GELU)
    UNARY_LOOP(gelu16(v))
  else
    UNARY_LOOP(quick_gelu16(v))
}
#undef UNARY_LOOP

static void v_binary_vec(dg__binary_op op, float *y, const float *a, const float *b, int64_t n) {
  for (int64_t i = 0; i < n; i += W) {
    __mmask16 k = n - i >= W ? (__mmask16)0xffff : tail_mask(n - i);
    __m512 va = _mm512_maskz_loadu_ps(k, a + i), vb = _mm512_maskz_loadu_ps(k, b + i);
    _mm512_mask_storeu_ps(y + i, k, op == DG__BINARY_ADD ? _mm512_add_ps(va, vb) : _mm512_mul_ps(va, vb));
  }
}

static void v_binary_scalar(dg__binary_op op, float *y, const float *a, float s, int64_t n) {
  __m512 vb = _mm512_set1_ps(s);
  for (int64_t i = 0; i < n; i += W) {
    __mmask16 k = n - i >= W ? (__mmask16)0xffff : tail_mask(n - i);
    __m512 va = _mm512_maskz_loadu_ps(k, a + i);
    _mm512_mask_storeu_ps(y + i, k, op == DG__BINARY_ADD ? _mm512_add_ps(va, vb) : _mm512_mul_ps(va, vb));
  }
}

static void v_scale(float *y, const float *x, int64_t n, float alpha, float beta) {
  __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
  for (int64_t i = 0; i < n; i += W) {
    __mmask16 k = n - i >= W ? (__mmask16)0xffff : tail_mask(n - i);
    _mm512_mask_storeu_ps(y + i, k, _mm512_fmadd_ps(_mm512_maskz_loadu_ps(k, x + i), va, vb));
  }
}

static void v_exp(float *y, const float *x, int64_t n) {
  for (int64_t i = 0; i < n; i += W) {
    __mmask16 k = n - i >= W ? (__mmask16)0xffff : tail_mask(n - i);
    _mm512_mask_storeu_ps(y + i, k, exp16(_mm512_maskz_loadu_ps(k, x + i)));
  }
}

static void v_geglu(float *y, const float *a, const float *gate, int64_t n) {
  for (int64_t i = 0; i < n; i += W) {
    __mmask16 k = n - i >= W ? (__mmask16)0xffff : tail_mask(n - i);
    PF_STREAM(a + i);
    PF_STREAM(gate + i);
    PF_STREAM(y + i);
    __m512 g = gelu16(_mm512_maskz_loadu_ps(k, gate + i));
    _mm512_mask_storeu_ps(y + i, k, _mm512_mul_ps(_mm512_maskz_loadu_ps(k, a + i), g));
  }
}

/* 16 x 16 blocks transposed in registers; masked loads and stores at the edges. */
static void v_transpose(float *y, int64_t ldy, const float *x, int64_t ldx, int rows, int cols) {
  for (int i0 = 0; i0 < rows; i0 += 16)
    for (int c0 = 0; c0 < cols; c0 += 16) {
      int ri = rows - i0 < 16 ? rows - i0 : 16, cj = cols - c0 < 16 ? cols - c0 : 16;
      __mmask16 mc = tail_mask(cj), mr = tail_mask(ri);
      __m512 v[16];
#pragma GCC unroll 16
      for (int r = 0; r < 16; r++)
        v[r] = r < ri ? _mm512_maskz_loadu_ps(mc, x + (int64_t)(i0 + r) * ldx + c0) : _mm512_setzero_ps();
      TRANSPOSE16(v);
#pragma GCC unroll 16
      for (int c = 0; c < 16; c++)
        if (c < cj) _mm512_mask_storeu_ps(y + (int64_t)(c0 + c) * ldy + i0, mr, v[c]);
    }
}

static const dg__vec_kernels table = {v_sum,   v_sum_sq_dev, v_sums_shifted,  v_affine, v_normalize, v_softmax,
                                      v_unary, v_binary_vec, v_binary_scalar, v_scale,  v_exp,       v_geglu,
                                      v_transpose};

const dg__vec_kernels *dg__vec_avx512(void) { return &table; }

#else

const dg__vec_kernels *dg__vec_avx512(void) { return 0; }

#endif
