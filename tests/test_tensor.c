/* Dtype conversions (against double-precision references written here),
 * tensor helpers, the arena and the engine's thread pool. */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "t.h"
#include "tensor/kernels.h"
#include "tensor/tensor.h"

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint32_t rnd32(void) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return (uint32_t)(rng_state >> 11);
}

static float bits_f(uint32_t u) {
  float f;
  memcpy(&f, &u, 4);
  return f;
}
static uint32_t f_bits(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  return u;
}

/* Value of an f16 bit pattern, computed from the definition. */
static double f16_value(uint16_t h) {
  int s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
  double v;
  if (e == 0)
    v = ldexp((double)m, -24);
  else if (e == 31)
    v = m ? NAN : INFINITY;
  else
    v = ldexp(1024.0 + m, e - 25);
  return s ? -v : v;
}

/* Nearest f16 (ties to even) by search over all finite positive patterns. */
static uint16_t f16_nearest(double v) {
  uint16_t sign = signbit(v) ? 0x8000 : 0;
  double a = fabs(v);
  if (a >= 65520.0) return sign | 0x7c00; /* >= max + half ulp: overflow */
  int lo = 0, hi = 0x7bff;                 /* largest pattern with value <= a */
  while (lo < hi) {
    int mid = (lo + hi + 1) / 2;
    if (f16_value((uint16_t)mid) <= a)
      lo = mid;
    else
      hi = mid - 1;
  }
  if (lo == 0x7bff) return sign | 0x7bff;
  double d0 = a - f16_value((uint16_t)lo), d1 = f16_value((uint16_t)(lo + 1)) - a;
  int r = lo;
  if (d1 < d0 || (d1 == d0 && (lo & 1))) r = lo + 1;
  return (uint16_t)(sign | r);
}

static uint16_t bf16_nearest(float f) {
  uint32_t u = f_bits(f);
  uint16_t sign = (uint16_t)((u >> 16) & 0x8000);
  double a = fabs((double)f);
  uint32_t lo = (u & 0x7fffffffu) >> 16;
  double vlo = bits_f(lo << 16);
  double vhi = lo + 1 == 0x7f80 ? ldexp(1.0, 128) : (double)bits_f((lo + 1) << 16);
  double d0 = a - vlo, d1 = vhi - a;
  uint32_t r = lo;
  if (d1 < d0 || (d1 == d0 && (lo & 1))) r = lo + 1;
  return (uint16_t)(sign | r);
}

static void test_f16(void) {
  int bad_rt = 0, bad_val = 0;
  for (uint32_t h = 0; h < 65536; h++) {
    float f = dg_f16_to_f32((uint16_t)h);
    double v = f16_value((uint16_t)h);
    if (isnan(v)) {
      if (!isnan(f)) bad_val++;
      uint16_t back = dg_f32_to_f16(f);
      if ((back & 0x7c00) != 0x7c00 || (back & 0x3ff) == 0 || (back & 0x8000) != (h & 0x8000)) bad_rt++;
      continue;
    }
    if ((double)f != v || !signbit(f) != !signbit(v)) bad_val++;
    if (dg_f32_to_f16(f) != h) bad_rt++;
  }
  CHECK_MSG(bad_val == 0, "%d f16->f32 mismatches", bad_val);
  CHECK_MSG(bad_rt == 0, "%d f16 round trips failed", bad_rt);

  CHECK(dg_f16_to_f32(0x3c00) == 1.0f);
  CHECK(dg_f16_to_f32(0x7bff) == 65504.0f);
  CHECK(dg_f16_to_f32(0x0001) == ldexpf(1.0f, -24));
  CHECK(dg_f32_to_f16(65519.0f) == 0x7bff);
  CHECK(dg_f32_to_f16(65520.0f) == 0x7c00);
  CHECK(dg_f32_to_f16(1e10f) == 0x7c00);
  CHECK(dg_f32_to_f16(-INFINITY) == 0xfc00);
  CHECK(dg_f32_to_f16(ldexpf(1.0f, -25)) == 0x0000);          /* tie to even: 0 */
  CHECK(dg_f32_to_f16(ldexpf(1.5f, -25)) == 0x0001);
  CHECK(dg_f32_to_f16(ldexpf(3.0f, -25)) == 0x0002);          /* 1.5 units: tie to even 2 */
  CHECK(dg_f32_to_f16(-0.0f) == 0x8000);
  CHECK(dg_f32_to_f16(1.0f + ldexpf(1.0f, -11)) == 0x3c00);   /* tie, even stays */
  CHECK(dg_f32_to_f16(1.0f + 3 * ldexpf(1.0f, -11)) == 0x3c02); /* tie, odd rounds up */
  CHECK((dg_f32_to_f16(NAN) & 0x7fff) > 0x7c00);

  /* every midpoint between consecutive f16 values, and one f32 ulp either side */
  int bad_mid = 0;
  for (uint32_t h = 0; h < 0x7bff; h++) {
    double mid = (f16_value((uint16_t)h) + f16_value((uint16_t)(h + 1))) / 2;
    float fm = (float)mid;
    float cands[3] = {fm, nextafterf(fm, 0.0f), nextafterf(fm, INFINITY)};
    for (int k = 0; k < 3; k++) {
      for (int s = 0; s < 2; s++) {
        float f = s ? -cands[k] : cands[k];
        if (dg_f32_to_f16(f) != f16_nearest(f)) bad_mid++;
      }
    }
  }
  CHECK_MSG(bad_mid == 0, "%d midpoint roundings wrong", bad_mid);

  int bad_rand = 0;
  for (int i = 0; i < 200000; i++) {
    uint32_t u = rnd32();
    /* focus on the f16 range: exponents around [-30, 17] */
    u = (u & 0x807fffffu) | ((uint32_t)(97 + rnd32() % 50) << 23);
    float f = bits_f(u);
    if (dg_f32_to_f16(f) != f16_nearest(f)) bad_rand++;
  }
  CHECK_MSG(bad_rand == 0, "%d random roundings wrong", bad_rand);
}

