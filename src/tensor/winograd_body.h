/* The Winograd transforms (see winograd.h): plain C loops that the compiler
 * vectorises, and intrinsics where it does not (the filter transform on
 * AVX-512 and AVX2, the fused AVX-512 input transform).  Included by
 * winograd.c (portable), winograd_avx2.c and winograd_avx512.c, each defining
 * WG_TABLE (the dg__wg_kernels to define).  Everything here is static: one
 * copy per ISA. */
#include <string.h>

#include "tensor/kernels.h"
#include "tensor/winograd_int.h"

#define WG_RUN 64 /* tiles handled together by the output transform */
#define UCB 32    /* input channels per filter-transform buffer */
#define SMAX (4 * 32 + 72) /* a row of patches (4 L + 2) and the widest vector over-read */

typedef dg__wg wg;

/* ---- Filter transform: U = G g G^T ------------------------------------------ */

#if defined(__AVX512F__) || defined(__AVX2__)
#include <immintrin.h>

#define UC 16 /* input channels per converted block */

/* The vector filter transform below works on WL panel rows (output channels)
 * per vector; per ISA: the vector type, a lane mask, gathers and stores. */
#if defined(__AVX512F__)
#define WL 16
typedef __m512 wv;
typedef __mmask16 wmask;
typedef __m512i widx;
#define WV_SET1 _mm512_set1_ps
#define WV_ADD _mm512_add_ps
#define WV_SUB _mm512_sub_ps
#define WV_MUL _mm512_mul_ps
#define WV_FMA _mm512_fmadd_ps
#define WV_FNMA _mm512_fnmadd_ps
#define WV_STORE(p, m, v) _mm512_mask_storeu_ps((p), (m), (v))
static inline wmask wv_mask(int n) { return (wmask)((1u << n) - 1u); }
static inline widx wv_rows(void) {
  return _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                            _mm512_set1_epi32(UC * 9));
}
#define WV_GATHER(idx, m, base) _mm512_mask_i32gather_ps(_mm512_setzero_ps(), (m), (idx), (base), 4)

/* n weights from element off of w as f32 into d (n <= UC * 9); masked loads,
 * so nothing past the tensor is read.  vcvtph2ps converts f16 exactly,
 * subnormal halves included (it does not consult MXCSR.DAZ). */
static void cvt_block(const dg_tensor *w, int64_t off, int n, float *restrict d) {
  for (int i = 0; i < n; i += 16) {
    __mmask16 k = n - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - i)) - 1u);
    __m512 v;
    if (w->dtype == DG_DTYPE_F16)
      v = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(k, (const uint16_t *)w->data + off + i));
    else if (w->dtype == DG_DTYPE_BF16)
      v = _mm512_castsi512_ps(
          _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(k, (const uint16_t *)w->data + off + i)), 16));
    else
      v = _mm512_maskz_loadu_ps(k, (const float *)w->data + off + i);
    _mm512_storeu_ps(d + i, v);
  }
}
#else
#define WL 8
typedef __m256 wv;
typedef __m256i wmask;
typedef __m256i widx;
#define WV_SET1 _mm256_set1_ps
#define WV_ADD _mm256_add_ps
#define WV_SUB _mm256_sub_ps
#define WV_MUL _mm256_mul_ps
#define WV_FMA _mm256_fmadd_ps
#define WV_FNMA _mm256_fnmadd_ps
#define WV_STORE(p, m, v) _mm256_maskstore_ps((p), (m), (v))
static inline wmask wv_mask(int n) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
static inline widx wv_rows(void) {
  return _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), _mm256_set1_epi32(UC * 9));
}
#define WV_GATHER(idx, m, base) \
  _mm256_mask_i32gather_ps(_mm256_setzero_ps(), (base), (idx), _mm256_castsi256_ps(m), 4)

/* n weights from element off of w as f32 into d (n <= UC * 9): 8 at a time,
 * the tail through a zero-filled copy (nothing past the tensor is read);
 * vcvtph2ps converts f16 exactly, subnormal halves included. */
static void cvt_block(const dg_tensor *w, int64_t off, int n, float *restrict d) {
  int i = 0;
  if (w->dtype == DG_DTYPE_F32) {
    memcpy(d, (const float *)w->data + off, (size_t)n * sizeof *d);
    return;
  }
  const uint16_t *s = (const uint16_t *)w->data + off;
  for (; i < n; i += 8) {
    __m128i h;
    if (n - i >= 8) {
      h = _mm_loadu_si128((const __m128i *)(s + i));
    } else {
      uint16_t t[8] = {0};
      memcpy(t, s + i, (size_t)(n - i) * sizeof *t);
      h = _mm_loadu_si128((const __m128i *)t);
    }
    __m256 v = w->dtype == DG_DTYPE_F16 ? _mm256_cvtph_ps(h)
                                        : _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
    _mm256_storeu_ps(d + i, v);
  }
}
#endif

