#!/usr/bin/env python3
"""gang_bench: devmem-fleet's all-or-nothing reserve across 16, 64 and 256
hosts, against reserving one host after another (the same binary with
--parallel=1), in the same run. No root: everything is on loopback.

Hosts: the first 64 are real pairs, each a devmemd (simulated devmem NIC on
lo) and a devmem-agent; hosts 65..256 are devmem-agents in one book_agents
process, each relaying to an in-process reservation book instead of a
devmemd (the output says how many of each). Every run is a fresh
`devmem-fleet reserve` process (TLS handshakes included), timed from start
to exit; its job is then released, untimed. Printed per size: p50/p99 of
both, their ratio, and the launcher's peak RSS (ru_maxrss); then the same
gang from one long-lived launcher that keeps its TLS connections
(devmem_fleet), which is what a scheduler or a job service would run."""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.join(os.getcwd(), "tests/fleet"))
import fleet_harness as h  # noqa: E402

FLEET = os.path.join(os.getcwd(), "client/fleet/devmem-fleet")
BOOK = os.path.join(os.getcwd(), "bench/book_agents")
REAL = 64
PER_BOOK_PROCESS = 48


def percentile(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p * (len(xs) - 1) + 0.5))]


def run_fleet(pki, args, hosts, quiet=False):
    """(seconds, max RSS KiB, exit code) of one devmem-fleet process."""
    t0 = time.perf_counter()
    p = subprocess.Popen([FLEET, *args, f"--ca={pki}/ca.pem",
                          f"--cert={pki}/launcher.pem", f"--key={pki}/launcher.key",
                          "-"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE)
    p.stdin.write("\n".join(hosts).encode())
    p.stdin.close()
    _, status, usage = os.wait4(p.pid, 0)
    elapsed = time.perf_counter() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    err = p.stderr.read().decode()
    if p.returncode != 0 and not quiet:
        for log in sorted(os.listdir(os.path.dirname(pki))):
            if log.startswith("agent") and log.endswith(".log"):
                refused = [l for l in open(os.path.join(os.path.dirname(pki), log))
                           if "refused" in l]
                if refused:
                    print(f"gang_bench: {log}: {refused[-1].strip()}")
        bad = [l for l in err.splitlines() if "rolled back" not in l]
        print(f"gang_bench: devmem-fleet {' '.join(args)} failed:\n" + "\n".join(bad[-10:]))
    return elapsed, usage.ru_maxrss, p.returncode


def warm_gangs(pki, hosts, rounds):
    """(p50, p99) ms of gangs from one long-lived launcher whose TLS
    connections stay open (devmem_fleet, the Python client), after one
    untimed gang that opens them."""
    sys.path.insert(0, os.path.join(os.getcwd(), "client/python"))
    from devmem_fleet import Fleet
    times = []
    with Fleet(hosts, ca=f"{pki}/ca.pem", cert=f"{pki}/launcher.pem",
               key=f"{pki}/launcher.key", timeout=20, parallel=64) as fleet:
        for r in range(rounds + 1):
            job = f"warm-{len(hosts)}-{r}"
            t0 = time.perf_counter()
            gang = fleet.reserve(job, queues=1, ttl_s=30, nic="lo", attempts=1)
            elapsed = (time.perf_counter() - t0) * 1000
            fleet.release(job)
            if not gang.ok:
                print(f"gang_bench: warm gang failed: {list(gang.failures.items())[:3]}")
                return None
            if r > 0:
                times.append(elapsed)
    return percentile(times, 0.5), percentile(times, 0.99)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=15, help="gang runs per size")
    ap.add_argument("--sequential_rounds", type=int, default=5,
                    help="one-host-after-another runs per size")
    ap.add_argument("--sizes", default="16,64,256")
    args = ap.parse_args()
    sizes = [int(x) for x in args.sizes.split(",")]
    work = tempfile.mkdtemp(prefix="devmem-gang-bench.")
    procs, book = [], []
    try:
        pki = os.path.join(work, "pki")
        h.make_pki(pki)
        real = min(REAL, max(sizes))
        print(f"gang_bench: starting {real} devmemd + agent pairs", flush=True)

        def pair(i):
            d = h.start_devmemd(os.path.join(work, f"host{i}"), "lo",
                                extra_config="")
            config = os.path.join(work, f"agent{i}.textproto")
            h.write_agent_config(config, pki, os.path.join(work, f"host{i}/run/grpc.sock"),
                                 "127.0.0.1:0", {"launchers": ["launcher"]})
            a, addr, _ = h.start_agent(config, os.path.join(work, f"agent{i}.log"))
            return d, a, addr

        with ThreadPoolExecutor(8) as ex:
            pairs = list(ex.map(pair, range(real)))
        hosts = [addr for _, _, addr in pairs]
        for d, a, _ in pairs:
            procs += [a, d]
        books = max(sizes) - real
        if books > 0:
            print(f"gang_bench: starting {books} agents on in-process books, "
                  f"{PER_BOOK_PROCESS} per process", flush=True)
        for first in range(0, books, PER_BOOK_PROCESS):
            count = min(PER_BOOK_PROCESS, books - first)
            p = subprocess.Popen([BOOK, f"--count={count}", f"--pki={pki}",
                                  f"--dir={work}", f"--first={first}"],
                                 stdout=subprocess.PIPE, text=True)
            book.append(p)
            for line in p.stdout:
                if line.startswith("agent "):
                    hosts.append(line.split()[1])
                elif line.strip() == "ready":
                    break
        # Untimed: every agent connects to its devmemd or book once.
        deadline = time.time() + 60
        while True:
            _, _, rc = run_fleet(pki, ["hosts", "--timeout=20s"], hosts, quiet=True)
            if rc == 0 or time.time() > deadline:
                break
        for n in sizes:
            targets = hosts[:n]
            kind = (f"{min(n, real)} real devmemd+agent pairs" +
                    (f" + {n - real} agents on in-process books" if n > real else ""))
            results = {}
            for label, extra, rounds in [("gang (parallel)", [], args.rounds),
                                         ("one after another", ["--parallel=1"],
                                          args.sequential_rounds)]:
                times, rss = [], []
                for r in range(rounds):
                    job = f"gang-{n}-{label[:3]}-{r}"
                    t, m, rc = run_fleet(pki, ["reserve", f"--job={job}", "--nic=lo",
                                               "--ttl=30s", *extra], targets)
                    if rc != 0:
                        for b in book:
                            if b.poll() is not None:
                                print(f"gang_bench: a book_agents process exited "
                                      f"({b.returncode})")
                        for p in procs:
                            if not p.alive():
                                print(f"gang_bench: {p.log} exited "
                                      f"({p.proc.returncode}):\n{p.text()[-1500:]}")
                        return 1
                    times.append(t * 1000)
                    rss.append(m)
                    run_fleet(pki, ["release", f"--job={job}"], targets)
                results[label] = (percentile(times, 0.5), percentile(times, 0.99),
                                  max(rss))
            g, s = results["gang (parallel)"], results["one after another"]
            print(f"{n} hosts ({kind}):")
            for label, (p50, p99, rss) in results.items():
                print(f"  {label:18s} p50 {p50:8.1f} ms  p99 {p99:8.1f} ms  "
                      f"launcher peak RSS {rss / 1024:.1f} MiB")
            warm = warm_gangs(pki, targets, args.rounds)
            if warm:
                print(f"  {'gang, warm conns':18s} p50 {warm[0]:8.1f} ms  "
                      f"p99 {warm[1]:8.1f} ms  (one long-lived Python launcher, "
                      "devmem_fleet)")
            print(f"  ratio one-after-another / gang p50 = {s[0] / g[0]:.1f}x"
                  + ("  (goal for 256: gang p50 < 250 ms)" if n == 256 else ""),
                  flush=True)
        return 0
    finally:
        for p in book:
            p.terminate()
            p.wait()
        for p in procs:
            p.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
