/*
 * ledger.h — capx's double-entry ledger: the C side of schema/002_ledger.sql.
 *
 * Model (after TigerBeetle): ledger accounts carry four maintained totals (debits_pending,
 * debits_posted, credits_pending, credits_posted, int64 micro-USD); transfers are immutable;
 * a pending transfer (a hold) is later posted (fully or partly) or voided, exactly once.
 * Every write is one batch = one statement, `SELECT … FROM ledger_submit(arrays…)`, that
 * returns a result per transfer without aborting the caller's transaction (see
 * docs/ledger.md for the SQL, the account model and the measured figures).
 *
 * Ledger account ids are text, derived from their owner, so nobody needs a round trip to
 * learn one: "<acct id>:cash" and "<acct id>:escrow" for each capx account (create both with
 * ledger_open_participant), "capx:world" (the outside world: deposits debit it, payouts and
 * withdrawals credit it) and "capx:fees" (the platform's fees).
 *
 * Two ways to run a batch:
 *   - ledger_submit(): blocking, its own transaction, retries serialization failures and
 *     deadlocks; for capx-admin, tests and the benchmark.
 *   - ledger_batch_stmt() + ledger_batch_decode(): the statement as (sql, nparams, values)
 *     for PQsendQueryParams inside a transaction the caller owns (capxd's pipelined group
 *     commit), and the decoder of that statement's PGresult.
 */
#ifndef CAPX_LEDGER_LEDGER_H
#define CAPX_LEDGER_LEDGER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <libpq-fe.h>

#include "common/capx.h"

#define LEDGER_WORLD "capx:world" /* outside world: deposits come from it, payouts go to it */
#define LEDGER_FEES  "capx:fees"  /* the platform's fee income */

#define LEDGER_ID_MAX      128 /* transfer ids: 1..128 bytes */
#define LEDGER_ACCOUNT_MAX 64  /* ledger account ids: "<acct id>:escrow" fits */
#define LEDGER_BATCH_MAX   100000

/* Transfer flags (one of). */
#define LEDGER_POSTED  0 /* moves money now */
#define LEDGER_PENDING 1 /* reserves it: a hold */
#define LEDGER_POST    2 /* posts pending_id (amount 0: all of it; less: the rest is released) */
#define LEDGER_VOID    4 /* voids pending_id: releases all of it */

/* Per-transfer results; the numbers are the SQL function's too (schema/002_ledger.sql). */
enum ledger_result {
    LEDGER_OK = 0,
    LEDGER_EXISTS = 1,                       /* same id, same content: changed nothing */
    LEDGER_EXISTS_WITH_DIFFERENT_FIELDS = 2, /* same id, other content: changed nothing */
    LEDGER_EXCEEDS_CREDITS = 3,              /* debit account would go below zero */
    LEDGER_EXCEEDS_DEBITS = 4,               /* credit account has credits_must_not_exceed_debits */
    LEDGER_PENDING_NOT_FOUND = 5,            /* no pending transfer with that id */
    LEDGER_PENDING_ALREADY_RESOLVED = 6,     /* it was posted or voided already */
    LEDGER_PENDING_EXPIRED = 7,              /* posting a hold past its expiry */
    LEDGER_EXCEEDS_PENDING_AMOUNT = 8,       /* post above the hold (or a void not equal to it) */
    LEDGER_DEBIT_ACCOUNT_NOT_FOUND = 9,
    LEDGER_CREDIT_ACCOUNT_NOT_FOUND = 10,
    LEDGER_ACCOUNTS_MUST_BE_DIFFERENT = 11,
    LEDGER_INVALID_AMOUNT = 12,
    LEDGER_INVALID_FIELDS = 13,            /* id, kind, ref, flags or expiry malformed */
    LEDGER_PENDING_ACCOUNTS_MISMATCH = 14, /* post/void naming other accounts than the hold */
    LEDGER_LINKED_EVENT_FAILED = 15,       /* another transfer of its chain failed */
    LEDGER_OVERFLOW = 16,                  /* a total would pass INT64_MAX */
    LEDGER_RESULT_COUNT
};

/* "ok", "exists", "exceeds_credits", …; "unknown" outside the enum. */
const char *ledger_result_name(int r);

