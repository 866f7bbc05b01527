#include "dag.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kube_spec.h"
#include "template.h"
#include "util.h"

#define DAY_MS (24LL * 3600 * 1000)

/* Longest cycle printed in full; longer ones keep their head and tail so the
 * message stays readable and inside struct kiln_err. */
#define CYCLE_PRINT_MAX 12

static const char *const rule_names[TR__COUNT] = {
    [TR_ALL_SUCCESS] = "all_success",
    [TR_ALL_FAILED] = "all_failed",
    [TR_ALL_DONE] = "all_done",
    [TR_ALL_SKIPPED] = "all_skipped",
    [TR_ONE_SUCCESS] = "one_success",
    [TR_ONE_FAILED] = "one_failed",
    [TR_ONE_DONE] = "one_done",
    [TR_NONE_FAILED] = "none_failed",
    [TR_NONE_FAILED_MIN_ONE_SUCCESS] = "none_failed_min_one_success",
    [TR_NONE_SKIPPED] = "none_skipped",
    [TR_ALWAYS] = "always",
};

const char *trigger_rule_name(enum trigger_rule r)
{
    if ((int)r < 0 || r >= TR__COUNT)
        return "unknown";
    return rule_names[r];
}

int trigger_rule_parse(const char *name)
{
    if (name == NULL)
        return -1;
    for (int i = 0; i < TR__COUNT; i++)
        if (strcmp(name, rule_names[i]) == 0)
            return i;
    return -1;
}

/* --- id -> index map ------------------------------------------------------
 * Open addressing with linear probing over a power-of-two table kept at most
 * half full, so lookups stay O(1) for DAGs with tens of thousands of tasks.
 * A slot holds the task index + 1; 0 marks an empty slot. */

struct dag_index {
    uint32_t *slots;
    size_t mask;
};

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ULL;
    }
    return h;
}

static struct dag_index *index_new(size_t n)
{
    size_t cap = 16;
    while (cap < 2 * n)
        cap *= 2;
    struct dag_index *ix = xmalloc(sizeof *ix);
    ix->slots = xcalloc(cap, sizeof *ix->slots);
    ix->mask = cap - 1;
    return ix;
}

static void index_free(struct dag_index *ix)
{
    if (ix) {
        free(ix->slots);
        free(ix);
    }
}

/* Returns the slot where `id` lives or would be inserted. */
static size_t index_slot(const struct dag_index *ix, const struct dag_task *tasks,
                         const char *id)
{
    size_t i = (size_t)hash_str(id) & ix->mask;
    while (ix->slots[i] != 0 && strcmp(tasks[ix->slots[i] - 1].id, id) != 0)
        i = (i + 1) & ix->mask;
    return i;
}

static long index_get(const struct dag_index *ix, const struct dag_task *tasks, const char *id)
{
    uint32_t v = ix->slots[index_slot(ix, tasks, id)];
    return v ? (long)v - 1 : -1;
}

/* --- construction ---------------------------------------------------------- */

struct dag *dag_new(const char *id, const char *path)
{
    struct dag *d = xcalloc(1, sizeof *d);
    d->id = xstrdup(id ? id : "");
    d->path = xstrdup(path ? path : "");
    d->max_active_runs = 16;
    d->max_active_tasks = 16;
    d->catchup = false;
    return d;
}

static void free_derived(struct dag *d)
{
    for (size_t i = 0; i < d->n_tasks; i++) {
        struct dag_task *t = &d->tasks[i];
        free(t->up);
        free(t->down);
        t->up = t->down = NULL;
        t->n_up = t->n_down = 0;
    }
    free(d->topo);
    d->topo = NULL;
    index_free(d->index);
    d->index = NULL;
}

static void free_kvs(struct dag_kv *kv, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(kv[i].key);
        free(kv[i].value);
    }
    free(kv);
}

static const char *const param_type_names[DPT__COUNT] = {
    [DPT_STRING] = "string", [DPT_NUMBER] = "number", [DPT_INTEGER] = "integer",
    [DPT_BOOLEAN] = "boolean", [DPT_ENUM] = "enum",
};

const char *dag_param_type_name(enum dag_param_type t)
{
    if ((int)t < 0 || t >= DPT__COUNT)
        return "unknown";
    return param_type_names[t];
}

