#!/usr/bin/env bash
# Sets up (Debian packages), builds and runs every test, then prints one closing
# line "N passed, N failed, N skipped" computed from the test results.
# Exit status is non-zero if anything failed. Run as root for the namespace tests
# (they skip with a reason otherwise).
set -uo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh || exit 1

mkdir -p .cache
start=$(date +%s)
status=0
# Every test runs every time: the counts below are from this run only.
bazel test --keep_going --nocache_test_results //... 2>&1 | tee .cache/last-test.log
bazel_rc=${PIPESTATUS[0]}
# 3 = some tests failed; 1 = build failed; 4 = no tests. All are failures here.
[[ $bazel_rc -ne 0 ]] && status=1

# Style check counts as a test of its own.
lint_failed=0
files=$(git ls-files '*.cc' '*.h')
if ! clang-format --dry-run --Werror $files >.cache/clang-format.log 2>&1; then
  echo "lint: clang-format found unformatted files:" >&2
  grep -o '^[^:]*:' .cache/clang-format.log | sort -u >&2
  lint_failed=1
  status=1
fi

python3 scripts/summarize_tests.py --since "$start" --lint-failed "$lint_failed" \
  --log .cache/last-test.log
summary_rc=$?
[[ $summary_rc -ne 0 ]] && status=1
exit $status
