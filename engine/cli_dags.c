/* kiln dags: list, show, test, trigger, pause, unpause, backfill, next. */
#include <inttypes.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "cmd.h"
#include "dagdir.h"
#include "schedule.h"
#include "state.h"
#include "util.h"

static void help(FILE *f)
{
    fputs("usage: kiln dags list\n"
          "       kiln dags show DAG\n"
          "       kiln dags versions DAG\n"
          "       kiln dags test FILE [-q]\n"
          "       kiln dags trigger DAG [-p NAME=VALUE]... [--run-id ID] [--wait]\n"
          "       kiln dags pause DAG\n"
          "       kiln dags unpause DAG\n"
          "       kiln dags backfill DAG --from TIME --to TIME [--max-active N]\n"
          "       kiln dags next DAG [-n N]\n"
          "\n"
          "list     parses every file of the DAG folder; files with errors are listed with\n"
          "         FILE:LINE:COL and the problem (exit 1 if any file has an error)\n"
          "show     the tasks of a DAG, their dependencies and settings\n"
          "versions every recorded version of a DAG: content hash, git commit (and '+' when\n"
          "         the file differed from it), when it was first seen, runs that used it;\n"
          "         '*' marks the current one.  The daemon records a version within a\n"
          "         second of a save; a run keeps the version it started with\n"
          "test     runs one run of FILE in this process with a live view; exit 0 only if\n"
          "         the run succeeded (see kiln dags test --help)\n"
          "trigger  queues a manual run; with --wait, waits for it and exits 0 only if it\n"
          "         succeeded.  Works whether or not a daemon runs.\n"
          "pause    no new runs start and queued tasks wait; unpause resumes\n"
          "backfill one run per data interval of the schedule that starts in [--from, --to]\n"
          "         (times in the DAG's timezone), run id backfill__<start>; existing ones\n"
          "         are skipped.  At most N (default 1) run at once, queued apart from the\n"
          "         DAG's scheduled and manual runs.  Works whether or not a daemon runs.\n"
          "next     the next N (default 5) fire times (ends of data intervals, when the\n"
          "         runs are created) in the DAG's timezone\n",
          f);
    cli_print_common_help(f);
}

struct last_run {
    char state[32];
    char run_id[200];
};

static int last_run_row(void *arg, struct store_row *r)
{
    struct last_run *l = arg;
    snprintf(l->run_id, sizeof l->run_id, "%s", store_col_text(r, 2));
    snprintf(l->state, sizeof l->state, "%s", store_col_text(r, 5));
    return 1;
}

static int paused_row(void *arg, struct store_row *r)
{
    *(int *)arg = (int)store_col_int(r, 2);
    return 1;
}

static int missing_row(void *arg, struct store_row *r)
{
    struct sbuf *b = arg;
    if (store_col_int(r, 2))
        sbuf_printf(b, "%s%s", b->len ? ", " : "", store_col_text(r, 0));
    return 0;
}

