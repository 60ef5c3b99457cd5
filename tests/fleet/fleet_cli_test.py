#!/usr/bin/env python3
"""devmem-fleet (client/fleet) and the Python client against real agents.
As root: eight hosts, each a network namespace with its own devmemd (a
simulated devmem NIC over a veth of its
own) and devmem-agent (an unprivileged
uid, serving on a veth), reached over a bridge from a launcher namespace. Without root: four hosts on
loopback (devmemd on lo, the agent on its own 127.0.0.1 port). Mutual TLS
with certificates made by openssl.

Covers: hosts (table and --json); an all-or-nothing reserve and its
idempotent retry; a host that is down (exit 1, 0 reserved queues left on
every host, asked host by host); a host that answers after the launcher's
deadline (nothing leaks: the provisional TTL ends it); two launchers
competing for the same queues (never both partial); renew, release; cordon,
drain in waves, uncordon; watch tagged by host; the Python client doing the
same; NIC profile rollouts (canary, waves, --drain; a canary whose link goes
down stops the rollout and reverts; kill -9 of devmemd between apply and
confirm still reverts, to the recorded state); usage errors (exit 2)."""
import json
import os
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.getcwd(), "tests/fleet"))
import fleet_harness as h  # noqa: E402
import fleet_hosts as fh  # noqa: E402
from fleet_harness import check  # noqa: E402

FLEET = os.path.join(h.REPO, "client/fleet/devmem-fleet")
# No observer: the --flagfile check uses an identity without a role here.
ROLES = {"launchers": ["launcher", "launcher2"], "operators": ["operator"]}


class Env:
    """Eight hosts in network namespaces as root; four on loopback without."""

    def __init__(self, work):
        self.net, self.hosts = None, []
        try:
            self._start(work)
        except BaseException:
            self.stop()  # run() has no env to stop: leave no namespace behind
            raise

    def _start(self, work):
        self.work = work
        os.chmod(work, 0o755)
        self.pki = os.path.join(work, "pki")
        why_not = fh.netns_unavailable()
        if why_not is None:
            self.net = fh.NetnsNetwork(f"dmc{os.getpid() % 100000}", 8, 79,
                                      data_nic="dm0")
            h.make_pki(self.pki, *[self.net.host_ip(i) for i in range(1, 9)])
            self.net.make()
            self.hosts = [fh.NetnsHost(self.net, i, work, self.pki, roles=ROLES)
                          for i in range(1, 9)]
        else:
            print(f"note: {why_not}: four hosts on loopback instead of eight "
                  "in network namespaces; the link-down canary is skipped")
            h.make_pki(self.pki)
            self.hosts = [fh.LoopbackHost(i, work, self.pki, roles=ROLES) for i in range(4)]
        h.generate_stubs(os.path.join(work, "gen"))
        for x in self.hosts:
            x.start_devmemd()
            x.start_agent()
        if self.net is not None:
            self.net.enter_launcher()
        self.n = len(self.hosts)
        self.nic = self.hosts[0].nic
        # Each agent reaches its devmemd within moments of starting (slower
        # under ASan): wait until every host answers GetHost in full.
        deadline = time.time() + 30
        while self.fleet("hosts", who="operator")[0] != 0:
            if time.time() > deadline:
                raise RuntimeError("the hosts did not all become ready in 30 s")
            time.sleep(0.2)

    @property
    def addrs(self):
        return [x.address() for x in self.hosts]

    def creds(self, who):
        """The environment that gives devmem-fleet `who`'s credentials."""
        return dict(os.environ, DEVMEM_FLEET_CA=f"{self.pki}/ca.pem",
                    DEVMEM_FLEET_CERT=f"{self.pki}/{who}.pem",
                    DEVMEM_FLEET_KEY=f"{self.pki}/{who}.key")

    def start_fleet(self, *args, who="operator"):
        """devmem-fleet on every host, running on while the test acts."""
        return subprocess.Popen([FLEET, *args, *self.addrs], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=self.creds(who))

    def fleet(self, *args, who="launcher", hosts=None, timeout=60):
        r = subprocess.run([FLEET, *args, *(self.addrs if hosts is None else hosts)],
                           capture_output=True, text=True, env=self.creds(who),
                           timeout=timeout)
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
        for x in self.hosts:
            x.stop()
        if self.net is not None:
            self.net.drop()

    def processes(self):
        return [p for x in self.hosts for p in (x.agent, x.devmemd)]


