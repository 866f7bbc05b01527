/* kiln-serve: a small prediction server for a model in a kiln-deploy registry
 * (docs/model-registry.md).  libh2o (its libuv build) on one libuv loop:
 *   POST /predict  {"rows": [[x, ...], ...]} or {"rows": [{"feature": x, ...}, ...]}
 *   GET  /healthz  GET /model
 * It follows REGISTRY/NAME/current: when the link changes (an fs event on the
 * folder, and a timer as a safety net), the new version is loaded completely
 * and then swapped in; a version that fails to load is logged and the old one
 * keeps serving.  Requests hold a reference to the model they started with. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <h2o.h>
#include <json-c/json.h>

#include "ml.h"
#include "registry.h"

#define JFLAGS (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)
#define MAX_CONNS 256
#define REQ_TIMEOUT_MS 10000

struct model_ref {
    int refs;
    long version;
    ml_model m;
    json_object *meta; /* meta.json, may be NULL */
};

static struct {
    uv_loop_t *loop;
    const char *name;
    long pin; /* --version, 0: follow "current" */
    char dir[PATH_MAX];
    struct model_ref *cur;
    long max_rows;
    h2o_globalconf_t config;
    h2o_context_t ctx;
    h2o_accept_ctx_t accept_ctx;
    uv_tcp_t listener;
    uv_timer_t poll;
    uv_fs_event_t watch;
    uv_signal_t sigint, sigterm;
    int conns, stopping, watching;
    unsigned long reloads;
} S;

static void logf_(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void logf_(const char *fmt, ...)
{
    char when[32];
    time_t now = time(NULL);
    struct tm tm;
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&now, &tm));
    fprintf(stderr, "%s kiln-serve: ", when);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static void ref_put(struct model_ref *r)
{
    if (r && --r->refs == 0) {
        ml_model_free(&r->m);
        json_object_put(r->meta);
        free(r);
    }
}

static struct model_ref *ref_load(long version, char *err, size_t errlen)
{
    char p[PATH_MAX + 64];
    snprintf(p, sizeof p, "%s/%ld/model.json", S.dir, version);
    struct model_ref *r = calloc(1, sizeof *r);
    if (!r) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (ml_model_load(p, &r->m, err, errlen) < 0) {
        free(r);
        return NULL;
    }
    snprintf(p, sizeof p, "%s/%ld/meta.json", S.dir, version);
    r->meta = json_object_from_file(p);
    r->version = version;
    r->refs = 1;
    return r;
}

/* Loads the version "current" names when it is not the loaded one. */
static void check_current(void)
{
    /* --version pins one version (a Kubernetes Deployment per version, see
     * docs/deploy.md): "current" is then not followed. */
    long v = S.pin > 0 ? S.pin : reg_current(S.dir);
    if (v <= 0 || (S.cur && S.cur->version == v))
        return;
    char err[2 * PATH_MAX + 128];
    struct model_ref *r = ref_load(v, err, sizeof err);
    if (!r) {
        static long failed_version;
        if (failed_version != v)
            logf_("cannot load %s version %ld, still serving %ld: %s", S.name, v,
                  S.cur ? S.cur->version : 0, err);
        failed_version = v;
        return;
    }
    struct model_ref *old = S.cur;
    S.cur = r; /* the swap: requests from now on see the new version */
    S.reloads += old != NULL;
    logf_("serving %s version %ld (%s, %zu features)%s", S.name, v,
          r->m.kind == ML_LOGISTIC ? "logistic" : "linear", r->m.d, old ? " (reloaded)" : "");
    ref_put(old);
}

static void on_poll(uv_timer_t *t)
{
    check_current();
}

static void on_fs_event(uv_fs_event_t *h, const char *file, int events, int status)
{
    check_current();
}

static void start_watch(void)
{
    if (S.watching)
        return;
    uv_fs_event_init(S.loop, &S.watch);
    if (uv_fs_event_start(&S.watch, on_fs_event, S.dir, 0) == 0)
        S.watching = 1;
    else
        uv_close((uv_handle_t *)&S.watch, NULL);
}

/* --- HTTP ---------------------------------------------------------------- */

static const char *reason_of(int status)
{
    switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 503: return "Service Unavailable";
    default: return "Error";
    }
}

