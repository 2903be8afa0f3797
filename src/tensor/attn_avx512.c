/* AVX-512 online-softmax block for flash attention (attn.h), 32 query columns
 * as two zmm per key row; exp2 by range reduction + a polynomial (degree 6
 * for f32 probabilities, 4 when they are rounded to bf16). */
#include <immintrin.h>
#include <math.h>

#include "tensor/attn.h"
#include "tensor/gemm_avx512.h"

#define MASKED (-1e30f) /* flash softmax: score of a masked key */

/* 2^x: x = n + f, f in [-0.5, 0.5]; p(f) ~ 2^f by Taylor terms of e^(f ln 2) up to degree
 * `deg` (6: relative error ~2e-7; 4: ~5e-5, plenty for probabilities rounded to bf16).
 * clamp: x may be -inf or above 128; without it x must be finite and <= 0 (scalef takes
 * any finite n: 2^n underflows to 0). */
static inline __m512 exp2_deg(__m512 x, int deg, int clamp) {
  if (clamp) {
    x = _mm512_max_ps(x, _mm512_set1_ps(-150.0f)); /* also maps -inf to -150: 2^-150 = 0 */
    x = _mm512_min_ps(x, _mm512_set1_ps(128.0f));
  }
  __m512 xi = _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 f = _mm512_sub_ps(x, xi);
  __m512 p;
  if (deg >= 6) {
    p = _mm512_set1_ps(1.5403530e-4f);
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.3333558e-3f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(9.6181291e-3f));
  } else {
    p = _mm512_set1_ps(9.6181291e-3f);
  }
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(5.5504109e-2f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(2.4022651e-1f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(6.9314718e-1f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.0f));
  return _mm512_scalef_ps(p, xi);
}
#define exp2_ps(x) exp2_deg((x), 6, 1)
#define exp2_ps_bf16(x) exp2_deg((x), 4, 1)

