/* reqspec.c — see reqspec.h. */
#include "server/reqspec.h"

const struct jfield order_fields[] = {
    {"kind", JF_STR, 1, 1, 16, offsetof(struct order_req, kind), JC_TOKEN},
    {"gpu_model", JF_STR, 1, 1, 32, offsetof(struct order_req, gpu_model), JC_TOKEN},
    {"region", JF_STR, 0, 1, 32, offsetof(struct order_req, region), JC_TOKEN},
    {"gpus", JF_INT, 1, 1, 100000, offsetof(struct order_req, gpus), 0},
    {"start", JF_HOUR, 0, 0, 0, offsetof(struct order_req, start), 0},
    {"hours", JF_INT, 0, 1, 8784, offsetof(struct order_req, hours), 0},
    {"limit_price", JF_INT, 1, 1, 1000000000, offsetof(struct order_req, limit_price), 0},
    {"latest_start", JF_HOUR, 0, 0, 0, offsetof(struct order_req, latest_start), 0},
    {"all_or_none", JF_BOOL, 0, 0, 0, offsetof(struct order_req, all_or_none), 0},
    {"single_pool", JF_BOOL, 0, 0, 0, offsetof(struct order_req, single_pool), 0},
    {"time_in_force", JF_STR, 0, 1, 8, offsetof(struct order_req, tif), JC_TOKEN},
    {"lend_idle", JF_BOOL, 0, 0, 0, offsetof(struct order_req, lend_idle), 0},
};
const size_t order_nfields = sizeof order_fields / sizeof order_fields[0];
