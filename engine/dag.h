/* dag: the immutable DAG model that both loaders produce and the scheduler
 * consumes.
 *
 * A loader fills a struct dag through dag_new()/dag_add_task() and then calls
 * dag_finalize(), which resolves dependency names into indexes, checks for
 * duplicate ids, unknown dependencies and cycles, and computes the edge
 * arrays the scheduler walks.  After dag_finalize() succeeds the DAG is never
 * modified; it is shared by every run that uses this version of the file. */
#ifndef KILN_DAG_H
#define KILN_DAG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

struct kube_task_spec;          /* executors/kube_pod.h */

/* Airflow's eleven trigger rules, in a fixed order (stored as text). */
enum trigger_rule {
    TR_ALL_SUCCESS = 0,
    TR_ALL_FAILED,
    TR_ALL_DONE,
    TR_ALL_SKIPPED,
    TR_ONE_SUCCESS,
    TR_ONE_FAILED,
    TR_ONE_DONE,
    TR_NONE_FAILED,
    TR_NONE_FAILED_MIN_ONE_SUCCESS,
    TR_NONE_SKIPPED,
    TR_ALWAYS,
    TR__COUNT
};
const char *trigger_rule_name(enum trigger_rule r);
/* Returns the rule, or -1 for an unknown name. */
int trigger_rule_parse(const char *name);

/* Where something was written, for error messages (1-based; 0 = unknown). */
struct dag_pos {
    int line, col;
};

struct dag_kv {
    char *key;
    char *value;
    struct dag_pos pos;
};

/* A DAG param: its type, its default (as text) and, for enums, the values. */
enum dag_param_type {
    DPT_STRING = 0,
    DPT_NUMBER,
    DPT_INTEGER,
    DPT_BOOLEAN,
    DPT_ENUM,
    DPT__COUNT
};
const char *dag_param_type_name(enum dag_param_type t);
/* Returns the type, or -1 for an unknown name. */
int dag_param_type_parse(const char *name);

struct dag_param {
    char *key;
    char *value;                 /* the default as text; "" when required */
    struct dag_pos pos;
    enum dag_param_type type;
    bool required;               /* no default: must be given at trigger */
    char **values;               /* DPT_ENUM: the allowed values */
    size_t n_values;
};

/* Checks text against p's type.  Returns 0, or -1 with why = "param 'lr'
 * must be a number, got 'fast'". */
int dag_param_check(const struct dag_param *p, const char *text, char *why, size_t n);
void dag_params_free(struct dag_param *p, size_t n);

#define DAG_DEFAULT_SKIP_EXIT_CODE 99
#define DAG_DEFAULT_POOL "default_pool"

struct dag_task {
    char *id;
    struct dag_pos pos;          /* where the task's key was written */

    char **argv;                 /* NULL-terminated; argc entries */
    size_t argc;
    struct dag_pos *argv_pos;    /* where each argument was written; NULL: pos */
    struct dag_kv *env;
    size_t n_env;
    char *cwd;                   /* NULL: the DAG file's folder */

    int retries;                 /* extra tries after the first */
    int64_t retry_delay_ms;
    bool retry_exponential_backoff;
    int64_t max_retry_delay_ms;  /* 0: no cap */
    int64_t timeout_ms;          /* 0: none */
    enum trigger_rule trigger_rule;
    int priority_weight;
    char *pool;                  /* never NULL after finalize */
    int pool_slots;              /* slots one try takes, >= 1 */
    char *executor;              /* never NULL after finalize ("local") */
    int skip_exit_code;
    struct kube_task_spec *kube; /* the `kubernetes:` block merged over the default
                                  * block's, parsed (kube_spec.h); NULL: none.  Owned.
                                  * command, env and timeout_s are left to the executor */

    char **deps;                 /* dependency ids as written */
    struct dag_pos *dep_pos;     /* where each one was written */
    size_t n_deps;

    /* Filled by dag_finalize(). */
    uint32_t index;
    uint32_t *up;                /* indexes of upstream tasks */
    size_t n_up;
    uint32_t *down;              /* indexes of downstream tasks */
    size_t n_down;
};

struct dag {
    char *id;
    char *path;                  /* source file */
    char *hash;                  /* sha-256 hex of the file's content, if known */
    char *schedule;              /* cron text or NULL (manual only) */
    char *timezone;
    char *start_date;            /* ISO date or date-time in timezone, or NULL */
    char *end_date;              /* likewise; no interval starts after it */
    char *description;
    bool catchup;
    int max_active_runs;         /* default 16 */
    int max_active_tasks;        /* default 16 */
    struct dag_param *params;
    size_t n_params;

    struct dag_task *tasks;
    size_t n_tasks, cap_tasks;

    /* Filled by dag_finalize(). */
    uint32_t *topo;              /* task indexes in a topological order */
    void *index;                 /* private: id -> task lookup */
};

struct dag *dag_new(const char *id, const char *path);
void dag_free(struct dag *d);

/* Appends a task with Airflow's defaults (no retries, all_success, local
 * executor, default_pool, priority 1) and returns it for the loader to fill.
 * The pointer is valid until the next dag_add_task(). */
struct dag_task *dag_add_task(struct dag *d, const char *id, struct dag_pos pos);
void dag_task_add_dep(struct dag_task *t, const char *dep, struct dag_pos pos);

/* Resolves dependencies and validates.  Errors name the file, line and column
 * of the offending task or dependency:
 *   "dags/etl.yaml:12:5: duplicate task id 'load' (first defined at 4:3)"
 *   "dags/etl.yaml:9:13: task 'b' depends on unknown task 'x' (did you mean 'a'?)"
 *   "dags/etl.yaml:5:3: dependency cycle: a -> b -> c -> a"
 *   "dags/etl.yaml:7:22: task 'b': unknown template name 'paramz.lr' (did you
 *    mean 'params.lr'?)"  (templates in command and env, see template.h)
 * A position without a column (col 0: the Lua loader knows only the line)
 * prints as "dags/sweep.lua:12: ..." and "(first defined at line 4)".
 * Returns 0 or a negative code. */
int dag_finalize(struct dag *d, struct kiln_err *err);

/* Looks a task up by id after dag_finalize(); NULL if absent. */
const struct dag_task *dag_task_find(const struct dag *d, const char *id);

/* Computes the delay before try number `next_try` (2 for the first retry).
 * Exponential backoff doubles the delay per retry and is capped by
 * max_retry_delay (if set) and by 24 h. */
int64_t dag_retry_delay_ms(const struct dag_task *t, int next_try);

#endif
