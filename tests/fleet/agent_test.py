#!/usr/bin/env python3
"""devmem-agent end to end on one host, no root needed: a real devmemd
(simulated devmem NIC on lo), a real devmem-agent on 127.0.0.1, real mutual
TLS with certificates made by openssl, and this independent client on
Debian's python3-grpcio. Covers: the full role x RPC matrix; handshake
failures by cause (counted in /metrics); ownership; bad input that leaves
nothing behind; tokens shown only to Reserve's caller; Watch order, resume
and snapshot; Drain; grpc.health.v1; max_streams; SIGHUP reload with an open
stream; devmemd restarts (UNAVAILABLE meanwhile, reservations kept); and
kill -9 of the agent."""
import os
import shutil
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.getcwd(), "tests/fleet"))
import fleet_harness as h  # noqa: E402
from fleet_harness import check  # noqa: E402

ROLES = {"observers": ["observer"], "launchers": ["launcher", "launcher2"],
         "operators": ["operator"]}


class Env:
    def __init__(self, work):
        self.work = work
        self.pki = os.path.join(work, "pki")
        h.make_pki(self.pki)
        h.generate_stubs(os.path.join(work, "gen"))
        self.devmemd = h.start_devmemd(os.path.join(work, "host"), "lo")
        self.sock = os.path.join(work, "host/run/grpc.sock")
        self.port = h.free_port()
        self.config = os.path.join(work, "agent.textproto")
        self.write_config(ROLES)
        self.start_agent()
        self.clients = {}

    def write_config(self, roles, extra="max_streams: 6\n"):
        h.write_agent_config(self.config, self.pki, self.sock,
                             f"127.0.0.1:{self.port}", roles, extra)

    def start_agent(self):
        self.agent, self.address, self.metrics = h.start_agent(
            self.config, os.path.join(self.work, "agent.log"))

    def client(self, name):
        if name not in self.clients:
            self.clients[name] = h.Client(self.address, self.pki, name)
        return self.clients[name]

    def drop_clients(self):
        for c in self.clients.values():
            c.close()
        self.clients = {}

    def stop(self):
        self.drop_clients()
        self.agent.stop()
        self.devmemd.stop()

    def processes(self):
        return [self.agent, self.devmemd]


def reservations(env):
    code, resp = env.client("operator").code(
        env.client("operator").stub.ListReservations,
        env.client("operator").pb.ListReservationsRequest())
    assert code == "OK", resp
    return resp.reservations


def release_all(env):
    op = env.client("operator")
    for r in reservations(env):
        op.code(op.stub.Release, op.pb.ReleaseRequest(id=r.id))


def call_method(c, method, own_id):
    """One call of `method` as client `c`; returns the status code name."""
    pb = c.pb
    if method == "GetHost":
        return c.code(c.stub.GetHost, pb.GetHostRequest())[0]
    if method == "ListReservations":
        return c.code(c.stub.ListReservations, pb.ListReservationsRequest())[0]
    if method == "Reserve":
        return c.reserve(f"matrix-{time.time_ns()}")[0]
    if method == "Renew":
        return c.code(c.stub.Renew, pb.RenewRequest(id=own_id, ttl_s=600))[0]
    if method == "Release":
        return c.code(c.stub.Release, pb.ReleaseRequest(id=own_id))[0]
    if method == "Cordon":
        return c.code(c.stub.Cordon, pb.CordonRequest(reason="matrix"))[0]
    if method == "Uncordon":
        return c.code(c.stub.Uncordon, pb.UncordonRequest())[0]
    if method == "ApplyProfile":
        code, resp = c.code(c.stub.ApplyProfile, apply_request(c, 2))
        if code == "OK":  # put the config's profile back at once
            c.code(c.stub.RevertProfile, pb.RevertProfileRequest(
                nic="lo", change_id=resp.change.change_id))
        return code
    if method in ("ConfirmProfile", "RevertProfile"):
        req = getattr(pb, f"{method}Request")(nic="lo", change_id="pc-none")
        code = c.code(getattr(c.stub, method), req)[0]
        return "OK" if code == "NOT_FOUND" else code  # allowed, no such change
    stream = (c.stub.Watch(pb.WatchRequest(), timeout=10) if method == "Watch"
              else c.stub.Drain(pb.DrainRequest(reason="matrix", deadline_s=1),
                                timeout=10))
    try:
        next(stream)
        stream.cancel()
        return "OK"
    except c.grpc.RpcError as e:
        return e.code().name


