/* Internal: the packed, cache-blocked GEMM core behind linear, conv2d,
 * matmul and attention (fast.c, attn.c).
 *
 *   C (M, N) [+]= A (M, K) . B (K, N)  (+ bias per row or per column)
 *
 * The operands are never read in place: the driver copies blocks of them into
 * "packed panels" in per-thread scratch, converting the stored dtype (F32, F16,
 * BF16) to the kernel's (f32, or bf16 pairs for the bf16 precision):
 *
 *   A panel: MR rows x kc   -> a[k * MR + r]             (f32)
 *                              a[(k/2) * 2MR + 2r + k%2] (bf16 pairs)
 *                              a[(k/32) * 32MR + 32r + k%32] (bf16 row-major 32-k tiles, AMX)
 *   B panel: kc x NR cols   -> b[k * NR + j]             (f32)
 *                              b[(k/2) * 2NR + 2j + k%2] (bf16 pairs, also AMX)
 *
 * rows/cols past the matrix edge and k past kc (up to the kernel's kalign) are
 * zero.  The SIMD micro-kernels keep an MR x NR tile of C in registers (NR is a
 * multiple of the vector width: broadcast one A value, FMA against NR/16
 * vectors of B); the AMX one keeps it in four 16 x 16 tile registers.
 *
 * Kernels: generic C 4x16, AVX2 6x16, AVX-512 14x32 (f32 and vdpbf16ps),
 * AMX-BF16 32x32; dg__ukernel_for() picks one from the engine's ISA and
 * precision.
 *
 * Loop nest (BLIS): jc (NC columns) > pc (KC of K) > ic (MC rows) > jr (NR) > ir (MR).
 * When a thread's rows fit one A block (<= 1.25 MiB packed), there is one ic
 * and one jc block and each B panel is packed right before its use (see gemm.c).
 * Threads split either the rows or the columns (whichever operand is the
 * bigger one stays unreplicated) into contiguous chunks of whole panels.  The
 * K order of every C element is the same for every split, so results are
 * bit-identical whatever the thread count. */
#ifndef DG_TENSOR_GEMM_H
#define DG_TENSOR_GEMM_H

#include <stddef.h>
#include <stdint.h>

#include "tensor/tensor.h"

/* One micro-kernel: C tile (MR, NR) at c with row stride ldc.
 *   kc        number of k steps in the packed panels (dg__ksteps: pairs for bf16)
 *   acc       0: C = tile (+ bias); 1: C += tile (bias ignored)
 *   row_bias  MR floats added to each row (or NULL); col_bias NR floats (or NULL) */
typedef void (*dg__ukernel_fn)(int64_t kc, const void *a, const void *b, float *c, int64_t ldc,
                               int acc, const float *row_bias, const float *col_bias);

struct dg__opnd;
typedef struct dg__ukernel {
  int mr, nr;
  int bf16;      /* panels hold bf16 pairs (vdpbf16ps / AMX) instead of f32 */
  int kalign;    /* panels' k is zero-padded to a multiple of this (1, 2, or 32 for AMX) */
  dg__ukernel_fn fn;
  /* Optional (AMX): fn without biases for a tile of which only `rows` x `cols`
   * (<= MR x NR) are needed; products outside are skipped where the kernel can
   * (whole 16-row / 16-column quarters), those C entries then hold their
   * starting value (0, or C itself when acc).  Attention's head-width tails. */
  void (*fn_part)(int64_t kc, const void *a, const void *b, float *c, int64_t ldc, int acc, int rows, int cols);
  /* Optional vectorised packing (NULL: portable C): a whole DG__OPND_IK
   * panel in the pair layout (kpad = padded kc), and two f32 rows of R values -> bf16 pairs. */
  void (*pack_ik)(const struct dg__opnd *o, int R, int bf16, int64_t i0, int64_t rows, int64_t k0,
                  int64_t kc, int64_t kpad, void *dst);
  void (*cvt_pairs)(const float *r0, const float *r1, int R, uint16_t *dst);
  /* AMX: A panels are row-major bf16 tiles, chunk after chunk of 32 k:
   * a[(k / 32) * 32 R + r * 32 + k % 32] (each chunk = two 16-row x 32-k tiles),
   * packed by this (IK operands only); NULL for the pair layout. */
  void (*pack_a_tiled)(const struct dg__opnd *o, int R, int64_t i0, int64_t rows, int64_t k0,
                       int64_t kc, int64_t kpad, void *dst);
  /* Stride-1 im2col run: d[t] = (0 <= sx0 + t < w) ? xr[sx0 + t] : 0 for t < len (NULL: C). */
  void (*im2col_run)(const float *xr, int64_t sx0, int64_t w, int len, float *d);
  /* Called by each thread before / after its share of a GEMM (AMX tile config), or NULL. */
  void (*thread_begin)(void);
  void (*thread_end)(void);
  const char *name;
} dg__ukernel;

