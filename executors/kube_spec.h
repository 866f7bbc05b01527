/* kube_spec: a task's `kubernetes:` block -> struct kube_task_spec.
 *
 * Both DAG loaders turn the block (a YAML node, a Lua table) into json-c
 * first, so there is one parser and one set of messages.  Everything the
 * apiserver would refuse is checked here with the kube_valid_* functions, so
 * a bad value is reported when the DAG loads, with the path of the value
 * inside the block, never when the pod is created.
 *
 * Keys (snake_case; a null value counts as absent, which lets a task unset
 * something its DAG's default block set):
 *   namespace, image, image_pull_policy, working_dir,
 *   resources: {requests: {cpu, memory, ephemeral_storage}, limits: {...}},
 *   gpu, node_selector, tolerations, affinity, service_account,
 *   image_pull_secrets, volumes, pod_template, termination_grace, runtime_class
 * See docs/dag-format.md for what each takes.
 *
 * The parsed spec leaves command, env and timeout_s empty: they belong to one
 * try and the executor fills them in a copy of the struct. */
#ifndef KILN_KUBE_SPEC_H
#define KILN_KUBE_SPEC_H

#include <stddef.h>

#include <json-c/json.h>

#include "err.h"
#include "kube_pod.h"

struct dag_task;

#define KUBE_GPU_POOL "gpu"

/* libyaml's types, without making every includer include yaml.h. */
struct yaml_document_s;
struct yaml_node_s;

/* Parses a task's kubernetes block.  dag_dir resolves a relative
 * pod_template path (NULL: the current directory).  On error returns
 * KILN_EINVALID, err->msg says what was expected, and `where` gets the JSON
 * path of the offending value inside the block in dot/bracket form
 * ("resources.limits.memory", "tolerations[1].effect", "" for the block
 * itself), so the YAML loader can point at that node's line:col. */
int kube_spec_parse(json_object *block, const char *dag_dir, struct kube_task_spec **out,
                    char *where, size_t where_n, struct kiln_err *err);

/* NULL ok; frees everything kube_spec_parse allocated. */
void kube_spec_free(struct kube_task_spec *ks);

/* Deep merge for the DAG's `default:` block: maps merge key by key (task
 * wins), everything else is replaced.  Either may be NULL.  Returns a new
 * object (NULL when both are NULL). */
json_object *kube_spec_merge(json_object *defaults, json_object *task);

/* What both loaders check once a task is complete (defaults applied,
 * t->kube parsed or NULL): a task with executor kubernetes needs an image;
 * its pod is built once with the task's argv, env and timeout and dummy ids,
 * so that whatever kube_pod_build refuses is refused now; and a task asking
 * gpu N > 0 that is in the default pool moves to pool "gpu" with pool_slots N
 * (the daemon sizes that pool).  Returns 0 or KILN_EINVALID, err->msg without
 * a position ("executor kubernetes needs kubernetes.image ..."). */
int kube_spec_check_task(struct dag_task *t, const char *dag_id, struct kiln_err *err);

/* A YAML node as JSON: maps -> objects (keys must be scalars), sequences ->
 * arrays; a quoted scalar is a string; a plain one is null (~, null, empty),
 * a boolean (true/false/yes/no/on/off), an integer, a number (kept with its
 * text, so 0.5 stays "0.5"), else a string.  Aliases are expanded, at most
 * `max_nodes` nodes in all (anchors can make a small file expand
 * exponentially).  Returns NULL and fills err when the node cannot be
 * converted (complex key, too many nodes). */
json_object *kube_yaml_to_json(struct yaml_document_s *doc, struct yaml_node_s *node,
                               size_t max_nodes, struct kiln_err *err);

#endif
