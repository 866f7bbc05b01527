/* kiln-clean: CSV edge cases, type inference, each operation on tiny inputs
 * (expected values computed by hand), kcol round trip and checksum. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clean.h"
#include "kcol.h"

static char err[512];

static void load(const char *csv, struct table *t)
{
    int rc = csv_load_mem("t.csv", csv, strlen(csv), NULL, t, err, sizeof err);
    if (rc != 0)
        fail_msg("load: %s", err);
    assert_int_equal(table_infer(t, err, sizeof err), 0);
}

static void test_csv_quotes_newlines_crlf(void **state)
{
    struct table t;
    const char *csv = "name,note\r\n\"a, b\",\"say \"\"hi\"\"\"\r\nc,\"two\nlines\"\r\n d ,\r\n";
    assert_int_equal(csv_load_mem("t.csv", csv, strlen(csv), NULL, &t, err, sizeof err), 0);
    assert_int_equal(t.nrows, 3);
    assert_int_equal(t.ncols, 2);
    assert_string_equal(t.cols[0].str[0], "a, b");
    assert_string_equal(t.cols[1].str[0], "say \"hi\"");
    assert_string_equal(t.cols[1].str[1], "two\nlines");
    assert_string_equal(t.cols[0].str[2], " d ");      /* spaces are data */
    assert_null(t.cols[1].str[2]);                     /* empty = missing */
    assert_int_equal(t.cols[1].missing_in, 1);
    table_free(&t);
}

static void test_csv_na_markers(void **state)
{
    struct table t;
    load("x,y\nNA,a\nnull,NaN\n1.5,N/A\n,\"\"\n", &t);
    assert_int_equal(t.cols[0].type, T_NUMBER);
    assert_int_equal(t.cols[0].missing_in, 3);
    assert_int_equal(t.cols[1].missing_in, 3);
    assert_true(isnan(t.cols[0].num[0]));
    assert_true(t.cols[0].num[2] == 1.5);
    table_free(&t);
    const char *na[] = {"?", NULL};
    assert_int_equal(csv_load_mem("t.csv", "x\n?\nNA\n", 7, na, &t, err, sizeof err), 0);
    assert_int_equal(t.cols[0].missing_in, 1);   /* NA is data with --na ? */
    table_free(&t);
}

static void test_csv_errors(void **state)
{
    struct table t;
    const char *a = "a,b\n1,2\n3,\"open\n4,5\n";
    assert_int_equal(csv_load_mem("bad.csv", a, strlen(a), NULL, &t, err, sizeof err), -1);
    assert_string_equal(err, "bad.csv:3: unterminated quoted field");
    const char *b = "a,b\n1,2\n3\n";
    assert_int_equal(csv_load_mem("bad.csv", b, strlen(b), NULL, &t, err, sizeof err), -1);
    assert_non_null(strstr(err, "bad.csv:3: row has 1 fields"));
    const char *c = "a\n1\nx\"y\n";
    assert_int_equal(csv_load_mem("bad.csv", c, strlen(c), NULL, &t, err, sizeof err), -1);
    assert_non_null(strstr(err, "bad.csv:3:"));
}

static void test_infer_and_override(void **state)
{
    struct table t;
    load("i,f,b,c,e\n1,1,true,x,\n-2,2.5e1,FALSE,1,\n", &t);
    assert_int_equal(t.cols[0].type, T_INTEGER);
    assert_int_equal(t.cols[1].type, T_NUMBER);
    assert_int_equal(t.cols[2].type, T_BOOLEAN);
    assert_int_equal(t.cols[3].type, T_CATEGORY);
    assert_int_equal(t.cols[4].type, T_NUMBER);   /* all missing */
    assert_true(t.cols[1].num[1] == 25);
    assert_true(t.cols[2].num[1] == 0);
    table_free(&t);
    const char *csv = "i,z\n1,07\n2,x\n";
    assert_int_equal(csv_load_mem("t.csv", csv, strlen(csv), NULL, &t, err, sizeof err), 0);
    t.cols[0].type = T_CATEGORY;
    t.cols[1].type = T_INTEGER;
    assert_int_equal(table_infer(&t, err, sizeof err), -1);
    assert_non_null(strstr(err, "'x' is not a valid integer"));
    table_free(&t);
}

