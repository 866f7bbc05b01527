/* kiln runs: list, show, cancel. */
#include <inttypes.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cmd.h"
#include "state.h"
#include "util.h"

static void help(FILE *f)
{
    fputs("usage: kiln runs list [DAG] [--state STATE] [-n N]\n"
          "       kiln runs show DAG RUN\n"
          "       kiln runs cancel DAG RUN\n"
          "\n"
          "RUN is a run id, the run's number (first column of `runs list`), or 'latest'.\n"
          "cancel stops the run's running tasks (they end failed) and skips the rest.\n",
          f);
    cli_print_common_help(f);
}

static void fmt_dur(int64_t start, int64_t end, char *buf, size_t n)
{
    if (start <= 0) {
        snprintf(buf, n, "-");
        return;
    }
    int64_t e = end > 0 ? end : now_us();
    int64_t ms = (e - start) / 1000;
    if (ms < 10000)
        snprintf(buf, n, "%.2fs", (double)ms / 1000.0);
    else
        duration_format(ms, buf, n);
}

struct list_ctx {
    struct cli *c;
    struct json_object *arr;
    int rows;
};

static void add_str(struct json_object *o, const char *k, const char *v)
{
    json_object_object_add(o, k, v ? json_object_new_string(v) : NULL);
}

static void add_time(struct json_object *o, const char *k, int64_t us)
{
    char iso[40];
    time_format_iso(us, iso, sizeof iso);
    add_str(o, k, us > 0 ? iso : NULL);
}

static int run_row(void *arg, struct store_row *r)
{
    struct list_ctx *lc = arg;
    lc->rows++;
    int64_t start = store_col_int(r, 9), end = store_col_int(r, 10);
    if (lc->c->json) {
        struct json_object *o = json_object_new_object();
        json_object_object_add(o, "number", json_object_new_int64(store_col_int(r, 0)));
        add_str(o, "dag", store_col_text(r, 1));
        add_str(o, "run_id", store_col_text(r, 2));
        json_object_object_add(o, "version", json_object_new_int64(store_col_int(r, 3)));
        add_str(o, "run_type", store_col_text(r, 4));
        add_str(o, "state", store_col_text(r, 5));
        json_object_object_add(o, "params", json_tokener_parse(store_col_text(r, 6)
                                                                   ? store_col_text(r, 6) : "{}"));
        add_time(o, "created", store_col_int(r, 8));
        add_time(o, "start", start);
        add_time(o, "end", end);
        json_object_array_add(lc->arr, o);
        return 0;
    }
    char started[40], dur[32];
    time_format_iso(start, started, sizeof started);
    fmt_dur(start, end, dur, sizeof dur);
    printf("%-6" PRId64 " %-20s %-40s %-8s %-8s %-25s %s\n", store_col_int(r, 0),
           store_col_text(r, 1), store_col_text(r, 2), store_col_text(r, 4), store_col_text(r, 5),
           started, dur);
    return 0;
}

