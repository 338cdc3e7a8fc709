"""Migrations: capxd refuses a schema older than it needs and names the missing migration;
applying twice is a no-op; capx-admin's flags come from the config table."""
import os
import subprocess

from capxtest import Env, check, done, need_env, psql, BUILD

need_env()
e = Env("migr")
try:
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-days", "2", "-subj", "/CN=t",
                    "-keyout", os.path.join(e.var, "k.pem"), "-out", os.path.join(e.var, "c.pem")],
                   capture_output=True, check=True)
    capxd = [os.path.join(BUILD, "server", "capxd"), "--db-wait", "0", "--port", str(e.port),
             "--tls-cert", os.path.join(e.var, "c.pem"), "--tls-key", os.path.join(e.var, "k.pem")]
    # An empty database: capxd must refuse and name the first missing migration.
    p = subprocess.run(capxd, env=e.env, capture_output=True, text=True, timeout=60)
    check(p.returncode != 0 and "001_core" in p.stderr,
          f"capxd refuses an old schema and names it: rc={p.returncode} {p.stderr[-300:]}")
    r = e.admin("schema-check")
    check(r.returncode == 1 and "001_core" in r.stderr, f"schema-check names it: {r.stderr}")

    r = e.admin("migrate")
    check(r.returncode == 0 and "applied: " in r.stdout and "applied: 0 " not in r.stdout,
          f"first migrate applies: {r.stdout} {r.stderr}")
    n1 = psql(e.conninfo, "SELECT count(*) FROM schema_migrations")
    check(int(n1) >= 1, "migrations recorded")
    r = e.admin("migrate")
    check(r.returncode == 0 and "applied: 0 " in r.stdout, f"second migrate is a no-op: {r.stdout}")
    check(psql(e.conninfo, "SELECT count(*) FROM schema_migrations") == n1, "no new rows")
    r = e.admin("schema-check")
    check(r.returncode == 0, "schema-check after migrate")

    # Bad usage exits 2 with a reason; --help is generated from the table.
    r = e.admin("migrate", "--no-such-flag")
    check(r.returncode == 2 and "unknown flag" in r.stderr, f"bad flag: {r.returncode} {r.stderr}")
    r = e.admin("migrate", "--pgport", "99999")
    check(r.returncode == 2 and "pgport" in r.stderr, f"out-of-range flag: {r.stderr}")
    r = e.admin("--help")
    check(r.returncode == 0 and "CAPX_DATABASE" in r.stdout, "--help generated from the table")
    p = subprocess.run([os.path.join(BUILD, "server", "capxd"), "--help"], capture_output=True,
                       text=True)
    check(p.returncode == 0 and "--header-timeout-ms" in p.stdout and "CAPX_RATE_LIMIT" in p.stdout,
          "capxd --help lists every setting")
finally:
    e.close()
done()
