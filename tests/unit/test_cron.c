/* cron: field syntax, macros, day-of-month/day-of-week OR, month lengths and
 * leap years, errors, DST in five zones (two southern hemisphere), the TZif
 * reader against glibc, and cross-checks against brute-force minute-stepping
 * oracles written here (the engine never steps minute by minute).
 *
 * Reference dates used below (checked by hand against a calendar):
 *   2026-01-01 is a Thursday; 2026 and 2027 are not leap years, 2028 is;
 *   2100 is not a leap year (divisible by 100, not by 400), 2000 was.
 *   New York 2026: 02:00 EST -> 03:00 EDT on Mar 8 (07:00Z),
 *                  02:00 EDT -> 01:00 EST on Nov 1 (06:00Z).
 *   Berlin 2026:   02:00 CET -> 03:00 CEST on Mar 29 (01:00Z),
 *                  03:00 CEST -> 02:00 CET on Oct 25 (01:00Z).
 *   Sydney 2026:   03:00 AEDT -> 02:00 AEST on Apr 5 (16:00Z Apr 4),
 *                  02:00 AEST -> 03:00 AEDT on Oct 4 (16:00Z Oct 3).
 *   Lord Howe 2026: 02:00 +11 -> 01:30 +1030 on Apr 5, 02:00 +1030 -> 02:30 +11 on Oct 4. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "cron.h"
#include "err.h"

#define US 1000000LL

/* ---- helpers independent of the engine ---------------------------------- */

/* "YYYY-MM-DDTHH:MM[:SS](Z|+HH:MM|-HH:MM)" -> microseconds, with timegm. */
static int64_t T(const char *s)
{
    int y, mo, d, h, mi, sec = 0, n = 0;
    if (sscanf(s, "%d-%d-%dT%d:%d%n", &y, &mo, &d, &h, &mi, &n) != 5)
        fail_msg("bad test time '%s'", s);
    const char *p = s + n;
    if (*p == ':') {
        int n2 = 0;
        if (sscanf(p, ":%d%n", &sec, &n2) != 1)
            fail_msg("bad test time '%s'", s);
        p += n2;
    }
    struct tm tm = { .tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h,
                     .tm_min = mi, .tm_sec = sec };
    int64_t t = (int64_t)timegm(&tm);
    if (*p == '+' || *p == '-') {
        int oh, om;
        if (sscanf(p + 1, "%d:%d", &oh, &om) != 2)
            fail_msg("bad test offset '%s'", s);
        int off = (oh * 3600 + om * 60) * (*p == '-' ? -1 : 1);
        t -= off;
    } else if (*p != 'Z') {
        fail_msg("test time '%s' needs an offset", s);
    }
    return t * US;
}

static struct cron *P(const char *expr, const char *tz)
{
    struct kiln_err err = { 0 };
    struct cron *c = NULL;
    if (cron_parse(expr, tz, &c, &err) != 0)
        fail_msg("'%s' (%s) did not parse: %s", expr, tz ? tz : "UTC", err.msg);
    return c;
}

/* Checks that the fire times of expr in tz strictly after `after` are, in
 * order, the NULL-terminated list of formatted times. */
static int ncases;
static void seq_at(const char *file, int line, const char *expr, const char *tz,
                   const char *after, ...)
{
    struct cron *c = P(expr, tz);
    int64_t t = T(after);
    va_list ap;
    va_start(ap, after);
    const char *want;
    int i = 0;
    while ((want = va_arg(ap, const char *)) != NULL) {
        int64_t nx = 0;
        int rc = cron_next(c, t, &nx);
        if (rc != 0)
            fail_msg("%s:%d: '%s' %s after %s: cron_next #%d returned %d", file, line, expr,
                     tz ? tz : "UTC", after, i, rc);
        char got[64];
        cron_format_time(c, nx, got, sizeof got);
        if (strcmp(got, want) != 0)
            fail_msg("%s:%d: '%s' %s after %s: fire #%d is %s, want %s", file, line, expr,
                     tz ? tz : "UTC", after, i, got, want);
        if (nx <= t)
            fail_msg("%s:%d: '%s': not strictly after", file, line, expr);
        /* the formatted time names the same instant */
        if (T(want) != nx)
            fail_msg("%s:%d: '%s': %s is not instant %lld", file, line, expr, want,
                     (long long)nx);
        t = nx;
        i++;
        ncases++;
    }
    va_end(ap);
    cron_free(c);
}
#define SEQ(expr, tz, after, ...) seq_at(__FILE__, __LINE__, expr, tz, after, __VA_ARGS__, NULL)

static void err_at(const char *file, int line, const char *expr, const char *tz, int code,
                   const char *msg, int prefix)
{
    struct kiln_err err = { 0 };
    struct cron *c = (struct cron *)(uintptr_t)1;
    int rc = cron_parse(expr, tz, &c, &err);
    if (rc == 0) {
        cron_free(c);
        fail_msg("%s:%d: '%s' parsed, want error '%s'", file, line, expr, msg);
    }
    if (c != NULL)
        fail_msg("%s:%d: *out not NULL on error", file, line);
    if (rc != code)
        fail_msg("%s:%d: '%s': code %d, want %d (%s)", file, line, expr, rc, code, err.msg);
    if (prefix ? strncmp(err.msg, msg, strlen(msg)) != 0 : strcmp(err.msg, msg) != 0)
        fail_msg("%s:%d: '%s': message\n  got:  %s\n  want: %s", file, line, expr, err.msg,
                 msg);
    ncases++;
}
#define ERR(expr, msg) err_at(__FILE__, __LINE__, expr, NULL, KILN_EPARSE, msg, 0)
#define ERRC(expr, code, msg) err_at(__FILE__, __LINE__, expr, NULL, code, msg, 0)
#define TZERR(tz, msg) err_at(__FILE__, __LINE__, "0 0 * * *", tz, KILN_EINVALID, msg, 0)
#define TZERR_PREFIX(tz, msg) err_at(__FILE__, __LINE__, "0 0 * * *", tz, KILN_EINVALID, msg, 1)

/* ---- each field ---------------------------------------------------------- */

static void test_every_minute(void **state)
{
    SEQ("* * * * *", NULL, "2026-01-01T00:00Z", "2026-01-01T00:01:00+00:00",
        "2026-01-01T00:02:00+00:00");
    /* strictly after, with sub-second and second starts */
    SEQ("* * * * *", NULL, "2026-01-01T00:00:30Z", "2026-01-01T00:01:00+00:00");
    SEQ("* * * * *", NULL, "2026-01-01T00:00:59Z", "2026-01-01T00:01:00+00:00");
    struct cron *c = P("0 0 * * *", NULL);
    int64_t nx;
    assert_int_equal(cron_next(c, T("2026-01-01T00:00Z"), &nx), 0);
    assert_true(nx == T("2026-01-02T00:00Z"));
    assert_int_equal(cron_next(c, T("2026-01-01T00:00Z") - 1, &nx), 0);
    assert_true(nx == T("2026-01-01T00:00Z"));
    assert_int_equal(cron_next(c, T("2026-01-01T00:00Z") + 1, &nx), 0);
    assert_true(nx == T("2026-01-02T00:00Z"));
    /* before the epoch: floor division, not truncation */
    assert_int_equal(cron_next(c, T("1969-12-31T00:00Z") + 1, &nx), 0);
    assert_true(nx == T("1970-01-01T00:00Z"));
    assert_int_equal(cron_next(c, -1, &nx), 0);
    assert_true(nx == 0);
    cron_free(c);
}

static void test_minute_field(void **state)
{
    SEQ("5 * * * *", NULL, "2026-01-01T00:00Z", "2026-01-01T00:05:00+00:00",
        "2026-01-01T01:05:00+00:00");
    SEQ("59 * * * *", NULL, "2026-01-01T00:59Z", "2026-01-01T01:59:00+00:00");
    SEQ("0,30 * * * *", NULL, "2026-01-01T00:00Z", "2026-01-01T00:30:00+00:00",
        "2026-01-01T01:00:00+00:00");
    SEQ("10-12 * * * *", NULL, "2026-01-01T00:00Z", "2026-01-01T00:10:00+00:00",
        "2026-01-01T00:11:00+00:00", "2026-01-01T00:12:00+00:00", "2026-01-01T01:10:00+00:00");
    SEQ("*/15 * * * *", NULL, "2026-01-01T00:00Z", "2026-01-01T00:15:00+00:00",
        "2026-01-01T00:30:00+00:00", "2026-01-01T00:45:00+00:00", "2026-01-01T01:00:00+00:00");
    SEQ("5/15 * * * *", NULL, "2026-01-01T00:00Z", "2026-01-01T00:05:00+00:00",
        "2026-01-01T00:20:00+00:00", "2026-01-01T00:35:00+00:00", "2026-01-01T00:50:00+00:00",
        "2026-01-01T01:05:00+00:00");
    SEQ("1-10/3 * * * *", NULL, "2026-01-01T00:00Z", "2026-01-01T00:01:00+00:00",
        "2026-01-01T00:04:00+00:00", "2026-01-01T00:07:00+00:00", "2026-01-01T00:10:00+00:00",
        "2026-01-01T01:01:00+00:00");
    /* list of mixed items: {0,1,2,3,4,20,40,58} */
    SEQ("1,2-4,*/20,58 * * * *", NULL, "2026-01-01T00:00Z", "2026-01-01T00:01:00+00:00",
        "2026-01-01T00:02:00+00:00", "2026-01-01T00:03:00+00:00", "2026-01-01T00:04:00+00:00",
        "2026-01-01T00:20:00+00:00", "2026-01-01T00:40:00+00:00", "2026-01-01T00:58:00+00:00",
        "2026-01-01T01:00:00+00:00");
    /* a step as large as the range: 0 and 59 */
    SEQ("*/59 * * * *", NULL, "2026-01-01T00:00Z", "2026-01-01T00:59:00+00:00",
        "2026-01-01T01:00:00+00:00");
    /* duplicates in a list are harmless */
    SEQ("7,7,7 * * * *", NULL, "2026-01-01T00:00Z", "2026-01-01T00:07:00+00:00",
        "2026-01-01T01:07:00+00:00");
}

static void test_hour_field(void **state)
{
    SEQ("0 3 * * *", NULL, "2026-01-01T00:00Z", "2026-01-01T03:00:00+00:00",
        "2026-01-02T03:00:00+00:00");
    SEQ("0 */6 * * *", NULL, "2026-01-01T00:00Z", "2026-01-01T06:00:00+00:00",
        "2026-01-01T12:00:00+00:00", "2026-01-01T18:00:00+00:00", "2026-01-02T00:00:00+00:00");
    SEQ("30 9-17/4 * * *", NULL, "2026-01-01T00:00Z", "2026-01-01T09:30:00+00:00",
        "2026-01-01T13:30:00+00:00", "2026-01-01T17:30:00+00:00", "2026-01-02T09:30:00+00:00");
    SEQ("0 23 * * *", NULL, "2026-01-01T23:00Z", "2026-01-02T23:00:00+00:00");
    SEQ("15,45 8,20 * * *", NULL, "2026-01-01T08:30Z", "2026-01-01T08:45:00+00:00",
        "2026-01-01T20:15:00+00:00", "2026-01-01T20:45:00+00:00", "2026-01-02T08:15:00+00:00");
    SEQ("0 20/2 * * *", NULL, "2026-01-01T00:00Z", "2026-01-01T20:00:00+00:00",
        "2026-01-01T22:00:00+00:00", "2026-01-02T20:00:00+00:00");
    /* minute wraps into the next allowed hour */
    SEQ("10 1,5 * * *", NULL, "2026-01-01T01:11Z", "2026-01-01T05:10:00+00:00");
}

