/* kube_client: Kubernetes API requests on the daemon's libuv loop.
 *
 * libcurl multi driven by uv_poll + uv_timer; HTTP/2 over TLS where the
 * server offers it.  A request completes with one callback on the loop; a
 * streaming request (watch, log follow) also hands each line of a 2xx body
 * to a line callback as it arrives.  Transient failures (429, 5xx, 403
 * "exceeded quota", network errors) are retried inside with jittered
 * exponential backoff that honours Retry-After; a streaming request is
 * retried only until its first line.  POSTs that create pods pass a token
 * bucket first. */
#ifndef KILN_KUBE_CLIENT_H
#define KILN_KUBE_CLIENT_H

#include <stddef.h>
#include <uv.h>
#include <json-c/json.h>

#include "err.h"
#include "kube_config.h"

struct kube_client;
struct kube_req;

struct kube_client_opts {
    int max_retries;          /* transient failures retried this many times (default 5) */
    double backoff_base_s;    /* first backoff (default 0.5 s), doubled per try, full jitter */
    double backoff_max_s;     /* cap (default 30 s); Retry-After may exceed it up to 300 s */
    double create_qps;        /* pod creations per second (default 10; <0: no limit) */
    double create_burst;      /* bucket size (default 20) */
    long timeout_ms;          /* whole request, not streams (default 60000) */
    long connect_timeout_ms;  /* default 10000 */
};

enum kube_outcome {
    KUBE_OK = 0,        /* 2xx */
    KUBE_TRANSIENT,     /* retries spent on 429/5xx/quota/network, or a stream that broke */
    KUBE_PERMANENT,     /* any other answer: 4xx, bad config, cancelled */
};

struct kube_result {
    enum kube_outcome outcome;
    long http;                /* HTTP status, 0 without an answer */
    int curl_code;            /* CURLcode of the last attempt */
    int attempts;
    /* from a Status body (or synthesised): */
    int code;
    char reason[64];          /* "NotFound", "AlreadyExists", "Conflict", "Expired", ... */
    char message[512];        /* clear, one line */
    json_object *json;        /* parsed body (non-stream), or NULL; owned by the client */
    const char *body;         /* raw body (non-stream, or the error body of a stream) */
    size_t body_len;
};

typedef void (*kube_done_cb)(struct kube_req *req, const struct kube_result *res, void *arg);
/* line without its '\n', NUL-terminated. */
typedef void (*kube_line_cb)(struct kube_req *req, const char *line, size_t len, void *arg);

void kube_client_opts_default(struct kube_client_opts *o);
/* cfg is owned by the client afterwards (freed with it). */
int kube_client_new(uv_loop_t *loop, struct kube_config *cfg, const struct kube_client_opts *o,
                    struct kube_client **out, struct kiln_err *err);
struct kube_config *kube_client_config(struct kube_client *c);
/* Cancels every request (their done callbacks run with outcome PERMANENT,
 * reason "Cancelled"), closes the handles; frees once the loop has closed
 * them. */
void kube_client_close(struct kube_client *c);

/* method "GET" "POST" "PUT" "PATCH" "DELETE"; path begins with '/' and holds
 * the query; body may be NULL; content_type NULL = application/json
 * ("application/merge-patch+json" for PATCH).  line_cb non-NULL makes a
 * streaming request.  Returns NULL only when the client is closing. */
struct kube_req *kube_request(struct kube_client *c, const char *method, const char *path,
                              const char *body, const char *content_type,
                              kube_done_cb done, kube_line_cb line, void *arg);
/* The done callback runs (on the loop, from this call) with "Cancelled". */
void kube_request_cancel(struct kube_req *r);

/* Parses a Status body into res (code, reason, message); exported for tests. */
void kube_parse_status(const char *body, size_t len, long http, struct kube_result *res);
/* Stats for tests. */
unsigned kube_client_inflight(struct kube_client *c);

#endif
