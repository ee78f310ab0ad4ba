import { describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  PROTO,
  decodePdmOption,
  destOptionsHeaderSize,
  encodeDestOptionsHeader,
  encodePdmOption,
  findPdmOption,
  parseIpv6,
  type WireError,
} from "../../pdm/index.ts";
import { icmpEcho, ipv6Packet, tcpHeader, udpHeader } from "../../fixtures/index.ts";

const times = { scaleDtlr: 34, scaleDtls: 38, psnTp: 0x1234, psnLr: 0xabcd, deltaTlr: 58207, deltaTls: 36379 };
const v1 = encodePdmOption({ layout: "rfc8250", ...times });
const v2 = encodePdmOption({ layout: "v2-clear", ...times, randomNumber: 0x7fff, fBit: 1, globalPointer: 0xffff_ffff });

function expectError(result: { ok: boolean; error?: WireError }, code: string, field: string, offset: number): void {
  assert.equal(result.ok, false, "expected a WireError");
  assert.equal(result.error!.code, code);
  assert.equal(result.error!.field, field);
  assert.equal(result.error!.offset, offset);
}

describe("PDM option codec", () => {
  it("RFC 8250 golden bytes", () => {
    //   type len  sDTLR sDTLS  PSNTP  PSNLR  DeltaTLR DeltaTLS
    assert.equal(Buffer.from(v1).toString("hex"), "0f0a" + "22" + "26" + "1234" + "abcd" + "e35f" + "8e1b");
  });

  it("PDMv2 clear golden bytes: version nibble, Random Number and F packed as 15+1 bits", () => {
    assert.equal(
      Buffer.from(v2).toString("hex"),
      "0f12" + "2000" + "ffff" + "22" + "26" + "ffffffff" + "1234" + "abcd" + "e35f" + "8e1b",
    );
  });

  it("header sizes are 16, 24 and 40 bytes with the right Hdr Ext Len", () => {
    assert.deepEqual([12, 20, 36].map(destOptionsHeaderSize), [16, 24, 40]);
    const h = encodeDestOptionsHeader(PROTO.udp, v1);
    assert.equal(h.length, 16);
    assert.equal(h[1], 1);
    assert.deepEqual([...h.subarray(14)], [1, 0], "PadN of 2 bytes at the end");
    assert.equal(encodeDestOptionsHeader(PROTO.tcp, v2)[1], 2);
  });

  it("pads with Pad1 when one byte is missing", () => {
    const h = encodeDestOptionsHeader(6, new Uint8Array([0x05, 3, 0, 0, 0])); // an option that is not PDM
    assert.equal(h.length, 8);
    assert.equal(h[7], 0);
    const found = findPdmOption(h, 0, 8);
    assert.ok(found.ok && found.value === -1);
  });

  it("rejects out-of-range fields at encode time", () => {
    assert.throws(() => encodePdmOption({ layout: "rfc8250", ...times, psnTp: 0x10000 }), RangeError);
    assert.throws(
      () => encodePdmOption({ layout: "v2-clear", ...times, randomNumber: 0x8000, fBit: 0, globalPointer: 0 }),
      RangeError,
    );
  });

  it("names field and offset for each malformed option", () => {
    expectError(decodePdmOption(Uint8Array.of(0x0f), 0), "truncated", "pdm.opt_data_len", 1);
    expectError(decodePdmOption(v1.subarray(0, 11), 0), "truncated", "pdm.opt_data", 2);
    expectError(decodePdmOption(Uint8Array.of(0x0f, 4, 0, 0, 0, 0), 0), "unknown-layout", "pdm.opt_data_len", 1);
    const badVersion = Uint8Array.from(v2);
    badVersion[2] = 0x30;
    expectError(decodePdmOption(badVersion, 0), "bad-version", "pdm.version", 2);
    const reserved = Uint8Array.from(v2);
    reserved[3] = 1;
    expectError(decodePdmOption(reserved, 0), "reserved-set", "pdm.reserved", 2);
  });

  it("never reads past `end` even when the buffer goes on", () => {
    expectError(decodePdmOption(v1, 0, 8), "truncated", "pdm.opt_data", 2);
  });
});

