/* api: the JSON API under /api/v1; see api.h and docs/api.md. */
#include "api.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cmd.h"
#include "dagdir.h"
#include "engine.h"
#include "state.h"
#include "store.h"

#define MAX_SEGS 10
#define PAGE_DEFAULT 25
#define PAGE_MAX 500
#define LOG_CHUNK_MAX (4 * 1024 * 1024)
#define LAST_RUNS 5

bool api_is_mutation(const char *method)
{
    return strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0;
}

static void set_error(struct api_response *rs, int status, const char *msg)
{
    rs->status = status;
    rs->content_type = "application/json";
    rs->body.len = 0;
    sbuf_adds(&rs->body, "{\"error\":");
    sbuf_json_str(&rs->body, msg);
    sbuf_adds(&rs->body, "}\n");
}

static int status_of(int rc)
{
    switch (rc) {
    case KILN_ENOTFOUND: return 404;
    case KILN_ESTATE: return 409;
    case KILN_EINVALID:
    case KILN_EPARSE:
    case KILN_ECYCLE:
    case -EINVAL: return 400;
    default: return 500;
    }
}

static void set_json(struct api_response *rs, int status, struct json_object *o)
{
    rs->status = status;
    rs->content_type = "application/json";
    sbuf_adds(&rs->body, json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
                                                               JSON_C_TO_STRING_NOSLASHESCAPE));
    sbuf_adds(&rs->body, "\n");
    json_object_put(o);
}

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

/* A path segment: ids, run ids (":" "+" of ISO times), numbers; never "."
 * or "..", never a slash or a percent escape. */
static bool seg_valid(const char *s, size_t n)
{
    if (n == 0 || n > 250 || (n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.'))
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '.' || c == ':' || c == '+'))
            return false;
    }
    return true;
}

/* Query parameter NAME (no percent-decoding: values are numbers and state
 * names).  Returns 1 when present. */
static int query_get(const struct api_request *rq, const char *name, char *buf, size_t n)
{
    size_t nl = strlen(name);
    const char *q = rq->query, *end = rq->query ? rq->query + rq->query_len : NULL;
    while (q && q < end) {
        const char *amp = memchr(q, '&', (size_t)(end - q));
        const char *pe = amp ? amp : end;
        if ((size_t)(pe - q) > nl && memcmp(q, name, nl) == 0 && q[nl] == '=') {
            size_t vl = (size_t)(pe - q) - nl - 1;
            if (vl >= n)
                vl = n - 1;
            memcpy(buf, q + nl + 1, vl);
            buf[vl] = '\0';
            return 1;
        }
        q = amp ? amp + 1 : end;
    }
    return 0;
}

int api_query_get(const struct api_request *rq, const char *name, char *buf, size_t n)
{
    return query_get(rq, name, buf, n);
}

/* A non-negative integer query parameter; -1 when malformed. */
static int query_int(const struct api_request *rq, const char *name, int64_t dflt,
                     int64_t *out)
{
    char b[32];
    *out = dflt;
    if (!query_get(rq, name, b, sizeof b))
        return 0;
    char *e;
    errno = 0;
    long long v = strtoll(b, &e, 10);
    if (errno || e == b || *e || v < 0)
        return -1;
    *out = v;
    return 0;
}

/* --- reads --------------------------------------------------------------- */

/* A DAG's schedule as the loop saw it when the read was queued. */
struct snap_dag {
    char *dag, *expr;
    int64_t next_us;
};

struct api_snap {
    struct snap_dag *v;
    size_t n;
};

/* What a read works from: a connection (the loop's, or a reader thread's
 * own) and the schedules taken on the loop. */
struct rctx {
    struct store *st;
    const struct api_snap *snap;
};

static void snap_schedule(const struct api_snap *s, const char *dag, const char **expr,
                          int64_t *next)
{
    for (size_t i = 0; s && i < s->n; i++)
        if (strcmp(s->v[i].dag, dag) == 0) {
            *expr = s->v[i].expr;
            *next = s->v[i].next_us;
            return;
        }
}

static int run_obj_row(void *arg, struct store_row *r)
{
    struct json_object *arr = arg;
    struct json_object *o = json_object_new_object();
    json_object_object_add(o, "number", json_object_new_int64(store_col_int(r, 0)));
    add_str(o, "dag", store_col_text(r, 1));
    add_str(o, "run_id", store_col_text(r, 2));
    json_object_object_add(o, "version", json_object_new_int64(store_col_int(r, 3)));
    add_str(o, "run_type", store_col_text(r, 4));
    add_str(o, "state", store_col_text(r, 5));
    struct json_object *p = json_tokener_parse(store_col_text(r, 6) ? store_col_text(r, 6) : "{}");
    json_object_object_add(o, "params", p ? p : json_object_new_object());
    add_time(o, "logical_date", store_col_int(r, 7));
    add_time(o, "created", store_col_int(r, 8));
    add_time(o, "start", store_col_int(r, 9));
    add_time(o, "end", store_col_int(r, 10));
    json_object_array_add(arr, o);
    return 0;
}

struct dag_info {
    bool found;
    char *path, *last_error;
    bool file_missing, paused;
    int64_t current_version;
};

static int dag_state_row(void *arg, struct store_row *r)
{
    struct dag_info *d = arg;
    d->found = true;
    d->path = store_col_text(r, 1) ? xstrdup(store_col_text(r, 1)) : NULL;
    d->file_missing = store_col_int(r, 2) != 0;
    d->last_error = store_col_text(r, 3) ? xstrdup(store_col_text(r, 3)) : NULL;
    d->current_version = store_col_int(r, 4);
    return 1;
}

static int dag_paused_row(void *arg, struct store_row *r)
{
    ((struct dag_info *)arg)->paused = store_col_int(r, 0) != 0;
    return 1;
}