/* Panels [p0, p1) of the current chunk, WL panel rows (output channels) per
 * vector.  Per block of UC input channels, each row's filters are converted
 * into wb[r][c * 9 + k]; the taps of one channel for the WL rows are gathered
 * from there, transformed in registers (same operation order as the portable
 * transform) and stored with the row mask straight into U[xi][cp][ci][r]. */
static void u_task(void *arg, int64_t p0, int64_t p1, int ti) {
  wg *g = arg;
  const int mr = g->mr;
  const int64_t ci_n = g->ci;
  float *wb = dg__engine_scratch(g->e, ti, (size_t)WL * UC * 9 * sizeof(float));
  if (!wb) {
    g->failed = 1;
    return;
  }
  const widx ridx = wv_rows();
  const wv q4 = WV_SET1(0.25f), m6 = WV_SET1(-1.0f / 6.0f), p24 = WV_SET1(1.0f / 24.0f), p12 = WV_SET1(1.0f / 12.0f),
           p6 = WV_SET1(1.0f / 6.0f), h = WV_SET1(0.5f);
  for (int64_t cp = p0; cp < p1; cp++)
    for (int r0 = 0; r0 < mr; r0 += WL) {
      int nrow = mr - r0 < WL ? mr - r0 : WL;
      wmask rm = wv_mask(nrow);
      for (int64_t c0 = 0; c0 < ci_n; c0 += UC) {
        int nci = ci_n - c0 < UC ? (int)(ci_n - c0) : UC;
        for (int r = 0; r < nrow; r++) {
          int64_t cl = cp * mr + r0 + r;
          if (cl < g->ncv)
            cvt_block(g->wt, ((g->co0 + cl) * ci_n + c0) * 9, nci * 9, wb + r * UC * 9);
          else
            memset(wb + r * UC * 9, 0, (size_t)nci * 9 * sizeof(float));
        }
        for (int c = 0; c < nci; c++) {
          wv f[9];
          for (int k = 0; k < 9; k++) f[k] = WV_GATHER(ridx, rm, wb + c * 9 + k);
          float *o = g->U + (cp * ci_n + c0 + c) * mr + r0; /* xi = 0 */
          const int64_t xs = g->ncop * ci_n * mr;            /* xi stride */
          if (g->m == 2) {
            wv t[4][3];
            for (int j = 0; j < 3; j++) {
              t[0][j] = f[j];
              t[1][j] = WV_MUL(h, WV_ADD(WV_ADD(f[j], f[3 + j]), f[6 + j]));
              t[2][j] = WV_MUL(h, WV_ADD(WV_SUB(f[j], f[3 + j]), f[6 + j]));
              t[3][j] = f[6 + j];
            }
            for (int i = 0; i < 4; i++) {
              float *oi = o + (int64_t)(i * 4) * xs;
              WV_STORE(oi, rm, t[i][0]);
              WV_STORE(oi + xs, rm, WV_MUL(h, WV_ADD(WV_ADD(t[i][0], t[i][1]), t[i][2])));
              WV_STORE(oi + 2 * xs, rm, WV_MUL(h, WV_ADD(WV_SUB(t[i][0], t[i][1]), t[i][2])));
              WV_STORE(oi + 3 * xs, rm, t[i][2]);
            }
          } else {
            wv t[6][3];
            for (int j = 0; j < 3; j++) {
              wv a0 = f[j], a1 = f[3 + j], a2v = f[6 + j], s02 = WV_ADD(a0, a2v);
              t[0][j] = WV_MUL(q4, a0);
              t[1][j] = WV_MUL(m6, WV_ADD(s02, a1));
              t[2][j] = WV_MUL(m6, WV_SUB(s02, a1));
              wv e = WV_FMA(p24, a0, WV_MUL(p6, a2v));
              t[3][j] = WV_FMA(p12, a1, e);
              t[4][j] = WV_FNMA(p12, a1, e);
              t[5][j] = a2v;
            }
            for (int i = 0; i < 6; i++) {
              wv a0 = t[i][0], a1 = t[i][1], a2v = t[i][2], s02 = WV_ADD(a0, a2v);
              wv e = WV_FMA(p24, a0, WV_MUL(p6, a2v));
              float *oi = o + (int64_t)(i * 6) * xs;
              WV_STORE(oi, rm, WV_MUL(q4, a0));
              WV_STORE(oi + xs, rm, WV_MUL(m6, WV_ADD(s02, a1)));
              WV_STORE(oi + 2 * xs, rm, WV_MUL(m6, WV_SUB(s02, a1)));
              WV_STORE(oi + 3 * xs, rm, WV_FMA(p12, a1, e));
              WV_STORE(oi + 4 * xs, rm, WV_FNMA(p12, a1, e));
              WV_STORE(oi + 5 * xs, rm, a2v);
            }
          }
        }
      }
    }
}

