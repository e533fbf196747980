-- POST /api/v1/auth/keys/code with a personal key ($BENCH_KEY). Every request binds a
-- fresh plain code_challenge (43 chars of [A-Za-z0-9]): run tag + thread + counter,
-- because a challenge bound to a live code answers 409.
local report = dofile((os.getenv("BENCH_LUA_DIR") or "bench/lua") .. "/report.lua")
setup, done = report.setup, report.done

local headers, prefix
local n = 0

function request()
  if headers == nil then
    headers = {
      ["Authorization"] = "Bearer " .. os.getenv("BENCH_KEY"),
      ["Content-Type"] = "application/json",
    }
    prefix = os.getenv("BENCH_TAG") .. "T" .. tostring(thread_index or 0) .. "N"
  end
  n = n + 1
  local challenge = prefix .. string.rep("0", 43 - #prefix - #tostring(n)) .. tostring(n)
  local body = string.format(
    '{"callback_url":"https://bench.example.com/cb","code_challenge":"%s",'
      .. '"code_challenge_method":"plain"}',
    challenge)
  return wrk.format("POST", "/api/v1/auth/keys/code", headers, body)
end