MATRIX = {  # method -> roles allowed
    "GetHost": {"observer", "launcher", "operator"},
    "ListReservations": {"observer", "launcher", "operator"},
    "Watch": {"observer", "launcher", "operator"},
    "Reserve": {"launcher", "operator"},
    "Renew": {"launcher", "operator"},
    "Release": {"launcher", "operator"},
    "Cordon": {"operator"},
    "Uncordon": {"operator"},
    "Drain": {"operator"},
    "ApplyProfile": {"operator"},
    "ConfirmProfile": {"operator"},
    "RevertProfile": {"operator"},
}


def apply_request(c, pool_queues, within_s=30, **kw):
    return c.pb.ApplyProfileRequest(
        profile=c.devmem.NicProfile(nic="lo", pool_queues=pool_queues),
        confirm_within_s=within_s, **kw)


def nic_state(env):
    """lo's NicState as devmemd reports it (devmemctl, not the agent)."""
    return h.nic_state(os.path.dirname(env.sock), "lo")


def test_matrix(env):
    for method, allowed in MATRIX.items():
        for who in ["observer", "launcher", "operator", "norole"]:
            c = env.client(who)
            own = ""
            if method in ("Renew", "Release") and who in allowed:
                code, resp = c.reserve(f"own-{who}-{method}")
                assert code == "OK", resp
                own = resp.reservation.id
            elif method in ("Renew", "Release"):
                own = "r-0000000000000000"
            got = call_method(c, method, own)
            want = "OK" if who in allowed else "PERMISSION_DENIED"
            check(got == want, f"matrix: {who} {method} -> {got} (want {want})")
            if method in ("Cordon", "Drain") and got == "OK":
                op = env.client("operator")
                op.code(op.stub.Uncordon, op.pb.UncordonRequest())
            release_all(env)
    c = env.client("norole")
    code, detail = c.code(c.stub.GetHost, c.pb.GetHostRequest())
    check(code == "PERMISSION_DENIED" and "spiffe://fleet/nobody" in detail,
          "no role: PERMISSION_DENIED names the identity")


def test_handshake_failures(env):
    before = {cause: h.metric(env.metrics,
                              "devmem_agent_tls_handshake_failures_total",
                              f'cause="{cause}"')
              for cause in ("expired", "unknown_ca", "no_certificate",
                            "protocol_version", "not_tls")}
    for name, kw, cause in [("expired", {}, "expired"),
                            ("foreign", {}, "unknown_ca"),
                            ("launcher", {"with_cert": False}, "no_certificate")]:
        c = h.Client(env.address, env.pki, name, **kw)
        code, _ = c.code(c.stub.GetHost, c.pb.GetHostRequest(), timeout=3)
        c.close()
        check(code == "UNAVAILABLE", f"{name}: the handshake fails ({code})")
    tls12 = subprocess.run(
        ["openssl", "s_client", "-connect", env.address, "-tls1_2",
         "-cert", f"{env.pki}/launcher.pem", "-key", f"{env.pki}/launcher.key"],
        stdin=subprocess.DEVNULL, capture_output=True, timeout=10)
    check(tls12.returncode != 0, "a TLS 1.2 client is refused")
    host, port = env.address.rsplit(":", 1)
    import socket
    with socket.create_connection((host, int(port))) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        s.settimeout(5)
        try:
            s.recv(100)
        except OSError:
            pass
    time.sleep(0.3)
    for cause, was in before.items():
        now = h.metric(env.metrics, "devmem_agent_tls_handshake_failures_total",
                       f'cause="{cause}"')
        check(now is not None and now >= was + 1,
              f"tls failure counted: cause={cause} {was} -> {now}")
    log = env.agent.text()
    check("expired: client certificate: certificate has expired" in log,
          "the agent's log says why (expired)")


