-- bench/api/get.lua — wrk script: GET $BENCH_PATH with a buyer key (the first line of
-- $BENCH_KEYS), the same request bytes for capxd and for nginx (nginx ignores the key).
local path, hdrs = os.getenv("BENCH_PATH"), {}

function init(args)
    for line in io.lines(os.getenv("BENCH_KEYS")) do
        if #line > 0 then hdrs["Authorization"] = "Bearer " .. line; break end
    end
    req = wrk.format("GET", path, hdrs)
end

function request()
    return req
end

function done(summary, latency, requests)
    local e = summary.errors
    io.write(string.format(
        "WRKRESULT requests=%d non2xx=%d connect=%d read=%d write=%d timeout=%d secs=%.3f " ..
        "p50_ms=%.3f p99_ms=%.3f\n",
        summary.requests, e.status, e.connect, e.read, e.write, e.timeout,
        summary.duration / 1e6, latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
