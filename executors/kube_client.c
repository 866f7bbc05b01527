/* kube_client: libcurl multi on libuv (the curl "multi-uv" pattern). */
#include "kube_client.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <curl/curl.h>

#include "util.h"

struct sock_ctx {
    uv_poll_t poll;
    curl_socket_t fd;
    struct kube_client *c;
    struct sock_ctx *next, *prev;
};

struct kube_client {
    uv_loop_t *loop;
    struct kube_config *cfg;
    struct kube_client_opts o;
    CURLM *multi;
    uv_timer_t timer;
    struct kube_req *reqs;         /* every live request */
    struct sock_ctx *socks;
    unsigned open_handles;         /* uv handles not yet closed */
    int closing;
    double bucket;                 /* tokens; negative = reserved ahead */
    uint64_t bucket_ms;            /* uv_now of the last refill */
    /* Inside curl_multi_socket_action a transfer must not be removed from
     * the multi handle (another transfer's callback may cancel it): its easy
     * handle waits here until curl has returned. */
    int in_curl;
    CURL **graveyard;
    size_t n_graveyard, cap_graveyard;
    /* The exec credential plugin runs as a child on the loop, never blocking
     * it: requests that need its token wait (cred_wait), and a token close
     * to expiry is refreshed ahead while the current one is still used. */
    struct exec_run *exec;         /* the plugin running now, or NULL */
    time_t exec_ahead_for;         /* the expiry last refreshed ahead (once per token) */
};

/* One run of the exec plugin; freed once its handles are closed. */
struct exec_run {
    struct kube_client *c;
    uv_process_t proc;
    uv_pipe_t out;
    uv_timer_t deadline;
    int open;                      /* of the three handles */
    struct sbuf buf;
    int exited, eof, timed_out, finished;
    int exit_status, term_signal;
    int spawn_error;               /* uv_spawn's, or 0 */
};

struct kube_req {
    struct kube_client *c;
    struct kube_req *next, *prev;
    char *method, *url, *body, *ctype;
    int stream;
    kube_done_cb done;
    kube_line_cb line;
    void *arg;
    CURL *easy;
    struct curl_slist *hdrs;
    uv_timer_t timer;
    int timer_open;
    struct sbuf resp;              /* non-stream body, or a stream's error body */
    struct sbuf part;              /* a stream's unfinished line */
    int lines;                     /* lines delivered */
    int attempts;
    int finished;
    int in_cb, cancel_pending;     /* a cancel from a line callback waits for curl */
    int cred_wait;                 /* waiting for the exec plugin's token */
    json_object *json;
    char errbuf[CURL_ERROR_SIZE];
};

static void check_multi(struct kube_client *c);
static void start_attempt(struct kube_req *r);

void kube_client_opts_default(struct kube_client_opts *o)
{
    o->max_retries = 5;
    o->backoff_base_s = 0.5;
    o->backoff_max_s = 30;
    o->create_qps = 10;
    o->create_burst = 20;
    o->timeout_ms = 60000;
    o->connect_timeout_ms = 10000;
}

/* ------------------------------------------------------------ handles */

static void maybe_free_client(struct kube_client *c)
{
    if (c->closing && c->open_handles == 0 && !c->reqs) {
        free(c->graveyard);
        kube_config_free(c->cfg);
        free(c);
    }
}

static void on_handle_closed(uv_handle_t *h)
{
    struct kube_client *c = h->data;
    c->open_handles--;
    maybe_free_client(c);
}

static void on_sock_closed(uv_handle_t *h)
{
    struct sock_ctx *s = (struct sock_ctx *)h;
    struct kube_client *c = s->c;
    free(s);
    c->open_handles--;
    maybe_free_client(c);
}

static void sock_close(struct sock_ctx *s)
{
    struct kube_client *c = s->c;
    if (s->prev) s->prev->next = s->next;
    else c->socks = s->next;
    if (s->next) s->next->prev = s->prev;
    uv_poll_stop(&s->poll);
    uv_close((uv_handle_t *)&s->poll, on_sock_closed);
}

static void bury_now(struct kube_client *c)
{
    for (size_t i = 0; i < c->n_graveyard; i++) {
        if (c->multi)
            curl_multi_remove_handle(c->multi, c->graveyard[i]);
        curl_easy_cleanup(c->graveyard[i]);
    }
    c->n_graveyard = 0;
}