static int dags_list(struct cli *c)
{
    struct dagdir *dd = NULL;
    struct kiln_err err = { 0 };
    if (dagdir_load(c->cfg.dags, &dd, &err) < 0) {
        fprintf(stderr, "kiln: %s\n", err.msg);
        return EXIT_FAILED;
    }
    struct store *st = NULL;
    int code = cli_open_store(c, &st);
    if (code) {
        dagdir_free(dd);
        return code;
    }
    size_t bad = 0;
    struct json_object *arr = json_object_new_array();
    if (!c->json)
        printf("%-28s %-6s %-14s %-7s %-10s %s\n", "DAG", "TASKS", "SCHEDULE", "PAUSED",
               "LAST RUN", "FILE");
    for (size_t i = 0; i < dd->n; i++) {
        struct dagdir_entry *en = &dd->entries[i];
        if (!en->dag) {
            bad++;
            if (c->json) {
                struct json_object *o = json_object_new_object();
                json_object_object_add(o, "dag", NULL);
                json_object_object_add(o, "file", json_object_new_string(en->path));
                json_object_object_add(o, "error", json_object_new_string(en->error));
                json_object_array_add(arr, o);
            }
            continue;
        }
        int paused = 0;
        struct last_run lr = { "-", "" };
        store_exec(st, Q_dag_get, paused_row, &paused, NULL, "s", en->dag->id);
        store_exec(st, Q_run_list, last_run_row, &lr, NULL, "soi", en->dag->id, (int64_t)0,
                   (int64_t)1);
        if (c->json) {
            struct json_object *o = json_object_new_object();
            json_object_object_add(o, "dag", json_object_new_string(en->dag->id));
            json_object_object_add(o, "file", json_object_new_string(en->path));
            json_object_object_add(o, "tasks", json_object_new_int64((int64_t)en->dag->n_tasks));
            json_object_object_add(o, "schedule", en->dag->schedule
                                   ? json_object_new_string(en->dag->schedule) : NULL);
            json_object_object_add(o, "paused", json_object_new_boolean(paused));
            json_object_object_add(o, "last_run_state",
                                   lr.run_id[0] ? json_object_new_string(lr.state) : NULL);
            json_object_object_add(o, "error", NULL);
            json_object_array_add(arr, o);
        } else {
            printf("%-28s %-6zu %-14s %-7s %-10s %s\n", en->dag->id, en->dag->n_tasks,
                   en->dag->schedule ? en->dag->schedule : "manual", paused ? "yes" : "no",
                   lr.state, en->path);
        }
    }
    if (c->json) {
        puts(json_object_to_json_string_ext(arr, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
                                                     JSON_C_TO_STRING_NOSLASHESCAPE));
    } else if (bad) {
        printf("\n%zu file(s) with errors:\n", bad);
        for (size_t i = 0; i < dd->n; i++)
            if (!dd->entries[i].dag)
                printf("  %s\n", dd->entries[i].error);
    }
    if (!c->json) {
        struct sbuf gone;
        sbuf_init(&gone);
        store_exec(st, Q_dag_all, missing_row, &gone, NULL, "");
        if (gone.len)
            printf("\nDAGs whose file left the folder (they no longer run; runs and versions "
                   "are kept): %s\n", gone.data);
        sbuf_free(&gone);
    }
    json_object_put(arr);
    store_close(st);
    dagdir_free(dd);
    return bad ? EXIT_FAILED : EXIT_OK;
}

struct versions_ctx {
    struct cli *c;
    struct json_object *arr;
    int rows;
};

static int version_row(void *arg, struct store_row *r)
{
    struct versions_ctx *vc = arg;
    vc->rows++;
    const char *hash = store_col_text(r, 1), *commit = store_col_text(r, 2);
    bool dirty_known = !store_col_null(r, 3);
    int64_t dirty = store_col_int(r, 3), created = store_col_int(r, 4), runs = store_col_int(r, 6);
    bool current = store_col_int(r, 7) != 0;
    char iso[40];
    time_format_iso(created, iso, sizeof iso);
    if (vc->c->json) {
        struct json_object *o = json_object_new_object();
        json_object_object_add(o, "version", json_object_new_int64(store_col_int(r, 0)));
        json_object_object_add(o, "hash", json_object_new_string(hash ? hash : ""));
        json_object_object_add(o, "git_commit", commit ? json_object_new_string(commit) : NULL);
        json_object_object_add(o, "git_dirty", dirty_known ? json_object_new_boolean(dirty != 0)
                                                           : NULL);
        json_object_object_add(o, "created", json_object_new_string(iso));
        json_object_object_add(o, "file", store_col_text(r, 5)
                               ? json_object_new_string(store_col_text(r, 5)) : NULL);
        json_object_object_add(o, "runs", json_object_new_int64(runs));
        json_object_object_add(o, "current", json_object_new_boolean(current));
        json_object_array_add(vc->arr, o);
        return 0;
    }
    char cm[16];
    snprintf(cm, sizeof cm, "%.12s%s", commit ? commit : "-",
             commit && dirty_known && dirty ? "+" : commit && !dirty_known ? "?" : "");
    printf("%-8" PRId64 " %-1s %-12.12s %-14s %-6s %-25s %" PRId64 "\n", store_col_int(r, 0),
           current ? "*" : "", hash ? hash : "", cm,
           !dirty_known ? "?" : dirty ? "yes" : "no", iso, runs);
    return 0;
}

