/* kiln serve: the daemon. */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "cli.h"
#include "engine.h"
#include "log.h"

static void help(FILE *f)
{
    fputs("usage: kiln serve [OPTIONS]\n\n"
          "Runs the daemon on the home folder: loads the DAG folder, recovers unfinished runs\n"
          "(re-attaching to tasks that kept running), runs tasks, and applies commands from\n"
          "other kiln commands within a second.  SIGINT/SIGTERM stop it; running tasks keep\n"
          "running and are adopted by the next daemon.\n",
          f);
    cli_print_common_help(f);
}

struct serve {
    struct engine *e;
    uv_signal_t sigint, sigterm;
};

static void on_signal(uv_signal_t *h, int signum)
{
    struct serve *s = h->data;
    LOG_I("signal %d: stopping (running tasks continue and will be adopted)", signum);
    uv_close((uv_handle_t *)&s->sigint, NULL);
    uv_close((uv_handle_t *)&s->sigterm, NULL);
    engine_stop(s->e);
}

int cli_serve(struct cli *c)
{
    if (cli_wants_help(c->argc, c->argv)) {
        help(stdout);
        return EXIT_OK;
    }
    if (c->argc != 0) {
        fprintf(stderr, "kiln serve: unexpected argument '%s'\n", c->argv[0]);
        return EXIT_USAGE;
    }
    signal(SIGPIPE, SIG_IGN);
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct serve s = { 0 };
    struct engine_opts o = { .cfg = &c->cfg, .self_exe = c->self_exe, .daemon = true };
    struct kiln_err err = { 0 };
    if (engine_open(&s.e, &loop, &o, &err) < 0) {
        fprintf(stderr, "kiln serve: %s\n", err.msg);
        uv_run(&loop, UV_RUN_NOWAIT);
        uv_loop_close(&loop);
        return err.code == KILN_EBUSY ? EXIT_STATE : EXIT_FAILED;
    }
    LOG_I("kiln serve: home %s, DAGs %s, parallelism %d, pid %d", c->cfg.home, c->cfg.dags,
          c->cfg.parallelism, (int)getpid());
    uv_signal_init(&loop, &s.sigint);
    uv_signal_init(&loop, &s.sigterm);
    s.sigint.data = s.sigterm.data = &s;
    uv_signal_start(&s.sigint, on_signal, SIGINT);
    uv_signal_start(&s.sigterm, on_signal, SIGTERM);
    uv_run(&loop, UV_RUN_DEFAULT);
    engine_free(s.e);
    uv_loop_close(&loop);
    LOG_I("kiln serve: stopped");
    return EXIT_OK;
}
