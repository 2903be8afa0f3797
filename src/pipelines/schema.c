/* Request validation against the declarative parameter tables, and the
 * OpenAPI document generated from them.  See schema.h for the decisions. */
#include "pipelines/schema.h"

#include <math.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <string.h>

static const char *const output_formats[] = {"png", "jpg", "jpeg", "webp", NULL};

/* Server-level output options every slug accepts unless it defines them. */
static const dg_param_spec common_params[] = {
    {"base64", DG_PARAM_TYPE_BOOLEAN, 0, "false", 0, 0, 0, 0, NULL,
     "Return the image(s) base64-encoded in JSON instead of raw bytes / media URLs (server option)."},
    {"output_format", DG_PARAM_TYPE_ENUM, 0, "\"png\"", 0, 0, 0, 0, output_formats,
     "Encoding of the output images (server option)."},
    {"output_quality", DG_PARAM_TYPE_INTEGER, 0, "95", 1, 1, 0, 100, NULL,
     "JPEG/WebP quality of the output images, 0..100 (server option)."},
};
#define N_COMMON ((int)(sizeof common_params / sizeof common_params[0]))

static const dg_param_spec *find_own(const dg_pipeline *p, const char *name) {
  for (int i = 0; i < p->n_params; i++)
    if (strcmp(p->params[i].name, name) == 0) return &p->params[i];
  return NULL;
}

static const dg_param_spec *find_spec(const dg_pipeline *p, const char *name) {
  const dg_param_spec *s = find_own(p, name);
  if (s) return s;
  for (int i = 0; i < N_COMMON; i++)
    if (strcmp(common_params[i].name, name) == 0) return &common_params[i];
  return NULL;
}

/* "%g" without the exponent surprises for the ranges we print. */
static void fmt_num(char *b, size_t n, double v) {
  if (v == floor(v) && fabs(v) < 1e15)
    snprintf(b, n, "%.0f", v);
  else
    snprintf(b, n, "%g", v);
}

static const char *json_kind(const json_t *v) {
  switch (json_typeof(v)) {
  case JSON_OBJECT: return "an object";
  case JSON_ARRAY: return "an array";
  case JSON_STRING: return "a string";
  case JSON_INTEGER: return "an integer";
  case JSON_REAL: return "a number";
  case JSON_TRUE:
  case JSON_FALSE: return "a boolean";
  case JSON_NULL: return "null";
  }
  return "?";
}

/* The allowed values of a spec, for messages. */
static void describe(const dg_param_spec *s, char *b, size_t n) {
  char lo[32], hi[32];
  size_t off = 0;
  fmt_num(lo, sizeof lo, s->min);
  fmt_num(hi, sizeof hi, s->max);
  switch (s->type) {
  case DG_PARAM_TYPE_ENUM:
  case DG_PARAM_TYPE_INTEGER:
    if (s->enum_values) {
      off = (size_t)snprintf(b, n, "%s one of: ", s->type == DG_PARAM_TYPE_ENUM ? "a string," : "an integer,");
      for (int i = 0; s->enum_values[i] && off < n; i++)
        off += (size_t)snprintf(b + off, n - off, s->type == DG_PARAM_TYPE_ENUM ? "%s\"%s\"" : "%s%s",
                                i ? ", " : "", s->enum_values[i]);
      return;
    }
    /* fallthrough */
  case DG_PARAM_TYPE_NUMBER: {
    const char *what = s->type == DG_PARAM_TYPE_NUMBER ? "a number" : "an integer";
    if (s->has_min && s->has_max)
      snprintf(b, n, "%s in the range %s to %s", what, lo, hi);
    else if (s->has_min)
      snprintf(b, n, "%s >= %s", what, lo);
    else if (s->has_max)
      snprintf(b, n, "%s <= %s", what, hi);
    else
      snprintf(b, n, "%s", what);
    return;
  }
  case DG_PARAM_TYPE_STRING: snprintf(b, n, "a string"); return;
  case DG_PARAM_TYPE_BOOLEAN: snprintf(b, n, "a boolean (true or false)"); return;
  case DG_PARAM_TYPE_IMAGE:
    snprintf(b, n, "an image: an http(s) URL, a data: URI or base64-encoded PNG/JPEG/WebP bytes");
    return;
  case DG_PARAM_TYPE_SEED:
    snprintf(b, n, "an integer in the range 0 to 9007199254740991, or -1 / null for a random seed");
    return;
  }
  snprintf(b, n, "?");
}

