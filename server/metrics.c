/* metrics.c — see metrics.h. Status codes are counted per route in a 100..599 table. */
#include <stdio.h>
#include <string.h>

#include "common/capx.h"
#include "server/metrics.h"

static const double bounds[METRICS_BUCKETS - 1] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                   0.1,    0.25,  0.5,    1.0,   2.5,  5.0};

struct route_stats {
    const char *label;
    uint64_t by_status[500]; /* index status - 100 */
    uint64_t buckets[METRICS_BUCKETS];
    uint64_t count;
    double sum;
};

static struct route_stats routes[METRICS_MAX_ROUTES];
static int nroutes;

int metrics_route(const char *label)
{
    for (int i = 0; i < nroutes; i++)
        if (!strcmp(routes[i].label, label))
            return i;
    CAPX_ASSERT(nroutes < METRICS_MAX_ROUTES);
    routes[nroutes].label = label;
    return nroutes++;
}

void metrics_observe(int route, int status, double seconds)
{
    if (route < 0 || route >= nroutes)
        return;
    struct route_stats *r = &routes[route];
    if (status >= 100 && status < 600)
        r->by_status[status - 100]++;
    int b = 0;
    while (b < METRICS_BUCKETS - 1 && seconds > bounds[b])
        b++;
    r->buckets[b]++;
    r->count++;
    r->sum += seconds;
}

void metrics_render(struct evbuffer *out, const struct metrics_gauge *g, int ng)
{
    evbuffer_add_printf(out, "# HELP capx_http_requests_total HTTP requests by route and status.\n"
                             "# TYPE capx_http_requests_total counter\n");
    for (int i = 0; i < nroutes; i++)
        for (int s = 0; s < 500; s++)
            if (routes[i].by_status[s])
                evbuffer_add_printf(
                    out, "capx_http_requests_total{route=\"%s\",status=\"%d\"} %llu\n",
                    routes[i].label, s + 100, (unsigned long long)routes[i].by_status[s]);
    evbuffer_add_printf(out, "# HELP capx_http_request_duration_seconds Time from a complete "
                             "request to its answer.\n"
                             "# TYPE capx_http_request_duration_seconds histogram\n");
    for (int i = 0; i < nroutes; i++) {
        if (!routes[i].count)
            continue;
        uint64_t cum = 0;
        for (int b = 0; b < METRICS_BUCKETS; b++) {
            cum += routes[i].buckets[b];
            if (b < METRICS_BUCKETS - 1)
                evbuffer_add_printf(
                    out, "capx_http_request_duration_seconds_bucket{route=\"%s\",le=\"%g\"} %llu\n",
                    routes[i].label, bounds[b], (unsigned long long)cum);
            else
                evbuffer_add_printf(
                    out,
                    "capx_http_request_duration_seconds_bucket{route=\"%s\",le=\"+Inf\"} %llu\n",
                    routes[i].label, (unsigned long long)cum);
        }
        evbuffer_add_printf(out, "capx_http_request_duration_seconds_sum{route=\"%s\"} %.6f\n",
                            routes[i].label, routes[i].sum);
        evbuffer_add_printf(out, "capx_http_request_duration_seconds_count{route=\"%s\"} %llu\n",
                            routes[i].label, (unsigned long long)routes[i].count);
    }
    for (int i = 0; i < ng; i++)
        evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s gauge\n%s %.17g\n", g[i].name, g[i].help,
                            g[i].name, g[i].name, g[i].value);
}
