#!/usr/bin/env bash
# tests/sim/test_market.sh CAPX_SIM SCENARIO — sim.market_small: a 3-day market simulation on
# 200 nodes (the benchmark's scenario with short leads, many spot bids and frequent failures)
# must start every reservation whose pool had the GPUs on time, preempt no spot at a start
# without notice, print the benchmark's JSON shape as its last line, and give the same
# figures twice for one seed. A second run sells whole pools (offer_share_min=1), so failed
# hardware leaves contracts short: they start short, lose GPU-hours, and the rest are still
# on time. A bad key is refused with exit code 2. The simulator asserts its own invariants (no GPU oversold, a
# sold reservation placed when its pool has the GPUs); any abort fails the test.
set -euo pipefail
sim=$1
scenario=$2
args=(market --scenario "$scenario" --set days=3 --set nodes=200 --set pool_nodes_min=32
      --set pool_nodes_max=64 --set resv_lead_max_h=24 --set resv_hours_max=72
      --set resv_load=3 --set spot_bid_rate=4 --set spot_life_max_h=12 --set node_mtbf_h=400
      --set gpu_mtbf_h=2000 --set seed=7)
out1=$("$sim" "${args[@]}")
out2=$("$sim" "${args[@]}")
out3=$("$sim" "${args[@]}" --set offer_share_min=1 --set resv_load=4)
rc=0
"$sim" market --set no_such_key=1 2>/dev/null || rc=$?
[ "$rc" -eq 2 ] || { echo "a bad key gave exit code $rc, not 2"; exit 1; }
python3 - "$out1" "$out2" "$out3" <<'PY'
import json, re, sys
a, b, c = sys.argv[1], sys.argv[2], sys.argv[3]
last = a.strip().splitlines()[-1]
j = json.loads(last)
keys = ["bench", "days", "on_time_pct", "one_rack_pct", "preemptions", "utilization_pct",
        "lost_gpu_hours", "wall_s"]
assert list(j) == keys, f"JSON keys {list(j)}"
assert j["bench"] == "market-sim" and j["days"] == 3, j
assert j["on_time_pct"] == 100, j
for k in keys[3:]:
    assert isinstance(j[k], (int, float)) and j[k] >= 0, (k, j[k])
def row(text, name):
    m = re.search(r"^\s*" + re.escape(name) + r"\s+([0-9.]+)", text, re.M)
    assert m, f"no row '{name}'"
    return float(m.group(1))
assert row(a, "contracts started (excluding block continuations)") > 10, "too few contracts"
assert row(a, "at a reservation start without notice") == 0
assert row(a, "node failures") > 0 and row(a, "spot bids") > 0
strip = lambda t: re.sub(r"wall[ _]\S*\s+\S+", "", t)
assert strip(a) == strip(b), "two runs of one seed differ"
jc = json.loads(c.strip().splitlines()[-1])
assert jc["on_time_pct"] == 100 and jc["lost_gpu_hours"] > 0, jc
assert row(c, "started short: pool lacked healthy GPUs (failures)") > 0
assert row(c, "at a reservation start without notice") == 0
print(last)
PY
