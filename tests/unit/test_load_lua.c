/* Unit tests for the Lua DAG loader: the API, the same validation as YAML
 * (whole messages, position included), and the sandbox: one test per escape
 * attempt, each asserting the exact refusal. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "dag.h"
#include "kube_spec.h"
#include "dagdir.h"
#include "load_lua.h"
#include "util.h"

#define PATH "dags/t.lua"

static struct dag *load_ok(const char *src)
{
    struct dag *d = NULL;
    struct kiln_err err = {0};
    int rc = load_lua_buf(PATH, src, strlen(src), &d, &err);
    if (rc != 0)
        fail_msg("unexpected error: %s", err.msg);
    assert_non_null(d);
    return d;
}

static void expect_err_limits(const char *src, size_t len, const struct load_lua_limits *lim,
                              int code, const char *msg)
{
    struct dag *d = (struct dag *)1;
    struct kiln_err err = {0};
    int rc = load_lua_buf_limits(PATH, src, len, lim, &d, &err);
    assert_null(d);
    assert_string_equal(err.msg, msg);
    assert_int_equal(rc, code);
    assert_int_equal(err.code, code);
}

static void expect_err_code(const char *src, int code, const char *msg)
{
    expect_err_limits(src, strlen(src), NULL, code, msg);
}

static void expect_err(const char *src, const char *msg)
{
    expect_err_code(src, KILN_EINVALID, msg);
}

static const struct dag_task *task(const struct dag *d, const char *id)
{
    const struct dag_task *t = dag_task_find(d, id);
    if (t == NULL)
        fail_msg("no task %s", id);
    return t;
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* A task on one line, for the error tests. */
#define OK_TASK "d:task{ id = 'a', command = {'echo'} }\n"
/* A whole valid DAG on one line, to end a file that should load. */
#define MINIMAL "dag{ id = 'm' }:task{ id = 'a', command = {'echo'} }\n"

/* --- a grid sweep of 100 tasks ---------------------------------------------- */

static const char sweep_lua[] =
    "-- 7 learning rates x 7 batch sizes: train + eval each, a prep and a report\n" /* 1 */
    "local d = dag{ id = 'sweep', max_active_runs = 1, params = {lr = '0.1'},\n"    /* 2 */
    "               default = {retries = 1, retry_delay = '5s'} }\n"                /* 3 */
    "local prep = d:task{ id = 'prep', command = {'kiln-clean', '--in', 'raw.csv'} }\n"
    "local evals = {}\n"                                                             /* 5 */
    "for _, lr in ipairs{0.0001, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3} do\n"          /* 6 */
    "  for _, bs in ipairs{8, 16, 32, 64, 128, 256, 512} do\n"                       /* 7 */
    "    local name = string.format('lr%g_bs%d', lr, bs)\n"                          /* 8 */
    "    local train = d:task{ id = 'train_' .. name, deps = {prep},\n"              /* 9 */
    "                          command = {'kiln-train', '--lr', lr, '--bs', bs},\n"  /* 10 */
    "                          pool = 'gpu', timeout = '1h' }\n"                     /* 11 */
    "    evals[#evals + 1] = d:task{ id = 'eval_' .. name, deps = {train},\n"        /* 12 */
    "                                command = {'kiln-eval', '--run', name},\n"      /* 13 */
    "                                retries = 0 }\n"                                /* 14 */
    "  end\n"                                                                        /* 15 */
    "end\n"                                                                          /* 16 */
    "d:task{ id = 'report', deps = evals, trigger_rule = 'all_done',\n"              /* 17 */
    "        command = {'kiln-report', #evals} }\n"                                  /* 18 */
    "return d\n";                                                                    /* 19 */

static void test_sweep_100_tasks(void **state)
{
    (void)state;
    struct dag *d = load_ok(sweep_lua);
    assert_string_equal(d->id, "sweep");
    assert_string_equal(d->path, PATH);
    assert_int_equal(d->n_tasks, 100);
    assert_int_equal(d->max_active_runs, 1);
    assert_int_equal(d->n_params, 1);
    assert_string_equal(d->params[0].key, "lr");
    assert_string_equal(d->params[0].value, "0.1");

    const struct dag_task *t = task(d, "prep");
    assert_int_equal(t->pos.line, 4);
    assert_int_equal(t->pos.col, 0);
    assert_int_equal(t->retries, 1);          /* default */
    assert_int_equal(t->retry_delay_ms, 5000); /* default */
    assert_int_equal(t->n_down, 49);

    static const char *const lrs[] = {"0.0001", "0.001", "0.003", "0.01", "0.03", "0.1", "0.3"};
    static const char *const bss[] = {"8", "16", "32", "64", "128", "256", "512"};
    int n = 0;
    for (int i = 0; i < 7; i++) {
        for (int j = 0; j < 7; j++) {
            char id[64], eid[64];
            snprintf(id, sizeof id, "train_lr%s_bs%s", lrs[i], bss[j]);
            snprintf(eid, sizeof eid, "eval_lr%s_bs%s", lrs[i], bss[j]);
            t = task(d, id);
            assert_int_equal(t->argc, 5);
            assert_string_equal(t->argv[0], "kiln-train");
            assert_string_equal(t->argv[2], lrs[i]);   /* numbers as tostring() */
            assert_string_equal(t->argv[4], bss[j]);
            assert_int_equal(t->n_deps, 1);
            assert_string_equal(t->deps[0], "prep");
            assert_int_equal(t->dep_pos[0].line, 9);
            assert_string_equal(t->pool, "gpu");
            assert_int_equal(t->timeout_ms, 3600000);
            assert_int_equal(t->retries, 1);
            assert_int_equal(t->pos.line, 9);

            t = task(d, eid);
            assert_int_equal(t->n_up, 1);
            assert_string_equal(d->tasks[t->up[0]].id, id);
            assert_string_equal(t->argv[2], id + strlen("train_"));
            assert_int_equal(t->retries, 0);          /* overrides the default */
            assert_int_equal(t->retry_delay_ms, 5000);
            assert_int_equal(t->pos.line, 12);
            n += 2;
        }
    }
    assert_int_equal(n, 98);
    t = task(d, "report");
    assert_int_equal(t->n_up, 49);
    assert_int_equal(t->trigger_rule, TR_ALL_DONE);
    assert_string_equal(t->argv[1], "49");
    assert_string_equal(t->pool, "default_pool");
    /* Tasks keep the order they were made in; the report comes last. */
    assert_string_equal(d->tasks[0].id, "prep");
    assert_string_equal(d->tasks[1].id, "train_lr0.0001_bs8");
    assert_string_equal(d->tasks[2].id, "eval_lr0.0001_bs8");
    assert_string_equal(d->tasks[d->topo[99]].id, "report");
    dag_free(d);
}

/* --- the whole API ---------------------------------------------------------- */

static void test_every_key(void **state)
{
    (void)state;
    struct dag *d = load_ok(
        "local d = dag{\n"
        "  id = 'churn', description = 'nightly', schedule = '0 3 * * *',\n"
        "  timezone = 'Europe/Amsterdam', start_date = '2026-01-01', catchup = true,\n"
        "  max_active_runs = 2, max_active_tasks = 3.0,\n"
        "  params = {lr = 0.1, epochs = 20, name = 'churn model'},\n"
        "  default = {retries = 2, env = {STAGE = 'prod'}, command = {'run', 'default'},\n"
        "             executor = 'kubernetes', kubernetes = {image = 'x'}},\n"
        "}\n"
        "local a = d:task{ id = 'a', command = {'x', 1, 2.5, 2.0, 1e20, -3} }\n"
        "local b = d:task{\n"
        "  id = 'b', deps = a, env = {Z = 1, A = 'two', M = 0.5}, cwd = '/srv',\n"
        "  retries = 0, retry_delay = 90, max_retry_delay = '1h30m', timeout = '500ms',\n"
        "  retry_exponential_backoff = true, trigger_rule = 'one_success',\n"
        "  priority_weight = -5, pool = 'db', pool_slots = 2, executor = 'local',\n"
        "  skip_exit_code = 0, description = 'the b task', kubernetes = {},\n"
        "}\n"
        "assert(a == 'a' and b == 'b' and d.id == 'churn')\n"
        "assert(tostring(d) == \"dag 'churn'\" and getmetatable(d) == 'kiln.dag')\n"
        "d:task{ id = 'c', deps = {a, b} }\n");
    assert_string_equal(d->id, "churn");
    assert_string_equal(d->description, "nightly");
    assert_string_equal(d->schedule, "0 3 * * *");
    assert_string_equal(d->timezone, "Europe/Amsterdam");
    assert_string_equal(d->start_date, "2026-01-01");
    assert_true(d->catchup);
    assert_int_equal(d->max_active_runs, 2);
    assert_int_equal(d->max_active_tasks, 3);
    /* Sorted by name: a Lua table has no order. */
    assert_int_equal(d->n_params, 3);
    assert_string_equal(d->params[0].key, "epochs");
    assert_string_equal(d->params[0].value, "20");
    assert_string_equal(d->params[1].key, "lr");
    assert_string_equal(d->params[1].value, "0.1");
    assert_string_equal(d->params[2].key, "name");
    assert_string_equal(d->params[2].value, "churn model");

    const struct dag_task *t = task(d, "a");
    static const char *const argv[] = {"x", "1", "2.5", "2.0", "1e+20", "-3"};
    assert_int_equal(t->argc, 6);
    for (size_t i = 0; i < 6; i++)
        assert_string_equal(t->argv[i], argv[i]);
    assert_null(t->argv[6]);
    assert_int_equal(t->retries, 2);
    assert_string_equal(t->executor, "kubernetes");
    assert_int_equal(t->n_env, 1);
    assert_string_equal(t->env[0].key, "STAGE");

    t = task(d, "b");
    assert_int_equal(t->n_deps, 1);
    assert_string_equal(t->deps[0], "a");
    assert_int_equal(t->n_env, 3);
    assert_string_equal(t->env[0].key, "A");
    assert_string_equal(t->env[0].value, "two");
    assert_string_equal(t->env[1].key, "M");
    assert_string_equal(t->env[1].value, "0.5");
    assert_string_equal(t->env[2].key, "Z");
    assert_string_equal(t->env[2].value, "1");
    assert_string_equal(t->cwd, "/srv");
    assert_int_equal(t->retries, 0);
    assert_int_equal(t->retry_delay_ms, 90000);
    assert_int_equal(t->max_retry_delay_ms, 5400000);
    assert_int_equal(t->timeout_ms, 500);
    assert_true(t->retry_exponential_backoff);
    assert_int_equal(t->trigger_rule, TR_ONE_SUCCESS);
    assert_int_equal(t->priority_weight, -5);
    assert_string_equal(t->pool, "db");
    assert_int_equal(t->pool_slots, 2);
    assert_string_equal(t->executor, "local");
    assert_int_equal(t->skip_exit_code, 0);
    assert_int_equal(t->argc, 2);                  /* command from the default */
    assert_string_equal(t->argv[1], "default");

    t = task(d, "c");
    assert_int_equal(t->n_up, 2);
    assert_int_equal(t->pos.line, 19);
    dag_free(d);
}