void dg__attn_softmax_avx512(float *s, int64_t nrows, int nr, int64_t valid, int64_t j0, int64_t q0,
                             int causal, float *m, float *l, float *alpha, void *p, int bf16) {
  (void)nr; /* 32 */
  /* masked scores: a finite floor instead of -inf, so that s - max is finite and <= 0
   * and the exponentials need no clamping (2^(floor - max) = 0) */
  const __m512 masked = _mm512_set1_ps(MASKED);
  const __m512i c_lo = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  const __m512i c_hi = _mm512_add_epi32(c_lo, _mm512_set1_epi32(16));
  __m512 mo0 = _mm512_loadu_ps(m), mo1 = _mm512_loadu_ps(m + 16);
  __m512 mx0 = mo0, mx1 = mo1;
  /* pass 1: mask, column max */
  for (int64_t r = 0; r < nrows; r++) {
    float *sr = s + r * 32;
    __m512 v0 = _mm512_loadu_ps(sr), v1 = _mm512_loadu_ps(sr + 16);
    if (r >= valid) {
      v0 = v1 = masked;
      _mm512_storeu_ps(sr, v0);
      _mm512_storeu_ps(sr + 16, v1);
    } else if (causal && j0 + r > q0) {
      /* visible when c >= j0 + r - q0 */
      __m512i lim = _mm512_set1_epi32((int)(j0 + r - q0 > 64 ? 64 : j0 + r - q0));
      v0 = _mm512_mask_mov_ps(masked, _mm512_cmp_epi32_mask(c_lo, lim, _MM_CMPINT_NLT), v0);
      v1 = _mm512_mask_mov_ps(masked, _mm512_cmp_epi32_mask(c_hi, lim, _MM_CMPINT_NLT), v1);
      _mm512_storeu_ps(sr, v0);
      _mm512_storeu_ps(sr + 16, v1);
    }
    mx0 = _mm512_max_ps(mx0, v0);
    mx1 = _mm512_max_ps(mx1, v1);
  }
  /* columns with nothing visible yet (max -inf at the start, else the floor) keep base 0
   * (their p and alpha*O are 0) */
  __mmask16 z0 = _mm512_cmp_ps_mask(mx0, masked, _CMP_LE_OQ), z1 = _mm512_cmp_ps_mask(mx1, masked, _CMP_LE_OQ);
  __m512 b0 = _mm512_mask_mov_ps(mx0, z0, _mm512_setzero_ps());
  __m512 b1 = _mm512_mask_mov_ps(mx1, z1, _mm512_setzero_ps());
  __m512 a0 = exp2_ps(_mm512_sub_ps(mo0, b0)), a1 = exp2_ps(_mm512_sub_ps(mo1, b1));
  a0 = _mm512_mask_mov_ps(a0, z0, _mm512_set1_ps(1.0f));
  a1 = _mm512_mask_mov_ps(a1, z1, _mm512_set1_ps(1.0f));
  __m512 sum0 = _mm512_setzero_ps(), sum1 = _mm512_setzero_ps();
  if (!bf16) {
    for (int64_t r = 0; r < nrows; r++) {
      float *sr = s + r * 32;
      __m512 p0 = exp2_deg(_mm512_sub_ps(_mm512_loadu_ps(sr), b0), 6, 0);
      __m512 p1 = exp2_deg(_mm512_sub_ps(_mm512_loadu_ps(sr + 16), b1), 6, 0);
      sum0 = _mm512_add_ps(sum0, p0);
      sum1 = _mm512_add_ps(sum1, p1);
      _mm512_storeu_ps(sr, p0);
      _mm512_storeu_ps(sr + 16, p1);
    }
  } else {
    /* rows r, r+1 -> words [2c] = row r, [2c+1] = row r+1 */
    const __m512i perm = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8,
                                          23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
    __m512i *d = p;
    for (int64_t r = 0; r < nrows; r += 2) {
      const float *sr = s + r * 32;
      __m512 p00 = exp2_deg(_mm512_sub_ps(_mm512_loadu_ps(sr), b0), 4, 0);
      __m512 p01 = exp2_deg(_mm512_sub_ps(_mm512_loadu_ps(sr + 16), b1), 4, 0);
      __m512 p10 = exp2_deg(_mm512_sub_ps(_mm512_loadu_ps(sr + 32), b0), 4, 0);
      __m512 p11 = exp2_deg(_mm512_sub_ps(_mm512_loadu_ps(sr + 48), b1), 4, 0);
      sum0 = _mm512_add_ps(sum0, _mm512_add_ps(p00, p10));
      sum1 = _mm512_add_ps(sum1, _mm512_add_ps(p01, p11));
      __m512i lo = (__m512i)_mm512_cvtne2ps_pbh(p10, p00);
      __m512i hi = (__m512i)_mm512_cvtne2ps_pbh(p11, p01);
      _mm512_storeu_si512(d + (r / 2) * 2, _mm512_permutexvar_epi16(perm, lo));
      _mm512_storeu_si512(d + (r / 2) * 2 + 1, _mm512_permutexvar_epi16(perm, hi));
    }
  }
  _mm512_storeu_ps(l, _mm512_fmadd_ps(_mm512_loadu_ps(l), a0, sum0));
  _mm512_storeu_ps(l + 16, _mm512_fmadd_ps(_mm512_loadu_ps(l + 16), a1, sum1));
  _mm512_storeu_ps(alpha, a0);
  _mm512_storeu_ps(alpha + 16, a1);
  _mm512_storeu_ps(m, mx0);
  _mm512_storeu_ps(m + 16, mx1);
}

void dg__attn_store_avx512(const float *o, int64_t d, int64_t rows, const float *l, float *y, int64_t ldy) {
  for (int64_t c0 = 0; c0 < rows; c0 += 16) {
    int cn = rows - c0 < 16 ? (int)(rows - c0) : 16;
    float inv[16];
    for (int c = 0; c < cn; c++) inv[c] = l[c0 + c] > 0.0f ? 1.0f / l[c0 + c] : 0.0f;
    for (int64_t d0 = 0; d0 < d; d0 += 16) {
      int dn = d - d0 < 16 ? (int)(d - d0) : 16;
      __mmask16 m = (__mmask16)(dn == 16 ? 0xffff : (1u << dn) - 1);
      __m512 v[16];
#pragma GCC unroll 16
      for (int r = 0; r < 16; r++) v[r] = r < dn ? _mm512_loadu_ps(o + (d0 + r) * 32 + c0) : _mm512_setzero_ps();
      TRANSPOSE16(v); /* v[c] = o[d0 .. d0 + 15][c0 + c] */
#pragma GCC unroll 16
      for (int c = 0; c < 16; c++)
        if (c < cn) _mm512_mask_storeu_ps(y + (c0 + c) * ldy + d0, m, _mm512_mul_ps(v[c], _mm512_set1_ps(inv[c])));
    }
  }
}

