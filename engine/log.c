#include "log.h"

#include <stdarg.h>
#include <stdio.h>

#include "util.h"

int log_level = LOG_INFO;

void log_printf(int level, const char *fmt, ...)
{
    static const char *const names[] = { "error", "warn", "info", "debug" };
    char ts[40];
    time_format_iso(now_us(), ts, sizeof ts);
    char line[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s %-5s %s\n", ts, names[level < 0 ? 0 : level > 3 ? 3 : level], line);
}
