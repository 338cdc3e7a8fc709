/*
 * timefmt.h — RFC 3339 UTC instants as capx speaks them ("2027-01-04T00:00:00Z").
 * Instants are int64 seconds since the Unix epoch; no time zone other than Z is
 * accepted, and every field is range-checked (a hostile string never reaches
 * timegm unchecked).
 */
#ifndef CAPX_COMMON_TIMEFMT_H
#define CAPX_COMMON_TIMEFMT_H

#include <stdint.h>
#include "common/capx.h"

#define CAPX_TIME_STRLEN 21 /* "YYYY-MM-DDTHH:MM:SSZ" + NUL */

/* Parse "YYYY-MM-DDTHH:MM:SSZ" (fractional seconds refused). 0 ok, -1 malformed. */
MUSTCHECK int capx_time_parse(const char *s, int64_t *out);
/* Format into buf (at least CAPX_TIME_STRLEN bytes). Years 0000–9999 only. */
void capx_time_format(int64_t t, char buf[CAPX_TIME_STRLEN]);
/* Days since 1970-01-01 of a civil date (proleptic Gregorian), no libc. */
int64_t capx_days_from_civil(int64_t y, unsigned m, unsigned d);

#endif
