#!/usr/bin/env bash
# kernel_matrix.sh: devmemd's real-kernel tests on Debian's 6.12 and 7.3
# kernels, each in a QEMU guest (scripts/kernel_vm.sh), with netdevsim built
# out of tree for each.
#
#   bash scripts/kernel_matrix.sh [--versions 6.12,7.3] [--out DIR]
#
# The first run downloads about 590 MB into ~/.cache/devmemd/kernel-vm; later
# runs use the cache. Results: DIR (default .cache/kernel-matrix)/<version>/
# <test>.xml (gtest XML, counted by scripts/summarize_tests.py --matrix DIR)
# and <test>.log; DIR/SKIPPED says why the matrix did not run at all (no
# root, no QEMU, no archive): it is then reported as skipped, never passed.
# Prints one line per test and "kernel matrix: N passed, N failed, N skipped".
# Exit status 1 if a test failed or the tests did not build, else 0.
set -uo pipefail
cd "$(dirname "$0")/.."

versions=6.12,7.3
out=.cache/kernel-matrix
while (($#)); do
  case "$1" in
    --versions) versions=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    -h | --help)
      sed -n '2,/^set -uo/p' "$0" | sed -e '/^set -uo/d' -e 's/^# \{0,1\}//'
      exit 0
      ;;
    *) echo "kernel_matrix: unknown argument $1 (--help)" >&2; exit 2 ;;
  esac
done
mkdir -p "$out"
out=$(cd "$out" && pwd)
rm -rf "${out:?}"/*
start=$SECONDS

skip_all() {
  echo "$*" >"$out/SKIPPED"
  echo "kernel_matrix: SKIPPED: $*"
  echo "kernel matrix: 0 passed, 0 failed, 1 skipped ($((SECONDS - start)) s)"
  exit 0
}

# The tests whose answers depend on the kernel: netlink and ioctl code on
# veth pairs, bind-rx, udmabuf, the NIC control layer.
targets=(
  //kernel:ethtool_netlink_test //kernel:netdev_genl_test
  //kernel:ethtool_set_veth_test //kernel:ethtool_ioctl_veth_test
  //kernel:netdev_bind_veth_test //kernel:kernel_nic_control_test
  //kernel:udmabuf_test //tests:kernel_refusal_veth_test
  //tests:inventory_veth_test //client:devmemctl //daemon:devmemd
)

[[ $(id -u) -eq 0 ]] ||
  skip_all "needs root: QEMU reads the host's root over 9p as its own user"
command -v qemu-system-x86_64 >/dev/null ||
  skip_all "qemu-system-x86_64 is missing (bash scripts/setup.sh installs it)"
if ! bash scripts/kernel_vm.sh fetch all; then
  skip_all "the kernel packages could not be downloaded from the Debian archive (see the lines above)"
fi

echo "kernel_matrix: building ${targets[*]}"
if ! bazel build "${targets[@]}" >"$out/build.log" 2>&1; then
  tail -30 "$out/build.log"
  echo "kernel_matrix: FAILED: the tests did not build (see $out/build.log)"
  echo "<testsuites><testsuite name=\"build\"><testcase name=\"build\"><failure message=\"bazel build failed\"/></testcase></testsuite></testsuites>" >"$out/build.xml"
  echo "kernel matrix: 0 passed, 1 failed, 0 skipped ($((SECONDS - start)) s)"
  exit 1
fi
bin=$(bazel info bazel-bin 2>/dev/null)
bins=()
for t in "${targets[@]}"; do
  [[ $t == //client:devmemctl || $t == //daemon:devmemd ]] && continue
  p=${t#//}
  bins+=("$bin/${p%%:*}/${p##*:}")
done
ctl="$bin/client/devmemctl"

status=0
IFS=, read -ra vs <<<"$versions"
for v in "${vs[@]}"; do
  mkdir -p "$out/$v"
  nsim=""
  if nsim=$(bash scripts/kernel_vm.sh netdevsim "$v" 2>"$out/$v/netdevsim-build.log" | tail -1) &&
    [[ -f $nsim ]]; then
    echo "kernel_matrix: $v: $(grep 'netdevsim.ko built' "$out/$v/netdevsim-build.log" | tail -1)"
  else
    nsim=""
    echo "kernel_matrix: $v: netdevsim could not be built; its tests are skipped:"
    tail -5 "$out/$v/netdevsim-build.log"
  fi
  extra=("cmd:devmemctl_selftest_simulated:$ctl selftest --nic sim0 --simulated"
    "cmd:devmemd_kernel_facts:bash $PWD/tests/kernel_vm/kernel_facts.sh $bin/daemon/devmemd $ctl")
  if [[ -n $nsim ]]; then
    extra+=("cmd:netdevsim_selftest_refuses:bash $PWD/tests/kernel_vm/netdevsim_selftest.sh $ctl"
      "cmd:netdevsim_header_split_profile:bash $PWD/tests/kernel_vm/netdevsim_profile.sh $bin/daemon/devmemd $ctl")
  fi
  echo "kernel_matrix: $v: booting"
  t0=$SECONDS
  bash scripts/kernel_vm.sh run "$v" --timeout 1200 --work "$out/$v" -- \
    bash "$PWD/scripts/kernel_matrix_guest.sh" "$out/$v/results" "$nsim" \
    "${bins[@]}" "${extra[@]}" 2>&1 | tee "$out/$v/console.log"
  rc=${PIPESTATUS[0]}
  echo "kernel_matrix: $v: guest done in $((SECONDS - t0)) s (exit $rc)"
  if [[ $rc -ne 0 ]]; then
    status=1
    echo "<testsuites><testsuite name=\"guest\"><testcase name=\"guest_$v\"><failure message=\"the guest exited $rc\"/></testcase></testsuite></testsuites>" >"$out/$v/guest.xml"
  fi
done

python3 scripts/summarize_tests.py --matrix-only "$out" --since 0 ||
  status=1
echo "kernel matrix: took $((SECONDS - start)) s"
exit $status
