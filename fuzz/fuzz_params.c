/* Fuzz the request parameter parser: JSON body -> validated parameters, as
 * POST /v1|/v2/{slug} does it.  The first byte picks the slug; the rest is the
 * body.  Invariants on success: every parameter is known, every number is in
 * its range, every enum value allowed, the seed resolved. */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pipelines/pipeline.h"
#include "pipelines/schema.h"

static const dg_param_spec *spec_of(const dg_pipeline *p, const char *name) {
  for (int i = 0; i < p->n_params; i++)
    if (strcmp(p->params[i].name, name) == 0) return &p->params[i];
  return NULL;
}

static void invariant(int ok, const char *what, const char *slug, const char *name) {
  if (ok) return;
  fprintf(stderr, "fuzz_params: invariant broken: %s (%s.%s)\n", what, slug, name);
  abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static int registered;
  if (!registered) {
    dg_pipeline_register(dg_pipeline_test_echo());
    registered = 1;
  }
  if (size < 1) return 0;
  size_t n = 0;
  const dg_pipeline *const *list = dg_pipeline_list(&n);
  const dg_pipeline *p = list[data[0] % n];
  json_error_t je;
  json_t *body = json_loadb((const char *)data + 1, size - 1, JSON_REJECT_DUPLICATES, &je);
  if (!body) return 0;
  json_t *out = NULL;
  int64_t seed = -1;
  char err[2048];
  err[0] = '\0';
  dg_status st = dg_schema_validate(p, body, &out, &seed, err, sizeof err);
  if (st != DG_STATUS_OK) {
    invariant(out == NULL && err[0] != '\0', "failure without a message", p->slug, "");
    json_decref(body);
    return 0;
  }
  const char *key;
  json_t *v;
  json_object_foreach(out, key, v) {
    const dg_param_spec *s = spec_of(p, key);
    if (!s) {
      invariant(strcmp(key, "base64") == 0 || strcmp(key, "output_format") == 0 || strcmp(key, "output_quality") == 0,
                "unknown parameter accepted", p->slug, key);
      continue;
    }
    switch (s->type) {
    case DG_PARAM_TYPE_INTEGER:
    case DG_PARAM_TYPE_NUMBER: {
      invariant(json_is_number(v), "number type", p->slug, key);
      double d = json_number_value(v);
      invariant(!s->has_min || d >= s->min, "below minimum", p->slug, key);
      invariant(!s->has_max || d <= s->max, "above maximum", p->slug, key);
      if (s->type == DG_PARAM_TYPE_INTEGER) invariant(json_is_integer(v), "integer type", p->slug, key);
      break;
    }
    case DG_PARAM_TYPE_ENUM: {
      int found = 0;
      for (int i = 0; s->enum_values[i]; i++)
        if (json_is_string(v) && strcmp(s->enum_values[i], json_string_value(v)) == 0) found = 1;
      invariant(found, "enum value", p->slug, key);
      break;
    }
    case DG_PARAM_TYPE_SEED:
      invariant(json_is_integer(v) && json_integer_value(v) >= 0 && json_integer_value(v) == seed, "seed resolved",
                p->slug, key);
      break;
    case DG_PARAM_TYPE_BOOLEAN: invariant(json_is_boolean(v), "boolean", p->slug, key); break;
    case DG_PARAM_TYPE_STRING:
    case DG_PARAM_TYPE_IMAGE: invariant(json_is_string(v), "string", p->slug, key); break;
    }
  }
  for (int i = 0; i < p->n_params; i++)
    if (p->params[i].required) invariant(json_object_get(out, p->params[i].name) != NULL, "required", p->slug,
                                         p->params[i].name);
  dg_output_opts oo;
  dg_schema_output_opts(out, &oo);
  invariant(oo.quality >= 0 && oo.quality <= 100 && oo.format != DG_IMAGE_FORMAT_UNKNOWN, "output options", p->slug,
            "output_*");
  char *txt = json_dumps(out, JSON_COMPACT);
  free(txt);
  json_decref(out);
  json_decref(body);
  return 0;
}
