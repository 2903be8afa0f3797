/* Memory-bound ops at SD1.5 shapes: effective GB/s (bytes read once + written
 * once, per call) against the machine's measured memory bandwidth.
 *
 *   bench_ops [threads] [reps] [cpu|wall] [only] [isas]   threads: 0 = all CPUs (default)
 *
 * only: run just the ops whose name contains this string (e.g. "gelu"; "" or
 * "all": every op).  isas: run just the ISAs whose name is in this string
 * (e.g. "avx2,avx512"; default: every ISA the CPU has).
 *
 * With "cpu" (and threads = 1) every time is the calling thread's CPU time
 * (CLOCK_THREAD_CPUTIME_ID) instead of wall time: on a shared, overloaded
 * machine this removes the time the thread spent descheduled.
 *
 * Bandwidth references: memcpy of 256 MiB (one thread), and a threaded copy
 * and STREAM-like triad (a = b + s*c) through dg_engine_parallel, counted the
 * same way (bytes read + bytes written). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tensor/ops.h"
#include "tensor/tensor.h"

static clockid_t clock_id = CLOCK_MONOTONIC;

static double now(void) {
  struct timespec ts;
  clock_gettime(clock_id, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static float *alloc_f(size_t n) {
  void *p = NULL;
  if (posix_memalign(&p, 64, n * sizeof(float)) != 0) {
    fprintf(stderr, "out of memory\n");
    exit(1);
  }
  float *f = p;
  for (size_t i = 0; i < n; i++) f[i] = (float)((i * 2654435761u) % 1000u) / 500.0f - 1.0f;
  return f;
}

typedef struct stream_job {
  float *a;
  const float *b, *c;
  float s;
  int triad;
} stream_job;

static void stream_range(void *arg, int64_t begin, int64_t end, int ti) {
  const stream_job *j = arg;
  (void)ti;
  if (j->triad)
    for (int64_t i = begin; i < end; i++) j->a[i] = j->b[i] + j->s * j->c[i];
  else
    for (int64_t i = begin; i < end; i++) j->a[i] = j->b[i];
}

static void noop_range(void *arg, int64_t begin, int64_t end, int ti) {
  (void)ti;
  if (end - begin > 1000000) *(int64_t *)arg += 1; /* never true: keeps the call */
}

typedef struct result_row {
  const char *op, *isa;
  char shape[64];
  double ms[2], gbs[2]; /* cold, warm */
} result_row;

/* Best of 5: memcpy (one thread), threaded copy, threaded triad; GB/s = bytes read + written. */
static void measure_bw(dg_engine *e, float *a, float *b, float *c, size_t n, double out[3]) {
  double best[3] = {1e30, 1e30, 1e30}, bytes = (double)n * sizeof(float);
  for (int r = 0; r < 5; r++) {
    double t0 = now();
    memcpy(a, b, n * sizeof(float));
    double t1 = now();
    if (t1 - t0 < best[0]) best[0] = t1 - t0;
    for (int triad = 0; triad < 2; triad++) {
      stream_job j = {a, b, c, 3.0f, triad};
      t0 = now();
      dg_engine_parallel(e, (int64_t)n, stream_range, &j);
      t1 = now();
      if (t1 - t0 < best[1 + triad]) best[1 + triad] = t1 - t0;
    }
  }
  double v[3] = {2 * bytes / best[0] / 1e9, 2 * bytes / best[1] / 1e9, 3 * bytes / best[2] / 1e9};
  for (int i = 0; i < 3; i++)
    if (v[i] > out[i]) out[i] = v[i];
}

/* name is one of the comma-separated words of list */
static int isa_listed(const char *list, const char *name) {
  size_t n = strlen(name);
  for (const char *p = list; (p = strstr(p, name)) != NULL; p += n)
    if ((p == list || p[-1] == ',') && (p[n] == ',' || p[n] == 0)) return 1;
  return 0;
}

typedef enum { OP_GN, OP_GN_SILU, OP_LN, OP_SOFTMAX, OP_ADD, OP_SILU, OP_GELU, OP_GEGLU } op_kind;

static const char *op_names[] = {"group_norm",  "group_norm+silu", "layer_norm", "softmax",
                                 "add",         "silu",            "gelu",       "geglu"};

static dg_status run_op(dg_engine *e, op_kind op, dg_tensor *y, const dg_tensor *x, const dg_tensor *b,
                        const dg_tensor *gamma, const dg_tensor *beta) {
  switch (op) {
    case OP_GN: return dg_group_norm(e, y, x, 32, 1e-5f, gamma, beta, 0);
    case OP_GN_SILU: return dg_group_norm(e, y, x, 32, 1e-5f, gamma, beta, 1);
    case OP_LN: return dg_layer_norm(e, y, x, 1e-5f, gamma, beta);
    case OP_SOFTMAX: return dg_softmax(e, y, x);
    case OP_ADD: return dg_add(e, y, x, b);
    case OP_SILU: return dg_silu(e, y, x);
    case OP_GELU: return dg_gelu(e, y, x);
    case OP_GEGLU: return dg_geglu(e, y, x);
  }
  return DG_STATUS_ERR_INVALID;
}