static void test_dom_field(void **state)
{
    SEQ("0 0 1 * *", NULL, "2026-01-01T00:00Z", "2026-02-01T00:00:00+00:00",
        "2026-03-01T00:00:00+00:00");
    SEQ("0 12 1,15 * *", NULL, "2026-01-01T00:00Z", "2026-01-01T12:00:00+00:00",
        "2026-01-15T12:00:00+00:00", "2026-02-01T12:00:00+00:00");
    SEQ("0 0 10-12 * *", NULL, "2026-01-01T00:00Z", "2026-01-10T00:00:00+00:00",
        "2026-01-11T00:00:00+00:00", "2026-01-12T00:00:00+00:00", "2026-02-10T00:00:00+00:00");
    SEQ("0 0 */10 * *", NULL, "2026-01-01T00:00Z", "2026-01-11T00:00:00+00:00",
        "2026-01-21T00:00:00+00:00", "2026-01-31T00:00:00+00:00", "2026-02-01T00:00:00+00:00",
        "2026-02-11T00:00:00+00:00", "2026-02-21T00:00:00+00:00", "2026-03-01T00:00:00+00:00");
    SEQ("0 0 28/2 * *", NULL, "2026-01-01T00:00Z", "2026-01-28T00:00:00+00:00",
        "2026-01-30T00:00:00+00:00", "2026-02-28T00:00:00+00:00", "2026-03-28T00:00:00+00:00",
        "2026-03-30T00:00:00+00:00");
}

static void test_month_field(void **state)
{
    SEQ("0 0 1 6 *", NULL, "2026-01-01T00:00Z", "2026-06-01T00:00:00+00:00",
        "2027-06-01T00:00:00+00:00");
    SEQ("0 0 1 */3 *", NULL, "2026-01-01T00:00Z", "2026-04-01T00:00:00+00:00",
        "2026-07-01T00:00:00+00:00", "2026-10-01T00:00:00+00:00", "2027-01-01T00:00:00+00:00");
    SEQ("0 0 1 2-3,11 *", NULL, "2026-01-01T00:00Z", "2026-02-01T00:00:00+00:00",
        "2026-03-01T00:00:00+00:00", "2026-11-01T00:00:00+00:00", "2027-02-01T00:00:00+00:00");
    /* inside an unmatched month: jump to the first minute of the next */
    SEQ("* * * 3 *", NULL, "2026-01-15T12:34Z", "2026-03-01T00:00:00+00:00",
        "2026-03-01T00:01:00+00:00");
    SEQ("* * * 3 *", NULL, "2026-03-31T23:59Z", "2027-03-01T00:00:00+00:00");
}

static void test_dow_field(void **state)
{
    /* 2026-01-01 is a Thursday: Mondays of January are 5, 12, 19, 26 */
    SEQ("0 9 * * 1", NULL, "2026-01-01T00:00Z", "2026-01-05T09:00:00+00:00",
        "2026-01-12T09:00:00+00:00");
    SEQ("0 9 * * 1-5", NULL, "2026-01-02T10:00Z", "2026-01-05T09:00:00+00:00",
        "2026-01-06T09:00:00+00:00", "2026-01-07T09:00:00+00:00", "2026-01-08T09:00:00+00:00",
        "2026-01-09T09:00:00+00:00", "2026-01-12T09:00:00+00:00");
    SEQ("0 0 * * 6,0", NULL, "2026-01-01T00:00Z", "2026-01-03T00:00:00+00:00",
        "2026-01-04T00:00:00+00:00", "2026-01-10T00:00:00+00:00");
    /* every 2nd day of 0-6: Sun, Tue, Thu, Sat */
    SEQ("0 0 * * */2", NULL, "2026-01-01T00:00Z", "2026-01-03T00:00:00+00:00",
        "2026-01-04T00:00:00+00:00", "2026-01-06T00:00:00+00:00", "2026-01-08T00:00:00+00:00");
    /* 1/3: 1, 4 (Mon, Thu) */
    SEQ("0 0 * * 1/3", NULL, "2026-01-01T00:00Z", "2026-01-05T00:00:00+00:00",
        "2026-01-08T00:00:00+00:00", "2026-01-12T00:00:00+00:00");
}

static void test_sunday_0_and_7(void **state)
{
    /* Sundays of January 2026: 4, 11, 18, 25 */
    static const char *const forms[] = { "0 0 * * 0", "0 0 * * 7", "0 0 * * sun",
                                         "0 0 * * SUN", "0 0 * * Sun", "0 0 * * 0,7",
                                         "0 0 * * 7-7" };
    for (size_t i = 0; i < sizeof forms / sizeof *forms; i++)
        SEQ(forms[i], NULL, "2026-01-01T00:00Z", "2026-01-04T00:00:00+00:00",
            "2026-01-11T00:00:00+00:00");
    /* ranges ending on 7, or on Sunday written 0 or by name */
    static const char *const weekend[] = { "0 0 * * 5-7", "0 0 * * fri-sun", "0 0 * * 5-0",
                                           "0 0 * * FRI-SUN" };
    for (size_t i = 0; i < sizeof weekend / sizeof *weekend; i++)
        SEQ(weekend[i], NULL, "2026-01-01T00:00Z", "2026-01-02T00:00:00+00:00",
            "2026-01-03T00:00:00+00:00", "2026-01-04T00:00:00+00:00",
            "2026-01-09T00:00:00+00:00");
    /* 0-7 and 1-7 are every day */
    SEQ("0 0 * * 1-7", NULL, "2026-01-01T00:00Z", "2026-01-02T00:00:00+00:00",
        "2026-01-03T00:00:00+00:00", "2026-01-04T00:00:00+00:00", "2026-01-05T00:00:00+00:00");
}

static void test_names_any_case(void **state)
{
    static const char *const months[] = { "jan", "feb", "mar", "apr", "may", "jun",
                                          "jul", "aug", "sep", "oct", "nov", "dec" };
    for (int m = 0; m < 12; m++) {
        char e1[32], e2[32], want[64], after[32];
        char up[4], mixed[4];
        for (int k = 0; k < 3; k++) {
            up[k] = (char)(months[m][k] - 32);
            mixed[k] = k == 0 ? up[k] : months[m][k];
        }
        up[3] = mixed[3] = '\0';
        snprintf(e1, sizeof e1, "0 0 1 %s *", up);
        snprintf(e2, sizeof e2, "0 0 1 %s *", mixed);
        snprintf(after, sizeof after, "2025-12-31T00:00Z");
        snprintf(want, sizeof want, "2026-%02d-01T00:00:00+00:00", m + 1);
        SEQ(e1, NULL, after, want);
        SEQ(e2, NULL, after, want);
        snprintf(e1, sizeof e1, "0 0 1 %s *", months[m]);
        SEQ(e1, NULL, after, want);
    }
    static const char *const days[] = { "sun", "mon", "tue", "wed", "thu", "fri", "sat" };
    /* 2026-01-04 is a Sunday, so day i falls on 2026-01-(4+i) */
    for (int d = 0; d < 7; d++) {
        char e[32], want[64];
        snprintf(e, sizeof e, "0 0 * * %c%c%c", days[d][0] - 32, days[d][1], days[d][2] - 32);
        snprintf(want, sizeof want, "2026-01-%02dT00:00:00+00:00", 4 + d);
        SEQ(e, NULL, "2026-01-03T12:00Z", want);
    }
    SEQ("0 0 1 JAN-mar *", NULL, "2026-01-01T00:00Z", "2026-02-01T00:00:00+00:00",
        "2026-03-01T00:00:00+00:00", "2027-01-01T00:00:00+00:00");
    SEQ("0 0 1 jan,Jul *", NULL, "2026-01-01T00:00Z", "2026-07-01T00:00:00+00:00",
        "2027-01-01T00:00:00+00:00");
    SEQ("0 0 * * Mon-Fri/2", NULL, "2026-01-04T00:00Z", "2026-01-05T00:00:00+00:00",
        "2026-01-07T00:00:00+00:00", "2026-01-09T00:00:00+00:00", "2026-01-12T00:00:00+00:00");
    /* names and numbers mixed in one range */
    SEQ("0 0 1 2-apr *", NULL, "2026-01-01T00:00Z", "2026-02-01T00:00:00+00:00",
        "2026-03-01T00:00:00+00:00", "2026-04-01T00:00:00+00:00", "2027-02-01T00:00:00+00:00");
}

static void test_macros(void **state)
{
    static const struct {
        const char *macro, *same;
    } m[] = {
        { "@yearly", "0 0 1 1 *" },  { "@annually", "0 0 1 1 *" }, { "@monthly", "0 0 1 * *" },
        { "@weekly", "0 0 * * 0" },  { "@daily", "0 0 * * *" },    { "@midnight", "0 0 * * *" },
        { "@hourly", "0 * * * *" },  { "@DAILY", "0 0 * * *" },    { "@Hourly", "0 * * * *" },
        { "  @weekly  ", "0 0 * * 0" },
    };
    for (size_t i = 0; i < sizeof m / sizeof *m; i++) {
        struct cron *a = P(m[i].macro, NULL), *b = P(m[i].same, NULL);
        int64_t ta = T("2026-01-01T00:00Z"), tb = ta;
        for (int k = 0; k < 5; k++) {
            assert_int_equal(cron_next(a, ta, &ta), 0);
            assert_int_equal(cron_next(b, tb, &tb), 0);
            if (ta != tb)
                fail_msg("%s differs from %s at step %d", m[i].macro, m[i].same, k);
        }
        cron_free(a);
        cron_free(b);
        ncases++;
    }
    SEQ("@yearly", NULL, "2026-01-01T00:00Z", "2027-01-01T00:00:00+00:00",
        "2028-01-01T00:00:00+00:00");
    SEQ("@monthly", NULL, "2026-01-15T00:00Z", "2026-02-01T00:00:00+00:00");
    SEQ("@weekly", NULL, "2026-01-01T00:00Z", "2026-01-04T00:00:00+00:00",
        "2026-01-11T00:00:00+00:00");
    SEQ("@daily", NULL, "2026-01-01T00:00Z", "2026-01-02T00:00:00+00:00");
    SEQ("@hourly", NULL, "2026-01-01T00:00Z", "2026-01-01T01:00:00+00:00");
    SEQ("@midnight", "Europe/Berlin", "2026-01-01T00:00Z", "2026-01-02T00:00:00+01:00");
}

