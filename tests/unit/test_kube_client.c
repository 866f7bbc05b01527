/* kube_client against tests/kube-sim/kube-sim.py: create/get/list/delete,
 * a watch stream, Status bodies, 429 + Retry-After, 5xx retries, permanent
 * errors, the pod-creation token bucket, auth, cancel from a line callback,
 * a dropped stream.  Skips when python3 or kube-sim.py is missing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "kube_client.h"
#include "util.h"

#define PY "/usr/bin/python3"
#define TOKEN "s3cret"

static pid_t sim_pid;
static int sim_port;
static char tmpdir[64];
static uv_loop_t loop;

static int start_sim(void **st)
{
    const char *src = getenv("SRCDIR");
    char *script = xasprintf("%s/tests/kube-sim/kube-sim.py", src ? src : ".");
    if (access(PY, X_OK) != 0 || access(script, R_OK) != 0) {
        free(script);
        return 0;   /* the tests skip */
    }
    strcpy(tmpdir, "/tmp/kiln-kclient.XXXXXX");
    assert_non_null(mkdtemp(tmpdir));
    char *pf = xasprintf("%s/port", tmpdir);
    sim_pid = fork();
    if (sim_pid == 0) {
        int dn = open("/dev/null", 1);
        dup2(dn, 1);
        execl(PY, PY, script, "--port", "0", "--port-file", pf, "--token", TOKEN, "--manual",
              "--bookmark-interval", "0.2", (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 200 && !sim_port; i++) {
        char *s = NULL;
        size_t len = 0;
        if (file_read_all(pf, &s, &len) == 0 && len > 0) sim_port = atoi(s);
        free(s);
        if (!sim_port) usleep(50000);
    }
    free(pf);
    free(script);
    assert_true(sim_port > 0);
    uv_loop_init(&loop);
    return 0;
}

static int stop_sim(void **st)
{
    if (sim_pid > 0) {
        kill(sim_pid, SIGTERM);
        waitpid(sim_pid, NULL, 0);
        char *cmd = xasprintf("rm -rf '%s'", tmpdir);
        assert_int_equal(system(cmd), 0);
        free(cmd);
        assert_int_equal(uv_loop_close(&loop), 0);
    }
    return 0;
}

#define NEED_SIM() do { if (!sim_port) skip(); } while (0)

static struct kube_client *client(const char *token, struct kube_client_opts *o)
{
    struct kube_config *cfg = xcalloc(1, sizeof *cfg);
    cfg->server = xasprintf("http://127.0.0.1:%d", sim_port);
    cfg->namespace = xstrdup("default");
    cfg->token = token ? xstrdup(token) : NULL;
    struct kube_client_opts d;
    kube_client_opts_default(&d);
    d.backoff_base_s = 0.05;
    d.backoff_max_s = 0.2;
    if (!o) o = &d;
    struct kube_client *c = NULL;
    struct kiln_err err = {0};
    assert_int_equal(kube_client_new(&loop, cfg, o, &c, &err), 0);
    return c;
}

static void done_client(struct kube_client *c)
{
    kube_client_close(c);
    uv_run(&loop, UV_RUN_DEFAULT);
}

struct res {
    int done;
    enum kube_outcome outcome;
    long http;
    int attempts;
    char reason[64], message[512];
    char *body;
    json_object *json;
    int64_t t_done;
};

static void on_done(struct kube_req *r, const struct kube_result *kr, void *arg)
{
    struct res *x = arg;
    x->done = 1;
    x->outcome = kr->outcome;
    x->http = kr->http;
    x->attempts = kr->attempts;
    snprintf(x->reason, sizeof x->reason, "%s", kr->reason);
    snprintf(x->message, sizeof x->message, "%s", kr->message);
    x->body = kr->body ? xstrndup(kr->body, kr->body_len) : NULL;
    x->json = kr->json ? json_object_get(kr->json) : NULL;
    x->t_done = mono_us();
}

static void res_free(struct res *x)
{
    free(x->body);
    json_object_put(x->json);
    memset(x, 0, sizeof *x);
}

static void call(struct kube_client *c, const char *m, const char *path, const char *body, struct res *x)
{
    memset(x, 0, sizeof *x);
    assert_non_null(kube_request(c, m, path, body, NULL, on_done, NULL, x));
    while (!x->done) uv_run(&loop, UV_RUN_ONCE);
}

static char *pod(const char *name)
{
    return xasprintf("{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"%s\","
                     "\"labels\":{\"app.kubernetes.io/managed-by\":\"kiln\"}},\"spec\":{\"restartPolicy\":\"Never\","
                     "\"containers\":[{\"name\":\"main\",\"image\":\"busybox\",\"command\":[\"true\"]}]}}", name);
}

static void sim_faults(struct kube_client *c, const char *json)
{
    struct res x;
    call(c, "POST", "/_sim/faults", json, &x);
    assert_int_equal(x.outcome, KUBE_OK);
    res_free(&x);
    call(c, "POST", "/_sim/reset", "{}", &x);   /* keep nothing else around */
    res_free(&x);
}

static const char *jstr(json_object *j, const char *a, const char *b)
{
    json_object *v = NULL;
    if (!json_object_object_get_ex(j, a, &v)) return NULL;
    if (b && !json_object_object_get_ex(v, b, &v)) return NULL;
    return json_object_get_string(v);
}

static void test_crud(void **st)
{
    NEED_SIM();
    struct kube_client *c = client(TOKEN, NULL);
    struct res x;
    char *p = pod("crud-1");
    call(c, "POST", "/api/v1/namespaces/default/pods", p, &x);
    assert_int_equal(x.outcome, KUBE_OK);
    assert_int_equal(x.http, 201);
    assert_string_equal(jstr(x.json, "metadata", "name"), "crud-1");
    res_free(&x);
    call(c, "POST", "/api/v1/namespaces/default/pods", p, &x);   /* 409 from the Status body */
    assert_int_equal(x.outcome, KUBE_PERMANENT);
    assert_int_equal(x.http, 409);
    assert_string_equal(x.reason, "AlreadyExists");
    assert_non_null(strstr(x.message, "\"crud-1\" already exists"));
    assert_int_equal(x.attempts, 1);
    res_free(&x);
    call(c, "GET", "/api/v1/namespaces/default/pods/crud-1", NULL, &x);
    assert_int_equal(x.outcome, KUBE_OK);
    assert_string_equal(jstr(x.json, "kind", NULL), "Pod");
    res_free(&x);
    call(c, "GET", "/api/v1/namespaces/default/pods?labelSelector=app.kubernetes.io%2Fmanaged-by%3Dkiln", NULL, &x);
    assert_int_equal(x.outcome, KUBE_OK);
    json_object *items = NULL;
    assert_true(json_object_object_get_ex(x.json, "items", &items));
    assert_int_equal(json_object_array_length(items), 1);
    res_free(&x);
    call(c, "PATCH", "/api/v1/namespaces/default/pods/crud-1", "{\"metadata\":{\"labels\":{\"x\":\"y\"}}}", &x);
    assert_int_equal(x.outcome, KUBE_OK);
    assert_string_equal(jstr(jstr(x.json, "metadata", NULL) ? json_object_object_get(x.json, "metadata") : NULL,
                             "labels", "x"), "y");
    res_free(&x);
    call(c, "DELETE", "/api/v1/namespaces/default/pods/crud-1", NULL, &x);
    assert_int_equal(x.outcome, KUBE_OK);
    res_free(&x);
    call(c, "GET", "/api/v1/namespaces/default/pods/crud-1", NULL, &x);   /* 404 permanent, no retry */
    assert_int_equal(x.outcome, KUBE_PERMANENT);
    assert_int_equal(x.http, 404);
    assert_string_equal(x.reason, "NotFound");
    assert_int_equal(x.attempts, 1);
    res_free(&x);
    free(p);
    done_client(c);
}

static void test_auth(void **st)
{
    NEED_SIM();
    struct kube_client *c = client("wrong", NULL);
    struct res x;
    call(c, "GET", "/api/v1/namespaces/default/pods", NULL, &x);
    assert_int_equal(x.outcome, KUBE_PERMANENT);
    assert_int_equal(x.http, 401);
    assert_non_null(strstr(x.message, "unauthorized"));
    res_free(&x);
    done_client(c);
}

static void test_429_retry_after(void **st)
{
    NEED_SIM();
    struct kube_client *c = client(TOKEN, NULL);
    struct res x;
    memset(&x, 0, sizeof x);
    assert_non_null(kube_request(c, "POST", "/_sim/faults",
                                 "{\"http_429\":{\"count\":1,\"retry_after\":1,\"method\":\"GET\"}}", NULL,
                                 on_done, NULL, &x));
    while (!x.done) uv_run(&loop, UV_RUN_ONCE);
    res_free(&x);
    int64_t t0 = mono_us();
    call(c, "GET", "/api/v1/namespaces/default/pods", NULL, &x);
    assert_int_equal(x.outcome, KUBE_OK);
    assert_int_equal(x.attempts, 2);
    int64_t ms = (x.t_done - t0) / 1000;
    if (ms < 950) fail_msg("Retry-After 1 s not honoured: %lld ms", (long long)ms);
    res_free(&x);
    done_client(c);
}

static void test_5xx(void **st)
{
    NEED_SIM();
    struct kube_client *c = client(TOKEN, NULL);
    struct res x;
    call(c, "POST", "/_sim/faults", "{\"http_500\":{\"count\":2,\"method\":\"GET\"}}", &x);
    res_free(&x);
    call(c, "GET", "/api/v1/namespaces/default/pods", NULL, &x);
    assert_int_equal(x.outcome, KUBE_OK);
    assert_int_equal(x.attempts, 3);
    res_free(&x);
    call(c, "POST", "/_sim/faults", "{\"http_500\":{\"count\":100,\"method\":\"GET\"}}", &x);
    res_free(&x);
    call(c, "GET", "/api/v1/namespaces/default/pods", NULL, &x);
    assert_int_equal(x.outcome, KUBE_TRANSIENT);
    assert_int_equal(x.http, 500);
    assert_int_equal(x.attempts, 6);   /* 1 + max_retries */
    res_free(&x);
    sim_faults(c, "{}");
    done_client(c);
}

static void test_network_error(void **st)
{
    NEED_SIM();
    struct kube_config *cfg = xcalloc(1, sizeof *cfg);
    cfg->server = xstrdup("http://127.0.0.1:1");
    struct kube_client_opts o;
    kube_client_opts_default(&o);
    o.max_retries = 2;
    o.backoff_base_s = 0.01;
    struct kube_client *c = NULL;
    struct kiln_err err = {0};
    assert_int_equal(kube_client_new(&loop, cfg, &o, &c, &err), 0);
    struct res x;
    call(c, "GET", "/api/v1/pods", NULL, &x);
    assert_int_equal(x.outcome, KUBE_TRANSIENT);
    assert_string_equal(x.reason, "NetworkError");
    assert_int_equal(x.attempts, 3);
    res_free(&x);
    done_client(c);
}

static void test_token_bucket(void **st)
{
    NEED_SIM();
    struct kube_client_opts o;
    kube_client_opts_default(&o);
    o.create_qps = 10;
    o.create_burst = 2;
    struct kube_client *c = client(TOKEN, &o);
    struct res x[5];
    char *bodies[5];
    int64_t t0 = mono_us();
    for (int i = 0; i < 5; i++) {
        char name[32];
        snprintf(name, sizeof name, "tb-%d", i);
        bodies[i] = pod(name);
        memset(&x[i], 0, sizeof x[i]);
        assert_non_null(kube_request(c, "POST", "/api/v1/namespaces/default/pods", bodies[i], NULL,
                                     on_done, NULL, &x[i]));
    }
    for (int i = 0; i < 5; i++)
        while (!x[i].done) uv_run(&loop, UV_RUN_ONCE);
    /* 2 at once, then one every 100 ms: the 5th waits >= 300 ms */
    int64_t ms = (x[4].t_done - t0) / 1000, ms1 = (x[1].t_done - t0) / 1000;
    for (int i = 0; i < 5; i++) {
        assert_int_equal(x[i].outcome, KUBE_OK);
        res_free(&x[i]);
        free(bodies[i]);
    }
    if (ms < 280 || ms1 > 250) fail_msg("bucket: 2nd at %lld ms, 5th at %lld ms", (long long)ms1, (long long)ms);
    /* GETs are not limited */
    int64_t t1 = mono_us();
    struct res g;
    call(c, "GET", "/api/v1/namespaces/default/pods", NULL, &g);
    assert_true((g.t_done - t1) / 1000 < 250);
    res_free(&g);
    done_client(c);
}

struct watch_st {
    struct kube_client *c;
    struct kube_req *req;
    int added, deleted, bookmarks, bad;
    struct res del;
    struct res end;
};

static void on_wdone(struct kube_req *r, const struct kube_result *kr, void *arg)
{
    on_done(r, kr, &((struct watch_st *)arg)->end);
}

static void on_event(struct kube_req *r, const char *line, size_t len, void *arg)
{
    struct watch_st *w = arg;
    json_object *j = json_tokener_parse(line);
    if (!j) { w->bad++; return; }
    const char *type = jstr(j, "type", NULL), *name = NULL;
    json_object *obj = NULL;
    if (json_object_object_get_ex(j, "object", &obj)) name = jstr(obj, "metadata", "name");
    if (type && strcmp(type, "BOOKMARK") == 0) w->bookmarks++;
    if (type && name && strcmp(name, "w-1") == 0) {
        if (strcmp(type, "ADDED") == 0 && !w->added++)
            kube_request(w->c, "DELETE", "/api/v1/namespaces/default/pods/w-1", NULL, NULL, on_done, NULL, &w->del);
        if (strcmp(type, "DELETED") == 0) {
            w->deleted++;
            kube_request_cancel(r);   /* from inside the stream */
        }
    }
    json_object_put(j);
}

static void test_watch(void **st)
{
    NEED_SIM();
    struct kube_client *c = client(TOKEN, NULL);
    struct res x;
    char *p = pod("w-1");
    call(c, "POST", "/api/v1/namespaces/default/pods", p, &x);
    assert_int_equal(x.outcome, KUBE_OK);
    res_free(&x);
    free(p);
    struct watch_st w;
    memset(&w, 0, sizeof w);
    w.c = c;
    w.req = kube_request(c, "GET", "/api/v1/namespaces/default/pods?watch=1&resourceVersion=0",
                         NULL, NULL, on_wdone, on_event, &w);
    assert_non_null(w.req);
    kube_request_cancel(w.req);     /* cancel before it started: done at once */
    assert_int_equal(w.end.done, 1);
    assert_string_equal(w.end.reason, "Cancelled");
    res_free(&w.end);
    w.req = kube_request(c, "GET", "/api/v1/namespaces/default/pods?watch=1&resourceVersion=0&allowWatchBookmarks=true",
                         NULL, NULL, on_wdone, on_event, &w);
    while (kube_client_inflight(c) > 0 && !(w.deleted && w.del.done)) uv_run(&loop, UV_RUN_ONCE);
    while (kube_client_inflight(c) > 0) uv_run(&loop, UV_RUN_ONCE);
    assert_int_equal(w.bad, 0);
    assert_int_equal(w.added, 1);
    assert_int_equal(w.deleted, 1);
    assert_int_equal(w.del.outcome, KUBE_OK);
    assert_string_equal(w.end.reason, "Cancelled");
    res_free(&w.del);
    res_free(&w.end);
    done_client(c);
}

static void test_watch_dropped(void **st)
{
    NEED_SIM();
    struct kube_client *c = client(TOKEN, NULL);
    struct watch_st w;
    memset(&w, 0, sizeof w);
    w.c = c;
    struct kube_req *r = kube_request(c, "GET", "/api/v1/namespaces/default/pods?watch=1&resourceVersion=0&allowWatchBookmarks=true",
                                      NULL, NULL, on_wdone, on_event, &w);
    assert_non_null(r);
    while (w.bookmarks < 1) uv_run(&loop, UV_RUN_ONCE);
    struct res x;
    call(c, "POST", "/_sim/faults", "{\"drop_watches\":true}", &x);
    res_free(&x);
    while (kube_client_inflight(c) > 0) uv_run(&loop, UV_RUN_ONCE);
    assert_int_equal(w.bad, 0);
    assert_int_equal(w.end.outcome, KUBE_TRANSIENT);   /* closed without the last chunk */
    assert_string_equal(w.end.reason, "StreamBroken");
    res_free(&w.end);
    done_client(c);
}

static void test_parse_status(void **st)
{
    struct kube_result r;
    memset(&r, 0, sizeof r);
    const char *b = "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"status\":\"Failure\",\"message\":\"pods \\\"x\\\" is "
                    "forbidden: exceeded quota: q, requested: pods=1, used: pods=5, limited: pods=5\","
                    "\"reason\":\"Forbidden\",\"code\":403}";
    kube_parse_status(b, strlen(b), 403, &r);
    assert_int_equal(r.code, 403);
    assert_string_equal(r.reason, "Forbidden");
    assert_non_null(strstr(r.message, "exceeded quota"));
    kube_parse_status("<html>bad\ngateway</html>", 25, 502, &r);
    assert_string_equal(r.reason, "InternalError");
    assert_string_equal(r.message, "<html>bad gateway</html>");
    kube_parse_status(NULL, 0, 404, &r);
    assert_string_equal(r.reason, "NotFound");
    assert_string_equal(r.message, "HTTP 404");
}

/* ---- the exec credential plugin, run on the loop ---- */

/* A client whose token comes from a plugin script in tmpdir: it counts its
 * runs in tmpdir/exec.count, sleeps SLEEP seconds, exits with EXIT, and
 * prints an ExecCredential for TOKEN (with EXPIRY as its expirationTimestamp
 * when given). */
static struct kube_client *exec_client(const char *sleep_s, int exit_code, const char *expiry)
{
    char *script = xasprintf("%s/plugin.sh", tmpdir);
    const char *body =
        "#!/bin/sh\n"
        "echo run >> \"$DIR/exec.count\"\n"
        "sleep \"$SLEEP\"\n"
        "[ \"$EXIT\" = 0 ] || exit \"$EXIT\"\n"
        "if [ -n \"$EXPIRY\" ]; then exp=\",\\\"expirationTimestamp\\\":\\\"$EXPIRY\\\"\"; else exp=; fi\n"
        "printf '{\"apiVersion\":\"client.authentication.k8s.io/v1beta1\",\"kind\":\"ExecCredential\","
        "\"status\":{\"token\":\"%s\"%s}}' \"$TOKEN\" \"$exp\"\n";
    assert_int_equal(file_write_atomic(script, body, strlen(body), 0755), 0);
    char *count = xasprintf("%s/exec.count", tmpdir);
    unlink(count);
    free(count);
    struct kube_config *cfg = xcalloc(1, sizeof *cfg);
    cfg->server = xasprintf("http://127.0.0.1:%d", sim_port);
    cfg->namespace = xstrdup("default");
    cfg->exec_argv = xcalloc(2, sizeof(char *));
    cfg->exec_argv[0] = script;
    cfg->exec_env = xcalloc(6, sizeof(char *));
    cfg->exec_env[0] = xasprintf("DIR=%s", tmpdir);
    cfg->exec_env[1] = xasprintf("SLEEP=%s", sleep_s);
    cfg->exec_env[2] = xasprintf("EXIT=%d", exit_code);
    cfg->exec_env[3] = xasprintf("TOKEN=%s", TOKEN);
    cfg->exec_env[4] = xasprintf("EXPIRY=%s", expiry ? expiry : "");
    cfg->exec_api_version = xstrdup("client.authentication.k8s.io/v1beta1");
    struct kube_client_opts d;
    kube_client_opts_default(&d);
    struct kube_client *c = NULL;
    struct kiln_err err = {0};
    assert_int_equal(kube_client_new(&loop, cfg, &d, &c, &err), 0);
    return c;
}

static int exec_runs(void)
{
    char *path = xasprintf("%s/exec.count", tmpdir), *s = NULL;
    size_t len = 0;
    int n = 0;
    if (file_read_all(path, &s, &len) == 0)
        for (size_t i = 0; i < len; i++) n += s[i] == '\n';
    free(s);
    free(path);
    return n;
}

static int ticks;
static void on_tick(uv_timer_t *t) { (void)t; ticks++; }

static void test_exec_plugin_async(void **st)
{
    NEED_SIM();
    struct kube_client *c = exec_client("0.6", 0, NULL);
    uv_timer_t tick;
    uv_timer_init(&loop, &tick);
    uv_timer_start(&tick, on_tick, 20, 20);
    ticks = 0;
    struct res x[3];
    memset(x, 0, sizeof x);
    int64_t t0 = mono_us();
    for (int i = 0; i < 3; i++)
        assert_non_null(kube_request(c, "GET", "/api/v1/namespaces/default/pods", NULL, NULL, on_done, NULL, &x[i]));
    while (!x[0].done || !x[1].done || !x[2].done) uv_run(&loop, UV_RUN_ONCE);
    int64_t took = mono_us() - t0;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(x[i].outcome, KUBE_OK);   /* the plugin's token was accepted */
        assert_int_equal(x[i].http, 200);
        res_free(&x[i]);
    }
    assert_true(took >= 600000);
    /* the loop kept turning while the plugin slept: a blocking run would
     * have let at most a tick or two through in that time */
    assert_true(ticks >= 15);
    assert_int_equal(exec_runs(), 1);                /* one run for three requests */
    struct res y;
    call(c, "GET", "/api/v1/namespaces/default/pods", NULL, &y);   /* cached: no second run */
    assert_int_equal(y.outcome, KUBE_OK);
    res_free(&y);
    assert_int_equal(exec_runs(), 1);
    uv_close((uv_handle_t *)&tick, NULL);
    done_client(c);
}

