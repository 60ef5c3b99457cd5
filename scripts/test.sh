#!/usr/bin/env bash
# Sets up (Debian packages), builds everything (binaries, benches, tests), runs
# every test once under ASan + UBSan (--config=asan) and the few that check the
# normal build's packaging (tagged no_asan) on that build, runs each libFuzzer
# target for a short fixed time (scripts/fuzz.sh; FUZZ_SECONDS, default 15),
# runs the kernel tests again in QEMU guests on Debian's 6.12 and 7.3 kernels
# (scripts/kernel_matrix.sh), then prints one closing line "N passed, N
# failed, N skipped" computed from the test results.
# Exit status is non-zero if anything failed. Run as root for the namespace tests
# (they skip with a reason otherwise). TSan is not run here (slow, and it needs
# the annotations in tests/sanitizers); see tests/sanitizers/README.md.
set -uo pipefail
# As root (how CI runs it), through sudo if need be; without either, the
# tests that need root skip with their reasons.
source "$(dirname "$0")/as_root.sh"
run_as_root --optional "$@"
cd "$(dirname "$0")/.."

bash scripts/setup.sh || exit 1

mkdir -p .cache
start=$(date +%s)
status=0
# One "--run LABEL TESTLOGS QUERY" per bazel test run, for summarize_tests.py.
summary_runs=()
timings=()

# run_tests LABEL LOG QUERY [BAZEL_FLAGS...] -- PATTERNS...
# One `bazel test` of PATTERNS (QUERY names the same tests for the summary).
# Every test runs every time: the counts are from this run only.
run_tests() {
  local label=$1 log=$2 query=$3
  shift 3
  local flags=()
  while [[ $1 != -- ]]; do
    flags+=("$1")
    shift
  done
  shift
  local t0=$SECONDS
  bazel test --keep_going --nocache_test_results "${flags[@]}" -- "$@" 2>&1 | tee "$log"
  local rc=${PIPESTATUS[0]}
  # 3 = some tests failed; 1 = build failed; 4 = no tests. All are failures here.
  [[ $rc -ne 0 ]] && status=1
  timings+=("${label:-default}: $((SECONDS - t0)) s (bazel exit $rc)")
  summary_runs+=(--run "$label" "$(bazel info "${flags[@]}" bazel-testlogs 2>/dev/null)" "$query")
}

# 1. The normal build of everything but the tests (what the README's demo
#    and the .deb use, benches included, so that they keep building), and
#    the tests tagged no_asan, which check that build's packaging and config
#    files (the .deb, units, alert rules, the dashboard) or run no code of
#    ours that the ASan pass does not (slurm_test drives devmem-slurm and
#    devmemd, both run under ASan elsewhere).
t0=$SECONDS
bazel query '//... except tests(//...)' >.cache/build-targets.txt 2>/dev/null
bazel build --keep_going --target_pattern_file=.cache/build-targets.txt 2>&1 |
  tee .cache/last-build.log
build_rc=${PIPESTATUS[0]}
[[ $build_rc -ne 0 ]] && status=1
timings+=("build: $((SECONDS - t0)) s (bazel exit $build_rc)")
run_tests "" .cache/last-test.log 'attr(tags, "no_asan", tests(//...))' \
  --build_tests_only --test_tag_filters=no_asan -- //...

# 2. Every other test, once, under ASan + UBSan + LSan, built into its own
#    output directory (bazel-out/k8-fastbuildasan). Building and running them
#    a second time in the normal build found nothing ASan did not, and cost
#    a third of CI's time (issue 17).
run_tests asan .cache/last-test-asan.log \
  'tests(//...) except attr(tags, "no_asan", tests(//...))' \
  --config=asan --build_tests_only --test_tag_filters=-no_asan -- //...

# 3. Each libFuzzer target (clang 14, ASan + UBSan) for a short fixed time,
#    starting from its corpus in tests/fuzz/corpus/. One result per target.
t0=$SECONDS
bash scripts/fuzz.sh --seconds "${FUZZ_SECONDS:-15}" 2>&1 | tee .cache/last-fuzz.log
fuzz_rc=${PIPESTATUS[0]}
[[ $fuzz_rc -ne 0 ]] && status=1
fuzz_passed=$(grep -c '^fuzz [a-z_]*: ok' .cache/last-fuzz.log)
fuzz_failed=$(grep -c '^fuzz [a-z_]*: CRASH' .cache/last-fuzz.log)
# A fuzz build that failed runs nothing: count it as one failure.
if [[ $fuzz_rc -ne 0 && $fuzz_failed -eq 0 ]]; then fuzz_failed=1; fi
timings+=("fuzz: $((SECONDS - t0)) s (exit $fuzz_rc)")

# 4. The kernel matrix: the kernel and real-kernel tests again in QEMU guests
#    running Debian's 6.12 and 7.3 kernels, netdevsim loaded in 7.3
#    (scripts/kernel_matrix.sh). The first run downloads the kernels into
#    ~/.cache/devmemd; without the archive it is reported as skipped.
t0=$SECONDS
bash scripts/kernel_matrix.sh 2>&1 | tee .cache/last-matrix.log
matrix_rc=${PIPESTATUS[0]}
[[ $matrix_rc -ne 0 ]] && status=1
timings+=("kernel matrix: $((SECONDS - t0)) s (exit $matrix_rc)")

# Style check counts as a test of its own.
lint_failed=0
files=$(git ls-files '*.cc' '*.h')
if ! clang-format --dry-run --Werror $files >.cache/clang-format.log 2>&1; then
  echo "lint: clang-format found unformatted files:" >&2
  grep -o '^[^:]*:' .cache/clang-format.log | sort -u >&2
  lint_failed=1
  status=1
fi

# The layout (README): daemon/ folders include only downwards.
if ! python3 scripts/check_layout.py >.cache/layout.log 2>&1; then
  echo "lint: an upward include between daemon/ folders:" >&2
  cat .cache/layout.log >&2
  lint_failed=1
  status=1
fi

for t in "${timings[@]}"; do echo "wall time, tests $t" >&2; done
python3 scripts/summarize_tests.py --since "$start" --lint-failed "$lint_failed" \
  --build-failed "$((build_rc != 0))" \
  --fuzz "$fuzz_passed" "$fuzz_failed" --matrix .cache/kernel-matrix \
  --log .cache/last-test.log "${summary_runs[@]}"
summary_rc=$?
[[ $summary_rc -ne 0 ]] && status=1
exit $status
