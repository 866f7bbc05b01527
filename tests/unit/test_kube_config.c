/* kube_config: kubeconfig parsing (contexts, data fields, relative paths,
 * errors with file:line:col), in-cluster files and token rotation, exec
 * credential plugins (argv, env, caching until expirationTimestamp). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "kube_config.h"
#include "util.h"

static char dir[64];

static char *write_file(const char *name, const char *text, unsigned mode)
{
    char *p = xasprintf("%s/%s", dir, name);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    chmod(p, mode);
    return p;
}

static int setup(void **st)
{
    strcpy(dir, "/tmp/kiln-kcfg.XXXXXX");
    assert_non_null(mkdtemp(dir));
    return 0;
}

static int teardown(void **st)
{
    char *cmd = xasprintf("rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
    free(cmd);
    return 0;
}

/* "hello CA" / "CERT" / "KEY" in base64 */
static const char *KC =
    "apiVersion: v1\n"
    "kind: Config\n"
    "current-context: dev\n"
    "clusters:\n"
    "- name: c1\n"
    "  cluster:\n"
    "    server: https://10.0.0.1:6443/\n"
    "    certificate-authority-data: aGVsbG8gQ0E=\n"
    "- name: c2\n"
    "  cluster:\n"
    "    server: http://127.0.0.1:8080\n"
    "    certificate-authority: certs/ca.pem\n"
    "    insecure-skip-tls-verify: true\n"
    "users:\n"
    "- name: u1\n"
    "  user:\n"
    "    client-certificate-data: Q0VSVA==\n"
    "    client-key-data: S0VZ\n"
    "- name: u2\n"
    "  user:\n"
    "    token: abc123\n"
    "    client-certificate: /abs/c.pem\n"
    "    client-key: k.pem\n"
    "contexts:\n"
    "- name: dev\n"
    "  context: {cluster: c1, user: u1, namespace: ml}\n"
    "- name: prod\n"
    "  context:\n"
    "    cluster: c2\n"
    "    user: u2\n";

static void test_current_context(void **st)
{
    char *p = write_file("kc", KC, 0600);
    struct kube_config *c = NULL;
    struct kiln_err err = {0};
    assert_int_equal(kube_config_load_kubeconfig(p, NULL, &c, &err), 0);
    assert_string_equal(c->context, "dev");
    assert_string_equal(c->server, "https://10.0.0.1:6443");
    assert_string_equal(c->namespace, "ml");
    assert_int_equal(c->ca.len, 8);
    assert_memory_equal(c->ca.data, "hello CA", 8);
    assert_string_equal(c->cert.data, "CERT");
    assert_string_equal(c->key.data, "KEY");
    assert_null(c->ca_file);
    assert_int_equal(c->insecure, 0);
    const char *tok = (const char *)1;
    assert_int_equal(kube_config_token(c, &tok, &err), 0);
    assert_null(tok);
    kube_config_free(c);
    free(p);
}

static void test_named_context(void **st)
{
    char *p = write_file("kc", KC, 0600);
    struct kube_config *c = NULL;
    struct kiln_err err = {0};
    assert_int_equal(kube_config_load_kubeconfig(p, "prod", &c, &err), 0);
    assert_string_equal(c->server, "http://127.0.0.1:8080");
    assert_string_equal(c->namespace, "default");
    assert_int_equal(c->insecure, 1);
    char *want = xasprintf("%s/certs/ca.pem", dir);
    assert_string_equal(c->ca_file, want);
    free(want);
    assert_string_equal(c->cert_file, "/abs/c.pem");
    want = xasprintf("%s/k.pem", dir);
    assert_string_equal(c->key_file, want);
    free(want);
    const char *tok = NULL;
    assert_int_equal(kube_config_token(c, &tok, &err), 0);
    assert_string_equal(tok, "abc123");
    kube_config_free(c);
    free(p);
}

static void expect_error(const char *text, const char *ctx, const char *needle)
{
    char *p = write_file("bad", text, 0600);
    struct kube_config *c = NULL;
    struct kiln_err err = {0};
    int rc = kube_config_load_kubeconfig(p, ctx, &c, &err);
    if (rc == 0 || !strstr(err.msg, needle))
        fail_msg("wanted an error with \"%s\", got rc %d \"%s\"", needle, rc, err.msg);
    assert_null(c);
    free(p);
}