/* ---- day-of-month / day-of-week ----------------------------------------- */

static void test_dom_dow_or(void **state)
{
    /* both restricted: the 13th OR any Friday (Fridays of Jan 2026: 2, 9, 16, 23, 30) */
    SEQ("0 0 13 * fri", NULL, "2026-01-01T00:00Z", "2026-01-02T00:00:00+00:00",
        "2026-01-09T00:00:00+00:00", "2026-01-13T00:00:00+00:00", "2026-01-16T00:00:00+00:00",
        "2026-01-23T00:00:00+00:00", "2026-01-30T00:00:00+00:00", "2026-02-06T00:00:00+00:00",
        "2026-02-13T00:00:00+00:00", "2026-02-20T00:00:00+00:00");
    /* the 1st and 15th and every Monday */
    SEQ("0 0 1,15 * 1", NULL, "2026-01-01T00:00Z", "2026-01-05T00:00:00+00:00",
        "2026-01-12T00:00:00+00:00", "2026-01-15T00:00:00+00:00", "2026-01-19T00:00:00+00:00",
        "2026-01-26T00:00:00+00:00", "2026-02-01T00:00:00+00:00", "2026-02-02T00:00:00+00:00");
    /* 1-31 is restricted though it covers every day: OR makes it every day */
    SEQ("0 0 1-31 * mon", NULL, "2026-01-01T00:00Z", "2026-01-02T00:00:00+00:00",
        "2026-01-03T00:00:00+00:00");
    /* only day-of-week restricted: only Mondays */
    SEQ("0 0 * * mon", NULL, "2026-01-01T00:00Z", "2026-01-05T00:00:00+00:00",
        "2026-01-12T00:00:00+00:00");
    /* only day-of-month restricted: only the 5th */
    SEQ("0 0 5 * *", NULL, "2026-01-01T00:00Z", "2026-01-05T00:00:00+00:00",
        "2026-02-05T00:00:00+00:00");
    /* a field starting with '*' is unrestricted (Vixie cron, cronie): odd days
     * AND Monday.  Mondays: Jan 5 12 19 26, Feb 2 9 16 23. */
    SEQ("0 0 */2 * mon", NULL, "2026-01-01T00:00Z", "2026-01-05T00:00:00+00:00",
        "2026-01-19T00:00:00+00:00", "2026-02-09T00:00:00+00:00", "2026-02-23T00:00:00+00:00");
    /* and the other way round: the 13th AND any weekday (a day-of-week starting with '*') */
    SEQ("0 0 13 * */1", NULL, "2026-01-01T00:00Z", "2026-01-13T00:00:00+00:00",
        "2026-02-13T00:00:00+00:00");
    /* Friday the 13th needs AND, which cron cannot say: "13 * fri" is OR */
    /* both restricted in a month with no 31st: the weekday still fires */
    SEQ("0 0 31 2 mon", NULL, "2026-01-01T00:00Z", "2026-02-02T00:00:00+00:00",
        "2026-02-09T00:00:00+00:00", "2026-02-16T00:00:00+00:00", "2026-02-23T00:00:00+00:00",
        "2027-02-01T00:00:00+00:00");
    /* dom, dow OR within a restricted month */
    SEQ("0 0 1 jun sun", NULL, "2026-01-01T00:00Z", "2026-06-01T00:00:00+00:00",
        "2026-06-07T00:00:00+00:00", "2026-06-14T00:00:00+00:00");
}

/* ---- month lengths, leap years, rollover -------------------------------- */

static void test_leap_years(void **state)
{
    /* the example from the issue: next after 2027-03-01 is 2028-02-29 */
    SEQ("0 0 29 2 *", NULL, "2027-03-01T00:00Z", "2028-02-29T00:00:00+00:00",
        "2032-02-29T00:00:00+00:00", "2036-02-29T00:00:00+00:00");
    SEQ("0 0 29 2 *", NULL, "2024-02-29T00:00Z", "2028-02-29T00:00:00+00:00");
    /* 2100 is not a leap year: 2096 -> 2104 */
    SEQ("0 0 29 2 *", NULL, "2096-03-01T00:00Z", "2104-02-29T00:00:00+00:00");
    /* 2000 was (divisible by 400) */
    SEQ("0 0 29 2 *", NULL, "1999-01-01T00:00Z", "2000-02-29T00:00:00+00:00",
        "2004-02-29T00:00:00+00:00");
    /* 29th of every month: February only in leap years */
    SEQ("0 0 29 * *", NULL, "2026-01-29T00:00Z", "2026-03-29T00:00:00+00:00");
    SEQ("0 0 29 * *", NULL, "2028-01-29T00:00Z", "2028-02-29T00:00:00+00:00",
        "2028-03-29T00:00:00+00:00");
    /* last days of February */
    SEQ("0 0 28,29 2 *", NULL, "2027-01-01T00:00Z", "2027-02-28T00:00:00+00:00",
        "2028-02-28T00:00:00+00:00", "2028-02-29T00:00:00+00:00", "2029-02-28T00:00:00+00:00");
    /* a day count: every day of Feb 2028 at noon ends on the 29th, then March */
    SEQ("0 12 * 2,3 *", NULL, "2028-02-28T13:00Z", "2028-02-29T12:00:00+00:00",
        "2028-03-01T12:00:00+00:00");
    SEQ("0 12 * 2,3 *", NULL, "2027-02-28T13:00Z", "2027-03-01T12:00:00+00:00");
    /* Feb 29 OR Monday: both restricted, fires on Mondays in non-leap years */
    SEQ("0 0 29 2 mon", NULL, "2027-01-01T00:00Z", "2027-02-01T00:00:00+00:00");
}

static void test_month_lengths(void **state)
{
    /* the 31st skips the 30-day months and February */
    SEQ("0 0 31 * *", NULL, "2026-01-31T00:00Z", "2026-03-31T00:00:00+00:00",
        "2026-05-31T00:00:00+00:00", "2026-07-31T00:00:00+00:00", "2026-08-31T00:00:00+00:00",
        "2026-10-31T00:00:00+00:00", "2026-12-31T00:00:00+00:00", "2027-01-31T00:00:00+00:00");
    /* the 30th skips February only */
    SEQ("0 0 30 * *", NULL, "2026-01-30T00:00Z", "2026-03-30T00:00:00+00:00",
        "2026-04-30T00:00:00+00:00");
    /* the 31st in a list that also has a 30-day month and a 31-day month */
    SEQ("0 0 31 4,5 *", NULL, "2026-01-01T00:00Z", "2026-05-31T00:00:00+00:00",
        "2027-05-31T00:00:00+00:00");
    /* every minute of a day: last minute of a 30-day month, then next month */
    SEQ("59 23 * 4,6 *", NULL, "2026-04-30T23:58Z", "2026-04-30T23:59:00+00:00",
        "2026-06-01T23:59:00+00:00");
}

static void test_rollover(void **state)
{
    SEQ("59 23 31 12 *", NULL, "2026-12-31T23:59Z", "2027-12-31T23:59:00+00:00");
    SEQ("0 0 1 1 *", NULL, "2026-12-31T23:59:59Z", "2027-01-01T00:00:00+00:00");
    SEQ("* * * * *", NULL, "2026-12-31T23:59:30Z", "2027-01-01T00:00:00+00:00");
    SEQ("0 0 * 1 *", NULL, "2026-01-31T00:00Z", "2027-01-01T00:00:00+00:00");
    SEQ("*/20 23 31 dec *", NULL, "2026-12-31T23:30Z", "2026-12-31T23:40:00+00:00",
        "2027-12-31T23:00:00+00:00");
    /* hour rollover inside a day and day rollover at a month's end */
    SEQ("0 0 * * *", NULL, "2026-02-28T12:00Z", "2026-03-01T00:00:00+00:00");
    SEQ("30 0 * * *", NULL, "2028-02-28T01:00Z", "2028-02-29T00:30:00+00:00");
}

static void test_far_dates(void **state)
{
    SEQ("0 0 1 1 *", NULL, "9998-06-01T00:00Z", "9999-01-01T00:00:00+00:00");
    struct cron *c = P("0 0 1 1 *", NULL);
    int64_t nx = 0;
    assert_int_equal(cron_next(c, T("9999-06-01T00:00Z"), &nx), -ERANGE);
    cron_free(c);
    c = P("0 0 29 2 *", NULL);
    assert_int_equal(cron_next(c, T("9996-03-01T00:00Z"), &nx), -ERANGE);
    cron_free(c);
    SEQ("0 0 1 1 *", NULL, "1900-06-01T00:00Z", "1901-01-01T00:00:00+00:00");
}

/* ---- rejections and error messages ------------------------------------- */

static void test_never_fires(void **state)
{
    ERRC("0 0 30 2 *", KILN_EINVALID,
         "cron: never fires: day-of-month '30' does not occur in month '2'");
    ERRC("0 0 31 2 *", KILN_EINVALID,
         "cron: never fires: day-of-month '31' does not occur in month '2'");
    ERRC("0 0 31 4,6,9,11 *", KILN_EINVALID,
         "cron: never fires: day-of-month '31' does not occur in month '4,6,9,11'");
    ERRC("0 0 30,31 feb *", KILN_EINVALID,
         "cron: never fires: day-of-month '30,31' does not occur in month 'feb'");
    ERRC("0 0 31 apr-jun/2 *", KILN_EINVALID,
         "cron: never fires: day-of-month '31' does not occur in month 'apr-jun/2'");
    ERRC("0 0 31 Sep *", KILN_EINVALID,
         "cron: never fires: day-of-month '31' does not occur in month 'Sep'");
    /* these can fire */
    static const char *const ok[] = { "0 0 31 * *",      "0 0 29 2 *",     "0 0 30 2 mon",
                                      "0 0 31 4,5 *",    "0 0 30,31 2,3 *", "0 0 28-31 2 *",
                                      "0 0 */30 2 *",    "0 0 31 */2 *",   "0 0 29-31 feb *" };
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
        struct cron *c = P(ok[i], NULL);
        int64_t nx;
        assert_int_equal(cron_next(c, T("2026-01-01T00:00Z"), &nx), 0);
        cron_free(c);
        ncases++;
    }
}

