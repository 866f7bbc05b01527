/* load_yaml: YAML DAG file -> struct dag.
 *
 * The file is loaded with libyaml's document API: the whole tree is small next
 * to the DAG it describes, and every node keeps its start mark, so each error
 * can point at the exact key or value that caused it. */
#include "load_yaml.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

#include "kube_spec.h"
#include "schedule.h"
#include "util.h"

#define ID_RULE DAG_ID_RULE

enum top_key {
    K_DAG,
    K_DESCRIPTION,
    K_SCHEDULE,
    K_TIMEZONE,
    K_START_DATE,
    K_END_DATE,
    K_CATCHUP,
    K_MAX_ACTIVE_RUNS,
    K_MAX_ACTIVE_TASKS,
    K_PARAMS,
    K_DEFAULT,
    K_TASKS,
    K__COUNT
};

static const char *const top_keys[K__COUNT] = {
    [K_DAG] = "dag",
    [K_DESCRIPTION] = "description",
    [K_SCHEDULE] = "schedule",
    [K_TIMEZONE] = "timezone",
    [K_START_DATE] = "start_date",
    [K_END_DATE] = "end_date",
    [K_CATCHUP] = "catchup",
    [K_MAX_ACTIVE_RUNS] = "max_active_runs",
    [K_MAX_ACTIVE_TASKS] = "max_active_tasks",
    [K_PARAMS] = "params",
    [K_DEFAULT] = "default",
    [K_TASKS] = "tasks",
};

const char *const dag_task_keys[DTK__COUNT] = {
    [DTK_COMMAND] = "command",
    [DTK_DEPS] = "deps",
    [DTK_ENV] = "env",
    [DTK_CWD] = "cwd",
    [DTK_RETRIES] = "retries",
    [DTK_RETRY_DELAY] = "retry_delay",
    [DTK_MAX_RETRY_DELAY] = "max_retry_delay",
    [DTK_TIMEOUT] = "timeout",
    [DTK_BACKOFF] = "retry_exponential_backoff",
    [DTK_TRIGGER_RULE] = "trigger_rule",
    [DTK_PRIORITY_WEIGHT] = "priority_weight",
    [DTK_POOL] = "pool",
    [DTK_POOL_SLOTS] = "pool_slots",
    [DTK_EXECUTOR] = "executor",
    [DTK_SKIP_EXIT_CODE] = "skip_exit_code",
    [DTK_DESCRIPTION] = "description",
    [DTK_KUBERNETES] = "kubernetes",
};

const char *const dag_executors[DAG_N_EXECUTORS] = {"local", "kubernetes"};

const struct dag_int_rule dag_task_int_rules[DTK__COUNT] = {
    [DTK_RETRIES] = {0, INT_MAX - 1, "a non-negative integer"},
    [DTK_PRIORITY_WEIGHT] = {INT_MIN, INT_MAX, "an integer"},
    [DTK_POOL_SLOTS] = {1, INT_MAX, "a positive integer"},
    [DTK_SKIP_EXIT_CODE] = {0, 255, "an integer from 0 to 255"},
};

const struct dag_int_rule dag_max_active_rule = {1, INT_MAX, "a positive integer"};

struct ctx {
    const char *path;
    yaml_document_t *doc;
    struct kiln_err *err;
};

/* --- helpers ---------------------------------------------------------------- */

static struct dag_pos node_pos(const yaml_node_t *n)
{
    struct dag_pos p = {(int)n->start_mark.line + 1, (int)n->start_mark.column + 1};
    return p;
}

