#!/usr/bin/env bash
# Time to detection of every bug-zoo entry by kvm_ops (libFuzzer, coverage-guided) beside the
# coverage-blind baseline (kvm_ops_random: the same decoder and checks fed random bytes), in
# the same run. Each run starts from nothing (no seeds: the corpus scenarios would hand the
# fuzzer the answer), uses one core, and is capped. Prints a Markdown table for BENCHMARKS.md.
#
# Usage: bench/detect.sh [-r RUNS] [-c CAP_SECONDS] [-j PARALLEL_JOBS] [ENTRY...]
#   defaults: 5 runs, 300 s cap, 2 jobs, every entry `tdxfuzz options` lists.
# Environment: BUILD (default build/fuzz-plain: `cmake --preset fuzz-plain && cmake --build
# --preset fuzz-plain`), OUT (default build/detect: logs and raw results).
# An entry/engine stops early once a majority of its runs hit the cap (its median is then
# "> CAP" whatever the rest do). The fuzzer runs with -len_control=0: from an empty corpus
# libFuzzer would otherwise spend its first minutes on inputs of a few bytes.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=5 cap=300 jobs=2
while getopts r:c:j: o; do
  case $o in r) runs=$OPTARG ;; c) cap=$OPTARG ;; j) jobs=$OPTARG ;; *) exit 2 ;; esac
done
shift $((OPTIND - 1))
build=${BUILD:-build/fuzz-plain}
out=${OUT:-build/detect}
for b in kvm_ops kvm_ops_random tdxfuzz; do
  [ -x "$build/$b" ] || { echo "detect: $build/$b missing (build the fuzz-plain preset)" >&2; exit 2; }
done
mapfile -t all < <("$build/tdxfuzz" options | awk '/^      [a-z_0-9]+ \(caught by/ { print $1 }')
entries=("$@")
[ ${#entries[@]} -gt 0 ] || entries=("${all[@]}")
mkdir -p "$out"
rm -f "$out"/*.result

one() {  # engine entry -> "seconds property" or "timeout"
  local engine=$1 entry=$2 seed=$3 log="$out/$entry.$1.$3.log" dir
  dir=$(mktemp -d)
  local t0 t1 rc=0
  t0=$(date +%s.%N)
  if [ "$engine" = fuzzer ]; then
    TDXSIM_BUGS=$entry timeout $((cap + 30)) "$build/kvm_ops" -seed="$seed" -max_len=256 -len_control=0 \
      -max_total_time="$cap" -artifact_prefix="$dir/" -print_final_stats=0 "$dir" >"$log" 2>&1 || rc=$?
  else
    TDXSIM_BUGS=$entry timeout $((cap + 30)) "$build/kvm_ops_random" "$seed" 256 "$cap" >"$log" 2>&1 || rc=$?
  fi
  t1=$(date +%s.%N)
  rm -rf "$dir"
  if [ $rc -ne 0 ] && grep -q '==tdxfuzz== property' "$log"; then
    echo "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }') $(grep -m1 -o 'property `[^`]*`' "$log" | tr -d '`' | cut -d' ' -f2)"
  else
    echo timeout
  fi
}
job() {  # entry engine
  local entry=$1 engine=$2 i timeouts=0 times=() props=()
  for ((i = 1; i <= runs; i++)); do
    r=$(one "$engine" "$entry" "$i")
    if [ "$r" = timeout ]; then
      timeouts=$((timeouts + 1)); times+=("inf")
      [ $timeouts -gt $((runs / 2)) ] && break
    else
      times+=("${r%% *}"); props+=("${r#* }")
    fi
  done
  echo "$entry $engine ${times[*]} | ${props[*]:-}" >"$out/$entry.$engine.result"
}
export -f one job
export build out cap runs
printf '%s\n' "${entries[@]}" | while read -r e; do echo "$e fuzzer"; echo "$e random"; done |
  xargs -P "$jobs" -L 1 bash -c 'job "$0" "$1"'

median() {  # times... (inf = capped)
  printf '%s\n' "$@" | sort -g | awk -v n=$runs -v cap=$cap '{ a[NR] = $1 }
    END { m = a[int((n + 1) / 2)]; if (NR < (n + 1) / 2 || m == "inf") printf "> %d", cap; else printf "%.1f", m }'
}
echo "| entry | expected property | found property | kvm_ops median s (runs) | random median s (runs) |"
echo "|---|---|---|---|---|"
for e in "${entries[@]}"; do
  exp=$("$build/tdxfuzz" options | grep -m1 "^      $e (caught by" | grep -o 'caught by `[^`]*`' | cut -d'`' -f2)
  f=$(cut -d'|' -f1 "$out/$e.fuzzer.result" | cut -d' ' -f3-)
  r=$(cut -d'|' -f1 "$out/$e.random.result" | cut -d' ' -f3-)
  found=$(cat "$out/$e.fuzzer.result" "$out/$e.random.result" | cut -d'|' -f2 | tr ' ' '\n' | grep . | sort | uniq -c | sort -rn | awk '{ printf "%s%s", s, $2; s = ", " }')
  # shellcheck disable=SC2086
  echo "| $e | $exp | ${found:-none} | $(median $f) ($(echo $f | sed 's/inf/cap/g')) | $(median $r) ($(echo $r | sed 's/inf/cap/g')) |"
done
