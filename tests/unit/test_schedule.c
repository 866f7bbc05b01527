/* schedule: Airflow's data intervals on cron (engine/schedule.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "schedule.h"
#include "util.h"

static struct schedule mk(const char *expr, const char *tz, const char *start, const char *end,
                          bool catchup)
{
    struct dag *d = dag_new("s", "s.yaml");
    d->schedule = xstrdup(expr);
    d->timezone = tz ? xstrdup(tz) : NULL;
    d->start_date = start ? xstrdup(start) : NULL;
    d->end_date = end ? xstrdup(end) : NULL;
    d->catchup = catchup;
    struct schedule s;
    struct kiln_err err = { 0 };
    if (schedule_from_dag(d, &s, &err) < 0)
        fail_msg("%s", err.msg);
    dag_free(d);
    return s;
}

static int64_t t(const struct schedule *s, const char *text)
{
    int64_t us;
    struct kiln_err err = { 0 };
    if (schedule_parse_time(s, text, &us, &err) < 0)
        fail_msg("%s", err.msg);
    return us;
}

static void fmt(const struct schedule *s, int64_t us, char *buf, size_t n)
{
    cron_format_time(s->cron, us, buf, n);
}

static void test_daily_interval(void **state)
{
    struct schedule s = mk("@daily", NULL, "2026-01-01", NULL, true);
    struct interval iv[8];
    int64_t next;
    /* Just before the end of the first interval: nothing yet. */
    size_t n = schedule_due(&s, 0, t(&s, "2026-01-01T23:59:59"), iv, 8, &next);
    assert_int_equal(n, 0);
    assert_true(next == t(&s, "2026-01-02"));
    /* At its end: the run for 2026-01-01 covers [01-01, 01-02). */
    n = schedule_due(&s, 0, t(&s, "2026-01-02"), iv, 8, &next);
    assert_int_equal(n, 1);
    assert_true(iv[0].start_us == t(&s, "2026-01-01"));
    assert_true(iv[0].end_us == t(&s, "2026-01-02"));
    assert_true(next == t(&s, "2026-01-03"));
    /* Once it exists (last end = 01-02) nothing more is due until 01-03. */
    n = schedule_due(&s, iv[0].end_us, t(&s, "2026-01-02T12:00"), iv, 8, &next);
    assert_int_equal(n, 0);
    assert_true(next == t(&s, "2026-01-03"));
    schedule_free(&s);
}

static void test_catchup(void **state)
{
    struct schedule s = mk("@daily", NULL, "2026-01-01", NULL, true);
    struct interval iv[8];
    int64_t next;
    /* Down from 01-02 to 01-05 12:00: three missed intervals, oldest first. */
    size_t n = schedule_due(&s, t(&s, "2026-01-02"), t(&s, "2026-01-05T12:00"), iv, 8, &next);
    assert_int_equal(n, 3);
    assert_true(iv[0].start_us == t(&s, "2026-01-02"));
    assert_true(iv[2].start_us == t(&s, "2026-01-04"));
    assert_true(iv[2].end_us == t(&s, "2026-01-05"));
    assert_true(next == t(&s, "2026-01-06"));
    /* A batch limit: the rest comes on the next call. */
    n = schedule_due(&s, t(&s, "2026-01-02"), t(&s, "2026-01-05T12:00"), iv, 2, &next);
    assert_int_equal(n, 2);
    schedule_free(&s);
    /* Without catchup only the latest finished interval. */
    s = mk("@daily", NULL, "2026-01-01", NULL, false);
    n = schedule_due(&s, t(&s, "2026-01-02"), t(&s, "2026-01-05T12:00"), iv, 8, &next);
    assert_int_equal(n, 1);
    assert_true(iv[0].start_us == t(&s, "2026-01-04"));
    assert_true(next == t(&s, "2026-01-06"));
    /* Never run before, start long ago: the latest one too. */
    n = schedule_due(&s, 0, t(&s, "2026-03-10T01:00"), iv, 8, &next);
    assert_int_equal(n, 1);
    assert_true(iv[0].start_us == t(&s, "2026-03-09"));
    /* One minute late for the 01-03 interval: it is still created. */
    n = schedule_due(&s, t(&s, "2026-01-03"), t(&s, "2026-01-04T00:01"), iv, 8, &next);
    assert_int_equal(n, 1);
    assert_true(iv[0].start_us == t(&s, "2026-01-03"));
    schedule_free(&s);
}