static int fail(struct ctx *c, const yaml_node_t *n, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail(struct ctx *c, const yaml_node_t *n, int code, const char *fmt, ...)
{
    char msg[960];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    struct dag_pos p = node_pos(n);
    return kiln_err_set(c->err, code, "%s:%d:%d: %s", c->path, p.line, p.col, msg);
}

static yaml_node_t *get(struct ctx *c, int index)
{
    return yaml_document_get_node(c->doc, index);
}

static const char *sval(const yaml_node_t *n)
{
    return (const char *)n->data.scalar.value;
}

/* YAML's null: an empty plain scalar, '~' or 'null', or an explicit !!null. */
static bool is_null(const yaml_node_t *n)
{
    if (n->type != YAML_SCALAR_NODE)
        return false;
    if (n->tag && strcmp((const char *)n->tag, YAML_NULL_TAG) == 0)
        return true;
    if (n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return false;
    const char *s = sval(n);
    return *s == '\0' || strcmp(s, "~") == 0 || strcmp(s, "null") == 0 ||
           strcmp(s, "Null") == 0 || strcmp(s, "NULL") == 0;
}

/* What a node is, for "got ..." in messages. */
static const char *describe(const yaml_node_t *n, char *buf, size_t size)
{
    switch (n->type) {
    case YAML_MAPPING_NODE: return "a map";
    case YAML_SEQUENCE_NODE: return "a list";
    case YAML_SCALAR_NODE:
        if (n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE && sval(n)[0] == '\0')
            return "nothing";
        if (n->data.scalar.length > 60)
            snprintf(buf, size, "'%.57s...'", sval(n));
        else
            snprintf(buf, size, "'%s'", sval(n));
        return buf;
    default: return "nothing";
    }
}

/* The candidate closest to `word` within an edit distance of 2, or NULL. */
static const char *closest(const char *word, const char *const *cands, size_t n)
{
    const char *best = NULL;
    int best_d = 3;
    for (size_t i = 0; i < n; i++) {
        int d = levenshtein(word, cands[i]);
        if (d < best_d) {
            best_d = d;
            best = cands[i];
        }
    }
    return best;
}

/* " (did you mean 'x'?)" or " (valid LABEL: a, b, c)" into b. */
void dag_hint(struct sbuf *b, const char *word, const char *const *cands, size_t n,
              const char *label)
{
    const char *best = closest(word, cands, n);
    if (best) {
        sbuf_printf(b, " (did you mean '%s'?)", best);
        return;
    }
    sbuf_printf(b, " (valid %s: ", label);
    for (size_t i = 0; i < n; i++)
        sbuf_printf(b, "%s%s", i ? ", " : "", cands[i]);
    sbuf_adds(b, ")");
}

static int unknown_key(struct ctx *c, const yaml_node_t *k, const char *where,
                       const char *const *keys, size_t n)
{
    struct sbuf b;
    sbuf_init(&b);
    sbuf_printf(&b, "unknown %s", where);
    dag_hint(&b, sval(k), keys, n, "keys");
    int rc = fail(c, k, KILN_EINVALID, "%s", b.data);
    sbuf_free(&b);
    return rc;
}

static int key_index(const char *key, const char *const *keys, int n)
{
    for (int i = 0; i < n; i++)
        if (strcmp(key, keys[i]) == 0)
            return i;
    return -1;
}

/* A scalar's text, refusing the NUL bytes a double-quoted "\0" can smuggle
 * in, since everything downstream uses C strings. */
static int scalar_text(struct ctx *c, const yaml_node_t *n, const char *what, const char **out)
{
    *out = sval(n);
    if (strlen(sval(n)) != n->data.scalar.length)
        return fail(c, n, KILN_EINVALID, "%s must not contain a NUL character", what);
    return 0;
}

/* Map keys must be plain text: complex keys (lists, maps) mean nothing here. */
static int check_key(struct ctx *c, const yaml_node_t *k, const char *what)
{
    char buf[80];
    if (k->type != YAML_SCALAR_NODE)
        return fail(c, k, KILN_EINVALID, "%s must be strings, got %s", what,
                    describe(k, buf, sizeof buf));
    const char *s;
    return scalar_text(c, k, what, &s);
}

/* Errors if the key of `cur` already appeared earlier in the same map. The
 * maps checked this way are small (keys, env, params), so a scan will do. */
static int check_dup(struct ctx *c, const yaml_node_t *map, const yaml_node_pair_t *cur)
{
    const yaml_node_t *k = get(c, cur->key);
    for (const yaml_node_pair_t *p = map->data.mapping.pairs.start; p < cur; p++) {
        const yaml_node_t *pk = get(c, p->key);
        if (strcmp(sval(pk), sval(k)) == 0) {
            struct dag_pos fp = node_pos(pk);
            return fail(c, k, KILN_EINVALID, "duplicate key '%s' (first defined at %d:%d)",
                        sval(k), fp.line, fp.col);
        }
    }
    return 0;
}

static int get_str(struct ctx *c, const char *key, const yaml_node_t *v, bool nullable,
                   char **out)
{
    char buf[80];
    if (v->type != YAML_SCALAR_NODE || (!nullable && is_null(v)))
        return fail(c, v, KILN_EINVALID, "'%s' must be a string, got %s", key,
                    describe(v, buf, sizeof buf));
    char what[80];
    snprintf(what, sizeof what, "'%s'", key);
    const char *s;
    int rc = scalar_text(c, v, what, &s);
    if (rc)
        return rc;
    free(*out);
    *out = is_null(v) ? NULL : xstrdup(s);
    return 0;
}

static bool parse_int(const char *s, long long min, long long max, long long *out)
{
    const char *p = s[0] == '-' ? s + 1 : s;
    if (*p < '0' || *p > '9')
        return false;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end != '\0' || v < min || v > max)
        return false;
    *out = v;
    return true;
}

static int get_int(struct ctx *c, const char *key, const yaml_node_t *v, long long min,
                   long long max, const char *kind, int *out)
{
    long long x;
    if (v->type != YAML_SCALAR_NODE || !parse_int(sval(v), min, max, &x)) {
        char buf[80];
        return fail(c, v, KILN_EINVALID, "'%s' must be %s, got %s", key, kind,
                    describe(v, buf, sizeof buf));
    }
    *out = (int)x;
    return 0;
}

static int get_int_rule(struct ctx *c, const char *key, const yaml_node_t *v,
                        const struct dag_int_rule *r, int *out)
{
    return get_int(c, key, v, r->min, r->max, r->kind, out);
}

/* YAML 1.1 and 1.2 booleans; a quoted "yes" is a string, not a boolean. */
static int get_bool(struct ctx *c, const char *key, const yaml_node_t *v, bool *out)
{
    static const char *const yes[] = {"true", "yes", "on"};
    static const char *const no[] = {"false", "no", "off"};
    if (v->type == YAML_SCALAR_NODE && v->data.scalar.style == YAML_PLAIN_SCALAR_STYLE) {
        for (size_t i = 0; i < ARRAY_LEN(yes); i++) {
            if (strcasecmp(sval(v), yes[i]) == 0) {
                *out = true;
                return 0;
            }
            if (strcasecmp(sval(v), no[i]) == 0) {
                *out = false;
                return 0;
            }
        }
    }
    char buf[80];
    return fail(c, v, KILN_EINVALID, "'%s' must be true or false, got %s", key,
                describe(v, buf, sizeof buf));
}

static int get_duration(struct ctx *c, const char *key, const yaml_node_t *v, int64_t *out)
{
    if (v->type == YAML_SCALAR_NODE && duration_parse(sval(v), out) == 0)
        return 0;
    char buf[80];
    return fail(c, v, KILN_EINVALID, "'%s' must be a duration like 30s, 5m or 1h, got %s", key,
                describe(v, buf, sizeof buf));
}

/* A map of name -> scalar text (env, params). */
static int get_kvs(struct ctx *c, const char *key, const yaml_node_t *v, bool ident_names,
                   struct dag_kv **out, size_t *n_out)
{
    char buf[80];
    if (is_null(v))
        return 0;
    if (v->type != YAML_MAPPING_NODE)
        return fail(c, v, KILN_EINVALID, "'%s' must be a map, got %s", key,
                    describe(v, buf, sizeof buf));
    char what[80];
    snprintf(what, sizeof what, "'%s' names", key);
    size_t n = (size_t)(v->data.mapping.pairs.top - v->data.mapping.pairs.start);
    struct dag_kv *kv = xcalloc(n, sizeof *kv);
    size_t i = 0;
    int rc = 0;
    for (yaml_node_pair_t *p = v->data.mapping.pairs.start; p < v->data.mapping.pairs.top; p++) {
        yaml_node_t *k = get(c, p->key), *val = get(c, p->value);
        if ((rc = check_key(c, k, what)) || (rc = check_dup(c, v, p)))
            break;
        const char *name = sval(k);
        bool ok = ident_names ? ident_valid(name) : (*name != '\0' && !strchr(name, '='));
        if (!ok) {
            rc = fail(c, k, KILN_EINVALID, "invalid name '%s' in '%s'%s", name, key,
                      ident_names ? " (" ID_RULE ")" : "");
            break;
        }
        if (val->type != YAML_SCALAR_NODE) {
            rc = fail(c, val, KILN_EINVALID,
                      "'%s' value for '%s' must be a string or number, got %s", key, name,
                      describe(val, buf, sizeof buf));
            break;
        }
        const char *s;
        if ((rc = scalar_text(c, val, "a value", &s)))
            break;
        kv[i].key = xstrdup(name);
        kv[i].value = xstrdup(s);
        kv[i].pos = node_pos(k);
        i++;
    }
    /* Hand over what was built even on error, so the caller frees it. */
    *out = kv;
    *n_out = i;
    return rc;
}

static void free_kvs(struct dag_kv *kv, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(kv[i].key);
        free(kv[i].value);
    }
    free(kv);
}