static void test_exec_plugin_refresh_ahead(void **st)
{
    NEED_SIM();
    char exp[32];
    time_t later = time(NULL) + 3600;
    strftime(exp, sizeof exp, "%Y-%m-%dT%H:%M:%SZ", gmtime(&later));
    struct kube_client *c = exec_client("0.5", 0, exp);
    struct res y;
    call(c, "GET", "/api/v1/namespaces/default/pods", NULL, &y);   /* waits for the first token */
    assert_int_equal(y.outcome, KUBE_OK);
    res_free(&y);
    assert_int_equal(exec_runs(), 1);
    assert_true(kube_client_config(c)->exec_expiry == later);
    /* the hour goes by: the token now expires within the minute */
    kube_client_config(c)->exec_expiry = time(NULL) + 40;
    int64_t t0 = mono_us();
    call(c, "GET", "/api/v1/namespaces/default/pods", NULL, &y);   /* starts a refresh, does not wait */
    assert_int_equal(y.outcome, KUBE_OK);
    res_free(&y);
    assert_true(mono_us() - t0 < 400000);
    /* the plugin counts a run as it starts: wait for its token */
    while (kube_client_config(c)->exec_expiry != later && mono_us() - t0 < 5000000) {
        uv_timer_t t;   /* let the loop run the plugin for a while */
        uv_timer_init(&loop, &t);
        uv_timer_start(&t, on_tick, 50, 0);
        uv_run(&loop, UV_RUN_ONCE);
        uv_close((uv_handle_t *)&t, NULL);
        uv_run(&loop, UV_RUN_NOWAIT);
    }
    assert_true(kube_client_config(c)->exec_expiry == later);   /* the new token */
    assert_int_equal(exec_runs(), 2);
    call(c, "GET", "/api/v1/namespaces/default/pods", NULL, &y);   /* nothing more to refresh */
    assert_int_equal(y.outcome, KUBE_OK);
    res_free(&y);
    assert_int_equal(exec_runs(), 2);
    done_client(c);
}