/* --- the kubernetes block ------------------------------------------------------ */

static void test_kubernetes_block(void **state)
{
    (void)state;
    struct dag *d = load_ok(
        "local def = {executor = 'kubernetes',\n"
        "  kubernetes = {image = 'base:1', namespace = 'ml',\n"
        "                resources = {limits = {cpu = 2, memory = '1Gi'}}}}\n"
        "local d = dag{ id = 'k', default = def }\n"
        "def.kubernetes.resources.limits.memory = '64Gi'  -- frozen: no effect\n"
        "d:task{ id = 'a', command = {'python', 'a.py'},\n"
        "  kubernetes = {image = 'task:2', gpu = 2,\n"
        "    resources = {limits = {memory = '4Gi'}, requests = {cpu = 0.1}},\n"
        "    tolerations = {{key = 'dedicated', operator = 'Equal', value = 'ml',\n"
        "                    effect = 'NoSchedule'}},\n"
        "    volumes = {{name = 'data', pvc = 'claim', mount_path = '/data', read_only = true},\n"
        "               {name = 'tmp', empty_dir = true, mount_path = '/tmp'}},\n"
        "    node_selector = {}, image_pull_secrets = {'regcred'},\n"
        "    affinity = {nodeAffinity = {preferredDuringSchedulingIgnoredDuringExecution =\n"
        "      {{weight = 1, preference = {matchExpressions = {{key = 'z', operator = 'In',\n"
        "        values = {'a'}}}}}}}},\n"
        "    termination_grace = '30s', runtime_class = 'nvidia'} }\n"
        "d:task{ id = 'b', command = {'echo'}, pool = 'big', kubernetes = {gpu = 1} }\n"
        "d:task{ id = 'c', command = {'echo'} }\n");
    const struct dag_task *t = task(d, "a");
    const struct kube_task_spec *ks = t->kube;
    assert_non_null(ks);
    assert_string_equal(ks->image, "task:2");
    assert_string_equal(ks->namespace_, "ml");
    assert_string_equal(ks->limits.cpu, "2");
    assert_string_equal(ks->limits.memory, "4Gi");
    assert_string_equal(ks->requests.cpu, "0.1");        /* tostring()'s text */
    assert_int_equal(ks->gpu, 2);
    assert_string_equal(t->pool, "gpu");
    assert_int_equal(t->pool_slots, 2);
    assert_int_equal(ks->n_tolerations, 1);
    assert_string_equal(ks->tolerations[0].value, "ml");
    assert_int_equal(ks->n_volumes, 2);
    assert_true(ks->volumes[0].read_only);
    assert_int_equal(ks->volumes[1].kind, KUBE_VOL_EMPTY_DIR);
    assert_int_equal(ks->n_node_selector, 0);
    assert_string_equal(ks->image_pull_secrets[0], "regcred");
    assert_null(ks->image_pull_secrets[1]);
    assert_int_equal(ks->termination_grace_s, 30);
    assert_string_equal(ks->runtime_class, "nvidia");
    json_object *terms = json_object_object_get(json_object_object_get(ks->affinity, "nodeAffinity"),
                                                "preferredDuringSchedulingIgnoredDuringExecution");
    assert_true(json_object_is_type(terms, json_type_array));    /* a sequence table: a list */
    assert_int_equal(json_object_get_int(json_object_object_get(
                         json_object_array_get_idx(terms, 0), "weight")), 1);
    t = task(d, "b");
    assert_string_equal(t->kube->image, "base:1");
    assert_string_equal(t->kube->limits.memory, "1Gi");            /* frozen at dag{} */
    assert_string_equal(t->pool, "big");
    t = task(d, "c");
    assert_string_equal(t->kube->image, "base:1");
    assert_int_equal(t->kube->gpu, 0);
    assert_string_equal(t->pool, "default_pool");
    dag_free(d);
}

static void test_err_kubernetes(void **state)
{
    (void)state;
    expect_err("local d = dag{ id = 'a' }\n"
               "d:task{ id = 'x', command = {'echo'},\n"
               "  kubernetes = {resources = {limits = {memory = '1GG'}}} }\n",
               PATH ":2: task 'x': kubernetes.resources.limits.memory: invalid quantity '1GG' "
                    "(expected a number with an optional suffix, like 500m, 2, 1.5Gi or 512Mi)");
    expect_err("local d = dag{ id = 'a' }\n"
               "d:task{ id = 'x', command = {'echo'}, kubernetes = {imgae = 'i', zzz = 1} }\n",
               PATH ":2: task 'x': kubernetes.imgae: unknown key 'imgae' (did you mean 'image'?)");
    expect_err("local d = dag{ id = 'a' }\n"
               "d:task{ id = 'x', command = {'echo'}, kubernetes = {tolerations = {\n"
               "  {key = 'a', operator = 'Exists'}, {key = 'b', effect = 'NoSchedul'}}} }\n",
               PATH ":2: task 'x': kubernetes.tolerations[1].effect: unknown value 'NoSchedul' "
                    "(did you mean 'NoSchedule'?)");
    expect_err("local d = dag{ id = 'a' }\n"
               "d:task{ id = 'x', command = {'echo'}, kubernetes = {volumes = {{pvc = print}}} }\n",
               PATH ":2: task 'x': kubernetes.volumes[0].pvc: must be a string, number, boolean "
                    "or table, got function");
    expect_err("local d = dag{ id = 'a' }\n"
               "d:task{ id = 'x', command = {'echo'}, kubernetes = {node_selector = {'a', b = 1}} }\n",
               PATH ":2: task 'x': kubernetes.node_selector: a table here is a list (1, 2, ...) "
                    "or a map with names as keys, not both");
    expect_err("local t = {}\nt.t = t\n"
               "local d = dag{ id = 'a' }\n"
               "d:task{ id = 'x', command = {'echo'}, kubernetes = {affinity = t} }\n",
               PATH ":4: task 'x': kubernetes.affinity.t.t.t.t.t.t.t.t.t.t.t.t.t.t.t.t.t.t.t.t.t.t."
                    "t.t.t.t.t.t.t.t.t.t.t.t.t.t.t.t.t.t.t.t.t.t.t.t.t.t.t.t.t.t.t.t.t.t.t.t.t.t.t."
                    "t.t.t: too many or too deeply nested values");
    expect_err("local d = dag{ id = 'a', default = {kubernetes = {gpu = -1}} }\n" OK_TASK,
               PATH ":1: 'default': kubernetes.gpu: must be an integer >= 0, got -1");
    expect_err("local d = dag{ id = 'a', default = {executor = 'kubernetes'} }\n" OK_TASK,
               PATH ":2: task 'a': executor kubernetes needs kubernetes.image (the container "
                    "image to run), in the task or the default block");
    expect_err("local d = dag{ id = 'a', default = {kubernetes = {resources = {requests = "
               "{memory = '2Gi'}}}} }\n"
               "d:task{ id = 'x', command = {'echo'}, kubernetes = {resources = {limits = "
               "{memory = '1Gi'}}} }\n",
               PATH ":2: task 'x': kubernetes.resources.requests.memory: request 2Gi is more "
                    "than the limit 1Gi");
    expect_err("local d = dag{ id = 'a' }\n"
               "d:task{ id = 'x', command = {'echo'}, env = {['A B'] = 1}, executor = 'kubernetes',\n"
               "  kubernetes = {image = 'i'} }\n",
               PATH ":2: task 'x': kubernetes: env name 'A B' must consist of letters, digits, "
                    "'_', '-' or '.', and not start with a digit");
    /* a template path is taken from the DAG file's folder */
    expect_err("local d = dag{ id = 'a' }\n"
               "d:task{ id = 'x', command = {'echo'}, kubernetes = {pod_template = 'nope.yaml'} }\n",
               PATH ":2: task 'x': kubernetes.pod_template: cannot read 'dags/nope.yaml': "
                    "No such file or directory");
}

