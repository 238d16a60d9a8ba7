#!/usr/bin/env bash
# Install feedback under load: events ingested per second, and check-in throughput with event
# ingestion running beside it, compared with check-ins alone, and with the same posts refused at
# once (a control: what the load generator and loopback traffic cost check-ins by themselves).
# Loopback only; bounded runs.
#
#   bench/feedback.sh                      # 10 s per run, median of 3
#   BENCH_DURATION=5 BENCH_RUNS=1 bench/feedback.sh
#
# Beside the rates it prints the server's CPU time per check-in and per event (from
# /proc/PID/stat), which a busy machine disturbs much less than it disturbs rates.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
DURATION=${BENCH_DURATION:-10}
RUNS=${BENCH_RUNS:-3}
# Check-ins alone, beside events and beside the control are measured in turn in short segments
# (5 of 2 s each by default, as long as one 10 s measurement of each): the machine's speed
# drifts by several percent within seconds on a shared host, and back-to-back 10 s
# measurements carried that drift into the ratio (single runs ranged from 0.84 to 1.03 on
# identical builds).
SEGMENTS=${BENCH_SEGMENTS:-5}
SEGMENT=${BENCH_SEGMENT:-2}
RELEASES=${BENCH_RELEASES:-100}
# The load comes from one address, far over the per-address request rates of a real server
# (docs/api.md, "Connection limits and load shedding"): turn them off unless set.
export HALFTONE_DEVICE_RATE_PER_ADDRESS=${HALFTONE_DEVICE_RATE_PER_ADDRESS:-0}
export HALFTONE_ADMIN_RATE_PER_ADDRESS=${HALFTONE_ADMIN_RATE_PER_ADDRESS:-0}
# ...and every device reports from the same network, which counts for at most 20 devices of a
# release on a real server (docs/api.md, "At most 20 devices per network").
export HALFTONE_MAX_DEVICES_PER_NETWORK=${HALFTONE_MAX_DEVICES_PER_NETWORK:-100000}
DEVICES=${BENCH_DEVICES:-5000}
# Beside check-ins, events arrive at a steady rate (48 connections, each pausing this long after
# each batch of 100): at least 50,000 events/s, the rate issue 15 asks check-ins to hold up
# beside, while a report waits up to 20 ms for its answer (the aggregator's next tick, its
# commit, and less CPU for it beside check-ins: it runs at the background's lower priority).
# Each connection waits for its answer, so the rate falls as answers slow down: with 48, a
# 10 ms slower answer costs about a tenth of it (with 16 connections pausing 25 ms, a quarter).
BESIDE_CONNS=${BENCH_BESIDE_CONNS:-48}
BESIDE_PAUSE_MS=${BENCH_BESIDE_PAUSE_MS:-75}
# The event generator sends a pool of this many prebuilt batches in turn (bench/events.lua);
# 0 builds every batch afresh, which costs the generator as much CPU per event as the server.
POOL=${BENCH_EVENTS_POOL:-256}
WORK=$(mktemp -d /tmp/halftone-feedback.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT INT TERM
log() { printf '[feedback %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
field() { sed -n "s/^BENCH .*\<$2=\([^ ]*\).*/\1/p" "$1" | tail -1; }
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)]; else print 0 }'; }

