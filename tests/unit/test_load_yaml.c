/* Unit tests for the YAML loader and the DAG folder scan.  Error tests assert
 * the whole message, position included: the position is the feature. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "dag.h"
#include "dagdir.h"
#include "kube_spec.h"
#include "load_yaml.h"
#include "util.h"

#define PATH "dags/t.yaml"

static struct dag *load_ok(const char *yaml)
{
    struct dag *d = NULL;
    struct kiln_err err = {0};
    int rc = load_yaml_buf(PATH, yaml, strlen(yaml), &d, &err);
    if (rc != 0)
        fail_msg("unexpected error: %s", err.msg);
    assert_non_null(d);
    return d;
}

static void expect_err_code(const char *yaml, int code, const char *msg)
{
    struct dag *d = (struct dag *)1;
    struct kiln_err err = {0};
    int rc = load_yaml_buf(PATH, yaml, strlen(yaml), &d, &err);
    assert_null(d);
    assert_string_equal(err.msg, msg);
    assert_int_equal(rc, code);
    assert_int_equal(err.code, code);
}

static void expect_err(const char *yaml, const char *msg)
{
    expect_err_code(yaml, KILN_EINVALID, msg);
}

static const struct dag_task *task(const struct dag *d, const char *id)
{
    const struct dag_task *t = dag_task_find(d, id);
    if (t == NULL)
        fail_msg("no task %s", id);
    return t;
}

/* --- a full valid DAG ------------------------------------------------------- */

static const char full_yaml[] =
    "dag: churn\n"                                                               /* 1 */
    "description: Churn model, retrained nightly\n"                               /* 2 */
    "schedule: \"0 3 * * *\"\n"                                                   /* 3 */
    "timezone: Europe/Amsterdam\n"                                                /* 4 */
    "start_date: 2026-01-01\n"                                                    /* 5 */
    "catchup: Yes\n"                                                              /* 6 */
    "max_active_runs: 1\n"                                                        /* 7 */
    "max_active_tasks: 4\n"                                                       /* 8 */
    "params: {lr: 0.1, epochs: 20, name: \"churn model\"}\n"                      /* 9 */
    "default:\n"                                                                  /* 10 */
    "  retries: 2\n"                                                              /* 11 */
    "  retry_delay: 30s\n"                                                        /* 12 */
    "  timeout: 1h\n"                                                             /* 13 */
    "  executor: local\n"                                                         /* 14 */
    "  env: {STAGE: prod}\n"                                                      /* 15 */
    "tasks:\n"                                                                    /* 16 */
    "  prep:\n"                                                                   /* 17 */
    "    command: [kiln-clean, --in, data/raw.csv, --out, \"runs/{{ run_id }}/clean.bin\"]\n"
    "    cwd: /srv/data\n"                                                        /* 19 */
    "    pool: io\n"                                                              /* 20 */
    "    pool_slots: 2\n"                                                         /* 21 */
    "  train:\n"                                                                  /* 22 */
    "    deps: [prep]\n"                                                          /* 23 */
    "    command: [kiln-train, --lr, \"{{ params.lr }}\"]\n"                      /* 24 */
    "    executor: kubernetes\n"                                                  /* 25 */
    "    kubernetes: {image: \"kiln-tasks:latest\", gpu: 1, node_selector: {pool: gpu}}\n"
    "    retries: 5\n"                                                            /* 27 */
    "    retry_exponential_backoff: on\n"                                         /* 28 */
    "    max_retry_delay: 10m\n"                                                  /* 29 */
    "    priority_weight: -3\n"                                                   /* 30 */
    "    env: {CUDA_VISIBLE_DEVICES: \"0\", EMPTY: \"\"}\n"                       /* 31 */
    "  eval: {deps: train, command: [kiln-eval], trigger_rule: none_failed_min_one_success,"
    " timeout: 90, skip_exit_code: 42, description: scores the model}\n"         /* 32 */
    "  deploy:\n"                                                                 /* 33 */
    "    deps: [eval, eval, train]\n"                                             /* 34 */
    "    trigger_rule: all_success\n"                                             /* 35 */
    "    retry_delay: 1m30s\n"                                                    /* 36 */
    "    command:\n"                                                              /* 37 */
    "      - kiln-deploy\n"                                                       /* 38 */
    "      - --model\n"                                                           /* 39 */
    "      - 'runs/{{ run_id }}/model.bin'\n";                                    /* 40 */

static void assert_argv(const struct dag_task *t, const char *const *want, size_t n)
{
    assert_int_equal(t->argc, n);
    for (size_t i = 0; i < n; i++)
        assert_string_equal(t->argv[i], want[i]);
    assert_null(t->argv[n]);
}