/* One transfer to submit. Strings are copied into the batch. */
struct ledger_transfer {
    const char *id;             /* 1..128 bytes, unique forever: the idempotency handle */
    const char *debit_account;  /* money leaves it; NULL for post/void: the hold's */
    const char *credit_account; /* money arrives; NULL for post/void: the hold's */
    capx_micros amount;         /* > 0; post: 0 = the whole hold; void: 0 */
    const char *kind;           /* [a-z_]{1,32}: deposit, hold, fill, delivery, fee, refund, … */
    const char *ref;            /* order, contract, … id, or NULL */
    int flags;                  /* LEDGER_POSTED / PENDING / POST / VOID */
    const char *pending_id;     /* the hold a post or void resolves */
    int64_t expires_at; /* holds only: Unix seconds after which it cannot be posted; 0 none */
    bool linked;        /* succeeds or fails together with the next transfer */
};

struct ledger_batch; /* a growing set of transfers, already encoded as statement parameters */

struct ledger_batch *ledger_batch_new(void);
void ledger_batch_free(struct ledger_batch *b);
/* Empties the batch for reuse (keeps its buffers). */
void ledger_batch_clear(struct ledger_batch *b);
/* Appends a transfer; returns its index in the batch (results are in this order). */
size_t ledger_batch_add(struct ledger_batch *b, const struct ledger_transfer *t);
size_t ledger_batch_count(const struct ledger_batch *b);
/* The instant the batch happens (created_at, expiry checks): Unix seconds; 0 = now(). */
void ledger_batch_set_time(struct ledger_batch *b, int64_t unix_seconds);

/* The batch as one statement. Valid until the batch is changed or freed. */
struct ledger_stmt {
    const char *sql;
    int nparams;
    const char *const *values; /* text format, no types needed: the SQL casts */
};
void ledger_batch_stmt(struct ledger_batch *b, struct ledger_stmt *out);

/*
 * Decodes the PGresult of that statement into results[ledger_batch_count(b)].
 * 0: the statement ran (each transfer has its result; only LEDGER_OK ones changed anything,
 * and they are durable once the caller's transaction commits). -1: the statement failed as a
 * whole (err says why; the caller's transaction is aborted; retry the batch in a new one when
 * ledger_result_retryable(res)).
 */
MUSTCHECK int ledger_batch_decode(const struct ledger_batch *b, const PGresult *res,
                                  enum ledger_result *results, char *err, size_t errlen);

/* True for SQLSTATEs worth retrying the whole transaction for: 40001, 40P01, 23505. */
bool ledger_result_retryable(const PGresult *res);

/*
 * Blocking: runs the batch as its own transaction (one round trip; outside a transaction
 * block it uses a statement it prepares on the connection at first use, named
 * "capx_ledger_submit"), retrying retryable failures up to 20 times. 0 with results filled; -1 with
 * err (a lost connection leaves the outcome unknown: resubmit the same ids later and read
 * exists/ok).
 */
MUSTCHECK int ledger_submit(PGconn *conn, struct ledger_batch *b, enum ledger_result *results,
                            char *err, size_t errlen);

/* "<owner>:cash" / "<owner>:escrow" into buf (LEDGER_ACCOUNT_MAX bytes). */
void ledger_cash_id(const char *owner, char *buf, size_t size);
void ledger_escrow_id(const char *owner, char *buf, size_t size);

/* Creates a participant's cash and escrow accounts (idempotent). SQL for a pipeline: $1 owner. */
#define LEDGER_SQL_OPEN_PARTICIPANT "SELECT ledger_open_participant($1)"
MUSTCHECK int ledger_open_participant(PGconn *conn, const char *owner, char *err, size_t errlen);

/* One ledger account's maintained totals. */
struct ledger_account {
    char id[LEDGER_ACCOUNT_MAX + 1];
    char kind[16]; /* cash, escrow, fees, world */
    int flags;     /* 1: debits must not exceed credits; 2: the converse */
    int64_t debits_pending, debits_posted, credits_pending, credits_posted;
};
/* 0 found, 1 no such account, -1 error. */
MUSTCHECK int ledger_account_get(PGconn *conn, const char *id, struct ledger_account *out,
                                 char *err, size_t errlen);

