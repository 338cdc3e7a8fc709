/*
 * api.h — helpers the route handlers share: query strings, pagination, decoding bodies.
 */
#ifndef CAPX_SERVER_API_H
#define CAPX_SERVER_API_H

#include <stddef.h>
#include <stdint.h>

#include "server/app.h"
#include "server/market.h"

/* Percent-decoded value of a query parameter into buf. 1 found, 0 absent, -1 malformed. */
int api_query(const char *query, const char *name, char *buf, size_t size);
/* ?limit= (1-500, default 100) and ?cursor=; -1 after answering 400. */
int api_page(struct app_req *r, int64_t *limit, uint64_t *cursor);
/* Decodes the body with a field table; -1 after answering 400. */
int api_decode(struct app_req *r, const struct jfield *f, size_t n, void *dst, uint64_t *present);
/* {"data": items, "next_cursor": …} */
json_t *api_list(json_t *items, uint64_t next);

/* Handlers (api_accounts.c, api_market.c). */
void h_accounts_create(struct app_req *r);
void h_accounts_list(struct app_req *r);
void h_keys_create(struct app_req *r);
void h_keys_revoke(struct app_req *r);
void h_deposit(struct app_req *r);
void h_withdraw(struct app_req *r);
void h_ledger_check(struct app_req *r);
void h_payouts(struct app_req *r);
void h_report_settlement(struct app_req *r);
void h_account(struct app_req *r);
void h_transfers(struct app_req *r);
void h_pools_create(struct app_req *r);
void h_pools_list(struct app_req *r);
void h_pools_get(struct app_req *r);
void h_offers_create(struct app_req *r);
void h_offers_list(struct app_req *r);
void h_offers_get(struct app_req *r);
void h_offers_cancel(struct app_req *r);
void h_orders_create(struct app_req *r);
void h_orders_list(struct app_req *r);
void h_orders_get(struct app_req *r);
void h_orders_cancel(struct app_req *r);
void h_quotes(struct app_req *r);
void h_contracts_list(struct app_req *r);
void h_contracts_get(struct app_req *r);
void h_markets(struct app_req *r);
void h_book(struct app_req *r);
void h_trades(struct app_req *r);

#endif
