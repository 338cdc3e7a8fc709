/*
 * log.c — see log.h. One FILE*, line-buffered; a line is formatted whole and written with
 * one fwrite so lines never interleave.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "server/log.h"

int log_min_level = LOG_INFO;
static FILE *log_fp;
static char *log_path;

static const char *level_names[] = {"debug", "info", "warn", "error"};

int log_init(const char *path, const char *level)
{
    int lv = -1;
    for (int i = 0; i < 4; i++)
        if (level && !strcmp(level, level_names[i]))
            lv = i;
    if (lv < 0)
        return -1;
    log_min_level = lv;
    free(log_path);
    log_path = (path && *path) ? xstrdup(path) : NULL;
    if (log_path) {
        FILE *f = fopen(log_path, "a");
        if (!f)
            return -1;
        setvbuf(f, NULL, _IOFBF, 1 << 16);
        log_fp = f;
    } else {
        log_fp = stderr;
    }
    return 0;
}

int log_reopen(void)
{
    if (!log_path)
        return 0;
    FILE *f = fopen(log_path, "a");
    if (!f)
        return -1;
    setvbuf(f, NULL, _IOFBF, 1 << 16);
    if (log_fp && log_fp != stderr) {
        fflush(log_fp);
        fclose(log_fp);
    }
    log_fp = f;
    return 0;
}

void log_flush(void)
{
    if (log_fp)
        fflush(log_fp);
}

void log_close(void)
{
    if (log_fp && log_fp != stderr)
        fclose(log_fp);
    log_fp = NULL;
    free(log_path);
    log_path = NULL;
}

void log_write(enum log_level level, const char *fmt, ...)
{
    char line[2048];
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    int n = (int)strftime(line, sizeof line, "ts=%Y-%m-%dT%H:%M:%S", &tm);
    n += snprintf(line + n, sizeof line - (size_t)n, ".%03dZ level=%s ", (int)(tv.tv_usec / 1000),
                  level_names[level]);
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    va_end(ap);
    if (m < 0)
        m = 0;
    n = n + m < (int)sizeof line - 2 ? n + m : (int)sizeof line - 2;
    line[n++] = '\n';
    FILE *f = log_fp ? log_fp : stderr;
    fwrite(line, 1, (size_t)n, f);
    /* A log file is flushed by log_flush() a few times a second (and at warnings and exit),
       not once per line: one write() per request would cost more than the request. */
    if (f == stderr || level >= LOG_WARN)
        fflush(f);
}
