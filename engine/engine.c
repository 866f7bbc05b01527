/* engine: composition of store + scheduler + executors on one loop.
 *
 * Commands from the CLI while a daemon runs: the CLI inserts a row into the
 * commands table and sends one datagram to HOME/daemon.sock; the daemon
 * applies pending rows through cmd_apply() on the nudge, and every second
 * as a safety net (a lost datagram costs at most a second).
 *
 * The DAG folder is watched (uv_fs_event on the folder, debounced, plus a
 * rescan every 30 s as a safety net): each sync stats every DAG file and
 * reads and parses only the files whose size, mtime, ctime or inode
 * changed.  A new content is recorded as a version row at once (with its
 * git commit); a file that no longer loads keeps its DAG's previous version
 * and records the error; a DAG whose file left the folder is marked
 * file_missing (it can no longer run; its history stays).
 *
 * Schedules (schedule.h): each loaded DAG file keeps its parsed schedule.
 * One uv_timer is armed for the earliest time a new data interval becomes
 * due across the DAGs; when it fires (and at start, after a DAG (re)load
 * and after commands such as unpause) the due intervals are created as
 * runs through the trigger command, named scheduled__<interval start>, so
 * a run is never created twice, even across a crash.  A daemon that was
 * down creates what it missed at start (every interval with catchup, the
 * latest one without). */
#include "engine.h"
#include "engine_kube.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "cmd.h"
#include "dagdir.h"
#include "http.h"
#include "log.h"
#include "schedule.h"
#include "util.h"

extern char **environ;

/* What the last sync saw of one DAG file. */
struct dag_file {
    char *path;
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime, ctime;
    char hash[65];
    char *dag_id;     /* the DAG it declares, NULL when it does not load */
    struct schedule sched;  /* of its last good content; sched.cron NULL: none */
    char *schedule_expr;    /* its schedule as written, NULL: none */
    bool seen;
};

/* Due intervals created per DAG per tick; the rest come on the next one. */
#define SCHEDULE_BATCH 64
/* The schedule timer never sleeps longer, so a changed wall clock is seen. */
#define SCHEDULE_MAX_SLEEP_MS 3600000

#define DAG_DEBOUNCE_MS 150
#define DAG_RESCAN_MS 30000

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
    bool watching;
    uv_fs_event_t dag_watch;
    uv_timer_t dag_debounce, dag_rescan;
    struct dag_file *files;
    size_t n_files;
    uv_timer_t sched_timer;
    bool sched_timer_on;
    struct http_server *http;   /* NULL: HTTP disabled (port 0) */
    struct engine_kube *kube;   /* NULL: Kubernetes not configured */
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
static void schedule_tick(struct engine *e);

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
        /* An unpause (or a backfill, a clear) may change what is due. */
        schedule_tick(e);
    }
}

static void on_sched_timer(uv_timer_t *h)
{
    schedule_tick(container_of(h, struct engine, sched_timer));
}

static int dag_paused_cb(void *arg, struct store_row *r)
{
    *(bool *)arg = store_col_int(r, 0) != 0 || store_col_int(r, 1) != 0;
    return 1;
}

/* Creates the runs of every due data interval, then re-arms the timer for
 * the earliest next one. */
