/* kube_pod: pod names, label values, syntax checks and every field of the
 * Pod built for a try. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "kube_pod.h"

static struct kube_pod_ids ids_of(const char *dag, const char *run, const char *task, int try_no)
{
    struct kube_pod_ids ids = {"inst-1", dag, run, task, try_no, 7};
    return ids;
}

static const char *name_of(const char *dag, const char *run, const char *task, int try_no)
{
    static char buf[8][KUBE_NAME_MAX + 1];
    static int k;
    struct kube_pod_ids ids = ids_of(dag, run, task, try_no);
    char *out = buf[k++ % 8];
    kube_pod_name(&ids, out);
    return out;
}

static void test_name_shape(void **state)
{
    const char *n = name_of("etl", "run1", "extract", 1);
    assert_true(kube_valid_dns_label(n));
    assert_int_equal(strncmp(n, "etl-extract-1-", 14), 0);
    assert_int_equal(strlen(n), 14 + 10);
    /* upper case, dots, underscores, unicode */
    n = name_of("My_DAG.v2", "r", "Load.Table_X", 12);
    assert_true(kube_valid_dns_label(n));
    assert_int_equal(strncmp(n, "my-dag-v2-load-table-x-12-", 26), 0);
    n = name_of("Über", "r", "日本語", 1);
    assert_true(kube_valid_dns_label(n));
    assert_int_equal(strncmp(n, "ber-1-", 6), 0);
    n = name_of("___", "r", "---", 1);
    assert_true(kube_valid_dns_label(n));
    assert_int_equal(strncmp(n, "kiln-1-", 7), 0);
    /* long ids */
    char longd[300], longt[300];
    memset(longd, 'd', 299); longd[299] = 0;
    memset(longt, 't', 299); longt[299] = 0;
    n = name_of(longd, "r", longt, 123456);
    assert_true(kube_valid_dns_label(n));
    assert_int_equal(strlen(n), 63);
    n = name_of("a", "r", longt, 1);
    assert_true(kube_valid_dns_label(n));
    assert_int_equal(strlen(n), 63);
    assert_int_equal(strncmp(n, "a-ttt", 5), 0);
    /* a cut that lands on a dash does not leave "--" or a trailing dash */
    n = name_of("aaaaaaaaaaaaaaaaaaaaaaaa-bbbbbbbbbbbbbbbbb", "r", "c-c-c-c-c-c-c-c-c-c-c-c-c-c-c-c-c-c-c-c", 1);
    assert_true(kube_valid_dns_label(n));
    assert_null(strstr(n, "--"));
}

static void test_name_hash(void **state)
{
    /* stable: the same try always gets the same name (the value is pinned so a
     * change of the scheme is a deliberate one: it breaks adoption) */
    const char *a = name_of("etl", "run1", "extract", 1);
    assert_string_equal(a, name_of("etl", "run1", "extract", 1));
    assert_string_equal(a, "etl-extract-1-748de09a72");
    /* every id is in the hash */
    assert_string_not_equal(a, name_of("etl", "run2", "extract", 1));
    assert_string_not_equal(a, name_of("etl", "run1", "extract", 2));
    assert_string_not_equal(name_of("My.DAG", "r", "t", 1), name_of("my_dag", "r", "t", 1));
    struct kube_pod_ids x = ids_of("etl", "run1", "extract", 1);
    x.instance = "inst-2";
    char other[KUBE_NAME_MAX + 1];
    kube_pod_name(&x, other);
    assert_string_not_equal(a, other);
    /* try_id is not: it is kiln's row id, not part of the try's identity */
    x.instance = "inst-1";
    x.try_id = 99;
    kube_pod_name(&x, other);
    assert_string_equal(a, other);
    /* no separator ambiguity */
    assert_string_not_equal(name_of("a", "b", "cd", 1), name_of("a", "bc", "d", 1));
}

