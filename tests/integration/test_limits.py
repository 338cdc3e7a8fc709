"""Limits that protect capxd: the hardware one account may register (every node is simulated in
memory; over the limit 409 conflict naming the field, nothing created) and the window of a book
query (at most 366 days, else 400)."""
from capxtest import Env, check, done, need_env, is_error_body

need_env()
e = Env("limits", extra={"CAPX_MAX_NODES_PER_ACCOUNT": 10})
try:
    e.up()
    st, _, p = e.req("POST", "/v1/accounts", {"name": "prov", "roles": ["provider"]})
    key = p["api_key"]
    pool = {"name": "a", "gpu_model": "H100", "region": "eu", "nodes": 8, "gpus_per_node": 8}
    st, _, b = e.req("POST", "/v1/pools", pool, key=key)
    check(st == 201, f"8 nodes within a limit of 10: {st} {b}")
    st, _, b = e.req("POST", "/v1/pools", dict(pool, name="b", nodes=3), key=key)
    check(st == 409 and is_error_body(b, "conflict") and b["error"].get("field") == "nodes",
          f"11 nodes refused: {st} {b}")
    st, _, lst = e.req("GET", "/v1/pools", key=key)
    check(st == 200 and len(lst["data"]) == 1, f"nothing created: {lst}")
    st, _, b = e.req("POST", "/v1/pools", dict(pool, name="c", nodes=2), key=key)
    check(st == 201, f"exactly at the limit: {st} {b}")
    # A book window is bounded too (the engine aggregates over it).
    st, _, b = e.req("GET", "/v1/markets/H100/book?region=eu&start=2030-01-01T00:00:00Z"
                     "&end=2040-01-01T00:00:00Z", key=key)
    check(st == 400 and is_error_body(b, "invalid_request") and b["error"].get("field") == "end",
          f"a ten-year book window is refused: {st} {b}")
    st, _, b = e.req("GET", "/v1/markets/H100/book?region=eu&start=2030-01-01T00:00:00Z"
                     "&end=2030-12-01T00:00:00Z", key=key)
    check(st == 200, f"an eleven-month window is served: {st}")
    # The count survives a restart (it is rebuilt from the pools).
    e.down()
    e.up()
    st, _, b = e.req("POST", "/v1/pools", dict(pool, name="d", nodes=1), key=key)
    check(st == 409, f"still over after a restart: {st} {b}")
finally:
    e.close()
done()
