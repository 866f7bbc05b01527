/* kiln tasks: list, show, logs, clear, mark. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "cmd.h"
#include "state.h"
#include "util.h"

static void help(FILE *f)
{
    fputs("usage: kiln tasks list DAG RUN\n"
          "       kiln tasks show DAG RUN TASK\n"
          "       kiln tasks logs DAG RUN TASK [--try N] [-f]\n"
          "       kiln tasks clear DAG RUN TASK... [--downstream]\n"
          "       kiln tasks mark DAG RUN TASK success|failed|skipped\n"
          "\n"
          "RUN is a run id, the run's number, or 'latest'.\n"
          "logs -f   follows the log while the task runs, across its retries\n"
          "clear     resets the tasks (and with --downstream everything below them) so they\n"
          "          run again, with their full retry budget\n"
          "mark      sets a task's final state; a running task is stopped first\n",
          f);
    cli_print_common_help(f);
}

struct ti_info {
    bool found;
    int64_t pk;
    char state[32];
    int try_number;
};

static int ti_info_row(void *arg, struct store_row *r)
{
    struct ti_info *t = arg;
    t->found = true;
    t->pk = store_col_int(r, 0);
    snprintf(t->state, sizeof t->state, "%s", store_col_text(r, 3));
    t->try_number = (int)store_col_int(r, 4);
    return 1;
}

static int find_ti(struct cli *c, struct store *st, const char *dag, const char *sel,
                   const char *task, int64_t *run_pk, struct ti_info *ti)
{
    struct kiln_err err = { 0 };
    int rc = cmd_find_run(st, dag, sel, run_pk, &err);
    if (rc == 0) {
        memset(ti, 0, sizeof *ti);
        rc = store_exec(st, Q_ti_get, ti_info_row, ti, &err, "is", *run_pk, task);
        if (rc == 0 && !ti->found)
            rc = kiln_err_set(&err, KILN_ENOTFOUND, "run %s of DAG '%s' has no task '%s'", sel,
                              dag, task);
    }
    if (rc < 0)
        fprintf(stderr, "kiln: %s\n", err.msg);
    return rc < 0 ? cli_exit_code(rc) : EXIT_OK;
}

struct try_info {
    int number;
    char *log_path;
};

struct tries {
    struct try_info *v;
    size_t n;
    struct cli *c;
    struct json_object *arr;
};

static int try_row(void *arg, struct store_row *r)
{
    struct tries *t = arg;
    t->v = xrealloc(t->v, (t->n + 1) * sizeof *t->v);
    t->v[t->n].number = (int)store_col_int(r, 1);
    t->v[t->n].log_path = xstrdup(store_col_text(r, 11));
    t->n++;
    if (!t->arr)
        return 0;
    struct json_object *o = json_object_new_object();
    char a[40], b[40];
    time_format_iso(store_col_int(r, 6), a, sizeof a);
    time_format_iso(store_col_int(r, 7), b, sizeof b);
    json_object_object_add(o, "try_number", json_object_new_int64(store_col_int(r, 1)));
    json_object_object_add(o, "state", json_object_new_string(store_col_text(r, 2)));
    json_object_object_add(o, "executor", json_object_new_string(store_col_text(r, 3)));
    json_object_object_add(o, "executor_id", store_col_text(r, 4)
                           ? json_object_new_string(store_col_text(r, 4)) : NULL);
    json_object_object_add(o, "start", store_col_int(r, 6) ? json_object_new_string(a) : NULL);
    json_object_object_add(o, "end", store_col_int(r, 7) ? json_object_new_string(b) : NULL);
    json_object_object_add(o, "exit_code", store_col_null(r, 8) ? NULL
                           : json_object_new_int64(store_col_int(r, 8)));
    json_object_object_add(o, "signal", store_col_null(r, 9) ? NULL
                           : json_object_new_int64(store_col_int(r, 9)));
    json_object_object_add(o, "reason", store_col_text(r, 10)
                           ? json_object_new_string(store_col_text(r, 10)) : NULL);
    json_object_object_add(o, "log", json_object_new_string(store_col_text(r, 11)));
    json_object_object_add(o, "outputs", store_col_text(r, 12)
                           ? json_tokener_parse(store_col_text(r, 12)) : NULL);
    json_object_array_add(t->arr, o);
    return 0;
}

static void tries_free(struct tries *t)
{
    for (size_t i = 0; i < t->n; i++)
        free(t->v[i].log_path);
    free(t->v);
    t->v = NULL;
    t->n = 0;
}

static int tasks_show(struct cli *c, char **argv)
{
    struct store *st = NULL;
    int code = cli_open_store(c, &st);
    if (code)
        return code;
    int64_t run_pk;
    struct ti_info ti;
    if ((code = find_ti(c, st, argv[0], argv[1], argv[2], &run_pk, &ti)) != 0) {
        store_close(st);
        return code;
    }
    struct tries t = { .c = c, .arr = json_object_new_array() };
    store_exec(st, Q_try_list, try_row, &t, NULL, "i", ti.pk);
    if (c->json) {
        struct json_object *o = json_object_new_object();
        json_object_object_add(o, "task", json_object_new_string(argv[2]));
        json_object_object_add(o, "state", json_object_new_string(ti.state));
        json_object_object_add(o, "tries", json_object_get(t.arr));
        puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
                                                   JSON_C_TO_STRING_NOSLASHESCAPE));
        json_object_put(o);
    } else {
        printf("task %s: %s, %d try(s)\n", argv[2], ti.state, ti.try_number);
        for (size_t i = 0; i < json_object_array_length(t.arr); i++) {
            struct json_object *o = json_object_array_get_idx(t.arr, i), *v;
            printf("\ntry %zu:\n", i + 1);
            json_object_object_foreach(o, key, val) {
                (void)v;
                if (strcmp(key, "try_number") == 0)
                    continue;
                printf("  %-12s %s\n", key,
                       val ? json_object_to_json_string_ext(val, JSON_C_TO_STRING_PLAIN |
                                                                 JSON_C_TO_STRING_NOSLASHESCAPE)
                           : "-");
            }
        }
    }
    json_object_put(t.arr);
    tries_free(&t);
    store_close(st);
    return EXIT_OK;
}

/* Copies what was appended to fd since the last call to stdout. */
static void pump(int fd)
{
    char buf[65536];
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0)
        fwrite(buf, 1, (size_t)n, stdout);
    fflush(stdout);
}

