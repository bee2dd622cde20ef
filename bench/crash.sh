#!/usr/bin/env bash
# The long runs of issue 6's robustness tests, which CI runs short: SIGKILL and crash points
# at random moments of commit, import, pull and gc (KILLS per command, default 100: 400
# crashes in all); the 8-writer x 20-commit race with gc (ROUNDS rounds); and the corruption
# matrix (FLIPS bytes per kind of store file); and issue 13's hostile-restore property (HOSTILE
# generated images and artifacts, default 5000, from a random seed). Prints the seeds and the
# tallies; exits non-zero if any run failed (its whole output is then in bench/out/crash-*.log).
# Needs docker-registry for pull (as CI does).
# Usage: bench/crash.sh [KILLS] [ROUNDS] [FLIPS] [HOSTILE]
set -uo pipefail
cd "$(dirname "$0")/.."
kills=${1:-100}
rounds=${2:-5}
flips=${3:-40}
hostile=${4:-5000}
export CI=true
mkdir -p bench/out
failed=0
run() { # NAME ENV... -- CARGO-TEST-ARGS...
  local name=$1; shift
  local log=bench/out/crash-$name.log
  if ! env "$@" >"$log" 2>&1; then
    failed=1
    echo "FAILED: $name (see $log)"
  fi
  grep -E "SNAP_CRASH_SEED|SNAP_CORRUPT_SEED|SNAP_HOSTILE_SEED|crashed mid-run|commits raced|bytes flipped|cases, |test result|panicked" "$log"
}
cargo test --release --no-run --test interop --test cli >/dev/null 2>&1 || { echo "build failed"; exit 2; }
run crash SNAP_CRASH_KILLS="$kills" cargo test --release --test interop crash:: -- --nocapture --test-threads=2
for r in $(seq 1 "$rounds"); do
  run "race-$r" cargo test --release --test cli concurrency::eight_writers -- --nocapture
done
run corruption SNAP_CORRUPT_FLIPS="$flips" cargo test --release --test cli corruption -- --nocapture
run hostile SNAP_HOSTILE_CASES="$hostile" SNAP_HOSTILE_SEED="$(od -An -N8 -tu8 /dev/urandom | tr -d ' ')" \
  cargo test --release --test cli hostile_property -- --nocapture
exit $failed
