/* kube_spec: every key of a task's kubernetes block, every refusal with the
 * path it names, the default-block merge, pod templates laid under the
 * generated pod, and the per-task checks both loaders share. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <yaml.h>
#include <cmocka.h>

#include "dag.h"
#include "kube_spec.h"

static struct kube_task_spec *parse_ok(const char *json, const char *dir)
{
    json_object *o = json_tokener_parse(json);
    assert_non_null(o);
    struct kube_task_spec *ks = NULL;
    char where[256];
    struct kiln_err err = {0};
    int rc = kube_spec_parse(o, dir, &ks, where, sizeof where, &err);
    if (rc)
        fail_msg("%s: unexpected error at '%s': %s", json, where, err.msg);
    json_object_put(o);
    return ks;
}

/* Parsing json fails; where is want_where, and the message holds want_msg. */
static void parse_err(const char *json, const char *want_where, const char *want_msg)
{
    json_object *o = json_tokener_parse(json);
    assert_true(o != NULL || !strcmp(json, "null"));
    struct kube_task_spec *ks = (struct kube_task_spec *)1;
    char where[256] = "unset";
    struct kiln_err err = {0};
    int rc = kube_spec_parse(o, NULL, &ks, where, sizeof where, &err);
    json_object_put(o);
    if (rc != KILN_EINVALID)
        fail_msg("%s: parsed (rc %d), wanted an error", json, rc);
    assert_null(ks);
    if (strcmp(where, want_where) || !strstr(err.msg, want_msg))
        fail_msg("%s:\n  got  where '%s': %s\n  want where '%s': ...%s...", json, where, err.msg,
                 want_where, want_msg);
}

