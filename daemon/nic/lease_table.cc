#include "daemon/nic/lease_table.h"

#include <sys/socket.h>

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"

namespace devmem {

std::string TupleKey(const FlowTuple& t) {
  return absl::StrCat(t.family, "|", t.src_ip, "|", t.src_port, "|", t.dst_ip,
                      "|", t.dst_port);
}

std::string DescribeTuple(const FlowTuple& t) {
  auto side = [&t](const std::string& ip, uint16_t port) {
    const std::string host = ip.empty() ? "*" : ip;
    const std::string p = port == 0 ? "*" : absl::StrCat(port);
    return t.family == AF_INET6 ? absl::StrCat("[", host, "]:", p)
                                : absl::StrCat(host, ":", p);
  };
  return absl::StrCat(t.family == AF_INET6 ? "tcp6 " : "tcp4 ",
                      side(t.src_ip, t.src_port), " -> ",
                      side(t.dst_ip, t.dst_port));
}

void LeaseTable::SkipIdsBelow(uint64_t next) {
  next_id_ = std::max(next_id_, next);
}

void LeaseTable::SetOwner(uint64_t session, uint32_t uid) {
  SessionTotals& t = sessions_[session];
  if (t.uid == uid) return;
  const auto bindings = static_cast<int64_t>(t.bindings.size());
  CountForUid(t.uid, -bindings, -int64_t{t.rules});
  CountForUid(uid, bindings, t.rules);
  t.uid = uid;
}

std::optional<uint32_t> LeaseTable::OwnerOf(uint64_t session) const {
  auto it = sessions_.find(session);
  if (it == sessions_.end()) return std::nullopt;
  return it->second.uid;
}

bool LeaseTable::Journaled(uint64_t session) const {
  auto it = sessions_.find(session);
  return it != sessions_.end() && it->second.journaled;
}

void LeaseTable::MarkJournaled(uint64_t session) {
  sessions_[session].journaled = true;
}

bool LeaseTable::Holds(uint64_t session) const {
  auto it = sessions_.find(session);
  return it != sessions_.end() &&
         (!it->second.bindings.empty() || it->second.rules > 0);
}

bool LeaseTable::ForgetSession(uint64_t session) {
  auto it = sessions_.find(session);
  if (it == sessions_.end()) return false;
  const bool journaled = it->second.journaled;
  CountForUid(it->second.uid, -static_cast<int64_t>(it->second.bindings.size()),
              -int64_t{it->second.rules});
  sessions_.erase(it);
  return journaled;
}

std::vector<uint64_t> LeaseTable::BindingsOf(uint64_t session) const {
  auto it = sessions_.find(session);
  return it == sessions_.end() ? std::vector<uint64_t>{} : it->second.bindings;
}

absl::StatusOr<BindingLease*> LeaseTable::Find(uint64_t session,
                                               uint64_t handle) {
  auto it = bindings_.find(handle);
  if (handle == 0 || it == bindings_.end() || it->second.session != session) {
    return absl::NotFoundError(
        absl::StrCat("no binding ", handle,
                     " in this session; BindRx returns the handle to use"));
  }
  return &it->second;
}

BindingLease* LeaseTable::Get(uint64_t handle) {
  auto it = bindings_.find(handle);
  return it == bindings_.end() ? nullptr : &it->second;
}

const BindingLease* LeaseTable::Get(uint64_t handle) const {
  auto it = bindings_.find(handle);
  return it == bindings_.end() ? nullptr : &it->second;
}

BindingLease& LeaseTable::Add(BindingLease b) {
  const uint64_t handle = b.handle;
  SessionTotals& t = sessions_[b.session];
  t.bindings.push_back(handle);
  CountForUid(t.uid, 1, 0);
  BindingLease& stored = bindings_[handle];
  stored = std::move(b);
  return stored;
}

BindingLease LeaseTable::Remove(uint64_t handle) {
  auto it = bindings_.find(handle);
  if (it == bindings_.end()) return BindingLease();
  BindingLease b = std::move(it->second);
  bindings_.erase(it);
  auto sit = sessions_.find(b.session);
  if (sit != sessions_.end()) {
    auto& list = sit->second.bindings;
    const auto gone = std::remove(list.begin(), list.end(), handle);
    CountForUid(sit->second.uid, gone - list.end(), 0);
    list.erase(gone, list.end());
  }
  return b;
}

std::vector<uint64_t> LeaseTable::HandlesOn(absl::string_view nic) const {
  std::vector<uint64_t> out;
  for (const auto& [handle, b] : bindings_) {
    if (b.nic == nic) out.push_back(handle);
  }
  std::sort(out.begin(), out.end());
  return out;
}

const RuleLease* LeaseTable::RuleFor(absl::string_view nic,
                                     const FlowTuple& requested) const {
  auto nit = rules_.find(nic);
  if (nit == rules_.end()) return nullptr;
  auto it = nit->second.by_tuple.find(TupleKey(requested));
  if (it == nit->second.by_tuple.end()) return nullptr;
  return &nit->second.by_location.at(it->second);
}

const RuleLease* LeaseTable::RuleAt(absl::string_view nic,
                                    uint32_t location) const {
  auto nit = rules_.find(nic);
  if (nit == rules_.end()) return nullptr;
  auto it = nit->second.by_location.find(location);
  return it == nit->second.by_location.end() ? nullptr : &it->second;
}

void LeaseTable::AddRule(absl::string_view nic, uint32_t location,
                         RuleLease r) {
  const std::string key(nic);
  NicRules& rules = rules_[key];
  rules.by_tuple[TupleKey(r.requested)] = location;
  if (BindingLease* b = Get(r.binding)) {
    b->rule_locations.insert(location);
    b->rules_made++;
  }
  SessionTotals& t = sessions_[r.session];
  t.rules++;
  CountForUid(t.uid, 0, 1);
  rules.by_location[location] = std::move(r);
}

std::optional<RuleLease> LeaseTable::RemoveRule(absl::string_view nic,
                                                uint32_t location) {
  auto nit = rules_.find(nic);
  if (nit == rules_.end()) return std::nullopt;
  auto it = nit->second.by_location.find(location);
  if (it == nit->second.by_location.end()) return std::nullopt;
  RuleLease r = std::move(it->second);
  nit->second.by_location.erase(it);
  nit->second.by_tuple.erase(TupleKey(r.requested));
  if (BindingLease* b = Get(r.binding)) b->rule_locations.erase(location);
  auto sit = sessions_.find(r.session);
  if (sit != sessions_.end() && sit->second.rules > 0) {
    sit->second.rules--;
    CountForUid(sit->second.uid, 0, -1);
  }
  return r;
}

size_t LeaseTable::RuleCount(absl::string_view nic) const {
  auto nit = rules_.find(nic);
  return nit == rules_.end() ? 0 : nit->second.by_location.size();
}

size_t LeaseTable::RuleCount() const {
  size_t n = 0;
  for (const auto& [nic, rules] : rules_) n += rules.by_location.size();
  return n;
}

LeaseTable::UidTotals LeaseTable::TotalsOf(uint32_t uid) const {
  auto it = uids_.find(uid);
  return it == uids_.end() ? UidTotals() : it->second;
}

void LeaseTable::CountForUid(uint32_t uid, int64_t bindings, int64_t rules) {
  if (bindings == 0 && rules == 0) return;
  UidTotals& t = uids_[uid];
  t.bindings = static_cast<uint32_t>(t.bindings + bindings);
  t.rules = static_cast<uint32_t>(t.rules + rules);
  if (t.bindings == 0 && t.rules == 0) uids_.erase(uid);
}

absl::Status LeaseTable::CheckBindQuota(uint64_t session, uint32_t uid) const {
  auto it = sessions_.find(session);
  const size_t held = it == sessions_.end() ? 0 : it->second.bindings.size();
  if (held >= quotas_.bindings_per_session) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "this session holds ", held, " of ", quotas_.bindings_per_session,
        " bindings (max_bindings_per_session); release one first"));
  }
  const uint32_t uid_bindings = TotalsOf(uid).bindings;
  if (uid_bindings >= quotas_.bindings_per_uid) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "uid ", uid, " holds ", uid_bindings, " of ", quotas_.bindings_per_uid,
        " bindings over all its sessions (max_bindings_per_uid); release "
        "one first"));
  }
  return absl::OkStatus();
}

absl::Status LeaseTable::CheckRuleQuota(uint64_t session) const {
  auto sit = sessions_.find(session);
  const uint32_t held = sit == sessions_.end() ? 0 : sit->second.rules;
  if (held >= quotas_.rules_per_session) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "this session holds ", held, " of ", quotas_.rules_per_session,
        " steering rules (max_rules_per_session); close sockets' leases or "
        "release a binding"));
  }
  if (sit == sessions_.end()) return absl::OkStatus();
  const uint32_t uid_rules = TotalsOf(sit->second.uid).rules;
  if (uid_rules >= quotas_.rules_per_uid) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "uid ", sit->second.uid, " holds ", uid_rules, " of ",
        quotas_.rules_per_uid,
        " steering rules over all its sessions (max_rules_per_uid)"));
  }
  return absl::OkStatus();
}

}  // namespace devmem
