#include "cmd.h"

#include <errno.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dagdir.h"
#include "gitinfo.h"
#include "schedule.h"
#include "util.h"

static const char *jstr(struct json_object *o, const char *key)
{
    struct json_object *v;
    if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
        return NULL;
    return json_object_get_string(v);
}

static int need(struct json_object *o, const char *key, const char **out, struct kiln_err *err)
{
    *out = jstr(o, key);
    if (!*out || !**out)
        return kiln_err_set(err, KILN_EINVALID, "'%s' is required", key);
    return 0;
}

static int audit(struct cmd_ctx *c, const char *action, const char *dag, const char *run,
                 const char *task, const char *detail, struct kiln_err *err)
{
    return store_exec(c->st, Q_audit_insert, NULL, NULL, err, "issssss", now_us(),
                      c->actor ? c->actor : "unknown", action, dag, run, task, detail);
}

int cmd_find_run(struct store *st, const char *dag_id, const char *sel, int64_t *run_pk,
                 struct kiln_err *err)
{
    bool found = false;
    int rc;
    if (strcmp(sel, "latest") == 0) {
        rc = store_get_int(st, Q_run_latest, run_pk, &found, err, "s", dag_id);
    } else {
        rc = store_get_int(st, Q_run_find, run_pk, &found, err, "ss", dag_id, sel);
        if (rc == 0 && !found) {
            /* A bare number is the run's number, as `kiln runs list` prints it. */
            char *end;
            long long n = strtoll(sel, &end, 10);
            if (*sel && !*end && n > 0) {
                bool ok = false;
                int64_t pk;
                rc = store_get_int(st, Q_run_find_pk, &pk, &ok, err, "is", (int64_t)n, dag_id);
                if (rc == 0 && ok) {
                    *run_pk = pk;
                    found = true;
                }
            }
        }
    }
    if (rc == 0 && !found)
        rc = kiln_err_set(err, KILN_ENOTFOUND, "DAG '%s' has no run '%s'", dag_id, sel);
    return rc;
}

struct path_row {
    char *path;
};

static int path_row_cb(void *arg, struct store_row *r)
{
    struct path_row *p = arg;
    if (store_col_text(r, 1))
        p->path = xstrdup(store_col_text(r, 1));
    return 1;
}

static int load_one(const char *path, const char *dag_id, struct dag **out, char **source,
                    size_t *len, struct kiln_err *err)
{
    char *buf = NULL;
    size_t n = 0;
    int rc = file_read_all(path, &buf, &n);
    if (rc < 0)
        return kiln_err_set(err, rc, "%s: %s", path, strerror(-rc));
    struct dag *d = NULL;
    if ((rc = dag_load_buf(path, buf, n, &d, err)) < 0) {
        free(buf);
        return rc;
    }
    if (dag_id && strcmp(d->id, dag_id) != 0) {
        dag_free(d);
        free(buf);
        return KILN_ENOTFOUND;
    }
    char hex[65];
    sha256_hex(buf, n, hex);
    free(d->hash);
    d->hash = xstrdup(hex);
    *out = d;
    *source = buf;
    *len = n;
    return 0;
}

struct dag_state {
    char *dag_id, *path;
    int64_t current_version;
};

static int dag_state_cb(void *arg, struct store_row *r)
{
    struct dag_state *ds = arg;
    ds->dag_id = xstrdup(store_col_text(r, 0));
    if (store_col_text(r, 1))
        ds->path = xstrdup(store_col_text(r, 1));
    ds->current_version = store_col_int(r, 4);
    return 1;
}

struct version_src {
    char *hash, *path;
    void *src;
    size_t len;
};

static int version_src_cb(void *arg, struct store_row *r)
{
    struct version_src *v = arg;
    size_t n = 0;
    const void *b = store_col_blob(r, 4, &n);
    v->hash = xstrdup(store_col_text(r, 2));
    v->path = xstrdup(store_col_text(r, 3));
    v->src = xmalloc(n + 1);
    if (n)
        memcpy(v->src, b, n);
    ((char *)v->src)[n] = '\0';
    v->len = n;
    return 1;
}

