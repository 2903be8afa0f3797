/* The contract between the serving side and the models: one dg_pipeline per
 * public slug, each with its declarative parameter table (taken exactly from
 * the model's public documentation) and a run function.
 *
 * The server validates a request against the table (defaults applied, ranges
 * and enums checked), resolves the seed and the image parameters, queues the
 * job; a worker then calls run() with a dg_job_io. */
#ifndef DG_PIPELINES_PIPELINE_H
#define DG_PIPELINES_PIPELINE_H

#include <stddef.h>
#include <stdint.h>

#include "base/status.h"
#include "image/image.h"

typedef enum dg_param_type {
  DG_PARAM_TYPE_STRING,
  DG_PARAM_TYPE_INTEGER,
  DG_PARAM_TYPE_NUMBER,
  DG_PARAM_TYPE_BOOLEAN,
  DG_PARAM_TYPE_ENUM,   /* string restricted to enum_values */
  DG_PARAM_TYPE_IMAGE,  /* http(s) URL, data: URI or bare base64 */
  DG_PARAM_TYPE_SEED    /* integer; -1 or null = random, resolved at submit */
} dg_param_type;

typedef struct dg_param_spec {
  const char *name;
  dg_param_type type;
  int required;
  const char *default_json;         /* default as JSON text; NULL = no default (absent) */
  int has_min, has_max;
  double min, max;                  /* inclusive, for INTEGER/NUMBER */
  const char *const *enum_values;   /* NULL-terminated, for ENUM */
  const char *description;
} dg_param_spec;

/* Input image handed to a pipeline, by parameter name. */
typedef struct dg_job_image {
  const char *name;
  dg_image *image;
} dg_job_image;

#define DG_JOB_MAX_OUTPUTS 16

/* What a worker hands to run(); run() fills the outputs and, on failure, error. */
typedef struct dg_job_io {
  /* Inputs */
  const char *params_json;     /* validated parameters, defaults applied, seed resolved */
  int64_t seed;                /* the resolved seed */
  const dg_job_image *images;  /* decoded image parameters */
  int n_images;
  const char *models_dir;      /* where weights live (see README: models directory) */
  int n_threads;               /* compute threads for this job (0 = all) */
  /* Progress and cancel travel with the job, never in statics. */
  void (*progress)(void *ud, int step, int total_steps);
  int (*cancelled)(void *ud);  /* non-zero: stop and return DG_STATUS_ERR_CANCELLED */
  void *ud;
  /* Outputs */
  dg_image *outputs[DG_JOB_MAX_OUTPUTS]; /* owned by the io after run(); freed by the caller */
  int n_outputs;
  char error[512];             /* message for the client when run() fails */
} dg_job_io;

typedef struct dg_pipeline {
  const char *slug;
  const char *title;
  const dg_param_spec *params;
  int n_params;
  double default_cost;         /* credits per request unless the operator's price table says otherwise */
  /* Which weight files are missing under models_dir: OK when everything is
   * installed, ERR_UNAVAILABLE with a list of the missing paths in `missing`. */
  dg_status (*check)(const char *models_dir, char *missing, size_t n);
  dg_status (*run)(dg_job_io *io);
} dg_pipeline;

/* Registry of the public slugs (and test-only pipelines when enabled). */
const dg_pipeline *dg_pipeline_find(const char *slug);
const dg_pipeline *const *dg_pipeline_list(size_t *n);
/* Register an extra pipeline (tests); not thread-safe, call before serving. */
dg_status dg_pipeline_register(const dg_pipeline *p);

#endif
