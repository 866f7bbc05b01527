/* Unit tests for templates: parsing, every name, load-time errors (whole
 * message, position included), render errors, and that no code runs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dag.h"
#include "load_lua.h"
#include "load_yaml.h"
#include "template.h"
#include "util.h"

#define PATH "dags/t.yaml"

static struct dag *load_ok(const char *yaml)
{
    struct dag *d = NULL;
    struct kiln_err err = {0};
    if (load_yaml_buf(PATH, yaml, strlen(yaml), &d, &err) != 0)
        fail_msg("unexpected error: %s", err.msg);
    return d;
}

static void expect_err(const char *yaml, const char *msg)
{
    struct dag *d = NULL;
    struct kiln_err err = {0};
    int rc = load_yaml_buf(PATH, yaml, strlen(yaml), &d, &err);
    assert_null(d);
    assert_int_equal(rc, KILN_EINVALID);
    assert_string_equal(err.msg, msg);
}

/* --- rendering ----------------------------------------------------------- */

static const char *fake_outputs(void *arg, const char *task_id)
{
    (void)arg;
    if (strcmp(task_id, "train") == 0)
        return "{\"acc\": 0.93, \"model\": \"m.bin\", \"n\": 5, \"ok\": true}";
    if (strcmp(task_id, "a.b") == 0)
        return "{\"k\": \"dotted\"}";
    return NULL;
}

/* 2026-11-21T13:40:05Z */
#define T0 (1795268405LL * 1000000LL)

static const struct template_vars vars = {
    .run_id = "manual__x", .dag_id = "etl", .task_id = "load", .try_number = 2,
    .logical_us = T0, .interval_start_us = T0, .interval_end_us = T0 + 3600000000LL,
    .params_json = "{\"lr\": 0.1, \"mode\": \"fast\", \"epochs\": 20, \"dry\": false}",
    .outputs = fake_outputs,
};

static char *render(const char *s, char *why)
{
    struct sbuf out;
    sbuf_init(&out);
    why[0] = '\0';
    if (template_render(s, &vars, &out, why, 300) < 0) {
        sbuf_free(&out);
        return NULL;
    }
    char *r = xstrdup(out.data ? out.data : "");
    sbuf_free(&out);
    return r;
}

static void expect_render(const char *s, const char *want)
{
    char why[300];
    char *got = render(s, why);
    if (!got)
        fail_msg("render '%s' failed: %s", s, why);
    assert_string_equal(got, want);
    free(got);
}

static void expect_render_err(const char *s, const char *msg)
{
    char why[300];
    char *got = render(s, why);
    assert_null(got);
    assert_string_equal(why, msg);
}

static void test_render_names(void **state)
{
    (void)state;
    expect_render("plain text", "plain text");
    expect_render("", "");
    expect_render("{{ds}}", "2026-11-21");
    expect_render("{{ ds_nodash }}", "20261121");
    expect_render("{{ ts }}", "2026-11-21T13:40:05+00:00");
    expect_render("{{ logical_date }}", "2026-11-21T13:40:05+00:00");
    expect_render("{{ data_interval_start }}", "2026-11-21T13:40:05+00:00");
    expect_render("{{ data_interval_end }}", "2026-11-21T14:40:05+00:00");
    expect_render("{{ run_id }}", "manual__x");
    expect_render("{{ dag.id }}", "etl");
    expect_render("{{ task.id }}", "load");
    expect_render("{{ try_number }}", "2");
    expect_render("{{ params.lr }}", "0.1");
    expect_render("{{ params.mode }}", "fast");
    expect_render("{{ params.epochs }}", "20");
    expect_render("{{ params.dry }}", "false");
    expect_render("{{ tasks.train.outputs.acc }}", "0.93");
    expect_render("{{ tasks.train.outputs.model }}", "m.bin");
    expect_render("{{ tasks.train.outputs.ok }}", "true");
    expect_render("{{ tasks.a.b.outputs.k }}", "dotted");
    expect_render("runs/{{ run_id }}/x-{{try_number}}.bin {{ ds }}",
                  "runs/manual__x/x-2.bin 2026-11-21");
    expect_render("a }} b { c", "a }} b { c");
    expect_render("{{\t ds \n}}", "2026-11-21");
}

