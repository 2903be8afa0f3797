/* AVX-512 row kernels of the memory-bound ops (table in ops_internal.h).
 * Compiled with AVX-512 flags; only reached when the engine's ISA is
 * DG_ISA_AVX512 (checked at run time).  Tails use masked loads/stores.
 * exp: Cephes-style range reduction + degree-6 polynomial, scaled by 2^n
 * with vscalefps (correct underflow to subnormals / zero); ~1-2 ulp. */
#include "tensor/ops_internal.h"

#if defined(__x86_64__) && defined(__AVX512F__)
#include <immintrin.h>
#include <math.h>

#define W 16
#define BLOCK 1024

static inline __mmask16 tail_mask(int64_t r) { return (__mmask16)((1u << r) - 1u); }

static inline __m512 exp16(__m512 x) {
  x = _mm512_min_ps(x, _mm512_set1_ps(88.7228394f));
  x = _mm512_max_ps(x, _mm512_set1_ps(-110.0f));
  __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                  _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.9875691500e-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
  p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
  return _mm512_scalef_ps(p, n);
}

/* 1/d: rcp14 + one Newton step (relative error ~2^-28); d = +inf gives 0 */
static inline __m512 recip16(__m512 d) {
  __m512 r = _mm512_rcp14_ps(d);
  __m512 e = _mm512_fnmadd_ps(d, r, _mm512_set1_ps(1.0f));
  __m512 rr = _mm512_fmadd_ps(r, e, r);
  /* keep rcp14's exact 0 for d = inf (the Newton step would make it NaN) */
  return _mm512_mask_mov_ps(rr, _mm512_cmp_ps_mask(r, _mm512_setzero_ps(), _CMP_EQ_OQ), r);
}