static void schedule_tick(struct engine *e)
{
    if (e->stopping || !e->sched_timer_on)
        return;
    int64_t earliest = SCHEDULE_NEVER;
    size_t created = 0;
    struct interval iv[SCHEDULE_BATCH];
    for (size_t i = 0; i < e->n_files; i++) {
        struct dag_file *f = &e->files[i];
        if (!f->dag_id || !f->sched.cron)
            continue;
        struct kiln_err err = { 0 };
        bool paused = false;
        if (store_exec(e->st, Q_dag_paused, dag_paused_cb, &paused, &err, "s", f->dag_id) < 0) {
            LOG_E("store: %s", err.msg);
            continue;
        }
        if (paused)
            continue; /* unpausing ticks again */
        int64_t last_end = 0, next;
        bool found;
        if (store_get_int(e->st, Q_run_last_scheduled_end, &last_end, &found, &err, "s",
                          f->dag_id) < 0) {
            LOG_E("store: %s", err.msg);
            continue;
        }
        int64_t now = now_us();
        size_t n = schedule_due(&f->sched, last_end, now, iv, SCHEDULE_BATCH, &next);
        for (size_t k = 0; k < n; k++) {
            char body[512];
            snprintf(body, sizeof body,
                     "{\"op\":\"trigger\",\"dag\":\"%s\",\"run_type\":\"scheduled\","
                     "\"logical_us\":%lld,\"interval_end_us\":%lld,\"skip_existing\":true}",
                     f->dag_id, (long long)iv[k].start_us, (long long)iv[k].end_us);
            struct cmd_ctx c;
            engine_cmd_ctx(e, &c, "scheduler");
            char *result = NULL;
            kiln_err_clear(&err);
            if (cmd_apply(&c, body, &result, &err) < 0) {
                LOG_E("DAG %s: cannot create its scheduled run: %s", f->dag_id, err.msg);
                next = now + 60 * 1000000LL; /* try again in a minute */
                break;
            }
            LOG_I("DAG %s: scheduled run %s", f->dag_id, result);
            free(result);
            created++;
        }
        if (n == SCHEDULE_BATCH)
            next = now;
        if (next < earliest)
            earliest = next;
    }
    if (created) {
        struct kiln_err err = { 0 };
        if (sched_flush(e->sched, &err) < 0)
            LOG_E("commit: %s", err.msg);
    }
    if (earliest == SCHEDULE_NEVER) {
        uv_timer_stop(&e->sched_timer);
        return;
    }
    int64_t delay = (earliest - now_us()) / 1000 + 1;
    if (delay < 0)
        delay = 0;
    if (delay > SCHEDULE_MAX_SLEEP_MS)
        delay = SCHEDULE_MAX_SLEEP_MS;
    uv_timer_start(&e->sched_timer, on_sched_timer, (uint64_t)delay, 0);
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

static void sync_dags(struct engine *e, bool flush);

static void on_dag_debounce(uv_timer_t *h)
{
    sync_dags(container_of(h, struct engine, dag_debounce), true);
}

static void on_dag_rescan(uv_timer_t *h)
{
    sync_dags(container_of(h, struct engine, dag_rescan), true);
}

static void on_dag_event(uv_fs_event_t *h, const char *name, int events, int status)
{
    struct engine *e = container_of(h, struct engine, dag_watch);
    if (status < 0)
        LOG_W("watching %s: %s", e->cfg->dags, uv_strerror(status));
    if (name && !dagdir_is_dag_file(name))
        return;
    /* An editor's save is often several events: sync once they settle. */
    if (!e->stopping)
        uv_timer_start(&e->dag_debounce, on_dag_debounce, DAG_DEBOUNCE_MS, 0);
}

static void start_dag_watch(struct engine *e)
{
    uv_timer_init(e->loop, &e->dag_debounce);
    uv_timer_init(e->loop, &e->dag_rescan);
    uv_timer_start(&e->dag_rescan, on_dag_rescan, DAG_RESCAN_MS, DAG_RESCAN_MS);
    uv_fs_event_init(e->loop, &e->dag_watch);
    int rc = uv_fs_event_start(&e->dag_watch, on_dag_event, e->cfg->dags, 0);
    if (rc < 0)
        LOG_W("cannot watch %s (%s): changes are seen by the rescan every %d s",
              e->cfg->dags, uv_strerror(rc), DAG_RESCAN_MS / 1000);
    e->watching = true;
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
    struct sched_pool *pools;
    size_t n_pools;
    engine_kube_pools(o->cfg, &pools, &n_pools);
    struct sched_config sc = {
        .home = o->cfg->home, .parallelism = o->cfg->parallelism, .pools = pools,
        .n_pools = n_pools, .kill_grace_ms = o->cfg->kill_grace_ms,
        .executor_override = strcmp(o->cfg->executor, "noop") == 0 ? "noop" : NULL,
        .base_env = environ, .infra_retries = o->cfg->infra_retries,
        .infra_retry_delay_ms = o->cfg->infra_retry_delay_ms,
    };
    rc = sched_new(&e->sched, loop, e->st, &sc, err);
    free(pools);
    if (rc < 0)
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
    if (!sc.executor_override) {
        /* A cluster that cannot be reached or configured costs only the
         * Kubernetes tasks (they fail with "not available"), never the
         * daemon: a CI job inside a pod has KUBERNETES_SERVICE_HOST set. */
        struct kiln_err kerr = { 0 };
        if (engine_kube_open(&e->kube, loop, o->cfg, e->sched, &kerr) < 0)
            LOG_W("%s; the kubernetes executor is off", kerr.msg);
    }
    if (o->daemon) {
        if ((rc = open_nudge_socket(e, err)) < 0)
            goto fail;
        uv_poll_init(loop, &e->nudge, e->nudge_fd);
        uv_poll_start(&e->nudge, UV_READABLE, on_nudge);
        uv_timer_init(loop, &e->cmd_timer);
        uv_timer_start(&e->cmd_timer, on_cmd_timer, 1000, 1000);
        e->open_handles = 2;
        engine_sync_dags(e);
        start_dag_watch(e);
    }
    if ((rc = sched_recover(e->sched, err)) < 0)
        goto fail;
    if (o->daemon) {
        process_commands(e);
        /* Runs missed while no daemon ran are created now. */
        uv_timer_init(loop, &e->sched_timer);
        e->sched_timer_on = true;
        schedule_tick(e);
        /* The HTTP API last: nothing after it can fail. */
        if (o->cfg->port != 0 && (rc = http_start(&e->http, loop, o->cfg, e, err)) < 0)
            goto fail;
    }
    *out = e;
    return 0;
fail:
    /* Handles already started (the scheduler's, the executors', the
     * command inbox) are closed and their callbacks run before the memory
     * goes. */
    engine_stop(e);
    uv_run(loop, UV_RUN_DEFAULT);
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

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static struct dag_file *file_find(struct engine *e, const char *path)
{
    for (size_t i = 0; i < e->n_files; i++)
        if (strcmp(e->files[i].path, path) == 0)
            return &e->files[i];
    return NULL;
}

static const struct dag_file *file_declaring(struct engine *e, const char *dag_id,
                                             const struct dag_file *except)
{
    for (size_t i = 0; i < e->n_files; i++)
        if (&e->files[i] != except && e->files[i].dag_id &&
            strcmp(e->files[i].dag_id, dag_id) == 0)
            return &e->files[i];
    return NULL;
}

static bool same_stat(const struct dag_file *f, const struct stat *st)
{
    return f->dev == st->st_dev && f->ino == st->st_ino && f->size == st->st_size &&
           f->mtime.tv_sec == st->st_mtim.tv_sec && f->mtime.tv_nsec == st->st_mtim.tv_nsec &&
           f->ctime.tv_sec == st->st_ctim.tv_sec && f->ctime.tv_nsec == st->st_ctim.tv_nsec;
}

/* Reads, parses and records one changed file; returns 1 if it was new or
 * its content changed. */
static int load_changed(struct engine *e, struct dag_file *f)
{
    char *buf = NULL;
    size_t len = 0;
    struct kiln_err err = { 0 };
    int rc = file_read_all(f->path, &buf, &len);
    if (rc < 0) {
        LOG_W("%s: cannot read: %s", f->path, strerror(-rc));
        return 0;
    }
    char hash[65];
    sha256_hex(buf, len, hash);
    if (strcmp(hash, f->hash) == 0) {
        free(buf);
        return 0;
    }
    memcpy(f->hash, hash, sizeof hash);
    free(f->dag_id);
    f->dag_id = NULL;
    struct dag *d = NULL;
    char *msg = NULL;
    if (dag_load_buf(f->path, buf, len, &d, &err) < 0) {
        msg = xstrdup(err.msg[0] ? err.msg : "cannot load");
    } else {
        const struct dag_file *o = file_declaring(e, d->id, f);
        if (o)
            msg = xasprintf("%s: dag id '%s' is already defined in %s", f->path, d->id,
                            o->path);
    }
    int64_t now = now_us();
    store_txn_begin(e->st, &err);
    if (msg) {
        LOG_W("%s", msg);
        if (store_exec(e->st, Q_dag_set_error_by_path, NULL, NULL, &err, "ssi", f->path, msg,
                       now) < 0)
            LOG_E("store: %s", err.msg);
    } else {
        d->hash = xstrdup(hash);
        int64_t vid = 0;
        if (store_exec(e->st, Q_dag_seen, NULL, NULL, &err, "ssi", d->id, f->path, now) < 0 ||
            cmd_ensure_version(e->st, d, buf, len, &vid, &err) < 0 ||
            store_exec(e->st, Q_dag_set_version, NULL, NULL, &err, "si", d->id, vid) < 0)
            LOG_E("recording DAG %s: %s", d->id, err.msg);
        else
            LOG_I("DAG %s: version %lld (%.12s) from %s", d->id, (long long)vid, hash, f->path);
        f->dag_id = xstrdup(d->id);
        schedule_free(&f->sched);
        free(f->schedule_expr);
        f->schedule_expr = d->schedule ? xstrdup(d->schedule) : NULL;
        struct kiln_err se = { 0 };
        if (schedule_from_dag(d, &f->sched, &se) < 0)
            LOG_W("DAG %s: schedule: %s", d->id, se.msg);
    }
    free(msg);
    dag_free(d);
    free(buf);
    return 1;
}

struct dag_row {
    char *dag_id, *path;
    bool missing;
};

struct dag_rows {
    struct dag_row *v;
    size_t n;
};

static int dag_row_cb(void *arg, struct store_row *r)
{
    struct dag_rows *l = arg;
    l->v = xrealloc(l->v, (l->n + 1) * sizeof *l->v);
    l->v[l->n].dag_id = xstrdup(store_col_text(r, 0));
    l->v[l->n].path = store_col_text(r, 1) ? xstrdup(store_col_text(r, 1)) : NULL;
    l->v[l->n].missing = store_col_int(r, 2) != 0;
    l->n++;
    return 0;
}

/* DAGs registered from a file of the folder that no present file declares
 * (a deleted file, or one that now declares another id) stop running. */
static size_t mark_missing(struct engine *e, const char *prefix)
{
    struct dag_rows l = { NULL, 0 };
    struct kiln_err err = { 0 };
    size_t marked = 0, plen = strlen(prefix);
    if (store_exec(e->st, Q_dag_all, dag_row_cb, &l, &err, "") < 0)
        LOG_E("store: %s", err.msg);
    for (size_t i = 0; i < l.n; i++) {
        struct dag_row *r = &l.v[i];
        bool in_folder = r->path && strncmp(r->path, prefix, plen) == 0 &&
                         !strchr(r->path + plen, '/');
        const struct dag_file *f = r->path ? file_find(e, r->path) : NULL;
        /* A file that is there but broken still holds its DAG. */
        bool held = file_declaring(e, r->dag_id, NULL) || (f && !f->dag_id);
        if (!r->missing && in_folder && !held) {
            store_txn_begin(e->st, &err);
            if (store_exec(e->st, Q_dag_set_missing, NULL, NULL, &err, "si", r->dag_id,
                           now_us()) < 0)
                LOG_E("store: %s", err.msg);
            else
                LOG_I("DAG %s: its file %s left %s; it stops running, its history stays",
                      r->dag_id, r->path, e->cfg->dags);
            marked++;
        }
        free(r->dag_id);
        free(r->path);
    }
    free(l.v);
    return marked;
}

static void sync_dags(struct engine *e, bool flush)
{
    if (e->stopping)
        return;
    const char *dir = e->cfg->dags;
    DIR *dp = opendir(dir);
    if (dp == NULL) {
        LOG_W("DAG folder %s: %s", dir, strerror(errno));
        return;
    }
    size_t dlen = strlen(dir);
    char *prefix = xasprintf("%s%s", dir, dlen > 0 && dir[dlen - 1] == '/' ? "" : "/");
    char **paths = NULL;
    size_t n = 0;
    struct dirent *de;
    while ((de = readdir(dp)) != NULL) {
        if (!dagdir_is_dag_file(de->d_name))
            continue;
        paths = xrealloc(paths, (n + 1) * sizeof *paths);
        paths[n++] = xasprintf("%s%s", prefix, de->d_name);
    }
    closedir(dp);
    if (n)
        qsort(paths, n, sizeof *paths, cmp_str);
    for (size_t i = 0; i < e->n_files; i++)
        e->files[i].seen = false;
    size_t changed = 0;
    for (size_t i = 0; i < n; i++) {
        struct stat st;
        if (stat(paths[i], &st) < 0 || S_ISDIR(st.st_mode)) {
            free(paths[i]);
            continue;
        }
        struct dag_file *f = file_find(e, paths[i]);
        if (f && same_stat(f, &st)) {
            f->seen = true;
            free(paths[i]);
            continue;
        }
        if (!f) {
            e->files = xrealloc(e->files, (e->n_files + 1) * sizeof *e->files);
            f = &e->files[e->n_files++];
            memset(f, 0, sizeof *f);
            f->path = paths[i];
        } else {
            free(paths[i]);
        }
        f->seen = true;
        f->dev = st.st_dev;
        f->ino = st.st_ino;
        f->size = st.st_size;
        f->mtime = st.st_mtim;
        f->ctime = st.st_ctim;
        changed += (size_t)load_changed(e, f);
    }
    free(paths);
    size_t gone = 0;
    for (size_t i = 0; i < e->n_files;) {
        struct dag_file *f = &e->files[i];
        if (f->seen) {
            i++;
            continue;
        }
        free(f->path);
        free(f->dag_id);
        free(f->schedule_expr);
        schedule_free(&f->sched);
        e->files[i] = e->files[--e->n_files];
        gone++;
    }
    size_t missing = mark_missing(e, prefix);
    free(prefix);
    if (changed || gone) {
        size_t ok = 0;
        for (size_t i = 0; i < e->n_files; i++)
            ok += e->files[i].dag_id != NULL;
        LOG_I("DAG folder %s: %zu file(s) loaded or changed, %zu gone; %zu DAG(s), %zu file(s) "
              "with errors", dir, changed, gone, ok, e->n_files - ok);
    }
    if (flush && (changed || missing) && store_in_txn(e->st)) {
        struct kiln_err err = { 0 };
        if (sched_flush(e->sched, &err) < 0)
            LOG_E("commit: %s", err.msg);
    }
    if (flush && (changed || gone || missing))
        schedule_tick(e);
}

int engine_apply(struct engine *e, const char *actor, const char *body, char **result,
                 struct kiln_err *err)
{
    if (e->stopping)
        return kiln_err_set(err, KILN_ESTATE, "the daemon is stopping");
    struct cmd_ctx c;
    engine_cmd_ctx(e, &c, actor);
    int rc = cmd_apply(&c, body, result, err);
    LOG_I("command from %s: %s%s", actor, rc < 0 ? "error: " : "ok ",
          rc < 0 ? err->msg : *result);
    struct kiln_err e2 = { 0 };
    if (store_in_txn(e->st) && sched_flush(e->sched, &e2) < 0)
        LOG_E("commit: %s", e2.msg);
    schedule_tick(e);
    return rc;
}

int engine_dag_schedule(struct engine *e, const char *dag_id, const char **expr,
                        int64_t *next_us)
{
    *expr = NULL;
    *next_us = 0;
    const struct dag_file *f = file_declaring(e, dag_id, NULL);
    if (!f || !f->sched.cron)
        return 0;
    *expr = f->schedule_expr;
    int64_t last_end = 0, next = SCHEDULE_NEVER;
    bool found;
    if (store_get_int(e->st, Q_run_last_scheduled_end, &last_end, &found, NULL, "s",
                      dag_id) < 0)
        return 1;
    struct interval iv[1];
    int64_t now = now_us();
    if (schedule_due(&f->sched, last_end, now, iv, 1, &next) > 0)
        next = now;
    if (next != SCHEDULE_NEVER)
        *next_us = next;
    return 1;
}

void engine_sync_dags(struct engine *e)
{
    sync_dags(e, false);
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
    if (e->http)
        http_stop(e->http);
    if (e->open_handles) {
        uv_close((uv_handle_t *)&e->nudge, on_engine_handle_closed);
        uv_close((uv_handle_t *)&e->cmd_timer, on_engine_handle_closed);
        e->open_handles = 0;
    }
    if (e->sched_timer_on) {
        uv_close((uv_handle_t *)&e->sched_timer, on_engine_handle_closed);
        e->sched_timer_on = false;
    }
    if (e->watching) {
        uv_close((uv_handle_t *)&e->dag_watch, on_engine_handle_closed);
        uv_close((uv_handle_t *)&e->dag_debounce, on_engine_handle_closed);
        uv_close((uv_handle_t *)&e->dag_rescan, on_engine_handle_closed);
        e->watching = false;
    }
    if (e->sched)
        sched_close(e->sched, NULL, NULL);
    if (e->local)
        e->local->ops->close(e->local, on_exec_closed);
    if (e->noop)
        e->noop->ops->close(e->noop, on_exec_closed);
    e->local = e->noop = NULL;
    engine_kube_close(e->kube);
    e->kube = NULL;
}

void engine_free(struct engine *e)
{
    if (!e)
        return;
    http_free(e->http);
    sched_free(e->sched);
    store_close(e->st);
    for (size_t i = 0; i < e->n_files; i++) {
        free(e->files[i].path);
        free(e->files[i].dag_id);
        free(e->files[i].schedule_expr);
        schedule_free(&e->files[i].sched);
    }
    free(e->files);
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