/* ---- short key sequences (attn.h: dg__attn_short_avx512) ------------------ */

#define AI static inline __attribute__((always_inline))

/* Scores of RS query rows against all NV*16 (packed) keys, then their softmax:
 * p[r * ldp + key] = 2^(s - max) (0 for hidden keys), inv[r] = 1 / sum.
 * Rows past `rs` repeat the last valid row and are not stored. */
AI void short_scores(const int NV, const int RS, const float *q, int64_t ldq, int rs, const float *kt, int64_t ldk,
                     int64_t d, int64_t lk, int causal, int64_t qi0, float *p, float *inv) {
  const float *qr[8];
#pragma GCC unroll 8
  for (int r = 0; r < RS; r++) qr[r] = q + (r < rs ? r : rs - 1) * ldq;
  __m512 acc[8][8];
#pragma GCC unroll 8
  for (int r = 0; r < RS; r++)
#pragma GCC unroll 8
    for (int v = 0; v < NV; v++) acc[r][v] = _mm512_setzero_ps();
  for (int64_t k = 0; k < d; k++) {
    __m512 b[8];
#pragma GCC unroll 8
    for (int v = 0; v < NV; v++) b[v] = _mm512_loadu_ps(kt + k * ldk + 16 * v);
#pragma GCC unroll 8
    for (int r = 0; r < RS; r++) {
      __m512 a = _mm512_set1_ps(qr[r][k]);
#pragma GCC unroll 8
      for (int v = 0; v < NV; v++) acc[r][v] = _mm512_fmadd_ps(a, b[v], acc[r][v]);
    }
  }
  const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
#pragma GCC unroll 8
  for (int r = 0; r < RS; r++) {
    if (r >= rs) break;
    int64_t lim = lk; /* keys [0, lim) visible to this query */
    if (causal && qi0 + r + 1 < lim) lim = qi0 + r + 1;
    __mmask16 vis[8];
    __m512 mx = _mm512_set1_ps(-INFINITY);
#pragma GCC unroll 8
    for (int v = 0; v < NV; v++) {
      int64_t left = lim - 16 * v;
      vis[v] = left >= 16 ? (__mmask16)0xffff
                          : _mm512_cmp_epi32_mask(lane, _mm512_set1_epi32((int)(left > 0 ? left : 0)), _MM_CMPINT_LT);
      mx = _mm512_mask_max_ps(mx, vis[v], mx, acc[r][v]);
    }
    __m512 m = _mm512_set1_ps(_mm512_reduce_max_ps(mx));
    __m512 sum = _mm512_setzero_ps();
#pragma GCC unroll 8
    for (int v = 0; v < NV; v++) {
      __m512 e = _mm512_maskz_mov_ps(vis[v], exp2_ps(_mm512_sub_ps(acc[r][v], m)));
      sum = _mm512_add_ps(sum, e);
      _mm512_storeu_ps(p + r * ldk + 16 * v, e);
    }
    float s = _mm512_reduce_add_ps(sum);
    inv[r] = s > 0.0f ? 1.0f / s : 0.0f;
  }
}

