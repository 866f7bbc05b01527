/* shepherd: spawns local tasks for the daemon and records their exit status.
 *
 * Life cycle
 *  - "kiln shepherd --home HOME" (started by executors/local.c) closes every
 *    inherited fd above stdio, resets inherited SIG_IGN dispositions, takes
 *    flock(HOME/shepherd.lock) (exits with SHP_EXIT_BUSY, quietly, if another
 *    shepherd holds it), removes a stale HOME/shepherd.sock (only now that it
 *    holds the lock), binds and listens on it, and only then forks.  The
 *    parent exits 0 as soon as the child reports (over a pipe) that it is set
 *    up, so the daemon, which waits for that parent, can connect at once
 *    without polling.  The child is not the daemon's child (no zombie for the
 *    daemon to reap, and a kill -9 of the daemon does not touch it).
 *  - The child calls setsid(), becomes the child subreaper, sends stdio to
 *    HOME/shepherd.log, chdir("/"), writes "pid instance-id" into the lock
 *    file (for operators and tests), opens the journal (see Exit status) and
 *    runs a poll() loop over a signalfd (SIGCHLD, SIGTERM, SIGINT), the
 *    listening socket and the connections.
 *    Several clients may be connected (a daemon, and a "kiln dags test"
 *    running tasks in-process on the same home): a new connection does not
 *    replace an old one, which would make two live executors throw each
 *    other out for ever.  Each try has an owner, the connection that spawned
 *    it or last asked about it, and only the owner gets its EXITED.
 *    Connections are served oldest first, so what a dead daemon managed to
 *    send is handled before a newer daemon's questions about the same tries.
 *  - It exits (removing the socket if it is still its own) once no daemon
 *    has been connected and no task has been running for
 *    KILN_SHEPHERD_IDLE_MS (default 10000), or on SIGTERM/SIGINT.  Running
 *    tasks are never killed on the way out.
 *
 * Spawning
 *  - The log file is opened (O_APPEND, 0644; its folder is created only if
 *    the open fails with ENOENT) before anything else: its existence is the
 *    durable marker "this try reached a shepherd".
 *  - argv[0] without a slash is looked up in the PATH of the request's envp
 *    (default "/bin:/usr/bin" like execvpe), not in the shepherd's own, and
 *    the answer is cached (see resolve_cmd); the full path then goes to
 *    posix_spawn (vfork-based in glibc, no fork).
 *    File actions: the log on fds 1 and 2, chdir to cwd.  stdin is the
 *    shepherd's own /dev/null, inherited, which saves an open per task.
 *    Attributes: own process group (pgid = pid), empty signal mask, default
 *    disposition for every signal the shepherd touched.
 *  - If the command cannot be executed, the reason ("command not found: x",
 *    "permission denied: ./x", "working directory not found: d") goes to the
 *    daemon, into the log file and into the journal, so adoption sees it.
 *
 * Exit status
 *  - SIGCHLD drains waitpid(-1, WNOHANG); pids that are not tries are
 *    orphans reparented to the subreaper and are just reaped.  For a try a
 *    line is appended to HOME/shepherd.journal (format in shepherd_proto.h),
 *    then EXITED goes to the connected daemon, if any.
 *  - One journal per home rather than a file per try: creating an inode per
 *    task cost the shepherd 30-100 us of CPU (far more on ext4 right after
 *    many files were deleted), on the path of every exit.  The
 *    journal is opened once, at start-up under the lock (so this shepherd is
 *    its only writer), with O_APPEND; each record is one write() of one
 *    line, and readers take complete lines only.  No fsync: it must survive
 *    a crash of any process, not a power loss.
 *  - A journal over SHP_JOURNAL_MAX (KILN_SHEPHERD_JOURNAL_MAX overrides it,
 *    for tests) is renamed to shepherd.journal.1 at start-up, replacing the
 *    older one, while nothing writes it: a reader that follows the old file
 *    through its descriptor reads it to its end and goes on with the new one.
 *  - A last line without its newline (a shepherd died in the middle of the
 *    write, or a write was short) gets its newline before the next record,
 *    so that the next record does not continue it.  The torn record then
 *    reads as malformed, or with its pid or reason cut short, never with a
 *    wrong status: a line that has all six fields has its first five whole.
 *  - Ended tries stay in the table (newest SHP_KEEP_DONE) so a reconnecting
 *    daemon can ask; the journal remains the truth after that.
 *
 * Cancel
 *  - KILL sends SIGTERM to the process group and schedules SIGKILL after
 *    grace_ms, timed by the poll timeout, so it happens even if the daemon is
 *    gone.  If the leader exits before the deadline, the rest of its group
 *    gets SIGKILL at once: waiting longer would risk signalling a reused
 *    process-group id (pid_max can be as low as 32768).
 *
 * The wire protocol is described in shepherd_proto.h; the shared helpers
 * (framing, encoding, the int64 map, journal lines) live at the top of this
 * file because local.c uses them too. */
#include "shepherd.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"
#include "shepherd_proto.h"
#include "util.h"

/* ---- shared helpers ---------------------------------------------------- */

void shp_rx_init(struct shp_rx *rx)
{
    sbuf_init(&rx->partial);
    rx->in_partial = false;
}

void shp_rx_free(struct shp_rx *rx)
{
    sbuf_free(&rx->partial);
    rx->in_partial = false;
}

static int shp_parse(const char *p, size_t len, struct shp_view *out)
{
    if (len < sizeof out->h)
        return -EBADMSG;
    memcpy(&out->h, p, sizeof out->h);
    out->str = p + sizeof out->h;
    out->str_len = len - sizeof out->h;
    if (out->h.nstr > out->str_len)
        return -EBADMSG;
    if (out->str_len > 0 && out->str[out->str_len - 1] != '\0')
        return -EBADMSG;
    size_t n = 0;
    const char *s = out->str, *end = out->str + out->str_len;
    while (s < end) {
        const char *z = memchr(s, '\0', (size_t)(end - s));
        n++;
        s = z + 1;
    }
    return n == out->h.nstr ? 0 : -EBADMSG;
}

int shp_recv(int fd, struct shp_rx *rx, char *buf, struct shp_view *out)
{
    ssize_t r;
    do
        r = recv(fd, buf, SHP_PKT_BUF, MSG_DONTWAIT | MSG_TRUNC);
    while (r < 0 && errno == EINTR);
    if (r < 0)
        return errno == EWOULDBLOCK ? -EAGAIN : -errno;
    if (r == 0)
        return -EPIPE;
    struct shp_pkt pk;
    if ((size_t)r > SHP_PKT_BUF || (size_t)r < sizeof pk)
        return -EPROTO;
    memcpy(&pk, buf, sizeof pk);
    if (pk.magic != SHP_MAGIC || pk.version != SHP_VERSION)
        return -EPROTO;
    const char *pl = buf + sizeof pk;
    size_t n = (size_t)r - sizeof pk;
    if (!rx->in_partial && !(pk.flags & SHP_F_MORE)) {
        int rc = shp_parse(pl, n, out);    /* the common case: parsed in place */
        return rc < 0 ? rc : 1;
    }
    if (!rx->in_partial) {
        /* A big message is rare; do not keep its memory for ever. */
        if (rx->partial.cap > (1u << 20))
            sbuf_free(&rx->partial);
        rx->partial.len = 0;
        rx->in_partial = true;
    }
    if (rx->partial.len + n > SHP_MSG_MAX) {
        rx->in_partial = false;
        return -EPROTO;
    }
    sbuf_add(&rx->partial, pl, n);
    if (pk.flags & SHP_F_MORE)
        return 0;
    rx->in_partial = false;
    int rc = shp_parse(rx->partial.data, rx->partial.len, out);
    return rc < 0 ? rc : 1;
}

