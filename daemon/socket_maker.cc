#include "daemon/socket_maker.h"

#include <sys/socket.h>

#include <algorithm>
#include <functional>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "daemon/session/socket_broker.h"

namespace devmem {
namespace {

int FamilyOf(devmem::v1::AddressFamily f) {
  switch (f) {
    case devmem::v1::ADDRESS_FAMILY_INET:
      return AF_INET;
    case devmem::v1::ADDRESS_FAMILY_INET6:
      return AF_INET6;
    default:
      return AF_UNSPEC;
  }
}

void FillAddress(const SockAddr& a, devmem::v1::SocketAddress* out) {
  out->set_ip(AddressIp(a));
  out->set_port(AddressPort(a));
}

// A batch's items name their session by the call's token only.
absl::Status CheckItemToken(const std::string& item, const std::string& call,
                            int index) {
  if (item.empty() || item == call) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("item ", index,
                   ": session_token differs from the call's; leave it empty "
                   "(items belong to the call's session)"));
}

absl::Status CheckItemCount(int n, absl::string_view what) {
  if (n >= 1 && n <= kMaxSocketsPerCall) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat(what, " has ", n, " items; send 1 to ", kMaxSocketsPerCall,
                   " per call (split larger sets over several calls)"));
}

// A failed item's answer: its code and message, nothing else.
template <typename Result>
void SetFailure(const absl::Status& s, Result* out) {
  out->Clear();
  out->set_code(static_cast<int>(s.code()));
  out->set_message(absl::StrCat(s.message()));
}

}  // namespace

absl::StatusOr<UniqueFd> SocketMaker::TakeDeposit(SessionManager* sessions,
                                                  uint64_t session,
                                                  const std::string& ticket,
                                                  absl::string_view field) {
  if (ticket.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        field,
        " is required: send the fd in a Deposit frame on the session "
        "socket and pass the ticket from the Deposited answer"));
  }
  auto fd = sessions->Redeem(session, ticket);
  if (!fd.ok()) {
    return absl::Status(fd.status().code(),
                        absl::StrCat(field, ": ", fd.status().message()));
  }
  return fd;
}

absl::Status SocketMaker::Listen(uint64_t session,
                                 const devmem::v1::ListenRequest& req,
                                 devmem::v1::SocketResponse* resp) {
  Made made;
  absl::Status s = ListenOne(session, req, resp, &made);
  if (!s.ok()) return s;
  return Settle(session, {made});
}

absl::Status SocketMaker::Connect(uint64_t session,
                                  const devmem::v1::ConnectRequest& req,
                                  devmem::v1::SocketResponse* resp) {
  Made made;
  absl::Status s = ConnectOne(session, req, resp, &made);
  if (!s.ok()) return s;
  return Settle(session, {made});
}

absl::Status SocketMaker::Steer(uint64_t session,
                                const devmem::v1::SteerRequest& req,
                                devmem::v1::FlowRule* rule) {
  absl::StatusOr<ToSteer> item = PrepareSteer(session, req, nullptr);
  if (!item.ok()) return item.status();
  Made made;
  absl::Status s = SteerInto(session, item->binding, item->tuple, rule, &made);
  if (!s.ok()) return s;
  return Settle(session, {made});
}

template <typename Result>
uint32_t SocketMaker::SettleItems(uint64_t session, int n,
                                  const std::vector<Made>& made,
                                  const std::vector<int>& ok_items,
                                  const std::function<Result*(int)>& result) {
  // One wait for every rule of the call (group commit).
  absl::Status settled = Settle(session, made);
  if (settled.ok()) return static_cast<uint32_t>(n) - ok_items.size();
  for (int i : ok_items) SetFailure(settled, result(i));
  return static_cast<uint32_t>(n);
}

