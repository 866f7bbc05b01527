/* knum: see knum.h.
 *
 * knum_fmt17 computes the 17 significant digits with exact integer arithmetic
 * (no floating point at all): for x = m * 2^q (m < 2^53) and a decimal
 * exponent X, the digits are N = x * 10^(16-X) = m * 5^s * 2^(q+s) with
 * s = 16 - X, rounded half to even as glibc does in the default rounding mode.
 * For s >= 0 that is a product of at most 192 bits shifted right (the bits
 * shifted out decide the rounding); for s < 0 a 128-bit integer divided by
 * 5^-s (odd, so never a tie).  Outside the range these widths cover, and for
 * zero, subnormals, infinities and NaN, libc formats. */
#include "knum.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

typedef unsigned __int128 u128;

/* Exact powers of ten: every one up to 1e22 is a double without rounding. */
static const double pow10_exact[23] = {
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
    1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
};

const char *knum_parse(const char *p, double *out)
{
    int neg = 0;
    if (*p == '-') { neg = 1; p++; }
    else if (*p == '+') p++;
    uint64_t m = 0;
    int sig = 0, frac = 0, digits = 0;
    while ((unsigned)(*p - '0') < 10) {
        if (m || *p != '0') { if (++sig > 19) return NULL; m = m * 10 + (uint64_t)(*p - '0'); }
        p++; digits++;
    }
    if (*p == '.') {
        p++;
        while ((unsigned)(*p - '0') < 10) {
            if (m || *p != '0') { if (++sig > 19) return NULL; m = m * 10 + (uint64_t)(*p - '0'); }
            p++; digits++; frac++;
        }
    }
    if (!digits) return NULL;
    int e = 0;
    if (*p == 'e' || *p == 'E') {
        p++;
        int eneg = 0;
        if (*p == '-') { eneg = 1; p++; }
        else if (*p == '+') p++;
        int ed = 0;
        while ((unsigned)(*p - '0') < 10) { if (++ed > 4) return NULL; e = e * 10 + (*p - '0'); p++; }
        if (!ed) return NULL;
        if (eneg) e = -e;
    }
    e -= frac;
    if (m > (1ULL << 53) || e < -22 || e > 22) return NULL;
    double v = (double)m;
    if (e >= 0) v *= pow10_exact[e];
    else v /= pow10_exact[-e];
    *out = neg ? -v : v;
    return p;
}

#define POW5_MAX 27 /* the largest power of five below 2^64 */
static const uint64_t pow5[POW5_MAX + 1] = {
    1ULL, 5ULL, 25ULL, 125ULL, 625ULL, 3125ULL, 15625ULL, 78125ULL, 390625ULL,
    1953125ULL, 9765625ULL, 48828125ULL, 244140625ULL, 1220703125ULL,
    6103515625ULL, 30517578125ULL, 152587890625ULL, 762939453125ULL,
    3814697265625ULL, 19073486328125ULL, 95367431640625ULL, 476837158203125ULL,
    2384185791015625ULL, 11920928955078125ULL, 59604644775390625ULL,
    298023223876953125ULL, 1490116119384765625ULL, 7450580596923828125ULL,
};

#define TEN16 10000000000000000ULL
#define TEN17 100000000000000000ULL

int knum_floor_log10_pow2(int e)
{
    return e >= 0 ? (e * 78913) >> 18 : -((-e * 78913 + (1 << 18) - 1) >> 18);
}

/* Bit I of the 192-bit little-endian number W. */
static inline unsigned bit192(const uint64_t w[3], unsigned i)
{
    return (unsigned)(w[i >> 6] >> (i & 63)) & 1u;
}

/* N = floor(m * 10^(16-X) * 2^q) and whether to round it up (half to even).
 * Returns -1 where the widths here do not reach (the caller asks libc). */
