/* kiln-train / kiln-eval internals: gradients, solvers, model file, metrics. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kcol.h"
#include "ml.h"

static double urand(uint64_t *s) { return (double)(ml_rand(s) >> 11) / 9007199254740992.0; }

/* n rows, d features, labels from a noisy linear rule (k classes, or a real target when k == 0) */
static void make_data(size_t n, size_t d, size_t k, uint64_t seed, double *x, double *y)
{
    uint64_t s = seed;
    for (size_t i = 0; i < n; i++) {
        double best = -1e9, lin = 0;
        for (size_t j = 0; j < d; j++) { x[i * d + j] = 2 * urand(&s) - 1; lin += (double)(j + 1) * x[i * d + j]; }
        if (k == 0) { y[i] = lin + 0.1 * (urand(&s) - 0.5); continue; }
        y[i] = 0;
        for (size_t c = 0; c < k; c++) {
            double sc = x[i * d + (c % d)] * (c + 1.0) + 0.5 * urand(&s);
            if (sc > best) { best = sc; y[i] = (double)c; }
        }
    }
}

static void check_grad(ml_kind kind, size_t k, size_t classes)
{
    enum { N = 40, D = 4 };
    double x[N * D], y[N];
    make_data(N, D, kind == ML_LINEAR ? 0 : classes, 11, x, y);
    ml_problem p = {kind, N, D, k, x, y, 0.3, 0, NULL};
    size_t np = ml_nparams(&p);
    double *w = malloc(np * sizeof *w), *g = malloc(np * sizeof *g);
    uint64_t s = 5;
    for (size_t i = 0; i < np; i++) w[i] = urand(&s) - 0.5;
    ml_objective(&p, w, g, NULL, 0);
    for (size_t i = 0; i < np; i++) {
        double h = 1e-6, keep = w[i];
        w[i] = keep + h;
        double fp = ml_objective(&p, w, NULL, NULL, 0);
        w[i] = keep - h;
        double fm = ml_objective(&p, w, NULL, NULL, 0);
        w[i] = keep;
        double fd = (fp - fm) / (2 * h);
        assert_true(fabs(fd - g[i]) < 1e-6 * fmax(1.0, fabs(fd)));
    }
    /* a mini-batch objective is the same function on fewer rows */
    size_t idx[3] = {4, 9, 17};
    double *gb = malloc(np * sizeof *gb);
    double fb = ml_objective(&p, w, gb, idx, 3);
    assert_true(isfinite(fb));
    free(w); free(g); free(gb);
}

static void test_grad_binary(void **st) { (void)st; check_grad(ML_LOGISTIC, 1, 2); }
static void test_grad_multinomial(void **st) { (void)st; check_grad(ML_LOGISTIC, 3, 3); }
static void test_grad_linear(void **st) { (void)st; check_grad(ML_LINEAR, 1, 0); }

static void test_lbfgs_converges(void **st)
{
    (void)st;
    enum { N = 200, D = 5 };
    double x[N * D], y[N];
    make_data(N, D, 3, 3, x, y);
    ml_problem p = {ML_LOGISTIC, N, D, 3, x, y, 1.0 / N, 0, NULL};
    double w[3 * (D + 1)] = {0}, g[3 * (D + 1)];
    ml_opts o;
    ml_opts_default(&o, ML_LBFGS);
    ml_result r;
    assert_int_equal(ml_fit(&p, NULL, &o, w, &r), 0);
    assert_true(r.converged);
    ml_objective(&p, w, g, NULL, 0);
    for (size_t i = 0; i < 3 * (D + 1); i++) assert_true(fabs(g[i]) < 1e-7);
    /* linear regression without a penalty: the least-squares solution recovers the rule */
    make_data(N, D, 0, 4, x, y);
    ml_problem q = {ML_LINEAR, N, D, 1, x, y, 0, 0, NULL};
    double v[D + 1] = {0};
    assert_int_equal(ml_fit(&q, NULL, &o, v, &r), 0);
    for (size_t j = 0; j < D; j++) assert_true(fabs(v[j] - (double)(j + 1)) < 0.05);
}

