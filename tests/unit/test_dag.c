/* Unit tests for the DAG model: construction, validation, topological order,
 * large DAGs and the retry delay arithmetic. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "dag.h"
#include "util.h"

static struct dag_pos P(int line, int col)
{
    struct dag_pos p = {line, col};
    return p;
}

/* Adds task `id` at line `line`, column 3, depending on the comma-separated
 * ids in `deps` (each dep at column 20 of the same line). */
static struct dag_task *add(struct dag *d, const char *id, int line, const char *deps)
{
    struct dag_task *t = dag_add_task(d, id, P(line, 3));
    if (deps && *deps) {
        char *copy = xstrdup(deps), *save = NULL;
        int col = 20;
        for (char *s = strtok_r(copy, ",", &save); s; s = strtok_r(NULL, ",", &save)) {
            dag_task_add_dep(t, s, P(line, col));
            col += (int)strlen(s) + 2;
        }
        free(copy);
    }
    return t;
}

static size_t topo_pos(const struct dag *d, const char *id)
{
    const struct dag_task *t = dag_task_find(d, id);
    assert_non_null(t);
    for (size_t i = 0; i < d->n_tasks; i++)
        if (d->topo[i] == t->index)
            return i;
    fail_msg("task %s not in topo order", id);
    return 0;
}

static void test_defaults(void **state)
{
    (void)state;
    struct dag *d = dag_new("etl", "dags/etl.yaml");
    assert_string_equal(d->id, "etl");
    assert_string_equal(d->path, "dags/etl.yaml");
    assert_int_equal(d->max_active_runs, 16);
    assert_int_equal(d->max_active_tasks, 16);
    assert_false(d->catchup);
    assert_null(d->schedule);
    assert_null(d->hash);

    struct dag_task *t = add(d, "a", 1, NULL);
    assert_string_equal(t->id, "a");
    assert_int_equal(t->pos.line, 1);
    assert_int_equal(t->pos.col, 3);
    assert_int_equal(t->retries, 0);
    assert_int_equal(t->retry_delay_ms, 300000);
    assert_false(t->retry_exponential_backoff);
    assert_int_equal(t->max_retry_delay_ms, 0);
    assert_int_equal(t->timeout_ms, 0);
    assert_int_equal(t->trigger_rule, TR_ALL_SUCCESS);
    assert_int_equal(t->priority_weight, 1);
    assert_int_equal(t->pool_slots, 1);
    assert_int_equal(t->skip_exit_code, 99);
    assert_null(t->pool);
    assert_null(t->executor);

    struct kiln_err err = {0};
    assert_int_equal(dag_finalize(d, &err), 0);
    t = &d->tasks[0];
    assert_string_equal(t->pool, DAG_DEFAULT_POOL);
    assert_string_equal(t->executor, "local");
    assert_int_equal(t->n_up, 0);
    assert_int_equal(t->n_down, 0);
    assert_int_equal(d->topo[0], 0);
    dag_free(d);
}

static void test_diamond(void **state)
{
    (void)state;
    /* Written in an order that is not topological, with a repeated dep. */
    struct dag *d = dag_new("diamond", "d.yaml");
    add(d, "join", 1, "left,right,left");
    add(d, "left", 2, "root");
    add(d, "right", 3, "root");
    add(d, "root", 4, NULL);
    struct kiln_err err = {0};
    assert_int_equal(dag_finalize(d, &err), 0);
    assert_int_equal(err.code, 0);

    assert_true(topo_pos(d, "root") < topo_pos(d, "left"));
    assert_true(topo_pos(d, "root") < topo_pos(d, "right"));
    assert_true(topo_pos(d, "left") < topo_pos(d, "join"));
    assert_true(topo_pos(d, "right") < topo_pos(d, "join"));
    /* Ties go by file order. */
    assert_int_equal(d->topo[0], 3);
    assert_int_equal(d->topo[1], 1);
    assert_int_equal(d->topo[2], 2);
    assert_int_equal(d->topo[3], 0);

    const struct dag_task *join = dag_task_find(d, "join");
    assert_int_equal(join->index, 0);
    assert_int_equal(join->n_up, 2); /* the repeated dep counts once */
    assert_int_equal(join->up[0], 1);
    assert_int_equal(join->up[1], 2);
    assert_int_equal(join->n_down, 0);
    assert_int_equal(join->n_deps, 3); /* as written */

    const struct dag_task *root = dag_task_find(d, "root");
    assert_int_equal(root->n_up, 0);
    assert_int_equal(root->n_down, 2);
    assert_int_equal(root->down[0], 1);
    assert_int_equal(root->down[1], 2);

    const struct dag_task *left = dag_task_find(d, "left");
    assert_int_equal(left->n_up, 1);
    assert_int_equal(left->up[0], 3);
    assert_int_equal(left->n_down, 1);
    assert_int_equal(left->down[0], 0);

    assert_null(dag_task_find(d, "nope"));
    assert_null(dag_task_find(d, ""));
    dag_free(d);
}

