/* PyTorch-identical CPU random numbers (torch 1.13, float32 randn).
 *
 * What torch.Generator().manual_seed(seed) + torch.randn(n) does on x86-64:
 *  - the engine is MT19937 seeded with the LOW 32 BITS of the 64-bit seed
 *    (at::mt19937::init_with_uint32), and manual_seed clears the cached
 *    Box-Muller values;
 *  - a float uniform is (u32 & (2^24-1)) * 2^-24 (one 32-bit draw); a double
 *    uniform is (u64 & (2^53-1)) * 2^-53 with u64 = (first draw << 32) | second;
 *  - n < 16: element by element through normal_distribution<double>:
 *      u1, u2 = two double uniforms; r = sqrt(-2 log(1 - u2)); theta = 2 pi u1;
 *      value = r cos(theta); r sin(theta) is CACHED in the generator and
 *      returned by the next scalar draw (even one in a later randn call);
 *  - n >= 16 (contiguous float): normal_fill_AVX2 (the dispatched kernel on any
 *    AVX2 machine; normal_stub is never dispatched to AVX-512): first n float
 *    uniforms, then for each block of 16 values Box-Muller over the pairs
 *    (j, j+8): u1 = 1 - d[j], u2 = d[j+8], radius = sqrt(-2 log(u1)),
 *    theta = float(2 pi) * u2, d[j] = radius cos(theta), d[j+8] = radius
 *    sin(theta).  If n % 16 != 0, 16 NEW uniforms are drawn into the last 16
 *    slots (overwriting values already transformed) and that block is redone.
 *    log/sin/cos are NOT libm: they are the Cephes-style float polynomials of
 *    ATen's avx_mathfun.h, compiled by GCC with FMA contraction.  We evaluate
 *    the same operations in scalar float with the same fused multiply-adds
 *    (fmaf), which reproduces them bit for bit.  The vector path does not touch
 *    the scalar path's cached value. */
#include "base/rng.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

/* ---- MT19937 ------------------------------------------------------------- */

#define MT_N 624
#define MT_M 397

void dg_rng_seed(dg_rng *r, uint64_t seed) {
  r->seed = seed;
  r->state[0] = (uint32_t)(seed & 0xffffffffu);
  for (int j = 1; j < MT_N; j++)
    r->state[j] = 1812433253u * (r->state[j - 1] ^ (r->state[j - 1] >> 30)) + (uint32_t)j;
  r->index = MT_N; /* twist before the first draw */
  r->has_next_normal = 0;
  r->next_normal = 0.0;
}

static void mt_twist(dg_rng *r) {
  uint32_t *s = r->state;
  for (int i = 0; i < MT_N; i++) {
    uint32_t y = (s[i] & 0x80000000u) | (s[(i + 1) % MT_N] & 0x7fffffffu);
    uint32_t v = s[(i + MT_M) % MT_N] ^ (y >> 1);
    if (y & 1u) v ^= 0x9908b0dfu;
    s[i] = v;
  }
  r->index = 0;
}

uint32_t dg_rng_u32(dg_rng *r) {
  if (r->index >= MT_N || r->index < 0) mt_twist(r);
  uint32_t y = r->state[r->index++];
  y ^= y >> 11;
  y ^= (y << 7) & 0x9d2c5680u;
  y ^= (y << 15) & 0xefc60000u;
  y ^= y >> 18;
  return y;
}

static float uniform_f32(dg_rng *r) {
  return (float)(dg_rng_u32(r) & ((1u << 24) - 1)) * (1.0f / 16777216.0f);
}

static double uniform_f64(dg_rng *r) {
  uint64_t hi = dg_rng_u32(r);
  uint64_t lo = dg_rng_u32(r);
  uint64_t v = (hi << 32) | lo;
  return (double)(v & ((1ull << 53) - 1)) * (1.0 / 9007199254740992.0);
}

/* ---- scalar path (n < 16): normal_distribution<double> ------------------- */

static double normal_f64(dg_rng *r) {
  if (r->has_next_normal) {
    r->has_next_normal = 0;
    return r->next_normal;
  }
  const double u1 = uniform_f64(r);
  const double u2 = uniform_f64(r);
  const double radius = sqrt(-2.0 * log(1.0 - u2));
  const double theta = 2.0 * 3.14159265358979323846 * u1;
  r->next_normal = radius * sin(theta);
  r->has_next_normal = 1;
  return radius * cos(theta);
}

/* ---- vector path (n >= 16): avx_mathfun log / sincos, scalar ------------- */

static uint32_t f2u(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  return u;
}

static float u2f(uint32_t u) {
  float f;
  memcpy(&f, &u, 4);
  return f;
}

