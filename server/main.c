/*
 * capxd — the capx exchange server.
 *
 * Start-up, in order: configuration (one table: file, CAPX_* environment, flags), logs,
 * the clock, TLS, the database (waits for it up to --db-wait seconds, then refuses to run
 * on a schema older than this build needs), the mirror of accounts and keys, then one
 * libevent loop serving HTTPS.
 *
 * Signals: SIGTERM/SIGINT stop accepting, let in-flight requests finish (bounded by
 * --shutdown-timeout-ms), close the database pool and exit 0. SIGHUP reopens the log file
 * and reloads the TLS certificate without dropping connections.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "common/config.h"
#include "schema/migrate.h"
#include "server/app.h"
#include "server/log.h"
#include "server/market.h"
#include "server/sched.h"
#include "server/tls.h"

static char *o_listen, *o_tls_cert, *o_tls_key, *o_database, *o_var, *o_log_level, *o_log_file,
    *o_clock, *o_pid_file;
static int64_t o_port, o_pgport, o_body_limit, o_rate_limit, o_rate_burst, o_max_conns,
    o_max_conns_per_ip, o_header_timeout_ms, o_body_timeout_ms, o_idle_timeout_ms,
    o_write_timeout_ms, o_db_pool, o_db_queue, o_db_wait, o_shutdown_timeout_ms, o_ticket_rotate_s,
    o_max_open_orders, o_fee_bps, o_preempt_notice_s, o_sla_credit_pct, o_max_nodes_per_account,
    o_max_header_bytes;
static int64_t o_sched_mtbf_h, o_sched_repair_h, o_sched_seed;

static const struct cfg_entry capxd_cfg[] = {
    {"listen", CFG_STR, &o_listen, "127.0.0.1", 0, 0, "address to listen on"},
    {"port", CFG_INT, &o_port, "8443", 1, 65535, "HTTPS port"},
    {"tls_cert", CFG_STR, &o_tls_cert, "", 0, 0,
     "certificate chain (PEM); default VAR/tls/cert.pem"},
    {"tls_key", CFG_STR, &o_tls_key, "", 0, 0, "private key (PEM); default VAR/tls/key.pem"},
    {"database", CFG_STR, &o_database, "", 0, 0,
     "PostgreSQL connection string; default the private cluster under VAR"},
    {"var", CFG_STR, &o_var, "var", 0, 0, "state directory"},
    {"pgport", CFG_INT, &o_pgport, "54329", 1, 65535, "port of the private PostgreSQL"},
    {"log_level", CFG_STR, &o_log_level, "info", 0, 0, "debug, info, warn or error"},
    {"log_file", CFG_STR, &o_log_file, "", 0, 0, "log file (reopened on SIGHUP); default stderr"},
    {"pid_file", CFG_STR, &o_pid_file, "", 0, 0, "write the process id here"},
    {"clock", CFG_STR, &o_clock, "real", 0, 0, "real, or sim:<RFC 3339 instant>"},
    {"body_limit", CFG_INT, &o_body_limit, "1048576", 1024, 64 << 20, "request body limit, bytes"},
    {"max_header_bytes", CFG_INT, &o_max_header_bytes, "16384", 1024, 1 << 20,
     "request header limit, bytes"},
    {"rate_limit", CFG_INT, &o_rate_limit, "2000", 1, 100000000,
     "requests per second per account (all its keys)"},
    {"rate_burst", CFG_INT, &o_rate_burst, "4000", 1, 100000000, "rate-limit burst per account"},
    {"max_conns", CFG_INT, &o_max_conns, "20000", 1, 1000000, "open connections, overall"},
    {"max_conns_per_ip", CFG_INT, &o_max_conns_per_ip, "1024", 1, 1000000,
     "open connections per client address"},
    {"header_timeout_ms", CFG_INT, &o_header_timeout_ms, "10000", 100, 600000,
     "total time for the TLS handshake and a request's headers"},
    {"body_timeout_ms", CFG_INT, &o_body_timeout_ms, "30000", 100, 600000,
     "total time for a request's body"},
    {"idle_timeout_ms", CFG_INT, &o_idle_timeout_ms, "60000", 100, 3600000,
     "keep-alive idle time between requests"},
    {"write_timeout_ms", CFG_INT, &o_write_timeout_ms, "30000", 100, 600000,
     "time a client may take to read an answer"},
    {"db_pool", CFG_INT, &o_db_pool, "4", 1, 256, "database connections"},
    {"db_queue", CFG_INT, &o_db_queue, "100000", 1, 10000000, "database jobs that may wait"},
    {"db_wait", CFG_INT, &o_db_wait, "30", 0, 3600, "seconds to wait for the database at start"},
    {"shutdown_timeout_ms", CFG_INT, &o_shutdown_timeout_ms, "10000", 0, 600000,
     "time in-flight requests get at SIGTERM"},
    {"max_open_orders", CFG_INT, &o_max_open_orders, "10000", 1, 10000000,
     "open orders per account"},
    {"fee_bps", CFG_INT, &o_fee_bps, "500", 0, 10000, "platform fee, basis points"},
    {"max_nodes_per_account", CFG_INT, &o_max_nodes_per_account, "200000", 1, 100000000,
     "nodes one account's pools may have in all (each is simulated in memory)"},
    {"sla_credit_pct", CFG_INT, &o_sla_credit_pct, "0", 0, 1000,
     "SLA credit a provider pays per lost GPU-hour, % of its price (0: off; at most 10x)"},
    {"sched_mtbf_h", CFG_INT, &o_sched_mtbf_h, "0", 0, 100000000,
     "mean hours between failures of each node and each GPU on the market clock (0: off)"},
    {"sched_repair_h", CFG_INT, &o_sched_repair_h, "24", 1, 100000, "hours a failure lasts"},
    {"sched_seed", CFG_INT, &o_sched_seed, "1", 0, INT64_MAX, "seed of the failure process"},
    {"preempt_notice_s", CFG_INT, &o_preempt_notice_s, "120", 0, 3600,
     "notice a preempted spot run gets"},
    {"ticket_rotate_s", CFG_INT, &o_ticket_rotate_s, "3600", 10, 86400,
     "TLS session ticket key rotation period"},
};

static const char usage[] = "usage: capxd [flags]\n\ncapx exchange server (HTTPS JSON API).";

static struct app app;
static struct event *shutdown_timer, *shutdown_poll;

static void finish(void)
{
    event_base_loopexit(app.base, NULL);
}

static void on_shutdown_poll(evutil_socket_t fd, short what, void *arg)
{
    UNUSED(fd);
    UNUSED(what);
    UNUSED(arg);
    struct db_pool_stats st;
    db_pool_stats(app.db, &st);
    if (http_server_conns(app.http) == 0 && st.busy == 0 && st.queued == 0)
        finish();
}

static void on_shutdown_timeout(evutil_socket_t fd, short what, void *arg)
{
    UNUSED(fd);
    UNUSED(what);
    UNUSED(arg);
    log_warn("msg=\"shutdown timeout: closing remaining connections\" conns=%d",
             http_server_conns(app.http));
    finish();
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    UNUSED(what);
    UNUSED(arg);
    if (sig == SIGHUP) {
        char err[512];
        if (log_reopen() < 0)
            log_error("msg=\"cannot reopen log file\"");
        if (tls_reload(err, sizeof err) < 0)
            log_error("msg=\"TLS reload failed; keeping the old certificate\" err=\"%s\"", err);
        else
            log_info("msg=\"reloaded TLS certificate and reopened logs\"");
        return;
    }
    if (app.draining)
        return;
    log_info("msg=\"shutting down\" signal=%d conns=%d", (int)sig, http_server_conns(app.http));
    app.draining = 1;
    http_server_drain(app.http);
    struct timeval tv = {o_shutdown_timeout_ms / 1000, (o_shutdown_timeout_ms % 1000) * 1000};
    shutdown_timer = evtimer_new(app.base, on_shutdown_timeout, NULL);
    evtimer_add(shutdown_timer, &tv);
    struct timeval pt = {0, 20000};
    shutdown_poll = event_new(app.base, -1, EV_PERSIST, on_shutdown_poll, NULL);
    event_add(shutdown_poll, &pt);
}

static void on_ticket_rotate(evutil_socket_t fd, short what, void *arg)
{
    UNUSED(fd);
    UNUSED(what);
    UNUSED(arg);
    tls_rotate_ticket_keys();
    log_info("msg=\"rotated TLS session ticket key\"");
}

static void on_log_flush(evutil_socket_t fd, short what, void *arg)
{
    UNUSED(fd);
    UNUSED(what);
    UNUSED(arg);
    log_flush();
}

/* With the real clock, run what became due (spot rounds each minute, hourly work). */
static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    UNUSED(fd);
    UNUSED(what);
    UNUSED(arg);
    if (!app.clock.simulated && market_ready(app.market) && !app.draining)
        market_advance(app.market, clock_now(&app.clock));
    /* Saved idempotent answers live 24 hours of wall clock, whatever the market's clock. */
    static time_t last_purge;
    time_t now = time(NULL);
    if (now - last_purge >= 3600 && market_ready(app.market) && !app.draining) {
        last_purge = now;
        size_t n = app_idem_purge(&app, (int64_t)now);
        market_sql(app.market,
                   "DELETE FROM idempotency_keys WHERE created_at < now() - interval '24 hours'", 0,
                   NULL);
        log_info("msg=\"expired idempotency records purged\" in_memory=%zu", n);
    }
}

