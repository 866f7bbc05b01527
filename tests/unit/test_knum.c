/* knum: knum_fmt17 against snprintf("%.17g") and knum_parse against strtod,
 * byte for byte and bit for bit, on random doubles of every magnitude, on
 * exact ties (the half-to-even cases), on powers of ten and their neighbours
 * (where the decimal exponent changes), and on the values kiln-clean writes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "knum.h"

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;
static uint64_t rng(void) /* splitmix64 */
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static long fmt_mismatches; /* counted, the first few printed */

static void check_fmt(double x)
{
    char got[KNUM_FMT17_MAX], want[64];
    size_t n = knum_fmt17(x, got);
    int wn = snprintf(want, sizeof want, "%.17g", x);
    if (n != (size_t)wn || strcmp(got, want) != 0) {
        if (fmt_mismatches < 5)
            print_message("knum_fmt17(%a) = \"%s\", snprintf gives \"%s\"\n", x, got, want);
        fmt_mismatches++;
    }
}

static void test_fmt_random_bits(void **state)
{
    (void)state;
    fmt_mismatches = 0;
    for (int i = 0; i < 400000; i++) { /* every exponent, both signs, NaNs too */
        uint64_t b = rng();
        double x;
        memcpy(&x, &b, sizeof x);
        check_fmt(x);
    }
    assert_int_equal(fmt_mismatches, 0);
}

static void test_fmt_random_common_range(void **state)
{
    (void)state;
    fmt_mismatches = 0;
    for (int i = 0; i < 400000; i++) { /* 1e-45 .. 1e45: the exact path */
        uint64_t b = rng();
        double x = ldexp((double)(b >> 11), (int)(b % 300) - 203);
        check_fmt(i & 1 ? -x : x);
    }
    for (int i = 0; i < 200000; i++) { /* what standardizing writes */
        double u = (double)(rng() >> 11) / 9007199254740992.0;
        check_fmt((u - 0.5) * 8);
    }
    assert_int_equal(fmt_mismatches, 0);
}

/* k / 2^j with k odd has exactly j decimals, the last a 5: with 18 significant
 * digits that 5 is a tie at the 17th, which goes to the even digit. */
static void test_fmt_ties(void **state)
{
    (void)state;
    fmt_mismatches = 0;
    char buf[KNUM_FMT17_MAX];
    knum_fmt17(1.0 + ldexp(1, -17), buf); /* 1.00000762939453125 */
    assert_string_equal(buf, "1.0000076293945312");
    knum_fmt17(1.0 + 3 * ldexp(1, -17), buf); /* 1.00002288818359375 */
    assert_string_equal(buf, "1.0000228881835938");
    for (int j = 1; j <= 64; j++)
        for (long k = 1; k < 4000; k += 2)
            for (int sh = -40; sh <= 40; sh += 4)
                check_fmt(ldexp((double)k, sh - j));
    assert_int_equal(fmt_mismatches, 0);
}

/* Where the decimal exponent steps, and where %g switches to exponent form. */
static void test_fmt_powers_of_ten(void **state)
{
    (void)state;
    fmt_mismatches = 0;
    for (int e = -325; e <= 308; e++) {
        char s[16];
        snprintf(s, sizeof s, "1e%d", e);
        double x = strtod(s, NULL);
        double lo = x, hi = x;
        check_fmt(x);
        for (int i = 0; i < 4; i++) {
            lo = nextafter(lo, 0);
            hi = nextafter(hi, INFINITY);
            check_fmt(lo);
            check_fmt(hi);
            check_fmt(-hi);
        }
        check_fmt(9.5 * x);
        check_fmt(9.999999999999999 * x);
    }
    assert_int_equal(fmt_mismatches, 0);
    char buf[KNUM_FMT17_MAX];
    knum_fmt17(0.0001, buf); /* the last fixed form */
    assert_string_equal(buf, "0.0001");
    knum_fmt17(1e17, buf);
    assert_string_equal(buf, "1e+17");
    knum_fmt17(12345678901234567.0, buf);
    assert_string_equal(buf, "12345678901234568");
}