/* The DAG as recorded in a version row (its source parsed again). */
static int load_version(struct store *st, int64_t version_id, const char *dag_id,
                        struct dag **out, char **source, size_t *len)
{
    struct version_src v = { 0 };
    struct kiln_err e = { 0 };
    int rc = store_exec(st, Q_version_get, version_src_cb, &v, &e, "i", version_id);
    if (rc == 0 && !v.src)
        rc = KILN_ENOTFOUND;
    struct dag *d = NULL;
    if (rc == 0 && (rc = dag_load_buf(v.path, v.src, v.len, &d, &e)) == 0 &&
        strcmp(d->id, dag_id) != 0)
        rc = KILN_ENOTFOUND;
    if (rc == 0) {
        free(d->hash);
        d->hash = v.hash;
        v.hash = NULL;
        *out = d;
        *source = v.src;
        *len = v.len;
        v.src = NULL;
        d = NULL;
    }
    dag_free(d);
    free(v.hash);
    free(v.path);
    free(v.src);
    return rc;
}

int cmd_find_dag(struct store *st, const char *dags_dir, const char *dag_id, struct dag **out,
                 char **source, size_t *len, struct kiln_err *err)
{
    struct dag_state ds = { 0 };
    struct kiln_err e = { 0 };
    store_exec(st, Q_dag_state, dag_state_cb, &ds, &e, "s", dag_id);
    if (ds.path) {
        int rc = load_one(ds.path, dag_id, out, source, len, &e);
        if (rc != 0 && rc != KILN_ENOTFOUND && rc != -ENOENT) {
            /* The file is there but does not load (a broken edit): the last
             * good version stays usable.  `kiln dags list` shows the error. */
            if (ds.current_version &&
                load_version(st, ds.current_version, dag_id, out, source, len) == 0)
                rc = 0;
            else
                rc = kiln_err_set(err, rc, "%s", e.msg);
        }
        if (rc != KILN_ENOTFOUND && rc != -ENOENT) {
            free(ds.dag_id);
            free(ds.path);
            return rc;
        }
    }
    /* The file moved or is new: scan the folder. */
    struct dagdir *dd = NULL;
    int rc = dagdir_load(dags_dir, &dd, err);
    if (rc < 0) {
        free(ds.dag_id);
        free(ds.path);
        return rc;
    }
    if (ds.dag_id)
        rc = kiln_err_set(err, KILN_ENOTFOUND,
                          "DAG '%s' is no longer in %s (its file %s was deleted or no longer "
                          "declares it); it cannot run, its runs and versions are kept",
                          dag_id, dags_dir, ds.path ? ds.path : "?");
    else
        rc = kiln_err_set(err, KILN_ENOTFOUND, "no DAG '%s' in %s", dag_id, dags_dir);
    for (size_t i = 0; i < dd->n; i++) {
        struct dagdir_entry *en = &dd->entries[i];
        if (en->dag && strcmp(en->dag->id, dag_id) == 0) {
            kiln_err_clear(err);
            rc = load_one(en->path, dag_id, out, source, len, err);
            break;
        }
    }
    dagdir_free(dd);
    free(ds.dag_id);
    free(ds.path);
    return rc;
}

static int ensure_version(struct store *st, const struct dag *d, const char *source, size_t len,
                          int64_t *version_id, struct kiln_err *err)
{
    bool found = false;
    int rc = store_get_int(st, Q_version_find, version_id, &found, err, "ss", d->id, d->hash);
    if (rc < 0 || found)
        return rc;
    if ((rc = store_insert(st, Q_version_insert, version_id, err, "sssbi", d->id, d->hash,
                           d->path, (const void *)source, len, now_us())) < 0)
        return rc;
    /* The git commit and dirty flag as of this first sighting (gitinfo.h). */
    char commit[41];
    if (!d->path || !git_head_commit(d->path, commit))
        return 0;
    int dirty = git_file_dirty(d->path);
    return store_exec(st, Q_version_set_git, NULL, NULL, err, "iss", *version_id, commit,
                      dirty < 0 ? NULL : dirty ? "1" : "0");
}

int cmd_ensure_version(struct store *st, const struct dag *d, const char *source, size_t len,
                       int64_t *version_id, struct kiln_err *err)
{
    return ensure_version(st, d, source, len, version_id, err);
}

static void make_run_id(char *buf, size_t n, const char *type)
{
    int64_t us = now_us();
    char iso[40];
    time_format_iso(us, iso, sizeof iso);
    snprintf(buf, n, "%s__%s", type, iso);
}