/* The DAG object, or NULL when the store has no such DAG. */
static struct json_object *dag_obj(const struct rctx *x, const char *dag_id)
{
    struct store *st = x->st;
    struct dag_info d = { 0 };
    if (store_exec(st, Q_dag_state, dag_state_row, &d, NULL, "s", dag_id) < 0 || !d.found)
        return NULL;
    store_exec(st, Q_dag_paused, dag_paused_row, &d, NULL, "s", dag_id);
    struct json_object *o = json_object_new_object();
    add_str(o, "dag", dag_id);
    add_str(o, "file", d.path);
    json_object_object_add(o, "paused", json_object_new_boolean(d.paused));
    json_object_object_add(o, "file_missing", json_object_new_boolean(d.file_missing));
    add_str(o, "error", d.last_error);
    json_object_object_add(o, "current_version", d.current_version
                           ? json_object_new_int64(d.current_version) : NULL);
    const char *expr = NULL;
    int64_t next = 0;
    snap_schedule(x->snap, dag_id, &expr, &next);
    add_str(o, "schedule", expr);
    add_time(o, "next_run", next);
    struct json_object *last = json_object_new_array();
    store_exec(st, Q_run_page, run_obj_row, last, NULL, "ssoi", dag_id, NULL, (int64_t)0,
               (int64_t)LAST_RUNS);
    json_object_object_add(o, "last_runs", last);
    free(d.path);
    free(d.last_error);
    return o;
}

static int dag_id_row(void *arg, struct store_row *r)
{
    struct json_object *arr = arg;
    json_object_array_add(arr, json_object_new_string(store_col_text(r, 0)));
    return 0;
}

static void get_dags(const struct rctx *x, struct api_response *rs)
{
    struct json_object *ids = json_object_new_array(), *out = json_object_new_array();
    store_exec(x->st, Q_dag_list, dag_id_row, ids, NULL, "");
    for (size_t i = 0; i < json_object_array_length(ids); i++) {
        struct json_object *d = dag_obj(x, json_object_get_string(json_object_array_get_idx(ids, i)));
        if (d)
            json_object_array_add(out, d);
    }
    json_object_put(ids);
    struct json_object *o = json_object_new_object();
    json_object_object_add(o, "dags", out);
    set_json(rs, 200, o);
}

static int version_row(void *arg, struct store_row *r)
{
    struct json_object *o = json_object_new_object();
    json_object_object_add(o, "version", json_object_new_int64(store_col_int(r, 0)));
    add_str(o, "hash", store_col_text(r, 1));
    add_str(o, "git_commit", store_col_text(r, 2));
    json_object_object_add(o, "git_dirty", store_col_null(r, 3) ? NULL
                           : json_object_new_boolean(store_col_int(r, 3) != 0));
    add_time(o, "created", store_col_int(r, 4));
    add_str(o, "file", store_col_text(r, 5));
    json_object_object_add(o, "runs", json_object_new_int64(store_col_int(r, 6)));
    json_object_object_add(o, "current", json_object_new_boolean(store_col_int(r, 7) != 0));
    json_object_array_add(arg, o);
    return 0;
}

static void get_versions(const struct rctx *x, const char *dag, struct api_response *rs)
{
    struct json_object *arr = json_object_new_array();
    store_exec(x->st, Q_version_list, version_row, arr, NULL, "s", dag);
    struct json_object *o = json_object_new_object();
    json_object_object_add(o, "versions", arr);
    set_json(rs, 200, o);
}

static int source_row(void *arg, struct store_row *r)
{
    size_t n = 0;
    const void *p = store_col_blob(r, 0, &n);
    struct api_response *rs = arg;
    rs->status = 200;
    rs->content_type = "text/plain; charset=utf-8";
    sbuf_add(&rs->body, p ? p : "", n);
    return 1;
}

static void get_source(const struct rctx *x, const char *dag, const char *ver,
                       struct api_response *rs)
{
    char *end;
    long long v = strtoll(ver, &end, 10);
    rs->status = 0;
    if (*end == '\0' && v > 0)
        store_exec(x->st, Q_version_source, source_row, rs, NULL, "is", (int64_t)v,
                   dag);
    if (rs->status != 200)
        set_error(rs, 404, "no such version of this DAG");
}

static void get_runs(const struct rctx *x, const char *dag, const struct api_request *rq,
                     struct api_response *rs)
{
    int64_t limit, before;
    char state[32];
    bool has_state = query_get(rq, "state", state, sizeof state);
    if (query_int(rq, "limit", PAGE_DEFAULT, &limit) < 0 || limit < 1 || limit > PAGE_MAX)
        return set_error(rs, 400, "limit must be a number from 1 to 500");
    if (query_int(rq, "before", 0, &before) < 0)
        return set_error(rs, 400, "before must be a run number");
    if (has_state && run_state_parse(state) < 0)
        return set_error(rs, 400, "state must be queued, running, success or failed");
    struct json_object *arr = json_object_new_array();
    store_exec(x->st, Q_run_page, run_obj_row, arr, NULL, "ssoi", dag,
               has_state ? state : NULL, before, limit + 1);
    struct json_object *o = json_object_new_object();
    int64_t next = 0;
    if ((int64_t)json_object_array_length(arr) > limit) {
        json_object_array_del_idx(arr, (size_t)limit, 1);
        next = json_object_get_int64(json_object_object_get(
            json_object_array_get_idx(arr, (size_t)limit - 1), "number"));
    }
    json_object_object_add(o, "runs", arr);
    json_object_object_add(o, "next_before", next ? json_object_new_int64(next) : NULL);
    set_json(rs, 200, o);
}

struct tries_ctx {
    struct json_object *arr;
    int want;            /* a try number, to fetch its log path */
    char *log_path;
};

static int try_row(void *arg, struct store_row *r)
{
    struct tries_ctx *t = arg;
    int n = (int)store_col_int(r, 1);
    if (t->want) {
        if (n == t->want && store_col_text(r, 11))
            t->log_path = xstrdup(store_col_text(r, 11));
        return 0;
    }
    struct json_object *o = json_object_new_object();
    json_object_object_add(o, "try_number", json_object_new_int64(n));
    add_str(o, "state", store_col_text(r, 2));
    add_str(o, "executor", store_col_text(r, 3));
    add_str(o, "executor_id", store_col_text(r, 4));
    add_time(o, "start", store_col_int(r, 6));
    add_time(o, "end", store_col_int(r, 7));
    json_object_object_add(o, "exit_code", store_col_null(r, 8) ? NULL
                           : json_object_new_int64(store_col_int(r, 8)));
    json_object_object_add(o, "signal", store_col_null(r, 9) ? NULL
                           : json_object_new_int64(store_col_int(r, 9)));
    add_str(o, "reason", store_col_text(r, 10));
    json_object_object_add(o, "outputs", store_col_text(r, 12)
                           ? json_tokener_parse(store_col_text(r, 12)) : NULL);
    json_object_array_add(t->arr, o);
    return 0;
}

