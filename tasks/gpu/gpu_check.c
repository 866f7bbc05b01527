/* kiln-gpu-check: the CUDA kernels against the CPU code they stand in for,
 * as TAP (tests/integration/gpu_ml.sh runs it).  Tolerances (the stated ones,
 * docs/benchmarks.md "ML steps"): the objective's loss and gradient within
 * 1e-12 relative (to the largest gradient entry for the gradient), column
 * moments within 1e-12 relative, clipping and scaling with the same mean and
 * std bit-identical (the same IEEE operations).  Without a visible GPU:
 * "ok 1 # SKIP no GPU visible". */
#include "kgpu.h"
#include "ml.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int n_ok;
static int fails;

static void ok(int cond, const char *fmt, double a, double b)
{
    n_ok++;
    printf("%sok %d - ", cond ? "" : "not ", n_ok);
    printf(fmt, a, b);
    printf("\n");
    if (!cond) fails++;
}

static double urand(uint64_t *s) { return (double)(ml_rand(s) >> 11) / 9007199254740992.0; }

static void check_objective(const char *name, ml_kind kind, size_t n, size_t d, size_t k, size_t classes)
{
    double *x = malloc(n * d * sizeof *x), *y = malloc(n * sizeof *y);
    size_t np = k * (d + 1);
    double *w = malloc(np * sizeof *w), *g = malloc(np * sizeof *g), *gs = malloc(np * sizeof *gs);
    if (!x || !y || !w || !g || !gs) abort();
    uint64_t s = 42;
    for (size_t i = 0; i < n; i++) {
        double lin = 0;
        for (size_t j = 0; j < d; j++) { x[i * d + j] = 2 * urand(&s) - 1; lin += x[i * d + j] * (double)(j % 5); }
        y[i] = kind == ML_LINEAR ? lin + urand(&s) : (double)(ml_rand(&s) % classes);
    }
    for (size_t i = 0; i < np; i++) w[i] = urand(&s) - 0.5;
    ml_problem p = {kind, n, d, k, x, y, 0, 0, NULL};
    double f = ml_objective(&p, w, g, NULL, 0); /* lambda 0: the mean loss and mean gradient */
    char err[300];
    kg_objective *o = kg_objective_new(kind == ML_LINEAR ? 1 : 0, n, d, k, x, y, err, sizeof err);
    double loss = NAN;
    int rc = o ? kg_objective_eval(o, w, &loss, gs, err, sizeof err) : -1;
    if (rc) printf("# %s: %s\n", name, err);
    double gmax = 0, gerr = 0;
    for (size_t i = 0; i < np; i++) {
        gs[i] /= (double)n;
        if (fabs(g[i]) > gmax) gmax = fabs(g[i]);
        if (fabs(g[i] - gs[i]) > gerr) gerr = fabs(g[i] - gs[i]);
    }
    loss /= (double)n;
    char msg[200];
    snprintf(msg, sizeof msg, "%s: loss GPU %%.17g vs CPU %%.17g (1e-12 relative)", name);
    ok(rc == 0 && fabs(loss - f) <= 1e-12 * fabs(f), msg, loss, f);
    snprintf(msg, sizeof msg, "%s: gradient max difference %%.3g (largest entry %%.3g; 1e-12 relative)", name);
    ok(rc == 0 && gerr <= 1e-12 * gmax, msg, gerr, gmax);
    /* the same inputs give the same doubles on the GPU, run after run */
    double loss2 = NAN, *gs2 = malloc(np * sizeof *gs2);
    if (!gs2) abort();
    int rc2 = o ? kg_objective_eval(o, w, &loss2, gs2, err, sizeof err) : -1;
    for (size_t i = 0; i < np; i++) gs2[i] /= (double)n;
    loss2 /= (double)n;
    snprintf(msg, sizeof msg, "%s: a second evaluation gives the same doubles (%%.17g, %%.17g)", name);
    ok(rc2 == 0 && loss2 == loss && memcmp(gs, gs2, np * sizeof *gs) == 0, msg, loss2, loss);
    kg_objective_free(o);
    free(x); free(y); free(w); free(g); free(gs); free(gs2);
}

