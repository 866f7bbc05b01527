/* local: the daemon's side of the local executor.
 *
 * Tasks are spawned by the shepherd (executors/shepherd.c), one per home
 * folder, over HOME/shepherd.sock; this file keeps the connection on the
 * daemon's libuv loop (a uv_poll_t on a non-blocking SOCK_SEQPACKET socket,
 * with a queue for what the socket cannot take at once) and turns the
 * shepherd's replies into executor callbacks.
 *
 * Per task: one SPAWN out, STARTED and EXITED back, no timer, no fsync, no
 * mkdir.  All paths are made absolute here (relative ones are relative to the
 * daemon's working directory, as is a NULL cwd), because the shepherd runs in
 * "/" and may outlive this daemon.
 *
 * Connecting: if HOME/shepherd.sock refuses (or is missing), the shepherd is
 * started with posix_spawn ("self_exe shepherd --home HOME", its own
 * session) and this process waits for it; that parent exits once the socket
 * listens (the real shepherd is its forked child), so connecting right after
 * needs no polling.  A busy lock means another shepherd is starting or
 * exiting: retried for up to 5 s.  This blocks the loop, but only at start-up
 * and after the shepherd died.
 *
 * Adoption of a try (adopt(), and every in-flight try after the connection
 * dropped): its record in the shepherd's journal, if there is one, is the
 * answer; otherwise the shepherd is asked.  If it does not know the try: the
 * journal again (the record may have been appended meanwhile), else an
 * existing log file means the try reached a shepherd that died without
 * recording its end (lost), else it was provably never started: a try this
 * executor start()ed is then simply sent again (its encoded request is kept
 * until acknowledged); an adopted one is reported with never_started.  How
 * the journal is read, and why adoptions wait for the next loop turn, is
 * told above journal_refresh().
 *
 * Results are never delivered from inside start()/adopt(): those found
 * without asking the shepherd go through a uv_idle_t to the next loop turn.
 *
 * Requirements on the caller: log_path must be unique per try and created
 * only by the executor (its existence is the "reached a shepherd" marker);
 * the daemon must not reap children it did not start (no waitpid(-1)). */
#include "executor.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "shepherd_proto.h"
#include "util.h"

extern char **environ;

#define CONNECT_WAIT_US (5 * 1000000)

/* LT_ADOPTING: adopt()ed, waiting for the next loop turn (adopt_batch). */
enum { LT_SPAWNING = 1, LT_RUNNING, LT_QUERYING, LT_ADOPTING };

struct ltry {
    struct shp_map_node node;       /* key: try_id */
    int state;
    bool cancel_wanted;
    uint64_t kill_gen;              /* connection the KILL went out on */
    int64_t grace_ms;
    char *spawn_msg;                /* start()ed tries, until the shepherd answers */
    size_t spawn_len;
    struct shp_exit *rec;           /* its journal record, once read */
    char log_path[];
};

struct outmsg {
    struct outmsg *next;
    size_t len, off;
    char buf[];
};

struct deferred {
    struct deferred *next;
    struct exec_result res;
};

struct exec_local;

struct conn {
    uv_poll_t poll;
    int fd;
    int events;
    bool broken;
    struct exec_local *ex;
    struct shp_rx rx;
};

struct exec_local {
    struct executor base;
    char *home, *self_exe, *sock_path, *cwd;
    struct conn *conn;
    uint64_t conn_gen;
    int shepherd_pid;
    struct outmsg *oq_head, *oq_tail;
    struct deferred *dq_head, *dq_tail;
    uv_idle_t idle;
    struct shp_map tries;
    bool adopting;                  /* some tries are LT_ADOPTING */
    /* The journal as read so far: jnl_fd follows the file that was
     * jnl_path when it was opened, from jnl_off, the first byte not parsed. */
    char *jnl_path, *jnl_old_path;
    bool jnl_started;
    int jnl_fd;
    dev_t jnl_dev;
    ino_t jnl_ino;
    int64_t jnl_off;
    char *rxbuf;
    int live_handles;
    bool closing;
    void (*close_cb)(struct executor *ex);
};

static void on_poll(uv_poll_t *h, int status, int events);

/* ---- tries ------------------------------------------------------------- */

static struct ltry *try_find(struct exec_local *ex, int64_t try_id)
{
    struct shp_map_node *n = shp_map_get(&ex->tries, try_id);
    return n ? container_of(n, struct ltry, node) : NULL;
}