/* Checks the given params against the DAG's types and fills in defaults:
 * *out is the run's params as typed JSON ({"lr": 0.1, "mode": "fast"}). */
static int merge_params(const struct dag *d, struct json_object *given, struct json_object **out,
                        struct kiln_err *err)
{
    struct json_object *m = json_object_new_object();
    *out = m;
    for (size_t i = 0; i < d->n_params; i++) {
        const struct dag_param *p = &d->params[i];
        struct json_object *val = NULL;
        const char *text = p->value;
        char why[600];
        if (given && json_object_object_get_ex(given, p->key, &val) && val) {
            json_type jt = json_object_get_type(val);
            if (jt == json_type_object || jt == json_type_array)
                return kiln_err_set(err, KILN_EINVALID, "param '%s' must be a %s, got %s",
                                    p->key, dag_param_type_name(p->type),
                                    jt == json_type_object ? "an object" : "a list");
            text = json_object_get_string(val);
        } else if (p->required) {
            return kiln_err_set(err, KILN_EINVALID,
                                "param '%s' is required: DAG '%s' has no default for it "
                                "(give it with -p %s=VALUE)", p->key, d->id, p->key);
        }
        if (dag_param_check(p, text, why, sizeof why) < 0)
            return kiln_err_set(err, KILN_EINVALID, "%s", why);
        struct json_object *v;
        switch (p->type) {
        case DPT_INTEGER: v = json_object_new_int64(strtoll(text, NULL, 10)); break;
        case DPT_NUMBER: v = json_object_new_double_s(strtod(text, NULL), text); break;
        case DPT_BOOLEAN: v = json_object_new_boolean(strcmp(text, "true") == 0); break;
        default: v = json_object_new_string(text); break;
        }
        json_object_object_add(m, p->key, v);
    }
    return 0;
}

static int64_t jint(struct json_object *o, const char *key)
{
    struct json_object *v;
    if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_int))
        return 0;
    return json_object_get_int64(v);
}

/* A run for a data interval ("logical_us" and "interval_end_us" given, run
 * types scheduled and backfill) is named TYPE__<interval start in UTC>, like
 * Airflow's; with "skip_existing" an existing run of that name is not an
 * error but {"skipped":true}, so the scheduler can never create it twice. */
static int op_trigger(struct cmd_ctx *c, struct json_object *o, struct sbuf *res,
                      struct kiln_err *err)
{
    const char *dag_id = jstr(o, "dag"), *file = jstr(o, "file");
    const char *run_type = jstr(o, "run_type") ? jstr(o, "run_type") : "manual";
    const char *want_run_id = jstr(o, "run_id");
    int64_t logical_us = jint(o, "logical_us"), interval_end_us = jint(o, "interval_end_us");
    int64_t backfill_max = jint(o, "backfill_max_active");
    struct json_object *skip_o = NULL;
    json_object_object_get_ex(o, "skip_existing", &skip_o);
    bool skip_existing = skip_o && json_object_get_boolean(skip_o);
    char interval_run_id[120];
    if (logical_us && interval_end_us) {
        if (interval_end_us <= logical_us)
            return kiln_err_set(err, KILN_EINVALID, "the data interval ends before it starts");
        if (strcmp(run_type, "scheduled") != 0 && strcmp(run_type, "backfill") != 0)
            return kiln_err_set(err, KILN_EINVALID,
                                "only scheduled and backfill runs have a data interval");
        char iso[40];
        schedule_format_utc(logical_us, iso, sizeof iso);
        snprintf(interval_run_id, sizeof interval_run_id, "%s__%s", run_type, iso);
        want_run_id = NULL;
    } else if (logical_us || interval_end_us) {
        return kiln_err_set(err, KILN_EINVALID,
                            "'logical_us' and 'interval_end_us' go together");
    } else {
        interval_run_id[0] = '\0';
    }
    struct json_object *params = NULL;
    json_object_object_get_ex(o, "params", &params);
    if (params && !json_object_is_type(params, json_type_object))
        return kiln_err_set(err, KILN_EINVALID, "'params' must be an object");
    if (!dag_id && !file)
        return kiln_err_set(err, KILN_EINVALID, "'dag' is required");
    if (want_run_id && !ident_valid(want_run_id))
        return kiln_err_set(err, KILN_EINVALID,
                            "run id '%s' may use only letters, digits, '_', '-' and '.'",
                            want_run_id);

