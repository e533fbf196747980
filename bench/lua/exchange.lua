-- POST /api/v1/auth/keys: each request spends the next unused code from the pool in
-- $BENCH_CODES (codes without a challenge, so the body is just {"code": ...}).
-- Threads take disjoint slices; when a slice runs out, requests repeat its last code
-- and fail with 403, which the harness reports as errors.
local report = dofile((os.getenv("BENCH_LUA_DIR") or "bench/lua") .. "/report.lua")
setup, done = report.setup, report.done

local codes, i
local headers = { ["Content-Type"] = "application/json" }

function request()
  if codes == nil then
    codes = report.lines(os.getenv("BENCH_CODES"), (thread_index or 0) + 1, thread_count or 1)
    i = 0
  end
  i = i + 1
  local code = codes[math.min(i, #codes)]
  return wrk.format("POST", "/api/v1/auth/keys", headers, '{"code":"' .. code .. '"}')
end