int shp_send(int fd, const char *buf, size_t len, size_t *off)
{
    while (*off < len) {
        struct shp_pkt pk = { .magic = SHP_MAGIC, .version = SHP_VERSION, .flags = 0 };
        size_t n = len - *off;
        if (n > SHP_FRAG_MAX) {
            n = SHP_FRAG_MAX;
            pk.flags = SHP_F_MORE;
        }
        struct iovec iov[2] = {
            { .iov_base = &pk, .iov_len = sizeof pk },
            { .iov_base = (void *)(buf + *off), .iov_len = n },
        };
        struct msghdr mh = { .msg_iov = iov, .msg_iovlen = 2 };
        ssize_t w = sendmsg(fd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return errno == EWOULDBLOCK ? -EAGAIN : -errno;
        }
        *off += n;    /* a SEQPACKET send is all or nothing */
    }
    return 0;
}

char *shp_encode(size_t *len, uint32_t type, int64_t try_id, const int64_t v[5],
                 const char *const *strs, uint32_t nstr)
{
    struct shp_msg h = { .type = type, .nstr = nstr, .try_id = try_id };
    if (v)
        memcpy(h.v, v, sizeof h.v);
    size_t total = sizeof h;
    for (uint32_t i = 0; i < nstr; i++)
        total += strlen(strs[i]) + 1;
    char *buf = xmalloc(total);
    memcpy(buf, &h, sizeof h);
    char *p = buf + sizeof h;
    for (uint32_t i = 0; i < nstr; i++) {
        size_t n = strlen(strs[i]) + 1;
        memcpy(p, strs[i], n);
        p += n;
    }
    *len = total;
    return buf;
}

static size_t map_slot(const struct shp_map *m, int64_t key)
{
    return (size_t)(((uint64_t)key * UINT64_C(0x9E3779B97F4A7C15)) >> (64 - m->bits));
}

void shp_map_init(struct shp_map *m)
{
    m->bits = 4;
    m->n = 0;
    m->b = xcalloc((size_t)1 << m->bits, sizeof *m->b);
}

void shp_map_free(struct shp_map *m)
{
    free(m->b);
    m->b = NULL;
    m->n = 0;
}

struct shp_map_node *shp_map_get(const struct shp_map *m, int64_t key)
{
    for (struct shp_map_node *n = m->b[map_slot(m, key)]; n; n = n->next)
        if (n->key == key)
            return n;
    return NULL;
}

void shp_map_put(struct shp_map *m, struct shp_map_node *node)
{
    if (m->n >= ((size_t)1 << m->bits)) {
        struct shp_map old = *m;
        m->bits++;
        m->b = xcalloc((size_t)1 << m->bits, sizeof *m->b);
        for (size_t i = 0; i < ((size_t)1 << old.bits); i++) {
            struct shp_map_node *n = old.b[i], *next;
            for (; n; n = next) {
                next = n->next;
                size_t s = map_slot(m, n->key);
                n->next = m->b[s];
                m->b[s] = n;
            }
        }
        free(old.b);
    }
    size_t s = map_slot(m, node->key);
    node->next = m->b[s];
    m->b[s] = node;
    m->n++;
}

struct shp_map_node *shp_map_del(struct shp_map *m, int64_t key)
{
    for (struct shp_map_node **pp = &m->b[map_slot(m, key)]; *pp; pp = &(*pp)->next) {
        if ((*pp)->key == key) {
            struct shp_map_node *n = *pp;
            *pp = n->next;
            n->next = NULL;
            m->n--;
            return n;
        }
    }
    return NULL;
}

/* Creates the folder that holds path; used only after an open failed with
 * ENOENT, so the common path costs no mkdir. */
static int mkdir_parent(const char *path)
{
    char dir[PATH_MAX];
    const char *slash = strrchr(path, '/');
    if (slash == NULL || slash == path)
        return -ENOENT;
    size_t n = (size_t)(slash - path);
    if (n >= sizeof dir)
        return -ENAMETOOLONG;
    memcpy(dir, path, n);
    dir[n] = '\0';
    return mkdir_p(dir, 0755);
}

int shp_journal_format(char *buf, size_t n, int64_t try_id, const struct shp_exit *e)
{
    int len = snprintf(buf, n, "%" PRId64 " %d %d %" PRId64 " %" PRId64 " %d", try_id,
                       e->exit_code, e->term_signal, e->start_us, e->end_us, e->pid);
    if (len < 0 || (size_t)len >= n)
        return -EOVERFLOW;
    size_t at = (size_t)len;
    if (e->pid == 0 && e->reason[0]) {
        size_t r = strnlen(e->reason, sizeof e->reason);
        if (at + 1 + r >= n)
            return -EOVERFLOW;
        buf[at++] = ' ';
        for (size_t i = 0; i < r; i++)
            buf[at++] = e->reason[i] == '\n' || e->reason[i] == '\r' ? ' ' : e->reason[i];
    }
    if (at + 1 >= n)
        return -EOVERFLOW;
    buf[at++] = '\n';
    buf[at] = '\0';
    return (int)at;
}

/* One decimal number, optionally negative, ending at a space or at end. */
static bool parse_num(const char **p, const char *end, int64_t min, int64_t max, int64_t *out)
{
    const char *s = *p;
    bool neg = s < end && *s == '-';
    if (neg)
        s++;
    if (s == end || *s < '0' || *s > '9')
        return false;
    uint64_t v = 0;
    for (; s < end && *s >= '0' && *s <= '9'; s++) {
        if (v > (UINT64_MAX - 9) / 10)
            return false;
        v = v * 10 + (uint64_t)(*s - '0');
    }
    if (s < end && *s != ' ')
        return false;
    if (v > (uint64_t)INT64_MAX)
        return false;
    int64_t x = neg ? -(int64_t)v : (int64_t)v;
    if (x < min || x > max)
        return false;
    *out = x;
    *p = s;
    return true;
}

int shp_journal_parse(const char *line, size_t len, int64_t *try_id, struct shp_exit *e)
{
    const char *p = line, *end = line + len;
    int64_t v[6];
    static const int64_t lo[6] = { INT64_MIN, INT_MIN, 0, INT64_MIN, INT64_MIN, 0 };
    static const int64_t hi[6] = { INT64_MAX, INT_MAX, INT_MAX, INT64_MAX, INT64_MAX, INT_MAX };
    for (int i = 0; i < 6; i++) {
        if (i > 0) {
            if (p == end || *p != ' ')
                return -EPROTO;
            p++;
        }
        if (!parse_num(&p, end, lo[i], hi[i], &v[i]))
            return -EPROTO;
    }
    memset(e, 0, sizeof *e);
    *try_id = v[0];
    e->exit_code = (int)v[1];
    e->term_signal = (int)v[2];
    e->start_us = v[3];
    e->end_us = v[4];
    e->pid = (int)v[5];
    if (p < end) {
        /* Only a spawn failure carries a reason. */
        if (e->pid != 0)
            return -EPROTO;
        p++;
        size_t n = (size_t)(end - p);
        if (n >= sizeof e->reason)
            n = sizeof e->reason - 1;
        memcpy(e->reason, p, n);
        e->reason[n] = '\0';
    }
    return 0;
}