    struct dag *d = NULL;
    struct json_object *merged = NULL;
    char *source = NULL;
    size_t len = 0;
    int rc = file ? load_one(file, NULL, &d, &source, &len, err)
                  : cmd_find_dag(c->st, c->dags_dir, dag_id, &d, &source, &len, err);
    if (rc < 0)
        return rc;
    if (params) {
        /* Unknown params are refused: a typo must not run with the default. */
        json_object_object_foreach(params, key, val) {
            (void)val;
            bool known = false;
            for (size_t i = 0; i < d->n_params; i++)
                if (strcmp(d->params[i].key, key) == 0)
                    known = true;
            if (!known) {
                rc = kiln_err_set(err, KILN_EINVALID, "DAG '%s' has no param '%s'", d->id, key);
                goto out;
            }
        }
    }
    if ((rc = merge_params(d, params, &merged, err)) < 0)
        goto out;
    int64_t version_id = 0, run_pk = 0, now = now_us();
    if ((rc = store_exec(c->st, Q_dag_upsert, NULL, NULL, err, "ssi", d->id, d->path, now)) < 0 ||
        (rc = ensure_version(c->st, d, source, len, &version_id, err)) < 0 ||
        (rc = store_exec(c->st, Q_dag_set_version, NULL, NULL, err, "si", d->id, version_id)) < 0)
        goto out;

    char run_id[200];
    if (interval_run_id[0]) {
        bool there = false;
        int64_t pk0;
        snprintf(run_id, sizeof run_id, "%s", interval_run_id);
        if ((rc = store_get_int(c->st, Q_run_find, &pk0, &there, err, "ss", d->id, run_id)) < 0)
            goto out;
        if (there && skip_existing) {
            sbuf_printf(res, "{\"dag\":");
            sbuf_json_str(res, d->id);
            sbuf_printf(res, ",\"run_id\":");
            sbuf_json_str(res, run_id);
            sbuf_printf(res, ",\"run\":%" PRId64 ",\"skipped\":true}", pk0);
            goto out;
        }
        if (there) {
            rc = kiln_err_set(err, KILN_EINVALID, "DAG '%s' already has a run '%s'", d->id, run_id);
            goto out;
        }
    } else if (want_run_id)
        snprintf(run_id, sizeof run_id, "%s", want_run_id);
    else
        make_run_id(run_id, sizeof run_id, run_type);
    bool exists = false;
    int64_t other;
    for (int k = 2; (rc = store_get_int(c->st, Q_run_find, &other, &exists, err, "ss", d->id,
                                        run_id)) == 0 && exists; k++) {
        if (want_run_id) {
            rc = kiln_err_set(err, KILN_EINVALID, "DAG '%s' already has a run '%s'", d->id, run_id);
            goto out;
        }
        size_t n = strlen(run_id);
        char *dash = strrchr(run_id, '-');
        if (k > 2 && dash)
            n = (size_t)(dash - run_id);
        snprintf(run_id + n, sizeof run_id - n, "-%d", k);
    }
    if (rc < 0)
        goto out;
    const char *pj = params ? json_object_to_json_string_ext(params, JSON_C_TO_STRING_PLAIN)
                            : "{}";
    if ((rc = store_insert(c->st, Q_run_insert, &run_pk, err, "ssissoi", d->id, run_id,
                           version_id, run_type,
                           json_object_to_json_string_ext(merged, JSON_C_TO_STRING_PLAIN),
                           logical_us, now)) < 0)
        goto out;
    if (interval_end_us &&
        (rc = store_exec(c->st, Q_run_set_interval, NULL, NULL, err, "iio", run_pk,
                         interval_end_us, strcmp(run_type, "backfill") == 0
                                              ? (backfill_max > 0 ? backfill_max : 1)
                                              : (int64_t)0)) < 0)
        goto out;
    for (size_t i = 0; i < d->n_tasks; i++) {
        const struct dag_task *t = &d->tasks[i];
        if ((rc = store_insert(c->st, Q_ti_insert, NULL, err, "isiii", run_pk, t->id, (int64_t)i,
                               (int64_t)t->retries + 1, now)) < 0)
            goto out;
    }
    char *logs = xasprintf("%s/logs/%s/%s", c->home, d->id, run_id);
    mkdir_p(logs, 0755);
    free(logs);
    if ((rc = audit(c, "trigger", d->id, run_id, NULL, pj, err)) < 0)
        goto out;
    sbuf_printf(res, "{\"dag\":");
    sbuf_json_str(res, d->id);
    sbuf_printf(res, ",\"run_id\":");
    sbuf_json_str(res, run_id);
    sbuf_printf(res, ",\"run\":%" PRId64 "}", run_pk);
    if (c->sched) {
        sched_cache_dag(c->sched, version_id, d);
        d = NULL;
        rc = sched_load_run(c->sched, run_pk, err);
    }
out:
    json_object_put(merged);
    dag_free(d);
    free(source);
    return rc;
}

