#!/usr/bin/env python3
"""devmem-fleet (client/fleet) against real agents, no root needed: four hosts
on loopback, each a real devmemd (simulated devmem NIC on lo, a pool of 2
queues) with a real devmem-agent on its own 127.0.0.1 port, mutual TLS with
certificates made by openssl.

Covers: hosts (table and --json); an all-or-nothing reserve and its
idempotent retry; a host that is down (exit 1, 0 reserved queues left on
every host, asked host by host); a host that answers after the launcher's
deadline (nothing leaks: the provisional TTL ends it); two launchers
competing for the same queues (never both partial); renew, release; cordon,
drain in waves, uncordon; watch tagged by host; usage errors (exit 2)."""
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.getcwd(), "tests/fleet"))
import fleet_harness as h  # noqa: E402
from fleet_harness import check  # noqa: E402

FLEET = os.path.join(h.REPO, "client/fleet/devmem-fleet")
HOSTS = 4


class Env:
    def __init__(self, work):
        self.work = work
        self.pki = os.path.join(work, "pki")
        h.make_pki(self.pki)
        h.generate_stubs(os.path.join(work, "gen"))
        self.devmemd, self.agents, self.addrs = [], [], []
        for i in range(HOSTS):
            d = h.start_devmemd(os.path.join(work, f"host{i}"), "lo")
            config = os.path.join(work, f"agent{i}.textproto")
            h.write_agent_config(config, self.pki,
                                 os.path.join(work, f"host{i}/run/grpc.sock"),
                                 "127.0.0.1:0",
                                 {"launchers": ["launcher", "launcher2"],
                                  "operators": ["operator"]},
                                 "devmemd_timeout_ms: 20000\n")
            a, addr, _ = h.start_agent(config, os.path.join(work, f"agent{i}.log"))
            # Restarts keep the port the first start took.
            with open(config) as f:
                text = f.read()
            with open(config, "w") as f:
                f.write(re.sub(r'^listen: .*$', f'listen: "{addr}"', text, flags=re.M))
            self.devmemd.append(d)
            self.agents.append(a)
            self.addrs.append(addr)

    def fleet(self, *args, who="launcher", hosts=None, timeout=60):
        env = dict(os.environ, DEVMEM_FLEET_CA=f"{self.pki}/ca.pem",
                   DEVMEM_FLEET_CERT=f"{self.pki}/{who}.pem",
                   DEVMEM_FLEET_KEY=f"{self.pki}/{who}.key")
        r = subprocess.run([FLEET, *args, *(self.addrs if hosts is None else hosts)],
                           capture_output=True, text=True, env=env, timeout=timeout)
        try:
            out = json.loads(r.stdout) if "--json" in args else r.stdout
        except json.JSONDecodeError:
            out = r.stdout
        return r.returncode, out, r.stderr

    def reserved_per_host(self):
        """Reserved + bound pool queues on each host, asked host by host."""
        rc, out, err = self.fleet("hosts", "--json", who="operator")
        assert rc == 0, err
        return [sum(n["pool_total"] - n["pool_free"] for n in hst["info"]["nics"])
                for hst in out["hosts"]]

    def stop(self):
        for p in self.agents + self.devmemd:
            p.stop()

    def processes(self):
        return self.agents + self.devmemd


def test_hosts(env):
    rc, out, err = env.fleet("hosts", who="operator")
    lines = out.strip().splitlines()
    check(rc == 0 and len(lines) == 1 + HOSTS and "lo 2/0/2" in lines[1],
          f"hosts: a table row per host: {lines[:2]}")
    rc, out, err = env.fleet("hosts", "--json", who="operator")
    check(rc == 0 and [x["host"] for x in out["hosts"]] == env.addrs and
          all(x["info"]["health"] == "ready" for x in out["hosts"]),
          "hosts --json: every host, ready")


def test_reserve_all_and_retry(env):
    rc, out, err = env.fleet("reserve", "--job", "gang-1", "--queues", "1",
                             "--ttl", "10m", "--json")
    tokens = [x.get("token", "") for x in out["hosts"]]
    check(rc == 0 and out["ok"] and all(t.startswith("dmr1-") for t in tokens),
          f"a gang reservation succeeds on {HOSTS} hosts ({err.strip()})")
    check(env.reserved_per_host() == [1] * HOSTS, "each host holds 1 queue")
    rc, again, err = env.fleet("reserve", "--job", "gang-1", "--queues", "1",
                               "--ttl", "10m", "--json")
    check(rc == 0 and [x["token"] for x in again["hosts"]] == tokens and
          env.reserved_per_host() == [1] * HOSTS,
          "a retry with the same job id returns the same tokens, reserves nothing more")
    exp = [int(x["reservation"]["expires_unix_ms"]) for x in again["hosts"]]
    check(all(e > time.time() * 1000 + 500_000 for e in exp),
          "the provisional TTL was renewed to --ttl")
    rc, out, err = env.fleet("renew", "--job", "gang-1", "--ttl", "20m", "--json")
    check(rc == 0 and all(len(x["reservations"]) == 1 for x in out["hosts"]),
          "renew renews the job everywhere")
    rc, out, err = env.fleet("release", "--job", "gang-1", "--json")
    check(rc == 0 and env.reserved_per_host() == [0] * HOSTS, "release everywhere")
    rc, out, err = env.fleet("release", "--job", "gang-1")
    check(rc == 0 and out.count("released 0") == HOSTS, "release is idempotent")


