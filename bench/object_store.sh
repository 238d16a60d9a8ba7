#!/usr/bin/env bash
# A 1 GiB artifact uploaded to and downloaded from Halftone with its artifacts in an
# S3-compatible object store (moto's server mode, as in the tests), with the server's memory:
# the upload streams into a multipart upload (8 MiB parts, 2 in flight) and the download streams
# from the bucket, so the server's RSS must stay flat whatever the size. Also the same download
# answered with a redirect to a pre-signed URL (the bytes then come from the store itself).
#
#   bench/object_store.sh                           # 1 GiB, release build
#   BENCH_UPLOAD_MIB=64 bench/object_store.sh       # a quick check that it runs
#   HALFTONE=target/debug/halftone bench/object_store.sh   # another binary (no build)
#
# Needs curl, sha256sum and moto (`python3 -m pip install 'moto[server]'`). Not run in CI.
# moto keeps objects in its own memory and is the slower side: the figures are the server's
# memory and a lower bound on its speed, not S3's. The table goes to stdout, progress to stderr.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
UPLOAD_MIB=${BENCH_UPLOAD_MIB:-1024}
# The load comes from one address, far over the per-address request rates of a real server
# (docs/api.md, "Connection limits and load shedding"): turn them off unless set.
export HALFTONE_DEVICE_RATE_PER_ADDRESS=${HALFTONE_DEVICE_RATE_PER_ADDRESS:-0}
export HALFTONE_ADMIN_RATE_PER_ADDRESS=${HALFTONE_ADMIN_RATE_PER_ADDRESS:-0}

log() { printf '[bench-s3 %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() {
  log "error: $*"
  exit 1
}

# ---------- processes and temp files: everything started here is stopped on exit ----------
WORK=$(mktemp -d "${TMPDIR:-/tmp}/halftone-bench-s3.XXXXXX")
PIDS=()
cleanup() {
  local pid
  trap - EXIT INT TERM
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

for tool in curl sha256sum; do command -v "$tool" >/dev/null || die "$tool is needed"; done
if command -v moto_server >/dev/null && moto_server --help >/dev/null 2>&1; then
  MOTO=(moto_server)
elif python3 -c 'import moto.server, flask' 2>/dev/null; then
  MOTO=(python3 -m moto.server)
else
  die "moto is needed: python3 -m pip install 'moto[server]'"
fi
if [[ -z ${HALFTONE:-} ]]; then
  log "building halftone (release)"
  (cd "$ROOT" && cargo build --release -q -p halftone-server) || die "the build failed"
  HALFTONE=$ROOT/target/release/halftone
fi

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
proc_kb() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }
reset_hwm() { { echo 5 >"/proc/$1/clear_refs"; } 2>/dev/null; }
mib() { awk -v k="$1" 'BEGIN { printf "%.1f MiB", k / 1024 }'; }
wait_for() { # URL PID NAME
  local deadline=$((SECONDS + 60))
  until curl -s -o /dev/null "$1"; do
    kill -0 "$2" 2>/dev/null || die "$3 exited during start-up"
    ((SECONDS < deadline)) || die "$3 did not answer within 60 s"
    sleep 0.1
  done
}

# ---------- moto and a bucket ----------
S3_PORT=$(free_port)
"${MOTO[@]}" -H 127.0.0.1 -p "$S3_PORT" >"$WORK/moto.log" 2>&1 &
PIDS+=($!)
S3=http://127.0.0.1:$S3_PORT
wait_for "$S3" "${PIDS[-1]}" moto
curl -fsS -X PUT "$S3/bench" >/dev/null || die "creating the bucket failed"

