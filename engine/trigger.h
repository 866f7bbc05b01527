/* trigger: Airflow's trigger rules as a pure function of upstream counts.
 *
 * The scheduler keeps, per task instance, how many upstreams ended in each
 * class; when one upstream finishes it updates the counts of its downstream
 * tasks and asks trigger_eval() what each of them should do now.  That makes
 * a completion cost O(downstream edges), never a rescan.
 *
 * Classes: success; failed (failed or upstream_failed); skipped (skipped or
 * removed).  A task with no upstream runs at once under every rule. */
#ifndef KILN_TRIGGER_H
#define KILN_TRIGGER_H

#include "dag.h"

struct up_counts {
    int total;      /* number of upstream tasks */
    int success;
    int failed;     /* failed + upstream_failed */
    int skipped;    /* skipped + removed */
};

enum trigger_verdict {
    TV_WAIT = 0,            /* not decidable yet */
    TV_RUN,                 /* schedule the task */
    TV_SKIP,                /* mark skipped */
    TV_UPSTREAM_FAILED,     /* mark upstream_failed */
};

enum trigger_verdict trigger_eval(enum trigger_rule rule, const struct up_counts *c);
const char *trigger_verdict_name(enum trigger_verdict v);

#endif