static int dags_versions(struct cli *c, const char *dag_id)
{
    struct store *st = NULL;
    int code = cli_open_store(c, &st);
    if (code)
        return code;
    struct versions_ctx vc = { c, json_object_new_array(), 0 };
    struct kiln_err err = { 0 };
    bool known = false;
    int64_t dummy;
    int rc = store_get_int(st, Q_dag_get, &dummy, &known, &err, "s", dag_id);
    if (rc == 0 && !known) {
        fprintf(stderr, "kiln: no DAG '%s' has been recorded (the daemon records a DAG's "
                "versions; a trigger records the one it uses)\n", dag_id);
        code = EXIT_NOTFOUND;
        goto out;
    }
    if (!c->json)
        printf("%-8s %-1s %-12s %-14s %-6s %-25s %s\n", "VERSION", "", "HASH", "GIT COMMIT",
               "DIRTY", "CREATED", "RUNS");
    if (rc == 0)
        rc = store_exec(st, Q_version_list, version_row, &vc, &err, "s", dag_id);
    if (rc < 0) {
        fprintf(stderr, "kiln: %s\n", err.msg);
        code = EXIT_FAILED;
        goto out;
    }
    if (c->json)
        puts(json_object_to_json_string_ext(vc.arr, JSON_C_TO_STRING_PRETTY |
                                                        JSON_C_TO_STRING_SPACED |
                                                        JSON_C_TO_STRING_NOSLASHESCAPE));
out:
    json_object_put(vc.arr);
    store_close(st);
    return code;
}

/* The DAG with this id from the folder, as the commands that change state
 * would find it. */
static int load_dag(struct cli *c, const char *dag_id, struct dag **out, struct kiln_err *err)
{
    struct store *st = NULL;
    if (cli_open_store(c, &st) != 0)
        return kiln_err_set(err, KILN_ESTORE, "cannot open the database in %s", c->cfg.home);
    char *src = NULL;
    size_t len;
    int rc = cmd_find_dag(st, c->cfg.dags, dag_id, out, &src, &len, err);
    store_close(st);
    free(src);
    return rc;
}

