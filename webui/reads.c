/* reads: API reads on reader threads, kept per generation; see reads.h. */
#include "reads.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "engine.h"
#include "http.h"
#include "log.h"
#include "store.h"
#include "util.h"

#define CACHE_MAX_ENTRIES 64
#define CACHE_MAX_BYTES ((size_t)64 << 20)
/* Readers yield the CPU to the scheduler when both want it: a slower read
 * is the price of a scheduler that keeps its pace under read load. */
#define READER_NICE 10
/* While tries run, the readers together use at most this share of one core
 * (their CPU time, paced), with up to READ_BURST_US of CPU saved up while
 * idle: a scheduler on a small machine keeps its pace however many clients
 * read.  Answers then come later, not wrong: each still waits for a read
 * that started after it arrived. */
#define READ_SHARE 0.15
#define READ_BURST_US 50000

/* A finished answer: an h2o shared chunk, so that every request sending it
 * holds a reference (linked to its pool) and the cache holds one.
 * References are taken and dropped on the loop only. */
struct answer {
    int status;
    const char *content_type;   /* static string */
    char content_range[96];
    bool accept_ranges;
    char etag[24];
    size_t len;
    char data[];
};

struct waiter;

/* One distinct read (path, query, Range).  A cacheable one stays in the
 * cache list; any other lives for one request. */
struct entry {
    char *path, *query, *range;
    size_t path_len, query_len, range_len;
    bool cacheable;
    struct answer *ans;         /* the latest answer, or NULL */
    uint64_t ans_gen;           /* the generation it was read at (or later) */
    bool busy;                  /* a job is queued or running */
    uint64_t busy_gen;
    struct waiter *wait_head, *wait_tail;
    struct entry *prev, *next;  /* cache list, most recently used first */
};

/* A request waiting for an entry's next answer: a shared chunk of the
 * request's pool, so a request that goes away unlinks itself. */
struct waiter {
    h2o_req_t *req;
    struct entry *ent;          /* NULL once served or forgotten */
    uint64_t need;              /* the generation when it arrived */
    struct waiter *prev, *next;
};

struct job {
    struct job *next;
    struct entry *ent;          /* stays alive while busy */
    struct api_request rq;      /* points into ent */
    struct api_snap *snap;
    uint64_t gen;
    bool pace;                  /* tries were running when it was queued */
    struct answer *ans;         /* filled by the reader */
};

struct reader {
    struct reads *r;
    struct store *st;
    pthread_t th;
    bool started;
};

struct reads {
    uv_loop_t *loop;
    struct engine *e;
    struct reader *readers;
    int n_readers;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct job *q_head, *q_tail;    /* under mu */
    struct job *done;               /* under mu, newest first */
    bool quit;                      /* under mu */
    int64_t paid_until_us;          /* under mu: the pace, see READ_SHARE */
    uv_async_t async;
    bool async_live, stopping;
    int inflight;                   /* jobs queued, running or done but not handled */
    struct entry *cache;
    size_t n_cache, cache_bytes;
    uint64_t n_computed, n_kept, n_not_modified;
};

/* --- reader threads ----------------------------------------------------------- */

static uint64_t fnv1a(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 1099511628211ULL;
    }
    return h;
}

static struct answer *answer_from(struct api_response *rs)
{
    size_t len = rs->body.len;
    struct answer *a = h2o_mem_alloc_shared(NULL, sizeof *a + len + 1, NULL);
    memset(a, 0, sizeof *a);
    a->status = rs->status;
    a->content_type = rs->content_type;
    memcpy(a->content_range, rs->content_range, sizeof a->content_range);
    a->accept_ranges = rs->accept_ranges;
    a->len = len;
    if (len)
        memcpy(a->data, rs->body.data, len);
    a->data[len] = '\0';
    uint64_t h = fnv1a(14695981039346656037ULL, &a->status, sizeof a->status);
    h = fnv1a(h, a->data, len);
    snprintf(a->etag, sizeof a->etag, "\"%016llx\"", (unsigned long long)h);
    return a;
}

