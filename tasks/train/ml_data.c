/* Numeric input: the CSV reader (threaded, checksum beside the parsing), the
 * kcol reader, the FNV-1a checksum, seeded random numbers. */
#include "ml.h"
#include "kcol.h"
#include "knum.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

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

/* isspace() in the C locale (the programs never call setlocale), inline */
static inline int is_blank(char c) { return c == ' ' || (unsigned char)(c - '\t') <= 4; }

/* Parses one data row LINE..LE straight into XR and *Y when every field is a
 * plain number the fast path takes and the field count is right; returns 0 if
 * not, and the caller goes the general way (split + strtod), which gives the
 * same values and the errors.  Reads only up to LE (the row is not
 * NUL-terminated: the buffer is shared with the checksum). */
static int fast_row(const char *line, const char *le, size_t ncols, size_t tcol, double *xr, double *y)
{
    const char *p = line;
    for (size_t i = 0, j = 0; i < ncols; i++) {
        while (p < le && is_blank(*p)) p++;
        double v;
        p = knum_parse(p, &v);
        if (!p || p > le) return 0;
        while (p < le && is_blank(*p)) p++;
        if (i + 1 < ncols) { if (p == le || *p != ',') return 0; p++; }
        else if (p != le) return 0;
        if (i == tcol) *y = v;
        else xr[j++] = v;
    }
    return 1;
}

/* One piece of the data rows, parsed by whichever thread takes it. */
typedef struct {
    const char *start, *end;  /* whole lines */
    size_t lines;             /* lines in it (counted before parsing) */
    size_t row0;              /* its first row's index in the output */
    size_t rows;              /* rows parsed (blank lines give none) */
    int failed;
    size_t err_line;          /* 1-based line within the piece */
    char err[256];
} csv_piece;

typedef struct {
    const char *path, *buf;
    size_t len;
    size_t ncols, tcol;
    ml_data *out;
    csv_piece *pieces;
    size_t npieces;
    _Atomic size_t next;      /* next job: 0 = the checksum, 1.. = pieces */
    uint64_t checksum;
} csv_job;

/* The general way for one line: split a copy, strtod each field. */
static int slow_row(const csv_job *J, const char *line, size_t ll, double *xr, double *y, char **scratch,
                    size_t *scap, char ***fields, size_t *fcap, char *err, size_t errlen)
{
    if (ll + 1 > *scap) {
        *scap = ll + 1 > 2 * *scap ? ll + 1 : 2 * *scap;
        free(*scratch);
        *scratch = malloc(*scap);
        if (!*scratch) abort();
    }
    memcpy(*scratch, line, ll);
    (*scratch)[ll] = 0;
    size_t nf = split(*scratch, fields, fcap);
    if (nf != J->ncols) { seterr(err, errlen, "%zu fields, the header has %zu", nf, J->ncols); return -1; }
    for (size_t i = 0, j = 0; i < nf; i++) {
        char *end, *f = (*fields)[i];
        errno = 0;
        double v = strtod(f, &end);
        if (end == f || *end || errno == ERANGE || v != v) {
            seterr(err, errlen, "column %zu ('%s'): not a number: '%s'", i + 1,
                   i == J->tcol ? J->out->target : J->out->names[j], f);
            return -1;
        }
        if (i == J->tcol) *y = v;
        else xr[j++] = v;
    }
    return 0;
}

static void parse_piece(csv_job *J, csv_piece *P)
{
    size_t d = J->out->d, r = P->row0, line = 0;
    char *scratch = NULL, **fields = NULL;
    size_t scap = 0, fcap = 0;
    const char *p = P->start;
    while (p < P->end) {
        const char *nl = memchr(p, '\n', (size_t)(P->end - p));
        const char *le = nl ? nl : P->end, *line_s = p;
        p = nl ? nl + 1 : P->end;
        line++;
        if (le > line_s && le[-1] == '\r') le--;
        double *xr = J->out->x + r * d, *yr = J->out->y + r;
        if (fast_row(line_s, le, J->ncols, J->tcol, xr, yr)) { r++; continue; }
        const char *q = line_s;
        while (q < le && isspace((unsigned char)*q)) q++;
        if (q == le) continue; /* blank line */
        if (slow_row(J, line_s, (size_t)(le - line_s), xr, yr, &scratch, &scap, &fields, &fcap, P->err,
                     sizeof P->err)) {
            P->failed = 1;
            P->err_line = line;
            break;
        }
        r++;
    }
    P->rows = r - P->row0;
    free(scratch);
    free(fields);
}