#else

/* n weights from element off of w as f32.  F16 exactly, without an f32
 * subnormal operand (the compute threads run with DAZ): normal halves by
 * rebasing the exponent in the integer domain, subnormal ones as
 * integer * 2^-24, Inf/NaN with the all-ones exponent; branch-free selects. */
static void cvt_run(const dg_tensor *w, int64_t off, int n, float *restrict d) {
  if (w->dtype == DG_DTYPE_F16) {
    const uint16_t *restrict s = (const uint16_t *)w->data + off;
    for (int i = 0; i < n; i++) {
      uint32_t h = s[i], em = h & 0x7fffu, sign = (h & 0x8000u) << 16;
      float sub = (float)(int32_t)em * 0x1p-24f;
      uint32_t subb;
      memcpy(&subb, &sub, sizeof subb);
      uint32_t nb = em >= 0x7c00u ? (em << 13) | 0x7f800000u : (em << 13) + 0x38000000u;
      uint32_t bits = (em < 0x0400u ? subb : nb) | sign;
      memcpy(&d[i], &bits, sizeof bits);
    }
  } else if (w->dtype == DG_DTYPE_BF16) {
    const uint16_t *restrict s = (const uint16_t *)w->data + off;
    for (int i = 0; i < n; i++) {
      uint32_t bits = (uint32_t)s[i] << 16;
      memcpy(&d[i], &bits, sizeof bits);
    }
  } else {
    memcpy(d, (const float *)w->data + off, (size_t)n * sizeof *d);
  }
}

/* Panels [p0, p1) of the current chunk.  Per block of UCB input channels:
 * the filters are converted and transposed into wl[k][c][r] (tap k, channel
 * c, panel row r), transformed with r innermost (vectorised) into buf[xi][c][r],
 * and each plane's run copied into U. */
static void u_task(void *arg, int64_t p0, int64_t p1, int ti) {
  wg *g = arg;
  const int a2 = g->a2, mr = g->mr;
  const int64_t ci_n = g->ci;
  const int64_t pl = (int64_t)UCB * mr; /* plane stride in buf and wl */
  float *buf = dg__engine_scratch(g->e, ti, (size_t)(a2 + 9) * (size_t)pl * sizeof(float) + UCB * 9 * sizeof(float));
  if (!buf) {
    g->failed = 1;
    return;
  }
  float *wl = buf + a2 * pl, *row = wl + 9 * pl;
  for (int64_t cp = p0; cp < p1; cp++)
    for (int64_t c0 = 0; c0 < ci_n; c0 += UCB) {
      int nci = ci_n - c0 < UCB ? (int)(ci_n - c0) : UCB;
      for (int r = 0; r < mr; r++) {
        int64_t cl = cp * mr + r;
        if (cl < g->ncv)
          cvt_run(g->wt, ((g->co0 + cl) * ci_n + c0) * 9, nci * 9, row);
        else
          memset(row, 0, (size_t)nci * 9 * sizeof *row);
        for (int c = 0; c < nci; c++)
          for (int k = 0; k < 9; k++) wl[k * pl + c * mr + r] = row[c * 9 + k];
      }
      for (int c = 0; c < nci; c++) {
        const float *restrict f0 = wl + c * mr, *restrict f1 = f0 + pl, *restrict f2 = f1 + pl,
                              *restrict f3 = f2 + pl, *restrict f4 = f3 + pl, *restrict f5 = f4 + pl,
                              *restrict f6 = f5 + pl, *restrict f7 = f6 + pl, *restrict f8 = f7 + pl;
        float *restrict o = buf + c * mr;
        if (g->m == 2) {
          for (int r = 0; r < mr; r++) {
            /* columns: t[i][j] = (G g)[i][j] */
            float t[4][3];
            const float gg[9] = {f0[r], f1[r], f2[r], f3[r], f4[r], f5[r], f6[r], f7[r], f8[r]};
            for (int j = 0; j < 3; j++) {
              t[0][j] = gg[j];
              t[1][j] = 0.5f * (gg[j] + gg[3 + j] + gg[6 + j]);
              t[2][j] = 0.5f * (gg[j] - gg[3 + j] + gg[6 + j]);
              t[3][j] = gg[6 + j];
            }
            for (int i = 0; i < 4; i++) {
              o[(i * 4 + 0) * pl + r] = t[i][0];
              o[(i * 4 + 1) * pl + r] = 0.5f * (t[i][0] + t[i][1] + t[i][2]);
              o[(i * 4 + 2) * pl + r] = 0.5f * (t[i][0] - t[i][1] + t[i][2]);
              o[(i * 4 + 3) * pl + r] = t[i][2];
            }
          }
        } else {
          for (int r = 0; r < mr; r++) {
            float t[6][3];
            const float gg[9] = {f0[r], f1[r], f2[r], f3[r], f4[r], f5[r], f6[r], f7[r], f8[r]};
            for (int j = 0; j < 3; j++) {
              float a0 = gg[j], a1 = gg[3 + j], a2v = gg[6 + j], s02 = a0 + a2v;
              t[0][j] = 0.25f * a0;
              t[1][j] = (-1.0f / 6.0f) * (s02 + a1);
              t[2][j] = (-1.0f / 6.0f) * (s02 - a1);
              t[3][j] = (1.0f / 24.0f) * a0 + (1.0f / 12.0f) * a1 + (1.0f / 6.0f) * a2v;
              t[4][j] = (1.0f / 24.0f) * a0 - (1.0f / 12.0f) * a1 + (1.0f / 6.0f) * a2v;
              t[5][j] = a2v;
            }
            for (int i = 0; i < 6; i++) {
              float a0 = t[i][0], a1 = t[i][1], a2v = t[i][2], s02 = a0 + a2v;
              o[(i * 6 + 0) * pl + r] = 0.25f * a0;
              o[(i * 6 + 1) * pl + r] = (-1.0f / 6.0f) * (s02 + a1);
              o[(i * 6 + 2) * pl + r] = (-1.0f / 6.0f) * (s02 - a1);
              o[(i * 6 + 3) * pl + r] = (1.0f / 24.0f) * a0 + (1.0f / 12.0f) * a1 + (1.0f / 6.0f) * a2v;
              o[(i * 6 + 4) * pl + r] = (1.0f / 24.0f) * a0 - (1.0f / 12.0f) * a1 + (1.0f / 6.0f) * a2v;
              o[(i * 6 + 5) * pl + r] = a2v;
            }
          }
        }
      }
      for (int xi = 0; xi < a2; xi++)
        memcpy(g->U + ((xi * g->ncop + cp) * ci_n + c0) * mr, buf + (size_t)xi * (size_t)pl,
               (size_t)nci * (size_t)mr * sizeof(float));
    }
}

