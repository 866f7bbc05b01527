/* kiln-clean: CSV reading (libcsv), type inference, the operations, output. */
#include "clean.h"
#include "kcol.h"
#include "knum.h"

#include <csv.h>
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

const char *const clean_default_na[] = {"NA", "N/A", "n/a", "null", "NULL", "NaN", "nan", "None", NULL};

static int fail(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (err && errlen)
        vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

static void *xrealloc_(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q) {
        fprintf(stderr, "kiln-clean: out of memory\n");
        exit(3);
    }
    return q;
}
#define XNEW(type, n) ((type *)xrealloc_(NULL, sizeof(type) * (n)))
static char *xstrndup_(const char *s, size_t n)
{
    char *d = xrealloc_(NULL, n + 1);
    memcpy(d, s, n);
    d[n] = 0;
    return d;
}

/* --- CSV loading ------------------------------------------------------- */

/* The raw cell text lives in large blocks, not one malloc per cell:
 * table_infer copies out what it keeps (category values) and frees them. */
struct strblk {
    struct strblk *next;
    size_t used, cap;
    char data[];
};

static char *arena_dup(struct table *t, const char *s, size_t n)
{
    struct strblk *b = t->arena;
    if (!b || b->cap - b->used < n + 1) {
        size_t cap = n + 1 > (4u << 20) ? n + 1 : (4u << 20);
        b = xrealloc_(NULL, sizeof(*b) + cap);
        b->next = t->arena;
        b->used = 0;
        b->cap = cap;
        t->arena = b;
    }
    char *d = b->data + b->used;
    memcpy(d, s, n);
    d[n] = 0;
    b->used += n + 1;
    return d;
}

static void arena_free(struct table *t)
{
    for (struct strblk *b = t->arena, *nb; b; b = nb) {
        nb = b->next;
        free(b);
    }
    t->arena = NULL;
}

struct load {
    const char *name;
    const char *const *na;
    struct table *t;
    size_t cap;          /* rows allocated per column */
    size_t field;        /* index of the next field in the current row */
    bool header_done;
    char **hdr;          /* header fields while the first row is read */
    size_t nhdr, hdrcap;
    long line, row_line; /* current line; line the current row started on */
    char *err;
    size_t errlen;
    int failed;
    size_t na_maxlen;
};

static bool is_na(const struct load *L, const char *s, size_t n)
{
    if (n == 0)
        return true;
    if (n > L->na_maxlen)
        return false;
    for (const char *const *m = L->na; *m; m++)
        if (strlen(*m) == n && memcmp(*m, s, n) == 0)
            return true;
    return false;
}

static void on_field(void *s, size_t n, void *data)
{
    struct load *L = data;
    if (L->failed)
        return;
    if (!L->header_done) {
        if (L->nhdr == L->hdrcap) {
            L->hdrcap = L->hdrcap ? L->hdrcap * 2 : 16;
            L->hdr = xrealloc_(L->hdr, L->hdrcap * sizeof(char *));
        }
        L->hdr[L->nhdr++] = xstrndup_(s ? s : "", s ? n : 0);
        return;
    }
    struct table *t = L->t;
    if (L->field >= t->ncols) {
        L->field++;
        return;
    }
    if (t->nrows == L->cap) {
        L->cap = L->cap ? L->cap * 2 : 1024;
        for (size_t c = 0; c < t->ncols; c++)
            t->cols[c].str = xrealloc_(t->cols[c].str, L->cap * sizeof(char *));
    }
    struct column *c = &t->cols[L->field++];
    if (!s || is_na(L, s, n)) {
        c->str[t->nrows] = NULL;
        c->missing_in++;
    } else {
        c->str[t->nrows] = arena_dup(t, s, n);
    }
}

static void on_row(int term, void *data)
{
    struct load *L = data;
    if (L->failed)
        return;
    struct table *t = L->t;
    if (!L->header_done) {
        L->header_done = true;
        t->ncols = L->nhdr;
        t->cols = calloc(t->ncols ? t->ncols : 1, sizeof(struct column));
        for (size_t c = 0; c < t->ncols; c++) {
            t->cols[c].name = L->hdr[c];
            t->cols[c].str_arena = true;
        }
        free(L->hdr);
        L->hdr = NULL;
    } else if (L->field != t->ncols) {
        fail(L->err, L->errlen, "%s:%ld: row has %zu fields, the header has %zu", L->name, L->row_line,
             L->field, t->ncols);
        L->failed = 1; /* the partial row's strings are in the arena */
        L->field = 0;
        return;
    } else {
        t->nrows++;
    }
    L->field = 0;
    L->row_line = L->line + 1;
}

static int no_space(unsigned char c) { (void)c; return 0; }