int dag_param_type_parse(const char *name)
{
    for (int i = 0; name && i < DPT__COUNT; i++)
        if (strcmp(name, param_type_names[i]) == 0)
            return i;
    return -1;
}

int dag_param_check(const struct dag_param *p, const char *text, char *why, size_t n)
{
    char *end;
    switch (p->type) {
    case DPT_STRING: return 0;
    case DPT_INTEGER: {
        const char *q = text[0] == '-' || text[0] == '+' ? text + 1 : text;
        if (*q >= '0' && *q <= '9') {
            errno = 0;
            (void)strtoll(text, &end, 10);
            if (errno == 0 && *end == '\0')
                return 0;
        }
        snprintf(why, n, "param '%s' must be an integer, got '%s'", p->key, text);
        return -1;
    }
    case DPT_NUMBER: {
        errno = 0;
        double v = strtod(text, &end);
        if (text[0] && !isspace((unsigned char)text[0]) && *end == '\0' && errno == 0 &&
            isfinite(v))
            return 0;
        snprintf(why, n, "param '%s' must be a number, got '%s'", p->key, text);
        return -1;
    }
    case DPT_BOOLEAN:
        if (strcmp(text, "true") == 0 || strcmp(text, "false") == 0)
            return 0;
        snprintf(why, n, "param '%s' must be true or false, got '%s'", p->key, text);
        return -1;
    case DPT_ENUM: {
        for (size_t i = 0; i < p->n_values; i++)
            if (strcmp(text, p->values[i]) == 0)
                return 0;
        struct sbuf b;
        sbuf_init(&b);
        for (size_t i = 0; i < p->n_values; i++)
            sbuf_printf(&b, "%s%s", i ? ", " : "", p->values[i]);
        snprintf(why, n, "param '%s' must be one of %s, got '%s'", p->key, b.data ? b.data : "",
                 text);
        sbuf_free(&b);
        return -1;
    }
    case DPT__COUNT: break;
    }
    return 0;
}

void dag_params_free(struct dag_param *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(p[i].key);
        free(p[i].value);
        for (size_t k = 0; k < p[i].n_values; k++)
            free(p[i].values[k]);
        free(p[i].values);
    }
    free(p);
}

static void task_free(struct dag_task *t)
{
    free(t->id);
    for (size_t i = 0; i < t->argc; i++)
        free(t->argv[i]);
    free(t->argv);
    free(t->argv_pos);
    free_kvs(t->env, t->n_env);
    free(t->cwd);
    free(t->pool);
    free(t->executor);
    kube_spec_free(t->kube);
    for (size_t i = 0; i < t->n_deps; i++)
        free(t->deps[i]);
    free(t->deps);
    free(t->dep_pos);
}

void dag_free(struct dag *d)
{
    if (d == NULL)
        return;
    free_derived(d);
    for (size_t i = 0; i < d->n_tasks; i++)
        task_free(&d->tasks[i]);
    free(d->tasks);
    dag_params_free(d->params, d->n_params);
    free(d->id);
    free(d->path);
    free(d->hash);
    free(d->schedule);
    free(d->timezone);
    free(d->start_date);
    free(d->end_date);
    free(d->description);
    free(d);
}

struct dag_task *dag_add_task(struct dag *d, const char *id, struct dag_pos pos)
{
    if (d->n_tasks == d->cap_tasks) {
        d->cap_tasks = d->cap_tasks ? d->cap_tasks * 2 : 8;
        d->tasks = xrealloc(d->tasks, d->cap_tasks * sizeof *d->tasks);
    }
    struct dag_task *t = &d->tasks[d->n_tasks];
    memset(t, 0, sizeof *t);
    t->id = xstrdup(id);
    t->pos = pos;
    t->retries = 0;
    t->retry_delay_ms = 300000;
    t->retry_exponential_backoff = false;
    t->max_retry_delay_ms = 0;
    t->timeout_ms = 0;
    t->trigger_rule = TR_ALL_SUCCESS;
    t->priority_weight = 1;
    t->pool_slots = 1;
    t->skip_exit_code = DAG_DEFAULT_SKIP_EXIT_CODE;
    t->index = (uint32_t)d->n_tasks;
    d->n_tasks++;
    return t;
}

