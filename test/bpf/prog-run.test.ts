// Each eBPF program on crafted packets through BPF_PROG_TEST_RUN (no network): the
// bytes that come out and the map state they leave. The object is loaded exactly as
// `pdm attach` loads it (same config encoder), but nothing is attached or pinned.

import { describe, it, afterEach } from "node:test";
import assert from "node:assert/strict";
import {
  encodeDestOptionsHeader,
  encodeDraftOption,
  encodePdmOption,
  parseIpv6,
  decodeDeltaNs,
  type AnyPdmOption as PdmOption,
  type DraftClearOption,
} from "../../pdm/index.ts";
import {
  FLOW_KEY,
  FLOW_STATE,
  PIN,
  encodeConfig,
  sumCounters,
  nativeBpf,
  bpfObjectPath,
  type AttachOptions,
  type CounterName,
  type NativeBpf,
} from "../../probes/datapath/index.ts";
import { datapathSkipReason } from "../../lab/index.ts";
import { icmpEcho, ipv6Packet, udpHeader } from "../../fixtures/index.ts";

const skip = datapathSkipReason();
const TC_ACT_OK = 0;
const ETH = Buffer.from([2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x86, 0xdd]);
const frame = (ip: Uint8Array): Buffer => Buffer.concat([ETH, ip]);

class Loaded {
  readonly native: NativeBpf = nativeBpf();
  readonly object: number;
  constructor(options: Omit<AttachOptions, "ifname">) {
    this.object = this.native.openObject(bpfObjectPath());
    this.native.setInitialValue(this.object, ".rodata", encodeConfig({ ifname: "test", ...options }, 14));
    this.native.loadObject(this.object);
  }
  run(prog: "egress" | "ingress", packet: Buffer): { retval: number; data: Buffer } {
    const fd = this.native.programFd(this.object, prog === "egress" ? PIN.egress : PIN.ingress);
    return this.native.progTestRun(fd, packet, 1, packet.length + 128);
  }
  counters(): Record<CounterName, number> {
    return sumCounters(this.native, this.native.mapFd(this.object, PIN.counters));
  }
  flows(): Array<{ key: Buffer; value: Buffer }> {
    const fd = this.native.mapFd(this.object, PIN.flows);
    const out: Array<{ key: Buffer; value: Buffer }> = [];
    let key: Buffer | null = null;
    const next = Buffer.alloc(FLOW_KEY.size);
    while (this.native.mapNextKey(fd, key, next)) {
      key = Buffer.from(next);
      const value = Buffer.alloc(FLOW_STATE.size);
      this.native.mapLookup(fd, key, value);
      out.push({ key, value });
    }
    return out;
  }
  close(): void {
    this.native.closeObject(this.object);
  }
}

function pdmOf(out: Buffer): PdmOption {
  const p = parseIpv6(out, 14);
  assert.ok(p.ok, p.ok ? "" : p.error.message);
  assert.ok(p.value.pdm, "a PDM option is present");
  return p.value.pdm;
}

/** A packet from the peer carrying an RFC 8250 option. */
function peerPacket(psnTp: number, upper = udpHeader(7000, 40000, 4)): Buffer {
  const option = encodePdmOption({
    layout: "rfc8250",
    scaleDtlr: 0,
    scaleDtls: 0,
    psnTp,
    psnLr: 0,
    deltaTlr: 0,
    deltaTls: 0,
  });
  return frame(
    ipv6Packet({ src: "fd00::2", dst: "fd00::1", ext: [[60, encodeDestOptionsHeader(17, option)]], proto: 17, upper }),
  );
}

