#!/usr/bin/env bash
# kernel_vm.sh: Debian's newer kernels under QEMU, for devmemd's kernel tests.
#
#   scripts/kernel_vm.sh fetch [6.12|7.3|all]
#       Downloads the kernel packages (6.12 from bookworm-backports, 7.3 from
#       trixie-backports) with a private apt configuration, never touching
#       the machine's apt sources, and unpacks them into the cache.
#   scripts/kernel_vm.sh run VERSION [--timeout S] [--mem M] [--work DIR]
#                            -- COMMAND [ARG...]
#       Boots the kernel in QEMU (software emulation: no /dev/kvm needed)
#       with the host's / read-only under a tmpfs overlay, runs COMMAND as
#       root in the guest, streams its output (and the kernel's warnings)
#       here, and exits with COMMAND's status: 124 if the timeout (default
#       300 s) ran out, 125 if the guest died without one.
#   scripts/kernel_vm.sh netdevsim [VERSION]
#       Builds netdevsim.ko (not in Debian's kernels) out of tree against the
#       version's headers with bookworm's gcc-12, into the cache; prints its
#       path.
#   scripts/kernel_vm.sh info [VERSION]
#       What is cached: each kernel's release, files and size.
#
# The cache is ${DEVMEMD_CACHE:-~/.cache/devmemd}/kernel-vm, outside the
# clone, so fresh clones and later CI runs reuse it. Needs qemu-system-x86,
# busybox-static, kmod and cpio (scripts/setup.sh installs them); fetch needs
# the Debian archive. Writes only to the cache and to its own work
# directory, which it removes.
set -euo pipefail

readonly CACHE="${DEVMEMD_CACHE:-$HOME/.cache/devmemd}/kernel-vm"
readonly MIRROR="${DEVMEMD_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
readonly KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg

die() {
  echo "kernel_vm: $*" >&2
  exit 2
}
say() { echo "kernel_vm: $*" >&2; }

usage() {
  sed -n '2,/^set -euo/p' "$0" | sed -e '/^set -euo/d' -e 's/^# \{0,1\}//'
}

# --- The private apt configuration (fetch only) -----------------------------

apt_opts() {
  echo "-o Dir::Etc::sourcelist=$CACHE/apt/sources.list" \
    "-o Dir::Etc::sourceparts=-" \
    "-o Dir::State::Lists=$CACHE/apt/lists" \
    "-o Dir::Cache=$CACHE/apt/cache" \
    "-o Dir::State::status=/dev/null" \
    "-o Debug::NoLocking=1" \
    "-o APT::Sandbox::User=root" \
    "-o Acquire::Retries=3"
}

apt_update() {
  mkdir -p "$CACHE/apt/lists/partial" "$CACHE/apt/cache/archives/partial"
  {
    echo "deb [signed-by=$KEYRING] $MIRROR bookworm-backports main"
    echo "deb [signed-by=$KEYRING] $MIRROR trixie-backports main"
    # Only for trixie's C library, which 7.3's prebuilt modpost and objtool
    # need (unpacked next to them, never installed: see netdevsim).
    echo "deb [signed-by=$KEYRING] $MIRROR trixie main"
  } >"$CACHE/apt/sources.list"
  # shellcheck disable=SC2046
  apt-get $(apt_opts) -qq --error-on=any update
}

# The suite a version comes from.
suite_of() {
  case "$1" in
    6.12) echo bookworm-backports ;;
    7.3) echo trixie-backports ;;
    *) die "unknown kernel version \"$1\" (known: 6.12, 7.3)" ;;
  esac
}

# The release (e.g. 6.12.95+deb12-amd64) that the suite's linux-image-amd64
# depends on.
release_of() {
  local suite
  suite=$(suite_of "$1")
  # shellcheck disable=SC2046
  apt-cache $(apt_opts) show "linux-image-amd64/$suite" 2>/dev/null |
    sed -n 's/^Depends:.*linux-image-\([0-9][^ ,]*-amd64\).*/\1/p' | head -1
}

