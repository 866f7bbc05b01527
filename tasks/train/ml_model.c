/* Model file (JSON, docs/model-format.md), prediction, metrics. */
#include "ml.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void seterr(char *err, size_t len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, len, fmt, ap);
    va_end(ap);
}

json_object *ml_json_num(double v)
{
    if (!isfinite(v)) return NULL;
    char buf[40];
    snprintf(buf, sizeof buf, "%.17g", v);
    /* shortest text that reads back as the same double */
    for (int prec = 1; prec < 17; prec++) {
        char b2[40];
        snprintf(b2, sizeof b2, "%.*g", prec, v);
        if (strtod(b2, NULL) == v) { memcpy(buf, b2, sizeof b2); break; }
    }
    return json_object_new_double_s(v, buf);
}

static json_object *num_array(const double *v, size_t n)
{
    json_object *a = json_object_new_array();
    for (size_t i = 0; i < n; i++) json_object_array_add(a, ml_json_num(v[i]));
    return a;
}

static json_object *str_array(char *const *v, size_t n)
{
    json_object *a = json_object_new_array();
    for (size_t i = 0; i < n; i++) json_object_array_add(a, json_object_new_string(v[i]));
    return a;
}

void ml_model_free(ml_model *m)
{
    if (!m) return;
    if (m->features) for (size_t i = 0; i < m->d; i++) free(m->features[i]);
    free(m->features); free(m->target); free(m->classes); free(m->mean); free(m->std); free(m->w);
    json_object_put(m->training); json_object_put(m->metrics); json_object_put(m->data);
    memset(m, 0, sizeof *m);
}

json_object *ml_model_to_json(const ml_model *m)
{
    json_object *j = json_object_new_object();
    json_object_object_add(j, "format", json_object_new_string("kiln-model"));
    json_object_object_add(j, "version", json_object_new_int(ML_MODEL_VERSION));
    json_object_object_add(j, "kind", json_object_new_string(m->kind == ML_LOGISTIC ? "logistic" : "linear"));
    json_object_object_add(j, "target", json_object_new_string(m->target ? m->target : ""));
    json_object_object_add(j, "features", str_array(m->features, m->d));
    if (m->kind == ML_LOGISTIC) json_object_object_add(j, "classes", num_array(m->classes, m->nclasses));
    json_object *sc = json_object_new_object();
    json_object_object_add(sc, "method", json_object_new_string("standard"));
    json_object_object_add(sc, "mean", num_array(m->mean, m->d));
    json_object_object_add(sc, "std", num_array(m->std, m->d));
    json_object_object_add(j, "scaling", sc);
    json_object *W = json_object_new_array(), *b = json_object_new_array();
    for (size_t r = 0; r < m->k; r++) {
        json_object_array_add(W, num_array(m->w + r * (m->d + 1), m->d));
        json_object_array_add(b, ml_json_num(m->w[r * (m->d + 1) + m->d]));
    }
    json_object_object_add(j, "weights", W);
    json_object_object_add(j, "intercepts", b);
    if (m->training) json_object_object_add(j, "training", json_object_get(m->training));
    if (m->metrics) json_object_object_add(j, "metrics", json_object_get(m->metrics));
    if (m->data) json_object_object_add(j, "data", json_object_get(m->data));
    return j;
}

static int get_nums(json_object *a, double *out, size_t n)
{
    if (!a || !json_object_is_type(a, json_type_array) || json_object_array_length(a) != n) return -1;
    for (size_t i = 0; i < n; i++) {
        json_object *e = json_object_array_get_idx(a, i);
        if (!json_object_is_type(e, json_type_double) && !json_object_is_type(e, json_type_int)) return -1;
        out[i] = json_object_get_double(e);
    }
    return 0;
}

