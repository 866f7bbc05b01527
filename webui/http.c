/* http: libh2o (libuv build) on the engine's loop; see http.h. */
#include "http.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <h2o.h>

#include "api.h"
#include "reads.h"
#include "static_gen.h"
#include "engine.h"
#include "log.h"
#include "util.h"

#define HTTP_MAX_BODY (1024 * 1024)
#define HTTP_REQ_TIMEOUT_MS 10000
#define HTTP_MAX_CONNS 256
#define SSE_MAX_PENDING (1024 * 1024)  /* a slower client is dropped */
#define TICK_MS 1000                   /* loop-lag probe; a heartbeat every 15 */
#define TAIL_MS 250                    /* log tails read what was appended */
#define TAIL_CHUNK 65536
/* Reader threads for GETs (webui/reads.c): two keep one answer being built
 * while another is sent, and leave the scheduler a core on small machines. */
#define READER_THREADS 2
#define LISTEN_BACKLOG 511

/* A server-sent-events stream: the state events, or one log's tail. */
struct sse {
    h2o_generator_t gen;
    h2o_req_t *req;
    struct http_server *s;
    struct sse *prev, *next;
    struct sbuf pending, inflight;
    bool sending, want_final;
    char *log_path;
    int64_t off;
    uv_timer_t *timer;
};

/* A task instance running now, for the duration histogram. */
struct running_ti {
    int64_t run_pk;
    int task_index;
    int64_t since_us;
};

static const double duration_buckets[] = { 0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600 };
#define N_BUCKETS (sizeof duration_buckets / sizeof duration_buckets[0])

struct http_server {
    uv_loop_t *loop;
    struct engine *e;
    h2o_globalconf_t config;
    h2o_context_t ctx;
    h2o_accept_ctx_t accept_ctx;
    uv_tcp_t *listener;
    bool ctx_live, stopping;
    int conns;
    char *token;
    bool reads_need_auth;
    struct reads *reads;        /* NULL: reads are answered on the loop */
    struct sse *streams;
    int n_streams;
    uv_timer_t tick;
    bool tick_live;
    int64_t tick_at_us, ticks;
    double loop_lag_s;
    struct running_ti *running;
    size_t n_running, cap_running;
    uint64_t dur_counts[N_BUCKETS + 1];
    double dur_sum;
    uint64_t dur_n;
};

struct http_handler {
    h2o_handler_t super;
    struct http_server *s;
};

struct http_conn {
    uv_tcp_t tcp;
    struct http_server *s;
};

int http_token_equal(const char *expected, const char *given, size_t given_len)
{
    size_t n = strlen(expected);
    unsigned char diff = (unsigned char)(n != given_len);
    /* Always walk the expected token's length, whatever was given. */
    for (size_t i = 0; i < n; i++) {
        unsigned char g = i < given_len ? (unsigned char)given[i] : 0;
        diff |= (unsigned char)(g ^ (unsigned char)expected[i]);
    }
    return diff == 0;
}

int http_token_load(const char *home, char **token, int *created, struct kiln_err *err)
{
    *token = NULL;
    *created = 0;
    char *p = home_path(home, "token");
    char *buf = NULL;
    size_t len = 0;
    int rc = file_read_all(p, &buf, &len);
    if (rc == 0) {
        while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r' || buf[len - 1] == ' '))
            buf[--len] = '\0';
        if (len < 16) {
            rc = kiln_err_set(err, KILN_EINVALID, "%s: the token must be 16 characters or more",
                              p);
            free(buf);
            free(p);
            return rc;
        }
        *token = buf;
        free(p);
        return 0;
    }
    if (rc != -ENOENT) {
        rc = kiln_err_set(err, rc, "%s: %s", p, strerror(-rc));
        free(p);
        return rc;
    }
    unsigned char raw[32];
    if (getrandom(raw, sizeof raw, 0) != (ssize_t)sizeof raw) {
        rc = kiln_err_set(err, -errno, "getrandom: %s", strerror(errno));
        free(p);
        return rc;
    }
    char hex[2 * sizeof raw + 2];
    for (size_t i = 0; i < sizeof raw; i++)
        snprintf(hex + 2 * i, 3, "%02x", raw[i]);
    size_t hl = 2 * sizeof raw;
    hex[hl] = '\n';
    if ((rc = file_write_atomic(p, hex, hl + 1, 0600)) < 0) {
        rc = kiln_err_set(err, rc, "cannot write %s: %s", p, strerror(-rc));
        free(p);
        return rc;
    }
    chmod(p, 0600);
    free(p);
    *token = xstrndup(hex, hl);
    *created = 1;
    return 0;
}

