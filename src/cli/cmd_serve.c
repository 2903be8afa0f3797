/* daguerre serve: the HTTP API server with its workers. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "cli/commands.h"
#include "server/server.h"

static void usage(FILE *f) {
  fprintf(f,
          "usage: daguerre serve [options]\n"
          "  --host ADDR            bind address (default 127.0.0.1; numeric IPv4/IPv6)\n"
          "  --port N               port (default 8080; 0 = any free port)\n"
          "  --port-file FILE       write the bound port to FILE once listening\n"
          "  --data-dir DIR         job store and media (default ./data)\n"
          "  --store URL            job store URL (default sqlite:DATA_DIR/daguerre.db)\n"
          "  --models-dir DIR       model weights (default ./models)\n"
          "  --workers N            worker threads (default 1; 0 = API only)\n"
          "  --threads N            compute threads per job (default 0 = all cores)\n"
          "  --retention SECONDS    how long results and media are kept (default 3600)\n"
          "  --sync-timeout SECONDS POST /v1 waits at most this long, then 504 (default 300)\n"
          "  --max-body BYTES       request body limit, else 413 (default 33554432)\n"
          "  --max-body-total BYTES request bodies buffered at once, else 503 (default 536870912)\n"
          "  --client-timeout SECONDS  idle connection timeout (default 30)\n"
          "  --max-connections N    concurrent connections (default 512)\n"
          "  --max-attempts N       runs of a job interrupted by a crash before it FAILS (default 2)\n"
          "  --public-url URL       base of the absolute URLs in responses (default: from Host)\n"
          "  --price SLUG=CREDITS   price per request of a model (repeatable; default 1)\n"
          "  --allow-private-urls   let image URLs reach loopback/private addresses\n"
          "  --test-pipelines       also serve the test-only 'test-echo' model\n"
          "  --webhook-secret S     HMAC key of webhook signatures (default: DATA_DIR/webhook_secret)\n"
          "  --webhook-attempts N   webhook deliveries tried before giving up (default 6)\n"
          "  --config FILE          read 'name = value' lines (names of these options without --)\n");
}

/* Strings the config keeps (from the config file, --price), freed at exit. */
static char *owned[512];
static int n_owned;
static char *keep(char *p) {
  if (p && n_owned < (int)(sizeof owned / sizeof owned[0])) owned[n_owned++] = p;
  return p;
}
static void free_owned(void) {
  while (n_owned) free(owned[--n_owned]);
}

static char *trim(char *s) {
  while (*s == ' ' || *s == '\t') s++;
  size_t n = strlen(s);
  while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\n' || s[n - 1] == '\r')) s[--n] = '\0';
  return s;
}

static int parse_num(const char *name, const char *v, double lo, double hi, double *out) {
  char *end = NULL;
  errno = 0;
  double d = strtod(v, &end);
  if (errno || end == v || *end || d < lo || d > hi) {
    fprintf(stderr, "daguerre serve: --%s must be a number in %g..%g (got '%s')\n", name, lo, hi, v);
    return 0;
  }
  *out = d;
  return 1;
}

static int is_flag(const char *name) {
  return strcmp(name, "allow-private-urls") == 0 || strcmp(name, "test-pipelines") == 0;
}

