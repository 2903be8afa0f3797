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
static inline __m512 gelu16(__m512 x) {
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

static void v_affine(float *y, const float *x, int64_t n, float m, float a, float b, int silu) {
  __m512 vm = _mm512_set1_ps(m), va = _mm512_set1_ps(a), vb = _mm512_set1_ps(b);
  for (int64_t i = 0; i < n; i += W) {
    __mmask16 k = n - i >= W ? (__mmask16)0xffff : tail_mask(n - i);
    __m512 v = _mm512_fmadd_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, x + i), vm), va, vb);
    if (silu) v = silu16(v);
    _mm512_mask_storeu_ps(y + i, k, v);
  }
}

static void v_normalize(float *y, const float *x, int64_t n, float mean, float rstd, const float *g,
                        const float *b) {
  __m512 vm = _mm512_set1_ps(mean), vr = _mm512_set1_ps(rstd);
  for (int64_t i = 0; i < n; i += W) {
    __mmask16 k = n - i >= W ? (__mmask16)0xffff : tail_mask(n - i);
    __m512 v = _mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, x + i), vm), vr);
    if (g) v = _mm512_mul_ps(v, _mm512_maskz_loadu_ps(k, g + i));
    if (b) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(k, b + i));
    _mm512_mask_storeu_ps(y + i, k, v);
  }
}

static void v_softmax(float *y, const float *x, int64_t n) {
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

static void v_unary(dg__unary_op op, float *y, const float *x, int64_t n) {
  for (int64_t i = 0; i < n; i += W) {
    __mmask16 k = n - i >= W ? (__mmask16)0xffff : tail_mask(n - i);
    __m512 v = _mm512_maskz_loadu_ps(k, x + i);
    if (op == DG__UNARY_SILU) {
      v = silu16(v);
    } else if (op == DG__UNARY_GELU) {
      v = gelu16(v);
    } else {
      __m512 en = exp16(_mm512_mul_ps(v, _mm512_set1_ps(-1.702f)));
      v = _mm512_mul_ps(v, recip16(_mm512_add_ps(_mm512_set1_ps(1.0f), en)));
    }
    _mm512_mask_storeu_ps(y + i, k, v);
  }
}

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

static const dg__vec_kernels table = {v_sum,   v_sum_sq_dev, v_sums_shifted, v_affine,        v_normalize, v_softmax,
                                      v_unary, v_binary_vec, v_binary_scalar, v_scale,     v_exp};

const dg__vec_kernels *dg__vec_avx512(void) { return &table; }

#else

const dg__vec_kernels *dg__vec_avx512(void) { return 0; }

#endif
