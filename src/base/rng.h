/* The engine's random numbers: bit-identical to PyTorch's CPU generator, so a
 * seed gives the same noise as torch.randn(shape, generator=
 * torch.Generator().manual_seed(seed)) in float32. */
#ifndef DG_BASE_RNG_H
#define DG_BASE_RNG_H

#include <stdint.h>

typedef struct dg_rng {
  uint32_t state[624]; /* mt19937 */
  int index;
  uint64_t seed;
  /* PyTorch's cached second Box-Muller value (scalar path). */
  int has_next_normal;
  double next_normal;
} dg_rng;

void dg_rng_seed(dg_rng *r, uint64_t seed);
uint32_t dg_rng_u32(dg_rng *r);
/* Fill n floats exactly as torch.randn of a float32 tensor with n elements
 * (PyTorch chooses its algorithm by n; so must we). Consecutive calls continue
 * the stream as consecutive torch.randn calls on the same generator. */
void dg_rng_randn(dg_rng *r, float *out, int64_t n);
/* A random seed for requests that ask for one (-1): from the OS. */
uint64_t dg_rng_random_seed(void);

#endif
