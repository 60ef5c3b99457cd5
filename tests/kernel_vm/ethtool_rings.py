#!/usr/bin/env python3
"""An independent ethtool-netlink witness for header split (bookworm's
ethtool 6.1 can show tcp-data-split but cannot set it, and knows nothing of
hds-thresh). Written from the uapi (KERNEL_API.md section 3), not from
devmemd's code.

  ethtool_rings.py get IFNAME            -> "tcp_data_split=N hds_thresh=N"
  ethtool_rings.py set IFNAME [tcp_data_split=N] [hds_thresh=N]

tcp_data_split: 0 unknown, 1 off, 2 on; hds_thresh is "-" if the driver does
not report it. Exit status 1 with the kernel's errno on failure.
"""
import os
import socket
import struct
import sys

NETLINK_GENERIC = 16
GENL_ID_CTRL = 0x10
CTRL_CMD_GETFAMILY = 3
CTRL_ATTR_FAMILY_ID = 1
CTRL_ATTR_FAMILY_NAME = 2
NLM_F_REQUEST = 1
NLM_F_ACK = 4
NLMSG_ERROR = 2
NLA_F_NESTED = 0x8000
RINGS_GET, RINGS_SET = 15, 16
A_RINGS_HEADER, A_RINGS_TCP_DATA_SPLIT, A_RINGS_HDS_THRESH = 1, 11, 17
A_HEADER_DEV_INDEX = 1


def attr(kind, payload):
    n = 4 + len(payload)
    return struct.pack("=HH", n, kind) + payload + b"\0" * ((4 - n % 4) % 4)


def attrs(data):
    out = {}
    while len(data) >= 4:
        n, kind = struct.unpack_from("=HH", data)
        if n < 4:
            break
        out[kind & 0x3FFF] = data[4:n]
        data = data[(n + 3) & ~3:]
    return out


def request(sock, family, cmd, payload, flags):
    body = struct.pack("=BBH", cmd, 1, 0) + payload
    sock.send(struct.pack("=IHHII", 16 + len(body), family,
                          NLM_F_REQUEST | flags, 1, 0) + body)
    data = sock.recv(65536)
    n, kind = struct.unpack_from("=IH", data)
    if kind == NLMSG_ERROR:
        err = struct.unpack_from("=i", data, 16)[0]
        if err != 0:
            raise OSError(-err, os.strerror(-err))
        return {}
    return attrs(data[20:n])


def main():
    if len(sys.argv) < 3 or sys.argv[1] not in ("get", "set"):
        sys.exit(__doc__)
    ifindex = socket.if_nametoindex(sys.argv[2])
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_GENERIC)
    sock.bind((0, 0))
    fam = request(sock, GENL_ID_CTRL, CTRL_CMD_GETFAMILY,
                  attr(CTRL_ATTR_FAMILY_NAME, b"ethtool\0"), 0)
    family = struct.unpack("=H", fam[CTRL_ATTR_FAMILY_ID][:2])[0]
    header = attr(A_RINGS_HEADER | NLA_F_NESTED,
                  attr(A_HEADER_DEV_INDEX, struct.pack("=I", ifindex)))
    try:
        if sys.argv[1] == "get":
            got = request(sock, family, RINGS_GET, header, 0)
            split = got.get(A_RINGS_TCP_DATA_SPLIT, b"\0")[0]
            hds = got.get(A_RINGS_HDS_THRESH)
            print(f"tcp_data_split={split} hds_thresh="
                  + (str(struct.unpack("=I", hds)[0]) if hds else "-"))
            return
        payload = header
        for arg in sys.argv[3:]:
            key, value = arg.split("=")
            if key == "tcp_data_split":
                payload += attr(A_RINGS_TCP_DATA_SPLIT, struct.pack("=B", int(value)))
            elif key == "hds_thresh":
                payload += attr(A_RINGS_HDS_THRESH, struct.pack("=I", int(value)))
            else:
                sys.exit(f"unknown setting {key}")
        request(sock, family, RINGS_SET, payload, NLM_F_ACK)
    except OSError as e:
        sys.exit(f"ethtool rings {sys.argv[1]} {sys.argv[2]}: {e.strerror} (errno {e.errno})")


if __name__ == "__main__":
    main()