/* --- params ----------------------------------------------------------------- */

static size_t map_len(const yaml_node_t *m);

/* The type a plain YAML scalar reads as: 3 -> integer, 0.1 -> number,
 * true -> boolean; a quoted scalar is always a string. */
static enum dag_param_type infer_type(const yaml_node_t *v)
{
    if (v->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return DPT_STRING;
    const char *s = sval(v);
    long long ll;
    if (parse_int(s, LLONG_MIN, LLONG_MAX, &ll))
        return DPT_INTEGER;
    static const char *const bools[] = {"true", "false", "yes", "no", "on", "off"};
    for (size_t i = 0; i < ARRAY_LEN(bools); i++)
        if (strcasecmp(s, bools[i]) == 0)
            return DPT_BOOLEAN;
    struct dag_param probe = {.key = (char *)"", .type = DPT_NUMBER};
    char why[8];
    if ((s[0] == '-' || s[0] == '+' || s[0] == '.' || (s[0] >= '0' && s[0] <= '9')) &&
        dag_param_check(&probe, s, why, sizeof why) == 0)
        return DPT_NUMBER;
    return DPT_STRING;
}

/* A default as stored: booleans as true/false whatever YAML spelling. */
static char *default_text(const yaml_node_t *v, enum dag_param_type t)
{
    if (t == DPT_BOOLEAN && v->data.scalar.style == YAML_PLAIN_SCALAR_STYLE) {
        const char *s = sval(v);
        if (!strcasecmp(s, "true") || !strcasecmp(s, "yes") || !strcasecmp(s, "on"))
            return xstrdup("true");
        if (!strcasecmp(s, "false") || !strcasecmp(s, "no") || !strcasecmp(s, "off"))
            return xstrdup("false");
    }
    return xstrdup(sval(v));
}

static const char *const param_keys[] = {"type", "default", "values", "description"};

/* The long form: {type: number, default: 0.1} or {type: enum, values: [a, b]}. */
static int get_param_long(struct ctx *c, const char *name, const yaml_node_t *v,
                          struct dag_param *p)
{
    char buf[80];
    const yaml_node_t *type = NULL, *def = NULL, *values = NULL;
    int rc;
    for (yaml_node_pair_t *q = v->data.mapping.pairs.start; q < v->data.mapping.pairs.top; q++) {
        const yaml_node_t *k = get(c, q->key), *val = get(c, q->value);
        if ((rc = check_key(c, k, "param keys")) || (rc = check_dup(c, v, q)))
            return rc;
        int key = key_index(sval(k), param_keys, (int)ARRAY_LEN(param_keys));
        if (key < 0) {
            char what[400];
            snprintf(what, sizeof what, "key '%s' in param '%s'", sval(k), name);
            return unknown_key(c, k, what, param_keys, ARRAY_LEN(param_keys));
        }
        if (key == 0)
            type = val;
        else if (key == 1)
            def = is_null(val) ? NULL : val;
        else if (key == 2)
            values = val;
        else {
            char *desc = NULL;
            rc = get_str(c, "description", val, true, &desc);
            free(desc);
            if (rc)
                return rc;
        }
    }
    if (def && def->type != YAML_SCALAR_NODE)
        return fail(c, def, KILN_EINVALID, "default of param '%s' must be a string or number, "
                    "got %s", name, describe(def, buf, sizeof buf));
    if (type) {
        if (type->type != YAML_SCALAR_NODE || is_null(type))
            return fail(c, type, KILN_EINVALID, "'type' of param '%s' must be a string, got %s",
                        name, describe(type, buf, sizeof buf));
        int t = dag_param_type_parse(sval(type));
        if (t < 0) {
            const char *names[DPT__COUNT];
            for (int i = 0; i < DPT__COUNT; i++)
                names[i] = dag_param_type_name((enum dag_param_type)i);
            struct sbuf b;
            sbuf_init(&b);
            sbuf_printf(&b, "unknown param type '%s'", sval(type));
            dag_hint(&b, sval(type), names, DPT__COUNT, "types");
            rc = fail(c, type, KILN_EINVALID, "%s", b.data);
            sbuf_free(&b);
            return rc;
        }
        p->type = (enum dag_param_type)t;
    } else {
        p->type = values ? DPT_ENUM : def ? infer_type(def) : DPT_STRING;
    }
    if (values && p->type != DPT_ENUM)
        return fail(c, values, KILN_EINVALID, "'values' is for params of type enum, and "
                    "param '%s' is a %s", name, dag_param_type_name(p->type));
    if (p->type == DPT_ENUM) {
        if (!values || values->type != YAML_SEQUENCE_NODE ||
            values->data.sequence.items.top == values->data.sequence.items.start)
            return fail(c, values ? values : v, KILN_EINVALID,
                        "param '%s' of type enum needs 'values': a list like [fast, full]", name);
        size_t n = (size_t)(values->data.sequence.items.top - values->data.sequence.items.start);
        p->values = xcalloc(n, sizeof *p->values);
        for (size_t i = 0; i < n; i++) {
            const yaml_node_t *e = get(c, values->data.sequence.items.start[i]);
            const char *s;
            if (e->type != YAML_SCALAR_NODE || is_null(e))
                return fail(c, e, KILN_EINVALID, "'values' of param '%s' must be strings, got %s",
                            name, describe(e, buf, sizeof buf));
            if ((rc = scalar_text(c, e, "'values'", &s)))
                return rc;
            p->values[p->n_values++] = xstrdup(s);
        }
    }
    if (def) {
        const char *s;
        if ((rc = scalar_text(c, def, "a default", &s)))
            return rc;
        char *text = default_text(def, p->type);
        char why[600];
        if (dag_param_check(p, text, why, sizeof why) < 0) {
            free(text);
            return fail(c, def, KILN_EINVALID, "default: %s", why);
        }
        p->value = text;
    } else {
        p->required = true;
        p->value = xstrdup("");
    }
    return 0;
}

/* params: {lr: 0.1} (type from the scalar) or the long form per param. */
static int get_params(struct ctx *c, const yaml_node_t *v, struct dag *d)
{
    char buf[80];
    if (is_null(v))
        return 0;
    if (v->type != YAML_MAPPING_NODE)
        return fail(c, v, KILN_EINVALID, "'params' must be a map, got %s",
                    describe(v, buf, sizeof buf));
    size_t n = map_len(v);
    d->params = xcalloc(n ? n : 1, sizeof *d->params);
    int rc = 0;
    for (yaml_node_pair_t *p = v->data.mapping.pairs.start; p < v->data.mapping.pairs.top; p++) {
        yaml_node_t *k = get(c, p->key), *val = get(c, p->value);
        if ((rc = check_key(c, k, "'params' names")) || (rc = check_dup(c, v, p)))
            return rc;
        const char *name = sval(k);
        if (!ident_valid(name))
            return fail(c, k, KILN_EINVALID, "invalid name '%s' in 'params' (" ID_RULE ")", name);
        struct dag_param *dp = &d->params[d->n_params++];
        dp->key = xstrdup(name);
        dp->pos = node_pos(k);
        if (val->type == YAML_MAPPING_NODE) {
            if ((rc = get_param_long(c, name, val, dp)))
                return rc;
            continue;
        }
        if (val->type != YAML_SCALAR_NODE)
            return fail(c, val, KILN_EINVALID,
                        "'params' value for '%s' must be a string or number, or a map like "
                        "{type: number, default: 0.1}, got %s",
                        name, describe(val, buf, sizeof buf));
        const char *s;
        if ((rc = scalar_text(c, val, "a value", &s)))
            return rc;
        dp->type = infer_type(val);
        dp->value = default_text(val, dp->type);
    }
    return 0;
}

/* --- tasks ------------------------------------------------------------------ */

static int set_command(struct ctx *c, struct dag_task *t, const yaml_node_t *v)
{
    char buf[80];
    if (v->type == YAML_SCALAR_NODE && !is_null(v))
        return fail(c, v, KILN_EINVALID,
                    "'command' must be a list of arguments (argv), e.g. [echo, hello]; "
                    "for a shell write [sh, -c, \"...\"]");
    if (v->type == YAML_MAPPING_NODE)
        return fail(c, v, KILN_EINVALID,
                    "'command' must be a list of arguments (argv), e.g. [echo, hello], got a map");
    size_t n = is_null(v) ? 0
                          : (size_t)(v->data.sequence.items.top - v->data.sequence.items.start);
    if (n == 0)
        return fail(c, v, KILN_EINVALID,
                    "'command' must not be empty: give the program and its arguments, "
                    "e.g. [echo, hello]");
    for (size_t i = 0; i < n; i++) {
        const yaml_node_t *a = get(c, v->data.sequence.items.start[i]);
        const char *s;
        int rc;
        if (a->type != YAML_SCALAR_NODE)
            return fail(c, a, KILN_EINVALID, "'command' arguments must be strings, got %s",
                        describe(a, buf, sizeof buf));
        if ((rc = scalar_text(c, a, "'command' arguments", &s)))
            return rc;
        if (i == 0 && *s == '\0')
            return fail(c, a, KILN_EINVALID, "'command' must start with the program to run");
    }
    for (size_t i = 0; i < t->argc; i++)
        free(t->argv[i]);
    free(t->argv);
    free(t->argv_pos);
    t->argv = xmalloc((n + 1) * sizeof *t->argv);
    t->argv_pos = xmalloc(n * sizeof *t->argv_pos);
    for (size_t i = 0; i < n; i++) {
        const yaml_node_t *a = get(c, v->data.sequence.items.start[i]);
        t->argv[i] = xstrdup(sval(a));
        t->argv_pos[i] = node_pos(a);
    }
    t->argv[n] = NULL;
    t->argc = n;
    return 0;
}

static int add_dep(struct ctx *c, struct dag_task *t, const yaml_node_t *d)
{
    char buf[80];
    const char *s;
    if (d->type != YAML_SCALAR_NODE || is_null(d))
        return fail(c, d, KILN_EINVALID, "'deps' entries must be task ids, got %s",
                    describe(d, buf, sizeof buf));
    int rc = scalar_text(c, d, "'deps' entries", &s);
    if (rc == 0)
        dag_task_add_dep(t, s, node_pos(d));
    return rc;
}

static int set_deps(struct ctx *c, struct dag_task *t, const yaml_node_t *v)
{
    char buf[80];
    if (is_null(v))
        return 0;
    if (v->type == YAML_SCALAR_NODE)
        return add_dep(c, t, v);
    if (v->type != YAML_SEQUENCE_NODE)
        return fail(c, v, KILN_EINVALID, "'deps' must be a list of task ids, got %s",
                    describe(v, buf, sizeof buf));
    for (yaml_node_item_t *i = v->data.sequence.items.start; i < v->data.sequence.items.top; i++) {
        int rc = add_dep(c, t, get(c, *i));
        if (rc)
            return rc;
    }
    return 0;
}

static int set_choice(struct ctx *c, const char *key, const char *label, const yaml_node_t *v,
                      const char *const *choices, size_t n, int *out)
{
    char buf[80];
    if (v->type != YAML_SCALAR_NODE || is_null(v))
        return fail(c, v, KILN_EINVALID, "'%s' must be a string, got %s", key,
                    describe(v, buf, sizeof buf));
    for (size_t i = 0; i < n; i++) {
        if (strcmp(sval(v), choices[i]) == 0) {
            *out = (int)i;
            return 0;
        }
    }
    struct sbuf b;
    sbuf_init(&b);
    sbuf_printf(&b, "unknown %s '%s'", key, sval(v));
    dag_hint(&b, sval(v), choices, n, label);
    int rc = fail(c, v, KILN_EINVALID, "%s", b.data);
    sbuf_free(&b);
    return rc;
}

/* Applies one task key (from the task itself or from the default block). */
static int apply_task_key(struct ctx *c, struct dag_task *t, enum dag_task_key key,
                          const yaml_node_t *v)
{
    const char *name = dag_task_keys[key];
    char buf[80];
    int rc = 0, choice = 0;
    switch (key) {
    case DTK_COMMAND: return set_command(c, t, v);
    case DTK_DEPS: return set_deps(c, t, v);
    case DTK_ENV: {
        struct dag_kv *kv = NULL;
        size_t n = 0;
        rc = get_kvs(c, name, v, false, &kv, &n);
        if (rc) {
            free_kvs(kv, n);
            return rc;
        }
        free_kvs(t->env, t->n_env);
        t->env = kv;
        t->n_env = n;
        return 0;
    }
    case DTK_CWD: return get_str(c, name, v, true, &t->cwd);
    case DTK_RETRIES:
        return get_int_rule(c, name, v, &dag_task_int_rules[key], &t->retries);
    case DTK_RETRY_DELAY: return get_duration(c, name, v, &t->retry_delay_ms);
    case DTK_MAX_RETRY_DELAY: return get_duration(c, name, v, &t->max_retry_delay_ms);
    case DTK_TIMEOUT: return get_duration(c, name, v, &t->timeout_ms);
    case DTK_BACKOFF: return get_bool(c, name, v, &t->retry_exponential_backoff);
    case DTK_TRIGGER_RULE: {
        const char *rules[TR__COUNT];
        for (int i = 0; i < TR__COUNT; i++)
            rules[i] = trigger_rule_name((enum trigger_rule)i);
        rc = set_choice(c, name, "rules", v, rules, TR__COUNT, &choice);
        if (rc == 0)
            t->trigger_rule = (enum trigger_rule)choice;
        return rc;
    }
    case DTK_PRIORITY_WEIGHT:
        return get_int_rule(c, name, v, &dag_task_int_rules[key], &t->priority_weight);
    case DTK_POOL: {
        char *pool = NULL;
        if ((rc = get_str(c, name, v, false, &pool)))
            return rc;
        if (!ident_valid(pool)) {
            free(pool);
            return fail(c, v, KILN_EINVALID, "invalid pool name %s (" ID_RULE ")",
                        describe(v, buf, sizeof buf));
        }
        free(t->pool);
        t->pool = pool;
        return 0;
    }
    case DTK_POOL_SLOTS:
        return get_int_rule(c, name, v, &dag_task_int_rules[key], &t->pool_slots);
    case DTK_EXECUTOR:
        rc = set_choice(c, name, "executors", v, dag_executors, DAG_N_EXECUTORS, &choice);
        if (rc == 0) {
            free(t->executor);
            t->executor = xstrdup(dag_executors[choice]);
        }
        return rc;
    case DTK_SKIP_EXIT_CODE:
        return get_int_rule(c, name, v, &dag_task_int_rules[key], &t->skip_exit_code);
    case DTK_DESCRIPTION: {
        /* Checked for type, but the task model has no place for it yet. */
        char *s = NULL;
        rc = get_str(c, name, v, true, &s);
        free(s);
        return rc;
    }
    case DTK_KUBERNETES:
        /* Only the shape here: the block merges with the default block's
         * and is parsed once the task is complete (load_kube). */
        if (!is_null(v) && v->type != YAML_MAPPING_NODE)
            return fail(c, v, KILN_EINVALID, "'kubernetes' must be a map, got %s",
                        describe(v, buf, sizeof buf));
        return 0;
    case DTK__COUNT: break;
    }
    return 0;
}

/* Checks the keys of a task map or of the default block: strings, known,
 * each once.  Fills keys[i] with the key index of pair i. */
static int check_task_keys(struct ctx *c, const yaml_node_t *map, const char *where, int *keys)
{
    size_t i = 0;
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
         p++, i++) {
        const yaml_node_t *k = get(c, p->key);
        int rc;
        if ((rc = check_key(c, k, "keys")))
            return rc;
        keys[i] = key_index(sval(k), dag_task_keys, DTK__COUNT);
        if (keys[i] < 0) {
            char what[400];
            snprintf(what, sizeof what, "key '%s' in %s", sval(k), where);
            return unknown_key(c, k, what, dag_task_keys, DTK__COUNT);
        }
        if ((rc = check_dup(c, map, p)))
            return rc;
    }
    return 0;
}

