/* cli: the `kiln` command.  One file per command family; each family's
 * entry point takes the arguments after its name.
 *
 * Exit codes (the same for every command, so scripts can rely on them):
 *   0  success
 *   1  the operation ran and failed (a run failed, a DAG file has errors)
 *   2  usage error or invalid input
 *   3  not found (DAG, run, task)
 *   4  refused in the current state (e.g. clearing a running task)
 *   5  the daemon did not answer in time */
#ifndef KILN_CLI_H
#define KILN_CLI_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "settings.h"
#include "store.h"

struct json_object;

enum {
    EXIT_OK = 0,
    EXIT_FAILED = 1,
    EXIT_USAGE = 2,
    EXIT_NOTFOUND = 3,
    EXIT_STATE = 4,
    EXIT_TIMEOUT = 5,
};

struct cli {
    struct kiln_settings cfg;
    bool json;                 /* -o json */
    bool home_given;           /* --home or KILN_HOME set explicitly */
    const char *self_exe;
    int argc;                  /* arguments left after the global options */
    char **argv;
};

/* Parses the global options (--home, --dags, --config, --parallelism,
 * --executor, --pool, --bind, --port, -o, -v) anywhere in argv and loads
 * the settings.  Returns 0, or an exit code after printing the problem. */
int cli_init(struct cli *c, int argc, char **argv);
void cli_free(struct cli *c);
/* Prints the common options for --help texts. */
void cli_print_common_help(FILE *f);
bool cli_wants_help(int argc, char **argv);

/* Opens the home's database (creating it), or prints why not. */
int cli_open_store(struct cli *c, struct store **out);

/* Applies a mutation: through the running daemon if there is one (and waits
 * up to 15 s for its answer), else directly.  Prints errors; returns an exit
 * code and, on success, the result JSON in *result (caller frees). */
int cli_mutate(struct cli *c, const char *body, char **result);

/* cli_mutate() for a command object (consumed), then prints the result: the
 * JSON with -o json, else `done` (a line of text).  Returns an exit code. */
int cli_apply(struct cli *c, struct json_object *body, const char *done);
/* --name VALUE or --name=VALUE at argv[*i]: 1 taken (advancing *i past a
 * separate value), 0 not this option, -1 value missing (message printed with
 * `who` as prefix). */
int cli_take_value(int *i, int argc, char **argv, const char *name, const char **val,
                   const char *who);

/* Maps an error code to an exit code. */
int cli_exit_code(int rc);
const char *cli_actor(void);

int cli_serve(struct cli *c);
int cli_dags(struct cli *c);
int cli_runs(struct cli *c);
int cli_tasks(struct cli *c);
int cli_db(struct cli *c);
/* kiln cron: takes the arguments after "cron"; needs no struct cli. */
int cli_cron(int argc, char **argv);
int cli_dags_test(struct cli *c, int argc, char **argv);

/* Prints the task instances of a run as a table, or appends them to `into`
 * (a JSON array) when given; with -o json and no `into`, prints JSON. */
int cli_print_tis(struct cli *c, struct store *st, int64_t run_pk, struct json_object *into);

#endif
