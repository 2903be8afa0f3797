/* Every op of tensor/ops.h against a straightforward double-precision
 * reference written here, over random shapes (odd sizes, batch > 1,
 * non-square images), every weight dtype, every ISA the CPU supports and
 * 1 or 2 threads; bad shapes must return ERR_SHAPE / ERR_INVALID. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "t.h"
#include "tensor/ops.h"
#include "tensor/ops_internal.h"
#include "weights/safetensors.h"

/* ---- helpers ------------------------------------------------------------- */


static float *fbuf(int64_t n, float amp) {
  float *p = malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
  for (int64_t i = 0; i < n; i++) p[i] = t_runif(amp);
  return p;
}
static double *dbuf(int64_t n) { return calloc((size_t)(n > 0 ? n : 1), sizeof(double)); }

static dg_tensor T(dg_dtype dt, void *data, int nd, int64_t a, int64_t b, int64_t c, int64_t d) {
  int64_t s[4] = {a, b, c, d};
  return dg_tensor_make(dt, nd, s, data);
}

/* A weight tensor of dtype dt with random values; vals gets the values as stored. */
typedef struct wbuf {
  void *data;
  float *vals;
  dg_dtype dt;
} wbuf;

static wbuf wmake(dg_dtype dt, int64_t n, float amp, float offset) {
  wbuf w;
  w.dt = dt;
  w.vals = malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
  w.data = malloc((size_t)(n > 0 ? n : 1) * 4);
  for (int64_t i = 0; i < n; i++) {
    float v = offset + t_runif(amp);
    if (dt == DG_DTYPE_F32)
      ((float *)w.data)[i] = v;
    else if (dt == DG_DTYPE_F16)
      ((uint16_t *)w.data)[i] = dg_f32_to_f16(v);
    else
      ((uint16_t *)w.data)[i] = dg_f32_to_bf16(v);
    w.vals[i] = dg_load_f32(w.data, dt, i);
  }
  return w;
}
static void wfree(wbuf *w) {
  free(w->data);
  free(w->vals);
}

static const dg_dtype WDT[3] = {DG_DTYPE_F32, DG_DTYPE_F16, DG_DTYPE_BF16};

static char cur[128]; /* current engine label */

/* |got - ref| <= atol + rtol*|ref| everywhere */
static int close_to(const char *what, const float *got, const double *ref, int64_t n, double atol, double rtol) {
  int64_t bad = 0, first = -1;
  double worst = 0.0;
  for (int64_t i = 0; i < n; i++) {
    double d = fabs((double)got[i] - ref[i]);
    double lim = atol + rtol * fabs(ref[i]);
    if (!(d <= lim)) {
      if (first < 0) first = i;
      bad++;
    }
    if (d > worst) worst = d;
  }
  CHECK_MSG(bad == 0, "[%s] %s: %lld of %lld off (first %lld: %.9g vs %.9g), worst abs err %.3g", cur, what,
            (long long)bad, (long long)n, (long long)first, first >= 0 ? got[first] : 0.0,
            first >= 0 ? ref[first] : 0.0, worst);
  return bad == 0;
}

static int same_f(const char *what, const float *got, const float *ref, int64_t n) {
  int64_t bad = 0;
  for (int64_t i = 0; i < n; i++)
    if (memcmp(&got[i], &ref[i], 4) != 0) bad++;
  CHECK_MSG(bad == 0, "[%s] %s: %lld of %lld differ", cur, what, (long long)bad, (long long)n);
  return bad == 0;
}

/* ---- GEMM-class ---------------------------------------------------------- */

static void t_conv2d(dg_engine *e) {
  for (int it = 0; it < 14; it++) {
    int64_t n = t_rint(1, 2), ci = t_rint(1, 5), co = t_rint(1, 6), h = t_rint(1, 9), w = t_rint(1, 9);
    int k = t_rnd() % 2 ? 3 : 1, stride = t_rint(1, 2), pad = k == 3 ? t_rint(0, 1) : 0;
    if (it == 13) n = 1, ci = 24, co = 20, h = 11, w = 13, k = 3, stride = 1, pad = 1;
    if (h + 2 * pad < k) h = k;
    if (w + 2 * pad < k) w = k;
    int64_t ho = (h + 2 * pad - k) / stride + 1, wo = (w + 2 * pad - k) / stride + 1;
    dg_dtype dt = WDT[it % 3];
    int has_b = it % 4 != 1;
    float *x = fbuf(n * ci * h * w, 1.0f);
    wbuf wt = wmake(dt, co * ci * k * k, 0.5f, 0.0f), bs = wmake(dt, co, 0.5f, 0.0f);
    float *y = fbuf(n * co * ho * wo, 1.0f);
    double *r = dbuf(n * co * ho * wo);
    for (int64_t b = 0; b < n; b++)
      for (int64_t o = 0; o < co; o++)
        for (int64_t oy = 0; oy < ho; oy++)
          for (int64_t ox = 0; ox < wo; ox++) {
            double acc = has_b ? bs.vals[o] : 0.0;
            for (int64_t c = 0; c < ci; c++)
              for (int ky = 0; ky < k; ky++)
                for (int kx = 0; kx < k; kx++) {
                  int64_t iy = oy * stride - pad + ky, ix = ox * stride - pad + kx;
                  if (iy < 0 || iy >= h || ix < 0 || ix >= w) continue;
                  acc += (double)x[((b * ci + c) * h + iy) * w + ix] * wt.vals[((o * ci + c) * k + ky) * k + kx];
                }
            r[((b * co + o) * ho + oy) * wo + ox] = acc;
          }
    dg_tensor tx = T(DG_DTYPE_F32, x, 4, n, ci, h, w), tw = T(dt, wt.data, 4, co, ci, k, k);
    dg_tensor tb = T(dt, bs.data, 1, co, 1, 1, 1), ty = T(DG_DTYPE_F32, y, 4, n, co, ho, wo);
    CHECK(dg_conv2d(e, &ty, &tx, &tw, has_b ? &tb : NULL, stride, pad) == DG_STATUS_OK);
    char what[96];
    snprintf(what, sizeof what, "conv2d n%lld ci%lld co%lld %lldx%lld k%d s%d p%d %s", (long long)n, (long long)ci,
             (long long)co, (long long)h, (long long)w, k, stride, pad, dg_dtype_name(dt));
    close_to(what, y, r, n * co * ho * wo, 1e-4, 1e-4);
    free(x), free(y), free(r), wfree(&wt), wfree(&bs);
  }
}

static void t_linear(dg_engine *e) {
  for (int it = 0; it < 12; it++) {
    int64_t m = (int64_t[]){1, 3, 7, 2}[it % 4], kk = (int64_t[]){1, 5, 33, 64, 17}[it % 5];
    int64_t nn = (int64_t[]){1, 4, 17}[it % 3];
    if (it == 11) m = 37, kk = 96, nn = 40;
    dg_dtype dt = WDT[(it / 2) % 3];
    int three_d = it % 2, w4 = it % 3 == 2, has_b = it % 5 != 3;
    float *x = fbuf(m * kk, 1.0f), *y = fbuf(m * nn, 1.0f);
    wbuf wt = wmake(dt, nn * kk, 0.5f, 0.0f), bs = wmake(dt, nn, 0.5f, 0.0f);
    double *r = dbuf(m * nn);
    for (int64_t i = 0; i < m; i++)
      for (int64_t o = 0; o < nn; o++) {
        double acc = has_b ? bs.vals[o] : 0.0;
        for (int64_t q = 0; q < kk; q++) acc += (double)x[i * kk + q] * wt.vals[o * kk + q];
        r[i * nn + o] = acc;
      }
    dg_tensor tx = three_d && m == 1 ? T(DG_DTYPE_F32, x, 3, 1, 1, kk, 1) : T(DG_DTYPE_F32, x, 2, m, kk, 1, 1);
    dg_tensor ty = three_d && m == 1 ? T(DG_DTYPE_F32, y, 3, 1, 1, nn, 1) : T(DG_DTYPE_F32, y, 2, m, nn, 1, 1);
    if (three_d && m == 7) tx = T(DG_DTYPE_F32, x, 3, 7, 1, kk, 1), ty = T(DG_DTYPE_F32, y, 3, 7, 1, nn, 1);
    dg_tensor tw = w4 ? T(dt, wt.data, 4, nn, kk, 1, 1) : T(dt, wt.data, 2, nn, kk, 1, 1);
    dg_tensor tb = T(dt, bs.data, 1, nn, 1, 1, 1);
    CHECK(dg_linear(e, &ty, &tx, &tw, has_b ? &tb : NULL) == DG_STATUS_OK);
    char what[64];
    snprintf(what, sizeof what, "linear %lldx%lld -> %lld %s", (long long)m, (long long)kk, (long long)nn,
             dg_dtype_name(dt));
    close_to(what, y, r, m * nn, 1e-4, 1e-4);
    free(x), free(y), free(r), wfree(&wt), wfree(&bs);
  }
}

