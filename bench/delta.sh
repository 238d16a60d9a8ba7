#!/usr/bin/env bash
# Delta updates on two real builds of the `halftone` binary: OLD is this repository at
# $OLD_REV (default: the commit before delta updates, 6a22453), NEW is the working tree; both
# built in release mode (their own target dirs under $BENCH_TGT, default /tmp/halftone-delta-bench).
# Prints the patch size against the full download, the time `halftone publish` takes to
# build the patch, and the SDK's time to apply it (halftone-delta-bench).
#
#   bench/delta.sh                # build both, then measure
#   bench/delta.sh OLD NEW        # measure two files you already have
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_INCREMENTAL=0
BENCH_TGT=${BENCH_TGT:-/tmp/halftone-delta-bench}
OLD_REV=${OLD_REV:-6a22453}
if [ $# -eq 2 ]; then
  OLD=$1 NEW=$2
else
  PROFILE=${PROFILE:-release}
  flag=$([ "$PROFILE" = release ] && echo --release || true)
  rm -rf "$BENCH_TGT/old-src"
  git worktree add -f --detach "$BENCH_TGT/old-src" "$OLD_REV" >/dev/null
  (cd "$BENCH_TGT/old-src" && CARGO_TARGET_DIR="$BENCH_TGT/tgt" cargo build -q $flag -p halftone-server --bin halftone)
  cp "$BENCH_TGT/tgt/$PROFILE/halftone" "$BENCH_TGT/halftone-old"
  git worktree remove --force "$BENCH_TGT/old-src"
  # Cargo fingerprints path crates by file times, not by path: forget the old tree's builds of
  # the workspace's own crates so the new tree's are compiled (dependencies are reused).
  CARGO_TARGET_DIR="$BENCH_TGT/tgt" cargo clean -q --release -p halftone-channels -p halftone-admin \
    -p halftone-client -p halftone-server -p halftone-tests
  CARGO_TARGET_DIR="$BENCH_TGT/tgt" cargo build -q $flag -p halftone-server --bin halftone
  cp "$BENCH_TGT/tgt/$PROFILE/halftone" "$BENCH_TGT/halftone-new"
  OLD=$BENCH_TGT/halftone-old NEW=$BENCH_TGT/halftone-new
fi
CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$BENCH_TGT/tgt}" cargo run -q --release -p halftone-tests --bin halftone-delta-bench -- "$OLD" "$NEW"
