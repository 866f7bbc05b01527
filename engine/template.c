#include "template.h"

#include <ctype.h>
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* The fixed names, in the order of enum kind. */
static const char *const fixed_names[] = {
    "ds",     "ds_nodash", "ts",      "logical_date", "data_interval_start", "data_interval_end",
    "run_id", "dag.id",    "task.id", "try_number",
};
enum kind {
    K_DS, K_DS_NODASH, K_TS, K_LOGICAL_DATE, K_DIS, K_DIE, K_RUN_ID, K_DAG_ID, K_TASK_ID,
    K_TRY_NUMBER, K_PARAM, K_OUTPUT, K_BAD
};

#define NAME_MAX_LEN 512

struct ref {
    enum kind kind;
    const char *name;
    char a[NAME_MAX_LEN];          /* param name, or task id */
    char b[NAME_MAX_LEN];          /* output key */
};

static void classify(const char *name, struct ref *r)
{
    r->name = name;
    r->a[0] = r->b[0] = '\0';
    for (size_t i = 0; i < ARRAY_LEN(fixed_names); i++)
        if (strcmp(name, fixed_names[i]) == 0) {
            r->kind = (enum kind)i;
            return;
        }
    r->kind = K_BAD;
    if (strncmp(name, "params.", 7) == 0 && name[7]) {
        r->kind = K_PARAM;
        snprintf(r->a, sizeof r->a, "%s", name + 7);
        return;
    }
    if (strncmp(name, "tasks.", 6) == 0) {
        /* Task ids may hold dots: the id runs up to the last ".outputs.". */
        const char *id = name + 6, *last = NULL;
        for (const char *p = strstr(id, ".outputs."); p; p = strstr(p + 1, ".outputs."))
            last = p;
        if (last && last > id && last[9] && !strchr(last + 9, '.')) {
            r->kind = K_OUTPUT;
            snprintf(r->a, sizeof r->a, "%.*s", (int)(last - id), id);
            snprintf(r->b, sizeof r->b, "%s", last + 9);
        }
    }
}

static bool name_char(int c)
{
    return isalnum(c) || c == '_' || c == '-' || c == '.';
}

typedef int (*ref_fn)(void *arg, const struct ref *r, char *why, size_t n);

/* Walks s: literal text goes to out (if any), each reference to fn. */
static int walk(const char *s, struct sbuf *out, ref_fn fn, void *arg, char *why, size_t n)
{
    const char *p = s;
    for (;;) {
        const char *o = strstr(p, "{{");
        if (!o) {
            if (out)
                sbuf_adds(out, p);
            return 0;
        }
        if (out)
            sbuf_add(out, p, (size_t)(o - p));
        const char *c = strstr(o + 2, "}}");
        if (!c) {
            snprintf(why, n, "unclosed '{{' in template '%.200s' (missing '}}')", s);
            return -1;
        }
        const char *a = o + 2, *b = c;
        while (a < b && isspace((unsigned char)*a))
            a++;
        while (b > a && isspace((unsigned char)b[-1]))
            b--;
        size_t len = (size_t)(b - a);
        bool ok = len > 0 && len < NAME_MAX_LEN &&
                  (isalpha((unsigned char)a[0]) || a[0] == '_') && b[-1] != '.';
        for (size_t i = 0; ok && i < len; i++)
            ok = name_char((unsigned char)a[i]) && !(a[i] == '.' && a[i + 1] == '.');
        if (!ok) {
            snprintf(why, n,
                     "template %.*s: only a name like {{ ds }} or {{ params.NAME }} may appear "
                     "between the braces (no expressions, filters or code)",
                     (int)(c + 2 - o > 200 ? 200 : c + 2 - o), o);
            return -1;
        }
        char name[NAME_MAX_LEN];
        memcpy(name, a, len);
        name[len] = '\0';
        struct ref r;
        classify(name, &r);
        int rc = fn(arg, &r, why, n);
        if (rc)
            return rc;
        p = c + 2;
    }
}

bool template_has_refs(const char *s)
{
    return s && strstr(s, "{{") != NULL;
}

/* --- load-time check ------------------------------------------------------ */

