#!/usr/bin/env bash
# Runs every fuzz target for a while (default 600 s each, as issue 6 asks), seeded from real
# inputs, and prints executions and crashes. Needs a nightly toolchain and cargo-fuzz:
#   rustup toolchain install nightly && cargo install cargo-fuzz
# Usage: fuzz/run.sh [SECONDS] [TARGET...]
# A crash leaves its input in fuzz/artifacts/<target>/; turn it into a regression test in
# tests/robustness.rs before fixing it.
set -euo pipefail
cd "$(dirname "$0")"
secs=${1:-600}; shift || true
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(manifest index config tree pack_index pack_scan layout_tar tar_reader names)
./seed.sh
for t in "${targets[@]}"; do
  echo "== $t (${secs}s)"
  cargo +nightly fuzz run "$t" "corpus/$t" -- -max_total_time="$secs" -rss_limit_mb=2048 2>&1 |
    grep -E "^#[0-9]+.*DONE|Done [0-9]+ runs|ERROR|SUMMARY|crash-" || true
done
