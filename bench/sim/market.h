/*
 * market.h — `capx-sim market`: a seeded simulation of the whole exchange over
 * a virtual clock. The matching engine (matching/) sells reservations and runs
 * the spot auction; the scheduler library (scheduler/) places every contract
 * and spot bid on its pool's nodes, and hardware fails and is repaired. See
 * market.c for the model and docs/scheduler.md ("Market simulation") for the
 * figures and the scenario format (bench/market-sim/scenario.conf).
 */
#ifndef CAPX_BENCH_SIM_MARKET_H
#define CAPX_BENCH_SIM_MARKET_H

/* Runs `capx-sim market ARGS...` (argv[0] is the first argument after
 * "market"); returns the process exit code. */
int msim_main(int argc, char **argv);

#endif
