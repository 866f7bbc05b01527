/* kube_exec: the Kubernetes executor.  See kube_exec.h for what it
 * promises; the comments here say how.
 *
 * Objects: struct kexec (the executor), one struct kns per namespace it
 * watches, one struct ktry per try it knows of.  A ktry lives from start()
 * or adopt() until its pod is gone (deleted by us after the result was
 * reported and journaled, or seen deleted), so watch events for a pod are
 * always matched to their try by name.  One repeating timer ("tick")
 * checks the few deadlines (pending/pull timeouts, forced deletes, log
 * waits, retention, watch backoff); nothing polls the API. */
#include "kube_exec.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "kube_pod.h"
#include "log.h"
#include "util.h"

#define TERM_LOG_PATH "/dev/termination-log"
#define NBUCKETS 4096u
#define TICK_MS 100
#define WATCH_TIMEOUT_S 290
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
#define JOURNAL_KEEP 4096      /* entries kept when the journal is compacted */
/* Pod creations in flight at once: a burst of a thousand ready tasks
 * becomes a steady stream instead of a thousand connections at once
 * (the API server's and kiln's rate limits still apply). */
#define CREATES_IN_FLIGHT 16

struct kexec;

struct kns {
    struct kexec *kx;
    struct kns *next;
    char *name;
    char *rv;                   /* last resourceVersion seen */
    struct kube_req *list_req, *watch_req;
    bool listed;                /* the first list answered */
    bool relist;                /* the watch said 410: list again when it ends */
    bool orphans_done;          /* leftover pods handled (after adopt_done) */
    int backoff_ms;
    int64_t retry_at_us;        /* > 0: (re)start the watch or list then */
    /* Pods of this instance found by the first list that no try claimed. */
    struct orphan { char *name; bool finished, failed; int64_t finished_us; } *orphans;
    size_t n_orphans;
};

struct ktry {
    struct kexec *kx;
    struct kns *ns;
    struct ktry *id_next, *name_next;   /* hash chains */
    struct ktry *prev, *next;           /* all tries */
    int64_t try_id;
    char name[KUBE_NAME_MAX + 1];
    char *log_path, *outputs_path;
    int64_t grace_ms;

    bool adopting;              /* waiting for the namespace's first list */
    bool saw_running_before;    /* adopt(): the last daemon saw the container run */
    bool creating;              /* POST in flight */
    bool started_reported;
    bool ended;                 /* res is final */
    bool reported;              /* on_done called */
    bool cancel_requested;
    bool we_delete;             /* we asked for the pod's deletion */
    bool delete_wanted;         /* reported: the pod is to go now */
    bool freeing;
    struct exec_result res;
    int64_t unsched_since_us, waiting_since_us, ended_at_us;
    int64_t force_delete_at_us, delete_at_us;   /* 0: none */
    char pending_why[384];
    bool waiting_infra;

    /* log following */
    struct kube_req *log_req, *create_req, *delete_req, *get_req;
    char *create_body;          /* queued for creation (see CREATES_IN_FLIGHT) */
    struct ktry *cq_next;
    int log_fd;
    bool log_complete;
    bool log_eof;               /* the last stream ended cleanly */
    int64_t log_retry_at_us;
    int log_backoff_ms;
    bool log_resume;            /* the open stream started at sinceTime: dedupe */
    int64_t last_sec;           /* timestamp of the last line written */
    int32_t last_nsec;
    unsigned n_at_last;         /* lines written with exactly that timestamp */
    unsigned stream_dups;       /* lines of this stream at that timestamp so far */
    unsigned skip_lines;        /* adopt(): lines already in the file */
};

struct journal_entry {
    int64_t try_id;
    struct exec_result res;
};

struct kexec {
    struct executor base;
    struct kube_client *client;
    struct kube_exec_opts o;
    char *home, *instance, *default_ns, *gpu_runtime_class, *gpu_node_selector;
    char selector[160];         /* URL-encoded labelSelector value */
    struct kns *namespaces;
    struct ktry *all;
    struct ktry *by_id[NBUCKETS], *by_name[NBUCKETS];
    uv_timer_t tick;
    int journal_fd;
    struct journal_entry *journal;      /* loaded at start, for adoption */
    size_t n_journal;
    bool adopt_done;
    bool closing;
    int64_t drain_until_us;     /* closing: wait for deletions until then */
    struct kube_req *nodes_req;
    struct ktry *cq_head, *cq_tail;     /* waiting to be created, FIFO */
    unsigned creates_in_flight;
    uint64_t standins;          /* retention records of orphans, numbered */
    void (*close_cb)(struct executor *ex);
};

/* ---- small helpers ------------------------------------------------------ */

static json_object *jget(json_object *o, const char *key)
{
    json_object *v = NULL;
    if (o && json_object_is_type(o, json_type_object) && json_object_object_get_ex(o, key, &v))
        return v;
    return NULL;
}

static const char *jstr(json_object *o, const char *key)
{
    json_object *v = jget(o, key);
    return v && json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
}

static unsigned hash_str(const char *s)
{
    unsigned h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h % NBUCKETS;
}

static unsigned hash_id(int64_t id)
{
    return (unsigned)((uint64_t)id * 11400714819323198485ull >> 52) % NBUCKETS;
}

int kube_parse_time(const char *s, int64_t *sec, int32_t *nsec)
{
    if (!s)
        return -1;
    struct tm tm = { 0 };
    int n = 0;
    if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
               &tm.tm_min, &tm.tm_sec, &n) != 6)
        return -1;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    const char *p = s + n;
    int32_t ns = 0;
    if (*p == '.') {
        int digits = 0;
        for (p++; *p >= '0' && *p <= '9'; p++, digits++)
            if (digits < 9)
                ns = ns * 10 + (*p - '0');
        for (; digits < 9; digits++)
            ns *= 10;
    }
    int64_t off = 0;
    if (*p == '+' || *p == '-') {
        int hh = 0, mm = 0;
        if (sscanf(p + 1, "%2d:%2d", &hh, &mm) != 2)
            return -1;
        off = (hh * 3600 + mm * 60) * (*p == '-' ? -1 : 1);
    } else if (*p != 'Z' && *p != 'z') {
        return -1;
    }
    *sec = (int64_t)timegm(&tm) - off;
    *nsec = ns;
    return 0;
}

static int64_t time_us(const char *s)
{
    int64_t sec;
    int32_t ns;
    return kube_parse_time(s, &sec, &ns) == 0 ? sec * 1000000 + ns / 1000 : 0;
}

/* ---- what a pod's status says ------------------------------------------- */

static json_object *main_container_status(json_object *status)
{
    json_object *list = jget(status, "containerStatuses");
    if (!list || !json_object_is_type(list, json_type_array) || json_object_array_length(list) == 0)
        return NULL;
    for (size_t i = 0; i < json_object_array_length(list); i++) {
        json_object *c = json_object_array_get_idx(list, i);
        const char *n = jstr(c, "name");
        if (n && strcmp(n, KUBE_CONTAINER_NAME) == 0)
            return c;
    }
    return json_object_array_get_idx(list, 0);
}

static const char *memory_limit(json_object *pod)
{
    json_object *cs = jget(jget(pod, "spec"), "containers");
    if (!cs || !json_object_is_type(cs, json_type_array))
        return NULL;
    for (size_t i = 0; i < json_object_array_length(cs); i++) {
        json_object *c = json_object_array_get_idx(cs, i);
        const char *n = jstr(c, "name");
        if (!n || strcmp(n, KUBE_CONTAINER_NAME) == 0)
            return jstr(jget(jget(c, "resources"), "limits"), "memory");
    }
    return NULL;
}

static bool is_one_of(const char *s, const char *const *set)
{
    for (; s && *set; set++)
        if (strcmp(s, *set) == 0)
            return true;
    return false;
}

