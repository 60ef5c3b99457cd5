# Shared helpers for the shell integration tests: two network namespaces joined by
# a veth pair, a devmemd started inside one of them, and cleanup on every exit.
# Only namespaces and links this file creates are touched.

# skip_unless_root: exit 0 with a printed reason when not root (Bazel counts the
# test as passed; the reason is in its log and the summary's skip list).
skip_unless_root() {
  if [[ $(id -u) -ne 0 ]]; then
    echo "SKIPPED: $1 needs root (network namespaces, veth, setpriv); run as root"
    exit 0
  fi
  if ! ip netns add "devmemd-probe-$$" 2>/dev/null; then
    echo "SKIPPED: cannot create network namespaces here"
    exit 0
  fi
  ip netns del "devmemd-probe-$$"
}

NS_A=""
NS_B=""
DAEMON_PID=""
WORK=""

# A sanitizer report (ASan, LSan, UBSan, TSan; --config=asan/tsan) in the
# daemon's log. The log is deleted with $WORK, so the report is printed here and
# fails the test: otherwise a leak found when devmemd exits would go unseen.
SANITIZER_REPORT='^==[0-9]+==(ERROR|WARNING): [A-Za-z]+Sanitizer|runtime error: |^WARNING: ThreadSanitizer: '
daemon_log_has_sanitizer_report() {
  [[ -n $WORK && -f $WORK/devmemd.log ]] &&
    grep -qE "$SANITIZER_REPORT" "$WORK/devmemd.log"
}

cleanup() {
  local rc=$?
  if [[ -n $DAEMON_PID ]] && kill -0 "$DAEMON_PID" 2>/dev/null; then
    kill -TERM "$DAEMON_PID" 2>/dev/null
    wait "$DAEMON_PID" 2>/dev/null
  fi
  if daemon_log_has_sanitizer_report; then
    echo "FAIL: sanitizer report in the devmemd log:" >&2
    sed 's/^/  devmemd: /' "$WORK/devmemd.log" >&2
    rc=1
  fi
  [[ -n $NS_A ]] && ip netns del "$NS_A" 2>/dev/null
  [[ -n $NS_B ]] && ip netns del "$NS_B" 2>/dev/null
  [[ -n $WORK ]] && rm -rf "$WORK"
  exit $rc
}

# make_veth_pair TAG: namespaces devmemd-TAG-a-$$ / -b-$$, veth dm-a <-> dm-b,
# 10.77.<n>.1/24 in A and .2 in B, IPv6 fd77:<n>::1/64 and ::2.
make_veth_pair() {
  local tag=$1 n=$2
  NS_A="devmemd-$tag-a-$$"
  NS_B="devmemd-$tag-b-$$"
  trap cleanup EXIT INT TERM
  ip netns add "$NS_A"
  ip netns add "$NS_B"
  ip -n "$NS_A" link add dm-a type veth peer name dm-b netns "$NS_B"
  ip -n "$NS_A" addr add "10.77.$n.1/24" dev dm-a
  ip -n "$NS_B" addr add "10.77.$n.2/24" dev dm-b
  ip -n "$NS_A" -6 addr add "fd77:$n::1/64" dev dm-a nodad
  ip -n "$NS_B" -6 addr add "fd77:$n::2/64" dev dm-b nodad
  ip -n "$NS_A" link set lo up
  ip -n "$NS_B" link set lo up
  ip -n "$NS_A" link set dm-a up
  ip -n "$NS_B" link set dm-b up
}

# wait_for_socket PATH: until a Unix socket exists (10 s deadline).
wait_for_socket() {
  local deadline=$((SECONDS + 10))
  until [[ -S $1 ]]; do
    if ((SECONDS > deadline)); then
      echo "FAIL: $1 did not appear within 10 s" >&2
      return 1
    fi
    if [[ -n $DAEMON_PID ]] && ! kill -0 "$DAEMON_PID" 2>/dev/null; then
      echo "FAIL: devmemd exited before creating $1" >&2
      return 1
    fi
    sleep 0.05
  done
}

# wait_for_ready: until devmemd has logged "ready:" (10 s deadline). It prints
# its NIC profile and recovery reports before that line but after creating the
# sockets, so a test that reads the log must wait for it (slow under sanitizers).
wait_for_ready() {
  local deadline=$((SECONDS + 10))
  until grep -q "ready: " "$WORK/devmemd.log" 2>/dev/null; do
    if ((SECONDS > deadline)); then
      echo "FAIL: devmemd did not log 'ready:' within 10 s" >&2
      return 1
    fi
    if [[ -n $DAEMON_PID ]] && ! kill -0 "$DAEMON_PID" 2>/dev/null; then
      echo "FAIL: devmemd exited before it was ready" >&2
      return 1
    fi
    sleep 0.05
  done
}

# start_daemon NS RUNDIR ARGS...: devmemd in namespace NS, log in $WORK/devmemd.log
# (a previous daemon's log there is checked for sanitizer reports first).
start_daemon() {
  local ns=$1 rundir=$2
  shift 2
  daemon_log_has_sanitizer_report && fail "sanitizer report from the previous devmemd"
  # Each test daemon gets its own journal (a later --state_dir wins).
  ip netns exec "$ns" "$DEVMEMD" --runtime_dir="$rundir" \
    --state_dir="$rundir/state" "$@" \
    2>"$WORK/devmemd.log" &
  DAEMON_PID=$!
  wait_for_socket "$rundir/session.sock" && wait_for_socket "$rundir/grpc.sock" &&
    wait_for_ready
}

fail() {
  echo "FAIL: $*" >&2
  [[ -n $WORK && -f $WORK/devmemd.log ]] && sed 's/^/  devmemd: /' "$WORK/devmemd.log" >&2
  exit 1
}