static int tasks_logs(struct cli *c, int argc, char **argv)
{
    const char *pos[3];
    int np = 0, want_try = 0;
    bool follow = false;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "-f") == 0 || strcmp(argv[i], "--follow") == 0)
            follow = true;
        else if (strcmp(argv[i], "--try") == 0 && i + 1 < argc)
            want_try = atoi(argv[++i]);
        else if (argv[i][0] != '-' && np < 3)
            pos[np++] = argv[i];
        else {
            fprintf(stderr, "kiln tasks logs: unexpected argument '%s'\n", argv[i]);
            return EXIT_USAGE;
        }
    }
    if (np != 3) {
        fputs("usage: kiln tasks logs DAG RUN TASK [--try N] [-f]\n", stderr);
        return EXIT_USAGE;
    }
    struct store *st = NULL;
    int code = cli_open_store(c, &st);
    if (code)
        return code;
    int64_t run_pk;
    struct ti_info ti;
    if ((code = find_ti(c, st, pos[0], pos[1], pos[2], &run_pk, &ti)) != 0)
        goto out;
    struct tries t = { .c = c };
    store_exec(st, Q_try_list, try_row, &t, NULL, "i", ti.pk);
    if (t.n == 0 && !follow) {
        fprintf(stderr, "kiln: task '%s' has not run yet (%s)\n", pos[2], ti.state);
        code = EXIT_NOTFOUND;
        goto out;
    }
    int cur = want_try ? want_try : (t.n ? t.v[t.n - 1].number : 1);
    if (want_try && (want_try < 1 || (size_t)want_try > t.n)) {
        fprintf(stderr, "kiln: task '%s' has no try %d\n", pos[2], want_try);
        code = EXIT_NOTFOUND;
        tries_free(&t);
        goto out;
    }
    int fd = -1;
    for (;;) {
        if (fd < 0 && (size_t)cur <= t.n) {
            fd = open(t.v[cur - 1].log_path, O_RDONLY | O_CLOEXEC);
            if (fd < 0 && errno != ENOENT) {
                fprintf(stderr, "kiln: %s: %s\n", t.v[cur - 1].log_path, strerror(errno));
                code = EXIT_FAILED;
                break;
            }
        }
        if (fd >= 0)
            pump(fd);
        if (!follow)
            break;
        /* Follow: the database says when the task ends or a new try starts. */
        tries_free(&t);
        store_exec(st, Q_ti_get, ti_info_row, &ti, NULL, "is", run_pk, pos[2]);
        store_exec(st, Q_try_list, try_row, &t, NULL, "i", ti.pk);
        int state = ti_state_parse(ti.state);
        if (fd >= 0)
            pump(fd);
        if (!want_try && t.n > 0 && t.v[t.n - 1].number > cur) {
            if (fd >= 0)
                close(fd);
            fd = -1;
            cur = t.v[t.n - 1].number;
            printf("--- try %d ---\n", cur);
            continue;
        }
        if (state >= 0 && ti_state_terminal((enum ti_state)state))
            break;
        usleep(100000);
    }
    if (fd >= 0)
        close(fd);
    tries_free(&t);