static void test_render_errors(void **state)
{
    (void)state;
    expect_render_err("{{ tasks.train.outputs.f1 }}",
                      "template {{ tasks.train.outputs.f1 }}: task 'train' wrote no output 'f1'");
    expect_render_err("{{ tasks.eval.outputs.acc }}",
                      "template {{ tasks.eval.outputs.acc }}: task 'eval' wrote no output 'acc'");
    expect_render_err("{{ params.nope }}",
                      "template {{ params.nope }}: the run has no param 'nope'");
    expect_render_err("x {{ ds", "unclosed '{{' in template 'x {{ ds' (missing '}}')");
    expect_render_err("{{ nope }}", "template {{ nope }}: unknown template name 'nope'");
}

/* No expressions, filters, calls or code: only names. */
static void test_no_code(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "{{ 1+1 }}", "{{ params.x | upper }}", "{{ os.system('x') }}", "{{ }}",
        "{{ ds() }}", "{{ params['x'] }}", "{{ a..b }}", "{{ ds. }}", "{{ {{ ds }} }}",
        "{{ `id` }}", "{{ $(id) }}",
    };
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        char why[300];
        char *got = render(bad[i], why);
        if (got)
            fail_msg("'%s' rendered as '%s'", bad[i], got);
        assert_non_null(strstr(why, "between the braces (no expressions, filters or code)"));
    }
    expect_render_err("{{ 1+1 }}", "template {{ 1+1 }}: only a name like {{ ds }} or "
                      "{{ params.NAME }} may appear between the braces (no expressions, "
                      "filters or code)");
}

/* --- load-time checks ----------------------------------------------------- */

static const char *const HEAD =
    "dag: t\n"                                             /* 1 */
    "params: {lr: 0.1}\n";                                 /* 2 */

static void expect_load_err(const char *tasks, const char *msg)
{
    char *yaml = xasprintf("%stasks:\n%s", HEAD, tasks);
    expect_err(yaml, msg);
    free(yaml);
}

static void test_load_ok(void **state)
{
    (void)state;
    struct dag *d = load_ok(
        "dag: t\n"
        "params: {lr: 0.1, mode: {type: enum, values: [fast, full], default: fast}}\n"
        "tasks:\n"
        "  a: {command: [echo, '{{ ds }} {{ ds_nodash }} {{ ts }} {{ logical_date }}']}\n"
        "  b:\n"
        "    deps: [a]\n"
        "    command: [echo, '{{ data_interval_start }}{{data_interval_end}}', '{{ run_id }}',\n"
        "              '{{ dag.id }}/{{ task.id }}/{{ try_number }}', '{{ params.lr }}',\n"
        "              '{{ params.mode }}', '{{ tasks.a.outputs.x }}']\n"
        "  c:\n"
        "    deps: [b]\n"
        "    command: [echo, '{{ tasks.a.outputs.y }}']\n"
        "    env: {M: '{{ tasks.b.outputs.z }}'}\n");
    assert_int_equal(d->n_params, 2);
    assert_string_equal(d->tasks[1].argv[6], "{{ tasks.a.outputs.x }}");
    assert_int_equal(d->tasks[1].argv_pos[6].line, 9);
    assert_int_equal(d->tasks[1].argv_pos[6].col, 36);
    dag_free(d);
}