static void test_sgd_deterministic(void **st)
{
    (void)st;
    enum { N = 300, D = 4 };
    double x[N * D], y[N];
    make_data(N, D, 2, 8, x, y);
    ml_problem p = {ML_LOGISTIC, N, D, 1, x, y, 1e-3, 0, NULL};
    for (int solver = ML_SGD; solver <= ML_ADAM; solver++) {
        ml_opts o;
        ml_opts_default(&o, (ml_solver)solver);
        o.epochs = 15; o.seed = 42; o.lr = solver == ML_SGD ? 0.05 : 0.01;
        double a[D + 1] = {0}, b[D + 1] = {0}, c[D + 1] = {0};
        ml_result r;
        ml_fit(&p, NULL, &o, a, &r);
        ml_fit(&p, NULL, &o, b, &r);
        assert_memory_equal(a, b, sizeof a);
        o.seed = 43;
        ml_fit(&p, NULL, &o, c, &r);
        assert_true(memcmp(a, c, sizeof a) != 0);
        assert_true(r.train_loss < log(2.0)); /* it learned something */
    }
}

static void test_early_stopping(void **st)
{
    (void)st;
    enum { N = 200, D = 3 };
    double x[N * D], y[N], yv[N];
    make_data(N, D, 2, 9, x, y);
    for (size_t i = 0; i < N; i++) yv[i] = 1 - y[i]; /* validation labels flipped: fitting hurts it */
    ml_problem tr = {ML_LOGISTIC, N, D, 1, x, y, 0, 0, NULL}, va = {ML_LOGISTIC, N, D, 1, x, yv, 0, 0, NULL};
    ml_opts o;
    ml_opts_default(&o, ML_SGD);
    o.epochs = 100; o.patience = 3; o.lr = 0.05;
    double w[D + 1] = {0};
    ml_result r;
    assert_int_equal(ml_fit(&tr, &va, &o, w, &r), 0);
    assert_true(r.early_stopped);
    assert_true(r.iterations < 100);
    assert_int_equal(r.iterations, r.best_epoch + 3);
    /* the best epoch's weights are the ones returned */
    assert_true(fabs(r.val_loss - ml_objective(&va, w, NULL, NULL, 0)) < 1e-15);
    /* without the flip, training runs on while the validation loss improves */
    ml_problem va2 = {ML_LOGISTIC, N, D, 1, x, y, 0, 0, NULL};
    double w2[D + 1] = {0};
    o.epochs = 5;
    ml_fit(&tr, &va2, &o, w2, &r);
    assert_false(r.early_stopped);
    assert_int_equal(r.iterations, 5);
}

static void test_model_roundtrip(void **st)
{
    (void)st;
    ml_model m = {0};
    char *names[3] = {"a", "b c", "d\"q"};
    double classes[3] = {0, 1, 7}, mean[3] = {0.1, -2, 3e10}, sd[3] = {1, 0.3, 1e-3};
    double w[12];
    uint64_t s = 1;
    for (int i = 0; i < 12; i++) w[i] = urand(&s) * 10 - 5;
    m.kind = ML_LOGISTIC; m.d = 3; m.k = 3; m.nclasses = 3; m.classes = classes; m.features = names;
    m.target = "label"; m.mean = mean; m.std = sd; m.w = w;
    m.training = json_object_new_object();
    json_object_object_add(m.training, "solver", json_object_new_string("lbfgs"));
    char path[] = "/tmp/kiln-test-model.XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    char err[256];
    assert_int_equal(ml_model_save(&m, path, err, sizeof err), 0);
    ml_model l;
    assert_int_equal(ml_model_load(path, &l, err, sizeof err), 0);
    assert_int_equal(l.kind, ML_LOGISTIC);
    assert_int_equal(l.d, 3);
    assert_int_equal(l.k, 3);
    assert_int_equal(l.nclasses, 3);
    assert_memory_equal(l.classes, classes, sizeof classes);
    assert_memory_equal(l.mean, mean, sizeof mean);
    assert_memory_equal(l.std, sd, sizeof sd);
    assert_memory_equal(l.w, w, sizeof w); /* doubles survive the text exactly */
    for (int i = 0; i < 3; i++) assert_string_equal(l.features[i], names[i]);
    assert_string_equal(l.target, "label");
    assert_string_equal(json_object_get_string(json_object_object_get(l.training, "solver")), "lbfgs");
    double row[3] = {0.5, -1, 3e10}, p1[3], p2[3];
    ml_predict_row(&m, row, p1);
    ml_predict_row(&l, row, p2);
    assert_memory_equal(p1, p2, sizeof p1);
    assert_true(fabs(p1[0] + p1[1] + p1[2] - 1) < 1e-12);
    ml_model_free(&l);
    json_object_put(m.training);
    /* a newer version is refused with a message */
    FILE *f = fopen(path, "w");
    fputs("{\"format\": \"kiln-model\", \"version\": 99}", f);
    fclose(f);
    assert_int_not_equal(ml_model_load(path, &l, err, sizeof err), 0);
    assert_non_null(strstr(err, "version 99"));
    unlink(path);
}