/*
 * A participant's balance as the API shows it (GET /v1/account):
 *   available = cash.credits_posted - cash.debits_posted - cash.debits_pending
 *   held      = cash.debits_pending (its unreleased holds)
 *             + escrow.credits_posted - escrow.debits_posted (posted into escrow, not yet paid out)
 */
struct ledger_balance {
    int64_t available;
    int64_t held;
};
#define LEDGER_SQL_BALANCE                                                                         \
    "SELECT coalesce(sum(CASE WHEN kind = 'cash' THEN credits_posted - debits_posted - "           \
    "debits_pending ELSE 0 END), 0)::bigint, coalesce(sum(CASE WHEN kind = 'cash' THEN "           \
    "debits_pending ELSE credits_posted - debits_posted END), 0)::bigint, count(*) "               \
    "FROM ledger_accounts WHERE owner = $1"
/* Decodes LEDGER_SQL_BALANCE: 0 ok, 1 the owner has no ledger accounts, -1 error. */
MUSTCHECK int ledger_balance_decode(const PGresult *res, struct ledger_balance *out, char *err,
                                    size_t errlen);
MUSTCHECK int ledger_balance_get(PGconn *conn, const char *owner, struct ledger_balance *out,
                                 char *err, size_t errlen);

/* GET /v1/account/transfers: one entry as the API shows it. */
enum ledger_status { LEDGER_STATUS_POSTED, LEDGER_STATUS_PENDING, LEDGER_STATUS_VOIDED };
struct ledger_entry {
    char *id;
    int64_t amount;
    char *kind;
    char *ref;                 /* NULL when none */
    char created_at[24];       /* RFC 3339, "2027-01-04T00:00:00Z" */
    bool out;                  /* direction: money left the listed account(s) */
    enum ledger_status status; /* posted / pending / voided */
    char *debit_account;
    char *credit_account;
    int flags;
    char *pending_id; /* NULL unless a post or void */
    int64_t seq;      /* insertion order */
};
struct ledger_page {
    struct ledger_entry *items;
    size_t n;
    char next_cursor[24]; /* "" when this was the last page */
};
/* `$1` text[] of ledger account ids, `$2` cursor (bigint, exclusive), `$3` limit + 1. */
extern const char ledger_sql_list[];
/*
 * Lists transfers touching `account` — a ledger account id ("acct_…:cash"), or a capx
 * account id ("acct_…": both its cash and escrow) — newest first, `limit` (1..500) per page,
 * from `cursor` (NULL or "" for the first page). 0 ok, -1 error. Free with ledger_page_free.
 */
MUSTCHECK int ledger_list(PGconn *conn, const char *account, const char *cursor, int limit,
                          struct ledger_page *page, char *err, size_t errlen);
MUSTCHECK int ledger_list_decode(const PGresult *res, int limit, struct ledger_page *page,
                                 char *err, size_t errlen);
void ledger_page_free(struct ledger_page *page);
const char *ledger_status_name(enum ledger_status s);

/* GET /v1/admin/ledger/check. */
struct ledger_violation {
    char *code;    /* unbalanced, recompute_mismatch, negative_available, … (docs/ledger.md) */
    char *account; /* the ledger account or capx account at fault, or NULL */
    char *detail;
};
struct ledger_report {
    bool balanced; /* no violation at all */
    int64_t accounts, transfers;
    int64_t total_debits, total_credits; /* posted, summed over every ledger account */
    struct ledger_violation *violations;
    size_t nviolations;
};
/* Recomputes every balance from the transfers and checks every invariant, on one snapshot
 * (its own REPEATABLE READ transaction: call it on a connection outside any transaction).
 * 0 ok (the report may hold violations), -1 error. Free with ledger_report_free. */
MUSTCHECK int ledger_check(PGconn *conn, struct ledger_report *out, char *err, size_t errlen);
void ledger_report_free(struct ledger_report *r);

/* Voids every hold whose expiry is at or before `now` (Unix seconds; 0 = the database's
 * clock), at most `limit`. SQL for a pipeline: $1 now or NULL, $2 limit. */
#define LEDGER_SQL_EXPIRE "SELECT ledger_expire($1::bigint, $2::int)"
MUSTCHECK int ledger_expire(PGconn *conn, int64_t now, int limit, int *voided, char *err,
                            size_t errlen);

#endif