int ml_model_from_json(json_object *j, ml_model *m, char *err, size_t errlen)
{
    memset(m, 0, sizeof *m);
    json_object *v, *sc, *a;
    if (!json_object_is_type(j, json_type_object) || !json_object_object_get_ex(j, "format", &v) ||
        strcmp(json_object_get_string(v), "kiln-model") != 0) {
        seterr(err, errlen, "not a kiln model (no \"format\": \"kiln-model\")");
        return -1;
    }
    if (!json_object_object_get_ex(j, "version", &v) || json_object_get_int(v) != ML_MODEL_VERSION) {
        seterr(err, errlen, "model format version %d is not supported (this build reads version %d)",
               v ? json_object_get_int(v) : -1, ML_MODEL_VERSION);
        return -1;
    }
    if (!json_object_object_get_ex(j, "kind", &v)) goto bad;
    if (!strcmp(json_object_get_string(v), "logistic")) m->kind = ML_LOGISTIC;
    else if (!strcmp(json_object_get_string(v), "linear")) m->kind = ML_LINEAR;
    else { seterr(err, errlen, "unknown model kind '%s'", json_object_get_string(v)); return -1; }
    if (!json_object_object_get_ex(j, "features", &a) || !json_object_is_type(a, json_type_array)) goto bad;
    m->d = json_object_array_length(a);
    m->features = calloc(m->d ? m->d : 1, sizeof *m->features);
    if (!m->features) abort();
    for (size_t i = 0; i < m->d; i++) m->features[i] = strdup(json_object_get_string(json_object_array_get_idx(a, i)));
    if (json_object_object_get_ex(j, "target", &v)) m->target = strdup(json_object_get_string(v));
    if (m->kind == ML_LOGISTIC) {
        if (!json_object_object_get_ex(j, "classes", &a) || !json_object_is_type(a, json_type_array)) goto bad;
        m->nclasses = json_object_array_length(a);
        if (m->nclasses < 2) goto bad;
        m->classes = malloc(m->nclasses * sizeof *m->classes);
        if (!m->classes || get_nums(a, m->classes, m->nclasses)) goto bad;
        m->k = m->nclasses == 2 ? 1 : m->nclasses;
    } else m->k = 1;
    m->mean = malloc((m->d + 1) * sizeof *m->mean);
    m->std = malloc((m->d + 1) * sizeof *m->std);
    m->w = malloc(m->k * (m->d + 1) * sizeof *m->w);
    if (!m->mean || !m->std || !m->w) abort();
    if (!json_object_object_get_ex(j, "scaling", &sc) || !json_object_object_get_ex(sc, "mean", &a) ||
        get_nums(a, m->mean, m->d) || !json_object_object_get_ex(sc, "std", &a) || get_nums(a, m->std, m->d))
        goto bad;
    json_object *W, *b;
    if (!json_object_object_get_ex(j, "weights", &W) || !json_object_object_get_ex(j, "intercepts", &b) ||
        !json_object_is_type(W, json_type_array) || json_object_array_length(W) != m->k ||
        !json_object_is_type(b, json_type_array) || json_object_array_length(b) != m->k)
        goto bad;
    for (size_t r = 0; r < m->k; r++) {
        if (get_nums(json_object_array_get_idx(W, r), m->w + r * (m->d + 1), m->d)) goto bad;
        json_object *e = json_object_array_get_idx(b, r);
        if (!json_object_is_type(e, json_type_double) && !json_object_is_type(e, json_type_int)) goto bad;
        m->w[r * (m->d + 1) + m->d] = json_object_get_double(e);
    }
    if (json_object_object_get_ex(j, "training", &v)) m->training = json_object_get(v);
    if (json_object_object_get_ex(j, "metrics", &v)) m->metrics = json_object_get(v);
    if (json_object_object_get_ex(j, "data", &v)) m->data = json_object_get(v);
    return 0;
bad:
    seterr(err, errlen, "malformed model (missing or wrong-sized kind/features/classes/scaling/weights/intercepts)");
    ml_model_free(m);
    return -1;
}

int ml_model_save(const ml_model *m, const char *path, char *err, size_t errlen)
{
    json_object *j = ml_model_to_json(m);
    int rc = json_object_to_file_ext(path, j, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED | JSON_C_TO_STRING_NOSLASHESCAPE);
    json_object_put(j);
    if (rc) { seterr(err, errlen, "%s: cannot write: %s", path, json_util_get_last_err()); return -1; }
    return 0;
}

int ml_model_load(const char *path, ml_model *m, char *err, size_t errlen)
{
    memset(m, 0, sizeof *m);
    json_object *j = json_object_from_file(path);
    if (!j) { seterr(err, errlen, "%s: cannot read model: %s", path, json_util_get_last_err()); return -1; }
    char e2[256];
    int rc = ml_model_from_json(j, m, e2, sizeof e2);
    json_object_put(j);
    if (rc) seterr(err, errlen, "%s: %s", path, e2);
    return rc;
}

