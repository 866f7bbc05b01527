/* kiln db: database maintenance. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static void help(FILE *f)
{
    fputs("usage: kiln db migrate\n\n"
          "Creates the database in the home folder if needed and applies the migrations of\n"
          "sql/ that it lacks, each in its own transaction.  Prints the schema version.\n"
          "The daemon and every command do this on their own; this command is for scripts.\n",
          f);
    cli_print_common_help(f);
}

int cli_db(struct cli *c)
{
    if (cli_wants_help(c->argc, c->argv)) {
        help(stdout);
        return EXIT_OK;
    }
    if (c->argc != 1 || strcmp(c->argv[0], "migrate") != 0) {
        help(stderr);
        return EXIT_USAGE;
    }
    struct store *st = NULL;
    int code = cli_open_store(c, &st);
    if (code)
        return code;
    if (c->json)
        printf("{\"schema_version\":%d}\n", store_schema_version(st));
    else
        printf("database %s/kiln.db at schema version %d\n", c->cfg.home, store_schema_version(st));
    store_close(st);
    return EXIT_OK;
}
