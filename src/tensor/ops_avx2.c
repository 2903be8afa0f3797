/* AVX2 + FMA row kernels of the memory-bound ops (table in ops_internal.h);
 * the 8-lane twin of ops_avx512.c.  Only reached when the engine's ISA is
 * DG_ISA_AVX2.  Tails use vmaskmovps.  exp: the AVX-512 file's reduction and
 * polynomial, 2^n from the exponent bits of the rounding FMA (exp8_core); the
 * tested v_exp is correct down to the subnormals (two-factor scaling for the
 * lanes outside [-87.3, 88.3]), the kernels' exp gives 0 below x = -87.68
 * (results under FLT_MIN, which the compute threads' FTZ flushes anyway). */
#include "tensor/ops_internal.h"

#if defined(__x86_64__) && defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#include <math.h>

#define W 8
#define BLOCK 1024

static inline __m256i tail_mask(int64_t r) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)(r < W ? r : W)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
/* Streaming loops prefetch their inputs and output PF_AHEAD floats (4 KiB)
 * ahead, one prefetch per 64-byte line, i.e. every other vector (see
 * ops_avx512.c; a hint: never faults, harmless past the end). */
#define PF_AHEAD 1024
#define PF_LINE(p) _mm_prefetch((const char *)((p) + PF_AHEAD), _MM_HINT_T0)
#define PF_STREAM2(i, p, q)       \
  do {                            \
    if (!((i) & 15)) {            \
      PF_LINE((p) + (i));         \
      PF_LINE((q) + (i));         \
    }                             \
  } while (0)

static inline __m256 load(const float *p, int64_t r) {
  return r >= W ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, tail_mask(r));
}
static inline void store(float *p, int64_t r, __m256 v) {
  if (r >= W)
    _mm256_storeu_ps(p, v);
  else
    _mm256_maskstore_ps(p, tail_mask(r), v);
}

/* exp on [-88, 88.7]: Cody-Waite reduction x = n ln2 + r (ln2 in two parts),
 * e^r = 1 + r + r^2 q(r) with q of degree 4 (relative minimax fit on
 * |r| <= ln2/2: 3.8e-9 with float coefficients), times 2^n built from the
 * bits of t = x log2e + (1.5 2^23 + 127), which holds n + 127 in its low
 * mantissa bits (one FMA rounds x log2e to the nearest integer n): shifted
 * into the exponent field it is 2^n for n in [-126, 127], 0 for n = -127
 * (x < -87.68, where e^x < FLT_MIN: flushed, as the compute threads' FTZ
 * does anyway; on (-87.68, -87.34) the one product rounds to a subnormal)
 * and +inf for n = 128 (x > 88.38).  The caller clamps. */
#define EXP_MAGIC 12583039.0f /* 1.5 * 2^23 + 127 */
static inline __m256 exp8_core(__m256 x) {
  __m256 t = _mm256_fmadd_ps(x, _mm256_set1_ps(1.44269504088896341f), _mm256_set1_ps(EXP_MAGIC));
  __m256 n = _mm256_sub_ps(t, _mm256_set1_ps(EXP_MAGIC));
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.381459180e-03f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.368719369e-03f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.166838899e-02f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.666652113e-01f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.999999404e-01f));
  p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
  return _mm256_mul_ps(p, _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_castps_si256(t), 23)));
}

/* the kernels' exp: e^x clamped to [-88, 88.7] (0 below -87.68, inf above 88.38); NaN stays NaN */
static inline __m256 exp8_ops(__m256 x) {
  return exp8_core(_mm256_max_ps(_mm256_set1_ps(-88.0f), _mm256_min_ps(_mm256_set1_ps(88.7f), x)));
}

/* e^x correct over the whole range: the same core on [-87.3, 88.3] (normal
 * results, one rounding), and for vectors with lanes outside it the wide form:
 * same reduction and polynomial, 2^n as two exact factors 2^h 2^(n-h) so
 * results down to the subnormals round once. */
