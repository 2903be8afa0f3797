/* The Winograd transforms (see winograd.h), written as plain C loops that
 * the compiler vectorises: included by winograd.c (portable), winograd_avx2.c
 * and winograd_avx512.c, each defining WG_TABLE (the dg__wg_kernels to
 * define).  Everything here is static: one copy per ISA. */
#include <string.h>

#include "tensor/kernels.h"
#include "tensor/winograd_int.h"

#define WG_RUN 64 /* tiles handled together by the output transform */
#define UCB 32    /* input channels per filter-transform buffer */
#define SMAX (4 * 32 + 8)

typedef dg__wg wg;

/* ---- Filter transform: U = G g G^T ------------------------------------------ */

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

/* ---- Input transform: V = B^T d B -------------------------------------------- */

/* Row i of the patches of a run of tiles: input row yy, columns xs .. xs + S - 1 (zero outside). */
static void load_row(const wg *g, const float *plane, int64_t yy, int64_t xs, int S, float *dst) {
  if (yy < 0 || yy >= g->h) {
    memset(dst, 0, (size_t)S * sizeof *dst);
    return;
  }
  const float *row = plane + yy * g->w;
  int lo = xs < 0 ? (int)-xs : 0;
  int hi = g->w - xs < S ? (int)(g->w - xs) : S;
  if (hi < lo) hi = lo;
  for (int x = 0; x < lo; x++) dst[x] = 0.0f;
  if (hi > lo) memcpy(dst + lo, row + xs + lo, (size_t)(hi - lo) * sizeof *dst);
  for (int x = hi; x < S; x++) dst[x] = 0.0f;
}

/* Horizontal input transforms of one row v of S = m L + 2 values (already
 * combined vertically) for L tiles: the row is split into its m phases first,
 * so that the arithmetic runs on contiguous arrays (vectorised). */
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

