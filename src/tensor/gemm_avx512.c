/* AVX-512 GEMM micro-kernels: f32 14 x 32 (28 zmm accumulators, FMA against
 * two B vectors per broadcast A value) and bf16 14 x 32 (vdpbf16ps on pairs
 * of k, f32 accumulation).  See gemm.h for the panel layouts. */
#include <immintrin.h>
#include <string.h>

#include "tensor/gemm.h"
#include "tensor/gemm_avx512.h"

#define MR 14
#ifndef PF_B
#define PF_B 512 /* floats ahead in the B panel (16 k steps) */
#endif
#ifndef PF_A
#define PF_A 224 /* floats ahead in the A panel (16 k steps) */
#endif

/* Epilogue shared by both kernels: c (MR x 32) = tile [+ bias] or += tile. */
#define STORE_TILE()                                                                   \
  do {                                                                                 \
    if (acc) {                                                                         \
      _Pragma("GCC unroll 14") for (int r = 0; r < MR; r++) {                          \
        float *cr = c + r * ldc;                                                       \
        _mm512_storeu_ps(cr, _mm512_add_ps(_mm512_loadu_ps(cr), c0[r]));               \
        _mm512_storeu_ps(cr + 16, _mm512_add_ps(_mm512_loadu_ps(cr + 16), c1[r]));     \
      }                                                                                \
    } else {                                                                           \
      __m512 cb0 = _mm512_setzero_ps(), cb1 = _mm512_setzero_ps();                     \
      if (col_bias) {                                                                  \
        cb0 = _mm512_loadu_ps(col_bias);                                               \
        cb1 = _mm512_loadu_ps(col_bias + 16);                                          \
      }                                                                                \
      _Pragma("GCC unroll 14") for (int r = 0; r < MR; r++) {                          \
        float *cr = c + r * ldc;                                                       \
        __m512 rb = _mm512_set1_ps(row_bias ? row_bias[r] : 0.0f);                     \
        _mm512_storeu_ps(cr, _mm512_add_ps(c0[r], _mm512_add_ps(cb0, rb)));            \
        _mm512_storeu_ps(cr + 16, _mm512_add_ps(c1[r], _mm512_add_ps(cb1, rb)));       \
      }                                                                                \
    }                                                                                  \
  } while (0)

static void uk_f32(int64_t kc, const void *av, const void *bv, float *c, int64_t ldc, int acc,
                   const float *row_bias, const float *col_bias) {
  const float *a = av, *b = bv;
  __m512 c0[MR], c1[MR];
#pragma GCC unroll 14
  for (int r = 0; r < MR; r++) c0[r] = c1[r] = _mm512_setzero_ps();
  /* The panels stream from L2 (kc x 32 of B is 64 KiB at kc = 512, more than
   * L1): prefetch both B lines and the A line of each k step a few hundred
   * cycles ahead, and the C tile (rows often 4 KiB-aligned, so they evict
   * each other) shortly before the epilogue reads or writes it. */
  int64_t kpf = kc > 24 ? kc - 24 : 0;
  for (int pass = 0; pass < 2; pass++) {
    int64_t kend = pass ? kc : kpf;
    for (int64_t k = pass ? kpf : 0; k < kend; k++) {
      __m512 b0 = _mm512_load_ps(b), b1 = _mm512_load_ps(b + 16);
      _mm_prefetch((const char *)(b + PF_B), _MM_HINT_T0);
      _mm_prefetch((const char *)(b + PF_B + 16), _MM_HINT_T0);
      _mm_prefetch((const char *)(a + PF_A), _MM_HINT_T0);
#pragma GCC unroll 14
      for (int r = 0; r < MR; r++) {
        __m512 ar = _mm512_set1_ps(a[r]);
        c0[r] = _mm512_fmadd_ps(ar, b0, c0[r]);
        c1[r] = _mm512_fmadd_ps(ar, b1, c1[r]);
      }
      a += MR;
      b += 32;
    }
    if (!pass) {
#pragma GCC unroll 14
      for (int r = 0; r < MR; r++) {
        _mm_prefetch((const char *)(c + r * ldc), _MM_HINT_T0);
        _mm_prefetch((const char *)(c + r * ldc + 16), _MM_HINT_T0);
      }
    }
  }
  STORE_TILE();
}

