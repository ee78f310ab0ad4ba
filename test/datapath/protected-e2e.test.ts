// timing-sensitive: run last and alone (scripts/test.sh), as it measures injected delays back.
// Issue 6's proof on real interfaces. First: two namespaces through a router that delays
// frames 5 ms each way, the protected layout (ChaCha20-Poly1305) attached on both hosts,
// their keys installed on the kernel's request by a KeyInstaller per host (here in the
// test process, reading the pinned maps, as a reader agent with "datapath" does; see
// test/agent/kernel-keys.test.ts), keys derived from one deployment's SharedSecret. UDP request/response rotates Kri every 40
// packets. A capture on the receiving interface must show no readable PDM field;
// the analyzer, given the deployment's key log, must open every stamped option (no
// auth failure, no replay) and report the injected delays; no (Kri, Random Number)
// pair may repeat. The coverage (packets that left without PDM) is printed: only a's
// first packet, as b's kernel asks for its answers' keys when that packet arrives. Then, with
// the default AEAD (AES-128-GCM: the kernel's AES; ChaCha20-Poly1305 where this kernel
// or build cannot), a rotation test and a tamper test.

import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AeadId, openProtectedOption, type FlowTuple } from "../../pdm/index.ts";
import type { KeyInstaller } from "../../probes/kernel-keys/index.ts";
import { acquireTimingLock, releaseTimingLock } from "../helpers/timing-lock.ts";
import { attachProtected, deployment, exchangeCaptured, forEachUdpPacket } from "../helpers/protected-lab.ts";
import { datapathSkipReason, gcmDatapathSkipReason, PDM_BIN, Topology, type Host } from "../../lab/index.ts";
import { analyzeCapture } from "../../analyzer/index.ts";

const skip = datapathSkipReason();
const MS = 1e6;
/** The rotation and tamper tests' AEAD: the default one where the kernel can seal it. */
const DEFAULT_AEAD = gcmDatapathSkipReason() ? ("chacha20-poly1305" as const) : ("aes-128-gcm" as const);