# The packages of a release: the kernel and its modules, and for building
# netdevsim the headers, kbuild and the source of the same version.
packages_of() {
  local version=$1 release=$2
  local base=${release%-amd64}
  local -a pkgs=("linux-headers-$release" "linux-headers-$base-common"
    "linux-kbuild-$base" "linux-source-$version")
  if [[ $version == 6.12 ]]; then
    pkgs+=("linux-image-$release")
  else
    # From 7.x the image package is a meta package; the files are here.
    pkgs+=("linux-binary-$release" "linux-modules-$release")
  fi
  printf '%s\n' "${pkgs[@]}"
}

fetch_one() {
  local version=$1 release dir
  release=$(release_of "$version")
  [[ -n $release ]] || die "no linux-image-amd64 in $(suite_of "$version") at $MIRROR"
  dir="$CACHE/$version"
  if [[ -f $dir/release && $(cat "$dir/release") == "$release" && -f $dir/ready ]]; then
    say "$version: $release already unpacked in $dir"
    return
  fi
  rm -rf "$dir"
  mkdir -p "$dir/debs" "$dir/root"
  local -a pkgs
  mapfile -t pkgs < <(packages_of "$version" "$release")
  say "$version: downloading ${pkgs[*]}"
  (cd "$dir/debs" && apt-get $(apt_opts) -qq download "${pkgs[@]}") ||
    die "$version: download failed (see above)"
  local deb
  for deb in "$dir"/debs/*.deb; do
    case "$deb" in
      */linux-source-*) ;;  # only netdevsim's folder is taken, below
      *) dpkg-deb -x "$deb" "$dir/root" ;;
    esac
  done
  # netdevsim's source, from the source tarball inside linux-source.
  local src_deb tarball
  src_deb=$(ls "$dir"/debs/linux-source-*.deb 2>/dev/null || true)
  if [[ -n $src_deb ]]; then
    mkdir -p "$dir/src-deb"
    dpkg-deb -x "$src_deb" "$dir/src-deb"
    tarball=$(ls "$dir"/src-deb/usr/src/linux-source-*.tar.*)
    mkdir -p "$dir/netdevsim-src"
    tar -xf "$tarball" -C "$dir/netdevsim-src" --wildcards \
      --no-wildcards-match-slash --strip-components=4 \
      'linux-source-*/drivers/net/netdevsim/*'
    rm -rf "$dir/src-deb" "$src_deb"
  fi
  # The module tree: at /usr/lib/modules from trixie on, /lib/modules before;
  # the kernel in /boot, or in the module tree from 7.x on.
  local mods="" base="" kernel="" d
  for d in usr lib; do
    if [[ -d $dir/root/$d/lib/modules/$release ]]; then
      mods=$dir/root/$d/lib/modules/$release
      base=$dir/root/$d
    fi
  done
  [[ -d $dir/root/lib/modules/$release ]] && {
    mods=$dir/root/lib/modules/$release
    base=$dir/root
  }
  [[ -n $mods ]] || die "$version: no module tree for $release in the packages"
  for d in "$dir/root/boot/vmlinuz-$release" "$mods/vmlinuz"; do
    [[ -f $d ]] && kernel=$d
  done
  [[ -n $kernel ]] || die "$version: no vmlinuz for $release in the packages"
  ln -sfn "$mods" "$dir/modules"
  ln -sfn "$kernel" "$dir/vmlinuz"
  depmod -b "$base" "$release" 2>/dev/null
  rm -rf "$dir/debs"
  echo "$release" >"$dir/release"
  touch "$dir/ready"
  say "$version: $release unpacked in $dir ($(du -sh "$dir" | cut -f1))"
}