struct defaults {
    const yaml_node_t *map; /* NULL: no default block */
    int *keys;
    size_t n;
    const yaml_node_t *kube; /* its kubernetes block, or NULL */
};

/* --- the kubernetes block ---------------------------------------------------- */

#define KUBE_MAX_NODES 20000

/* Keys in the block: plain text, once per map, at any depth (the JSON the
 * block becomes could not tell a repeated key). */
static int check_block_keys(struct ctx *c, const yaml_node_t *n, int depth)
{
    int rc = 0;
    if (depth > 64)
        return fail(c, n, KILN_EINVALID, "kubernetes: nested too deeply");
    if (n->type == YAML_SEQUENCE_NODE) {
        for (yaml_node_item_t *i = n->data.sequence.items.start;
             i < n->data.sequence.items.top && !rc; i++)
            rc = check_block_keys(c, get(c, *i), depth + 1);
    } else if (n->type == YAML_MAPPING_NODE) {
        for (yaml_node_pair_t *p = n->data.mapping.pairs.start;
             p < n->data.mapping.pairs.top && !rc; p++)
            if (!(rc = check_key(c, get(c, p->key), "keys")) && !(rc = check_dup(c, n, p)))
                rc = check_block_keys(c, get(c, p->value), depth + 1);
    }
    return rc;
}

