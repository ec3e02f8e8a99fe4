#!/usr/bin/env bash
# The standard benchmark set (about 12 minutes on a 2-core machine with REPEATS=5):
#   command-rtt D=1,000  C=64 S=10, with the Mosquitto baseline
#   command-rtt D=10,000 C=64 S=10, with the Mosquitto baseline
#   command-rtt D=1,000  C=64 S=10 over TLS (full handshakes, TLS 1.3), with the baseline
#   connect     D=10,000, with the Mosquitto baseline
#   connect     D=10,000 over TLS, with the Mosquitto baseline (logins/s, CPU per handshake)
#   messages    D=1,000  M=20 C=64   (durable accepts/s, then delivered/s at login; ~2 s)
#   batch       D=10,000             (one createCommands task over the fleet; ~2 s)
#   gateway     G=100 S=100 C=64 S=10 (commands to sub-devices, then to the gateways; ~25 s)
# repeated REPEATS times, interleaved (this kind of VM drifts in speed, so runs of one
# configuration are spread over the whole session and the report quotes medians).
# Writes the JSON result lines to bench/results/latest.jsonl and a markdown table to stdout;
# progress and per-run tables go to stderr.
#
#   bench/run.sh                 # REPEATS=5 BENCH_THREADS=1 by default
#   REPEATS=3 bench/run.sh
set -euo pipefail
cd "$(dirname "$0")/.."

REPEATS="${REPEATS:-5}"
BENCH_THREADS="${BENCH_THREADS:-1}"

cargo build --release --bin ringiot --bin ringiot-bench >&2

if ! command -v mosquitto >/dev/null 2>&1 && [ ! -x /usr/sbin/mosquitto ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "installing mosquitto for the baseline" >&2
        apt-get install -y mosquitto >&2 || { apt-get update >&2 && apt-get install -y mosquitto >&2; }
    else
        echo "mosquitto is missing and cannot be installed from here: run 'sudo apt-get install -y mosquitto'" \
             "(the baseline rows will be skipped)" >&2
    fi
fi

mkdir -p bench/results
results=bench/results/latest.jsonl
partial="$results.partial"
: > "$partial"
bench=(target/release/ringiot-bench --bench-threads "$BENCH_THREADS" --json)

for round in $(seq 1 "$REPEATS"); do
    echo "== round $round of $REPEATS" >&2
    "${bench[@]}" command-rtt --devices 1000 --clients 64 --duration-s 10 --baseline mosquitto >> "$partial"
    "${bench[@]}" command-rtt --devices 10000 --clients 64 --duration-s 10 --baseline mosquitto >> "$partial"
    "${bench[@]}" --tls command-rtt --devices 1000 --clients 64 --duration-s 10 --baseline mosquitto >> "$partial"
    "${bench[@]}" connect --devices 10000 --baseline mosquitto >> "$partial"
    "${bench[@]}" --tls connect --devices 10000 --baseline mosquitto >> "$partial"
    "${bench[@]}" messages --devices 1000 --per-device 20 >> "$partial"
    "${bench[@]}" batch --devices 10000 >> "$partial"
    "${bench[@]}" gateway --gateways 100 --sub-devices 100 --clients 64 --duration-s 10 >> "$partial"
done
mv "$partial" "$results"

echo "Results of $(date -u '+%Y-%m-%d %H:%M UTC') on $(nproc) cores, $REPEATS runs each ($results):"
echo
target/release/ringiot-bench report "$results"