/* Waits for the database and checks its schema (blocking: before the loop exists). */
static int check_database(const char *conninfo, char *err, size_t errlen)
{
    for (int64_t waited = 0;; waited++) {
        PGconn *c = PQconnectdb(conninfo);
        if (PQstatus(c) == CONNECTION_OK) {
            int rc = schema_check(c, err, errlen);
            PQfinish(c);
            return rc;
        }
        snprintf(err, errlen, "cannot connect to the database: %s", PQerrorMessage(c));
        err[strcspn(err, "\n")] = '\0';
        PQfinish(c);
        if (waited >= o_db_wait)
            return -1;
        if (waited == 0)
            log_warn("msg=\"waiting for the database\" err=\"%s\"", err);
        sleep(1);
    }
}

static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
    }
}

int main(int argc, char **argv)
{
    char err[1024];
    int nrest = 0, rc = 1;
    char *conninfo = NULL, *cert = NULL, *key = NULL, *var = NULL;
    struct event *sigs[4] = {0}, *rotate = NULL, *tick = NULL, *logflush = NULL;
    int lr = cfg_load(capxd_cfg, ARRAY_LEN(capxd_cfg), argc, argv, &nrest, stdout, usage, err,
                      sizeof err);
    if (lr == 1)
        return 0;
    if (lr < 0 || nrest > 0) {
        fprintf(stderr, "capxd: %s\n", lr < 0 ? err : "unexpected argument (see --help)");
        cfg_free(capxd_cfg, ARRAY_LEN(capxd_cfg));
        return 2;
    }
    if (log_init(o_log_file, o_log_level) < 0) {
        fprintf(stderr, "capxd: bad log_level \"%s\" or log_file \"%s\"\n", o_log_level,
                o_log_file);
        goto out;
    }
    signal(SIGPIPE, SIG_IGN);
    raise_nofile();
    struct capx_clock clk;
    if (clock_init(&clk, o_clock, err, sizeof err) < 0) {
        log_error("msg=\"bad clock\" err=\"%s\"", err);
        goto out;
    }
    var = cfg_state_dir(o_var);
    conninfo = *o_database ? xstrdup(o_database) : cfg_default_conninfo(o_var, o_pgport);
    size_t vl = strlen(var) + 32;
    cert = xmalloc(vl);
    key = xmalloc(vl);
    snprintf(cert, vl, "%s/tls/cert.pem", var);
    snprintf(key, vl, "%s/tls/key.pem", var);
    if (tls_init(*o_tls_cert ? o_tls_cert : cert, *o_tls_key ? o_tls_key : key, err, sizeof err) <
        0) {
        log_error("msg=\"TLS setup failed\" err=\"%s\"", err);
        goto out;
    }
    if (check_database(conninfo, err, sizeof err) < 0) {
        log_error("msg=\"cannot start\" err=\"%s\"", err);
        fprintf(stderr, "capxd: %s\n", err);
        goto out;
    }
    struct app_config acfg = {
        o_rate_limit, o_rate_burst,       o_body_limit,     o_max_open_orders,
        o_fee_bps,    o_preempt_notice_s, o_sla_credit_pct, o_max_nodes_per_account};
    struct event_base *base = event_base_new();
    app_init(&app, base, &acfg);
    app.clock = clk;
    app.conninfo = conninfo;
    app.db = db_pool_new(base, conninfo, (int)o_db_pool, (int)o_db_queue);
    sched_configure(o_sched_mtbf_h, o_sched_repair_h, o_sched_seed);
    app.market = market_new(&app);
    if (market_load(app.market, conninfo, err, sizeof err) < 0) {
        log_error("msg=\"cannot load the market\" err=\"%s\"", err);
        goto out_app;
    }
    struct http_limits lim = {
        .body_limit = (size_t)o_body_limit,
        .max_header_bytes = (size_t)o_max_header_bytes,
        .max_url = 8192,
        .header_timeout_ms = (int)o_header_timeout_ms,
        .body_timeout_ms = (int)o_body_timeout_ms,
        .idle_timeout_ms = (int)o_idle_timeout_ms,
        .write_timeout_ms = (int)o_write_timeout_ms,
        .max_conns = (int)o_max_conns,
        .max_conns_per_ip = (int)o_max_conns_per_ip,
    };
    app.http = http_server_new(base, &lim, app_precheck, app_handle, &app);
    if (http_server_listen(app.http, o_listen, (int)o_port, err, sizeof err) < 0) {
        log_error("msg=\"cannot listen\" err=\"%s\"", err);
        goto out_app;
    }
    int signums[] = {SIGTERM, SIGINT, SIGHUP};
    for (int i = 0; i < 3; i++) {
        sigs[i] = evsignal_new(base, signums[i], on_signal, NULL);
        event_add(sigs[i], NULL);
    }
    logflush = event_new(base, -1, EV_PERSIST, on_log_flush, NULL);
    struct timeval lt = {0, 100000};
    event_add(logflush, &lt);
    tick = event_new(base, -1, EV_PERSIST, on_tick, NULL);
    struct timeval tt = {1, 0};
    event_add(tick, &tt);
    rotate = event_new(base, -1, EV_PERSIST, on_ticket_rotate, NULL);
    struct timeval rt = {o_ticket_rotate_s, 0};
    event_add(rotate, &rt);
    if (*o_pid_file) {
        FILE *pf = fopen(o_pid_file, "w");
        if (pf) {
            fprintf(pf, "%d\n", (int)getpid());
            fclose(pf);
        }
    }
    log_info("msg=\"capxd listening\" addr=%s port=%lld clock=%s schema=%d", o_listen,
             (long long)o_port, clock_mode(&app.clock), schema_latest_version());
    event_base_dispatch(base);
    rc = 0;
    log_info("msg=\"capxd stopped\"");
out_app:
    if (app.http)
        http_server_free(app.http);
    if (app.db)
        db_pool_free(app.db);
    for (int i = 0; i < 4; i++)
        if (sigs[i])
            event_free(sigs[i]);
    if (rotate)
        event_free(rotate);
    if (tick)
        event_free(tick);
    if (logflush)
        event_free(logflush);
    market_free(app.market);
    if (shutdown_timer)
        event_free(shutdown_timer);
    if (shutdown_poll)
        event_free(shutdown_poll);
    app_free(&app);
    event_base_free(base);
    if (*o_pid_file && rc == 0)
        unlink(o_pid_file);
out:
    tls_shutdown();
    free(conninfo);
    free(cert);
    free(key);
    free(var);
    cfg_free(capxd_cfg, ARRAY_LEN(capxd_cfg));
    log_close();
    return rc;
}
