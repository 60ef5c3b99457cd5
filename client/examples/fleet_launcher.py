#!/usr/bin/env python3
"""A job launcher's view of devmem-agent, in Python (docs/FLEET.md).

Reserves devmem queues for a job on every host given, all or nothing, prints
each host's token (the workload's DEVMEM_RESERVATION), and releases them
again with --release. Uses Debian's python3-grpcio with stubs generated from
proto/fleet/v1/fleet.proto by the system protoc and grpc_python_plugin:

  protoc -I. --python_out=GEN --grpc_out=GEN \
    --plugin=protoc-gen-grpc=/usr/bin/grpc_python_plugin \
    proto/fleet/v1/fleet.proto proto/devmem/v1/devmem.proto

  fleet_launcher.py --stubs GEN --ca ca.pem --cert launcher.pem \
    --key launcher.key --job train-42 --queues 1 --ttl 600 \
    10.0.0.1:7443 10.0.0.2:7443
"""
import argparse
import json
import sys
import uuid


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("hosts", nargs="+", help="agents as HOST:PORT")
    p.add_argument("--stubs", required=True, help="where the generated stubs are")
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
    p.add_argument("--release", action="store_true",
                   help="release the job's reservations instead")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    return p.parse_args(argv)


class Fleet:
    """One mTLS channel and stub per agent."""

    def __init__(self, args):
        sys.path.insert(0, args.stubs)
        import grpc
        from proto.fleet.v1 import fleet_pb2, fleet_pb2_grpc
        from proto.devmem.v1 import devmem_pb2
        self.grpc, self.pb, self.devmem = grpc, fleet_pb2, devmem_pb2
        with open(args.ca, "rb") as f:
            ca = f.read()
        with open(args.cert, "rb") as f:
            cert = f.read()
        with open(args.key, "rb") as f:
            key = f.read()
        creds = grpc.ssl_channel_credentials(ca, key, cert)
        opts = [("grpc.ssl_target_name_override", args.server_name)]
        self.timeout = args.timeout
        self.stubs = {}
        for host in args.hosts:
            channel = grpc.secure_channel(host, creds, options=opts)
            self.stubs[host] = fleet_pb2_grpc.FleetStub(channel)

    def get_host(self, host):
        return self.stubs[host].GetHost(self.pb.GetHostRequest(), timeout=self.timeout)

    def pick_nic(self, host, queues):
        """The first NIC with that many free pool queues."""
        info = self.get_host(host)
        if not info.devmemd_reachable:
            raise RuntimeError(f"{host}: devmemd is unreachable: {info.devmemd_error}")
        for nic in info.nics:
            if nic.pool_free >= queues:
                return nic.name
        raise RuntimeError(f"{host}: no NIC has {queues} free devmem queue(s)")

    def reserve(self, host, job, nic, queues, ttl, request_id):
        req = self.pb.ReserveRequest(
            job_id=job, request_id=request_id, ttl_s=ttl,
            items=[self.devmem.ReservationItem(nic=nic, queue_count=queues)])
        return self.stubs[host].Reserve(req, timeout=self.timeout)

    def release(self, host, job):
        return self.stubs[host].Release(self.pb.ReleaseRequest(job_id=job),
                                        timeout=self.timeout)


def reserve_all(fleet, args):
    """All or nothing: on any failure, release what was made and fail."""
    request_id = uuid.uuid4().hex  # a retry of this run returns the same tokens
    made, failures = {}, {}
    for host in args.hosts:
        try:
            nic = args.nic or fleet.pick_nic(host, args.queues)
            resp = fleet.reserve(host, args.job, nic, args.queues, args.ttl, request_id)
            made[host] = {
                "id": resp.reservation.id,
                "token": resp.token,
                "nic": resp.reservation.items[0].nic,
                "queues": list(resp.reservation.items[0].queues),
                "expires_unix_ms": resp.reservation.expires_unix_ms,
            }
        except fleet.grpc.RpcError as e:
            failures[host] = f"{e.code().name}: {e.details()}"
        except RuntimeError as e:
            failures[host] = str(e)
    if failures:
        for host in made:
            try:
                fleet.release(host, args.job)
            except fleet.grpc.RpcError as e:
                failures[host] = f"rollback failed ({e.details()}); the TTL frees it"
    return made, failures


def main(argv):
    args = parse_args(argv)
    fleet = Fleet(args)
    if args.release:
        out, failures = {}, {}
        for host in args.hosts:
            try:
                out[host] = list(fleet.release(host, args.job).released)
            except fleet.grpc.RpcError as e:
                failures[host] = f"{e.code().name}: {e.details()}"
    else:
        out, failures = reserve_all(fleet, args)
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
