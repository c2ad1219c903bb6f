#!/usr/bin/env bash
# Command-line contract of `tdxfuzz`: exit codes and the shape of its reports.
# Usage: tool_test.sh TDXFUZZ_BINARY SOURCE_DIR
set -u
bin=$1
src=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0
check() {  # check NAME EXPECTED_RC GREP_PATTERN -- command...
  local name=$1 want=$2 pattern=$3
  shift 4
  "$@" >"$tmp/out" 2>&1
  local rc=$?
  if [ "$rc" -ne "$want" ]; then
    echo "FAIL $name: exit $rc, want $want"; cat "$tmp/out"; fails=$((fails + 1)); return
  fi
  if [ -n "$pattern" ] && ! grep -qE -- "$pattern" "$tmp/out"; then
    echo "FAIL $name: output lacks /$pattern/"; cat "$tmp/out"; fails=$((fails + 1)); return
  fi
  echo "ok   $name"
}

check help 0 'replay \[-v\] FILE' -- "$bin" --help
check no-args 2 'usage' -- "$bin"
check unknown-command 2 'unknown command' -- "$bin" frobnicate
check corpus 0 ' passed, 0 failed' -- "$bin" replay "$src"/corpus/module/*.tdx
check missing-file 2 'cannot read' -- "$bin" replay "$tmp/nope.tdx"

cat >"$tmp/wrong.tdx" <<'T'
target module
tdh.mem.sept.add 0x0 512G -> SUCCESS
tdh.mem.page.aug 0x200000 2M -> SUCCESS
T
check wrong-expectation 1 'wrong.tdx:3: expectation failed' -- "$bin" replay "$tmp/wrong.tdx"
check wrong-expectation-actual 1 'actual: +TDX_EPT_WALK_FAILED\|RCX' -- "$bin" replay "$tmp/wrong.tdx"
check wrong-expectation-expected 1 'expected: TDX_SUCCESS' -- "$bin" replay "$tmp/wrong.tdx"

cat >"$tmp/bad.tdx" <<'T'
target module
tdh.mem.sept.add 0x0 512G
tdh.mem.page.aug 0x200000 3M
T
check malformed-level 2 'bad.tdx:3:27: bad level' -- "$bin" replay "$tmp/bad.tdx"
printf 'target module\ntdh.mem.pag.aug 0x0 4K\n' >"$tmp/typo.tdx"
check malformed-op 2 "typo.tdx:2:1: unknown operation .*did you mean .tdh.mem.page.aug" -- "$bin" replay "$tmp/typo.tdx"
printf 'target module\ntdh.mem.track\nvcpus 3\n' >"$tmp/late.tdx"
check header-after-op 2 'late.tdx:3:1: .vcpus. is a header line' -- "$bin" replay "$tmp/late.tdx"
printf 'target module\ntdh.mem.track -> TDX_BOGUS\n' >"$tmp/res.tdx"
check bad-result 2 'res.tdx:2:18: unknown result' -- "$bin" replay "$tmp/res.tdx"
# A malformed file among good ones: nothing runs.
check malformed-runs-nothing 2 '' -- "$bin" replay "$src"/corpus/module/aug_accept_demote.tdx "$tmp/bad.tdx"
if grep -q PASS "$tmp/out"; then echo "FAIL malformed-runs-nothing: something ran"; fails=$((fails + 1)); fi
check verbose 0 'TDH.MEM.PAGE.DEMOTE rcx=0x200001 .* -> TDX_SUCCESS' -- "$bin" replay -v "$src"/corpus/module/aug_accept_demote.tdx

# KVM traces and the bug zoo from the environment.
check kvm-corpus 0 ' passed, 0 failed' -- "$bin" replay "$src"/corpus/kvm/*.tdx
cat >"$tmp/zoo.tdx" <<'T'
vcpus 1
finalize
map 0x200 2M -> ok
accept 0 0x200 2M -> ok
write 0 0x201 0x1234
convert 0x200 1 shared -> ok
read 0 0x201 -> 0x1234
T
check zoo-off 0 '1 passed' -- "$bin" replay "$tmp/zoo.tdx"
check zoo-env-on 1 'property .guest-data. violated' -- env TDXSIM_BUGS=whole_2m_zap "$bin" replay "$tmp/zoo.tdx"
check zoo-env-bad 2 'unknown bug-zoo entry .nonsense.' -- env TDXSIM_BUGS=nonsense "$bin" replay "$tmp/zoo.tdx"
printf 'option bug=nonsense\n' >"$tmp/badbug.tdx"
check zoo-option-bad 2 'badbug.tdx:1:12: bad bug-zoo entry' -- "$bin" replay "$tmp/badbug.tdx"
printf 'finalize\nread 0 0x10 -> 0x1\n' >"$tmp/kvmwrong.tdx"
check kvm-wrong-expectation 1 'kvmwrong.tdx:2: expectation failed' -- "$bin" replay "$tmp/kvmwrong.tdx"
printf 'finalize\nmap 0x1000 2M\n' >"$tmp/oob.tdx"
check kvm-gfn-out-of-range 2 'oob.tdx:2:5: GFN 0x1000 is outside guest memory' -- "$bin" replay "$tmp/oob.tdx"
check options 0 'whole_2m_zap' -- "$bin" options
check options-zoo 0 'zap_iter_advance_after_yield' -- "$bin" options
check options-resched 0 'zap_resched_every' -- "$bin" options
check ops-nomem 0 'nomem \[N\]' -- "$bin" ops
check ops-irq 0 'irq \[N\]' -- "$bin" ops

# minimize: a failure that needs `schedule setup` (with finalize run first, the vCPU's ACCEPT
# succeeds instead of the expected EINVAL) keeps the line, moved to the lines that are left.
cat >"$tmp/setup.tdx" <<'T'
vcpus 1
memory 512
finalize
map 0x0 4K
map 0x1 4K
map 0x2 4K
@vcpu0 accept 0 0x1 4K -> EINVAL
@vcpu0 read 0 0x1
schedule random 1
schedule setup 4
T
check setup-fails 1 'setup.tdx:7: expectation failed' -- "$bin" replay "$tmp/setup.tdx"
check minimize-keeps-setup 0 'minimized to 2 statements' -- "$bin" minimize -o "$tmp/min.tdx" "$tmp/setup.tdx"
check minimized-setup-line 0 '^schedule setup 1$' -- cat "$tmp/min.tdx"
check minimized-still-fails 1 'expectation failed' -- "$bin" replay "$tmp/min.tdx"
grep -v '^schedule setup' "$tmp/min.tdx" >"$tmp/nosetup.tdx"
check without-setup-passes 0 '1 passed' -- "$bin" replay "$tmp/nosetup.tdx"
# Switch rules the failure does not need go, schedule and all.
printf 'finalize\nread 0 0x10 -> 0x1\nschedule vcpu0:kick -> host0\n' >"$tmp/rules.tdx"
check minimize-rules 0 'minimized to 1 statements' -- "$bin" minimize -o "$tmp/rmin.tdx" "$tmp/rules.tdx"
check minimized-rules-gone 1 '' -- grep -q '^schedule' "$tmp/rmin.tdx"
check minimize-passing 1 'nothing to minimize' -- "$bin" minimize "$src"/corpus/module/aug_accept_demote.tdx
printf 'finalize\nschedule setup 2\nschedule random 1\n' >"$tmp/longsetup.tdx"
check setup-too-long 2 'longsetup.tdx:2:16: .schedule setup 2.: the trace has only 1 operation$' -- "$bin" replay "$tmp/longsetup.tdx"
check encode-drops-setup 0 'left out: schedule setup 4' -- "$bin" encode -o "$tmp/setup.bin" "$tmp/setup.tdx"

echo "$fails failed"
[ "$fails" -eq 0 ]