static void t_matmul(dg_engine *e) {
  for (int it = 0; it < 10; it++) {
    int nd = 2 + it % 3;
    int64_t b0 = nd >= 3 ? t_rint(1, 3) : 1, b1 = nd == 4 ? 2 : 1;
    int64_t m = t_rint(1, 9), k = t_rint(1, 13), n = t_rint(1, 11);
    if (it == 9) m = 40, k = 36, n = 33;
    int tb = it % 2;
    float alpha = it % 3 == 0 ? 1.0f : 0.37f;
    int64_t bt = b0 * b1;
    float *a = fbuf(bt * m * k, 1.0f), *b = fbuf(bt * k * n, 1.0f), *y = fbuf(bt * m * n, 1.0f);
    double *r = dbuf(bt * m * n);
    for (int64_t q = 0; q < bt; q++)
      for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++) {
          double acc = 0.0;
          for (int64_t p = 0; p < k; p++)
            acc += (double)a[(q * m + i) * k + p] * (tb ? b[(q * n + j) * k + p] : b[(q * k + p) * n + j]);
          r[(q * m + i) * n + j] = alpha * acc;
        }
    dg_tensor ta, tbt, ty;
    if (nd == 2) {
      ta = T(DG_DTYPE_F32, a, 2, m, k, 1, 1);
      tbt = tb ? T(DG_DTYPE_F32, b, 2, n, k, 1, 1) : T(DG_DTYPE_F32, b, 2, k, n, 1, 1);
      ty = T(DG_DTYPE_F32, y, 2, m, n, 1, 1);
    } else if (nd == 3) {
      ta = T(DG_DTYPE_F32, a, 3, b0, m, k, 1);
      tbt = tb ? T(DG_DTYPE_F32, b, 3, b0, n, k, 1) : T(DG_DTYPE_F32, b, 3, b0, k, n, 1);
      ty = T(DG_DTYPE_F32, y, 3, b0, m, n, 1);
    } else {
      ta = T(DG_DTYPE_F32, a, 4, b0, b1, m, k);
      tbt = tb ? T(DG_DTYPE_F32, b, 4, b0, b1, n, k) : T(DG_DTYPE_F32, b, 4, b0, b1, k, n);
      ty = T(DG_DTYPE_F32, y, 4, b0, b1, m, n);
    }
    CHECK(dg_matmul(e, &ty, &ta, &tbt, tb, alpha) == DG_STATUS_OK);
    char what[64];
    snprintf(what, sizeof what, "matmul %dd b%lld %lldx%lldx%lld tb%d", nd, (long long)bt, (long long)m,
             (long long)k, (long long)n, tb);
    close_to(what, y, r, bt * m * n, 1e-4, 1e-4);
    free(a), free(b), free(y), free(r);
  }
}

static void t_attention(dg_engine *e) {
  for (int it = 0; it < 12; it++) {
    int64_t b = t_rint(1, 2), lq = t_rint(1, 9), lk = t_rint(1, 16), h = (int64_t[]){1, 2, 4}[it % 3];
    int64_t d = (int64_t[]){1, 3, 8, 5}[it % 4];
    if (it == 11) b = 2, lq = 70, lk = 77, h = 2, d = 16;
    int causal = it % 2;
    float scale = it % 4 == 1 ? 0.3f : 0.0f;
    int64_t c = h * d;
    float *q = fbuf(b * lq * c, 2.0f), *k = fbuf(b * lk * c, 2.0f), *v = fbuf(b * lk * c, 1.0f);
    float *y = fbuf(b * lq * c, 1.0f);
    double *r = dbuf(b * lq * c), *s = dbuf(lk);
    double sc = scale > 0 ? scale : 1.0 / sqrt((double)d);
    for (int64_t bb = 0; bb < b; bb++)
      for (int64_t hh = 0; hh < h; hh++)
        for (int64_t i = 0; i < lq; i++) {
          double mx = -INFINITY, sum = 0.0;
          for (int64_t j = 0; j < lk; j++) {
            double acc = 0.0;
            for (int64_t x = 0; x < d; x++)
              acc += (double)q[(bb * lq + i) * c + hh * d + x] * k[(bb * lk + j) * c + hh * d + x];
            s[j] = (causal && j > i) ? -INFINITY : acc * sc;
            if (s[j] > mx) mx = s[j];
          }
          for (int64_t j = 0; j < lk; j++) sum += s[j] = exp(s[j] - mx);
          for (int64_t x = 0; x < d; x++) {
            double acc = 0.0;
            for (int64_t j = 0; j < lk; j++) acc += s[j] / sum * v[(bb * lk + j) * c + hh * d + x];
            r[(bb * lq + i) * c + hh * d + x] = acc;
          }
        }
    dg_tensor tq = T(DG_DTYPE_F32, q, 3, b, lq, c, 1), tk = T(DG_DTYPE_F32, k, 3, b, lk, c, 1);
    dg_tensor tv = T(DG_DTYPE_F32, v, 3, b, lk, c, 1), ty = T(DG_DTYPE_F32, y, 3, b, lq, c, 1);
    CHECK(dg_attention(e, &ty, &tq, &tk, &tv, (int)h, causal, scale) == DG_STATUS_OK);
    char what[80];
    snprintf(what, sizeof what, "attention b%lld lq%lld lk%lld h%lld d%lld causal%d", (long long)b, (long long)lq,
             (long long)lk, (long long)h, (long long)d, causal);
    close_to(what, y, r, b * lq * c, 2e-5, 1e-4);
    free(q), free(k), free(v), free(y), free(r), free(s);
  }
}

/* ---- Normalisation ------------------------------------------------------- */

static void t_group_norm(dg_engine *e) {
  struct { int64_t s[4]; int nd, g; float off; } cases[] = {
      {{2, 6, 5, 3}, 4, 3, 0},   {{1, 4, 7, 1}, 3, 2, 0},  {{2, 6, 1, 1}, 4, 6, 0},
      {{1, 8, 9, 5}, 4, 1, 50},  {{2, 64, 16, 12}, 4, 32, 0}, {{1, 32, 33, 1}, 3, 8, 3},
      {{3, 10, 4, 4}, 4, 5, 0},  {{1, 320, 8, 8}, 4, 32, 0}};
  int nc = (int)(sizeof cases / sizeof cases[0]);
  for (int it = 0; it < nc; it++) {
    int64_t n = cases[it].s[0], c = cases[it].s[1];
    int64_t sp = cases[it].s[2] * cases[it].s[3], tot = n * c * sp;
    int g = cases[it].g, silu = it % 2, aff = it % 3 != 2;
    dg_dtype dt = WDT[it % 3];
    float eps = it % 2 ? 1e-5f : 1e-6f;
    float *x = fbuf(tot, 1.5f), *y = fbuf(tot, 1.0f);
    for (int64_t i = 0; i < tot; i++) x[i] += cases[it].off + 0.1f * (float)((i / sp) % 7);
    wbuf gm = wmake(dt, c, 0.3f, 1.0f), bt = wmake(dt, c, 0.5f, 0.0f);
    double *r = dbuf(tot);
    int64_t cpg = c / g;
    for (int64_t b = 0; b < n; b++)
      for (int64_t gg = 0; gg < g; gg++) {
        const float *xg = x + (b * c + gg * cpg) * sp;
        double mean = 0, var = 0;
        for (int64_t i = 0; i < cpg * sp; i++) mean += xg[i];
        mean /= (double)(cpg * sp);
        for (int64_t i = 0; i < cpg * sp; i++) var += (xg[i] - mean) * (xg[i] - mean);
        var /= (double)(cpg * sp);
        for (int64_t cc = 0; cc < cpg; cc++)
          for (int64_t i = 0; i < sp; i++) {
            int64_t ch = gg * cpg + cc;
            double v = (xg[cc * sp + i] - mean) / sqrt(var + eps);
            if (aff) v = v * gm.vals[ch] + bt.vals[ch];
            if (silu) v = v / (1 + exp(-v));
            r[(b * c + ch) * sp + i] = v;
          }
      }
    dg_tensor tx = T(DG_DTYPE_F32, x, cases[it].nd, cases[it].s[0], cases[it].s[1], cases[it].s[2], cases[it].s[3]);
    dg_tensor ty = tx;
    ty.data = y;
    dg_tensor tg = T(dt, gm.data, 1, c, 1, 1, 1), tb = T(dt, bt.data, 1, c, 1, 1, 1);
    CHECK(dg_group_norm(e, &ty, &tx, g, eps, aff ? &tg : NULL, aff ? &tb : NULL, silu) == DG_STATUS_OK);
    char what[80];
    snprintf(what, sizeof what, "group_norm case %d silu%d %s", it, silu, dg_dtype_name(dt));
    close_to(what, y, r, tot, cases[it].off > 10 ? 2e-5 : 2e-6, 2e-6);
    /* in place */
    CHECK(dg_group_norm(e, &tx, &tx, g, eps, aff ? &tg : NULL, aff ? &tb : NULL, silu) == DG_STATUS_OK);
    same_f("group_norm in place", x, y, tot);
    free(x), free(y), free(r), wfree(&gm), wfree(&bt);
  }
}

static void t_layer_norm(dg_engine *e) {
  int64_t cs[5] = {1, 7, 320, 33, 768};
  for (int it = 0; it < 5; it++) {
    int64_t rows = (int64_t[]){3, 15, 40, 1, 9}[it], c = cs[it], tot = rows * c;
    dg_dtype dt = WDT[it % 3];
    int aff = it != 3;
    float off = it == 4 ? 20.0f : 0.0f;
    float *x = fbuf(tot, 2.0f), *y = fbuf(tot, 1.0f);
    for (int64_t i = 0; i < tot; i++) x[i] += off;
    wbuf gm = wmake(dt, c, 0.3f, 1.0f), bt = wmake(dt, c, 0.5f, 0.0f);
    double *r = dbuf(tot);
    for (int64_t i = 0; i < rows; i++) {
      double mean = 0, var = 0;
      for (int64_t j = 0; j < c; j++) mean += x[i * c + j];
      mean /= (double)c;
      for (int64_t j = 0; j < c; j++) var += (x[i * c + j] - mean) * (x[i * c + j] - mean);
      var /= (double)c;
      for (int64_t j = 0; j < c; j++) {
        double v = (x[i * c + j] - mean) / sqrt(var + 1e-5);
        r[i * c + j] = aff ? v * gm.vals[j] + bt.vals[j] : v;
      }
    }
    dg_tensor tx = rows == 15 ? T(DG_DTYPE_F32, x, 3, 3, 5, c, 1) : T(DG_DTYPE_F32, x, 2, rows, c, 1, 1);
    dg_tensor ty = tx;
    ty.data = y;
    dg_tensor tg = T(dt, gm.data, 1, c, 1, 1, 1), tb = T(dt, bt.data, 1, c, 1, 1, 1);
    CHECK(dg_layer_norm(e, &ty, &tx, 1e-5f, aff ? &tg : NULL, aff ? &tb : NULL) == DG_STATUS_OK);
    char what[64];
    snprintf(what, sizeof what, "layer_norm c%lld %s", (long long)c, dg_dtype_name(dt));
    close_to(what, y, r, tot, off > 0 ? 2e-5 : 2e-6, 2e-6);
    free(x), free(y), free(r), wfree(&gm), wfree(&bt);
  }
}