static inline __m256 exp8_wide(__m256 x) {
  __m256 xc = _mm256_max_ps(_mm256_min_ps(x, _mm256_set1_ps(89.0f)), _mm256_set1_ps(-104.0f));
  __m256 n = _mm256_round_ps(_mm256_mul_ps(xc, _mm256_set1_ps(1.44269504088896341f)),
                             _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), xc);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.381459180e-03f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.368719369e-03f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.166838899e-02f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.666652113e-01f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.999999404e-01f));
  p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
  __m256i ni = _mm256_cvtps_epi32(n), h = _mm256_srai_epi32(ni, 1), bias = _mm256_set1_epi32(127);
  __m256 s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(h, bias), 23));
  __m256 s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(_mm256_sub_epi32(ni, h), bias), 23));
  __m256 y = _mm256_mul_ps(_mm256_mul_ps(p, s1), s2);
  return _mm256_blendv_ps(y, x, _mm256_cmp_ps(x, x, _CMP_UNORD_Q)); /* NaN in, NaN out */
}

static inline __m256 exp8(__m256 x) {
  __m256 xc = _mm256_max_ps(_mm256_min_ps(x, _mm256_set1_ps(88.3f)), _mm256_set1_ps(-87.3f));
  __m256 y = exp8_core(xc);
  __m256 out = _mm256_cmp_ps(x, xc, _CMP_NEQ_UQ); /* clamped or NaN */
  if (_mm256_movemask_ps(out)) y = _mm256_blendv_ps(y, exp8_wide(x), out);
  return y;
}

