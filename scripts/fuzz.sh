#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz with clang-14 (ASan + UBSan) and
# runs each one from its seed corpus for a fixed time or number of runs.
#
#   scripts/fuzz.sh [--seconds N] [--runs N] [--build-only] [target...]
#
# Targets default to all of them (fuzz_ethtool_reply fuzz_netdev_reply
# fuzz_netlink_ack fuzz_session_frame fuzz_config). Default: --seconds 20 each.
# With --runs N alone a target runs N inputs with no time limit; with both,
# whichever comes first ends it.
#
# The build uses its own Bazel output base (.cache/bazel-fuzz) so the default
# gcc build is left alone. The repository's corpus (tests/fuzz/corpus/<target>)
# is only read: new inputs go to .cache/fuzz/<target>/corpus (kept between
# runs), crash inputs to .cache/fuzz/<target>/artifacts/, the libFuzzer log to
# .cache/fuzz/<target>/log. Prints one line per target and a final
# "fuzz: N passed, N failed"; exits 1 if any target crashed, 2 if the build or
# the toolchain is missing. Needs clang-14 and libclang-rt-14-dev
# (scripts/setup.sh installs them). See tests/fuzz/README.md.
set -uo pipefail

ALL_TARGETS=(fuzz_ethtool_reply fuzz_netdev_reply fuzz_netlink_ack
  fuzz_session_frame fuzz_config)

usage() {
  sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

seconds=""
runs=""
build_only=0
targets=()
while (($#)); do
  case "$1" in
    --seconds) [[ $# -ge 2 && $2 =~ ^[0-9]+$ ]] || usage; seconds=$2; shift 2 ;;
    --runs) [[ $# -ge 2 && $2 =~ ^[0-9]+$ ]] || usage; runs=$2; shift 2 ;;
    --build-only) build_only=1; shift ;;
    -h | --help) usage ;;
    -*) echo "fuzz: unknown option $1" >&2; usage ;;
    *)
      if [[ ! " ${ALL_TARGETS[*]} " =~ \ $1\  ]]; then
        echo "fuzz: unknown target $1 (have: ${ALL_TARGETS[*]})" >&2
        exit 2
      fi
      targets+=("$1"); shift ;;
  esac
done
((${#targets[@]})) || targets=("${ALL_TARGETS[@]}")
[[ -z $seconds && -z $runs ]] && seconds=20

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT" || exit 2

# --- toolchain ---
if ! command -v clang-14 >/dev/null; then
  echo "fuzz: clang-14 not found; install clang-14 and libclang-rt-14-dev" \
    "(sudo scripts/setup.sh)" >&2
  exit 2
fi
resource_dir=$(clang-14 -print-resource-dir)
if [[ ! -e $resource_dir/lib/linux/libclang_rt.fuzzer-x86_64.a ]]; then
  echo "fuzz: clang-14 has no libFuzzer runtime ($resource_dir/lib/linux);" \
    "install libclang-rt-14-dev (sudo scripts/setup.sh)" >&2
  exit 2
fi

# --- build ---
scratch=$ROOT/.cache/fuzz
mkdir -p "$scratch"
bazel_startup=(--output_base="$ROOT/.cache/bazel-fuzz" --max_idle_secs=300)
# The fuzz config lives in tests/fuzz/fuzz.bazelrc unless .bazelrc imports it.
if ! grep -qs 'tests/fuzz/fuzz.bazelrc' .bazelrc; then
  bazel_startup+=(--bazelrc="$ROOT/tests/fuzz/fuzz.bazelrc")
fi
labels=()
for t in "${targets[@]}"; do labels+=("//tests/fuzz:$t"); done
echo "fuzz: building ${targets[*]} (log: $scratch/build.log)" >&2
build_start=$SECONDS
if ! bazel "${bazel_startup[@]}" build --config=fuzz "${labels[@]}" \
  >"$scratch/build.log" 2>&1; then
  tail -n 40 "$scratch/build.log" >&2
  echo "fuzz: build failed (full log: $scratch/build.log)" >&2
  exit 2
fi
bin=$(bazel "${bazel_startup[@]}" info --config=fuzz bazel-bin 2>/dev/null)
echo "fuzz: built in $((SECONDS - build_start)) s" >&2
((build_only)) && exit 0

# --- run ---
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
passed=0
failed=0
for t in "${targets[@]}"; do
  dir=$scratch/$t
  rm -rf "$dir/artifacts"
  mkdir -p "$dir/corpus" "$dir/artifacts"
  args=(-print_final_stats=1 -timeout=25 -rss_limit_mb=2048
    -artifact_prefix="$dir/artifacts/")
  [[ -n $seconds ]] && args+=(-max_total_time="$seconds")
  [[ -n $runs ]] && args+=(-runs="$runs")
  [[ -f tests/fuzz/$t.dict ]] && args+=(-dict="tests/fuzz/$t.dict")
  start_us=${EPOCHREALTIME/./}
  "$bin/tests/fuzz/$t" "${args[@]}" "$dir/corpus" "tests/fuzz/corpus/$t" \
    >"$dir/log" 2>&1
  rc=$?
  elapsed_us=$((${EPOCHREALTIME/./} - start_us))
  elapsed=$(printf '%d.%d' $((elapsed_us / 1000000)) $((elapsed_us % 1000000 / 100000)))
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$dir/log" | tail -n 1)
  artifact=$(find "$dir/artifacts" -type f | head -n 1)
  if [[ $rc -eq 0 && -z $artifact ]]; then
    echo "fuzz $t: ok, ${execs:-?} execs in $elapsed s"
    passed=$((passed + 1))
  else
    echo "fuzz $t: CRASH (see ${artifact:-$dir/log})"
    # The sanitizer's report, so the CI log shows what happened.
    # The sanitizer's report up to its SUMMARY, without libFuzzer's and libc's
    # own frames, so the CI log shows what happened.
    awk '/^==[0-9]+==ERROR|runtime error:|fuzz property violated|ERROR: libFuzzer/ {on = 1}
         on && !/ in fuzzer::| in __libc_start| in _start |in main .*tests\/fuzz/ {print}
         on && /^SUMMARY:/ {exit}' "$dir/log" | head -n 30 | sed 's/^/  | /'
    echo "  | reproduce: $bin/tests/fuzz/$t ${artifact:-<input>}  (log: $dir/log)"
    failed=$((failed + 1))
  fi
done
echo "fuzz: $passed passed, $failed failed"
((failed == 0))
