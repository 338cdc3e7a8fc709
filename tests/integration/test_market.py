"""A market day, black-box, strictly from the contract (../shared/api.md = docs/api.md).

Two providers with pools and offers, three buyers with deposits, a simulated clock that
starts at 2027-01-01T00:00:00Z. Reservation orders that fill whole, across two pools, in a
flexible window (latest_start), not at all (rest, then fill when a new offer arrives),
partially (the remainder rests with its own hold, then is cancelled); ioc orders; cancels;
quotes that change nothing; contracts visible to their buyer and provider only, one per
price, amount = price x gpus x hours; market data; an order that expires at its start; spot
bids that win (after a minute), lose (below the reserve, or no room), and get preempted
when a reservation starts. Every balance is checked to the micro-dollar after every step;
ledger/check is clean at the end.

Assumptions where the contract leaves a detail open (each is marked ASSUMPTION below):
  * A fill posts the contracts' amounts from the hold into escrow (the buyer's `held`) and
    releases the rest of that hold; a partially filled order that keeps resting holds
    limit_price x (gpus - filled_gpus) x hours (issue 5).
  * Reservation matching takes the cheapest pools first, and among the starts of a flexible
    window prefers the cheapest fill, then the earliest start (every case below has one
    right answer under any sensible rule: each piece is within the limit, and cheaper
    supply is never skipped for dearer supply).
  * No reservation hour is paid to a provider before it has been delivered (an hour is
    metered at its end), so balances stay exact at the moment a contract becomes active.
  * The spot auction serves the highest limits first; spot running charges are not
    specified, so a spot buyer's spend is only bounded: 0 <= spend <= its hold.
  * `GET /v1/markets/{m}/book` answers {"asks": [{"price", "gpus", ...}], "bids": [...], ...}
    (the contract says "aggregated ... by price level" without naming the fields).
  * `GET /v1/markets/{m}/trades` is a list in the contract's list shape {"data": [...]}.
"""
import datetime
import http.client
import json
import re
import sys
import traceback

from capxtest import Env, check, done, need_env, is_error_body

need_env()

USD = 1_000_000
MODEL = "H100-SXM-80GB"
WEST, EU = "us-west", "eu-north"
ID_RE = {p: re.compile("^" + p + "_[A-Za-z0-9]+$") for p in
         ("acct", "key", "pool", "ofr", "ord", "ctr", "txn", "trd")}


class Fatal(Exception):
    """A step the rest of the scenario depends on failed."""


def must(cond, what):
    if not check(cond, what):
        raise Fatal(what)


def t(day, hour=0, minute=0):
    return f"2027-01-{day:02d}T{hour:02d}:{minute:02d}:00Z"


class Api:
    """Requests over one keep-alive connection (GETs are retried once on a dropped connection;
    POST/DELETE use a fresh connection each so that nothing is ever sent twice)."""

    def __init__(self, env):
        self.env = env
        self.c = None

    def __call__(self, method, path, body=None, key="admin", headers=None):
        if method != "GET":
            return self.env.req(method, path, body, key=key, headers=headers)
        for attempt in (0, 1):
            if self.c is None:
                self.c = self.env.conn(timeout=30)
            try:
                return self.env.req(method, path, body, key=key, headers=headers, conn=self.c)
            except (http.client.HTTPException, OSError):
                self.c.close()
                self.c = None
                if attempt:
                    raise


def create_account(api, name, roles):
    st, _, b = api("POST", "/v1/accounts", {"name": name, "roles": roles})
    must(st == 201 and isinstance(b, dict), f"create account {name}: {st} {b}")
    check(ID_RE["acct"].match(b.get("id", "")) and b.get("name") == name and
          sorted(b.get("roles", [])) == sorted(roles), f"account fields: {b}")
    must(re.match(r"^capx_[a-z2-7]{32}$", b.get("api_key", "")), f"api key format: {b}")
    return b["id"], b["api_key"]


def deposit(api, acct, amount):
    st, _, b = api("POST", f"/v1/accounts/{acct}/deposits", {"amount": amount})
    must(st == 201 and b.get("account_id") == acct and b.get("amount") == amount and
         ID_RE["txn"].match(b.get("id", "")), f"deposit {amount} to {acct}: {st} {b}")
    return b


def balance(api, key):
    st, _, b = api("GET", "/v1/account", key=key)
    must(st == 200 and isinstance(b, dict) and isinstance(b.get("balance"), dict),
         f"GET /v1/account: {st} {b}")
    return b["balance"].get("available"), b["balance"].get("held")