static void respond_json(h2o_req_t *req, int status, json_object *o)
{
    const char *s = json_object_to_json_string_ext(o, JFLAGS);
    size_t n = strlen(s);
    char *body = h2o_mem_alloc_pool(&req->pool, n + 1);
    memcpy(body, s, n);
    body[n] = '\n';
    json_object_put(o);
    req->res.status = status;
    req->res.reason = reason_of(status);
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
                   H2O_STRLIT("application/json"));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL,
                   H2O_STRLIT("no-store"));
    h2o_send_inline(req, body, n + 1);
}

static void respond_error(h2o_req_t *req, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void respond_error(h2o_req_t *req, int status, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    json_object *o = json_object_new_object();
    json_object_object_add(o, "error", json_object_new_string(msg));
    respond_json(req, status, o);
}

static json_object *model_info(const struct model_ref *r)
{
    const ml_model *m = &r->m;
    json_object *o = json_object_new_object();
    json_object_object_add(o, "name", json_object_new_string(S.name));
    json_object_object_add(o, "version", json_object_new_int64(r->version));
    json_object_object_add(o, "kind", json_object_new_string(m->kind == ML_LOGISTIC ? "logistic" : "linear"));
    json_object *f = json_object_new_array();
    for (size_t i = 0; i < m->d; i++)
        json_object_array_add(f, json_object_new_string(m->features[i]));
    json_object_object_add(o, "features", f);
    json_object_object_add(o, "target", m->target ? json_object_new_string(m->target) : NULL);
    if (m->kind == ML_LOGISTIC) {
        json_object *c = json_object_new_array();
        for (size_t i = 0; i < m->nclasses; i++)
            json_object_array_add(c, ml_json_num(m->classes[i]));
        json_object_object_add(o, "classes", c);
    }
    json_object *metrics = r->meta ? json_object_object_get(r->meta, "metrics") : NULL;
    if (!metrics)
        metrics = m->metrics;
    json_object_object_add(o, "metrics", json_object_get(metrics));
    json_object *created = r->meta ? json_object_object_get(r->meta, "created") : NULL;
    json_object_object_add(o, "created", json_object_get(created));
    json_object *sum = r->meta ? json_object_object_get(r->meta, "checksum") : NULL;
    json_object_object_add(o, "checksum", json_object_get(sum));
    json_object_object_add(o, "reloads", json_object_new_int64((int64_t)S.reloads));
    return o;
}

static int get_number(json_object *v, double *out)
{
    if (json_object_is_type(v, json_type_double) || json_object_is_type(v, json_type_int)) {
        *out = json_object_get_double(v);
        return 0;
    }
    return -1;
}

/* Parses and predicts; on a bad request fills ERR and returns NULL. */
static json_object *predict(const struct model_ref *r, const char *body, size_t len, char *err,
                            size_t errlen)
{
    const ml_model *m = &r->m;
    json_object *root = NULL, *out = NULL;
    double *x = NULL, *scores = NULL;
    if (len == 0) {
        snprintf(err, errlen, "empty body: send {\"rows\": [[...], ...]}");
        return NULL;
    }
    json_tokener *tok = json_tokener_new();
    root = json_tokener_parse_ex(tok, body, (int)len);
    enum json_tokener_error je = json_tokener_get_error(tok);
    size_t end = json_tokener_get_parse_end(tok);
    json_tokener_free(tok);
    if (!root || je != json_tokener_success) {
        snprintf(err, errlen, "the body is not JSON: %s",
                 je == json_tokener_continue ? "unexpected end" : json_tokener_error_desc(je));
        goto fail;
    }
    while (end < len && (body[end] == ' ' || body[end] == '\n' || body[end] == '\r' || body[end] == '\t'))
        end++;
    if (end != len) {
        snprintf(err, errlen, "trailing data after the JSON value");
        goto fail;
    }
    json_object *rows;
    if (!json_object_is_type(root, json_type_object) || !json_object_object_get_ex(root, "rows", &rows) ||
        !json_object_is_type(rows, json_type_array)) {
        snprintf(err, errlen, "the body must be an object with an array \"rows\"");
        goto fail;
    }
    size_t n = json_object_array_length(rows);
    if (n == 0 || (long)n > S.max_rows) {
        snprintf(err, errlen, "\"rows\" must hold 1 to %ld rows (got %zu)", S.max_rows, n);
        goto fail;
    }
    size_t k = m->kind == ML_LOGISTIC ? m->nclasses : 1;
    x = malloc((m->d + 1) * sizeof *x);
    scores = malloc((k + 1) * sizeof *scores);
    out = json_object_new_object();
    json_object *preds = json_object_new_array_ext((int)n), *probs = NULL;
    json_object_object_add(out, "version", json_object_new_int64(r->version));
    json_object_object_add(out, "predictions", preds);
    if (m->kind == ML_LOGISTIC) {
        probs = json_object_new_array_ext((int)n);
        json_object_object_add(out, "probabilities", probs);
    }
    for (size_t i = 0; i < n; i++) {
        json_object *row = json_object_array_get_idx(rows, i);
        if (json_object_is_type(row, json_type_array)) {
            if (json_object_array_length(row) != m->d) {
                snprintf(err, errlen, "row %zu has %zu values, the model has %zu features", i,
                         json_object_array_length(row), m->d);
                goto fail;
            }
            for (size_t j = 0; j < m->d; j++)
                if (get_number(json_object_array_get_idx(row, j), &x[j]) < 0) {
                    snprintf(err, errlen, "row %zu, value %zu ('%s'): not a number", i, j, m->features[j]);
                    goto fail;
                }
        } else if (json_object_is_type(row, json_type_object)) {
            if ((size_t)json_object_object_length(row) != m->d) {
                snprintf(err, errlen, "row %zu has %d fields, the model has %zu features", i,
                         json_object_object_length(row), m->d);
                goto fail;
            }
            for (size_t j = 0; j < m->d; j++) {
                json_object *v;
                if (!json_object_object_get_ex(row, m->features[j], &v)) {
                    snprintf(err, errlen, "row %zu: missing feature '%s'", i, m->features[j]);
                    goto fail;
                }
                if (get_number(v, &x[j]) < 0) {
                    snprintf(err, errlen, "row %zu, feature '%s': not a number", i, m->features[j]);
                    goto fail;
                }
            }
        } else {
            snprintf(err, errlen, "row %zu is neither an array nor an object", i);
            goto fail;
        }
        ml_predict_row(m, x, scores);
        if (m->kind == ML_LOGISTIC) {
            size_t best = 0;
            json_object *p = json_object_new_array_ext((int)k);
            for (size_t c = 0; c < k; c++) {
                if (scores[c] > scores[best])
                    best = c;
                json_object_array_add(p, ml_json_num(scores[c]));
            }
            json_object_array_add(probs, p);
            json_object_array_add(preds, ml_json_num(m->classes[best]));
        } else {
            json_object_array_add(preds, ml_json_num(scores[0]));
        }
    }
    free(x);
    free(scores);
    json_object_put(root);
    return out;
fail:
    free(x);
    free(scores);
    json_object_put(out);
    json_object_put(root);
    return NULL;
}

static int path_is(h2o_req_t *req, const char *p)
{
    size_t n = strlen(p);
    return req->path_normalized.len == n && memcmp(req->path_normalized.base, p, n) == 0;
}

static int method_is(h2o_req_t *req, const char *m)
{
    size_t n = strlen(m);
    return req->method.len == n && memcmp(req->method.base, m, n) == 0;
}

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    struct model_ref *r = S.cur;
    if (r)
        r->refs++; /* this request's model, whatever a reload does meanwhile */
    if (path_is(req, "/healthz")) {
        if (!method_is(req, "GET") && !method_is(req, "HEAD"))
            respond_error(req, 405, "method not allowed");
        else {
            json_object *o = json_object_new_object();
            json_object_object_add(o, "status", json_object_new_string(r ? "ok" : "no model"));
            json_object_object_add(o, "version", r ? json_object_new_int64(r->version) : NULL);
            respond_json(req, r ? 200 : 503, o);
        }
    } else if (path_is(req, "/model")) {
        if (!method_is(req, "GET"))
            respond_error(req, 405, "method not allowed");
        else if (!r)
            respond_error(req, 503, "no model: %s/current does not name a loadable version", S.dir);
        else
            respond_json(req, 200, model_info(r));
    } else if (path_is(req, "/predict")) {
        char err[2 * PATH_MAX + 128];
        json_object *o;
        if (!method_is(req, "POST"))
            respond_error(req, 405, "method not allowed (POST a JSON body)");
        else if (!r)
            respond_error(req, 503, "no model: %s/current does not name a loadable version", S.dir);
        else if (!(o = predict(r, req->entity.base ? req->entity.base : "",
                               req->entity.base ? req->entity.len : 0, err, sizeof err)))
            respond_error(req, 400, "%s", err);
        else
            respond_json(req, 200, o);
    } else {
        respond_error(req, 404, "not found (POST /predict, GET /model, GET /healthz)");
    }
    ref_put(r);
    return 0;
}