static void got_text(const json_t *v, char *b, size_t n) {
  if (json_is_integer(v))
    snprintf(b, n, "%lld", (long long)json_integer_value(v));
  else if (json_is_real(v))
    snprintf(b, n, "%g", json_real_value(v));
  else if (json_is_string(v)) {
    const char *s = json_string_value(v);
    size_t len = strlen(s);
    if (len > 40)
      snprintf(b, n, "a string of %zu characters", len);
    else
      snprintf(b, n, "\"%s\"", s);
  } else
    snprintf(b, n, "%s", json_kind(v));
}

static int bad(const dg_param_spec *s, const json_t *v, char *err, size_t errlen) {
  char allowed[512], got[96];
  describe(s, allowed, sizeof allowed);
  got_text(v, got, sizeof got);
  snprintf(err, errlen, "parameter '%s' must be %s (got %s)", s->name, allowed, got);
  return 0;
}

static int in_range(const dg_param_spec *s, double v) {
  if (isnan(v) || isinf(v)) return 0;
  if (s->has_min && v < s->min) return 0;
  if (s->has_max && v > s->max) return 0;
  return 1;
}

static int64_t random_seed(void) {
  unsigned char b[4] = {0, 0, 0, 0};
  if (RAND_bytes(b, sizeof b) != 1) {
    /* extremely unlikely; fall back to something non-constant */
    return (int64_t)((uintptr_t)b & 0xffffffffu);
  }
  return (int64_t)(((uint32_t)b[0] << 24) | ((uint32_t)b[1] << 16) | ((uint32_t)b[2] << 8) | b[3]);
}

/* Check one present value; on success *norm is a new reference to store. */
static int check_value(const dg_param_spec *s, json_t *v, json_t **norm, int64_t *seed, char *err,
                       size_t errlen) {
  *norm = NULL;
  switch (s->type) {
  case DG_PARAM_TYPE_STRING:
    if (!json_is_string(v)) return bad(s, v, err, errlen);
    *norm = json_incref(v);
    return 1;
  case DG_PARAM_TYPE_IMAGE:
    if (!json_is_string(v) || json_string_length(v) == 0) return bad(s, v, err, errlen);
    *norm = json_incref(v);
    return 1;
  case DG_PARAM_TYPE_BOOLEAN:
    if (!json_is_boolean(v)) return bad(s, v, err, errlen);
    *norm = json_incref(v);
    return 1;
  case DG_PARAM_TYPE_ENUM:
    if (!json_is_string(v)) return bad(s, v, err, errlen);
    for (int i = 0; s->enum_values && s->enum_values[i]; i++)
      if (strcmp(s->enum_values[i], json_string_value(v)) == 0) {
        *norm = json_incref(v);
        return 1;
      }
    return bad(s, v, err, errlen);
  case DG_PARAM_TYPE_NUMBER: {
    if (!json_is_number(v)) return bad(s, v, err, errlen);
    double d = json_number_value(v);
    if (!in_range(s, d)) return bad(s, v, err, errlen);
    *norm = json_real(d);
    return 1;
  }
  case DG_PARAM_TYPE_INTEGER: {
    double d;
    if (json_is_integer(v))
      d = (double)json_integer_value(v);
    else if (json_is_real(v) && json_real_value(v) == floor(json_real_value(v)) &&
             fabs(json_real_value(v)) < 9e15)
      d = json_real_value(v);
    else
      return bad(s, v, err, errlen);
    if (!in_range(s, d)) return bad(s, v, err, errlen);
    if (s->enum_values) {
      int ok = 0;
      for (int i = 0; s->enum_values[i]; i++)
        if (atof(s->enum_values[i]) == d) ok = 1;
      if (!ok) return bad(s, v, err, errlen);
    }
    *norm = json_integer((json_int_t)d);
    return 1;
  }
  case DG_PARAM_TYPE_SEED: {
    double d;
    if (json_is_null(v)) {
      d = -1;
    } else if (json_is_integer(v)) {
      d = (double)json_integer_value(v);
      if (json_integer_value(v) < -1 || json_integer_value(v) > (json_int_t)DG_SEED_MAX)
        return bad(s, v, err, errlen);
    } else if (json_is_real(v) && json_real_value(v) == floor(json_real_value(v)) &&
               json_real_value(v) >= -1 && json_real_value(v) <= DG_SEED_MAX) {
      d = json_real_value(v);
    } else {
      return bad(s, v, err, errlen);
    }
    int64_t sv = d < 0 ? random_seed() : (int64_t)d;
    *seed = sv;
    *norm = json_integer((json_int_t)sv);
    return 1;
  }
  }
  return bad(s, v, err, errlen);
}

