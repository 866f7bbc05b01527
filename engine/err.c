#include "err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int kiln_err_set(struct kiln_err *err, int code, const char *fmt, ...)
{
    if (err == NULL || err->code != 0)
        return code;
    err->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    return code;
}

void kiln_err_clear(struct kiln_err *err)
{
    if (err) {
        err->code = 0;
        err->msg[0] = '\0';
    }
}

const char *kiln_strerror(int code)
{
    switch (code) {
    case KILN_EPARSE: return "parse error";
    case KILN_EINVALID: return "invalid input";
    case KILN_ECYCLE: return "dependency cycle";
    case KILN_ENOTFOUND: return "not found";
    case KILN_ESTATE: return "not allowed in the current state";
    case KILN_ESTORE: return "database error";
    case KILN_EEXEC: return "executor error";
    case KILN_EBUSY: return "busy";
    default: return code < 0 && code > KILN_EBASE ? strerror(-code) : "unknown error";
    }
}
