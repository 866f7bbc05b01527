/* store: the SQLite database, the one source of truth.
 *
 * Only this module includes <sqlite3.h>.  All SQL comes from sql/ (embedded
 * at build time): migrations sql/NNN_*.sql applied in order inside one
 * transaction each and recorded in schema_migrations, and the named
 * statements of sql/queries.sql, prepared once at open.
 *
 * Durability: WAL with synchronous=NORMAL.  Writers group their changes with
 * store_txn_begin()/store_txn_commit(); the scheduler commits once per loop
 * turn, so every state change of one turn lands in one transaction. */
#ifndef KILN_STORE_H
#define KILN_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "sql_gen.h"

struct store;

int store_open(struct store **out, const char *path, struct kiln_err *err);
void store_close(struct store *st);
/* A read-only connection to an existing database (SQLITE_OPEN_READONLY,
 * no migrations), for a thread that reads beside the owner's connection:
 * each such thread needs its own.  Writes through it fail. */
int store_open_reader(struct store **out, const char *path, struct kiln_err *err);
/* Transactions this connection committed (explicit ones, and writes outside
 * one) since it was opened: a generation that changes with every change it
 * made visible to other connections. */
uint64_t store_commits(const struct store *st);
/* Latest migration applied. */
int store_schema_version(struct store *st);

/* Transactions.  begin is idempotent while one is open (nesting is flat). */
int store_txn_begin(struct store *st, struct kiln_err *err);
int store_txn_commit(struct store *st, struct kiln_err *err);
void store_txn_rollback(struct store *st);
bool store_in_txn(const struct store *st);

/* A row handed to a query callback; valid only during the callback. */
struct store_row;
const char *store_col_text(struct store_row *r, int col);      /* NULL for SQL NULL */
int64_t store_col_int(struct store_row *r, int col);           /* 0 for SQL NULL */
bool store_col_null(struct store_row *r, int col);
const void *store_col_blob(struct store_row *r, int col, size_t *len);
/* Return non-zero from a row callback to stop early. */
typedef int (*store_row_cb)(void *arg, struct store_row *r);

/* Runs named statement q with parameters bound from fmt, one letter each:
 *   s  const char *      (NULL binds SQL NULL)
 *   i  int64_t
 *   o  int64_t, where 0 binds SQL NULL ("optional")
 *   b  const void *, size_t  (blob)
 * Rows, if any, go to cb (which may be NULL).  Returns 0 or a negative code. */
int store_exec(struct store *st, int q, store_row_cb cb, void *arg, struct kiln_err *err,
               const char *fmt, ...);
/* Same, returning the rowid of an INSERT in *rowid. */
int store_insert(struct store *st, int q, int64_t *rowid, struct kiln_err *err,
                 const char *fmt, ...);
/* Rows changed by the last statement. */
int store_changes(struct store *st);
/* Fetches one integer (first column of the first row); *found = false if no row. */
int store_get_int(struct store *st, int q, int64_t *out, bool *found, struct kiln_err *err,
                  const char *fmt, ...);

/* A query with text known only at run time is refused: every statement is
 * a named one.  This escape hatch runs raw SQL for tests and `kiln db`. */
int store_exec_raw(struct store *st, const char *sql, struct kiln_err *err);

#endif
