"""dev-up.sh on random free ports with its own PostgreSQL: /healthz over TLS, a restart
finds its data, SIGTERM exits 0, a second environment runs beside the first, and — as root —
a state directory under a 0700 directory still works (the postgres user cannot reach it)."""
import os
import signal
import subprocess
import tempfile
import time

from capxtest import Env, check, done, need_env, TMP, BUILD, is_error_body

need_env()

parent = tempfile.mkdtemp(prefix="devup.", dir=TMP)
if os.geteuid() == 0:
    os.chmod(parent, 0o700)  # like /root: the postgres user cannot traverse it
a = Env("devup_a", own_pg=True, var=os.path.join(parent, "var"))
os.makedirs(a.var, exist_ok=True)
b = Env("devup_b", own_pg=True)
try:
    a.up()
    st, _, body = a.req("GET", "/healthz", key=None)
    check(st == 200 and body == {"status": "ok"}, f"healthz over TLS: {st} {body}")
    st, _, body = a.req("GET", "/readyz", key=None)
    check(st == 200, f"readyz: {st} {body}")
    st, _, body = a.req("GET", "/v1/clock")
    check(st == 200 and body.get("mode") == "real", f"clock with the admin key: {st} {body}")
    if os.geteuid() == 0:
        check(os.path.islink(os.path.join(a.var, "pg")), "pg data moved where postgres can reach it")

    # A second environment beside the first.
    b.up()
    st, _, _ = b.req("GET", "/healthz", key=None)
    check(st == 200, "second environment serves beside the first")

    # Running dev-up again starts only what is down: same pid.
    pid = a.pid
    a.up()
    check(a.pid == pid, "dev-up on a running environment leaves capxd alone")

    # Restart finds its data: the admin key from before still works.
    key = a.key
    r = a.down()
    check(r.returncode == 0, f"dev-down: {r.stderr}")
    st = subprocess.run(["ps", "-o", "stat=", "-p", str(pid)], capture_output=True, text=True)
    check(st.returncode != 0 or st.stdout.strip().startswith("Z"),
          f"capxd stopped by dev-down (a zombie awaiting its reaper counts as gone): {st.stdout}")
    a.up()
    check(a.key == key, "admin key file kept")
    st, _, body = a.req("GET", "/v1/clock")
    check(st == 200, f"after restart the stored key still authenticates: {st} {body}")
    st, _, body = a.req("GET", "/v1/clock", key="capx_" + "a" * 32)
    check(st == 401 and is_error_body(body, "unauthenticated"), f"unknown key: {st} {body}")

    # SIGTERM: capxd in the foreground exits 0.
    a.down()
    subprocess.run([os.path.join(os.environ["CAPX_ROOT"], "deploy", "pg.sh"), "start"], env=a.env,
                   capture_output=True)
    env = dict(a.env)
    p = subprocess.Popen([os.path.join(BUILD, "server", "capxd")], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    for _ in range(200):
        try:
            st, _, _ = a.req("GET", "/healthz", key=None)
            if st == 200:
                break
        except OSError:
            time.sleep(0.05)
    p.send_signal(signal.SIGTERM)
    try:
        rc = p.wait(timeout=20)
    except subprocess.TimeoutExpired:
        p.kill()
        rc = "timeout"
    check(rc == 0, f"SIGTERM exits 0 (got {rc}): {p.stderr.read().decode()[-500:]}")
finally:
    a.close()
    b.close()
done()