static void test_roc_auc(void **st)
{
    (void)st;
    int y1[4] = {0, 0, 1, 1};
    double s1[4] = {0.1, 0.4, 0.35, 0.8};
    assert_float_equal(ml_roc_auc(4, y1, s1), 0.75, 1e-12);
    int y2[4] = {0, 1, 0, 1}; /* a tie between a positive and a negative counts half */
    double s2[4] = {0.5, 0.5, 0.2, 0.8};
    assert_float_equal(ml_roc_auc(4, y2, s2), 0.875, 1e-12);
    double s3[4] = {0.3, 0.3, 0.3, 0.3};
    assert_float_equal(ml_roc_auc(4, y2, s3), 0.5, 1e-12);
    int y4[3] = {1, 1, 1};
    assert_true(isnan(ml_roc_auc(3, y4, s3)));
}

static void test_binary_metrics(void **st)
{
    (void)st;
    int yt[4] = {0, 0, 1, 1};
    double pr[8] = {0.9, 0.1, 0.6, 0.4, 0.65, 0.35, 0.2, 0.8};
    ml_cls_metrics m;
    assert_int_equal(ml_cls_metrics_compute(4, 2, yt, pr, &m), 0);
    assert_float_equal(m.accuracy, 0.75, 1e-12);
    assert_float_equal(m.precision, 1.0, 1e-12);
    assert_float_equal(m.recall, 0.5, 1e-12);
    assert_float_equal(m.f1, 2.0 / 3.0, 1e-12);
    assert_float_equal(m.roc_auc, 0.75, 1e-12);
    assert_float_equal(m.log_loss, -(log(0.9) + log(0.6) + log(0.35) + log(0.8)) / 4, 1e-12);
    size_t cm[4] = {2, 0, 1, 1};
    assert_memory_equal(m.confusion, cm, sizeof cm);
    ml_cls_metrics_free(&m);
}

static void test_multiclass_metrics(void **st)
{
    (void)st;
    int yt[6] = {0, 1, 2, 2, 1, 0};
    int pred[6] = {0, 2, 2, 1, 1, 0};
    double pr[18];
    for (int i = 0; i < 6; i++)
        for (int c = 0; c < 3; c++) pr[i * 3 + c] = c == pred[i] ? 0.6 : 0.2;
    ml_cls_metrics m;
    assert_int_equal(ml_cls_metrics_compute(6, 3, yt, pr, &m), 0);
    size_t cm[9] = {2, 0, 0, 0, 1, 1, 0, 1, 1};
    assert_memory_equal(m.confusion, cm, sizeof cm);
    assert_float_equal(m.accuracy, 4.0 / 6.0, 1e-12);
    assert_float_equal(m.precision, 2.0 / 3.0, 1e-12);
    assert_float_equal(m.recall, 2.0 / 3.0, 1e-12);
    assert_float_equal(m.f1, 2.0 / 3.0, 1e-12);
    assert_float_equal(m.log_loss, -log(0.6) * 4 / 6 - log(0.2) * 2 / 6, 1e-12);
    /* one-vs-rest AUCs: class 0 = 1; class 1 and 2: 0.6 vs 0.2 with one of two positives right */
    json_object *j = ml_cls_metrics_json(&m, NULL);
    assert_int_equal(json_object_array_length(json_object_object_get(j, "confusion_matrix")), 3);
    json_object_put(j);
    ml_cls_metrics_free(&m);
}

static void test_regression_metrics(void **st)
{
    (void)st;
    double yt[3] = {1, 2, 3}, yp[3] = {1, 2, 5};
    ml_reg_metrics m;
    ml_reg_metrics_compute(3, yt, yp, &m);
    assert_float_equal(m.rmse, sqrt(4.0 / 3.0), 1e-12);
    assert_float_equal(m.mae, 2.0 / 3.0, 1e-12);
    assert_float_equal(m.r2, -1.0, 1e-12);
}