def test_ownership_and_tokens(env):
    a, b, op = env.client("launcher"), env.client("launcher2"), env.client("operator")
    code, made = a.reserve("own-job")
    assert code == "OK", made
    check(made.token.startswith("dmr1-"), "Reserve returns the token")
    check(made.reservation.owner == h.IDENTITIES["launcher"],
          "the owner is the caller's certificate identity")
    rid = made.reservation.id
    code, detail = b.code(b.stub.Renew, b.pb.RenewRequest(id=rid, ttl_s=60))
    check(code == "PERMISSION_DENIED", f"another launcher cannot Renew ({code})")
    code, detail = b.code(b.stub.Release, b.pb.ReleaseRequest(id=rid))
    check(code == "PERMISSION_DENIED" and h.IDENTITIES["launcher"] in detail,
          f"another launcher cannot Release ({code}: {detail})")
    code, listed = b.code(b.stub.ListReservations, b.pb.ListReservationsRequest())
    check(code == "OK" and made.token.encode() not in listed.SerializeToString(),
          "ListReservations never shows the token")
    code, again = a.reserve("own-job")  # no request_id: a second reservation
    code, resp = op.code(op.stub.Release, op.pb.ReleaseRequest(job_id="own-job"))
    check(code == "OK" and len(resp.released) == 2,
          "an operator releases anyone's, by job")
    code, resp = a.code(a.stub.Release, a.pb.ReleaseRequest(job_id="own-job"))
    check(code == "OK" and len(resp.released) == 0, "Release is idempotent")
    code, one = a.reserve("retry-job", request_id="k1")
    code, two = a.reserve("retry-job", request_id="k1")
    check(two.existing and two.token == one.token,
          "a retry with the same request_id returns the same token")
    release_all(env)


def test_bad_input(env):
    a, op = env.client("launcher"), env.client("operator")
    gpu_item = a.devmem.ReservationItem(gpu_pci_address="0000:99:00.0",
                                        queue_count=1)
    cases = [
        ("empty job id", lambda: a.reserve(""), "INVALID_ARGUMENT"),
        ("job id of 129 bytes", lambda: a.reserve("j" * 129), "INVALID_ARGUMENT"),
        ("non-printable job id", lambda: a.reserve("job\x01"), "INVALID_ARGUMENT"),
        ("0 queues", lambda: a.reserve("bad", queues=0), "INVALID_ARGUMENT"),
        ("more queues than the pool", lambda: a.reserve("bad", queues=3),
         "RESOURCE_EXHAUSTED"),
        ("unknown NIC", lambda: a.reserve("bad", nic="nonic0"), "NOT_FOUND"),
        ("unknown GPU", lambda: a.code(a.stub.Reserve, a.pb.ReserveRequest(
            job_id="bad", ttl_s=60, items=[gpu_item])), "NOT_FOUND"),
        ("TTL 0", lambda: a.reserve("bad", ttl=0), "INVALID_ARGUMENT"),
        ("TTL over 24 h", lambda: a.reserve("bad", ttl=86401), "INVALID_ARGUMENT"),
        ("oversized request", lambda: a.reserve("x" * 70000), "RESOURCE_EXHAUSTED"),
    ]
    for what, call, want in cases:
        code, detail = call()
        check(code == want, f"bad input, {what}: {code} (want {want}): {detail}")
        check(len(reservations(env)) == 0, f"bad input, {what}: nothing left")
    code, _ = op.code(op.stub.Cordon, op.pb.CordonRequest(reason="rack 7"))
    code, detail = a.reserve("while-cordoned")
    check(code == "FAILED_PRECONDITION" and "rack 7" in detail,
          f"Reserve while cordoned: {code}: {detail}")
    op.code(op.stub.Uncordon, op.pb.UncordonRequest())
    code, detail = op.code(op.stub.Cordon, op.pb.CordonRequest(reason=""))
    check(code == "INVALID_ARGUMENT", "Cordon without a reason")