static void test_every_key(void **state)
{
    (void)state;
    struct kube_task_spec *ks = parse_ok(
        "{\"namespace\": \"ml\", \"image\": \"reg.example.com/t:1\","
        " \"image_pull_policy\": \"Always\", \"working_dir\": \"/work\","
        " \"resources\": {\"requests\": {\"cpu\": \"500m\", \"memory\": \"1Gi\","
        "   \"ephemeral-storage\": \"1Gi\"},"
        "  \"limits\": {\"cpu\": 2, \"memory\": \"2Gi\", \"ephemeral_storage\": \"4Gi\"}},"
        " \"gpu\": 2, \"node_selector\": {\"nvidia.com/gpu.present\": \"true\", \"tier\": 3},"
        " \"tolerations\": [{\"key\": \"dedicated\", \"operator\": \"Equal\", \"value\": \"ml\","
        "   \"effect\": \"NoSchedule\"},"
        "  {\"operator\": \"Exists\", \"effect\": \"NoExecute\", \"toleration_seconds\": 60}],"
        " \"affinity\": {\"nodeAffinity\": {\"requiredDuringSchedulingIgnoredDuringExecution\":"
        "   {\"nodeSelectorTerms\": [{\"matchExpressions\": [{\"key\": \"zone\","
        "   \"operator\": \"In\", \"values\": [\"a\"]}]}]}}},"
        " \"service_account\": \"trainer\", \"image_pull_secrets\": [\"regcred\", \"other\"],"
        " \"volumes\": [{\"name\": \"data\", \"pvc\": \"claim-1\", \"mount_path\": \"/data\","
        "   \"read_only\": true},"
        "  {\"name\": \"cfg\", \"config_map\": \"etl\", \"mount_path\": \"/etc/etl\","
        "   \"sub_path\": \"a/b.yaml\"},"
        "  {\"secret\": \"creds\", \"mount_path\": \"/creds\"},"
        "  {\"name\": \"shm\", \"empty_dir\": {\"medium\": \"Memory\", \"size_limit\": \"1Gi\"},"
        "   \"mount_path\": \"/dev/shm\"},"
        "  {\"name\": \"tmp\", \"empty_dir\": true, \"mount_path\": \"/scratch\"}],"
        " \"termination_grace\": \"1m30s\", \"runtime_class\": \"nvidia\"}",
        NULL);
    assert_string_equal(ks->namespace_, "ml");
    assert_string_equal(ks->image, "reg.example.com/t:1");
    assert_string_equal(ks->image_pull_policy, "Always");
    assert_string_equal(ks->working_dir, "/work");
    assert_string_equal(ks->requests.cpu, "500m");
    assert_string_equal(ks->requests.memory, "1Gi");
    assert_string_equal(ks->requests.ephemeral_storage, "1Gi");
    assert_string_equal(ks->limits.cpu, "2");
    assert_string_equal(ks->limits.memory, "2Gi");
    assert_string_equal(ks->limits.ephemeral_storage, "4Gi");
    assert_int_equal(ks->gpu, 2);
    assert_int_equal(ks->n_node_selector, 2);
    assert_string_equal(ks->node_selector[0].key, "nvidia.com/gpu.present");
    assert_string_equal(ks->node_selector[0].value, "true");
    assert_string_equal(ks->node_selector[1].value, "3");
    assert_int_equal(ks->n_tolerations, 2);
    assert_string_equal(ks->tolerations[0].key, "dedicated");
    assert_string_equal(ks->tolerations[0].op, "Equal");
    assert_string_equal(ks->tolerations[0].value, "ml");
    assert_string_equal(ks->tolerations[0].effect, "NoSchedule");
    assert_null(ks->tolerations[1].key);
    assert_int_equal(ks->tolerations[1].toleration_seconds, 60);
    assert_non_null(ks->affinity);
    assert_non_null(json_object_object_get(ks->affinity, "nodeAffinity"));
    assert_string_equal(ks->service_account, "trainer");
    assert_string_equal(ks->image_pull_secrets[0], "regcred");
    assert_string_equal(ks->image_pull_secrets[1], "other");
    assert_null(ks->image_pull_secrets[2]);
    assert_int_equal(ks->n_volumes, 5);
    assert_int_equal(ks->volumes[0].kind, KUBE_VOL_PVC);
    assert_string_equal(ks->volumes[0].source, "claim-1");
    assert_true(ks->volumes[0].read_only);
    assert_int_equal(ks->volumes[1].kind, KUBE_VOL_CONFIG_MAP);
    assert_string_equal(ks->volumes[1].sub_path, "a/b.yaml");
    assert_int_equal(ks->volumes[2].kind, KUBE_VOL_SECRET);
    assert_null(ks->volumes[2].name);
    assert_int_equal(ks->volumes[3].kind, KUBE_VOL_EMPTY_DIR);
    assert_string_equal(ks->volumes[3].medium, "Memory");
    assert_string_equal(ks->volumes[3].size_limit, "1Gi");
    assert_int_equal(ks->volumes[4].kind, KUBE_VOL_EMPTY_DIR);
    assert_null(ks->volumes[4].medium);
    assert_int_equal(ks->termination_grace_s, 90);
    assert_string_equal(ks->runtime_class, "nvidia");
    assert_null(ks->pod_template);
    /* per-try fields stay for the executor */
    assert_null(ks->command);
    assert_int_equal(ks->n_env, 0);
    assert_int_equal(ks->timeout_s, 0);

    /* and the builder takes all of it */
    char *argv[] = {"python", "train.py", NULL};
    struct kube_task_spec run = *ks;
    run.command = argv;
    struct kube_pod_ids ids = {"i", "d", "r", "t", 1, 1};
    json_object *pod = NULL;
    struct kiln_err err = {0};
    assert_int_equal(kube_pod_build(&run, &ids, &pod, &err), 0);
    json_object *spec = json_object_object_get(pod, "spec");
    assert_string_equal(json_object_get_string(json_object_object_get(spec, "runtimeClassName")),
                        "nvidia");
    json_object *aff = json_object_object_get(spec, "affinity");
    assert_non_null(aff);
    assert_true(json_object_equal(aff, ks->affinity));
    assert_true(aff != ks->affinity);    /* a copy: the pod is freed on its own */
    assert_int_equal(json_object_get_int(json_object_object_get(spec,
                                         "terminationGracePeriodSeconds")), 90);
    json_object_put(pod);
    kube_spec_free(ks);
}

static void test_empty_and_null(void **state)
{
    (void)state;
    struct kube_task_spec *ks = parse_ok("{}", NULL);
    assert_null(ks->image);
    assert_int_equal(ks->n_volumes, 0);
    kube_spec_free(ks);
    /* null values count as absent; {} does for a list */
    ks = parse_ok("{\"image\": \"x\", \"gpu\": null, \"tolerations\": {}, \"volumes\": [],"
                  " \"node_selector\": []}", NULL);
    assert_int_equal(ks->gpu, 0);
    assert_int_equal(ks->n_tolerations, 0);
    kube_spec_free(ks);
    /* termination_grace rounds up to whole seconds; a bare number is seconds */
    ks = parse_ok("{\"termination_grace\": \"1500ms\"}", NULL);
    assert_int_equal(ks->termination_grace_s, 2);
    kube_spec_free(ks);
    ks = parse_ok("{\"termination_grace\": 45}", NULL);
    assert_int_equal(ks->termination_grace_s, 45);
    kube_spec_free(ks);
    /* a number written without quotes is a quantity too */
    ks = parse_ok("{\"resources\": {\"limits\": {\"cpu\": 0.5}}}", NULL);
    assert_string_equal(ks->limits.cpu, "0.5");
    kube_spec_free(ks);
    kube_spec_free(NULL);
}