static void test_load_errors(void **state)
{
    (void)state;
    expect_load_err("  x: {command: [echo, '{{ paramz.lr }}']}\n",
                    PATH ":4:23: task 'x': unknown template name 'paramz.lr' "
                    "(did you mean 'params.lr'?)");
    expect_load_err("  x: {command: [echo, '{{ params.rl }}']}\n",
                    PATH ":4:23: task 'x': unknown template name 'params.rl' "
                    "(did you mean 'params.lr'?)");
    expect_load_err("  x: {command: [echo, '{{ params.learning_rate }}']}\n",
                    PATH ":4:23: task 'x': unknown template name 'params.learning_rate'");
    expect_load_err("  x: {command: [echo, '{{ dsnodash }}']}\n",
                    PATH ":4:23: task 'x': unknown template name 'dsnodash' "
                    "(did you mean 'ds_nodash'?)");
    expect_load_err("  x: {command: [echo, '{{ execution_date }}']}\n",
                    PATH ":4:23: task 'x': unknown template name 'execution_date'");
    expect_load_err("  x: {command: [echo, '{{ tasks.x.output.k }}']}\n",
                    PATH ":4:23: task 'x': unknown template name 'tasks.x.output.k' "
                    "(task outputs are named tasks.ID.outputs.KEY)");
    expect_load_err("  a: {command: [echo]}\n"
                    "  x: {deps: [a], command: [echo, '{{ tasks.b.outputs.k }}']}\n",
                    PATH ":5:34: task 'x': unknown template name 'tasks.b.outputs.k': "
                    "no task 'b' (did you mean 'a'?)");
    expect_load_err("  a: {command: [echo]}\n"
                    "  x: {command: [echo, '{{ tasks.a.outputs.k }}']}\n",
                    PATH ":5:23: task 'x': template name 'tasks.a.outputs.k': task 'a' is not "
                    "upstream of 'x' (add it to deps)");
    expect_load_err("  x: {command: [echo, '{{ tasks.x.outputs.k }}']}\n",
                    PATH ":4:23: task 'x': template name 'tasks.x.outputs.k': task 'x' is not "
                    "upstream of 'x' (add it to deps)");
    expect_load_err("  x:\n"
                    "    command: [echo]\n"
                    "    env: {A: ok, B: '{{ prams.lr }}'}\n",
                    PATH ":6:18: task 'x': env 'B': unknown template name 'prams.lr' "
                    "(did you mean 'params.lr'?)");
    expect_load_err("  x: {command: [echo, '{{ 1+1 }}']}\n",
                    PATH ":4:23: task 'x': template {{ 1+1 }}: only a name like {{ ds }} or "
                    "{{ params.NAME }} may appear between the braces (no expressions, filters "
                    "or code)");
    expect_load_err("  x: {command: [echo, '{{ params.lr | upper }}']}\n",
                    PATH ":4:23: task 'x': template {{ params.lr | upper }}: only a name like "
                    "{{ ds }} or {{ params.NAME }} may appear between the braces (no "
                    "expressions, filters or code)");
    expect_load_err("  x: {command: [echo, 'a {{ ds']}\n",
                    PATH ":4:23: task 'x': unclosed '{{' in template 'a {{ ds' (missing '}}')");
}

/* --- params ----------------------------------------------------------------- */

