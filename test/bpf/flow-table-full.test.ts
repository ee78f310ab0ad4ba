// A full flow table makes room: anyone can fill the kernel's 65,536 flows with spoofed
// PDM packets (one flow each), after which new flows would go unmeasured until the flow
// timeout. A flow the table refuses is counted (flows_full) and makes the sweeping timer
// run at once and delete the PDM_EVICT_TARGET idlest flows (flows_evicted): first those
// no key protects (flows this host never sent on; in the protected layout, without a
// sealing key of its own), then the idlest others, never one this host sent on in the
// last second. Programs run through BPF_PROG_TEST_RUN; the timer is the kernel's own.
//
// Ages are set exactly by writing flow states whose last packet lies in the past of the
// kernel's monotonic clock (process.hrtime is the same clock), so that which flows are
// the idlest never depends on how fast this machine runs the test.

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { encodeDestOptionsHeader, encodePdmOption, parseIpv6Address, type FlowTuple } from "../../pdm/index.ts";
import {
  FLOW_KEY,
  FLOW_KEYS,
  FLOW_STATE,
  PDM_EVICT_TARGET,
  PDM_FLOWS_MAX,
  PDM_FLOW_HAS_RECEIVED,
  PDM_FLOW_HAS_SENT,
  PDM_MAP,
  PDM_PROG,
  PIN,
  bpfObjectPath,
  encodeConfig,
  nativeBpf,
  sumCounters,
  type AttachOptions,
  type NativeBpf,
} from "../../probes/datapath/index.ts";
import { encodeFlowKey } from "../../probes/kernel-keys/index.ts";
import { datapathSkipReason } from "../../lab/index.ts";
import { ipv6Packet, udpHeader } from "../../fixtures/index.ts";

const ETH = Buffer.from([2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x86, 0xdd]);
const HOST = "fd00::1";
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const monotonicNs = (): bigint => process.hrtime.bigint();

/** Flow number `n` of a group, as this host's flow key: a distinct remote address and port. */
function remote(group: number, n: number): { addr: string; port: number } {
  return {
    addr: `fd00:${(group + 1).toString(16)}::${(Math.floor(n / 60000) + 1).toString(16)}`,
    port: 1024 + (n % 60000),
  };
}
function flowOf(group: number, n: number): FlowTuple {
  const r = remote(group, n);
  return { src: parseIpv6Address(HOST), dst: parseIpv6Address(r.addr), sport: 7000, dport: r.port, proto: 17 };
}

/** A packet this host sends on flow `n` of `group`. */
function sent(group: number, n: number): Buffer {
  const r = remote(group, n);
  return Buffer.concat([ETH, ipv6Packet({ src: HOST, dst: r.addr, proto: 17, upper: udpHeader(7000, r.port, 20) })]);
}

/** A spoofed RFC 8250 packet from flow `n` of `group`'s remote end. */
function spoofed(group: number, n: number): Buffer {
  const r = remote(group, n);
  const option = encodePdmOption({
    layout: "rfc8250",
    scaleDtlr: 0,
    scaleDtls: 0,
    psnTp: n & 0xffff,
    psnLr: 0,
    deltaTlr: 0,
    deltaTls: 0,
  });
  return Buffer.concat([
    ETH,
    ipv6Packet({
      src: r.addr,
      dst: HOST,
      ext: [[60, encodeDestOptionsHeader(17, option)]],
      proto: 17,
      upper: udpHeader(r.port, 7000, 20),
    }),
  ]);
}

