/* kiln-train / kiln-eval: linear models (logistic and linear regression).
 * Standalone: nothing here links against engine/.  See docs/model-format.md. */
#ifndef KILN_ML_H
#define KILN_ML_H

#include <stddef.h>
#include <stdint.h>
#include <json-c/json.h>

#define ML_MODEL_VERSION 1

typedef enum { ML_LOGISTIC = 0, ML_LINEAR = 1 } ml_kind;

/* A numeric CSV table: header row of names, then rows of numbers. */
typedef struct {
    size_t n, d;        /* rows, feature columns */
    double *x;          /* n*d, row-major */
    double *y;          /* n target values */
    char **names;       /* d feature names */
    char *target;       /* target column name */
    uint64_t checksum;  /* FNV-1a 64 of the file's bytes (CSV or kcol) */
} ml_data;

/* Reads PATH; TARGET names the target column (NULL: the last column).
 * Returns 0, or -1 with a message in ERR. */
int ml_csv_read(const char *path, const char *target, ml_data *out, char *err, size_t errlen);
/* kiln-clean's binary output (docs/kcol-format.md): number, integer and boolean
 * columns; a category column or a missing value is an error naming it.  The
 * checksum is the same FNV-1a of the file's bytes. */
int ml_kcol_read(const char *path, const char *target, ml_data *out, char *err, size_t errlen);
/* ml_kcol_read for a name ending in .kcol, ml_csv_read otherwise. */
int ml_data_read(const char *path, const char *target, ml_data *out, char *err, size_t errlen);
void ml_data_free(ml_data *d);
uint64_t ml_fnv1a64(const void *buf, size_t len, uint64_t h);

/* The optimization problem on already standardized rows.
 * y: class index (0..nclasses-1) for logistic, the target for linear.
 * k: weight rows: 1 for linear and binary logistic, nclasses for multinomial.
 * Parameters: k*(d+1) doubles, row r = d weights then the intercept. */
typedef struct {
    ml_kind kind;
    size_t n, d, k;
    const double *x;
    const double *y;
    double lambda;      /* mean loss + 0.5*lambda*||w||^2 (intercepts not penalized) */
    unsigned threads;   /* 0: one per online CPU, at most ML_MAX_THREADS; the result does not depend on it */
    const struct ml_offload *offload; /* NULL, or where full-batch evaluations run (kiln-train's GPU path) */
} ml_problem;

/* Another place to compute the full-batch sums (the GPU): SUMS fills *LOSS_SUM
 * (the loss summed over the n rows) and GRAD_SUM (ml_nparams: the gradient of
 * that sum, no penalty) and returns 0, or returns -1 and the CPU computes
 * them instead. */
typedef struct ml_offload {
    int (*sums)(void *ctx, const double *w, double *loss_sum, double *grad_sum);
    void *ctx;
} ml_offload;

#define ML_MAX_THREADS 8

static inline size_t ml_nparams(const ml_problem *p) { return p->k * (p->d + 1); }

/* Objective on rows IDX[0..m-1] (IDX NULL: all n rows); fills GRAD when not NULL.
 * Summed in fixed blocks of rows, the blocks added in order: the same doubles
 * for any p->threads. */
double ml_objective(const ml_problem *p, const double *w, double *grad, const size_t *idx, size_t m);

/* softplus(z) = log(1+exp(z)) and sigmoid(z) for N values (vectorized; within
 * a few ulp of libm's log1p/exp; z below -708 counts as -708). */
void ml_logistic_terms(const double *z, size_t n, double *softplus, double *sigmoid);

typedef enum { ML_LBFGS = 0, ML_SGD = 1, ML_ADAM = 2 } ml_solver;

typedef struct {
    ml_solver solver;
    size_t max_iter;        /* L-BFGS iterations */
    double tol;             /* L-BFGS: relative gradient tolerance; SGD: loss improvement */
    size_t epochs;          /* SGD/Adam */
    size_t batch;           /* SGD/Adam; 0 = full batch */
    double lr, momentum;    /* SGD */
    double beta1, beta2, eps; /* Adam */
    uint64_t seed;
    size_t patience;        /* early stopping: epochs without improvement */
    int verbose;            /* progress lines on stderr */
} ml_opts;

void ml_opts_default(ml_opts *o, ml_solver s);

typedef struct {
    size_t iterations;      /* L-BFGS iterations or epochs run */
    int converged;
    int early_stopped;
    size_t best_epoch;
    double train_loss, val_loss; /* objective at the returned weights (val: NAN without one) */
    double seconds;
} ml_result;

/* Fits W (ml_nparams, in: start, out: solution).  VAL may be NULL; with SGD/Adam it
 * drives early stopping (best weights kept).  Returns 0 or -1 (bad options). */
int ml_fit(const ml_problem *train, const ml_problem *val, const ml_opts *o, double *w, ml_result *r);

/* splitmix64: the seeded generator behind shuffles and splits. */
uint64_t ml_rand(uint64_t *state);
/* Seeded Fisher-Yates shuffle of IDX[0..n-1]. */
void ml_shuffle(size_t *idx, size_t n, uint64_t *state);

/* --- model --------------------------------------------------------------- */
typedef struct {
    ml_kind kind;
    size_t d, k, nclasses;
    double *classes;    /* nclasses labels (logistic) */
    char **features;    /* d names */
    char *target;
    double *mean, *std; /* d each: x' = (x - mean) / std */
    double *w;          /* k*(d+1) */
    json_object *training, *metrics, *data; /* owned, may be NULL */
} ml_model;

void ml_model_free(ml_model *m);
json_object *ml_model_to_json(const ml_model *m);
int ml_model_from_json(json_object *j, ml_model *m, char *err, size_t errlen);
int ml_model_save(const ml_model *m, const char *path, char *err, size_t errlen);
int ml_model_load(const char *path, ml_model *m, char *err, size_t errlen);

/* Scores for one raw (unstandardized) row: for logistic, nclasses probabilities;
 * for linear, one prediction. */
void ml_predict_row(const ml_model *m, const double *x, double *out);
/* The same for a row already standardized with m->mean and m->std (the same
 * doubles as ml_predict_row on the raw row). */
void ml_predict_std_row(const ml_model *m, const double *xs, double *out);
/* Index of the label in m->classes, or -1. */
int ml_class_index(const ml_model *m, double label);

/* --- metrics ------------------------------------------------------------- */
typedef struct {
    size_t n, k;
    double accuracy, precision, recall, f1, roc_auc, log_loss; /* macro averages when k > 2 */
    size_t *confusion;  /* k*k, row = true class, column = predicted */
} ml_cls_metrics;

/* YTRUE: class indices; PROBA: n*k probabilities.  Binary: positive class = 1. */
int ml_cls_metrics_compute(size_t n, size_t k, const int *ytrue, const double *proba, ml_cls_metrics *out);
void ml_cls_metrics_free(ml_cls_metrics *m);
/* ROC AUC of SCORE for the labels POS (0/1), ties counted as half: NAN if one class is absent. */
double ml_roc_auc(size_t n, const int *pos, const double *score);

typedef struct { size_t n; double rmse, mae, r2; } ml_reg_metrics;
void ml_reg_metrics_compute(size_t n, const double *ytrue, const double *ypred, ml_reg_metrics *out);

json_object *ml_cls_metrics_json(const ml_cls_metrics *m, const double *classes);
json_object *ml_reg_metrics_json(const ml_reg_metrics *m);
/* A double as JSON: null for NaN/inf. */
json_object *ml_json_num(double v);

#endif
