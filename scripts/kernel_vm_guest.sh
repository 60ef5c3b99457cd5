#!/bin/sh
# PID 1 of a scripts/kernel_vm.sh guest, on the host's root (overlaid): mounts
# the usual file systems, runs the command in the host's working directory,
# writes its exit status to the work directory and powers off.
WORK=$(dirname "$0")
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
mount -t tmpfs tmpfs /run
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
mount -t cgroup2 cgroup2 /sys/fs/cgroup 2>/dev/null
mkdir -p /run/netns /var/run
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root LANG=C.UTF-8
ip link set lo up
echo "kernel_vm: guest $(uname -r) up after $(cut -d' ' -f1 /proc/uptime) s"
cd "$(cat "$WORK/cwd")" 2>/dev/null || cd /
bash "$WORK/command" </dev/null
rc=$?
echo "$rc" >"$WORK/rc.tmp" && mv "$WORK/rc.tmp" "$WORK/rc"
sync
echo "kernel_vm: command exited $rc after $(cut -d' ' -f1 /proc/uptime) s"
/bin/busybox poweroff -f
