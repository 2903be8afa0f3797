/* The compute engine: CPU feature detection, ISA choice, a persistent thread
 * pool (dg_engine_parallel) and per-thread scratch buffers.
 *
 * Pool protocol: the caller publishes a job (fn, arg, n) and bumps a
 * generation counter under the mutex, then runs chunk 0 itself.  Workers spin
 * briefly on the counter, then sleep on a condition variable; each runs its
 * contiguous chunk and decrements `pending`; the last one wakes the caller.
 * One engine must not run dg_engine_parallel from two threads at once, nor
 * from inside one of its own jobs (a job's fn must not call it again). */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "base/log.h"
#include "tensor/kernels.h"
#include "tensor/tensor.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>

#define DG_X86 1
#endif

/* Compute threads flush subnormal floats to zero (MXCSR FTZ + DAZ), as
 * inference engines usually do: on x86 every subnormal operand or result costs
 * a microcode assist (~100x a normal FMA), and random or real weights produce
 * them in long products; their contribution is below 1e-37.  The caller's
 * floating-point mode is restored when dg_engine_parallel returns. */
#if defined(__x86_64__) || defined(__i386__)
#include <xmmintrin.h>
static unsigned fpu_enter(void) {
  unsigned old = _mm_getcsr();
  _mm_setcsr(old | 0x8040u); /* FTZ (bit 15) | DAZ (bit 6) */
  return old;
}
static void fpu_leave(unsigned old) { _mm_setcsr(old); }
#else
static unsigned fpu_enter(void) { return 0; }
static void fpu_leave(unsigned old) { (void)old; }
#endif

/* ---- CPU features -------------------------------------------------------- */

typedef struct cpu_features {
  int avx2;      /* AVX2 + FMA + F16C, OS saves YMM */
  int avx512;    /* F + BW + DQ + VL, OS saves ZMM */
  int avx512bf16;
} cpu_features;

static cpu_features detect_cpu(void) {
  cpu_features f = {0, 0, 0};
#ifdef DG_X86
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
  int osxsave = (c >> 27) & 1, avx = (c >> 28) & 1, fma = (c >> 12) & 1, f16c = (c >> 29) & 1;
  if (!osxsave || !avx) return f;
  unsigned xlo, xhi;
  __asm__ volatile("xgetbv" : "=a"(xlo), "=d"(xhi) : "c"(0));
  (void)xhi;
  int ymm_ok = (xlo & 0x6u) == 0x6u;
  int zmm_ok = (xlo & 0xe6u) == 0xe6u;
  if (__get_cpuid_max(0, NULL) < 7) return f;
  __cpuid_count(7, 0, a, b, c, d);
  int avx2 = (b >> 5) & 1;
  int f512 = (b >> 16) & 1, dq = (b >> 17) & 1, bw = (b >> 30) & 1, vl = (b >> 31) & 1;
  unsigned a1, b1, c1, d1;
  __cpuid_count(7, 1, a1, b1, c1, d1);
  (void)b1;
  (void)c1;
  (void)d1;
  f.avx2 = ymm_ok && avx2 && fma && f16c;
  f.avx512 = f.avx2 && zmm_ok && f512 && dq && bw && vl;
  f.avx512bf16 = f.avx512 && ((a1 >> 5) & 1);
#endif
  return f;
}

static pthread_once_t cpu_once = PTHREAD_ONCE_INIT;
static cpu_features cpu_feats;
static void cpu_init(void) { cpu_feats = detect_cpu(); }
static cpu_features cpu_cached(void) {
  pthread_once(&cpu_once, cpu_init);
  return cpu_feats;
}

int dg_cpu_has_avx2(void) { return cpu_cached().avx2; }
int dg_cpu_has_avx512(void) { return cpu_cached().avx512; }
int dg_cpu_has_avx512bf16(void) { return cpu_cached().avx512bf16; }

const char *dg_isa_name(dg_isa isa) {
  switch (isa) {
    case DG_ISA_AUTO: return "auto";
    case DG_ISA_REF: return "ref";
    case DG_ISA_GENERIC: return "generic";
    case DG_ISA_AVX2: return "avx2";
    case DG_ISA_AVX512: return "avx512";
    default: return "?";
  }
}

static int isa_supported(dg_isa isa) {
  switch (isa) {
    case DG_ISA_REF:
    case DG_ISA_GENERIC: return 1;
    case DG_ISA_AVX2: return dg_cpu_has_avx2();
    case DG_ISA_AVX512: return dg_cpu_has_avx512();
    default: return 0;
  }
}

