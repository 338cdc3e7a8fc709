/*
 * capx.h — the few things every capx module shares: the status convention,
 * assertions that stay on in release builds, allocation wrappers that abort on
 * out-of-memory, and checked int64 arithmetic for money.
 *
 * Pure modules (matching/, scheduler/) may include this header: it does no I/O
 * beyond writing a last line to stderr before abort().
 */
#ifndef CAPX_COMMON_CAPX_H
#define CAPX_COMMON_CAPX_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

/* Status convention: 0 ok, -1 error, CAPX_AGAIN "not yet, call me back". */
#define CAPX_OK    0
#define CAPX_ERR   (-1)
#define CAPX_AGAIN 1

#define MUSTCHECK    __attribute__((warn_unused_result))
#define NORETURN     __attribute__((noreturn))
#define PRINTF(a, b) __attribute__((format(printf, a, b)))
#define UNUSED(x)    ((void)(x))
#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* Micro-USD: 1 USD = 1,000,000. Always int64. */
typedef int64_t capx_micros;

NORETURN void capx_assert_fail(const char *file, int line, const char *expr);
NORETURN PRINTF(3, 4) void capx_fatal_at(const char *file, int line, const char *fmt, ...);

/* Assertions stay on in release builds: money and book invariants depend on them. */
#define CAPX_ASSERT(e)  ((e) ? (void)0 : capx_assert_fail(__FILE__, __LINE__, #e))
#define capx_fatal(...) capx_fatal_at(__FILE__, __LINE__, __VA_ARGS__)

/* Allocation wrappers: abort with a message on out-of-memory, never return NULL. */
void *xmalloc(size_t n);
void *xcalloc(size_t count, size_t n);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);

/* Checked arithmetic: 0 and the result in *out, or -1 on overflow (*out untouched). */
static inline MUSTCHECK int capx_add_i64(int64_t a, int64_t b, int64_t *out)
{
    int64_t r;
    if (__builtin_add_overflow(a, b, &r))
        return -1;
    *out = r;
    return 0;
}

static inline MUSTCHECK int capx_sub_i64(int64_t a, int64_t b, int64_t *out)
{
    int64_t r;
    if (__builtin_sub_overflow(a, b, &r))
        return -1;
    *out = r;
    return 0;
}

static inline MUSTCHECK int capx_mul_i64(int64_t a, int64_t b, int64_t *out)
{
    int64_t r;
    if (__builtin_mul_overflow(a, b, &r))
        return -1;
    *out = r;
    return 0;
}

/* a * b * c, checked. */
static inline MUSTCHECK int capx_mul3_i64(int64_t a, int64_t b, int64_t c, int64_t *out)
{
    int64_t ab;
    if (capx_mul_i64(a, b, &ab) < 0)
        return -1;
    return capx_mul_i64(ab, c, out);
}

#endif