struct ti_ctx {
    struct store *st;
    struct json_object *arr;
};

static int ti_row(void *arg, struct store_row *r)
{
    struct ti_ctx *c = arg;
    struct json_object *o = json_object_new_object();
    add_str(o, "task", store_col_text(r, 1));
    add_str(o, "state", store_col_text(r, 3));
    json_object_object_add(o, "try_number", json_object_new_int64(store_col_int(r, 4)));
    json_object_object_add(o, "max_tries", json_object_new_int64(store_col_int(r, 5)));
    add_str(o, "reason", store_col_text(r, 7));
    add_time(o, "start", store_col_int(r, 8));
    add_time(o, "end", store_col_int(r, 9));
    json_object_array_add(c->arr, o);
    /* Tries are added after the walk: one statement at a time. */
    json_object_object_add(o, "_pk", json_object_new_int64(store_col_int(r, 0)));
    return 0;
}

static void add_tries(struct store *st, struct json_object *tis)
{
    for (size_t i = 0; i < json_object_array_length(tis); i++) {
        struct json_object *o = json_object_array_get_idx(tis, i);
        int64_t pk = json_object_get_int64(json_object_object_get(o, "_pk"));
        json_object_object_del(o, "_pk");
        struct tries_ctx t = { .arr = json_object_new_array() };
        store_exec(st, Q_try_list, try_row, &t, NULL, "i", pk);
        json_object_object_add(o, "tries", t.arr);
    }
}

/* A run's answer is written straight as JSON text (a run of 10,000 tasks is
 * tens of thousands of values: building json-c objects for them cost most of
 * the answer's time).  Same fields, same order as the json-c objects. */
static void w_key(struct sbuf *b, const char *k)
{
    sbuf_adds(b, ",\"");
    sbuf_adds(b, k);
    sbuf_adds(b, "\":");
}

static void w_str(struct sbuf *b, const char *k, const char *v)
{
    w_key(b, k);
    if (v)
        sbuf_json_str(b, v);
    else
        sbuf_adds(b, "null");
}

static void w_time(struct sbuf *b, const char *k, int64_t us)
{
    w_key(b, k);
    if (us > 0) {
        char iso[40];
        time_format_iso(us, iso, sizeof iso);
        sbuf_printf(b, "\"%s\"", iso);
    } else {
        sbuf_adds(b, "null");
    }
}

static void w_int_or_null(struct sbuf *b, const char *k, struct store_row *r, int col)
{
    w_key(b, k);
    if (store_col_null(r, col))
        sbuf_adds(b, "null");
    else
        sbuf_printf(b, "%lld", (long long)store_col_int(r, col));
}

/* Rows of api_run_tries (try_list's columns, then ti_pk): each try's JSON
 * into one buffer, with where it starts and ends. */
struct run_tries {
    struct sbuf text;
    int64_t *ti_pk;
    size_t *from, *to;
    size_t n, cap;
};

static int run_try_row(void *arg, struct store_row *r)
{
    struct run_tries *rt = arg;
    if (rt->n == rt->cap) {
        rt->cap = rt->cap ? 2 * rt->cap : 256;
        rt->ti_pk = xrealloc(rt->ti_pk, rt->cap * sizeof *rt->ti_pk);
        rt->from = xrealloc(rt->from, rt->cap * sizeof *rt->from);
        rt->to = xrealloc(rt->to, rt->cap * sizeof *rt->to);
    }
    struct sbuf *b = &rt->text;
    rt->ti_pk[rt->n] = store_col_int(r, 13);
    rt->from[rt->n] = b->len;
    sbuf_printf(b, "{\"try_number\":%lld", (long long)store_col_int(r, 1));
    w_str(b, "state", store_col_text(r, 2));
    w_str(b, "executor", store_col_text(r, 3));
    w_str(b, "executor_id", store_col_text(r, 4));
    w_time(b, "start", store_col_int(r, 6));
    w_time(b, "end", store_col_int(r, 7));
    w_int_or_null(b, "exit_code", r, 8);
    w_int_or_null(b, "signal", r, 9);
    w_str(b, "reason", store_col_text(r, 10));
    w_key(b, "outputs");
    /* What a task wrote: re-serialized (so only valid JSON goes out), or
     * null when it is not JSON. */
    struct json_object *out = store_col_text(r, 12) ? json_tokener_parse(store_col_text(r, 12))
                                                    : NULL;
    sbuf_adds(b, out ? json_object_to_json_string_ext(out, JSON_C_TO_STRING_PLAIN |
                                                               JSON_C_TO_STRING_NOSLASHESCAPE)
                     : "null");
    json_object_put(out);
    sbuf_adds(b, "}");
    rt->to[rt->n++] = b->len;
    return 0;
}

struct run_tis {
    struct sbuf *b;
    struct run_tries *rt;
    size_t k;       /* the next try row */
    bool first;
};

/* Rows of ti_list, in task_index order like the tries: a task instance's
 * tries are the rows at k with its pk (none when it has not started). */
static int run_ti_row(void *arg, struct store_row *r)
{
    struct run_tis *c = arg;
    struct sbuf *b = c->b;
    int64_t pk = store_col_int(r, 0);
    sbuf_adds(b, c->first ? "{\"task\":" : ",{\"task\":");
    c->first = false;
    const char *id = store_col_text(r, 1);
    if (id)
        sbuf_json_str(b, id);
    else
        sbuf_adds(b, "null");
    w_str(b, "state", store_col_text(r, 3));
    sbuf_printf(b, ",\"try_number\":%lld,\"max_tries\":%lld", (long long)store_col_int(r, 4),
                (long long)store_col_int(r, 5));
    w_str(b, "reason", store_col_text(r, 7));
    w_time(b, "start", store_col_int(r, 8));
    w_time(b, "end", store_col_int(r, 9));
    sbuf_adds(b, ",\"tries\":[");
    struct run_tries *rt = c->rt;
    for (bool f = true; c->k < rt->n && rt->ti_pk[c->k] == pk; c->k++, f = false) {
        if (!f)
            sbuf_adds(b, ",");
        sbuf_add(b, rt->text.data + rt->from[c->k], rt->to[c->k] - rt->from[c->k]);
    }
    sbuf_adds(b, "]}");
    return 0;
}