static void test_fmt_special(void **state)
{
    (void)state;
    fmt_mismatches = 0;
    const double v[] = {0.0, -0.0, 1.0, -1.0, 0.5, 0.1, 100.0, 123456.0, DBL_MIN, -DBL_MIN,
                        DBL_TRUE_MIN, DBL_MAX, -DBL_MAX, DBL_EPSILON, INFINITY, -INFINITY,
                        NAN, 9007199254740993.0, 0x1p-1022, 0x1.fffffffffffffp-1023};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
        check_fmt(v[i]);
    assert_int_equal(fmt_mismatches, 0);
    char buf[KNUM_FMT17_MAX];
    knum_fmt17(-0.0, buf);
    assert_string_equal(buf, "-0");
    knum_fmt17(0.1, buf);
    assert_string_equal(buf, "0.10000000000000001");
}

/* What the exponent estimate rests on: floor(e * log10(2)), checked against
 * the decimal length of 2^e computed exactly in long double for |e| <= 1100. */
static void test_floor_log10_pow2(void **state)
{
    (void)state;
    for (int e = -1100; e <= 1100; e++) {
        /* 2^e is exact in long double; floor(log10) of it is off only at
         * exact powers of ten, which 2^e never is but for e = 0 */
        long double l = log10l(ldexpl(1.0L, e));
        assert_int_equal(knum_floor_log10_pow2(e), (int)floorl(l));
    }
}

static void check_parse(const char *s)
{
    double fast = -12345.0;
    const char *end = knum_parse(s, &fast);
    char *send;
    double slow = strtod(s, &send);
    if (!end)
        return; /* not taken: the caller uses strtod, nothing to compare */
    if (end != send || memcmp(&fast, &slow, sizeof fast) != 0)
        fail_msg("knum_parse(\"%s\") = %a ending at %td, strtod: %a ending at %td", s, fast,
                 end - s, slow, send - s);
}

static void test_parse(void **state)
{
    (void)state;
    const char *cases[] = {"0", "-0", "+5", "5.", ".5", "57.532499", "-15.135819", "1e22",
                           "1e-22", "123456789012345678", "9007199254740993", "0.000001e5",
                           "00012.5000", "1E+3", "2.5e-3x", "7,8"};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        check_parse(cases[i]);
    double v = 1;
    assert_null(knum_parse(".", &v));
    assert_null(knum_parse("-", &v));
    assert_null(knum_parse("1e", &v));
    assert_null(knum_parse("1e+", &v));
    assert_null(knum_parse("inf", &v));
    assert_null(knum_parse("1e23", &v));            /* 10^23 is not a double */
    assert_null(knum_parse("12345678901234567891", &v)); /* 20 digits */
    assert_true(v == 1);
    const char *e = knum_parse("-0", &v);
    assert_non_null(e);
    assert_true(v == 0 && signbit(v));
    /* random decimals with up to 19 digits and exponents: every one taken
     * must be strtod's double */
    long taken = 0;
    for (int i = 0; i < 200000; i++) {
        char s[64];
        uint64_t b = rng();
        int digits = 1 + (int)(b % 19), point = (int)((b >> 8) % (unsigned)(digits + 1));
        int n = 0;
        if (b >> 63)
            s[n++] = '-';
        for (int d = 0; d < digits; d++) {
            if (d == point)
                s[n++] = '.';
            s[n++] = (char)('0' + rng() % 10);
        }
        if ((b >> 20) & 1)
            n += snprintf(s + n, sizeof s - (size_t)n, "e%d", (int)((b >> 24) % 50) - 25);
        s[n] = '\0';
        double x;
        if (knum_parse(s, &x))
            taken++;
        check_parse(s);
    }
    assert_true(taken > 100000); /* the fast path is the common one */
}

/* Every double knum_fmt17 writes reads back, through knum_parse or strtod. */
static void test_round_trip(void **state)
{
    (void)state;
    for (int i = 0; i < 200000; i++) {
        double x = ldexp((double)(rng() >> 11), (int)(rng() % 120) - 90);
        char buf[KNUM_FMT17_MAX];
        knum_fmt17(x, buf);
        double y;
        if (!knum_parse(buf, &y))
            y = strtod(buf, NULL);
        assert_memory_equal(&x, &y, sizeof x);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fmt_random_bits),
        cmocka_unit_test(test_fmt_random_common_range),
        cmocka_unit_test(test_fmt_ties),
        cmocka_unit_test(test_fmt_powers_of_ten),
        cmocka_unit_test(test_fmt_special),
        cmocka_unit_test(test_floor_log10_pow2),
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