static void test_bf16(void) {
  int bad = 0;
  for (uint32_t h = 0; h < 65536; h++) {
    float f = dg_bf16_to_f32((uint16_t)h);
    if (f_bits(f) != h << 16) bad++;
    if (!isnan(f) && dg_f32_to_bf16(f) != h) bad++;
    if (isnan(f) && !isnan(dg_bf16_to_f32(dg_f32_to_bf16(f)))) bad++;
  }
  CHECK_MSG(bad == 0, "%d bf16 exact values/round trips wrong", bad);
  int bad_rand = 0;
  for (int i = 0; i < 300000; i++) {
    uint32_t u = rnd32() ^ (rnd32() << 21);
    float f = bits_f(u);
    if (isnan(f)) {
      if (!isnan(dg_bf16_to_f32(dg_f32_to_bf16(f)))) bad_rand++;
      continue;
    }
    if (isinf(f)) continue;
    if (dg_f32_to_bf16(f) != bf16_nearest(f)) bad_rand++;
  }
  CHECK_MSG(bad_rand == 0, "%d random bf16 roundings wrong", bad_rand);
  CHECK(dg_f32_to_bf16(1.0f) == 0x3f80);
  CHECK(dg_f32_to_bf16(bits_f(0x3f808000u)) == 0x3f80); /* tie to even */
  CHECK(dg_f32_to_bf16(bits_f(0x3f818000u)) == 0x3f82);
  CHECK(dg_f32_to_bf16(bits_f(0x7f7fffffu)) == 0x7f80); /* overflow to Inf */
  CHECK(dg_f32_to_bf16(INFINITY) == 0x7f80);
  CHECK(dg_f32_to_bf16(bits_f(0x00000001u)) == 0x0000); /* subnormal rounds */
  CHECK(dg_f32_to_bf16(bits_f(0x00018000u)) == 0x0002);
  uint16_t qn = dg_f32_to_bf16(bits_f(0x7f800001u)); /* signalling NaN stays NaN */
  CHECK((qn & 0x7f80) == 0x7f80 && (qn & 0x7f) != 0);
}

