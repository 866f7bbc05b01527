/* The scheduler against a real SQLite file and a scripted in-memory
 * executor: ordering, trigger-rule propagation, retries, skips, limits,
 * priorities, max_active_runs, user actions, and recovery after a restart. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "cmd.h"
#include "scheduler.h"
#include "util.h"

/* ---- the scripted executor ---------------------------------------------- */

struct job {
    int64_t try_id;
    char task[64];
    int try_number;
    int turns;
    int signal;
};

struct fake {
    struct executor base;
    uv_timer_t tick;
    struct job jobs[256];
    int n;
    int inflight, max_inflight;
    int starts, adopts;
    bool hold;                         /* never complete (simulates a crash mid-run) */
    int infra_tries;                   /* tries up to this number end as infrastructure failures */
    int (*exit_code)(const char *task, int try_number);
    char order[4096];
};

static int exit_ok(const char *task, int try_number)
{
    return 0;
}

static void fake_tick(uv_timer_t *h)
{
    struct fake *f = container_of(h, struct fake, tick);
    if (f->hold)
        return;
    for (int i = 0; i < f->n; i++) {
        struct job *j = &f->jobs[i];
        if (--j->turns > 0)
            continue;
        struct exec_result res = { .try_id = j->try_id, .start_us = now_us(),
                                   .end_us = now_us() };
        res.term_signal = j->signal;
        res.exit_code = j->signal ? 0 : f->exit_code(j->task, j->try_number);
        if (j->try_number <= f->infra_tries) {
            res.exit_code = -1;
            res.lost = true;
            res.infra = true;
        }
        f->jobs[i] = f->jobs[--f->n];
        i--;
        f->inflight--;
        f->base.on_done(f->base.cb_arg, &res);
    }
}

static int fake_start(struct executor *ex, const struct exec_spec *spec, struct kiln_err *err)
{
    struct fake *f = (struct fake *)ex;
    struct job *j = &f->jobs[f->n++];
    memset(j, 0, sizeof *j);
    j->try_id = spec->try_id;
    snprintf(j->task, sizeof j->task, "%s", spec->task_id);
    j->try_number = spec->try_number;
    j->turns = 3;
    f->starts++;
    if (++f->inflight > f->max_inflight)
        f->max_inflight = f->inflight;
    snprintf(f->order + strlen(f->order), sizeof f->order - strlen(f->order), "%s%s",
             f->order[0] ? " " : "", spec->task_id);
    f->base.on_started(f->base.cb_arg, spec->try_id, "fake", now_us());
    return 0;
}

static int fake_cancel(struct executor *ex, int64_t try_id, int64_t grace_ms)
{
    struct fake *f = (struct fake *)ex;
    for (int i = 0; i < f->n; i++)
        if (f->jobs[i].try_id == try_id) {
            f->jobs[i].signal = 15;
            f->jobs[i].turns = 1;
        }
    return 0;
}

static int fake_adopt(struct executor *ex, const struct exec_spec *spec, const char *id,
                      struct kiln_err *err)
{
    struct fake *f = (struct fake *)ex;
    f->adopts++;
    struct job *j = &f->jobs[f->n++];
    memset(j, 0, sizeof *j);
    j->try_id = spec->try_id;
    snprintf(j->task, sizeof j->task, "%s", spec->task_id);
    j->try_number = spec->try_number;
    j->turns = 2;
    f->inflight++;
    return 0;
}

static void fake_close(struct executor *ex, void (*done)(struct executor *))
{
    uv_close((uv_handle_t *)&((struct fake *)ex)->tick, NULL);
}

static const struct executor_ops fake_ops = {
    .name = "local", .start = fake_start, .cancel = fake_cancel, .adopt = fake_adopt,
    .close = fake_close,
};

/* ---- fixture ------------------------------------------------------------- */

struct fx {
    char dir[64];
    uv_loop_t loop;
    struct store *st;
    struct sched *s;
    struct fake fake;
    uv_timer_t guard;
    int runs_done;
    int runs_wanted;
    char last_run_state[16];
    const char *stop_on_task_state;    /* uv_stop when a task enters this state */
};

/* Settings the next fx_open gives the scheduler (0: its defaults). */
static int fx_infra_retries;
static int64_t fx_infra_retry_delay_ms;