static void t_softmax(dg_engine *e) {
  int64_t cs[12] = {1, 7, 100, 1000, 77, 4096, 128, 129, 65, 120, 16, 17};
  for (int it = 0; it < 12; it++) {
    int64_t rows = it == 5 ? 6 : t_rint(1, 12), c = cs[it], tot = rows * c;
    float amp = it % 2 ? 30.0f : 3.0f;
    float *x = fbuf(tot, amp), *y = fbuf(tot, 1.0f);
    if (it == 2) x[5] = -INFINITY; /* masked entry */
    double *r = dbuf(tot);
    for (int64_t i = 0; i < rows; i++) {
      double mx = -INFINITY, sum = 0;
      for (int64_t j = 0; j < c; j++) mx = x[i * c + j] > mx ? x[i * c + j] : mx;
      for (int64_t j = 0; j < c; j++) sum += exp(x[i * c + j] - mx);
      for (int64_t j = 0; j < c; j++) r[i * c + j] = exp(x[i * c + j] - mx) / sum;
    }
    dg_tensor tx = T(DG_DTYPE_F32, x, 2, rows, c, 1, 1), ty = T(DG_DTYPE_F32, y, 2, rows, c, 1, 1);
    CHECK(dg_softmax(e, &ty, &tx) == DG_STATUS_OK);
    char what[64];
    snprintf(what, sizeof what, "softmax c%lld amp%g", (long long)c, amp);
    close_to(what, y, r, tot, 1e-7, 4e-6);
    CHECK(dg_softmax(e, &tx, &tx) == DG_STATUS_OK);
    same_f("softmax in place", x, y, tot);
    free(x), free(y), free(r);
  }
  /* every width up to 130 (each vector count and tail length of the AVX2 / AVX-512
   * short-row kernels, and the switch to the long form), row counts 1..7 */
  for (int64_t c = 1; c <= 130; c++) {
    int64_t rows = 1 + c % 7, tot = rows * c;
    float *x = fbuf(tot, c % 2 ? 30.0f : 3.0f), *y = fbuf(tot, 1.0f);
    double *r = dbuf(tot);
    for (int64_t i = 0; i < rows; i++) {
      double mx = -INFINITY, sum = 0;
      for (int64_t j = 0; j < c; j++) mx = x[i * c + j] > mx ? x[i * c + j] : mx;
      for (int64_t j = 0; j < c; j++) sum += exp(x[i * c + j] - mx);
      for (int64_t j = 0; j < c; j++) r[i * c + j] = exp(x[i * c + j] - mx) / sum;
    }
    dg_tensor tx = T(DG_DTYPE_F32, x, 2, rows, c, 1, 1), ty = T(DG_DTYPE_F32, y, 2, rows, c, 1, 1);
    CHECK(dg_softmax(e, &ty, &tx) == DG_STATUS_OK);
    char what[64];
    snprintf(what, sizeof what, "softmax c%lld rows %lld", (long long)c, (long long)rows);
    if (!close_to(what, y, r, tot, 1e-7, 4e-6)) c = 131; /* one report is enough */
    free(x), free(y), free(r);
  }
  /* causal mask (the text encoder's attention: row i sees keys 0..i), 77 wide,
   * 77 rows (not a multiple of the kernels' row groups): masked entries must
   * come out exactly 0, the rest as the reference; a fully masked row gives
   * NaN (0 / 0, as torch) */
  int64_t c = 77, rows = 78, tot = rows * c;
  float *x = fbuf(tot, 8.0f), *y = fbuf(tot, 1.0f);
  double *r = dbuf(tot);
  for (int64_t i = 0; i < rows; i++)
    for (int64_t j = 0; j < c; j++)
      if (j > i - 1) x[i * c + j] = -INFINITY; /* row 0 fully masked */
  for (int64_t i = 1; i < rows; i++) {
    double mx = -INFINITY, sum = 0;
    for (int64_t j = 0; j < c; j++) mx = x[i * c + j] > mx ? x[i * c + j] : mx;
    for (int64_t j = 0; j < c; j++) sum += exp(x[i * c + j] - mx);
    for (int64_t j = 0; j < c; j++) r[i * c + j] = exp(x[i * c + j] - mx) / sum;
  }
  dg_tensor tx = T(DG_DTYPE_F32, x, 2, rows, c, 1, 1), ty = T(DG_DTYPE_F32, y, 2, rows, c, 1, 1);
  CHECK(dg_softmax(e, &ty, &tx) == DG_STATUS_OK);
  close_to("softmax causal c77", y + c, r + c, tot - c, 1e-7, 4e-6);
  int64_t nonzero = 0, notnan = 0;
  for (int64_t i = 1; i < rows; i++)
    for (int64_t j = i; j < c; j++) nonzero += y[i * c + j] != 0.0f;
  for (int64_t j = 0; j < c; j++) notnan += !isnan(y[j]);
  CHECK_MSG(nonzero == 0, "[%s] softmax causal: %lld masked entries not 0", cur, (long long)nonzero);
  CHECK_MSG(notnan == 0, "[%s] softmax causal: fully masked row: %lld entries not NaN", cur, (long long)notnan);
  free(x), free(y), free(r);
}

/* ---- Element-wise -------------------------------------------------------- */

static double act(int op, double v) {
  if (op == 0) return v / (1 + exp(-v));
  if (op == 1) return 0.5 * v * (1 + erf(v / sqrt(2.0)));
  return v / (1 + exp(-1.702 * v));
}

static void t_unary(dg_engine *e) {
  int64_t ns[4] = {1, 17, 40000, 100003};
  const char *names[3] = {"silu", "gelu", "quick_gelu"};
  for (int op = 0; op < 3; op++)
    for (int it = 0; it < 4; it++) {
      int64_t n = ns[it];
      float *x = fbuf(n, 10.0f), *y = fbuf(n, 1.0f);
      if (n > 100) x[3] = 100.0f, x[4] = -100.0f, x[5] = 0.0f, x[6] = -90.0f, x[7] = 90.0f;
      double *r = dbuf(n);
      for (int64_t i = 0; i < n; i++) r[i] = act(op, x[i]);
      dg_tensor tx = T(DG_DTYPE_F32, x, 1, n, 1, 1, 1), ty = T(DG_DTYPE_F32, y, 1, n, 1, 1, 1);
      if (it == 2) tx = T(DG_DTYPE_F32, x, 4, 2, 4, 50, 100), ty = T(DG_DTYPE_F32, y, 4, 2, 4, 50, 100);
      dg_status st = op == 0 ? dg_silu(e, &ty, &tx) : op == 1 ? dg_gelu(e, &ty, &tx) : dg_quick_gelu(e, &ty, &tx);
      CHECK(st == DG_STATUS_OK);
      char what[64];
      snprintf(what, sizeof what, "%s n%lld", names[op], (long long)n);
      close_to(what, y, r, n, 1e-6, 3e-6);
      st = op == 0 ? dg_silu(e, &tx, &tx) : op == 1 ? dg_gelu(e, &tx, &tx) : dg_quick_gelu(e, &tx, &tx);
      CHECK(st == DG_STATUS_OK);
      same_f("unary in place", x, y, n);
      free(x), free(y), free(r);
    }
}

static void t_geglu(dg_engine *e) {
  for (int it = 0; it < 4; it++) {
    int64_t rows = (int64_t[]){1, 6, 64, 3}[it], n = (int64_t[]){1, 5, 40, 1280}[it];
    float *x = fbuf(rows * 2 * n, 4.0f), *y = fbuf(rows * n, 1.0f);
    double *r = dbuf(rows * n);
    for (int64_t i = 0; i < rows; i++)
      for (int64_t j = 0; j < n; j++) r[i * n + j] = x[i * 2 * n + j] * act(1, x[i * 2 * n + n + j]);
    dg_tensor tx = T(DG_DTYPE_F32, x, 3, 1, rows, 2 * n, 1), ty = T(DG_DTYPE_F32, y, 3, 1, rows, n, 1);
    CHECK(dg_geglu(e, &ty, &tx) == DG_STATUS_OK);
    close_to("geglu", y, r, rows * n, 1e-6, 4e-6);
    free(x), free(y), free(r);
  }
}