int csv_load_mem(const char *name, const char *data, size_t len, const char *const *na,
                 struct table *t, char *err, size_t errlen)
{
    memset(t, 0, sizeof(*t));
    struct csv_parser p;
    if (csv_init(&p, CSV_STRICT | CSV_STRICT_FINI | CSV_APPEND_NULL) != 0)
        return fail(err, errlen, "csv_init failed");
    csv_set_space_func(&p, no_space);
    struct load L = {.name = name, .na = na ? na : clean_default_na, .t = t, .line = 1, .row_line = 1,
                     .err = err, .errlen = errlen};
    for (const char *const *m = L.na; *m; m++)
        if (strlen(*m) > L.na_maxlen)
            L.na_maxlen = strlen(*m);
    size_t pos = 0;
    int rc = 0;
    /* Fed one line at a time so errors can name their line. */
    while (pos < len && !L.failed) {
        const char *nl = memchr(data + pos, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - (data + pos)) + 1 : len - pos;
        if (csv_parse(&p, data + pos, n, on_field, on_row, &L) != n) {
            if (!L.failed)
                fail(err, errlen, "%s:%ld: %s (a quote inside an unquoted field, or text after a closing quote)",
                     name, L.line, csv_strerror(csv_error(&p)));
            rc = -1;
            break;
        }
        pos += n;
        if (nl)
            L.line++;
    }
    if (rc == 0 && !L.failed && csv_fini(&p, on_field, on_row, &L) != 0) {
        fail(err, errlen, "%s:%ld: unterminated quoted field", name, L.row_line);
        rc = -1;
    }
    if (L.failed)
        rc = -1;
    if (rc == 0 && !L.header_done)
        rc = fail(err, errlen, "%s: empty file (no header row)", name);
    csv_free(&p);
    for (size_t i = 0; i < L.nhdr && L.hdr; i++)
        free(L.hdr[i]);
    free(L.hdr);
    if (rc < 0)
        table_free(t);
    return rc;
}

int csv_load_file(const char *path, const char *const *na, struct table *t, char *err, size_t errlen)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (!f)
        return fail(err, errlen, "%s: %s", path, strerror(errno));
    char *buf = NULL;
    size_t len = 0, cap = 0, n;
    struct stat st; /* a regular file is read into one buffer of its size */
    if (fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0) {
        cap = (size_t)st.st_size + 65536 + 1;
        buf = xrealloc_(NULL, cap);
    }
    do {
        if (cap - len < 65536) {
            cap = cap ? cap * 2 : 1 << 20;
            buf = xrealloc_(buf, cap);
        }
        n = fread(buf + len, 1, cap - len, f);
        len += n;
    } while (n > 0);
    int bad = ferror(f);
    if (f != stdin)
        fclose(f);
    int rc = bad ? fail(err, errlen, "%s: read error", path) : csv_load_mem(path, buf, len, na, t, err, errlen);
    free(buf);
    return rc;
}

void table_free(struct table *t)
{
    for (size_t c = 0; c < t->ncols; c++) {
        struct column *col = &t->cols[c];
        free(col->name);
        if (col->str && !col->str_arena)
            for (size_t r = 0; r < t->nrows; r++)
                free(col->str[r]);
        free(col->str);
        free(col->num);
    }
    free(t->cols);
    arena_free(t);
    memset(t, 0, sizeof(*t));
}

/* --- types ------------------------------------------------------------- */

enum col_type col_type_parse(const char *s)
{
    if (!strcmp(s, "number") || !strcmp(s, "float"))
        return T_NUMBER;
    if (!strcmp(s, "integer") || !strcmp(s, "int"))
        return T_INTEGER;
    if (!strcmp(s, "boolean") || !strcmp(s, "bool"))
        return T_BOOLEAN;
    if (!strcmp(s, "category") || !strcmp(s, "string"))
        return T_CATEGORY;
    if (!strcmp(s, "auto"))
        return T_AUTO;
    return (enum col_type)-1;
}

const char *col_type_name(enum col_type t)
{
    switch (t) {
    case T_NUMBER: return "number";
    case T_INTEGER: return "integer";
    case T_BOOLEAN: return "boolean";
    case T_CATEGORY: return "category";
    default: return "auto";
    }
}

bool is_numeric(const struct column *c) { return c->type == T_NUMBER || c->type == T_INTEGER; }

static int parse_bool(const char *s, double *v)
{
    if (!strcasecmp(s, "true")) { *v = 1; return 0; }
    if (!strcasecmp(s, "false")) { *v = 0; return 0; }
    return -1;
}

static int parse_int(const char *s, double *v)
{
    const char *p = s;
    if (*p == '+' || *p == '-')
        p++;
    if (!*p)
        return -1;
    for (; *p; p++)
        if (!isdigit((unsigned char)*p))
            return -1;
    errno = 0;
    long long x = strtoll(s, NULL, 10);
    if (errno || x > (1LL << 53) || x < -(1LL << 53))
        return -1;
    *v = (double)x;
    return 0;
}

static int parse_num(const char *s, double *v)
{
    const char *fast = knum_parse(s, v); /* a plain decimal: strtod's double */
    if (fast && !*fast)
        return 0;
    bool digit = false;
    for (const char *p = s; *p; p++) {
        if (*p >= '0' && *p <= '9')
            digit = true;
        else if (*p != '+' && *p != '-' && *p != '.' && *p != 'e' && *p != 'E')
            return -1;
    }
    if (!digit)
        return -1;
    char *end;
    errno = 0;
    double x = strtod(s, &end);
    if (*end || errno == ERANGE || !isfinite(x))
        return -1;
    *v = x;
    return 0;
}

/* --- threads ------------------------------------------------------------- */

/* Jobs 0..NJOBS-1 of FN, taken from a shared counter by one thread per CPU
 * (at most 8, at most NJOBS).  Each job writes only its own outputs, so the
 * result does not depend on the number of threads. */
struct par {
    void (*fn)(void *ctx, size_t job);
    void *ctx;
    size_t njobs;
    size_t next; /* atomic */
};