void dag_task_add_dep(struct dag_task *t, const char *dep, struct dag_pos pos)
{
    /* Grow by powers of two: the count itself tells the capacity. */
    size_t n = t->n_deps;
    if ((n & (n - 1)) == 0) {
        size_t cap = n ? n * 2 : 1;
        t->deps = xrealloc(t->deps, cap * sizeof *t->deps);
        t->dep_pos = xrealloc(t->dep_pos, cap * sizeof *t->dep_pos);
    }
    t->deps[n] = xstrdup(dep);
    t->dep_pos[n] = pos;
    t->n_deps = n + 1;
}

/* --- validation ------------------------------------------------------------ */

/* "FILE:LINE:COL" (YAML), "FILE:LINE" when the column is unknown (Lua DAGs
 * know only the line of the call that made the task), or "FILE". */
static const char *where(const struct dag *d, struct dag_pos p, char *buf, size_t size)
{
    if (p.line > 0 && p.col > 0)
        snprintf(buf, size, "%s:%d:%d", d->path, p.line, p.col);
    else if (p.line > 0)
        snprintf(buf, size, "%s:%d", d->path, p.line);
    else
        snprintf(buf, size, "%s", d->path);
    return buf;
}

/* "4:3", or "line 4" without a column, for "first defined at ...". */
static const char *short_pos(struct dag_pos p, char *buf, size_t size)
{
    if (p.col > 0)
        snprintf(buf, size, "%d:%d", p.line, p.col);
    else
        snprintf(buf, size, "line %d", p.line);
    return buf;
}

/* The task id closest to `name` within a small edit distance, for hints. */
static const char *closest_task(const struct dag *d, const char *name)
{
    const char *best = NULL;
    int best_d = 3;
    for (size_t i = 0; i < d->n_tasks; i++) {
        int dist = levenshtein(name, d->tasks[i].id);
        if (dist < best_d) {
            best_d = dist;
            best = d->tasks[i].id;
        }
    }
    return best;
}

static int cycle_error(const struct dag *d, const uint32_t *cyc, size_t len,
                       struct kiln_err *err)
{
    /* Start the printed cycle at its task written first in the file, so the
     * message does not depend on where the search happened to enter it. */
    size_t start = 0;
    for (size_t i = 1; i < len; i++)
        if (cyc[i] < cyc[start])
            start = i;
    struct sbuf b;
    sbuf_init(&b);
    for (size_t k = 0; k < len; k++) {
        if (len > CYCLE_PRINT_MAX && k == CYCLE_PRINT_MAX / 2) {
            size_t skip = len - CYCLE_PRINT_MAX + 2;
            sbuf_printf(&b, "... (%zu more) -> ", skip);
            k += skip - 1;
            continue;
        }
        sbuf_printf(&b, "%s -> ", d->tasks[cyc[(start + k) % len]].id);
    }
    const struct dag_task *first = &d->tasks[cyc[start]];
    sbuf_adds(&b, first->id);
    char w[1024];
    int rc = kiln_err_set(err, KILN_ECYCLE, "%s: dependency cycle: %s",
                          where(d, first->pos, w, sizeof w), b.data);
    sbuf_free(&b);
    return rc;
}

/* Finds a cycle among the tasks Kahn's algorithm could not order (done[i] ==
 * 0) with an iterative depth-first search along downstream edges: a chain of
 * 10,000 tasks must not become 10,000 C stack frames. */
