-- One bench scenario for wrk (one thread). Read from the environment:
--   BENCH_METHOD, BENCH_BODY, BENCH_AUTH (an access token), BENCH_TOKENS (a file of
--   refresh tokens: each request sends the next one, so no token is used twice),
--   BENCH_OUT (where done() writes the summary as JSON).
local method = os.getenv("BENCH_METHOD") or "GET"
local body = os.getenv("BENCH_BODY")
local auth = os.getenv("BENCH_AUTH")
local tokens_file = os.getenv("BENCH_TOKENS")
local tokens = {}
local next_token = 1

wrk.method = method
if body and body ~= "" then
  wrk.body = body
  wrk.headers["Content-Type"] = "application/json"
end
if auth and auth ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. auth
end

if tokens_file and tokens_file ~= "" then
  for line in io.lines(tokens_file) do
    tokens[#tokens + 1] = line
  end
  wrk.headers["Content-Type"] = "application/json"
  request = function()
    local token = tokens[next_token]
    next_token = next_token % #tokens + 1
    return wrk.format(nil, nil, nil, '{"refresh_token": "' .. token .. '"}')
  end
end

done = function(summary, latency, requests)
  local e = summary.errors
  local out = io.open(os.getenv("BENCH_OUT"), "w")
  out:write(string.format(
    '{"requests": %d, "duration_us": %d, "connect": %d, "read": %d, "write": %d, ' ..
    '"status": %d, "timeout": %d, "p50_us": %d, "p99_us": %d}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99)))
  out:close()
end
