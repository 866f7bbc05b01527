/* Objectives (logistic, multinomial, squared error; L2 without the intercepts)
 * and their solvers: full-batch L-BFGS, mini-batch SGD with momentum, Adam.
 * Everything runs on the CPU in a fixed order, so a seed fixes the result. */
#include "ml.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* ---- the objective ------------------------------------------------------
 * Rows are taken in blocks of ML_BLOCK consecutive positions; each block's loss
 * and gradient are summed on their own, and the block sums are then added in
 * block order.  Threads only decide which block sums are computed where, so the
 * result is the same double, bit for bit, for any number of threads.
 * Binary logistic and linear regression (the common case) go through 4-wide
 * vector code; the multinomial case stays scalar.  No FMA contraction is
 * allowed in this file (see Makemodule.am), so the vector code and the scalar
 * fallback of each target clone give the same doubles. */

typedef double v4d __attribute__((vector_size(32)));
typedef double v4du __attribute__((vector_size(32), aligned(8)));  /* unaligned loads */
typedef int64_t v4l __attribute__((vector_size(32)));

static inline __attribute__((always_inline)) v4d ld4(const double *p) { return *(const v4du *)p; }
static inline __attribute__((always_inline)) void st4(double *p, v4d v) { *(v4du *)p = v; }
static inline __attribute__((always_inline)) v4d splat(double a) { return (v4d){a, a, a, a}; }

/* exp(x) for x in [-708, 0] (callers clamp): x = k*ln2 + r, |r| <= ln2/2, a
 * degree-13 Taylor polynomial for exp(r) (truncation below 2e-16 relative), 2^k
 * put into the exponent bits.  About 1 ulp against glibc's exp. */
static inline __attribute__((always_inline)) v4d vexp_neg(v4d x)
{
    const v4d shift = splat(0x1.8p52);
    v4d kd = x * splat(1.4426950408889634) + shift;   /* round(x/ln2) in the low mantissa bits */
    v4l ki = (v4l)kd - (v4l)shift;
    kd -= shift;
    v4d r = x - kd * splat(6.93147180369123816490e-01) - kd * splat(1.90821492927058770002e-10);
    v4d p = splat(1.0 / 6227020800.0);
    p = p * r + splat(1.0 / 479001600.0);
    p = p * r + splat(1.0 / 39916800.0);
    p = p * r + splat(1.0 / 3628800.0);
    p = p * r + splat(1.0 / 362880.0);
    p = p * r + splat(1.0 / 40320.0);
    p = p * r + splat(1.0 / 5040.0);
    p = p * r + splat(1.0 / 720.0);
    p = p * r + splat(1.0 / 120.0);
    p = p * r + splat(1.0 / 24.0);
    p = p * r + splat(1.0 / 6.0);
    p = p * r + splat(0.5);
    p = p * r + splat(1.0);
    p = p * r + splat(1.0);
    v4l sc = (ki + 1023) << 52;
    return p * (v4d)sc;
}

/* log1p(e) for e in [0, 1]: with u = 1+e (or (1+e)/2 above sqrt(2)-1, adding
 * ln 2), log u = 2 atanh(s), s = (u-1)/(u+1) and |s| <= 0.1716; the odd series
 * to s^21 is below 2^-54 relative.  u-1 is formed from e directly, so small e
 * keeps its precision. */
static inline __attribute__((always_inline)) v4d vlog1p_unit(v4d e)
{
    v4l big = e > splat(0.41421356237309503);
    v4d um = (v4d)(((v4l)((e - splat(1.0)) * splat(0.5)) & big) | ((v4l)e & ~big)); /* u - 1 */
    v4d s = um / (splat(2.0) + um), s2 = s * s;
    v4d p = splat(1.0 / 21);
    p = p * s2 + splat(1.0 / 19);
    p = p * s2 + splat(1.0 / 17);
    p = p * s2 + splat(1.0 / 15);
    p = p * s2 + splat(1.0 / 13);
    p = p * s2 + splat(1.0 / 11);
    p = p * s2 + splat(1.0 / 9);
    p = p * s2 + splat(1.0 / 7);
    p = p * s2 + splat(1.0 / 5);
    p = p * s2 + splat(1.0 / 3);
    p = p * s2 + splat(1.0);
    v4d ln2 = (v4d)((v4l)splat(0.69314718055994530942) & big);
    return ln2 + splat(2.0) * s * p;
}

