/* settings: kiln's configuration.  Every setting has one name used three
 * ways, with flags over environment over the file:
 *   --parallelism 2  =  KILN_PARALLELISM=2  =  "parallelism: 2" in kiln.yaml
 * Names: home, dags, bind, port, executor, parallelism, kill_grace, log_level,
 * and the map "pools" (file only, or --pool NAME=SLOTS). */
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
