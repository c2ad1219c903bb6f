#!/usr/bin/env bash
# The libFuzzer pipeline end to end (fuzz preset): the canary, starting from nothing, must find
# its bug and save the input within 120 s, and that input must decode to a trace that replays
# to the same violation; kvm_ops, module_ops and trace_text fuzz briefly from their seeds and
# must find nothing.   Usage: fuzz_smoke.sh BUILD_DIR SOURCE_DIR [SECONDS_PER_TARGET]
set -uo pipefail
build=$1
src=$2
secs=${3:-20}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
"$src/scripts/seeds" "$build/tdxfuzz" "$tmp/seeds" >/dev/null || exit 1

mkdir -p "$tmp/canary" "$tmp/art"
start=$(date +%s)
"$build/canary" -max_total_time=120 -max_len=256 -artifact_prefix="$tmp/art/" "$tmp/canary" \
  >"$tmp/canary.log" 2>&1
took=$(($(date +%s) - start))
crash=$(ls "$tmp"/art/crash-* 2>/dev/null | head -1)
if [ -z "$crash" ]; then
  echo "FAIL: the canary found nothing in 120 s"; tail -20 "$tmp/canary.log"; fail=1
else
  echo "ok: canary failed after ${took}s"
  "$build/tdxfuzz" decode "$crash" >"$tmp/crash.tdx"
  if TDXSIM_BUGS=skip_track_before_demote "$build/tdxfuzz" replay "$tmp/crash.tdx" >"$tmp/replay.log" 2>&1 ||
     ! grep -q 'property `kvm-bug-on`' "$tmp/replay.log"; then
    echo "FAIL: the canary's crash does not replay to kvm-bug-on"; cat "$tmp/crash.tdx"; tail "$tmp/replay.log"; fail=1
  else
    echo "ok: its decoded trace replays to the same violation"
  fi
fi
for t in kvm_ops module_ops trace_text; do
  mkdir -p "$tmp/$t"
  if "$build/$t" -max_total_time="$secs" -max_len=256 -artifact_prefix="$tmp/art/$t-" \
       -print_final_stats=1 "$tmp/$t" "$tmp/seeds/$t" >"$tmp/$t.log" 2>&1; then
    echo "ok: $t ran ${secs}s clean ($(grep -o 'stat::number_of_executed_units: *[0-9]*' "$tmp/$t.log" | grep -o '[0-9]*$') inputs)"
  else
    echo "FAIL: $t"; grep -A30 '==tdxfuzz==\|ERROR' "$tmp/$t.log" | head -40; fail=1
  fi
done
exit $fail