static void on_poll(uv_poll_t *h, int status, int events)
{
    struct sock_ctx *s = (struct sock_ctx *)h;
    struct kube_client *c = s->c;
    int flags = 0, running = 0;
    if (status < 0) flags = CURL_CSELECT_ERR;
    if (events & UV_READABLE) flags |= CURL_CSELECT_IN;
    if (events & UV_WRITABLE) flags |= CURL_CSELECT_OUT;
    c->in_curl++;
    curl_multi_socket_action(c->multi, s->fd, flags, &running);
    c->in_curl--;
    bury_now(c);
    check_multi(c);
}

static int sock_cb(CURL *e, curl_socket_t fd, int what, void *userp, void *sockp)
{
    struct kube_client *c = userp;
    struct sock_ctx *s = sockp;
    if (what == CURL_POLL_REMOVE) {
        if (s) {
            curl_multi_assign(c->multi, fd, NULL);
            sock_close(s);
        }
        return 0;
    }
    if (!s) {
        s = xcalloc(1, sizeof *s);
        s->fd = fd;
        s->c = c;
        if (uv_poll_init_socket(c->loop, &s->poll, fd) != 0) {
            free(s);
            return -1;
        }
        s->poll.data = c;
        c->open_handles++;
        s->next = c->socks;
        if (c->socks) c->socks->prev = s;
        c->socks = s;
        curl_multi_assign(c->multi, fd, s);
    }
    int ev = 0;
    if (what & CURL_POLL_IN) ev |= UV_READABLE;
    if (what & CURL_POLL_OUT) ev |= UV_WRITABLE;
    uv_poll_start(&s->poll, ev, on_poll);
    return 0;
}

static void on_timeout(uv_timer_t *t)
{
    struct kube_client *c = t->data;
    int running = 0;
    c->in_curl++;
    curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    c->in_curl--;
    bury_now(c);
    check_multi(c);
}

static int timer_cb(CURLM *m, long ms, void *userp)
{
    struct kube_client *c = userp;
    if (ms < 0) uv_timer_stop(&c->timer);
    else uv_timer_start(&c->timer, on_timeout, (uint64_t)ms, 0);
    return 0;
}

int kube_client_new(uv_loop_t *loop, struct kube_config *cfg, const struct kube_client_opts *o,
                    struct kube_client **out, struct kiln_err *err)
{
    static int global_done;
    *out = NULL;
    if (!global_done) {
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
            return kiln_err_set(err, KILN_EEXEC, "curl_global_init failed");
        global_done = 1;
    }
    struct kube_client *c = xcalloc(1, sizeof *c);
    c->loop = loop;
    c->cfg = cfg;
    if (o) c->o = *o;
    else kube_client_opts_default(&c->o);
    c->multi = curl_multi_init();
    if (!c->multi) {
        free(c);
        return kiln_err_set(err, KILN_EEXEC, "curl_multi_init failed");
    }
    curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, sock_cb);
    curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c);
    curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
    curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c);
    curl_multi_setopt(c->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
    uv_timer_init(loop, &c->timer);
    c->timer.data = c;
    c->open_handles = 1;
    c->bucket = c->o.create_burst;
    c->bucket_ms = uv_now(loop);
    *out = c;
    return 0;
}

struct kube_config *kube_client_config(struct kube_client *c)
{
    return c->cfg;
}

unsigned kube_client_inflight(struct kube_client *c)
{
    unsigned n = 0;
    for (struct kube_req *r = c->reqs; r; r = r->next) n++;
    return n;
}

/* ------------------------------------------------------------- status */