static void test_errors(void **state)
{
    ERR("", "cron: empty expression");
    ERR("   \t ", "cron: empty expression");
    ERR("0 0 * *", "cron: expected 5 fields, got 4");
    ERR("0 0 * * * *", "cron: expected 5 fields, got 6");
    ERR("0", "cron: expected 5 fields, got 1");
    ERR("0 0 * * * /bin/true", "cron: expected 5 fields, got 6");
    ERR("61 * * * *", "cron: minute field: '61' is out of range 0-59");
    ERR("60 * * * *", "cron: minute field: '60' is out of range 0-59");
    ERR("0 24 * * *", "cron: hour field: '24' is out of range 0-23");
    ERR("0 0 0 * *", "cron: day-of-month field: '0' is out of range 1-31");
    ERR("0 0 32 * *", "cron: day-of-month field: '32' is out of range 1-31");
    ERR("0 0 * 0 *", "cron: month field: '0' is out of range 1-12");
    ERR("0 0 * 13 *", "cron: month field: '13' is out of range 1-12");
    ERR("0 0 * * 8", "cron: day-of-week field: '8' is out of range 0-7");
    ERR("0 0 * * 99999999999999999999", "cron: day-of-week field: '99999999999999999999' is out of range 0-7");
    ERR("0 0 * * fry", "cron: day-of-week field: unknown name 'fry'");
    ERR("0 0 * * monday", "cron: day-of-week field: unknown name 'monday'");
    ERR("0 0 * janu *", "cron: month field: unknown name 'janu'");
    ERR("0 0 * jan-foo *", "cron: month field: unknown name 'foo'");
    ERR("0 0 * * mon-xyz", "cron: day-of-week field: unknown name 'xyz'");
    ERR("a * * * *", "cron: minute field: 'a' is not a number");
    ERR("jan * * * *", "cron: minute field: 'jan' is not a number");
    ERR("0 mon * * *", "cron: hour field: 'mon' is not a number");
    ERR("0 0 1st * *", "cron: day-of-month field: '1st' is not a number");
    ERR("0 0 ? * *", "cron: day-of-month field: '?' is not a number");
    ERR("0 0 L * *", "cron: day-of-month field: 'L' is not a number");
    ERR("-5 * * * *", "cron: minute field: '-5' is not a number");
    ERR("5- * * * *", "cron: minute field: '5-' is not a number");
    ERR("1-2-3 * * * *", "cron: minute field: '2-3' is not a number");
    ERR("*-5 * * * *", "cron: minute field: '*' is not a number");
    ERR("1,,2 * * * *", "cron: minute field: empty list item in '1,,2'");
    ERR("1, * * * *", "cron: minute field: empty list item in '1,'");
    ERR(",1 * * * *", "cron: minute field: empty list item in ',1'");
    ERR("*/0 * * * *", "cron: minute field: step '0' must be at least 1");
    ERR("*/60 * * * *", "cron: minute field: step '60' is larger than the field's range 0-59");
    ERR("0 */24 * * *", "cron: hour field: step '24' is larger than the field's range 0-23");
    ERR("0 0 * */12 *", "cron: month field: step '12' is larger than the field's range 1-12");
    ERR("0 0 * * */7", "cron: day-of-week field: step '7' is larger than the field's range 0-6");
    ERR("*/ * * * *", "cron: minute field: '*/' has no step after '/'");
    ERR("*/x * * * *", "cron: minute field: step 'x' is not a number");
    ERR("*/5/2 * * * *", "cron: minute field: step '5/2' is not a number");
    ERR("*/-1 * * * *", "cron: minute field: step '-1' is not a number");
    ERR("0 5-1 * * *", "cron: hour field: range '5-1' runs backwards");
    ERR("0 0 * dec-jan *", "cron: month field: range 'dec-jan' runs backwards");
    ERR("0 0 * * sat-mon", "cron: day-of-week field: range 'sat-mon' runs backwards");
    ERR("0 0 * * 6-1", "cron: day-of-week field: range '6-1' runs backwards");
    ERR("@reboot", "cron: unknown macro '@reboot' (known: @yearly @annually @monthly @weekly "
                   "@daily @midnight @hourly)");
    ERR("@every 5m", "cron: unknown macro '@every 5m' (known: @yearly @annually @monthly "
                     "@weekly @daily @midnight @hourly)");
    ERR("@", "cron: unknown macro '@' (known: @yearly @annually @monthly @weekly @daily "
             "@midnight @hourly)");
    /* the first bad field is the one named */
    ERR("99 99 * * *", "cron: minute field: '99' is out of range 0-59");
    ERR("0 0 * * 1 # comment", "cron: expected 5 fields, got 7");
    struct kiln_err err = { 0 };
    struct cron *c = NULL;
    assert_int_equal(cron_parse(NULL, NULL, &c, &err), KILN_EPARSE);
    assert_null(c);
    /* tabs and extra spaces between fields are fine */
    SEQ("\t0  12\t* *   *  ", NULL, "2026-01-01T00:00Z", "2026-01-01T12:00:00+00:00");
}

static void test_tz_errors(void **state)
{
    TZERR("../etc/passwd", "cron: invalid time zone name '../etc/passwd'");
    TZERR("/etc/localtime", "cron: invalid time zone name '/etc/localtime'");
    TZERR("Europe/../../etc/passwd", "cron: invalid time zone name 'Europe/../../etc/passwd'");
    TZERR("Europe/./Berlin", "cron: invalid time zone name 'Europe/./Berlin'");
    TZERR("Europe//Berlin", "cron: invalid time zone name 'Europe//Berlin'");
    TZERR("Europe/", "cron: invalid time zone name 'Europe/'");
    TZERR("Europe/Berlin ", "cron: invalid time zone name 'Europe/Berlin '");
    TZERR("Europe\\Berlin", "cron: invalid time zone name 'Europe\\Berlin'");
    TZERR("-x", "cron: invalid time zone name '-x'");
    TZERR_PREFIX("Mars/Olympus_Mons", "cron: unknown time zone 'Mars/Olympus_Mons' (no file ");
    TZERR_PREFIX("Europe", "cron: unknown time zone 'Europe' (no file ");
    TZERR_PREFIX("europe/berlin", "cron: unknown time zone 'europe/berlin'");
    TZERR_PREFIX("zone.tab", "cron: time zone file ");
    TZERR_PREFIX("right/UTC", "cron: time zone file ");
    struct kiln_err err = { 0 };
    struct cron *c = NULL;
    assert_int_equal(cron_parse("0 0 * * *", "right/UTC", &c, &err), KILN_EINVALID);
    assert_non_null(strstr(err.msg, "leap-second zones (right/...) are not supported"));
    kiln_err_clear(&err);
    assert_int_equal(cron_parse("0 0 * * *", "zone.tab", &c, &err), KILN_EINVALID);
    assert_non_null(strstr(err.msg, "not a TZif file"));
    /* a syntax error is reported before the zone */
    kiln_err_clear(&err);
    assert_int_equal(cron_parse("61 0 * * *", "Mars/Base", &c, &err), KILN_EPARSE);
    assert_string_equal(err.msg, "cron: minute field: '61' is out of range 0-59");
    /* UTC needs no tz database; other spellings come from it */
    static const char *const utc[] = { NULL, "", "UTC", "Etc/UTC", "GMT", "Etc/GMT+0" };
    for (size_t i = 0; i < sizeof utc / sizeof *utc; i++) {
        SEQ("0 12 * * *", utc[i], "2026-07-01T00:00Z", "2026-07-01T12:00:00+00:00");
    }
    c = P("0 0 * * *", NULL);
    assert_string_equal(cron_tz_name(c), "UTC");
    cron_free(c);
    c = P("0 0 * * *", "Asia/Tokyo");
    assert_string_equal(cron_tz_name(c), "Asia/Tokyo");
    cron_free(c);
}

/* ---- time zones and DST ------------------------------------------------- */

static void test_fixed_zones(void **state)
{
    SEQ("0 9 * * *", "Asia/Kolkata", "2026-01-01T00:00Z", "2026-01-01T09:00:00+05:30",
        "2026-01-02T09:00:00+05:30");
    SEQ("0 0 * * *", "Asia/Tokyo", "2026-01-01T00:00Z", "2026-01-02T00:00:00+09:00");
    SEQ("30 23 31 12 *", "Pacific/Kiritimati", "2026-06-01T00:00Z",
        "2026-12-31T23:30:00+14:00");
    SEQ("0 0 1 1 *", "Etc/GMT+12", "2026-06-01T00:00Z", "2027-01-01T00:00:00-12:00");
    /* no DST in Brazil since 2019: the footer has no rule */
    SEQ("0 0 * * *", "America/Sao_Paulo", "2030-01-10T12:00Z", "2030-01-11T00:00:00-03:00");
    /* Chatham: +12:45 in winter, +13:45 in summer */
    SEQ("0 12 1 1,7 *", "Pacific/Chatham", "2026-06-01T00:00Z", "2026-07-01T12:00:00+12:45",
        "2027-01-01T12:00:00+13:45");
}

static void test_dst_new_york(void **state)
{
    const char *z = "America/New_York";
    /* spring forward: 02:30 does not exist on Mar 8, fires once at 03:00 EDT */
    SEQ("30 2 * * *", z, "2026-03-07T00:00-05:00", "2026-03-07T02:30:00-05:00",
        "2026-03-08T03:00:00-04:00", "2026-03-09T02:30:00-04:00");
    SEQ("0 2 * * *", z, "2026-03-07T12:00-05:00", "2026-03-08T03:00:00-04:00",
        "2026-03-09T02:00:00-04:00");
    /* several missing times collapse onto one firing */
    SEQ("*/15 2 * * *", z, "2026-03-08T00:00-05:00", "2026-03-08T03:00:00-04:00",
        "2026-03-09T02:00:00-04:00");
    SEQ("* 2 * * *", z, "2026-03-08T01:59-05:00", "2026-03-08T03:00:00-04:00",
        "2026-03-09T02:00:00-04:00");
    /* a missing time and 03:00 itself: one firing */
    SEQ("0,30 2,3 * * *", z, "2026-03-08T00:00-05:00", "2026-03-08T03:00:00-04:00",
        "2026-03-08T03:30:00-04:00", "2026-03-09T02:00:00-04:00");
    /* the gap firing is strictly after: starting at the transition skips it */
    SEQ("30 2 * * *", z, "2026-03-08T03:00-04:00", "2026-03-09T02:30:00-04:00");
    SEQ("30 2 * * *", z, "2026-03-08T01:59:59-05:00", "2026-03-08T03:00:00-04:00");
    /* fall back: 01:30 occurs twice on Nov 1, fires once (the first, EDT) */
    SEQ("30 1 * * *", z, "2026-10-31T12:00-04:00", "2026-11-01T01:30:00-04:00",
        "2026-11-02T01:30:00-05:00");
    /* between the two passes, or inside the second: the next is the next day */
    SEQ("30 1 * * *", z, "2026-11-01T01:45-04:00", "2026-11-02T01:30:00-05:00");
    SEQ("30 1 * * *", z, "2026-11-01T01:10-05:00", "2026-11-02T01:30:00-05:00");
    SEQ("30 1 * * *", z, "2026-11-01T01:00-04:00", "2026-11-01T01:30:00-04:00");
    /* a restricted hour list through the repeated hour: 01:00 once */
    SEQ("0 1-3 * * *", z, "2026-11-01T00:00-04:00", "2026-11-01T01:00:00-04:00",
        "2026-11-01T02:00:00-05:00", "2026-11-01T03:00:00-05:00", "2026-11-02T01:00:00-05:00");
    /* times around the change that exist once */
    SEQ("59 0 * * *", z, "2026-11-01T00:00-04:00", "2026-11-01T00:59:00-04:00");
    SEQ("0 2 * * *", z, "2026-11-01T00:00-04:00", "2026-11-01T02:00:00-05:00");
    /* midnight jobs never notice */
    SEQ("0 0 * * *", z, "2026-03-07T12:00-05:00", "2026-03-08T00:00:00-05:00",
        "2026-03-09T00:00:00-04:00");
}

