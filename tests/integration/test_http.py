"""The HTTP layer against hostile input: every refusal is the contract's JSON error body,
smuggling attempts get 400, bodies over the limit 413 before they are read, slow clients are
closed by the deadline while others are served, connection caps hold, and nothing crashes."""
import json
import socket
import ssl
import threading
import time

from capxtest import Env, check, done, need_env, is_error_body

need_env()


def status_of(resp):
    try:
        return int(resp.split(b" ", 2)[1])
    except (IndexError, ValueError):
        return None


def body_of(resp):
    head, _, body = resp.partition(b"\r\n\r\n")
    try:
        return json.loads(body)
    except ValueError:
        return None


e = Env("http", extra={"CAPX_HEADER_TIMEOUT_MS": 1500, "CAPX_BODY_TIMEOUT_MS": 1500,
                       "CAPX_IDLE_TIMEOUT_MS": 3000})
cap = Env("httpcap", extra={"CAPX_MAX_CONNS_PER_IP": 5})
try:
    e.up()
    H = f"Host: 127.0.0.1:{e.port}\r\n".encode()
    AUTH = f"Authorization: Bearer {e.key}\r\n".encode()

    st, _, body = e.req("GET", "/no/such/route")
    check(st == 404 and is_error_body(body, "not_found"), f"unknown route: {st} {body}")
    st, _, body = e.req("DELETE", "/v1/clock")
    check(st == 405 and is_error_body(body, "method_not_allowed"), f"405: {st} {body}")
    st, _, body = e.req("GET", "/v1/clock", key="capx_notakey")
    check(st == 401 and is_error_body(body, "unauthenticated"), f"malformed key: {st} {body}")
    st, _, body = e.req("POST", "/v1/admin/clock", raw=b'{"a":1,"a":2}',
                        headers={"Content-Type": "application/json"})
    check(st == 400 and is_error_body(body, "invalid_json"), f"duplicate keys: {st} {body}")
    deep = b'{"a":' * 100 + b"1" + b"}" * 100
    st, _, body = e.req("POST", "/v1/admin/clock", raw=deep, headers={"Content-Type": "application/json"})
    check(st == 400 and is_error_body(body, "invalid_json"), f"100-deep nesting: {st} {body}")
    st, _, body = e.req("POST", "/v1/admin/clock", raw=b'[1,2]', headers={"Content-Type": "application/json"})
    check(st == 400 and is_error_body(body, "invalid_json"), f"not an object: {st} {body}")
    st, _, body = e.req("POST", "/v1/admin/clock", body={"advance_seconds": 5, "extra": 1})
    check(st == 400 and is_error_body(body, "invalid_request") and body["error"].get("field") == "extra",
          f"unknown field: {st} {body}")
    st, _, body = e.req("POST", "/v1/admin/clock", body={"advance_seconds": "5"})
    check(st == 400 and is_error_body(body, "invalid_request") and body["error"].get("field") == "advance_seconds",
          f"string number: {st} {body}")
    st, _, body = e.req("POST", "/v1/admin/clock", body={"advance_seconds": 1.5})
    check(st == 400 and is_error_body(body, "invalid_request"), f"non-integer: {st} {body}")
    st, _, body = e.req("POST", "/v1/admin/clock", raw=b'{"advance_seconds": 99999999999999999999999}',
                        headers={"Content-Type": "application/json"})
    check(st == 400 and body["error"]["code"] in ("invalid_json", "invalid_request"), f"int64 overflow: {st} {body}")
    st, _, body = e.req("POST", "/v1/admin/clock", raw=b'{"advance_seconds": 5}',
                        headers={"Content-Type": "text/plain"})
    check(st == 415 and is_error_body(body, "unsupported_media_type"), f"415: {st} {body}")
    st, _, body = e.req("POST", "/v1/admin/clock", body={"advance_seconds": 5})
    check(st == 409 and is_error_body(body, "conflict"), f"real clock does not advance: {st} {body}")

    # 413 for a 2 MiB body, answered from the headers alone (the body is never sent).
    resp = e.raw(b"POST /v1/admin/clock HTTP/1.1\r\n" + H + AUTH +
                 b"Content-Type: application/json\r\nContent-Length: 2097152\r\n\r\n", read_timeout=3)
    check(status_of(resp) == 413 and is_error_body(body_of(resp), "payload_too_large"),
          f"413 before the body: {resp[:200]}")
    # ... and when the whole body is sent.
    st, _, body = e.req("POST", "/v1/admin/clock", raw=b"x" * (2 << 20),
                        headers={"Content-Type": "application/json"})
    check(st == 413 and is_error_body(body, "payload_too_large"), f"413 2 MiB: {st}")
    # Chunked bodies count too.
    chunk = b"%x\r\n" % (1 << 20) + b"a" * (1 << 20) + b"\r\n"
    resp = e.raw(b"POST /v1/admin/clock HTTP/1.1\r\n" + H + AUTH +
                 b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk * 2 + b"0\r\n\r\n")
    check(status_of(resp) == 413, f"413 chunked: {resp[:100]}")

    # Request smuggling and malformed HTTP: 400 with the error body, connection closed.
    cases = {
        "two Content-Length": b"POST /v1/admin/clock HTTP/1.1\r\n" + H + AUTH +
            b"Content-Type: application/json\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}",
        "CL and TE": b"POST /v1/admin/clock HTTP/1.1\r\n" + H + AUTH +
            b"Content-Type: application/json\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n{}",
        "no Host": b"GET /healthz HTTP/1.1\r\n\r\n",
        "NUL in header": b"GET /healthz HTTP/1.1\r\n" + H + b"X-A: a\x00b\r\n\r\n",
        "bad request line": b"GET\x01 / HTTP/1.1\r\n" + H + b"\r\n",
        "garbage": b"\x16\x03\x01hello there\r\n\r\n",
        "bad CL": b"POST /v1/admin/clock HTTP/1.1\r\n" + H + b"Content-Length: -5\r\n\r\n",
        "TE gzip": b"POST /v1/admin/clock HTTP/1.1\r\n" + H + b"Transfer-Encoding: gzip\r\n\r\n",
    }
    for name, data in cases.items():
        resp = e.raw(data)
        check(status_of(resp) == 400 and isinstance(body_of(resp), dict) and "error" in body_of(resp),
              f"{name}: 400 with error body, got {resp[:160]}")
        check(b"Connection: close" in resp, f"{name}: connection closed")
    resp = e.raw(b"GET /healthz HTTP/1.1\r\n" + H + b"X-Big: " + b"a" * 20000 + b"\r\n\r\n")
    check(status_of(resp) == 431 and isinstance(body_of(resp), dict), f"431: {resp[:100]}")
    resp = e.raw(b"GET /" + b"a" * 10000 + b" HTTP/1.1\r\n" + H + b"\r\n")
    check(status_of(resp) == 414 and isinstance(body_of(resp), dict), f"414: {resp[:100]}")

    # Keep-alive and pipelining on one connection.
    c = e.conn()
    for i in range(3):
        st, _, body = e.req("GET", "/healthz", key=None, conn=c)
        check(st == 200, f"keep-alive request {i}")
    c.close()
    resp = e.raw((b"GET /healthz HTTP/1.1\r\n" + H + b"\r\n") * 3 +
                 b"GET /healthz HTTP/1.1\r\n" + H + b"Connection: close\r\n\r\n")
    check(resp.count(b"HTTP/1.1 200") == 4, f"4 pipelined answers: {resp.count(b'HTTP/1.1 200')}")

    # A TLS handshake failure (plain text on the TLS port) closes only that connection.
    s = socket.create_connection(("127.0.0.1", e.port), timeout=5)
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    try:
        s.recv(100)
    except OSError:
        pass
    s.close()
    st, _, _ = e.req("GET", "/healthz", key=None)
    check(st == 200, "server fine after a failed handshake")

    # 40 slow clients (a header byte every 300 ms) are closed by the 1.5 s header deadline,
    # while other clients are served meanwhile.
    slow = []
    for _ in range(40):
        t = e.tls_socket()
        t.sendall(b"GET /healthz HTTP/1.1\r\n" + H)
        slow.append(t)
    stop = time.time() + 3.0
    closed = [False] * len(slow)
    served = 0
    while time.time() < stop:
        for i, t in enumerate(slow):
            if closed[i]:
                continue
            try:
                t.sendall(b"X: y\r\n")
            except OSError:
                closed[i] = True
        st, _, _ = e.req("GET", "/healthz", key=None)
        served += st == 200
        time.sleep(0.3)
    for i, t in enumerate(slow):
        if not closed[i]:
            t.settimeout(2)
            try:
                closed[i] = t.recv(100) == b""
            except (OSError, ssl.SSLError):
                closed[i] = True
        t.close()
    check(all(closed), f"slow clients closed by the deadline: {sum(closed)}/40")
    check(served >= 8, f"others served meanwhile: {served}")

    # The first request's handshake and headers share one deadline from the accept: a client
    # that waits, then trickles its headers, is closed 1.5 s after it connected.
    t0 = time.time()
    late = e.tls_socket()
    time.sleep(1.0)
    closed_at = None
    trickle = b"GET /healthz HTTP/1.1\r\n" + H + b"X-Long: " + b"y" * 200
    try:
        for i in range(len(trickle)):
            if time.time() > t0 + 4:
                break
            late.sendall(trickle[i:i + 1])
            time.sleep(0.1)
    except OSError:
        closed_at = time.time() - t0
    if closed_at is None:
        late.settimeout(1)
        try:
            if late.recv(100) == b"":
                closed_at = time.time() - t0
        except (OSError, ssl.SSLError):
            closed_at = time.time() - t0
    late.close()
    check(closed_at is not None and closed_at < 2.2,
          f"handshake and headers in one deadline from the accept: closed after {closed_at}")

    # Idle keep-alive connections are closed after the idle timeout.
    t = e.tls_socket()
    t.settimeout(6)
    try:
        gone = t.recv(10) == b""
    except (OSError, ssl.SSLError):
        gone = True
    check(gone, "idle connection closed")

    # A client that pipelines requests and never reads: capxd stops reading it once a bounded
    # amount of answers waits (so it does not queue answers without end), others are served
    # meanwhile, and every request is answered, in order, once the client reads.
    def healthz_answered():
        st, _, text = e.req("GET", "/metrics", key=None)
        return sum(int(l.rsplit(" ", 1)[1]) for l in str(text).splitlines()
                   if l.startswith('capx_http_requests_total{route="GET /healthz"'))
    req = b"GET /healthz HTTP/1.1\r\n" + H + b"\r\n"
    flood = e.tls_socket()
    flood.settimeout(0.5)
    before, sent, blocked = healthz_answered(), 0, False
    t_end = time.time() + 2.5
    while time.time() < t_end and sent < 400_000:
        try:
            flood.sendall(req * 1000)
            sent += 1000
        except (socket.timeout, ssl.SSLError, OSError):
            blocked = True  # (a partial send leaves the connection unusable: stop here)
            break
    time.sleep(0.5)
    answered = healthz_answered() - before
    check(blocked and answered < sent,
          f"a client that does not read is not read either: blocked {blocked}, {answered} of {sent} answered")
    st, _, _ = e.req("GET", "/healthz")
    check(st == 200, "others are served meanwhile")
    flood.settimeout(10)
    got = 0
    try:
        while got < sent:
            chunk = flood.recv(1 << 20)
            if not chunk:
                break
            got += chunk.count(b"HTTP/1.1 200")
    except (socket.timeout, ssl.SSLError, OSError):
        pass
    check(got >= sent, f"every pipelined request answered once the client reads: {got} of {sent}")
    flood.close()

    # The per-address connection cap.
    cap.up()
    socks = []
    for _ in range(5):
        socks.append(cap.tls_socket())
    refused = False
    try:
        x = cap.tls_socket()
        x.settimeout(2)
        x.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        refused = x.recv(100) == b""
    except (OSError, ssl.SSLError):
        refused = True
    check(refused, "6th connection from one address refused")
    socks.pop().close()
    time.sleep(0.3)
    st, _, _ = cap.req("GET", "/healthz", key=None)
    check(st == 200, "a slot freed is usable again")
    for s in socks:
        s.close()

    # Metrics saw all of it.
    st, _, text = e.req("GET", "/metrics", key=None)
    check(st == 200 and 'status="413"' in text and "capx_open_connections" in text, "metrics")
finally:
    e.close()
    cap.close()
done()