static int64_t thread_cpu_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void *reader_main(void *arg)
{
    struct reader *w = arg;
    struct reads *r = w->r;
    setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), READER_NICE);
    for (;;) {
        pthread_mutex_lock(&r->mu);
        while (!r->quit && !r->q_head)
            pthread_cond_wait(&r->cv, &r->mu);
        if (r->quit) {
            pthread_mutex_unlock(&r->mu);
            break;
        }
        int64_t wait_us = r->paid_until_us - mono_us();
        if (r->q_head->pace && wait_us > 0) {
            /* Over budget: let the CPU go, then look at the queue again. */
            pthread_mutex_unlock(&r->mu);
            struct timespec ts = { wait_us / 1000000, (long)(wait_us % 1000000) * 1000 };
            nanosleep(&ts, NULL);
            continue;
        }
        struct job *j = r->q_head;
        r->q_head = j->next;
        if (!r->q_head)
            r->q_tail = NULL;
        pthread_mutex_unlock(&r->mu);

        int64_t cpu0 = thread_cpu_us();
        struct api_response rs = { .status = 500, .content_type = "application/json" };
        sbuf_init(&rs.body);
        /* One snapshot for the whole answer: its rows agree with each other. */
        store_exec(w->st, Q_read_begin, NULL, NULL, NULL, "");
        api_read(w->st, j->snap, &j->rq, &rs);
        store_exec(w->st, Q_read_end, NULL, NULL, NULL, "");
        j->ans = answer_from(&rs);
        sbuf_free(&rs.body);

        int64_t cpu = thread_cpu_us() - cpu0, now = mono_us();
        pthread_mutex_lock(&r->mu);
        if (j->pace) {
            if (r->paid_until_us < now - READ_BURST_US)
                r->paid_until_us = now - READ_BURST_US;
            r->paid_until_us += (int64_t)((double)cpu / READ_SHARE);
        }
        j->next = r->done;
        r->done = j;
        /* Sent under the lock: the loop closes the handle only after it took
         * every job, so it is never closed under a sender. */
        uv_async_send(&r->async);
        pthread_mutex_unlock(&r->mu);
    }
    return NULL;
}

/* --- answering ------------------------------------------------------------------ */

static void add_header(h2o_req_t *req, const h2o_token_t *tok, const char *v)
{
    h2o_iovec_t c = h2o_strdup(&req->pool, v, strlen(v));
    h2o_add_header(&req->pool, &req->res.headers, tok, NULL, c.base, c.len);
}

static bool etag_matches(h2o_req_t *req, const struct answer *a)
{
    ssize_t i = h2o_find_header(&req->headers, H2O_TOKEN_IF_NONE_MATCH, -1);
    if (i < 0)
        return false;
    h2o_iovec_t v = req->headers.entries[i].value;
    size_t n = strlen(a->etag);
    if (v.len == 1 && v.base[0] == '*')
        return true;
    /* A list of tags: any one equal to ours (weak or strong). */
    for (size_t k = 0; k + n <= v.len; k++)
        if (memcmp(v.base + k, a->etag, n) == 0)
            return true;
    return false;
}