static void test_dst_hourly_new_york(void **state)
{
    const char *z = "America/New_York";
    /* hourly through spring forward: 01:00 EST, then 03:00 EDT (one hour later) */
    SEQ("0 * * * *", z, "2026-03-08T00:30-05:00", "2026-03-08T01:00:00-05:00",
        "2026-03-08T03:00:00-04:00", "2026-03-08T04:00:00-04:00");
    /* hourly through fall back: both 01:00s, each an hour apart */
    SEQ("0 * * * *", z, "2026-11-01T00:30-04:00", "2026-11-01T01:00:00-04:00",
        "2026-11-01T01:00:00-05:00", "2026-11-01T02:00:00-05:00");
    SEQ("*/30 * * * *", z, "2026-11-01T00:00-04:00", "2026-11-01T00:30:00-04:00",
        "2026-11-01T01:00:00-04:00", "2026-11-01T01:30:00-04:00", "2026-11-01T01:00:00-05:00",
        "2026-11-01T01:30:00-05:00", "2026-11-01T02:00:00-05:00");
    /* half past every hour through the gap: 01:30, 03:00 (for 02:30), 03:30 */
    SEQ("30 * * * *", z, "2026-03-08T00:45-05:00", "2026-03-08T01:30:00-05:00",
        "2026-03-08T03:00:00-04:00", "2026-03-08T03:30:00-04:00");
    /* every hour as a range is also every hour */
    SEQ("15 0-23 * * *", z, "2026-11-01T01:20-04:00", "2026-11-01T01:15:00-05:00",
        "2026-11-01T02:15:00-05:00");
    /* every minute through fall back: 120 firings in the two passes of 01:xx,
     * and through spring forward one firing stands for the missing hour */
    struct cron *c = P("* * * * *", z);
    int64_t t = T("2026-11-01T01:00-04:00") - 1, end = T("2026-11-01T02:00-05:00");
    int n = 0;
    while (cron_next(c, t, &t) == 0 && t < end)
        n++;
    assert_int_equal(n, 120);
    t = T("2026-03-08T01:00-05:00") - 1;
    end = T("2026-03-08T04:00-04:00");
    n = 0;
    while (cron_next(c, t, &t) == 0 && t < end)
        n++;
    assert_int_equal(n, 120); /* 01:00-01:59 EST, 03:00-03:59 EDT */
    cron_free(c);
    /* restricted hour: "* 1 * * *" fires 60 times on Nov 1, not 120 */
    c = P("* 1 * * *", z);
    t = T("2026-11-01T00:00-04:00");
    end = T("2026-11-01T03:00-05:00");
    n = 0;
    while (cron_next(c, t, &t) == 0 && t < end)
        n++;
    assert_int_equal(n, 60);
    cron_free(c);
    ncases += 3;
}

static void test_dst_berlin(void **state)
{
    const char *z = "Europe/Berlin";
    /* spring forward Mar 29 2026: 02:00-03:00 is missing */
    SEQ("30 2 * * *", z, "2026-03-28T12:00+01:00", "2026-03-29T03:00:00+02:00",
        "2026-03-30T02:30:00+02:00");
    SEQ("0,30 2,3 * * *", z, "2026-03-29T00:00+01:00", "2026-03-29T03:00:00+02:00",
        "2026-03-29T03:30:00+02:00", "2026-03-30T02:00:00+02:00");
    SEQ("0 3 * * *", z, "2026-03-28T12:00+01:00", "2026-03-29T03:00:00+02:00",
        "2026-03-30T03:00:00+02:00");
    /* fall back Oct 25 2026: 02:00-03:00 happens twice; 02:30 fires once */
    SEQ("30 2 * * *", z, "2026-10-24T12:00+02:00", "2026-10-25T02:30:00+02:00",
        "2026-10-26T02:30:00+01:00");
    SEQ("30 2 * * *", z, "2026-10-25T02:45+02:00", "2026-10-26T02:30:00+01:00");
    /* hourly through both */
    SEQ("0 * * * *", z, "2026-10-25T01:30+02:00", "2026-10-25T02:00:00+02:00",
        "2026-10-25T02:00:00+01:00", "2026-10-25T03:00:00+01:00");
    SEQ("0 * * * *", z, "2026-03-29T00:30+01:00", "2026-03-29T01:00:00+01:00",
        "2026-03-29T03:00:00+02:00", "2026-03-29T04:00:00+02:00");
    /* every two hours is not every hour: the repeated 02:00 fires once */
    SEQ("0 */2 * * *", z, "2026-10-25T01:00+02:00", "2026-10-25T02:00:00+02:00",
        "2026-10-25T04:00:00+01:00");
    /* a Sunday job on the change day (Oct 25 2026 is a Sunday) */
    SEQ("30 2 * * sun", z, "2026-10-18T12:00+02:00", "2026-10-25T02:30:00+02:00",
        "2026-11-01T02:30:00+01:00");
    /* the same rules in Amsterdam */
    SEQ("30 2 * * *", "Europe/Amsterdam", "2026-03-28T12:00+01:00",
        "2026-03-29T03:00:00+02:00");
}

static void test_dst_sydney(void **state)
{
    const char *z = "Australia/Sydney";
    /* southern hemisphere: spring forward in October (Oct 4 2026, 02:00 -> 03:00) */
    SEQ("30 2 * * *", z, "2026-10-03T12:00+10:00", "2026-10-04T03:00:00+11:00",
        "2026-10-05T02:30:00+11:00");
    SEQ("*/20 2 * * *", z, "2026-10-04T00:00+10:00", "2026-10-04T03:00:00+11:00",
        "2026-10-05T02:00:00+11:00");
    /* fall back in April (Apr 5 2026, 03:00 -> 02:00): 02:30 once */
    SEQ("30 2 * * *", z, "2026-04-04T12:00+11:00", "2026-04-05T02:30:00+11:00",
        "2026-04-06T02:30:00+10:00");
    SEQ("30 2 * * *", z, "2026-04-05T02:10+10:00", "2026-04-06T02:30:00+10:00");
    /* hourly: both 02:00s in April, 01:00 then 03:00 in October */
    SEQ("0 * * * *", z, "2026-04-05T01:30+11:00", "2026-04-05T02:00:00+11:00",
        "2026-04-05T02:00:00+10:00", "2026-04-05T03:00:00+10:00");
    SEQ("0 * * * *", z, "2026-10-04T00:30+10:00", "2026-10-04T01:00:00+10:00",
        "2026-10-04T03:00:00+11:00");
    /* summer is January: +11 */
    SEQ("0 12 1 1 *", z, "2026-06-01T00:00+10:00", "2027-01-01T12:00:00+11:00");
    SEQ("0 12 1 7 *", z, "2026-01-01T00:00+11:00", "2026-07-01T12:00:00+10:00");
    /* Melbourne follows the same rules */
    SEQ("30 2 * * *", "Australia/Melbourne", "2026-10-03T12:00+10:00",
        "2026-10-04T03:00:00+11:00");
}

static void test_dst_half_hour(void **state)
{
    const char *z = "Australia/Lord_Howe";
    /* spring: 02:00 +10:30 -> 02:30 +11; 02:15 does not exist, 02:30 does */
    SEQ("15 2 * * *", z, "2026-10-03T12:00+10:30", "2026-10-04T02:30:00+11:00",
        "2026-10-05T02:15:00+11:00");
    SEQ("15,30 2 * * *", z, "2026-10-04T00:00+10:30", "2026-10-04T02:30:00+11:00",
        "2026-10-05T02:15:00+11:00");
    /* fall back: 02:00 +11 -> 01:30 +10:30; 01:45 occurs twice, fires once */
    SEQ("45 1 * * *", z, "2026-04-04T12:00+11:00", "2026-04-05T01:45:00+11:00",
        "2026-04-06T01:45:00+10:30");
    /* every 15 minutes keeps its pace through the repeated half hour */
    SEQ("*/15 * * * *", z, "2026-04-05T01:20+11:00", "2026-04-05T01:30:00+11:00",
        "2026-04-05T01:45:00+11:00", "2026-04-05T01:30:00+10:30", "2026-04-05T01:45:00+10:30",
        "2026-04-05T02:00:00+10:30");
    /* Dublin: the "negative DST" zone (IST is standard time, GMT the winter rule) */
    SEQ("30 1 * * *", "Europe/Dublin", "2026-03-28T12:00Z", "2026-03-29T02:00:00+01:00",
        "2026-03-30T01:30:00+01:00");
    SEQ("30 1 * * *", "Europe/Dublin", "2026-10-24T12:00+01:00", "2026-10-25T01:30:00+01:00",
        "2026-10-26T01:30:00+00:00");
}

static void test_dst_future_rule(void **state)
{
    /* After 2037 the fat TZif files have no transitions: the footer rule
     * decides.  New York 2050: Mar 13 and Nov 6; Sydney 2050: Apr 3 and Oct 2;
     * Berlin 2050: Mar 27 and Oct 30. */
    SEQ("30 2 * * *", "America/New_York", "2050-03-12T12:00-05:00",
        "2050-03-13T03:00:00-04:00", "2050-03-14T02:30:00-04:00");
    SEQ("30 1 * * *", "America/New_York", "2050-11-05T12:00-04:00",
        "2050-11-06T01:30:00-04:00", "2050-11-07T01:30:00-05:00");
    SEQ("0 * * * *", "America/New_York", "2050-11-06T00:30-04:00",
        "2050-11-06T01:00:00-04:00", "2050-11-06T01:00:00-05:00", "2050-11-06T02:00:00-05:00");
    SEQ("30 2 * * *", "Australia/Sydney", "2050-10-01T12:00+10:00",
        "2050-10-02T03:00:00+11:00");
    SEQ("30 2 * * *", "Australia/Sydney", "2050-04-02T12:00+11:00",
        "2050-04-03T02:30:00+11:00", "2050-04-04T02:30:00+10:00");
    SEQ("30 2 * * *", "Europe/Berlin", "2050-03-26T12:00+01:00", "2050-03-27T03:00:00+02:00");
    SEQ("30 2 * * *", "Europe/Berlin", "2050-10-29T12:00+02:00", "2050-10-30T02:30:00+02:00",
        "2050-10-31T02:30:00+01:00");
    /* across the last explicit transition (2037) into the rule */
    SEQ("0 12 1 * *", "Europe/Berlin", "2037-09-15T00:00Z", "2037-10-01T12:00:00+02:00",
        "2037-11-01T12:00:00+01:00", "2037-12-01T12:00:00+01:00", "2038-01-01T12:00:00+01:00",
        "2038-02-01T12:00:00+01:00", "2038-03-01T12:00:00+01:00", "2038-04-01T12:00:00+02:00");
    /* a sparse expression far ahead, computed through many rule segments */
    SEQ("0 2 29 2 *", "America/New_York", "2090-01-01T00:00Z", "2092-02-29T02:00:00-05:00",
        "2096-02-29T02:00:00-05:00", "2104-02-29T02:00:00-05:00");
}

