/* schedule: Airflow's model of logical date and data interval on top of
 * cron.h.
 *
 * A schedule's fire times f0 < f1 < f2 ... (cron_next from the start date)
 * cut time into data intervals [f_k, f_k+1).  The run for an interval has
 * the interval's start as its logical date and is created once the interval
 * has ended (now >= f_k+1): a daily run for 2026-01-01 covers
 * [2026-01-01, 2026-01-02) and fires at 2026-01-02 00:00.
 *
 *  - start_date: the first interval starts at the first fire time at or
 *    after it.  Without one, only the latest finished interval is due.
 *  - end_date: no interval that starts after it.
 *  - catchup: every missed interval, oldest first; without it only the
 *    latest finished one (Airflow's semantics).
 *
 * Where the last scheduled run's interval ended (the runs table's
 * data_interval_end_us) is the state; everything here is pure arithmetic. */
#ifndef KILN_SCHEDULE_H
#define KILN_SCHEDULE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cron.h"
#include "dag.h"
#include "err.h"

struct schedule {
    struct cron *cron;      /* NULL: the DAG has no schedule */
    int64_t start_us;       /* 0: none */
    int64_t end_us;         /* 0: none */
    bool catchup;
};

#define SCHEDULE_NEVER INT64_MAX

/* Parses d's schedule, timezone, start_date and end_date.  Errors are
 * "cron: ..." or "start_date: ..." messages (the loaders add FILE:LINE:COL). */
int schedule_from_dag(const struct dag *d, struct schedule *out, struct kiln_err *err);
/* Parses one date or date-time in the schedule's zone ("2026-01-01",
 * "2026-01-01T06:00", with an optional offset). */
int schedule_parse_time(const struct schedule *s, const char *text, int64_t *us,
                        struct kiln_err *err);
void schedule_free(struct schedule *s);

struct interval {
    int64_t start_us, end_us;
};

/* The intervals due at now (oldest first, at most max), given the end of
 * the last scheduled interval (0: none yet), and in *next_fire when the
 * next one after those becomes due (SCHEDULE_NEVER: never).  Returns the
 * number of intervals written. */
size_t schedule_due(const struct schedule *s, int64_t last_end_us, int64_t now_us,
                    struct interval *out, size_t max, int64_t *next_fire);

/* The intervals whose start lies in [from, to] (for backfills), at most max;
 * returns how many there are in all (may exceed max). */
size_t schedule_range(const struct schedule *s, int64_t from_us, int64_t to_us,
                      struct interval *out, size_t max);

/* The next n fire times (interval ends) after now; returns how many. */
size_t schedule_next_fires(const struct schedule *s, int64_t now_us, int64_t *out, size_t n);

/* "2026-01-01T00:00:00+00:00": an instant in UTC, for run ids. */
void schedule_format_utc(int64_t us, char *buf, size_t n);

#endif