static void *csv_worker(void *arg)
{
    csv_job *J = arg;
    for (;;) {
        size_t j = J->next++;
        if (j > J->npieces) break;
        if (j == 0) J->checksum = ml_fnv1a64(J->buf, J->len, 0);
        else parse_piece(J, &J->pieces[j - 1]);
    }
    return NULL;
}

/* The whole file.  A regular file that ends with a newline is mapped (no copy,
 * no fresh pages to fault in: the parser stops at line ends, so it never
 * needs a NUL after the last byte); anything else is read into a buffer with a
 * NUL after it.  *MAPPED says which, for file_release. */
static char *file_load(const char *path, size_t *lenp, int *mapped, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) { seterr(err, errlen, "%s: %s", path, strerror(errno)); return NULL; }
    struct stat st;
    int regular = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0;
    *mapped = 0;
    if (regular && (uint64_t)st.st_size <= SIZE_MAX) {
        size_t len = (size_t)st.st_size;
        void *m = mmap(NULL, len, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
        if (m != MAP_FAILED) {
            if (((const char *)m)[len - 1] == '\n') {
                close(fd);
                *mapped = 1;
                *lenp = len;
                return m;
            }
            munmap(m, len);
        }
    }
    size_t cap = regular ? (size_t)st.st_size + 1 : 1 << 16;
    size_t len = 0;
    char *buf = malloc(cap + 1);
    if (!buf) abort();
    for (;;) {
        if (len == cap) { cap *= 2; buf = realloc(buf, cap + 1); if (!buf) abort(); }
        ssize_t got = read(fd, buf + len, cap - len);
        if (got < 0 && errno == EINTR) continue;
        if (got < 0) { seterr(err, errlen, "%s: read error: %s", path, strerror(errno)); free(buf); close(fd); return NULL; }
        if (got == 0) break;
        len += (size_t)got;
    }
    close(fd);
    buf[len] = 0;
    *lenp = len;
    return buf;
}

static void file_release(char *buf, size_t len, int mapped)
{
    if (mapped) munmap(buf, len);
    else free(buf);
}

#define CSV_PIECE_BYTES (8u << 20)

