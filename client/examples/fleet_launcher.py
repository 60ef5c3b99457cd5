#!/usr/bin/env python3
"""A job launcher's view of devmem-agent, in Python (docs/FLEET.md).

Reserves devmem queues for a job on every host given, all or nothing (with
the devmem_fleet package of client/python, which this wraps), prints each
host's token (the workload's DEVMEM_RESERVATION), and releases them again
with --release. Uses Debian's python3-grpcio; outside Bazel, the stubs are
generated from proto/ by the system protoc and grpc_python_plugin:

  protoc -I. --python_out=GEN --grpc_out=GEN \
    --plugin=protoc-gen-grpc=/usr/bin/grpc_python_plugin \
    proto/fleet/v1/fleet.proto proto/devmem/v1/devmem.proto

  fleet_launcher.py --stubs GEN --ca ca.pem --cert launcher.pem \
    --key launcher.key --job train-42 --queues 1 --ttl 600 \
    10.0.0.1:7443 10.0.0.2:7443
"""
import argparse
import json
import os
import sys
import uuid


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("hosts", nargs="+", help="agents as HOST:PORT")
    p.add_argument("--stubs", default=None,
                   help="where the generated stubs are (default: the ones "
                   "built into devmem_fleet)")
    p.add_argument("--ca", required=True, help="the fleet CA bundle (PEM)")
    p.add_argument("--cert", required=True, help="this launcher's certificate")
    p.add_argument("--key", required=True, help="its private key")
    p.add_argument("--server-name", default="devmem-agent",
                   help="the name in the agents' certificates (default %(default)s)")
    p.add_argument("--job", required=True, help="the job id")
    p.add_argument("--queues", type=int, default=1, help="queues per host")
    p.add_argument("--nic", default="", help="reserve on this NIC (default: "
                   "the host's first NIC with a free devmem pool)")
    p.add_argument("--ttl", type=int, default=600, help="seconds")
    p.add_argument("--timeout", type=float, default=10.0, help="per host, seconds")
    p.add_argument("--request-id", default=uuid.uuid4().hex,
                   help="idempotency key: a rerun with the same job and key "
                   "gets the same reservations (default: new for each run)")
    p.add_argument("--release", action="store_true",
                   help="release the job's reservations instead")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    return p.parse_args(argv)


def reserve(fleet, args):
    """All or nothing, with devmem_fleet's gang reserve: on any failure the
    attempt is rolled back everywhere (this run's reservations only)."""
    gang = fleet.reserve(args.job, queues=args.queues, ttl_s=args.ttl,
                         nic=args.nic, request_id=args.request_id)
    if not gang.ok:
        return {}, {h.host: h.error for h in gang.hosts if not h.reserved}
    made = {}
    for h in gang.hosts:
        r = h.reservation
        made[h.host] = {"id": r.id, "token": h.token, "nic": r.items[0].nic,
                        "queues": list(r.items[0].queues),
                        "expires_unix_ms": r.expires_unix_ms}
    return made, {}


def main(argv):
    args = parse_args(argv)
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                    "..", "python"))
    from devmem_fleet import Fleet, FleetError
    try:
        fleet = Fleet(args.hosts, ca=args.ca, cert=args.cert, key=args.key,
                      server_name=args.server_name, timeout=args.timeout,
                      stubs=args.stubs)
    except FleetError as e:
        print(f"fleet_launcher: {e}", file=sys.stderr)
        return 2
    with fleet:
        if args.release:
            got = fleet.release(args.job)
            out = {h: v for h, v in got.items() if not isinstance(v, str)}
            failures = {h: v for h, v in got.items() if isinstance(v, str)}
        else:
            out, failures = reserve(fleet, args)
    if args.json:
        print(json.dumps({"job": args.job, "hosts": out, "failures": failures},
                         indent=2, sort_keys=True))
    else:
        for host, r in sorted(out.items()):
            if args.release:
                print(f"{host}\treleased {len(r)}")
            else:
                print(f"{host}\t{r['nic']} queues {r['queues']}\t"
                      f"DEVMEM_RESERVATION={r['token']}")
        for host, why in sorted(failures.items()):
            print(f"{host}\tFAILED {why}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