/* The node at `path` ("resources.limits.memory", "volumes[1].name") below
 * the block node n, or NULL where the path leaves what was written.  Keys
 * may hold dots (node_selector: {nvidia.com/gpu.present: "true"}), so at
 * each map the longest key that fits wins. */
static const yaml_node_t *node_at(struct ctx *c, const yaml_node_t *n, const char *path,
                                  bool want_key)
{
    while (n && *path) {
        if (*path == '.') {
            path++;
            continue;
        }
        if (*path == '[') {
            char *end;
            unsigned long i = strtoul(path + 1, &end, 10);
            if (n->type != YAML_SEQUENCE_NODE || *end != ']' ||
                i >= (unsigned long)(n->data.sequence.items.top - n->data.sequence.items.start))
                return NULL;
            n = get(c, n->data.sequence.items.start[i]);
            path = end + 1;
            continue;
        }
        if (n->type != YAML_MAPPING_NODE)
            return NULL;
        const yaml_node_t *best = NULL;
        size_t best_len = 0;
        for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top;
             p++) {
            const yaml_node_t *k = get(c, p->key);
            size_t kl = k->data.scalar.length;
            if (kl > best_len && strncmp(path, sval(k), kl) == 0 &&
                (path[kl] == 0 || path[kl] == '.' || path[kl] == '['))
                best = get(c, want_key && path[kl] == 0 ? p->key : p->value), best_len = kl;
        }
        n = best;
        path += best_len;
    }
    return n;
}

