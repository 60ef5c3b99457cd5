#!/usr/bin/env python3
"""fleet_bench: one fleet host in a private network namespace, as root:
devmemd on the simulated backend (journal on --state_dir's disk) and
devmem-agent as an unprivileged uid on 127.0.0.1:7443, with certificates made
by openssl. bench/fleet_bench.cc (C++, mTLS 1.3) then measures
 1. on two NICs like a GPU server's (16 channels, 8 in the pool):
    Reserve+Release against a bare GetHost on the same channel, and the
    journal disk's write+fdatasync;
 2. after devmemd restarts with 10 NICs of 1,000 pool queues (the agent
    reconnects by itself): the agent's memory idle and with --fill
    reservations held.
Everything it creates is removed at the end."""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.getcwd(), "tests/fleet"))
import fleet_harness as h  # noqa: E402

AGENT_UID = 64999
NICS = [f"dmq{i}" for i in range(10)]
SMALL_NICS = ["dms0", "dms1"]
POOL = 1000


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--iterations", type=int, default=2000)
    p.add_argument("--warmup", type=int, default=200)
    p.add_argument("--fill", type=int, default=10000)
    p.add_argument("--state_dir", default="/var/tmp",
                   help="where devmemd's journal goes (its disk's fsync counts)")
    args = p.parse_args()
    if os.getuid() != 0:
        print("SKIPPED: fleet_bench needs root (a network namespace, veth "
              "links, setpriv); run it as root")
        return 0
    ns = f"dmfb-{os.getpid()}"
    work = tempfile.mkdtemp(prefix="devmem-fleet-bench.", dir=args.state_dir)
    os.chmod(work, 0o755)
    procs = []
    try:
        subprocess.run(["ip", "netns", "add", ns], check=True)
        batch = "\n".join([f"link add {n} type veth peer name {n}p\nlink set {n} up"
                           for n in NICS + SMALL_NICS]
                          + ["link set lo up"])
        subprocess.run(["ip", "-n", ns, "-batch", "-"], input=batch.encode(),
                       check=True)
        pki = os.path.join(work, "pki")
        h.make_pki(pki)
        nogroup = int(subprocess.run(["getent", "group", "nogroup"],
                                     capture_output=True, text=True,
                                     check=True).stdout.split(":")[2])
        run = os.path.join(work, "run")

        def start_devmemd(nics, pool, channels, name):
            config = os.path.join(work, f"{name}.textproto")
            with open(config, "w") as f:
                f.write(f"allow_uids: [0, {AGENT_UID}]\nadmin_uids: {AGENT_UID}\n"
                        'socket_group: "nogroup"\nnic_backend: "simulated"\n'
                        f"max_reservations: {args.fill + 100}\n")
                for n in nics:
                    f.write(f'nic_profiles {{ nic: "{n}" pool_queues: {pool} '
                            f"combined_channels: {channels} }}\n")
            d = h.Process([h.DEVMEMD, f"--config={config}", f"--runtime_dir={run}",
                           f"--state_dir={work}/state-{name}", "--dbus="],
                          os.path.join(work, f"{name}.log"), ns)
            procs.append(d)
            d.wait_for("ready: ", timeout=60)
            return d

        # 1. A host like a real GPU server's NIC pair: 16 channels, 8 in the pool.
        devmemd = start_devmemd(SMALL_NICS, 8, 16, "small")
        agent_config = os.path.join(work, "agent.textproto")
        h.write_agent_config(agent_config, pki, os.path.join(run, "grpc.sock"),
                             "127.0.0.1:7443", {"launchers": ["launcher"]})
        agent = h.Process(["setpriv", f"--reuid={AGENT_UID}", f"--regid={nogroup}",
                           "--clear-groups", "--", h.AGENT,
                           f"--config={agent_config}"],
                          os.path.join(work, "agent.log"), ns)
        procs.append(agent)
        agent.wait_for("serving fleet.v1 on ")
        print(f"fleet_bench: devmemd (simulated {', '.join(SMALL_NICS)}: 16 "
              f"channels, pool of 8; journal in {work}) and devmem-agent "
              f"(uid {AGENT_UID}) in namespace {ns}", flush=True)
        client = [os.path.join(os.getcwd(), "bench/fleet_bench_client"),
                  "--target=127.0.0.1:7443", f"--pki={pki}",
                  f"--agent_pid={agent.proc.pid}"]
        rc = subprocess.run(
            ["ip", "netns", "exec", ns, *client, "--phase=latency",
             f"--nics={SMALL_NICS[0]}", f"--iterations={args.iterations}",
             f"--warmup={args.warmup}", f"--journal_dir={work}"]).returncode
        if rc == 0:
            # 2. Enough queues for --fill reservations: devmemd restarts with
            # 10 NICs of 1,000 pool queues; the agent reconnects by itself.
            devmemd.stop()
            procs.remove(devmemd)
            devmemd = start_devmemd(NICS, POOL, POOL + 1, "big")
            print(f"fleet_bench: devmemd restarted with {len(NICS)} NICs x {POOL} "
                  "pool queues; the agent reconnected", flush=True)
            rc = subprocess.run(
                ["ip", "netns", "exec", ns, *client, "--phase=memory",
                 f"--nics={','.join(NICS)}", f"--fill={args.fill}"]).returncode
        if rc != 0:
            print(devmemd.text()[-2000:], agent.text()[-2000:], sep="\n")
        return rc
    finally:
        for proc in reversed(procs):
            proc.stop()
        subprocess.run(["ip", "netns", "del", ns], check=False)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
