/* kcol reader and writer; see kcol.h and docs/kcol-format.md. */
#include "kcol.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

static int little_endian(void)
{
    uint16_t x = 1;
    return *(unsigned char *)&x == 1;
}

uint64_t kcol_fnv1a(uint64_t h, const void *p, size_t n)
{
    const unsigned char *s = p;
    for (size_t i = 0; i < n; i++) {
        h ^= s[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

struct wr {
    FILE *f;
    uint64_t hash, off;
    int err;
};

static void wr_put(struct wr *w, const void *p, size_t n)
{
    if (n == 0 || w->err)
        return;
    if (fwrite(p, 1, n, w->f) != n)
        w->err = errno ? errno : EIO;
    w->hash = kcol_fnv1a(w->hash, p, n);
    w->off += n;
}

static void wr_u32(struct wr *w, uint32_t v) { wr_put(w, &v, 4); }

static void wr_pad8(struct wr *w)
{
    static const unsigned char zero[8];
    wr_put(w, zero, (8 - w->off % 8) % 8);
}

int kcol_write(const char *path, const struct kcol_table *t, char *err, size_t errlen)
{
    if (!little_endian())
        return fail(err, errlen, "kcol: big-endian hosts are not supported");
    FILE *f = fopen(path, "wb");
    if (!f)
        return fail(err, errlen, "%s: %s", path, strerror(errno));
    struct wr w = {f, KCOL_FNV_OFFSET, 0, 0};
    wr_put(&w, KCOL_MAGIC, 4);
    wr_u32(&w, KCOL_VERSION);
    wr_put(&w, &t->nrows, 8);
    wr_u32(&w, t->ncols);
    wr_u32(&w, 0);
    for (uint32_t c = 0; c < t->ncols; c++) {
        const struct kcol_column *col = &t->cols[c];
        uint32_t len = (uint32_t)strlen(col->name);
        wr_u32(&w, len);
        wr_put(&w, col->name, len);
        unsigned char tb[4] = {(unsigned char)col->type, 0, 0, 0};
        wr_put(&w, tb, 4);
        if (col->type == KCOL_CAT) {
            wr_u32(&w, col->nlevels);
            for (uint32_t l = 0; l < col->nlevels; l++) {
                uint32_t ll = (uint32_t)strlen(col->levels[l]);
                wr_u32(&w, ll);
                wr_put(&w, col->levels[l], ll);
            }
        }
    }
    wr_pad8(&w);
    for (uint32_t c = 0; c < t->ncols; c++) {
        const struct kcol_column *col = &t->cols[c];
        wr_put(&w, col->type == KCOL_F64 ? (const void *)col->f64 : (const void *)col->i64,
               (size_t)t->nrows * 8);
    }
    uint64_t h = w.hash;
    wr_put(&w, &h, 8);
    if (fclose(f) != 0 && !w.err)
        w.err = errno;
    if (w.err)
        return fail(err, errlen, "%s: %s", path, strerror(w.err));
    return 0;
}

struct rd {
    const unsigned char *p;
    size_t len, off;
};

static int rd_get(struct rd *r, void *out, size_t n)
{
    if (r->len - r->off < n)
        return -1;
    memcpy(out, r->p + r->off, n);
    r->off += n;
    return 0;
}

static char *rd_str(struct rd *r)
{
    uint32_t n;
    if (rd_get(r, &n, 4) < 0 || r->len - r->off < n)
        return NULL;
    char *s = malloc((size_t)n + 1);
    if (!s)
        return NULL;
    memcpy(s, r->p + r->off, n);
    s[n] = 0;
    r->off += n;
    return s;
}

int kcol_read(const char *path, struct kcol_table *t, char *err, size_t errlen)
{
    memset(t, 0, sizeof(*t));
    if (!little_endian())
        return fail(err, errlen, "kcol: big-endian hosts are not supported");
    FILE *f = fopen(path, "rb");
    if (!f)
        return fail(err, errlen, "%s: %s", path, strerror(errno));
    unsigned char *buf = NULL;
    size_t len = 0, cap = 0, n;
    do {
        if (cap - len < 65536) {
            cap = cap ? cap * 2 : 1 << 20;
            unsigned char *nb = realloc(buf, cap);
            if (!nb) {
                free(buf);
                fclose(f);
                return fail(err, errlen, "%s: out of memory", path);
            }
            buf = nb;
        }
        n = fread(buf + len, 1, cap - len, f);
        len += n;
    } while (n > 0);
    int rerr = ferror(f);
    fclose(f);
    if (rerr) {
        free(buf);
        return fail(err, errlen, "%s: read error", path);
    }
    int rc = -1;
    struct rd r = {buf, len, 0};
    char magic[4];
    uint32_t version, ncols, reserved;
    uint64_t nrows, sum;
    if (len < 32 || rd_get(&r, magic, 4) < 0 || memcmp(magic, KCOL_MAGIC, 4) != 0) {
        fail(err, errlen, "%s: not a kcol file (bad magic)", path);
        goto out;
    }
    rd_get(&r, &version, 4);
    if (version != KCOL_VERSION) {
        fail(err, errlen, "%s: kcol version %u not supported (want %u)", path, version, KCOL_VERSION);
        goto out;
    }
    memcpy(&sum, buf + len - 8, 8);
    if (kcol_fnv1a(KCOL_FNV_OFFSET, buf, len - 8) != sum) {
        fail(err, errlen, "%s: checksum mismatch (file corrupt or truncated)", path);
        goto out;
    }
    r.len = len - 8;
    if (rd_get(&r, &nrows, 8) < 0 || rd_get(&r, &ncols, 4) < 0 || rd_get(&r, &reserved, 4) < 0)
        goto bad;
    t->nrows = nrows;
    t->cols = calloc(ncols ? ncols : 1, sizeof(*t->cols));
    if (!t->cols)
        goto bad;
    for (uint32_t c = 0; c < ncols; c++) {
        struct kcol_column *col = &t->cols[c];
        t->ncols = c + 1;
        unsigned char tb[4];
        if (!(col->name = rd_str(&r)) || rd_get(&r, tb, 4) < 0)
            goto bad;
        col->type = tb[0];
        if (col->type < KCOL_F64 || col->type > KCOL_CAT)
            goto bad;
        if (col->type == KCOL_CAT) {
            uint32_t nl;
            if (rd_get(&r, &nl, 4) < 0 || nl > r.len - r.off)
                goto bad;
            col->levels = calloc(nl ? nl : 1, sizeof(char *));
            if (!col->levels)
                goto bad;
            for (uint32_t l = 0; l < nl; l++) {
                col->nlevels = l + 1;
                if (!(col->levels[l] = rd_str(&r)))
                    goto bad;
            }
        }
    }
    r.off += (8 - r.off % 8) % 8;
    if (r.off > r.len || nrows > (r.len - r.off) / 8 || (uint64_t)ncols * nrows * 8 != r.len - r.off)
        goto bad;
    for (uint32_t c = 0; c < ncols; c++) {
        struct kcol_column *col = &t->cols[c];
        void *d = malloc(nrows ? nrows * 8 : 1);
        if (!d)
            goto bad;
        rd_get(&r, d, nrows * 8);
        if (col->type == KCOL_F64)
            col->f64 = d;
        else
            col->i64 = d;
    }
    rc = 0;
    goto out;
bad:
    fail(err, errlen, "%s: malformed kcol schema or size", path);
out:
    free(buf);
    if (rc < 0)
        kcol_free(t);
    return rc;
}

void kcol_free(struct kcol_table *t)
{
    if (!t->cols)
        return;
    for (uint32_t c = 0; c < t->ncols; c++) {
        struct kcol_column *col = &t->cols[c];
        free(col->name);
        for (uint32_t l = 0; l < col->nlevels; l++)
            free(col->levels[l]);
        free(col->levels);
        free(col->f64);
        free(col->i64);
    }
    free(t->cols);
    memset(t, 0, sizeof(*t));
}
