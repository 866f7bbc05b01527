/* registry: versions and the "current" symlink; see registry.h. */
#include "registry.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static long parse_version(const char *s)
{
    if (!*s || *s == '0')
        return -1;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || v <= 0)
        return -1;
    for (const char *p = s; *p; p++)
        if (*p < '0' || *p > '9')
            return -1;
    return v;
}

static int cmp_long(const void *a, const void *b)
{
    long x = *(const long *)a, y = *(const long *)b;
    return (x > y) - (x < y);
}

int reg_versions(const char *dir, long *out, int max)
{
    DIR *d = opendir(dir);
    if (!d)
        return errno == ENOENT ? 0 : -1;
    int n = 0, cap = 64;
    long *all = malloc((size_t)cap * sizeof *all);
    if (!all) {
        closedir(d);
        return -1;
    }
    struct dirent *e;
    while ((e = readdir(d))) {
        long v = parse_version(e->d_name);
        if (v < 0 || e->d_type == DT_LNK)
            continue;
        if (n == cap) {
            long *na = realloc(all, (size_t)(cap *= 2) * sizeof *all);
            if (!na) {
                free(all);
                closedir(d);
                return -1;
            }
            all = na;
        }
        all[n++] = v;
    }
    closedir(d);
    qsort(all, (size_t)n, sizeof *all, cmp_long);
    for (int i = 0; i < n && i < max; i++)
        out[i] = all[i];
    free(all);
    return n;
}

long reg_current(const char *dir)
{
    char path[PATH_MAX], target[64];
    if (snprintf(path, sizeof path, "%s/current", dir) >= (int)sizeof path)
        return -1;
    ssize_t r = readlink(path, target, sizeof target - 1);
    if (r < 0)
        return errno == ENOENT ? 0 : -1;
    target[r] = '\0';
    return parse_version(target);
}

int reg_set_current(const char *dir, long version, char *err, size_t errlen)
{
    char tmp[PATH_MAX + 64], cur[PATH_MAX + 64], target[32];
    snprintf(target, sizeof target, "%ld", version);
    if (snprintf(tmp, sizeof tmp, "%s/.current.%ld.tmp", dir, (long)getpid()) >= (int)sizeof tmp ||
        snprintf(cur, sizeof cur, "%s/current", dir) >= (int)sizeof cur) {
        snprintf(err, errlen, "%s: path too long", dir);
        return -1;
    }
    unlink(tmp);
    if (symlink(target, tmp) < 0) {
        snprintf(err, errlen, "symlink %s: %s", tmp, strerror(errno));
        return -1;
    }
    if (rename(tmp, cur) < 0) {
        snprintf(err, errlen, "rename %s -> %s: %s", tmp, cur, strerror(errno));
        unlink(tmp);
        return -1;
    }
    return 0;
}
