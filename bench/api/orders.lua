-- bench/api/orders.lua — wrk script: POST /v1/orders, reservation orders, each with its own
-- Idempotency-Key, spread over the buyer keys of $BENCH_KEYS.
-- Half of them fill at once (limit 2.50 USD above every ask: 1-4 GPUs, 1-8 hours, a start
-- anywhere in the 30 days of supply); half rest in the book (limit 1.00-1.99 USD, below
-- every ask, a start in the first day). Environment: BENCH_KEYS (file, one key a line),
-- BENCH_T0 (epoch of the first supplied hour), BENCH_HOURS, BENCH_RUN (a word unique per
-- run: keys never repeat across runs), BENCH_FILL (fraction that fills, default 0.5).
local threads, nthreads = {}, 0

function setup(thread)
    thread:set("tid", nthreads)
    nthreads = nthreads + 1
    table.insert(threads, thread)
end

local keys, hdrs, counter, prefix = {}, {}, 0, ""
local t0, hours, fill

function init(args)
    for line in io.lines(os.getenv("BENCH_KEYS")) do
        if #line > 0 then table.insert(keys, "Bearer " .. line) end
    end
    t0 = tonumber(os.getenv("BENCH_T0"))
    hours = tonumber(os.getenv("BENCH_HOURS"))
    fill = tonumber(os.getenv("BENCH_FILL") or "0.5")
    prefix = (os.getenv("BENCH_RUN") or "run") .. "-t" .. tid .. "-"
    math.randomseed(os.time() + 7919 * tid)
    hdrs["Content-Type"] = "application/json"
end

local function iso(t)
    return os.date("!%Y-%m-%dT%H:00:00Z", t)
end

function request()
    counter = counter + 1
    hdrs["Authorization"] = keys[(counter + tid) % #keys + 1]
    hdrs["Idempotency-Key"] = prefix .. counter
    local body
    if math.random() < fill then
        local h = math.random(1, 8)
        body = string.format(
            '{"kind":"reservation","gpu_model":"H100-SXM-80GB","region":"us-west","gpus":%d,' ..
            '"start":"%s","hours":%d,"limit_price":2500000}',
            math.random(1, 4), iso(t0 + 3600 * math.random(0, hours - h)), h)
    else
        body = string.format(
            '{"kind":"reservation","gpu_model":"H100-SXM-80GB","region":"us-west","gpus":%d,' ..
            '"start":"%s","hours":%d,"limit_price":%d}',
            math.random(1, 4), iso(t0 + 3600 * math.random(0, 23)), math.random(1, 8),
            1000000 + 10000 * math.random(0, 99))
    end
    return wrk.format("POST", "/v1/orders", hdrs, body)
end

function done(summary, latency, requests)
    local e = summary.errors
    io.write(string.format(
        "WRKRESULT requests=%d non2xx=%d connect=%d read=%d write=%d timeout=%d secs=%.3f " ..
        "p50_ms=%.3f p99_ms=%.3f\n",
        summary.requests, e.status, e.connect, e.read, e.write, e.timeout,
        summary.duration / 1e6, latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
