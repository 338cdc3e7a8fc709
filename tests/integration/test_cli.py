"""capx and capx-admin end to end, against a real capxd over TLS (simulated clock).

capx-admin runs with nothing but the environment dev-up.sh was started with (CAPX_VAR,
CAPX_PORT): it must find the URL, the certificate and the admin key by itself. It creates a
provider and a buyer, deposits and withdraws exact dollar amounts (idempotently), creates and
revokes keys, and checks the ledger. capx, configured by CAPX_URL / CAPX_API_KEY / CAPX_CACERT
or a config file, then runs a small market: the provider registers a pool and offers it, the
buyer orders (one fills, one rests and is cancelled, a spot bid), lists, shows, reads the book,
the trades and its account. Every figure the tools print is compared with the API's own answer.

Error paths: a bad or revoked key (exit 1, unauthenticated), refusals with a field, a server
that answers 503 (exit 4, with the idempotency key to retry with), no certificate to trust and
the server down (exit 3), invalid flags and values (exit 2), a config file others can read
(refused, exit 2).
"""
import json
import os
import re
import ssl
import socket
import subprocess
import tempfile
import threading
import time
import traceback

from capxtest import BUILD, Env, check, done, need_env

need_env()

CAPX = os.path.join(BUILD, "clients", "capx")
ADMIN = os.path.join(BUILD, "clients", "capx-admin")
MODEL, REGION = "H100-SXM-80GB", "us-west"
USD = 1_000_000


class Fatal(Exception):
    """A step the rest of the test depends on failed."""


def must(cond, what):
    if not check(cond, what):
        raise Fatal(what)


def clean_env(home):
    """The caller's environment without any CAPX_ setting, with its own empty HOME."""
    e = {k: v for k, v in os.environ.items() if not k.startswith("CAPX_") and k != "XDG_CONFIG_HOME"}
    e["HOME"] = home
    return e


def run(argv, env, timeout=60):
    r = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout)
    return r.returncode, r.stdout, r.stderr


def as_json(out, what):
    try:
        return json.loads(out)
    except ValueError:
        check(False, f"{what}: output is not JSON: {out!r}")
        return {}


class Tools:
    def __init__(self, env):
        self.env = env
        self.home = tempfile.mkdtemp(prefix="cli-home.", dir=env.var)
        self.url = f"https://127.0.0.1:{env.port}"
        self.cacert = os.path.join(env.var, "tls", "cert.pem")

    def admin(self, *args, extra=None):
        e = dict(self.env.env)
        e["HOME"] = self.home
        e.update(extra or {})
        return run([ADMIN, *args], e)

    def capx_env(self, key, **over):
        e = clean_env(self.home)
        e.update({"CAPX_URL": self.url, "CAPX_CACERT": self.cacert})
        if key is not None:
            e["CAPX_API_KEY"] = key
        e.update(over)
        return e

    def capx(self, key, *args, **over):
        return run([CAPX, *args], self.capx_env(key, **over))

    def capx_json(self, key, *args):
        rc, out, err = self.capx(key, *args, "--format", "json")
        must(rc == 0, f"capx {' '.join(args)}: rc {rc}, stderr {err}")
        return as_json(out, f"capx {' '.join(args)}")

    def admin_json(self, *args):
        rc, out, err = self.admin(*args, "--format", "json")
        must(rc == 0, f"capx-admin {' '.join(args)}: rc {rc}, stderr {err}")
        return as_json(out, f"capx-admin {' '.join(args)}")


