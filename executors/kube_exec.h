/* kube_exec: the Kubernetes executor.  Every try is one pod.
 *
 * One watch per namespace (label selector kiln.io/instance=<instance>),
 * resumed from the last resourceVersion with bookmarks, relisted on a 410;
 * no per-pod polling.  A pod's status becomes a try's result through
 * kube_pod_observe(), with a reason a person understands.  The container's
 * log is followed into the try's log file (timestamps kept aside so a
 * reconnect resumes with sinceTime and writes no line twice); a finished
 * try is reported only once its log is complete, its result is appended to
 * HOME/kube.journal, and only then is the pod deleted (failed pods are kept
 * for keep_failed_ms).  After a restart, adopt() finds a try's pod by its
 * deterministic name; a try whose pod is gone is collected from the journal,
 * or was never created (then it is started, once).
 *
 * Task outputs travel in the container's termination message: the pod gets
 * KILN_OUTPUTS=/dev/termination-log and the executor writes
 * status.containerStatuses[0].state.terminated.message into the try's
 * outputs file before reporting. */
#ifndef KILN_KUBE_EXEC_H
#define KILN_KUBE_EXEC_H

#include <stdbool.h>
#include <stdint.h>

#include <json-c/json.h>

#include "executor.h"
#include "kube_client.h"

struct kube_exec_opts {
    const char *home;             /* state folder: the journal lives here */
    const char *instance;         /* this installation's id (a label value) */
    const char *namespace_;       /* for tasks that name none; NULL: the client's */
    int64_t pending_timeout_ms;   /* Unschedulable longer than this fails (default 5 min) */
    int64_t image_pull_grace_ms;  /* image pull errors longer than this fail (default 60 s) */
    int64_t keep_failed_ms;       /* a failed pod is deleted this long after (default 1 h;
                                   * < 0: kept) */
    int64_t log_wait_ms;          /* after a pod ends, wait at most this for its log (10 s) */
    /* GPU steps (gpu > 0): */
    bool gpu_toleration;          /* tolerate nvidia.com/gpu:NoSchedule taints */
    const char *gpu_runtime_class;        /* runtimeClassName when the task sets none */
    const char *gpu_node_selector;        /* "key=value" added to nodeSelector, or NULL */
    /* Called once the nodes' allocatable GPUs are known (GET /api/v1/nodes,
     * when allowed); NULL: do not read nodes. */
    void (*gpu_capacity)(void *arg, int gpus);
    void *gpu_capacity_arg;
};

void kube_exec_opts_default(struct kube_exec_opts *o);

/* The executor owns the client from here on (closed with it, after the
 * pods it reported have been deleted). */
int exec_kube_new(struct executor **out, uv_loop_t *loop, struct kube_client *client,
                  const struct kube_exec_opts *o, struct kiln_err *err);

/* What a pod's status says, for the executor and its tests. */
enum kube_obs_phase {
    KOBS_PENDING = 0,  /* not running yet */
    KOBS_RUNNING,      /* the container runs */
    KOBS_DONE,         /* the container (or the pod) ended */
};

struct kube_obs {
    enum kube_obs_phase phase;
    bool deleting;                /* metadata.deletionTimestamp set */
    int64_t started_us;           /* container running.startedAt (or terminated.startedAt) */
    /* pending: */
    bool unschedulable;           /* PodScheduled=False, reason Unschedulable */
    bool waiting_error;           /* image pull or container config error */
    bool waiting_fatal;           /* an error no waiting will fix (InvalidImageName) */
    char waiting_reason[64];
    /* done: */
    int exit_code;                /* -1: none */
    bool infra;                   /* eviction, node loss: not the task's fault */
    bool oom;
    int64_t finished_us;
    const char *termination_message;  /* borrowed from the pod JSON, or NULL */
    char reason[384];             /* pending: why it waits; done: how it ended (failure only) */
};

/* Reads a Pod object.  Pure. */
void kube_pod_observe(json_object *pod, struct kube_obs *o);

/* RFC 3339 time ("2026-11-21T15:55:09.123456789Z", offsets allowed) to
 * seconds and nanoseconds since the epoch.  Returns 0 or -1. */
int kube_parse_time(const char *s, int64_t *sec, int32_t *nsec);

#endif
