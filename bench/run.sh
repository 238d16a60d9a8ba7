#!/usr/bin/env bash
# Halftone's benchmark in one command: a personalised check-in against a static latest.json on
# nginx, and the figures around it (catalog size, a million devices, a rollout change under
# load, a 1 GiB artifact, start-up). See bench/README.md for what each line means.
#
#   bench/run.sh                 # the full bench (about half an hour on 2 cores)
#   BENCH_QUICK=1 bench/run.sh   # a smoke run: short durations, small catalogs
#
# Every setting is an environment variable (BENCH_*), listed in bench/README.md. The table goes
# to stdout, progress to stderr. Exits non-zero only if something failed to run (a tool, the
# server, seeding, or a check-in answered with an error), never because a figure is slow.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)

# ---------- settings ----------
if [[ ${BENCH_QUICK:-0} == 1 ]]; then
  d_duration=3 d_runs=1 d_releases=100 d_large=1000 d_devices=20000 d_upload=64 d_idle=20
else
  d_duration=10 d_runs=3 d_releases=1000 d_large=10000 d_devices=1000000 d_upload=1024 d_idle=90
fi
DURATION=${BENCH_DURATION:-$d_duration}         # seconds per wrk run
RUNS=${BENCH_RUNS:-$d_runs}                     # runs per figure; the table shows the median
RELEASES=${BENCH_RELEASES:-$d_releases}         # the main catalog
SMALL=${BENCH_SMALL_RELEASES:-10}               # small catalog
LARGE=${BENCH_LARGE_RELEASES:-$d_large}         # large catalog (and start-up)
DEVICES=${BENCH_DEVICES:-$d_devices}            # distinct devices for the RSS line
DEVICES_MAX_S=${BENCH_DEVICES_MAX_S:-300}       # bound on that run
UPLOAD_MIB=${BENCH_UPLOAD_MIB:-$d_upload}       # artifact size
FLIPS=${BENCH_FLIPS:-6}                         # rollout changes during the load run
THREADS=${BENCH_THREADS:-1}                     # wrk -t
CONNS=${BENCH_CONNECTIONS:-64}                  # wrk -c
WORKERS=${BENCH_WORKERS:-1}                     # halftone --workers (nginx: worker_processes)
CONCURRENCY=${BENCH_SEED_CONCURRENCY:-16}       # seeding requests in flight
SEED_TIMEOUT=${BENCH_SEED_TIMEOUT:-3600}        # bound on seeding, seconds
IDLE_BUSY_PCT=${BENCH_IDLE_BUSY_PCT:-15}        # "idle": all CPUs at most this busy...
IDLE_SECONDS=${BENCH_IDLE_SECONDS:-3}           # ...for this many seconds in a row...
IDLE_MAX_WAIT=${BENCH_IDLE_MAX_WAIT:-$d_idle}   # ...waiting at most this long, then run anyway
SECTIONS=${BENCH_SECTIONS:-main,flip,devices,upload,catalog,startup}
# The load comes from one address, far over the per-address request rates of a real server
# (docs/api.md, "Connection limits and load shedding"): turn them off unless set.
export HALFTONE_DEVICE_RATE_PER_ADDRESS=${HALFTONE_DEVICE_RATE_PER_ADDRESS:-0}
export HALFTONE_ADMIN_RATE_PER_ADDRESS=${HALFTONE_ADMIN_RATE_PER_ADDRESS:-0}
APP=bench

has_section() { [[ ",$SECTIONS," == *",$1,"* ]]; }
log() { printf '[bench %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() {
  log "error: $*"
  exit 1
}