void kube_pod_observe(json_object *pod, struct kube_obs *o)
{
    memset(o, 0, sizeof *o);
    o->exit_code = -1;
    json_object *meta = jget(pod, "metadata"), *status = jget(pod, "status");
    json_object *dt = jget(meta, "deletionTimestamp");
    o->deleting = dt && !json_object_is_type(dt, json_type_null);
    const char *phase = jstr(status, "phase");
    const char *preason = jstr(status, "reason");
    const char *pmsg = jstr(status, "message");
    json_object *cs = main_container_status(status);
    json_object *state = jget(cs, "state");
    json_object *running = jget(state, "running"), *term = jget(state, "terminated"),
                *waiting = jget(state, "waiting");

    /* Pod-level endings first: they say more than the container's exit. */
    static const char *const node_lost[] = { "NodeLost", "Shutdown", "Terminated",
                                             "NodeShutdown", "UnexpectedAdmissionError",
                                             "OutOfcpu", "OutOfmemory", "OutOfpods", NULL };
    if (phase && (strcmp(phase, "Failed") == 0 || strcmp(phase, "Unknown") == 0)) {
        if (preason && strcmp(preason, "Evicted") == 0) {
            o->phase = KOBS_DONE;
            o->infra = true;
            snprintf(o->reason, sizeof o->reason, "evicted by the node: %s",
                     pmsg ? pmsg : "no message");
        } else if (preason && strcmp(preason, "DeadlineExceeded") == 0) {
            o->phase = KOBS_DONE;
            json_object *ads = jget(jget(pod, "spec"), "activeDeadlineSeconds");
            snprintf(o->reason, sizeof o->reason,
                     "exceeded its deadline (activeDeadlineSeconds=%" PRId64 "): %s",
                     ads ? json_object_get_int64(ads) : 0, pmsg ? pmsg : "");
        } else if (is_one_of(preason, node_lost) || strcmp(phase, "Unknown") == 0) {
            o->phase = KOBS_DONE;
            o->infra = true;
            snprintf(o->reason, sizeof o->reason, "node lost (%s): %s",
                     preason ? preason : "phase Unknown",
                     pmsg ? pmsg : "the pod's node stopped reporting");
        }
        if (o->phase == KOBS_DONE) {
            if (term) {
                o->started_us = time_us(jstr(term, "startedAt"));
                o->finished_us = time_us(jstr(term, "finishedAt"));
            }
            return;
        }
    }
    if (running) {
        o->phase = KOBS_RUNNING;
        o->started_us = time_us(jstr(running, "startedAt"));
    }
    if (term) {
        o->phase = KOBS_DONE;
        o->started_us = time_us(jstr(term, "startedAt"));
        o->finished_us = time_us(jstr(term, "finishedAt"));
        json_object *ec = jget(term, "exitCode");
        o->exit_code = ec ? json_object_get_int(ec) : -1;
        o->termination_message = jstr(term, "message");
        const char *tr = jstr(term, "reason");
        if (tr && strcmp(tr, "OOMKilled") == 0) {
            const char *lim = memory_limit(pod);
            o->oom = true;
            snprintf(o->reason, sizeof o->reason,
                     "OOMKilled: the container used more memory than its limit%s%s (exit code %d)",
                     lim ? " of " : "", lim ? lim : "", o->exit_code);
        } else if (tr && (strcmp(tr, "StartError") == 0 || strcmp(tr, "ContainerCannotRun") == 0)) {
            snprintf(o->reason, sizeof o->reason, "the container could not start (%s): %s", tr,
                     o->termination_message ? o->termination_message : "no message");
            o->termination_message = NULL;
            o->exit_code = -1;
        }
        return;
    }
    if (phase && (strcmp(phase, "Succeeded") == 0 || strcmp(phase, "Failed") == 0)) {
        /* Ended without a container status (rare: a pod that never ran). */
        o->phase = KOBS_DONE;
        if (strcmp(phase, "Succeeded") == 0) {
            o->exit_code = 0;
        } else {
            snprintf(o->reason, sizeof o->reason, "pod failed%s%s%s%s", preason ? " (" : "",
                     preason ? preason : "", preason ? ")" : "", pmsg ? ": " : "");
            if (pmsg) {
                size_t l = strlen(o->reason);
                snprintf(o->reason + l, sizeof o->reason - l, "%s", pmsg);
            }
        }
        return;
    }
    if (o->phase == KOBS_RUNNING)
        return;
    /* Pending: why? */
    static const char *const pull[] = { "ErrImagePull", "ImagePullBackOff", "RegistryUnavailable",
                                        NULL };
    static const char *const fatal[] = { "InvalidImageName", "ErrImageNeverPull", NULL };
    static const char *const config[] = { "CreateContainerConfigError", "CreateContainerError",
                                          NULL };
    const char *wr = jstr(waiting, "reason"), *wm = jstr(waiting, "message");
    if (is_one_of(wr, pull) || is_one_of(wr, fatal) || is_one_of(wr, config)) {
        o->waiting_error = true;
        o->waiting_fatal = is_one_of(wr, fatal);
        o->infra = is_one_of(wr, pull);
        snprintf(o->waiting_reason, sizeof o->waiting_reason, "%s", wr);
        snprintf(o->reason, sizeof o->reason, "%s: %s: %s",
                 is_one_of(wr, config) ? "the container's configuration is invalid"
                                       : "the image cannot be pulled",
                 wr, wm ? wm : "no message");
        return;
    }
    json_object *conds = jget(status, "conditions");
    for (size_t i = 0; conds && json_object_is_type(conds, json_type_array) &&
                       i < json_object_array_length(conds); i++) {
        json_object *c = json_object_array_get_idx(conds, i);
        const char *t = jstr(c, "type"), *st = jstr(c, "status"), *r = jstr(c, "reason");
        if (t && strcmp(t, "PodScheduled") == 0 && st && strcmp(st, "False") == 0 && r &&
            strcmp(r, "Unschedulable") == 0) {
            o->unschedulable = true;
            snprintf(o->reason, sizeof o->reason, "%s",
                     jstr(c, "message") ? jstr(c, "message") : "no node fits the pod");
        }
    }
}

/* ---- the journal: results reported, for adoption ------------------------ */

static void reason_clean(char *s)
{
    for (; *s; s++)
        if (*s == '\t' || *s == '\n' || *s == '\r')
            *s = ' ';
}

static void journal_append(struct kexec *kx, int64_t try_id, const struct exec_result *r)
{
    if (kx->journal_fd < 0)
        return;
    char reason[sizeof r->reason];
    snprintf(reason, sizeof reason, "%s", r->reason);
    reason_clean(reason);
    char line[1024];
    int n = snprintf(line, sizeof line, "%" PRId64 "\t%d\t%d\t%d\t%d\t%" PRId64 "\t%" PRId64 "\t%s\n",
                     try_id, r->exit_code, r->term_signal, (int)r->lost, (int)r->infra, r->start_us,
                     r->end_us, reason);
    if (n > (int)sizeof line - 1)
        n = (int)sizeof line - 1, line[n - 1] = '\n';
    /* One write(2) with O_APPEND: a kill -9 leaves whole lines or none. */
    if (write(kx->journal_fd, line, (size_t)n) != n)
        LOG_W("kubernetes: cannot append to the journal: %s", strerror(errno));
}

static void journal_load(struct kexec *kx)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/kube.journal", kx->home);
    char *data = NULL;
    size_t len = 0;
    if (file_read_all(path, &data, &len) == 0) {
        size_t cap = 0;
        for (char *line = data, *nl; line < data + len && (nl = memchr(line, '\n', (size_t)(data + len - line)));
             line = nl + 1) {
            *nl = 0;
            struct journal_entry e = { 0 };
            int lost = 0, infra = 0, off = 0;
            if (sscanf(line, "%" SCNd64 "\t%d\t%d\t%d\t%d\t%" SCNd64 "\t%" SCNd64 "\t%n", &e.try_id,
                       &e.res.exit_code, &e.res.term_signal, &lost, &infra, &e.res.start_us,
                       &e.res.end_us, &off) < 7 || off == 0)
                continue;   /* a torn or foreign line */
            e.res.lost = lost;
            e.res.infra = infra;
            e.res.try_id = e.try_id;
            snprintf(e.res.reason, sizeof e.res.reason, "%s", line + off);
            if (kx->n_journal == cap) {
                cap = cap ? cap * 2 : 64;
                kx->journal = xrealloc(kx->journal, cap * sizeof *kx->journal);
            }
            kx->journal[kx->n_journal++] = e;
        }
    }
    free(data);
    /* Compact: only recent entries can still be wanted by an adoption. */
    if (kx->n_journal > 2 * JOURNAL_KEEP) {
        size_t drop = kx->n_journal - JOURNAL_KEEP;
        memmove(kx->journal, kx->journal + drop, JOURNAL_KEEP * sizeof *kx->journal);
        kx->n_journal = JOURNAL_KEEP;
        char tmp[4300];
        snprintf(tmp, sizeof tmp, "%s.tmp", path);
        int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd >= 0) {
            kx->journal_fd = fd;
            for (size_t i = 0; i < kx->n_journal; i++)
                journal_append(kx, kx->journal[i].try_id, &kx->journal[i].res);
            close(fd);
            if (rename(tmp, path) < 0)
                unlink(tmp);
        }
    }
    kx->journal_fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (kx->journal_fd < 0)
        LOG_W("kubernetes: cannot open %s: %s", path, strerror(errno));
}

