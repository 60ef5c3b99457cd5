#!/usr/bin/env bash
# The devmemd .deb (//deploy:deb):
#  - `dpkg-deb -c`: exactly the expected entries, modes, root:root;
#  - `dpkg-deb -I`: the control fields; Version is devmemd's kDevmemdVersion;
#    Depends names the package of every library the binaries link (readelf
#    NEEDED, resolved by ldd, owned per dpkg -S); conffiles; md5sums match;
#  - the maintainer scripts pass `sh -n` (and shellcheck, and the package
#    lintian, where installed);
# then, as root only, on this machine: apt-get install of the .deb; the devmemd
# user, /var/lib/devmemd 0700 devmemd, /run/devmemd, the units enabled,
# `devmemd --help`; a reinstall keeps an edited conffile; remove keeps the
# config and state; purge removes them and every file. A devmemd package or an
# /etc/devmemd already on the machine makes it skip: it never touches an
# operator's install. Everything it installs is purged on exit.
set -euo pipefail
fail() { echo "FAIL: $*" >&2; exit 1; }
note() { echo "note: $*"; }
HERE="${TEST_SRCDIR}/${TEST_WORKSPACE}"
for tool in dpkg-deb dpkg readelf ldd; do
  command -v "$tool" >/dev/null || { echo "SKIPPED: $tool is not installed"; exit 0; }