static void t_upsample(dg_engine *e) {
  int64_t n = 2, c = 3, h = 4, w = 5;
  float *x = fbuf(n * c * h * w, 1.0f), *y = fbuf(n * c * 4 * h * w, 1.0f), *r = fbuf(n * c * 4 * h * w, 1.0f);
  for (int64_t p = 0; p < n * c; p++)
    for (int64_t i = 0; i < 2 * h; i++)
      for (int64_t j = 0; j < 2 * w; j++) r[(p * 2 * h + i) * 2 * w + j] = x[(p * h + i / 2) * w + j / 2];
  dg_tensor tx = T(DG_DTYPE_F32, x, 4, n, c, h, w), ty = T(DG_DTYPE_F32, y, 4, n, c, 2 * h, 2 * w);
  CHECK(dg_upsample_nearest2x(e, &ty, &tx) == DG_STATUS_OK);
  same_f("upsample", y, r, n * c * 4 * h * w);
  free(x), free(y), free(r);
}

static void t_binary(dg_engine *e) {
  /* a shape, b shape (right-aligned broadcasting of leading/trailing ones) */
  struct { int and_; int64_t a[4]; int bnd; int64_t b[4]; } cases[] = {
      {4, {2, 5, 3, 7}, 4, {2, 5, 3, 7}}, {4, {2, 5, 3, 7}, 4, {2, 5, 1, 1}}, {4, {2, 5, 3, 7}, 4, {1, 5, 1, 1}},
      {3, {2, 9, 13}, 1, {13}},           {4, {2, 5, 3, 7}, 1, {1}},          {4, {3, 4, 1, 6}, 2, {1, 6}},
      {3, {2, 3, 4}, 3, {1, 3, 1}},       {1, {100003}, 1, {100003}},         {3, {2, 4096, 32}, 1, {32}},
      {4, {2, 32, 64, 64}, 4, {2, 32, 1, 1}}};
  int nc = (int)(sizeof cases / sizeof cases[0]);
  for (int it = 0; it < nc; it++) {
    dg_tensor ta = T(DG_DTYPE_F32, NULL, cases[it].and_, cases[it].a[0], cases[it].a[1], cases[it].a[2], cases[it].a[3]);
    dg_tensor tb = T(DG_DTYPE_F32, NULL, cases[it].bnd, cases[it].b[0], cases[it].b[1], cases[it].b[2], cases[it].b[3]);
    int64_t na = dg_tensor_numel(&ta), nb = dg_tensor_numel(&tb);
    float *a = fbuf(na, 3.0f), *b = fbuf(nb, 3.0f), *y = fbuf(na, 1.0f), *ra = fbuf(na, 1), *rm = fbuf(na, 1);
    ta.data = a;
    tb.data = b;
    /* reference by explicit index arithmetic on the padded shapes */
    int64_t bs[4] = {1, 1, 1, 1}, as[4] = {1, 1, 1, 1};
    for (int i = 0; i < ta.ndim; i++) as[4 - ta.ndim + i] = ta.shape[i];
    for (int i = 0; i < tb.ndim; i++) bs[4 - tb.ndim + i] = tb.shape[i];
    for (int64_t i0 = 0; i0 < as[0]; i0++)
      for (int64_t i1 = 0; i1 < as[1]; i1++)
        for (int64_t i2 = 0; i2 < as[2]; i2++)
          for (int64_t i3 = 0; i3 < as[3]; i3++) {
            int64_t ia = ((i0 * as[1] + i1) * as[2] + i2) * as[3] + i3;
            int64_t ib = (((bs[0] > 1 ? i0 : 0) * bs[1] + (bs[1] > 1 ? i1 : 0)) * bs[2] + (bs[2] > 1 ? i2 : 0)) * bs[3] +
                         (bs[3] > 1 ? i3 : 0);
            ra[ia] = a[ia] + b[ib];
            rm[ia] = a[ia] * b[ib];
          }
    dg_tensor ty = ta;
    ty.data = y;
    CHECK(dg_add(e, &ty, &ta, &tb) == DG_STATUS_OK);
    same_f("add", y, ra, na);
    CHECK(dg_mul(e, &ty, &ta, &tb) == DG_STATUS_OK);
    same_f("mul", y, rm, na);
    CHECK(dg_add(e, &ta, &ta, &tb) == DG_STATUS_OK); /* y == a */
    same_f("add in place", a, ra, na);
    free(a), free(b), free(y), free(ra), free(rm);
  }
  /* scale */
  int64_t n = 50001;
  float *x = fbuf(n, 5.0f), *y = fbuf(n, 1.0f);
  double *r = dbuf(n);
  for (int64_t i = 0; i < n; i++) r[i] = 0.18215 * (double)x[i] - 1.5;
  dg_tensor tx = T(DG_DTYPE_F32, x, 2, 3, 16667, 1, 1), ty = T(DG_DTYPE_F32, y, 2, 3, 16667, 1, 1);
  CHECK(dg_scale(e, &ty, &tx, 0.18215f, -1.5f) == DG_STATUS_OK);
  close_to("scale", y, r, n, 1e-6, 1e-6);
  free(x), free(y), free(r);
}

/* ---- Layout -------------------------------------------------------------- */

static void t_layout(dg_engine *e) {
  /* concat + slice along every dim, negative dims too, f32 and f16 */
  int64_t s[4] = {2, 3, 4, 5};
  for (int dim = -4; dim < 4; dim++) {
    int d = dim < 0 ? dim + 4 : dim;
    dg_dtype dt = dim % 2 ? DG_DTYPE_F16 : DG_DTYPE_F32;
    size_t es = dg_dtype_size(dt);
    int64_t sa[4], sb[4], sy[4];
    memcpy(sa, s, sizeof s);
    memcpy(sb, s, sizeof s);
    memcpy(sy, s, sizeof s);
    sb[d] = d + 1;
    sy[d] = sa[d] + sb[d];
    dg_tensor ta = dg_tensor_make(dt, 4, sa, NULL), tb = dg_tensor_make(dt, 4, sb, NULL);
    dg_tensor ty = dg_tensor_make(dt, 4, sy, NULL);
    int64_t na = dg_tensor_numel(&ta), nb = dg_tensor_numel(&tb), ny = dg_tensor_numel(&ty);
    uint16_t *a = malloc((size_t)na * es), *b = malloc((size_t)nb * es), *y = malloc((size_t)ny * es);
    for (int64_t i = 0; i < na * (int64_t)es / 2; i++) a[i] = (uint16_t)t_rnd();
    for (int64_t i = 0; i < nb * (int64_t)es / 2; i++) b[i] = (uint16_t)t_rnd();
    ta.data = a, tb.data = b, ty.data = y;
    CHECK(dg_concat(e, &ty, &ta, &tb, dim) == DG_STATUS_OK);
    int ok = 1;
    for (int64_t i0 = 0; i0 < sy[0]; i0++)
      for (int64_t i1 = 0; i1 < sy[1]; i1++)
        for (int64_t i2 = 0; i2 < sy[2]; i2++)
          for (int64_t i3 = 0; i3 < sy[3]; i3++) {
            int64_t idx[4] = {i0, i1, i2, i3};
            int64_t iy = ((i0 * sy[1] + i1) * sy[2] + i2) * sy[3] + i3;
            const uint16_t *src;
            int64_t *ss;
            if (idx[d] < sa[d]) {
              src = a, ss = sa;
            } else {
              src = b, ss = sb;
              idx[d] -= sa[d];
            }
            int64_t is = ((idx[0] * ss[1] + idx[1]) * ss[2] + idx[2]) * ss[3] + idx[3];
            if (memcmp((const char *)src + is * (int64_t)es, (const char *)y + iy * (int64_t)es, es)) ok = 0;
          }
    CHECK_MSG(ok, "[%s] concat dim %d", cur, dim);
    /* slicing y back gives b */
    uint16_t *z = malloc((size_t)nb * es);
    dg_tensor tz = dg_tensor_make(dt, 4, sb, z);
    CHECK(dg_slice(e, &tz, &ty, dim, sa[d]) == DG_STATUS_OK);
    CHECK_MSG(!memcmp(z, b, (size_t)nb * es), "[%s] slice dim %d", cur, dim);
    CHECK(dg_slice(e, &tz, &ty, dim, sa[d] + 1) == DG_STATUS_ERR_SHAPE);
    free(a), free(b), free(y), free(z);
  }
  /* a big concat along channels (threaded path) */
  {
    int64_t n = 2, c1 = 320, c2 = 320, hw = 256;
    float *a = fbuf(n * c1 * hw, 1), *b = fbuf(n * c2 * hw, 1), *y = fbuf(n * (c1 + c2) * hw, 1);
    dg_tensor ta = T(DG_DTYPE_F32, a, 4, n, c1, 16, 16), tb = T(DG_DTYPE_F32, b, 4, n, c2, 16, 16);
    dg_tensor ty = T(DG_DTYPE_F32, y, 4, n, c1 + c2, 16, 16);
    CHECK(dg_concat(e, &ty, &ta, &tb, 1) == DG_STATUS_OK);
    CHECK(!memcmp(y, a, (size_t)(c1 * hw) * 4) && !memcmp(y + c1 * hw, b, (size_t)(c2 * hw) * 4) &&
          !memcmp(y + (c1 + c2) * hw, a + c1 * hw, (size_t)(c1 * hw) * 4) &&
          !memcmp(y + (2 * c1 + c2) * hw, b + c2 * hw, (size_t)(c2 * hw) * 4));
    free(a), free(b), free(y);
  }
  /* nchw <-> nlc */
  int64_t shapes[6][4] = {{2, 5, 3, 7}, {1, 64, 33, 40}, {1, 1, 1, 1}, {2, 37, 9, 13}, {3, 320, 8, 8}, {1, 17, 1, 50}};
  for (int k = 0; k < 6; k++) {
    int64_t n = shapes[k][0], c = shapes[k][1], h = shapes[k][2], w = shapes[k][3], tot = n * c * h * w;
    float *x = fbuf(tot, 1), *y = fbuf(tot, 1), *z = fbuf(tot, 1), *r = fbuf(tot, 1);
    for (int64_t b = 0; b < n; b++)
      for (int64_t ch = 0; ch < c; ch++)
        for (int64_t l = 0; l < h * w; l++) r[(b * h * w + l) * c + ch] = x[(b * c + ch) * h * w + l];
    dg_tensor tx = T(DG_DTYPE_F32, x, 4, n, c, h, w), ty = T(DG_DTYPE_F32, y, 3, n, h * w, c, 1);
    dg_tensor tz = T(DG_DTYPE_F32, z, 4, n, c, h, w);
    CHECK(dg_nchw_to_nlc(e, &ty, &tx) == DG_STATUS_OK);
    same_f("nchw_to_nlc", y, r, tot);
    CHECK(dg_nlc_to_nchw(e, &tz, &ty) == DG_STATUS_OK);
    same_f("nlc_to_nchw", z, x, tot);
    free(x), free(y), free(z), free(r);
  }
}