static void test_defaults_frozen_and_schedule_none(void **state)
{
    (void)state;
    /* The default block is read when dag{} runs: changing the table later
     * changes nothing. */
    struct dag *d = load_ok("local def = {retries = 1, command = {'a'}}\n"
                            "local d = dag{ id = 'x', schedule = 'none', default = def }\n"
                            "def.retries = 9\n"
                            "def.command[1] = 'b'\n"
                            "d:task{ id = 't' }\n");
    assert_null(d->schedule);
    assert_int_equal(task(d, "t")->retries, 1);
    assert_string_equal(task(d, "t")->argv[0], "a");
    assert_int_equal(d->max_active_runs, 16);
    dag_free(d);
}

static void test_which_dag(void **state)
{
    (void)state;
    /* No id: the file name.  No return: the only dag{}. */
    struct dag *d = load_ok("dag{}:task{ id = 'a', command = {'echo'} }\n");
    assert_string_equal(d->id, "t");
    dag_free(d);
    /* Two dag{} calls: the one returned. */
    d = load_ok("local one = dag{ id = 'one' }\n"
                "local two = dag{ id = 'two' }\n"
                "one:task{ id = 'a', command = {'echo'} }\n"
                "two:task{ id = 'b', command = {'echo'} }\n"
                "return two\n");
    assert_string_equal(d->id, "two");
    assert_string_equal(d->tasks[0].id, "b");
    dag_free(d);
    expect_err("local one = dag{ id = 'one' }\nlocal two = dag{ id = 'two' }\n",
               PATH ": 2 DAGs were made with dag{}: return the one this file defines "
                    "(return d)");
    expect_err("local x = 1\n",
               PATH ": no DAG: call dag{ id = \"...\" } and add tasks with d:task{ ... }");
    expect_err("local d = dag{ id = 'a' }\n" OK_TASK "return 42\n",
               PATH ": the file returned 42: return the value of dag{ ... }, or nothing");
    expect_err("dag{ id = 'a' }\n",
               PATH ": dag 'a' has no tasks: add them with d:task{ ... }");
    /* A dag{} that failed (and was caught) does not count. */
    d = load_ok("pcall(dag, { id = 'bad id' })\n"
                "dag{ id = 'good' }:task{ id = 'a', command = {'echo'} }\n");
    assert_string_equal(d->id, "good");
    dag_free(d);
}

static void test_load_text_chunks(void **state)
{
    (void)state;
    /* load() still works for text, with an environment of its own. */
    struct dag *d = load_ok("local n = load('return 1 + 1')()\n"
                            "local f = load('x = 5', 'chunk', 't', {})\n"
                            "f()\n"
                            "assert(n == 2 and x == nil)\n"
                            "local d = dag{ id = 'a' }\n"
                            "local parts = {}\n"
                            "for w in ('a-b-c'):gmatch('%a') do parts[#parts + 1] = w end\n"
                            "d:task{ id = table.concat(parts, '_'), command = {'echo'} }\n");
    assert_string_equal(d->tasks[0].id, "a_b_c");
    dag_free(d);
}

static void test_same_file_same_dag(void **state)
{
    (void)state;
    /* math.random starts from a fixed seed, so a file that uses it still
     * gives the same DAG on every load. */
    const char *src = "local d = dag{ id = 'r' }\n"
                      "d:task{ id = 't' .. math.random(1000000), command = {'echo'} }\n";
    struct dag *a = load_ok(src), *b = load_ok(src);
    assert_string_equal(a->tasks[0].id, b->tasks[0].id);
    dag_free(a);
    dag_free(b);
}

/* --- validation: the YAML loader's checks, with Lua positions --------------- */

static void test_err_unknown_keys(void **state)
{
    (void)state;
    expect_err("local d = dag{ id = 'a' }\n"
               "d:task{ id = 'x', command = {'echo'},\n"
               "        retires = 1 }\n",
               PATH ":2: task 'x': unknown key 'retires' (did you mean 'retries'?)");
    expect_err("local d = dag{ id = 'a' }\n"
               "d:task{ id = 'x', command = {'echo'}, image = 'y', zzz = 1 }\n",
               PATH ":2: task 'x': unknown key 'image' (valid keys: id, command, deps, env, "
                    "cwd, retries, retry_delay, max_retry_delay, timeout, "
                    "retry_exponential_backoff, trigger_rule, priority_weight, pool, "
                    "pool_slots, executor, skip_exit_code, description, kubernetes)");
    expect_err("local d = dag{ id = 'a', shedule = '@daily' }\n",
               PATH ":1: dag{}: unknown key 'shedule' (did you mean 'schedule'?)");
    expect_err("local d = dag{ id = 'a', tasks = {} }\n",
               PATH ":1: dag{}: unknown key 'tasks' (valid keys: id, description, schedule, "
                    "timezone, start_date, end_date, catchup, max_active_runs, max_active_tasks, "
                    "params, default)");
    expect_err("local d = dag{ id = 'a',\n"
               "  default = {retries = 1, timout = '5m'} }\n",
               PATH ":1: 'default': unknown key 'timout' (did you mean 'timeout'?)");
    expect_err("local d = dag{ id = 'a', default = {id = 'x'} }\n",
               PATH ":1: 'default': unknown key 'id' (did you mean 'cwd'?)");
    expect_err("local d = dag{ 'a' }\n", PATH ":1: dag{}: keys must be names, got 1");
    expect_err("local d = dag{ id = 'a' }\nd:task{ id = 'x', 'echo' }\n",
               PATH ":2: task 'x': keys must be names, got 1");
}

static void test_err_task_shape(void **state)
{
    (void)state;
    expect_err("local d = dag{ id = 'a' }\nd:task{ command = {'echo'} }\n",
               PATH ":2: a task needs an 'id': d:task{ id = \"train\", command = {...} }");
    expect_err("local d = dag{ id = 'a' }\nd:task{ id = 5, command = {'echo'} }\n",
               PATH ":2: task 'id' must be a string, got 5");
    expect_err("local d = dag{ id = 'a' }\nd:task{ id = 'bad id', command = {'echo'} }\n",
               PATH ":2: invalid task id 'bad id' (use letters, digits, '_', '-' and '.', "
                    "not starting with '.')");
    expect_err("local d = dag{ id = 'a' }\nd:task{ id = '.hidden', command = {'echo'} }\n",
               PATH ":2: invalid task id '.hidden' (use letters, digits, '_', '-' and '.', "
                    "not starting with '.')");
    expect_err("local d = dag{ id = 'a' }\nd:task('x')\n",
               PATH ":2: d:task{ ... } takes a table of task settings, got 'x'");
    expect_err("local d = dag{ id = 'a' }\nd.task{ id = 'x', command = {'echo'} }\n",
               PATH ":2: call task with a colon, on the value dag{} returned: "
                    "d:task{ ... } (got a table)");
    expect_err("local d = dag('a')\n",
               PATH ":1: dag{ ... } takes a table of DAG settings, got 'a'");
    expect_err("local d = dag{ id = 'a' }\nd.retries = 3\n",
               PATH ":2: a dag has no fields to set: add tasks with d:task{ ... }");
    expect_err("local d = dag{ id = 'a' }\n"
               "d:task{ id = 'x', command = {'echo'} }\n"
               "d:task{ id = 'y', deps = {'x'} }\n",
               PATH ":3: task 'y' has no 'command'");
}

static void test_err_command(void **state)
{
    (void)state;
    expect_err("local d = dag{ id = 'a' }\nd:task{ id = 'x', command = 'echo hello' }\n",
               PATH ":2: task 'x': 'command' must be a list of arguments (argv), "
                    "e.g. {\"echo\", \"hello\"}; for a shell write {\"sh\", \"-c\", \"...\"}");
    expect_err("local d = dag{ id = 'a' }\nd:task{ id = 'x', command = {} }\n",
               PATH ":2: task 'x': 'command' must not be empty: give the program and its "
                    "arguments, e.g. {\"echo\", \"hello\"}");
    expect_err("local d = dag{ id = 'a' }\nd:task{ id = 'x', command = {'', 'y'} }\n",
               PATH ":2: task 'x': 'command' must start with the program to run");
    expect_err("local d = dag{ id = 'a' }\nd:task{ id = 'x', command = {'echo', {1}} }\n",
               PATH ":2: task 'x': 'command' arguments must be strings, got a table");
    expect_err("local d = dag{ id = 'a' }\nd:task{ id = 'x', command = {'echo', true} }\n",
               PATH ":2: task 'x': 'command' arguments must be strings, got true");
    expect_err("local d = dag{ id = 'a' }\nd:task{ id = 'x', command = {'echo', 'a\\0b'} }\n",
               PATH ":2: task 'x': 'command' arguments must not contain a NUL character");
    expect_err("local d = dag{ id = 'a' }\n"
               "d:task{ id = 'x', command = {'echo', nil, 'b'} }\n",
               PATH ":2: task 'x': 'command' must be a list of arguments (argv), "
                    "e.g. {\"echo\", \"hello\"}, got a table with keys other than 1, 2, 3 ...");
    expect_err("local d = dag{ id = 'a' }\nd:task{ id = 'x', command = {echo = 'hi'} }\n",
               PATH ":2: task 'x': 'command' must be a list of arguments (argv), "
                    "e.g. {\"echo\", \"hello\"}, got a table with keys other than 1, 2, 3 ...");
    expect_err("local d = dag{ id = 'a' }\nd:task{ id = 'x', command = 5 }\n",
               PATH ":2: task 'x': 'command' must be a list of arguments (argv), "
                    "e.g. {\"echo\", \"hello\"}, got 5");
}

