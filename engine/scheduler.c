/* sched: the scheduler.  See sched.h for the contract and the design.
 *
 * Data: every unfinished run in memory is a struct srun holding one struct
 * sti per task.  Per DAG id a struct sdag holds the concurrency counters,
 * the paused flag and the runs waiting for max_active_runs.  Ready task
 * instances sit in one priority heap; one that cannot start because of its
 * pool or its DAG's limits is parked in that resource's own heap and comes
 * back when the resource frees a slot, so a full pool never makes the
 * dispatcher scan the tasks queued behind it.
 *
 * The turn: executor callbacks and user actions change states (written into
 * the open transaction).  A uv_prepare handle, which runs once per loop turn
 * before the loop blocks, dispatches, commits, then starts the tries. */
#include "scheduler_int.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dagdir.h"
#include "template.h"
#include "log.h"
#include "util.h"

#define OUTPUTS_MAX_BYTES (64 * 1024)

struct spool {
    char *name;
    int slots, used;
    struct tiheap parked;
};

struct sdag {
    char *dag_id;
    bool paused;
    int active_runs, active_tasks;
    int max_active_runs, max_active_tasks;
    struct tiheap parked;          /* blocked by pause or max_active_tasks */
    struct srun *queued_head, *queued_tail;  /* runs waiting for max_active_runs */
    /* Backfill runs queue apart, under their own limit, so that a long
     * backfill never holds back the DAG's scheduled and manual runs. */
    int active_backfill, max_backfill;
    struct srun *bf_head, *bf_tail;
};

struct srun {
    int64_t pk;
    char *run_id;
    char *logs_dir;
    char *cwd;                     /* default working folder: the DAG file's folder */
    struct sdag *sd;
    const struct dag *dag;
    enum run_state state;
    struct sti *tis;
    size_t n_unfinished;
    bool logs_dir_made;
    int64_t start_us;
    struct srun *next, *prev;      /* sched->runs */
    struct srun *qnext;            /* sdag queue */
    bool queued_in_sd;
    bool finished;
    bool cancelled;                /* ends failed whatever its leaves say */
    char *params_json;             /* the run's params (typed JSON), for templates */
    int64_t logical_us;            /* logical date: set, or the run's creation time */
    int64_t interval_end_us;       /* end of the data interval (= logical_us when none) */
    bool backfill;                 /* counted and queued apart (sdag bf_*) */
};

struct vcache {
    int64_t version_id;
    struct dag *dag;
};

/* try_pk -> sti, open addressing (tries in flight only). */
struct trymap {
    int64_t *keys;
    struct sti **vals;
    size_t cap, n;
};

struct pending_start {
    struct sti *ti;
};

struct sched {
    uv_loop_t *loop;
    struct store *st;
    struct sched_config cfg;
    char *home;

    struct executor_slot {
        char *name;
        struct executor *ex;
    } *execs;
    size_t n_execs;

    sched_event_cb observer;
    void *observer_arg;

    struct sdag **dags;
    size_t n_dags;
    struct spool *pools;
    size_t n_pools;
    struct vcache *versions;
    size_t n_versions;

    struct srun *runs;             /* unfinished runs, in memory */
    struct srun **finished;        /* freed at the end of the turn */
    size_t n_finished, cap_finished;

    struct tiheap ready;
    struct tiheap timers;
    struct trymap tries;
    char **base_env;               /* borrowed from cfg.base_env, less our KILN_* names */
    size_t n_base_env;
    struct sti **work;             /* task instances whose upstream counts changed */
    size_t n_work, cap_work;
    bool draining;
    struct pending_start *starts;
    size_t n_starts, cap_starts;

    int running;
    uint64_t seq;
    struct sched_stats stats;

    uv_prepare_t prepare;
    uv_idle_t idle;                /* keeps the loop from blocking while work is pending */
    uv_timer_t timer;
    int64_t timer_armed_at;
    bool dirty;
    bool closing;
    int handles_open;
    void (*close_done)(void *);
    void *close_arg;
};

/* ---- heaps ------------------------------------------------------------ */

static bool ready_before(const struct sti *a, const struct sti *b)
{
    const struct dag_task *ta = &a->run->dag->tasks[a->idx];
    const struct dag_task *tb = &b->run->dag->tasks[b->idx];
    if (ta->priority_weight != tb->priority_weight)
        return ta->priority_weight > tb->priority_weight;
    return a->seq < b->seq;
}

static bool timer_before(const struct sti *a, const struct sti *b)
{
    return a->timer_at_us < b->timer_at_us;
}

static void heap_init(struct tiheap *h, bool (*before)(const struct sti *, const struct sti *),
                      int pos_field)
{
    memset(h, 0, sizeof *h);
    h->before = before;
    h->pos_field = pos_field;
}

static void heap_set(struct tiheap *h, size_t i, struct sti *t)
{
    h->v[i] = t;
    t->hpos[h->pos_field] = i + 1;
}

static void heap_up(struct tiheap *h, size_t i)
{
    struct sti *t = h->v[i];
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!h->before(t, h->v[p]))
            break;
        heap_set(h, i, h->v[p]);
        i = p;
    }
    heap_set(h, i, t);
}

static void heap_down(struct tiheap *h, size_t i)
{
    struct sti *t = h->v[i];
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        struct sti *best = t;
        if (l < h->n && h->before(h->v[l], best))
            m = l, best = h->v[l];
        if (r < h->n && h->before(h->v[r], best))
            m = r, best = h->v[r];
        if (m == i)
            break;
        heap_set(h, i, h->v[m]);
        i = m;
    }
    heap_set(h, i, t);
}

static void heap_push(struct tiheap *h, struct sti *t)
{
    if (h->n == h->cap) {
        h->cap = h->cap ? h->cap * 2 : 64;
        h->v = xrealloc(h->v, h->cap * sizeof *h->v);
    }
    h->v[h->n++] = t;
    heap_up(h, h->n - 1);
}

static struct sti *heap_pop(struct tiheap *h)
{
    if (h->n == 0)
        return NULL;
    struct sti *top = h->v[0];
    top->hpos[h->pos_field] = 0;
    if (--h->n > 0) {
        h->v[0] = h->v[h->n];
        heap_down(h, 0);
    }
    return top;
}

static void heap_remove(struct tiheap *h, struct sti *t)
{
    size_t pos = t->hpos[h->pos_field];
    if (pos == 0)
        return;
    size_t i = pos - 1;
    t->hpos[h->pos_field] = 0;
    if (--h->n == i)
        return;
    h->v[i] = h->v[h->n];
    h->v[i]->hpos[h->pos_field] = i + 1;
    heap_up(h, i);
    heap_down(h, h->v[i]->hpos[h->pos_field] - 1);
}

/* ---- try map ---------------------------------------------------------- */

static size_t trymap_slot(const struct trymap *m, int64_t key)
{
    uint64_t h = (uint64_t)key * 0x9E3779B97F4A7C15ull;
    return (size_t)(h >> 20) & (m->cap - 1);
}

static void trymap_put(struct trymap *m, int64_t key, struct sti *v);

static void trymap_grow(struct trymap *m)
{
    struct trymap old = *m;
    m->cap = old.cap ? old.cap * 2 : 256;
    m->n = 0;
    m->keys = xcalloc(m->cap, sizeof *m->keys);
    m->vals = xcalloc(m->cap, sizeof *m->vals);
    for (size_t i = 0; i < old.cap; i++)
        if (old.keys[i] > 0)
            trymap_put(m, old.keys[i], old.vals[i]);
    free(old.keys);
    free(old.vals);
}

static void trymap_put(struct trymap *m, int64_t key, struct sti *v)
{
    if ((m->n + 1) * 2 > m->cap)
        trymap_grow(m);
    size_t i = trymap_slot(m, key);
    while (m->keys[i] > 0 && m->keys[i] != key)
        i = (i + 1) & (m->cap - 1);
    if (m->keys[i] != key)
        m->n++;
    m->keys[i] = key;
    m->vals[i] = v;
}

static struct sti *trymap_get(const struct trymap *m, int64_t key)
{
    if (m->cap == 0)
        return NULL;
    size_t i = trymap_slot(m, key);
    while (m->keys[i] != 0) {
        if (m->keys[i] == key)
            return m->vals[i];
        i = (i + 1) & (m->cap - 1);
    }
    return NULL;
}

/* Deletion with backward shift, so lookups never need tombstones. */
static void trymap_del(struct trymap *m, int64_t key)
{
    if (m->cap == 0)
        return;
    size_t i = trymap_slot(m, key);
    while (m->keys[i] != 0 && m->keys[i] != key)
        i = (i + 1) & (m->cap - 1);
    if (m->keys[i] == 0)
        return;
    m->n--;
    size_t j = i;
    for (;;) {
        m->keys[i] = 0;
        m->vals[i] = NULL;
        for (;;) {
            j = (j + 1) & (m->cap - 1);
            if (m->keys[j] == 0)
                return;
            size_t k = trymap_slot(m, m->keys[j]);
            /* Move j back to i unless its home slot lies cyclically in (i, j]. */
            if ((i <= j) ? (i < k && k <= j) : (i < k || k <= j))
                continue;
            break;
        }
        m->keys[i] = m->keys[j];
        m->vals[i] = m->vals[j];
        i = j;
    }
}

/* ---- small helpers ---------------------------------------------------- */