class DataPath {
  readonly native: NativeBpf = nativeBpf();
  readonly object: number;
  constructor(options: Omit<AttachOptions, "ifname">, chacha = false) {
    this.object = this.native.openObject(bpfObjectPath({ aes: false }));
    this.native.setInitialValue(
      this.object,
      ".rodata",
      encodeConfig({ ifname: "test", ...options, ...(chacha ? { aead: "chacha20-poly1305" as const } : {}) }, 14),
    );
    this.native.loadObject(this.object);
  }
  run(prog: "egress" | "ingress", packet: Buffer): Buffer {
    const fd = this.native.programFd(this.object, prog === "egress" ? PDM_PROG.egress : PDM_PROG.ingress);
    return this.native.progTestRun(fd, packet, 1, packet.length + 128).data;
  }
  counters() {
    return sumCounters(this.native, this.native.mapFd(this.object, PIN.counters));
  }
  has(flow: FlowTuple): boolean {
    return this.native.mapLookup(
      this.native.mapFd(this.object, PIN.flows),
      encodeFlowKey(flow),
      Buffer.alloc(FLOW_STATE.size),
    );
  }
  count(): number {
    const fd = this.native.mapFd(this.object, PIN.flows);
    let n = 0;
    let key: Buffer | null = null;
    const next = Buffer.alloc(FLOW_KEY.size);
    while (this.native.mapNextKey(fd, key, next)) {
      key = Buffer.from(next);
      n++;
    }
    return n;
  }
  /** Write a flow whose last packet was `idleMs` ago, sent on by this host or only received. */
  writeFlow(flow: FlowTuple, idleMs: number, hasSent: boolean): void {
    const value = Buffer.alloc(FLOW_STATE.size);
    const last = monotonicNs() - BigInt(Math.round(idleMs * 1e6));
    value.writeBigUInt64LE(last, FLOW_STATE.offset("first_ns"));
    value.writeBigUInt64LE(hasSent ? last : 0n, FLOW_STATE.offset("last_send_ns"));
    value.writeBigUInt64LE(hasSent ? 0n : last, FLOW_STATE.offset("last_recv_ns"));
    value.writeUInt16LE(hasSent ? PDM_FLOW_HAS_SENT : PDM_FLOW_HAS_RECEIVED, FLOW_STATE.offset("flags"));
    this.native.mapUpdate(this.native.mapFd(this.object, PIN.flows), encodeFlowKey(flow), value, 0);
  }
  /** Give a flow a sealing key of its own (Kri 0), as the key installer would. */
  writeOwnKey(flow: FlowTuple): void {
    const value = Buffer.alloc(FLOW_KEYS.size);
    value[FLOW_KEYS.offset("present")] = 1;
    value.fill(0x5a, FLOW_KEYS.offset("key"), FLOW_KEYS.offset("key") + 32);
    this.native.mapUpdate(this.native.mapFd(this.object, PDM_MAP.keys), encodeFlowKey(flow), value, 0);
  }
  hasOwnKey(flow: FlowTuple): boolean {
    return this.native.mapLookup(
      this.native.mapFd(this.object, PDM_MAP.keys),
      encodeFlowKey(flow),
      Buffer.alloc(FLOW_KEYS.size),
    );
  }
  /** Wait for the timer's eviction to show in the counters. */
  async evicted(atLeast: number): Promise<number> {
    const deadline = Date.now() + 3000;
    while (Date.now() < deadline && this.counters().flows_evicted < atLeast) await sleep(20);
    await sleep(50); // a walk still under way would show as more
    return this.counters().flows_evicted;
  }
  close(): void {
    this.native.closeObject(this.object);
  }
}

const present = (dp: DataPath, group: number, count: number): number => {
  let n = 0;
  for (let i = 0; i < count; i++) if (dp.has(flowOf(group, i))) n++;
  return n;
};

const SPOOFED = 0;
const OLD = 1;
const BUSY = 2;
const NEW = 3;

