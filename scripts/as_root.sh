# Sourced by scripts that need root. `run_as_root "$@"` returns if this user is
# root; otherwise it re-runs the calling script through sudo when sudo exists
# (a plain user on a desktop), and when it does not (a fresh Debian machine
# where the user is root and sudo is not installed, or a container) it says
# what to do and exits 1. `run_as_root --optional "$@"` returns instead of
# exiting, for scripts that can do part of their work unprivileged.
run_as_root() {
  local optional=0
  if [[ ${1:-} == --optional ]]; then
    optional=1
    shift
  fi
  [[ $(id -u) -eq 0 ]] && return 0
  local me
  me=$(basename "$0")
  if command -v sudo >/dev/null 2>&1; then
    echo "$me: not root; re-running through sudo" >&2
    exec sudo --preserve-env=FUZZ_SECONDS bash "$0" "$@"
  fi
  if ((optional)); then
    echo "$me: not root and no sudo: going on unprivileged; tests that need" \
      "root or a network namespace will skip, and missing packages cannot be" \
      "installed (run as root to get both)" >&2
    return 0
  fi
  echo "$me: needs root, and sudo is not installed. Run it as root, e.g." \
    "su -c 'bash $0', or install sudo (apt-get install sudo) and try again" >&2
  exit 1
}