absl::Status SocketMaker::OpenSockets(uint64_t session,
                                      const devmem::v1::OpenSocketsRequest& req,
                                      devmem::v1::OpenSocketsResponse* resp) {
  absl::Status count = CheckItemCount(req.sockets_size(), "OpenSockets");
  if (!count.ok()) return count;
  for (int i = 0; i < req.sockets_size(); ++i) resp->add_results();
  auto result = [&](int i) { return resp->mutable_results(i); };
  std::vector<Made> made;
  std::vector<int> ok_items;
  // Connects are made and bound in order, steered together, then all of
  // their SYNs go out, and they are waited for together.
  std::vector<int> dial_items;
  std::vector<Dialing> dialing;
  // Listeners are made in order, then steered together (one hold of the
  // NicManager lock for all their rules) and parked.
  std::vector<int> listen_items;
  std::vector<Listener> listeners;
  RouteSources routes;  // the call's connects dial the same few peers
  NicMemo nics;         // and name the same binding
  for (int i = 0; i < req.sockets_size(); ++i) {
    const devmem::v1::SocketRequest& item = req.sockets(i);
    absl::Status s;
    if (item.has_listen()) {
      s = CheckItemToken(item.listen().session_token(), req.session_token(), i);
      if (s.ok()) {
        absl::StatusOr<Listener> l =
            MakeListener(session, item.listen(), &nics);
        if (l.ok()) {
          listen_items.push_back(i);
          listeners.push_back(*std::move(l));
          continue;
        }
        s = l.status();
      }
    } else if (item.has_connect()) {
      s = CheckItemToken(item.connect().session_token(), req.session_token(),
                         i);
      Dialing d;
      if (s.ok()) {
        s = ConnectPrepare(session, item.connect(), &d, &routes, &nics);
      }
      if (s.ok()) {
        dial_items.push_back(i);
        dialing.push_back(std::move(d));
        continue;
      }
    } else {
      s = absl::InvalidArgumentError(absl::StrCat(
          "item ", i, " must set exactly one of listen and connect"));
    }
    SetFailure(s, result(i));
  }
  SteerListeners(session, listen_items, listeners, result, &made, &ok_items);
  SteerAndDial(session, dial_items, dialing, result);
  FinishDialing(session, dial_items, dialing, result, &made, &ok_items);
  resp->set_failed(
      SettleItems(session, req.sockets_size(), made, ok_items,
                  std::function<devmem::v1::SocketResult*(int)>(result)));
  return absl::OkStatus();
}

void SocketMaker::FinishDialing(
    uint64_t session, const std::vector<int>& items,
    std::vector<Dialing>& dialing,
    const std::function<devmem::v1::SocketResult*(int)>& result,
    std::vector<Made>* made, std::vector<int>* ok_items) {
  std::vector<PendingConnect> pending;
  pending.reserve(dialing.size());
  for (Dialing& d : dialing) pending.push_back(std::move(d.pending));
  const std::vector<absl::Status> connected =
      FinishConnects(absl::MakeSpan(pending));
  for (size_t k = 0; k < dialing.size(); ++k) {
    dialing[k].pending = std::move(pending[k]);
    devmem::v1::SocketResult* out = result(items[k]);
    absl::Status s = ConnectFinish(session, connected[k], &dialing[k],
                                   out->mutable_socket());
    if (!s.ok()) {
      SetFailure(s, out);
      continue;
    }
    made->push_back(dialing[k].made);
    ok_items->push_back(items[k]);
  }
}

