"""A real Slurm cluster (22.05, Debian's packages) in namespaces, for tests run
as root. SlurmCluster(work_dir, nodes=3).up() builds:

  munged      a private one on the host: socket in work_dir/munge (0755), its
              own 128-byte key (0400 in a 0700 dir); slurm.conf names the
              socket in AuthInfo=socket=...
  controller  network namespace <tag>-c with bridge br0 at 10.<net>.0.1/24,
              and its own UTS + mount namespace (hostname <tag>-ctl) where
              slurmctld runs and where client commands (ctl()) run;
  node i      network namespace <tag>-n<i> whose eth1 (10.<net>.0.<10+i>) is
              a veth into br0, its own UTS + mount namespace (hostname
              <tag>n<i>, a fresh tmpfs on /run, its own sysfs so that
              /sys/class/net shows eth1, the node_binds(i) mounts), running
              `slurmd -D`.

Every mount namespace has work_dir's hosts, passwd and group files bound over
/etc/hosts, /etc/passwd and /etc/group: the real ones plus the test users
(dmuser1 64101, dmuser2 64102, group dmusers 64100, home /tmp), so the host's
files are never changed. Each namespace set is held by a `sleep` process (its
pid is node_pid(i)), so the namespaces outlive a slurmd a test kills or
restarts. Client commands run as root or, under setpriv, as a test user, with
a clean environment (BASE_ENV, SLURM_CONF, HOME=/tmp, USER).

The configuration is cgroup-free (proctrack/linuxproc, task/none) with a
GRES `devmemq` of gres_count per node, PrologFlags=Alloc, and the Prolog,
Epilog and TaskProlog given. Every wait is bounded by wall-clock time and every
client command runs under `timeout`. down() stops everything by pid (also any
slurmstepd or job task left in the cluster's namespaces) and deletes the
namespaces; it is idempotent and safe after a partial up(). Daemons also get
SIGTERM if the thread that started them exits (PR_SET_PDEATHSIG).
Only namespaces, links and processes made here are touched.

Timing on 2 cores: up() about 0.7 s, `srun -N3` about 0.3 s, down() under
0.2 s. Batch jobs wait for slurmctld's once-a-second scheduling pass, and the
first one after up() is not started until about 2-3 s after slurmctld
started."""
import ctypes
import itertools
import os
import re
import select
import shlex
import signal
import subprocess
import tempfile
import time

SLURMCTLD = "/usr/sbin/slurmctld"
SLURMD = "/usr/sbin/slurmd"
MUNGED = "/usr/sbin/munged"
DEFAULT_USERS = {"dmuser1": 64101, "dmuser2": 64102}
DEFAULT_GROUP = ("dmusers", 64100)
# Daemons and client commands get this, not the caller's environment.
BASE_ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:"
                    "/sbin:/bin", "LANG": "C.UTF-8"}
_PR_SET_PDEATHSIG = 1
# A node's own sysfs, so that /sys/class/net lists its links (eth1), not the
# host's. slurmd 22.05 refuses to start without a filesystem at
# /sys/fs/cgroup, so the host's is bound back. Runs after the tmpfs on /run.
SYSFS_SETUP = ("mkdir /run/.cg; mount --rbind /sys/fs/cgroup /run/.cg; "
               "mount -t sysfs sysfs /sys; "
               "mount --rbind /run/.cg /sys/fs/cgroup; "
               "umount -l /run/.cg; rmdir /run/.cg")


def unavailable():
    """Why a SlurmCluster cannot run here, or None."""
    if os.getuid() != 0:
        return "not root (namespaces, munged, slurmd)"
    for path in (SLURMCTLD, SLURMD, MUNGED, "/usr/bin/sinfo"):
        if not os.access(path, os.X_OK):
            return f"{path} is not installed"
    probe = f"dmsprobe{os.getpid() % 100000}"
    if _ip("netns", "add", probe, check=False).returncode != 0:
        return "cannot create network namespaces here"
    _ip("netns", "del", probe, check=False)
    return None


def traversable(path):
    """Whether every directory down to path is o+x (test users, munge)."""
    path = os.path.abspath(path)
    while True:
        if not os.stat(path).st_mode & 0o001:
            return False
        if path == "/":
            return True
        path = os.path.dirname(path)