static struct ltry *try_new(struct exec_local *ex, int64_t try_id, const char *log_path)
{
    size_t ln = strlen(log_path) + 1;
    struct ltry *t = xcalloc(1, sizeof *t + ln);
    t->node.key = try_id;
    memcpy(t->log_path, log_path, ln);
    shp_map_put(&ex->tries, &t->node);
    return t;
}

static void try_free(struct exec_local *ex, struct ltry *t)
{
    shp_map_del(&ex->tries, t->node.key);
    free(t->spawn_msg);
    free(t->rec);
    free(t);
}

/* Removes the try, then reports: the callback may start new tries. */
static void deliver_done(struct exec_local *ex, struct ltry *t, const struct exec_result *res)
{
    try_free(ex, t);
    if (ex->base.on_done)
        ex->base.on_done(ex->base.cb_arg, res);
}

static void result_from_exit(int64_t try_id, const struct shp_exit *e, struct exec_result *r)
{
    memset(r, 0, sizeof *r);
    r->try_id = try_id;
    r->start_us = e->start_us;
    r->end_us = e->end_us;
    r->exit_code = e->exit_code;
    if (e->pid == 0) {
        r->spawn_failed = true;
        snprintf(r->reason, sizeof r->reason, "%s", e->reason);
    } else if (e->term_signal) {
        r->term_signal = e->term_signal;
        snprintf(r->reason, sizeof r->reason, "killed by signal %d (%s)", e->term_signal,
                 strsignal(e->term_signal));
    }
}

static void adopt_batch(struct exec_local *ex);

static void on_idle(uv_idle_t *h)
{
    struct exec_local *ex = container_of(h, struct exec_local, idle);
    uv_idle_stop(h);
    if (ex->adopting && !ex->closing)
        adopt_batch(ex);
    struct deferred *d = ex->dq_head;
    ex->dq_head = ex->dq_tail = NULL;
    while (d) {
        struct deferred *next = d->next;
        if (!ex->closing && ex->base.on_done)
            ex->base.on_done(ex->base.cb_arg, &d->res);
        free(d);
        d = next;
    }
}

/* Queues a result for the next loop turn. */
static void defer_done(struct exec_local *ex, const struct exec_result *res)
{
    struct deferred *d = xmalloc(sizeof *d);
    d->next = NULL;
    d->res = *res;
    if (ex->dq_tail)
        ex->dq_tail->next = d;
    else
        ex->dq_head = d;
    ex->dq_tail = d;
    if (!uv_is_active((uv_handle_t *)&ex->idle))
        uv_idle_start(&ex->idle, on_idle);
}

/* ---- connection -------------------------------------------------------- */

static void conn_update_events(struct conn *c)
{
    int want = UV_READABLE | (c->ex->oq_head ? UV_WRITABLE : 0);
    if (want != c->events) {
        c->events = want;
        uv_poll_start(&c->poll, want, on_poll);
    }
}

/* A send failed for good: shut the socket down so that the poll callback
 * sees end-of-stream and runs the one reconnect path. */
static void conn_fail(struct conn *c)
{
    if (!c->broken) {
        c->broken = true;
        shutdown(c->fd, SHUT_RDWR);
    }
}

static void outq_clear(struct exec_local *ex)
{
    while (ex->oq_head) {
        struct outmsg *o = ex->oq_head;
        ex->oq_head = o->next;
        free(o);
    }
    ex->oq_tail = NULL;
}

static void conn_send(struct exec_local *ex, const void *buf, size_t len)
{
    struct conn *c = ex->conn;
    if (c == NULL || c->broken)
        return;
    size_t off = 0;
    if (ex->oq_head == NULL) {
        int rc = shp_send(c->fd, buf, len, &off);
        if (rc == 0)
            return;
        if (rc != -EAGAIN) {
            conn_fail(c);
            return;
        }
    }
    struct outmsg *o = xmalloc(sizeof *o + len);
    o->next = NULL;
    o->len = len;
    o->off = off;
    memcpy(o->buf, buf, len);
    if (ex->oq_tail)
        ex->oq_tail->next = o;
    else
        ex->oq_head = o;
    ex->oq_tail = o;
    conn_update_events(c);
}

static void conn_flush(struct exec_local *ex, struct conn *c)
{
    while (ex->oq_head && !c->broken) {
        struct outmsg *o = ex->oq_head;
        int rc = shp_send(c->fd, o->buf, o->len, &o->off);
        if (rc == -EAGAIN)
            break;
        if (rc < 0) {
            conn_fail(c);
            break;
        }
        ex->oq_head = o->next;
        if (!ex->oq_head)
            ex->oq_tail = NULL;
        free(o);
    }
    conn_update_events(c);
}