static void test_err_numbers(void **state)
{
    (void)state;
    expect_err("local d = dag{ id = 'a' }\nd:task{ id = 'x', command = {'e'}, retries = 'abc' }\n",
               PATH ":2: task 'x': 'retries' must be a non-negative integer, got 'abc'");
    expect_err("local d = dag{ id = 'a' }\nd:task{ id = 'x', command = {'e'}, retries = -1 }\n",
               PATH ":2: task 'x': 'retries' must be a non-negative integer, got -1");
    expect_err("local d = dag{ id = 'a' }\nd:task{ id = 'x', command = {'e'}, retries = 1.5 }\n",
               PATH ":2: task 'x': 'retries' must be a non-negative integer, got 1.5");
    expect_err("local d = dag{ id = 'a' }\n"
               "d:task{ id = 'x', command = {'e'}, retries = 2^40 }\n",
               PATH ":2: task 'x': 'retries' must be a non-negative integer, "
                    "got 1099511627776.0");
    expect_err("local d = dag{ id = 'a' }\n"
               "d:task{ id = 'x', command = {'e'}, retries = math.maxinteger }\n",
               PATH ":2: task 'x': 'retries' must be a non-negative integer, "
                    "got 9223372036854775807");
    expect_err("local d = dag{ id = 'a' }\n"
               "d:task{ id = 'x', command = {'e'}, priority_weight = 'high' }\n",
               PATH ":2: task 'x': 'priority_weight' must be an integer, got 'high'");
    expect_err("local d = dag{ id = 'a', max_active_runs = 0 }\n",
               PATH ":1: dag{}: 'max_active_runs' must be a positive integer, got 0");
    expect_err("local d = dag{ id = 'a', max_active_tasks = 'lots' }\n",
               PATH ":1: dag{}: 'max_active_tasks' must be a positive integer, got 'lots'");
    expect_err("local d = dag{ id = 'a' }\n"
               "d:task{ id = 'x', command = {'e'}, pool_slots = 0 }\n",
               PATH ":2: task 'x': 'pool_slots' must be a positive integer, got 0");
    expect_err("local d = dag{ id = 'a' }\n"
               "d:task{ id = 'x', command = {'e'}, skip_exit_code = 256 }\n",
               PATH ":2: task 'x': 'skip_exit_code' must be an integer from 0 to 255, got 256");
}

static void test_err_bools_strings_durations(void **state)
{
    (void)state;
    expect_err("local d = dag{ id = 'a', catchup = 'yes' }\n",
               PATH ":1: dag{}: 'catchup' must be true or false, got 'yes'");
    expect_err("local d = dag{ id = 'a' }\n"
               "d:task{ id = 'x', command = {'e'}, retry_exponential_backoff = 1 }\n",
               PATH ":2: task 'x': 'retry_exponential_backoff' must be true or false, got 1");
    expect_err("local d = dag{ id = 'a', schedule = 5 }\n",
               PATH ":1: dag{}: 'schedule' must be a string, got 5");
    expect_err("local d = dag{ id = 'a' }\nd:task{ id = 'x', command = {'e'}, cwd = {} }\n",
               PATH ":2: task 'x': 'cwd' must be a string, got a table");
    expect_err("local d = dag{ id = 'a' }\n"
               "d:task{ id = 'x', command = {'e'}, retry_delay = 'soon' }\n",
               PATH ":2: task 'x': 'retry_delay' must be a duration like 30s, 5m or 1h, "
                    "got 'soon'");
    expect_err("local d = dag{ id = 'a' }\nd:task{ id = 'x', command = {'e'}, timeout = 1.5 }\n",
               PATH ":2: task 'x': 'timeout' must be a duration like 30s, 5m or 1h, got 1.5");
    expect_err("local d = dag{ id = 'a' }\n"
               "d:task{ id = 'x', command = {'e'}, timeout = '-5s' }\n",
               PATH ":2: task 'x': 'timeout' must be a duration like 30s, 5m or 1h, got '-5s'");
    expect_err("local d = dag{ id = 'a' }\n"
               "d:task{ id = 'x', command = {'e'}, max_retry_delay = true }\n",
               PATH ":2: task 'x': 'max_retry_delay' must be a duration like 30s, 5m or 1h, "
                    "got true");
    expect_err("local d = dag{ id = 'a' }\n"
               "d:task{ id = 'x', command = {'e'}, description = 1 }\n",
               PATH ":2: task 'x': 'description' must be a string, got 1");
}

static void test_err_choices(void **state)
{
    (void)state;
    expect_err("local d = dag{ id = 'a' }\n"
               "d:task{ id = 'x', command = {'e'}, trigger_rule = 'all_sucess' }\n",
               PATH ":2: task 'x': unknown trigger_rule 'all_sucess' "
                    "(did you mean 'all_success'?)");
    expect_err("local d = dag{ id = 'a' }\n"
               "d:task{ id = 'x', command = {'e'}, trigger_rule = 'whenever' }\n",
               PATH ":2: task 'x': unknown trigger_rule 'whenever' (valid rules: all_success, "
                    "all_failed, all_done, all_skipped, one_success, one_failed, one_done, "
                    "none_failed, none_failed_min_one_success, none_skipped, always)");
    expect_err("local d = dag{ id = 'a' }\n"
               "d:task{ id = 'x', command = {'e'}, executor = 'docker' }\n",
               PATH ":2: task 'x': unknown executor 'docker' (valid executors: local, "
                    "kubernetes)");
    expect_err("local d = dag{ id = 'a', default = {executor = 'kubernets'} }\n",
               PATH ":1: 'default': unknown executor 'kubernets' (did you mean 'kubernetes'?)");
    expect_err("local d = dag{ id = 'a' }\n"
               "d:task{ id = 'x', command = {'e'}, trigger_rule = 1 }\n",
               PATH ":2: task 'x': 'trigger_rule' must be a string, got 1");
    expect_err("local d = dag{ id = 'a' }\n"
               "d:task{ id = 'x', command = {'e'}, pool = 'my pool' }\n",
               PATH ":2: task 'x': invalid pool name 'my pool' (use letters, digits, '_', '-' "
                    "and '.', not starting with '.')");
    expect_err("local d = dag{ id = 'a' }\n"
               "d:task{ id = 'x', command = {'e'}, kubernetes = 'kiln-tasks:latest' }\n",
               PATH ":2: task 'x': 'kubernetes' must be a table, got 'kiln-tasks:latest'");
}

static void test_err_env_params(void **state)
{
    (void)state;
    expect_err("local d = dag{ id = 'a' }\nd:task{ id = 'x', command = {'e'}, env = 'A=1' }\n",
               PATH ":2: task 'x': 'env' must be a table of names to values, like "
                    "{NAME = \"value\"}, got 'A=1'");
    expect_err("local d = dag{ id = 'a' }\n"
               "d:task{ id = 'x', command = {'e'}, env = {A = {1, 2}} }\n",
               PATH ":2: task 'x': 'env' value for 'A' must be a string or number, got a table");
    expect_err("local d = dag{ id = 'a' }\n"
               "d:task{ id = 'x', command = {'e'}, env = {['A=B'] = 'c'} }\n",
               PATH ":2: task 'x': invalid name 'A=B' in 'env'");
    expect_err("local d = dag{ id = 'a' }\n"
               "d:task{ id = 'x', command = {'e'}, env = {'A=1'} }\n",
               PATH ":2: task 'x': 'env' names must be strings, got 1");
    expect_err("local d = dag{ id = 'a', params = {lr = {0.1, 0.2}} }\n",
               PATH ":1: dag{}: 'params' value for 'lr' must be a string, number or boolean, or a "
               "table like {type = \"number\", default = 0.1}, got a table");
    expect_err("local d = dag{ id = 'a', params = {['learning rate'] = 0.1} }\n",
               PATH ":1: dag{}: invalid name 'learning rate' in 'params' (use letters, digits, "
                    "'_', '-' and '.', not starting with '.')");
    expect_err("local d = dag{ id = 'a', params = 3 }\n",
               PATH ":1: dag{}: 'params' must be a table of names to values, like "
                    "{NAME = \"value\"}, got 3");
    /* Of two bad names, the one that sorts first is reported. */
    expect_err("local d = dag{ id = 'a', params = {['z z'] = 1, ['a a'] = 2, ok = 3} }\n",
               PATH ":1: dag{}: invalid name 'a a' in 'params' (use letters, digits, '_', '-' "
                    "and '.', not starting with '.')");
}