static const struct exec_result *journal_find(struct kexec *kx, int64_t try_id)
{
    for (size_t i = kx->n_journal; i-- > 0;)
        if (kx->journal[i].try_id == try_id)
            return &kx->journal[i].res;
    return NULL;
}

/* ---- tries: lookup and lifetime ----------------------------------------- */

static struct ktry *try_by_id(struct kexec *kx, int64_t id)
{
    for (struct ktry *t = kx->by_id[hash_id(id)]; t; t = t->id_next)
        if (t->try_id == id && !t->freeing)
            return t;
    return NULL;
}

static struct ktry *try_by_name(struct kexec *kx, struct kns *ns, const char *name)
{
    for (struct ktry *t = kx->by_name[hash_str(name)]; t; t = t->name_next)
        if (t->ns == ns && strcmp(t->name, name) == 0 && !t->freeing)
            return t;
    return NULL;
}

static void try_unlink(struct kexec *kx, struct ktry *t)
{
    struct ktry **pp = &kx->by_id[hash_id(t->try_id)];
    while (*pp && *pp != t)
        pp = &(*pp)->id_next;
    if (*pp)
        *pp = t->id_next;
    pp = &kx->by_name[hash_str(t->name)];
    while (*pp && *pp != t)
        pp = &(*pp)->name_next;
    if (*pp)
        *pp = t->name_next;
    if (t->prev)
        t->prev->next = t->next;
    else
        kx->all = t->next;
    if (t->next)
        t->next->prev = t->prev;
}

static void try_free(struct ktry *t)
{
    struct kexec *kx = t->kx;
    t->freeing = true;
    /* Cancelling runs the done callbacks now; they see `freeing`. */
    if (t->create_req)
        kube_request_cancel(t->create_req);
    if (t->log_req)
        kube_request_cancel(t->log_req);
    if (t->delete_req)
        kube_request_cancel(t->delete_req);
    if (t->get_req)
        kube_request_cancel(t->get_req);
    try_unlink(kx, t);
    if (t->create_body) {
        struct ktry **pp = &kx->cq_head, *prev = NULL;
        while (*pp && *pp != t)
            prev = *pp, pp = &(*pp)->cq_next;
        if (*pp) {
            *pp = t->cq_next;
            if (kx->cq_tail == t)
                kx->cq_tail = prev;
        }
        free(t->create_body);
    }
    if (t->log_fd >= 0)
        close(t->log_fd);
    free(t->log_path);
    free(t->outputs_path);
    free(t);
}

static void ns_ensure_watch(struct kns *ns);

static struct kns *ns_get(struct kexec *kx, const char *name)
{
    for (struct kns *ns = kx->namespaces; ns; ns = ns->next)
        if (strcmp(ns->name, name) == 0)
            return ns;
    struct kns *ns = xcalloc(1, sizeof *ns);
    ns->kx = kx;
    ns->name = xstrdup(name);
    ns->backoff_ms = BACKOFF_MIN_MS;
    ns->next = kx->namespaces;
    kx->namespaces = ns;
    ns_ensure_watch(ns);
    return ns;
}

/* Into the id and name tables and the list of all tries. */
static void try_link(struct kexec *kx, struct ktry *t)
{
    unsigned hi = hash_id(t->try_id), hn = hash_str(t->name);
    t->id_next = kx->by_id[hi];
    kx->by_id[hi] = t;
    t->name_next = kx->by_name[hn];
    kx->by_name[hn] = t;
    t->next = kx->all;
    if (kx->all)
        kx->all->prev = t;
    kx->all = t;
}

static struct ktry *try_new(struct kexec *kx, struct kns *ns, const struct exec_spec *spec)
{
    struct ktry *t = xcalloc(1, sizeof *t);
    t->kx = kx;
    t->ns = ns;
    t->try_id = spec->try_id;
    t->log_fd = -1;
    t->log_backoff_ms = BACKOFF_MIN_MS;
    t->log_path = xstrdup(spec->log_path);
    size_t l = strlen(spec->log_path);
    if (l > 4 && strcmp(spec->log_path + l - 4, ".log") == 0)
        l -= 4;
    t->outputs_path = xasprintf("%.*s.outputs.json", (int)l, spec->log_path);
    struct kube_pod_ids ids = {
        .instance = kx->instance, .dag_id = spec->dag_id, .run_id = spec->run_id,
        .task_id = spec->task_id, .try_number = spec->try_number, .try_id = spec->try_id,
    };
    kube_pod_name(&ids, t->name);
    try_link(kx, t);
    return t;
}

/* ---- deleting pods ------------------------------------------------------ */

static void close_maybe_finish(struct kexec *kx);

static void on_deleted(struct kube_req *req, const struct kube_result *res, void *arg)
{
    (void)req;
    struct ktry *t = arg;
    t->delete_req = NULL;
    if (t->kx->closing) {
        t->delete_wanted = false;
        close_maybe_finish(t->kx);
        return;
    }
    if (t->freeing)
        return;
    if (res->outcome == KUBE_OK || res->http == 404) {
        /* Reported and gone from the API: nothing more will be said of it.
         * (A graceful delete of a running pod completes later; the watch's
         * DELETED event ends the try then.) */
        if (t->reported && (res->http == 404 || !t->cancel_requested || t->ended))
            try_free(t);
        return;
    }
    LOG_W("kubernetes: cannot delete pod %s/%s: %s", t->ns->name, t->name, res->message);
    if (t->reported)
        t->delete_at_us = now_us() + 5 * 1000000;   /* try again later */
}

static void pod_delete(struct ktry *t, int64_t grace_s)
{
    struct kexec *kx = t->kx;
    if (t->delete_req || (kx->closing && !t->delete_wanted))
        return;
    char path[512];
    snprintf(path, sizeof path, "/api/v1/namespaces/%s/pods/%s?gracePeriodSeconds=%" PRId64,
             t->ns->name, t->name, grace_s);
    t->we_delete = true;
    t->delete_req = kube_request(kx->client, "DELETE", path, NULL, NULL, on_deleted, NULL, t);
}

static void orphan_delete_done(struct kube_req *req, const struct kube_result *res, void *arg)
{
    (void)req;
    (void)arg;
    if (res->outcome != KUBE_OK && res->http != 404)
        LOG_W("kubernetes: cannot delete a leftover pod: %s", res->message);
}

static void orphan_delete(struct kns *ns, const char *name)
{
    char path[512];
    snprintf(path, sizeof path, "/api/v1/namespaces/%s/pods/%s", ns->name, name);
    LOG_I("kubernetes: deleting pod %s/%s: no try of this instance wants it", ns->name, name);
    kube_request(ns->kx->client, "DELETE", path, NULL, NULL, orphan_delete_done, NULL, ns->kx);
}

/* ---- reporting ---------------------------------------------------------- */

static void write_outputs(struct ktry *t, const char *msg)
{
    if (!msg || !*msg)
        return;
    if (file_write_atomic(t->outputs_path, msg, strlen(msg), 0644) < 0)
        LOG_W("kubernetes: cannot write %s", t->outputs_path);
}

static void log_finish(struct ktry *t);

/* Reports the result as soon as the pod's status says how it ended: the
 * hand-off to downstream tasks does not wait for the log stream, which
 * goes on into the file; the pod is deleted only once the log is complete
 * (log_finish), or log_wait_ms after the end if the log never completes. */
static void report(struct ktry *t)
{
    struct kexec *kx = t->kx;
    if (t->reported)
        return;
    t->reported = true;
    t->res.try_id = t->try_id;
    if (!t->res.end_us)
        t->res.end_us = now_us();
    /* Journal before telling the scheduler, and the scheduler before the
     * pod goes: whatever dies when, the result is somewhere. */
    journal_append(kx, t->try_id, &t->res);
    struct exec_result res = t->res;
    bool success = !res.lost && !res.spawn_failed && !res.term_signal && res.exit_code == 0;
    /* Kept for a look only when the container ran and failed; a pod that
     * never ran (unschedulable, no image) would hold its request.  Decided
     * before on_done, which may stop the daemon (then close() deletes it). */
    if (success || kx->o.keep_failed_ms == 0 || t->cancel_requested || !res.start_us)
        t->delete_wanted = true;
    else if (kx->o.keep_failed_ms > 0)
        t->delete_at_us = now_us() + kx->o.keep_failed_ms * 1000;
    kx->base.on_done(kx->base.cb_arg, &res);
    if (!try_by_id(kx, res.try_id) || kx->closing)
        return;
    if (t->log_complete)
        log_finish(t);
}

