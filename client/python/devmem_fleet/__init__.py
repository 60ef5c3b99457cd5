"""devmem_fleet: a launcher's client for a fleet of devmem-agents, in Python.

The operations of the devmem-fleet command line (docs/FLEET.md) but
rollout: hosts, reserve, renew, release, cordon, uncordon, drain and watch,
with
the same all-or-nothing reserve: reserve on every host in parallel with a
short provisional TTL, renew to the full TTL once every host has answered,
otherwise release the job on every host (also those that failed or timed
out) and, when the only failures were contention, back off and retry.

    from devmem_fleet import Fleet
    fleet = Fleet(["gpu-1:7443", "gpu-2:7443"], ca="ca.pem",
                  cert="launcher.pem", key="launcher.key")
    gang = fleet.reserve("train-42", queues=1, ttl_s=3600)
    if gang.ok:
        for host, token in gang.tokens.items():
            ...  # hand token to that host's workload as DEVMEM_RESERVATION
    fleet.release("train-42")

Needs Debian's python3-grpcio and python3-protobuf. The stubs come with the
package (generated from proto/ at build time); `stubs=` points elsewhere.
"""
import os
import random
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

__all__ = ["Fleet", "GangResult", "HostOutcome", "FleetError"]


def _load_stubs(stubs):
    where = stubs or os.path.join(os.path.dirname(__file__), "_gen")
    if where not in sys.path:
        sys.path.insert(0, where)
    import grpc  # noqa: F401  (python3-grpcio)
    from proto.fleet.v1 import fleet_pb2, fleet_pb2_grpc
    from proto.devmem.v1 import devmem_pb2
    return grpc, fleet_pb2, fleet_pb2_grpc, devmem_pb2


class FleetError(Exception):
    """Bad arguments (no hosts, unreadable credentials)."""


@dataclass
class HostOutcome:
    host: str
    reserved: bool = False
    reservation: object = None  # devmem.v1.Reservation
    token: str = ""
    error: str = ""
    rolled_back: bool = False


@dataclass
class GangResult:
    ok: bool
    attempts: int
    provisional_ttl_s: int
    hosts: list = field(default_factory=list)

    @property
    def tokens(self):
        """{host: token} when ok, else {}."""
        return {h.host: h.token for h in self.hosts} if self.ok else {}

    @property
    def failures(self):
        return {h.host: h.error for h in self.hosts if h.error}