def test_host_down(env):
    env.agents[2].stop()
    rc, out, err = env.fleet("reserve", "--job", "gang-2", "--timeout", "2s", "--json")
    failed = [x["host"] for x in out["hosts"] if not x["ok"]]
    check(rc == 1 and not out["ok"] and env.addrs[2] in failed and
          "UNAVAILABLE" in [x for x in out["hosts"] if x["host"] == env.addrs[2]][0]["error"],
          f"a host down fails the gang, exit 1, naming it: {err.strip()[-200:]}")
    up = [a for i, a in enumerate(env.addrs) if i != 2]
    rc, hosts, _ = env.fleet("hosts", "--json", who="operator", hosts=up)
    left = [sum(n["pool_total"] - n["pool_free"] for n in x["info"]["nics"])
            for x in hosts["hosts"]]
    check(left == [0, 0, 0], f"the rollback leaves 0 reserved queues on each host: {left}")
    env.agents[2] = h.start_agent(os.path.join(env.work, "agent2.textproto"),
                                  os.path.join(env.work, "agent2.log"))[0]


def test_slow_host(env):
    slow = env.devmemd[1]
    slow.send(signal.SIGSTOP)
    threading.Timer(2.5, lambda: slow.send(signal.SIGCONT)).start()
    t0 = time.time()
    rc, out, err = env.fleet("reserve", "--job", "gang-3", "--timeout", "1s",
                             "--ttl", "4s", "--attempts", "1", "--json")
    check(rc == 1 and out["provisional_ttl_s"] == 4,
          f"a host past the deadline fails the gang (provisional TTL "
          f"{out.get('provisional_ttl_s')} s)")
    time.sleep(max(0, t0 + 8 - time.time()))
    rc, hosts, _ = env.fleet("hosts", "--json", who="operator")
    check(env.reserved_per_host() == [0] * HOSTS,
          "whatever the slow host reserved late is gone (released or expired)")