#define BACKFILL_MAX_RUNS 10000

/* One backfill run per data interval that starts in [from, to], oldest
 * first; existing ones are skipped.  They queue apart from the DAG's other
 * runs, max_active at a time (default 1). */
static int op_backfill(struct cmd_ctx *c, struct json_object *o, struct sbuf *res,
                       struct kiln_err *err)
{
    const char *dag_id, *from, *to;
    int rc;
    if ((rc = need(o, "dag", &dag_id, err)) < 0 || (rc = need(o, "from", &from, err)) < 0 ||
        (rc = need(o, "to", &to, err)) < 0)
        return rc;
    int64_t max_active = jint(o, "max_active");
    if (max_active < 0 || max_active > 10000)
        return kiln_err_set(err, KILN_EINVALID, "'max_active' must be 1..10000");
    struct dag *d = NULL;
    char *source = NULL;
    size_t len = 0;
    if ((rc = cmd_find_dag(c->st, c->dags_dir, dag_id, &d, &source, &len, err)) < 0)
        return rc;
    free(source);
    struct schedule s;
    rc = schedule_from_dag(d, &s, err);
    if (rc == 0 && !s.cron)
        rc = kiln_err_set(err, KILN_EINVALID, "DAG '%s' has no schedule to backfill", d->id);
    int64_t from_us = 0, to_us = 0;
    struct kiln_err e2 = { 0 };
    if (rc == 0 && schedule_parse_time(&s, from, &from_us, &e2) < 0)
        rc = kiln_err_set(err, KILN_EINVALID, "--from: %s", e2.msg);
    if (rc == 0 && schedule_parse_time(&s, to, &to_us, &e2) < 0)
        rc = kiln_err_set(err, KILN_EINVALID, "--to: %s", e2.msg);
    if (rc == 0 && to_us < from_us)
        rc = kiln_err_set(err, KILN_EINVALID, "--to is before --from");
    struct interval *iv = NULL;
    size_t n = 0;
    if (rc == 0) {
        iv = xcalloc(BACKFILL_MAX_RUNS, sizeof *iv);
        n = schedule_range(&s, from_us, to_us, iv, BACKFILL_MAX_RUNS);
        if (n > BACKFILL_MAX_RUNS)
            rc = kiln_err_set(err, KILN_EINVALID,
                              "the range holds %zu intervals; a backfill may create at most %d",
                              n, BACKFILL_MAX_RUNS);
    }
    size_t created = 0, skipped = 0;
    struct sbuf runs;
    sbuf_init(&runs);
    sbuf_adds(&runs, "[");
    for (size_t i = 0; i < n && rc == 0; i++) {
        struct json_object *t = json_object_new_object();
        json_object_object_add(t, "dag", json_object_new_string(d->id));
        json_object_object_add(t, "run_type", json_object_new_string("backfill"));
        json_object_object_add(t, "logical_us", json_object_new_int64(iv[i].start_us));
        json_object_object_add(t, "interval_end_us", json_object_new_int64(iv[i].end_us));
        json_object_object_add(t, "backfill_max_active",
                               json_object_new_int64(max_active > 0 ? max_active : 1));
        json_object_object_add(t, "skip_existing", json_object_new_boolean(1));
        struct sbuf one;
        sbuf_init(&one);
        rc = op_trigger(c, t, &one, err);
        json_object_put(t);
        if (rc == 0) {
            if (strstr(one.data, "\"skipped\":true"))
                skipped++;
            else
                created++;
            sbuf_printf(&runs, "%s%s", i ? "," : "", one.data);
        }
        sbuf_free(&one);
    }
    sbuf_adds(&runs, "]");
    if (rc == 0) {
        char detail[200];
        snprintf(detail, sizeof detail, "from=%s to=%s max_active=%lld", from, to,
                 (long long)(max_active > 0 ? max_active : 1));
        rc = audit(c, "backfill", d->id, NULL, NULL, detail, err);
    }
    if (rc == 0)
        sbuf_printf(res, "{\"created\":%zu,\"skipped\":%zu,\"runs\":%s}", created, skipped,
                    runs.data);
    sbuf_free(&runs);
    free(iv);
    schedule_free(&s);
    dag_free(d);
    return rc;
}