/* y rows = inv[r] * (p rows (keys [0, nk)) . V): RO rows, ND vectors of D. */
AI void short_out(const int ND, const int RO, const float *p, int64_t ldp, int ro, const float *inv, const float *vp,
                  int64_t ldv, int64_t nk, int64_t d, float *y, int64_t ldy) {
  const float *pr[8];
#pragma GCC unroll 8
  for (int r = 0; r < RO; r++) pr[r] = p + (r < ro ? r : ro - 1) * ldp;
  __m512 acc[8][16];
#pragma GCC unroll 8
  for (int r = 0; r < RO; r++)
#pragma GCC unroll 16
    for (int v = 0; v < ND; v++) acc[r][v] = _mm512_setzero_ps();
  for (int64_t t = 0; t < nk; t++) {
    __m512 b[16];
#pragma GCC unroll 16
    for (int v = 0; v < ND; v++) b[v] = _mm512_loadu_ps(vp + t * ldv + 16 * v);
#pragma GCC unroll 8
    for (int r = 0; r < RO; r++) {
      __m512 a = _mm512_set1_ps(pr[r][t]);
#pragma GCC unroll 16
      for (int v = 0; v < ND; v++) acc[r][v] = _mm512_fmadd_ps(a, b[v], acc[r][v]);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < RO; r++) {
    if (r >= ro) break;
    __m512 s = _mm512_set1_ps(inv[r]);
#pragma GCC unroll 16
    for (int v = 0; v < ND; v++) {
      int64_t left = d - 16 * v;
      __mmask16 m = left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1);
      _mm512_mask_storeu_ps(y + r * ldy + 16 * v, m, _mm512_mul_ps(acc[r][v], s));
    }
  }
}

/* Rows per register tile: about 24 accumulators. */
#define SHORT_RS(nv) ((nv) <= 3 ? 8 : 24 / (nv))
#define SHORT_RO(nd) ((nd) <= 3 ? 8 : 24 / (nd))

#define SCORES_CASE(NV)                                                                                     \
  case NV:                                                                                                  \
    for (int64_t r0 = 0; r0 < rows; r0 += SHORT_RS(NV)) {                                                   \
      int rs = rows - r0 < SHORT_RS(NV) ? (int)(rows - r0) : SHORT_RS(NV);                                  \
      short_scores(NV, SHORT_RS(NV), q + r0 * ldq, ldq, rs, kt, ldk, d, lk, causal, q0 + r0, p + r0 * ldk, \
                   inv + r0);                                                                               \
    }                                                                                                       \
    break;
#define OUT_CASE(ND)                                                                                        \
  case ND:                                                                                                  \
    for (int64_t r0 = 0; r0 < rows; r0 += SHORT_RO(ND)) {                                                   \
      int ro = rows - r0 < SHORT_RO(ND) ? (int)(rows - r0) : SHORT_RO(ND);                                  \
      short_out(ND, SHORT_RO(ND), p + r0 * ldk, ldk, ro, inv + r0, vp, ldv, nk, d, y + r0 * ldy, ldy);      \
    }                                                                                                       \
    break;

void dg__attn_short_avx512(const float *q, int64_t ldq, const float *kt, const float *vp, int64_t lk, int64_t d,
                           int64_t q0, int64_t rows, int causal, float *p, float *inv, float *y, int64_t ldy) {
  int nv = (int)((lk + 15) / 16), nd = (int)((d + 15) / 16);
  int64_t ldk = 16 * (int64_t)nv, ldv = 16 * (int64_t)nd;
  switch (nv) {
    SCORES_CASE(1)
    SCORES_CASE(2)
    SCORES_CASE(3)
    SCORES_CASE(4)
    SCORES_CASE(5)
    SCORES_CASE(6)
    SCORES_CASE(7)
    SCORES_CASE(8)
    default: return;
  }
  /* causal: keys past the block's last query have p = 0 in every row */
  int64_t nk = causal && q0 + rows < lk ? q0 + rows : lk;
  switch (nd) {
    OUT_CASE(1)
    OUT_CASE(2)
    OUT_CASE(3)
    OUT_CASE(4)
    OUT_CASE(5)
    OUT_CASE(6)
    OUT_CASE(7)
    OUT_CASE(8)
    OUT_CASE(9)
    OUT_CASE(10)
    OUT_CASE(11)
    OUT_CASE(12)
    OUT_CASE(13)
    OUT_CASE(14)
    OUT_CASE(15)
    OUT_CASE(16)
    default: return;
  }
}

/* ---- short key sequences on a row-major-A kernel (AMX), attn.h ------------- */

