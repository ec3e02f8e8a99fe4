#!/usr/bin/env bash
# One fuzz campaign: fuzz/run.sh TARGET SECONDS [extra libFuzzer flags…]
#
# Builds TARGET with `cargo +nightly fuzz build` (AddressSanitizer, debug assertions, overflow
# checks; skipped with FUZZ_BUILD=0, e.g. while others edit the tree) and runs it over
# fuzz/corpus/TARGET for SECONDS in one process (no -jobs/-fork: one core), niced: the build
# machine is shared. An allocation over MALLOC_LIMIT_MB in one call, or the process over
# RSS_LIMIT_MB, is a finding, like a panic or an input running over TIMEOUT_S. New interesting
# inputs go to fuzz/corpus/TARGET (minimise with `cargo +nightly fuzz cmin TARGET` before
# committing); findings to fuzz/artifacts/TARGET. Prints the execs done, from libFuzzer's final
# statistics, and keeps the whole output in fuzz/logs/.
set -euo pipefail

if [[ $# -lt 2 ]]; then
    echo "usage: $0 TARGET SECONDS [libFuzzer flags...]" >&2
    echo "targets: $(ls "$(dirname "$0")/fuzz_targets" | sed 's/\.rs$//' | tr '\n' ' ')" >&2
    exit 2
fi
target=$1
seconds=$2
shift 2
cd "$(dirname "$0")"

rss_limit_mb=${RSS_LIMIT_MB:-2048}
# No input here is over 1 MiB; an allocation of 64 MiB from one is a length field believed.
malloc_limit_mb=${MALLOC_LIMIT_MB:-64}
timeout_s=${TIMEOUT_S:-10}
niceness=${NICENESS:-10}
log_dir=${LOG_DIR:-logs}
mkdir -p "$log_dir" "corpus/$target" "artifacts/$target"
log="$log_dir/$target-$(date -u +%Y%m%dT%H%M%SZ).log"

if [[ ${FUZZ_BUILD:-1} != 0 ]]; then
    nice -n "$niceness" cargo +nightly fuzz build "$target"
fi
binary="target/$(rustc +nightly -vV | sed -n 's/^host: //p')/release/$target"

set +e
nice -n "$niceness" "$binary" "corpus/$target" \
    -artifact_prefix="artifacts/$target/" \
    -max_total_time="$seconds" \
    -rss_limit_mb="$rss_limit_mb" \
    -malloc_limit_mb="$malloc_limit_mb" \
    -timeout="$timeout_s" \
    -print_final_stats=1 \
    "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e

execs=$(grep -E '^stat::number_of_executed_units:' "$log" | tail -1 | awk '{print $2}')
echo "target=$target seconds=$seconds execs=${execs:-unknown} exit=$status log=fuzz/$log"
exit "$status"
