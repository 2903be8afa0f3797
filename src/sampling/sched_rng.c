/* dg_noise_fn over the engine's torch-compatible generator. Kept apart from
 * the schedulers so that they do not depend on the RNG implementation. */
#include "base/rng.h"
#include "sampling/scheduler.h"

dg_status dg_scheduler_rng_noise(void *rng, float *out, int64_t n) {
  if (!rng || !out || n < 0) return DG_STATUS_ERR_INVALID;
  dg_rng_randn((dg_rng *)rng, out, n);
  return DG_STATUS_OK;
}
