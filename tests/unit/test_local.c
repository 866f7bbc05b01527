/* Tests of the local executor and the shepherd.
 *
 * This program is also the shepherd binary for its own tests: invoked as
 * "test_local shepherd --home HOME" it runs shepherd_main(), and the tests
 * pass their own path as self_exe.  Every test gets a fresh home folder and
 * checks at the end that the shepherd exited (KILN_SHEPHERD_IDLE_MS is small
 * here) and that no task process is left behind.
 *
 * KILN_TEST_FILTER="test_adopt*" runs a subset; KILN_TEST_KEEP=1 keeps the
 * home folder (with its shepherd.log) of a test whose shepherd did not exit. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "executor.h"
#include "shepherd.h"
#include "shepherd_proto.h"
#include "util.h"

#define MAX_RECS 128

static char self_exe[PATH_MAX];

struct rec {
    int64_t try_id;
    int started;
    char exec_id[64];
    int64_t start_us;
    int done;
    struct exec_result res;
};

struct tctx {
    uv_loop_t loop;
    uv_timer_t timer;
    uv_timer_t tick;          /* wakes the loop so file-based predicates are seen */
    bool timed_out;
    struct executor *ex;
    bool closed;
    char home[1024];
    struct rec recs[MAX_RECS];
    int nrecs;
    pid_t strays[8];          /* process groups to kill at the end */
    int nstrays;
};

struct tspec {
    struct exec_spec s;
    char log[PATH_MAX];
    char *argv[16];
    char *envp[8];
};

static const char *default_env[] = { "PATH=/usr/local/bin:/usr/bin:/bin", "LC_ALL=C", NULL };

/* ---- fixture ----------------------------------------------------------- */

static struct rec *rec_get(struct tctx *t, int64_t id)
{
    for (int i = 0; i < t->nrecs; i++)
        if (t->recs[i].try_id == id)
            return &t->recs[i];
    assert_true(t->nrecs < MAX_RECS);
    struct rec *r = &t->recs[t->nrecs++];
    memset(r, 0, sizeof *r);
    r->try_id = id;
    return r;
}

static void on_started(void *arg, int64_t try_id, const char *eid, int64_t start_us)
{
    struct rec *r = rec_get(arg, try_id);
    r->started++;
    snprintf(r->exec_id, sizeof r->exec_id, "%s", eid);
    r->start_us = start_us;
}

static void on_done(void *arg, const struct exec_result *res)
{
    struct rec *r = rec_get(arg, res->try_id);
    r->done++;
    r->res = *res;
}

static void on_timer(uv_timer_t *h)
{
    struct tctx *t = h->data;
    t->timed_out = true;
}

static void on_tick(uv_timer_t *h)
{
}

typedef bool (*pred_fn)(struct tctx *t, int64_t arg);

/* Runs the loop until pred holds or timeout_ms pass; a broken test fails
 * instead of hanging. */
static bool run_until(struct tctx *t, pred_fn pred, int64_t arg, int timeout_ms)
{
    t->timed_out = false;
    uv_timer_start(&t->timer, on_timer, (uint64_t)timeout_ms, 0);
    uv_timer_start(&t->tick, on_tick, 10, 10);
    while (!pred(t, arg) && !t->timed_out)
        uv_run(&t->loop, UV_RUN_ONCE);
    uv_timer_stop(&t->timer);
    uv_timer_stop(&t->tick);
    return pred(t, arg);
}

static bool pred_done(struct tctx *t, int64_t id)
{
    return rec_get(t, id)->done > 0;
}

static bool pred_started(struct tctx *t, int64_t id)
{
    return rec_get(t, id)->started > 0 || rec_get(t, id)->done > 0;
}

static bool pred_all_done(struct tctx *t, int64_t n)
{
    int c = 0;
    for (int i = 0; i < t->nrecs; i++)
        c += t->recs[i].done > 0;
    return c >= n;
}

static bool pred_closed(struct tctx *t, int64_t unused)
{
    return t->closed;
}

static void exec_open(struct tctx *t)
{
    struct kiln_err err = { 0 };
    int rc = exec_local_new(&t->ex, &t->loop, t->home, self_exe, &err);
    if (rc < 0)
        fail_msg("exec_local_new: %s", err.msg);
    t->ex->on_started = on_started;
    t->ex->on_done = on_done;
    t->ex->cb_arg = t;
    t->closed = false;
}

static void closed_cb(struct executor *ex)
{
    struct tctx *t = ex->cb_arg;
    t->closed = true;
}

static void exec_close(struct tctx *t)
{
    if (t->ex == NULL)
        return;
    t->ex->ops->close(t->ex, closed_cb);
    assert_true(run_until(t, pred_closed, 0, 5000));
    t->ex = NULL;
}

static int shepherd_pid(struct tctx *t)
{
    char path[PATH_MAX + 32], *data = NULL;
    snprintf(path, sizeof path, "%s/shepherd.lock", t->home);
    if (file_read_all(path, &data, NULL) < 0)
        return 0;
    int pid = atoi(data);
    free(data);
    return pid;
}

