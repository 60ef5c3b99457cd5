# Sourced by the kernel matrix's netdevsim scripts (tests/kernel_vm/*.sh).

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
