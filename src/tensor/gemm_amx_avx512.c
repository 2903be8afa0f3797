/* AMX-BF16 GEMM micro-kernel (Sapphire Rapids and later): C tile 32 x 32 as
 * four 16 x 16 f32 tile registers, A as two 16-row x 32-k bf16 tiles, B as two
 * 16-pair x 16-column bf16 tiles (the same pair layout as the vdpbf16ps
 * kernel).  A panels are row-major bf16 (a[r * kpad + k]), so weights stored
 * (Co, K) or activations (M, K) are only converted, never transposed.
 *
 * Linux hands out the AMX tile state only on request (arch_prctl
 * ARCH_REQ_XCOMP_PERM); dg__ukernel_amx_bf16() makes that request once and
 * returns NULL if the CPU or the OS says no.  DG_AMX=0 in the environment
 * turns the kernel off (the vdpbf16ps kernel is used instead). */
#include <cpuid.h>
#include <immintrin.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "tensor/gemm.h"
#include "tensor/gemm_avx512.h"

#define AMX_ATTR __attribute__((target("amx-tile,amx-bf16")))


typedef struct tile_cfg {
  uint8_t palette, start_row;
  uint8_t reserved[14];
  uint16_t colsb[16];
  uint8_t rows[16];
} tile_cfg;

static _Alignas(64) tile_cfg g_cfg;

AMX_ATTR static void amx_begin(void) { _tile_loadconfig(&g_cfg); }
AMX_ATTR static void amx_end(void) { _tile_release(); }

/* kc: k pairs, a multiple of 16.  tmm0..3 = C, tmm4/5 = A rows 0-15 / 16-31,
 * tmm6/7 = B columns 0-15 / 16-31. */
/* m2 / n2 = 0: rows 16-31 / columns 16-31 of the tile are not needed (their
 * products are skipped; those C tiles keep their starting value). */
