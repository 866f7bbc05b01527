/* kube-podgen: writes the Pods that kube_pod_build makes for a few fixed
 * task settings, one JSON file each, into DIR.  Used by
 * tests/integration/kube_schema.sh (schema check, then created in kube-sim).
 *   kube-podgen DIR [COMMAND...]   COMMAND replaces the default argv */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kube_pod.h"
#include "kube_spec.h"

static int emit(const char *dir, const char *file, const struct kube_task_spec *ks,
                const struct kube_pod_ids *ids)
{
    json_object *pod;
    struct kiln_err err = {0};
    if (kube_pod_build(ks, ids, &pod, &err) < 0) {
        fprintf(stderr, "kube-podgen: %s: %s\n", file, err.msg);
        return 1;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/%s.json", dir, file);
    int rc = json_object_to_file_ext(path, pod, JSON_C_TO_STRING_PRETTY) ? 1 : 0;
    json_object_put(pod);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: kube-podgen DIR [COMMAND...]\n");
        return 2;
    }
    char *defcmd[] = {"sh", "-c", "echo hello from $KILN_TASK; echo to-stderr >&2", NULL};
    char *const *cmd = argc > 2 ? argv + 2 : defcmd;
    struct kube_pod_ids ids = {"it-instance", "etl_daily", "manual__2026-01-02T03:04:05+00:00",
                               "Extract.Orders", 1, 42};
    struct kube_kv env[] = {{"KILN_TASK", "extract"}, {"MODE", "full"}};
    int rc = 0;

    /* minimal */
    struct kube_task_spec min = {.image = "busybox:1.36", .command = cmd};
    rc |= emit(argv[1], "minimal", &min, &ids);

    /* every field */
    struct kube_kv sel[] = {{"nvidia.com/gpu.present", "true"}, {"pool", "train"}};
    struct kube_toleration tol[] = {{"dedicated", "Equal", "ml", "NoSchedule", 0},
                                    {"node.kubernetes.io/unreachable", "Exists", NULL, "NoExecute", 300}};
    const char *secrets[] = {"regcred", NULL};
    struct kube_volume vols[] = {
        {"data", KUBE_VOL_PVC, "training-data", "/data", NULL, true, NULL, NULL},
        {"cfg", KUBE_VOL_CONFIG_MAP, "etl-config", "/etc/etl", NULL, false, NULL, NULL},
        {"creds", KUBE_VOL_SECRET, "etl-creds", "/var/run/creds", "token", false, NULL, NULL},
        {"shm", KUBE_VOL_EMPTY_DIR, NULL, "/dev/shm", NULL, false, "Memory", "1Gi"},
        {NULL, KUBE_VOL_EMPTY_DIR, NULL, "/scratch", NULL, false, NULL, NULL},
    };
    struct kube_task_spec full = {
        .namespace_ = "default", .image = "registry.example.com/etl:1.2", .image_pull_policy = "IfNotPresent",
        .command = cmd, .env = env, .n_env = 2, .working_dir = "/tmp",
        .requests = {"500m", "256Mi", "1Gi"}, .limits = {"2", "1Gi", "2Gi"},
        .gpu = 2, .gpu_toleration = true, .node_selector = sel, .n_node_selector = 2,
        .tolerations = tol, .n_tolerations = 2, .service_account = "kiln-task",
        .image_pull_secrets = secrets, .volumes = vols, .n_volumes = 5,
        .timeout_s = 600, .termination_grace_s = 10, .runtime_class = "nvidia",
    };
    full.affinity = json_tokener_parse(
        "{\"nodeAffinity\": {\"requiredDuringSchedulingIgnoredDuringExecution\": {"
        "  \"nodeSelectorTerms\": [{\"matchExpressions\": [{\"key\": \"topology.kubernetes.io/zone\","
        "  \"operator\": \"In\", \"values\": [\"eu-1a\", \"eu-1b\"]}]}]},"
        " \"preferredDuringSchedulingIgnoredDuringExecution\": [{\"weight\": 10, \"preference\": {"
        "  \"matchExpressions\": [{\"key\": \"gpu-model\", \"operator\": \"In\", \"values\": [\"h100\"]}]}}]},"
        " \"podAntiAffinity\": {\"preferredDuringSchedulingIgnoredDuringExecution\": [{\"weight\": 50,"
        "  \"podAffinityTerm\": {\"labelSelector\": {\"matchLabels\": {\"kiln.io/dag\": \"etl_daily\"}},"
        "  \"topologyKey\": \"kubernetes.io/hostname\"}}]}}");
    struct kube_pod_ids ids2 = ids;
    ids2.task_id = "train_model_with_a_very_long_name_that_goes_on_and_on_and_on";
    ids2.try_number = 3;
    rc |= emit(argv[1], "full", &full, &ids2);
    json_object_put(full.affinity);

    /* a task block with a pod template (a sidecar, a security context,
     * labels, a volume), parsed the way the loaders do */
    char tpl[4096];
    snprintf(tpl, sizeof tpl, "%s/template.yaml", argv[1]);
    FILE *f = fopen(tpl, "w");
    if (!f) {
        perror(tpl);
        return 1;
    }
    fputs("apiVersion: v1\n"
          "kind: Pod\n"
          "metadata:\n"
          "  labels: {team: ml, kiln.io/dag: overridden}\n"
          "  annotations: {example.com/owner: data-team}\n"
          "spec:\n"
          "  priorityClassName: batch-low\n"
          "  securityContext: {runAsNonRoot: true, runAsUser: 1000, fsGroup: 2000}\n"
          "  containers:\n"
          "  - name: log-shipper\n"
          "    image: fluent/fluent-bit:2.2\n"
          "    volumeMounts: [{name: certs, mountPath: /certs, readOnly: true}]\n"
          "  - name: main\n"
          "    image: placeholder\n"
          "    args: [--dropped]\n"
          "    env: [{name: FROM_TEMPLATE, value: \"1\"}]\n"
          "    securityContext: {allowPrivilegeEscalation: false}\n"
          "    resources: {limits: {memory: 2Gi}}\n"
          "    volumeMounts: [{name: certs, mountPath: /certs, readOnly: true}]\n"
          "  volumes:\n"
          "  - name: certs\n"
          "    secret: {secretName: ca-certs}\n", f);
    fclose(f);
    json_object *block = json_tokener_parse(
        "{\"image\": \"busybox:1.36\", \"pod_template\": \"template.yaml\","
        " \"runtime_class\": \"gvisor\", \"resources\": {\"limits\": {\"cpu\": 1}},"
        " \"volumes\": [{\"name\": \"data\", \"pvc\": \"training-data\", \"mount_path\": \"/data\"}],"
        " \"affinity\": {\"nodeAffinity\": {\"requiredDuringSchedulingIgnoredDuringExecution\": {"
        "  \"nodeSelectorTerms\": [{\"matchExpressions\": [{\"key\": \"pool\", \"operator\": \"Exists\"}]}]}}}}");
    struct kube_task_spec *tks = NULL;
    char where[256];
    struct kiln_err err = {0};
    if (kube_spec_parse(block, argv[1], &tks, where, sizeof where, &err) < 0) {
        fprintf(stderr, "kube-podgen: templated: %s: %s\n", where, err.msg);
        json_object_put(block);
        return 1;
    }
    json_object_put(block);
    struct kube_task_spec templated = *tks;
    templated.command = cmd;
    templated.env = env;
    templated.n_env = 1;
    struct kube_pod_ids ids4 = ids;
    ids4.try_number = 4;
    rc |= emit(argv[1], "templated", &templated, &ids4);
    kube_spec_free(tks);

    /* runnable in kube-sim: env, working dir, a deadline, no volumes */
    struct kube_task_spec run = {.image = "busybox:1.36", .command = cmd, .env = env, .n_env = 1,
                                 .working_dir = "/tmp", .requests = {"100m", "64Mi", NULL},
                                 .limits = {"1", "128Mi", NULL}, .timeout_s = 60};
    struct kube_pod_ids ids3 = ids;
    ids3.dag_id = "ÜberDAG";
    ids3.try_number = 2;
    rc |= emit(argv[1], "runnable", &run, &ids3);
    return rc;
}
