# Sourced by the kernel matrix guest scripts (tests/kernel_vm/*.sh).

fail() {
  echo "FAIL: $*"
  exit 1
}

# Creates netdevsim device $1 with one port of 4 queues, sets the port up and
# names it in $nic. nsim_delete removes the device.
nsim_create() {
  nsim_id=$1
  [[ -d /sys/bus/netdevsim ]] || fail "netdevsim is not loaded"
  echo "$nsim_id 1 4" >/sys/bus/netdevsim/new_device ||
    fail "cannot create netdevsim$nsim_id"
  nic=""
  for _ in $(seq 50); do
    nic=$(ls /sys/bus/netdevsim/devices/netdevsim"$nsim_id"/net/ 2>/dev/null | head -1)
    [[ -n $nic ]] && break
    sleep 0.1
  done
  [[ -n $nic ]] || fail "netdevsim$nsim_id has no netdev"
  ip link set "$nic" up
}

nsim_delete() { echo "$nsim_id" >/sys/bus/netdevsim/del_device; }

# Starts devmemd ($1) with config file $2 in directory $dir (run/ and state/
# under it), its pid in $pid and its output in $dir/devmemd.log, and waits
# until it is ready.
devmemd_start() {
  mkdir -p "$dir/run" "$dir/state"
  "$1" --config="$2" --runtime_dir="$dir/run" --state_dir="$dir/state" \
    --dbus= >"$dir/devmemd.log" 2>&1 &
  pid=$!
  for _ in $(seq 100); do
    grep -q ": ready: " "$dir/devmemd.log" && return
    sleep 0.1
  done
  cat "$dir/devmemd.log"
  fail "devmemd did not get ready"
}
