#!/bin/bash
# The 16-core run of bench/README.md ("16-core machine"): the engine pinned to CPUs 0-7, the
# bench and Mosquitto on 8-15. Expects the binaries (and a Mosquitto) in target/device/bin
# (or PATH); writes JSON lines and the human output under $OUT (default /tmp/out).
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
BIN=${BIN:-target/device/bin}
export PATH=$PWD/$BIN:$PATH
printf '[[projects]]\nproject_id = "bench"\ntokens = ["bench-token"]\n' > /tmp/bench.toml
rm -rf /tmp/bench-data
taskset -c 0-7 "$BIN/ringiot" --config /tmp/bench.toml --data-dir /tmp/bench-data --shards 8 \
  --http-listen 127.0.0.1:18080 --mqtt-listen 127.0.0.1:18883 > "$OUT/engine.log" 2>&1 &
EPID=$!
for _ in $(seq 100); do grep -q 'ringiot ready' "$OUT/engine.log" && break; sleep 0.1; done
bench() {
  timeout 150 taskset -c 8-15 "$BIN/ringiot-bench" --bench-threads 6 --json \
    --http http://127.0.0.1:18080 --mqtt 127.0.0.1:18883 --engine-pid "$EPID" "$@" \
    >> "$OUT/results.jsonl" 2>> "$OUT/bench.err"
}
bench command-rtt --devices 10000 --clients 256 --duration-s 10 --baseline mosquitto
bench command-rtt --devices 10000 --clients 512 --duration-s 8
bench connect --devices 19000 --logins-in-flight 2048
bench messages --devices 5000 --per-device 20 --clients 256
bench batch --devices 19000
kill "$EPID"; wait
