/* engine: wires the store, the scheduler and the executors onto one loop.
 * Used by `kiln serve` (daemon mode: holds the home's lock, takes commands
 * from the CLI) and by `kiln dags test` (in-process, one run). */
#ifndef KILN_ENGINE_H
#define KILN_ENGINE_H

#include <stdbool.h>
#include <uv.h>

#include "cmd.h"
#include "scheduler.h"
#include "settings.h"
#include "store.h"

struct engine;

struct engine_opts {
    const struct kiln_settings *cfg;
    const char *self_exe;       /* the kiln binary, to start the shepherd */
    bool daemon;                /* lock the home, listen for commands */
};

int engine_open(struct engine **out, uv_loop_t *loop, const struct engine_opts *o,
                struct kiln_err *err);
struct sched *engine_sched(struct engine *e);
struct store *engine_store(struct engine *e);
/* A command context bound to this engine's live scheduler. */
void engine_cmd_ctx(struct engine *e, struct cmd_ctx *c, const char *actor);
/* Applies one command on the live scheduler (the HTTP API's entry point, as
 * the commands inbox is the CLI's), then commits and re-arms schedules. */
int engine_apply(struct engine *e, const char *actor, const char *body, char **result,
                 struct kiln_err *err);
/* A DAG's schedule as written and when its next run is due (0: never);
 * returns 0 when the DAG has no schedule in the loaded folder. */
int engine_dag_schedule(struct engine *e, const char *dag_id, const char **expr,
                        int64_t *next_us);
/* Registers the DAGs of the folder in the store (paths, for lookups). */
void engine_sync_dags(struct engine *e);
/* Stops taking commands and closes every handle; tasks keep running.  The
 * loop ends once everything is closed. */
void engine_stop(struct engine *e);
void engine_free(struct engine *e);

/* Paths in the home folder (caller frees). */
char *home_path(const char *home, const char *name);
/* Whether a daemon holds the home's lock; fills its pid. */
bool daemon_running(const char *home, long *pid);
/* Takes the home's daemon lock without blocking; returns the fd or < 0. */
int home_lock(const char *home, bool wait);

#endif
