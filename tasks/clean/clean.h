/* kiln-clean: the table, the CSV reader/writer and the cleaning operations.
 * Standalone (libc, libcsv, libm); main.c adds the command line, the YAML
 * spec and the JSON summary.  See docs/kiln-clean.md. */
#ifndef KILN_CLEAN_H
#define KILN_CLEAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum col_type { T_AUTO = 0, T_NUMBER, T_INTEGER, T_BOOLEAN, T_CATEGORY };

struct column {
    char *name;
    enum col_type type;
    double *num;        /* number/integer/boolean: NaN = missing */
    char **str;         /* category: NULL = missing; also raw text while loading */
    size_t missing_in;  /* missing values as read */
    bool str_arena;     /* str[] points into the table's arena (not freed one by one) */
};

struct strblk;          /* the arena holding the raw text while loading */

struct table {
    size_t nrows, ncols;
    struct column *cols;
    struct strblk *arena;
};

/* NA markers: a field equal to one of these (or empty) is missing. */
extern const char *const clean_default_na[];

/* Reads CSV text (RFC 4180, header row) into t with every column's raw text
 * in str[].  name is used in messages ("name:LINE: ...").  na: NULL-ended
 * list of markers (NULL = clean_default_na).  Returns 0 or -1 + err. */
int csv_load_mem(const char *name, const char *data, size_t len, const char *const *na,
                 struct table *t, char *err, size_t errlen);
int csv_load_file(const char *path, const char *const *na, struct table *t, char *err, size_t errlen);

/* Infers each column's type from its raw text (override: a type other than
 * T_AUTO already set in cols[i].type is kept) and converts.  Returns 0 or -1. */
int table_infer(struct table *t, char *err, size_t errlen);
enum col_type col_type_parse(const char *s);
const char *col_type_name(enum col_type t);
bool is_numeric(const struct column *c);   /* number or integer */

void table_free(struct table *t);
/* Integer columns holding a non-integral value (after imputing a mean, say)
 * become number columns. */
void table_settle_types(struct table *t);
/* Keeps the rows whose keep[i] is true. */
void table_select(struct table *t, const bool *keep);
/* Keeps rows idx[0..n) in that order (a new table; t is unchanged). */
void table_take(const struct table *t, const size_t *idx, size_t n, struct table *out);

/* Operations.  Each returns 0 or -1 + err; counts go to *dropped where given. */
int op_filter(struct table *t, const char *cond, size_t *dropped, char *err, size_t errlen);
size_t op_dedup(struct table *t);
size_t op_dropna(struct table *t);
enum impute { IMP_NONE, IMP_MEAN, IMP_MEDIAN, IMP_MOST_FREQUENT, IMP_CONSTANT };
int impute_parse(const char *s, enum impute *out);
int op_impute(struct table *t, size_t col, enum impute how, const char *constant, char *err, size_t errlen);
enum clip { CLIP_NONE, CLIP_ZSCORE, CLIP_IQR };
void op_clip(struct column *c, size_t n, enum clip how, double k);
enum scale { SCALE_NONE, SCALE_STANDARD, SCALE_MINMAX };
void op_scale(struct column *c, size_t n, enum scale how);
/* Replaces category column col by 0/1 integer columns "name=value" for its
 * top_k most frequent values and "name=__other__" when others exist. */
void op_onehot(struct table *t, size_t col, size_t top_k);
/* Seeded shuffle; the first n_test indices go to test.  idx has t->nrows. */
void split_indices(size_t n, uint64_t seed, size_t *idx);
size_t split_test_count(size_t n, double frac);

/* splitmix64 (Steele, Lea, Flood 2014; public domain reference by Vigna). */
uint64_t splitmix64(uint64_t *state);

/* Optional accelerator for the column arithmetic (kiln-clean --device gpu):
 * col_moments, z-score/IQR clipping and scaling go through it when set.  Each
 * returns 0, or -1 and the CPU does that step (after one message on stderr
 * from whoever installed it). */
struct clean_accel {
    int (*moments)(const double *x, size_t n, size_t *count, double *mean, double *std, double *min, double *max);
    int (*clip)(double *x, size_t n, double lo, double hi);
    int (*affine)(double *x, size_t n, double off, double div); /* x = div > 0 ? (x-off)/div : 0, NaN kept */
};
extern const struct clean_accel *clean_accel; /* NULL: the CPU */

/* Statistics over the non-missing values. */
struct stats {
    size_t n;
    double mean, std, min, max, median, q1, q3;
};
void col_stats(const struct column *c, size_t nrows, struct stats *s);
/* The same n, mean, std, min and max without sorting (median, q1, q3: NaN). */
void col_moments(const struct column *c, size_t nrows, struct stats *s);
/* Most frequent value (ties: smallest); returns NULL/NaN when none. */
const char *cat_mode(const struct column *c, size_t nrows);
double num_mode(const struct column *c, size_t nrows);
/* Distinct category values with counts, most frequent first (ties by value). */
struct catcount { const char *value; size_t count; };
size_t cat_counts(const struct column *c, size_t nrows, struct catcount **out);

/* Writes the table as CSV ("-" = stdout) or kcol. */
int csv_write_file(const char *path, const struct table *t, char *err, size_t errlen);
int kcol_write_table(const char *path, const struct table *t, char *err, size_t errlen);

#endif
