# Sourced by the project's scripts: install Debian packages only when missing.
# Usage: apt_need PKG...   (root; non-interactive; runs `apt-get update` once)

apt_need() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "installing: ${missing[*]}" >&2
  if [ -z "${KUBEDUMP_APT_UPDATED:-}" ]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
    export KUBEDUMP_APT_UPDATED=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
}

# A private deb-src list for `apt-get source`, leaving the system's apt config alone.
# Prints the apt-get options to use.
apt_src_opts() {
  local dir=/var/cache/kubedump/apt-src
  mkdir -p "$dir/lists/partial"
  if [ ! -f "$dir/sources.list" ]; then
    echo "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bookworm main" >"$dir/sources.list"
  fi
  echo "-o Dir::Etc::SourceList=$dir/sources.list -o Dir::Etc::SourceParts=/dev/null -o Dir::State::Lists=$dir/lists"
}