static void send_answer(struct reads *r, h2o_req_t *req, struct answer *a)
{
    static h2o_generator_t gen = { NULL, NULL };
    bool not_modified = a->status == 200 && etag_matches(req, a);
    if (not_modified)
        r->n_not_modified++;
    req->res.status = not_modified ? 304 : a->status;
    req->res.reason = not_modified ? "Not Modified" : http_reason(a->status);
    add_header(req, H2O_TOKEN_CONTENT_TYPE, a->content_type);
    add_header(req, H2O_TOKEN_CACHE_CONTROL, "no-store");
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("x-content-type-options"),
                          0, NULL, H2O_STRLIT("nosniff"));
    if (a->status == 200 || a->status == 206)
        add_header(req, H2O_TOKEN_ETAG, a->etag);
    if (a->content_range[0])
        add_header(req, H2O_TOKEN_CONTENT_RANGE, a->content_range);
    if (a->accept_ranges)
        add_header(req, H2O_TOKEN_ACCEPT_RANGES, "bytes");
    h2o_start_response(req, &gen);
    bool head = req->method.len == 4 && memcmp(req->method.base, "HEAD", 4) == 0;
    /* No content_length: h2o counts a body sent in one final piece itself
     * (setting it as well makes h2o 2.2 send Content-Length and chunks). */
    if (not_modified || head) {
        h2o_send(req, NULL, 0, H2O_SEND_STATE_FINAL);
        return;
    }
    /* The bytes stay alive until the request is done with them. */
    h2o_mem_addref_shared(a);
    h2o_mem_link_shared(&req->pool, a);
    h2o_mem_release_shared(a);
    h2o_iovec_t b = h2o_iovec_init(a->data, a->len);
    h2o_send(req, &b, 1, H2O_SEND_STATE_FINAL);
}

static void waiter_unlink(struct waiter *w)
{
    struct entry *ent = w->ent;
    if (!ent)
        return;
    if (w->prev)
        w->prev->next = w->next;
    else
        ent->wait_head = w->next;
    if (w->next)
        w->next->prev = w->prev;
    else
        ent->wait_tail = w->prev;
    w->prev = w->next = NULL;
    w->ent = NULL;
}

/* The request's pool is cleared: served, or the client went away. */
static void waiter_dispose(void *p)
{
    waiter_unlink(p);
}

/* --- the cache --------------------------------------------------------------------- */

static uint64_t generation(struct reads *r)
{
    struct store *st = engine_store(r->e);
    int64_t dv = 0;
    /* data_version moves when another connection (kiln db, a CLI) commits. */
    store_get_int(st, Q_data_version, &dv, NULL, NULL, "");
    return ((uint64_t)dv << 40) | (store_commits(st) & ((1ULL << 40) - 1));
}

static void entry_free(struct reads *r, struct entry *ent)
{
    if (ent->cacheable) {
        if (ent->prev)
            ent->prev->next = ent->next;
        else
            r->cache = ent->next;
        if (ent->next)
            ent->next->prev = ent->prev;
        r->n_cache--;
    }
    if (ent->ans) {
        if (ent->cacheable)
            r->cache_bytes -= ent->ans->len;
        h2o_mem_release_shared(ent->ans);
    }
    /* Waiters left only when the loop ended without serving them. */
    while (ent->wait_head)
        waiter_unlink(ent->wait_head);
    free(ent->path);
    free(ent->query);
    free(ent->range);
    free(ent);
}

static bool entry_idle(const struct entry *ent)
{
    return !ent->busy && !ent->wait_head;
}

/* Drops least recently used idle entries over the limits, never keep. */
static void cache_trim(struct reads *r, const struct entry *keep)
{
    struct entry *last = r->cache;
    while (last && last->next)
        last = last->next;
    for (struct entry *ent = last, *prev; ent &&
         (r->n_cache > CACHE_MAX_ENTRIES || r->cache_bytes > CACHE_MAX_BYTES); ent = prev) {
        prev = ent->prev;
        if (ent != keep && entry_idle(ent))
            entry_free(r, ent);
    }
}

static bool same(const char *a, size_t an, const char *b, size_t bn)
{
    return an == bn && (an == 0 || memcmp(a, b, an) == 0);
}

static struct entry *cache_find(struct reads *r, const struct api_request *rq)
{
    for (struct entry *ent = r->cache; ent; ent = ent->next) {
        if (!same(ent->path, ent->path_len, rq->path, rq->path_len) ||
            !same(ent->query, ent->query_len, rq->query, rq->query ? rq->query_len : 0) ||
            !same(ent->range, ent->range_len, rq->range, rq->range ? rq->range_len : 0))
            continue;
        if (ent->prev) {   /* to the front */
            ent->prev->next = ent->next;
            if (ent->next)
                ent->next->prev = ent->prev;
            ent->prev = NULL;
            ent->next = r->cache;
            r->cache->prev = ent;
            r->cache = ent;
        }
        return ent;
    }
    return NULL;
}