static void on_event(void *arg, const struct sched_event *ev)
{
    struct fx *x = arg;
    if (ev->task_id && x->stop_on_task_state && strcmp(ev->state, x->stop_on_task_state) == 0)
        uv_stop(&x->loop);
    if (ev->task_id == NULL &&
        (strcmp(ev->state, "success") == 0 || strcmp(ev->state, "failed") == 0)) {
        snprintf(x->last_run_state, sizeof x->last_run_state, "%s", ev->state);
        if (++x->runs_done >= x->runs_wanted)
            uv_stop(&x->loop);
    }
}

static void on_guard(uv_timer_t *h)
{
    uv_stop(h->loop);
}

static void fx_open(struct fx *x, int parallelism, const struct sched_pool *pools, size_t np)
{
    struct kiln_err err = { 0 };
    char db[128];
    snprintf(db, sizeof db, "%s/kiln.db", x->dir);
    assert_int_equal(store_open(&x->st, db, &err), 0);
    struct sched_config sc = { .home = x->dir, .parallelism = parallelism, .pools = pools,
                               .n_pools = np, .infra_retries = fx_infra_retries,
                               .infra_retry_delay_ms = fx_infra_retry_delay_ms };
    assert_int_equal(sched_new(&x->s, &x->loop, x->st, &sc, &err), 0);
    memset(&x->fake, 0, sizeof x->fake);
    x->fake.base.ops = &fake_ops;
    x->fake.base.loop = &x->loop;
    x->fake.exit_code = exit_ok;
    uv_timer_init(&x->loop, &x->fake.tick);
    uv_timer_start(&x->fake.tick, fake_tick, 1, 1);
    sched_add_executor(x->s, "local", &x->fake.base);
    sched_set_observer(x->s, on_event, x);
}

static struct fx *fx_new(int parallelism, const struct sched_pool *pools, size_t np)
{
    struct fx *x = xcalloc(1, sizeof *x);
    snprintf(x->dir, sizeof x->dir, "/tmp/kiln-sched-XXXXXX");
    assert_non_null(mkdtemp(x->dir));
    uv_loop_init(&x->loop);
    uv_timer_init(&x->loop, &x->guard);
    fx_open(x, parallelism, pools, np);
    return x;
}

static void on_sched_closed(void *arg)
{
    *(bool *)arg = true;
}

static void fx_close_sched(struct fx *x)
{
    bool closed = false;
    fake_close(&x->fake.base, NULL);
    sched_close(x->s, on_sched_closed, &closed);
    while (!closed)
        uv_run(&x->loop, UV_RUN_ONCE);
    sched_free(x->s);
    store_close(x->st);
    x->s = NULL;
    x->st = NULL;
}

static void fx_free(struct fx *x)
{
    if (x->s)
        fx_close_sched(x);
    uv_close((uv_handle_t *)&x->guard, NULL);
    uv_run(&x->loop, UV_RUN_DEFAULT);
    uv_loop_close(&x->loop);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", x->dir);
    assert_int_equal(system(cmd), 0);
    free(x);
}

static int64_t trigger(struct fx *x, const char *yaml)
{
    char path[128];
    snprintf(path, sizeof path, "%s/dag.yaml", x->dir);
    assert_int_equal(file_write_atomic(path, yaml, strlen(yaml), 0644), 0);
    struct cmd_ctx c = { .st = x->st, .sched = x->s, .dags_dir = x->dir, .home = x->dir,
                         .actor = "test" };
    char body[256], *result = NULL;
    snprintf(body, sizeof body, "{\"op\":\"trigger\",\"file\":\"%s\"}", path);
    struct kiln_err err = { 0 };
    if (cmd_apply(&c, body, &result, &err) < 0)
        fail_msg("trigger: %s", err.msg);
    char *p = strstr(result, "\"run\":");
    assert_non_null(p);
    int64_t pk = strtoll(p + 6, NULL, 10);
    free(result);
    return pk;
}

static void run_until_done(struct fx *x, int runs)
{
    x->runs_wanted = runs;
    uv_timer_start(&x->guard, on_guard, 10000, 0);
    uv_run(&x->loop, UV_RUN_DEFAULT);
    uv_timer_stop(&x->guard);
    assert_int_equal(x->runs_done, runs);
    struct kiln_err err = { 0 };
    assert_int_equal(sched_flush(x->s, &err), 0);
}

