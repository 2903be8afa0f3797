/* Client commands: submit, status, result, wait, call (see usage()). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "client/client.h"

enum {
  EXIT_OK = 0,
  EXIT_USAGE = 1,
  EXIT_FAILED = 3,     /* the request FAILED */
  EXIT_TIMEOUT = 4,    /* wait/call gave up */
  EXIT_TRANSPORT = 5,  /* HTTP error or no connection */
  EXIT_NOT_READY = 6,  /* result: still QUEUED / PROCESSING */
  EXIT_LOCAL = 7       /* local error: cannot write an output file, out of memory */
};

static const char usage_text[] =
    "usage:\n"
    "  daguerre submit SLUG [k=v...]              queue a request, print its request_id\n"
    "  daguerre status ID                         print the request's status (JSON)\n"
    "  daguerre result ID [-o PATTERN]            print the final response (JSON); -o saves outputs\n"
    "  daguerre cancel ID                         cancel a queued or running request (JSON status)\n"
    "  daguerre wait ID [--timeout S] [--interval S] [-o PATTERN]\n"
    "                                             poll until COMPLETED/FAILED, print the response\n"
    "  daguerre call SLUG [k=v...] [-o PATTERN] [--timeout S] [--interval S] [--sync]\n"
    "                                             submit + wait (or POST /v1 with --sync), save outputs\n"
    "\n"
    "parameters:\n"
    "  k=v       a number, true, false or null when v is exactly one, else a string\n"
    "  k:=JSON   a raw JSON value, e.g. 'loras:=[1,2]'  'seed:=\"42\"'\n"
    "  k=@FILE   the file's bytes as base64 (image parameters)\n"
    "\n"
    "options:\n"
    "  --url URL        server (default $DAGUERRE_URL, else http://127.0.0.1:8080)\n"
    "  --key KEY        API key (default $DAGUERRE_API_KEY), sent as x-api-key\n"
    "  --header 'N: V'  an extra HTTP header (repeatable)\n"
    "  --idempotency-key K  submit/call: the same key within the retention returns the\n"
    "                   same request instead of queueing a new one\n"
    "  --timeout S      wait/call deadline in seconds (default 600)\n"
    "  --interval S     polling interval in seconds (default 1)\n"
    "  -o PATTERN       output file(s): {id}, {n} (1-based) and {ext} are replaced; without\n"
    "                   {n}, several outputs get -N before the extension (default {id}.{ext})\n"
    "\n"
    "exit codes:\n"
    "  0 ok   1 usage error   3 the request FAILED   4 timed out\n"
    "  5 HTTP or transport error   6 result not ready yet   7 local error (writing outputs)\n";

static void usage(FILE *f) { fputs(usage_text, f); }

typedef struct opts {
  const char *url, *key, *out;
  double timeout, interval;
  int sync, have_out;
  const char *pos[2]; /* SLUG or ID */
  const char *headers[16];
  int nheaders;
  char idem[256]; /* "Idempotency-Key: K" or empty */
  int npos, maxpos;
  json_t *params;     /* for submit/call: key=value arguments */
} opts;

static int parse_double(const char *s, double *v) {
  char *end;
  errno = 0;
  *v = strtod(s, &end);
  return errno == 0 && end != s && *end == '\0' && *v > 0;
}