#endif

/* ---- Input transform: V = B^T d B -------------------------------------------- */

/* Row i of the patches of a run of tiles: input row yy, columns xs .. xs + S - 1 (zero outside). */
static void load_row(const wg *g, const float *plane, int64_t yy, int64_t xs, int S, float *restrict dst) {
  /* one select per column, vectorised at the width the transform then reads
   * with (a memcpy at an odd offset would defeat store-to-load forwarding) */
  const float *restrict row = plane + yy * g->w;
  const int64_t w = g->w;
  for (int x = 0; x < S; x++) {
    int64_t sx = xs + x;
    dst[x] = (sx >= 0 && sx < w) ? row[sx] : 0.0f;
  }
}

/* Horizontal input transforms of one row v of S = m L + 2 values (already
 * combined vertically) for L <= 32 tiles.  v is readable (initialised) up to
 * SMAX values.  AVX-512: the row's m phases come out of lane permutes;
 * otherwise the row is split into phase arrays first so that the arithmetic
 * runs on contiguous arrays. */
#if defined(__AVX512F__)
#include <immintrin.h>

/* lanes 0-7: v[4i + c0], lanes 8-15: v[4i + c0 + 1] (i < 8) of the 32 values (a, b) */
static inline void phases4(const float *v, __m512 *p0, __m512 *p1, __m512 *p2, __m512 *p3) {
  const __m512i i01 = _mm512_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28, 1, 5, 9, 13, 17, 21, 25, 29);
  const __m512i i23 = _mm512_setr_epi32(2, 6, 10, 14, 18, 22, 26, 30, 3, 7, 11, 15, 19, 23, 27, 31);
  __m512 a = _mm512_loadu_ps(v), b = _mm512_loadu_ps(v + 16), c = _mm512_loadu_ps(v + 32),
         d = _mm512_loadu_ps(v + 48);
  __m512 t0 = _mm512_permutex2var_ps(a, i01, b), t1 = _mm512_permutex2var_ps(c, i01, d);
  __m512 t2 = _mm512_permutex2var_ps(a, i23, b), t3 = _mm512_permutex2var_ps(c, i23, d);
  *p0 = _mm512_shuffle_f32x4(t0, t1, 0x44);
  *p1 = _mm512_shuffle_f32x4(t0, t1, 0xee);
  *p2 = _mm512_shuffle_f32x4(t2, t3, 0x44);
  *p3 = _mm512_shuffle_f32x4(t2, t3, 0xee);
}