def test_hosts(env):
    rc, out, err = env.fleet("hosts", who="operator")
    lines = out.strip().splitlines()
    check(rc == 0 and len(lines) == 1 + env.n and f"{env.nic} 2/0/2" in lines[1],
          f"hosts: a table row per host: {lines[:2]} (exit {rc}) {err.strip()}")
    rc, out, err = env.fleet("hosts", "--json", who="operator")
    check(rc == 0 and [x["host"] for x in out["hosts"]] == env.addrs and
          all(x["info"]["health"] == "ready" for x in out["hosts"]),
          "hosts --json: every host, ready")


def test_reserve_all_and_retry(env):
    rc, out, err = env.fleet("reserve", "--job", "gang-1", "--queues", "1",
                             "--ttl", "10m", "--json")
    tokens = [x.get("token", "") for x in out["hosts"]]
    check(rc == 0 and out["ok"] and all(t.startswith("dmr1-") for t in tokens),
          f"a gang reservation succeeds on {env.n} hosts ({err.strip()})")
    check(env.reserved_per_host() == [1] * env.n, "each host holds 1 queue")
    rc, again, err = env.fleet("reserve", "--job", "gang-1", "--queues", "1",
                               "--ttl", "10m", "--json")
    check(rc == 0 and [x["token"] for x in again["hosts"]] == tokens and
          env.reserved_per_host() == [1] * env.n,
          "a retry with the same job id returns the same tokens, reserves nothing more")
    exp = [int(x["reservation"]["expires_unix_ms"]) for x in again["hosts"]]
    check(all(e > time.time() * 1000 + 500_000 for e in exp),
          "the provisional TTL was renewed to --ttl")
    rc, out, err = env.fleet("renew", "--job", "gang-1", "--ttl", "20m", "--json")
    check(rc == 0 and all(len(x["reservations"]) == 1 for x in out["hosts"]),
          "renew renews the job everywhere")
    rc, out, err = env.fleet("release", "--job", "gang-1", "--json")
    check(rc == 0 and env.reserved_per_host() == [0] * env.n, "release everywhere")
    full = [env.fleet("reserve", "--job", "gang-full", "--queues", "2", "--json")
            for _ in range(2)]
    check(all(rc == 0 for rc, _, _ in full) and
          [x["token"] for x in full[0][1]["hosts"]] ==
          [x["token"] for x in full[1][1]["hosts"]],
          "a retry that finds the pool full (its own first try holds it) gets "
          "the same tokens")
    env.fleet("release", "--job", "gang-full")
    rc, out, err = env.fleet("release", "--job", "gang-1")
    check(rc == 0 and out.count("released 0") == env.n, "release is idempotent")


def test_host_down(env):
    rc, out, err = env.fleet("reserve", "--job", "gang-2", "--request_id", "part-1")
    check(rc == 0, "the job's first part holds a queue on every host")
    env.hosts[2].agent.stop()
    rc, out, err = env.fleet("reserve", "--job", "gang-2", "--request_id", "part-2",
                             "--timeout", "2s", "--json")
    failed = [x["host"] for x in out["hosts"] if not x["ok"]]
    check(rc == 1 and not out["ok"] and env.addrs[2] in failed and
          "UNAVAILABLE" in [x for x in out["hosts"] if x["host"] == env.addrs[2]][0]["error"],
          f"a host down fails the gang, exit 1, naming it: {err.strip()[-200:]}")
    up = [a for i, a in enumerate(env.addrs) if i != 2]
    rc, hosts, _ = env.fleet("hosts", "--json", who="operator", hosts=up)
    left = [sum(n["pool_total"] - n["pool_free"] for n in x["info"]["nics"])
            for x in hosts["hosts"]]
    check(left == [1] * (env.n - 1),
          f"the rollback released only this request's queues (part-1 keeps its "
          f"one on each host), asked host by host: {left}")
    env.hosts[2].start_agent()
    env.fleet("release", "--job", "gang-2")
    check(env.reserved_per_host() == [0] * env.n, "release of the job frees all")


