/* cron: 5-field cron expressions in an IANA time zone -> next fire time.
 *
 * Syntax (cron(5)): "MINUTE HOUR DAY-OF-MONTH MONTH DAY-OF-WEEK", fields
 * separated by spaces or tabs.
 *
 *   field          values  names
 *   minute         0-59
 *   hour           0-23
 *   day-of-month   1-31
 *   month          1-12    jan-dec (any case)
 *   day-of-week    0-7     sun-sat (any case); 0 and 7 are both Sunday
 *
 * Each field is a comma-separated list of items; an item is
 *   *          every value           *\/15     every 15th value from the lowest
 *   N          one value             N-M      a range (inclusive)
 *   N-M/S      every S-th value of N-M
 *   N/S        every S-th value from N to the field's highest value ("5/15" = 5,20,35,50)
 * Names work wherever numbers do ("mon-fri", "jan,jul").  A range must not
 * run backwards, except that a day-of-week range may end on Sunday written as
 * 0 ("fri-sun" = "5-7").  A step must be 1..(highest - lowest) of the field.
 * For "*" and N/S, day-of-week runs 0-6.
 *
 * Macros: @yearly = @annually = "0 0 1 1 *", @monthly = "0 0 1 * *",
 * @weekly = "0 0 * * 0", @daily = @midnight = "0 0 * * *", @hourly = "0 * * * *".
 *
 * Day-of-month and day-of-week (the classic rule): when both fields are
 * restricted, a day matches if EITHER matches ("0 0 1,15 * mon" runs on the
 * 1st, the 15th and every Monday).  As in Vixie cron and cronie, a field is
 * unrestricted when its text starts with '*', so "*\/2" counts as
 * unrestricted and "0 0 *\/2 * mon" runs on odd days that are Mondays.
 *
 * Expressions that can never fire ("0 0 30 2 *", "0 0 31 4,6,9,11 *") are
 * rejected by cron_parse; "0 0 31 * *" (months with a 31st) and
 * "0 0 29 2 *" (leap years) are accepted.
 *
 * Time zones: an IANA name ("Europe/Berlin") read from the system tz
 * database ($TZDIR, default /usr/share/zoneinfo, TZif v1/v2+/v3 including the
 * POSIX TZ rule of the footer for times after the last transition), parsed
 * once per zone and cached for the life of the process.  NULL, "" and "UTC"
 * mean UTC and need no tz database.  The process's TZ and localtime are never
 * touched, so every function here is thread-safe.
 *
 * Daylight saving time.  An expression names wall-clock times in its zone.
 *  - Spring forward: a wall time that does not exist fires once, at the first
 *    instant after the gap.  New York, 2026-03-08, 02:00 EST -> 03:00 EDT:
 *    "30 2 * * *" fires at 03:00-04:00 (07:00Z), and "*\/15 2 * * *" fires once
 *    there too, not four times.
 *  - Fall back: a wall time that occurs twice fires once, at its first
 *    occurrence.  New York, 2026-11-01, 02:00 EDT -> 01:00 EST: "30 1 * * *"
 *    fires at 01:30-04:00 (05:30Z) only.
 *  - Exception: an expression whose hour field covers every hour ("*", "0-23")
 *    runs by real time through a repeated hour, so it fires in both passes:
 *    "0 * * * *" fires at 01:00-04:00 and again at 01:00-05:00, one hour
 *    apart; "*\/15 * * * *" keeps firing every 15 minutes.  Through a gap the
 *    same hourly job fires at 01:00-05:00 and 03:00-04:00, also one hour
 *    apart, because 02:00 collapses onto 03:00.
 *
 * Next fire times come from arithmetic on the fields (next matching month,
 * day, hour, minute), segment by segment of constant UTC offset; nothing
 * steps minute by minute.  Supported instants: years 1 to 9999. */
#ifndef KILN_CRON_H
#define KILN_CRON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

struct cron;

/* Parses expr in time zone tz (NULL or "" = UTC).  On error returns
 * KILN_EPARSE (syntax), KILN_EINVALID (never fires, bad zone) and a message
 * that names the field and the bad token, e.g.
 *   "cron: minute field: '61' is out of range 0-59"
 *   "cron: day-of-week field: unknown name 'fry'"
 *   "cron: expected 5 fields, got 4"
 *   "cron: unknown time zone 'Mars/Base'" */
int cron_parse(const char *expr, const char *tz, struct cron **out, struct kiln_err *err);
void cron_free(struct cron *c);

/* The first fire time strictly after after_us (microseconds since the epoch,
 * UTC).  Returns 0, or -ERANGE when it would fall outside years 1..9999. */
int cron_next(const struct cron *c, int64_t after_us, int64_t *next_us);

/* The zone's name as given ("UTC" for NULL/""). */
const char *cron_tz_name(const struct cron *c);
/* The UTC offset in seconds (east positive) of the cron's zone at an instant. */
int cron_utc_offset(const struct cron *c, int64_t us);
/* Formats an instant as wall-clock time in the cron's zone with its offset:
 * "2026-03-29T03:00:00+02:00" (whole seconds; UTC prints "+00:00"). */
void cron_format_time(const struct cron *c, int64_t us, char *buf, size_t n);
/* Parses "YYYY-MM-DD[THH:MM[:SS[.ffffff]]][Z|+HH:MM|-HH:MM|+HHMM]" (or a
 * space for T).  Without an offset the time is wall-clock time in the cron's
 * zone, resolved by the DST rules above (a time in a gap means the end of the
 * gap, a repeated time its first occurrence). */
int cron_parse_time(const struct cron *c, const char *s, int64_t *us, struct kiln_err *err);

/* Whether a wall-clock minute matches the fields (ignores the time zone and
 * DST).  month 1-12, day 1-31.  For benchmarks and diagnostics. */
bool cron_matches(const struct cron *c, int year, int month, int day, int hour, int minute);

#endif