/* Runs a query written for this test on the store (read-only checks). */
static void query(struct fx *x, const char *sql, char *out, size_t n)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "sqlite3 %s/kiln.db \"%s\"", x->dir, sql);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t got = fread(out, 1, n - 1, p);
    out[got] = '\0';
    while (got > 0 && out[got - 1] == '\n')
        out[--got] = '\0';
    for (char *c = out; *c; c++)
        if (*c == '\n')
            *c = ' ';
    pclose(p);
}

#define TI_STATES "select task_id || '=' || state from task_instances order by task_index"

/* ---- tests -------------------------------------------------------------- */

static void test_diamond(void **state)
{
    struct fx *x = fx_new(8, NULL, 0);
    trigger(x, "dag: diamond\ntasks:\n  a: {command: [x]}\n  b: {deps: [a], command: [x]}\n"
               "  c: {deps: [a], command: [x]}\n  d: {deps: [b, c], command: [x]}\n");
    run_until_done(x, 1);
    assert_string_equal(x->last_run_state, "success");
    assert_true(strcmp(x->fake.order, "a b c d") == 0 || strcmp(x->fake.order, "a c b d") == 0);
    assert_int_equal(x->fake.max_inflight, 2); /* b and c together */
    char out[512];
    fx_close_sched(x);
    query(x, TI_STATES, out, sizeof out);
    assert_string_equal(out, "a=success b=success c=success d=success");
    query(x, "select state from runs", out, sizeof out);
    assert_string_equal(out, "success");
    fx_free(x);
}

static int fail_a(const char *task, int try_number)
{
    return strcmp(task, "a") == 0 ? 1 : 0;
}

static void test_upstream_failed(void **state)
{
    struct fx *x = fx_new(8, NULL, 0);
    x->fake.exit_code = fail_a;
    trigger(x, "dag: f\ntasks:\n  a: {command: [x]}\n  b: {deps: [a], command: [x]}\n"
               "  c: {deps: [b], command: [x]}\n"
               "  cleanup: {deps: [a], trigger_rule: all_done, command: [x]}\n"
               "  alert: {deps: [a], trigger_rule: one_failed, command: [x]}\n");
    run_until_done(x, 1);
    assert_string_equal(x->last_run_state, "failed");
    char out[512];
    fx_close_sched(x);
    query(x, TI_STATES, out, sizeof out);
    assert_string_equal(out, "a=failed b=upstream_failed c=upstream_failed cleanup=success "
                             "alert=success");
    query(x, "select reason from task_instances where task_id='a'", out, sizeof out);
    assert_string_equal(out, "exited with code 1");
    fx_free(x);
}

static int flaky(const char *task, int try_number)
{
    return try_number < 3 ? 2 : 0;
}

static void test_retries(void **state)
{
    struct fx *x = fx_new(8, NULL, 0);
    x->fake.exit_code = flaky;
    trigger(x, "dag: r\ntasks:\n  t: {retries: 3, retry_delay: 30ms, "
               "retry_exponential_backoff: true, command: [x]}\n");
    run_until_done(x, 1);
    assert_string_equal(x->last_run_state, "success");
    assert_int_equal(x->fake.starts, 3);
    char out[512];
    fx_close_sched(x);
    query(x, "select state || ':' || exit_code from tries order by try_number", out, sizeof out);
    assert_string_equal(out, "failed:2 failed:2 success:0");
    /* The waits before tries 2 and 3: at least 30 ms, then at least 60 ms. */
    query(x, "select (b.queued_us - a.end_us) / 1000 from tries a join tries b on "
             "b.try_number = a.try_number + 1 order by a.try_number", out, sizeof out);
    int w1 = 0, w2 = 0;
    assert_int_equal(sscanf(out, "%d %d", &w1, &w2), 2);
    assert_true(w1 >= 30);
    assert_true(w2 >= 60);
    query(x, "select try_number || '/' || max_tries from task_instances", out, sizeof out);
    assert_string_equal(out, "3/4");
    fx_free(x);
}

static int skip_first(const char *task, int try_number)
{
    return strcmp(task, "check") == 0 ? 99 : 0;
}