/* ---- Embeddings and conversion ------------------------------------------ */

static void t_embed(dg_engine *e) {
  /* timestep embedding against the formula in double */
  float ts[3] = {951.0f, 1.0f, 261.5f};
  int64_t dims[3] = {32, 7, 320};
  for (int k = 0; k < 3; k++) {
    int64_t dim = dims[k], half = dim / 2;
    int flip = k != 1;
    float shift = k == 2 ? 1.0f : 0.0f;
    float *y = fbuf(3 * dim, 1);
    double *r = dbuf(3 * dim);
    for (int b = 0; b < 3; b++)
      for (int64_t i = 0; i < half; i++) {
        double f = exp(-log(10000.0) * (double)i / ((double)half - shift));
        double s = sin(ts[b] * f), c = cos(ts[b] * f);
        r[b * dim + i] = flip ? c : s;
        r[b * dim + half + i] = flip ? s : c;
        if (dim % 2) r[b * dim + dim - 1] = 0.0;
      }
    dg_tensor tt = T(DG_DTYPE_F32, ts, 1, 3, 1, 1, 1), ty = T(DG_DTYPE_F32, y, 2, 3, dim, 1, 1);
    CHECK(dg_timestep_embedding(e, &ty, &tt, flip, shift, 10000.0f) == DG_STATUS_OK);
    /* torch computes the arguments in f32: |t * f| ~ 1e3 carries ~1e-4 of rounding */
    close_to("timestep_embedding", y, r, 3 * dim, 3e-4, 0);
    free(y), free(r);
  }
  /* golden: diffusers time_proj of the tiny UNet at t=951 */
  dg_safetensors *st = NULL;
  char err[256];
  if (dg_safetensors_open(t_data("sd15-tiny/goldens/unet.safetensors"), &st, err, sizeof err) == DG_STATUS_OK) {
    const dg_tensor *gt = dg_safetensors_find(st, "b1.debug.time_proj");
    const dg_tensor *gts = dg_safetensors_find(st, "b1.timestep");
    CHECK(gt && gts && dg_tensor_numel(gt) == 32 && dg_tensor_numel(gts) == 1);
    if (gt && gts && dg_tensor_numel(gt) == 32) {
      float y[32];
      dg_tensor ty = T(DG_DTYPE_F32, y, 2, 1, 32, 1, 1);
      CHECK(dg_load_f32(gts->data, gts->dtype, 0) == 951.0f);
      CHECK(dg_timestep_embedding(e, &ty, gts, 1, 0.0f, 10000.0f) == DG_STATUS_OK);
      double worst = 0;
      for (int i = 0; i < 32; i++) {
        double d = fabs(y[i] - dg_load_f32(gt->data, gt->dtype, i));
        worst = d > worst ? d : worst;
      }
      CHECK_MSG(worst <= 2e-5, "[%s] time_proj golden: worst abs err %.3g", cur, worst);
    }
    dg_safetensors_close(st);
  } else {
    CHECK_MSG(0, "cannot open unet goldens: %s", err);
  }

  /* embedding gather */
  for (int k = 0; k < 6; k++) {
    dg_dtype dt = WDT[k % 3];
    int64_t v = 50, c = k == 5 ? 768 : 13, b = 2, l = 7;
    wbuf tab = wmake(dt, v * c, 1.0f, 0.0f);
    int64_t ids64[14];
    int32_t ids32[14];
    for (int i = 0; i < 14; i++) ids64[i] = ids32[i] = (int32_t)(t_rnd() % (uint32_t)v);
    ids64[0] = ids32[0] = (int32_t)(v - 1);
    float *y = fbuf(b * l * c, 1), *r = fbuf(b * l * c, 1);
    for (int i = 0; i < 14; i++)
      for (int64_t j = 0; j < c; j++) r[i * c + j] = tab.vals[ids64[i] * c + j];
    dg_tensor tt = T(dt, tab.data, 2, v, c, 1, 1);
    dg_tensor ti = k % 2 ? T(DG_DTYPE_I32, ids32, 2, b, l, 1, 1) : T(DG_DTYPE_I64, ids64, 2, b, l, 1, 1);
    dg_tensor ty = T(DG_DTYPE_F32, y, 3, b, l, c, 1);
    CHECK(dg_embedding(e, &ty, &ti, &tt) == DG_STATUS_OK);
    same_f("embedding", y, r, b * l * c);
    dg_tensor ti1 = T(DG_DTYPE_I64, ids64, 1, 14, 1, 1, 1), ty1 = T(DG_DTYPE_F32, y, 2, 14, c, 1, 1);
    memset(y, 0, (size_t)(b * l * c) * 4);
    CHECK(dg_embedding(e, &ty1, &ti1, &tt) == DG_STATUS_OK);
    same_f("embedding 1-D ids", y, r, b * l * c);
    ids64[3] = v;
    CHECK(dg_embedding(e, &ty1, &ti1, &tt) == DG_STATUS_ERR_INVALID);
    ids64[3] = -1;
    CHECK(dg_embedding(e, &ty1, &ti1, &tt) == DG_STATUS_ERR_INVALID);
    free(y), free(r), wfree(&tab);
  }

  /* convert between float dtypes */
  int64_t n = 40000;
  float *x = fbuf(n, 70000.0f);
  x[0] = NAN, x[1] = INFINITY, x[2] = 1e-7f, x[3] = -0.0f;
  uint16_t *h = malloc((size_t)n * 2), *bf = malloc((size_t)n * 2), *h2 = malloc((size_t)n * 2);
  float *back = fbuf(n, 1);
  dg_tensor tx = T(DG_DTYPE_F32, x, 2, 200, 200, 1, 1), th = T(DG_DTYPE_F16, h, 2, 200, 200, 1, 1);
  dg_tensor tbf = T(DG_DTYPE_BF16, bf, 2, 200, 200, 1, 1), th2 = T(DG_DTYPE_F16, h2, 2, 200, 200, 1, 1);
  dg_tensor tback = T(DG_DTYPE_F32, back, 2, 200, 200, 1, 1);
  CHECK(dg_convert(e, &th, &tx) == DG_STATUS_OK);
  CHECK(dg_convert(e, &tbf, &tx) == DG_STATUS_OK);
  CHECK(dg_convert(e, &th2, &tbf) == DG_STATUS_OK);
  CHECK(dg_convert(e, &tback, &th) == DG_STATUS_OK);
  int bad = 0;
  for (int64_t i = 0; i < n; i++) {
    uint16_t eh = dg_f32_to_f16(x[i]), eb = dg_f32_to_bf16(x[i]);
    if (h[i] != eh || bf[i] != eb || h2[i] != dg_f32_to_f16(dg_bf16_to_f32(eb))) bad++;
    float fb = dg_f16_to_f32(eh);
    if (memcmp(&back[i], &fb, 4)) bad++;
  }
  CHECK_MSG(bad == 0, "[%s] convert: %d mismatches", cur, bad);
  free(x), free(h), free(bf), free(h2), free(back);
}

/* ---- Bad arguments -------------------------------------------------------- */