/* ---- the shepherd process ---------------------------------------------- */

#define SHP_START_HOLD_US 2000       /* see do_spawn: STARTED held back this long */
#define SHP_KEEP_DONE 4096          /* ended tries kept in memory for QUERY */
#define SHP_MAX_CLIENTS 64
#define SHP_GRACE_MAX_MS (INT64_C(7) * 24 * 3600 * 1000)    /* keeps deadlines from overflowing */
#define SHP_IDLE_MS_DEFAULT 10000
#define SHP_SOCK "shepherd.sock"
#define SHP_LOCK "shepherd.lock"
#define SHP_LOG "shepherd.log"
#define CMD_CACHE_SLOTS 256

struct dl {
    struct dl *prev, *next;
};

static void dl_init(struct dl *h)
{
    h->prev = h->next = h;
}

static bool dl_linked(const struct dl *n)
{
    return n->next != n;
}

static void dl_add_tail(struct dl *h, struct dl *n)
{
    n->prev = h->prev;
    n->next = h;
    h->prev->next = n;
    h->prev = n;
}

static void dl_del(struct dl *n)
{
    n->prev->next = n->next;
    n->next->prev = n->prev;
    dl_init(n);
}

enum { ST_RUNNING = 1, ST_EXITED, ST_FAILED };

struct stry {
    struct shp_map_node by_id;      /* key: try_id */
    struct shp_map_node by_pid;     /* key: pid, while running */
    struct dl kill_link;            /* in sh->kills while a SIGKILL is scheduled */
    struct dl done_link;            /* in sh->done once ended, oldest first */
    struct dl start_link;           /* in sh->starts while its STARTED is held back */
    int64_t start_due;              /* mono_us when the held STARTED goes out */
    int state;
    uint64_t owner;                 /* client that gets EXITED (0: none) */
    int64_t kill_at;                /* mono_us of the scheduled SIGKILL */
    struct shp_exit ex;             /* pid and start_us; the rest once ended */
};

/* A resolved command (see resolve_cmd); the strings live in buf. */
struct cmd_ent {
    uint64_t hash;
    const char *name, *path_var, *cwd;    /* cwd: "" unless PATH has relative entries */
    const char *resolved;
    char buf[];
};

struct sout {
    struct sout *next;
    size_t len, off;
    char buf[];
};

/* One connected daemon (or CLI process running tasks in-process). */
struct client {
    int fd;                         /* -1 once dropped, until compacted */
    uint64_t id;
    struct shp_rx rx;
    struct sout *out_head, *out_tail;
};

struct shepherd {
    int home_fd, lock_fd, listen_fd, sig_fd;
    int journal_fd;
    bool journal_torn;              /* its last line lacks the newline: add one first */
    dev_t sock_dev;
    ino_t sock_ino;
    char instance[33];
    struct shp_map tries, pids;
    struct dl kills, done, starts;
    size_t n_running, n_done;
    struct client *clients[SHP_MAX_CLIENTS];    /* oldest first */
    int n_clients;
    uint64_t next_client_id;
    char *rxbuf;
    posix_spawnattr_t attr;
    struct cmd_ent *cmd_cache[CMD_CACHE_SLOTS];
    int64_t idle_us, idle_since;
    bool stop;
};

static struct stry *try_find(struct shepherd *sh, int64_t try_id)
{
    struct shp_map_node *n = shp_map_get(&sh->tries, try_id);
    return n ? container_of(n, struct stry, by_id) : NULL;
}

static struct stry *try_new(struct shepherd *sh, int64_t try_id)
{
    struct stry *t = xcalloc(1, sizeof *t);
    t->by_id.key = try_id;
    dl_init(&t->kill_link);
    dl_init(&t->done_link);
    dl_init(&t->start_link);
    shp_map_put(&sh->tries, &t->by_id);
    return t;
}

static void try_free(struct shepherd *sh, struct stry *t)
{
    shp_map_del(&sh->tries, t->by_id.key);
    if (t->state == ST_RUNNING)
        shp_map_del(&sh->pids, t->by_pid.key);
    if (dl_linked(&t->kill_link))
        dl_del(&t->kill_link);
    if (dl_linked(&t->start_link))
        dl_del(&t->start_link);
    if (dl_linked(&t->done_link)) {
        dl_del(&t->done_link);
        sh->n_done--;
    }
    free(t);
}

/* Moves an ended try to the done list and forgets the oldest beyond the cap. */
static void try_ended(struct shepherd *sh, struct stry *t)
{
    dl_add_tail(&sh->done, &t->done_link);
    sh->n_done++;
    while (sh->n_done > SHP_KEEP_DONE) {
        struct stry *old = container_of(sh->done.next, struct stry, done_link);
        try_free(sh, old);
    }
}

/* ---- sending to the daemon --------------------------------------------- */

static void client_drop(struct client *c, const char *why)
{
    if (c->fd < 0)
        return;
    LOG_I("connection %" PRIu64 " closed: %s", c->id, why);
    close(c->fd);
    c->fd = -1;
    shp_rx_free(&c->rx);
    while (c->out_head) {
        struct sout *o = c->out_head;
        c->out_head = o->next;
        free(o);
    }
    c->out_tail = NULL;
}

/* Frees dropped clients, keeping the others in connection order. */
static void clients_compact(struct shepherd *sh)
{
    int j = 0;
    for (int i = 0; i < sh->n_clients; i++) {
        if (sh->clients[i]->fd < 0)
            free(sh->clients[i]);
        else
            sh->clients[j++] = sh->clients[i];
    }
    sh->n_clients = j;
}

static struct client *client_by_id(struct shepherd *sh, uint64_t id)
{
    for (int i = 0; id && i < sh->n_clients; i++)
        if (sh->clients[i]->id == id && sh->clients[i]->fd >= 0)
            return sh->clients[i];
    return NULL;
}

static void client_flush(struct client *c)
{
    while (c->out_head && c->fd >= 0) {
        struct sout *o = c->out_head;
        int rc = shp_send(c->fd, o->buf, o->len, &o->off);
        if (rc == -EAGAIN)
            return;
        if (rc < 0) {
            client_drop(c, strerror(-rc));
            return;
        }
        c->out_head = o->next;
        if (!c->out_head)
            c->out_tail = NULL;
        free(o);
    }
}

/* Sends without blocking: a daemon that reads slowly must never stall the
 * reaping of tasks or a SIGKILL deadline, so the rest is queued. */
static void client_send(struct client *c, const void *buf, size_t len)
{
    if (c == NULL || c->fd < 0)
        return;
    size_t off = 0;
    if (!c->out_head) {
        int rc = shp_send(c->fd, buf, len, &off);
        if (rc == 0)
            return;
        if (rc != -EAGAIN) {
            client_drop(c, strerror(-rc));
            return;
        }
    }
    struct sout *o = xmalloc(sizeof *o + len);
    o->next = NULL;
    o->len = len;
    o->off = off;
    memcpy(o->buf, buf, len);
    if (c->out_tail)
        c->out_tail->next = o;
    else
        c->out_head = o;
    c->out_tail = o;
}

