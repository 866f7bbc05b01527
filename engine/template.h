/* template: {{ name }} substitution in task arguments and environment values.
 *
 * A template is literal text with references "{{ name }}" (spaces inside the
 * braces are optional).  A name is dotted identifiers only: no expressions,
 * filters or code ever run.  The names:
 *
 *   ds, ds_nodash, ts, logical_date, data_interval_start, data_interval_end,
 *   run_id, dag.id, task.id, try_number, params.NAME, tasks.ID.outputs.KEY
 *
 * template_check() validates a string at load time against the DAG (params
 * declared, ID an upstream task of the task using it); template_render()
 * substitutes at try start.  "{{" without a closing "}}" is an error. */
#ifndef KILN_TEMPLATE_H
#define KILN_TEMPLATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dag.h"
#include "util.h"

/* True if s contains "{{" (so it needs checking or rendering at all). */
bool template_has_refs(const char *s);

/* Checks s for task t of DAG d (d finalized: upstream edges known).
 * Returns 0, or -1 with why = "unknown template name 'paramz.lr' (did you
 * mean 'params.lr'?)" or a syntax error. */
int template_check(const char *s, const struct dag *d, const struct dag_task *t, char *why,
                   size_t why_len);

/* What a template can see at try start. */
struct template_vars {
    const char *run_id, *dag_id, *task_id;
    int try_number;
    int64_t logical_us, interval_start_us, interval_end_us;
    const char *params_json;           /* the run's params, a JSON object (or NULL) */
    /* The JSON object upstream task `task_id` wrote as its outputs in this run,
     * or NULL when it wrote none (or has no successful try). */
    const char *(*outputs)(void *arg, const char *task_id);
    void *arg;
};

/* Appends the rendering of s to out.  Returns 0, or -1 with why filled,
 * e.g. "template {{ tasks.train.outputs.acc }}: task 'train' wrote no
 * output 'acc'". */
int template_render(const char *s, const struct template_vars *v, struct sbuf *out, char *why,
                    size_t why_len);

/* Formats a time (microseconds, UTC) the way templates show it. */
void template_fmt_ds(int64_t us, char *buf, size_t n);        /* 2026-11-21 */
void template_fmt_ts(int64_t us, char *buf, size_t n);        /* 2026-11-21T13:40:05+00:00 */

#endif