static void test_helpers(void) {
  float f32[3] = {1.5f, -2.0f, 3.25f};
  uint16_t h16[3], b16[3];
  double f64[3] = {0.5, 1.0, -7.0};
  int64_t i64[2] = {-3, 9};
  int32_t i32[2] = {4, -5};
  uint8_t u8[2] = {200, 1};
  for (int i = 0; i < 3; i++) {
    h16[i] = dg_f32_to_f16(f32[i]);
    b16[i] = dg_f32_to_bf16(f32[i]);
  }
  for (int i = 0; i < 3; i++) {
    CHECK(dg_load_f32(f32, DG_DTYPE_F32, i) == f32[i]);
    CHECK(dg_load_f32(h16, DG_DTYPE_F16, i) == f32[i]);
    CHECK(dg_load_f32(b16, DG_DTYPE_BF16, i) == f32[i]);
    CHECK(dg_load_f32(f64, DG_DTYPE_F64, i) == (float)f64[i]);
  }
  CHECK(dg_load_f32(i64, DG_DTYPE_I64, 0) == -3.0f);
  CHECK(dg_load_f32(i32, DG_DTYPE_I32, 1) == -5.0f);
  CHECK(dg_load_f32(u8, DG_DTYPE_U8, 0) == 200.0f);

  CHECK(dg_dtype_size(DG_DTYPE_F32) == 4 && dg_dtype_size(DG_DTYPE_BF16) == 2 && dg_dtype_size(DG_DTYPE_I64) == 8 &&
        dg_dtype_size(DG_DTYPE_U8) == 1 && dg_dtype_size(DG_DTYPE_F16) == 2);
  CHECK(!strcmp(dg_dtype_name(DG_DTYPE_BF16), "BF16") && !strcmp(dg_dtype_name(DG_DTYPE_I32), "I32"));

  float buf[2 * 4 * 6 * 5];
  int64_t shp[4] = {2, 4, 6, 5};
  dg_tensor t = dg_tensor_make(DG_DTYPE_F32, 4, shp, buf);
  CHECK(dg_tensor_numel(&t) == 240);
  CHECK(dg_tensor_nbytes(&t) == 960);
  char d[64];
  CHECK(!strcmp(dg_tensor_describe(&t, d, sizeof d), "(2, 4, 6, 5) F32"));
  char small[6];
  dg_tensor_describe(&t, small, sizeof small);
  CHECK(strlen(small) == 5);
  int64_t s2[2] = {8, 30};
  dg_tensor r;
  CHECK(dg_tensor_reshape(&t, 2, s2, &r) == DG_STATUS_OK && r.ndim == 2 && r.shape[1] == 30 &&
        r.shape[2] == 1 && r.data == buf);
  int64_t s3[2] = {8, 31};
  CHECK(dg_tensor_reshape(&t, 2, s3, &r) == DG_STATUS_ERR_SHAPE);
  dg_tensor nw = dg_tensor_narrow0(&t, 1, 1);
  CHECK(nw.shape[0] == 1 && nw.data == buf + 120 && nw.shape[3] == 5);
  int64_t s1[1] = {7};
  dg_tensor one = dg_tensor_make(DG_DTYPE_F16, 1, s1, NULL);
  CHECK(one.ndim == 1 && one.shape[1] == 1 && one.shape[3] == 1 && dg_tensor_nbytes(&one) == 14);
}

static void test_arena(void) {
  dg_arena *a = dg_arena_new(10000);
  CHECK(a != NULL);
  if (!a) return;
  void *p1 = dg_arena_alloc(a, 3);
  void *p2 = dg_arena_alloc(a, 100);
  CHECK(p1 && p2 && ((uintptr_t)p1 % 64) == 0 && ((uintptr_t)p2 % 64) == 0);
  CHECK((char *)p2 >= (char *)p1 + 3);
  memset(p1, 1, 3);
  memset(p2, 2, 100);
  dg_arena_mark m = dg_arena_get_mark(a);
  /* grow past the first block several times, including one allocation larger than a block */
  char *ps[20];
  for (int i = 0; i < 20; i++) {
    size_t n = i == 7 ? 50000 : 3000;
    ps[i] = dg_arena_alloc(a, n);
    CHECK(ps[i] != NULL && ((uintptr_t)ps[i] % 64) == 0);
    if (ps[i]) memset(ps[i], i, n);
  }
  int ok = 1;
  for (int i = 0; i < 20; i++)
    if (ps[i] && (unsigned char)ps[i][0] != (unsigned char)i) ok = 0;
  CHECK(ok);
  CHECK(((unsigned char *)p2)[99] == 2);
  size_t peak = dg_arena_peak_bytes(a);
  CHECK(peak >= 50000 + 19 * 3000);
  dg_arena_reset(a, m);
  void *p3 = dg_arena_alloc(a, 3000);
  CHECK(p3 == ps[0]); /* reuses the space after the mark */
  CHECK(dg_arena_peak_bytes(a) == peak);
  int64_t shp[3] = {2, 3, 5};
  dg_tensor *t = dg_arena_tensor(a, DG_DTYPE_BF16, 3, shp);
  CHECK(t && t->dtype == DG_DTYPE_BF16 && t->ndim == 3 && t->shape[2] == 5 && t->shape[3] == 1 &&
        ((uintptr_t)t->data % 64) == 0);
  int64_t bad[2] = {-1, 4};
  CHECK(dg_arena_tensor(a, DG_DTYPE_F32, 2, bad) == NULL);
  CHECK(dg_arena_tensor(a, DG_DTYPE_F32, 5, shp) == NULL);
  /* reset to the very beginning and reuse repeatedly: no growth */
  dg_arena_mark m0 = {NULL, 0};
  for (int it = 0; it < 100; it++) {
    dg_arena_reset(a, m0);
    for (int i = 0; i < 10; i++) CHECK(dg_arena_alloc(a, 4000) != NULL);
  }
  CHECK(dg_arena_peak_bytes(a) == peak);
  CHECK(dg_arena_alloc(a, SIZE_MAX - 10) == NULL);
  dg_arena_free(a);
  dg_arena_free(NULL);
}

