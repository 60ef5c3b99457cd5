#!/usr/bin/env python3
"""A fleet of eight hosts on one machine, as root: each host is a network
namespace with its own devmemd (a simulated devmem NIC over a veth) and its own
devmem-agent on that namespace's address, running as an unprivileged uid. A
launcher namespace reaches them over a bridge, with the Python launcher
(client/examples/fleet_launcher.py) and certificates made by openssl.

 1. the launcher reserves on all hosts (all or nothing), over mTLS;
 2. on host 1 a workload running as uid nobody takes its token from
    DEVMEM_RESERVATION, binds, and receives 8 MiB checked byte by byte; without
    the token it cannot take the reserved queues; host 2's token is refused;
 3. all or nothing: with host 3 cordoned, a second job gets nothing anywhere;
 4. kill -9 of host 2's devmemd: its agent says UNAVAILABLE meanwhile, then the
    reservation is back and its token still works; kill -9 of host 4's agent
    loses nothing;
 5. a short TTL expires across processes and frees the queue, and its token is
    refused saying when it expired; Renew keeps another;
 6. with require_reservation, a workload without a token is refused;
 7. the launcher releases the job everywhere.
devmem-fleet over such a fleet is tests/fleet:fleet_cli_test.
Only namespaces, links and processes this test creates are touched."""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.getcwd(), "tests/fleet"))
import fleet_harness as h  # noqa: E402
import fleet_hosts as fh  # noqa: E402
from fleet_harness import check  # noqa: E402

HOSTS = 8
TAG = f"dmf{os.getpid() % 100000}"
NET = fh.NetnsNetwork(TAG, HOSTS, 78)
LAUNCHER_NS = NET.launcher_ns
LAUNCHER = os.path.join(h.REPO, "client/examples/fleet_launcher.py")
PEER = os.path.join(h.REPO, "tests/tools/pattern_peer")
sh = fh.sh
host_ip = NET.host_ip


class Fleet:
    def __init__(self, work):
        self.work = work
        os.chmod(work, 0o755)
        self.pki = os.path.join(work, "pki")
        h.make_pki(self.pki, *[host_ip(i) for i in range(1, HOSTS + 1)])
        self.gen = os.path.join(work, "gen")
        h.generate_stubs(self.gen)
        self.ctl = os.path.join(work, "devmemctl")
        shutil.copy(os.path.join(h.REPO, "client/devmemctl"), self.ctl)
        os.chmod(self.ctl, 0o755)
        NET.make()
        self.hosts = [fh.NetnsHost(NET, i, work, self.pki, pool_queues=3,
                                   roles={"observers": ["observer"],
                                          "launchers": ["launcher"],
                                          "operators": ["operator"]})
                      for i in range(1, HOSTS + 1)]
        self.nobody = self.hosts[0].nobody
        self.nogroup = self.hosts[0].nogroup
        for host in self.hosts:
            host.start_devmemd()
            host.start_agent()
        # An agent may answer before it has reached its devmemd (slower under
        # ASan): wait until a harmless call gets through on every host.
        deadline = time.time() + 30
        while self.launcher("--job", "probe", "--release",
                            *[x.address() for x in self.hosts])[0] != 0:
            if time.time() > deadline:
                raise RuntimeError("the hosts did not all answer in 30 s")
            time.sleep(0.2)

    def launcher(self, *args, cert="launcher"):
        argv = ["/usr/bin/python3", LAUNCHER, "--stubs", self.gen,
                "--ca", f"{self.pki}/ca.pem", "--cert", f"{self.pki}/{cert}.pem",
                "--key", f"{self.pki}/{cert}.key", "--json", "--timeout", "5",
                *args]
        r = sh(*argv, ns=LAUNCHER_NS, check=False)
        return r.returncode, json.loads(r.stdout) if r.stdout else {}, r.stderr

    def fleet_cli(self, *args, cert="launcher"):
        """devmem-fleet in the launcher namespace."""
        argv = [os.path.join(h.REPO, "client/fleet/devmem-fleet"), *args,
                f"--ca={self.pki}/ca.pem", f"--cert={self.pki}/{cert}.pem",
                f"--key={self.pki}/{cert}.key"]
        r = sh(*argv, ns=LAUNCHER_NS, check=False)
        out = json.loads(r.stdout) if "--json" in args and r.stdout else r.stdout
        return r.returncode, out, r.stderr

    def client(self, host, name="operator"):
        """A fleet.v1 client in the launcher namespace (by entering it)."""
        return h.Client(host.address(), self.pki, name)

    def stop(self):
        for host in self.hosts:
            host.stop()


