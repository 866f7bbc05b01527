/* Trigger rules: a table over upstream state mixes.  Each row gives the
 * upstream states of a task (S success, F failed, U upstream_failed,
 * K skipped, R running / not finished) and the verdict expected for each
 * of the eleven rules. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "trigger.h"

static struct up_counts counts(const char *ups)
{
    struct up_counts c = { .total = (int)strlen(ups) };
    for (const char *p = ups; *p; p++) {
        if (*p == 'S')
            c.success++;
        else if (*p == 'F' || *p == 'U')
            c.failed++;
        else if (*p == 'K')
            c.skipped++;
    }
    return c;
}

/* Verdict letters: w wait, r run, k skip, u upstream_failed. */
static enum trigger_verdict verdict(char v)
{
    switch (v) {
    case 'r': return TV_RUN;
    case 'k': return TV_SKIP;
    case 'u': return TV_UPSTREAM_FAILED;
    default: return TV_WAIT;
    }
}

/* Columns, in enum order: all_success all_failed all_done all_skipped
 * one_success one_failed one_done none_failed none_failed_min_one_success
 * none_skipped always. */
static const char *const table[] = {
    "", "S", "F", "U", "K", "R", "SS", "SR", "SF", "SK",
    "FF", "FU", "FR", "KK", "KR", "FK", "RR", "SSK", "SKR", "KKF",
};

/* The expected verdicts, written out rule by rule from Airflow's
 * documentation of each rule (decide as soon as the outcome is certain). */
static const char *const expected[] = {
    /* ""   */ "rrrrrrrrrrr",
    /* S    */ "rkrkrkrrrrr",
    /* F    */ "urrkurruurr",
    /* U    */ "urrkurruurr",
    /* K    */ "kkrrkkkrkkr",
    /* R    */ "wwwwwwwwwwr",
    /* SS   */ "rkrkrkrrrrr",
    /* SR   */ "wkwkrwrwwwr",
    /* SF   */ "ukrkrrruurr",
    /* SK   */ "kkrkrkrrrkr",
    /* FF   */ "urrkurruurr",
    /* FU   */ "urrkurruurr",
    /* FR   */ "uwwkwrruuwr",
    /* KK   */ "kkrrkkkrkkr",
    /* KR   */ "kkwwwwwwwkr",
    /* FK   */ "ukrkurruukr",
    /* RR   */ "wwwwwwwwwwr",
    /* SSK  */ "kkrkrkrrrkr",
    /* SKR  */ "kkwkrwrwwkr",
    /* KKF  */ "ukrkurruukr",
};

static void test_table(void **state)
{
    (void)state;
    assert_int_equal(sizeof table / sizeof *table, sizeof expected / sizeof *expected);
    int checked = 0;
    for (size_t i = 0; i < sizeof table / sizeof *table; i++) {
        struct up_counts c = counts(table[i]);
        for (int r = 0; r < TR__COUNT; r++) {
            enum trigger_verdict got = trigger_eval((enum trigger_rule)r, &c);
            enum trigger_verdict want = verdict(expected[i][r]);
            if (got != want)
                fail_msg("upstreams '%s', rule %s: got %s, want %s", table[i],
                         trigger_rule_name((enum trigger_rule)r), trigger_verdict_name(got),
                         trigger_verdict_name(want));
            checked++;
        }
    }
    assert_int_equal(checked, 20 * 11);
}

/* Properties that must hold for any mix. */
static void test_properties(void **state)
{
    (void)state;
    const char letters[] = "SFUKR";
    char ups[5];
    /* Every mix of 1..4 upstreams. */
    for (int len = 1; len <= 4; len++) {
        int total = 1;
        for (int i = 0; i < len; i++)
            total *= 5;
        for (int code = 0; code < total; code++) {
            int x = code;
            for (int i = 0; i < len; i++, x /= 5)
                ups[i] = letters[x % 5];
            ups[len] = '\0';
            struct up_counts c = counts(ups);
            bool all_done = strchr(ups, 'R') == NULL;
            for (int r = 0; r < TR__COUNT; r++) {
                enum trigger_verdict v = trigger_eval((enum trigger_rule)r, &c);
                /* Once every upstream is done, a rule always decides. */
                if (all_done && v == TV_WAIT)
                    fail_msg("%s waits on finished upstreams '%s'",
                             trigger_rule_name((enum trigger_rule)r), ups);
                /* always never waits and never skips. */
                if (r == TR_ALWAYS && v != TV_RUN)
                    fail_msg("always did not run on '%s'", ups);
            }
            /* all_success runs exactly when every upstream succeeded. */
            bool all_s = strspn(ups, "S") == strlen(ups);
            assert_int_equal(trigger_eval(TR_ALL_SUCCESS, &c) == TV_RUN, all_s);
            /* none_failed never runs with a failed upstream. */
            if (strpbrk(ups, "FU"))
                assert_int_not_equal(trigger_eval(TR_NONE_FAILED, &c), TV_RUN);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_properties),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
