/*
 * metrics.h — counters for GET /metrics in Prometheus' text format: requests by route and
 * status, a latency histogram per route, and gauges the owner supplies at render time
 * (open connections, database pool state). Plain arrays, no allocation per request.
 */
#ifndef CAPX_SERVER_METRICS_H
#define CAPX_SERVER_METRICS_H

#include <stdint.h>

#include <event2/buffer.h>

#define METRICS_MAX_ROUTES 96
#define METRICS_BUCKETS    14

/* Registers a route label ("GET /v1/pools/{id}"); returns its index. */
int metrics_route(const char *label);
/* One finished request. */
void metrics_observe(int route, int status, double seconds);

struct metrics_gauge {
    const char *name; /* capx_… */
    const char *help;
    double value;
};

void metrics_render(struct evbuffer *out, const struct metrics_gauge *g, int ng);

#endif