static void send_simple(struct exec_local *ex, uint32_t type, int64_t try_id, int64_t v0)
{
    struct shp_msg h = { .type = type, .nstr = 0, .try_id = try_id, .v = { v0 } };
    conn_send(ex, &h, sizeof h);
}

static void send_kill(struct exec_local *ex, struct ltry *t)
{
    send_simple(ex, SHP_KILL, t->node.key, t->grace_ms);
    t->kill_gen = ex->conn_gen;
}

static void finish_close(struct exec_local *ex);

static void handle_closed(struct exec_local *ex)
{
    ex->live_handles--;
    if (ex->closing && ex->live_handles == 0)
        finish_close(ex);
}

static void conn_closed(uv_handle_t *h)
{
    struct conn *c = container_of((uv_poll_t *)h, struct conn, poll);
    struct exec_local *ex = c->ex;
    close(c->fd);
    shp_rx_free(&c->rx);
    free(c);
    handle_closed(ex);
}

static void conn_close(struct exec_local *ex)
{
    struct conn *c = ex->conn;
    if (c == NULL)
        return;
    ex->conn = NULL;
    outq_clear(ex);
    uv_poll_stop(&c->poll);
    uv_close((uv_handle_t *)&c->poll, conn_closed);
}

static int conn_attach(struct exec_local *ex, int fd)
{
    struct conn *c = xcalloc(1, sizeof *c);
    c->fd = fd;
    c->ex = ex;
    shp_rx_init(&c->rx);
    int rc = uv_poll_init(ex->base.loop, &c->poll, fd);
    if (rc < 0) {
        close(fd);
        free(c);
        return rc;
    }
    ex->live_handles++;
    ex->conn = c;
    ex->conn_gen++;
    conn_update_events(c);
    return 0;
}

static int try_connect(struct exec_local *ex)
{
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -errno;
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    int dir_fd = -1;
    if (strlen(ex->sock_path) < sizeof sa.sun_path) {
        memcpy(sa.sun_path, ex->sock_path, strlen(ex->sock_path) + 1);
    } else {
        /* Too long for sun_path: reach it through the folder's descriptor. */
        dir_fd = open(ex->home, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (dir_fd < 0) {
            int e = -errno;
            close(fd);
            return e;
        }
        snprintf(sa.sun_path, sizeof sa.sun_path, "/proc/self/fd/%d/shepherd.sock", dir_fd);
    }
    int rc = connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0 ? 0 : -errno;
    if (dir_fd >= 0)
        close(dir_fd);
    if (rc == 0) {
        struct ucred cr;
        socklen_t crl = sizeof cr;
        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &crl) < 0 || cr.uid != geteuid())
            rc = -EPERM;
    }
    if (rc < 0) {
        close(fd);
        return rc;
    }
    int sz = 1 << 20;
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
    return fd;
}

static void sleep_ms(int ms)
{
    struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000 };
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
    }
}

/* Starts "self_exe shepherd --home HOME" and waits for that process, which
 * exits once the socket listens.  Returns its exit status or < 0. */
