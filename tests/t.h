/* A minimal test harness: CHECK records failures and keeps going; T_DONE()
 * prints "N passed, N failed" and returns the exit code. */
#ifndef DG_TESTS_T_H
#define DG_TESTS_T_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int t_passed, t_failed;

#define CHECK(cond)                                                              \
  do {                                                                           \
    if (cond) {                                                                  \
      t_passed++;                                                                \
    } else {                                                                     \
      t_failed++;                                                                \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);  \
    }                                                                            \
  } while (0)

#define CHECK_MSG(cond, ...)                                                     \
  do {                                                                           \
    if (cond) {                                                                  \
      t_passed++;                                                                \
    } else {                                                                     \
      t_failed++;                                                                \
      fprintf(stderr, "%s:%d: CHECK failed: %s: ", __FILE__, __LINE__, #cond);  \
      fprintf(stderr, __VA_ARGS__);                                              \
      fputc('\n', stderr);                                                       \
    }                                                                            \
  } while (0)

#define CHECK_NEAR(a, b, tol) \
  CHECK_MSG(fabs((double)(a) - (double)(b)) <= (tol), "%.9g vs %.9g (tol %g)", (double)(a), (double)(b), (double)(tol))

#define T_DONE()                                                  \
  do {                                                            \
    printf("%d passed, %d failed\n", t_passed, t_failed);         \
    return t_failed ? 1 : 0;                                      \
  } while (0)

/* Deterministic test data: xorshift64, seeded per test with t_seed().
 * t_rnd(): 32 bits; t_rint(lo, hi): integer in [lo, hi]; t_runif(a): uniform
 * in [-a, a] on a 1e-6 grid. */
static inline uint64_t *t_rng(void) {
  static uint64_t s = 0x9e3779b97f4a7c15ull;
  return &s;
}
static inline void t_seed(uint64_t seed) { *t_rng() = seed; }
static inline uint32_t t_rnd(void) {
  uint64_t *s = t_rng();
  *s ^= *s << 13;
  *s ^= *s >> 7;
  *s ^= *s << 17;
  return (uint32_t)(*s >> 16);
}
static inline int t_rint(int lo, int hi) { return lo + (int)(t_rnd() % (uint32_t)(hi - lo + 1)); }
static inline float t_runif(float a) { return a * ((float)(t_rnd() % 2000001u) / 1000000.0f - 1.0f); }

/* Path of a test file or folder, in a static buffer ring: under DG_TEST_GEN_DATA
 * (data generated at test time, tests/gen_test_data.cmake) when it is there, else
 * under tests/data (DG_TEST_DATA).  The generated tree comes first so that a folder
 * stored only in part (sd15-tiny/diffusers: configs and tokenizer, no weights)
 * resolves to its complete generated copy. */
static inline const char *t_data(const char *rel) {
  static char bufs[8][4096];
  static int i;
  const char *root = getenv("DG_TEST_DATA"), *gen = getenv("DG_TEST_GEN_DATA");
  char *b = bufs[i++ & 7];
  if (gen) {
    snprintf(b, 4096, "%s/%s", gen, rel);
    if (access(b, F_OK) == 0) return b;
  }
  snprintf(b, 4096, "%s/%s", root ? root : "tests/data", rel);
  return b;
}

#endif