static void send_simple(struct client *c, uint32_t type, int64_t try_id, int64_t v0, int64_t v1,
                        int64_t v2, int64_t v3, int64_t v4)
{
    struct shp_msg h = { .type = type, .nstr = 0, .try_id = try_id,
                         .v = { v0, v1, v2, v3, v4 } };
    client_send(c, &h, sizeof h);
}

static void send_failed(struct client *c, int64_t try_id, int err, const struct shp_exit *e)
{
    if (c == NULL || c->fd < 0)
        return;
    const char *strs[1] = { e->reason };
    int64_t v[5] = { err, 0, e->start_us, e->end_us, 0 };
    size_t len;
    char *buf = shp_encode(&len, SHP_FAILED, try_id, v, strs, 1);
    client_send(c, buf, len);
    free(buf);
}

static void send_state(struct client *c, const struct stry *t)
{
    const struct shp_exit *e = &t->ex;
    switch (t->state) {
    case ST_RUNNING:
        send_simple(c, SHP_STARTED, t->by_id.key, e->pid, e->start_us, 0, 0, 0);
        break;
    case ST_EXITED:
        send_simple(c, SHP_EXITED, t->by_id.key, e->exit_code, e->term_signal, e->start_us,
                    e->end_us, e->pid);
        break;
    case ST_FAILED:
        send_failed(c, t->by_id.key, e->exit_code == 127 ? ENOENT : EACCES, e);
        break;
    }
}

/* ---- the journal ------------------------------------------------------- */

/* Appends the line of an ended try with one write(): O_APPEND puts it at the
 * end in one piece, and readers take only lines that have their newline, so
 * half a record is never an answer.  No fsync: the journal must survive a
 * crash of any process, not a power loss.  Called before the end is
 * reported, so whatever a daemon has heard of is in the journal too. */
static void journal_append(struct shepherd *sh, int64_t try_id, const struct shp_exit *e)
{
    char buf[1 + SHP_JOURNAL_LINE_MAX];
    buf[0] = '\n';
    int n = shp_journal_format(buf + 1, sizeof buf - 1, try_id, e);
    if (n < 0) {
        LOG_E("try %" PRId64 ": journal line too long", try_id);
        return;
    }
    /* After a torn line (a short write, or a shepherd that died while
     * writing), a newline first, so this record does not continue it. */
    size_t off = sh->journal_torn ? 0 : 1, len = (size_t)n + 1 - off;
    ssize_t w;
    do
        w = write(sh->journal_fd, buf + off, len);
    while (w < 0 && errno == EINTR);
    if (w == (ssize_t)len) {
        sh->journal_torn = false;
        return;
    }
    int err = w < 0 ? errno : EIO;
    if (w > 0)
        sh->journal_torn = (size_t)w > 1 - off;    /* part of the record went in */
    LOG_E("try %" PRId64 ": cannot append to %s: %s", try_id, SHP_JOURNAL, strerror(err));
}

/* ---- spawning ---------------------------------------------------------- */

static const char *env_get(char *const *envp, const char *name)
{
    size_t n = strlen(name);
    for (; *envp; envp++)
        if (strncmp(*envp, name, n) == 0 && (*envp)[n] == '=')
            return *envp + n + 1;
    return NULL;
}

/* execvpe's search, but in the request's PATH.  A relative PATH entry is
 * relative to the task's working directory, which is where the child will
 * be when it execs; the result is made absolute so it does not matter. */
static int search_path(const char *name, const char *path, const char *cwd, char *out,
                       size_t outsz)
{
    bool eacces = false;
    for (const char *p = path;; ) {
        const char *colon = strchrnul(p, ':');
        int dlen = (int)(colon - p);
        const char *dir = p;
        if (dlen == 0) {
            dir = ".";
            dlen = 1;
        }
        int n;
        if (dir[0] == '/')
            n = snprintf(out, outsz, "%.*s/%s", dlen, dir, name);
        else
            n = snprintf(out, outsz, "%s/%.*s/%s", cwd[0] ? cwd : "", dlen, dir, name);
        if (n > 0 && (size_t)n < outsz) {
            struct stat st;
            if (stat(out, &st) == 0) {
                if (S_ISREG(st.st_mode) && access(out, X_OK) == 0)
                    return 0;
                eacces = true;
            } else if (errno == EACCES) {
                eacces = true;
            }
        }
        if (*colon == '\0')
            break;
        p = colon + 1;
    }
    return eacces ? -EACCES : -ENOENT;
}

static bool path_has_relative(const char *path)
{
    for (const char *p = path;; p++) {
        if (*p != '/')
            return true;    /* an empty entry means "." */
        p = strchrnul(p, ':');
        if (*p == '\0')
            return false;
    }
}

static uint64_t hash_str(uint64_t h, const char *s)
{
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * UINT64_C(0x100000001b3);
    return (h ^ 0xff) * UINT64_C(0x100000001b3);    /* the terminator separates fields */
}

/* Resolves argv[0] like resolve_cmd's search, through a cache keyed by
 * (name, PATH, cwd when PATH has relative entries): the search costs a
 * stat() per PATH entry up to the hit (4 or 5 for "true") on every spawn,
 * a cached answer one access(X_OK), which also drops an entry whose file
 * went away or lost its execute bit (the search then runs again).  Like a
 * shell's command hash, a hit does not notice a new command of the same
 * name earlier in PATH.  Direct-mapped: a colliding entry replaces the old
 * one, which bounds the memory without any bookkeeping. */
static int resolve_cmd(struct shepherd *sh, const char *name, char *const *envp,
                       const char *cwd, char *out, size_t outsz)
{
    if (strchr(name, '/')) {
        if ((size_t)snprintf(out, outsz, "%s", name) >= outsz)
            return -ENAMETOOLONG;
        return 0;
    }
    if (*name == '\0')
        return -ENOENT;
    const char *path = env_get(envp, "PATH");
    if (path == NULL)
        path = "/bin:/usr/bin";
    const char *key_cwd = path_has_relative(path) ? cwd : "";
    uint64_t h = hash_str(hash_str(hash_str(UINT64_C(0xcbf29ce484222325), name), path),
                          key_cwd);
    struct cmd_ent **slot = &sh->cmd_cache[h % CMD_CACHE_SLOTS];
    struct cmd_ent *e = *slot;
    if (e && e->hash == h && strcmp(e->name, name) == 0 && strcmp(e->path_var, path) == 0 &&
        strcmp(e->cwd, key_cwd) == 0) {
        size_t n = strlen(e->resolved);
        if (n < outsz && access(e->resolved, X_OK) == 0) {
            memcpy(out, e->resolved, n + 1);
            return 0;
        }
    }
    int rc = search_path(name, path, cwd, out, outsz);
    free(*slot);
    *slot = NULL;
    if (rc < 0)
        return rc;    /* failures are not cached: the command may appear */
    size_t ln = strlen(name) + 1, lp = strlen(path) + 1, lc = strlen(key_cwd) + 1;
    size_t lr = strlen(out) + 1;
    e = xmalloc(sizeof *e + ln + lp + lc + lr);
    e->hash = h;
    char *b = e->buf;
    e->name = memcpy(b, name, ln);
    e->path_var = memcpy(b += ln, path, lp);
    e->cwd = memcpy(b += lp, key_cwd, lc);
    e->resolved = memcpy(b + lc, out, lr);
    *slot = e;
    return 0;
}

