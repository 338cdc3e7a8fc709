/*
 * app.h — capxd's application layer: the route table, authentication, roles, rate limits,
 * and the state every handler sees.
 *
 * Requests are judged in the contract's order: unknown route 404, 405, 401, 403, (429),
 * 413, 415, 400 invalid_json, then the handler's own checks. The first five are decided
 * from the request line and headers alone (keys and accounts are mirrored in memory), so
 * a request with a large body is refused before its body is read.
 */
#ifndef CAPX_SERVER_APP_H
#define CAPX_SERVER_APP_H

#include <stdint.h>

#include <jansson.h>

#include "server/clock.h"
#include "server/db.h"
#include "server/hmap.h"
#include "server/http.h"

#define ROLE_BUYER    1u
#define ROLE_PROVIDER 2u
#define ROLE_ADMIN    4u

#define APP_MAX_PARAMS 3

#define APP_OBJ_TYPES 5 /* enum obj_type's values are below this */

/* An account as capxd mirrors it. */
struct account {
    char id[40];
    char name[132];
    unsigned roles;
    double tokens;      /* rate-limit bucket */
    double last_refill; /* monotonic seconds */
    uint64_t num;       /* the matching engine's id for it */
    int64_t available;  /* mirror of the ledger: spendable */
    int64_t held;       /* mirror of the ledger: holds + escrow */
    int64_t open_orders;
    int64_t pool_nodes; /* nodes of the pools it registered */
    int64_t created;
    /* Its market objects of each type (enum obj_type), nums ascending, so that listing them
     * does not walk everyone's (market.c keeps these; valid while owned_gen is the market's). */
    uint64_t *owned[APP_OBJ_TYPES];
    size_t nowned[APP_OBJ_TYPES], capowned[APP_OBJ_TYPES];
    uint64_t owned_gen;
};

/* A saved answer for an Idempotency-Key (or one still in flight). */
struct idem {
    unsigned char hash[32]; /* SHA-256 of method, path and body */
    int status;             /* 0 while in flight */
    char *body;
    int64_t created; /* wall clock, seconds */
};

/* An API key as mirrored: its hash is the map key. */
struct api_key {
    char id[40];
    struct account *acct;
};

struct app_config {
    int64_t rate_limit;      /* requests per second per account */
    int64_t rate_burst;      /* bucket size */
    int64_t body_limit;      /* bytes */
    int64_t max_open_orders; /* per account */
    int64_t fee_bps;         /* platform fee, basis points */
    int64_t preempt_notice_s;
    int64_t sla_credit_pct;        /* SLA credit per lost GPU-hour, % of its price (0: off) */
    int64_t max_nodes_per_account; /* hardware one provider may register (memory bound) */
};

struct market;

struct app {
    struct event_base *base;
    struct http_server *http;
    struct db_pool *db;
    struct capx_clock clock;
    struct app_config cfg;
    struct hmap accounts; /* id -> struct account * */
    struct hmap keys;     /* hex sha256 -> struct api_key * */
    struct hmap idem;     /* account id "\n" key -> struct idem * */
    struct market *market;
    char *conninfo;
    int draining;
};

struct app_req;
typedef void (*route_fn)(struct app_req *r);

struct route {
    enum hp_method method;
    const char *pattern; /* "/v1/orders/{id}"; {x} matches one segment */
    const char *label;   /* metrics label */
    int auth;            /* 1: Bearer key required */
    unsigned roles;      /* any of these roles; 0: any authenticated account */
    int body;            /* 1: a JSON object body is expected */
    route_fn fn;
    const char *summary; /* for the OpenAPI document */
    int needs_market;    /* 503 while the market is being rebuilt */
    int metric;          /* filled at start */
};

/* Per-request state, owned by the http_req (freed after the answer). */
struct app_req {
    struct app *app;
    struct http_req *http;
    const struct route *route;
    char params[APP_MAX_PARAMS][128];
    int nparams;
    struct account *acct; /* authenticated account or NULL */
    json_t *body;         /* parsed JSON body, when the route takes one */
    int prechecked;
    struct api_error pre_err; /* precheck's refusal, if any */
    char idem_key[300];       /* "acct\nkey" when the request carries Idempotency-Key */
    unsigned char idem_hash[32];
    int64_t aux;     /* a handler's own value across an asynchronous step */
    char filter[32]; /* a list handler's ?status= */
};

void app_init(struct app *a, struct event_base *base, const struct app_config *cfg);
void app_free(struct app *a);
/* Drops saved idempotent answers older than 24 hours (wall clock); returns how many. */
size_t app_idem_purge(struct app *a, int64_t now);
/* Idempotency: called with the final answer of a request that carried a key. */
void app_idem_finish(struct app_req *r, int status, const char *body);
/* Drops keys and saved idempotency answers before a rebuild (all: accounts and in-flight
   keys too, at exit). */
void app_clear(struct app *a, int all);

/* The http_server callbacks. */
int app_precheck(struct http_req *req, struct api_error *err, void *arg);
void app_handle(struct http_req *req, void *arg);

/* The route table (routes.c). */
extern struct route app_routes[];
extern const int app_nroutes;

/* Helpers for handlers. */
void app_reply(struct app_req *r, int status, json_t *body);
void app_error(struct app_req *r, int status, const char *code, const char *field, const char *fmt,
               ...) PRINTF(5, 6);
void app_reply_err(struct app_req *r, const struct api_error *e);

#endif
