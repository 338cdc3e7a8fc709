/* clock.c — see clock.h. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "common/timefmt.h"
#include "server/clock.h"

int clock_init(struct capx_clock *c, const char *spec, char *err, size_t errlen)
{
    memset(c, 0, sizeof *c);
    if (!spec || !strcmp(spec, "real") || !*spec)
        return 0;
    if (!strncmp(spec, "sim:", 4) && capx_time_parse(spec + 4, &c->sim_now) == 0) {
        c->simulated = 1;
        c->sim_start = c->sim_now;
        return 0;
    }
    snprintf(err, errlen, "clock must be \"real\" or \"sim:YYYY-MM-DDTHH:MM:SSZ\", got \"%s\"",
             spec);
    return -1;
}

int64_t clock_now(const struct capx_clock *c)
{
    if (c->simulated)
        return c->sim_now;
    return (int64_t)time(NULL);
}

const char *clock_mode(const struct capx_clock *c)
{
    return c->simulated ? "simulated" : "real";
}
