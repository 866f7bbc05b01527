/* knum against libc, in the same run: formatting doubles as "%.17g"
 * (knum_fmt17 vs snprintf) and parsing plain decimals (knum_parse vs strtod),
 * on the kind of values kiln-clean reads and writes.  Checks that both sides
 * agree on every value before timing.  Prints each time and the ratio.
 *
 *   make bench/bench_numfmt && bench/bench_numfmt [N]   (default 2,000,000) */
#include "knum.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t rng_state = 1;
static uint64_t rng(void) /* splitmix64 */
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

int main(int argc, char **argv)
{
    size_t n = argc > 1 ? strtoul(argv[1], NULL, 10) : 2000000;
    double *x = malloc(n * sizeof(double));
    char (*text)[16] = malloc(n * sizeof(*text));
    if (!x || !text || n == 0)
        return 1;
    for (size_t i = 0; i < n; i++) {
        /* standardized values (what kiln-clean writes) and 6-decimal
         * measurements around 50 (what bench_ml.sh's input holds) */
        double u = (double)(rng() >> 11) / 9007199254740992.0;
        x[i] = (u - 0.5) * 6;
        snprintf(text[i], sizeof text[i], "%.6f", 50 + (u - 0.5) * 100);
    }
    char a[KNUM_FMT17_MAX], b[64];
    for (size_t i = 0; i < n; i++) {
        knum_fmt17(x[i], a);
        snprintf(b, sizeof b, "%.17g", x[i]);
        double p = 0;
        if (strcmp(a, b) || !knum_parse(text[i], &p) || p != strtod(text[i], NULL)) {
            fprintf(stderr, "bench_numfmt: knum and libc disagree on value %zu\n", i);
            return 1;
        }
    }
    size_t sink = 0;
    double t0 = now();
    for (size_t i = 0; i < n; i++)
        sink += (size_t)snprintf(b, sizeof b, "%.17g", x[i]);
    double t1 = now();
    for (size_t i = 0; i < n; i++)
        sink += knum_fmt17(x[i], a);
    double t2 = now();
    double sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += strtod(text[i], NULL);
    double t3 = now();
    for (size_t i = 0; i < n; i++) {
        double v = 0;
        knum_parse(text[i], &v);
        sum += v;
    }
    double t4 = now();
    printf("format %zu doubles as %%.17g: snprintf %.1f ns each, knum_fmt17 %.1f ns each, ratio %.2f\n", n,
           (t1 - t0) / (double)n * 1e9, (t2 - t1) / (double)n * 1e9, (t1 - t0) / (t2 - t1));
    printf("parse %zu decimals: strtod %.1f ns each, knum_parse %.1f ns each, ratio %.2f\n", n,
           (t3 - t2) / (double)n * 1e9, (t4 - t3) / (double)n * 1e9, (t3 - t2) / (t4 - t3));
    printf("(checksums %zu %.3f)\n", sink, sum);
    free(x);
    free(text);
    return 0;
}
