"""Settlement reports that tie to the ledger (issue 8): a 30-day simulated market run through
the API with failures injected, then capx-admin's reports and payouts checked against figures
this test computes on its own.

Market (SLA credit 100 % of a lost GPU-hour's price, fee 500 bps):
  provider P1, pool A: 6 nodes x 8 GPUs, one reservation offer (48 GPUs, 2.345679/GPU-hr);
  provider P2, pool B: 2 nodes x 8 GPUs, reservation offers at 1.987653 (first 10 days) and
    2.111111 (after), and a spot offer of 8 GPUs at 0.75;
  buyers: B1 16 GPUs on A for 240 h and 16 GPUs on B for 480 h from hour 250; B2 24 GPUs on A
    for 720 h from hour 3; B3 8 GPUs on B for 100 h from hour 2 and a spot bid of 8 GPUs on B.
Failures: a B node under B3's contract with spare capacity (spot's GPUs, spot preempted); a
payout at hour 5 leaves P2 with nothing, then B's other node fails with no spare, so P2's SLA
credits exceed its balance (debt, repaid from later earnings); an A node under B1 with a spare
node; an A node under B2 without; a single GPU under B1 without; repairs. The clock moves in
steps to hour 30, then one jump to 30 days; the test checks there (contracts still running),
then after every contract has ended: payout twice and advancing the clock change nothing.

Expectations are computed here from the contracts' prices and the lost hours the API shows
(fee = floor(hour cost x 500 / 10000) per contract-hour), and from the ledger's transfers for
spot (whose price the engine sets); they are compared with `capx-admin report settlement`,
with every account's balance, and with sums of the ledger's transfers by kind.
"""
import datetime
import json
import os
import subprocess

from capxtest import BUILD, Env, check, done, need_env, psql

need_env()

H = 3600
T0 = "2027-01-01T00:00:00Z"
MODEL = "H100-SXM-80GB"
ADMIN = os.path.join(BUILD, "clients", "capx-admin")
PA, PB1, PB2, PSPOT = 2_345_679, 1_987_653, 2_111_111, 750_000
BPS = 500
# Checks marked with this fail until capxd's settlement report counts SLA credits paid later
# from a provider's debt (see the report of issue 8's command-line work).
BUG = "[SERVER BUG: the settlement report leaves out SLA credits repaid from provider debt]"


def iso(s):
    """Seconds after T0 as RFC 3339."""
    t = datetime.datetime(2027, 1, 1, tzinfo=datetime.timezone.utc) + datetime.timedelta(seconds=s)
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def secs(s):
    """RFC 3339 as seconds after T0."""
    t = datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc)
    return int((t - datetime.datetime(2027, 1, 1, tzinfo=datetime.timezone.utc)).total_seconds())


def usd(m):
    """Micro-USD as capx prints dollars: at least 2 decimals, no trailing zeros beyond."""
    frac = f"{m % 1_000_000:06d}".rstrip("0").ljust(2, "0")
    return f"{m // 1_000_000}.{frac}"


class Fatal(Exception):
    pass


def must(cond, what):
    if not check(cond, what):
        raise Fatal(what)