/* x sigmoid(k x) = x / (1 + e^(-k x)); e^(-k x) = inf (k x < -88.38) gives x / inf = -0 */
static inline __m256 silu8(__m256 v, __m256 negk) {
  __m256 en = exp8_ops(_mm256_mul_ps(v, negk));
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
 * Q(|x|) for |x| < 8 from a piecewise polynomial over 16 intervals of width
 * 1/2: interval i = floor(2|x|), variable w = i + 1 - 2|x| in (0, 1] (measured
 * from the interval's right end: in the tail every coefficient is positive and
 * Horner does not cancel), coefficients looked up per lane with vpermps (an
 * AVX2 permute reads 8 entries): table A (i < 8, |x| < 4) degree 7, table B
 * (4 <= |x| < 8) degree 10.  Relative minimax fits per interval (weighted
 * least squares at 200 Chebyshev nodes, Lawson reweighting, long double):
 * with float coefficients and float Horner 1.6e-7 (A), 2.6e-7 (B).  Vectors
 * with every |x| < 4 evaluate A only; the others (out of line) evaluate A and
 * B and blend per lane (a lane of A gets bit-identical results either way).
 * x >= 8 gives x (Q(8) = 6e-16); lanes with x <= -8 or NaN take the erfc form
 * above, blended per lane. */
static _Alignas(32) const float gelu_a[8][8] = {
    {3.085375428e-01f, 1.586552560e-01f, 6.680720299e-02f, 2.275013179e-02f, 6.209665444e-03f, 1.349898055e-03f,
     2.326290851e-04f, 3.167124305e-05f},
    {1.760326624e-01f, 1.209853590e-01f, 6.475879997e-02f, 2.699548565e-02f, 8.764150552e-03f, 2.215923741e-03f,
     4.363411572e-04f, 6.691511953e-05f},
    {2.200415172e-02f, 3.024641424e-02f, 2.428453043e-02f, 1.349770091e-02f, 5.477588158e-03f, 1.661953051e-03f,
     3.818033147e-04f, 6.691500312e-05f},
    {-5.501596723e-03f, -6.080034041e-07f, 3.373023123e-03f, 3.374785185e-03f, 1.917204005e-03f, 7.385525387e-04f,
     2.044937864e-04f, 4.182320845e-05f},
    {-1.258256380e-03f, -1.257831114e-03f, -3.801960847e-04f, 2.797521593e-04f, 3.707057913e-04f, 2.081265411e-04f,
     7.375091809e-05f, 1.811591574e-05f},
    {1.378394518e-04f, -1.312195964e-04f, -1.815779688e-04f, -6.708862929e-05f, 2.114915151e-05f, 3.373943036e-05f,
     1.768959919e-05f, 5.701595455e-06f},
    {5.484596841e-05f, 3.746525181e-05f, -1.278505806e-05f, -2.494347609e-05f, -8.291652193e-06f, 2.842880576e-06f,
     3.287189429e-06f, 1.254035396e-06f},
    {-7.182084573e-06f, 2.705274937e-06f, 6.259469501e-06f, 1.378091497e-06f, -2.039343599e-06f, -1.370938094e-06f,
     -9.699370196e-08f, 2.329651352e-07f},
};

static _Alignas(32) const float gelu_b[11][8] = {
    {3.397673026e-06f, 2.866515842e-07f, 1.898956192e-08f, 9.865877004e-10f, 4.016000726e-11f, 1.279812519e-12f,
     3.190891697e-14f, 6.220960425e-16f},
    {7.991870916e-06f, 7.433597489e-07f, 5.384880097e-08f, 3.037941454e-09f, 1.334778260e-10f, 4.567359511e-12f,
     1.217159647e-13f, 2.526132617e-15f},
    {8.990854440e-06f, 9.291997003e-07f, 7.404210578e-08f, 4.556914845e-09f, 2.169018992e-10f, 7.992924031e-12f,
     2.282205729e-13f, 5.052417699e-15f},
    {6.410148217e-06f, 7.433599194e-07f, 6.562808608e-08f, 4.430282807e-09f, 2.294069934e-10f, 9.133890692e-12f,
     2.801424999e-13f, 6.628258547e-15f},
    {3.231069968e-06f, 4.258820354e-07f, 4.203560522e-08f, 3.133324489e-09f, 1.774371206e-10f, 7.667665114e-12f,
     2.537306303e-13f, 6.447994689e-15f},
    {1.213702603e-06f, 1.850712295e-07f, 2.065101867e-08f, 1.711226827e-09f, 1.062840718e-10f, 4.977468524e-12f,
     1.763980401e-13f, 4.738602157e-15f},
    {3.471083687e-07f, 6.289807430e-08f, 8.088990811e-09f, 7.599799123e-10f, 5.316306423e-11f, 2.808874444e-12f,
     1.134257754e-13f, 3.536513115e-15f},
    {7.612270281e-08f, 1.699102725e-08f, 2.509475072e-09f, 2.559952805e-10f, 1.829267987e-11f, 9.094684641e-13f,
     3.025572550e-14f, 5.836485288e-16f},
    {1.122317705e-08f, 3.584571306e-09f, 7.199972840e-10f, 1.013051101e-10f, 1.042457006e-11f, 7.995073787e-13f,
     4.606749959e-14f, 2.000671493e-15f},
    {1.686732420e-09f, 6.074810655e-10f, 9.456116445e-11f, 5.580722082e-12f, -4.519582137e-13f, -1.189966637e-13f,
     -1.150768798e-14f, -6.794151855e-16f},
    {-2.178856123e-10f, 6.778906603e-11f, 4.336650136e-11f, 1.042337570e-11f, 1.491380370e-12f, 1.420316772e-13f,
     9.454604627e-15f, 4.519962624e-16f},
};

#define A_COEF(j) _mm256_permutevar8x32_ps(_mm256_load_ps(gelu_a[j]), i)
#define B_COEF(j) _mm256_permutevar8x32_ps(_mm256_load_ps(gelu_b[j]), i)

/* vectors with a lane |x| >= 4 or NaN (out of line: rare in activations) */
static __attribute__((noinline)) __m256 gelu8_wide(__m256 x) {
  __m256 a = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), x);
  __m256 t = _mm256_mul_ps(a, _mm256_set1_ps(2.0f));
  __m256i i = _mm256_cvttps_epi32(t);
  __m256 w = _mm256_sub_ps(_mm256_add_ps(_mm256_cvtepi32_ps(i), _mm256_set1_ps(1.0f)), t);
  __m256 qa = A_COEF(7), qb = B_COEF(10); /* two chains, one blend: a lane of A as in gelu8 */
  qa = _mm256_fmadd_ps(qa, w, A_COEF(6));
  qb = _mm256_fmadd_ps(qb, w, B_COEF(9));
  qa = _mm256_fmadd_ps(qa, w, A_COEF(5));
  qb = _mm256_fmadd_ps(qb, w, B_COEF(8));
  qa = _mm256_fmadd_ps(qa, w, A_COEF(4));
  qb = _mm256_fmadd_ps(qb, w, B_COEF(7));
  qa = _mm256_fmadd_ps(qa, w, A_COEF(3));
  qb = _mm256_fmadd_ps(qb, w, B_COEF(6));
  qa = _mm256_fmadd_ps(qa, w, A_COEF(2));
  qb = _mm256_fmadd_ps(qb, w, B_COEF(5));
  qa = _mm256_fmadd_ps(qa, w, A_COEF(1));
  qb = _mm256_fmadd_ps(qb, w, B_COEF(4));
  qa = _mm256_fmadd_ps(qa, w, A_COEF(0));
  qb = _mm256_fmadd_ps(qb, w, B_COEF(3));
  qb = _mm256_fmadd_ps(qb, w, B_COEF(2));
  qb = _mm256_fmadd_ps(qb, w, B_COEF(1));
  qb = _mm256_fmadd_ps(qb, w, B_COEF(0));
  __m256 q = _mm256_blendv_ps(qa, qb, _mm256_castsi256_ps(_mm256_slli_epi32(i, 28))); /* bit 3 of i: table B */
  __m256 r = _mm256_mul_ps(x, _mm256_blendv_ps(_mm256_sub_ps(_mm256_set1_ps(1.0f), q), q, x));
  r = _mm256_blendv_ps(r, x, _mm256_cmp_ps(x, _mm256_set1_ps(8.0f), _CMP_GE_OQ)); /* x >= 8: x */
  __m256 slow = _mm256_cmp_ps(x, _mm256_set1_ps(-8.0f), _CMP_NGT_UQ);           /* x <= -8 or NaN */
  if (_mm256_movemask_ps(slow)) r = _mm256_blendv_ps(r, gelu8_erfc(x), slow);
  return r;
}