int ml_csv_read(const char *path, const char *target, ml_data *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    size_t len;
    int mapped;
    char *buf = file_load(path, &len, &mapped, err, errlen);
    if (!buf) return -1;
    /* The text ends at the first NUL byte, if any (as strchr/strlen saw it);
     * the checksum covers every byte read. */
    const char *bend = memchr(buf, 0, len);
    if (!bend) bend = buf + len;

    char **fields = NULL;
    size_t fcap = 0, ncols = 0, tcol = 0, lineno = 0;
    int rc = -1;
    csv_job J = {.path = path, .buf = buf, .len = len, .out = out};
    csv_piece *pieces = NULL;
    /* the header: the first line that is not blank */
    char *p = buf;
    while (p < bend && !ncols) {
        char *nl = memchr(p, '\n', (size_t)(bend - p));
        char *le = nl ? nl : (char *)bend;
        size_t ll = (size_t)(le - p);
        char *line = malloc(ll + 1);
        if (!line) abort();
        memcpy(line, p, ll);
        line[ll] = 0;
        p = nl ? nl + 1 : (char *)bend;
        lineno++;
        if (ll && line[ll - 1] == '\r') line[--ll] = 0;
        const char *q = line;
        while (isspace((unsigned char)*q)) q++;
        if (!*q) { free(line); continue; }
        size_t nf = split(line, &fields, &fcap);
        ncols = nf;
        if (ncols < 2) { seterr(err, errlen, "%s:%zu: need at least 2 columns (features and a target)", path, lineno); free(line); goto out; }
        tcol = ncols - 1;
        if (target) {
            size_t i;
            for (i = 0; i < nf && strcmp(fields[i], target) != 0; i++) ;
            if (i == nf) { seterr(err, errlen, "%s:%zu: no column named '%s' in the header", path, lineno, target); free(line); goto out; }
            tcol = i;
        }
        out->d = ncols - 1;
        out->names = calloc(out->d, sizeof *out->names);
        if (!out->names) abort();
        for (size_t i = 0, j = 0; i < nf; i++) {
            if (i == tcol) out->target = strdup(fields[i]);
            else out->names[j++] = strdup(fields[i]);
        }
        free(line);
    }
    if (ncols == 0) { seterr(err, errlen, "%s: empty file (no header)", path); goto out; }
    J.ncols = ncols; J.tcol = tcol;

    /* Cut the rows into pieces at line ends and count each piece's lines, so
     * every piece knows where its rows go before any is parsed. */
    size_t total = (size_t)(bend - p);
    size_t np = total / CSV_PIECE_BYTES + 1;
    pieces = calloc(np, sizeof *pieces);
    if (!pieces) abort();
    size_t lines = 0, k = 0;
    const char *s = p;
    while (s < bend) {
        const char *e = s + CSV_PIECE_BYTES < bend ? s + CSV_PIECE_BYTES : bend;
        if (e < bend) { const char *nl = memchr(e, '\n', (size_t)(bend - e)); e = nl ? nl + 1 : bend; }
        size_t c = 0;
        for (const char *q = s; q < e && (q = memchr(q, '\n', (size_t)(e - q))); q++) c++;
        if (e > s && e[-1] != '\n') c++;
        pieces[k] = (csv_piece){.start = s, .end = e, .lines = c, .row0 = lines};
        lines += c;
        k++;
        s = e;
    }
    J.pieces = pieces; J.npieces = k;
    out->x = malloc(lines * out->d * sizeof *out->x + 1);
    out->y = malloc(lines * sizeof *out->y + 1);
    if (!out->x || !out->y) abort();

    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    unsigned nt = ncpu < 1 ? 1 : ncpu > ML_MAX_THREADS ? ML_MAX_THREADS : (unsigned)ncpu;
    if (k < 2) nt = 1;
    pthread_t th[ML_MAX_THREADS];
    unsigned started = 0;
    for (unsigned t = 1; t < nt; t++)
        if (pthread_create(&th[t], NULL, csv_worker, &J) == 0) started++;
        else break;
    csv_worker(&J);
    for (unsigned t = 1; t <= started; t++) pthread_join(th[t], NULL);
    out->checksum = J.checksum;

    /* the first failure in file order; then close the gaps blank lines left */
    size_t before = lineno;
    for (size_t i = 0; i < k; i++) {
        if (pieces[i].failed) {
            seterr(err, errlen, "%s:%zu: %s", path, before + pieces[i].err_line, pieces[i].err);
            goto out;
        }
        before += pieces[i].lines;
    }
    size_t n = 0;
    for (size_t i = 0; i < k; i++) {
        if (pieces[i].row0 != n && pieces[i].rows) {
            memmove(out->x + n * out->d, out->x + pieces[i].row0 * out->d, pieces[i].rows * out->d * sizeof *out->x);
            memmove(out->y + n, out->y + pieces[i].row0, pieces[i].rows * sizeof *out->y);
        }
        n += pieces[i].rows;
    }
    out->n = n;
    if (out->n == 0) { seterr(err, errlen, "%s: no data rows", path); goto out; }
    rc = 0;
out:
    free(pieces);
    free(fields);
    file_release(buf, len, mapped);
    if (rc) ml_data_free(out);
    return rc;
}

/* ---- kcol input (docs/kcol-format.md) ------------------------------------
 * The file is mapped; one thread verifies the format's own checksum (FNV-1a of
 * every byte before the last 8, then continued over those 8 it is the same
 * "fnv1a64" of the whole file a CSV gets) while the others copy the columns
 * into the row-major matrix, a range of rows each. */
