/* A model's weights by name: a hash table over tensors from one or more
 * safetensors files, with the file's prefix removed and names mapped to the
 * canonical (diffusers) names the model code uses.  This is how one network
 * file loads both the single-file original checkpoint and the diffusers folder. */
#ifndef DG_WEIGHTS_WEIGHTS_H
#define DG_WEIGHTS_WEIGHTS_H

#include <stddef.h>

#include "weights/safetensors.h"

typedef struct dg_weights dg_weights;

/* Maps a file's tensor name (after prefix removal) to the canonical name.
 * Writes the result into out (size n) and returns 1, or returns 0 to skip. */
typedef int (*dg_key_map_fn)(const char *name, char *out, size_t n, void *ud);

dg_weights *dg_weights_new(void); /* NULL on OOM */
void dg_weights_free(dg_weights *w); /* does not close the files */

/* Add every tensor of `file` whose name starts with `prefix` ("" for all),
 * with the prefix removed and, if `map` is not NULL, renamed by it.
 * The file is borrowed: keep it open while the weights are used.
 * ERR_FORMAT if two tensors end up with the same name. */
dg_status dg_weights_add(dg_weights *w, const dg_safetensors *file, const char *prefix,
                         dg_key_map_fn map, void *ud, char *err, size_t errlen);

size_t dg_weights_count(const dg_weights *w);
const dg_tensor *dg_weights_get(const dg_weights *w, const char *name); /* NULL if absent */

/* Fetch a tensor that must exist with the given shape (ndim sizes; a size of
 * -1 matches anything) and a float dtype (F32/F16/BF16).  On failure: NULL,
 * and a message naming the tensor and what was expected in err. */
const dg_tensor *dg_weights_need(const dg_weights *w, const char *name, int ndim,
                                 const int64_t *shape, char *err, size_t errlen);

#endif