# start MODE: halftone serve on the bucket, downloads answered as MODE; sets PID, URL, TOKEN.
start() {
  local port
  port=$(free_port)
  HALFTONE_S3_SECRET_ACCESS_KEY=testing "$HALFTONE" serve --bind "127.0.0.1:$port" \
    --data-dir "$WORK/data-$1" --workers 2 --max-artifact-bytes $((UPLOAD_MIB * 1024 * 1024 + 1)) \
    --artifacts s3://bench/halftone --s3-endpoint "$S3" --s3-access-key-id testing \
    --artifact-downloads "$1" >"$WORK/halftone-$1.log" 2>&1 &
  PID=$!
  PIDS+=("$PID")
  URL=http://127.0.0.1:$port
  wait_for "$URL/readyz" "$PID" halftone
  TOKEN=$(sed -n 's/.*bootstrap admin token[^:]*: *\([^[:space:]]*\).*/\1/p' "$WORK/halftone-$1.log" | tail -1)
}

log "writing a $UPLOAD_MIB MiB artifact"
FILE=$WORK/artifact.bin
head -c $((UPLOAD_MIB * 1024 * 1024)) /dev/urandom >"$FILE"
SHA=$(sha256sum "$FILE" | cut -d' ' -f1)

start stream
[[ -n $TOKEN ]] || die "halftone printed no bootstrap token"
printf 'Authorization: Bearer %s\n' "$TOKEN" >"$WORK/auth.header"
chmod 600 "$WORK/auth.header"
reset_hwm "$PID" || log "VmHWM cannot be reset here: peaks include start-up"
RSS0=$(proc_kb "$PID" VmRSS)
log "uploading $UPLOAD_MIB MiB (RSS $(mib "$RSS0"))"
UP=$(curl -sS -X PUT -T "$FILE" -H @"$WORK/auth.header" -H 'Expect:' -H 'Content-Type: application/octet-stream' \
  -o "$WORK/upload.json" -w '%{http_code} %{time_total} %{speed_upload}' "$URL/v1/artifacts/$SHA") || die "the upload failed"
[[ ${UP%% *} == 201 ]] || die "the upload answered $UP: $(cat "$WORK/upload.json")"
HWM_UP=$(proc_kb "$PID" VmHWM)
reset_hwm "$PID" || true
RSS1=$(proc_kb "$PID" VmRSS)
log "downloading $UPLOAD_MIB MiB through the server"
DOWN=$(curl -sS -w '%{http_code} %{time_total} %{speed_download} %{size_download}' -o "$WORK/down.bin" \
  "$URL/v1/artifacts/$SHA") || die "the download failed"
[[ ${DOWN%% *} == 200 ]] || die "the download answered $DOWN"
HWM_DOWN=$(proc_kb "$PID" VmHWM)
[[ $(sha256sum "$WORK/down.bin" | cut -d' ' -f1) == "$SHA" ]] || die "the download is not the upload"
rm -f "$WORK/down.bin"

start redirect
log "downloading $UPLOAD_MIB MiB through a pre-signed URL"
REDIRECT=$(curl -sS -L -w '%{http_code} %{time_total} %{speed_download} %{size_download}' -o /dev/null \
  "$URL/v1/artifacts/$SHA") || die "the redirected download failed"
[[ ${REDIRECT%% *} == 200 ]] || die "the redirected download answered $REDIRECT"

speed() { echo "$1" | awk '{ printf "%.0f MB/s in %.2f s", $3 / 1e6, $2 }'; }
printf '| %s | %s |\n' "what" "result" "---" "---"
printf '| %s | %s |\n' \
  "$UPLOAD_MIB MiB upload into S3 (curl -T)" \
  "$(speed "$UP"); server RSS peak $(mib "$HWM_UP"), +$(mib $((HWM_UP - RSS0))) over $(mib "$RSS0")" \
  "$UPLOAD_MIB MiB download streamed from S3" \
  "$(speed "$DOWN"); server RSS peak $(mib "$HWM_DOWN"), +$(mib $((HWM_DOWN - RSS1))) over $(mib "$RSS1")" \
  "$UPLOAD_MIB MiB download, 307 to a pre-signed URL" "$(speed "$REDIRECT") (the bytes come from the store)"