static int runs_list(struct cli *c, int argc, char **argv)
{
    const char *dag = NULL, *state = NULL;
    int64_t limit = 25;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--state") == 0 && i + 1 < argc) {
            state = argv[++i];
            if (run_state_parse(state) < 0) {
                fprintf(stderr, "kiln: --state takes queued, running, success or failed\n");
                return EXIT_USAGE;
            }
        } else if (strcmp(argv[i], "-n") == 0 && i + 1 < argc) {
            limit = strtoll(argv[++i], NULL, 10);
            if (limit <= 0) {
                fprintf(stderr, "kiln: -n takes a positive number\n");
                return EXIT_USAGE;
            }
        } else if (argv[i][0] != '-' && !dag) {
            dag = argv[i];
        } else {
            fprintf(stderr, "kiln runs list: unexpected argument '%s'\n", argv[i]);
            return EXIT_USAGE;
        }
    }
    struct store *st = NULL;
    int code = cli_open_store(c, &st);
    if (code)
        return code;
    struct list_ctx lc = { c, json_object_new_array(), 0 };
    if (!c->json)
        printf("%-6s %-20s %-40s %-8s %-8s %-25s %s\n", "#", "DAG", "RUN ID", "TYPE", "STATE",
               "STARTED", "DURATION");
    struct kiln_err err = { 0 };
    int rc = store_exec(st, Q_run_list, run_row, &lc, &err, "ssi", dag, state, limit);
    if (c->json)
        puts(json_object_to_json_string_ext(lc.arr, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
                                                        JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(lc.arr);
    store_close(st);
    if (rc < 0) {
        fprintf(stderr, "kiln: %s\n", err.msg);
        return EXIT_FAILED;
    }
    return EXIT_OK;
}

static int ti_row(void *arg, struct store_row *r)
{
    struct list_ctx *lc = arg;
    lc->rows++;
    int64_t start = store_col_int(r, 8), end = store_col_int(r, 9);
    if (lc->c->json) {
        struct json_object *o = json_object_new_object();
        add_str(o, "task", store_col_text(r, 1));
        add_str(o, "state", store_col_text(r, 3));
        json_object_object_add(o, "try_number", json_object_new_int64(store_col_int(r, 4)));
        json_object_object_add(o, "max_tries", json_object_new_int64(store_col_int(r, 5)));
        add_str(o, "reason", store_col_text(r, 7));
        add_time(o, "start", start);
        add_time(o, "end", end);
        json_object_array_add(lc->arr, o);
        return 0;
    }
    char dur[32];
    fmt_dur(start, end, dur, sizeof dur);
    printf("%-30s %-16s %3" PRId64 "/%-3" PRId64 " %-10s %s\n", store_col_text(r, 1),
           store_col_text(r, 3), store_col_int(r, 4), store_col_int(r, 5), dur,
           store_col_text(r, 7) ? store_col_text(r, 7) : "");
    return 0;
}

int cli_print_tis(struct cli *c, struct store *st, int64_t run_pk, struct json_object *into)
{
    struct list_ctx lc = { c, into ? into : json_object_new_array(), 0 };
    if (!c->json)
        printf("%-30s %-16s %-7s %-10s %s\n", "TASK", "STATE", "TRY", "DURATION", "REASON");
    struct kiln_err err = { 0 };
    int rc = store_exec(st, Q_ti_list, ti_row, &lc, &err, "i", run_pk);
    if (c->json && !into)
        puts(json_object_to_json_string_ext(lc.arr, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
                                                        JSON_C_TO_STRING_NOSLASHESCAPE));
    if (!into)
        json_object_put(lc.arr);
    if (rc < 0)
        fprintf(stderr, "kiln: %s\n", err.msg);
    return rc < 0 ? EXIT_FAILED : EXIT_OK;
}

struct run_version {
    int64_t id;
    char *hash, *commit;
    int dirty;   /* -1 unknown */
};

static int run_version_id_cb(void *arg, struct store_row *r)
{
    ((struct run_version *)arg)->id = store_col_int(r, 3);
    return 1;
}

static int run_version_cb(void *arg, struct store_row *r)
{
    struct run_version *v = arg;
    v->hash = xstrdup(store_col_text(r, 1) ? store_col_text(r, 1) : "");
    if (store_col_text(r, 2))
        v->commit = xstrdup(store_col_text(r, 2));
    v->dirty = store_col_null(r, 3) ? -1 : (int)store_col_int(r, 3);
    return 1;
}

/* The DAG version a run uses (it keeps it even when the file changes). */
static void run_version_get(struct store *st, int64_t run_pk, struct run_version *v)
{
    memset(v, 0, sizeof *v);
    v->dirty = -1;
    store_exec(st, Q_run_get, run_version_id_cb, v, NULL, "i", run_pk);
    if (v->id)
        store_exec(st, Q_version_meta, run_version_cb, v, NULL, "i", v->id);
}

static int runs_show(struct cli *c, const char *dag, const char *sel)
{
    struct store *st = NULL;
    int code = cli_open_store(c, &st);
    if (code)
        return code;
    int64_t pk;
    struct kiln_err err = { 0 };
    int rc = cmd_find_run(st, dag, sel, &pk, &err);
    if (rc < 0) {
        fprintf(stderr, "kiln: %s\n", err.msg);
        store_close(st);
        return cli_exit_code(rc);
    }
    struct list_ctx lc = { c, json_object_new_array(), 0 };
    if (!c->json)
        printf("%-6s %-20s %-40s %-8s %-8s %-25s %s\n", "#", "DAG", "RUN ID", "TYPE", "STATE",
               "STARTED", "DURATION");
    store_exec(st, Q_run_get, run_row, &lc, &err, "i", pk);
    if (c->json) {
        struct json_object *run = json_object_get(json_object_array_get_idx(lc.arr, 0));
        struct json_object *tis = json_object_new_array();
        cli_print_tis(c, st, pk, tis);
        json_object_object_add(run, "tasks", tis);
        struct run_version v;
        run_version_get(st, pk, &v);
        json_object_object_add(run, "version_hash", v.hash ? json_object_new_string(v.hash)
                                                           : NULL);
        json_object_object_add(run, "git_commit", v.commit ? json_object_new_string(v.commit)
                                                           : NULL);
        json_object_object_add(run, "git_dirty", v.dirty < 0 ? NULL
                                                             : json_object_new_boolean(v.dirty));
        free(v.hash);
        free(v.commit);
        puts(json_object_to_json_string_ext(run, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
                                                     JSON_C_TO_STRING_NOSLASHESCAPE));
        json_object_put(run);
    } else {
        struct run_version v;
        run_version_get(st, pk, &v);
        printf("version %" PRId64 ", hash %.12s, git commit %.12s%s\n", v.id,
               v.hash ? v.hash : "?", v.commit ? v.commit : "none",
               !v.commit ? "" : v.dirty < 0 ? " (dirty: unknown)" : v.dirty ? " (dirty)" : "");
        free(v.hash);
        free(v.commit);
        putchar('\n');
        cli_print_tis(c, st, pk, NULL);
    }
    json_object_put(lc.arr);
    store_close(st);
    return EXIT_OK;
}

static int runs_cancel(struct cli *c, const char *dag, const char *sel)
{
    struct json_object *body = json_object_new_object();
    json_object_object_add(body, "op", json_object_new_string("cancel"));
    json_object_object_add(body, "dag", json_object_new_string(dag));
    json_object_object_add(body, "run", json_object_new_string(sel));
    return cli_apply(c, body, "cancelled");
}

int cli_runs(struct cli *c)
{
    const char *sub = c->argc > 0 ? c->argv[0] : NULL;
    if (!sub || cli_wants_help(c->argc, c->argv)) {
        help(sub ? stdout : stderr);
        return sub ? EXIT_OK : EXIT_USAGE;
    }
    if (strcmp(sub, "list") == 0)
        return runs_list(c, c->argc - 1, c->argv + 1);
    if (strcmp(sub, "show") == 0 && c->argc == 3)
        return runs_show(c, c->argv[1], c->argv[2]);
    if (strcmp(sub, "cancel") == 0 && c->argc == 3)
        return runs_cancel(c, c->argv[1], c->argv[2]);
    fprintf(stderr, "kiln runs: bad arguments for '%s'\n", sub);
    help(stderr);
    return EXIT_USAGE;
}
