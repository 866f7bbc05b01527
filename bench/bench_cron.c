/* bench_cron: next-fire computations per second for a mix of cron
 * expressions, against a brute-force baseline measured in the same run that
 * steps minute by minute (incremental calendar + cron_matches) until a
 * minute matches.  Both answer the same (expression, start) pairs and must
 * agree.  Prints one line per expression, then
 *   mix: engine N/s, baseline M/s, ratio R
 * where the mix rate is one computation of each expression in turn (the
 * harmonic mean of the per-expression rates).
 *
 *   bench/bench_cron [SECONDS_PER_MEASUREMENT]   (default 0.3) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cron.h"

#define NSTARTS 256

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static unsigned rnd_state = 42;
static unsigned rnd(void)
{
    rnd_state = rnd_state * 1664525u + 1013904223u;
    return rnd_state >> 8;
}

static bool leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* The baseline: the first whole minute after `after` (UTC seconds) that
 * cron_matches, stepping one minute at a time. */
static int64_t brute_next(const struct cron *c, int64_t after)
{
    static const int dim[13] = { 0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
    int64_t t = (after / 60 + 1) * 60;
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    int y = tm.tm_year + 1900, mo = tm.tm_mon + 1, d = tm.tm_mday, h = tm.tm_hour, mi = tm.tm_min;
    for (;;) {
        if (cron_matches(c, y, mo, d, h, mi))
            return t;
        t += 60;
        if (++mi < 60)
            continue;
        mi = 0;
        if (++h < 24)
            continue;
        h = 0;
        if (++d <= (mo == 2 && leap(y) ? 29 : dim[mo]))
            continue;
        d = 1;
        if (++mo <= 12)
            continue;
        mo = 1;
        y++;
    }
}

struct result {
    double rate;
    long calls;
};

static struct result measure_engine(const struct cron *c, const int64_t *starts, double secs,
                                    int64_t *sink)
{
    long calls = 0;
    double t0 = now_s(), el;
    do {
        for (int k = 0; k < 64; k++) {
            int64_t nx;
            cron_next(c, starts[calls % NSTARTS] * 1000000, &nx);
            *sink += nx;
            calls++;
        }
        el = now_s() - t0;
    } while (el < secs);
    return (struct result){ (double)calls / el, calls };
}

static struct result measure_brute(const struct cron *c, const int64_t *starts, double secs,
                                   int64_t *sink)
{
    long calls = 0;
    double t0 = now_s(), el;
    do {
        *sink += brute_next(c, starts[calls % NSTARTS]);
        calls++;
        el = now_s() - t0;
    } while (el < secs);
    return (struct result){ (double)calls / el, calls };
}

int main(int argc, char **argv)
{
    double secs = argc > 1 ? atof(argv[1]) : 0.3;
    if (secs <= 0)
        secs = 0.3;
    static const char *const exprs[] = {
        "*/5 * * * *",       "0 * * * *",      "0 3 * * *",     "30 2 * * 1-5",
        "*/10 9-17 * * mon-fri", "15 10 1,15 * *", "0 9 * * mon",  "0 0 1 * *",
        "0 0 13 * fri",      "0 0 1 1 *",      "0 0 29 2 *",
    };
    const int n = (int)(sizeof exprs / sizeof *exprs);
    int64_t starts[NSTARTS];
    /* random seconds in 2026-2030 */
    for (int i = 0; i < NSTARTS; i++)
        starts[i] = 1767225600LL + (int64_t)(rnd() % (5u * 365u)) * 86400 + rnd() % 86400;
    int64_t sink = 0;
    double inv_e = 0, inv_b = 0;
    printf("%-24s %14s %14s %10s\n", "expression (UTC)", "engine/s", "brute-force/s", "ratio");
    for (int i = 0; i < n; i++) {
        struct kiln_err err = { 0 };
        struct cron *c = NULL;
        if (cron_parse(exprs[i], NULL, &c, &err) < 0) {
            fprintf(stderr, "bench_cron: %s\n", err.msg);
            return 1;
        }
        /* both must agree */
        for (int k = 0; k < 16; k++) {
            int64_t nx;
            cron_next(c, starts[k] * 1000000, &nx);
            if (nx / 1000000 != brute_next(c, starts[k])) {
                fprintf(stderr, "bench_cron: '%s' disagrees with the baseline\n", exprs[i]);
                return 1;
            }
        }
        struct result e = measure_engine(c, starts, secs, &sink);
        struct result b = measure_brute(c, starts, secs, &sink);
        printf("%-24s %14.0f %14.0f %9.0fx\n", exprs[i], e.rate, b.rate, e.rate / b.rate);
        inv_e += 1 / e.rate;
        inv_b += 1 / b.rate;
        cron_free(c);
    }
    double mix_e = n / inv_e, mix_b = n / inv_b;
    /* the same mix in DST zones (engine only: the baseline is UTC-only) */
    static const char *const zones[] = { "America/New_York", "Europe/Berlin", "Australia/Sydney" };
    for (size_t z = 0; z < sizeof zones / sizeof *zones; z++) {
        double inv = 0;
        for (int i = 0; i < n; i++) {
            struct kiln_err err = { 0 };
            struct cron *c = NULL;
            if (cron_parse(exprs[i], zones[z], &c, &err) < 0) {
                fprintf(stderr, "bench_cron: %s\n", err.msg);
                return 1;
            }
            inv += 1 / measure_engine(c, starts, secs / 3, &sink).rate;
            cron_free(c);
        }
        printf("mix in %-18s engine %.0f/s\n", zones[z], n / inv);
    }
    printf("mix: engine %.0f/s, baseline %.0f/s, ratio %.0fx\n", mix_e, mix_b, mix_e / mix_b);
    if (sink == 42)
        puts("");
    return 0;
}
