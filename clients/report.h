/*
 * report.h — capx-admin's reports and payouts.
 *
 * `report settlement` and `payout` go through capxd's admin API (a payout moves money, so
 * capxd does it; the settlement report is built by capxd and tied to the ledger there).
 * `report trial-balance` and `report market` read PostgreSQL directly inside one READ ONLY,
 * REPEATABLE READ transaction (one snapshot; they can change nothing).
 *
 * Money is integer micro-USD everywhere and printed in dollars with integer arithmetic only
 * (units_format_usd); a price that is a quotient (VWAP, average spot price) is rounded to the
 * micro-dollar by PostgreSQL's exact numeric arithmetic, half away from zero.
 *
 * Every function returns an exit code of cli.h (CLI_OK ...), having printed the reason on
 * stderr when it is not CLI_OK.
 */
#ifndef CAPX_CLIENTS_REPORT_H
#define CAPX_CLIENTS_REPORT_H

#include <libpq-fe.h>

#include "clients/cli.h"

/*
 * Parses the period flags: both RFC 3339 UTC instants, from before to. 0 with *f and *t set,
 * or -1 after printing why (a usage error).
 */
MUSTCHECK int report_period(const char *prog, const char *from, const char *to, int64_t *f,
                            int64_t *t);

/*
 * GET /v1/admin/reports/settlement; CLI_REFUSED (1) when the report differs from the ledger:
 * capxd's tie (each settlement's own transfers) and, when db is not NULL, the ledger's sums by
 * kind over the period (delivery + spot_delivery, fee, refund, sla_credit, payout) against the
 * report's totals, which also catches money the report does not name. The by-kind lines are
 * added to ledger_check.lines (what "ledger_kinds:...") in every format.
 */
int report_settlement(struct cli *c, PGconn *db, const char *from, const char *to);

/* POST /v1/admin/payouts {"until"}; idem is the Idempotency-Key to send. */
int report_payout(struct cli *c, const char *until, const char *idem);

/*
 * Every ledger account's debits and credits, posted and pending, and its balance, recomputed
 * from the transfers created at or before at (NULL: all of them, and then also compared with
 * the totals the ledger maintains). CLI_REFUSED when debits and credits differ (or a
 * maintained total differs from the transfers).
 */
int report_trial_balance(PGconn *db, enum cli_format fmt, const char *at);

/*
 * Reservation volume (GPU-hours) and VWAP per market and hour of trade, from the contracts
 * made in [from, to); spot charges and the average price paid per GPU-hour per market and
 * metered hour, from the spot settlements.
 */
int report_market(PGconn *db, enum cli_format fmt, const char *from, const char *to);

#endif
