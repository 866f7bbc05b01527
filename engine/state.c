#include "state.h"

#include <string.h>

static const char *const ti_names[TI__COUNT] = {
    "none", "scheduled", "queued", "running", "success", "failed",
    "up_for_retry", "upstream_failed", "skipped", "removed",
};

static const char *const run_names[RUN__COUNT] = { "queued", "running", "success", "failed" };

#define B(x) (1u << (x))
/* ti_next[from] is the set of states the scheduler may move to from `from`. */
static const unsigned ti_next[TI__COUNT] = {
    [TI_NONE] = B(TI_SCHEDULED) | B(TI_SKIPPED) | B(TI_UPSTREAM_FAILED) | B(TI_REMOVED),
    [TI_SCHEDULED] = B(TI_QUEUED) | B(TI_REMOVED) | B(TI_FAILED),
    /* queued -> failed: the executor refused the try (command not found). */
    [TI_QUEUED] = B(TI_RUNNING) | B(TI_FAILED) | B(TI_UP_FOR_RETRY) | B(TI_SUCCESS) |
                  B(TI_SKIPPED) | B(TI_SCHEDULED),
    [TI_RUNNING] = B(TI_SUCCESS) | B(TI_FAILED) | B(TI_UP_FOR_RETRY) | B(TI_SKIPPED),
    [TI_UP_FOR_RETRY] = B(TI_SCHEDULED),
    [TI_SUCCESS] = 0,
    [TI_FAILED] = 0,
    [TI_UPSTREAM_FAILED] = 0,
    [TI_SKIPPED] = 0,
    [TI_REMOVED] = 0,
};

const char *ti_state_name(enum ti_state s)
{
    return s < TI__COUNT ? ti_names[s] : "?";
}

int ti_state_parse(const char *name)
{
    for (int i = 0; i < TI__COUNT; i++)
        if (strcmp(name, ti_names[i]) == 0)
            return i;
    return -1;
}

bool ti_state_terminal(enum ti_state s)
{
    return s == TI_SUCCESS || s == TI_FAILED || s == TI_UPSTREAM_FAILED || s == TI_SKIPPED ||
           s == TI_REMOVED;
}

bool ti_transition_ok(enum ti_state from, enum ti_state to)
{
    return from < TI__COUNT && to < TI__COUNT && (ti_next[from] & B(to));
}

bool ti_user_transition_ok(enum ti_state from, enum ti_state to)
{
    /* clear: any finished or waiting task back to none.  mark: any state to a
     * final one (a running try is stopped first by the caller). */
    if (to == TI_NONE)
        return from != TI_RUNNING && from != TI_QUEUED;
    return to == TI_SUCCESS || to == TI_FAILED || to == TI_SKIPPED;
}

const char *run_state_name(enum run_state s)
{
    return s < RUN__COUNT ? run_names[s] : "?";
}

int run_state_parse(const char *name)
{
    for (int i = 0; i < RUN__COUNT; i++)
        if (strcmp(name, run_names[i]) == 0)
            return i;
    return -1;
}

bool run_state_terminal(enum run_state s)
{
    return s == RUN_SUCCESS || s == RUN_FAILED;
}

bool run_transition_ok(enum run_state from, enum run_state to)
{
    switch (from) {
    case RUN_QUEUED: return to == RUN_RUNNING || to == RUN_FAILED;
    case RUN_RUNNING: return to == RUN_SUCCESS || to == RUN_FAILED;
    /* A cleared task re-opens a finished run; a task marked by a user can
     * turn a finished run's outcome. */
    case RUN_SUCCESS: return to == RUN_QUEUED || to == RUN_RUNNING || to == RUN_FAILED;
    case RUN_FAILED: return to == RUN_QUEUED || to == RUN_RUNNING || to == RUN_SUCCESS;
    default: return false;
    }
}
