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
#include "engine.h"
#include "log.h"
#include "util.h"

#define HTTP_MAX_BODY (1024 * 1024)
#define HTTP_REQ_TIMEOUT_MS 10000
#define HTTP_MAX_CONNS 256

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

static const char *reason_of(int status)
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
    req->res.reason = reason_of(status);
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
    ssize_t ri = h2o_find_header(&req->headers, H2O_TOKEN_RANGE, -1);
    if (ri >= 0) {
        rq.range = req->headers.entries[ri].value.base;
        rq.range_len = req->headers.entries[ri].value.len;
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
        (rc = uv_listen((uv_stream_t *)s->listener, 128, on_accept)) < 0) {
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
    h2o_context_init(&s->ctx, loop, &s->config);
    s->ctx_live = true;
    s->accept_ctx.ctx = &s->ctx;
    s->accept_ctx.hosts = s->config.hosts;
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
    uv_close((uv_handle_t *)s->listener, on_listener_closed);
    s->listener = NULL;
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
    h2o_config_dispose(&s->config);
    free(s->token);
    free(s);
}
