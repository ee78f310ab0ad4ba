// The protected layout in the kernel (issue 6), ChaCha20-Poly1305 (pdm.bpf.o) and
// AES-128-GCM (pdm_gcm.bpf.o: the kernel's AES), through BPF_PROG_TEST_RUN, with keys
// installed the way the agent does (probes/kernel-keys/flow-keys.ts):
//
// - egress: every packet leaves with a 40-byte header whose option the TypeScript
//   core opens with the STK of the Kri the sender used, and no other; F follows the
//   Kri; no (Kri, Random Number) pair repeats; a packet whose Kri has no key yet
//   leaves untouched and is counted, never stamped in the clear;
// - ingress: options sealed by the TypeScript core are opened and read (PSNLR, the
//   peer's Kri), a GSO repeat is one sample, a replay and a tampered or unkeyed
//   option are counted and change nothing, and the packet always passes;
// - both: what one host's egress seals, the other host's ingress reads.

import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import {
  encodeDestOptionsHeader,
  openProtectedOption,
  parseIpv6,
  sealProtectedOption,
  type PdmV2ProtectedOption,
  emptyPdmRecord,
} from "../../pdm/index.ts";
import {
  EVENT,
  FLOW_STATE,
  PDM_EV,
  PIN,
  PDM_MAP,
  bpfObjectPath,
  encodeConfig,
  nativeBpf,
  sumCounters,
  type AttachOptions,
  type NativeBpf,
} from "../../probes/datapath/index.ts";
import { encodeFlowKey, installFlowKey } from "../../probes/kernel-keys/index.ts";
import { eventToRecord } from "../../probes/live/index.ts";
import { AnalysisSession } from "../../analyzer/index.ts";
import { datapathSkipReason } from "../../lab/index.ts";
import { ETH, KERNEL_AEADS, flow, installKey, plain } from "../helpers/kernel-aeads.ts";
import { ipv6Packet, udpHeader } from "../../fixtures/index.ts";

const skip = datapathSkipReason();
const AEADS = KERNEL_AEADS;