AMX_ATTR static inline void amx_tile(int64_t kc, const void *av, const void *bv, float *c, int64_t ldc, int acc,
                                     const float *row_bias, const float *col_bias, int m2, int n2) {
  const uint16_t *a = av, *b = bv;
  int64_t cstride = ldc * 4;
  /* A column bias is the accumulators' starting value (stride-0 tile load):
   * no second pass that re-reads C right after the tile stores (~45% of the
   * kernel's samples for linear 8192x320->2560).  A row bias is still added
   * by that pass: building a bias tile in memory and loading it right away
   * (store -> tile load) measured slower (conv1x1 64x64x320 ~240 -> ~130 GFLOP/s). */
  if (acc) {
    _tile_loadd(0, c, cstride);
    _tile_loadd(1, c + 16, cstride);
    _tile_loadd(2, c + 16 * ldc, cstride);
    _tile_loadd(3, c + 16 * ldc + 16, cstride);
  } else if (col_bias && !row_bias) { /* every row the same: stride 0 */
    _tile_loadd(0, col_bias, 0);
    _tile_loadd(1, col_bias + 16, 0);
    _tile_loadd(2, col_bias, 0);
    _tile_loadd(3, col_bias + 16, 0);
  } else {
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
  }
  if (m2 && n2) {
    for (int64_t p = 0; p < kc; p += 16) {
      _tile_loadd(4, a + p * 64, 64); /* chunk p / 16: 32 rows x 32 k, 2 KiB */
      _tile_loadd(5, a + p * 64 + 512, 64);
      _tile_loadd(6, b + p * 64, 128);
      _tile_loadd(7, b + p * 64 + 32, 128);
      _tile_dpbf16ps(0, 4, 6);
      _tile_dpbf16ps(1, 4, 7);
      _tile_dpbf16ps(2, 5, 6);
      _tile_dpbf16ps(3, 5, 7);
    }
  } else if (n2) { /* rows 0-15 */
    for (int64_t p = 0; p < kc; p += 16) {
      _tile_loadd(4, a + p * 64, 64);
      _tile_loadd(6, b + p * 64, 128);
      _tile_loadd(7, b + p * 64 + 32, 128);
      _tile_dpbf16ps(0, 4, 6);
      _tile_dpbf16ps(1, 4, 7);
    }
  } else if (m2) { /* columns 0-15 */
    for (int64_t p = 0; p < kc; p += 16) {
      _tile_loadd(4, a + p * 64, 64);
      _tile_loadd(5, a + p * 64 + 512, 64);
      _tile_loadd(6, b + p * 64, 128);
      _tile_dpbf16ps(0, 4, 6);
      _tile_dpbf16ps(2, 5, 6);
    }
  } else {
    for (int64_t p = 0; p < kc; p += 16) {
      _tile_loadd(4, a + p * 64, 64);
      _tile_loadd(6, b + p * 64, 128);
      _tile_dpbf16ps(0, 4, 6);
    }
  }
  /* The tile goes to an L1-resident buffer and from there to C with vector
   * stores: tile stores straight into C lines that are not in the cache ran
   * at a fraction of the kernel's rate (each row a serialised miss). */
  if (ldc == 32 && !row_bias) { /* a contiguous tile: a work buffer, already in L1 */
    _tile_stored(0, c, cstride);
    _tile_stored(1, c + 16, cstride);
    _tile_stored(2, c + 16 * ldc, cstride);
    _tile_stored(3, c + 16 * ldc + 16, cstride);
    return;
  }
  static _Thread_local _Alignas(64) float t[32 * 32];
  _tile_stored(0, t, 128);
  _tile_stored(1, t + 16, 128);
  _tile_stored(2, t + 512, 128);
  _tile_stored(3, t + 528, 128);
  __m512 cb0 = _mm512_setzero_ps(), cb1 = _mm512_setzero_ps();
  if (!acc && col_bias && row_bias) {
    cb0 = _mm512_loadu_ps(col_bias);
    cb1 = _mm512_loadu_ps(col_bias + 16);
  }
  for (int r = 0; r < 32; r++) {
    float *cr = c + r * ldc;
    __m512 v0 = _mm512_load_ps(t + 32 * r), v1 = _mm512_load_ps(t + 32 * r + 16);
    if (!acc && row_bias) {
      __m512 rb = _mm512_set1_ps(row_bias[r]);
      v0 = _mm512_add_ps(v0, _mm512_add_ps(cb0, rb));
      v1 = _mm512_add_ps(v1, _mm512_add_ps(cb1, rb));
    }
    _mm512_storeu_ps(cr, v0);
    _mm512_storeu_ps(cr + 16, v1);
  }
}

static float elem(const dg__opnd *o, int64_t i, int64_t k) {
  int64_t off = o->kind == DG__OPND_KI ? k * o->ld + i : i * o->ld + k;
  switch (o->dtype) {
    case DG_DTYPE_F16: return dg_f16_to_f32(((const uint16_t *)o->data)[off]);
    case DG_DTYPE_BF16: return dg_bf16_to_f32(((const uint16_t *)o->data)[off]);
    default: return ((const float *)o->data)[off];
  }
}

AMX_ATTR static void uk_amx(int64_t kc, const void *av, const void *bv, float *c, int64_t ldc, int acc,
                            const float *row_bias, const float *col_bias) {
  amx_tile(kc, av, bv, c, ldc, acc, row_bias, col_bias, 1, 1);
}

AMX_ATTR static void uk_amx_part(int64_t kc, const void *av, const void *bv, float *c, int64_t ldc, int acc,
                                 int rows, int cols) {
  amx_tile(kc, av, bv, c, ldc, acc, NULL, NULL, rows > 16, cols > 16);
}