static int spawn_shepherd(struct exec_local *ex, struct kiln_err *err)
{
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK |
                                    POSIX_SPAWN_SETSIGDEF);
    sigset_t none, def;
    sigemptyset(&none);
    sigemptyset(&def);
    int sigs[] = { SIGPIPE, SIGCHLD, SIGHUP, SIGINT, SIGTERM, SIGQUIT };
    for (size_t i = 0; i < ARRAY_LEN(sigs); i++)
        sigaddset(&def, sigs[i]);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &def);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    char *argv[] = { ex->self_exe, "shepherd", "--home", ex->home, NULL };
    pid_t pid;
    int rc = posix_spawn(&pid, ex->self_exe, &fa, &attr, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    if (rc != 0)
        return kiln_err_set(err, KILN_EEXEC, "cannot start the task shepherd (%s): %s",
                            ex->self_exe, strerror(rc));
    int status;
    pid_t w;
    do
        w = waitpid(pid, &status, 0);
    while (w < 0 && errno == EINTR);
    if (w < 0)
        return 0;    /* reaped elsewhere: just try to connect */
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static int connect_shepherd(struct exec_local *ex, struct kiln_err *err)
{
    int64_t deadline = mono_us() + CONNECT_WAIT_US;
    for (;;) {
        int fd = try_connect(ex);
        if (fd >= 0) {
            int rc = conn_attach(ex, fd);
            if (rc < 0)
                return kiln_err_set(err, KILN_EEXEC, "cannot watch the shepherd socket: %s",
                                    uv_strerror(rc));
            return 0;
        }
        if (fd != -ENOENT && fd != -ECONNREFUSED && fd != -EAGAIN)
            return kiln_err_set(err, KILN_EEXEC, "cannot connect to the task shepherd at %s: %s",
                                ex->sock_path, strerror(-fd));
        if (mono_us() > deadline)
            return kiln_err_set(err, KILN_EEXEC,
                                "the task shepherd did not come up within 5 s: a shepherd holds "
                                "%s/shepherd.lock (its pid is in that file) but does not answer "
                                "on %s; see %s/shepherd.log",
                                ex->home, ex->sock_path, ex->home);
        if (fd == -EAGAIN) {    /* its backlog is full */
            sleep_ms(1);
            continue;
        }
        int st = spawn_shepherd(ex, err);
        if (st < 0)
            return st;
        if (st == SHP_EXIT_BUSY)
            sleep_ms(10);    /* another shepherd is starting or exiting */
        else if (st != 0)
            return kiln_err_set(err, KILN_EEXEC, "the task shepherd (%s shepherd --home %s) "
                                "failed to start (status %d); see %s/shepherd.log",
                                ex->self_exe, ex->home, st, ex->home);
    }
}

/* ---- the journal ------------------------------------------------------- */

/* The shepherd appends one line per ended try to HOME/shepherd.journal
 * (format in shepherd_proto.h) before it reports the end.  It is read only
 * when an answer is needed: adoption, an UNKNOWN from a shepherd, a lost
 * connection; a try that ends while the connection holds is reported by
 * EXITED and costs no read.  The reader follows the file through a
 * descriptor, from the first byte it has not parsed, so a read takes what
 * was appended since the last one; the first read takes the rotated
 * shepherd.journal.1 first.  Only complete lines count: the last one may be
 * half written (or torn by a crash) and waits for the next read; a malformed
 * one is skipped with a warning.
 *
 * Memory: a record is kept only for a try this executor tracks when the line
 * is parsed, on the ltry, and freed with it; so at most one record per try
 * in flight, however long the journal, and none once the daemon is done
 * with a try.  The price: a line parsed before its try was tracked is not
 * kept, and adopt() starts tracking tries whose lines may have been passed
 * long ago.  So adoptions wait for the next loop turn (a restarted daemon
 * adopts all its tries in one turn) and the journal is then read again from
 * its start, once for all of them (adopt_batch).  Tries start()ed here are
 * tracked before their lines can exist. */

#define JOURNAL_CHUNK 65536

static void journal_line(struct exec_local *ex, const char *line, size_t len, const char *path,
                         int64_t off)
{
    int64_t try_id;
    struct shp_exit e;
    if (shp_journal_parse(line, len, &try_id, &e) < 0) {
        LOG_W("local executor: %s: skipping a malformed line at offset %" PRId64, path, off);
        return;
    }
    struct ltry *t = try_find(ex, try_id);
    if (t && t->rec == NULL) {
        t->rec = xmalloc(sizeof *t->rec);
        *t->rec = e;
    }
}

/* Parses the complete lines of fd from *off on and moves *off past them. */
static void journal_scan(struct exec_local *ex, int fd, const char *path, int64_t *off)
{
    char *buf = xmalloc(JOURNAL_CHUNK);
    for (;;) {
        ssize_t r = pread(fd, buf, JOURNAL_CHUNK, (off_t)*off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            LOG_W("local executor: cannot read %s: %s", path, strerror(errno));
            break;
        }
        size_t used = 0;
        const char *nl;
        while ((nl = memchr(buf + used, '\n', (size_t)r - used)) != NULL) {
            size_t end = (size_t)(nl - buf);
            journal_line(ex, buf + used, end - used, path, *off + (int64_t)used);
            used = end + 1;
        }
        if (used == 0 && r == JOURNAL_CHUNK) {
            /* No shepherd writes such a line: skip it by chunks. */
            LOG_W("local executor: %s: skipping %d bytes without a line end at offset %" PRId64,
                  path, JOURNAL_CHUNK, *off);
            used = JOURNAL_CHUNK;
        }
        *off += (int64_t)used;
        if (r < JOURNAL_CHUNK)
            break;    /* the end, perhaps with half a line */
    }
    free(buf);
}

static void journal_scan_whole(struct exec_local *ex, const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno != ENOENT)
            LOG_W("local executor: cannot open %s: %s", path, strerror(errno));
        return;
    }
    int64_t off = 0;
    journal_scan(ex, fd, path, &off);
    close(fd);
}