struct check_ctx {
    const struct dag *d;
    const struct dag_task *t;
};

static void consider(const char *name, const char *cand, const char **best, int *best_d)
{
    int dist = levenshtein(name, cand);
    if (dist < *best_d) {
        *best_d = dist;
        *best = cand;
    }
}

static void unknown_name(const struct check_ctx *c, const char *name, char *why, size_t n)
{
    const char *best = NULL;
    int best_d = 3;
    for (size_t i = 0; i < ARRAY_LEN(fixed_names); i++)
        consider(name, fixed_names[i], &best, &best_d);
    char cand[NAME_MAX_LEN + 8];
    char keep[NAME_MAX_LEN + 8];
    for (size_t i = 0; i < c->d->n_params; i++) {
        snprintf(cand, sizeof cand, "params.%s", c->d->params[i].key);
        int dist = levenshtein(name, cand);
        if (dist < best_d) {
            best_d = dist;
            memcpy(keep, cand, sizeof keep);
            best = keep;
        }
    }
    if (best)
        snprintf(why, n, "unknown template name '%s' (did you mean '%s'?)", name, best);
    else if (strncmp(name, "tasks.", 6) == 0)
        snprintf(why, n, "unknown template name '%s' (task outputs are named "
                 "tasks.ID.outputs.KEY)", name);
    else
        snprintf(why, n, "unknown template name '%s'", name);
}

/* Is task index u upstream (directly or not) of task t? */
static bool is_upstream(const struct dag *d, const struct dag_task *t, uint32_t u)
{
    size_t n = d->n_tasks;
    uint32_t *stack = xmalloc((n ? n : 1) * sizeof *stack);
    unsigned char *seen = xcalloc(n ? n : 1, 1);
    size_t sp = 0;
    bool found = false;
    for (size_t k = 0; k < t->n_up; k++)
        if (!seen[t->up[k]]) {
            seen[t->up[k]] = 1;
            stack[sp++] = t->up[k];
        }
    while (sp > 0 && !found) {
        uint32_t v = stack[--sp];
        if (v == u) {
            found = true;
            break;
        }
        const struct dag_task *x = &d->tasks[v];
        for (size_t k = 0; k < x->n_up; k++)
            if (!seen[x->up[k]]) {
                seen[x->up[k]] = 1;
                stack[sp++] = x->up[k];
            }
    }
    free(stack);
    free(seen);
    return found;
}

static int check_ref(void *arg, const struct ref *r, char *why, size_t n)
{
    struct check_ctx *c = arg;
    switch (r->kind) {
    case K_PARAM:
        for (size_t i = 0; i < c->d->n_params; i++)
            if (strcmp(c->d->params[i].key, r->a) == 0)
                return 0;
        unknown_name(c, r->name, why, n);
        return -1;
    case K_OUTPUT: {
        const struct dag_task *u = dag_task_find(c->d, r->a);
        if (!u) {
            const char *best = NULL;
            int best_d = 3;
            for (size_t i = 0; i < c->d->n_tasks; i++)
                consider(r->a, c->d->tasks[i].id, &best, &best_d);
            if (best)
                snprintf(why, n, "unknown template name '%s': no task '%s' (did you mean '%s'?)",
                         r->name, r->a, best);
            else
                snprintf(why, n, "unknown template name '%s': no task '%s'", r->name, r->a);
            return -1;
        }
        if (!c->t || !is_upstream(c->d, c->t, u->index)) {
            snprintf(why, n,
                     "template name '%s': task '%s' is not upstream of '%s' (add it to deps)",
                     r->name, r->a, c->t ? c->t->id : "?");
            return -1;
        }
        return 0;
    }
    case K_BAD: unknown_name(c, r->name, why, n); return -1;
    default: return 0;
    }
}

int template_check(const char *s, const struct dag *d, const struct dag_task *t, char *why,
                   size_t why_len)
{
    if (!template_has_refs(s))
        return 0;
    struct check_ctx c = {d, t};
    return walk(s, NULL, check_ref, &c, why, why_len);
}

/* --- rendering ------------------------------------------------------------ */