static void test_full(void **state)
{
    (void)state;
    struct dag *d = load_ok(full_yaml);
    assert_string_equal(d->id, "churn");
    assert_string_equal(d->path, PATH);
    assert_null(d->hash);
    assert_string_equal(d->description, "Churn model, retrained nightly");
    assert_string_equal(d->schedule, "0 3 * * *");
    assert_string_equal(d->timezone, "Europe/Amsterdam");
    assert_string_equal(d->start_date, "2026-01-01");
    assert_true(d->catchup);
    assert_int_equal(d->max_active_runs, 1);
    assert_int_equal(d->max_active_tasks, 4);

    assert_int_equal(d->n_params, 3);
    assert_string_equal(d->params[0].key, "lr");
    assert_string_equal(d->params[0].value, "0.1");
    assert_int_equal(d->params[0].pos.line, 9);
    assert_int_equal(d->params[0].pos.col, 10);
    assert_string_equal(d->params[1].key, "epochs");
    assert_string_equal(d->params[1].value, "20");
    assert_string_equal(d->params[2].key, "name");
    assert_string_equal(d->params[2].value, "churn model");

    /* File order is kept. */
    assert_int_equal(d->n_tasks, 4);
    assert_string_equal(d->tasks[0].id, "prep");
    assert_string_equal(d->tasks[1].id, "train");
    assert_string_equal(d->tasks[2].id, "eval");
    assert_string_equal(d->tasks[3].id, "deploy");

    const struct dag_task *t = task(d, "prep");
    assert_int_equal(t->pos.line, 17);
    assert_int_equal(t->pos.col, 3);
    static const char *const prep_argv[] = {"kiln-clean", "--in", "data/raw.csv", "--out",
                                            "runs/{{ run_id }}/clean.bin"};
    assert_argv(t, prep_argv, ARRAY_LEN(prep_argv));
    assert_string_equal(t->cwd, "/srv/data");
    assert_string_equal(t->pool, "io");
    assert_int_equal(t->pool_slots, 2);
    assert_int_equal(t->retries, 2);                /* from default */
    assert_int_equal(t->retry_delay_ms, 30000);     /* from default */
    assert_int_equal(t->timeout_ms, 3600000);       /* from default */
    assert_string_equal(t->executor, "local");      /* from default */
    assert_int_equal(t->n_env, 1);                  /* from default */
    assert_string_equal(t->env[0].key, "STAGE");
    assert_string_equal(t->env[0].value, "prod");
    assert_int_equal(t->env[0].pos.line, 15);
    assert_int_equal(t->env[0].pos.col, 9);
    assert_false(t->retry_exponential_backoff);
    assert_int_equal(t->max_retry_delay_ms, 0);
    assert_int_equal(t->trigger_rule, TR_ALL_SUCCESS);
    assert_int_equal(t->priority_weight, 1);
    assert_int_equal(t->skip_exit_code, 99);
    assert_int_equal(t->n_deps, 0);
    assert_int_equal(t->n_up, 0);
    assert_int_equal(t->n_down, 1);

    t = task(d, "train");
    assert_int_equal(t->pos.line, 22);
    static const char *const train_argv[] = {"kiln-train", "--lr", "{{ params.lr }}"};
    assert_argv(t, train_argv, ARRAY_LEN(train_argv));
    assert_null(t->cwd);
    /* gpu: 1 on the kubernetes executor: the "gpu" pool, one slot per GPU */
    assert_string_equal(t->pool, "gpu");
    assert_int_equal(t->pool_slots, 1);
    assert_string_equal(t->executor, "kubernetes");
    assert_non_null(t->kube);
    assert_string_equal(t->kube->image, "kiln-tasks:latest");
    assert_int_equal(t->kube->gpu, 1);
    assert_int_equal(t->kube->n_node_selector, 1);
    assert_string_equal(t->kube->node_selector[0].value, "gpu");
    assert_null(task(d, "prep")->kube);
    assert_int_equal(t->retries, 5);
    assert_int_equal(t->retry_delay_ms, 30000);
    assert_true(t->retry_exponential_backoff);
    assert_int_equal(t->max_retry_delay_ms, 600000);
    assert_int_equal(t->priority_weight, -3);
    /* The task's env replaces the default's as a whole. */
    assert_int_equal(t->n_env, 2);
    assert_string_equal(t->env[0].key, "CUDA_VISIBLE_DEVICES");
    assert_string_equal(t->env[0].value, "0");
    assert_string_equal(t->env[1].key, "EMPTY");
    assert_string_equal(t->env[1].value, "");
    assert_int_equal(t->n_deps, 1);
    assert_string_equal(t->deps[0], "prep");
    assert_int_equal(t->dep_pos[0].line, 23);
    assert_int_equal(t->dep_pos[0].col, 12);

    t = task(d, "eval");
    assert_int_equal(t->pos.line, 32);
    assert_int_equal(t->pos.col, 3);
    assert_int_equal(t->n_deps, 1);
    assert_string_equal(t->deps[0], "train");
    assert_int_equal(t->dep_pos[0].line, 32);
    assert_int_equal(t->dep_pos[0].col, 16);
    assert_int_equal(t->trigger_rule, TR_NONE_FAILED_MIN_ONE_SUCCESS);
    assert_int_equal(t->timeout_ms, 90000);
    assert_int_equal(t->skip_exit_code, 42);
    assert_int_equal(t->retries, 2);

    t = task(d, "deploy");
    static const char *const deploy_argv[] = {"kiln-deploy", "--model",
                                              "runs/{{ run_id }}/model.bin"};
    assert_argv(t, deploy_argv, ARRAY_LEN(deploy_argv));
    assert_int_equal(t->retry_delay_ms, 90000);
    assert_int_equal(t->n_deps, 3);
    assert_int_equal(t->n_up, 2);
    assert_int_equal(t->up[0], 2);
    assert_int_equal(t->up[1], 1);
    assert_int_equal(t->n_down, 0);

    assert_int_equal(d->topo[0], 0);
    assert_int_equal(d->topo[1], 1);
    assert_int_equal(d->topo[2], 2);
    assert_int_equal(d->topo[3], 3);
    dag_free(d);
}

static void test_minimal_and_id_from_path(void **state)
{
    (void)state;
    static const char yaml[] = "tasks:\n  only: {command: [\"true\"]}\n";
    struct dag *d = NULL;
    struct kiln_err err = {0};
    assert_int_equal(load_yaml_buf("some/dir/nightly-etl.v2.yml", yaml, strlen(yaml), &d, &err),
                     0);
    assert_string_equal(d->id, "nightly-etl.v2");
    assert_string_equal(d->path, "some/dir/nightly-etl.v2.yml");
    assert_null(d->schedule);
    assert_null(d->description);
    assert_null(d->timezone);
    assert_null(d->start_date);
    assert_false(d->catchup);
    assert_int_equal(d->max_active_runs, 16);
    assert_int_equal(d->max_active_tasks, 16);
    assert_int_equal(d->n_params, 0);
    assert_int_equal(d->n_tasks, 1);
    const struct dag_task *t = &d->tasks[0];
    assert_string_equal(t->argv[0], "true");
    assert_int_equal(t->retries, 0);
    assert_int_equal(t->retry_delay_ms, 300000);
    assert_int_equal(t->skip_exit_code, 99);
    assert_string_equal(t->pool, "default_pool");
    assert_string_equal(t->executor, "local");
    dag_free(d);

    /* Without a 'dag' key the file name must be a valid id. */
    d = (struct dag *)1;
    assert_int_equal(load_yaml_buf("dags/my etl.yaml", yaml, strlen(yaml), &d, &err),
                     KILN_EINVALID);
    assert_null(d);
    assert_string_equal(err.msg, "dags/my etl.yaml:1:1: no 'dag' key, and the file name "
                                 "'my etl' is not a valid dag id (use letters, digits, '_', "
                                 "'-' and '.', not starting with '.')");
}

static void test_schedule_forms(void **state)
{
    (void)state;
    static const char *const manual[] = {"schedule: none\n", "schedule: None\n",
                                         "schedule: null\n", "schedule: ~\n", "schedule:\n"};
    for (size_t i = 0; i < ARRAY_LEN(manual); i++) {
        char *y = xasprintf("dag: a\n%stasks: {x: {command: [echo]}}\n", manual[i]);
        struct dag *d = load_ok(y);
        assert_null(d->schedule);
        dag_free(d);
        free(y);
    }
    struct dag *d = load_ok("dag: a\nschedule: '@daily'\ntasks: {x: {command: [echo]}}\n");
    assert_string_equal(d->schedule, "@daily");
    dag_free(d);
}

static void test_bools(void **state)
{
    (void)state;
    static const char *const yes[] = {"true", "True", "TRUE", "yes", "YES", "on", "On"};
    static const char *const no[] = {"false", "False", "no", "No", "off", "OFF"};
    for (size_t i = 0; i < ARRAY_LEN(yes) + ARRAY_LEN(no); i++) {
        bool want = i < ARRAY_LEN(yes);
        const char *v = want ? yes[i] : no[i - ARRAY_LEN(yes)];
        char *y = xasprintf("dag: a\ncatchup: %s\ntasks: {x: {command: [echo]}}\n", v);
        struct dag *d = load_ok(y);
        assert_int_equal(d->catchup, want);
        dag_free(d);
        free(y);
    }
}