static void on_conn_closed(uv_handle_t *h)
{
    free(h);
    S.conns--;
}

static void on_accept(uv_stream_t *listener, int status)
{
    if (status < 0 || S.stopping)
        return;
    uv_tcp_t *c = calloc(1, sizeof *c);
    if (!c)
        return;
    uv_tcp_init(S.loop, c);
    S.conns++;
    if (uv_accept(listener, (uv_stream_t *)c) < 0 || S.conns > MAX_CONNS) {
        uv_close((uv_handle_t *)c, on_conn_closed);
        return;
    }
    h2o_socket_t *sock = h2o_uv_socket_create((uv_stream_t *)c, on_conn_closed);
    h2o_accept(&S.accept_ctx, sock);
}

/* Stopping: no new connections; the loop ends when the open ones are gone
 * (or after 2 s).  The h2o context is not disposed (its timers may still
 * hold entries then); the process exits right after. */
static void on_drain(uv_timer_t *t)
{
    static int ticks;
    if (S.conns == 0 || ++ticks >= 40)
        uv_stop(S.loop);
}

static void on_signal(uv_signal_t *h, int signum)
{
    if (S.stopping)
        return;
    S.stopping = 1;
    logf_("stopping (signal %d)", signum);
    uv_close((uv_handle_t *)&S.listener, NULL);
    if (S.watching)
        uv_fs_event_stop(&S.watch);
    uv_signal_stop(&S.sigint);
    uv_signal_stop(&S.sigterm);
    uv_timer_stop(&S.poll);
    uv_timer_start(&S.poll, on_drain, 0, 50);
}