static int op_pause(struct cmd_ctx *c, struct json_object *o, bool paused, struct sbuf *res,
                    struct kiln_err *err)
{
    const char *dag_id;
    int rc = need(o, "dag", &dag_id, err);
    if (rc < 0)
        return rc;
    /* A DAG the daemon has not registered yet can be paused before its
     * first run: register it from the folder. */
    struct path_row pr = { NULL };
    store_exec(c->st, Q_dag_get, path_row_cb, &pr, NULL, "s", dag_id);
    bool known = pr.path != NULL;
    free(pr.path);
    if (!known) {
        struct dag *d = NULL;
        char *src = NULL;
        size_t len;
        if ((rc = cmd_find_dag(c->st, c->dags_dir, dag_id, &d, &src, &len, err)) < 0)
            return rc;
        rc = store_exec(c->st, Q_dag_upsert, NULL, NULL, err, "ssi", d->id, d->path, now_us());
        dag_free(d);
        free(src);
        if (rc < 0)
            return rc;
    }
    if ((rc = sched_set_paused(c->sched, dag_id, paused, err)) < 0)
        return rc;
    if ((rc = audit(c, paused ? "pause" : "unpause", dag_id, NULL, NULL, NULL, err)) < 0)
        return rc;
    sbuf_printf(res, "{\"dag\":");
    sbuf_json_str(res, dag_id);
    sbuf_printf(res, ",\"paused\":%s}", paused ? "true" : "false");
    return 0;
}

static int run_arg(struct cmd_ctx *c, struct json_object *o, const char **dag_id,
                   const char **sel, int64_t *pk, struct kiln_err *err)
{
    int rc;
    if ((rc = need(o, "dag", dag_id, err)) < 0 || (rc = need(o, "run", sel, err)) < 0)
        return rc;
    return cmd_find_run(c->st, *dag_id, *sel, pk, err);
}

static int op_clear(struct cmd_ctx *c, struct json_object *o, struct sbuf *res,
                    struct kiln_err *err)
{
    const char *dag_id, *sel;
    int64_t pk;
    int rc = run_arg(c, o, &dag_id, &sel, &pk, err);
    if (rc < 0)
        return rc;
    struct json_object *tasks = NULL, *down = NULL;
    json_object_object_get_ex(o, "tasks", &tasks);
    json_object_object_get_ex(o, "downstream", &down);
    if (!tasks || !json_object_is_type(tasks, json_type_array) ||
        json_object_array_length(tasks) == 0)
        return kiln_err_set(err, KILN_EINVALID, "'tasks' must be a non-empty list of task ids");
    size_t n = json_object_array_length(tasks);
    const char **ids = xcalloc(n, sizeof *ids);
    struct sbuf detail;
    sbuf_init(&detail);
    for (size_t i = 0; i < n; i++) {
        ids[i] = json_object_get_string(json_object_array_get_idx(tasks, i));
        sbuf_printf(&detail, "%s%s", i ? "," : "", ids[i]);
    }
    bool downstream = down && json_object_get_boolean(down);
    rc = sched_clear(c->sched, pk, ids, n, downstream, err);
    if (rc == 0)
        rc = audit(c, downstream ? "clear+downstream" : "clear", dag_id, sel, detail.data, NULL,
                   err);
    if (rc == 0)
        sbuf_printf(res, "{\"cleared\":%zu}", n);
    free(ids);
    sbuf_free(&detail);
    return rc;
}

