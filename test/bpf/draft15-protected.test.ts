// Layout E protected in the kernel (draft-layouts.md: the -15 text's protected form),
// ChaCha20-Poly1305 (pdm.bpf.o) and AES-128-GCM (pdm_gcm.bpf.o), through
// BPF_PROG_TEST_RUN, keys installed as the agent installs them:
//
// - egress: a 48-byte header whose 40-byte option pdm/'s openDraft15 opens with the STK
//   of the sender's key index and no other; the Epoch is the index's low 12 bits; the
//   index moves on every --packets-per-kri packets; a packet whose index has no key
//   leaves untouched and is counted, never stamped in the clear;
// - ingress: options sealed by pdm/'s sealDraft15 are opened (the key whose index has
//   the option's Epoch), read (32-bit PSNLR, the peer's index), a GSO repeat is one
//   sample, a replay and a flipped bit are counted and change nothing;
// - both: what one host seals, the other opens; with --strip its stack gets the plain packet.

import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import {
  DRAFT15_DEFAULT_TYPE,
  EPOCH_MASK,
  encodeDestOptionsHeader,
  openDraft15,
  parseIpv6,
  sealDraft15,
  type DraftClearOption,
  type Draft15ProtectedOption,
} from "../../pdm/index.ts";
import {
  FLOW_STATE,
  PIN,
  bpfObjectPath,
  encodeConfig,
  nativeBpf,
  sumCounters,
  type AttachOptions,
  type NativeBpf,
} from "../../probes/datapath/index.ts";
import { encodeFlowKey } from "../../probes/kernel-keys/index.ts";
import { ipv6Packet, udpHeader } from "../../fixtures/index.ts";
import { ETH, KERNEL_AEADS, flow, installKey, plain } from "../helpers/kernel-aeads.ts";

const HEADER = 48;