static void test_exec_plugin_errors(void **st)
{
    NEED_SIM();
    struct kube_client *c = exec_client("0", 3, NULL);
    struct res y;
    call(c, "GET", "/api/v1/namespaces/default/pods", NULL, &y);
    assert_int_equal(y.outcome, KUBE_PERMANENT);
    assert_string_equal(y.reason, "Unauthorized");
    assert_non_null(strstr(y.message, "exited with status 3"));
    res_free(&y);
    done_client(c);
    c = exec_client("0", 0, NULL);
    struct kube_config *cfg = kube_client_config(c);
    free(cfg->exec_argv[0]);
    cfg->exec_argv[0] = xasprintf("%s/no-such-plugin", tmpdir);
    call(c, "GET", "/api/v1/namespaces/default/pods", NULL, &y);
    assert_int_equal(y.outcome, KUBE_PERMANENT);
    assert_non_null(strstr(y.message, "cannot start"));
    res_free(&y);
    done_client(c);
    /* closing the client while the plugin runs: the request is cancelled,
     * the plugin killed, the loop ends */
    c = exec_client("30", 0, NULL);
    memset(&y, 0, sizeof y);
    assert_non_null(kube_request(c, "GET", "/api/v1/namespaces/default/pods", NULL, NULL, on_done, NULL, &y));
    uv_timer_t t;
    uv_timer_init(&loop, &t);
    uv_timer_start(&t, on_tick, 200, 0);
    uv_run(&loop, UV_RUN_ONCE);   /* the plugin has started */
    uv_close((uv_handle_t *)&t, NULL);
    assert_int_equal(y.done, 0);
    int64_t t0 = mono_us();
    done_client(c);
    assert_int_equal(y.done, 1);
    assert_string_equal(y.reason, "Cancelled");
    assert_true(mono_us() - t0 < 5000000);
    res_free(&y);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_status),
        cmocka_unit_test(test_crud),
        cmocka_unit_test(test_auth),
        cmocka_unit_test(test_429_retry_after),
        cmocka_unit_test(test_5xx),
        cmocka_unit_test(test_network_error),
        cmocka_unit_test(test_token_bucket),
        cmocka_unit_test(test_watch),
        cmocka_unit_test(test_watch_dropped),
        cmocka_unit_test(test_exec_plugin_async),
        cmocka_unit_test(test_exec_plugin_refresh_ahead),
        cmocka_unit_test(test_exec_plugin_errors),
    };
    return cmocka_run_group_tests(tests, start_sim, stop_sim);
}
