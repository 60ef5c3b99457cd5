#!/bin/bash
# Runs inside a scripts/kernel_vm.sh guest (called by kernel_matrix.sh):
#   kernel_matrix_guest.sh OUT_DIR NETDEVSIM_KO BIN...
# Each BIN is a gtest binary (its XML report to OUT_DIR/<name>.xml) or
# "cmd:<name>:<command line>" (one pass/fail case, written as XML too).
# Each gets 240 s. Output goes to OUT_DIR/<name>.log and, on failure, here.
set -u
out=$1 nsim=$2
shift 2
mkdir -p "$out"
echo "kernel $(uname -r)" >"$out/kernel"

xml_case() {  # name status message
  local status=$2 body=""
  [[ $status == failed ]] && body="<failure message=\"$3\"/>"
  [[ $status == skipped ]] && body="<skipped message=\"$3\"/>"
  printf '<testsuites><testsuite name="%s"><testcase name="%s" status="run" result="completed">%s</testcase></testsuite></testsuites>\n' \
    "$1" "$1" "$body" >"$out/$1.xml"
}

if [[ -n $nsim && -f $nsim ]]; then
  if modprobe psample && insmod "$nsim" 2>"$out/netdevsim.load"; then
    echo "netdevsim loaded" >>"$out/kernel"
  else
    echo "netdevsim did not load: $(cat "$out/netdevsim.load")" >>"$out/kernel"
  fi
fi

for bin in "$@"; do
  if [[ $bin == cmd:* ]]; then
    rest=${bin#cmd:}
    name=${rest%%:*}
    cmd=${rest#*:}
    if timeout 240 bash -c "$cmd" >"$out/$name.log" 2>&1; then
      xml_case "$name" passed ""
      echo "kernel_matrix: $name passed"
    else
      xml_case "$name" failed "exit $?; see $name.log"
      echo "kernel_matrix: $name FAILED"
      tail -30 "$out/$name.log"
    fi
    continue
  fi
  name=$(basename "$bin")
  tmp=$(mktemp -d)
  TEST_TMPDIR=$tmp TEST_SRCDIR=$bin.runfiles TEST_WORKSPACE=devmemd \
    timeout 240 "$bin" --gtest_output="xml:$out/$name.xml" >"$out/$name.log" 2>&1
  rc=$?
  rm -rf "$tmp"
  summary=$(grep -E '^\[  (PASSED|FAILED|SKIPPED) ' "$out/$name.log" | tr '\n' ' ')
  echo "kernel_matrix: $name exit $rc: $summary"
  if [[ $rc -ne 0 ]]; then
    tail -40 "$out/$name.log"
    [[ -f $out/$name.xml ]] || xml_case "$name" failed "exit $rc, no report"
  fi
done
exit 0