void kube_parse_status(const char *body, size_t len, long http, struct kube_result *res)
{
    res->code = (int)http;
    res->reason[0] = res->message[0] = 0;
    json_object *j = NULL;
    if (body && len) {
        json_tokener *tk = json_tokener_new();
        j = json_tokener_parse_ex(tk, body, (int)len);
        json_tokener_free(tk);
    }
    json_object *kind = NULL, *v = NULL;
    if (j && json_object_is_type(j, json_type_object) && json_object_object_get_ex(j, "kind", &kind) &&
        strcmp(json_object_get_string(kind), "Status") == 0) {
        if (json_object_object_get_ex(j, "code", &v)) res->code = json_object_get_int(v);
        if (json_object_object_get_ex(j, "reason", &v))
            snprintf(res->reason, sizeof res->reason, "%s", json_object_get_string(v));
        if (json_object_object_get_ex(j, "message", &v))
            snprintf(res->message, sizeof res->message, "%.500s", json_object_get_string(v));
    } else if (http >= 400 && body && len) {
        size_t n = len < 200 ? len : 200;
        snprintf(res->message, sizeof res->message, "%.*s", (int)n, body);
        for (char *p = res->message; *p; p++)
            if (*p == '\n' || *p == '\r') *p = ' ';
    }
    json_object_put(j);
    if (!res->reason[0] && http >= 400) {
        const char *r = http == 400 ? "BadRequest" : http == 401 ? "Unauthorized" : http == 403 ? "Forbidden"
                      : http == 404 ? "NotFound" : http == 409 ? "Conflict" : http == 410 ? "Gone"
                      : http == 422 ? "Invalid" : http == 429 ? "TooManyRequests"
                      : http >= 500 ? "InternalError" : "Unknown";
        snprintf(res->reason, sizeof res->reason, "%s", r);
    }
    if (!res->message[0] && http >= 400) snprintf(res->message, sizeof res->message, "HTTP %ld", http);
}

/* ------------------------------------------------------------ requests */

static void req_unlink(struct kube_req *r)
{
    struct kube_client *c = r->c;
    if (r->prev) r->prev->next = r->next;
    else if (c->reqs == r) c->reqs = r->next;
    if (r->next) r->next->prev = r->prev;
    r->next = r->prev = NULL;
}

static void req_free_now(struct kube_req *r)
{
    free(r->method);
    free(r->url);
    free(r->body);
    free(r->ctype);
    sbuf_free(&r->resp);
    sbuf_free(&r->part);
    json_object_put(r->json);
    free(r);
}

static void on_req_timer_closed(uv_handle_t *h)
{
    struct kube_req *r = h->data;
    struct kube_client *c = r->c;
    req_free_now(r);
    c->open_handles--;
    maybe_free_client(c);
}

static void easy_drop(struct kube_req *r)
{
    struct kube_client *c = r->c;
    if (r->easy && c->in_curl && c->multi) {
        /* Its callbacks see r->finished and stop; curl forgets it once
         * the current curl_multi_socket_action has returned. */
        if (c->n_graveyard == c->cap_graveyard) {
            c->cap_graveyard = c->cap_graveyard ? 2 * c->cap_graveyard : 16;
            c->graveyard = xrealloc(c->graveyard, c->cap_graveyard * sizeof *c->graveyard);
        }
        c->graveyard[c->n_graveyard++] = r->easy;
        r->easy = NULL;
    } else if (r->easy) {
        curl_multi_remove_handle(r->c->multi, r->easy);
        curl_easy_cleanup(r->easy);
        r->easy = NULL;
    }
    curl_slist_free_all(r->hdrs);
    r->hdrs = NULL;
}

static void finish(struct kube_req *r, struct kube_result *res)
{
    struct kube_client *c = r->c;
    r->finished = 1;
    easy_drop(r);
    uv_timer_stop(&r->timer);
    res->attempts = r->attempts;
    if (r->done) r->done(r, res, r->arg);
    req_unlink(r);
    uv_close((uv_handle_t *)&r->timer, on_req_timer_closed);
    (void)c;
}

static void finish_simple(struct kube_req *r, enum kube_outcome oc, const char *reason, const char *msg)
{
    struct kube_result res;
    memset(&res, 0, sizeof res);
    res.outcome = oc;
    snprintf(res.reason, sizeof res.reason, "%s", reason);
    snprintf(res.message, sizeof res.message, "%.500s", msg);
    finish(r, &res);
}