static void journal_follow_new(struct exec_local *ex)
{
    struct stat st;
    ex->jnl_off = 0;
    ex->jnl_fd = open(ex->jnl_path, O_RDONLY | O_CLOEXEC);
    if (ex->jnl_fd < 0)
        return;    /* no shepherd has run here yet */
    if (fstat(ex->jnl_fd, &st) < 0) {
        close(ex->jnl_fd);
        ex->jnl_fd = -1;
        return;
    }
    ex->jnl_dev = st.st_dev;
    ex->jnl_ino = st.st_ino;
    journal_scan(ex, ex->jnl_fd, ex->jnl_path, &ex->jnl_off);
}

static bool journal_is_ours(const struct exec_local *ex, const struct stat *st)
{
    return st->st_dev == ex->jnl_dev && st->st_ino == ex->jnl_ino;
}

/* Reads what was appended since the last read (see above). */
static void journal_refresh(struct exec_local *ex)
{
    if (!ex->jnl_started) {
        ex->jnl_started = true;
        journal_scan_whole(ex, ex->jnl_old_path);
        journal_follow_new(ex);
        return;
    }
    if (ex->jnl_fd >= 0) {
        journal_scan(ex, ex->jnl_fd, ex->jnl_path, &ex->jnl_off);
        struct stat st;
        if (stat(ex->jnl_path, &st) == 0 && journal_is_ours(ex, &st))
            return;
        /* A shepherd that started since renamed it to .1 (or it was removed).
         * It was renamed after its writer died, and so after any line read
         * above or not: read it to its end once more.  If .1 is yet another
         * file, a second rotation came between two reads: read that too. */
        journal_scan(ex, ex->jnl_fd, ex->jnl_path, &ex->jnl_off);
        if (stat(ex->jnl_old_path, &st) == 0 && !journal_is_ours(ex, &st))
            journal_scan_whole(ex, ex->jnl_old_path);
        close(ex->jnl_fd);
        ex->jnl_fd = -1;
    }
    journal_follow_new(ex);
}

/* Forgets the position, so the next read starts from the beginning. */
static void journal_reset(struct exec_local *ex)
{
    if (ex->jnl_fd >= 0)
        close(ex->jnl_fd);
    ex->jnl_fd = -1;
    ex->jnl_off = 0;
    ex->jnl_started = false;
}

/* ---- messages from the shepherd ---------------------------------------- */

static void resolve_unknown(struct exec_local *ex, struct ltry *t)
{
    struct exec_result res = { .try_id = t->node.key };
    journal_refresh(ex);
    if (t->rec) {
        result_from_exit(t->node.key, t->rec, &res);
        deliver_done(ex, t, &res);
        return;
    }
    if (access(t->log_path, F_OK) == 0 || errno != ENOENT) {
        res.lost = true;
        snprintf(res.reason, sizeof res.reason,
                 "task process lost: its supervisor exited without recording a status");
        deliver_done(ex, t, &res);
        return;
    }
    if (t->spawn_msg) {
        /* Provably never reached a shepherd: send it again. */
        t->state = LT_SPAWNING;
        conn_send(ex, t->spawn_msg, t->spawn_len);
        if (t->cancel_wanted)
            send_kill(ex, t);
        return;
    }
    res.never_started = true;
    snprintf(res.reason, sizeof res.reason, "never started");
    deliver_done(ex, t, &res);
}

static void handle_msg(struct exec_local *ex, const struct shp_view *m)
{
    struct ltry *t = m->h.type == SHP_HELLO ? NULL : try_find(ex, m->h.try_id);
    struct exec_result res = { .try_id = m->h.try_id };
    switch (m->h.type) {
    case SHP_HELLO:
        ex->shepherd_pid = (int)m->h.v[0];
        break;
    case SHP_STARTED: {
        if (t == NULL)
            return;
        free(t->spawn_msg);
        t->spawn_msg = NULL;
        t->state = LT_RUNNING;
        if (t->cancel_wanted && t->kill_gen != ex->conn_gen)
            send_kill(ex, t);
        char id[32];
        snprintf(id, sizeof id, "pid:%" PRId64, m->h.v[0]);
        if (ex->base.on_started)
            ex->base.on_started(ex->base.cb_arg, t->node.key, id, m->h.v[1]);
        break;
    }
    case SHP_EXITED:
        if (t == NULL)
            return;
        res.exit_code = (int)m->h.v[0];
        res.term_signal = (int)m->h.v[1];
        res.start_us = m->h.v[2];
        res.end_us = m->h.v[3];
        if (res.term_signal)
            snprintf(res.reason, sizeof res.reason, "killed by signal %d (%s)", res.term_signal,
                     strsignal(res.term_signal));
        deliver_done(ex, t, &res);
        break;
    case SHP_FAILED:
        if (t == NULL)
            return;
        res.spawn_failed = true;
        res.exit_code = m->h.v[0] == ENOENT || m->h.v[0] == ENOTDIR ? 127 : 126;
        res.start_us = m->h.v[2];
        res.end_us = m->h.v[3];
        snprintf(res.reason, sizeof res.reason, "%s", m->h.nstr ? m->str : "cannot execute");
        deliver_done(ex, t, &res);
        break;
    case SHP_UNKNOWN:
        if (t && t->state == LT_QUERYING)
            resolve_unknown(ex, t);
        break;
    default:
        LOG_W("local executor: ignoring a shepherd message of type %u", m->h.type);
        break;
    }
}