static int find_run(const struct rctx *x, const char *dag, const char *sel, int64_t *pk,
                    struct api_response *rs)
{
    struct kiln_err err = { 0 };
    int rc = cmd_find_run(x->st, dag, sel, pk, &err);
    if (rc < 0)
        set_error(rs, status_of(rc), err.msg);
    return rc;
}

static void get_run(const struct rctx *x, const char *dag, const char *sel, struct api_response *rs)
{
    int64_t pk;
    if (find_run(x, dag, sel, &pk, rs) < 0)
        return;
    struct store *st = x->st;
    struct json_object *arr = json_object_new_array();
    store_exec(st, Q_run_get, run_obj_row, arr, NULL, "i", pk);
    struct json_object *run = json_object_array_get_idx(arr, 0);
    if (!run) {
        json_object_put(arr);
        return set_error(rs, 404, "no such run");
    }
    /* The run object, then "tasks" spliced in before its closing brace. */
    const char *js = json_object_to_json_string_ext(run, JSON_C_TO_STRING_PLAIN |
                                                             JSON_C_TO_STRING_NOSLASHESCAPE);
    struct sbuf *b = &rs->body;
    b->len = 0;
    sbuf_add(b, js, strlen(js) - 1);
    json_object_put(arr);
    struct run_tries rt = { .n = 0 };
    sbuf_init(&rt.text);
    store_exec(st, Q_api_run_tries, run_try_row, &rt, NULL, "i", pk);
    sbuf_adds(b, ",\"tasks\":[");
    struct run_tis c = { b, &rt, 0, true };
    store_exec(st, Q_ti_list, run_ti_row, &c, NULL, "i", pk);
    sbuf_adds(b, "]}\n");
    sbuf_free(&rt.text);
    free(rt.ti_pk);
    free(rt.from);
    free(rt.to);
    rs->status = 200;
    rs->content_type = "application/json";
}

static int ti_one(const struct rctx *x, const char *dag, const char *sel, const char *task,
                  struct json_object **out, int64_t *ti_pk, struct api_response *rs)
{
    int64_t pk;
    if (find_run(x, dag, sel, &pk, rs) < 0)
        return -1;
    struct ti_ctx c = { x->st, json_object_new_array() };
    store_exec(c.st, Q_ti_get, ti_row, &c, NULL, "is", pk, task);
    if (json_object_array_length(c.arr) == 0) {
        json_object_put(c.arr);
        char msg[400];
        snprintf(msg, sizeof msg, "run %s of DAG '%s' has no task '%s'", sel, dag, task);
        set_error(rs, 404, msg);
        return -1;
    }
    *out = json_object_get(json_object_array_get_idx(c.arr, 0));
    *ti_pk = json_object_get_int64(json_object_object_get(*out, "_pk"));
    json_object_put(c.arr);
    return 0;
}

static void get_task(const struct rctx *x, const char *dag, const char *sel, const char *task,
                     struct api_response *rs)
{
    struct json_object *o;
    int64_t pk;
    if (ti_one(x, dag, sel, task, &o, &pk, rs) < 0)
        return;
    struct json_object *arr = json_object_new_array();
    json_object_array_add(arr, o);
    add_tries(x->st, arr);
    json_object_get(o);
    json_object_put(arr);
    set_json(rs, 200, o);
}

/* "bytes=A-B" or "bytes=A-" (one range); -1 when malformed. */
static int parse_range(const char *s, size_t n, int64_t *from, int64_t *to)
{
    char b[64];
    if (n >= sizeof b)
        return -1;
    memcpy(b, s, n);
    b[n] = '\0';
    if (strncmp(b, "bytes=", 6) != 0)
        return -1;
    char *p = b + 6, *e;
    if (*p < '0' || *p > '9')
        return -1;
    long long a = strtoll(p, &e, 10);
    if (*e != '-')
        return -1;
    p = e + 1;
    *from = a;
    *to = -1;
    if (*p) {
        if (*p < '0' || *p > '9')
            return -1;
        long long z = strtoll(p, &e, 10);
        if (*e || z < a)
            return -1;
        *to = z;
    }
    return 0;
}

static void get_log(const struct rctx *x, const char *dag, const char *sel, const char *task,
                    const char *trynum, const struct api_request *rq, struct api_response *rs)
{
    char *end;
    long long n = strtoll(trynum, &end, 10);
    if (*end || n < 1 || n > 100000)
        return set_error(rs, 400, "the try number must be a positive number");
    struct json_object *o;
    int64_t pk;
    if (ti_one(x, dag, sel, task, &o, &pk, rs) < 0)
        return;
    json_object_put(o);
    /* The log's path comes from the tries table only, never from the URL. */
    struct tries_ctx t = { .want = (int)n };
    store_exec(x->st, Q_try_list, try_row, &t, NULL, "i", pk);
    if (!t.log_path)
        return set_error(rs, 404, "the task has no such try");
    int fd = open(t.log_path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    free(t.log_path);
    if (fd < 0)
        return set_error(rs, 404, "the try has no log yet");
    struct stat sb;
    if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return set_error(rs, 500, "the log is not a regular file");
    }
    int64_t size = sb.st_size, from = 0, to = -1, lim;
    bool partial = false;
    if (rq->range) {
        if (parse_range(rq->range, rq->range_len, &from, &to) < 0) {
            close(fd);
            return set_error(rs, 400, "Range must be bytes=FROM-[TO]");
        }
        partial = true;
    } else {
        if (query_int(rq, "offset", 0, &from) < 0 || query_int(rq, "limit", -1, &lim) < 0) {
            close(fd);
            return set_error(rs, 400, "offset and limit must be non-negative numbers");
        }
        if (lim >= 0)
            to = lim == 0 ? from - 1 : from + lim - 1;
        partial = from > 0 || lim >= 0;
    }
    if (partial && (from > size || (rq->range && from >= size && size > 0))) {
        close(fd);
        snprintf(rs->content_range, sizeof rs->content_range, "bytes */%" PRId64, size);
        return set_error(rs, 416, "the range starts past the end of the log");
    }
    if (to < 0 || to >= size)
        to = size - 1;
    if (to - from + 1 > LOG_CHUNK_MAX) {
        to = from + LOG_CHUNK_MAX - 1;
        partial = true;
    }
    int64_t want = to >= from ? to - from + 1 : 0;
    char *buf = xmalloc((size_t)want + 1);
    int64_t got = 0;
    while (got < want) {
        ssize_t k = pread(fd, buf + got, (size_t)(want - got), (off_t)(from + got));
        if (k <= 0)
            break;
        got += k;
    }
    close(fd);
    rs->status = partial ? 206 : 200;
    rs->content_type = "text/plain; charset=utf-8";
    rs->accept_ranges = true;
    if (partial && got > 0)
        snprintf(rs->content_range, sizeof rs->content_range,
                 "bytes %" PRId64 "-%" PRId64 "/%" PRId64, from, from + got - 1, size);
    else if (partial)
        snprintf(rs->content_range, sizeof rs->content_range, "bytes */%" PRId64, size);
    sbuf_add(&rs->body, buf, (size_t)got);
    free(buf);
}