/* ---- Engine -------------------------------------------------------------- */

typedef struct scratch {
  void *p;
  size_t n;
  char pad[48]; /* keep threads' entries on separate cache lines */
} scratch;

struct dg_engine {
  int n_threads;
  dg_isa isa;
  dg_precision precision;
  pthread_t *threads;
  int n_started;
  scratch *scratch;
  scratch work[DG__ENGINE_WORKSPACES]; /* shared workspaces (dg__engine_workspace) */

  pthread_mutex_t mu;
  pthread_cond_t work_cv;
  pthread_cond_t done_cv;
  atomic_uint gen;     /* bumped (under mu) for each job */
  atomic_int pending;  /* workers that have not finished the current job */
  atomic_int stop;
  dg_range_fn fn;
  void *arg;
  int64_t n;

  /* DG_PROFILE: wall time and flops per op and shape (dg__prof_*) */
  int prof;
  struct prof_ent *pe;
  int npe, cap_pe;
};

typedef struct prof_ent {
  char key[112];
  int64_t calls;
  double sec, flop;
} prof_ent;

typedef struct worker_arg {
  dg_engine *e;
  int index;
} worker_arg;

#ifndef SPIN_ITERS
#define SPIN_ITERS 2000
#endif

/* Spin-wait step i: mostly a pause; every 64th step yields the CPU, so that on
 * an oversubscribed machine a waiter sharing a core with the thread it waits
 * for does not burn that thread's time slice. */
static inline void cpu_relax(int i) {
  if ((i & 63) == 63) {
    sched_yield();
    return;
  }
#ifdef DG_X86
  __builtin_ia32_pause();
#endif
}

static void run_chunk(dg_engine *e, int t) {
  int64_t nt = e->n_threads;
  int64_t begin = e->n * t / nt, end = e->n * (t + 1) / nt;
  if (begin < end) e->fn(e->arg, begin, end, t);
}

static void *worker_main(void *p) {
  worker_arg wa = *(worker_arg *)p;
  free(p);
  dg_engine *e = wa.e;
  (void)fpu_enter();
  unsigned seen = 0; /* gen is 0 when the workers are created */
  for (;;) {
    unsigned g = 0;
    int got = 0;
    for (int i = 0; i < SPIN_ITERS; i++) {
      g = atomic_load_explicit(&e->gen, memory_order_acquire);
      if (g != seen || atomic_load_explicit(&e->stop, memory_order_acquire)) {
        got = 1;
        break;
      }
      cpu_relax(i);
    }
    if (!got) {
      pthread_mutex_lock(&e->mu);
      while ((g = atomic_load_explicit(&e->gen, memory_order_acquire)) == seen &&
             !atomic_load_explicit(&e->stop, memory_order_acquire))
        pthread_cond_wait(&e->work_cv, &e->mu);
      pthread_mutex_unlock(&e->mu);
    }
    if (atomic_load_explicit(&e->stop, memory_order_acquire)) break;
    seen = g;
    run_chunk(e, wa.index);
    if (atomic_fetch_sub_explicit(&e->pending, 1, memory_order_acq_rel) == 1) {
      pthread_mutex_lock(&e->mu);
      pthread_cond_signal(&e->done_cv);
      pthread_mutex_unlock(&e->mu);
    }
  }
  return NULL;
}

dg_engine_params dg_engine_params_default(void) {
  dg_engine_params p;
  p.n_threads = 0;
  p.isa = DG_ISA_AUTO;
  p.precision = DG_PRECISION_F32;
  return p;
}

static dg_isa isa_from_env(int *bad) {
  const char *s = getenv("DG_ISA");
  *bad = 0;
  if (!s || !*s || !strcasecmp(s, "auto")) return DG_ISA_AUTO;
  if (!strcasecmp(s, "ref")) return DG_ISA_REF;
  if (!strcasecmp(s, "generic")) return DG_ISA_GENERIC;
  if (!strcasecmp(s, "avx2")) return DG_ISA_AVX2;
  if (!strcasecmp(s, "avx512")) return DG_ISA_AVX512;
  *bad = 1;
  return DG_ISA_AUTO;
}

static void engine_stop_threads(dg_engine *e) {
  if (!e->threads) return;
  pthread_mutex_lock(&e->mu);
  atomic_store_explicit(&e->stop, 1, memory_order_release);
  pthread_cond_broadcast(&e->work_cv);
  pthread_mutex_unlock(&e->mu);
  for (int i = 0; i < e->n_started; i++) pthread_join(e->threads[i], NULL);
  free(e->threads);
  e->threads = NULL;
  e->n_started = 0;
}

