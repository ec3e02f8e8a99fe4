#!/usr/bin/env bash
# The crash campaign: N kill -9 cycles of the engine under mixed load, each restarted on the same
# ports and data dir, checking that nothing acknowledged is lost (tests/tests/crash_campaign/).
#
#   scripts/crash-campaign.sh [CYCLES]          # default 50 cycles
#   scripts/crash-campaign.sh --restart-cost [DEVICES [CONNECTED]]
#                                               # restart time with DEVICES registered (10,000)
#
# CRASH_SEED=N replays a campaign's random choices (the seed is printed first); CRASH_PORT_WAIT_S
# lets a restart retry while the ports are refused as in use; CRASH_LOG_COMPACTION_BYTES=8192
# makes the shards compact their logs all the time, so kills land in compactions too. The output, engine logs included,
# is kept in target/crash-campaign/<time>.log.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p target/crash-campaign
log="target/crash-campaign/$(date -u +%Y%m%dT%H%M%SZ).log"
if [[ "${1:-}" == "--restart-cost" ]]; then
    export RESTART_DEVICES="${2:-10000}"
    [[ -n "${3:-}" ]] && export RESTART_CONNECTED="$3"
    test_name=restart_cost_with_many_devices
else
    export CRASH_CYCLES="${1:-50}"
    test_name=acknowledged_writes_survive_kill_9_cycles_under_mixed_load
fi
echo "log: $log"
cargo test --release -p tests --test crash_campaign -- --ignored --nocapture --exact \
    "$([[ $test_name == restart_cost* ]] && echo restart_cost::)$test_name" 2>&1 | tee "$log"
