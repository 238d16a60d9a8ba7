#!/usr/bin/env bash
# What signed check-in answers cost: the same check-ins against two servers on the same
# catalog, one signing every answer (the default: Merkle batches, one signature per batch) and
# one with --answer-signing off. Runs alternate; the table shows the median of each figure.
#
#   bench/signing.sh                                  # 10 s per run, 3 runs, 1,000 releases
#   BENCH_DURATION=5 BENCH_RUNS=1 bench/signing.sh    # a quick look
#
# CPU is the server process's user + system time (every thread: HTTP worker, feedback)
# divided by the check-ins answered in that run. Loopback only; everything started is stopped.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
DURATION=${BENCH_DURATION:-10}
RUNS=${BENCH_RUNS:-3}
RELEASES=${BENCH_RELEASES:-1000}
CONNS=${BENCH_CONNECTIONS:-64}
WORK=$(mktemp -d /tmp/halftone-signing.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT INT TERM
log() { printf '[signing %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
field() { sed -n "s/^BENCH .*\<$2=\([^ ]*\).*/\1/p" "$1" | tail -1; }
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)]; else print 0 }'; }
ticks() { local s f; s=$(<"/proc/$1/stat"); read -r -a f <<<"${s##*) }"; echo $((f[11] + f[12])); }
CLK_TCK=$(getconf CLK_TCK)

command -v wrk >/dev/null || { log "installing wrk"; apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
log "building release binaries"
(cd "$ROOT" && cargo build --release -q -p halftone-server -p halftone-tests)
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release

declare -A URL PID
export HALFTONE_DEVICE_RATE_PER_ADDRESS=${HALFTONE_DEVICE_RATE_PER_ADDRESS:-0} HALFTONE_ADMIN_RATE_PER_ADDRESS=${HALFTONE_ADMIN_RATE_PER_ADDRESS:-0}
start() { # NAME SIGNING
  local port
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  "$BIN/halftone" serve --bind "127.0.0.1:$port" --data-dir "$WORK/$1" --workers 1 --log-format json \
    --answer-signing "$2" >"$WORK/$1.out" 2>"$WORK/$1.err" &
  PID[$1]=$!
  PIDS+=($!)
  URL[$1]=http://127.0.0.1:$port
  for _ in $(seq 100); do curl -sf "${URL[$1]}/readyz" >/dev/null && break; sleep 0.1; done
  local token
  token=$(sed -n 's/.*\(htk_[0-9a-f]*_[0-9a-f]*\).*/\1/p' "$WORK/$1.err" | head -1)
  [ -n "$token" ] || { cat "$WORK/$1.err" >&2; exit 1; }
  log "seeding $RELEASES releases ($1)"
  "$BIN/halftone-seed" --server "${URL[$1]}" --token "$token" seed --releases "$RELEASES" >&2
}
start unsigned off
start signed on
curl -sf -D "$WORK/headers" -o /dev/null -H 'content-type: application/json' \
  -d '{"device_id":"probe","current_version":"1.0.0","channel":"stable","os":"linux","arch":"x86_64"}' \
  "${URL[signed]}/v1/apps/bench/check"
grep -qi '^halftone-answer-proof:' "$WORK/headers" || { log "the signed server sent no proof"; exit 1; }

for run in $(seq "$RUNS"); do
  for name in unsigned signed; do
    log "run $run/$RUNS: $name"
    before=$(ticks "${PID[$name]}")
    wrk -t1 -c"$CONNS" -d"${DURATION}s" --timeout 5s -s "$HERE/checkin.lua" "${URL[$name]}" \
      -- releases="$RELEASES" nonce=1 >"$WORK/$name.$run" 2>&1
    after=$(ticks "${PID[$name]}")
    requests=$(field "$WORK/$name.$run" requests)
    bad=$(($(field "$WORK/$name.$run" non200) + $(field "$WORK/$name.$run" socket_errors)))
    ((bad == 0)) || { cat "$WORK/$name.$run" >&2; log "$bad failed requests"; exit 1; }
    awk -v t=$((after - before)) -v hz="$CLK_TCK" -v n="$requests" 'BEGIN { printf "%.2f\n", t / hz * 1e6 / n }' \
      >>"$WORK/$name.cpu"
    field "$WORK/$name.$run" rps >>"$WORK/$name.rps"
    field "$WORK/$name.$run" p50_us >>"$WORK/$name.p50"
    field "$WORK/$name.$run" p99_us >>"$WORK/$name.p99"
  done
done

m() { median <"$WORK/$1"; }
batches=$(curl -sf "${URL[signed]}/metrics" | awk '/^halftone_answer_batch_size_sum/ { s = $2 } /^halftone_answer_batch_size_count/ { c = $2 } END { if (c) printf "%.1f", s / c; else print "?" }')
commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
echo "Signed check-in answers, $RELEASES releases, wrk -t1 -c$CONNS, 1 worker, one batch per event-loop turn,"
echo "median of $RUNS runs of ${DURATION}s (commit $commit)"
echo
printf '| %-10s | %12s | %21s | %8s | %8s |\n' "answers" "check-ins/s" "CPU µs per check-in" "p50 µs" "p99 µs"
printf '|%s|%s|%s|%s|%s|\n' "------------" "--------------" "-----------------------" "----------" "----------"
for name in unsigned signed; do
  printf '| %-10s | %12.0f | %21s | %8s | %8s |\n' "$name" "$(m "$name.rps")" "$(m "$name.cpu")" \
    "$(m "$name.p50")" "$(m "$name.p99")"
done
echo
awk -v a="$(m signed.cpu)" -v b="$(m unsigned.cpu)" 'BEGIN { printf "CPU per check-in, signed / unsigned: %.2fx (goal: at most 1.3x)\n", a / b }'
awk -v a="$(m signed.p99)" -v b="$(m unsigned.p99)" 'BEGIN { printf "p99 added by signing: %.0f µs (goal: at most 1000 µs)\n", a - b }'
echo "answers per signed batch (mean over every run): $batches"