describe("protected layout between two namespaces", { skip, concurrency: false }, () => {
  let dir: string;
  before(async () => {
    await acquireTimingLock();
    dir = mkdtempSync(join(tmpdir(), "pdm-protected-e2e-"));
  });
  after(() => {
    rmSync(dir, { recursive: true, force: true });
    releaseTimingLock();
  });

  it("ChaCha20-Poly1305: sealed on the wire, opened with the key log, injected delays measured, no pair repeated", async () => {
    const topo = new Topology({ router: { delayMs: 5 } });
    const { a, b } = topo;
    const installers: KeyInstaller[] = [];
    try {
      await topo.start();
      // One deployment: its SharedSecret, and the client end of the flows (host a).
      const { keys, stk } = deployment(dir, "deployment", "chacha20-poly1305", a.addr);
      for (const h of [a, b]) installers.push(attachProtected(topo, h, "chacha20-poly1305", 40, stk));

      const file = join(dir, "protected.pcapng");
      const { sent, answered, held } = await exchangeCaptured(topo, file, 20, ["200", "2"], 60_000);
      assert.deepEqual([sent, answered], [200, 200], "every request answered with protection on");

      // On the wire: every PDM option is protected, no field readable without a key.
      const layouts = new Map<string, number>();
      let withoutPdm = 0;
      let answersWithoutPdm = 0;
      await forEachUdpPacket(file, (v) => {
        if (!v.pdm) {
          withoutPdm += 1;
          if (v.sport === 7000) answersWithoutPdm += 1;
        } else layouts.set(v.pdm.layout, (layouts.get(v.pdm.layout) ?? 0) + 1);
      });
      assert.deepEqual([...layouts.keys()], ["v2-protected"], "only the protected layout on the wire");
      const stamped = layouts.get("v2-protected")!;
      console.log(
        `# coverage: ${stamped} of ${stamped + withoutPdm} UDP packets protected (${withoutPdm} left without PDM, before their key was installed)`,
      );
      // b's kernel asked for the keys of its answers when a's first packet arrived, so
      // b's first answer (20 ms later) is sealed: only a's first packet goes without.
      assert.equal(answersWithoutPdm, 0, "every answer sealed, the first included");
      assert.ok(withoutPdm <= 2, `at most a's first packet (and a repeat of it) without PDM: ${withoutPdm}`);
      const counters = (h: Host) =>
        JSON.parse(topo.exec(h, [process.execPath, PDM_BIN, "status", "-i", h.ifname, "--json"]).stdout)[0].counters;
      for (const h of [a, b]) {
        const c = counters(h);
        assert.deepEqual(
          { auth_fail: c.auth_fail, rx_nokey: c.rx_nokey },
          { auth_fail: 0, rx_nokey: 0 },
          `${h.name}: every option received had its keys in place`,
        );
      }

      // With the key log: every option opens, delays as injected, no (Kri, Random Number) pair twice.
      const result = await analyzeCapture({ input: file, keysPath: keys });
      assert.deepEqual(
        { authFail: result.counters.authFail, replay: result.counters.replay, noKey: result.counters.noKey },
        { authFail: 0, replay: 0, noKey: 0 },
      );
      const udp = result.flows.find((f) => f.transport === "udp" && f.serverPort === 7000);
      assert.ok(udp && udp.layout === "v2-protected", "the UDP flow, protected");
      assert.ok(udp.serverDelayNs!.count >= 180, `samples: ${udp.serverDelayNs!.count}`);
      const hold = [...held].sort((x, y) => x - y)[Math.floor(held.length / 2)]!;
      const sd = udp.serverDelayNs!.p50;
      // Above the hold the responder measured itself by what the stacks add (its wake-up
      // and send): usually under 1 ms, up to 4 ms when this shared VM slows down. How slow
      // it is shows in the responder's own 20 ms timer (held 28 ms in one CI run, when
      // the stacks added 7.4 ms): the stacks may be late by as much again.
      const slack = 5 * MS + Math.max(0, hold - 20 * MS);
      assert.ok(sd >= hold && sd <= hold + slack, `server delay p50 ${sd} ns vs responder hold ${hold} ns`);
      const rtd = udp.roundTripDelayNs!.p50;
      assert.ok(rtd >= 10 * MS && rtd <= 13 * MS, `round-trip delay p50 ${rtd} ns, injected 10 ms`);
      assert.equal(
        installers.reduce((n, i) => n + i.stats.unknown, 0),
        0,
      );
      // Rotations happened: 200 exchanges at 40 packets per Kri is 5 Kri values per direction.
      const kris = installers[0]!.stats.installed;
      assert.ok(kris >= 5, `keys installed on a: ${kris}`);
    } finally {
      for (const i of installers) i.close();
      topo.cleanup();
    }
  });

  it(`${DEFAULT_AEAD}, rotation: 2,000 exchanges at 300 packets per Kri, no (Kri, Random Number) pair repeated, nothing failing`, async () => {
    const topo = new Topology(); // no router: rotations need packets, not delay
    const { a, b } = topo;
    const installers: KeyInstaller[] = [];
    try {
      const { keys, stk } = deployment(dir, "rotation", DEFAULT_AEAD, a.addr);
      for (const h of [a, b]) installers.push(attachProtected(topo, h, DEFAULT_AEAD, 300, stk));
      const file = join(dir, "rotation.pcapng");
      assert.equal((await exchangeCaptured(topo, file, 0, ["2000", "0"], 120_000)).answered, 2000);

      // Every option on the wire: its direction, F, Random Number. A (Kri, Random Number)
      // pair repeats only if (F, Random Number) repeats within one stretch of equal F.
      const seen = new Map<string, Set<string>>();
      const kris = new Map<string, number>();
      const lastF = new Map<string, number>();
      let repeats = 0;
      let unprotectedLate = 0;
      await forEachUdpPacket(file, (v) => {
        const dir = `${v.sport}>${v.dport}`;
        const o = v.pdm;
        if (!o) {
          // Sent before its key was installed: only before the direction's first sealed packet.
          if (lastF.has(dir)) unprotectedLate += 1;
          return;
        }
        if (o.layout !== "v2-protected") return;
        if (lastF.get(dir) !== o.fBit) kris.set(dir, (kris.get(dir) ?? -1) + 1);
        lastF.set(dir, o.fBit);
        const pair = `${kris.get(dir)}:${o.randomNumber}`;
        const set = seen.get(dir) ?? new Set<string>();
        if (set.has(pair)) repeats += 1;
        set.add(pair);
        seen.set(dir, set);
      });
      assert.equal(repeats, 0, "no (Kri, Random Number) pair twice in a direction");
      assert.equal(unprotectedLate, 0, "no packet without PDM once a direction's packets are sealed");
      for (const [dir, k] of kris) assert.ok(k >= 5, `${dir}: ${k} rotations`);
      const result = await analyzeCapture({ input: file, keysPath: keys });
      assert.deepEqual(
        { authFail: result.counters.authFail, replay: result.counters.replay },
        { authFail: 0, replay: 0 },
      );
      const status = (h: typeof a) =>
        JSON.parse(topo.exec(h, [process.execPath, PDM_BIN, "status", "-i", h.ifname, "--json"]).stdout)[0].counters;
      for (const h of [a, b]) {
        const c = status(h);
        // Without a router an exchange takes ~0.1 ms, less than the key installer's round
        // trip through user space: the flow's first packets may leave before its key (the
        // capture shows they are only the first: usually 1-3, 5 when this shared VM
        // slows down), and one may arrive before the key to open it (counted apart:
        // rx_nokey). Never an option the installed keys fail to open.
        assert.ok(
          c.auth_fail === 0 && c.rx_nokey <= 3 && c.skipped_nokey <= 20,
          `${h.name}: auth_fail ${c.auth_fail}, rx_nokey ${c.rx_nokey}, skipped_nokey ${c.skipped_nokey}: at most the flow's first packets`,
        );
      }
    } finally {
      for (const i of installers) i.close();
      topo.cleanup();
    }
  });

  it(`${DEFAULT_AEAD}, a router that flips a bit in every 10th option: the receivers count exactly those, and the measurement ignores them`, async () => {
    const topo = new Topology({ router: { delayMs: 5, tamperEvery: 10 } });
    const { a, b } = topo;
    const installers: KeyInstaller[] = [];
    try {
      await topo.start();
      const { keys, stk } = deployment(dir, "tamper", DEFAULT_AEAD, a.addr);
      for (const h of [a, b]) installers.push(attachProtected(topo, h, DEFAULT_AEAD, 40, stk));
      const file = join(dir, "tamper.pcapng");
      assert.equal(
        (await exchangeCaptured(topo, file, 5, ["100", "2"], 60_000)).answered,
        100,
        "tampered options never cost a packet",
      );
      topo.bridge!.child.kill("SIGINT");
      await topo.bridge!.exited(60_000);
      const m = /tampered (\d+) left to right and (\d+) right to left/.exec(topo.bridge!.output().stdout);
      assert.ok(m, topo.bridge!.output().stdout);
      const [aToB, bToA] = [Number(m[1]), Number(m[2])];
      assert.ok(aToB >= 8 && bToA >= 8, `tampered ${aToB} a -> b, ${bToA} b -> a`);

      // Each kernel counts exactly the tampered options as auth failures: the keys of
      // every other option were in place before it arrived.
      const status = (h: typeof a) =>
        JSON.parse(topo.exec(h, [process.execPath, PDM_BIN, "status", "-i", h.ifname, "--json"]).stdout)[0].counters;
      assert.deepEqual(
        { auth_fail: status(b).auth_fail, rx_nokey: status(b).rx_nokey },
        { auth_fail: aToB, rx_nokey: 0 },
        "b: the tampered options from a",
      );
      assert.deepEqual(
        { auth_fail: status(a).auth_fail, rx_nokey: status(a).rx_nokey },
        { auth_fail: bToA, rx_nokey: 0 },
        "a: the tampered options from b",
      );

      // The analyzer, on the capture after the router (a -> b tampered, b -> a not yet):
      const result = await analyzeCapture({ input: file, keysPath: keys });
      assert.equal(result.counters.authFail, aToB, "exactly the tampered options fail");
      assert.equal(result.counters.replay, 0);
      const udp = result.flows.find((f) => f.transport === "udp" && f.serverPort === 7000)!;
      assert.ok(udp.serverDelayNs!.count >= 70, `samples: ${udp.serverDelayNs!.count}`);
      const rtd = udp.roundTripDelayNs!.p50;
      assert.ok(rtd >= 10 * MS && rtd <= 13 * MS, `round-trip delay p50 ${rtd} ns, injected 10 ms`);
    } finally {
      for (const i of installers) i.close();
      topo.cleanup();
    }
  });
  it(`${DEFAULT_AEAD}, a flow idle past --flow-timeout: both kernels forget it, it resumes at Kri values never used, and everything after is read`, async () => {
    const topo = new Topology({ router: { delayMs: 5 } });
    const { a, b } = topo;
    const installers: KeyInstaller[] = [];
    try {
      await topo.start();
      const { keys, stk } = deployment(dir, "resume", DEFAULT_AEAD, a.addr);
      for (const h of [a, b]) installers.push(attachProtected(topo, h, DEFAULT_AEAD, 10, stk, ["--flow-timeout", "1"]));
      const file = join(dir, "resume.pcapng");
      // 40 exchanges, 3.5 s of silence on the same socket (the flows expire within 2 s), 40 more.
      assert.equal((await exchangeCaptured(topo, file, 2, ["80", "2", "64", "40", "3500"], 60_000)).answered, 80);

      const status = (h: typeof a) =>
        JSON.parse(topo.exec(h, [process.execPath, PDM_BIN, "status", "-i", h.ifname, "--json"]).stdout)[0].counters;
      for (const [i, h] of [a, b].entries()) {
        const c = status(h);
        assert.ok(c.flows_expired >= 1, `${h.name}: the flow expired (${c.flows_expired})`);
        assert.equal(c.auth_fail, 0, `${h.name}: no auth failure`);
        assert.ok(
          c.rx_nokey <= 2,
          `${h.name}: at most the first option after the silence (and its repeat) before the Kri was found: ${c.rx_nokey}`,
        );
        const st = installers[i]!.stats;
        console.log(
          `# resume on ${h.name}: rx_nokey ${c.rx_nokey}, skipped_nokey ${c.skipped_nokey}, flows_expired ${c.flows_expired}; installer resumed ${st.resumed}, found ${st.found}`,
        );
        assert.deepEqual(
          { resumed: st.resumed >= 1, refused: st.refused, unopened: st.unopened },
          { resumed: true, refused: 0, unopened: 0 },
          `${h.name}: ${JSON.stringify(st)}`,
        );
      }

      // Every option on the wire, with the Kri that opens it: per direction the Kri never
      // goes back and no (Kri, Random Number) pair repeats; after the silence both
      // directions are sealed again, beyond every Kri used before it.
      const aead = DEFAULT_AEAD === "aes-128-gcm" ? AeadId.Aes128Gcm : AeadId.Chacha20Poly1305;
      const options = new Map<string, { t: number; kri: number; rn: number }[]>();
      await forEachUdpPacket(file, (v, p) => {
        if (v.pdm?.layout !== "v2-protected") return;
        const o = v.pdm;
        const address = (off: number) => Uint8Array.from(p.data.subarray(off, off + 16));
        const sender: FlowTuple = {
          src: address(v.srcOffset),
          dst: address(v.dstOffset),
          sport: v.sport,
          dport: v.dport,
          proto: 17,
        };
        let kri = -1;
        for (let k = o.fBit; k < 64 && kri < 0; k += 2) if (openProtectedOption(aead, stk(sender, k), k, o).ok) kri = k;
        assert.ok(kri >= 0, "every option opens under some Kri");
        const dir = `${v.sport}>${v.dport}`;
        options.set(dir, [...(options.get(dir) ?? []), { t: p.tsSec * 1e9 + p.tsNsec, kri, rn: o.randomNumber }]);
      });
      assert.equal(options.size, 2, "both directions protected");
      for (const [dir, list] of options) {
        const pairs = new Set(list.map((o) => `${o.kri}:${o.rn}`));
        assert.equal(pairs.size, list.length, `${dir}: no (Kri, Random Number) pair twice`);
        for (let i = 1; i < list.length; i += 1)
          assert.ok(list[i]!.kri >= list[i - 1]!.kri, `${dir}: Kri never goes back`);
        const gap = list.findIndex((o, i) => i > 0 && o.t - list[i - 1]!.t > 3e9);
        assert.ok(gap > 0, `${dir}: options on both sides of the silence`);
        assert.ok(
          list[gap]!.kri > list[gap - 1]!.kri + 1,
          `${dir}: resumed at Kri ${list[gap]!.kri}, past ${list[gap - 1]!.kri} and its next`,
        );
        assert.ok(list.length - gap >= 38, `${dir}: ${list.length - gap} options after the silence`);
        console.log(
          `# resume ${dir}: Kri ${list[gap - 1]!.kri} before the silence, ${list[gap]!.kri} after; ${list.length - gap} options after it`,
        );
      }

      // The analyzer follows the jump (a silent flow's first failing option searches ahead).
      const result = await analyzeCapture({ input: file, keysPath: keys });
      assert.deepEqual(
        { authFail: result.counters.authFail, replay: result.counters.replay },
        { authFail: 0, replay: 0 },
      );
      const udp = result.flows.find((f) => f.transport === "udp" && f.serverPort === 7000)!;
      assert.ok(udp.serverDelayNs!.count >= 74, `samples: ${udp.serverDelayNs!.count}`);
    } finally {
      for (const i of installers) i.close();
      topo.cleanup();
    }
  });
});
