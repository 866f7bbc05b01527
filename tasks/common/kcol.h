/* kcol: a small columnar binary table format ("KCOL"), written by kiln-clean
 * and read by the trainer.  The layout is documented in docs/kcol-format.md.
 * Depends on libc only; little-endian hosts only (checked at run time). */
#ifndef KILN_KCOL_H
#define KILN_KCOL_H

#include <stddef.h>
#include <stdint.h>

#define KCOL_MAGIC "KCOL"
#define KCOL_VERSION 1u

enum kcol_type {
    KCOL_F64 = 1,      /* double; missing = NaN */
    KCOL_I64 = 2,      /* int64; missing = INT64_MIN */
    KCOL_BOOL = 3,     /* int64 0/1; missing = INT64_MIN */
    KCOL_CAT = 4,      /* int64 code into levels[]; missing = -1 */
};
#define KCOL_I64_MISSING INT64_MIN

struct kcol_column {
    char *name;
    int type;               /* enum kcol_type */
    uint32_t nlevels;       /* KCOL_CAT only */
    char **levels;
    double *f64;            /* KCOL_F64 */
    int64_t *i64;           /* the other types */
};

struct kcol_table {
    uint64_t nrows;
    uint32_t ncols;
    struct kcol_column *cols;
};

/* FNV-1a, 64 bits: h = (h ^ byte) * 0x100000001b3, starting from
 * KCOL_FNV_OFFSET.  Chainable: pass the previous result as h. */
#define KCOL_FNV_OFFSET 0xcbf29ce484222325ULL
uint64_t kcol_fnv1a(uint64_t h, const void *p, size_t n);

/* Both return 0, or -1 with a message in err. */
int kcol_write(const char *path, const struct kcol_table *t, char *err, size_t errlen);
int kcol_read(const char *path, struct kcol_table *t, char *err, size_t errlen);
/* Frees what kcol_read allocated (and any table built with malloc'ed members). */
void kcol_free(struct kcol_table *t);

#endif