static void spawn_reason(char *buf, size_t n, int err, const char *cmd)
{
    switch (err) {
    case ENOENT:
    case ENOTDIR:
        snprintf(buf, n, "command not found: %s", cmd);
        break;
    case EACCES:
    case EPERM:
        snprintf(buf, n, "permission denied: %s", cmd);
        break;
    case ENOEXEC:
        snprintf(buf, n, "cannot execute %s: not an executable format", cmd);
        break;
    default:
        snprintf(buf, n, "cannot execute %s: %s", cmd, strerror(err));
        break;
    }
}

/* Records a try whose command could not be executed: the reason goes to the
 * log (if open), the journal, the table and the daemon. */
static void spawn_failed(struct shepherd *sh, struct client *c, int64_t try_id, int log_fd,
                         int err, int64_t start_us, const char *reason)
{
    struct stry *t = try_new(sh, try_id);
    t->state = ST_FAILED;
    t->owner = c->id;
    t->ex.exit_code = err == ENOENT || err == ENOTDIR ? 127 : 126;
    t->ex.start_us = start_us;
    t->ex.end_us = now_us();
    snprintf(t->ex.reason, sizeof t->ex.reason, "%s", reason);
    if (log_fd >= 0)
        dprintf(log_fd, "kiln: %s\n", t->ex.reason);
    journal_append(sh, try_id, &t->ex);
    send_failed(c, try_id, err, &t->ex);
    try_ended(sh, t);
}

