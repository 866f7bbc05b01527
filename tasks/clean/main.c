/* kiln-clean: cleans a CSV file for training.  See docs/kiln-clean.md.
 * Contract: argv + env in; exit 0 (done), 1 (bad data or I/O), 2 (usage);
 * progress on stderr; a JSON summary on stdout and, when KILN_OUTPUTS is
 * set, in that file. */
#include "clean.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <yaml.h>

#define MAXLIST 256

struct opts {
    const char *input, *output, *test_output, *format, *device;
    char *na_buf;
    const char *na[MAXLIST];
    bool na_set;
    const char *types[MAXLIST]; size_t ntypes;     /* COL=TYPE */
    const char *filters[MAXLIST]; size_t nfilters;
    const char *imputes[MAXLIST]; size_t nimputes; /* [COL=]STRATEGY */
    const char *fill_value;
    bool dedup, dropna;
    enum clip clip; double clip_k;
    enum scale scale;
    size_t onehot;
    double split; uint64_t seed;
    char *owned[MAXLIST * 4]; size_t nowned;       /* strings from the spec */
};

static void usage(FILE *f)
{
    fputs("usage: kiln-clean INPUT.csv [-o OUTPUT.csv|.kcol] [options]\n"
          "  --spec FILE.yaml          options from a YAML file (keys = option names)\n"
          "  --na A,B,...              missing-value markers (default NA,N/A,n/a,null,NULL,NaN,nan,None; empty always)\n"
          "  --type COL=TYPE           number|integer|boolean|category (default: inferred)\n"
          "  --filter 'COL OP VALUE'   keep rows where it holds (== != < <= > >=); repeatable\n"
          "  --dedup                   drop duplicate rows (first kept)\n"
          "  --dropna                  drop rows with a missing value\n"
          "  --impute [COL=]STRATEGY   mean|median|most_frequent|constant (with --fill-value)\n"
          "  --fill-value V            the constant for --impute constant\n"
          "  --clip zscore[:K]|iqr[:K] clip numeric columns (K: 3 for zscore, 1.5 for iqr)\n"
          "  --scale standard|minmax   scale numeric columns\n"
          "  --onehot K                one-hot encode category columns: top K + __other__\n"
          "  --split FRACTION          test fraction; test rows go to --test-output\n"
          "  --seed N                  seed of the split (splitmix64; default 0)\n"
          "  --test-output PATH        where the test rows go\n"
          "  --format csv|kcol         output format (default: from the extension)\n"
          "  --device auto|cpu|gpu     auto = the GPU when built with CUDA and one is visible\n", f);
}

#ifdef KILN_GPU
#include "kgpu.h"

/* clean_accel on the GPU: a CUDA error is reported once, and that step and
 * every later one run on the CPU. */
static int gpu_failed;

static int gpu_note(int rc, const char *err)
{
    if (rc && !gpu_failed) {
        fprintf(stderr, "kiln-clean: GPU step failed (%s); continuing on the CPU\n", err);
        gpu_failed = 1;
    }
    return rc;
}

static int gpu_moments(const double *x, size_t n, size_t *count, double *mean, double *std, double *min, double *max)
{
    char err[300];
    return gpu_failed ? -1 : gpu_note(kg_col_moments(x, n, count, mean, std, min, max, err, sizeof err), err);
}

static int gpu_clip(double *x, size_t n, double lo, double hi)
{
    char err[300];
    return gpu_failed ? -1 : gpu_note(kg_col_clip(x, n, lo, hi, err, sizeof err), err);
}

static int gpu_affine(double *x, size_t n, double off, double div)
{
    char err[300];
    return gpu_failed ? -1 : gpu_note(kg_col_affine(x, n, off, div, err, sizeof err), err);
}

static const struct clean_accel gpu_accel = {gpu_moments, gpu_clip, gpu_affine};
#endif

