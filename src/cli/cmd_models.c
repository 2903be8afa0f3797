/* daguerre models: each slug and what it still needs under the models dir. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "pipelines/pipeline.h"
#include "pipelines/schema.h"

int dg_cmd_models(int argc, char **argv) {
  const char *models_dir = "models";
  int json_out = 0, test = 0;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--models-dir") == 0 && i + 1 < argc)
      models_dir = argv[++i];
    else if (strcmp(argv[i], "--json") == 0)
      json_out = 1;
    else if (strcmp(argv[i], "--test-pipelines") == 0)
      test = 1;
    else {
      fprintf(stderr, "usage: daguerre models [--models-dir DIR] [--json] [--test-pipelines]\n");
      return strcmp(argv[i], "--help") == 0 ? 0 : 2;
    }
  }
  if (test) dg_pipeline_register(dg_pipeline_test_echo());
  size_t n = 0;
  const dg_pipeline *const *list = dg_pipeline_list(&n);
  json_t *arr = json_array();
  int ready = 0;
  for (size_t i = 0; i < n; i++) {
    char missing[4096] = "";
    dg_status st = list[i]->check(models_dir, missing, sizeof missing);
    if (st == DG_STATUS_OK) ready++;
    if (json_out)
      json_array_append_new(arr, json_pack("{s:s, s:s, s:b, s:s, s:f}", "slug", list[i]->slug, "title",
                                           list[i]->title, "ready", st == DG_STATUS_OK, "needs", missing,
                                           "default_cost", list[i]->default_cost));
    else
      printf("%-16s %s%s%s\n", list[i]->slug, st == DG_STATUS_OK ? "ready" : "NOT READY",
             st == DG_STATUS_OK ? "" : ": ", st == DG_STATUS_OK ? "" : missing);
  }
  if (json_out) {
    char *t = json_dumps(arr, JSON_INDENT(2));
    printf("%s\n", t ? t : "[]");
    free(t);
  } else {
    printf("%d of %zu models ready (models dir: %s)\n", ready, n, models_dir);
  }
  json_decref(arr);
  return 0;
}
