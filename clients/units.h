/*
 * units.h — the units people type at capx and capx-admin, converted exactly.
 *
 * Money is typed in dollars ("2.35", "5000.00", "2.35/gpu-hr") and becomes integer
 * micro-USD with integer arithmetic only: digits, optionally a point and 1–6 more digits.
 * Anything else (a seventh decimal, an exponent, a sign, spaces, ".5", "5.") is refused
 * rather than rounded, because a price that is not what the user meant must never reach
 * the market. Durations are a positive count of hours ("720h") or days ("30d").
 * Pure functions: no I/O, no locale, no floating point.
 */
#ifndef CAPX_CLIENTS_UNITS_H
#define CAPX_CLIENTS_UNITS_H

#include <stddef.h>
#include <stdint.h>

#include "common/capx.h"

#define UNITS_USD_STRLEN 32 /* "-9223372036854.775808" and NUL fit */

/* What units_parse_usd accepts after the number. */
enum units_usd_kind {
    UNITS_AMOUNT, /* a sum of money: "5000.00" */
    UNITS_PRICE,  /* a price per GPU-hour: "2.35", also "2.35/gpu-hr" or "2.35/gpu-hour" */
};

/*
 * Parses a positive dollar amount (an optional leading '$' allowed) into micro-USD.
 * 0 and *out set, or -1 with the reason in err (*out untouched).
 */
MUSTCHECK int units_parse_usd(const char *s, enum units_usd_kind kind, int64_t *out, char *err,
                              size_t errlen);

/*
 * Formats micro-USD as dollars with at least 2 decimals and no trailing zeros beyond them:
 * 2350000 -> "2.35", 1 -> "0.000001", 5000000000 -> "5000.00", -1500000 -> "-1.50".
 */
void units_format_usd(int64_t micros, char buf[UNITS_USD_STRLEN]);

/*
 * Parses a duration "<n>h" or "<n>d" (n a positive integer) into whole hours.
 * 0 and *hours set, or -1 with the reason in err.
 */
MUSTCHECK int units_parse_duration(const char *s, int64_t *hours, char *err, size_t errlen);

/* Parses a positive decimal integer (digits only) up to max. 0 ok, -1 with err. */
MUSTCHECK int units_parse_count(const char *s, int64_t max, int64_t *out, char *err, size_t errlen);

#endif