/* Returns -1 on success, else the exit code to return. */
static int parse(int argc, char **argv, opts *o, int maxpos, int with_params) {
  memset(o, 0, sizeof *o);
  o->timeout = 600;
  o->interval = 1;
  o->maxpos = maxpos;
  if (with_params) o->params = json_object();
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *val = i + 1 < argc ? argv[i + 1] : NULL;
    if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
      usage(stdout);
      return EXIT_OK;
    }
    int takes = strcmp(a, "--url") == 0 || strcmp(a, "--key") == 0 || strcmp(a, "-o") == 0 ||
                strcmp(a, "--timeout") == 0 || strcmp(a, "--interval") == 0 ||
                strcmp(a, "--header") == 0 || strcmp(a, "--idempotency-key") == 0;
    if (takes && !val) {
      fprintf(stderr, "daguerre %s: %s needs a value\n", argv[0], a);
      return EXIT_USAGE;
    }
    if (strcmp(a, "--url") == 0) {
      o->url = val;
      i++;
    } else if (strcmp(a, "--key") == 0) {
      o->key = val;
      i++;
    } else if (strcmp(a, "--header") == 0) {
      const char *colon = strchr(val, ':');
      if (!colon || colon == val || o->nheaders == (int)(sizeof o->headers / sizeof o->headers[0])) {
        fprintf(stderr, "daguerre %s: bad or too many --header (expected 'Name: value')\n", argv[0]);
        return EXIT_USAGE;
      }
      o->headers[o->nheaders++] = val;
      i++;
    } else if (strcmp(a, "--idempotency-key") == 0) {
      if (!*val || strlen(val) > 200 || strpbrk(val, "\r\n")) {
        fprintf(stderr, "daguerre %s: the idempotency key must be 1 to 200 characters\n", argv[0]);
        return EXIT_USAGE;
      }
      snprintf(o->idem, sizeof o->idem, "Idempotency-Key: %s", val);
      i++;
    } else if (strcmp(a, "-o") == 0) {
      o->out = val;
      o->have_out = 1;
      i++;
    } else if (strcmp(a, "--timeout") == 0 || strcmp(a, "--interval") == 0) {
      double *d = a[2] == 't' ? &o->timeout : &o->interval;
      if (!parse_double(val, d)) {
        fprintf(stderr, "daguerre %s: %s must be a positive number of seconds\n", argv[0], a);
        return EXIT_USAGE;
      }
      i++;
    } else if (strcmp(a, "--sync") == 0 && with_params) {
      o->sync = 1;
    } else if (a[0] == '-' && a[1] == '-') {
      fprintf(stderr, "daguerre %s: unknown option %s\n", argv[0], a);
      return EXIT_USAGE;
    } else if (o->npos < maxpos) {
      o->pos[o->npos++] = a;
    } else if (with_params) {
      char err[512];
      if (dg_client_parse_param(a, o->params, err, sizeof err) != DG_STATUS_OK) {
        fprintf(stderr, "daguerre %s: %s\n", argv[0], err);
        return EXIT_USAGE;
      }
    } else {
      fprintf(stderr, "daguerre %s: unexpected argument '%s'\n", argv[0], a);
      return EXIT_USAGE;
    }
  }
  if (o->npos < maxpos) {
    fprintf(stderr, "daguerre %s: missing %s\n\n", argv[0], with_params ? "SLUG" : "request ID");
    usage(stderr);
    return EXIT_USAGE;
  }
  return -1;
}

static void print_json(const json_t *j) {
  char *s = j ? json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
  if (s) {
    puts(s);
    free(s);
  }
}

/* Save the outputs of a COMPLETED response; prints each path. */
static int save_outputs(dg_client *c, const dg_client_response *r, const char *pattern,
                        const char *id) {
  dg_client_media *m;
  size_t n;
  char err[512];
  dg_status st = dg_client_outputs(c, r, &m, &n, err, sizeof err);
  if (st != DG_STATUS_OK) {
    fprintf(stderr, "daguerre: %s\n", err);
    return st == DG_STATUS_ERR_NETWORK ? EXIT_TRANSPORT : EXIT_LOCAL;
  }
  int rc = EXIT_OK;
  for (size_t i = 0; i < n && rc == EXIT_OK; i++) {
    char path[4096];
    if (dg_client_output_path(pattern, id, i, n, m[i].ext, path, sizeof path) != DG_STATUS_OK) {
      fprintf(stderr, "daguerre: output path too long\n");
      rc = EXIT_LOCAL;
      break;
    }
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(m[i].data, 1, m[i].n, f) != m[i].n) {
      fprintf(stderr, "daguerre: cannot write %s: %s\n", path, strerror(errno));
      rc = EXIT_LOCAL;
    }
    if (f && fclose(f) != 0 && rc == EXIT_OK) {
      fprintf(stderr, "daguerre: cannot write %s\n", path);
      rc = EXIT_LOCAL;
    }
    if (rc == EXIT_OK) printf("%s\n", path);
  }
  dg_client_media_free(m, n);
  return rc;
}

static int transport_exit(dg_status st) {
  if (st == DG_STATUS_ERR_TIMEOUT) return EXIT_TIMEOUT;
  if (st == DG_STATUS_ERR_INVALID) return EXIT_USAGE;
  if (st == DG_STATUS_ERR_NOMEM) return EXIT_LOCAL;
  return EXIT_TRANSPORT;
}

static dg_client *client_of(const opts *o) {
  dg_client *c = dg_client_new(o->url, o->key);
  if (!c) {
    fprintf(stderr, "daguerre: out of memory\n");
    return NULL;
  }
  for (int i = 0; i <= o->nheaders; i++) {
    const char *h = i < o->nheaders ? o->headers[i] : o->idem;
    if (*h && dg_client_add_header(c, h) != DG_STATUS_OK) {
      fprintf(stderr, "daguerre: invalid header '%s' (expected 'Name: value')\n", h);
      dg_client_free(c);
      return NULL;
    }
  }
  return c;
}

/* A final body: FAILED -> message + exit 3. */
static int failed_exit(const dg_client_response *r) {
  const json_t *e = json_object_get(r->json, "error");
  fprintf(stderr, "daguerre: request FAILED: %s\n", json_is_string(e) ? json_string_value(e) : "(no detail)");
  return EXIT_FAILED;
}

