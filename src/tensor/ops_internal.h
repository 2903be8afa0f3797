/* Internal: the non-GEMM kernels behind ops.c, in a reference form
 * (ops_elem_ref.c, DG_ISA_REF) and a fast form (ops_fast.c, threaded, with
 * per-ISA vector row kernels from ops_avx2.c / ops_avx512.c).  ops.c has
 * checked every shape and dtype before any of these is called; activations
 * are contiguous F32, weight vectors (gamma, beta, table) any float dtype. */
#ifndef DG_TENSOR_OPS_INTERNAL_H
#define DG_TENSOR_OPS_INTERNAL_H

#include "tensor/tensor.h"

typedef enum dg__unary_op { DG__UNARY_SILU, DG__UNARY_GELU, DG__UNARY_QUICK_GELU } dg__unary_op;
typedef enum dg__binary_op { DG__BINARY_ADD, DG__BINARY_MUL } dg__binary_op;

/* Shape parameters shared by the reference and the fast form. */
typedef struct dg__gn_args {
  float *y;
  const float *x;
  int64_t n, c, s, g; /* x (n, c, s) in groups of c/g channels */
  float eps;
  const dg_tensor *gamma, *beta; /* (c) or NULL */
  int silu;
} dg__gn_args;

typedef struct dg__ln_args {
  float *y;
  const float *x;
  int64_t rows, c;
  float eps;
  const dg_tensor *gamma, *beta; /* (c) or NULL */
} dg__ln_args;

/* y (outer, nb, inner) = a (outer, nb, inner) op b (nb) broadcast over outer and inner */
typedef struct dg__bin_args {
  dg__binary_op op;
  float *y;
  const float *a, *b;
  int64_t outer, nb, inner;
} dg__bin_args;

/* rows x len elements of esize bytes: dst[r*dst_stride + i] = src[r*src_stride + i] (strides in elements) */
typedef struct dg__copy_args {
  char *dst;
  const char *src;
  int64_t rows, len, dst_stride, src_stride;
  size_t esize;
} dg__copy_args;

#define DG__DECLARE_ELEM_OPS(sfx)                                                                   \
  void dg__group_norm_##sfx(dg_engine *e, const dg__gn_args *a);                                    \
  void dg__layer_norm_##sfx(dg_engine *e, const dg__ln_args *a);                                    \
  void dg__softmax_##sfx(dg_engine *e, float *y, const float *x, int64_t rows, int64_t c);          \
  void dg__unary_##sfx(dg_engine *e, dg__unary_op op, float *y, const float *x, int64_t n);         \
  void dg__geglu_##sfx(dg_engine *e, float *y, const float *x, int64_t rows, int64_t n);            \
  void dg__upsample2x_##sfx(dg_engine *e, float *y, const float *x, int64_t planes, int64_t h,      \
                            int64_t w);                                                             \
  void dg__binary_##sfx(dg_engine *e, const dg__bin_args *a);                                       \
  void dg__scale_##sfx(dg_engine *e, float *y, const float *x, int64_t n, float alpha, float beta); \
  void dg__copy_rows_##sfx(dg_engine *e, const dg__copy_args *a);                                   \
  /* y (b, c, r) = x (b, r, c) */                                                                   \
  void dg__transpose_##sfx(dg_engine *e, float *y, const float *x, int64_t b, int64_t r, int64_t c); \
  void dg__embedding_##sfx(dg_engine *e, float *y, const void *ids, dg_dtype id_type, int64_t n,    \
                           const dg_tensor *table);                                                 \
  void dg__convert_##sfx(dg_engine *e, void *y, dg_dtype yt, const void *x, dg_dtype xt, int64_t n);

DG__DECLARE_ELEM_OPS(ref)
DG__DECLARE_ELEM_OPS(fast)

/* Timestep embedding (tiny; one implementation, written to follow torch's f32 arithmetic). */
void dg__timestep_embedding(float *y, const float *t, int64_t n, int64_t dim, int flip_sin_to_cos,
                            float freq_shift, float max_period);

/* ---- Vector row kernels of the fast form, one table per ISA -------------- */
typedef struct dg__vec_kernels {
  double (*sum)(const float *x, int64_t n);
  double (*sum_sq_dev)(const float *x, int64_t n, float mean); /* sum (x - mean)^2 */
  /* one pass: s[0] = sum (x - k), s[1] = sum (x - k)^2 */
  void (*sums_shifted)(const float *x, int64_t n, float k, double s[2]);
  /* y = (x - m) * a + b, then SiLU when silu.  pf (n) or NULL: data the caller
   * reads next (the next group), prefetched into L2 meanwhile (a hint only) */
  void (*affine)(float *y, const float *x, int64_t n, float m, float a, float b, int silu, const float *pf);
  /* y = (x - mean) * rstd * g + b; g, b (n) F32 or NULL; pf (n) or NULL: prefetched into L1 meanwhile */
  void (*normalize)(float *y, const float *x, int64_t n, float mean, float rstd, const float *g,
                    const float *b, const float *pf);
  void (*softmax)(float *y, const float *x, int64_t rows, int64_t n); /* over each row of (rows, n) */
  void (*unary)(dg__unary_op op, float *y, const float *x, int64_t n);
  void (*binary_vec)(dg__binary_op op, float *y, const float *a, const float *b, int64_t n);
  void (*binary_scalar)(dg__binary_op op, float *y, const float *a, float s, int64_t n);
  void (*scale)(float *y, const float *x, int64_t n, float alpha, float beta);
  void (*exp)(float *y, const float *x, int64_t n); /* the exp behind the kernels above (tested directly) */
  void (*geglu)(float *y, const float *a, const float *gate, int64_t n); /* y = a * GELU(gate), all (n) */
  /* one tile of a transpose: y[c * ldy + i] = x[i * ldx + c] for i < rows, c < cols (both <= 32) */
  void (*transpose)(float *y, int64_t ldy, const float *x, int64_t ldx, int rows, int cols);
} dg__vec_kernels;

extern const dg__vec_kernels dg__vec_generic;
/* NULL when the file was not built for this target (non-x86). */
const dg__vec_kernels *dg__vec_avx2(void);
const dg__vec_kernels *dg__vec_avx512(void);

#endif
