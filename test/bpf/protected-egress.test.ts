// The protected layout sealed by the egress program (issue 6), through
// BPF_PROG_TEST_RUN: with the flow's keys installed the way the agent will install
// them (probes/flow-keys.ts), every packet leaves with a 40-byte header whose option
// the TypeScript core opens with the STK of the Kri the sender used; F follows the
// Kri; no (Kri, Random Number) pair repeats; and a packet whose Kri has no key yet
// leaves untouched and is counted, never stamped in the clear.

import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { AeadId, openProtectedOption, parseIpv6, parseIpv6Address, type PdmV2ProtectedOption } from "../../pdm/index.ts";
import { PIN, encodeConfig, installFlowKey, nativeBpf, bpfObjectPath, sumCounters, PDM_MAP, type NativeBpf } from "../../probes/index.ts";
import { datapathSkipReason } from "../helpers/netns.ts";
import { ipv6Packet, udpHeader } from "../helpers/packets.ts";

const skip = datapathSkipReason();
const ETH = Buffer.from([2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x86, 0xdd]);
const flow = { src: parseIpv6Address("fd00::1"), dst: parseIpv6Address("fd00::2"), sport: 40000, dport: 7000, proto: 17 };
const plain = Buffer.concat([ETH, ipv6Packet({ src: "fd00::1", dst: "fd00::2", proto: 17, upper: udpHeader(40000, 7000, 20) })]);

describe("protected layout sealed on egress (ChaCha20-Poly1305)", { skip, concurrency: false }, () => {
  let native: NativeBpf;
  let object: number;
  const stks = new Map<number, Buffer>();
  const install = (kri: number): void => {
    const stk = randomBytes(32);
    stks.set(kri, stk);
    installFlowKey(native, native.mapFd(object, PDM_MAP.keys), flow, kri, stk);
  };
  const send = (): Buffer => {
    const r = native.progTestRun(native.programFd(object, PIN.egress), plain, 1, plain.length + 128);
    assert.equal(r.retval, 0);
    return r.data;
  };
  const counters = () => sumCounters(native, native.mapFd(object, PIN.counters));

  before(() => {
    native = nativeBpf();
    object = native.openObject(bpfObjectPath());
    const config = encodeConfig({ ifname: "test", layout: "v2-protected", aead: "chacha20-poly1305", maxPacketsPerKri: 3, events: false }, 14);
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
      const r = openProtectedOption(AeadId.Chacha20Poly1305, stks.get(kri)!, kri, option);
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
    assert.deepEqual(psns.slice(1).map((p, i) => (p - psns[i]! + 0x10000) % 0x10000), [1, 1, 1, 1], "PSNTP counts up");
    assert.deepEqual(opened.map((o) => o.fields!.globalPointer), [1, 2, 3, 4, 5], "Global Pointer per stamped packet");

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