static int dags_show(struct cli *c, const char *dag_id)
{
    struct dag *d = NULL;
    struct kiln_err err = { 0 };
    int rc = load_dag(c, dag_id, &d, &err);
    if (rc < 0) {
        fprintf(stderr, "kiln: %s\n", err.msg);
        return cli_exit_code(rc);
    }
    struct json_object *o = json_object_new_object();
    json_object_object_add(o, "dag", json_object_new_string(d->id));
    json_object_object_add(o, "file", json_object_new_string(d->path));
    json_object_object_add(o, "hash", json_object_new_string(d->hash ? d->hash : ""));
    json_object_object_add(o, "schedule", d->schedule ? json_object_new_string(d->schedule)
                                                      : NULL);
    json_object_object_add(o, "max_active_runs", json_object_new_int(d->max_active_runs));
    json_object_object_add(o, "max_active_tasks", json_object_new_int(d->max_active_tasks));
    struct json_object *params = json_object_new_object();
    for (size_t i = 0; i < d->n_params; i++)
        json_object_object_add(params, d->params[i].key,
                               json_object_new_string(d->params[i].value));
    json_object_object_add(o, "params", params);
    struct json_object *tasks = json_object_new_array();
    if (!c->json)
        printf("DAG %s (%s)\n%zu task(s)\n\n", d->id, d->path, d->n_tasks);
    for (size_t i = 0; i < d->n_tasks; i++) {
        const struct dag_task *t = &d->tasks[d->topo ? d->topo[i] : i];
        struct json_object *to = json_object_new_object();
        struct json_object *argv = json_object_new_array(), *deps = json_object_new_array();
        for (size_t k = 0; k < t->argc; k++)
            json_object_array_add(argv, json_object_new_string(t->argv[k]));
        for (size_t k = 0; k < t->n_up; k++)
            json_object_array_add(deps, json_object_new_string(d->tasks[t->up[k]].id));
        json_object_object_add(to, "id", json_object_new_string(t->id));
        json_object_object_add(to, "deps", deps);
        json_object_object_add(to, "command", argv);
        json_object_object_add(to, "trigger_rule",
                               json_object_new_string(trigger_rule_name(t->trigger_rule)));
        json_object_object_add(to, "retries", json_object_new_int(t->retries));
        json_object_object_add(to, "retry_delay_ms", json_object_new_int64(t->retry_delay_ms));
        json_object_object_add(to, "timeout_ms", json_object_new_int64(t->timeout_ms));
        json_object_object_add(to, "pool", json_object_new_string(t->pool));
        json_object_object_add(to, "priority_weight", json_object_new_int(t->priority_weight));
        json_object_object_add(to, "executor",
                               json_object_new_string(t->executor ? t->executor : "local"));
        json_object_array_add(tasks, to);
        if (!c->json) {
            printf("%s\n  command: ", t->id);
            for (size_t k = 0; k < t->argc; k++)
                printf("%s%s", k ? " " : "", t->argv[k]);
            printf("\n  deps:    ");
            for (size_t k = 0; k < t->n_up; k++)
                printf("%s%s", k ? ", " : "", d->tasks[t->up[k]].id);
            char delay[32], tmo[32];
            duration_format(t->retry_delay_ms, delay, sizeof delay);
            duration_format(t->timeout_ms, tmo, sizeof tmo);
            printf("%s\n  rule %s, retries %d (delay %s%s), timeout %s, pool %s, priority %d\n\n",
                   t->n_up ? "" : "(none)", trigger_rule_name(t->trigger_rule), t->retries,
                   delay, t->retry_exponential_backoff ? ", exponential" : "",
                   t->timeout_ms ? tmo : "none", t->pool, t->priority_weight);
        }
    }
    json_object_object_add(o, "tasks", tasks);
    if (c->json)
        puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
                                                   JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(o);
    dag_free(d);
    return EXIT_OK;
}

struct run_state_row {
    char state[32];
};

static int run_state_cb(void *arg, struct store_row *r)
{
    snprintf(((struct run_state_row *)arg)->state, 32, "%s", store_col_text(r, 5));
    return 1;
}

static int dags_trigger(struct cli *c, int argc, char **argv)
{
    const char *dag_id = NULL, *run_id = NULL;
    bool wait = false;
    struct json_object *body = json_object_new_object(), *params = json_object_new_object();
    int code = EXIT_OK;
    for (int i = 0; i < argc; i++) {
        if ((strcmp(argv[i], "-p") == 0 || strcmp(argv[i], "--param") == 0) && i + 1 < argc) {
            const char *kv = argv[++i], *eq = strchr(kv, '=');
            if (!eq || eq == kv) {
                fprintf(stderr, "kiln: -p takes NAME=VALUE, got '%s'\n", kv);
                code = EXIT_USAGE;
                goto out;
            }
            char *k = xstrndup(kv, (size_t)(eq - kv));
            json_object_object_add(params, k, json_object_new_string(eq + 1));
            free(k);
        } else if (strcmp(argv[i], "--run-id") == 0 && i + 1 < argc) {
            run_id = argv[++i];
        } else if (strcmp(argv[i], "--wait") == 0) {
            wait = true;
        } else if (argv[i][0] == '-' || dag_id) {
            fprintf(stderr, "kiln dags trigger: unexpected argument '%s'\n", argv[i]);
            code = EXIT_USAGE;
            goto out;
        } else {
            dag_id = argv[i];
        }
    }
    if (!dag_id) {
        fputs("kiln dags trigger: which DAG?\n", stderr);
        code = EXIT_USAGE;
        goto out;
    }
    json_object_object_add(body, "op", json_object_new_string("trigger"));
    json_object_object_add(body, "dag", json_object_new_string(dag_id));
    json_object_object_add(body, "params", json_object_get(params));
    if (run_id)
        json_object_object_add(body, "run_id", json_object_new_string(run_id));
    char *result = NULL;
    code = cli_mutate(c, json_object_to_json_string(body), &result);
    if (code)
        goto out;
    struct json_object *r = json_tokener_parse(result);
    struct json_object *rid = NULL;
    json_object_object_get_ex(r, "run_id", &rid);
    if (c->json)
        puts(result);
    else
        printf("triggered %s run %s\n", dag_id, rid ? json_object_get_string(rid) : "?");
    if (wait && rid) {
        struct store *st = NULL;
        if ((code = cli_open_store(c, &st)) == 0) {
            int64_t pk = 0;
            struct kiln_err err = { 0 };
            cmd_find_run(st, dag_id, json_object_get_string(rid), &pk, &err);
            for (;;) {
                struct run_state_row s = { "" };
                store_exec(st, Q_run_get, run_state_cb, &s, &err, "i", pk);
                if (strcmp(s.state, "success") == 0 || strcmp(s.state, "failed") == 0) {
                    if (!c->json)
                        printf("run %s: %s\n", json_object_get_string(rid), s.state);
                    code = strcmp(s.state, "success") == 0 ? EXIT_OK : EXIT_FAILED;
                    break;
                }
                usleep(50000);
            }
            store_close(st);
        }
    }
    json_object_put(r);
    free(result);
out:
    json_object_put(params);
    json_object_put(body);
    return code;
}

