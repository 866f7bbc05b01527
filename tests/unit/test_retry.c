/* Retry delays: constant, exponential backoff, caps, no overflow. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "dag.h"

static struct dag_task task(int64_t delay, bool backoff, int64_t cap)
{
    struct dag_task t = { 0 };
    t.retry_delay_ms = delay;
    t.retry_exponential_backoff = backoff;
    t.max_retry_delay_ms = cap;
    return t;
}

static void test_constant(void **state)
{
    struct dag_task t = task(30000, false, 0);
    for (int n = 2; n < 50; n++)
        assert_int_equal(dag_retry_delay_ms(&t, n), 30000);
}

static void test_backoff_doubles(void **state)
{
    struct dag_task t = task(1000, true, 0);
    /* next_try 2 is the first retry: the base delay, then doubling. */
    static const int64_t want[] = { 1000, 2000, 4000, 8000, 16000, 32000 };
    for (int i = 0; i < 6; i++)
        assert_int_equal(dag_retry_delay_ms(&t, i + 2), want[i]);
}

static void test_backoff_capped(void **state)
{
    struct dag_task t = task(1000, true, 10000);
    assert_int_equal(dag_retry_delay_ms(&t, 5), 8000);
    assert_int_equal(dag_retry_delay_ms(&t, 6), 10000);   /* 16 s capped at 10 s */
    assert_int_equal(dag_retry_delay_ms(&t, 60), 10000);
    /* Without max_retry_delay, 24 h is the cap, and huge try numbers do not overflow. */
    struct dag_task u = task(1000, true, 0);
    assert_int_equal(dag_retry_delay_ms(&u, 1000), 86400000);
    assert_int_equal(dag_retry_delay_ms(&u, 2147483647), 86400000);
    struct dag_task v = task(INT64_MAX / 4, true, 0);
    assert_int_equal(dag_retry_delay_ms(&v, 40), 86400000);
}

static void test_zero_delay(void **state)
{
    struct dag_task t = task(0, true, 0);
    assert_int_equal(dag_retry_delay_ms(&t, 2), 0);
    assert_int_equal(dag_retry_delay_ms(&t, 10), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_constant), cmocka_unit_test(test_backoff_doubles),
        cmocka_unit_test(test_backoff_capped), cmocka_unit_test(test_zero_delay),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