cmd_fetch() {
  local which=${1:-all}
  local -a versions
  case "$which" in
    all) versions=(6.12 7.3) ;;
    6.12 | 7.3) versions=("$which") ;;
    *) die "fetch: unknown version \"$which\" (6.12, 7.3 or all)" ;;
  esac
  say "updating the private package lists ($CACHE/apt; the machine's apt sources are not touched)"
  local v
  if ! apt_update; then
    for v in "${versions[@]}"; do
      [[ -f $CACHE/$v/ready ]] ||
        die "cannot reach $MIRROR (bookworm-backports, trixie-backports), and $v is not cached"
    done
    say "cannot reach $MIRROR; using the cached kernels ($(cmd_info | tr '\n' ' '))"
    return 0
  fi
  for v in "${versions[@]}"; do fetch_one "$v"; done
}

# --- The guest ---------------------------------------------------------------

# The initramfs for a version: busybox and the modules that mount the host's
# root (9p over virtio, overlay). Built once per release, into the cache.
initramfs_of() {
  local version=$1 dir="$CACHE/$1"
  local release out
  release=$(cat "$dir/release")
  out="$dir/initramfs.cpio.gz"
  [[ -f $out ]] && {
    echo "$out"
    return
  }
  local tmp
  tmp=$(mktemp -d)
  mkdir -p "$tmp"/{bin,dev,proc,sys,mnt,newroot,lib/mod}
  cp /bin/busybox "$tmp/bin/busybox"
  local m path
  for m in netfs 9pnet 9pnet_virtio 9p overlay; do
    path=$(find -L "$dir/modules/kernel" -name "$m.ko*" | head -1)
    if [[ -z $path ]]; then
      continue  # built in
    fi
    case "$path" in
      *.xz) xz -dc "$path" >"$tmp/lib/mod/$m.ko" ;;
      *.zst) zstd -qdc "$path" >"$tmp/lib/mod/$m.ko" ;;
      *) cp "$path" "$tmp/lib/mod/$m.ko" ;;
    esac
  done
  cp "$(dirname "$0")/kernel_vm_init.sh" "$tmp/init"
  chmod 755 "$tmp/init"
  (cd "$tmp" && find . | cpio -o -H newc --quiet | gzip -1) >"$out.tmp"
  mv "$out.tmp" "$out"
  rm -rf "$tmp"
  echo "$out"
}