absl::Status SocketMaker::SteerMany(uint64_t session,
                                    const devmem::v1::SteerManyRequest& req,
                                    devmem::v1::SteerManyResponse* resp) {
  absl::Status count = CheckItemCount(req.items_size(), "SteerMany");
  if (!count.ok()) return count;
  for (int i = 0; i < req.items_size(); ++i) resp->add_results();
  auto result = [&](int i) { return resp->mutable_results(i); };
  // Each deposit is taken, checked and bound in order; then all of their
  // rules go in under one hold of the NicManager lock; then one wait.
  std::vector<int> items;
  std::vector<ToSteer> steer;
  NicMemo nics;  // a call's items usually name one binding
  for (int i = 0; i < req.items_size(); ++i) {
    absl::Status s =
        CheckItemToken(req.items(i).session_token(), req.session_token(), i);
    if (s.ok()) {
      absl::StatusOr<ToSteer> item = PrepareSteer(session, req.items(i), &nics);
      if (item.ok()) {
        items.push_back(i);
        steer.push_back(*std::move(item));
        continue;
      }
      s = item.status();
    }
    SetFailure(s, result(i));
  }
  uint64_t durable_at = 0;
  std::vector<absl::StatusOr<devmem::v1::FlowRule>> rules =
      SteerAll(session, steer, &durable_at);
  std::vector<Made> made;
  std::vector<int> ok_items;
  for (size_t k = 0; k < steer.size(); ++k) {
    devmem::v1::SteerResult* out = result(items[k]);
    if (!rules[k].ok()) {
      SetFailure(rules[k].status(), out);
      continue;
    }
    Made m;
    m.durable_at = durable_at;
    m.binding = steer[k].binding;
    m.location = rules[k]->location();
    *out->mutable_rule() = *std::move(rules[k]);
    made.push_back(std::move(m));
    ok_items.push_back(items[k]);
  }
  resp->set_failed(
      SettleItems(session, req.items_size(), made, ok_items,
                  std::function<devmem::v1::SteerResult*(int)>(result)));
  return absl::OkStatus();
}

absl::Status SocketMaker::Settle(uint64_t session,
                                 const std::vector<Made>& made) {
  uint64_t last = 0;
  for (const Made& m : made) last = std::max(last, m.durable_at);
  absl::Status durable = d_.nics->AwaitDurable(last);
  if (durable.ok()) return durable;
  for (const Made& m : made) Undo(session, m);
  return durable;
}

void SocketMaker::Undo(uint64_t session, const Made& made) {
  if (!made.ticket.empty()) {
    // Taken back unredeemed: the answer never reached the client.
    (void)d_.sessions->Redeem(session, made.ticket);
  }
  if (made.binding != 0) {
    (void)d_.nics->RemoveFlow(session, made.binding, made.location);
  }
}

absl::Status SocketMaker::Park(uint64_t session, UniqueFd fd,
                               const std::string& nic, uint32_t ifindex,
                               devmem::v1::SocketResponse* resp,
                               const SockAddr* local) {
  absl::Status charged = d_.sessions->ChargeSocket(session);
  if (!charged.ok()) return charged;
  if (local != nullptr) {
    FillAddress(*local, resp->mutable_local());
  } else if (auto asked = LocalAddress(fd.get_unowned()); asked.ok()) {
    FillAddress(*asked, resp->mutable_local());
  }
  auto ticket = d_.sessions->IssueTicket(session, std::move(fd), kFdKindSocket);
  if (!ticket.ok()) return ticket.status();
  resp->set_ticket(*ticket);
  resp->set_ticket_ttl_ms(static_cast<uint32_t>(
      absl::ToInt64Milliseconds(d_.sessions->ticket_ttl())));
  resp->set_nic(nic);
  resp->set_ifindex(ifindex);
  return absl::OkStatus();
}

absl::Status SocketMaker::ListenOne(uint64_t session,
                                    const devmem::v1::ListenRequest& req,
                                    devmem::v1::SocketResponse* resp,
                                    Made* made) {
  absl::StatusOr<Listener> l = MakeListener(session, req, nullptr);
  if (!l.ok()) return l.status();
  if (l->binding != 0) {
    absl::Status steered =
        SteerInto(session, l->binding, l->tuple, resp->mutable_rule(), made);
    if (!steered.ok()) return steered;
  }
  return ParkListener(session, &*l, resp, made);
}

