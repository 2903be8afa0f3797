/* Placeholder until the client commands are implemented. */
#include <stdio.h>

#include "cli/commands.h"

static int not_yet(const char *name) {
  fprintf(stderr, "daguerre %s: not implemented yet\n", name);
  return 2;
}
int dg_cmd_submit(int argc, char **argv) { (void)argc; (void)argv; return not_yet("submit"); }
int dg_cmd_status(int argc, char **argv) { (void)argc; (void)argv; return not_yet("status"); }
int dg_cmd_result(int argc, char **argv) { (void)argc; (void)argv; return not_yet("result"); }
int dg_cmd_wait(int argc, char **argv) { (void)argc; (void)argv; return not_yet("wait"); }
int dg_cmd_call(int argc, char **argv) { (void)argc; (void)argv; return not_yet("call"); }