static void t_bad(dg_engine *e) {
  float buf[4096];
  uint16_t hb[64];
  memset(buf, 0, sizeof buf);
  dg_tensor x4 = T(DG_DTYPE_F32, buf, 4, 1, 4, 5, 5), y4 = T(DG_DTYPE_F32, buf + 1024, 4, 1, 6, 5, 5);
  dg_tensor w = T(DG_DTYPE_F32, buf + 2048, 4, 6, 3, 3, 3), wok = T(DG_DTYPE_F32, buf + 2048, 4, 6, 4, 3, 3);
  dg_tensor b6 = T(DG_DTYPE_F32, buf + 3000, 1, 6, 1, 1, 1), b5 = T(DG_DTYPE_F32, buf + 3000, 1, 5, 1, 1, 1);
  CHECK(dg_conv2d(e, &y4, &x4, &wok, &b6, 1, 1) == DG_STATUS_OK);
  CHECK(dg_conv2d(e, &y4, &x4, &w, &b6, 1, 1) == DG_STATUS_ERR_SHAPE);   /* Ci */
  CHECK(dg_conv2d(e, &y4, &x4, &wok, &b5, 1, 1) == DG_STATUS_ERR_SHAPE); /* bias */
  CHECK(dg_conv2d(e, &y4, &x4, &wok, &b6, 1, 0) == DG_STATUS_ERR_SHAPE); /* output size */
  CHECK(dg_conv2d(e, &y4, &x4, &wok, &b6, 0, 1) == DG_STATUS_ERR_INVALID);
  CHECK(dg_conv2d(NULL, &y4, &x4, &wok, &b6, 1, 1) == DG_STATUS_ERR_INVALID);
  dg_tensor xnull = x4;
  xnull.data = NULL;
  CHECK(dg_conv2d(e, &y4, &xnull, &wok, &b6, 1, 1) == DG_STATUS_ERR_INVALID);
  dg_tensor x16 = T(DG_DTYPE_F16, hb, 4, 1, 4, 5, 5);
  CHECK(dg_conv2d(e, &y4, &x16, &wok, &b6, 1, 1) == DG_STATUS_ERR_INVALID);
  dg_tensor xbad = x4;
  xbad.ndim = 7;
  CHECK(dg_conv2d(e, &y4, &xbad, &wok, &b6, 1, 1) == DG_STATUS_ERR_SHAPE);
  xbad = x4;
  xbad.shape[2] = -5;
  CHECK(dg_conv2d(e, &y4, &xbad, &wok, &b6, 1, 1) == DG_STATUS_ERR_SHAPE);

  dg_tensor xl = T(DG_DTYPE_F32, buf, 2, 3, 8, 1, 1), wl = T(DG_DTYPE_F32, buf + 100, 2, 5, 8, 1, 1);
  dg_tensor yl = T(DG_DTYPE_F32, buf + 200, 2, 3, 5, 1, 1), wl2 = T(DG_DTYPE_F32, buf + 100, 2, 5, 7, 1, 1);
  CHECK(dg_linear(e, &yl, &xl, &wl, NULL) == DG_STATUS_OK);
  CHECK(dg_linear(e, &yl, &xl, &wl2, NULL) == DG_STATUS_ERR_SHAPE);
  dg_tensor yl2 = T(DG_DTYPE_F32, buf + 200, 2, 4, 5, 1, 1);
  CHECK(dg_linear(e, &yl2, &xl, &wl, NULL) == DG_STATUS_ERR_SHAPE);
  dg_tensor wl3 = T(DG_DTYPE_F32, buf + 100, 4, 5, 8, 3, 3);
  CHECK(dg_linear(e, &yl, &xl, &wl3, NULL) == DG_STATUS_ERR_SHAPE);
  CHECK(dg_linear(e, &yl, &xl, &wl, &b6) == DG_STATUS_ERR_SHAPE);

  dg_tensor ma = T(DG_DTYPE_F32, buf, 3, 2, 3, 4, 1), mb = T(DG_DTYPE_F32, buf + 100, 3, 2, 4, 5, 1);
  dg_tensor my = T(DG_DTYPE_F32, buf + 200, 3, 2, 3, 5, 1), mb1 = T(DG_DTYPE_F32, buf + 100, 3, 1, 4, 5, 1);
  CHECK(dg_matmul(e, &my, &ma, &mb, 0, 1.0f) == DG_STATUS_OK);
  CHECK(dg_matmul(e, &my, &ma, &mb, 1, 1.0f) == DG_STATUS_ERR_SHAPE);
  CHECK(dg_matmul(e, &my, &ma, &mb1, 0, 1.0f) == DG_STATUS_ERR_SHAPE);
  CHECK(dg_matmul(e, &ma, &ma, &mb, 0, 1.0f) == DG_STATUS_ERR_SHAPE);

  dg_tensor q = T(DG_DTYPE_F32, buf, 3, 1, 4, 6, 1), k = T(DG_DTYPE_F32, buf + 100, 3, 1, 5, 6, 1);
  dg_tensor ay = T(DG_DTYPE_F32, buf + 200, 3, 1, 4, 6, 1), v5 = T(DG_DTYPE_F32, buf + 300, 3, 1, 4, 6, 1);
  CHECK(dg_attention(e, &ay, &q, &k, &k, 2, 0, 0) == DG_STATUS_OK);
  CHECK(dg_attention(e, &ay, &q, &k, &k, 4, 0, 0) == DG_STATUS_ERR_SHAPE); /* 6 % 4 */
  CHECK(dg_attention(e, &ay, &q, &k, &v5, 2, 0, 0) == DG_STATUS_ERR_SHAPE);
  CHECK(dg_attention(e, &ay, &q, &k, &k, 0, 0, 0) == DG_STATUS_ERR_INVALID);

  dg_tensor gx = T(DG_DTYPE_F32, buf, 4, 2, 6, 3, 3), gy = T(DG_DTYPE_F32, buf + 200, 4, 2, 6, 3, 3);
  dg_tensor gy2 = T(DG_DTYPE_F32, buf + 200, 4, 2, 6, 3, 2);
  CHECK(dg_group_norm(e, &gy, &gx, 3, 1e-5f, &b6, &b6, 1) == DG_STATUS_OK);
  CHECK(dg_group_norm(e, &gy, &gx, 4, 1e-5f, &b6, &b6, 1) == DG_STATUS_ERR_SHAPE);
  CHECK(dg_group_norm(e, &gy, &gx, 3, 1e-5f, &b5, &b6, 1) == DG_STATUS_ERR_SHAPE);
  CHECK(dg_group_norm(e, &gy2, &gx, 3, 1e-5f, NULL, NULL, 0) == DG_STATUS_ERR_SHAPE);
  CHECK(dg_group_norm(e, &gy, &gx, 0, 1e-5f, NULL, NULL, 0) == DG_STATUS_ERR_INVALID);
  dg_tensor g16 = T(DG_DTYPE_I32, buf + 3000, 1, 6, 1, 1, 1);
  CHECK(dg_group_norm(e, &gy, &gx, 3, 1e-5f, &g16, NULL, 0) == DG_STATUS_ERR_INVALID);

  dg_tensor lx = T(DG_DTYPE_F32, buf, 2, 3, 5, 1, 1), ly = T(DG_DTYPE_F32, buf + 100, 2, 3, 5, 1, 1);
  CHECK(dg_layer_norm(e, &ly, &lx, 1e-5f, &b5, &b5) == DG_STATUS_OK);
  CHECK(dg_layer_norm(e, &ly, &lx, 1e-5f, &b6, NULL) == DG_STATUS_ERR_SHAPE);
  dg_tensor ly2 = T(DG_DTYPE_F32, buf + 100, 2, 5, 3, 1, 1);
  CHECK(dg_layer_norm(e, &ly2, &lx, 1e-5f, NULL, NULL) == DG_STATUS_ERR_SHAPE);
  CHECK(dg_softmax(e, &ly2, &lx) == DG_STATUS_ERR_SHAPE);
  CHECK(dg_silu(e, &ly2, &lx) == DG_STATUS_ERR_SHAPE);
  CHECK(dg_gelu(e, &ly2, &lx) == DG_STATUS_ERR_SHAPE);
  dg_tensor gg = T(DG_DTYPE_F32, buf + 100, 2, 3, 3, 1, 1);
  CHECK(dg_geglu(e, &gg, &lx) == DG_STATUS_ERR_SHAPE); /* odd last dim */
  dg_tensor ux = T(DG_DTYPE_F32, buf, 4, 1, 2, 3, 4), uy = T(DG_DTYPE_F32, buf + 100, 4, 1, 2, 6, 7);
  CHECK(dg_upsample_nearest2x(e, &uy, &ux) == DG_STATUS_ERR_SHAPE);

  dg_tensor aa = T(DG_DTYPE_F32, buf, 4, 2, 3, 4, 5), ab = T(DG_DTYPE_F32, buf + 500, 4, 2, 1, 4, 5);
  dg_tensor ayy = T(DG_DTYPE_F32, buf + 1000, 4, 2, 3, 4, 5), ab2 = T(DG_DTYPE_F32, buf + 500, 2, 3, 5, 1, 1);
  dg_tensor ab3 = T(DG_DTYPE_F32, buf + 500, 1, 4, 1, 1, 1);
  CHECK(dg_add(e, &ayy, &aa, &ab) == DG_STATUS_ERR_SHAPE); /* 1 in the middle */
  CHECK(dg_add(e, &ayy, &aa, &ab2) == DG_STATUS_ERR_SHAPE);
  CHECK(dg_mul(e, &ayy, &aa, &ab3) == DG_STATUS_ERR_SHAPE);
  CHECK(dg_add(e, &ab, &aa, &ab3) == DG_STATUS_ERR_SHAPE);
  dg_tensor cy = T(DG_DTYPE_F32, buf + 2000, 4, 2, 6, 4, 5);
  CHECK(dg_concat(e, &cy, &aa, &aa, 1) == DG_STATUS_OK);
  CHECK(dg_concat(e, &cy, &aa, &aa, 2) == DG_STATUS_ERR_SHAPE);
  CHECK(dg_concat(e, &cy, &aa, &aa, 4) == DG_STATUS_ERR_INVALID);
  CHECK(dg_concat(e, &cy, &aa, &ab, 1) == DG_STATUS_ERR_SHAPE);
  CHECK(dg_slice(e, &aa, &cy, 1, 3) == DG_STATUS_OK);
  CHECK(dg_slice(e, &aa, &cy, 1, 4) == DG_STATUS_ERR_SHAPE);
  CHECK(dg_slice(e, &aa, &cy, 1, -1) == DG_STATUS_ERR_SHAPE);
  CHECK(dg_slice(e, &aa, &cy, 2, 0) == DG_STATUS_ERR_SHAPE);
  dg_tensor nl = T(DG_DTYPE_F32, buf + 500, 3, 2, 20, 4, 1), nl2 = T(DG_DTYPE_F32, buf + 500, 3, 2, 20, 3, 1);
  CHECK(dg_nchw_to_nlc(e, &nl, &ab) == DG_STATUS_ERR_SHAPE);
  CHECK(dg_nchw_to_nlc(e, &nl2, &aa) == DG_STATUS_OK);
  CHECK(dg_nlc_to_nchw(e, &aa, &nl) == DG_STATUS_ERR_SHAPE);

  dg_tensor tt = T(DG_DTYPE_F32, buf, 1, 2, 1, 1, 1), ty = T(DG_DTYPE_F32, buf + 100, 2, 3, 8, 1, 1);
  CHECK(dg_timestep_embedding(e, &ty, &tt, 1, 0, 10000.0f) == DG_STATUS_ERR_SHAPE);
  int64_t ids[3] = {0, 1, 2};
  dg_tensor ti = T(DG_DTYPE_I64, ids, 1, 3, 1, 1, 1), tf = T(DG_DTYPE_F32, ids, 1, 3, 1, 1, 1);
  dg_tensor tab = T(DG_DTYPE_F32, buf + 1000, 2, 4, 8, 1, 1), ey = T(DG_DTYPE_F32, buf + 2000, 2, 3, 7, 1, 1);
  CHECK(dg_embedding(e, &ey, &ti, &tab) == DG_STATUS_ERR_SHAPE);
  dg_tensor ey2 = T(DG_DTYPE_F32, buf + 2000, 2, 3, 8, 1, 1);
  CHECK(dg_embedding(e, &ey2, &ti, &tab) == DG_STATUS_OK);
  CHECK(dg_embedding(e, &ey2, &tf, &tab) == DG_STATUS_ERR_INVALID);
  dg_tensor c16 = T(DG_DTYPE_F16, hb, 2, 3, 7, 1, 1);
  CHECK(dg_convert(e, &c16, &ey2) == DG_STATUS_ERR_SHAPE);
  dg_tensor ci = T(DG_DTYPE_I64, ids, 1, 3, 1, 1, 1), cf = T(DG_DTYPE_F32, buf, 1, 3, 1, 1, 1);
  CHECK(dg_convert(e, &cf, &ci) == DG_STATUS_ERR_INVALID);
}


