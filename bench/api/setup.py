#!/usr/bin/env python3
"""bench/api/setup.py — the market the API benchmark trades in, and the checks around it.

  setup.py setup  OUTDIR   providers, pools, offers, buyers with deposits; writes OUTDIR/keys
                           (one buyer key a line), OUTDIR/params.env (times for the Lua scripts)
  setup.py check           GET /v1/admin/ledger/check; prints one line, exits 1 unless clean
  setup.py get PATH OUT    GET PATH with the first buyer key of $BENCH_KEYS, body to OUT
                           (the book, for nginx); prints its size

Environment: BENCH_PORT (capxd), CAPX_VAR (admin.key, tls/cert.pem), BENCH_BUYERS (default 8).
Standard library only; every request over one keep-alive TLS connection to 127.0.0.1.
"""
import http.client
import json
import os
import ssl
import sys
import time

PORT = int(os.environ["BENCH_PORT"])
VAR = os.environ["CAPX_VAR"]
MODEL, REGION = "H100-SXM-80GB", "us-west"
HOUR = 3600


class Api:
    def __init__(self):
        self.ctx = ssl.create_default_context(cafile=os.path.join(VAR, "tls", "cert.pem"))
        with open(os.path.join(VAR, "admin.key")) as f:
            self.admin = f.read().strip()
        self.c = None

    def __call__(self, method, path, body=None, key=None, ok=(200, 201)):
        if self.c is None:
            self.c = http.client.HTTPSConnection("127.0.0.1", PORT, context=self.ctx, timeout=120)
        h = {"Authorization": "Bearer " + (key or self.admin)}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            h["Content-Type"] = "application/json"
        self.c.request(method, path, body=data, headers=h)
        r = self.c.getresponse()
        raw = r.read()
        if r.status not in ok:
            sys.exit(f"setup: {method} {path} -> {r.status} {raw[:300]!r}")
        return r.status, raw


def iso(t):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def setup(out):
    api = Api()
    nbuyers = int(os.environ.get("BENCH_BUYERS", "8"))
    _, raw = api("GET", "/v1/clock")
    now = int(time.mktime(time.strptime(json.loads(raw)["now"][:19], "%Y-%m-%dT%H:%M:%S"))
              - time.timezone)
    # Supply starts two whole hours ahead (an hour boundary during the run expires nothing we
    # use) and lasts 30 days: 4 pools of 1,000 nodes x 8 GPUs, at 2.00-2.30 USD per GPU-hour.
    start = (now // HOUR + 2) * HOUR
    days = 30
    end = start + days * 24 * HOUR
    for p in range(2):
        _, raw = api("POST", "/v1/accounts", {"name": f"provider{p}", "roles": ["provider"]})
        pk = json.loads(raw)["api_key"]
        for q in range(2):
            _, raw = api("POST", "/v1/pools", {"name": f"p{p}-{q}", "gpu_model": MODEL,
                                               "region": REGION, "nodes": 1000,
                                               "gpus_per_node": 8, "nodes_per_rack": 4}, key=pk)
            pool = json.loads(raw)["id"]
            api("POST", "/v1/offers", {"pool_id": pool, "gpus": 8000, "start": iso(start),
                                       "end": iso(end), "price": 2_000_000 + 100_000 * (2 * p + q)},
                key=pk)
    keys = []
    for b in range(nbuyers):
        _, raw = api("POST", "/v1/accounts", {"name": f"buyer{b}", "roles": ["buyer"]})
        acct = json.loads(raw)
        api("POST", f"/v1/accounts/{acct['id']}/deposits", {"amount": 10**15})
        keys.append(acct["api_key"])
    with open(os.path.join(out, "keys"), "w") as f:
        f.write("\n".join(keys) + "\n")
    with open(os.path.join(out, "params.env"), "w") as f:
        # BENCH_T0: first hour of supply; BENCH_HOURS: its length in hours.
        f.write(f"BENCH_T0={start}\nBENCH_HOURS={days * 24}\n"
                f"BENCH_BOOK_PATH='/v1/markets/{MODEL}/book?region={REGION}"
                f"&start={iso(start)}&end={iso(start + 24 * HOUR)}'\n")


def check():
    api = Api()
    _, raw = api("GET", "/v1/admin/ledger/check")
    b = json.loads(raw)
    ok = b.get("balanced") is True and b.get("violations") == []
    print(f"ledger_check balanced={b.get('balanced')} accounts={b.get('accounts')} "
          f"transfers={b.get('transfers')} violations={len(b.get('violations') or [])} "
          f"ok={'true' if ok else 'false'}")
    if not ok:
        print(json.dumps(b)[:2000], file=sys.stderr)
    sys.exit(0 if ok else 1)


def get(path, out):
    api = Api()
    with open(os.environ["BENCH_KEYS"]) as f:
        key = f.readline().strip()
    _, raw = api("GET", path, key=key)
    with open(out, "wb") as f:
        f.write(raw)
    print(len(raw))


if __name__ == "__main__":
    cmd = sys.argv[1] if len(sys.argv) > 1 else ""
    if cmd == "setup":
        setup(sys.argv[2])
    elif cmd == "check":
        check()
    elif cmd == "get":
        get(sys.argv[2], sys.argv[3])
    else:
        sys.exit(__doc__)
