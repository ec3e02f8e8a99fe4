#!/bin/bash
# The 16-core run of bench/README.md ("16-core machine"). Expects the binaries (and a
# Mosquitto) in target/device/bin (or PATH); writes under $OUT (default /tmp/out):
#   results-scaling.jsonl  1. the engine with 1, 2, 4 and 8 shards pinned to that many CPUs
#                             (0, 0-1, 0-3, 0-7), command-rtt D=10,000 C=64 (C=256 for 8
#                             shards), each followed by the Mosquitto baseline in the same
#                             bench process: how many engine cores it takes to pass Mosquitto,
#                             and the CPU each spends per call;
#   results.jsonl          2. the other scenarios against the 8-shard engine;
#   report.md              both folded by `ringiot-bench report`;
#   bench.err, engine.log  the human output and the engines' logs.
# The bench (6 tokio threads) and Mosquitto always run on CPUs 8-15.
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
BIN=${BIN:-target/device/bin}
export PATH=$PWD/$BIN:$PATH
printf '[[projects]]\nproject_id = "bench"\ntokens = ["bench-token"]\n' > /tmp/bench.toml

# start_engine SHARDS CPUS: starts it on 127.0.0.1:18080 / :18883 and sets EPID.
start_engine() {
  rm -rf /tmp/bench-data /tmp/engine-now.log
  echo "== engine with $1 shards on CPUs $2" | tee -a "$OUT/engine.log" >> "$OUT/bench.err"
  taskset -c "$2" "$BIN/ringiot" --config /tmp/bench.toml --data-dir /tmp/bench-data --shards "$1" \
    --http-listen 127.0.0.1:18080 --mqtt-listen 127.0.0.1:18883 --https-listen off --mqtt-tls-listen off > /tmp/engine-now.log 2>&1 &
  EPID=$!
  for _ in $(seq 100); do grep -q 'ringiot ready' /tmp/engine-now.log && break; sleep 0.1; done
}
stop_engine() { kill "$EPID"; wait "$EPID"; cat /tmp/engine-now.log >> "$OUT/engine.log"; }
# bench RESULTS_FILE ARGS...
bench() {
  local file=$1; shift
  timeout 150 taskset -c 8-15 "$BIN/ringiot-bench" --bench-threads 6 --json \
    --http http://127.0.0.1:18080 --mqtt 127.0.0.1:18883 --engine-pid "$EPID" "$@" \
    >> "$OUT/$file" 2>> "$OUT/bench.err"
}

for shards in 1 2 4 8; do
  start_engine "$shards" "0-$((shards - 1))"
  clients=64; [ "$shards" = 8 ] && clients=256
  bench results-scaling.jsonl command-rtt --devices 10000 --clients "$clients" --duration-s 8 --baseline mosquitto
  if [ "$shards" = 8 ]; then
    # 18,500 devices: with a 20,000 open-files limit the engine keeps 1,024 descriptors for
    # REST, the log and pushes (open_files_reserve), which leaves MQTT 18,976.
    bench results.jsonl command-rtt --devices 10000 --clients 512 --duration-s 8
    bench results.jsonl connect --devices 18500 --logins-in-flight 2048
    bench results.jsonl messages --devices 5000 --per-device 20 --clients 256
    bench results.jsonl batch --devices 18500
  fi
  stop_engine
done
{
  echo "## Scaling"; "$BIN/ringiot-bench" report "$OUT/results-scaling.jsonl"
  echo; echo "## 8 shards"; "$BIN/ringiot-bench" report "$OUT/results.jsonl"
} > "$OUT/report.md"
