/* knum: decimal numbers in and out, fast where it is provably exact.
 *
 * The ML steps read and write millions of decimal numbers; strtod and
 * printf("%.17g") are exact but general (glibc formats through multi-precision
 * arithmetic), and bench/bench_numfmt.c measures them as the bottleneck of
 * kiln-clean.  Both functions here give byte-for-byte (or bit-for-bit) what libc
 * gives, and hand the cases they do not cover to libc.  Depends on libc only. */
#ifndef KILN_KNUM_H
#define KILN_KNUM_H

#include <stddef.h>

/* Parses a plain decimal number ([+-]digits[.digits][(e|E)[+-]digits]) at P
 * into *OUT and returns the end of it, where the result is provably the double
 * strtod gives: at most 19 significant digits forming an integer of at most
 * 2^53, times or divided by an exact power of ten up to 1e22 (one correctly
 * rounded operation).  Returns NULL (and leaves *OUT alone) otherwise: the
 * caller then uses strtod.  Does not read past the number. */
const char *knum_parse(const char *p, double *out);

/* Bytes enough for knum_fmt17's output and its NUL: "-1.2345678901234567e-308". */
#define KNUM_FMT17_MAX 32

/* Writes X into BUF exactly as snprintf(BUF, KNUM_FMT17_MAX, "%.17g", X) does in
 * the C locale with the default rounding mode (17 significant digits, so it
 * reads back as the same double), NUL-terminated; returns the length.  Exact
 * integer arithmetic for 1e-39 <= |x| < 1e43; libc for the rest (zero
 * included, subnormals, infinities, NaN). */
size_t knum_fmt17(double x, char *buf);

/* floor(e * log10(2)) for |e| <= 1100: 78913 / 2^18 is log10(2) to 7 digits,
 * enough over that range (the unit test checks every e).  Used by knum_fmt17;
 * here for the test. */
int knum_floor_log10_pow2(int e);

#endif