static void test_default_applied_and_overridden(void **state)
{
    (void)state;
    /* The default block may come after the tasks, and may set any task key. */
    struct dag *d = load_ok("dag: a\n"
                            "tasks:\n"
                            "  first: {command: [echo, 1]}\n"
                            "  second:\n"
                            "    deps: [first]\n"
                            "    retries: 0\n"
                            "    pool: gpu\n"
                            "    trigger_rule: always\n"
                            "    env: {}\n"
                            "    executor: local\n"
                            "    retry_exponential_backoff: false\n"
                            "  third: {deps: second}\n"
                            "default:\n"
                            "  retries: 3\n"
                            "  retry_delay: 10s\n"
                            "  retry_exponential_backoff: true\n"
                            "  max_retry_delay: 1m\n"
                            "  timeout: 2m\n"
                            "  trigger_rule: all_done\n"
                            "  priority_weight: 7\n"
                            "  pool: cpu\n"
                            "  pool_slots: 3\n"
                            "  executor: kubernetes\n"
                            "  skip_exit_code: 0\n"
                            "  cwd: /tmp\n"
                            "  env: {A: b}\n"
                            "  description: shared\n"
                            "  kubernetes: {image: x}\n"
                            "  command: [run, default]\n");
    const struct dag_task *t = task(d, "first");
    assert_int_equal(t->argc, 2);
    assert_string_equal(t->argv[1], "1");
    assert_int_equal(t->retries, 3);
    assert_int_equal(t->retry_delay_ms, 10000);
    assert_true(t->retry_exponential_backoff);
    assert_int_equal(t->max_retry_delay_ms, 60000);
    assert_int_equal(t->timeout_ms, 120000);
    assert_int_equal(t->trigger_rule, TR_ALL_DONE);
    assert_int_equal(t->priority_weight, 7);
    assert_string_equal(t->pool, "cpu");
    assert_int_equal(t->pool_slots, 3);
    assert_string_equal(t->executor, "kubernetes");
    assert_int_equal(t->skip_exit_code, 0);
    assert_string_equal(t->cwd, "/tmp");
    assert_int_equal(t->n_env, 1);
    assert_string_equal(t->env[0].key, "A");
    assert_string_equal(t->env[0].value, "b");

    t = task(d, "second");
    assert_int_equal(t->argc, 2);                 /* command from the default */
    assert_string_equal(t->argv[0], "run");
    assert_string_equal(t->argv[1], "default");
    assert_int_equal(t->retries, 0);
    assert_false(t->retry_exponential_backoff);
    assert_string_equal(t->pool, "gpu");
    assert_int_equal(t->trigger_rule, TR_ALWAYS);
    assert_int_equal(t->n_env, 0);               /* an empty env still overrides */
    assert_string_equal(t->executor, "local");
    assert_int_equal(t->timeout_ms, 120000);
    assert_int_equal(t->n_up, 1);

    t = task(d, "third");
    assert_string_equal(t->argv[0], "run");
    assert_int_equal(t->n_deps, 1);
    assert_string_equal(t->deps[0], "second");
    dag_free(d);
}

static void test_aliases(void **state)
{
    (void)state;
    /* Anchors and aliases share one node; each task still gets its own copy. */
    struct dag *d = load_ok("dag: a\n"
                            "tasks:\n"
                            "  one: &t {command: &c [echo, hi], retries: 1}\n"
                            "  two: *t\n"
                            "  three: {command: *c, deps: [one, two]}\n");
    assert_int_equal(d->n_tasks, 3);
    assert_int_equal(task(d, "two")->retries, 1);
    assert_int_equal(task(d, "two")->pos.line, 4);
    assert_string_equal(task(d, "three")->argv[1], "hi");
    assert_ptr_not_equal(task(d, "one")->argv, task(d, "two")->argv);
    dag_free(d);
}

/* --- errors, one message each ------------------------------------------------ */

static void test_err_unknown_top_key(void **state)
{
    (void)state;
    expect_err("dag: a\n"
               "shedule: \"@daily\"\n"
               "tasks: {x: {command: [echo]}}\n",
               PATH ":2:1: unknown top-level key 'shedule' (did you mean 'schedule'?)");
    expect_err("dag: a\n"
               "tasks: {x: {command: [echo]}}\n"
               "owner: someone\n",
               PATH ":3:1: unknown top-level key 'owner' (valid keys: dag, description, "
                    "schedule, timezone, start_date, end_date, catchup, max_active_runs, max_active_tasks, "
                    "params, default, tasks)");
}

static void test_err_unknown_task_key(void **state)
{
    (void)state;
    expect_err("dag: a\n"
               "tasks:\n"
               "  load:\n"
               "    command: [echo]\n"
               "    retires: 3\n",
               PATH ":5:5: unknown key 'retires' in task 'load' (did you mean 'retries'?)");
    expect_err("dag: a\n"
               "tasks:\n"
               "  load: {command: [echo], image: x}\n",
               PATH ":3:27: unknown key 'image' in task 'load' (valid keys: command, deps, env, "
                    "cwd, retries, retry_delay, max_retry_delay, timeout, "
                    "retry_exponential_backoff, trigger_rule, priority_weight, pool, pool_slots, "
                    "executor, skip_exit_code, description, kubernetes)");
}

static void test_err_unknown_default_key(void **state)
{
    (void)state;
    expect_err("dag: a\n"
               "default: {retries: 1, timout: 5m}\n"
               "tasks: {x: {command: [echo]}}\n",
               PATH ":2:23: unknown key 'timout' in 'default' (did you mean 'timeout'?)");
}

static void test_err_default_values(void **state)
{
    (void)state;
    /* A bad default is reported where it is written, even if every task
     * overrides it. */
    expect_err("dag: a\n"
               "default:\n"
               "  retries: many\n"
               "tasks: {x: {command: [echo], retries: 1}}\n",
               PATH ":3:12: 'retries' must be a non-negative integer, got 'many'");
    expect_err("dag: a\n"
               "default: [retries]\n"
               "tasks: {x: {command: [echo]}}\n",
               PATH ":2:10: 'default' must be a map of task keys, got a list");
}

static void test_err_command_string(void **state)
{
    (void)state;
    expect_err("dag: a\n"
               "tasks:\n"
               "  load:\n"
               "    command: echo hello\n",
               PATH ":4:14: 'command' must be a list of arguments (argv), e.g. [echo, hello]; "
                    "for a shell write [sh, -c, \"...\"]");
}

static void test_err_command_missing(void **state)
{
    (void)state;
    expect_err("dag: a\n"
               "tasks:\n"
               "  extract: {command: [echo]}\n"
               "  load:\n"
               "    deps: [extract]\n",
               PATH ":4:3: task 'load' has no 'command'");
}

static void test_err_command_empty(void **state)
{
    (void)state;
    expect_err("dag: a\n"
               "tasks:\n"
               "  load:\n"
               "    command: []\n",
               PATH ":4:14: 'command' must not be empty: give the program and its arguments, "
                    "e.g. [echo, hello]");
    expect_err("dag: a\n"
               "tasks:\n"
               "  load:\n"
               "    command:\n",
               PATH ":4:13: 'command' must not be empty: give the program and its arguments, "
                    "e.g. [echo, hello]");
    expect_err("dag: a\n"
               "tasks:\n"
               "  load: {command: ['', x]}\n",
               PATH ":3:20: 'command' must start with the program to run");
}

static void test_err_command_items(void **state)
{
    (void)state;
    expect_err("dag: a\n"
               "tasks:\n"
               "  load: {command: [echo, {a: b}]}\n",
               PATH ":3:26: 'command' arguments must be strings, got a map");
    expect_err("dag: a\n"
               "tasks:\n"
               "  load: {command: {echo: hi}}\n",
               PATH ":3:19: 'command' must be a list of arguments (argv), e.g. [echo, hello], "
                    "got a map");
    expect_err("dag: a\n"
               "tasks:\n"
               "  load: {command: [echo, \"a\\0b\"]}\n",
               PATH ":3:26: 'command' arguments must not contain a NUL character");
}

