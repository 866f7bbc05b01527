/* kiln-train: fits a logistic (binary or multinomial) or linear regression model
 * on a numeric CSV and writes a self-describing model file (docs/model-format.md).
 * Contract: argv + env; progress on stderr; JSON summary to $KILN_OUTPUTS when set;
 * exit 0 on success, 1 when training fails, 2 on bad usage or input. */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#include "ml.h"

#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f)
{
    fprintf(f,
"usage: kiln-train --data FILE.csv|FILE.kcol --out MODEL.json [options]\n"
"  --target NAME        target column (default: the last column)\n"
"  --kind logistic|linear   (default logistic; binary or multinomial from the labels)\n"
"  --solver lbfgs|sgd|adam  lbfgs = full batch (default); sgd = mini-batch SGD with momentum\n"
"  --C C                inverse L2 strength as in scikit-learn: lambda = 1/(C*n) (default: C=1\n"
"                       for logistic, no penalty for linear)\n"
"  --l2 LAMBDA          L2 strength in mean-loss form: mean loss + 0.5*LAMBDA*||w||^2\n"
"  --max-iter N  --tol T  (lbfgs; default 10000, 1e-10)\n"
"  --epochs N --batch-size N (0 = full batch) --lr R --momentum M  (sgd/adam)\n"
"  --val-fraction F     hold out F of the rows (seeded) for validation and early stopping\n"
"  --patience N         early stopping: epochs without improvement (default 10)\n"
"  --seed S             (default 1)\n"
"  --device auto|cpu|gpu  (auto = the GPU when this build has CUDA and one is visible, else the CPU)\n"
"  --quiet              no progress lines\n");
}

#ifdef KILN_GPU
#include "kgpu.h"

/* The GPU side of ml_offload: counts evaluations and kernel time for the log;
 * after a failure everything goes back to the CPU. */
typedef struct {
    kg_objective *o;
    size_t evals;
    double ms;
    int failed;
} gpu_ctx;

static int gpu_sums(void *ctx, const double *w, double *loss_sum, double *grad_sum)
{
    gpu_ctx *G = ctx;
    char err[300];
    if (G->failed) return -1;
    if (kg_objective_eval(G->o, w, loss_sum, grad_sum, err, sizeof err)) {
        fprintf(stderr, "kiln-train: GPU evaluation failed (%s); continuing on the CPU\n", err);
        G->failed = 1;
        return -1;
    }
    G->evals++;
    G->ms += kg_objective_last_ms(G->o);
    return 0;
}
#endif

static int parse_double(const char *s, double *out)
{
    char *e;
    *out = strtod(s, &e);
    return e != s && !*e && isfinite(*out) ? 0 : -1;
}

static int parse_size(const char *s, size_t *out)
{
    char *e;
    unsigned long long v = strtoull(s, &e, 10);
    if (e == s || *e || s[0] == '-') return -1;
    *out = (size_t)v;
    return 0;
}

