#!/bin/busybox sh
# /init of scripts/kernel_vm.sh's initramfs: mounts the host's root read-only
# over 9p with a tmpfs overlay on top (writes stay in the guest), the work
# directory at its host path, the guest kernel's modules at /usr/lib/modules,
# and hands over to the work directory's guest.sh.
/bin/busybox mkdir -p /proc /sys /dev /bin
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev

fail() {
  echo "kernel_vm init: $*"
  poweroff -f
}
arg() { sed -n "s/.*$1=\([^ ]*\).*/\1/p" /proc/cmdline; }

for m in netfs 9pnet 9pnet_virtio 9p overlay; do
  [ -f /lib/mod/$m.ko ] && insmod /lib/mod/$m.ko
done
WORK=$(arg devmemd.work)
MODS=$(arg devmemd.modules)
[ -n "$WORK" ] || fail "no devmemd.work= on the kernel command line"

mkdir -p /mnt/host /mnt/rw /newroot
mount -t 9p -o ro,trans=virtio,version=9p2000.L,msize=524288,cache=loose \
  hostroot /mnt/host || fail "cannot mount the host's root over 9p"
mount -t tmpfs tmpfs /mnt/rw
mkdir -p /mnt/rw/upper /mnt/rw/work
mount -t overlay overlay \
  -o lowerdir=/mnt/host,upperdir=/mnt/rw/upper,workdir=/mnt/rw/work \
  /newroot || fail "cannot put an overlay on the host's root"
mount -t tmpfs tmpfs /newroot/tmp
mkdir -p "/newroot$WORK"
mount -t 9p -o trans=virtio,version=9p2000.L,msize=524288 work \
  "/newroot$WORK" || fail "cannot mount the work directory $WORK"
if [ -n "$MODS" ]; then
  REL=$(basename "$MODS")
  mkdir -p "/newroot/usr/lib/modules/$REL"
  mount --bind "/newroot$MODS" "/newroot/usr/lib/modules/$REL" ||
    fail "cannot mount the modules of $REL"
fi
mount --move /dev /newroot/dev
umount /sys
umount /proc
exec switch_root /newroot /bin/sh "$WORK/guest.sh"
