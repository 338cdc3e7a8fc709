"""The database goes away under capxd: /readyz says 503 unavailable, requests that need the
database get 503, nothing crashes; when it comes back capxd serves again without a restart."""
import os
import subprocess
import time

from capxtest import Env, check, done, need_env, is_error_body, ROOT

need_env()
e = Env("dbdown", own_pg=True)
try:
    e.up()
    st, _, _ = e.req("GET", "/readyz", key=None)
    check(st == 200, "ready with the database up")
    pg = [os.path.join(ROOT, "deploy", "pg.sh")]
    subprocess.run(pg + ["stop"], env=e.env, capture_output=True, check=True)
    bad = 0
    for _ in range(20):
        st, _, body = e.req("GET", "/readyz", key=None)
        bad += st == 503 and is_error_body(body, "unavailable")
        time.sleep(0.05)
    check(bad == 20, f"readyz 503 unavailable while the database is down: {bad}/20")
    st, _, _ = e.req("GET", "/healthz", key=None)
    check(st == 200, "healthz still answers")
    subprocess.run(pg + ["start"], env=e.env, capture_output=True, check=True)
    ok = False
    for _ in range(100):
        st, _, _ = e.req("GET", "/readyz", key=None)
        if st == 200:
            ok = True
            break
        time.sleep(0.1)
    check(ok, "ready again after the database returns, without a restart")
    # kill -9 of the database: same.
    subprocess.run(pg + ["kill9"], env=e.env, capture_output=True)
    time.sleep(0.3)
    st, _, _ = e.req("GET", "/readyz", key=None)
    check(st == 503, f"503 after the database was killed: {st}")
    subprocess.run(pg + ["start"], env=e.env, capture_output=True, check=True)
    ok = False
    for _ in range(100):
        st, _, _ = e.req("GET", "/readyz", key=None)
        if st == 200:
            ok = True
            break
        time.sleep(0.1)
    check(ok, "ready again after crash recovery")
    check(subprocess.run(["kill", "-0", str(e.pid)]).returncode == 0, "capxd still running")
finally:
    e.close()
done()