static void test_err_deps_and_graph(void **state)
{
    (void)state;
    expect_err("local d = dag{ id = 'a' }\n"
               OK_TASK
               "d:task{ id = 'b', command = {'e'}, deps = {x = 'a'} }\n",
               PATH ":3: task 'b': 'deps' must be a list of task ids, got a table with keys "
                    "other than 1, 2, 3 ...");
    expect_err("local d = dag{ id = 'a' }\n"
               OK_TASK
               "d:task{ id = 'b', command = {'e'}, deps = {'a', {'c'}} }\n",
               PATH ":3: task 'b': 'deps' entries must be task ids, got a table");
    expect_err("local d = dag{ id = 'a' }\n"
               OK_TASK
               "d:task{ id = 'b', command = {'e'}, deps = 7 }\n",
               PATH ":3: task 'b': 'deps' must be a list of task ids, got 7");
    /* dag_finalize's checks, positioned at the d:task line (no column). */
    expect_err("local d = dag{ id = 'a' }\n"
               "d:task{ id = 'extract', command = {'e'} }\n"
               "d:task{ id = 'load', command = {'e'} }\n"
               "d:task{ id = 'transform', command = {'e'}, deps = {'extract', 'lod'} }\n",
               PATH ":4: task 'transform' depends on unknown task 'lod' (did you mean 'load'?)");
    expect_err("local d = dag{ id = 'a' }\n"
               "d:task{ id = 'load', command = {'e'} }\n"
               "d:task{ id = 'other', command = {'e'} }\n"
               "d:task{ id = 'load', command = {'e', 'again'} }\n",
               PATH ":4: duplicate task id 'load' (first defined at line 2)");
    expect_err_code("local d = dag{ id = 'a' }\n"
                    "d:task{ id = 'start', command = {'e'} }\n"
                    "d:task{ id = 'a', command = {'e'}, deps = {'start', 'c'} }\n"
                    "d:task{ id = 'b', command = {'e'}, deps = 'a' }\n"
                    "d:task{ id = 'c', command = {'e'}, deps = 'b' }\n",
                    KILN_ECYCLE, PATH ":3: dependency cycle: a -> b -> c -> a");
    expect_err_code("local d = dag{ id = 'a' }\n"
                    "d:task{ id = 'a', command = {'e'}, deps = 'a' }\n",
                    KILN_ECYCLE, PATH ":2: dependency cycle: a -> a");
}

static void test_err_ids(void **state)
{
    (void)state;
    expect_err("local d = dag{ id = 'my/dag' }\n",
               PATH ":1: dag{}: invalid dag id 'my/dag' (use letters, digits, '_', '-' and '.', "
                    "not starting with '.')");
    expect_err("local d = dag{ id = {'a'} }\n",
               PATH ":1: dag{}: 'id' must be a string, got a table");
    struct dag *d = (struct dag *)1;
    struct kiln_err err = {0};
    const char *src = "dag{}:task{ id = 'a', command = {'echo'} }\n";
    assert_int_equal(load_lua_buf("dags/my dag.lua", src, strlen(src), &d, &err), KILN_EINVALID);
    assert_null(d);
    assert_string_equal(err.msg, "dags/my dag.lua:1: dag{}: no 'id', and the file name 'my dag' "
                                 "is not a valid dag id (use letters, digits, '_', '-' and '.', "
                                 "not starting with '.')");
}

static void test_err_lua_errors(void **state)
{
    (void)state;
    /* Lua's own errors carry FILE:LINE too, with the full path. */
    expect_err("local d = dag{ id = 'a' }\n\nerror('boom')\n", PATH ":3: boom");
    expect_err("local function f()\n  error('deep', 0)\nend\nf()\n", PATH ":2: deep");
    expect_err("error({})\n", PATH ":1: (error object is a table value)");
    expect_err("local x = nil\nlocal y = x.field\n",
               PATH ":2: attempt to index a nil value (local 'x')");
    expect_err("local t = setmetatable({}, {__index = function(t, k) return t[k] end})\n"
               "local _ = t.x\n",
               PATH ":1: C stack overflow");
    expect_err_code("local d = = 1\n", KILN_EPARSE, PATH ":1: unexpected symbol near '='");
    expect_err_code("local s = 'open\n", KILN_EPARSE, PATH ":1: unfinished string near ''open'");
    /* A long path is not shortened the way Lua shortens chunk names. */
    char path[200];
    memset(path, 'p', sizeof path);
    memcpy(path + sizeof path - 5, ".lua", 5);
    struct dag *d = (struct dag *)1;
    struct kiln_err err = {0};
    const char *src = "local d = dag{ id = 'a' }\nerror('boom')\n";
    assert_int_equal(load_lua_buf(path, src, strlen(src), &d, &err), KILN_EINVALID);
    char *want = xasprintf("%s:2: boom", path);
    assert_string_equal(err.msg, want);
    free(want);
    kiln_err_clear(&err);
    src = "local d = dag{ id = 'a' }\nd:task{ id = 'x', command = 'e' }\n";
    assert_int_equal(load_lua_buf(path, src, strlen(src), &d, &err), KILN_EINVALID);
    want = xasprintf("%s:2: task 'x': 'command' must be a list of arguments (argv), "
                     "e.g. {\"echo\", \"hello\"}; for a shell write {\"sh\", \"-c\", \"...\"}",
                     path);
    assert_string_equal(err.msg, want);
    free(want);
    /* A validation error caught by pcall is the file's own business. */
    d = load_ok("local d = dag{ id = 'a' }\n"
                "local ok, e = pcall(d.task, d, { id = 'x', retires = 1 })\n"
                "assert(not ok and e == \"" PATH ":2: task 'x': unknown key 'retires' "
                "(did you mean 'retries'?)\")\n"
                "d:task{ id = 'y', command = {'echo'} }\n");
    assert_int_equal(d->n_tasks, 1);
    dag_free(d);
}

/* --- the sandbox: every escape refused --------------------------------------- */

static void test_escape_io(void **state)
{
    (void)state;
    expect_err("local f = io.open('/etc/passwd')\n",
               PATH ":1: attempt to index a nil value (global 'io')");
    expect_err("local p = io.popen('id')\n",
               PATH ":1: attempt to index a nil value (global 'io')");
    expect_err("local l = io.lines('/etc/passwd')\n",
               PATH ":1: attempt to index a nil value (global 'io')");
}

static void test_escape_os(void **state)
{
    (void)state;
    expect_err("os.execute('touch /tmp/kiln-escaped')\n",
               PATH ":1: attempt to call a nil value (field 'execute')");
    expect_err("os.remove('/tmp/x')\n", PATH ":1: attempt to call a nil value (field 'remove')");
    expect_err("os.rename('/tmp/x', '/tmp/y')\n",
               PATH ":1: attempt to call a nil value (field 'rename')");
    expect_err("os.exit(1)\n", PATH ":1: attempt to call a nil value (field 'exit')");
    expect_err("local n = os.tmpname()\n",
               PATH ":1: attempt to call a nil value (field 'tmpname')");
    expect_err("local v = os.getenv('HOME')\n",
               PATH ":1: attempt to call a nil value (field 'getenv')");
    expect_err("os.setlocale('C')\n", PATH ":1: attempt to call a nil value (field 'setlocale')");
    /* What is left: time, date, clock, and nothing else. */
    struct dag *d = load_ok("local n = 0\n"
                            "for k in pairs(os) do n = n + 1 end\n"
                            "assert(n == 3 and os.time and os.date and os.clock)\n"
                            MINIMAL);
    dag_free(d);
}

static void test_escape_require_package(void **state)
{
    (void)state;
    expect_err("local m = require('os')\n",
               PATH ":1: attempt to call a nil value (global 'require')");
    expect_err("local p = package.loaded\n",
               PATH ":1: attempt to index a nil value (global 'package')");
    expect_err("dofile('/etc/passwd')\n", PATH ":1: attempt to call a nil value (global 'dofile')");
    expect_err("loadfile('/etc/passwd')\n",
               PATH ":1: attempt to call a nil value (global 'loadfile')");
    expect_err("collectgarbage('stop')\n",
               PATH ":1: attempt to call a nil value (global 'collectgarbage')");
    expect_err("local r = debug.getregistry()\n",
               PATH ":1: attempt to index a nil value (global 'debug')");
    expect_err("debug.sethook()\n", PATH ":1: attempt to index a nil value (global 'debug')");
}

/* A compiled chunk, made with string.dump in a separate, unrestricted state:
 * the sandbox has no way to make one. */
static char *binary_chunk(size_t *len)
{
    lua_State *L = luaL_newstate();
    luaL_openlibs(L);
    const char *make = "return string.dump(load(\"os.execute('touch /tmp/kiln-escaped')\"))";
    assert_int_equal(luaL_dostring(L, make), LUA_OK);
    const char *s = lua_tolstring(L, -1, len);
    assert_non_null(s);
    assert_int_equal(s[0], 0x1b); /* LUA_SIGNATURE */
    char *copy = xmalloc(*len);
    memcpy(copy, s, *len);
    lua_close(L);
    return copy;
}