/* After the connection dropped: every tracked try is adopted again (those
 * still LT_ADOPTING are left to adopt_batch). Results found in the journal
 * are deferred, since a callback may start tries (and so grow the table)
 * while it is being walked. */
static void readopt_all(struct exec_local *ex, const char *fail_reason)
{
    journal_refresh(ex);
    for (size_t i = 0; i < ((size_t)1 << ex->tries.bits); i++) {
        struct shp_map_node *n = ex->tries.b[i], *next;
        for (; n; n = next) {
            next = n->next;
            struct ltry *t = container_of(n, struct ltry, node);
            struct exec_result res;
            if (t->state == LT_ADOPTING)
                continue;
            if (t->rec) {
                result_from_exit(t->node.key, t->rec, &res);
            } else if (fail_reason) {
                memset(&res, 0, sizeof res);
                res.try_id = t->node.key;
                res.lost = true;
                snprintf(res.reason, sizeof res.reason,
                         "lost contact with the task shepherd: %s", fail_reason);
            } else {
                t->state = LT_QUERYING;
                send_simple(ex, SHP_QUERY, t->node.key, 0);
                continue;
            }
            try_free(ex, t);
            defer_done(ex, &res);
        }
    }
}

static void disconnect(struct exec_local *ex, const char *why)
{
    conn_close(ex);
    if (ex->closing)
        return;
    LOG_W("local executor: lost the connection to the task shepherd (%s); reconnecting", why);
    struct kiln_err err = { 0 };
    if (connect_shepherd(ex, &err) == 0) {
        readopt_all(ex, NULL);
    } else {
        LOG_E("local executor: %s", err.msg);
        readopt_all(ex, err.msg);
    }
}

static void on_poll(uv_poll_t *h, int status, int events)
{
    struct conn *c = container_of(h, struct conn, poll);
    struct exec_local *ex = c->ex;
    if (status < 0) {
        /* libuv reports POLLERR as UV_EBADF; on this socket it means the
         * connection was reset (e.g. accepted by a shepherd that was dying). */
        disconnect(ex, status == UV_EBADF ? "connection reset" : uv_strerror(status));
        return;
    }
    if (events & UV_WRITABLE)
        conn_flush(ex, c);
    while (ex->conn == c && !ex->closing) {
        struct shp_view m;
        int rc = shp_recv(c->fd, &c->rx, ex->rxbuf, &m);
        if (rc == 1) {
            handle_msg(ex, &m);
        } else if (rc == -EAGAIN) {
            return;
        } else if (rc == -EBADMSG) {
            LOG_W("local executor: ignoring a malformed shepherd message");
        } else if (rc < 0) {
            disconnect(ex, rc == -EPIPE ? "it closed the connection" : strerror(-rc));
            return;
        }
    }
}

/* ---- executor operations ----------------------------------------------- */

static int abs_path(const struct exec_local *ex, const char *p, char *out, size_t n)
{
    int r = p[0] == '/' ? snprintf(out, n, "%s", p) : snprintf(out, n, "%s/%s", ex->cwd, p);
    return r < 0 || (size_t)r >= n ? -ENAMETOOLONG : 0;
}

static char *encode_spawn(int64_t try_id, const char *cwd, const char *log_path,
                          char *const *argv, char *const *envp, size_t *len)
{
    size_t argc = 0, envc = 0;
    size_t total = sizeof(struct shp_msg) + strlen(cwd) + strlen(log_path) + 2;
    for (; argv[argc]; argc++)
        total += strlen(argv[argc]) + 1;
    for (; envp[envc]; envc++)
        total += strlen(envp[envc]) + 1;
    struct shp_msg h = { .type = SHP_SPAWN, .nstr = (uint32_t)(2 + argc + envc),
                         .try_id = try_id, .v = { (int64_t)argc, (int64_t)envc } };
    char *buf = xmalloc(total);
    memcpy(buf, &h, sizeof h);
    char *p = buf + sizeof h;
    p = stpcpy(p, cwd) + 1;
    p = stpcpy(p, log_path) + 1;
    for (size_t i = 0; i < argc; i++)
        p = stpcpy(p, argv[i]) + 1;
    for (size_t i = 0; i < envc; i++)
        p = stpcpy(p, envp[i]) + 1;
    *len = total;
    return buf;
}