static void usage(FILE *f)
{
    fputs("usage: kiln-serve --registry DIR --name NAME [--bind ADDR] [--port N]\n"
          "                  [--poll-ms MS] [--max-body BYTES] [--max-rows N] [--version N]\n"
          "\n"
          "Serves DIR/NAME/current (see kiln-deploy) over HTTP/1.1:\n"
          "  POST /predict  {\"rows\": [[x1, x2, ...], ...]} or {\"rows\": [{\"feature\": x, ...}]}\n"
          "                 -> {\"version\", \"predictions\", \"probabilities\" (classifiers)}\n"
          "  GET /model     name, version, kind, features, classes, metrics\n"
          "  GET /healthz   {\"status\": \"ok\", \"version\": N}\n"
          "A change of DIR/NAME/current is picked up without a restart (--version N serves\n"
          "version N only and does not follow current).  Bad requests get\n"
          "a 400 with {\"error\": \"...\"}.  Defaults: 127.0.0.1:8500, --poll-ms 1000,\n"
          "--max-body 1048576, --max-rows 10000.\n",
          f);
}

static long parse_long(const char *opt, const char *s, long min, long max)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || v < min || v > max) {
        fprintf(stderr, "kiln-serve: %s wants an integer in [%ld, %ld], not '%s'\n", opt, min, max, s);
        exit(2);
    }
    return v;
}