static void test_escape_binary_chunk(void **state)
{
    (void)state;
    size_t len;
    char *bin = binary_chunk(&len);
    /* The bytes as a Lua string literal, then load() asked for them in
     * binary mode, in the default mode, and through a reader function. */
    struct sbuf lit;
    sbuf_init(&lit);
    sbuf_adds(&lit, "\"");
    for (size_t i = 0; i < len; i++)
        sbuf_printf(&lit, "\\%03u", (unsigned char)bin[i]);
    sbuf_adds(&lit, "\"");
    static const char *const calls[] = {"load(bin, 'x', 'b')", "load(bin)",
                                        "load(bin, 'x', 'bt')",
                                        "load(function() local s = bin; bin = nil; return s end)"};
    for (size_t i = 0; i < ARRAY_LEN(calls); i++) {
        char *src = xasprintf("local bin = %s\n"
                              "local f, e = %s\n"
                              "assert(f == nil)\n"
                              "error(e)\n",
                              lit.data, calls[i]);
        expect_err(src, PATH ":4: attempt to load a binary chunk (mode is 't')");
        free(src);
    }
    /* The file itself may not be a compiled chunk either. */
    expect_err_limits(bin, len, NULL, KILN_EPARSE,
                      PATH ": attempt to load a binary chunk (mode is 't')");
    sbuf_free(&lit);
    free(bin);
}

static void test_escape_string_dump(void **state)
{
    (void)state;
    expect_err("local s = string.dump(print)\n",
               PATH ":1: attempt to call a nil value (field 'dump')");
    /* The string metatable's __index is the same, trimmed table. */
    expect_err("local s = ('').dump(print)\n",
               PATH ":1: attempt to call a nil value (field 'dump')");
    struct dag *d = load_ok("local mt = getmetatable('')\n"
                            "assert(mt.__index == string and rawget(mt.__index, 'dump') == nil)\n"
                            "mt.__index = function(s, k) return rawget(string, k) end\n"
                            "assert(('x').dump == nil and ('x'):upper() == 'X')\n"
                            MINIMAL);
    dag_free(d);
}

static void test_escape_setmetatable_gc(void **state)
{
    (void)state;
    /* Finalizers run with hooks off, at lua_close: a looping one would hang. */
    expect_err("setmetatable({}, {__gc = function() while true do end end})\n",
               PATH ":1: __gc metamethods are not allowed in DAG files");
    /* Added after setmetatable, __gc never marks the object (Lua 5.4). */
    struct dag *d = load_ok("local mt = {}\n"
                            "local t = setmetatable({}, mt)\n"
                            "mt.__gc = function() while true do end end\n"
                            "t = nil\n"
                            MINIMAL);
    dag_free(d);
    expect_err("local d = dag{ id = 'a' }\n"
               "local mt = getmetatable(d)\n"
               "mt.__gc = 1\n",
               PATH ":3: attempt to index a string value (local 'mt')");
}

static void test_escape_coroutine(void **state)
{
    (void)state;
    /* coroutine is not opened: a coroutine would have a hook count of its own. */
    expect_err("local co = coroutine.wrap(function() while true do end end)\n",
               PATH ":1: attempt to index a nil value (global 'coroutine')");
    expect_err("local ok = pcall(function()\n"
               "  coroutine.wrap(function() while true do end end)()\n"
               "end)\n"
               "assert(not ok)\n"
               "while true do end\n",
               PATH ": stopped after 10000000 instructions");
}

static void test_escape_endless_loop(void **state)
{
    (void)state;
    double t0 = now_ms();
    expect_err("local d = dag{ id = 'a' }\n" OK_TASK "while true do end\n",
               PATH ": stopped after 10000000 instructions");
    expect_err("local function f(n) return f(n + 1) end\nf(1)\n",
               PATH ": stopped after 10000000 instructions");
    expect_err("for i = 1, math.maxinteger do local x = i * 2 end\n",
               PATH ": stopped after 10000000 instructions");
    /* 10 million instructions are well under a second (each loop ~40 ms). */
    assert_true(now_ms() - t0 < 10000);
}

static void test_escape_loop_in_pcall(void **state)
{
    (void)state;
    /* pcall catches the first "stopped", but every instruction after it
     * raises again, and the flag decides the outcome. */
    expect_err("while true do pcall(function() while true do end end) end\n",
               PATH ": stopped after 10000000 instructions");
    expect_err("pcall(function() while true do end end)\n" MINIMAL,
               PATH ": stopped after 10000000 instructions");
    expect_err("xpcall(function() while true do end end,\n"
               "       function() while true do end end)\n" MINIMAL,
               PATH ": stopped after 10000000 instructions");
    /* A to-be-closed variable's __close runs while the error unwinds; it
     * is stopped too. */
    expect_err("do\n"
               "  local x <close> = setmetatable({}, {__close = function()\n"
               "    while true do end\n"
               "  end})\n"
               "  while true do end\n"
               "end\n",
               PATH ": stopped after 10000000 instructions");
    expect_err("local t = setmetatable({}, {__index = function() while true do end end})\n"
               "local ok = pcall(function() return t.x end)\n"
               "local ok2 = pcall(error, 'again')\n" MINIMAL,
               PATH ": stopped after 10000000 instructions");
}

static void test_escape_memory_bomb(void **state)
{
    (void)state;
    expect_err("local s = string.rep('x', 1e9)\n",
               PATH ": stopped: memory limit of 64 MiB exceeded");
    expect_err("local t = {}\nfor i = 1, 1e9 do t[i] = i end\n",
               PATH ": stopped: memory limit of 64 MiB exceeded");
    expect_err("local s = 'x'\nwhile true do s = s .. s end\n",
               PATH ": stopped: memory limit of 64 MiB exceeded");
    expect_err("local t = {}\nfor i = 1, 1e9 do t[#t + 1] = {i} end\n",
               PATH ": stopped: memory limit of 64 MiB exceeded");
    /* Caught by pcall: the file still stops. */
    expect_err("local ok = pcall(string.rep, 'x', 1e9)\nassert(not ok)\n" MINIMAL,
               PATH ": stopped: memory limit of 64 MiB exceeded");
    expect_err("while true do\n"
               "  pcall(function() local t = {} for i = 1, 1e9 do t[i] = i end end)\n"
               "end\n",
               PATH ": stopped: memory limit of 64 MiB exceeded");
    expect_err("local s = string.rep('x', 1 << 20)\n"
               "local t = {}\n"
               "for i = 1, 100 do t[i] = s end\n"
               "local ok = pcall(table.concat, t)\nassert(not ok)\n" MINIMAL,
               PATH ": stopped: memory limit of 64 MiB exceeded");
    /* string.rep refuses a result that cannot fit before making it. */
    double t0 = now_ms();
    expect_err("local ok = pcall(string.rep, '', 1e15, ',')\n" MINIMAL,
               PATH ": stopped: memory limit of 64 MiB exceeded");
    expect_err("local s = string.rep('abc', math.maxinteger, 'de')\n",
               PATH ": stopped: memory limit of 64 MiB exceeded");
    assert_true(now_ms() - t0 < 1000);
}

static void test_escape_deep_recursion(void **state)
{
    (void)state;
    /* Lua's limit is a million stack slots; the memory cap comes first, and
     * the message says why. */
    expect_err("local function f() return 1 + f() end\nf()\n",
               PATH ": stopped: memory limit of 64 MiB exceeded (more than 100000 nested calls: "
                    "endless recursion?)");
    expect_err("local function f() return 1 + f() end\nprint(pcall(f))\n" MINIMAL,
               PATH ": stopped: memory limit of 64 MiB exceeded (more than 100000 nested calls: "
                    "endless recursion?)");
    /* With room to spare, Lua's own limit answers, cleanly. */
    struct load_lua_limits lim = load_lua_default_limits;
    lim.memory = (size_t)512 << 20;
    const char *src = "local function f() return 1 + f() end\nf()\n";
    expect_err_limits(src, strlen(src), &lim, KILN_EINVALID, PATH ":1: stack overflow");
    /* An error 150,000 calls deep in a load()ed chunk: the search for the
     * file's own line looks at the innermost 200 levels only (looking at
     * all of them took d^2 / 2 steps, 40 s here, past every limit). */
    double t0 = now_ms();
    expect_err("local f = load('local function f(n) if n == 0 then error(\"x\") end "
               "return 1 + f(n - 1) end return f')()\n"
               "f(150000)\n",
               PATH ": [string \"local function f(n) if n == 0 then error(\"x\")...\"]:1: x");
    assert_true(now_ms() - t0 < 2000);
}

#define NO_REPETITION "patterns in DAG files have no repetition (* + - ?), which can " \
                      "backtrack for hours; "
#define NO_BALANCED "patterns in DAG files have no balanced matches (%b) or " \
                    "back-references (%1-%9)"
#define WALK_LIMIT "in DAG files a table function walks at most 10000000 elements"
#define PLAIN_TABLES "in DAG files the table functions take plain tables"