done
debs=("$HERE"/deploy/devmemd_*_amd64.deb)
[[ ${#debs[@]} -eq 1 && -f ${debs[0]} ]] || fail "expected one devmemd_*_amd64.deb, got: ${debs[*]}"
DEB=${debs[0]}
VERSION=$(basename "$DEB" | sed 's/^devmemd_\(.*\)_amd64\.deb$/\1/')
WORK=$(mktemp -d "${TEST_TMPDIR:-/tmp}/deb.XXXXXX")
chmod 0755 "$WORK" # apt reads the .deb as _apt
# What the root part changes, for cleanup to undo.
installing=no user_existed=yes aside=""
cleanup() {
  local s
  if [[ $installing == yes ]]; then
    s=$(dpkg-query -W -f='${db:Status-Status}' devmemd 2>/dev/null || true)
    if [[ -n $s && $s != not-installed ]]; then
      DEBIAN_FRONTEND=noninteractive apt-get purge -y -q devmemd >/dev/null 2>&1 || dpkg --purge devmemd || true
    fi
    if [[ $user_existed == no ]]; then
      userdel devmem-agent 2>/dev/null || true
      groupdel devmem-agent 2>/dev/null || true
      userdel devmemd 2>/dev/null || true
      groupdel devmemd 2>/dev/null || true
    fi
  fi
  if [[ -n $aside ]]; then
    rm -rf /var/lib/devmemd
    mv "$aside" /var/lib/devmemd
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

echo "== dpkg-deb -c $(basename "$DEB")"
# mode owner path, sorted by path.
LC_ALL=C sort -k3 >"$WORK/expected" <<'EOF'
drwxr-xr-x root/root ./
drwxr-xr-x root/root ./etc/
drwxr-xr-x root/root ./etc/devmemd/
-rw-r--r-- root/root ./etc/devmemd/devmem-agent.textproto
-rw-r--r-- root/root ./etc/devmemd/devmemd.textproto
drwxr-xr-x root/root ./lib/
drwxr-xr-x root/root ./lib/systemd/
drwxr-xr-x root/root ./lib/systemd/system/
-rw-r--r-- root/root ./lib/systemd/system/devmem-agent.service
-rw-r--r-- root/root ./lib/systemd/system/devmemd.service
-rw-r--r-- root/root ./lib/systemd/system/devmemd.socket
drwxr-xr-x root/root ./usr/
drwxr-xr-x root/root ./usr/bin/
-rwxr-xr-x root/root ./usr/bin/devmem-fleet
-rwxr-xr-x root/root ./usr/bin/devmemctl
drwxr-xr-x root/root ./usr/lib/
drwxr-xr-x root/root ./usr/lib/devmemd/
drwxr-xr-x root/root ./usr/lib/devmemd/slurm/
-rwxr-xr-x root/root ./usr/lib/devmemd/slurm/devmem-epilog
-rwxr-xr-x root/root ./usr/lib/devmemd/slurm/devmem-prolog
-rwxr-xr-x root/root ./usr/lib/devmemd/slurm/devmem-task-prolog
drwxr-xr-x root/root ./usr/lib/sysusers.d/
-rw-r--r-- root/root ./usr/lib/sysusers.d/devmem-agent.conf
-rw-r--r-- root/root ./usr/lib/sysusers.d/devmemd.conf
drwxr-xr-x root/root ./usr/lib/tmpfiles.d/
-rw-r--r-- root/root ./usr/lib/tmpfiles.d/devmemd.conf
drwxr-xr-x root/root ./usr/sbin/
-rwxr-xr-x root/root ./usr/sbin/devmem-agent
-rwxr-xr-x root/root ./usr/sbin/devmem-slurm
-rwxr-xr-x root/root ./usr/sbin/devmemd
drwxr-xr-x root/root ./usr/share/
drwxr-xr-x root/root ./usr/share/devmemd/
drwxr-xr-x root/root ./usr/share/devmemd/grafana/
-rw-r--r-- root/root ./usr/share/devmemd/grafana/devmemd.json
drwxr-xr-x root/root ./usr/share/devmemd/prometheus/
-rw-r--r-- root/root ./usr/share/devmemd/prometheus/devmemd.rules.yml
-rw-r--r-- root/root ./usr/share/devmemd/prometheus/prometheus.example.yml
drwxr-xr-x root/root ./usr/share/doc/
drwxr-xr-x root/root ./usr/share/doc/devmemd/
-rw-r--r-- root/root ./usr/share/doc/devmemd/DBUS.md
-rw-r--r-- root/root ./usr/share/doc/devmemd/FLEET.md
-rw-r--r-- root/root ./usr/share/doc/devmemd/METRICS.md
-rw-r--r-- root/root ./usr/share/doc/devmemd/PROTOCOL.md
-rw-r--r-- root/root ./usr/share/doc/devmemd/README.md
-rw-r--r-- root/root ./usr/share/doc/devmemd/SLURM.md
-rw-r--r-- root/root ./usr/share/doc/devmemd/copyright
drwxr-xr-x root/root ./usr/share/dbus-1/
drwxr-xr-x root/root ./usr/share/dbus-1/system.d/
-rw-r--r-- root/root ./usr/share/dbus-1/system.d/org.devmemd.Devmemd1.conf
EOF
dpkg-deb -c "$DEB" | awk '{ print $1, $2, $6 }' | LC_ALL=C sort -k3 >"$WORK/contents"
diff -u "$WORK/expected" "$WORK/contents" || fail "the package's contents differ from the expected list (- expected, + in the package)"
echo "$(grep -c '^-' "$WORK/contents") files, as expected"

echo "== dpkg-deb -I: control"
field() { dpkg-deb -f "$DEB" "$1"; }
daemon_version=$(sed -n 's/.*kDevmemdVersion\[\] = "\([^"]*\)".*/\1/p' "$HERE/daemon/kernel_facts.h")
[[ $(field Package) == devmemd ]] || fail "Package: $(field Package)"
[[ $(field Version) == "$VERSION" && $VERSION == "$daemon_version" ]] ||
  fail "Version $(field Version), file name $VERSION, kDevmemdVersion $daemon_version"
[[ $(field Architecture) == amd64 ]] || fail "Architecture: $(field Architecture)"
[[ $(field Section) == net ]] || fail "Section: $(field Section)"
[[ $(field Priority) == optional ]] || fail "Priority: $(field Priority)"
[[ $(field Maintainer) =~ ^[^\<]+\ \<[^@\>]+@[^\>]+\>$ ]] || fail "Maintainer: $(field Maintainer)"
[[ $(field Installed-Size) =~ ^[0-9]+$ ]] || fail "Installed-Size: $(field Installed-Size)"
[[ $(field Description | wc -l) -ge 3 ]] || fail "Description is too short: $(field Description)"
DEPENDS=$(field Depends)
echo "Depends: $DEPENDS"
# Depends as one package name per alternative.
printf '%s\n' "${DEPENDS//[,|]/$'\n'}" | sed 's/(.*//; s/[[:space:]]//g' | sort -u >"$WORK/depends"
for p in systemd systemd-sysusers systemd-tmpfiles; do
  grep -qx "$p" "$WORK/depends" || fail "Depends lacks $p (the postinst runs systemd-sysusers and systemd-tmpfiles)"
done
mkdir "$WORK/x" "$WORK/ctl"
dpkg-deb -x "$DEB" "$WORK/x"
dpkg-deb -e "$DEB" "$WORK/ctl"
for bin in usr/sbin/devmemd usr/bin/devmemctl; do
  ldd "$WORK/x/$bin" >"$WORK/ldd"
  grep -q 'not found' "$WORK/ldd" && fail "$bin: $(grep 'not found' "$WORK/ldd")"
  for soname in $(readelf -d "$WORK/x/$bin" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
    # "soname => path (addr)", or "path (addr)" for the dynamic loader.
    path=$(awk -v s="$soname" '$1 == s && $2 == "=>" { print $3 }
      substr($1, length($1) - length(s)) == "/" s { print $1 }' "$WORK/ldd")
    [[ -n $path ]] || fail "$bin: ldd does not resolve $soname"
    owner=""
    for candidate in "$path" "$(readlink -f "$path")" "/usr${path#/usr}" "${path#/usr}"; do
      owner=$(dpkg -S "$candidate" 2>/dev/null | head -1 | cut -d: -f1) && [[ -n $owner ]] && break
    done
    [[ -n $owner ]] || fail "$bin: no package owns $path ($soname)"
    grep -qx "$owner" "$WORK/depends" || fail "$bin needs $soname from $owner, which Depends does not name"
  done
done
echo "every library the binaries link comes from a package in Depends"
[[ $(cat "$WORK/ctl/conffiles") == $'/etc/devmemd/devmemd.textproto\n/etc/devmemd/devmem-agent.textproto' ]] ||
  fail "conffiles: $(cat "$WORK/ctl/conffiles")"
(cd "$WORK/x" && md5sum --quiet -c "$WORK/ctl/md5sums") || fail "md5sums do not match the files"
[[ $(wc -l <"$WORK/ctl/md5sums") -eq $(($(grep -c '^-' "$WORK/contents") - 2)) ]] ||
  fail "md5sums should list every file but the two conffiles: $(cat "$WORK/ctl/md5sums")"
cmp "$WORK/x/etc/devmemd/devmemd.textproto" "$HERE/deploy/devmemd.textproto" || fail "the conffile is not deploy/devmemd.textproto"
cmp "$WORK/x/etc/devmemd/devmem-agent.textproto" "$HERE/deploy/devmem-agent.textproto" || fail "the conffile is not deploy/devmem-agent.textproto"
grep -q '^ExecStart=/usr/sbin/devmemd ' "$WORK/x/lib/systemd/system/devmemd.service" ||
  fail "devmemd.service does not start /usr/sbin/devmemd"

echo "== maintainer scripts"
for s in postinst prerm postrm; do
  [[ -x $WORK/ctl/$s ]] || fail "$s is not executable"
  sh -n "$WORK/ctl/$s" || fail "$s: syntax"
  grep -qx 'set -e' "$WORK/ctl/$s" || fail "$s does not set -e"
done
if command -v shellcheck >/dev/null; then
  shellcheck -s sh "$WORK/ctl/postinst" "$WORK/ctl/prerm" "$WORK/ctl/postrm" || fail "shellcheck"
  echo "shellcheck: clean"
else
  note "shellcheck is not installed; not run"
fi
if command -v lintian >/dev/null; then
  lintian --no-tag-display-limit "$DEB" || fail "lintian"
else
  note "lintian is not installed; not run"
fi

# --- install, reinstall, remove and purge on this machine --------------------
if [[ $(id -u) -ne 0 ]]; then
  echo "SKIPPED: needs root to install the package (contents, control and scripts checked above)"
  exit 0
fi
command -v apt-get >/dev/null || { echo "SKIPPED: apt-get is not installed"; exit 0; }
status=$(dpkg-query -W -f='${db:Status-Status}' devmemd 2>/dev/null || true)
if [[ -n $status && $status != not-installed ]]; then
  echo "SKIPPED: a devmemd package is already on this machine (status $status); not touching it"
  exit 0
fi
for d in /etc/devmemd /run/devmemd; do
  [[ -e $d ]] && { echo "SKIPPED: $d exists (a devmemd installed or run by hand); not touching it"; exit 0; }
done
if [[ -e /var/lib/devmemd ]]; then
  # State of a devmemd run by hand. Unless one runs now, keep it aside and put
  # it back afterwards, as it was.
  if [[ -e /var/lib/devmemd/lock ]] && ! flock -n /var/lib/devmemd/lock true; then
    echo "SKIPPED: a running devmemd holds /var/lib/devmemd/lock"
    exit 0
  fi
  mv /var/lib/devmemd "/var/lib/devmemd.deb_test.$$"
  aside=/var/lib/devmemd.deb_test.$$
  note "/var/lib/devmemd moved to $aside for the test"
fi
id devmemd >/dev/null 2>&1 || user_existed=no
export DEBIAN_FRONTEND=noninteractive
APT=(apt-get -y -q -o Dpkg::Options::=--force-confold)
cp "$DEB" "$WORK/"
cd "$WORK"
systemd_runs=no
[[ -d /run/systemd/system ]] && systemd_runs=yes
note "systemd runs here: $systemd_runs"

echo "== apt-get install $(basename "$DEB") (a path, as apt wants)"
installing=yes
"${APT[@]}" install "$WORK/$(basename "$DEB")" >"$WORK/apt.log" 2>&1 || fail "apt-get install: $(cat "$WORK/apt.log")"
[[ $(dpkg-query -W -f='${db:Status-Status} ${Version}' devmemd) == "installed $VERSION" ]] ||
  fail "dpkg status: $(dpkg-query -W -f='${db:Status-Status} ${Version}' devmemd)"
sed -n 's#^-[^ ]* [^ ]* \./#/#p' "$WORK/contents" | LC_ALL=C sort >"$WORK/files"
dpkg -L devmemd | while IFS= read -r f; do [[ -d $f ]] || echo "$f"; done | LC_ALL=C sort >"$WORK/listed"
diff -u "$WORK/files" "$WORK/listed" || fail "dpkg -L devmemd lists other files than the package's"
while IFS= read -r f; do [[ -f $f ]] || fail "$f is not installed"; done <"$WORK/files"
echo "dpkg -L: the $(wc -l <"$WORK/files") files, all on disk"
dpkg --verify devmemd || fail "dpkg --verify devmemd"

id devmemd || fail "no devmemd user after postinst"
getent passwd devmemd | grep -q ':/var/lib/devmemd:/usr/sbin/nologin$' || fail "devmemd user: $(getent passwd devmemd)"
getent group devmemd >/dev/null || fail "no devmemd group"
[[ $(stat -c '%a %U %G' /var/lib/devmemd) == "700 devmemd devmemd" ]] ||
  fail "/var/lib/devmemd: $(stat -c '%a %U %G' /var/lib/devmemd)"
[[ $(stat -c '%a %U %G' /run/devmemd) == "755 devmemd devmemd" ]] ||
  fail "/run/devmemd: $(stat -c '%a %U %G' /run/devmemd)"
echo "/var/lib/devmemd: $(stat -c '%a %U:%G' /var/lib/devmemd), /run/devmemd: $(stat -c '%a %U:%G' /run/devmemd)"
for link in sockets.target.wants/devmemd.socket multi-user.target.wants/devmemd.service; do
  [[ $(readlink "/etc/systemd/system/$link") == /lib/systemd/system/${link#*/} ]] ||
    fail "/etc/systemd/system/$link: $(ls -l "/etc/systemd/system/$link" 2>&1)"
done
echo "units enabled: devmemd.socket, devmemd.service"
[[ ! -e /etc/systemd/system/multi-user.target.wants/devmem-agent.service ]] ||
  fail "the package enabled devmem-agent (it needs TLS files first)"
getent passwd devmem-agent | grep -q ':/usr/sbin/nologin$' || fail "devmem-agent user: $(getent passwd devmem-agent)"
id -nG devmem-agent | grep -qw devmemd || fail "devmem-agent is not in group devmemd: $(id devmem-agent)"
echo "devmem-agent: user $(id devmem-agent), unit installed and not enabled"
rc=0
/usr/sbin/devmemd --help >"$WORK/help" 2>&1 || rc=$?
if [[ $rc -gt 1 ]] || ! grep -q 'Usage: devmemd' "$WORK/help"; then
  fail "devmemd --help (exit $rc): $(cat "$WORK/help")"
fi
/usr/bin/devmemctl --help >"$WORK/help" 2>&1 || fail "devmemctl --help: $(cat "$WORK/help")"
rc=0
/usr/sbin/devmem-agent --help >"$WORK/help" 2>&1 || rc=$?
if [[ $rc -gt 1 ]] || ! grep -q 'Usage: devmem-agent' "$WORK/help"; then
  fail "devmem-agent --help (exit $rc): $(cat "$WORK/help")"
fi
rc=0
/usr/bin/devmem-fleet --help >"$WORK/help" 2>&1 || rc=$?
if [[ $rc -gt 1 ]] || ! grep -q 'Usage: devmem-fleet' "$WORK/help"; then
  fail "devmem-fleet --help (exit $rc): $(cat "$WORK/help")"
fi
rc=0
/usr/sbin/devmem-slurm --help >"$WORK/help" 2>&1 || rc=$?
if [[ $rc -gt 1 ]] || ! grep -q 'devmem-slurm prolog|epilog|task-prolog' "$WORK/help"; then
  fail "devmem-slurm --help (exit $rc): $(cat "$WORK/help")"
fi
# The wrappers slurm.conf names run the installed binary (no SLURM_JOB_ID
# here: the task prolog exports nothing and succeeds).
env -i /usr/lib/devmemd/slurm/devmem-task-prolog >"$WORK/help" 2>&1 || fail "devmem-task-prolog: $(cat "$WORK/help")"
echo "devmemd, devmemctl, devmem-agent, devmem-fleet and devmem-slurm --help run"

echo "== reinstall (the postinst again) keeps an edited conffile"
echo '# edited by the operator' >>/etc/devmemd/devmemd.textproto
"${APT[@]}" install --reinstall "$WORK/$(basename "$DEB")" >"$WORK/apt.log" 2>&1 || fail "apt-get install --reinstall: $(cat "$WORK/apt.log")"
tail -1 /etc/devmemd/devmemd.textproto | grep -qx '# edited by the operator' || fail "the reinstall replaced the edited conffile"
[[ $(stat -c '%a %U' /var/lib/devmemd) == "700 devmemd" ]] || fail "/var/lib/devmemd after reinstall: $(stat -c '%a %U' /var/lib/devmemd)"
[[ $(getent passwd devmemd | wc -l) -eq 1 ]] || fail "more than one devmemd user"

echo "== apt-get remove: binaries go, config and state stay"
touch /var/lib/devmemd/journal
"${APT[@]}" remove devmemd >"$WORK/apt.log" 2>&1 || fail "apt-get remove: $(cat "$WORK/apt.log")"
[[ $(dpkg-query -W -f='${db:Status-Status}' devmemd) == config-files ]] || fail "status after remove: $(dpkg-query -W -f='${db:Status-Status}' devmemd)"
[[ ! -e /usr/sbin/devmemd && ! -e /lib/systemd/system/devmemd.service ]] || fail "files left after remove"
[[ -f /etc/devmemd/devmemd.textproto && -f /var/lib/devmemd/journal ]] || fail "remove took the config or the state"

echo "== apt-get purge: everything goes but the user"
"${APT[@]}" purge devmemd >"$WORK/apt.log" 2>&1 || fail "apt-get purge: $(cat "$WORK/apt.log")"
status=$(dpkg-query -W -f='${db:Status-Status}' devmemd 2>/dev/null || true)
[[ -z $status || $status == not-installed ]] || fail "status after purge: $status"
while IFS= read -r f; do [[ ! -e $f ]] || fail "$f is left after purge"; done <"$WORK/files"
for d in /var/lib/devmemd /etc/devmemd /run/devmemd /usr/share/devmemd /usr/share/doc/devmemd \
  /etc/systemd/system/sockets.target.wants/devmemd.socket \
  /etc/systemd/system/multi-user.target.wants/devmemd.service; do
  [[ ! -e $d && ! -L $d ]] || fail "$d is left after purge"
done
left=$(find /var/lib/systemd/deb-systemd-helper-enabled -name '*devmemd*' 2>/dev/null)
[[ -z $left ]] || fail "deb-systemd-helper state left after purge: $left"
id devmemd >/dev/null || fail "purge removed the devmemd user (Debian keeps it)"
echo "PASS: contents, control, Depends, install, reinstall, remove and purge"