out:
    store_close(st);
    return code;
}

static int tasks_clear(struct cli *c, int argc, char **argv)
{
    bool down = false;
    struct json_object *tasks = json_object_new_array();
    const char *dag = NULL, *run = NULL;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--downstream") == 0 || strcmp(argv[i], "-d") == 0)
            down = true;
        else if (argv[i][0] == '-') {
            fprintf(stderr, "kiln tasks clear: unexpected option '%s'\n", argv[i]);
            json_object_put(tasks);
            return EXIT_USAGE;
        } else if (!dag)
            dag = argv[i];
        else if (!run)
            run = argv[i];
        else
            json_object_array_add(tasks, json_object_new_string(argv[i]));
    }
    if (!dag || !run || json_object_array_length(tasks) == 0) {
        fputs("usage: kiln tasks clear DAG RUN TASK... [--downstream]\n", stderr);
        json_object_put(tasks);
        return EXIT_USAGE;
    }
    struct json_object *body = json_object_new_object();
    json_object_object_add(body, "op", json_object_new_string("clear"));
    json_object_object_add(body, "dag", json_object_new_string(dag));
    json_object_object_add(body, "run", json_object_new_string(run));
    json_object_object_add(body, "tasks", tasks);
    json_object_object_add(body, "downstream", json_object_new_boolean(down));
    return cli_apply(c, body, "cleared");
}

static int tasks_mark(struct cli *c, char **argv)
{
    struct json_object *body = json_object_new_object();
    json_object_object_add(body, "op", json_object_new_string("mark"));
    json_object_object_add(body, "dag", json_object_new_string(argv[0]));
    json_object_object_add(body, "run", json_object_new_string(argv[1]));
    json_object_object_add(body, "task", json_object_new_string(argv[2]));
    json_object_object_add(body, "state", json_object_new_string(argv[3]));
    char done[300];
    snprintf(done, sizeof done, "marked %s %s", argv[2], argv[3]);
    return cli_apply(c, body, done);
}

int cli_tasks(struct cli *c)
{
    const char *sub = c->argc > 0 ? c->argv[0] : NULL;
    if (!sub || cli_wants_help(c->argc, c->argv)) {
        help(sub ? stdout : stderr);
        return sub ? EXIT_OK : EXIT_USAGE;
    }
    if (strcmp(sub, "list") == 0 && c->argc == 3) {
        struct store *st = NULL;
        int code = cli_open_store(c, &st);
        if (code)
            return code;
        int64_t pk;
        struct kiln_err err = { 0 };
        int rc = cmd_find_run(st, c->argv[1], c->argv[2], &pk, &err);
        if (rc < 0) {
            fprintf(stderr, "kiln: %s\n", err.msg);
            code = cli_exit_code(rc);
        } else {
            code = cli_print_tis(c, st, pk, NULL);
        }
        store_close(st);
        return code;
    }
    if (strcmp(sub, "show") == 0 && c->argc == 4)
        return tasks_show(c, c->argv + 1);
    if (strcmp(sub, "logs") == 0)
        return tasks_logs(c, c->argc - 1, c->argv + 1);
    if (strcmp(sub, "clear") == 0)
        return tasks_clear(c, c->argc - 1, c->argv + 1);
    if (strcmp(sub, "mark") == 0 && c->argc == 5)
        return tasks_mark(c, c->argv + 1);
    fprintf(stderr, "kiln tasks: bad arguments for '%s'\n", sub);
    help(stderr);
    return EXIT_USAGE;
}