static json_object *block_json(struct ctx *c, const yaml_node_t *n, int *rc)
{
    struct kiln_err e = {0};
    json_object *o = kube_yaml_to_json(c->doc, (yaml_node_t *)n, KUBE_MAX_NODES, &e);
    *rc = e.code ? fail(c, n, KILN_EINVALID, "kubernetes: %s", e.msg) : 0;
    return o;
}

static char *dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? xstrndup(path, (size_t)(slash - path) + (slash == path)) : xstrdup(".");
}

/* Parses a task's block merged over the default block's into t->kube
 * (task_n / def_n: the block nodes, either NULL), then the checks of
 * kube_spec_check_task.  who: "task 'x'" or "default". */
static int load_kube(struct ctx *c, struct dag *d, struct dag_task *t, const char *who,
                     const yaml_node_t *at, const yaml_node_t *task_n, const yaml_node_t *def_n)
{
    if (task_n && is_null(task_n))
        task_n = NULL;
    if (def_n && is_null(def_n))
        def_n = NULL;
    int rc = 0;
    if (task_n || def_n) {
        if ((task_n && (rc = check_block_keys(c, task_n, 0))) ||
            (def_n && (rc = check_block_keys(c, def_n, 0))))
            return rc;
        json_object *tj = task_n ? block_json(c, task_n, &rc) : NULL;
        json_object *dj = !rc && def_n ? block_json(c, def_n, &rc) : NULL;
        json_object *m = rc ? NULL : kube_spec_merge(dj, tj);
        json_object_put(tj);
        json_object_put(dj);
        if (rc)
            return rc;
        char where[512];
        struct kiln_err e = {0};
        char *dir = dir_of(d->path);
        rc = kube_spec_parse(m, dir, &t->kube, where, sizeof where, &e);
        free(dir);
        json_object_put(m);
        if (rc) {
            /* The task's value wins the merge, so look there first. */
            bool key = strncmp(e.msg, "unknown key", 11) == 0;
            const yaml_node_t *n = task_n ? node_at(c, task_n, where, key) : NULL;
            if (!n && def_n)
                n = node_at(c, def_n, where, key);
            return fail(c, n ? n : task_n ? task_n : at, rc, "%s: kubernetes%s%s: %s", who,
                        *where ? "." : "", where, e.msg);
        }
    }
    struct kiln_err e = {0};
    if ((rc = kube_spec_check_task(t, d->id, &e)))
        return fail(c, task_n ? task_n : at, rc, "%s: %s", who, e.msg);
    return 0;
}

static size_t map_len(const yaml_node_t *m)
{
    return (size_t)(m->data.mapping.pairs.top - m->data.mapping.pairs.start);
}

static int load_defaults(struct ctx *c, const char *path, const yaml_node_t *v,
                         struct defaults *def)
{
    char buf[80];
    if (is_null(v))
        return 0;
    if (v->type != YAML_MAPPING_NODE)
        return fail(c, v, KILN_EINVALID, "'default' must be a map of task keys, got %s",
                    describe(v, buf, sizeof buf));
    def->map = v;
    def->n = map_len(v);
    def->keys = xcalloc(def->n, sizeof *def->keys);
    int rc = check_task_keys(c, v, "'default'", def->keys);
    if (rc)
        return rc;
    /* Validate the values once, on a scratch task, so that a bad default is
     * reported at its own position even when no task ends up using it. */
    struct dag *scratch = dag_new("default", path);
    struct dag_task *t = dag_add_task(scratch, "default", node_pos(v));
    size_t i = 0;
    for (yaml_node_pair_t *p = v->data.mapping.pairs.start; p < v->data.mapping.pairs.top && !rc;
         p++, i++) {
        rc = apply_task_key(c, t, (enum dag_task_key)def->keys[i], get(c, p->value));
        if (def->keys[i] == DTK_KUBERNETES)
            def->kube = get(c, p->value);
    }
    /* The block alone (no image check: tasks may add the image). */
    free(t->executor);
    t->executor = NULL;
    if (rc == 0 && def->kube)
        rc = load_kube(c, scratch, t, "default", v, NULL, def->kube);
    dag_free(scratch);
    return rc;
}

