/* Placeholder until the command is implemented. */
#include <stdio.h>

#include "cli/commands.h"

int dg_cmd_models(int argc, char **argv) {
  (void)argc;
  (void)argv;
  fprintf(stderr, "daguerre models: not implemented yet\n");
  return 2;
}
