"""The scheduler in the market (issue 7), black-box through the API on a simulated clock.

Pool A: 16 nodes x 8 GPUs in racks of 4 (128 GPUs), a spot offer of 1 unsold GPU; pool B:
2 nodes x 8 in another region with a spot offer of all 16. Steps:
  1. a 64-GPU lending contract is placed at its start: 8 whole nodes in 2 racks;
  2. a spot bid runs on the idle lent GPUs; the holder's 64-GPU job preempts it (notice of
     preempt_notice_s = 120 s, then it bids again: `pending`); a job that does not fit
     queues (and with "queue": false is refused), starts when the first job's hours run out;
  3. a spot bid on pool B's unsold GPUs gets its notice 2 minutes before a reservation of all
     of B starts, and stops on the hour;
  4. a node under the 64-GPU contract fails with spare capacity: re-placed, nothing lost; its
     job is re-placed too;
  5. a second contract takes every healthy unsold GPU left (placed in full at its start);
     another node of the 64-GPU contract fails: no spare, 8 GPUs lost per hour;
  6. kill -9 and restart in the middle: placements, jobs, failures and losses come back;
  7. repair: the contract gets its GPUs back; the lost-hours record is exact ({06:00: 8,
     07:00: 8}); the contract's end completes its jobs; ledger/check is clean.
"""
import os
import signal
import time

from capxtest import Env, check, done, need_env

need_env()

H = 3600
T0 = "2027-01-01T00:00:00Z"
MODEL = "H100-SXM-80GB"


def iso(s):
    """Seconds after T0 as RFC 3339."""
    import datetime
    t = datetime.datetime(2027, 1, 1, tzinfo=datetime.timezone.utc) + datetime.timedelta(seconds=s)
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def kill9(env):
    pid = env.pid
    os.kill(pid, signal.SIGKILL)
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as fh:
                state = fh.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            return
        if state == "Z" and time.time() > deadline - 8:
            break
        time.sleep(0.05)
    os.remove(os.path.join(env.var, "capxd.pid"))


