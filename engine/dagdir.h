/* dagdir: loads every DAG file of a folder.
 *
 * A bad file never stops the others: each file becomes an entry holding
 * either its DAG or its error message.  Files are *.yaml and *.yml (YAML
 * loader) and *.lua (sandboxed Lua loader); entries are sorted by path.  Two files that
 * declare the same DAG id: the second (by path) gets an error naming the
 * first. */
#ifndef KILN_DAGDIR_H
#define KILN_DAGDIR_H

#include <stddef.h>

#include "dag.h"

struct dagdir_entry {
    char *path;
    char *hash;          /* sha-256 hex of the file's bytes */
    struct dag *dag;     /* NULL when the file has an error */
    char *error;         /* "FILE:LINE:COL: message", or NULL */
};

struct dagdir {
    struct dagdir_entry *entries;
    size_t n;
};

/* Fails only if the folder itself cannot be read. */
int dagdir_load(const char *dir, struct dagdir **out, struct kiln_err *err);
void dagdir_free(struct dagdir *dd);
/* The loaded DAG with this id, or NULL. */
struct dag *dagdir_find(const struct dagdir *dd, const char *dag_id);

/* Whether a file name is one dagdir_load reads (not hidden; .yaml, .yml, .lua). */
int dagdir_is_dag_file(const char *name);

/* Loads a file's bytes with the loader its extension names (.yaml/.yml:
 * YAML, .lua: Lua); path is for messages and dag->path.  Leaves dag->hash
 * unset. */
int dag_load_buf(const char *path, const char *buf, size_t len, struct dag **out,
                 struct kiln_err *err);

/* Loads one file, choosing the loader by extension; fills dag->hash. */
int dag_load_file(const char *path, struct dag **out, struct kiln_err *err);

/* sha-256 of a buffer as 64 hex characters + NUL. */
void sha256_hex(const void *data, size_t len, char out[65]);

#endif
