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

int load_yaml_file(const char *path, struct dag **out, struct kiln_err *err);
/* path is used for messages and as dag->path. */
int load_yaml_buf(const char *path, const char *buf, size_t len, struct dag **out,
                  struct kiln_err *err);

#endif
