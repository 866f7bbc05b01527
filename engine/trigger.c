#include "trigger.h"

enum trigger_verdict trigger_eval(enum trigger_rule rule, const struct up_counts *c)
{
    const int n = c->total, s = c->success, f = c->failed, k = c->skipped;
    const int done = s + f + k;
    const int all_done = done >= n;

    if (n == 0)
        return TV_RUN;
    /* Rules decide as early as the outcome is certain, as Airflow does: an
     * all_success task is upstream_failed as soon as one upstream fails. */
    switch (rule) {
    case TR_ALL_SUCCESS:
        if (f > 0)
            return TV_UPSTREAM_FAILED;
        if (k > 0)
            return TV_SKIP;
        return s == n ? TV_RUN : TV_WAIT;
    case TR_ALL_FAILED:
        if (s + k > 0)
            return TV_SKIP;
        return f == n ? TV_RUN : TV_WAIT;
    case TR_ALL_DONE:
        return all_done ? TV_RUN : TV_WAIT;
    case TR_ALL_SKIPPED:
        if (s + f > 0)
            return TV_SKIP;
        return k == n ? TV_RUN : TV_WAIT;
    case TR_ONE_SUCCESS:
        if (s > 0)
            return TV_RUN;
        if (all_done)
            return k == n ? TV_SKIP : TV_UPSTREAM_FAILED;
        return TV_WAIT;
    case TR_ONE_FAILED:
        if (f > 0)
            return TV_RUN;
        return all_done ? TV_SKIP : TV_WAIT;
    case TR_ONE_DONE:
        if (s + f > 0)
            return TV_RUN;
        return all_done ? TV_SKIP : TV_WAIT;
    case TR_NONE_FAILED:
        if (f > 0)
            return TV_UPSTREAM_FAILED;
        return all_done ? TV_RUN : TV_WAIT;
    case TR_NONE_FAILED_MIN_ONE_SUCCESS:
        if (f > 0)
            return TV_UPSTREAM_FAILED;
        if (!all_done)
            return TV_WAIT;
        return s > 0 ? TV_RUN : TV_SKIP;
    case TR_NONE_SKIPPED:
        if (k > 0)
            return TV_SKIP;
        return all_done ? TV_RUN : TV_WAIT;
    case TR_ALWAYS:
        return TV_RUN;
    case TR__COUNT:
        break;
    }
    return TV_WAIT;
}

const char *trigger_verdict_name(enum trigger_verdict v)
{
    switch (v) {
    case TV_WAIT: return "wait";
    case TV_RUN: return "run";
    case TV_SKIP: return "skip";
    case TV_UPSTREAM_FAILED: return "upstream_failed";
    }
    return "?";
}