e = Env("sched", clock="sim:" + T0)
now = 0
try:
    e.up()

    def api(method, path, body=None, key="admin"):
        st, _, b = e.req(method, path, body, key=key)
        return st, b

    def must(cond, what):
        if not check(cond, what):
            raise SystemExit(1)

    def account(name, roles):
        st, b = api("POST", "/v1/accounts", {"name": name, "roles": roles})
        must(st == 201, f"account {name}: {st} {b}")
        return b["id"], b["api_key"]

    def advance_to(s):
        global now
        if s > now:
            st, b = api("POST", "/v1/admin/clock", {"advance_seconds": s - now})
            must(st == 200, f"advance to {iso(s)}: {st} {b}")
            now = s

    def gpus_of(placement):
        return sum(p["gpus"] for p in placement)

    def nodes_of(placement):
        return sorted(p["node"] for p in placement)

    pid_, pkey = account("prov", ["provider"])
    bid, bkey = account("holder", ["buyer"])
    sid, skey = account("spotter", ["buyer"])
    api("POST", f"/v1/accounts/{bid}/deposits", {"amount": 100_000_000_000})
    api("POST", f"/v1/accounts/{sid}/deposits", {"amount": 10_000_000_000})

    st, A = api("POST", "/v1/pools", {"name": "a", "gpu_model": MODEL, "region": "us-west",
                                      "nodes": 16, "gpus_per_node": 8, "nodes_per_rack": 4},
                key=pkey)
    must(st == 201, f"pool A {st} {A}")
    check(A["utilization"]["gpus"] == 128 and len(A["node_states"]) == 16,
          f"a new pool shows its nodes and utilization: {A}")
    st, B = api("POST", "/v1/pools", {"name": "b", "gpu_model": MODEL, "region": "eu-north",
                                      "nodes": 2, "gpus_per_node": 8, "nodes_per_rack": 2},
                key=pkey)
    must(st == 201, f"pool B {st} {B}")
    for pool, gpus in ((A, 128), (B, 16)):
        st, b = api("POST", "/v1/offers", {"pool_id": pool["id"], "gpus": gpus, "start": iso(H),
                                           "end": iso(48 * H), "price": 2_000_000}, key=pkey)
        must(st == 201, f"reservation offer {st} {b}")
    st, b = api("POST", "/v1/offers", {"pool_id": A["id"], "kind": "spot", "gpus": 1,
                                       "price": 500_000}, key=pkey)
    must(st == 201, f"spot offer A {st} {b}")
    st, b = api("POST", "/v1/offers", {"pool_id": B["id"], "kind": "spot", "gpus": 16,
                                       "price": 500_000}, key=pkey)
    must(st == 201, f"spot offer B {st} {b}")

    def order(gpus, start_h, hours, region="us-west", lend=False):
        st, b = api("POST", "/v1/orders", {"kind": "reservation", "gpu_model": MODEL,
                                           "region": region, "gpus": gpus, "start": iso(start_h * H),
                                           "hours": hours, "limit_price": 3_000_000,
                                           "lend_idle": lend}, key=bkey)
        must(st == 201 and b["status"] == "filled" and len(b["contracts"]) == 1,
             f"order {gpus} GPUs at {start_h}h: {st} {b}")
        return b["contracts"][0]

    def contract(cid):
        st, b = api("GET", f"/v1/contracts/{cid}", key=bkey)
        must(st == 200, f"contract {cid}: {st} {b}")
        return b

    def spot_order(oid):
        st, b = api("GET", f"/v1/orders/{oid}", key=skey)
        must(st == 200, f"spot order: {st} {b}")
        return b

    def pool(p):
        st, b = api("GET", f"/v1/pools/{p['id']}", key=pkey)
        must(st == 200, f"pool: {st} {b}")
        return b

    def job(jid):
        st, b = api("GET", f"/v1/jobs/{jid}", key=bkey)
        must(st == 200, f"job: {st} {b}")
        return b

    C1 = order(64, 2, 10, lend=True)
    c = contract(C1)
    check(c["status"] == "scheduled" and c["placement"] == [] and c["lost_gpu_hours"] == 0,
          f"before its start a contract has no placement: {c}")
    st, b = api("POST", f"/v1/contracts/{C1}/jobs", {"gpus": 8}, key=bkey)
    check(st == 409 and b["error"]["code"] == "conflict", f"a job before the start: 409, {st} {b}")

    # A spot bid before the contract starts: 1 unsold GPU for spot, it wants 8: no win.
    st, S1 = api("POST", "/v1/orders", {"kind": "spot", "gpu_model": MODEL, "region": "us-west",
                                        "gpus": 8, "limit_price": 1_000_000}, key=skey)
    must(st == 201, f"spot bid: {st} {S1}")
    advance_to(H + 30 * 60)
    check(spot_order(S1["id"])["status"] == "pending", "no room for the spot bid before the start")

    # ---- 1. placed at its start: 8 whole nodes, 2 racks.
    advance_to(2 * H)
    c = contract(C1)
    pl = c["placement"]
    check(c["status"] == "active" and gpus_of(pl) == 64 and len(pl) == 8 and
          all(p["gpus"] == 8 for p in pl) and len({p["node"] // 4 for p in pl}) == 2,
          f"64 GPUs on 8 whole nodes in 2 racks: {pl}")
    c1_nodes = nodes_of(pl)

    # ---- 2. lent GPUs serve spot; the holder's job preempts it.
    advance_to(2 * H + 60)
    s = spot_order(S1["id"])
    check(s["status"] == "running" and s["pool_id"] == A["id"], f"spot runs on lent GPUs: {s}")
    pa = pool(A)
    check(pa["utilization"]["spot"] == 8, f"pool shows 8 spot GPUs: {pa['utilization']}")
    check(contract(C1)["gpus_lent"] == 64, "64 idle GPUs lent")

    advance_to(2 * H + 5 * 60)
    st, j1 = api("POST", f"/v1/contracts/{C1}/jobs", {"gpus": 64, "gang": True, "hours": 1},
                 key=bkey)
    must(st == 201, f"job 1: {st} {j1}")
    check(j1["status"] == "running" and gpus_of(j1["placement"]) == 64 and
          sorted(p["node"] for p in j1["placement"]) == c1_nodes,
          f"job 1 runs on the contract's 64 GPUs: {j1}")
    s = spot_order(S1["id"])
    check(s["status"] == "preempted" and s["preempt_at"] == iso(2 * H + 7 * 60),
          f"the holder's job preempts spot with 120 s notice: {s}")
    check(pool(A)["utilization"]["spot"] == 0, "the preempted bid holds no GPU")
    st, b = api("POST", f"/v1/contracts/{C1}/jobs", {"gpus": 8, "queue": False}, key=bkey)
    check(st == 409 and b["error"]["code"] == "conflict", f"busy and queue false: 409, {st} {b}")
    st, j2 = api("POST", f"/v1/contracts/{C1}/jobs", {"gpus": 8}, key=bkey)
    check(st == 201 and j2["status"] == "queued" and j2["placement"] == [],
          f"busy: the job queues: {st} {j2}")
    st, b = api("POST", f"/v1/contracts/{C1}/jobs", {"gpus": 65}, key=bkey)
    check(st == 422, f"more GPUs than the contract: 422, {st} {b}")
    st, b = api("POST", f"/v1/contracts/{C1}/jobs", {"gpus": 9, "gang": False}, key=bkey)
    check(st == 422, f"a single-node job larger than a node: 422, {st} {b}")
    st, b = api("POST", f"/v1/contracts/{C1}/jobs", {"gpus": 0}, key=bkey)
    check(st == 400 and b["error"].get("field") == "gpus", f"gpus 0: 400, {st} {b}")
    st, b = api("POST", f"/v1/contracts/{C1}/jobs", {"gpus": 8}, key=skey)
    check(st == 404, f"another buyer's contract: 404, {st} {b}")
    st, b = api("GET", f"/v1/jobs/{j2['id']}", key=skey)
    check(st == 404, f"another buyer's job: 404, {st} {b}")
    st, b = api("GET", f"/v1/jobs/{j2['id']}", key=pkey)
    check(st == 403, f"the provider cannot read jobs (buyer role): {st}")

    advance_to(2 * H + 8 * 60)
    check(spot_order(S1["id"])["status"] == "pending", "after the notice the bid bids again")

    # Job 1's hour runs out at 03:05; job 2 starts then; spot wins again on what is idle.
    advance_to(3 * H + 6 * 60)
    j1 = job(j1["id"])
    check(j1["status"] == "completed" and j1["ended_at"] == iso(3 * H + 5 * 60) and
          j1["placement"] == [], f"job 1 completes when its hour runs out: {j1}")
    j2 = job(j2["id"])
    check(j2["status"] == "running" and j2["started_at"] == iso(3 * H + 5 * 60) and
          gpus_of(j2["placement"]) == 8 and len(j2["placement"]) == 1,
          f"the queued job starts when room frees, on one node: {j2}")
    advance_to(3 * H + 8 * 60)
    check(spot_order(S1["id"])["status"] == "running", "spot runs again on the idle lent GPUs")
    st, lst = api("GET", f"/v1/contracts/{C1}/jobs", key=bkey)
    check(st == 200 and [x["id"] for x in lst["data"]] == [j1["id"], j2["id"]],
          f"the contract's jobs in order: {st} {lst}")
    st, lst = api("GET", f"/v1/contracts/{C1}/jobs?limit=1", key=bkey)
    check(st == 200 and len(lst["data"]) == 1 and lst["next_cursor"], f"paged: {lst}")

    # ---- 3. a reservation starting on pool B preempts spot there with the notice.
    st, S2 = api("POST", "/v1/orders", {"kind": "spot", "gpu_model": MODEL, "region": "eu-north",
                                        "gpus": 8, "limit_price": 1_000_000}, key=skey)
    must(st == 201, f"spot bid B: {st} {S2}")
    advance_to(3 * H + 10 * 60)
    s = spot_order(S2["id"])
    check(s["status"] == "running" and s["pool_id"] == B["id"], f"spot runs on B: {s}")
    C2 = order(16, 5, 2, region="eu-north")
    advance_to(5 * H - 3 * 60)
    check(spot_order(S2["id"])["status"] == "running", "still running 3 minutes before the start")
    advance_to(5 * H - 2 * 60)
    s = spot_order(S2["id"])
    check(s["status"] == "preempted" and s["preempt_at"] == iso(5 * H),
          f"notice 2 minutes before the reservation starts: {s}")
    advance_to(5 * H)
    c = contract(C2)
    check(c["status"] == "active" and gpus_of(c["placement"]) == 16, f"C2 placed: {c}")
    pb = pool(B)
    check(pb["utilization"]["spot"] == 0 and pb["utilization"]["contracted"] == 16,
          f"spot stopped on the hour: {pb['utilization']}")
    advance_to(5 * H + 60)
    check(spot_order(S2["id"])["status"] == "pending", "the preempted bid bids again")

    # ---- 4. a node of the 64-GPU contract fails; spare capacity: re-placed.
    j2node = j2["placement"][0]["node"]
    st, b = api("POST", f"/v1/admin/pools/{A['id']}/nodes/{j2node}/fail")
    must(st == 200, f"fail node {j2node}: {st} {b}")
    check([n["state"] for n in b["node_states"] if n["node"] == j2node] == ["failed"],
          "the node shows failed")
    st, b = api("POST", f"/v1/admin/pools/{A['id']}/nodes/{j2node}/fail")
    check(st == 409, f"failing a failed node: 409, {st}")
    st, b = api("POST", f"/v1/admin/pools/{A['id']}/nodes/99/fail")
    check(st == 404, f"no such node: 404, {st}")
    st, b = api("POST", f"/v1/admin/pools/{A['id']}/nodes/1/fail", key=pkey)
    check(st == 403, f"a provider cannot drill: 403, {st}")
    c = contract(C1)
    check(gpus_of(c["placement"]) == 64 and j2node not in nodes_of(c["placement"]) and
          c["lost_gpu_hours"] == 0 and c["missing_gpus"] == 0,
          f"re-placed on spare healthy GPUs, nothing lost: {c}")
    j2 = job(j2["id"])
    check(j2["status"] == "running" and gpus_of(j2["placement"]) == 8 and
          j2node not in nodes_of(j2["placement"]) and
          set(nodes_of(j2["placement"])) <= set(nodes_of(c["placement"])),
          f"the job on the failed node is re-placed on the contract's GPUs: {j2}")

    # ---- 5. a contract takes every healthy unsold GPU (56); then no spare.
    C3 = order(56, 6, 2)
    advance_to(6 * H)
    c3 = contract(C3)
    check(c3["status"] == "active" and gpus_of(c3["placement"]) == 56 and c3["missing_gpus"] == 0,
          f"a reservation the healthy pool can hold is placed in full at its start: {c3}")
    c = contract(C1)
    victim = [n for n in nodes_of(c["placement"]) if n not in nodes_of(job(j2["id"])["placement"])][0]
    advance_to(6 * H + 30 * 60)
    st, b = api("POST", f"/v1/admin/pools/{A['id']}/nodes/{victim}/fail")
    must(st == 200, f"fail node {victim}: {st} {b}")
    c = contract(C1)
    check(gpus_of(c["placement"]) == 56 and c["missing_gpus"] == 8 and
          c["lost_hours"] == [{"hour": iso(6 * H), "gpus": 8}] and c["lost_gpu_hours"] == 8,
          f"no spare: 8 GPUs lost from 06:00: {c}")
    check(job(j2["id"])["status"] == "running", "the job not on the failed node keeps running")

    # ---- 6. restart in the middle.
    before = {k: contract(k) for k in (C1, C2, C3)}
    pa_before = pool(A)
    j2_before = job(j2["id"])
    kill9(e)
    e.up()
    for k in (C1, C2, C3):
        a, b = before[k], contract(k)
        check(a["placement"] == b["placement"] and a["lost_hours"] == b["lost_hours"] and
              a["missing_gpus"] == b["missing_gpus"], f"contract {k} after restart: {a} vs {b}")
    check(pool(A)["node_states"] == pa_before["node_states"], "node states after restart")
    check(job(j2["id"]) == j2_before, "the job after restart")

    # ---- 7. the next hour is lost too; repair gives the GPUs back.
    advance_to(7 * H + 30 * 60)
    c = contract(C1)
    check(c["lost_hours"] == [{"hour": iso(6 * H), "gpus": 8}, {"hour": iso(7 * H), "gpus": 8}],
          f"each hour the GPUs stay missing is recorded: {c['lost_hours']}")
    st, b = api("POST", f"/v1/admin/pools/{A['id']}/nodes/{j2node}/repair")
    must(st == 200, f"repair: {st} {b}")
    st, b = api("POST", f"/v1/admin/pools/{A['id']}/nodes/{j2node}/repair")
    check(st == 409, f"repairing a healthy node: 409, {st}")
    c = contract(C1)
    check(gpus_of(c["placement"]) == 64 and c["missing_gpus"] == 0 and j2node in nodes_of(c["placement"]),
          f"repair: the contract has its 64 GPUs again: {c}")
    # A single GPU: fail and repair.
    g_node = nodes_of(contract(C3)["placement"])[0]
    st, b = api("POST", f"/v1/admin/pools/{A['id']}/nodes/{g_node}/gpus/3/fail")
    check(st == 200 and [n["failed_gpus"] for n in b["node_states"] if n["node"] == g_node] == [[3]],
          f"fail one GPU: {st}")
    c3 = contract(C3)
    check(gpus_of(c3["placement"]) == 56 - 1 and c3["missing_gpus"] == 1,
          f"no spare for one GPU either: {c3}")
    st, b = api("POST", f"/v1/admin/pools/{A['id']}/nodes/{g_node}/gpus/3/repair")
    check(st == 200, f"repair one GPU: {st}")
    c3 = contract(C3)
    check(gpus_of(c3["placement"]) == 56 and c3["missing_gpus"] == 0, f"GPU back: {c3}")
    advance_to(9 * H)
    c = contract(C1)
    check(c["lost_gpu_hours"] == 16 and
          c["lost_hours"] == [{"hour": iso(6 * H), "gpus": 8}, {"hour": iso(7 * H), "gpus": 8}],
          f"the lost-hours record is exact: {c['lost_hours']}")
    c3 = contract(C3)
    check(c3["lost_hours"] == [{"hour": iso(7 * H), "gpus": 1}], f"C3 lost 1 GPU-hour: {c3}")

    # With no spot bid live the clock skips idle minutes, but not the minute a job's hours run
    # out: the queued job starts then.
    for oid in (S1["id"], S2["id"]):
        st, b = api("DELETE", f"/v1/orders/{oid}", key=skey)
        check(st == 200 and b["status"] == "cancelled", f"cancel spot bid: {st} {b}")
    check(pool(A)["utilization"]["spot"] == 0, "a cancelled bid holds no GPU")
    advance_to(9 * H + 10 * 60)
    st, j4 = api("POST", f"/v1/contracts/{C1}/jobs", {"gpus": 8, "hours": 1}, key=bkey)
    check(st == 201 and j4["status"] == "running", f"job 4 runs: {st} {j4}")
    st, j5 = api("POST", f"/v1/contracts/{C1}/jobs", {"gpus": 56}, key=bkey)
    check(st == 201 and j5["status"] == "queued", f"job 5 queues: {st} {j5}")
    st, j6 = api("POST", f"/v1/contracts/{C1}/jobs", {"gpus": 8}, key=bkey)
    st, b = api("DELETE", f"/v1/jobs/{j6['id']}", key=bkey)
    check(st == 200 and b["status"] == "stopped" and b["ended_at"] == iso(9 * H + 10 * 60),
          f"a queued job stopped: {st} {b}")
    advance_to(11 * H)
    j4, j5 = job(j4["id"]), job(j5["id"])
    check(j4["status"] == "completed" and j4["ended_at"] == iso(10 * H + 10 * 60),
          f"job 4 completes after its hour: {j4}")
    check(j5["status"] == "running" and j5["started_at"] == iso(10 * H + 10 * 60),
          f"job 5 starts on the minute job 4 ends: {j5}")

    # The contract ends: its jobs end, its GPUs are free.
    advance_to(12 * H)
    c = contract(C1)
    j2 = job(j2["id"])
    check(c["status"] == "completed" and c["placement"] == [], f"completed, no placement: {c}")
    check(j2["status"] == "completed" and j2["ended_at"] == iso(12 * H),
          f"a job without hours ends with its contract: {j2}")
    st, b = api("DELETE", f"/v1/jobs/{j2['id']}", key=bkey)
    check(st == 409, f"stopping an ended job: 409, {st}")
    st, b = api("GET", "/v1/admin/ledger/check")
    check(st == 200 and b["balanced"] and b["violations"] == [], f"ledger check: {b}")
except SystemExit:
    pass
finally:
    e.close()


# ---- 8. the seeded failure process: the same seed gives the same failures, across a restart.
def failure_run(kill_at):
    """Failed hardware and the contract's losses after each of 12 hours; kill -9 at kill_at."""
    f = Env("schedf", clock="sim:" + T0,
            extra={"CAPX_SCHED_MTBF_H": 40, "CAPX_SCHED_REPAIR_H": 3, "CAPX_SCHED_SEED": 7})
    out = []
    try:
        f.up()

        def api(method, path, body=None, key="admin"):
            st, _, b = f.req(method, path, body, key=key)
            assert st in (200, 201), (method, path, st, b)
            return b

        p = api("POST", "/v1/accounts", {"name": "p", "roles": ["provider"]})
        b = api("POST", "/v1/accounts", {"name": "b", "roles": ["buyer"]})
        api("POST", f"/v1/accounts/{b['id']}/deposits", {"amount": 10_000_000_000})
        pool = api("POST", "/v1/pools", {"name": "f", "gpu_model": MODEL, "region": "r",
                                         "nodes": 8, "gpus_per_node": 8}, key=p["api_key"])
        api("POST", "/v1/offers", {"pool_id": pool["id"], "gpus": 64, "start": iso(H),
                                   "end": iso(24 * H), "price": 1_000_000}, key=p["api_key"])
        o = api("POST", "/v1/orders", {"kind": "reservation", "gpu_model": MODEL, "region": "r",
                                       "gpus": 60, "start": iso(H), "hours": 20,
                                       "limit_price": 1_000_000}, key=b["api_key"])
        cid = o["contracts"][0]
        for h in range(1, 13):
            api("POST", "/v1/admin/clock", {"advance_seconds": H})
            if h == kill_at:
                kill9(f)
                f.up()
            pv = api("GET", f"/v1/pools/{pool['id']}", key=p["api_key"])
            c = api("GET", f"/v1/contracts/{cid}", key=b["api_key"])
            failed = sorted((n["node"], n["state"], tuple(n["failed_gpus"]))
                            for n in pv["node_states"] if n["state"] != "up")
            out.append((failed, c["lost_hours"], gpus_of(c["placement"]) + c["missing_gpus"]))
    finally:
        f.close()
    return out


try:
    straight, restarted = failure_run(0), failure_run(6)
    check(straight == restarted, f"same seed, same failures across a restart:\n{straight}\n{restarted}")
    check(any(x[0] for x in straight), f"failures happen with sched_mtbf_h=40: {straight}")
    check(all(x[2] == 60 for x in straight), "a contract's GPUs are placed or counted missing")
    check(any(x[1] for x in straight), f"failures beyond the spare GPUs lose GPU-hours: {straight}")
    seen = [set(n for n, _, _ in x[0]) for x in straight]
    check(any(a - b for a, b in zip(seen, seen[1:])), f"failed nodes are repaired: {seen}")
except Exception as ex:  # noqa: BLE001
    check(False, f"failure process: {ex!r}")
done()