static void test_escape_c_loops(void **state)
{
    (void)state;
    /* Library functions that loop in C, where no hook runs, are refused at
     * once where their loop could be long: backtracking patterns ... */
    double t0 = now_ms();
    expect_err("local s = string.rep('a', 100):find('.-.-.-.-.-.-.-.-b')\n",
               PATH ":1: string.find: pattern '.-.-.-.-.-.-.-.-b' repeats an item with '-': "
                    NO_REPETITION "write %- for the character itself, or "
                    "string.find(s, text, 1, true) for plain text");
    expect_err("local n = ('x'):rep(1e5):gsub('x*y*x*y*x*y*z', '')\n",
               PATH ":1: string.gsub: pattern 'x*y*x*y*x*y*z' repeats an item with '*': "
                    NO_REPETITION "write %* for the character itself");
    expect_err("for w in ('a,b'):gmatch('[^,]+') do end\n",
               PATH ":1: string.gmatch: pattern '[^,]+' repeats an item with '+': "
                    NO_REPETITION "write %+ for the character itself");
    expect_err("local m = ('ab'):match('^(a?)b')\n",
               PATH ":1: string.match: pattern '^(a?)b' repeats an item with '?': "
                    NO_REPETITION "write %? for the character itself");
    expect_err("local m = ('((((('):rep(1e4):match('%b()')\n",
               PATH ":1: string.match: pattern '%b()' uses %b: " NO_BALANCED);
    expect_err("local m = ('aa'):match('(a)%1')\n",
               PATH ":1: string.match: pattern '(a)%1' uses %1: " NO_BALANCED);
    /* ... table functions over ranges longer than any real table ... */
    expect_err("table.move({}, 1, math.maxinteger - 1, 2)\n",
               PATH ":1: table.move: elements 1 to 9223372036854775806: " WALK_LIMIT);
    expect_err("local s = table.concat({}, '', 1, math.maxinteger)\n",
               PATH ":1: table.concat: elements 1 to 9223372036854775807: " WALK_LIMIT);
    /* (#t is a border, which can lie far past the elements a table holds:
     * 62 elements here, #t = 2^61 with Lua 5.4's border search.) */
    expect_err("local t = {}\n"
               "for k = 61, 0, -1 do t[1 << k] = true end\n"
               "table.insert(t, 1, 'x')\n",
               PATH ":3: table.insert: elements 1 to 2305843009213693952: " WALK_LIMIT);
    /* ... and tables whose metamethods could make every step a call, or
     * claim any length. */
    expect_err("local t = setmetatable({}, {__len = function() return math.maxinteger - 2 end})\n"
               "table.insert(t, 1, 'x')\n",
               PATH ":2: table.insert: the table has an __len metamethod: " PLAIN_TABLES);
    expect_err("local t = setmetatable({}, {__index = table.concat})\n"
               "local s = table.concat(t, '', 1, 100)\n",
               PATH ":2: table.concat: the table has an __index metamethod: " PLAIN_TABLES);
    expect_err("table.move({1}, 1, 1, 1, setmetatable({}, {__newindex = rawset}))\n",
               PATH ":1: table.move: the table has an __newindex metamethod: " PLAIN_TABLES);
    expect_err("local s = ('x'):gsub('x', setmetatable({}, {__index = table.concat}))\n",
               PATH ":1: string.gsub: the table has an __index metamethod: " PLAIN_TABLES);
    /* A refusal is an ordinary error: the file may catch it and go on. */
    struct dag *d = load_ok("local ok, e = pcall(string.match, 'x', 'x+')\n"
                            "assert(not ok and e:find('repeats an item', 1, true))\n" MINIMAL);
    dag_free(d);
    assert_true(now_ms() - t0 < 2000);

    /* Where the loop is bounded, its work is charged to the budget. */
    t0 = now_ms();
    expect_err("local s = string.rep('a', 1e6)\n"
               "for i = 1, 1e6 do s:find(string.rep('a', 1000) .. 'b', 1, true) end\n",
               PATH ": stopped after 10000000 instructions");
    expect_err("local s = string.rep('a', 1e5)\n"
               "while true do local n = s:gsub('[%a%d]', '') end\n",
               PATH ": stopped after 10000000 instructions");
    expect_err("local s = string.rep('a', 1e5)\n"
               "while true do for c in s:gmatch('%a') do end end\n",
               PATH ": stopped after 10000000 instructions");
    expect_err("local t = {}\n"
               "for i = 1, 1e6 do t[i] = i end\n"
               "while true do table.insert(t, 1, 0) table.remove(t, 1) end\n",
               PATH ": stopped after 10000000 instructions");
    expect_err("local s = string.rep('x', 1 << 20)\n"
               "local t = {}\n"
               "for i = 1, 1000 do t[i] = s end\n"
               "table.sort(t)\n",
               PATH ": stopped after 10000000 instructions");
    expect_err("local s = string.rep('1', 1 << 22)\n"
               "while true do local n = tonumber(s) end\n",
               PATH ": stopped after 10000000 instructions");
    /* string.rep of nothing, a huge number of times, is just "". */
    d = load_ok("assert(string.rep('', math.maxinteger) == '')\n"
                "assert(string.rep('', 1e15, '') == '')\n" MINIMAL);
    dag_free(d);
    assert_true(now_ms() - t0 < 20000);
}

static void test_strings_and_tables(void **state)
{
    (void)state;
    /* What DAG files do with strings and tables still works. */
    struct dag *d = load_ok(
        "assert(('lr0.1'):gsub('%.', '_') == 'lr0_1')\n"
        "assert(('a b/c'):gsub('[^%w_]', '_') == 'a_b_c')\n"
        "assert(('x-y'):gsub('[a-z%-]', '%0%0') == 'xx--yy')\n"
        "assert(select(2, ('a,b,,c'):gsub(',', ';')) == 3)\n"
        "local y, m, dd = ('2026-01-02'):match('^(%d%d%d%d)%-(%d%d)%-(%d%d)$')\n"
        "assert(y == '2026' and m == '01' and dd == '02')\n"
        "assert(('v1.2'):match('^v%d%.%d$') and not ('v12'):match('^v%d%.%d$'))\n"
        "local cs = {}\n"
        "for c in ('abc'):gmatch('%a') do cs[#cs + 1] = c end\n"
        "assert(table.concat(cs, ',') == 'a,b,c')\n"
        "assert(('a+b'):find('+', 1, true) == 2 and ('a.b'):find('.', 1, true) == 2)\n"
        "local i, j = ('hello world'):find('o w')\n"
        "assert(i == 5 and j == 7)\n"
        "assert(('hello'):find('l', -2) == 4 and ('hello'):find('h', -100) == 1)\n"
        "assert(('hello'):find('', 6) == 6 and ('hello'):find('', 7) == nil)\n"
        "assert(('abc'):find('[bc]') == 2 and ('abc'):find('x', 1, true) == nil)\n"
        "assert(string.rep('ab', 3, ',') == 'ab,ab,ab' and string.rep('x', -1) == '')\n"
        "local t = {3, 1, 2}\n"
        "table.insert(t, 4)\n"
        "table.insert(t, 1, 0)\n"
        "assert(table.remove(t, 1) == 0 and table.remove(t) == 4)\n"
        "table.sort(t)\n"
        "assert(table.concat(t, ' ') == '1 2 3')\n"
        "table.sort(t, function(a, b) return a > b end)\n"
        "assert(table.concat(t, ' ', 2, 3) == '2 1')\n"
        "local a, b, c = table.unpack(t)\n"
        "assert(a == 3 and c == 1)\n"
        "assert(table.concat(table.move(t, 1, 3, 2, {}), ',', 2, 4) == '3,2,1')\n"
        "assert(table.pack(1, 2).n == 2)\n"
        "local ok, e = pcall(table.sort, {1, 'x'})\n"
        "assert(not ok and e:find('attempt to compare', 1, true))\n"
        /* Metatables that do not change how the table is walked are fine. */
        "local v = setmetatable({}, {__tostring = function() return 'v' end})\n"
        "table.insert(v, 'x')\n"
        "assert(#v == 1)\n"
        "local mt = {__lt = function(p, q) return p.n < q.n end}\n"
        "local objs = {setmetatable({n = 2}, mt), setmetatable({n = 1}, mt)}\n"
        "table.sort(objs)\n"
        "assert(objs[1].n == 1)\n"
        MINIMAL);
    dag_free(d);
}

static void test_cpu_limit(void **state)
{
    (void)state;
    /* Comparing two distinct 4 MiB strings is one instruction but a
     * memcmp: the CPU-time net stops what the counter cannot see. */
    struct load_lua_limits lim = load_lua_default_limits;
    lim.cpu_ms = 100;
    const char *src = "local a = string.rep('x', 1 << 22) .. 'y'\n"
                      "local b = string.rep('x', 1 << 22) .. 'y'\n"
                      "while true do local same = (a == b) end\n";
    double t0 = now_ms();
    expect_err_limits(src, strlen(src), &lim, KILN_EINVALID,
                      PATH ": stopped after 100ms of CPU time");
    assert_true(now_ms() - t0 < 5000);
}