static void *par_worker(void *arg)
{
    struct par *P = arg;
    for (;;) {
        size_t j = __atomic_fetch_add(&P->next, 1, __ATOMIC_RELAXED);
        if (j >= P->njobs)
            return NULL;
        P->fn(P->ctx, j);
    }
}

static void run_parallel(size_t njobs, void (*fn)(void *ctx, size_t job), void *ctx)
{
    struct par P = {.fn = fn, .ctx = ctx, .njobs = njobs, .next = 0};
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    size_t nt = ncpu < 1 ? 1 : ncpu > 8 ? 8 : (size_t)ncpu;
    if (nt > njobs)
        nt = njobs;
    pthread_t th[8];
    size_t started = 0;
    for (size_t i = 1; i < nt; i++) /* the caller is the first thread */
        if (pthread_create(&th[started], NULL, par_worker, &P) == 0)
            started++;
    par_worker(&P);
    for (size_t i = 0; i < started; i++)
        pthread_join(th[i], NULL);
}

static int (*const parsers[])(const char *, double *) = {
    [T_NUMBER] = parse_num, [T_INTEGER] = parse_int, [T_BOOLEAN] = parse_bool};

/* One column: its type (when auto), its numbers parsed, its raw text let go. */
struct infer_job {
    struct table *t;
    char (*err)[256]; /* per column; "" = fine */
};

static void infer_column(void *ctx, size_t c)
{
    struct infer_job *J = ctx;
    struct table *t = J->t;
    struct column *col = &t->cols[c];
    double v;
    bool parsed = false; /* num[] already holds every value (parse_num) */
    if (col->type == T_AUTO) {
        /* One pass: parse_num's values are kept, so a number column (or an
         * integer one: |x| <= 2^53 converts exactly either way) is not
         * parsed twice. */
        bool b = true, i = true, n = true, any = false;
        col->num = XNEW(double, t->nrows ? t->nrows : 1);
        size_t r;
        for (r = 0; r < t->nrows && (b || i || n); r++) {
            const char *s = col->str[r];
            if (!s) {
                col->num[r] = NAN;
                continue;
            }
            any = true;
            if (b && parse_bool(s, &v) < 0) b = false;
            if (i && parse_int(s, &v) < 0) i = false;
            if (n && parse_num(s, &col->num[r]) < 0) n = false;
        }
        col->type = !any ? T_NUMBER : b ? T_BOOLEAN : i ? T_INTEGER : n ? T_NUMBER : T_CATEGORY;
        parsed = n && r == t->nrows && (col->type == T_NUMBER || col->type == T_INTEGER);
        if (parsed && col->type == T_INTEGER) /* "-0": parse_int gives +0 */
            for (size_t q = 0; q < t->nrows; q++)
                if (col->num[q] == 0)
                    col->num[q] = 0;
        if (col->type == T_CATEGORY) {
            free(col->num);
            col->num = NULL;
        }
    }
    if (col->type == T_CATEGORY) {
        if (col->str_arena) { /* copied out of the arena */
            for (size_t r = 0; r < t->nrows; r++)
                if (col->str[r])
                    col->str[r] = xstrndup_(col->str[r], strlen(col->str[r]));
            col->str_arena = false;
        }
        return;
    }
    if (!col->num)
        col->num = XNEW(double, t->nrows ? t->nrows : 1);
    for (size_t r = 0; r < t->nrows && !parsed; r++) {
        const char *s = col->str[r];
        if (!s) {
            col->num[r] = NAN;
        } else if (parsers[col->type](s, &col->num[r]) < 0) {
            snprintf(J->err[c], sizeof J->err[c], "column '%s', row %zu: '%s' is not a valid %s",
                     col->name, r + 1, s, col_type_name(col->type));
            return;
        }
    }
    if (!col->str_arena)
        for (size_t r = 0; r < t->nrows; r++)
            free(col->str[r]);
    free(col->str);
    col->str = NULL;
    col->str_arena = false;
}

int table_infer(struct table *t, char *err, size_t errlen)
{
    /* Columns are independent: they are parsed in parallel, and the first
     * failing column (in column order) is the one reported. */
    struct infer_job J = {.t = t, .err = calloc(t->ncols ? t->ncols : 1, sizeof(*J.err))};
    if (!J.err)
        abort();
    run_parallel(t->ncols, infer_column, &J);
    int rc = 0;
    for (size_t c = 0; c < t->ncols && rc == 0; c++)
        if (J.err[c][0])
            rc = fail(err, errlen, "%s", J.err[c]);
    free(J.err);
    if (rc == 0)
        arena_free(t);
    return rc;
}

/* --- row selection ------------------------------------------------------- */

void table_select(struct table *t, const bool *keep)
{
    size_t w = 0;
    for (size_t r = 0; r < t->nrows; r++) {
        if (keep[r]) {
            for (size_t c = 0; c < t->ncols; c++) {
                struct column *col = &t->cols[c];
                if (col->num) col->num[w] = col->num[r];
                else col->str[w] = col->str[r];
            }
            w++;
        } else {
            for (size_t c = 0; c < t->ncols; c++)
                if (!t->cols[c].num)
                    free(t->cols[c].str[r]);
        }
    }
    t->nrows = w;
}

