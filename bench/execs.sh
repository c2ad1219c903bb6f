#!/usr/bin/env bash
# Executions per second of each fuzz target, with ASan+UBSan (preset fuzz) and without
# sanitizers (preset fuzz-plain): libFuzzer's own average_exec_per_sec over a fixed time,
# starting each run from the seeds in a fresh corpus; the median of RUNS runs. One run at a
# time (one core). Prints a Markdown table for BENCHMARKS.md.
# Usage: bench/execs.sh [-r RUNS] [-t SECONDS] [TARGET...]   (defaults 3, 60, the three targets)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=3 secs=60
while getopts r:t: o; do case $o in r) runs=$OPTARG ;; t) secs=$OPTARG ;; *) exit 2 ;; esac; done
shift $((OPTIND - 1))
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(kvm_ops module_ops trace_text)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
scripts/seeds build/fuzz/tdxfuzz "$tmp/seeds" >/dev/null
median() { printf '%s\n' "$@" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
echo "| target | ASan+UBSan exec/s (median; runs) | plain exec/s (median; runs) | plain / ASan |"
echo "|---|---|---|---|"
for t in "${targets[@]}"; do
  declare -A med=()
  declare -A all=()
  for preset in fuzz fuzz-plain; do
    vals=()
    for ((i = 1; i <= runs; i++)); do
      rm -rf "$tmp/c" && mkdir -p "$tmp/c"
      "build/$preset/$t" -max_total_time="$secs" -max_len=256 -seed="$i" -print_final_stats=1 \
        -artifact_prefix="$tmp/" "$tmp/c" "$tmp/seeds/$t" >"$tmp/log" 2>&1 || true
      vals+=("$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$tmp/log" | grep -o '[0-9]*$' || echo 0)")
    done
    med[$preset]=$(median "${vals[@]}")
    all[$preset]="${vals[*]}"
  done
  ratio=$(awk -v a="${med[fuzz]}" -v b="${med[fuzz-plain]}" 'BEGIN { if (a > 0) printf "%.1fx", b / a; else print "-" }')
  echo "| $t | ${med[fuzz]} (${all[fuzz]}) | ${med[fuzz-plain]} (${all[fuzz-plain]}) | $ratio |"
done
