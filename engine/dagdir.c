#include "dagdir.h"

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/evp.h>

#include "load_lua.h"
#include "load_yaml.h"
#include "util.h"

void sha256_hex(const void *data, size_t len, char out[65])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    if (!EVP_Digest(data, len, md, &n, EVP_sha256(), NULL) || n != 32) {
        /* Only on a broken crypto library; an impossible hash beats garbage. */
        memset(out, '0', 64);
        out[64] = '\0';
        return;
    }
    for (unsigned int i = 0; i < 32; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 15];
    }
    out[64] = '\0';
}

enum file_kind { KIND_OTHER, KIND_YAML, KIND_LUA };

static enum file_kind kind_of(const char *path)
{
    const char *dot = strrchr(path, '.');
    const char *slash = strrchr(path, '/');
    if (dot == NULL || (slash && dot < slash))
        return KIND_OTHER;
    if (strcmp(dot, ".yaml") == 0 || strcmp(dot, ".yml") == 0)
        return KIND_YAML;
    if (strcmp(dot, ".lua") == 0)
        return KIND_LUA;
    return KIND_OTHER;
}

int dagdir_is_dag_file(const char *name)
{
    const char *slash = strrchr(name, '/');
    const char *base = slash ? slash + 1 : name;
    return base[0] != '.' && kind_of(base) != KIND_OTHER;
}

int dag_load_buf(const char *path, const char *buf, size_t len, struct dag **out,
                 struct kiln_err *err)
{
    *out = NULL;
    switch (kind_of(path)) {
    case KIND_YAML: return load_yaml_buf(path, buf, len, out, err);
    case KIND_LUA: return load_lua_buf(path, buf, len, out, err);
    case KIND_OTHER: break;
    }
    return kiln_err_set(err, KILN_EINVALID,
                        "%s: not a DAG file (expected a .yaml, .yml or .lua extension)", path);
}

int dag_load_file(const char *path, struct dag **out, struct kiln_err *err)
{
    char *buf;
    size_t len;
    *out = NULL;
    int rc = file_read_all(path, &buf, &len);
    if (rc)
        return kiln_err_set(err, rc, "%s: cannot read: %s", path, strerror(-rc));
    char hash[65];
    sha256_hex(buf, len, hash);
    rc = dag_load_buf(path, buf, len, out, err);
    free(buf);
    if (rc == 0)
        (*out)->hash = xstrdup(hash);
    return rc;
}

static int cmp_path(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void load_entry(struct dagdir_entry *e)
{
    struct kiln_err err;
    kiln_err_clear(&err);
    char *buf;
    size_t len;
    int rc = file_read_all(e->path, &buf, &len);
    if (rc) {
        e->error = xasprintf("%s: cannot read: %s", e->path, strerror(-rc));
        return;
    }
    char hash[65];
    sha256_hex(buf, len, hash);
    e->hash = xstrdup(hash);
    rc = dag_load_buf(e->path, buf, len, &e->dag, &err);
    free(buf);
    if (rc) {
        e->error = xstrdup(err.msg[0] ? err.msg : kiln_strerror(rc));
        return;
    }
    e->dag->hash = xstrdup(hash);
}

int dagdir_load(const char *dir, struct dagdir **out, struct kiln_err *err)
{
    *out = NULL;
    DIR *dp = opendir(dir);
    if (dp == NULL) {
        int rc = -errno;
        return kiln_err_set(err, rc, "%s: cannot read folder: %s", dir, strerror(-rc));
    }
    size_t dlen = strlen(dir);
    const char *sep = dlen > 0 && dir[dlen - 1] == '/' ? "" : "/";
    char **paths = NULL;
    size_t n = 0, cap = 0;
    struct dirent *de;
    while ((de = readdir(dp)) != NULL) {
        /* Hidden files include editors' swap files and ".#" lock links. */
        if (de->d_name[0] == '.' || kind_of(de->d_name) == KIND_OTHER)
            continue;
        char *path = xasprintf("%s%s%s", dir, sep, de->d_name);
        struct stat st;
        if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
            free(path);
            continue;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            paths = xrealloc(paths, cap * sizeof *paths);
        }
        paths[n++] = path;
    }
    closedir(dp);
    if (n > 0)
        qsort(paths, n, sizeof *paths, cmp_path);

    struct dagdir *dd = xcalloc(1, sizeof *dd);
    dd->entries = xcalloc(n, sizeof *dd->entries);
    dd->n = n;
    for (size_t i = 0; i < n; i++) {
        struct dagdir_entry *e = &dd->entries[i];
        e->path = paths[i];
        load_entry(e);
        if (e->dag == NULL)
            continue;
        /* Folders hold tens of files, not thousands: a scan is enough. */
        for (size_t j = 0; j < i; j++) {
            const struct dagdir_entry *o = &dd->entries[j];
            if (o->dag && strcmp(o->dag->id, e->dag->id) == 0) {
                e->error = xasprintf("%s: dag id '%s' is already defined in %s", e->path,
                                     e->dag->id, o->path);
                dag_free(e->dag);
                e->dag = NULL;
                break;
            }
        }
    }
    free(paths);
    *out = dd;
    return 0;
}

void dagdir_free(struct dagdir *dd)
{
    if (dd == NULL)
        return;
    for (size_t i = 0; i < dd->n; i++) {
        struct dagdir_entry *e = &dd->entries[i];
        free(e->path);
        free(e->hash);
        free(e->error);
        dag_free(e->dag);
    }
    free(dd->entries);
    free(dd);
}

struct dag *dagdir_find(const struct dagdir *dd, const char *dag_id)
{
    if (dd == NULL || dag_id == NULL)
        return NULL;
    for (size_t i = 0; i < dd->n; i++)
        if (dd->entries[i].dag && strcmp(dd->entries[i].dag->id, dag_id) == 0)
            return dd->entries[i].dag;
    return NULL;
}
