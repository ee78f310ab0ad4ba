// The Key Selection Protocol's state machine (groups.md 2), deterministic: members on an
// in-memory multicast bus (lab/ksp-bus.ts) with a fake clock, every message through the
// real codec and ICV. Election and its ties, a key server killed, partition and heal, a
// restart, replayed / tampered / forged / damaged datagrams, a host without the CAK,
// loss and reordering, 3 to 8 members coming and going.

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { DEFAULT_SUITE, hex } from "../../pdm/index.ts";
import { KspBus, type BusMember } from "../../lab/index.ts";
import { memoryKnStore } from "../../probes/ksp/index.ts";

const keys = {
  ckn: Buffer.from("pdm ksp test group"),
  cak: Buffer.alloc(16, 0x11),
  kgk: Buffer.alloc(16, 0x22),
};
const LIFE = 6000;

function bus(extra: Partial<ConstructorParameters<typeof KspBus>[0]> = {}): KspBus {
  return new KspBus({ keys, suite: DEFAULT_SUITE, seed: "t", ...extra });
}

/** Every keyId any member installed, with its generation: no KN (so no key) twice. */
function allGenerations(b: KspBus): Map<string, number> {
  const out = new Map<string, number>();
  for (const m of b.members)
    for (const e of m.events) if (e.type === "installed") out.set(e.generation.keyIdHex, e.generation.generation);
  return out;
}

const keyServerOf = (m: BusMember): string | undefined => m.participant.status().keyServer;

