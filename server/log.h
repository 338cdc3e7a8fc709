/*
 * log.h — leveled, structured (key=value) log lines.
 *
 * Every line: ts=… level=… then the caller's key=value pairs (msg="…" first by habit,
 * conn= and req= for anything tied to a connection or request). log_debug costs one
 * branch when debug is off. SIGHUP reopens the file (log rotation).
 */
#ifndef CAPX_SERVER_LOG_H
#define CAPX_SERVER_LOG_H

#include "common/capx.h"

enum log_level { LOG_DEBUG = 0, LOG_INFO, LOG_WARN, LOG_ERROR };

extern int log_min_level;

/* path "" or NULL: stderr. level: debug|info|warn|error. 0 ok, -1 bad level/path. */
MUSTCHECK int log_init(const char *path, const char *level);
/* Reopen the file (after rotation). 0 ok, -1 keeps the old one. */
int log_reopen(void);
void log_close(void);
/* Writes out buffered lines (capxd calls it on a short timer and at exit). */
void log_flush(void);
void log_write(enum log_level level, const char *fmt, ...) PRINTF(2, 3);

#define log_debug(...)                                                                             \
    do {                                                                                           \
        if (log_min_level <= LOG_DEBUG)                                                            \
            log_write(LOG_DEBUG, __VA_ARGS__);                                                     \
    } while (0)
#define log_info(...)                                                                              \
    do {                                                                                           \
        if (log_min_level <= LOG_INFO)                                                             \
            log_write(LOG_INFO, __VA_ARGS__);                                                      \
    } while (0)
#define log_warn(...)  log_write(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_write(LOG_ERROR, __VA_ARGS__)

#endif
