/* util: allocation wrappers, a growable string buffer, durations and clocks.
 * Depends on libc only. */
#ifndef KILN_UTIL_H
#define KILN_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define container_of(ptr, type, member) \
    ((type *)(void *)((char *)(ptr) - offsetof(type, member)))
#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* Abort with a message on allocation failure: used at start-up and in the
 * loaders, where there is no partial state to protect. */
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Growable NUL-terminated buffer. */
struct sbuf {
    char *data;
    size_t len, cap;
};
void sbuf_init(struct sbuf *b);
void sbuf_free(struct sbuf *b);
void sbuf_add(struct sbuf *b, const void *p, size_t n);
void sbuf_adds(struct sbuf *b, const char *s);
void sbuf_printf(struct sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends s as a JSON string literal, with quotes. */
void sbuf_json_str(struct sbuf *b, const char *s);

/* Durations: "500ms", "30s", "5m", "1h30m", "2d", or a bare number of seconds.
 * Returns 0 and the value in milliseconds, or a negative code. */
int duration_parse(const char *s, int64_t *out_ms);
/* Formats a duration as the shortest readable string ("30s", "1m30s", "250ms"). */
void duration_format(int64_t ms, char *buf, size_t n);

/* Wall clock, microseconds since the epoch, shifted by KILN_TIME_OFFSET
 * seconds when set (a test/debug hook; read once per process). */
int64_t now_us(void);
int64_t mono_us(void);       /* monotonic clock */
/* "2026-11-21T13:40:05.123Z" from a wall-clock time in microseconds. */
void time_format_iso(int64_t us, char *buf, size_t n);

/* Creates every missing directory of path (like mkdir -p). */
int mkdir_p(const char *path, unsigned mode);
/* Reads a whole file; *out is NUL-terminated and owned by the caller. */
int file_read_all(const char *path, char **out, size_t *len);
/* Writes a file atomically (temp file + rename) with the given mode. */
int file_write_atomic(const char *path, const void *data, size_t len, unsigned mode);

/* Valid identifier for dags and tasks: [A-Za-z0-9_.-], 1..250 chars, not starting with '.' */
bool ident_valid(const char *s);

/* Edit distance, for "did you mean" hints. */
int levenshtein(const char *a, const char *b);

#endif