static void test_csv(void **st)
{
    (void)st;
    char path[] = "/tmp/kiln-test-csv.XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *text = "f1, \"y\" ,f2\r\n1,0,2.5\r\n\r\n-3e2,1,4\r\n";
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    ml_data d;
    char err[256];
    assert_int_equal(ml_csv_read(path, "y", &d, err, sizeof err), 0);
    assert_int_equal(d.n, 2);
    assert_int_equal(d.d, 2);
    assert_string_equal(d.names[0], "f1");
    assert_string_equal(d.names[1], "f2");
    assert_string_equal(d.target, "y");
    double x[4] = {1, 2.5, -300, 4}, y[2] = {0, 1};
    assert_memory_equal(d.x, x, sizeof x);
    assert_memory_equal(d.y, y, sizeof y);
    assert_int_equal(d.checksum, ml_fnv1a64(text, strlen(text), 0));
    ml_data_free(&d);
    assert_int_not_equal(ml_csv_read(path, "nope", &d, err, sizeof err), 0);
    assert_non_null(strstr(err, "no column named 'nope'"));
    FILE *f = fopen(path, "w");
    fputs("a,b\n1,2\n3,x\n", f);
    fclose(f);
    assert_int_not_equal(ml_csv_read(path, NULL, &d, err, sizeof err), 0);
    assert_non_null(strstr(err, ":3: column 2 ('b'): not a number: 'x'"));
    unlink(path);
}

/* The vectorized softplus/sigmoid against libm over the whole range that matters. */
static void test_logistic_terms(void **st)
{
    (void)st;
    enum { N = 20001 };
    double *z = malloc(N * sizeof *z), *sp = malloc(N * sizeof *sp), *sg = malloc(N * sizeof *sg);
    for (size_t i = 0; i < N; i++) z[i] = -60.0 + 120.0 * (double)i / (N - 1);
    z[0] = -800; z[1] = 745; z[2] = 1e-300; z[3] = -0.0; z[4] = 3e-17; /* extremes and tiny values */
    ml_logistic_terms(z, N, sp, sg);
    double worst_sp = 0, worst_sg = 0;
    for (size_t i = 0; i < N; i++) {
        double a = fabs(z[i]) > 708 ? (z[i] > 0 ? 708 : -708) : z[i];
        double rsp = a > 0 ? a + log1p(exp(-a)) : log1p(exp(a));
        double rsg = a >= 0 ? 1 / (1 + exp(-a)) : exp(a) / (1 + exp(a));
        if (z[i] > 708) rsp = z[i] + log1p(exp(-z[i]));
        double esp = fabs(sp[i] - rsp) / fmax(fabs(rsp), 1e-300), esg = fabs(sg[i] - rsg) / fmax(rsg, 1e-300);
        if (esp > worst_sp) worst_sp = esp;
        if (esg > worst_sg) worst_sg = esg;
    }
    assert_true(worst_sp < 1e-15); /* a few ulp */
    assert_true(worst_sg < 1e-15);
    /* odd lengths run the tail through the same code */
    double z3[3] = {-2, 0, 2}, a3[3], b3[3];
    ml_logistic_terms(z3, 3, a3, b3);
    assert_float_equal(a3[1], log(2.0), 1e-16);
    assert_float_equal(b3[0] + b3[2], 1.0, 1e-16);
    free(z); free(sp); free(sg);
}

/* Block sums added in order: the same doubles whatever the number of threads,
 * and the same function as a plain libm sum (to rounding). */
static void test_objective_threads(void **st)
{
    (void)st;
    enum { N = 20000, D = 7 }; /* several blocks, the last one partial; D not a multiple of 4 */
    double *x = malloc(N * D * sizeof *x), *y = malloc(N * sizeof *y);
    const struct { ml_kind kind; size_t k, classes; } cases[3] = {{ML_LOGISTIC, 1, 2}, {ML_LOGISTIC, 3, 3},
                                                                   {ML_LINEAR, 1, 0}};
    for (int c = 0; c < 3; c++) {
        make_data(N, D, cases[c].classes, 21 + c, x, y);
        ml_problem p = {cases[c].kind, N, D, cases[c].k, x, y, 1e-3, 1, NULL};
        size_t np = ml_nparams(&p);
        double w[3 * (D + 1)], g1[3 * (D + 1)], g2[3 * (D + 1)], g5[3 * (D + 1)];
        uint64_t s = 9;
        for (size_t i = 0; i < np; i++) w[i] = 2 * urand(&s) - 1;
        double f1 = ml_objective(&p, w, g1, NULL, 0);
        p.threads = 2;
        double f2 = ml_objective(&p, w, g2, NULL, 0);
        p.threads = 5;
        double f5 = ml_objective(&p, w, g5, NULL, 0);
        assert_memory_equal(&f1, &f2, sizeof f1);
        assert_memory_equal(&f1, &f5, sizeof f1);
        assert_memory_equal(g1, g2, np * sizeof *g1);
        assert_memory_equal(g1, g5, np * sizeof *g1);
        /* reference: row by row with libm */
        double ref = 0;
        for (size_t i = 0; i < N; i++) {
            double z[3];
            for (size_t r = 0; r < p.k; r++) {
                z[r] = w[r * (D + 1) + D];
                for (size_t j = 0; j < D; j++) z[r] += w[r * (D + 1) + j] * x[i * D + j];
            }
            if (p.kind == ML_LINEAR) ref += 0.5 * (z[0] - y[i]) * (z[0] - y[i]);
            else if (p.k == 1) ref += (z[0] > 0 ? z[0] + log1p(exp(-z[0])) : log1p(exp(z[0]))) - y[i] * z[0];
            else ref += log(exp(z[0]) + exp(z[1]) + exp(z[2])) - z[(size_t)y[i]];
        }
        ref /= N;
        double reg = 0;
        for (size_t r = 0; r < p.k; r++) for (size_t j = 0; j < D; j++) reg += w[r * (D + 1) + j] * w[r * (D + 1) + j];
        ref += 0.5 * p.lambda * reg;
        assert_true(fabs(f1 - ref) < 1e-12 * fmax(1.0, fabs(ref)));
    }
    free(x); free(y);
}

