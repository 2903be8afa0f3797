/* The packed, cache-blocked GEMM driver (see gemm.h), operand packing, the
 * portable C micro-kernel and the choice of kernel per ISA. */
#include "tensor/gemm.h"

#include <stdatomic.h>
#include <string.h>

#include "tensor/kernels.h"

/* ---- Portable micro-kernel: 4 x 16, plain C (the compiler vectorises the j loop) ---- */
#define GEN_MR 4
#define GEN_NR 16

static void ukernel_generic_f32(int64_t kc, const void *av, const void *bv, float *c, int64_t ldc,
                                int acc, const float *row_bias, const float *col_bias) {
  const float *a = av, *b = bv;
  float t[GEN_MR][GEN_NR];
  memset(t, 0, sizeof t);
  for (int64_t k = 0; k < kc; k++) {
    const float *ak = a + k * GEN_MR, *bk = b + k * GEN_NR;
    for (int r = 0; r < GEN_MR; r++) {
      float ar = ak[r];
      for (int j = 0; j < GEN_NR; j++) t[r][j] += ar * bk[j];
    }
  }
  for (int r = 0; r < GEN_MR; r++) {
    float *cr = c + r * ldc;
    if (acc) {
      for (int j = 0; j < GEN_NR; j++) cr[j] += t[r][j];
    } else {
      float rb = row_bias ? row_bias[r] : 0.0f;
      for (int j = 0; j < GEN_NR; j++) cr[j] = t[r][j] + rb + (col_bias ? col_bias[j] : 0.0f);
    }
  }
}

static const dg__ukernel k_generic = {
    .mr = GEN_MR, .nr = GEN_NR, .bf16 = 0, .kalign = 1, .fn = ukernel_generic_f32, .name = "generic-4x16-f32"};

const dg__ukernel *dg__ukernel_generic(void) { return &k_generic; }

const dg__ukernel *dg__ukernel_for(dg_isa isa, dg_precision prec) {
  const dg__ukernel *k = NULL;
  if (isa == DG_ISA_AVX512) {
    if (prec == DG_PRECISION_BF16) k = dg__ukernel_amx_bf16();
    if (!k && prec == DG_PRECISION_BF16 && dg_cpu_has_avx512bf16()) k = dg__ukernel_avx512_bf16();
    if (!k) k = dg__ukernel_avx512();
  }
  if (!k && (isa == DG_ISA_AVX512 || isa == DG_ISA_AVX2)) k = dg__ukernel_avx2();
  return k ? k : &k_generic;
}

/* ---- Packing ------------------------------------------------------------- */

static int64_t kpad_of(const dg__ukernel *uk, int64_t kc) {
  int64_t a = uk->kalign > 1 ? uk->kalign : 1;
  return (kc + a - 1) / a * a;
}

size_t dg__panel_bytes(const dg__ukernel *uk, int R, int64_t kc) {
  return (size_t)kpad_of(uk, kc) * (size_t)R * (uk->bf16 ? 2 : 4);
}

int64_t dg__ksteps(const dg__ukernel *uk, int64_t kc) { return uk->bf16 ? kpad_of(uk, kc) / 2 : kc; }

static inline float bits_f32(uint32_t u) {
  float f;
  memcpy(&f, &u, sizeof f);
  return f;
}

/* Exact f16 -> f32, inline: normal numbers by rebasing the exponent with one
 * multiply by 2^112, f16 subnormals as integer * 2^-24 (no f32 subnormal is
 * ever an operand: the compute threads run with DAZ, see engine.c);
 * Inf/NaN get the all-ones exponent. */
static inline float f16_f32(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000u) << 16, em = h & 0x7fffu;
  float mag = em >= 0x7c00u   ? bits_f32((em << 13) | 0x7f800000u)
              : em < 0x0400u ? (float)em * 0x1p-24f
                             : bits_f32(em << 13) * 0x1p112f;
  uint32_t u;
  memcpy(&u, &mag, sizeof u);
  return bits_f32(u | sign);
}

static inline float ld_elem(const void *p, dg_dtype t, int64_t i) {
  switch (t) {
    case DG_DTYPE_F16: return f16_f32(((const uint16_t *)p)[i]);
    case DG_DTYPE_BF16: return bits_f32((uint32_t)((const uint16_t *)p)[i] << 16);
    default: return ((const float *)p)[i];
  }
}