describe("eBPF programs under BPF_PROG_TEST_RUN", { skip, concurrency: false }, () => {
  let loaded: Loaded | undefined;
  afterEach(() => {
    loaded?.close();
    loaded = undefined;
  });

  it("egress inserts a 16-byte RFC 8250 header after the IPv6 header and nothing else changes", () => {
    loaded = new Loaded({ layout: "rfc8250" });
    const ip = ipv6Packet({ src: "fd00::1", dst: "fd00::2", proto: 17, upper: udpHeader(40000, 7000, 20) });
    const { retval, data } = loaded.run("egress", frame(ip));
    assert.equal(retval, TC_ACT_OK);
    assert.equal(data.length, 14 + ip.length + 16);
    assert.deepEqual(data.subarray(14 + 8, 14 + 40), Buffer.from(ip.subarray(8, 40)), "addresses untouched");
    assert.equal(data.readUInt16BE(14 + 4), ip.length - 40 + 16, "payload length grows by the header");
    assert.equal(data[14 + 6], 60, "next header: Destination Options");
    assert.equal(data[14 + 40], 17, "the header chains to UDP");
    assert.equal(data[14 + 41], 1, "Hdr Ext Len 1: 16 bytes");
    assert.deepEqual(data.subarray(14 + 56), Buffer.from(ip.subarray(40)), "UDP header and payload byte for byte");
    assert.deepEqual([...data.subarray(14 + 54, 14 + 56)], [1, 0], "PadN to the 8-byte boundary");
    const pdm = pdmOf(data);
    assert.equal(pdm.layout, "rfc8250");
    if (pdm.layout !== "rfc8250") return;
    assert.deepEqual([pdm.psnLr, pdm.deltaTlr, pdm.deltaTls], [0, 0, 0], "nothing received yet");
    const [flow] = loaded.flows();
    assert.ok(flow);
    assert.equal(flow.value.readUInt16LE(FLOW_STATE.offset("psn_next")), (pdm.psnTp + 1) & 0xffff);
    assert.equal(loaded.counters().stamped, 1);
  });

  it("ingress reads the peer's PSNTP; the next egress packet echoes it with DeltaTLR", () => {
    loaded = new Loaded({ layout: "rfc8250" });
    const out = loaded.run(
      "egress",
      frame(ipv6Packet({ src: "fd00::1", dst: "fd00::2", proto: 17, upper: udpHeader(40000, 7000, 4) })),
    );
    const first = pdmOf(out.data) as Extract<PdmOption, { layout: "rfc8250" }>;
    const reply = peerPacket(777);
    const r = loaded.run("ingress", reply);
    assert.equal(r.retval, TC_ACT_OK);
    assert.deepEqual(r.data, reply, "the reader leaves the packet as it is");
    assert.equal(loaded.counters().read, 1);
    const second = pdmOf(
      loaded.run(
        "egress",
        frame(ipv6Packet({ src: "fd00::1", dst: "fd00::2", proto: 17, upper: udpHeader(40000, 7000, 4) })),
      ).data,
    ) as typeof first;
    assert.equal(second.psnTp, (first.psnTp + 1) & 0xffff, "PSNTP +1");
    assert.equal(second.psnLr, 777, "PSNLR echoes the peer");
    const tlr = decodeDeltaNs(second.deltaTlr, second.scaleDtlr);
    const tls = decodeDeltaNs(second.deltaTls, second.scaleDtls);
    assert.ok(tlr > 0 && tlr < 5e9, `DeltaTLR ${tlr} ns`);
    assert.ok(tls > 0 && tls < 5e9, `DeltaTLS ${tls} ns`);
    assert.equal(loaded.flows().length, 1, "both directions share one flow entry");
  });

  it("ingress finds PDM behind another option in a longer header, and counts a header the packet cuts short", () => {
    loaded = new Loaded({ layout: "rfc8250" });
    const send = () =>
      pdmOf(
        loaded!.run(
          "egress",
          frame(ipv6Packet({ src: "fd00::1", dst: "fd00::2", proto: 17, upper: udpHeader(40000, 7000, 4) })),
        ).data,
      );
    send();
    // 32 bytes (not a size stampers write: read through the helper and walked option by option)
    const option = encodePdmOption({
      layout: "rfc8250",
      scaleDtlr: 0,
      scaleDtls: 0,
      psnTp: 4242,
      psnLr: 0,
      deltaTlr: 0,
      deltaTls: 0,
    });
    const header = new Uint8Array(32);
    header[1] = 32 / 8 - 1;
    header.set([0x1f, 4, 9, 9, 9, 9], 2); // an option to skip (action bits 00), before PDM (0x1E is layout E's)
    header.set(option, 8);
    header.set([1, 32 - 8 - option.length - 2], 8 + option.length); // PadN to the end
    const pkt = frame(
      ipv6Packet({ src: "fd00::2", dst: "fd00::1", ext: [[60, header]], proto: 17, upper: udpHeader(7000, 40000, 4) }),
    );
    assert.deepEqual(loaded.run("ingress", pkt).data, pkt);
    assert.equal(loaded.counters().read, 1);
    assert.equal((send() as Extract<PdmOption, { layout: "rfc8250" }>).psnLr, 4242, "the option was read");
    const cut = pkt.subarray(0, 14 + 40 + 20); // Hdr Ext Len says 32 bytes; 20 arrive
    assert.deepEqual(loaded.run("ingress", cut).data, cut);
    assert.equal(loaded.counters().malformed, 1);
    assert.equal(loaded.counters().read, 1);
  });

  it("a packet with another extension header is counted and left alone", () => {
    loaded = new Loaded({ layout: "rfc8250" });
    const hbh = new Uint8Array(8);
    hbh[2] = 1; // PadN filling the header
    hbh[3] = 4;
    const pkt = frame(ipv6Packet({ ext: [[0, hbh]], proto: 17, upper: udpHeader(40000, 7000, 4) }));
    const r = loaded.run("egress", pkt);
    assert.deepEqual(r.data, pkt);
    assert.equal(loaded.counters().skipped_exthdr, 1);
    assert.equal(loaded.counters().stamped, 0);
  });

  it("policy: only listed ports and prefixes are stamped; NDP never", () => {
    loaded = new Loaded({ layout: "rfc8250", ports: [9999], prefixes: ["fd00:aaaa::/32"] });
    const notPort = frame(ipv6Packet({ dst: "fd00:aaaa::2", proto: 17, upper: udpHeader(40000, 7000, 4) }));
    assert.deepEqual(loaded.run("egress", notPort).data, notPort);
    const notPrefix = frame(ipv6Packet({ dst: "fd00:bbbb::2", proto: 17, upper: udpHeader(40000, 9999, 4) }));
    assert.deepEqual(loaded.run("egress", notPrefix).data, notPrefix);
    const both = frame(ipv6Packet({ dst: "fd00:aaaa::2", proto: 17, upper: udpHeader(40000, 9999, 4) }));
    assert.equal(loaded.run("egress", both).data.length, both.length + 16);
    const ns = new Uint8Array(24);
    ns[0] = 135; // neighbor solicitation
    const ndp = frame(ipv6Packet({ dst: "fd00:aaaa::2", proto: 58, upper: ns }));
    assert.deepEqual(loaded.run("egress", ndp).data, ndp);
    assert.equal(loaded.counters().stamped, 1);
  });

  it("ICMPv6 echo is stamped; the reply updates the same flow", () => {
    loaded = new Loaded({ layout: "rfc8250" });
    const req = loaded.run(
      "egress",
      frame(ipv6Packet({ src: "fd00::1", dst: "fd00::2", proto: 58, upper: icmpEcho(128, 0x4242, 1) })),
    );
    const sent = pdmOf(req.data) as Extract<PdmOption, { layout: "rfc8250" }>;
    const option = encodePdmOption({
      layout: "rfc8250",
      scaleDtlr: 0,
      scaleDtls: 0,
      psnTp: 4321,
      psnLr: sent.psnTp,
      deltaTlr: 0,
      deltaTls: 0,
    });
    loaded.run(
      "ingress",
      frame(
        ipv6Packet({
          src: "fd00::2",
          dst: "fd00::1",
          ext: [[60, encodeDestOptionsHeader(58, option)]],
          proto: 58,
          upper: icmpEcho(129, 0x4242, 1),
        }),
      ),
    );
    const next = pdmOf(
      loaded.run(
        "egress",
        frame(ipv6Packet({ src: "fd00::1", dst: "fd00::2", proto: 58, upper: icmpEcho(128, 0x4242, 2) })),
      ).data,
    ) as typeof sent;
    assert.equal(next.psnLr, 4321);
    assert.equal(loaded.flows().length, 1);
  });

  it("malformed options are counted, never read, and the packet passes unchanged", () => {
    loaded = new Loaded({ layout: "rfc8250" });
    const bad = new Uint8Array(16);
    bad[2] = 0x0f;
    bad[3] = 12; // no layout has Opt Data Len 12
    const pkt = frame(
      ipv6Packet({ src: "fd00::2", dst: "fd00::1", ext: [[60, bad]], proto: 17, upper: udpHeader(7000, 40000, 4) }),
    );
    assert.deepEqual(loaded.run("ingress", pkt).data, pkt);
    const v2bad = encodePdmOption({
      layout: "v2-clear",
      scaleDtlr: 0,
      scaleDtls: 0,
      psnTp: 1,
      psnLr: 0,
      deltaTlr: 0,
      deltaTls: 0,
      randomNumber: 5,
      fBit: 0,
      globalPointer: 1,
    });
    const wrongVersion = Uint8Array.from(v2bad);
    wrongVersion[2] = 0x30; // version 3
    assert.deepEqual(loaded.run("ingress", peerPacketWith(wrongVersion)).data, peerPacketWith(wrongVersion));
    const c = loaded.counters();
    assert.equal(c.malformed, 2);
    assert.equal(c.read, 0);
    assert.equal(loaded.flows().length, 0);
  });

  it("--strip removes the header after reading it and restores the chain", () => {
    loaded = new Loaded({ layout: "rfc8250", strip: true });
    const upper = udpHeader(7000, 40000, 12);
    const plain = frame(ipv6Packet({ src: "fd00::2", dst: "fd00::1", proto: 17, upper }));
    const r = loaded.run("ingress", peerPacket(99, upper));
    assert.deepEqual(r.data, plain, "exactly the packet without its Destination Options header");
    assert.equal(loaded.counters().stripped, 1);
    assert.equal(loaded.counters().read, 1);
  });

  it("PDMv2: Kri also rotates once it has been in use for the policy's age (--kri-max-age)", async () => {
    loaded = new Loaded({ layout: "v2-clear", maxKriAgeMs: 60 });
    const send = () =>
      pdmOf(
        loaded!.run(
          "egress",
          frame(ipv6Packet({ src: "fd00::1", dst: "fd00::2", proto: 17, upper: udpHeader(1000, 7000, 4) })),
        ).data,
      ) as Extract<PdmOption, { layout: "v2-clear" }>;
    const f = [send().fBit, send().fBit];
    await new Promise((r) => setTimeout(r, 120));
    f.push(send().fBit, send().fBit);
    assert.deepEqual(f, [0, 0, 1, 1], "F flips once the Kri is older than 60 ms, not per packet");
  });

  it("PDMv2 clear: version nibble, one Global Pointer per source class, Random Number and F", () => {
    loaded = new Loaded({ layout: "v2-clear", maxPacketsPerKri: 2 });
    const send = (src: string, dst: string, sport: number) =>
      pdmOf(
        loaded!.run("egress", frame(ipv6Packet({ src, dst, proto: 17, upper: udpHeader(sport, 7000, 4) }))).data,
      ) as Extract<PdmOption, { layout: "v2-clear" }>;
    const g1 = send("fd00::1", "fd00::2", 1000);
    const g2 = send("fd00::1", "fd00::3", 1001);
    const l1 = send("fe80::1", "fe80::2", 1002);
    const g3 = send("fd00::1", "fd00::2", 1000);
    const g4 = send("fd00::1", "fd00::2", 1000);
    assert.deepEqual(
      [g1.globalPointer, g2.globalPointer, g3.globalPointer, g4.globalPointer],
      [1, 2, 3, 4],
      "global class across flows",
    );
    assert.equal(l1.globalPointer, 1, "link-local class counts separately");
    assert.deepEqual([g1.fBit, g3.fBit, g4.fBit], [0, 0, 1], "F flips after 2 packets per Kri");
    assert.notEqual(g1.randomNumber, g3.randomNumber);
    for (const o of [g1, g3, g4]) assert.ok(o.randomNumber >= 1 && o.randomNumber <= 32767);
  });
});