static void uk_bf16(int64_t kc, const void *av, const void *bv, float *c, int64_t ldc, int acc,
                    const float *row_bias, const float *col_bias) {
  const uint16_t *a = av, *b = bv;
  __m512 c0[MR], c1[MR];
#pragma GCC unroll 14
  for (int r = 0; r < MR; r++) c0[r] = c1[r] = _mm512_setzero_ps();
  for (int64_t k = 0; k < kc; k++) {
    __m512bh b0 = (__m512bh)_mm512_load_si512((const void *)b);
    __m512bh b1 = (__m512bh)_mm512_load_si512((const void *)(b + 32));
    _mm_prefetch((const char *)(b + 1024), _MM_HINT_T0);
#pragma GCC unroll 14
    for (int r = 0; r < MR; r++) {
      int32_t pr;
      memcpy(&pr, a + 2 * r, sizeof pr);
      __m512bh ar = (__m512bh)_mm512_set1_epi32(pr);
      c0[r] = _mm512_dpbf16_ps(c0[r], ar, b0);
      c1[r] = _mm512_dpbf16_ps(c1[r], ar, b1);
    }
    a += 2 * MR;
    b += 64;
  }
  STORE_TILE();
}


/* ---- Packing ------------------------------------------------------------- */

/* words [2c] = a[c], [2c+1] = b[c] as bf16 (round to nearest even) */
static inline __m512i pair_bf16(__m512 a, __m512 b) {
  const __m512i perm = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7, 22,
                                        6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
  return _mm512_permutexvar_epi16(perm, (__m512i)_mm512_cvtne2ps_pbh(b, a));
}

/* IK operand (element (i, k) at data[i * ld + k]) into a panel of width R:
 * 16 rows x 16 k at a time, transposed in registers. */
void dg__pack_ik_avx512(const dg__opnd *o, int R, int bf16, int64_t i0, int64_t rows, int64_t k0, int64_t kc,
                        int64_t kpad, void *dst) {
  const __m512 sc = _mm512_set1_ps(o->scale);
  for (int g = 0; g < R; g += 16) {
    int gw = R - g < 16 ? R - g : 16;                       /* panel columns in this group */
    int gr = rows - g < gw ? (int)(rows - g) : gw;          /* valid rows in this group */
    if (gr < 0) gr = 0;
    for (int64_t kb = 0; kb < kpad; kb += 16) {
      int kn = kc - kb < 16 ? (int)(kc - kb) : 16; /* valid k (may be <= 0 on the pad step) */
      if (kn < 0) kn = 0;
      __m512 v[16];
      if (gr == 16 && kn == 16 && o->scale == 1.0f) { /* whole block: straight-line loads, one branch */
        const int64_t off = (i0 + g) * o->ld + k0 + kb, ld = o->ld;
        switch (o->dtype) {
          case DG_DTYPE_F16:
#pragma GCC unroll 16
            for (int r = 0; r < 16; r++)
              v[r] = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)((const uint16_t *)o->data + off + r * ld)));
            break;
          case DG_DTYPE_BF16:
#pragma GCC unroll 16
            for (int r = 0; r < 16; r++)
              v[r] = _mm512_castsi512_ps(_mm512_slli_epi32(
                  _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)((const uint16_t *)o->data + off + r * ld))),
                  16));
            break;
          default:
#pragma GCC unroll 16
            for (int r = 0; r < 16; r++) v[r] = _mm512_loadu_ps((const float *)o->data + off + r * ld);
        }
      } else {
#pragma GCC unroll 16
        for (int r = 0; r < 16; r++) {
          v[r] = r < gr && kn > 0 ? dg__load16_avx512(o->data, o->dtype, (i0 + g + r) * o->ld + k0 + kb, kn)
                                  : _mm512_setzero_ps();
          if (o->scale != 1.0f) v[r] = _mm512_mul_ps(v[r], sc);
        }
      }
      TRANSPOSE16(v); /* v[kk] = rows g.. at k = kb + kk */
      int kend = kpad - kb < 16 ? (int)(kpad - kb) : 16;
      if (!bf16) {
        __mmask16 m = (__mmask16)((1u << gw) - 1);
        float *d = (float *)dst + kb * R + g;
#pragma GCC unroll 16
        for (int kk = 0; kk < 16; kk++)
          if (kk < kend) _mm512_mask_storeu_ps(d + kk * R, m, v[kk]);
      } else {
        __mmask32 m = (__mmask32)(gw == 16 ? 0xffffffffu : (1u << (2 * gw)) - 1);
        uint16_t *d = (uint16_t *)dst + kb * R + 2 * g; /* pair kb/2 starts at (kb/2)*2R */
#pragma GCC unroll 8
        for (int kk = 0; kk < 16; kk += 2)
          if (kk < kend) _mm512_mask_storeu_epi16(d + kk * R, m, pair_bf16(v[kk], v[kk + 1]));
      }
    }
  }
}

/* Two f32 rows of R values -> bf16 pairs d[2c] = r0[c], d[2c+1] = r1[c]. */
void dg__cvt_pairs_avx512(const float *r0, const float *r1, int R, uint16_t *d) {
  int c = 0;
  for (; c + 16 <= R; c += 16)
    _mm512_storeu_si512(d + 2 * c, pair_bf16(_mm512_loadu_ps(r0 + c), _mm512_loadu_ps(r1 + c)));
  if (c < R) {
    __mmask16 m = (__mmask16)((1u << (R - c)) - 1);
    __mmask32 m2 = (__mmask32)((1ull << (2 * (R - c))) - 1);
    _mm512_mask_storeu_epi16(d + 2 * c, m2, pair_bf16(_mm512_maskz_loadu_ps(m, r0 + c), _mm512_maskz_loadu_ps(m, r1 + c)));
  }
}

/* Stride-1 im2col run with masked loads (lanes outside [0, w) read nothing). */
void dg__im2col_run_avx512(const float *xr, int64_t sx0, int64_t w, int len, float *d) {
  const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  for (int t = 0; t < len; t += 16) {
    __m512i sx = _mm512_add_epi32(lane, _mm512_set1_epi32((int)(sx0 + t)));
    __mmask16 m = _mm512_cmp_epi32_mask(sx, _mm512_setzero_si512(), _MM_CMPINT_NLT) &
                  _mm512_cmp_epi32_mask(sx, _mm512_set1_epi32((int)w), _MM_CMPINT_LT);
    __mmask16 keep = (__mmask16)(len - t >= 16 ? 0xffff : (1u << (len - t)) - 1);
    /* address arithmetic in integers: the masked-off lanes may lie outside the row */
    const float *src = (const float *)((uintptr_t)xr + (uintptr_t)((sx0 + t) * (int64_t)sizeof(float)));
    _mm512_mask_storeu_ps(d + t, keep, _mm512_maskz_loadu_ps(m & keep, src));
  }
}

static const dg__ukernel k_f32 = {.mr = MR, .nr = 32, .bf16 = 0, .kalign = 1, .fn = uk_f32,
                                  .pack_ik = dg__pack_ik_avx512, .cvt_pairs = dg__cvt_pairs_avx512,
                                  .im2col_run = dg__im2col_run_avx512, .name = "avx512-14x32-f32"};
static const dg__ukernel k_bf16 = {.mr = MR, .nr = 32, .bf16 = 1, .kalign = 2, .fn = uk_bf16,
                                   .pack_ik = dg__pack_ik_avx512, .cvt_pairs = dg__cvt_pairs_avx512,
                                   .im2col_run = dg__im2col_run_avx512, .name = "avx512bf16-14x32-bf16"};

const dg__ukernel *dg__ukernel_avx512(void) { return &k_f32; }
const dg__ukernel *dg__ukernel_avx512_bf16(void) { return &k_bf16; }