def test_watch_and_drain(env):
    a, op = env.client("launcher"), env.client("operator")
    first = next(iter(a.stub.Watch(a.pb.WatchRequest(since_revision=0), timeout=10)))
    check(first.snapshot, "Watch from 0 starts with a snapshot")
    rev = first.revision
    code, made = a.reserve("watch-job")
    a.code(a.stub.Release, a.pb.ReleaseRequest(job_id="watch-job"))
    stream = a.stub.Watch(a.pb.WatchRequest(since_revision=rev), timeout=10)
    types, last = [], rev
    for msg in stream:
        for e in msg.events:
            check(e.revision > last, f"revision {e.revision} after {last}")
            last = e.revision
            types.append(e.type)
        if "reservation.released" in types:
            stream.cancel()
            break
    check(types[:2] == ["reservation.made", "reservation.released"],
          f"a watcher sees the events in order: {types}")
    stale = next(iter(a.stub.Watch(a.pb.WatchRequest(since_revision=1), timeout=10)))
    check(stale.snapshot or stale.events,
          "a revision from before the log answers (a snapshot if compacted)")
    code, made = a.reserve("drain-job")
    progress = list(op.stub.Drain(op.pb.DrainRequest(reason="upgrade", deadline_s=1),
                                  timeout=15))
    check(progress and progress[-1].deadline_passed and progress[-1].reservations == 1,
          "a drain with a deadline reports what remained")
    drain = op.stub.Drain(op.pb.DrainRequest(reason="upgrade", deadline_s=30),
                          timeout=30)
    next(drain)
    a.code(a.stub.Release, a.pb.ReleaseRequest(job_id="drain-job"))
    last = list(drain)[-1]
    check(last.done and not last.deadline_passed,
          "a drain completes when the job releases")
    code, detail = a.reserve("after-drain")
    check(code == "FAILED_PRECONDITION", "drained means cordoned")
    op.code(op.stub.Uncordon, op.pb.UncordonRequest())


def test_health_and_limits(env):
    o = env.client("observer")
    check(o.health() == b"\x08\x01", "grpc.health.v1 says SERVING")
    host = o.code(o.stub.GetHost, o.pb.GetHostRequest())[1]
    check(host.devmemd_reachable and host.health == "ready" and
          host.caller_role == "observer" and host.machine_id and host.kernel,
          f"GetHost: health {host.health}, role {host.caller_role}")
    lo = [n for n in host.nics if n.name == "lo"]
    check(lo and lo[0].pool_total == 2 and lo[0].pool_free == 2,
          "GetHost shows the pool")
    streams = [o.stub.Watch(o.pb.WatchRequest(), timeout=20) for _ in range(6)]
    for s in streams:
        next(s)
    code = "OK"
    try:
        next(o.stub.Watch(o.pb.WatchRequest(), timeout=10))
    except o.grpc.RpcError as e:
        code = e.code().name
    check(code == "RESOURCE_EXHAUSTED", f"max_streams: the 7th Watch gets {code}")
    for s in streams:
        s.cancel()
    time.sleep(2.5)  # the guard notices cancelled clients within a second
    check(h.metric(env.metrics, "devmem_agent_streams") == 0,
          "cancelled streams are gone")


def test_metrics_are_documented(env):
    import re
    import urllib.request
    body = urllib.request.urlopen(env.metrics + "/metrics", timeout=10).read().decode()
    exported = set(re.findall(r"^# TYPE (devmem_agent_[a-z_]+) ", body, re.M))
    with open(os.path.join(os.getcwd(), "docs/METRICS.md"), encoding="utf-8") as f:
        documented = set(re.findall(r"^\| `(devmem_agent_[a-z_]+)` \|", f.read(), re.M))
    check(len(exported) >= 10 and exported == documented,
          f"every agent family is in docs/METRICS.md and back: only exported "
          f"{sorted(exported - documented)}, only documented "
          f"{sorted(documented - exported)}")


def test_python_launcher(env):
    """client/examples/fleet_launcher.py (the documented example) against the
    real agent: GetHost to pick a NIC, Reserve, then Release."""
    import json
    base = ["/usr/bin/python3", os.path.join(os.getcwd(),
                                             "client/examples/fleet_launcher.py"),
            "--stubs", os.path.join(env.work, "gen"), "--ca", f"{env.pki}/ca.pem",
            "--cert", f"{env.pki}/launcher.pem", "--key", f"{env.pki}/launcher.key",
            "--json", "--job", "py-job", env.address]
    r = subprocess.run(base + ["--queues", "2", "--ttl", "60"],
                       capture_output=True, text=True)
    out = json.loads(r.stdout or "{}")
    made = out.get("hosts", {}).get(env.address, {})
    check(r.returncode == 0 and made.get("nic") == "lo" and
          len(made.get("queues", [])) == 2 and made.get("token", "").startswith("dmr1-"),
          f"the Python launcher reserves over mTLS: {made} {r.stderr[-300:]}")
    r = subprocess.run(base + ["--queues", "1"], capture_output=True, text=True)
    out = json.loads(r.stdout or "{}")
    check(r.returncode == 1 and "no NIC has 1 free" in out.get("failures", {}).get(
        env.address, ""), f"a full pool fails the launcher, exit 1: {out}")
    r = subprocess.run(base + ["--release"], capture_output=True, text=True)
    out = json.loads(r.stdout or "{}")
    check(r.returncode == 0 and len(out["hosts"][env.address]) == 1,
          f"the Python launcher releases the job: {out}")


