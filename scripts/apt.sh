# Sourced by the scripts that install Debian packages (install-deps.sh,
# unpack-chrony.sh): which packages are missing, and how to become root for
# apt-get.

# Prints those of the packages named that are not installed, one per line.
apt_missing() {
  local p
  for p in "$@"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
      echo "$p"
    fi
  done
}

# Sets `sudo` to what runs apt-get as root: nothing when root already,
# "sudo" otherwise. Without sudo, says what was wanted ("$1") and exits.
apt_root() {
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
      sudo="sudo"
    else
      echo "$1 and not root; run as root or install sudo" >&2
      exit 1
    fi
  fi
}