typedef struct par_rec {
  int *owner;
  int64_t *calls;
  int nt;
  int bad;
} par_rec;

static void par_fn(void *arg, int64_t begin, int64_t end, int ti) {
  par_rec *r = arg;
  if (ti < 0 || ti >= r->nt || begin >= end) {
    r->bad = 1;
    return;
  }
  r->calls[ti]++;
  for (int64_t i = begin; i < end; i++) r->owner[i] = r->owner[i] == -1 ? ti : -2;
}

static void count_fn(void *arg, int64_t begin, int64_t end, int ti) {
  (void)ti;
  __atomic_add_fetch((int64_t *)arg, end - begin, __ATOMIC_RELAXED);
}

static void test_engine(void) {
  CHECK(dg_isa_name(DG_ISA_AVX512) && !strcmp(dg_isa_name(DG_ISA_REF), "ref"));
  printf("cpu: avx2=%d avx512=%d avx512bf16=%d\n", dg_cpu_has_avx2(), dg_cpu_has_avx512(),
         dg_cpu_has_avx512bf16());
  CHECK(!dg_cpu_has_avx512() || dg_cpu_has_avx2());
  CHECK(!dg_cpu_has_avx512bf16() || dg_cpu_has_avx512());

  int nts[4] = {1, 2, 3, 5};
  for (int k = 0; k < 4; k++) {
    dg_engine_params p = dg_engine_params_default();
    p.n_threads = nts[k];
    p.isa = DG_ISA_GENERIC;
    dg_engine *e = NULL;
    CHECK(dg_engine_new(&p, &e) == DG_STATUS_OK && e);
    if (!e) continue;
    CHECK(dg_engine_threads(e) == nts[k]);
    CHECK(dg_engine_isa(e) == DG_ISA_GENERIC);
    CHECK(dg_engine_precision(e) == DG_PRECISION_F32);
    int64_t ns[6] = {1, 2, 3, 7, 100, 1001};
    for (int q = 0; q < 6; q++) {
      int64_t n = ns[q];
      int *owner = malloc((size_t)n * sizeof *owner);
      int64_t calls[8] = {0};
      for (int64_t i = 0; i < n; i++) owner[i] = -1;
      par_rec r = {owner, calls, nts[k], 0};
      dg_engine_parallel(e, n, par_fn, &r);
      CHECK(!r.bad);
      int ok = 1;
      for (int64_t i = 0; i < n; i++) {
        /* deterministic contiguous split: index i belongs to the t with n*t/nt <= i < n*(t+1)/nt
         * (n == 1 may run inline on thread 0) */
        int expect = -1;
        for (int t = 0; t < nts[k]; t++)
          if (n * t / nts[k] <= i && i < n * (t + 1) / nts[k]) expect = t;
        if (n == 1) expect = 0;
        if (owner[i] != expect) ok = 0;
      }
      CHECK_MSG(ok, "split n=%lld threads=%d", (long long)n, nts[k]);
      for (int t = 0; t < nts[k]; t++) CHECK(calls[t] <= 1);
      free(owner);
    }
    /* many small jobs back to back */
    int64_t total = 0;
    for (int it = 0; it < 3000; it++) dg_engine_parallel(e, 64, count_fn, &total);
    CHECK(total == 3000 * 64);
    dg_engine_parallel(e, 0, count_fn, &total);
    CHECK(total == 3000 * 64);
    /* scratch: aligned, per thread, kept while big enough */
    for (int t = 0; t < nts[k]; t++) {
      char *s = dg__engine_scratch(e, t, 1000);
      CHECK(s && ((uintptr_t)s % 64) == 0);
      if (s) memset(s, 7, 1000);
      CHECK(dg__engine_scratch(e, t, 500) == (void *)s);
      char *s2 = dg__engine_scratch(e, t, 100000);
      CHECK(s2 != NULL);
      if (s2) memset(s2, 1, 100000);
    }
    CHECK(dg__engine_scratch(e, nts[k], 10) == NULL);
    CHECK(dg__engine_scratch(e, -1, 10) == NULL);
    dg_engine_free(e);
  }
  /* create/free many engines */
  int ok = 1;
  for (int i = 0; i < 60; i++) {
    dg_engine_params p = dg_engine_params_default();
    p.n_threads = 1 + i % 4;
    dg_engine *e = NULL;
    if (dg_engine_new(&p, &e) != DG_STATUS_OK) {
      ok = 0;
      continue;
    }
    int64_t total = 0;
    if (i % 2) dg_engine_parallel(e, 10, count_fn, &total);
    if (i % 2 && total != 10) ok = 0;
    dg_engine_free(e);
  }
  CHECK(ok);
  dg_engine_free(NULL);

  /* ISA resolution and the DG_ISA override */
  dg_engine_params p = dg_engine_params_default();
  p.n_threads = 1;
  dg_engine *e = NULL;
  unsetenv("DG_ISA");
  CHECK(dg_engine_new(&p, &e) == DG_STATUS_OK);
  dg_isa best = dg_cpu_has_avx512() ? DG_ISA_AVX512 : dg_cpu_has_avx2() ? DG_ISA_AVX2 : DG_ISA_GENERIC;
  CHECK(dg_engine_isa(e) == best);
  dg_engine_free(e);
  setenv("DG_ISA", "ref", 1);
  CHECK(dg_engine_new(&p, &e) == DG_STATUS_OK && dg_engine_isa(e) == DG_ISA_REF);
  dg_engine_free(e);
  setenv("DG_ISA", "generic", 1);
  CHECK(dg_engine_new(&p, &e) == DG_STATUS_OK && dg_engine_isa(e) == DG_ISA_GENERIC);
  dg_engine_free(e);
  p.isa = DG_ISA_REF; /* explicit request wins over the environment */
  CHECK(dg_engine_new(&p, &e) == DG_STATUS_OK && dg_engine_isa(e) == DG_ISA_REF);
  dg_engine_free(e);
  unsetenv("DG_ISA");
  p.isa = DG_ISA_AVX512;
  dg_status st = dg_engine_new(&p, &e);
  CHECK(dg_cpu_has_avx512() ? st == DG_STATUS_OK : st == DG_STATUS_ERR_UNSUPPORTED);
  if (st == DG_STATUS_OK) dg_engine_free(e);
  p.isa = DG_ISA_AVX2;
  st = dg_engine_new(&p, &e);
  CHECK(dg_cpu_has_avx2() ? st == DG_STATUS_OK : st == DG_STATUS_ERR_UNSUPPORTED);
  if (st == DG_STATUS_OK) dg_engine_free(e);
  p.isa = (dg_isa)42;
  CHECK(dg_engine_new(&p, &e) == DG_STATUS_ERR_INVALID);
  p.isa = DG_ISA_AUTO;
  p.n_threads = -1;
  CHECK(dg_engine_new(&p, &e) == DG_STATUS_ERR_INVALID);
  p.n_threads = 0;
  CHECK(dg_engine_new(&p, &e) == DG_STATUS_OK && dg_engine_threads(e) >= 1);
  dg_engine_free(e);
}

int main(void) {
  test_f16();
  test_bf16();
  test_helpers();
  test_arena();
  test_engine();
  T_DONE();
}