static int op_mark(struct cmd_ctx *c, struct json_object *o, struct sbuf *res,
                   struct kiln_err *err)
{
    const char *dag_id, *sel, *task, *state;
    int64_t pk;
    int rc = run_arg(c, o, &dag_id, &sel, &pk, err);
    if (rc < 0 || (rc = need(o, "task", &task, err)) < 0 || (rc = need(o, "state", &state, err)) < 0)
        return rc;
    int to = ti_state_parse(state);
    if (to != TI_SUCCESS && to != TI_FAILED && to != TI_SKIPPED)
        return kiln_err_set(err, KILN_EINVALID,
                            "state must be success, failed or skipped, got '%s'", state);
    char reason[200];
    snprintf(reason, sizeof reason, "marked %s by %s", state, c->actor ? c->actor : "a user");
    if ((rc = sched_mark(c->sched, pk, task, (enum ti_state)to, reason, err)) < 0)
        return rc;
    if ((rc = audit(c, "mark", dag_id, sel, task, state, err)) < 0)
        return rc;
    sbuf_printf(res, "{\"task\":");
    sbuf_json_str(res, task);
    sbuf_printf(res, ",\"state\":");
    sbuf_json_str(res, state);
    sbuf_adds(res, "}");
    return 0;
}

static int op_cancel(struct cmd_ctx *c, struct json_object *o, struct sbuf *res,
                     struct kiln_err *err)
{
    const char *dag_id, *sel;
    int64_t pk;
    int rc = run_arg(c, o, &dag_id, &sel, &pk, err);
    if (rc < 0)
        return rc;
    char reason[200];
    snprintf(reason, sizeof reason, "run cancelled by %s", c->actor ? c->actor : "a user");
    if ((rc = sched_cancel_run(c->sched, pk, reason, err)) < 0)
        return rc;
    if ((rc = audit(c, "cancel", dag_id, sel, NULL, NULL, err)) < 0)
        return rc;
    sbuf_adds(res, "{\"cancelled\":true}");
    return 0;
}

int cmd_apply(struct cmd_ctx *c, const char *body, char **result, struct kiln_err *err)
{
    struct json_tokener *tok = json_tokener_new();
    struct json_object *o = json_tokener_parse_ex(tok, body, (int)strlen(body));
    enum json_tokener_error jerr = json_tokener_get_error(tok);
    json_tokener_free(tok);
    if (!o || jerr != json_tokener_success) {
        json_object_put(o);
        return kiln_err_set(err, KILN_EPARSE, "command is not valid JSON: %s",
                            json_tokener_error_desc(jerr));
    }
    int rc;
    struct sbuf res;
    sbuf_init(&res);
    const char *op = jstr(o, "op");
    if (!json_object_is_type(o, json_type_object) || !op)
        rc = kiln_err_set(err, KILN_EINVALID, "command must be an object with an 'op'");
    else if ((rc = store_txn_begin(c->st, err)) < 0 ||
             (rc = store_exec(c->st, Q_savepoint, NULL, NULL, err, "")) < 0)
        ;
    else if (strcmp(op, "trigger") == 0)
        rc = op_trigger(c, o, &res, err);
    else if (strcmp(op, "backfill") == 0)
        rc = op_backfill(c, o, &res, err);
    else if (strcmp(op, "pause") == 0)
        rc = op_pause(c, o, true, &res, err);
    else if (strcmp(op, "unpause") == 0)
        rc = op_pause(c, o, false, &res, err);
    else if (strcmp(op, "clear") == 0)
        rc = op_clear(c, o, &res, err);
    else if (strcmp(op, "mark") == 0)
        rc = op_mark(c, o, &res, err);
    else if (strcmp(op, "cancel") == 0)
        rc = op_cancel(c, o, &res, err);
    else
        rc = kiln_err_set(err, KILN_EINVALID, "unknown op '%s'", op);
    json_object_put(o);
    if (op && store_in_txn(c->st)) {
        /* Undo a failed command's writes; keep a good one's in the turn. */
        if (rc < 0)
            store_exec(c->st, Q_rollback_to, NULL, NULL, NULL, "");
        store_exec(c->st, Q_release, NULL, NULL, NULL, "");
    }
    if (rc < 0) {
        sbuf_free(&res);
        return rc;
    }
    *result = res.data ? res.data : xstrdup("{}");
    return 0;
}
