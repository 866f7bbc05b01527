/* The state machine's transition tables. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <cmocka.h>

#include "state.h"

static void test_names_round_trip(void **state)
{
    (void)state;
    for (int i = 0; i < TI__COUNT; i++)
        assert_int_equal(ti_state_parse(ti_state_name((enum ti_state)i)), i);
    for (int i = 0; i < RUN__COUNT; i++)
        assert_int_equal(run_state_parse(run_state_name((enum run_state)i)), i);
    assert_int_equal(ti_state_parse("nonsense"), -1);
    assert_string_equal(ti_state_name(TI_UP_FOR_RETRY), "up_for_retry");
    assert_string_equal(ti_state_name(TI_UPSTREAM_FAILED), "upstream_failed");
}

static void test_happy_path_and_retry(void **state)
{
    (void)state;
    assert_true(ti_transition_ok(TI_NONE, TI_SCHEDULED));
    assert_true(ti_transition_ok(TI_SCHEDULED, TI_QUEUED));
    assert_true(ti_transition_ok(TI_QUEUED, TI_RUNNING));
    assert_true(ti_transition_ok(TI_RUNNING, TI_SUCCESS));
    assert_true(ti_transition_ok(TI_RUNNING, TI_UP_FOR_RETRY));
    assert_true(ti_transition_ok(TI_UP_FOR_RETRY, TI_SCHEDULED));
    assert_true(ti_transition_ok(TI_NONE, TI_UPSTREAM_FAILED));
    assert_true(ti_transition_ok(TI_NONE, TI_SKIPPED));
    assert_true(ti_transition_ok(TI_RUNNING, TI_SKIPPED)); /* exit code 99 */
}

static void test_forbidden(void **state)
{
    (void)state;
    /* The scheduler never skips a step of the happy path ... */
    assert_false(ti_transition_ok(TI_NONE, TI_RUNNING));
    assert_false(ti_transition_ok(TI_NONE, TI_QUEUED));
    assert_false(ti_transition_ok(TI_SCHEDULED, TI_RUNNING));
    assert_false(ti_transition_ok(TI_UP_FOR_RETRY, TI_RUNNING));
    /* ... and never leaves a terminal state on its own: only users do. */
    for (int from = 0; from < TI__COUNT; from++) {
        if (!ti_state_terminal((enum ti_state)from))
            continue;
        for (int to = 0; to < TI__COUNT; to++)
            if (ti_transition_ok((enum ti_state)from, (enum ti_state)to))
                fail_msg("scheduler may leave terminal %s for %s",
                         ti_state_name((enum ti_state)from), ti_state_name((enum ti_state)to));
    }
}

static void test_terminal_set(void **state)
{
    (void)state;
    int n = 0;
    for (int i = 0; i < TI__COUNT; i++)
        n += ti_state_terminal((enum ti_state)i);
    assert_int_equal(n, 5); /* success failed upstream_failed skipped removed */
    assert_false(ti_state_terminal(TI_UP_FOR_RETRY));
    assert_false(ti_state_terminal(TI_RUNNING));
}

static void test_user_actions(void **state)
{
    (void)state;
    /* clear: from any finished or waiting state back to none ... */
    assert_true(ti_user_transition_ok(TI_SUCCESS, TI_NONE));
    assert_true(ti_user_transition_ok(TI_FAILED, TI_NONE));
    assert_true(ti_user_transition_ok(TI_UPSTREAM_FAILED, TI_NONE));
    assert_true(ti_user_transition_ok(TI_UP_FOR_RETRY, TI_NONE));
    /* ... but not while a try is in flight. */
    assert_false(ti_user_transition_ok(TI_RUNNING, TI_NONE));
    assert_false(ti_user_transition_ok(TI_QUEUED, TI_NONE));
    /* mark: to a final state from anywhere. */
    assert_true(ti_user_transition_ok(TI_FAILED, TI_SUCCESS));
    assert_true(ti_user_transition_ok(TI_RUNNING, TI_FAILED));
    assert_true(ti_user_transition_ok(TI_NONE, TI_SKIPPED));
    assert_false(ti_user_transition_ok(TI_SUCCESS, TI_RUNNING));
}

static void test_run_transitions(void **state)
{
    (void)state;
    assert_true(run_transition_ok(RUN_QUEUED, RUN_RUNNING));
    assert_true(run_transition_ok(RUN_RUNNING, RUN_SUCCESS));
    assert_true(run_transition_ok(RUN_RUNNING, RUN_FAILED));
    assert_true(run_transition_ok(RUN_QUEUED, RUN_FAILED));     /* cancelled before start */
    assert_true(run_transition_ok(RUN_SUCCESS, RUN_QUEUED));    /* a cleared task re-opens it */
    assert_false(run_transition_ok(RUN_QUEUED, RUN_SUCCESS));
    assert_false(run_transition_ok(RUN_RUNNING, RUN_QUEUED));
    assert_true(run_state_terminal(RUN_FAILED));
    assert_false(run_state_terminal(RUN_RUNNING));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names_round_trip),  cmocka_unit_test(test_happy_path_and_retry),
        cmocka_unit_test(test_forbidden),         cmocka_unit_test(test_terminal_set),
        cmocka_unit_test(test_user_actions),      cmocka_unit_test(test_run_transitions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