void ml_predict_row(const ml_model *m, const double *x, double *out)
{
    size_t d = m->d;
    double xb[64] = {0}, *xs = d <= 64 ? xb : malloc(d * sizeof *xs);
    if (!xs) abort();
    for (size_t j = 0; j < d; j++) xs[j] = (x[j] - m->mean[j]) / m->std[j];
    ml_predict_std_row(m, xs, out);
    if (xs != xb) free(xs);
}

void ml_predict_std_row(const ml_model *m, const double *xs, double *out)
{
    size_t d = m->d, k = m->k;
    double zb[64], *z = k <= 64 ? zb : malloc(k * sizeof *z);
    if (!z) abort();
    for (size_t r = 0; r < k; r++) {
        const double *wr = m->w + r * (d + 1);
        double s = wr[d];
        for (size_t j = 0; j < d; j++) s += wr[j] * xs[j];
        z[r] = s;
    }
    if (m->kind == ML_LINEAR) out[0] = z[0];
    else if (k == 1) {
        double p = 1.0 / (1.0 + exp(-z[0]));
        out[0] = 1 - p; out[1] = p;
    } else {
        double mx = z[0], s = 0;
        for (size_t r = 1; r < k; r++) if (z[r] > mx) mx = z[r];
        for (size_t r = 0; r < k; r++) s += (out[r] = exp(z[r] - mx));
        for (size_t r = 0; r < k; r++) out[r] /= s;
    }
    if (z != zb) free(z);
}

int ml_class_index(const ml_model *m, double label)
{
    for (size_t i = 0; i < m->nclasses; i++) if (m->classes[i] == label) return (int)i;
    return -1;
}

/* --- metrics ------------------------------------------------------------- */
/* Scores as unsigned keys in the same order (the sign bit flipped for
 * positives, every bit for negatives; -0 counted as +0), sorted by an LSD radix
 * sort: a byte per pass, passes where every key has the same byte skipped.
 * On 800,000 rows this is a few passes over memory instead of a qsort. */
typedef struct { uint64_t key; uint64_t pos; } scored;

static uint64_t order_key(double s)
{
    s += 0.0; /* -0 -> +0 */
    uint64_t u;
    memcpy(&u, &s, sizeof u);
    return u >> 63 ? ~u : u | (1ULL << 63);
}

static void radix_sort(scored *v, scored *tmp, size_t n)
{
    for (int b = 0; b < 64; b += 8) {
        size_t cnt[257] = {0};
        for (size_t i = 0; i < n; i++) cnt[((v[i].key >> b) & 255) + 1]++;
        int same = 0;
        for (int c = 1; c <= 256; c++) if (cnt[c] == n) same = 1;
        if (same) continue;
        for (int c = 1; c <= 256; c++) cnt[c] += cnt[c - 1];
        for (size_t i = 0; i < n; i++) tmp[cnt[(v[i].key >> b) & 255]++] = v[i];
        memcpy(v, tmp, n * sizeof *v);
    }
}

double ml_roc_auc(size_t n, const int *pos, const double *score)
{
    scored *v = malloc((n ? n : 1) * sizeof *v), *tmp = malloc((n ? n : 1) * sizeof *tmp);
    if (!v || !tmp) abort();
    size_t np = 0;
    for (size_t i = 0; i < n; i++) { v[i].key = order_key(score[i]); v[i].pos = pos[i] != 0; np += v[i].pos; }
    size_t nn = n - np;
    if (np == 0 || nn == 0) { free(v); free(tmp); return NAN; }
    radix_sort(v, tmp, n);
    free(tmp);
    double rank_sum = 0; /* Mann-Whitney: positives' ranks, ties get the average rank */
    for (size_t i = 0; i < n;) {
        size_t j = i;
        size_t tp = 0;
        while (j < n && v[j].key == v[i].key) { tp += v[j].pos; j++; }
        double avg = ((double)(i + 1) + (double)j) / 2.0;
        rank_sum += avg * (double)tp;
        i = j;
    }
    free(v);
    return (rank_sum - (double)np * ((double)np + 1) / 2.0) / ((double)np * (double)nn);
}