/* ---- Random headers: every op must either succeed or return an error, and
 * never touch memory outside the buffers (exact-size mallocs: ASan sees it). */

typedef struct rt {
  dg_tensor t;
  void *buf;
} rt;

static rt rand_tensor(void) {
  rt r;
  static const dg_dtype dts[8] = {DG_DTYPE_F32, DG_DTYPE_F32, DG_DTYPE_F32, DG_DTYPE_F32,
                                  DG_DTYPE_F16, DG_DTYPE_BF16, DG_DTYPE_I64, DG_DTYPE_I32};
  int nd = t_rint(1, 4);
  if (t_rnd() % 40 == 0) nd = t_rnd() % 2 ? 0 : 5;
  int64_t s[4];
  for (int i = 0; i < 4; i++) s[i] = t_rnd() % 25 == 0 ? -1 : t_rint(0, 5) + (t_rnd() % 4 == 0);
  dg_dtype dt = dts[t_rnd() % 8];
  r.t = dg_tensor_make(dt, nd >= 1 && nd <= 4 ? nd : 2, s, NULL);
  r.t.ndim = nd;
  int64_t n = 1;
  int ok = nd >= 1 && nd <= 4;
  for (int i = 0; ok && i < nd; i++) {
    if (s[i] < 0) ok = 0;
    n *= s[i] < 0 ? 0 : s[i];
  }
  if (!ok) n = 0;
  size_t bytes = (size_t)n * dg_dtype_size(dt);
  r.buf = malloc(bytes ? bytes : 1);
  for (int64_t i = 0; i < n; i++) {
    if (dt == DG_DTYPE_F32)
      ((float *)r.buf)[i] = t_runif(2.0f);
    else if (dt == DG_DTYPE_I64)
      ((int64_t *)r.buf)[i] = t_rint(0, 6);
    else if (dt == DG_DTYPE_I32)
      ((int32_t *)r.buf)[i] = t_rint(0, 6);
    else
      ((uint16_t *)r.buf)[i] = dg_f32_to_f16(t_runif(2.0f));
  }
  r.t.data = t_rnd() % 30 == 0 ? NULL : r.buf;
  return r;
}

/* Turn r into a tensor with the shape of `like` (so that ops get past the first checks more often). */
static void shape_like(rt *r, const dg_tensor *like, int64_t last) {
  if (like->ndim < 1 || like->ndim > 4) return;
  int64_t s[4];
  int64_t n = 1;
  for (int i = 0; i < like->ndim; i++) {
    s[i] = like->shape[i] < 0 ? 1 : like->shape[i];
    if (i == like->ndim - 1 && last >= 0) s[i] = last;
    n *= s[i];
  }
  free(r->buf);
  r->t = dg_tensor_make(DG_DTYPE_F32, like->ndim, s, NULL);
  r->buf = calloc((size_t)(n ? n : 1), 4);
  r->t.data = r->buf;
}

static void t_random_headers(dg_engine *e) {
  int ok_count = 0;
  for (int it = 0; it < 2500; it++) {
    rt y = rand_tensor(), x = rand_tensor(), w = rand_tensor(), b = rand_tensor();
    int op = (int)(t_rnd() % 22);
    if (t_rnd() % 2 && x.t.ndim >= 1 && x.t.ndim <= 4) shape_like(&y, &x.t, t_rnd() % 2 ? -1 : t_rint(0, 6));
    dg_status st = DG_STATUS_OK;
    int i1 = t_rint(-1, 4), i2 = t_rint(-1, 3);
    const dg_tensor *bp = t_rnd() % 3 ? &b.t : NULL;
    switch (op) {
      case 0: st = dg_conv2d(e, &y.t, &x.t, &w.t, bp, i1, i2); break;
      case 1: st = dg_linear(e, &y.t, &x.t, &w.t, bp); break;
      case 2: st = dg_matmul(e, &y.t, &x.t, &w.t, i1 & 1, 0.5f); break;
      case 3: st = dg_attention(e, &y.t, &x.t, &w.t, &b.t, i1, i2 & 1, 0.0f); break;
      case 4: st = dg_group_norm(e, &y.t, &x.t, i1, 1e-5f, bp, t_rnd() % 2 ? &w.t : NULL, i2 & 1); break;
      case 5: st = dg_layer_norm(e, &y.t, &x.t, 1e-5f, bp, t_rnd() % 2 ? &w.t : NULL); break;
      case 6: st = dg_softmax(e, &y.t, &x.t); break;
      case 7: st = dg_silu(e, &y.t, &x.t); break;
      case 8: st = dg_gelu(e, &y.t, &x.t); break;
      case 9: st = dg_quick_gelu(e, &y.t, &x.t); break;
      case 10: st = dg_geglu(e, &y.t, &x.t); break;
      case 11: st = dg_upsample_nearest2x(e, &y.t, &x.t); break;
      case 12: st = dg_add(e, &y.t, &x.t, &b.t); break;
      case 13: st = dg_mul(e, &y.t, &x.t, &b.t); break;
      case 14: st = dg_scale(e, &y.t, &x.t, 2.0f, 1.0f); break;
      case 15: st = dg_concat(e, &y.t, &x.t, &b.t, t_rint(-5, 4)); break;
      case 16: st = dg_slice(e, &y.t, &x.t, t_rint(-5, 4), t_rint(-1, 5)); break;
      case 17: st = dg_nchw_to_nlc(e, &y.t, &x.t); break;
      case 18: st = dg_nlc_to_nchw(e, &y.t, &x.t); break;
      case 19: st = dg_timestep_embedding(e, &y.t, &x.t, i1 & 1, (float)i2, t_rnd() % 5 ? 10000.0f : 0.0f); break;
      case 20: st = dg_embedding(e, &y.t, &x.t, &w.t); break;
      case 21: st = dg_convert(e, &y.t, &x.t); break;
    }
    CHECK(st >= DG_STATUS_OK && st < DG_STATUS_COUNT_);
    if (st == DG_STATUS_OK) ok_count++;
    free(y.buf), free(x.buf), free(w.buf), free(b.buf);
  }
  CHECK(ok_count > 50); /* the generator does reach the kernels */
}

/* The memory-bound ops split rows/groups over threads without cross-thread
 * reductions: results must be bit-identical for any thread count. */
