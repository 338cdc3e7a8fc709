/*
 * reqspec.h — the typed form of request bodies that more than one place decodes: the order
 * body (POST /v1/orders and POST /v1/quotes), shared with the fuzz harness so that fuzzing
 * exercises the very field table the server uses.
 */
#ifndef CAPX_SERVER_REQSPEC_H
#define CAPX_SERVER_REQSPEC_H

#include <stddef.h>
#include <stdint.h>

#include "server/reqjson.h"

struct order_req {
    const char *kind, *gpu_model, *region, *tif;
    int64_t gpus, start, hours, limit_price, latest_start;
    int all_or_none, single_pool, lend_idle;
};

enum {
    F_KIND,
    F_MODEL,
    F_REGION,
    F_GPUS,
    F_START,
    F_HOURS,
    F_LIMIT,
    F_LATEST,
    F_AON,
    F_SINGLE,
    F_TIF,
    F_LEND
};

extern const struct jfield order_fields[];
extern const size_t order_nfields;

#endif