static const struct dag_task *ti_task(const struct sti *ti)
{
    return &ti->run->dag->tasks[ti->idx];
}

static int sdag_paused_cb(void *arg, struct store_row *row)
{
    *(bool *)arg = store_col_int(row, 2) != 0;
    return 1;
}

static struct sdag *sdag_get(struct sched *s, const char *dag_id)
{
    for (size_t i = 0; i < s->n_dags; i++)
        if (strcmp(s->dags[i]->dag_id, dag_id) == 0)
            return s->dags[i];
    struct sdag *sd = xcalloc(1, sizeof *sd);
    sd->dag_id = xstrdup(dag_id);
    sd->max_active_runs = 16;
    sd->max_active_tasks = 16;
    sd->max_backfill = 1;
    heap_init(&sd->parked, ready_before, HP_READY);
    struct kiln_err err = { 0 };
    if (store_exec(s->st, Q_dag_get, sdag_paused_cb, &sd->paused, &err, "s", dag_id) < 0)
        LOG_E("store: %s", err.msg);
    s->dags = xrealloc(s->dags, (s->n_dags + 1) * sizeof *s->dags);
    s->dags[s->n_dags++] = sd;
    return sd;
}

static struct spool *pool_get(struct sched *s, const char *name)
{
    for (size_t i = 0; i < s->n_pools; i++)
        if (strcmp(s->pools[i].name, name) == 0)
            return &s->pools[i];
    return NULL;
}

static struct executor *exec_get(struct sched *s, const char *name)
{
    for (size_t i = 0; i < s->n_execs; i++)
        if (strcmp(s->execs[i].name, name) == 0)
            return s->execs[i].ex;
    return NULL;
}

static void on_idle(uv_idle_t *h);

/* Work is pending for the end of this turn: keep the loop from blocking in
 * poll until the prepare handle has flushed it. */
static void mark_dirty(struct sched *s)
{
    if (!s->dirty && !s->cfg.offline && !s->closing)
        uv_idle_start(&s->idle, on_idle);
    s->dirty = true;
}

static void txn(struct sched *s)
{
    struct kiln_err err = { 0 };
    if (store_txn_begin(s->st, &err) < 0)
        LOG_E("store: %s", err.msg);
}

/* Formats the log path of a try into buf (no allocation: this runs for
 * every transition while an observer is attached). */
static const char *log_path_into(char *buf, size_t n, const struct sched *s, const struct sti *ti,
                                 int try_number)
{
    snprintf(buf, n, "%s/%s.%d.log", ti->run->logs_dir, ti_task(ti)->id, try_number);
    return buf;
}

static void emit_ti(struct sched *s, struct sti *ti)
{
    if (!s->observer)
        return;
    char log[4096];
    struct sched_event ev = {
        .dag_id = ti->run->sd->dag_id, .run_id = ti->run->run_id, .run_pk = ti->run->pk,
        .task_id = ti_task(ti)->id, .task_index = (int)ti->idx,
        .state = ti_state_name(ti->state), .try_number = ti->try_number, .reason = ti->reason,
        .log_path = ti->try_number > 0 ? log_path_into(log, sizeof log, s, ti, ti->try_number)
                                       : NULL,
    };
    s->observer(s->observer_arg, &ev);
}

static void emit_run(struct sched *s, struct srun *r)
{
    if (!s->observer)
        return;
    struct sched_event ev = {
        .dag_id = r->sd->dag_id, .run_id = r->run_id, .run_pk = r->pk, .task_index = -1,
        .state = run_state_name(r->state),
    };
    s->observer(s->observer_arg, &ev);
}

static void persist_ti(struct sched *s, struct sti *ti)
{
    struct kiln_err err = { 0 };
    txn(s);
    if (store_exec(s->st, Q_ti_set_state, NULL, NULL, &err, "isiosoooii", ti->pk,
                   ti_state_name(ti->state), (int64_t)ti->try_number, ti->retry_at_us,
                   ti->reason, ti->start_us, ti->end_us, now_us(), (int64_t)ti->max_tries,
                   (int64_t)ti->infra_failures) < 0)
        LOG_E("store: %s", err.msg);
    s->stats.transitions++;
}

static void set_reason(struct sti *ti, const char *reason)
{
    free(ti->reason);
    ti->reason = reason && *reason ? xstrdup(reason) : NULL;
}

static void work_push(struct sched *s, struct sti *ti)
{
    if (s->n_work == s->cap_work) {
        s->cap_work = s->cap_work ? s->cap_work * 2 : 256;
        s->work = xrealloc(s->work, s->cap_work * sizeof *s->work);
    }
    s->work[s->n_work++] = ti;
}

static void timers_rearm(struct sched *s);
static void run_maybe_finish(struct sched *s, struct srun *r);
static void run_try_start(struct sched *s, struct srun *r);

/* ---- the state machine ------------------------------------------------ */

/* The one place a task instance changes state: check, persist, notify, then
 * the enter hook.  Downstream evaluation is queued on s->work, not recursed,
 * so a chain of 10,000 skips does not grow the stack. */
static void ti_set(struct sched *s, struct sti *ti, enum ti_state to, const char *reason)
{
    enum ti_state from = ti->state;
    if (!ti_transition_ok(from, to)) {
        LOG_E("bug: task %s.%s: illegal transition %s -> %s", ti->run->run_id,
              ti_task(ti)->id, ti_state_name(from), ti_state_name(to));
        return;
    }
    int64_t now = now_us();
    ti->state = to;
    set_reason(ti, reason);
    if (to == TI_RUNNING && ti->start_us == 0)
        ti->start_us = now;
    if (ti_state_terminal(to))
        ti->end_us = now;
    if (to != TI_UP_FOR_RETRY)
        ti->retry_at_us = 0;
    persist_ti(s, ti);
    LOG_D("ti %s/%s/%s: %s -> %s%s%s", ti->run->sd->dag_id, ti->run->run_id, ti_task(ti)->id,
          ti_state_name(from), ti_state_name(to), reason ? " : " : "", reason ? reason : "");
    emit_ti(s, ti);
    mark_dirty(s);

    switch (to) {
    case TI_SCHEDULED:
        ti->seq = s->seq++;
        heap_push(&s->ready, ti);
        ti->in_heap = &s->ready;
        break;
    case TI_UP_FOR_RETRY:
        ti->timer_at_us = ti->retry_at_us;
        heap_push(&s->timers, ti);
        timers_rearm(s);
        break;
    default:
        break;
    }
    if (ti_state_terminal(to)) {
        const struct dag_task *t = ti_task(ti);
        for (size_t i = 0; i < t->n_down; i++) {
            struct sti *d = &ti->run->tis[t->down[i]];
            if (to == TI_SUCCESS)
                d->up.success++;
            else if (to == TI_FAILED || to == TI_UPSTREAM_FAILED)
                d->up.failed++;
            else
                d->up.skipped++;
            if (d->state == TI_NONE)
                work_push(s, d);
        }
        if (ti->run->n_unfinished > 0)
            ti->run->n_unfinished--;
        run_maybe_finish(s, ti->run);
    }
}

/* Applies trigger rules to the queued task instances, first in first out,
 * so tasks of equal priority become ready in the order they were written. */
static void drain_work(struct sched *s)
{
    if (s->draining)
        return;
    s->draining = true;
    for (size_t head = 0; head < s->n_work; head++) {
        struct sti *ti = s->work[head];
        if (ti->state != TI_NONE || ti->run->state != RUN_RUNNING)
            continue;
        switch (trigger_eval(ti_task(ti)->trigger_rule, &ti->up)) {
        case TV_RUN:
            ti_set(s, ti, TI_SCHEDULED, NULL);
            break;
        case TV_SKIP:
            ti_set(s, ti, TI_SKIPPED, "skipped by trigger rule");
            break;
        case TV_UPSTREAM_FAILED:
            ti_set(s, ti, TI_UPSTREAM_FAILED, "an upstream task failed");
            break;
        case TV_WAIT:
            break;
        }
    }
    s->n_work = 0;
    s->draining = false;
}

/* ---- runs --------------------------------------------------------------- */

static void run_set_state(struct sched *s, struct srun *r, enum run_state to)
{
    if (r->state == to)
        return;
    if (!run_transition_ok(r->state, to)) {
        LOG_E("bug: run %s: illegal transition %s -> %s", r->run_id, run_state_name(r->state),
              run_state_name(to));
        return;
    }
    r->state = to;
    int64_t now = now_us();
    if (to == RUN_RUNNING && r->start_us == 0)
        r->start_us = now;
    struct kiln_err err = { 0 };
    txn(s);
    if (store_exec(s->st, Q_run_set_state, NULL, NULL, &err, "isoo", r->pk, run_state_name(to),
                   to == RUN_RUNNING ? r->start_us : (int64_t)0,
                   run_state_terminal(to) ? now : (int64_t)0) < 0)
        LOG_E("store: %s", err.msg);
    LOG_I("run %s/%s: %s", r->sd->dag_id, r->run_id, run_state_name(to));
    emit_run(s, r);
    mark_dirty(s);
}

static void run_unlink(struct sched *s, struct srun *r)
{
    if (r->prev)
        r->prev->next = r->next;
    else if (s->runs == r)
        s->runs = r->next;
    if (r->next)
        r->next->prev = r->prev;
    r->next = r->prev = NULL;
}

