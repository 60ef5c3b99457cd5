#!/usr/bin/env bash
# Builds the devmemd .deb for //deploy:deb (a genrule; every input is an
# argument, nothing is read from the checkout):
#   build_deb.sh OUT.deb VERSION VERSION_HEADER CONTROL_IN MODE:PATH:SRC...
# Each MODE:PATH:SRC installs SRC at PATH in the package with MODE (PATH under
# DEBIAN/ for the maintainer scripts and conffiles). VERSION must be the
# daemon's kDevmemdVersion (VERSION_HEADER). Depends is what dpkg-shlibdeps
# finds for the ELF files staged, plus what the postinst runs. md5sums cover
# every file but the conffiles. Owners are root:root (--root-owner-group).
set -euo pipefail
die() { echo "build_deb: $*" >&2; exit 1; }
(($# >= 5)) || die "usage: build_deb.sh OUT.deb VERSION VERSION_HEADER CONTROL_IN MODE:PATH:SRC..."
out=$1 version=$2 header=$3 control_in=$4
shift 4

daemon_version=$(sed -n 's/.*kDevmemdVersion\[\] = "\([^"]*\)".*/\1/p' "$header")
[[ $daemon_version == "$version" ]] ||
  die "DEVMEMD_VERSION ($version, deploy/debian/version.bzl) is not kDevmemdVersion ('$daemon_version', $header)"

umask 022
work=$(mktemp -d "${TMPDIR:-/tmp}/devmemd-deb.XXXXXX")
trap 'rm -rf "$work"' EXIT
# dpkg-shlibdeps wants the package tree at debian/<package> beside a
# debian/control naming it.
root=$work/debian/devmemd
mkdir -p "$root/DEBIAN"
chmod 0755 "$root" "$root/DEBIAN"
printf 'Source: devmemd\n\nPackage: devmemd\nArchitecture: amd64\n' >"$work/debian/control"

for spec; do
  mode=${spec%%:*} rest=${spec#*:}
  path=${rest%%:*} src=${rest#*:}
  [[ $mode =~ ^0[0-7]{3}$ && -n $path && $path != /* && -f $src ]] || die "bad file spec: $spec"
  [[ -e $root/$path ]] && die "$path is given twice"
  install -D -m "$mode" "$src" "$root/$path"
done

elfs=()
while IFS= read -r f; do
  if readelf -h "$f" >/dev/null 2>&1; then
    readelf -h "$f" | grep -q 'Machine:.*X86-64' || die "${f#"$root"/} is not an x86-64 ELF (Architecture: amd64)"
    elfs+=("-e${f#"$work"/}")
  fi
done < <(find "$root" -type f ! -path "$root/DEBIAN/*" | LC_ALL=C sort)
((${#elfs[@]})) || die "no ELF files to compute Depends from"
shlibs=$(cd "$work" && dpkg-shlibdeps --warnings=1 -O "${elfs[@]}")
shlibs=${shlibs#shlibs:Depends=}
[[ -n $shlibs && $shlibs != *shlibs:* ]] || die "dpkg-shlibdeps gave no Depends: $shlibs"

size=$(du -sk --apparent-size --exclude=DEBIAN "$root" | cut -f1)
control=$(<"$control_in")
# Quoted replacements: bash 5.2 would otherwise expand & in them.
control=${control//@VERSION@/"$version"}
control=${control//@INSTALLED_SIZE@/"$size"}
control=${control//@SHLIBS_DEPENDS@/"$shlibs"}
[[ $control != *@*@* ]] || die "unreplaced field in $control_in"
printf '%s\n' "$control" >"$root/DEBIAN/control"

touch "$root/DEBIAN/conffiles"
(
  cd "$root"
  find . -type f ! -path './DEBIAN/*' -printf '%P\n' | LC_ALL=C sort |
    while IFS= read -r f; do
      grep -qxF "/$f" DEBIAN/conffiles || md5sum "$f"
    done
) >"$root/DEBIAN/md5sums"
chmod 0644 "$root/DEBIAN/control" "$root/DEBIAN/md5sums" "$root/DEBIAN/conffiles"
[[ -s $root/DEBIAN/conffiles ]] || rm "$root/DEBIAN/conffiles"

dpkg-deb --root-owner-group --build "$root" "$out" >/dev/null
