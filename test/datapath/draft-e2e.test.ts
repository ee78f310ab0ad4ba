// timing-sensitive: run last and alone (scripts/test.sh), as it measures injected delays back.
// The later drafts' clear layouts in the kernel (draft-layouts.md), on real interfaces:
// two hosts joined through a router that delays every frame by 5 ms each way, both
// stamping the current draft's layout (`--layout draft-14`: C/D, type 0x0F, 22 bytes,
// 32-bit sequence numbers) with every flow started 16 packets before the 32-bit wrap,
// then layout E in the clear (`--layout draft-15`, type 0x1E), then layout E protected
// (`--layout draft-15-protected`) with keys installed as a reader agent installs them
// and a router that flips a sealed bit in every 10th option. Captures and the eBPF
// records are analyzed: the injected delays come back, PSNTP runs on through 0 with
// nothing counted lost or reordered, each flow names its layout; under protection every
// option opens with the key log but the flipped ones, which both kernels count, and no
// nonce (Epoch, PSNTP) appears twice in a direction.
//
// Tolerances as in e2e.test.ts: round trip [10 ms, 13 ms]; server delay at least the
// responder's own hold, at most 5 ms (and its own lateness) above it.

import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { acquireTimingLock, releaseTimingLock } from "../helpers/timing-lock.ts";
import { datapathSkipReason, gcmDatapathSkipReason, PDM_BIN, ROOT, Topology, type Host } from "../../lab/index.ts";
import { analyzeCapture } from "../../analyzer/index.ts";
import { formatIpv6Address, type Draft15ProtectedOption, type DraftClearOption } from "../../pdm/index.ts";
import type { KeyInstaller } from "../../probes/kernel-keys/index.ts";
import { attachProtected, deployment, exchangeCaptured, forEachUdpPacket } from "../helpers/protected-lab.ts";

const skip = datapathSkipReason();
const UDP_PEER = join(ROOT, "test", "helpers", "udp-peer.mjs");
const MS = 1e6;
const NEAR_WRAP = 2 ** 32 - 16;
/** Layout E protected's AEAD here: AES-128-GCM where the kernel can seal it. */
const AEAD = gcmDatapathSkipReason() ? ("chacha20-poly1305" as const) : ("aes-128-gcm" as const);

interface FlowJson {
  transport: string;
  layout?: string;
  client: string;
  serverPort: number;
  serverDelayNs?: { count: number; p50: number };
  roundTripDelayNs?: { count: number; p50: number };
  counters: { lost: number; malformed: number; reordered: number };
}

/** The later drafts' options a host sent over UDP, in capture order, with their option type. */
async function draftOptions(file: string, from: string): Promise<Array<DraftClearOption & { type: number }>> {
  const out: Array<DraftClearOption & { type: number }> = [];
  await forEachUdpPacket(file, (v, p) => {
    if (formatIpv6Address(p.data.subarray(v.srcOffset, v.srcOffset + 16)) !== from) return;
    const o = v.pdm;
    if (o?.layout === "v2-draft09" || o?.layout === "v2-draft15")
      out.push({ ...o, type: p.data[v.srcOffset - 8 + 40 + 2]! }); // the option right after the IPv6 header
  });
  return out;
}

