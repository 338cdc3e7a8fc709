/*
 * clock.h — capx's one source of "now".
 *
 * `real`: the system's UTC clock. `simulated`: starts at a given instant and moves only
 * when an operator advances it (POST /v1/admin/clock), so a month of market runs in a test
 * in seconds. Everything time-driven asks this clock, never time() directly.
 */
#ifndef CAPX_SERVER_CLOCK_H
#define CAPX_SERVER_CLOCK_H

#include <stddef.h>
#include <stdint.h>

#include "common/capx.h"

struct capx_clock {
    int simulated;     /* 0 real, 1 simulated */
    int64_t sim_now;   /* simulated: seconds since the epoch */
    int64_t sim_start; /* simulated: where it started (the configured instant) */
};

/* spec: "real" or "sim:<RFC 3339 instant>". 0 ok, -1 with err. */
MUSTCHECK int clock_init(struct capx_clock *c, const char *spec, char *err, size_t errlen);
int64_t clock_now(const struct capx_clock *c);
const char *clock_mode(const struct capx_clock *c);

#endif
