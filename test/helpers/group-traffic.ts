// Traffic between the hosts of a GroupLan for the group tests: UDP request/response
// between every ordered pair, captured on every host; what the captures show of the
// sealed options (repeated (Kri, Random Number) pairs, gaps); the captures analyzed
// with the hosts' key logs together.

import assert from "node:assert/strict";
import { join } from "node:path";
import { analyzeCapture, fileSource, readCapture } from "../../analyzer/index.ts";
import { formatIpv6Address, hex, ipv6Offset, parseIpv6, readKeyLog, writeKeyLog } from "../../pdm/index.ts";
import { LAN_IF, PDM_BIN, ROOT, type GroupLan, type LanHost } from "../../lab/index.ts";

const UDP_PEER = join(ROOT, "test", "helpers", "udp-peer.mjs");

/**
 * Capture on each host's eth0 while every ordered pair of `hosts` exchanges `requests`
 * UDP requests `gapMs` apart; `during` runs once the traffic has started.
 */
export async function trafficPhase(
  lan: GroupLan,
  hosts: LanHost[],
  name: string,
  o: {
    requests: number;
    gapMs?: number;
    /** How long a request waits for its answer before the next goes (a lossy LAN: short). */
    lostAnswerMs?: number;
    during?: () => Promise<void>;
    answered?: (pair: string) => number;
  },
): Promise<Map<LanHost, string>> {
  const files = new Map<LanHost, string>();
  const captures = hosts.map((h) => {
    const file = join(lan.dir, `${name}-${h.name}.pcapng`);
    files.set(h, file);
    return lan.lab.start(h.ns, `capture ${h.name}`, [process.execPath, PDM_BIN, "capture", "-i", LAN_IF, "-w", file]);
  });
  // Each capture says when libpcap is open; on a loaded machine five of them take seconds to start.
  await Promise.all(captures.map((c) => c.waitFor(/capturing on/, 60_000)));
  await new Promise((r) => setTimeout(r, 500));
  const asks = hosts.flatMap((a) =>
    hosts
      .filter((b) => b !== a)
      .map((b) =>
        lan.lab.start(a.ns, `ask ${a.name}->${b.name}`, [
          process.execPath,
          UDP_PEER,
          "ask",
          b.addr,
          "7000",
          String(o.requests),
          String(o.gapMs ?? 5),
          ...(o.lostAnswerMs ? ["64", "0", "0", String(o.lostAnswerMs)] : []),
        ]),
      ),
  );
  await o.during?.();
  for (const ask of asks) {
    assert.equal(await ask.exited(120_000), 0, ask.output().stderr);
    const want = o.answered?.(ask.label) ?? o.requests;
    assert.ok(JSON.parse(ask.output().stdout).answered >= want, `${ask.label}: at least ${want} requests answered`);
  }
  await new Promise((r) => setTimeout(r, 300));
  for (const c of captures) assert.equal(await lan.lab.stop(c, "SIGINT", 30_000), 0, c.output().stderr);
  return files;
}

/**
 * Over the packets each host sent: (Kri, Random Number) pairs seen twice in a direction
 * (Kri counted by F flips), the sealed packets, and per direction the longest time
 * between two sealed packets (ms).
 */
export async function repeatedPairs(
  files: Map<LanHost, string>,
): Promise<{ repeats: number; sealed: number; longestGapMs: Map<string, number> }> {
  let repeats = 0;
  let sealed = 0;
  const longestGapMs = new Map<string, number>();
  for (const [host, file] of files) {
    const seen = new Map<string, Set<string>>();
    const stretch = new Map<string, number>();
    const lastF = new Map<string, number>();
    const lastAt = new Map<string, number>();
    const source = await fileSource(file);
    try {
      await readCapture(source, (p) => {
        const at = ipv6Offset(p.linkType, p.data, p.data.length);
        if (at < 0) return;
        const v = parseIpv6(p.data, at);
        if (!v.ok || v.value.protocol !== 17 || !v.value.pdm || v.value.pdm.layout !== "v2-protected") return;
        const address = (offset: number): string => formatIpv6Address(p.data.subarray(offset, offset + 16));
        if (address(v.value.srcOffset) !== host.addr) return; // this host's own packets only
        sealed += 1;
        const o = v.value.pdm;
        const dir = `${host.name} -> ${address(v.value.dstOffset)} ${v.value.sport}>${v.value.dport}`;
        const t = p.tsSec * 1000 + p.tsNsec / 1e6;
        const before = lastAt.get(dir);
        if (before !== undefined) longestGapMs.set(dir, Math.max(longestGapMs.get(dir) ?? 0, t - before));
        lastAt.set(dir, t);
        if (lastF.get(dir) !== o.fBit) stretch.set(dir, (stretch.get(dir) ?? -1) + 1);
        lastF.set(dir, o.fBit);
        const pair = `${stretch.get(dir)}:${o.randomNumber}`;
        const set = seen.get(dir) ?? new Set<string>();
        if (set.has(pair)) repeats += 1;
        set.add(pair);
        seen.set(dir, set);
      });
    } finally {
      await source.close();
    }
  }
  return { repeats, sealed, longestGapMs };
}

/** Each capture analyzed with `keys`: the counters summed, and the ordered pairs (client -> server) with samples. */
export async function analyzeAll(files: Map<LanHost, string>, keys: string) {
  const sums = { authFail: 0, replay: 0, noKey: 0, pdmPackets: 0 };
  const measured = new Set<string>();
  /** Every UDP flow to the test service, as a line: what a failed assertion shows. */
  const flows: string[] = [];
  for (const file of files.values()) {
    const r = await analyzeCapture({ input: file, keysPath: keys });
    for (const k of Object.keys(sums) as (keyof typeof sums)[]) sums[k] += r.counters[k];
    for (const f of r.flows) {
      if (f.serverPort === 7000 && f.layout === "v2-protected" && (f.roundTripDelayNs?.count ?? 0) > 0)
        measured.add(`${f.client}->${f.server}`);
      if (f.serverPort === 7000)
        flows.push(
          `${file.split("/").pop()}: ${f.client}:${f.clientPort}->${f.server} ${f.layout ?? "no PDM"} packets ${f.packets.clientToServer}/${f.packets.serverToClient} pdm ${f.pdmPackets} samples ${f.roundTripDelayNs?.count ?? 0} ${JSON.stringify(f.counters)}`,
        );
    }
  }
  return { sums, measured, flows };
}

export const pairsOf = (hosts: LanHost[]): string[] =>
  hosts.flatMap((a) => hosts.filter((b) => b !== a).map((b) => `${a.addr}->${b.addr}`)).sort();

/** The key logs of `hosts` together (each generation once), written to a file in the LAN's directory. */
export function unionKeyLog(lan: GroupLan, hosts: LanHost[], name = "union.keys"): string {
  const file = join(lan.dir, name);
  const entries = new Map<string, ReturnType<typeof readKeyLog>[number]>();
  for (const h of hosts) for (const e of readKeyLog(h.keyLog)) entries.set(hex(e.keyId), e);
  writeKeyLog(file, [...entries.values()]);
  return file;
}