static void test_skip(void **state)
{
    struct fx *x = fx_new(8, NULL, 0);
    x->fake.exit_code = skip_first;
    trigger(x, "dag: s\ntasks:\n  check: {command: [x]}\n  work: {deps: [check], command: [x]}\n"
               "  report: {deps: [work], trigger_rule: none_failed, command: [x]}\n");
    run_until_done(x, 1);
    assert_string_equal(x->last_run_state, "success");
    char out[512];
    fx_close_sched(x);
    query(x, TI_STATES, out, sizeof out);
    assert_string_equal(out, "check=skipped work=skipped report=success");
    fx_free(x);
}

static void gen_wide(char *buf, size_t n, const char *extra, int count)
{
    size_t off = (size_t)snprintf(buf, n, "dag: wide\nmax_active_tasks: 100\ntasks:\n");
    for (int i = 0; i < count; i++)
        off += (size_t)snprintf(buf + off, n - off, "  t%02d: {command: [x]%s}\n", i, extra);
}

static void test_parallelism(void **state)
{
    struct fx *x = fx_new(2, NULL, 0);
    char yaml[4096];
    gen_wide(yaml, sizeof yaml, "", 10);
    trigger(x, yaml);
    run_until_done(x, 1);
    assert_int_equal(x->fake.starts, 10);
    assert_int_equal(x->fake.max_inflight, 2);
    fx_free(x);
}

static void test_pool(void **state)
{
    const struct sched_pool pools[] = { { "db", 1 } };
    struct fx *x = fx_new(10, pools, 1);
    char yaml[4096];
    gen_wide(yaml, sizeof yaml, ", pool: db", 5);
    trigger(x, yaml);
    run_until_done(x, 1);
    assert_int_equal(x->fake.starts, 5);
    assert_int_equal(x->fake.max_inflight, 1);
    fx_free(x);
}

static void test_max_active_tasks(void **state)
{
    struct fx *x = fx_new(10, NULL, 0);
    trigger(x, "dag: m\nmax_active_tasks: 3\ntasks:\n  a: {command: [x]}\n  b: {command: [x]}\n"
               "  c: {command: [x]}\n  d: {command: [x]}\n  e: {command: [x]}\n");
    run_until_done(x, 1);
    assert_int_equal(x->fake.max_inflight, 3);
    fx_free(x);
}

static void test_priority(void **state)
{
    struct fx *x = fx_new(1, NULL, 0);
    trigger(x, "dag: p\ntasks:\n  low: {priority_weight: 1, command: [x]}\n"
               "  high: {priority_weight: 9, command: [x]}\n"
               "  mid: {priority_weight: 5, command: [x]}\n"
               "  mid2: {priority_weight: 5, command: [x]}\n");
    run_until_done(x, 1);
    /* Equal weights keep their order of becoming ready. */
    assert_string_equal(x->fake.order, "high mid mid2 low");
    fx_free(x);
}

static void test_max_active_runs(void **state)
{
    struct fx *x = fx_new(10, NULL, 0);
    const char *yaml = "dag: mar\nmax_active_runs: 1\ntasks:\n  a: {command: [x]}\n"
                       "  b: {deps: [a], command: [x]}\n";
    int64_t r1 = trigger(x, yaml), r2 = trigger(x, yaml);
    assert_true(r2 > r1);
    run_until_done(x, 2);
    assert_string_equal(x->fake.order, "a b a b");
    char out[256];
    fx_close_sched(x);
    /* The second run started only after the first one ended. */
    query(x, "select (select start_us from runs where id=2) >= (select end_us from runs where id=1)",
          out, sizeof out);
    assert_string_equal(out, "1");
    fx_free(x);
}

/* Backfill runs queue apart under their own limit: with --max-active 1 they
 * never overlap, and a manual run of the same DAG does not wait behind
 * them (max_active_runs counts only the DAG's other runs). */
