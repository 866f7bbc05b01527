/* engine: composition of store + scheduler + executors on one loop.
 *
 * Commands from the CLI while a daemon runs: the CLI inserts a row into the
 * commands table and sends one datagram to HOME/daemon.sock; the daemon
 * applies pending rows through cmd_apply() on the nudge, and every second
 * as a safety net (a lost datagram costs at most a second). */
#include "engine.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "dagdir.h"
#include "log.h"
#include "util.h"

extern char **environ;

struct engine {
    uv_loop_t *loop;
    const struct kiln_settings *cfg;
    struct store *st;
    struct sched *sched;
    struct executor *local, *noop;
    int lock_fd;
    int nudge_fd;
    bool daemon;
    uv_poll_t nudge;
    uv_timer_t cmd_timer;
    int open_handles;
    bool stopping;
};

char *home_path(const char *home, const char *name)
{
    return xasprintf("%s/%s", home, name);
}

int home_lock(const char *home, bool wait)
{
    char *p = home_path(home, "daemon.lock");
    int fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    free(p);
    if (fd < 0)
        return -errno;
    if (flock(fd, LOCK_EX | (wait ? 0 : LOCK_NB)) < 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    return fd;
}

bool daemon_running(const char *home, long *pid)
{
    int fd = home_lock(home, false);
    if (fd >= 0) {
        close(fd);
        return false;
    }
    char *p = home_path(home, "daemon.pid");
    char *buf = NULL;
    bool alive = false;
    if (file_read_all(p, &buf, NULL) == 0) {
        long n = strtol(buf, NULL, 10);
        if (n > 0 && kill((pid_t)n, 0) == 0) {
            alive = true;
            if (pid)
                *pid = n;
        }
    }
    free(buf);
    free(p);
    return alive;
}

static void process_commands(struct engine *e);

static void on_nudge(uv_poll_t *h, int status, int events)
{
    struct engine *e = container_of(h, struct engine, nudge);
    char buf[64];
    while (recv(e->nudge_fd, buf, sizeof buf, MSG_DONTWAIT) > 0)
        ;
    process_commands(e);
}

static void on_cmd_timer(uv_timer_t *h)
{
    process_commands(container_of(h, struct engine, cmd_timer));
}

struct pending_cmd {
    int64_t id;
    char *actor, *body;
};

struct cmd_list {
    struct pending_cmd *v;
    size_t n;
};

static int cmd_row(void *arg, struct store_row *r)
{
    struct cmd_list *l = arg;
    l->v = xrealloc(l->v, (l->n + 1) * sizeof *l->v);
    l->v[l->n].id = store_col_int(r, 0);
    l->v[l->n].actor = xstrdup(store_col_text(r, 1));
    l->v[l->n].body = xstrdup(store_col_text(r, 2));
    l->n++;
    return 0;
}

static void process_commands(struct engine *e)
{
    if (e->stopping)
        return;
    struct cmd_list l = { NULL, 0 };
    struct kiln_err err = { 0 };
    if (store_exec(e->st, Q_command_pending, cmd_row, &l, &err, "") < 0) {
        LOG_E("reading commands: %s", err.msg);
        return;
    }
    for (size_t i = 0; i < l.n; i++) {
        struct cmd_ctx c;
        engine_cmd_ctx(e, &c, l.v[i].actor);
        char *result = NULL;
        kiln_err_clear(&err);
        int rc = cmd_apply(&c, l.v[i].body, &result, &err);
        struct sbuf out;
        sbuf_init(&out);
        if (rc < 0) {
            sbuf_adds(&out, "{\"error\":");
            sbuf_json_str(&out, err.msg);
            sbuf_printf(&out, ",\"code\":%d}", rc);
        }
        struct kiln_err e2 = { 0 };
        store_txn_begin(e->st, &e2);
        if (store_exec(e->st, Q_command_finish, NULL, NULL, &e2, "issi", l.v[i].id,
                       rc < 0 ? "error" : "done", rc < 0 ? out.data : result, now_us()) < 0)
            LOG_E("recording command result: %s", e2.msg);
        LOG_I("command %lld from %s: %s%s%s", (long long)l.v[i].id, l.v[i].actor,
              rc < 0 ? "error: " : "ok ", rc < 0 ? err.msg : result, "");
        sbuf_free(&out);
        free(result);
        free(l.v[i].actor);
        free(l.v[i].body);
    }
    free(l.v);
    if (l.n) {
        /* Commit now so the waiting CLI sees its answer at once. */
        kiln_err_clear(&err);
        if (sched_flush(e->sched, &err) < 0)
            LOG_E("commit: %s", err.msg);
    }
}

static int open_nudge_socket(struct engine *e, struct kiln_err *err)
{
    char *p = home_path(e->cfg->home, "daemon.sock");
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    if (strlen(p) >= sizeof sa.sun_path) {
        int rc = kiln_err_set(err, -ENAMETOOLONG, "home path too long for a socket: %s", p);
        free(p);
        return rc;
    }
    strcpy(sa.sun_path, p);
    free(p);
    unlink(sa.sun_path);
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        int rc = kiln_err_set(err, -errno, "cannot listen on %s: %s", sa.sun_path,
                              strerror(errno));
        if (fd >= 0)
            close(fd);
        return rc;
    }
    e->nudge_fd = fd;
    return 0;
}

