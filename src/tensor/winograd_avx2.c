/* The Winograd transforms (winograd_body.h) compiled for AVX2. */
#include "tensor/winograd_int.h"

#define WG_TABLE wg_avx2
#include "tensor/winograd_body.h"

const dg__wg_kernels *dg__wg_avx2(void) { return &wg_avx2; }