void table_take(const struct table *t, const size_t *idx, size_t n, struct table *out)
{
    out->nrows = n;
    out->ncols = t->ncols;
    out->cols = calloc(t->ncols ? t->ncols : 1, sizeof(struct column));
    for (size_t c = 0; c < t->ncols; c++) {
        const struct column *src = &t->cols[c];
        struct column *dst = &out->cols[c];
        dst->name = xstrndup_(src->name, strlen(src->name));
        dst->type = src->type;
        dst->missing_in = src->missing_in;
        if (src->num) {
            dst->num = XNEW(double, n);
            for (size_t i = 0; i < n; i++)
                dst->num[i] = src->num[idx[i]];
        } else {
            dst->str = XNEW(char *, n);
            for (size_t i = 0; i < n; i++)
                dst->str[i] = src->str[idx[i]] ? xstrndup_(src->str[idx[i]], strlen(src->str[idx[i]])) : NULL;
        }
    }
}

/* --- filter --------------------------------------------------------------- */

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1]))
        s[--n] = 0;
    if (n >= 2 && (s[0] == '"' || s[0] == '\'') && s[n - 1] == s[0]) {
        s[n - 1] = 0;
        s++;
    }
    return s;
}

int op_filter(struct table *t, const char *cond, size_t *dropped, char *err, size_t errlen)
{
    char *buf = xstrndup_(cond, strlen(cond));
    char *op = strpbrk(buf, "<>!=");
    if (!op) {
        free(buf);
        return fail(err, errlen, "filter '%s': expected COLUMN OP VALUE with OP one of == != < <= > >=", cond);
    }
    char o0 = op[0], o1 = op[1];
    size_t oplen = o1 == '=' ? 2 : 1;
    if (o0 == '!' && o1 != '=') {
        free(buf);
        return fail(err, errlen, "filter '%s': unknown operator", cond);
    }
    *op = 0;
    char *name = trim(buf), *val = trim(op + oplen);
    int kind = o0 == '=' ? 0 : o0 == '!' ? 1 : o0 == '<' ? (o1 == '=' ? 3 : 2) : (o1 == '=' ? 5 : 4);
    struct column *col = NULL;
    for (size_t c = 0; c < t->ncols; c++)
        if (!strcmp(t->cols[c].name, name))
            col = &t->cols[c];
    if (!col) {
        fail(err, errlen, "filter '%s': no column '%s'", cond, name);
        free(buf);
        return -1;
    }
    double x = 0;
    if (col->num && parsers[col->type](val, &x) < 0 && parse_num(val, &x) < 0) {
        fail(err, errlen, "filter '%s': '%s' is not a %s", cond, val, col_type_name(col->type));
        free(buf);
        return -1;
    }
    bool *keep = XNEW(bool, t->nrows ? t->nrows : 1);
    size_t d = 0;
    for (size_t r = 0; r < t->nrows; r++) {
        int cmp;
        if (col->num) {
            double v = col->num[r];
            if (isnan(v)) { keep[r] = false; d++; continue; }
            cmp = v < x ? -1 : v > x ? 1 : 0;
        } else {
            if (!col->str[r]) { keep[r] = false; d++; continue; }
            cmp = strcmp(col->str[r], val);
        }
        bool k = kind == 0 ? cmp == 0 : kind == 1 ? cmp != 0 : kind == 2 ? cmp < 0
               : kind == 3 ? cmp <= 0 : kind == 4 ? cmp > 0 : cmp >= 0;
        keep[r] = k;
        d += !k;
    }
    table_select(t, keep);
    free(keep);
    free(buf);
    if (dropped)
        *dropped = d;
    return 0;
}

/* --- dedup / dropna -------------------------------------------------------- */

/* FNV-1a of a NUL-terminated string. */
static uint64_t str_hash(const char *s)
{
    uint64_t h = KCOL_FNV_OFFSET;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 0x100000001b3ULL;
    return h;
}

/* Word-at-a-time mixing (equal rows must hash alike: -0 is 0, every NaN one
 * NaN); the hash only buckets rows, rows_equal decides. */
static inline uint64_t mix64(uint64_t h, uint64_t v)
{
    h = (h ^ v) * 0x9e3779b97f4a7c15ULL;
    return h ^ (h >> 29);
}

static uint64_t row_hash(const struct table *t, size_t r)
{
    uint64_t h = KCOL_FNV_OFFSET;
    for (size_t c = 0; c < t->ncols; c++) {
        const struct column *col = &t->cols[c];
        if (col->num) {
            double v = col->num[r];
            if (isnan(v)) v = NAN;
            if (v == 0) v = 0;
            uint64_t bits;
            memcpy(&bits, &v, sizeof bits);
            h = mix64(h, bits);
        } else {
            h = mix64(h, col->str[r] ? str_hash(col->str[r]) : 0xff);
        }
    }
    return h;
}

static bool rows_equal(const struct table *t, size_t a, size_t b)
{
    for (size_t c = 0; c < t->ncols; c++) {
        const struct column *col = &t->cols[c];
        if (col->num) {
            double x = col->num[a], y = col->num[b];
            if (!(x == y || (isnan(x) && isnan(y))))
                return false;
        } else {
            const char *x = col->str[a], *y = col->str[b];
            if (!x != !y || (x && strcmp(x, y)))
                return false;
        }
    }
    return true;
}

