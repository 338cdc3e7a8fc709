/*
 * api_reports.c — GET /v1/admin/reports/settlement?from=&to=: what settled in a period (by the
 * market clock), per provider, per buyer and for the platform, and a check that ties the
 * report to the ledger: every settlement record names the transfers that moved its money, and
 * the report's totals must equal the sums of those transfers to the micro-dollar.
 * Read-only: one database job, each statement one snapshot.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/timefmt.h"
#include "server/api.h"

#define WINDOW "s.settled_at >= to_timestamp($1) AND s.settled_at < to_timestamp($2)"

static const char providers_sql[] =
    "SELECT a.id, a.name, coalesce(sum(s.gpu_hours), 0)::bigint, coalesce(sum(s.gross), "
    "0)::bigint, "
    "coalesce(sum(s.fee), 0)::bigint, coalesce(sum(s.sla_paid), 0)::bigint, "
    "(SELECT coalesce(sum(d.remaining), 0) FROM provider_debts d WHERE d.provider_id = "
    "a.id)::bigint, coalesce(sum(s.gross - s.fee - s.sla_paid), 0)::bigint, "
    "coalesce((SELECT sum(p.amount) FROM payouts p WHERE p.provider_id = a.id AND p.created_at >= "
    "to_timestamp($1) AND p.created_at < to_timestamp($2)), 0)::bigint "
    "FROM accounts a LEFT JOIN settlements s ON s.provider_id = a.id AND " WINDOW
    /* providers, and buyers who earned by lending idle reserved GPUs to spot */
    " WHERE 'provider' = ANY (a.roles) OR EXISTS (SELECT 1 FROM settlements l WHERE "
    "l.provider_id = a.id) GROUP BY a.id, a.name ORDER BY a.id";

static const char buyers_sql[] =
    "SELECT a.id, a.name, coalesce((SELECT sum(c.gpus * extract(epoch FROM c.end_at - "
    "c.start_at)::bigint / 3600) FROM contracts c WHERE c.buyer_id = a.id AND c.created_at >= "
    "to_timestamp($1) AND c.created_at < to_timestamp($2)), 0)::bigint, "
    "coalesce(sum(s.gpu_hours), 0)::bigint, coalesce(sum(s.gross), 0)::bigint, "
    "coalesce(sum(s.refund), 0)::bigint, coalesce(sum(s.sla_paid), 0)::bigint "
    "FROM accounts a LEFT JOIN settlements s ON s.buyer_id = a.id AND " WINDOW
    " WHERE 'buyer' = ANY (a.roles) GROUP BY a.id, a.name ORDER BY a.id";

static const char tie_sql[] =
    "WITH s AS (SELECT * FROM settlements s WHERE " WINDOW "), ids AS ("
    "SELECT CASE WHEN kind = 'reservation' THEN 'dlv:' ELSE 'spot:' END || id AS tid, "
    "gross - fee AS want, 'provider_net' AS what FROM s UNION ALL "
    "SELECT CASE WHEN kind = 'reservation' THEN 'fee:' ELSE 'spotfee:' END || id, fee, 'fees' "
    "FROM s UNION ALL SELECT 'rfd:' || id, refund, 'refunds' FROM s WHERE kind = 'reservation' "
    "UNION ALL SELECT 'sla:' || id, sla_paid, 'sla_credits' FROM s WHERE kind = 'reservation' "
    "UNION ALL SELECT 'debt:' || id, sla_paid, 'sla_credits' FROM s WHERE kind = 'debt_payment') "
    "SELECT w.what, coalesce(sum(ids.want), 0)::bigint, coalesce(sum(t.amount), 0)::bigint "
    "FROM (VALUES ('provider_net'), ('fees'), ('refunds'), ('sla_credits')) w(what) "
    "LEFT JOIN ids ON ids.what = w.what LEFT JOIN ledger_transfers t ON t.id = ids.tid "
    "GROUP BY w.what ORDER BY w.what";

static json_t *i64j(PGresult *r, int row, int col)
{
    return json_integer(strtoll(PQgetvalue(r, row, col), NULL, 10));
}