static int validate_spec(const dg_param_spec *s, json_t *body, json_t *out, int64_t *seed, char *err,
                         size_t errlen) {
  json_t *v = json_object_get(body, s->name);
  json_t *def = NULL;
  if (!v || (json_is_null(v) && s->type != DG_PARAM_TYPE_SEED)) {
    if (s->required) {
      char allowed[512];
      describe(s, allowed, sizeof allowed);
      snprintf(err, errlen, "missing required parameter '%s' (%s)", s->name, allowed);
      return 0;
    }
    if (!s->default_json) return 1;
    def = json_loads(s->default_json, JSON_DECODE_ANY, NULL);
    if (!def) {
      snprintf(err, errlen, "internal error: bad default for '%s'", s->name);
      return 0;
    }
    if (json_is_null(def) && s->type != DG_PARAM_TYPE_SEED) {
      json_decref(def);
      return 1;
    }
    v = def;
  }
  json_t *norm = NULL;
  int ok = check_value(s, v, &norm, seed, err, errlen);
  if (ok) json_object_set_new(out, s->name, norm);
  json_decref(def);
  return ok;
}

dg_status dg_schema_validate(const dg_pipeline *p, json_t *body, json_t **out, int64_t *seed,
                             char *err, size_t errlen) {
  *out = NULL;
  *seed = 0;
  if (!json_is_object(body)) {
    snprintf(err, errlen, "the request body must be a JSON object of parameters (got %s)",
             body ? json_kind(body) : "nothing");
    return DG_STATUS_ERR_INVALID;
  }
  /* Unknown parameters are rejected, naming the accepted ones. */
  const char *key;
  json_t *val;
  json_object_foreach(body, key, val) {
    if (find_spec(p, key)) continue;
    size_t off = (size_t)snprintf(err, errlen, "unknown parameter '%.64s' for %s (accepted: ", key, p->slug);
    for (int i = 0; i < p->n_params && off < errlen; i++)
      off += (size_t)snprintf(err + off, errlen - off, "%s%s", i ? ", " : "", p->params[i].name);
    for (int i = 0; i < N_COMMON && off < errlen; i++)
      if (!find_own(p, common_params[i].name))
        off += (size_t)snprintf(err + off, errlen - off, ", %s", common_params[i].name);
    if (off < errlen) snprintf(err + off, errlen - off, ")");
    return DG_STATUS_ERR_INVALID;
  }
  json_t *o = json_object();
  if (!o) return DG_STATUS_ERR_NOMEM;
  for (int i = 0; i < p->n_params; i++)
    if (!validate_spec(&p->params[i], body, o, seed, err, errlen)) goto fail;
  for (int i = 0; i < N_COMMON; i++)
    if (!find_own(p, common_params[i].name) && !validate_spec(&common_params[i], body, o, seed, err, errlen))
      goto fail;
  *out = o;
  return DG_STATUS_OK;
fail:
  json_decref(o);
  return DG_STATUS_ERR_INVALID;
}