static void do_spawn(struct shepherd *sh, struct client *c, const struct shp_view *m)
{
    int64_t try_id = m->h.try_id;
    struct stry *old = try_find(sh, try_id);
    if (old) {
        /* A repeated request (a daemon that reconnected) gets what we know. */
        old->owner = c->id;
        send_state(c, old);
        return;
    }
    int64_t argc = m->h.v[0], envc = m->h.v[1];
    if (argc < 1 || envc < 0 || argc > (int64_t)m->h.nstr || envc > (int64_t)m->h.nstr ||
        2 + argc + envc != (int64_t)m->h.nstr) {
        LOG_W("try %" PRId64 ": malformed spawn request", try_id);
        struct shp_exit e = { .start_us = now_us(), .end_us = now_us() };
        snprintf(e.reason, sizeof e.reason, "malformed spawn request");
        send_failed(c, try_id, EINVAL, &e);
        return;
    }
    const char *cwd = m->str;
    const char *log_path = shp_next_str(cwd);
    char **argv = xmalloc(((size_t)argc + 1 + (size_t)envc + 1) * sizeof *argv);
    char **envp = argv + argc + 1;
    const char *s = shp_next_str(log_path);
    for (int64_t i = 0; i < argc; i++, s = shp_next_str(s))
        argv[i] = (char *)s;
    argv[argc] = NULL;
    for (int64_t i = 0; i < envc; i++, s = shp_next_str(s))
        envp[i] = (char *)s;
    envp[envc] = NULL;

    int64_t start_us = now_us();
    char reason[sizeof ((struct shp_exit *)0)->reason];
    if (log_path[0] == '\0') {
        struct shp_exit e = { .start_us = start_us, .end_us = start_us };
        snprintf(e.reason, sizeof e.reason, "spawn request without a log path");
        send_failed(c, try_id, EINVAL, &e);
        free(argv);
        return;
    }
    char path[PATH_MAX];
    int rc = resolve_cmd(sh, argv[0], envp, cwd, path, sizeof path);
    pid_t pid = 0;
    int log_fd = -1;
    if (rc == 0) {
        /* Fast path: the child opens (creates) its own log before exec, so
         * the inode allocation, the costliest part of a spawn on ext4, runs
         * in the child beside the other tasks instead of in this loop.  The
         * marker still holds: the log exists once posix_spawn returns. */
        posix_spawn_file_actions_t fa;
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_addopen(&fa, 1, log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
        posix_spawn_file_actions_adddup2(&fa, 1, 2);
        if (cwd[0])
            posix_spawn_file_actions_addchdir_np(&fa, cwd);
        rc = -posix_spawn(&pid, path, &fa, &sh->attr, argv, envp);
        posix_spawn_file_actions_destroy(&fa);
    }
    if (rc < 0) {
        /* Slow path, failures only: open the log here (creating its folder
         * if needed) so that a reason can be written into it, and try once
         * more with the descriptor, which tells a bad log path apart from a
         * bad command or working directory. */
        log_fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (log_fd < 0 && errno == ENOENT && mkdir_parent(log_path) == 0)
            log_fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (log_fd < 0) {
            int e = errno;
            snprintf(reason, sizeof reason, "cannot open log file %s: %s", log_path, strerror(e));
            spawn_failed(sh, c, try_id, -1, e, start_us, reason);
            free(argv);
            return;
        }
        rc = resolve_cmd(sh, argv[0], envp, cwd, path, sizeof path);
        if (rc == 0) {
            posix_spawn_file_actions_t fa;
            posix_spawn_file_actions_init(&fa);
            posix_spawn_file_actions_adddup2(&fa, log_fd, 1);
            posix_spawn_file_actions_adddup2(&fa, log_fd, 2);
            if (cwd[0])
                posix_spawn_file_actions_addchdir_np(&fa, cwd);
            rc = -posix_spawn(&pid, path, &fa, &sh->attr, argv, envp);
            posix_spawn_file_actions_destroy(&fa);
        }
    }
    if (rc < 0) {
        int e = -rc;
        /* A bad working directory fails like a missing command (the child's
         * chdir reports ENOENT too); tell them apart only now, so that the
         * common path does not pay a stat. */
        struct stat st;
        int cwd_err = !cwd[0] ? 0 : stat(cwd, &st) < 0 ? errno
                      : S_ISDIR(st.st_mode) ? 0 : ENOTDIR;
        if (cwd_err) {
            e = cwd_err;
            snprintf(reason, sizeof reason, "%s: %s", cwd_err == ENOENT ?
                     "working directory not found" : cwd_err == ENOTDIR ?
                     "working directory is not a directory" : strerror(cwd_err), cwd);
        } else {
            spawn_reason(reason, sizeof reason, e, argv[0]);
        }
        spawn_failed(sh, c, try_id, log_fd, e, start_us, reason);
        close(log_fd);
        free(argv);
        return;
    }
    if (log_fd >= 0)
        close(log_fd);
    free(argv);
    struct stry *t = try_new(sh, try_id);
    t->state = ST_RUNNING;
    t->owner = c->id;
    t->ex.pid = pid;
    t->ex.start_us = start_us;
    t->by_pid.key = pid;
    shp_map_put(&sh->pids, &t->by_pid);
    sh->n_running++;
    /* STARTED is held back briefly: a task that ends within the window has
     * its STARTED and EXITED sent together, so the daemon wakes up and
     * commits once for it instead of twice.  A longer task is reported
     * running SHP_START_HOLD_US late, which no one can tell apart. */
    t->start_due = mono_us() + SHP_START_HOLD_US;
    dl_add_tail(&sh->starts, &t->start_link);
}

/* Sends the held STARTED messages that are due;
 * returns the poll timeout in ms the next one needs, or -1. */
static int release_starts(struct shepherd *sh, int64_t now)
{
    while (sh->starts.next != &sh->starts) {
        struct stry *t = container_of(sh->starts.next, struct stry, start_link);
        if (t->start_due > now)
            return (int)((t->start_due - now + 999) / 1000);
        dl_del(&t->start_link);
        send_simple(client_by_id(sh, t->owner), SHP_STARTED, t->by_id.key, t->ex.pid,
                    t->ex.start_us, 0, 0, 0);
    }
    return -1;
}

static void do_kill(struct shepherd *sh, int64_t try_id, int64_t grace_ms)
{
    struct stry *t = try_find(sh, try_id);
    if (t == NULL || t->state != ST_RUNNING)
        return;
    pid_t pg = t->ex.pid;
    if (grace_ms <= 0) {
        kill(-pg, SIGKILL);
        if (dl_linked(&t->kill_link))
            dl_del(&t->kill_link);
        return;
    }
    kill(-pg, SIGTERM);
    if (grace_ms > SHP_GRACE_MAX_MS)
        grace_ms = SHP_GRACE_MAX_MS;
    int64_t at = mono_us() + grace_ms * 1000;
    if (!dl_linked(&t->kill_link)) {
        t->kill_at = at;
        dl_add_tail(&sh->kills, &t->kill_link);
    } else if (at < t->kill_at) {
        t->kill_at = at;
    }
}

/* The asker becomes the owner: a restarted daemon adopting a try gets its
 * EXITED from now on. */
static void do_query(struct shepherd *sh, struct client *c, int64_t try_id)
{
    struct stry *t = try_find(sh, try_id);
    if (t) {
        t->owner = c->id;
        if (dl_linked(&t->start_link))
            dl_del(&t->start_link);
        send_state(c, t);
    } else {
        send_simple(c, SHP_UNKNOWN, try_id, 0, 0, 0, 0, 0);
    }
}

/* ---- events ------------------------------------------------------------ */

static void on_child_exit(struct shepherd *sh, struct stry *t, int status)
{
    struct shp_exit *e = &t->ex;
    e->end_us = now_us();
    if (WIFSIGNALED(status)) {
        e->term_signal = WTERMSIG(status);
        e->exit_code = 128 + e->term_signal;
    } else {
        e->exit_code = WEXITSTATUS(status);
    }
    shp_map_del(&sh->pids, t->by_pid.key);
    t->state = ST_EXITED;
    sh->n_running--;
    if (dl_linked(&t->kill_link)) {
        /* Cancelled and the leader is gone: finish the rest of the group now,
         * while its id cannot have been reused. */
        kill(-e->pid, SIGKILL);
        dl_del(&t->kill_link);
    }
    journal_append(sh, t->by_id.key, e);
    if (dl_linked(&t->start_link)) {
        dl_del(&t->start_link);
        send_simple(client_by_id(sh, t->owner), SHP_STARTED, t->by_id.key, e->pid, e->start_us,
                    0, 0, 0);
    }
    send_simple(client_by_id(sh, t->owner), SHP_EXITED, t->by_id.key, e->exit_code,
                e->term_signal, e->start_us, e->end_us, e->pid);
    try_ended(sh, t);
}

static void on_signals(struct shepherd *sh)
{
    struct signalfd_siginfo si[16];
    ssize_t r;
    do {
        r = read(sh->sig_fd, si, sizeof si);
        for (size_t i = 0; r > 0 && i < (size_t)r / sizeof si[0]; i++) {
            if (si[i].ssi_signo == SIGTERM || si[i].ssi_signo == SIGINT) {
                LOG_I("stopping on signal %u; %zu task(s) keep running", si[i].ssi_signo,
                      sh->n_running);
                sh->stop = true;
            }
        }
    } while (r == (ssize_t)sizeof si);    /* a short read means it is drained */
    for (;;) {
        int status;
        pid_t pid = waitpid(-1, &status, WNOHANG);
        if (pid <= 0)
            break;
        struct shp_map_node *n = shp_map_get(&sh->pids, pid);
        if (n)    /* otherwise an orphan that was reparented to us */
            on_child_exit(sh, container_of(n, struct stry, by_pid), status);
    }
}

static void on_msg(struct shepherd *sh, struct client *c, const struct shp_view *m)
{
    switch (m->h.type) {
    case SHP_SPAWN:
        do_spawn(sh, c, m);
        break;
    case SHP_KILL:
        do_kill(sh, m->h.try_id, m->h.v[0]);
        break;
    case SHP_QUERY:
        do_query(sh, c, m->h.try_id);
        break;
    default:
        LOG_W("ignoring a message of unknown type %u", m->h.type);
        break;
    }
}

static void client_read(struct shepherd *sh, struct client *c)
{
    while (c->fd >= 0) {
        struct shp_view m;
        int rc = shp_recv(c->fd, &c->rx, sh->rxbuf, &m);
        if (rc == 1)
            on_msg(sh, c, &m);
        else if (rc == 0)
            continue;
        else if (rc == -EAGAIN)
            return;
        else if (rc == -EBADMSG)
            LOG_W("connection %" PRIu64 ": ignoring a malformed message", c->id);
        else
            client_drop(c, rc == -EPIPE ? "closed by the peer" :
                        rc == -EPROTO ? "protocol error" : strerror(-rc));
    }
}

static void on_accept(struct shepherd *sh)
{
    for (;;) {
        int fd = accept4(sh->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd < 0) {
            if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
                LOG_W("accept: %s", strerror(errno));
            return;
        }
        struct ucred cr;
        socklen_t crl = sizeof cr;
        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &crl) < 0 || cr.uid != geteuid()) {
            LOG_W("refusing a connection from another user");
            close(fd);
            continue;
        }
        if (sh->n_clients == SHP_MAX_CLIENTS) {
            LOG_W("refusing a connection: %d clients already", SHP_MAX_CLIENTS);
            close(fd);
            continue;
        }
        int sz = 1 << 20;
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
        struct client *c = xcalloc(1, sizeof *c);
        c->fd = fd;
        c->id = ++sh->next_client_id;
        shp_rx_init(&c->rx);
        sh->clients[sh->n_clients++] = c;
        LOG_I("connection %" PRIu64 " from pid %d", c->id, (int)cr.pid);
        const char *strs[1] = { sh->instance };
        int64_t v[5] = { getpid(), 0, 0, 0, 0 };
        size_t len;
        char *buf = shp_encode(&len, SHP_HELLO, 0, v, strs, 1);
        client_send(c, buf, len);
        free(buf);
    }
}

/* Fires due SIGKILLs; returns the poll timeout in ms that the next one needs
 * (or -1). */
static int kill_deadlines(struct shepherd *sh, int64_t now)
{
    int64_t next = -1;
    for (struct dl *l = sh->kills.next, *nx; l != &sh->kills; l = nx) {
        nx = l->next;
        struct stry *t = container_of(l, struct stry, kill_link);
        if (t->kill_at <= now) {
            kill(-t->ex.pid, SIGKILL);
            dl_del(l);
        } else if (next < 0 || t->kill_at - now < next) {
            next = t->kill_at - now;
        }
    }
    return next < 0 ? -1 : (int)((next + 999) / 1000);
}

