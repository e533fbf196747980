-- POST a small chat completion to $BENCH_CHAT_PATH (the gateway's
-- /api/v1/chat/completions, or the upstream stub's /v1/chat/completions directly),
-- with $BENCH_KEY as the bearer key.
local report = dofile((os.getenv("BENCH_LUA_DIR") or "bench/lua") .. "/report.lua")
setup, done = report.setup, report.done

local headers, path
local body = '{"model":"bench/stub","messages":[{"role":"user","content":"Say hi"}],'
  .. '"max_tokens":8}'

function request()
  if headers == nil then
    headers = {
      ["Authorization"] = "Bearer " .. (os.getenv("BENCH_KEY") or "none"),
      ["Content-Type"] = "application/json",
    }
    path = os.getenv("BENCH_CHAT_PATH")
  end
  return wrk.format("POST", path, headers, body)
end