class Fleet:
    """One mTLS channel per agent; every operation asks the hosts in
    parallel, at most `parallel` at once, each with `timeout` seconds."""

    def __init__(self, hosts, ca, cert, key, server_name="", timeout=10.0,
                 parallel=64, stubs=None):
        if not hosts:
            raise FleetError("no hosts: give HOST:PORT addresses")
        if len(set(hosts)) != len(hosts):
            raise FleetError("a host is listed twice")
        self.grpc, self.pb, pb_grpc, self.devmem = _load_stubs(stubs)
        try:
            creds = self.grpc.ssl_channel_credentials(
                open(ca, "rb").read(), open(key, "rb").read(),
                open(cert, "rb").read())
        except OSError as e:
            raise FleetError(f"cannot read the TLS files: {e}") from e
        # A failed connect is tried again after 100 ms (see _connect).
        opts = [("grpc.use_local_subchannel_pool", 1),
                ("grpc.initial_reconnect_backoff_ms", 100)]
        if server_name:
            opts.append(("grpc.ssl_target_name_override", server_name))
        self.hosts = list(hosts)
        self.timeout = timeout
        self.parallel = max(1, parallel)
        self._channels = [self.grpc.secure_channel(h, creds, options=opts)
                          for h in self.hosts]
        self._stubs = [pb_grpc.FleetStub(c) for c in self._channels]
        self._connected = [False] * len(self.hosts)

    def close(self):
        for c in self._channels:
            c.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- plumbing ---------------------------------------------------------
    def _connect(self, i):
        """Waits (at most 1 s) for host i's first connection. gRPC 1.51 can
        fail a good TCP connect under load with a clobbered errno ("No such
        file or directory", grpc/grpc#35064); the channel then reconnects
        within 100 ms. A host that is down costs that second, and its calls
        then fail with the real error."""
        if self._connected[i]:
            return
        try:
            self.grpc.channel_ready_future(self._channels[i]).result(
                timeout=min(1.0, self.timeout))
            self._connected[i] = True
        except self.grpc.FutureTimeoutError:
            pass

    def _each(self, fn):
        """[fn(i, stub) for every host], in parallel; exceptions become
        ("CODE: details") strings."""
        def one(i):
            try:
                self._connect(i)
                return fn(i, self._stubs[i])
            except self.grpc.RpcError as e:
                return f"{e.code().name}: {e.details()}"
        with ThreadPoolExecutor(max_workers=min(self.parallel, len(self.hosts))) as ex:
            return list(ex.map(one, range(len(self.hosts))))

    # -- operations -------------------------------------------------------
    def get_hosts(self):
        """{host: fleet.v1.Host or "CODE: details"}."""
        got = self._each(lambda i, s: s.GetHost(self.pb.GetHostRequest(),
                                                timeout=self.timeout))
        return dict(zip(self.hosts, got))

    def release(self, job_id, request_id=""):
        """{host: [released ids] or "CODE: details"}: the job's reservations
        (only those of request_id, if given). Idempotent, so it waits (up to
        the timeout) for a host that is reconnecting."""
        got = self._each(lambda i, s: list(s.Release(
            self.pb.ReleaseRequest(job_id=job_id, request_id=request_id),
            timeout=self.timeout, wait_for_ready=True).released))
        return dict(zip(self.hosts, got))

    def renew(self, job_id, ttl_s):
        """{host: [renewed ids] or "CODE: details"}."""
        def one(i, s):
            have = s.ListReservations(self.pb.ListReservationsRequest(job_id=job_id),
                                      timeout=self.timeout, wait_for_ready=True)
            ids = []
            for r in have.reservations:
                if r.state == self.devmem.RESERVATION_STATE_ACTIVE:
                    s.Renew(self.pb.RenewRequest(id=r.id, ttl_s=ttl_s),
                            timeout=self.timeout)
                    ids.append(r.id)
            return ids or "NOT_FOUND: no active reservation of this job"
        return dict(zip(self.hosts, self._each(one)))

    def _existing(self, stub, job_id, request_id):
        """The items of an earlier try of this request, or None."""
        item = self.devmem.ReservationItem
        have = stub.ListReservations(self.pb.ListReservationsRequest(job_id=job_id),
                                     timeout=self.timeout)
        for r in have.reservations:
            if (r.request_id == request_id and
                    r.state == self.devmem.RESERVATION_STATE_ACTIVE):
                return [item(gpu_pci_address=it.gpu_pci_address, queue_count=len(it.queues))
                        if it.gpu_pci_address else
                        item(nic=it.nic, queue_count=len(it.queues)) for it in r.items]
        return None

    def _items(self, stub, job_id, request_id, queues, per_gpu, nic):
        """The items to ask for: one per GPU, else `nic`, else the first NIC
        with room, else (no room) an earlier try's, held by this request."""
        item = self.devmem.ReservationItem
        if nic and not per_gpu:
            return [item(nic=nic, queue_count=queues)]
        host = stub.GetHost(self.pb.GetHostRequest(), timeout=self.timeout)
        if not host.devmemd_reachable:
            raise _Refused(f"devmemd is unreachable: {host.devmemd_error}")
        if per_gpu:
            if not host.gpus:
                raise _Refused("per_gpu: the host reports no GPU")
            return [item(gpu_pci_address=g.pci_address, queue_count=queues)
                    for g in host.gpus]
        for n in host.nics:
            if n.pool_free >= queues:
                return [item(nic=n.name, queue_count=queues)]
        earlier = self._existing(stub, job_id, request_id)
        if earlier:
            return earlier
        raise _Refused(f"RESOURCE_EXHAUSTED: no NIC has {queues} free devmem queue(s)")

    def reserve(self, job_id, queues=1, ttl_s=3600, per_gpu=False, nic="",
                request_id="devmem-fleet", attempts=3, backoff_s=0.2,
                redeemer_uid=None):
        """All hosts or none (see the module's doc). Returns a GangResult."""
        provisional = min(ttl_s, max(30, 3 * max(1, int(self.timeout))))
        result = None
        for attempt in range(1, max(1, attempts) + 1):
            def one(i, s):
                out = HostOutcome(self.hosts[i])
                try:
                    ask = self.pb.ReserveRequest(
                        job_id=job_id, request_id=request_id, ttl_s=provisional,
                        items=self._items(s, job_id, request_id, queues, per_gpu, nic))
                    if redeemer_uid is not None:
                        ask.redeemer_uid = redeemer_uid
                    try:
                        made = s.Reserve(ask, timeout=self.timeout)
                    except self.grpc.RpcError as e:
                        # A retry whose earlier try got other items (another
                        # NIC): ask for exactly those, as the same request.
                        earlier = (e.code() == self.grpc.StatusCode.ALREADY_EXISTS
                                   and self._existing(s, job_id, request_id))
                        if not earlier:
                            raise
                        del ask.items[:]
                        ask.items.extend(earlier)
                        made = s.Reserve(ask, timeout=self.timeout)
                    out.reservation, out.token = made.reservation, made.token
                    if provisional < ttl_s:
                        out.reservation = s.Renew(self.pb.RenewRequest(
                            id=made.reservation.id, ttl_s=ttl_s),
                            timeout=self.timeout).reservation
                    out.reserved = True
                except _Refused as e:
                    out.error = str(e)
                except self.grpc.RpcError as e:
                    out.error = f"{e.code().name}: {e.details()}"
                return out
            hosts = self._each(one)
            result = GangResult(all(h.reserved for h in hosts), attempt, provisional, hosts)
            if result.ok:
                return result
            released = self.release(job_id, request_id)  # this request's only
            for h in hosts:
                r = released[h.host]
                h.rolled_back = not isinstance(r, str)
                if isinstance(r, str):
                    h.error = (f"{h.error + '; ' if h.error else ''}rollback Release "
                               f"failed ({r}): the reservation expires within "
                               f"{provisional} s")
                elif h.reserved and not h.error:
                    h.error = "reserved, then rolled back"
            contention = all(h.reserved or h.error.startswith("RESOURCE_EXHAUSTED")
                             for h in hosts)
            if not contention or attempt == attempts:
                return result
            time.sleep(backoff_s * (2 ** (attempt - 1)) * random.uniform(0.5, 1.5))
        return result

    def cordon(self, reason):
        got = self._each(lambda i, s: s.Cordon(self.pb.CordonRequest(reason=reason),
                                               timeout=self.timeout).state)
        return dict(zip(self.hosts, got))

    def uncordon(self):
        got = self._each(lambda i, s: s.Uncordon(self.pb.UncordonRequest(),
                                                 timeout=self.timeout).state)
        return dict(zip(self.hosts, got))

    def drain(self, reason, max_unavailable=1, deadline_s=3600):
        """Cordons each host and waits until its jobs are gone (or its
        deadline), max_unavailable hosts at a time. {host: the last
        devmem.v1.DrainProgress (done, or what remained) or "CODE: details"}."""
        step = max(1, max_unavailable)
        out = {}

        def one(i):
            try:
                self._connect(i)
                last = None
                for p in self._stubs[i].Drain(
                        self.pb.DrainRequest(reason=reason, deadline_s=deadline_s),
                        timeout=deadline_s + self.timeout):
                    last = p
                return last
            except self.grpc.RpcError as e:
                return f"{e.code().name}: {e.details()}"
        for first in range(0, len(self.hosts), step):
            wave = range(first, min(len(self.hosts), first + step))
            with ThreadPoolExecutor(max_workers=len(wave)) as ex:
                for i, got in zip(wave, ex.map(one, wave)):
                    out[self.hosts[i]] = got
        return out

    def watch(self, since_revision=0):
        """Every host's events as they come: yields (host, item), item a
        devmem.v1.WatchResponse (a snapshot, or events in revision order) or,
        when a host's stream ends, "CODE: details" (that host is then done).
        Closing the generator cancels every stream."""
        import queue
        import threading
        got = queue.Queue()
        streams = [s.Watch(self.pb.WatchRequest(since_revision=since_revision))
                   for s in self._stubs]

        def follow(host, stream):
            try:
                for msg in stream:
                    got.put((host, msg))
                got.put((host, "OK: the stream ended"))
            except self.grpc.RpcError as e:
                got.put((host, f"{e.code().name}: {e.details()}"))
        threads = [threading.Thread(target=follow, args=(h, st), daemon=True)
                   for h, st in zip(self.hosts, streams)]
        for t in threads:
            t.start()
        try:
            open_streams = len(streams)
            while open_streams:
                host, item = got.get()
                if isinstance(item, str):
                    open_streams -= 1
                yield host, item
        finally:
            for st in streams:
                st.cancel()


class _Refused(Exception):
    """A host that cannot be asked (no room, devmemd down): its error text."""