static void test_backfill_queue(void **state)
{
    struct fx *x = fx_new(10, NULL, 0);
    const char *yaml = "dag: bf\nschedule: '@daily'\nmax_active_runs: 1\ntasks:\n"
                       "  a: {command: [x]}\n  b: {deps: [a], command: [x]}\n";
    char path[128];
    snprintf(path, sizeof path, "%s/bf.yaml", x->dir);
    assert_int_equal(file_write_atomic(path, yaml, strlen(yaml), 0644), 0);
    struct cmd_ctx c = { .st = x->st, .sched = x->s, .dags_dir = x->dir, .home = x->dir,
                         .actor = "test" };
    char *result = NULL;
    struct kiln_err err = { 0 };
    if (cmd_apply(&c, "{\"op\":\"backfill\",\"dag\":\"bf\",\"from\":\"2026-01-01\","
                      "\"to\":\"2026-01-03\",\"max_active\":1}", &result, &err) < 0)
        fail_msg("backfill: %s", err.msg);
    assert_non_null(strstr(result, "\"created\":3"));
    free(result);
    /* The same range again creates nothing. */
    if (cmd_apply(&c, "{\"op\":\"backfill\",\"dag\":\"bf\",\"from\":\"2026-01-01\","
                      "\"to\":\"2026-01-03\"}", &result, &err) < 0)
        fail_msg("backfill: %s", err.msg);
    assert_non_null(strstr(result, "\"created\":0,\"skipped\":3"));
    free(result);
    if (cmd_apply(&c, "{\"op\":\"trigger\",\"dag\":\"bf\"}", &result, &err) < 0)
        fail_msg("trigger: %s", err.msg);
    free(result);
    run_until_done(x, 4);
    char out[512];
    fx_close_sched(x);
    query(x, "select run_id || '/' || datetime(logical_us/1000000, 'unixepoch') || '/' || "
             "datetime(data_interval_end_us/1000000, 'unixepoch') from runs "
             "where run_type='backfill' order by id", out, sizeof out);
    assert_string_equal(out, "backfill__2026-01-01T00:00:00+00:00/2026-01-01 00:00:00/"
                             "2026-01-02 00:00:00 "
                             "backfill__2026-01-02T00:00:00+00:00/2026-01-02 00:00:00/"
                             "2026-01-03 00:00:00 "
                             "backfill__2026-01-03T00:00:00+00:00/2026-01-03 00:00:00/"
                             "2026-01-04 00:00:00");
    /* Backfill runs one at a time, in order. */
    query(x, "select count(*) from runs a join runs b on a.id < b.id "
             "where a.run_type='backfill' and b.run_type='backfill' and b.start_us < a.end_us",
          out, sizeof out);
    assert_string_equal(out, "0");
    /* The manual run started before the second backfill run ended. */
    query(x, "select (select start_us from runs where run_type='manual') < "
             "(select end_us from runs where id=2)", out, sizeof out);
    assert_string_equal(out, "1");
    query(x, "select group_concat(state) from runs", out, sizeof out);
    assert_string_equal(out, "success,success,success,success");
    fx_free(x);
}

static void test_clear_and_mark(void **state)
{
    struct fx *x = fx_new(8, NULL, 0);
    x->fake.exit_code = fail_a;
    int64_t pk = trigger(x, "dag: cm\ntasks:\n  a: {command: [x]}\n  b: {deps: [a], command: [x]}\n");
    run_until_done(x, 1);
    assert_string_equal(x->last_run_state, "failed");
    /* Clear a and its downstream; this time a succeeds. */
    x->fake.exit_code = exit_ok;
    struct kiln_err err = { 0 };
    const char *ids[] = { "a" };
    assert_int_equal(sched_clear(x->s, pk, ids, 1, true, &err), 0);
    x->runs_done = 0;
    run_until_done(x, 1);
    assert_string_equal(x->last_run_state, "success");
    /* Mark b failed: the finished run becomes failed. */
    assert_int_equal(sched_mark(x->s, pk, "b", TI_FAILED, "by test", &err), 0);
    assert_int_equal(sched_flush(x->s, &err), 0);
    assert_int_equal(sched_mark(x->s, pk, "nope", TI_FAILED, "by test", &err), KILN_ENOTFOUND);
    char out[256];
    fx_close_sched(x);
    query(x, "select task_id || '=' || state || ':' || try_number from task_instances "
             "order by task_index", out, sizeof out);
    assert_string_equal(out, "a=success:2 b=failed:1");
    query(x, "select state from runs", out, sizeof out);
    assert_string_equal(out, "failed");
    fx_free(x);
}

