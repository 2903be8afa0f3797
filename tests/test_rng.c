/* dg_rng against PyTorch 1.13 CPU: every case of tests/data/rng/torch_randn.safetensors,
 * first and second torch.randn from the same generator, bit for bit. */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/rng.h"
#include "t.h"
#include "weights/safetensors.h"

static int64_t ulp_diff(float a, float b) {
  int32_t ia, ib;
  memcpy(&ia, &a, 4);
  memcpy(&ib, &b, 4);
  if (ia < 0) ia = INT32_MIN - ia;
  if (ib < 0) ib = INT32_MIN - ib;
  int64_t d = (int64_t)ia - (int64_t)ib;
  return d < 0 ? -d : d;
}

/* Compare n values; returns max ulp difference, counts mismatches. */
static int64_t compare(const float *got, const dg_tensor *want, int64_t n, int64_t *mismatches) {
  int64_t worst = 0;
  *mismatches = 0;
  for (int64_t i = 0; i < n; i++) {
    float w;
    memcpy(&w, (const char *)want->data + 4 * i, 4);
    int64_t d = ulp_diff(got[i], w);
    if (d) (*mismatches)++;
    if (d > worst) worst = d;
  }
  return worst;
}

static void test_mt19937(void) {
  /* std::mt19937 reference: seed 5489 -> 10000th output is 4123659995. */
  dg_rng r;
  dg_rng_seed(&r, 5489);
  uint32_t v = 0;
  for (int i = 0; i < 10000; i++) v = dg_rng_u32(&r);
  CHECK(v == 4123659995u);
  /* 64-bit seeds use their low 32 bits, as at::mt19937 does. */
  dg_rng a, b;
  dg_rng_seed(&a, 98877465625ull);
  dg_rng_seed(&b, 98877465625ull & 0xffffffffull);
  CHECK(dg_rng_u32(&a) == dg_rng_u32(&b));
  CHECK(a.seed == 98877465625ull);
}

static void test_torch_cases(void) {
  char err[512] = "";
  dg_safetensors *st = NULL;
  dg_status rc = dg_safetensors_open(t_data("rng/torch_randn.safetensors"), &st, err, sizeof err);
  CHECK_MSG(rc == DG_STATUS_OK, "%s", err);
  if (rc) return;
  const char *cases_json = dg_safetensors_metadata(st, "cases");
  CHECK(cases_json != NULL);
  json_error_t jerr;
  json_t *cases = cases_json ? json_loads(cases_json, 0, &jerr) : NULL;
  CHECK(json_is_array(cases) && json_array_size(cases) == 9);
  int64_t worst_all = 0, total = 0;
  size_t i;
  json_t *c;
  json_array_foreach(cases, i, c) {
    int id = (int)json_integer_value(json_object_get(c, "case"));
    uint64_t seed = (uint64_t)json_integer_value(json_object_get(c, "seed"));
    json_t *shape = json_object_get(c, "shape");
    int64_t n = 1;
    for (size_t d = 0; d < json_array_size(shape); d++) n *= json_integer_value(json_array_get(shape, d));
    char name[64];
    snprintf(name, sizeof name, "case%d.first", id);
    const dg_tensor *first = dg_safetensors_find(st, name);
    snprintf(name, sizeof name, "case%d.second", id);
    const dg_tensor *second = dg_safetensors_find(st, name);
    CHECK(first && second);
    if (!first || !second) continue;
    float *buf = malloc((size_t)n * sizeof(float));
    dg_rng r;
    dg_rng_seed(&r, seed);
    int64_t mm1, mm2;
    dg_rng_randn(&r, buf, n);
    int64_t w1 = compare(buf, first, n, &mm1);
    dg_rng_randn(&r, buf, n);
    int64_t w2 = compare(buf, second, n, &mm2);
    printf("case %d seed %llu n %lld: first max ulp %lld (%lld differ), second max ulp %lld (%lld differ)\n",
           id, (unsigned long long)seed, (long long)n, (long long)w1, (long long)mm1, (long long)w2,
           (long long)mm2);
    CHECK_MSG(w1 == 0 && w2 == 0, "case %d: max ulp %lld / %lld", id, (long long)w1, (long long)w2);
    if (w1 > worst_all) worst_all = w1;
    if (w2 > worst_all) worst_all = w2;
    total += 2 * n;
    free(buf);
  }
  printf("%lld values compared, max ulp difference %lld\n", (long long)total, (long long)worst_all);
  CHECK(total == 2 * (1 + 7 + 15 + 16 + 17 + 256 + 16384 + 120 + 65536));
  json_decref(cases);
  dg_safetensors_close(st);
}

static void test_stream(void) {
  /* A fresh seed always restarts the stream (and drops the cached normal). */
  dg_rng r;
  float a[7], b[7], big1[40], big2[40];
  dg_rng_seed(&r, 42);
  dg_rng_randn(&r, a, 7);
  dg_rng_seed(&r, 42);
  dg_rng_randn(&r, b, 7);
  CHECK(memcmp(a, b, sizeof a) == 0);
  CHECK(r.has_next_normal == 1); /* 7 values = 4 pairs, one cached */
  dg_rng_seed(&r, 42);
  CHECK(r.has_next_normal == 0);
  dg_rng_randn(&r, big1, 40);
  dg_rng_seed(&r, 42);
  dg_rng_randn(&r, big2, 40);
  CHECK(memcmp(big1, big2, sizeof big1) == 0);
  /* Values look like N(0, 1): finite, mean and variance roughly right. */
  static float v[1 << 16];
  dg_rng_seed(&r, 7);
  dg_rng_randn(&r, v, 1 << 16);
  double s = 0, s2 = 0;
  int finite = 1;
  for (int i = 0; i < (1 << 16); i++) {
    finite &= isfinite(v[i]);
    s += v[i];
    s2 += (double)v[i] * v[i];
  }
  s /= 1 << 16;
  s2 /= 1 << 16;
  CHECK(finite);
  CHECK_NEAR(s, 0.0, 0.02);
  CHECK_NEAR(s2, 1.0, 0.03);
  dg_rng_randn(&r, NULL, 5);  /* harmless */
  dg_rng_randn(&r, v, 0);
  dg_rng_randn(&r, v, -3);
  uint64_t s1 = dg_rng_random_seed(), s2r = dg_rng_random_seed();
  CHECK(s1 != s2r);
  CHECK(s1 < (1ull << 53) && s2r < (1ull << 53));
}

int main(void) {
  test_mt19937();
  test_torch_cases();
  test_stream();
  T_DONE();
}