static char *dup_n(const char *s, size_t n)
{
    return s ? xstrndup(s, n) : NULL;
}

static struct entry *entry_new(struct reads *r, const struct api_request *rq, bool cacheable)
{
    struct entry *ent = xcalloc(1, sizeof *ent);
    ent->path = dup_n(rq->path, rq->path_len);
    ent->path_len = rq->path_len;
    ent->query = dup_n(rq->query, rq->query_len);
    ent->query_len = rq->query ? rq->query_len : 0;
    ent->range = dup_n(rq->range, rq->range_len);
    ent->range_len = rq->range ? rq->range_len : 0;
    ent->cacheable = cacheable;
    if (cacheable) {
        ent->next = r->cache;
        if (r->cache)
            r->cache->prev = ent;
        r->cache = ent;
        r->n_cache++;
        cache_trim(r, ent);
    }
    return ent;
}

static void dispatch(struct reads *r, struct entry *ent, uint64_t gen)
{
    struct job *j = xcalloc(1, sizeof *j);
    j->ent = ent;
    j->gen = gen;
    j->rq = (struct api_request){
        .method = "GET", .path = ent->path, .path_len = ent->path_len,
        .query = ent->query, .query_len = ent->query_len,
        .range = ent->range, .range_len = ent->range_len, .actor = "api:token",
    };
    j->snap = api_snap_take(r->e, &j->rq);
    /* Paced only while the scheduler has work: an idle daemon answers a
     * lone client at full speed. */
    struct sched_stats ss;
    sched_get_stats(engine_sched(r->e), &ss);
    j->pace = ss.running > 0;
    ent->busy = true;
    ent->busy_gen = gen;
    r->inflight++;
    r->n_computed++;
    pthread_mutex_lock(&r->mu);
    if (r->q_tail)
        r->q_tail->next = j;
    else
        r->q_head = j;
    r->q_tail = j;
    pthread_cond_signal(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

static void finish(struct reads *r, struct job *j)
{
    struct entry *ent = j->ent;
    r->inflight--;
    ent->busy = false;
    if (ent->ans) {
        if (ent->cacheable)
            r->cache_bytes -= ent->ans->len;
        h2o_mem_release_shared(ent->ans);
    }
    ent->ans = j->ans;
    ent->ans_gen = j->gen;
    if (ent->cacheable)
        r->cache_bytes += ent->ans->len;
    api_snap_free(j->snap);
    free(j);
    /* Serve those this read is new enough for (all of them when stopping:
     * no new read starts then); the others wait for the next read. */
    struct waiter *w = ent->wait_head;
    while (w) {
        struct waiter *next = w->next;
        if (w->need <= ent->ans_gen || r->stopping) {
            h2o_req_t *req = w->req;
            waiter_unlink(w);
            send_answer(r, req, ent->ans);
        }
        w = next;
    }
    if (ent->wait_head)
        dispatch(r, ent, generation(r));
    else if (!ent->cacheable)
        entry_free(r, ent);
    else
        cache_trim(r, NULL);
}

static void on_async_closed(uv_handle_t *h)
{
    (void)h;
}

static void maybe_close(struct reads *r)
{
    if (r->stopping && r->inflight == 0 && r->async_live) {
        r->async_live = false;
        uv_close((uv_handle_t *)&r->async, on_async_closed);
    }
}

static void on_async(uv_async_t *h)
{
    struct reads *r = h->data;
    pthread_mutex_lock(&r->mu);
    struct job *list = r->done;
    r->done = NULL;
    pthread_mutex_unlock(&r->mu);
    struct job *fifo = NULL;
    while (list) {
        struct job *n = list->next;
        list->next = fifo;
        fifo = list;
        list = n;
    }
    while (fifo) {
        struct job *n = fifo->next;
        finish(r, fifo);
        fifo = n;
    }
    maybe_close(r);
}

void reads_handle(struct reads *r, h2o_req_t *req, const struct api_request *rq)
{
    uint64_t gen = generation(r);
    bool cacheable = api_read_cacheable(rq);
    struct entry *ent = cacheable ? cache_find(r, rq) : NULL;
    if (ent && ent->ans && ent->ans_gen >= gen) {
        r->n_kept++;
        send_answer(r, req, ent->ans);
        return;
    }
    if (!ent)
        ent = entry_new(r, rq, cacheable);
    struct waiter *w = h2o_mem_alloc_shared(&req->pool, sizeof *w, waiter_dispose);
    *w = (struct waiter){ .req = req, .ent = ent, .need = gen, .prev = ent->wait_tail };
    if (ent->wait_tail)
        ent->wait_tail->next = w;
    else
        ent->wait_head = w;
    ent->wait_tail = w;
    /* A read under way that started at an older generation is let finish;
     * this request then gets the next one. */
    if (!ent->busy)
        dispatch(r, ent, gen);
}

/* --- life ------------------------------------------------------------------------------ */

int reads_new(struct reads **out, uv_loop_t *loop, struct engine *e, const char *db_path,
              int nthreads, struct kiln_err *err)
{
    *out = NULL;
    struct reads *r = xcalloc(1, sizeof *r);
    r->loop = loop;
    r->e = e;
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    r->readers = xcalloc((size_t)nthreads, sizeof *r->readers);
    int rc = 0;
    for (int i = 0; i < nthreads; i++) {
        r->readers[i].r = r;
        if ((rc = store_open_reader(&r->readers[i].st, db_path, err)) < 0)
            goto fail;
        r->n_readers++;
    }
    /* The threads wait for jobs, and none comes before this returns: the
     * handle they signal can be opened after them. */
    for (int i = 0; i < r->n_readers; i++) {
        if ((rc = pthread_create(&r->readers[i].th, NULL, reader_main, &r->readers[i])) != 0) {
            rc = kiln_err_set(err, -rc, "cannot start a reader thread: %s", strerror(rc));
            goto fail;
        }
        r->readers[i].started = true;
    }
    uv_async_init(loop, &r->async, on_async);
    r->async.data = r;
    r->async_live = true;
    *out = r;
    return 0;
fail:
    reads_free(r);
    return rc;
}

void reads_stats(const struct reads *r, struct reads_stats *out)
{
    *out = (struct reads_stats){ r->n_computed, r->n_kept, r->n_not_modified };
}

void reads_stop(struct reads *r)
{
    if (!r || r->stopping)
        return;
    r->stopping = true;
    maybe_close(r);
}

void reads_free(struct reads *r)
{
    if (!r)
        return;
    pthread_mutex_lock(&r->mu);
    r->quit = true;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    for (int i = 0; i < r->n_readers; i++)
        if (r->readers[i].started)
            pthread_join(r->readers[i].th, NULL);
    /* Jobs never taken or never handled (the loop ended first). */
    struct job *lists[2] = { r->q_head, r->done };
    for (int k = 0; k < 2; k++)
        for (struct job *j = lists[k], *n; j; j = n) {
            n = j->next;
            if (j->ans)
                h2o_mem_release_shared(j->ans);
            api_snap_free(j->snap);
            j->ent->busy = false;
            if (!j->ent->cacheable)
                entry_free(r, j->ent);
            free(j);
        }
    while (r->cache)
        entry_free(r, r->cache);
    for (int i = 0; i < r->n_readers; i++)
        store_close(r->readers[i].st);
    free(r->readers);
    pthread_cond_destroy(&r->cv);
    pthread_mutex_destroy(&r->mu);
    free(r);
}
