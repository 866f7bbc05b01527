#include "schedule.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "util.h"

int schedule_from_dag(const struct dag *d, struct schedule *out, struct kiln_err *err)
{
    memset(out, 0, sizeof *out);
    out->catchup = d->catchup;
    if (!d->schedule)
        return 0;
    int rc = cron_parse(d->schedule, d->timezone, &out->cron, err);
    if (rc < 0)
        return rc;
    if (d->start_date &&
        (rc = schedule_parse_time(out, d->start_date, &out->start_us, err)) < 0) {
        char m[sizeof err->msg];
        snprintf(m, sizeof m, "%s", err->msg);
        schedule_free(out);
        kiln_err_clear(err);
        return kiln_err_set(err, rc, "start_date: %s", m);
    }
    if (d->end_date && (rc = schedule_parse_time(out, d->end_date, &out->end_us, err)) < 0) {
        char m[sizeof err->msg];
        snprintf(m, sizeof m, "%s", err->msg);
        schedule_free(out);
        kiln_err_clear(err);
        return kiln_err_set(err, rc, "end_date: %s", m);
    }
    if (out->start_us && out->end_us && out->end_us < out->start_us) {
        schedule_free(out);
        return kiln_err_set(err, KILN_EINVALID, "end_date is before start_date");
    }
    return 0;
}

int schedule_parse_time(const struct schedule *s, const char *text, int64_t *us,
                        struct kiln_err *err)
{
    struct cron *utc = NULL;
    const struct cron *c = s->cron;
    int rc = 0;
    if (!c) {
        if ((rc = cron_parse("* * * * *", NULL, &utc, err)) < 0)
            return rc;
        c = utc;
    }
    rc = cron_parse_time(c, text, us, err);
    cron_free(utc);
    return rc;
}

void schedule_free(struct schedule *s)
{
    cron_free(s->cron);
    s->cron = NULL;
}

static int64_t next_after(const struct cron *c, int64_t t)
{
    int64_t n;
    return cron_next(c, t, &n) == 0 ? n : SCHEDULE_NEVER;
}

/* The latest fire time <= t, or 0 when there is none. */
static int64_t prev_fire(const struct cron *c, int64_t t)
{
    for (int64_t w = 60 * 1000000LL; w < 400LL * 366 * 86400 * 1000000LL; w *= 4) {
        int64_t f = next_after(c, t - w - 1);
        if (f > t)
            continue;
        for (;;) {
            int64_t g = next_after(c, f);
            if (g > t)
                return f;
            f = g;
        }
    }
    return 0;
}

static bool start_ok(const struct schedule *s, int64_t start)
{
    return !s->end_us || start <= s->end_us;
}

size_t schedule_due(const struct schedule *s, int64_t last_end_us, int64_t now,
                    struct interval *out, size_t max, int64_t *next_fire)
{
    *next_fire = SCHEDULE_NEVER;
    if (!s->cron)
        return 0;
    /* f0: where the next interval starts (0: anywhere). */
    int64_t f0 = 0;
    if (last_end_us)
        f0 = next_after(s->cron, last_end_us - 1);
    else if (s->start_us)
        f0 = next_after(s->cron, s->start_us - 1);
    if (f0 == SCHEDULE_NEVER)
        return 0;
    size_t n = 0;
    int64_t next_start;
    if (s->catchup && f0) {
        int64_t a = f0;
        for (;;) {
            int64_t b = next_after(s->cron, a);
            if (b == SCHEDULE_NEVER || b > now || !start_ok(s, a) || n == max)
                break;
            out[n].start_us = a;
            out[n].end_us = b;
            n++;
            a = b;
        }
        next_start = a;
    } else {
        /* The latest finished interval [q, p), if it starts at or after f0. */
        int64_t p = prev_fire(s->cron, now);
        int64_t q = p ? prev_fire(s->cron, p - 1) : 0;
        if (q && q >= f0 && start_ok(s, q) && max > 0) {
            out[n].start_us = q;
            out[n].end_us = p;
            n++;
            next_start = p;
        } else {
            next_start = f0 > p ? f0 : p ? p : next_after(s->cron, now);
        }
    }
    if (next_start != SCHEDULE_NEVER && start_ok(s, next_start))
        *next_fire = next_after(s->cron, next_start);
    return n;
}

size_t schedule_range(const struct schedule *s, int64_t from_us, int64_t to_us,
                      struct interval *out, size_t max)
{
    if (!s->cron)
        return 0;
    size_t n = 0;
    for (int64_t a = next_after(s->cron, from_us - 1); a <= to_us && a != SCHEDULE_NEVER;) {
        int64_t b = next_after(s->cron, a);
        if (b == SCHEDULE_NEVER)
            break;
        if (n < max) {
            out[n].start_us = a;
            out[n].end_us = b;
        }
        n++;
        a = b;
    }
    return n;
}

size_t schedule_next_fires(const struct schedule *s, int64_t now, int64_t *out, size_t n)
{
    if (!s->cron)
        return 0;
    int64_t f0 = s->start_us ? next_after(s->cron, s->start_us - 1) : 0;
    /* The first interval that has not ended yet starts at or after f0. */
    int64_t a = f0 > now ? f0 : prev_fire(s->cron, now);
    if (!a)
        a = now;
    size_t k = 0;
    while (k < n && a != SCHEDULE_NEVER && start_ok(s, a)) {
        int64_t b = next_after(s->cron, a);
        if (b == SCHEDULE_NEVER)
            break;
        if (b > now)
            out[k++] = b;
        a = b;
    }
    return k;
}

void schedule_format_utc(int64_t us, char *buf, size_t n)
{
    time_t t = (time_t)(us / 1000000);
    if (us < 0 && us % 1000000)
        t--;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, n, "%Y-%m-%dT%H:%M:%S+00:00", &tm);
}