for (const k of AEADS) {
  describe(`protected layout sealed on egress (${k.name})`, { skip: k.skip, concurrency: false }, () => {
    let native: NativeBpf;
    let object: number;
    const stks = new Map<number, Buffer>();
    const install = (kri: number): void => {
      const stk = randomBytes(k.keyLength);
      stks.set(kri, stk);
      installKey(native, object, k, kri, stk, "sender");
    };
    const send = (): Buffer => {
      const r = native.progTestRun(native.programFd(object, PIN.egress), plain, 1, plain.length + 128);
      assert.equal(r.retval, 0);
      return r.data;
    };
    const counters = () => sumCounters(native, native.mapFd(object, PIN.counters));

    before(() => {
      native = nativeBpf();
      object = native.openObject(bpfObjectPath({ aes: k.aead === "aes-128-gcm" }));
      const config = encodeConfig(
        { ifname: "test", layout: "v2-protected", aead: k.aead, maxPacketsPerKri: 3, events: false },
        14,
      );
      native.setInitialValue(object, ".rodata", config);
      native.loadObject(object);
    });
    after(() => native?.closeObject(object));

    it("seals what the TypeScript core opens, rotates Kri with F, and never stamps a packet without its key", () => {
      // Before any key: the packet leaves as it came, and is counted.
      assert.deepEqual(send(), plain);
      assert.equal(counters().skipped_nokey, 1);
      assert.equal(counters().stamped, 0);

      install(0);
      install(1);
      const opened: Array<{ kri: number; fields: ReturnType<typeof openWith> }> = [];
      const seen = new Set<string>();
      const openWith = (option: PdmV2ProtectedOption, kri: number) => {
        const r = openProtectedOption(k.id, stks.get(kri)!, kri, option);
        return r.ok ? r.value : undefined;
      };
      const stampedOption = (out: Buffer): PdmV2ProtectedOption => {
        assert.equal(out.length, plain.length + 40, "a 40-byte Destination Options header");
        assert.equal(out[14 + 6], 60, "next header: Destination Options");
        assert.equal(out[14 + 41], 4, "Hdr Ext Len 4: 40 bytes");
        assert.deepEqual([out[14 + 40 + 38], out[14 + 40 + 39]], [1, 0], "PadN to the end");
        const p = parseIpv6(out, 14);
        assert.ok(p.ok && p.value.pdm?.layout === "v2-protected", "a protected PDM option");
        return p.value.pdm as PdmV2ProtectedOption;
      };
      // Kri 0 has 3 Random Numbers (the first went to the packet without a key), Kri 1 three.
      for (const expectedKri of [0, 0, 1, 1, 1]) {
        const option = stampedOption(send());
        assert.equal(option.fBit, expectedKri & 1, "F = Kri mod 2");
        const fields = openWith(option, expectedKri);
        assert.ok(fields, `opens under the STK of Kri ${expectedKri}`);
        assert.equal(openWith(option, expectedKri ^ 1), undefined, "and under no other");
        const pair = `${expectedKri}:${option.randomNumber}`;
        assert.ok(!seen.has(pair), `(Kri, Random Number) ${pair} is new`);
        seen.add(pair);
        opened.push({ kri: expectedKri, fields });
      }
      const psns = opened.map((o) => o.fields!.psnTp);
      assert.deepEqual(
        psns.slice(1).map((p, i) => (p - psns[i]! + 0x10000) % 0x10000),
        [1, 1, 1, 1],
        "PSNTP counts up",
      );
      assert.deepEqual(
        opened.map((o) => o.fields!.globalPointer),
        [1, 2, 3, 4, 5],
        "Global Pointer per stamped packet",
      );

      // Kri 2 has no key yet: no PDM at all; once installed, protected again.
      assert.deepEqual(send(), plain);
      assert.equal(counters().skipped_nokey, 2);
      install(2);
      const option = stampedOption(send());
      assert.equal(option.fBit, 0);
      assert.ok(openWith(option, 2), "opens under the STK of Kri 2");
      assert.equal(counters().stamped, 6);
    });
  });

  /** One host's programs, loaded for the protected layout (nothing attached). */
  function loadHost(native: NativeBpf, extra: Partial<AttachOptions> = {}): number {
    const object = native.openObject(bpfObjectPath({ aes: k.aead === "aes-128-gcm" }));
    native.setInitialValue(
      object,
      ".rodata",
      encodeConfig({ ifname: "test", layout: "v2-protected", aead: k.aead, events: false, ...extra }, 14),
    );
    native.loadObject(object);
    return object;
  }

  describe(`protected layout read on ingress (${k.name})`, { skip: k.skip, concurrency: false }, () => {
    let native: NativeBpf;
    let object: number;
    const stks = new Map<number, Buffer>();
    // A sends to B; these are B's programs, holding A's keys in pdm_peer_keys.
    const peer = (kri: number, psnTp: number, randomNumber: number): Buffer => {
      const option = sealProtectedOption({
        aead: k.id,
        key: stks.get(kri)!,
        kri,
        randomNumber,
        fBit: (kri & 1) as 0 | 1,
        fields: { scaleDtlr: 1, scaleDtls: 2, globalPointer: psnTp, psnTp, psnLr: 0, deltaTlr: 0, deltaTls: 0 },
      });
      return Buffer.concat([
        ETH,
        ipv6Packet({
          src: "fd00::1",
          dst: "fd00::2",
          ext: [[60, encodeDestOptionsHeader(17, option)]],
          proto: 17,
          upper: udpHeader(40000, 7000, 20),
        }),
      ]);
    };
    const read = (pkt: Buffer): Buffer => {
      const r = native.progTestRun(native.programFd(object, PIN.ingress), pkt, 1, pkt.length + 64);
      assert.equal(r.retval, 0, "the packet passes");
      return r.data;
    };
    const counters = () => sumCounters(native, native.mapFd(object, PIN.counters));
    const state = () => {
      const value = Buffer.alloc(FLOW_STATE.size);
      assert.ok(
        native.mapLookup(native.mapFd(object, PIN.flows), encodeFlowKey(flow, "receiver"), value),
        "B has the flow",
      );
      return {
        psnLr: value.readUInt16LE(FLOW_STATE.offset("psn_lr")),
        peerKri: value.readUInt32LE(FLOW_STATE.offset("peer_kri")),
      };
    };

    before(() => {
      native = nativeBpf();
      object = loadHost(native);
      for (const kri of [0, 1, 2]) stks.set(kri, randomBytes(k.keyLength));
      for (const kri of [0, 1]) installKey(native, object, k, kri, stks.get(kri)!, "receiver");
    });
    after(() => native?.closeObject(object));

    it("opens with the peer's keys, follows its Kri, counts GSO repeats, replays, tampering and missing keys", () => {
      const first = peer(0, 100, 7);
      assert.deepEqual(read(first), first, "a reader leaves the packet as it is");
      assert.deepEqual({ read: counters().read, auth_fail: counters().auth_fail }, { read: 1, auth_fail: 0 });
      assert.deepEqual(state(), { psnLr: 100, peerKri: 0 });

      read(first); // back to back: one GSO burst's segments
      assert.equal(counters().gso_repeat, 1);
      read(peer(0, 101, 9));
      assert.equal(state().psnLr, 101);
      read(first); // the same stamp again, later: a replay
      assert.equal(counters().replay, 1);
      assert.equal(state().psnLr, 101, "a replay changes nothing");

      const tampered = peer(0, 102, 11);
      tampered[14 + 40 + 2 + 6 + 20]! ^= 0x04; // a bit of the tag (Ethernet, IPv6, Next Header and length, option head, 14 + 6 sealed bytes in)
      assert.deepEqual(read(tampered), tampered);
      assert.equal(counters().auth_fail, 1);
      assert.equal(state().psnLr, 101, "an unverified option changes nothing");

      read(peer(1, 103, 5)); // F flips: the next Kri, whose key is installed
      assert.deepEqual(state(), { psnLr: 103, peerKri: 1 });
      read(peer(2, 104, 6)); // Kri 2: no key installed
      assert.equal(counters().auth_fail, 2);
      assert.equal(state().psnLr, 103);
      assert.equal(counters().read, 4, "the first stamp, its GSO repeat, PSNTP 101 and the Kri 1 stamp: nothing else");
    });
  });

  describe(`protected layout, host to host (${k.name})`, { skip: k.skip, concurrency: false }, () => {
    it("what A's egress seals, B's ingress opens and reads; with --strip B hands its stack the plain packet", () => {
      const native = nativeBpf();
      const a = loadHost(native);
      const b = loadHost(native, { strip: true });
      try {
        const stk = randomBytes(k.keyLength);
        installKey(native, a, k, 0, stk, "sender");
        installKey(native, b, k, 0, stk, "receiver");
        const sent = native.progTestRun(native.programFd(a, PIN.egress), plain, 1, plain.length + 128).data;
        assert.equal(sent.length, plain.length + 40);
        const received = native.progTestRun(native.programFd(b, PIN.ingress), sent, 1, sent.length + 64).data;
        assert.deepEqual(received, plain, "B's stack gets the packet without the header");
        const c = sumCounters(native, native.mapFd(b, PIN.counters));
        assert.deepEqual(
          { read: c.read, stripped: c.stripped, auth_fail: c.auth_fail },
          { read: 1, stripped: 1, auth_fail: 0 },
        );
      } finally {
        native.closeObject(a);
        native.closeObject(b);
      }
    });
  });
}