static size_t on_write(char *p, size_t sz, size_t n, void *ud)
{
    struct kube_req *r = ud;
    size_t len = sz * n;
    if (r->finished || !r->easy)
        return 0;   /* cancelled by another transfer's callback: abort */
    long http = 0;
    curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &http);
    if (!r->stream || http < 200 || http >= 300) {
        if (r->resp.len < (64u << 20)) sbuf_add(&r->resp, p, len);
        return len;
    }
    size_t start = 0;
    for (size_t i = 0; i < len; i++) {
        if (p[i] != '\n') continue;
        sbuf_add(&r->part, p + start, i - start);
        start = i + 1;
        if (r->part.len && r->part.data[r->part.len - 1] == '\r') r->part.data[--r->part.len] = 0;
        r->lines++;
        if (r->line) {
            r->in_cb = 1;
            r->line(r, r->part.data ? r->part.data : "", r->part.len, r->arg);
            r->in_cb = 0;
        }
        if (r->cancel_pending) return 0;   /* cancelled from the callback: curl aborts */
        r->part.len = 0;
        if (r->part.data) r->part.data[0] = 0;
    }
    if (start < len) sbuf_add(&r->part, p + start, len - start);
    return len;
}

static double backoff_s(struct kube_req *r, double retry_after)
{
    struct kube_client_opts *o = &r->c->o;
    double cap = o->backoff_base_s * pow(2, r->attempts - 1);
    if (cap > o->backoff_max_s) cap = o->backoff_max_s;
    double d = cap / 2 + (cap / 2) * ((double)random() / (double)RAND_MAX);
    if (retry_after > 300) retry_after = 300;
    if (retry_after > d) d = retry_after;
    return d;
}

static void on_retry_timer(uv_timer_t *t)
{
    start_attempt(t->data);
}

static void schedule(struct kube_req *r, double secs)
{
    uv_timer_start(&r->timer, on_retry_timer, (uint64_t)(secs * 1000 + 0.5), 0);
}

static int is_quota(const struct kube_result *res)
{
    return res->http == 403 && (strstr(res->message, "exceeded quota") || strstr(res->message, "exceeds quota"));
}

static void attempt_done(struct kube_req *r, CURLcode cc)
{
    struct kube_result res;
    memset(&res, 0, sizeof res);
    long http = 0;
    curl_off_t ra = -1;
    curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &http);
    curl_easy_getinfo(r->easy, CURLINFO_RETRY_AFTER, &ra);
    res.http = http;
    res.curl_code = cc;
    if (cc != CURLE_OK && (http == 0 || (http >= 200 && http < 300))) {
        res.outcome = KUBE_TRANSIENT;
        snprintf(res.reason, sizeof res.reason, "%s", r->stream && r->lines ? "StreamBroken" : "NetworkError");
        snprintf(res.message, sizeof res.message, "%s %.300s: %.150s", r->method, r->url,
                 r->errbuf[0] ? r->errbuf : curl_easy_strerror(cc));
    } else {
        kube_parse_status(r->resp.data, r->resp.len, http, &res);
        if (http >= 200 && http < 300) {
            res.outcome = KUBE_OK;
        } else if (http == 429 || http >= 500 || is_quota(&res)) {
            res.outcome = KUBE_TRANSIENT;
        } else {
            res.outcome = KUBE_PERMANENT;
            char m[512];
            snprintf(m, sizeof m, "%s", res.message);
            if (http == 401)
                snprintf(res.message, sizeof res.message, "unauthorized (check the token or client certificate): %.400s", m);
            else if (http == 403)
                snprintf(res.message, sizeof res.message, "forbidden (check RBAC for kiln's service account): %.400s", m);
            else if (http == 404 && strncmp(m, "namespaces \"", 12) == 0)
                snprintf(res.message, sizeof res.message, "namespace does not exist: %.400s", m);
        }
    }
    int retry = res.outcome == KUBE_TRANSIENT && r->attempts <= r->c->o.max_retries && !r->lines && !r->c->closing;
    if (http == 401 && r->attempts == 1 && (r->c->cfg->exec_argv || r->c->cfg->token_file)) {
        kube_config_invalidate_token(r->c->cfg);   /* a rotated or expired token: once more */
        retry = 1;
    }
    if (retry) {
        easy_drop(r);
        sbuf_free(&r->resp);
        sbuf_init(&r->resp);
        r->part.len = 0;
        schedule(r, http == 401 ? 0 : backoff_s(r, ra > 0 ? (double)ra : 0));
        return;
    }
    if (r->stream && cc == CURLE_OK && r->part.len && res.outcome == KUBE_OK && r->line) {
        r->in_cb = 1;
        r->line(r, r->part.data, r->part.len, r->arg);  /* a last line without '\n' */
        r->in_cb = 0;
        if (r->cancel_pending) {
            finish_simple(r, KUBE_PERMANENT, "Cancelled", "cancelled");
            return;
        }
    }
    if (!r->stream && res.outcome == KUBE_OK && r->resp.len) {
        json_tokener *tk = json_tokener_new();
        r->json = json_tokener_parse_ex(tk, r->resp.data, (int)r->resp.len);
        json_tokener_free(tk);
    }
    res.json = r->json;
    res.body = r->resp.data ? r->resp.data : "";
    res.body_len = r->resp.len;
    finish(r, &res);
}