static void run_free(struct srun *r)
{
    if (!r)
        return;
    for (size_t i = 0; r->tis && i < r->dag->n_tasks; i++)
        free(r->tis[i].reason);
    free(r->tis);
    free(r->run_id);
    free(r->logs_dir);
    free(r->cwd);
    free(r->params_json);
    free(r);
}

static void sd_dequeue_run(struct sdag *sd, struct srun *r)
{
    struct srun **pp = r->backfill ? &sd->bf_head : &sd->queued_head;
    struct srun **tail = r->backfill ? &sd->bf_tail : &sd->queued_tail;
    *tail = NULL;
    while (*pp) {
        if (*pp == r) {
            *pp = r->qnext;
            r->qnext = NULL;
            r->queued_in_sd = false;
            continue;
        }
        *tail = *pp;
        pp = &(*pp)->qnext;
    }
}

/* Starts queued runs of sd while their class has room, each queue FIFO. */
static void sd_start_queued(struct sched *s, struct sdag *sd)
{
    while (!sd->paused && sd->queued_head && sd->active_runs < sd->max_active_runs) {
        struct srun *r = sd->queued_head;
        sd_dequeue_run(sd, r);
        run_try_start(s, r);
    }
    while (!sd->paused && sd->bf_head && sd->active_backfill < sd->max_backfill) {
        struct srun *r = sd->bf_head;
        sd_dequeue_run(sd, r);
        run_try_start(s, r);
    }
}

static void sd_release_parked(struct sched *s, struct tiheap *h, int n)
{
    /* Move back up to n parked task instances (all, if n < 0). */
    while (h->n > 0 && n != 0) {
        struct sti *ti = heap_pop(h);
        heap_push(&s->ready, ti);
        ti->in_heap = &s->ready;
        if (n > 0)
            n--;
    }
    mark_dirty(s);
}

/* A run fails when a leaf task failed under its trigger rule, or when it
 * was cancelled. */
static enum run_state run_outcome(const struct srun *r)
{
    if (r->cancelled)
        return RUN_FAILED;
    for (size_t i = 0; i < r->dag->n_tasks; i++)
        if (r->dag->tasks[i].n_down == 0 &&
            (r->tis[i].state == TI_FAILED || r->tis[i].state == TI_UPSTREAM_FAILED))
            return RUN_FAILED;
    return RUN_SUCCESS;
}

/* Takes a finished run out of the active list; it is freed at the end of
 * the turn, after every callback that may still hold it has returned. */
static void run_retire(struct sched *s, struct srun *r)
{
    r->finished = true;
    run_unlink(s, r);
    if (s->n_finished == s->cap_finished) {
        s->cap_finished = s->cap_finished ? s->cap_finished * 2 : 16;
        s->finished = xrealloc(s->finished, s->cap_finished * sizeof *s->finished);
    }
    s->finished[s->n_finished++] = r;
}

static void run_maybe_finish(struct sched *s, struct srun *r)
{
    if (r->n_unfinished > 0 || r->state != RUN_RUNNING)
        return;
    run_set_state(s, r, run_outcome(r));
    if (r->backfill)
        r->sd->active_backfill--;
    else
        r->sd->active_runs--;
    run_retire(s, r);
    /* The next queued run of its class may start now. */
    struct srun *next = r->backfill ? r->sd->bf_head : r->sd->queued_head;
    if (next) {
        sd_dequeue_run(r->sd, next);
        run_try_start(s, next);
    }
}

/* Starts a queued run if its DAG allows another active run. */
static void run_try_start(struct sched *s, struct srun *r)
{
    struct sdag *sd = r->sd;
    int *active = r->backfill ? &sd->active_backfill : &sd->active_runs;
    int limit = r->backfill ? sd->max_backfill : sd->max_active_runs;
    if (r->state == RUN_QUEUED) {
        if (sd->paused || *active >= limit) {
            if (!r->queued_in_sd) {
                struct srun **head = r->backfill ? &sd->bf_head : &sd->queued_head;
                struct srun **tail = r->backfill ? &sd->bf_tail : &sd->queued_tail;
                r->qnext = NULL;
                if (*tail)
                    (*tail)->qnext = r;
                else
                    *head = r;
                *tail = r;
                r->queued_in_sd = true;
            }
            return;
        }
        run_set_state(s, r, RUN_RUNNING);
    }
    (*active)++;
    for (size_t i = 0; i < r->dag->n_tasks; i++)
        if (r->tis[i].state == TI_NONE)
            work_push(s, &r->tis[i]);
    drain_work(s);
    run_maybe_finish(s, r);
}

/* ---- executor callbacks ------------------------------------------------- */

static void release_slots(struct sched *s, struct sti *ti)
{
    if (!ti->holds_slots)
        return;
    ti->holds_slots = false;
    const struct dag_task *t = ti_task(ti);
    s->running--;
    ti->run->sd->active_tasks--;
    sd_release_parked(s, &ti->run->sd->parked, 1);
    struct spool *p = pool_get(s, t->pool);
    if (p) {
        p->used -= t->pool_slots;
        sd_release_parked(s, &p->parked, t->pool_slots);
    }
}

static void try_forget(struct sched *s, struct sti *ti)
{
    trymap_del(&s->tries, ti->try_pk);
    if (ti->hpos[HP_TIMER]) {
        heap_remove(&s->timers, ti);
        timers_rearm(s);
    }
    ti->try_pk = 0;
    ti->deadline_us = 0;
    ti->ex = NULL;
}

static void on_started(void *arg, int64_t try_id, const char *executor_id, int64_t start_us)
{
    struct sched *s = arg;
    struct sti *ti = trymap_get(&s->tries, try_id);
    if (!ti)
        return;
    struct kiln_err err = { 0 };
    txn(s);
    if (store_exec(s->st, Q_try_started, NULL, NULL, &err, "iso", try_id, executor_id,
                   start_us ? start_us : now_us()) < 0)
        LOG_E("store: %s", err.msg);
    if (ti->state == TI_QUEUED) {
        ti->start_us = start_us ? start_us : now_us();
        ti_set(s, ti, TI_RUNNING, NULL);
    }
    int64_t timeout = ti_task(ti)->timeout_ms;
    if (timeout > 0 && ti->deadline_us == 0) {
        ti->deadline_us = (start_us ? start_us : now_us()) + timeout * 1000;
        ti->timer_at_us = ti->deadline_us;
        heap_push(&s->timers, ti);
        timers_rearm(s);
    }
}

/* Reads the JSON object a task wrote to KILN_OUTPUTS, if any. */
static char *read_outputs(struct sched *s, struct sti *ti, char *why, size_t why_len)
{
    char log[4096], path[4200];
    log_path_into(log, sizeof log, s, ti, ti->try_number);
    snprintf(path, sizeof path, "%.*s.outputs.json", (int)(strlen(log) - 4), log);
    struct stat sb;
    char *data = NULL;
    if (stat(path, &sb) == 0) {
        if (sb.st_size > OUTPUTS_MAX_BYTES)
            snprintf(why, why_len, "outputs file is %lld bytes, over the limit of %d",
                     (long long)sb.st_size, OUTPUTS_MAX_BYTES);
        else if (file_read_all(path, &data, NULL) < 0)
            data = NULL;
    }
    return data;
}

static void describe_failure(const struct sti *ti, const struct exec_result *res, char *buf,
                             size_t n)
{
    if (ti->timed_out) {
        char d[32];
        duration_format(ti_task(ti)->timeout_ms, d, sizeof d);
        snprintf(buf, n, "timed out after %s", d);
    } else if (res->lost || res->spawn_failed) {
        snprintf(buf, n, "%s", res->reason[0] ? res->reason : "task process lost");
    } else if (res->reason[0] && !res->term_signal) {
        /* The executor knows better than the exit code (a pod's OOMKilled). */
        snprintf(buf, n, "%s", res->reason);
    } else if (res->term_signal) {
        snprintf(buf, n, "killed by signal %d (SIG%s)", res->term_signal,
                 sigabbrev_np(res->term_signal) ? sigabbrev_np(res->term_signal) : "?");
    } else {
        snprintf(buf, n, "exited with code %d", res->exit_code);
    }
}

static void start_try(struct sched *s, struct sti *ti);

