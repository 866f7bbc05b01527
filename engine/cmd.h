/* cmd: the one entry point for every change a user asks for (CLI now, the
 * HTTP API later).  A command is a JSON object {"op": ..., ...}:
 *
 *   {"op":"trigger", "dag":ID, "params":{...}, "run_id":ID?, "file":PATH?, "run_type":T?,
 *    "logical_us":US?, "interval_end_us":US?, "skip_existing":BOOL?,
 *    "backfill_max_active":N?}    (a data interval: run id TYPE__<start in UTC>)
 *   {"op":"backfill", "dag":ID, "from":TIME, "to":TIME, "max_active":N?}
 *   {"op":"pause", "dag":ID}            {"op":"unpause", "dag":ID}
 *   {"op":"clear", "dag":ID, "run":SEL, "tasks":[ID...], "downstream":BOOL}
 *   {"op":"mark", "dag":ID, "run":SEL, "task":ID, "state":"success|failed|skipped"}
 *   {"op":"cancel", "dag":ID, "run":SEL}
 *
 * SEL is a run id, "latest", or the run's number.  The same code applies a
 * command inside the daemon (from the commands table) and in the CLI when no
 * daemon runs (with an offline scheduler), so both paths behave the same.
 * Every applied command is written to the audit log with its actor. */
#ifndef KILN_CMD_H
#define KILN_CMD_H

#include <stdint.h>

#include "err.h"
#include "scheduler.h"
#include "store.h"

struct cmd_ctx {
    struct store *st;
    struct sched *sched;       /* live, or offline */
    const char *dags_dir;
    const char *home;
    const char *actor;         /* "cli:USER", "api:..." */
};

/* Applies one command; on success *result is a JSON object (caller frees).
 * Writes go into the store's open transaction; the caller commits. */
int cmd_apply(struct cmd_ctx *c, const char *body, char **result, struct kiln_err *err);

/* Resolves a run selector of a DAG to the run's primary key. */
int cmd_find_run(struct store *st, const char *dag_id, const char *sel, int64_t *run_pk,
                 struct kiln_err *err);

/* Loads the DAG with this id from the folder (its known file first, then a
 * scan).  Fills *source with the file's bytes (caller frees).  When its known
 * file no longer parses, the DAG's current version (the last good one)
 * comes from the store instead; a DAG whose file left the folder is
 * ENOTFOUND with a message saying so. */
int cmd_find_dag(struct store *st, const char *dags_dir, const char *dag_id, struct dag **out,
                 char **source, size_t *len, struct kiln_err *err);

/* The id of the version row of d (content d->hash, bytes source), inserted
 * with its git commit and dirty flag if new. */
int cmd_ensure_version(struct store *st, const struct dag *d, const char *source, size_t len,
                       int64_t *version_id, struct kiln_err *err);

#endif
