/* err: the error sink every fallible function fills.
 *
 * Functions return 0 or a negative code (-errno, or a KILN_E* code below the
 * errno range) and put a human-readable message into a caller-owned struct
 * kiln_err.  The first error set wins, so a low-level message that names the
 * file and line is not overwritten by a vaguer one from a caller. */
#ifndef KILN_ERR_H
#define KILN_ERR_H

#include <stddef.h>

enum {
    KILN_EBASE = -10000,
    KILN_EPARSE,     /* malformed input: YAML, durations, argv */
    KILN_EINVALID,   /* well-formed but not acceptable: unknown key, wrong type */
    KILN_ECYCLE,     /* dependency cycle */
    KILN_ENOTFOUND,  /* no such dag / run / task */
    KILN_ESTATE,     /* transition not allowed from the current state */
    KILN_ESTORE,     /* SQLite failure */
    KILN_EEXEC,      /* executor failure */
    KILN_EBUSY,      /* another daemon holds the lock */
};

struct kiln_err {
    int code;
    char msg[1024];
};

/* Sets err (if not NULL and not already set) and returns code, so that
 * `return kiln_err_set(err, -EINVAL, "...")` reads naturally. */
int kiln_err_set(struct kiln_err *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void kiln_err_clear(struct kiln_err *err);
const char *kiln_strerror(int code);

#endif