static void on_done(void *arg, const struct exec_result *res)
{
    struct sched *s = arg;
    struct sti *ti = trymap_get(&s->tries, res->try_id);
    if (!ti)
        return;
    if (res->never_started) {
        /* Adoption found the try was never handed to a process: start it
         * now.  Its row exists, so this is its first and only start. */
        LOG_I("try %" PRId64 " of %s was never started; starting it", res->try_id,
              ti_task(ti)->id);
        start_try(s, ti);
        return;
    }
    struct kiln_err err = { 0 };
    const struct dag_task *t = ti_task(ti);
    char reason[512] = "";
    char out_err[160] = "";
    enum ti_state to;
    bool failed_try = false, infra_retry = false;
    if (!res->lost && !res->spawn_failed && res->term_signal == 0 && !ti->timed_out &&
        res->exit_code == 0) {
        to = TI_SUCCESS;
    } else if (!res->lost && !res->spawn_failed && res->term_signal == 0 && !ti->timed_out &&
               res->exit_code == t->skip_exit_code) {
        to = TI_SKIPPED;
        snprintf(reason, sizeof reason, "skipped: exited with code %d", res->exit_code);
    } else {
        failed_try = true;
        describe_failure(ti, res, reason, sizeof reason);
        if (res->infra && !ti->timed_out && ti->infra_failures < s->cfg.infra_retries) {
            infra_retry = true;
            /* The infrastructure failed, not the task: retry it without
             * spending one of the task's own retries, up to its own budget. */
            ti->infra_failures++;
            ti->max_tries++;
            size_t l = strlen(reason);
            snprintf(reason + l, sizeof reason - l,
                     " (infrastructure failure %d of %d allowed; retrying)", ti->infra_failures,
                     s->cfg.infra_retries);
        }
        to = ti->try_number < ti->max_tries ? TI_UP_FOR_RETRY : TI_FAILED;
    }
    char *outputs = read_outputs(s, ti, out_err, sizeof out_err);
    if (out_err[0] && !failed_try) {
        /* An oversize outputs file fails the try: downstream would not get it. */
        snprintf(reason, sizeof reason, "%s", out_err);
        failed_try = true;
        to = ti->try_number < ti->max_tries ? TI_UP_FOR_RETRY : TI_FAILED;
    }
    const char *try_state = to == TI_SUCCESS ? "success" : to == TI_SKIPPED ? "skipped" : "failed";
    txn(s);
    /* exit_code -1: none (the process was signalled, lost or never ran). */
    int64_t code = res->lost || res->spawn_failed || res->term_signal ? -1 : res->exit_code;
    if (store_exec(s->st, Q_try_finished, NULL, NULL, &err, "isiiosos", res->try_id, try_state,
                   res->end_us ? res->end_us : now_us(), code, (int64_t)res->term_signal,
                   reason[0] ? reason : NULL, res->start_us, outputs) < 0)
        LOG_E("store: %s", err.msg);
    free(outputs);
    try_forget(s, ti);
    release_slots(s, ti);
    if (to == TI_UP_FOR_RETRY)
        ti->retry_at_us = now_us() + (infra_retry ? s->cfg.infra_retry_delay_ms
                                      : dag_retry_delay_ms(t, ti->try_number + 1)) * 1000;
    ti->timed_out = false;
    ti_set(s, ti, to, reason[0] ? reason : NULL);
    drain_work(s);
}

/* ---- dispatch ----------------------------------------------------------- */

static void push_start(struct sched *s, struct sti *ti)
{
    if (s->n_starts == s->cap_starts) {
        s->cap_starts = s->cap_starts ? s->cap_starts * 2 : 64;
        s->starts = xrealloc(s->starts, s->cap_starts * sizeof *s->starts);
    }
    s->starts[s->n_starts++].ti = ti;
}

static void start_try(struct sched *s, struct sti *ti)
{
    push_start(s, ti);
    mark_dirty(s);
}

static void park(struct tiheap *h, struct sti *ti)
{
    heap_push(h, ti);
    ti->in_heap = h;
}

static void unheap(struct sched *s, struct sti *ti)
{
    if (ti->in_heap) {
        heap_remove(ti->in_heap, ti);
        ti->in_heap = NULL;
    }
    if (ti->hpos[HP_TIMER])
        heap_remove(&s->timers, ti);
}

static void fail_now(struct sched *s, struct sti *ti, const char *reason)
{
    ti_set(s, ti, TI_FAILED, reason);
}

static struct executor *ti_executor(struct sched *s, const struct dag_task *t)
{
    const char *name = s->cfg.executor_override ? s->cfg.executor_override
                       : t->executor ? t->executor : "local";
    return exec_get(s, name);
}

/* Moves ready task instances to queued while slots allow, recording a try
 * for each.  The tries start after the commit (see flush). */
static void dispatch(struct sched *s)
{
    struct kiln_err err;
    while (s->running < s->cfg.parallelism) {
        struct sti *ti = heap_pop(&s->ready);
        if (!ti)
            break;
        ti->in_heap = NULL;
        if (ti->state != TI_SCHEDULED)
            continue;
        struct srun *r = ti->run;
        struct sdag *sd = r->sd;
        const struct dag_task *t = ti_task(ti);
        if (sd->paused || r->state != RUN_RUNNING || sd->active_tasks >= sd->max_active_tasks) {
            park(&sd->parked, ti);
            continue;
        }
        struct spool *p = pool_get(s, t->pool);
        if (!p) {
            char why[300];
            snprintf(why, sizeof why, "pool '%s' is not defined (add it under 'pools:' in kiln.yaml)",
                     t->pool);
            fail_now(s, ti, why);
            continue;
        }
        if (t->pool_slots > p->slots) {
            char why[300];
            snprintf(why, sizeof why, "needs %d slots of pool '%s', which has %d", t->pool_slots,
                     p->name, p->slots);
            fail_now(s, ti, why);
            continue;
        }
        if (p->used + t->pool_slots > p->slots) {
            park(&p->parked, ti);
            continue;
        }
        struct executor *ex = ti_executor(s, t);
        if (!ex) {
            char why[300];
            const char *name = s->cfg.executor_override ? s->cfg.executor_override : t->executor;
            snprintf(why, sizeof why, "executor '%s' is not available in this daemon%s", name,
                     strcmp(name, "kubernetes") == 0
                         ? " (set kube_config or KUBECONFIG, or run kiln in a pod)" : "");
            fail_now(s, ti, why);
            continue;
        }
        ti->holds_slots = true;
        s->running++;
        if (s->running > s->stats.max_running)
            s->stats.max_running = s->running;
        sd->active_tasks++;
        p->used += t->pool_slots;

        ti->try_number++;
        char log[4096];
        log_path_into(log, sizeof log, s, ti, ti->try_number);
        kiln_err_clear(&err);
        txn(s);
        int64_t try_pk = 0;
        if (store_insert(s->st, Q_try_insert, &try_pk, &err, "iisis", ti->pk,
                         (int64_t)ti->try_number, ex->ops->name, now_us(), log) < 0)
            LOG_E("store: %s", err.msg);
        ti->try_pk = try_pk;
        ti->ex = ex;
        trymap_put(&s->tries, try_pk, ti);
        ti_set(s, ti, TI_QUEUED, NULL);
        push_start(s, ti);
        s->stats.tries_started++;
    }
}

static bool env_has_key(const char *entry, const char *key)
{
    size_t n = strlen(key);
    return strncmp(entry, key, n) == 0 && entry[n] == '=';
}

/* The environment every task starts from: the daemon's, less the KILN_*
 * variables kiln sets itself.  Computed once; tries borrow the pointers. */
static void base_env_init(struct sched *s)
{
    static const char *const ours[] = { "KILN_DAG_ID", "KILN_RUN_ID", "KILN_TASK_ID",
                                        "KILN_TRY_NUMBER", "KILN_OUTPUTS", "KILN_LOG_FILE",
                                        "KILN_HOME" };
    size_t n = 0;
    while (s->cfg.base_env && s->cfg.base_env[n])
        n++;
    s->base_env = xcalloc(n + 1, sizeof *s->base_env);
    for (size_t i = 0; i < n; i++) {
        bool skip = false;
        for (size_t k = 0; k < ARRAY_LEN(ours) && !skip; k++)
            skip = env_has_key(s->cfg.base_env[i], ours[k]);
        if (!skip)
            s->base_env[s->n_base_env++] = s->cfg.base_env[i];
    }
}

/* The spec of the try in flight: pointers into the DAG, the base
 * environment, and one arena for the strings of this try. */
struct spec_buf {
    struct exec_spec spec;
    const char **env;
    char **argv;                   /* rendered; strings in the arena */
    struct sbuf arena;
};

static size_t arena_put(struct sbuf *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static size_t arena_put(struct sbuf *a, const char *fmt, ...)
{
    size_t off = a->len;
    va_list ap;
    va_start(ap, fmt);
    char tmp[4096];
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n >= (int)sizeof tmp) {
        va_start(ap, fmt);
        char *big = xmalloc((size_t)n + 1);
        vsnprintf(big, (size_t)n + 1, fmt, ap);
        va_end(ap);
        sbuf_add(a, big, (size_t)n + 1);
        free(big);
    } else {
        sbuf_add(a, tmp, (size_t)n + 1);
    }
    return off;
}

/* For {{ tasks.ID.outputs.KEY }}: the outputs of ID's latest successful try
 * in this run. */
struct outputs_ctx {
    struct sched *s;
    struct srun *r;
    char *last;
};

static int outputs_row(void *arg, struct store_row *row)
{
    struct outputs_ctx *c = arg;
    const char *o = store_col_text(row, 0);
    c->last = o ? xstrdup(o) : NULL;
    return 1;
}

static const char *outputs_of(void *arg, const char *task_id)
{
    struct outputs_ctx *c = arg;
    free(c->last);
    c->last = NULL;
    const struct dag_task *u = dag_task_find(c->r->dag, task_id);
    if (!u)
        return NULL;
    struct kiln_err err = { 0 };
    if (store_exec(c->s->st, Q_try_outputs_success, outputs_row, c, &err, "i",
                   c->r->tis[u->index].pk) < 0)
        LOG_E("store: %s", err.msg);
    return c->last;
}

/* Renders one template into the arena (with its NUL); returns its offset,
 * or -1 with why filled. */
static long arena_render(struct sbuf *a, const char *prefix, const char *s,
                         const struct template_vars *v, char *why, size_t n)
{
    size_t off = a->len;
    if (prefix)
        sbuf_adds(a, prefix);
    if (template_render(s, v, a, why, n) < 0)
        return -1;
    sbuf_add(a, "", 1);
    return (long)off;
}