typedef struct {
    const unsigned char *buf;
    size_t len;
    size_t nrows, ncols, tcol, d;
    const int *types;               /* per column: KCOL_F64, I64 or BOOL */
    const unsigned char *const *data; /* per column: its nrows x 8 bytes */
    ml_data *out;
    size_t nranges;
    _Atomic size_t next;            /* 0 = the checksum, 1.. = row ranges */
    uint64_t sum;                   /* FNV-1a of buf[0 .. len-8) */
    size_t *bad_row;                /* per range: first row with a missing value, or SIZE_MAX */
    size_t *bad_col;
} kcol_job;

static void *kcol_worker(void *arg)
{
    kcol_job *J = arg;
    for (;;) {
        size_t j = J->next++;
        if (j > J->nranges) break;
        if (j == 0) { J->sum = ml_fnv1a64(J->buf, J->len - 8, 0); continue; }
        size_t g = j - 1, r0 = J->nrows * g / J->nranges, r1 = J->nrows * (g + 1) / J->nranges;
        J->bad_row[g] = SIZE_MAX;
        /* tiles of 256 rows, so the rows being filled stay in cache across the columns */
        for (size_t t0 = r0; t0 < r1; t0 += 256) {
            size_t t1 = t0 + 256 < r1 ? t0 + 256 : r1;
            for (size_t c = 0, jj = 0; c < J->ncols; c++) {
                double *dst = c == J->tcol ? J->out->y : J->out->x + jj;
                size_t step = c == J->tcol ? 1 : J->d;
                const unsigned char *src = J->data[c];
                for (size_t r = t0; r < t1; r++) {
                    double v;
                    if (J->types[c] == KCOL_F64) memcpy(&v, src + r * 8, 8);
                    else {
                        int64_t iv;
                        memcpy(&iv, src + r * 8, 8);
                        v = iv == KCOL_I64_MISSING ? NAN : (double)iv;
                    }
                    if (v != v && r < J->bad_row[g]) { J->bad_row[g] = r; J->bad_col[g] = c; }
                    dst[r * step] = v;
                }
                if (c != J->tcol) jj++;
            }
        }
    }
    return NULL;
}

static int kcol_get(const unsigned char *buf, size_t end, size_t *off, void *out, size_t n)
{
    if (end - *off < n) return -1;
    memcpy(out, buf + *off, n);
    *off += n;
    return 0;
}