/* Fused input transform of L <= 32 tiles: rows[i] points at the first tile's
 * column in padded input row i (readable 64 values past the tiles).  Phases,
 * vertical and horizontal combinations stay in registers (no stored
 * intermediate row, hence no store-to-load forwarding stall); the same
 * operation order as v_in* followed by h_in*. */
static void v_fused2(const float *const *rows, int64_t L, float *const *o) {
  const __m512i ie = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i io = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
  for (int64_t s = 0; s < L; s += 16) {
    __mmask16 k = (__mmask16)(L - s >= 16 ? 0xffff : (1u << (L - s)) - 1);
    __m512 p[4][4]; /* p[i][c]: row i, column 2 s + c of each tile */
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++) {
      const float *v = rows[i] + 2 * s;
      __m512 a0 = _mm512_loadu_ps(v), b0 = _mm512_loadu_ps(v + 16);
      __m512 a1 = _mm512_loadu_ps(v + 2), b1 = _mm512_loadu_ps(v + 18);
      p[i][0] = _mm512_permutex2var_ps(a0, ie, b0);
      p[i][1] = _mm512_permutex2var_ps(a0, io, b0);
      p[i][2] = _mm512_permutex2var_ps(a1, ie, b1);
      p[i][3] = _mm512_permutex2var_ps(a1, io, b1);
    }
#pragma GCC unroll 4
    for (int c = 0; c < 4; c++) { /* vertical, in place: rows -> k */
      __m512 b0 = p[0][c], b1 = p[1][c], b2 = p[2][c], b3 = p[3][c];
      p[0][c] = _mm512_sub_ps(b0, b2);
      p[1][c] = _mm512_add_ps(b1, b2);
      p[2][c] = _mm512_sub_ps(b2, b1);
      p[3][c] = _mm512_sub_ps(b1, b3);
    }
#pragma GCC unroll 4
    for (int kk = 0; kk < 4; kk++) {
      __m512 d0 = p[kk][0], d1 = p[kk][1], d2 = p[kk][2], d3 = p[kk][3];
      _mm512_mask_storeu_ps(o[kk * 4] + s, k, _mm512_sub_ps(d0, d2));
      _mm512_mask_storeu_ps(o[kk * 4 + 1] + s, k, _mm512_add_ps(d1, d2));
      _mm512_mask_storeu_ps(o[kk * 4 + 2] + s, k, _mm512_sub_ps(d2, d1));
      _mm512_mask_storeu_ps(o[kk * 4 + 3] + s, k, _mm512_sub_ps(d1, d3));
    }
  }
}