static int load_task(struct ctx *c, struct dag *d, const yaml_node_t *k, const yaml_node_t *v,
                     const struct defaults *def)
{
    char buf[80];
    int rc = check_key(c, k, "task ids");
    if (rc)
        return rc;
    const char *id = sval(k);
    if (!ident_valid(id))
        return fail(c, k, KILN_EINVALID, "invalid task id '%s' (" ID_RULE ")", id);
    if (v->type != YAML_MAPPING_NODE)
        return fail(c, v, KILN_EINVALID, "task '%s' must be a map with at least 'command', got %s",
                    id, describe(v, buf, sizeof buf));

    struct dag_task *t = dag_add_task(d, id, node_pos(k));
    size_t n = map_len(v);
    int *keys = xcalloc(n, sizeof *keys);
    char where[300];
    snprintf(where, sizeof where, "task '%s'", id);
    rc = check_task_keys(c, v, where, keys);
    bool seen[DTK__COUNT] = {false};
    const yaml_node_t *kube_n = NULL;
    size_t i = 0;
    for (yaml_node_pair_t *p = v->data.mapping.pairs.start; p < v->data.mapping.pairs.top && !rc;
         p++, i++) {
        seen[keys[i]] = true;
        rc = apply_task_key(c, t, (enum dag_task_key)keys[i], get(c, p->value));
        if (keys[i] == DTK_KUBERNETES)
            kube_n = get(c, p->value);
    }
    free(keys);
    /* The kubernetes block merges with the default one (load_kube). */
    for (i = 0; i < def->n && !rc; i++)
        if (!seen[def->keys[i]] && def->keys[i] != DTK_KUBERNETES)
            rc = apply_task_key(c, t, (enum dag_task_key)def->keys[i],
                                get(c, def->map->data.mapping.pairs.start[i].value));
    if (rc == 0 && t->argc == 0)
        rc = fail(c, k, KILN_EINVALID, "task '%s' has no 'command'", id);
    if (rc == 0)
        rc = load_kube(c, d, t, where, k, kube_n, def->kube);
    return rc;
}

static int load_tasks(struct ctx *c, struct dag *d, const yaml_node_t *v,
                      const struct defaults *def)
{
    char buf[80];
    if (v->type != YAML_MAPPING_NODE || map_len(v) == 0)
        return fail(c, v, KILN_EINVALID, "'tasks' must be a map of task id -> task, got %s",
                    v->type == YAML_MAPPING_NODE ? "an empty map" : describe(v, buf, sizeof buf));
    /* Duplicate task ids are left to dag_finalize(), which finds them with its
     * hash index instead of comparing every pair of keys. */
    for (yaml_node_pair_t *p = v->data.mapping.pairs.start; p < v->data.mapping.pairs.top; p++) {
        int rc = load_task(c, d, get(c, p->key), get(c, p->value), def);
        if (rc)
            return rc;
    }
    return 0;
}

/* --- the DAG ---------------------------------------------------------------- */

char *dag_id_from_path(const char *path)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    const char *dot = strrchr(base, '.');
    return dot && dot != base ? xstrndup(base, (size_t)(dot - base)) : xstrdup(base);
}

/* schedule, timezone, start_date and end_date must make a schedule
 * (schedule.h); the error points at the value at fault. */
static int check_schedule(struct ctx *c, struct dag *d, const yaml_node_t *sched_n,
                          const yaml_node_t *tz_n, const yaml_node_t *start_n,
                          const yaml_node_t *end_n)
{
    struct kiln_err e = { 0 };
    struct schedule s;
    struct dag probe = *d;
    /* Without a schedule the zone and dates are still checked. */
    if (!probe.schedule)
        probe.schedule = "* * * * *";
    int rc = schedule_from_dag(&probe, &s, &e);
    if (rc == 0) {
        schedule_free(&s);
        return 0;
    }
    const yaml_node_t *at = sched_n;
    if (strstr(e.msg, "time zone") && tz_n)
        at = tz_n;
    else if (strncmp(e.msg, "start_date", 10) == 0 && start_n)
        at = start_n;
    else if (strncmp(e.msg, "end_date", 8) == 0 && end_n)
        at = end_n;
    if (!at)
        at = tz_n ? tz_n : start_n ? start_n : end_n;
    return fail(c, at, rc, "%s", e.msg);
}