static void test_label_value(void **state)
{
    char v[KUBE_LABEL_VALUE_MAX + 1];
    kube_label_value("extract", v);
    assert_string_equal(v, "extract");
    kube_label_value("Load.Table_X-2", v);
    assert_string_equal(v, "Load.Table_X-2");
    kube_label_value("", v);
    assert_string_equal(v, "");
    /* changed → hashed, so distinct inputs stay distinct */
    kube_label_value("manual__2026-01-02T03:04:05+00:00", v);
    assert_true(kube_valid_label_value(v));
    assert_int_equal(strncmp(v, "manual__2026-01-02T0304050000-", 30), 0);
    assert_int_equal(strlen(v), 30 + 9);
    char w[KUBE_LABEL_VALUE_MAX + 1];
    kube_label_value("manual__2026-01-02T03:04:05+0000", w);
    assert_string_not_equal(v, w);
    kube_label_value("-x-", v);
    assert_true(kube_valid_label_value(v));
    assert_int_equal(strncmp(v, "x-", 2), 0);
    kube_label_value("日本語", v);
    assert_true(kube_valid_label_value(v));
    assert_int_equal(strlen(v), 9);
    kube_label_value("Über", v);
    assert_true(kube_valid_label_value(v));
    assert_int_equal(strncmp(v, "ber-", 4), 0);
    /* long */
    char in[200];
    memset(in, 'a', 199); in[199] = 0;
    kube_label_value(in, v);
    assert_true(kube_valid_label_value(v));
    assert_int_equal(strlen(v), 63);
    in[63] = 0;
    kube_label_value(in, v);
    assert_true(kube_valid_label_value(v));
    assert_int_equal(strlen(v), 63);
    assert_string_equal(v, in);
    /* a cut that ends on '.' or '_' */
    memset(in, 'a', 199);
    in[52] = '.'; in[51] = '_';
    kube_label_value(in, v);
    assert_true(kube_valid_label_value(v));
    assert_int_equal(strlen(v), 51 + 1 + 9);
    /* stable */
    kube_label_value("a b", v);
    kube_label_value("a b", w);
    assert_string_equal(v, w);
}

static void test_validators(void **state)
{
    assert_true(kube_valid_dns_label("a"));
    assert_true(kube_valid_dns_label("a-1"));
    assert_false(kube_valid_dns_label(""));
    assert_false(kube_valid_dns_label("-a"));
    assert_false(kube_valid_dns_label("a-"));
    assert_false(kube_valid_dns_label("A"));
    assert_false(kube_valid_dns_label("a.b"));
    assert_false(kube_valid_dns_label("a_b"));
    char s[80];
    memset(s, 'a', 64); s[64] = 0;
    assert_false(kube_valid_dns_label(s));
    s[63] = 0;
    assert_true(kube_valid_dns_label(s));
    assert_true(kube_valid_dns_subdomain("a.b-c.d"));
    assert_false(kube_valid_dns_subdomain("a..b"));
    assert_false(kube_valid_dns_subdomain(".a"));
    assert_true(kube_valid_label_key("app"));
    assert_true(kube_valid_label_key("kiln.io/run"));
    assert_true(kube_valid_label_key("nvidia.com/gpu.present"));
    assert_false(kube_valid_label_key("/x"));
    assert_false(kube_valid_label_key("kiln.io/"));
    assert_false(kube_valid_label_key("Kiln.IO/x"));
    assert_false(kube_valid_label_key("a b"));
    assert_true(kube_valid_label_value("MyValue"));
    assert_true(kube_valid_label_value("my_value.1"));
    assert_false(kube_valid_label_value("a b"));
    assert_false(kube_valid_label_value("_a"));
    static const char *const goodq[] = {"1", "500m", "1.5Gi", "0.5", "2e3", "1E-3", "128Mi", "+1",
                                        ".5", "10k", "1Ei", "100n"};
    for (size_t i = 0; i < sizeof goodq / sizeof *goodq; i++)
        assert_true(kube_valid_quantity(goodq[i]));
    static const char *const badq[] = {"", "-1", "1XB", "1 Gi", "Gi", ".", "1.5.5", "1e", "1mi", "1KB"};
    for (size_t i = 0; i < sizeof badq / sizeof *badq; i++) {
        if (kube_valid_quantity(badq[i]))
            fail_msg("quantity '%s' accepted", badq[i]);
    }
    assert_true(kube_valid_env_name("PATH"));
    assert_true(kube_valid_env_name("my.var-1"));
    assert_false(kube_valid_env_name("1X"));
    assert_false(kube_valid_env_name("A=B"));
    assert_false(kube_valid_env_name(""));
}