static void test_start_end(void **state)
{
    /* A start between fire times: the first interval starts at the next one. */
    struct schedule s = mk("0 6 * * *", NULL, "2026-01-01T07:00", "2026-01-03", true);
    struct interval iv[8];
    int64_t next;
    size_t n = schedule_due(&s, 0, t(&s, "2026-02-01"), iv, 8, &next);
    /* Starts 01-01 06:00 is before the start; 01-02 06:00 is the first; no
     * interval starts after the end date (01-03 00:00). */
    assert_int_equal(n, 1);
    assert_true(iv[0].start_us == t(&s, "2026-01-02T06:00"));
    assert_true(iv[0].end_us == t(&s, "2026-01-03T06:00"));
    assert_true(next == SCHEDULE_NEVER);
    /* Before the start date nothing is due; the first fire is known. */
    n = schedule_due(&s, 0, t(&s, "2025-12-01"), iv, 8, &next);
    assert_int_equal(n, 0);
    assert_true(next == t(&s, "2026-01-03T06:00"));
    int64_t fires[4];
    assert_int_equal(schedule_next_fires(&s, t(&s, "2025-12-01"), fires, 4), 1);
    schedule_free(&s);
    /* end_date before start_date is refused. */
    struct dag *d = dag_new("s", "s.yaml");
    d->schedule = xstrdup("@daily");
    d->start_date = xstrdup("2026-02-01");
    d->end_date = xstrdup("2026-01-01");
    struct kiln_err err = { 0 };
    assert_true(schedule_from_dag(d, &s, &err) < 0);
    assert_string_equal(err.msg, "end_date is before start_date");
    free(d->start_date);
    d->start_date = xstrdup("2026-13-01");
    kiln_err_clear(&err);
    assert_true(schedule_from_dag(d, &s, &err) < 0);
    assert_true(strncmp(err.msg, "start_date: ", 12) == 0);
    dag_free(d);
}

static void test_dst_day(void **state)
{
    /* New York springs forward on 2026-03-08: that daily interval is 23 hours. */
    struct schedule s = mk("@daily", "America/New_York", "2026-03-07", NULL, true);
    struct interval iv[8];
    int64_t next;
    size_t n = schedule_due(&s, 0, t(&s, "2026-03-10"), iv, 8, &next);
    assert_int_equal(n, 3);
    assert_true(iv[1].start_us == t(&s, "2026-03-08"));
    assert_true(iv[1].end_us - iv[1].start_us == 23LL * 3600 * 1000000);
    assert_true(iv[0].end_us - iv[0].start_us == 24LL * 3600 * 1000000);
    char a[64], b[64];
    fmt(&s, iv[1].start_us, a, sizeof a);
    fmt(&s, iv[1].end_us, b, sizeof b);
    assert_string_equal(a, "2026-03-08T00:00:00-05:00");
    assert_string_equal(b, "2026-03-09T00:00:00-04:00");
    schedule_free(&s);
}

static void test_range_and_next(void **state)
{
    struct schedule s = mk("0 0 * * *", NULL, NULL, NULL, false);
    struct interval iv[8];
    assert_int_equal(schedule_range(&s, t(&s, "2026-01-01"), t(&s, "2026-01-03"), iv, 8), 3);
    assert_true(iv[2].start_us == t(&s, "2026-01-03"));
    assert_int_equal(schedule_range(&s, t(&s, "2026-01-01T00:01"), t(&s, "2026-01-01T23:00"),
                                    iv, 8), 0);
    int64_t fires[3];
    assert_int_equal(schedule_next_fires(&s, t(&s, "2026-01-01T10:00"), fires, 3), 3);
    assert_true(fires[0] == t(&s, "2026-01-02"));
    assert_true(fires[2] == t(&s, "2026-01-04"));
    char buf[40];
    schedule_format_utc(t(&s, "2026-01-02T03:04:05"), buf, sizeof buf);
    assert_string_equal(buf, "2026-01-02T03:04:05+00:00");
    schedule_free(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_daily_interval), cmocka_unit_test(test_catchup),
        cmocka_unit_test(test_start_end),      cmocka_unit_test(test_dst_day),
        cmocka_unit_test(test_range_and_next),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
