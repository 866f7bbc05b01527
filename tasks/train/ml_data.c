/* Numeric CSV reader, checksum, seeded random numbers. */
#include "ml.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

uint64_t ml_fnv1a64(const void *buf, size_t len, uint64_t h)
{
    const unsigned char *p = buf;
    if (h == 0) h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < len; i++) { h ^= p[i]; h *= 0x100000001b3ULL; }
    return h;
}

uint64_t ml_rand(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void ml_shuffle(size_t *idx, size_t n, uint64_t *state)
{
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)(ml_rand(state) % i);
        size_t t = idx[i - 1]; idx[i - 1] = idx[j]; idx[j] = t;
    }
}

void ml_data_free(ml_data *d)
{
    if (!d) return;
    if (d->names) for (size_t i = 0; i < d->d; i++) free(d->names[i]);
    free(d->names); free(d->target); free(d->x); free(d->y);
    memset(d, 0, sizeof *d);
}

static void seterr(char *err, size_t len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, len, fmt, ap);
    va_end(ap);
}

/* Splits LINE (NUL-terminated, modified in place) at commas; trims blanks and quotes. */
static size_t split(char *line, char ***fields, size_t *cap)
{
    size_t n = 0;
    char *p = line;
    for (;;) {
        char *c = strchr(p, ',');
        if (c) *c = 0;
        while (isspace((unsigned char)*p)) p++;
        char *e = p + strlen(p);
        while (e > p && isspace((unsigned char)e[-1])) *--e = 0;
        if (e - p >= 2 && *p == '"' && e[-1] == '"') { e[-1] = 0; p++; }
        if (n == *cap) {
            *cap = *cap ? *cap * 2 : 16;
            *fields = realloc(*fields, *cap * sizeof **fields);
            if (!*fields) abort();
        }
        (*fields)[n++] = p;
        if (!c) break;
        p = c + 1;
    }
    return n;
}

/* Exact powers of ten: every one up to 1e22 is a double without rounding. */
static const double pow10tab[23] = {
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
    1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
};

/* Fast path for a plain decimal number ([+-]digits[.digits][e[+-]digits]) at P.
 * Succeeds only where the result is provably the same double strtod gives:
 * at most 2^53 as an integer mantissa times or divided by an exact power of
 * ten up to 1e22, one correctly rounded operation (Clinger's fast path).
 * Returns the end of the number, or NULL to make the caller use strtod. */
static const char *fast_num(const char *p, double *out)
{
    int neg = 0;
    if (*p == '-') { neg = 1; p++; }
    else if (*p == '+') p++;
    uint64_t m = 0;
    int sig = 0, frac = 0, digits = 0;
    while ((unsigned)(*p - '0') < 10) {
        if (m || *p != '0') { if (++sig > 19) return NULL; m = m * 10 + (uint64_t)(*p - '0'); }
        p++; digits++;
    }
    if (*p == '.') {
        p++;
        while ((unsigned)(*p - '0') < 10) {
            if (m || *p != '0') { if (++sig > 19) return NULL; m = m * 10 + (uint64_t)(*p - '0'); }
            p++; digits++; frac++;
        }
    }
    if (!digits) return NULL;
    int e = 0;
    if (*p == 'e' || *p == 'E') {
        p++;
        int eneg = 0;
        if (*p == '-') { eneg = 1; p++; }
        else if (*p == '+') p++;
        int ed = 0;
        while ((unsigned)(*p - '0') < 10) { if (++ed > 4) return NULL; e = e * 10 + (*p - '0'); p++; }
        if (!ed) return NULL;
        if (eneg) e = -e;
    }
    e -= frac;
    if (m > (1ULL << 53) || e < -22 || e > 22) return NULL;
    double v = (double)m;
    if (e >= 0) v *= pow10tab[e];
    else v /= pow10tab[-e];
    *out = neg ? -v : v;
    return p;
}

/* Parses one data row (NUL-terminated LINE) straight into XR and *Y when every
 * field is a plain number the fast path takes and the field count is right;
 * returns 0 if not, and the caller goes the general way (split + strtod),
 * which gives today's values and errors. */