static bool accept_pending(struct shepherd *sh)
{
    struct pollfd p = { .fd = sh->listen_fd, .events = POLLIN };
    return poll(&p, 1, 0) > 0;
}

static void run_loop(struct shepherd *sh)
{
    struct pollfd p[2 + SHP_MAX_CLIENTS];
    while (!sh->stop) {
        clients_compact(sh);    /* a send may have dropped one anywhere */
        int64_t now = mono_us();
        int timeout = kill_deadlines(sh, now);
        int st = release_starts(sh, now);
        if (st >= 0 && (timeout < 0 || st < timeout))
            timeout = st;
        if (sh->n_clients == 0 && sh->n_running == 0) {
            if (sh->idle_since == 0)
                sh->idle_since = now;
            int64_t left = sh->idle_since + sh->idle_us - now;
            if (left <= 0) {
                if (!accept_pending(sh)) {
                    LOG_I("idle: exiting");
                    return;
                }
                left = 0;
            }
            int ms = (int)((left + 999) / 1000);
            if (timeout < 0 || ms < timeout)
                timeout = ms;
        } else {
            sh->idle_since = 0;
        }
        p[0] = (struct pollfd){ .fd = sh->sig_fd, .events = POLLIN };
        p[1] = (struct pollfd){ .fd = sh->listen_fd, .events = POLLIN };
        int n = sh->n_clients;
        for (int i = 0; i < n; i++) {
            struct client *c = sh->clients[i];
            p[2 + i] = (struct pollfd){ .fd = c->fd,
                                        .events = POLLIN | (c->out_head ? POLLOUT : 0) };
        }
        if (poll(p, (nfds_t)(2 + n), timeout) < 0) {
            if (errno == EINTR)
                continue;
            LOG_E("poll: %s", strerror(errno));
            return;
        }
        if (p[0].revents)
            on_signals(sh);
        /* Oldest connection first: what a daemon sent before it died is
         * handled before a newer daemon's questions about the same tries. */
        for (int i = 0; i < n; i++) {
            struct client *c = sh->clients[i];
            short re = p[2 + i].revents;
            if (c->fd >= 0 && (re & (POLLIN | POLLHUP | POLLERR)))
                client_read(sh, c);
            if (c->fd >= 0 && (re & POLLOUT))
                client_flush(c);
        }
        if (p[1].revents)
            on_accept(sh);
    }
}

/* ---- start-up ---------------------------------------------------------- */

static void close_inherited_fds(void)
{
    if (close_range(3, ~0U, 0) == 0)
        return;
    long max = sysconf(_SC_OPEN_MAX);
    if (max < 0 || max > 65536)
        max = 65536;
    for (int fd = 3; fd < max; fd++)
        close(fd);
}

/* Dispositions survive exec only as SIG_IGN; a daemon may have ignored
 * SIGPIPE or SIGINT, and tasks must not inherit that. */
static void reset_ignored_signals(void)
{
    for (int sig = 1; sig < NSIG; sig++) {
        struct sigaction sa;
        if (sig == SIGKILL || sig == SIGSTOP || sigaction(sig, NULL, &sa) < 0)
            continue;
        if (sa.sa_handler == SIG_IGN)
            signal(sig, SIG_DFL);
    }
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
}

static int64_t idle_ms_from_env(void)
{
    const char *s = getenv("KILN_SHEPHERD_IDLE_MS");
    if (s == NULL || *s == '\0')
        return SHP_IDLE_MS_DEFAULT;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (*end != '\0' || v < 0)
        return SHP_IDLE_MS_DEFAULT;
    return v > SHP_GRACE_MAX_MS ? SHP_GRACE_MAX_MS : v;
}

static int64_t journal_max_from_env(void)
{
    const char *s = getenv("KILN_SHEPHERD_JOURNAL_MAX");
    if (s == NULL || *s == '\0')
        return SHP_JOURNAL_MAX;
    char *end;
    long long v = strtoll(s, &end, 10);
    return *end != '\0' || v < 0 ? SHP_JOURNAL_MAX : v;
}

/* Opens the journal for appending; called holding the lock, so no other
 * shepherd writes it.  A journal over the limit is first renamed to
 * SHP_JOURNAL_OLD (replacing an older one): readers read that one too, and
 * it keeps what the previous shepherds recorded for a while.  A last line
 * without its newline was torn by a shepherd that died while writing it. */
static int journal_open(struct shepherd *sh)
{
    struct stat st;
    if (fstatat(sh->home_fd, SHP_JOURNAL, &st, 0) == 0 && st.st_size > journal_max_from_env()) {
        if (renameat(sh->home_fd, SHP_JOURNAL, sh->home_fd, SHP_JOURNAL_OLD) == 0)
            LOG_I("%s was %lld bytes: renamed to %s", SHP_JOURNAL, (long long)st.st_size,
                  SHP_JOURNAL_OLD);
        else
            LOG_W("cannot rename %s to %s: %s", SHP_JOURNAL, SHP_JOURNAL_OLD, strerror(errno));
    }
    sh->journal_fd = openat(sh->home_fd, SHP_JOURNAL, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC,
                            0644);
    if (sh->journal_fd < 0) {
        LOG_E("cannot open %s: %s", SHP_JOURNAL, strerror(errno));
        return -1;
    }
    if (fstat(sh->journal_fd, &st) == 0 && st.st_size > 0) {
        int fd = openat(sh->home_fd, SHP_JOURNAL, O_RDONLY | O_CLOEXEC);
        char last = '\n';
        if (fd >= 0) {
            if (pread(fd, &last, 1, st.st_size - 1) != 1)
                last = '\n';
            close(fd);
        }
        sh->journal_torn = last != '\n';
    }
    return 0;
}

static void make_instance_id(char out[33])
{
    unsigned char r[16];
    if (getrandom(r, sizeof r, GRND_NONBLOCK) != (ssize_t)sizeof r) {
        uint64_t a = (uint64_t)now_us() ^ ((uint64_t)getpid() << 32), b = (uint64_t)mono_us();
        memcpy(r, &a, 8);
        memcpy(r + 8, &b, 8);
    }
    for (int i = 0; i < 16; i++)
        snprintf(out + 2 * i, 3, "%02x", r[i]);
}

/* Takes the lock and binds the socket.  Returns 0, SHP_EXIT_BUSY, or 1 after
 * printing why to stderr (still the daemon's stderr at this point). */