/* --- the web UI's reads ----------------------------------------------------- */

#define GRID_RUNS_DEFAULT 25
#define GRID_RUNS_MAX 200

/* One column per task id: the newest run's order first, then ids seen only
 * in older runs (oldest run first).  Each run's task instances are read in
 * task_index order through task_instances_by_run_index; a row finds its
 * column at once when its index names the same task in the newest run,
 * otherwise a sorted index of the newest run's ids is searched. */
struct grid_col {
    char *id;
    size_t col;
};

struct grid_ctx {
    struct grid_col *cols;      /* columns in order; ids owned */
    size_t ncols, cap;
    struct grid_col *sorted;    /* the newest run's columns, by id */
    size_t nsorted;
    char *cells;                /* the current run's cells, '-' when absent */
    size_t cells_cap;
    int building;               /* reading the newest run: every row is a column */
    char last_state[24];        /* the last state text parsed, and its code */
    char last_code;
};

static void grid_cells_fit(struct grid_ctx *g, size_t n)
{
    if (n <= g->cells_cap)
        return;
    size_t cap = g->cells_cap ? g->cells_cap : 256;
    while (cap < n)
        cap *= 2;
    g->cells = xrealloc(g->cells, cap);
    memset(g->cells + g->cells_cap, '-', cap - g->cells_cap);
    g->cells_cap = cap;
}

static size_t grid_add_col(struct grid_ctx *g, const char *id)
{
    if (g->ncols == g->cap) {
        g->cap = g->cap ? 2 * g->cap : 256;
        g->cols = xrealloc(g->cols, g->cap * sizeof *g->cols);
    }
    g->cols[g->ncols].id = xstrdup(id);
    g->cols[g->ncols].col = g->ncols;
    grid_cells_fit(g, g->ncols + 1);
    return g->ncols++;
}

static int grid_col_cmp(const void *a, const void *b)
{
    return strcmp(((const struct grid_col *)a)->id, ((const struct grid_col *)b)->id);
}

static char grid_state_code(struct grid_ctx *g, const char *s)
{
    /* Nearly every row repeats the previous row's state. */
    if (strcmp(s, g->last_state) == 0)
        return g->last_code;
    int st = ti_state_parse(s);
    char code = (char)(st < 0 ? '-' : 'a' + st);
    if (strlen(s) < sizeof g->last_state) {
        strcpy(g->last_state, s);
        g->last_code = code;
    }
    return code;
}

static int grid_row(void *arg, struct store_row *r)
{
    struct grid_ctx *g = arg;
    int64_t ix = store_col_int(r, 0);
    const char *id = store_col_text(r, 1);
    const char *state = store_col_text(r, 2);
    if (!id)
        id = "";
    char code = grid_state_code(g, state ? state : "");
    size_t c;
    if (g->building) {
        c = grid_add_col(g, id);
    } else if (ix >= 0 && (uint64_t)ix < g->ncols && strcmp(g->cols[ix].id, id) == 0) {
        c = (size_t)ix;
    } else {
        struct grid_col key = { (char *)id, 0 };
        struct grid_col *hit = bsearch(&key, g->sorted, g->nsorted, sizeof *g->sorted,
                                       grid_col_cmp);
        if (hit) {
            c = hit->col;
        } else {
            /* A task only older runs had: linear over the few extra columns. */
            c = g->ncols;
            for (size_t k = g->nsorted; k < g->ncols; k++)
                if (strcmp(g->cols[k].id, id) == 0) {
                    c = k;
                    break;
                }
            if (c == g->ncols)
                c = grid_add_col(g, id);
        }
    }
    g->cells[c] = code;
    return 0;
}

static void get_grid(const struct rctx *x, const char *dag, const struct api_request *rq,
                     struct api_response *rs)
{
    int64_t nruns;
    if (query_int(rq, "runs", GRID_RUNS_DEFAULT, &nruns) < 0 || nruns < 1 ||
        nruns > GRID_RUNS_MAX)
        return set_error(rs, 400, "runs must be a number from 1 to 200");
    struct store *st = x->st;
    struct json_object *runs = json_object_new_array();
    store_exec(st, Q_run_page, run_obj_row, runs, NULL, "ssoi", dag, NULL, (int64_t)0, nruns);
    size_t nr = json_object_array_length(runs);
    /* Runs are listed newest first.  The newest run makes the columns; the
     * others are then read oldest first, so columns only older runs had come
     * in the order they were first seen. */
    struct grid_ctx g = { 0 };
    char **cells = xmalloc((nr + 1) * sizeof *cells);
    size_t *ncells = xmalloc((nr + 1) * sizeof *ncells);
    for (size_t n = 0; n < nr; n++) {
        size_t k = n == 0 ? 0 : nr - n;
        int64_t pk = json_object_get_int64(json_object_object_get(
            json_object_array_get_idx(runs, k), "number"));
        g.building = n == 0;
        if (g.cells)
            memset(g.cells, '-', g.cells_cap);
        store_exec(st, Q_ui_grid, grid_row, &g, NULL, "i", pk);
        if (n == 0) {
            g.nsorted = g.ncols;
            g.sorted = xmalloc((g.ncols + 1) * sizeof *g.sorted);
            memcpy(g.sorted, g.cols, g.ncols * sizeof *g.sorted);
            qsort(g.sorted, g.nsorted, sizeof *g.sorted, grid_col_cmp);
        }
        cells[k] = xmalloc(g.ncols + 1);
        memcpy(cells[k], g.cells, g.ncols);
        ncells[k] = g.ncols;
    }
    size_t ncols = g.ncols;
    struct sbuf b;
    sbuf_init(&b);
    sbuf_adds(&b, "{\"dag\":");
    sbuf_json_str(&b, dag);
    sbuf_adds(&b, ",\"states\":[");
    for (int i = 0; i < TI__COUNT; i++) {
        if (i)
            sbuf_adds(&b, ",");
        sbuf_json_str(&b, ti_state_name((enum ti_state)i));
    }
    sbuf_adds(&b, "],\"tasks\":[");
    for (size_t c = 0; c < ncols; c++) {
        if (c)
            sbuf_adds(&b, ",");
        sbuf_json_str(&b, g.cols[c].id);
    }
    sbuf_adds(&b, "],\"runs\":[");
    /* Cells: runs oldest first, one string each; columns added after a run
     * was read are '-' for it. */
    char *pad = xmalloc(ncols + 1);
    memset(pad, '-', ncols);
    for (size_t k = nr; k-- > 0;) {
        struct json_object *ro = json_object_array_get_idx(runs, k);
        json_object_object_del(ro, "params");
        sbuf_adds(&b, k + 1 == nr ? "" : ",");
        const char *js = json_object_to_json_string_ext(ro, JSON_C_TO_STRING_PLAIN |
                                                                JSON_C_TO_STRING_NOSLASHESCAPE);
        /* Splice "cells" into the run object. */
        sbuf_add(&b, js, strlen(js) - 1);
        sbuf_adds(&b, ",\"cells\":\"");
        sbuf_add(&b, cells[k], ncells[k]);
        sbuf_add(&b, pad, ncols - ncells[k]);
        sbuf_adds(&b, "\"}");
        free(cells[k]);
    }
    sbuf_adds(&b, "]}\n");
    free(pad);
    free(cells);
    free(ncells);
    rs->status = 200;
    rs->content_type = "application/json";
    sbuf_add(&rs->body, b.data, b.len);
    sbuf_free(&b);
    for (size_t c = 0; c < g.ncols; c++)
        free(g.cols[c].id);
    free(g.cols);
    free(g.sorted);
    free(g.cells);
    json_object_put(runs);
}