/* A panel as row-major tiles: d[(k / 32) * 32 R + r * 32 + k % 32] = A(i0 + r, k0 + k)
 * (bf16, zero padding): each 32-k chunk of the R rows is one contiguous run, so the
 * kernel's tile loads stream through memory (rows kpad apart would each be a stream
 * of their own).  IK and KI operands (A is never an im2col operand). */
static void pack_a_tiled(const dg__opnd *o, int R, int64_t i0, int64_t rows, int64_t k0, int64_t kc,
                            int64_t kpad, void *dst) {
  const __m512 sc = _mm512_set1_ps(o->scale);
  const int64_t cs = (int64_t)R * 32; /* elements per 32-k chunk */
  for (int r = 0; r < R; r++) {
    uint16_t *d = (uint16_t *)dst + r * 32; /* chunk c of row r at d + c * cs */
    int64_t k = 0;
    if (r < rows && o->kind == DG__OPND_IK) {
      int64_t off = (i0 + r) * o->ld + k0;
      for (; k + 32 <= kc; k += 32) {
        __m512 lo = dg__load16_avx512(o->data, o->dtype, off + k, 16);
        __m512 hi = dg__load16_avx512(o->data, o->dtype, off + k + 16, 16);
        if (o->scale != 1.0f) lo = _mm512_mul_ps(lo, sc), hi = _mm512_mul_ps(hi, sc);
        _mm512_storeu_si512(d + k / 32 * cs, (__m512i)_mm512_cvtne2ps_pbh(hi, lo));
      }
      if (k < kc) { /* last partial chunk, zero-filled to 32 */
        int n = (int)(kc - k);
        __m512 lo = dg__load16_avx512(o->data, o->dtype, off + k, n);
        __m512 hi = dg__load16_avx512(o->data, o->dtype, off + k + 16, n - 16);
        if (o->scale != 1.0f) lo = _mm512_mul_ps(lo, sc), hi = _mm512_mul_ps(hi, sc);
        _mm512_storeu_si512(d + k / 32 * cs, (__m512i)_mm512_cvtne2ps_pbh(hi, lo));
        k += 32;
      }
    } else if (r < rows) {
      for (; k < kc; k++) d[k / 32 * cs + k % 32] = dg__bf16_rne(elem(o, i0 + r, k0 + k) * o->scale);
      for (; k % 32; k++) d[k / 32 * cs + k % 32] = 0;
    }
    for (; k < kpad; k += 32) memset(d + k / 32 * cs, 0, 64);
  }
}

static const dg__ukernel k_amx = {.mr = 32, .nr = 32, .bf16 = 1, .kalign = 32, .fn = uk_amx, .fn_part = uk_amx_part,
                                  .pack_ik = dg__pack_ik_avx512, .cvt_pairs = dg__cvt_pairs_avx512,
                                  .pack_a_tiled = pack_a_tiled, .im2col_run = dg__im2col_run_avx512,
                                  .thread_begin = amx_begin, .thread_end = amx_end, .name = "amx-32x32-bf16"};

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static int g_ok;

static void amx_init(void) {
  const char *env = getenv("DG_AMX");
  if (env && env[0] == '0') return;
  unsigned a, b, c, d;
  if (__get_cpuid_max(0, NULL) < 7) return;
  __cpuid_count(7, 0, a, b, c, d);
  if (!((d >> 22) & 1) || !((d >> 24) & 1)) return; /* AMX-BF16, AMX-TILE */
  /* ask the kernel for the tile data state (ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) */
  if (syscall(SYS_arch_prctl, 0x1023, 18) != 0) return;
  memset(&g_cfg, 0, sizeof g_cfg);
  g_cfg.palette = 1;
  for (int i = 0; i < 8; i++) {
    g_cfg.colsb[i] = 64;
    g_cfg.rows[i] = 16;
  }
  g_ok = 1;
}

const dg__ukernel *dg__ukernel_amx_bf16(void) {
  pthread_once(&g_once, amx_init);
  return g_ok ? &k_amx : NULL;
}