describe("KSP state machine", () => {
  it("three members: live within a few hellos, the lowest priority elected, one generation sealed by all", () => {
    const b = bus();
    const [a, c, d] = [b.add("a", { priority: 20 }), b.add("c", { priority: 10 }), b.add("d", { priority: 30 })];
    b.run(5000);
    for (const m of [a, c, d]) {
      assert.equal(m.participant.status().live.length, 2, `${m.name} sees two live peers`);
      assert.equal(keyServerOf(m), hex(c.memberId), `${m.name} elects c (priority 10)`);
    }
    assert.ok(c.participant.isKeyServer);
    assert.equal(b.commonSealing(), 1, "everyone seals with generation 1");
  });

  it("priority ties go to the lowest member id", () => {
    const b = bus();
    const ms = ["p", "q", "r", "s"].map((n) => b.add(n, { priority: 16 }));
    b.run(5000);
    const lowest = ms.map((m) => hex(m.memberId)).sort()[0];
    for (const m of ms) assert.equal(keyServerOf(m), lowest);
  });

  it("the key server killed: re-elected within life, a new generation, no gap in sealing", () => {
    const b = bus();
    const ms = ["a", "b", "c", "d"].map((n, i) => b.add(n, { priority: 10 + i }));
    b.run(5000);
    const first = b.commonSealing()!;
    ms[0]!.stopped = true; // the key server
    const rest = ms.slice(1);
    let gapSteps = 0;
    for (let t = 0; t < 3 * LIFE; t += 100) {
      b.run(100);
      for (const m of rest) if (!m.participant.sealing) gapSteps += 1;
    }
    assert.equal(gapSteps, 0, "every member sealed with some generation throughout");
    for (const m of rest) assert.equal(keyServerOf(m), hex(ms[1]!.memberId), "b, the next priority, elected");
    const now = b.commonSealing(rest);
    assert.ok(now !== undefined && now > first, `a new generation ${now} after ${first}`);
  });

  it("partition and heal: each side renews on its own, then one generation within 2 x life", () => {
    const b = bus();
    const ms = ["a", "b", "c", "d", "e", "f"].map((n, i) => b.add(n, { priority: 10 + i }));
    b.run(5000);
    assert.ok(b.commonSealing() !== undefined);
    ms.slice(3).forEach((m) => (m.side = "right"));
    b.run(3 * LIFE);
    const left = b.commonSealing(ms.slice(0, 3));
    const right = b.commonSealing(ms.slice(3));
    assert.ok(left !== undefined && right !== undefined, "each side seals with a generation of its own");
    assert.notEqual(ms[0]!.participant.sealing!.keyIdHex, ms[3]!.participant.sealing!.keyIdHex);
    for (const m of ms) m.side = "";
    let healedAt: number | undefined;
    for (let t = 0; t <= 2 * LIFE; t += 100) {
      b.run(100);
      if (b.commonSealing() !== undefined) {
        healedAt = t + 100;
        break;
      }
    }
    assert.ok(healedAt !== undefined && healedAt <= 2 * LIFE, `one generation ${healedAt} ms after healing`);
    const gens = allGenerations(b);
    assert.equal(new Set(gens.keys()).size, gens.size);
  });

  it("a restarted member (new MI) rejoins; the others see the restart; generations only go up, no KN twice", () => {
    const b = bus();
    const ms = ["a", "b", "c"].map((n, i) => b.add(n, { priority: 10 + i }));
    b.run(5000);
    const before = b.commonSealing()!;
    const again = b.restart(ms[2]!);
    b.run(3 * LIFE);
    const running = b.running();
    assert.equal(running.length, 3);
    assert.ok(ms[0]!.events.some((e) => e.type === "peer-restarted" && e.memberId === hex(again.memberId)));
    const after = b.commonSealing();
    assert.ok(after !== undefined && after > before, `generation ${after} after ${before}`);
    assert.notEqual(hex(again.participant.mi), hex(ms[2]!.participant.mi));
  });

  it("drops replayed, tampered, forged, damaged and foreign datagrams, each counted by its reason", () => {
    const b = bus();
    const [a, c] = [b.add("a", { priority: 10 }), b.add("c", { priority: 20 })];
    b.run(5000);
    const generation = b.commonSealing();
    const old = b.sent.find((s) => s.from === "c")!;
    const refusedBefore = a.participant.refused["stale-mn"];
    b.inject(old.bytes, old.route); // replayed
    const flipped = Buffer.from(old.bytes);
    flipped[27]! ^= 1; // in the MN
    b.inject(flipped, old.route); // tampered
    b.inject(old.bytes, { ...old.route, srcPort: old.route.srcPort + 1 }); // moved: the pseudo-header differs
    b.inject(old.bytes.subarray(0, 30), old.route); // truncated
    const unknownSet = Buffer.from(old.bytes);
    const at = (4 + ((((unknownSet[2]! & 0x0f) << 8) | unknownSet[3]!) + 3)) & ~3;
    unknownSet[at] = 9;
    b.inject(unknownSet, old.route); // a parameter set type the protocol lacks (and a broken ICV behind it)
    const stranger = new KspBus({ keys: { ...keys, cak: Buffer.alloc(16, 0x99) }, suite: DEFAULT_SUITE, seed: "x" });
    const s = stranger.add("s");
    stranger.run(100);
    b.inject(stranger.sent[0]!.bytes, stranger.sent[0]!.route); // forged: same CKN, another CAK
    const otherGroup = new KspBus({ keys: { ...keys, ckn: Buffer.from("another group") }, suite: DEFAULT_SUITE });
    otherGroup.add("o");
    otherGroup.run(100);
    b.inject(otherGroup.sent[0]!.bytes, otherGroup.sent[0]!.route);
    b.run(500);
    for (const m of [a, c]) {
      const d = m.guard.dropped;
      assert.ok(d["bad-icv"] >= 3, `${m.name}: tampered, moved, forged: ${JSON.stringify(d)}`);
      assert.ok(d.truncated >= 1 && d["unknown-parameter-set"] >= 1 && d["unknown-ckn"] >= 1, JSON.stringify(d));
    }
    assert.ok(a.participant.refused["stale-mn"] > refusedBefore, "the replay: a stale MN");
    assert.equal(b.commonSealing(), generation, "nothing changed the generation");
    assert.ok(!a.participant.status().live.includes(hex(s.memberId)), "the forger never live");
  });

  it("a host without the CAK never becomes live, and never gets a key", () => {
    const b = bus();
    const [a, c] = [b.add("a"), b.add("c")];
    const outsider = b.add("outsider", { keys: { ...keys, cak: Buffer.alloc(16, 0x33) } });
    b.run(4 * LIFE);
    for (const m of [a, c]) assert.ok(!m.participant.status().live.includes(hex(outsider.memberId)));
    assert.equal(outsider.participant.status().live.length, 0);
    assert.equal(outsider.participant.sealing, undefined);
    assert.ok(a.guard.dropped["bad-icv"] > 0);
    assert.ok(b.commonSealing([a, c]) !== undefined);
  });

  it("20 % loss and up to 1.5 s of reordering: one generation all the same", () => {
    const b = bus({ loss: 0.2, jitterMs: 1500, seed: "lossy" });
    ["a", "b", "c", "d", "e"].forEach((n, i) => b.add(n, { priority: 10 + i }));
    b.run(6 * LIFE);
    assert.ok(b.commonSealing() !== undefined, JSON.stringify(b.members.map((m) => m.participant.status())));
  });

  it("3 to 8 members joining and leaving: after each change, one generation sealed by all, and new keys", () => {
    const b = bus();
    const ms = ["a", "b", "c"].map((n) => b.add(n));
    b.run(5000);
    let last = b.commonSealing()!;
    const settle = (what: string): void => {
      b.run(3 * LIFE);
      const g = b.commonSealing();
      assert.ok(
        g !== undefined && g > last,
        `${what}: generation ${g} after ${last}: ${JSON.stringify(b.running().map((m) => [m.name, m.participant.status()]))}`,
      );
      last = g;
    };
    for (const n of ["d", "e", "f", "g", "h"]) {
      ms.push(b.add(n));
      settle(`${n} joined (${b.running().length} members)`);
    }
    for (const m of [ms[1]!, ms[4]!, ms[6]!]) {
      m.stopped = true;
      settle(`${m.name} left`);
    }
    assert.equal(b.running().length, 5);
    const gens = allGenerations(b);
    assert.ok(gens.size >= 9, `${gens.size} generations`);
  });

  it("a member speaking with our member id is refused (identifier collision)", () => {
    const b = bus();
    const a = b.add("a");
    b.add("twin", { memberId: a.memberId });
    b.add("c");
    b.run(3000);
    assert.ok(a.participant.refused["own-member-id"] > 0);
  });

  it("hybrid: no generation while any live member follows a group master; one as soon as none does", () => {
    const b = bus();
    let masterUp = true;
    const ms = ["a", "b", "c"].map((n, i) =>
      b.add(n, { priority: 10 + i, served: i === 2 ? () => masterUp : undefined }),
    );
    b.run(10_000);
    for (const m of ms) assert.equal(m.participant.status().live.length, 2);
    assert.equal(b.commonSealing(), undefined, "c still follows its master: the key server waits");
    masterUp = false;
    b.run(3000);
    assert.equal(b.commonSealing(), 1, "the members renew on their own");
  });

  it("a member that remembers higher generations (its KN memory) makes the key server number above them at once", () => {
    const b = bus();
    const kns = memoryKnStore();
    kns.add("ab".repeat(16), 40); // from an earlier run of the same group
    b.add("a", { priority: 10 });
    b.add("b", { priority: 11, kns });
    b.add("c", { priority: 12 });
    b.run(3000);
    const g = b.commonSealing();
    assert.ok(g !== undefined && g > 40, `generation ${g}, above the 40 b remembers`);
    assert.equal(b.members[1]!.participant.refused["stale-generation"], 0, "b refused nothing");
  });

  it("a member asks for a new key (its flow ran out of Kri): the key server makes one, once", () => {
    const b = bus();
    const ms = ["a", "b", "c"].map((n, i) => b.add(n, { priority: 10 + i }));
    b.run(10_000); // past min_rekey
    const before = b.commonSealing()!;
    ms[2]!.participant.requestNewKey();
    b.run(2000);
    assert.equal(b.commonSealing(), before + 1, "one new generation, sealed by all");
    b.run(10_000);
    assert.equal(b.commonSealing(), before + 1, "the request answered, no more");
  });
});