/* Convert n elements of src (dtype t) to f32, times scale. */
static void load_run(float *dst, const void *src, dg_dtype t, int64_t off, int64_t n, float scale) {
  if (t == DG_DTYPE_F32) {
    const float *s = (const float *)src + off;
    if (scale == 1.0f)
      memcpy(dst, s, (size_t)n * sizeof *dst);
    else
      for (int64_t i = 0; i < n; i++) dst[i] = s[i] * scale;
  } else {
    for (int64_t i = 0; i < n; i++) dst[i] = ld_elem(src, t, off + i) * scale;
  }
}

/* Row k of a panel: R values for indices i0 .. i0 + rows - 1 (zero beyond). */
typedef struct seg {
  int r, len;           /* panel positions [r, r + len) */
  int64_t n, oy, ox;    /* first output pixel of the run */
} seg;

static int im2col_segments(const dg__conv_geom *g, int64_t i0, int64_t rows, seg *s) {
  int64_t P = g->ho * g->wo;
  int ns = 0;
  int64_t r = 0;
  while (r < rows) {
    int64_t i = i0 + r;
    int64_t n = i / P, p = i % P, oy = p / g->wo, ox = p % g->wo;
    int64_t len = g->wo - ox;
    if (len > rows - r) len = rows - r;
    s[ns].r = (int)r;
    s[ns].len = (int)len;
    s[ns].n = n;
    s[ns].oy = oy;
    s[ns].ox = ox;
    ns++;
    r += len;
  }
  return ns;
}

static void run_c(const float *xr, int64_t sx0, int64_t w, int len, float *d) {
  int64_t lo = sx0 < 0 ? -sx0 : 0, hi = w - sx0;
  if (hi > len) hi = len;
  if (hi < lo) hi = lo;
  for (int64_t t = 0; t < lo; t++) d[t] = 0.0f;
  for (int64_t t = lo; t < hi; t++) d[t] = xr[sx0 + t];
  for (int64_t t = hi; t < len; t++) d[t] = 0.0f;
}

/* Row k = (ci, dy, dx) of an im2col panel. */
static void im2col_row(const dg__ukernel *uk, const dg__opnd *o, const seg *s, int ns, int64_t ci, int64_t dy,
                       int64_t dx, float *row) {
  const dg__conv_geom *g = o->conv;
  const float *x = o->data;
  int st = g->stride;
  for (int q = 0; q < ns; q++) {
    float *d = row + s[q].r;
    int len = s[q].len;
    int64_t sy = s[q].oy * st + dy - g->pad;
    if (sy < 0 || sy >= g->h) {
      memset(d, 0, (size_t)len * sizeof *d);
      continue;
    }
    const float *xr = x + ((s[q].n * g->ci + ci) * g->h + sy) * g->w;
    int64_t sx0 = s[q].ox * st + dx - g->pad;
    if (st == 1) {
      (uk->im2col_run ? uk->im2col_run : run_c)(xr, sx0, g->w, len, d);
    } else {
      for (int t = 0; t < len; t++) {
        int64_t sx = sx0 + (int64_t)t * st;
        d[t] = (sx >= 0 && sx < g->w) ? xr[sx] : 0.0f;
      }
    }
  }
}

/* IK operand, f32 output: d[k * R + r] = A(i0 + r, k0 + k). */
static void pack_ik_f32(const dg__opnd *o, int R, int64_t i0, int64_t rows, int64_t k0, int64_t kc,
                        float *d) {
  for (int64_t r = 0; r < rows; r++) {
    int64_t off = (i0 + r) * o->ld + k0;
    if (o->dtype == DG_DTYPE_F32) {
      const float *s = (const float *)o->data + off;
      if (o->scale == 1.0f)
        for (int64_t k = 0; k < kc; k++) d[k * R + r] = s[k];
      else
        for (int64_t k = 0; k < kc; k++) d[k * R + r] = s[k] * o->scale;
    } else {
      for (int64_t k = 0; k < kc; k++) d[k * R + r] = ld_elem(o->data, o->dtype, off + k) * o->scale;
    }
  }
  if (rows < R)
    for (int64_t k = 0; k < kc; k++)
      for (int64_t r = rows; r < R; r++) d[k * R + r] = 0.0f;
}