static int fast_row(const char *line, size_t ncols, size_t tcol, double *xr, double *y)
{
    const char *p = line;
    for (size_t i = 0, j = 0; i < ncols; i++) {
        while (isspace((unsigned char)*p)) p++;
        double v;
        p = fast_num(p, &v);
        if (!p) return 0;
        while (isspace((unsigned char)*p)) p++;
        if (i + 1 < ncols) { if (*p != ',') return 0; p++; }
        else if (*p) return 0;
        if (i == tcol) *y = v;
        else xr[j++] = v;
    }
    return 1;
}

int ml_csv_read(const char *path, const char *target, ml_data *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "rb");
    if (!f) { seterr(err, errlen, "%s: %s", path, strerror(errno)); return -1; }
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap + 1);
    if (!buf) abort();
    size_t got;
    while ((got = fread(buf + len, 1, cap - len, f)) > 0) {
        len += got;
        if (len == cap) { cap *= 2; buf = realloc(buf, cap + 1); if (!buf) abort(); }
    }
    int rerr = ferror(f);
    fclose(f);
    if (rerr) { seterr(err, errlen, "%s: read error", path); free(buf); return -1; }
    buf[len] = 0;
    out->checksum = ml_fnv1a64(buf, len, 0);

    char **fields = NULL;
    size_t fcap = 0, ncols = 0, tcol = 0, lineno = 0, rowcap = 0;
    int rc = -1;
    char *p = buf;
    /* The text ends at the first NUL byte, if any (as strchr/strlen saw it). */
    char *bend = memchr(buf, 0, len);
    if (!bend) bend = buf + len;
    while (p && p < bend) {
        char *nl = memchr(p, '\n', (size_t)(bend - p));
        char *le = nl ? nl : bend;
        *le = 0;
        char *line = p;
        p = nl ? nl + 1 : NULL;
        lineno++;
        size_t ll = (size_t)(le - line);
        if (ll && line[ll - 1] == '\r') line[--ll] = 0;
        if (ncols && out->n < rowcap && fast_row(line, ncols, tcol, out->x + out->n * out->d, out->y + out->n)) {
            out->n++;
            continue;
        }
        const char *q = line;
        while (isspace((unsigned char)*q)) q++;
        if (!*q) continue;
        size_t nf = split(line, &fields, &fcap);
        if (ncols == 0) {
            ncols = nf;
            if (ncols < 2) { seterr(err, errlen, "%s:%zu: need at least 2 columns (features and a target)", path, lineno); goto out; }
            tcol = ncols - 1;
            if (target) {
                size_t i;
                for (i = 0; i < nf && strcmp(fields[i], target) != 0; i++) ;
                if (i == nf) { seterr(err, errlen, "%s:%zu: no column named '%s' in the header", path, lineno, target); goto out; }
                tcol = i;
            }
            out->d = ncols - 1;
            out->names = calloc(out->d, sizeof *out->names);
            if (!out->names) abort();
            for (size_t i = 0, j = 0; i < nf; i++) {
                if (i == tcol) out->target = strdup(fields[i]);
                else out->names[j++] = strdup(fields[i]);
            }
            continue;
        }
        if (nf != ncols) { seterr(err, errlen, "%s:%zu: %zu fields, the header has %zu", path, lineno, nf, ncols); goto out; }
        if (out->n == rowcap) {
            rowcap = rowcap ? rowcap * 2 : 1024;
            out->x = realloc(out->x, rowcap * out->d * sizeof *out->x);
            out->y = realloc(out->y, rowcap * sizeof *out->y);
            if (!out->x || !out->y) abort();
        }
        for (size_t i = 0, j = 0; i < nf; i++) {
            char *end;
            errno = 0;
            double v = strtod(fields[i], &end);
            if (end == fields[i] || *end || errno == ERANGE || v != v) {
                seterr(err, errlen, "%s:%zu: column %zu ('%s'): not a number: '%s'", path, lineno, i + 1,
                       i == tcol ? out->target : out->names[j], fields[i]);
                goto out;
            }
            if (i == tcol) out->y[out->n] = v;
            else out->x[out->n * out->d + j++] = v;
        }
        out->n++;
    }
    if (ncols == 0) { seterr(err, errlen, "%s: empty file (no header)", path); goto out; }
    if (out->n == 0) { seterr(err, errlen, "%s: no data rows", path); goto out; }
    rc = 0;
out:
    free(fields);
    free(buf);
    if (rc) ml_data_free(out);
    return rc;
}