int ml_kcol_read(const char *path, const char *target, ml_data *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    const uint16_t one = 1;
    if (*(const unsigned char *)&one != 1) { seterr(err, errlen, "%s: kcol needs a little-endian host", path); return -1; }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) { seterr(err, errlen, "%s: %s", path, strerror(errno)); return -1; }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size < 32) {
        close(fd);
        seterr(err, errlen, "%s: not a kcol file (too short)", path);
        return -1;
    }
    size_t len = (size_t)st.st_size;
    const unsigned char *buf = mmap(NULL, len, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
    close(fd);
    if (buf == MAP_FAILED) { seterr(err, errlen, "%s: %s", path, strerror(errno)); return -1; }
    int rc = -1;
    char **names = NULL;
    int *types = NULL;
    const unsigned char **data = NULL;
    size_t *bad = NULL;
    uint32_t ncols = 0, version, reserved;
    uint64_t nrows;
    size_t off = 4, end = len - 8;
    if (memcmp(buf, KCOL_MAGIC, 4) != 0) { seterr(err, errlen, "%s: not a kcol file (bad magic)", path); goto out; }
    kcol_get(buf, end, &off, &version, 4);
    if (version != KCOL_VERSION) { seterr(err, errlen, "%s: kcol version %u not supported (want %u)", path, version, KCOL_VERSION); goto out; }
    kcol_get(buf, end, &off, &nrows, 8);
    kcol_get(buf, end, &off, &ncols, 4);
    kcol_get(buf, end, &off, &reserved, 4);
    if (ncols < 2) { seterr(err, errlen, "%s: need at least 2 columns (features and a target)", path); goto out; }
    if (ncols > (end - off) / 8) goto bad;
    names = calloc(ncols, sizeof *names);
    types = calloc(ncols, sizeof *types);
    data = calloc(ncols, sizeof *data);
    if (!names || !types || !data) abort();
    for (uint32_t c = 0; c < ncols; c++) {
        uint32_t nl;
        unsigned char tb[4];
        if (kcol_get(buf, end, &off, &nl, 4) || end - off < nl) goto bad;
        names[c] = strndup((const char *)buf + off, nl);
        if (!names[c]) abort();
        off += nl;
        if (kcol_get(buf, end, &off, tb, 4)) goto bad;
        types[c] = tb[0];
        if (types[c] == KCOL_CAT) {
            seterr(err, errlen, "%s: column '%s' is a category: one-hot it first (kiln-clean --onehot N)", path, names[c]);
            goto out;
        }
        if (types[c] != KCOL_F64 && types[c] != KCOL_I64 && types[c] != KCOL_BOOL) goto bad;
    }
    off += (8 - off % 8) % 8;
    if (off > end || nrows > (end - off) / 8 / ncols || (uint64_t)ncols * nrows * 8 != end - off) goto bad;
    if (nrows == 0) { seterr(err, errlen, "%s: no data rows", path); goto out; }
    for (uint32_t c = 0; c < ncols; c++) data[c] = buf + off + (size_t)c * nrows * 8;
    size_t tcol = ncols - 1;
    if (target) {
        for (tcol = 0; tcol < ncols && strcmp(names[tcol], target) != 0; tcol++) ;
        if (tcol == ncols) { seterr(err, errlen, "%s: no column named '%s'", path, target); goto out; }
    }
    out->n = nrows;
    out->d = ncols - 1;
    out->names = calloc(out->d, sizeof *out->names);
    out->x = malloc(nrows * out->d * sizeof *out->x);
    out->y = malloc(nrows * sizeof *out->y);
    if (!out->names || !out->x || !out->y) abort();
    for (size_t c = 0, j = 0; c < ncols; c++) {
        if (c == tcol) out->target = names[c];
        else out->names[j++] = names[c];
        names[c] = NULL;
    }
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    unsigned nt = ncpu < 1 ? 1 : ncpu > ML_MAX_THREADS ? ML_MAX_THREADS : (unsigned)ncpu;
    size_t nranges = nrows < 65536 ? 1 : 4 * (size_t)nt;
    bad = malloc(2 * nranges * sizeof *bad);
    if (!bad) abort();
    kcol_job J = {.buf = buf, .len = len, .nrows = nrows, .ncols = ncols, .tcol = tcol, .d = out->d,
                  .types = types, .data = data, .out = out, .nranges = nranges, .bad_row = bad,
                  .bad_col = bad + nranges};
    if (nranges == 1) nt = 1;
    pthread_t th[ML_MAX_THREADS];
    unsigned started = 0;
    for (unsigned t = 1; t < nt; t++)
        if (pthread_create(&th[t], NULL, kcol_worker, &J) == 0) started++;
        else break;
    kcol_worker(&J);
    for (unsigned t = 1; t <= started; t++) pthread_join(th[t], NULL);
    uint64_t stored;
    memcpy(&stored, buf + end, 8);
    if (J.sum != stored) { seterr(err, errlen, "%s: checksum mismatch (file corrupt or truncated)", path); goto out; }
    for (size_t g = 0; g < nranges; g++)
        if (bad[g] != SIZE_MAX) {
            size_t c = J.bad_col[g];
            seterr(err, errlen, "%s: row %zu, column '%s': missing value (impute it first: kiln-clean --impute)", path,
                   bad[g] + 1, c == tcol ? out->target : out->names[c < tcol ? c : c - 1]);
            goto out;
        }
    out->checksum = ml_fnv1a64(buf + end, 8, J.sum); /* the whole file's FNV-1a */
    rc = 0;
    goto out;
bad:
    seterr(err, errlen, "%s: malformed kcol schema or size", path);
out:
    if (names) for (uint32_t c = 0; c < ncols; c++) free(names[c]);
    free(names); free(types); free(data); free(bad);
    munmap((void *)buf, len);
    if (rc) ml_data_free(out);
    return rc;
}

int ml_data_read(const char *path, const char *target, ml_data *out, char *err, size_t errlen)
{
    size_t n = strlen(path);
    if (n >= 5 && !strcmp(path + n - 5, ".kcol")) return ml_kcol_read(path, target, out, err, errlen);
    return ml_csv_read(path, target, out, err, errlen);
}