static void report_done(struct db_job *job, void *arg)
{
    struct app_req *r = arg;
    if (!job->ok || job->nresults != 3) {
        app_error(r, 503, "unavailable", NULL, "the database could not build the report: %s",
                  job->err);
        db_job_free(job);
        return;
    }
    PGresult *p = job->results[0], *b = job->results[1], *t = job->results[2];
    json_t *providers = json_array(), *buyers = json_array(), *lines = json_array();
    int64_t gross = 0, fees = 0, refunds = 0, sla = 0, paid_out = 0;
    for (int i = 0; i < PQntuples(p); i++) {
        json_t *o = json_object();
        json_object_set_new(o, "provider_id", json_string(PQgetvalue(p, i, 0)));
        json_object_set_new(o, "name", json_string(PQgetvalue(p, i, 1)));
        json_object_set_new(o, "gpu_hours_delivered", i64j(p, i, 2));
        json_object_set_new(o, "gross", i64j(p, i, 3));
        json_object_set_new(o, "fees", i64j(p, i, 4));
        json_object_set_new(o, "sla_credits_paid", i64j(p, i, 5));
        json_object_set_new(o, "sla_debt", i64j(p, i, 6)); /* outstanding now */
        json_object_set_new(o, "net", i64j(p, i, 7));
        json_object_set_new(o, "paid_out", i64j(p, i, 8));
        gross += strtoll(PQgetvalue(p, i, 3), NULL, 10);
        fees += strtoll(PQgetvalue(p, i, 4), NULL, 10);
        sla += strtoll(PQgetvalue(p, i, 5), NULL, 10);
        paid_out += strtoll(PQgetvalue(p, i, 8), NULL, 10);
        json_array_append_new(providers, o);
    }
    for (int i = 0; i < PQntuples(b); i++) {
        json_t *o = json_object();
        json_object_set_new(o, "buyer_id", json_string(PQgetvalue(b, i, 0)));
        json_object_set_new(o, "name", json_string(PQgetvalue(b, i, 1)));
        json_object_set_new(o, "gpu_hours_reserved", i64j(b, i, 2));
        json_object_set_new(o, "gpu_hours_delivered", i64j(b, i, 3));
        json_object_set_new(o, "charged", i64j(b, i, 4));
        json_object_set_new(o, "refunded", i64j(b, i, 5));
        json_object_set_new(o, "sla_credits_received", i64j(b, i, 6));
        refunds += strtoll(PQgetvalue(b, i, 5), NULL, 10);
        json_array_append_new(buyers, o);
    }
    int matches = 1;
    for (int i = 0; i < PQntuples(t); i++) {
        int64_t want = strtoll(PQgetvalue(t, i, 1), NULL, 10);
        int64_t got = strtoll(PQgetvalue(t, i, 2), NULL, 10);
        matches &= want == got;
        json_array_append_new(lines,
                              json_pack("{s:s,s:I,s:I,s:I}", "what", PQgetvalue(t, i, 0), "report",
                                        (json_int_t)want, "ledger", (json_int_t)got, "difference",
                                        (json_int_t)(want - got)));
    }
    char from[CAPX_TIME_STRLEN], to[CAPX_TIME_STRLEN];
    capx_time_format(r->aux, from);
    capx_time_format(strtoll(r->filter, NULL, 10), to);
    json_t *o = json_pack("{s:s,s:s,s:o,s:o}", "from", from, "to", to, "providers", providers,
                          "buyers", buyers);
    json_object_set_new(o, "totals",
                        json_pack("{s:I,s:I,s:I,s:I,s:I}", "gross", (json_int_t)gross, "fees",
                                  (json_int_t)fees, "refunds", (json_int_t)refunds, "sla_credits",
                                  (json_int_t)sla, "paid_out", (json_int_t)paid_out));
    json_object_set_new(o, "ledger_check",
                        json_pack("{s:b,s:o}", "matches", matches, "lines", lines));
    db_job_free(job);
    app_reply(r, 200, o);
}

static int time_arg(struct app_req *r, const char *name, int64_t *out)
{
    char b[40];
    int f = api_query(r->http->hp->query, name, b, sizeof b);
    if (f <= 0 || capx_time_parse(b, out) < 0) {
        app_error(r, 400, "invalid_request", name, "%s must be an RFC 3339 UTC time", name);
        return -1;
    }
    return 0;
}

void h_report_settlement(struct app_req *r)
{
    int64_t from, to;
    if (time_arg(r, "from", &from) < 0 || time_arg(r, "to", &to) < 0)
        return;
    if (to <= from) {
        app_error(r, 400, "invalid_request", "to", "to must be after from");
        return;
    }
    char f[24], t[24];
    snprintf(f, sizeof f, "%lld", (long long)from);
    snprintf(t, sizeof t, "%lld", (long long)to);
    r->aux = from;
    snprintf(r->filter, sizeof r->filter, "%s", t);
    const char *v[] = {f, t};
    struct db_job *j = db_job_new(report_done, r);
    db_job_add(j, providers_sql, 2, v);
    db_job_add(j, buyers_sql, 2, v);
    db_job_add(j, tie_sql, 2, v);
    if (db_submit(r->app->db, j) < 0) {
        db_job_free(j);
        app_error(r, 503, "unavailable", NULL, "the database cannot be reached");
    }
}