/* The kernel for an ISA (GENERIC, AVX2, AVX512) and precision; bf16 needs
 * AVX512 + avx512bf16 (otherwise the f32 kernel of the ISA is returned). */
const dg__ukernel *dg__ukernel_for(dg_isa isa, dg_precision prec);
/* Per-ISA kernel tables (NULL when the file was not built for the CPU). */
const dg__ukernel *dg__ukernel_generic(void);
const dg__ukernel *dg__ukernel_avx2(void);
const dg__ukernel *dg__ukernel_avx512(void);
const dg__ukernel *dg__ukernel_avx512_bf16(void);
const dg__ukernel *dg__ukernel_amx_bf16(void); /* NULL without AMX-BF16 or OS permission */

/* How an operand is stored.  Index i is the operand's free dimension (rows of
 * A, columns of B), k the reduction dimension. */
typedef enum dg__opnd_kind {
  DG__OPND_IK,     /* element (i, k) at data[i * ld + k] */
  DG__OPND_KI,     /* element (i, k) at data[k * ld + i] */
  DG__OPND_IM2COL  /* B of a convolution: i = (n, oy, ox), k = (ci, dy, dx) */
} dg__opnd_kind;

typedef struct dg__conv_geom {
  int64_t n, ci, h, w;  /* input x (n, ci, h, w), F32 */
  int64_t ho, wo;       /* output spatial size */
  int kh, kw, stride, pad;
} dg__conv_geom;

typedef struct dg__opnd {  /* (struct tag used above) */
  dg__opnd_kind kind;
  dg_dtype dtype;       /* F32, F16, BF16 */
  const void *data;
  int64_t ld;
  float scale;          /* multiplies every element while packing (1 = none) */
  const dg__conv_geom *conv; /* for DG__OPND_IM2COL */
} dg__opnd;

/* Where C element (i, j) lives: c + (j / jdiv) * cimg + i * ldc + j % jdiv.
 * Plain row-major C: jdiv = N, cimg = 0.  A convolution's output (n, co, p):
 * i = co, j = n * P + p, jdiv = P, cimg = Co * P, ldc = P. */
typedef struct dg__gemm {
  int64_t m, n, k;
  dg__opnd a, b;
  float *c;
  int64_t ldc, jdiv, cimg;
  const void *row_bias;  /* (M) or NULL */
  const void *col_bias;  /* (N) or NULL */
  dg_dtype bias_dtype;   /* F32, F16 or BF16 */
} dg__gemm;

/* Run one GEMM on the engine's threads with kernel uk.  ERR_NOMEM if scratch fails. */
dg_status dg__gemm_run(dg_engine *e, const dg__ukernel *uk, const dg__gemm *g);

/* Packing, exposed for attention: panel of `rows` valid indices from i0 of
 * width R over k in [k0, k0 + kc), in uk's layout (f32 or bf16 pairs). */
void dg__pack_panel(const dg__ukernel *uk, const dg__opnd *o, int is_a, int R, int64_t i0,
                    int64_t rows, int64_t k0, int64_t kc, void *dst);
/* Bytes of one packed panel of uk of width R and kc k values. */
size_t dg__panel_bytes(const dg__ukernel *uk, int R, int64_t kc);
/* Kernel k steps for kc k values (pairs for bf16, after padding). */
int64_t dg__ksteps(const dg__ukernel *uk, int64_t kc);

/* f32 -> bf16 round to nearest even (NaN kept quiet). */
static inline uint16_t dg__bf16_rne(float f) {
  union { float f; uint32_t u; } v;
  v.f = f;
  if ((v.u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((v.u >> 16) | 0x40);
  v.u += 0x7fffu + ((v.u >> 16) & 1u);
  return (uint16_t)(v.u >> 16);
}

#endif