def fake_503_server(cert, key):
    """A TLS server with the given certificate that answers every request 503."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(8)
    body = json.dumps({"error": {"code": "unavailable", "message": "the database cannot be reached"}})

    def serve():
        while True:
            try:
                c, _ = ls.accept()
            except OSError:
                return
            try:
                s = ctx.wrap_socket(c, server_side=True)
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                m = re.search(rb"content-length: *(\d+)", data, re.I)
                rest = data.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in data else b""
                while m and len(rest) < int(m.group(1)):
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    rest += chunk
                s.sendall(("HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                           f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n{body}").encode())
                s.close()
            except (OSError, ssl.SSLError):
                c.close()

    threading.Thread(target=serve, daemon=True).start()
    return ls


def test_admin(t):
    """capx-admin with no flags at all inside the dev-up environment."""
    rc, out, err = t.admin("schema-check")
    check(rc == 0 and "schema is current" in out, f"schema-check still works: {rc} {out} {err}")
    prov = t.admin_json("accounts", "create", "--name", "gpu-farm", "--roles", "provider")
    buyer = t.admin_json("accounts", "create", "--name", "lab", "--roles", "buyer")
    for a in (prov, buyer):
        must(re.match(r"^acct_", a.get("id", "")) and re.match(r"^capx_[a-z2-7]{32}$", a.get("api_key", "")),
             f"accounts create answers id and key: {a}")
    check(prov.get("roles") == ["provider"] and buyer.get("roles") == ["buyer"], f"roles: {prov} {buyer}")
    rc, out, err = t.admin("accounts", "create", "--name", "two-roles", "--roles", "buyer,provider")
    check(rc == 0 and "API KEY" in out and "buyer,provider" in out and "shown only once" in err,
          f"accounts create, table: {rc} {out} {err}")
    rc, out, _ = t.admin("accounts", "list", "--format", "csv")
    check(rc == 0 and out.splitlines()[0].strip() == "id,name,roles" and "gpu-farm" in out and
          '"buyer,provider"' in out, f"accounts list csv: {rc} {out}")
    rc, out, _ = t.admin("accounts", "list")
    check(rc == 0 and out.startswith("ID ") and "lab" in out, f"accounts list table: {out}")
    lst = t.admin_json("accounts", "list", "--limit", "1", "--all")
    check(len(lst.get("data", [])) >= 4 and lst.get("next_cursor") is None,
          f"accounts list --all follows cursors: {lst}")

    # Money in and out, exact to the micro-dollar.
    d = t.admin_json("deposit", "--account", buyer["id"], "--amount", "5000.00")
    check(d.get("amount") == 5000 * USD and d.get("account_id") == buyer["id"] and
          d.get("id", "").startswith("txn_"), f"deposit 5000.00: {d}")
    d = t.admin_json("deposit", "--account", buyer["id"], "--amount", "1234.567891")
    check(d.get("amount") == 1234567891, f"deposit 1234.567891 is exact: {d}")
    w = t.admin_json("withdraw", "--account", buyer["id"], "--amount", "1234.567891")
    check(w.get("amount") == 1234567891, f"withdraw 1234.567891: {w}")
    rc, out, err = t.admin("deposit", "--account", buyer["id"], "--amount", "0.000001")
    check(rc == 0 and "0.000001" in out, f"deposit one micro-dollar, table shows dollars: {rc} {out} {err}")
    rc, out, err = t.admin("withdraw", "--account", buyer["id"], "--amount", "0.000001")
    check(rc == 0, f"withdraw one micro-dollar: {rc} {err}")
    rc, out, err = t.admin("withdraw", "--account", buyer["id"], "--amount", "1000000")
    check(rc == 1 and "capx-admin: insufficient_funds:" in err and "(amount)" in err,
          f"withdraw more than available: exit 1 insufficient_funds (amount): {rc} {err}")
    rc, _, err = t.admin("deposit", "--account", "acct_nosuchaccount", "--amount", "1")
    check(rc == 1 and "not_found" in err, f"deposit to an unknown account: {rc} {err}")
    # The same idempotency key twice moves money once.
    k = "cli-test-deposit-1"
    d1 = t.admin_json("deposit", "--account", prov["id"], "--amount", "10.50", "--idempotency-key", k)
    rc, out, err = t.admin("deposit", "--account", prov["id"], "--amount", "10.50",
                           "--idempotency-key", k, "--format", "json")
    d2 = as_json(out, "replayed deposit")
    check(rc == 0 and d2.get("id") == d1.get("id") and "saved answer" in err,
          f"a retried deposit is replayed, not repeated: {d1} {d2} {err}")
    st, _, acct = t.env.req("GET", "/v1/account", key=prov["api_key"])
    check(st == 200 and acct["balance"]["available"] == 10_500_000,
          f"provider balance after a replayed deposit is 10.50: {acct}")
    st, _, acct = t.env.req("GET", "/v1/account", key=buyer["api_key"])
    check(st == 200 and acct["balance"] == {"available": 5000 * USD, "held": 0},
          f"buyer balance 5000.00 exactly: {acct}")

    # Keys: a second key works, a revoked one does not.
    nk = t.admin_json("keys", "create", "--account", buyer["id"])
    check(nk.get("account_id") == buyer["id"] and nk.get("id", "").startswith("key_"), f"keys create: {nk}")
    rc, out, err = t.capx(nk["api_key"], "account", "--format", "json")
    check(rc == 0 and as_json(out, "account").get("account", {}).get("id") == buyer["id"],
          f"the new key works: {rc} {out} {err}")
    rc, out, err = t.admin("keys", "revoke", nk["id"])
    check(rc == 0 and nk["id"] in out, f"keys revoke: {rc} {out} {err}")
    rc, out, err = t.capx(nk["api_key"], "account")
    check(rc == 1 and err.startswith("capx: unauthenticated:"), f"revoked key: exit 1 unauthenticated: {rc} {err}")
    rc, _, err = t.admin("keys", "revoke", "key_nosuchkey")
    check(rc == 1 and "not_found" in err, f"revoke an unknown key: {rc} {err}")
    return prov, buyer


def test_market(t, prov, buyer):
    pk, bk = prov["api_key"], buyer["api_key"]
    pool = t.capx_json(pk, "pools", "create", "--name", "sjc-a", "--gpu-model", MODEL, "--region", REGION,
                       "--nodes", "4", "--gpus-per-node", "8", "--nodes-per-rack", "2")
    must(pool.get("id", "").startswith("pool_") and pool.get("gpus") == 32, f"pools create: {pool}")
    pools = t.capx_json(pk, "pools", "list")
    check([p["id"] for p in pools.get("data", [])] == [pool["id"]], f"pools list: {pools}")
    rc, out, err = t.capx(pk, "pools", "show", pool["id"])
    check(rc == 0 and re.search(r"^GPUS\s+32$", out, re.M), f"pools show, record view: {rc} {out} {err}")

    offer = t.capx_json(pk, "offers", "create", "--pool", pool["id"], "--gpus", "16",
                        "--start", "2027-01-02T00:00:00Z", "--duration", "30d", "--price", "2.10/gpu-hr")
    must(offer.get("id", "").startswith("ofr_"), f"offers create: {offer}")
    check(offer.get("price") == 2_100_000 and offer.get("end") == "2027-02-01T00:00:00Z" and
          offer.get("gpus") == 16 and offer.get("status") == "open", f"offer fields: {offer}")
    spot_offer = t.capx_json(pk, "offers", "create", "--pool", pool["id"], "--kind", "spot", "--gpus", "8",
                             "--price", "1.5")
    check(spot_offer.get("kind") == "spot" and spot_offer.get("price") == 1_500_000, f"spot offer: {spot_offer}")
    rc, out, err = t.capx(pk, "offers", "list")
    lines = out.splitlines()
    check(rc == 0 and lines and lines[0].startswith("ID ") and "$/GPU-HR" in lines[0] and
          any(offer["id"] in ln and " 2.10 " in ln for ln in lines), f"offers list table: {out} {err}")
    # Columns line up: every row starts its PRICE column where the header does.
    if rc == 0 and len(lines) >= 2:
        col_end = lines[0].index("$/GPU-HR") + len("$/GPU-HR")
        check(all(ln[col_end - 4:col_end] in ("2.10", "1.50") for ln in lines[1:]),
              f"aligned money column: {lines}")

    # The buyer: one order fills, one rests and is cancelled.
    order = t.capx_json(bk, "orders", "create", "--gpu-model", MODEL, "--region", REGION, "--gpus", "8",
                        "--start", "2027-01-02T00:00:00Z", "--duration", "24h", "--limit-price", "2.35/gpu-hr")
    must(order.get("id", "").startswith("ord_"), f"orders create: {order}")
    check(order.get("status") == "filled" and order.get("filled_gpus") == 8 and
          order.get("limit_price") == 2_350_000 and order.get("hours") == 24 and
          len(order.get("contracts", [])) == 1, f"the order fills from the offer: {order}")
    rest = t.capx_json(bk, "orders", "create", "--gpu-model", MODEL, "--region", REGION, "--gpus", "8",
                       "--start", "2027-01-05T00:00:00Z", "--duration", "2d", "--limit-price", "1.000001")
    check(rest.get("status") == "open" and rest.get("limit_price") == 1_000_001 and rest.get("hours") == 48 and
          rest.get("hold") == 1_000_001 * 8 * 48, f"a low bid rests with its exact hold: {rest}")
    spot = t.capx_json(bk, "orders", "create", "--kind", "spot", "--gpu-model", MODEL, "--region", REGION,
                       "--gpus", "2", "--limit-price", "3")
    check(spot.get("kind") == "spot" and spot.get("limit_price") == 3 * USD and
          spot.get("status") in ("pending", "running"), f"spot order: {spot}")

    lst = t.capx_json(bk, "orders", "list")
    check(sorted(o["id"] for o in lst.get("data", [])) == sorted([order["id"], rest["id"], spot["id"]]),
          f"orders list: {lst}")
    lst = t.capx_json(bk, "orders", "list", "--status", "open")
    check([o["id"] for o in lst.get("data", [])] == [rest["id"]], f"orders list --status open: {lst}")
    rc, out, err = t.capx(bk, "orders", "list", "--format", "csv")
    rows = out.strip().splitlines()
    check(rc == 0 and rows[0].startswith("id,kind,status,") and len(rows) == 4 and
          any(order["id"] in r and ",2.35," in r for r in rows), f"orders list csv: {out} {err}")
    rc, out, err = t.capx(bk, "orders", "list", "--format", "csv", "--limit", "2")
    rows = out.strip().splitlines()
    check(rc == 0 and len(rows) == 3 and "more results: add --cursor" in err,
          f"a CSV page with more after it says so on stderr: {out} {err}")
    rc, out, err = t.capx(bk, "orders", "show", order["id"])
    check(rc == 0 and re.search(r"^LIMIT \$/GPU-HR\s+2\.35$", out, re.M) and order["contracts"][0] in out,
          f"orders show: {out} {err}")

    c = t.capx_json(bk, "orders", "cancel", rest["id"])
    check(c.get("status") == "cancelled", f"orders cancel: {c}")
    rc, _, err = t.capx(bk, "orders", "cancel", rest["id"])
    check(rc == 1 and err.startswith("capx: conflict:"), f"cancel twice: exit 1 conflict: {rc} {err}")
    rc, _, err = t.capx(bk, "orders", "show", "ord_doesnotexist")
    check(rc == 1 and err.startswith("capx: not_found:"), f"unknown order: exit 1 not_found: {rc} {err}")
    c = t.capx_json(bk, "orders", "cancel", spot["id"])
    check(c.get("status") == "cancelled", f"cancel the spot order: {c}")

    # Contracts are visible to both sides, money in dollars.
    ctr = order["contracts"][0]
    cs = t.capx_json(bk, "contracts", "list")
    check([x["id"] for x in cs.get("data", [])] == [ctr], f"contracts list: {cs}")
    cp = t.capx_json(pk, "contracts", "show", ctr)
    check(cp.get("price") == 2_100_000 and cp.get("amount") == 2_100_000 * 8 * 24 and
          cp.get("gpus") == 8, f"contract seen by the provider: {cp}")
    rc, out, err = t.capx(bk, "contracts", "show", ctr)
    check(rc == 0 and re.search(r"^AMOUNT \$\s+403\.20$", out, re.M), f"contract amount in dollars: {out} {err}")

    # Market data.
    tr = t.capx_json(bk, "market", "trades", MODEL)
    check(any(x.get("price") == 2_100_000 and x.get("gpus") == 8 for x in tr.get("data", [])),
          f"market trades: {tr}")
    rc, out, err = t.capx(bk, "market", "trades", MODEL, "--region", REGION)
    check(rc == 0 and " 2.10 " in out, f"market trades table: {out} {err}")
    book = t.capx_json(bk, "market", "book", MODEL, "--region", REGION, "--start", "2027-01-10T00:00:00Z",
                       "--end", "2027-01-11T00:00:00Z")
    check(any(a.get("price") == 2_100_000 for a in book.get("asks", [])), f"market book json: {book}")
    rc, out, err = t.capx(bk, "market", "book", MODEL, "--region", REGION, "--start", "2027-01-10T00:00:00Z")
    check(rc == 0 and re.search(r"^ask\s+2\.10\s+16\b", out, re.M), f"market book table: {out} {err}")
    mk = t.capx_json(bk, "market", "list")
    check(any(m.get("gpu_model") == MODEL and m.get("region") == REGION for m in mk.get("data", [])),
          f"market list: {mk}")

    # The account: what capx shows is what the API holds, to the micro-dollar.
    st, _, api = t.env.req("GET", "/v1/account", key=bk)
    a = t.capx_json(bk, "account")
    check(a.get("account", {}).get("balance") == api.get("balance") and
          api["balance"]["available"] + api["balance"]["held"] == 5000 * USD,
          f"capx account == GET /v1/account, nothing lost: {a} {api}")
    check(isinstance(a.get("transfers"), list) and any(x.get("kind") == "deposit" for x in a["transfers"]),
          f"capx account lists transfers: {a}")
    rc, out, err = t.capx(bk, "account")
    want = f"{api['balance']['available'] // USD}.{api['balance']['available'] % USD:06d}".rstrip("0")
    check(rc == 0 and "AVAILABLE $" in out and "Recent transfers" in out and want in out,
          f"capx account table shows {want}: {out} {err}")
    trs = t.capx_json(bk, "account", "transfers", "--limit", "1", "--all")
    check(len(trs.get("data", [])) >= 3, f"account transfers --all pages through: {trs}")

    # A retried create with the same key orders once.
    args = ["orders", "create", "--gpu-model", MODEL, "--region", REGION, "--gpus", "1",
            "--start", "2027-01-20T00:00:00Z", "--duration", "1h", "--limit-price", "0.50",
            "--idempotency-key", "cli-retry-1", "--format", "json"]
    rc1, out1, err1 = t.capx(bk, *args)
    rc2, out2, err2 = t.capx(bk, *args)
    check(rc1 == 0 and rc2 == 0 and as_json(out1, "o1").get("id") == as_json(out2, "o2").get("id") and
          "saved answer" in err2, f"idempotent retry: {out1} {out2} {err2}")
    n = len(t.capx_json(bk, "orders", "list", "--all").get("data", []))
    check(n == 4, f"the retried order exists once (4 orders): {n}")
    args[args.index("0.50")] = "0.60"
    rc, _, err = t.capx(bk, *args)
    check(rc == 1 and "idempotency_key_reused" in err, f"same key, other body: exit 1 reused: {rc} {err}")

    # Refusals carry the field.
    rc, _, err = t.capx(bk, "orders", "create", "--gpu-model", MODEL, "--gpus", "8", "--start",
                        "2027-01-02T00:30:00Z", "--duration", "1h", "--limit-price", "2")
    check(rc == 1 and re.match(r"^capx: invalid_request: .+ \(start\)$", err.strip()),
          f"not a whole hour: exit 1 invalid_request (start): {rc} {err}")
    rc, _, err = t.capx(pk, "orders", "list")
    check(rc == 1 and err.startswith("capx: forbidden:"), f"a provider cannot list orders: {rc} {err}")
    rc, _, err = t.capx(bk, "orders", "create", "--gpu-model", MODEL, "--gpus", "8", "--start",
                        "2027-01-02T00:00:00Z", "--duration", "366d", "--limit-price", "1000")
    check(rc == 1 and "insufficient_funds" in err, f"an order the buyer cannot fund: {rc} {err}")

    # capx-admin check: clean.
    rc, out, err = t.admin("check")
    check(rc == 0 and re.search(r"^BALANCED\s+yes$", out, re.M), f"capx-admin check: {rc} {out} {err}")
    chk = t.admin_json("check")
    check(chk.get("balanced") is True and chk.get("violations") == [], f"check json: {chk}")
    rc, out, _ = t.admin("check", "--format", "csv")
    check(rc == 0 and out.strip() == "code,account,detail", f"check csv: {out}")


def test_errors(t, bk):
    bad = "capx_" + "a" * 32
    rc, out, err = t.capx(bad, "orders", "list")
    check(rc == 1 and err.startswith("capx: unauthenticated:") and out == "",
          f"unknown key: exit 1 unauthenticated: {rc} {err}")
    rc, _, err = t.capx("not-a-key", "account")
    check(rc == 1 and "unauthenticated" in err, f"malformed key: {rc} {err}")
    rc, _, err = t.admin("accounts", "list", extra={"CAPX_API_KEY": bad})
    check(rc == 1 and err.startswith("capx-admin: unauthenticated:"), f"capx-admin with a bad key: {rc} {err}")

    # Usage errors: exit 2, nothing sent.
    usage = [
        ["orders", "create", "--gpus"],
        ["orders", "list", "--bogus"],
        ["frobnicate"],
        ["orders", "explode"],
        ["orders", "show"],
        ["orders", "show", "a", "b"],
        ["orders", "list", "--format", "yaml"],
        ["orders", "list", "--timeout", "0"],
        ["orders", "create", "--gpu-model", MODEL, "--gpus", "8", "--start", "2027-01-02T00:00:00Z",
         "--duration", "1h", "--limit-price", "1e3"],
        ["orders", "create", "--gpu-model", MODEL, "--gpus", "8", "--start", "2027-01-02T00:00:00Z",
         "--duration", "1h", "--limit-price", "2.3500001"],
        ["orders", "create", "--gpu-model", MODEL, "--gpus", "8", "--start", "2027-01-02T00:00:00Z",
         "--duration", "0h", "--limit-price", "2"],
        ["orders", "create", "--gpu-model", MODEL, "--gpus", "-8", "--start", "2027-01-02T00:00:00Z",
         "--duration", "1h", "--limit-price", "2"],
        ["orders", "create", "--gpu-model", MODEL, "--gpus", "8", "--start", "tomorrow",
         "--duration", "1h", "--limit-price", "2"],
        ["orders", "create", "--kind", "spot", "--gpu-model", MODEL, "--gpus", "8", "--start",
         "2027-01-02T00:00:00Z", "--limit-price", "2"],
        ["orders", "create", "--kind", "futures", "--gpu-model", MODEL, "--gpus", "8", "--limit-price", "2"],
        ["offers", "create", "--pool", "pool_x", "--gpus", "8", "--start", "2027-01-02T00:00:00Z",
         "--end", "2027-01-03T00:00:00Z", "--duration", "1d", "--price", "2"],
        ["orders", "create", "--ioc=maybe"],
    ]
    for args in usage:
        rc, out, err = t.capx(bk, *args)
        check(rc == 2 and err.startswith("capx: ") and out == "", f"capx {args}: exit 2, got {rc} {out} {err}")
    rc, _, err = t.capx(bk, "account", CAPX_URL="http://127.0.0.1:1")
    check(rc == 2 and "https://" in err, f"a plain http URL: exit 2: {rc} {err}")
    rc, _, err = run([CAPX, "account"], clean_env(t.home))
    check(rc == 2 and "no server URL" in err, f"no URL configured: exit 2: {rc} {err}")
    rc, _, err = t.capx(None, "account")
    check(rc == 2 and "no API key" in err, f"no key configured: exit 2: {rc} {err}")
    for args in (["deposit", "--account", "acct_x", "--amount", "-5"],
                 ["deposit", "--account", "acct_x", "--amount", "5.0000001"],
                 ["deposit", "--amount", "5"], ["withdraw", "--account", "acct_x"],
                 ["accounts", "create", "--roles", "buyer"], ["accounts", "bogus"],
                 ["keys", "revoke"], ["check", "extra"], ["accounts", "list", "--format", "xml"]):
        rc, out, err = t.admin(*args)
        check(rc == 2 and err.startswith("capx-admin: "), f"capx-admin {args}: exit 2, got {rc} {err}")

    # --help everywhere, exit 0.
    for argv in ([CAPX, "--help"], [CAPX, "orders", "create", "--help"], [CAPX, "market", "book", "--help"],
                 [ADMIN, "--help"], [ADMIN, "deposit", "--help"], [ADMIN, "accounts", "create", "--help"]):
        rc, out, _ = run(argv, clean_env(t.home))
        check(rc == 0 and "usage:" in out and "Exit codes" in out, f"{argv[1:]}: help, exit 0: {rc} {out[:200]}")
    rc, out, _ = run([CAPX, "orders", "create", "--help"], clean_env(t.home))
    check("--limit-price" in out and "--idempotency-key" in out and "CAPX_API_KEY" in out,
          f"orders create --help lists its flags and the settings: {out}")

    # The certificate must be trusted and name the host.
    rc, _, err = t.capx(bk, "account", CAPX_CACERT="")
    check(rc == 3 and "not trusted" in err and "--cacert" in err, f"no CA: exit 3, TLS failure: {rc} {err}")
    other = os.path.join(t.home, "other.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-days", "2", "-subj", "/CN=other", "-keyout", os.path.join(t.home, "other.key"),
                    "-out", other], capture_output=True, check=True)
    rc, _, err = t.capx(bk, "account", CAPX_CACERT=other)
    check(rc == 3 and "not trusted" in err, f"the wrong CA: exit 3: {rc} {err}")
    rc, _, err = t.capx(bk, "account", CAPX_URL=f"https://localhost:{t.env.port}")
    check(rc == 0, f"the certificate names localhost too: {rc} {err}")

    # Config file: refused unless only its owner can read it.
    cfgdir = os.path.join(t.home, ".config", "capx")
    os.makedirs(cfgdir, exist_ok=True)
    cfg = os.path.join(cfgdir, "config")
    with open(cfg, "w") as f:
        f.write(f"# capx settings\nurl = {t.url}\napi_key = {bk}\ncacert = {t.cacert}\n")
    os.chmod(cfg, 0o644)
    rc, out, err = run([CAPX, "account", "--format", "json"], clean_env(t.home))
    check(rc == 2 and "mode 0644" in err and "chmod 600" in err and out == "",
          f"config file 0644 refused: {rc} {err}")
    os.chmod(cfg, 0o600)
    rc, out, err = run([CAPX, "account", "--format", "json"], clean_env(t.home))
    check(rc == 0 and as_json(out, "account via config").get("account", {}).get("name") == "lab",
          f"config file 0600 read: {rc} {out} {err}")
    # capx-admin: the same for a config file that holds an API key (capxd's own settings,
    # which may be public, are not refused).
    acfg = os.path.join(t.home, "admin.conf")
    with open(acfg, "w") as f:
        f.write(f"api_key = {bk}\n")
    os.chmod(acfg, 0o644)
    rc, out, err = t.admin("accounts", "list", "--config", acfg)
    check(rc == 2 and "mode 0644" in err and out == "", f"capx-admin: a config file with a key others read: {rc} {err}")
    with open(acfg, "w") as f:
        f.write("# no secret here\n")
    rc, out, err = t.admin("accounts", "list", "--config", acfg)
    check(rc == 0, f"capx-admin: a public config file without a key is read: {rc} {err}")
    # A database it cannot reach is exit 3, as for capxd (and as --help says).
    rc, out, err = t.admin("schema-check", "--database", "host=127.0.0.1 port=1 dbname=x user=x connect_timeout=2")
    check(rc == 3 and "cannot connect to the database" in err, f"capx-admin schema-check, no database: {rc} {err}")
    e = clean_env(t.home)
    e["CAPX_API_KEY"] = bad
    rc, _, err = run([CAPX, "account"], e)
    check(rc == 1 and "unauthenticated" in err, f"environment overrides the file: {rc} {err}")
    rc, _, err = run([CAPX, "account", "--api-key", bk], e)
    check(rc == 0, f"a flag overrides the environment: {rc} {err}")
    alt = os.path.join(t.home, "alt.conf")
    with open(alt, "w") as f:
        f.write(f"url = {t.url}\napi_key = {bk}\ncacert = {t.cacert}\n")
    os.chmod(alt, 0o640)
    e = clean_env(t.home)
    e["CAPX_CONFIG"] = alt
    rc, _, err = run([CAPX, "account"], e)
    check(rc == 2 and "mode 0640" in err, f"$CAPX_CONFIG 0640 refused: {rc} {err}")
    os.chmod(alt, 0o600)
    rc, _, err = run([CAPX, "account"], e)
    check(rc == 0, f"$CAPX_CONFIG 0600 read: {rc} {err}")
    os.remove(cfg)

    # A server that never answers: a create interrupted while it waits (Ctrl-C) still says how
    # to retry it safely.
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    p = subprocess.Popen([CAPX, "orders", "create", "--kind", "spot", "--gpu-model", MODEL, "--gpus", "1",
                          "--limit-price", "1", "--timeout", "30"],
                         env=t.capx_env(bk, CAPX_URL=f"https://127.0.0.1:{silent.getsockname()[1]}"),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(1.0)
    p.send_signal(2)
    out, err = p.communicate(timeout=20)
    m = re.search(r"--idempotency-key (\S+)", err)
    check(p.returncode != 0 and m and m.group(1).startswith("idem_") and "interrupted" in err,
          f"an interrupted create names its key: {p.returncode} {err}")
    silent.close()

    # A server that fails: exit 4, and a create says how to retry it safely.
    ls = fake_503_server(t.cacert, os.path.join(t.env.var, "tls", "key.pem"))
    url = f"https://127.0.0.1:{ls.getsockname()[1]}"
    rc, _, err = t.capx(bk, "account", CAPX_URL=url)
    check(rc == 4 and "capx: unavailable:" in err, f"503: exit 4: {rc} {err}")
    rc, _, err = t.capx(bk, "orders", "create", "--kind", "spot", "--gpu-model", MODEL, "--gpus", "1",
                        "--limit-price", "1", CAPX_URL=url)
    m = re.search(r"--idempotency-key (\S+)", err)
    check(rc == 4 and m and m.group(1).startswith("idem_"), f"503 on create: exit 4 and the key to retry: {rc} {err}")
    rc, _, err = t.admin("check", "--url", url)
    check(rc == 4 and "capx-admin: unavailable:" in err, f"capx-admin against 503: exit 4: {rc} {err}")
    ls.close()

    # A certificate that is trusted but names another host: refused (exit 3).
    ls = fake_503_server(other, os.path.join(t.home, "other.key"))
    url = f"https://127.0.0.1:{ls.getsockname()[1]}"
    rc, _, err = t.capx(bk, "account", CAPX_URL=url, CAPX_CACERT=other)
    check(rc == 3 and "not trusted" in err and "mismatch" in err,
          f"trusted CA, wrong host name: exit 3: {rc} {err}")
    ls.close()


def test_server_down(t, bk):
    r = t.env.down()
    must(r.returncode == 0, f"dev-down: {r.stdout} {r.stderr}")
    rc, out, err = t.capx(bk, "orders", "list")
    check(rc == 3 and "cannot reach" in err and out == "", f"server down: capx exit 3: {rc} {err}")
    rc, _, err = t.capx(bk, "orders", "create", "--kind", "spot", "--gpu-model", MODEL, "--gpus", "1",
                        "--limit-price", "1", "--idempotency-key", "mine-1")
    check(rc == 3 and "--idempotency-key mine-1" in err, f"server down on create names the key: {rc} {err}")
    rc, _, err = t.admin("check")
    check(rc == 3 and "cannot reach" in err, f"server down: capx-admin exit 3: {rc} {err}")
    rc, _, err = t.admin("deposit", "--account", "acct_x", "--amount", "1")
    check(rc == 3, f"server down: capx-admin deposit exit 3: {rc} {err}")


def main():
    env = Env("cli", clock="sim:2027-01-01T00:00:00Z")
    try:
        env.up()
        t = Tools(env)
        prov, buyer = test_admin(t)
        test_market(t, prov, buyer)
        test_errors(t, buyer["api_key"])
        test_server_down(t, buyer["api_key"])
    except Fatal:
        pass
    except Exception:
        traceback.print_exc()
        check(False, "unexpected exception")
    finally:
        env.close()
    done()


main()
