/* kiln dags test FILE: one run in this process, with a live view.
 *
 * On a terminal the task table is redrawn in place ten times a second with
 * the elapsed time; elsewhere (CI logs, pipes) every state change is one
 * plain line.  Failed tasks show the tail of their log.  Exit 0 only if the
 * run succeeded. */
#include <inttypes.h>
#include <json-c/json.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "cli.h"
#include "dagdir.h"
#include "engine.h"
#include "log.h"
#include "util.h"

static void help(FILE *f)
{
    fputs("usage: kiln dags test FILE [-q] [-p NAME=VALUE]... [OPTIONS]\n\n"
          "Runs one run of the DAG in FILE now, in this process, with the local executor.\n"
          "State goes to a new temporary home folder unless --home is given.  On a terminal\n"
          "the tasks' states update in place; otherwise each change is printed as a line.\n"
          "-q prints only the final summary.  Ctrl-C cancels the run (its tasks are stopped).\n"
          "-p NAME=VALUE sets a param of the run (checked against its type).\n"
          "Exit status: 0 if the run succeeded, 1 if it failed, 2 if FILE is invalid.\n",
          f);
    cli_print_common_help(f);
}

struct tview {
    char *id;
    char state[24];
    int try_number;
    char *reason;
    char *log;
    int64_t start_us, end_us;
};

struct test {
    struct engine *e;
    uv_loop_t *loop;
    uv_timer_t redraw;
    uv_signal_t sigint;
    bool tty, quiet;
    int64_t t0;
    struct tview *tasks;
    size_t n_tasks;
    int lines_drawn;
    char run_state[16];
    char *run_id;
    bool done;
    int interrupts;
    int64_t run_pk;
};

/* The view of the task at DAG position idx (the rows come in DAG order). */
static struct tview *task_at(struct test *t, int idx, const char *id)
{
    while ((size_t)idx >= t->n_tasks) {
        t->tasks = xrealloc(t->tasks, (t->n_tasks + 1) * sizeof *t->tasks);
        struct tview *v = &t->tasks[t->n_tasks++];
        memset(v, 0, sizeof *v);
        snprintf(v->state, sizeof v->state, "none");
    }
    struct tview *v = &t->tasks[idx];
    if (!v->id)
        v->id = xstrdup(id);
    return v;
}

static const char *mark(const char *state)
{
    if (strcmp(state, "success") == 0) return "ok  ";
    if (strcmp(state, "failed") == 0) return "FAIL";
    if (strcmp(state, "upstream_failed") == 0) return "UPFL";
    if (strcmp(state, "skipped") == 0) return "skip";
    if (strcmp(state, "running") == 0) return " >> ";
    if (strcmp(state, "up_for_retry") == 0) return "retr";
    return "  . ";
}

static void print_tail(const char *path, int lines)
{
    char *buf = NULL;
    size_t len = 0;
    if (!path || file_read_all(path, &buf, &len) < 0)
        return;
    size_t start = len;
    int seen = 0;
    while (start > 0) {
        if (buf[start - 1] == '\n' && start != len && ++seen >= lines)
            break;
        start--;
    }
    printf("    --- last lines of %s ---\n", path);
    for (char *p = buf + start, *nl; *p; p = nl + 1) {
        nl = strchr(p, '\n');
        if (!nl) {
            printf("    | %s\n", p);
            break;
        }
        printf("    | %.*s\n", (int)(nl - p), p);
    }
    free(buf);
}

static void draw(struct test *t)
{
    if (!t->tty || t->quiet)
        return;
    if (t->lines_drawn)
        printf("\033[%dA", t->lines_drawn);
    int lines = 0;
    double el = (double)(now_us() - t->t0) / 1e6;
    printf("\033[2K%s  %s  %.1fs\n", t->run_id ? t->run_id : "", t->run_state, el);
    lines++;
    if (t->n_tasks <= 40) {
        for (size_t i = 0; i < t->n_tasks; i++) {
            struct tview *v = &t->tasks[i];
            double d = v->start_us ? (double)((v->end_us ? v->end_us : now_us()) - v->start_us)
                                         / 1e6 : 0;
            printf("\033[2K  [%s] %-32s %-16s", mark(v->state), v->id, v->state);
            if (v->start_us)
                printf(" %6.1fs", d);
            if (v->try_number > 1)
                printf("  try %d", v->try_number);
            if (v->reason && (strcmp(v->state, "failed") == 0 ||
                              strcmp(v->state, "up_for_retry") == 0))
                printf("  %s", v->reason);
            putchar('\n');
            lines++;
        }
    } else {
        int counts[8] = { 0 };
        static const char *const names[] = { "none", "scheduled", "queued", "running",
                                             "success", "failed", "upstream_failed", "skipped" };
        for (size_t i = 0; i < t->n_tasks; i++)
            for (int k = 0; k < 8; k++)
                if (strcmp(t->tasks[i].state, names[k]) == 0)
                    counts[k]++;
        printf("\033[2K ");
        for (int k = 0; k < 8; k++)
            if (counts[k])
                printf(" %s %d", names[k], counts[k]);
        printf("  (of %zu)\n", t->n_tasks);
        lines++;
    }
    t->lines_drawn = lines;
    fflush(stdout);
}

