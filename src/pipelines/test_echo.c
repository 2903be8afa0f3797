/* "test-echo": a test-only pipeline (registered by `serve --test-pipelines`)
 * that exercises the queue: N steps with progress and an optional sleep per
 * step, honours cancel, fails on demand, and outputs images derived
 * deterministically from the input image and the seed. */
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "pipelines/schema.h"

static const char *const modes[] = {"xor", "invert", NULL};

static const dg_param_spec params[] = {
    {"image", DG_PARAM_TYPE_IMAGE, 1, NULL, 0, 0, 0, 0, NULL, "Input image"},
    {"prompt", DG_PARAM_TYPE_STRING, 0, "\"\"", 0, 0, 0, 0, NULL, "Ignored text"},
    {"steps", DG_PARAM_TYPE_INTEGER, 0, "3", 1, 1, 1, 50, NULL, "Number of steps"},
    {"sleep_ms", DG_PARAM_TYPE_INTEGER, 0, "0", 1, 1, 0, 10000, NULL, "Sleep per step (ms)"},
    {"fail", DG_PARAM_TYPE_BOOLEAN, 0, "false", 0, 0, 0, 0, NULL, "Fail on purpose"},
    {"fail_at_step", DG_PARAM_TYPE_INTEGER, 0, "0", 1, 1, 0, 50, NULL, "Step at which to fail (with fail=true)"},
    {"num_outputs", DG_PARAM_TYPE_INTEGER, 0, "1", 1, 1, 1, 4, NULL, "Number of output images"},
    {"strength", DG_PARAM_TYPE_NUMBER, 0, "0.5", 1, 1, 0, 1, NULL, "Unused number"},
    {"mode", DG_PARAM_TYPE_ENUM, 0, "\"xor\"", 0, 0, 0, 0, modes, "How outputs are derived"},
    {"seed", DG_PARAM_TYPE_SEED, 0, "-1", 0, 0, 0, 0, NULL, "Seed"},
};

static int get_int(json_t *p, const char *k, int def) {
  json_t *v = json_object_get(p, k);
  return json_is_integer(v) ? (int)json_integer_value(v) : def;
}

static void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

static dg_status check(const char *models_dir, char *missing, size_t n) {
  (void)models_dir;
  if (n) missing[0] = '\0';
  return DG_STATUS_OK;
}

static dg_status run(dg_job_io *io) {
  json_t *p = json_loads(io->params_json ? io->params_json : "{}", 0, NULL);
  if (!p) {
    snprintf(io->error, sizeof io->error, "test-echo: bad parameters");
    return DG_STATUS_ERR_INVALID;
  }
  int steps = get_int(p, "steps", 3), sleep = get_int(p, "sleep_ms", 0);
  int fail = json_is_true(json_object_get(p, "fail")), fail_at = get_int(p, "fail_at_step", 0);
  int nout = get_int(p, "num_outputs", 1);
  const char *mode = json_string_value(json_object_get(p, "mode"));
  int invert = mode && strcmp(mode, "invert") == 0;
  json_decref(p);
  const dg_image *in = NULL;
  for (int i = 0; i < io->n_images; i++)
    if (strcmp(io->images[i].name, "image") == 0) in = io->images[i].image;
  if (!in) {
    snprintf(io->error, sizeof io->error, "test-echo: no input image");
    return DG_STATUS_ERR_INVALID;
  }
  for (int s = 0; s <= steps; s++) {
    if (fail && s == fail_at) {
      snprintf(io->error, sizeof io->error, "test-echo: failure requested at step %d", s);
      return DG_STATUS_ERR_INTERNAL;
    }
    if (s == steps) break;
    for (int left = sleep; left > 0; left -= 10) {
      if (io->cancelled && io->cancelled(io->ud)) break;
      sleep_ms(left < 10 ? left : 10);
    }
    if (io->cancelled && io->cancelled(io->ud)) {
      snprintf(io->error, sizeof io->error, "cancelled");
      return DG_STATUS_ERR_CANCELLED;
    }
    if (io->progress) io->progress(io->ud, s + 1, steps);
  }
  for (int k = 0; k < nout && k < DG_JOB_MAX_OUTPUTS; k++) {
    dg_image *o = dg_image_new(in->width, in->height, in->channels);
    if (!o) {
      snprintf(io->error, sizeof io->error, "test-echo: out of memory");
      return DG_STATUS_ERR_NOMEM;
    }
    uint8_t key = (uint8_t)((((uint64_t)io->seed * 2654435761u) + (uint64_t)k * 40503u) >> 8);
    size_t n = (size_t)in->width * (size_t)in->height * (size_t)in->channels;
    for (size_t i = 0; i < n; i++) {
      uint8_t v = in->pixels[i];
      if (invert) v = (uint8_t)(255 - v);
      if (in->channels == 4 && i % 4 == 3)
        o->pixels[i] = v; /* keep alpha */
      else
        o->pixels[i] = (uint8_t)(v ^ key);
    }
    io->outputs[io->n_outputs++] = o;
  }
  return DG_STATUS_OK;
}

static const dg_pipeline test_echo = {
    "test-echo", "Test pipeline (echo)", params, (int)(sizeof params / sizeof params[0]), 1.0, check, run,
};

const dg_pipeline *dg_pipeline_test_echo(void) { return &test_echo; }
