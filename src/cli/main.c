/* daguerre: one binary, many subcommands. */
#include <stdio.h>
#include <string.h>

#include "cli/commands.h"

typedef struct dg__command {
  const char *name;
  int (*fn)(int argc, char **argv);
  const char *help;
} dg__command;

static const dg__command commands[] = {
    {"serve", dg_cmd_serve, "run the HTTP API server with its workers"},
    {"keys", dg_cmd_keys, "create | list | revoke | credit API keys"},
    {"models", dg_cmd_models, "list each model and what it still needs"},
    {"run", dg_cmd_run, "run a model locally: run SLUG k=v... -o out.png"},
    {"gen-model", dg_cmd_gen_model, "write a random-weight model (tests, benchmarks)"},
    {"submit", dg_cmd_submit, "client: queue a request, print its request_id"},
    {"status", dg_cmd_status, "client: print a request's status"},
    {"result", dg_cmd_result, "client: print a request's result"},
    {"wait", dg_cmd_wait, "client: poll until a request finishes"},
    {"cancel", dg_cmd_cancel, "client: cancel a queued or running request"},
    {"call", dg_cmd_call, "client: submit and wait, save the outputs"},
};

static void usage(FILE *f) {
  fprintf(f, "usage: daguerre COMMAND [ARGS...]\n\ncommands:\n");
  for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
    fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].help);
  fprintf(f, "\n'daguerre COMMAND --help' describes each command.\n");
}

int main(int argc, char **argv) {
  if (argc < 2) {
    usage(stderr);
    return 2;
  }
  if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
    usage(stdout);
    return 0;
  }
  for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
    if (strcmp(argv[1], commands[i].name) == 0) return commands[i].fn(argc - 1, argv + 1);
  fprintf(stderr, "daguerre: unknown command '%s'\n", argv[1]);
  usage(stderr);
  return 2;
}