/* The zone's offset against glibc for instants from 1850 to 2150, which
 * covers LMT, the explicit transitions and the footer rule. */
static void test_offsets_match_glibc(void **state)
{
    static const char *const zones[] = {
        "America/New_York", "Europe/Berlin",       "Australia/Sydney", "Australia/Lord_Howe",
        "Europe/Dublin",    "Pacific/Chatham",     "America/Sao_Paulo", "Asia/Kolkata",
        "Africa/Casablanca", "America/Santiago",   "Asia/Tehran",       "Europe/Amsterdam",
        "Pacific/Apia",     "America/St_Johns",    "Antarctica/Troll",  "Asia/Gaza",
        "Europe/London",    "America/Los_Angeles", "Pacific/Auckland",  "Asia/Tokyo",
    };
    const char *old = getenv("TZ");
    char *saved = old ? strdup(old) : NULL;
    unsigned seed = 12345;
    for (size_t zi = 0; zi < sizeof zones / sizeof *zones; zi++) {
        setenv("TZ", zones[zi], 1);
        tzset();
        struct cron *c = P("* * * * *", zones[zi]);
        int64_t lo = T("1850-01-01T00:00Z") / US, hi = T("2150-01-01T00:00Z") / US;
        for (int k = 0; k < 20000; k++) {
            seed = seed * 1103515245u + 12345u;
            uint64_t r = ((uint64_t)seed << 16) ^ (uint64_t)(seed >> 3);
            seed = seed * 1103515245u + 12345u;
            r = r * 2654435761u + seed;
            time_t t = (time_t)(lo + (int64_t)(r % (uint64_t)(hi - lo)));
            struct tm tm;
            localtime_r(&t, &tm);
            int off = cron_utc_offset(c, (int64_t)t * US);
            if (off != tm.tm_gmtoff)
                fail_msg("%s at %lld: offset %d, glibc %ld", zones[zi], (long long)t, off,
                         tm.tm_gmtoff);
            /* and the formatted wall time */
            char got[64], want[64];
            cron_format_time(c, (int64_t)t * US, got, sizeof got);
            snprintf(want, sizeof want, "%04d-%02d-%02dT%02d:%02d:%02d", tm.tm_year + 1900,
                     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
            if (strncmp(got, want, 19) != 0)
                fail_msg("%s at %lld: %s, glibc %s", zones[zi], (long long)t, got, want);
        }
        cron_free(c);
        ncases++;
    }
    if (saved) {
        setenv("TZ", saved, 1);
        free(saved);
    } else {
        unsetenv("TZ");
    }
    tzset();
}

static void test_format_time(void **state)
{
    struct cron *c = P("* * * * *", NULL);
    char b[64];
    cron_format_time(c, 0, b, sizeof b);
    assert_string_equal(b, "1970-01-01T00:00:00+00:00");
    cron_format_time(c, -1, b, sizeof b);
    assert_string_equal(b, "1969-12-31T23:59:59+00:00");
    cron_format_time(c, T("2026-03-29T01:00Z") + 999999, b, sizeof b);
    assert_string_equal(b, "2026-03-29T01:00:00+00:00");
    cron_free(c);
    c = P("* * * * *", "Europe/Berlin");
    cron_format_time(c, T("2026-03-29T01:00Z"), b, sizeof b);
    assert_string_equal(b, "2026-03-29T03:00:00+02:00");
    cron_format_time(c, T("2026-03-29T01:00Z") - US, b, sizeof b);
    assert_string_equal(b, "2026-03-29T01:59:59+01:00");
    cron_free(c);
    /* local mean time has seconds in its offset */
    c = P("* * * * *", "Europe/Amsterdam");
    cron_format_time(c, T("1900-01-01T00:00Z"), b, sizeof b);
    assert_string_equal(b, "1900-01-01T00:19:32+00:19:32");
    cron_free(c);
    c = P("* * * * *", "America/St_Johns");
    cron_format_time(c, T("2026-01-15T12:00Z"), b, sizeof b);
    assert_string_equal(b, "2026-01-15T08:30:00-03:30");
    cron_free(c);
}

static void test_parse_time(void **state)
{
    struct cron *c = P("* * * * *", "America/New_York");
    struct kiln_err err = { 0 };
    int64_t us;
    static const struct {
        const char *in, *utc;
    } good[] = {
        { "2026-01-15T12:00:00Z", "2026-01-15T12:00Z" },
        { "2026-01-15t12:00z", "2026-01-15T12:00Z" },
        { "2026-01-15T12:00:00+02:00", "2026-01-15T10:00Z" },
        { "2026-01-15T12:00:00-0330", "2026-01-15T15:30Z" },
        { "2026-01-15T12:00+05", "2026-01-15T07:00Z" },
        { "2026-01-15 12:00:00Z", "2026-01-15T12:00Z" },
        /* no offset: wall time in New York */
        { "2026-01-15T12:00", "2026-01-15T17:00Z" },
        { "2026-07-15T12:00:00", "2026-07-15T16:00Z" },
        { "2026-07-15", "2026-07-15T04:00Z" },
        /* in the spring gap: the end of the gap */
        { "2026-03-08T02:30", "2026-03-08T07:00Z" },
        /* repeated: the first occurrence (EDT) */
        { "2026-11-01T01:30", "2026-11-01T05:30Z" },
        { "2026-11-01T00:59:59", "2026-11-01T04:59:59Z" },
        { "2026-11-01T02:00", "2026-11-01T07:00Z" },
        { "2028-02-29T00:00Z", "2028-02-29T00:00Z" },
    };
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
        kiln_err_clear(&err);
        if (cron_parse_time(c, good[i].in, &us, &err) != 0)
            fail_msg("'%s': %s", good[i].in, err.msg);
        if (us != T(good[i].utc))
            fail_msg("'%s' is %lld, want %s", good[i].in, (long long)us, good[i].utc);
        ncases++;
    }
    assert_int_equal(cron_parse_time(c, "2026-01-15T12:00:00.250Z", &us, &err), 0);
    assert_true(us == T("2026-01-15T12:00Z") + 250000);
    static const char *const bad[] = { "",          "2026",          "2026-1-15",
                                       "2026-13-01", "2027-02-29",   "2026-04-31",
                                       "2026-01-15T25:00", "2026-01-15T12:60", "2026-01-15T12",
                                       "2026-01-15T12:00:00+25:00", "2026-01-15Z",
                                       "2026-01-15T12:00:00 Z", "tomorrow", "2026-01-15T12:00:00.Z",
                                       "2026-01-15T12:00:00+02:00x" };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        kiln_err_clear(&err);
        if (cron_parse_time(c, bad[i], &us, &err) == 0)
            fail_msg("'%s' parsed", bad[i]);
        char want[256];
        snprintf(want, sizeof want,
                 "cron: cannot parse '%s' as an ISO-8601 time (YYYY-MM-DD[THH:MM[:SS]][Z|+HH:MM])",
                 bad[i]);
        assert_string_equal(err.msg, want);
        ncases++;
    }
    cron_free(c);
}

static void test_matches(void **state)
{
    struct cron *c = P("30 9 13 * fri", NULL);
    assert_true(cron_matches(c, 2026, 1, 13, 9, 30));  /* the 13th, a Tuesday */
    assert_true(cron_matches(c, 2026, 1, 16, 9, 30));  /* a Friday */
    assert_false(cron_matches(c, 2026, 1, 14, 9, 30));
    assert_false(cron_matches(c, 2026, 1, 13, 9, 31));
    assert_false(cron_matches(c, 2026, 1, 13, 10, 30));
    assert_false(cron_matches(c, 2026, 2, 30, 9, 30)); /* no such day */
    assert_false(cron_matches(c, 2026, 13, 1, 9, 30));
    cron_free(c);
}

/* ---- crafted TZif files: v1, slim v2 (footer only), rule date forms ---- */

static void put32(FILE *f, uint32_t v)
{
    unsigned char b[4] = { (unsigned char)(v >> 24), (unsigned char)(v >> 16),
                           (unsigned char)(v >> 8), (unsigned char)v };
    fwrite(b, 1, 4, f);
}

static void put64(FILE *f, int64_t v)
{
    put32(f, (uint32_t)((uint64_t)v >> 32));
    put32(f, (uint32_t)v);
}

/* One data block: transitions (to types), types (offsets), abbreviations "X\0". */
static void tzif_block(FILE *f, char version, int tsize, int n, const int64_t *times,
                       const unsigned char *idx, int ntypes, const int32_t *offs)
{
    fwrite("TZif", 1, 4, f);
    fputc(version, f);
    for (int i = 0; i < 15; i++)
        fputc(0, f);
    put32(f, 0);               /* isutcnt */
    put32(f, 0);               /* isstdcnt */
    put32(f, 0);               /* leapcnt */
    put32(f, (uint32_t)n);     /* timecnt */
    put32(f, (uint32_t)ntypes);
    put32(f, 2);               /* charcnt */
    for (int i = 0; i < n; i++) {
        if (tsize == 8)
            put64(f, times[i]);
        else
            put32(f, (uint32_t)(int32_t)times[i]);
    }
    if (n > 0)
        fwrite(idx, 1, (size_t)n, f);
    for (int i = 0; i < ntypes; i++) {
        put32(f, (uint32_t)offs[i]);
        fputc(i > 0, f);       /* isdst */
        fputc(0, f);           /* abbreviation index */
    }
    fwrite("X", 1, 2, f);
}

static void write_zone(const char *dir, const char *name, char version, int n,
                       const int64_t *times, const unsigned char *idx, int ntypes,
                       const int32_t *offs, const char *footer)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    tzif_block(f, version, 4, n, times, idx, ntypes, offs);
    if (version >= '2') {
        tzif_block(f, version, 8, n, times, idx, ntypes, offs);
        fprintf(f, "\n%s\n", footer);
    }
    fclose(f);
}

static char tzif_dir[64];
static char *tzif_saved_tzdir;
static bool tzif_had_tzdir;

/* Runs even when the test fails: the other tests need the real TZDIR. */
static int tzif_teardown(void **state)
{
    if (tzif_had_tzdir)
        setenv("TZDIR", tzif_saved_tzdir, 1);
    else
        unsetenv("TZDIR");
    free(tzif_saved_tzdir);
    tzif_saved_tzdir = NULL;
    static const char *const names[] = { "SlimNY", "V1", "Jul", "Zero", "AllDST", "Neg",
                                         "Trunc", "BadRule" };
    char path[512];
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        snprintf(path, sizeof path, "%s/%s", tzif_dir, names[i]);
        unlink(path);
    }
    rmdir(tzif_dir);
    return 0;
}