/* True once no shepherd holds the home's lock (waits up to timeout_ms). */
static bool shepherd_gone(struct tctx *t, int timeout_ms)
{
    char path[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/shepherd.lock", t->home);
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return true;
    int64_t end = mono_us() + (int64_t)timeout_ms * 1000;
    bool gone = false;
    while (!(gone = flock(fd, LOCK_EX | LOCK_NB) == 0) && mono_us() < end)
        usleep(5000);
    close(fd);
    return gone;
}

static int rm_cb(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(p);
}

static int setup(void **state)
{
    struct tctx *t = calloc(1, sizeof *t);
    assert_non_null(t);
    snprintf(t->home, sizeof t->home, "/tmp/kiln-test-local-XXXXXX");
    assert_non_null(mkdtemp(t->home));
    char logs[PATH_MAX + 8];
    snprintf(logs, sizeof logs, "%s/logs", t->home);
    assert_int_equal(mkdir(logs, 0755), 0);
    assert_int_equal(uv_loop_init(&t->loop), 0);
    uv_timer_init(&t->loop, &t->timer);
    uv_timer_init(&t->loop, &t->tick);
    t->timer.data = t;
    *state = t;
    return 0;
}

static int teardown(void **state)
{
    struct tctx *t = *state;
    exec_close(t);
    uv_close((uv_handle_t *)&t->timer, NULL);
    uv_close((uv_handle_t *)&t->tick, NULL);
    uv_run(&t->loop, UV_RUN_DEFAULT);
    int rc = uv_loop_close(&t->loop);
    for (int i = 0; i < t->nstrays; i++)
        kill(-t->strays[i], SIGKILL);
    bool gone = shepherd_gone(t, 5000);
    if (gone || !getenv("KILN_TEST_KEEP"))
        nftw(t->home, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    else
        fprintf(stderr, "kept %s\n", t->home);
    free(t);
    assert_int_equal(rc, 0);
    assert_true(gone);    /* no shepherd left running */
    return 0;
}

/* ---- helpers ----------------------------------------------------------- */

static void tspec_init(struct tctx *t, struct tspec *ts, int64_t id, const char *const *argv)
{
    memset(ts, 0, sizeof *ts);
    snprintf(ts->log, sizeof ts->log, "%s/logs/%" PRId64 ".log", t->home, id);
    for (int i = 0; argv[i] && i < 15; i++)
        ts->argv[i] = (char *)argv[i];
    for (int i = 0; default_env[i]; i++)
        ts->envp[i] = (char *)default_env[i];
    ts->s.try_id = id;
    ts->s.dag_id = "dag";
    ts->s.run_id = "run";
    ts->s.task_id = "task";
    ts->s.try_number = 1;
    ts->s.argv = ts->argv;
    ts->s.envp = ts->envp;
    ts->s.log_path = ts->log;
}

static void start_ok(struct tctx *t, struct tspec *ts)
{
    struct kiln_err err = { 0 };
    int rc = t->ex->ops->start(t->ex, &ts->s, &err);
    if (rc < 0)
        fail_msg("start: %s", err.msg);
}

static void adopt_ok(struct tctx *t, struct tspec *ts, const char *eid)
{
    struct kiln_err err = { 0 };
    int rc = t->ex->ops->adopt(t->ex, &ts->s, eid, &err);
    if (rc < 0)
        fail_msg("adopt: %s", err.msg);
}

/* Runs argv as try id and returns its record once done. */
static struct rec *run_cmd(struct tctx *t, int64_t id, const char *const *argv)
{
    struct tspec ts;
    tspec_init(t, &ts, id, argv);
    start_ok(t, &ts);
    assert_true(run_until(t, pred_done, id, 10000));
    return rec_get(t, id);
}

static char *slurp(const char *path)
{
    char *data = NULL;
    if (file_read_all(path, &data, NULL) < 0)
        return NULL;
    return data;
}

static char *log_of(struct tctx *t, int64_t id)
{
    char path[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/logs/%" PRId64 ".log", t->home, id);
    return slurp(path);
}

static bool pred_log_has(struct tctx *t, int64_t id)
{
    char *s = log_of(t, id);
    bool ok = s && strstr(s, "ready");
    free(s);
    return ok;
}

static pid_t pid_of(const struct rec *r)
{
    assert_true(strncmp(r->exec_id, "pid:", 4) == 0);
    return (pid_t)atoi(r->exec_id + 4);
}

static void write_file(const char *path, const char *text, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    chmod(path, mode);
}

static void append_file(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0644);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
}

static void home_path(struct tctx *t, const char *name, char *out, size_t n)
{
    assert_true((size_t)snprintf(out, n, "%s/%s", t->home, name) < n);
}

/* The line of try id in the journal file name (newline left out), or NULL;
 * a last line without its newline does not count. */
static char *journal_find(struct tctx *t, const char *name, int64_t id)
{
    char path[PATH_MAX], prefix[32];
    home_path(t, name, path, sizeof path);
    char *s = slurp(path);
    if (s == NULL)
        return NULL;
    size_t pn = (size_t)snprintf(prefix, sizeof prefix, "%" PRId64 " ", id);
    char *found = NULL;
    for (char *line = s, *nl; found == NULL && (nl = strchr(line, '\n')) != NULL; line = nl + 1)
        if (strncmp(line, prefix, pn) == 0)
            found = strndup(line, (size_t)(nl - line));
    free(s);
    return found;
}

/* ---- basic runs -------------------------------------------------------- */

static void test_true(void **state)
{
    struct tctx *t = *state;
    exec_open(t);
    int64_t before = now_us();
    struct rec *r = run_cmd(t, 1, (const char *[]){ "true", NULL });
    assert_int_equal(r->done, 1);
    assert_int_equal(r->started, 1);
    assert_true(strncmp(r->exec_id, "pid:", 4) == 0 && atoi(r->exec_id + 4) > 0);
    assert_false(r->res.spawn_failed || r->res.lost || r->res.never_started);
    assert_int_equal(r->res.exit_code, 0);
    assert_int_equal(r->res.term_signal, 0);
    assert_true(r->res.start_us >= before - 1000);
    assert_true(r->res.end_us >= r->res.start_us);
    assert_int_equal(r->start_us, r->res.start_us);
    /* The journal has its line, in the documented format. */
    char *s = journal_find(t, SHP_JOURNAL, 1);
    assert_non_null(s);
    int code, sig, pid, used = 0;
    long long id, a, b;
    assert_int_equal(sscanf(s, "%lld %d %d %lld %lld %d%n", &id, &code, &sig, &a, &b, &pid,
                            &used), 6);
    assert_int_equal(s[used], '\0');
    assert_int_equal(code, 0);
    assert_int_equal(sig, 0);
    assert_int_equal(a, r->res.start_us);
    assert_int_equal(b, r->res.end_us);
    assert_int_equal(pid, pid_of(r));
    free(s);
}

static void test_false(void **state)
{
    struct tctx *t = *state;
    exec_open(t);
    struct rec *r = run_cmd(t, 2, (const char *[]){ "false", NULL });
    assert_int_equal(r->res.exit_code, 1);
    assert_int_equal(r->res.term_signal, 0);
}

static void test_exit_code(void **state)
{
    struct tctx *t = *state;
    exec_open(t);
    struct rec *r = run_cmd(t, 3, (const char *[]){ "sh", "-c", "exit 7", NULL });
    assert_int_equal(r->res.exit_code, 7);
}

static void test_log_streams(void **state)
{
    struct tctx *t = *state;
    exec_open(t);
    run_cmd(t, 4, (const char *[]){ "sh", "-c", "echo to-out; echo to-err >&2; cat", NULL });
    assert_int_equal(rec_get(t, 4)->res.exit_code, 0);    /* cat: stdin is /dev/null */
    char *s = log_of(t, 4);
    assert_non_null(s);
    assert_non_null(strstr(s, "to-out\n"));
    assert_non_null(strstr(s, "to-err\n"));
    free(s);
}

static void test_env(void **state)
{
    struct tctx *t = *state;
    exec_open(t);
    struct tspec ts;
    tspec_init(t, &ts, 5, (const char *[]){ "sh", "-c", "echo v=$KILN_TEST", NULL });
    ts.envp[2] = "KILN_TEST=x";
    start_ok(t, &ts);
    assert_true(run_until(t, pred_done, 5, 10000));
    char *s = log_of(t, 5);
    assert_non_null(s);
    assert_string_equal(s, "v=x\n");
    free(s);

    /* argv[0] is looked up in the task's PATH, not in the shepherd's. */
    char bin[PATH_MAX + 16], tool[PATH_MAX + 32], path_env[PATH_MAX + 64];
    snprintf(bin, sizeof bin, "%s/bin", t->home);
    assert_int_equal(mkdir(bin, 0755), 0);
    snprintf(tool, sizeof tool, "%s/kiln-test-tool", bin);
    write_file(tool, "#!/bin/sh\necho tool ran\n", 0755);
    snprintf(path_env, sizeof path_env, "PATH=%s:/usr/bin:/bin", bin);
    tspec_init(t, &ts, 6, (const char *[]){ "kiln-test-tool", NULL });
    ts.envp[0] = path_env;
    start_ok(t, &ts);
    assert_true(run_until(t, pred_done, 6, 10000));
    assert_int_equal(rec_get(t, 6)->res.exit_code, 0);
    s = log_of(t, 6);
    assert_non_null(s);
    assert_string_equal(s, "tool ran\n");
    free(s);
}

static void test_cwd(void **state)
{
    struct tctx *t = *state;
    exec_open(t);
    char work[PATH_MAX + 16], script[PATH_MAX + 32];
    snprintf(work, sizeof work, "%s/work", t->home);
    assert_int_equal(mkdir(work, 0755), 0);
    snprintf(script, sizeof script, "%s/run.sh", work);
    write_file(script, "#!/bin/sh\npwd\n", 0755);

    struct tspec ts;
    tspec_init(t, &ts, 7, (const char *[]){ "./run.sh", NULL });
    ts.s.cwd = work;
    start_ok(t, &ts);
    assert_true(run_until(t, pred_done, 7, 10000));
    assert_int_equal(rec_get(t, 7)->res.exit_code, 0);
    char *s = log_of(t, 7);
    char want[PATH_MAX + 32];
    snprintf(want, sizeof want, "%s\n", work);
    assert_non_null(s);
    assert_string_equal(s, want);
    free(s);
}

static void test_spawn_failures(void **state)
{
    struct tctx *t = *state;
    exec_open(t);
    struct rec *r = run_cmd(t, 8, (const char *[]){ "kiln-no-such-command", "a", NULL });
    assert_true(r->res.spawn_failed);
    assert_int_equal(r->started, 0);
    assert_int_equal(r->res.exit_code, 127);
    assert_non_null(strstr(r->res.reason, "command not found: kiln-no-such-command"));
    char *s = log_of(t, 8);    /* the reason is in the log too */
    assert_non_null(s);
    assert_non_null(strstr(s, "command not found: kiln-no-such-command"));
    free(s);

    /* The journal records it, with the reason, so adoption sees the same result. */
    s = journal_find(t, SHP_JOURNAL, 8);
    assert_non_null(s);
    int code, sig, pid, used = 0;
    long long id, a, b;
    assert_int_equal(sscanf(s, "%lld %d %d %lld %lld %d%n", &id, &code, &sig, &a, &b, &pid,
                            &used), 6);
    assert_int_equal(code, 127);
    assert_int_equal(pid, 0);
    assert_string_equal(s + used, " command not found: kiln-no-such-command");
    free(s);
    struct tspec ts;
    tspec_init(t, &ts, 8, (const char *[]){ "kiln-no-such-command", NULL });
    r->done = 0;
    adopt_ok(t, &ts, NULL);
    assert_int_equal(r->done, 0);    /* never from inside adopt() */
    assert_true(run_until(t, pred_done, 8, 5000));
    assert_true(r->res.spawn_failed);
    assert_non_null(strstr(r->res.reason, "command not found: kiln-no-such-command"));

    char work[PATH_MAX + 16], noexec[PATH_MAX + 32];
    snprintf(work, sizeof work, "%s/work", t->home);
    assert_int_equal(mkdir(work, 0755), 0);
    snprintf(noexec, sizeof noexec, "%s/noexec", work);
    write_file(noexec, "#!/bin/sh\ntrue\n", 0644);
    tspec_init(t, &ts, 9, (const char *[]){ "./noexec", NULL });
    ts.s.cwd = work;
    start_ok(t, &ts);
    assert_true(run_until(t, pred_done, 9, 10000));
    r = rec_get(t, 9);
    assert_true(r->res.spawn_failed);
    assert_int_equal(r->res.exit_code, 126);
    assert_non_null(strstr(r->res.reason, "permission denied: ./noexec"));

    tspec_init(t, &ts, 10, (const char *[]){ "true", NULL });
    ts.s.cwd = "/nonexistent-kiln-dir";
    start_ok(t, &ts);
    assert_true(run_until(t, pred_done, 10, 10000));
    r = rec_get(t, 10);
    assert_true(r->res.spawn_failed);
    assert_non_null(strstr(r->res.reason, "working directory not found: /nonexistent-kiln-dir"));

    /* A log folder that does not exist yet is created. */
    tspec_init(t, &ts, 11, (const char *[]){ "true", NULL });
    snprintf(ts.log, sizeof ts.log, "%s/new/dir/11.log", t->home);
    start_ok(t, &ts);
    assert_true(run_until(t, pred_done, 11, 10000));
    assert_int_equal(rec_get(t, 11)->res.exit_code, 0);
    assert_false(rec_get(t, 11)->res.spawn_failed);
}

/* A daemon that ignores SIGPIPE (as the engine does) or blocks signals must
 * not pass that on to tasks: "yes | head" would misbehave. */
static void test_signal_state(void **state)
{
    struct tctx *t = *state;
    struct sigaction ign = { .sa_handler = SIG_IGN }, old_pipe, old_usr2;
    sigaction(SIGPIPE, &ign, &old_pipe);
    sigaction(SIGUSR2, &ign, &old_usr2);
    sigset_t blk, old_mask;
    sigemptyset(&blk);
    sigaddset(&blk, SIGUSR1);
    sigprocmask(SIG_BLOCK, &blk, &old_mask);
    exec_open(t);    /* starts the shepherd from this state */
    sigaction(SIGPIPE, &old_pipe, NULL);
    sigaction(SIGUSR2, &old_usr2, NULL);
    sigprocmask(SIG_SETMASK, &old_mask, NULL);

    struct rec *r = run_cmd(t, 12, (const char *[]){ "grep", "-E", "^Sig(Ign|Blk)",
                                                     "/proc/self/status", NULL });
    assert_int_equal(r->res.exit_code, 0);
    char *s = log_of(t, 12);
    assert_non_null(s);
    unsigned long long blocked = 1, ignored = 1;
    assert_int_equal(sscanf(s, "SigBlk: %llx SigIgn: %llx", &blocked, &ignored), 2);
    free(s);
    assert_int_equal(blocked, 0);
    /* glibc's posix_spawn leaves its two internal signals (32, 33) ignored in
     * every child; nothing else may be. */
    assert_int_equal(ignored & ~0x180000000ULL, 0);
}

/* ---- cancel ------------------------------------------------------------ */

static void test_cancel_term(void **state)
{
    struct tctx *t = *state;
    exec_open(t);
    struct tspec ts;
    tspec_init(t, &ts, 20, (const char *[]){ "sleep", "30", NULL });
    start_ok(t, &ts);
    assert_true(run_until(t, pred_started, 20, 10000));
    int64_t t0 = mono_us();
    assert_int_equal(t->ex->ops->cancel(t->ex, 20, 5000), 0);
    assert_true(run_until(t, pred_done, 20, 10000));
    struct rec *r = rec_get(t, 20);
    assert_int_equal(r->res.term_signal, SIGTERM);
    assert_true(mono_us() - t0 < 2000000);
    assert_int_equal(t->ex->ops->cancel(t->ex, 20, 0), KILN_ENOTFOUND);
}

static void test_cancel_escalates(void **state)
{
    struct tctx *t = *state;
    exec_open(t);
    struct tspec ts;
    tspec_init(t, &ts, 21, (const char *[]){ "sh", "-c", "trap '' TERM; echo ready; sleep 30",
                                             NULL });
    start_ok(t, &ts);
    assert_true(run_until(t, pred_log_has, 21, 10000));
    int64_t t0 = mono_us();
    assert_int_equal(t->ex->ops->cancel(t->ex, 21, 200), 0);
    assert_true(run_until(t, pred_done, 21, 10000));
    int64_t took = mono_us() - t0;
    assert_int_equal(rec_get(t, 21)->res.term_signal, SIGKILL);
    assert_true(took >= 190000);
    assert_true(took < 3000000);
}

static bool pred_pidfile(struct tctx *t, int64_t unused)
{
    char path[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/grandchild.pid", t->home);
    char *s = slurp(path);
    bool ok = s && atoi(s) > 0 && strchr(s, '\n');
    free(s);
    return ok;
}

static void test_cancel_group(void **state)
{
    struct tctx *t = *state;
    exec_open(t);
    char script[PATH_MAX + 64];
    snprintf(script, sizeof script, "sleep 30 & echo $! > %s/grandchild.pid; wait", t->home);
    struct tspec ts;
    tspec_init(t, &ts, 22, (const char *[]){ "sh", "-c", script, NULL });
    start_ok(t, &ts);
    assert_true(run_until(t, pred_pidfile, 0, 10000));
    char path[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/grandchild.pid", t->home);
    char *s = slurp(path);
    pid_t gc = atoi(s);
    free(s);
    assert_int_equal(kill(gc, 0), 0);
    assert_int_equal(t->ex->ops->cancel(t->ex, 22, 5000), 0);
    assert_true(run_until(t, pred_done, 22, 10000));
    assert_int_equal(rec_get(t, 22)->res.term_signal, SIGTERM);
    /* The grandchild died with its group (and the subreaper reaped it). */
    int64_t end = mono_us() + 3000000;
    while (kill(gc, 0) == 0 && mono_us() < end)
        usleep(5000);
    assert_int_equal(kill(gc, 0), -1);
    assert_int_equal(errno, ESRCH);
}

static void test_many(void **state)
{
    struct tctx *t = *state;
    exec_open(t);
    static struct tspec ts[50];
    for (int i = 0; i < 50; i++) {
        tspec_init(t, &ts[i], 100 + i, (const char *[]){ "true", NULL });
        start_ok(t, &ts[i]);
    }
    assert_true(run_until(t, pred_all_done, 50, 20000));
    for (int i = 0; i < 50; i++) {
        struct rec *r = rec_get(t, 100 + i);
        assert_int_equal(r->done, 1);
        assert_int_equal(r->started, 1);
        assert_int_equal(r->res.exit_code, 0);
    }
    /* A try id that is still tracked is refused. */
    tspec_init(t, &ts[0], 200, (const char *[]){ "sleep", "5", NULL });
    start_ok(t, &ts[0]);
    struct kiln_err err = { 0 };
    assert_true(t->ex->ops->start(t->ex, &ts[0].s, &err) < 0);
    assert_true(t->ex->ops->cancel(t->ex, 200, 0) == 0);
    assert_true(run_until(t, pred_done, 200, 10000));
    assert_int_equal(rec_get(t, 200)->res.term_signal, SIGKILL);
}

/* ---- adoption ---------------------------------------------------------- */

static bool child_started;

static void child_on_started(void *arg, int64_t try_id, const char *eid, int64_t start_us)
{
    int fd = *(int *)arg;
    child_started = true;
    if (write(fd, eid, strlen(eid) + 1) < 0)
        _exit(3);
}

/* In a forked process: a daemon that starts the try and is killed -9 right
 * after the start acknowledgement, without closing anything.  Returns the
 * executor id it reported. */
static void start_in_doomed_daemon(struct tctx *t, struct tspec *ts, char *eid, size_t n)
{
    int p[2];
    assert_int_equal(pipe(p), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(p[0]);
        alarm(10);
        uv_loop_t loop;
        uv_loop_init(&loop);
        struct executor *ex;
        struct kiln_err err = { 0 };
        if (exec_local_new(&ex, &loop, t->home, self_exe, &err) < 0)
            _exit(2);
        ex->on_started = child_on_started;
        ex->cb_arg = &p[1];
        if (ex->ops->start(ex, &ts->s, &err) < 0)
            _exit(2);
        while (!child_started)
            uv_run(&loop, UV_RUN_ONCE);
        raise(SIGKILL);
        _exit(4);
    }
    close(p[1]);
    ssize_t r = read(p[0], eid, n);
    close(p[0]);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(r > 4);
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
}

static void test_adopt_running(void **state)
{
    struct tctx *t = *state;
    char file[PATH_MAX + 32], script[PATH_MAX + 64], eid[64];
    snprintf(file, sizeof file, "%s/once.txt", t->home);
    snprintf(script, sizeof script, "sleep 0.5; echo once >> %s", file);
    struct tspec ts;
    tspec_init(t, &ts, 30, (const char *[]){ "sh", "-c", script, NULL });
    start_in_doomed_daemon(t, &ts, eid, sizeof eid);

    exec_open(t);
    adopt_ok(t, &ts, eid);
    assert_true(run_until(t, pred_done, 30, 10000));
    struct rec *r = rec_get(t, 30);
    assert_int_equal(r->started, 1);    /* it was still running: re-attached */
    assert_string_equal(r->exec_id, eid);
    assert_false(r->res.lost || r->res.never_started);
    assert_int_equal(r->res.exit_code, 0);
    char *s = slurp(file);
    assert_non_null(s);
    assert_string_equal(s, "once\n");
    free(s);
}

static void test_adopt_finished(void **state)
{
    struct tctx *t = *state;
    char eid[64];
    struct tspec ts;
    tspec_init(t, &ts, 31, (const char *[]){ "sh", "-c", "sleep 0.1; exit 3", NULL });
    start_in_doomed_daemon(t, &ts, eid, sizeof eid);
    int old_pid = shepherd_pid(t);
    /* It ends while no daemon is connected, and then the shepherd exits
     * (idle): the answer can only come from the journal. */
    assert_true(shepherd_gone(t, 5000));
    char *s = journal_find(t, SHP_JOURNAL, 31);
    assert_non_null(s);
    free(s);
    exec_open(t);
    assert_int_not_equal(shepherd_pid(t), old_pid);
    adopt_ok(t, &ts, eid);
    assert_int_equal(rec_get(t, 31)->done, 0);
    assert_true(run_until(t, pred_done, 31, 10000));
    struct rec *r = rec_get(t, 31);
    assert_int_equal(r->res.exit_code, 3);
    assert_true(r->res.end_us > r->res.start_us);
}

static void test_adopt_from_shepherd_table(void **state)
{
    struct tctx *t = *state;
    setenv("KILN_SHEPHERD_IDLE_MS", "3000", 1);
    char eid[64];
    struct tspec ts;
    tspec_init(t, &ts, 32, (const char *[]){ "sh", "-c", "sleep 0.1; exit 4", NULL });
    start_in_doomed_daemon(t, &ts, eid, sizeof eid);
    setenv("KILN_SHEPHERD_IDLE_MS", "200", 1);
    int64_t end = mono_us() + 5000000;
    char *line;
    while ((line = journal_find(t, SHP_JOURNAL, 32)) == NULL && mono_us() < end)
        usleep(5000);
    assert_non_null(line);
    free(line);
    /* Without its journal line the answer must come from the shepherd. */
    char jpath[PATH_MAX];
    home_path(t, SHP_JOURNAL, jpath, sizeof jpath);
    assert_int_equal(truncate(jpath, 0), 0);
    exec_open(t);
    adopt_ok(t, &ts, eid);
    assert_true(run_until(t, pred_done, 32, 10000));
    assert_int_equal(rec_get(t, 32)->res.exit_code, 4);
    assert_false(rec_get(t, 32)->res.lost);
    exec_close(t);
    /* The shepherd also stops cleanly on SIGTERM. */
    int pid = shepherd_pid(t);
    assert_true(pid > 0);
    assert_int_equal(kill(pid, SIGTERM), 0);
    assert_true(shepherd_gone(t, 3000));
    char sock[PATH_MAX + 32];
    snprintf(sock, sizeof sock, "%s/shepherd.sock", t->home);
    assert_int_equal(access(sock, F_OK), -1);
}

static void test_adopt_never_started(void **state)
{
    struct tctx *t = *state;
    exec_open(t);
    struct tspec ts;
    tspec_init(t, &ts, 33, (const char *[]){ "true", NULL });
    adopt_ok(t, &ts, NULL);
    assert_true(run_until(t, pred_done, 33, 10000));
    struct rec *r = rec_get(t, 33);
    assert_true(r->res.never_started);
    assert_false(r->res.lost);
    assert_int_equal(r->started, 0);
}

static void test_adopt_lost(void **state)
{
    struct tctx *t = *state;
    char eid[64];
    struct tspec ts;
    tspec_init(t, &ts, 34, (const char *[]){ "sleep", "30", NULL });
    start_in_doomed_daemon(t, &ts, eid, sizeof eid);
    t->strays[t->nstrays++] = (pid_t)atoi(eid + 4);
    int pid = shepherd_pid(t);
    assert_true(pid > 0);
    assert_int_equal(kill(pid, SIGKILL), 0);
    assert_true(shepherd_gone(t, 3000));

    exec_open(t);    /* starts a new shepherd over the stale socket */
    adopt_ok(t, &ts, eid);
    assert_true(run_until(t, pred_done, 34, 10000));
    struct rec *r = rec_get(t, 34);
    assert_true(r->res.lost);
    assert_string_equal(r->res.reason,
                        "task process lost: its supervisor exited without recording a status");
}

/* The shepherd dies under a connected executor: it reconnects (starting a
 * new shepherd) and resolves what it had in flight. */
static void test_reconnect(void **state)
{
    struct tctx *t = *state;
    exec_open(t);
    struct tspec ts;
    tspec_init(t, &ts, 40, (const char *[]){ "sleep", "30", NULL });
    start_ok(t, &ts);
    assert_true(run_until(t, pred_started, 40, 10000));
    t->strays[t->nstrays++] = pid_of(rec_get(t, 40));
    int pid = shepherd_pid(t);
    assert_int_equal(kill(pid, SIGKILL), 0);
    assert_true(run_until(t, pred_done, 40, 10000));
    assert_true(rec_get(t, 40)->res.lost);
    assert_int_not_equal(shepherd_pid(t), pid);

    struct rec *r = run_cmd(t, 41, (const char *[]){ "true", NULL });
    assert_int_equal(r->res.exit_code, 0);
}

/* Garbage on the socket neither crashes the shepherd nor disturbs the
 * executor connected beside it. */
static int raw_connect(struct tctx *t)
{
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    char sock[PATH_MAX];
    snprintf(sock, sizeof sock, "%s/shepherd.sock", t->home);
    assert_true(strlen(sock) < sizeof sa.sun_path);
    memcpy(sa.sun_path, sock, strlen(sock) + 1);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    struct timeval tv = { .tv_sec = 5 };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
}

/* Receives one message (skipping HELLO) on a raw connection. */
static struct shp_msg raw_recv(int fd, char *reason, size_t n)
{
    static char buf[SHP_PKT_BUF];
    struct shp_msg h;
    do {
        ssize_t r = recv(fd, buf, sizeof buf, 0);
        assert_true(r >= (ssize_t)(sizeof(struct shp_pkt) + sizeof h));
        memcpy(&h, buf + sizeof(struct shp_pkt), sizeof h);
        const char *str = h.nstr ? buf + sizeof(struct shp_pkt) + sizeof h : "";
        size_t len = strnlen(str, n - 1);
        memcpy(reason, str, len);
        reason[len] = '\0';
    } while (h.type == SHP_HELLO);
    return h;
}

/* Bad input on the socket neither crashes the shepherd nor disturbs the
 * executor connected beside it. */
static void test_bad_messages(void **state)
{
    struct tctx *t = *state;
    exec_open(t);
    int pid = shepherd_pid(t);

    /* Well framed but inconsistent: answered, connection kept. */
    int fd = raw_connect(t);
    struct shp_pkt pk = { .magic = SHP_MAGIC, .version = SHP_VERSION };
    struct shp_msg m = { .type = SHP_SPAWN, .nstr = 1, .try_id = 999, .v = { 5, 0 } };
    char bad[sizeof pk + sizeof m + 2];
    memcpy(bad, &pk, sizeof pk);
    memcpy(bad + sizeof pk, &m, sizeof m);
    memcpy(bad + sizeof pk + sizeof m, "x", 2);
    assert_int_equal(send(fd, bad, sizeof bad, MSG_NOSIGNAL), (ssize_t)sizeof bad);
    char reason[256];
    struct shp_msg h = raw_recv(fd, reason, sizeof reason);
    assert_int_equal(h.type, SHP_FAILED);
    assert_int_equal(h.try_id, 999);
    assert_string_equal(reason, "malformed spawn request");
    assert_int_equal(send(fd, &pk, sizeof pk, MSG_NOSIGNAL), (ssize_t)sizeof pk);
    m = (struct shp_msg){ .type = SHP_QUERY, .try_id = 12345 };
    char q[sizeof pk + sizeof m];
    memcpy(q, &pk, sizeof pk);
    memcpy(q + sizeof pk, &m, sizeof m);
    assert_int_equal(send(fd, q, sizeof q, MSG_NOSIGNAL), (ssize_t)sizeof q);
    h = raw_recv(fd, reason, sizeof reason);
    assert_int_equal(h.type, SHP_UNKNOWN);
    assert_int_equal(h.try_id, 12345);
    close(fd);

    /* Broken framing: that connection is dropped, nothing else. */
    fd = raw_connect(t);
    char junk[200];
    memset(junk, 0xA5, sizeof junk);
    assert_int_equal(send(fd, junk, 3, MSG_NOSIGNAL), 3);
    char c;
    assert_int_equal(recv(fd, &c, 1, 0), 1);    /* its HELLO */
    close(fd);

    struct rec *r = run_cmd(t, 50, (const char *[]){ "true", NULL });
    assert_int_equal(r->res.exit_code, 0);
    assert_int_equal(shepherd_pid(t), pid);
    assert_int_equal(kill(pid, 0), 0);
}

/* A spawn request larger than one packet (a big environment) is split and
 * reassembled. */
static void test_big_request(void **state)
{
    struct tctx *t = *state;
    exec_open(t);
    /* Five variables of 100,000 bytes: over the 64 KiB packet, under the
     * kernel's 128 KiB limit per string. */
    size_t n = 100000;
    char *big[5];
    struct tspec ts;
    tspec_init(t, &ts, 51, (const char *[]){ "sh", "-c", "echo ${#B0} ${#B4}", NULL });
    for (int i = 0; i < 5; i++) {
        big[i] = malloc(n + 4);
        assert_non_null(big[i]);
        memcpy(big[i], (char[]){ 'B', (char)('0' + i), '=' }, 3);
        memset(big[i] + 3, 'b', n);
        big[i][n + 3] = '\0';
        ts.envp[2 + i] = big[i];
    }
    start_ok(t, &ts);
    assert_true(run_until(t, pred_done, 51, 10000));
    for (int i = 0; i < 5; i++)
        free(big[i]);
    assert_int_equal(rec_get(t, 51)->res.exit_code, 0);
    char *s = log_of(t, 51);
    assert_non_null(s);
    assert_string_equal(s, "100000 100000\n");
    free(s);
}

/* Two executors on one home (a daemon and an in-process "dags test") share
 * the shepherd; each gets the results of its own tries, and neither throws
 * the other out. */
static void test_two_executors(void **state)
{
    struct tctx *t = *state;
    exec_open(t);
    struct executor *a = t->ex;
    exec_open(t);
    struct executor *b = t->ex;
    static struct tspec ts[20];
    for (int i = 0; i < 20; i++) {
        tspec_init(t, &ts[i], 300 + i, (const char *[]){ "sh", "-c",
                   i % 2 ? "sleep 0.05; exit 6" : "exit 5", NULL });
        struct executor *ex = i % 2 ? b : a;
        struct kiln_err err = { 0 };
        if (ex->ops->start(ex, &ts[i].s, &err) < 0)
            fail_msg("start: %s", err.msg);
    }
    assert_true(run_until(t, pred_all_done, 20, 20000));
    for (int i = 0; i < 20; i++) {
        struct rec *r = rec_get(t, 300 + i);
        assert_int_equal(r->done, 1);
        assert_int_equal(r->res.exit_code, i % 2 ? 6 : 5);
    }
    char path[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/shepherd.log", t->home);
    char *log = slurp(path);
    assert_non_null(log);
    assert_null(strstr(log, "closed"));    /* no connection was dropped */
    free(log);
    t->ex = a;
    exec_close(t);
    t->ex = b;
    exec_close(t);
}

/* ---- the journal ------------------------------------------------------- */

/* A record without its newline (a shepherd that died in the middle of its
 * write) is not an answer; once whole, it is.  A shepherd that finds such a
 * torn last line ends it before its own first record. */
static void test_journal_torn(void **state)
{
    struct tctx *t = *state;
    exec_open(t);
    run_cmd(t, 70, (const char *[]){ "true", NULL });
    char jpath[PATH_MAX];
    home_path(t, SHP_JOURNAL, jpath, sizeof jpath);
    struct tspec ts;
    tspec_init(t, &ts, 71, (const char *[]){ "true", NULL });
    write_file(ts.log, "", 0644);    /* it reached a shepherd */
    append_file(jpath, "71 5 0 100 200 4242");
    adopt_ok(t, &ts, NULL);
    assert_true(run_until(t, pred_done, 71, 10000));
    struct rec *r = rec_get(t, 71);
    assert_true(r->res.lost);

    append_file(jpath, "\n");
    r->done = 0;
    adopt_ok(t, &ts, NULL);
    assert_true(run_until(t, pred_done, 71, 10000));
    assert_false(r->res.lost);
    assert_int_equal(r->res.exit_code, 5);
    assert_int_equal(r->res.start_us, 100);
    assert_int_equal(r->res.end_us, 200);

    append_file(jpath, "72 9 0 1");
    exec_close(t);
    assert_true(shepherd_gone(t, 5000));
    exec_open(t);
    r = run_cmd(t, 73, (const char *[]){ "sh", "-c", "exit 3", NULL });
    assert_int_equal(r->res.exit_code, 3);
    char *line = journal_find(t, SHP_JOURNAL, 73);    /* a line of its own */
    assert_non_null(line);
    free(line);
    tspec_init(t, &ts, 72, (const char *[]){ "true", NULL });
    write_file(ts.log, "", 0644);
    adopt_ok(t, &ts, NULL);    /* "72 9 0 1" is malformed: skipped */
    assert_true(run_until(t, pred_done, 72, 10000));
    assert_true(rec_get(t, 72)->res.lost);
}

/* A shepherd renames a journal over its limit to shepherd.journal.1 when it
 * starts; adoption still finds what the previous one recorded there. */
static void test_journal_rotation(void **state)
{
    struct tctx *t = *state;
    char eid[64];
    struct tspec ts;
    tspec_init(t, &ts, 35, (const char *[]){ "sh", "-c", "exit 3", NULL });
    start_in_doomed_daemon(t, &ts, eid, sizeof eid);
    assert_true(shepherd_gone(t, 5000));
    char *line = journal_find(t, SHP_JOURNAL, 35);
    assert_non_null(line);
    free(line);

    setenv("KILN_SHEPHERD_JOURNAL_MAX", "10", 1);
    exec_open(t);
    unsetenv("KILN_SHEPHERD_JOURNAL_MAX");
    line = journal_find(t, SHP_JOURNAL_OLD, 35);
    assert_non_null(line);
    free(line);
    assert_null(journal_find(t, SHP_JOURNAL, 35));
    adopt_ok(t, &ts, eid);
    assert_true(run_until(t, pred_done, 35, 10000));
    struct rec *r = rec_get(t, 35);
    assert_false(r->res.lost || r->res.never_started);
    assert_int_equal(r->res.exit_code, 3);

    /* And the new journal takes the next records. */
    r = run_cmd(t, 36, (const char *[]){ "true", NULL });
    assert_int_equal(r->res.exit_code, 0);
    line = journal_find(t, SHP_JOURNAL, 36);
    assert_non_null(line);
    free(line);
}

/* An executor that follows the journal reads a file renamed away under it
 * to its end, then the new file from its start. */
static void test_journal_follow(void **state)
{
    struct tctx *t = *state;
    exec_open(t);
    run_cmd(t, 80, (const char *[]){ "true", NULL });
    struct tspec ts, a, b;
    tspec_init(t, &ts, 81, (const char *[]){ "true", NULL });
    adopt_ok(t, &ts, NULL);    /* reads the journal, and follows it from now on */
    assert_true(run_until(t, pred_done, 81, 10000));
    assert_true(rec_get(t, 81)->res.never_started);

    /* Two tries only the journal can answer for (their logs exist, the
     * shepherd never heard of them); the shepherd is stopped so that the
     * questions wait while the journal is rotated by hand. */
    tspec_init(t, &a, 82, (const char *[]){ "true", NULL });
    tspec_init(t, &b, 83, (const char *[]){ "true", NULL });
    write_file(a.log, "", 0644);
    write_file(b.log, "", 0644);
    int pid = shepherd_pid(t);
    assert_int_equal(kill(pid, SIGSTOP), 0);
    adopt_ok(t, &a, NULL);
    adopt_ok(t, &b, NULL);
    uv_run(&t->loop, UV_RUN_NOWAIT);    /* no line for them yet: the questions go out */
    assert_int_equal(rec_get(t, 82)->done + rec_get(t, 83)->done, 0);
    char jpath[PATH_MAX], old[PATH_MAX];
    home_path(t, SHP_JOURNAL, jpath, sizeof jpath);
    home_path(t, SHP_JOURNAL_OLD, old, sizeof old);
    assert_int_equal(rename(jpath, old), 0);
    append_file(old, "82 8 0 100 200 4242\n");
    append_file(jpath, "83 9 0 100 200 4243\n");
    assert_int_equal(kill(pid, SIGCONT), 0);
    assert_true(run_until(t, pred_all_done, 4, 10000));
    assert_false(rec_get(t, 82)->res.lost);
    assert_int_equal(rec_get(t, 82)->res.exit_code, 8);
    assert_false(rec_get(t, 83)->res.lost);
    assert_int_equal(rec_get(t, 83)->res.exit_code, 9);
}

/* The shepherd caches where a command was found in PATH; an entry whose
 * file went away or lost its execute bit is looked up again, and a relative
 * PATH entry is resolved in each task's own working directory. */
static void test_path_cache(void **state)
{
    struct tctx *t = *state;
    exec_open(t);
    char bin1[PATH_MAX], bin2[PATH_MAX], tool1[PATH_MAX + 32], tool2[PATH_MAX + 32];
    char path_env[2 * PATH_MAX + 64];
    home_path(t, "bin1", bin1, sizeof bin1);
    home_path(t, "bin2", bin2, sizeof bin2);
    assert_int_equal(mkdir(bin1, 0755), 0);
    assert_int_equal(mkdir(bin2, 0755), 0);
    snprintf(tool1, sizeof tool1, "%s/kiln-test-tool", bin1);
    snprintf(tool2, sizeof tool2, "%s/kiln-test-tool", bin2);
    write_file(tool1, "#!/bin/sh\necho one\n", 0755);
    write_file(tool2, "#!/bin/sh\necho two\n", 0755);
    snprintf(path_env, sizeof path_env, "PATH=%s:%s:/usr/bin:/bin", bin1, bin2);
    const char *want[] = { "one\n", "one\n", "two\n" };
    for (int i = 0; i < 3; i++) {
        if (i == 2)
            assert_int_equal(unlink(tool1), 0);
        struct tspec ts;
        tspec_init(t, &ts, 90 + i, (const char *[]){ "kiln-test-tool", NULL });
        ts.envp[0] = path_env;
        start_ok(t, &ts);
        assert_true(run_until(t, pred_done, 90 + i, 10000));
        assert_int_equal(rec_get(t, 90 + i)->res.exit_code, 0);
        char *s = log_of(t, 90 + i);
        assert_non_null(s);
        assert_string_equal(s, want[i]);
        free(s);
    }
    assert_int_equal(chmod(tool2, 0644), 0);
    struct tspec ts;
    tspec_init(t, &ts, 93, (const char *[]){ "kiln-test-tool", NULL });
    ts.envp[0] = path_env;
    start_ok(t, &ts);
    assert_true(run_until(t, pred_done, 93, 10000));
    assert_true(rec_get(t, 93)->res.spawn_failed);
    assert_non_null(strstr(rec_get(t, 93)->res.reason, "permission denied: kiln-test-tool"));

    /* "." in PATH: the same name and PATH find a different file in each
     * working directory. */
    for (int i = 0; i < 2; i++) {
        char dir[PATH_MAX], tool[PATH_MAX + 32], text[64];
        home_path(t, i ? "w2" : "w1", dir, sizeof dir);
        assert_int_equal(mkdir(dir, 0755), 0);
        snprintf(tool, sizeof tool, "%s/kiln-here", dir);
        snprintf(text, sizeof text, "#!/bin/sh\necho in w%d\n", i + 1);
        write_file(tool, text, 0755);
    }
    for (int i = 0; i < 4; i++) {
        char dir[PATH_MAX], want_s[16];
        home_path(t, i % 2 ? "w2" : "w1", dir, sizeof dir);
        tspec_init(t, &ts, 94 + i, (const char *[]){ "kiln-here", NULL });
        ts.envp[0] = "PATH=.:/usr/bin:/bin";
        ts.s.cwd = dir;
        start_ok(t, &ts);
        assert_true(run_until(t, pred_done, 94 + i, 10000));
        assert_int_equal(rec_get(t, 94 + i)->res.exit_code, 0);
        char *s = log_of(t, 94 + i);
        snprintf(want_s, sizeof want_s, "in w%d\n", i % 2 + 1);
        assert_non_null(s);
        assert_string_equal(s, want_s);
        free(s);
    }
}

/* A home deeper than sun_path's 108 bytes still works. */
static void test_long_home(void **state)
{
    struct tctx *t = *state;
    char deep[PATH_MAX];
    snprintf(deep, sizeof deep, "%s/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa/"
             "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb/cccccccccccccccccccccccccccccccc",
             t->home);
    assert_int_equal(mkdir_p(deep, 0700), 0);
    char saved[1024];
    snprintf(saved, sizeof saved, "%s", t->home);
    assert_true(strlen(deep) < sizeof t->home);
    memcpy(t->home, deep, strlen(deep) + 1);
    char logs[PATH_MAX + 8];
    snprintf(logs, sizeof logs, "%s/logs", t->home);
    assert_int_equal(mkdir(logs, 0755), 0);
    exec_open(t);
    struct rec *r = run_cmd(t, 60, (const char *[]){ "true", NULL });
    assert_int_equal(r->res.exit_code, 0);
    exec_close(t);
    assert_true(shepherd_gone(t, 5000));
    snprintf(t->home, sizeof t->home, "%s", saved);
}

int main(int argc, char **argv)
{
    if (argc >= 4 && strcmp(argv[1], "shepherd") == 0 && strcmp(argv[2], "--home") == 0)
        return shepherd_main(argv[3]);
    ssize_t n = readlink("/proc/self/exe", self_exe, sizeof self_exe - 1);
    if (n <= 0)
        return 1;
    self_exe[n] = '\0';
    setenv("KILN_SHEPHERD_IDLE_MS", "200", 1);

    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_true, setup, teardown),
        cmocka_unit_test_setup_teardown(test_false, setup, teardown),
        cmocka_unit_test_setup_teardown(test_exit_code, setup, teardown),
        cmocka_unit_test_setup_teardown(test_log_streams, setup, teardown),
        cmocka_unit_test_setup_teardown(test_env, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cwd, setup, teardown),
        cmocka_unit_test_setup_teardown(test_spawn_failures, setup, teardown),
        cmocka_unit_test_setup_teardown(test_signal_state, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_term, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_escalates, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_group, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many, setup, teardown),
        cmocka_unit_test_setup_teardown(test_adopt_running, setup, teardown),
        cmocka_unit_test_setup_teardown(test_adopt_finished, setup, teardown),
        cmocka_unit_test_setup_teardown(test_adopt_from_shepherd_table, setup, teardown),
        cmocka_unit_test_setup_teardown(test_adopt_never_started, setup, teardown),
        cmocka_unit_test_setup_teardown(test_adopt_lost, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reconnect, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_messages, setup, teardown),
        cmocka_unit_test_setup_teardown(test_big_request, setup, teardown),
        cmocka_unit_test_setup_teardown(test_two_executors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_journal_torn, setup, teardown),
        cmocka_unit_test_setup_teardown(test_journal_rotation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_journal_follow, setup, teardown),
        cmocka_unit_test_setup_teardown(test_path_cache, setup, teardown),
        cmocka_unit_test_setup_teardown(test_long_home, setup, teardown),
    };
    const char *filter = getenv("KILN_TEST_FILTER");    /* e.g. "test_adopt*" */
    if (filter)
        cmocka_set_test_filter(filter);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
