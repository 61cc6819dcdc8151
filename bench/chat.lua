-- wrk script: POST a chat completion. BENCH_KEY (optional) is sent as the bearer token,
-- BENCH_STREAM=1 asks for a streamed answer.
local key = os.getenv("BENCH_KEY")
local stream = os.getenv("BENCH_STREAM") == "1"
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
if key and key ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. key
end
local model = os.getenv("BENCH_MODEL") or "rampart-demo"
wrk.body = '{"model":"' .. model .. '","stream":' .. tostring(stream) ..
  ',"messages":[{"role":"system","content":"You are a helpful assistant."},' ..
  '{"role":"user","content":"Summarise the benefits of an API gateway in two sentences."}]}'

done = function(summary, latency, requests)
  local errors = summary.errors.status + summary.errors.connect + summary.errors.read +
    summary.errors.write + summary.errors.timeout
  io.write(string.format("RESULT rps=%.1f p50_us=%d p99_us=%d requests=%d errors=%d\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(50), latency:percentile(99),
    summary.requests, errors))
end
