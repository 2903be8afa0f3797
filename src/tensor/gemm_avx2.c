/* AVX2 + FMA GEMM micro-kernel: f32 6 x 16 (12 ymm accumulators). */
#include <immintrin.h>

#include "tensor/gemm.h"

#define MR 6

static void uk_f32(int64_t kc, const void *av, const void *bv, float *c, int64_t ldc, int acc,
                   const float *row_bias, const float *col_bias) {
  const float *a = av, *b = bv;
  __m256 c0[MR], c1[MR];
#pragma GCC unroll 6
  for (int r = 0; r < MR; r++) c0[r] = c1[r] = _mm256_setzero_ps();
  for (int64_t k = 0; k < kc; k++) {
    __m256 b0 = _mm256_load_ps(b), b1 = _mm256_load_ps(b + 8);
#pragma GCC unroll 6
    for (int r = 0; r < MR; r++) {
      __m256 ar = _mm256_broadcast_ss(a + r);
      c0[r] = _mm256_fmadd_ps(ar, b0, c0[r]);
      c1[r] = _mm256_fmadd_ps(ar, b1, c1[r]);
    }
    a += MR;
    b += 16;
  }
  if (acc) {
#pragma GCC unroll 6
    for (int r = 0; r < MR; r++) {
      float *cr = c + r * ldc;
      _mm256_storeu_ps(cr, _mm256_add_ps(_mm256_loadu_ps(cr), c0[r]));
      _mm256_storeu_ps(cr + 8, _mm256_add_ps(_mm256_loadu_ps(cr + 8), c1[r]));
    }
  } else {
    __m256 cb0 = _mm256_setzero_ps(), cb1 = _mm256_setzero_ps();
    if (col_bias) {
      cb0 = _mm256_loadu_ps(col_bias);
      cb1 = _mm256_loadu_ps(col_bias + 8);
    }
#pragma GCC unroll 6
    for (int r = 0; r < MR; r++) {
      float *cr = c + r * ldc;
      __m256 rb = _mm256_set1_ps(row_bias ? row_bias[r] : 0.0f);
      _mm256_storeu_ps(cr, _mm256_add_ps(c0[r], _mm256_add_ps(cb0, rb)));
      _mm256_storeu_ps(cr + 8, _mm256_add_ps(c1[r], _mm256_add_ps(cb1, rb)));
    }
  }
}

/* ---- Packing: DG__OPND_IK panels (f32 layout), 8 rows x 8 k transposed in registers ---- */

static inline __m256 load8(const void *p, dg_dtype t, int64_t off, int n) {
  if (n >= 8) {
    switch (t) {
      case DG_DTYPE_F16: return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)p + off)));
      case DG_DTYPE_BF16:
        return _mm256_castsi256_ps(_mm256_slli_epi32(
            _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)((const uint16_t *)p + off))), 16));
      default: return _mm256_loadu_ps((const float *)p + off);
    }
  }
  float tmp[8] = {0};
  for (int i = 0; i < n; i++) {
    switch (t) {
      case DG_DTYPE_F16: tmp[i] = _cvtsh_ss(((const uint16_t *)p)[off + i]); break;
      case DG_DTYPE_BF16: tmp[i] = dg_bf16_to_f32(((const uint16_t *)p)[off + i]); break;
      default: tmp[i] = ((const float *)p)[off + i]; break;
    }
  }
  return _mm256_loadu_ps(tmp);
}

static void pack_ik(const dg__opnd *o, int R, int bf16, int64_t i0, int64_t rows, int64_t k0, int64_t kc,
                    int64_t kpad, void *dst) {
  (void)bf16; /* f32 kernels only */
  (void)kpad;
  const __m256 sc = _mm256_set1_ps(o->scale);
  for (int g = 0; g < R; g += 8) {
    int gw = R - g < 8 ? R - g : 8;
    int gr = rows - g < gw ? (int)(rows - g) : gw;
    if (gr < 0) gr = 0;
    const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(gw), lanes);
    for (int64_t kb = 0; kb < kc; kb += 8) {
      int kn = kc - kb < 8 ? (int)(kc - kb) : 8;
      __m256 v[8], t[8];
#pragma GCC unroll 8
      for (int r = 0; r < 8; r++) {
        v[r] = r < gr ? load8(o->data, o->dtype, (i0 + g + r) * o->ld + k0 + kb, kn) : _mm256_setzero_ps();
        if (o->scale != 1.0f) v[r] = _mm256_mul_ps(v[r], sc);
      }
#pragma GCC unroll 4
      for (int i = 0; i < 8; i += 2) {
        t[i] = _mm256_unpacklo_ps(v[i], v[i + 1]);
        t[i + 1] = _mm256_unpackhi_ps(v[i], v[i + 1]);
      }
#pragma GCC unroll 2
      for (int i = 0; i < 8; i += 4) {
        v[i] = _mm256_shuffle_ps(t[i], t[i + 2], 0x44);
        v[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], 0xee);
        v[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0x44);
        v[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0xee);
      }
#pragma GCC unroll 4
      for (int i = 0; i < 4; i++) {
        t[i] = _mm256_permute2f128_ps(v[i], v[i + 4], 0x20);
        t[i + 4] = _mm256_permute2f128_ps(v[i], v[i + 4], 0x31);
      }
      float *d = (float *)dst + kb * R + g;
#pragma GCC unroll 8
      for (int kk = 0; kk < 8; kk++)
        if (kk < kn) _mm256_maskstore_ps(d + kk * R, mask, t[kk]);
    }
  }
}

/* Stride-1 im2col run with masked loads (lanes outside [0, w) read nothing). */
static void im2col_run(const float *xr, int64_t sx0, int64_t w, int len, float *d) {
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  for (int t = 0; t < len; t += 8) {
    __m256i sx = _mm256_add_epi32(lane, _mm256_set1_epi32((int)(sx0 + t)));
    __m256i ok = _mm256_and_si256(_mm256_cmpgt_epi32(sx, _mm256_set1_epi32(-1)),
                                  _mm256_cmpgt_epi32(_mm256_set1_epi32((int)w), sx));
    __m256i keep = _mm256_cmpgt_epi32(_mm256_set1_epi32(len - t), lane);
    /* address arithmetic in integers: the masked-off lanes may lie outside the row */
    const float *src = (const float *)((uintptr_t)xr + (uintptr_t)((sx0 + t) * (int64_t)sizeof(float)));
    _mm256_maskstore_ps(d + t, keep, _mm256_maskload_ps(src, _mm256_and_si256(ok, keep)));
  }
}

static const dg__ukernel k_f32 = {.mr = MR, .nr = 16, .bf16 = 0, .kalign = 1, .fn = uk_f32, .pack_ik = pack_ik,
                                  .im2col_run = im2col_run, .name = "avx2-6x16-f32"};

const dg__ukernel *dg__ukernel_avx2(void) { return &k_f32; }