static void maybe_report(struct ktry *t)
{
    if (t->ended && !t->reported)
        report(t);
}

/* The log is complete (or given up on): close the file; a reported pod
 * that is to go goes now. */
static void log_finish(struct ktry *t)
{
    t->log_complete = true;
    if (t->log_req) {
        struct kube_req *r = t->log_req;
        t->log_req = NULL;
        kube_request_cancel(r);
    }
    if (t->log_fd >= 0) {
        close(t->log_fd);
        t->log_fd = -1;
    }
    if (t->reported && t->delete_wanted)
        pod_delete(t, 0);
}

static void end_try(struct ktry *t, const struct exec_result *r)
{
    if (t->ended)
        return;
    t->ended = true;
    t->ended_at_us = now_us();
    int64_t start = t->res.start_us;
    t->res = *r;
    if (!t->res.start_us)
        t->res.start_us = start;
    maybe_report(t);
}

/* An ending that is not the container's own exit (API refusal, deleted pod,
 * timeouts before it ran). */
static void end_with(struct ktry *t, bool infra, bool nothing_ran, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void end_with(struct ktry *t, bool infra, bool nothing_ran, const char *fmt, ...)
{
    struct exec_result r = { .try_id = t->try_id, .lost = true, .infra = infra };
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r.reason, sizeof r.reason, fmt, ap);
    va_end(ap);
    if (t->cancel_requested) {
        r.lost = false;
        r.infra = false;
        r.term_signal = SIGTERM;
        snprintf(r.reason, sizeof r.reason, "cancelled: pod deleted");
    }
    if (nothing_ran)
        t->log_complete = true;
    end_try(t, &r);
}

/* ---- log following ------------------------------------------------------ */

