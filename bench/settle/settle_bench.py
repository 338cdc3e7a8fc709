"""bench/settle: contract-hours settled per second when the simulated clock jumps 30 days over
10,000 active contracts. Builds the market through the API (providers, pools, offers, buyers,
deposits, 10,000 reservation orders of 8 GPUs × 720 h), starts them, then times one
POST /v1/admin/clock of 30 days — which answers only once every hour is settled and committed —
and checks the settlement report against the ledger and the ledger invariants.
Prints a table and, last, one JSON line."""
import http.client
import json
import os
import ssl
import sys
import threading
import time

port, var = int(sys.argv[1]), sys.argv[2]
CONTRACTS = int(os.environ.get("SETTLE_CONTRACTS", "10000"))
DAYS = 30
ctx = ssl.create_default_context(cafile=os.path.join(var, "tls", "cert.pem"))
admin = open(os.path.join(var, "admin.key")).read().strip()


def conn():
    return http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=600)


def req(c, method, path, body=None, key=admin):
    h = {"Authorization": f"Bearer {key}"}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        h["Content-Type"] = "application/json"
    c.request(method, path, body=data, headers=h)
    r = c.getresponse()
    b = r.read()
    return r.status, json.loads(b) if b else None


c = conn()
T0 = req(c, "GET", "/v1/clock")[1]["now"]  # 2027-01-01T00:00:00Z
START = "2027-01-01T01:00:00Z"
END = "2027-02-01T01:00:00Z"  # 31 days of supply
GPUS, HOURS, PRICE, POOLS = 8, 720, 2_000_000, 100
nodes = (CONTRACTS * GPUS + POOLS * 8 - 1) // (POOLS * 8)  # 8-GPU nodes per pool
st, p = req(c, "POST", "/v1/accounts", {"name": "bench-provider", "roles": ["provider"]})
pkey = p["api_key"]
pools = []
for i in range(POOLS):
    st, pool = req(c, "POST", "/v1/pools", {"name": f"p{i}", "gpu_model": "H100", "region": "us",
                                            "nodes": nodes, "gpus_per_node": 8,
                                            "nodes_per_rack": 4}, key=pkey)
    assert st == 201, pool
    st, o = req(c, "POST", "/v1/offers", {"pool_id": pool["id"], "gpus": nodes * 8, "start": START,
                                          "end": END, "price": PRICE}, key=pkey)
    assert st == 201, o
    pools.append(pool["id"])
BUYERS = 20
keys = []
for i in range(BUYERS):
    st, b = req(c, "POST", "/v1/accounts", {"name": f"bench-buyer-{i}", "roles": ["buyer"]})
    keys.append(b["api_key"])
    need = PRICE * GPUS * HOURS * (CONTRACTS // BUYERS + 1)
    st, d = req(c, "POST", f"/v1/accounts/{b['id']}/deposits", {"amount": need})
    assert st == 201, d

errors = []


def place(ti, n):
    cc = conn()
    key = keys[ti % BUYERS]
    for _ in range(n):
        st, o = req(cc, "POST", "/v1/orders", {"kind": "reservation", "gpu_model": "H100",
                                               "region": "us", "gpus": GPUS, "start": START,
                                               "hours": HOURS, "limit_price": PRICE}, key=key)
        if st != 201 or o["status"] != "filled":
            errors.append((st, o))


t = time.time()
threads = [threading.Thread(target=place, args=(i, CONTRACTS // 40)) for i in range(40)]
for th in threads:
    th.start()
for th in threads:
    th.join()
placed = time.time() - t
assert not errors, errors[:3]
n_contracts = (CONTRACTS // 40) * 40
# Start them (one hour), then the timed 30-day jump.
st, _ = req(c, "POST", "/v1/admin/clock", {"advance_seconds": 3600})
assert st == 200
transfers_before = req(c, "GET", "/v1/admin/ledger/check")[1]["transfers"]
t = time.time()
st, clk = req(c, "POST", "/v1/admin/clock", {"advance_seconds": DAYS * 86400})
jump = time.time() - t
assert st == 200, clk
hours = n_contracts * HOURS
st, rep = req(c, "GET", f"/v1/admin/reports/settlement?from={T0}&to=2028-01-01T00:00:00Z")
matches = st == 200 and rep["ledger_check"]["matches"]
st, chk = req(c, "GET", "/v1/admin/ledger/check")
ok = st == 200 and chk["balanced"] and not chk["violations"]
print(f"{'contracts':<28}{n_contracts:>14,}")
print(f"{'orders placed (s)':<28}{placed:>14.1f}   ({n_contracts / placed:,.0f} durable orders/s, 40 clients)")
print(f"{'30-day jump (s)':<28}{jump:>14.2f}   target < 10 s")
print(f"{'contract-hours settled/s':<28}{hours / jump:>14,.0f}")
made = chk.get("transfers", 0) - transfers_before
print(f"{'ledger transfers in the jump':<28}{made:>14,}   ({made / jump:,.0f} durable transfers/s inside it)")
anchor = os.environ.get("LEDGER_BENCH_JSON")
if anchor and os.path.exists(anchor):
    lj = json.load(open(anchor))
    print(f"{'ledger bench, batch 1000':<28}{lj['transfers_per_s']['1000']:>14,}   transfers/s (bench/run.sh ledger)")
print(f"{'report matches ledger':<28}{str(matches):>14}")
print(f"{'ledger invariants':<28}{str(ok):>14}")
print(json.dumps({"bench": "settle", "contracts": n_contracts, "days": DAYS, "seconds": round(jump, 3),
                  "contract_hours_per_s": round(hours / jump), "ledger_transfers_per_s": round(made / jump),
                  "report_matches_ledger": matches,
                  "ledger_ok": ok}))