static int find_cycle(const struct dag *d, const unsigned char *done, struct kiln_err *err)
{
    size_t n = d->n_tasks;
    unsigned char *color = xcalloc(n, 1); /* 0 new, 1 on the stack, 2 finished */
    size_t *next = xcalloc(n, sizeof *next);
    size_t *spos = xcalloc(n, sizeof *spos);
    uint32_t *stack = xmalloc(n * sizeof *stack);
    int rc = 0;

    for (size_t s = 0; s < n && rc == 0; s++) {
        if (done[s] || color[s])
            continue;
        size_t sp = 0;
        stack[sp] = (uint32_t)s;
        spos[s] = sp++;
        color[s] = 1;
        while (sp > 0 && rc == 0) {
            uint32_t v = stack[sp - 1];
            const struct dag_task *t = &d->tasks[v];
            if (next[v] == t->n_down) {
                color[v] = 2;
                sp--;
                continue;
            }
            uint32_t w = t->down[next[v]++];
            if (done[w] || color[w] == 2)
                continue;
            if (color[w] == 1) {
                rc = cycle_error(d, stack + spos[w], sp - spos[w], err);
                break;
            }
            color[w] = 1;
            stack[sp] = w;
            spos[w] = sp++;
        }
    }
    free(color);
    free(next);
    free(spos);
    free(stack);
    /* Kahn's algorithm only leaves tasks out when a cycle exists. */
    return rc ? rc : kiln_err_set(err, KILN_ECYCLE, "%s: dependency cycle", d->path);
}

static int resolve_deps(struct dag *d, struct kiln_err *err)
{
    struct dag_index *ix = d->index;
    size_t n = d->n_tasks;
    /* stamp[j] == i + 1 while task i's deps are resolved and j is among them:
     * dedupes repeated deps in O(1) without clearing anything per task. */
    uint32_t *stamp = xcalloc(n, sizeof *stamp);
    int rc = 0;

    for (size_t i = 0; i < n && rc == 0; i++) {
        struct dag_task *t = &d->tasks[i];
        if (t->n_deps == 0)
            continue;
        t->up = xmalloc(t->n_deps * sizeof *t->up);
        for (size_t k = 0; k < t->n_deps; k++) {
            long j = index_get(ix, d->tasks, t->deps[k]);
            char w[1024];
            if (j < 0) {
                const char *hint = closest_task(d, t->deps[k]);
                where(d, t->dep_pos[k], w, sizeof w);
                if (hint)
                    rc = kiln_err_set(err, KILN_EINVALID,
                                      "%s: task '%s' depends on unknown task '%s' "
                                      "(did you mean '%s'?)",
                                      w, t->id, t->deps[k], hint);
                else
                    rc = kiln_err_set(err, KILN_EINVALID,
                                      "%s: task '%s' depends on unknown task '%s'", w, t->id,
                                      t->deps[k]);
                break;
            }
            if ((size_t)j == i) {
                rc = kiln_err_set(err, KILN_ECYCLE, "%s: dependency cycle: %s -> %s",
                                  where(d, t->pos, w, sizeof w), t->id, t->id);
                break;
            }
            if (stamp[j] == i + 1)
                continue;
            stamp[j] = (uint32_t)(i + 1);
            t->up[t->n_up++] = (uint32_t)j;
        }
    }
    free(stamp);
    if (rc)
        return rc;

    for (size_t i = 0; i < n; i++) {
        struct dag_task *t = &d->tasks[i];
        for (size_t k = 0; k < t->n_up; k++)
            d->tasks[t->up[k]].n_down++;
    }
    for (size_t i = 0; i < n; i++) {
        struct dag_task *t = &d->tasks[i];
        if (t->n_down)
            t->down = xmalloc(t->n_down * sizeof *t->down);
        t->n_down = 0;
    }
    for (size_t i = 0; i < n; i++) {
        struct dag_task *t = &d->tasks[i];
        for (size_t k = 0; k < t->n_up; k++) {
            struct dag_task *u = &d->tasks[t->up[k]];
            u->down[u->n_down++] = (uint32_t)i;
        }
    }
    return 0;
}

/* Every template in a command argument or env value names something this
 * task can see: a builtin, a declared param, an upstream task's outputs. */
static int check_templates(const struct dag *d, struct kiln_err *err)
{
    char why[600], w[1024];
    for (size_t i = 0; i < d->n_tasks; i++) {
        const struct dag_task *t = &d->tasks[i];
        for (size_t k = 0; k < t->argc; k++)
            if (template_check(t->argv[k], d, t, why, sizeof why) < 0)
                return kiln_err_set(err, KILN_EINVALID, "%s: task '%s': %s",
                                    where(d, t->argv_pos ? t->argv_pos[k] : t->pos, w, sizeof w),
                                    t->id, why);
        for (size_t k = 0; k < t->n_env; k++)
            if (template_check(t->env[k].value, d, t, why, sizeof why) < 0)
                return kiln_err_set(err, KILN_EINVALID, "%s: task '%s': env '%s': %s",
                                    where(d, t->env[k].pos, w, sizeof w), t->id, t->env[k].key,
                                    why);
    }
    return 0;
}

