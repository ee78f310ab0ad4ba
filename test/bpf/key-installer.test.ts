// The kernel asks for keys (pdm_key_needs) and the installer (probes/kernel-keys/key-installer.ts)
// puts them in place, through BPF_PROG_TEST_RUN on two hosts' programs: host A sends,
// host B reads, both rotating Kri every 2 packets. Each host's installer runs after
// each packet (an agent that keeps up). Measured coverage: A's first packet leaves
// without PDM (its key is asked for by that packet); every later one is sealed, across
// rotations, because the next Kri's key is installed before it is needed. A B that
// never saw that first packet cannot open A's first stamped one (it learns of the flow
// from it: counted as rx_nokey, not as an auth failure); it reads every later one. A B
// that saw it asked for its keys then: it seals its first answer and reads everything.
// The TypeScript core opens every stamped option with the key the source gives.

import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import {
  AeadId,
  formatFlow,
  openProtectedOption,
  parseIpv6,
  parseIpv6Address,
  type FlowTuple,
  type PdmV2ProtectedOption,
} from "../../pdm/index.ts";
import { KeyInstaller, oneGeneration } from "../../probes/kernel-keys/index.ts";
import {
  PIN,
  PDM_MAP,
  bpfObjectPath,
  encodeConfig,
  nativeBpf,
  sumCounters,
  type NativeBpf,
} from "../../probes/datapath/index.ts";
import { datapathSkipReason } from "../../lab/index.ts";
import { ipv6Packet, udpHeader } from "../../fixtures/index.ts";

const skip = datapathSkipReason();
const ETH = Buffer.from([2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x86, 0xdd]);
const plain = Buffer.concat([
  ETH,
  ipv6Packet({ src: "fd00::1", dst: "fd00::2", proto: 17, upper: udpHeader(40000, 7000, 20) }),
]);
const aToB: FlowTuple = {
  src: parseIpv6Address("fd00::1"),
  dst: parseIpv6Address("fd00::2"),
  sport: 40000,
  dport: 7000,
  proto: 17,
};

/** The deployment's keys, as both hosts' agents would derive them: one STK per (sender 5-tuple, Kri). */
const stk = (sender: FlowTuple, kri: number): Uint8Array =>
  createHash("sha256")
    .update(`${formatFlow(sender)} ${kri}`)
    .digest();

