#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "daemon/nic/nic_manager.h"
#include "daemon/session/session_manager.h"
#include "daemon/session/socket_broker.h"
#include "kernel/nic_info.h"
#include "kernel/nic_inventory.h"
#include "kernel/unique_fd.h"
#include "proto/devmem/v1/config.pb.h"
#include "proto/devmem/v1/devmem.pb.h"

namespace devmem {

// Most items in one OpenSockets or SteerMany call.
inline constexpr int kMaxSocketsPerCall = 1024;

// Makes the sockets of Listen, Connect and Steer for an authenticated
// session, one at a time or a batch per call: creates and binds them,
// installs their steering rules and parks them behind tickets. Rules are
// journaled with group commit: every item of a call is made, then the call
// waits once until their records are durable, and only then answers; an
// item whose record cannot be made durable is undone. Thread-safe.
class SocketMaker {
 public:
  struct Deps {
    const devmem::v1::DaemonConfig* config = nullptr;
    SessionManager* sessions = nullptr;
    NicInventory* inventory = nullptr;
    NicManager* nics = nullptr;
  };
  explicit SocketMaker(Deps deps) : d_(deps) {}

  absl::Status Listen(uint64_t session, const devmem::v1::ListenRequest& req,
                      devmem::v1::SocketResponse* resp);
  absl::Status Connect(uint64_t session, const devmem::v1::ConnectRequest& req,
                       devmem::v1::SocketResponse* resp);
  absl::Status Steer(uint64_t session, const devmem::v1::SteerRequest& req,
                     devmem::v1::FlowRule* rule);
  // INVALID_ARGUMENT for no items or more than kMaxSocketsPerCall; otherwise
  // OK with one result per item.
  absl::Status OpenSockets(uint64_t session,
                           const devmem::v1::OpenSocketsRequest& req,
                           devmem::v1::OpenSocketsResponse* resp);
  absl::Status SteerMany(uint64_t session,
                         const devmem::v1::SteerManyRequest& req,
                         devmem::v1::SteerManyResponse* resp);

  // The fd a Deposit frame left behind `ticket` (request field `field`).
  static absl::StatusOr<UniqueFd> TakeDeposit(SessionManager* sessions,
                                              uint64_t session,
                                              const std::string& ticket,
                                              absl::string_view field);

 private:
  // What one made item left behind, to wait for and, if need be, undo.
  struct Made {
    uint64_t durable_at = 0;  // journal sequence number of its rule
    uint64_t binding = 0;     // 0: no rule
    uint32_t location = 0;
    std::string ticket;  // "" for Steer
    // In: whether steering starts the journal's flush at once (a single
    // call) or leaves it to the one wait at the end (a batch).
    bool start_flush = true;
  };

  // The NIC an item's socket is bound to.
  struct ItemNic {
    std::string nic;
    uint32_t ifindex = 0;
  };
  // A call's last NIC lookup, for the items after it that ask the same
  // (nic, binding): a batch's items usually all name one binding.
  struct NicMemo {
    bool valid = false;
    std::string nic;
    uint64_t binding = 0;
    ItemNic found;
  };
  // A listening socket made and bound, before its rule and its ticket.
  struct Listener {
    UniqueFd fd;
    ItemNic nic;
    SockAddr bound;
    uint64_t binding = 0;  // 0: not steered
    FlowTuple tuple;       // its rule's, if steered
  };

