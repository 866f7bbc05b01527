/* Unit tests for the YAML loader and the DAG folder scan.  Error tests assert
 * the whole message, position included: the position is the feature. */
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
    assert_string_equal(t->pool, "default_pool");
    assert_int_equal(t->pool_slots, 1);
    assert_string_equal(t->executor, "kubernetes");
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

