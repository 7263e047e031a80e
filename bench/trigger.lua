-- wrk script for usher's benchmark: MistServer-shaped USER_NEW triggers (7-line bodies).
-- wrk ... -s bench/trigger.lua URL -- MODE CONN STREAM THREADS [TOKENS_FILE] [N] [RUN]
--   MODE  fresh:  a new session and a token never sent before on every request (TOKENS_FILE)
--         cached: N fixed sessions, each with its own token (first N lines of TOKENS_FILE)
--         hook:   a new session on every request, no token (webhook policy)
--         steady: fresh, and viewers leave as they come: once LAG sessions of this run were
--                 admitted, every USER_NEW is followed by the USER_END of the session admitted
--                 LAG before it, so the tables stay the same size (a node whose viewers come and
--                 go, not one filling up). Requests alternate USER_NEW / USER_END.
--   CONN  close (a new connection per request, as MistServer does) or keep
-- done() prints RPS, P50_US, P99_US, P999_US, NOT_TRUE (answers other than `true`), WRAPPED
-- (fresh runs that ran out of tokens and reused one), ERRORS.

local threads = {}

function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

function init(args)
  mode, stream = args[1], args[3]
  nthreads = tonumber(args[4])
  local file, n = args[5], tonumber(args[6] or "0")
  run = tonumber(args[7] or "0")
  not_true, wrapped, idx, ending = 0, 0, 0, false
  lag = 512 -- well over the 64 requests wrk keeps in flight: a session has its answer before its end
  headers = { ["X-Trigger"] = "USER_NEW", ["Content-Type"] = "text/plain",
              ["User-Agent"] = "MistServer/3.10", ["X-Attempt"] = "1" }
  if args[2] == "close" then headers["Connection"] = "close" end
  tokens, ids = {}, {}
  if file and file ~= "" then
    local i = 0
    for line in io.lines(file) do
      if mode == "cached" and i >= n then break end
      if i % nthreads == tid then
        tokens[#tokens + 1] = line
        ids[#ids + 1] = i
      end
      i = i + 1
    end
  end
end

local function body(tok, url_tok, sess)
  local url = "http://127.0.0.1:8080/hls/" .. stream .. "/index.m3u8"
  if url_tok then url = url .. "?jwt=" .. tok end
  return stream .. "\n127.0.0.1\n" .. tok .. "\nHLS\n" .. url .. "\n" .. sess .. "\nfalse"
end

local function end_body(tok, sess)
  return tok .. "\n" .. stream .. "\nHLS\n127.0.0.1\n1\n100\n2000\n\n\n\n\n" .. sess
end

function request()
  if mode == "steady" and ending then
    ending = false
    local i = idx - lag
    local sess = string.format("%016x%048x", run, ids[i])
    headers["X-Trigger"] = "USER_END"
    headers["X-Trigger-UUID"] = sess
    return wrk.format("POST", nil, headers, end_body(tokens[i], sess))
  end
  headers["X-Trigger"] = "USER_NEW"
  idx = idx + 1
  local b, sess
  if mode == "hook" then
    sess = string.format("%016x%016x%032x", run, tid, idx)
    b = body("e7ba6040b648", false, sess)
  else
    if idx > #tokens then idx = 1; if mode ~= "cached" then wrapped = wrapped + 1 end end
    ending = mode == "steady" and idx > lag
    sess = string.format("%016x%048x", run, ids[idx])
    b = body(tokens[idx], true, sess)
  end
  headers["X-Trigger-UUID"] = sess
  return wrk.format("POST", nil, headers, b) -- the path of the URL given to wrk
end

function response(status, hdrs, b)
  if b ~= "true" then not_true = not_true + 1 end
end

function done(summary, latency, requests)
  local nt, wr = 0, 0
  for _, t in ipairs(threads) do
    nt = nt + (t:get("not_true") or 0)
    wr = wr + (t:get("wrapped") or 0)
  end
  local e = summary.errors
  io.write(string.format("RPS %.1f\n", summary.requests / (summary.duration / 1e6)))
  io.write(string.format("REQUESTS %d\n", summary.requests))
  io.write(string.format("P50_US %d\nP99_US %d\nP999_US %d\n",
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9)))
  io.write(string.format("NOT_TRUE %d\nWRAPPED %d\nERRORS %d\n", nt, wr,
    e.connect + e.read + e.write + e.status + e.timeout))
end