static void test_err_retries(void **state)
{
    (void)state;
    expect_err("dag: a\n"
               "tasks:\n"
               "  load: {command: [echo], retries: abc}\n",
               PATH ":3:36: 'retries' must be a non-negative integer, got 'abc'");
    expect_err("dag: a\n"
               "tasks:\n"
               "  load: {command: [echo], retries: -1}\n",
               PATH ":3:36: 'retries' must be a non-negative integer, got '-1'");
    expect_err("dag: a\n"
               "tasks:\n"
               "  load: {command: [echo], retries: 99999999999999999999}\n",
               PATH ":3:36: 'retries' must be a non-negative integer, got "
                    "'99999999999999999999'");
    expect_err("dag: a\n"
               "tasks:\n"
               "  load: {command: [echo], retries: [1]}\n",
               PATH ":3:36: 'retries' must be a non-negative integer, got a list");
    expect_err("dag: a\n"
               "tasks:\n"
               "  load: {command: [echo], retries: 1.5}\n",
               PATH ":3:36: 'retries' must be a non-negative integer, got '1.5'");
}

static void test_err_priority_weight(void **state)
{
    (void)state;
    expect_err("dag: a\n"
               "tasks:\n"
               "  load:\n"
               "    command: [echo]\n"
               "    priority_weight: high\n",
               PATH ":5:22: 'priority_weight' must be an integer, got 'high'");
}

static void test_err_ints(void **state)
{
    (void)state;
    expect_err("dag: a\n"
               "max_active_runs: 0\n"
               "tasks: {x: {command: [echo]}}\n",
               PATH ":2:18: 'max_active_runs' must be a positive integer, got '0'");
    expect_err("dag: a\n"
               "max_active_tasks: lots\n"
               "tasks: {x: {command: [echo]}}\n",
               PATH ":2:19: 'max_active_tasks' must be a positive integer, got 'lots'");
    expect_err("dag: a\n"
               "tasks: {x: {command: [echo], pool_slots: 0}}\n",
               PATH ":2:42: 'pool_slots' must be a positive integer, got '0'");
    expect_err("dag: a\n"
               "tasks: {x: {command: [echo], skip_exit_code: 256}}\n",
               PATH ":2:46: 'skip_exit_code' must be an integer from 0 to 255, got '256'");
}

static void test_err_catchup(void **state)
{
    (void)state;
    expect_err("dag: a\n"
               "catchup: maybe\n"
               "tasks: {x: {command: [echo]}}\n",
               PATH ":2:10: 'catchup' must be true or false, got 'maybe'");
    /* A quoted "yes" is a string. */
    expect_err("dag: a\n"
               "catchup: \"yes\"\n"
               "tasks: {x: {command: [echo]}}\n",
               PATH ":2:10: 'catchup' must be true or false, got 'yes'");
    expect_err("dag: a\n"
               "tasks: {x: {command: [echo], retry_exponential_backoff: 1}}\n",
               PATH ":2:57: 'retry_exponential_backoff' must be true or false, got '1'");
}

static void test_err_env(void **state)
{
    (void)state;
    expect_err("dag: a\n"
               "tasks:\n"
               "  x:\n"
               "    command: [echo]\n"
               "    env: [A=1]\n",
               PATH ":5:10: 'env' must be a map, got a list");
    expect_err("dag: a\n"
               "tasks:\n"
               "  x:\n"
               "    command: [echo]\n"
               "    env: {A: [1, 2]}\n",
               PATH ":5:14: 'env' value for 'A' must be a string or number, got a list");
    expect_err("dag: a\n"
               "tasks:\n"
               "  x:\n"
               "    command: [echo]\n"
               "    env: {\"A=B\": c}\n",
               PATH ":5:11: invalid name 'A=B' in 'env'");
    expect_err("dag: a\n"
               "tasks:\n"
               "  x:\n"
               "    command: [echo]\n"
               "    env:\n"
               "      A: 1\n"
               "      A: 2\n",
               PATH ":7:7: duplicate key 'A' (first defined at 6:7)");
}

static void test_err_params(void **state)
{
    (void)state;
    expect_err("dag: a\n"
               "params: {lr: [0.1, 0.2]}\n"
               "tasks: {x: {command: [echo]}}\n",
               PATH ":2:14: 'params' value for 'lr' must be a string or number, or a map like "
               "{type: number, default: 0.1}, got a list");
    expect_err("dag: a\n"
               "params: {\"learning rate\": 0.1}\n"
               "tasks: {x: {command: [echo]}}\n",
               PATH ":2:10: invalid name 'learning rate' in 'params' (use letters, digits, "
                    "'_', '-' and '.', not starting with '.')");
    expect_err("dag: a\n"
               "params: 3\n"
               "tasks: {x: {command: [echo]}}\n",
               PATH ":2:9: 'params' must be a map, got '3'");
}

static void test_err_deps(void **state)
{
    (void)state;
    expect_err("dag: a\n"
               "tasks:\n"
               "  a: {command: [echo]}\n"
               "  b:\n"
               "    command: [echo]\n"
               "    deps: {a: 1}\n",
               PATH ":6:11: 'deps' must be a list of task ids, got a map");
    expect_err("dag: a\n"
               "tasks:\n"
               "  a: {command: [echo]}\n"
               "  b: {command: [echo], deps: [a, [c]]}\n",
               PATH ":4:34: 'deps' entries must be task ids, got a list");
}

static void test_err_durations(void **state)
{
    (void)state;
    expect_err("dag: a\n"
               "tasks:\n"
               "  load:\n"
               "    command: [echo]\n"
               "    retry_delay: soon\n",
               PATH ":5:18: 'retry_delay' must be a duration like 30s, 5m or 1h, got 'soon'");
    expect_err("dag: a\n"
               "tasks:\n"
               "  load:\n"
               "    command: [echo]\n"
               "    timeout: x\n",
               PATH ":5:14: 'timeout' must be a duration like 30s, 5m or 1h, got 'x'");
    expect_err("dag: a\n"
               "tasks:\n"
               "  load:\n"
               "    command: [echo]\n"
               "    max_retry_delay: 5 minutes\n",
               PATH ":5:22: 'max_retry_delay' must be a duration like 30s, 5m or 1h, "
                    "got '5 minutes'");
    expect_err("dag: a\n"
               "tasks:\n"
               "  load:\n"
               "    command: [echo]\n"
               "    timeout: -5s\n",
               PATH ":5:14: 'timeout' must be a duration like 30s, 5m or 1h, got '-5s'");
}

static void test_err_trigger_rule(void **state)
{
    (void)state;
    expect_err("dag: a\n"
               "tasks:\n"
               "  load:\n"
               "    command: [echo]\n"
               "    trigger_rule: all_sucess\n",
               PATH ":5:19: unknown trigger_rule 'all_sucess' (did you mean 'all_success'?)");
    expect_err("dag: a\n"
               "tasks:\n"
               "  load:\n"
               "    command: [echo]\n"
               "    trigger_rule: whenever\n",
               PATH ":5:19: unknown trigger_rule 'whenever' (valid rules: all_success, "
                    "all_failed, all_done, all_skipped, one_success, one_failed, one_done, "
                    "none_failed, none_failed_min_one_success, none_skipped, always)");
}

