#!/usr/bin/env bash
# Minimises fuzz/corpus/TARGET before it is committed: fuzz/cmin.sh TARGET
#
# Keeps every hand-made seed-* file and adds the smallest set of the other inputs that covers
# the same edges (libFuzzer's set-cover merge, without hit-count buckets, which would keep
# thousands of near-duplicates). Uses the binary fuzz/run.sh built; FUZZ_BUILD=1 rebuilds it.
set -euo pipefail

if [[ $# -ne 1 ]]; then
    echo "usage: $0 TARGET" >&2
    exit 2
fi
target=$1
cd "$(dirname "$0")"
if [[ ${FUZZ_BUILD:-0} != 0 ]]; then
    cargo +nightly fuzz build "$target"
fi
binary="target/$(rustc +nightly -vV | sed -n 's/^host: //p')/release/$target"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir "$work/kept" "$work/candidates"
find "corpus/$target" -maxdepth 1 -type f -name 'seed-*' -exec cp {} "$work/kept/" \;
find "corpus/$target" -maxdepth 1 -type f ! -name 'seed-*' -exec cp {} "$work/candidates/" \;
before=$(find "corpus/$target" -maxdepth 1 -type f | wc -l)

nice -n "${NICENESS:-10}" "$binary" -merge=1 -set_cover_merge=1 -use_counters=0 \
    -rss_limit_mb=2048 -malloc_limit_mb=64 -timeout=10 "$work/kept" "$work/candidates" \
    > "$work/merge.log" 2>&1 || { cat "$work/merge.log" >&2; exit 1; }

rm -rf "corpus/$target"
cp -r "$work/kept" "corpus/$target"
after=$(find "corpus/$target" -maxdepth 1 -type f | wc -l)
echo "$target: $before -> $after files, $(cat "corpus/$target"/* | wc -c) bytes"