static void test_dedup_dropna_filter(void **state)
{
    struct table t;
    load("a,b\n1,x\n1,x\n2,\n2,\n1,y\n", &t);
    assert_int_equal(op_dedup(&t), 2);      /* missing equals missing */
    assert_int_equal(t.nrows, 3);
    assert_int_equal(op_dropna(&t), 1);
    assert_int_equal(t.nrows, 2);
    size_t d;
    assert_int_equal(op_filter(&t, "b == y", &d, err, sizeof err), 0);
    assert_int_equal(d, 1);
    assert_string_equal(t.cols[1].str[0], "y");
    assert_int_equal(op_filter(&t, "nope > 1", &d, err, sizeof err), -1);
    table_free(&t);
    load("a\n1\n5\n3\nNA\n", &t);
    assert_int_equal(op_filter(&t, "a >= 3", &d, err, sizeof err), 0);
    assert_int_equal(t.nrows, 2);           /* 5, 3; missing fails */
    assert_true(t.cols[0].num[0] == 5 && t.cols[0].num[1] == 3);
    table_free(&t);
}

static void test_impute(void **state)
{
    struct table t;
    /* a: 1, 2, 6, missing -> mean 3, median 2; c: x x y missing -> x */
    load("a,c\n1,x\n2,x\n6,y\n,\n", &t);
    assert_int_equal(op_impute(&t, 0, IMP_MEAN, NULL, err, sizeof err), 0);
    assert_true(t.cols[0].num[3] == 3);
    assert_int_equal(op_impute(&t, 1, IMP_MOST_FREQUENT, NULL, err, sizeof err), 0);
    assert_string_equal(t.cols[1].str[3], "x");
    table_free(&t);
    load("a\n1\n2\n6\n\"\"\n", &t);  /* a blank line is skipped; "" is a missing value */
    op_impute(&t, 0, IMP_MEDIAN, NULL, err, sizeof err);
    assert_true(t.cols[0].num[3] == 2);
    table_free(&t);
    load("a\n1\n2\n2\n\"\"\n", &t);
    op_impute(&t, 0, IMP_MOST_FREQUENT, NULL, err, sizeof err);
    assert_true(t.cols[0].num[3] == 2);
    table_free(&t);
    load("a\n1\n\"\"\n", &t);
    assert_int_equal(op_impute(&t, 0, IMP_CONSTANT, "-7", err, sizeof err), 0);
    assert_true(t.cols[0].num[1] == -7);
    assert_int_equal(op_impute(&t, 0, IMP_CONSTANT, "zz", err, sizeof err), -1); /* not a number */
    table_free(&t);
}

static void test_stats_clip_scale(void **state)
{
    struct table t;
    /* 1,2,3,4,100: mean 22, sample std sqrt(((21^2+20^2+19^2+18^2+78^2)/4)) = sqrt(7610/4) */
    load("a\n1\n2\n3\n4\n100\n", &t);
    struct stats s;
    col_stats(&t.cols[0], t.nrows, &s);
    assert_true(s.mean == 22);
    assert_true(fabs(s.std - sqrt(7610.0 / 4)) < 1e-12);
    assert_true(s.q1 == 2 && s.q3 == 4 && s.median == 3);
    op_clip(&t.cols[0], t.nrows, CLIP_IQR, 1.5);     /* [2-3, 4+3] = [-1, 7] */
    assert_true(t.cols[0].num[4] == 7);
    assert_true(t.cols[0].num[0] == 1);
    op_scale(&t.cols[0], t.nrows, SCALE_MINMAX);      /* (x-1)/6 */
    assert_true(fabs(t.cols[0].num[1] - 1.0 / 6) < 1e-15);
    assert_true(t.cols[0].num[4] == 1);
    table_free(&t);
    load("a\n1\n2\n3\n", &t);                         /* mean 2, std 1 */
    op_scale(&t.cols[0], t.nrows, SCALE_STANDARD);
    assert_true(t.cols[0].num[0] == -1 && t.cols[0].num[1] == 0 && t.cols[0].num[2] == 1);
    table_free(&t);
    load("a\n0\n0\n0\n0\n10\n", &t);                  /* mean 2, std sqrt(20)=4.472; z 1 -> [-2.47, 6.47] */
    op_clip(&t.cols[0], t.nrows, CLIP_ZSCORE, 1);
    assert_true(fabs(t.cols[0].num[4] - (2 + sqrt(20))) < 1e-12);
    table_free(&t);
}