static void test_recovery(void **state)
{
    struct fx *x = fx_new(8, NULL, 0);
    x->fake.hold = true;
    trigger(x, "dag: rec\ntasks:\n  a: {command: [x]}\n  b: {command: [x]}\n"
               "  c: {deps: [a, b], command: [x]}\n");
    /* Let a and b start, then "crash": the scheduler goes away mid-run. */
    uv_timer_start(&x->guard, on_guard, 50, 0);
    uv_run(&x->loop, UV_RUN_DEFAULT);
    assert_int_equal(x->fake.starts, 2);
    fx_close_sched(x);
    /* A new scheduler on the same database re-attaches instead of starting. */
    fx_open(x, 8, NULL, 0);
    struct kiln_err err = { 0 };
    assert_int_equal(sched_recover(x->s, &err), 0);
    run_until_done(x, 1);
    assert_string_equal(x->last_run_state, "success");
    assert_int_equal(x->fake.adopts, 2);       /* a and b adopted ... */
    assert_int_equal(x->fake.starts, 1);       /* ... and only c started */
    char out[256];
    fx_close_sched(x);
    query(x, "select count(*) from tries", out, sizeof out);
    assert_string_equal(out, "3");
    fx_free(x);
}

/* The infrastructure retry budget is kept in the database: a daemon that
 * restarts between infrastructure failures does not grant a fresh one. */
static void test_infra_budget_survives_restart(void **state)
{
    fx_infra_retries = 2;
    fx_infra_retry_delay_ms = 20;
    struct fx *x = fx_new(8, NULL, 0);
    x->fake.infra_tries = 100; /* every try: the pod is lost */
    x->stop_on_task_state = "up_for_retry";
    trigger(x, "dag: infra\ntasks:\n  t: {command: [x]}\n");
    uv_timer_start(&x->guard, on_guard, 10000, 0);
    uv_run(&x->loop, UV_RUN_DEFAULT); /* stops at the first infrastructure failure */
    uv_timer_stop(&x->guard);
    assert_int_equal(x->fake.starts, 1);
    fx_close_sched(x);
    char out[512];
    query(x, "select state || ' ' || try_number || '/' || max_tries || ' ' || infra_failures "
             "from task_instances", out, sizeof out);
    assert_string_equal(out, "up_for_retry 1/2 1");
    /* a new daemon on the same database */
    fx_open(x, 8, NULL, 0);
    x->fake.infra_tries = 100;
    x->stop_on_task_state = NULL;
    struct kiln_err err = { 0 };
    assert_int_equal(sched_recover(x->s, &err), 0);
    run_until_done(x, 1);
    assert_string_equal(x->last_run_state, "failed");
    fx_close_sched(x);
    /* 1 try + 2 infrastructure retries in all, not 2 more after the restart */
    query(x, "select count(*) from tries", out, sizeof out);
    assert_string_equal(out, "3");
    query(x, "select state || ' ' || try_number || '/' || max_tries || ' ' || infra_failures "
             "from task_instances", out, sizeof out);
    assert_string_equal(out, "failed 3/3 2");
    query(x, "select reason from tries where try_number = 2", out, sizeof out);
    assert_non_null(strstr(out, "infrastructure failure 2 of 2 allowed; retrying"));
    fx_infra_retries = 0;
    fx_infra_retry_delay_ms = 0;
    fx_free(x);
}

static void test_every_transition_persisted(void **state)
{
    struct fx *x = fx_new(4, NULL, 0);
    char yaml[4096];
    gen_wide(yaml, sizeof yaml, "", 20);
    trigger(x, yaml);
    run_until_done(x, 1);
    struct sched_stats st;
    sched_get_stats(x->s, &st);
    /* none -> scheduled -> queued -> running -> success: four per task. */
    assert_int_equal(st.transitions, 20 * 4);
    assert_int_equal(st.tries_started, 20);
    fx_free(x);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_diamond),          cmocka_unit_test(test_upstream_failed),
        cmocka_unit_test(test_retries),          cmocka_unit_test(test_skip),
        cmocka_unit_test(test_parallelism),      cmocka_unit_test(test_pool),
        cmocka_unit_test(test_max_active_tasks), cmocka_unit_test(test_priority),
        cmocka_unit_test(test_max_active_runs),  cmocka_unit_test(test_clear_and_mark),
        cmocka_unit_test(test_backfill_queue),
        cmocka_unit_test(test_recovery),
        cmocka_unit_test(test_infra_budget_survives_restart),         cmocka_unit_test(test_every_transition_persisted),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
