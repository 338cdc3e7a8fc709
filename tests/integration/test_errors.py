"""Every error code of the contract, produced by a request that expects it, black-box.

Each refusal is checked for its exact body {"error": {"code", "message", "field"?}} (and the
field where one field is at fault), and that it changed nothing: the balances, orders,
offers, pools and contracts of every account involved are the same before and after.

Covered: 400 invalid_json and invalid_request (unknown fields, strings and fractions for
money, int64 overflow, ranges, whole hours, bad enums, bad list parameters), 401 (no key,
malformed, unknown, revoked), 403 (a buyer creating a pool, a provider ordering, a
non-admin depositing), 404 (unknown route, another account's order/offer/pool/contract,
made-up ids), 405, 409 (cancel a filled/cancelled order, overlapping offers,
idempotency_key_in_flight), 402 (insufficient funds, no order created, exact boundary),
413, 415, 422 (unknown and foreign pools alike, start in the past or now, more GPUs than
the pool), 422 idempotency_key_reused, replayed idempotency keys (byte-identical, header
Idempotent-Replayed: true, nothing done twice; refused answers not saved), limit/cursor
pagination, and 429 with Retry-After for all keys of one account together.
(503 unavailable is produced in test_crash.py, where PostgreSQL is stopped.)

Assumptions where the contract leaves a detail open (marked ASSUMPTION below):
  * latest_start before start is decided from the request alone: 400 with field latest_start.
  * end before start of an offer: the contract's status table says 422, its "400 or 422?"
    rule says 400 (decidable from the request); either is accepted, nothing else.
  * A foreign pool named in a body gets exactly the made-up id's answer: same status, code
    and field, and the same message once the two ids are replaced by a placeholder.
  * An Idempotency-Key over 255 characters is 400 invalid_request.
"""
import http.client
import json
import re
import socket
import ssl
import threading
import time
import traceback
import uuid

from capxtest import Env, check, done, need_env, psql

need_env()

USD = 1_000_000
MODEL = "H100-SXM-80GB"
REGION = "us-west"
NOW = "2027-01-01T00:00:00Z"


class Fatal(Exception):
    pass


def must(cond, what):
    if not check(cond, what):
        raise Fatal(what)


def t(day, hour=0):
    return f"2027-01-{day:02d}T{hour:02d}:00:00Z"


class Api:
    """One keep-alive connection for GETs (retried once on a dropped connection); a fresh
    connection for everything else, so nothing is ever sent twice."""

    def __init__(self, env):
        self.env = env
        self.c = None

    def __call__(self, method, path, body=None, key="admin", headers=None, raw=None):
        if method != "GET":
            return self.env.req(method, path, body, key=key, headers=headers, raw=raw)
        for attempt in (0, 1):
            if self.c is None:
                self.c = self.env.conn(timeout=30)
            try:
                return self.env.req(method, path, body, key=key, headers=headers, conn=self.c, raw=raw)
            except (http.client.HTTPException, OSError):
                self.c.close()
                self.c = None
                if attempt:
                    raise


def raw_req(env, method, path, body, key, headers=None):
    """Like env.req but returns the body bytes unparsed (for byte-identical comparisons)."""
    c = env.conn()
    h = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    h.update(headers or {})
    c.request(method, path, body=None if body is None else json.dumps(body).encode(), headers=h)
    r = c.getresponse()
    data = r.read()
    hd = {k.lower(): v for k, v in r.getheaders()}
    c.close()
    return r.status, hd, data


def is_err(st, hd, body, status, code, field=None, no_field=False):
    """The exact error shape: {"error": {"code", "message", "field"?}} and nothing else."""
    ok = st == status and isinstance(body, dict) and set(body) == {"error"} and \
        isinstance(body["error"], dict) and set(body["error"]) <= {"code", "message", "field"} and \
        body["error"].get("code") == code and isinstance(body["error"].get("message"), str) and \
        body["error"]["message"] != ""
    if ok and field is not None:
        ok = body["error"].get("field") == field
    if ok and no_field:
        ok = "field" not in body["error"]
    if ok and hd is not None:
        ok = hd.get("content-type", "").startswith("application/json")
    return ok


def create_account(api, name, roles):
    st, _, b = api("POST", "/v1/accounts", {"name": name, "roles": roles})
    must(st == 201 and re.match(r"^capx_[a-z2-7]{32}$", b.get("api_key", "")),
         f"create account {name}: {st} {b}")
    return b["id"], b["api_key"]


def deposit(api, acct, amount):
    st, _, b = api("POST", f"/v1/accounts/{acct}/deposits", {"amount": amount})
    must(st == 201 and b.get("amount") == amount, f"deposit: {st} {b}")


def order_body(gpus=8, start=None, hours=2, limit=2_000_000, **opt):
    b = {"kind": "reservation", "gpu_model": MODEL, "region": REGION, "gpus": gpus,
         "start": start or t(2), "hours": hours, "limit_price": limit}
    b.update(opt)
    return b


def list_all(api, key, path):
    out, cursor = [], None
    for _ in range(200):
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


