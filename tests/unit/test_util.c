/* util: durations, identifiers, edit distance, JSON strings, files. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <cmocka.h>

#include "util.h"

static void test_duration_parse(void **state)
{
    static const struct {
        const char *in;
        int64_t ms;
    } good[] = {
        { "30s", 30000 }, { "5m", 300000 }, { "1h", 3600000 }, { "1h30m", 5400000 },
        { "500ms", 500 }, { "2d", 172800000 }, { "45", 45000 }, { "0s", 0 },
        { "1m30s", 90000 }, { "1h0m5s", 3605000 },
    };
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
        int64_t v = -1;
        assert_int_equal(duration_parse(good[i].in, &v), 0);
        assert_int_equal(v, good[i].ms);
    }
    static const char *const bad[] = { "", "soon", "5x", "-5s", "1.5s", "1m30", "s", "5 s",
                                       "99999999999999999999s" };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        int64_t v;
        if (duration_parse(bad[i], &v) == 0)
            fail_msg("'%s' parsed as %lld", bad[i], (long long)v);
    }
}

static void test_duration_format(void **state)
{
    char b[32];
    duration_format(30000, b, sizeof b);
    assert_string_equal(b, "30s");
    duration_format(90000, b, sizeof b);
    assert_string_equal(b, "1m30s");
    duration_format(250, b, sizeof b);
    assert_string_equal(b, "250ms");
    duration_format(3600000, b, sizeof b);
    assert_string_equal(b, "1h");
    duration_format(0, b, sizeof b);
    assert_string_equal(b, "0s");
}

static void test_ident(void **state)
{
    assert_true(ident_valid("load_2.csv-x"));
    assert_false(ident_valid(""));
    assert_false(ident_valid(".hidden"));
    assert_false(ident_valid("a/b"));
    assert_false(ident_valid("a b"));
    assert_false(ident_valid("a:b"));
    assert_int_equal(levenshtein("retires", "retries"), 2);
    assert_int_equal(levenshtein("deps", "deps"), 0);
    assert_int_equal(levenshtein("", "abc"), 3);
}

static void test_json_str(void **state)
{
    struct sbuf b;
    sbuf_init(&b);
    sbuf_json_str(&b, "a\"b\\c\nd\x01");
    assert_string_equal(b.data, "\"a\\\"b\\\\c\\nd\\u0001\"");
    sbuf_free(&b);
}

static void test_files(void **state)
{
    char dir[] = "/tmp/kiln-util-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char *deep = xasprintf("%s/a/b/c", dir);
    assert_int_equal(mkdir_p(deep, 0755), 0);
    assert_int_equal(mkdir_p(deep, 0755), 0); /* exists: fine */
    char *f = xasprintf("%s/file", deep);
    assert_int_equal(file_write_atomic(f, "hello", 5, 0600), 0);
    struct stat sb;
    assert_int_equal(stat(f, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    char *data = NULL;
    size_t len = 0;
    assert_int_equal(file_read_all(f, &data, &len), 0);
    assert_int_equal(len, 5);
    assert_string_equal(data, "hello");
    free(data);
    assert_true(file_read_all("/nonexistent/x", &data, &len) < 0);
    char *cmd = xasprintf("rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
    free(cmd);
    free(f);
    free(deep);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_duration_parse), cmocka_unit_test(test_duration_format),
        cmocka_unit_test(test_ident),          cmocka_unit_test(test_json_str),
        cmocka_unit_test(test_files),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
