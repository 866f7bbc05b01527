/* k8s_apply: the Deployment + Service that serve one model version with
 * kiln-serve, and applying them to a cluster (docs/deploy.md).
 *
 * kiln-deploy is a short-lived program, so requests are plain blocking
 * libcurl (easy API).  The cluster comes from executors/kube_config:
 * --kubeconfig, else $KUBECONFIG (its first file), else the in-cluster
 * service account (KUBERNETES_SERVICE_HOST), else ~/.kube/config.
 * Apply = GET; 404 -> POST; 200 -> PUT with the resourceVersion read
 * (a 409 Conflict or AlreadyExists from a concurrent writer starts over,
 * three times at most).  deploy/model-serve.yaml is the same pair of objects
 * as a template for kubectl; tests/integration/deploy_manifests.sh checks
 * that the two agree. */
#ifndef KILN_K8S_APPLY_H
#define KILN_K8S_APPLY_H

#include <stddef.h>
#include <json-c/json.h>

#include "err.h"

#define KAPPLY_IMAGE "kiln-tasks:0.1.0"
#define KAPPLY_CLAIM "kiln-models"
#define KAPPLY_MOUNT "/models"
#define KAPPLY_PORT 8500

struct kapply_opts {
    const char *name;         /* the model's registry name */
    long version;
    const char *namespace;    /* NULL: the kubeconfig context's or the service account's */
    const char *image;        /* holds kiln-serve (default KAPPLY_IMAGE) */
    const char *claim;        /* PersistentVolumeClaim holding the registry (KAPPLY_CLAIM) */
    const char *kubeconfig;   /* NULL: see above */
    const char *context;      /* kubeconfig context, NULL: current-context */
    int replicas;             /* default 1 */
};

void kapply_opts_default(struct kapply_opts *o);
/* "kiln-serve-" + the model name lowered, '_' and '.' turned into '-': a
 * DNS-1035 label (Service names) of at most 63 characters, else an error. */
int kapply_object_name(const char *model, char *out, size_t n, struct kiln_err *err);
/* The two objects for o->name at o->version in namespace ns (new references). */
int kapply_render(const struct kapply_opts *o, const char *ns, json_object **deployment,
                  json_object **service, struct kiln_err *err);
/* Renders and applies both; *summary (new reference) names the namespace, the
 * objects and what was done ("created" / "updated").  Errors quote the API's
 * Status message. */
int kapply_apply(const struct kapply_opts *o, json_object **summary, struct kiln_err *err);

#endif