static void t_thread_invariance(dg_isa isa) {
  dg_engine *e1 = NULL, *e3 = NULL;
  dg_engine_params p = dg_engine_params_default();
  p.isa = isa;
  p.n_threads = 1;
  if (dg_engine_new(&p, &e1) != DG_STATUS_OK) return;
  p.n_threads = 3;
  if (dg_engine_new(&p, &e3) != DG_STATUS_OK) {
    dg_engine_free(e1);
    return;
  }
  int64_t n = 2 * 64 * 24 * 20;
  float *x = fbuf(n, 3.0f), *y1 = fbuf(n, 1.0f), *y3 = fbuf(n, 1.0f), *bb = fbuf(64, 1.0f);
  wbuf gm = wmake(DG_DTYPE_F16, 64, 0.3f, 1.0f), bt = wmake(DG_DTYPE_BF16, 64, 0.3f, 0.0f);
  dg_tensor tx = T(DG_DTYPE_F32, x, 4, 2, 64, 24, 20), ty1 = tx, ty3 = tx;
  ty1.data = y1, ty3.data = y3;
  dg_tensor tg = T(DG_DTYPE_F16, gm.data, 1, 64, 1, 1, 1), tb = T(DG_DTYPE_BF16, bt.data, 1, 64, 1, 1, 1);
  dg_tensor tbb = T(DG_DTYPE_F32, bb, 4, 1, 64, 1, 1);
  dg_tensor lx = T(DG_DTYPE_F32, x, 3, 2, 480, 64, 1), ly1 = lx, ly3 = lx;
  ly1.data = y1, ly3.data = y3;
  for (int op = 0; op < 6; op++) {
    dg_engine *es[2] = {e1, e3};
    dg_tensor *ys[2] = {&ty1, &ty3}, *lys[2] = {&ly1, &ly3};
    for (int k = 0; k < 2; k++) {
      dg_status st = DG_STATUS_OK;
      switch (op) {
        case 0: st = dg_group_norm(es[k], ys[k], &tx, 32, 1e-5f, &tg, &tb, 1); break;
        case 1: st = dg_layer_norm(es[k], lys[k], &lx, 1e-5f, &tg, &tb); break;
        case 2: st = dg_softmax(es[k], lys[k], &lx); break;
        case 3: st = dg_gelu(es[k], ys[k], &tx); break;
        case 4: st = dg_add(es[k], ys[k], &tx, &tbb); break;
        case 5: st = dg_nchw_to_nlc(es[k], lys[k], &tx); break;
      }
      CHECK(st == DG_STATUS_OK);
    }
    CHECK_MSG(!memcmp(y1, y3, (size_t)n * 4), "[%s] op %d differs between 1 and 3 threads", dg_isa_name(isa), op);
  }
  free(x), free(y1), free(y3), free(bb), wfree(&gm), wfree(&bt);
  dg_engine_free(e1);
  dg_engine_free(e3);
}

/* ---- exp / GELU accuracy sweeps of the vector kernels ------------------------
 * Every ISA's exp against double libm over the whole finite range that does
 * not overflow ([-104, 89]: every 97th float, ~23 M inputs), in units of the
 * float ulp of the exact result (subnormal ulp below FLT_MIN); GELU against
 * 0.5 x (1 + erf(x / sqrt 2)) in double over [-10, 10] (every 61st float). */
static float f_of(uint32_t b) {
  float f;
  memcpy(&f, &b, 4);
  return f;
}

static double ulp_of(double r) {
  r = fabs(r);
  if (r < 1.17549435e-38) return ldexp(1.0, -149);
  int ex;
  frexp(r, &ex); /* r in [2^(ex-1), 2^ex) */
  return ldexp(1.0, ex - 24);
}

static void t_exp_gelu_sweep(const char *name, const dg__vec_kernels *k) {
  enum { NB = 4096 };
  float *x = malloc(NB * 4), *y = malloc(NB * 4);
  double max_ulp = 0, worst_x = 0;
  for (int sign = 0; sign < 2; sign++) {
    uint32_t top = sign ? 0xC2D00000u /* -104 */ : 0x42B20000u /* 89 */, base = sign ? 0x80000000u : 0;
    uint32_t b = base;
    while (b <= top) {
      int m = 0;
      for (; m < NB && b <= top; m++, b += 97) x[m] = f_of(b);
      k->exp(y, x, m);
      for (int i = 0; i < m; i++) {
        double r = exp((double)x[i]);
        if (r > 3.40282346e38) {
          CHECK_MSG(isinf(y[i]), "[%s] exp(%.9g) = %g, want inf", name, x[i], y[i]);
          continue;
        }
        double u = fabs(y[i] - r) / ulp_of(r);
        if (u > max_ulp) max_ulp = u, worst_x = x[i];
      }
    }
  }
  float sp[6] = {0.0f, -0.0f, -INFINITY, 1.0f, -1.0f, -200.0f}, sy[6];
  k->exp(sy, sp, 6);
  CHECK(sy[0] == 1.0f && sy[1] == 1.0f && sy[2] == 0.0f && sy[5] == 0.0f);
  CHECK_NEAR(sy[3], 2.7182818f, 3e-7);
  CHECK_NEAR(sy[4], 0.36787944f, 5e-8);
  printf("  %-8s exp: max error %.2f ulp (at x = %.9g)\n", name, max_ulp, worst_x);
  CHECK_MSG(max_ulp <= 3.0, "[%s] exp error %.2f ulp > 3", name, max_ulp);

  double max_rel = 0, wx = 0, max_in = 0; /* max_in: |x| < 4, the AVX2 kernel's table range (AVX-512: |x| < 8) */
  for (int sign = 0; sign < 2; sign++) {
    uint32_t base = sign ? 0x80000000u : 0, top = sign ? 0xC1200000u : 0x41200000u, b = base; /* |x| <= 10 */
    while (b <= top) {
      int m = 0;
      for (; m < NB && b <= top; m++, b += 61) x[m] = f_of(b);
      k->unary(DG__UNARY_GELU, y, x, m);
      for (int i = 0; i < m; i++) {
        double r = 0.5 * x[i] * erfc(-x[i] / sqrt(2.0)); /* 1 + erf would cancel in the tail */
        double d = fabs(y[i] - r);
        double rel = d / (fabs(r) > 1e-30 ? fabs(r) : 1e-30);
        if (rel > max_rel) max_rel = rel, wx = x[i];
        if (fabsf(x[i]) < 4.0f && rel > max_in) max_in = rel;
      }
    }
  }
  printf("  %-8s gelu: max rel error %.3g on [-10, 10] (at x = %.9g), %.3g on (-4, 4)\n", name, max_rel, wx,
         max_in);
  CHECK_MSG(max_rel <= 1e-6, "[%s] gelu rel error %.3g > 1e-6", name, max_rel);

  /* a lane's GELU depends on its value only, not on its vector's neighbours
   * (the kernels take other paths for vectors with lanes |x| >= 4 or x <= -8):
   * values in (-4, 4), then every 5th replaced by one far out, must keep their
   * results bit for bit; likewise exp with lanes outside [-87.3, 88.3] */
  {
    enum { NG = 1000 };
    float *x2 = malloc(NG * 4), *y2 = malloc(NG * 4);
    const float far[6] = {6.5f, -5.25f, -9.0f, 12.0f, -7.99f, NAN};
    for (int i = 0; i < NG; i++) x[i] = t_runif(3.99f);
    k->unary(DG__UNARY_GELU, y, x, NG);
    memcpy(x2, x, NG * 4);
    for (int i = 0; i < NG; i += 5) x2[i] = far[(i / 5) % 6];
    k->unary(DG__UNARY_GELU, y2, x2, NG);
    int bad = 0;
    for (int i = 0; i < NG; i++)
      if (i % 5 && memcmp(&y[i], &y2[i], 4)) bad++;
    CHECK_MSG(bad == 0, "[%s] gelu: %d results changed with their neighbours", name, bad);
    CHECK_MSG(isnan(y2[25]) && y2[15] == 12.0f, "[%s] gelu(NaN) = %g, gelu(12) = %g", name, y2[25], y2[15]);
    for (int i = 0; i < NG; i++) x[i] = t_runif(80.0f);
    k->exp(y, x, NG);
    memcpy(x2, x, NG * 4);
    for (int i = 0; i < NG; i += 5) x2[i] = (i / 5) % 2 ? -100.0f : 88.6f;
    k->exp(y2, x2, NG);
    bad = 0;
    for (int i = 0; i < NG; i++)
      if (i % 5 && memcmp(&y[i], &y2[i], 4)) bad++;
    CHECK_MSG(bad == 0, "[%s] exp: %d results changed with their neighbours", name, bad);
    free(x2), free(y2);
  }
  free(x), free(y);
}

int main(void) {
  t_seed(88172645463325252ull);
  const char *seed = getenv("DG_TEST_SEED"); /* default: a fixed seed */
  if (seed && strtoull(seed, NULL, 10)) t_seed(strtoull(seed, NULL, 10) * 2654435761ull + 1);
  t_exp_gelu_sweep("generic", &dg__vec_generic);
  if (dg_cpu_has_avx2() && dg__vec_avx2()) t_exp_gelu_sweep("avx2", dg__vec_avx2());
  if (dg_cpu_has_avx512() && dg__vec_avx512()) t_exp_gelu_sweep("avx512", dg__vec_avx512());
  dg_isa isas[4] = {DG_ISA_REF, DG_ISA_GENERIC, DG_ISA_AVX2, DG_ISA_AVX512};
  for (int i = 0; i < 4; i++) {
    if (isas[i] == DG_ISA_AVX2 && !dg_cpu_has_avx2()) {
      printf("note: CPU lacks AVX2, skipping isa avx2\n");
      continue;
    }
    if (isas[i] == DG_ISA_AVX512 && !dg_cpu_has_avx512()) {
      printf("note: CPU lacks AVX-512, skipping isa avx512\n");
      continue;
    }
    for (int nt = 1; nt <= 2; nt++) {
      dg_engine_params p = dg_engine_params_default();
      p.isa = isas[i];
      p.n_threads = nt;
      dg_engine *e = NULL;
      CHECK(dg_engine_new(&p, &e) == DG_STATUS_OK);
      if (!e) continue;
      snprintf(cur, sizeof cur, "%s, %d thread%s", dg_isa_name(isas[i]), nt, nt > 1 ? "s" : "");
      int before = t_failed;
      t_conv2d(e);
      t_linear(e);
      t_matmul(e);
      t_attention(e);
      t_group_norm(e);
      t_layer_norm(e);
      t_softmax(e);
      t_unary(e);
      t_geglu(e);
      t_upsample(e);
      t_binary(e);
      t_layout(e);
      t_embed(e);
      t_bad(e);
      t_random_headers(e);
      if (nt == 2) t_thread_invariance(isas[i]);
      printf("%-24s %s\n", cur, t_failed == before ? "ok" : "FAILED");
      dg_engine_free(e);
    }
  }
  T_DONE();
}