static void log_write(struct ktry *t, const char *text, size_t len)
{
    if (t->log_fd < 0) {
        t->log_fd = open(t->log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (t->log_fd < 0) {
            LOG_W("kubernetes: cannot open %s: %s", t->log_path, strerror(errno));
            return;
        }
    }
    /* One writev: a line and its newline reach the file together. */
    struct iovec iov[2] = { { (void *)text, len }, { (void *)"\n", 1 } };
    if (writev(t->log_fd, iov, 2) != (ssize_t)(len + 1))
        LOG_W("kubernetes: short write to %s", t->log_path);
}

static void on_log_line(struct kube_req *req, const char *line, size_t len, void *arg)
{
    (void)req;
    struct ktry *t = arg;
    if (t->freeing || t->log_complete)
        return;
    /* "2026-11-21T15:55:09.123456789Z text": the timestamp is ours to keep
     * aside (the resume cursor), the text goes to the file. */
    const char *sp = memchr(line, ' ', len);
    int64_t sec = 0;
    int32_t nsec = 0;
    char ts[64];
    bool have_ts = false;
    if (sp && (size_t)(sp - line) < sizeof ts) {
        memcpy(ts, line, (size_t)(sp - line));
        ts[sp - line] = 0;
        have_ts = kube_parse_time(ts, &sec, &nsec) == 0;
    }
    const char *text = have_ts ? sp + 1 : line;
    size_t tlen = have_ts ? len - (size_t)(sp + 1 - line) : len;
    if (have_ts) {
        bool older = sec < t->last_sec || (sec == t->last_sec && nsec < t->last_nsec);
        bool same = sec == t->last_sec && nsec == t->last_nsec;
        if (t->log_resume && (older || (same && t->stream_dups++ < t->n_at_last)))
            return;     /* written before the reconnect */
        if (same) {
            t->n_at_last++;
        } else if (!older) {
            t->last_sec = sec;
            t->last_nsec = nsec;
            t->n_at_last = 1;
        }
    }
    t->log_backoff_ms = BACKOFF_MIN_MS;     /* it flows: a break resumes at once */
    if (t->skip_lines > 0) {
        t->skip_lines--;    /* adopted: already in the file */
        return;
    }
    log_write(t, text, tlen);
}

static void log_follow(struct ktry *t);

static void on_log_done(struct kube_req *req, const struct kube_result *res, void *arg)
{
    (void)req;
    struct ktry *t = arg;
    t->log_req = NULL;
    if (t->freeing || t->log_complete)
        return;
    if (res->outcome == KUBE_OK) {
        t->log_backoff_ms = BACKOFF_MIN_MS;
        if (t->ended) {
            log_finish(t);      /* the stream ends when the container does */
        } else {
            /* A follow ends cleanly when the container exits, which the
             * watch has not said yet; if it is still running after all (a
             * proxy closed the stream), resume. */
            t->log_eof = true;
            t->log_retry_at_us = now_us() + 500 * 1000;
        }
        return;
    }
    if (res->http == 404) {
        log_finish(t);          /* the pod is gone: nothing more to read */
        return;
    }
    if (res->http == 400 && !t->ended)
        return;     /* still waiting to start: the watch will say when it runs */
    t->log_retry_at_us = now_us() + t->log_backoff_ms * 1000;
    if (t->log_backoff_ms < BACKOFF_MAX_MS)
        t->log_backoff_ms *= 2;
}

static void log_follow(struct ktry *t)
{
    struct kexec *kx = t->kx;
    if (t->log_req || t->log_complete || kx->closing)
        return;
    t->log_retry_at_us = 0;
    t->log_eof = false;
    char path[768];
    int n = snprintf(path, sizeof path,
                     "/api/v1/namespaces/%s/pods/%s/log?container=" KUBE_CONTAINER_NAME
                     "&follow=true&timestamps=true", t->ns->name, t->name);
    t->log_resume = t->last_sec > 0;
    t->stream_dups = 0;
    if (t->log_resume) {
        /* sinceTime has whole seconds: the lines of that second come again
         * and are skipped by timestamp. */
        struct tm tm;
        time_t s = (time_t)t->last_sec;
        gmtime_r(&s, &tm);
        strftime(path + n, sizeof path - (size_t)n, "&sinceTime=%Y-%m-%dT%H%%3A%M%%3A%SZ", &tm);
    }
    t->log_req = kube_request(kx->client, "GET", path, NULL, NULL, on_log_done, on_log_line, t);
}

/* ---- pod events --------------------------------------------------------- */

static void handle_pod(struct kns *ns, json_object *pod, bool deleted);

static void on_pod_event(struct ktry *t, json_object *pod)
{
    struct kexec *kx = t->kx;
    t->adopting = false;
    struct kube_obs o;
    kube_pod_observe(pod, &o);
    if (o.started_us && !t->res.start_us)
        t->res.start_us = o.started_us;
    if (o.phase >= KOBS_RUNNING && o.started_us && !t->started_reported) {
        t->started_reported = true;
        char id[400];
        snprintf(id, sizeof id, "kube:%s/%s", t->ns->name, t->name);
        if (kx->base.on_started)
            kx->base.on_started(kx->base.cb_arg, t->try_id, id, o.started_us);
    }
    if (o.phase >= KOBS_RUNNING && o.started_us && !t->log_complete && !t->log_req &&
        !t->log_retry_at_us)
        log_follow(t);
    if (o.phase == KOBS_PENDING) {
        int64_t now = now_us();
        if (o.unschedulable) {
            if (!t->unsched_since_us)
                t->unsched_since_us = now;
        } else {
            t->unsched_since_us = 0;
        }
        if (o.waiting_error) {
            if (!t->waiting_since_us)
                t->waiting_since_us = now;
            t->waiting_infra = o.infra;
            if (o.waiting_fatal) {
                end_with(t, false, true, "%s", o.reason);
                return;
            }
        } else {
            t->waiting_since_us = 0;
        }
        snprintf(t->pending_why, sizeof t->pending_why, "%s", o.reason);
        return;
    }
    if (o.phase != KOBS_DONE || t->ended)
        return;
    struct exec_result r = { .try_id = t->try_id, .start_us = o.started_us,
                             .end_us = o.finished_us ? o.finished_us : now_us() };
    write_outputs(t, o.termination_message);
    if (t->cancel_requested && !(o.exit_code == 0 && !o.reason[0])) {
        r.term_signal = SIGTERM;
        snprintf(r.reason, sizeof r.reason, "cancelled: pod deleted");
    } else if (o.deleting && !t->we_delete && !(o.exit_code == 0 && !o.reason[0])) {
        /* Killed because someone deleted the pod (kubectl delete, an
         * API-initiated eviction, a drained node): not the task's doing. */
        const char *node = jstr(jget(pod, "spec"), "nodeName");
        r.lost = true;
        r.infra = true;
        snprintf(r.reason, sizeof r.reason, "pod %s was deleted by someone else%s%s%s", t->name,
                 node ? " (it was on node " : "", node ? node : "", node ? ")" : "");
    } else if (o.exit_code >= 0 && !o.infra && (o.oom || !o.reason[0])) {
        r.exit_code = o.exit_code;
        snprintf(r.reason, sizeof r.reason, "%s", o.reason);
    } else {
        r.lost = true;
        r.infra = o.infra;
        snprintf(r.reason, sizeof r.reason, "%s", o.reason[0] ? o.reason : "the pod failed");
    }
    if (!o.started_us)
        t->log_complete = true;     /* the container never ran: no log to wait for */
    if (t->log_eof && !t->log_req)
        t->log_complete = true;     /* its follow stream already ended */
    end_try(t, &r);
}

static void on_pod_gone(struct ktry *t, json_object *pod)
{
    struct kexec *kx = t->kx;
    int64_t id = t->try_id;
    if (!t->ended) {
        const char *node = jstr(jget(pod, "spec"), "nodeName");
        if (t->cancel_requested || t->we_delete)
            end_with(t, false, false, "deleted");
        else
            end_with(t, true, false, "pod %s was deleted by someone else%s%s%s", t->name,
                     node ? " (it was on node " : "", node ? node : "", node ? ")" : "");
    }
    /* The pod is gone: its log will not grow, what was read is all, and
     * nothing more will be said of it. */
    if (t->reported && try_by_id(kx, id) == t)
        try_free(t);
}

static void handle_pod(struct kns *ns, json_object *pod, bool deleted)
{
    struct kexec *kx = ns->kx;
    const char *name = jstr(jget(pod, "metadata"), "name");
    if (!name)
        return;
    struct ktry *t = try_by_name(kx, ns, name);
    if (!t) {
        if (!ns->listed && !deleted) {
            /* The first list: remember it; after adoption it is an orphan
             * unless some try claims it. */
            struct kube_obs o;
            kube_pod_observe(pod, &o);
            ns->orphans = xrealloc(ns->orphans, (ns->n_orphans + 1) * sizeof *ns->orphans);
            ns->orphans[ns->n_orphans++] = (struct orphan){
                .name = xstrdup(name), .finished = o.phase == KOBS_DONE,
                .failed = o.phase == KOBS_DONE && (o.exit_code != 0 || o.reason[0]),
                .finished_us = o.finished_us ? o.finished_us : now_us(),
            };
        }
        return;
    }
    if (deleted)
        on_pod_gone(t, pod);
    else if (!t->reported)
        on_pod_event(t, pod);
}

/* ---- adoption ----------------------------------------------------------- */

static void resolve_missing(struct ktry *t)
{
    struct kexec *kx = t->kx;
    t->adopting = false;
    const struct exec_result *j = journal_find(kx, t->try_id);
    if (j) {
        /* It ended and was reported before the restart; the scheduler may
         * not have committed it.  Report it again, as it was. */
        struct exec_result r = *j;
        t->res = r;
        t->ended = true;
        t->log_complete = true;
        t->reported = true;
        kx->base.on_done(kx->base.cb_arg, &r);
        if (try_by_id(kx, r.try_id) == t)
            try_free(t);
        return;
    }
    if (t->saw_running_before) {
        t->log_complete = true;
        end_with(t, true, true,
                 "pod %s disappeared while the daemon was down (deleted by someone else?)",
                 t->name);
        return;
    }
    /* Never created (the daemon stopped between recording the try and
     * creating its pod): the scheduler starts it now, once. */
    struct exec_result r = { .try_id = t->try_id, .never_started = true };
    snprintf(r.reason, sizeof r.reason, "no pod was created");
    try_free(t);
    kx->base.on_done(kx->base.cb_arg, &r);
}

static void on_adopt_get(struct kube_req *req, const struct kube_result *res, void *arg)
{
    (void)req;
    struct ktry *t = arg;
    t->get_req = NULL;
    if (t->freeing)
        return;
    if (res->outcome == KUBE_OK && res->json)
        handle_pod(t->ns, res->json, false);
    else if (res->http == 404)
        resolve_missing(t);
    else
        end_with(t, true, true, "could not read pod %s: %s", t->name, res->message);
}

static void handle_orphans(struct kns *ns)
{
    struct kexec *kx = ns->kx;
    if (!ns->listed || !kx->adopt_done || ns->orphans_done)
        return;
    ns->orphans_done = true;
    int64_t now = now_us();
    for (size_t i = 0; i < ns->n_orphans; i++) {
        struct orphan *o = &ns->orphans[i];
        if (try_by_name(kx, ns, o->name)) {
            free(o->name);
            continue;   /* claimed after all */
        }
        if (o->failed && kx->o.keep_failed_ms != 0) {
            if (kx->o.keep_failed_ms > 0) {
                int64_t at = o->finished_us + kx->o.keep_failed_ms * 1000;
                if (at <= now) {
                    orphan_delete(ns, o->name);
                } else {
                    /* A retention timer needs a try record: a finished stand-in. */
                    struct ktry *t = xcalloc(1, sizeof *t);
                    t->kx = kx;
                    t->ns = ns;
                    t->log_fd = -1;
                    t->try_id = INT64_MIN + (int64_t)kx->standins++;   /* no real try's id */
                    snprintf(t->name, sizeof t->name, "%s", o->name);
                    t->ended = t->reported = t->log_complete = true;
                    t->delete_at_us = at;
                    try_link(kx, t);
                }
            }
        } else {
            orphan_delete(ns, o->name);
        }
        free(o->name);
    }
    free(ns->orphans);
    ns->orphans = NULL;
    ns->n_orphans = 0;
}

/* ---- the namespace watch ------------------------------------------------ */

static void ns_list(struct kns *ns);
static void ns_watch(struct kns *ns);

static void ns_backoff(struct kns *ns)
{
    ns->retry_at_us = now_us() + ns->backoff_ms * 1000;
    if (ns->backoff_ms < BACKOFF_MAX_MS)
        ns->backoff_ms *= 2;
}

static void set_rv(struct kns *ns, json_object *obj)
{
    const char *rv = jstr(jget(obj, "metadata"), "resourceVersion");
    if (rv && (!ns->rv || strcmp(ns->rv, rv) != 0)) {
        free(ns->rv);
        ns->rv = xstrdup(rv);
    }
}

static void on_list(struct kube_req *req, const struct kube_result *res, void *arg)
{
    (void)req;
    struct kns *ns = arg;
    struct kexec *kx = ns->kx;
    ns->list_req = NULL;
    if (kx->closing)
        return;
    if (res->outcome != KUBE_OK || !res->json) {
        LOG_W("kubernetes: cannot list pods in namespace %s: %s", ns->name, res->message);
        ns_backoff(ns);
        return;
    }
    ns->backoff_ms = BACKOFF_MIN_MS;
    set_rv(ns, res->json);
    json_object *items = jget(res->json, "items");
    size_t n = items && json_object_is_type(items, json_type_array) ? json_object_array_length(items) : 0;
    /* Which of our tries' pods are in this snapshot?  (By id: a callback
     * below may end and free a try.) */
    size_t k = 0;
    for (struct ktry *t = kx->all; t; t = t->next)
        k += t->ns == ns;
    int64_t *ids = xcalloc(k + 1, sizeof *ids);
    bool *seen = xcalloc(k + 1, sizeof *seen);
    k = 0;
    for (struct ktry *t = kx->all; t; t = t->next)
        if (t->ns == ns)
            ids[k++] = t->try_id;
    for (size_t i = 0; i < n; i++) {
        json_object *pod = json_object_array_get_idx(items, i);
        const char *name = jstr(jget(pod, "metadata"), "name");
        struct ktry *t = name ? try_by_name(kx, ns, name) : NULL;
        for (size_t j = 0; t && j < k; j++)
            if (ids[j] == t->try_id)
                seen[j] = true;
        handle_pod(ns, pod, false);
    }
    bool first = !ns->listed;
    ns->listed = true;
    /* Tries whose pod is not in the snapshot: never created (adoption), or
     * deleted while the watch was away (a relist after 410). */
    for (size_t j = 0; j < k; j++) {
        struct ktry *t = seen[j] ? NULL : try_by_id(kx, ids[j]);
        if (!t)
            continue;
        if (t->adopting && !t->get_req)
            resolve_missing(t);
        else if (!first && !t->creating && !t->reported && !t->ended && !t->adopting)
            on_pod_gone(t, NULL);
    }
    free(seen);
    free(ids);
    handle_orphans(ns);
    ns_watch(ns);
}

static void ns_list(struct kns *ns)
{
    struct kexec *kx = ns->kx;
    if (ns->list_req || kx->closing)
        return;
    ns->retry_at_us = 0;
    char path[512];
    snprintf(path, sizeof path, "/api/v1/namespaces/%s/pods?labelSelector=%s", ns->name,
             kx->selector);
    ns->list_req = kube_request(kx->client, "GET", path, NULL, NULL, on_list, NULL, ns);
}

static void on_watch_line(struct kube_req *req, const char *line, size_t len, void *arg)
{
    (void)req;
    (void)len;
    struct kns *ns = arg;
    json_object *ev = json_tokener_parse(line);
    if (!ev)
        return;
    const char *type = jstr(ev, "type");
    json_object *obj = jget(ev, "object");
    if (!type || !obj) {
        json_object_put(ev);
        return;
    }
    if (strcmp(type, "ERROR") == 0) {
        /* 410 Gone arrives as an event inside a 200: our resourceVersion is
         * too old.  List again (a fresh snapshot) when the stream ends. */
        json_object *code = jget(obj, "code");
        if (code && json_object_get_int(code) == 410) {
            ns->relist = true;
        } else {
            LOG_W("kubernetes: watch error in %s: %s", ns->name,
                  jstr(obj, "message") ? jstr(obj, "message") : line);
        }
    } else if (strcmp(type, "BOOKMARK") == 0) {
        set_rv(ns, obj);
    } else {
        set_rv(ns, obj);
        LOG_D("kubernetes: %s %s/%s rv %s", type, ns->name,
              jstr(jget(obj, "metadata"), "name") ? jstr(jget(obj, "metadata"), "name") : "?",
              ns->rv ? ns->rv : "");
        handle_pod(ns, obj, strcmp(type, "DELETED") == 0);
    }
    json_object_put(ev);
}

static void on_watch_done(struct kube_req *req, const struct kube_result *res, void *arg)
{
    (void)req;
    struct kns *ns = arg;
    struct kexec *kx = ns->kx;
    ns->watch_req = NULL;
    if (kx->closing)
        return;
    LOG_D("kubernetes: watch of %s done: outcome %d http %ld %s", ns->name, (int)res->outcome,
          res->http, res->message);
    if (ns->relist || res->http == 410) {
        ns->relist = false;
        ns_list(ns);
    } else if (res->outcome == KUBE_OK) {
        ns->backoff_ms = BACKOFF_MIN_MS;
        ns_watch(ns);           /* the server's timeout: carry on from rv */
    } else {
        LOG_I("kubernetes: watch of namespace %s ended (%s); resuming from %s", ns->name,
              res->message[0] ? res->message : res->reason, ns->rv ? ns->rv : "a new list");
        ns_backoff(ns);
    }
}

static void ns_watch(struct kns *ns)
{
    struct kexec *kx = ns->kx;
    if (ns->watch_req || kx->closing)
        return;
    if (!ns->rv) {
        ns_list(ns);
        return;
    }
    ns->retry_at_us = 0;
    char path[700];
    snprintf(path, sizeof path,
             "/api/v1/namespaces/%s/pods?watch=1&allowWatchBookmarks=true&resourceVersion=%s"
             "&timeoutSeconds=%d&labelSelector=%s", ns->name, ns->rv, WATCH_TIMEOUT_S,
             kx->selector);
    LOG_D("kubernetes: watching namespace %s from rv %s", ns->name, ns->rv);
    ns->watch_req = kube_request(kx->client, "GET", path, NULL, NULL, on_watch_done,
                                 on_watch_line, ns);
}

static void ns_ensure_watch(struct kns *ns)
{
    if (!ns->listed)
        ns_list(ns);
    else
        ns_watch(ns);
}

/* ---- the tick: deadlines ------------------------------------------------ */

static void on_tick(uv_timer_t *h)
{
    struct kexec *kx = container_of(h, struct kexec, tick);
    if (kx->closing) {
        close_maybe_finish(kx);
        return;
    }
    int64_t now = now_us();
    for (struct kns *ns = kx->namespaces; ns; ns = ns->next)
        if (ns->retry_at_us && now >= ns->retry_at_us && !ns->list_req && !ns->watch_req)
            ns_ensure_watch(ns);
    for (struct ktry *t = kx->all, *next; t && !kx->closing; t = next) {
        next = t->next;
        if (t->log_retry_at_us && now >= t->log_retry_at_us && !t->log_req) {
            t->log_retry_at_us = 0;
            log_follow(t);
        }
        if (t->reported) {
            if (!t->log_complete && now >= t->ended_at_us + kx->o.log_wait_ms * 1000) {
                LOG_W("kubernetes: the log of pod %s/%s did not complete within %" PRId64
                      " ms of its end; it may miss its last lines", t->ns->name, t->name,
                      kx->o.log_wait_ms);
                log_finish(t);
            }
            if (t->delete_at_us && now >= t->delete_at_us) {
                t->delete_at_us = 0;
                pod_delete(t, 0);
            }
            continue;
        }
        if (t->cancel_requested && t->force_delete_at_us && now >= t->force_delete_at_us &&
            !t->ended) {
            /* The grace period is over: force. */
            t->force_delete_at_us = 0;
            if (t->delete_req) {
                struct kube_req *r = t->delete_req;
                t->delete_req = NULL;
                kube_request_cancel(r);
            }
            pod_delete(t, 0);
            continue;
        }
        if (!t->ended && t->unsched_since_us &&
            now - t->unsched_since_us >= kx->o.pending_timeout_ms * 1000) {
            char d[32];
            duration_format(kx->o.pending_timeout_ms, d, sizeof d);
            end_with(t, false, true, "unschedulable for %s: %s", d, t->pending_why);
            continue;
        }
        if (!t->ended && t->waiting_since_us &&
            now - t->waiting_since_us >= kx->o.image_pull_grace_ms * 1000) {
            end_with(t, t->waiting_infra, true, "%s", t->pending_why);
            continue;
        }
    }
}

/* ---- executor operations ------------------------------------------------ */

static const char *try_namespace(struct kexec *kx, const struct exec_spec *spec)
{
    if (spec->kube && spec->kube->namespace_ && spec->kube->namespace_[0])
        return spec->kube->namespace_;
    return kx->default_ns;
}

static void on_created(struct kube_req *req, const struct kube_result *res, void *arg);

static void create_pump(struct kexec *kx)
{
    while (kx->creates_in_flight < CREATES_IN_FLIGHT && kx->cq_head) {
        struct ktry *t = kx->cq_head;
        kx->cq_head = t->cq_next;
        if (!kx->cq_head)
            kx->cq_tail = NULL;
        char *body = t->create_body;
        t->create_body = NULL;
        if (t->cancel_requested) {
            free(body);
            t->creating = false;
            end_with(t, false, true, "cancelled before its pod was created");
            continue;
        }
        char path[512];
        snprintf(path, sizeof path, "/api/v1/namespaces/%s/pods", t->ns->name);
        kx->creates_in_flight++;
        t->create_req = kube_request(kx->client, "POST", path, body, NULL, on_created, NULL, t);
        free(body);
    }
}

static void on_created(struct kube_req *req, const struct kube_result *res, void *arg)
{
    (void)req;
    struct ktry *t = arg;
    struct kexec *kx = t->kx;
    t->create_req = NULL;
    t->creating = false;
    kx->creates_in_flight--;
    if (!kx->closing)
        create_pump(kx);
    if (t->freeing || kx->closing)
        return;
    if (res->outcome == KUBE_OK) {
        if (res->json && !t->ended)
            handle_pod(t->ns, res->json, false);
        if (t->cancel_requested)
            pod_delete(t, (t->grace_ms + 999) / 1000);
        return;
    }
    if (res->http == 409 && strcmp(res->reason, "AlreadyExists") == 0) {
        /* The deterministic name is taken: this try's pod from before a
         * restart (adopt it), or somebody else's (refuse). */
        char path[512];
        snprintf(path, sizeof path, "/api/v1/namespaces/%s/pods/%s", t->ns->name, t->name);
        t->get_req = kube_request(kx->client, "GET", path, NULL, NULL, on_adopt_get, NULL, t);
        t->adopting = true;
        return;
    }
    if (res->outcome == KUBE_TRANSIENT) {
        end_with(t, true, true, "Kubernetes API unavailable, pod not created: %s (after %d attempts)",
                 res->message, res->attempts);
        /* The create may have reached the server before the failure: make
         * sure no pod runs a try the scheduler will retry under another name. */
        if (try_by_id(kx, t->try_id) == t)
            pod_delete(t, 0);
    } else {
        end_with(t, false, true, "Kubernetes refused the pod: %s", res->message);
    }
}

/* The env of a pod: the task's own and kiln's, KILN_OUTPUTS pointing at the
 * termination message; daemon-side paths are dropped. */
static struct kube_kv *pod_env(char *const *env, size_t *n_out, char **storage)
{
    size_t n = 0;
    while (env && env[n])
        n++;
    struct kube_kv *kv = xcalloc(n + 1, sizeof *kv);
    char *buf = xcalloc(1, 1);
    size_t m = 0, len = 0;
    size_t *offs = xcalloc(2 * n + 2, sizeof *offs);
    for (size_t i = 0; i < n; i++) {
        const char *eq = strchr(env[i], '=');
        if (!eq)
            continue;
        size_t kl = (size_t)(eq - env[i]);
        if ((kl == 13 && strncmp(env[i], "KILN_LOG_FILE", kl) == 0) ||
            (kl == 9 && strncmp(env[i], "KILN_HOME", kl) == 0))
            continue;
        const char *val = eq + 1;
        if (kl == 12 && strncmp(env[i], "KILN_OUTPUTS", kl) == 0)
            val = TERM_LOG_PATH;
        size_t vl = strlen(val);
        buf = xrealloc(buf, len + kl + vl + 2);
        offs[2 * m] = len;
        memcpy(buf + len, env[i], kl);
        buf[len + kl] = 0;
        len += kl + 1;
        offs[2 * m + 1] = len;
        memcpy(buf + len, val, vl + 1);
        len += vl + 1;
        m++;
    }
    for (size_t i = 0; i < m; i++) {
        kv[i].key = buf + offs[2 * i];
        kv[i].value = buf + offs[2 * i + 1];
    }
    free(offs);
    *storage = buf;
    *n_out = m;
    return kv;
}

static int kube_start(struct executor *ex, const struct exec_spec *spec, struct kiln_err *err)
{
    struct kexec *kx = (struct kexec *)ex;
    if (kx->closing)
        return kiln_err_set(err, KILN_ESTATE, "the Kubernetes executor is shutting down");
    if (!spec->kube)
        return kiln_err_set(err, KILN_EINVALID,
                            "task '%s' has no kubernetes block (image and resources)", spec->task_id);
    struct ktry *old = try_by_id(kx, spec->try_id);
    if (old)
        try_free(old);      /* a stale record (adoption found it never created) */
    struct kube_task_spec ks = *spec->kube;
    ks.command = spec->argv;
    char *env_store = NULL;
    struct kube_kv *env = pod_env(spec->task_env, &ks.n_env, &env_store);
    ks.env = env;
    if (spec->timeout_ms > 0)
        ks.timeout_s = (spec->timeout_ms + 999) / 1000;
    struct kube_kv *sel = NULL;
    if (ks.gpu > 0) {
        ks.gpu_toleration = ks.gpu_toleration || kx->o.gpu_toleration;
        if (!ks.runtime_class && kx->gpu_runtime_class)
            ks.runtime_class = kx->gpu_runtime_class;
        const char *eq = kx->gpu_node_selector ? strchr(kx->gpu_node_selector, '=') : NULL;
        if (eq) {
            sel = xcalloc(ks.n_node_selector + 1, sizeof *sel);
            bool have = false;
            for (size_t i = 0; i < ks.n_node_selector; i++) {
                sel[i] = ks.node_selector[i];
                have = have || (strlen(sel[i].key) == (size_t)(eq - kx->gpu_node_selector) &&
                                strncmp(sel[i].key, kx->gpu_node_selector, (size_t)(eq - kx->gpu_node_selector)) == 0);
            }
            if (!have) {
                sel[ks.n_node_selector].key = xstrndup(kx->gpu_node_selector,
                                                       (size_t)(eq - kx->gpu_node_selector));
                sel[ks.n_node_selector].value = eq + 1;
                ks.node_selector = sel;
                ks.n_node_selector++;
            } else {
                free(sel);
                sel = NULL;
            }
        }
    }
    struct kube_pod_ids ids = {
        .instance = kx->instance, .dag_id = spec->dag_id, .run_id = spec->run_id,
        .task_id = spec->task_id, .try_number = spec->try_number, .try_id = spec->try_id,
    };
    json_object *pod = NULL;
    int rc = kube_pod_build(&ks, &ids, &pod, err);
    if (sel) {
        free((char *)sel[ks.n_node_selector - 1].key);
        free(sel);
    }
    free(env);
    free(env_store);
    if (rc < 0)
        return rc;
    struct kns *ns = ns_get(kx, try_namespace(kx, spec));
    struct ktry *t = try_new(kx, ns, spec);
    t->grace_ms = 5000;
    t->creating = true;
    t->create_body = xstrdup(json_object_to_json_string_ext(pod, JSON_C_TO_STRING_PLAIN));
    json_object_put(pod);
    if (kx->cq_tail)
        kx->cq_tail->cq_next = t;
    else
        kx->cq_head = t;
    kx->cq_tail = t;
    create_pump(kx);
    return 0;
}

static int kube_cancel(struct executor *ex, int64_t try_id, int64_t grace_ms)
{
    struct kexec *kx = (struct kexec *)ex;
    struct ktry *t = try_by_id(kx, try_id);
    if (!t || t->reported)
        return KILN_ENOTFOUND;
    if (t->cancel_requested)
        return 0;
    t->cancel_requested = true;
    t->grace_ms = grace_ms;
    t->force_delete_at_us = now_us() + (grace_ms + 2000) * 1000;
    if (t->creating && t->create_body) {
        /* Still queued: it never reaches the API. */
        create_pump(kx);
        return 0;
    }
    if (t->creating)
        return 0;   /* deleted once the create answers */
    if (t->ended) {
        maybe_report(t);
        return 0;
    }
    pod_delete(t, (grace_ms + 999) / 1000);
    return 0;
}

static unsigned count_lines(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    char buf[65536];
    unsigned n = 0;
    ssize_t r;
    while ((r = read(fd, buf, sizeof buf)) > 0)
        for (ssize_t i = 0; i < r; i++)
            n += buf[i] == '\n';
    close(fd);
    return n;
}

static int kube_adopt(struct executor *ex, const struct exec_spec *spec, const char *executor_id,
                      struct kiln_err *err)
{
    (void)err;
    struct kexec *kx = (struct kexec *)ex;
    struct kns *ns = ns_get(kx, try_namespace(kx, spec));
    struct ktry *old = try_by_id(kx, spec->try_id);
    if (old)
        return 0;   /* already followed */
    struct ktry *t = try_new(kx, ns, spec);
    t->grace_ms = 5000;
    t->adopting = true;
    t->saw_running_before = executor_id != NULL && executor_id[0] != 0;
    t->started_reported = t->saw_running_before;
    /* The log file has what the last daemon wrote: the new stream starts
     * from the beginning and skips that many lines. */
    t->skip_lines = count_lines(t->log_path);
    if (ns->listed) {
        char path[512];
        snprintf(path, sizeof path, "/api/v1/namespaces/%s/pods/%s", ns->name, t->name);
        t->get_req = kube_request(kx->client, "GET", path, NULL, NULL, on_adopt_get, NULL, t);
    }
    return 0;
}

static void kube_adopt_done(struct executor *ex)
{
    struct kexec *kx = (struct kexec *)ex;
    kx->adopt_done = true;
    for (struct kns *ns = kx->namespaces; ns; ns = ns->next)
        handle_orphans(ns);
}

static void on_nodes(struct kube_req *req, const struct kube_result *res, void *arg)
{
    (void)req;
    struct kexec *kx = arg;
    kx->nodes_req = NULL;
    if (kx->closing)
        return;
    if (res->outcome != KUBE_OK || !res->json) {
        LOG_W("kubernetes: cannot read nodes to size the gpu pool (%s); set kube_gpus in the "
              "settings", res->message);
        return;
    }
    json_object *items = jget(res->json, "items");
    int64_t gpus = 0;
    for (size_t i = 0; items && json_object_is_type(items, json_type_array) &&
                       i < json_object_array_length(items); i++) {
        json_object *alloc = jget(jget(json_object_array_get_idx(items, i), "status"), "allocatable");
        const char *g = jstr(alloc, KUBE_DEFAULT_GPU_RESOURCE);
        if (g)
            gpus += strtoll(g, NULL, 10);
    }
    LOG_I("kubernetes: the nodes have %" PRId64 " allocatable %s", gpus, KUBE_DEFAULT_GPU_RESOURCE);
    kx->o.gpu_capacity(kx->o.gpu_capacity_arg, gpus > 1000000 ? 1000000 : (int)gpus);
}

static void release_all(struct kexec *kx)
{
    while (kx->all) {
        struct ktry *t = kx->all;
        try_unlink(kx, t);
        if (t->log_fd >= 0)
            close(t->log_fd);
        free(t->create_body);
        free(t->log_path);
        free(t->outputs_path);
        free(t);
    }
    kx->cq_head = kx->cq_tail = NULL;
    for (struct kns *ns = kx->namespaces, *next; ns; ns = next) {
        next = ns->next;
        for (size_t i = 0; i < ns->n_orphans; i++)
            free(ns->orphans[i].name);
        free(ns->orphans);
        free(ns->name);
        free(ns->rv);
        free(ns);
    }
    kx->namespaces = NULL;
}

static void on_tick_closed(uv_handle_t *h)
{
    struct kexec *kx = container_of((uv_timer_t *)h, struct kexec, tick);
    void (*cb)(struct executor *) = kx->close_cb;
    release_all(kx);
    free(kx->home);
    free(kx->instance);
    free(kx->default_ns);
    free(kx->gpu_runtime_class);
    free(kx->gpu_node_selector);
    free(kx->journal);
    kube_client_close(kx->client);
    if (cb)
        cb(&kx->base);
    free(kx);
}

static void close_maybe_finish(struct kexec *kx)
{
    if (kx->drain_until_us == 0)
        return;     /* already finishing */
    bool waiting = false;
    for (struct ktry *t = kx->all; t; t = t->next)
        waiting = waiting || t->delete_req || (t->delete_wanted && t->log_req);
    if (waiting && now_us() < kx->drain_until_us)
        return;
    kx->drain_until_us = 0;
    for (struct ktry *t = kx->all; t; t = t->next) {
        t->freeing = true;
        if (t->log_req) {
            struct kube_req *r = t->log_req;
            t->log_req = NULL;
            kube_request_cancel(r);
        }
    }
    for (struct ktry *t = kx->all; t; t = t->next)
        if (t->delete_req) {
            struct kube_req *r = t->delete_req;
            t->delete_req = NULL;
            kube_request_cancel(r);
        }
    uv_close((uv_handle_t *)&kx->tick, on_tick_closed);
}

/* close() may be called from inside one of this executor's own callbacks
 * (a report ends the last run and the engine stops): requests are
 * cancelled now, the pods already reported are deleted (for at most 3 s),
 * and memory is freed once the loop has closed the tick. */
static void kube_close(struct executor *ex, void (*done_cb)(struct executor *ex))
{
    struct kexec *kx = (struct kexec *)ex;
    if (kx->closing)
        return;
    kx->closing = true;
    kx->close_cb = done_cb;
    /* Running pods keep running: the next daemon adopts them. */
    for (struct ktry *t = kx->all; t; t = t->next) {
        bool finishing_log = t->delete_wanted && t->log_req;   /* then deleted */
        t->freeing = !finishing_log;
        struct kube_req *rs[] = { t->create_req, finishing_log ? NULL : t->log_req, t->get_req };
        t->create_req = t->get_req = NULL;
        if (!finishing_log)
            t->log_req = NULL;
        for (size_t i = 0; i < ARRAY_LEN(rs); i++)
            if (rs[i])
                kube_request_cancel(rs[i]);
    }
    if (kx->nodes_req)
        kube_request_cancel(kx->nodes_req);
    for (struct kns *ns = kx->namespaces; ns; ns = ns->next) {
        struct kube_req *l = ns->list_req, *w = ns->watch_req;
        ns->list_req = ns->watch_req = NULL;
        if (l)
            kube_request_cancel(l);
        if (w)
            kube_request_cancel(w);
    }
    if (kx->journal_fd >= 0)
        close(kx->journal_fd);
    kx->journal_fd = -1;
    kx->drain_until_us = now_us() + 3 * 1000000;
    for (struct ktry *t = kx->all; t; t = t->next)
        if (t->delete_wanted && !t->delete_req && !t->log_req)
            pod_delete(t, 0);
    uv_ref((uv_handle_t *)&kx->tick);   /* the drain's deadline keeps the loop */
    close_maybe_finish(kx);
}

static const struct executor_ops kube_ops = {
    .name = "kubernetes",
    .start = kube_start,
    .cancel = kube_cancel,
    .adopt = kube_adopt,
    .close = kube_close,
    .adopt_done = kube_adopt_done,
};

void kube_exec_opts_default(struct kube_exec_opts *o)
{
    memset(o, 0, sizeof *o);
    o->pending_timeout_ms = 5 * 60 * 1000;
    o->image_pull_grace_ms = 60 * 1000;
    o->keep_failed_ms = 60 * 60 * 1000;
    o->log_wait_ms = 10 * 1000;
    o->gpu_toleration = true;
}

int exec_kube_new(struct executor **out, uv_loop_t *loop, struct kube_client *client,
                  const struct kube_exec_opts *o, struct kiln_err *err)
{
    if (!o->home || !o->instance || !kube_valid_label_value(o->instance) || !o->instance[0])
        return kiln_err_set(err, KILN_EINVALID,
                            "kubernetes: the instance id must be a valid label value, got '%s'",
                            o->instance ? o->instance : "");
    const char *ns = o->namespace_ && o->namespace_[0] ? o->namespace_
                     : kube_client_config(client)->namespace ? kube_client_config(client)->namespace
                                                             : "default";
    if (!kube_valid_dns_label(ns))
        return kiln_err_set(err, KILN_EINVALID, "kubernetes: invalid namespace '%s'", ns);
    if (o->gpu_node_selector && !strchr(o->gpu_node_selector, '='))
        return kiln_err_set(err, KILN_EINVALID,
                            "kubernetes: the GPU node selector must be key=value, got '%s'",
                            o->gpu_node_selector);
    struct kexec *kx = xcalloc(1, sizeof *kx);
    kx->base.ops = &kube_ops;
    kx->base.loop = loop;
    kx->client = client;
    kx->o = *o;
    kx->home = xstrdup(o->home);
    kx->instance = xstrdup(o->instance);
    kx->default_ns = xstrdup(ns);
    kx->gpu_runtime_class = o->gpu_runtime_class ? xstrdup(o->gpu_runtime_class) : NULL;
    kx->gpu_node_selector = o->gpu_node_selector ? xstrdup(o->gpu_node_selector) : NULL;
    kx->o.home = kx->home;
    kx->o.instance = kx->instance;
    kx->o.namespace_ = kx->default_ns;
    kx->o.gpu_runtime_class = kx->gpu_runtime_class;
    kx->o.gpu_node_selector = kx->gpu_node_selector;
    if (kx->o.log_wait_ms <= 0)
        kx->o.log_wait_ms = 10 * 1000;
    if (kx->o.pending_timeout_ms <= 0)
        kx->o.pending_timeout_ms = 5 * 60 * 1000;
    if (kx->o.image_pull_grace_ms < 0)
        kx->o.image_pull_grace_ms = 0;
    snprintf(kx->selector, sizeof kx->selector, "kiln.io%%2Finstance%%3D%s", kx->instance);
    kx->journal_fd = -1;
    journal_load(kx);
    uv_timer_init(loop, &kx->tick);
    uv_timer_start(&kx->tick, on_tick, TICK_MS, TICK_MS);
    uv_unref((uv_handle_t *)&kx->tick);
    /* The default namespace is watched from the start: leftover pods there
     * are found even when no try is adopted. */
    ns_get(kx, kx->default_ns);
    if (o->gpu_capacity)
        kx->nodes_req = kube_request(client, "GET", "/api/v1/nodes", NULL, NULL, on_nodes, NULL, kx);
    *out = &kx->base;
    return 0;
}