static inline __attribute__((always_inline)) __m256 gelu8(__m256 x) {
  __m256 a = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), x);
  if (_mm256_movemask_ps(_mm256_cmp_ps(a, _mm256_set1_ps(4.0f), _CMP_NLT_UQ))) return gelu8_wide(x);
  __m256 t = _mm256_mul_ps(a, _mm256_set1_ps(2.0f)); /* exact */
  __m256i i = _mm256_cvttps_epi32(t);               /* interval 0..7 */
  __m256 w = _mm256_sub_ps(_mm256_add_ps(_mm256_cvtepi32_ps(i), _mm256_set1_ps(1.0f)), t);
  __m256 q = A_COEF(7);
  q = _mm256_fmadd_ps(q, w, A_COEF(6));
  q = _mm256_fmadd_ps(q, w, A_COEF(5));
  q = _mm256_fmadd_ps(q, w, A_COEF(4));
  q = _mm256_fmadd_ps(q, w, A_COEF(3));
  q = _mm256_fmadd_ps(q, w, A_COEF(2));
  q = _mm256_fmadd_ps(q, w, A_COEF(1));
  q = _mm256_fmadd_ps(q, w, A_COEF(0));
  /* Phi = Q(|x|) for x < 0 (the sign bit selects), 1 - Q(|x|) otherwise */
  return _mm256_mul_ps(x, _mm256_blendv_ps(_mm256_sub_ps(_mm256_set1_ps(1.0f), q), q, x));
}
#undef B_COEF
#undef A_COEF

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
    if (!(i & 15)) {
      if (pf) _mm_prefetch((const char *)(pf + i), _MM_HINT_T1); /* a hint: never faults */
      PF_LINE(y + i);
    }
    __m256 v = _mm256_fmadd_ps(_mm256_sub_ps(load(x + i, n - i), vm), va, vb);
    if (silu) v = silu8(v, _mm256_set1_ps(-1.0f));
    store(y + i, n - i, v);
  }
}

static void v_normalize(float *y, const float *x, int64_t n, float mean, float rstd, const float *g,
                        const float *b, const float *pf) {
  __m256 vm = _mm256_set1_ps(mean), vr = _mm256_set1_ps(rstd);
  for (int64_t i = 0; i < n; i += W) {
    if (!(i & 15)) {
      if (pf) _mm_prefetch((const char *)(pf + i), _MM_HINT_T0);
      PF_LINE(y + i);
    }
    __m256 v = _mm256_mul_ps(_mm256_sub_ps(load(x + i, n - i), vm), vr);
    if (g) v = _mm256_mul_ps(v, load(g + i, n - i));
    if (b) v = _mm256_add_ps(v, load(b + i, n - i));
    store(y + i, n - i, v);
  }
}

