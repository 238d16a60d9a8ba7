-- Install feedback for wrk: every request is a batch of 100 events from different devices
-- about seeded releases (see bench/feedback.sh). With `tokens=FILE` (lines of
-- `device version channel token`, written by `halftone-seed tokens`) every event carries its
-- device's report token, so the server counts and commits it; without, events are refused as
-- `missing_token` and only parsing and screening are measured.
--
-- The bodies are built in `init`: a pool of `pool=N` batches (256 by default), sent in turn,
-- so that the generator, which shares the machine's cores with the server, spends its time
-- sending, not formatting (building every body afresh, `pool=0`, cost it about 1.3 us of CPU
-- per event on the 2-core bench machine, as much as the server's HTTP worker spends on one).
--
--   wrk -t1 -c16 -d10s -s bench/events.lua http://127.0.0.1:PORT -- releases=100 tokens=/tmp/tokens [pause_ms=30]
--
-- `done` prints one line:
--   BENCH requests=.. seconds=.. rps=.. events_per_s=.. p50_us=.. p99_us=.. non200=..

local releases, app = 100, "bench"
local path
local headers = { ["Content-Type"] = "application/json" }
local KINDS = { "download_started", "install_succeeded", "first_run", "install_failed", "crash" }
local CHANNELS = { "stable", "beta", "unstable" }
local counter = 0
local devices = {}
local pause_ms = 0
local pool_size = 256
local pool = {}
local sent = 0
non200 = 0

local function version(i)
  return string.format("%d.%d.%d", 1 + math.floor(i / 10000), math.floor(i / 100) % 100, i % 100)
end

function init(args)
  for _, a in ipairs(args) do
    local k, v = a:match("^([%w_]+)=(.*)$")
    if k == "releases" then releases = tonumber(v) elseif k == "app" then app = v
    elseif k == "pause_ms" then pause_ms = tonumber(v)
    elseif k == "pool" then pool_size = tonumber(v)
    elseif k == "tokens" then
      for line in io.lines(v) do
        local d, ver, ch, tok = line:match("^(%S+) (%S+) (%S+) (%S+)$")
        if d then devices[#devices + 1] = { d, ver, ch, tok } end
      end
    end
  end
  path = "/v1/apps/" .. app .. "/events"
  math.randomseed(os.time() + (thread_id or 0))
  for i = 1, pool_size do pool[i] = build() end
end

function request()
  if #pool == 0 then return build() end
  sent = sent + 1
  return pool[(sent - 1) % #pool + 1]
end

function build()
  local events = {}
  for i = 1, 100 do
    counter = counter + 1
    if #devices > 0 then
      local d = devices[math.random(#devices)]
      events[i] = string.format('{"device_id":"%s","kind":"%s","version":"%s","channel":"%s","token":"%s"}',
        d[1], KINDS[math.random(#KINDS)], d[2], d[3], d[4])
    else
    events[i] = string.format(
      '{"device_id":"e-%08x-%d","kind":"%s","version":"%s","channel":"%s"}',
      math.random(0, 0x7fffffff), counter, KINDS[math.random(#KINDS)],
      version(math.random(0, releases - 1)), CHANNELS[math.random(#CHANNELS)])
    end
  end
  return wrk.format("POST", path, headers, '{"events":[' .. table.concat(events, ",") .. ']}')
end

-- With `pause_ms=N` each connection waits N ms after each answer: a steady event rate of about
-- connections * 100 * 1000 / (N + latency) events/s, instead of as many as the server takes.
function delay()
  return pause_ms
end

function response(status)
  if status ~= 202 then non200 = non200 + 1 end
end

function done(summary, latency)
  local seconds = summary.duration / 1e6
  io.write(string.format("BENCH requests=%d seconds=%.2f rps=%.0f events_per_s=%.0f p50_us=%d p99_us=%d non200=%d\n",
    summary.requests, seconds, summary.requests / seconds, summary.requests * 100 / seconds,
    latency:percentile(50), latency:percentile(99), summary.errors.status + summary.errors.connect
      + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
