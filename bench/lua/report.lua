-- Shared by every scenario: done() prints one line of JSON for the harness.
-- Latencies are in microseconds (wrk's unit); "status" counts responses >= 400.
local M = {}

function M.done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,'
      .. '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},'
      .. '"latency_us":{"min":%d,"mean":%.1f,"stdev":%.1f,"max":%d,'
      .. '"p50":%d,"p90":%d,"p99":%d,"p999":%d}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.min, latency.mean, latency.stdev, latency.max,
    latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency:percentile(99.9)))
end

-- Each wrk thread gets a number (0, 1, ...) so pools can be split without overlap.
-- The number of threads comes from $BENCH_THREADS (the harness passes wrk's -t).
local counter = 0
function M.setup(thread)
  thread:set("thread_index", counter)
  thread:set("thread_count", tonumber(os.getenv("BENCH_THREADS") or "1"))
  counter = counter + 1
end

-- Lines of a file, every `step`-th one starting at `first` (1-based).
function M.lines(path, first, step)
  local out = {}
  local i = 0
  for line in io.lines(path) do
    if (i % step) + 1 == first then
      out[#out + 1] = line
    end
    i = i + 1
  end
  return out
end

return M
