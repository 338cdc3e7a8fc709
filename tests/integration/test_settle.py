"""Metering and settlement on the simulated clock, to the micro-dollar: each delivered
contract-hour moves escrow to the provider less floor(hour cost × 5 %) to the fee account;
a 30-day jump settles every hour; settling again moves nothing; spot runs are metered per
second and charged each hour from a renewed hold; a buyer who cannot fund the next hour is
stopped; a restart in the middle resumes where settlement stopped."""
import os
import signal

from capxtest import Env, check, done, iso_hours, need_env

need_env()

H = 3600
T0 = "2027-01-01T00:00:00Z"


iso = iso_hours


e = Env("settle", clock="sim:" + T0)
try:
    e.up()

    def api(method, path, body=None, key="admin"):
        st, _, b = e.req(method, path, body, key=key)
        return st, b

    def account(name, roles):
        st, b = api("POST", "/v1/accounts", {"name": name, "roles": roles})
        assert st == 201, b
        return b["id"], b["api_key"]

    def bal(key):
        st, b = api("GET", "/v1/account", key=key)
        return b["balance"]["available"], b["balance"]["held"]

    def advance(seconds):
        st, b = api("POST", "/v1/admin/clock", {"advance_seconds": seconds})
        assert st == 200, b
        return b

    def ledger_clean(what):
        st, b = api("GET", "/v1/admin/ledger/check")
        check(st == 200 and b["balanced"] and b["violations"] == [], f"{what}: ledger check {b}")

    pid, pkey = account("prov", ["provider"])
    bid, bkey = account("buyer", ["buyer"])
    sid, skey = account("spotter", ["buyer"])
    api("POST", f"/v1/accounts/{bid}/deposits", {"amount": 10_000_000_000})
    api("POST", f"/v1/accounts/{sid}/deposits", {"amount": 30_000_000})
    st, pool = api("POST", "/v1/pools", {"name": "p", "gpu_model": "H100", "region": "eu",
                                         "nodes": 4, "gpus_per_node": 8}, key=pkey)
    P, G, HOURS = 2_345_679, 8, 24  # a price whose 5 % fee is not whole
    st, off = api("POST", "/v1/offers", {"pool_id": pool["id"], "gpus": 16, "start": iso(2),
                                         "end": iso(2 + 48), "price": P}, key=pkey)
    check(st == 201, f"offer {st} {off}")
    st, order = api("POST", "/v1/orders", {"kind": "reservation", "gpu_model": "H100", "region": "eu",
                                           "gpus": G, "start": iso(2), "hours": HOURS,
                                           "limit_price": 3_000_000}, key=bkey)
    check(st == 201 and order["status"] == "filled", f"order filled: {st} {order}")
    amount = P * G * HOURS
    hour_cost = P * G
    fee_h = hour_cost * 500 // 10000
    a0, h0 = bal(bkey)
    check((a0, h0) == (10_000_000_000 - amount, amount), f"escrow holds the contract: {(a0, h0)}")

    advance(2 * H + 5 * H)  # 5 hours delivered
    pa, ph = bal(pkey)
    check(pa == 5 * (hour_cost - fee_h) and ph == 0, f"provider paid 5 hours less fees: {pa} vs {5 * (hour_cost - fee_h)}")
    a1, h1 = bal(bkey)
    check(a1 == a0 and h1 == amount - 5 * hour_cost, f"buyer escrow down by 5 hours: {(a1, h1)}")
    st, ctr = api("GET", f"/v1/contracts/{order['contracts'][0]}", key=bkey)
    check(ctr["status"] == "active", f"contract active: {ctr['status']}")
    ledger_clean("after 5 hours")

    # kill -9 and restart in the middle: settlement resumes, nothing twice.
    os.kill(e.pid, signal.SIGKILL)
    e.up()
    check(bal(pkey) == (pa, ph), "restart changes no balance")

    advance(30 * 24 * H)  # the rest, in one jump
    pa, ph = bal(pkey)
    check(pa == HOURS * (hour_cost - fee_h), f"provider paid all {HOURS} hours: {pa} vs {HOURS * (hour_cost - fee_h)}")
    a2, h2 = bal(bkey)
    check(h2 == 0 and a2 == 10_000_000_000 - amount, f"buyer escrow empty: {(a2, h2)}")
    st, ctr = api("GET", f"/v1/contracts/{order['contracts'][0]}", key=bkey)
    check(ctr["status"] == "completed", f"contract completed: {ctr['status']}")
    st, tr = api("GET", "/v1/account/transfers?limit=500", key=pkey)
    kinds = sorted({t["kind"] for t in tr["data"]})
    check(kinds == ["delivery"], f"provider's transfers are deliveries: {kinds}")
    check(sum(t["amount"] for t in tr["data"]) == pa, "deliveries sum to the provider's balance")
    ledger_clean("after 30 days")
    advance(24 * H)
    check(bal(pkey) == (pa, ph), "settling again moves nothing")

    # Payout of everything earned for hours ending by the contract's end; once per period.
    st, po = api("POST", "/v1/admin/payouts", {"until": iso(2 + HOURS)})
    mine = [x for x in po.get("payouts", []) if x["provider_id"] == pid]
    check(st == 201 and mine and mine[0]["amount"] == pa, f"payout of the provider's earnings: {st} {po}")
    check(bal(pkey) == (0, 0), f"provider paid out: {bal(pkey)}")
    st, po2 = api("POST", "/v1/admin/payouts", {"until": iso(2 + HOURS)})
    mine = [x for x in po2.get("payouts", []) if x["provider_id"] == pid]
    check(st == 201 and mine and mine[0]["amount"] == 0 and mine[0]["already_paid"], f"same period again pays nothing: {po2}")
    st, po3 = api("POST", "/v1/admin/payouts", {"until": iso(10 ** 5)})
    check(st == 422, f"a period in the future is refused: {st}")
    ledger_clean("after payouts")

    # Spot: reserve 1.000000/GPU-hour for 4 GPUs; a bid of 4 GPUs at limit 2.5.
    st, so = api("POST", "/v1/offers", {"pool_id": pool["id"], "kind": "spot", "gpus": 4,
                                        "price": 1_000_000}, key=pkey)
    check(st == 201, f"spot offer {st} {so}")
    st, sb = api("POST", "/v1/orders", {"kind": "spot", "gpu_model": "H100", "region": "eu",
                                        "gpus": 4, "limit_price": 2_500_000}, key=skey)
    check(st == 201 and sb["status"] == "pending", f"spot bid {st} {sb}")
    hold = 2_500_000 * 4
    check(bal(skey) == (30_000_000 - hold, hold), f"spot hold of one hour: {bal(skey)}")
    now = api("GET", "/v1/clock")[1]["now"]
    # Advance to 90 s past the next whole hour: the bid runs from the first minute round.
    import datetime
    tnow = datetime.datetime.strptime(now, "%Y-%m-%dT%H:%M:%SZ")
    to_hour = H - (tnow.minute * 60 + tnow.second)
    advance(60)
    st, sb2 = api("GET", f"/v1/orders/{sb['id']}", key=skey)
    check(sb2["status"] == "running" and sb2["price"] == 1_000_000, f"spot running at the reserve: {sb2}")
    pa_before = bal(pkey)[0]
    advance(to_hour - 60 + 30)  # just past the hour boundary
    ran = to_hour - 60  # seconds metered before the boundary
    charge = 1_000_000 * 4 * ran // H
    fee = charge * 500 // 10000
    check(bal(pkey)[0] - pa_before == charge - fee, f"provider got the metered charge less fee: {bal(pkey)[0] - pa_before} vs {charge - fee}")
    sa, sh = bal(skey)
    check(sa == 30_000_000 - charge - hold and sh == hold, f"buyer charged {charge}, hold renewed: {(sa, sh)}")
    ledger_clean("after a spot hour")
    # The buyer can fund only a few more hours: then it is stopped, never on credit.
    advance(10 * H)
    st, sb3 = api("GET", f"/v1/orders/{sb['id']}", key=skey)
    sa, sh = bal(skey)
    check(sb3["status"] == "stopped", f"bid stopped when funds ran out: {sb3['status']}")
    check(sa >= 0 and sh == 0, f"no negative balance, no hold left: {(sa, sh)}")
    ledger_clean("after the stop")

    # The settlement report for the whole run ties to the ledger to the micro-dollar.
    st, rep = api("GET", f"/v1/admin/reports/settlement?from={T0}&to={iso(24 * 400)}")
    check(st == 200 and rep["ledger_check"]["matches"], f"report matches the ledger: {st} {rep.get('ledger_check')}")
    prov = [p for p in rep.get("providers", []) if p["provider_id"] == pid]
    spot_gross = sum(l["report"] for l in rep["ledger_check"]["lines"] if l["what"] == "fees")
    check(prov and prov[0]["gpu_hours_delivered"] == G * HOURS, f"provider's delivered GPU-hours: {prov}")
    res_gross = HOURS * hour_cost
    check(prov and prov[0]["gross"] > res_gross and prov[0]["fees"] >= HOURS * fee_h,
          f"provider gross covers the contract and spot: {prov}")
    check(prov and prov[0]["net"] == prov[0]["gross"] - prov[0]["fees"] - prov[0]["sla_credits_paid"],
          f"net = gross - fees - credits: {prov}")
    check(prov and prov[0]["paid_out"] == pa, f"paid out: {prov}")
    buy = [b for b in rep.get("buyers", []) if b["buyer_id"] == bid]
    check(buy and buy[0]["charged"] == amount and buy[0]["gpu_hours_reserved"] == G * HOURS and
          buy[0]["refunded"] == 0, f"buyer charged its contract, nothing refunded: {buy}")
    st, bad = api("GET", "/v1/admin/reports/settlement?from=2027-01-02T00:00:00Z&to=2027-01-01T00:00:00Z")
    check(st == 400, f"to before from: {st}")
finally:
    e.close()
done()