static void test_tzif_crafted(void **state)
{
    snprintf(tzif_dir, sizeof tzif_dir, "/tmp/kiln-tzif.XXXXXX");
    char *dir = tzif_dir;
    assert_non_null(mkdtemp(dir));
    const char *old = getenv("TZDIR");
    tzif_had_tzdir = old != NULL;
    tzif_saved_tzdir = old ? strdup(old) : NULL;
    setenv("TZDIR", dir, 1);
    int32_t est[] = { -18000 }, plus1_3[] = { 3600, 10800 };
    /* slim v2: no transitions, the US rule in the footer decides every year */
    write_zone(dir, "SlimNY", '2', 0, NULL, NULL, 1, est, "EST5EDT,M3.2.0,M11.1.0");
    SEQ("30 2 * * *", "SlimNY", "2026-03-07T12:00-05:00", "2026-03-08T03:00:00-04:00",
        "2026-03-09T02:30:00-04:00");
    SEQ("30 1 * * *", "SlimNY", "2026-10-31T12:00-04:00", "2026-11-01T01:30:00-04:00",
        "2026-11-02T01:30:00-05:00");
    SEQ("30 2 * * *", "SlimNY", "1990-03-10T12:00-05:00", "1990-03-11T03:00:00-04:00");
    /* v1 only: one transition at 2026-06-01T00:00Z from +01:00 to +03:00 */
    int64_t t1[] = { 1780272000 };
    unsigned char i1[] = { 1 };
    write_zone(dir, "V1", '\0', 1, t1, i1, 2, plus1_3, "");
    SEQ("0 12 * * *", "V1", "2026-05-31T00:00Z", "2026-05-31T12:00:00+01:00",
        "2026-06-01T12:00:00+03:00");
    /* the jump is two hours: 01:00-03:00 wall time on Jun 1 does not exist */
    SEQ("30 1 * * *", "V1", "2026-05-31T12:00Z", "2026-06-01T03:00:00+03:00",
        "2026-06-02T01:30:00+03:00");
    /* Julian dates: J60 is Mar 1 even in leap years; n59 (zero-based) is
     * Feb 29 in a leap year and Mar 1 otherwise */
    write_zone(dir, "Jul", '2', 0, NULL, NULL, 1, est, "AAA5BBB,J60/2,J300/2");
    write_zone(dir, "Zero", '2', 0, NULL, NULL, 1, est, "AAA5BBB,59/2,300/2");
    SEQ("30 2 * * *", "Jul", "2028-02-28T12:00-05:00", "2028-02-29T02:30:00-05:00",
        "2028-03-01T03:00:00-04:00");
    SEQ("30 2 * * *", "Zero", "2028-02-28T12:00-05:00", "2028-02-29T03:00:00-04:00");
    SEQ("30 2 * * *", "Zero", "2027-02-28T12:00-05:00", "2027-03-01T03:00:00-04:00");
    /* DST all year (EST5EDT,0/0,J365/25): always -04:00, no phantom gaps */
    write_zone(dir, "AllDST", '3', 0, NULL, NULL, 1, est, "EST5EDT,0/0,J365/25");
    SEQ("30 0 1 1 *", "AllDST", "2030-06-01T00:00Z", "2031-01-01T00:30:00-04:00",
        "2032-01-01T00:30:00-04:00");
    SEQ("0 * * * *", "AllDST", "2030-12-31T22:30-04:00", "2030-12-31T23:00:00-04:00",
        "2031-01-01T00:00:00-04:00", "2031-01-01T01:00:00-04:00");
    /* a southern rule with times past midnight and negative times */
    write_zone(dir, "Neg", '2', 0, NULL, NULL, 1, est, "<-05>5<-04>,M10.1.0/-1,M3.5.0/25");
    /* Oct 4 2026 is the first Sunday; -1 means 23:00 on Saturday Oct 3 */
    SEQ("30 23 * * *", "Neg", "2026-10-03T12:00-05:00", "2026-10-04T00:00:00-04:00",
        "2026-10-04T23:30:00-04:00");
    /* broken files */
    FILE *f;
    char path[512];
    snprintf(path, sizeof path, "%s/Trunc", dir);
    f = fopen(path, "wb");
    assert_non_null(f);
    fwrite("TZif2", 1, 5, f);
    for (int i = 0; i < 60; i++)
        fputc(0, f);
    fclose(f);
    char want[600];
    snprintf(want, sizeof want, "cron: time zone file %s/Trunc: truncated header", dir);
    TZERR("Trunc", want);
    write_zone(dir, "BadRule", '2', 0, NULL, NULL, 1, est, "EST5EDT,M13.1.0,M11.1.0");
    snprintf(want, sizeof want, "cron: time zone file %s/BadRule: cannot parse the footer TZ rule",
             dir);
    TZERR("BadRule", want);
}

/* ---- brute-force oracles ------------------------------------------------ */

struct spec {
    char text[320];
    bool min[60], hour[24], dom[32], mon[13], dow[7];
    bool dom_star, dow_star, every_hour;
};

static unsigned rnd_state = 20260321;
static unsigned rnd(unsigned n)
{
    rnd_state = rnd_state * 1664525u + 1013904223u;
    return (rnd_state >> 8) % n;
}

static const char *const MON_NAMES[] = { "jan", "feb", "mar", "apr", "may", "jun",
                                         "jul", "aug", "sep", "oct", "nov", "dec" };
static const char *const DOW_NAMES[] = { "sun", "mon", "tue", "wed", "thu", "fri", "sat" };

/* Writes value v of field f, sometimes as a name in a random case. */
static void put_value(char *out, size_t n, int f, int v)
{
    const char *name = NULL;
    if (f == 3 && rnd(3) == 0)
        name = MON_NAMES[v - 1];
    if (f == 4 && v <= 6 && rnd(3) == 0)
        name = DOW_NAMES[v];
    if (!name) {
        snprintf(out, n, "%d", v);
        return;
    }
    char s[4];
    for (int k = 0; k < 3; k++)
        s[k] = rnd(2) ? (char)(name[k] - 32) : name[k];
    s[3] = '\0';
    snprintf(out, n, "%s", s);
}

/* A random field: text into buf, values into set (dow 7 folded to 0).
 * narrow_hours biases the hour field towards the hours DST changes touch. */
static bool gen_field(int f, char *buf, size_t bn, bool *set, bool narrow_hours)
{
    static const int lo_[] = { 0, 0, 1, 1, 0 }, hi_[] = { 59, 23, 31, 12, 7 },
                     shi_[] = { 59, 23, 31, 12, 6 };
    int lo = lo_[f], hi = hi_[f], shi = shi_[f];
    int nitems = 1 + (rnd(4) == 0 ? (int)rnd(3) : 0);
    bool star = false;
    buf[0] = '\0';
    for (int it = 0; it < nitems; it++) {
        char item[48], a[8], b[8];
        int kind = (int)rnd(f == 1 && narrow_hours ? 5 : 7);
        int s = 1 + (int)rnd((unsigned)(shi - lo));
        int x = lo + (int)rnd((unsigned)(hi - lo + 1)), y = lo + (int)rnd((unsigned)(hi - lo + 1));
        if (f == 1 && narrow_hours && rnd(2) == 0) {
            x = (int)rnd(5);
            y = x + (int)rnd(3);
        }
        if (x > y) {
            int t = x;
            x = y;
            y = t;
        }
        int from, to, step = 1;
        switch (kind) {
        case 0: /* * */
            snprintf(item, sizeof item, "*");
            from = lo, to = shi;
            if (it == 0)
                star = true;
            break;
        case 1: /* *\/s */
            snprintf(item, sizeof item, "*/%d", s);
            from = lo, to = shi, step = s;
            if (it == 0)
                star = true;
            break;
        case 2: /* a-b */
        case 5:
            put_value(a, sizeof a, f, x);
            put_value(b, sizeof b, f, y);
            snprintf(item, sizeof item, "%s-%s", a, b);
            from = x, to = y;
            break;
        case 3: /* a-b/s */
            put_value(a, sizeof a, f, x);
            put_value(b, sizeof b, f, y);
            snprintf(item, sizeof item, "%s-%s/%d", a, b, s);
            from = x, to = y, step = s;
            break;
        case 4: /* a/s */
            if (x > shi)
                x = shi;
            put_value(a, sizeof a, f, x);
            snprintf(item, sizeof item, "%s/%d", a, s);
            from = x, to = shi, step = s;
            break;
        default: /* a */
            put_value(a, sizeof a, f, x);
            snprintf(item, sizeof item, "%s", a);
            from = to = x;
            break;
        }
        for (int v = from; v <= to; v += step)
            set[f == 4 && v == 7 ? 0 : v] = true;
        size_t used = strlen(buf);
        snprintf(buf + used, bn - used, "%s%s", it ? "," : "", item);
    }
    return star;
}

static void gen_spec(struct spec *sp, bool narrow)
{
    memset(sp, 0, sizeof *sp);
    char f[5][48];
    bool *sets[5] = { sp->min, sp->hour, sp->dom, sp->mon, sp->dow };
    bool stars[5];
    for (int i = 0; i < 5; i++) {
        /* keep day and month often unrestricted, so most expressions fire often */
        if (i >= 2 && rnd(narrow ? 2 : 3) == 0) {
            snprintf(f[i], sizeof f[i], "*");
            int lo = i == 2 ? 1 : i == 3 ? 1 : 0, hi = i == 2 ? 31 : i == 3 ? 12 : 6;
            for (int v = lo; v <= hi; v++)
                sets[i][v] = true;
            stars[i] = true;
        } else {
            stars[i] = gen_field(i, f[i], sizeof f[i], sets[i], narrow && i == 1);
        }
    }
    sp->dom_star = stars[2];
    sp->dow_star = stars[4];
    sp->every_hour = true;
    for (int h = 0; h < 24; h++)
        sp->every_hour &= sp->hour[h];
    snprintf(sp->text, sizeof sp->text, "%s %s %s %s %s", f[0], f[1], f[2], f[3], f[4]);
}

static bool spec_match(const struct spec *sp, const struct tm *tm)
{
    if (!sp->min[tm->tm_min] || !sp->hour[tm->tm_hour] || !sp->mon[tm->tm_mon + 1])
        return false;
    bool dm = sp->dom[tm->tm_mday], wm = sp->dow[tm->tm_wday];
    return sp->dom_star || sp->dow_star ? dm && wm : dm || wm;
}

/* Whether any day in 8 years matches the day fields (the expression can fire). */
static bool spec_can_fire(const struct spec *sp)
{
    for (time_t d = 0; d < 8 * 366; d++) {
        time_t t = (time_t)1767225600 + d * 86400; /* 2026-01-01 */
        struct tm tm;
        gmtime_r(&t, &tm);
        tm.tm_hour = tm.tm_min = 0;
        bool dm = sp->dom[tm.tm_mday], wm = sp->dow[tm.tm_wday];
        if (sp->mon[tm.tm_mon + 1] && (sp->dom_star || sp->dow_star ? dm && wm : dm || wm))
            return true;
    }
    return false;
}

/* UTC oracle: step minute by minute. */
static int64_t oracle_utc(const struct spec *sp, int64_t after_s, int64_t limit_s)
{
    int64_t t = (after_s / 60 + 1) * 60;
    for (; t <= limit_s; t += 60) {
        time_t tt = (time_t)t;
        struct tm tm;
        gmtime_r(&tt, &tm);
        if (spec_match(sp, &tm))
            return t;
    }
    return -1;
}