void template_fmt_ds(int64_t us, char *buf, size_t n)
{
    time_t secs = (time_t)(us / 1000000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    strftime(buf, n, "%Y-%m-%d", &tm);
}

void template_fmt_ts(int64_t us, char *buf, size_t n)
{
    time_t secs = (time_t)(us / 1000000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    strftime(buf, n, "%Y-%m-%dT%H:%M:%S+00:00", &tm);
}

struct render_ctx {
    const struct template_vars *v;
    struct sbuf *out;
    struct json_object *params;    /* parsed on first use */
    bool params_parsed;
};

/* A JSON value as text: strings bare, everything else as JSON. */
static void add_json_value(struct sbuf *out, struct json_object *val)
{
    if (json_object_is_type(val, json_type_string))
        sbuf_add(out, json_object_get_string(val), (size_t)json_object_get_string_len(val));
    else
        sbuf_adds(out, json_object_to_json_string_ext(val, JSON_C_TO_STRING_PLAIN));
}

static int render_ref(void *arg, const struct ref *r, char *why, size_t n)
{
    struct render_ctx *c = arg;
    const struct template_vars *v = c->v;
    char buf[64];
    switch (r->kind) {
    case K_DS: template_fmt_ds(v->logical_us, buf, sizeof buf); break;
    case K_DS_NODASH: {
        char ds[32];
        template_fmt_ds(v->logical_us, ds, sizeof ds);
        size_t k = 0;
        for (const char *p = ds; *p && k + 1 < sizeof buf; p++)
            if (*p != '-')
                buf[k++] = *p;
        buf[k] = '\0';
        break;
    }
    case K_TS:
    case K_LOGICAL_DATE: template_fmt_ts(v->logical_us, buf, sizeof buf); break;
    case K_DIS: template_fmt_ts(v->interval_start_us, buf, sizeof buf); break;
    case K_DIE: template_fmt_ts(v->interval_end_us, buf, sizeof buf); break;
    case K_RUN_ID: sbuf_adds(c->out, v->run_id ? v->run_id : ""); return 0;
    case K_DAG_ID: sbuf_adds(c->out, v->dag_id ? v->dag_id : ""); return 0;
    case K_TASK_ID: sbuf_adds(c->out, v->task_id ? v->task_id : ""); return 0;
    case K_TRY_NUMBER: snprintf(buf, sizeof buf, "%d", v->try_number); break;
    case K_PARAM: {
        if (!c->params_parsed) {
            c->params_parsed = true;
            c->params = v->params_json ? json_tokener_parse(v->params_json) : NULL;
        }
        struct json_object *val = NULL;
        if (!c->params || !json_object_is_type(c->params, json_type_object) ||
            !json_object_object_get_ex(c->params, r->a, &val) || val == NULL) {
            snprintf(why, n, "template {{ %s }}: the run has no param '%s'", r->name, r->a);
            return -1;
        }
        add_json_value(c->out, val);
        return 0;
    }
    case K_OUTPUT: {
        const char *text = v->outputs ? v->outputs(v->arg, r->a) : NULL;
        struct json_object *o = text ? json_tokener_parse(text) : NULL, *val = NULL;
        int rc = 0;
        if (!o || !json_object_is_type(o, json_type_object) ||
            !json_object_object_get_ex(o, r->b, &val) || val == NULL) {
            snprintf(why, n, "template {{ %s }}: task '%s' wrote no output '%s'", r->name, r->a,
                     r->b);
            rc = -1;
        } else {
            add_json_value(c->out, val);
        }
        json_object_put(o);
        return rc;
    }
    case K_BAD:
    default:
        snprintf(why, n, "template {{ %s }}: unknown template name '%s'", r->name, r->name);
        return -1;
    }
    sbuf_adds(c->out, buf);
    return 0;
}

int template_render(const char *s, const struct template_vars *v, struct sbuf *out, char *why,
                    size_t why_len)
{
    if (!template_has_refs(s)) {
        sbuf_adds(out, s);
        return 0;
    }
    struct render_ctx c = {v, out, NULL, false};
    int rc = walk(s, out, render_ref, &c, why, why_len);
    json_object_put(c.params);
    return rc;
}