static void v_fused4(const float *const *rows, int64_t L, float *const *o) {
  const __m512 c2 = _mm512_set1_ps(2.0f), c4 = _mm512_set1_ps(4.0f), c5 = _mm512_set1_ps(5.0f),
               m4 = _mm512_set1_ps(-4.0f);
  for (int64_t s = 0; s < L; s += 16) {
    __mmask16 k = (__mmask16)(L - s >= 16 ? 0xffff : (1u << (L - s)) - 1);
    __m512 p[6][6], x2, x3; /* p[i][c]: row i, column 4 s + c of each tile */
#pragma GCC unroll 6
    for (int i = 0; i < 6; i++) {
      phases4(rows[i] + 4 * s, &p[i][0], &p[i][1], &p[i][2], &p[i][3]);
      phases4(rows[i] + 4 * s + 4, &p[i][4], &p[i][5], &x2, &x3);
    }
    (void)x2, (void)x3;
#pragma GCC unroll 6
    for (int c = 0; c < 6; c++) { /* vertical, in place */
      __m512 b0 = p[0][c], b1 = p[1][c], b2 = p[2][c], b3 = p[3][c], b4 = p[4][c], b5 = p[5][c];
      p[0][c] = _mm512_add_ps(_mm512_sub_ps(_mm512_mul_ps(c4, b0), _mm512_mul_ps(c5, b2)), b4);
      p[1][c] = _mm512_add_ps(_mm512_mul_ps(m4, _mm512_add_ps(b1, b2)), _mm512_add_ps(b3, b4));
      p[2][c] = _mm512_add_ps(_mm512_mul_ps(c4, _mm512_sub_ps(b1, b2)), _mm512_sub_ps(b4, b3));
      p[3][c] = _mm512_add_ps(_mm512_mul_ps(c2, _mm512_sub_ps(b3, b1)), _mm512_sub_ps(b4, b2));
      p[4][c] = _mm512_add_ps(_mm512_mul_ps(c2, _mm512_sub_ps(b1, b3)), _mm512_sub_ps(b4, b2));
      p[5][c] = _mm512_add_ps(_mm512_sub_ps(_mm512_mul_ps(c4, b1), _mm512_mul_ps(c5, b3)), b5);
    }
#pragma GCC unroll 6
    for (int kk = 0; kk < 6; kk++) {
      __m512 d0 = p[kk][0], d1 = p[kk][1], d2 = p[kk][2], d3 = p[kk][3], d4 = p[kk][4], d5 = p[kk][5];
      float *const *ok = o + kk * 6;
      _mm512_mask_storeu_ps(ok[0] + s, k, _mm512_add_ps(_mm512_sub_ps(_mm512_mul_ps(c4, d0), _mm512_mul_ps(c5, d2)), d4));
      _mm512_mask_storeu_ps(ok[1] + s, k, _mm512_add_ps(_mm512_mul_ps(m4, _mm512_add_ps(d1, d2)), _mm512_add_ps(d3, d4)));
      _mm512_mask_storeu_ps(ok[2] + s, k, _mm512_add_ps(_mm512_mul_ps(c4, _mm512_sub_ps(d1, d2)), _mm512_sub_ps(d4, d3)));
      _mm512_mask_storeu_ps(ok[3] + s, k, _mm512_add_ps(_mm512_mul_ps(c2, _mm512_sub_ps(d3, d1)), _mm512_sub_ps(d4, d2)));
      _mm512_mask_storeu_ps(ok[4] + s, k, _mm512_add_ps(_mm512_mul_ps(c2, _mm512_sub_ps(d1, d3)), _mm512_sub_ps(d4, d2)));
      _mm512_mask_storeu_ps(ok[5] + s, k, _mm512_add_ps(_mm512_sub_ps(_mm512_mul_ps(c4, d1), _mm512_mul_ps(c5, d3)), d5));
    }
  }
}
#else
static void h_in2(const float *restrict v, int64_t L, float *restrict o0, float *restrict o1, float *restrict o2,
                  float *restrict o3) {
  float e[SMAX / 2 + 1], d[SMAX / 2 + 1];
  for (int64_t s = 0; s <= L; s++) {
    e[s] = v[2 * s];
    d[s] = v[2 * s + 1];
  }
  for (int64_t s = 0; s < L; s++) {
    o0[s] = e[s] - e[s + 1];
    o1[s] = d[s] + e[s + 1];
    o2[s] = e[s + 1] - d[s];
    o3[s] = d[s] - d[s + 1];
  }
}

static void h_in4(const float *restrict v, int64_t L, float *restrict o0, float *restrict o1, float *restrict o2,
                  float *restrict o3, float *restrict o4, float *restrict o5) {
  float p0[SMAX / 4 + 1], p1[SMAX / 4 + 1], p2[SMAX / 4 + 1], p3[SMAX / 4 + 1];
  for (int64_t s = 0; s < L; s++) {
    p0[s] = v[4 * s];
    p1[s] = v[4 * s + 1];
    p2[s] = v[4 * s + 2];
    p3[s] = v[4 * s + 3];
  }
  p0[L] = v[4 * L];
  p1[L] = v[4 * L + 1];
  for (int64_t s = 0; s < L; s++) {
    float d0 = p0[s], d1 = p1[s], d2 = p2[s], d3 = p3[s], d4 = p0[s + 1], d5 = p1[s + 1];
    o0[s] = 4.0f * d0 - 5.0f * d2 + d4;
    o1[s] = -4.0f * (d1 + d2) + (d3 + d4);
    o2[s] = 4.0f * (d1 - d2) + (d4 - d3);
    o3[s] = 2.0f * (d3 - d1) + (d4 - d2);
    o4[s] = 2.0f * (d1 - d3) + (d4 - d2);
    o5[s] = 4.0f * d1 - 5.0f * d3 + d5;
  }
}
#endif

#if !defined(__AVX512F__)
/* Vertical input transforms: S columns of the a input rows -> a rows. */
static void v_in2(const float *restrict b0, const float *restrict b1, const float *restrict b2,
                  const float *restrict b3, int S, float *restrict v0, float *restrict v1, float *restrict v2,
                  float *restrict v3) {
  for (int x = 0; x < S; x++) {
    v0[x] = b0[x] - b2[x];
    v1[x] = b1[x] + b2[x];
    v2[x] = b2[x] - b1[x];
    v3[x] = b1[x] - b3[x];
  }
}