static void test_param_types(void **state)
{
    (void)state;
    struct dag *d = load_ok(
        "dag: t\n"
        "params:\n"
        "  i: 3\n"
        "  f: 0.5\n"
        "  b: yes\n"
        "  s: hello\n"
        "  q: '42'\n"
        "  n: {type: number, default: 1}\n"
        "  r: {type: integer}\n"
        "  e: {type: enum, values: [fast, full], default: full}\n"
        "  e2: {values: [x, y]}\n"
        "tasks: {a: {command: [echo]}}\n");
    static const struct { const char *key, *value; enum dag_param_type type; bool req; } want[] = {
        {"i", "3", DPT_INTEGER, false},   {"f", "0.5", DPT_NUMBER, false},
        {"b", "true", DPT_BOOLEAN, false}, {"s", "hello", DPT_STRING, false},
        {"q", "42", DPT_STRING, false},   {"n", "1", DPT_NUMBER, false},
        {"r", "", DPT_INTEGER, true},     {"e", "full", DPT_ENUM, false},
        {"e2", "", DPT_ENUM, true},
    };
    assert_int_equal(d->n_params, ARRAY_LEN(want));
    for (size_t i = 0; i < ARRAY_LEN(want); i++) {
        assert_string_equal(d->params[i].key, want[i].key);
        assert_string_equal(d->params[i].value, want[i].value);
        assert_int_equal(d->params[i].type, want[i].type);
        assert_int_equal(d->params[i].required, want[i].req);
    }
    assert_int_equal(d->params[7].n_values, 2);
    assert_string_equal(d->params[7].values[1], "full");

    char why[300];
    assert_int_equal(dag_param_check(&d->params[5], "fast", why, sizeof why), -1);
    assert_string_equal(why, "param 'n' must be a number, got 'fast'");
    assert_int_equal(dag_param_check(&d->params[0], "1.5", why, sizeof why), -1);
    assert_string_equal(why, "param 'i' must be an integer, got '1.5'");
    assert_int_equal(dag_param_check(&d->params[2], "maybe", why, sizeof why), -1);
    assert_string_equal(why, "param 'b' must be true or false, got 'maybe'");
    assert_int_equal(dag_param_check(&d->params[7], "slow", why, sizeof why), -1);
    assert_string_equal(why, "param 'e' must be one of fast, full, got 'slow'");
    assert_int_equal(dag_param_check(&d->params[5], "-1e3", why, sizeof why), 0);
    assert_int_equal(dag_param_check(&d->params[0], "-7", why, sizeof why), 0);
    assert_int_equal(dag_param_check(&d->params[7], "fast", why, sizeof why), 0);
    dag_free(d);

    expect_err("dag: t\nparams: {n: {type: numbr}}\ntasks: {a: {command: [echo]}}\n",
               PATH ":2:20: unknown param type 'numbr' (did you mean 'number'?)");
    expect_err("dag: t\nparams: {n: {type: number, default: abc}}\ntasks: {a: {command: [echo]}}\n",
               PATH ":2:37: default: param 'n' must be a number, got 'abc'");
    expect_err("dag: t\nparams: {e: {type: enum, default: a}}\ntasks: {a: {command: [echo]}}\n",
               PATH ":2:13: param 'e' of type enum needs 'values': a list like [fast, full]");
    expect_err("dag: t\nparams: {e: {type: enum, values: [a, b], default: c}}\n"
               "tasks: {a: {command: [echo]}}\n",
               PATH ":2:51: default: param 'e' must be one of a, b, got 'c'");
    expect_err("dag: t\nparams: {n: {tpye: number}}\ntasks: {a: {command: [echo]}}\n",
               PATH ":2:14: unknown key 'tpye' in param 'n' (did you mean 'type'?)");
}

static void test_lua_params(void **state)
{
    (void)state;
    const char *src =
        "local d = dag{ id = 'l', params = {lr = 0.1, n = 3, on = true, s = 'x',\n"
        "  mode = {type = 'enum', values = {'fast', 'full'}, default = 'fast'},\n"
        "  need = {type = 'integer'}} }\n"
        "d:task{ id = 'a', command = {'echo', '{{ params.mode }}'} }\n"
        "d:task{ id = 'b', deps = {'a'}, command = {'echo', '{{ tasks.a.outputs.k }}'} }\n";
    struct dag *d = NULL;
    struct kiln_err err = {0};
    if (load_lua_buf("dags/l.lua", src, strlen(src), &d, &err) != 0)
        fail_msg("unexpected error: %s", err.msg);
    assert_int_equal(d->n_params, 6);
    /* sorted by name */
    assert_string_equal(d->params[0].key, "lr");
    assert_int_equal(d->params[0].type, DPT_NUMBER);
    assert_string_equal(d->params[1].key, "mode");
    assert_int_equal(d->params[1].type, DPT_ENUM);
    assert_string_equal(d->params[1].value, "fast");
    assert_string_equal(d->params[2].key, "n");
    assert_int_equal(d->params[2].type, DPT_INTEGER);
    assert_string_equal(d->params[3].key, "need");
    assert_true(d->params[3].required);
    assert_string_equal(d->params[4].key, "on");
    assert_int_equal(d->params[4].type, DPT_BOOLEAN);
    assert_string_equal(d->params[4].value, "true");
    assert_int_equal(d->params[5].type, DPT_STRING);
    dag_free(d);

    const char *bad = "local d = dag{ id = 'l' }\n"
                      "d:task{ id = 'a', command = {'echo', '{{ parms.x }}'} }\n";
    d = NULL;
    assert_int_not_equal(load_lua_buf("dags/l.lua", bad, strlen(bad), &d, &err), 0);
    assert_string_equal(err.msg, "dags/l.lua:2: task 'a': unknown template name 'parms.x'");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_render_names),
        cmocka_unit_test(test_render_errors),
        cmocka_unit_test(test_no_code),
        cmocka_unit_test(test_load_ok),
        cmocka_unit_test(test_load_errors),
        cmocka_unit_test(test_param_types),
        cmocka_unit_test(test_lua_params),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