int main(int argc, char **argv)
{
    const char *registry = NULL, *bind_addr = "127.0.0.1";
    long port = 8500, poll_ms = 1000, max_body = 1024 * 1024;
    S.max_rows = 10000;
    static const struct option opts[] = {
        { "registry", required_argument, NULL, 'r' }, { "name", required_argument, NULL, 'n' },
        { "bind", required_argument, NULL, 'b' },     { "port", required_argument, NULL, 'p' },
        { "poll-ms", required_argument, NULL, 'P' },  { "max-body", required_argument, NULL, 'B' },
        { "max-rows", required_argument, NULL, 'R' }, { "help", no_argument, NULL, 'h' },
        { "version", required_argument, NULL, 'V' }, { NULL, 0, NULL, 0 },
    };
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'r': registry = optarg; break;
        case 'n': S.name = optarg; break;
        case 'b': bind_addr = optarg; break;
        case 'p': port = parse_long("--port", optarg, 0, 65535); break;
        case 'P': poll_ms = parse_long("--poll-ms", optarg, 10, 3600000); break;
        case 'B': max_body = parse_long("--max-body", optarg, 1024, 1L << 30); break;
        case 'R': S.max_rows = parse_long("--max-rows", optarg, 1, 10000000); break;
        case 'V': S.pin = parse_long("--version", optarg, 1, LONG_MAX); break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc || !registry || !S.name || !*S.name || strchr(S.name, '/')) {
        fprintf(stderr, "kiln-serve: %s\n", optind < argc ? "unexpected argument"
                                                         : "--registry and --name are required");
        return 2;
    }
    if (snprintf(S.dir, sizeof S.dir, "%s/%s", registry, S.name) >= (int)sizeof S.dir) {
        fprintf(stderr, "kiln-serve: path too long\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    S.loop = uv_default_loop();
    check_current();
    if (!S.cur)
        logf_("no loadable model in %s yet; waiting for %s/current", S.dir, S.dir);

    struct sockaddr_storage sa;
    if (uv_ip4_addr(bind_addr, (int)port, (struct sockaddr_in *)&sa) != 0 &&
        uv_ip6_addr(bind_addr, (int)port, (struct sockaddr_in6 *)&sa) != 0) {
        fprintf(stderr, "kiln-serve: --bind: '%s' is not an IP address\n", bind_addr);
        ref_put(S.cur);
        return 2;
    }
    uv_tcp_init(S.loop, &S.listener);
    int rc;
    if ((rc = uv_tcp_bind(&S.listener, (struct sockaddr *)&sa, 0)) < 0 ||
        (rc = uv_listen((uv_stream_t *)&S.listener, 128, on_accept)) < 0) {
        fprintf(stderr, "kiln-serve: cannot listen on %s:%ld: %s\n", bind_addr, port, uv_strerror(rc));
        uv_close((uv_handle_t *)&S.listener, NULL);
        uv_run(S.loop, UV_RUN_DEFAULT);
        uv_loop_close(S.loop);
        ref_put(S.cur);
        return 1;
    }
    struct sockaddr_storage got;
    int glen = sizeof got;
    char host[64] = "?";
    if (uv_tcp_getsockname(&S.listener, (struct sockaddr *)&got, &glen) == 0) {
        if (got.ss_family == AF_INET) {
            uv_ip4_name((struct sockaddr_in *)&got, host, sizeof host);
            port = ntohs(((struct sockaddr_in *)&got)->sin_port);
        } else {
            uv_ip6_name((struct sockaddr_in6 *)&got, host, sizeof host);
            port = ntohs(((struct sockaddr_in6 *)&got)->sin6_port);
        }
    }
    h2o_config_init(&S.config);
    S.config.max_request_entity_size = (size_t)max_body;
    S.config.http1.req_timeout = REQ_TIMEOUT_MS;
    S.config.http2.idle_timeout = REQ_TIMEOUT_MS;
    S.config.handshake_timeout = REQ_TIMEOUT_MS;
    h2o_hostconf_t *hc = h2o_config_register_host(&S.config, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    h2o_pathconf_t *pc = h2o_config_register_path(hc, "/", 0);
    h2o_handler_t *hd = h2o_create_handler(pc, sizeof *hd);
    hd->on_req = on_req;
    h2o_context_init(&S.ctx, S.loop, &S.config);
    S.accept_ctx.ctx = &S.ctx;
    S.accept_ctx.hosts = S.config.hosts;

    uv_timer_init(S.loop, &S.poll);
    uv_timer_start(&S.poll, on_poll, (uint64_t)poll_ms, (uint64_t)poll_ms);
    if (mkdir(S.dir, 0755) < 0 && errno != EEXIST)
        logf_("cannot create %s: %s", S.dir, strerror(errno));
    start_watch();
    uv_signal_init(S.loop, &S.sigint);
    uv_signal_start(&S.sigint, on_signal, SIGINT);
    uv_signal_init(S.loop, &S.sigterm);
    uv_signal_start(&S.sigterm, on_signal, SIGTERM);
    logf_("listening on http://%s:%ld (model %s, registry %s)", host, port, S.name, registry);
    fflush(stderr);
    uv_run(S.loop, UV_RUN_DEFAULT);
    ref_put(S.cur);
    S.cur = NULL;
    logf_("stopped");
    return 0;
}