static void test_err_executor(void **state)
{
    (void)state;
    expect_err("dag: a\n"
               "tasks:\n"
               "  load: {command: [echo], executor: docker}\n",
               PATH ":3:37: unknown executor 'docker' (valid executors: local, kubernetes)");
    expect_err("dag: a\n"
               "default: {executor: kubernets}\n"
               "tasks:\n"
               "  load: {command: [echo]}\n",
               PATH ":2:21: unknown executor 'kubernets' (did you mean 'kubernetes'?)");
}

static void test_err_pool_and_kubernetes(void **state)
{
    (void)state;
    expect_err("dag: a\n"
               "tasks:\n"
               "  load: {command: [echo], pool: \"my pool\"}\n",
               PATH ":3:33: invalid pool name 'my pool' (use letters, digits, '_', '-' and '.', "
                    "not starting with '.')");
    expect_err("dag: a\n"
               "tasks:\n"
               "  load: {command: [echo], kubernetes: kiln-tasks:latest}\n",
               PATH ":3:39: 'kubernetes' must be a map, got 'kiln-tasks:latest'");
}

static void test_err_cycle(void **state)
{
    (void)state;
    expect_err_code("dag: a\n"
                    "tasks:\n"
                    "  start: {command: [echo]}\n"
                    "  a: {command: [echo], deps: [start, c]}\n"
                    "  b: {command: [echo], deps: [a]}\n"
                    "  c: {command: [echo], deps: [b]}\n",
                    KILN_ECYCLE, PATH ":4:3: dependency cycle: a -> b -> c -> a");
    expect_err_code("dag: a\n"
                    "tasks:\n"
                    "  a: {command: [echo], deps: a}\n",
                    KILN_ECYCLE, PATH ":3:3: dependency cycle: a -> a");
}

static void test_err_unknown_dep(void **state)
{
    (void)state;
    expect_err("dag: a\n"
               "tasks:\n"
               "  extract: {command: [echo]}\n"
               "  load: {command: [echo]}\n"
               "  transform:\n"
               "    command: [echo]\n"
               "    deps: [extract, lod]\n",
               PATH ":7:21: task 'transform' depends on unknown task 'lod' "
                    "(did you mean 'load'?)");
}

static void test_err_duplicate_task(void **state)
{
    (void)state;
    expect_err("dag: a\n"
               "tasks:\n"
               "  load: {command: [echo]}\n"
               "  other: {command: [echo]}\n"
               "  load: {command: [echo, again]}\n",
               PATH ":5:3: duplicate task id 'load' (first defined at 3:3)");
}

static void test_err_duplicate_key(void **state)
{
    (void)state;
    expect_err("dag: a\n"
               "tasks:\n"
               "  load:\n"
               "    command: [echo]\n"
               "    retries: 1\n"
               "    retries: 2\n",
               PATH ":6:5: duplicate key 'retries' (first defined at 5:5)");
    expect_err("dag: a\n"
               "tasks: {x: {command: [echo]}}\n"
               "dag: b\n",
               PATH ":3:1: duplicate key 'dag' (first defined at 1:1)");
}

static void test_err_invalid_ids(void **state)
{
    (void)state;
    expect_err("dag: a\n"
               "tasks:\n"
               "  \"bad id\": {command: [echo]}\n",
               PATH ":3:3: invalid task id 'bad id' (use letters, digits, '_', '-' and '.', "
                    "not starting with '.')");
    expect_err("dag: a\n"
               "tasks:\n"
               "  .hidden: {command: [echo]}\n",
               PATH ":3:3: invalid task id '.hidden' (use letters, digits, '_', '-' and '.', "
                    "not starting with '.')");
    expect_err("dag: my/dag\n"
               "tasks: {x: {command: [echo]}}\n",
               PATH ":1:6: invalid dag id 'my/dag' (use letters, digits, '_', '-' and '.', "
                    "not starting with '.')");
    expect_err("dag: [a]\n"
               "tasks: {x: {command: [echo]}}\n",
               PATH ":1:6: 'dag' must be a string, got a list");
    expect_err("dag: a\n"
               "tasks:\n"
               "  [x]: {command: [echo]}\n",
               PATH ":3:3: task ids must be strings, got a list");
}

static void test_err_task_shape(void **state)
{
    (void)state;
    expect_err("dag: a\n"
               "tasks:\n"
               "  load: echo hi\n",
               PATH ":3:9: task 'load' must be a map with at least 'command', got 'echo hi'");
    expect_err("dag: a\n"
               "tasks: [load]\n",
               PATH ":2:8: 'tasks' must be a map of task id -> task, got a list");
    expect_err("dag: a\n"
               "tasks: {}\n",
               PATH ":2:8: 'tasks' must be a map of task id -> task, got an empty map");
    expect_err("dag: a\n"
               "schedule: '@daily'\n",
               PATH ":1:1: missing 'tasks': a DAG needs at least one task");
}

static void test_err_syntax(void **state)
{
    (void)state;
    expect_err_code("dag: a\n"
                    "tasks:\n"
                    "  x:\n"
                    "    command: [echo]\n"
                    "   deps: y\n",
                    KILN_EPARSE,
                    PATH ":5:4: YAML syntax error: did not find expected key "
                         "(while parsing a block mapping at 3:3)");
    expect_err_code("dag: a\n"
                    "tasks:\n"
                    "  x: {command: [echo, hi]\n",
                    KILN_EPARSE,
                    PATH ":4:1: YAML syntax error: did not find expected ',' or '}' "
                         "(while parsing a flow mapping at 3:6)");
    expect_err_code("dag: a\n"
                    "  tasks: 1\n",
                    KILN_EPARSE,
                    PATH ":2:8: YAML syntax error: mapping values are not allowed in this "
                         "context");
    expect_err_code("dag: a\n"
                    "tasks: *nope\n",
                    KILN_EPARSE, PATH ":2:8: YAML syntax error: found undefined alias");
    expect_err_code("dag: a\n"
                    "tasks: {x: {command: [echo, \"\xff\"]}}\n",
                    KILN_EPARSE, PATH ":2:30: YAML syntax error: invalid leading UTF-8 octet");
}

static void test_err_empty(void **state)
{
    (void)state;
    expect_err("", PATH ":1:1: empty DAG file: expected a map with keys like 'dag' and 'tasks'");
    expect_err("# only a comment\n\n",
               PATH ":1:1: empty DAG file: expected a map with keys like 'dag' and 'tasks'");
    expect_err("---\n",
               PATH ":2:1: empty DAG file: expected a map with keys like 'dag' and 'tasks'");
}

static void test_err_not_a_map(void **state)
{
    (void)state;
    expect_err("- dag: a\n- tasks: {}\n",
               PATH ":1:1: a DAG file must be a map with keys like 'dag' and 'tasks', "
                    "got a list");
    expect_err("just text\n",
               PATH ":1:1: a DAG file must be a map with keys like 'dag' and 'tasks', "
                    "got 'just text'");
}

static void test_err_two_documents(void **state)
{
    (void)state;
    expect_err("dag: a\n"
               "tasks: {x: {command: [echo]}}\n"
               "---\n"
               "dag: b\n",
               PATH ":3:1: a DAG file holds one YAML document, found a second");
}

/* --- files and folders ------------------------------------------------------- */

static char *fixture(const char *name)
{
    const char *src = getenv("SRCDIR");
    return xasprintf("%s/tests/fixtures/dags/%s", src && *src ? src : ".", name);
}