static void test_find_before_finalize(void **state)
{
    (void)state;
    struct dag *d = dag_new("x", "x.yaml");
    add(d, "a", 1, NULL);
    add(d, "b", 2, NULL);
    assert_string_equal(dag_task_find(d, "b")->id, "b");
    assert_null(dag_task_find(d, "c"));
    dag_free(d);
}

static void test_finalize_twice(void **state)
{
    (void)state;
    struct dag *d = dag_new("x", "x.yaml");
    add(d, "a", 1, NULL);
    add(d, "b", 2, "a");
    struct kiln_err err = {0};
    assert_int_equal(dag_finalize(d, &err), 0);
    assert_int_equal(dag_finalize(d, &err), 0);
    assert_int_equal(d->tasks[0].n_down, 1);
    assert_int_equal(d->tasks[1].n_up, 1);
    dag_free(d);
}

static void expect_error(struct dag *d, int code, const char *msg)
{
    struct kiln_err err = {0};
    int rc = dag_finalize(d, &err);
    assert_int_equal(rc, code);
    assert_int_equal(err.code, code);
    assert_string_equal(err.msg, msg);
    dag_free(d);
}

static void test_duplicate_id(void **state)
{
    (void)state;
    struct dag *d = dag_new("etl", "dags/etl.yaml");
    add(d, "extract", 2, NULL);
    add(d, "load", 4, NULL);
    add(d, "transform", 8, "extract");
    add(d, "load", 12, "transform");
    expect_error(d, KILN_EINVALID,
                 "dags/etl.yaml:12:3: duplicate task id 'load' (first defined at 4:3)");
}

static void test_unknown_dep_hint(void **state)
{
    (void)state;
    struct dag *d = dag_new("etl", "dags/etl.yaml");
    add(d, "extract", 2, NULL);
    add(d, "load", 4, "extract,transfrom");
    add(d, "transform", 8, "extract");
    /* deps of line 4 start at column 20: "extract" (7) + 2 -> 29. */
    expect_error(d, KILN_EINVALID,
                 "dags/etl.yaml:4:29: task 'load' depends on unknown task 'transfrom' "
                 "(did you mean 'transform'?)");
}

static void test_unknown_dep_no_hint(void **state)
{
    (void)state;
    struct dag *d = dag_new("etl", "dags/etl.yaml");
    add(d, "extract", 2, NULL);
    add(d, "load", 4, "somethingelse");
    expect_error(d, KILN_EINVALID,
                 "dags/etl.yaml:4:20: task 'load' depends on unknown task 'somethingelse'");
}

static void test_self_dep(void **state)
{
    (void)state;
    struct dag *d = dag_new("etl", "dags/etl.yaml");
    add(d, "a", 2, NULL);
    add(d, "b", 5, "a,b");
    expect_error(d, KILN_ECYCLE, "dags/etl.yaml:5:3: dependency cycle: b -> b");
}

static void test_cycle3(void **state)
{
    (void)state;
    /* root -> a -> b -> c -> a, and d hangs below the cycle. The cycle is
     * printed from the task written first (a), in the direction work flows. */
    struct dag *d = dag_new("etl", "dags/etl.yaml");
    add(d, "root", 1, NULL);
    add(d, "d", 3, "c");
    add(d, "c", 5, "b");
    add(d, "a", 7, "root,c");
    add(d, "b", 9, "a");
    expect_error(d, KILN_ECYCLE, "dags/etl.yaml:5:3: dependency cycle: c -> a -> b -> c");
}