size_t op_dedup(struct table *t)
{
    size_t n = t->nrows, cap = 16;
    while (cap < 2 * n)
        cap *= 2;
    size_t *slot = calloc(cap, sizeof(size_t)); /* row index + 1 */
    uint64_t *hs = XNEW(uint64_t, n ? n : 1);
    bool *keep = XNEW(bool, n ? n : 1);
    size_t d = 0;
    for (size_t r = 0; r < n; r++) {
        uint64_t h = hs[r] = row_hash(t, r);
        size_t i = h & (cap - 1);
        keep[r] = true;
        while (slot[i]) {
            size_t o = slot[i] - 1;
            if (hs[o] == h && rows_equal(t, o, r)) {
                keep[r] = false;
                d++;
                break;
            }
            i = (i + 1) & (cap - 1);
        }
        if (keep[r])
            slot[i] = r + 1;
    }
    table_select(t, keep);
    free(slot);
    free(hs);
    free(keep);
    return d;
}

size_t op_dropna(struct table *t)
{
    bool *keep = XNEW(bool, t->nrows ? t->nrows : 1);
    size_t d = 0;
    for (size_t r = 0; r < t->nrows; r++) {
        keep[r] = true;
        for (size_t c = 0; c < t->ncols && keep[r]; c++)
            if (t->cols[c].num ? isnan(t->cols[c].num[r]) : !t->cols[c].str[r])
                keep[r] = false;
        d += !keep[r];
    }
    table_select(t, keep);
    free(keep);
    return d;
}

/* --- statistics ------------------------------------------------------------ */

static int dcmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double quantile_sorted(const double *v, size_t n, double q)
{
    double pos = q * (double)(n - 1);
    size_t lo = (size_t)floor(pos), hi = lo + 1 < n ? lo + 1 : lo;
    return v[lo] + (v[hi] - v[lo]) * (pos - (double)lo);
}

void col_stats(const struct column *c, size_t nrows, struct stats *s)
{
    memset(s, 0, sizeof(*s));
    s->mean = s->std = s->min = s->max = s->median = s->q1 = s->q3 = NAN;
    if (!c->num)
        return;
    double *v = XNEW(double, nrows ? nrows : 1);
    size_t n = 0;
    for (size_t r = 0; r < nrows; r++)
        if (!isnan(c->num[r]))
            v[n++] = c->num[r];
    s->n = n;
    if (n) {
        double sum = 0;
        for (size_t i = 0; i < n; i++)
            sum += v[i];
        s->mean = sum / (double)n;
        double ss = 0;
        for (size_t i = 0; i < n; i++)
            ss += (v[i] - s->mean) * (v[i] - s->mean);
        s->std = n > 1 ? sqrt(ss / (double)(n - 1)) : 0;
        qsort(v, n, sizeof(double), dcmp);
        s->min = v[0];
        s->max = v[n - 1];
        s->median = quantile_sorted(v, n, 0.5);
        s->q1 = quantile_sorted(v, n, 0.25);
        s->q3 = quantile_sorted(v, n, 0.75);
    }
    free(v);
}

const struct clean_accel *clean_accel;

void col_moments(const struct column *c, size_t nrows, struct stats *s)
{
    memset(s, 0, sizeof(*s));
    s->mean = s->std = s->min = s->max = s->median = s->q1 = s->q3 = NAN;
    if (!c->num)
        return;
    if (clean_accel && clean_accel->moments(c->num, nrows, &s->n, &s->mean, &s->std, &s->min, &s->max) == 0)
        return;
    /* the same sums in the same order as col_stats */
    size_t n = 0;
    double sum = 0, lo = INFINITY, hi = -INFINITY;
    for (size_t r = 0; r < nrows; r++) {
        double x = c->num[r];
        if (isnan(x))
            continue;
        n++;
        sum += x;
        if (x < lo) lo = x;
        if (x > hi) hi = x;
    }
    s->n = n;
    if (!n)
        return;
    s->mean = sum / (double)n;
    double ss = 0;
    for (size_t r = 0; r < nrows; r++) {
        double x = c->num[r];
        if (!isnan(x))
            ss += (x - s->mean) * (x - s->mean);
    }
    s->std = n > 1 ? sqrt(ss / (double)(n - 1)) : 0;
    s->min = lo;
    s->max = hi;
}

double num_mode(const struct column *c, size_t nrows)
{
    double *v = XNEW(double, nrows ? nrows : 1);
    size_t n = 0;
    for (size_t r = 0; r < nrows; r++)
        if (!isnan(c->num[r]))
            v[n++] = c->num[r];
    qsort(v, n, sizeof(double), dcmp);
    double best = NAN;
    size_t bestn = 0;
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j < n && v[j] == v[i])
            j++;
        if (j - i > bestn) {
            bestn = j - i;
            best = v[i];
        }
        i = j;
    }
    free(v);
    return best;
}

static int scmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* A column's distinct strings, each with a number (a count, or an index):
 * open addressing on FNV-1a, so counting, one-hot encoding and kcol's level
 * codes take one lookup per row, not a sort or a scan of the levels.  Keys are
 * borrowed from the column. */
struct strmap {
    size_t cap, n;
    const char **key;
    uint64_t *hash;
    size_t *val;
};

static void strmap_alloc(struct strmap *m, size_t cap)
{
    m->cap = cap;
    m->n = 0;
    m->key = calloc(cap, sizeof(*m->key));
    m->hash = XNEW(uint64_t, cap);
    m->val = XNEW(size_t, cap);
    if (!m->key)
        abort();
}

static void strmap_free(struct strmap *m)
{
    free(m->key);
    free(m->hash);
    free(m->val);
}

/* The number kept for S, or NULL if S is not there and !INSERT; an inserted
 * key starts at 0. */
