/* kube_pod: the Pod object for one try of a task run by the Kubernetes
 * executor.  Pure functions, no I/O: they turn a task's kubernetes settings
 * (struct kube_task_spec) and the ids of a try (struct kube_pod_ids) into
 * the JSON body of POST /api/v1/namespaces/NS/pods.
 *
 * Naming: pod names are deterministic (the same try always gets the same
 * name, so a create that answers 409 AlreadyExists means "already started,
 * adopt it"), DNS-1123 labels of at most 63 characters:
 *     <dag>-<task>-<try>-<hash>
 * where dag and task are lowered and reduced to [a-z0-9-], shortened as
 * needed, and hash is 10 hex digits of SHA-256 over the exact ids (instance,
 * dag, run, task, try).  Labels kiln.io/{dag,run,task,try,instance} carry
 * sanitized values (kube_label_value); annotations kiln.io/{dag-id,run-id,
 * task-id,try-number,try-id,instance} carry the exact ids, which are what
 * adoption matches on.
 *
 * The DAG loaders fill struct kube_task_spec from a task's `kubernetes:`
 * block (kube_spec.h); the executor adds command, env and timeout per try. */
#ifndef KILN_KUBE_POD_H
#define KILN_KUBE_POD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "err.h"

#define KUBE_NAME_MAX 63           /* DNS-1123 label */
#define KUBE_LABEL_VALUE_MAX 63
#define KUBE_DEFAULT_GPU_RESOURCE "nvidia.com/gpu"
#define KUBE_CONTAINER_NAME "main"

struct kube_kv {
    const char *key;
    const char *value;
};

struct kube_toleration {
    const char *key;        /* may be NULL with operator Exists */
    const char *op;         /* "Exists" | "Equal"; NULL: Equal */
    const char *value;      /* NULL with Exists */
    const char *effect;     /* NULL: all effects; NoSchedule | PreferNoSchedule | NoExecute */
    int64_t toleration_seconds; /* 0: unset (only meaningful with NoExecute) */
};

enum kube_volume_kind {
    KUBE_VOL_EMPTY_DIR,
    KUBE_VOL_PVC,
    KUBE_VOL_CONFIG_MAP,
    KUBE_VOL_SECRET,
};

struct kube_volume {
    const char *name;           /* DNS-1123 label; NULL: derived ("vol-<i>") */
    enum kube_volume_kind kind;
    const char *source;         /* claim / config map / secret name; unused for emptyDir */
    const char *mount_path;     /* absolute */
    const char *sub_path;       /* NULL: whole volume */
    bool read_only;
    const char *medium;         /* emptyDir: NULL or "Memory" */
    const char *size_limit;     /* emptyDir: quantity or NULL */
};

struct kube_resources {
    const char *cpu, *memory, *ephemeral_storage;   /* quantities or NULL */
};

struct kube_task_spec {
    const char *namespace_;     /* NULL: "default" */
    const char *image;          /* required */
    const char *image_pull_policy;      /* NULL | Always | IfNotPresent | Never */
    char *const *command;       /* NULL-terminated argv, required, >= 1 element */
    const struct kube_kv *env;  /* names must be valid env var names */
    size_t n_env;
    const char *working_dir;    /* NULL: the image's */
    struct kube_resources requests, limits;
    int gpu;                    /* > 0: limits[gpu_resource] = gpu */
    const char *gpu_resource;   /* NULL: nvidia.com/gpu */
    bool gpu_toleration;        /* with gpu > 0: tolerate <gpu_resource>:NoSchedule taints */
    const struct kube_kv *node_selector;
    size_t n_node_selector;
    const struct kube_toleration *tolerations;
    size_t n_tolerations;
    const char *service_account;        /* NULL: the namespace's default */
    const char *const *image_pull_secrets;  /* NULL-terminated, or NULL */
    const struct kube_volume *volumes;
    size_t n_volumes;
    int64_t timeout_s;          /* > 0: spec.activeDeadlineSeconds */
    int64_t termination_grace_s;        /* > 0: terminationGracePeriodSeconds */
    json_object *affinity;      /* NULL, or spec.affinity verbatim: an object with only
                                 * nodeAffinity, podAffinity, podAntiAffinity */
    const char *runtime_class;  /* NULL, or spec.runtimeClassName (DNS subdomain) */
    json_object *pod_template;  /* NULL, or {metadata, spec} the generated pod is laid over
                                 * (see kube_pod_build) */
};

struct kube_pod_ids {
    const char *instance;       /* stable id of this kiln installation */
    const char *dag_id;
    const char *run_id;
    const char *task_id;
    int try_number;
    int64_t try_id;
};

/* The pod name of a try (see the top of this file); out gets <= 63 chars. */
void kube_pod_name(const struct kube_pod_ids *ids, char out[KUBE_NAME_MAX + 1]);

/* A label value for any string, Airflow's make_safe_label_value: strip
 * leading/trailing characters that are not alphanumeric, drop those outside
 * [A-Za-z0-9_.-]; if that changed anything or left more than 63 characters,
 * keep at most 53 and append "-" and 9 hex digits of SHA-256 of the input,
 * so different inputs do not collapse onto one value.  Empty stays empty. */
void kube_label_value(const char *in, char out[KUBE_LABEL_VALUE_MAX + 1]);

/* Syntax checks the apiserver applies (so kiln rejects a task before it
 * creates anything).  Each returns true when valid. */
bool kube_valid_dns_label(const char *s);       /* <= 63, [a-z0-9-], alnum ends */
bool kube_valid_dns_subdomain(const char *s);   /* <= 253, labels joined by '.' */
bool kube_valid_label_value(const char *s);
bool kube_valid_label_key(const char *s);       /* [prefix/]name */
bool kube_valid_quantity(const char *s);        /* e.g. 500m, 1.5Gi, 1e3 */
bool kube_valid_env_name(const char *s);        /* [-._a-zA-Z][-._a-zA-Z0-9]* */

/* Builds the Pod; *out is a new json_object (json_object_put it).  Returns 0,
 * or KILN_EINVALID with a message naming the bad field.
 *
 * With a pod_template the generated pod is deep-merged OVER a copy of it:
 * maps merge key by key with kiln's values winning (so template labels and
 * annotations stay unless a kiln.io key collides); the template container
 * named "main" (else its first one) is merged with kiln's container, which
 * comes first in the result and is named "main"; its `args` are dropped
 * (kiln's command is the whole argv); env (by name), volumeMounts (by
 * mountPath), volumes and imagePullSecrets (by name) are unions with kiln's
 * entries winning; tolerations are the template's followed by kiln's; other
 * lists are replaced.  Other template containers (sidecars) are kept as is. */
int kube_pod_build(const struct kube_task_spec *ks, const struct kube_pod_ids *ids,
                   json_object **out, struct kiln_err *err);

#endif
