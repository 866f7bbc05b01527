/* engine_kube: the Kubernetes executor's place in the daemon: its API
 * client from the settings (kubeconfig, KUBECONFIG, or in-cluster), the
 * instance id, and the "gpu" pool that GPU steps queue in. */
#ifndef KILN_ENGINE_KUBE_H
#define KILN_ENGINE_KUBE_H

#include <uv.h>

#include "err.h"
#include "scheduler.h"
#include "settings.h"

struct engine_kube;

/* The pools the scheduler starts with: the configured ones, plus "gpu" if
 * none is configured (sized by kube_gpus, or large until the nodes are
 * read).  *out is owned by the caller (free it; names are borrowed). */
void engine_kube_pools(const struct kiln_settings *cfg, struct sched_pool **out, size_t *n);

/* Creates the executor and registers it as "kubernetes" when Kubernetes is
 * configured; *out stays NULL (and 0 is returned) when it is not. */
int engine_kube_open(struct engine_kube **out, uv_loop_t *loop, const struct kiln_settings *cfg,
                     struct sched *s, struct kiln_err *err);
/* Stops it; running pods keep running (the next daemon adopts them). */
void engine_kube_close(struct engine_kube *k);

#endif