static void test_errors(void **st)
{
    char *loc = xasprintf("%s/bad:", dir);
    expect_error("a: [1, 2\n", NULL, "bad:2:1:");
    expect_error("a: [1, 2\n", NULL, loc);
    free(loc);
    expect_error("- 1\n", NULL, "not a kubeconfig");
    expect_error("clusters: []\n", NULL, "no current-context");
    expect_error(KC, "nope", "context \"nope\" not found");
    expect_error("current-context: x\ncontexts:\n- name: x\n  context:\n    cluster: gone\n", NULL,
                 "bad:5:5: context \"x\": cluster \"gone\" not found");
    expect_error("current-context: x\ncontexts:\n- name: x\n  context: {cluster: c}\n"
                 "clusters:\n- name: c\n  cluster: {server: ftp://h}\n", NULL, "bad:7:21: cluster \"c\": server");
    expect_error("current-context: x\ncontexts:\n- name: x\n  context: {cluster: c}\n"
                 "clusters:\n- name: c\n  cluster:\n    server: https://h\n"
                 "    certificate-authority-data: '!!!'\n", NULL, "bad:9:33: certificate-authority-data: not valid base64");
    expect_error("current-context: x\ncontexts:\n- name: x\n  context: {cluster: c, user: u}\n"
                 "clusters:\n- name: c\n  cluster: {server: 'https://h'}\n"
                 "users:\n- name: u\n  user: {client-certificate-data: Q0VSVA==}\n", NULL,
                 "needs a client key");
    expect_error("current-context: x\ncontexts:\n- name: x\n  context: {cluster: c, user: u}\n"
                 "clusters:\n- name: c\n  cluster: {server: 'https://h'}\n"
                 "users:\n- name: u\n  user: {token: [a]}\n", NULL, "bad:10:17: token: expected a string");
    expect_error("current-context: x\ncontexts:\n- name: x\n  context: {cluster: c, user: u}\n"
                 "clusters:\n- name: c\n  cluster: {server: 'https://h'}\n"
                 "users:\n- name: u\n  user: {exec: {args: [a]}}\n", NULL, "exec: command is required");
    struct kube_config *c = NULL;
    struct kiln_err err = {0};
    assert_true(kube_config_load_kubeconfig("/nonexistent/kc", NULL, &c, &err) < 0);
    assert_non_null(strstr(err.msg, "/nonexistent/kc"));
}

static void test_incluster(void **st)
{
    char *sa = xasprintf("%s/sa", dir);
    assert_int_equal(mkdir(sa, 0700), 0);
    char *tp = write_file("sa/token", "tok-1\n", 0600);
    free(write_file("sa/ca.crt", "PEM", 0600));
    free(write_file("sa/namespace", "jobs\n", 0600));
    struct kube_config *c = NULL;
    struct kiln_err err = {0};
    unsetenv("KUBERNETES_SERVICE_HOST");
    assert_true(kube_config_load_incluster(sa, &c, &err) < 0);
    assert_non_null(strstr(err.msg, "KUBERNETES_SERVICE_HOST"));
    setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1", 1);
    setenv("KUBERNETES_SERVICE_PORT", "443", 1);
    kiln_err_clear(&err);
    assert_int_equal(kube_config_load_incluster(sa, &c, &err), 0);
    assert_string_equal(c->server, "https://10.96.0.1:443");
    assert_string_equal(c->namespace, "jobs");
    assert_non_null(strstr(c->ca_file, "/sa/ca.crt"));
    const char *tok = NULL;
    assert_int_equal(kube_config_token(c, &tok, &err), 0);
    assert_string_equal(tok, "tok-1");
    /* rotation: the kubelet swaps the file; the next request reads it */
    free(write_file("sa/token.new", "tok-2-longer\n", 0600));
    char *np = xasprintf("%s/sa/token.new", dir);
    assert_int_equal(rename(np, tp), 0);
    free(np);
    assert_int_equal(kube_config_token(c, &tok, &err), 0);
    assert_string_equal(tok, "tok-2-longer");
    kube_config_free(c);
    setenv("KUBERNETES_SERVICE_HOST", "fd00::1", 1);
    assert_int_equal(kube_config_load_incluster(sa, &c, &err), 0);
    assert_string_equal(c->server, "https://[fd00::1]:443");
    kube_config_free(c);
    unsetenv("KUBERNETES_SERVICE_HOST");
    unsetenv("KUBERNETES_SERVICE_PORT");
    free(tp);
    free(sa);
}