void dg_schema_output_opts(const json_t *params, dg_output_opts *o) {
  const char *f = json_string_value(json_object_get(params, "output_format"));
  o->format = f ? dg_image_format_from_name(f) : DG_IMAGE_FORMAT_PNG;
  if (o->format == DG_IMAGE_FORMAT_UNKNOWN) o->format = DG_IMAGE_FORMAT_PNG;
  json_t *q = json_object_get(params, "output_quality");
  o->quality = json_is_integer(q) ? (int)json_integer_value(q) : 95;
  o->base64 = json_is_true(json_object_get(params, "base64"));
}

/* ---- OpenAPI ------------------------------------------------------------ */

static json_t *param_schema(const dg_param_spec *s) {
  json_t *o = json_object();
  switch (s->type) {
  case DG_PARAM_TYPE_STRING: json_object_set_new(o, "type", json_string("string")); break;
  case DG_PARAM_TYPE_IMAGE:
    json_object_set_new(o, "type", json_string("string"));
    json_object_set_new(o, "format", json_string("uri"));
    break;
  case DG_PARAM_TYPE_BOOLEAN: json_object_set_new(o, "type", json_string("boolean")); break;
  case DG_PARAM_TYPE_NUMBER: json_object_set_new(o, "type", json_string("number")); break;
  case DG_PARAM_TYPE_INTEGER: json_object_set_new(o, "type", json_string("integer")); break;
  case DG_PARAM_TYPE_SEED:
    json_object_set_new(o, "type", json_string("integer"));
    json_object_set_new(o, "nullable", json_true());
    json_object_set_new(o, "minimum", json_integer(-1));
    json_object_set_new(o, "maximum", json_real(DG_SEED_MAX));
    break;
  case DG_PARAM_TYPE_ENUM: json_object_set_new(o, "type", json_string("string")); break;
  }
  if (s->type == DG_PARAM_TYPE_NUMBER || s->type == DG_PARAM_TYPE_INTEGER) {
    if (s->has_min) json_object_set_new(o, "minimum", json_real(s->min));
    if (s->has_max) json_object_set_new(o, "maximum", json_real(s->max));
  }
  if (s->enum_values) {
    json_t *e = json_array();
    for (int i = 0; s->enum_values[i]; i++)
      json_array_append_new(e, s->type == DG_PARAM_TYPE_INTEGER ? json_integer(atoi(s->enum_values[i]))
                                                                 : json_string(s->enum_values[i]));
    json_object_set_new(o, "enum", e);
  }
  if (s->default_json) {
    json_t *d = json_loads(s->default_json, JSON_DECODE_ANY, NULL);
    if (json_is_null(d)) json_object_set_new(o, "nullable", json_true());
    if (d) json_object_set_new(o, "default", d);
  }
  if (s->description) json_object_set_new(o, "description", json_string(s->description));
  return o;
}

static json_t *body_schema(const dg_pipeline *p) {
  json_t *props = json_object(), *req = json_array();
  for (int i = 0; i < p->n_params; i++) {
    json_object_set_new(props, p->params[i].name, param_schema(&p->params[i]));
    if (p->params[i].required) json_array_append_new(req, json_string(p->params[i].name));
  }
  for (int i = 0; i < N_COMMON; i++)
    if (!find_own(p, common_params[i].name))
      json_object_set_new(props, common_params[i].name, param_schema(&common_params[i]));
  json_t *s = json_pack("{s:s, s:o, s:b}", "type", "object", "properties", props, "additionalProperties", 0);
  if (json_array_size(req))
    json_object_set_new(s, "required", req);
  else
    json_decref(req);
  return s;
}

static json_t *ref(const char *name) {
  char b[128];
  snprintf(b, sizeof b, "#/components/schemas/%s", name);
  return json_pack("{s:s}", "$ref", b);
}

static json_t *resp(const char *desc, const char *schema) {
  json_t *r = json_pack("{s:s}", "description", desc);
  if (schema)
    json_object_set_new(r, "content", json_pack("{s:{s:o}}", "application/json", "schema", ref(schema)));
  return r;
}

