"""TLS as Mozilla's intermediate profile: 1.0/1.1 refused (offered with SECLEVEL=0 so the
test could fail), CBC suites refused, only X25519/P-256/P-384, no compression, session
tickets resume; SIGHUP reloads the certificate without dropping open connections."""
import os
import signal
import subprocess
import time

from capxtest import Env, check, done, need_env

need_env()


def s_client(port, *args, stdin=b""):
    p = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-servername",
                        "localhost", *args], input=stdin, capture_output=True, timeout=20)
    return p.returncode, (p.stdout + p.stderr).decode(errors="replace")


def negotiated(out):
    for line in out.splitlines():
        line = line.strip()
        if line.startswith("New, TLSv") and "Cipher is" in line:
            return line.split(",")[1].strip()
        if line.startswith("Protocol") and ":" in line:
            return line.split(":", 1)[1].strip()
    return None


e = Env("tls")
try:
    e.up()
    port = e.port
    for flag, name in (("-tls1", "TLSv1"), ("-tls1_1", "TLSv1.1")):
        rc, out = s_client(port, flag, "-cipher", "DEFAULT@SECLEVEL=0")
        check(rc != 0 and negotiated(out) in (None, "") or "(NONE)" in out,
              f"{name} refused: rc={rc} proto={negotiated(out)}")
    # Positive controls: the same client setting does reach TLS 1.2 and 1.3.
    rc, out = s_client(port, "-tls1_2", "-cipher", "DEFAULT@SECLEVEL=0")
    check(rc == 0 and negotiated(out) == "TLSv1.2", f"TLS 1.2 accepted: {negotiated(out)}")
    rc, out = s_client(port, "-tls1_3")
    check(rc == 0 and negotiated(out) == "TLSv1.3", f"TLS 1.3 accepted: {negotiated(out)}")
    check("Compression: NONE" in out, "no compression")
    # CBC suites are not offered by capxd even to a client that wants them.
    rc, out = s_client(port, "-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA384")
    check(rc != 0, f"CBC suites refused: rc={rc}")
    rc, out = s_client(port, "-tls1_2", "-cipher", "ECDHE-ECDSA-CHACHA20-POLY1305")
    check(rc == 0, "ChaCha20-Poly1305 accepted")
    # Groups.
    rc, out = s_client(port, "-tls1_3", "-groups", "P-521")
    check(rc != 0, "P-521 refused")
    rc, out = s_client(port, "-tls1_3", "-groups", "X25519")
    check(rc == 0, "X25519 accepted")
    # Session tickets resume (TLS 1.2 shows it plainly).
    sess = os.path.join(e.var, "sess.pem")
    rc, out = s_client(port, "-tls1_2", "-sess_out", sess)
    rc, out = s_client(port, "-tls1_2", "-sess_in", sess)
    check("Reused, TLSv1.2" in out, "session resumed from a ticket")

    # SIGHUP: a new certificate for new connections; an open connection keeps working.
    c = e.conn()
    st, _, _ = e.req("GET", "/healthz", key=None, conn=c)
    check(st == 200, "open connection before reload")
    _, before = s_client(port, "-showcerts")
    tls = os.path.join(e.var, "tls")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-days", "30", "-subj", "/CN=capx reloaded", "-addext",
                    "subjectAltName=IP:127.0.0.1,DNS:localhost", "-keyout", tls + "/key.pem",
                    "-out", tls + "/cert.pem"], capture_output=True, check=True)
    os.kill(e.pid, signal.SIGHUP)
    time.sleep(0.5)
    _, after = s_client(port, "-showcerts")
    check("capx reloaded" in after and "capx reloaded" not in before, "new certificate served")
    st, _, _ = e.req("GET", "/healthz", key=None, conn=c)
    check(st == 200, "open connection survives the reload")
    c.close()
finally:
    e.close()
done()
