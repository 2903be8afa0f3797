/* safetensors files: mmapped read-only, tensors are zero-copy views.
 * The header is untrusted input: every offset, size, dtype and shape is
 * checked against the file before anything is exposed (ERR_FORMAT + message). */
#ifndef DG_WEIGHTS_SAFETENSORS_H
#define DG_WEIGHTS_SAFETENSORS_H

#include <stddef.h>

#include "tensor/tensor.h"

typedef struct dg_safetensors dg_safetensors;

/* Map a file.  Errors: ERR_IO (cannot open/map), ERR_FORMAT (bad header). */
dg_status dg_safetensors_open(const char *path, dg_safetensors **out, char *err, size_t errlen);
/* Parse a file already in memory (not copied: `data` must outlive the handle). */
dg_status dg_safetensors_parse(const void *data, size_t size, dg_safetensors **out, char *err,
                               size_t errlen);
void dg_safetensors_close(dg_safetensors *st);

size_t dg_safetensors_count(const dg_safetensors *st);
const dg_tensor *dg_safetensors_at(const dg_safetensors *st, size_t i); /* file order */
const dg_tensor *dg_safetensors_find(const dg_safetensors *st, const char *name); /* NULL if absent */
/* Value of a string entry of "__metadata__", or NULL. */
const char *dg_safetensors_metadata(const dg_safetensors *st, const char *key);

/* Write tensors (any dtype, at most 4 dims) to a new file; metadata_json is a JSON
 * object of string values or NULL.  Data are aligned as the format suggests. */
dg_status dg_safetensors_write(const char *path, const dg_tensor *const *tensors, size_t n,
                               const char *metadata_json, char *err, size_t errlen);

#endif
