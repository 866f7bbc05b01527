/* Objectives (logistic, multinomial, squared error; L2 without the intercepts)
 * and their solvers: full-batch L-BFGS, mini-batch SGD with momentum, Adam.
 * Everything runs on the CPU in a fixed order, so a seed fixes the result. */
#include "ml.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static double softplus(double z) { return z > 0 ? z + log1p(exp(-z)) : log1p(exp(z)); }

double ml_objective(const ml_problem *p, const double *w, double *grad, const size_t *idx, size_t m)
{
    size_t d = p->d, k = p->k, np = ml_nparams(p);
    if (!idx) m = p->n;
    if (grad) memset(grad, 0, np * sizeof *grad);
    double loss = 0;
    double zbuf[64];
    double *z = k <= 64 ? zbuf : malloc(k * sizeof *z);
    if (!z) abort();
    for (size_t t = 0; t < m; t++) {
        size_t i = idx ? idx[t] : t;
        const double *x = p->x + i * d;
        for (size_t r = 0; r < k; r++) {
            const double *wr = w + r * (d + 1);
            double s = wr[d];
            for (size_t j = 0; j < d; j++) s += wr[j] * x[j];
            z[r] = s;
        }
        if (p->kind == ML_LINEAR) {
            double e = z[0] - p->y[i];
            loss += 0.5 * e * e;
            z[0] = e;
        } else if (k == 1) {
            double y = p->y[i];
            loss += softplus(z[0]) - y * z[0];
            z[0] = 1.0 / (1.0 + exp(-z[0])) - y;
        } else {
            double mx = z[0];
            for (size_t r = 1; r < k; r++) if (z[r] > mx) mx = z[r];
            double s = 0;
            for (size_t r = 0; r < k; r++) s += exp(z[r] - mx);
            double lse = mx + log(s);
            size_t yi = (size_t)p->y[i];
            loss += lse - z[yi];
            for (size_t r = 0; r < k; r++) z[r] = exp(z[r] - lse) - (r == yi);
        }
        if (grad) {
            for (size_t r = 0; r < k; r++) {
                double *gr = grad + r * (d + 1), e = z[r];
                for (size_t j = 0; j < d; j++) gr[j] += e * x[j];
                gr[d] += e;
            }
        }
    }
    if (z != zbuf) free(z);
    double inv = m ? 1.0 / (double)m : 0;
    loss *= inv;
    double reg = 0;
    for (size_t r = 0; r < k; r++) {
        const double *wr = w + r * (d + 1);
        double *gr = grad ? grad + r * (d + 1) : NULL;
        for (size_t j = 0; j < d; j++) {
            reg += wr[j] * wr[j];
            if (gr) gr[j] = gr[j] * inv + p->lambda * wr[j];
        }
        if (gr) gr[d] *= inv;
    }
    return loss + 0.5 * p->lambda * reg;
}

void ml_opts_default(ml_opts *o, ml_solver s)
{
    memset(o, 0, sizeof *o);
    o->solver = s;
    o->max_iter = 10000;
    o->tol = s == ML_LBFGS ? 1e-10 : 1e-6;
    o->epochs = 200;
    o->batch = 32;
    o->lr = s == ML_ADAM ? 0.001 : 0.01;
    o->momentum = 0.9;
    o->beta1 = 0.9; o->beta2 = 0.999; o->eps = 1e-8;
    o->seed = 1;
    o->patience = 10;
}

static double dot(const double *a, const double *b, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

static double amax(const double *a, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++) if (fabs(a[i]) > m) m = fabs(a[i]);
    return m;
}

#define LBFGS_M 10

