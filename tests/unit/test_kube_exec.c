/* kube_exec: what a pod's status means for a try (kube_pod_observe) and the
 * RFC 3339 times the executor reads from statuses and log lines.  The
 * executor's behaviour against an API server is tested end to end by
 * tests/integration/kube_e2e.sh. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "kube_exec.h"

static void observe(const char *json, struct kube_obs *o)
{
    json_object *pod = json_tokener_parse(json);
    assert_non_null(pod);
    kube_pod_observe(pod, o);
    /* Pointers into the pod are not used after this in the tests below,
     * except termination_message, checked before the put. */
    json_object_put(pod);
}

#define RUNNING_AT "\"running\": {\"startedAt\": \"2026-11-21T10:00:00Z\"}"

static void test_pending_and_running(void **state)
{
    (void)state;
    struct kube_obs o;
    observe("{\"status\": {\"phase\": \"Pending\"}}", &o);
    assert_int_equal(o.phase, KOBS_PENDING);
    assert_false(o.unschedulable);
    assert_false(o.waiting_error);
    observe("{\"status\": {\"phase\": \"Running\", \"containerStatuses\": [{\"name\": \"main\", "
            "\"state\": {" RUNNING_AT "}}]}}", &o);
    assert_int_equal(o.phase, KOBS_RUNNING);
    assert_true(o.started_us == 1795255200LL * 1000000);
    assert_false(o.deleting);
    observe("{\"metadata\": {\"deletionTimestamp\": \"2026-11-21T10:00:05Z\"}, \"status\": "
            "{\"phase\": \"Running\", \"containerStatuses\": [{\"name\": \"main\", \"state\": {"
            RUNNING_AT "}}]}}", &o);
    assert_true(o.deleting);
}

static void test_exit_codes(void **state)
{
    (void)state;
    struct kube_obs o;
    json_object *pod = json_tokener_parse(
        "{\"status\": {\"phase\": \"Succeeded\", \"containerStatuses\": [{\"name\": \"sidecar\", "
        "\"state\": {\"terminated\": {\"exitCode\": 9}}}, {\"name\": \"main\", \"state\": "
        "{\"terminated\": {\"exitCode\": 0, \"reason\": \"Completed\", \"message\": \"{\\\"n\\\": 1}\", "
        "\"startedAt\": \"2026-11-21T10:00:00Z\", \"finishedAt\": \"2026-11-21T10:00:02.5Z\"}}}]}}");
    kube_pod_observe(pod, &o);
    assert_int_equal(o.phase, KOBS_DONE);
    assert_int_equal(o.exit_code, 0);   /* the container named main, not the first */
    assert_string_equal(o.reason, "");
    assert_string_equal(o.termination_message, "{\"n\": 1}");
    assert_true(o.finished_us - o.started_us == 2500000);
    assert_false(o.infra);
    json_object_put(pod);
    observe("{\"status\": {\"phase\": \"Failed\", \"containerStatuses\": [{\"name\": \"main\", "
            "\"state\": {\"terminated\": {\"exitCode\": 3, \"reason\": \"Error\"}}}]}}", &o);
    assert_int_equal(o.exit_code, 3);
    assert_string_equal(o.reason, "");
    assert_false(o.infra);
}

static void test_oom_and_start_error(void **state)
{
    (void)state;
    struct kube_obs o;
    observe("{\"spec\": {\"containers\": [{\"name\": \"main\", \"resources\": {\"limits\": "
            "{\"memory\": \"64Mi\"}}}]}, \"status\": {\"phase\": \"Failed\", \"containerStatuses\": "
            "[{\"name\": \"main\", \"state\": {\"terminated\": {\"exitCode\": 137, \"reason\": "
            "\"OOMKilled\"}}}]}}", &o);
    assert_true(o.oom);
    assert_false(o.infra);
    assert_int_equal(o.exit_code, 137);
    assert_string_equal(o.reason, "OOMKilled: the container used more memory than its limit "
                                  "of 64Mi (exit code 137)");
    observe("{\"status\": {\"phase\": \"Failed\", \"containerStatuses\": [{\"name\": \"main\", "
            "\"state\": {\"terminated\": {\"exitCode\": 128, \"reason\": \"StartError\", "
            "\"message\": \"exec: \\\"nope\\\": not found\"}}}]}}", &o);
    assert_int_equal(o.exit_code, -1);
    assert_null(o.termination_message);
    assert_string_equal(o.reason, "the container could not start (StartError): exec: \"nope\": "
                                  "not found");
}

