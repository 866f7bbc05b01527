/* settings: kiln's configuration.  Every setting has one name used three
 * ways, with flags over environment over the file:
 *   --parallelism 2  =  KILN_PARALLELISM=2  =  "parallelism: 2" in kiln.yaml
 * Names: home, dags, bind, port, executor, parallelism, kill_grace, log_level,
 * infra_retries, kube_* (see struct kiln_settings), and the map "pools"
 * (file only, or --pool NAME=SLOTS). */
#ifndef KILN_SETTINGS_H
#define KILN_SETTINGS_H

#include <stdint.h>

#include "err.h"
#include "scheduler.h"

struct kiln_settings {
    char *home;                 /* state folder: kiln.db, logs, token */
    char *dags;                 /* DAG folder */
    char *bind;
    int port;
    char *executor;             /* "local" (default) or "noop" (benchmarks) */
    int parallelism;
    int64_t kill_grace_ms;
    char *log_level;
    struct sched_pool *pools;   /* names owned by this struct */
    size_t n_pools;
    int infra_retries;          /* infrastructure failures retried per task (default 3) */
    int64_t infra_retry_delay_ms;      /* wait before such a retry (10s) */
    /* Kubernetes executor (docs/kubernetes.md).  It is enabled when
     * kube_config is set, or KUBECONFIG is, or kiln runs in a pod. */
    char *kube_config;          /* kubeconfig path; "in-cluster": the service account */
    char *kube_context;         /* NULL: current-context */
    char *kube_namespace;       /* NULL: the context's (or the pod's) namespace */
    char *kube_instance;        /* NULL: HOME/instance, made on first start */
    int64_t kube_pending_timeout_ms;   /* Unschedulable for longer fails (5m) */
    int64_t kube_image_pull_grace_ms;  /* image pull errors for longer fail (60s) */
    int64_t kube_keep_failed_ms;       /* failed pods kept this long (1h) */
    int kube_gpus;              /* size of pool "gpu"; -1: from the nodes (auto) */
    char *kube_gpu_node_selector;      /* "key=value" for GPU steps, or NULL */
    char *kube_gpu_runtime_class;      /* runtimeClassName for GPU steps, or NULL */
    double kube_create_qps;     /* pod creations per second (10) */
};

/* Defaults, then the file (config_path, or ./kiln.yaml when it exists), then
 * KILN_* environment variables. */
int settings_load(struct kiln_settings *s, const char *config_path, struct kiln_err *err);
/* Applies one "name=value" or (name, value) setting, as a flag would. */
int settings_set(struct kiln_settings *s, const char *name, const char *value,
                 struct kiln_err *err);
/* Adds or replaces a pool from "NAME=SLOTS". */
int settings_set_pool(struct kiln_settings *s, const char *spec, struct kiln_err *err);
void settings_free(struct kiln_settings *s);

#endif