/* The current version's tasks (with their dependencies) and params. */
static void get_graph(const struct rctx *x, const char *dag, struct api_response *rs)
{
    struct store *st = x->st;
    struct dag_info d = { 0 };
    if (store_exec(st, Q_dag_state, dag_state_row, &d, NULL, "s", dag) < 0 || !d.found ||
        !d.current_version) {
        free(d.path);
        free(d.last_error);
        return set_error(rs, 404, "the DAG has no loaded version");
    }
    struct api_response src = { .status = 0 };
    sbuf_init(&src.body);
    store_exec(st, Q_version_source, source_row, &src, NULL, "is", d.current_version, dag);
    struct dag *g = NULL;
    struct kiln_err err = { 0 };
    int rc = src.status == 200 ? dag_load_buf(d.path ? d.path : "dag.yaml",
                                              src.body.data ? src.body.data : "", src.body.len,
                                              &g, &err)
                               : -1;
    sbuf_free(&src.body);
    free(d.path);
    free(d.last_error);
    if (rc < 0 || !g) {
        dag_free(g);
        return set_error(rs, 500, err.msg[0] ? err.msg : "the DAG's source does not load");
    }
    struct json_object *o = json_object_new_object(), *tasks = json_object_new_array(),
                       *params = json_object_new_array();
    add_str(o, "dag", dag);
    json_object_object_add(o, "version", json_object_new_int64(d.current_version));
    add_str(o, "description", g->description);
    for (size_t i = 0; i < g->n_tasks; i++) {
        struct dag_task *t = &g->tasks[i];
        struct json_object *to = json_object_new_object(), *deps = json_object_new_array();
        add_str(to, "id", t->id);
        for (size_t k = 0; k < t->n_deps; k++)
            json_object_array_add(deps, json_object_new_string(t->deps[k]));
        json_object_object_add(to, "deps", deps);
        add_str(to, "executor", t->executor);
        json_object_array_add(tasks, to);
    }
    for (size_t i = 0; i < g->n_params; i++) {
        struct dag_param *p = &g->params[i];
        struct json_object *po = json_object_new_object(), *vals = json_object_new_array();
        add_str(po, "key", p->key);
        add_str(po, "default", p->value);
        add_str(po, "type", dag_param_type_name(p->type));
        json_object_object_add(po, "required", json_object_new_boolean(p->required));
        for (size_t k = 0; k < p->n_values; k++)
            json_object_array_add(vals, json_object_new_string(p->values[k]));
        json_object_object_add(po, "values", vals);
        json_object_array_add(params, po);
    }
    json_object_object_add(o, "tasks", tasks);
    json_object_object_add(o, "params", params);
    dag_free(g);
    set_json(rs, 200, o);
}


/* The log file behind a .../tries/N/log path, for a live tail (http.c). */
int api_log_file(struct engine *e, const struct api_request *rq, char **path,
                 struct api_response *rs)
{
    *path = NULL;
    char *seg[MAX_SEGS];
    size_t n = 0;
    char *copy = xstrndup(rq->path, rq->path_len), *p = copy;
    while (*p == '/')
        p++;
    while (*p && n < MAX_SEGS) {
        char *s = p;
        while (*p && *p != '/')
            p++;
        size_t len = (size_t)(p - s);
        if (*p)
            *p++ = '\0';
        if (!seg_valid(s, len)) {
            n = 0;
            break;
        }
        seg[n++] = s;
    }
    int rc = -1;
    if (*p || n != 9 || strcmp(seg[0], "dags") != 0 || strcmp(seg[2], "runs") != 0 ||
        strcmp(seg[4], "tasks") != 0 || strcmp(seg[6], "tries") != 0 ||
        strcmp(seg[8], "log") != 0) {
        set_error(rs, 404, "no such endpoint");
        goto out;
    }
    char *end;
    long long num = strtoll(seg[7], &end, 10);
    if (*end || num < 1 || num > 100000) {
        set_error(rs, 400, "the try number must be a positive number");
        goto out;
    }
    struct json_object *o;
    int64_t pk;
    struct rctx x = { engine_store(e), NULL };
    if (ti_one(&x, seg[1], seg[3], seg[5], &o, &pk, rs) < 0)
        goto out;
    json_object_put(o);
    struct tries_ctx t = { .want = (int)num };
    store_exec(x.st, Q_try_list, try_row, &t, NULL, "i", pk);
    if (!t.log_path) {
        set_error(rs, 404, "the task has no such try");
        goto out;
    }
    *path = t.log_path;
    rc = 0;
out:
    free(copy);
    return rc;
}

