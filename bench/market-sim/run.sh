#!/usr/bin/env bash
# bench/market-sim/run.sh — the market simulation (issue 7): 90 simulated days of the
# exchange on 10,000 8-GPU nodes, driving the matching engine and the scheduler library
# with a virtual clock (capx-sim market; the model is described in bench/sim/market.c and
# docs/scheduler.md "Market simulation"). Called by bench/run.sh after a Release build into
# $CAPX_BENCH_BUILD; prints a table, then the JSON summary as the last line.
# Arguments go to capx-sim after the scenario, e.g. --seed 2 or --set days=30.
# Environment: MARKET_SIM_SCENARIO overrides the scenario file.
set -euo pipefail
build=${CAPX_BENCH_BUILD:?run through bench/run.sh market-sim}
root=${CAPX_ROOT:?run through bench/run.sh market-sim}
scenario=${MARKET_SIM_SCENARIO:-$root/bench/market-sim/scenario.conf}
exec "$build/bench/sim/capx-sim" market --scenario "$scenario" "$@"