def test_sighup(env):
    a = env.client("launcher")
    stream = a.stub.Watch(a.pb.WatchRequest(), timeout=60)
    next(stream)
    shutil.copy(os.path.join(env.pki, "agent.pem"),
                os.path.join(env.pki, "agent.pem.good"))
    roles = dict(ROLES)
    roles["observers"] = ["observer", "norole"]
    env.write_config(roles)
    env.agent.send(signal.SIGHUP)
    env.agent.wait_for("SIGHUP: reloaded")
    code, made = a.reserve("after-hup")
    msg = next(stream)
    check(any(e.type == "reservation.made" for e in msg.events),
          "an open Watch goes on across SIGHUP")
    n = env.client("norole")
    check(n.code(n.stub.GetHost, n.pb.GetHostRequest())[0] == "OK",
          "SIGHUP applies the new roles")
    with open(os.path.join(env.pki, "agent.pem"), "w") as f:
        f.write("not a certificate\n")
    env.agent.send(signal.SIGHUP)
    env.agent.wait_for("SIGHUP: reload failed")
    fresh = h.Client(env.address, env.pki, "observer")
    check(fresh.code(fresh.stub.GetHost, fresh.pb.GetHostRequest())[0] == "OK",
          "a bad file on SIGHUP: the agent serves on with the old ones")
    fresh.close()
    shutil.copy(os.path.join(env.pki, "agent.pem.good"),
                os.path.join(env.pki, "agent.pem"))
    stream.cancel()
    env.write_config(ROLES)
    env.agent.send(signal.SIGHUP)
    release_all(env)


def test_devmemd_restart(env):
    a, o = env.client("launcher"), env.client("observer")
    code, made = a.reserve("survivor", ttl=600)
    env.devmemd.stop()
    code, detail = a.reserve("while-down")
    check(code == "UNAVAILABLE" and "devmemd is unreachable" in detail,
          f"devmemd down: Reserve gets {code}: {detail}")
    host = o.code(o.stub.GetHost, o.pb.GetHostRequest())[1]
    check(not host.devmemd_reachable and host.health == "unreachable",
          "devmemd down: GetHost says unreachable")
    check(h.metric(env.metrics, "devmem_agent_devmemd_up") == 0, "devmemd_up 0")
    env.devmemd = h.start_devmemd(os.path.join(env.work, "host"), "lo")
    deadline, code = time.time() + 15, ""
    while time.time() < deadline and code != "OK":
        code, resp = a.code(a.stub.ListReservations, a.pb.ListReservationsRequest())
        time.sleep(0.2)
    check(code == "OK" and [r.id for r in resp.reservations] == [made.reservation.id],
          "after devmemd restarts, the agent reconnects and the reservation is there")


def wait_for_revert(env, change_id, timeout=15):
    deadline = time.time() + timeout
    while time.time() < deadline:
        st = nic_state(env)
        if st.get("pending_change", {}).get("change_id") != change_id:
            return st
        time.sleep(0.1)
    raise AssertionError(f"change {change_id} did not revert in {timeout} s")


def same_nic(a, b):
    return h.nic_settings(a) == h.nic_settings(b)


