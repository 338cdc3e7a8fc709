#!/usr/bin/env python3
"""bench/api/conns.py PORT N — opens N keep-alive TLS connections to 127.0.0.1:PORT and holds
them, for the memory figure (capxd's VmRSS with N connections open).

Two worker processes (one per core) open N/2 each: a TLS handshake (at most 200 at a time per
worker; the certificate is not verified, as wrk does not) and one GET /healthz, then the
connection stays open and idle. When all are open it prints "open N" and waits for a line on
stdin; then every connection sends a second GET /healthz on the same connection (proof that
capxd still holds it open: keep-alive), it prints "alive K" (K answered), closes them all and
exits. Standard library only.
"""
import asyncio
import os
import ssl
import sys

REQ = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
WORKERS = 2


async def roundtrip(r, w):
    w.write(REQ)
    await w.drain()
    head = await r.readuntil(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(head[:40])
    n = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            n = int(line.split(b":")[1])
    await r.readexactly(n)


ERRORS = (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, RuntimeError, ValueError)


async def open_one(port, ctx, sem):
    async with sem:
        for attempt in range(3):
            try:
                r, w = await asyncio.wait_for(
                    asyncio.open_connection("127.0.0.1", port, ssl=ctx), 60)
                await asyncio.wait_for(roundtrip(r, w), 60)
                return r, w
            except ERRORS:
                if attempt == 2:
                    return None


async def again(c):
    try:
        await asyncio.wait_for(roundtrip(*c), 60)
        return 1
    except ERRORS:
        return 0


async def worker(port, n, cmd_fd, out_fd):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    sem = asyncio.Semaphore(200)
    conns = [c for c in await asyncio.gather(*(open_one(port, ctx, sem) for _ in range(n))) if c]
    os.write(out_fd, f"{len(conns)}\n".encode())
    await asyncio.get_running_loop().run_in_executor(None, os.read, cmd_fd, 1)
    alive = sum(await asyncio.gather(*(again(c) for c in conns)))
    os.write(out_fd, f"{alive}\n".encode())
    for _, w in conns:
        w.close()


def main():
    port, n = int(sys.argv[1]), int(sys.argv[2])
    kids = []
    for i in range(WORKERS):
        cmd_r, cmd_w = os.pipe()
        out_r, out_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(cmd_w)
            os.close(out_r)
            asyncio.run(worker(port, n // WORKERS + (1 if i < n % WORKERS else 0), cmd_r, out_w))
            os._exit(0)
        os.close(cmd_r)
        os.close(out_w)
        kids.append((pid, cmd_w, os.fdopen(out_r)))
    opened = sum(int(f.readline() or 0) for _, _, f in kids)
    print(f"open {opened}", flush=True)
    sys.stdin.readline()
    for _, w, _ in kids:
        os.write(w, b"x")
    alive = sum(int(f.readline() or 0) for _, _, f in kids)
    print(f"alive {alive}", flush=True)
    for pid, _, _ in kids:
        os.waitpid(pid, 0)


main()
