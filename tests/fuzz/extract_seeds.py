#!/usr/bin/env python3
"""Copies the netlink messages held as C++ byte arrays in kernel/testdata/*.inc
(replies captured from real kernels) and in the kernel unit tests into the seed
corpora, one file per array: tests/fuzz/corpus/<target>/array_<Name>.

Usage (from the repository root): tests/fuzz/extract_seeds.py [OUT_DIR]
OUT_DIR defaults to tests/fuzz/corpus. Existing array_* files are overwritten.
"""

import pathlib
import re
import sys

# source file -> fuzz target whose parsers read those messages
SOURCES = {
    "kernel/testdata/veth_replies.inc": "fuzz_ethtool_reply",
    "kernel/testdata/virtio_rss_reply.inc": "fuzz_ethtool_reply",
    "kernel/ethtool_msg_test.cc": "fuzz_ethtool_reply",
    "kernel/testdata/netdev_replies.inc": "fuzz_netdev_reply",
    "kernel/netdev_genl_test.cc": "fuzz_netdev_reply",
}

ARRAY = re.compile(r"uint8_t\s+(k\w+)\[\]\s*=\s*\{([^}]*)\};", re.S)


def main() -> int:
    out = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "tests/fuzz/corpus")
    count = 0
    for source, target in SOURCES.items():
        text = pathlib.Path(source).read_text()
        # Drop comments, which may sit between the bytes.
        text = re.sub(r"//[^\n]*", "", text)
        for name, body in ARRAY.findall(text):
            values = [
                ord(v[1]) if v.startswith("'") else int(v, 0)
                for v in re.findall(r"0x[0-9a-fA-F]+|\d+|'[^'\\]'", body)
            ]
            if not values or any(v > 0xFF for v in values):
                sys.exit(f"extract_seeds: {source}: {name} is not a byte array")
            d = out / target
            d.mkdir(parents=True, exist_ok=True)
            (d / f"array_{name}").write_bytes(bytes(values))
            count += 1
    print(f"extract_seeds: wrote {count} files under {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