def test_profile_change(env):
    op = env.client("operator")
    before = nic_state(env)
    # Unconfirmed: devmemd puts back exactly what it recorded, by itself.
    code, resp = op.code(op.stub.ApplyProfile, apply_request(op, 3, within_s=2))
    assert code == "OK", f"ApplyProfile: {code} {resp}"
    check(len(resp.state.pool_queues) == 3, "ApplyProfile: three queues")
    check(resp.change.by == h.IDENTITIES["operator"],
          "the change is recorded as the operator's identity")
    check(len(nic_state(env)["pool_queues"]) == 3, "the new profile is in force")
    after = wait_for_revert(env, resp.change.change_id)
    check(same_nic(after, before),
          "unconfirmed: the NIC is back as recorded (pool, actual settings)")
    # kill -9 of devmemd between apply and confirm: still reverts.
    code, resp = op.code(op.stub.ApplyProfile, apply_request(op, 3, within_s=4))
    env.devmemd.stop(signal.SIGKILL)
    env.devmemd = h.start_devmemd(os.path.join(env.work, "host"), "lo")
    check(nic_state(env).get("pending_change", {}).get("change_id")
          == resp.change.change_id, "after kill -9 the change is still pending")
    after = wait_for_revert(env, resp.change.change_id)
    check(same_nic(after, before), "kill -9 between apply and confirm: reverted")
    # Confirmed: stays; RevertProfile of it is NOT_FOUND.
    for attempt in range(50):  # the agent reconnects to the new devmemd
        code, resp = op.code(op.stub.ApplyProfile, apply_request(op, 1))
        if code != "UNAVAILABLE":
            break
        time.sleep(0.2)
    ask = dict(nic="lo", change_id=resp.change.change_id)
    code, _ = op.code(op.stub.ConfirmProfile, op.pb.ConfirmProfileRequest(**ask))
    check(code == "OK" and len(nic_state(env)["pool_queues"]) == 1,
          "confirmed: the new profile stays")
    code, _ = op.code(op.stub.RevertProfile, op.pb.RevertProfileRequest(**ask))
    check(code == "NOT_FOUND", f"reverting a confirmed change: {code}")
    # A NIC with a reservation: refused, unless drain_first (which waits).
    code, resp = op.code(op.stub.ApplyProfile, apply_request(op, 2))
    check(code == "OK", "back to two queues")
    op.code(op.stub.ConfirmProfile, op.pb.ConfirmProfileRequest(
        nic="lo", change_id=resp.change.change_id))
    code, made = env.client("launcher").reserve("holds-lo")
    code, detail = op.code(op.stub.ApplyProfile, apply_request(op, 1))
    check(code == "FAILED_PRECONDITION" and "reserved" in detail
          and "drain" in detail, f"reserved queues: {code}: {detail}")
    code, detail = op.code(op.stub.ApplyProfile, apply_request(
        op, 1, drain_first=True, drain_deadline_s=1))
    check(code == "DEADLINE_EXCEEDED" and made.reservation.id in detail,
          f"drain_first past its deadline names what remains: {code}: {detail}")
    code, resp = op.code(op.stub.ApplyProfile, apply_request(op, 1), timeout=1)
    check(code == "FAILED_PRECONDITION", "nothing was applied meanwhile")
    # The launcher releases while a drain_first apply waits: it applies.
    release = threading.Timer(1.0, release_all, [env])
    release.start()
    code, resp = op.code(op.stub.ApplyProfile, apply_request(
        op, 1, within_s=2, drain_first=True, drain_deadline_s=20))
    release.join()
    check(code == "OK" and len(resp.state.pool_queues) == 1,
          f"drain_first applies once the host is drained: {code}")
    host = op.code(op.stub.GetHost, op.pb.GetHostRequest())[1]
    check(host.cordon.cordoned, "drain_first leaves the host cordoned")
    wait_for_revert(env, resp.change.change_id)
    op.code(op.stub.Uncordon, op.pb.UncordonRequest())
    # Bad input.
    for what, req, want in [
            ("no nic", op.pb.ApplyProfileRequest(), "INVALID_ARGUMENT"),
            ("confirm_within_s 3601", apply_request(op, 2, within_s=3601),
             "INVALID_ARGUMENT"),
            ("unmanaged NIC", op.pb.ApplyProfileRequest(
                profile=op.devmem.NicProfile(nic="eth9", pool_queues=1)),
             "NOT_FOUND")]:
        code, detail = op.code(op.stub.ApplyProfile, req)
        check(code == want, f"ApplyProfile, {what}: {code}: {detail}")
    check(same_nic(nic_state(env), before), "bad input changed nothing")


def test_agent_kill9(env):
    env.drop_clients()
    env.agent.stop(signal.SIGKILL)
    env.start_agent()
    rs = reservations(env)
    check(len(rs) == 1 and rs[0].job_id == "survivor",
          "kill -9 of the agent loses nothing (devmemd holds the state)")
    release_all(env)


def main():
    return h.run("agent_test", Env, [
        test_matrix, test_handshake_failures, test_ownership_and_tokens,
        test_bad_input, test_watch_and_drain, test_health_and_limits,
        test_metrics_are_documented, test_python_launcher, test_sighup,
        test_devmemd_restart, test_agent_kill9, test_profile_change])


if __name__ == "__main__":
    sys.exit(main())