static void test_custom_limits(void **state)
{
    (void)state;
    struct load_lua_limits lim = {5000, (size_t)1 << 20, 0};
    const char *src = "local d = dag{ id = 'a' }\n" OK_TASK "for i = 1, 10000 do end\n";
    expect_err_limits(src, strlen(src), &lim, KILN_EINVALID,
                      PATH ": stopped after 5000 instructions");
    src = "local s = string.rep('x', 2 << 20)\n";
    expect_err_limits(src, strlen(src), &lim, KILN_EINVALID,
                      PATH ": stopped: memory limit of 1 MiB exceeded");
    lim.memory = 100000;
    expect_err_limits(src, strlen(src), &lim, KILN_EINVALID,
                      PATH ": stopped: memory limit of 100000 bytes exceeded");
    /* The DAG built in C counts too: 20,000 tasks of 1 KiB do not fit in
     * 4 MiB even though Lua itself holds little. */
    lim = load_lua_default_limits;
    lim.memory = (size_t)4 << 20;
    src = "local d = dag{ id = 'a' }\n"
          "local big = string.rep('x', 1000)\n"
          "for i = 1, 20000 do d:task{ id = 't' .. i, command = {'echo', big} } end\n";
    expect_err_limits(src, strlen(src), &lim, KILN_EINVALID,
                      PATH ": stopped: memory limit of 4 MiB exceeded");
    /* Within the default limits, a big generated DAG loads. */
    double t0 = now_ms();
    struct dag *d = load_ok("local d = dag{ id = 'big', default = {command = {'true'}} }\n"
                            "d:task{ id = 't0' }\n"
                            "for i = 1, 9999 do\n"
                            "  d:task{ id = 't' .. i, deps = 't' .. (i - 1) }\n"
                            "end\n");
    assert_int_equal(d->n_tasks, 10000);
    assert_string_equal(d->tasks[d->topo[9999]].id, "t9999");
    dag_free(d);
    assert_true(now_ms() - t0 < 5000);
}

static void test_os_date_time(void **state)
{
    (void)state;
    /* Lua 5.4 checks strftime conversions: bad formats are errors, not
     * crashes, and so are dates out of range. */
    struct dag *d = load_ok(
        "assert(os.date('!%Y-%m-%d %H:%M:%S', 0) == '1970-01-01 00:00:00')\n"
        "assert(os.date('!*t', 86400).day == 2)\n"
        "assert(os.date('*t').year >= 2024)\n"
        "assert(os.time{year = 2026, month = 1, day = 1, hour = 12} > 0)\n"
        "assert(type(os.clock()) == 'number')\n"
        "for _, f in ipairs{'%Ez', '%', '%Q', '%E', '%O', '%5', '%%%'} do\n"
        "  local ok, e = pcall(os.date, f)\n"
        "  assert(not ok and e:find('invalid conversion specifier'), f)\n"
        "end\n"
        "assert(not pcall(os.date, '*t', 2^62))\n"
        "assert(not pcall(os.date, '!%c', math.mininteger))\n"
        "assert(not pcall(os.time, {year = 2^62, month = 1, day = 1}))\n"
        "assert(not pcall(os.time, {year = 2026}))\n"
        MINIMAL);
    dag_free(d);
}

static void test_print_capped(void **state)
{
    (void)state;
    /* print goes to stderr with the file and line, at most 64 KiB a file. */
    char tmpl[] = "/tmp/kiln-print-XXXXXX";
    int fd = mkstemp(tmpl);
    assert_true(fd >= 0);
    fflush(stderr);
    int saved = dup(2);
    dup2(fd, 2);
    struct dag *d = load_ok("print('hello', 1, nil, true)\n"
                            "for i = 1, 10000 do print(string.rep('x', 100)) end\n" MINIMAL);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    dag_free(d);
    char *out;
    size_t len;
    assert_int_equal(file_read_all(tmpl, &out, &len), 0);
    unlink(tmpl);
    close(fd);
    assert_true(strncmp(out, PATH ":1: hello\t1\tnil\ttrue\n", strlen(PATH ":1: hello")) == 0);
    assert_true(len < 65536 + 2 * 1024 * 16);
    assert_non_null(strstr(out, PATH ": further print output dropped\n"));
    free(out);
}

/* --- files and folders ------------------------------------------------------- */

static char *fixture(const char *name)
{
    const char *src = getenv("SRCDIR");
    return xasprintf("%s/tests/fixtures/dags/%s", src && *src ? src : ".", name);
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

static void test_files(void **state)
{
    (void)state;
    char *path = fixture("sweep.lua");
    struct dag *d = NULL;
    struct kiln_err err = {0};
    if (load_lua_file(path, &d, &err) != 0)
        fail_msg("%s", err.msg);
    assert_string_equal(d->id, "sweep");
    assert_string_equal(d->path, path);
    assert_int_equal(d->n_tasks, 2);
    assert_string_equal(d->tasks[0].id, "train_0.01");
    assert_string_equal(d->tasks[1].argv[2], "0.1");
    assert_null(d->hash);
    dag_free(d);
    /* dag_load_file picks the loader by extension and records the hash. */
    assert_int_equal(dag_load_file(path, &d, &err), 0);
    assert_string_equal(d->id, "sweep");
    assert_int_equal(strlen(d->hash), 64);
    dag_free(d);
    free(path);

    /* dag_load_buf (the daemon's path for stored versions) too. */
    const char *lua = "dag{ id = 'v' }:task{ id = 'x', command = {'echo'} }\n";
    assert_int_equal(dag_load_buf("dags/v.lua", lua, strlen(lua), &d, &err), 0);
    assert_string_equal(d->id, "v");
    assert_null(d->hash);
    dag_free(d);
    d = (struct dag *)1;
    assert_int_equal(dag_load_buf("dags/v.yaml", lua, strlen(lua), &d, &err), KILN_EINVALID);
    assert_null(d);
    kiln_err_clear(&err);

    d = (struct dag *)1;
    assert_int_equal(load_lua_file("no/such/file.lua", &d, &err), -ENOENT);
    assert_null(d);
    assert_string_equal(err.msg, "no/such/file.lua: cannot read: No such file or directory");

    /* In a folder, a bad Lua file never stops the others. */
    char dir[] = "/tmp/kiln-dagdir-lua-XXXXXX";
    assert_non_null(mkdtemp(dir));
    write_file(dir, "a.lua", "dag{ id = 'alpha' }:task{ id = 'x', command = {'echo'} }\n");
    write_file(dir, "b.lua", "while true do end\n");
    write_file(dir, "c.yaml", "dag: gamma\ntasks: {x: {command: [echo]}}\n");
    write_file(dir, "d.lua",
               "local d = dag{ id = 'gamma' }\nd:task{ id = 'x', command = {'e'} }\n");
    struct dagdir *dd = NULL;
    kiln_err_clear(&err);
    assert_int_equal(dagdir_load(dir, &dd, &err), 0);
    assert_int_equal(dd->n, 4);
    assert_string_equal(dd->entries[0].dag->id, "alpha");
    assert_string_equal(dd->entries[0].dag->hash, dd->entries[0].hash);
    char *want = xasprintf("%s/b.lua: stopped after 10000000 instructions", dir);
    assert_string_equal(dd->entries[1].error, want);
    free(want);
    assert_string_equal(dd->entries[2].dag->id, "gamma");
    want = xasprintf("%s/d.lua: dag id 'gamma' is already defined in %s/c.yaml", dir, dir);
    assert_string_equal(dd->entries[3].error, want);
    free(want);
    dagdir_free(dd);
    static const char *const names[] = {"a.lua", "b.lua", "c.yaml", "d.lua"};
    for (size_t i = 0; i < ARRAY_LEN(names); i++) {
        char *f = xasprintf("%s/%s", dir, names[i]);
        unlink(f);
        free(f);
    }
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sweep_100_tasks),
        cmocka_unit_test(test_every_key),
        cmocka_unit_test(test_defaults_frozen_and_schedule_none),
        cmocka_unit_test(test_which_dag),
        cmocka_unit_test(test_load_text_chunks),
        cmocka_unit_test(test_same_file_same_dag),
        cmocka_unit_test(test_err_unknown_keys),
        cmocka_unit_test(test_err_task_shape),
        cmocka_unit_test(test_err_command),
        cmocka_unit_test(test_err_numbers),
        cmocka_unit_test(test_err_bools_strings_durations),
        cmocka_unit_test(test_err_choices),
        cmocka_unit_test(test_err_env_params),
        cmocka_unit_test(test_err_deps_and_graph),
        cmocka_unit_test(test_err_ids),
        cmocka_unit_test(test_err_lua_errors),
        cmocka_unit_test(test_escape_io),
        cmocka_unit_test(test_escape_os),
        cmocka_unit_test(test_escape_require_package),
        cmocka_unit_test(test_escape_binary_chunk),
        cmocka_unit_test(test_escape_string_dump),
        cmocka_unit_test(test_escape_setmetatable_gc),
        cmocka_unit_test(test_escape_coroutine),
        cmocka_unit_test(test_escape_endless_loop),
        cmocka_unit_test(test_escape_loop_in_pcall),
        cmocka_unit_test(test_escape_memory_bomb),
        cmocka_unit_test(test_escape_deep_recursion),
        cmocka_unit_test(test_escape_c_loops),
        cmocka_unit_test(test_strings_and_tables),
        cmocka_unit_test(test_cpu_limit),
        cmocka_unit_test(test_custom_limits),
        cmocka_unit_test(test_os_date_time),
        cmocka_unit_test(test_print_capped),
        cmocka_unit_test(test_files),
        cmocka_unit_test(test_kubernetes_block),
        cmocka_unit_test(test_err_kubernetes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