describe("the later drafts' layouts between two namespaces", { skip, concurrency: false }, () => {
  let dir: string;
  before(async () => {
    await acquireTimingLock();
    dir = mkdtempSync(join(tmpdir(), "pdm-draft-e2e-"));
  });
  after(() => {
    rmSync(dir, { recursive: true, force: true });
    releaseTimingLock();
  });

  for (const [layout, name, type] of [
    ["draft-14", "v2-draft09", 0x0f],
    ["draft-15", "v2-draft15", 0x1e],
  ] as const) {
    it(`${layout}: injected delays come back; PSNTP runs on through the 32-bit wrap`, async () => {
      const topo = new Topology({ router: { delayMs: 5 } });
      const { a, b } = topo;
      try {
        await topo.start();
        for (const h of [a, b]) {
          const r = topo.pdm(h, ["attach", "-i", h.ifname, "--layout", layout, "--first-psn", String(NEAR_WRAP)]);
          assert.equal(r.code, 0, r.stderr);
          assert.match(r.stdout, new RegExp(`stamping ${name}`));
        }
        const file = join(dir, `${layout}.pcapng`);
        const capture = topo.spawn(b, [process.execPath, PDM_BIN, "capture", "-i", b.ifname, "-w", file]);
        const events = topo.spawn(a, [
          process.execPath,
          PDM_BIN,
          "capture",
          "-i",
          a.ifname,
          "--source",
          "ebpf",
          "-f",
          "json",
        ]);
        await capture.waitFor(/capturing on/, 60_000);
        await new Promise((r) => setTimeout(r, 1000)); // the eBPF records' reader open too
        const server = topo.spawn(b, [process.execPath, UDP_PEER, "serve", "7000", "20"]);
        await server.waitFor(/ready/);
        const ask = topo.exec(a, [process.execPath, UDP_PEER, "ask", b.addr, "7000", "40", "5"]);
        const asked = JSON.parse(ask.stdout) as { sent: number; answered: number };
        assert.deepEqual([asked.sent, asked.answered], [40, 40], "every request answered with stamping on");
        await new Promise((r) => setTimeout(r, 300));
        for (const c of [capture, events]) c.child.kill("SIGINT");
        assert.equal(await capture.exited(60_000), 0, capture.output().stderr);
        assert.equal(await events.exited(60_000), 0, events.output().stderr);

        // On the wire: the layout's type, PSNTP from 2^32 - 16 on through 0, PSNLR echoing a's.
        const fromA = await draftOptions(file, a.addr);
        const fromB = await draftOptions(file, b.addr);
        assert.equal(fromA.length, 40);
        assert.ok(fromA.every((o) => o.layout === name && o.type === type && o.epoch === 0));
        assert.deepEqual(
          fromA.map((o) => o.psnTp),
          Array.from({ length: 40 }, (_, i) => (NEAR_WRAP + i) >>> 0),
          "PSNTP +1 per packet, through the wrap",
        );
        const sentByA = new Set(fromA.map((o) => o.psnTp));
        assert.ok(fromB.length >= 40 && fromB.every((o) => sentByA.has(o.psnLr)), "PSNLR names a packet a sent");

        const held = server
          .output()
          .stdout.split("\n")
          .filter((l) => l.startsWith("held"))
          .map((l) => Number(l.split(" ")[1]))
          .sort((x, y) => x - y);
        const hold = held[Math.floor(held.length / 2)]!;
        const r = topo.exec(a, [process.execPath, PDM_BIN, "analyze", "-r", file, "-f", "json"]);
        assert.equal(r.code, 0, r.stderr);
        const result = JSON.parse(r.stdout) as { flows: FlowJson[]; counters: Record<string, number> };
        assert.equal(result.counters.malformed, 0);
        const udp = result.flows.find((f) => f.transport === "udp" && f.serverPort === 7000);
        assert.ok(udp?.serverDelayNs && udp.roundTripDelayNs, `UDP flow with samples: ${r.stdout.slice(0, 300)}`);
        assert.equal(udp.layout, name, "the flow names its layout");
        assert.equal(udp.client, a.addr);
        assert.ok(udp.serverDelayNs.count >= 35, `samples: ${udp.serverDelayNs.count}`);
        assert.deepEqual([udp.counters.lost, udp.counters.reordered], [0, 0], "32-bit PSN arithmetic across the wrap");
        const sd = udp.serverDelayNs.p50;
        const slack = 5 * MS + Math.max(0, hold - 20 * MS);
        assert.ok(sd >= hold && sd <= hold + slack, `server delay p50 ${sd} ns vs responder hold ${hold} ns`);
        const rtd = udp.roundTripDelayNs.p50;
        assert.ok(rtd >= 10 * MS && rtd <= 13 * MS, `round-trip delay p50 ${rtd} ns, injected 10 ms`);

        // The eBPF records on host a: the same figures, the same layout.
        const live = JSON.parse(events.output().stdout) as { flows: FlowJson[] };
        const liveUdp = live.flows.find((f) => f.transport === "udp" && f.serverPort === 7000);
        assert.ok(liveUdp?.serverDelayNs, `UDP flow in the eBPF records: ${events.output().stdout.slice(0, 300)}`);
        assert.equal(liveUdp.layout, name);
        assert.ok(Math.abs(liveUdp.serverDelayNs.p50 - sd) <= 0.01 * sd, `eBPF ${liveUdp.serverDelayNs.p50} vs ${sd}`);

        const status = topo.pdm(a, ["status", "-i", a.ifname, "--json"]);
        const [st] = JSON.parse(status.stdout) as Array<{
          counters: Record<string, number>;
          flows: Array<{ remotePort: number; psnNext: number; rxPackets: number }>;
        }>;
        assert.equal(st!.counters.malformed, 0);
        const flow = st!.flows.find((f) => f.remotePort === 7000);
        assert.equal(flow?.psnNext, (NEAR_WRAP + 40) >>> 0, "pdm status shows the 32-bit PSNTP");
      } finally {
        topo.cleanup();
      }
    });
  }

  it(`draft-15-protected (${AEAD}): sealed on the wire, opened with the key log, delays measured, no nonce twice, flipped bits counted`, async () => {
    // The router flips a sealed bit in every 10th option; keys from a key installer per
    // host, as a reader agent with "datapath" installs them; a new key index every 40 packets.
    const topo = new Topology({ router: { delayMs: 5, tamperEvery: 10 } });
    const { a, b } = topo;
    const installers: KeyInstaller[] = [];
    try {
      await topo.start();
      const { keys, stk } = deployment(dir, "draft15", AEAD, a.addr);
      for (const h of [a, b])
        installers.push(
          attachProtected(topo, h, AEAD, 40, stk, ["--first-psn", String(NEAR_WRAP)], "draft-15-protected"),
        );
      const file = join(dir, "draft15-protected.pcapng");
      const { sent, answered, held } = await exchangeCaptured(topo, file, 20, ["200", "2"], 60_000);
      assert.deepEqual([sent, answered], [200, 200], "every request answered; tampered options never cost a packet");
      topo.bridge!.child.kill("SIGINT");
      await topo.bridge!.exited(60_000);
      const m = /tampered (\d+) left to right and (\d+) right to left/.exec(topo.bridge!.output().stdout);
      assert.ok(m, topo.bridge!.output().stdout);
      const [aToB, bToA] = [Number(m[1]), Number(m[2])];
      assert.ok(aToB >= 15 && bToA >= 15, `tampered ${aToB} a -> b, ${bToA} b -> a`);

      // On the wire: only layout E protected, and per direction no (Epoch, PSNTP), the
      // nonce, twice; the key index moved on every 40 packets.
      const nonces = new Map<string, Set<string>>();
      let withoutPdm = 0;
      await forEachUdpPacket(file, (v, p) => {
        if (!v.pdm) return void (withoutPdm += 1);
        assert.equal(v.pdm.layout, "v2-draft15-protected");
        const o = v.pdm as Draft15ProtectedOption;
        const dir = formatIpv6Address(p.data.subarray(v.srcOffset, v.srcOffset + 16));
        const seen = nonces.get(dir) ?? new Set<string>();
        const nonce = `${o.epoch}:${o.psnTp}`;
        assert.ok(!seen.has(nonce), `${dir}: nonce ${nonce} twice`);
        seen.add(nonce);
        nonces.set(dir, seen);
      });
      assert.ok(withoutPdm <= 2, `at most a's first packet without PDM: ${withoutPdm}`);
      for (const [dir, seen] of nonces) {
        assert.ok(seen.size >= 195, `${dir}: ${seen.size} sealed options`);
        const epochs = new Set([...seen].map((n) => n.split(":")[0]));
        assert.ok(epochs.size >= 5, `${dir}: key indexes ${[...epochs].join(", ")}`);
      }

      // Each kernel counts exactly the flipped options as authentication failures.
      const status = (h: Host) =>
        JSON.parse(topo.exec(h, [process.execPath, PDM_BIN, "status", "-i", h.ifname, "--json"]).stdout)[0].counters;
      assert.deepEqual([status(b).auth_fail, status(b).rx_nokey], [aToB, 0], "b: the flipped options from a");
      assert.deepEqual([status(a).auth_fail, status(a).rx_nokey], [bToA, 0], "a: the flipped options from b");

      // The analyzer, with the deployment's key log, on the capture after the router.
      const result = await analyzeCapture({ input: file, keysPath: keys });
      assert.deepEqual(
        { authFail: result.counters.authFail, replay: result.counters.replay, noKey: result.counters.noKey },
        { authFail: aToB, replay: 0, noKey: 0 },
        "every option opens but the flipped ones",
      );
      const udp = result.flows.find((f) => f.transport === "udp" && f.serverPort === 7000);
      assert.ok(udp?.serverDelayNs && udp.roundTripDelayNs, "the UDP flow with samples");
      assert.equal(udp.layout, "v2-draft15-protected");
      assert.ok(udp.serverDelayNs.count >= 150, `samples: ${udp.serverDelayNs.count}`);
      const hold = [...held].sort((x, y) => x - y)[Math.floor(held.length / 2)]!;
      const sd = udp.serverDelayNs.p50;
      assert.ok(sd >= hold && sd <= hold + 5 * MS + Math.max(0, hold - 20 * MS), `server delay ${sd} vs hold ${hold}`);
      const rtd = udp.roundTripDelayNs.p50;
      assert.ok(rtd >= 10 * MS && rtd <= 13 * MS, `round-trip delay p50 ${rtd} ns, injected 10 ms`);
      // The flipped options open under no key, so their PSNTPs are missing: at most those count as lost.
      assert.ok(udp.counters.lost <= aToB, `lost ${udp.counters.lost}, flipped ${aToB}`);
      assert.equal(udp.counters.reordered, 0, "32-bit PSN arithmetic across the wrap");
    } finally {
      for (const i of installers) i.close();
      topo.cleanup();
    }
  });
});