describe("IPv6 walk", () => {
  it("finds PDM and the UDP 5-tuple", () => {
    const pkt = ipv6Packet({
      ext: [[60, encodeDestOptionsHeader(0, v1)]],
      proto: PROTO.udp,
      upper: udpHeader(5000, 53),
    });
    const r = parseIpv6(pkt);
    assert.ok(r.ok);
    assert.equal(r.value.protocol, PROTO.udp);
    assert.equal(r.value.sport, 5000);
    assert.equal(r.value.dport, 53);
    assert.equal(r.value.pdmOffset, 42);
    assert.deepEqual(r.value.pdm, { layout: "rfc8250", ...times });
  });

  it("walks hop-by-hop, routing and fragment headers to TCP", () => {
    const hbh = new Uint8Array(8);
    const routing = new Uint8Array(24);
    routing[1] = 2;
    const frag = new Uint8Array(8);
    const pkt = ipv6Packet({
      ext: [
        [0, hbh],
        [43, routing],
        [44, frag],
        [60, encodeDestOptionsHeader(0, v2)],
      ],
      proto: PROTO.tcp,
      upper: tcpHeader(443, 40000),
    });
    const r = parseIpv6(pkt);
    assert.ok(r.ok);
    assert.equal(r.value.extensionHeaders, 4);
    assert.equal(r.value.sport, 443);
    assert.equal(r.value.pdm?.layout, "v2-clear");
  });

  it("uses type/code and identifier as ICMPv6 ports", () => {
    const r = parseIpv6(ipv6Packet({ proto: PROTO.icmpv6, upper: icmpEcho(128, 0x4242, 1) }));
    assert.ok(r.ok);
    assert.equal(r.value.sport, 128 << 8);
    assert.equal(r.value.dport, 0x4242);
    assert.equal(r.value.pdm, undefined);
  });

  it("stops at a non-first fragment without inventing ports", () => {
    const frag = new Uint8Array(8);
    frag[3] = 8 << 3; // offset 8
    const r = parseIpv6(ipv6Packet({ ext: [[44, frag]], proto: PROTO.udp, upper: new Uint8Array(16) }));
    assert.ok(r.ok);
    assert.equal(r.value.fragment, true);
    assert.equal(r.value.sport, 0);
  });

  it("reports a malformed PDM but keeps the 5-tuple", () => {
    const opt = Uint8Array.from(v2);
    opt[2] = 0x10; // version 1
    const r = parseIpv6(
      ipv6Packet({ ext: [[60, encodeDestOptionsHeader(0, opt)]], proto: PROTO.udp, upper: udpHeader(1, 2) }),
    );
    assert.ok(r.ok);
    assert.equal(r.value.pdm, undefined);
    assert.equal(r.value.pdmError?.code, "bad-version");
    assert.equal(r.value.sport, 1);
  });

  it("flags a second PDM option", () => {
    const two = new Uint8Array(v1.length * 2);
    two.set(v1);
    two.set(v1, v1.length);
    const r = parseIpv6(
      ipv6Packet({ ext: [[60, encodeDestOptionsHeader(0, two)]], proto: PROTO.udp, upper: udpHeader(1, 2) }),
    );
    assert.ok(r.ok);
    assert.equal(r.value.pdmError?.code, "duplicate-pdm");
  });

  it("names field and offset of chain errors", () => {
    expectError(parseIpv6(new Uint8Array(39)), "truncated", "ipv6", 0);
    const v4 = new Uint8Array(40);
    v4[0] = 0x45;
    expectError(parseIpv6(v4), "bad-version", "ipv6.version", 0);
    const hdr = encodeDestOptionsHeader(0, v1);
    hdr[1] = 9; // says 80 bytes
    expectError(
      parseIpv6(ipv6Packet({ ext: [[60, hdr]], proto: PROTO.udp, upper: udpHeader(1, 2) })),
      "bad-length",
      "ipv6.dstopts.hdr_ext_len",
      41,
    );
    const pkt = ipv6Packet({ proto: PROTO.tcp, upper: new Uint8Array(2) });
    expectError(parseIpv6(pkt), "truncated", "tcp.ports", 40);
  });

  it("respects the payload length over trailing bytes (Ethernet padding)", () => {
    const pkt = ipv6Packet({ proto: PROTO.udp, upper: udpHeader(7, 9, 0) });
    const padded = new Uint8Array(pkt.length + 10);
    padded.set(pkt);
    const r = parseIpv6(padded);
    assert.ok(r.ok);
    assert.equal(r.value.ipLength, 48);
  });

  it("refuses chains longer than 16 headers", () => {
    const ext: Array<[number, Uint8Array]> = Array.from({ length: 17 }, () => [60, new Uint8Array(8)]);
    expectError(
      parseIpv6(ipv6Packet({ ext, proto: PROTO.udp, upper: udpHeader(1, 2) })),
      "too-many-headers",
      "ipv6.next_header",
      40 + 17 * 8,
    );
  });
});
