-- Check-ins for wrk that nothing can cache: every request is a different device, with its own
-- id, current version, channel, platform, os version, locale and traits. See bench/README.md.
--
--   wrk -t1 -c64 -d10s -s bench/checkin.lua http://127.0.0.1:PORT -- mode=checkin releases=1000
--
-- Arguments after `--` (key=value):
--   mode=checkin   POST /v1/apps/APP/check, a random device per request (default)
--   mode=distinct  the same, with device ids that never repeat (d-PREFIX-THREAD-N), for the RSS test
--   mode=static    GET PATH (nginx's latest.json). The device body is still generated and
--                  thrown away, so wrk spends the same effort per request on both sides.
--   releases=N     the seeded catalog's size (current versions are drawn from it; default 1000)
--   app=ID         the app (default bench)
--   path=/P        the static file's path (default /latest.json)
--   prefix=S       distinct mode: a prefix that keeps ids of successive runs apart (default r)
--   recent=N       most devices run one of the N newest releases (default 50)
--   spread=P       P in 100 devices run any release instead (default 30)
--   nonce=1        each check-in carries a fresh 16-byte nonce, as an SDK that pins the
--                  server's answer key sends (default 0)
--
-- Every response goes through `response`, which counts non-200 answers and answers that offer
-- an update; `done` prints one line
--   BENCH requests=.. seconds=.. rps=.. p50_us=.. p99_us=.. max_us=.. non200=.. socket_errors=.. offers=..
-- The catalog's shape (versions 1.0.0, 1.0.1, ...) mirrors tests/src/seed.rs.

local threads = {}

function setup(thread)
  thread:set("thread_id", #threads)
  table.insert(threads, thread)
end

local mode, releases, app, static_path, prefix = "checkin", 1000, "bench", "/latest.json", "r"
local check_path
local headers = { ["Content-Type"] = "application/json" }
local counter = 0
non200 = 0
offers = 0

local CHANNELS = { "stable", "stable", "stable", "stable", "stable", "stable", "beta", "beta", "beta", "unstable" }
local PLATFORMS = {
  { "windows", "x86_64" }, { "windows", "aarch64" }, { "macos", "x86_64" },
  { "macos", "aarch64" }, { "linux", "x86_64" }, { "linux", "aarch64" },
}
local OS_VERSIONS = { "10.0.19045", "10.0.22631", "14.4.1", "13.6", "6.8.0", "12", "15.1" }
local LOCALES = { "en-US", "de-DE", "fr-FR", "zh-CN", "ja-JP", "pt-BR", "es-ES" }
local TIERS = { "gold", "silver", "bronze" }
local RAM = { 4, 8, 16, 32 }
local ALLOWED = 10 -- vip-0 .. vip-9 are on some rollouts' allow lists
local recent = 50 -- most devices run one of this many newest releases...
local spread = 30 -- ...and this many in 100 run any release
local with_nonce = false

local function pick(t)
  return t[math.random(1, #t)]
end

local function version(i)
  return string.format("%d.%d.%d", 1 + math.floor(i / 10000), math.floor(i / 100) % 100, i % 100)
end

function init(args)
  for _, a in ipairs(args) do
    local k, v = a:match("^([%w_]+)=(.*)$")
    if k == "mode" then
      mode = v
    elseif k == "releases" then
      releases = tonumber(v)
    elseif k == "app" then
      app = v
    elseif k == "path" then
      static_path = v
    elseif k == "prefix" then
      prefix = v
    elseif k == "recent" then
      recent = tonumber(v)
    elseif k == "spread" then
      spread = tonumber(v)
    elseif k == "nonce" then
      with_nonce = v == "1"
    else
      error("checkin.lua: unknown argument " .. a)
    end
  end
  if mode ~= "checkin" and mode ~= "distinct" and mode ~= "static" then
    error("checkin.lua: mode must be checkin, distinct or static")
  end
  check_path = "/v1/apps/" .. app .. "/check"
  math.randomseed(os.time() + (thread_id or 0) * 7919 + math.floor(os.clock() * 1000000))
end

function request()
  counter = counter + 1
  local device
  if mode == "distinct" then
    device = string.format("d-%s-%d-%d", prefix, thread_id or 0, counter)
  elseif math.random(1, 200) == 1 then
    device = "vip-" .. math.random(0, ALLOWED - 1)
  else
    device = string.format("%08x%08x%08x%08x", math.random(0, 0x7fffffff), math.random(0, 0x7fffffff),
      math.random(0, 0x7fffffff), math.random(0, 0x7fffffff))
  end
  -- Most devices run one of the `recent` newest releases, whatever the catalog's size (a
  -- fleet follows its last few releases); `spread` in 100 run anything.
  local i
  if math.random(1, 100) > spread then
    i = releases - 1 - math.random(0, math.min(recent, releases) - 1)
  else
    i = math.random(0, releases - 1)
  end
  local platform = pick(PLATFORMS)
  local body = string.format(
    '{"device_id":"%s","current_version":"%s","channel":"%s","os":"%s","arch":"%s",'
      .. '"os_version":"%s","locale":"%s","traits":{"tier":"%s","ram_gb":%d}}',
    device, version(i), pick(CHANNELS), platform[1], platform[2], pick(OS_VERSIONS), pick(LOCALES),
    pick(TIERS), pick(RAM))
  if with_nonce then
    body = string.format('%s,"nonce":"%08x%08x%08x%08x"}', body:sub(1, -2), math.random(0, 0x7fffffff),
      math.random(0, 0x7fffffff), math.random(0, 0x7fffffff), math.random(0, 0x7fffffff))
  end
  if mode == "static" then
    return wrk.format("GET", static_path)
  end
  return wrk.format("POST", check_path, headers, body)
end

function response(status, headers, body)
  if status ~= 200 then
    non200 = non200 + 1
  elseif mode ~= "static" and not body:find('"update":null', 1, true) then
    offers = offers + 1
  end
end

function done(summary, latency, requests)
  local bad, offered = 0, 0
  for _, t in ipairs(threads) do
    bad = bad + (t:get("non200") or 0)
    offered = offered + (t:get("offers") or 0)
  end
  local e = summary.errors
  local seconds = summary.duration / 1000000
  io.write(string.format(
    "BENCH requests=%d seconds=%.3f rps=%.1f p50_us=%d p99_us=%d max_us=%d non200=%d socket_errors=%d offers=%d\n",
    summary.requests, seconds, summary.requests / seconds, latency:percentile(50), latency:percentile(99),
    latency.max, bad, e.connect + e.read + e.write + e.timeout, offered))
end
