#!/usr/bin/env bash
# Installs nf2bpf's build, test and runtime dependencies from Debian 12 packages.
# Idempotent: packages already present are skipped, so re-running costs one dpkg query.
set -euo pipefail

PKGS=(
  build-essential cmake make pkg-config git ccache
  clang llvm libclang-rt-14-dev
  clang-format clang-tidy  # the `format` test, make tidy
  libbpf-dev bpftool linux-libc-dev
  libnftnl-dev libmnl-dev libnftables-dev
  libyaml-cpp-dev libcli11-dev libspdlog-dev libfmt-dev catch2
  libpcap-dev nlohmann-json3-dev libbenchmark-dev
  iproute2 iptables nftables ipset conntrack tcpdump iputils-ping python3-scapy
  gnuplot-nox  # make bench: the packets/s plot
)

missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: missing packages: ${missing[*]}" >&2
  echo "install-deps: run as root (or with sudo) to install them" >&2
  exit 2
fi

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
