/* state: the run and task-instance states (Airflow's names) and the table of
 * legal transitions.  The scheduler's one transition function consults it;
 * nothing else changes a state. */
#ifndef KILN_STATE_H
#define KILN_STATE_H

#include <stdbool.h>

enum ti_state {
    TI_NONE = 0,
    TI_SCHEDULED,
    TI_QUEUED,
    TI_RUNNING,
    TI_SUCCESS,
    TI_FAILED,
    TI_UP_FOR_RETRY,
    TI_UPSTREAM_FAILED,
    TI_SKIPPED,
    TI_REMOVED,
    TI__COUNT
};

enum run_state { RUN_QUEUED = 0, RUN_RUNNING, RUN_SUCCESS, RUN_FAILED, RUN__COUNT };

const char *ti_state_name(enum ti_state s);
int ti_state_parse(const char *name);          /* -1 if unknown */
bool ti_state_terminal(enum ti_state s);        /* success failed upstream_failed skipped removed */
/* Whether the scheduler may move a task instance from `from` to `to`.
 * User actions (clear, mark) use ti_user_transition_ok instead. */
bool ti_transition_ok(enum ti_state from, enum ti_state to);
bool ti_user_transition_ok(enum ti_state from, enum ti_state to);

const char *run_state_name(enum run_state s);
int run_state_parse(const char *name);
bool run_state_terminal(enum run_state s);
bool run_transition_ok(enum run_state from, enum run_state to);

#endif
