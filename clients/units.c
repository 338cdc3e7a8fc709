/*
 * units.c — see units.h. Every number is built digit by digit with checked int64
 * arithmetic, so the result is exact or refused; no strtod, no locale.
 */
#include <stdio.h>
#include <string.h>

#include "clients/units.h"

#define MICROS_PER_USD  1000000
#define FRACTION_DIGITS 6

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* Appends digit d to *v (v = v * 10 + d); -1 on overflow. */
static int push_digit(int64_t *v, char d)
{
    int64_t t;
    if (capx_mul_i64(*v, 10, &t) < 0 || capx_add_i64(t, d - '0', &t) < 0)
        return -1;
    *v = t;
    return 0;
}

/* Length of s without its per-GPU-hour suffix (prices only; an amount keeps every byte). */
static size_t strip_suffix(const char *s, enum units_usd_kind kind)
{
    static const char *const suffixes[] = {"/gpu-hr", "/gpu-hour"};
    size_t n = strlen(s);
    if (kind != UNITS_PRICE)
        return n;
    for (size_t i = 0; i < ARRAY_LEN(suffixes); i++) {
        size_t k = strlen(suffixes[i]);
        if (n > k && !strcmp(s + n - k, suffixes[i]))
            return n - k;
    }
    return n;
}

int units_parse_usd(const char *s, enum units_usd_kind kind, int64_t *out, char *err, size_t errlen)
{
    const char *what = kind == UNITS_PRICE ? "price" : "amount";
    if (!s || !*s) {
        snprintf(err, errlen, "empty %s", what);
        return -1;
    }
    const char *p = s;
    size_t n = strip_suffix(s, kind);
    const char *end = s + n;
    if (p < end && *p == '$')
        p++;
    int64_t whole = 0, frac = 0;
    int nwhole = 0, nfrac = 0, point = 0;
    for (; p < end; p++) {
        if (is_digit(*p)) {
            if (!point) {
                if (push_digit(&whole, *p) < 0)
                    goto toobig;
                nwhole++;
            } else {
                if (++nfrac > FRACTION_DIGITS) {
                    snprintf(err, errlen,
                             "%s \"%s\" has more than 6 decimals (the smallest unit is $0.000001)",
                             what, s);
                    return -1;
                }
                if (push_digit(&frac, *p) < 0)
                    goto toobig;
            }
        } else if (*p == '.' && !point) {
            point = 1;
        } else {
            goto malformed;
        }
    }
    if (nwhole == 0 || (point && nfrac == 0))
        goto malformed;
    for (int i = nfrac; i < FRACTION_DIGITS; i++)
        if (capx_mul_i64(frac, 10, &frac) < 0)
            goto toobig;
    int64_t v;
    if (capx_mul_i64(whole, MICROS_PER_USD, &v) < 0 || capx_add_i64(v, frac, &v) < 0)
        goto toobig;
    if (v == 0) {
        snprintf(err, errlen, "%s must be more than 0", what);
        return -1;
    }
    *out = v;
    return 0;
malformed:
    snprintf(err, errlen,
             "%s \"%s\" is not a dollar amount (digits, optionally a point and up to 6 decimals%s)",
             what, s, kind == UNITS_PRICE ? ", e.g. 2.35 or 2.35/gpu-hr" : ", e.g. 5000.00");
    return -1;
toobig:
    snprintf(err, errlen, "%s \"%s\" is too large", what, s);
    return -1;
}

void units_format_usd(int64_t micros, char buf[UNITS_USD_STRLEN])
{
    /* Work on the magnitude as unsigned: -INT64_MIN does not fit int64. */
    uint64_t m = micros < 0 ? (uint64_t)0 - (uint64_t)micros : (uint64_t)micros;
    uint64_t whole = m / MICROS_PER_USD, frac = m % MICROS_PER_USD;
    char f[8];
    snprintf(f, sizeof f, "%06llu", (unsigned long long)frac);
    int keep = FRACTION_DIGITS;
    while (keep > 2 && f[keep - 1] == '0')
        keep--;
    f[keep] = '\0';
    snprintf(buf, UNITS_USD_STRLEN, "%s%llu.%s", micros < 0 ? "-" : "", (unsigned long long)whole,
             f);
}

int units_parse_count(const char *s, int64_t max, int64_t *out, char *err, size_t errlen)
{
    int64_t v = 0;
    if (!s || !*s) {
        snprintf(err, errlen, "empty number");
        return -1;
    }
    for (const char *p = s; *p; p++) {
        if (!is_digit(*p)) {
            snprintf(err, errlen, "\"%s\" is not a whole number", s);
            return -1;
        }
        if (push_digit(&v, *p) < 0 || v > max) {
            snprintf(err, errlen, "\"%s\" is too large (at most %lld)", s, (long long)max);
            return -1;
        }
    }
    if (v == 0) {
        snprintf(err, errlen, "\"%s\" must be more than 0", s);
        return -1;
    }
    *out = v;
    return 0;
}

int units_parse_duration(const char *s, int64_t *hours, char *err, size_t errlen)
{
    size_t n = s ? strlen(s) : 0;
    if (n < 2 || (s[n - 1] != 'h' && s[n - 1] != 'd')) {
        snprintf(err, errlen,
                 "duration \"%s\" must be a whole number of hours or days, e.g. 720h "
                 "or 30d",
                 s ? s : "");
        return -1;
    }
    int64_t v = 0, h;
    for (size_t i = 0; i + 1 < n; i++) {
        if (!is_digit(s[i])) {
            snprintf(err, errlen,
                     "duration \"%s\" must be a whole number of hours or days, e.g. 720h or 30d",
                     s);
            return -1;
        }
        if (push_digit(&v, s[i]) < 0)
            goto toobig;
    }
    if (v == 0) {
        snprintf(err, errlen, "duration \"%s\" must be more than 0", s);
        return -1;
    }
    if (capx_mul_i64(v, s[n - 1] == 'd' ? 24 : 1, &h) < 0)
        goto toobig;
    *hours = h;
    return 0;
toobig:
    snprintf(err, errlen, "duration \"%s\" is too large", s);
    return -1;
}