describe("a full flow table makes room", { skip: datapathSkipReason(), concurrency: false }, () => {
  it("spoofed PDM packets fill the table: the idlest of them go, a new flow is stamped, the flows this host uses stay", async () => {
    const dp = new DataPath({ layout: "rfc8250", events: false, flowTimeoutS: 300 });
    try {
      // Flows this host sends on, idle for 200 s (the timeout is 300): outrank even fresh spoofed flows.
      const busy = 50;
      for (let i = 0; i < busy; i++) dp.run("egress", sent(BUSY, i));
      for (let i = 0; i < busy; i++) dp.writeFlow(flowOf(BUSY, i), 200_000, true);
      // 16,384 spoofed flows 30 s ago, then spoofed packets through ingress until the table is full.
      const old = 16_384;
      for (let i = 0; i < old; i++) dp.writeFlow(flowOf(OLD, i), 30_000, false);
      const fresh = PDM_FLOWS_MAX - old - busy;
      for (let i = 0; i < fresh; i++) dp.run("ingress", spoofed(SPOOFED, i));
      assert.equal(dp.count(), PDM_FLOWS_MAX, "the table is full");
      assert.equal(dp.counters().flows_full, 0);

      // The next new flow, this host's own, is refused once, and leaves unstamped.
      const refused = sent(NEW, 0);
      assert.deepEqual(dp.run("egress", refused), refused, "no room: sent without PDM");
      assert.equal(dp.counters().flows_full, 1);
      assert.equal(await dp.evicted(PDM_EVICT_TARGET), PDM_EVICT_TARGET, "one eviction of PDM_EVICT_TARGET flows");
      assert.equal(dp.count(), PDM_FLOWS_MAX - PDM_EVICT_TARGET);
      assert.equal(present(dp, OLD, old), old - PDM_EVICT_TARGET, "the idlest spoofed flows went");
      assert.equal(present(dp, SPOOFED, fresh), fresh, "the fresher ones stay");
      assert.equal(present(dp, BUSY, busy), busy, "flows this host sent on stay, however idle");

      // Room again: new flows are stamped (RFC 8250: 16 bytes more).
      for (let i = 1; i <= 100; i++)
        assert.equal(dp.run("egress", sent(NEW, i)).length, sent(NEW, i).length + 16, `new flow ${i} stamped`);
      assert.equal(dp.counters().flows_full, 1, "nothing refused after the eviction");
    } finally {
      dp.close();
    }
  });

  it("with too few unprotected flows the idlest others go, never one used in the last second; a flood asks once per 100 ms", async () => {
    const dp = new DataPath({ layout: "v2-clear", events: false, flowTimeoutS: 0 }); // 0: no expiry, the timer runs only to evict
    try {
      dp.run("egress", sent(BUSY, 0)); // starts the timer
      const receivedOnly = 3_000; // fresh, but first to go
      const idleSent = 6_000; // this host sent on them 20 s ago
      for (let i = 0; i < receivedOnly; i++) dp.writeFlow(flowOf(SPOOFED, i), 100, false);
      for (let i = 0; i < idleSent; i++) dp.writeFlow(flowOf(OLD, i), 20_000, true);
      // In use: sent on "now" for as long as the test runs (dated 60 s ahead, which the
      // kernel reads as no idle time), whatever this machine's speed.
      const inUse = PDM_FLOWS_MAX - receivedOnly - idleSent - 1;
      for (let i = 0; i <= inUse; i++) dp.writeFlow(flowOf(BUSY, i), -60_000, true);
      assert.equal(dp.count(), PDM_FLOWS_MAX);

      // 50 new flows at once: refused until the eviction (one, however many refusals), then created.
      for (let i = 0; i < 50; i++) dp.run("egress", sent(NEW, i));
      const refused = dp.counters().flows_full;
      assert.ok(refused >= 1, "refused");
      const fromIdle = PDM_EVICT_TARGET - receivedOnly;
      assert.equal(await dp.evicted(PDM_EVICT_TARGET), PDM_EVICT_TARGET, "one eviction");
      assert.equal(present(dp, SPOOFED, receivedOnly), 0, "every flow this host never sent on went first");
      assert.equal(present(dp, OLD, idleSent), idleSent - fromIdle, "then the idlest it sent on");
      assert.equal(present(dp, BUSY, inUse + 1), inUse + 1, "none used in the last second");

      // Fill the room with flows in use, then refuse again: only the idle flows left go.
      await sleep(150);
      const room = PDM_FLOWS_MAX - dp.count();
      for (let i = 0; i < room; i++) dp.run("egress", sent(NEW, 1000 + i));
      assert.equal(dp.count(), PDM_FLOWS_MAX);
      const before = dp.counters();
      dp.run("egress", sent(NEW, 60_000));
      const after = await dp.evicted(before.flows_evicted + idleSent - fromIdle);
      assert.equal(dp.counters().flows_full - before.flows_full, 1);
      assert.equal(present(dp, OLD, idleSent), 0, "the remaining idle flows went");
      assert.ok(after - before.flows_evicted >= idleSent - fromIdle, `evicted ${after - before.flows_evicted}`);
      assert.equal(present(dp, BUSY, inUse + 1), inUse + 1, "still none in use");
    } finally {
      dp.close();
    }
  });

  it("protected layout: flows without a sealing key of their own go before keyed ones; a keyed flow goes with its keys", async () => {
    const dp = new DataPath({ layout: "v2-protected", events: false, flowTimeoutS: 300 }, true);
    try {
      dp.run("egress", sent(BUSY, 0)); // starts the timer (no key: leaves without PDM)
      const unkeyed = 5_000; // this host sent on them a second ago, but holds no key of theirs
      const keyed = 10_000; // keyed and idle for a minute
      for (let i = 0; i < unkeyed; i++) dp.writeFlow(flowOf(SPOOFED, i), 1_000, true);
      for (let i = 0; i < keyed; i++) {
        dp.writeFlow(flowOf(OLD, i), 60_000, true);
        dp.writeOwnKey(flowOf(OLD, i));
      }
      const inUse = PDM_FLOWS_MAX - unkeyed - keyed - 1; // keyed, in use (dated ahead, as above)
      for (let i = 1; i <= inUse; i++) {
        dp.writeFlow(flowOf(BUSY, i), -60_000, true);
        dp.writeOwnKey(flowOf(BUSY, i));
      }
      assert.equal(dp.count(), PDM_FLOWS_MAX);

      dp.run("egress", sent(NEW, 0));
      assert.equal(await dp.evicted(PDM_EVICT_TARGET), PDM_EVICT_TARGET);
      const keyedGone = PDM_EVICT_TARGET - unkeyed - 1; // BUSY 0 (sent on, no key) is unkeyed too
      assert.equal(present(dp, SPOOFED, unkeyed), 0, "flows without a key of their own went first, though fresher");
      assert.ok(!dp.has(flowOf(BUSY, 0)));
      assert.equal(present(dp, OLD, keyed), keyed - keyedGone, "then the idlest keyed ones");
      let keys = 0;
      for (let i = 0; i < keyed; i++) if (dp.hasOwnKey(flowOf(OLD, i))) keys++;
      assert.equal(keys, keyed - keyedGone, "an evicted flow's keys went with it");
      assert.equal(present(dp, BUSY, inUse + 1), inUse, "keyed flows in use stay");
    } finally {
      dp.close();
    }
  });
});