static void test_load_file(void **state)
{
    (void)state;
    char *path = fixture("churn.yaml");
    struct dag *d = NULL;
    struct kiln_err err = {0};
    if (load_yaml_file(path, &d, &err) != 0)
        fail_msg("%s", err.msg);
    assert_string_equal(d->id, "churn");
    assert_string_equal(d->path, path);
    assert_int_equal(d->n_tasks, 4);
    assert_string_equal(task(d, "train")->executor, "kubernetes");
    assert_int_equal(task(d, "train")->retries, 2);
    assert_int_equal(task(d, "deploy")->n_up, 1);
    assert_null(d->hash);
    dag_free(d);

    /* dag_load_file also records the content hash. */
    char *buf;
    size_t len;
    char want[65];
    assert_int_equal(file_read_all(path, &buf, &len), 0);
    sha256_hex(buf, len, want);
    free(buf);
    assert_int_equal(dag_load_file(path, &d, &err), 0);
    assert_string_equal(d->hash, want);
    dag_free(d);
    free(path);

    d = (struct dag *)1;
    assert_int_equal(load_yaml_file("no/such/file.yaml", &d, &err), -ENOENT);
    assert_null(d);
    assert_string_equal(err.msg, "no/such/file.yaml: cannot read: No such file or directory");

    /* dag_load_file picks the Lua loader for *.lua (test_load_lua.c). */
    kiln_err_clear(&err);
    path = fixture("sweep.lua");
    assert_int_equal(dag_load_file(path, &d, &err), 0);
    assert_string_equal(d->id, "sweep");
    assert_int_equal(d->n_tasks, 2);
    dag_free(d);
    free(path);
}