/* softplus(z) = log(1+exp(z)) and sigmoid(z) for 4 values, from one exp. */
static inline __attribute__((always_inline)) void vlogistic(v4d z, v4d *sp, v4d *sig)
{
    v4l pos = z > splat(0.0);
    v4d a = (v4d)(((v4l)z & ~pos) | ((v4l)(-z) & pos));        /* -|z| */
    a = (v4d)(((v4l)a & (a > splat(-708.0))) | ((v4l)splat(-708.0) & ~(a > splat(-708.0))));
    v4d e = vexp_neg(a), l = vlog1p_unit(e);
    v4d zp = (v4d)((v4l)z & pos);                                  /* max(z, 0) */
    *sp = zp + l;
    v4d num = (v4d)(((v4l)splat(1.0) & pos) | ((v4l)e & ~pos));
    *sig = num / (splat(1.0) + e);
}

static inline __attribute__((always_inline)) void logistic_terms(const double *z, size_t n, double *softplus,
                                                                  double *sigmoid)
{
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        v4d sp, sg;
        vlogistic(ld4(z + i), &sp, &sg);
        st4(softplus + i, sp);
        st4(sigmoid + i, sg);
    }
    if (i < n) { /* the tail through the same code, padded */
        double zt[4] = {0, 0, 0, 0}, a[4], b[4];
        memcpy(zt, z + i, (n - i) * sizeof *z);
        v4d sp, sg;
        vlogistic(ld4(zt), &sp, &sg);
        st4(a, sp); st4(b, sg);
        memcpy(softplus + i, a, (n - i) * sizeof *a);
        memcpy(sigmoid + i, b, (n - i) * sizeof *b);
    }
}

void ml_logistic_terms(const double *z, size_t n, double *softplus, double *sigmoid)
{
    logistic_terms(z, n, softplus, sigmoid);
}

#define ML_BLOCK 2048

/* w.x + b with four partial sums in a fixed order */
static inline __attribute__((always_inline)) double row_dot(const double *x, const double *w, size_t d)
{
    v4d acc = splat(0.0);
    size_t j = 0;
    for (; j + 4 <= d; j += 4) acc += ld4(x + j) * ld4(w + j);
    double s = (acc[0] + acc[1]) + (acc[2] + acc[3]);
    for (; j < d; j++) s += x[j] * w[j];
    return s + w[d];
}

static inline __attribute__((always_inline)) void row_axpy(double *g, const double *x, double e, size_t d)
{
    v4d ev = splat(e);
    size_t j = 0;
    for (; j + 4 <= d; j += 4) st4(g + j, ld4(g + j) + ev * ld4(x + j));
    for (; j < d; j++) g[j] += e * x[j];
    g[d] += e;
}

/* One block (positions T0..T1-1) of binary logistic or linear regression:
 * the loss sum into *LOSS, the gradient sums into G (d+1, zeroed by the caller). */
/* An AVX2 clone where the CPU has it (x86-64 with ifunc support), the
 * baseline otherwise: the same vector operations either way. */
#if defined(__x86_64__) && defined(__has_attribute)
#if __has_attribute(target_clones)
#define ML_CLONES __attribute__((target_clones("avx2", "default")))
#endif
#endif
#ifndef ML_CLONES
#define ML_CLONES
#endif

ML_CLONES
static void block_k1(const ml_problem *p, const double *w, const size_t *idx, size_t t0, size_t t1,
                     double *g, double *loss)
{
    size_t d = p->d, m = t1 - t0;
    double z[ML_BLOCK], sp[ML_BLOCK], sg[ML_BLOCK];
    for (size_t t = 0; t < m; t++) {
        size_t i = idx ? idx[t0 + t] : t0 + t;
        z[t] = row_dot(p->x + i * d, w, d);
    }
    double l = 0;
    if (p->kind == ML_LINEAR) {
        for (size_t t = 0; t < m; t++) {
            size_t i = idx ? idx[t0 + t] : t0 + t;
            double e = z[t] - p->y[i];
            l += 0.5 * e * e;
            z[t] = e;
        }
    } else {
        logistic_terms(z, m, sp, sg);
        for (size_t t = 0; t < m; t++) {
            size_t i = idx ? idx[t0 + t] : t0 + t;
            double y = p->y[i];
            l += sp[t] - y * z[t];
            z[t] = sg[t] - y;
        }
    }
    *loss = l;
    if (g)
        for (size_t t = 0; t < m; t++) {
            size_t i = idx ? idx[t0 + t] : t0 + t;
            row_axpy(g, p->x + i * d, z[t], d);
        }
}

