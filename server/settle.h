/*
 * settle.h — metering and settlement on the market clock.
 *
 * Reservations: every whole hour a contract is active, its cost for that hour moves from the
 * buyer's escrow to the provider, less the platform fee (floor(hour cost × fee_bps / 10,000)
 * per contract-hour) which goes to the fee account; GPU-hours the scheduler recorded as lost
 * are not charged — their escrow goes back to the buyer — and the provider owes an SLA credit
 * of sla_credit_pct % of the lost hours' price (0: off), paid from its available balance as
 * far as it goes; the rest is its debt to that buyer, paid from its next earnings first.
 * Consecutive hours are settled together (one transfer per kind for the range; the ids name
 * the contract and the hour range, so settling twice moves money once), at the end of each
 * clock advance and at each contract's end, in time order.
 *
 * Spot: each running bid accrues price × gpus × seconds every minute; each hour it is charged
 * floor(accrued / 3,600) from its hold (the remainder carries over), paid to the provider less
 * the same fee, and the hold is renewed for the next hour — a buyer who cannot fund it is
 * stopped (never runs on credit).
 */
#ifndef CAPX_SERVER_SETTLE_H
#define CAPX_SERVER_SETTLE_H

#include <libpq-fe.h>

#include "server/market.h"

/* Spot metering for the minute ending at t (bids running through it). */
void settle_spot_minute(struct market *m, int64_t t);
/* A spot bid stops running in its pool at now (preempted: bids_on; or done): what it ran since
   its last charge is charged now, to that pool, while its placement is still known (the rule
   floor(Σ price × gpus × seconds / 3,600) holds across the pieces: the remainder stays), and a
   bid that bids on is given a new hold. 0 when it cannot fund that hold: the caller must then
   stop it with settle_spot_unfunded, outside the engine's event handling. */
int settle_spot_stop(struct market *m, struct order *b, int64_t now, int bids_on);
void settle_spot_unfunded(struct market *m, struct order *b, int64_t t);
/* Work due at the hour boundary t: spot charges for [t-1h, t), contracts ending at t. */
void settle_hour(struct market *m, int64_t t);
/* Settles every contract's whole hours up to t. */
void settle_flush(struct market *m, int64_t t);
/* Loads open provider debts (at market load). 0 ok, -1 with err. */
MUSTCHECK int settle_load(struct market *m, PGconn *c, char *err, size_t errlen);
void settle_reset(void);
/* Pays out the provider's net earnings for hours ending at or before `until`, less what was
   paid before, as far as its available balance goes (one transfer, id in `id`). Returns the
   amount (0 when nothing is due), or -1 when that period was paid out already. */
int64_t settle_payout(struct market *m, struct account *p, int64_t until, char *id, size_t idlen);

#endif