/* --- mutations ------------------------------------------------------------ */

/* The body as a JSON object ({} when empty); NULL after an error. */
static struct json_object *parse_body(const struct api_request *rq, struct api_response *rs)
{
    if (rq->body_len == 0)
        return json_object_new_object();
    struct json_tokener *tok = json_tokener_new();
    struct json_object *o = json_tokener_parse_ex(tok, rq->body, (int)rq->body_len);
    bool ok = o && json_tokener_get_error(tok) == json_tokener_success &&
              json_object_is_type(o, json_type_object);
    json_tokener_free(tok);
    if (!ok) {
        json_object_put(o);
        set_error(rs, 400, "the body must be a JSON object");
        return NULL;
    }
    return o;
}

/* Refuses keys outside allowed (NULL-terminated). */
static int check_keys(struct json_object *b, const char *const *allowed, struct api_response *rs)
{
    json_object_object_foreach(b, key, val) {
        (void)val;
        bool found = false;
        for (size_t i = 0; allowed[i]; i++)
            found |= strcmp(key, allowed[i]) == 0;
        if (!found) {
            char msg[300];
            snprintf(msg, sizeof msg, "unknown field '%.200s'", key);
            set_error(rs, 400, msg);
            return -1;
        }
    }
    return 0;
}

static void apply(struct engine *e, const struct api_request *rq, struct json_object *cmd,
                  int ok_status, struct api_response *rs)
{
    const char *body = json_object_to_json_string_ext(cmd, JSON_C_TO_STRING_PLAIN);
    char *result = NULL;
    struct kiln_err err = { 0 };
    int rc = engine_apply(e, rq->actor, body, &result, &err);
    json_object_put(cmd);
    if (rc < 0) {
        set_error(rs, status_of(rc), err.msg[0] ? err.msg : "the command failed");
        return;
    }
    rs->status = ok_status;
    rs->content_type = "application/json";
    sbuf_adds(&rs->body, result ? result : "{}");
    sbuf_adds(&rs->body, "\n");
    free(result);
}

static struct json_object *cmd_new(const char *op, const char *dag, const char *run)
{
    struct json_object *c = json_object_new_object();
    json_object_object_add(c, "op", json_object_new_string(op));
    json_object_object_add(c, "dag", json_object_new_string(dag));
    if (run)
        json_object_object_add(c, "run", json_object_new_string(run));
    return c;
}

static void copy_field(struct json_object *to, struct json_object *from, const char *k)
{
    struct json_object *v;
    if (json_object_object_get_ex(from, k, &v))
        json_object_object_add(to, k, json_object_get(v));
}

static void post(struct engine *e, const struct api_request *rq, char **seg, size_t n,
                 struct api_response *rs)
{
    struct json_object *b = parse_body(rq, rs);
    if (!b)
        return;
    const char *dag = seg[1];
    struct json_object *cmd = NULL, *v;
    int ok_status = 200;
    if (n == 3 && (strcmp(seg[2], "pause") == 0 || strcmp(seg[2], "unpause") == 0)) {
        static const char *const none[] = { NULL };
        if (check_keys(b, none, rs) == 0)
            cmd = cmd_new(seg[2], dag, NULL);
    } else if (n == 3 && strcmp(seg[2], "runs") == 0) {
        static const char *const keys[] = { "params", "run_id", NULL };
        if (check_keys(b, keys, rs) < 0)
            goto out;
        if (json_object_object_get_ex(b, "params", &v) && !json_object_is_type(v, json_type_object)) {
            set_error(rs, 400, "params must be a JSON object");
            goto out;
        }
        if (json_object_object_get_ex(b, "run_id", &v) &&
            (!json_object_is_type(v, json_type_string) ||
             !seg_valid(json_object_get_string(v), strlen(json_object_get_string(v))))) {
            set_error(rs, 400, "run_id must be a string of letters, digits and _ - . : +");
            goto out;
        }
        cmd = cmd_new("trigger", dag, NULL);
        copy_field(cmd, b, "params");
        copy_field(cmd, b, "run_id");
        ok_status = 201;
    } else if (n == 5 && strcmp(seg[2], "runs") == 0 && strcmp(seg[4], "cancel") == 0) {
        static const char *const none[] = { NULL };
        if (check_keys(b, none, rs) == 0)
            cmd = cmd_new("cancel", dag, seg[3]);
    } else if (n == 5 && strcmp(seg[2], "runs") == 0 && strcmp(seg[4], "clear") == 0) {
        static const char *const keys[] = { "tasks", "downstream", NULL };
        if (check_keys(b, keys, rs) < 0)
            goto out;
        struct json_object *t;
        if (!json_object_object_get_ex(b, "tasks", &t) || !json_object_is_type(t, json_type_array) ||
            json_object_array_length(t) == 0) {
            set_error(rs, 400, "tasks must be a non-empty array of task ids");
            goto out;
        }
        for (size_t i = 0; i < json_object_array_length(t); i++)
            if (!json_object_is_type(json_object_array_get_idx(t, i), json_type_string)) {
                set_error(rs, 400, "tasks must be a non-empty array of task ids");
                goto out;
            }
        if (json_object_object_get_ex(b, "downstream", &v) &&
            !json_object_is_type(v, json_type_boolean)) {
            set_error(rs, 400, "downstream must be true or false");
            goto out;
        }
        cmd = cmd_new("clear", dag, seg[3]);
        copy_field(cmd, b, "tasks");
        json_object_object_add(cmd, "downstream",
                               json_object_new_boolean(json_object_object_get_ex(b, "downstream", &v) &&
                                                       json_object_get_boolean(v)));
    } else if (n == 7 && strcmp(seg[2], "runs") == 0 && strcmp(seg[4], "tasks") == 0 &&
               strcmp(seg[6], "mark") == 0) {
        static const char *const keys[] = { "state", NULL };
        if (check_keys(b, keys, rs) < 0)
            goto out;
        if (!json_object_object_get_ex(b, "state", &v) || !json_object_is_type(v, json_type_string)) {
            set_error(rs, 400, "state must be success, failed or skipped");
            goto out;
        }
        cmd = cmd_new("mark", dag, seg[3]);
        json_object_object_add(cmd, "task", json_object_new_string(seg[5]));
        copy_field(cmd, b, "state");
    } else {
        set_error(rs, 404, "no such endpoint");
        goto out;
    }
    if (cmd)
        apply(e, rq, cmd, ok_status, rs);
out:
    json_object_put(b);
}

