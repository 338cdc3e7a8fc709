"""capxtest — what capx's integration tests share.

A test gets a real capxd over TLS against a real PostgreSQL. tests/run.sh provides a
throwaway cluster (CAPX_TEST_DATABASE); Env() makes a fresh database on it, a state
directory and free ports, and starts capxd through deploy/dev-up.sh with the sanitizer build
(CAPX_TEST_BUILD). Env(own_pg=True) lets dev-up.sh start a private cluster of its own.
Standard library only.
"""
import http.client
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import uuid

ROOT = os.environ.get("CAPX_ROOT") or os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.environ.get("CAPX_TEST_BUILD", os.path.join(ROOT, "build-test"))
TMP = os.environ.get("CAPX_TEST_TMP") or tempfile.gettempdir()
PSQL = "/usr/lib/postgresql/15/bin/psql"

failures = 0
checks = 0


def check(cond, what):
    global failures, checks
    checks += 1
    if not cond:
        failures += 1
        print("FAIL:", what, file=sys.stderr, flush=True)
    return cond


def done():
    print(f"{os.path.basename(sys.argv[0])}: {checks} checks, {failures} failed", file=sys.stderr)
    sys.exit(1 if failures else 0)


def iso_hours(h):
    """h hours after 2027-01-01T00:00:00Z (the tests' simulated start) as RFC 3339."""
    import datetime
    t = datetime.datetime(2027, 1, 1, tzinfo=datetime.timezone.utc) + datetime.timedelta(hours=h)
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def need_env():
    if not os.environ.get("CAPX_TEST_DATABASE"):
        print("CAPX_TEST_DATABASE is not set: run the tests through tests/run.sh", file=sys.stderr)
        sys.exit(1)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def psql(conninfo, sql):
    out = subprocess.run([PSQL, "-X", "-q", "-tA", "-d", conninfo, "-c", sql],
                         capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(out.stderr)
    return out.stdout.strip()


class Env:
    def __init__(self, name, own_pg=False, clock=None, extra=None, var=None):
        self.name = f"{name}_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        self.var = var or tempfile.mkdtemp(prefix=f"{name}.", dir=TMP)
        os.makedirs(self.var, exist_ok=True)
        os.chmod(self.var, 0o755)
        self.port = free_port()
        self.env = dict(os.environ)
        self.env.update({"CAPX_VAR": self.var, "CAPX_PORT": str(self.port),
                         "CAPX_BUILD_DIR": BUILD})
        for k in list(self.env):
            if k.startswith("CAPX_") and k not in ("CAPX_VAR", "CAPX_PORT", "CAPX_BUILD_DIR",
                                                   "CAPX_ROOT") and not k.startswith("CAPX_TEST"):
                del self.env[k]
        if clock:
            self.env["CAPX_CLOCK"] = clock
        self.own_pg = own_pg
        if own_pg:
            self.env["CAPX_PGPORT"] = str(free_port())
        else:
            base = os.environ["CAPX_TEST_DATABASE"]
            psql(base, f"CREATE DATABASE {self.name}")
            self.conninfo = base.replace("dbname=capx", f"dbname={self.name}")
            self.env["CAPX_DATABASE"] = self.conninfo
        for k, v in (extra or {}).items():
            self.env[k] = str(v)
        self.ctx = ssl.create_default_context(cafile=None)
        self.key = None

    @property
    def pid(self):
        with open(os.path.join(self.var, "capxd.pid")) as f:
            return int(f.read().strip())

    def up(self):
        r = subprocess.run([os.path.join(ROOT, "deploy", "dev-up.sh")], env=self.env,
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"dev-up failed: {r.stdout}\n{r.stderr}")
        self.ctx = ssl.create_default_context(cafile=os.path.join(self.var, "tls", "cert.pem"))
        with open(os.path.join(self.var, "admin.key")) as f:
            self.key = f.read().strip()
        return r

    def down(self):
        return subprocess.run([os.path.join(ROOT, "deploy", "dev-down.sh")], env=self.env,
                              capture_output=True, text=True)

    def admin(self, *args):
        return subprocess.run([os.path.join(BUILD, "clients", "capx-admin"), *args],
                              env=self.env, capture_output=True, text=True)

    def conn(self, timeout=10):
        return http.client.HTTPSConnection("127.0.0.1", self.port, context=self.ctx,
                                           timeout=timeout)

    def req(self, method, path, body=None, key="admin", headers=None, conn=None, raw=None):
        """One request; returns (status, headers dict lower-case, parsed JSON or text)."""
        c = conn or self.conn()
        h = {}
        if key == "admin":
            key = self.key
        if key:
            h["Authorization"] = f"Bearer {key}"
        data = raw
        if body is not None:
            data = json.dumps(body).encode()
            h["Content-Type"] = "application/json"
        h.update(headers or {})
        c.request(method, path, body=data, headers=h)
        r = c.getresponse()
        text = r.read()
        hd = {k.lower(): v for k, v in r.getheaders()}
        if conn is None:
            c.close()
        try:
            return r.status, hd, json.loads(text)
        except ValueError:
            return r.status, hd, text.decode(errors="replace")

    def api(self, method, path, body=None, key="admin"):
        """One request; returns (status, parsed body)."""
        st, _, b = self.req(method, path, body, key=key)
        return st, b

    def account(self, name, roles, deposit=0):
        """A new account (and a deposit into it); returns (id, api key)."""
        st, b = self.api("POST", "/v1/accounts", {"name": name, "roles": roles})
        assert st == 201, b
        if deposit:
            st2, d = self.api("POST", f"/v1/accounts/{b['id']}/deposits", {"amount": deposit})
            assert st2 == 201, d
        return b["id"], b["api_key"]

    def tls_socket(self):
        s = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        return self.ctx.wrap_socket(s, server_hostname="127.0.0.1")

    def raw(self, data, read_timeout=5):
        """Send raw bytes over TLS; return all bytes read until close or timeout."""
        s = self.tls_socket()
        s.sendall(data)
        s.settimeout(read_timeout)
        out = b""
        try:
            while True:
                b = s.recv(65536)
                if not b:
                    break
                out += b
        except (socket.timeout, ssl.SSLError, ConnectionResetError):
            pass
        s.close()
        return out

    def close(self):
        self.down()
        # capxd runs with AddressSanitizer, LeakSanitizer and UBSan in the tests: whatever they
        # reported while it ran or as it exited (leaks) fails the test.
        try:
            with open(os.path.join(self.var, "capxd.out"), errors="replace") as f:
                out = f.read()
        except OSError:
            out = ""
        if "Sanitizer" in out or "runtime error:" in out:
            check(False, f"{self.name}: a sanitizer reported on capxd:\n{out[-3000:]}")
        if not self.own_pg:
            try:
                psql(os.environ["CAPX_TEST_DATABASE"], f"DROP DATABASE IF EXISTS {self.name} WITH (FORCE)")
            except RuntimeError:
                pass


def is_error_body(body, code):
    return isinstance(body, dict) and isinstance(body.get("error"), dict) and \
        body["error"].get("code") == code and isinstance(body["error"].get("message"), str)
