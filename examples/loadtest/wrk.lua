-- The load test's wrk script: each request carries the next header of the
-- file named by the first argument (one pre-signed header a line, each
-- nonce used once); at the end of the file the last header is sent again,
-- which a protected server refuses as a replay (counted as status errors,
-- and the load test then fails the run).
local file, path, body, last

function init(args)
  file = assert(io.open(args[1], "r"))
  path = args[2]
  body = string.rep("x", tonumber(args[3]))
end

function request()
  local line = file:read("*l")
  if line then last = line end
  return wrk.format("POST", path, { ["Authorization"] = last }, body)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "wrk-result requests=%d duration_us=%d status_errors=%d socket_errors=%d p50_us=%d p99_us=%d\n",
    summary.requests, summary.duration, e.status,
    e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
