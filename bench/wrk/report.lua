-- Appended to every bench scenario: prints one machine-readable line that bench/run parses.
-- `non2xx` counts every status outside 200..299 (wrk's own `errors.status` counts only >399);
-- it is gathered from each thread's environment, so a scenario's response() must update it.
local threads = {}

function setup(thread)
   table.insert(threads, thread)
end

function done(summary, latency, requests)
   local non2xx = 0
   local tokens = 0
   for _, t in ipairs(threads) do
      non2xx = non2xx + (t:get("non2xx") or 0)
      tokens = tokens + (t:get("tokens_seen") or 0)
   end
   local e = summary.errors
   io.write(string.format(
      "BENCH requests=%d duration_us=%d connect=%d read=%d write=%d status=%d timeout=%d non2xx=%d tokens=%d p50_us=%d p99_us=%d max_us=%d\n",
      summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
      non2xx, tokens, latency:percentile(50), latency:percentile(99), latency.max))
end