static bool is_loopback(const char *bind)
{
    return strncmp(bind, "127.", 4) == 0 || strcmp(bind, "::1") == 0 ||
           strcmp(bind, "localhost") == 0;
}

const char *http_reason(int status)
{
    switch (status) {
    case 200: return "OK";
    case 201: return "Created";
    case 206: return "Partial Content";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 409: return "Conflict";
    case 413: return "Payload Too Large";
    case 416: return "Range Not Satisfiable";
    case 503: return "Service Unavailable";
    default: return status >= 500 ? "Internal Server Error" : "Error";
    }
}

static void add_header(h2o_req_t *req, const h2o_token_t *tok, const char *v)
{
    h2o_iovec_t c = h2o_strdup(&req->pool, v, strlen(v));
    h2o_add_header(&req->pool, &req->res.headers, tok, NULL, c.base, c.len);
}

static void add_header_by_name(h2o_req_t *req, const char *name, const char *v)
{
    h2o_iovec_t n = h2o_strdup(&req->pool, name, strlen(name));
    h2o_iovec_t c = h2o_strdup(&req->pool, v, strlen(v));
    h2o_add_header_by_str(&req->pool, &req->res.headers, n.base, n.len, 1, NULL, c.base, c.len);
}

static void respond(h2o_req_t *req, int status, const char *ctype, const char *body, size_t len)
{
    req->res.status = status;
    req->res.reason = http_reason(status);
    add_header(req, H2O_TOKEN_CONTENT_TYPE, ctype);
    add_header(req, H2O_TOKEN_CACHE_CONTROL, "no-store");
    add_header_by_name(req, "x-content-type-options", "nosniff");
    h2o_send_inline(req, body, len);
}

static void respond_error(h2o_req_t *req, int status, const char *msg)
{
    struct sbuf b;
    sbuf_init(&b);
    sbuf_adds(&b, "{\"error\":");
    sbuf_json_str(&b, msg);
    sbuf_adds(&b, "}\n");
    if (status == 401)
        add_header(req, H2O_TOKEN_WWW_AUTHENTICATE, "Bearer realm=\"kiln\"");
    respond(req, status, "application/json", b.data, b.len);
    sbuf_free(&b);
}

static bool authorized(struct http_server *s, h2o_req_t *req)
{
    ssize_t i = h2o_find_header(&req->headers, H2O_TOKEN_AUTHORIZATION, -1);
    if (i < 0)
        return false;
    h2o_iovec_t v = req->headers.entries[i].value;
    static const char pfx[] = "Bearer ";
    if (v.len <= sizeof pfx - 1 || strncasecmp(v.base, pfx, sizeof pfx - 1) != 0)
        return false;
    return http_token_equal(s->token, v.base + sizeof pfx - 1, v.len - (sizeof pfx - 1));
}

/* --- server-sent events ---------------------------------------------------- */

static void sse_free(struct sse *c);

static void sse_unlink(struct sse *c)
{
    struct http_server *s = c->s;
    if (!s)
        return;
    if (c->prev)
        c->prev->next = c->next;
    else
        s->streams = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
    s->n_streams--;
    c->s = NULL;
}

static void on_tail_timer_closed(uv_handle_t *h)
{
    free(h);
}

static void sse_free(struct sse *c)
{
    sse_unlink(c);
    if (c->timer) {
        uv_timer_stop(c->timer);
        uv_close((uv_handle_t *)c->timer, on_tail_timer_closed);
    }
    sbuf_free(&c->pending);
    sbuf_free(&c->inflight);
    free(c->log_path);
    free(c);
}

