/* sched: runs and task instances in memory, the one state machine, trigger
 * rules, retries, timeouts, pools, priorities and concurrency limits.
 *
 * The in-memory state is a cache of the store.  Every transition goes
 * through one function (ti_set in sched.c) that checks the transition table
 * of state.h, writes the change into the open transaction, and runs the
 * state's enter hook.  Once per loop turn (a uv_prepare handle) the
 * scheduler dispatches ready task instances, commits the transaction, and
 * only then asks executors to start the tries it recorded: a try is decided,
 * written, then acted on.
 *
 * Incremental: each task instance counts its finished upstreams by class;
 * a completion updates only its downstream edges.  No timer rescans runs;
 * timers exist only for retry delays and timeouts (one uv_timer each, over a
 * min-heap). */
#ifndef KILN_SCHED_H
#define KILN_SCHED_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "dag.h"
#include "executor.h"
#include "state.h"
#include "store.h"

struct sched;

struct sched_pool {
    const char *name;
    int slots;
};

struct sched_config {
    const char *home;            /* state folder; logs go to HOME/logs */
    int parallelism;             /* running tries at most, all DAGs together */
    const struct sched_pool *pools;
    size_t n_pools;
    int64_t kill_grace_ms;       /* SIGTERM -> SIGKILL on cancel and timeout */
    const char *executor_override; /* run every task on this executor (benchmarks) */
    char *const *base_env;       /* environment every task starts from */
    bool offline;                /* apply user actions only: no executors, no dispatch */
    int infra_retries;           /* infrastructure failures retried per task instance
                                  * beyond its own retries (default 3; < 0: none) */
    int64_t infra_retry_delay_ms;  /* before such a retry (default 10 s) */
};

/* Notifications for observers (the progress view, later the web UI). */
struct sched_event {
    const char *dag_id;
    const char *run_id;
    int64_t run_pk;
    const char *task_id;         /* NULL for a run event */
    int task_index;              /* position of the task in its DAG, -1 for a run event */
    const char *state;
    int try_number;
    const char *reason;
    const char *log_path;        /* of the latest try, or NULL */
};
typedef void (*sched_event_cb)(void *arg, const struct sched_event *ev);

int sched_new(struct sched **out, uv_loop_t *loop, struct store *st,
              const struct sched_config *cfg, struct kiln_err *err);
/* Borrowed; must outlive the scheduler. */
void sched_add_executor(struct sched *s, const char *name, struct executor *ex);
void sched_set_observer(struct sched *s, sched_event_cb cb, void *arg);
/* Resizes a pool the scheduler was created with (the "gpu" pool, once the
 * Kubernetes executor has read the nodes).  Returns 0 or KILN_ENOTFOUND. */
int sched_set_pool_slots(struct sched *s, const char *name, int slots);

/* Hands a parsed DAG for a stored version to the scheduler's cache
 * (takes ownership, even on error), so a run does not parse it again. */
void sched_cache_dag(struct sched *s, int64_t version_id, struct dag *d);

/* Loads every unfinished run from the store and re-attaches to the tries
 * that were in flight (the restart path, also after a kill -9). */
int sched_recover(struct sched *s, struct kiln_err *err);
/* Loads one run (new, or changed in the store) into memory. */
int sched_load_run(struct sched *s, int64_t run_pk, struct kiln_err *err);

/* User actions; the caller has already checked the run exists.  They write
 * into the open transaction; the scheduler commits at the end of the turn
 * (or sched_flush() commits now). */
int sched_set_paused(struct sched *s, const char *dag_id, bool paused, struct kiln_err *err);
int sched_clear(struct sched *s, int64_t run_pk, const char *const *task_ids, size_t n,
                bool downstream, struct kiln_err *err);
int sched_mark(struct sched *s, int64_t run_pk, const char *task_id, enum ti_state to,
               const char *reason, struct kiln_err *err);
int sched_cancel_run(struct sched *s, int64_t run_pk, const char *reason, struct kiln_err *err);

/* Dispatches what is ready, commits, and starts the recorded tries. */
int sched_flush(struct sched *s, struct kiln_err *err);

/* Whether run_pk is finished; fills its final state. */
bool sched_run_finished(struct sched *s, int64_t run_pk, enum run_state *state);

struct sched_stats {
    uint64_t transitions;        /* task-instance transitions persisted */
    uint64_t tries_started;
    int running;                 /* tries in flight now */
    int max_running;             /* highest seen */
    uint64_t executor_errors;    /* tries an executor refused or could not run */
};
void sched_get_stats(const struct sched *s, struct sched_stats *out);

/* Closes the uv handles; running tries keep running under their executor. */
void sched_close(struct sched *s, void (*done)(void *arg), void *arg);
void sched_free(struct sched *s);


#endif