void dg__attn_rowsoftmax_bf16_avx512(const float *s, int64_t lds, int rows, int64_t lk, int64_t kpad, int causal,
                                     int64_t q0, uint16_t *p, float *inv) {
  const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  int64_t nv = (lk + 15) / 16;
  for (int r = 0; r < rows; r++) {
    const float *sr = s + r * lds;
    uint16_t *pr = p + r * 32; /* chunk c (keys 32c..) at pr + 1024 c (gemm.h tiled A panel) */
    int64_t lim = lk; /* keys [0, lim) visible to this query */
    if (causal && q0 + r + 1 < lim) lim = q0 + r + 1;
    __m512 mx = _mm512_set1_ps(-INFINITY);
    for (int64_t v = 0; v < nv; v++) {
      int64_t left = lim - 16 * v;
      __mmask16 vis = left >= 16 ? (__mmask16)0xffff
                                 : _mm512_cmp_epi32_mask(lane, _mm512_set1_epi32((int)(left > 0 ? left : 0)), _MM_CMPINT_LT);
      mx = _mm512_mask_max_ps(mx, vis, mx, _mm512_loadu_ps(sr + 16 * v));
    }
    __m512 m = _mm512_set1_ps(_mm512_reduce_max_ps(mx));
    __m512 sum = _mm512_setzero_ps();
    int64_t v = 0;
    for (; v < nv; v += 2) { /* 32 keys -> one vector of bf16 */
      int64_t l0 = lim - 16 * v, l1 = l0 - 16;
      __mmask16 vis0 = l0 >= 16 ? (__mmask16)0xffff
                                : _mm512_cmp_epi32_mask(lane, _mm512_set1_epi32((int)(l0 > 0 ? l0 : 0)), _MM_CMPINT_LT);
      __mmask16 vis1 = l1 >= 16 ? (__mmask16)0xffff
                                : _mm512_cmp_epi32_mask(lane, _mm512_set1_epi32((int)(l1 > 0 ? l1 : 0)), _MM_CMPINT_LT);
      __m512 e0 = _mm512_maskz_mov_ps(vis0, exp2_ps_bf16(_mm512_sub_ps(_mm512_maskz_loadu_ps(vis0, sr + 16 * v), m)));
      __m512 e1 = _mm512_setzero_ps(); /* past the last vector of keys: no exp */
      if (v + 1 < nv)
        e1 = _mm512_maskz_mov_ps(vis1, exp2_ps_bf16(_mm512_sub_ps(_mm512_maskz_loadu_ps(vis1, sr + 16 * v + 16), m)));
      sum = _mm512_add_ps(sum, _mm512_add_ps(e0, e1));
      _mm512_storeu_si512(pr + 512 * v, (__m512i)_mm512_cvtne2ps_pbh(e1, e0));
    }
    for (int64_t k = 16 * v; k < kpad; k += 32) _mm512_storeu_si512(pr + 32 * k, _mm512_setzero_si512());
    float t = _mm512_reduce_add_ps(sum);
    inv[r] = t > 0.0f ? 1.0f / t : 0.0f;
  }
}

void dg__attn_rowstore_avx512(const float *o, int64_t ldo, int rows, const float *inv, int64_t d, float *y,
                              int64_t ldy) {
  for (int r = 0; r < rows; r++) {
    __m512 s = _mm512_set1_ps(inv[r]);
    for (int64_t v = 0; v < d; v += 16) {
      int64_t left = d - v;
      __mmask16 m = left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1);
      _mm512_mask_storeu_ps(y + r * ldy + v, m, _mm512_mul_ps(_mm512_loadu_ps(o + r * ldo + v), s));
    }
  }
}

void dg__attn_rescale_avx512(float *o, int64_t d, const float *alpha) {
  __m512 a0 = _mm512_loadu_ps(alpha), a1 = _mm512_loadu_ps(alpha + 16);
  for (int64_t r = 0; r < d; r++) {
    _mm512_storeu_ps(o + r * 32, _mm512_mul_ps(_mm512_loadu_ps(o + r * 32), a0));
    _mm512_storeu_ps(o + r * 32 + 16, _mm512_mul_ps(_mm512_loadu_ps(o + r * 32 + 16), a1));
  }
}