static void test_errors(void **state)
{
    (void)state;
    parse_err("[1]", "", "must be a map");
    parse_err("{\"imgae\": \"x\"}", "imgae", "did you mean 'image'?");
    parse_err("{\"namespace\": \"Bad_NS\"}", "namespace", "not a valid namespace");
    parse_err("{\"image\": 3}", "image", "must be a non-empty string, got 3");
    parse_err("{\"image\": \"\"}", "image", "non-empty string");
    parse_err("{\"image\": \"a b\"}", "image", "white space");
    parse_err("{\"image_pull_policy\": \"always\"}", "image_pull_policy",
              "unknown value 'always' (did you mean 'Always'?)");
    parse_err("{\"working_dir\": \"rel\"}", "working_dir", "absolute");
    parse_err("{\"resources\": {\"limits\": {\"memory\": \"1GG\"}}}", "resources.limits.memory",
              "invalid quantity '1GG' (expected");
    parse_err("{\"resources\": {\"limits\": {\"cpu\": -1}}}", "resources.limits.cpu",
              "invalid quantity '-1'");
    parse_err("{\"resources\": {\"limits\": {\"cpu\": true}}}", "resources.limits.cpu",
              "must be a quantity");
    parse_err("{\"resources\": {\"limit\": {}}}", "resources.limit", "did you mean 'limits'?");
    parse_err("{\"resources\": {\"requests\": {\"gpu\": 1}}}", "resources.requests.gpu",
              "unknown key 'gpu'");
    parse_err("{\"resources\": 2}", "resources", "must be a map");
    parse_err("{\"resources\": {\"requests\": {\"ephemeral_storage\": \"1Gi\","
              " \"ephemeral-storage\": \"1Gi\"}}}", "resources.requests.ephemeral-storage",
              "not both");
    parse_err("{\"resources\": {\"requests\": {\"memory\": \"2Gi\"}, \"limits\": {\"memory\":"
              " \"1500Mi\"}}}", "resources.requests.memory", "request 2Gi is more than the limit 1500Mi");
    parse_err("{\"resources\": {\"requests\": {\"cpu\": \"1500m\"}, \"limits\": {\"cpu\": 1}}}",
              "resources.requests.cpu", "more than the limit");
    parse_err("{\"gpu\": -1}", "gpu", "an integer >= 0, got -1");
    parse_err("{\"gpu\": 1.5}", "gpu", "an integer >= 0, got 1.5");
    parse_err("{\"gpu\": \"2\"}", "gpu", "an integer >= 0, got '2'");
    parse_err("{\"node_selector\": {\"bad key!\": \"x\"}}", "node_selector.bad key!",
              "not a valid label key");
    parse_err("{\"node_selector\": {\"disk\": \"-ssd\"}}", "node_selector.disk",
              "not a valid label value");
    parse_err("{\"node_selector\": {\"disk\": [1]}}", "node_selector.disk", "got a list");
    parse_err("{\"node_selector\": [1]}", "node_selector", "must be a map");
    parse_err("{\"tolerations\": {\"key\": \"a\"}}", "tolerations", "must be a list");
    parse_err("{\"tolerations\": [\"a\"]}", "tolerations[0]", "must be a map");
    parse_err("{\"tolerations\": [{\"key\": \"a\"}, {\"key\": \"b\", \"effect\": \"NoSchedul\"}]}",
              "tolerations[1].effect", "did you mean 'NoSchedule'?");
    parse_err("{\"tolerations\": [{\"key\": \"a\", \"operator\": \"In\"}]}",
              "tolerations[0].operator", "unknown value 'In'");
    parse_err("{\"tolerations\": [{\"key\": \"a\", \"operator\": \"Exists\", \"value\": \"v\"}]}",
              "tolerations[0].value", "not allowed with operator Exists");
    parse_err("{\"tolerations\": [{\"value\": \"v\"}]}", "tolerations[0]", "Equal needs a key");
    parse_err("{\"tolerations\": [{\"key\": \"a\", \"effect\": \"NoSchedule\","
              " \"toleration_seconds\": 5}]}", "tolerations[0].toleration_seconds",
              "needs effect NoExecute");
    parse_err("{\"tolerations\": [{\"key\": \"a\", \"effect\": \"NoExecute\","
              " \"toleration_seconds\": 0}]}", "tolerations[0].toleration_seconds",
              "a positive number of seconds");
    parse_err("{\"tolerations\": [{\"key\": \"a\", \"efect\": \"NoExecute\"}]}",
              "tolerations[0].efect", "did you mean 'effect'?");
    parse_err("{\"affinity\": {\"nodeAfinity\": {}}}", "affinity.nodeAfinity",
              "did you mean 'nodeAffinity'?");
    parse_err("{\"affinity\": {\"podAffinity\": 1}}", "affinity.podAffinity", "must be a map");
    parse_err("{\"affinity\": [1]}", "affinity", "must be a map");
    parse_err("{\"service_account\": \"Bad\"}", "service_account", "not a valid service account");
    parse_err("{\"image_pull_secrets\": \"regcred\"}", "image_pull_secrets", "must be a list");
    parse_err("{\"image_pull_secrets\": [\"ok\", \"NO\"]}", "image_pull_secrets[1]",
              "not a valid secret name");
    parse_err("{\"volumes\": [{\"pvc\": \"c\"}]}", "volumes[0]", "needs a mount_path");
    parse_err("{\"volumes\": [{\"pvc\": \"c\", \"mount_path\": \"data\"}]}",
              "volumes[0].mount_path", "absolute");
    parse_err("{\"volumes\": [{\"mount_path\": \"/d\"}]}", "volumes[0]", "needs a source");
    parse_err("{\"volumes\": [{\"mount_path\": \"/d\", \"pvc\": \"c\", \"secret\": \"s\"}]}",
              "volumes[0].secret", "both pvc and secret");
    parse_err("{\"volumes\": [{\"mount_path\": \"/d\", \"pvc\": \"C_1\"}]}", "volumes[0].pvc",
              "not a valid object name");
    parse_err("{\"volumes\": [{\"mount_path\": \"/d\", \"pvc\": \"c\", \"name\": \"Data\"}]}",
              "volumes[0].name", "not a valid volume name");
    parse_err("{\"volumes\": [{\"mount_path\": \"/d\", \"pvc\": \"c\", \"sub_path\": \"../x\"}]}",
              "volumes[0].sub_path", "without '..'");
    parse_err("{\"volumes\": [{\"mount_path\": \"/d\", \"pvc\": \"c\", \"read_only\": \"yes\"}]}",
              "volumes[0].read_only", "true or false");
    parse_err("{\"volumes\": [{\"mount_path\": \"/d\", \"empty_dir\": false}]}",
              "volumes[0].empty_dir", "must be true or a map");
    parse_err("{\"volumes\": [{\"mount_path\": \"/d\", \"empty_dir\": {\"medium\": \"memory\"}}]}",
              "volumes[0].empty_dir.medium", "did you mean 'Memory'?");
    parse_err("{\"volumes\": [{\"mount_path\": \"/d\", \"empty_dir\": {\"size_limit\": \"1X\"}}]}",
              "volumes[0].empty_dir.size_limit", "invalid quantity '1X'");
    parse_err("{\"volumes\": [{\"mount_path\": \"/d\", \"empty_dir\": {\"size\": \"1Gi\"}}]}",
              "volumes[0].empty_dir.size", "unknown key 'size'");
    parse_err("{\"volumes\": [{\"mount_path\": \"/d\", \"pvc\": \"c\", \"mountpath\": \"/x\"}]}",
              "volumes[0].mountpath", "did you mean 'mount_path'?");
    parse_err("{\"volumes\": [{\"name\": \"a\", \"mount_path\": \"/d\", \"pvc\": \"c\"},"
              " {\"name\": \"a\", \"mount_path\": \"/e\", \"pvc\": \"c\"}]}", "volumes[1]",
              "duplicate volume name 'a'");
    parse_err("{\"volumes\": [{\"name\": \"vol-1\", \"mount_path\": \"/d\", \"pvc\": \"c\"},"
              " {\"mount_path\": \"/e\", \"pvc\": \"c\"}]}", "volumes[1]",
              "duplicate volume name 'vol-1'");
    parse_err("{\"volumes\": [{\"mount_path\": \"/d\", \"pvc\": \"c\"},"
              " {\"mount_path\": \"/d\", \"secret\": \"s\"}]}", "volumes[1]",
              "duplicate mount_path '/d'");
    parse_err("{\"termination_grace\": \"soon\"}", "termination_grace", "a duration like 30s");
    parse_err("{\"termination_grace\": \"0s\"}", "termination_grace", "at least 1s");
    parse_err("{\"runtime_class\": \"Kata\"}", "runtime_class", "not a valid RuntimeClass");
    parse_err("{\"pod_template\": \"/nonexistent/kiln-tpl.yaml\"}", "pod_template",
              "cannot read '/nonexistent/kiln-tpl.yaml'");
    /* of two bad values, the first in the fixed key order is reported */
    parse_err("{\"runtime_class\": \"X\", \"image\": 1}", "image", "non-empty string");
}