static int die_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int die_usage(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("kiln-clean: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(2);
}

static void add(const char **list, size_t *n, const char *v, const char *what)
{
    if (*n == MAXLIST)
        die_usage("too many %s options", what);
    list[(*n)++] = v;
}

static bool truthy(const char *v)
{
    return !v || !strcmp(v, "true") || !strcmp(v, "yes") || !strcmp(v, "1") || !strcmp(v, "on");
}

/* One option, from argv or the spec.  Returns 1 when it took a value. */
static void set_option(struct opts *o, const char *key, const char *val);

static const char *const flag_opts[] = {"dedup", "dropna", "help", NULL};

static bool is_flag(const char *key)
{
    for (const char *const *f = flag_opts; *f; f++)
        if (!strcmp(*f, key))
            return true;
    return false;
}

static const char *keep(struct opts *o, const char *s)
{
    if (o->nowned == sizeof(o->owned) / sizeof(o->owned[0]))
        die_usage("spec too large");
    return o->owned[o->nowned++] = strdup(s);
}

static void load_spec(struct opts *o, const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        die_usage("%s: cannot open spec", path);
    yaml_parser_t p;
    yaml_document_t doc;
    yaml_parser_initialize(&p);
    yaml_parser_set_input_file(&p, f);
    if (!yaml_parser_load(&p, &doc)) {
        fprintf(stderr, "kiln-clean: %s:%zu: %s\n", path, p.problem_mark.line + 1, p.problem ? p.problem : "YAML error");
        exit(2);
    }
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (!root || root->type != YAML_MAPPING_NODE)
        die_usage("%s: the spec must be a mapping of option: value", path);
    for (yaml_node_pair_t *pr = root->data.mapping.pairs.start; pr < root->data.mapping.pairs.top; pr++) {
        yaml_node_t *k = yaml_document_get_node(&doc, pr->key), *v = yaml_document_get_node(&doc, pr->value);
        if (k->type != YAML_SCALAR_NODE)
            die_usage("%s:%zu: keys must be scalars", path, k->start_mark.line + 1);
        char key[64];
        snprintf(key, sizeof key, "%s", (char *)k->data.scalar.value);
        for (char *c = key; *c; c++)
            if (*c == '_')
                *c = '-';
        if (!strcmp(key, "types")) strcpy(key, "type");
        if (!strcmp(key, "filters")) strcpy(key, "filter");
        if (v->type == YAML_SCALAR_NODE) {
            set_option(o, key, keep(o, (char *)v->data.scalar.value));
        } else if (v->type == YAML_SEQUENCE_NODE) {
            if (!strcmp(key, "na")) {
                /* a list replaces the defaults: joined with commas */
                size_t len = 1;
                for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top; it++)
                    len += strlen((char *)yaml_document_get_node(&doc, *it)->data.scalar.value) + 1;
                char *s = calloc(1, len);
                for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top; it++) {
                    if (*s) strcat(s, ",");
                    strcat(s, (char *)yaml_document_get_node(&doc, *it)->data.scalar.value);
                }
                set_option(o, key, keep(o, s));
                free(s);
                continue;
            }
            for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top; it++) {
                yaml_node_t *e = yaml_document_get_node(&doc, *it);
                if (e->type != YAML_SCALAR_NODE)
                    die_usage("%s:%zu: expected a list of scalars", path, e->start_mark.line + 1);
                set_option(o, key, keep(o, (char *)e->data.scalar.value));
            }
        } else {
            /* mapping: COL: VALUE, for type and impute */
            for (yaml_node_pair_t *q = v->data.mapping.pairs.start; q < v->data.mapping.pairs.top; q++) {
                yaml_node_t *mk = yaml_document_get_node(&doc, q->key), *mv = yaml_document_get_node(&doc, q->value);
                if (mk->type != YAML_SCALAR_NODE || mv->type != YAML_SCALAR_NODE)
                    die_usage("%s:%zu: expected COLUMN: VALUE", path, mk->start_mark.line + 1);
                char buf[1024];
                snprintf(buf, sizeof buf, "%s=%s", (char *)mk->data.scalar.value, (char *)mv->data.scalar.value);
                set_option(o, key, keep(o, buf));
            }
        }
    }
    yaml_document_delete(&doc);
    yaml_parser_delete(&p);
    fclose(f);
}