static void v_in4(const float *const *b, int S, float (*vr)[SMAX]) {
  const float *restrict b0 = b[0], *restrict b1 = b[1], *restrict b2 = b[2], *restrict b3 = b[3],
                        *restrict b4 = b[4], *restrict b5 = b[5];
  float *restrict v0 = vr[0], *restrict v1 = vr[1], *restrict v2 = vr[2], *restrict v3 = vr[3],
                  *restrict v4 = vr[4], *restrict v5 = vr[5];
  for (int x = 0; x < S; x++) {
    v0[x] = 4.0f * b0[x] - 5.0f * b2[x] + b4[x];
    v1[x] = -4.0f * (b1[x] + b2[x]) + (b3[x] + b4[x]);
    v2[x] = 4.0f * (b1[x] - b2[x]) + (b4[x] - b3[x]);
    v3[x] = 2.0f * (b3[x] - b1[x]) + (b4[x] - b2[x]);
    v4[x] = 2.0f * (b1[x] - b3[x]) + (b4[x] - b2[x]);
    v5[x] = 4.0f * b1[x] - 5.0f * b3[x] + b5[x];
  }
}

#endif

/* Channels [c0, c1) of the current tile block. */
static void v_task(void *arg, int64_t c0, int64_t c1, int ti) {
  wg *g = arg;
  const int m = g->m, a = g->a, nr = g->nr;
  const int64_t pw = g->tw * m + 2 + 64; /* padded row: every tile's columns and the vector over-read */
  float *prow = dg__engine_scratch(g->e, ti, (size_t)a * (size_t)pw * sizeof(float));
  if (!prow) {
    g->failed = 1;
    return;
  }
#if !defined(__AVX512F__)
  float vr[6][SMAX];
#endif
  for (int64_t ci = c0; ci < c1; ci++) {
    int64_t cur = -1; /* tile row (n th + ty) whose input rows are in prow */
    for (int64_t t = g->t0; t < g->t0 + g->nt;) {
      int64_t trow = t / g->tw, tx = t % g->tw, n = trow / g->th, ty = trow % g->th;
      int64_t j = t - g->t0, panel = j / nr, jj = j % nr;
      int64_t L = g->tw - tx;
      if (L > nr - jj) L = nr - jj;
      if (L > g->t0 + g->nt - t) L = g->t0 + g->nt - t;
      if (trow != cur) { /* the a input rows of this tile row, zero-padded */
        const float *plane = g->x + (n * g->ci + ci) * g->h * g->w;
        for (int i = 0; i < a; i++) {
          int64_t yy = ty * m - g->pad + i;
          if (yy < 0 || yy >= g->h)
            memset(prow + i * pw, 0, (size_t)pw * sizeof(float));
          else
            load_row(g, plane, yy, -g->pad, (int)pw, prow + i * pw);
        }
        cur = trow;
      }
      const float *rows[6];
      for (int i = 0; i < a; i++) rows[i] = prow + i * pw + tx * m;
      float *o[36];
      for (int xi = 0; xi < a * a; xi++) o[xi] = g->V + ((xi * g->np + panel) * g->ci + ci) * nr + jj;
#if defined(__AVX512F__)
      if (m == 2)
        v_fused2(rows, L, o);
      else
        v_fused4(rows, L, o);
#else
      int S = (int)(m * L + 2);
      if (m == 2) {
        v_in2(rows[0], rows[1], rows[2], rows[3], S, vr[0], vr[1], vr[2], vr[3]);
        for (int k = 0; k < 4; k++) h_in2(vr[k], L, o[k * 4], o[k * 4 + 1], o[k * 4 + 2], o[k * 4 + 3]);
      } else {
        v_in4(rows, S, vr);
        for (int k = 0; k < 6; k++)
          h_in4(vr[k], L, o[k * 6], o[k * 6 + 1], o[k * 6 + 2], o[k * 6 + 3], o[k * 6 + 4], o[k * 6 + 5]);
      }
#endif
      t += L;
    }
    /* columns past the last tile of the block's last panel: zero */
    int64_t tail = g->np * nr - g->nt;
    if (tail > 0)
      for (int xi = 0; xi < a * a; xi++)
        memset(g->V + ((xi * g->np + g->np - 1) * g->ci + ci) * nr + (nr - tail), 0, (size_t)tail * sizeof(float));
  }
}

/* ---- Output transform: Y = A^T M A + bias ------------------------------------- */

/* One dimension of A^T q for L tiles, plus b: F(2) 4 -> 2 values, F(4) 6 -> 4. */
static void a_t2(const float *restrict q0, const float *restrict q1, const float *restrict q2,
                 const float *restrict q3, int64_t L, float b, float *restrict r0, float *restrict r1) {
  for (int64_t s = 0; s < L; s++) {
    r0[s] = q0[s] + q1[s] + q2[s] + b;
    r1[s] = q1[s] - q2[s] - q3[s] + b;
  }
}

