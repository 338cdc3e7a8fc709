"""Spot money to the micro-dollar when a bid stops running inside an hour, on the simulated
clock: running bids pay the clearing price of each round (not the price they won at); a bid
cancelled mid-hour pays for the minutes it ran; a bid preempted mid-hour pays for its stretch
at once, to the provider of the pool it ran in, and takes a new hold; every charge is
floor(sum of price x gpus x seconds / 3,600) with the 5 % fee; the ledger stays clean."""
from capxtest import Env, check, done, need_env

need_env()

H = 3600
T0 = "2027-01-01T00:00:00Z"
FEE_BPS = 500


def charge(*stretches):
    """floor(sum of price x gpus x minutes x 60 / 3600) over (price, gpus, minutes)."""
    return sum(p * g * m * 60 for p, g, m in stretches) // H


e = Env("spotmoney", clock="sim:" + T0)
try:
    e.up()

    api, account = e.api, e.account

    def total(key):
        st, b = api("GET", "/v1/account", key=key)
        assert st == 200, b
        return b["balance"]["available"] + b["balance"]["held"]

    def held(key):
        return api("GET", "/v1/account", key=key)[1]["balance"]["held"]

    def advance(seconds):
        st, b = api("POST", "/v1/admin/clock", {"advance_seconds": seconds})
        assert st == 200, b

    def order(key, oid):
        st, b = api("GET", f"/v1/orders/{oid}", key=key)
        assert st == 200, b
        return b

    def bid(key, gpus, limit):
        st, b = api("POST", "/v1/orders", {"kind": "spot", "gpu_model": "H100", "region": "eu",
                                            "gpus": gpus, "limit_price": limit}, key=key)
        check(st == 201, f"spot bid: {st} {b}")
        return b["id"]

    def ledger_clean(what):
        st, b = api("GET", "/v1/admin/ledger/check")
        check(st == 200 and b["balanced"] and b["violations"] == [], f"{what}: ledger check {b}")

    # Two providers, one pool each in the same market: A (reserve 1.00) and B (reserve 1.50).
    pa_id, pa_key = account("prov-a", ["provider"])
    pb_id, pb_key = account("prov-b", ["provider"])
    pools = {}
    for name, key, reserve in (("a", pa_key, 1_000_000), ("b", pb_key, 1_500_000)):
        st, p = api("POST", "/v1/pools", {"name": name, "gpu_model": "H100", "region": "eu",
                                          "nodes": 1, "gpus_per_node": 4}, key=key)
        assert st == 201, p
        st, so = api("POST", "/v1/offers", {"pool_id": p["id"], "kind": "spot", "gpus": 4,
                                            "price": reserve}, key=key)
        check(st == 201, f"spot offer {name}: {st} {so}")
        pools[name] = p["id"]
    y_id, y_key = account("y", ["buyer"], 100_000_000)
    z_id, z_key = account("z", ["buyer"], 100_000_000)
    w_id, w_key = account("w", ["buyer"], 100_000_000)

    # 00:00 Y bids 4 GPUs at 3.00; the 00:01 round runs it in A, alone: P = A's reserve.
    y = bid(y_key, 4, 3_000_000)
    advance(60)
    oy = order(y_key, y)
    check(oy["status"] == "running" and oy["price"] == 1_000_000, f"Y runs at 1.00: {oy}")

    # 00:11 Z bids 4 GPUs at 2.00: the 00:12 round runs it in B, and P = 1.50 for both.
    advance(600)
    z = bid(z_key, 4, 2_000_000)
    advance(60)
    oz, oy = order(z_key, z), order(y_key, y)
    check(oz["status"] == "running" and oz["price"] == 1_500_000, f"Z runs in B at 1.50: {oz}")
    check(oy["status"] == "running" and oy["price"] == 1_500_000,
          f"Y, still running, pays the new round's price 1.50: {oy}")

    # 00:17 Z cancels after 5 minutes at 1.50: it pays them now, and B's provider is paid.
    advance(300)
    z_before, pb_before = total(z_key), total(pb_key)
    st, cz = api("DELETE", f"/v1/orders/{z}", key=z_key)
    check(st == 200 and cz["status"] == "cancelled", f"Z cancelled: {st} {cz}")
    cz_amt = charge((1_500_000, 4, 5))
    check(z_before - total(z_key) == cz_amt, f"Z charged {z_before - total(z_key)} for its 5 minutes, "
                                               f"want {cz_amt}")
    check(held(z_key) == 0, f"Z holds nothing after the cancel: {held(z_key)}")
    check(total(pb_key) - pb_before == cz_amt - cz_amt * FEE_BPS // 10000,
          f"B's provider got {total(pb_key) - pb_before}, want {cz_amt - cz_amt * FEE_BPS // 10000}")
    ledger_clean("after a mid-hour cancel")

    # 00:17 W bids 4 GPUs at 5.00: the 00:18 round gives W pool A, and Y is outbid. Y ran
    # 11 minutes at 1.00 (ending 00:02 .. 00:12) and 6 at 1.50 (00:13 .. 00:18), all in A:
    # charged at once, to A's provider, and Y holds an hour again since it bids on.
    w = bid(w_key, 4, 5_000_000)
    y_before, pa_before = total(y_key), total(pa_key)
    advance(60)
    oy, ow = order(y_key, y), order(w_key, w)
    check(ow["status"] == "running", f"W runs: {ow}")
    check(oy["status"] == "preempted", f"Y preempted: {oy}")
    cy_amt = charge((1_000_000, 4, 11), (1_500_000, 4, 6))
    check(y_before - total(y_key) == cy_amt, f"Y charged {y_before - total(y_key)} at the preemption, "
                                               f"want {cy_amt}")
    check(total(pa_key) - pa_before == cy_amt - cy_amt * FEE_BPS // 10000,
          f"A's provider got {total(pa_key) - pa_before}, want {cy_amt - cy_amt * FEE_BPS // 10000}")
    check(held(y_key) == 3_000_000 * 4, f"Y holds a new hour at its limit: {held(y_key)}")
    ledger_clean("after a preemption")

    # Y bids on and runs in B once its notice is over; the hour's charges go to whichever pool
    # each bid ran in. Nothing is created or lost: what the buyers paid is what the providers
    # and the fee account got (the ledger check), and the next hour's holds are in place.
    advance(H)
    oy = order(y_key, y)
    check(oy["status"] == "running", f"Y runs again after its notice: {oy}")
    paid = sum(100_000_000 - total(k) for k in (y_key, z_key, w_key))
    got = total(pa_key) + total(pb_key)
    check(0 < got < paid, f"providers got {got} of the {paid} the buyers paid (the rest is fees)")
    ledger_clean("after the hour")
    for k, oid in ((y_key, y), (w_key, w)):
        st, c = api("DELETE", f"/v1/orders/{oid}", key=k)
        check(st == 200, f"cancel {oid}: {st} {c}")
        check(held(k) == 0, f"nothing held after cancelling {oid}: {held(k)}")
    ledger_clean("after all cancels")
finally:
    e.close()
done()