dg_status dg_engine_new(const dg_engine_params *p, dg_engine **out) {
  if (!out) return DG_STATUS_ERR_INVALID;
  *out = NULL;
  dg_engine_params prm = p ? *p : dg_engine_params_default();
  if (prm.n_threads < 0 || prm.n_threads > 1024) return DG_STATUS_ERR_INVALID;
  if ((int)prm.isa < DG_ISA_AUTO || (int)prm.isa > DG_ISA_AVX512) return DG_STATUS_ERR_INVALID;
  if (prm.precision != DG_PRECISION_F32 && prm.precision != DG_PRECISION_BF16)
    return DG_STATUS_ERR_INVALID;
  dg_isa isa = prm.isa;
  if (isa == DG_ISA_AUTO) {
    int bad;
    isa = isa_from_env(&bad);
    if (bad) DG_WARN("DG_ISA=%s not understood (ref|generic|avx2|avx512); using auto", getenv("DG_ISA"));
  }
  if (isa == DG_ISA_AUTO)
    isa = dg_cpu_has_avx512() ? DG_ISA_AVX512 : dg_cpu_has_avx2() ? DG_ISA_AVX2 : DG_ISA_GENERIC;
  if (!isa_supported(isa)) return DG_STATUS_ERR_UNSUPPORTED;
  int nt = prm.n_threads;
  if (nt == 0) {
    long c = sysconf(_SC_NPROCESSORS_ONLN);
    nt = c > 0 ? (int)(c > 256 ? 256 : c) : 1;
  }

  dg_engine *e = calloc(1, sizeof *e);
  if (!e) return DG_STATUS_ERR_NOMEM;
  e->n_threads = nt;
  e->isa = isa;
  e->precision = prm.precision;
  const char *prof = getenv("DG_PROFILE");
  e->prof = prof && prof[0] && prof[0] != '0';
  e->scratch = calloc((size_t)nt, sizeof *e->scratch);
  if (!e->scratch) {
    free(e);
    return DG_STATUS_ERR_NOMEM;
  }
  pthread_mutex_init(&e->mu, NULL);
  pthread_cond_init(&e->work_cv, NULL);
  pthread_cond_init(&e->done_cv, NULL);
  atomic_init(&e->gen, 0);
  atomic_init(&e->pending, 0);
  atomic_init(&e->stop, 0);
  if (nt > 1) {
    e->threads = calloc((size_t)(nt - 1), sizeof *e->threads);
    if (!e->threads) {
      dg_engine_free(e);
      return DG_STATUS_ERR_NOMEM;
    }
    for (int i = 0; i < nt - 1; i++) {
      worker_arg *wa = malloc(sizeof *wa);
      if (!wa) {
        dg_engine_free(e);
        return DG_STATUS_ERR_NOMEM;
      }
      wa->e = e;
      wa->index = i + 1;
      if (pthread_create(&e->threads[i], NULL, worker_main, wa) != 0) {
        free(wa);
        dg_engine_free(e);
        return DG_STATUS_ERR_NOMEM;
      }
      e->n_started++;
    }
  }
  *out = e;
  return DG_STATUS_OK;
}

void dg_engine_free(dg_engine *e) {
  if (!e) return;
  if (e->prof) dg_engine_profile_report(e, stderr);
  free(e->pe);
  engine_stop_threads(e);
  pthread_mutex_destroy(&e->mu);
  pthread_cond_destroy(&e->work_cv);
  pthread_cond_destroy(&e->done_cv);
  if (e->scratch)
    for (int i = 0; i < e->n_threads; i++) free(e->scratch[i].p);
  free(e->scratch);
  for (int i = 0; i < DG__ENGINE_WORKSPACES; i++) free(e->work[i].p);
  free(e);
}

/* ---- Op profile (DG_PROFILE=1) ------------------------------------------------ */