int ml_cls_metrics_compute(size_t n, size_t k, const int *yt, const double *proba, ml_cls_metrics *o)
{
    memset(o, 0, sizeof *o);
    if (k < 2) return -1;
    o->n = n; o->k = k;
    o->confusion = calloc(k * k, sizeof *o->confusion);
    if (!o->confusion) abort();
    size_t correct = 0;
    double ll = 0;
    for (size_t i = 0; i < n; i++) {
        const double *p = proba + i * k;
        size_t best = 0;
        for (size_t c = 1; c < k; c++) if (p[c] > p[best]) best = c;
        o->confusion[(size_t)yt[i] * k + best]++;
        correct += best == (size_t)yt[i];
        double py = p[yt[i]];
        ll -= log(py < 1e-15 ? 1e-15 : py > 1 - 1e-15 ? 1 - 1e-15 : py);
    }
    o->accuracy = n ? (double)correct / (double)n : NAN;
    o->log_loss = n ? ll / (double)n : NAN;
    int *pos = malloc((n ? n : 1) * sizeof *pos);
    double *sc = malloc((n ? n : 1) * sizeof *sc);
    if (!pos || !sc) abort();
    double P = 0, R = 0, F = 0, A = 0;
    size_t na = 0;
    for (size_t c = (k == 2 ? 1 : 0); c < k; c++) {
        size_t tp = o->confusion[c * k + c], pred = 0, act = 0;
        for (size_t r = 0; r < k; r++) { pred += o->confusion[r * k + c]; act += o->confusion[c * k + r]; }
        double pr = pred ? (double)tp / (double)pred : 0, rc = act ? (double)tp / (double)act : 0;
        P += pr; R += rc; F += pr + rc > 0 ? 2 * pr * rc / (pr + rc) : 0;
        for (size_t i = 0; i < n; i++) { pos[i] = (size_t)yt[i] == c; sc[i] = proba[i * k + c]; }
        double auc = ml_roc_auc(n, pos, sc);
        if (!isnan(auc)) { A += auc; na++; }
    }
    double nc = k == 2 ? 1 : (double)k;
    o->precision = P / nc; o->recall = R / nc; o->f1 = F / nc;
    o->roc_auc = na ? A / (double)na : NAN;
    free(pos); free(sc);
    return 0;
}

void ml_cls_metrics_free(ml_cls_metrics *m)
{
    if (m) { free(m->confusion); m->confusion = NULL; }
}

void ml_reg_metrics_compute(size_t n, const double *yt, const double *yp, ml_reg_metrics *o)
{
    double mean = 0, ss = 0, sa = 0, st = 0;
    for (size_t i = 0; i < n; i++) mean += yt[i];
    mean = n ? mean / (double)n : 0;
    for (size_t i = 0; i < n; i++) {
        double e = yt[i] - yp[i];
        ss += e * e; sa += fabs(e); st += (yt[i] - mean) * (yt[i] - mean);
    }
    o->n = n;
    o->rmse = n ? sqrt(ss / (double)n) : NAN;
    o->mae = n ? sa / (double)n : NAN;
    o->r2 = st > 0 ? 1 - ss / st : NAN;
}

json_object *ml_cls_metrics_json(const ml_cls_metrics *m, const double *classes)
{
    json_object *j = json_object_new_object();
    json_object_object_add(j, "n", json_object_new_int64((int64_t)m->n));
    json_object_object_add(j, "accuracy", ml_json_num(m->accuracy));
    json_object_object_add(j, "precision", ml_json_num(m->precision));
    json_object_object_add(j, "recall", ml_json_num(m->recall));
    json_object_object_add(j, "f1", ml_json_num(m->f1));
    json_object_object_add(j, "roc_auc", ml_json_num(m->roc_auc));
    json_object_object_add(j, "log_loss", ml_json_num(m->log_loss));
    json_object_object_add(j, "average", json_object_new_string(m->k == 2 ? "binary" : "macro"));
    if (classes) {
        json_object *c = json_object_new_array();
        for (size_t i = 0; i < m->k; i++) json_object_array_add(c, ml_json_num(classes[i]));
        json_object_object_add(j, "classes", c);
    }
    json_object *cm = json_object_new_array();
    for (size_t r = 0; r < m->k; r++) {
        json_object *row = json_object_new_array();
        for (size_t c = 0; c < m->k; c++) json_object_array_add(row, json_object_new_int64((int64_t)m->confusion[r * m->k + c]));
        json_object_array_add(cm, row);
    }
    json_object_object_add(j, "confusion_matrix", cm);
    return j;
}

json_object *ml_reg_metrics_json(const ml_reg_metrics *m)
{
    json_object *j = json_object_new_object();
    json_object_object_add(j, "n", json_object_new_int64((int64_t)m->n));
    json_object_object_add(j, "rmse", ml_json_num(m->rmse));
    json_object_object_add(j, "mae", ml_json_num(m->mae));
    json_object_object_add(j, "r2", ml_json_num(m->r2));
    return j;
}
