/* api: the JSON API under /api/v1 (see docs/api.md).  Transport-free: http.c
 * parses the request, checks the token and hands it here; mutations go
 * through engine_apply() (cmd_apply on the daemon's live scheduler, audit
 * log with the actor, commit). */
#ifndef KILN_API_H
#define KILN_API_H

#include <stdbool.h>
#include <stddef.h>

#include "util.h"

struct engine;
struct store;

struct api_request {
    const char *method;
    const char *path;           /* without the query; not NUL-terminated */
    size_t path_len;
    const char *query;          /* after '?', or NULL */
    size_t query_len;
    const char *body;
    size_t body_len;
    const char *range;          /* Range header value, or NULL */
    size_t range_len;
    const char *actor;          /* for the audit log */
};

struct api_response {
    int status;
    const char *content_type;   /* static string */
    struct sbuf body;
    char content_range[96];     /* set for a 206 or a 416 */
    bool accept_ranges;
};

bool api_is_mutation(const char *method);
/* For GET .../tries/N/log?follow=1: the try's log file (caller frees), or
 * -1 with the error in rs. */
int api_log_file(struct engine *e, const struct api_request *rq, char **path,
                 struct api_response *rs);
/* Query parameter NAME into buf; returns 1 when present. */
int api_query_get(const struct api_request *rq, const char *name, char *buf, size_t n);
/* Any call on the loop: reads (GET/HEAD) through api_read on the loop's own
 * connection, mutations through engine_apply(). */
void api_handle(struct engine *e, const struct api_request *rq, struct api_response *rs);

/* Reads off the loop.  A read uses nothing of the engine's memory but the
 * DAG files' schedules (for the DAG objects), taken on the loop with
 * api_snap_take (NULL when the read needs none); api_read then runs on any
 * thread with its own connection st and touches only st, the snapshot and
 * log files. */
struct api_snap;
struct api_snap *api_snap_take(struct engine *e, const struct api_request *rq);
void api_snap_free(struct api_snap *s);
void api_read(struct store *st, const struct api_snap *snap, const struct api_request *rq,
              struct api_response *rs);
/* Whether a read's answer follows from the database alone (so it may be
 * kept until the next commit): every read but a log's bytes. */
bool api_read_cacheable(const struct api_request *rq);

#endif
