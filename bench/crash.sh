#!/usr/bin/env bash
# The long runs of issue 6's robustness tests, which CI runs short: SIGKILL and crash points
# at random moments of commit, import, pull and gc (KILLS per command, default 100: 400
# crashes in all); the 8-writer x 20-commit race with gc (ROUNDS rounds); and the corruption
# matrix (FLIPS bytes per kind of store file). Prints the seeds and the tallies.
# Needs docker-registry for pull (as CI does). Usage: bench/crash.sh [KILLS] [ROUNDS] [FLIPS]
set -euo pipefail
cd "$(dirname "$0")/.."
kills=${1:-100}
rounds=${2:-5}
flips=${3:-40}
export CI=true
SNAP_CRASH_KILLS=$kills cargo test --release --test interop crash:: -- --nocapture --test-threads=2 2>&1 |
  grep -E "SNAP_CRASH_SEED|crashed mid-run|test result|panicked|FAILED"
for r in $(seq 1 "$rounds"); do
  cargo test --release --test cli concurrency::eight_writers -- --nocapture 2>&1 |
    grep -E "commits raced|test result|panicked|FAILED"
done
SNAP_CORRUPT_FLIPS=$flips cargo test --release --test cli corruption -- --nocapture 2>&1 |
  grep -E "SNAP_CORRUPT_SEED|bytes flipped|test result|panicked|FAILED"