def create_pool(api, key, name, region, nodes, gpn, npr):
    body = {"name": name, "gpu_model": MODEL, "region": region, "nodes": nodes,
            "gpus_per_node": gpn, "nodes_per_rack": npr}
    st, _, b = api("POST", "/v1/pools", body, key=key)
    must(st == 201, f"create pool {name}: {st} {b}")
    check(ID_RE["pool"].match(b.get("id", "")) and b.get("gpus") == nodes * gpn and
          all(b.get(k) == v for k, v in body.items()), f"pool fields: {b}")
    return b["id"]


def create_offer(api, key, pool, gpus, start, end, price):
    body = {"pool_id": pool, "gpus": gpus, "start": start, "end": end, "price": price}
    st, _, b = api("POST", "/v1/offers", body, key=key)
    must(st == 201, f"offer {body}: {st} {b}")
    check(ID_RE["ofr"].match(b.get("id", "")) and b.get("kind") == "reservation" and
          b.get("status") == "open" and all(b.get(k) == v for k, v in body.items()) and
          isinstance(b.get("sold_gpu_hours"), int), f"offer fields: {b}")
    return b["id"]


def order_body(gpus, start, hours, limit, region=WEST, **opt):
    b = {"kind": "reservation", "gpu_model": MODEL, "region": region, "gpus": gpus,
         "start": start, "hours": hours, "limit_price": limit}
    b.update(opt)
    return b


def place(api, key, body, status, filled, ncontracts):
    st, _, b = api("POST", "/v1/orders", body, key=key)
    must(st == 201 and isinstance(b, dict), f"order {body}: {st} {b}")
    check(ID_RE["ord"].match(b.get("id", "")) and b.get("kind") == body["kind"] and
          b.get("gpus") == body["gpus"] and b.get("limit_price") == body["limit_price"],
          f"order fields: {b}")
    check(b.get("status") == status, f"order {body}: expected status {status}, got {b}")
    if body["kind"] == "reservation":
        check(b.get("filled_gpus") == filled and isinstance(b.get("contracts"), list) and
              len(b["contracts"]) == ncontracts,
              f"order {body}: expected filled {filled} with {ncontracts} contracts, got {b}")
        check(b.get("hours") == body["hours"] and isinstance(b.get("start"), str) and
              isinstance(b.get("hold"), int), f"reservation order fields: {b}")
    return b


def get_order(api, key, oid):
    st, _, b = api("GET", f"/v1/orders/{oid}", key=key)
    must(st == 200 and b.get("id") == oid, f"GET order {oid}: {st} {b}")
    return b


def cancel(api, key, oid):
    st, _, b = api("DELETE", f"/v1/orders/{oid}", key=key)
    must(st == 200 and b.get("id") == oid and b.get("status") == "cancelled",
         f"cancel {oid}: {st} {b}")
    return b


def sold(api, key, oid):
    st, _, b = api("GET", f"/v1/offers/{oid}", key=key)
    must(st == 200, f"GET offer {oid}: {st} {b}")
    return b.get("sold_gpu_hours")


def contract(api, key, cid):
    st, _, b = api("GET", f"/v1/contracts/{cid}", key=key)
    must(st == 200 and b.get("id") == cid, f"GET contract {cid}: {st} {b}")
    return b


def list_all(api, key, path):
    """Every item of a list endpoint, following cursors."""
    out, cursor = [], None
    for _ in range(100):
        sep = "&" if "?" in path else "?"
        p = path + (f"{sep}cursor={cursor}" if cursor else "")
        st, _, b = api("GET", p, key=key)
        must(st == 200 and isinstance(b, dict) and isinstance(b.get("data"), list) and
             "next_cursor" in b, f"list {p}: {st} {b}")
        out += b["data"]
        cursor = b["next_cursor"]
        if cursor is None:
            return out
    raise Fatal(f"list {path} never ends")


def advance(api, seconds, expect_now):
    st, _, b = api("POST", "/v1/admin/clock", {"advance_seconds": seconds})
    must(st == 200 and b == {"now": expect_now, "mode": "simulated"},
         f"advance {seconds}s: {st} {b} (expected now {expect_now})")


def pieces_of(q):
    """A quote's pieces as sorted (pool_id, gpus, start, end, price) tuples."""
    if not isinstance(q, dict) or not isinstance(q.get("pieces"), list):
        return None
    return sorted((x.get("pool_id"), x.get("gpus"), x.get("start"), x.get("end"), x.get("price"))
                  for x in q["pieces"])


def hours_between(a, b):
    f = "%Y-%m-%dT%H:%M:%SZ"
    return int((datetime.datetime.strptime(b, f) - datetime.datetime.strptime(a, f)).total_seconds()) // 3600