e = Env("errors", clock="sim:2027-01-01T00:00:00Z")
# The open-orders limit's setting is not in the contract; CAPX_MAX_OPEN_ORDERS is capxd's (--help).
rl = Env("errors429", extra={"CAPX_RATE_LIMIT": 5, "CAPX_RATE_BURST": 5, "CAPX_MAX_OPEN_ORDERS": 6})
try:
    e.up()
    api = Api(e)
    keys, ids = {}, {}
    for n, roles in (("A", ["buyer"]), ("B", ["buyer"]), ("P", ["provider"]), ("Q", ["provider"]),
                     ("BP", ["buyer", "provider"])):
        ids[n], keys[n] = create_account(api, f"acct-{n.lower()}", roles)
    for n in ("A", "B", "BP"):
        deposit(api, ids[n], 1000 * USD)

    def snap():
        """Everything an error must leave alone."""
        s = {}
        for n, k in keys.items():
            st, _, b = api("GET", "/v1/account", key=k)
            s[n + ".account"] = (st, b)
            if n in ("A", "B", "BP"):
                s[n + ".orders"] = list_all(api, k, "/v1/orders?limit=500")
            if n in ("P", "Q", "BP"):
                s[n + ".pools"] = list_all(api, k, "/v1/pools?limit=500")
                s[n + ".offers"] = list_all(api, k, "/v1/offers?limit=500")
            s[n + ".contracts"] = list_all(api, k, "/v1/contracts?limit=500")
        return s

    def refused(what, status, code, method, path, body=None, key="A", field=None, no_field=False,
                headers=None, raw=None, fields=None):
        """Sends a request that must be refused; checks the answer and that nothing changed."""
        before = snap()
        k = keys.get(key, key)
        st, hd, b = api(method, path, body, key=k, headers=headers, raw=raw)
        ok = is_err(st, hd, b, status, code, field, no_field)
        if ok and fields is not None:
            ok = b["error"].get("field") in fields
        check(ok, f"{what}: expected {status} {code}" + (f" field={field}" if field else "") +
              f", got {st} {b}")
        after = snap()
        check(before == after, f"{what}: something changed: " +
              str([x for x in before if before[x] != after.get(x)]))
        return st, hd, b

    # ---- supply for the tests: P's pool (32 GPUs) with an offer; Q's pool
    st, _, pool = api("POST", "/v1/pools", {"name": "p-one", "gpu_model": MODEL, "region": REGION,
                                            "nodes": 4, "gpus_per_node": 8, "nodes_per_rack": 2},
                      key=keys["P"])
    must(st == 201, f"pool: {st} {pool}")
    st, _, qpool = api("POST", "/v1/pools", {"name": "q-one", "gpu_model": MODEL, "region": REGION,
                                             "nodes": 1, "gpus_per_node": 8, "nodes_per_rack": 1},
                       key=keys["Q"])
    must(st == 201, f"pool q: {st} {qpool}")
    offer = {"pool_id": pool["id"], "gpus": 32, "start": t(2), "end": t(3), "price": 2_000_000}
    st, _, ofr = api("POST", "/v1/offers", offer, key=keys["P"])
    must(st == 201, f"offer: {st} {ofr}")
    # B has a resting order (limit under the ask) and A a filled one.
    st, _, b_open = api("POST", "/v1/orders", order_body(limit=1_000_000), key=keys["B"])
    must(st == 201 and b_open.get("status") == "open", f"B's resting order: {st} {b_open}")
    st, _, a_fill = api("POST", "/v1/orders", order_body(gpus=4, hours=1), key=keys["A"])
    must(st == 201 and a_fill.get("status") == "filled" and len(a_fill.get("contracts", [])) == 1,
         f"A's filled order: {st} {a_fill}")
    a_ctr = a_fill["contracts"][0]

    # ---- 401 unauthenticated (also on writes: nothing happens)
    for what, k in (("no key", None), ("malformed key", "capx_notakey"),
                    ("uppercase key", "capx_" + "A" * 32),
                    ("unknown well-formed key", "capx_" + "a" * 32)):
        refused(f"401 {what}", 401, "unauthenticated", "GET", "/v1/account", key=k, no_field=True)
        refused(f"401 {what} on POST /v1/orders", 401, "unauthenticated", "POST", "/v1/orders",
                order_body(), key=k, no_field=True)
    refused("401 Basic scheme", 401, "unauthenticated", "GET", "/v1/account", key=None, no_field=True,
            headers={"Authorization": "Basic " + keys["A"]})
    # a revoked key: 401 from then on; the account's other key still works
    st, _, nk = api("POST", f"/v1/accounts/{ids['A']}/api-keys")
    must(st == 201 and re.match(r"^key_", nk.get("id", "")) and
         re.match(r"^capx_[a-z2-7]{32}$", nk.get("api_key", "")), f"new key: {st} {nk}")
    st, _, me = api("GET", "/v1/account", key=nk["api_key"])
    check(st == 200 and me.get("id") == ids["A"], f"the new key works: {st} {me}")
    st, _, b = api("DELETE", f"/v1/api-keys/{nk['id']}")
    check(st == 204, f"revoke: {st} {b}")
    refused("401 revoked key", 401, "unauthenticated", "GET", "/v1/account", key=nk["api_key"],
            no_field=True)
    refused("401 revoked key placing an order", 401, "unauthenticated", "POST", "/v1/orders",
            order_body(), key=nk["api_key"], no_field=True)
    st, _, me = api("GET", "/v1/account", key=keys["A"])
    check(st == 200, f"A's first key still works: {st}")

    # ---- 403 forbidden
    pool_body = {"name": "mine", "gpu_model": MODEL, "region": REGION, "nodes": 1,
                 "gpus_per_node": 8, "nodes_per_rack": 1}
    refused("403 a buyer creates a pool", 403, "forbidden", "POST", "/v1/pools", pool_body,
            key="A", no_field=True)
    refused("403 before 400: a buyer sends a broken pool", 403, "forbidden", "POST", "/v1/pools",
            raw=b'{"name":', headers={"Content-Type": "application/json"}, key="A", no_field=True)
    refused("403 a buyer offers", 403, "forbidden", "POST", "/v1/offers", offer, key="A", no_field=True)
    refused("403 a provider orders", 403, "forbidden", "POST", "/v1/orders", order_body(), key="P",
            no_field=True)
    refused("403 a buyer deposits", 403, "forbidden", "POST", f"/v1/accounts/{ids['A']}/deposits",
            {"amount": 5}, key="A", no_field=True)
    refused("403 a buyer creates an account", 403, "forbidden", "POST", "/v1/accounts",
            {"name": "x", "roles": ["admin"]}, key="A", no_field=True)
    refused("403 a buyer advances the clock", 403, "forbidden", "POST", "/v1/admin/clock",
            {"advance_seconds": 3600}, key="A", no_field=True)
    refused("403 a buyer runs ledger/check", 403, "forbidden", "GET", "/v1/admin/ledger/check",
            key="A", no_field=True)

    # ---- 404 not_found: unknown routes, others' objects and made-up ids answer alike
    refused("404 unknown route", 404, "not_found", "GET", "/v1/nothing-here", no_field=True)
    refused("404 unknown route before 401", 404, "not_found", "GET", "/v1/nothing-here", key=None,
            no_field=True)
    made_up = {"orders": "ord_" + "z" * 20, "offers": "ofr_" + "z" * 20,
               "pools": "pool_" + "z" * 20, "contracts": "ctr_" + "z" * 20}
    foreign = [("GET", "orders", b_open["id"], "A"), ("DELETE", "orders", b_open["id"], "A"),
               ("GET", "orders", a_fill["id"], "BP"), ("GET", "offers", ofr["id"], "Q"),
               ("DELETE", "offers", ofr["id"], "Q"), ("GET", "pools", pool["id"], "Q"),
               ("GET", "contracts", a_ctr, "B"), ("GET", "contracts", a_ctr, "Q")]
    for method, coll, oid, who in foreign:
        _, _, fb = refused(f"404 {who}: {method} another account's {coll[:-1]}", 404, "not_found",
                           method, f"/v1/{coll}/{oid}", key=who, no_field=True)
        _, _, mb = refused(f"404 {who}: {method} a made-up {coll[:-1]}", 404, "not_found", method,
                           f"/v1/{coll}/{made_up[coll]}", key=who, no_field=True)
        if isinstance(fb, dict) and isinstance(mb, dict) and "error" in fb and "error" in mb:
            check(fb["error"]["message"].replace(oid, "X") == mb["error"]["message"].replace(made_up[coll], "X"),
                  f"foreign and made-up {coll} answer alike: {fb} vs {mb}")
    refused("404 deposit to a made-up account", 404, "not_found", "POST",
            "/v1/accounts/acct_zzzzzzzzzzzzzzzz/deposits", {"amount": 5}, key="admin", no_field=True)
    st, _, b = api("GET", f"/v1/orders/{b_open['id']}", key=keys["B"])
    check(st == 200 and b.get("status") == "open", f"B's order untouched by A's cancel: {st} {b}")

    # ---- 405 method_not_allowed (before 401)
    for method, path, allow in (("PUT", "/v1/orders", "GET, HEAD, POST"), ("DELETE", "/v1/account", "GET, HEAD"),
                                ("GET", "/v1/quotes", "POST"), ("PUT", f"/v1/orders/{b_open['id']}", "GET, HEAD, DELETE"),
                                ("POST", "/v1/markets", "GET, HEAD")):
        _, hd, _ = refused(f"405 {method} {path}", 405, "method_not_allowed", method, path, key="B", no_field=True)
        check(hd.get("allow") == allow, f"405 {method} {path} says what is allowed: {hd.get('allow')!r}, want {allow!r}")
    # (a body makes capxd judge the route before reading it: the same answer)
    _, hd, _ = refused("405 PUT /v1/orders with a body", 405, "method_not_allowed", "PUT", "/v1/orders",
                       order_body(), key="B", no_field=True)
    check(hd.get("allow") == "GET, HEAD, POST", f"405 with a body says what is allowed: {hd.get('allow')!r}")
    refused("405 before 401", 405, "method_not_allowed", "PUT", "/v1/orders", key=None, no_field=True)

    # ---- 413 and 415
    big = b'{"kind": "reservation", "pad": "' + b"x" * (1 << 20) + b'"}'
    refused("413 body over 1 MiB", 413, "payload_too_large", "POST", "/v1/orders", raw=big,
            headers={"Content-Type": "application/json"}, no_field=True)
    refused("415 text/plain", 415, "unsupported_media_type", "POST", "/v1/orders",
            raw=json.dumps(order_body()).encode(), headers={"Content-Type": "text/plain"}, no_field=True)
    refused("415 no content type", 415, "unsupported_media_type", "POST", "/v1/orders",
            raw=json.dumps(order_body()).encode(), no_field=True)
    for ct in ("application/json; charset=utf-16", "application/json; boundary=x",
               "application/json;", "application/jsonx"):
        refused(f"415 {ct}", 415, "unsupported_media_type", "POST", "/v1/orders",
                raw=json.dumps(order_body()).encode(), headers={"Content-Type": ct}, no_field=True)
    for ct in ("application/json; charset=utf-8", "Application/JSON;charset=\"UTF-8\""):
        st, _, ok = api("POST", "/v1/quotes", order_body(), key=keys["A"], headers={"Content-Type": ct})
        check(st == 200, f"{ct} is JSON in UTF-8: {st} {ok}")

    # ---- 400 invalid_json
    J = {"Content-Type": "application/json"}
    for what, raw in (("syntax", b'{"kind": "reservation",'), ("duplicate key",
                      json.dumps(order_body()).encode()[:-1] + b', "gpus": 9}'),
                      ("33 deep", b'{"a":' * 33 + b"1" + b"}" * 33), ("an array", b"[]"),
                      ("a string", b'"x"'), ("trailing garbage", json.dumps(order_body()).encode() + b"x")):
        refused(f"400 invalid_json: {what}", 400, "invalid_json", "POST", "/v1/orders", raw=raw,
                headers=J, no_field=True)
    for what, raw in (("gpus", json.dumps(order_body()).encode().replace(b'"gpus": 8', b'"gpus": 99999999999999999999')),
                      ("limit_price", json.dumps(order_body()).encode().replace(b'"limit_price": 2000000',
                                                                                b'"limit_price": 9223372036854775808')),
                      ("hours", json.dumps(order_body()).encode().replace(b'"hours": 2', b'"hours": -9223372036854775809'))):
        before = snap()
        st, hd, b = api("POST", "/v1/orders", key=keys["A"], raw=raw, headers=J)
        check(st == 400 and (is_err(st, hd, b, 400, "invalid_json", no_field=True) or
                             is_err(st, hd, b, 400, "invalid_request", field=what)),
              f"400 int64-overflowing {what}: {st} {b}")
        check(snap() == before, f"int64-overflowing {what} changed something")
    st, hd, b = api("POST", f"/v1/accounts/{ids['A']}/deposits", raw=b'{"amount": 18446744073709551616}', headers=J)
    check(st == 400 and b.get("error", {}).get("code") in ("invalid_json", "invalid_request"),
          f"400 int64-overflowing deposit: {st} {b}")

    # ---- 400 invalid_request, with the field at fault
    ob = order_body()
    cases = [
        ("unknown field", dict(ob, colour="red"), "colour"),
        ("missing gpus", {k: v for k, v in ob.items() if k != "gpus"}, "gpus"),
        ("missing kind", {k: v for k, v in ob.items() if k != "kind"}, "kind"),
        ("missing limit_price", {k: v for k, v in ob.items() if k != "limit_price"}, "limit_price"),
        ("missing start", {k: v for k, v in ob.items() if k != "start"}, "start"),
        ("string money", dict(ob, limit_price="2000000"), "limit_price"),
        ("fractional money", dict(ob, limit_price=2000000.5), "limit_price"),
        ("float money", dict(ob, limit_price=2000000.0), "limit_price"),
        ("exponent money", None, "limit_price"),
        ("null money", dict(ob, limit_price=None), "limit_price"),
        ("boolean gpus", dict(ob, gpus=True), "gpus"),
        ("gpus 0", dict(ob, gpus=0), "gpus"),
        ("gpus 100001", dict(ob, gpus=100001), "gpus"),
        ("hours 0", dict(ob, hours=0), "hours"),
        ("hours 8785", dict(ob, hours=8785), "hours"),
        ("limit 0", dict(ob, limit_price=0), "limit_price"),
        ("limit over 1e9", dict(ob, limit_price=1_000_000_001), "limit_price"),
        ("limit int64 max", dict(ob, limit_price=9223372036854775807), "limit_price"),
        ("start not a whole hour", dict(ob, start="2027-01-02T00:30:00Z"), "start"),
        ("start with seconds", dict(ob, start="2027-01-02T00:00:01Z"), "start"),
        ("start not RFC 3339", dict(ob, start="2027-01-02 00:00"), "start"),
        ("start not UTC Z", dict(ob, start="2027-01-02T00:00:00+01:00"), "start"),
        ("start a number", dict(ob, start=1798761600), "start"),
        ("latest_start not whole", dict(ob, latest_start="2027-01-02T05:10:00Z"), "latest_start"),
        ("latest_start before start", dict(ob, latest_start="2027-01-01T23:00:00Z"), "latest_start"),  # ASSUMPTION
        ("kind unknown", dict(ob, kind="futures"), "kind"),
        ("time_in_force unknown", dict(ob, time_in_force="fok"), "time_in_force"),
        ("all_or_none a string", dict(ob, all_or_none="true"), "all_or_none"),
        ("gpu_model empty", dict(ob, gpu_model=""), "gpu_model"),
    ]
    for what, body, field in cases:
        raw = None
        if body is None:
            raw = json.dumps(ob).encode().replace(b'"limit_price": 2000000', b'"limit_price": 2e6')
        refused(f"400 order: {what}", 400, "invalid_request", "POST", "/v1/orders", body, key="A",
                field=field, raw=raw, headers=J if raw else None)
    refused("400 quote: unknown field", 400, "invalid_request", "POST", "/v1/quotes",
            dict(ob, colour="red"), key="A", field="colour")
    refused("400 spot order: hours is not a spot field", 400, "invalid_request", "POST", "/v1/orders",
            {"kind": "spot", "gpu_model": MODEL, "region": REGION, "gpus": 8, "limit_price": 1,
             "bogus": 1}, key="A", field="bogus")
    pb = {"name": "p-two", "gpu_model": MODEL, "region": REGION, "nodes": 2, "gpus_per_node": 8,
          "nodes_per_rack": 1}
    for what, body, field in (("nodes 0", dict(pb, nodes=0), "nodes"),
                              ("nodes 100001", dict(pb, nodes=100001), "nodes"),
                              ("gpus_per_node 17", dict(pb, gpus_per_node=17), "gpus_per_node"),
                              ("gpu_model with a space", dict(pb, gpu_model="H100 SXM"), "gpu_model"),
                              ("gpu_model 33 chars", dict(pb, gpu_model="H" * 33), "gpu_model"),
                              ("region with a slash", dict(pb, region="us/west"), "region"),
                              ("nodes a string", dict(pb, nodes="2"), "nodes"),
                              ("unknown field", dict(pb, color=1), "color")):
        refused(f"400 pool: {what}", 400, "invalid_request", "POST", "/v1/pools", body, key="P", field=field)
    for what, body, field in (("price a string", dict(offer, price="2000000"), "price"),
                              ("price fractional", dict(offer, price=2.5), "price"),
                              ("start not whole", dict(offer, start="2027-01-05T00:00:30Z"), "start"),
                              ("gpus 0", dict(offer, gpus=0), "gpus"),
                              ("unknown field", dict(offer, discount=3), "discount")):
        refused(f"400 offer: {what}", 400, "invalid_request", "POST", "/v1/offers", body, key="P", field=field)
    # ASSUMPTION: end before start is 400 (decidable from the request) or 422 (the status table).
    before = snap()
    st, hd, b = api("POST", "/v1/offers", dict(offer, start=t(6), end=t(5)), key=keys["P"])
    check(is_err(st, hd, b, 400, "invalid_request", field="end") or is_err(st, hd, b, 422, "unprocessable"),
          f"offer end before start: {st} {b}")
    check(snap() == before, "offer end before start changed something")
    for what, body, field in (("negative", {"amount": -5}, "amount"), ("zero", {"amount": 0}, "amount"),
                              ("fractional", {"amount": 1.5}, "amount"), ("a string", {"amount": "5"}, "amount"),
                              ("unknown field", {"amount": 5, "memo": "x"}, "memo")):
        refused(f"400 deposit: {what}", 400, "invalid_request", "POST",
                f"/v1/accounts/{ids['A']}/deposits", body, key="admin", field=field)
    refused("400 account: unknown role", 400, "invalid_request", "POST", "/v1/accounts",
            {"name": "x", "roles": ["king"]}, key="admin", field="roles")
    # \u0000 is valid JSON, so not invalid_json: the field that holds it is refused.
    refused("400 account: a role with NUL in it", 400, "invalid_request", "POST", "/v1/accounts",
            {"name": "x", "roles": ["buyer\u0000x"]}, key="admin", field="roles")
    refused("400 order: a start with NUL in it", 400, "invalid_request", "POST", "/v1/orders",
            order_body(start=t(2) + "\u0000junk"), key="A", field="start")
    refused("400 clock: advance 0", 400, "invalid_request", "POST", "/v1/admin/clock",
            {"advance_seconds": 0}, key="admin", field="advance_seconds")
    refused("400 before 402: a bad field on an unaffordable order", 400, "invalid_request", "POST",
            "/v1/orders", dict(order_body(gpus=100000, hours=8784, limit=1_000_000_000), colour=1),
            key="A", field="colour")

    # ---- list parameters and pagination
    for q, field in (("limit=0", "limit"), ("limit=501", "limit"), ("limit=abc", "limit"),
                     ("limit=-1", "limit"), ("limit=%2B1", "limit"), ("cursor=not-a-cursor", "cursor"),
                     ("cursor=%2B5", "cursor"), ("cursor=99999999999999999999999", "cursor")):
        refused(f"400 GET /v1/orders?{q}", 400, "invalid_request", "GET", f"/v1/orders?{q}", key="B",
                field=field)
    mine = []
    for i in range(7):
        st, _, o = api("POST", "/v1/orders", order_body(gpus=1, start=t(4, i), hours=1, limit=1_000_000),
                       key=keys["B"])
        must(st == 201 and o.get("status") == "open", f"resting order {i}: {st} {o}")
        mine.append(o["id"])
    full = list_all(api, keys["B"], "/v1/orders?limit=500")
    check(len(full) == 8 and set(mine) | {b_open["id"]} == {o["id"] for o in full},
          f"B's 8 orders in one page: {[o['id'] for o in full]}")
    pages, cursor, seen = 0, None, []
    while True:
        st, _, pg = api("GET", "/v1/orders?limit=3" + (f"&cursor={cursor}" if cursor else ""), key=keys["B"])
        must(st == 200 and isinstance(pg.get("data"), list), f"page: {st} {pg}")
        pages += 1
        check(len(pg["data"]) <= 3, f"a page holds at most limit items: {len(pg['data'])}")
        seen += [o["id"] for o in pg["data"]]
        cursor = pg.get("next_cursor")
        if cursor is None or pages > 10:
            break
        check(isinstance(cursor, str) and cursor != "", f"next_cursor is a string: {cursor!r}")
    # (a server may end with an empty page after a full one; 8 items need 3 or 4 pages)
    check(pages in (3, 4) and seen == [o["id"] for o in full],
          f"limit=3 pages through all 8 in the same order, no repeats: {pages} pages, {seen}")
    st, _, pg = api("GET", "/v1/orders?limit=1&status=filled", key=keys["A"])
    check(st == 200 and [o["id"] for o in pg.get("data", [])] == [a_fill["id"]], f"status filter: {st} {pg}")
    if st == 200 and pg.get("next_cursor") is not None:   # a full page may carry a cursor to an empty one
        st, _, pg = api("GET", f"/v1/orders?limit=1&status=filled&cursor={pg['next_cursor']}", key=keys["A"])
        check(st == 200 and pg.get("data") == [] and pg.get("next_cursor") is None,
              f"status filter, past the last item: {st} {pg}")
    st, _, pg = api("GET", "/v1/orders?status=open", key=keys["A"])
    check(st == 200 and pg.get("data") == [], f"A has no open orders: {st} {pg}")
    refused("400 status filter unknown", 400, "invalid_request", "GET", "/v1/orders?status=weird",
            key="B", field="status")

    # ---- 422 unprocessable
    refused("422 order starts in the past", 422, "unprocessable", "POST", "/v1/orders",
            order_body(start="2026-12-31T23:00:00Z"), key="A")
    refused("422 order starts now (not in the future)", 422, "unprocessable", "POST", "/v1/orders",
            order_body(start=NOW), key="A")
    refused("422 a start window that begins in the past", 422, "unprocessable", "POST", "/v1/orders",
            order_body(start="2026-12-31T00:00:00Z", latest_start="2027-01-01T05:00:00Z"), key="A",
            field="start")
    refused("422 a start window that ends over 366 days ahead", 422, "unprocessable", "POST",
            "/v1/orders", order_body(start=t(2), latest_start="2028-01-02T05:00:00Z"), key="A",
            field="latest_start")
    refused("400 a book window whose default end is past year 9999", 400, "invalid_request", "GET",
            f"/v1/markets/{MODEL}/book?region={REGION}&start=9999-12-31T23:00:00Z", key="A",
            field="start")
    refused("400 a transfers cursor past int64", 400, "invalid_request", "GET",
            "/v1/account/transfers?cursor=9223372036854775808", key="A", field="cursor")
    refused("422 offer starts in the past", 422, "unprocessable", "POST", "/v1/offers",
            dict(offer, start="2026-12-31T00:00:00Z", end=t(1, 5)), key="P")
    refused("422 offer more GPUs than the pool", 422, "unprocessable", "POST", "/v1/offers",
            dict(offer, gpus=33, start=t(5), end=t(6)), key="P")
    fake_pool = "pool_" + "z" * 20
    _, _, fk = refused("422 offer on a made-up pool", 422, "unprocessable", "POST", "/v1/offers",
                       dict(offer, pool_id=fake_pool, start=t(5), end=t(6)), key="Q")
    _, _, fr = refused("422 offer on another provider's pool", 422, "unprocessable", "POST", "/v1/offers",
                       dict(offer, start=t(5), end=t(6)), key="Q")
    if isinstance(fk, dict) and isinstance(fr, dict) and "error" in fk and "error" in fr:
        check(fk["error"].get("field") == fr["error"].get("field") and
              fk["error"]["message"].replace(fake_pool, "X") == fr["error"]["message"].replace(pool["id"], "X"),
              f"a foreign pool gets exactly a made-up pool's answer: {fk} vs {fr}")
    _, _, fs = refused("422 spot offer on another provider's pool", 422, "unprocessable", "POST", "/v1/offers",
                       {"pool_id": pool["id"], "kind": "spot", "gpus": 8, "price": 1}, key="Q")

    # ---- 402 insufficient_funds: no order, no hold; the exact boundary is accepted
    big = order_body(gpus=100000, hours=8784, limit=1_000_000_000)   # 8.784e17: fits in int64
    refused("402 a hold beyond the balance", 402, "insufficient_funds", "POST", "/v1/orders", big, key="A")
    refused("402 a spot hold beyond the balance", 402, "insufficient_funds", "POST", "/v1/orders",
            {"kind": "spot", "gpu_model": MODEL, "region": REGION, "gpus": 1000,
             "limit_price": 1_000_000_000}, key="A")
    refused("402 a withdrawal beyond the balance", 402, "insufficient_funds", "POST",
            f"/v1/accounts/{ids['A']}/withdrawals", {"amount": 10**15}, key="admin")
    st, _, acc = api("GET", "/v1/account", key=keys["A"])
    avail = acc["balance"]["available"]
    # an order whose hold is 1 micro-USD more than available, then exactly available
    # (limit 1 micro-USD per GPU-hour, 1 GPU, `avail` hours is not allowed; use gpus x hours)
    n_hours = 1
    lim = avail  # limit x 1 x 1 = avail, if avail <= 1e9
    if avail > 1_000_000_000:
        st, _, w = api("POST", f"/v1/accounts/{ids['A']}/withdrawals", {"amount": avail - 999_000_000})
        check(st == 201, f"withdrawal to set up the boundary: {st} {w}")
        lim = 999_000_000
    refused("402 one micro-dollar short", 402, "insufficient_funds", "POST", "/v1/orders",
            order_body(gpus=1, start=t(10), hours=1, limit=lim + 1), key="A")
    st, _, ok_o = api("POST", "/v1/orders", order_body(gpus=1, start=t(10), hours=1, limit=lim), key=keys["A"])
    check(st == 201 and ok_o.get("status") == "open", f"a hold of exactly the available balance: {st} {ok_o}")
    st, _, acc = api("GET", "/v1/account", key=keys["A"])
    check(acc["balance"]["available"] == 0, f"nothing left: {acc}")
    refused("402 with nothing available", 402, "insufficient_funds", "POST", "/v1/orders",
            order_body(gpus=1, start=t(10), hours=1, limit=1), key="A")
    st, _, x = api("DELETE", f"/v1/orders/{ok_o['id']}", key=keys["A"])
    check(st == 200 and x.get("status") == "cancelled", f"cancel the boundary order: {st} {x}")
    st, _, acc = api("GET", "/v1/account", key=keys["A"])
    check(acc["balance"]["available"] == lim, f"its hold released: {acc}")

    # ---- 409 conflict
    refused("409 cancel a filled order", 409, "conflict", "DELETE", f"/v1/orders/{a_fill['id']}", key="A")
    refused("409 cancel a cancelled order", 409, "conflict", "DELETE", f"/v1/orders/{ok_o['id']}", key="A")
    refused("409 an offer overlapping another open offer of the pool", 409, "conflict", "POST", "/v1/offers",
            dict(offer, gpus=1, start=t(2, 23), end=t(4)), key="P")
    refused("409 an offer covering another", 409, "conflict", "POST", "/v1/offers",
            dict(offer, gpus=1, start=t(1, 5), end=t(5)), key="P")
    st, _, adj = api("POST", "/v1/offers", dict(offer, start=t(3), end=t(4)), key=keys["P"])
    check(st == 201, f"an adjacent offer is no overlap: {st} {adj}")
    st, _, x = api("DELETE", f"/v1/offers/{adj['id']}", key=keys["P"])
    check(st == 200 and x.get("status") == "cancelled", f"cancel an offer: {st} {x}")
    st, _, adj2 = api("POST", "/v1/offers", dict(offer, start=t(3), end=t(4), price=2_100_000), key=keys["P"])
    check(st == 201, f"offer again after cancelling: {st} {adj2}")

    # ---- idempotency
    def idem(key, **h):
        return dict({"Idempotency-Key": key}, **h)

    body = order_body(gpus=2, start=t(8), hours=3, limit=1_500_000)
    before = snap()
    k1 = "order-" + uuid.uuid4().hex
    s1, h1, r1 = raw_req(e, "POST", "/v1/orders", body, keys["B"], idem(k1))
    check(s1 == 201 and h1.get("idempotent-replayed", "false").lower() != "true",
          f"first request with a key: {s1} {h1} {r1[:200]}")
    mid = snap()
    s2, h2, r2 = raw_req(e, "POST", "/v1/orders", body, keys["B"], idem(k1))
    check(s2 == s1 and r2 == r1 and h2.get("idempotent-replayed", "").lower() == "true",
          f"replay: same status, byte-identical body, Idempotent-Replayed: true: {s2} {h2} {r2[:200]}")
    check(snap() == mid, "a replay does nothing")
    check(len(mid["B.orders"]) == len(before["B.orders"]) + 1, "one order, not two")
    # An answer that shows a secret once (a new account's API key) replays without it, and the
    # database never holds it: only the key's hash is kept.
    ka = "acct-" + uuid.uuid4().hex
    s1, h1, a1 = raw_req(e, "POST", "/v1/accounts", {"name": "once", "roles": ["buyer"]}, e.key, idem(ka))
    s2, h2, a2 = raw_req(e, "POST", "/v1/accounts", {"name": "once", "roles": ["buyer"]}, e.key, idem(ka))
    j1, j2 = json.loads(a1), json.loads(a2)
    check(s1 == 201 and isinstance(j1.get("api_key"), str) and j1["api_key"].startswith("capx_"),
          f"a new account shows its key: {s1} {a1[:200]}")
    check(s2 == 201 and j2.get("id") == j1.get("id") and j2.get("api_key") is None and
          h2.get("idempotent-replayed", "").lower() == "true",
          f"its replay is the same account without the key: {s2} {a2[:200]}")
    saved = psql(e.conninfo, f"SELECT body FROM idempotency_keys WHERE key = '{ka}'")
    check(saved and j1["api_key"] not in saved, f"the saved answer holds no key: {saved[:200]}")
    bb, mb = before["B.account"][1]["balance"], mid["B.account"][1]["balance"]
    check(mb["held"] - bb["held"] == 1_500_000 * 2 * 3 and
          bb["available"] - mb["available"] == 1_500_000 * 2 * 3, f"held once: {bb} -> {mb}")
    st, hd, b = refused("422 same key, another body", 422, "idempotency_key_reused", "POST", "/v1/orders",
                        dict(body, gpus=3), key="B", headers=idem(k1), no_field=True)
    refused("422 same key, another path", 422, "idempotency_key_reused", "POST", "/v1/quotes",
            body, key="B", headers=idem(k1), no_field=True)
    refused("422 same key, another method and path", 422, "idempotency_key_reused", "DELETE",
            f"/v1/orders/{b_open['id']}", key="B", headers=idem(k1), no_field=True)
    # keys belong to their account: A may use the same key for its own request
    sa, ha, ra = raw_req(e, "POST", "/v1/orders", body, keys["A"], idem(k1))
    check(sa == 201 and ha.get("idempotent-replayed", "false").lower() != "true" and ra != r1,
          f"another account's same key is its own: {sa} {ra[:200]}")
    # a refused request is not saved: its retry is judged afresh
    k2 = "order-" + uuid.uuid4().hex
    big2 = order_body(gpus=64, start=t(9), hours=24, limit=1_000_000)   # hold 1,536 USD
    refused("402 with an idempotency key", 402, "insufficient_funds", "POST", "/v1/orders", big2,
            key="B", headers=idem(k2))
    deposit(api, ids["B"], 2000 * USD)
    s3, h3, r3 = raw_req(e, "POST", "/v1/orders", big2, keys["B"], idem(k2))
    check(s3 == 201 and h3.get("idempotent-replayed", "false").lower() != "true",
          f"the refused request's retry is judged afresh: {s3} {h3} {r3[:200]}")
    # DELETE with a key: the replay answers 200 again, not 409
    k3 = "cancel-" + uuid.uuid4().hex
    oid = json.loads(r3)["id"] if s3 == 201 else "ord_x"
    s4, h4, r4 = raw_req(e, "DELETE", f"/v1/orders/{oid}", None, keys["B"], idem(k3))
    check(s4 == 200, f"cancel with a key: {s4} {r4[:200]}")
    s5, h5, r5 = raw_req(e, "DELETE", f"/v1/orders/{oid}", None, keys["B"], idem(k3))
    check(s5 == 200 and r5 == r4 and h5.get("idempotent-replayed", "").lower() == "true",
          f"cancel replayed: {s5} {h5} {r5[:200]}")
    # deposits with a key: the money arrives once
    k4 = "dep-" + uuid.uuid4().hex
    st, _, acc0 = api("GET", "/v1/account", key=keys["A"])
    d1 = raw_req(e, "POST", f"/v1/accounts/{ids['A']}/deposits", {"amount": 7 * USD}, e.key, idem(k4))
    d2 = raw_req(e, "POST", f"/v1/accounts/{ids['A']}/deposits", {"amount": 7 * USD}, e.key, idem(k4))
    st, _, acc1 = api("GET", "/v1/account", key=keys["A"])
    check(d1[0] == 201 and d2[0] == 201 and d1[2] == d2[2] and
          d2[1].get("idempotent-replayed", "").lower() == "true" and
          acc1["balance"]["available"] - acc0["balance"]["available"] == 7 * USD,
          f"a replayed deposit credits once: {d1} {d2} {acc0} {acc1}")
    refused("400 an idempotency key over 255 characters", 400, "invalid_request", "POST", "/v1/orders",
            body, key="B", headers=idem("k" * 256))
    # Printable ASCII includes the space: a key with one inside is a key like any other.
    sp = "with space " + uuid.uuid4().hex
    st1, _, dd1 = api("POST", f"/v1/accounts/{ids['A']}/deposits", {"amount": 1}, key=e.key, headers=idem(sp))
    st2, h2, dd2 = api("POST", f"/v1/accounts/{ids['A']}/deposits", {"amount": 1}, key=e.key, headers=idem(sp))
    check(st1 == 201 and st2 == 201 and dd1 == dd2 and h2.get("idempotent-replayed", "").lower() == "true",
          f"a key with a space is accepted and replays: {st1} {st2} {dd1} {dd2}")
    # in flight: two connections send the same keyed request at the same instant; one is
    # applied, the other is either told it is in flight (409) or gets the replay.
    if True:
        host = f"Host: 127.0.0.1:{e.port}\r\n"
        saw_in_flight = 0
        for attempt in range(10):
            kk = "race-" + uuid.uuid4().hex
            data = json.dumps(order_body(gpus=1, start=t(7, attempt), hours=1, limit=1_000_000)).encode()
            req = (f"POST /v1/orders HTTP/1.1\r\n{host}Authorization: Bearer {keys['BP']}\r\n"
                   f"Content-Type: application/json\r\nIdempotency-Key: {kk}\r\n"
                   f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n").encode() + data
            socks = [e.tls_socket() for _ in range(2)]
            before_n = len(list_all(api, keys["BP"], "/v1/orders?limit=500"))
            for s in socks:
                s.sendall(req)
            answers = []
            for s in socks:
                s.settimeout(10)
                out = b""
                try:
                    while True:
                        chunk = s.recv(65536)
                        if not chunk:
                            break
                        out += chunk
                except (socket.timeout, ssl.SSLError, OSError):
                    pass
                s.close()
                head, _, bd = out.partition(b"\r\n\r\n")
                try:
                    answers.append((int(head.split(b" ", 2)[1]), head.lower(), json.loads(bd)))
                except (IndexError, ValueError):
                    answers.append((None, head, bd))
            sts = sorted(a[0] or 0 for a in answers)
            after_n = len(list_all(api, keys["BP"], "/v1/orders?limit=500"))
            check(after_n == before_n + 1, f"race {attempt}: exactly one order: {before_n} -> {after_n}")
            if sts == [201, 409]:
                a409 = [a for a in answers if a[0] == 409][0]
                check(is_err(409, None, a409[2], 409, "idempotency_key_in_flight", no_field=True),
                      f"race {attempt}: 409 is idempotency_key_in_flight: {a409}")
                saw_in_flight += 1
            else:
                check(sts == [201, 201] and any(b"idempotent-replayed: true" in a[1] for a in answers),
                      f"race {attempt}: otherwise one answer is the replay: {answers}")
        check(saw_in_flight >= 1, f"409 idempotency_key_in_flight seen in {saw_in_flight} of 10 races")

    # ---- the ledger after all of it
    st, _, lc = api("GET", "/v1/admin/ledger/check")
    check(st == 200 and lc.get("balanced") is True and lc.get("violations") == [], f"ledger: {st} {lc}")

    # ---- 429 rate_limited: 5 requests/s, burst 5, for all keys of an account together
    e.close()
    rl.up()
    rapi = Api(rl)
    st, _, acc = rapi("POST", "/v1/accounts", {"name": "fast", "roles": ["buyer"]})
    must(st == 201, f"account on the rate-limited server: {st} {acc}")
    fid, fkey = acc["id"], acc["api_key"]
    st, _, k2b = rapi("POST", f"/v1/accounts/{fid}/api-keys")
    must(st == 201, f"second key: {st} {k2b}")
    st, _, oth = rapi("POST", "/v1/accounts", {"name": "calm", "roles": ["buyer"]})
    must(st == 201, f"other account: {st} {oth}")
    st, _, b = rapi("POST", f"/v1/accounts/{fid}/deposits", {"amount": 1000 * USD})
    must(st == 201, f"deposit on the rate-limited server: {st} {b}")
    hour = (int(time.time()) // 3600 + 48) * 3600
    rl_start = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(hour))
    time.sleep(1.5)   # the admin's bucket refills
    c = rl.conn()
    statuses, limited = [], None
    t0 = time.time()
    for i in range(16):
        st, hd, b = rl.req("GET", "/v1/account", key=fkey if i % 2 == 0 else k2b["api_key"], conn=c)
        statuses.append(st)
        if st == 429 and limited is None:
            limited = (hd, b)
    elapsed = time.time() - t0
    okn = statuses.count(200)
    check(set(statuses) <= {200, 429} and limited is not None,
          f"429 after the burst, both keys counting: {statuses}")
    check(okn <= 5 + int(5 * elapsed) + 1, f"at most burst + rate x time answered: {okn} in {elapsed:.2f}s")
    if limited:
        hd, b = limited
        check(is_err(429, hd, b, 429, "rate_limited", no_field=True), f"429 body: {b}")
        ra = hd.get("retry-after", "")
        check(ra.isdigit() and 1 <= int(ra) <= 60, f"Retry-After: {ra!r}")
    st, _, b = rl.req("GET", "/v1/account", key=oth["api_key"], conn=c)
    check(st == 200, f"another account is not limited: {st}")
    # a limited write does nothing: exactly the orders that got 201 exist
    created, limited_posts = 0, 0
    for i in range(12):
        st, hd, b = rl.req("POST", "/v1/orders", order_body(gpus=1, start=rl_start, hours=1, limit=1_000_000),
                           key=fkey, conn=c)
        check(st in (201, 429), f"order on the rate-limited server: {st} {b}")
        created += st == 201
        limited_posts += st == 429
    check(limited_posts > 0, f"writes are limited too: {limited_posts}")
    time.sleep(2.5)
    st, _, lst = rl.req("GET", "/v1/orders?limit=500", key=fkey, conn=c)
    check(st == 200 and len(lst.get("data", [])) == created,
          f"only the {created} orders that got 201 exist: {st} {lst}")
    st, _, b = rl.req("GET", "/v1/account", key=k2b["api_key"], conn=c)
    check(st == 200, f"served again after Retry-After: {st} {b}")

    # ---- 409 conflict: over the open-orders limit (6 here); slowly, under the rate limit
    def slow(method, path, body=None):
        time.sleep(0.3)
        return rl.req(method, path, body, key=fkey, conn=c)
    placed = [o["id"] for o in lst.get("data", [])]
    while len(placed) < 6:
        st, _, o = slow("POST", "/v1/orders", order_body(gpus=1, start=rl_start, hours=1, limit=1_000_000))
        must(st == 201 and o.get("status") == "open", f"open order {len(placed) + 1} of 6: {st} {o}")
        placed.append(o["id"])
    st, _, acc0 = slow("GET", "/v1/account")
    st, hd, b = slow("POST", "/v1/orders", order_body(gpus=1, start=rl_start, hours=1, limit=1_000_000))
    check(is_err(st, hd, b, 409, "conflict"), f"409 a 7th open order over the limit of 6: {st} {b}")
    st, _, acc1 = slow("GET", "/v1/account")
    st, _, lst2 = slow("GET", "/v1/orders?limit=500")
    check(acc0 == acc1 and len(lst2.get("data", [])) == 6, f"the refused order changed nothing: {acc0} {acc1}")
    st, _, x = slow("DELETE", f"/v1/orders/{placed[0]}")
    check(st == 200, f"cancel one: {st} {x}")
    st, _, o = slow("POST", "/v1/orders", order_body(gpus=1, start=rl_start, hours=1, limit=1_000_000))
    check(st == 201, f"under the limit again: {st} {o}")
    c.close()
except Fatal:
    pass
except Exception:
    check(False, "unexpected exception:\n" + traceback.format_exc())
finally:
    e.close()
    rl.close()
done()