def make_work_dir(prefix="slurm"):
    """A fresh directory that test users can reach: under $TEST_TMPDIR when
    that is traversable (Bazel's often sits under a 0700 /root), else /tmp."""
    base = os.environ.get("TEST_TMPDIR")
    if not base or not traversable(base):
        base = "/tmp"
    return tempfile.mkdtemp(prefix=prefix, dir=base)


_instances = itertools.count()


def _default_tag():
    """dms<pid>, then dms<pid>x1, ...: unique per live cluster."""
    n = next(_instances)
    return f"dms{os.getpid() % 100000}" + (f"x{n}" if n else "")


def _ip(*args, check=True):
    out = subprocess.run(("ip",) + args, capture_output=True, text=True,
                         timeout=10)
    if check and out.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {out.stderr.strip()}")
    return out


_LIBC = ctypes.CDLL(None, use_errno=True)  # loaded before any fork


def _die_with_parent():
    _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class Daemon:
    """A child whose stdout and stderr go to a log file; stopped by pid."""

    def __init__(self, argv, log, env=None, stdout=None):
        self.log = log
        with open(log, "ab") as f:
            self.proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=stdout or f, stderr=f,
                env=env, preexec_fn=_die_with_parent)
        self.pid = self.proc.pid

    def alive(self):
        return self.proc.poll() is None

    def signal(self, sig):
        if self.alive():
            self.proc.send_signal(sig)

    def reap(self, deadline):
        """Waits until the deadline, then SIGKILLs; returns the exit status."""
        try:
            return self.proc.wait(max(0.0, deadline - time.time()))
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(5)

    def stop(self, timeout=3):
        self.signal(signal.SIGTERM)
        return self.reap(time.time() + timeout)

    def tail(self, n=30):
        try:
            with open(self.log, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""


def wait_until(what, fn, timeout, interval=0.05):
    """fn() until it returns something true, for at most timeout seconds."""
    deadline = time.time() + timeout
    while True:
        value = fn()
        if value:
            return value
        if time.time() >= deadline:
            raise TimeoutError(f"{what}: not within {timeout} s")
        time.sleep(interval)


class Holder(Daemon):
    """`sleep infinity` in a namespace set of its own, made by
    nsenter --net + unshare (not `ip netns exec`, which remounts /sys and
    hides /sys/fs/cgroup from slurmd), after `setup` ran in it."""

    def __init__(self, netns, hostname, setup, log):
        script = (f"set -e; hostname {shlex.quote(hostname)}; {setup}; "
                  "echo ready; exec sleep infinity")
        super().__init__(
            ["nsenter", f"--net=/run/netns/{netns}", "unshare", "--uts",
             "--mount", "--propagation", "private", "sh", "-c", script],
            log, stdout=subprocess.PIPE)

    def wait_ready(self, deadline):
        out = self.proc.stdout
        wait = max(0.0, deadline - time.time())
        ready, _, _ = select.select([out], [], [], wait)
        line = out.readline() if ready else b""
        out.close()
        if line.strip() != b"ready":
            raise RuntimeError(f"namespace setup failed:\n{self.tail()}")

    def enter(self, wd=None):
        """argv prefix that runs a command in this holder's namespaces."""
        argv = ["nsenter", "-t", str(self.pid), "-n", "-m", "-u"]
        return argv + ([f"--wd={wd}"] if wd else [])


def bind_script(binds):
    """Shell lines bind-mounting (source, target) pairs; targets under /run
    (a fresh tmpfs) are made when missing, others must exist."""
    lines = []
    for src, dst in binds:
        q_src, q_dst = shlex.quote(src), shlex.quote(dst)
        if dst.startswith("/run/"):
            make = (f"mkdir -p {q_dst}" if os.path.isdir(src) else
                    f"mkdir -p $(dirname {q_dst}) && touch {q_dst}")
            lines.append(f"[ -e {q_dst} ] || {{ {make}; }}")
        elif not os.path.exists(dst):
            raise ValueError(f"bind target {dst} does not exist (only ones "
                             "under /run are made)")
        lines.append(f"mount --bind {q_src} {q_dst}")
    return "; ".join(lines) or "true"


class Munge:
    """A private munged: socket dir 0755, key 0400 in a 0700 dir."""

    def __init__(self, work):
        self.dir = os.path.join(work, "munge")
        self.socket = os.path.join(self.dir, "munge.sock")
        self.daemon = None

    def start(self, timeout):
        keydir = os.path.join(self.dir, "key")
        os.makedirs(keydir, mode=0o700)
        # 0700 fails: "execute permissions for all required".
        os.chmod(self.dir, 0o755)
        key = os.path.join(keydir, "munge.key")
        fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o400)
        os.write(fd, os.urandom(128))
        os.close(fd)
        self.daemon = Daemon(
            [MUNGED, "--foreground", f"--socket={self.socket}",
             f"--key-file={key}", f"--pid-file={self.dir}/munged.pid",
             f"--log-file={self.dir}/munged.log",
             f"--seed-file={self.dir}/munged.seed"],
            os.path.join(self.dir, "munged.stderr"))
        wait_until("munged socket", self._ready, timeout)

    def _ready(self):
        if not self.daemon.alive():
            raise RuntimeError(f"munged died:\n{self.daemon.tail()}")
        return os.path.exists(self.socket)

    def stop(self):
        if self.daemon:
            self.daemon.stop()