static const char *jstr(json_object *root, const char *path)
{
    /* path: keys and array indexes separated by '/' */
    char buf[256];
    snprintf(buf, sizeof buf, "%s", path);
    json_object *o = root;
    char *save = NULL;
    for (char *t = strtok_r(buf, "/", &save); t && o; t = strtok_r(NULL, "/", &save)) {
        if (json_object_is_type(o, json_type_array))
            o = json_object_array_get_idx(o, (size_t)atoi(t));
        else if (!json_object_object_get_ex(o, t, &o))
            o = NULL;
    }
    return o ? json_object_get_string(o) : NULL;
}

static char *cmd[] = {"python3", "-c", "print('hi')", NULL};

static void test_build_minimal(void **state)
{
    struct kube_task_spec ks = {.image = "busybox", .command = cmd};
    struct kube_pod_ids ids = ids_of("etl", "manual__2026-01-02T03:04:05+00:00", "extract", 1);
    json_object *pod;
    struct kiln_err err = {0};
    assert_int_equal(kube_pod_build(&ks, &ids, &pod, &err), 0);
    assert_string_equal(jstr(pod, "apiVersion"), "v1");
    assert_string_equal(jstr(pod, "kind"), "Pod");
    assert_string_equal(jstr(pod, "metadata/namespace"), "default");
    assert_string_equal(jstr(pod, "metadata/name"), name_of("etl", ids.run_id, "extract", 1));
    json_object *labels;
    assert_true(json_object_object_get_ex(json_object_object_get(pod, "metadata"), "labels", &labels));
    assert_string_equal(json_object_get_string(json_object_object_get(labels, "kiln.io/dag")), "etl");
    assert_string_equal(json_object_get_string(json_object_object_get(labels, "kiln.io/task")), "extract");
    assert_string_equal(json_object_get_string(json_object_object_get(labels, "kiln.io/try")), "1");
    assert_string_equal(json_object_get_string(json_object_object_get(labels, "kiln.io/instance")), "inst-1");
    assert_string_equal(json_object_get_string(json_object_object_get(labels, "app.kubernetes.io/managed-by")),
                        "kiln");
    const char *run = json_object_get_string(json_object_object_get(labels, "kiln.io/run"));
    assert_true(kube_valid_label_value(run));
    assert_string_not_equal(run, ids.run_id);
    json_object *ann = json_object_object_get(json_object_object_get(pod, "metadata"), "annotations");
    assert_string_equal(json_object_get_string(json_object_object_get(ann, "kiln.io/run-id")), ids.run_id);
    assert_string_equal(json_object_get_string(json_object_object_get(ann, "kiln.io/dag-id")), "etl");
    assert_string_equal(json_object_get_string(json_object_object_get(ann, "kiln.io/task-id")), "extract");
    assert_string_equal(json_object_get_string(json_object_object_get(ann, "kiln.io/try-number")), "1");
    assert_string_equal(json_object_get_string(json_object_object_get(ann, "kiln.io/try-id")), "7");
    assert_string_equal(json_object_get_string(json_object_object_get(ann, "kiln.io/instance")), "inst-1");
    assert_string_equal(jstr(pod, "spec/restartPolicy"), "Never");
    assert_null(jstr(pod, "spec/activeDeadlineSeconds"));
    assert_null(jstr(pod, "spec/tolerations"));
    assert_null(jstr(pod, "spec/volumes"));
    assert_string_equal(jstr(pod, "spec/containers/0/name"), "main");
    assert_string_equal(jstr(pod, "spec/containers/0/image"), "busybox");
    assert_string_equal(jstr(pod, "spec/containers/0/command/0"), "python3");
    assert_string_equal(jstr(pod, "spec/containers/0/command/2"), "print('hi')");
    assert_null(jstr(pod, "spec/containers/0/resources/limits"));
    json_object_put(pod);
}