static int check_spec(struct exec_local *ex, const struct exec_spec *spec, char *log_path,
                      struct kiln_err *err)
{
    if (ex->closing)
        return kiln_err_set(err, KILN_ESTATE, "the local executor is closing");
    if (spec->log_path == NULL || !spec->log_path[0])
        return kiln_err_set(err, KILN_EINVALID, "try %" PRId64 ": no log path", spec->try_id);
    if (try_find(ex, spec->try_id))
        return kiln_err_set(err, KILN_ESTATE, "try %" PRId64 " is already tracked",
                            spec->try_id);
    if (abs_path(ex, spec->log_path, log_path, PATH_MAX) < 0)
        return kiln_err_set(err, -ENAMETOOLONG, "try %" PRId64 ": path too long",
                            spec->try_id);
    return 0;
}

static int local_start(struct executor *base, const struct exec_spec *spec, struct kiln_err *err)
{
    struct exec_local *ex = (struct exec_local *)base;
    char log_path[PATH_MAX], cwd[PATH_MAX];
    int rc = check_spec(ex, spec, log_path, err);
    if (rc < 0)
        return rc;
    if (spec->argv == NULL || spec->argv[0] == NULL)
        return kiln_err_set(err, KILN_EINVALID, "try %" PRId64 ": empty command", spec->try_id);
    if (abs_path(ex, spec->cwd ? spec->cwd : ex->cwd, cwd, sizeof cwd) < 0)
        return kiln_err_set(err, -ENAMETOOLONG, "try %" PRId64 ": working directory too long",
                            spec->try_id);
    if (ex->conn == NULL && (rc = connect_shepherd(ex, err)) < 0)
        return rc;
    struct ltry *t = try_new(ex, spec->try_id, log_path);
    t->state = LT_SPAWNING;
    t->spawn_msg = encode_spawn(spec->try_id, cwd, log_path, spec->argv,
                                spec->envp ? spec->envp : environ, &t->spawn_len);
    conn_send(ex, t->spawn_msg, t->spawn_len);
    return 0;
}

static int local_cancel(struct executor *base, int64_t try_id, int64_t grace_ms)
{
    struct exec_local *ex = (struct exec_local *)base;
    struct ltry *t = try_find(ex, try_id);
    if (t == NULL)
        return KILN_ENOTFOUND;
    t->cancel_wanted = true;
    t->grace_ms = grace_ms;
    if (ex->conn)
        send_kill(ex, t);
    return 0;
}

/* Only records the try: adopt_batch() answers on the next loop turn. */
static int local_adopt(struct executor *base, const struct exec_spec *spec,
                       const char *executor_id, struct kiln_err *err)
{
    struct exec_local *ex = (struct exec_local *)base;
    char log_path[PATH_MAX];
    int rc = check_spec(ex, spec, log_path, err);
    if (rc < 0)
        return rc;
    struct ltry *t = try_new(ex, spec->try_id, log_path);
    t->state = LT_ADOPTING;
    ex->adopting = true;
    if (!uv_is_active((uv_handle_t *)&ex->idle))
        uv_idle_start(&ex->idle, on_idle);
    return 0;
}

/* Answers the tries adopt() recorded since the last loop turn: the journal is
 * read from its start once for all of them (see above journal_refresh), and
 * the shepherd is asked about those it has no line for. */
static void adopt_batch(struct exec_local *ex)
{
    ex->adopting = false;
    journal_reset(ex);
    journal_refresh(ex);
    struct kiln_err err = { 0 };
    bool unreachable = false;
    for (size_t i = 0; i < ((size_t)1 << ex->tries.bits); i++) {
        struct shp_map_node *n = ex->tries.b[i], *next;
        for (; n; n = next) {
            next = n->next;
            struct ltry *t = container_of(n, struct ltry, node);
            if (t->state != LT_ADOPTING)
                continue;
            struct exec_result res;
            if (t->rec) {
                result_from_exit(t->node.key, t->rec, &res);
            } else {
                if (ex->conn == NULL && !unreachable && connect_shepherd(ex, &err) < 0) {
                    LOG_E("local executor: %s", err.msg);
                    unreachable = true;
                }
                if (!unreachable) {
                    t->state = LT_QUERYING;
                    send_simple(ex, SHP_QUERY, t->node.key, 0);
                    if (t->cancel_wanted && t->kill_gen != ex->conn_gen)
                        send_kill(ex, t);
                    continue;
                }
                memset(&res, 0, sizeof res);
                res.try_id = t->node.key;
                res.lost = true;
                snprintf(res.reason, sizeof res.reason, "could not re-attach: %.200s", err.msg);
            }
            try_free(ex, t);
            defer_done(ex, &res);
        }
    }
}