/* The reader cuts big files into pieces parsed by several threads: values,
 * blank lines and the line number of an error must not notice. */
static void test_csv_pieces(void **st)
{
    (void)st;
    char path[] = "/tmp/kiln-test-csvp.XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    enum { ROWS = 300000 }; /* about 10 MB: more than one piece */
    fputs("a,b,c\n", f);
    size_t blanks = 0;
    for (size_t i = 0; i < ROWS; i++) {
        if (i % 77777 == 5) { fputs("\n", f); blanks++; }
        /* some rows the fast path leaves to strtod (long mantissa, hex-free but 25 digits) */
        if (i % 100000 == 3) fprintf(f, "%zu.0000000000000000000001,%.17g,%zu\n", i, (double)i / 7, i % 2);
        else fprintf(f, "%zu,%.17g,%zu\n", i, (double)i / 7, i % 2);
    }
    fclose(f);
    ml_data d;
    char err[256];
    assert_int_equal(ml_csv_read(path, NULL, &d, err, sizeof err), 0);
    assert_int_equal(d.n, ROWS);
    int same = 1;
    for (size_t i = 0; i < ROWS && same; i++)
        same = d.x[2 * i] == (double)i && d.x[2 * i + 1] == (double)i / 7 && d.y[i] == (double)(i % 2);
    assert_true(same);
    ml_data_free(&d);
    /* a bad value near the end: its line number counts the header and the blank lines */
    f = fopen(path, "a");
    fputs("1,2,3\n4,oops,6\n", f);
    fclose(f);
    assert_int_not_equal(ml_csv_read(path, NULL, &d, err, sizeof err), 0);
    char want[64];
    snprintf(want, sizeof want, ":%zu: column 2 ('b'): not a number: 'oops'", 1 + ROWS + blanks + 2);
    assert_non_null(strstr(err, want));
    unlink(path);
}

/* The radix-sorted AUC against counting pairs, with ties, negative scores and -0. */
static void test_roc_auc_pairs(void **st)
{
    (void)st;
    enum { N = 600 };
    int pos[N];
    double sc[N];
    uint64_t s = 3;
    for (size_t i = 0; i < N; i++) {
        pos[i] = urand(&s) < 0.4;
        sc[i] = floor((urand(&s) - 0.5) * 40) / 8; /* many ties, both signs */
        if (i % 50 == 0) sc[i] = (i % 100 == 0) ? -0.0 : 0.0;
    }
    double num = 0, np = 0, nn = 0;
    for (size_t i = 0; i < N; i++) {
        if (pos[i]) np++; else nn++;
        if (!pos[i]) continue;
        for (size_t j = 0; j < N; j++)
            if (!pos[j]) num += sc[i] > sc[j] ? 1 : sc[i] == sc[j] ? 0.5 : 0;
    }
    assert_float_equal(ml_roc_auc(N, pos, sc), num / (np * nn), 1e-12);
}

/* kiln-clean's kcol output as kiln-train input: values, the target by name,
 * the checksum (FNV-1a of the whole file, as for a CSV), and the errors. */