/* Kahn's algorithm; ties are broken by file order, so the order is stable. */
static int topo_sort(struct dag *d, struct kiln_err *err)
{
    size_t n = d->n_tasks;
    size_t *indeg = xmalloc((n ? n : 1) * sizeof *indeg);
    d->topo = xmalloc((n ? n : 1) * sizeof *d->topo);
    size_t tail = 0;
    for (size_t i = 0; i < n; i++) {
        indeg[i] = d->tasks[i].n_up;
        if (indeg[i] == 0)
            d->topo[tail++] = (uint32_t)i;
    }
    for (size_t head = 0; head < tail; head++) {
        const struct dag_task *t = &d->tasks[d->topo[head]];
        for (size_t k = 0; k < t->n_down; k++)
            if (--indeg[t->down[k]] == 0)
                d->topo[tail++] = t->down[k];
    }
    free(indeg);
    if (tail == n)
        return 0;

    unsigned char *done = xcalloc(n, 1);
    for (size_t i = 0; i < tail; i++)
        done[d->topo[i]] = 1;
    int rc = find_cycle(d, done, err);
    free(done);
    return rc;
}

int dag_finalize(struct dag *d, struct kiln_err *err)
{
    /* Finalizing twice recomputes everything rather than leaking. */
    free_derived(d);

    for (size_t i = 0; i < d->n_tasks; i++) {
        struct dag_task *t = &d->tasks[i];
        t->index = (uint32_t)i;
        if (t->pool == NULL)
            t->pool = xstrdup(DAG_DEFAULT_POOL);
        if (t->executor == NULL)
            t->executor = xstrdup("local");
    }

    struct dag_index *ix = index_new(d->n_tasks);
    d->index = ix;
    for (size_t i = 0; i < d->n_tasks; i++) {
        struct dag_task *t = &d->tasks[i];
        size_t slot = index_slot(ix, d->tasks, t->id);
        if (ix->slots[slot] != 0) {
            const struct dag_task *first = &d->tasks[ix->slots[slot] - 1];
            char w[1024], fp[40];
            int rc = kiln_err_set(err, KILN_EINVALID,
                                  "%s: duplicate task id '%s' (first defined at %s)",
                                  where(d, t->pos, w, sizeof w), t->id,
                                  short_pos(first->pos, fp, sizeof fp));
            free_derived(d);
            return rc;
        }
        ix->slots[slot] = (uint32_t)(i + 1);
    }

    int rc = resolve_deps(d, err);
    if (rc == 0)
        rc = topo_sort(d, err);
    if (rc == 0)
        rc = check_templates(d, err);
    if (rc)
        free_derived(d);
    return rc;
}

const struct dag_task *dag_task_find(const struct dag *d, const char *id)
{
    if (d == NULL || id == NULL)
        return NULL;
    if (d->index) {
        long i = index_get(d->index, d->tasks, id);
        return i < 0 ? NULL : &d->tasks[i];
    }
    /* Not finalized yet: a linear scan keeps the function usable by loaders. */
    for (size_t i = 0; i < d->n_tasks; i++)
        if (strcmp(d->tasks[i].id, id) == 0)
            return &d->tasks[i];
    return NULL;
}

int64_t dag_retry_delay_ms(const struct dag_task *t, int next_try)
{
    int64_t delay = t->retry_delay_ms > 0 ? t->retry_delay_ms : 0;
    if (!t->retry_exponential_backoff)
        return delay;
    int64_t cap = DAY_MS;
    if (t->max_retry_delay_ms > 0 && t->max_retry_delay_ms < cap)
        cap = t->max_retry_delay_ms;
    if (delay >= cap)
        return cap;
    /* delay < cap <= 24 h here, so doubling cannot overflow, and the loop
     * ends after at most ~27 rounds (or at once for a zero delay) even for
     * absurd try numbers. */
    for (int i = 2; i < next_try && delay > 0 && delay < cap; i++)
        delay = delay > cap / 2 ? cap : delay * 2;
    return delay;
}
