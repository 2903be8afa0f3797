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
static inline __m256 gelu8(__m256 x) {
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

static void v_affine(float *y, const float *x, int64_t n, float m, float a, float b, int silu) {
  __m256 vm = _mm256_set1_ps(m), va = _mm256_set1_ps(a), vb = _mm256_set1_ps(b);
  for (int64_t i = 0; i < n; i += W) {
    __m256 v = _mm256_fmadd_ps(_mm256_sub_ps(load(x + i, n - i), vm), va, vb);
    if (silu) v = silu8(v);
    store(y + i, n - i, v);
  }
}

static void v_normalize(float *y, const float *x, int64_t n, float mean, float rstd, const float *g,
                        const float *b) {
  __m256 vm = _mm256_set1_ps(mean), vr = _mm256_set1_ps(rstd);
  for (int64_t i = 0; i < n; i += W) {
    __m256 v = _mm256_mul_ps(_mm256_sub_ps(load(x + i, n - i), vm), vr);
    if (g) v = _mm256_mul_ps(v, load(g + i, n - i));
    if (b) v = _mm256_add_ps(v, load(b + i, n - i));
    store(y + i, n - i, v);
  }
}

static void v_softmax(float *y, const float *x, int64_t n) {
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

static void v_unary(dg__unary_op op, float *y, const float *x, int64_t n) {
  for (int64_t i = 0; i < n; i += W) {
    __m256 v = load(x + i, n - i);
    if (op == DG__UNARY_SILU) {
      v = silu8(v);
    } else if (op == DG__UNARY_GELU) {
      v = gelu8(v);
    } else {
      __m256 en = exp8(_mm256_mul_ps(v, _mm256_set1_ps(-1.702f)));
      v = _mm256_div_ps(v, _mm256_add_ps(_mm256_set1_ps(1.0f), en));
    }
    store(y + i, n - i, v);
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

static const dg__vec_kernels table = {v_sum,   v_sum_sq_dev, v_sums_shifted, v_affine,        v_normalize, v_softmax,
                                      v_unary, v_binary_vec, v_binary_scalar, v_scale,     v_exp};

const dg__vec_kernels *dg__vec_avx2(void) { return &table; }

#else

const dg__vec_kernels *dg__vec_avx2(void) { return 0; }

#endif