describe("key installer: the kernel asks, the installer answers", { skip, concurrency: false }, () => {
  let native: NativeBpf;
  const hosts: Array<{ object: number; installer: KeyInstaller }> = [];
  const host = (): { object: number; installer: KeyInstaller } => {
    const object = native.openObject(bpfObjectPath());
    native.setInitialValue(
      object,
      ".rodata",
      encodeConfig(
        { ifname: "test", layout: "v2-protected", aead: "chacha20-poly1305", maxPacketsPerKri: 2, events: false },
        14,
      ),
    );
    native.loadObject(object);
    const maps = {
      keys: native.mapFd(object, PDM_MAP.keys),
      peerKeys: native.mapFd(object, PDM_MAP.peerKeys),
      keyNeeds: native.mapFd(object, PDM_MAP.keyNeeds),
    };
    const h = { object, installer: new KeyInstaller(native, maps, oneGeneration(stk)) };
    hosts.push(h);
    return h;
  };
  before(() => {
    native = nativeBpf();
  });
  after(() => {
    for (const h of hosts) {
      h.installer.close();
      native.closeObject(h.object);
    }
  });

  it("seals every packet after the first, across rotations, and the reader opens every one after the first stamped", () => {
    const a = host();
    const b = host();
    const sent: Buffer[] = [];
    for (let i = 0; i < 9; i++) {
      sent.push(native.progTestRun(native.programFd(a.object, PIN.egress), plain, 1, plain.length + 128).data);
      a.installer.consume();
    }
    const ca = sumCounters(native, native.mapFd(a.object, PIN.counters));
    assert.deepEqual(
      { stamped: ca.stamped, skipped_nokey: ca.skipped_nokey },
      { stamped: 8, skipped_nokey: 1 },
      "only the first packet left without PDM",
    );
    assert.deepEqual(sent[0], plain);

    // Every stamped option opens in the TypeScript core with the source's key for its Kri.
    const kris: number[] = [];
    for (const out of sent.slice(1)) {
      const p = parseIpv6(out, 14);
      assert.ok(p.ok && p.value.pdm?.layout === "v2-protected");
      const option = p.value.pdm as PdmV2ProtectedOption;
      const kri = [0, 1, 2, 3, 4, 5].find(
        (k) => openProtectedOption(AeadId.Chacha20Poly1305, stk(aToB, k), k, option).ok,
      );
      assert.ok(kri !== undefined, "opens under one of the flow's keys");
      kris.push(kri);
    }
    assert.deepEqual(
      kris,
      [0, 1, 1, 2, 2, 3, 3, 4],
      "Kri rotates every 2 Random Numbers (the first went to the unkeyed packet)",
    );

    for (const out of sent.slice(1)) {
      native.progTestRun(native.programFd(b.object, PIN.ingress), out, 1, out.length + 64);
      b.installer.consume();
    }
    const cb = sumCounters(native, native.mapFd(b.object, PIN.counters));
    assert.deepEqual(
      { read: cb.read, rx_nokey: cb.rx_nokey, auth_fail: cb.auth_fail },
      { read: 7, rx_nokey: 1, auth_fail: 0 },
      "all but the first stamped packet read; that one counted as unkeyed, not as a forgery",
    );
    assert.equal(a.installer.stats.unknown + b.installer.stats.unknown, 0);
  });

  it("a flow the key source does not know: the kernel asks at most every 10 ms, the installer looks it up at most once a second per direction and says so once", () => {
    const object = native.openObject(bpfObjectPath());
    native.setInitialValue(
      object,
      ".rodata",
      encodeConfig({ ifname: "test", layout: "v2-protected", aead: "chacha20-poly1305", events: false }, 14),
    );
    native.loadObject(object);
    const maps = {
      keys: native.mapFd(object, PDM_MAP.keys),
      peerKeys: native.mapFd(object, PDM_MAP.peerKeys),
      keyNeeds: native.mapFd(object, PDM_MAP.keyNeeds),
    };
    const problems: string[] = [];
    let asked = 0;
    const installer = new KeyInstaller(
      native,
      maps,
      () => {
        asked += 1;
        return undefined;
      },
      (m) => problems.push(m),
    );
    hosts.push({ object, installer });
    for (let i = 0; i < 20; i++) {
      assert.deepEqual(
        native.progTestRun(native.programFd(object, PIN.egress), plain, 1, plain.length + 128).data,
        plain,
      );
      installer.consume();
    }
    assert.equal(
      sumCounters(native, native.mapFd(object, PIN.counters)).skipped_nokey,
      20,
      "every packet left without PDM, and asked",
    );
    assert.deepEqual([asked, installer.stats.unknown], [2, 2], "one look-up for its own keys, one for its peer's");
    assert.equal(problems.filter((m) => m.startsWith("no key for")).length, 2);

    // Back to back, without the installer in between: the kernel asks at most every
    // 10 ms per flow, not once per packet.
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20); // past the last ask's 10 ms
    const needs = installer.stats.needs;
    const started = Date.now();
    for (let i = 0; i < 200; i++)
      native.progTestRun(native.programFd(object, PIN.egress), plain, 1, plain.length + 128);
    installer.consume();
    const asks = installer.stats.needs - needs;
    const bound = Math.ceil((Date.now() - started) / 10) + 1;
    assert.ok(
      asks >= 1 && asks <= bound,
      `200 unkeyed packets in ${Date.now() - started} ms asked ${asks} times (at most ${bound})`,
    );
  });

  it("a flow's first packet, without PDM, makes the responder ask for keys: its first answer is sealed, and each side reads everything stamped", () => {
    const a = host();
    const b = host();
    const reply = Buffer.concat([
      ETH,
      ipv6Packet({ src: "fd00::2", dst: "fd00::1", proto: 17, upper: udpHeader(7000, 40000, 20) }),
    ]);
    const egress = (h: typeof a, pkt: Buffer): Buffer =>
      native.progTestRun(native.programFd(h.object, PIN.egress), pkt, 1, pkt.length + 128).data;
    const ingress = (h: typeof a, pkt: Buffer): void => {
      native.progTestRun(native.programFd(h.object, PIN.ingress), pkt, 1, pkt.length + 64);
    };
    const first = egress(a, plain);
    a.installer.consume();
    assert.deepEqual(first, plain, "A's first packet leaves before its key");
    ingress(b, first);
    b.installer.consume(); // B's kernel asked for the keys of its answers on that packet
    const flows = sumCounters(native, native.mapFd(b.object, PIN.counters)).flows_created;
    assert.equal(flows, 1, "B knows the flow from its first packet");
    for (let i = 0; i < 6; i++) {
      const answer = egress(b, reply);
      assert.equal(answer.length, reply.length + 40, `B's answer ${i + 1} sealed`);
      ingress(a, answer);
      a.installer.consume();
      const ask = egress(a, plain);
      assert.equal(ask.length, plain.length + 40, `A's packet ${i + 2} sealed`);
      ingress(b, ask);
      b.installer.consume();
    }
    const ca = sumCounters(native, native.mapFd(a.object, PIN.counters));
    const cb = sumCounters(native, native.mapFd(b.object, PIN.counters));
    assert.deepEqual(
      [ca.read, ca.rx_nokey, ca.auth_fail, cb.read, cb.rx_nokey, cb.auth_fail, cb.skipped_nokey, ca.skipped_nokey],
      [6, 0, 0, 6, 0, 0, 0, 1],
      "read: A 6, B 6; nothing unkeyed or failing; only A's first packet left without PDM",
    );
  });
});