static int dags_pause(struct cli *c, const char *dag_id, bool paused)
{
    struct json_object *body = json_object_new_object();
    json_object_object_add(body, "op", json_object_new_string(paused ? "pause" : "unpause"));
    json_object_object_add(body, "dag", json_object_new_string(dag_id));
    return cli_apply(c, body, paused ? "paused" : "unpaused");
}

static int dags_backfill(struct cli *c, int argc, char **argv)
{
    const char *dag_id = NULL, *from = NULL, *to = NULL, *max = NULL;
    for (int i = 0; i < argc; i++) {
        int t;
        if ((t = cli_take_value(&i, argc, argv, "--from", &from, "kiln dags backfill")) ||
            (t = cli_take_value(&i, argc, argv, "--to", &to, "kiln dags backfill")) ||
            (t = cli_take_value(&i, argc, argv, "--max-active", &max, "kiln dags backfill"))) {
            if (t < 0)
                return EXIT_USAGE;
        } else if (!dag_id && argv[i][0] != '-') {
            dag_id = argv[i];
        } else {
            fprintf(stderr, "kiln dags backfill: unexpected argument '%s'\n", argv[i]);
            return EXIT_USAGE;
        }
    }
    if (!dag_id || !from || !to) {
        fprintf(stderr, "usage: kiln dags backfill DAG --from TIME --to TIME [--max-active N]\n");
        return EXIT_USAGE;
    }
    struct json_object *body = json_object_new_object();
    json_object_object_add(body, "op", json_object_new_string("backfill"));
    json_object_object_add(body, "dag", json_object_new_string(dag_id));
    json_object_object_add(body, "from", json_object_new_string(from));
    json_object_object_add(body, "to", json_object_new_string(to));
    if (max) {
        char *end;
        long n = strtol(max, &end, 10);
        if (*end || n < 1 || n > 10000) {
            fprintf(stderr, "kiln dags backfill: --max-active must be 1..10000, got '%s'\n",
                    max);
            json_object_put(body);
            return EXIT_USAGE;
        }
        json_object_object_add(body, "max_active", json_object_new_int64(n));
    }
    char *result = NULL;
    int rc = cli_mutate(c, json_object_to_json_string_ext(body, JSON_C_TO_STRING_PLAIN),
                        &result);
    json_object_put(body);
    if (rc)
        return rc;
    if (c->json) {
        printf("%s\n", result);
    } else {
        struct json_object *r = json_tokener_parse(result), *v;
        long created = 0, skipped = 0;
        if (r && json_object_object_get_ex(r, "created", &v))
            created = json_object_get_int(v);
        if (r && json_object_object_get_ex(r, "skipped", &v))
            skipped = json_object_get_int(v);
        printf("backfill %s: %ld run(s) created, %ld already there\n", dag_id, created,
               skipped);
        json_object_put(r);
    }
    free(result);
    return EXIT_OK;
}