static size_t *strmap_get(struct strmap *m, const char *s, bool insert)
{
    if (insert && 2 * (m->n + 1) > m->cap) { /* at most half full */
        struct strmap old = *m;
        strmap_alloc(m, old.cap * 2);
        for (size_t i = 0; i < old.cap; i++) {
            if (!old.key[i])
                continue;
            size_t j = old.hash[i] & (m->cap - 1);
            while (m->key[j])
                j = (j + 1) & (m->cap - 1);
            m->key[j] = old.key[i];
            m->hash[j] = old.hash[i];
            m->val[j] = old.val[i];
        }
        m->n = old.n;
        strmap_free(&old);
    }
    uint64_t h = str_hash(s);
    size_t i = h & (m->cap - 1);
    while (m->key[i]) {
        if (m->hash[i] == h && !strcmp(m->key[i], s))
            return &m->val[i];
        i = (i + 1) & (m->cap - 1);
    }
    if (!insert)
        return NULL;
    m->key[i] = s;
    m->hash[i] = h;
    m->val[i] = 0;
    m->n++;
    return &m->val[i];
}

static int ccmp(const void *a, const void *b)
{
    const struct catcount *x = a, *y = b;
    if (x->count != y->count)
        return x->count > y->count ? -1 : 1;
    return strcmp(x->value, y->value);
}

size_t cat_counts(const struct column *c, size_t nrows, struct catcount **out)
{
    struct strmap m;
    strmap_alloc(&m, 64);
    for (size_t r = 0; r < nrows; r++)
        if (c->str[r])
            ++*strmap_get(&m, c->str[r], true);
    struct catcount *cc = XNEW(struct catcount, m.n ? m.n : 1);
    size_t k = 0;
    for (size_t i = 0; i < m.cap; i++)
        if (m.key[i]) {
            cc[k].value = m.key[i];
            cc[k++].count = m.val[i];
        }
    strmap_free(&m);
    qsort(cc, k, sizeof(*cc), ccmp);
    *out = cc;
    return k;
}

const char *cat_mode(const struct column *c, size_t nrows)
{
    struct catcount *cc;
    size_t k = cat_counts(c, nrows, &cc);
    const char *m = k ? cc[0].value : NULL;
    free(cc);
    return m;
}

/* --- impute / clip / scale ---------------------------------------------------- */

int impute_parse(const char *s, enum impute *out)
{
    if (!strcmp(s, "none")) *out = IMP_NONE;
    else if (!strcmp(s, "mean")) *out = IMP_MEAN;
    else if (!strcmp(s, "median")) *out = IMP_MEDIAN;
    else if (!strcmp(s, "most_frequent") || !strcmp(s, "mode")) *out = IMP_MOST_FREQUENT;
    else if (!strcmp(s, "constant")) *out = IMP_CONSTANT;
    else return -1;
    return 0;
}

int op_impute(struct table *t, size_t ci, enum impute how, const char *constant, char *err, size_t errlen)
{
    struct column *c = &t->cols[ci];
    if (how == IMP_NONE)
        return 0;
    if (!c->num) {
        const char *fill = how == IMP_CONSTANT ? constant : cat_mode(c, t->nrows);
        if (how == IMP_CONSTANT && !fill)
            return fail(err, errlen, "column '%s': impute constant needs a fill value", c->name);
        if (!fill)
            return 0;
        char *f = xstrndup_(fill, strlen(fill)); /* fill may point into the column */
        for (size_t r = 0; r < t->nrows; r++)
            if (!c->str[r])
                c->str[r] = xstrndup_(f, strlen(f));
        free(f);
        return 0;
    }
    double v;
    struct stats s;
    switch (how) {
    case IMP_MEAN: col_moments(c, t->nrows, &s); v = s.mean; break;
    case IMP_MEDIAN: col_stats(c, t->nrows, &s); v = s.median; break;
    case IMP_MOST_FREQUENT: v = num_mode(c, t->nrows); break;
    default:
        if (!constant || (parsers[c->type](constant, &v) < 0 && parse_num(constant, &v) < 0))
            return fail(err, errlen, "column '%s': fill value '%s' is not a number", c->name,
                        constant ? constant : "");
    }
    for (size_t r = 0; r < t->nrows; r++)
        if (isnan(c->num[r]))
            c->num[r] = v;
    if (c->type == T_BOOLEAN && v != 0 && v != 1)
        c->type = T_NUMBER;
    return 0;
}

void op_clip(struct column *c, size_t n, enum clip how, double k)
{
    if (how == CLIP_NONE || !is_numeric(c))
        return;
    struct stats s;
    if (how == CLIP_ZSCORE)
        col_moments(c, n, &s);
    else
        col_stats(c, n, &s);
    if (!s.n)
        return;
    double lo, hi;
    if (how == CLIP_ZSCORE) {
        lo = s.mean - k * s.std;
        hi = s.mean + k * s.std;
    } else {
        double iqr = s.q3 - s.q1;
        lo = s.q1 - k * iqr;
        hi = s.q3 + k * iqr;
    }
    if (clean_accel && clean_accel->clip(c->num, n, lo, hi) == 0)
        return;
    for (size_t r = 0; r < n; r++) {
        if (c->num[r] < lo) c->num[r] = lo;
        else if (c->num[r] > hi) c->num[r] = hi;
    }
}