absl::StatusOr<SocketMaker::Listener> SocketMaker::MakeListener(
    uint64_t session, const devmem::v1::ListenRequest& req, NicMemo* memo) {
  Listener l;
  auto nic = SocketNic(session, req.nic(), req.binding(), memo);
  if (!nic.ok()) return nic.status();
  l.nic = *std::move(nic);
  auto local = ParseSockAddr(req.local().ip(), req.local().port(),
                             FamilyOf(req.family()));
  if (!local.ok()) return local.status();
  if (req.backlog() > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("backlog ", req.backlog(), " is out of range [0, 65535]"));
  }
  const int backlog = req.backlog() != 0
                          ? static_cast<int>(req.backlog())
                          : static_cast<int>(d_.config->default_backlog());
  auto fd = CreateBoundListener(l.nic.nic, *local, backlog);
  if (!fd.ok()) return fd.status();
  l.fd = *std::move(fd);
  auto bound = LocalAddress(l.fd.get_unowned());
  if (!bound.ok()) return bound.status();
  l.bound = *bound;
  if (req.binding() != 0) {
    // The rule goes in before the socket is handed over, so the first SYN
    // already lands on the binding's queue.
    auto tuple = ListenerFlowTuple(l.bound);
    if (!tuple.ok()) return tuple.status();
    l.tuple = *std::move(tuple);
    l.binding = req.binding();
  }
  return l;
}

absl::Status SocketMaker::ParkListener(uint64_t session, Listener* l,
                                       devmem::v1::SocketResponse* resp,
                                       Made* made) {
  absl::Status parked = Park(session, std::move(l->fd), l->nic.nic,
                             l->nic.ifindex, resp, &l->bound);
  if (!parked.ok()) {
    Undo(session, *made);
    return parked;
  }
  made->ticket = resp->ticket();
  return absl::OkStatus();
}

template <typename Item>
std::vector<absl::StatusOr<devmem::v1::FlowRule>> SocketMaker::SteerAll(
    uint64_t session, const std::vector<Item>& items, uint64_t* durable_at) {
  std::vector<NicManager::FlowToSteer> flows;
  for (const Item& item : items) {
    if (item.binding != 0) flows.push_back({item.binding, item.tuple});
  }
  std::vector<absl::StatusOr<devmem::v1::FlowRule>> steered;
  if (!flows.empty()) {
    steered = d_.nics->SteerFlows(session, flows, durable_at);
  }
  std::vector<absl::StatusOr<devmem::v1::FlowRule>> out;
  out.reserve(items.size());
  size_t next = 0;
  for (const Item& item : items) {
    if (item.binding != 0) {
      out.push_back(std::move(steered[next++]));
    } else {
      out.push_back(devmem::v1::FlowRule());
    }
  }
  return out;
}

absl::Status SocketMaker::TakeRule(uint64_t binding, uint64_t durable_at,
                                   absl::StatusOr<devmem::v1::FlowRule>* rule,
                                   devmem::v1::SocketResponse* resp,
                                   Made* made) {
  if (binding == 0) return absl::OkStatus();
  if (!rule->ok()) return rule->status();
  made->durable_at = durable_at;
  made->binding = binding;
  made->location = (*rule)->location();
  *resp->mutable_rule() = *std::move(*rule);
  return absl::OkStatus();
}

void SocketMaker::SteerListeners(
    uint64_t session, const std::vector<int>& items,
    std::vector<Listener>& listeners,
    const std::function<devmem::v1::SocketResult*(int)>& result,
    std::vector<Made>* made, std::vector<int>* ok_items) {
  uint64_t durable_at = 0;
  std::vector<absl::StatusOr<devmem::v1::FlowRule>> rules =
      SteerAll(session, listeners, &durable_at);
  for (size_t k = 0; k < listeners.size(); ++k) {
    Listener& l = listeners[k];
    devmem::v1::SocketResult* out = result(items[k]);
    Made m;
    absl::Status steered =
        TakeRule(l.binding, durable_at, &rules[k], out->mutable_socket(), &m);
    if (!steered.ok()) {
      SetFailure(steered, out);
      continue;
    }
    absl::Status parked = ParkListener(session, &l, out->mutable_socket(), &m);
    if (!parked.ok()) {
      SetFailure(parked, out);
      continue;
    }
    made->push_back(std::move(m));
    ok_items->push_back(items[k]);
  }
}

