/* AVX2 row kernels of the memory-bound ops (see ops_internal.h).
 * Placeholder until the vector versions land: the generic table. */
#include "tensor/ops_internal.h"

const dg__vec_kernels *dg__vec_avx2(void) { return NULL; }
