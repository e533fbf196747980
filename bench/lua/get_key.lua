-- GET /api/v1/key, rotating through a pool of valid keys (one per line in $BENCH_KEYS).
-- thread_count is read lazily: setup() has numbered every thread before any request.
local report = dofile((os.getenv("BENCH_LUA_DIR") or "bench/lua") .. "/report.lua")
setup, done = report.setup, report.done

local keys, i

function request()
  if keys == nil then
    keys = report.lines(os.getenv("BENCH_KEYS"), 1, 1)
    i = (thread_index or 0) * 7
  end
  i = i + 1
  local key = keys[(i % #keys) + 1]
  return wrk.format("GET", "/api/v1/key", { ["Authorization"] = "Bearer " .. key })
end