static void write_kcol3(const char *path, size_t n, int with_cat, double nan_at)
{
    struct kcol_column cols[3];
    memset(cols, 0, sizeof cols);
    double *a = malloc(n * sizeof *a);
    int64_t *b = malloc(n * sizeof *b), *y = malloc(n * sizeof *y);
    for (size_t i = 0; i < n; i++) {
        a[i] = (double)i * 0.25 - 3;
        b[i] = (int64_t)(i % 7) - 3;
        y[i] = (int64_t)(i % 2);
    }
    if (nan_at >= 0) a[(size_t)nan_at] = NAN;
    char *lv[2] = {"no", "yes"};
    cols[0] = (struct kcol_column){.name = "a", .type = KCOL_F64, .f64 = a};
    cols[1] = (struct kcol_column){.name = "y", .type = with_cat ? KCOL_CAT : KCOL_BOOL, .i64 = y,
                                   .nlevels = with_cat ? 2 : 0, .levels = with_cat ? lv : NULL};
    cols[2] = (struct kcol_column){.name = "b", .type = KCOL_I64, .i64 = b};
    struct kcol_table tb = {n, 3, cols};
    char err[256];
    assert_int_equal(kcol_write(path, &tb, err, sizeof err), 0);
    free(a); free(b); free(y);
}

static void test_kcol_input(void **st)
{
    (void)st;
    char path[] = "/tmp/kiln-test-kcol.XXXXXX.kcol";
    int fd = mkstemps(path, 5);
    assert_true(fd >= 0);
    close(fd);
    for (int big = 0; big < 2; big++) {
        size_t n = big ? 200003 : 5; /* big: several row ranges on several threads */
        write_kcol3(path, n, 0, -1);
        ml_data d;
        char err[256];
        assert_int_equal(ml_data_read(path, "y", &d, err, sizeof err), 0);
        assert_int_equal(d.n, n);
        assert_int_equal(d.d, 2);
        assert_string_equal(d.names[0], "a");
        assert_string_equal(d.names[1], "b");
        assert_string_equal(d.target, "y");
        int same = 1;
        for (size_t i = 0; i < n && same; i++)
            same = d.x[2 * i] == (double)i * 0.25 - 3 && d.x[2 * i + 1] == (double)((int64_t)(i % 7) - 3) &&
                   d.y[i] == (double)(i % 2);
        assert_true(same);
        /* the checksum: FNV-1a of every byte of the file */
        FILE *f = fopen(path, "rb");
        uint64_t h = 0;
        char buf[65536];
        size_t got;
        while ((got = fread(buf, 1, sizeof buf, f)) > 0) h = ml_fnv1a64(buf, got, h);
        fclose(f);
        assert_int_equal(d.checksum, h);
        ml_data_free(&d);
    }
    ml_data d;
    char err[256];
    write_kcol3(path, 10, 0, 6);
    assert_int_not_equal(ml_data_read(path, "y", &d, err, sizeof err), 0);
    assert_non_null(strstr(err, "row 7, column 'a': missing value"));
    write_kcol3(path, 10, 1, -1);
    assert_int_not_equal(ml_data_read(path, NULL, &d, err, sizeof err), 0);
    assert_non_null(strstr(err, "column 'y' is a category"));
    write_kcol3(path, 10, 0, -1);
    FILE *f = fopen(path, "r+b");
    fseek(f, 100, SEEK_SET);
    fputc(0x5a, f);
    fclose(f);
    assert_int_not_equal(ml_data_read(path, "y", &d, err, sizeof err), 0);
    assert_non_null(strstr(err, "checksum mismatch"));
    assert_int_not_equal(ml_data_read(path, "nope", &d, err, sizeof err), 0);
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_grad_binary),
        cmocka_unit_test(test_grad_multinomial),
        cmocka_unit_test(test_grad_linear),
        cmocka_unit_test(test_lbfgs_converges),
        cmocka_unit_test(test_sgd_deterministic),
        cmocka_unit_test(test_early_stopping),
        cmocka_unit_test(test_model_roundtrip),
        cmocka_unit_test(test_roc_auc),
        cmocka_unit_test(test_binary_metrics),
        cmocka_unit_test(test_multiclass_metrics),
        cmocka_unit_test(test_regression_metrics),
        cmocka_unit_test(test_csv),
        cmocka_unit_test(test_logistic_terms),
        cmocka_unit_test(test_objective_threads),
        cmocka_unit_test(test_csv_pieces),
        cmocka_unit_test(test_roc_auc_pairs),
        cmocka_unit_test(test_kcol_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