static void on_redraw(uv_timer_t *h)
{
    draw(container_of(h, struct test, redraw));
}

static void finish(struct test *t)
{
    if (t->done)
        return;
    t->done = true;
    uv_timer_stop(&t->redraw);
    draw(t);
    uv_close((uv_handle_t *)&t->redraw, NULL);
    uv_close((uv_handle_t *)&t->sigint, NULL);
    engine_stop(t->e);
}

static void on_event(void *arg, const struct sched_event *ev)
{
    struct test *t = arg;
    double el = (double)(now_us() - t->t0) / 1e6;
    if (!ev->task_id) {
        snprintf(t->run_state, sizeof t->run_state, "%s", ev->state);
        free(t->run_id);
        t->run_id = xstrdup(ev->run_id);
        if (!t->tty && !t->quiet)
            printf("[%8.3fs] run %s: %s\n", el, ev->run_id, ev->state);
        if (strcmp(ev->state, "success") == 0 || strcmp(ev->state, "failed") == 0)
            finish(t);
        return;
    }
    struct tview *v = task_at(t, ev->task_index, ev->task_id);
    snprintf(v->state, sizeof v->state, "%s", ev->state);
    v->try_number = ev->try_number;
    free(v->reason);
    v->reason = ev->reason ? xstrdup(ev->reason) : NULL;
    if (ev->log_path) {
        free(v->log);
        v->log = xstrdup(ev->log_path);
    }
    if (strcmp(ev->state, "running") == 0) {
        v->start_us = now_us();
        v->end_us = 0;
    } else if (strcmp(ev->state, "success") == 0 || strcmp(ev->state, "failed") == 0 ||
               strcmp(ev->state, "up_for_retry") == 0 || strcmp(ev->state, "skipped") == 0) {
        v->end_us = now_us();
    }
    if (!t->tty && !t->quiet) {
        printf("[%8.3fs] %-32s %s", el, ev->task_id, ev->state);
        if (ev->try_number > 0 && strcmp(ev->state, "running") == 0)
            printf(" (try %d)", ev->try_number);
        if (ev->reason)
            printf(": %s", ev->reason);
        putchar('\n');
        if (strcmp(ev->state, "failed") == 0 || strcmp(ev->state, "up_for_retry") == 0)
            print_tail(ev->log_path, 10);
        fflush(stdout);
    }
}

static int add_task_row(void *arg, struct store_row *r)
{
    struct tview *v = task_at(arg, (int)store_col_int(r, 2), store_col_text(r, 1));
    snprintf(v->state, sizeof v->state, "%s", store_col_text(r, 3));
    return 0;
}

static void on_sigint(uv_signal_t *h, int sig)
{
    struct test *t = h->data;
    if (++t->interrupts > 1) {
        fputs("\nkiln: interrupted again; exiting (tasks may still be running)\n", stderr);
        _exit(130);
    }
    fputs("\nkiln: cancelling the run (Ctrl-C again to exit at once)\n", stderr);
    struct kiln_err err = { 0 };
    if (sched_cancel_run(engine_sched(t->e), t->run_pk, "cancelled with Ctrl-C", &err) < 0)
        fprintf(stderr, "kiln: %s\n", err.msg);
}