static void test_onehot(void **state)
{
    struct table t;
    load("k,c\n1,b\n2,a\n3,b\n4,c\n5,\n6,a\n7,d\n", &t);
    op_onehot(&t, 1, 2);   /* a:2 b:2 (tie -> a first), others c,d */
    assert_int_equal(t.ncols, 4);
    assert_string_equal(t.cols[1].name, "c=a");
    assert_string_equal(t.cols[2].name, "c=b");
    assert_string_equal(t.cols[3].name, "c=__other__");
    double want_a[] = {0, 1, 0, 0, 0, 1, 0}, want_o[] = {0, 0, 0, 1, 0, 0, 1};
    for (int r = 0; r < 7; r++) {
        assert_true(t.cols[1].num[r] == want_a[r]);
        assert_true(t.cols[3].num[r] == want_o[r]);
    }
    table_free(&t);
}

static void test_split(void **state)
{
    /* splitmix64 reference: seed 0 -> 0xe220a8397b1dcdaf, 0x6e789e6aa1b965f4 */
    uint64_t st = 0;
    assert_true(splitmix64(&st) == 0xe220a8397b1dcdafULL);
    assert_true(splitmix64(&st) == 0x6e789e6aa1b965f4ULL);
    size_t a[10], b[10];
    split_indices(10, 42, a);
    split_indices(10, 42, b);
    assert_memory_equal(a, b, sizeof a);
    int seen[10] = {0};
    for (int i = 0; i < 10; i++)
        seen[a[i]]++;
    for (int i = 0; i < 10; i++)
        assert_int_equal(seen[i], 1);
    assert_int_equal(split_test_count(10, 0.25), 3);  /* 2.5 rounds half up */
}

static void test_kcol_roundtrip(void **state)
{
    struct table t;
    load("f,i,b,c\n1.5,3,true,y\n,-4,,x\n2,,false,\n", &t);
    char path[] = "/tmp/test_clean_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(kcol_write_table(path, &t, err, sizeof err), 0);
    struct kcol_table k;
    assert_int_equal(kcol_read(path, &k, err, sizeof err), 0);
    assert_int_equal(k.nrows, 3);
    assert_int_equal(k.ncols, 4);
    assert_string_equal(k.cols[0].name, "f");
    assert_int_equal(k.cols[0].type, KCOL_F64);
    assert_true(k.cols[0].f64[0] == 1.5 && isnan(k.cols[0].f64[1]));
    assert_int_equal(k.cols[1].type, KCOL_I64);
    assert_true(k.cols[1].i64[1] == -4 && k.cols[1].i64[2] == KCOL_I64_MISSING);
    assert_int_equal(k.cols[2].type, KCOL_BOOL);
    assert_true(k.cols[2].i64[0] == 1 && k.cols[2].i64[2] == 0);
    assert_int_equal(k.cols[3].type, KCOL_CAT);
    assert_int_equal(k.cols[3].nlevels, 2);
    assert_string_equal(k.cols[3].levels[0], "x");
    assert_true(k.cols[3].i64[0] == 1 && k.cols[3].i64[1] == 0 && k.cols[3].i64[2] == -1);
    kcol_free(&k);
    /* flip one payload byte: the checksum catches it */
    FILE *f = fopen(path, "r+b");
    fseek(f, -12, SEEK_END);
    int ch = fgetc(f);
    fseek(f, -12, SEEK_END);
    fputc(ch ^ 1, f);
    fclose(f);
    assert_int_equal(kcol_read(path, &k, err, sizeof err), -1);
    assert_non_null(strstr(err, "checksum mismatch"));
    f = fopen(path, "wb");
    fputs("NOPE", f);
    fclose(f);
    assert_int_equal(kcol_read(path, &k, err, sizeof err), -1);
    unlink(path);
    table_free(&t);
}

static void test_fnv(void **state)
{
    /* published FNV-1a 64 test vectors */
    assert_true(kcol_fnv1a(KCOL_FNV_OFFSET, "", 0) == 0xcbf29ce484222325ULL);
    assert_true(kcol_fnv1a(KCOL_FNV_OFFSET, "a", 1) == 0xaf63dc4c8601ec8cULL);
    assert_true(kcol_fnv1a(KCOL_FNV_OFFSET, "foobar", 6) == 0x85944171f73967e8ULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_csv_quotes_newlines_crlf),
        cmocka_unit_test(test_csv_na_markers),
        cmocka_unit_test(test_csv_errors),
        cmocka_unit_test(test_infer_and_override),
        cmocka_unit_test(test_dedup_dropna_filter),
        cmocka_unit_test(test_impute),
        cmocka_unit_test(test_stats_clip_scale),
        cmocka_unit_test(test_onehot),
        cmocka_unit_test(test_split),
        cmocka_unit_test(test_kcol_roundtrip),
        cmocka_unit_test(test_fnv),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