cmd_run() {
  local version="" timeout=300 mem=2G work="" keep_work=0
  while (($#)); do
    case "$1" in
      --timeout) timeout=$2; shift 2 ;;
      --mem) mem=$2; shift 2 ;;
      --work) work=$2; keep_work=1; shift 2 ;;
      --) shift; break ;;
      -*) die "run: unknown option $1" ;;
      *)
        [[ -z $version ]] || die "run: one version, then -- COMMAND"
        version=$1
        shift
        ;;
    esac
  done
  [[ -n $version ]] || die "run: which kernel? (6.12 or 7.3)"
  (($#)) || die "run: nothing to run (kernel_vm.sh run $version -- COMMAND)"
  suite_of "$version" >/dev/null
  local dir="$CACHE/$version"
  [[ -f $dir/ready ]] || die "$version is not fetched: scripts/kernel_vm.sh fetch $version"
  command -v qemu-system-x86_64 >/dev/null ||
    die "qemu-system-x86_64 is missing: bash scripts/setup.sh installs it"
  local initrd
  initrd=$(initramfs_of "$version")
  if [[ -z $work ]]; then
    work=$(mktemp -d /tmp/devmemd-vm.XXXXXX)
  else
    mkdir -p "$work"
    work=$(cd "$work" && pwd)
  fi
  # The command, quoted for the guest's shell.
  printf '%q ' "$@" >"$work/command"
  echo >>"$work/command"
  rm -f "$work/rc"
  pwd >"$work/cwd"
  cp "$(dirname "$0")/kernel_vm_guest.sh" "$work/guest.sh"
  local -a qemu=(
    qemu-system-x86_64 -cpu max -m "$mem" -smp 2
    -nographic -no-reboot -nic none -monitor none -serial stdio
    -kernel "$dir/vmlinuz" -initrd "$initrd"
    -append "console=ttyS0 loglevel=4 panic=-1 rdinit=/init devmemd.work=$work devmemd.modules=$(readlink -f "$dir/modules")"
    -fsdev "local,id=r,path=/,security_model=none,readonly=on,multidevs=remap"
    -device virtio-9p-pci,fsdev=r,mount_tag=hostroot
    -fsdev "local,id=w,path=$work,security_model=none,multidevs=remap"
    -device virtio-9p-pci,fsdev=w,mount_tag=work
  )
  local status=0 attempt accel=tcg,thread=multi
  for attempt in 1 2 3; do
    # -serial stdio: the guest's console is this output (the firmware's
    # banner and terminal escapes dropped); stdin is not wired.
    set +e
    timeout --kill-after=10 "$timeout" "${qemu[@]}" -accel "$accel" </dev/null |
      sed -u -e 's/\x1b\[[0-9;?]*[a-zA-Z]//g' -e 's/\x1bc//g' \
        -e '/^SeaBIOS (version/d' -e '/^Booting from ROM/d' \
        -e 's/^Probing EDD (edd=off to disable)\.\.\. o\(k$\)\{0,1\}//' \
        -e '/^k$/d' -e '/^$/d' | tee "$work/console"
    status=${PIPESTATUS[0]}
    set -e
    # A kernel that dies before the command starts (multi-threaded TCG
    # sometimes trips the kernel's own code patching at boot: an int3 oops,
    # and it can do so twice running) is booted again, from the second try
    # on single-threaded TCG, which has no such race but runs slower; a
    # command that started is never run twice.
    if [[ -f $work/rc ]] || grep -q '^kernel_vm: guest .* up after' "$work/console" ||
      ((status == 124 || status == 137)); then
      break
    fi
    if ((attempt < 3)); then
      accel=tcg,thread=single
      say "$version: the guest died while booting; booting it again on single-threaded TCG (try $((attempt + 1)) of 3)"
    fi
  done
  local rc=125
  if [[ -f $work/rc ]]; then
    rc=$(cat "$work/rc")
  elif ((status == 124 || status == 137)); then
    say "$version: the guest did not finish in ${timeout}s"
    rc=124
  else
    say "$version: the guest stopped without the command's status (qemu exit $status)"
  fi
  ((keep_work)) || rm -rf "$work"
  return "$rc"
}

# --- netdevsim, built out of tree ---------------------------------------------

# 7.3's kbuild tools (modpost, objtool) are built against trixie's C library
# (GLIBC_2.38+). Rather than install anything, trixie's libc6, libelf and
# zlib are unpacked into the cache and the tools run through that loader.
trixie_tools() {
  local dir=$1 libs="$1/trixie-libs"
  [[ -f $libs/ready ]] && return
  rm -rf "$libs"
  mkdir -p "$libs/debs"
  (cd "$libs/debs" &&
    apt-get $(apt_opts) -qq download libc6/trixie libelf1t64/trixie \
      zlib1g/trixie libzstd1/trixie) ||
    die "cannot download trixie's libc6 and libelf for 7.3's kbuild tools"
  local deb
  for deb in "$libs"/debs/*.deb; do dpkg-deb -x "$deb" "$libs"; done
  rm -rf "$libs/debs"
  touch "$libs/ready"
}

# Replaces a kbuild binary by a script that runs it with trixie's loader.
wrap_tool() {
  local tool=$1 libs=$2
  [[ -f $tool.bin ]] && return
  mv "$tool" "$tool.bin"
  cat >"$tool" <<WRAP
#!/bin/sh
exec "$libs/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2" \\
  --library-path "$libs/usr/lib/x86_64-linux-gnu" "$tool.bin" "\$@"
WRAP
  chmod 755 "$tool"
}

cmd_netdevsim() {
  local version=${1:-7.3}
  local dir="$CACHE/$version"
  [[ -f $dir/ready ]] || die "$version is not fetched: scripts/kernel_vm.sh fetch $version"
  [[ -d $dir/netdevsim-src ]] ||
    die "$version: no netdevsim source in the cache (scripts/kernel_vm.sh fetch $version)"
  if [[ -f $dir/netdevsim.ko ]]; then
    say "$version: netdevsim.ko built ($(cat "$dir/netdevsim.how"))"
    echo "$dir/netdevsim.ko"
    return
  fi
  local release hdr kbuild
  release=$(cat "$dir/release")
  hdr="$dir/root/usr/src/linux-headers-$release"
  kbuild="$dir/root/usr/lib/linux-kbuild-${release%-amd64}"
  # The headers' Makefile names /usr/src; here they are in the cache.
  if grep -qE '(^|[ =])/usr/src/' "$hdr/Makefile"; then
    sed -i -E "s#(^|[ =])/usr/src/#\\1$dir/root/usr/src/#g" "$hdr/Makefile"
  fi
  local tool out
  for tool in scripts/mod/modpost scripts/mod/modpost.real-lsb-64 \
    tools/objtool/objtool tools/objtool/objtool.real-x86; do
    [[ -f $kbuild/$tool.bin ]] && continue
    out=$("$kbuild/$tool" --version 2>&1 || true)
    if [[ $out == *GLIBC_*"not found"* ]]; then
      if [[ ! -f $dir/trixie-libs/ready ]]; then
        say "$version: its kbuild tools need a newer C library; unpacking trixie's"
        apt_update
        trixie_tools "$dir"
      fi
      wrap_tool "$kbuild/$tool" "$dir/trixie-libs"
    fi
  done
  local build="$dir/netdevsim-build"
  rm -rf "$build"
  cp -r "$dir/netdevsim-src" "$build"
  # Bookworm's gcc-12 (7.3's own gcc-14 is not installed): the one
  # gcc-14-only flag is dropped (-fmin-function-alignment; -falign-functions
  # keeps the 16-byte alignment), and BTF is skipped (no pahole). 6.12 from
  # bookworm-backports is built with gcc-12 itself.
  local -a make_args=(-C "$hdr" M="$build" CONFIG_NETDEVSIM=m
    CONFIG_DEBUG_INFO_BTF_MODULES= CONFIG_CC_HAS_MIN_FUNCTION_ALIGNMENT=
    CC=x86_64-linux-gnu-gcc-12 modules -j"$(nproc)")
  say "$version: building netdevsim with bookworm's gcc-12 against $release's headers"
  if ! make "${make_args[@]}" >"$build/make.log" 2>&1; then
    tail -20 "$build/make.log" >&2
    die "$version: netdevsim did not build (log: $build/make.log)"
  fi
  cp "$build/netdevsim.ko" "$dir/netdevsim.ko"
  local how="bookworm gcc-12 ($(x86_64-linux-gnu-gcc-12 -dumpfullversion)), $release headers"
  [[ -f $dir/trixie-libs/ready ]] && how+=", trixie libc for modpost/objtool"
  echo "$how" >"$dir/netdevsim.how"
  say "$version: netdevsim.ko built ($(cat "$dir/netdevsim.how"))"
  echo "$dir/netdevsim.ko"
}

cmd_info() {
  local v
  for v in ${1:-6.12 7.3}; do
    if [[ -f $CACHE/$v/ready ]]; then
      echo "$v: $(cat "$CACHE/$v/release") in $CACHE/$v ($(du -sh "$CACHE/$v" | cut -f1))"
    else
      echo "$v: not fetched"
    fi
  done
}

main() {
  (($#)) || {
    usage
    exit 2
  }
  local cmd=$1
  shift
  case "$cmd" in
    fetch) cmd_fetch "$@" ;;
    run) cmd_run "$@" ;;
    info) cmd_info "$@" ;;
    netdevsim) cmd_netdevsim "$@" ;;
    -h | --help | help) usage ;;
    *) die "unknown command \"$cmd\" (fetch, run, netdevsim, info; --help)" ;;
  esac
}

main "$@"
