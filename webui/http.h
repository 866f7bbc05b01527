/* http: the daemon's HTTP server (libh2o, its libuv build) on the engine's
 * loop.  Bound to settings bind:port (127.0.0.1:8080 by default); port 0
 * disables it.  Requests are limited in size (1 MiB body) and time (10 s to
 * send a request); a stop closes the listener at once and waits for open
 * connections to finish their response (an idle keep-alive one is closed).
 *
 * Auth: the token of HOME/token (generated on first start, mode 0600, and
 * printed once) or of KILN_API_TOKEN.  Every mutating call needs it as
 * "Authorization: Bearer TOKEN"; reads need it too when bound to an address
 * other than loopback.  The comparison is constant-time.  No CORS headers
 * are ever sent, so browsers on other origins cannot read answers. */
#ifndef KILN_HTTP_H
#define KILN_HTTP_H

#include <uv.h>

#include "err.h"
#include "settings.h"

struct engine;
struct http_server;

int http_start(struct http_server **out, uv_loop_t *loop, const struct kiln_settings *cfg,
               struct engine *e, struct kiln_err *err);
/* Closes the listener; connections finish, then the server's handles close. */
void http_stop(struct http_server *s);
/* After the loop ended. */
void http_free(struct http_server *s);

/* Reads HOME/token, or creates it (0600) with a new random token; *created
 * says which.  The caller frees *token. */
int http_token_load(const char *home, char **token, int *created, struct kiln_err *err);
/* The reason phrase of an HTTP status. */
const char *http_reason(int status);
/* Constant-time comparison of a presented token with the expected one. */
int http_token_equal(const char *expected, const char *given, size_t given_len);

#endif
