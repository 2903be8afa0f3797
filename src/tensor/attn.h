/* Internal: flash attention on the GEMM micro-kernels (attn.c).
 *
 * Per (batch, head) the keys are packed as A panels (MR keys x D) and V^T as
 * A panels (MR of D x keys).  Each task takes NR queries (the kernel's vector
 * width) and walks the keys in blocks of Bk:
 *   S^T (Bk, NR)  = K_blk (Bk, D) . (scale*log2e * Q)^T (D, NR)      micro-kernel
 *   m' = max(m, colmax S^T); P^T = 2^(S^T - m'); l = l*2^(m-m') + colsum P^T
 *   O^T (D, NR)  = O^T * 2^(m-m') + V^T_blk (D, Bk) . P^T (Bk, NR)   micro-kernel
 * Queries are columns, so the softmax statistics are plain vector ops across
 * rows, and P^T is produced directly in the packed B layout of the second
 * product.  Only Bk x NR scores exist at a time.  When the packs of every head
 * of a batch fit in 4 MiB they are made at once and a task takes NR queries x
 * every head (whole rows of q and y per task); otherwise one head at a time.
 *
 * Short key sequences (Lk <= 128: text cross attention, CLIP, small self
 * attention) need no online softmax and are dominated by moving q and y, so
 * with AVX2 / AVX-512 they take other paths with queries as rows (no
 * transposes of Q or O, y written in place):
 *   f32:  dg__attn_short_avx512 / _avx2, register tiles broadcasting q;
 *   bf16 on AMX: the AMX micro-kernel with Q as a row-major A panel, P rows
 *         (dg__attn_rowsoftmax_bf16_avx512) as the A panel of P . V. */
#ifndef DG_TENSOR_ATTN_H
#define DG_TENSOR_ATTN_H

#include "tensor/tensor.h"

dg_status dg__attention_flash(dg_engine *e, dg_tensor *y, const dg_tensor *q, const dg_tensor *k,
                              const dg_tensor *v, int n_heads, int causal, float scale);

/* One block of the online softmax over s (nrows, nr) f32 (log2 domain).
 * Row r (key j0 + r) counts for column c (query q0 + c) when r < valid and,
 * if causal, j0 + r <= q0 + c; other entries give p = 0.
 * m, l (nr): running max and sum, updated; alpha (nr): factor for the old O.
 * p: f32 in place of s, or (bf16) pairs b[(r/2) * 2nr + 2c + r%2]; nrows is even then. */
typedef void (*dg__attn_softmax_fn)(float *s, int64_t nrows, int nr, int64_t valid, int64_t j0,
                                    int64_t q0, int causal, float *m, float *l, float *alpha,
                                    void *p, int bf16);
void dg__attn_softmax_generic(float *s, int64_t nrows, int nr, int64_t valid, int64_t j0, int64_t q0,
                              int causal, float *m, float *l, float *alpha, void *p, int bf16);
/* nr == 16, f32 only. */
void dg__attn_softmax_avx2(float *s, int64_t nrows, int nr, int64_t valid, int64_t j0, int64_t q0,
                           int causal, float *m, float *l, float *alpha, void *p, int bf16);
/* nr == 32 only. */
void dg__attn_softmax_avx512(float *s, int64_t nrows, int nr, int64_t valid, int64_t j0, int64_t q0,
                             int causal, float *m, float *l, float *alpha, void *p, int bf16);

/* y[c * ldy + dd] = o[dd * 32 + c] / l[c] for c < rows, dd < d (0 where l = 0); o is (>= d, 32). */
void dg__attn_store_avx512(const float *o, int64_t d, int64_t rows, const float *l, float *y, int64_t ldy);

/* Short key sequences (Lk <= 128, D <= 256), f32, no online softmax: queries
 * [q0, q0 + rows) of one head, whole score rows in registers, then O = P V written
 * straight into y (rows of the (tokens, heads * D) layout).
 *   q (rows, D) at row stride ldq;  y (rows, D) at row stride ldy
 *   kt (D, ldk): (scale * log2e * K)^T, ldk = 16 * ceil(Lk / 16), zero past Lk
 *   vp (Lk, ldv): V, ldv = 16 * ceil(D / 16), zero past D
 *   p (rows, ldk), inv (rows): scratch.  causal: key j visible to query q0 + r iff j <= q0 + r. */
void dg__attn_short_avx512(const float *q, int64_t ldq, const float *kt, const float *vp, int64_t lk, int64_t d,
                           int64_t q0, int64_t rows, int causal, float *p, float *inv, float *y, int64_t ldy);

/* Short key sequences on a kernel with row-major tiled bf16 A panels (AMX), queries as rows:
 * s (rows, lds) f32 scores in the log2 domain of queries q0.., keys [0, lk) ->
 * p: bf16 A panel (32 rows, kpad) in the AMX tiled layout (gemm.h), element (r, k) at
 * p[(k / 32) * 1024 + r * 32 + k % 32], 2^(s - max) for visible keys and 0 up to kpad
 * (kpad: a multiple of 32 >= lk); inv[r] = 1 / sum (of the f32 values). */
void dg__attn_rowsoftmax_bf16_avx512(const float *s, int64_t lds, int rows, int64_t lk, int64_t kpad, int causal,
                                     int64_t q0, uint16_t *p, float *inv);
/* y[r * ldy + dd] = o[r * ldo + dd] * inv[r] for r < rows, dd < d. */
void dg__attn_rowstore_avx512(const float *o, int64_t ldo, int rows, const float *inv, int64_t d, float *y,
                              int64_t ldy);

/* o[r * NR + c] *= alpha[c] for r < d: NR = 32 (AVX-512), 16 (AVX2). */
void dg__attn_rescale_avx512(float *o, int64_t d, const float *alpha);
void dg__attn_rescale_avx2(float *o, int64_t d, const float *alpha);

/* The same with AVX2 + FMA: ldk = 8 * ceil(Lk / 8), ldv = 8 * ceil(D / 8); any Lk, D
 * (the caller keeps Lk short: p holds whole score rows). */
void dg__attn_short_avx2(const float *q, int64_t ldq, const float *kt, const float *vp, int64_t lk, int64_t d,
                         int64_t q0, int64_t rows, int causal, float *p, float *inv, float *y, int64_t ldy);

#endif