for (const k of KERNEL_AEADS) {
  const load = (native: NativeBpf, extra: Partial<AttachOptions> = {}): number => {
    const object = native.openObject(bpfObjectPath({ aes: k.aead === "aes-128-gcm" }));
    native.setInitialValue(
      object,
      ".rodata",
      encodeConfig({ ifname: "test", layout: "v2-draft15-protected", aead: k.aead, events: false, ...extra }, 14),
    );
    native.loadObject(object);
    return object;
  };
  const install = (native: NativeBpf, object: number, index: number, stk: Buffer, side: "sender" | "receiver") =>
    installKey(native, object, k, index, stk, side);

  describe(`layout E protected sealed on egress (${k.name})`, { skip: k.skip, concurrency: false }, () => {
    let native: NativeBpf;
    let object: number;
    const stks = new Map<number, Buffer>();
    const send = (): Buffer =>
      native.progTestRun(native.programFd(object, PIN.egress), plain, 1, plain.length + 128).data;
    const counters = () => sumCounters(native, native.mapFd(object, PIN.counters));
    before(() => {
      native = nativeBpf();
      object = load(native, { maxPacketsPerKri: 3 });
    });
    after(() => native?.closeObject(object));

    it("seals what pdm/ opens under the key of its index, the Epoch its low 12 bits; never a packet without its key", () => {
      assert.deepEqual(send(), plain, "no key yet: the packet leaves as it came");
      assert.deepEqual([counters().skipped_nokey, counters().stamped], [1, 0]);
      for (const index of [0, 1]) {
        stks.set(index, randomBytes(k.keyLength));
        install(native, object, index, stks.get(index)!, "sender");
      }
      const nonces = new Set<string>();
      const opened: DraftClearOption[] = [];
      for (const index of [0, 0, 1, 1, 1]) {
        const out = send();
        assert.equal(out.length, plain.length + HEADER, "a 48-byte Destination Options header");
        assert.deepEqual([out[14 + 6], out[14 + 41]], [60, 5], "Destination Options, Hdr Ext Len 5");
        assert.deepEqual([out[14 + 42], out[14 + 43]], [DRAFT15_DEFAULT_TYPE, 38], "type 0x1E, Opt Data Len 38");
        assert.deepEqual([...out.subarray(14 + 82, 14 + 88)], [1, 4, 0, 0, 0, 0], "PadN to the end");
        const p = parseIpv6(out, 14);
        assert.ok(p.ok && p.value.pdm?.layout === "v2-draft15-protected", "layout E protected");
        const option = p.value.pdm as Draft15ProtectedOption;
        assert.equal(option.epoch, index & EPOCH_MASK);
        const fields = openDraft15(k.id, stks.get(index)!, option);
        assert.ok(fields, `opens under the STK of index ${index}`);
        assert.equal(openDraft15(k.id, stks.get(index ^ 1)!, option), undefined, "and under no other");
        const nonce = `${index}:${option.epoch}:${option.psnTp}`;
        assert.ok(!nonces.has(nonce), "no (key, nonce) twice");
        nonces.add(nonce);
        opened.push(fields);
      }
      assert.deepEqual(
        opened.slice(1).map((o, i) => (o.psnTp - opened[i]!.psnTp) >>> 0),
        [1, 1, 1, 1],
        "PSNTP +1 over 32 bits",
      );
      assert.deepEqual(
        opened.map((o) => o.globalPointer),
        [1, 2, 3, 4, 5],
      );
      assert.deepEqual(send(), plain, "index 2 has no key yet: no PDM");
      assert.equal(counters().skipped_nokey, 2);
    });
  });

  describe(`layout E protected read on ingress (${k.name})`, { skip: k.skip, concurrency: false }, () => {
    let native: NativeBpf;
    let object: number;
    const stks = new Map<number, Buffer>();
    // A sends to B; these are B's programs, holding A's keys in pdm_peer_keys.
    const peer = (index: number, psnTp: number): Buffer => {
      const option = sealDraft15(k.id, stks.get(index)!, {
        epoch: index & EPOCH_MASK,
        psnTp,
        psnLr: 0xffff_fff0,
        globalPointer: 7,
        scaleDtlr: 1,
        scaleDtls: 2,
        deltaTlr: 3,
        deltaTls: 4,
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
      assert.ok(native.mapLookup(native.mapFd(object, PIN.flows), encodeFlowKey(flow, "receiver"), value));
      return {
        psnLr: value.readUInt32LE(FLOW_STATE.offset("psn_lr")),
        peerKri: value.readUInt32LE(FLOW_STATE.offset("peer_kri")),
      };
    };
    before(() => {
      native = nativeBpf();
      object = load(native);
      // Indexes 4096 and 4097 (Epoch 0 and 1): the kernel tries the key whose index has the Epoch.
      for (const index of [4096, 4097, 4098]) stks.set(index, randomBytes(k.keyLength));
      for (const index of [4096, 4097]) install(native, object, index, stks.get(index)!, "receiver");
    });
    after(() => native?.closeObject(object));

    it("opens with the peer's key of the Epoch's index; counts GSO repeats, replays, flipped bits, missing keys", () => {
      const first = peer(4096, 0xffff_fffe);
      assert.deepEqual(read(first), first, "a reader leaves the packet as it is");
      assert.deepEqual([counters().read, counters().auth_fail], [1, 0]);
      assert.deepEqual(state(), { psnLr: 0xffff_fffe, peerKri: 4096 });
      read(first); // back to back: one GSO burst's segments
      assert.equal(counters().gso_repeat, 1);
      read(peer(4096, 0xffff_ffff));
      read(first); // the same stamp again, later: a replay
      assert.equal(counters().replay, 1);
      assert.equal(state().psnLr, 0xffff_ffff, "a replay changes nothing");

      const flipped = peer(4097, 0);
      flipped[14 + 40 + 2 + 10]! ^= 0x01; // a sealed byte (Ethernet, IPv6, header head, option o10)
      assert.deepEqual(read(flipped), flipped);
      assert.equal(counters().auth_fail, 1);
      read(peer(4097, 0)); // the next index, across PSNTP's wrap
      assert.deepEqual(state(), { psnLr: 0, peerKri: 4097 });
      read(peer(4098, 1)); // no key for index 4098
      assert.equal(counters().auth_fail, 2);
      assert.equal(counters().read, 4);
      assert.equal(counters().malformed, 0);
    });
  });

  describe(`layout E protected, host to host (${k.name})`, { skip: k.skip, concurrency: false }, () => {
    it("what A's egress seals, B's ingress opens; with --strip B's stack gets the plain packet", () => {
      const native = nativeBpf();
      const a = load(native);
      const b = load(native, { strip: true });
      try {
        const stk = randomBytes(k.keyLength);
        install(native, a, 0, stk, "sender");
        install(native, b, 0, stk, "receiver");
        const sent = native.progTestRun(native.programFd(a, PIN.egress), plain, 1, plain.length + 128).data;
        assert.equal(sent.length, plain.length + HEADER);
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
