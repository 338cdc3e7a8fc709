"""After a restart, a turn that writes rows of several kinds writes them in dependency order
whatever kinds the restarted process wrote first: here its first writes are contracts (hours
of a contract from before the restart settle) and orders (a spot bid's metering), and then a new offer fills a
resting order in one turn (offer, order and contract rows together). Also: the market's trade
tape, last price and spot price read back after the restart as before it."""
from capxtest import Env, check, done, iso_hours, need_env

need_env()

T0 = "2027-01-01T00:00:00Z"


iso = iso_hours


e = Env("restart", clock="sim:" + T0)
try:
    e.up()
    api, account = e.api, e.account
    pid, pkey = account("prov", ["provider"])
    bid, bkey = account("buyer", ["buyer"], 10_000_000_000)
    sid, skey = account("spotter", ["buyer"], 10_000_000_000)
    pools = []
    for name in ("a", "b"):
        st, p = api("POST", "/v1/pools", {"name": name, "gpu_model": "H100", "region": "eu",
                                          "nodes": 1, "gpus_per_node": 8}, key=pkey)
        check(st == 201, f"pool {name}: {st} {p}")
        pools.append(p["id"])
    st, o1 = api("POST", "/v1/offers", {"pool_id": pools[0], "gpus": 8, "start": iso(2), "end": iso(10),
                                        "price": 2_000_000}, key=pkey)
    check(st == 201, f"offer 1: {st} {o1}")
    st, fill = api("POST", "/v1/orders", {"kind": "reservation", "gpu_model": "H100", "region": "eu",
                                          "gpus": 2, "start": iso(2), "hours": 2,
                                          "limit_price": 2_500_000}, key=bkey)
    check(st == 201 and fill["status"] == "filled", f"a fill before the restart: {st} {fill}")
    st, so = api("POST", "/v1/offers", {"pool_id": pools[1], "kind": "spot", "gpus": 4,
                                        "price": 1_000_000}, key=pkey)
    check(st == 201, f"spot offer: {st} {so}")
    st, sb = api("POST", "/v1/orders", {"kind": "spot", "gpu_model": "H100", "region": "eu", "gpus": 4,
                                        "limit_price": 1_500_000}, key=skey)
    check(st == 201, f"spot bid: {st} {sb}")
    api("POST", "/v1/admin/clock", {"advance_seconds": 120})

    def market_view():
        st, mk = api("GET", "/v1/markets", key=bkey)
        mine = [x for x in mk.get("data", []) if x["gpu_model"] == "H100" and x["region"] == "eu"]
        st2, tr = api("GET", "/v1/markets/H100/trades", key=bkey)
        return (mine[0] if mine else None), [x["id"] for x in tr.get("data", [])]

    before = market_view()
    check(before[0] and before[0]["last_price"] == 2_000_000 and before[0]["spot_price"] == 1_000_000
          and len(before[1]) == 1, f"market before the restart: {before}")

    e.down()
    e.up()
    after = market_view()
    check(after == before, f"market after the restart: {after}, before: {before}")

    # The restarted process writes contracts first (the first contract's hours settle) and
    # orders (the spot bid's metering)...
    api("POST", "/v1/admin/clock", {"advance_seconds": 3 * 3600})
    # ...then an order rests, and a new offer fills it: offer, order and contract rows in one turn.
    st, rest = api("POST", "/v1/orders", {"kind": "reservation", "gpu_model": "H100", "region": "eu",
                                          "gpus": 4, "start": iso(20), "hours": 2,
                                          "limit_price": 1_800_000}, key=bkey)
    check(st == 201 and rest["status"] == "open", f"a resting order: {st} {rest}")
    st, o2 = api("POST", "/v1/offers", {"pool_id": pools[0], "gpus": 8, "start": iso(20), "end": iso(30),
                                        "price": 1_700_000}, key=pkey)
    check(st == 201, f"a new offer that fills the resting order: {st} {o2}")
    st, r2 = api("GET", f"/v1/orders/{rest['id']}", key=bkey)
    check(r2.get("status") == "filled" and len(r2.get("contracts", [])) == 1, f"the resting order filled: {r2}")
    st, chk = api("GET", "/v1/admin/ledger/check")
    check(st == 200 and chk["balanced"] and chk["violations"] == [], f"ledger check: {chk}")

    # The spot price after a restart is what the running bids pay, even when a bid that no
    # longer runs (outbid, its notice over) was updated after them with its old price.
    qid, qkey = account("q", ["buyer"], 10_000_000_000)
    st, qb = api("POST", "/v1/orders", {"kind": "spot", "gpu_model": "H100", "region": "eu", "gpus": 4,
                                        "limit_price": 6_000_000}, key=qkey)
    check(st == 201, f"a higher spot bid: {st} {qb}")
    api("POST", "/v1/admin/clock", {"advance_seconds": 60})
    api("POST", "/v1/admin/clock", {"advance_seconds": 180})
    st, old = api("GET", f"/v1/orders/{sb['id']}", key=skey)
    st, new = api("GET", f"/v1/orders/{qb['id']}", key=qkey)
    check(old.get("status") == "pending" and new.get("status") == "running" and new.get("price") == 1_500_000,
          f"the first bid outbid and bidding again, the new one running at 1.50: {old} {new}")
    before = market_view()
    e.down()
    e.up()
    after = market_view()
    check(before[0]["spot_price"] == 1_500_000 and after == before,
          f"the spot price after a second restart: {after}, before: {before}")
finally:
    e.close()
done()