absl::Status SocketMaker::ConnectOne(uint64_t session,
                                     const devmem::v1::ConnectRequest& req,
                                     devmem::v1::SocketResponse* resp,
                                     Made* made) {
  Dialing d;
  absl::Status started = ConnectStart(session, req, resp, &d);
  if (!started.ok()) return started;
  absl::Status done = FinishConnects(absl::MakeSpan(&d.pending, 1))[0];
  absl::Status finished = ConnectFinish(session, done, &d, resp);
  *made = d.made;
  return finished;
}

absl::Status SocketMaker::ConnectStart(uint64_t session,
                                       const devmem::v1::ConnectRequest& req,
                                       devmem::v1::SocketResponse* resp,
                                       Dialing* d) {
  absl::Status s = ConnectPrepare(session, req, d, nullptr, nullptr);
  if (!s.ok()) return s;
  if (d->binding != 0) {
    s = SteerInto(session, d->binding, d->tuple, resp->mutable_rule(),
                  &d->made);
    if (!s.ok()) return s;
  }
  s = Dial(&d->pending);
  if (!s.ok()) Undo(session, d->made);
  return s;
}

absl::Status SocketMaker::ConnectPrepare(uint64_t session,
                                         const devmem::v1::ConnectRequest& req,
                                         Dialing* d, RouteSources* routes,
                                         NicMemo* memo) {
  auto nic = SocketNic(session, req.nic(), req.binding(), memo);
  if (!nic.ok()) return nic.status();
  d->nic = nic->nic;
  d->ifindex = nic->ifindex;
  if (req.remote().ip().empty() || req.remote().port() == 0) {
    return absl::InvalidArgumentError(
        "remote.ip and remote.port are required for Connect");
  }
  auto remote =
      ParseSockAddr(req.remote().ip(), req.remote().port(), AF_UNSPEC);
  if (!remote.ok()) return remote.status();
  SockAddr local;
  if (req.has_local() &&
      (!req.local().ip().empty() || req.local().port() != 0)) {
    auto parsed =
        ParseSockAddr(req.local().ip(), req.local().port(), remote->family());
    if (!parsed.ok()) return parsed.status();
    local = *parsed;
  }
  const uint32_t timeout_ms = req.timeout_ms() != 0
                                  ? req.timeout_ms()
                                  : d_.config->default_connect_timeout_ms();
  // A steered connect is bound first: its rule needs the local address
  // and port before the SYN goes out.
  const bool steered = req.binding() != 0;
  auto pending = PrepareConnect(
      d->nic, *remote, &local, absl::Milliseconds(timeout_ms), steered, routes);
  if (!pending.ok()) return pending.status();
  d->pending = *std::move(pending);
  if (steered) {
    auto tuple = ListenerFlowTuple(d->pending.local);
    if (!tuple.ok()) return tuple.status();
    // Not connected yet: the peer is the address it is about to dial.
    tuple->src_ip = AddressIp(*remote);
    tuple->src_port = static_cast<uint16_t>(AddressPort(*remote));
    d->tuple = *std::move(tuple);
    d->binding = req.binding();
  }
  return absl::OkStatus();
}

void SocketMaker::SteerAndDial(
    uint64_t session, std::vector<int>& items, std::vector<Dialing>& dialing,
    const std::function<devmem::v1::SocketResult*(int)>& result) {
  uint64_t durable_at = 0;
  std::vector<absl::StatusOr<devmem::v1::FlowRule>> rules =
      SteerAll(session, dialing, &durable_at);
  size_t kept = 0;
  for (size_t k = 0; k < dialing.size(); ++k) {
    Dialing& d = dialing[k];
    devmem::v1::SocketResult* out = result(items[k]);
    absl::Status s = TakeRule(d.binding, durable_at, &rules[k],
                              out->mutable_socket(), &d.made);
    if (s.ok()) {
      s = Dial(&d.pending);
      if (!s.ok()) Undo(session, d.made);
    }
    if (!s.ok()) {
      SetFailure(s, out);
      continue;
    }
    if (kept != k) {
      items[kept] = items[k];
      dialing[kept] = std::move(d);
    }
    ++kept;
  }
  items.resize(kept);
  dialing.resize(kept);
}

