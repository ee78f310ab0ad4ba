// The kernel reader on outside input (property tests through BPF_PROG_TEST_RUN): random
// Destination Options headers, random PDM option bodies of every layout's length, and
// random bytes in place of a protected option, into pdm_ingress loaded for each layout.
// Whatever arrives, the packet passes unchanged (no strip configured), and each packet
// is counted at most once as read, malformed or failing authentication; a forged
// protected option never verifies, whatever keys its flow has.

import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import fc from "fast-check";
import { parseIpv6Address } from "../../pdm/index.ts";
import {
  PIN,
  PDM_MAP,
  bpfObjectPath,
  encodeConfig,
  nativeBpf,
  sumCounters,
  type KernelLayout,
  type NativeBpf,
} from "../../probes/datapath/index.ts";
import { installFlowKey } from "../../probes/kernel-keys/index.ts";
import { datapathSkipReason } from "../../lab/index.ts";
import { ipv6Packet, udpHeader } from "../../fixtures/index.ts";

const skip = datapathSkipReason();
const ETH = Buffer.from([2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x86, 0xdd]);

/** A Destination Options header of `size` bytes (a multiple of 8) holding `options` then padding, or raw random bytes. */
const header = fc.oneof(
  // well-formed shape: PDM option (Type 0x0F) with a random body of a layout's length
  fc
    .record({ len: fc.constantFrom(10, 18, 34), body: fc.uint8Array({ minLength: 34, maxLength: 34 }) })
    .map(({ len, body }) => {
      const size = Math.ceil((2 + 2 + len) / 8) * 8;
      const h = new Uint8Array(size);
      h[1] = size / 8 - 1;
      h[2] = 0x0f;
      h[3] = len;
      h.set(body.subarray(0, len), 4);
      if (4 + len < size) {
        h[4 + len] = 1; // PadN over the rest
        h[5 + len] = size - (6 + len);
      }
      return h;
    }),
  // anything at all, with a plausible or implausible Hdr Ext Len
  fc.uint8Array({ minLength: 8, maxLength: 64 }).map((b) => {
    const size = Math.floor(b.length / 8) * 8;
    const h = b.slice(0, size);
    if (h[1]! < 8 && (h[1]! + 1) * 8 > size) h[1] = size / 8 - 1;
    return h;
  }),
);

describe("pdm_ingress on random input", { skip, concurrency: false }, () => {
  let native: NativeBpf;
  const objects: number[] = [];
  const load = (layout: KernelLayout): number => {
    const o = native.openObject(bpfObjectPath());
    native.setInitialValue(
      o,
      ".rodata",
      encodeConfig({ ifname: "fuzz", layout, aead: "chacha20-poly1305", events: false }, 14),
    );
    native.loadObject(o);
    objects.push(o);
    return o;
  };
  before(() => {
    native = nativeBpf();
  });
  after(() => {
    for (const o of objects) native.closeObject(o);
  });

  for (const layout of ["rfc8250", "v2-clear", "v2-protected"] as const) {
    it(`${layout}: the packet always passes unchanged, and is counted at most once`, () => {
      const o = load(layout);
      let packets = 0;
      fc.assert(
        fc.property(header, (h) => {
          const pkt = Buffer.concat([
            ETH,
            ipv6Packet({ src: "fd00::2", dst: "fd00::1", ext: [[60, h]], proto: 17, upper: udpHeader(7000, 40000, 8) }),
          ]);
          const r = native.progTestRun(native.programFd(o, PIN.ingress), pkt, 1, pkt.length + 64);
          packets += 1;
          assert.equal(r.retval, 0);
          assert.deepEqual(r.data, pkt);
        }),
        { numRuns: 400 },
      );
      const c = sumCounters(native, native.mapFd(o, PIN.counters));
      assert.ok(
        c.read + c.malformed + c.auth_fail + c.rx_nokey <= packets,
        `${c.read} + ${c.malformed} + ${c.auth_fail} + ${c.rx_nokey} <= ${packets}`,
      );
      assert.ok(c.read > 0, "the well-formed shapes of the clear layouts are read");
    });
  }

  it("v2-protected: a forged option (right version, random bytes) never verifies, whatever keys the flow has", () => {
    const o = load("v2-protected");
    const flow = {
      src: parseIpv6Address("fd00::2"),
      dst: parseIpv6Address("fd00::1"),
      sport: 7000,
      dport: 40000,
      proto: 17,
    };
    for (const kri of [0, 1, 2])
      installFlowKey(native, native.mapFd(o, PDM_MAP.peerKeys), flow, kri, randomBytes(32), "receiver");
    let packets = 0;
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), (rest) => {
        const h = new Uint8Array(40);
        h[1] = 4;
        h.set([0x0f, 34, 0x20, 0x00], 2);
        h.set(rest, 6);
        h[38] = 1; // PadN(0)
        const pkt = Buffer.concat([
          ETH,
          ipv6Packet({ src: "fd00::2", dst: "fd00::1", ext: [[60, h]], proto: 17, upper: udpHeader(7000, 40000, 8) }),
        ]);
        const r = native.progTestRun(native.programFd(o, PIN.ingress), pkt, 1, pkt.length + 64);
        packets += 1;
        assert.equal(r.retval, 0);
        assert.deepEqual(r.data, pkt);
      }),
      { numRuns: 300 },
    );
    const c = sumCounters(native, native.mapFd(o, PIN.counters));
    assert.deepEqual({ read: c.read, auth_fail: c.auth_fail }, { read: 0, auth_fail: packets });
  });
});
