#!/usr/bin/env bash
# Installs what the project needs, only what is missing, so it is safe to run again:
#   - Debian packages: clang/llvm/libbpf-dev (the eBPF build), libpcap-dev (live capture),
#     tshark (the decoding cross-check), iproute2 (namespaces in the data-path tests),
#     chromium (the HTML report is checked in a real headless browser)
#   - npm packages from package-lock.json (npm ci), when node_modules is missing or stale
# Usage: bash scripts/setup.sh
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'setup: %s\n' "$*"; }

APT_PACKAGES=(clang llvm libbpf-dev libpcap-dev tshark iproute2 make chromium)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  say "Debian packages present (${APT_PACKAGES[*]})"
elif [ "$(id -u)" -ne 0 ]; then
  say "not root, so cannot apt-get install ${missing[*]}; run as root (or install them) for the eBPF build and the tshark cross-check, which are skipped meanwhile."
elif ! command -v apt-get >/dev/null; then
  say "no apt-get on this machine: install ${missing[*]} with your package manager."
else
  say "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# node_modules/.pdm-lock remembers which package-lock.json the last npm ci installed.
lock_hash=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ -d node_modules ] && [ "$(cat node_modules/.pdm-lock 2>/dev/null)" = "$lock_hash" ]; then
  say "npm packages up to date"
else
  say "installing npm packages (npm ci)"
  npm ci --no-audit --no-fund --loglevel=error
  echo "$lock_hash" > node_modules/.pdm-lock
fi

if [ -f bpf/Makefile ]; then
  if command -v clang >/dev/null; then
    say "building eBPF programs (make -C bpf)"
    make -s -C bpf
  else
    say "clang is missing, so the eBPF programs are not built; the data-path tests will be skipped."
  fi
fi