/* Builds what the executor needs for a try: argv and env with templates
 * rendered.  Returns 0, or -1 with why filled (a template that cannot be
 * rendered: the try fails without starting). */
static int spec_build(struct sched *s, struct sti *ti, struct spec_buf *b, char *why,
                      size_t why_len)
{
    struct srun *r = ti->run;
    const struct dag_task *t = ti_task(ti);
    memset(b, 0, sizeof *b);
    sbuf_init(&b->arena);
    char log[4096];
    log_path_into(log, sizeof log, s, ti, ti->try_number);
    size_t stem = strlen(log) - 4; /* without ".log" */
    size_t off[16], k = 0;
    off[k++] = arena_put(&b->arena, "%s", log);
    off[k++] = t->cwd && t->cwd[0] == '/' ? arena_put(&b->arena, "%s", t->cwd)
               : t->cwd ? arena_put(&b->arena, "%s/%s", r->cwd, t->cwd)
                        : arena_put(&b->arena, "%s", r->cwd);
    off[k++] = arena_put(&b->arena, "KILN_DAG_ID=%s", r->sd->dag_id);
    off[k++] = arena_put(&b->arena, "KILN_RUN_ID=%s", r->run_id);
    off[k++] = arena_put(&b->arena, "KILN_TASK_ID=%s", t->id);
    off[k++] = arena_put(&b->arena, "KILN_TRY_NUMBER=%d", ti->try_number);
    off[k++] = arena_put(&b->arena, "KILN_OUTPUTS=%.*s.outputs.json", (int)stem, log);
    off[k++] = arena_put(&b->arena, "KILN_LOG_FILE=%s", log);
    off[k++] = arena_put(&b->arena, "KILN_HOME=%s", s->home);
    struct outputs_ctx oc = { s, r, NULL };
    struct template_vars tv = {
        .run_id = r->run_id, .dag_id = r->sd->dag_id, .task_id = t->id,
        .try_number = ti->try_number, .logical_us = r->logical_us,
        .interval_start_us = r->logical_us, .interval_end_us = r->interval_end_us,
        .params_json = r->params_json, .outputs = outputs_of, .arg = &oc,
    };
    int rc = 0;
    size_t task_env0 = b->arena.len;
    for (size_t i = 0; i < t->n_env && rc == 0; i++) {
        char *prefix = xasprintf("%s=", t->env[i].key);
        if (arena_render(&b->arena, prefix, t->env[i].value, &tv, why, why_len) < 0)
            rc = -1;
        free(prefix);
    }
    size_t task_env_end = b->arena.len;
    long *argv_off = xcalloc(t->argc + 1, sizeof *argv_off);
    for (size_t i = 0; i < t->argc && rc == 0; i++)
        if ((argv_off[i] = arena_render(&b->arena, NULL, t->argv[i], &tv, why, why_len)) < 0)
            rc = -1;
    free(oc.last);

    /* Pointers are taken only now: the arena may have moved while growing. */
    const char *base = b->arena.data;
    b->env = xcalloc(s->n_base_env + t->n_env + 8, sizeof *b->env);
    size_t n = 0;
    for (size_t i = 0; i < s->n_base_env; i++) {
        bool overridden = false;
        for (size_t j = 0; j < t->n_env && !overridden; j++)
            overridden = env_has_key(s->base_env[i], t->env[j].key);
        if (!overridden)
            b->env[n++] = s->base_env[i];
    }
    size_t own0 = n;
    for (size_t i = 2; i < k; i++)
        b->env[n++] = base + off[i];
    for (const char *p = base + task_env0; rc == 0 && p < base + task_env_end; p += strlen(p) + 1)
        b->env[n++] = p;
    b->env[n] = NULL;
    b->argv = xcalloc(t->argc + 1, sizeof *b->argv);
    for (size_t i = 0; i < t->argc && rc == 0; i++)
        b->argv[i] = (char *)base + argv_off[i];
    free(argv_off);

    b->spec = (struct exec_spec){
        .try_id = ti->try_pk, .dag_id = r->sd->dag_id, .run_id = r->run_id, .task_id = t->id,
        .try_number = ti->try_number, .argv = b->argv, .envp = (char *const *)b->env,
        .cwd = base + off[1], .log_path = base + off[0],
        .task_env = (char *const *)&b->env[own0], .kube = t->kube, .timeout_ms = t->timeout_ms,
    };
    return rc;
}

static void spec_cleanup(struct spec_buf *b)
{
    free(b->env);
    free(b->argv);
    sbuf_free(&b->arena);
}

static void do_start(struct sched *s, struct sti *ti)
{
    struct srun *r = ti->run;
    if (!r->logs_dir_made) {
        mkdir_p(r->logs_dir, 0755);
        r->logs_dir_made = true;
    }
    struct spec_buf b;
    char why[256];
    if (spec_build(s, ti, &b, why, sizeof why) < 0) {
        /* A template that cannot be rendered fails the try before anything
         * runs, the way a spawn failure does, so the retry rules apply. */
        struct exec_result res = { .try_id = ti->try_pk, .spawn_failed = true };
        s->stats.executor_errors++;
        snprintf(res.reason, sizeof res.reason, "%s", why);
        spec_cleanup(&b);
        on_done(s, &res);
        return;
    }
    struct kiln_err err = { 0 };
    if (ti->ex->ops->start(ti->ex, &b.spec, &err) < 0) {
        /* The executor refused synchronously: report it as a failed try so
         * the usual retry rules apply. */
        struct exec_result res = { .try_id = ti->try_pk, .spawn_failed = true };
        snprintf(res.reason, sizeof res.reason, "%.250s", err.msg);
        on_done(s, &res);
    }
    spec_cleanup(&b);
}

/* ---- timers ------------------------------------------------------------- */

static void on_timer(uv_timer_t *h)
{
    struct sched *s = container_of(h, struct sched, timer);
    int64_t now = now_us();
    while (s->timers.n > 0 && s->timers.v[0]->timer_at_us <= now) {
        struct sti *ti = heap_pop(&s->timers);
        if (ti->state == TI_UP_FOR_RETRY) {
            ti_set(s, ti, TI_SCHEDULED, NULL);
        } else if ((ti->state == TI_RUNNING || ti->state == TI_QUEUED) && ti->try_pk && ti->ex) {
            char d[32];
            duration_format(ti_task(ti)->timeout_ms, d, sizeof d);
            LOG_I("task %s/%s/%s timed out after %s; stopping it", ti->run->sd->dag_id,
                  ti->run->run_id, ti_task(ti)->id, d);
            ti->timed_out = true;
            ti->ex->ops->cancel(ti->ex, ti->try_pk, s->cfg.kill_grace_ms);
        }
    }
    s->timer_armed_at = 0;
    timers_rearm(s);
    mark_dirty(s);
}

static void timers_rearm(struct sched *s)
{
    if (s->cfg.offline || s->closing)
        return;
    if (s->timers.n == 0) {
        uv_timer_stop(&s->timer);
        s->timer_armed_at = 0;
        return;
    }
    int64_t due = s->timers.v[0]->timer_at_us;
    if (s->timer_armed_at == due)
        return;
    int64_t delay = (due - now_us()) / 1000 + 1;
    uv_timer_start(&s->timer, on_timer, delay > 0 ? (uint64_t)delay : 0, 0);
    s->timer_armed_at = due;
}

/* ---- the turn ----------------------------------------------------------- */

static void free_finished(struct sched *s)
{
    for (size_t i = 0; i < s->n_finished; i++)
        run_free(s->finished[i]);
    s->n_finished = 0;
}

int sched_flush(struct sched *s, struct kiln_err *err)
{
    drain_work(s);
    if (!s->cfg.offline)
        dispatch(s);
    drain_work(s);
    free_finished(s);
    s->dirty = false;
    int rc = store_txn_commit(s->st, err);
    if (rc < 0) {
        /* The database refused: nothing of this turn may be acted on. */
        store_txn_rollback(s->st);
        return rc;
    }
    /* Committed: now act.  A start that fails synchronously records its
     * failure in a new transaction, flushed on the next turn. */
    size_t n = s->n_starts;
    s->n_starts = 0;
    struct pending_start *starts = s->starts;
    s->starts = NULL;
    s->cap_starts = 0;
    for (size_t i = 0; i < n; i++)
        if (starts[i].ti->try_pk && starts[i].ti->ex)
            do_start(s, starts[i].ti);
    free(starts);
    if (!s->dirty && !store_in_txn(s->st) && !s->cfg.offline && !s->closing)
        uv_idle_stop(&s->idle);
    return 0;
}

static void turn(struct sched *s)
{
    if (!s->dirty && !store_in_txn(s->st)) {
        uv_idle_stop(&s->idle);
        return;
    }
    struct kiln_err err = { 0 };
    if (sched_flush(s, &err) < 0)
        LOG_E("commit failed: %s", err.msg);
}

static void on_prepare(uv_prepare_t *h)
{
    turn(container_of(h, struct sched, prepare));
}

static void on_idle(uv_idle_t *h)
{
    turn(container_of(h, struct sched, idle));
}

/* ---- loading runs ------------------------------------------------------- */

struct version_row {
    char *path;
    char *source;
    size_t len;
    char *hash;
};