static json_t *error_responses(json_t *r) {
  static const char *const codes[][2] = {
      {"400", "Invalid parameters or request format"}, {"401", "Missing or invalid API key"},
      {"403", "The key may not use this model"},      {"404", "Unknown model or endpoint"},
      {"406", "Insufficient credits"},                {"429", "Rate limited"},
      {"500", "Server error"},                        {"502", "Model weights not installed"},
  };
  for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++)
    json_object_set_new(r, codes[i][0], resp(codes[i][1], "Error"));
  return r;
}

json_t *dg_schema_openapi(const char *server_url) {
  json_t *paths = json_object(), *schemas = json_object();
  size_t n = 0;
  const dg_pipeline *const *list = dg_pipeline_list(&n);
  json_object_set_new(schemas, "Error",
                      json_pack("{s:s, s:{s:{s:s}, s:{s:s}, s:{s:s}}, s:[s]}", "type", "object", "properties",
                                "error", "type", "string", "code", "type", "string", "retryable", "type",
                                "boolean", "required", "error"));
  json_object_set_new(
      schemas, "Submitted",
      json_pack("{s:s, s:{s:{s:s}, s:{s:s}, s:{s:s,s:s}, s:{s:s,s:s}, s:{s:s,s:s}}}", "type", "object",
                "properties", "request_id", "type", "string", "status", "type", "string", "poll_url", "type",
                "string", "format", "uri", "status_url", "type", "string", "format", "uri", "response_url",
                "type", "string", "format", "uri"));
  json_object_set_new(
      schemas, "Status",
      json_pack("{s:s, s:{s:{s:s}, s:{s:s, s:[s,s,s,s]}, s:{s:s}, s:{s:s}, s:{s:s}, s:{s:s}, s:{s:s}, "
                "s:{s:s}, s:{s:s}}}",
                "type", "object", "properties", "request_id", "type", "string", "status", "type", "string",
                "enum", "QUEUED", "PROCESSING", "COMPLETED", "FAILED", "queue_position", "type", "integer",
                "progress", "type", "number", "step", "type", "integer", "total_steps", "type", "integer",
                "eta_s", "type", "number", "expires_at", "type", "string", "error", "type", "string"));
  json_object_set_new(schemas, "Result",
                      json_pack("{s:s, s:{s:{s:s}, s:{s:s}, s:{}, s:{s:s}, s:{s:s}, s:{s:s}}}", "type",
                                "object", "properties", "request_id", "type", "string", "status", "type",
                                "string", "output", "seed", "type", "integer", "metrics", "type", "object",
                                "error", "type", "string"));
  for (size_t i = 0; i < n; i++) {
    const dg_pipeline *p = list[i];
    char path[160];
    json_object_set_new(schemas, p->slug, body_schema(p));
    json_t *body = json_pack("{s:b, s:{s:{s:o}}}", "required", 1, "content", "application/json", "schema",
                             ref(p->slug));
    snprintf(path, sizeof path, "/v1/%s", p->slug);
    json_t *r1 = error_responses(json_object());
    json_object_set_new(r1, "200", json_pack("{s:s}", "description",
                                             "The image bytes (image/png|jpeg|webp), or JSON with base64"));
    json_object_set_new(r1, "504", resp("Timed out (the job is not lost: see request_id)", "Error"));
    json_object_set_new(paths, path,
                        json_pack("{s:{s:s, s:s, s:O, s:o}}", "post", "summary", p->title, "operationId", path + 1,
                                  "requestBody", body, "responses", r1));
    snprintf(path, sizeof path, "/v2/%s", p->slug);
    json_t *r2 = error_responses(json_object());
    json_object_set_new(r2, "200", resp("Queued", "Submitted"));
    json_object_set_new(paths, path,
                        json_pack("{s:{s:s, s:s, s:O, s:o}}", "post", "summary", p->title, "operationId",
                                  path + 1, "requestBody", body, "responses", r2));
    snprintf(path, sizeof path, "/v2/%s/validate", p->slug);
    json_t *r3 = error_responses(json_object());
    json_object_set_new(r3, "200", json_pack("{s:s}", "description",
                                             "{\"model\", \"params\" (defaults applied), \"cost\"}: nothing queued"));
    json_object_set_new(paths, path,
                        json_pack("{s:{s:s, s:s, s:o, s:o}}", "post", "summary", "Validate parameters only",
                                  "operationId", path + 1, "requestBody", body, "responses", r3));
  }
  json_t *idp = json_pack("[{s:s, s:s, s:b, s:{s:s}}]", "name", "id", "in", "path", "required", 1, "schema",
                          "type", "string");
  json_object_set_new(
      paths, "/v2/requests/{id}/status",
      json_pack("{s:{s:s, s:O, s:{s:o, s:o, s:o}}}", "get", "summary", "Status of a request", "parameters", idp,
                "responses", "200", resp("QUEUED, PROCESSING or COMPLETED", "Status"), "404",
                resp("Unknown or expired request", "Error"), "422", resp("The request FAILED", "Status")));
  json_object_set_new(
      paths, "/v2/requests/{id}",
      json_pack("{s:{s:s, s:O, s:{s:o, s:o, s:o, s:o}}}", "get", "summary", "Final result of a request",
                "parameters", idp, "responses", "200", resp("COMPLETED", "Result"), "202",
                resp("Not finished yet: the status body", "Status"), "404",
                resp("Unknown or expired request", "Error"), "422", resp("The request FAILED", "Result")));
  json_object_set_new(paths, "/v2/requests/{id}/cancel",
                      json_pack("{s:{s:s, s:O, s:{s:o, s:o}}}", "post", "summary", "Cancel a request",
                                "parameters", idp, "responses", "200", resp("Cancel accepted", "Status"), "404",
                                resp("Unknown or expired request", "Error")));
  json_object_set_new(
      paths, "/v2/requests/{id}/events",
      json_pack("{s:{s:s, s:O, s:{s:{s:s, s:{s:{}}}, s:o}}}", "get", "summary",
                "Status changes as server-sent events (event: status, data: the status body)", "parameters", idp,
                "responses", "200", "description", "text/event-stream until COMPLETED or FAILED", "content",
                "text/event-stream", "404", resp("Unknown or expired request", "Error")));
  json_object_set_new(paths, "/v2/media/{name}",
                      json_pack("{s:{s:s, s:[{s:s, s:s, s:b, s:{s:s}}], s:{s:{s:s}, s:o}}}", "get", "summary",
                                "An output image (unguessable URL, no key needed; expires with the result)",
                                "parameters", "name", "name", "in", "path", "required", 1, "schema", "type", "string",
                                "responses", "200", "description", "image/png, image/jpeg or image/webp", "404",
                                resp("Unknown or expired media", "Error")));
  json_object_set_new(paths, "/healthz",
                      json_pack("{s:{s:s, s:{s:{s:s}}}}", "get", "summary", "Health", "responses", "200",
                                "description", "ok"));
  json_object_set_new(paths, "/metrics",
                      json_pack("{s:{s:s, s:{s:{s:s}}}}", "get", "summary", "Prometheus metrics", "responses", "200",
                                "description", "text/plain; version=0.0.4"));
  json_decref(idp);
  json_t *doc = json_pack(
      "{s:s, s:{s:s, s:s}, s:o, s:{s:o, s:{s:{s:s, s:s, s:s}, s:{s:s, s:s}}}, s:[{s:[]}, {s:[]}]}", "openapi",
      "3.0.3", "info", "title", "daguerre image generation API", "version", "1.0", "paths", paths, "components",
      "schemas", schemas, "securitySchemes", "apiKey", "type", "apiKey", "in", "header", "name", "x-api-key",
      "bearer", "type", "http", "scheme", "bearer", "security", "apiKey", "bearer");
  if (doc && server_url) json_object_set_new(doc, "servers", json_pack("[{s:s}]", "url", server_url));
  return doc;
}