int main(int argc, char **argv)
{
    const char *data = NULL, *out = NULL, *target = NULL, *kind_s = "logistic", *solver_s = "lbfgs",
               *device = "auto";
    double C = NAN, l2 = NAN, val_frac = 0;
    int quiet = 0;
    ml_opts o;
    ml_opts_default(&o, ML_LBFGS);
    size_t max_iter = 0, epochs = 0, batch = (size_t)-1, patience = 0;
    double lr = NAN, momentum = NAN, tol = NAN;
    uint64_t seed = 1;
    enum { O_DATA = 256, O_OUT, O_TARGET, O_KIND, O_SOLVER, O_C, O_L2, O_MAXIT, O_TOL, O_EPOCHS, O_BATCH,
           O_LR, O_MOM, O_VAL, O_PAT, O_SEED, O_DEV, O_QUIET, O_HELP };
    static const struct option lo[] = {
        {"data", 1, 0, O_DATA}, {"out", 1, 0, O_OUT}, {"target", 1, 0, O_TARGET}, {"kind", 1, 0, O_KIND},
        {"solver", 1, 0, O_SOLVER}, {"C", 1, 0, O_C}, {"l2", 1, 0, O_L2}, {"max-iter", 1, 0, O_MAXIT},
        {"tol", 1, 0, O_TOL}, {"epochs", 1, 0, O_EPOCHS}, {"batch-size", 1, 0, O_BATCH}, {"lr", 1, 0, O_LR},
        {"momentum", 1, 0, O_MOM}, {"val-fraction", 1, 0, O_VAL}, {"patience", 1, 0, O_PAT},
        {"seed", 1, 0, O_SEED}, {"device", 1, 0, O_DEV}, {"quiet", 0, 0, O_QUIET}, {"help", 0, 0, O_HELP},
        {0, 0, 0, 0}};
    int c;
    size_t sz;
    while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        int bad = 0;
        switch (c) {
        case O_DATA: data = optarg; break;
        case O_OUT: out = optarg; break;
        case O_TARGET: target = optarg; break;
        case O_KIND: kind_s = optarg; break;
        case O_SOLVER: solver_s = optarg; break;
        case O_C: bad = parse_double(optarg, &C) || !(C > 0); break;
        case O_L2: bad = parse_double(optarg, &l2) || l2 < 0; break;
        case O_MAXIT: bad = parse_size(optarg, &max_iter) || max_iter == 0; break;
        case O_TOL: bad = parse_double(optarg, &tol) || !(tol > 0); break;
        case O_EPOCHS: bad = parse_size(optarg, &epochs) || epochs == 0; break;
        case O_BATCH: bad = parse_size(optarg, &batch); break;
        case O_LR: bad = parse_double(optarg, &lr) || !(lr > 0); break;
        case O_MOM: bad = parse_double(optarg, &momentum) || momentum < 0 || momentum >= 1; break;
        case O_VAL: bad = parse_double(optarg, &val_frac) || val_frac < 0 || val_frac >= 1; break;
        case O_PAT: bad = parse_size(optarg, &patience) || patience == 0; break;
        case O_SEED: bad = parse_size(optarg, &sz); seed = sz; break;
        case O_DEV: device = optarg; break;
        case O_QUIET: quiet = 1; break;
        case O_HELP: usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
        if (bad) { fprintf(stderr, "kiln-train: bad value for --%s: '%s'\n", lo[c - O_DATA].name, optarg); return 2; }
    }
    if (optind < argc || !data || !out) {
        fprintf(stderr, "kiln-train: %s\n", optind < argc ? "unexpected argument" : "--data and --out are required");
        usage(stderr);
        return 2;
    }
    ml_kind kind;
    if (!strcmp(kind_s, "logistic")) kind = ML_LOGISTIC;
    else if (!strcmp(kind_s, "linear")) kind = ML_LINEAR;
    else { fprintf(stderr, "kiln-train: --kind must be logistic or linear, not '%s'\n", kind_s); return 2; }
    ml_solver solver;
    if (!strcmp(solver_s, "lbfgs")) solver = ML_LBFGS;
    else if (!strcmp(solver_s, "sgd")) solver = ML_SGD;
    else if (!strcmp(solver_s, "adam")) solver = ML_ADAM;
    else { fprintf(stderr, "kiln-train: --solver must be lbfgs, sgd or adam, not '%s'\n", solver_s); return 2; }
    if (!isnan(C) && !isnan(l2)) { fprintf(stderr, "kiln-train: give --C or --l2, not both\n"); return 2; }

    /* Device: the GPU when one is visible (auto) or asked for (gpu); the
     * choice and its reason are logged.  The GPU computes the full-batch
     * evaluations of the training objective (all of L-BFGS's); mini-batches,
     * validation losses and the solver's own arithmetic stay on the CPU. */
    const char *dev_used;
    char dev_why[300] = "";
#ifdef KILN_GPU
    int ngpu = 0;
    if (!strcmp(device, "auto") || !strcmp(device, "gpu")) ngpu = kg_device_count(dev_why, sizeof dev_why);
    if (!strcmp(device, "cpu")) { dev_used = "cpu"; snprintf(dev_why, sizeof dev_why, "built with CUDA"); }
    else if (!strcmp(device, "auto") || !strcmp(device, "gpu")) {
        if (ngpu == 0) {
            if (!strcmp(device, "gpu")) {
                fprintf(stderr, "kiln-train: --device gpu: no GPU visible (%s); use --device cpu or auto\n", dev_why);
                return 2;
            }
            dev_used = "cpu";
            char tmp[300];
            snprintf(tmp, sizeof tmp, "no GPU visible: %s", dev_why);
            snprintf(dev_why, sizeof dev_why, "%s", tmp);
        } else {
            char name[256] = "", e2[256] = "";
            double peak = 0;
            dev_used = "gpu";
            if (kg_device_info(name, sizeof name, &peak, e2, sizeof e2) == 0)
                snprintf(dev_why, sizeof dev_why, "%d visible; %s, peak %.0f GB/s", ngpu, name, peak);
            else snprintf(dev_why, sizeof dev_why, "%d visible", ngpu);
        }
    } else { fprintf(stderr, "kiln-train: --device must be auto, cpu or gpu, not '%s'\n", device); return 2; }
#else
    if (!strcmp(device, "cpu") || !strcmp(device, "auto")) { dev_used = "cpu"; snprintf(dev_why, sizeof dev_why, "built without CUDA"); }
    else if (!strcmp(device, "gpu")) {
        fprintf(stderr, "kiln-train: --device gpu: this kiln-train was built without CUDA; use --device cpu or auto\n");
        return 2;
    } else { fprintf(stderr, "kiln-train: --device must be auto, cpu or gpu, not '%s'\n", device); return 2; }
#endif
    if (!quiet) fprintf(stderr, "kiln-train: device %s (requested %s; %s)\n", dev_used, device, dev_why);

    char err[512];
    ml_data D;
    if (ml_data_read(data, target, &D, err, sizeof err)) { fprintf(stderr, "kiln-train: %s\n", err); return 2; }

    /* classes */
    double *classes = NULL;
    size_t ncls = 0;
    if (kind == ML_LOGISTIC) {
        /* the distinct labels, sorted: a binary search in the (small) set per row */
        double *s = malloc(1001 * sizeof *s);
        if (!s) abort();
        for (size_t i = 0; i < D.n && ncls <= 1000; i++) {
            double y = D.y[i];
            if (ncls && y == s[0]) continue;
            size_t a = 0, hi = ncls;
            while (a < hi) { size_t mid = (a + hi) / 2; if (s[mid] < y) a = mid + 1; else hi = mid; }
            if (a < ncls && s[a] == y) continue;
            memmove(s + a + 1, s + a, (ncls - a) * sizeof *s);
            s[a] = y;
            ncls++;
        }
        classes = s;
        if (ncls < 2) { fprintf(stderr, "kiln-train: the target '%s' has a single class\n", D.target); free(classes); ml_data_free(&D); return 2; }
        if (ncls > 1000) { fprintf(stderr, "kiln-train: the target '%s' has more than 1000 classes: use --kind linear for a numeric target\n", D.target); free(classes); ml_data_free(&D); return 2; }
    }

    /* seeded train/validation split */
    size_t n = D.n, d = D.d;
    size_t *idx = malloc(n * sizeof *idx);
    if (!idx) abort();
    for (size_t i = 0; i < n; i++) idx[i] = i;
    uint64_t rng = seed ^ 0x6b696c6eULL;
    size_t nval = (size_t)floor(val_frac * (double)n);
    if (nval) ml_shuffle(idx, n, &rng);
    if (nval >= n) nval = n - 1;
    size_t ntr = n - nval;
    /* Without a validation split the rows stay in file order: standardize the
     * reader's matrix in place instead of copying 8*n*d bytes. */
    double *xtr = nval ? malloc(ntr * d * sizeof *xtr + 1) : D.x, *ytr = malloc(ntr * sizeof *ytr),
           *xva = malloc(nval * d * sizeof *xva + 1), *yva = malloc(nval * sizeof *yva + 1);
    double *mean = calloc(d + 1, sizeof *mean), *sd = calloc(d + 1, sizeof *sd);
    if (!xtr || !ytr || !xva || !yva || !mean || !sd) abort();
    for (size_t t = 0; t < n; t++) {
        size_t i = idx[t];
        double y = D.y[i];
        if (kind == ML_LOGISTIC) {
            size_t lo2 = 0, hi = ncls;
            while (lo2 + 1 < hi) { size_t mid = (lo2 + hi) / 2; if (classes[mid] <= y) lo2 = mid; else hi = mid; }
            y = (double)lo2;
        }
        if (t < ntr) { if (nval) memcpy(xtr + t * d, D.x + i * d, d * sizeof *xtr); ytr[t] = y; }
        else { memcpy(xva + (t - ntr) * d, D.x + i * d, d * sizeof *xva); yva[t - ntr] = y; }
    }
    /* standardize with the training rows' mean and (population) standard deviation */
    /* Row by row (the matrix is row-major), each column still summed in row
     * order, so the results are the same as column by column. */
    for (size_t t = 0; t < ntr; t++)
        for (size_t j = 0; j < d; j++) mean[j] += xtr[t * d + j];
    for (size_t j = 0; j < d; j++) mean[j] /= (double)ntr;
    for (size_t t = 0; t < ntr; t++)
        for (size_t j = 0; j < d; j++) sd[j] += (xtr[t * d + j] - mean[j]) * (xtr[t * d + j] - mean[j]);
    for (size_t j = 0; j < d; j++) {
        double m = mean[j], s = sqrt(sd[j] / (double)ntr);
        if (!(s > 1e-12 * fmax(1.0, fabs(m)))) s = 1; /* constant column */
        sd[j] = s;
    }
    for (size_t t = 0; t < ntr; t++)
        for (size_t j = 0; j < d; j++) xtr[t * d + j] = (xtr[t * d + j] - mean[j]) / sd[j];
    for (size_t t = 0; t < nval; t++)
        for (size_t j = 0; j < d; j++) xva[t * d + j] = (xva[t * d + j] - mean[j]) / sd[j];
    double lambda = !isnan(l2) ? l2 : !isnan(C) ? 1.0 / (C * (double)ntr) : kind == ML_LOGISTIC ? 1.0 / (double)ntr : 0;
    size_t k = kind == ML_LINEAR || ncls == 2 ? 1 : ncls;
    ml_problem tr = {kind, ntr, d, k, xtr, ytr, lambda, 0, NULL}, va = {kind, nval, d, k, xva, yva, lambda, 0, NULL};

    ml_opts_default(&o, solver);
    if (max_iter) o.max_iter = max_iter;
    if (!isnan(tol)) o.tol = tol;
    if (epochs) o.epochs = epochs;
    if (batch != (size_t)-1) o.batch = batch;
    if (!isnan(lr)) o.lr = lr;
    if (!isnan(momentum)) o.momentum = momentum;
    if (patience) o.patience = patience;
    o.seed = seed;
    o.verbose = !quiet;

    size_t np = ml_nparams(&tr);
    double *w = calloc(np, sizeof *w);
    if (!w) abort();
    if (kind == ML_LINEAR) { /* start the intercept at the mean target */
        double m = 0;
        for (size_t t = 0; t < ntr; t++) m += ytr[t];
        w[d] = m / (double)ntr;
    }
    if (!quiet)
        fprintf(stderr, "kiln-train: %s regression (%s), %zu features, %zu training rows, %zu validation rows, "
                "solver %s, lambda %.6g\n", kind_s, kind == ML_LINEAR ? "squared error" : k == 1 ? "binary" : "multinomial",
                d, ntr, nval, solver_s, lambda);
#ifdef KILN_GPU
    gpu_ctx G = {0};
    ml_offload off = {gpu_sums, &G};
    if (!strcmp(dev_used, "gpu")) {
        char e2[300];
        G.o = kg_objective_new(kind == ML_LINEAR ? 1 : 0, ntr, d, k, xtr, ytr, e2, sizeof e2);
        if (G.o) tr.offload = &off;
        else {
            fprintf(stderr, "kiln-train: the GPU cannot take this problem (%s); training on the CPU\n", e2);
            dev_used = "cpu";
        }
        if (G.o && solver != ML_LBFGS && !quiet)
            fprintf(stderr, "kiln-train: %s: mini-batches stay on the CPU; the GPU computes full-batch losses only\n", solver_s);
    }
#endif
    ml_result res;
    int rc = ml_fit(&tr, nval ? &va : NULL, &o, w, &res);
#ifdef KILN_GPU
    if (G.o) {
        if (!quiet && G.evals) {
            double bytes = (double)ntr * (double)(d + 1) * sizeof(double);
            fprintf(stderr, "kiln-train: gpu: %zu evaluations, kernel time %.3f ms (%.3f ms each), %.1f GB/s "
                    "(rows and targets read once per evaluation)\n", G.evals, G.ms, G.ms / (double)G.evals,
                    G.ms > 0 ? bytes * (double)G.evals / (G.ms * 1e-3) / 1e9 : 0.0);
        }
        if (G.failed) dev_used = "cpu";
        kg_objective_free(G.o);
    }
#endif
    if (rc || !isfinite(res.train_loss)) {
        fprintf(stderr, "kiln-train: training failed (%s)\n", rc ? "bad options" : "the loss diverged; lower --lr");
        rc = 1;
        goto done;
    }

    ml_model M = {0};
    M.kind = kind; M.d = d; M.k = k; M.nclasses = ncls; M.classes = classes; M.features = D.names;
    M.target = D.target; M.mean = mean; M.std = sd; M.w = w;
    /* metrics on the training and validation rows (standardized rows, the same
     * doubles the model gives on the raw ones) */
    json_object *metrics = json_object_new_object();
    for (int part = 0; part < 2; part++) {
        size_t m = part ? nval : ntr;
        if (!m) continue;
        size_t ko = kind == ML_LINEAR ? 1 : ncls;
        double *pred = malloc(m * ko * sizeof *pred), *yt = malloc(m * sizeof *yt);
        int *yi = malloc(m * sizeof *yi);
        if (!pred || !yt || !yi) abort();
        for (size_t t = 0; t < m; t++) {
            size_t i = idx[part ? ntr + t : t];
            ml_predict_std_row(&M, (part ? xva : xtr) + t * d, pred + t * ko);
            yt[t] = D.y[i];
            yi[t] = kind == ML_LOGISTIC ? ml_class_index(&M, D.y[i]) : 0;
        }
        json_object *mj;
        if (kind == ML_LOGISTIC) {
            ml_cls_metrics cm;
            ml_cls_metrics_compute(m, ncls, yi, pred, &cm);
            mj = ml_cls_metrics_json(&cm, NULL);
            json_object_object_del(mj, "confusion_matrix");
            ml_cls_metrics_free(&cm);
        } else {
            ml_reg_metrics rm;
            ml_reg_metrics_compute(m, yt, pred, &rm);
            mj = ml_reg_metrics_json(&rm);
        }
        json_object_object_add(mj, "loss", ml_json_num(part ? res.val_loss : res.train_loss));
        json_object_object_add(metrics, part ? "validation" : "train", mj);
        free(pred); free(yt); free(yi);
    }
    json_object *tj = json_object_new_object();
    json_object_object_add(tj, "solver", json_object_new_string(solver_s));
    json_object_object_add(tj, "objective", json_object_new_string(
        kind == ML_LINEAR ? "mean(0.5*(w.x+b-y)^2) + 0.5*lambda*||w||^2"
        : k == 1 ? "mean(log(1+exp(-s*(w.x+b)))) + 0.5*lambda*||w||^2"
                 : "mean(-log softmax(Wx+b)_y) + 0.5*lambda*||W||^2"));
    json_object_object_add(tj, "lambda", ml_json_num(lambda));
    if (!isnan(C)) json_object_object_add(tj, "C", ml_json_num(C));
    json_object_object_add(tj, "seed", json_object_new_int64((int64_t)seed));
    json_object_object_add(tj, "val_fraction", ml_json_num(val_frac));
    if (solver == ML_LBFGS) {
        json_object_object_add(tj, "max_iter", json_object_new_int64((int64_t)o.max_iter));
        json_object_object_add(tj, "tol", ml_json_num(o.tol));
    } else {
        json_object_object_add(tj, "epochs", json_object_new_int64((int64_t)o.epochs));
        json_object_object_add(tj, "batch_size", json_object_new_int64((int64_t)o.batch));
        json_object_object_add(tj, "lr", ml_json_num(o.lr));
        if (solver == ML_SGD) json_object_object_add(tj, "momentum", ml_json_num(o.momentum));
        else {
            json_object_object_add(tj, "beta1", ml_json_num(o.beta1));
            json_object_object_add(tj, "beta2", ml_json_num(o.beta2));
        }
        json_object_object_add(tj, "patience", json_object_new_int64((int64_t)o.patience));
        json_object_object_add(tj, "early_stopped", json_object_new_boolean(res.early_stopped));
        json_object_object_add(tj, "best_epoch", json_object_new_int64((int64_t)res.best_epoch));
    }
    json_object_object_add(tj, "iterations", json_object_new_int64((int64_t)res.iterations));
    json_object_object_add(tj, "converged", json_object_new_boolean(res.converged));
    json_object_object_add(tj, "device", json_object_new_string(dev_used));
    json_object *dj = json_object_new_object();
    char ck[40];
    snprintf(ck, sizeof ck, "fnv1a64:%016llx", (unsigned long long)D.checksum);
    json_object_object_add(dj, "path", json_object_new_string(data));
    json_object_object_add(dj, "checksum", json_object_new_string(ck));
    json_object_object_add(dj, "rows", json_object_new_int64((int64_t)n));
    json_object_object_add(dj, "train_rows", json_object_new_int64((int64_t)ntr));
    json_object_object_add(dj, "validation_rows", json_object_new_int64((int64_t)nval));
    M.training = tj; M.metrics = metrics; M.data = dj;
    if (ml_model_save(&M, out, err, sizeof err)) {
        fprintf(stderr, "kiln-train: %s\n", err);
        rc = 1;
    } else {
        json_object *tm = json_object_object_get(metrics, "train"), *vm = json_object_object_get(metrics, "validation");
        const char *key = kind == ML_LOGISTIC ? "accuracy" : "r2";
        if (!quiet)
            fprintf(stderr, "kiln-train: wrote %s (train %s %.4f%s) in %.3fs\n", out, key,
                    json_object_get_double(json_object_object_get(tm, key)), vm ? ", validation computed" : "",
                    res.seconds);
        const char *op = getenv("KILN_OUTPUTS");
        if (op && *op) {
            json_object *oj = json_object_new_object();
            json_object_object_add(oj, "model", json_object_new_string(out));
            json_object_object_add(oj, "kind", json_object_new_string(kind_s));
            json_object_object_add(oj, "solver", json_object_new_string(solver_s));
            json_object_object_add(oj, "device", json_object_new_string(dev_used));
            json_object_object_add(oj, "iterations", json_object_new_int64((int64_t)res.iterations));
            json_object_object_add(oj, "train_loss", ml_json_num(res.train_loss));
            json_object_object_add(oj, "train_" "metric", json_object_new_string(key));
            json_object_object_add(oj, kind == ML_LOGISTIC ? "train_accuracy" : "train_r2",
                                   json_object_get(json_object_object_get(tm, key)));
            if (vm) {
                json_object_object_add(oj, "val_loss", ml_json_num(res.val_loss));
                json_object_object_add(oj, kind == ML_LOGISTIC ? "val_accuracy" : "val_r2",
                                       json_object_get(json_object_object_get(vm, key)));
            }
            json_object_object_add(oj, "data_checksum", json_object_new_string(ck));
            if (json_object_to_file_ext(op, oj, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)) {
                fprintf(stderr, "kiln-train: KILN_OUTPUTS %s: cannot write\n", op);
                rc = 1;
            }
            json_object_put(oj);
        }
    }
    json_object_put(tj); json_object_put(metrics); json_object_put(dj);
done:
    free(w); free(idx); if (xtr != D.x) free(xtr); free(ytr); free(xva); free(yva); free(mean); free(sd); free(classes);
    ml_data_free(&D);
    return rc;
}
