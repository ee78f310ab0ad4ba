#!/usr/bin/env bash
# Installs what the project needs, only what is missing, so it is safe to run again:
#   - Debian packages: clang/llvm/libbpf-dev/g++ (the eBPF programs and their loader;
#     clang-16 for the one that keeps a kernel crypto context in a map, which
#     Debian's default clang 14 cannot describe; clang-format-16 checks bpf/'s style),
#     libpcap-dev (live capture), tshark (the decoding cross-check), prometheus (with
#     promtool: the metrics tests scrape with it), iproute2, iputils-ping,
#     iperf3, tcpdump and ethtool (namespaces, traffic and offload settings in the
#     data-path tests and benchmark), chromium (the HTML report is checked in a browser)
#   - npm packages from package-lock.json (npm ci), when node_modules is missing or stale
#   - bpf/build/pdm.bpf.o (clang) and probes/datapath/native/build/pdm_bpf.node (g++ over libbpf)
#   - analyzer/aead-native/native/build/pdm_aead.node (g++ over the OpenSSL Node ships)
#   - dist/: the CLI bundled by esbuild (bin/bundle.mjs), which starts in a third of
#     the time the TypeScript sources take through tsx
# Usage: bash scripts/setup.sh
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'setup: %s\n' "$*"; }

APT_PACKAGES=(clang clang-16 clang-format-16 prometheus llvm libbpf-dev g++ libpcap-dev tshark iproute2 iputils-ping iperf3 tcpdump ethtool make chromium)
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

if command -v clang >/dev/null && [ -f /usr/include/bpf/libbpf.h ]; then
  say "building the eBPF programs (make -C bpf) and their loader (make -C probes/datapath/native)"
  make -s -C bpf
  make -s -C probes/datapath/native
else
  say "clang or libbpf-dev is missing, so the eBPF data path is not built; its tests will be skipped."
fi

# The AEAD module needs only g++ and the headers that come with Node (its OpenSSL
# included); without it the analyzer opens protected options with node:crypto.
if command -v g++ >/dev/null && make -s -C analyzer/aead-native/native 2>/dev/null; then
  say "built the native AEAD module (analyzer/aead-native/native)"
else
  say "could not build the native AEAD module (g++ and Node's headers), so protected captures are opened with node:crypto: the same results, slower."
fi

say "bundling the CLI into dist/ (esbuild)"
node --input-type=module -e 'const b = await import("./bin/bundle.mjs"); if (!b.bundleIsFresh()) await b.buildBundle();'