static void test_sha256(void **state)
{
    (void)state;
    char out[65];
    sha256_hex("abc", 3, out);
    assert_string_equal(out, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    sha256_hex("", 0, out);
    assert_string_equal(out, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

static void write_file(const char *dir, const char *name, const char *text)
{
    char *path = xasprintf("%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    free(path);
}


/* --- the kubernetes block ----------------------------------------------------- */

static const char kube_yaml[] =
    "dag: k\n"                                                                    /* 1 */
    "default:\n"                                                                  /* 2 */
    "  executor: kubernetes\n"                                                    /* 3 */
    "  kubernetes:\n"                                                             /* 4 */
    "    image: base:1\n"                                                         /* 5 */
    "    namespace: ml\n"                                                         /* 6 */
    "    resources: {limits: {cpu: \"2\", memory: 1Gi}}\n"                        /* 7 */
    "    node_selector: {pool: gpu}\n"                                            /* 8 */
    "tasks:\n"                                                                    /* 9 */
    "  a:\n"                                                                      /* 10 */
    "    command: [python, a.py]\n"                                               /* 11 */
    "    kubernetes:\n"                                                           /* 12 */
    "      image: task:2\n"                                                       /* 13 */
    "      gpu: 2\n"                                                              /* 14 */
    "      resources: {limits: {memory: 4Gi}, requests: {cpu: 500m, ephemeral-storage: 1Gi}}\n"
    "      tolerations: [{key: dedicated, operator: Equal, value: ml, effect: NoSchedule}]\n"
    "      volumes: [{name: data, pvc: claim, mount_path: /data, read_only: yes},\n"
    "                {name: shm, empty_dir: {medium: Memory}, mount_path: /dev/shm}]\n"
    "      termination_grace: 30s\n"                                              /* 19 */
    "      runtime_class: nvidia\n"                                               /* 20 */
    "      image_pull_secrets: [regcred]\n"                                       /* 21 */
    "      service_account: trainer\n"                                            /* 22 */
    "      image_pull_policy: IfNotPresent\n"                                     /* 23 */
    "      working_dir: /work\n"                                                  /* 24 */
    "      affinity: {nodeAffinity: {preferredDuringSchedulingIgnoredDuringExecution:\n"
    "        [{weight: 1, preference: {matchExpressions: [{key: zone, operator: In,"
    " values: [a]}]}}]}}\n"                                                       /* 26 */
    "  b: {command: [echo], pool: big, kubernetes: {gpu: 1}}\n"                   /* 27 */
    "  c: {command: [echo], executor: local, kubernetes: {node_selector: {pool: null}}}\n";

static void test_kubernetes_block(void **state)
{
    (void)state;
    struct dag *d = load_ok(kube_yaml);
    const struct dag_task *t = task(d, "a");
    const struct kube_task_spec *ks = t->kube;
    assert_non_null(ks);
    assert_string_equal(ks->image, "task:2");
    assert_string_equal(ks->namespace_, "ml");                 /* from the default block */
    assert_string_equal(ks->limits.cpu, "2");                  /* merged key by key */
    assert_string_equal(ks->limits.memory, "4Gi");
    assert_string_equal(ks->requests.cpu, "500m");
    assert_string_equal(ks->requests.ephemeral_storage, "1Gi");
    assert_int_equal(ks->gpu, 2);
    assert_string_equal(t->pool, "gpu");
    assert_int_equal(t->pool_slots, 2);
    assert_int_equal(ks->n_node_selector, 1);
    assert_string_equal(ks->node_selector[0].key, "pool");
    assert_int_equal(ks->n_tolerations, 1);
    assert_string_equal(ks->tolerations[0].effect, "NoSchedule");
    assert_int_equal(ks->n_volumes, 2);
    assert_true(ks->volumes[0].read_only);
    assert_int_equal(ks->volumes[0].kind, KUBE_VOL_PVC);
    assert_string_equal(ks->volumes[0].source, "claim");
    assert_int_equal(ks->volumes[1].kind, KUBE_VOL_EMPTY_DIR);
    assert_string_equal(ks->volumes[1].medium, "Memory");
    assert_int_equal(ks->termination_grace_s, 30);
    assert_string_equal(ks->runtime_class, "nvidia");
    assert_string_equal(ks->image_pull_secrets[0], "regcred");
    assert_string_equal(ks->service_account, "trainer");
    assert_string_equal(ks->image_pull_policy, "IfNotPresent");
    assert_string_equal(ks->working_dir, "/work");
    json_object *pref = json_object_array_get_idx(json_object_object_get(json_object_object_get(
        ks->affinity, "nodeAffinity"), "preferredDuringSchedulingIgnoredDuringExecution"), 0);
    /* YAML types kept: weight is an integer, as the API wants */
    assert_true(json_object_is_type(json_object_object_get(pref, "weight"), json_type_int));
    assert_null(ks->command);

    /* b chose its pool: it stays, gpu or not */
    t = task(d, "b");
    assert_string_equal(t->kube->image, "base:1");
    assert_int_equal(t->kube->gpu, 1);
    assert_string_equal(t->pool, "big");
    assert_int_equal(t->pool_slots, 1);
    /* c runs locally: the block is parsed (null unsets a default) but no pool moves */
    t = task(d, "c");
    assert_non_null(t->kube);
    assert_int_equal(t->kube->n_node_selector, 0);
    assert_string_equal(t->pool, "default_pool");
    dag_free(d);
}

static void test_err_kubernetes(void **state)
{
    (void)state;
    expect_err("dag: a\n"
               "tasks:\n"
               "  x:\n"
               "    command: [echo]\n"
               "    kubernetes:\n"
               "      resources: {limits: {memory: 1GG}}\n",
               PATH ":6:36: task 'x': kubernetes.resources.limits.memory: invalid quantity '1GG' "
                    "(expected a number with an optional suffix, like 500m, 2, 1.5Gi or 512Mi)");
    expect_err("dag: a\n"
               "tasks:\n"
               "  x: {command: [echo], kubernetes: {image: i, imgae: j}}\n",
               PATH ":3:47: task 'x': kubernetes.imgae: unknown key 'imgae' "
                    "(did you mean 'image'?)");
    expect_err("dag: a\n"
               "tasks:\n"
               "  x:\n"
               "    command: [echo]\n"
               "    kubernetes:\n"
               "      tolerations:\n"
               "        - {key: a, operator: Exists}\n"
               "        - {key: b, effect: NoSchedul}\n",
               PATH ":8:28: task 'x': kubernetes.tolerations[1].effect: unknown value 'NoSchedul' "
                    "(did you mean 'NoSchedule'?)");
    /* keys with dots still lead to the right node */
    expect_err("dag: a\n"
               "tasks:\n"
               "  x:\n"
               "    command: [echo]\n"
               "    kubernetes:\n"
               "      node_selector: {nvidia.com/gpu.present: \"true\", nvidia.com/gpu: -x}\n",
               PATH ":6:71: task 'x': kubernetes.node_selector.nvidia.com/gpu: '-x' is not a valid "
                    "label value (<= 63 of letters, digits, '-', '_', '.', starting and ending "
                    "alphanumeric)");
    /* a bad default block is reported at its own line even if no task uses it */
    expect_err("dag: a\n"
               "default:\n"
               "  kubernetes: {gpu: -1}\n"
               "tasks:\n"
               "  x: {command: [echo]}\n",
               PATH ":3:21: default: kubernetes.gpu: must be an integer >= 0, got -1");
    /* an error only the merge shows: the default's request, the task's limit;
     * the value at fault is in the default block */
    expect_err("dag: a\n"
               "default:\n"
               "  kubernetes: {resources: {requests: {memory: 2Gi}}}\n"
               "tasks:\n"
               "  x: {command: [echo], kubernetes: {resources: {limits: {memory: 1Gi}}}}\n",
               PATH ":3:47: task 'x': kubernetes.resources.requests.memory: request 2Gi is more "
                    "than the limit 1Gi");
    /* executor kubernetes without an image, after the defaults */
    expect_err("dag: a\n"
               "default: {executor: kubernetes}\n"
               "tasks:\n"
               "  x: {command: [echo]}\n",
               PATH ":4:3: task 'x': executor kubernetes needs kubernetes.image (the container "
                    "image to run), in the task or the default block");
    expect_err("dag: a\n"
               "tasks:\n"
               "  x: {command: [echo], executor: kubernetes, kubernetes: {gpu: 1}}\n",
               PATH ":3:58: task 'x': executor kubernetes needs kubernetes.image (the container "
                    "image to run), in the task or the default block");
    /* what only the pod builder refuses (an env name a container cannot have) */
    expect_err("dag: a\n"
               "tasks:\n"
               "  x: {command: [echo], env: {\"A B\": x}, executor: kubernetes,\n"
               "      kubernetes: {image: i}}\n",
               PATH ":4:19: task 'x': kubernetes: env name 'A B' must consist of letters, "
                    "digits, '_', '-' or '.', and not start with a digit");
    expect_err("dag: a\n"
               "tasks:\n"
               "  x: {command: [echo], kubernetes: {image: i, image: j}}\n",
               PATH ":3:47: duplicate key 'image' (first defined at 3:37)");
    expect_err("dag: a\n"
               "tasks:\n"
               "  x: {command: [echo], kubernetes: {pod_template: nope.yaml}}\n",
               PATH ":3:51: task 'x': kubernetes.pod_template: cannot read 'dags/nope.yaml': "
                    "No such file or directory");
}

static void test_dagdir_kubernetes(void **state)
{
    (void)state;
    char dir[] = "/tmp/kiln-dagdir-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char *tdir = xasprintf("%s/templates", dir);
    assert_int_equal(mkdir(tdir, 0700), 0);
    free(tdir);
    /* in a subfolder: the scan does not take it for a DAG */
    write_file(dir, "templates/pod.yaml", "metadata: {labels: {team: ml}}\n"
                                "spec: {containers: [{name: main}, {name: side, image: s:1}]}\n");
    write_file(dir, "a.yaml", "dag: a\ntasks: {x: {command: [echo], executor: kubernetes,\n"
                              "  kubernetes: {image: i, pod_template: templates/pod.yaml}}}\n");
    write_file(dir, "b.yaml", "dag: b\ntasks: {x: {command: [echo],\n"
                              "  kubernetes: {image: i, gpu: two}}}\n");
    struct dagdir *dd = NULL;
    struct kiln_err err = {0};
    assert_int_equal(dagdir_load(dir, &dd, &err), 0);
    assert_int_equal(dd->n, 2);
    assert_non_null(dd->entries[0].dag);
    const struct dag_task *t = task(dd->entries[0].dag, "x");
    assert_non_null(t->kube->pod_template);
    assert_non_null(json_object_object_get(t->kube->pod_template, "metadata"));
    assert_null(dd->entries[1].dag);
    char *want = xasprintf("%s/b.yaml:3:31: task 'x': kubernetes.gpu: must be an integer >= 0, "
                           "got 'two'", dir);
    assert_string_equal(dd->entries[1].error, want);
    free(want);
    dagdir_free(dd);
    char *cmd = xasprintf("rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
    free(cmd);
}

static void test_dagdir_temp(void **state)
{
    (void)state;
    char dir[] = "/tmp/kiln-dagdir-XXXXXX";
    assert_non_null(mkdtemp(dir));
    write_file(dir, "b_good.yaml", "dag: beta\ntasks: {x: {command: [echo]}}\n");
    write_file(dir, "a_good.yml", "dag: alpha\ntasks: {x: {command: [echo]}}\n");
    write_file(dir, "c_bad.yaml", "dag: gamma\ntasks: {x: {command: echo}}\n");
    write_file(dir, "d_dup.yaml", "dag: alpha\ntasks: {y: {command: [echo]}}\n");
    write_file(dir, ".e_hidden.yaml", "not: [valid\n");
    write_file(dir, "notes.txt", "not a dag\n");
    char *sub = xasprintf("%s/sub.yaml", dir);
    assert_int_equal(mkdir(sub, 0700), 0);

    struct dagdir *dd = NULL;
    struct kiln_err err = {0};
    assert_int_equal(dagdir_load(dir, &dd, &err), 0);
    assert_int_equal(dd->n, 4);

    char *p[4];
    p[0] = xasprintf("%s/a_good.yml", dir);
    p[1] = xasprintf("%s/b_good.yaml", dir);
    p[2] = xasprintf("%s/c_bad.yaml", dir);
    p[3] = xasprintf("%s/d_dup.yaml", dir);
    for (int i = 0; i < 4; i++) {
        assert_string_equal(dd->entries[i].path, p[i]);
        assert_non_null(dd->entries[i].hash);
        assert_int_equal(strlen(dd->entries[i].hash), 64);
    }

    assert_non_null(dd->entries[0].dag);
    assert_null(dd->entries[0].error);
    assert_string_equal(dd->entries[0].dag->id, "alpha");
    assert_string_equal(dd->entries[0].dag->hash, dd->entries[0].hash);
    assert_string_equal(dd->entries[0].dag->path, p[0]);
    assert_non_null(dd->entries[1].dag);
    assert_string_equal(dd->entries[1].dag->id, "beta");
    assert_null(dd->entries[1].error);

    assert_null(dd->entries[2].dag);
    char *want = xasprintf("%s:2:22: 'command' must be a list of arguments (argv), e.g. "
                           "[echo, hello]; for a shell write [sh, -c, \"...\"]",
                           p[2]);
    assert_string_equal(dd->entries[2].error, want);
    free(want);

    assert_null(dd->entries[3].dag);
    want = xasprintf("%s: dag id 'alpha' is already defined in %s", p[3], p[0]);
    assert_string_equal(dd->entries[3].error, want);
    free(want);

    assert_ptr_equal(dagdir_find(dd, "alpha"), dd->entries[0].dag);
    assert_ptr_equal(dagdir_find(dd, "beta"), dd->entries[1].dag);
    assert_null(dagdir_find(dd, "gamma"));
    assert_null(dagdir_find(dd, "nope"));
    dagdir_free(dd);

    /* A trailing slash does not double the separator. */
    char *slash = xasprintf("%s/", dir);
    assert_int_equal(dagdir_load(slash, &dd, &err), 0);
    assert_string_equal(dd->entries[0].path, p[0]);
    dagdir_free(dd);
    free(slash);

    const char *names[] = {"a_good.yml", "b_good.yaml", "c_bad.yaml", "d_dup.yaml",
                           ".e_hidden.yaml", "notes.txt"};
    for (size_t i = 0; i < ARRAY_LEN(names); i++) {
        char *f = xasprintf("%s/%s", dir, names[i]);
        unlink(f);
        free(f);
    }
    rmdir(sub);
    free(sub);
    for (int i = 0; i < 4; i++)
        free(p[i]);

    /* An empty folder is fine; a missing one is the only failure. */
    assert_int_equal(dagdir_load(dir, &dd, &err), 0);
    assert_int_equal(dd->n, 0);
    assert_null(dagdir_find(dd, "alpha"));
    dagdir_free(dd);
    rmdir(dir);
    dd = (struct dagdir *)1;
    assert_int_equal(dagdir_load(dir, &dd, &err), -ENOENT);
    assert_null(dd);
    char *msg = xasprintf("%s: cannot read folder: No such file or directory", dir);
    assert_string_equal(err.msg, msg);
    free(msg);
}

static void test_dagdir_fixtures(void **state)
{
    (void)state;
    char *dir = fixture("");
    dir[strlen(dir) - 1] = '\0'; /* drop the trailing '/' */
    struct dagdir *dd = NULL;
    struct kiln_err err = {0};
    assert_int_equal(dagdir_load(dir, &dd, &err), 0);
    /* broken.yaml, churn.yaml, churn_copy.yaml, fanout.yml, sweep.lua; the
     * hidden file and README.txt are skipped. */
    assert_int_equal(dd->n, 5);
    static const char *const names[] = {"broken.yaml", "churn.yaml", "churn_copy.yaml",
                                        "fanout.yml", "sweep.lua"};
    char *p[5];
    for (int i = 0; i < 5; i++) {
        p[i] = xasprintf("%s/%s", dir, names[i]);
        assert_string_equal(dd->entries[i].path, p[i]);
        assert_non_null(dd->entries[i].hash);
    }
    char *want = xasprintf("%s:5:5: unknown key 'retires' in task 'load' "
                           "(did you mean 'retries'?)", p[0]);
    assert_string_equal(dd->entries[0].error, want);
    free(want);
    assert_null(dd->entries[1].error);
    assert_string_equal(dd->entries[1].dag->id, "churn");
    want = xasprintf("%s: dag id 'churn' is already defined in %s", p[2], p[1]);
    assert_string_equal(dd->entries[2].error, want);
    free(want);
    assert_null(dd->entries[3].error);
    assert_string_equal(dd->entries[3].dag->id, "fanout");
    assert_int_equal(dd->entries[3].dag->n_tasks, 5);
    assert_int_equal(dagdir_find(dd, "fanout")->tasks[4].n_up, 3);
    assert_null(dd->entries[4].error);
    assert_string_equal(dd->entries[4].dag->id, "sweep");
    assert_int_equal(dd->entries[4].dag->n_tasks, 2);
    for (int i = 0; i < 5; i++)
        free(p[i]);
    dagdir_free(dd);
    free(dir);
}

static void test_big_yaml(void **state)
{
    (void)state;
    /* 10,000 tasks in one file, each depending on the one before. */
    struct sbuf b;
    sbuf_init(&b);
    sbuf_adds(&b, "dag: big\ndefault: {command: [\"true\"], retries: 1}\ntasks:\n");
    sbuf_adds(&b, "  t0: {}\n");
    for (int i = 1; i < 10000; i++)
        sbuf_printf(&b, "  t%d: {deps: [t%d]}\n", i, i - 1);
    struct dag *d = load_ok(b.data);
    assert_int_equal(d->n_tasks, 10000);
    assert_string_equal(d->tasks[d->topo[9999]].id, "t9999");
    assert_int_equal(task(d, "t5000")->retries, 1);
    dag_free(d);
    sbuf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full),
        cmocka_unit_test(test_minimal_and_id_from_path),
        cmocka_unit_test(test_schedule_forms),
        cmocka_unit_test(test_bools),
        cmocka_unit_test(test_default_applied_and_overridden),
        cmocka_unit_test(test_aliases),
        cmocka_unit_test(test_err_unknown_top_key),
        cmocka_unit_test(test_err_unknown_task_key),
        cmocka_unit_test(test_err_unknown_default_key),
        cmocka_unit_test(test_err_default_values),
        cmocka_unit_test(test_err_command_string),
        cmocka_unit_test(test_err_command_missing),
        cmocka_unit_test(test_err_command_empty),
        cmocka_unit_test(test_err_command_items),
        cmocka_unit_test(test_err_retries),
        cmocka_unit_test(test_err_priority_weight),
        cmocka_unit_test(test_err_ints),
        cmocka_unit_test(test_err_catchup),
        cmocka_unit_test(test_err_env),
        cmocka_unit_test(test_err_params),
        cmocka_unit_test(test_err_deps),
        cmocka_unit_test(test_err_durations),
        cmocka_unit_test(test_err_trigger_rule),
        cmocka_unit_test(test_err_executor),
        cmocka_unit_test(test_err_pool_and_kubernetes),
        cmocka_unit_test(test_err_cycle),
        cmocka_unit_test(test_err_unknown_dep),
        cmocka_unit_test(test_err_duplicate_task),
        cmocka_unit_test(test_err_duplicate_key),
        cmocka_unit_test(test_err_invalid_ids),
        cmocka_unit_test(test_err_task_shape),
        cmocka_unit_test(test_err_syntax),
        cmocka_unit_test(test_err_empty),
        cmocka_unit_test(test_err_not_a_map),
        cmocka_unit_test(test_err_two_documents),
        cmocka_unit_test(test_load_file),
        cmocka_unit_test(test_sha256),
        cmocka_unit_test(test_dagdir_temp),
        cmocka_unit_test(test_dagdir_fixtures),
        cmocka_unit_test(test_big_yaml),
        cmocka_unit_test(test_kubernetes_block),
        cmocka_unit_test(test_err_kubernetes),
        cmocka_unit_test(test_dagdir_kubernetes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
