#!/usr/bin/env bash
# bench/sched/run.sh — the scheduler's figures (issue 6): GPU allocation ratio on
# Alibaba's GPU cluster trace 2023 (ATC '23 FGD method, seeds 42-51, arrived = 100 %)
# for capx, fgd, best-fit and first-fit on the default and multigpu50 traces, and
# capx's placement decisions per second over the 1,213-node cluster.
# Called by bench/run.sh after a Release build into $CAPX_BENCH_BUILD; prints a table,
# then the JSON summary as the last line. Extra arguments go to capx-sim (e.g. --seeds 42-43).
set -euo pipefail
build=${CAPX_BENCH_BUILD:?run through bench/run.sh sched}
root=${CAPX_ROOT:?run through bench/run.sh sched}
sim="$build/bench/sim/capx-sim"
data="$root/bench/data/alibaba-gpu-2023"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

(cd "$data" && sha256sum --quiet -c SHA256SUMS)
for trace in default multigpu50; do
    for policy in capx fgd best-fit first-fit; do
        "$sim" trace --nodes "$data/openb_node_list_gpu_node.csv" \
            --pods "$data/openb_pod_list_$trace.csv" --policy "$policy" --seeds 42-51 "$@" \
            >"$out/$trace.$policy.json"
    done
done

python3 - "$out" <<'PY'
import json, sys, os
d = sys.argv[1]
r = {}
for f in os.listdir(d):
    trace, policy = f[:-5].split('.', 1)
    r[(trace, policy)] = json.load(open(os.path.join(d, f)))
pub = {('default', 'fgd'): 95.23, ('multigpu50', 'fgd'): 97.09,
       ('default', 'best-fit'): 92.86, ('multigpu50', 'best-fit'): 95.62}
target = {('default', 'capx'): '>= 96.0', ('multigpu50', 'capx'): '>= 97.5'}
print("GPU allocation ratio (%) when arrivals reach 100 % of capacity; mean ± std of seeds 42-51")
print("Alibaba GPU trace 2023 (Weng et al., \"Beware of Fragmentation\", USENIX ATC '23)")
print()
print(f"{'trace':<11} {'policy':<10} {'alloc@100':>9} {'std':>5} {'@130':>6} {'published':>9} {'target':>8} {'decisions/s':>12}")
for trace in ('default', 'multigpu50'):
    for policy in ('capx', 'fgd', 'best-fit', 'first-fit'):
        x = r[(trace, policy)]
        m, s = x['alloc_pct_mean']['100'], x['alloc_pct_std']['100']
        p = pub.get((trace, policy))
        print(f"{trace:<11} {policy:<10} {m:>9.2f} {s:>5.2f} {x['alloc_pct_mean']['130']:>6.2f} "
              f"{(f'{p:.2f}' if p else '-'):>9} {target.get((trace, policy), '-'):>8} {x['decisions_per_s']:>12,.0f}")
print()
dps = min(r[('default', 'capx')]['decisions_per_s'], r[('multigpu50', 'capx')]['decisions_per_s'])
print(f"capx decisions/s over the 1,213-node cluster (slower of the two traces): {dps:,.0f} (target >= 50,000)")
def fig(trace, policy):
    x = r[(trace, policy)]
    return {"alloc_pct_100": x['alloc_pct_mean']['100'], "std": x['alloc_pct_std']['100']}
summary = {
    "bench": "sched",
    "default": fig('default', 'capx'),
    "multigpu50": fig('multigpu50', 'capx'),
    "fgd_default": r[('default', 'fgd')]['alloc_pct_mean']['100'],
    "first_fit_default": r[('default', 'first-fit')]['alloc_pct_mean']['100'],
    "best_fit_default": r[('default', 'best-fit')]['alloc_pct_mean']['100'],
    "decisions_per_s": round(dps),
}
print(json.dumps(summary))
PY
