#!/usr/bin/env bash
# Installs the Debian 12 packages devmemd needs to build and test, if missing.
# Safe to run repeatedly: apt is only touched when something is absent.
set -euo pipefail

PACKAGES=(
  bazel-bootstrap bazel-rules-java bazel-platforms bazel-skylib
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libabsl-dev libnl-3-dev libnl-genl-3-dev libnl-route-3-dev libmnl-dev
  libsystemd-dev prometheus-cpp-dev libcivetweb-dev libgtest-dev libgmock-dev pkg-config
  g++ python3 ethtool iproute2 util-linux clang-format
  python3-grpcio python3-protobuf libssl-dev openssl
  clang-14 libclang-rt-14-dev
  prometheus dpkg-dev binutils
  systemd dbus-daemon dbus-bin
  slurmctld slurmd slurm-client munge
  qemu-system-x86 busybox-static kmod cpio make
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "setup: missing packages: ${missing[*]}" >&2
    echo "setup: run as root (sudo $0) to install them" >&2
    exit 1
  fi
  echo "setup: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
echo "setup: all build and test packages present" >&2

# Bazel's disk cache (.bazelrc) keys actions on their inputs, and the system
# headers and libraries are not among them: after a point release of, say,
# libabsl-dev, cached objects built against the old headers would be linked
# with the new libraries. So every action sees the installed versions of what
# the build compiles and links against, as one hash (.bazelrc try-imports
# this file); a change of any of them rebuilds everything.
# scripts/check_cache_key.sh shows it.
key_packages=(g++ clang-14 libclang-rt-14-dev protobuf-compiler protobuf-compiler-grpc)
for p in "${PACKAGES[@]}"; do
  [[ $p == *-dev ]] && key_packages+=("$p")
done
key=$(dpkg-query -W -f='${Package} ${Version}\n' "${key_packages[@]}" | sort | sha256sum | cut -c1-16)
mkdir -p "$(dirname "$0")/../.cache"
printf '# Written by scripts/setup.sh: the versions of the -dev packages and\n# compilers the build uses (%s packages).\nbuild --action_env=DEVMEMD_SYSTEM_DEPS=%s\n' \
  "${#key_packages[@]}" "$key" >"$(dirname "$0")/../.cache/system-deps.bazelrc"
echo "setup: system library key $key (.cache/system-deps.bazelrc)" >&2
