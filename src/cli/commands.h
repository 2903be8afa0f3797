/* The subcommands of the daguerre binary; each lives in its own cmd_*.c. */
#ifndef DG_CLI_COMMANDS_H
#define DG_CLI_COMMANDS_H

/* Each returns the process exit code.  argv[0] is the subcommand name. */
int dg_cmd_serve(int argc, char **argv);     /* cmd_serve.c */
int dg_cmd_keys(int argc, char **argv);      /* cmd_keys.c */
int dg_cmd_models(int argc, char **argv);    /* cmd_models.c */
int dg_cmd_submit(int argc, char **argv);    /* cmd_client.c */
int dg_cmd_status(int argc, char **argv);    /* cmd_client.c */
int dg_cmd_result(int argc, char **argv);    /* cmd_client.c */
int dg_cmd_wait(int argc, char **argv);      /* cmd_client.c */
int dg_cmd_cancel(int argc, char **argv);    /* cmd_client.c */
int dg_cmd_call(int argc, char **argv);      /* cmd_client.c */
int dg_cmd_run(int argc, char **argv);       /* cmd_run.c */
int dg_cmd_gen_model(int argc, char **argv); /* cmd_gen_model.c */

#endif