static void sse_flush(struct sse *c)
{
    if (c->sending)
        return;
    if (c->want_final) {
        h2o_req_t *req = c->req;
        sse_free(c);
        h2o_send(req, NULL, 0, H2O_SEND_STATE_FINAL);
        return;
    }
    if (c->pending.len == 0)
        return;
    struct sbuf t = c->inflight;
    c->inflight = c->pending;
    c->pending = t;
    c->pending.len = 0;
    h2o_iovec_t b = h2o_iovec_init(c->inflight.data, c->inflight.len);
    c->sending = true;
    h2o_send(c->req, &b, 1, H2O_SEND_STATE_IN_PROGRESS);
}

static void sse_proceed(h2o_generator_t *g, h2o_req_t *req)
{
    struct sse *c = (struct sse *)g;
    c->sending = false;
    c->inflight.len = 0;
    sse_flush(c);
}

/* The client went away. */
static void sse_stop(h2o_generator_t *g, h2o_req_t *req)
{
    sse_free((struct sse *)g);
}

static void sse_finish(struct sse *c)
{
    c->want_final = true;
    c->pending.len = 0;
    sse_flush(c);
}

static void sse_push(struct sse *c, const char *data, size_t len)
{
    if (c->want_final)
        return;
    if (c->pending.len + len > SSE_MAX_PENDING) {
        LOG_W("HTTP: dropping a slow event-stream client");
        sse_finish(c);
        return;
    }
    sbuf_add(&c->pending, data, len);
    sse_flush(c);
}

static struct sse *sse_open(struct http_server *s, h2o_req_t *req)
{
    struct sse *c = xcalloc(1, sizeof *c);
    c->gen.proceed = sse_proceed;
    c->gen.stop = sse_stop;
    c->req = req;
    c->s = s;
    sbuf_init(&c->pending);
    sbuf_init(&c->inflight);
    c->next = s->streams;
    if (s->streams)
        s->streams->prev = c;
    s->streams = c;
    s->n_streams++;
    req->res.status = 200;
    req->res.reason = "OK";
    add_header(req, H2O_TOKEN_CONTENT_TYPE, "text/event-stream; charset=utf-8");
    add_header(req, H2O_TOKEN_CACHE_CONTROL, "no-store");
    add_header_by_name(req, "x-content-type-options", "nosniff");
    add_header_by_name(req, "x-accel-buffering", "no");
    /* Events must reach the browser as they happen, not when a gzip block
     * fills. */
    req->compress_hint = H2O_COMPRESS_HINT_DISABLE;
    h2o_start_response(req, &c->gen);
    /* The retry hint, and something for the client to read at once. */
    sse_push(c, "retry: 2000\n: hello\n\n", 21);
    return c;
}