static void test_cycle_long_message(void **state)
{
    (void)state;
    /* A cycle through 100 tasks is shortened in the middle. */
    struct dag *d = dag_new("ring", "ring.yaml");
    char id[32], dep[32];
    for (int i = 0; i < 100; i++) {
        snprintf(id, sizeof id, "t%d", i);
        snprintf(dep, sizeof dep, "t%d", (i + 99) % 100);
        add(d, id, i + 1, dep);
    }
    expect_error(d, KILN_ECYCLE,
                 "ring.yaml:1:3: dependency cycle: t0 -> t1 -> t2 -> t3 -> t4 -> t5 -> "
                 "... (90 more) -> t96 -> t97 -> t98 -> t99 -> t0");
}

static double elapsed_ms(struct timespec a)
{
    struct timespec b;
    clock_gettime(CLOCK_MONOTONIC, &b);
    return (double)(b.tv_sec - a.tv_sec) * 1e3 + (double)(b.tv_nsec - a.tv_nsec) / 1e6;
}

static void test_long_chain(void **state)
{
    (void)state;
    /* Written from the end backwards, so any recursive walk would go 10,000
     * frames deep. */
    enum { N = 10000 };
    struct dag *d = dag_new("chain", "chain.yaml");
    char id[32], dep[32];
    for (int i = N - 1; i >= 0; i--) {
        snprintf(id, sizeof id, "t%05d", i);
        snprintf(dep, sizeof dep, "t%05d", i - 1);
        add(d, id, N - i, i > 0 ? dep : NULL);
    }
    struct kiln_err err = {0};
    assert_int_equal(dag_finalize(d, &err), 0);
    for (int i = 0; i < N; i++) {
        snprintf(id, sizeof id, "t%05d", i);
        assert_string_equal(d->tasks[d->topo[i]].id, id);
    }
    dag_free(d);

    /* The same chain closed into a ring: the cycle search must not recurse. */
    d = dag_new("ring", "ring.yaml");
    for (int i = 0; i < N; i++) {
        snprintf(id, sizeof id, "t%05d", i);
        snprintf(dep, sizeof dep, "t%05d", (i + N - 1) % N);
        add(d, id, i + 1, dep);
    }
    assert_int_equal(dag_finalize(d, &err), KILN_ECYCLE);
    assert_non_null(strstr(err.msg, "ring.yaml:1:3: dependency cycle: t00000 -> t00001 -> "));
    assert_non_null(strstr(err.msg, "... (9990 more) -> t09996 -> t09997 -> t09998 -> "
                                    "t09999 -> t00000"));
    dag_free(d);
}

static void test_layered_10000(void **state)
{
    (void)state;
    /* 100 layers of 100 tasks; each task depends on two tasks of the layer
     * above: 10,000 tasks and 19,800 edges. */
    enum { L = 100, W = 100 };
    struct dag *d = dag_new("layers", "layers.yaml");
    char id[32], deps[64];
    for (int l = 0; l < L; l++) {
        for (int w = 0; w < W; w++) {
            snprintf(id, sizeof id, "l%d_%d", l, w);
            if (l > 0)
                snprintf(deps, sizeof deps, "l%d_%d,l%d_%d", l - 1, w, l - 1, (w + 1) % W);
            add(d, id, l * W + w + 1, l > 0 ? deps : NULL);
        }
    }
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    struct kiln_err err = {0};
    assert_int_equal(dag_finalize(d, &err), 0);
    double ms = elapsed_ms(t0);
    /* A few ms natively; the bound leaves room for sanitizer builds. */
    print_message("finalize of %zu tasks: %.2f ms\n", d->n_tasks, ms);
    assert_true(ms < 500.0);

    size_t edges = 0;
    size_t *pos = xcalloc(d->n_tasks, sizeof *pos);
    for (size_t i = 0; i < d->n_tasks; i++)
        pos[d->topo[i]] = i;
    for (size_t i = 0; i < d->n_tasks; i++) {
        const struct dag_task *t = &d->tasks[i];
        edges += t->n_up;
        for (size_t k = 0; k < t->n_up; k++)
            assert_true(pos[t->up[k]] < pos[i]);
    }
    free(pos);
    assert_int_equal(edges, (L - 1) * W * 2);
    assert_int_equal(dag_task_find(d, "l0_0")->n_down, 2);
    assert_int_equal(dag_task_find(d, "l99_99")->n_up, 2);
    assert_int_equal(dag_task_find(d, "l57_3")->index, 57 * W + 3);
    dag_free(d);
}

