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
  python3-grpcio python3-protobuf
  clang-14 libclang-rt-14-dev
  prometheus dpkg-dev binutils
  systemd dbus-daemon dbus-bin
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
