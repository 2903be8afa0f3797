/* daguerre keys create|list|revoke|credit: API keys in the job store of a
 * data directory (works while the server runs: SQLite coordinates). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/commands.h"
#include "queue/store.h"

static void usage(FILE *f) {
  fprintf(f,
          "usage: daguerre keys COMMAND [--data-dir DIR | --store URL]\n"
          "  create [--name NAME] [--credits N] [--slugs a,b|*] [--rate PER_MIN] [--json]\n"
          "         prints the new key once (only its SHA-256 is stored)\n"
          "  list   [--json]\n"
          "  revoke ID\n"
          "  credit ID AMOUNT      (AMOUNT may be negative)\n");
}

static int num(const char *s, double *out) {
  char *end = NULL;
  double d = strtod(s, &end);
  if (end == s || *end || d != d || d < -1e15 || d > 1e15) {
    fprintf(stderr, "daguerre keys: '%s' is not a number\n", s);
    return 0;
  }
  *out = d;
  return 1;
}

int dg_cmd_keys(int argc, char **argv) {
  const char *data_dir = "data", *store_url = NULL, *name = "", *slugs = "*";
  double credits = 0;
  int rate = 0, json_out = 0;
  const char *pos[3] = {NULL, NULL, NULL};
  int npos = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    int has = i + 1 < argc;
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      usage(stdout);
      return 0;
    } else if (strcmp(a, "--data-dir") == 0 && has) data_dir = argv[++i];
    else if (strcmp(a, "--store") == 0 && has) store_url = argv[++i];
    else if (strcmp(a, "--name") == 0 && has) name = argv[++i];
    else if (strcmp(a, "--slugs") == 0 && has) slugs = argv[++i];
    else if (strcmp(a, "--credits") == 0 && has) {
      if (!num(argv[++i], &credits)) return 2;
    } else if (strcmp(a, "--rate") == 0 && has) {
      double r;
      if (!num(argv[++i], &r) || r != (int)r) return 2;
      rate = (int)r;
    }
    else if (strcmp(a, "--json") == 0) json_out = 1;
    else if (a[0] == '-' && a[1] == '-') {
      fprintf(stderr, "daguerre keys: unknown or incomplete option '%s'\n", a);
      return 2;
    } else if (npos < 3) pos[npos++] = a;
    else {
      usage(stderr);
      return 2;
    }
  }
  if (npos == 0) {
    usage(stderr);
    return 2;
  }
  char url[4200];
  if (store_url)
    snprintf(url, sizeof url, "%s", store_url);
  else {
    mkdir(data_dir, 0700);
    snprintf(url, sizeof url, "sqlite:%s/daguerre.db", data_dir);
  }
  dg_store *st = NULL;
  char err[512] = "";
  if (dg_store_open(url, &st, err, sizeof err) != DG_STATUS_OK) {
    fprintf(stderr, "daguerre keys: %s\n", err);
    return 1;
  }
  int rc = 0;
  const char *cmd = pos[0];
  if (strcmp(cmd, "create") == 0 && npos == 1) {
    char key[128];
    int64_t id = 0;
    if (credits < 0 || rate < 0) {
      fprintf(stderr, "daguerre keys: --credits and --rate must be >= 0\n");
      rc = 2;
    } else if (dg_store_key_create(st, name, credits, slugs, rate, key, sizeof key, &id) != DG_STATUS_OK) {
      fprintf(stderr, "daguerre keys: could not create the key\n");
      rc = 1;
    } else if (json_out) {
      printf("{\"id\": %lld, \"key\": \"%s\"}\n", (long long)id, key);
    } else {
      printf("%s\n", key);
      fprintf(stderr, "key id %lld created (%g credits, models: %s, rate: %d/min); the key is shown only once\n",
              (long long)id, credits, slugs, rate);
    }
  } else if (strcmp(cmd, "list") == 0 && npos == 1) {
    json_t *arr = NULL;
    if (dg_store_key_list(st, &arr) != DG_STATUS_OK) {
      rc = 1;
    } else if (json_out) {
      char *t = json_dumps(arr, JSON_INDENT(2));
      printf("%s\n", t ? t : "[]");
      free(t);
    } else {
      size_t i;
      json_t *k;
      printf("%-6s %-20s %12s %-8s %-8s %s\n", "ID", "NAME", "CREDITS", "RATE/MIN", "REVOKED", "MODELS");
      json_array_foreach(arr, i, k) {
        printf("%-6lld %-20s %12g %-8lld %-8s %s\n", (long long)json_integer_value(json_object_get(k, "id")),
               json_string_value(json_object_get(k, "name")), json_real_value(json_object_get(k, "credits")),
               (long long)json_integer_value(json_object_get(k, "rate_per_min")),
               json_is_true(json_object_get(k, "revoked")) ? "yes" : "no",
               json_string_value(json_object_get(k, "slugs")));
      }
    }
    json_decref(arr);
  } else if (strcmp(cmd, "revoke") == 0 && npos == 2) {
    dg_status s = dg_store_key_revoke(st, atoll(pos[1]));
    if (s != DG_STATUS_OK) {
      fprintf(stderr, "daguerre keys: no key with id %s\n", pos[1]);
      rc = 1;
    } else {
      fprintf(stderr, "key %s revoked\n", pos[1]);
    }
  } else if (strcmp(cmd, "credit") == 0 && npos == 3) {
    double bal = 0;
    double amount = 0;
    dg_status s = num(pos[2], &amount) ? dg_store_key_credit(st, atoll(pos[1]), amount, &bal) : DG_STATUS_ERR_INVALID;
    if (s == DG_STATUS_ERR_INVALID) {
      rc = 2;
    } else if (s != DG_STATUS_OK) {
      fprintf(stderr, "daguerre keys: no key with id %s\n", pos[1]);
      rc = 1;
    } else {
      printf("%g\n", bal);
    }
  } else {
    usage(stderr);
    rc = 2;
  }
  dg_store_close(st);
  return rc;
}