static int scaled_digits(uint64_t m, int q, int X, uint64_t *n, int *up)
{
    int s = 16 - X;
    if (s < 0) {
        /* x * 10^s = m * 2^(q-t) / 5^t with t = -s */
        int t = -s, sh = q - t;
        if (t > POW5_MAX || sh < 0 || sh > 127 - 53)
            return -1;
        u128 num = (u128)m << sh;
        u128 quo = num / pow5[t];
        uint64_t rem = (uint64_t)(num - quo * pow5[t]);
        if (quo >> 64)
            return -1;
        *n = (uint64_t)quo;
        *up = 2 * rem > pow5[t]; /* 5^t is odd: no ties */
        return 0;
    }
    /* P = m * 5^s, up to 192 bits, then shifted by q + s */
    uint64_t w[3];
    u128 lo;
    if (s <= POW5_MAX) {
        lo = (u128)m * pow5[s];
        w[2] = 0;
    } else {
        if (s > 2 * POW5_MAX)
            return -1;
        u128 a = (u128)m * pow5[POW5_MAX]; /* < 2^116 */
        uint64_t b = pow5[s - POW5_MAX];
        u128 p0 = (u128)(uint64_t)a * b;
        u128 p1 = (u128)(uint64_t)(a >> 64) * b + (p0 >> 64);
        lo = (p1 << 64) | (uint64_t)p0;
        w[2] = (uint64_t)(p1 >> 64);
    }
    w[0] = (uint64_t)lo;
    w[1] = (uint64_t)(lo >> 64);
    int k = -(q + s); /* N = P / 2^k */
    if (k <= 0) {
        if (w[2] || w[1] || -k >= 64 || (w[0] >> (63 + k)))
            return -1;
        *n = w[0] << -k;
        *up = 0;
        return 0;
    }
    if (k >= 128)
        return -1;
    /* the 64 bits from bit k up, then nothing above them */
    u128 hi = ((u128)w[2] << 64) | w[1];
    u128 shifted = k >= 64 ? hi >> (k - 64) : ((hi << (64 - k)) | (w[0] >> k));
    if (k >= 64 ? (hi >> (k - 64)) >> 64 != 0 : (hi >> k) != 0)
        return -1; /* more than 64 bits: not 17 digits */
    *n = (uint64_t)shifted;
    unsigned half = bit192(w, (unsigned)k - 1);
    int sticky = 0;
    for (unsigned i = 0; i + 1 < (unsigned)k && !sticky; i += 64) {
        unsigned bits = (unsigned)k - 1 - i; /* bits of word i/64 below the half bit */
        uint64_t word = w[i >> 6];
        sticky = bits >= 64 ? word != 0 : (word & ((1ULL << bits) - 1)) != 0;
    }
    *up = half && (sticky || (*n & 1));
    return 0;
}

static const char two_digits[201] =
    "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
    "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
    "8081828384858687888990919293949596979899";

size_t knum_fmt17(double x, char *buf)
{
    uint64_t bits;
    memcpy(&bits, &x, sizeof bits);
    unsigned be = (unsigned)(bits >> 52) & 0x7ff;
    if (be == 0 || be == 0x7ff)
        return (size_t)snprintf(buf, KNUM_FMT17_MAX, "%.17g", x);
    uint64_t m = (bits & ((1ULL << 52) - 1)) | (1ULL << 52);
    int q = (int)be - 1075;               /* x = m * 2^q */
    int X = knum_floor_log10_pow2(q + 52); /* 10^X <= |x| */
    uint64_t n;
    int up;
    if (scaled_digits(m, q, X, &n, &up) < 0)
        return (size_t)snprintf(buf, KNUM_FMT17_MAX, "%.17g", x);
    if (n >= TEN17) { /* |x| >= 10^(X+1): one more decimal digit */
        X++;
        if (scaled_digits(m, q, X, &n, &up) < 0)
            return (size_t)snprintf(buf, KNUM_FMT17_MAX, "%.17g", x);
    }
    if (n < TEN16 || n >= TEN17) /* not expected: the estimate is exact */
        return (size_t)snprintf(buf, KNUM_FMT17_MAX, "%.17g", x);
    n += (uint64_t)up;
    if (n == TEN17) { /* 9.99..95 rounded up to 10.00.. */
        n = TEN16;
        X++;
    }
    char d[18];
    d[0] = (char)('0' + n / TEN16);
    n %= TEN16;
    for (int i = 16; i > 0; i -= 2) {
        unsigned r = (unsigned)(n % 100);
        n /= 100;
        d[i - 1] = two_digits[2 * r];
        d[i] = two_digits[2 * r + 1];
    }
    int last = 16; /* %g drops trailing zeros */
    while (last > 0 && d[last] == '0')
        last--;
    char *o = buf;
    if (bits >> 63)
        *o++ = '-';
    if (X >= -4 && X < 17) {
        if (X >= 0) {
            memcpy(o, d, (size_t)X + 1);
            o += X + 1;
            if (last > X) {
                *o++ = '.';
                memcpy(o, d + X + 1, (size_t)(last - X));
                o += last - X;
            }
        } else {
            *o++ = '0';
            *o++ = '.';
            for (int i = -1; i > X; i--)
                *o++ = '0';
            memcpy(o, d, (size_t)last + 1);
            o += last + 1;
        }
    } else {
        *o++ = d[0];
        if (last > 0) {
            *o++ = '.';
            memcpy(o, d + 1, (size_t)last);
            o += last;
        }
        *o++ = 'e';
        *o++ = X < 0 ? '-' : '+';
        unsigned ax = (unsigned)(X < 0 ? -X : X);
        if (ax >= 100)
            *o++ = (char)('0' + ax / 100);
        *o++ = two_digits[2 * (ax % 100)];
        *o++ = two_digits[2 * (ax % 100) + 1];
    }
    *o = '\0';
    return (size_t)(o - buf);
}
