-- wrk script for bench/redfish_get.py: sends the session token, reports one parseable line.
-- The token comes from the environment so it never appears on a command line.
local token = os.getenv("REDFISH_TOKEN")
if token and token ~= "" then
  wrk.headers["X-Auth-Token"] = token
end
wrk.headers["Accept"] = "application/json"

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "RESULT requests=%d duration_us=%d p50_us=%d p99_us=%d max_us=%d non2xx=%d sockerr=%d\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    latency.max, e.status, e.connect + e.read + e.write + e.timeout))
end