void dg__pack_panel(const dg__ukernel *uk, const dg__opnd *o, int is_a, int R, int64_t i0, int64_t rows,
                    int64_t k0, int64_t kc, void *dst) {
  int bf16 = uk->bf16;
  int64_t kpad = kpad_of(uk, kc);
  if (is_a && uk->pack_a_tiled) {
    uk->pack_a_tiled(o, R, i0, rows, k0, kc, kpad, dst);
    return;
  }
  if (o->kind == DG__OPND_IK) {
    if (uk->pack_ik) {
      uk->pack_ik(o, R, bf16, i0, rows, k0, kc, kpad, dst);
      return;
    }
    if (!bf16) {
      pack_ik_f32(o, R, i0, rows, k0, kc, dst);
      return;
    }
  }
  seg sg[64];
  int ns = 0;
  int64_t ci = 0, dy = 0, dx = 0; /* im2col: k0 + k = (ci, dy, dx), stepped along */
  if (o->kind == DG__OPND_IM2COL) {
    const dg__conv_geom *g = o->conv;
    ns = im2col_segments(g, i0, rows, sg);
    ci = k0 / ((int64_t)g->kh * g->kw);
    dy = k0 % ((int64_t)g->kh * g->kw) / g->kw;
    dx = k0 % g->kw;
  }
  float tmp[2][64];
  /* bf16 pairs straight from two contiguous f32 source rows: KI operands and
   * pointwise-conv (flattened) im2col panels inside one image */
  if (bf16 && uk->cvt_pairs && rows == R && o->dtype == DG_DTYPE_F32 && o->scale == 1.0f) {
    const float *base = NULL;
    int64_t stride = 0;
    const dg__conv_geom *g = o->conv;
    if (o->kind == DG__OPND_KI) {
      base = (const float *)o->data + k0 * o->ld + i0;
      stride = o->ld;
    } else if (o->kind == DG__OPND_IM2COL && g->kh == 1 && g->kw == 1 && g->stride == 1 && g->pad == 0 &&
               g->h == 1 && ns == 1) {
      base = (const float *)o->data + (sg[0].n * g->ci + k0) * g->w + sg[0].ox;
      stride = g->w;
    }
    if (base) {
      uint16_t *d = dst;
      int64_t k = 0;
      for (; k + 1 < kc; k += 2) uk->cvt_pairs(base + k * stride, base + (k + 1) * stride, R, d + k * R);
      if (k < kc) { /* odd kc: pair with a zero row */
        memset(tmp[1], 0, (size_t)R * sizeof(float));
        uk->cvt_pairs(base + k * stride, tmp[1], R, d + k * R);
        k += 2;
      }
      if (k < kpad) memset(d + k * R, 0, (size_t)((kpad - k) * R) * sizeof *d);
      return;
    }
  }
  for (int64_t k = 0; k < kpad; k++) {
    float *row = bf16 ? tmp[k & 1] : (float *)dst + k * R;
    if (k >= kc) {
      memset(row, 0, (size_t)R * sizeof *row);
    } else {
      switch (o->kind) {
        case DG__OPND_IK:
          for (int64_t r = 0; r < rows; r++)
            row[r] = ld_elem(o->data, o->dtype, (i0 + r) * o->ld + k0 + k) * o->scale;
          break;
        case DG__OPND_KI: load_run(row, o->data, o->dtype, (k0 + k) * o->ld + i0, rows, o->scale); break;
        case DG__OPND_IM2COL:
          im2col_row(uk, o, sg, ns, ci, dy, dx, row);
          if (o->scale != 1.0f)
            for (int64_t r = 0; r < rows; r++) row[r] *= o->scale;
          if (++dx == o->conv->kw) {
            dx = 0;
            if (++dy == o->conv->kh) dy = 0, ci++;
          }
          break;
      }
      for (int64_t r = rows; r < R; r++) row[r] = 0.0f;
    }
    if (bf16 && (k & 1)) {
      uint16_t *d = (uint16_t *)dst + (k >> 1) * 2 * R;
      if (uk->cvt_pairs) {
        uk->cvt_pairs(tmp[0], tmp[1], R, d);
      } else {
        for (int r = 0; r < R; r++) {
          d[2 * r] = dg__bf16_rne(tmp[0][r]);
          d[2 * r + 1] = dg__bf16_rne(tmp[1][r]);
        }
      }
    }
  }
}