int main(int argc, char **argv) {
  int threads = argc > 1 ? atoi(argv[1]) : 0;
  int reps = argc > 2 ? atoi(argv[2]) : 10;
  if (reps < 1) reps = 1;
  const char *only = argc > 4 && argv[4][0] && strcmp(argv[4], "all") ? argv[4] : NULL;
  const char *isa_only = argc > 5 ? argv[5] : NULL;
  if (argc > 3 && !strcmp(argv[3], "cpu")) {
    if (threads != 1) {
      fprintf(stderr, "cpu timing needs threads = 1\n");
      return 2;
    }
    clock_id = CLOCK_THREAD_CPUTIME_ID;
  }

  dg_engine_params p = dg_engine_params_default();
  p.n_threads = threads;
  dg_engine *e = NULL;
  if (dg_engine_new(&p, &e) != DG_STATUS_OK) {
    fprintf(stderr, "engine\n");
    return 1;
  }
  int nt = dg_engine_threads(e);
  printf("threads %d, isa %s, %s time\n", nt, dg_isa_name(dg_engine_isa(e)),
         clock_id == CLOCK_MONOTONIC ? "wall" : "thread CPU");

  /* ---- memory bandwidth ---- */
  size_t nbw = (size_t)64 << 20; /* 64 Mi floats = 256 MiB per array */
  float *a = alloc_f(nbw), *b = alloc_f(nbw), *c = alloc_f(nbw);
  /* latency of an empty dg_engine_parallel (wake the workers + barrier) */
  {
    int64_t sink = 0;
    int calls = 20000;
    double t0 = now();
    for (int i = 0; i < calls; i++) dg_engine_parallel(e, nt, noop_range, &sink);
    double t1 = now();
    printf("dg_engine_parallel round trip (%d threads, empty job): %.2f us\n", nt, (t1 - t0) / calls * 1e6);
  }

  double bwm[3] = {0, 0, 0}; /* memcpy, copy, triad in GB/s; best of both measurements */
  measure_bw(e, a, b, c, nbw, bwm);
  double gb = 1e9;
  float *flush = a; /* 256 MiB written between cold runs to evict the caches */

  /* ---- ops ---- */
  struct {
    op_kind op;
    int nd;
    int64_t s[4];
    float xscale; /* x uniform in [-xscale, xscale); 0: 1 */
  } cases[] = {
      {OP_GN, 4, {2, 320, 64, 64}, 0},      {OP_GN_SILU, 4, {2, 320, 64, 64}, 0},
      {OP_GN_SILU, 4, {2, 1280, 16, 16}, 0}, {OP_LN, 3, {2, 4096, 320, 1}, 0},
      {OP_LN, 3, {2, 1024, 640, 1}, 0},      {OP_SOFTMAX, 3, {16, 4096, 77, 1}, 0},
      {OP_SOFTMAX, 3, {16, 1024, 1024, 1}, 0}, {OP_ADD, 4, {2, 320, 64, 64}, 0},
      {OP_SILU, 4, {2, 320, 64, 64}, 0},     {OP_GELU, 3, {2, 4096, 1280, 1}, 0},
      {OP_GELU, 3, {2, 4096, 1280, 1}, 8.0f}, {OP_GEGLU, 3, {2, 4096, 2560, 1}, 0}};
  int nc = (int)(sizeof cases / sizeof cases[0]);
  result_row rows[64];
  int n_rows = 0;
  dg_isa isas[3] = {DG_ISA_GENERIC, DG_ISA_AVX2, DG_ISA_AVX512};
  for (int k = 0; k < nc; k++) {
    int64_t *s = cases[k].s;
    if (only && !strstr(op_names[cases[k].op], only)) continue;
    int64_t n = s[0] * s[1] * s[2] * s[3];
    int64_t ch = cases[k].op == OP_LN ? s[2] : s[1];
    float *x = alloc_f((size_t)n), *y = alloc_f((size_t)n), *bb = alloc_f((size_t)n);
    if (cases[k].xscale > 0)
      for (int64_t i = 0; i < n; i++) x[i] *= cases[k].xscale;
    float *g = alloc_f((size_t)ch), *be = alloc_f((size_t)ch);
    int64_t ys[4] = {s[0], s[1], s[2], s[3]};
    if (cases[k].op == OP_GEGLU) ys[cases[k].nd - 1] /= 2; /* y (.., c/2) = x[.., :c/2] * GELU(x[.., c/2:]) */
    dg_tensor tx = dg_tensor_make(DG_DTYPE_F32, cases[k].nd, s, x), ty = dg_tensor_make(DG_DTYPE_F32, cases[k].nd, ys, y);
    dg_tensor tb = dg_tensor_make(DG_DTYPE_F32, cases[k].nd, s, bb);
    int64_t cs[1] = {ch};
    dg_tensor tg = dg_tensor_make(DG_DTYPE_F32, 1, cs, g), tbe = dg_tensor_make(DG_DTYPE_F32, 1, cs, be);
    /* bytes: x read + y written (+ b read for add; y is half of x for geglu) */
    double moved = (double)n * 4 * (cases[k].op == OP_ADD ? 3 : cases[k].op == OP_GEGLU ? 1.5 : 2);
    char shape[64];
    snprintf(shape, sizeof shape, "(%lld,%lld,%lld%s%lld%s", (long long)s[0], (long long)s[1], (long long)s[2],
             cases[k].nd == 4 ? "," : ")", (long long)s[3], cases[k].nd == 4 ? ")" : "");
    if (cases[k].nd == 3) snprintf(shape, sizeof shape, "(%lld,%lld,%lld)", (long long)s[0], (long long)s[1], (long long)s[2]);
    for (int q = 0; q < 3; q++) {
      if (isas[q] == DG_ISA_AVX2 && !dg_cpu_has_avx2()) continue;
      if (isas[q] == DG_ISA_AVX512 && !dg_cpu_has_avx512()) continue;
      if (isa_only && !isa_listed(isa_only, dg_isa_name(isas[q]))) continue;
      dg_engine_params pq = p;
      pq.isa = isas[q];
      dg_engine *eq = NULL;
      if (dg_engine_new(&pq, &eq) != DG_STATUS_OK) continue;
      double best[2] = {1e30, 1e30}; /* cold, warm */
      run_op(eq, cases[k].op, &ty, &tx, &tb, &tg, &tbe);
      for (int warm = 0; warm < 2; warm++)
        for (int r = 0; r < reps; r++) {
          if (!warm) memset(flush, r, nbw * sizeof(float));
          double t0 = now();
          if (run_op(eq, cases[k].op, &ty, &tx, &tb, &tg, &tbe) != DG_STATUS_OK) {
            fprintf(stderr, "op failed\n");
            return 1;
          }
          double t1 = now();
          if (t1 - t0 < best[warm]) best[warm] = t1 - t0;
        }
      if (n_rows < 64) {
        result_row *rr = &rows[n_rows++];
        rr->op = cases[k].xscale > 0 ? "gelu x in +-8" : op_names[cases[k].op];
        snprintf(rr->shape, sizeof rr->shape, "%s", shape);
        rr->isa = dg_isa_name(isas[q]);
        for (int w = 0; w < 2; w++) {
          rr->ms[w] = best[w] * 1e3;
          rr->gbs[w] = moved / best[w] / gb;
        }
      }
      fprintf(stderr, ".");
      dg_engine_free(eq);
    }
    free(x), free(y), free(bb), free(g), free(be);
  }
  measure_bw(e, a, b, c, nbw, bwm); /* again: the machine is shared, keep the best figure */
  double bw = bwm[0] > bwm[1] ? bwm[0] : bwm[1];
  bw = bw > bwm[2] ? bw : bwm[2];
  printf("memory bandwidth (best of start and end): memcpy (1 thread) %.1f GB/s, copy (%d threads) %.1f GB/s, "
         "triad (%d threads) %.1f GB/s\n",
         bwm[0], nt, bwm[1], nt, bwm[2]);
  printf("%-16s %-18s %-8s %9s %9s %7s %9s %9s %7s\n", "op", "shape", "isa", "cold ms", "GB/s", "% bw", "warm ms",
         "GB/s", "% bw");
  for (int i = 0; i < n_rows; i++)
    printf("%-16s %-18s %-8s %9.3f %9.1f %6.0f%% %9.3f %9.1f %6.0f%%\n", rows[i].op, rows[i].shape, rows[i].isa,
           rows[i].ms[0], rows[i].gbs[0], 100.0 * rows[i].gbs[0] / bw, rows[i].ms[1], rows[i].gbs[1],
           100.0 * rows[i].gbs[1] / bw);
  printf("%% bw: against %.1f GB/s (the best of the three); cold = caches flushed (256 MiB written) before each "
         "call, warm = repeated calls on the same buffers; GB/s counts x read + y written (+ b read for add)\n", bw);
  free(a), free(b), free(c);
  dg_engine_free(e);
  return 0;
}
