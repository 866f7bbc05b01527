/* log: leveled logging to stderr, one line per event.  The level check happens
 * before formatting, so a disabled debug line costs one comparison. */
#ifndef KILN_LOG_H
#define KILN_LOG_H

enum log_level { LOG_ERROR = 0, LOG_WARN, LOG_INFO, LOG_DEBUG };
extern int log_level;

void log_printf(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define LOG(lvl, ...) \
    do { \
        if ((lvl) <= log_level) \
            log_printf((lvl), __VA_ARGS__); \
    } while (0)
#define LOG_E(...) LOG(LOG_ERROR, __VA_ARGS__)
#define LOG_W(...) LOG(LOG_WARN, __VA_ARGS__)
#define LOG_I(...) LOG(LOG_INFO, __VA_ARGS__)
#define LOG_D(...) LOG(LOG_DEBUG, __VA_ARGS__)

#endif