/* im2col B panels of a whole column block at once: each k row is gathered
 * for G panels (G * NR columns) into one row in L1, then split into the
 * panels (bf16: two rows converted into pairs).  Packing panel by panel
 * touches kc source rows (often 4 KiB multiples apart, i.e. kc pages) for
 * every NR columns; this touches them once per G * NR columns (pointwise
 * convs at 64x64 spent a third of their time in the per-panel im2col).
 * Same panel contents as dg__pack_panel. */
#define GROUP_COLS 1024
static void gather_row(const dg__ukernel *uk, const dg__opnd *o, const seg *sg, int ns, int64_t w, int64_t *ci,
                       int64_t *dy, int64_t *dx, float *row) {
  const dg__conv_geom *g = o->conv;
  im2col_row(uk, o, sg, ns, *ci, *dy, *dx, row);
  if (o->scale != 1.0f)
    for (int64_t t = 0; t < w; t++) row[t] *= o->scale;
  if (++*dx == g->kw) {
    *dx = 0;
    if (++*dy == g->kh) *dy = 0, ++*ci;
  }
}

static void pack_b_im2col_block(const dg__ukernel *uk, const dg__opnd *o, int64_t j0, int64_t nc, int64_t k0,
                                int64_t kc, char *dst, size_t bpan) {
  const int R = uk->nr;
  const dg__conv_geom *g = o->conv;
  int gp = GROUP_COLS / R; /* panels per group */
  if (gp < 2 || (uk->bf16 && !uk->cvt_pairs) || g->wo < 8) { /* few columns per output row: too many runs */
    for (int64_t jr = 0; jr < nc; jr += R)
      dg__pack_panel(uk, o, 0, R, j0 + jr, nc - jr < R ? nc - jr : R, k0, kc, dst + (size_t)(jr / R) * bpan);
    return;
  }
  int64_t kpad = kpad_of(uk, kc);
  seg sg[GROUP_COLS / 8 + 2];
  float row[2][GROUP_COLS];
  for (int64_t jg = 0; jg < nc; jg += (int64_t)gp * R) {
    int64_t w = nc - jg < (int64_t)gp * R ? nc - jg : (int64_t)gp * R; /* valid columns */
    int np = (int)((w + R - 1) / R);
    int ns = im2col_segments(g, j0 + jg, w, sg);
    int64_t ci = k0 / ((int64_t)g->kh * g->kw), dy = k0 % ((int64_t)g->kh * g->kw) / g->kw, dx = k0 % g->kw;
    for (int64_t t = w; t < (int64_t)np * R; t++) row[0][t] = row[1][t] = 0.0f;
    if (!uk->bf16) {
      for (int64_t k = 0; k < kc; k++) {
        gather_row(uk, o, sg, ns, w, &ci, &dy, &dx, row[0]);
        for (int q = 0; q < np; q++)
          memcpy((float *)(dst + (size_t)(jg / R + q) * bpan) + k * R, row[0] + q * R, (size_t)R * sizeof(float));
      }
      continue;
    }
    int64_t k = 0;
    for (; k < kc; k += 2) { /* pair k / 2: rows k, k + 1 (zero past kc) */
      gather_row(uk, o, sg, ns, w, &ci, &dy, &dx, row[0]);
      if (k + 1 < kc)
        gather_row(uk, o, sg, ns, w, &ci, &dy, &dx, row[1]);
      else
        memset(row[1], 0, (size_t)np * R * sizeof(float));
      for (int q = 0; q < np; q++)
        uk->cvt_pairs(row[0] + q * R, row[1] + q * R, R, (uint16_t *)(dst + (size_t)(jg / R + q) * bpan) + k * R);
    }
    if (k < kpad)
      for (int q = 0; q < np; q++)
        memset((uint16_t *)(dst + (size_t)(jg / R + q) * bpan) + k * R, 0, (size_t)((kpad - k) * R) * sizeof(uint16_t));
  }
}

/* ---- Driver -------------------------------------------------------------- */

