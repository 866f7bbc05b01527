/* store: SQLite behind typed calls.  See store.h for the contract.
 *
 * Every statement is prepared once at open (sqlite3_prepare_v3 with
 * SQLITE_PREPARE_PERSISTENT) and reused: on the scheduler's hot path a state
 * change costs one bind + step + reset. */
#include "store.h"

#include <errno.h>
#include <stdarg.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

struct store {
    sqlite3 *db;
    sqlite3_stmt *stmt[Q__COUNT];
    bool in_txn;
    int version;
    uint64_t commits;   /* store_commits() */
};

struct store_row {
    sqlite3_stmt *stmt;
};

static int db_error(struct store *st, struct kiln_err *err, const char *what)
{
    return kiln_err_set(err, KILN_ESTORE, "%s: %s", what, sqlite3_errmsg(st->db));
}

static int exec_sql(struct store *st, const char *sql, struct kiln_err *err)
{
    char *msg = NULL;
    if (sqlite3_exec(st->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        kiln_err_set(err, KILN_ESTORE, "%s", msg ? msg : sqlite3_errmsg(st->db));
        sqlite3_free(msg);
        return KILN_ESTORE;
    }
    return 0;
}

static int migrate(struct store *st, struct kiln_err *err)
{
    int rc = exec_sql(st,
                      "CREATE TABLE IF NOT EXISTS schema_migrations ("
                      " version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
                      " applied_us INTEGER NOT NULL)",
                      err);
    if (rc < 0)
        return rc;
    sqlite3_stmt *q = NULL;
    if (sqlite3_prepare_v2(st->db, "SELECT coalesce(max(version), 0) FROM schema_migrations",
                           -1, &q, NULL) != SQLITE_OK)
        return db_error(st, err, "reading schema version");
    st->version = sqlite3_step(q) == SQLITE_ROW ? sqlite3_column_int(q, 0) : 0;
    sqlite3_finalize(q);

    for (const struct sql_migration *m = sql_migrations; m->sql; m++) {
        if (m->version <= st->version)
            continue;
        /* Each migration and its record commit together: a crash half-way
         * leaves the previous version intact. */
        if ((rc = exec_sql(st, "BEGIN IMMEDIATE", err)) < 0)
            return rc;
        if ((rc = exec_sql(st, m->sql, err)) < 0) {
            exec_sql(st, "ROLLBACK", NULL);
            return kiln_err_set(err, rc, "migration %s failed", m->name);
        }
        char *rec = sqlite3_mprintf(
            "INSERT INTO schema_migrations (version, name, applied_us) VALUES (%d, %Q, %lld)",
            m->version, m->name, (long long)now_us());
        rc = exec_sql(st, rec, err);
        sqlite3_free(rec);
        if (rc < 0 || (rc = exec_sql(st, "COMMIT", err)) < 0) {
            exec_sql(st, "ROLLBACK", NULL);
            return rc;
        }
        st->version = m->version;
    }
    return 0;
}

/* Prepares every named statement of sql/queries.sql once, for the life of
 * the connection. */
static int prepare_all(struct store *st, struct kiln_err *err)
{
    for (int i = 0; i < Q__COUNT; i++)
        if (sqlite3_prepare_v3(st->db, sql_queries[i], -1, SQLITE_PREPARE_PERSISTENT,
                               &st->stmt[i], NULL) != SQLITE_OK)
            return kiln_err_set(err, KILN_ESTORE, "preparing query '%s': %s",
                                sql_query_names[i], sqlite3_errmsg(st->db));
    return 0;
}

int store_open(struct store **out, const char *path, struct kiln_err *err)
{
    struct store *st = xcalloc(1, sizeof *st);
    int rc;
    if (sqlite3_open_v2(path, &st->db,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                        NULL) != SQLITE_OK) {
        rc = kiln_err_set(err, KILN_ESTORE, "cannot open database %s: %s", path,
                          st->db ? sqlite3_errmsg(st->db) : "out of memory");
        goto fail;
    }
    /* A second process (CLI beside the daemon) waits instead of failing. */
    sqlite3_busy_timeout(st->db, 10000);
    if ((rc = exec_sql(st,
                       "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
                       " PRAGMA foreign_keys=ON; PRAGMA temp_store=MEMORY;",
                       err)) < 0)
        goto fail;
    if ((rc = migrate(st, err)) < 0)
        goto fail;
    if ((rc = prepare_all(st, err)) < 0)
        goto fail;
    *out = st;
    return 0;
fail:
    store_close(st);
    return rc;
}

int store_open_reader(struct store **out, const char *path, struct kiln_err *err)
{
    struct store *st = xcalloc(1, sizeof *st);
    int rc;
    /* No migrations, no pragmas that write: the owner of the database has
     * already set it up (WAL), and this connection could not anyway. */
    if (sqlite3_open_v2(path, &st->db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL) !=
        SQLITE_OK) {
        rc = kiln_err_set(err, KILN_ESTORE, "cannot open database %s: %s", path,
                          st->db ? sqlite3_errmsg(st->db) : "out of memory");
        goto fail;
    }
    sqlite3_busy_timeout(st->db, 10000);
    if ((rc = prepare_all(st, err)) < 0)
        goto fail;
    *out = st;
    return 0;
fail:
    store_close(st);
    return rc;
}

uint64_t store_commits(const struct store *st)
{
    return st->commits;
}

void store_close(struct store *st)
{
    if (!st)
        return;
    for (int i = 0; i < Q__COUNT; i++)
        sqlite3_finalize(st->stmt[i]);
    if (st->db) {
        if (st->in_txn)
            sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
        sqlite3_close(st->db);
    }
    free(st);
}

int store_schema_version(struct store *st)
{
    return st->version;
}

static int step_simple(struct store *st, int q, struct kiln_err *err)
{
    sqlite3_stmt *s = st->stmt[q];
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    if (rc != SQLITE_DONE)
        return db_error(st, err, sql_query_names[q]);
    return 0;
}

int store_txn_begin(struct store *st, struct kiln_err *err)
{
    if (st->in_txn)
        return 0;
    int rc = step_simple(st, Q_begin, err);
    if (rc == 0)
        st->in_txn = true;
    return rc;
}

int store_txn_commit(struct store *st, struct kiln_err *err)
{
    if (!st->in_txn)
        return 0;
    int rc = step_simple(st, Q_commit, err);
    if (rc == 0) {
        st->in_txn = false;
        st->commits++;
    }
    return rc;
}

void store_txn_rollback(struct store *st)
{
    if (!st->in_txn)
        return;
    step_simple(st, Q_rollback, NULL);
    st->in_txn = false;
}

bool store_in_txn(const struct store *st)
{
    return st->in_txn;
}

const char *store_col_text(struct store_row *r, int col)
{
    return (const char *)sqlite3_column_text(r->stmt, col);
}

int64_t store_col_int(struct store_row *r, int col)
{
    return sqlite3_column_int64(r->stmt, col);
}

bool store_col_null(struct store_row *r, int col)
{
    return sqlite3_column_type(r->stmt, col) == SQLITE_NULL;
}

const void *store_col_blob(struct store_row *r, int col, size_t *len)
{
    const void *p = sqlite3_column_blob(r->stmt, col);
    *len = (size_t)sqlite3_column_bytes(r->stmt, col);
    return p;
}

static int bind_args(struct store *st, sqlite3_stmt *s, const char *fmt, va_list ap,
                     struct kiln_err *err)
{
    int idx = 1, rc = SQLITE_OK;
    for (const char *f = fmt; *f && rc == SQLITE_OK; f++, idx++) {
        switch (*f) {
        case 's': {
            const char *v = va_arg(ap, const char *);
            rc = v ? sqlite3_bind_text(s, idx, v, -1, SQLITE_STATIC) : sqlite3_bind_null(s, idx);
            break;
        }
        case 'i':
            rc = sqlite3_bind_int64(s, idx, va_arg(ap, int64_t));
            break;
        case 'o': {
            int64_t v = va_arg(ap, int64_t);
            rc = v ? sqlite3_bind_int64(s, idx, v) : sqlite3_bind_null(s, idx);
            break;
        }
        case 'b': {
            const void *p = va_arg(ap, const void *);
            size_t n = va_arg(ap, size_t);
            rc = sqlite3_bind_blob64(s, idx, p, n, SQLITE_STATIC);
            break;
        }
        default:
            return kiln_err_set(err, -EINVAL, "store: bad bind format '%c'", *f);
        }
    }
    if (rc != SQLITE_OK)
        return db_error(st, err, "binding parameters");
    return 0;
}

static int run_stmt(struct store *st, int q, store_row_cb cb, void *arg, struct kiln_err *err,
                    const char *fmt, va_list ap)
{
    sqlite3_stmt *s = st->stmt[q];
    int rc = bind_args(st, s, fmt, ap, err);
    if (rc < 0)
        goto out;
    struct store_row row = { s };
    for (;;) {
        int r = sqlite3_step(s);
        if (r == SQLITE_DONE)
            break;
        if (r != SQLITE_ROW) {
            rc = db_error(st, err, sql_query_names[q]);
            break;
        }
        if (cb && cb(arg, &row) != 0)
            break;
    }
out:
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    /* A write outside a transaction committed by itself. */
    if (rc == 0 && !st->in_txn && !sqlite3_stmt_readonly(s))
        st->commits++;
    return rc;
}

int store_exec(struct store *st, int q, store_row_cb cb, void *arg, struct kiln_err *err,
               const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = run_stmt(st, q, cb, arg, err, fmt, ap);
    va_end(ap);
    return rc;
}

int store_insert(struct store *st, int q, int64_t *rowid, struct kiln_err *err,
                 const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = run_stmt(st, q, NULL, NULL, err, fmt, ap);
    va_end(ap);
    if (rc == 0 && rowid)
        *rowid = sqlite3_last_insert_rowid(st->db);
    return rc;
}

int store_changes(struct store *st)
{
    return sqlite3_changes(st->db);
}

struct get_int_ctx {
    int64_t v;
    bool found;
};

static int get_int_row(void *arg, struct store_row *r)
{
    struct get_int_ctx *c = arg;
    c->v = store_col_int(r, 0);
    c->found = true;
    return 1;
}

int store_get_int(struct store *st, int q, int64_t *out, bool *found, struct kiln_err *err,
                  const char *fmt, ...)
{
    struct get_int_ctx c = { 0, false };
    va_list ap;
    va_start(ap, fmt);
    int rc = run_stmt(st, q, get_int_row, &c, err, fmt, ap);
    va_end(ap);
    *out = c.v;
    if (found)
        *found = c.found;
    return rc;
}

int store_exec_raw(struct store *st, const char *sql, struct kiln_err *err)
{
    return exec_sql(st, sql, err);
}
