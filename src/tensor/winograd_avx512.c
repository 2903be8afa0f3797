/* The Winograd transforms (winograd_body.h) compiled for AVX-512. */
#include "tensor/winograd_int.h"

#define WG_TABLE wg_avx512
#include "tensor/winograd_body.h"

const dg__wg_kernels *dg__wg_avx512(void) { return &wg_avx512; }