static void finish_close(struct exec_local *ex)
{
    for (size_t i = 0; i < ((size_t)1 << ex->tries.bits); i++) {
        struct shp_map_node *n = ex->tries.b[i], *next;
        for (; n; n = next) {
            next = n->next;
            struct ltry *t = container_of(n, struct ltry, node);
            free(t->spawn_msg);
            free(t->rec);
            free(t);
        }
    }
    shp_map_free(&ex->tries);
    journal_reset(ex);
    free(ex->jnl_path);
    free(ex->jnl_old_path);
    while (ex->dq_head) {
        struct deferred *d = ex->dq_head;
        ex->dq_head = d->next;
        free(d);
    }
    outq_clear(ex);
    free(ex->rxbuf);
    free(ex->home);
    free(ex->self_exe);
    free(ex->sock_path);
    free(ex->cwd);
    void (*cb)(struct executor *) = ex->close_cb;
    if (cb)
        cb(&ex->base);
    free(ex);
}

static void idle_closed(uv_handle_t *h)
{
    handle_closed(container_of((uv_idle_t *)h, struct exec_local, idle));
}

/* Running tasks are left alone: the next daemon adopts them. */
static void local_close(struct executor *base, void (*done_cb)(struct executor *ex))
{
    struct exec_local *ex = (struct exec_local *)base;
    if (ex->closing)
        return;
    ex->closing = true;
    ex->close_cb = done_cb;
    conn_close(ex);
    uv_close((uv_handle_t *)&ex->idle, idle_closed);
}

static const struct executor_ops local_ops = {
    .name = "local",
    .start = local_start,
    .cancel = local_cancel,
    .adopt = local_adopt,
    .close = local_close,
};

static void free_unconnected(struct exec_local *ex)
{
    shp_map_free(&ex->tries);
    free(ex->jnl_path);
    free(ex->jnl_old_path);
    free(ex->rxbuf);
    free(ex->home);
    free(ex->self_exe);
    free(ex->sock_path);
    free(ex->cwd);
    free(ex);
}

int exec_local_new(struct executor **out, uv_loop_t *loop, const char *home,
                   const char *self_exe, struct kiln_err *err)
{
    *out = NULL;
    if (home == NULL || !home[0] || self_exe == NULL || !self_exe[0])
        return kiln_err_set(err, KILN_EINVALID, "local executor: home and self_exe are required");
    struct exec_local *ex = xcalloc(1, sizeof *ex);
    ex->base.ops = &local_ops;
    ex->base.loop = loop;
    char buf[PATH_MAX];
    if (getcwd(buf, sizeof buf) == NULL) {
        int e = -errno;
        free(ex);
        return kiln_err_set(err, e, "local executor: getcwd: %s", strerror(-e));
    }
    ex->cwd = xstrdup(buf);
    int rc = mkdir_p(home, 0700);
    if (rc < 0) {
        kiln_err_set(err, rc, "cannot create %s: %s", home, strerror(-rc));
        free_unconnected(ex);
        return rc;
    }
    ex->home = home[0] == '/' ? xstrdup(home) : xasprintf("%s/%s", ex->cwd, home);
    ex->self_exe = self_exe[0] == '/' ? xstrdup(self_exe)
                                      : xasprintf("%s/%s", ex->cwd, self_exe);
    ex->sock_path = xasprintf("%s/shepherd.sock", ex->home);
    ex->jnl_path = xasprintf("%s/" SHP_JOURNAL, ex->home);
    ex->jnl_old_path = xasprintf("%s/" SHP_JOURNAL_OLD, ex->home);
    ex->jnl_fd = -1;
    shp_map_init(&ex->tries);
    ex->rxbuf = xmalloc(SHP_PKT_BUF);
    rc = connect_shepherd(ex, err);
    if (rc < 0) {
        free_unconnected(ex);
        return rc;
    }
    uv_idle_init(loop, &ex->idle);
    ex->live_handles++;
    *out = &ex->base;
    return 0;
}