static void test_retry_delay(void **state)
{
    (void)state;
    const int64_t MIN = 60000, H = 3600000, DAY = 24 * H;
    struct {
        int64_t delay, max;
        bool backoff;
        int next_try;
        int64_t want;
    } cases[] = {
        /* no backoff: always the delay */
        {30000, 0, false, 2, 30000},
        {30000, 0, false, 3, 30000},
        {30000, 0, false, 50, 30000},
        {30000, 1000, false, 5, 30000},
        {0, 0, false, 4, 0},
        /* backoff: doubles from the second retry */
        {30000, 0, true, 1, 30000},
        {30000, 0, true, 2, 30000},
        {30000, 0, true, 3, 60000},
        {30000, 0, true, 4, 120000},
        {30000, 0, true, 6, 480000},
        {5 * MIN, 0, true, 2, 5 * MIN},
        {5 * MIN, 0, true, 3, 10 * MIN},
        /* capped by max_retry_delay */
        {30000, 100000, true, 3, 60000},
        {30000, 100000, true, 4, 100000},
        {30000, 100000, true, 20, 100000},
        {10 * MIN, 5 * MIN, true, 2, 5 * MIN},
        /* capped by 24 h, also when max_retry_delay is longer */
        {H, 0, true, 6, 16 * H},
        {H, 0, true, 7, DAY},
        {H, 2 * DAY, true, 8, DAY},
        {3 * DAY, 0, true, 2, DAY},
        /* huge try numbers neither overflow nor loop for long */
        {1, 0, true, 64, DAY},
        {1, 0, true, 1000000, DAY},
        {30000, 0, true, 2147483647, DAY},
        {30000, 7 * MIN, true, 2147483647, 7 * MIN},
        {0, 0, true, 2147483647, 0},
        {INT64_MAX, 0, true, 2147483647, DAY},
        {INT64_MAX, 0, false, 3, INT64_MAX},
    };
    struct dag *d = dag_new("r", "r.yaml");
    struct dag_task *t = add(d, "t", 1, NULL);
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        t->retry_delay_ms = cases[i].delay;
        t->max_retry_delay_ms = cases[i].max;
        t->retry_exponential_backoff = cases[i].backoff;
        int64_t got = dag_retry_delay_ms(t, cases[i].next_try);
        if (got != cases[i].want)
            fail_msg("case %zu: got %lld, want %lld", i, (long long)got,
                     (long long)cases[i].want);
    }
    dag_free(d);
}

static void test_trigger_rules(void **state)
{
    (void)state;
    static const char *const names[] = {
        "all_success", "all_failed", "all_done", "all_skipped", "one_success", "one_failed",
        "one_done", "none_failed", "none_failed_min_one_success", "none_skipped", "always",
    };
    assert_int_equal(ARRAY_LEN(names), TR__COUNT);
    for (int i = 0; i < TR__COUNT; i++) {
        assert_string_equal(trigger_rule_name((enum trigger_rule)i), names[i]);
        assert_int_equal(trigger_rule_parse(names[i]), i);
    }
    assert_int_equal(trigger_rule_parse("all_sucess"), -1);
    assert_int_equal(trigger_rule_parse("ALL_SUCCESS"), -1);
    assert_int_equal(trigger_rule_parse(""), -1);
    assert_int_equal(trigger_rule_parse(NULL), -1);
    assert_int_equal(TR_ALL_SUCCESS, 0);
    assert_int_equal(trigger_rule_parse("always"), TR_ALWAYS);
}

static void test_empty_dag(void **state)
{
    (void)state;
    struct dag *d = dag_new("empty", "e.yaml");
    struct kiln_err err = {0};
    assert_int_equal(dag_finalize(d, &err), 0);
    assert_null(dag_task_find(d, "a"));
    dag_free(d);
    dag_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_diamond),
        cmocka_unit_test(test_find_before_finalize),
        cmocka_unit_test(test_finalize_twice),
        cmocka_unit_test(test_duplicate_id),
        cmocka_unit_test(test_unknown_dep_hint),
        cmocka_unit_test(test_unknown_dep_no_hint),
        cmocka_unit_test(test_self_dep),
        cmocka_unit_test(test_cycle3),
        cmocka_unit_test(test_cycle_long_message),
        cmocka_unit_test(test_long_chain),
        cmocka_unit_test(test_layered_10000),
        cmocka_unit_test(test_retry_delay),
        cmocka_unit_test(test_trigger_rules),
        cmocka_unit_test(test_empty_dag),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
