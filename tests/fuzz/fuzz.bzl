"""devmemd_fuzz_target: one libFuzzer target plus its corpus replay test.

With --config=fuzz (clang-14, see .bazelrc and scripts/fuzz.sh) `name` is a
libFuzzer binary instrumented with ASan and UBSan. In any other build it is a
plain binary whose main() runs the input files or directories it is given
(replay_main.cc), so the target keeps compiling with gcc.

`name + "_corpus_test"` replays corpus/<name>/ through the same
LLVMFuzzerTestOneInput in every build: a regression test for each seed and for
every crash input added to the corpus after its fix.
"""

def devmemd_fuzz_target(name, srcs, deps = []):
    native.cc_library(
        name = name + "_lib",
        srcs = srcs,
        deps = deps + [":fuzz_check"],
        # LLVMFuzzerTestOneInput is only referenced by main(), which comes
        # from libFuzzer or replay_main.
        alwayslink = True,
    )
    native.cc_binary(
        name = name,
        deps = [":" + name + "_lib"] + select({
            ":libfuzzer": [],
            "//conditions:default": [":replay_main"],
        }),
        linkopts = select({
            ":libfuzzer": ["-fsanitize=fuzzer"],
            "//conditions:default": [],
        }),
    )
    native.cc_test(
        name = name + "_corpus_test",
        size = "small",
        args = ["tests/fuzz/corpus/" + name],
        data = native.glob(["corpus/" + name + "/**"]),
        deps = [
            ":" + name + "_lib",
            ":replay_main",
        ],
    )