static void check_multi(struct kube_client *c)
{
    CURLMsg *m;
    int left;
    while (c->multi && (m = curl_multi_info_read(c->multi, &left))) {
        if (m->msg != CURLMSG_DONE) continue;
        struct kube_req *r = NULL;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&r);
        CURLcode cc = m->data.result;
        if (!r || r->finished) continue;
        if (r->cancel_pending) finish_simple(r, KUBE_PERMANENT, "Cancelled", "cancelled");
        else attempt_done(r, cc);
    }
}

/* ------------------------------------------------------ exec plugin */

static void exec_handle_closed(uv_handle_t *h)
{
    struct exec_run *x = h->data;
    if (--x->open > 0) return;
    struct kube_client *c = x->c;
    sbuf_free(&x->buf);
    free(x);
    c->open_handles--;
    maybe_free_client(c);
}

static void exec_close(struct exec_run *x)
{
    uv_timer_stop(&x->deadline);
    uv_close((uv_handle_t *)&x->deadline, exec_handle_closed);
    uv_close((uv_handle_t *)&x->out, exec_handle_closed);
    uv_close((uv_handle_t *)&x->proc, exec_handle_closed);
}

/* The plugin is done (exited, and its stdout ended or the time is up): its
 * token goes into the config, and the requests waiting for it go on, or fail
 * with the plugin's error. */
static void exec_finish(struct exec_run *x)
{
    struct kube_client *c = x->c;
    x->finished = 1;
    if (c->exec == x) c->exec = NULL;
    struct kiln_err err = {0};
    int rc;
    if (x->spawn_error)
        rc = kiln_err_set(&err, KILN_EEXEC, "exec plugin %s: cannot start: %s", c->cfg->exec_argv[0],
                          uv_strerror(x->spawn_error));
    else
        rc = kube_config_exec_accept(c->cfg, x->buf.data, x->buf.len, x->timed_out, x->exit_status,
                                     x->term_signal, &err);
    if (rc == 0 && kube_config_exec_due(c->cfg, time(NULL), 10)) /* else requests would wait again */
        rc = kiln_err_set(&err, KILN_EEXEC, "exec plugin %s: its token expires within 10 s",
                          c->cfg->exec_argv[0]);
    exec_close(x);
    /* start_attempt or finish may unlink requests: take one at a time */
    for (;;) {
        struct kube_req *r = c->reqs;
        while (r && !r->cred_wait) r = r->next;
        if (!r) break;
        r->cred_wait = 0;
        if (rc < 0) {
            r->attempts++;
            finish_simple(r, KUBE_PERMANENT, "Unauthorized", err.msg);
        } else {
            start_attempt(r);
        }
    }
}

static void exec_on_exit(uv_process_t *p, int64_t status, int sig)
{
    struct exec_run *x = p->data;
    x->exited = 1;
    x->exit_status = (int)status;
    x->term_signal = sig;
    if ((x->eof || x->timed_out) && !x->finished) exec_finish(x);
}

static void exec_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
    static char chunk[4096]; /* consumed in exec_on_read before the next read */
    (void)h;
    (void)hint;
    *b = uv_buf_init(chunk, sizeof chunk);
}

static void exec_on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    struct exec_run *x = s->data;
    if (n > 0) {
        if (x->buf.len < KUBE_EXEC_MAX_OUTPUT) sbuf_add(&x->buf, b->base, (size_t)n);
        return;
    }
    if (n == 0) return;
    uv_read_stop(s); /* EOF or an error: nothing more comes */
    x->eof = 1;
    if (x->exited && !x->finished) exec_finish(x);
}