describe("the later drafts' layouts under BPF_PROG_TEST_RUN (draft-layouts.md)", { skip, concurrency: false }, () => {
  let loaded: Loaded | undefined;
  afterEach(() => {
    loaded?.close();
    loaded = undefined;
  });
  const send = (): Buffer =>
    loaded!.run(
      "egress",
      frame(ipv6Packet({ src: "fd00::1", dst: "fd00::2", proto: 17, upper: udpHeader(40000, 7000, 4) })),
    ).data;
  const wide = (out: Buffer): DraftClearOption => {
    const p = parseIpv6(out, 14);
    assert.ok(p.ok, p.ok ? "" : p.error.message);
    const o = p.value.pdm;
    assert.ok(o && (o.layout === "v2-draft09" || o.layout === "v2-draft15"), `a later draft's option: ${o?.layout}`);
    return o as DraftClearOption;
  };
  const draftOption = (layout: "v2-draft09" | "v2-draft15", psnTp: number, type?: number): Uint8Array =>
    encodeDraftOption(
      {
        layout,
        scaleDtlr: 0,
        scaleDtls: 0,
        psnTp,
        psnLr: 0,
        deltaTlr: 0,
        deltaTls: 0,
        epoch: 0,
        globalPointer: 9,
      },
      type,
    );

  it("draft-14 (C/D): a 32-byte header, type 0x0F and 22 bytes, 32-bit PSNTP, Epoch 0, PadN over 6 bytes", () => {
    loaded = new Loaded({ layout: "v2-draft09" });
    const ip = ipv6Packet({ src: "fd00::1", dst: "fd00::2", proto: 17, upper: udpHeader(40000, 7000, 4) });
    const data = send();
    assert.equal(data.length, 14 + ip.length + 32);
    assert.equal(data.readUInt16BE(14 + 4), ip.length - 40 + 32, "payload length grows by 32");
    assert.deepEqual([data[14 + 6], data[14 + 40], data[14 + 41]], [60, 17, 3], "Destination Options, 32 bytes");
    assert.deepEqual([data[14 + 42], data[14 + 43]], [0x0f, 22], "type 0x0F, Opt Data Len 22");
    assert.deepEqual([...data.subarray(14 + 66, 14 + 72)], [1, 4, 0, 0, 0, 0], "PadN to the 8-byte boundary");
    assert.equal(data.readUInt16BE(14 + 44), 0x2000, "version 2, Epoch 0");
    const first = wide(data);
    assert.deepEqual([first.layout, first.psnLr, first.globalPointer, first.epoch], ["v2-draft09", 0, 1, 0]);
    const second = wide(send());
    assert.equal(second.psnTp, (first.psnTp + 1) >>> 0, "PSNTP +1 over 32 bits");
    const [flow] = loaded.flows();
    assert.equal(flow!.value.readUInt32LE(FLOW_STATE.offset("psn_next")), (first.psnTp + 2) >>> 0);
    assert.equal(loaded.counters().stamped, 2);
  });

  it("a flow started near the wrap: PSNTP goes 2^32 - 2, 2^32 - 1, 0, 1; PSNLR echoes 32 bits", () => {
    loaded = new Loaded({ layout: "v2-draft09", firstPsn: 0xffff_fffe });
    assert.deepEqual(
      [send(), send(), send(), send()].map((d) => wide(d).psnTp),
      [0xffff_fffe, 0xffff_ffff, 0, 1],
    );
    const reply = peerPacketWith(draftOption("v2-draft09", 0xffff_fff0));
    const r = loaded.run("ingress", reply);
    assert.deepEqual(r.data, reply, "the reader leaves the packet as it is");
    const next = wide(send());
    assert.equal(next.psnLr, 0xffff_fff0, "PSNLR: the peer's whole 32-bit PSNTP");
    assert.ok(next.deltaTlr > 0 || next.scaleDtlr > 0, "DeltaTLR: the time since the peer's packet");
    assert.equal(loaded.counters().read, 1);
  });

  it("draft-15 (E clear): its own type (0x1E, or configured); E of an unknown length is malformed, E protected left alone", () => {
    loaded = new Loaded({ layout: "v2-draft15" });
    const out = send();
    assert.deepEqual([out[14 + 42], out[14 + 43]], [0x1e, 22], "type 0x1E by default");
    assert.equal(wide(out).layout, "v2-draft15");
    const before = loaded.counters();
    loaded.run("ingress", peerPacketWith(draftOption("v2-draft15", 5)));
    loaded.run("ingress", peerPacketWith(draftOption("v2-draft09", 6)));
    const odd = Buffer.from(draftOption("v2-draft15", 7));
    odd[1] = 30; // an E option of a length no draft gives
    loaded.run("ingress", peerPacketWith(Buffer.concat([odd, Buffer.alloc(8)])));
    const sealed = Buffer.alloc(40);
    sealed[0] = 0x1e;
    sealed[1] = 38; // E protected: the analyzer opens it with the key log
    sealed[2] = 0x20;
    loaded.run("ingress", peerPacketWith(sealed));
    const after = loaded.counters();
    assert.deepEqual(
      { read: after.read - before.read, malformed: after.malformed - before.malformed },
      { read: 2, malformed: 1 },
      "E and C read, the odd length counted, the protected one neither",
    );
    loaded.close();
    loaded = new Loaded({ layout: "v2-draft15", draft15Type: 0x21 });
    assert.equal(send()[14 + 42], 0x21, "a configured type");
    loaded.run("ingress", peerPacketWith(draftOption("v2-draft15", 5, 0x21)));
    assert.equal(loaded.counters().read, 1);
  });

  it("a host stamping RFC 8250 reads the later layouts too", () => {
    loaded = new Loaded({ layout: "rfc8250" });
    loaded.run("ingress", peerPacketWith(draftOption("v2-draft09", 0x1234_5678)));
    loaded.run("ingress", peerPacketWith(draftOption("v2-draft15", 0x1234_5679)));
    assert.deepEqual([loaded.counters().read, loaded.counters().malformed], [2, 0]);
    const [flow] = loaded.flows();
    assert.equal(flow!.value.readUInt32LE(FLOW_STATE.offset("psn_lr")), 0x1234_5679);
  });
});

function peerPacketWith(option: Uint8Array): Buffer {
  return frame(
    ipv6Packet({
      src: "fd00::2",
      dst: "fd00::1",
      ext: [[60, encodeDestOptionsHeader(17, option)]],
      proto: 17,
      upper: udpHeader(7000, 40000, 4),
    }),
  );
}