static int fit_lbfgs(const ml_problem *p, const ml_opts *o, double *w, ml_result *r)
{
    size_t np = ml_nparams(p);
    double *g = malloc(np * sizeof *g), *gn = malloc(np * sizeof *gn), *dir = malloc(np * sizeof *dir),
           *xn = malloc(np * sizeof *xn), *S = malloc(LBFGS_M * np * sizeof *S),
           *Y = malloc(LBFGS_M * np * sizeof *Y), rho[LBFGS_M], alpha[LBFGS_M];
    if (!g || !gn || !dir || !xn || !S || !Y) abort();
    double f = ml_objective(p, w, g, NULL, 0);
    double g0 = amax(g, np), gtol = o->tol * (g0 > 1 ? g0 : 1);
    size_t hist = 0, head = 0, it;
    double t0 = now_s();
    r->converged = 0;
    for (it = 0; it < o->max_iter; it++) {
        if (amax(g, np) <= gtol) { r->converged = 1; break; }
        /* two-loop recursion: dir = -H g */
        for (size_t i = 0; i < np; i++) dir[i] = -g[i];
        for (size_t h = 0; h < hist; h++) {
            size_t j = (head + LBFGS_M - 1 - h) % LBFGS_M;
            alpha[j] = rho[j] * dot(S + j * np, dir, np);
            for (size_t i = 0; i < np; i++) dir[i] -= alpha[j] * Y[j * np + i];
        }
        if (hist) {
            size_t j = (head + LBFGS_M - 1) % LBFGS_M;
            double gamma = dot(S + j * np, Y + j * np, np) / dot(Y + j * np, Y + j * np, np);
            for (size_t i = 0; i < np; i++) dir[i] *= gamma;
        }
        for (size_t h = hist; h-- > 0;) {
            size_t j = (head + LBFGS_M - 1 - h) % LBFGS_M;
            double beta = rho[j] * dot(Y + j * np, dir, np);
            for (size_t i = 0; i < np; i++) dir[i] += (alpha[j] - beta) * S[j * np + i];
        }
        double gd = dot(g, dir, np);
        if (!(gd < 0)) { /* not a descent direction: restart from steepest descent */
            hist = 0;
            for (size_t i = 0; i < np; i++) dir[i] = -g[i];
            gd = dot(g, dir, np);
        }
        double step = hist ? 1.0 : 1.0 / fmax(1.0, sqrt(-gd));
        double fn = f;
        int ok = 0;
        for (int ls = 0; ls < 60; ls++) {
            for (size_t i = 0; i < np; i++) xn[i] = w[i] + step * dir[i];
            fn = ml_objective(p, xn, gn, NULL, 0);
            if (fn <= f + 1e-4 * step * gd) { ok = 1; break; }
            step *= 0.5;
        }
        if (!ok) { r->converged = amax(g, np) <= gtol * 1e3; break; } /* no decrease left: numerical floor */
        double *sj = S + head * np, *yj = Y + head * np;
        for (size_t i = 0; i < np; i++) { sj[i] = xn[i] - w[i]; yj[i] = gn[i] - g[i]; }
        double sy = dot(sj, yj, np);
        if (sy > 1e-12 * sqrt(dot(sj, sj, np) * dot(yj, yj, np))) {
            rho[head] = 1.0 / sy;
            head = (head + 1) % LBFGS_M;
            if (hist < LBFGS_M) hist++;
        }
        memcpy(w, xn, np * sizeof *w);
        memcpy(g, gn, np * sizeof *g);
        double fprev = f;
        f = fn;
        if (o->verbose && ((it + 1) % 25 == 0 || it == 0)) {
            double el = now_s() - t0;
            fprintf(stderr, "iter %zu loss %.6f grad %.3g examples/s %.0f\n", it + 1, f, amax(g, np),
                    el > 0 ? (double)(it + 1) * (double)p->n / el : 0.0);
        }
        if (fprev - f <= 1e-16 * fmax(1.0, fabs(f)) && amax(g, np) <= gtol * 1e3) { r->converged = 1; it++; break; }
    }
    r->iterations = it;
    r->train_loss = f;
    if (o->verbose)
        fprintf(stderr, "iter %zu loss %.6f grad %.3g (%s)\n", it, f, amax(g, np),
                r->converged ? "converged" : "max iterations reached");
    free(g); free(gn); free(dir); free(xn); free(S); free(Y);
    return 0;
}

