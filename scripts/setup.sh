#!/usr/bin/env bash
# Installs what podtap and its tests need on a Debian/Ubuntu machine, once: system packages
# (when run as root and something is missing) and a virtualenv in .venv with podtap in it.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(iproute2 curl tmux nginx-light wrk tcpdump tshark libpcap0.8 procps python3-venv
  nghttp2-server nghttp2-client)

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ]; then
    echo "podtap setup: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "podtap setup: missing ${missing[*]}; run this as root, or with sudo, to install them" >&2
  fi
fi

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.podtap-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null
  .venv/bin/python -m pip install -q -e '.[dev]'
  touch "$stamp"
fi
