/* The store: migrations, WAL, transactions, binding and reading. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "store.h"
#include "util.h"

static char dir[64];
static char db[128];

static int setup(void **state)
{
    snprintf(dir, sizeof dir, "/tmp/kiln-store-XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    snprintf(db, sizeof db, "%s/kiln.db", dir);
    return 0;
}

static int teardown(void **state)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd);
}

static void sh(const char *sql, char *out, size_t n)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "sqlite3 %s \"%s\"", db, sql);
    FILE *p = popen(cmd, "r");
    size_t got = fread(out, 1, n - 1, p);
    out[got] = '\0';
    if (got && out[got - 1] == '\n')
        out[got - 1] = '\0';
    pclose(p);
}

static void test_migrations_recorded_once(void **state)
{
    struct store *st = NULL;
    struct kiln_err err = { 0 };
    assert_int_equal(store_open(&st, db, &err), 0);
    int v = store_schema_version(st);
    assert_true(v >= 1);
    store_close(st);
    /* Reopening applies nothing twice. */
    assert_int_equal(store_open(&st, db, &err), 0);
    assert_int_equal(store_schema_version(st), v);
    store_close(st);
    char out[256];
    sh("select count(*) from schema_migrations", out, sizeof out);
    assert_int_equal(atoi(out), v);
    sh("select name from schema_migrations where version=1", out, sizeof out);
    assert_string_equal(out, "001_init");
    sh("pragma journal_mode", out, sizeof out);
    assert_string_equal(out, "wal");
    sh("select count(*) from sqlite_master where type='table' and name in "
       "('dags','dag_versions','runs','task_instances','tries','audit_log','commands')",
       out, sizeof out);
    assert_string_equal(out, "7");
}

static int count_row(void *arg, struct store_row *r)
{
    (*(int *)arg)++;
    return 0;
}

static void test_transactions(void **state)
{
    struct store *st = NULL;
    struct kiln_err err = { 0 };
    assert_int_equal(store_open(&st, db, &err), 0);
    /* Rolled back: nothing stays. */
    assert_int_equal(store_txn_begin(st, &err), 0);
    assert_true(store_in_txn(st));
    assert_int_equal(store_exec(st, Q_dag_upsert, NULL, NULL, &err, "ssi", "gone", "/x",
                                (int64_t)1), 0);
    store_txn_rollback(st);
    assert_false(store_in_txn(st));
    int n = 0;
    assert_int_equal(store_exec(st, Q_dag_list, count_row, &n, &err, ""), 0);
    assert_int_equal(n, 0);
    /* Committed: both rows of one turn land together. */
    assert_int_equal(store_txn_begin(st, &err), 0);
    assert_int_equal(store_txn_begin(st, &err), 0); /* idempotent */
    store_exec(st, Q_dag_upsert, NULL, NULL, &err, "ssi", "a", "/a.yaml", (int64_t)1);
    store_exec(st, Q_dag_upsert, NULL, NULL, &err, "ssi", "b", "/b.yaml", (int64_t)1);
    assert_int_equal(store_txn_commit(st, &err), 0);
    n = 0;
    store_exec(st, Q_dag_list, count_row, &n, &err, "");
    assert_int_equal(n, 2);
    store_close(st);
}

struct row_capture {
    char text[64];
    int64_t num;
    bool was_null;
    size_t blob_len;
};

static int capture(void *arg, struct store_row *r)
{
    struct row_capture *c = arg;
    snprintf(c->text, sizeof c->text, "%s", store_col_text(r, 3));
    store_col_blob(r, 4, &c->blob_len);
    return 1;
}

static void test_binding(void **state)
{
    struct store *st = NULL;
    struct kiln_err err = { 0 };
    assert_int_equal(store_open(&st, db, &err), 0);
    int64_t id = 0;
    /* A blob with a NUL byte in the middle survives the round trip. */
    const char src[] = "dag: x\0tail";
    assert_int_equal(store_insert(st, Q_version_insert, &id, &err, "sssbi", "x", "h1",
                                  "quote's \"path\"", (const void *)src, sizeof src - 1,
                                  (int64_t)5), 0);
    assert_true(id > 0);
    struct row_capture c = { 0 };
    assert_int_equal(store_exec(st, Q_version_get, capture, &c, &err, "i", id), 0);
    assert_string_equal(c.text, "quote's \"path\"");
    assert_int_equal(c.blob_len, sizeof src - 1);
    /* get_int: found and not found. */
    int64_t v;
    bool found;
    assert_int_equal(store_get_int(st, Q_version_find, &v, &found, &err, "ss", "x", "h1"), 0);
    assert_true(found);
    assert_int_equal(v, id);
    assert_int_equal(store_get_int(st, Q_version_find, &v, &found, &err, "ss", "x", "nope"), 0);
    assert_false(found);
    /* A constraint violation is an error with a message, not a crash. */
    assert_int_equal(store_insert(st, Q_version_insert, &id, &err, "sssbi", "x", "h1", "p",
                                  (const void *)"s", (size_t)1, (int64_t)5), KILN_ESTORE);
    assert_non_null(strstr(err.msg, "UNIQUE"));
    store_close(st);
}

static void test_bad_path(void **state)
{
    struct store *st = NULL;
    struct kiln_err err = { 0 };
    assert_int_equal(store_open(&st, "/nonexistent-dir/x/kiln.db", &err), KILN_ESTORE);
    assert_null(st);
    assert_non_null(strstr(err.msg, "cannot open database"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_migrations_recorded_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_transactions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_binding, setup, teardown),
        cmocka_unit_test(test_bad_path),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
