"""Hosts for the fleet tests, each a devmemd (a simulated devmem NIC) with a
devmem-agent in front of it:
  NetnsHost     in a network namespace of its own, its NIC a veth named eth1
                whose peer is on a bridge in a launcher namespace (or a
                veth apart from it); the agent runs as an unprivileged
                uid. Needs root.
  LoopbackHost  on 127.0.0.1 with its own port; the NIC is lo. No root.
Both offer nic, run (devmemd's runtime dir), devmemd and agent (Processes),
address(), start_devmemd(extra), start_agent(), stop(). Only the namespaces,
links and processes made here are touched."""
import ctypes
import os
import re
import subprocess

import fleet_harness as h

AGENT_UID = 64999  # no passwd entry: an unprivileged uid of its own
ROLES = {"observers": ["observer"], "launchers": ["launcher", "launcher2"],
         "operators": ["operator"]}


def sh(*argv, ns=None, **kw):
    if ns:
        argv = ("ip", "netns", "exec", ns) + argv
    return subprocess.run(argv, check=kw.pop("check", True),
                          capture_output=True, text=True, **kw)


def netns_unavailable():
    """Why namespaces cannot be used here, or None."""
    if os.environ.get("DEVMEM_FLEET_TEST_NO_NETNS"):
        return "DEVMEM_FLEET_TEST_NO_NETNS is set"
    if os.getuid() != 0:
        return "not root (network namespaces, veth, setpriv)"
    probe = f"dmprobe{os.getpid() % 100000}"
    if sh("ip", "netns", "add", probe, check=False).returncode != 0:
        return "cannot create network namespaces here"
    sh("ip", "netns", "del", probe)
    return None


class NetnsNetwork:
    """A launcher namespace with a bridge, and `hosts` host namespaces each
    linked to it by a veth (eth1 inside the host) on subnet 10.<net>.0.0/24.
    With data_nic, each host also has a link of that name for its devmem NIC
    (a veth pair inside the host), apart from the link the agent serves on
    (as a management network is), so that a test can take it down."""

    def __init__(self, tag, hosts, net, data_nic=None):
        self.tag, self.hosts, self.net = tag, hosts, net
        self.data_nic = data_nic
        self.launcher_ns = f"{tag}-l"

    def host_ns(self, i):
        return f"{self.tag}-h{i}"

    def host_ip(self, i):
        return f"10.{self.net}.0.{10 + i}"

    def make(self):
        lns = self.launcher_ns
        sh("ip", "netns", "add", lns)
        sh("ip", "-n", lns, "link", "set", "lo", "up")
        sh("ip", "-n", lns, "link", "add", "br0", "type", "bridge")
        sh("ip", "-n", lns, "addr", "add", f"10.{self.net}.0.1/24", "dev", "br0")
        sh("ip", "-n", lns, "link", "set", "br0", "up")
        for i in range(1, self.hosts + 1):
            ns = self.host_ns(i)
            sh("ip", "netns", "add", ns)
            sh("ip", "-n", ns, "link", "set", "lo", "up")
            sh("ip", "-n", ns, "link", "add", "eth1", "type", "veth", "peer",
               "name", f"fb{i}", "netns", lns)
            sh("ip", "-n", ns, "addr", "add", f"{self.host_ip(i)}/24", "dev",
               "eth1")
            sh("ip", "-n", ns, "link", "set", "eth1", "up")
            sh("ip", "-n", lns, "link", "set", f"fb{i}", "master", "br0")
            sh("ip", "-n", lns, "link", "set", f"fb{i}", "up")
            if self.data_nic:
                # A veth whose peer stays in the host (there may be no dummy
                # module).
                sh("ip", "-n", ns, "link", "add", self.data_nic, "type", "veth",
                   "peer", "name", f"{self.data_nic}p")
                for link in (self.data_nic, f"{self.data_nic}p"):
                    sh("ip", "-n", ns, "link", "set", link, "up")

    def drop(self):
        for ns in [self.launcher_ns] + [self.host_ns(i)
                                        for i in range(1, self.hosts + 1)]:
            sh("ip", "netns", "del", ns, check=False)

    def enter_launcher(self):
        """Moves this process into the launcher namespace, so that its gRPC
        channels and the commands it starts dial through the bridge."""
        libc = ctypes.CDLL(None, use_errno=True)
        fd = os.open(f"/run/netns/{self.launcher_ns}", os.O_RDONLY)
        if libc.setns(fd, 0x40000000) != 0:  # CLONE_NEWNET
            raise OSError(ctypes.get_errno(), "setns to the launcher namespace")
        os.close(fd)


