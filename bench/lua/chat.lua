-- POST a small chat completion to $BENCH_CHAT_PATH (the gateway's
-- /api/v1/chat/completions, or the upstream stub's /v1/chat/completions directly),
-- with $BENCH_KEY as the bearer key and $BENCH_HEADERS ("Name: value" lines) added,
-- and $BENCH_MODEL (default bench/stub) as the model.
local report = dofile((os.getenv("BENCH_LUA_DIR") or "bench/lua") .. "/report.lua")
setup, done = report.setup, report.done

local headers, path
local body

function request()
  if headers == nil then
    headers = {
      ["Authorization"] = "Bearer " .. (os.getenv("BENCH_KEY") or "none"),
      ["Content-Type"] = "application/json",
    }
    for name, value in string.gmatch(os.getenv("BENCH_HEADERS") or "", "([^:\n]+):%s*([^\n]*)") do
      headers[name] = value
    end
    path = os.getenv("BENCH_CHAT_PATH")
    body = '{"model":"' .. (os.getenv("BENCH_MODEL") or "bench/stub") .. '",'
      .. '"messages":[{"role":"user","content":"Say hi"}],"max_tokens":8}'
  end
  return wrk.format("POST", path, headers, body)
end