typedef struct gemm_job {
  const dg__ukernel *uk;
  const dg__gemm *g;
  int split_m;            /* threads split rows (else columns) */
  int64_t kcb, mcb, ncb;  /* block sizes: K (elements), M, N */
  int64_t jit_rows;       /* a thread with at most this many rows packs all of them as one A
                           * block and B panels just before use (0: never) */
  size_t a_bytes, b_bytes;
  dg_engine *e;
  atomic_int failed;      /* set by a thread whose scratch allocation failed */
} gemm_job;

static void store_tile(const dg__gemm *g, const float *rbias, const float *cbias, const float *t, int nr,
                       int64_t i0, int64_t j0, int64_t mr, int64_t ncols, int first) {
  int64_t coff[64]; /* offset of column j0 + j in C (ncols <= nr <= 64) */
  for (int64_t j = 0; j < ncols; j++) coff[j] = ((j0 + j) / g->jdiv) * g->cimg + (j0 + j) % g->jdiv;
  int contiguous = ncols > 0 && coff[ncols - 1] - coff[0] == ncols - 1;
  for (int64_t r = 0; r < mr; r++) {
    float rb = (first && rbias) ? rbias[i0 + r] : 0.0f;
    const float *tr = t + r * nr;
    float *cr = g->c + (i0 + r) * g->ldc;
    if (contiguous) {
      float *d = cr + coff[0];
      if (!first)
        for (int64_t j = 0; j < ncols; j++) d[j] += tr[j];
      else if (cbias)
        for (int64_t j = 0; j < ncols; j++) d[j] = tr[j] + rb + cbias[j0 + j];
      else
        for (int64_t j = 0; j < ncols; j++) d[j] = tr[j] + rb;
    } else {
      for (int64_t j = 0; j < ncols; j++) {
        float *cp = cr + coff[j];
        *cp = first ? tr[j] + rb + (cbias ? cbias[j0 + j] : 0.0f) : *cp + tr[j];
      }
    }
  }
}

/* A bias of n values as f32: the tensor itself when F32, else converted into buf. */
static const float *bias_f32(const void *b, dg_dtype t, int64_t n, float *buf) {
  if (t == DG_DTYPE_F32) return b;
  for (int64_t i = 0; i < n; i++) buf[i] = ld_elem(b, t, i);
  return buf;
}

/* Block size (a multiple of unit, at most maxb) that splits n into equal blocks. */
/* B panels for columns [j0, j0 + n) over k in [k0, k0 + kc), consecutive at dst. */
static void pack_b_cols(const dg__ukernel *uk, const dg__opnd *o, int64_t j0, int64_t n, int64_t k0, int64_t kc,
                        char *dst, size_t bpan) {
  const int NR = uk->nr;
  if (o->kind == DG__OPND_IM2COL)
    pack_b_im2col_block(uk, o, j0, n, k0, kc, dst, bpan);
  else
    for (int64_t jr = 0; jr < n; jr += NR)
      dg__pack_panel(uk, o, 0, NR, j0 + jr, n - jr < NR ? n - jr : NR, k0, kc, dst + (size_t)(jr / NR) * bpan);
}

#ifndef JIT
#define JIT 1
#endif

static int64_t balanced(int64_t n, int64_t unit, int64_t maxb) {
  int64_t units = (n + unit - 1) / unit, maxu = maxb / unit > 0 ? maxb / unit : 1;
  int64_t nb = (units + maxu - 1) / maxu;
  return nb > 0 ? (units + nb - 1) / nb * unit : unit;
}