class NetnsHost:
    def __init__(self, net, i, work, pki, pool_queues=2, roles=None):
        self.net, self.i, self.pki = net, i, pki
        self.ns = net.host_ns(i)
        self.nic = net.data_nic or "eth1"
        self.pool_queues = pool_queues
        self.roles = roles or ROLES
        self.work = os.path.join(work, f"host{i}")
        self.run = os.path.join(self.work, "run")
        os.makedirs(self.work, mode=0o755)
        self.nobody = int(sh("id", "-u", "nobody").stdout)
        self.nogroup = int(sh("getent", "group", "nogroup").stdout.split(":")[2])
        self.devmemd = self.agent = None

    def start_devmemd(self, extra=""):
        config = os.path.join(self.work, "devmemd.textproto")
        with open(config, "w") as f:
            f.write(f"allow_uids: [0, {self.nobody}, {AGENT_UID}]\n"
                    f"admin_uids: {AGENT_UID}\n"
                    f'socket_group: "nogroup"\nnic_backend: "simulated"\n'
                    f'nic_profiles {{ nic: "{self.nic}" '
                    f'pool_queues: {self.pool_queues} }}\n' + extra)
        for sock in ("grpc.sock", "session.sock"):
            if os.path.exists(os.path.join(self.run, sock)):
                os.unlink(os.path.join(self.run, sock))
        self.devmemd = h.Process(
            [h.DEVMEMD, f"--config={config}", f"--runtime_dir={self.run}",
             f"--state_dir={self.work}/state", "--dbus="],
            os.path.join(self.work, "devmemd.log"), self.ns)
        self.devmemd.wait_for("ready: ")

    def start_agent(self):
        config = os.path.join(self.work, "agent.textproto")
        h.write_agent_config(config, self.pki,
                             os.path.join(self.run, "grpc.sock"),
                             self.address(), self.roles,
                             "devmemd_timeout_ms: 20000\n")
        self.agent = h.Process(
            ["setpriv", f"--reuid={AGENT_UID}", f"--regid={self.nogroup}",
             "--clear-groups", "--", h.AGENT, f"--config={config}"],
            os.path.join(self.work, "agent.log"), self.ns)
        self.agent.wait_for(r"serving fleet.v1 on ")

    def address(self):
        return f"{self.net.host_ip(self.i)}:7443"

    def set_link(self, up):
        sh("ip", "-n", self.ns, "link", "set", self.nic, "up" if up else "down")

    def stop(self):
        for p in (self.agent, self.devmemd):
            if p is not None:
                p.stop()


class LoopbackHost:
    def __init__(self, i, work, pki, roles=None):
        self.i, self.pki = i, pki
        self.nic = "lo"
        self.roles = roles or ROLES
        self.work = os.path.join(work, f"host{i}")
        self.run = os.path.join(self.work, "run")
        self.config = os.path.join(work, f"agent{i}.textproto")
        self.addr = None
        self.devmemd = self.agent = None

    def start_devmemd(self, extra=""):
        self.devmemd = h.start_devmemd(self.work, "lo", extra_config=extra)

    def start_agent(self):
        h.write_agent_config(self.config, self.pki,
                             os.path.join(self.run, "grpc.sock"),
                             self.addr or "127.0.0.1:0", self.roles,
                             "devmemd_timeout_ms: 20000\n")
        self.agent, self.addr, _ = h.start_agent(
            self.config, os.path.join(self.work, "agent.log"))
        with open(self.config) as f:  # restarts keep this port
            text = f.read()
        with open(self.config, "w") as f:
            f.write(re.sub(r'^listen: .*$', f'listen: "{self.addr}"', text,
                           flags=re.M))

    def address(self):
        return self.addr

    def set_link(self, up):
        raise RuntimeError("lo cannot be taken down for a test")

    def stop(self):
        for p in (self.agent, self.devmemd):
            if p is not None:
                p.stop()