/* One block of the multinomial loss (k weight rows, softmax). */
static void block_multi(const ml_problem *p, const double *w, const size_t *idx, size_t t0, size_t t1,
                        double *g, double *loss, double *z)
{
    size_t d = p->d, k = p->k;
    double l = 0;
    for (size_t t = t0; t < t1; t++) {
        size_t i = idx ? idx[t] : t;
        const double *x = p->x + i * d;
        for (size_t r = 0; r < k; r++) z[r] = row_dot(x, w + r * (d + 1), d);
        double mx = z[0];
        for (size_t r = 1; r < k; r++) if (z[r] > mx) mx = z[r];
        double s = 0;
        for (size_t r = 0; r < k; r++) s += exp(z[r] - mx);
        double lse = mx + log(s);
        size_t yi = (size_t)p->y[i];
        l += lse - z[yi];
        if (g)
            for (size_t r = 0; r < k; r++) row_axpy(g + r * (d + 1), x, exp(z[r] - lse) - (r == yi), d);
    }
    *loss = l;
}

typedef struct {
    const ml_problem *p;
    const double *w;
    const size_t *idx;
    size_t m, b0, b1;      /* positions, and this worker's blocks [b0, b1) */
    double *gpart, *lpart; /* per block: np gradient sums, one loss sum */
} obj_job;

static void *obj_worker(void *arg)
{
    obj_job *j = arg;
    size_t np = ml_nparams(j->p);
    double *z = j->p->k > 1 ? malloc(j->p->k * sizeof *z) : NULL;
    if (j->p->k > 1 && !z) abort();
    for (size_t b = j->b0; b < j->b1; b++) {
        size_t t0 = b * ML_BLOCK, t1 = t0 + ML_BLOCK < j->m ? t0 + ML_BLOCK : j->m;
        double *g = j->gpart ? j->gpart + b * np : NULL;
        if (g) memset(g, 0, np * sizeof *g);
        if (j->p->k == 1) block_k1(j->p, j->w, j->idx, t0, t1, g, j->lpart + b);
        else block_multi(j->p, j->w, j->idx, t0, t1, g, j->lpart + b, z);
    }
    free(z);
    return NULL;
}

static unsigned nthreads_for(const ml_problem *p, size_t nblocks)
{
    unsigned t = p->threads;
    if (t == 0) {
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        t = c < 1 ? 1 : c > ML_MAX_THREADS ? ML_MAX_THREADS : (unsigned)c;
    }
    if (t > ML_MAX_THREADS) t = ML_MAX_THREADS;
    if (nblocks < 8) t = 1;                 /* not worth a thread */
    if (t > nblocks) t = (unsigned)nblocks;
    return t ? t : 1;
}

double ml_objective(const ml_problem *p, const double *w, double *grad, const size_t *idx, size_t m)
{
    size_t d = p->d, k = p->k, np = ml_nparams(p);
    if (!idx) m = p->n;
    double loss = 0;
    if (!idx && p->offload) {
        double *gs = grad ? grad : malloc(np * sizeof *gs);
        if (!gs) abort();
        int ok = p->offload->sums(p->offload->ctx, w, &loss, gs) == 0;
        if (gs != grad) free(gs);
        if (ok) goto finish;
        loss = 0;
    }
    size_t nb = (m + ML_BLOCK - 1) / ML_BLOCK;
    double lone, *lpart = nb > 1 ? malloc(nb * sizeof *lpart) : &lone;
    double *gpart = grad ? (nb > 1 ? malloc(nb * np * sizeof *gpart) : grad) : NULL;
    if (!lpart || (grad && !gpart)) abort();
    lone = 0;
    unsigned nt = nthreads_for(p, nb);
    obj_job jobs[ML_MAX_THREADS];
    pthread_t th[ML_MAX_THREADS];
    unsigned started = 0;
    for (unsigned t = 0; t < nt; t++) {
        jobs[t] = (obj_job){p, w, idx, m, nb * t / nt, nb * (t + 1) / nt, gpart, lpart};
        if (t > 0 && pthread_create(&th[t], NULL, obj_worker, &jobs[t]) == 0) started |= 1u << t;
    }
    obj_worker(&jobs[0]);
    for (unsigned t = 1; t < nt; t++) {
        if (started & (1u << t)) pthread_join(th[t], NULL);
        else obj_worker(&jobs[t]); /* no thread: do it here, same blocks, same sums */
    }
    /* the block sums, in block order */
    for (size_t b = 0; b < nb; b++) loss += lpart[b];
    if (grad && nb > 1) {
        memcpy(grad, gpart, np * sizeof *grad);
        for (size_t b = 1; b < nb; b++)
            for (size_t i = 0; i < np; i++) grad[i] += gpart[b * np + i];
    }
    if (grad && nb == 0) memset(grad, 0, np * sizeof *grad);
    if (nb > 1) { free(lpart); free(gpart); }
finish:;
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
    size_t nevals = 1;
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
            nevals++;
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
        fprintf(stderr, "iter %zu loss %.6f grad %.3g (%s; %zu evaluations)\n", it, f, amax(g, np),
                r->converged ? "converged" : "max iterations reached", nevals);
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