static void test_exec_plugin(void **st)
{
    /* counts its runs in a file; token from argv, expiry from env */
    char *script = write_file("plugin.sh",
        "#!/bin/sh\n"
        "echo run >> \"$(dirname \"$0\")/runs\"\n"
        "case \"$KUBERNETES_EXEC_INFO\" in *ExecCredential*) ;; *) exit 3 ;; esac\n"
        "printf '{\"apiVersion\":\"client.authentication.k8s.io/v1beta1\",\"kind\":\"ExecCredential\","
        "\"status\":{\"token\":\"%s\",\"expirationTimestamp\":\"%s\"}}' \"$1\" \"$EXPIRY\"\n", 0700);
    char exp_far[32], exp_near[32];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&(time_t){now + 3600}, &tm);
    strftime(exp_far, sizeof exp_far, "%Y-%m-%dT%H:%M:%SZ", &tm);
    gmtime_r(&(time_t){now + 5}, &tm);   /* inside the 10 s refresh margin */
    strftime(exp_near, sizeof exp_near, "%Y-%m-%dT%H:%M:%SZ", &tm);
    for (int near = 0; near < 2; near++) {
        char *runs = xasprintf("%s/runs", dir);
        unlink(runs);
        char *kc = xasprintf("current-context: x\ncontexts:\n- name: x\n  context: {cluster: c, user: u}\n"
                             "clusters:\n- name: c\n  cluster: {server: 'https://h'}\n"
                             "users:\n- name: u\n  user:\n    exec:\n      apiVersion: client.authentication.k8s.io/v1beta1\n"
                             "      command: ./plugin.sh\n      args: [\"tok en;$(x)\"]\n"
                             "      env:\n      - {name: EXPIRY, value: \"%s\"}\n", near ? exp_near : exp_far);
        char *p = write_file("kc", kc, 0600);
        struct kube_config *c = NULL;
        struct kiln_err err = {0};
        assert_int_equal(kube_config_load_kubeconfig(p, NULL, &c, &err), 0);
        const char *tok = NULL;
        assert_int_equal(kube_config_token(c, &tok, &err), 0);
        assert_string_equal(tok, "tok en;$(x)");   /* argv, not a shell */
        assert_int_equal(kube_config_token(c, &tok, &err), 0);
        char *s = NULL;
        size_t len = 0;
        assert_int_equal(file_read_all(runs, &s, &len), 0);
        assert_int_equal(len, near ? 8 : 4);       /* cached unless about to expire */
        free(s);
        kube_config_invalidate_token(c);
        assert_int_equal(kube_config_token(c, &tok, &err), 0);
        kube_config_free(c);
        free(p);
        free(kc);
        free(runs);
    }
    /* a failing plugin and one that prints garbage */
    free(write_file("fail.sh", "#!/bin/sh\nexit 7\n", 0700));
    free(write_file("junk.sh", "#!/bin/sh\necho hello\n", 0700));
    const char *names[] = {"fail.sh", "junk.sh", "missing.sh"};
    const char *want[] = {"exited with status 7", "not an ExecCredential", "exited with status 127"};
    for (int i = 0; i < 3; i++) {
        char *kc = xasprintf("current-context: x\ncontexts:\n- name: x\n  context: {cluster: c, user: u}\n"
                             "clusters:\n- name: c\n  cluster: {server: 'https://h'}\n"
                             "users:\n- name: u\n  user: {exec: {command: ./%s}}\n", names[i]);
        char *p = write_file("kc", kc, 0600);
        struct kube_config *c = NULL;
        struct kiln_err err = {0};
        assert_int_equal(kube_config_load_kubeconfig(p, NULL, &c, &err), 0);
        const char *tok = NULL;
        assert_true(kube_config_token(c, &tok, &err) < 0);
        if (!strstr(err.msg, want[i])) fail_msg("%s: %s", names[i], err.msg);
        kube_config_free(c);
        free(p);
        free(kc);
    }
    free(script);
}

static void test_helpers(void **st)
{
    time_t t;
    assert_int_equal(kube_parse_rfc3339("1970-01-01T00:01:00Z", &t), 0);
    assert_int_equal(t, 60);
    assert_int_equal(kube_parse_rfc3339("1970-01-01T01:00:00.123+01:00", &t), 0);
    assert_int_equal(t, 0);
    assert_true(kube_parse_rfc3339("yesterday", &t) < 0);
    struct kube_blob b;
    assert_int_equal(kube_base64_decode("aGk=\n", &b), 0);
    assert_int_equal(b.len, 2);
    assert_string_equal(b.data, "hi");
    free(b.data);
    assert_true(kube_base64_decode("abc", &b) < 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_current_context, setup, teardown),
        cmocka_unit_test_setup_teardown(test_named_context, setup, teardown),
        cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_incluster, setup, teardown),
        cmocka_unit_test_setup_teardown(test_exec_plugin, setup, teardown),
        cmocka_unit_test(test_helpers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