  absl::Status ListenOne(uint64_t session, const devmem::v1::ListenRequest& req,
                         devmem::v1::SocketResponse* resp, Made* made);
  // Checks the request and makes the listening socket (socket, bind,
  // listen). `memo` (may be null) keeps the NIC lookup for the next items.
  absl::StatusOr<Listener> MakeListener(uint64_t session,
                                        const devmem::v1::ListenRequest& req,
                                        NicMemo* memo);
  // Parks a listener whose rule (if any) is in `made`; on failure its rule
  // is removed and the error returned.
  absl::Status ParkListener(uint64_t session, Listener* l,
                            devmem::v1::SocketResponse* resp, Made* made);
  // The rules of a batch's items that have a binding (Listener or
  // Dialing), in one NicManager call: one result per item (an empty rule
  // for one without a binding); `*durable_at` is what to wait for.
  template <typename Item>
  std::vector<absl::StatusOr<devmem::v1::FlowRule>> SteerAll(
      uint64_t session, const std::vector<Item>& items, uint64_t* durable_at);
  // An item's result of SteerAll: with a binding, its failure, or the rule
  // moved into `resp` and noted in `made` to wait for and to undo.
  static absl::Status TakeRule(uint64_t binding, uint64_t durable_at,
                               absl::StatusOr<devmem::v1::FlowRule>* rule,
                               devmem::v1::SocketResponse* resp, Made* made);
  // A batch's listeners (items[k] is the call's index of listeners[k]):
  // all of their rules in one NicManager call, then each parked; adds the
  // ones made to `made` and `ok_items`, fails the others.
  void SteerListeners(
      uint64_t session, const std::vector<int>& items,
      std::vector<Listener>& listeners,
      const std::function<devmem::v1::SocketResult*(int)>& result,
      std::vector<Made>* made, std::vector<int>* ok_items);
  absl::Status ConnectOne(uint64_t session,
                          const devmem::v1::ConnectRequest& req,
                          devmem::v1::SocketResponse* resp, Made* made);
  // A Connect between its socket and its answer.
  struct Dialing {
    PendingConnect pending;
    Made made;  // its rule, if steered; its ticket once parked
    std::string nic;
    uint32_t ifindex = 0;
    uint64_t binding = 0;  // 0: not steered
    FlowTuple tuple;       // its rule's, if steered
  };
  // Checks the request, binds the socket, steers it and sends the SYN.
  absl::Status ConnectStart(uint64_t session,
                            const devmem::v1::ConnectRequest& req,
                            devmem::v1::SocketResponse* resp, Dialing* d);
  // Checks the request and makes the socket, bound first if it is to be
  // steered (its rule's tuple then in `d`). `routes` (may be null)
  // remembers route lookups across a call's items; `memo` (may be null)
  // the NIC lookup.
  absl::Status ConnectPrepare(uint64_t session,
                              const devmem::v1::ConnectRequest& req, Dialing* d,
                              RouteSources* routes, NicMemo* memo);
  // A batch's prepared connects (items[k] is the call's index of
  // dialing[k]): all of their rules in one NicManager call, then each SYN
  // sent. The ones that fail are failed in their results and dropped from
  // both vectors.
  void SteerAndDial(
      uint64_t session, std::vector<int>& items, std::vector<Dialing>& dialing,
      const std::function<devmem::v1::SocketResult*(int)>& result);
  // With `connected` (FinishConnects' answer): parks the socket, or undoes
  // its rule and returns why it failed.
  absl::Status ConnectFinish(uint64_t session, const absl::Status& connected,
                             Dialing* d, devmem::v1::SocketResponse* resp);
  // Waits for every connect in `dialing` together (items[k] is the call's
  // index of dialing[k]) and finishes each; adds the ones made to `made`
  // and `ok_items`, fails the others.
  void FinishDialing(
      uint64_t session, const std::vector<int>& items,
      std::vector<Dialing>& dialing,
      const std::function<devmem::v1::SocketResult*(int)>& result,
      std::vector<Made>* made, std::vector<int>* ok_items);
  // A deposited socket checked and bound to its binding's NIC, before its
  // rule (the daemon's copy of the socket is closed by then).
  struct ToSteer {
    uint64_t binding = 0;
    FlowTuple tuple;
  };
  // Takes the deposit, checks it is a TCP socket on an address, and binds
  // it to the binding's NIC. `memo` (may be null) keeps the NIC lookup.
  absl::StatusOr<ToSteer> PrepareSteer(uint64_t session,
                                       const devmem::v1::SteerRequest& req,
                                       NicMemo* memo);
  // The end of a batch of `n` items of which `ok_items` (with `made`)
  // succeeded so far: one wait for all their rules; on failure all of them
  // are undone and fail with it. Returns the number of failed items.
  template <typename Result>
  uint32_t SettleItems(uint64_t session, int n, const std::vector<Made>& made,
                       const std::vector<int>& ok_items,
                       const std::function<Result*(int)>& result);
  // Steers `tuple` to `binding`: the rule into *rule, and what to wait for
  // and to undo into *made.
  absl::Status SteerInto(uint64_t session, uint64_t binding,
                         const FlowTuple& tuple, devmem::v1::FlowRule* rule,
                         Made* made);
  // Waits until the records of every item in `made` are durable. On error
  // every one is undone (rule removed, ticket taken back and its fd closed)
  // and the error is returned: the items must fail with it.
  absl::Status Settle(uint64_t session, const std::vector<Made>& made);
  void Undo(uint64_t session, const Made& made);
  // The NIC a socket request uses: `nic`, or the binding's NIC if `nic` is
  // empty; INVALID_ARGUMENT if they differ. With `memo`, the answer for the
  // same (nic, binding) as the last lookup is the one kept there.
  absl::StatusOr<ItemNic> SocketNic(uint64_t session, const std::string& nic,
                                    uint64_t binding, NicMemo* memo = nullptr);
  // Parks `fd` behind a ticket and fills the common response fields
  // (`local`: its address if known, else asked of the socket).
  absl::Status Park(uint64_t session, UniqueFd fd, const std::string& nic,
                    uint32_t ifindex, devmem::v1::SocketResponse* resp,
                    const SockAddr* local = nullptr);

  const Deps d_;
};

}  // namespace devmem