command -v wrk >/dev/null || { log "installing wrk"; apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
# BENCH_BIN: a directory holding release `halftone` and `halftone-seed` binaries to measure
# instead of this tree's (an older build, to compare in the same hour).
if [ -n "${BENCH_BIN:-}" ]; then
  BIN=$BENCH_BIN
else
  log "building release binaries"
  (cd "$ROOT" && cargo build --release -q -p halftone-server -p halftone-tests)
  BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release
fi

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$BIN/halftone" serve --bind "127.0.0.1:$PORT" --data-dir "$WORK/data" --workers 1 --log-format json \
  >"$WORK/server.out" 2>"$WORK/server.err" &
SERVER=$!
PIDS+=($SERVER)
# The server's CPU time (user + system, in clock ticks): what a run cost it, whatever else the
# machine was doing (rates on a shared machine are noise; CPU per request much less so).
cpu() { awk '{ print $14 + $15 }' "/proc/$SERVER/stat"; }
TICK=$(getconf CLK_TCK)
# ...and the CPU time of its one HTTP worker thread, which answers check-ins and takes event
# reports: what events cost there is taken from check-ins beside them (its name has a space,
# so the fields are counted after the closing parenthesis).
WORKER_TASK=
worker_cpu() {
  [ -n "$WORKER_TASK" ] || WORKER_TASK=$(grep -l '^actix-server wo' /proc/$SERVER/task/*/comm | head -1 | xargs dirname)
  sed 's/.*) //' "$WORKER_TASK/stat" | awk '{ print $12 + $13 }'
}
URL=http://127.0.0.1:$PORT
for _ in $(seq 100); do curl -sf "$URL/readyz" >/dev/null && break; sleep 0.1; done
TOKEN=$(sed -n 's/.*\(htk_[0-9a-f]*_[0-9a-f]*\).*/\1/p' "$WORK/server.err" | head -1)
[ -n "$TOKEN" ] || { cat "$WORK/server.err" >&2; exit 1; }
log "seeding $RELEASES releases"
"$BIN/halftone-seed" --server "$URL" --token "$TOKEN" seed --releases "$RELEASES" >&2
log "report tokens for $DEVICES devices (events count only with one)"
"$BIN/halftone-seed" --server "$URL" --token "$TOKEN" tokens --releases "$RELEASES" --count "$DEVICES" \
  --out "$WORK/tokens" >&2

wrk_run() { # OUT LUA CONNS ARGS...
  local out=$1 lua=$2 conns=$3; shift 3
  wrk -t1 -c"$conns" -d"${DURATION}s" --timeout 5s -s "$HERE/$lua" "$URL" -- releases="$RELEASES" "$@" >"$out" 2>&1
}
: >"$WORK/alone"; : >"$WORK/events"; : >"$WORK/beside"; : >"$WORK/beside_events"; : >"$WORK/beside_p50"; : >"$WORK/beside_p99"; : >"$WORK/ratio"; : >"$WORK/control"
: >"$WORK/cpu_checkin"; : >"$WORK/cpu_event"; : >"$WORK/cpu_paced"; : >"$WORK/worker_event"; : >"$WORK/worker_checkin"
# CPU microseconds per request of a run: RESULT_FILE TICKS_BEFORE TICKS_AFTER PER_REQUEST
per() { awk -v r="$(field "$1" requests)" -v a="$2" -v b="$3" -v t="$TICK" -v n="$4" \
  'BEGIN { if (r > 0) printf "%.3f\n", (b - a) / t * 1e6 / (r * n) }'; }
# Each run measures check-ins alone, beside events and beside the control in turn, in short
# segments (see SEGMENTS), so that the ratios are taken over the same seconds: the machine's
# speed drifts more than that between runs (check-ins alone varied by a tenth between runs of one
# bench), and a ratio of medians taken minutes apart carried that drift. A run's ratio is its
# check-ins beside over alone, summed over its segments; the ratio reported is the median of the
# runs' ratios.
# Requests of a set of segment results, summed: FILES...
total() { cat "$@" | sed -n 's/^BENCH .*\<requests=\([0-9]*\).*/\1/p' | awk '{ n += $1 } END { print n + 0 }'; }
for run in $(seq "$RUNS"); do
  log "run $run/$RUNS: check-ins alone, with events beside, and with the control beside: $SEGMENTS times ${SEGMENT}s each"
  took=0; wtook=0
  for seg in $(seq "$SEGMENTS"); do
    a0=$(cpu); aw0=$(worker_cpu)
    DURATION=$SEGMENT wrk_run "$WORK/a.$run.$seg" checkin.lua 64
    took=$((took + $(cpu) - a0)); wtook=$((wtook + $(worker_cpu) - aw0))
    # The posts start half a second before check-ins and end half a second after them, so that
    # the generator's start (it builds its pool of bodies) falls outside the measured seconds.
    DURATION=$((SEGMENT + 1)) wrk_run "$WORK/be.$run.$seg" events.lua "$BESIDE_CONNS" pool="$POOL" \
      tokens="$WORK/tokens" pause_ms="$BESIDE_PAUSE_MS" &
    EV=$!
    sleep 0.5
    DURATION=$SEGMENT wrk_run "$WORK/b.$run.$seg" checkin.lua 64
    wait "$EV"
    # The control: the same posts at the same pace, answered 400 at once (an app id that does
    # not parse, before the body is read): what the load generator and the loopback traffic
    # alone take from check-ins, apart from what the server's ingestion does.
    DURATION=$((SEGMENT + 1)) wrk_run "$WORK/control-posts.$run.$seg" events.lua "$BESIDE_CONNS" pool="$POOL" \
      tokens="$WORK/tokens" pause_ms="$BESIDE_PAUSE_MS" app='x%2F' &
    EV=$!
    sleep 0.5
    DURATION=$SEGMENT wrk_run "$WORK/c.$run.$seg" checkin.lua 64
    wait "$EV"
  done
  alone_n=$(total "$WORK"/a."$run".*); beside_n=$(total "$WORK"/b."$run".*)
  secs=$((SEGMENTS * SEGMENT))
  printf 'BENCH requests=%d\n' "$alone_n" >"$WORK/a.$run"
  awk -v t="$took" -v k="$TICK" -v n="$alone_n" 'BEGIN { if (n > 0) printf "%.3f\n", t / k * 1e6 / n }' >>"$WORK/cpu_checkin"
  awk -v t="$wtook" -v k="$TICK" -v n="$alone_n" \
    'BEGIN { if (n > 0) printf "%.3f\n", t / k * 1e6 / n }' >>"$WORK/worker_checkin"
  awk -v n="$alone_n" -v s="$secs" 'BEGIN { printf "%.1f\n", n / s }' >>"$WORK/alone"
  awk -v n="$beside_n" -v s="$secs" 'BEGIN { printf "%.1f\n", n / s }' >>"$WORK/beside"
  awk -v a="$alone_n" -v b="$beside_n" 'BEGIN { printf "%.3f\n", (a > 0 ? b / a : 0) }' >>"$WORK/ratio"
  # The event rate and answer times: the median over the segments.
  for f in "$WORK"/be."$run".*; do field "$f" events_per_s; done | median >>"$WORK/beside_events"
  for f in "$WORK"/be."$run".*; do field "$f" p50_us; done | median >>"$WORK/beside_p50"
  for f in "$WORK"/be."$run".*; do field "$f" p99_us; done | median >>"$WORK/beside_p99"
  awk -v a="$alone_n" -v c="$(total "$WORK"/c."$run".*)" 'BEGIN { printf "%.3f\n", (a > 0 ? c / a : 0) }' >>"$WORK/control"
  rm "$WORK"/control-posts."$run".*
  log "run $run/$RUNS: events alone"
  t0=$(cpu)
  wrk_run "$WORK/e.$run" events.lua 16 pool="$POOL" tokens="$WORK/tokens"
  per "$WORK/e.$run" "$t0" "$(cpu)" 100 >>"$WORK/cpu_event"
  field "$WORK/e.$run" events_per_s >>"$WORK/events"
  log "run $run/$RUNS: events alone at the steady rate of the run beside check-ins"
  t0=$(cpu); w0=$(worker_cpu)
  wrk_run "$WORK/p.$run" events.lua "$BESIDE_CONNS" pool="$POOL" tokens="$WORK/tokens" pause_ms="$BESIDE_PAUSE_MS"
  per "$WORK/p.$run" "$t0" "$(cpu)" 100 >>"$WORK/cpu_paced"
  per "$WORK/p.$run" "$w0" "$(worker_cpu)" 100 >>"$WORK/worker_event"
  for f in "$WORK"/*."$run" "$WORK"/*."$run".*; do
    bad=$(field "$f" non200); [ "${bad:-0}" = 0 ] || { log "non-2xx answers in $f: $bad"; cat "$f" >&2; exit 1; }
  done
done
alone=$(median <"$WORK/alone"); beside=$(median <"$WORK/beside")
printf '\n%-48s %12s\n' "figure (median of $RUNS runs, 1 server worker)" "value"
printf '%-48s %12s\n' "  check-ins: $SEGMENTS segments of ${SEGMENT}s per run" "events: ${DURATION}s"
printf '%-48s %12.0f\n' "events ingested per second (alone)" "$(median <"$WORK/events")"
printf '%-48s %12.0f\n' "check-ins per second (alone)" "$alone"
printf '%-48s %12.0f\n' "check-ins per second (events beside, steady)" "$beside"
printf '%-48s %12.0f\n' "events per second (beside check-ins)" "$(median <"$WORK/beside_events")"
printf '%-48s %12s\n' "event answer p50 / p99 beside check-ins, ms" \
  "$(awk -v a="$(median <"$WORK/beside_p50")" -v b="$(median <"$WORK/beside_p99")" 'BEGIN { printf "%.1f / %.1f", a / 1000, b / 1000 }')"
printf '%-48s %12s\n' "check-ins with events / alone (median of runs)" "$(median <"$WORK/ratio" | awk '{ printf "%.2f", $1 }')"
printf '%-48s %12s\n' "  each run's" "$(awk '{ printf "%s%.2f", (NR > 1 ? " " : ""), $1 }' "$WORK/ratio")"
printf '%-48s %12s\n' "control: beside the same posts refused at once" "$(median <"$WORK/control" | awk '{ printf "%.2f", $1 }')"
printf '%-48s %12s\n' "  each run's" "$(awk '{ printf "%s%.2f", (NR > 1 ? " " : ""), $1 }' "$WORK/control")"
cpu_checkin=$(median <"$WORK/cpu_checkin"); cpu_paced=$(median <"$WORK/cpu_paced")
printf '%-48s %12s\n' "server CPU per check-in, us (alone)" "$cpu_checkin"
printf '%-48s %12s\n' "  of which on the HTTP worker" "$(median <"$WORK/worker_checkin")"
printf '%-48s %12s\n' "server CPU per event, us (as fast as possible)" "$(median <"$WORK/cpu_event")"
printf '%-48s %12s\n' "server CPU per event, us (steady rate)" "$cpu_paced"
printf '%-48s %12s\n' "  of which on the HTTP worker" "$(median <"$WORK/worker_event")"
# What 50,000 events/s at the steady rate's cost take, counted in check-ins of the same CPU.
printf '%-48s %12s\n' "50,000 events/s cost the CPU of N check-ins/s" \
  "$(awk -v c="$cpu_checkin" -v e="$cpu_paced" 'BEGIN { if (c > 0) printf "%.0f", 50000 * e / c }')"
printf '%-48s %12s\n' "server peak resident memory, MiB (VmHWM)" \
  "$(awk '/^VmHWM/ { printf "%.0f", $2 / 1024 }' "/proc/$SERVER/status")"
printf '%-48s %12s\n' "events refused for their token (must be 0)" \
  "$(curl -s "$URL/metrics" | awk '/^halftone_events_rejected_total/ { n += $2 } END { print n + 0 }')"
printf '%-48s %12s\n' "check-in samples dropped (aggregator behind)" \
  "$(curl -s "$URL/metrics" | awk '/^halftone_feedback_samples_dropped_total/ { print $2 } END { if (!NR) print 0 }' | tail -1)"