static void check_columns(size_t n)
{
    double *x = malloc(n * sizeof *x), *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b);
    if (!x || !a || !b) abort();
    uint64_t s = 7;
    for (size_t i = 0; i < n; i++) x[i] = i % 13 == 0 ? NAN : 100 + 30 * (urand(&s) - 0.3);
    /* the CPU reference: col_moments's sums in row order */
    size_t cnt = 0;
    double sum = 0, lo = INFINITY, hi = -INFINITY, ss = 0;
    for (size_t i = 0; i < n; i++)
        if (!isnan(x[i])) { cnt++; sum += x[i]; if (x[i] < lo) lo = x[i]; if (x[i] > hi) hi = x[i]; }
    double mean = sum / (double)cnt;
    for (size_t i = 0; i < n; i++) if (!isnan(x[i])) ss += (x[i] - mean) * (x[i] - mean);
    double sd = sqrt(ss / (double)(cnt - 1));
    size_t gc = 0;
    double gm = NAN, gs = NAN, gmin = NAN, gmax = NAN;
    char err[300];
    int rc = kg_col_moments(x, n, &gc, &gm, &gs, &gmin, &gmax, err, sizeof err);
    if (rc) printf("# moments: %s\n", err);
    ok(rc == 0 && gc == cnt, "column moments: count %.0f vs %.0f", (double)gc, (double)cnt);
    ok(rc == 0 && fabs(gm - mean) <= 1e-12 * fabs(mean), "column moments: mean GPU %.17g vs CPU %.17g (1e-12 relative)", gm, mean);
    ok(rc == 0 && fabs(gs - sd) <= 1e-12 * sd, "column moments: std GPU %.17g vs CPU %.17g (1e-12 relative)", gs, sd);
    ok(rc == 0 && gmin == lo && gmax == hi, "column moments: min and max exact (%.17g, %.17g)", gmin, gmax);
    /* clip and standardize with given bounds: the same IEEE operations */
    memcpy(a, x, n * sizeof *a);
    memcpy(b, x, n * sizeof *b);
    double clo = mean - sd, chi = mean + sd;
    for (size_t i = 0; i < n; i++) { if (a[i] < clo) a[i] = clo; else if (a[i] > chi) a[i] = chi; }
    for (size_t i = 0; i < n; i++) if (!isnan(a[i])) a[i] = (a[i] - mean) / sd;
    rc = kg_col_clip(b, n, clo, chi, err, sizeof err) || kg_col_affine(b, n, mean, sd, err, sizeof err);
    if (rc) printf("# clip/affine: %s\n", err);
    size_t diff = 0;
    for (size_t i = 0; i < n; i++) diff += memcmp(&a[i], &b[i], sizeof *a) != 0;
    ok(rc == 0 && diff == 0, "clip + standardize: %.0f of %.0f values differ from the CPU's (want 0; NaN kept)",
       (double)diff, (double)n);
    free(x); free(a); free(b);
}

int main(void)
{
    char why[300] = "";
    if (kg_device_count(why, sizeof why) == 0) {
        printf("ok 1 # SKIP no GPU visible (%s)\n1..1\n", why);
        return 0;
    }
    check_objective("binary logistic, 100003 x 32", ML_LOGISTIC, 100003, 32, 1, 2);
    check_objective("binary logistic, 5000 x 70", ML_LOGISTIC, 5000, 70, 1, 2);
    check_objective("multinomial, 20000 x 10, 4 classes", ML_LOGISTIC, 20000, 10, 4, 4);
    check_objective("linear, 30000 x 33", ML_LINEAR, 30000, 33, 1, 0);
    check_objective("fewer rows than warps, 100 x 5", ML_LOGISTIC, 100, 5, 1, 2);
    check_columns(1000003);
    check_columns(17);
    printf("1..%d\n", n_ok);
    return fails ? 1 : 0;
}