static void test_build_full(void **state)
{
    struct kube_kv env[] = {{"A", "1"}, {"B", NULL}};
    struct kube_kv sel[] = {{"nvidia.com/gpu.product", "NVIDIA-H100"}};
    struct kube_toleration tol[] = {{"dedicated", NULL, "ml", "NoSchedule", 0}};
    const char *secrets[] = {"regcred", "other", NULL};
    struct kube_volume vols[] = {
        {"data", KUBE_VOL_PVC, "claim-1", "/data", NULL, true, NULL, NULL},
        {"cfg", KUBE_VOL_CONFIG_MAP, "cm", "/etc/cfg", NULL, false, NULL, NULL},
        {"sec", KUBE_VOL_SECRET, "s", "/secret", "key", false, NULL, NULL},
        {NULL, KUBE_VOL_EMPTY_DIR, NULL, "/dev/shm", NULL, false, "Memory", "2Gi"},
    };
    struct kube_task_spec ks = {
        .namespace_ = "ml", .image = "img:1", .image_pull_policy = "Always", .command = cmd,
        .env = env, .n_env = 2, .working_dir = "/work",
        .requests = {"250m", "1Gi", "10Gi"}, .limits = {"4", "8Gi", NULL},
        .gpu = 2, .gpu_toleration = true, .node_selector = sel, .n_node_selector = 1,
        .tolerations = tol, .n_tolerations = 1, .service_account = "runner",
        .image_pull_secrets = secrets, .volumes = vols, .n_volumes = 4, .timeout_s = 3600,
        .termination_grace_s = 5,
    };
    struct kube_pod_ids ids = ids_of("train", "r1", "fit", 2);
    json_object *pod;
    struct kiln_err err = {0};
    assert_int_equal(kube_pod_build(&ks, &ids, &pod, &err), 0);
    assert_string_equal(jstr(pod, "metadata/namespace"), "ml");
    assert_string_equal(jstr(pod, "spec/activeDeadlineSeconds"), "3600");
    assert_string_equal(jstr(pod, "spec/terminationGracePeriodSeconds"), "5");
    assert_string_equal(jstr(pod, "spec/serviceAccountName"), "runner");
    assert_string_equal(jstr(pod, "spec/imagePullSecrets/0/name"), "regcred");
    assert_string_equal(jstr(pod, "spec/imagePullSecrets/1/name"), "other");
    json_object *ns = json_object_object_get(json_object_object_get(pod, "spec"), "nodeSelector");
    assert_string_equal(json_object_get_string(json_object_object_get(ns, "nvidia.com/gpu.product")),
                        "NVIDIA-H100");
    assert_string_equal(jstr(pod, "spec/tolerations/0/key"), "dedicated");
    assert_string_equal(jstr(pod, "spec/tolerations/0/operator"), "Equal");
    assert_string_equal(jstr(pod, "spec/tolerations/0/value"), "ml");
    assert_string_equal(jstr(pod, "spec/tolerations/0/effect"), "NoSchedule");
    assert_string_equal(jstr(pod, "spec/tolerations/1/operator"), "Exists");
    assert_string_equal(jstr(pod, "spec/tolerations/1/effect"), "NoSchedule");
    json_object *t1 = json_object_array_get_idx(
        json_object_object_get(json_object_object_get(pod, "spec"), "tolerations"), 1);
    assert_string_equal(json_object_get_string(json_object_object_get(t1, "key")), "nvidia.com/gpu");
    const char *c = "spec/containers/0/";
    char p[128];
#define C(x) (snprintf(p, sizeof p, "%s%s", c, x), jstr(pod, p))
    assert_string_equal(C("imagePullPolicy"), "Always");
    assert_string_equal(C("workingDir"), "/work");
    assert_string_equal(C("env/0/name"), "A");
    assert_string_equal(C("env/0/value"), "1");
    assert_string_equal(C("env/1/name"), "B");
    assert_string_equal(C("env/1/value"), "");
    json_object *res = json_object_object_get(
        json_object_array_get_idx(json_object_object_get(json_object_object_get(pod, "spec"), "containers"), 0),
        "resources");
    json_object *rq = json_object_object_get(res, "requests"), *lm = json_object_object_get(res, "limits");
    assert_string_equal(json_object_get_string(json_object_object_get(rq, "cpu")), "250m");
    assert_string_equal(json_object_get_string(json_object_object_get(rq, "memory")), "1Gi");
    assert_string_equal(json_object_get_string(json_object_object_get(rq, "ephemeral-storage")), "10Gi");
    assert_null(json_object_object_get(rq, "nvidia.com/gpu"));
    assert_string_equal(json_object_get_string(json_object_object_get(lm, "cpu")), "4");
    assert_string_equal(json_object_get_string(json_object_object_get(lm, "memory")), "8Gi");
    assert_null(json_object_object_get(lm, "ephemeral-storage"));
    assert_string_equal(json_object_get_string(json_object_object_get(lm, "nvidia.com/gpu")), "2");
    assert_true(json_object_is_type(json_object_object_get(lm, "nvidia.com/gpu"), json_type_string));
    assert_string_equal(jstr(pod, "spec/volumes/0/name"), "data");
    assert_string_equal(jstr(pod, "spec/volumes/0/persistentVolumeClaim/claimName"), "claim-1");
    assert_string_equal(jstr(pod, "spec/volumes/0/persistentVolumeClaim/readOnly"), "true");
    assert_string_equal(jstr(pod, "spec/volumes/1/configMap/name"), "cm");
    assert_string_equal(jstr(pod, "spec/volumes/2/secret/secretName"), "s");
    assert_string_equal(jstr(pod, "spec/volumes/3/name"), "vol-3");
    assert_string_equal(jstr(pod, "spec/volumes/3/emptyDir/medium"), "Memory");
    assert_string_equal(jstr(pod, "spec/volumes/3/emptyDir/sizeLimit"), "2Gi");
    assert_string_equal(C("volumeMounts/0/name"), "data");
    assert_string_equal(C("volumeMounts/0/mountPath"), "/data");
    assert_string_equal(C("volumeMounts/0/readOnly"), "true");
    assert_string_equal(C("volumeMounts/1/readOnly"), "true");
    assert_string_equal(C("volumeMounts/2/subPath"), "key");
    assert_string_equal(C("volumeMounts/3/name"), "vol-3");
    assert_null(C("volumeMounts/3/readOnly"));
#undef C
    json_object_put(pod);

    /* a user toleration for the GPU taint replaces the automatic one */
    struct kube_toleration gt[] = {{"nvidia.com/gpu", "Exists", NULL, NULL, 0}};
    ks.tolerations = gt;
    ks.n_tolerations = 1;
    assert_int_equal(kube_pod_build(&ks, &ids, &pod, &err), 0);
    assert_int_equal(json_object_array_length(json_object_object_get(json_object_object_get(pod, "spec"),
                                                                     "tolerations")), 1);
    json_object_put(pod);
}

