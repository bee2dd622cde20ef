#!/usr/bin/env bash
# The long run of issue 6's crash and concurrency tests: SIGKILL and crash points at random
# moments of commit, import, pull and gc (KILLS per command, default 100: 400 crashes in all),
# and the 8-writer race with gc (ROUNDS rounds). Prints the seeds and the tallies.
# Needs docker-registry for pull (as CI does). Usage: bench/crash.sh [KILLS] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
kills=${1:-100}
rounds=${2:-5}
export CI=true
SNAP_CRASH_KILLS=$kills cargo test --release --test interop crash:: -- --nocapture --test-threads=2 2>&1 |
  grep -E "SNAP_CRASH_SEED|crashed mid-run|test result|panicked|FAILED"
for r in $(seq 1 "$rounds"); do
  cargo test --release --test cli concurrency::eight_writers -- --nocapture 2>&1 |
    grep -E "commits raced|test result|panicked|FAILED"
done
