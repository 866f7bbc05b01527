/* executor: the interface between the scheduler and whatever runs a try.
 *
 * The scheduler decides, persists, and then calls start(); the executor
 * reports back through the callbacks in struct executor.  Executors know
 * nothing of runs, states or the store: a try is identified by its try_id
 * (the primary key of the tries table) and described by struct exec_spec.
 *
 * Contract:
 *  - start() returns 0 and later calls on_started (optional) and then exactly
 *    one on_done for that try_id; or returns < 0 and calls neither.
 *  - cancel() asks the try to stop (SIGTERM to its process group, SIGKILL
 *    after grace_ms); on_done still arrives, with the signal that ended it.
 *  - adopt() re-attaches to a try that a previous daemon started (after a
 *    restart or a kill -9).  It reports, through on_done or on_started, what
 *    became of it; if the try was provably never started it calls on_done
 *    with never_started = true so the scheduler may start it (once).
 *  - All callbacks run on the loop thread. */
#ifndef KILN_EXECUTOR_H
#define KILN_EXECUTOR_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "err.h"

struct kube_task_spec;

struct exec_spec {
    int64_t try_id;
    const char *dag_id;
    const char *run_id;
    const char *task_id;
    int try_number;
    char *const *argv;          /* NULL-terminated */
    char *const *envp;          /* complete environment, NULL-terminated */
    const char *cwd;            /* NULL: inherit */
    const char *log_path;       /* stdout+stderr, appended */
    /* For executors whose tasks do not inherit the daemon's environment
     * (pods): only kiln's KILN_* variables and the task's own env. */
    char *const *task_env;      /* NULL-terminated */
    const struct kube_task_spec *kube;  /* the task's kubernetes block, or NULL */
    int64_t timeout_ms;         /* the task's timeout, 0: none */
};

struct exec_result {
    int64_t try_id;
    int exit_code;              /* valid when term_signal == 0 and !lost */
    int term_signal;            /* signal that ended the process, or 0 */
    bool lost;                  /* the process is gone and its status unknown */
    bool never_started;         /* adopt(): provably never started */
    bool spawn_failed;          /* start(): the command could not be executed */
    bool infra;                 /* an infrastructure failure (eviction, node loss, API
                                 * errors, image pull): it counts against the separate
                                 * infrastructure retry budget, not the task's retries */
    int64_t start_us, end_us;   /* wall clock; 0 if unknown */
    char reason[400];           /* human-readable detail, may be empty */
};

struct executor;
typedef void (*exec_started_cb)(void *arg, int64_t try_id, const char *executor_id,
                                int64_t start_us);
typedef void (*exec_done_cb)(void *arg, const struct exec_result *res);

struct executor_ops {
    const char *name;
    int (*start)(struct executor *ex, const struct exec_spec *spec, struct kiln_err *err);
    int (*cancel)(struct executor *ex, int64_t try_id, int64_t grace_ms);
    /* executor_id is what on_started reported before the restart (may be NULL
     * if the daemon died before recording it). */
    int (*adopt)(struct executor *ex, const struct exec_spec *spec, const char *executor_id,
                 struct kiln_err *err);
    /* Stops accepting work; running tries keep running (they are adopted by
     * the next daemon).  Calls done_cb once all handles are closed. */
    void (*close)(struct executor *ex, void (*done_cb)(struct executor *ex));
    /* Optional: recovery has called adopt() for every try it still wants;
     * whatever else the executor finds of its own is orphaned (the
     * Kubernetes executor deletes such pods). */
    void (*adopt_done)(struct executor *ex);
};

/* Base struct, embedded first in each executor. */
struct executor {
    const struct executor_ops *ops;
    uv_loop_t *loop;
    exec_started_cb on_started;
    exec_done_cb on_done;
    void *cb_arg;
};

/* Local executor: tasks run as child processes of the shepherd, a small
 * long-lived process (started on demand, one per home folder) that survives
 * a kill -9 of the daemon and records every exit status in its journal
 * (HOME/shepherd.journal) before reporting it.
 * home is the state folder; self_exe is the kiln binary used to start the
 * shepherd ("kiln shepherd --home HOME"). */
int exec_local_new(struct executor **out, uv_loop_t *loop, const char *home,
                   const char *self_exe, struct kiln_err *err);

/* No-op executor for benchmarks and tests: every try succeeds on the next
 * loop turn without a process. */
int exec_noop_new(struct executor **out, uv_loop_t *loop);

#endif