static void gemm_task(void *arg, int64_t u0, int64_t u1, int ti) {
  gemm_job *jb = arg;
  const dg__gemm *g = jb->g;
  const dg__ukernel *uk = jb->uk;
  const int MR = uk->mr, NR = uk->nr;
  int64_t r0 = 0, r1 = g->m, c0 = 0, c1 = g->n;
  if (jb->split_m) {
    r0 = u0 * MR;
    r1 = u1 * MR < g->m ? u1 * MR : g->m;
  } else {
    c0 = u0 * NR;
    c1 = u1 * NR < g->n ? u1 * NR : g->n;
  }
  size_t tmp_bytes = (size_t)MR * NR * sizeof(float);
  size_t bias_bytes = g->bias_dtype != DG_DTYPE_F32 ? (size_t)(g->m + g->n) * sizeof(float) : 0;
  char *scr = dg__engine_scratch(jb->e, ti, jb->a_bytes + jb->b_bytes + tmp_bytes + bias_bytes + 64);
  if (!scr) {
    atomic_store(&jb->failed, 1);
    return;
  }
  char *ap = scr, *bp = scr + jb->a_bytes;
  if (uk->thread_begin) uk->thread_begin();
  float *tmp = (float *)(bp + jb->b_bytes);
  /* biases as f32 (converted once per call and thread; M + N values at most) */
  float *bbuf = tmp + (size_t)MR * NR;
  const float *rbias = g->row_bias ? bias_f32(g->row_bias, g->bias_dtype, g->m, bbuf) : NULL;
  const float *cbias = g->col_bias ? bias_f32(g->col_bias, g->bias_dtype, g->n, bbuf + g->m) : NULL;
  /* Blocks of equal size (in whole panels) over this thread's share: no short
   * last row block that streams the whole B block for a panel or two.
   * "jit": all of the thread's rows fit one A block (in L2), so each B panel
   * (im2col: a few) is packed right before its only use instead of the whole
   * NC x KC block up front (MBs, i.e. written to L3 and read back), and the
   * column block is the thread's whole share (A is packed once per K block). */
  int jit = jb->jit_rows > 0 && r1 - r0 <= jb->jit_rows;
  int64_t mcb = jit ? r1 - r0 : balanced(r1 - r0, MR, jb->mcb);
  int64_t ncb = jit ? c1 - c0 : balanced(c1 - c0, NR, jb->ncb);
  for (int64_t jc = c0; jc < c1; jc += ncb) {
    int64_t nc = c1 - jc < ncb ? c1 - jc : ncb;
    for (int64_t pc = 0; pc < g->k; pc += jb->kcb) {
      int64_t kc = g->k - pc < jb->kcb ? g->k - pc : jb->kcb;
      int64_t ksteps = dg__ksteps(uk, kc);
      size_t bpan = dg__panel_bytes(uk, NR, kc), apan = dg__panel_bytes(uk, MR, kc);
      int first = pc == 0;
      /* columns packed at a time: the block, or (jit) one panel / an im2col group of <= 512 KiB */
      int64_t jq_n = nc;
      if (jit) {
        jq_n = NR;
        if (g->b.kind == DG__OPND_IM2COL) {
          int64_t cols = (int64_t)(512 * 1024 / bpan) * NR;
          jq_n = cols < 2 * NR ? 2 * NR : cols > GROUP_COLS ? GROUP_COLS : cols;
          if (jq_n > jb->ncb) jq_n = jb->ncb;
        }
      }
      for (int64_t ic = r0; ic < r1; ic += mcb) {
        int64_t mc = r1 - ic < mcb ? r1 - ic : mcb;
        if (!jit && ic == r0) pack_b_cols(uk, &g->b, jc, nc, pc, kc, bp, bpan);
        for (int64_t ir = 0; ir < mc; ir += MR)
          dg__pack_panel(uk, &g->a, 1, MR, ic + ir, mc - ir < MR ? mc - ir : MR, pc, kc,
                         ap + (size_t)(ir / MR) * apan);
        for (int64_t jq = 0; jq < nc; jq += jq_n) {
          int64_t qn = nc - jq < jq_n ? nc - jq : jq_n;
          const char *bq = bp + (jit ? 0 : (size_t)(jq / NR) * bpan);
          if (jit) pack_b_cols(uk, &g->b, jc + jq, qn, pc, kc, bp, bpan);
          for (int64_t jr = jq; jr < jq + qn; jr += NR) {
            int64_t j0 = jc + jr, ncols = nc - jr < NR ? nc - jr : NR;
            const char *bpj = bq + (size_t)((jr - jq) / NR) * bpan;
            int64_t jin = j0 % g->jdiv;
            int col_direct = ncols == NR && jin + NR <= g->jdiv;
            float *cbase = g->c + (j0 / g->jdiv) * g->cimg + jin;
            for (int64_t ir = 0; ir < mc; ir += MR) {
              int64_t i0 = ic + ir, mr = mc - ir < MR ? mc - ir : MR;
              const char *api = ap + (size_t)(ir / MR) * apan;
              if (col_direct && mr == MR) {
                const float *rb = first && rbias ? rbias + i0 : NULL, *cb = first && cbias ? cbias + j0 : NULL;
                uk->fn(ksteps, api, bpj, cbase + i0 * g->ldc, g->ldc, !first, rb, cb);
              } else {
                uk->fn(ksteps, api, bpj, tmp, NR, 0, NULL, NULL);
                store_tile(g, rbias, cbias, tmp, NR, i0, j0, mr, ncols, first);
              }
            }
          }
        }
      }
    }
  }
  if (uk->thread_end) uk->thread_end();
}