void op_scale(struct column *c, size_t n, enum scale how)
{
    if (how == SCALE_NONE || !is_numeric(c))
        return;
    struct stats s;
    col_moments(c, n, &s);
    double off = how == SCALE_STANDARD ? s.mean : s.min;
    double div = how == SCALE_STANDARD ? s.std : s.max - s.min;
    c->type = T_NUMBER;
    if (clean_accel && clean_accel->affine(c->num, n, off, div) == 0)
        return;
    for (size_t r = 0; r < n; r++)
        if (!isnan(c->num[r]))
            c->num[r] = div > 0 ? (c->num[r] - off) / div : 0;
}

void op_onehot(struct table *t, size_t ci, size_t top_k)
{
    struct column old = t->cols[ci];
    struct catcount *cc;
    size_t k = cat_counts(&old, t->nrows, &cc);
    size_t keep = k < top_k ? k : top_k;
    bool other = k > keep;
    size_t add = keep + other;
    struct column *nc = calloc(t->ncols - 1 + add + 1, sizeof(struct column));
    memcpy(nc, t->cols, ci * sizeof(struct column));
    memcpy(nc + ci + add, t->cols + ci + 1, (t->ncols - ci - 1) * sizeof(struct column));
    for (size_t j = 0; j < add; j++) {
        struct column *d = &nc[ci + j];
        const char *v = j < keep ? cc[j].value : "__other__";
        size_t len = strlen(old.name) + strlen(v) + 2;
        d->name = xrealloc_(NULL, len);
        snprintf(d->name, len, "%s=%s", old.name, v);
        d->type = T_INTEGER;
        d->num = XNEW(double, t->nrows ? t->nrows : 1);
    }
    struct strmap top; /* value -> its column */
    strmap_alloc(&top, 64);
    for (size_t j = 0; j < keep; j++)
        *strmap_get(&top, cc[j].value, true) = j;
    for (size_t r = 0; r < t->nrows; r++) {
        const char *s = old.str[r];
        size_t hit = add; /* missing: every column 0 */
        if (s) {
            const size_t *j = strmap_get(&top, s, false);
            hit = j ? *j : other ? keep : add;
        }
        for (size_t j = 0; j < add; j++)
            nc[ci + j].num[r] = j == hit;
    }
    strmap_free(&top);
    free(cc);
    free(t->cols);
    t->cols = nc;
    t->ncols = t->ncols - 1 + add;
    for (size_t r = 0; r < t->nrows; r++)
        free(old.str[r]);
    free(old.str);
    free(old.name);
}

/* --- split ------------------------------------------------------------------ */

uint64_t splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void split_indices(size_t n, uint64_t seed, size_t *idx)
{
    for (size_t i = 0; i < n; i++)
        idx[i] = i;
    uint64_t st = seed;
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)(splitmix64(&st) % i);
        size_t tmp = idx[i - 1];
        idx[i - 1] = idx[j];
        idx[j] = tmp;
    }
}

size_t split_test_count(size_t n, double frac)
{
    double x = floor((double)n * frac + 0.5);
    return x < 0 ? 0 : x > (double)n ? n : (size_t)x;
}

/* --- output ------------------------------------------------------------------- */

/* A growable block of output text. */
struct obuf {
    char *p;
    size_t len, cap;
};

/* Room for N more bytes at the end of B. */
static char *obuf_room(struct obuf *b, size_t n)
{
    if (b->cap - b->len < n) {
        size_t cap = b->cap ? b->cap : 1 << 16;
        while (cap - b->len < n)
            cap *= 2;
        b->p = xrealloc_(b->p, cap);
        b->cap = cap;
    }
    return b->p + b->len;
}

/* S as one CSV field: quoted (quotes doubled) when it holds a comma, a quote
 * or a line break. */
static void put_csv_str(struct obuf *b, const char *s)
{
    size_t n = strlen(s);
    char *o = obuf_room(b, 2 * n + 2);
    if (!strpbrk(s, ",\"\r\n")) {
        memcpy(o, s, n);
        b->len += n;
        return;
    }
    size_t k = 0;
    o[k++] = '"';
    for (; *s; s++) {
        if (*s == '"')
            o[k++] = '"';
        o[k++] = *s;
    }
    o[k++] = '"';
    b->len += k;
}

static void format_rows(const struct table *t, size_t r0, size_t r1, struct obuf *b)
{
    for (size_t r = r0; r < r1; r++) {
        for (size_t c = 0; c < t->ncols; c++) {
            const struct column *col = &t->cols[c];
            char *o = obuf_room(b, 2 + KNUM_FMT17_MAX); /* a comma, a number, a newline */
            size_t len = 0;
            if (c)
                o[len++] = ',';
            if (!col->num) {
                b->len += len;
                if (col->str[r])
                    put_csv_str(b, col->str[r]);
                continue;
            }
            double v = col->num[r];
            if (isnan(v)) { /* missing: an empty field */
                b->len += len;
                continue;
            }
            if (col->type == T_BOOLEAN) {
                const char *word = v != 0 ? "true" : "false";
                memcpy(o + len, word, strlen(word));
                len += strlen(word);
            } else if (col->type == T_INTEGER) {
                long long x = (long long)v;
                unsigned long long u = x < 0 ? 0ULL - (unsigned long long)x : (unsigned long long)x;
                char tmp[24];
                int k = 0;
                do tmp[k++] = (char)('0' + u % 10); while ((u /= 10));
                if (x < 0)
                    o[len++] = '-';
                while (k)
                    o[len++] = tmp[--k];
            } else {
                len += knum_fmt17(v, o + len); /* "%.17g", byte for byte */
            }
            b->len += len;
        }
        *obuf_room(b, 1) = '\n';
        b->len++;
    }
}

