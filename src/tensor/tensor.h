/* Tensors, dtypes, arenas and the compute engine (thread pool + kernel choice).
 *
 * A dg_tensor is a plain struct: dtype, up to 4 sizes (outermost first, as in
 * PyTorch: NCHW for images/latents, (B, L, C) for tokens) and a pointer to
 * contiguous row-major data.  Tensors never own their data: weights point into
 * a read-only mmap, activations into a per-inference arena. */
#ifndef DG_TENSOR_TENSOR_H
#define DG_TENSOR_TENSOR_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "base/status.h"

typedef enum dg_dtype {
  DG_DTYPE_F32,
  DG_DTYPE_F16,
  DG_DTYPE_BF16,
  DG_DTYPE_F64,
  DG_DTYPE_I64,
  DG_DTYPE_I32,
  DG_DTYPE_U8,
  DG_DTYPE_COUNT_
} dg_dtype;

size_t dg_dtype_size(dg_dtype t);      /* bytes per element */
const char *dg_dtype_name(dg_dtype t); /* "F32", "F16", ... as in safetensors */

/* Exact conversions (round to nearest even; NaN/Inf preserved). */
float dg_f16_to_f32(uint16_t h);
uint16_t dg_f32_to_f16(float f);
float dg_bf16_to_f32(uint16_t h);
uint16_t dg_f32_to_bf16(float f);
/* Element i of a float tensor of any float dtype, as float. */
float dg_load_f32(const void *data, dg_dtype t, int64_t i);

#define DG_MAX_DIMS 4

typedef struct dg_tensor {
  dg_dtype dtype;
  int ndim;                     /* 1..4 */
  int64_t shape[DG_MAX_DIMS];   /* outermost first; entries >= ndim are 1 */
  void *data;                   /* contiguous, row-major; not owned */
  const char *name;             /* optional (weights); not owned */
} dg_tensor;

int64_t dg_tensor_numel(const dg_tensor *t);
size_t dg_tensor_nbytes(const dg_tensor *t);
/* Fill a tensor header (no allocation). */
dg_tensor dg_tensor_make(dg_dtype dtype, int ndim, const int64_t *shape, void *data);
/* Same data, new shape with the same number of elements (ERR_SHAPE otherwise). */
dg_status dg_tensor_reshape(const dg_tensor *t, int ndim, const int64_t *shape, dg_tensor *out);
/* View of rows [start, start+count) of dimension 0. */
dg_tensor dg_tensor_narrow0(const dg_tensor *t, int64_t start, int64_t count);
/* "(2, 4, 64, 64) F32" into buf; returns buf. */
const char *dg_tensor_describe(const dg_tensor *t, char *buf, size_t n);

/* ---- Arena: bump allocation for per-inference activations ---------------- */
typedef struct dg_arena dg_arena;

dg_arena *dg_arena_new(size_t block_bytes); /* grows in blocks; NULL on OOM */
void dg_arena_free(dg_arena *a);
/* 64-byte aligned, uninitialised; NULL on OOM. */
void *dg_arena_alloc(dg_arena *a, size_t bytes);
/* Allocate a tensor (header and data) in the arena; NULL on OOM. */
dg_tensor *dg_arena_tensor(dg_arena *a, dg_dtype dtype, int ndim, const int64_t *shape);
/* Marks let a forward pass release its temporaries: reset to a saved mark. */
typedef struct dg_arena_mark { void *block; size_t used; } dg_arena_mark;
dg_arena_mark dg_arena_get_mark(const dg_arena *a);
void dg_arena_reset(dg_arena *a, dg_arena_mark m);
size_t dg_arena_peak_bytes(const dg_arena *a);

/* ---- Engine: thread pool + kernel selection ------------------------------ */
typedef enum dg_isa {
  DG_ISA_AUTO,    /* best the CPU supports */
  DG_ISA_REF,     /* plain reference kernels (slow, obviously correct) */
  DG_ISA_GENERIC, /* portable optimised C */
  DG_ISA_AVX2,    /* AVX2 + FMA + F16C */
  DG_ISA_AVX512   /* AVX-512 F/BW/DQ/VL (+BF16 when present) */
} dg_isa;

typedef enum dg_precision {
  DG_PRECISION_F32,  /* f32 arithmetic throughout */
  DG_PRECISION_BF16  /* GEMM-class ops round inputs to bf16, accumulate in f32 */
} dg_precision;

typedef struct dg_engine_params {
  int n_threads;          /* 0 = number of online CPUs */
  dg_isa isa;             /* DG_ISA_AUTO by default; env DG_ISA=ref|generic|avx2|avx512 overrides AUTO */
  dg_precision precision; /* DG_PRECISION_F32 by default */
} dg_engine_params;

typedef struct dg_engine dg_engine;

dg_engine_params dg_engine_params_default(void);
/* ERR_UNSUPPORTED if the requested ISA is not available on this CPU. */
dg_status dg_engine_new(const dg_engine_params *p, dg_engine **out);
void dg_engine_free(dg_engine *e);
dg_isa dg_engine_isa(const dg_engine *e);          /* resolved, never AUTO */
dg_precision dg_engine_precision(const dg_engine *e);
int dg_engine_threads(const dg_engine *e);
int dg_cpu_has_avx2(void);
int dg_cpu_has_avx512(void);
int dg_cpu_has_avx512bf16(void);
const char *dg_isa_name(dg_isa isa);

/* Op profile: with DG_PROFILE=1 in the environment when the engine is created,
 * every GEMM-class op (by shape and path) and every other op (by name) is timed
 * (wall) and the table, slowest first, is printed to stderr when the engine is
 * freed, or to f by this call.  Reset empties it. */
void dg_engine_profile_report(dg_engine *e, FILE *f);
void dg_engine_profile_reset(dg_engine *e);

/* Split [0, n) over the engine's threads (the caller is thread 0) and wait.
 * fn(arg, begin, end, thread_index); thread_index < dg_engine_threads(e).
 * Work is split into contiguous chunks, one per thread, deterministically. */
typedef void (*dg_range_fn)(void *arg, int64_t begin, int64_t end, int thread_index);
void dg_engine_parallel(dg_engine *e, int64_t n, dg_range_fn fn, void *arg);

#endif
