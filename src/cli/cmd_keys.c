/* Placeholder until the command is implemented. */
#include <stdio.h>

#include "cli/commands.h"

int dg_cmd_keys(int argc, char **argv) {
  (void)argc;
  (void)argv;
  fprintf(stderr, "daguerre keys: not implemented yet\n");
  return 2;
}