static void a_t4(const float *restrict q0, const float *restrict q1, const float *restrict q2,
                 const float *restrict q3, const float *restrict q4, const float *restrict q5, int64_t L, float b,
                 float *restrict r0, float *restrict r1, float *restrict r2, float *restrict r3) {
  for (int64_t s = 0; s < L; s++) {
    float p12 = q1[s] + q2[s], m12 = q1[s] - q2[s], p34 = q3[s] + q4[s], m34 = q3[s] - q4[s];
    r0[s] = q0[s] + p12 + p34 + b;
    r1[s] = m12 + 2.0f * m34 + b;
    r2[s] = p12 + 4.0f * p34 + b;
    r3[s] = m12 + 8.0f * m34 + q5[s] + b;
  }
}

/* y[m s + c] = o[c][s] for the n whole tiles of a row (m = 2 or 4). */
static void interleave2(const float *restrict o0, const float *restrict o1, int64_t n, float *restrict y) {
  for (int64_t s = 0; s < n; s++) {
    y[2 * s] = o0[s];
    y[2 * s + 1] = o1[s];
  }
}

static void interleave4(const float *restrict o0, const float *restrict o1, const float *restrict o2,
                        const float *restrict o3, int64_t n, float *restrict y) {
  for (int64_t s = 0; s < n; s++) {
    y[4 * s] = o0[s];
    y[4 * s + 1] = o1[s];
    y[4 * s + 2] = o2[s];
    y[4 * s + 3] = o3[s];
  }
}

/* Output channels [c0, c1) of the current chunk, for the current tile block. */
static void y_task(void *arg, int64_t c0, int64_t c1, int ti) {
  (void)ti;
  wg *g = arg;
  const int m = g->m, a = g->a;
  const int64_t per_img = g->th * g->tw;
  float out[16][WG_RUN], mid[24][WG_RUN]; /* out[r m + c]: pixel (r, c) of each tile; mid[k m + c] */
  for (int64_t cl = c0; cl < c1; cl++) {
    int64_t co = g->co0 + cl;
    float bv = g->bias ? dg_load_f32(g->bias->data, g->bias->dtype, co) : 0.0f;
    for (int64_t t = g->t0; t < g->t0 + g->nt;) {
      int64_t n = t / per_img, rem = t % per_img, ty = rem / g->tw, tx = rem % g->tw;
      int64_t j = t - g->t0;
      int64_t L = g->tw - tx;
      if (L > WG_RUN) L = WG_RUN;
      if (L > g->t0 + g->nt - t) L = g->t0 + g->nt - t;
      const float *mp[36];
      for (int xi = 0; xi < a * a; xi++) mp[xi] = g->M + (xi * g->cc + cl) * g->ldm + j;
      /* rows k of M: mid[k][c] = (M[k][.] A)[c]; then columns: out[r][c] = (A^T mid[.][c])[r] + bias */
      if (m == 2) {
        for (int k = 0; k < 4; k++) a_t2(mp[k * 4], mp[k * 4 + 1], mp[k * 4 + 2], mp[k * 4 + 3], L, 0.0f, mid[k * 2], mid[k * 2 + 1]);
        for (int c = 0; c < 2; c++) a_t2(mid[c], mid[2 + c], mid[4 + c], mid[6 + c], L, bv, out[c], out[2 + c]);
      } else {
        for (int k = 0; k < 6; k++)
          a_t4(mp[k * 6], mp[k * 6 + 1], mp[k * 6 + 2], mp[k * 6 + 3], mp[k * 6 + 4], mp[k * 6 + 5], L, 0.0f,
               mid[k * 4], mid[k * 4 + 1], mid[k * 4 + 2], mid[k * 4 + 3]);
        for (int c = 0; c < 4; c++)
          a_t4(mid[c], mid[4 + c], mid[8 + c], mid[12 + c], mid[16 + c], mid[20 + c], L, bv, out[c], out[4 + c],
               out[8 + c], out[12 + c]);
      }
      /* scatter the m x m pixels of each tile, cropped at the bottom / right edges */
      float *plane = g->y + (n * g->co + co) * g->ho * g->wo;
      int64_t wmax = g->wo - tx * m; /* pixels of each row from the run's first */
      int64_t full = wmax / m < L ? wmax / m : L;
      for (int r = 0; r < m; r++) {
        int64_t oy = ty * m + r;
        if (oy >= g->ho) break;
        float *yr = plane + oy * g->wo + tx * m;
        if (m == 2)
          interleave2(out[r * 2], out[r * 2 + 1], full, yr);
        else
          interleave4(out[r * 4], out[r * 4 + 1], out[r * 4 + 2], out[r * 4 + 3], full, yr);
        if (full < L)
          for (int c = 0; c < m && m * full + c < wmax; c++) yr[m * full + c] = out[r * m + c][full];
      }
      t += L;
    }
  }
}

const dg__wg_kernels WG_TABLE = {u_task, v_task, y_task};
