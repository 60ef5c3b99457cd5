#!/usr/bin/env python3
"""Counts test cases from Bazel's test.xml files and prints the closing line.

Every test target of every run is accounted for: its gtest cases are counted one
by one (passed, failed, skipped); a target that did not produce a fresh test.xml
in this run (failed to build, crashed before writing, or was never run) counts as
one failure. The last line printed is "N passed, N failed, N skipped".

A run is one `bazel test` invocation, given as --run LABEL TESTLOGS QUERY: its
testlogs directory (`bazel info [--config=X] bazel-testlogs`) and the query for
the tests it ran (e.g. "tests(//...)"). Targets of a run with a non-empty LABEL
are reported as "//pkg:name_test (LABEL)". Without --run: one unlabelled run of
tests(//...) read from the default configuration's testlogs.
"""
import argparse
import os
import subprocess
import sys
import xml.etree.ElementTree as ET


def test_targets(query="tests(//...)"):
    out = subprocess.run(["bazel", "query", query], capture_output=True,
                         text=True, check=True).stdout
    return [t for t in out.split() if t.startswith("//")]


def testlogs_dir():
    # Ask Bazel rather than trust the bazel-testlogs convenience symlink.
    return subprocess.run(["bazel", "info", "bazel-testlogs"], capture_output=True,
                          text=True, check=True).stdout.strip()


def xml_path(logs, target):
    pkg, name = target[2:].split(":")
    return os.path.join(logs, pkg, name, "test.xml")


def count(path):
    """(passed, failed, skipped, failed_names) of one test.xml."""
    passed = failed = skipped = 0
    names = []
    root = ET.parse(path).getroot()
    for case in root.iter("testcase"):
        name = case.get("classname", "") + "." + case.get("name", "")
        if case.find("failure") is not None or case.find("error") is not None:
            failed += 1
            names.append(name)
        elif (case.find("skipped") is not None or case.get("result") == "skipped"
              or case.get("status") == "notrun"):
            skipped += 1
        else:
            passed += 1
    if passed + failed + skipped == 0:
        # A non-gtest target: Bazel's generated xml has no cases; use its totals.
        # A shell test that could not run prints "SKIPPED: reason" and exits 0.
        f = int(root.get("failures", "0")) + int(root.get("errors", "0"))
        log = os.path.join(os.path.dirname(path), "test.log")
        skipped_run = os.path.exists(log) and any(
            line.startswith("SKIPPED:") for line in open(log, errors="replace"))
        if f:
            failed, names = 1, [path]
        elif skipped_run:
            skipped = 1
        else:
            passed = 1
    return passed, failed, skipped, names


def count_matrix(directory):
    """(passed, failed, skipped, failure lines) of a kernel matrix's results
    (scripts/kernel_matrix.sh): every gtest XML under it, by test case; a
    SKIPPED file (the matrix did not run at all) is one skipped test."""
    passed = failed = skipped = 0
    failures = []
    if not os.path.isdir(directory):
        return 0, 1, 0, [f"kernel matrix: no results in {directory}"]
    marker = os.path.join(directory, "SKIPPED")
    if os.path.exists(marker):
        reason = open(marker, errors="replace").read().strip()
        print(f"SKIPPED: kernel matrix: {reason}")
        return 0, 0, 1, []
    for root, _, files in sorted(os.walk(directory)):
        for f in sorted(files):
            if not f.endswith(".xml"):
                continue
            path = os.path.join(root, f)
            where = os.path.relpath(path, directory)
            try:
                a, b, c, names = count(path)
            except ET.ParseError:
                failed += 1
                failures.append(f"kernel matrix {where} (unreadable)")
                continue
            passed, failed, skipped = passed + a, failed + b, skipped + c
            failures += [f"kernel matrix {where}: {n}" for n in names]
    if passed + failed + skipped == 0:
        failed, failures = 1, [f"kernel matrix: no test ran ({directory})"]
    return passed, failed, skipped, failures


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--since", type=float, required=True)
    ap.add_argument("--lint-failed", type=int, default=0)
    ap.add_argument("--build-failed", type=int, default=0,
                    help="1 if the normal build of the non-test targets "
                    "failed (counted as one failure)")
    ap.add_argument("--fuzz", nargs=2, type=int, default=[0, 0],
                    metavar=("PASSED", "FAILED"),
                    help="fuzz targets that ran clean / crashed (scripts/fuzz.sh)")
    ap.add_argument("--matrix", metavar="DIR",
                    help="also count a kernel matrix's results "
                    "(scripts/kernel_matrix.sh --out DIR)")
    ap.add_argument("--matrix-only", metavar="DIR",
                    help="count only a kernel matrix's results and print "
                    "\"kernel matrix: N passed, N failed, N skipped\"")
    ap.add_argument("--log")
    ap.add_argument("--run", nargs=3, action="append", default=[],
                    metavar=("LABEL", "TESTLOGS", "QUERY"),
                    help="one bazel test run: label ('' for none), its testlogs "
                    "directory, and the bazel query for its test targets")
    args = ap.parse_args()
    if args.matrix_only:
        p, f, k, names = count_matrix(args.matrix_only)
        for n in names:
            print("FAILED: " + n)
        print(f"kernel matrix: {p} passed, {f} failed, {k} skipped")
        return 1 if f else 0
    runs = args.run or [("", testlogs_dir(), "tests(//...)")]
    passed = failed = skipped = 0
    failures = []
    for label, logs, query in runs:
        suffix = f" ({label})" if label else ""
        for t in test_targets(query):
            p = xml_path(logs, t)
            if not os.path.exists(p) or os.path.getmtime(p) < args.since - 1:
                failed += 1
                failures.append(t + suffix +
                                " (no result: failed to build or did not run)")
                continue
            try:
                a, b, c, names = count(p)
            except ET.ParseError:
                failed += 1
                failures.append(t + suffix + " (unreadable test.xml)")
                continue
            passed, failed, skipped = passed + a, failed + b, skipped + c
            failures += [t + suffix + ": " + n for n in names]
    if args.lint_failed:
        failed += 1
        failures.append("lint: clang-format")
    else:
        passed += 1
    if args.build_failed:
        failed += 1
        failures.append("build: the normal build of binaries and benches "
                        "failed (see .cache/last-build.log)")
    if args.matrix:
        a, b, c, names = count_matrix(args.matrix)
        passed, failed, skipped = passed + a, failed + b, skipped + c
        failures += names
    passed += args.fuzz[0]
    failed += args.fuzz[1]
    if args.fuzz[1]:
        failures.append(f"fuzz: {args.fuzz[1]} target(s) crashed or did not "
                        "build (see .cache/last-fuzz.log)")
    for f in failures:
        print("FAILED: " + f)
    print(f"{passed} passed, {failed} failed, {skipped} skipped")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