def market_row(api, key, region):
    st, _, b = api("GET", "/v1/markets", key=key)
    must(st == 200 and isinstance(b.get("data"), list), f"GET /v1/markets: {st} {b}")
    rows = [r for r in b["data"] if r.get("gpu_model") == MODEL and r.get("region") == region]
    must(len(rows) == 1, f"one market row for {MODEL}/{region}: {b}")
    check(all(k in rows[0] for k in ("best_ask", "best_bid", "spot_price", "last_price")),
          f"market row fields: {rows[0]}")
    return rows[0]


e = Env("market", clock="sim:2027-01-01T00:00:00Z")
try:
    e.up()
    api = Api(e)
    exp = {}     # account name -> [available, held], what the contract implies
    keys = {}

    def bal_check(step, names=None):
        for n in names or exp:
            got = balance(api, keys[n])
            check(list(got) == exp[n], f"{step}: balance of {n}: got available/held {got}, "
                                       f"expected {exp[n]}")

    def hold(n, amount):          # an order accepted: its hold moves available -> held
        exp[n][0] -= amount
        exp[n][1] += amount

    def release(n, amount):       # a hold (or part of one) released
        exp[n][0] += amount
        exp[n][1] -= amount

    # ---- accounts and deposits
    p1, keys["P1"] = create_account(api, "prov-one", ["provider"])
    p2, keys["P2"] = create_account(api, "prov-two", ["provider"])
    ids = {"P1": p1, "P2": p2}
    for n, amt in (("A", 1000 * USD), ("B", 1000 * USD), ("C", 500 * USD)):
        ids[n], keys[n] = create_account(api, f"buyer-{n.lower()}", ["buyer"])
        deposit(api, ids[n], amt)
        exp[n] = [amt, 0]
    exp["P1"], exp["P2"] = [0, 0], [0, 0]
    bal_check("after deposits")
    st, _, me = api("GET", "/v1/account", key=keys["A"])
    check(me.get("id") == ids["A"] and me.get("name") == "buyer-a" and me.get("roles") == ["buyer"],
          f"GET /v1/account: {me}")
    tr = list_all(api, keys["A"], "/v1/account/transfers")
    check(len(tr) == 1 and tr[0].get("amount") == 1000 * USD and tr[0].get("direction") == "in" and
          tr[0].get("status") == "posted" and ID_RE["txn"].match(tr[0].get("id", "")),
          f"A's transfers after the deposit: {tr}")

    # ---- pools and offers
    wa = create_pool(api, keys["P1"], "west-a", WEST, 4, 8, 2)      # 32 GPUs, provider 1
    wb = create_pool(api, keys["P2"], "west-b", WEST, 2, 8, 2)      # 16 GPUs, provider 2
    eu = create_pool(api, keys["P2"], "eu-spot", EU, 2, 8, 1)       # 16 GPUs, provider 2
    pools1 = list_all(api, keys["P1"], "/v1/pools")
    pools2 = list_all(api, keys["P2"], "/v1/pools")
    check([p["id"] for p in pools1] == [wa], f"P1 sees only its pool: {pools1}")
    check(sorted(p["id"] for p in pools2) == sorted([wb, eu]), f"P2 sees its two pools: {pools2}")
    st, _, b = api("GET", f"/v1/pools/{wb}", key=keys["P1"])
    check(st == 404 and is_error_body(b, "not_found"), f"P1 reads P2's pool: {st} {b}")

    o1 = create_offer(api, keys["P1"], wa, 32, t(2), t(3), 2_000_000)
    o2 = create_offer(api, keys["P2"], wb, 16, t(2), t(3), 2_500_000)
    bal_check("after offers")

    # ---- 1. an order that fills whole, in one pool; a quote first changes nothing
    body1 = order_body(8, t(2), 4, 3_000_000)
    st, _, q = api("POST", "/v1/quotes", body1, key=keys["A"])
    check(st == 200 and q.get("fillable") is True and q.get("total") == 64 * USD and
          pieces_of(q) == [(wa, 8, t(2), t(2, 4), 2_000_000)], f"quote 1: {st} {q}")
    bal_check("after quote 1")
    check(sold(api, keys["P1"], o1) == 0, "a quote sells nothing")
    check(list_all(api, keys["A"], "/v1/orders") == [], "a quote creates no order")

    r1 = place(api, keys["A"], body1, "filled", 8, 1)
    hold("A", 96 * USD)            # 3.00 x 8 x 4
    release("A", 96 * USD - 64 * USD)  # filled at 2.00: 64 stays in escrow
    bal_check("order 1 filled whole")
    c1 = contract(api, keys["A"], r1["contracts"][0])
    check({k: c1.get(k) for k in ("order_id", "offer_id", "pool_id", "buyer_id", "provider_id",
                                   "gpus", "start", "end", "price", "amount", "status")} ==
          {"order_id": r1["id"], "offer_id": o1, "pool_id": wa, "buyer_id": ids["A"],
           "provider_id": ids["P1"], "gpus": 8, "start": t(2), "end": t(2, 4), "price": 2_000_000,
           "amount": 64 * USD, "status": "scheduled"}, f"contract 1: {c1}")
    # ASSUMPTION: placement on nodes is issue 7's; until a contract is placed it is [], once
    # placed it covers all the contract's GPUs.
    check(isinstance(c1.get("placement"), list) and
          sum(p.get("gpus", 0) for p in c1["placement"]) in (0, 8) and c1.get("lost_gpu_hours") == 0,
          f"contract 1 placement: {c1}")
    check(contract(api, keys["P1"], c1["id"]) == c1, "the provider sees the same contract")
    for n in ("B", "C", "P2"):
        st, _, b = api("GET", f"/v1/contracts/{c1['id']}", key=keys[n])
        check(st == 404 and is_error_body(b, "not_found"), f"{n} cannot see A's contract: {st} {b}")
    st, _, b = api("GET", f"/v1/orders/{r1['id']}", key=keys["B"])
    check(st == 404 and is_error_body(b, "not_found"), f"B cannot see A's order: {st} {b}")
    check(get_order(api, keys["A"], r1["id"])["status"] == "filled", "order 1 reads back filled")
    check(sold(api, keys["P1"], o1) == 32, "offer 1 sold 8 x 4 GPU-hours")

    # ---- 2. an order that fills across two pools at two prices: two contracts
    body2 = order_body(40, t(2), 2, 3_000_000)
    st, _, q = api("POST", "/v1/quotes", body2, key=keys["B"])
    check(st == 200 and q.get("fillable") is True and q.get("total") == 176 * USD and
          pieces_of(q) == sorted([(wa, 24, t(2), t(2, 2), 2_000_000), (wb, 16, t(2), t(2, 2), 2_500_000)]),
          f"quote 2: {st} {q}")
    bal_check("after quote 2")
    st, _, q = api("POST", "/v1/quotes", dict(body2, single_pool=True), key=keys["B"])
    check(st == 200 and q.get("fillable") is False, f"40 GPUs in a single pool do not exist: {st} {q}")
    check(sold(api, keys["P1"], o1) == 32 and sold(api, keys["P2"], o2) == 0, "quote 2 sold nothing")
    r2 = place(api, keys["B"], body2, "filled", 40, 2)
    hold("B", 240 * USD)           # 3.00 x 40 x 2
    release("B", 240 * USD - 176 * USD)   # 24 x 2 x 2.00 + 16 x 2 x 2.50
    bal_check("order 2 filled across two pools")
    c2 = {c["pool_id"]: c for c in (contract(api, keys["B"], cid) for cid in r2["contracts"])}
    check(set(c2) == {wa, wb}, f"order 2: one contract per pool/price: {c2}")
    if set(c2) == {wa, wb}:
        check((c2[wa]["gpus"], c2[wa]["price"], c2[wa]["amount"], c2[wa]["provider_id"],
               c2[wa]["offer_id"]) == (24, 2_000_000, 96 * USD, ids["P1"], o1),
              f"order 2 contract in west-a: {c2[wa]}")
        check((c2[wb]["gpus"], c2[wb]["price"], c2[wb]["amount"], c2[wb]["provider_id"],
               c2[wb]["offer_id"]) == (16, 2_500_000, 80 * USD, ids["P2"], o2),
              f"order 2 contract in west-b: {c2[wb]}")
        for c in c2.values():
            check(c["start"] == t(2) and c["end"] == t(2, 2) and c["buyer_id"] == ids["B"] and
                  c["order_id"] == r2["id"], f"order 2 contract: {c}")
        st, _, b = api("GET", f"/v1/contracts/{c2[wa]['id']}", key=keys["P2"])
        check(st == 404, f"P2 cannot see the west-a contract: {st}")
        st, _, b = api("GET", f"/v1/contracts/{c2[wb]['id']}", key=keys["P2"])
        check(st == 200, f"P2 sees the west-b contract: {st}")
    check(sold(api, keys["P1"], o1) == 32 + 48 and sold(api, keys["P2"], o2) == 32,
          "offers' sold GPU-hours after order 2")

    # ---- 3. a flexible window: hours 0-1 are sold out, the order moves to 02:00; the
    #         2.50 pool is over its limit and must not be used
    body3 = order_body(16, t(2), 3, 2_200_000, latest_start=t(2, 6))
    r3 = place(api, keys["C"], body3, "filled", 16, 1)
    hold("C", 105_600_000)         # 2.20 x 16 x 3
    release("C", 105_600_000 - 96 * USD)  # 16 x 3 x 2.00
    bal_check("order 3 filled in its window")
    c3 = contract(api, keys["C"], r3["contracts"][0])
    check((c3.get("pool_id"), c3.get("start"), c3.get("end"), c3.get("gpus"), c3.get("price"),
           c3.get("amount")) == (wa, t(2, 2), t(2, 5), 16, 2_000_000, 96 * USD),
          f"order 3 contract: the earliest start with room, 02:00-05:00 in west-a: {c3}")
    check(sold(api, keys["P1"], o1) == 128, "offer 1 sold 128 GPU-hours")

    # ---- 4. an order that rests (no supply in its hours), then fills when an offer arrives
    body4 = order_body(16, t(3), 2, 2_600_000)
    r4 = place(api, keys["A"], body4, "open", 0, 0)
    check(r4.get("hold") == 83_200_000, f"a resting order's hold is limit x gpus x hours: {r4}")
    hold("A", 83_200_000)          # 2.60 x 16 x 2
    bal_check("order 4 rests")
    st, _, q = api("POST", "/v1/quotes", body4, key=keys["A"])
    check(st == 200 and q.get("fillable") is False and q.get("pieces") == [],
          f"quote for an unfillable order: {st} {q}")
    opn = list_all(api, keys["A"], "/v1/orders?status=open")
    check([o["id"] for o in opn] == [r4["id"]], f"A's open orders: {opn}")
    check(market_row(api, keys["B"], WEST).get("best_bid") == 2_600_000, "best bid 2.60 while it rests")
    o3 = create_offer(api, keys["P2"], wb, 16, t(3), t(3, 12), 2_400_000)
    g4 = get_order(api, keys["A"], r4["id"])
    check(g4.get("status") == "filled" and g4.get("filled_gpus") == 16 and len(g4.get("contracts", [])) == 1,
          f"order 4 filled by the new offer: {g4}")
    release("A", 83_200_000 - 76_800_000)   # 16 x 2 x 2.40 in escrow
    bal_check("order 4 filled by a new offer")
    must(len(g4.get("contracts", [])) == 1, "order 4 has its contract")
    c4 = contract(api, keys["A"], g4["contracts"][0])
    check((c4.get("offer_id"), c4.get("pool_id"), c4.get("provider_id"), c4.get("start"),
           c4.get("end"), c4.get("price"), c4.get("amount")) ==
          (o3, wb, ids["P2"], t(3), t(3, 2), 2_400_000, 76_800_000), f"order 4 contract: {c4}")
    check(sold(api, keys["P2"], o3) == 32, "offer 3 sold 32 GPU-hours")
    check(market_row(api, keys["B"], WEST).get("last_price") == 2_400_000, "last price 2.40")

    # ---- 5. a partial fill: 8 of 24 GPUs; the remainder rests holding its own share, then
    #         is cancelled (its hold released, the contract stays)
    o4 = create_offer(api, keys["P1"], wa, 8, t(3), t(4), 2_800_000)
    body5 = order_body(24, t(3), 2, 3_000_000, all_or_none=False)
    r5 = place(api, keys["B"], body5, "partially_filled", 8, 1)
    # ASSUMPTION (issue 5): escrow 8 x 2 x 2.80 = 44.80; remainder hold 3.00 x 16 x 2 = 96.
    # (r5["hold"] may be either the original or the remaining hold: not checked.)
    hold("B", 44_800_000 + 96 * USD)
    bal_check("order 5 partially filled, remainder resting")
    lst = list_all(api, keys["B"], "/v1/orders?status=partially_filled")
    check([o["id"] for o in lst] == [r5["id"]], f"B's partially filled orders: {lst}")
    c5 = contract(api, keys["B"], r5["contracts"][0])
    check((c5.get("offer_id"), c5.get("gpus"), c5.get("price"), c5.get("amount")) ==
          (o4, 8, 2_800_000, 44_800_000), f"order 5 contract: {c5}")
    x5 = cancel(api, keys["B"], r5["id"])
    check(x5.get("filled_gpus") == 8 and x5.get("contracts") == r5["contracts"],
          f"a cancelled partial order keeps its fill: {x5}")
    release("B", 96 * USD)
    bal_check("order 5 remainder cancelled")
    check(contract(api, keys["B"], c5["id"]).get("status") == "scheduled", "its contract stays")
    st, _, b = api("DELETE", f"/v1/orders/{r5['id']}", key=keys["B"])
    check(st == 409 and is_error_body(b, "conflict"), f"cancel twice: {st} {b}")
    bal_check("after the refused second cancel")

    # ---- 6. ioc: nothing available -> cancelled, no money moves; then one that fills
    r6 = place(api, keys["C"], order_body(8, t(3), 2, 3_000_000, time_in_force="ioc"), "cancelled", 0, 0)
    bal_check("ioc with nothing to fill")
    r6b = place(api, keys["C"], order_body(8, t(3, 4), 2, 3_000_000, time_in_force="ioc"), "filled", 8, 1)
    hold("C", 48 * USD)
    release("C", 48 * USD - 38_400_000)   # the cheaper pool: west-b at 2.40 (west-a is 2.80)
    bal_check("ioc filled")

    # ---- cancelling an offer: hours sold stay sold, the rest is no longer for sale
    body_q = order_body(24, t(3, 2), 2, 3_000_000)
    st, _, q = api("POST", "/v1/quotes", body_q, key=keys["C"])
    check(st == 200 and q.get("fillable") is True and q.get("total") == 121_600_000 and
          pieces_of(q) == sorted([(wb, 16, t(3, 2), t(3, 4), 2_400_000), (wa, 8, t(3, 2), t(3, 4), 2_800_000)]),
          f"quote over west-b and west-a on Jan 3: {st} {q}")
    st, _, x = api("DELETE", f"/v1/offers/{o4}", key=keys["P1"])
    check(st == 200 and x.get("id") == o4 and x.get("status") == "cancelled", f"cancel offer 4: {st} {x}")
    st, _, x = api("GET", f"/v1/offers/{o4}", key=keys["P1"])
    check(st == 200 and x.get("status") == "cancelled" and x.get("sold_gpu_hours") == 16,
          f"a cancelled offer keeps its sold hours: {st} {x}")
    check(contract(api, keys["B"], c5["id"]).get("status") == "scheduled", "the contract under it stays")
    st, _, q = api("POST", "/v1/quotes", body_q, key=keys["C"])
    check(st == 200 and q.get("fillable") is False, f"the cancelled offer sells nothing more: {st} {q}")
    st, _, x = api("DELETE", f"/v1/offers/{o4}", key=keys["P1"])
    check(st in (404, 409), f"cancel a cancelled offer: {st} {x}")
    offs = list_all(api, keys["P1"], "/v1/offers")
    check(sorted(o["id"] for o in offs) == sorted([o1, o4]), f"P1's offers: {offs}")
    bal_check("after the offer was cancelled")
    c6 = contract(api, keys["C"], r6b["contracts"][0])
    check((c6.get("offer_id"), c6.get("price"), c6.get("amount"), c6.get("start"), c6.get("end")) ==
          (o3, 2_400_000, 38_400_000, t(3, 4), t(3, 6)), f"ioc contract: {c6}")

    # ---- 7. an order under every ask: rests; the book; then cancelled
    body7 = order_body(8, t(2, 6), 1, 1_000_000)
    r7 = place(api, keys["C"], body7, "open", 0, 0)
    hold("C", 8 * USD)
    bal_check("order 7 rests under the asks")
    row = market_row(api, keys["A"], WEST)
    check(row.get("best_bid") == 1_000_000 and row.get("last_price") == 2_400_000,
          f"market row for us-west: {row}")
    st, _, book = api("GET", f"/v1/markets/{MODEL}/book?region={WEST}&start={t(2, 6)}&end={t(2, 7)}",
                      key=keys["B"])
    ok = st == 200 and isinstance(book, dict) and isinstance(book.get("asks"), list) and \
        isinstance(book.get("bids"), list)
    check(ok, f"book: {st} {book}")
    if ok:
        asks = [(x.get("price"), x.get("gpus")) for x in book["asks"]]
        bids = [(x.get("price"), x.get("gpus")) for x in book["bids"]]
        check(asks == [(2_000_000, 32), (2_500_000, 16)], f"asks at 06:00 on Jan 2 (lowest first): {asks}")
        check(bids == [(1_000_000, 8)], f"bids: {bids}")
    cancel(api, keys["C"], r7["id"])
    release("C", 8 * USD)
    bal_check("order 7 cancelled")

    # ---- 8. an order that will expire at its start (01:00 today; no supply then)
    r8 = place(api, keys["A"], order_body(8, t(1, 1), 1, 1_000_000), "open", 0, 0)
    hold("A", 8 * USD)
    bal_check("order 8 rests")

    # ---- contracts: each visible to its buyer and its provider, nobody else
    all_c = {"A": {c1["id"], c4["id"]}, "B": set(r2["contracts"]) | {c5["id"]},
             "C": {c3["id"], c6["id"]}}
    prov_c = {"P1": {c1["id"], c3["id"], c5["id"]} | {c2[wa]["id"]},
              "P2": {c2[wb]["id"], c4["id"], c6["id"]}}
    for n, want in list(all_c.items()) + list(prov_c.items()):
        got = list_all(api, keys[n], "/v1/contracts")
        check({c["id"] for c in got} == want and len(got) == len(want),
              f"{n}'s contracts: {[c['id'] for c in got]} expected {sorted(want)}")
        for c in got:
            check(c["amount"] == c["price"] * c["gpus"] * hours_between(c["start"], c["end"]),
                  f"amount = price x gpus x hours: {c}")
    # trades: every fill, no account ids
    # The contract's trades route takes no parameter; ?region= (as the book has) may narrow it.
    st, _, tb = api("GET", f"/v1/markets/{MODEL}/trades", key=keys["C"])
    check(st == 200 and isinstance(tb, dict) and isinstance(tb.get("data"), list),
          f"trades without ?region= (the contract's form): {st} {tb}")
    if st != 200:
        st, _, tb = api("GET", f"/v1/markets/{MODEL}/trades?region={WEST}", key=keys["C"])
    check(st == 200 and isinstance(tb, dict) and isinstance(tb.get("data"), list), f"trades: {st} {tb}")
    if st == 200 and isinstance(tb, dict) and isinstance(tb.get("data"), list):
        trades = [(x.get("price"), x.get("gpus"), x.get("start"), x.get("end")) for x in tb["data"]]
        every = [c1, c2.get(wa), c2.get(wb), c3, c4, c5, c6]
        for c in every:
            if c:
                check((c["price"], c["gpus"], c["start"], c["end"]) in trades,
                      f"a trade for contract {c['id']}: {trades}")
        check(all(ID_RE["trd"].match(x.get("id", "")) and isinstance(x.get("executed_at"), str)
                  for x in tb["data"]), f"trade fields: {tb['data']}")
        check("acct_" not in json.dumps(tb), "trades carry no account ids")
        # A list like the others: ?limit= and next_cursor page through the same trades.
        paged, cursor = [], None
        for _ in range(len(tb["data"]) + 1):
            q = f"/v1/markets/{MODEL}/trades?limit=2" + (f"&cursor={cursor}" if cursor else "")
            st, _, pg = api("GET", q, key=keys["C"])
            check(st == 200 and len(pg.get("data", [])) <= 2 and "next_cursor" in pg, f"trades page: {st} {pg}")
            paged += pg.get("data", [])
            cursor = pg.get("next_cursor")
            if not cursor:
                break
        check([x["id"] for x in paged] == [x["id"] for x in tb["data"]],
              f"trades paged by 2 are the same trades in the same order: {paged} vs {tb['data']}")
        for bad in ("limit=0", "limit=501", "limit=%2B1", "cursor=x", "cursor=9223372036854775808"):
            st, _, eb = api("GET", f"/v1/markets/{MODEL}/trades?{bad}", key=keys["C"])
            check(st == 400 and eb.get("error", {}).get("field") == bad.split("=")[0],
                  f"trades?{bad}: {st} {eb}")

    # ---- 9. spot in eu-north: a reservation offer for 01:00-03:00 and a spot offer
    o5 = create_offer(api, keys["P2"], eu, 16, t(1, 1), t(1, 3), 2_000_000)
    st, _, s1 = api("POST", "/v1/offers", {"pool_id": eu, "kind": "spot", "gpus": 16, "price": 1_000_000},
                    key=keys["P2"])
    check(st == 201 and s1.get("kind") == "spot" and s1.get("status") == "open" and
          ID_RE["ofr"].match(s1.get("id", "")), f"spot offer: {st} {s1}")
    spot = lambda n, g, lim: place(api, keys[n], {"kind": "spot", "gpu_model": MODEL, "region": EU,
                                                  "gpus": g, "limit_price": lim}, "pending", None, None)
    sc = spot("C", 8, 3_000_000)     # wins: 8 of the 16 GPUs
    hold("C", 24 * USD)              # limit x gpus x 1 hour
    sa = spot("A", 16, 1_500_000)    # loses: only 8 GPUs left after the higher bid (ASSUMPTION)
    hold("A", 24 * USD)
    sb = spot("B", 4, 500_000)       # loses: below the reserve
    hold("B", 2 * USD)
    bal_check("spot bids placed")
    advance(api, 60, t(1, 0, 1))     # the first spot round
    check(get_order(api, keys["C"], sc["id"]).get("status") == "running", "C's spot bid won")
    check(get_order(api, keys["A"], sa["id"]).get("status") == "pending", "A's spot bid lost (no room)")
    check(get_order(api, keys["B"], sb["id"]).get("status") == "pending", "B's spot bid lost (reserve)")
    bal_check("after the first spot round", ["A", "B", "P1"])
    row = market_row(api, keys["C"], EU)
    check(isinstance(row.get("spot_price"), int) and 1_000_000 <= row["spot_price"] <= 3_000_000,
          f"spot price between the reserve and the winner's limit: {row}")
    c_total = sum(balance(api, keys["C"]))

    # B reserves the whole eu pool from 01:00: C's spot GPUs are reclaimed when it starts
    r9 = place(api, keys["B"], order_body(16, t(1, 1), 2, 2_500_000, region=EU), "filled", 16, 1)
    hold("B", 80 * USD)
    release("B", 80 * USD - 64 * USD)
    bal_check("eu reservation filled", ["A", "B", "P1"])
    c9 = contract(api, keys["B"], r9["contracts"][0])
    check((c9.get("pool_id"), c9.get("amount"), c9.get("status")) == (eu, 64 * USD, "scheduled"),
          f"eu contract: {c9}")

    advance(api, 3540, t(1, 1))      # 01:00: the reservation starts, order 8 expires
    check(get_order(api, keys["B"], r9["id"]).get("status") == "filled", "order 9 stays filled")
    a9 = contract(api, keys["B"], c9["id"])
    check(a9.get("status") == "active", f"eu contract active at its start: {a9}")
    # Placing contracts on nodes is issue 7's: until then placement may be []; when present
    # it must cover exactly the contract's GPUs.
    check(isinstance(a9.get("placement"), list) and sum(p.get("gpus", 0) for p in a9["placement"]) in (0, 16) and
          all(isinstance(p.get("node"), (int, str)) and p.get("gpus", 0) > 0 for p in a9["placement"]) and
          a9.get("lost_gpu_hours") == 0, f"an active contract's placement: {a9}")
    gsc = get_order(api, keys["C"], sc["id"])
    check(gsc.get("status") in ("preempted", "pending"),
          f"C's spot bid preempted when the reservation starts: {gsc}")
    check(get_order(api, keys["A"], r8["id"]).get("status") == "expired", "order 8 expired at its start")
    release("A", 8 * USD)
    check(get_order(api, keys["A"], sa["id"]).get("status") == "pending", "A's bid still pending")
    # ASSUMPTION: no reservation hour is paid before it is delivered, so B is still exact.
    bal_check("at 01:00", ["A", "B", "P1"])

    for n, s in (("A", sa), ("B", sb)):
        cancel(api, keys[n], s["id"])
    release("A", 24 * USD)
    release("B", 2 * USD)
    cancel(api, keys["C"], sc["id"])
    bal_check("spot bids cancelled", ["A", "B", "P1"])
    release("C", 24 * USD)
    # C ran spot from 00:01 to 01:00: what spot charges is not specified, only that it is at
    # most the hold (limit x gpus x 1 hour) and at least nothing.
    ca, ch = balance(api, keys["C"])
    check(ch == exp["C"][1], f"C's spot hold released, escrow remains: held {ch}, expected {exp['C'][1]}")
    spent = sum(exp["C"]) - (ca + ch)
    check(0 <= spent <= 24 * USD and c_total <= sum(exp["C"]),
          f"C's spot spend within its hold: {spent}")
    pa, ph = balance(api, keys["P2"])
    check(pa >= 0 and ph >= 0 and pa + ph <= spent, f"P2 earned at most C's spot spend: {pa} {ph} vs {spent}")

    # ---- a withdrawal: money leaves A's available balance, and shows in its transfers
    st, _, w = api("POST", f"/v1/accounts/{ids['A']}/withdrawals", {"amount": 10 * USD})
    check(st == 201, f"withdrawal: {st} {w}")
    exp["A"][0] -= 10 * USD
    bal_check("after A's withdrawal", ["A"])
    tr = list_all(api, keys["A"], "/v1/account/transfers")
    check(any(x.get("amount") == 10 * USD and x.get("direction") == "out" and x.get("status") == "posted"
              for x in tr), f"the withdrawal among A's transfers: {tr}")
    check(all(x.get("status") in ("posted", "pending", "voided") and x.get("direction") in ("in", "out")
              for x in tr), f"transfer fields: {tr}")

    # ---- the ledger
    st, _, lc = api("GET", "/v1/admin/ledger/check")
    check(st == 200 and lc.get("balanced") is True and lc.get("violations") == [] and
          lc.get("total_debits") == lc.get("total_credits") and lc.get("accounts", 0) >= 6 and
          lc.get("transfers", 0) > 0, f"ledger check: {st} {lc}")
    for n in keys:
        st, _, b = api("GET", "/v1/admin/ledger/check", key=keys[n])
        check(st == 403 and is_error_body(b, "forbidden"), f"{n} may not run ledger/check: {st}")
except Fatal:
    pass
except Exception:
    check(False, "unexpected exception:\n" + traceback.format_exc())
finally:
    e.close()
done()