static inline __m512 silu16(__m512 v) {
  __m512 en = exp16(_mm512_sub_ps(_mm512_setzero_ps(), v));
  return _mm512_mul_ps(v, recip16(_mm512_add_ps(_mm512_set1_ps(1.0f), en)));
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
 * For |x| < 4: Q(|x|) from a piecewise polynomial, 32 intervals of width 1/8 on
 * [0, 4), degree 5 in u = 2 (8|x| - i) - 1 in [-1, 1] on interval i; the six
 * coefficients are looked up per lane with vpermt2ps from two registers each.
 * Coefficients: relative minimax fit of Q on each interval (weighted least
 * squares at 60 Chebyshev nodes with Lawson's reweighting, long double, then
 * rounded to float): 1.1e-7 relative with float Horner.  Then Phi = Q for x < 0
 * (relative accuracy kept in the tail), 1 - Q for x >= 0.  Lanes with |x| >= 4
 * or NaN (rare in activations: 6e-5 of N(0, 1) samples) take the erfc form
 * above, blended per lane, so each element's result depends only on its value. */
static _Alignas(64) const float gelu_q[6][32] = {
    {0.475082338f, 0.425634325f, 0.377330273f, 0.330874383f, 0.286887705f, 0.245883852f, 0.2082524f,
     0.174250707f, 0.144004375f, 0.117515229f, 0.0946757421f, 0.0752879828f, 0.0590851232f, 0.0457536243f,
     0.0349544883f, 0.0263421275f, 0.0195800792f, 0.014353022f, 0.0103750722f, 0.00739460718f,
     0.00519607961f, 0.00359945511f, 0.00245790114f, 0.0016543509f, 0.0010974824f, 0.000717542309f,
     0.000462330645f, 0.000293555349f, 0.000183669952f, 0.000113234048f, 6.87841166e-05f, 4.11674664e-05f},
    {-0.0248852409f, -0.0244994313f, -0.0237456635f, -0.0226582699f, -0.0212854743f, -0.0196858458f,
     -0.0179241672f, -0.0160671193f, -0.0141791832f, -0.012319088f, -0.0105370739f, -0.00887310598f,
     -0.007356063f, -0.00600384362f, -0.00482422393f, -0.00381627539f, -0.00297211809f, -0.00227880199f,
     -0.00172013009f, -0.00127829215f, -0.000935218472f, -0.00067361258f, -0.000477662863f, -0.000333462434f,
     -0.000229185142f, -0.00015507442f, -0.000103301842f, -6.77470016e-05f, -4.37407507e-05f,
     -2.78033131e-05f, -1.73988683e-05f, -1.07191318e-05f},
    {4.8603968e-05f, 0.000143551311f, 0.000231891157f, 0.000309780939f, 0.000374158641f, 0.000422937999f,
     0.000455105706f, 0.000470716303f, 0.000470793137f, 0.000457153597f, 0.000432184665f, 0.000398596574f,
     0.000359182799f, 0.000316608988f, 0.000273247104f, 0.00023106359f, 0.000191562343f, 0.000155777525f,
     0.000124306302f, 9.7369928e-05f, 7.48905586e-05f, 5.65729388e-05f, 4.19820899e-05f, 3.0610805e-05f,
     2.19337307e-05f, 1.54468598e-05f, 1.06933476e-05f, 7.2775033e-06f, 4.86957015e-06f, 3.20389245e-06f,
     2.07290805e-06f, 1.31895263e-06f},
    {1.61380358e-05f, 1.53893961e-05f, 1.39496988e-05f, 1.1927943e-05f, 9.47304852e-06f, 6.75859019e-06f,
     3.96575888e-06f, 1.26667987e-06f, -1.18996684e-06f, -3.28955116e-06f, -4.95747327e-06f,
     -6.16037005e-06f, -6.90303796e-06f, -7.22202367e-06f, -7.17714465e-06f, -6.84222232e-06f,
     -6.29621354e-06f, -5.61563365e-06f, -4.868833e-06f, -4.11234123e-06f, -3.38919494e-06f,
     -2.72894454e-06f, -2.14890997e-06f, -1.65622077e-06f, -1.25021029e-06f, -9.24810195e-07f,
     -6.70700672e-07f, -4.77071239e-07f, -3.32938157e-07f, -2.28032832e-07f, -1.53318965e-07f,
     -1.01217772e-07f},
    {-4.73569202e-08f, -1.38410556e-07f, -2.18878043e-07f, -2.82960968e-07f, -3.26568625e-07f,
     -3.4767055e-07f, -3.46384155e-07f, -3.24802159e-07f, -2.86601619e-07f, -2.36505599e-07f,
     -1.79682871e-07f, -1.21170331e-07f, -6.53902248e-08f, -1.58087126e-08f, 2.52416594e-08f,
     5.65820457e-08f, 7.80757787e-08f, 9.04248338e-08f, 9.49183487e-08f, 9.31743358e-08f, 8.69075407e-08f,
     7.77448648e-08f, 6.70983127e-08f, 5.60951037e-08f, 4.55573961e-08f, 3.60194967e-08f, 2.77694649e-08f,
     2.09026894e-08f, 1.53774611e-08f, 1.10656266e-08f, 7.79425857e-09f, 5.37689226e-09f},
    {-9.40933464e-09f, -8.68222472e-09f, -7.30756877e-09f, -5.4306728e-09f, -3.24440808e-09f,
     -9.63886859e-10f, 1.20051469e-09f, 3.06768277e-09f, 4.50441773e-09f, 5.43600809e-09f, 5.84804249e-09f,
     5.78008041e-09f, 5.31363664e-09f, 4.55608395e-09f, 3.62437413e-09f, 2.63022937e-09f, 1.66882386e-09f,
     8.11789802e-10f, 1.0460581e-10f, -4.32241687e-10f, -7.99354583e-10f, -1.01296527e-09f, -1.09904907e-09f,
     -1.08786402e-09f, -1.00959718e-09f, -8.91236585e-10f, -7.54806717e-10f, -6.16724893e-10f,
     -4.88004526e-10f, -3.7500214e-10f, -2.80427209e-10f, -2.04397901e-10f},
};

static inline __m512 gelu16(__m512 x) {
  __m512 a = _mm512_abs_ps(x);
  __mmask16 slow = _mm512_cmp_ps_mask(a, _mm512_set1_ps(4.0f), _CMP_NLT_UQ);
  __m512 t = _mm512_mul_ps(a, _mm512_set1_ps(8.0f)); /* exact */
  __m512i i = _mm512_cvttps_epi32(t);               /* interval; only its low 5 bits are used */
  __m512 u = _mm512_fmsub_ps(_mm512_sub_ps(t, _mm512_cvtepi32_ps(i)), _mm512_set1_ps(2.0f), _mm512_set1_ps(1.0f));
#define Q_COEF(j) _mm512_permutex2var_ps(_mm512_load_ps(gelu_q[j]), i, _mm512_load_ps(gelu_q[j] + 16))
  __m512 q = Q_COEF(5);
  q = _mm512_fmadd_ps(q, u, Q_COEF(4));
  q = _mm512_fmadd_ps(q, u, Q_COEF(3));
  q = _mm512_fmadd_ps(q, u, Q_COEF(2));
  q = _mm512_fmadd_ps(q, u, Q_COEF(1));
  q = _mm512_fmadd_ps(q, u, Q_COEF(0));
#undef Q_COEF
  __mmask16 pos = _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_GE_OQ);
  __m512 phi = _mm512_mask_sub_ps(q, pos, _mm512_set1_ps(1.0f), q);
  __m512 r = _mm512_mul_ps(x, phi);
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
    __m512 v = _mm512_fmadd_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, x + i), vm), va, vb);
    if (silu) v = silu16(v);
    _mm512_mask_storeu_ps(y + i, k, v);
  }
}

