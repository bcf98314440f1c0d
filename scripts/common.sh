# shellcheck shell=bash
# Sourced by scripts/setup.sh and scripts/test.sh: installing Debian packages without assuming sudo.

# Root here: we are root, or sudo exists and works without a password (sudo -n never prompts).
can_be_root() {
  [ "$(id -u)" = 0 ] || { command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; }
}

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; else sudo -n "$@"; fi
}

# apt_install WHY PACKAGE...: installs Debian packages with apt-get (apt-get update first) when we can be
# root; otherwise says why they are needed and the exact commands to run, and returns 1.
apt_install() {
  local why="$1"; shift
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "error: Debian package $* needed ($why), and this system has no apt-get:" >&2
    echo "install the equivalent with its package manager, then run this command again." >&2
    return 1
  fi
  if ! can_be_root; then
    echo "error: Debian package $* needed ($why)." >&2
    echo "Installing it needs root: this is not root and has no sudo that works without a password. Run:" >&2
    echo "" >&2
    echo "    sudo apt-get update && sudo apt-get install -y $*" >&2
    echo "" >&2
    echo "(as root: the same without sudo), then run this command again." >&2
    return 1
  fi
  echo "installing $* with apt-get ($why)" >&2
  as_root apt-get update -q >/dev/null || return 1
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null
}
