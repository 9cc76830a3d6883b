-- One random NB201 cell per POST (the server's cache decides whether it is a hit). With THINK_MS (environment variable,
-- milliseconds) above 0, each connection is a client that thinks between its queries: before each request it waits an
-- exponentially distributed time of that mean, as a NAS controller's worker does between evaluations; wrk times each
-- request from send to answer. Without it, a closed loop: the next request leaves as the answer arrives.
local ops = {"none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"}
local think_ms = tonumber(os.getenv("THINK_MS") or "0")
math.randomseed(os.time())
request = function()
  local o = {}
  for i = 1, 6 do o[i] = ops[math.random(5)] end
  local arch = string.format("|%s~0|+|%s~0|%s~1|+|%s~0|%s~1|%s~2|", o[1], o[2], o[3], o[4], o[5], o[6])
  local body = '{"architectures":[{"space":"nb201","arch":"' .. arch .. '"}]}'
  return wrk.format("POST", "/v1/predict", {["content-type"] = "application/json"}, body)
end
if think_ms > 0 then  -- wrk paces a connection only where the script defines delay()
  delay = function()
    return math.floor(-think_ms * math.log(1.0 - math.random()))
  end
end
