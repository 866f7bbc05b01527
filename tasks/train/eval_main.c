/* kiln-eval: scores a kiln-train model on a numeric CSV.  Classification:
 * accuracy, precision, recall, F1, ROC AUC, log loss, confusion matrix;
 * regression: RMSE, MAE, R^2.  JSON on stdout and to $KILN_OUTPUTS when set.
 * --min METRIC=V / --max METRIC=V (and --min-accuracy V) make it a quality gate:
 * exit 1 with a message when a bound is not met; exit 2 on bad usage or input. */
#include "ml.h"

#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_GATES 32

typedef struct { char name[32]; double bound; int is_min; } gate;

static void usage(FILE *f)
{
    fprintf(f,
"usage: kiln-eval --model MODEL.json --data FILE.csv|FILE.kcol [options]\n"
"  --target NAME        target column (default: the model's target name)\n"
"  --min METRIC=V       fail (exit 1) when METRIC < V  (repeatable)\n"
"  --max METRIC=V       fail (exit 1) when METRIC > V  (repeatable; e.g. log_loss, rmse)\n"
"  --min-accuracy V     same as --min accuracy=V\n"
"  metrics: accuracy precision recall f1 roc_auc log_loss (classification), rmse mae r2 (regression)\n");
}

static int add_gate(gate *g, size_t *ng, const char *spec, int is_min, const char *fixed_name)
{
    if (*ng == MAX_GATES) return -1;
    gate *x = &g[*ng];
    const char *v = spec;
    if (!fixed_name) {
        const char *eq = strchr(spec, '=');
        if (!eq || eq == spec || (size_t)(eq - spec) >= sizeof x->name) return -1;
        memcpy(x->name, spec, (size_t)(eq - spec));
        x->name[eq - spec] = 0;
        v = eq + 1;
    } else snprintf(x->name, sizeof x->name, "%s", fixed_name);
    char *e;
    x->bound = strtod(v, &e);
    if (e == v || *e || !isfinite(x->bound)) return -1;
    x->is_min = is_min;
    (*ng)++;
    return 0;
}

