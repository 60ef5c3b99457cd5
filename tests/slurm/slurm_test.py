#!/usr/bin/env python3
"""devmem queues through Slurm itself, on a real Slurm 22.05 cluster: a
private munged, slurmctld and three slurmd nodes, each node in its own
network, UTS and mount namespace (tests/slurm/slurm_cluster.py) with its own
devmemd (a simulated NIC on the node's eth1, runtime dir bound at
/run/devmemd). slurm.conf runs devmem-slurm as Prolog, Epilog and TaskProlog
(docs/SLURM.md); jobs are submitted by unprivileged users with
--gres=devmemq:N.

 1. srun -N3: every task sees its own DEVMEM_RESERVATION, binds 2 queues with
    it, gets a steered socket and receives 8 MiB from the next node, every
    byte checked; then every pool is free again;
 2. a request larger than the pool is refused by Slurm before it starts;
    devmemctl gres-conf on each node prints the gres.conf line the cluster
    uses;
 3. a batch job: the batch script and its srun steps see the token, whose
    TTL is the job's time limit plus the margin; the
    token file is the user's alone (0400), another user can neither read it
    nor bind with it (devmemd checks the redeemer uid); scancel releases;
 4. two jobs share a node's pool (2 + 2 of 4); a third waits for Slurm;
 5. the pool short (queues reserved outside Slurm): the Prolog fails saying
    so and the node drains with that reason;
 6. devmemd stopped on one node: the Prolog fails there, the node drains
    with the devmem reason (slurmd's log has it too), srun fails, the other
    nodes' reservations are released; a batch job is requeued and held;
    with devmemd back and the node resumed, the held job is released and
    completes under its job id, and srun jobs run there again.
Root only (namespaces); skips with the reason otherwise. Only namespaces,
links and processes made here are touched."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.getcwd(), "tests/slurm"))
sys.path.insert(0, os.path.join(os.getcwd(), "tests/fleet"))
import fleet_harness as h  # noqa: E402
import slurm_cluster as sc  # noqa: E402
from fleet_harness import check  # noqa: E402

NODES = 3
POOL = 4
USER1, USER2 = "dmuser1", "dmuser2"
UID1, UID2 = sc.DEFAULT_USERS[USER1], sc.DEFAULT_USERS[USER2]
PEER = os.path.join(h.REPO, "tests/tools/pattern_peer")
SLURM_HOOKS = os.path.join(h.REPO, "deploy/slurm/devmem-slurm")
BYTES = 8 << 20


class Env:
    """The cluster, a devmemd per node, and copies of the binaries that the
    test users run (Bazel's runfiles may be under a 0700 /root)."""

    def __init__(self, work):
        self.work = work
        self.bin = os.path.join(work, "bin")
        os.makedirs(self.bin, mode=0o755)
        for src in (h.DEVMEMCTL, PEER, SLURM_HOOKS):
            shutil.copy(src, self.bin)
        self.ctl_bin = os.path.join(self.bin, "devmemctl")
        hooks = {name: self._wrapper(name) for name in
                 ("prolog", "epilog", "task-prolog")}
        self.devmemds = [None] * NODES
        self.cluster = sc.SlurmCluster(
            work, nodes=NODES, gres_count=POOL, prolog=hooks["prolog"],
            epilog=hooks["epilog"], task_prolog=hooks["task-prolog"],
            node_binds=self._binds)
        try:
            self.cluster.up()
            for i in range(1, NODES + 1):
                self.start_devmemd(i)
        except BaseException:
            self.stop()
            raise

    def _wrapper(self, hook):
        """What deploy/slurm/devmem-<hook> is, with this build's binary."""
        path = os.path.join(self.bin, f"devmem-{hook}")
        with open(path, "w") as f:
            f.write(f"#!/bin/sh\nexec {self.bin}/devmem-slurm {hook} "
                    "--scontrol_timeout=10s\n")
        os.chmod(path, 0o755)
        return path

    def node_dir(self, i, *parts):
        return os.path.join(self.work, f"node{i}", *parts)

    def _binds(self, i):
        """Node i's devmemd runtime dir at /run/devmemd; /run/devmem-slurm
        is left for the Prolog to make on the node's own /run."""
        run = self.node_dir(i, "run")
        os.makedirs(run, mode=0o755, exist_ok=True)
        return [(run, "/run/devmemd")]

    def start_devmemd(self, i):
        config = self.node_dir(i, "devmemd.textproto")
        with open(config, "w") as f:
            f.write(f"allow_uids: [0, {UID1}, {UID2}]\nadmin_uids: 0\n"
                    f'socket_group: "{sc.DEFAULT_GROUP[0]}"\n'
                    'nic_backend: "simulated"\n'
                    f'nic_profiles {{ nic: "eth1" pool_queues: {POOL} }}\n')
        for sock in ("grpc.sock", "session.sock"):
            path = self.node_dir(i, "run", sock)
            if os.path.exists(path):
                os.unlink(path)
        self.devmemds[i - 1] = h.Process(
            self.cluster.node_exec_argv(i) +
            [h.DEVMEMD, f"--config={config}", "--runtime_dir=/run/devmemd",
             f"--state_dir={self.node_dir(i, 'state')}", "--dbus="],
            self.node_dir(i, "devmemd.log"))
        self.devmemds[i - 1].wait_for("ready: ")

    def devmemctl(self, i, *args):
        """devmemctl as root against node i's devmemd; JSON when --json."""
        r = subprocess.run([h.DEVMEMCTL, f"--runtime_dir={self.node_dir(i, 'run')}",
                            *args], capture_output=True, text=True, timeout=20)
        if "--json" in args and r.returncode == 0:
            return json.loads(r.stdout)
        return r

    def pool(self, i):
        """(free, reserved, [(job, owner, redeemer uid)]) on node i."""
        nic = self.devmemctl(i, "nic", "show", "--json")["nics"][0]
        res = self.devmemctl(i, "reservations", "--json").get("reservations", [])
        return (len(nic.get("free_queues", [])), len(nic.get("reserved_queues", [])),
                [(r["job_id"], r["owner"], r.get("redeemer_uid")) for r in res])

    def wait_pool(self, i, want, timeout=15):
        """Node i's pool once want(pool) holds (or at the timeout). A job is
        RUNNING while its Prolog still runs (PrologFlags=Alloc)."""
        deadline = time.time() + timeout
        while True:
            p = self.pool(i)
            if want(p) or time.time() > deadline:
                return p
            time.sleep(0.1)

    def wait_free(self, nodes, timeout=15):
        """Waits until every pool of `nodes` is free (the Epilog runs after the
        job ends); returns {node: pool}."""
        deadline = time.time() + timeout
        while True:
            pools = {i: self.pool(i) for i in nodes}
            if all(p == (POOL, 0, []) for p in pools.values()) or \
                    time.time() > deadline:
                return pools
            time.sleep(0.1)

    def in_node(self, i, argv, user=None, env=None):
        """argv in node i's namespaces, as a test user if given."""
        prefix = self.cluster.node_exec_argv(i)
        if user is not None:
            uid, gid = self.cluster.user_ids(user)
            prefix += ["setpriv", f"--reuid={uid}", f"--regid={gid}",
                       "--clear-groups", "--"]
        return subprocess.run(["timeout", "-k", "2", "30"] + prefix +
                              ["env", "-i"] + [f"{k}={v}" for k, v in
                                               (env or {}).items()] + argv,
                              capture_output=True, text=True, timeout=40)

    def slurmd_log(self, i):
        path = os.path.join(self.work, "log",
                            f"slurmd-{self.cluster.node_name(i)}.log")
        with open(path, errors="replace") as f:
            return f.read()

    def stop(self):
        for d in self.devmemds:
            if d is not None:
                d.stop()
        self.cluster.down()

    def processes(self):
        return [d for d in self.devmemds if d is not None]


TASK = """#!/bin/sh
# Each task listens on its node with the job's token, and sends the pattern
# to the next node's task. Arguments: the nodes' IPs in node order.
set -u
n=$((SLURM_NODEID + 1))
next=$(((SLURM_NODEID + 1) % $# + 1))
eval me=\\${$n}
eval to=\\${$next}
echo "token $(hostname) ${DEVMEM_RESERVATION:-none}"
BIN/devmemctl listen --nic=eth1 --addr=$me --port=7600 --bind_memfd_mb=4 \\
  --queues=2 --expect_pattern 2>&1 | sed "s/^/listen $(hostname): /" &
BIN/pattern_peer send --to=$to:7600 --bytes=BYTES || echo "send failed"
wait
"""


def test_srun_data_path(env):
    c = env.cluster
    task = os.path.join(env.bin, "task.sh")
    with open(task, "w") as f:
        f.write(TASK.replace("BIN", env.bin).replace("BYTES", str(BYTES)))
    os.chmod(task, 0o755)
    ips = [c.node_ip(i) for i in range(1, NODES + 1)]
    out = c.ctl(["srun", "-N3", "--gres=devmemq:2", "-t", "5", task, *ips],
                user=USER1, timeout=60)
    lines = out.stdout.splitlines()
    tokens = {l.split()[1]: l.split()[2] for l in lines if l.startswith("token ")}
    check(out.returncode == 0 and sorted(tokens) == c.node_names() and
          len(set(tokens.values())) == NODES and
          all(t.startswith("dmr1-") for t in tokens.values()),
          f"srun -N3 --gres=devmemq:2: each task has its node's own "
          f"DEVMEM_RESERVATION (rc {out.returncode}) {out.stderr[-300:]}")
    steered = [l for l in lines if "steer" in l.lower()]
    received = [l for l in lines if f"received {BYTES} bytes" in l and
                "pattern ok" in l]
    peers = {l.split()[1].rstrip(":"): l.split()[-1].rsplit(":", 1)[0]
             for l in lines if "accepted connection from" in l}
    ring = {c.node_name(i): c.node_ip((i - 2) % NODES + 1)
            for i in range(1, NODES + 1)}
    check(len(received) == NODES and len(steered) >= NODES and peers == ring,
          f"each task bound 2 queues with its token, got a steered socket "
          f"and received {BYTES} bytes from the next node, every byte "
          f"checked: {received} {steered[:1]} {peers}")
    pools = env.wait_free(range(1, NODES + 1))
    check(all(p == (POOL, 0, []) for p in pools.values()),
          f"afterwards every node's pool is free: {pools}")
    print(out.stdout, flush=True)


def test_gres_conf(env):
    """devmemctl gres-conf on each node prints what the cluster's gres.conf
    and slurm.conf say (NodeName defaults to the node's hostname)."""
    c = env.cluster
    for i in range(1, NODES + 1):
        out = env.in_node(i, [env.ctl_bin, "gres-conf"])
        name = c.node_name(i)
        check(out.returncode == 0 and
              f"NodeName={name} Name=devmemq Count={POOL}\n" in out.stdout and
              f"NodeName={name} ... Gres=devmemq:{POOL}" in out.stdout,
              f"gres-conf on {name}: {out.stdout.splitlines()[1:2]} "
              f"{out.stderr.strip()}")
    with open(os.path.join(env.work, "etc", "slurm.conf")) as f:
        conf = f.read()
    check(f"Gres=devmemq:{POOL}" in conf, "the cluster's slurm.conf agrees")


def test_too_large(env):
    out = env.cluster.ctl(["srun", "-N1", f"--gres=devmemq:{POOL + 1}", "true"],
                          user=USER1, timeout=20)
    check(out.returncode != 0 and
          "Requested node configuration is not available" in out.stderr,
          f"--gres=devmemq:{POOL + 1} on nodes of {POOL}: Slurm refuses it "
          f"before it starts: {out.stderr.strip()}")


BATCH = """#!/bin/sh
echo "batch ${DEVMEM_RESERVATION:-none}"
srun printenv DEVMEM_RESERVATION | sed 's/^/step /'
sleep 120
"""


def test_batch_isolation_and_scancel(env):
    c = env.cluster
    out_file = os.path.join(c.jobs_dir, "batch-%j.out")
    job = c.sbatch(["-N1", "-w", c.node_name(1), "--gres=devmemq:2", "-t", "5",
                    f"--output={out_file}"], BATCH, user=USER1)
    c.wait_job(job, "RUNNING", timeout=20)
    out_path = out_file.replace("%j", str(job))
    text = wait_text(out_path, "step ")
    batch = [l.split()[1] for l in text.splitlines() if l.startswith("batch ")]
    step = [l.split()[1] for l in text.splitlines() if l.startswith("step ")]
    check(batch and batch[0].startswith("dmr1-") and step == batch,
          f"the batch script and its srun step see the token: {text!r}")
    listed = env.devmemctl(1, "reservations", "--json")["reservations"]
    ttl = int(listed[0]["expires_unix_ms"]) / 1000 - time.time() if listed else 0
    check(14 * 60 < ttl <= 15 * 60,
          f"its TTL is the job's time limit (5 min) plus the 10 min margin: "
          f"{ttl:.0f} s left")
    free, reserved, res = env.pool(1)
    check((free, reserved) == (POOL - 2, 2) and
          res == [(str(job), "slurm", UID1)],
          f"node 1 holds the job's 2 queues, owner slurm, redeemer uid "
          f"{UID1}: {free} free, {reserved} reserved, {res}")
    token_file = f"/run/devmem-slurm/job{job}.token"
    st = env.in_node(1, ["stat", "-c", "%a %u", "/run/devmem-slurm",
                         token_file])
    check(st.stdout.split() == ["711", "0", "400", str(UID1)],
          f"the token dir is 0711 root, the token 0400 {USER1}'s: "
          f"{st.stdout.split()} {st.stderr}")
    other = env.in_node(1, ["cat", token_file], user=USER2)
    check(other.returncode != 0 and "Permission denied" in other.stderr,
          f"{USER2} cannot read it: {other.stderr.strip()}")
    token = batch[0] if batch else ""
    stolen = env.in_node(1, [env.ctl_bin, "listen", "--nic=eth1",
                             f"--addr={c.node_ip(1)}", "--port=7601",
                             "--bind_memfd_mb=4", "--queues=2"],
                         user=USER2, env={"DEVMEM_RESERVATION": token})
    check(stolen.returncode != 0 and "PERMISSION_DENIED" in stolen.stderr and
          f"only by uid {UID1}" in stolen.stderr,
          f"{USER2} binding with {USER1}'s token is refused by devmemd: "
          f"{stolen.stderr.strip()[-200:]}")
    c.ctl(["scancel", str(job)], user=USER1, timeout=10)
    check(c.wait_job(job, timeout=20) == "CANCELLED", "scancel ends the job")
    pools = env.wait_free([1])
    gone = env.in_node(1, ["ls", "/run/devmem-slurm"])
    check(pools[1] == (POOL, 0, []) and gone.stdout.strip() == "",
          f"the Epilog released the queues and removed the token: {pools} "
          f"{gone.stdout.split()}")


def wait_text(path, needle, timeout=20):
    """The text of `path` once it contains needle (bounded)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if os.path.exists(path):
            with open(path) as f:
                text = f.read()
            if needle in text:
                return text
        time.sleep(0.1)
    return open(path).read() if os.path.exists(path) else ""


def test_two_jobs_share_a_pool(env):
    c = env.cluster
    node = c.node_name(3)
    args = ["-N1", "-w", node, "--gres=devmemq:2", "-t", "5",
            "--output=/dev/null", "--wrap", "sleep 120"]
    jobs = [c.sbatch(args, None, user=u) for u in (USER1, USER2, USER1)]
    c.wait_job(jobs[0], "RUNNING", timeout=20)
    c.wait_job(jobs[1], "RUNNING", timeout=20)
    third = c.show("job", jobs[2])
    free, reserved, res = env.wait_pool(3, lambda p: len(p[2]) == 2)
    check((free, reserved) == (0, 4) and sorted(res) == sorted(
        [(str(jobs[0]), "slurm", UID1), (str(jobs[1]), "slurm", UID2)]) and
          third.get("JobState") == "PENDING",
          f"two jobs of 2 share node 3's pool of {POOL}; the third waits "
          f"({third.get('JobState')}, {third.get('Reason')}): {res}")
    c.ctl(["scancel", str(jobs[0])], timeout=10)
    c.wait_job(jobs[2], "RUNNING", timeout=20)
    free, reserved, res = env.wait_pool(
        3, lambda p: str(jobs[2]) in [j for j, _, _ in p[2]] and p[1] == 4)
    check((free, reserved) == (0, 4) and sorted(j for j, _, _ in res) ==
          sorted([str(jobs[1]), str(jobs[2])]),
          f"when one ends, the waiting job gets its queues: {free} free, "
          f"{reserved} reserved: {res}")
    c.ctl(["scancel", str(jobs[1]), str(jobs[2])], timeout=10)
    for j in jobs[1:]:
        c.wait_job(j, timeout=20)
    pools = env.wait_free([3])
    check(pools[3] == (POOL, 0, []), f"and all come back: {pools}")


def test_pool_short(env):
    """Queues held outside Slurm (an admin's reservation): gres.conf now
    promises more than the pool has, and the Prolog says so."""
    c = env.cluster
    n3 = c.node_name(3)
    held = env.devmemctl(3, "reserve", "--job=maintenance", "--nic=eth1",
                         "--queues=3", "--ttl=10m")
    out = c.ctl(["srun", "-N1", "-w", n3, "--gres=devmemq:2", "-t", "5",
                 "true"], user=USER1, timeout=60)
    c.wait_node_state(n3, lambda s: "DRAIN" in s, timeout=15)
    reason = c.node_reason(n3) or ""
    check(held.returncode == 0 and out.returncode != 0 and
          "devmemd refused the reservation" in reason and
          "RESOURCE_EXHAUSTED" in env.slurmd_log(3),
          f"the pool short: srun fails, the node drains saying why: "
          f"{reason!r}")
    env.devmemctl(3, "release", "--job=maintenance", "--any_owner")
    c.resume(n3)
    c.wait_node_state(n3, lambda s: s == "IDLE", timeout=15)
    pools = env.wait_free([3])
    check(pools[3] == (POOL, 0, []), f"released and resumed: {pools}")


def test_devmemd_down(env):
    c = env.cluster
    n2 = c.node_name(2)
    env.devmemds[1].stop()
    out = c.ctl(["srun", "-N3", "--gres=devmemq:1", "-t", "5", "true"],
                user=USER1, timeout=60)
    check(out.returncode != 0 and f"Prolog failure on node {n2}" in out.stderr,
          f"srun fails: {out.stderr.strip()[:200]}")
    c.wait_node_state(n2, lambda s: "DRAIN" in s, timeout=15)
    reason = c.node_reason(n2) or ""
    check(reason.startswith("devmem prolog: job ") and
          "devmemd is not reachable" in reason,
          f"node 2 drains with the devmem reason: {reason!r}")
    check("devmem-slurm prolog: job " in env.slurmd_log(2),
          "slurmd's log has the Prolog's message")
    pools = env.wait_free([1, 3])
    check(all(p == (POOL, 0, []) for p in pools.values()),
          f"the Epilog released what nodes 1 and 3 had reserved: {pools}")

    c.resume(n2)  # devmemd still down: a batch job is requeued and held
    c.wait_node_state(n2, lambda s: s == "IDLE", timeout=15)
    job = c.sbatch(["-N3", "--gres=devmemq:1", "-t", "5",
                    "--output=/dev/null", "--wrap", "true"], None, user=USER1)
    deadline = time.time() + 20
    while time.time() < deadline and (c.job_state(job), c.job_reason(job)) != \
            ("PENDING", "launch_failed_requeued_held"):
        time.sleep(0.1)
    check(c.job_state(job) == "PENDING" and
          c.job_reason(job) == "launch_failed_requeued_held",
          f"a batch job is requeued and held: {c.job_state(job)} "
          f"{c.job_reason(job)}")

    env.start_devmemd(2)
    c.resume(n2)
    c.wait_node_state(n2, lambda s: s == "IDLE", timeout=15)
    # A requeued job may not start for a while (its EligibleTime): now.
    c.ctl(["scontrol", "release", str(job)], timeout=10)
    c.ctl(["scontrol", "update", f"jobid={job}", "starttime=now"], timeout=10)
    check(c.wait_job(job, timeout=30) == "COMPLETED",
          "devmemd back, the node resumed and the held job released: it "
          "runs under the same job id and completes")
    out = c.ctl(["srun", "-N3", "--gres=devmemq:1", "-t", "5", "printenv",
                 "DEVMEM_RESERVATION"], user=USER1, timeout=60)
    check(out.returncode == 0 and len(out.stdout.split()) == NODES,
          f"devmemd back and the node resumed: jobs run there again "
          f"(rc {out.returncode}) {out.stderr.strip()[:200]}")
    pools = env.wait_free(range(1, NODES + 1))
    check(all(p == (POOL, 0, []) for p in pools.values()),
          f"and every pool is free at the end: {pools}")


def main():
    why = sc.unavailable()
    if why:
        print(f"SKIPPED: slurm_test: {why}")
        return 0
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("SIGTERM"))
    work = sc.make_work_dir("devmem-slurm")
    env, error, start = None, None, time.time()
    try:
        env = Env(work)
        print(f"cluster up with devmemd on {NODES} nodes in "
              f"{time.time() - start:.1f} s", flush=True)
        for t in (test_gres_conf, test_srun_data_path, test_too_large,
                  test_batch_isolation_and_scancel, test_two_jobs_share_a_pool,
                  test_pool_short, test_devmemd_down):
            t0 = time.time()
            print(f"--- {t.__name__}", flush=True)
            t(env)
            print(f"    {time.time() - t0:.1f} s", flush=True)
    except Exception as e:  # noqa: BLE001  (reported, then raised)
        error = e
        raise
    finally:
        procs = env.processes() if env is not None else []
        if env is not None:
            env.stop()
        code = h.finish("slurm_test", procs, error)
        if code == 0:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"logs kept in {work}/log")
        print(f"total {time.time() - start:.1f} s")
    return code


if __name__ == "__main__":
    sys.exit(main())