describe("protected layout: kernel events (ChaCha20-Poly1305)", { skip, concurrency: false }, () => {
  it("a new flow is announced before its first packet needs a key; stamped and read events carry the clear fields", () => {
    const native = nativeBpf();
    const a = native.openObject(bpfObjectPath());
    native.setInitialValue(
      a,
      ".rodata",
      encodeConfig({ ifname: "test", layout: "v2-protected", aead: "chacha20-poly1305", events: true }, 14),
    );
    native.loadObject(a);
    const events: Buffer[] = [];
    const ring = new native.RingBuffer(native.mapFd(a, PDM_MAP.events), EVENT.size, (records, count) => {
      for (let i = 0; i < count; i++) events.push(Buffer.from(records.subarray(i * EVENT.size, (i + 1) * EVENT.size)));
    });
    const field = (e: Buffer, name: string): number =>
      EVENT.field(name).size === 1
        ? e[EVENT.offset(name)]!
        : EVENT.field(name).size === 2
          ? e.readUInt16LE(EVENT.offset(name))
          : e.readUInt32LE(EVENT.offset(name));
    try {
      native.progTestRun(native.programFd(a, PIN.egress), plain, 1, plain.length + 128); // no key yet
      ring.consume();
      assert.deepEqual(
        events.map((e) => field(e, "type")),
        [PDM_EV["new-flow"]],
        "the agent hears of the flow, though nothing was stamped",
      );
      installFlowKey(native, native.mapFd(a, PDM_MAP.keys), flow, 0, randomBytes(32), "sender");
      const out = native.progTestRun(native.programFd(a, PIN.egress), plain, 1, plain.length + 128).data;
      ring.consume();
      const stamped = events[1]!;
      assert.equal(field(stamped, "type"), PDM_EV.stamped);
      assert.equal(field(stamped, "layout"), 3, "protected");
      assert.equal(field(stamped, "global_pointer"), 1, "the clear fields, for measurement without keys");
      assert.equal(
        field(stamped, "random_f"),
        out.readUInt16BE(14 + 40 + 2 + 4),
        "the Random Number and F on the wire",
      );
      // The analyzer measures from such events without any key: the fields are the kernel's.
      const record = emptyPdmRecord();
      assert.ok(eventToRecord(stamped, 0, record, 0, 1));
      assert.equal(record.wireLayout, "v2-protected");
      assert.equal(record.pdm?.layout, "v2-clear", "fields in the clear layout's shape");
      assert.equal((record.pdm as { globalPointer: number }).globalPointer, 1);
      const session = new AnalysisSession();
      session.addRecord(record, 0);
      const flowReport = session.result("events", {
        format: "ebpf",
        packets: 1,
        bytes: 0,
        stoppedEarly: undefined,
        warnings: [],
      }).flows[0]!;
      assert.deepEqual(
        { layout: flowReport.layout, pdmPackets: flowReport.pdmPackets },
        { layout: "v2-protected", pdmPackets: 1 },
      );
    } finally {
      ring.close();
      native.closeObject(a);
    }
  });
});
