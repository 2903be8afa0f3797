/* Placeholder until the command is implemented. */
#include <stdio.h>

#include "cli/commands.h"

int dg_cmd_gen_model(int argc, char **argv) {
  (void)argc;
  (void)argv;
  fprintf(stderr, "daguerre gen-model: not implemented yet\n");
  return 2;
}