static void test_merge(void **state)
{
    (void)state;
    json_object *d = json_tokener_parse(
        "{\"image\": \"base:1\", \"namespace\": \"ml\", \"resources\": {\"limits\":"
        " {\"memory\": \"1Gi\", \"cpu\": \"1\"}, \"requests\": {\"cpu\": \"100m\"}},"
        " \"tolerations\": [{\"key\": \"a\"}], \"node_selector\": {\"x\": \"1\"}, \"gpu\": 1}");
    json_object *t = json_tokener_parse(
        "{\"image\": \"task:2\", \"resources\": {\"limits\": {\"memory\": \"4Gi\"}},"
        " \"tolerations\": [{\"key\": \"b\"}], \"node_selector\": {\"y\": \"2\"}, \"gpu\": null}");
    json_object *m = kube_spec_merge(d, t);
    json_object *want = json_tokener_parse(
        "{\"image\": \"task:2\", \"namespace\": \"ml\", \"resources\": {\"limits\":"
        " {\"memory\": \"4Gi\", \"cpu\": \"1\"}, \"requests\": {\"cpu\": \"100m\"}},"
        " \"tolerations\": [{\"key\": \"b\"}], \"node_selector\": {\"x\": \"1\", \"y\": \"2\"},"
        " \"gpu\": null}");
    if (!json_object_equal(m, want))
        fail_msg("merge: %s", json_object_to_json_string(m));
    /* null gpu in the task unsets the default's */
    struct kube_task_spec *ks = NULL;
    char where[64];
    struct kiln_err err = {0};
    assert_int_equal(kube_spec_parse(m, NULL, &ks, where, sizeof where, &err), 0);
    assert_int_equal(ks->gpu, 0);
    assert_string_equal(ks->limits.memory, "4Gi");
    assert_string_equal(ks->limits.cpu, "1");
    assert_int_equal(ks->n_tolerations, 1);
    assert_string_equal(ks->tolerations[0].key, "b");
    kube_spec_free(ks);
    /* the inputs are untouched, the result shares nothing with them */
    assert_string_equal(json_object_get_string(json_object_object_get(d, "image")), "base:1");
    json_object_object_add(json_object_object_get(json_object_object_get(m, "resources"), "limits"),
                           "cpu", json_object_new_string("9"));
    assert_string_equal(json_object_get_string(json_object_object_get(json_object_object_get(
                            json_object_object_get(d, "resources"), "limits"), "cpu")), "1");
    json_object_put(m);
    json_object_put(want);
    /* either side missing: a copy of the other */
    m = kube_spec_merge(NULL, t);
    assert_true(json_object_equal(m, t) && m != t);
    json_object_put(m);
    m = kube_spec_merge(d, NULL);
    assert_true(json_object_equal(m, d) && m != d);
    json_object_put(m);
    assert_null(kube_spec_merge(NULL, NULL));
    json_object_put(d);
    json_object_put(t);
}

