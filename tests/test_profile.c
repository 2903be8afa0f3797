/* The op profile (DG_PROFILE=1, dg_engine_profile_report): each op is
 * recorded under its shape and path with its call count and flops; nothing
 * is recorded without DG_PROFILE, and reset empties the table. */
#include <stdlib.h>
#include <string.h>

#include "t.h"
#include "tensor/ops.h"

static char *report(dg_engine *e) {
  static char buf[8192];
  FILE *f = tmpfile();
  if (!f) return NULL;
  dg_engine_profile_report(e, f);
  rewind(f);
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  buf[n] = 0;
  fclose(f);
  return buf;
}

/* The table line that names op, or NULL. */
static const char *line_of(const char *rep, const char *op) {
  const char *p = strstr(rep, op);
  if (!p) return NULL;
  while (p > rep && p[-1] != '\n') p--;
  return p;
}

static dg_engine *engine(void) {
  dg_engine_params p = dg_engine_params_default();
  p.n_threads = 2;
  dg_engine *e = NULL;
  return dg_engine_new(&p, &e) == DG_STATUS_OK ? e : NULL;
}

int main(void) {
  static float x[1 * 4 * 8 * 8], w[5 * 4 * 3 * 3], y[1 * 5 * 8 * 8], a[6 * 7], lw[3 * 7], ly[6 * 3], s[6 * 3];
  for (size_t i = 0; i < sizeof x / sizeof *x; i++) x[i] = (float)(i % 7) * 0.25f;
  for (size_t i = 0; i < sizeof w / sizeof *w; i++) w[i] = (float)(i % 5) * 0.1f;
  for (size_t i = 0; i < sizeof a / sizeof *a; i++) a[i] = (float)i;
  for (size_t i = 0; i < sizeof lw / sizeof *lw; i++) lw[i] = 1.0f;
  int64_t xs[4] = {1, 4, 8, 8}, ws[4] = {5, 4, 3, 3}, ys[4] = {1, 5, 8, 8}, as[2] = {6, 7}, lws[2] = {3, 7},
          lys[2] = {6, 3};
  dg_tensor X = dg_tensor_make(DG_DTYPE_F32, 4, xs, x), W = dg_tensor_make(DG_DTYPE_F32, 4, ws, w),
            Y = dg_tensor_make(DG_DTYPE_F32, 4, ys, y), A = dg_tensor_make(DG_DTYPE_F32, 2, as, a),
            LW = dg_tensor_make(DG_DTYPE_F32, 2, lws, lw), LY = dg_tensor_make(DG_DTYPE_F32, 2, lys, ly),
            S = dg_tensor_make(DG_DTYPE_F32, 2, lys, s);

  /* off: nothing recorded */
  unsetenv("DG_PROFILE");
  dg_engine *e = engine();
  CHECK(e != NULL);
  CHECK(dg_conv2d(e, &Y, &X, &W, NULL, 1, 1) == DG_STATUS_OK);
  char *r = report(e);
  CHECK(r && r[0] == 0);
  dg_engine_free(e);

  setenv("DG_PROFILE", "1", 1);
  e = engine();
  unsetenv("DG_PROFILE");
  CHECK(e != NULL);
  CHECK(dg_conv2d(e, &Y, &X, &W, NULL, 1, 1) == DG_STATUS_OK);
  CHECK(dg_conv2d(e, &Y, &X, &W, NULL, 1, 1) == DG_STATUS_OK);
  CHECK(dg_linear(e, &LY, &A, &LW, NULL) == DG_STATUS_OK);
  CHECK(dg_add(e, &S, &LY, &LY) == DG_STATUS_OK);
  CHECK(dg_conv2d(e, &Y, &X, &W, NULL, 2, 1) == DG_STATUS_ERR_SHAPE);
  r = report(e);
  CHECK(r && strstr(r, "op profile (DG_PROFILE)") && strstr(r, "in 3 op kinds"));
  const char *l = r ? line_of(r, "conv2d 3x3/s1 4->5 at 8x8, batch 1 (gemm)") : NULL;
  CHECK_MSG(l != NULL, "conv line in:\n%s", r ? r : "");
  if (l) {
    double sec = -1.0, pct = -1.0;
    long long calls = 0;
    CHECK(sscanf(l, "%lf %lf %lld", &sec, &pct, &calls) == 3);
    CHECK(calls == 2); /* the failed call is not recorded */
    CHECK(sec >= 0.0 && pct > 0.0 && pct <= 100.0);
  }
  l = r ? line_of(r, "linear 6 x 7 -> 3") : NULL;
  CHECK(l != NULL);
  if (l) {
    long long calls = 0;
    char rate[32];
    CHECK(sscanf(l, "%*f %*f %lld %31s", &calls, rate) == 2);
    CHECK(calls == 1);
    CHECK(strcmp(rate, "-") != 0); /* flops known: a rate */
  }
  l = r ? line_of(r, "  add") : NULL;
  CHECK(l != NULL);
  dg_engine_profile_reset(e);
  r = report(e);
  CHECK(r && r[0] == 0);
  dg_engine_free(e);
  T_DONE();
}