int dg_cmd_submit(int argc, char **argv) {
  opts o;
  int rc = parse(argc, argv, &o, 1, 1);
  if (rc >= 0) goto out;
  dg_client *c = client_of(&o);
  if (!c) {
    rc = EXIT_LOCAL;
    goto out;
  }
  char *id = NULL, err[1024];
  dg_client_response r;
  dg_status st = dg_client_submit(c, o.pos[0], o.params, &id, &r, err, sizeof err);
  if (st == DG_STATUS_OK) {
    printf("%s\n", id);
    rc = EXIT_OK;
  } else {
    fprintf(stderr, "daguerre submit: %s\n", err);
    rc = transport_exit(st);
  }
  free(id);
  dg_client_response_clear(&r);
  dg_client_free(c);
out:
  json_decref(o.params);
  return rc;
}

enum { CMD_STATUS, CMD_RESULT, CMD_CANCEL };

static int status_or_result(int argc, char **argv, int which) {
  int result = which == CMD_RESULT;
  opts o;
  int rc = parse(argc, argv, &o, 1, 0);
  if (rc >= 0) return rc;
  dg_client *c = client_of(&o);
  if (!c) return EXIT_LOCAL;
  char err[1024];
  dg_client_response r;
  dg_status st = which == CMD_RESULT   ? dg_client_result(c, o.pos[0], &r, err, sizeof err)
                 : which == CMD_CANCEL ? dg_client_cancel(c, o.pos[0], &r, err, sizeof err)
                                       : dg_client_status(c, o.pos[0], &r, err, sizeof err);
  if (st != DG_STATUS_OK) {
    fprintf(stderr, "daguerre %s: %s\n", argv[0], err);
    rc = transport_exit(st);
  } else {
    print_json(r.json);
    const char *s = dg_client_body_status(r.json);
    if (s && strcmp(s, "FAILED") == 0 && which != CMD_CANCEL)
      rc = failed_exit(&r);
    else if (result && !(s && strcmp(s, "COMPLETED") == 0))
      rc = EXIT_NOT_READY;
    else if (result && o.have_out)
      rc = save_outputs(c, &r, o.out, o.pos[0]);
    else
      rc = EXIT_OK;
  }
  dg_client_response_clear(&r);
  dg_client_free(c);
  return rc;
}

int dg_cmd_status(int argc, char **argv) { return status_or_result(argc, argv, CMD_STATUS); }
int dg_cmd_result(int argc, char **argv) { return status_or_result(argc, argv, CMD_RESULT); }
int dg_cmd_cancel(int argc, char **argv) { return status_or_result(argc, argv, CMD_CANCEL); }

/* Wait for id; print the final body, save the outputs if asked. */
static int wait_and_finish(dg_client *c, const char *id, const opts *o) {
  char err[1024];
  dg_client_response r;
  dg_status st = dg_client_wait(c, id, o->timeout, o->interval, &r, err, sizeof err);
  int rc;
  if (st != DG_STATUS_OK) {
    fprintf(stderr, "daguerre: %s\n", err);
    rc = transport_exit(st);
  } else {
    print_json(r.json);
    const char *s = dg_client_body_status(r.json);
    if (s && strcmp(s, "FAILED") == 0)
      rc = failed_exit(&r);
    else if (o->have_out)
      rc = save_outputs(c, &r, o->out, id);
    else
      rc = EXIT_OK;
  }
  dg_client_response_clear(&r);
  return rc;
}

int dg_cmd_wait(int argc, char **argv) {
  opts o;
  int rc = parse(argc, argv, &o, 1, 0);
  if (rc >= 0) return rc;
  dg_client *c = client_of(&o);
  if (!c) return EXIT_LOCAL;
  rc = wait_and_finish(c, o.pos[0], &o);
  dg_client_free(c);
  return rc;
}

int dg_cmd_call(int argc, char **argv) {
  opts o;
  int rc = parse(argc, argv, &o, 1, 1);
  if (rc >= 0) goto out;
  dg_client *c = client_of(&o);
  if (!c) {
    rc = EXIT_LOCAL;
    goto out;
  }
  char err[1024], *id = NULL;
  dg_client_response r;
  dg_status st = dg_client_call(c, o.pos[0], o.params, o.sync, o.timeout, o.interval, &id, &r, err,
                                sizeof err);
  if (id) fprintf(stderr, "request_id %s\n", id);
  const char *code = json_string_value(json_object_get(r.json, "code"));
  if (st != DG_STATUS_OK && o.sync && code && strcmp(code, "JOB_FAILED") == 0) {
    rc = failed_exit(&r); /* v1 reports a failed job as an HTTP error with this code */
  } else if (st != DG_STATUS_OK) {
    fprintf(stderr, "daguerre call: %s\n", err);
    rc = transport_exit(st);
  } else if (dg_client_body_status(r.json) && strcmp(dg_client_body_status(r.json), "FAILED") == 0) {
    rc = failed_exit(&r);
  } else {
    rc = save_outputs(c, &r, o.out, id ? id : "output");
  }
  free(id);
  dg_client_response_clear(&r);
  dg_client_free(c);
out:
  json_decref(o.params);
  return rc;
}
