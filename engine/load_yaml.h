/* load_yaml: YAML DAG file -> struct dag (libyaml document API: every node
 * keeps its line and column).
 *
 * Every error is "FILE:LINE:COL: message" (1-based), for example
 *   dags/etl.yaml:7:5: unknown key 'retires' in task 'load' (did you mean 'retries'?)
 *   dags/etl.yaml:9:16: 'retry_delay' must be a duration like 30s, 5m or 1h, got 'soon'
 * The returned DAG is finalized (dag_finalize() has run). */
#ifndef KILN_LOAD_YAML_H
#define KILN_LOAD_YAML_H

#include <stddef.h>

#include "dag.h"
#include "util.h"

int load_yaml_file(const char *path, struct dag **out, struct kiln_err *err);
/* path is used for messages and as dag->path. */
int load_yaml_buf(const char *path, const char *buf, size_t len, struct dag **out,
                  struct kiln_err *err);

/* --- shared with the Lua loader (load_lua.c) --------------------------------
 * Both loaders accept the same task keys, check them with the same rules and
 * word their hints the same way. */

#define DAG_ID_RULE "use letters, digits, '_', '-' and '.', not starting with '.'"

/* The keys a task (and the default block) may set, in the order the Lua
 * loader applies them. */
enum dag_task_key {
    DTK_COMMAND,
    DTK_DEPS,
    DTK_ENV,
    DTK_CWD,
    DTK_RETRIES,
    DTK_RETRY_DELAY,
    DTK_MAX_RETRY_DELAY,
    DTK_TIMEOUT,
    DTK_BACKOFF,
    DTK_TRIGGER_RULE,
    DTK_PRIORITY_WEIGHT,
    DTK_POOL,
    DTK_POOL_SLOTS,
    DTK_EXECUTOR,
    DTK_SKIP_EXIT_CODE,
    DTK_DESCRIPTION,
    DTK_KUBERNETES,
    DTK__COUNT
};
extern const char *const dag_task_keys[DTK__COUNT];

#define DAG_N_EXECUTORS 2
extern const char *const dag_executors[DAG_N_EXECUTORS];

/* Range of an integer key and how messages name it ("a positive integer"). */
struct dag_int_rule {
    long long min, max;
    const char *kind;
};
/* Filled for retries, priority_weight, pool_slots and skip_exit_code. */
extern const struct dag_int_rule dag_task_int_rules[DTK__COUNT];
/* max_active_runs and max_active_tasks. */
extern const struct dag_int_rule dag_max_active_rule;

/* "dags/etl.yaml" -> "etl": the DAG id when the file does not name one. */
char *dag_id_from_path(const char *path);

/* Appends " (did you mean 'x'?)" when a candidate is within an edit distance
 * of 2 of word, else " (valid LABEL: a, b, c)". */
void dag_hint(struct sbuf *b, const char *word, const char *const *cands, size_t n,
              const char *label);

#endif