int engine_open(struct engine **out, uv_loop_t *loop, const struct engine_opts *o,
                struct kiln_err *err)
{
    struct engine *e = xcalloc(1, sizeof *e);
    e->loop = loop;
    e->cfg = o->cfg;
    e->daemon = o->daemon;
    e->lock_fd = -1;
    e->nudge_fd = -1;
    int rc;
    if ((rc = mkdir_p(o->cfg->home, 0755)) < 0) {
        rc = kiln_err_set(err, rc, "cannot create %s: %s", o->cfg->home, strerror(-rc));
        goto fail;
    }
    if (o->daemon) {
        /* A CLI applying a command offline holds the lock for a moment:
         * wait for it briefly, but refuse a second daemon. */
        long pid;
        if (daemon_running(o->cfg->home, &pid)) {
            rc = kiln_err_set(err, KILN_EBUSY, "a daemon is already running on %s (pid %ld)",
                              o->cfg->home, pid);
            goto fail;
        }
        e->lock_fd = home_lock(o->cfg->home, true);
        if (e->lock_fd < 0) {
            rc = kiln_err_set(err, e->lock_fd, "cannot lock %s", o->cfg->home);
            goto fail;
        }
        char pidbuf[32];
        int n = snprintf(pidbuf, sizeof pidbuf, "%ld\n", (long)getpid());
        char *pp = home_path(o->cfg->home, "daemon.pid");
        file_write_atomic(pp, pidbuf, (size_t)n, 0644);
        free(pp);
    }
    char *dbp = home_path(o->cfg->home, "kiln.db");
    rc = store_open(&e->st, dbp, err);
    free(dbp);
    if (rc < 0)
        goto fail;
    struct sched_config sc = {
        .home = o->cfg->home, .parallelism = o->cfg->parallelism, .pools = o->cfg->pools,
        .n_pools = o->cfg->n_pools, .kill_grace_ms = o->cfg->kill_grace_ms,
        .executor_override = strcmp(o->cfg->executor, "noop") == 0 ? "noop" : NULL,
        .base_env = environ,
    };
    if ((rc = sched_new(&e->sched, loop, e->st, &sc, err)) < 0)
        goto fail;
    /* With every task on the no-op executor (benchmarks) no shepherd is
     * needed, so none is started. */
    if (!sc.executor_override) {
        if ((rc = exec_local_new(&e->local, loop, o->cfg->home, o->self_exe, err)) < 0)
            goto fail;
        sched_add_executor(e->sched, "local", e->local);
    }
    exec_noop_new(&e->noop, loop);
    sched_add_executor(e->sched, "noop", e->noop);
    if (o->daemon) {
        if ((rc = open_nudge_socket(e, err)) < 0)
            goto fail;
        uv_poll_init(loop, &e->nudge, e->nudge_fd);
        uv_poll_start(&e->nudge, UV_READABLE, on_nudge);
        uv_timer_init(loop, &e->cmd_timer);
        uv_timer_start(&e->cmd_timer, on_cmd_timer, 1000, 1000);
        e->open_handles = 2;
        engine_sync_dags(e);
    }
    if ((rc = sched_recover(e->sched, err)) < 0)
        goto fail;
    if (o->daemon)
        process_commands(e);
    *out = e;
    return 0;
fail:
    engine_free(e);
    return rc;
}

struct sched *engine_sched(struct engine *e)
{
    return e->sched;
}

struct store *engine_store(struct engine *e)
{
    return e->st;
}

void engine_cmd_ctx(struct engine *e, struct cmd_ctx *c, const char *actor)
{
    c->st = e->st;
    c->sched = e->sched;
    c->dags_dir = e->cfg->dags;
    c->home = e->cfg->home;
    c->actor = actor;
}

void engine_sync_dags(struct engine *e)
{
    struct dagdir *dd = NULL;
    struct kiln_err err = { 0 };
    if (dagdir_load(e->cfg->dags, &dd, &err) < 0) {
        LOG_W("DAG folder: %s", err.msg);
        return;
    }
    store_txn_begin(e->st, &err);
    size_t ok = 0;
    for (size_t i = 0; i < dd->n; i++) {
        struct dagdir_entry *en = &dd->entries[i];
        if (!en->dag) {
            LOG_W("%s", en->error);
            continue;
        }
        ok++;
        if (store_exec(e->st, Q_dag_upsert, NULL, NULL, &err, "ssi", en->dag->id, en->path,
                       now_us()) < 0)
            LOG_E("store: %s", err.msg);
    }
    LOG_I("loaded %zu DAG(s) from %s, %zu with errors", ok, e->cfg->dags, dd->n - ok);
    dagdir_free(dd);
}

static void on_engine_handle_closed(uv_handle_t *h)
{
    (void)h;
}

static void on_exec_closed(struct executor *ex)
{
    (void)ex;
}

void engine_stop(struct engine *e)
{
    if (e->stopping)
        return;
    e->stopping = true;
    if (e->open_handles) {
        uv_close((uv_handle_t *)&e->nudge, on_engine_handle_closed);
        uv_close((uv_handle_t *)&e->cmd_timer, on_engine_handle_closed);
        e->open_handles = 0;
    }
    sched_close(e->sched, NULL, NULL);
    if (e->local)
        e->local->ops->close(e->local, on_exec_closed);
    if (e->noop)
        e->noop->ops->close(e->noop, on_exec_closed);
    e->local = e->noop = NULL;
}

void engine_free(struct engine *e)
{
    if (!e)
        return;
    sched_free(e->sched);
    store_close(e->st);
    if (e->nudge_fd >= 0) {
        char *p = home_path(e->cfg->home, "daemon.sock");
        unlink(p);
        free(p);
        close(e->nudge_fd);
    }
    if (e->lock_fd >= 0) {
        char *p = home_path(e->cfg->home, "daemon.pid");
        unlink(p);
        free(p);
        close(e->lock_fd);
    }
    free(e);
}