static void set_option(struct opts *o, const char *key, const char *val)
{
    char *end;
    if (!strcmp(key, "output") || !strcmp(key, "o")) o->output = val;
    else if (!strcmp(key, "test-output")) o->test_output = val;
    else if (!strcmp(key, "format")) o->format = val;
    else if (!strcmp(key, "device")) o->device = val;
    else if (!strcmp(key, "spec")) load_spec(o, val);
    else if (!strcmp(key, "type")) add(o->types, &o->ntypes, val, "--type");
    else if (!strcmp(key, "filter")) add(o->filters, &o->nfilters, val, "--filter");
    else if (!strcmp(key, "impute")) add(o->imputes, &o->nimputes, val, "--impute");
    else if (!strcmp(key, "fill-value")) o->fill_value = val;
    else if (!strcmp(key, "dedup")) o->dedup = truthy(val);
    else if (!strcmp(key, "dropna")) o->dropna = truthy(val);
    else if (!strcmp(key, "na")) {
        free(o->na_buf);
        o->na_buf = strdup(val);
        size_t n = 0;
        for (char *s = strtok(o->na_buf, ","); s && n < MAXLIST - 1; s = strtok(NULL, ","))
            o->na[n++] = s;
        o->na[n] = NULL;
        o->na_set = true;
    } else if (!strcmp(key, "clip")) {
        const char *colon = strchr(val, ':');
        size_t n = colon ? (size_t)(colon - val) : strlen(val);
        if (!strncmp(val, "none", n) && n == 4) o->clip = CLIP_NONE;
        else if (n == 6 && !strncmp(val, "zscore", 6)) { o->clip = CLIP_ZSCORE; o->clip_k = 3; }
        else if (n == 3 && !strncmp(val, "iqr", 3)) { o->clip = CLIP_IQR; o->clip_k = 1.5; }
        else die_usage("--clip: want zscore[:K] or iqr[:K], got '%s'", val);
        if (colon) {
            o->clip_k = strtod(colon + 1, &end);
            if (*end || !(o->clip_k > 0))
                die_usage("--clip: bad K in '%s'", val);
        }
    } else if (!strcmp(key, "scale")) {
        if (!strcmp(val, "standard")) o->scale = SCALE_STANDARD;
        else if (!strcmp(val, "minmax")) o->scale = SCALE_MINMAX;
        else if (!strcmp(val, "none")) o->scale = SCALE_NONE;
        else die_usage("--scale: want standard or minmax, got '%s'", val);
    } else if (!strcmp(key, "onehot")) {
        long k = strtol(val, &end, 10);
        if (*end || k < 0)
            die_usage("--onehot: want a count, got '%s'", val);
        o->onehot = (size_t)k;
    } else if (!strcmp(key, "split")) {
        o->split = strtod(val, &end);
        if (*end || o->split < 0 || o->split >= 1)
            die_usage("--split: want a fraction in [0, 1), got '%s'", val);
    } else if (!strcmp(key, "seed")) {
        o->seed = strtoull(val, &end, 10);
        if (*end || !*val)
            die_usage("--seed: want a non-negative integer, got '%s'", val);
    } else if (!strcmp(key, "input")) {
        o->input = val;
    } else {
        die_usage("unknown option '%s' (see --help)", key);
    }
}

/* --- JSON summary ---------------------------------------------------------- */

struct colsum {
    char *name;
    enum col_type type;
    size_t missing;
    struct stats st;
    struct catcount *cats;
    size_t ncats;
};

static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') fprintf(f, "\\%c", *p);
        else if (*p == '\n') fputs("\\n", f);
        else if (*p < 0x20) fprintf(f, "\\u%04x", *p);
        else fputc(*p, f);
    }
    fputc('"', f);
}

static void json_num(FILE *f, double v)
{
    if (isfinite(v)) fprintf(f, "%.17g", v);
    else fputs("null", f);
}

struct counts {
    size_t rows_in, rows_out, filtered, dups, dropped_na, train, test, cols_out;
};