static int version_row_cb(void *arg, struct store_row *row)
{
    struct version_row *v = arg;
    v->hash = xstrdup(store_col_text(row, 2));
    v->path = xstrdup(store_col_text(row, 3));
    const void *p = store_col_blob(row, 4, &v->len);
    v->source = xstrndup(p ? p : "", v->len);
    return 1;
}

void sched_cache_dag(struct sched *s, int64_t version_id, struct dag *d)
{
    for (size_t i = 0; i < s->n_versions; i++)
        if (s->versions[i].version_id == version_id) {
            dag_free(d);
            return;
        }
    s->versions = xrealloc(s->versions, (s->n_versions + 1) * sizeof *s->versions);
    s->versions[s->n_versions++] = (struct vcache){ version_id, d };
}

static int version_dag(struct sched *s, int64_t version_id, const struct dag **out,
                       struct kiln_err *err)
{
    for (size_t i = 0; i < s->n_versions; i++)
        if (s->versions[i].version_id == version_id) {
            *out = s->versions[i].dag;
            return 0;
        }
    struct version_row v = { 0 };
    int rc = store_exec(s->st, Q_version_get, version_row_cb, &v, err, "i", version_id);
    if (rc == 0 && !v.source)
        rc = kiln_err_set(err, KILN_ENOTFOUND, "DAG version %" PRId64 " not in the database",
                          version_id);
    struct dag *d = NULL;
    if (rc == 0)
        rc = dag_load_buf(v.path, v.source, v.len, &d, err);
    if (rc == 0) {
        free(d->hash);
        d->hash = xstrdup(v.hash);
        sched_cache_dag(s, version_id, d);
        *out = d;
    }
    free(v.path);
    free(v.source);
    free(v.hash);
    return rc;
}

struct run_row {
    bool found;
    char *dag_id, *run_id, *state, *params;
    int64_t version_id, start_us, logical_us, created_us, interval_end_us, backfill_max;
    bool backfill;
};

static int run_row_cb(void *arg, struct store_row *row)
{
    struct run_row *rr = arg;
    rr->found = true;
    rr->dag_id = xstrdup(store_col_text(row, 1));
    rr->run_id = xstrdup(store_col_text(row, 2));
    rr->version_id = store_col_int(row, 3);
    rr->state = xstrdup(store_col_text(row, 5));
    rr->start_us = store_col_int(row, 9);
    rr->params = store_col_text(row, 6) ? xstrdup(store_col_text(row, 6)) : NULL;
    rr->logical_us = store_col_int(row, 7);
    rr->created_us = store_col_int(row, 8);
    rr->backfill = strcmp(store_col_text(row, 4), "backfill") == 0;
    rr->interval_end_us = store_col_int(row, 11);
    rr->backfill_max = store_col_int(row, 12);
    return 1;
}

struct ti_rows_ctx {
    struct srun *r;
    int bad;
};

static int ti_row_cb(void *arg, struct store_row *row)
{
    struct ti_rows_ctx *c = arg;
    int64_t idx = store_col_int(row, 2);
    const char *task_id = store_col_text(row, 1);
    if (idx < 0 || (size_t)idx >= c->r->dag->n_tasks ||
        strcmp(c->r->dag->tasks[idx].id, task_id) != 0) {
        c->bad++;
        return 0;
    }
    struct sti *ti = &c->r->tis[idx];
    ti->pk = store_col_int(row, 0);
    int st = ti_state_parse(store_col_text(row, 3));
    ti->state = st < 0 ? TI_NONE : (enum ti_state)st;
    ti->try_number = (int)store_col_int(row, 4);
    ti->max_tries = (int)store_col_int(row, 5);
    ti->retry_at_us = store_col_int(row, 6);
    set_reason(ti, store_col_text(row, 7));
    ti->start_us = store_col_int(row, 8);
    ti->end_us = store_col_int(row, 9);
    ti->infra_failures = (int)store_col_int(row, 10);
    return 0;
}

struct try_row {
    bool found;
    int64_t pk, start_us;
    char *state, *executor_id;
};

static int try_row_cb(void *arg, struct store_row *row)
{
    struct try_row *t = arg;
    t->found = true;
    t->pk = store_col_int(row, 0);
    t->state = xstrdup(store_col_text(row, 2));
    t->executor_id = store_col_text(row, 4) ? xstrdup(store_col_text(row, 4)) : NULL;
    t->start_us = store_col_int(row, 6);
    return 1;
}

static void recount(struct srun *r)
{
    r->n_unfinished = 0;
    for (size_t i = 0; i < r->dag->n_tasks; i++) {
        r->tis[i].up = (struct up_counts){ .total = (int)r->dag->tasks[i].n_up };
    }
    for (size_t i = 0; i < r->dag->n_tasks; i++) {
        struct sti *ti = &r->tis[i];
        if (!ti_state_terminal(ti->state)) {
            r->n_unfinished++;
            continue;
        }
        const struct dag_task *t = &r->dag->tasks[i];
        for (size_t j = 0; j < t->n_down; j++) {
            struct up_counts *u = &r->tis[t->down[j]].up;
            if (ti->state == TI_SUCCESS)
                u->success++;
            else if (ti->state == TI_FAILED || ti->state == TI_UPSTREAM_FAILED)
                u->failed++;
            else
                u->skipped++;
        }
    }
}

static struct srun *run_find(struct sched *s, int64_t pk)
{
    for (struct srun *r = s->runs; r; r = r->next)
        if (r->pk == pk)
            return r;
    for (size_t i = 0; i < s->n_finished; i++)
        if (s->finished[i]->pk == pk)
            return s->finished[i];
    return NULL;
}

static char *dirname_dup(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        return xstrdup(".");
    if (slash == path)
        return xstrdup("/");
    return xstrndup(path, (size_t)(slash - path));
}

/* Re-attaches to the try in flight of a queued or running task instance. */
static void adopt_ti(struct sched *s, struct sti *ti)
{
    struct try_row tr = { 0 };
    struct kiln_err err = { 0 };
    store_exec(s->st, Q_try_get_latest, try_row_cb, &tr, &err, "i", ti->pk);
    const struct dag_task *t = ti_task(ti);
    if (!tr.found || (strcmp(tr.state, "queued") != 0 && strcmp(tr.state, "running") != 0)) {
        /* No try in flight: the task instance goes back to the queue. */
        ti->state = TI_SCHEDULED;
        persist_ti(s, ti);
        ti->seq = s->seq++;
        park(&s->ready, ti);
        goto out;
    }
    struct executor *ex = ti_executor(s, t);
    if (!ex) {
        LOG_W("task %s: executor for its try is not available; failing it", t->id);
        ti->try_pk = 0;
        s->stats.executor_errors++;
        fail_now(s, ti, "its executor is not available in this daemon");
        goto out;
    }
    ti->try_pk = tr.pk;
    ti->ex = ex;
    ti->holds_slots = true;
    s->running++;
    ti->run->sd->active_tasks++;
    struct spool *p = pool_get(s, t->pool);
    if (p)
        p->used += t->pool_slots;
    trymap_put(&s->tries, tr.pk, ti);
    if (t->timeout_ms > 0 && tr.start_us > 0) {
        ti->deadline_us = tr.start_us + t->timeout_ms * 1000;
        ti->timer_at_us = ti->deadline_us;
        heap_push(&s->timers, ti);
        timers_rearm(s);
    }
    struct spec_buf b;
    char why[256];
    if (spec_build(s, ti, &b, why, sizeof why) < 0) {
        struct exec_result res = { .try_id = tr.pk, .spawn_failed = true };
        snprintf(res.reason, sizeof res.reason, "%s", why);
        spec_cleanup(&b);
        on_done(s, &res);
        goto out;
    }
    if (ex->ops->adopt(ex, &b.spec, tr.executor_id, &err) < 0) {
        struct exec_result res = { .try_id = tr.pk, .lost = true };
        snprintf(res.reason, sizeof res.reason, "could not re-attach: %.200s", err.msg);
        spec_cleanup(&b);
        on_done(s, &res);
        goto out;
    }
    spec_cleanup(&b);
out:
    free(tr.state);
    free(tr.executor_id);
}

static int load_run(struct sched *s, int64_t run_pk, bool even_finished, struct srun **out,
                    struct kiln_err *err)
{
    struct srun *r = run_find(s, run_pk);
    if (r) {
        *out = r;
        return 0;
    }
    struct run_row rr = { 0 };
    int rc = store_exec(s->st, Q_run_get, run_row_cb, &rr, err, "i", run_pk);
    if (rc == 0 && !rr.found)
        rc = kiln_err_set(err, KILN_ENOTFOUND, "run %" PRId64 " not found", run_pk);
    int st = rr.found ? run_state_parse(rr.state) : -1;
    if (rc == 0 && st < 0)
        rc = kiln_err_set(err, KILN_ESTORE, "run %" PRId64 ": bad state", run_pk);
    if (rc == 0 && run_state_terminal((enum run_state)st) && !even_finished) {
        *out = NULL;
        goto done;
    }
    const struct dag *d = NULL;
    if (rc == 0)
        rc = version_dag(s, rr.version_id, &d, err);
    if (rc < 0)
        goto done;