double dg__prof_start(const dg_engine *e) {
  if (!e || !e->prof) return 0.0;
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void dg__prof_add(dg_engine *e, const char *key, double t0, double flop) {
  if (!e || !e->prof) return;
  double dt = dg__prof_start(e) - t0;
  int i = 0;
  while (i < e->npe && strcmp(e->pe[i].key, key)) i++;
  if (i == e->npe) {
    if (e->npe == e->cap_pe) {
      int cap = e->cap_pe ? 2 * e->cap_pe : 64;
      prof_ent *p = realloc(e->pe, (size_t)cap * sizeof *p);
      if (!p) return; /* the profile is best effort */
      e->pe = p;
      e->cap_pe = cap;
    }
    memset(&e->pe[i], 0, sizeof e->pe[i]);
    snprintf(e->pe[i].key, sizeof e->pe[i].key, "%s", key);
    e->npe++;
  }
  e->pe[i].calls++;
  e->pe[i].sec += dt;
  e->pe[i].flop += flop;
}

static int prof_cmp(const void *a, const void *b) {
  double x = ((const prof_ent *)a)->sec, y = ((const prof_ent *)b)->sec;
  return (x < y) - (x > y);
}

void dg_engine_profile_report(dg_engine *e, FILE *f) {
  if (!e || !f || !e->npe) return;
  qsort(e->pe, (size_t)e->npe, sizeof *e->pe, prof_cmp);
  double total = 0.0;
  for (int i = 0; i < e->npe; i++) total += e->pe[i].sec;
  fprintf(f, "op profile (DG_PROFILE): %.3f s in %d op kinds, %d threads, %s, %s\n", total, e->npe, e->n_threads,
          dg_isa_name(e->isa), e->precision == DG_PRECISION_BF16 ? "bf16" : "f32");
  fprintf(f, "%9s %6s %8s %9s  %s\n", "seconds", "%", "calls", "GFLOP/s", "op");
  for (int i = 0; i < e->npe; i++) {
    const prof_ent *p = &e->pe[i];
    char rate[32] = "-";
    if (p->flop > 0.0 && p->sec > 0.0) snprintf(rate, sizeof rate, "%.1f", p->flop / p->sec * 1e-9);
    fprintf(f, "%9.3f %6.2f %8lld %9s  %s\n", p->sec, total > 0.0 ? 100.0 * p->sec / total : 0.0,
            (long long)p->calls, rate, p->key);
  }
}

void dg_engine_profile_reset(dg_engine *e) {
  if (e) e->npe = 0;
}

dg_isa dg_engine_isa(const dg_engine *e) { return e ? e->isa : DG_ISA_REF; }
dg_precision dg_engine_precision(const dg_engine *e) { return e ? e->precision : DG_PRECISION_F32; }
int dg_engine_threads(const dg_engine *e) { return e ? e->n_threads : 1; }

void dg_engine_parallel(dg_engine *e, int64_t n, dg_range_fn fn, void *arg) {
  if (!e || !fn || n <= 0) return;
  unsigned fpu = fpu_enter();
  if (e->n_threads == 1 || !e->threads || n == 1) {
    fn(arg, 0, n, 0);
    fpu_leave(fpu);
    return;
  }
  e->fn = fn;
  e->arg = arg;
  e->n = n;
  atomic_store_explicit(&e->pending, e->n_threads - 1, memory_order_relaxed);
  pthread_mutex_lock(&e->mu);
  atomic_fetch_add_explicit(&e->gen, 1, memory_order_release);
  pthread_cond_broadcast(&e->work_cv);
  pthread_mutex_unlock(&e->mu);

  run_chunk(e, 0);

  for (int i = 0; i < SPIN_ITERS; i++) {
    if (atomic_load_explicit(&e->pending, memory_order_acquire) == 0) {
      fpu_leave(fpu);
      return;
    }
    cpu_relax(i);
  }
  pthread_mutex_lock(&e->mu);
  while (atomic_load_explicit(&e->pending, memory_order_acquire) != 0)
    pthread_cond_wait(&e->done_cv, &e->mu);
  pthread_mutex_unlock(&e->mu);
  fpu_leave(fpu);
}

/* s grown to at least bytes (64-byte aligned; contents not kept); NULL on OOM. */
static void *grow(scratch *s, size_t bytes) {
  if (bytes == 0) bytes = 1;
  if (s->n < bytes) {
    size_t n = bytes + bytes / 4;
    n = (n + 63) / 64 * 64;
    void *p = NULL;
    if (posix_memalign(&p, 64, n) != 0) return NULL;
    free(s->p);
    s->p = p;
    s->n = n;
  }
  return s->p;
}

void *dg__engine_scratch(dg_engine *e, int thread_index, size_t bytes) {
  if (!e || thread_index < 0 || thread_index >= e->n_threads) return NULL;
  return grow(&e->scratch[thread_index], bytes);
}

void *dg__engine_workspace(dg_engine *e, int slot, size_t bytes) {
  if (!e || slot < 0 || slot >= DG__ENGINE_WORKSPACES) return NULL;
  return grow(&e->work[slot], bytes);
}