static void write_summary(FILE *f, const struct opts *o, const struct counts *k, const struct colsum *cs,
                          size_t ncs, const char *device)
{
    fprintf(f, "{\"rows_in\": %zu, \"rows_out\": %zu, \"rows_filtered\": %zu, \"duplicates_dropped\": %zu, "
               "\"rows_dropped_missing\": %zu, \"rows_train\": %zu, \"rows_test\": %zu, \"columns_in\": %zu, "
               "\"columns_out\": %zu, \"device\": ",
            k->rows_in, k->rows_out, k->filtered, k->dups, k->dropped_na, k->train, k->test, ncs, k->cols_out);
    json_str(f, device);
    fputs(", \"output\": ", f);
    if (o->output) json_str(f, o->output); else fputs("null", f);
    fputs(", \"columns\": [", f);
    for (size_t i = 0; i < ncs; i++) {
        const struct colsum *c = &cs[i];
        fputs(i ? ", {\"name\": " : "{\"name\": ", f);
        json_str(f, c->name);
        fprintf(f, ", \"type\": \"%s\", \"missing\": %zu", col_type_name(c->type), c->missing);
        if (c->type == T_CATEGORY) {
            fprintf(f, ", \"distinct\": %zu, \"categories\": {", c->ncats);
            for (size_t j = 0; j < c->ncats && j < 20; j++) {
                if (j) fputs(", ", f);
                json_str(f, c->cats[j].value);
                fprintf(f, ": %zu", c->cats[j].count);
            }
            fputc('}', f);
        } else {
            fputs(", \"mean\": ", f); json_num(f, c->st.mean);
            fputs(", \"std\": ", f); json_num(f, c->st.std);
            fputs(", \"min\": ", f); json_num(f, c->st.min);
            fputs(", \"max\": ", f); json_num(f, c->st.max);
        }
        fputc('}', f);
    }
    fputs("]}\n", f);
}

static double secs(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static bool want_kcol(const struct opts *o, const char *path)
{
    if (o->format)
        return !strcmp(o->format, "kcol");
    size_t n = strlen(path);
    return n > 5 && !strcmp(path + n - 5, ".kcol");
}

static int write_out(const struct opts *o, const char *path, const struct table *t)
{
    char err[512];
    int rc = want_kcol(o, path) ? kcol_write_table(path, t, err, sizeof err) : csv_write_file(path, t, err, sizeof err);
    if (rc < 0)
        fprintf(stderr, "kiln-clean: %s\n", err);
    return rc;
}

int main(int argc, char **argv)
{
    struct opts o = {.device = "auto"};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(a, "-o")) {
            if (i + 1 >= argc) die_usage("-o needs a value");
            o.output = argv[++i];
        } else if (!strncmp(a, "--", 2) && a[2]) {
            char key[64];
            const char *eq = strchr(a, '=');
            snprintf(key, sizeof key, "%.*s", (int)(eq ? eq - a - 2 : (long)strlen(a + 2)), a + 2);
            if (is_flag(key)) set_option(&o, key, eq ? eq + 1 : NULL);
            else if (eq) set_option(&o, key, eq + 1);
            else if (i + 1 < argc) set_option(&o, key, argv[++i]);
            else die_usage("--%s needs a value", key);
        } else if (!o.input) {
            o.input = a;
        } else {
            die_usage("unexpected argument '%s' (see --help)", a);
        }
    }
    if (!o.input) {
        usage(stderr);
        return 2;
    }
    if (o.format && strcmp(o.format, "csv") && strcmp(o.format, "kcol"))
        die_usage("--format: want csv or kcol, got '%s'", o.format);
    if (o.split > 0 && !o.test_output)
        die_usage("--split needs --test-output PATH");
    if (o.dropna && o.nimputes)
        die_usage("--dropna and --impute exclude each other");
    /* Device: the GPU when this build has CUDA and one is visible (auto) or
     * asked for (gpu); the choice and its reason are logged.  On the GPU:
     * column moments (mean imputing, z-score clipping, scaling, the
     * summary), clipping and scaling; parsing, dedup, one-hot and writing
     * stay on the CPU. */
    const char *device;
    char dev_why[300] = "";
    if (strcmp(o.device, "gpu") && strcmp(o.device, "cpu") && strcmp(o.device, "auto"))
        die_usage("--device: want auto, cpu or gpu, got '%s'", o.device);
#ifdef KILN_GPU
    int ngpu = strcmp(o.device, "cpu") ? kg_device_count(dev_why, sizeof dev_why) : 0;
    if (!strcmp(o.device, "cpu")) {
        device = "cpu";
        snprintf(dev_why, sizeof dev_why, "requested");
    } else if (ngpu == 0) {
        if (!strcmp(o.device, "gpu"))
            die_usage("--device gpu: no GPU visible (%s); use --device cpu or auto", dev_why);
        device = "cpu";
        char tmp[300];
        snprintf(tmp, sizeof tmp, "auto: no GPU visible: %s", dev_why);
        snprintf(dev_why, sizeof dev_why, "%s", tmp);
    } else {
        char name[256] = "", e2[256];
        double peak = 0;
        device = "gpu";
        if (kg_device_info(name, sizeof name, &peak, e2, sizeof e2) == 0)
            snprintf(dev_why, sizeof dev_why, "%s: %s, peak %.0f GB/s", o.device, name, peak);
        else
            snprintf(dev_why, sizeof dev_why, "%s: %d visible", o.device, ngpu);
        clean_accel = &gpu_accel;
    }