def test_competing_launchers(env):
    results = {}

    def run(who, job):
        results[job] = env.fleet("reserve", "--job", job, "--queues", "2",
                                 "--attempts", "4", "--json", who=who)

    threads = [threading.Thread(target=run, args=("launcher", "race-a")),
               threading.Thread(target=run, args=("launcher2", "race-b"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    oks = [job for job, (rc, out, _) in results.items() if rc == 0]
    check(len(oks) <= 1, f"never both: {oks}")
    per_host = env.reserved_per_host()
    check(per_host in ([0] * HOSTS, [2] * HOSTS) and (per_host[0] == 2) == bool(oks),
          f"no partial set is left: {per_host} (winner {oks})")
    for job in ("race-a", "race-b"):
        env.fleet("release", "--job", job, who="operator")


def test_cordon_drain_watch(env):
    rc, out, err = env.fleet("cordon", "--reason", "kernel upgrade", who="operator")
    check(rc == 0 and out.count("cordoned (kernel upgrade") == HOSTS, "cordon all")
    rc, out, err = env.fleet("reserve", "--job", "while-cordoned", "--json",
                             "--nic", "lo")
    check(rc == 1 and "cordoned" in out["hosts"][0]["error"],
          "a cordoned fleet refuses a gang")
    rc, out, err = env.fleet("uncordon", who="operator")
    check(rc == 0 and out.count("schedulable") == HOSTS, "uncordon all")
    env.fleet("reserve", "--job", "drain-me", "--nic", "lo")
    release = threading.Timer(1.0, lambda: env.fleet("release", "--job", "drain-me"))
    release.start()
    rc, out, err = env.fleet("drain", "--reason", "upgrade", "--max_unavailable",
                             "2", "--deadline", "20s", "--json", who="operator")
    release.join()
    check(rc == 0 and all(x["drain"]["done"] for x in out["hosts"]),
          "drain in waves of 2 completes once the job releases")
    watcher = subprocess.Popen(
        [FLEET, "watch", "--json", "--count", str(HOSTS), *env.addrs],
        stdout=subprocess.PIPE, text=True,
        env=dict(os.environ, DEVMEM_FLEET_CA=f"{env.pki}/ca.pem",
                 DEVMEM_FLEET_CERT=f"{env.pki}/operator.pem",
                 DEVMEM_FLEET_KEY=f"{env.pki}/operator.key"))
    time.sleep(1.5)
    env.fleet("uncordon", who="operator")
    out, _ = watcher.communicate(timeout=20)
    lines = [json.loads(l) for l in out.splitlines() if l.strip()]
    events = [l for l in lines if "event" in l]
    check(watcher.returncode == 0 and
          sorted(l["host"] for l in events) == sorted(env.addrs) and
          all(l["event"]["type"] == "host.uncordoned" for l in events),
          f"watch: one host.uncordoned per host, tagged ({len(lines)} lines)")


def test_python_client(env):
    """devmem_fleet (client/python) does what the CLI does."""
    sys.path.insert(0, os.path.join(h.REPO, "client/python"))
    from devmem_fleet import Fleet
    with Fleet(env.addrs, ca=f"{env.pki}/ca.pem", cert=f"{env.pki}/launcher.pem",
               key=f"{env.pki}/launcher.key", timeout=5) as fleet:
        gang = fleet.reserve("py-gang", queues=1, ttl_s=600)
        check(gang.ok and len(gang.tokens) == HOSTS and
              all(t.startswith("dmr1-") for t in gang.tokens.values()),
              "python: a gang reservation succeeds")
        again = fleet.reserve("py-gang", queues=1, ttl_s=600)
        check(again.tokens == gang.tokens and env.reserved_per_host() == [1] * HOSTS,
              "python: a retry with the same job id returns the same tokens")
        env.agents[3].stop()
        failed = fleet.reserve("py-gang-2", queues=1, ttl_s=600)
        check(not failed.ok and "UNAVAILABLE" in failed.failures[env.addrs[3]],
              f"python: a host down fails the gang: {failed.failures}")
        env.agents[3] = h.start_agent(os.path.join(env.work, "agent3.textproto"),
                                      os.path.join(env.work, "agent3.log"))[0]
        check(env.reserved_per_host() == [1] * HOSTS,
              "python: the failed gang left nothing (py-gang's queue only)")
        released = fleet.release("py-gang")
        check(all(len(v) == 1 for v in released.values()) and
              env.reserved_per_host() == [0] * HOSTS, "python: release everywhere")


def test_usage(env):
    for args, what in [(["reserve"], "--job is required"),
                       (["reserve", "--job", "x", "--ttl", "0s"], "--ttl"),
                       (["frobnicate"], "unknown command"),
                       (["hosts", "not-a-host"], "is not HOST:PORT"),
                       (["cordon"], "--reason is required")]:
        r = subprocess.run([FLEET, *args] + ([] if "not-a-host" in args else env.addrs),
                           capture_output=True, text=True,
                           env=dict(os.environ, DEVMEM_FLEET_CA=f"{env.pki}/ca.pem",
                                    DEVMEM_FLEET_CERT=f"{env.pki}/launcher.pem",
                                    DEVMEM_FLEET_KEY=f"{env.pki}/launcher.key"))
        check(r.returncode == 2 and what in r.stderr,
              f"usage: {' '.join(args)} -> exit {r.returncode}: {r.stderr.strip()}")
    flags = os.path.join(env.work, "fleet.flags")
    with open(flags, "w") as f:
        f.write(f"--ca={env.pki}/ca.pem\n--cert={env.pki}/observer.pem\n"
                f"--key={env.pki}/observer.key\n")
    r = subprocess.run([FLEET, "hosts", f"--flagfile={flags}", env.addrs[0]],
                       capture_output=True, text=True,
                       env={"PATH": os.environ.get("PATH", "")})
    check(r.returncode == 1 and "PERMISSION_DENIED" in r.stderr,
          "credentials from --flagfile (the observer has no role on these agents)")
    r = subprocess.run([FLEET, "hosts", env.addrs[0]], capture_output=True, text=True,
                       env={"PATH": os.environ.get("PATH", "")})
    check(r.returncode == 2 and "DEVMEM_FLEET_CA" in r.stderr,
          "no credentials: exit 2 naming the flag and the variable")


def main():
    return h.run("fleet_cli_test", Env, [
        test_hosts, test_reserve_all_and_retry, test_host_down, test_slow_host,
        test_competing_launchers, test_cordon_drain_watch, test_python_client,
        test_usage])


if __name__ == "__main__":
    sys.exit(main())