static int claim_home(struct shepherd *sh, const char *home)
{
    int rc = mkdir_p(home, 0700);
    if (rc < 0) {
        fprintf(stderr, "kiln shepherd: cannot create %s: %s\n", home, strerror(-rc));
        return 1;
    }
    sh->home_fd = open(home, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (sh->home_fd < 0) {
        fprintf(stderr, "kiln shepherd: cannot open %s: %s\n", home, strerror(errno));
        return 1;
    }
    sh->lock_fd = openat(sh->home_fd, SHP_LOCK, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (sh->lock_fd < 0) {
        fprintf(stderr, "kiln shepherd: cannot open %s/%s: %s\n", home, SHP_LOCK,
                strerror(errno));
        return 1;
    }
    if (flock(sh->lock_fd, LOCK_EX | LOCK_NB) < 0) {
        if (errno == EWOULDBLOCK)
            return SHP_EXIT_BUSY;
        fprintf(stderr, "kiln shepherd: cannot lock %s/%s: %s\n", home, SHP_LOCK,
                strerror(errno));
        return 1;
    }
    /* Holding the lock, a socket file left behind is stale. */
    if (unlinkat(sh->home_fd, SHP_SOCK, 0) < 0 && errno != ENOENT) {
        fprintf(stderr, "kiln shepherd: cannot remove %s/%s: %s\n", home, SHP_SOCK,
                strerror(errno));
        return 1;
    }
    sh->listen_fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (sh->listen_fd < 0) {
        fprintf(stderr, "kiln shepherd: socket: %s\n", strerror(errno));
        return 1;
    }
    /* Bind by a relative name from inside home: sun_path holds 108 bytes,
     * and a home folder can be deeper than that. */
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    memcpy(sa.sun_path, SHP_SOCK, sizeof SHP_SOCK);
    mode_t old_mask = umask(077);
    rc = fchdir(sh->home_fd) == 0 &&
         bind(sh->listen_fd, (struct sockaddr *)&sa, sizeof sa) == 0 &&
         listen(sh->listen_fd, 64) == 0 ? 0 : -errno;
    umask(old_mask);
    if (rc < 0) {
        fprintf(stderr, "kiln shepherd: cannot listen on %s/%s: %s\n", home, SHP_SOCK,
                strerror(-rc));
        return 1;
    }
    struct stat st;
    if (fstatat(sh->home_fd, SHP_SOCK, &st, AT_SYMLINK_NOFOLLOW) == 0) {
        sh->sock_dev = st.st_dev;
        sh->sock_ino = st.st_ino;
    }
    return 0;
}

static int setup_process(struct shepherd *sh, int log_fd)
{
    setsid();
    if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0)
        LOG_W("cannot become the child subreaper: %s", strerror(errno));
    int null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (null_fd >= 0) {
        dup2(null_fd, 0);
        close(null_fd);
    }
    dup2(log_fd, 1);
    dup2(log_fd, 2);
    close(log_fd);
    if (chdir("/") < 0)
        LOG_W("chdir /: %s", strerror(errno));

    make_instance_id(sh->instance);
    char line[80];
    int n = snprintf(line, sizeof line, "%d %s\n", (int)getpid(), sh->instance);
    if (ftruncate(sh->lock_fd, 0) < 0 || pwrite(sh->lock_fd, line, (size_t)n, 0) != n)
        LOG_W("cannot write %s: %s", SHP_LOCK, strerror(errno));

    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigprocmask(SIG_BLOCK, &set, NULL);
    sh->sig_fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (sh->sig_fd < 0) {
        LOG_E("signalfd: %s", strerror(errno));
        return -1;
    }
    signal(SIGPIPE, SIG_IGN);
    signal(SIGHUP, SIG_IGN);

    /* Every signal the shepherd blocked or ignored goes back to default in
     * the task, and its mask starts empty. */
    sigaddset(&set, SIGPIPE);
    sigaddset(&set, SIGHUP);
    sigset_t empty;
    sigemptyset(&empty);
    posix_spawnattr_init(&sh->attr);
    posix_spawnattr_setflags(&sh->attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
                                        POSIX_SPAWN_SETSIGDEF);
    posix_spawnattr_setpgroup(&sh->attr, 0);
    posix_spawnattr_setsigmask(&sh->attr, &empty);
    posix_spawnattr_setsigdefault(&sh->attr, &set);
    return 0;
}

static void shepherd_cleanup(struct shepherd *sh)
{
    /* Remove the socket only if it is still ours, and before the lock goes. */
    struct stat st;
    if (sh->listen_fd >= 0 && sh->home_fd >= 0 &&
        fstatat(sh->home_fd, SHP_SOCK, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
        st.st_dev == sh->sock_dev && st.st_ino == sh->sock_ino)
        unlinkat(sh->home_fd, SHP_SOCK, 0);
    for (int i = 0; i < sh->n_clients; i++)
        client_drop(sh->clients[i], "shepherd exiting");
    clients_compact(sh);
    for (size_t i = 0; sh->tries.b && i < ((size_t)1 << sh->tries.bits); i++) {
        struct shp_map_node *n = sh->tries.b[i], *next;
        for (; n; n = next) {
            next = n->next;
            free(container_of(n, struct stry, by_id));
        }
    }
    shp_map_free(&sh->tries);
    shp_map_free(&sh->pids);
    for (size_t i = 0; i < CMD_CACHE_SLOTS; i++)
        free(sh->cmd_cache[i]);
    free(sh->rxbuf);
    if (sh->journal_fd >= 0)
        close(sh->journal_fd);
    if (sh->sig_fd >= 0) {
        posix_spawnattr_destroy(&sh->attr);
        close(sh->sig_fd);
    }
    if (sh->listen_fd >= 0)
        close(sh->listen_fd);
    if (sh->home_fd >= 0)
        close(sh->home_fd);
    if (sh->lock_fd >= 0)
        close(sh->lock_fd);
}

int shepherd_main(const char *home)
{
    close_inherited_fds();
    reset_ignored_signals();

    struct shepherd sh = {
        .home_fd = -1, .lock_fd = -1, .listen_fd = -1, .sig_fd = -1, .journal_fd = -1,
    };
    dl_init(&sh.kills);
    dl_init(&sh.done);
    dl_init(&sh.starts);
    int rc = claim_home(&sh, home);
    if (rc != 0) {
        shepherd_cleanup(&sh);
        return rc;
    }
    int log_fd = openat(sh.home_fd, SHP_LOG, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (log_fd < 0) {
        fprintf(stderr, "kiln shepherd: cannot open %s/%s: %s\n", home, SHP_LOG,
                strerror(errno));
        shepherd_cleanup(&sh);
        return 1;
    }
    /* The parent exits once the child is set up; the daemon waits for that
     * exit and then connects, without polling. */
    int ready[2];
    if (pipe2(ready, O_CLOEXEC) < 0) {
        fprintf(stderr, "kiln shepherd: pipe: %s\n", strerror(errno));
        close(log_fd);
        shepherd_cleanup(&sh);
        return 1;
    }
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "kiln shepherd: fork: %s\n", strerror(errno));
        close(log_fd);
        shepherd_cleanup(&sh);
        return 1;
    }
    if (pid > 0) {
        close(ready[1]);
        char c;
        ssize_t r;
        do
            r = read(ready[0], &c, 1);
        while (r < 0 && errno == EINTR);
        _exit(r == 1 ? 0 : 1);
    }
    close(ready[0]);
    if (setup_process(&sh, log_fd) < 0 || journal_open(&sh) < 0) {
        close(ready[1]);
        shepherd_cleanup(&sh);
        return 1;
    }
    if (write(ready[1], "", 1) < 0)
        LOG_W("cannot report readiness: %s", strerror(errno));
    close(ready[1]);
    sh.idle_us = idle_ms_from_env() * 1000;
    shp_map_init(&sh.tries);
    shp_map_init(&sh.pids);
    sh.rxbuf = xmalloc(SHP_PKT_BUF);
    LOG_I("shepherd %s started (pid %d) for %s", sh.instance, (int)getpid(), home);
    run_loop(&sh);
    shepherd_cleanup(&sh);
    return 0;
}
