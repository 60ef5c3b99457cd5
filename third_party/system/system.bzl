"""Repository rule exposing Debian's system libraries as cc_library targets.

Link flags and include directories come from pkg-config at fetch time, so the BUILD
files never hard-code absl's long dependency list. A missing -dev package fails the
fetch with a message that names the package to install.
"""

# target name -> (pkg-config modules, Debian package that provides them)
_LIBS = {
    "absl": (
        [
            "absl_flags_parse",
            "absl_flags_usage",
            "absl_status",
            "absl_statusor",
            "absl_strings",
            "absl_str_format",
            "absl_synchronization",
            "absl_time",
            "absl_hash",
            "absl_raw_hash_set",
            "absl_random_random",
            "absl_cleanup",
        ],
        "libabsl-dev",
    ),
    "grpc": (["grpc++", "protobuf"], "libgrpc++-dev libprotobuf-dev"),
    "protobuf": (["protobuf"], "libprotobuf-dev"),
    "nl": (["libnl-3.0", "libnl-genl-3.0", "libnl-route-3.0"], "libnl-3-dev libnl-genl-3-dev libnl-route-3-dev"),
    "mnl": (["libmnl"], "libmnl-dev"),
    "systemd": (["libsystemd"], "libsystemd-dev"),
    "prometheus": (["prometheus-cpp-pull", "prometheus-cpp-core"], "prometheus-cpp-dev"),
    # devmem-agent terminates TLS 1.3 itself (gRPC 1.51's C++ API can neither
    # pin the TLS version nor report why a handshake failed).
    "openssl": (["openssl"], "libssl-dev"),
    "gtest_main": (["gtest_main", "gmock"], "libgtest-dev libgmock-dev"),
    "gtest": (["gtest", "gmock"], "libgtest-dev libgmock-dev"),
}

# Libraries Debian ships without a pkg-config file:
# target name -> (header that must exist, link flags, Debian package).
# civetweb is what prometheus-cpp-pull serves HTTP with; devmemd's metrics and
# health endpoints use it directly.
_PLAIN_LIBS = {
    "civetweb": ("/usr/include/civetweb.h", ["-lcivetweb"], "libcivetweb-dev"),
}

def _pkg_config(ctx, flag, modules, debs):
    res = ctx.execute(["pkg-config", flag] + modules)
    if res.return_code != 0:
        fail("pkg-config %s %s failed (install the Debian package(s): %s): %s" %
             (flag, " ".join(modules), debs, res.stderr))
    return [w for w in res.stdout.strip().split(" ") if w]

def _system_libraries_impl(ctx):
    build = ['package(default_visibility = ["//visibility:public"])', ""]
    linked_dirs = {}
    for name, (modules, debs) in _LIBS.items():
        libs = _pkg_config(ctx, "--libs", modules, debs)
        cflags = _pkg_config(ctx, "--cflags", modules, debs)
        includes = []
        for f in cflags:
            if f.startswith("-I/"):
                d = f[2:]
                local = "inc" + d.replace("/", "_")
                if local not in linked_dirs:
                    ctx.symlink(d, local)
                    linked_dirs[local] = True
                includes.append(local)

        # De-duplicate while keeping order (pkg-config repeats absl libraries).
        seen = {}
        linkopts = []
        for l in libs:
            if l not in seen or not l.startswith("-l"):
                seen[l] = True
                linkopts.append(l)
        build.append("cc_library(")
        build.append('    name = "%s",' % name)
        build.append("    hdrs = glob(%s)," % repr([i + "/**/*.h" for i in includes]))
        build.append("    includes = %s," % repr(includes))
        build.append("    linkopts = %s," % repr(linkopts))
        build.append(")")
        build.append("")
    for name, (header, linkopts, deb) in _PLAIN_LIBS.items():
        if not ctx.path(header).exists:
            fail("%s is missing (install the Debian package: %s)" % (header, deb))
        build.append("cc_library(")
        build.append('    name = "%s",' % name)
        build.append("    linkopts = %s," % repr(linkopts))
        build.append(")")
        build.append("")
    ctx.file("WORKSPACE", 'workspace(name = "%s")\n' % ctx.name)
    ctx.file("BUILD", "\n".join(build))

system_libraries = repository_rule(
    implementation = _system_libraries_impl,
    local = True,
    environ = ["PKG_CONFIG_PATH"],
)