    r = xcalloc(1, sizeof *r);
    r->pk = run_pk;
    r->run_id = xstrdup(rr.run_id);
    r->dag = d;
    r->state = (enum run_state)st;
    r->start_us = rr.start_us;
    r->params_json = rr.params;
    rr.params = NULL;
    /* Manual runs have no logical date of their own: like Airflow, the
     * trigger time stands for it. */
    r->logical_us = rr.logical_us ? rr.logical_us : rr.created_us;
    r->interval_end_us = rr.interval_end_us ? rr.interval_end_us : r->logical_us;
    r->backfill = rr.backfill;
    r->sd = sdag_get(s, rr.dag_id);
    /* The newest backfill's limit applies to the DAG's backfill runs. */
    if (r->backfill)
        r->sd->max_backfill = rr.backfill_max > 0 ? (int)rr.backfill_max : 1;
    /* The limits of the newest version loaded apply to the DAG. */
    r->sd->max_active_runs = d->max_active_runs > 0 ? d->max_active_runs : 16;
    r->sd->max_active_tasks = d->max_active_tasks > 0 ? d->max_active_tasks : 16;
    r->logs_dir = xasprintf("%s/logs/%s/%s", s->home, rr.dag_id, rr.run_id);
    r->cwd = dirname_dup(d->path);
    r->tis = xcalloc(d->n_tasks ? d->n_tasks : 1, sizeof *r->tis);
    for (size_t i = 0; i < d->n_tasks; i++) {
        r->tis[i].run = r;
        r->tis[i].idx = (uint32_t)i;
        r->tis[i].max_tries = d->tasks[i].retries + 1;
    }
    struct ti_rows_ctx c = { r, 0 };
    rc = store_exec(s->st, Q_ti_list, ti_row_cb, &c, err, "i", run_pk);
    if (rc == 0 && c.bad)
        rc = kiln_err_set(err, KILN_ESTORE,
                          "run %" PRId64 ": %d task rows do not match its DAG version", run_pk,
                          c.bad);
    if (rc < 0) {
        run_free(r);
        goto done;
    }
    recount(r);
    r->next = s->runs;
    if (s->runs)
        s->runs->prev = r;
    s->runs = r;
    if (run_state_terminal(r->state)) {
        /* Loaded for a user action; dropped at the end of the turn unless
         * the action re-opens it. */
        run_retire(s, r);
        *out = r;
        goto done;
    }
    for (size_t i = 0; i < d->n_tasks; i++) {
        struct sti *ti = &r->tis[i];
        switch (ti->state) {
        case TI_SCHEDULED:
            ti->seq = s->seq++;
            park(&s->ready, ti);
            break;
        case TI_QUEUED:
        case TI_RUNNING:
            if (!s->cfg.offline)
                adopt_ti(s, ti);
            break;
        case TI_UP_FOR_RETRY:
            ti->timer_at_us = ti->retry_at_us;
            heap_push(&s->timers, ti);
            break;
        default:
            break;
        }
    }
    timers_rearm(s);
    if (!s->cfg.offline)
        run_try_start(s, r);
    mark_dirty(s);
    *out = r;
done:
    free(rr.dag_id);
    free(rr.run_id);
    free(rr.state);
    free(rr.params);
    return rc;
}

int sched_load_run(struct sched *s, int64_t run_pk, struct kiln_err *err)
{
    struct srun *r;
    return load_run(s, run_pk, false, &r, err);
}

struct pk_list {
    int64_t *v;
    size_t n, cap;
};

static int pk_row_cb(void *arg, struct store_row *row)
{
    struct pk_list *l = arg;
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 16;
        l->v = xrealloc(l->v, l->cap * sizeof *l->v);
    }
    l->v[l->n++] = store_col_int(row, 0);
    return 0;
}

int sched_recover(struct sched *s, struct kiln_err *err)
{
    struct pk_list l = { 0 };
    int rc = store_exec(s->st, Q_run_unfinished, pk_row_cb, &l, err, "");
    for (size_t i = 0; rc == 0 && i < l.n; i++) {
        struct kiln_err e = { 0 };
        if (sched_load_run(s, l.v[i], &e) < 0)
            LOG_E("cannot recover run %" PRId64 ": %s", l.v[i], e.msg);
    }
    free(l.v);
    if (l.n)
        LOG_I("recovered %zu unfinished run(s)", l.n);
    for (size_t i = 0; !s->cfg.offline && i < s->n_execs; i++)
        if (s->execs[i].ex->ops->adopt_done)
            s->execs[i].ex->ops->adopt_done(s->execs[i].ex);
    return rc;
}

/* ---- user actions ------------------------------------------------------- */

/* A state change asked for by a user (clear, mark, cancel): checked against
 * the user transition table instead of the scheduler's. */
static int ti_user_set(struct sched *s, struct sti *ti, enum ti_state to, const char *reason,
                       struct kiln_err *err)
{
    if (!ti_user_transition_ok(ti->state, to))
        return kiln_err_set(err, KILN_ESTATE, "task '%s' is %s; cannot set it to %s",
                            ti_task(ti)->id, ti_state_name(ti->state), ti_state_name(to));
    unheap(s, ti);
    ti->state = to;
    set_reason(ti, reason);
    if (to == TI_NONE) {
        ti->start_us = ti->end_us = 0;
        ti->retry_at_us = 0;
    } else {
        ti->end_us = now_us();
    }
    persist_ti(s, ti);
    emit_ti(s, ti);
    mark_dirty(s);
    return 0;
}

static void run_reopen(struct sched *s, struct srun *r)
{
    if (!r->finished)
        return;
    for (size_t i = 0; i < s->n_finished; i++)
        if (s->finished[i] == r) {
            s->finished[i] = s->finished[--s->n_finished];
            break;
        }
    r->finished = false;
    r->next = s->runs;
    r->prev = NULL;
    if (s->runs)
        s->runs->prev = r;
    s->runs = r;
    run_set_state(s, r, RUN_QUEUED);
    run_try_start(s, r);
}

static struct sti *ti_by_id(struct srun *r, const char *task_id)
{
    const struct dag_task *t = dag_task_find(r->dag, task_id);
    return t ? &r->tis[t->index] : NULL;
}

int sched_clear(struct sched *s, int64_t run_pk, const char *const *task_ids, size_t n,
                bool downstream, struct kiln_err *err)
{
    struct srun *r;
    int rc = load_run(s, run_pk, true, &r, err);
    if (rc < 0)
        return rc;
    size_t nt = r->dag->n_tasks;
    char *sel = xcalloc(nt ? nt : 1, 1);
    uint32_t *stack = xcalloc(nt ? nt : 1, sizeof *stack);
    size_t sp = 0;
    for (size_t i = 0; i < n; i++) {
        struct sti *ti = ti_by_id(r, task_ids[i]);
        if (!ti) {
            rc = kiln_err_set(err, KILN_ENOTFOUND, "run %s has no task '%s'", r->run_id,
                              task_ids[i]);
            goto out;
        }
        if (!sel[ti->idx]) {
            sel[ti->idx] = 1;
            stack[sp++] = ti->idx;
        }
    }
    while (downstream && sp > 0) {
        const struct dag_task *t = &r->dag->tasks[stack[--sp]];
        for (size_t j = 0; j < t->n_down; j++)
            if (!sel[t->down[j]]) {
                sel[t->down[j]] = 1;
                stack[sp++] = t->down[j];
            }
    }
    for (size_t i = 0; i < nt; i++)
        if (sel[i] && (r->tis[i].state == TI_RUNNING || r->tis[i].state == TI_QUEUED)) {
            rc = kiln_err_set(err, KILN_ESTATE,
                              "task '%s' is %s; mark it failed first or wait for it to end",
                              r->dag->tasks[i].id, ti_state_name(r->tis[i].state));
            goto out;
        }
    for (size_t i = 0; i < nt; i++) {
        if (!sel[i] || r->tis[i].state == TI_NONE)
            continue;
        struct sti *ti = &r->tis[i];
        /* Clearing grants the task its full retry budget again. */
        ti->max_tries = ti->try_number + r->dag->tasks[i].retries + 1;
        ti->infra_failures = 0;
        if ((rc = ti_user_set(s, ti, TI_NONE, NULL, err)) < 0)
            goto out;
    }
    recount(r);
    if (r->finished) {
        run_reopen(s, r);
    } else if (r->state == RUN_RUNNING) {
        for (size_t i = 0; i < nt; i++)
            if (sel[i])
                work_push(s, &r->tis[i]);
        drain_work(s);
    }
out:
    free(sel);
    free(stack);
    return rc;
}

