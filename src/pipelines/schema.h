/* Validation of a request body against a pipeline's parameter table, and the
 * OpenAPI document generated from the same tables.
 *
 * Decisions (documented in README "Serving"):
 * - Unknown parameters are REJECTED with 400 naming them and the accepted
 *   names, so a typo never silently falls back to a default.
 * - Every slug also accepts the server-level output options `base64`
 *   (boolean, default false), `output_format` (png|jpg|jpeg|webp) and
 *   `output_quality` (0..100), unless its own table defines them.
 * - INTEGER parameters accept JSON integers, or reals with an integral value;
 *   NUMBER parameters accept integers and reals; nothing is coerced from
 *   strings.  An INTEGER parameter with enum_values set is restricted to those
 *   integers (used for img_width/img_height: 512 or 768).
 * - SEED: an integer in 0..2^53-1, or -1 / null meaning "random": resolved
 *   here to a fresh random value in 0..2^32-1 from the OS generator.
 * - An explicit JSON null for a non-seed optional parameter means "use the
 *   default".
 */
#ifndef DG_PIPELINES_SCHEMA_H
#define DG_PIPELINES_SCHEMA_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "pipelines/pipeline.h"

#define DG_SEED_MAX 9007199254740991.0 /* 2^53 - 1 */

/* Validate `body` (a JSON object) for pipeline `p`.  On success *out is a new
 * object holding every parameter with a value (defaults applied, seed
 * resolved) and *seed the seed used (0 if the table has no seed).  On failure
 * returns ERR_INVALID with a message for the client in err. */
dg_status dg_schema_validate(const dg_pipeline *p, json_t *body, json_t **out, int64_t *seed,
                             char *err, size_t errlen);

/* The OpenAPI 3 document for every registered pipeline (new reference). */
json_t *dg_schema_openapi(const char *server_url);

/* The server-level output options derived from validated params. */
typedef struct dg_output_opts {
  dg_image_format format;
  int quality;
  int base64;
} dg_output_opts;
void dg_schema_output_opts(const json_t *params, dg_output_opts *o);

/* Internal, for the slug files: check that every path of the NULL-terminated
 * `files` (relative to models_dir) exists; list the missing ones in `missing`
 * (space separated).  Returns the number missing. */
int dg__pipeline_missing_files(const char *models_dir, const char *const *files, char *missing, size_t n);

/* The test-only pipeline (registered by `serve --test-pipelines`). */
const dg_pipeline *dg_pipeline_test_echo(void);

#endif