/* --- routing -------------------------------------------------------------- */

/* Splits "/a/b/c" into segments of copy (which the caller frees); -1 when a
 * segment is not valid or there are too many. */
static int split_path(const struct api_request *rq, char **copy, char **seg, size_t *n)
{
    *n = 0;
    *copy = xstrndup(rq->path, rq->path_len);
    char *p = *copy;
    while (*p == '/')
        p++;
    while (*p) {
        char *s = p;
        while (*p && *p != '/')
            p++;
        size_t len = (size_t)(p - s);
        if (*p)
            *p++ = '\0';
        if (*n == MAX_SEGS || !seg_valid(s, len))
            return -1;
        seg[(*n)++] = s;
    }
    return 0;
}

static bool is_get(const char *method)
{
    return strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
}

static bool is_log_path(char **seg, size_t n)
{
    return n == 9 && strcmp(seg[2], "runs") == 0 && strcmp(seg[4], "tasks") == 0 &&
           strcmp(seg[6], "tries") == 0 && strcmp(seg[8], "log") == 0;
}

bool api_read_cacheable(const struct api_request *rq)
{
    char *seg[MAX_SEGS], *copy;
    size_t n;
    /* Logs grow without a database change; everything else is the store's. */
    bool ok = split_path(rq, &copy, seg, &n) == 0 && !(n >= 1 && is_log_path(seg, n));
    free(copy);
    return ok;
}

static int snap_dag_row(void *arg, struct store_row *r)
{
    struct api_snap *s = arg;
    s->v = xrealloc(s->v, (s->n + 1) * sizeof *s->v);
    s->v[s->n++] = (struct snap_dag){ .dag = xstrdup(store_col_text(r, 0)) };
    return 0;
}

struct api_snap *api_snap_take(struct engine *e, const struct api_request *rq)
{
    char *seg[MAX_SEGS], *copy;
    size_t n;
    struct api_snap *s = NULL;
    /* Only the DAG objects show a schedule: GET /dags and /dags/DAG. */
    if (split_path(rq, &copy, seg, &n) == 0 && (n == 1 || n == 2) &&
        strcmp(seg[0], "dags") == 0) {
        s = xcalloc(1, sizeof *s);
        if (n == 1)
            store_exec(engine_store(e), Q_dag_list, snap_dag_row, s, NULL, "");
        else {
            s->v = xcalloc(1, sizeof *s->v);
            s->v[s->n++].dag = xstrdup(seg[1]);
        }
        for (size_t i = 0; i < s->n; i++) {
            const char *expr = NULL;
            engine_dag_schedule(e, s->v[i].dag, &expr, &s->v[i].next_us);
            s->v[i].expr = expr ? xstrdup(expr) : NULL;
        }
    }
    free(copy);
    return s;
}

void api_snap_free(struct api_snap *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n; i++) {
        free(s->v[i].dag);
        free(s->v[i].expr);
    }
    free(s->v);
    free(s);
}

void api_read(struct store *st, const struct api_snap *snap, const struct api_request *rq,
              struct api_response *rs)
{
    struct rctx ctx = { st, snap }, *x = &ctx;
    char *seg[MAX_SEGS], *copy;
    size_t n;
    if (split_path(rq, &copy, seg, &n) < 0) {
        set_error(rs, 400, "invalid path");
    } else if (!is_get(rq->method)) {
        set_error(rs, 405, "method not allowed");
    } else if (n == 0 || strcmp(seg[0], "dags") != 0) {
        set_error(rs, 404, "no such endpoint");
    } else if (n == 1) {
        get_dags(x, rs);
    } else if (n == 2) {
        struct json_object *o = dag_obj(x, seg[1]);
        if (!o) {
            char msg[300];
            snprintf(msg, sizeof msg, "no DAG '%s'", seg[1]);
            set_error(rs, 404, msg);
        } else {
            struct json_object *arr = json_object_new_array();
            store_exec(st, Q_version_list, version_row, arr, NULL, "s", seg[1]);
            json_object_object_add(o, "versions", arr);
            set_json(rs, 200, o);
        }
    } else if (n == 3 && strcmp(seg[2], "versions") == 0) {
        get_versions(x, seg[1], rs);
    } else if (n == 5 && strcmp(seg[2], "versions") == 0 && strcmp(seg[4], "source") == 0) {
        get_source(x, seg[1], seg[3], rs);
    } else if (n == 3 && strcmp(seg[2], "grid") == 0) {
        get_grid(x, seg[1], rq, rs);
    } else if (n == 3 && strcmp(seg[2], "graph") == 0) {
        get_graph(x, seg[1], rs);
    } else if (n == 3 && strcmp(seg[2], "runs") == 0) {
        get_runs(x, seg[1], rq, rs);
    } else if (n == 4 && strcmp(seg[2], "runs") == 0) {
        get_run(x, seg[1], seg[3], rs);
    } else if (n == 6 && strcmp(seg[2], "runs") == 0 && strcmp(seg[4], "tasks") == 0) {
        get_task(x, seg[1], seg[3], seg[5], rs);
    } else if (is_log_path(seg, n)) {
        get_log(x, seg[1], seg[3], seg[5], seg[7], rq, rs);
    } else {
        set_error(rs, 404, "no such endpoint");
    }
    free(copy);
}

void api_handle(struct engine *e, const struct api_request *rq, struct api_response *rs)
{
    if (is_get(rq->method)) {
        struct api_snap *snap = api_snap_take(e, rq);
        api_read(engine_store(e), snap, rq, rs);
        api_snap_free(snap);
        return;
    }
    char *seg[MAX_SEGS], *copy;
    size_t n;
    if (split_path(rq, &copy, seg, &n) < 0)
        set_error(rs, 400, "invalid path");
    else if (strcmp(rq->method, "POST") != 0)
        set_error(rs, 405, "method not allowed");
    else if (n == 0 || strcmp(seg[0], "dags") != 0)
        set_error(rs, 404, "no such endpoint");
    else if (n == 1)
        set_error(rs, 405, "method not allowed");
    else
        post(e, rq, seg, n, rs);
    free(copy);
}
