// keys.md section 7 as a property: over random traffic with Kri rotations, generation
// renewals and reader restarts, no (key, nonce) pair is ever sealed twice.
//
// The deployment is the real protocol in memory: HPKE registration, provisioning with
// acks, reader key stores, ProtectedSealer per flow. LFSR start states are fixed to 1
// (the worst random generator there is), so only the key schedule and the restart rule
// keep pairs apart; a control run that ignores the restart rule does find repeats.

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { hex, ProtectedSealer, parseIpv6Address, type FlowTuple } from "../../pdm/index.ts";
import {
  DEFAULT_OFFER,
  ProvisioningService,
  ReaderKeyStore,
  RegistrationServer,
  followWriter,
  memoryChannelPair,
  register,
  silentLogger,
  type Channel,
  type ReaderGeneration,
} from "../../probes/agent/index.ts";

type Op =
  | { kind: "send"; reader: number; flow: number; n: number }
  | { kind: "advance"; ms: number }
  | { kind: "renew" }
  | { kind: "restart"; reader: number };

const READERS = 3;
const FIELDS = { scaleDtlr: 0, scaleDtls: 0, globalPointer: 1, psnTp: 1, psnLr: 0, deltaTlr: 0, deltaTls: 0 };

class SimulatedDeployment {
  now = 1_700_000_000_000;
  readonly clock = () => this.now;
  private readonly registrar = new RegistrationServer({
    acceptedSuites: DEFAULT_OFFER,
    rotation: { criticality: "critical", keys: 2, periodMs: 1000 },
    provisionLeadMs: 100,
    now: this.clock,
  });
  private renewWanted = false;
  private readonly provisioning = new ProvisioningService({
    ackTimeoutMs: 1000,
    maxResends: 4,
    graceMs: 500,
    log: silentLogger,
    onRestartedReader: () => (this.renewWanted = true),
    now: this.clock,
  });
  readonly readers: { store: ReaderKeyStore; sealers: Map<string, ProtectedSealer>; channel: Channel }[] = [];
  readonly sealed = new Map<string, number>();
  skippedNoKey = 0;

  constructor(private readonly honourRestartRule = true) {}

  async register(purpose: "register" | "renew"): Promise<void> {
    const [wcEnd, wsEnd] = memoryChannelPair();
    const served = wsEnd.receive(["hello"]).then((hello) => this.registrar.serve(wsEnd, hello));
    const [, g] = await Promise.all([register(wcEnd, { purpose, offer: DEFAULT_OFFER }), served]);
    this.provisioning.publish(g);
    wcEnd.close();
    await this.settle();
  }

  async connect(i: number): Promise<void> {
    const store = new ReaderKeyStore({ kind: "server", graceMs: 500, now: this.clock });
    const [writerEnd, readerEnd] = memoryChannelPair();
    const joined = writerEnd
      .receive(["join"])
      .then((join) => this.provisioning.serveReader(writerEnd, { id: `r${i}`, name: `r${i}`, kind: "server" }, join));
    joined.catch(() => undefined);
    followWriter(readerEnd, store, { log: silentLogger }).catch(() => undefined);
    this.readers[i] = { store, sealers: new Map(), channel: readerEnd };
    await this.settle();
    if (this.renewWanted) {
      this.renewWanted = false;
      await this.register("renew");
    }
  }

  async restart(i: number): Promise<void> {
    this.readers[i]!.channel.close(); // the process dies: its keys and Kri state are gone
    await this.settle();
    await this.connect(i);
  }

  private flow(reader: number, f: number): FlowTuple {
    return {
      src: parseIpv6Address(`fd00::${reader + 1}`),
      dst: parseIpv6Address("fd00:ff::1"),
      sport: 1000 + f,
      dport: 443,
      proto: 17,
    };
  }