static void h_in4(const float *restrict v, int64_t L, float *const *o) {
  float p0[SMAX / 4 + 1], p1[SMAX / 4 + 1], p2[SMAX / 4 + 1], p3[SMAX / 4 + 1];
  for (int64_t s = 0; s < L; s++) {
    p0[s] = v[4 * s];
    p1[s] = v[4 * s + 1];
    p2[s] = v[4 * s + 2];
    p3[s] = v[4 * s + 3];
  }
  p0[L] = v[4 * L];
  p1[L] = v[4 * L + 1];
  float *restrict o0 = o[0], *restrict o1 = o[1], *restrict o2 = o[2], *restrict o3 = o[3], *restrict o4 = o[4],
                  *restrict o5 = o[5];
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

/* Channels [c0, c1) of the current tile block. */
static void v_task(void *arg, int64_t c0, int64_t c1, int ti) {
  (void)ti;
  wg *g = arg;
  const int m = g->m, a = g->a, nr = g->nr;
  const int64_t per_img = g->th * g->tw;
  float buf[6][SMAX], vr[6][SMAX];
  for (int64_t ci = c0; ci < c1; ci++) {
    for (int64_t t = g->t0; t < g->t0 + g->nt;) {
      int64_t n = t / per_img, rem = t % per_img, ty = rem / g->tw, tx = rem % g->tw;
      int64_t j = t - g->t0, panel = j / nr, jj = j % nr;
      int64_t L = g->tw - tx;
      if (L > nr - jj) L = nr - jj;
      if (L > g->t0 + g->nt - t) L = g->t0 + g->nt - t;
      const float *plane = g->x + (n * g->ci + ci) * g->h * g->w;
      int64_t xs = tx * m - g->pad, ys = ty * m - g->pad;
      int S = (int)(m * L + 2);
      for (int i = 0; i < a; i++) load_row(g, plane, ys + i, xs, S, buf[i]);
      float *o[36];
      for (int xi = 0; xi < a * a; xi++) o[xi] = g->V + ((xi * g->np + panel) * g->ci + ci) * nr + jj;
      if (m == 2) {
        for (int x = 0; x < S; x++) {
          vr[0][x] = buf[0][x] - buf[2][x];
          vr[1][x] = buf[1][x] + buf[2][x];
          vr[2][x] = buf[2][x] - buf[1][x];
          vr[3][x] = buf[1][x] - buf[3][x];
        }
        for (int k = 0; k < 4; k++) h_in2(vr[k], L, o[k * 4], o[k * 4 + 1], o[k * 4 + 2], o[k * 4 + 3]);
      } else {
        for (int x = 0; x < S; x++) {
          float b0 = buf[0][x], b1 = buf[1][x], b2 = buf[2][x], b3 = buf[3][x], b4 = buf[4][x], b5 = buf[5][x];
          vr[0][x] = 4.0f * b0 - 5.0f * b2 + b4;
          vr[1][x] = -4.0f * (b1 + b2) + (b3 + b4);
          vr[2][x] = 4.0f * (b1 - b2) + (b4 - b3);
          vr[3][x] = 2.0f * (b3 - b1) + (b4 - b2);
          vr[4][x] = 2.0f * (b1 - b3) + (b4 - b2);
          vr[5][x] = 4.0f * b1 - 5.0f * b3 + b5;
        }
        for (int k = 0; k < 6; k++) h_in4(vr[k], L, o + k * 6);
      }
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

static float bias_of(const dg_tensor *b, int64_t i) {
  if (!b) return 0.0f;
  float v;
  cvt_run(b, i, 1, &v);
  return v;
}

static void y_task(void *arg, int64_t c0, int64_t c1, int ti) {
  (void)ti;
  wg *g = arg;
  const int m = g->m, a = g->a;
  const int64_t per_img = g->th * g->tw;
  float out[16][WG_RUN];
  for (int64_t cl = c0; cl < c1; cl++) {
    int64_t co = g->co0 + cl;
    float bv = bias_of(g->bias, co);
    for (int64_t t = g->t0; t < g->t0 + g->nt;) {
      int64_t n = t / per_img, rem = t % per_img, ty = rem / g->tw, tx = rem % g->tw;
      int64_t j = t - g->t0;
      int64_t L = g->tw - tx;
      if (L > WG_RUN) L = WG_RUN;
      if (L > g->t0 + g->nt - t) L = g->t0 + g->nt - t;
      const float *mp[36];
      for (int xi = 0; xi < a * a; xi++) mp[xi] = g->M + (xi * g->cc + cl) * g->ldm + j;
      if (m == 2) {
        for (int64_t s = 0; s < L; s++) {
          float s0[4], s1[4];
          for (int k = 0; k < 4; k++) {
            float q0 = mp[k * 4][s], q1 = mp[k * 4 + 1][s], q2 = mp[k * 4 + 2][s], q3 = mp[k * 4 + 3][s];
            s0[k] = q0 + q1 + q2;
            s1[k] = q1 - q2 - q3;
          }
          out[0][s] = s0[0] + s0[1] + s0[2] + bv;
          out[1][s] = s1[0] + s1[1] + s1[2] + bv;
          out[2][s] = s0[1] - s0[2] - s0[3] + bv;
          out[3][s] = s1[1] - s1[2] - s1[3] + bv;
        }
      } else {
        for (int64_t s = 0; s < L; s++) {
          float sc[6][4];
          for (int k = 0; k < 6; k++) {
            float q0 = mp[k * 6][s], q1 = mp[k * 6 + 1][s], q2 = mp[k * 6 + 2][s], q3 = mp[k * 6 + 3][s],
                  q4 = mp[k * 6 + 4][s], q5 = mp[k * 6 + 5][s];
            float p12 = q1 + q2, m12 = q1 - q2, p34 = q3 + q4, m34 = q3 - q4;
            sc[k][0] = q0 + p12 + p34;
            sc[k][1] = m12 + 2.0f * m34;
            sc[k][2] = p12 + 4.0f * p34;
            sc[k][3] = m12 + 8.0f * m34 + q5;
          }
          for (int c = 0; c < 4; c++) {
            float p12 = sc[1][c] + sc[2][c], m12 = sc[1][c] - sc[2][c], p34 = sc[3][c] + sc[4][c],
                  m34 = sc[3][c] - sc[4][c];
            out[0 * 4 + c][s] = sc[0][c] + p12 + p34 + bv;
            out[1 * 4 + c][s] = m12 + 2.0f * m34 + bv;
            out[2 * 4 + c][s] = p12 + 4.0f * p34 + bv;
            out[3 * 4 + c][s] = m12 + 8.0f * m34 + sc[5][c] + bv;
          }
        }
      }
      /* scatter the m x m pixels of each tile, cropped at the bottom / right edges */
      float *plane = g->y + (n * g->co + co) * g->ho * g->wo;
      for (int r = 0; r < m; r++) {
        int64_t oy = ty * m + r;
        if (oy >= g->ho) break;
        float *yr = plane + oy * g->wo + tx * m;
        int64_t wmax = g->wo - tx * m; /* pixels of this row left from the run's first */
        const float *orow = out[r * m];
        if (m == 2) {
          const float *o0 = orow, *o1 = out[r * 2 + 1];
          int64_t full = wmax / 2 < L ? wmax / 2 : L;
          for (int64_t s = 0; s < full; s++) {
            yr[2 * s] = o0[s];
            yr[2 * s + 1] = o1[s];
          }
          if (full < L && 2 * full < wmax) yr[2 * full] = o0[full];
        } else {
          for (int64_t s = 0; s < L; s++)
            for (int c = 0; c < 4; c++)
              if (4 * s + c < wmax) yr[4 * s + c] = out[r * 4 + c][s];
        }
      }
      t += L;
    }
  }
}

const dg__wg_kernels WG_TABLE = {u_task, v_task, y_task};