/* max / sum of the 8 lanes, in every lane */
static inline __m256 hmax8(__m256 v) {
  v = _mm256_max_ps(v, _mm256_permute2f128_ps(v, v, 1));
  v = _mm256_max_ps(v, _mm256_permute_ps(v, 0x4E));
  return _mm256_max_ps(v, _mm256_permute_ps(v, 0xB1));
}
static inline __m256 hsum8(__m256 v) {
  v = _mm256_add_ps(v, _mm256_permute2f128_ps(v, v, 1));
  v = _mm256_add_ps(v, _mm256_permute_ps(v, 0x4E));
  return _mm256_add_ps(v, _mm256_permute_ps(v, 0xB1));
}

/* softmax's exp of d = x - max <= 0 (or NaN, kept) */
static inline __m256 exp8_neg(__m256 d) { return exp8_core(_mm256_max_ps(_mm256_set1_ps(-88.0f), d)); }

/* Rows of up to 16 vectors (n <= 128, e.g. the 77 keys of the text encoder's
 * attention) held in registers / L1, R rows at a time to hide each row's
 * latency (a row is one dependency chain: max, reduce, exp, sum, reduce,
 * divide).  Reductions stay in vector registers (butterflies; the sum in f32:
 * <= 128 terms in [0, 1], one of them 1), 1 / sum by a vector divide.  A fully
 * masked row (max -inf) gives 0 / 0 = NaN, as torch. */