/* Rows are formatted in blocks, a round of blocks at a time in parallel (the
 * number formatting is most of the cost), and written in order. */
#define WRITE_BLOCK_ROWS 8192
#define WRITE_ROUND_BLOCKS 16

struct write_job {
    const struct table *t;
    size_t first_row;
    struct obuf buf[WRITE_ROUND_BLOCKS];
};

static void format_block(void *ctx, size_t j)
{
    struct write_job *J = ctx;
    size_t r0 = J->first_row + j * WRITE_BLOCK_ROWS;
    size_t r1 = r0 + WRITE_BLOCK_ROWS < J->t->nrows ? r0 + WRITE_BLOCK_ROWS : J->t->nrows;
    J->buf[j].len = 0;
    format_rows(J->t, r0, r1, &J->buf[j]);
}

int csv_write_file(const char *path, const struct table *t, char *err, size_t errlen)
{
    FILE *f = strcmp(path, "-") == 0 ? stdout : fopen(path, "w");
    if (!f)
        return fail(err, errlen, "%s: %s", path, strerror(errno));
    struct write_job *J = calloc(1, sizeof(*J));
    if (!J)
        abort();
    J->t = t;
    for (size_t c = 0; c < t->ncols; c++) {
        if (c) {
            *obuf_room(&J->buf[0], 1) = ',';
            J->buf[0].len++;
        }
        put_csv_str(&J->buf[0], t->cols[c].name);
    }
    *obuf_room(&J->buf[0], 1) = '\n';
    J->buf[0].len++;
    fwrite(J->buf[0].p, 1, J->buf[0].len, f);
    while (J->first_row < t->nrows) {
        size_t left = (t->nrows - J->first_row + WRITE_BLOCK_ROWS - 1) / WRITE_BLOCK_ROWS;
        size_t nblocks = left < WRITE_ROUND_BLOCKS ? left : WRITE_ROUND_BLOCKS;
        run_parallel(nblocks, format_block, J);
        for (size_t j = 0; j < nblocks; j++)
            fwrite(J->buf[j].p, 1, J->buf[j].len, f);
        J->first_row += nblocks * WRITE_BLOCK_ROWS;
    }
    for (size_t j = 0; j < WRITE_ROUND_BLOCKS; j++)
        free(J->buf[j].p);
    free(J);
    int bad = ferror(f);
    if (f != stdout) {
        if (fclose(f) != 0)
            bad = 1;
    } else if (fflush(f) != 0) {
        bad = 1;
    }
    return bad ? fail(err, errlen, "%s: write error", path) : 0;
}

int kcol_write_table(const char *path, const struct table *t, char *err, size_t errlen)
{
    struct kcol_table k = {.nrows = t->nrows, .ncols = (uint32_t)t->ncols};
    k.cols = calloc(t->ncols ? t->ncols : 1, sizeof(struct kcol_column));
    for (size_t c = 0; c < t->ncols; c++) {
        const struct column *col = &t->cols[c];
        struct kcol_column *kc = &k.cols[c];
        kc->name = col->name;
        if (col->type == T_NUMBER) {
            kc->type = KCOL_F64;
            kc->f64 = col->num;
            continue;
        }
        kc->type = col->type == T_INTEGER ? KCOL_I64 : col->type == T_BOOLEAN ? KCOL_BOOL : KCOL_CAT;
        kc->i64 = XNEW(int64_t, t->nrows ? t->nrows : 1);
        if (col->num) {
            for (size_t r = 0; r < t->nrows; r++)
                kc->i64[r] = isnan(col->num[r]) ? KCOL_I64_MISSING : (int64_t)col->num[r];
            continue;
        }
        /* levels sorted; each row's code by one lookup */
        struct strmap m;
        strmap_alloc(&m, 64);
        for (size_t r = 0; r < t->nrows; r++)
            if (col->str[r])
                strmap_get(&m, col->str[r], true);
        char **lv = XNEW(char *, m.n ? m.n : 1);
        size_t u = 0;
        for (size_t i = 0; i < m.cap; i++)
            if (m.key[i])
                lv[u++] = (char *)m.key[i];
        qsort(lv, u, sizeof(char *), scmp);
        for (size_t i = 0; i < u; i++)
            *strmap_get(&m, lv[i], false) = i;
        kc->levels = lv;
        kc->nlevels = (uint32_t)u;
        for (size_t r = 0; r < t->nrows; r++) {
            const size_t *code = col->str[r] ? strmap_get(&m, col->str[r], false) : NULL;
            kc->i64[r] = code ? (int64_t)*code : -1;
        }
        strmap_free(&m);
    }
    int rc = kcol_write(path, &k, err, errlen);
    for (size_t c = 0; c < t->ncols; c++) {
        free(k.cols[c].i64);
        free(k.cols[c].levels);
    }
    free(k.cols);
    return rc;
}

void table_settle_types(struct table *t)
{
    for (size_t c = 0; c < t->ncols; c++) {
        struct column *col = &t->cols[c];
        if (col->type != T_INTEGER)
            continue;
        for (size_t r = 0; r < t->nrows; r++)
            if (!isnan(col->num[r]) && col->num[r] != floor(col->num[r])) {
                col->type = T_NUMBER;
                break;
            }
    }
}