# ---------- processes and temp files: everything started here is stopped on exit ----------
WORK=$(mktemp -d "${TMPDIR:-/tmp}/halftone-bench.XXXXXX")
PIDS=()
cleanup() {
  local rc=$? pid
  trap - EXIT INT TERM
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  if [[ ${BENCH_KEEP:-0} == 1 ]]; then log "kept $WORK"; else rm -rf "$WORK"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

forget_pid() {
  local keep=() p
  for p in "${PIDS[@]}"; do [[ $p == "$1" ]] || keep+=("$p"); done
  PIDS=("${keep[@]}")
}

# Stops one process we started: TERM, then KILL after 15 s.
stop_pid() {
  local pid=$1
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  forget_pid "$pid"
}

# ---------- tools ----------
install_tools() {
  local missing=()
  command -v wrk >/dev/null || missing+=(wrk)
  command -v nginx >/dev/null || [[ -x /usr/sbin/nginx ]] || missing+=(nginx)
  command -v curl >/dev/null || missing+=(curl)
  if ((${#missing[@]})); then
    command -v apt-get >/dev/null || die "missing ${missing[*]}, and there is no apt-get to install them"
    local sudo=()
    [[ $EUID -eq 0 ]] || sudo=(sudo)
    log "installing ${missing[*]}"
    "${sudo[@]}" apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "${missing[@]}" >&2
  fi
  NGINX=$(command -v nginx || echo /usr/sbin/nginx)
}

build() {
  local target=${CARGO_TARGET_DIR:-$ROOT/target}
  HALFTONE=$target/release/halftone
  SEED=$target/release/halftone-seed
  if [[ ${BENCH_SKIP_BUILD:-0} != 1 ]]; then
    log "building the release binaries"
    (cd "$ROOT" && cargo build --release --quiet -p halftone-server -p halftone-tests) >&2
  fi
  [[ -x $HALFTONE && -x $SEED ]] || die "no $HALFTONE or $SEED; build them (or unset BENCH_SKIP_BUILD)"
  # The source the binaries were built from (others may commit while the bench runs).
  COMMIT=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
  git -C "$ROOT" diff --quiet HEAD 2>/dev/null || COMMIT="$COMMIT+uncommitted changes"
  if [[ ${BENCH_SKIP_BUILD:-0} == 1 ]]; then COMMIT="prebuilt binaries (tree at $COMMIT)"; fi
}

# ---------- measuring the machine and processes ----------
CLK_TCK=$(getconf CLK_TCK)
NOT_IDLE=0

# Busy share of all CPUs over one second, in percent.
cpu_busy_pct() {
  local a b i ta=0 tb=0
  read -r -a a </proc/stat
  sleep 1
  read -r -a b </proc/stat
  for i in 1 2 3 4 5 6 7 8; do
    ta=$((ta + a[i]))
    tb=$((tb + b[i]))
  done
  local total=$((tb - ta)) idle=$((b[4] + b[5] - a[4] - a[5]))
  if ((total <= 0)); then echo 0; else echo $((100 * (total - idle) / total)); fi
}

# Waits until the machine has been idle for IDLE_SECONDS (at most IDLE_MAX_WAIT seconds).
wait_idle() {
  local calm=0 busy deadline=$((SECONDS + IDLE_MAX_WAIT))
  while true; do
    busy=$(cpu_busy_pct)
    if ((busy <= IDLE_BUSY_PCT)); then calm=$((calm + 1)); else calm=0; fi
    if ((calm >= IDLE_SECONDS)); then return 0; fi
    if ((SECONDS >= deadline)); then
      log "the machine is still busy (${busy}% CPU) after ${IDLE_MAX_WAIT}s; running anyway"
      NOT_IDLE=$((NOT_IDLE + 1))
      return 0
    fi
  done
}

# kB of VmRSS or VmHWM of a process.
proc_kb() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }

# Resets a process's VmHWM to its current RSS (Linux clear_refs); false if not allowed.
reset_hwm() { { echo 5 >"/proc/$1/clear_refs"; } 2>/dev/null; }

# CPU time (user + system) of processes, in clock ticks.
cpu_ticks() {
  local total=0 pid s f
  for pid in "$@"; do
    s=$(<"/proc/$pid/stat")
    read -r -a f <<<"${s##*) }"
    total=$((total + f[11] + f[12]))
  done
  echo "$total"
}

# CPU time of the HTTP worker threads (actix names them "actix-server worker N") of processes.
worker_ticks() {
  local total=0 pid t s f
  for pid in "$@"; do
    for t in /proc/"$pid"/task/*; do
      [[ $(<"$t/comm") == actix-server* ]] || continue
      s=$(<"$t/stat")
      read -r -a f <<<"${s##*) }"
      total=$((total + f[11] + f[12]))
    done
  done
  echo "$total"
}

mib() { awk -v k="$1" 'BEGIN { printf "%.0f MiB", k / 1024 }'; }

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)]; else print 0 }'; }

# The value of KEY in the last `TAG key=value ...` line of FILE.
field() { sed -n "s/^[A-Z]* .*\<$2=\([^ ]*\).*/\1/p" "$1" | tail -1; }

free_port() {
  local p
  for _ in $(seq 1 200); do
    p=$((20000 + RANDOM % 40000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      echo "$p"
      return 0
    fi
  done
  die "found no free loopback port"
}

# ---------- halftone ----------
# start_server NAME DATA_DIR [fresh]: starts `halftone serve` and waits for /readyz. Sets
# SRV_PID, SRV_URL, SRV_READY_MS (exec to the first ready answer) and, with `fresh` (an empty
# data dir), SRV_TOKEN: the bootstrap admin token the server prints once.
start_server() {
  local name=$1 dir=$2 fresh=${3:-} port log t0
  port=$(free_port)
  log="$WORK/$name.log"
  : >"$log"
  t0=$(date +%s%N)
  "$HALFTONE" serve --bind "127.0.0.1:$port" --data-dir "$dir" --workers "$WORKERS" >>"$log" 2>&1 &
  SRV_PID=$!
  PIDS+=("$SRV_PID")
  SRV_URL="http://127.0.0.1:$port"
  local deadline=$((SECONDS + 300))
  until curl -fs -o /dev/null "$SRV_URL/readyz"; do
    if ! kill -0 "$SRV_PID" 2>/dev/null; then
      tail -n 20 "$log" >&2
      die "halftone ($name) exited during start-up"
    fi
    ((SECONDS < deadline)) || die "halftone ($name) was not ready after 300 s"
    sleep 0.01
  done
  SRV_READY_MS=$((($(date +%s%N) - t0) / 1000000))
  SRV_TOKEN=""
  [[ $fresh == fresh ]] || return 0
  for _ in $(seq 1 100); do
    SRV_TOKEN=$(sed -n 's/.*bootstrap admin token[^:]*: *\([^[:space:]]*\).*/\1/p' "$log" | tail -1)
    [[ -n $SRV_TOKEN ]] && break
    sleep 0.05
  done
}

# seed URL TOKEN RELEASES OUT: publishes a catalog through the API.
seed() {
  [[ -n $2 ]] || die "halftone serve printed no bootstrap admin token; cannot seed"
  log "seeding $3 releases"
  HALFTONE_TOKEN=$2 timeout "$SEED_TIMEOUT" "$SEED" --server "$1" --app "$APP" seed --releases "$3" \
    --concurrency "$CONCURRENCY" >"$4" || die "seeding $3 releases failed (or took more than $SEED_TIMEOUT s)"
  log "$(cat "$4")"
}

# ---------- nginx ----------
# start_nginx FILE: serves FILE as /latest.json on a loopback port. Sets NGINX_URL, NGINX_PIDS.
start_nginx() {
  local prefix=$WORK/nginx port
  port=$(free_port)
  mkdir -p "$prefix/www" "$prefix/logs"
  cp "$1" "$prefix/www/latest.json"
  # The worker may run as another user when we are root: let it read the file.
  chmod a+rx "$WORK" "$prefix" "$prefix/www"
  chmod a+r "$prefix/www/latest.json"
  cat >"$prefix/nginx.conf" <<EOF
worker_processes $WORKERS;
daemon off;
pid $prefix/nginx.pid;
error_log $prefix/logs/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_timeout 75s;
  keepalive_requests 100000000;
  client_body_temp_path $prefix/client_body;
  proxy_temp_path $prefix/proxy;
  fastcgi_temp_path $prefix/fastcgi;
  uwsgi_temp_path $prefix/uwsgi;
  scgi_temp_path $prefix/scgi;
  server {
    listen 127.0.0.1:$port;
    root $prefix/www;
    location = /latest.json { default_type application/json; }
  }
}
EOF
  "$NGINX" -p "$prefix" -c "$prefix/nginx.conf" -e "$prefix/logs/error.log" >"$prefix/logs/stderr.log" 2>&1 &
  NGINX_PID=$!
  PIDS+=("$NGINX_PID")
  NGINX_URL="http://127.0.0.1:$port"
  for _ in $(seq 1 500); do
    curl -fs -o /dev/null "$NGINX_URL/latest.json" && break
    kill -0 "$NGINX_PID" 2>/dev/null || {
      cat "$prefix/logs/"* >&2
      die "nginx exited during start-up"
    }
    sleep 0.01
  done
  curl -fs -o /dev/null "$NGINX_URL/latest.json" || die "nginx does not serve latest.json"
  # The master and its worker(s): the CPU figures add them up.
  NGINX_PIDS=("$NGINX_PID")
  local w
  for w in $(pgrep -P "$NGINX_PID" || true); do NGINX_PIDS+=("$w"); done
}

# ---------- wrk ----------
# start_wrk URL OUT DURATION LUA_ARGS...: starts wrk with checkin.lua in the background; sets
# WRK_PID (wrk itself, so that SIGINT reaches it).
start_wrk() {
  local url=$1 out=$2 duration=$3
  shift 3
  wrk -t"$THREADS" -c"$CONNS" -d"${duration}s" --timeout 5s -s "$HERE/checkin.lua" "$url" -- "$@" >"$out" 2>&1 &
  WRK_PID=$!
  PIDS+=("$WRK_PID")
}

# finish_wrk OUT: waits for wrk; its BENCH line is in OUT.
finish_wrk() {
  local rc=0
  wait "$WRK_PID" || rc=$?
  forget_pid "$WRK_PID"
  if ((rc != 0)) || ! grep -q '^BENCH ' "$1"; then
    cat "$1" >&2
    die "wrk failed (exit $rc)"
  fi
}

# run_wrk URL OUT DURATION LUA_ARGS...: one wrk run in the foreground.
run_wrk() {
  start_wrk "$@"
  finish_wrk "$2"
}

FAILED_REQUESTS=0
count_failures() {
  local bad=$(($(field "$1" non200) + $(field "$1" socket_errors)))
  if ((bad > 0)); then
    log "warning: $bad failed requests in $(basename "$1")"
    FAILED_REQUESTS=$((FAILED_REQUESTS + bad))
  fi
}

# bench_once LABEL URL "PIDS" LUA_ARGS...: waits for idle, runs wrk, and appends
# "rps p50_us p99_us cpu_us_per_request worker_cpu_us_per_request offer_pct" to
# $WORK/LABEL.runs (the server's CPU time: all its threads, and its HTTP worker threads alone;
# the share of answers that offer an update).
bench_once() {
  local label=$1 url=$2 pids=$3 n out c0 c1 w0 w1
  shift 3
  n=1
  if [[ -f $WORK/$label.runs ]]; then n=$(($(wc -l <"$WORK/$label.runs") + 1)); fi
  out="$WORK/$label.$n.out"
  wait_idle
  # shellcheck disable=SC2086 # PIDS is a list
  c0=$(cpu_ticks $pids) w0=$(worker_ticks $pids)
  run_wrk "$url" "$out" "$DURATION" "$@"
  # shellcheck disable=SC2086
  c1=$(cpu_ticks $pids) w1=$(worker_ticks $pids)
  count_failures "$out"
  local req
  req=$(field "$out" requests)
  echo "$(field "$out" rps) $(field "$out" p50_us) $(field "$out" p99_us)" \
    "$(awk -v t=$((c1 - c0)) -v hz="$CLK_TCK" -v r="$req" 'BEGIN { printf "%.1f", r ? t * 1e6 / hz / r : 0 }')" \
    "$(awk -v t=$((w1 - w0)) -v hz="$CLK_TCK" -v r="$req" 'BEGIN { printf "%.1f", r ? t * 1e6 / hz / r : 0 }')" \
    "$(awk -v o="$(field "$out" offers)" -v r="$req" 'BEGIN { printf "%.0f", r ? 100 * o / r : 0 }')" \
    >>"$WORK/$label.runs"
  log "$label run $n: $(cat "$out" | grep '^BENCH')"
}

# col LABEL N: the median of column N of LABEL's runs.
col() { awk -v c="$2" '{ print $c }' "$WORK/$1.runs" | median; }

# ---------- the table ----------
ROWS=()
# row TITLE REQ/S P50 P99 NOTES...: one line of the table (the notes are joined by spaces).
row() {
  local title=$1 rate=$2 p50=$3 p99=$4
  shift 4
  ROWS+=("$(printf '%-42s %10s %9s %9s  %s' "$title" "$rate" "$p50" "$p99" "$*")")
}
ms() { awk -v us="$1" 'BEGIN { printf "%.2f ms", us / 1000 }'; }
rps() { awk -v r="$1" 'BEGIN { printf "%.0f", r }'; }

# throughput_row TITLE LABEL NOTE: a table line from LABEL's runs.
throughput_row() {
  local cpu="server CPU $(col "$2" 4) µs/req"
  if awk -v w="$(col "$2" 5)" 'BEGIN { exit !(w > 0) }'; then
    cpu="$cpu ($(col "$2" 5) in the HTTP worker, the rest in other threads)"
  fi
  if awk -v o="$(col "$2" 6)" 'BEGIN { exit !(o > 0) }'; then
    cpu="$cpu; $(col "$2" 6)% of answers offer an update"
  fi
  row "$1" "$(rps "$(col "$2" 1)")" "$(ms "$(col "$2" 2)")" "$(ms "$(col "$2" 3)")" "$cpu${3:+; $3}"
}

print_table() {
  echo
  echo "Halftone benchmark, $(date -u +%Y-%m-%dT%H:%MZ), built from $COMMIT, $(nproc) CPUs" \
    "($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1))"
  echo "wrk -t$THREADS -c$CONNS -d${DURATION}s; halftone --workers $WORKERS; nginx worker_processes $WORKERS;" \
    "median of $RUNS run(s); runs started on a busy machine: $NOT_IDLE"
  echo
  printf '%-42s %10s %9s %9s  %s\n' "measurement" "req/s" "p50" "p99" "notes"
  printf '%s\n' "$(printf '%.0s-' $(seq 1 110))"
  printf '%s\n' "${ROWS[@]}"
  echo
}

# ---------- sections ----------
main_server() {
  start_server main "$WORK/data-main" fresh
  MAIN_PID=$SRV_PID MAIN_URL=$SRV_URL MAIN_TOKEN=$SRV_TOKEN
  [[ -n $MAIN_TOKEN ]] || die "halftone serve printed no bootstrap admin token (see $WORK/main.log)"
  seed "$MAIN_URL" "$MAIN_TOKEN" "$RELEASES" "$WORK/seed-main.out"
  row "seed $RELEASES releases through the API" "" "" "" \
    "$(field "$WORK/seed-main.out" seconds) s ($(field "$WORK/seed-main.out" releases_per_s) releases/s," \
    "$(field "$WORK/seed-main.out" rollouts) rollouts, $CONCURRENCY in flight)"
}

section_main() {
  HALFTONE_TOKEN=$MAIN_TOKEN "$SEED" --server "$MAIN_URL" --app "$APP" sample --releases "$RELEASES" \
    --out "$WORK/latest.json" >"$WORK/sample.out"
  log "typical answer: $(cat "$WORK/sample.out")"
  start_nginx "$WORK/latest.json"
  local r
  for r in $(seq 1 "$RUNS"); do
    log "main comparison, run $r of $RUNS"
    bench_once halftone "$MAIN_URL" "$MAIN_PID" mode=checkin releases="$RELEASES" app="$APP"
    bench_once nginx "$NGINX_URL" "${NGINX_PIDS[*]}" mode=static releases="$RELEASES"
  done
  local bytes
  bytes=$(field "$WORK/sample.out" bytes)
  throughput_row "check-in, halftone ($RELEASES releases)" halftone \
    "$(field "$WORK/sample.out" offers)/$(field "$WORK/sample.out" checked) sampled answers offer an update"
  throughput_row "static latest.json, nginx ($bytes bytes)" nginx "answer of median check-in size"
  row "ratio halftone / nginx" \
    "$(awk -v a="$(col halftone 1)" -v b="$(col nginx 1)" 'BEGIN { printf "%.2f", b ? a / b : 0 }')" \
    "$(awk -v a="$(col halftone 2)" -v b="$(col nginx 2)" 'BEGIN { printf "%.2fx", b ? a / b : 0 }')" \
    "$(awk -v a="$(col halftone 3)" -v b="$(col nginx 3)" 'BEGIN { printf "%.2fx", b ? a / b : 0 }')" \
    "req/s ratio (goal >= 0.8); p50/p99: halftone over nginx; server CPU per request:" \
    "$(awk -v a="$(col halftone 4)" -v b="$(col nginx 4)" 'BEGIN { printf "%.2fx", b ? a / b : 0 }')"
  row "halftone peak RSS (VmHWM)" "" "" "" "$(mib "$(proc_kb "$MAIN_PID" VmHWM)") after the check-in runs"
  stop_pid "$NGINX_PID"
}

section_flip() {
  local out=$WORK/flip.wrk.out lead pause
  lead=$(((DURATION + 3) / 4))
  pause=$((DURATION * 1000 / 2 / FLIPS))
  wait_idle
  log "rollout change under load: $FLIPS changes during a ${DURATION}s run"
  start_wrk "$MAIN_URL" "$out" "$DURATION" mode=checkin releases="$RELEASES" app="$APP"
  sleep "$lead"
  HALFTONE_TOKEN=$MAIN_TOKEN "$SEED" --server "$MAIN_URL" --app "$APP" flip --times "$FLIPS" --pause-ms "$pause" \
    >"$WORK/flip.out" || die "the rollout change failed"
  local under_load=yes
  kill -0 "$WRK_PID" 2>/dev/null || under_load="no: wrk ended first, raise BENCH_DURATION"
  finish_wrk "$out"
  count_failures "$out"
  log "$(cat "$WORK/flip.out")"
  row "rollout change under check-in load" "$(rps "$(field "$out" rps)")" "$(ms "$(field "$out" p50_us)")" \
    "$(ms "$(field "$out" p99_us)")" \
    "seen by the next check-in after $(field "$WORK/flip.out" visible_ms_median) ms" \
    "(max $(field "$WORK/flip.out" visible_ms_max) ms; PATCH answered in $(field "$WORK/flip.out" ack_ms_median) ms);" \
    "non-200: $(field "$out" non200), socket errors: $(field "$out" socket_errors); $FLIPS changes; under load: $under_load"
}

# distinct devices: wrk cannot stop after N requests (it always runs its full duration and
# ignores SIGINT), so this runs rounds sized from the last measured rate, with ids that never
# repeat across rounds, until DEVICES check-ins are done (bounded by DEVICES_MAX_S).
section_devices() {
  local before after hwm total=0 secs=0 round=0 dur left rate=20000 out first=""
  if [[ -f $WORK/halftone.runs ]]; then rate=$(col halftone 1); fi
  wait_idle
  before=$(proc_kb "$MAIN_PID" VmRSS)
  local deadline=$((SECONDS + DEVICES_MAX_S))
  log "$DEVICES distinct devices (at most ${DEVICES_MAX_S}s)"
  while ((total < DEVICES && SECONDS < deadline)); do
    round=$((round + 1))
    dur=$(awk -v n=$((DEVICES - total)) -v r="$rate" 'BEGIN { if (r < 1000) r = 1000; print int(n * 1.03 / r) + 1 }')
    left=$((deadline - SECONDS))
    if ((dur > left)); then dur=$left; fi
    if ((dur < 1)); then dur=1; fi
    out=$WORK/devices.$round.out
    run_wrk "$MAIN_URL" "$out" "$dur" mode=distinct prefix="r$round" releases="$RELEASES" app="$APP"
    count_failures "$out"
    [[ -n $first ]] || first=$out
    total=$((total + $(field "$out" requests)))
    secs=$(awk -v a="$secs" -v b="$(field "$out" seconds)" 'BEGIN { print a + b }')
    rate=$(field "$out" rps)
    log "distinct devices so far: $total"
  done
  sleep 1
  after=$(proc_kb "$MAIN_PID" VmRSS)
  hwm=$(proc_kb "$MAIN_PID" VmHWM)
  row "RSS after $total distinct devices" "$(awk -v n="$total" -v s="$secs" 'BEGIN { printf "%.0f", n / s }')" \
    "$(ms "$(field "$first" p50_us)")" "$(ms "$(field "$first" p99_us)")" \
    "RSS $(mib "$before") before, $(mib "$after") after ($(awk -v a="$after" -v b="$before" \
      'BEGIN { printf "%+.1f MiB", (a - b) / 1024 }')); peak $(mib "$hwm"); $round wrk run(s)"
}

section_upload() {
  local file=$WORK/artifact.bin sha hdr=$WORK/auth.header rss0 up down hwm_up hwm_down note=""
  log "writing a $UPLOAD_MIB MiB artifact"
  head -c $((UPLOAD_MIB * 1024 * 1024)) /dev/urandom >"$file"
  sha=$(sha256sum "$file" | cut -d' ' -f1)
  (
    umask 077
    printf 'Authorization: Bearer %s\n' "$MAIN_TOKEN" >"$hdr"
  )
  wait_idle
  reset_hwm "$MAIN_PID" || note="; VmHWM could not be reset: growth is against the earlier peak"
  rss0=$(proc_kb "$MAIN_PID" VmRSS)
  log "uploading $UPLOAD_MIB MiB"
  up=$(curl -sS -X PUT -T "$file" -H @"$hdr" -H 'Expect:' -H 'Content-Type: application/octet-stream' \
    -o "$WORK/upload.json" -w '%{http_code} %{time_total} %{speed_upload}' "$MAIN_URL/v1/artifacts/$sha") ||
    die "the upload failed"
  [[ ${up%% *} == 201 || ${up%% *} == 200 ]] || die "the upload answered $up: $(cat "$WORK/upload.json")"
  hwm_up=$(proc_kb "$MAIN_PID" VmHWM)
  reset_hwm "$MAIN_PID" || true
  local rss1
  rss1=$(proc_kb "$MAIN_PID" VmRSS)
  log "downloading $UPLOAD_MIB MiB"
  down=$(curl -sS -o /dev/null -w '%{http_code} %{time_total} %{speed_download} %{size_download}' \
    "$MAIN_URL/v1/artifacts/$sha") || die "the download failed"
  [[ ${down%% *} == 200 ]] || die "the download answered $down"
  [[ $(echo "$down" | cut -d' ' -f4) == $((UPLOAD_MIB * 1024 * 1024)) ]] || die "the download is short: $down"
  hwm_down=$(proc_kb "$MAIN_PID" VmHWM)
  rm -f "$file"
  speed() { echo "$1" | awk '{ printf "%.0f MB/s in %.2f s", $3 / 1e6, $2 }'; }
  row "$UPLOAD_MIB MiB artifact upload (curl -T)" "" "" "" \
    "$(speed "$up"); server RSS peak +$(awk -v a="$hwm_up" -v b="$rss0" \
      'BEGIN { printf "%.1f MiB", (a - b) / 1024 }') over $(mib "$rss0")$note"
  row "$UPLOAD_MIB MiB artifact download (curl -o)" "" "" "" \
    "$(speed "$down"); server RSS peak +$(awk -v a="$hwm_down" -v b="$rss1" \
      'BEGIN { printf "%.1f MiB", (a - b) / 1024 }') over $(mib "$rss1")$note"
}

# section_catalog_size SIZE LABEL: check-ins against a catalog of SIZE releases, with two fleets:
# the same fleet whatever the catalog (every device on one of the newest $SMALL releases, so
# both catalogs give the same mix of answers and only the catalog's size differs), and, on the
# large catalog, the usual fleet (3 in 10 devices on any release, so far more of them behind).
section_catalog_size() {
  local size=$1 label=$2 r
  for r in $(seq 1 "$RUNS"); do
    log "check-ins with $size releases, same fleet, run $r of $RUNS"
    bench_once "$label-same" "$SRV_URL" "$SRV_PID" mode=checkin releases="$size" app="$APP" \
      recent="$SMALL" spread=0
  done
  throughput_row "check-in, $size releases, same fleet" "$label-same" ""
  [[ $label == large ]] || return 0
  for r in $(seq 1 "$RUNS"); do
    log "check-ins with $size releases, usual fleet, run $r of $RUNS"
    bench_once "$label" "$SRV_URL" "$SRV_PID" mode=checkin releases="$size" app="$APP"
  done
  throughput_row "check-in, $size releases, usual fleet" "$label" ""
  row "ratio $size / $SMALL releases, same fleet" \
    "$(awk -v a="$(col large-same 1)" -v b="$(col small-same 1)" 'BEGIN { printf "%.2f", b ? a / b : 0 }')" \
    "" "" "req/s ratio (goal >= 0.9: selection must not grow with the catalog)"
}

section_catalog_and_startup() {
  if has_section catalog; then
    start_server small "$WORK/data-small" fresh
    seed "$SRV_URL" "$SRV_TOKEN" "$SMALL" "$WORK/seed-small.out"
    section_catalog_size "$SMALL" small
    stop_pid "$SRV_PID"
  fi
  start_server large "$WORK/data-large" fresh
  seed "$SRV_URL" "$SRV_TOKEN" "$LARGE" "$WORK/seed-large.out"
  row "seed $LARGE releases through the API" "" "" "" \
    "$(field "$WORK/seed-large.out" seconds) s ($(field "$WORK/seed-large.out" releases_per_s) releases/s," \
    "$(field "$WORK/seed-large.out" rollouts) rollouts, $CONCURRENCY in flight)"
  if has_section catalog; then
    section_catalog_size "$LARGE" large
    # What one change costs the writer with a large catalog (each change rebuilds the index).
    HALFTONE_TOKEN=$SRV_TOKEN "$SEED" --server "$SRV_URL" --app "$APP" flip --times "$FLIPS" --pause-ms 200 \
      >"$WORK/flip-large.out" || die "the rollout change on the large catalog failed"
    log "$(cat "$WORK/flip-large.out")"
    row "rollout change, $LARGE releases, no load" "" "" "" \
      "PATCH answered in $(field "$WORK/flip-large.out" ack_ms_median) ms" \
      "(max $(field "$WORK/flip-large.out" ack_ms_max) ms); seen by the next check-in after" \
      "$(field "$WORK/flip-large.out" visible_ms_median) ms"
  fi
  stop_pid "$SRV_PID"
  if has_section startup; then
    local r
    for r in $(seq 1 "$RUNS"); do
      wait_idle
      start_server large-restart "$WORK/data-large"
      echo "$SRV_READY_MS" >>"$WORK/startup.runs"
      log "start-up with $LARGE releases: $SRV_READY_MS ms, RSS $(mib "$(proc_kb "$SRV_PID" VmRSS)")"
      echo "$(proc_kb "$SRV_PID" VmRSS)" >>"$WORK/startup-rss.runs"
      stop_pid "$SRV_PID"
    done
    row "start-up with $LARGE releases stored" "" "" "" \
      "$(median <"$WORK/startup.runs") ms from exec to /readyz answering; RSS then $(mib "$(median <"$WORK/startup-rss.runs")")"
  fi
}

# ---------- run ----------
install_tools
build
log "work dir $WORK; sections: $SECTIONS"
if has_section main || has_section flip || has_section devices || has_section upload; then
  main_server
  if has_section main; then section_main; fi
  if has_section flip; then section_flip; fi
  if has_section devices; then section_devices; fi
  if has_section upload; then section_upload; fi
  stop_pid "$MAIN_PID"
fi
if has_section catalog || has_section startup; then section_catalog_and_startup; fi

print_table
if ((FAILED_REQUESTS > 0)); then
  log "error: $FAILED_REQUESTS requests failed (non-200 answers or socket errors); see the notes"
  exit 3
fi