#define SHORT_R 4
#define SHORT_NV 16
static void softmax_short(float *y, const float *x, int64_t rows, int64_t n) {
  __m256 v[SHORT_R][SHORT_NV], ninf = _mm256_set1_ps(-INFINITY);
  int nv = (int)((n + W - 1) / W), lw = (int)(n - (nv - 1) * W); /* lanes of the last vector */
  __m256i kli = tail_mask(lw);
  __m256 kl = _mm256_castsi256_ps(kli);
  const float *xl = x + (nv - 1) * W;
  float *yl = y + (nv - 1) * W;
  for (int64_t r0 = 0; r0 < rows; r0 += SHORT_R) {
    int nr = rows - r0 < SHORT_R ? (int)(rows - r0) : SHORT_R;
    __m256 vm[SHORT_R], acc[SHORT_R];
    /* x of the rows 4 groups ahead, y of the rows 2 groups ahead (see ops_avx512.c) */
    for (int64_t o = 0; o < SHORT_R * n; o += 16) {
      _mm_prefetch((const char *)(x + (r0 + 4 * SHORT_R) * n + o), _MM_HINT_T0);
      _mm_prefetch((const char *)(y + (r0 + 2 * SHORT_R) * n + o), _MM_HINT_T0);
    }
    for (int r = 0; r < nr; r++) {
      const float *xr = x + (r0 + r) * n; /* (n) */
      __m256 mx = _mm256_blendv_ps(ninf, _mm256_maskload_ps(xl + (r0 + r) * n, kli), kl);
      v[r][nv - 1] = mx;
      for (int q = 0; q < nv - 1; q++) {
        v[r][q] = _mm256_loadu_ps(xr + q * W);
        mx = _mm256_max_ps(mx, v[r][q]);
      }
      /* -FLT_MAX for a fully masked row: then every d = -inf, e = 0, sum 0 */
      vm[r] = _mm256_max_ps(hmax8(mx), _mm256_set1_ps(-3.40282347e38f));
      acc[r] = _mm256_setzero_ps();
    }
    for (int q = 0; q < nv; q++)
      for (int r = 0; r < nr; r++) {
        __m256 e = exp8_neg(_mm256_sub_ps(v[r][q], vm[r]));
        if (q == nv - 1) e = _mm256_and_ps(e, kl);
        acc[r] = _mm256_add_ps(acc[r], e);
        v[r][q] = e;
      }
    for (int r = 0; r < nr; r++) {
      __m256 inv = _mm256_div_ps(_mm256_set1_ps(1.0f), hsum8(acc[r]));
      float *yr = y + (r0 + r) * n;
      for (int q = 0; q < nv - 1; q++) _mm256_storeu_ps(yr + q * W, _mm256_mul_ps(v[r][q], inv));
      _mm256_maskstore_ps(yl + (r0 + r) * n, kli, _mm256_mul_ps(v[r][nv - 1], inv));
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
  __m256 vm = _mm256_max_ps(hmax8(mx), _mm256_set1_ps(-3.40282347e38f)); /* fully masked row: sum 0 -> NaN, as torch */
  double sum = 0.0;
  for (int64_t i = 0; i < n; i += BLOCK) {
    int64_t e = n - i < BLOCK ? n : i + BLOCK;
    __m256 acc = _mm256_setzero_ps();
    for (int64_t j = i; j < e; j += W) {
      if (!((j - i) & 15)) {
        _mm_prefetch((const char *)(x + n + j), _MM_HINT_T0); /* a hint: never faults */
        PF_LINE(y + j);
      }
      __m256 v = exp8_neg(_mm256_sub_ps(load(x + j, e - j), vm));
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
  if (n <= SHORT_NV * W)
    softmax_short(y, x, rows, n);
  else
    for (int64_t r = 0; r < rows; r++) softmax_long(y + r * n, x + r * n, n);
}

static inline __m256 quick_gelu8(__m256 v) { return silu8(v, _mm256_set1_ps(-1.702f)); }

/* one loop per op: a shared loop made GCC keep GELU's tables live through the SiLU path */
static void v_unary(dg__unary_op op, float *y, const float *x, int64_t n) {
  if (op == DG__UNARY_SILU)
    for (int64_t i = 0; i < n; i += W) {
      PF_STREAM2(i, x, y);
      store(y + i, n - i, silu8(load(x + i, n - i), _mm256_set1_ps(-1.0f)));
    }
  else if (op == DG__UNARY_GELU)
    for (int64_t i = 0; i < n; i += W) {
      PF_STREAM2(i, x, y);
      store(y + i, n - i, gelu8(load(x + i, n - i)));
    }
  else
    for (int64_t i = 0; i < n; i += W) {
      PF_STREAM2(i, x, y);
      store(y + i, n - i, quick_gelu8(load(x + i, n - i)));
    }
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
  for (int64_t i = 0; i < n; i += W) {
    PF_STREAM2(i, a, gate);
    if (!(i & 15)) PF_LINE(y + i);
    store(y + i, n - i, _mm256_mul_ps(load(a + i, n - i), gelu8(load(gate + i, n - i))));
  }
}

/* 8 x 8 blocks transposed in registers; masked loads and stores at the edges. */
static void v_transpose(float *y, int64_t ldy, const float *x, int64_t ldx, int rows, int cols) {
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  for (int i0 = 0; i0 < rows; i0 += 8)
    for (int c0 = 0; c0 < cols; c0 += 8) {
      int ri = rows - i0 < 8 ? rows - i0 : 8, cj = cols - c0 < 8 ? cols - c0 : 8;
      __m256i mc = _mm256_cmpgt_epi32(_mm256_set1_epi32(cj), lane), mr = _mm256_cmpgt_epi32(_mm256_set1_epi32(ri), lane);
      __m256 v[8], t[8];
      for (int r = 0; r < 8; r++)
        v[r] = r < ri ? _mm256_maskload_ps(x + (int64_t)(i0 + r) * ldx + c0, mc) : _mm256_setzero_ps();
      for (int r = 0; r < 8; r += 2) {
        t[r] = _mm256_unpacklo_ps(v[r], v[r + 1]);
        t[r + 1] = _mm256_unpackhi_ps(v[r], v[r + 1]);
      }
      for (int r = 0; r < 8; r += 4) {
        v[r] = _mm256_shuffle_ps(t[r], t[r + 2], 0x44);
        v[r + 1] = _mm256_shuffle_ps(t[r], t[r + 2], 0xee);
        v[r + 2] = _mm256_shuffle_ps(t[r + 1], t[r + 3], 0x44);
        v[r + 3] = _mm256_shuffle_ps(t[r + 1], t[r + 3], 0xee);
      }
      for (int r = 0; r < 4; r++) {
        t[r] = _mm256_permute2f128_ps(v[r], v[r + 4], 0x20);
        t[r + 4] = _mm256_permute2f128_ps(v[r], v[r + 4], 0x31);
      }
      for (int c = 0; c < cj; c++) _mm256_maskstore_ps(y + (int64_t)(c0 + c) * ldy + i0, mr, t[c]);
    }
}

static const dg__vec_kernels table = {v_sum,   v_sum_sq_dev, v_sums_shifted,  v_affine, v_normalize, v_softmax,
                                      v_unary, v_binary_vec, v_binary_scalar, v_scale,  v_exp,       v_geglu,
                                      v_transpose};

const dg__vec_kernels *dg__vec_avx2(void) { return &table; }

#else

const dg__vec_kernels *dg__vec_avx2(void) { return 0; }

#endif
