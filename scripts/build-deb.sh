#!/usr/bin/env bash
# make deb: a Debian package of pdm for this machine's Debian and architecture.
#   /usr/lib/pdm/          the CLI bundle (dist/), its production npm packages, the built
#                          eBPF objects and the two native modules (libbpf loader, AEAD)
#   /usr/bin/pdm           runs it with the system's Node (20 or later)
#   /lib/systemd/system/pdm.service, /etc/pdm/service.json (a conffile)
#   /usr/share/pdm/        the Grafana dashboard and the Prometheus rules
# Prints the path of the .deb. Run bash scripts/setup.sh first (it builds what goes in).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

need() { [ -e "$1" ] || { echo "build-deb: $1 is missing: run bash scripts/setup.sh first" >&2; exit 1; }; }
need bpf/build/pdm.bpf.o
need probes/datapath/native/build/pdm_bpf.node
need node_modules
command -v dpkg-deb >/dev/null || { echo "build-deb: dpkg-deb is needed (apt-get install dpkg)" >&2; exit 1; }

version=$(node -p 'require("./package.json").version')
arch=$(dpkg --print-architecture)
out="$ROOT/out/deb"
stage="$out/pdm_${version}_${arch}"
rm -rf "$stage"
mkdir -p "$stage/DEBIAN" "$stage/usr/lib/pdm" "$stage/usr/bin" "$stage/lib/systemd/system" "$stage/etc/pdm" \
  "$stage/usr/share/pdm" "$stage/usr/share/doc/pdm"

# The bundle, fresh.
node --input-type=module -e 'const b = await import("./bin/bundle.mjs"); await b.buildBundle();'

lib="$stage/usr/lib/pdm"
cp -a package.json package-lock.json bin dist "$lib/"
mkdir -p "$lib/bpf" "$lib/probes/datapath/native" "$lib/analyzer/aead-native/native"
cp -a bpf/build "$lib/bpf/"
cp -a probes/datapath/native/build "$lib/probes/datapath/native/"
[ -d analyzer/aead-native/native/build ] && cp -a analyzer/aead-native/native/build "$lib/analyzer/aead-native/native/"
# The production npm packages: this checkout's, already built, without the development ones.
cp -a node_modules "$lib/"
(cd "$lib" && npm prune --omit=dev --no-audit --no-fund --loglevel=error >/dev/null)
touch "$lib/dist/pdm.mjs" # newer than package.json: the bundle is used as it is

cat > "$stage/usr/bin/pdm" <<'SH'
#!/bin/sh
exec node /usr/lib/pdm/bin/pdm.js "$@"
SH
chmod 0755 "$stage/usr/bin/pdm"
install -m 0644 packaging/systemd/pdm.service "$stage/lib/systemd/system/pdm.service"
install -m 0644 packaging/etc/service.json "$stage/etc/pdm/service.json"
cp -a packaging/grafana packaging/prometheus "$stage/usr/share/pdm/"
install -m 0644 README.md docs/fleet.md docs/performance.md docs/protocol-notes.md "$stage/usr/share/doc/pdm/"

size=$(du -sk "$stage" | cut -f1)
cat > "$stage/DEBIAN/control" <<CONTROL
Package: pdm
Version: $version
Architecture: $arch
Maintainer: pdm-toolkit developers <pdm@localhost>
Installed-Size: $size
Depends: libbpf1, libpcap0.8, iproute2, ethtool
Recommends: prometheus
Section: net
Priority: optional
Homepage: https://localhost/pdm-toolkit
Description: IPv6 latency with PDM: eBPF stamping, encrypted PDMv2, fleet metrics
 pdm stamps and reads the IPv6 Performance and Diagnostic Metrics option (RFC 8250
 and PDMv2, clear or sealed in the kernel) with eBPF, registers hosts' keys over
 mutual TLS with HPKE, analyzes captures into per-flow server delay, round-trip
 delay and response time, and serves them for Prometheus (pdm service).
 .
 It runs on Node.js 20 or later, which this package does not install.
CONTROL
echo "/etc/pdm/service.json" > "$stage/DEBIAN/conffiles"
cat > "$stage/DEBIAN/postinst" <<'SH'
#!/bin/sh
set -e
if ! command -v node >/dev/null || [ "$(node -p 'process.versions.node.split(".")[0]')" -lt 20 ]; then
  echo "pdm: needs Node.js 20 or later as 'node' on the PATH" >&2
fi
if [ -d /run/systemd/system ]; then systemctl daemon-reload || true; fi
echo "pdm: edit /etc/pdm/service.json (the interfaces to measure), then: systemctl enable --now pdm"
SH
cat > "$stage/DEBIAN/postrm" <<'SH'
#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then systemctl daemon-reload || true; fi
SH
chmod 0755 "$stage/DEBIAN/postinst" "$stage/DEBIAN/postrm"

deb="$out/pdm_${version}_${arch}.deb"
dpkg-deb --root-owner-group --build "$stage" "$deb" >/dev/null
echo "$deb"
