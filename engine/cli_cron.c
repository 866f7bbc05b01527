/* kiln cron: check a cron expression before committing it.
 *
 * Needs no home folder, settings or database, so main.c calls it before
 * cli_init: it takes the arguments after "cron" and parses its own options. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cron.h"
#include "util.h"

static void help(FILE *f)
{
    fputs("usage: kiln cron next \"EXPR\" [--tz ZONE] [--after TIME] [-n N] [-o json]\n\n"
          "Prints the next N fire times of a cron expression strictly after TIME, one\n"
          "ISO-8601 time with its UTC offset per line, in the expression's time zone.\n"
          "\n"
          "  EXPR           \"MIN HOUR DAY-OF-MONTH MONTH DAY-OF-WEEK\" or @yearly, @annually,\n"
          "                 @monthly, @weekly, @daily, @midnight, @hourly (see docs/cron.md)\n"
          "  --tz ZONE      IANA time zone, e.g. Europe/Berlin (default UTC)\n"
          "  --after TIME   YYYY-MM-DD[THH:MM[:SS]][Z|+HH:MM] (default now); without an\n"
          "                 offset TIME is wall-clock time in ZONE\n"
          "  -n N           how many fire times, 1 to 10000 (default 5)\n"
          "  -o json        a JSON array of strings\n"
          "\n"
          "Exit status 2 and the reason on stderr for an invalid expression, zone or time.\n"
          "\n"
          "  kiln cron next '30 2 * * *' --tz America/New_York --after 2026-03-07\n",
          f);
}

int cli_cron(int argc, char **argv)
{
    if (cli_wants_help(argc, argv)) {
        help(stdout);
        return EXIT_OK;
    }
    const char *tz = NULL, *after = NULL, *count = NULL, *output = NULL;
    struct sbuf expr;
    sbuf_init(&expr);
    int npos = 0, code = EXIT_USAGE;
    bool sub = false;
    for (int i = 0; i < argc; i++) {
        int r;
        const char *v;
        if ((r = cli_take_value(&i, argc, argv, "--tz", &v, "kiln: cron")) != 0 ||
            (r = cli_take_value(&i, argc, argv, "--timezone", &v, "kiln: cron")) != 0) {
            if (r < 0)
                goto out;
            tz = v;
        } else if ((r = cli_take_value(&i, argc, argv, "--after", &v, "kiln: cron")) != 0) {
            if (r < 0)
                goto out;
            after = v;
        } else if ((r = cli_take_value(&i, argc, argv, "-n", &v, "kiln: cron")) != 0 ||
                   (r = cli_take_value(&i, argc, argv, "--count", &v, "kiln: cron")) != 0) {
            if (r < 0)
                goto out;
            count = v;
        } else if ((r = cli_take_value(&i, argc, argv, "-o", &v, "kiln: cron")) != 0 ||
                   (r = cli_take_value(&i, argc, argv, "--output", &v, "kiln: cron")) != 0) {
            if (r < 0)
                goto out;
            output = v;
        } else if (argv[i][0] == '-' && argv[i][1] != '\0' && !strchr(argv[i], ' ')) {
            fprintf(stderr, "kiln: cron: unknown option '%s'\n", argv[i]);
            goto out;
        } else if (!sub) {
            if (strcmp(argv[i], "next") != 0) {
                fprintf(stderr, "kiln: cron: unknown subcommand '%s' (try: kiln cron next)\n",
                        argv[i]);
                goto out;
            }
            sub = true;
        } else {
            /* The expression, quoted or not: kiln cron next 0 3 '*' '*' '*' */
            if (npos++)
                sbuf_adds(&expr, " ");
            sbuf_adds(&expr, argv[i]);
        }
    }
    if (!sub || npos == 0) {
        help(stderr);
        goto out;
    }
    bool json = false;
    if (output) {
        if (strcmp(output, "json") != 0 && strcmp(output, "table") != 0) {
            fprintf(stderr, "kiln: cron: -o takes json or table, got '%s'\n", output);
            goto out;
        }
        json = strcmp(output, "json") == 0;
    }
    long n = 5;
    if (count) {
        char *end;
        errno = 0;
        n = strtol(count, &end, 10);
        if (errno || end == count || *end || n < 1 || n > 10000) {
            fprintf(stderr, "kiln: cron: -n takes a number from 1 to 10000, got '%s'\n", count);
            goto out;
        }
    }
    struct kiln_err err = { 0 };
    struct cron *c = NULL;
    if (cron_parse(expr.data, tz, &c, &err) < 0) {
        fprintf(stderr, "kiln: %s\n", err.msg);
        goto out;
    }
    int64_t t = now_us();
    if (after && cron_parse_time(c, after, &t, &err) < 0) {
        fprintf(stderr, "kiln: %s\n", err.msg);
        cron_free(c);
        goto out;
    }
    struct sbuf o;
    sbuf_init(&o);
    if (json)
        sbuf_adds(&o, "[");
    for (long i = 0; i < n; i++) {
        int rc = cron_next(c, t, &t);
        if (rc < 0)
            break; /* past year 9999: print what there is */
        char b[64];
        cron_format_time(c, t, b, sizeof b);
        if (json) {
            if (i)
                sbuf_adds(&o, ",");
            sbuf_json_str(&o, b);
        } else {
            sbuf_printf(&o, "%s\n", b);
        }
    }
    if (json)
        sbuf_adds(&o, "]\n");
    fputs(o.data ? o.data : "", stdout);
    sbuf_free(&o);
    cron_free(c);
    code = EXIT_OK;
out:
    sbuf_free(&expr);
    return code;
}