def test_slow_host(env):
    slow = env.hosts[1].devmemd
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
    check(env.reserved_per_host() == [0] * env.n,
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
    check(per_host in ([0] * env.n, [2] * env.n) and (per_host[0] == 2) == bool(oks),
          f"no partial set is left: {per_host} (winner {oks})")
    for job in ("race-a", "race-b"):
        env.fleet("release", "--job", job, who="operator")


def test_cordon_drain_watch(env):
    rc, out, err = env.fleet("cordon", "--reason", "kernel upgrade", who="operator")
    check(rc == 0 and out.count("cordoned (kernel upgrade") == env.n, "cordon all")
    rc, out, err = env.fleet("reserve", "--job", "while-cordoned", "--json")
    check(rc == 1 and "cordoned" in out["hosts"][0]["error"],
          "a cordoned fleet refuses a gang")
    rc, out, err = env.fleet("uncordon", who="operator")
    check(rc == 0 and out.count("schedulable") == env.n, "uncordon all")
    env.fleet("reserve", "--job", "drain-me")
    release = threading.Timer(1.0, lambda: env.fleet("release", "--job", "drain-me"))
    release.start()
    rc, out, err = env.fleet("drain", "--reason", "upgrade", "--max_unavailable",
                             "2", "--deadline", "20s", "--json", who="operator")
    release.join()
    check(rc == 0 and all(x["drain"]["done"] for x in out["hosts"]),
          "drain in waves of 2 completes once the job releases")
    watcher = env.start_fleet("watch", "--json", "--count", str(env.n))
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
        check(gang.ok and len(gang.tokens) == env.n and
              all(t.startswith("dmr1-") for t in gang.tokens.values()),
              "python: a gang reservation succeeds")
        again = fleet.reserve("py-gang", queues=1, ttl_s=600)
        check(again.tokens == gang.tokens and env.reserved_per_host() == [1] * env.n,
              "python: a retry with the same job id returns the same tokens")
        env.hosts[3].agent.stop()
        failed = fleet.reserve("py-gang-2", queues=1, ttl_s=600)
        check(not failed.ok and "UNAVAILABLE" in failed.failures[env.addrs[3]],
              f"python: a host down fails the gang: {failed.failures}")
        env.hosts[3].start_agent()
        check(env.reserved_per_host() == [1] * env.n,
              "python: the failed gang left nothing (py-gang's queue only)")
        released = fleet.release("py-gang")
        check(all(len(v) == 1 for v in released.values()) and
              env.reserved_per_host() == [0] * env.n, "python: release everywhere")
    with Fleet(env.addrs, ca=f"{env.pki}/ca.pem", cert=f"{env.pki}/operator.pem",
               key=f"{env.pki}/operator.key", timeout=5) as fleet:
        drained = fleet.drain("python drain", max_unavailable=3, deadline_s=10)
        bad = [p for p in drained.values()
               if isinstance(p, str) or not (p.done and p.cordon.cordoned)]
        check(not bad, f"python: drain in waves of 3 {bad[:1]}")
        events = fleet.watch(since_revision=0)
        snapshots = {next(events)[0] for _ in range(env.n)}
        fleet.uncordon()
        seen = set()
        while len(seen) < env.n:
            host, item = next(events)
            if not isinstance(item, str) and any(
                    e.type == "host.uncordoned" for e in item.events):
                seen.add(host)
        events.close()
        check(snapshots == set(env.addrs) and seen == set(env.addrs),
              "python: watch gives each host's snapshot, then its uncordon")


def write_profile(env, name, pool):
    path = os.path.join(env.work, name)
    with open(path, "w") as f:
        f.write(f'nic: "{env.nic}"\npool_queues: {pool}\n')
    return path


def nic_state(host):
    return h.nic_state(host.run, host.nic)


settings = h.nic_settings


def waves(n, canary, k):
    return [0] * canary + [1 + i // k for i in range(n - canary)]


def test_rollout(env):
    one = write_profile(env, "one.textproto", 1)
    rc, out, err = env.fleet("reserve", "--job", "busy")
    check(rc == 0, "a job holds a queue on every host")
    release = threading.Timer(1.5, lambda: env.fleet("release", "--job", "busy"))
    release.start()
    rc, out, err = env.fleet(
        "rollout", "--profile", one, "--canary", "1", "--max_unavailable", "3",
        "--settle", "300ms", "--confirm_within", "30s", "--drain",
        "--deadline", "20s", "--json", who="operator")
    release.join()
    steps = [x["rollout"] for x in out["hosts"]]
    check(rc == 0 and out["ok"] and
          all(s["outcome"] == "confirmed" and s["confirmed"] for s in steps),
          f"rollout --drain: every host confirmed ({err.strip()[-300:]})")
    check([s["wave"] for s in steps] == waves(env.n, 1, 3),
          f"the canary alone, then waves of 3: {[s['wave'] for s in steps]}")
    check(all(s["drained"] and s["uncordoned"] for s in steps),
          "each host was drained, then uncordoned")
    check([len(nic_state(x)["pool_queues"]) for x in env.hosts] == [1] * env.n,
          "every NIC has the new profile (a pool of 1), asked of each devmemd")
    check(not any(nic_state(x).get("pending_change") for x in env.hosts),
          "nothing is left pending")
    rc, hosts, _ = env.fleet("hosts", "--json", who="operator")
    check(not any(x["info"]["cordon"].get("cordoned") for x in hosts["hosts"]),
          "no host is left cordoned")
    two = write_profile(env, "two.textproto", 2)
    rc, out, err = env.fleet("rollout", "--profile", two, "--max_unavailable",
                             str(env.n), "--settle", "0s", who="operator")
    rows = out.strip().splitlines()[1:]
    check(rc == 0 and len(rows) == env.n and
          all("\tconfirmed\t" in r for r in rows) and "applied pc-" in err,
          "back to two queues: a table for people, progress on stderr")
    check([len(nic_state(x)["pool_queues"]) for x in env.hosts] == [2] * env.n,
          "every NIC has two queues again")


def test_rollout_unhealthy_canary(env):
    if env.net is None:
        print("skipped: the link-down canary needs root (a veth to take down)")
        return
    before = [settings(nic_state(x)) for x in env.hosts]
    canary = env.hosts[0]
    rollout = env.start_fleet(
        "rollout", "--profile", write_profile(env, "bad.textproto", 1),
        "--settle", "3s", "--max_unavailable", "4", "--json")
    deadline = time.time() + 10
    while time.time() < deadline and not nic_state(canary).get("pending_change"):
        time.sleep(0.05)
    canary.set_link(False)  # the canary goes bad after the change
    out, err = rollout.communicate(timeout=60)
    canary.set_link(True)
    out = json.loads(out)
    steps = [x["rollout"] for x in out["hosts"]]
    check(rollout.returncode == 1 and steps[0]["outcome"] == "reverted" and
          "link is down" in steps[0]["health"],
          f"the unhealthy canary is reverted ({steps[0]['outcome']}): "
          f"{steps[0]['health'][:90]}")
    check(all(s["outcome"] == "skipped" and not s["applied"] for s in steps[1:]),
          "the rollout stopped: no other host was touched")
    check(canary.address() in out["stopped"] and "canary" in out["stopped"],
          f"the report says why it stopped: {out['stopped']}")
    after = [settings(nic_state(x)) for x in env.hosts]
    check(after == before, "every NIC is as recorded before the rollout")


def test_rollout_kill9_between_apply_and_confirm(env):
    canary = env.hosts[0]
    before = settings(nic_state(canary))
    rollout = env.start_fleet(
        "rollout", "--profile", write_profile(env, "k9.textproto", 1),
        "--settle", "1s", "--timeout", "2s", "--confirm_within", "5s", "--json")
    deadline = time.time() + 10
    pending = None
    while time.time() < deadline and not pending:
        pending = nic_state(canary).get("pending_change")
        time.sleep(0.05)
    canary.devmemd.stop(signal.SIGKILL)
    out, err = rollout.communicate(timeout=60)
    out = json.loads(out)
    step = out["hosts"][0]["rollout"]
    check(rollout.returncode == 1 and step["applied"] and
          step["outcome"] == "reverting" and "unreachable" in step["health"],
          f"devmemd killed: the canary is unhealthy, its revert waits for "
          f"devmemd: {step['outcome']}, {step['health'][:80]}")
    canary.start_devmemd()
    st = nic_state(canary)
    check(st.get("pending_change", {}).get("change_id") == pending["change_id"],
          "the restarted devmemd still holds the change, from its journal")
    deadline = time.time() + 20
    while time.time() < deadline and nic_state(canary).get("pending_change"):
        time.sleep(0.2)
    after = settings(nic_state(canary))
    check(after == before,
          "at the deadline it reverted by itself to the recorded state")


def test_usage(env):
    for args, what in [(["reserve"], "--job is required"),
                       (["reserve", "--job", "x", "--ttl", "0s"], "--ttl"),
                       (["frobnicate"], "unknown command"),
                       (["hosts", "not-a-host"], "is not HOST:PORT"),
                       (["cordon"], "--reason is required"),
                       (["rollout"], "--profile is required"),
                       (["rollout", "--profile", "/nonexistent"], "/nonexistent"),
                       (["rollout", "--profile", "/dev/null"], "nic is required"),
                       (["rollout", "--profile", write_profile(env, "u", 1),
                         "--settle", "60s"], "must exceed --settle")]:
        r = subprocess.run([FLEET, *args] + ([] if "not-a-host" in args else env.addrs),
                           capture_output=True, text=True,
                           env=env.creds("launcher"))
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
        test_rollout, test_rollout_unhealthy_canary,
        test_rollout_kill9_between_apply_and_confirm, test_usage])


if __name__ == "__main__":
    sys.exit(main())
