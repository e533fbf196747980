-- Baseline: POST a small JSON body that the server validates and echoes.
-- The body changes per request (like the real scenarios) and is formatted per request.
local report = dofile((os.getenv("BENCH_LUA_DIR") or "bench/lua") .. "/report.lua")
setup, done = report.setup, report.done

local n = 0
local headers = { ["Content-Type"] = "application/json" }

function request()
  n = n + 1
  local body = string.format('{"name":"bench","n":%d,"tags":["a","b"]}', n)
  return wrk.format("POST", "/echo", headers, body)
end