static void exec_on_deadline(uv_timer_t *t)
{
    struct exec_run *x = t->data;
    x->timed_out = 1;
    if (!x->exited) uv_process_kill(&x->proc, SIGKILL); /* exec_on_exit finishes */
    else if (!x->finished) exec_finish(x);              /* exited, stdout held open by another */
}

/* Starts the plugin unless it is running; when it cannot start, the waiting
 * requests fail (through exec_finish) at once. */
static void exec_start(struct kube_client *c)
{
    if (c->exec || c->closing) return;
    struct exec_run *x = xcalloc(1, sizeof *x);
    x->c = c;
    sbuf_init(&x->buf);
    uv_pipe_init(c->loop, &x->out, 0);
    uv_timer_init(c->loop, &x->deadline);
    x->out.data = x->deadline.data = x->proc.data = x;
    x->open = 3; /* uv_spawn initialises the process handle even when it fails */
    c->open_handles++;
    c->exec = x;
    char **envp = kube_config_exec_envp(c->cfg);
    uv_stdio_container_t stdio[3] = {
        {.flags = UV_IGNORE},
        {.flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE, .data.stream = (uv_stream_t *)&x->out},
        {.flags = UV_INHERIT_FD, .data.fd = 2},
    };
    uv_process_options_t o = {.exit_cb = exec_on_exit, .file = c->cfg->exec_argv[0],
                              .args = c->cfg->exec_argv, .env = envp, .stdio_count = 3, .stdio = stdio};
    int rc = uv_spawn(c->loop, &x->proc, &o);
    kube_config_exec_envp_free(envp);
    if (rc != 0) {
        x->spawn_error = rc;
        exec_finish(x);
        return;
    }
    uv_read_start((uv_stream_t *)&x->out, exec_alloc, exec_on_read);
    uv_timer_start(&x->deadline, exec_on_deadline, KUBE_EXEC_TIMEOUT_S * 1000, 0);
}

static void start_attempt(struct kube_req *r)
{
    struct kube_client *c = r->c;
    struct kube_config *cfg = c->cfg;
    struct kiln_err err = {0};
    if (cfg->exec_argv) {
        time_t now = time(NULL);
        if (kube_config_exec_due(cfg, now, 10)) { /* no usable token: wait for the plugin */
            r->cred_wait = 1;
            exec_start(c);
            return;
        }
        /* expiring within a minute: refresh ahead, once per token (a failed
         * refresh is not repeated: requests wait for a run once the token is
         * due); this request uses the current one */
        if (kube_config_exec_due(cfg, now, 60) && c->exec_ahead_for != cfg->exec_expiry) {
            c->exec_ahead_for = cfg->exec_expiry;
            exec_start(c);
        }
    }
    r->attempts++;
    r->errbuf[0] = 0;
    const char *token = NULL;
    if (kube_config_token(cfg, &token, &err) < 0) {
        finish_simple(r, KUBE_PERMANENT, "Unauthorized", err.msg);
        return;
    }
    CURL *e = curl_easy_init();
    r->easy = e;
    curl_easy_setopt(e, CURLOPT_URL, r->url);
    curl_easy_setopt(e, CURLOPT_PRIVATE, (char *)r);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->errbuf);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
    curl_easy_setopt(e, CURLOPT_PIPEWAIT, 1L);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "kiln");
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, c->o.connect_timeout_ms);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    if (!r->stream) curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, c->o.timeout_ms);
    curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, r->method);
    if (strcmp(r->method, "GET") == 0) curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
    if (r->body) {
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->body);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)strlen(r->body));
    }
    if (cfg->insecure) {
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    if (cfg->ca.data) {
        struct curl_blob b = {cfg->ca.data, cfg->ca.len, CURL_BLOB_COPY};
        curl_easy_setopt(e, CURLOPT_CAINFO_BLOB, &b);
    } else if (cfg->ca_file) {
        curl_easy_setopt(e, CURLOPT_CAINFO, cfg->ca_file);
    }
    if (cfg->cert.data) {
        struct curl_blob b = {cfg->cert.data, cfg->cert.len, CURL_BLOB_COPY};
        curl_easy_setopt(e, CURLOPT_SSLCERT_BLOB, &b);
        curl_easy_setopt(e, CURLOPT_SSLCERTTYPE, "PEM");
    } else if (cfg->cert_file) {
        curl_easy_setopt(e, CURLOPT_SSLCERT, cfg->cert_file);
    }
    if (cfg->key.data) {
        struct curl_blob b = {cfg->key.data, cfg->key.len, CURL_BLOB_COPY};
        curl_easy_setopt(e, CURLOPT_SSLKEY_BLOB, &b);
        curl_easy_setopt(e, CURLOPT_SSLKEYTYPE, "PEM");
    } else if (cfg->key_file) {
        curl_easy_setopt(e, CURLOPT_SSLKEY, cfg->key_file);
    }
    struct curl_slist *h = NULL;
    h = curl_slist_append(h, "Accept: application/json");
    if (r->body) {
        char *ct = xasprintf("Content-Type: %s", r->ctype);
        h = curl_slist_append(h, ct);
        free(ct);
    }
    if (token) {
        char *a = xasprintf("Authorization: Bearer %s", token);
        h = curl_slist_append(h, a);
        free(a);
    }
    h = curl_slist_append(h, "Expect:");
    r->hdrs = h;
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
    CURLMcode mc = curl_multi_add_handle(c->multi, e);
    if (mc != CURLM_OK) finish_simple(r, KUBE_PERMANENT, "InternalError", curl_multi_strerror(mc));
}