static int dags_next(struct cli *c, int argc, char **argv)
{
    const char *dag_id = NULL, *nstr = NULL;
    for (int i = 0; i < argc; i++) {
        int t;
        if ((t = cli_take_value(&i, argc, argv, "-n", &nstr, "kiln dags next"))) {
            if (t < 0)
                return EXIT_USAGE;
        } else if (!dag_id && argv[i][0] != '-') {
            dag_id = argv[i];
        } else {
            fprintf(stderr, "kiln dags next: unexpected argument '%s'\n", argv[i]);
            return EXIT_USAGE;
        }
    }
    long n = 5;
    if (nstr) {
        char *end;
        n = strtol(nstr, &end, 10);
        if (*end || n < 1 || n > 10000) {
            fprintf(stderr, "kiln dags next: -n must be 1..10000, got '%s'\n", nstr);
            return EXIT_USAGE;
        }
    }
    if (!dag_id) {
        fprintf(stderr, "usage: kiln dags next DAG [-n N]\n");
        return EXIT_USAGE;
    }
    struct dag *d = NULL;
    struct kiln_err err = { 0 };
    int rc = load_dag(c, dag_id, &d, &err);
    struct schedule s = { 0 };
    if (rc == 0)
        rc = schedule_from_dag(d, &s, &err);
    if (rc == 0 && !s.cron)
        rc = kiln_err_set(&err, KILN_EINVALID, "DAG '%s' has no schedule", dag_id);
    if (rc < 0) {
        fprintf(stderr, "kiln: %s\n", err.msg);
        dag_free(d);
        schedule_free(&s);
        return cli_exit_code(rc);
    }
    int64_t *fires = xcalloc((size_t)n, sizeof *fires);
    size_t k = schedule_next_fires(&s, now_us(), fires, (size_t)n);
    struct json_object *arr = json_object_new_array();
    for (size_t i = 0; i < k; i++) {
        char buf[64];
        cron_format_time(s.cron, fires[i], buf, sizeof buf);
        if (c->json)
            json_object_array_add(arr, json_object_new_string(buf));
        else
            printf("%s\n", buf);
    }
    if (c->json)
        printf("%s\n", json_object_to_json_string_ext(arr, JSON_C_TO_STRING_PLAIN));
    json_object_put(arr);
    free(fires);
    schedule_free(&s);
    dag_free(d);
    return EXIT_OK;
}

int cli_dags(struct cli *c)
{
    const char *sub = c->argc > 0 ? c->argv[0] : NULL;
    if (sub && strcmp(sub, "test") == 0)
        return cli_dags_test(c, c->argc - 1, c->argv + 1);
    if (!sub || cli_wants_help(c->argc, c->argv)) {
        help(sub ? stdout : stderr);
        return sub ? EXIT_OK : EXIT_USAGE;
    }
    if (strcmp(sub, "list") == 0 && c->argc == 1)
        return dags_list(c);
    if (strcmp(sub, "show") == 0 && c->argc == 2)
        return dags_show(c, c->argv[1]);
    if (strcmp(sub, "versions") == 0 && c->argc == 2)
        return dags_versions(c, c->argv[1]);
    if (strcmp(sub, "trigger") == 0)
        return dags_trigger(c, c->argc - 1, c->argv + 1);
    if (strcmp(sub, "backfill") == 0)
        return dags_backfill(c, c->argc - 1, c->argv + 1);
    if (strcmp(sub, "next") == 0)
        return dags_next(c, c->argc - 1, c->argv + 1);
    if ((strcmp(sub, "pause") == 0 || strcmp(sub, "unpause") == 0) && c->argc == 2)
        return dags_pause(c, c->argv[1], strcmp(sub, "pause") == 0);
    fprintf(stderr, "kiln dags: bad arguments for '%s'\n", sub);
    help(stderr);
    return EXIT_USAGE;
}
