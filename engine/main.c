/* kiln: the command.  Dispatches to one file per command family. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "config.h"
#include "shepherd.h"
#include "store.h"

static void usage(FILE *f)
{
    fputs("usage: kiln COMMAND [ARGS] [OPTIONS]\n"
          "\n"
          "  serve                      run the daemon: scheduler, executors, (later) web UI\n"
          "  dags list|show|test|trigger|pause|unpause\n"
          "  runs list|show|cancel\n"
          "  tasks list|show|logs|clear|mark\n"
          "  db migrate                 create or upgrade the database\n"
          "  cron next \"EXPR\"           the next fire times of a cron expression\n"
          "  version                    print the version\n"
          "\n"
          "Every command takes --help.\n",
          f);
    cli_print_common_help(f);
}

static int self_exe(char *buf, size_t n)
{
    ssize_t r = readlink("/proc/self/exe", buf, n - 1);
    if (r < 0)
        return -1;
    buf[r] = '\0';
    return 0;
}

/* Task programs (kiln-clean, kiln-train, kiln-eval, kiln-deploy, kiln-serve)
 * are found on the PATH that tasks inherit: put the build tree's
 * DIR/tasks/{clean,train,deploy,serve} and DIR itself (where `make install`
 * puts them next to kiln), DIR being the kiln binary's folder, in front of
 * it, so that a DAG's [kiln-train, ...] runs the programs of this build. */
static void prepend_task_path(const char *exe)
{
    static const char *const sub[] = { "/tasks/clean", "/tasks/train", "/tasks/deploy",
                                       "/tasks/serve", "" };
    const char *slash = strrchr(exe, '/'), *old = getenv("PATH");
    if (!slash || slash == exe)
        return;
    size_t dl = (size_t)(slash - exe), n = (old ? strlen(old) : 32) + 1;
    for (size_t i = 0; i < sizeof sub / sizeof *sub; i++)
        n += dl + strlen(sub[i]) + 1;
    char *path = malloc(n), *p = path;
    if (!path)
        return;
    for (size_t i = 0; i < sizeof sub / sizeof *sub; i++) {
        char dir[4200];
        snprintf(dir, sizeof dir, "%.*s%s", (int)dl, exe, sub[i]);
        if (i + 1 < sizeof sub / sizeof *sub && access(dir, X_OK) != 0)
            continue;
        p += sprintf(p, "%s:", dir);
    }
    strcpy(p, old ? old : "/usr/local/bin:/usr/bin:/bin");
    setenv("PATH", path, 1);
    free(path);
}

/* Global options may come before the command (kiln --home X runs list):
 * move the command word to argv[1]. */
static void hoist_command(int argc, char **argv)
{
    static const char *const with_value[] = { "--home", "--dags", "--config", "--parallelism",
                                              "--executor", "--pool", "--bind", "--port", "-o",
                                              "--output", "--kill-grace", "--log-level" };
    for (int i = 1; i < argc; i++) {
        if (argv[i][0] != '-') {
            char *cmd = argv[i];
            memmove(argv + 2, argv + 1, (size_t)(i - 1) * sizeof *argv);
            argv[1] = cmd;
            return;
        }
        for (size_t k = 0; k < sizeof with_value / sizeof *with_value; k++)
            if (strcmp(argv[i], with_value[k]) == 0) {
                i++;
                break;
            }
    }
}

int main(int argc, char **argv)
{
    if (argc > 1 && argv[1][0] == '-' && strcmp(argv[1], "--help") && strcmp(argv[1], "-h") &&
        strcmp(argv[1], "--version"))
        hoist_command(argc, argv);
    if (argc < 2) {
        usage(stderr);
        return EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        usage(stdout);
        return EXIT_OK;
    }
    if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
        if (cli_wants_help(argc - 2, argv + 2)) {
            puts("usage: kiln version\n\nPrints kiln's version and its database schema version.");
            return EXIT_OK;
        }
        printf("kiln %s\n", PACKAGE_VERSION);
        return EXIT_OK;
    }
    if (strcmp(cmd, "shepherd") == 0) {
        /* Internal: started by the local executor, not by users. */
        if (argc != 4 || strcmp(argv[2], "--home") != 0) {
            fputs("usage: kiln shepherd --home DIR (internal)\n", stderr);
            return EXIT_USAGE;
        }
        return shepherd_main(argv[3]);
    }
    if (strcmp(cmd, "cron") == 0) /* a pure computation: no home, settings or database */
        return cli_cron(argc - 2, argv + 2);
    struct cli c = { 0 };
    char exe[4096];
    c.self_exe = self_exe(exe, sizeof exe) == 0 ? exe : argv[0];
    prepend_task_path(c.self_exe);
    int code = cli_init(&c, argc - 2, argv + 2);
    if (code) {
        cli_free(&c);
        return code;
    }
    if (strcmp(cmd, "serve") == 0)
        code = cli_serve(&c);
    else if (strcmp(cmd, "dags") == 0)
        code = cli_dags(&c);
    else if (strcmp(cmd, "runs") == 0)
        code = cli_runs(&c);
    else if (strcmp(cmd, "tasks") == 0)
        code = cli_tasks(&c);
    else if (strcmp(cmd, "db") == 0)
        code = cli_db(&c);
    else {
        fprintf(stderr, "kiln: unknown command '%s'\n", cmd);
        usage(stderr);
        code = EXIT_USAGE;
    }
    cli_free(&c);
    return code;
}
