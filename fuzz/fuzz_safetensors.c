/* Fuzz the safetensors header parser: parse from memory, then touch the first
 * and last byte of every tensor and every lookup path (ASan catches any view
 * that escapes the buffer). */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "weights/safetensors.h"
#include "weights/weights.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char err[256];
  dg_safetensors *st = NULL;
  if (dg_safetensors_parse(data, size, &st, err, sizeof err) != DG_STATUS_OK) return 0;
  volatile unsigned sink = 0;
  size_t n = dg_safetensors_count(st);
  for (size_t i = 0; i < n; i++) {
    const dg_tensor *t = dg_safetensors_at(st, i);
    size_t es = t->dtype == DG_DTYPE_F64 || t->dtype == DG_DTYPE_I64 ? 8
                : t->dtype == DG_DTYPE_F32 || t->dtype == DG_DTYPE_I32 ? 4
                : t->dtype == DG_DTYPE_U8 ? 1 : 2;
    uint64_t nb = es;
    for (int d = 0; d < t->ndim; d++) nb *= (uint64_t)t->shape[d];
    if (nb) {
      const uint8_t *p = t->data;
      sink += p[0];
      sink += p[nb - 1];
    }
    if (dg_safetensors_find(st, t->name) == NULL) __builtin_trap();
  }
  sink += dg_safetensors_metadata(st, "format") != NULL;
  dg_weights *w = dg_weights_new();
  if (w) {
    dg_weights_add(w, st, "", NULL, NULL, err, sizeof err);
    if (n) {
      int64_t shape[4] = {-1, -1, -1, -1};
      const dg_tensor *t = dg_safetensors_at(st, 0);
      dg_weights_need(w, t->name, t->ndim, shape, err, sizeof err);
    }
    dg_weights_free(w);
  }
  (void)sink;
  dg_safetensors_close(st);
  return 0;
}