class SlurmCluster:
    """See the module docstring. Use as a context manager, or up()/down()
    (once per object).

    prolog, epilog, task_prolog: absolute paths of executables (the Prolog
      and Epilog run as root with no PATH; the TaskProlog as the job user).
    users: {name: uid}; group: (name, gid), the users' primary group.
    node_binds(i): [(host_path, path_in_node)] bound in node i's mount
      namespace before slurmd starts; targets under /run are made there.
    conf: slurm.conf settings overriding conf_settings() (None drops one);
      extra_conf: text appended after the node and partition lines.
    node_sysfs: give each node a sysfs of its own network namespace.
    plugstack: plugstack.conf text (empty: the host's SPANK plugins stay
      out). tag: name prefix (default dms<pid>); net: the 10.<net>.0.0/24.
    """

    def __init__(self, work_dir, nodes=3, gres_count=4, prolog=None,
                 epilog=None, task_prolog=None, users=None, group=None,
                 node_binds=None, net=77, tag=None, cpus=None,
                 conf=None, extra_conf="", plugstack="", node_sysfs=True):
        self.work = os.path.abspath(work_dir)
        self.nodes, self.gres_count, self.net = nodes, gres_count, net
        self.tag = tag or _default_tag()
        self.prolog, self.epilog = prolog, epilog
        self.task_prolog = task_prolog
        self.users = dict(users or DEFAULT_USERS)
        self.group = group or DEFAULT_GROUP
        self.node_binds = node_binds or (lambda i: [])
        self.cpus = cpus or os.cpu_count()
        self.conf_overrides = dict(conf or {})
        self.node_sysfs = node_sysfs
        self.extra_conf, self.plugstack = extra_conf, plugstack
        self.conf = os.path.join(self.work, "etc", "slurm.conf")
        self.jobs_dir = os.path.join(self.work, "jobs")  # 1777, ctl()'s cwd
        self.env = dict(BASE_ENV, SLURM_CONF=self.conf)
        self.munge = Munge(self.work)
        self.ctl_ns = f"{self.tag}-c"
        self.ctl_holder = self.slurmctld = None
        self.holders = [None] * nodes
        self.slurmds = [None] * nodes
        self.netns_made, self.netns_inodes = [], []

    # Names and addresses.
    def node_name(self, i):
        """Node i's name and hostname, i in 1..nodes."""
        return f"{self.tag}n{i}"

    def node_ip(self, i):
        return f"10.{self.net}.0.{10 + i}"

    def node_netns(self, i):
        return f"{self.tag}-n{i}"

    def ctl_hostname(self):
        return f"{self.tag}-ctl"

    def ctl_ip(self):
        return f"10.{self.net}.0.1"

    def node_names(self):
        return [self.node_name(i) for i in range(1, self.nodes + 1)]

    # Up and down.
    def __enter__(self):
        self.up()
        return self

    def __exit__(self, *exc):
        self.down()

    def up(self, timeout=30):
        """Starts everything; returns when sinfo shows every node idle. On
        any failure it calls down() and raises (logs stay in work_dir/log)."""
        try:
            self._up(time.time() + timeout)
        except BaseException:
            self.down()
            raise

    def _up(self, deadline):
        left = lambda: max(0.0, deadline - time.time())  # noqa: E731
        self._write_files()
        self.munge.start(left())
        self._make_network()
        self._start_holders(deadline)
        self.slurmctld = Daemon(
            self.ctl_holder.enter("/") + [SLURMCTLD, "-D", "-c", "-i",
                                          "-f", self.conf],
            self._path("log", "slurmctld.stderr"), env=self.env)
        wait_until("slurmctld", self._ctld_ready, left())
        for i in range(1, self.nodes + 1):
            self.start_slurmd(i)
        wait_until("all nodes idle", self._all_idle, left(), interval=0.1)

    def down(self):
        """Stops every process by pid and deletes the namespaces."""
        deadline = time.time() + 3
        daemons = [d for d in self.slurmds + [self.slurmctld] if d]
        for d in daemons:
            d.signal(signal.SIGTERM)
        for d in daemons:
            d.reap(deadline)
        self._kill_leftovers()
        for h in [self.ctl_holder] + self.holders:
            if h:
                h.signal(signal.SIGKILL)
                h.reap(time.time() + 2)
        self.munge.stop()
        for ns in self.netns_made:
            _ip("netns", "del", ns, check=False)
        self.netns_made = []

    def start_slurmd(self, i):
        """(Re)starts node i's slurmd in its namespaces."""
        log = self._path("log", f"slurmd-{self.node_name(i)}.stderr")
        self.slurmds[i - 1] = Daemon(
            self.holders[i - 1].enter("/") + [
                SLURMD, "-D", "-f", self.conf, "-N", self.node_name(i)],
            log, env=self.env)
        return self.slurmds[i - 1]

    def stop_slurmd(self, i, sig=signal.SIGTERM):
        d = self.slurmds[i - 1]
        if d:
            d.signal(sig)
            return d.reap(time.time() + 3)

    def _path(self, *parts):
        return os.path.join(self.work, *parts)

    def _ctld_ready(self):
        if not self.slurmctld.alive():
            raise RuntimeError(f"slurmctld died:\n{self.slurmctld.tail()}\n"
                               f"{self._log_tail('slurmctld.log')}")
        return "Running as primary controller" in self._log_tail(
            "slurmctld.log", 200)

    def _all_idle(self):
        for i, d in enumerate(self.slurmds, 1):
            if not d.alive():
                raise RuntimeError(
                    f"slurmd {i} died:\n{d.tail()}\n"
                    f"{self._log_tail(f'slurmd-{self.node_name(i)}.log')}")
        out = self.ctl(["sinfo", "-h", "-N", "-o", "%N %t"], timeout=5)
        states = dict(line.split() for line in out.stdout.splitlines()
                      if len(line.split()) == 2)
        return all(states.get(n) == "idle" for n in self.node_names())

    def _log_tail(self, name, n=30):
        try:
            with open(self._path("log", name), errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""

    def _kill_leftovers(self):
        """slurmstepd, job tasks and anything else still in the cluster's
        network namespaces (slurmstepd outlives slurmd): SIGTERM, then KILL."""
        holders = {h.pid for h in [self.ctl_holder] + self.holders if h}
        for sig, pause in ((signal.SIGTERM, 0.3), (signal.SIGKILL, 0.1)):
            pids = [p for p in self.pids_in_namespaces() if p not in holders]
            for pid in pids:
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            if not pids:
                return
            time.sleep(pause)

    def pids_in_namespaces(self):
        """Pids of all processes in the cluster's network namespaces (also
        after down(), which should leave none)."""
        inodes = {f"net:[{ino}]" for ino in self.netns_inodes}
        pids = []
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    if os.readlink(f"/proc/{entry}/ns/net") in inodes:
                        pids.append(int(entry))
                except OSError:
                    pass
        return pids

    # Files.
    def _write_files(self):
        if not traversable(os.path.dirname(self.work)):
            raise ValueError(f"{self.work}: a parent is not o+x, test users "
                             "could not reach munge (see make_work_dir)")
        for d in ("etc", "log", "state", "spool"):
            os.makedirs(self._path(d), exist_ok=True)
        os.makedirs(self.jobs_dir, exist_ok=True)
        os.chmod(self.jobs_dir, 0o1777)
        os.chmod(self.work, 0o755)
        for i in range(1, self.nodes + 1):
            os.makedirs(self._path("spool", self.node_name(i)), exist_ok=True)
        self._write("etc/hosts", self._hosts_text())
        self._write("etc/passwd", self._passwd_text())
        self._write("etc/group", self._group_text())
        self._write("etc/gres.conf", f"Name=devmemq Count={self.gres_count}\n")
        self._write("etc/plugstack.conf", self.plugstack)
        self._write("etc/slurm.conf", self.slurm_conf_text())

    def _write(self, rel, text):
        with open(self._path(rel), "w") as f:
            f.write(text)
        os.chmod(self._path(rel), 0o644)

    def _hosts_text(self):
        lines = ["127.0.0.1\tlocalhost",
                 f"{self.ctl_ip()}\t{self.ctl_hostname()}"]
        lines += [f"{self.node_ip(i)}\t{self.node_name(i)}"
                  for i in range(1, self.nodes + 1)]
        return "\n".join(lines) + "\n"

    def _passwd_text(self):
        with open("/etc/passwd") as f:
            text = f.read()
        gid = self.group[1]
        return text + "".join(f"{name}:x:{uid}:{gid}::/tmp:/bin/sh\n"
                              for name, uid in self.users.items())

    def _group_text(self):
        with open("/etc/group") as f:
            text = f.read()
        name, gid = self.group
        return text + f"{name}:x:{gid}:{','.join(self.users)}\n"

    def conf_settings(self):
        """slurm.conf's settings as a dict, before the node and partition
        lines; the constructor's `conf` overrides (None drops a key)."""
        w = self.work
        settings = {
            "ClusterName": self.tag,
            "SlurmctldHost": f"{self.ctl_hostname()}({self.ctl_ip()})",
            "SlurmUser": "root", "SlurmdUser": "root",
            "AuthType": "auth/munge", "CredType": "cred/munge",
            "AuthInfo": f"socket={self.munge.socket}",
            "StateSaveLocation": f"{w}/state",
            "SlurmdSpoolDir": f"{w}/spool/%n",
            "SlurmctldPidFile": f"{w}/log/slurmctld.pid",
            "SlurmdPidFile": f"{w}/log/slurmd-%n.pid",
            "SlurmctldLogFile": f"{w}/log/slurmctld.log",
            "SlurmdLogFile": f"{w}/log/slurmd-%n.log",
            "PlugStackConfig": f"{w}/etc/plugstack.conf",
            "SlurmctldDebug": "info", "SlurmdDebug": "info",
            # cgroup-free: slurmd 22.05 needs no cgroup.conf with these.
            "ProctrackType": "proctrack/linuxproc", "TaskPlugin": "task/none",
            "AccountingStorageType": "accounting_storage/none",
            "JobAcctGatherType": "jobacct_gather/none",
            "JobCompType": "jobcomp/none",
            "SelectType": "select/cons_tres",
            "SelectTypeParameters": "CR_Core",
            "MpiDefault": "none", "SwitchType": "switch/none",
            "ReturnToService": "2", "MailProg": "/bin/true",
            "SchedulerParameters": "batch_sched_delay=0",
            "PrologFlags": "Alloc", "GresTypes": "devmemq",
            "SlurmdTimeout": "30", "MessageTimeout": "5", "KillWait": "2",
            "InactiveLimit": "0", "PrologEpilogTimeout": "30",
            "MinJobAge": "300",
            "Prolog": self.prolog, "Epilog": self.epilog,
            "TaskProlog": self.task_prolog,
        }
        settings.update(self.conf_overrides)
        return {k: v for k, v in settings.items() if v is not None}

    def slurm_conf_text(self):
        lines = [f"{k}={v}" for k, v in self.conf_settings().items()]
        for i in range(1, self.nodes + 1):
            lines.append(
                f"NodeName={self.node_name(i)} NodeAddr={self.node_ip(i)} "
                f"CPUs={self.cpus} RealMemory=256 "
                f"Gres=devmemq:{self.gres_count} State=UNKNOWN")
        lines.append("PartitionName=main Nodes=ALL Default=YES "
                     "MaxTime=UNLIMITED State=UP")
        return "\n".join(lines) + "\n" + self.extra_conf

    # Namespaces.
    def _make_network(self):
        ctl = self.ctl_ns
        self._add_netns(ctl)
        _ip("-n", ctl, "link", "add", "br0", "type", "bridge")
        _ip("-n", ctl, "addr", "add", f"{self.ctl_ip()}/24", "dev", "br0")
        _ip("-n", ctl, "link", "set", "br0", "up")
        for i in range(1, self.nodes + 1):
            ns = self.node_netns(i)
            self._add_netns(ns)
            _ip("-n", ns, "link", "add", "eth1", "type", "veth", "peer",
                "name", f"v{i}", "netns", ctl)
            _ip("-n", ns, "addr", "add", f"{self.node_ip(i)}/24", "dev",
                "eth1")
            _ip("-n", ns, "link", "set", "eth1", "up")
            _ip("-n", ctl, "link", "set", f"v{i}", "master", "br0", "up")

    def _add_netns(self, ns):
        _ip("netns", "add", ns)
        self.netns_made.append(ns)
        self.netns_inodes.append(os.stat(f"/run/netns/{ns}").st_ino)
        _ip("-n", ns, "link", "set", "lo", "up")

    def _etc_binds(self):
        return [(self._path("etc", f), f"/etc/{f}")
                for f in ("hosts", "passwd", "group")]

    def _start_holders(self, deadline):
        self.ctl_holder = Holder(
            self.ctl_ns, self.ctl_hostname(), bind_script(self._etc_binds()),
            self._path("log", "ctl-ns.log"))
        for i in range(1, self.nodes + 1):
            setup = "; ".join([
                "mount -t tmpfs -o mode=0755 tmpfs /run",
                SYSFS_SETUP if self.node_sysfs else "true",
                bind_script(self._etc_binds() + list(self.node_binds(i)))])
            self.holders[i - 1] = Holder(
                self.node_netns(i), self.node_name(i), setup,
                self._path("log", f"{self.node_name(i)}-ns.log"))
        for h in [self.ctl_holder] + self.holders:
            h.wait_ready(deadline)

    # Pids and argv for other code.
    def node_pid(self, i):
        """A pid in node i's network, UTS and mount namespaces for the
        cluster's whole life (its holder; `nsenter -t PID -n -m -u`)."""
        return self.holders[i - 1].pid

    def slurmd_pid(self, i):
        return self.slurmds[i - 1].pid

    def ctl_pid(self):
        """Like node_pid, for the controller's namespaces."""
        return self.ctl_holder.pid

    def slurmctld_pid(self):
        return self.slurmctld.pid

    def node_exec_argv(self, i, wd=None):
        """argv prefix running a command in node i's namespaces."""
        return self.holders[i - 1].enter(wd)

    def ctl_exec_argv(self, wd=None):
        return self.ctl_holder.enter(wd)

    # Client commands.
    def user_ids(self, user):
        """(uid, gid) of a test user by name, or of any uid."""
        uid = self.users[user] if isinstance(user, str) else int(user)
        return uid, self.group[1]

    def ctl_argv(self, argv, user=None, timeout=30, wd=None):
        """argv running a client command in the controller's namespaces, as
        root or as a test user, under `timeout`."""
        prefix = ["timeout", "-k", "2", str(timeout)]
        prefix += self.ctl_holder.enter(wd or self.jobs_dir)
        if user is not None:
            uid, gid = self.user_ids(user)
            prefix += ["setpriv", f"--reuid={uid}", f"--regid={gid}",
                       "--clear-groups", "--"]
        return prefix + list(argv)

    def user_env(self, user, extra=None):
        """BASE_ENV, SLURM_CONF, HOME/USER/LOGNAME/SHELL of the user (root
        when None), and extra."""
        name = "root" if user is None else (
            user if isinstance(user, str) else str(user))
        home = "/root" if user is None else "/tmp"
        env = dict(self.env, HOME=home, USER=name, LOGNAME=name,
                   SHELL="/bin/sh")
        env.update(extra or {})
        return env

    def ctl(self, argv, user=None, timeout=30, wd=None, input=None,
            check=False, env=None):
        """Runs a client command (sinfo, srun, sbatch, scontrol, squeue,
        scancel) in the controller's namespaces with user_env(user, env);
        its cwd is wd or jobs_dir (mode 1777). Returns a CompletedProcess;
        rc 124 means it timed out."""
        return subprocess.run(
            self.ctl_argv(argv, user, timeout, wd),
            env=self.user_env(user, env), input=input, capture_output=True,
            text=True, check=check,
            stdin=None if input is not None else subprocess.DEVNULL,
            timeout=timeout + 10)

    def sbatch(self, args, script, user=None, timeout=30):
        """Submits a batch script (text); returns the job id."""
        out = self.ctl(["sbatch", "--parsable"] + list(args), user=user,
                       timeout=timeout, input=script)
        if out.returncode != 0:
            raise RuntimeError(
                f"sbatch failed ({out.returncode}): {out.stderr}")
        return int(out.stdout.strip().split(";")[0])

    def show(self, kind, name):
        """`scontrol show <kind> <name>` as a dict (oneliner fields)."""
        out = self.ctl(["scontrol", "show", kind, str(name), "-o"], timeout=10)
        if out.returncode != 0:
            return {}
        return parse_fields(out.stdout)

    def job_state(self, jobid):
        """JobState=, e.g. RUNNING, COMPLETED; a batch job whose Prolog failed
        is PENDING with job_reason() launch_failed_requeued_held."""
        return self.show("job", jobid).get("JobState")

    def job_reason(self, jobid):
        return self.show("job", jobid).get("Reason")

    def wait_job(self, jobid, states=("COMPLETED", "FAILED", "CANCELLED",
                                       "TIMEOUT", "NODE_FAIL"), timeout=30):
        """Polls until the job's state is one of states; returns it."""
        states = (states,) if isinstance(states, str) else tuple(states)
        return wait_until(f"job {jobid} in {states}",
                          lambda: self._state_in(jobid, states), timeout, 0.1)

    def _state_in(self, jobid, states):
        state = self.job_state(jobid)
        return state if state in states else None

    def node_state(self, name):
        """scontrol's State=, e.g. IDLE, IDLE+DRAIN, DOWN+NOT_RESPONDING."""
        return self.show("node", name).get("State")

    def node_reason(self, name):
        """The node's Reason without scontrol's ` [user@time]`, or None."""
        reason = self.show("node", name).get("Reason")
        if reason is None:
            return None
        return re.sub(r"\s*\[[^\]]*@[^\]]*\]$", "", reason)

    def wait_node_state(self, name, pred, timeout=15):
        """Polls until pred(State) is true; returns State."""
        return wait_until(f"node {name} state",
                          lambda: self._node_state_if(name, pred), timeout,
                          0.1)

    def _node_state_if(self, name, pred):
        state = self.node_state(name)
        return state if state and pred(state) else None

    def resume(self, name):
        return self.ctl(["scontrol", "update", f"nodename={name}",
                         "state=resume"], timeout=10)


_FIELD = re.compile(r"(?:^|\s)([A-Za-z][\w:/]*)=")


def parse_fields(text):
    """`Key=value Key2=value with spaces` (scontrol -o) as a dict; a value
    runs to the next ` Key=`."""
    text = text.strip()
    fields, matches = {}, list(_FIELD.finditer(text))
    for m, nxt in zip(matches, matches[1:] + [None]):
        end = nxt.start() if nxt else len(text)
        fields.setdefault(m.group(1), text[m.end():end].strip())
    return fields