dg_status dg__gemm_run(dg_engine *e, const dg__ukernel *uk, const dg__gemm *g) {
  if (g->m <= 0 || g->n <= 0) return DG_STATUS_OK;
  if (g->k <= 0) { /* C = bias (or 0) */
    for (int64_t i = 0; i < g->m; i++)
      for (int64_t j = 0; j < g->n; j++)
        g->c[(j / g->jdiv) * g->cimg + i * g->ldc + j % g->jdiv] =
            (g->row_bias ? ld_elem(g->row_bias, g->bias_dtype, i) : 0.0f) +
            (g->col_bias ? ld_elem(g->col_bias, g->bias_dtype, j) : 0.0f);
    return DG_STATUS_OK;
  }
  gemm_job jb;
  memset(&jb, 0, sizeof jb);
  atomic_init(&jb.failed, 0);
  jb.uk = uk;
  jb.g = g;
  jb.e = e;
  int nt = dg_engine_threads(e);
  int64_t mu = (g->m + uk->mr - 1) / uk->mr, nu = (g->n + uk->nr - 1) / uk->nr;
  /* Split the operand that is bigger (it is then packed exactly once). */
  jb.split_m = g->m >= g->n;
  if (jb.split_m && mu < nt && nu > mu) jb.split_m = 0;
  if (!jb.split_m && nu < nt && mu > nu) jb.split_m = 1;
  /* K blocks of at most 512 (f32) / 1024 (bf16), split evenly (K = 1280 -> 3 x 427, not 512 + 512 + 256).
   * Long K blocks beat L1-sized ones here (measured): every block ends with a
   * load + store of the C tile, whose rows are often 4 KiB-aligned strides apart.
   * f32 K <= 640 stays one block: the UNet's K = 640 linears took 0.8-0.9x the
   * time of 2 x 320 (bench_kernels, 3 runs); longer blocks lost at K = 1280. */
  int64_t kmax = uk->bf16 ? 1024 : 512, ka = uk->kalign > 1 ? uk->kalign : 1;
  int64_t nkb = !uk->bf16 && g->k <= 640 ? 1 : (g->k + kmax - 1) / kmax;
  jb.kcb = ((g->k + nkb - 1) / nkb + ka - 1) / ka * ka;
  if (jb.kcb > g->k) jb.kcb = g->k;
  jb.mcb = (int64_t)uk->mr * (uk->mr >= 12 ? 12 : 32);
  jb.ncb = (int64_t)uk->nr * 64;
  if (jb.mcb > g->m) jb.mcb = (g->m + uk->mr - 1) / uk->mr * uk->mr;
  if (jb.ncb > g->n) jb.ncb = (g->n + uk->nr - 1) / uk->nr * uk->nr;
  /* jit when a thread's rows (the split's largest chunk, at most) as one A block take <= 1.25 MiB */
  int64_t tpan = jb.split_m ? (mu + nt - 1) / nt : mu;
  size_t apan_max = dg__panel_bytes(uk, uk->mr, jb.kcb);
  if (JIT && (size_t)tpan * apan_max <= (size_t)1280 * 1024) jb.jit_rows = tpan * uk->mr;
  int64_t apanels = jb.jit_rows / uk->mr > jb.mcb / uk->mr ? jb.jit_rows / uk->mr : jb.mcb / uk->mr;
  jb.a_bytes = (apan_max * (size_t)apanels + 63) / 64 * 64;
  jb.b_bytes = dg__panel_bytes(uk, uk->nr, jb.kcb) * (size_t)(jb.ncb / uk->nr);
  dg_engine_parallel(e, jb.split_m ? mu : nu, gemm_task, &jb);
  return atomic_load(&jb.failed) ? DG_STATUS_ERR_NOMEM : DG_STATUS_OK;
}
