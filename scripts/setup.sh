#!/usr/bin/env bash
# Installs what building and testing startup-server needs on Debian 12, if missing.
set -euo pipefail

# clang-14 and libclang-rt-14-dev (libFuzzer's libclang_rt.fuzzer) are for the fuzz preset.
packages=(g++ cmake ninja-build libcli11-dev libfmt-dev libasio-dev libssl-dev openssl catch2 groff-base iproute2 strace procps pkg-config dpkg-dev file
          clang-14 libclang-rt-14-dev)
# Optional extras: --bench for the comparison benchmark, --haproxy for the PROXY protocol
# tests with a real sender (they are skipped without it; its packaged service is not used).
for extra in "$@"; do
  case "$extra" in
    --bench) packages+=(ucspi-tcp ncat socat gnuplot-nox) ;;
    --haproxy) packages+=(haproxy) ;;
  esac
done

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "setup: installing ${missing[*]}" >&2
$sudo apt-get update -q
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