int sched_mark(struct sched *s, int64_t run_pk, const char *task_id, enum ti_state to,
               const char *reason, struct kiln_err *err)
{
    struct srun *r;
    int rc = load_run(s, run_pk, true, &r, err);
    if (rc < 0)
        return rc;
    struct sti *ti = ti_by_id(r, task_id);
    if (!ti)
        return kiln_err_set(err, KILN_ENOTFOUND, "run %s has no task '%s'", r->run_id, task_id);
    if (to != TI_SUCCESS && to != TI_FAILED && to != TI_SKIPPED)
        return kiln_err_set(err, KILN_EINVALID, "a task can be marked success, failed or skipped");
    if (ti->state == to)
        return 0;
    if (ti->state == TI_RUNNING || ti->state == TI_QUEUED) {
        if (s->cfg.offline || !ti->ex)
            return kiln_err_set(err, KILN_ESTATE,
                                "task '%s' is %s; start the daemon (kiln serve) to stop it",
                                task_id, ti_state_name(ti->state));
        /* Stop the process.  Its try is closed now with the user's reason
         * and forgotten, so its exit, when it comes, decides nothing. */
        ti->ex->ops->cancel(ti->ex, ti->try_pk, s->cfg.kill_grace_ms);
        struct kiln_err e2 = { 0 };
        txn(s);
        if (store_exec(s->st, Q_try_finished, NULL, NULL, &e2, "isiiosos", ti->try_pk, "failed",
                       now_us(), (int64_t)-1, (int64_t)0, reason, (int64_t)0,
                       (const char *)NULL) < 0)
            LOG_E("store: %s", e2.msg);
        release_slots(s, ti);
        try_forget(s, ti);
    }
    if ((rc = ti_user_set(s, ti, to, reason, err)) < 0)
        return rc;
    recount(r);
    if (r->finished) {
        run_set_state(s, r, run_outcome(r));
    } else if (r->state == RUN_RUNNING) {
        const struct dag_task *t = ti_task(ti);
        for (size_t j = 0; j < t->n_down; j++)
            work_push(s, &r->tis[t->down[j]]);
        drain_work(s);
        run_maybe_finish(s, r);
    }
    return 0;
}

int sched_cancel_run(struct sched *s, int64_t run_pk, const char *reason, struct kiln_err *err)
{
    struct srun *r;
    int rc = load_run(s, run_pk, true, &r, err);
    if (rc < 0)
        return rc;
    if (r->finished)
        return kiln_err_set(err, KILN_ESTATE, "run %s is already %s", r->run_id,
                            run_state_name(r->state));
    /* Tasks that have not started are skipped first, so that failing the
     * running ones does not turn them into upstream_failed. */
    r->cancelled = true;
    for (int pass = 0; pass < 2 && !r->finished; pass++) {
        for (size_t i = 0; i < r->dag->n_tasks && !r->finished; i++) {
            struct sti *ti = &r->tis[i];
            bool in_flight = ti->state == TI_RUNNING || ti->state == TI_QUEUED;
            if (ti_state_terminal(ti->state) || in_flight != (pass == 1))
                continue;
            rc = sched_mark(s, run_pk, r->dag->tasks[i].id, in_flight ? TI_FAILED : TI_SKIPPED,
                            reason, err);
            if (rc < 0)
                return rc;
        }
    }
    if (r->state == RUN_QUEUED) {
        sd_dequeue_run(r->sd, r);
        recount(r);
        run_set_state(s, r, RUN_FAILED);
        run_retire(s, r);
    }
    return 0;
}

int sched_set_paused(struct sched *s, const char *dag_id, bool paused, struct kiln_err *err)
{
    txn(s);
    int rc = store_exec(s->st, Q_dag_set_paused, NULL, NULL, err, "sii", dag_id,
                        (int64_t)paused, now_us());
    if (rc < 0)
        return rc;
    if (store_changes(s->st) == 0)
        return kiln_err_set(err, KILN_ENOTFOUND, "no DAG '%s'", dag_id);
    struct sdag *sd = sdag_get(s, dag_id);
    sd->paused = paused;
    if (!paused) {
        sd_release_parked(s, &sd->parked, -1);
        sd_start_queued(s, sd);
    }
    mark_dirty(s);
    return 0;
}

/* ---- life cycle --------------------------------------------------------- */

int sched_new(struct sched **out, uv_loop_t *loop, struct store *st,
              const struct sched_config *cfg, struct kiln_err *err)
{
    struct sched *s = xcalloc(1, sizeof *s);
    s->loop = loop;
    s->st = st;
    s->cfg = *cfg;
    if (s->cfg.parallelism <= 0)
        s->cfg.parallelism = 32;
    if (s->cfg.kill_grace_ms <= 0)
        s->cfg.kill_grace_ms = 5000;
    if (s->cfg.infra_retry_delay_ms <= 0)
        s->cfg.infra_retry_delay_ms = 10000;
    if (s->cfg.infra_retries == 0)
        s->cfg.infra_retries = 3;
    else if (s->cfg.infra_retries < 0)
        s->cfg.infra_retries = 0;
    s->home = xstrdup(cfg->home);
    s->cfg.home = s->home;
    base_env_init(s);
    heap_init(&s->ready, ready_before, HP_READY);
    heap_init(&s->timers, timer_before, HP_TIMER);
    bool have_default = false;
    s->pools = xcalloc(cfg->n_pools + 1, sizeof *s->pools);
    for (size_t i = 0; i < cfg->n_pools; i++) {
        s->pools[i].name = xstrdup(cfg->pools[i].name);
        s->pools[i].slots = cfg->pools[i].slots;
        heap_init(&s->pools[i].parked, ready_before, HP_READY);
        if (strcmp(cfg->pools[i].name, DAG_DEFAULT_POOL) == 0)
            have_default = true;
    }
    s->n_pools = cfg->n_pools;
    if (!have_default) {
        /* Airflow's default_pool has 128 slots. */
        s->pools[s->n_pools].name = xstrdup(DAG_DEFAULT_POOL);
        s->pools[s->n_pools].slots = 128;
        heap_init(&s->pools[s->n_pools].parked, ready_before, HP_READY);
        s->n_pools++;
    }
    if (!cfg->offline) {
        uv_prepare_init(loop, &s->prepare);
        uv_prepare_start(&s->prepare, on_prepare);
        uv_idle_init(loop, &s->idle);
        uv_timer_init(loop, &s->timer);
        /* The prepare handle alone must not keep the loop alive. */
        uv_unref((uv_handle_t *)&s->prepare);
        s->handles_open = 3;
    }
    *out = s;
    return 0;
}

void sched_add_executor(struct sched *s, const char *name, struct executor *ex)
{
    s->execs = xrealloc(s->execs, (s->n_execs + 1) * sizeof *s->execs);
    s->execs[s->n_execs].name = xstrdup(name);
    s->execs[s->n_execs].ex = ex;
    s->n_execs++;
    ex->on_started = on_started;
    ex->on_done = on_done;
    ex->cb_arg = s;
}

int sched_set_pool_slots(struct sched *s, const char *name, int slots)
{
    struct spool *p = pool_get(s, name);
    if (!p || slots < 0)
        return KILN_ENOTFOUND;
    int grown = slots - p->slots;
    p->slots = slots;
    if (grown > 0)
        sd_release_parked(s, &p->parked, grown);
    mark_dirty(s);
    return 0;
}

void sched_set_observer(struct sched *s, sched_event_cb cb, void *arg)
{
    s->observer = cb;
    s->observer_arg = arg;
}

bool sched_run_finished(struct sched *s, int64_t run_pk, enum run_state *state)
{
    for (struct srun *r = s->runs; r; r = r->next)
        if (r->pk == run_pk)
            return false;
    struct run_row rr = { 0 };
    struct kiln_err err = { 0 };
    store_exec(s->st, Q_run_get, run_row_cb, &rr, &err, "i", run_pk);
    bool done = false;
    if (rr.found) {
        int st = run_state_parse(rr.state);
        done = st >= 0 && run_state_terminal((enum run_state)st);
        if (state && st >= 0)
            *state = (enum run_state)st;
    }
    free(rr.dag_id);
    free(rr.run_id);
    free(rr.state);
    free(rr.params);
    return done;
}

void sched_get_stats(const struct sched *s, struct sched_stats *out)
{
    *out = s->stats;
    out->running = s->running;
}

static void on_handle_closed(uv_handle_t *h)
{
    struct sched *s = h->data;
    if (--s->handles_open == 0 && s->close_done)
        s->close_done(s->close_arg);
}

void sched_close(struct sched *s, void (*done)(void *arg), void *arg)
{
    struct kiln_err err = { 0 };
    if (store_in_txn(s->st) && store_txn_commit(s->st, &err) < 0)
        LOG_E("final commit failed: %s", err.msg);
    s->closing = true;
    s->close_done = done;
    s->close_arg = arg;
    if (s->cfg.offline || s->handles_open == 0) {
        if (done)
            done(arg);
        return;
    }
    s->prepare.data = s->idle.data = s->timer.data = s;
    uv_close((uv_handle_t *)&s->prepare, on_handle_closed);
    uv_close((uv_handle_t *)&s->idle, on_handle_closed);
    uv_close((uv_handle_t *)&s->timer, on_handle_closed);
}

void sched_free(struct sched *s)
{
    if (!s)
        return;
    free_finished(s);
    free(s->finished);
    while (s->runs) {
        struct srun *r = s->runs;
        run_unlink(s, r);
        run_free(r);
    }
    for (size_t i = 0; i < s->n_dags; i++) {
        free(s->dags[i]->dag_id);
        free(s->dags[i]->parked.v);
        free(s->dags[i]);
    }
    free(s->dags);
    for (size_t i = 0; i < s->n_pools; i++) {
        free(s->pools[i].name);
        free(s->pools[i].parked.v);
    }
    free(s->pools);
    for (size_t i = 0; i < s->n_versions; i++)
        dag_free(s->versions[i].dag);
    free(s->versions);
    for (size_t i = 0; i < s->n_execs; i++)
        free(s->execs[i].name);
    free(s->execs);
    free(s->ready.v);
    free(s->timers.v);
    free(s->tries.keys);
    free(s->tries.vals);
    free(s->work);
    free(s->base_env);
    free(s->starts);
    free(s->home);
    free(s);
}