static void expect_invalid(const struct kube_task_spec *ks, const char *needle)
{
    struct kube_pod_ids ids = ids_of("d", "r", "t", 1);
    json_object *pod = (json_object *)1;
    struct kiln_err err = {0};
    assert_int_equal(kube_pod_build(ks, &ids, &pod, &err), KILN_EINVALID);
    assert_null(pod);
    if (!strstr(err.msg, needle))
        fail_msg("error '%s' does not mention '%s'", err.msg, needle);
}

static void test_build_invalid(void **state)
{
    struct kube_task_spec base = {.image = "busybox", .command = cmd}, ks;
    ks = base; ks.image = NULL; expect_invalid(&ks, "image");
    ks = base; ks.command = NULL; expect_invalid(&ks, "command");
    ks = base; ks.limits.memory = "1XB"; expect_invalid(&ks, "limits.memory: '1XB'");
    ks = base; ks.requests.cpu = "-1"; expect_invalid(&ks, "requests.cpu");
    ks = base; ks.namespace_ = "Bad_NS"; expect_invalid(&ks, "namespace");
    ks = base; ks.image_pull_policy = "Sometimes"; expect_invalid(&ks, "image_pull_policy");
    ks = base; ks.working_dir = "rel"; expect_invalid(&ks, "working_dir");
    ks = base; ks.gpu = -1; expect_invalid(&ks, "gpu");
    ks = base; ks.service_account = "Nope!"; expect_invalid(&ks, "service account");
    struct kube_kv badenv[] = {{"1X", "v"}};
    ks = base; ks.env = badenv; ks.n_env = 1; expect_invalid(&ks, "env name '1X'");
    struct kube_kv dupenv[] = {{"X", "1"}, {"X", "2"}};
    ks = base; ks.env = dupenv; ks.n_env = 2; expect_invalid(&ks, "twice");
    struct kube_kv badsel[] = {{"pool", "a b"}};
    ks = base; ks.node_selector = badsel; ks.n_node_selector = 1; expect_invalid(&ks, "node_selector");
    struct kube_toleration badtol[] = {{"k", "Maybe", NULL, NULL, 0}};
    ks = base; ks.tolerations = badtol; ks.n_tolerations = 1; expect_invalid(&ks, "operator");
    struct kube_toleration badeff[] = {{"k", "Equal", "v", "Sometimes", 0}};
    ks = base; ks.tolerations = badeff; ks.n_tolerations = 1; expect_invalid(&ks, "effect");
    struct kube_volume badvol[] = {{"Data", KUBE_VOL_PVC, "c", "/d", NULL, false, NULL, NULL}};
    ks = base; ks.volumes = badvol; ks.n_volumes = 1; expect_invalid(&ks, "DNS-1123");
    struct kube_volume relvol[] = {{"d", KUBE_VOL_PVC, "c", "d", NULL, false, NULL, NULL}};
    ks = base; ks.volumes = relvol; ks.n_volumes = 1; expect_invalid(&ks, "absolute");
    struct kube_volume nosrc[] = {{"d", KUBE_VOL_SECRET, NULL, "/d", NULL, false, NULL, NULL}};
    ks = base; ks.volumes = nosrc; ks.n_volumes = 1; expect_invalid(&ks, "source");
    struct kube_volume dup[] = {{"d", KUBE_VOL_EMPTY_DIR, NULL, "/a", NULL, false, NULL, NULL},
                                {"d", KUBE_VOL_EMPTY_DIR, NULL, "/b", NULL, false, NULL, NULL}};
    ks = base; ks.volumes = dup; ks.n_volumes = 2; expect_invalid(&ks, "duplicate");
    const char *badsec[] = {"Bad Secret", NULL};
    ks = base; ks.image_pull_secrets = badsec; expect_invalid(&ks, "pull secret");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_name_shape),
        cmocka_unit_test(test_name_hash),
        cmocka_unit_test(test_label_value),
        cmocka_unit_test(test_validators),
        cmocka_unit_test(test_build_minimal),
        cmocka_unit_test(test_build_full),
        cmocka_unit_test(test_build_invalid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