e = Env("report", clock="sim:" + T0, extra={"CAPX_SLA_CREDIT_PCT": 100})
now = 0
try:
    e.up()

    def api(method, path, body=None, key="admin"):
        st, _, b = e.req(method, path, body, key=key)
        return st, b

    def admin(*args):
        r = subprocess.run([ADMIN, *args], env=e.env, capture_output=True, text=True, timeout=300)
        return r.returncode, r.stdout, r.stderr

    def admin_json(*args):
        rc, out, err = admin(*args, "--format", "json")
        try:
            return rc, json.loads(out), err
        except ValueError:
            check(False, f"capx-admin {' '.join(args)}: not JSON (rc {rc}): {out!r} {err!r}")
            return rc, {}, err

    def account(name, roles):
        st, b = api("POST", "/v1/accounts", {"name": name, "roles": roles})
        must(st == 201, f"account {name}: {st} {b}")
        return b["id"], b["api_key"]

    def advance_to(s):
        global now
        if s > now:
            st, b = api("POST", "/v1/admin/clock", {"advance_seconds": s - now})
            must(st == 200, f"advance to {iso(s)}: {st} {b}")
            now = s

    def bal(key):
        st, b = api("GET", "/v1/account", key=key)
        must(st == 200, f"balance: {st} {b}")
        return b["balance"]["available"], b["balance"]["held"]

    def transfers(key):
        out, cur = [], None
        while True:
            st, b = api("GET", "/v1/account/transfers?limit=500" + (f"&cursor={cur}" if cur else ""),
                        key=key)
            must(st == 200, f"transfers: {st} {b}")
            out += b["data"]
            cur = b.get("next_cursor")
            if not cur:
                return out

    def nodes_of(placement):
        return sorted(p["node"] for p in placement)

    def fail(path):
        st, b = api("POST", f"/v1/admin/pools/{path}/fail")
        must(st == 200, f"fail {path}: {st} {b}")

    def repair(path):
        st, b = api("POST", f"/v1/admin/pools/{path}/repair")
        must(st == 200, f"repair {path}: {st} {b}")

    P1, p1key = account("provider-one", ["provider"])
    P2, p2key = account("provider-two", ["provider"])
    B1, b1key = account("buyer-one", ["buyer"])
    B2, b2key = account("buyer-two", ["buyer"])
    B3, b3key = account("buyer-three", ["buyer"])
    keys = {P1: p1key, P2: p2key, B1: b1key, B2: b2key, B3: b3key}
    deposits = {B1: 30_000_000_000, B2: 50_000_000_000, B3: 10_000_000_000}
    for acct, amount in deposits.items():
        rc, out, err = admin("deposit", "--account", acct, "--amount", f"{amount // 1_000_000}.00")
        must(rc == 0, f"deposit {acct}: {rc} {out} {err}")

    st, A = api("POST", "/v1/pools", {"name": "a", "gpu_model": MODEL, "region": "us-west",
                                      "nodes": 6, "gpus_per_node": 8, "nodes_per_rack": 2}, key=p1key)
    must(st == 201, f"pool A: {st} {A}")
    st, B = api("POST", "/v1/pools", {"name": "b", "gpu_model": MODEL, "region": "eu",
                                      "nodes": 2, "gpus_per_node": 8, "nodes_per_rack": 2}, key=p2key)
    must(st == 201, f"pool B: {st} {B}")
    for pool, key, gpus, start, end, price in ((A, p1key, 48, H, 864 * H, PA),
                                               (B, p2key, 16, H, 240 * H, PB1),
                                               (B, p2key, 16, 240 * H, 960 * H, PB2)):
        st, b = api("POST", "/v1/offers", {"pool_id": pool["id"], "gpus": gpus, "start": iso(start),
                                           "end": iso(end), "price": price}, key=key)
        must(st == 201, f"offer: {st} {b}")
    st, b = api("POST", "/v1/offers", {"pool_id": B["id"], "kind": "spot", "gpus": 8,
                                       "price": PSPOT}, key=p2key)
    must(st == 201, f"spot offer: {st} {b}")

    def order(key, region, gpus, start_h, hours, limit):
        st, b = api("POST", "/v1/orders", {"kind": "reservation", "gpu_model": MODEL, "region": region,
                                           "gpus": gpus, "start": iso(start_h * H), "hours": hours,
                                           "limit_price": limit}, key=key)
        must(st == 201 and b["status"] == "filled" and len(b["contracts"]) == 1,
             f"order {gpus} GPUs at {start_h}h: {st} {b}")
        return b["contracts"][0]

    C1 = order(b1key, "us-west", 16, 2, 240, 2_500_000)
    C2 = order(b2key, "us-west", 24, 3, 720, 2_400_000)
    C3 = order(b3key, "eu", 8, 2, 100, 2_000_000)
    C4 = order(b1key, "eu", 16, 250, 480, 2_200_000)
    contracts = {C1: (B1, P1), C2: (B2, P1), C3: (B3, P2), C4: (B1, P2)}
    st, SB = api("POST", "/v1/orders", {"kind": "spot", "gpu_model": MODEL, "region": "eu",
                                        "gpus": 8, "limit_price": 1_500_000}, key=b3key)
    must(st == 201, f"spot bid: {st} {SB}")

    def contract(cid):
        st, b = api("GET", f"/v1/contracts/{cid}", key=keys[contracts[cid][0]])
        must(st == 200, f"contract {cid}: {st} {b}")
        return b

    def spot_status():
        st, b = api("GET", f"/v1/orders/{SB['id']}", key=b3key)
        must(st == 200, f"spot order: {st} {b}")
        return b["status"]

    for cid in contracts:
        c = contract(cid)
        check(c["price"] in (PA, PB1, PB2) and c["amount"] == c["price"] * c["gpus"] *
              ((secs(c["end"]) - secs(c["start"])) // H), f"contract {cid} at its offer's price: {c}")

    advance_to(H + 2 * 60)
    check(spot_status() == "running", "the spot bid runs on B's unsold GPUs")

    # B: a node under C3 fails while spot uses the other node: re-placed there, spot preempted.
    advance_to(3 * H + 30 * 60)
    b_first = nodes_of(contract(C3)["placement"])[0]
    fail(f"{B['id']}/nodes/{b_first}")
    c3 = contract(C3)
    check(c3["missing_gpus"] == 0 and c3["lost_gpu_hours"] == 0 and b_first not in nodes_of(c3["placement"]),
          f"B: re-placed on the spot GPUs, nothing lost: {c3}")
    check(spot_status() in ("preempted", "pending"), f"spot gave its GPUs up: {spot_status()}")

    # Payout at hour 5 through capx-admin: every provider's earnings so far leave the platform.
    advance_to(5 * H)
    paid = {P1: 0, P2: 0}
    rc, po, err = admin_json("payout", "--until", iso(5 * H))
    must(rc == 0 and po.get("until") == iso(5 * H), f"payout at 5h: {rc} {po} {err}")
    for x in po["payouts"]:
        paid[x["provider_id"]] = paid.get(x["provider_id"], 0) + x["amount"]
        check(x["amount"] > 0 and x["transfer_id"] and not x["already_paid"], f"paid out: {x}")
    check(bal(p1key) == (0, 0) and bal(p2key) == (0, 0), f"providers paid out: {bal(p1key)} {bal(p2key)}")
    before = {a: bal(k) for a, k in keys.items()}
    rc, out, err = admin("payout", "--until", iso(5 * H))
    check(rc == 0 and "yes" in out and "already paid" in err, f"the same period again, table: {rc} {out} {err}")
    check({a: bal(k) for a, k in keys.items()} == before, "a second payout of a period moves nothing")

    # A: a node under C1 fails; the spare node takes it.
    advance_to(5 * H + 30 * 60)
    a_first = nodes_of(contract(C1)["placement"])[0]
    fail(f"{A['id']}/nodes/{a_first}")
    c1 = contract(C1)
    check(c1["missing_gpus"] == 0 and c1["lost_gpu_hours"] == 0, f"A: re-placed on the spare node: {c1}")

    # B's other node fails: no spare, C3 loses its 8 GPUs; P2 has nothing to pay credits with.
    advance_to(6 * H + 30 * 60)
    b_second = nodes_of(contract(C3)["placement"])[0]
    fail(f"{B['id']}/nodes/{b_second}")
    check(contract(C3)["missing_gpus"] == 8, "B: no spare, C3's 8 GPUs missing")

    # A: a node under C2 fails, no spare.
    advance_to(8 * H)
    a_second = nodes_of(contract(C2)["placement"])[0]
    fail(f"{A['id']}/nodes/{a_second}")
    check(contract(C2)["missing_gpus"] == 8, "A: no spare, C2's 8 GPUs missing")
    advance_to(11 * H)
    repair(f"{A['id']}/nodes/{a_first}")
    check(contract(C2)["missing_gpus"] == 0, "a repair gives C2 its GPUs back")

    # One GPU under C1, no spare; repaired 3.5 hours later.
    advance_to(20 * H)
    g_node = nodes_of(contract(C1)["placement"])[-1]
    fail(f"{A['id']}/nodes/{g_node}/gpus/3")
    check(contract(C1)["missing_gpus"] == 1, "one GPU of C1 missing")
    advance_to(23 * H + 30 * 60)
    repair(f"{A['id']}/nodes/{g_node}/gpus/3")
    advance_to(26 * H)
    repair(f"{B['id']}/nodes/{b_first}")
    check(contract(C3)["missing_gpus"] == 0, "C3 has its GPUs back")
    st, debts = 0, psql(e.conninfo, f"SELECT coalesce(sum(amount), 0) FROM provider_debts WHERE provider_id = '{P2}'")
    check(int(debts) > 0, f"P2's credits exceeded its balance: a debt is recorded ({debts})")
    advance_to(30 * H)
    repair(f"{A['id']}/nodes/{a_second}")
    repair(f"{B['id']}/nodes/{b_second}")
    st, b = api("GET", "/v1/admin/ledger/check")
    check(st == 200 and b["balanced"] and b["violations"] == [], f"ledger clean at hour 30: {b}")

    # One jump to 30 days; B1's second contract (to 730 h) and C2 (to 723 h) still run.
    advance_to(720 * H)
    # B is fully reserved from hour 250 (C4): no spot runs or is charged there any more.
    st, pb = api("GET", f"/v1/pools/{B['id']}", key=p2key)
    late = psql(e.conninfo, f"SELECT count(*) FROM settlements WHERE ref = '{SB['id']}' AND hours_from >= '{iso(250 * H)}'")
    check(pb["utilization"]["spot"] == 0 and pb["utilization"]["contracted"] == 16 and late == "0",
          f"no spot on B while C4 holds it: {pb['utilization']}, {late} spot hours charged")
    st, b = api("DELETE", f"/v1/orders/{SB['id']}", key=b3key)
    check(st == 200 and b["status"] == "cancelled", f"spot bid cancelled: {st} {b}")

    # ---- the expectations, from the contracts and the ledger's transfers
    def expect():
        upto = now - now % H
        ex = {a: {"gpu_hours": 0, "gross": 0, "fees": 0, "credits": 0, "refunds": 0, "fills": 0,
                  "reserved": 0, "escrow": 0} for a in keys}
        for cid, (buyer, prov) in contracts.items():
            c = contract(cid)
            lost = {secs(x["hour"]): x["gpus"] for x in c["lost_hours"]}
            check(sum(lost.values()) == c["lost_gpu_hours"], f"lost_hours add up to lost_gpu_hours: {c}")
            s0, s1 = secs(c["start"]), secs(c["end"])
            ex[buyer]["fills"] += c["price"] * c["gpus"] * ((s1 - s0) // H)
            ex[buyer]["reserved"] += c["gpus"] * ((s1 - s0) // H)
            for h in range(s0, s1, H):
                if h >= upto:
                    ex[buyer]["escrow"] += c["price"] * c["gpus"]
                    continue
                g = c["gpus"] - lost.get(h, 0)
                cost = c["price"] * g
                for a in (buyer, prov):
                    ex[a]["gpu_hours"] += g
                    ex[a]["gross"] += cost
                    ex[a]["fees"] += cost * BPS // 10000
                    ex[a]["credits"] += c["price"] * lost.get(h, 0)
                    ex[a]["refunds"] += c["price"] * lost.get(h, 0)
        # Spot: what the ledger says B3 paid for each hour, split exactly by the fee rule.
        spot = {}
        for t in transfers(b3key):
            if t["ref"] == SB["id"] and t["kind"] in ("spot_delivery", "fee"):
                hour = t["id"].rsplit(":", 1)[1]
                spot.setdefault(hour, {})[t["kind"]] = t["amount"]
        sg = sf = 0
        for hour, x in sorted(spot.items()):
            charge = x.get("spot_delivery", 0) + x.get("fee", 0)
            check(x.get("fee", 0) == charge * BPS // 10000, f"spot hour {hour}: fee of {charge} is 5 % floored: {x}")
            sg += charge
            sf += x.get("fee", 0)
        for a in (P2, B3):
            ex[a]["spot_gross"], ex[a]["spot_fees"] = sg, sf
        ex[P1]["spot_gross"] = ex[P1]["spot_fees"] = 0
        return ex, sg

    def ledger_by_kind(to):
        rows = psql(e.conninfo, "SELECT kind, sum(amount) FROM ledger_transfers WHERE flags IN (0, 2) "
                                f"AND created_at < '{to}' GROUP BY kind")
        return {k: int(v) for k, v in (line.split("|") for line in rows.splitlines() if line)}

    def check_all(stage):
        ex, spot_gross = expect()
        check(spot_gross > 0, f"{stage}: spot ran and was charged")
        end = iso(now + H)
        rc, rep, err = admin_json("report", "settlement", "--from", T0, "--to", end)
        check(rc == 0, f"{stage}: {BUG} report settlement exits 0: {rc} {err}")
        lc = rep.get("ledger_check", {})
        check(any(l["what"].startswith("ledger_kinds:") for l in lc.get("lines", [])),
              f"{stage}: capx-admin adds the ledger's sums by kind to the tie: {lc}")
        check(all(l["difference"] == 0 for l in lc.get("lines", []) if not l["what"].startswith("ledger_kinds:")),
              f"{stage}: capxd's own tie lines have difference 0: {lc}")
        check(lc.get("matches") is True and lc.get("lines") and all(l["difference"] == 0 for l in lc["lines"]),
              f"{stage}: {BUG} every line of the ledger check has difference 0: "
              f"{[l for l in lc.get('lines', []) if l['difference']]}")
        provs = {p["provider_id"]: p for p in rep.get("providers", [])}
        buys = {b["buyer_id"]: b for b in rep.get("buyers", [])}
        for p in (P1, P2):
            x, r = ex[p], provs.get(p, {})
            net = x["gross"] - x["fees"] - x["credits"] + x["spot_gross"] - x["spot_fees"]
            check(r.get("gpu_hours_delivered") == x["gpu_hours"], f"{stage}: {p} GPU-hours delivered {r.get('gpu_hours_delivered')} vs {x['gpu_hours']}")
            check(r.get("gross") == x["gross"] + x["spot_gross"], f"{stage}: {p} gross {r.get('gross')} vs {x['gross'] + x['spot_gross']}")
            check(r.get("fees") == x["fees"] + x["spot_fees"], f"{stage}: {p} fees {r.get('fees')} vs {x['fees'] + x['spot_fees']}")
            check(r.get("paid_out") == paid[p], f"{stage}: {p} paid out {r.get('paid_out')} vs {paid[p]}")
            # SERVER BUG CHECK (see the report of issue 8): SLA credits a provider owed as debt
            # and paid later from its earnings (transfers debt:…, kind sla_credit) are left out
            # of the report's sla_credits_paid and net.
            check(r.get("sla_credits_paid") == x["credits"],
                  f"{stage}: {BUG} {p} SLA credits paid "
                  f"{r.get('sla_credits_paid')} vs {x['credits']} (sla_debt shown {r.get('sla_debt')})")
            check(r.get("net") == net, f"{stage}: {BUG} "
                                       f"{p} net {r.get('net')} vs {net} = delivered x price - fees - credits")
            # The provider's cash is its net less what was paid out (debts all repaid by now).
            check(bal(keys[p]) == (net - paid[p], 0), f"{stage}: {p} balance {bal(keys[p])} vs net {net} - paid out {paid[p]}")
        for b in (B1, B2, B3):
            x, r = ex[b], buys.get(b, {})
            sg = x.get("spot_gross", 0)
            check(r.get("gpu_hours_reserved") == x["reserved"], f"{stage}: {b} reserved {r.get('gpu_hours_reserved')} vs {x['reserved']}")
            check(r.get("gpu_hours_delivered") == x["gpu_hours"], f"{stage}: {b} delivered {r.get('gpu_hours_delivered')} vs {x['gpu_hours']}")
            check(r.get("charged") == x["gross"] + sg, f"{stage}: {b} charged {r.get('charged')} vs {x['gross'] + sg}")
            check(r.get("refunded") == x["refunds"], f"{stage}: {b} refunded {r.get('refunded')} vs {x['refunds']}")
            avail, held = bal(keys[b])
            check(held == x["escrow"], f"{stage}: {b} escrow {held} vs {x['escrow']} (unsettled contract hours)")
            check(r.get("charged", 0) - sg + r.get("refunded", 0) + held == x["fills"],
                  f"{stage}: {b} charges + refunds + escrow = fills: {r.get('charged', 0) - sg} + {r.get('refunded')} + {held} vs {x['fills']}")
            check(r.get("sla_credits_received") == x["credits"],
                  f"{stage}: {BUG} {b} SLA credits received {r.get('sla_credits_received')} vs {x['credits']}")
            check(avail == deposits[b] - x["fills"] - sg + x["refunds"] + x["credits"],
                  f"{stage}: {b} available {avail} = deposit - fills - spot + refunds + credits")
        # The report's totals against the ledger's transfers by kind (all of them, not only the
        # ones the report names).
        k = ledger_by_kind(end)
        tot = rep.get("totals", {})
        check(k.get("delivery", 0) + k.get("spot_delivery", 0) == tot.get("gross", 0) - tot.get("fees", 0),
              f"{stage}: deliveries in the ledger {k} vs report gross - fees {tot}")
        check(k.get("fee", 0) == tot.get("fees"), f"{stage}: fees in the ledger {k.get('fee')} vs report {tot.get('fees')}")
        check(k.get("refund", 0) == tot.get("refunds"), f"{stage}: refunds in the ledger {k.get('refund')} vs report {tot.get('refunds')}")
        check(k.get("payout", 0) == tot.get("paid_out"), f"{stage}: payouts in the ledger {k.get('payout')} vs report {tot.get('paid_out')}")
        check(k.get("sla_credit", 0) == tot.get("sla_credits"),
              f"{stage}: {BUG} SLA credits in the ledger "
              f"{k.get('sla_credit')} vs report {tot.get('sla_credits')}")
        check(k.get("sla_credit", 0) == ex[P1]["credits"] + ex[P2]["credits"],
              f"{stage}: every SLA credit owed was paid: ledger {k.get('sla_credit')} vs owed {ex[P1]['credits'] + ex[P2]['credits']}")
        # The human table and CSV.
        rc, out, err = admin("report", "settlement", "--from", T0, "--to", end)
        check("provider-two" in out and "buyer-three" in out and "Against the ledger" in out,
              f"{stage}: settlement table: {rc} {out} {err}")
        check(rc == 0 and "ledger check: the report equals the ledger" in out,
              f"{stage}: {BUG} the table's last line says the report equals the ledger: {rc} {out[-400:]} {err}")
        gross = provs.get(P1, {}).get("gross", 0)
        dollars = usd(gross)
        check(dollars in out, f"{stage}: P1's gross printed in dollars exactly ({dollars})")
        rc, out, err = admin("report", "settlement", "--from", T0, "--to", end, "--format", "csv")
        check(out.startswith("section,id,name,field,value") and f"provider,{P1},provider-one,gross,{dollars}" in out,
              f"{stage}: settlement CSV: {rc} {out[:300]} {err}")
        rc, out, err = admin("check")
        check(rc == 0, f"{stage}: capx-admin check is clean: {rc} {out} {err}")
        rc, tb, err = admin_json("report", "trial-balance")
        sums = psql(e.conninfo, "SELECT sum(debits_posted), sum(credits_posted), sum(debits_pending), "
                                "sum(credits_pending) FROM ledger_accounts").split("|")
        t = tb.get("totals", {})
        check(rc == 0 and tb.get("balanced") is True and tb.get("matches_maintained_totals") is True and
              [t.get("debits_posted"), t.get("credits_posted"), t.get("debits_pending"), t.get("credits_pending")]
              == [int(x) for x in sums], f"{stage}: trial balance {rc} {t} vs {sums} {err}")
        return ex

    ex = check_all("30 days")

    # Trial balance as it stood at hour 5 (before the payout's transfers, which came at 5h too)
    # and the table.
    rc, tb, err = admin_json("report", "trial-balance", "--at", iso(5 * H))
    fees5 = int(psql(e.conninfo, "SELECT coalesce(sum(amount), 0) FROM ledger_transfers WHERE credit_account = "
                                 f"'capx:fees' AND flags IN (0, 2) AND created_at <= '{iso(5 * H)}'"))
    fa = [a for a in tb.get("accounts", []) if a["account"] == "capx:fees"]
    check(rc == 0 and tb.get("balanced") and fa and fa[0]["credits_posted"] == fees5 and fees5 > 0,
          f"trial balance at 5h: fees {fa} vs {fees5}: {rc} {err}")
    # A hold made by then and resolved later counts as pending at that time.
    pend5 = int(psql(e.conninfo, "SELECT coalesce(sum(p.amount), 0) FROM ledger_transfers p WHERE p.flags = 1 "
                                 f"AND p.debit_account = '{B3}:cash' AND p.created_at <= '{iso(5 * H)}' AND NOT EXISTS "
                                 "(SELECT 1 FROM ledger_transfers r WHERE r.pending_id = p.id "
                                 f"AND r.created_at <= '{iso(5 * H)}')"))
    b3c = [a for a in tb.get("accounts", []) if a["account"] == f"{B3}:cash"]
    check(pend5 > 0 and b3c and b3c[0]["debits_pending"] == pend5,
          f"trial balance at 5h: B3's spot hold pending then: {b3c} vs {pend5}")
    rc, tb0, err = admin_json("report", "trial-balance", "--at", "2026-01-01T00:00:00Z")
    check(rc == 0 and tb0.get("balanced") and tb0.get("totals", {}).get("debits_posted") == 0,
          f"trial balance before any transfer: all zero: {rc} {tb0.get('totals')} {err}")
    rc, out, err = admin("report", "trial-balance")
    check(rc == 0 and "balanced: debits posted = credits posted" in out and "capx:world" in out and
          "buyer-two" in out, f"trial balance table: {rc} {out} {err}")

    # Market report: volume and VWAP per market from the contracts, spot charges per hour.
    rc, mk, err = admin_json("report", "market", "--from", T0, "--to", iso(now + H))
    res = {(r["gpu_model"], r["region"]): r for r in mk.get("reservations", []) if r["hour"] is None}
    for region, cids in (("us-west", (C1, C2)), ("eu", (C3, C4))):
        cs = [contract(c) for c in cids]
        gh = sum(c["gpus"] * (secs(c["end"]) - secs(c["start"])) // H for c in cs)
        notional = sum(c["amount"] for c in cs)
        vwap = (2 * notional + gh) // (2 * gh)
        r = res.get((MODEL, region), {})
        check(r.get("gpu_hours") == gh and r.get("notional") == notional and r.get("vwap") == vwap,
              f"market {region}: {r} vs gpu_hours {gh}, notional {notional}, vwap {vwap}")
    spot_rows = [r for r in mk.get("spot", []) if r["hour"] is not None]
    check(rc == 0 and len(spot_rows) > 100 and sum(r["charged"] for r in spot_rows) == ex[B3]["spot_gross"]
          and all(r["avg_price"] <= PSPOT for r in spot_rows) and any(r["avg_price"] == PSPOT for r in spot_rows),
          f"spot per hour: {len(spot_rows)} hours, charged {sum(r['charged'] for r in spot_rows)} vs {ex[B3]['spot_gross']}: {rc} {err}")
    rc, out, err = admin("report", "market", "--from", T0, "--to", iso(now + H))
    check(rc == 0 and "VWAP" in out and "2.345679" in out and "0.75" in out, f"market table: {rc} {out[:600]} {err}")

    # Every contract ends; then payout twice and a later clock change nothing.
    advance_to(735 * H)
    for cid in contracts:
        check(contract(cid)["status"] == "completed", f"{cid} completed")
    ex = check_all("all contracts ended")
    rc, po, err = admin_json("payout", "--until", iso(735 * H))
    check(rc == 0 and {x["provider_id"] for x in po.get("payouts", [])} == {P1, P2}, f"final payout: {rc} {po} {err}")
    for x in po.get("payouts", []):
        paid[x["provider_id"]] += x["amount"]
    check(bal(p1key) == (0, 0) and bal(p2key) == (0, 0), f"providers paid out in full: {bal(p1key)} {bal(p2key)}")
    before = {a: bal(k) for a, k in keys.items()}
    rc, po2, err = admin_json("payout", "--until", iso(735 * H))
    check(rc == 0 and all(x["amount"] == 0 and x["already_paid"] for x in po2.get("payouts", [])),
          f"the same period again pays nothing: {po2}")
    advance_to(760 * H)
    check({a: bal(k) for a, k in keys.items()} == before, "payout again and a later clock change no balance")
    rc, rep, err = admin_json("report", "settlement", "--from", T0, "--to", iso(761 * H))
    check(sum(p["paid_out"] for p in rep.get("providers", [])) == paid[P1] + paid[P2],
          f"final report: paid out {rep.get('totals')} vs {paid}")
    check(rc == 0 and rep.get("ledger_check", {}).get("matches"), f"{BUG} final report matches the ledger: {rc} {err}")
    rc, out, err = admin("check")
    check(rc == 0, f"final check clean: {rc} {err}")

    # ---- error paths
    for args, code, what in (
            (("report", "settlement", "--from", "2027-13-01T00:00:00Z", "--to", T0), 2, "a bad date"),
            (("report", "settlement", "--from", iso(H), "--to", T0), 2, "from after to"),
            (("report", "settlement", "--from", T0), 2, "no --to"),
            (("report", "market", "--from", "yesterday", "--to", T0), 2, "market: a bad date"),
            (("report", "market", "--from", T0, "--to", T0), 2, "market: to = from"),
            (("report", "trial-balance", "--at", "2027-01-01"), 2, "trial balance: a bad --at"),
            (("report", "trial-balance", "--format", "xml"), 2, "a bad format"),
            (("payout",), 2, "payout without --until"),
            (("payout", "--until", "2027-01-01T00:30:00Z"), 2, "payout: not a whole hour"),
            (("payout", "--until", iso(10_000 * H)), 1, "payout: after the clock's now (server 422)"),
            (("report", "nothing"), 2, "an unknown report")):
        rc, out, err = admin(*args)
        check(rc == code and err.startswith("capx-admin: "), f"{what}: exit {rc} (want {code}): {err!r}")
    for cmd in (("payout",), ("report", "settlement"), ("report", "trial-balance"), ("report", "market")):
        rc, out, err = admin(*cmd, "--help")
        check(rc == 0 and "Exit codes" in out and "usage: capx-admin" in out, f"{' '.join(cmd)} --help: {rc}")
    url = f"https://127.0.0.1:{e.port}"
    e.down()
    rc, out, err = admin("report", "settlement", "--from", T0, "--to", iso(H))
    check(rc == 3 and "cannot reach" in err, f"server down: exit 3: {rc} {err!r}")
    rc, out, err = admin("payout", "--until", iso(H))
    check(rc == 3, f"server down: payout exits 3: {rc} {err!r}")
    rc, out, err = admin("report", "trial-balance", "--database", "host=127.0.0.1 port=1 dbname=x connect_timeout=2")
    check(rc == 3 and "cannot connect to the database" in err, f"database down: exit 3: {rc} {err!r}")
except Fatal:
    pass
finally:
    e.close()
done()