absl::Status SocketMaker::ConnectFinish(uint64_t session,
                                        const absl::Status& connected,
                                        Dialing* d,
                                        devmem::v1::SocketResponse* resp) {
  absl::Status parked = connected;
  if (parked.ok()) {
    // Connected: its peer is what it dialled, and its local address is
    // known if it was bound before the SYN (steered).
    const PendingConnect& p = d->pending;
    FillAddress(p.remote, resp->mutable_remote());
    const SockAddr* local = p.local.len > 0 ? &p.local : nullptr;
    parked = Park(session, std::move(d->pending.fd), d->nic, d->ifindex, resp,
                  local);
  }
  if (!parked.ok()) {
    Undo(session, d->made);
    return parked;
  }
  d->made.ticket = resp->ticket();
  return absl::OkStatus();
}

absl::StatusOr<SocketMaker::ToSteer> SocketMaker::PrepareSteer(
    uint64_t session, const devmem::v1::SteerRequest& req, NicMemo* memo) {
  auto fd =
      TakeDeposit(d_.sessions, session, req.socket_ticket(), "socket_ticket");
  if (!fd.ok()) return fd.status();
  absl::Status tcp = CheckTcpSocket(fd->get_unowned());
  if (!tcp.ok()) return tcp;
  std::string nic;
  if (req.binding() != 0) {
    auto of = SocketNic(session, "", req.binding(), memo);
    if (!of.ok()) return of.status();
    nic = of->nic;
  } else {
    // NicOfBinding's NOT_FOUND, the same as for any unknown handle.
    auto of = d_.nics->NicOfBinding(session, 0);
    if (!of.ok()) return of.status();
    nic = of->nic;
  }
  ToSteer item;
  auto tuple = SocketFlowTuple(fd->get_unowned());
  if (!tuple.ok()) return tuple.status();
  absl::Status bound = BindToDevice(fd->get_unowned(), nic);
  if (!bound.ok()) return bound;
  item.binding = req.binding();
  item.tuple = *std::move(tuple);
  // The daemon's copy of the socket closes here; the workload keeps its own.
  return item;
}

absl::Status SocketMaker::SteerInto(uint64_t session, uint64_t binding,
                                    const FlowTuple& tuple,
                                    devmem::v1::FlowRule* rule, Made* made) {
  auto steered = d_.nics->SteerFlow(session, binding, tuple, &made->durable_at,
                                    made->start_flush);
  if (!steered.ok()) return steered.status();
  *rule = *steered;
  made->binding = binding;
  made->location = steered->location();
  return absl::OkStatus();
}

absl::StatusOr<SocketMaker::ItemNic> SocketMaker::SocketNic(
    uint64_t session, const std::string& nic, uint64_t binding, NicMemo* memo) {
  if (memo != nullptr && memo->valid && memo->binding == binding &&
      memo->nic == nic) {
    return memo->found;
  }
  ItemNic found;
  if (binding == 0) {
    if (nic.empty()) {
      return absl::InvalidArgumentError(
          "nic is required: name the interface the socket is bound to");
    }
    found.nic = nic;
  } else {
    auto of = d_.nics->NicOfBinding(session, binding);
    if (!of.ok()) return of.status();
    if (!nic.empty() && nic != of->nic) {
      return absl::InvalidArgumentError(absl::StrCat(
          "nic \"", nic, "\" differs from the NIC of binding ", binding, " (",
          of->nic, "); leave nic empty or match it"));
    }
    found.nic = of->nic;
  }
  auto ifindex = d_.inventory->IfIndex(found.nic);
  if (!ifindex.ok()) return ifindex.status();
  found.ifindex = *ifindex;
  if (memo != nullptr) {
    memo->valid = true;
    memo->nic = nic;
    memo->binding = binding;
    memo->found = found;
  }
  return found;
}

}  // namespace devmem
