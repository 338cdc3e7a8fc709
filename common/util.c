/*
 * util.c — assertion failure, fatal errors and the allocation wrappers.
 * Out-of-memory is not a condition capx recovers from: every queue has a bound,
 * so running out means a bug or a machine that is too small, and we stop loudly.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/capx.h"

void capx_assert_fail(const char *file, int line, const char *expr)
{
    fprintf(stderr, "level=fatal msg=\"assertion failed\" expr=\"%s\" at=%s:%d\n", expr, file,
            line);
    fflush(stderr);
    abort();
}

void capx_fatal_at(const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "level=fatal at=%s:%d msg=\"", file, line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\"\n");
    fflush(stderr);
    abort();
}

static void oom(size_t n)
{
    capx_fatal("out of memory allocating %zu bytes", n);
}

void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        oom(n);
    return p;
}

void *xcalloc(size_t count, size_t n)
{
    void *p = calloc(count ? count : 1, n ? n : 1);
    if (!p)
        oom(count * n);
    return p;
}

void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q)
        oom(n);
    return q;
}

char *xstrdup(const char *s)
{
    size_t n = strlen(s);
    char *p = xmalloc(n + 1);
    memcpy(p, s, n + 1);
    return p;
}

char *xstrndup(const char *s, size_t n)
{
    char *p = xmalloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}
