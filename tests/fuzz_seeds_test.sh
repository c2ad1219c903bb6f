#!/usr/bin/env bash
# Seeds and regressions through every fuzz target: the seeds (encoded from corpus/*.tdx) and
# corpus/regressions pass kvm_ops, module_ops and trace_text; the canary fails on them with a
# `kvm-bug-on` report that names the property and prints the decoded trace.
# Usage: fuzz_seeds_test.sh BUILD_DIR SOURCE_DIR LIBFUZZER(ON|OFF)
set -uo pipefail
build=$1
src=$2
libfuzzer=$3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
"$src/scripts/seeds" "$build/tdxfuzz" "$tmp" || exit 1
"$src/scripts/gen-dicts" "$build/tdxfuzz" --check || fail=1
run() {  # target dir
  if [ "$libfuzzer" = ON ]; then "$build/$1" -runs=0 "$2"; else "$build/$1" "$2"; fi
}
for t in kvm_ops module_ops trace_text; do
  if ! run "$t" "$tmp/$t" >"$tmp/$t.log" 2>&1; then
    echo "FAIL: $t on its seeds"; tail -40 "$tmp/$t.log"; fail=1
  else
    echo "ok: $t ran $(ls "$tmp/$t" | wc -l) seeds"
  fi
done
# The canary must fail, and say why in a form a person can replay.
if run canary "$tmp/canary" >"$tmp/canary.log" 2>&1; then
  echo "FAIL: the canary passed its seeds"; fail=1
elif ! grep -q 'property `kvm-bug-on` violated' "$tmp/canary.log" ||
     ! grep -q '^finalize' "$tmp/canary.log"; then
  echo "FAIL: the canary's report lacks the property or the decoded trace"; tail -30 "$tmp/canary.log"; fail=1
else
  echo "ok: canary failed as it must"
fi
exit $fail