/* Apply one option; value is NULL for flags.  Strings must outlive the server. */
static int apply(dg_server_params *c, const char *name, const char *value) {
  double d;
  if (is_flag(name)) {
    int on = !value || strcmp(value, "true") == 0 || strcmp(value, "1") == 0 || strcmp(value, "yes") == 0;
    if (strcmp(name, "allow-private-urls") == 0) c->allow_private_urls = on;
    else c->test_pipelines = on;
    return 1;
  }
  if (!value) {
    fprintf(stderr, "daguerre serve: --%s needs a value\n", name);
    return 0;
  }
  if (strcmp(name, "host") == 0) c->host = value;
  else if (strcmp(name, "port-file") == 0) c->port_file = value;
  else if (strcmp(name, "data-dir") == 0) c->data_dir = value;
  else if (strcmp(name, "store") == 0) c->store_url = value;
  else if (strcmp(name, "models-dir") == 0) c->models_dir = value;
  else if (strcmp(name, "public-url") == 0) c->public_url = value;
  else if (strcmp(name, "webhook-secret") == 0) c->webhook_secret = value;
  else if (strcmp(name, "webhook-attempts") == 0) {
    if (!parse_num(name, value, 1, 30, &d)) return 0;
    c->webhook_attempts = (int)d;
  }
  else if (strcmp(name, "port") == 0) {
    if (!parse_num(name, value, 0, 65535, &d)) return 0;
    c->port = (int)d;
  } else if (strcmp(name, "workers") == 0) {
    if (!parse_num(name, value, 0, 256, &d)) return 0;
    c->workers = (int)d;
  } else if (strcmp(name, "threads") == 0) {
    if (!parse_num(name, value, 0, 1024, &d)) return 0;
    c->threads_per_job = (int)d;
  } else if (strcmp(name, "retention") == 0) {
    if (!parse_num(name, value, 0.1, 1e9, &c->retention_s)) return 0;
  } else if (strcmp(name, "sync-timeout") == 0) {
    if (!parse_num(name, value, 0.1, 1e6, &c->sync_timeout_s)) return 0;
  } else if (strcmp(name, "max-body") == 0) {
    if (!parse_num(name, value, 1024, 1e10, &d)) return 0;
    c->max_body = (size_t)d;
  } else if (strcmp(name, "max-body-total") == 0) {
    if (!parse_num(name, value, 1024, 1e12, &d)) return 0;
    c->max_body_total = (size_t)d;
  } else if (strcmp(name, "client-timeout") == 0) {
    if (!parse_num(name, value, 1, 86400, &d)) return 0;
    c->client_timeout_s = (int)d;
  } else if (strcmp(name, "max-connections") == 0) {
    if (!parse_num(name, value, 1, 65536, &d)) return 0;
    c->max_connections = (int)d;
  } else if (strcmp(name, "max-attempts") == 0) {
    if (!parse_num(name, value, 1, 100, &d)) return 0;
    c->max_attempts = (int)d;
  } else if (strcmp(name, "price") == 0) {
    const char *eq = strchr(value, '=');
    if (!eq || eq == value || c->n_prices >= DG_SERVER_MAX_PRICES) {
      fprintf(stderr, "daguerre serve: --price wants SLUG=CREDITS (got '%s')\n", value);
      return 0;
    }
    if (!parse_num(name, eq + 1, 0, 1e12, &d)) return 0;
    c->price_slug[c->n_prices] = keep(strndup(value, (size_t)(eq - value)));
    c->price[c->n_prices++] = d;
  } else {
    fprintf(stderr, "daguerre serve: unknown option --%s\n", name);
    return 0;
  }
  return 1;
}

static int load_config(dg_server_params *c, const char *path) {
  FILE *f = fopen(path, "r");
  if (!f) {
    fprintf(stderr, "daguerre serve: cannot read config %s: %s\n", path, strerror(errno));
    return 0;
  }
  char line[2048];
  int ok = 1, ln = 0;
  while (ok && fgets(line, sizeof line, f)) {
    ln++;
    char *s = trim(line);
    if (!*s || *s == '#') continue;
    char *eq = strchr(s, '=');
    char *name, *value = NULL;
    if (eq) {
      *eq = '\0';
      name = trim(s);
      value = keep(strdup(trim(eq + 1))); /* lives as long as the server */
    } else {
      name = s;
    }
    if (!apply(c, name, value)) {
      fprintf(stderr, "daguerre serve: in %s line %d\n", path, ln);
      ok = 0;
    }
  }
  fclose(f);
  return ok;
}

int dg_cmd_serve(int argc, char **argv) {
  dg_server_params cfg = dg_server_params_default();
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      usage(stdout);
      return 0;
    }
    if (strncmp(argv[i], "--", 2) != 0) {
      fprintf(stderr, "daguerre serve: unexpected argument '%s'\n", argv[i]);
      usage(stderr);
      return 2;
    }
    const char *name = argv[i] + 2;
    if (strcmp(name, "config") == 0) {
      if (i + 1 >= argc || !load_config(&cfg, argv[++i])) {
        free_owned();
        return 2;
      }
      continue;
    }
    const char *value = NULL;
    char buf[64];
    const char *eq = strchr(name, '=');
    if (eq) {
      snprintf(buf, sizeof buf, "%.*s", (int)(eq - name), name);
      name = buf;
      value = eq + 1;
    } else if (!is_flag(name)) {
      if (i + 1 >= argc) {
        fprintf(stderr, "daguerre serve: --%s needs a value\n", name);
        return 2;
      }
      value = argv[++i];
    }
    if (!apply(&cfg, name, value)) {
      free_owned();
      return 2;
    }
  }
  /* Signals are taken by this thread only (sigwait); every other thread
   * inherits the blocked mask. */
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, NULL);
  signal(SIGPIPE, SIG_IGN);
  dg_server *srv = NULL;
  char err[1024] = "";
  dg_status st = dg_server_new(&cfg, &srv, err, sizeof err);
  if (st != DG_STATUS_OK) {
    fprintf(stderr, "daguerre serve: %s\n", err[0] ? err : dg_strerror(st));
    free_owned();
    return 1;
  }
  int port = dg_server_port(srv);
  fprintf(stderr, "daguerre: listening on http://%s:%d (data %s, %d worker(s))\n", cfg.host, port, cfg.data_dir,
          cfg.workers);
  if (cfg.port_file) {
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", cfg.port_file);
    FILE *f = fopen(tmp, "w");
    if (f) {
      fprintf(f, "%d\n", port);
      fclose(f);
      rename(tmp, cfg.port_file);
    }
  }
  int sig = 0;
  sigwait(&set, &sig);
  fprintf(stderr, "daguerre: signal %d, stopping\n", sig);
  dg_server_free(srv);
  free_owned();
  return 0;
}