/* Reads what was appended to the log since the last look. */
static void tail_read(struct sse *c)
{
    int fd = open(c->log_path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return;
    char *buf = xmalloc(TAIL_CHUNK);
    for (int rounds = 0; rounds < 16 && c->pending.len < SSE_MAX_PENDING / 2; rounds++) {
        ssize_t k = pread(fd, buf, TAIL_CHUNK - 1, (off_t)c->off);
        if (k <= 0)
            break;
        buf[k] = '\0';
        c->off += k;
        struct sbuf ev;
        sbuf_init(&ev);
        sbuf_adds(&ev, "event: log\ndata: ");
        /* A JSON string per chunk: any bytes, one data line. */
        for (ssize_t i = 0; i < k; i++)
            if (buf[i] == '\0')
                buf[i] = ' ';
        sbuf_json_str(&ev, buf);
        sbuf_adds(&ev, "\n\n");
        sse_push(c, ev.data, ev.len);
        sbuf_free(&ev);
        if (k < TAIL_CHUNK - 1)
            break;
    }
    free(buf);
    close(fd);
}

static void on_tail_timer(uv_timer_t *t)
{
    struct sse *c = t->data;
    if (c)
        tail_read(c);
}

static void sched_event_json(struct sbuf *b, const struct sched_event *ev)
{
    sbuf_adds(b, ev->task_id ? "event: task\ndata: {\"dag\":" : "event: run\ndata: {\"dag\":");
    sbuf_json_str(b, ev->dag_id);
    sbuf_adds(b, ",\"run_id\":");
    sbuf_json_str(b, ev->run_id);
    sbuf_printf(b, ",\"run\":%lld", (long long)ev->run_pk);
    if (ev->task_id) {
        sbuf_adds(b, ",\"task\":");
        sbuf_json_str(b, ev->task_id);
        sbuf_printf(b, ",\"index\":%d,\"try\":%d", ev->task_index, ev->try_number);
    }
    sbuf_adds(b, ",\"state\":");
    sbuf_json_str(b, ev->state);
    if (ev->reason) {
        sbuf_adds(b, ",\"reason\":");
        sbuf_json_str(b, ev->reason);
    }
    sbuf_adds(b, "}\n\n");
}

static void track_duration(struct http_server *s, const struct sched_event *ev)
{
    if (!ev->task_id || !ev->state)
        return;
    size_t i;
    for (i = 0; i < s->n_running; i++)
        if (s->running[i].run_pk == ev->run_pk && s->running[i].task_index == ev->task_index)
            break;
    if (strcmp(ev->state, "running") == 0) {
        if (i == s->n_running) {
            if (s->n_running == s->cap_running) {
                s->cap_running = s->cap_running ? 2 * s->cap_running : 64;
                s->running = xrealloc(s->running, s->cap_running * sizeof *s->running);
            }
            s->running[s->n_running++] = (struct running_ti){ ev->run_pk, ev->task_index,
                                                              mono_us() };
        }
        return;
    }
    if (i == s->n_running)
        return;
    double secs = (double)(mono_us() - s->running[i].since_us) / 1e6;
    s->running[i] = s->running[--s->n_running];
    size_t b = 0;
    while (b < N_BUCKETS && secs > duration_buckets[b])
        b++;
    s->dur_counts[b]++;
    s->dur_sum += secs;
    s->dur_n++;
}

static void on_sched_event(void *arg, const struct sched_event *ev)
{
    struct http_server *s = arg;
    track_duration(s, ev);
    if (!s->streams)
        return;
    struct sbuf b;
    sbuf_init(&b);
    sched_event_json(&b, ev);
    for (struct sse *c = s->streams, *next; c; c = next) {
        next = c->next;
        if (!c->log_path)
            sse_push(c, b.data, b.len);
    }
    sbuf_free(&b);
}

static void on_tick(uv_timer_t *t)
{
    struct http_server *s = t->data;
    int64_t now = mono_us();
    int64_t lag = now - s->tick_at_us - (int64_t)TICK_MS * 1000;
    s->loop_lag_s = lag > 0 ? (double)lag / 1e6 : 0;
    s->tick_at_us = now;
    if (++s->ticks % 15 == 0)
        for (struct sse *c = s->streams, *next; c; c = next) {
            next = c->next;
            sse_push(c, ": ping\n\n", 8);
        }
}

/* --- /metrics ----------------------------------------------------------------- */

struct count_ctx {
    int64_t by_state[16];
    int kind;   /* 0: runs, 1: task instances */
};

static int count_row(void *arg, struct store_row *r)
{
    struct count_ctx *c = arg;
    const char *st = store_col_text(r, 0) ? store_col_text(r, 0) : "";
    int i = c->kind ? ti_state_parse(st) : run_state_parse(st);
    if (i >= 0 && i < 16)
        c->by_state[i] = store_col_int(r, 1);
    return 0;
}

static void metrics(struct http_server *s, struct sbuf *b)
{
    struct store *st = engine_store(s->e);
    struct count_ctx runs = { .kind = 0 }, tis = { .kind = 1 };
    store_exec(st, Q_metrics_runs, count_row, &runs, NULL, "");
    store_exec(st, Q_metrics_tis, count_row, &tis, NULL, "");
    sbuf_adds(b, "# HELP kiln_runs Runs in the store by state.\n# TYPE kiln_runs gauge\n");
    for (int i = 0; i < RUN__COUNT; i++)
        sbuf_printf(b, "kiln_runs{state=\"%s\"} %lld\n", run_state_name((enum run_state)i),
                    (long long)runs.by_state[i]);
    sbuf_adds(b, "# HELP kiln_task_instances Task instances in the store by state.\n"
                 "# TYPE kiln_task_instances gauge\n");
    for (int i = 0; i < TI__COUNT; i++)
        sbuf_printf(b, "kiln_task_instances{state=\"%s\"} %lld\n",
                    ti_state_name((enum ti_state)i), (long long)tis.by_state[i]);
    sbuf_printf(b, "# HELP kiln_queue_depth Task instances waiting for a slot or an executor.\n"
                   "# TYPE kiln_queue_depth gauge\nkiln_queue_depth %lld\n",
                (long long)(tis.by_state[TI_SCHEDULED] + tis.by_state[TI_QUEUED]));
    sbuf_printf(b, "# HELP kiln_loop_lag_seconds How late the event loop ran a 1 s timer.\n"
                   "# TYPE kiln_loop_lag_seconds gauge\nkiln_loop_lag_seconds %.6f\n",
                s->loop_lag_s);
    struct sched_stats ss;
    sched_get_stats(engine_sched(s->e), &ss);
    sbuf_printf(b, "# HELP kiln_tries_running Tries in flight.\n"
                   "# TYPE kiln_tries_running gauge\nkiln_tries_running %d\n", ss.running);
    sbuf_printf(b, "# HELP kiln_tries_started_total Tries started since the daemon started.\n"
                   "# TYPE kiln_tries_started_total counter\nkiln_tries_started_total %llu\n",
                (unsigned long long)ss.tries_started);
    sbuf_printf(b, "# HELP kiln_executor_errors_total Tries an executor refused or lacked.\n"
                   "# TYPE kiln_executor_errors_total counter\nkiln_executor_errors_total %llu\n",
                (unsigned long long)ss.executor_errors);
    sbuf_printf(b, "# HELP kiln_event_streams Open server-sent-event streams.\n"
                   "# TYPE kiln_event_streams gauge\nkiln_event_streams %d\n", s->n_streams);
    if (s->reads) {
        struct reads_stats rd;
        reads_stats(s->reads, &rd);
        sbuf_printf(b, "# HELP kiln_api_reads_total API reads by how they were answered.\n"
                       "# TYPE kiln_api_reads_total counter\n"
                       "kiln_api_reads_total{answer=\"computed\"} %llu\n"
                       "kiln_api_reads_total{answer=\"kept\"} %llu\n"
                       "kiln_api_reads_total{answer=\"not_modified\"} %llu\n",
                    (unsigned long long)rd.computed, (unsigned long long)rd.kept,
                    (unsigned long long)rd.not_modified);
    }
    sbuf_adds(b, "# HELP kiln_task_duration_seconds Run time of finished task tries.\n"
                 "# TYPE kiln_task_duration_seconds histogram\n");
    uint64_t cum = 0;
    for (size_t i = 0; i < N_BUCKETS; i++) {
        cum += s->dur_counts[i];
        sbuf_printf(b, "kiln_task_duration_seconds_bucket{le=\"%g\"} %llu\n", duration_buckets[i],
                    (unsigned long long)cum);
    }
    sbuf_printf(b, "kiln_task_duration_seconds_bucket{le=\"+Inf\"} %llu\n",
                (unsigned long long)s->dur_n);
    sbuf_printf(b, "kiln_task_duration_seconds_sum %.6f\n", s->dur_sum);
    sbuf_printf(b, "kiln_task_duration_seconds_count %llu\n", (unsigned long long)s->dur_n);
}

/* --- the UI's files ------------------------------------------------------------ */

static bool serve_static(h2o_req_t *req, const char *path, size_t len)
{
    for (const struct static_file *f = static_files; f->path; f++) {
        if (strlen(f->path) != len || memcmp(f->path, path, len) != 0)
            continue;
        req->res.status = 200;
        req->res.reason = "OK";
        add_header(req, H2O_TOKEN_CONTENT_TYPE, f->content_type);
        add_header(req, H2O_TOKEN_CACHE_CONTROL, "no-cache");
        add_header_by_name(req, "x-content-type-options", "nosniff");
        add_header_by_name(req, "content-security-policy",
                           "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
                           "frame-ancestors 'none'");
        add_header_by_name(req, "x-frame-options", "DENY");
        /* This h2o takes only application/javascript as compressible
         * script; ours is text/javascript (and all our files are text). */
        static h2o_mime_attributes_t text_attr = { .is_compressible = 1 };
        req->res.mime_attr = &text_attr;
        h2o_send_inline(req, (const char *)f->data, f->len);
        return true;
    }
    return false;
}

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    struct http_server *s = ((struct http_handler *)self)->s;
    char method[16];
    if (req->method.len == 0 || req->method.len >= sizeof method) {
        respond_error(req, 405, "method not allowed");
        return 0;
    }
    memcpy(method, req->method.base, req->method.len);
    method[req->method.len] = '\0';
    h2o_iovec_t path = req->path_normalized;
    if (path.len == 8 && memcmp(path.base, "/healthz", 8) == 0) {
        if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
            respond_error(req, 405, "method not allowed");
            return 0;
        }
        static const char ok[] = "{\"status\":\"ok\"}\n";
        respond(req, 200, "application/json", ok, sizeof ok - 1);
        return 0;
    }
    bool get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
    if (path.len == 8 && memcmp(path.base, "/metrics", 8) == 0) {
        if (!get) {
            respond_error(req, 405, "method not allowed");
            return 0;
        }
        if (s->reads_need_auth && !authorized(s, req)) {
            respond_error(req, 401, "missing or wrong token (send Authorization: Bearer TOKEN)");
            return 0;
        }
        struct sbuf b;
        sbuf_init(&b);
        metrics(s, &b);
        respond(req, 200, "text/plain; version=0.0.4; charset=utf-8", b.data, b.len);
        sbuf_free(&b);
        return 0;
    }
    /* The UI's files need no token: they hold no data. */
    if (get && (path.len == 1 || (path.len > 4 && memcmp(path.base, "/ui/", 4) == 0)) &&
        serve_static(req, path.len == 1 ? "/ui/index.html" : path.base, path.len == 1 ? 14 : path.len))
        return 0;
    if (path.len < 7 || memcmp(path.base, "/api/v1", 7) != 0 ||
        (path.len > 7 && path.base[7] != '/')) {
        respond_error(req, 404, "not found (the API is under /api/v1)");
        return 0;
    }
    if (s->stopping) {
        respond_error(req, 503, "the daemon is stopping");
        return 0;
    }
    bool mutation = api_is_mutation(method);
    if ((mutation || s->reads_need_auth) && !authorized(s, req)) {
        respond_error(req, 401, "missing or wrong token (send Authorization: Bearer TOKEN)");
        return 0;
    }
    struct api_request rq = {
        .method = method, .path = path.base + 7, .path_len = path.len - 7,
        .body = req->entity.base, .body_len = req->entity.base ? req->entity.len : 0,
        .actor = "api:token",
    };
    if (req->query_at != SIZE_MAX && req->query_at < req->path.len) {
        rq.query = req->path.base + req->query_at + 1;
        rq.query_len = req->path.len - req->query_at - 1;
    }
    if (get && path.len == 14 && memcmp(path.base, "/api/v1/events", 14) == 0) {
        sse_open(s, req);
        return 0;
    }
    char follow[8];
    if (get && rq.query && api_query_get(&rq, "follow", follow, sizeof follow) &&
        strcmp(follow, "1") == 0) {
        char *log = NULL;
        struct api_response ers = { .status = 500, .content_type = "application/json" };
        sbuf_init(&ers.body);
        if (api_log_file(s->e, &rq, &log, &ers) < 0) {
            respond(req, ers.status, ers.content_type, ers.body.data ? ers.body.data : "",
                    ers.body.len);
            sbuf_free(&ers.body);
            return 0;
        }
        sbuf_free(&ers.body);
        struct sse *c = sse_open(s, req);
        c->log_path = log;
        c->timer = xcalloc(1, sizeof *c->timer);
        uv_timer_init(s->loop, c->timer);
        c->timer->data = c;
        uv_timer_start(c->timer, on_tail_timer, 0, TAIL_MS);
        return 0;
    }
    ssize_t ri = h2o_find_header(&req->headers, H2O_TOKEN_RANGE, -1);
    if (ri >= 0) {
        rq.range = req->headers.entries[ri].value.base;
        rq.range_len = req->headers.entries[ri].value.len;
    }
    /* Reads leave the loop: the scheduler shares it. */
    if (get && s->reads) {
        reads_handle(s->reads, req, &rq);
        return 0;
    }
    struct api_response rs = { .status = 500, .content_type = "application/json" };
    sbuf_init(&rs.body);
    api_handle(s->e, &rq, &rs);
    if (rs.content_range[0])
        add_header(req, H2O_TOKEN_CONTENT_RANGE, rs.content_range);
    if (rs.accept_ranges)
        add_header(req, H2O_TOKEN_ACCEPT_RANGES, "bytes");
    respond(req, rs.status, rs.content_type, rs.body.data ? rs.body.data : "", rs.body.len);
    sbuf_free(&rs.body);
    return 0;
}