static int load_root(struct ctx *c, struct dag *d, const yaml_node_t *root)
{
    char buf[80];
    if (is_null(root))
        return fail(c, root, KILN_EINVALID,
                    "empty DAG file: expected a map with keys like 'dag' and 'tasks'");
    if (root->type != YAML_MAPPING_NODE)
        return fail(c, root, KILN_EINVALID,
                    "a DAG file must be a map with keys like 'dag' and 'tasks', got %s",
                    describe(root, buf, sizeof buf));

    const yaml_node_t *tasks = NULL, *defaults = NULL;
    const yaml_node_t *sched_n = NULL, *tz_n = NULL, *start_n = NULL, *end_n = NULL;
    bool have_id = false;
    int rc = 0;
    for (yaml_node_pair_t *p = root->data.mapping.pairs.start;
         p < root->data.mapping.pairs.top && !rc; p++) {
        const yaml_node_t *k = get(c, p->key), *v = get(c, p->value);
        if ((rc = check_key(c, k, "keys")))
            break;
        int key = key_index(sval(k), top_keys, K__COUNT);
        if (key < 0) {
            char what[300];
            snprintf(what, sizeof what, "top-level key '%s'", sval(k));
            rc = unknown_key(c, k, what, top_keys, K__COUNT);
            break;
        }
        if ((rc = check_dup(c, root, p)))
            break;
        const char *name = top_keys[key];
        switch ((enum top_key)key) {
        case K_DAG: {
            char *id = NULL;
            if ((rc = get_str(c, name, v, false, &id)))
                break;
            if (!ident_valid(id)) {
                rc = fail(c, v, KILN_EINVALID, "invalid dag id '%s' (" ID_RULE ")", id);
                free(id);
                break;
            }
            free(d->id);
            d->id = id;
            have_id = true;
            break;
        }
        case K_DESCRIPTION: rc = get_str(c, name, v, true, &d->description); break;
        case K_SCHEDULE:
            rc = get_str(c, name, v, true, &d->schedule);
            sched_n = v;
            /* "none" reads better than null for a manual-only DAG. */
            if (rc == 0 && d->schedule && strcasecmp(d->schedule, "none") == 0) {
                free(d->schedule);
                d->schedule = NULL;
            }
            break;
        case K_TIMEZONE:
            rc = get_str(c, name, v, true, &d->timezone);
            tz_n = v;
            break;
        case K_START_DATE:
            rc = get_str(c, name, v, true, &d->start_date);
            start_n = v;
            break;
        case K_END_DATE:
            rc = get_str(c, name, v, true, &d->end_date);
            end_n = v;
            break;
        case K_CATCHUP: rc = get_bool(c, name, v, &d->catchup); break;
        case K_MAX_ACTIVE_RUNS:
            rc = get_int_rule(c, name, v, &dag_max_active_rule, &d->max_active_runs);
            break;
        case K_MAX_ACTIVE_TASKS:
            rc = get_int_rule(c, name, v, &dag_max_active_rule, &d->max_active_tasks);
            break;
        case K_PARAMS: rc = get_params(c, v, d); break;
        case K_DEFAULT: defaults = v; break;
        case K_TASKS: tasks = v; break;
        case K__COUNT: break;
        }
    }
    if (rc)
        return rc;
    if ((rc = check_schedule(c, d, sched_n, tz_n, start_n, end_n)))
        return rc;

    if (!have_id && !ident_valid(d->id))
        return fail(c, root, KILN_EINVALID,
                    "no 'dag' key, and the file name '%s' is not a valid dag id (" ID_RULE ")",
                    d->id);
    if (tasks == NULL)
        return fail(c, root, KILN_EINVALID, "missing 'tasks': a DAG needs at least one task");

    struct defaults def = {NULL, NULL, 0, NULL};
    if (defaults)
        rc = load_defaults(c, d->path, defaults, &def);
    if (rc == 0)
        rc = load_tasks(c, d, tasks, &def);
    free(def.keys);
    return rc;
}

/* Line and column of a byte offset, for reader errors (bad encoding), which
 * carry an offset but no mark. */
static void offset_pos(const char *buf, size_t len, size_t off, int *line, int *col)
{
    *line = 1;
    *col = 1;
    for (size_t i = 0; i < off && i < len; i++) {
        if (buf[i] == '\n') {
            (*line)++;
            *col = 1;
        } else if (((unsigned char)buf[i] & 0xC0) != 0x80) {
            (*col)++;
        }
    }
}

static int syntax_error(const char *path, const char *buf, size_t len, yaml_parser_t *p,
                        struct kiln_err *err)
{
    int line, col;
    if (p->error == YAML_READER_ERROR) {
        offset_pos(buf, len, p->problem_offset, &line, &col);
    } else {
        line = (int)p->problem_mark.line + 1;
        col = (int)p->problem_mark.column + 1;
    }
    const char *problem = p->problem ? p->problem : "cannot parse the file";
    if (p->error == YAML_MEMORY_ERROR)
        return kiln_err_set(err, -ENOMEM, "%s: out of memory while parsing", path);
    if (p->context)
        return kiln_err_set(err, KILN_EPARSE, "%s:%d:%d: YAML syntax error: %s (%s at %d:%d)",
                            path, line, col, problem, p->context,
                            (int)p->context_mark.line + 1, (int)p->context_mark.column + 1);
    return kiln_err_set(err, KILN_EPARSE, "%s:%d:%d: YAML syntax error: %s", path, line, col,
                        problem);
}

int load_yaml_buf(const char *path, const char *buf, size_t len, struct dag **out,
                  struct kiln_err *err)
{
    *out = NULL;
    yaml_parser_t parser;
    yaml_document_t doc;
    if (!yaml_parser_initialize(&parser))
        return kiln_err_set(err, -ENOMEM, "%s: cannot initialize the YAML parser", path);
    /* libyaml asserts on a NULL input even when it is empty. */
    yaml_parser_set_input_string(&parser, (const unsigned char *)(buf ? buf : ""),
                                 buf ? len : 0);
    if (!yaml_parser_load(&parser, &doc)) {
        int rc = syntax_error(path, buf, len, &parser, err);
        yaml_parser_delete(&parser);
        return rc;
    }

    struct ctx c = {path, &doc, err};
    int rc = 0;
    const yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (root == NULL) {
        rc = kiln_err_set(err, KILN_EINVALID,
                          "%s:1:1: empty DAG file: expected a map with keys like 'dag' and "
                          "'tasks'",
                          path);
    } else {
        /* A second document would be silently ignored; say so instead. */
        yaml_document_t next;
        if (!yaml_parser_load(&parser, &next)) {
            rc = syntax_error(path, buf, len, &parser, err);
        } else {
            if (yaml_document_get_root_node(&next) != NULL)
                rc = kiln_err_set(err, KILN_EINVALID,
                                  "%s:%d:%d: a DAG file holds one YAML document, found a second",
                                  path, (int)next.start_mark.line + 1,
                                  (int)next.start_mark.column + 1);
            yaml_document_delete(&next);
        }
    }

    struct dag *d = NULL;
    if (rc == 0) {
        char *id = dag_id_from_path(path);
        d = dag_new(id, path);
        free(id);
        rc = load_root(&c, d, root);
        if (rc == 0)
            rc = dag_finalize(d, err);
    }
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    if (rc) {
        dag_free(d);
        return rc;
    }
    *out = d;
    return 0;
}

int load_yaml_file(const char *path, struct dag **out, struct kiln_err *err)
{
    char *buf;
    size_t len;
    *out = NULL;
    int rc = file_read_all(path, &buf, &len);
    if (rc)
        return kiln_err_set(err, rc, "%s: cannot read: %s", path, strerror(-rc));
    rc = load_yaml_buf(path, buf, len, out, err);
    free(buf);
    return rc;
}