static void test_pod_level_endings(void **state)
{
    (void)state;
    struct kube_obs o;
    observe("{\"status\": {\"phase\": \"Failed\", \"reason\": \"Evicted\", \"message\": \"The node "
            "was low on resource: memory.\", \"containerStatuses\": [{\"name\": \"main\", "
            "\"state\": {\"terminated\": {\"exitCode\": 137}}}]}}", &o);
    assert_int_equal(o.phase, KOBS_DONE);
    assert_true(o.infra);
    assert_string_equal(o.reason, "evicted by the node: The node was low on resource: memory.");
    observe("{\"spec\": {\"activeDeadlineSeconds\": 30}, \"status\": {\"phase\": \"Failed\", "
            "\"reason\": \"DeadlineExceeded\", \"message\": \"Pod was active on the node longer "
            "than the specified deadline\"}}", &o);
    assert_false(o.infra);
    assert_string_equal(o.reason, "exceeded its deadline (activeDeadlineSeconds=30): Pod was "
                                  "active on the node longer than the specified deadline");
    observe("{\"status\": {\"phase\": \"Failed\", \"reason\": \"NodeLost\", \"message\": \"gone\"}}",
            &o);
    assert_true(o.infra);
    assert_string_equal(o.reason, "node lost (NodeLost): gone");
    observe("{\"status\": {\"phase\": \"Unknown\"}}", &o);
    assert_int_equal(o.phase, KOBS_DONE);
    assert_true(o.infra);
    assert_non_null(strstr(o.reason, "phase Unknown"));
    observe("{\"status\": {\"phase\": \"Succeeded\"}}", &o);
    assert_int_equal(o.exit_code, 0);
}

static void test_waiting(void **state)
{
    (void)state;
    struct kube_obs o;
    observe("{\"status\": {\"phase\": \"Pending\", \"containerStatuses\": [{\"name\": \"main\", "
            "\"state\": {\"waiting\": {\"reason\": \"ImagePullBackOff\", \"message\": \"Back-off "
            "pulling image \\\"x.invalid/a:1\\\"\"}}}]}}", &o);
    assert_int_equal(o.phase, KOBS_PENDING);
    assert_true(o.waiting_error);
    assert_false(o.waiting_fatal);
    assert_true(o.infra);
    assert_string_equal(o.reason, "the image cannot be pulled: ImagePullBackOff: Back-off pulling "
                                  "image \"x.invalid/a:1\"");
    observe("{\"status\": {\"phase\": \"Pending\", \"containerStatuses\": [{\"name\": \"main\", "
            "\"state\": {\"waiting\": {\"reason\": \"InvalidImageName\"}}}]}}", &o);
    assert_true(o.waiting_fatal);
    assert_false(o.infra);
    observe("{\"status\": {\"phase\": \"Pending\", \"containerStatuses\": [{\"name\": \"main\", "
            "\"state\": {\"waiting\": {\"reason\": \"CreateContainerConfigError\", \"message\": "
            "\"secret \\\"s\\\" not found\"}}}]}}", &o);
    assert_true(o.waiting_error);
    assert_false(o.infra);
    assert_string_equal(o.reason, "the container's configuration is invalid: "
                                  "CreateContainerConfigError: secret \"s\" not found");
    observe("{\"status\": {\"phase\": \"Pending\", \"containerStatuses\": [{\"name\": \"main\", "
            "\"state\": {\"waiting\": {\"reason\": \"ContainerCreating\"}}}]}}", &o);
    assert_false(o.waiting_error);
    observe("{\"status\": {\"phase\": \"Pending\", \"conditions\": [{\"type\": \"PodScheduled\", "
            "\"status\": \"False\", \"reason\": \"Unschedulable\", \"message\": \"0/3 nodes are "
            "available: 3 Insufficient nvidia.com/gpu.\"}]}}", &o);
    assert_true(o.unschedulable);
    assert_string_equal(o.reason, "0/3 nodes are available: 3 Insufficient nvidia.com/gpu.");
}

static void test_times(void **state)
{
    (void)state;
    int64_t s;
    int32_t ns;
    assert_int_equal(kube_parse_time("1970-01-01T00:00:01Z", &s, &ns), 0);
    assert_true(s == 1 && ns == 0);
    /* RFC3339Nano trims trailing zeros: .5 is half a second. */
    assert_int_equal(kube_parse_time("2026-11-21T10:00:00.5Z", &s, &ns), 0);
    assert_int_equal(ns, 500000000);
    assert_int_equal(kube_parse_time("2026-11-21T10:00:00.123456789Z", &s, &ns), 0);
    assert_int_equal(ns, 123456789);
    assert_true(s == 1795255200LL);
    assert_int_equal(kube_parse_time("2026-11-21T12:00:00+02:00", &s, &ns), 0);
    assert_true(s == 1795255200LL);
    assert_int_equal(kube_parse_time("2026-11-21 10:00:00", &s, &ns), -1);
    assert_int_equal(kube_parse_time("yesterday", &s, &ns), -1);
    assert_int_equal(kube_parse_time(NULL, &s, &ns), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pending_and_running), cmocka_unit_test(test_exit_codes),
        cmocka_unit_test(test_oom_and_start_error), cmocka_unit_test(test_pod_level_endings),
        cmocka_unit_test(test_waiting), cmocka_unit_test(test_times),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