static void dispose_ctx(struct http_server *s)
{
    if (!s->ctx_live)
        return;
    s->ctx_live = false;
    /* h2o_context_request_shutdown() arms HTTP/2's graceful-shutdown timer
     * on the one-second timeout list, and h2o_context_dispose() asserts
     * that list is empty: with no connection left the timer has nothing to
     * do, so it is dropped here (a stop after any request aborted before). */
    if (h2o_timeout_is_linked(&s->ctx.http2._graceful_shutdown_timeout))
        h2o_timeout_unlink(&s->ctx.http2._graceful_shutdown_timeout);
    h2o_context_dispose(&s->ctx);
}

static void on_conn_closed(uv_handle_t *h)
{
    struct http_conn *c = container_of((uv_tcp_t *)h, struct http_conn, tcp);
    struct http_server *s = c->s;
    free(c);
    if (s) {
        s->conns--;
        if (s->stopping && s->conns == 0)
            dispose_ctx(s);
    }
}

static void on_accept(uv_stream_t *listener, int status)
{
    struct http_server *s = listener->data;
    if (status < 0 || s->stopping)
        return;
    struct http_conn *c = xcalloc(1, sizeof *c);
    uv_tcp_init(s->loop, &c->tcp);
    if (uv_accept(listener, (uv_stream_t *)&c->tcp) < 0 || s->conns >= HTTP_MAX_CONNS) {
        uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
        return;
    }
    c->s = s;
    s->conns++;
    h2o_socket_t *sock = h2o_uv_socket_create((uv_stream_t *)&c->tcp, on_conn_closed);
    h2o_accept(&s->accept_ctx, sock);
}