int cli_dags_test(struct cli *c, int argc, char **argv)
{
    const char *file = NULL;
    bool quiet = false;
    int n_params = 0;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            help(stdout);
            return EXIT_OK;
        } else if (strcmp(argv[i], "-q") == 0 || strcmp(argv[i], "--quiet") == 0) {
            quiet = true;
        } else if ((strcmp(argv[i], "-p") == 0 || strcmp(argv[i], "--param") == 0) &&
                   i + 1 < argc) {
            const char *eq = strchr(argv[++i], '=');
            if (!eq || eq == argv[i]) {
                fprintf(stderr, "kiln: -p takes NAME=VALUE, got '%s'\n", argv[i]);
                return EXIT_USAGE;
            }
            n_params++;
        } else if (argv[i][0] == '-' || file) {
            fprintf(stderr, "kiln dags test: unexpected argument '%s'\n", argv[i]);
            return EXIT_USAGE;
        } else {
            file = argv[i];
        }
    }
    if (!file) {
        help(stderr);
        return EXIT_USAGE;
    }
    char *abs = realpath(file, NULL);
    if (!abs) {
        fprintf(stderr, "kiln: %s: no such file\n", file);
        return EXIT_NOTFOUND;
    }
    /* Refuse an invalid file before creating anything. */
    struct dag *check = NULL;
    struct kiln_err perr = { 0 };
    if (dag_load_file(abs, &check, &perr) < 0) {
        fprintf(stderr, "kiln: %s\n", perr.msg);
        free(abs);
        return cli_exit_code(perr.code);
    }
    dag_free(check);
    if (!c->home_given) {
        char tmpl[] = "/tmp/kiln-test-XXXXXX";
        const char *tmp = getenv("TMPDIR");
        char *dir = tmp ? xasprintf("%s/kiln-test-XXXXXX", tmp) : xstrdup(tmpl);
        if (!mkdtemp(dir)) {
            fprintf(stderr, "kiln: cannot create a temporary folder\n");
            free(dir);
            free(abs);
            return EXIT_FAILED;
        }
        free(c->cfg.home);
        c->cfg.home = dir;
    }
    signal(SIGPIPE, SIG_IGN);
    if (log_level == LOG_INFO)
        log_level = LOG_WARN; /* the view says what the info lines would */
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct test t = { .loop = &loop, .tty = isatty(1), .quiet = quiet, .t0 = now_us() };
    snprintf(t.run_state, sizeof t.run_state, "queued");
    struct engine_opts o = { .cfg = &c->cfg, .self_exe = c->self_exe, .daemon = false };
    struct kiln_err err = { 0 };
    int code = EXIT_FAILED;
    if (engine_open(&t.e, &loop, &o, &err) < 0) {
        fprintf(stderr, "kiln: %s\n", err.msg);
        uv_run(&loop, UV_RUN_NOWAIT);
        uv_loop_close(&loop);
        free(abs);
        return EXIT_FAILED;
    }
    sched_set_observer(engine_sched(t.e), on_event, &t);
    if (!t.tty && !quiet)
        printf("kiln dags test %s (home %s)\n", file, c->cfg.home);
    struct cmd_ctx cc;
    engine_cmd_ctx(t.e, &cc, cli_actor());
    struct json_object *body = json_object_new_object();
    json_object_object_add(body, "op", json_object_new_string("trigger"));
    json_object_object_add(body, "file", json_object_new_string(abs));
    json_object_object_add(body, "run_type", json_object_new_string("test"));
    if (n_params) {
        struct json_object *params = json_object_new_object();
        for (int i = 0; i + 1 < argc; i++)
            if (strcmp(argv[i], "-p") == 0 || strcmp(argv[i], "--param") == 0) {
                const char *kv = argv[++i], *eq = strchr(kv, '=');
                char *k = xstrndup(kv, (size_t)(eq - kv));
                json_object_object_add(params, k, json_object_new_string(eq + 1));
                free(k);
            }
        json_object_object_add(body, "params", params);
    }
    char *result = NULL;
    int rc = cmd_apply(&cc, json_object_to_json_string(body), &result, &err);
    json_object_put(body);
    if (rc < 0) {
        fprintf(stderr, "kiln: %s\n", err.msg);
        engine_stop(t.e);
        uv_run(&loop, UV_RUN_DEFAULT);
        engine_free(t.e);
        uv_loop_close(&loop);
        free(abs);
        return cli_exit_code(rc);
    }
    struct json_object *res = json_tokener_parse(result);
    struct json_object *pk = NULL;
    json_object_object_get_ex(res, "run", &pk);
    int64_t run_pk = pk ? json_object_get_int64(pk) : 0;
    t.run_pk = run_pk;
    json_object_put(res);
    free(result);
    /* Every task is listed from the start, in the DAG's order. */
    store_exec(engine_store(t.e), Q_ti_list, add_task_row, &t, NULL, "i", run_pk);
    uv_timer_init(&loop, &t.redraw);
    uv_timer_start(&t.redraw, on_redraw, 100, 100);
    uv_signal_init(&loop, &t.sigint);
    t.sigint.data = &t;
    uv_signal_start(&t.sigint, on_sigint, SIGINT);
    uv_run(&loop, UV_RUN_DEFAULT);

    enum run_state final = RUN_FAILED;
    sched_run_finished(engine_sched(t.e), run_pk, &final);
    double el = (double)(now_us() - t.t0) / 1e6;
    size_t nfail = 0, nok = 0, nskip = 0;
    for (size_t i = 0; i < t.n_tasks; i++) {
        if (strcmp(t.tasks[i].state, "success") == 0)
            nok++;
        else if (strcmp(t.tasks[i].state, "skipped") == 0)
            nskip++;
        else
            nfail++;
    }
    if (t.tty && !quiet) {
        for (size_t i = 0; i < t.n_tasks; i++)
            if (strcmp(t.tasks[i].state, "failed") == 0) {
                printf("\ntask %s failed: %s\n", t.tasks[i].id,
                       t.tasks[i].reason ? t.tasks[i].reason : "");
                print_tail(t.tasks[i].log, 15);
            }
    }
    printf("run %s %s in %.3fs: %zu succeeded, %zu skipped, %zu failed or not run "
           "(logs: %s/logs)\n", t.run_id ? t.run_id : "?", run_state_name(final), el, nok,
           nskip, nfail, c->cfg.home);
    code = final == RUN_SUCCESS ? EXIT_OK : EXIT_FAILED;
    engine_free(t.e);
    uv_loop_close(&loop);
    for (size_t i = 0; i < t.n_tasks; i++) {
        free(t.tasks[i].id);
        free(t.tasks[i].reason);
        free(t.tasks[i].log);
    }
    free(t.tasks);
    free(t.run_id);
    free(abs);
    return code;
}