int main(int argc, char **argv)
{
    const char *model_path = NULL, *data = NULL, *target = NULL;
    gate gates[MAX_GATES];
    size_t ng = 0;
    enum { O_MODEL = 256, O_DATA, O_TARGET, O_MIN, O_MAX, O_MINACC, O_HELP };
    static const struct option lo[] = {
        {"model", 1, 0, O_MODEL}, {"data", 1, 0, O_DATA}, {"target", 1, 0, O_TARGET}, {"min", 1, 0, O_MIN},
        {"max", 1, 0, O_MAX}, {"min-accuracy", 1, 0, O_MINACC}, {"help", 0, 0, O_HELP}, {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (c) {
        case O_MODEL: model_path = optarg; break;
        case O_DATA: data = optarg; break;
        case O_TARGET: target = optarg; break;
        case O_MIN: case O_MAX: case O_MINACC:
            if (add_gate(gates, &ng, optarg, c != O_MAX, c == O_MINACC ? "accuracy" : NULL)) {
                fprintf(stderr, "kiln-eval: bad --%s '%s' (want METRIC=NUMBER)\n", lo[c - O_MODEL].name, optarg);
                return 2;
            }
            break;
        case O_HELP: usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc || !model_path || !data) {
        fprintf(stderr, "kiln-eval: %s\n", optind < argc ? "unexpected argument" : "--model and --data are required");
        usage(stderr);
        return 2;
    }
    char err[512];
    ml_model M;
    if (ml_model_load(model_path, &M, err, sizeof err)) { fprintf(stderr, "kiln-eval: %s\n", err); return 2; }
    ml_data D;
    if (ml_data_read(data, target ? target : M.target, &D, err, sizeof err)) {
        fprintf(stderr, "kiln-eval: %s\n", err);
        ml_model_free(&M);
        return 2;
    }
    int rc = 0;
    size_t *col = malloc((M.d + 1) * sizeof *col);
    double *row = malloc((M.d + 1) * sizeof *row);
    size_t ko = M.kind == ML_LINEAR ? 1 : M.nclasses;
    double *pred = malloc(D.n * ko * sizeof *pred);
    int *yi = malloc(D.n * sizeof *yi);
    if (!col || !row || !pred || !yi) abort();
    for (size_t j = 0; j < M.d; j++) { /* columns by name: the CSV may order them differently */
        size_t i;
        for (i = 0; i < D.d && strcmp(D.names[i], M.features[j]) != 0; i++) ;
        if (i == D.d) {
            fprintf(stderr, "kiln-eval: %s: no column '%s' (a feature of the model)\n", data, M.features[j]);
            rc = 2;
            goto done;
        }
        col[j] = i;
    }
    for (size_t t = 0; t < D.n; t++) {
        for (size_t j = 0; j < M.d; j++) row[j] = D.x[t * D.d + col[j]];
        ml_predict_row(&M, row, pred + t * ko);
        if (M.kind == ML_LOGISTIC) {
            yi[t] = ml_class_index(&M, D.y[t]);
            if (yi[t] < 0) {
                fprintf(stderr, "kiln-eval: %s: row %zu: label %g is not one of the model's classes\n", data, t + 1, D.y[t]);
                rc = 2;
                goto done;
            }
        }
    }
    json_object *mj;
    if (M.kind == ML_LOGISTIC) {
        ml_cls_metrics cm;
        ml_cls_metrics_compute(D.n, M.nclasses, yi, pred, &cm);
        mj = ml_cls_metrics_json(&cm, M.classes);
        ml_cls_metrics_free(&cm);
    } else {
        ml_reg_metrics rm;
        ml_reg_metrics_compute(D.n, D.y, pred, &rm);
        mj = ml_reg_metrics_json(&rm);
    }
    json_object_object_add(mj, "kind", json_object_new_string(M.kind == ML_LOGISTIC ? "logistic" : "linear"));
    char ck[40];
    snprintf(ck, sizeof ck, "fnv1a64:%016llx", (unsigned long long)D.checksum);
    json_object_object_add(mj, "data_checksum", json_object_new_string(ck));
    /* the quality gate */
    json_object *failed = json_object_new_array();
    for (size_t g = 0; g < ng; g++) {
        json_object *v;
        if (!json_object_object_get_ex(mj, gates[g].name, &v) || !strcmp(gates[g].name, "n") ||
            (!json_object_is_type(v, json_type_double) && !json_object_is_type(v, json_type_int) &&
             !json_object_is_type(v, json_type_null))) {
            fprintf(stderr, "kiln-eval: --%s %s: no such metric for a %s model\n", gates[g].is_min ? "min" : "max",
                    gates[g].name, M.kind == ML_LOGISTIC ? "classification" : "regression");
            json_object_put(mj); json_object_put(failed);
            rc = 2;
            goto done;
        }
        double x = v ? json_object_get_double(v) : NAN;
        int pass = v && (gates[g].is_min ? x >= gates[g].bound : x <= gates[g].bound);
        if (!pass) {
            fprintf(stderr, "kiln-eval: quality gate failed: %s %s %s %g\n", gates[g].name, v ? json_object_get_string(v) : "undefined",
                    gates[g].is_min ? "<" : ">", gates[g].bound);
            char buf[128];
            snprintf(buf, sizeof buf, "%.32s %s %g", gates[g].name, gates[g].is_min ? ">=" : "<=", gates[g].bound);
            json_object_array_add(failed, json_object_new_string(buf));
        }
    }
    if (ng) {
        json_object_object_add(mj, "gate", json_object_new_string(json_object_array_length(failed) ? "failed" : "passed"));
        json_object_object_add(mj, "gate_failures", failed);
    } else json_object_put(failed);
    if (ng && json_object_array_length(json_object_object_get(mj, "gate_failures"))) rc = 1;
    printf("%s\n", json_object_to_json_string_ext(mj, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
    const char *op = getenv("KILN_OUTPUTS");
    if (op && *op && json_object_to_file_ext(op, mj, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)) {
        fprintf(stderr, "kiln-eval: KILN_OUTPUTS %s: cannot write\n", op);
        if (!rc) rc = 1;
    }
    json_object_put(mj);
done:
    free(col); free(row); free(pred); free(yi);
    ml_data_free(&D);
    ml_model_free(&M);
    return rc;
}