  send(reader: number, f: number, n: number): void {
    const r = this.readers[reader]!;
    const g = this.honourRestartRule
      ? r.store.sealingGeneration()
      : r.store.openingGenerations().find((x) => x.effectiveAt <= this.now);
    if (!g) {
      this.skippedNoKey += n;
      return;
    }
    const flow = this.flow(reader, f);
    const sealer = this.sealerFor(r, g, flow, `${g.keyIdHex}/${f}`);
    for (let k = 0; k < n; k += 1) {
      const out = sealer.seal(FIELDS, this.now * 1e6);
      if (!out) return;
      const key = r.store.stk(g, flow, out.kri, flow.src);
      const pair = `${hex(key)}|${out.kri}|${out.randomNumber}|${out.fBit}`;
      this.sealed.set(pair, (this.sealed.get(pair) ?? 0) + 1);
    }
  }

  private sealerFor(
    r: (typeof this.readers)[number],
    g: ReaderGeneration,
    flow: FlowTuple,
    id: string,
  ): ProtectedSealer {
    let s = r.sealers.get(id);
    if (!s) {
      s = new ProtectedSealer(g.suite.aead, (kri) => r.store.stk(g, flow, kri, flow.src), {
        maxKriAgeNs: g.maxKriAgeMs * 1e6,
        maxPacketsPerKri: 50,
        startState: () => 1,
      });
      r.sealers.set(id, s);
    }
    return s;
  }

  repeats(): number {
    let n = 0;
    for (const count of this.sealed.values()) if (count > 1) n += count - 1;
    return n;
  }

  close(): void {
    for (const r of this.readers) r.channel.close();
  }

  private async settle(): Promise<void> {
    for (let i = 0; i < 20; i += 1) await new Promise((r) => setImmediate(r));
  }

  async run(ops: Op[]): Promise<void> {
    await this.register("register");
    for (let i = 0; i < READERS; i += 1) await this.connect(i);
    for (const op of ops) {
      if (op.kind === "send") this.send(op.reader, op.flow, op.n);
      else if (op.kind === "advance") {
        this.now += op.ms;
        for (const r of this.readers) r.store.prune();
      } else if (op.kind === "renew") await this.register("renew");
      else await this.restart(op.reader);
    }
  }
}

const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.record({
      kind: fc.constant("send" as const),
      reader: fc.nat(READERS - 1),
      flow: fc.nat(2),
      n: fc.integer({ min: 1, max: 120 }),
    }),
  },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant("advance" as const), ms: fc.integer({ min: 1, max: 1500 }) }) },
  { weight: 1, arbitrary: fc.constant({ kind: "renew" as const }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("restart" as const), reader: fc.nat(READERS - 1) }) },
);

describe("no (key, nonce) pair is ever sealed twice", () => {
  it("across rotations, renewals and restarts (random runs)", async () => {
    let totalSealed = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(opArb, { minLength: 1, maxLength: 30 }), async (ops) => {
        const sim = new SimulatedDeployment();
        try {
          await sim.run(ops);
          totalSealed += sim.sealed.size;
          assert.equal(sim.repeats(), 0);
        } finally {
          sim.close();
        }
      }),
      { numRuns: 40 },
    );
    assert.ok(totalSealed > 1000, `the runs sealed ${totalSealed} packets`);
  });

  it("control: a reader that seals under old keys after a restart repeats pairs", async () => {
    const ops: Op[] = [
      { kind: "send", reader: 0, flow: 0, n: 20 },
      { kind: "restart", reader: 0 },
      { kind: "send", reader: 0, flow: 0, n: 20 },
    ];
    const unsafe = new SimulatedDeployment(false);
    await unsafe.run(ops);
    unsafe.close();
    assert.ok(unsafe.repeats() >= 20, `unsafe policy repeated ${unsafe.repeats()} pairs`);

    const safe = new SimulatedDeployment(true);
    await safe.run(ops);
    safe.close();
    assert.equal(safe.repeats(), 0);
    assert.equal(safe.skippedNoKey, 20, "between the restart and the new generation the reader seals nothing");
  });
});