static char tmpdir[64];

static void write_file(const char *name, const char *text)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static json_object *at(json_object *o, const char *k) { return json_object_object_get(o, k); }
static const char *str_at(json_object *o, const char *k) { return json_object_get_string(at(o, k)); }

static void test_template(void **state)
{
    (void)state;
    write_file("tpl.yaml",
               "apiVersion: v1\n"
               "kind: Pod\n"
               "metadata:\n"
               "  name: ignored\n"
               "  labels: {team: ml, kiln.io/dag: theirs}\n"
               "  annotations: {note: keep}\n"
               "spec:\n"
               "  priorityClassName: high\n"
               "  restartPolicy: Never\n"
               "  containers:\n"
               "  - name: sidecar\n"
               "    image: envoy:1\n"
               "  - name: main\n"
               "    image: placeholder\n"
               "    args: [--ignored]\n"
               "    env: [{name: FROM_TPL, value: '1'}, {name: MODE, value: tpl}]\n"
               "    securityContext: {runAsNonRoot: true}\n"
               "    resources: {limits: {memory: 8Gi}, requests: {memory: 1Gi}}\n"
               "    volumeMounts: [{name: certs, mountPath: /certs}]\n"
               "  volumes: [{name: certs, secret: {secretName: certs}}]\n"
               "  tolerations: [{key: spot, operator: Exists}]\n");
    char spec[512];
    snprintf(spec, sizeof spec,
             "{\"image\": \"t:1\", \"pod_template\": \"tpl.yaml\", \"resources\": {\"limits\":"
             " {\"cpu\": \"2\"}}, \"tolerations\": [{\"key\": \"gpu\", \"operator\": \"Exists\"}],"
             " \"volumes\": [{\"name\": \"data\", \"pvc\": \"c\", \"mount_path\": \"/data\"}]}");
    struct kube_task_spec *ks = parse_ok(spec, tmpdir);
    assert_non_null(ks->pod_template);
    assert_null(at(ks->pod_template, "kind"));
    char *argv[] = {"run", NULL};
    struct kube_kv env[] = {{"MODE", "kiln"}};
    struct kube_task_spec run = *ks;
    run.command = argv;
    run.env = env;
    run.n_env = 1;
    struct kube_pod_ids ids = {"i", "dag1", "r", "t", 1, 1};
    json_object *pod = NULL;
    struct kiln_err err = {0};
    assert_int_equal(kube_pod_build(&run, &ids, &pod, &err), 0);
    json_object *meta = at(pod, "metadata"), *sp = at(pod, "spec");
    assert_string_equal(str_at(pod, "kind"), "Pod");
    assert_string_not_equal(str_at(meta, "name"), "ignored");
    assert_string_equal(str_at(at(meta, "labels"), "team"), "ml");
    assert_string_equal(str_at(at(meta, "labels"), "kiln.io/dag"), "dag1");     /* kiln's win */
    assert_string_equal(str_at(at(meta, "labels"), "app.kubernetes.io/managed-by"), "kiln");
    assert_string_equal(str_at(at(meta, "annotations"), "note"), "keep");
    assert_string_equal(str_at(at(meta, "annotations"), "kiln.io/dag-id"), "dag1");
    assert_string_equal(str_at(sp, "priorityClassName"), "high");
    json_object *ctrs = at(sp, "containers");
    assert_int_equal(json_object_array_length(ctrs), 2);
    json_object *m = json_object_array_get_idx(ctrs, 0), *side = json_object_array_get_idx(ctrs, 1);
    assert_string_equal(str_at(m, "name"), "main");
    assert_string_equal(str_at(m, "image"), "t:1");
    assert_null(at(m, "args"));
    assert_string_equal(json_object_get_string(json_object_array_get_idx(at(m, "command"), 0)), "run");
    assert_true(json_object_get_boolean(at(at(m, "securityContext"), "runAsNonRoot")));
    /* env: the template's, with kiln's MODE replacing its MODE */
    json_object *e = at(m, "env");
    assert_int_equal(json_object_array_length(e), 2);
    assert_string_equal(str_at(json_object_array_get_idx(e, 0), "name"), "FROM_TPL");
    assert_string_equal(str_at(json_object_array_get_idx(e, 1), "value"), "kiln");
    /* resources merge key by key */
    assert_string_equal(str_at(at(at(m, "resources"), "limits"), "memory"), "8Gi");
    assert_string_equal(str_at(at(at(m, "resources"), "limits"), "cpu"), "2");
    assert_string_equal(str_at(at(at(m, "resources"), "requests"), "memory"), "1Gi");
    assert_int_equal(json_object_array_length(at(m, "volumeMounts")), 2);
    assert_int_equal(json_object_array_length(at(sp, "volumes")), 2);
    assert_string_equal(str_at(json_object_array_get_idx(at(sp, "volumes"), 0), "name"), "certs");
    assert_string_equal(str_at(json_object_array_get_idx(at(sp, "volumes"), 1), "name"), "data");
    assert_int_equal(json_object_array_length(at(sp, "tolerations")), 2);
    assert_string_equal(str_at(side, "name"), "sidecar");
    assert_string_equal(str_at(side, "image"), "envoy:1");
    assert_null(at(side, "command"));
    /* building twice gives the same pod: the template is not changed */
    json_object *again = NULL;
    assert_int_equal(kube_pod_build(&run, &ids, &again, &err), 0);
    assert_true(json_object_equal(pod, again));
    json_object_put(again);
    json_object_put(pod);
    kube_spec_free(ks);

    /* JSON, {metadata, spec} only, first container taken when none is "main" */
    write_file("tpl.json", "{\"spec\": {\"containers\": [{\"name\": \"worker\", \"args\": [\"x\"]}],"
                           " \"nodeName\": \"n1\"}}\n");
    ks = parse_ok("{\"image\": \"t:1\", \"pod_template\": \"tpl.json\"}", tmpdir);
    run = *ks;
    run.command = argv;
    assert_int_equal(kube_pod_build(&run, &ids, &pod, &err), 0);
    ctrs = at(at(pod, "spec"), "containers");
    assert_int_equal(json_object_array_length(ctrs), 1);
    assert_string_equal(str_at(json_object_array_get_idx(ctrs, 0), "name"), "main");
    assert_string_equal(str_at(at(pod, "spec"), "nodeName"), "n1");
    json_object_put(pod);
    kube_spec_free(ks);

    /* refusals, all at where "pod_template" */
    struct {
        const char *file, *text, *msg;
    } bad[] = {
        {"b1.yaml", "kind: Deployment\n", "kind must be Pod"},
        {"b2.yaml", "spec: {restartPolicy: Always}\n", "restartPolicy must be Never"},
        {"b3.yaml", "spec: {containers: [{name: main}, {name: side}]}\n",
         "containers[1] (side) needs an image"},
        {"b4.yaml", "metadata: {namespace: x}\n", "kubernetes.namespace"},
        {"b5.yaml", "metadata: {labels: {a: -bad-}}\n", "not a valid label value"},
        {"b6.yaml", "status: {}\n", "unknown key 'status'"},
        {"b7.yaml", "spec: [\n", "YAML syntax error"},
        {"b8.json", "{\"spec\": }", "not valid JSON"},
        {"b9.yaml", "- a\n", "must hold a Pod"},
        {"b10.yaml", "a: &x [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\nb: &y [*x, *x, *x, *x, *x, *x, *x, *x, *x, *x]\n"
                     "c: &z [*y, *y, *y, *y, *y, *y, *y, *y, *y, *y]\nd: &w [*z, *z, *z, *z, *z, *z, *z, *z, *z, *z]\n"
                     "e: [*w, *w, *w, *w, *w, *w, *w, *w, *w, *w, *w]\n", "too many"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        write_file(bad[i].file, bad[i].text);
        char js[128];
        snprintf(js, sizeof js, "{\"pod_template\": \"%s\"}", bad[i].file);
        json_object *o = json_tokener_parse(js);
        char where[64];
        struct kiln_err e2 = {0};
        assert_int_equal(kube_spec_parse(o, tmpdir, &ks, where, sizeof where, &e2), KILN_EINVALID);
        json_object_put(o);
        assert_string_equal(where, "pod_template");
        if (!strstr(e2.msg, bad[i].msg))
            fail_msg("%s: %s", bad[i].file, e2.msg);
    }
}

static void test_builder_refuses_bad_affinity(void **state)
{
    (void)state;
    char *argv[] = {"x", NULL};
    json_object *aff = json_tokener_parse("{\"nodeAffinity\": {}, \"zoneAffinity\": {}}");
    struct kube_task_spec ks = {.image = "i", .command = argv, .affinity = aff};
    struct kube_pod_ids ids = {"i", "d", "r", "t", 1, 1};
    json_object *pod = NULL;
    struct kiln_err err = {0};
    assert_int_equal(kube_pod_build(&ks, &ids, &pod, &err), KILN_EINVALID);
    assert_non_null(strstr(err.msg, "zoneAffinity"));
    assert_null(pod);
    json_object_put(aff);
    ks.affinity = NULL;
    ks.runtime_class = "Not_Valid";
    struct kiln_err err2 = {0};
    assert_int_equal(kube_pod_build(&ks, &ids, &pod, &err2), KILN_EINVALID);
    assert_non_null(strstr(err2.msg, "runtime class"));
}

static void test_yaml_to_json(void **state)
{
    (void)state;
    const char *text = "a: 500m\nb: 2\nc: 0.5\nd: '3'\ne: yes\nf: ~\ng: [1, x]\nh: 1e3\n"
                       "i: \"true\"\nj: -7\nk: 0x10\n";
    yaml_parser_t p;
    yaml_document_t doc;
    assert_true(yaml_parser_initialize(&p));
    yaml_parser_set_input_string(&p, (const unsigned char *)text, strlen(text));
    assert_true(yaml_parser_load(&p, &doc));
    struct kiln_err err = {0};
    json_object *o = kube_yaml_to_json(&doc, yaml_document_get_root_node(&doc), 100, &err);
    assert_non_null(o);
    assert_true(json_object_is_type(at(o, "a"), json_type_string));
    assert_true(json_object_is_type(at(o, "b"), json_type_int));
    assert_true(json_object_is_type(at(o, "c"), json_type_double));
    assert_string_equal(str_at(o, "c"), "0.5");
    assert_true(json_object_is_type(at(o, "d"), json_type_string));
    assert_true(json_object_is_type(at(o, "e"), json_type_boolean));
    assert_true(json_object_object_get_ex(o, "f", NULL));
    assert_null(at(o, "f"));
    assert_true(json_object_is_type(at(o, "g"), json_type_array));
    assert_string_equal(str_at(o, "h"), "1e3");
    assert_true(json_object_is_type(at(o, "i"), json_type_string));
    assert_int_equal(json_object_get_int(at(o, "j")), -7);
    assert_true(json_object_is_type(at(o, "k"), json_type_string));
    json_object_put(o);
    /* the node budget */
    o = kube_yaml_to_json(&doc, yaml_document_get_root_node(&doc), 5, &err);
    assert_null(o);
    assert_non_null(strstr(err.msg, "too many"));
    yaml_document_delete(&doc);
    yaml_parser_delete(&p);
}

static void test_check_task(void **state)
{
    (void)state;
    struct dag *d = dag_new("d", "/tmp/d.yaml");
    struct dag_task *t = dag_add_task(d, "train", (struct dag_pos){1, 1});
    char *argv[] = {"python", "t.py", NULL};
    t->argv = malloc(sizeof argv);
    t->argv[0] = strdup("python");
    t->argv[1] = strdup("t.py");
    t->argv[2] = NULL;
    t->argc = 2;
    struct kiln_err err = {0};
    /* a local task: nothing to check */
    assert_int_equal(kube_spec_check_task(t, d->id, &err), 0);
    t->executor = strdup("kubernetes");
    assert_int_equal(kube_spec_check_task(t, d->id, &err), KILN_EINVALID);
    assert_non_null(strstr(err.msg, "needs kubernetes.image"));
    t->kube = parse_ok("{\"image\": \"t:1\", \"gpu\": 4}", NULL);
    struct kiln_err e2 = {0};
    assert_int_equal(kube_spec_check_task(t, d->id, &e2), 0);
    assert_string_equal(t->pool, KUBE_GPU_POOL);
    assert_int_equal(t->pool_slots, 4);
    /* a pool the task chose stays */
    free(t->pool);
    t->pool = strdup("big");
    t->pool_slots = 1;
    assert_int_equal(kube_spec_check_task(t, d->id, &e2), 0);
    assert_string_equal(t->pool, "big");
    assert_int_equal(t->pool_slots, 1);
    /* what only the builder sees: env names the pod cannot carry */
    t->env = calloc(1, sizeof *t->env);
    t->env[0].key = strdup("BAD NAME");
    t->env[0].value = strdup("v");
    t->n_env = 1;
    struct kiln_err e3 = {0};
    assert_int_equal(kube_spec_check_task(t, d->id, &e3), KILN_EINVALID);
    assert_non_null(strstr(e3.msg, "env name 'BAD NAME'"));
    (void)argv;
    dag_free(d);
}

static int setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/kiln-kspec.XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_key),
        cmocka_unit_test(test_empty_and_null),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_merge),
        cmocka_unit_test(test_template),
        cmocka_unit_test(test_builder_refuses_bad_affinity),
        cmocka_unit_test(test_yaml_to_json),
        cmocka_unit_test(test_check_task),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
