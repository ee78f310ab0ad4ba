# Convenience targets. The README's two commands are `npm run demo` and `npm test`
# (they need nothing but Node to start); these targets call the same scripts.

.PHONY: deb setup test demo typecheck vectors fixtures bench bench-datapath bench-agent bench-aead bench-protected bench-live bench-bpf-size bench-metrics bench-group bench-ksp profile-datapath clean

setup:
	bash scripts/setup.sh

# A Debian package (out/deb/pdm_VERSION_ARCH.deb) with the built eBPF objects, the
# native modules, the systemd unit, a default config and the dashboard and rules.
deb: setup
	bash scripts/build-deb.sh

test:
	npm test

demo:
	npm run demo

typecheck:
	npx --no-install tsc --noEmit -p .

vectors:
	node --import tsx scripts/gen-vectors.ts

fixtures:
	node --import tsx scripts/gen-fixtures.ts

bench:
	node --import tsx bench/analyze.bench.ts

# Needs root: namespaces, eBPF, iperf3 (bash scripts/setup.sh installs it).
bench-datapath:
	node --import tsx bench/datapath.bench.ts

profile-datapath:
	node --import tsx bench/datapath-profile.ts

# 1,000 readers provisioned over mutual TLS on loopback (issue 4's target: < 10 s).
bench-agent:
	node --import tsx bench/agent.bench.ts

bench-aead:
	node --import tsx bench/aead.bench.ts

bench-protected:
	node --import tsx bench/protected.bench.ts

# Live capture's bounded analysis: memory per flow and speed against the file analysis.
bench-live:
	node --import tsx bench/live.bench.ts

# The fleet metrics' cost: samples/s into the histograms, scrape time, memory with many peers.
bench-metrics:
	node --import tsx bench/metrics.bench.ts

# Group master mode: time from a membership change until every member seals with the
# new generation (10 members in namespaces, 100 simulated in one process), memory.
bench-group:
	node --import tsx bench/group.bench.ts

# Distributed mode: messages per second per member, time to agree after a change
# (3, 8, 32 members on a fake clock; 3 and 8 as processes in namespaces).
bench-ksp:
	node --import tsx bench/ksp.bench.ts

# Each eBPF program's instructions as the kernel accepted it, per layout (root): compare
# two builds with node --import tsx bench/bpf-instructions.ts OTHER_BUILD_DIR.
bench-bpf-size:
	node --import tsx bench/bpf-instructions.ts

clean:
	rm -rf out bench/out