def receive(fleet, host, port, token, queues=1):
    """A nobody listener on host (DEVMEM_RESERVATION=token unless empty) that
    checks 8 MiB of the pattern sent from the launcher namespace."""
    env = ["env"] + ([f"DEVMEM_RESERVATION={token}"] if token else [])
    argv = ["ip", "netns", "exec", host.ns, "setpriv",
            f"--reuid={fleet.nobody}", f"--regid={fleet.nogroup}",
            "--clear-groups", "--", *env, fleet.ctl, f"--runtime_dir={host.run}",
            "listen", f"--nic={host.nic}", f"--addr={host_ip(host.i)}",
            f"--port={port}", "--bind_memfd_mb=4", f"--queues={queues}",
            "--expect_pattern"]
    listener = subprocess.Popen(argv, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 10
    while time.time() < deadline and listener.poll() is None:
        ss = sh("ss", "-Hltn", f"sport = :{port}", ns=host.ns).stdout
        if "LISTEN" in ss:
            break
        time.sleep(0.05)
    if listener.poll() is not None:
        out, err = listener.communicate()
        return listener.returncode, out + err
    sh(PEER, "send", f"--to={host_ip(host.i)}:{port}", f"--bytes={8 << 20}",
       ns=LAUNCHER_NS)
    out, err = listener.communicate(timeout=30)
    return listener.returncode, out + err


def main():
    why = fh.netns_unavailable()
    if why:
        print(f"SKIPPED: fleet_netns_test: {why}; run as root")
        return 0
    work = tempfile.mkdtemp(prefix="devmem-fleet.")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("SIGTERM"))  # cleans up
    fleet = None
    error = None
    try:
        fleet = Fleet(work)
        hosts = fleet.hosts
        addrs = [x.address() for x in hosts]

        print(f"--- 1. reserve on all {HOSTS} hosts", flush=True)
        rc, out, err = fleet.launcher("--job", "train-1", "--queues", "1",
                                      "--ttl", "600", *addrs)
        check(rc == 0 and len(out["hosts"]) == HOSTS,
              f"the launcher reserved on {HOSTS} hosts (rc {rc}) {err} "
              f"{out.get('failures')}")
        tokens = {a: r["token"] for a, r in out.get("hosts", {}).items()}
        check(len(set(tokens.values())) == HOSTS and
              all(t.startswith("dmr1-") for t in tokens.values()),
              "each host gave its own token")

        print("--- 2. a workload as nobody redeems on host 1", flush=True)
        rc, text = receive(fleet, hosts[0], 7401, "", queues=3)
        check(rc != 0 and "RESOURCE_EXHAUSTED" in text,
              "without the token the reserved queue is not taken")
        rc, text = receive(fleet, hosts[0], 7402, tokens[addrs[1]])
        check(rc != 0 and "FAILED_PRECONDITION" in text,
              "host 2's token is refused on host 1: " +
              [l for l in text.splitlines() if "FAILED_PRECONDITION" in l][0][-160:])
        rc, text = receive(fleet, hosts[0], 7403, tokens[addrs[0]])
        check(rc == 0 and "8388608" in text,
              "with DEVMEM_RESERVATION it binds and receives 8 MiB, checked")

        NET.enter_launcher()
        op = {x.i: fleet.client(x) for x in hosts}

        print("--- 3. all or nothing", flush=True)
        code, _ = op[3].code(op[3].stub.Cordon, op[3].pb.CordonRequest(
            reason="rack 3 maintenance"))
        rc, out, err = fleet.launcher("--job", "train-2", "--queues", "1", *addrs)
        check(rc == 1 and list(out["failures"]) == [addrs[2]] and
              "rack 3 maintenance" in out["failures"][addrs[2]],
              f"a cordoned host fails the job: {out.get('failures')}")
        left = sum(len(c.code(c.stub.ListReservations, c.pb.ListReservationsRequest(
            job_id="train-2"))[1].reservations) for c in op.values())
        check(left == 0, "nothing of the failed job is left on any host")
        op[3].code(op[3].stub.Uncordon, op[3].pb.UncordonRequest())

        print("--- 4. kill -9", flush=True)
        h2 = hosts[1]
        h2.devmemd.stop(signal.SIGKILL)
        code, detail = op[2].code(op[2].stub.ListReservations,
                                  op[2].pb.ListReservationsRequest())
        check(code == "UNAVAILABLE", f"devmemd down: the agent says {code}")
        h2.start_devmemd()
        deadline, listed = time.time() + 15, None
        while time.time() < deadline:
            code, listed = op[2].code(op[2].stub.ListReservations,
                                      op[2].pb.ListReservationsRequest())
            if code == "OK":
                break
            time.sleep(0.2)
        check(code == "OK" and [r.job_id for r in listed.reservations] == ["train-1"],
              "after devmemd's kill -9 the reservation is back through the agent")
        rc, text = receive(fleet, h2, 7406, tokens[addrs[1]])
        check(rc == 0 and "8388608" in text,
              "... and its token still works on host 2 (8 MiB received)")
        hosts[3].agent.stop(signal.SIGKILL)
        hosts[3].start_agent()
        op[4] = fleet.client(hosts[3])
        code, listed = op[4].code(op[4].stub.ListReservations,
                                  op[4].pb.ListReservationsRequest())
        check(code == "OK" and len(listed.reservations) == 1,
              "after the agent's kill -9 it serves again, nothing lost")

        print("--- 5. TTL across processes", flush=True)
        launcher3 = h.Client(hosts[2].address(), fleet.pki, "launcher")
        code, short = launcher3.reserve("short", nic=hosts[2].nic, ttl=2)
        code, kept = launcher3.reserve("kept", nic=hosts[2].nic, ttl=2)
        time.sleep(1)
        launcher3.code(launcher3.stub.Renew, launcher3.pb.RenewRequest(
            id=kept.reservation.id, ttl_s=600))
        time.sleep(3)
        code, listed = launcher3.code(launcher3.stub.ListReservations,
                                      launcher3.pb.ListReservationsRequest())
        states = {r.job_id: r.state for r in listed.reservations}
        check(states.get("short") == 2 and states.get("kept") == 1,
              f"the short TTL expired, the renewed one did not: {states}")
        host3 = op[3].code(op[3].stub.GetHost, op[3].pb.GetHostRequest())[1]
        nic3 = [n for n in host3.nics if n.name == hosts[2].nic][0]
        check(nic3.pool_total == 3 and nic3.pool_free == 1 and nic3.pool_reserved == 2,
              "expiry gave the short one's queue back; train-1 and kept hold one "
              f"each: free {nic3.pool_free}, reserved {nic3.pool_reserved}")
        rc, text = receive(fleet, hosts[2], 7405, short.token)
        check(rc != 0 and "expired" in text,
              "the token of an expired reservation is refused, saying when: " +
              [l for l in text.splitlines() if "expired" in l][0][-160:])
        launcher3.close()

        print("--- 6. require_reservation", flush=True)
        hosts[0].devmemd.stop()
        hosts[0].start_devmemd("require_reservation: true\n")
        rc, text = receive(fleet, hosts[0], 7404, "")
        check(rc != 0 and "FAILED_PRECONDITION" in text,
              "with require_reservation a binding without a token is refused")

        print("--- 7. release everywhere", flush=True)
        rc, out, err = fleet.launcher("--job", "train-1", "--release", *addrs)
        check(rc == 0 and all(len(v) == 1 for v in out["hosts"].values()),
              f"released on every host: {out.get('hosts')}")
        for c in op.values():
            c.close()
    except Exception as e:  # noqa: BLE001  (reported, then raised)
        error = e
        raise
    finally:
        procs = []
        if fleet is not None:
            fleet.stop()
            procs = [p for x in fleet.hosts for p in (x.devmemd, x.agent)]
        code = h.finish("fleet_netns_test", procs, error)
        NET.drop()
        shutil.rmtree(work, ignore_errors=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