#else
    if (!strcmp(o.device, "gpu"))
        die_usage("--device gpu: this kiln-clean was built without CUDA");
    device = "cpu";
    snprintf(dev_why, sizeof dev_why, "%s", !strcmp(o.device, "auto") ? "auto: built without CUDA" : "requested");
#endif
    fprintf(stderr, "kiln-clean: device %s (%s)\n", device, dev_why);

    char err[1024];
    double t0 = secs();
    struct table t;
    if (csv_load_file(o.input, o.na_set ? o.na : NULL, &t, err, sizeof err) < 0) {
        fprintf(stderr, "kiln-clean: %s\n", err);
        return 1;
    }
    int rc = 1;
    struct colsum *cs = NULL;
    size_t ncs = 0;
    for (size_t i = 0; i < o.ntypes; i++) {
        const char *eq = strrchr(o.types[i], '=');
        enum col_type ty = eq ? col_type_parse(eq + 1) : (enum col_type)-1;
        if (ty == (enum col_type)-1) {
            fprintf(stderr, "kiln-clean: --type '%s': want COLUMN=number|integer|boolean|category\n", o.types[i]);
            rc = 2;
            goto out;
        }
        size_t c;
        for (c = 0; c < t.ncols; c++)
            if (strlen(t.cols[c].name) == (size_t)(eq - o.types[i]) && !strncmp(t.cols[c].name, o.types[i], eq - o.types[i]))
                break;
        if (c == t.ncols) {
            fprintf(stderr, "kiln-clean: --type '%s': no such column\n", o.types[i]);
            rc = 2;
            goto out;
        }
        t.cols[c].type = ty;
    }
    if (table_infer(&t, err, sizeof err) < 0) {
        fprintf(stderr, "kiln-clean: %s: %s\n", o.input, err);
        goto out;
    }
    struct counts k = {.rows_in = t.nrows};
    fprintf(stderr, "kiln-clean: read %zu rows x %zu columns from %s (%.2fs)\n", t.nrows, t.ncols, o.input, secs() - t0);
    ncs = t.ncols;
    cs = calloc(ncs ? ncs : 1, sizeof(*cs));
    for (size_t c = 0; c < ncs; c++) {
        cs[c].name = strdup(t.cols[c].name);
        cs[c].type = t.cols[c].type;
        cs[c].missing = t.cols[c].missing_in;
    }
    for (size_t i = 0; i < o.nfilters; i++) {
        size_t d = 0;
        if (op_filter(&t, o.filters[i], &d, err, sizeof err) < 0) {
            fprintf(stderr, "kiln-clean: %s\n", err);
            rc = 2;
            goto out;
        }
        k.filtered += d;
    }
    if (o.dedup)
        k.dups = op_dedup(&t);
    if (o.dropna)
        k.dropped_na = op_dropna(&t);
    /* impute: a bare STRATEGY applies to every column, COL=STRATEGY to one;
     * mean and median fall back to most_frequent on category columns. */
    enum impute *how = calloc(t.ncols ? t.ncols : 1, sizeof(*how));
    for (size_t i = 0; i < o.nimputes; i++) {
        const char *spec = o.imputes[i], *eq = strrchr(spec, '=');
        enum impute im;
        if (impute_parse(eq ? eq + 1 : spec, &im) < 0) {
            fprintf(stderr, "kiln-clean: --impute '%s': want mean|median|most_frequent|constant\n", spec);
            free(how);
            rc = 2;
            goto out;
        }
        bool found = !eq;
        for (size_t c = 0; c < t.ncols; c++)
            if (!eq || (strlen(t.cols[c].name) == (size_t)(eq - spec) && !strncmp(t.cols[c].name, spec, eq - spec))) {
                how[c] = im;
                found = true;
            }
        if (!found) {
            fprintf(stderr, "kiln-clean: --impute '%s': no such column\n", spec);
            free(how);
            rc = 2;
            goto out;
        }
    }
    for (size_t c = 0; c < t.ncols; c++) {
        enum impute im = how[c];
        if (t.cols[c].type == T_CATEGORY && (im == IMP_MEAN || im == IMP_MEDIAN))
            im = IMP_MOST_FREQUENT;
        if (op_impute(&t, c, im, o.fill_value, err, sizeof err) < 0) {
            fprintf(stderr, "kiln-clean: %s\n", err);
            free(how);
            rc = 2;
            goto out;
        }
    }
    free(how);
    for (size_t c = 0; c < t.ncols; c++)
        op_clip(&t.cols[c], t.nrows, o.clip, o.clip_k);
    table_settle_types(&t);
    /* The summary's statistics are those scaling uses: after filtering,
     * dedup, imputing and clipping, before scaling and one-hot. */
    for (size_t c = 0; c < t.ncols; c++) {
        cs[c].type = t.cols[c].type;
        if (t.cols[c].num)
            col_moments(&t.cols[c], t.nrows, &cs[c].st); /* mean, std, min, max */
        else
            cs[c].ncats = cat_counts(&t.cols[c], t.nrows, &cs[c].cats);
    }
    /* cat_counts points into the table: copy the values kept in the summary */
    for (size_t c = 0; c < ncs; c++)
        for (size_t j = 0; j < cs[c].ncats && j < 20; j++)
            cs[c].cats[j].value = strdup(cs[c].cats[j].value);
    for (size_t c = 0; c < t.ncols; c++)
        op_scale(&t.cols[c], t.nrows, o.scale);
    if (o.onehot)
        for (size_t c = t.ncols; c-- > 0;)
            if (t.cols[c].type == T_CATEGORY)
                op_onehot(&t, c, o.onehot);
    table_settle_types(&t);
    k.rows_out = t.nrows;
    k.cols_out = t.ncols;
    if (o.split > 0) {
        size_t *idx = malloc((t.nrows ? t.nrows : 1) * sizeof(size_t));
        split_indices(t.nrows, o.seed, idx);
        size_t nt = split_test_count(t.nrows, o.split);
        bool *is_test = calloc(t.nrows ? t.nrows : 1, sizeof(bool));
        for (size_t i = 0; i < nt; i++)
            is_test[idx[i]] = true;
        size_t a = 0, b = nt;
        for (size_t r = 0; r < t.nrows; r++) /* both parts keep the input order */
            idx[is_test[r] ? a++ : b++] = r;
        struct table tt, tr;
        table_take(&t, idx, nt, &tt);
        table_take(&t, idx + nt, t.nrows - nt, &tr);
        free(idx);
        free(is_test);
        k.train = tr.nrows;
        k.test = tt.nrows;
        int w = write_out(&o, o.test_output, &tt);
        if (w == 0 && o.output)
            w = write_out(&o, o.output, &tr);
        table_free(&tt);
        table_free(&tr);
        if (w < 0)
            goto out;
    } else {
        k.train = t.nrows;
        if (o.output && write_out(&o, o.output, &t) < 0)
            goto out;
    }
    fprintf(stderr, "kiln-clean: %zu rows in, %zu out (%zu filtered, %zu duplicates, %zu with missing values); %zu columns out; %.2fs\n",
            k.rows_in, k.rows_out, k.filtered, k.dups, k.dropped_na, k.cols_out, secs() - t0);
    const char *outs = getenv("KILN_OUTPUTS");
    if (outs && *outs) {
        FILE *f = fopen(outs, "w");
        if (!f) {
            fprintf(stderr, "kiln-clean: %s: cannot write the summary\n", outs);
            goto out;
        }
        write_summary(f, &o, &k, cs, ncs, device);
        fclose(f);
    }
    if (!o.output || strcmp(o.output, "-"))
        write_summary(stdout, &o, &k, cs, ncs, device);
    rc = 0;
out:
    for (size_t c = 0; c < ncs; c++) {
        free(cs[c].name);
        for (size_t j = 0; j < cs[c].ncats && j < 20; j++)
            free((char *)cs[c].cats[j].value);
        free(cs[c].cats);
    }
    free(cs);
    table_free(&t);
    free(o.na_buf);
    for (size_t i = 0; i < o.nowned; i++)
        free(o.owned[i]);
    return rc;
}