static void test_oracle_utc(void **state)
{
    int checked = 0, rejected = 0;
    for (int i = 0; i < 600; i++) {
        struct spec sp;
        gen_spec(&sp, false);
        if (i % 10 == 0) {
            /* the end of a month in a few months: sometimes never fires */
            static const char *const ends[] = { "29", "30", "31", "30,31", "29-31", "31/2" };
            static const char *const mons[] = { "2", "4,6", "feb", "9,11", "2,4", "*/2" };
            const char *de = ends[rnd(6)], *mo = mons[rnd(6)];
            char txt[64];
            snprintf(txt, sizeof txt, "0 0 %s %s *", de, mo);
            memset(&sp, 0, sizeof sp);
            snprintf(sp.text, sizeof sp.text, "%s", txt);
            sp.min[0] = sp.hour[0] = true;
            for (int d = 0; d < 7; d++)
                sp.dow[d] = true;
            sp.dow_star = true;
            for (int d = 29; d <= 31; d++)
                sp.dom[d] = strchr(de, '-') ? true
                            : strstr(de, "31") && d == 31 ? true
                            : strstr(de, "30") && d == 30 ? true
                            : strstr(de, "29") && d == 29;
            for (const char *q = mo; *q;) {
                if (strncmp(q, "feb", 3) == 0)
                    sp.mon[2] = true, q += 3;
                else if (strncmp(q, "*/2", 3) == 0) {
                    for (int m = 1; m <= 12; m += 2)
                        sp.mon[m] = true;
                    q += 3;
                } else {
                    sp.mon[strtol(q, (char **)&q, 10)] = true;
                }
                if (*q == ',')
                    q++;
            }
        }
        struct kiln_err err = { 0 };
        struct cron *c = NULL;
        int rc = cron_parse(sp.text, NULL, &c, &err);
        if (rc != 0) {
            /* only never-firing expressions may be rejected */
            if (rc != KILN_EINVALID || spec_can_fire(&sp))
                fail_msg("'%s' rejected: %s", sp.text, err.msg);
            rejected++;
            continue;
        }
        assert_true(spec_can_fire(&sp));
        /* start anywhere in 2025-2030, at a random second */
        int64_t after = 1735689600 + (int64_t)rnd(6 * 365) * 86400 + rnd(86400);
        for (int k = 0; k < 3; k++) {
            int64_t want = oracle_utc(&sp, after, after + 4 * 366 * 86400LL);
            int64_t got_us;
            assert_int_equal(cron_next(c, after * US + (int64_t)rnd(1000000), &got_us), 0);
            if (want < 0) { /* rarer than the oracle's horizon */
                if (got_us / US <= after + 4 * 366 * 86400LL)
                    fail_msg("'%s' after %lld: engine %lld, oracle none", sp.text,
                             (long long)after, (long long)(got_us / US));
                break;
            }
            if (got_us != want * US)
                fail_msg("'%s' after %lld: engine %lld, oracle %lld", sp.text, (long long)after,
                         (long long)(got_us / US), (long long)want);
            after = want;
            checked++;
        }
        cron_free(c);
    }
    print_message("# UTC oracle: %d fire times checked, %d never-firing expressions rejected\n",
                  checked, rejected);
    assert_true(checked > 1000);
    ncases += checked + rejected;
}

/* DST oracle: step each UTC minute, take the wall clock from glibc's
 * localtime_r, and apply the documented rules: a wall time skipped by a jump
 * forward fires at the first minute after the jump; a wall time that is not
 * later than one already seen (the second pass of a repeated hour) fires
 * only for expressions that run every hour. */
static int64_t wall_minutes(const struct tm *tm)
{
    struct tm u = *tm;
    u.tm_isdst = 0;
    return (int64_t)timegm(&u) / 60;
}

static bool spec_match_wall(const struct spec *sp, int64_t wm)
{
    time_t t = (time_t)(wm * 60);
    struct tm tm;
    gmtime_r(&t, &tm);
    return spec_match(sp, &tm);
}

static int64_t oracle_zone(const struct spec *sp, int64_t after_s, int64_t limit_s)
{
    /* start a day early so the highest wall time seen is known */
    int64_t t = (after_s / 60 + 1) * 60 - 86400;
    int64_t maxwall = INT64_MIN, prevwall = INT64_MIN;
    for (; t <= limit_s; t += 60) {
        time_t tt = (time_t)t;
        struct tm tm;
        localtime_r(&tt, &tm);
        int64_t w = wall_minutes(&tm);
        bool fire = false;
        if (prevwall != INT64_MIN && w > prevwall + 1) {
            for (int64_t x = prevwall + 1; x <= w && !fire; x++)
                fire = spec_match_wall(sp, x);
        } else if (maxwall != INT64_MIN && w <= maxwall) {
            fire = sp->every_hour && spec_match_wall(sp, w);
        } else {
            fire = spec_match_wall(sp, w);
        }
        if (fire && t > after_s)
            return t;
        prevwall = w;
        if (w > maxwall)
            maxwall = w;
    }
    return -1;
}

static void test_oracle_dst(void **state)
{
    static const char *const zones[] = { "America/New_York", "Europe/Berlin",
                                         "Australia/Sydney", "Australia/Lord_Howe",
                                         "Europe/Dublin",    "Pacific/Chatham",
                                         "America/Santiago" };
    static const int years[] = { 2026, 2027, 2045 };
    const char *old = getenv("TZ");
    char *saved = old ? strdup(old) : NULL;
    int checked = 0, near = 0;
    for (size_t zi = 0; zi < sizeof zones / sizeof *zones; zi++) {
        setenv("TZ", zones[zi], 1);
        tzset();
        /* find the offset changes of each year by scanning hours */
        int64_t changes[16];
        int nch = 0;
        for (size_t yi = 0; yi < sizeof years / sizeof *years; yi++) {
            struct tm jan = { .tm_year = years[yi] - 1900, .tm_mday = 1 };
            int64_t t0 = (int64_t)timegm(&jan);
            long prev = 0;
            for (int64_t h = 0; h < 366 * 24 && nch < 16; h++) {
                time_t tt = (time_t)(t0 + h * 3600);
                struct tm tm;
                localtime_r(&tt, &tm);
                if (h > 0 && tm.tm_gmtoff != prev)
                    changes[nch++] = t0 + h * 3600;
                prev = tm.tm_gmtoff;
            }
        }
        assert_true(nch >= 4);
        for (int ci = 0; ci < nch; ci++) {
            for (int rep = 0; rep < 16; rep++) {
                struct spec sp;
                gen_spec(&sp, true);
                struct kiln_err err = { 0 };
                struct cron *c = NULL;
                if (cron_parse(sp.text, zones[zi], &c, &err) != 0) {
                    if (spec_can_fire(&sp))
                        fail_msg("'%s' rejected: %s", sp.text, err.msg);
                    continue;
                }
                /* start within 30 hours before the change, or just before it */
                int64_t after = changes[ci] - (int64_t)rnd(rep % 2 ? 30 * 3600 : 3 * 3600);
                for (int k = 0; k < 6; k++) {
                    int64_t limit = changes[ci] + 3 * 86400;
                    int64_t want = oracle_zone(&sp, after, limit);
                    int64_t got;
                    assert_int_equal(cron_next(c, after * US, &got), 0);
                    if (want < 0) {
                        if (got / US <= limit)
                            fail_msg("%s '%s' after %lld: engine %lld, oracle none",
                                     zones[zi], sp.text, (long long)after,
                                     (long long)(got / US));
                        break;
                    }
                    if (got != want * US) {
                        char a[64], g[64], w[64];
                        cron_format_time(c, after * US, a, sizeof a);
                        cron_format_time(c, got, g, sizeof g);
                        cron_format_time(c, want * US, w, sizeof w);
                        fail_msg("%s '%s' after %s: engine %s, oracle %s", zones[zi], sp.text,
                                 a, g, w);
                    }
                    if (want >= changes[ci] - 3600 && want <= changes[ci] + 7200)
                        near++;
                    after = want;
                    checked++;
                }
                cron_free(c);
            }
        }
    }
    if (saved) {
        setenv("TZ", saved, 1);
        free(saved);
    } else {
        unsetenv("TZ");
    }
    tzset();
    print_message("# DST oracle: %d fire times checked, %d within an hour before or two "
                  "after a DST change\n", checked, near);
    assert_true(checked > 1000);
    assert_true(near > 200);
    ncases += checked;
}

/* ---- threads: the zone cache is shared ---------------------------------- */

static void *thread_main(void *arg)
{
    static const char *const zones[] = { "Asia/Singapore", "America/Chicago", "Europe/Paris",
                                         "Africa/Nairobi" };
    long *bad = arg;
    for (int i = 0; i < 200; i++) {
        struct kiln_err err = { 0 };
        struct cron *c = NULL;
        if (cron_parse("0 12 * * *", zones[i % 4], &c, &err) != 0) {
            (*bad)++;
            continue;
        }
        int64_t nx;
        if (cron_next(c, 1767225600LL * US, &nx) != 0)
            (*bad)++;
        cron_free(c);
    }
    return NULL;
}

static void test_threads(void **state)
{
    pthread_t th[4];
    long bad[4] = { 0 };
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&th[i], NULL, thread_main, &bad[i]), 0);
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(bad[i], 0);
    }
}

static void test_count(void **state)
{
    print_message("# %d cron cases checked\n", ncases);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_minute),
        cmocka_unit_test(test_minute_field),
        cmocka_unit_test(test_hour_field),
        cmocka_unit_test(test_dom_field),
        cmocka_unit_test(test_month_field),
        cmocka_unit_test(test_dow_field),
        cmocka_unit_test(test_sunday_0_and_7),
        cmocka_unit_test(test_names_any_case),
        cmocka_unit_test(test_macros),
        cmocka_unit_test(test_dom_dow_or),
        cmocka_unit_test(test_leap_years),
        cmocka_unit_test(test_month_lengths),
        cmocka_unit_test(test_rollover),
        cmocka_unit_test(test_far_dates),
        cmocka_unit_test(test_never_fires),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_tz_errors),
        cmocka_unit_test(test_fixed_zones),
        cmocka_unit_test(test_dst_new_york),
        cmocka_unit_test(test_dst_hourly_new_york),
        cmocka_unit_test(test_dst_berlin),
        cmocka_unit_test(test_dst_sydney),
        cmocka_unit_test(test_dst_half_hour),
        cmocka_unit_test(test_dst_future_rule),
        cmocka_unit_test(test_offsets_match_glibc),
        cmocka_unit_test(test_format_time),
        cmocka_unit_test(test_parse_time),
        cmocka_unit_test(test_matches),
        cmocka_unit_test_teardown(test_tzif_crafted, tzif_teardown),
        cmocka_unit_test(test_oracle_utc),
        cmocka_unit_test(test_oracle_dst),
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_count),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
