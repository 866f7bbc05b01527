#include "gitinfo.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

extern char **environ;

static bool is_hex40(const char *s)
{
    for (int i = 0; i < 40; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return true;
}

/* The first line of a file, without its newline; NULL if unreadable. */
static char *first_line(const char *path)
{
    char *buf = NULL;
    if (file_read_all(path, &buf, NULL) < 0)
        return NULL;
    buf[strcspn(buf, "\r\n")] = '\0';
    return buf;
}

/* The folder holding path (path itself when it is a folder), absolute. */
static char *start_dir(const char *path)
{
    char *abs = realpath(path, NULL);
    if (!abs)
        return NULL;
    struct stat st;
    if (stat(abs, &st) == 0 && !S_ISDIR(st.st_mode)) {
        char *slash = strrchr(abs, '/');
        if (slash == abs)
            slash[1] = '\0';
        else if (slash)
            *slash = '\0';
    }
    return abs;
}

/* Finds the git directory of the work tree holding dir: "DIR/.git" as a
 * folder, or the folder a ".git" file names with "gitdir: X". */
static char *find_git_dir(const char *dir)
{
    char *cur = xstrdup(dir);
    for (;;) {
        char *dotgit = xasprintf("%s%s.git", cur, strcmp(cur, "/") == 0 ? "" : "/");
        struct stat st;
        if (stat(dotgit, &st) == 0) {
            if (S_ISDIR(st.st_mode)) {
                free(cur);
                return dotgit;
            }
            char *line = first_line(dotgit);
            free(dotgit);
            char *res = NULL;
            if (line && strncmp(line, "gitdir:", 7) == 0) {
                const char *g = line + 7;
                while (*g == ' ')
                    g++;
                res = g[0] == '/' ? xstrdup(g) : xasprintf("%s/%s", cur, g);
            }
            free(line);
            free(cur);
            return res;
        }
        free(dotgit);
        char *slash = strrchr(cur, '/');
        if (!slash || strcmp(cur, "/") == 0) {
            free(cur);
            return NULL;
        }
        if (slash == cur)
            slash[1] = '\0';
        else
            *slash = '\0';
    }
}

/* A ref (say "refs/heads/main") in gitdir, or in its common dir (linked
 * worktrees keep branches there), loose first, then packed-refs. */
static bool resolve_ref(const char *gitdir, const char *ref, char out[41])
{
    char *dirs[2] = { xstrdup(gitdir), NULL };
    char *cpath = xasprintf("%s/commondir", gitdir);
    char *common = first_line(cpath);
    free(cpath);
    if (common && *common)
        dirs[1] = common[0] == '/' ? xstrdup(common) : xasprintf("%s/%s", gitdir, common);
    free(common);
    bool found = false;
    for (int k = 0; k < 2 && !found && dirs[k]; k++) {
        char *p = xasprintf("%s/%s", dirs[k], ref);
        char *line = first_line(p);
        free(p);
        if (line && strlen(line) >= 40 && is_hex40(line)) {
            memcpy(out, line, 40);
            out[40] = '\0';
            found = true;
        }
        free(line);
        if (found)
            break;
        p = xasprintf("%s/packed-refs", dirs[k]);
        char *packed = NULL;
        if (file_read_all(p, &packed, NULL) == 0) {
            size_t rl = strlen(ref);
            for (char *l = packed; l && *l && !found; ) {
                char *nl = strchr(l, '\n');
                if (nl)
                    *nl = '\0';
                if (strlen(l) >= 42 && is_hex40(l) && l[40] == ' ' &&
                    strncmp(l + 41, ref, rl) == 0 && (l[41 + rl] == '\0' || l[41 + rl] == '\r')) {
                    memcpy(out, l, 40);
                    out[40] = '\0';
                    found = true;
                }
                l = nl ? nl + 1 : NULL;
            }
        }
        free(packed);
        free(p);
    }
    free(dirs[0]);
    free(dirs[1]);
    return found;
}

int git_head_commit(const char *path, char out[41])
{
    out[0] = '\0';
    char *dir = start_dir(path);
    if (!dir)
        return 0;
    char *gitdir = find_git_dir(dir);
    free(dir);
    if (!gitdir)
        return 0;
    char *hp = xasprintf("%s/HEAD", gitdir);
    char *head = first_line(hp);
    free(hp);
    int found = 0;
    if (head && strncmp(head, "ref:", 4) == 0) {
        const char *ref = head + 4;
        while (*ref == ' ')
            ref++;
        found = resolve_ref(gitdir, ref, out) ? 1 : 0;
    } else if (head && strlen(head) >= 40 && is_hex40(head)) {
        memcpy(out, head, 40);
        out[40] = '\0';
        found = 1;
    }
    free(head);
    free(gitdir);
    if (!found)
        out[0] = '\0';
    return found;
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int git_file_dirty(const char *file)
{
    char *dir = start_dir(file);
    if (!dir)
        return -1;
    const char *base = strrchr(file, '/');
    base = base ? base + 1 : file;
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) < 0) {
        free(dir);
        return -1;
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    char *argv[] = { "git", "--no-optional-locks", "-C", dir, "status", "--porcelain",
                     "--", (char *)base, NULL };
    pid_t pid;
    int rc = posix_spawnp(&pid, "git", &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(fds[1]);
    if (rc != 0) {
        close(fds[0]);
        free(dir);
        return -1;
    }
    size_t got = 0;
    bool timed_out = false;
    int64_t deadline = mono_ms() + 2000;
    for (;;) {
        int64_t left = deadline - mono_ms();
        if (left <= 0) {
            timed_out = true;
            break;
        }
        struct pollfd p = { .fd = fds[0], .events = POLLIN };
        int n = poll(&p, 1, (int)left);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            timed_out = n == 0;
            break;
        }
        char buf[512];
        ssize_t r = read(fds[0], buf, sizeof buf);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(fds[0]);
    if (timed_out)
        kill(pid, SIGKILL);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    free(dir);
    if (timed_out || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return -1;
    return got > 0 ? 1 : 0;
}
