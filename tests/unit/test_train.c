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
    ml_problem p = {kind, N, D, k, x, y, 0.3};
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
    ml_problem p = {ML_LOGISTIC, N, D, 3, x, y, 1.0 / N};
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
    ml_problem q = {ML_LINEAR, N, D, 1, x, y, 0};
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
    ml_problem p = {ML_LOGISTIC, N, D, 1, x, y, 1e-3};
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
    ml_problem tr = {ML_LOGISTIC, N, D, 1, x, y, 0}, va = {ML_LOGISTIC, N, D, 1, x, yv, 0};
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
    ml_problem va2 = {ML_LOGISTIC, N, D, 1, x, y, 0};
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
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
