"""Lending idle reserved GPUs: a holder who orders with lend_idle lets spot run on the GPUs its
jobs leave idle, and what spot pays for them goes to the holder, less the platform fee; the
pool's provider gets nothing for those GPUs (it was paid for the reservation)."""
import datetime

from capxtest import Env, check, done, need_env

need_env()
H = 3600
T0 = datetime.datetime(2027, 1, 1, tzinfo=datetime.timezone.utc)


def iso(h):
    return (T0 + datetime.timedelta(hours=h)).strftime("%Y-%m-%dT%H:%M:%SZ")


e = Env("lend", clock="sim:2027-01-01T00:00:00Z")
try:
    e.up()

    def api(method, path, body=None, key="admin"):
        st, _, b = e.req(method, path, body, key=key)
        return st, b

    def account(name, roles, deposit=0):
        st, b = api("POST", "/v1/accounts", {"name": name, "roles": roles})
        assert st == 201, b
        if deposit:
            api("POST", f"/v1/accounts/{b['id']}/deposits", {"amount": deposit})
        return b["id"], b["api_key"]

    pid, pkey = account("prov", ["provider"])
    hid, hkey = account("holder", ["buyer"], 10_000_000_000)
    sid, skey = account("spotter", ["buyer"], 1_000_000_000)
    st, pool = api("POST", "/v1/pools", {"name": "one", "gpu_model": "A100", "region": "eu",
                                         "nodes": 1, "gpus_per_node": 8}, key=pkey)
    st, off = api("POST", "/v1/offers", {"pool_id": pool["id"], "gpus": 8, "start": iso(1),
                                         "end": iso(49), "price": 2_000_000}, key=pkey)
    st, order = api("POST", "/v1/orders", {"kind": "reservation", "gpu_model": "A100", "region": "eu",
                                           "gpus": 8, "start": iso(1), "hours": 48,
                                           "limit_price": 2_000_000, "lend_idle": True}, key=hkey)
    check(st == 201 and order["status"] == "filled", f"holder's lending order filled: {st} {order}")
    st, so = api("POST", "/v1/offers", {"pool_id": pool["id"], "kind": "spot", "gpus": 8,
                                        "price": 1_000_000}, key=pkey)
    check(st == 201, f"spot offer: {st} {so}")
    st, bid = api("POST", "/v1/orders", {"kind": "spot", "gpu_model": "A100", "region": "eu",
                                         "gpus": 4, "limit_price": 1_500_000}, key=skey)
    check(st == 201, f"spot bid: {st} {bid}")
    api("POST", "/v1/admin/clock", {"advance_seconds": H + 60})  # contract active, a round run
    st, b2 = api("GET", f"/v1/orders/{bid['id']}", key=skey)
    check(b2.get("status") == "running", f"spot runs on the holder's idle GPUs: {b2}")
    before_h = api("GET", "/v1/account", key=hkey)[1]["balance"]["available"]
    before_p = api("GET", "/v1/account", key=pkey)[1]["balance"]["available"]
    api("POST", "/v1/admin/clock", {"advance_seconds": H})  # one more hour boundary
    ran = H  # it runs through [01:00, 02:00): the round at 01:00 put it on the lent GPUs
    charge = b2["price"] * 4 * ran // H
    fee = charge * 500 // 10000
    after_h = api("GET", "/v1/account", key=hkey)[1]["balance"]["available"]
    after_p = api("GET", "/v1/account", key=pkey)[1]["balance"]["available"]
    check(after_h - before_h == charge - fee,
          f"holder credited what spot paid for its lent GPUs less the fee: {after_h - before_h} vs {charge - fee}")
    delivered_hour = 2_000_000 * 8 - (2_000_000 * 8 * 500 // 10000)
    check(after_p - before_p == delivered_hour,
          f"provider gets its reservation hour only: {after_p - before_p} vs {delivered_hour}")
    st, tr = api("GET", "/v1/account/transfers", key=hkey)
    kinds = [t["kind"] for t in tr["data"] if t["direction"] == "in"]
    check("spot_delivery" in kinds, f"the holder's income is a spot delivery: {kinds}")
    st, chk = api("GET", "/v1/admin/ledger/check")
    check(chk["balanced"] and chk["violations"] == [], f"ledger check: {chk}")
    st, rep = api("GET", f"/v1/admin/reports/settlement?from={iso(0)}&to={iso(1000)}")
    check(st == 200 and rep["ledger_check"]["matches"], f"report ties to the ledger: {rep.get('ledger_check')}")
    # The holder earned as a lender: it is among the report's earners, and the totals hold its
    # spot gross and fee as the ledger lines do.
    lender = [p for p in rep.get("providers", []) if p["provider_id"] == hid]
    check(lender and lender[0]["gross"] >= charge and lender[0]["fees"] >= fee,
          f"the lender is in the report with its spot earnings: {lender}")
    check(rep["totals"]["gross"] == sum(p["gross"] for p in rep["providers"]) and
          rep["totals"]["fees"] == sum(p["fees"] for p in rep["providers"]),
          f"totals are the sum of every earner's: {rep['totals']}")
    fees_line = [x for x in rep["ledger_check"]["lines"] if x["what"] == "fees"]
    check(fees_line and fees_line[0]["report"] == rep["totals"]["fees"],
          f"the totals' fees equal the ledger's fee line: {fees_line} {rep['totals']}")
finally:
    e.close()
done()