static void on_listener_closed(uv_handle_t *h)
{
    free(h);
}

int http_start(struct http_server **out, uv_loop_t *loop, const struct kiln_settings *cfg,
               struct engine *e, struct kiln_err *err)
{
    *out = NULL;
    struct http_server *s = xcalloc(1, sizeof *s);
    s->loop = loop;
    s->e = e;
    s->reads_need_auth = !is_loopback(cfg->bind);
    int rc, created = 0;
    const char *env = getenv("KILN_API_TOKEN");
    if (env && *env) {
        if (strlen(env) < 16) {
            free(s);
            return kiln_err_set(err, KILN_EINVALID, "KILN_API_TOKEN must be 16 characters or more");
        }
        s->token = xstrdup(env);
    } else if ((rc = http_token_load(cfg->home, &s->token, &created, err)) < 0) {
        free(s);
        return rc;
    }
    struct sockaddr_storage sa;
    if (uv_ip4_addr(cfg->bind, cfg->port, (struct sockaddr_in *)&sa) != 0 &&
        uv_ip6_addr(cfg->bind, cfg->port, (struct sockaddr_in6 *)&sa) != 0) {
        rc = kiln_err_set(err, KILN_EINVALID, "bind: '%s' is not an IP address", cfg->bind);
        free(s->token);
        free(s);
        return rc;
    }
    s->listener = xcalloc(1, sizeof *s->listener);
    uv_tcp_init(loop, s->listener);
    s->listener->data = s;
    if ((rc = uv_tcp_bind(s->listener, (struct sockaddr *)&sa, 0)) < 0 ||
        (rc = uv_listen((uv_stream_t *)s->listener, LISTEN_BACKLOG, on_accept)) < 0) {
        rc = kiln_err_set(err, rc, "cannot listen on %s:%d: %s", cfg->bind, cfg->port,
                          uv_strerror(rc));
        uv_close((uv_handle_t *)s->listener, on_listener_closed);
        free(s->token);
        free(s);
        return rc;
    }
    h2o_config_init(&s->config);
    s->config.max_request_entity_size = HTTP_MAX_BODY;
    s->config.http1.req_timeout = HTTP_REQ_TIMEOUT_MS;
    s->config.http2.idle_timeout = HTTP_REQ_TIMEOUT_MS;
    s->config.handshake_timeout = HTTP_REQ_TIMEOUT_MS;
    h2o_hostconf_t *host = h2o_config_register_host(&s->config,
                                                    h2o_iovec_init(H2O_STRLIT("default")), 65535);
    h2o_pathconf_t *pc = h2o_config_register_path(host, "/", 0);
    struct http_handler *hd = (struct http_handler *)h2o_create_handler(pc, sizeof *hd);
    hd->super.on_req = on_req;
    hd->s = s;
    /* gzip for JSON, HTML, JS, CSS and log text when the client accepts it
     * (quality 1: the grid of a big DAG shrinks about tenfold for little
     * CPU); answers under 512 bytes go as they are. */
    h2o_compress_args_t ca = { .min_size = 512, .gzip = { .quality = 1 }, .brotli = { .quality = -1 } };
    h2o_compress_register(pc, &ca);
    h2o_context_init(&s->ctx, loop, &s->config);
    s->ctx_live = true;
    s->accept_ctx.ctx = &s->ctx;
    s->accept_ctx.hosts = s->config.hosts;
    char *db = home_path(cfg->home, "kiln.db");
    struct kiln_err rerr = { 0 };
    if (reads_new(&s->reads, loop, e, db, READER_THREADS, &rerr) < 0)
        LOG_W("HTTP: reads stay on the loop (%s)", rerr.msg);
    free(db);
    sched_set_observer(engine_sched(e), on_sched_event, s);
    uv_timer_init(loop, &s->tick);
    s->tick.data = s;
    s->tick_live = true;
    s->tick_at_us = mono_us();
    uv_timer_start(&s->tick, on_tick, TICK_MS, TICK_MS);
    if (created)
        fprintf(stderr, "kiln serve: API token (saved in %s/token, shown once): %s\n", cfg->home,
                s->token);
    LOG_I("HTTP API on http://%s:%d/api/v1 (reads %s a token)", cfg->bind, cfg->port,
          s->reads_need_auth ? "need" : "do not need");
    *out = s;
    return 0;
}

void http_stop(struct http_server *s)
{
    if (!s || s->stopping)
        return;
    s->stopping = true;
    sched_set_observer(engine_sched(s->e), NULL, NULL);
    if (s->tick_live) {
        s->tick_live = false;
        uv_close((uv_handle_t *)&s->tick, NULL);
    }
    /* Event streams never end by themselves: end them now. */
    while (s->streams) {
        struct sse *c = s->streams;
        sse_unlink(c);
        sse_finish(c);
    }
    uv_close((uv_handle_t *)s->listener, on_listener_closed);
    s->listener = NULL;
    reads_stop(s->reads);
    h2o_context_request_shutdown(&s->ctx);
    if (s->conns == 0)
        dispose_ctx(s);
}

void http_free(struct http_server *s)
{
    if (!s)
        return;
    /* The loop has ended, so every connection is closed. */
    dispose_ctx(s);
    reads_free(s->reads);
    h2o_config_dispose(&s->config);
    free(s->running);
    free(s->token);
    free(s);
}
