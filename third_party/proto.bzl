"""cc_grpc_proto: protoc + grpc_cpp_plugin from Debian, wrapped in a cc_library.

Native cc_proto_library needs a @com_google_protobuf source tree, which an offline
Debian build does not have; the system protoc produces the same code.
"""

def cc_grpc_proto(name, src, deps = [], grpc = True, visibility = None):
    """Generates <src>.pb.{h,cc} (and .grpc.pb.{h,cc}) and a cc_library `name`."""
    base = src[:-len(".proto")]
    outs = [base + ".pb.h", base + ".pb.cc"]
    if grpc:
        outs += [base + ".grpc.pb.h", base + ".grpc.pb.cc"]
    pkg = native.package_name()
    cmd = "protoc --proto_path=. --cpp_out=$(GENDIR)"
    if grpc:
        cmd += " --plugin=protoc-gen-grpc=$$(command -v grpc_cpp_plugin) --grpc_out=$(GENDIR)"
    cmd += " %s/%s" % (pkg, src) if pkg else " " + src
    native.genrule(
        name = name + "_gen",
        srcs = [src] + [d + "_srcs" for d in deps],
        outs = outs,
        cmd = cmd,
        message = "protoc " + src,
    )
    native.filegroup(name = name + "_srcs", srcs = [src], visibility = visibility)
    native.cc_library(
        name = name,
        srcs = [o for o in outs if o.endswith(".cc")],
        hdrs = [o for o in outs if o.endswith(".h")],
        deps = deps + ["@system//:grpc"],
        visibility = visibility,
    )
