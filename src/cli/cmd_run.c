/* daguerre run SLUG k=v... [-o out.png]: run a model locally, in this process,
 * with the same parameter table (defaults, ranges, enums) as the server. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/log.h"
#include "cli/commands.h"
#include "client/client.h"
#include "image/image.h"
#include "pipelines/pipeline.h"
#include "pipelines/schema.h"

enum { RUN_OK = 0, RUN_USAGE = 1, RUN_FAILED = 3, RUN_UNAVAILABLE = 6 };

static void usage(FILE *f) {
  fprintf(f,
          "usage: daguerre run SLUG k=v... [-o OUT] [options]\n"
          "\n"
          "Runs a model locally with the server's parameter rules (defaults, ranges).\n"
          "  k=v          a parameter (numbers/true/false/null typed, else a string)\n"
          "  k:=JSON      a raw JSON value\n"
          "  k=@FILE      an image file (sent as base64)\n"
          "  -o OUT       output path or pattern ({n} = 1-based index, {ext}); default\n"
          "               out.{ext} (out-N.{ext} for several images)\n"
          "  --models-dir DIR  model weights (default $DAGUERRE_MODELS or ./models)\n"
          "  --threads N  compute threads (default: all cores)\n"
          "  --bf16       bf16 GEMM precision (faster, near-identical images)\n"
          "  --quiet      no progress bar\n"
          "exit codes: 0 ok, 1 usage or invalid parameters, 3 the run failed,\n"
          "            6 the model's weights are not installed\n");
}

typedef struct progress_state {
  int quiet;
  struct timespec start;
} progress_state;

static double seconds_since(const struct timespec *t0) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)(t.tv_sec - t0->tv_sec) + (double)(t.tv_nsec - t0->tv_nsec) * 1e-9;
}

static void on_progress(void *ud, int step, int total) {
  progress_state *ps = ud;
  if (ps->quiet || total <= 0) return;
  double el = seconds_since(&ps->start);
  int width = 30, fill = (int)((double)width * step / total);
  char bar[64];
  for (int i = 0; i < width; i++) bar[i] = i < fill ? '#' : '.';
  bar[width] = '\0';
  double per = step > 0 ? el / step : 0;
  fprintf(stderr, "\r[%s] %d/%d steps  %.2f s/step  %.1f s elapsed", bar, step, total, per, el);
  if (step == total) fputc('\n', stderr);
  fflush(stderr);
}

int dg_cmd_run(int argc, char **argv) {
  const char *slug = NULL, *out_pattern = "out.{ext}";
  const char *models_dir = getenv("DAGUERRE_MODELS");
  int threads = 0, quiet = 0;
  char err[1024];
  json_t *body = json_object();
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      usage(stdout);
      json_decref(body);
      return RUN_OK;
    } else if (strcmp(a, "-o") == 0 && i + 1 < argc) {
      out_pattern = argv[++i];
    } else if (strcmp(a, "--models-dir") == 0 && i + 1 < argc) {
      models_dir = argv[++i];
    } else if (strcmp(a, "--threads") == 0 && i + 1 < argc) {
      threads = atoi(argv[++i]);
    } else if (strcmp(a, "--bf16") == 0) {
      setenv("DG_PRECISION", "bf16", 1);
    } else if (strcmp(a, "--quiet") == 0) {
      quiet = 1;
    } else if (a[0] == '-') {
      fprintf(stderr, "daguerre run: unknown option %s\n", a);
      usage(stderr);
      json_decref(body);
      return RUN_USAGE;
    } else if (!slug) {
      slug = a;
    } else if (dg_client_parse_param(a, body, err, sizeof err) != DG_STATUS_OK) {
      fprintf(stderr, "daguerre run: %s\n", err);
      json_decref(body);
      return RUN_USAGE;
    }
  }
  if (!models_dir) models_dir = "models";
  if (!slug) {
    usage(stderr);
    json_decref(body);
    return RUN_USAGE;
  }
  const dg_pipeline *p = dg_pipeline_find(slug);
  if (!p) {
    fprintf(stderr, "daguerre run: unknown model '%s' (see 'daguerre models')\n", slug);
    json_decref(body);
    return RUN_USAGE;
  }
  json_t *params = NULL;
  int64_t seed = 0;
  if (dg_schema_validate(p, body, &params, &seed, err, sizeof err) != DG_STATUS_OK) {
    fprintf(stderr, "daguerre run: %s\n", err);
    json_decref(body);
    return RUN_USAGE;
  }
  json_decref(body);
  char missing[4096] = "";
  if (p->check && p->check(models_dir, missing, sizeof missing) != DG_STATUS_OK) {
    fprintf(stderr, "daguerre run: %s is not installed; missing: %s\n", slug, missing);
    json_decref(params);
    return RUN_UNAVAILABLE;
  }

  /* Decode the image parameters. */
  dg_job_image images[8];
  int n_images = 0, rc = RUN_OK;
  dg_fetch_limits fl = dg_fetch_limits_default();
  dg_image_limits il = dg_image_limits_default();
  for (int k = 0; k < p->n_params && n_images < 8; k++) {
    if (p->params[k].type != DG_PARAM_TYPE_IMAGE) continue;
    json_t *v = json_object_get(params, p->params[k].name);
    if (!json_is_string(v)) continue;
    dg_image *img = NULL;
    if (dg_image_load_param(json_string_value(v), &fl, &il, NULL, NULL, &img, err, sizeof err) !=
        DG_STATUS_OK) {
      fprintf(stderr, "daguerre run: %s: %s\n", p->params[k].name, err);
      rc = RUN_USAGE;
      goto done;
    }
    images[n_images].name = p->params[k].name;
    images[n_images].image = img;
    n_images++;
  }

  char *pjson = json_dumps(params, JSON_COMPACT);
  progress_state ps = {quiet, {0, 0}};
  clock_gettime(CLOCK_MONOTONIC, &ps.start);
  dg_job_io io;
  memset(&io, 0, sizeof io);
  io.params_json = pjson;
  io.seed = seed;
  io.images = images;
  io.n_images = n_images;
  io.models_dir = models_dir;
  io.n_threads = threads;
  io.progress = on_progress;
  io.ud = &ps;
  if (!quiet) fprintf(stderr, "%s: seed %lld\n", slug, (long long)seed);
  dg_status st = p->run(&io);
  free(pjson);
  if (st != DG_STATUS_OK) {
    fprintf(stderr, "\ndaguerre run: %s failed: %s\n", slug, io.error[0] ? io.error : dg_strerror(st));
    rc = st == DG_STATUS_ERR_UNAVAILABLE ? RUN_UNAVAILABLE : RUN_FAILED;
  } else {
    dg_output_opts oo;
    dg_schema_output_opts(params, &oo);
    if (oo.format == DG_IMAGE_FORMAT_UNKNOWN) oo.format = DG_IMAGE_FORMAT_PNG;
    for (int i = 0; i < io.n_outputs; i++) {
      char path[4096];
      uint8_t *bytes = NULL;
      size_t n = 0;
      if (dg_client_output_path(out_pattern, "run", (size_t)i, (size_t)io.n_outputs,
                                dg_image_format_ext(oo.format), path, sizeof path) != DG_STATUS_OK ||
          dg_image_encode(io.outputs[i], oo.format, oo.quality, &bytes, &n) != DG_STATUS_OK) {
        fprintf(stderr, "daguerre run: cannot encode output %d\n", i + 1);
        rc = RUN_FAILED;
        free(bytes);
        continue;
      }
      FILE *f = fopen(path, "wb");
      if (!f || fwrite(bytes, 1, n, f) != n) {
        fprintf(stderr, "daguerre run: cannot write %s\n", path);
        rc = RUN_FAILED;
      } else {
        printf("%s\n", path);
      }
      if (f) fclose(f);
      free(bytes);
    }
    if (!quiet)
      fprintf(stderr, "%s: %d image(s), seed %lld, %.1f s\n", slug, io.n_outputs, (long long)seed,
              seconds_since(&ps.start));
  }
  for (int i = 0; i < io.n_outputs; i++) dg_image_free(io.outputs[i]);
done:
  for (int i = 0; i < n_images; i++) dg_image_free(images[i].image);
  json_decref(params);
  return rc;
}
