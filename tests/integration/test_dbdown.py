"""The database goes away under capxd: /readyz says 503 unavailable, requests that need the
database get 503, nothing crashes; when it comes back capxd serves again without a restart.

Also: an order refused with 503 while the database is down (its turn's commit failed, so memory
was rebuilt from the database) is nowhere afterwards, and each account's lists (orders, pools,
contracts, which capxd keeps per account) hold exactly the acknowledged objects, in order."""
import os
import subprocess
import time

from capxtest import Env, check, done, need_env, is_error_body, ROOT

need_env()
e = Env("dbdown", own_pg=True, clock="sim:2027-01-01T00:00:00Z")
MODEL, REGION = "H100-SXM-80GB", "us-west"


def account(name, roles):
    st, _, b = e.req("POST", "/v1/accounts", {"name": name, "roles": roles})
    check(st == 201, f"account {name}: {st} {b}")
    return b["id"], b["api_key"]


def order(key, gpus, hour, limit):
    return e.req("POST", "/v1/orders", {"kind": "reservation", "gpu_model": MODEL, "region": REGION,
                                        "gpus": gpus, "start": f"2027-01-02T{hour:02d}:00:00Z",
                                        "hours": 1, "limit_price": limit}, key=key)


def ids(key, path):
    out, cursor = [], None
    for _ in range(50):
        st, _, b = e.req("GET", path + (f"&cursor={cursor}" if cursor else ""), key=key)
        check(st == 200, f"list {path}: {st} {b}")
        if st != 200:
            return out
        out += [x["id"] for x in b["data"]]
        cursor = b.get("next_cursor")
        if cursor is None:
            return out
    return out


try:
    e.up()
    prov, pkey = account("prov", ["provider"])
    buyers = [account(f"b{i}", ["buyer"]) for i in range(2)]
    for b, _ in buyers:
        st, _, _ = e.req("POST", f"/v1/accounts/{b}/deposits", {"amount": 10_000_000_000})
        check(st == 201, "deposit")
    st, _, pool = e.req("POST", "/v1/pools", {"name": "p", "gpu_model": MODEL, "region": REGION,
                                              "nodes": 2, "gpus_per_node": 8}, key=pkey)
    check(st == 201, f"pool: {st} {pool}")
    st, _, _ = e.req("POST", "/v1/offers", {"pool_id": pool["id"], "gpus": 16,
                                            "start": "2027-01-02T00:00:00Z",
                                            "end": "2027-01-03T00:00:00Z", "price": 2_000_000},
                     key=pkey)
    check(st == 201, "offer")
    acked = {b: [] for b, _ in buyers}
    ctrs = []
    for i in range(6):  # interleaved: each buyer's list must skip the other's orders
        b, k = buyers[i % 2]
        st, _, o = order(k, 1, i, 1_000_000 if i % 3 else 3_000_000)  # every third fills
        check(st == 201, f"order {i}: {st} {o}")
        acked[b].append(o["id"])
        ctrs += o.get("contracts", [])
    st, _, _ = e.req("GET", "/readyz", key=None)
    check(st == 200, "ready with the database up")
    pg = [os.path.join(ROOT, "deploy", "pg.sh")]
    st, _, clk = e.req("GET", "/v1/clock")
    clock_before = clk["now"]
    subprocess.run(pg + ["stop"], env=e.env, capture_output=True, check=True)
    # A clock advance answered 503 moved nothing: not now, not after the database is back (a
    # retry would otherwise advance it twice).
    st, _, body = e.req("POST", "/v1/admin/clock", {"advance_seconds": 3600})
    check(st == 503 and is_error_body(body, "unavailable"), f"clock advance while the database is down: {st} {body}")
    for i in range(3):
        st, _, body = order(buyers[i % 2][1], 1, 20 + i, 1_000_000)
        check(st == 503 and is_error_body(body, "unavailable"),
              f"an order while the database is down: 503 unavailable: {st} {body}")
    bad = 0
    for _ in range(20):
        st, _, body = e.req("GET", "/readyz", key=None)
        bad += st == 503 and is_error_body(body, "unavailable")
        time.sleep(0.05)
    check(bad == 20, f"readyz 503 unavailable while the database is down: {bad}/20")
    st, _, _ = e.req("GET", "/healthz", key=None)
    check(st == 200, "healthz still answers")
    subprocess.run(pg + ["start"], env=e.env, capture_output=True, check=True)
    ok = False
    for _ in range(100):
        st, _, _ = e.req("GET", "/readyz", key=None)
        if st == 200:
            ok = True
            break
        time.sleep(0.1)
    check(ok, "ready again after the database returns, without a restart")
    st, _, clk = e.req("GET", "/v1/clock")
    check(clk.get("now") == clock_before, f"the refused advance moved nothing: {clk} (was {clock_before})")
    # The orders refused while it was down are nowhere; the lists are exactly what was acknowledged.
    for i in range(4):
        b, k = buyers[i % 2]
        st, _, o = order(k, 1, 10 + i, 1_000_000)
        check(st == 201, f"order after the outage {i}: {st} {o}")
        acked[b].append(o["id"])
    for b, k in buyers:
        check(ids(k, "/v1/orders?limit=2") == acked[b], f"{b}'s orders, two per page, in order")
        got = ids(k, "/v1/contracts?limit=1")
        check(set(got) <= set(ctrs) and len(got) == 1, f"{b}'s one contract: {got}")
    check(ids(pkey, "/v1/contracts?limit=1") == ctrs, f"the provider sees both contracts: {ctrs}")
    check(ids(pkey, "/v1/pools?limit=1") == [pool["id"]], "the provider's one pool")
    _, p2key = account("prov2", ["provider"])
    check(ids(p2key, "/v1/pools?limit=1") == [] and ids(p2key, "/v1/contracts?limit=1") == [],
          "a new provider lists no pools and no contracts")
    # kill -9 of the database: same.
    subprocess.run(pg + ["kill9"], env=e.env, capture_output=True)
    time.sleep(0.3)
    st, _, _ = e.req("GET", "/readyz", key=None)
    check(st == 503, f"503 after the database was killed: {st}")
    subprocess.run(pg + ["start"], env=e.env, capture_output=True, check=True)
    ok = False
    for _ in range(100):
        st, _, _ = e.req("GET", "/readyz", key=None)
        if st == 200:
            ok = True
            break
        time.sleep(0.1)
    check(ok, "ready again after crash recovery")
    check(subprocess.run(["kill", "-0", str(e.pid)]).returncode == 0, "capxd still running")
finally:
    e.close()
done()