static void v_normalize(float *y, const float *x, int64_t n, float mean, float rstd, const float *g,
                        const float *b, const float *pf) {
  __m512 vm = _mm512_set1_ps(mean), vr = _mm512_set1_ps(rstd);
  for (int64_t i = 0; i < n; i += W) {
    __mmask16 k = n - i >= W ? (__mmask16)0xffff : tail_mask(n - i);
    if (pf) _mm_prefetch((const char *)(pf + i), _MM_HINT_T0);
    __m512 v = _mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, x + i), vm), vr);
    if (g) v = _mm512_mul_ps(v, _mm512_maskz_loadu_ps(k, g + i));
    if (b) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(k, b + i));
    _mm512_mask_storeu_ps(y + i, k, v);
  }
}

/* Rows of up to 8 vectors (n <= 128) held in registers, R rows at a time
 * (each row is a long dependency chain: max, reduce, exp, sum, reduce, divide;
 * interleaving R independent rows hides the latency).  Same operations in the
 * same order as the long form below (max, exp(x - max) with the sum in one f32
 * accumulator, 1 / sum in double), so the results are identical. */
#define SHORT_R 4
static void softmax_short(float *y, const float *x, int64_t rows, int64_t n) {
  __m512 v[SHORT_R][8], ninf = _mm512_set1_ps(-INFINITY);
  int nv = (int)((n + W - 1) / W);
  __mmask16 kl = n % W ? tail_mask(n % W) : (__mmask16)0xffff; /* the last vector's lanes */
  for (int64_t r0 = 0; r0 < rows; r0 += SHORT_R) {
    int nr = rows - r0 < SHORT_R ? (int)(rows - r0) : SHORT_R;
    __m512 vm[SHORT_R], acc[SHORT_R];
    for (int r = 0; r < nr; r++) {
      const float *xr = x + (r0 + r) * n; /* (n) */
      __m512 mx = ninf;
      for (int q = 0; q < nv; q++) {
        v[r][q] = _mm512_mask_loadu_ps(ninf, q == nv - 1 ? kl : (__mmask16)0xffff, xr + q * W);
        mx = _mm512_max_ps(mx, v[r][q]);
      }
      float m = _mm512_reduce_max_ps(mx);
      if (m == -INFINITY) m = 0.0f;
      vm[r] = _mm512_set1_ps(m);
      acc[r] = _mm512_setzero_ps();
    }
    for (int q = 0; q < nv; q++)
      for (int r = 0; r < nr; r++) {
        v[r][q] = _mm512_maskz_mov_ps(q == nv - 1 ? kl : (__mmask16)0xffff, exp16(_mm512_sub_ps(v[r][q], vm[r])));
        acc[r] = _mm512_add_ps(acc[r], v[r][q]);
      }
    for (int r = 0; r < nr; r++) {
      __m512 inv = _mm512_set1_ps((float)(1.0 / hsum_d(acc[r])));
      float *yr = y + (r0 + r) * n;
      for (int q = 0; q < nv; q++)
        _mm512_mask_storeu_ps(yr + q * W, q == nv - 1 ? kl : (__mmask16)0xffff, _mm512_mul_ps(v[r][q], inv));
    }
  }
}

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
      __m512 v = exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, x + j), vm));
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
    __m512 v = _mm512_maskz_loadu_ps(k, x + i);                            \
    _mm512_mask_storeu_ps(y + i, k, expr);                                 \
  }

static inline __m512 quick_gelu16(__m512 v) {
  __m512 en = exp16(_mm512_mul_ps(v, _mm512_set1_ps(-1.702f)));
  return _mm512_mul_ps(v, recip16(_mm512_add_ps(_mm512_set1_ps(1.0f), en)));
}

static void v_unary(dg__unary_op op, float *y, const float *x, int64_t n) {
  if (op == DG__UNARY_SILU)
    UNARY_LOOP(silu16(v))
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
    __m512 g = gelu16(_mm512_maskz_loadu_ps(k, gate + i));
    _mm512_mask_storeu_ps(y + i, k, _mm512_mul_ps(_mm512_maskz_loadu_ps(k, a + i), g));
  }
}

static const dg__vec_kernels table = {v_sum,   v_sum_sq_dev, v_sums_shifted,  v_affine, v_normalize, v_softmax,
                                      v_unary, v_binary_vec, v_binary_scalar, v_scale,  v_exp,       v_geglu};

const dg__vec_kernels *dg__vec_avx512(void) { return &table; }

#else

const dg__vec_kernels *dg__vec_avx512(void) { return 0; }

#endif