/* Cephes logf as in log256_ps, for x in (0, 1] (the only inputs used here). */
static float mathfun_logf(float x) {
  const float min_norm = u2f(0x00800000u);
  if (!(x > 0.0f)) return NAN;
  if (x < min_norm) x = min_norm;
  uint32_t bits = f2u(x);
  int32_t ex = (int32_t)(bits >> 23);
  x = u2f((bits & ~0x7f800000u) | f2u(0.5f)); /* mantissa in [0.5, 1) */
  float e = (float)(ex - 0x7f) + 1.0f;
  const int lt = x < 0.707106781186547524f;
  float tmp = lt ? x : 0.0f;
  x = x - 1.0f;
  e = e - (lt ? 1.0f : 0.0f);
  x = x + tmp;
  const float z = x * x;
  float y = fmaf(7.0376836292E-2f, x, -1.1514610310E-1f);
  y = fmaf(y, x, 1.1676998740E-1f);
  y = fmaf(y, x, -1.2420140846E-1f);
  y = fmaf(y, x, 1.4249322787E-1f);
  y = fmaf(y, x, -1.6668057665E-1f);
  y = fmaf(y, x, 2.0000714765E-1f);
  y = fmaf(y, x, -2.4999993993E-1f);
  y = fmaf(y, x, 3.3333331174E-1f);
  y = y * x;
  y = fmaf(y, z, e * -2.12194440e-4f); /* y*z + e*q1: GCC fuses the first product */
  y = fmaf(-z, 0.5f, y);
  x = x + y;
  return fmaf(e, 0.693359375f, x);
}

/* Cephes sinf/cosf pair as in sincos256_ps, for x >= 0. */
static void mathfun_sincosf(float x, float *s, float *c) {
  uint32_t sign_sin = f2u(x) & 0x80000000u;
  x = fabsf(x);
  float y = x * 1.27323954473516f; /* 4 / pi */
  int32_t j = (int32_t)y;          /* truncation, as cvttps */
  j = (j + 1) & ~1;
  y = (float)j;
  uint32_t swap_sign_sin = ((uint32_t)j & 4u) << 29;
  const int poly = (j & 2) == 0;
  x = fmaf(y, -0.78515625f, x);
  x = fmaf(y, -2.4187564849853515625e-4f, x);
  x = fmaf(y, -3.77489497744594108e-8f, x);
  uint32_t sign_cos = (~(uint32_t)(j - 2) & 4u) << 29;
  sign_sin ^= swap_sign_sin;
  const float z = x * x;
  float yc = fmaf(2.443315711809948E-005f, z, -1.388731625493765E-003f);
  yc = fmaf(yc, z, 4.166664568298827E-002f);
  yc = yc * z;
  yc = fmaf(yc, z, -(z * 0.5f));
  yc = yc + 1.0f;
  float ys = fmaf(-1.9515295891E-4f, z, 8.3321608736E-3f);
  ys = fmaf(ys, z, -1.6666654611E-1f);
  ys = ys * z;
  ys = fmaf(ys, x, x);
  /* Blend as the vector code does (masked values are +0). */
  const float ysin2 = poly ? ys : 0.0f, ysin1 = poly ? 0.0f : yc;
  const float sv = ysin1 + ysin2;
  const float cv = (yc - ysin1) + (ys - ysin2);
  *s = u2f(f2u(sv) ^ sign_sin);
  *c = u2f(f2u(cv) ^ sign_cos);
}

/* One block of 16 uniforms -> 16 normals, in place (normal_fill_16_AVX2). */
static void normal_fill_16(float *d) {
  const float two_pi = (float)(2.0 * 3.14159265358979323846);
  for (int j = 0; j < 8; j++) {
    const float u1 = 1.0f - d[j];
    const float u2 = d[j + 8];
    const float radius = sqrtf(-2.0f * mathfun_logf(u1));
    const float theta = two_pi * u2;
    float sn, cs;
    mathfun_sincosf(theta, &sn, &cs);
    d[j] = fmaf(radius * cs, 1.0f, 0.0f);
    d[j + 8] = fmaf(radius * sn, 1.0f, 0.0f);
  }
}

void dg_rng_randn(dg_rng *r, float *out, int64_t n) {
  if (n <= 0 || !out) return;
  if (n < 16) {
    for (int64_t i = 0; i < n; i++) out[i] = (float)normal_f64(r);
    return;
  }
  for (int64_t i = 0; i < n; i++) out[i] = uniform_f32(r);
  for (int64_t i = 0; i + 16 <= n; i += 16) normal_fill_16(out + i);
  if (n % 16 != 0) {
    float *tail = out + n - 16; /* redraw and recompute the last 16 */
    for (int i = 0; i < 16; i++) tail[i] = uniform_f32(r);
    normal_fill_16(tail);
  }
}

uint64_t dg_rng_random_seed(void) {
  uint64_t v = 0;
  size_t got = 0;
  while (got < sizeof v) {
    ssize_t k = getrandom((char *)&v + got, sizeof v - got, 0);
    if (k < 0) {
      if (errno == EINTR) continue;
      break;
    }
    got += (size_t)k;
  }
  if (got < sizeof v) { /* no getrandom: time and pid, never fails */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    v ^= ((uint64_t)ts.tv_sec << 32) ^ (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 17);
    v *= 0x9E3779B97F4A7C15ull;
  }
  /* Keep seeds in [0, 2^53) so they survive a round trip through JSON doubles. */
  return v & ((1ull << 53) - 1);
}