static int fit_sgd(const ml_problem *p, const ml_problem *val, const ml_opts *o, double *w, ml_result *r)
{
    size_t np = ml_nparams(p), n = p->n;
    size_t bs = o->batch == 0 || o->batch > n ? n : o->batch;
    double *g = malloc(np * sizeof *g), *m1 = calloc(np, sizeof *m1), *m2 = calloc(np, sizeof *m2),
           *best = malloc(np * sizeof *best);
    size_t *idx = malloc(n * sizeof *idx);
    if (!g || !m1 || !m2 || !best || !idx) abort();
    for (size_t i = 0; i < n; i++) idx[i] = i;
    uint64_t rng = o->seed;
    double best_loss = INFINITY, b1t = 1, b2t = 1;
    size_t since = 0, e;
    memcpy(best, w, np * sizeof *w);
    r->best_epoch = 0;
    for (e = 1; e <= o->epochs; e++) {
        double t0 = now_s();
        if (bs < n) ml_shuffle(idx, n, &rng);
        double sum = 0;
        for (size_t b = 0; b < n; b += bs) {
            size_t m = n - b < bs ? n - b : bs;
            sum += ml_objective(p, w, g, idx + b, m) * (double)m;
            if (o->solver == ML_SGD) {
                for (size_t i = 0; i < np; i++) { m1[i] = o->momentum * m1[i] - o->lr * g[i]; w[i] += m1[i]; }
            } else {
                b1t *= o->beta1; b2t *= o->beta2;
                for (size_t i = 0; i < np; i++) {
                    m1[i] = o->beta1 * m1[i] + (1 - o->beta1) * g[i];
                    m2[i] = o->beta2 * m2[i] + (1 - o->beta2) * g[i] * g[i];
                    w[i] -= o->lr * (m1[i] / (1 - b1t)) / (sqrt(m2[i] / (1 - b2t)) + o->eps);
                }
            }
        }
        double el = now_s() - t0;
        double tl = sum / (double)n;
        double vl = val && val->n ? ml_objective(val, w, NULL, NULL, 0) : NAN;
        double mon = val && val->n ? vl : tl;
        if (!isfinite(tl)) {
            if (o->verbose) fprintf(stderr, "epoch %zu: loss diverged (lower --lr)\n", e);
            break;
        }
        if (o->verbose) {
            if (val && val->n)
                fprintf(stderr, "epoch %zu/%zu loss %.6f val_loss %.6f examples/s %.0f\n", e, o->epochs, tl, vl,
                        el > 0 ? (double)n / el : 0.0);
            else
                fprintf(stderr, "epoch %zu/%zu loss %.6f examples/s %.0f\n", e, o->epochs, tl,
                        el > 0 ? (double)n / el : 0.0);
        }
        if (mon < best_loss - o->tol) {
            best_loss = mon; since = 0; r->best_epoch = e;
            memcpy(best, w, np * sizeof *w);
        } else if (++since >= o->patience) {
            r->early_stopped = 1;
            if (o->verbose)
                fprintf(stderr, "early stopping at epoch %zu: no improvement of the %s loss for %zu epochs (best epoch %zu)\n",
                        e, val && val->n ? "validation" : "training", o->patience, r->best_epoch);
            break;
        }
    }
    r->iterations = e > o->epochs ? o->epochs : e;
    r->converged = r->early_stopped;
    if (r->best_epoch) memcpy(w, best, np * sizeof *w);
    r->train_loss = ml_objective(p, w, NULL, NULL, 0);
    free(g); free(m1); free(m2); free(best); free(idx);
    return 0;
}

int ml_fit(const ml_problem *train, const ml_problem *val, const ml_opts *o, double *w, ml_result *r)
{
    memset(r, 0, sizeof *r);
    r->val_loss = NAN;
    if (train->n == 0) return -1;
    double t0 = now_s();
    int rc;
    if (o->solver == ML_LBFGS) rc = fit_lbfgs(train, o, w, r);
    else if (o->solver == ML_SGD || o->solver == ML_ADAM) {
        if (o->epochs == 0 || !(o->lr > 0)) return -1;
        rc = fit_sgd(train, val, o, w, r);
    } else return -1;
    if (val && val->n) r->val_loss = ml_objective(val, w, NULL, NULL, 0);
    r->seconds = now_s() - t0;
    return rc;
}
