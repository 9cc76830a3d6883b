-- 64 connections, each POSTs a single random NB201 cell (cache off on the server)
local ops = {"none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"}
math.randomseed(os.time())
request = function()
  local o = {}
  for i = 1, 6 do o[i] = ops[math.random(5)] end
  local arch = string.format("|%s~0|+|%s~0|%s~1|+|%s~0|%s~1|%s~2|", o[1], o[2], o[3], o[4], o[5], o[6])
  local body = '{"architectures":[{"space":"nb201","arch":"' .. arch .. '"}]}'
  return wrk.format("POST", "/v1/predict", {["content-type"] = "application/json"}, body)
end