static int is_pod_create(const char *method, const char *path)
{
    if (strcmp(method, "POST") != 0) return 0;
    size_t n = strcspn(path, "?");
    return n >= 5 && strncmp(path + n - 5, "/pods", 5) == 0;
}

/* Seconds to wait for a creation token (reserves it). */
static double bucket_take(struct kube_client *c)
{
    if (c->o.create_qps <= 0) return 0;
    uint64_t now = uv_now(c->loop);
    c->bucket += (double)(now - c->bucket_ms) / 1000.0 * c->o.create_qps;
    c->bucket_ms = now;
    if (c->bucket > c->o.create_burst) c->bucket = c->o.create_burst;
    c->bucket -= 1;
    return c->bucket >= 0 ? 0 : -c->bucket / c->o.create_qps;
}

struct kube_req *kube_request(struct kube_client *c, const char *method, const char *path,
                              const char *body, const char *content_type,
                              kube_done_cb done, kube_line_cb line, void *arg)
{
    if (c->closing) return NULL;
    struct kube_req *r = xcalloc(1, sizeof *r);
    r->c = c;
    r->method = xstrdup(method);
    r->url = xasprintf("%s%s", c->cfg->server, path);
    r->body = body ? xstrdup(body) : NULL;
    r->ctype = xstrdup(content_type ? content_type
                       : strcmp(method, "PATCH") == 0 ? "application/merge-patch+json" : "application/json");
    r->stream = line != NULL;
    r->done = done;
    r->line = line;
    r->arg = arg;
    sbuf_init(&r->resp);
    sbuf_init(&r->part);
    uv_timer_init(c->loop, &r->timer);
    r->timer.data = r;
    c->open_handles++;
    r->next = c->reqs;
    if (c->reqs) c->reqs->prev = r;
    c->reqs = r;
    double wait = is_pod_create(method, path) ? bucket_take(c) : 0;
    schedule(r, wait);   /* always from the loop: callers never re-enter */
    return r;
}

void kube_request_cancel(struct kube_req *r)
{
    if (!r || r->finished) return;
    if (r->in_cb) {
        r->cancel_pending = 1;
        return;
    }
    finish_simple(r, KUBE_PERMANENT, "Cancelled", "cancelled");
}

void kube_client_close(struct kube_client *c)
{
    if (c->closing) return;
    c->closing = 1;
    while (c->reqs) {
        struct kube_req *r = c->reqs;
        if (r->finished) { req_unlink(r); continue; }
        kube_request_cancel(r);
    }
    if (c->exec) { /* its waiting requests were cancelled above */
        struct exec_run *x = c->exec;
        c->exec = NULL;
        x->finished = 1;
        if (!x->exited) uv_process_kill(&x->proc, SIGKILL);
        exec_close(x);
    }
    bury_now(c);
    curl_multi_cleanup(c->multi);
    c->multi = NULL;
    while (c->socks) sock_close(c->socks);
    uv_timer_stop(&c->timer);
    uv_close((uv_handle_t *)&c->timer, on_handle_closed);
}
