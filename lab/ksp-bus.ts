// Key Selection Protocol members on an in-memory multicast bus with a fake clock: the
// deterministic ground for the protocol's state-machine tests and its benchmark. Every
// message goes through the real codec and ICV (sign, then decode and verify at each
// receiver); the bus can lose, delay (so reorder), partition, and let a test inject
// any bytes.

import { createHash } from "node:crypto";
import {
  KSP_TIMER_DEFAULTS,
  KspGuard,
  KspParticipant,
  memoryKnStore,
  type ConnectivityKeys,
  type KnMemory,
  type KspEvent,
  type KspTimers,
  type Route,
} from "../probes/ksp/index.ts";
import type { Suite } from "../pdm/index.ts";

const GROUP = new Uint8Array(16).fill(0xff);
const PORT = 4530;

/** Deterministic "random" bytes: SHA-256 in counter mode over a seed. */
export function seededRandom(seed: string): (n: number) => Uint8Array {
  let counter = 0;
  return (n) => {
    const out = Buffer.alloc(n);
    for (let at = 0; at < n; at += 32) {
      const block = createHash("sha256").update(`${seed}/${counter++}`).digest();
      block.copy(out, at, 0, Math.min(32, n - at));
    }
    return new Uint8Array(out);
  };
}

export interface BusMember {
  name: string;
  memberId: Uint8Array;
  address: Uint8Array;
  participant: KspParticipant;
  guard: KspGuard;
  kns: KnMemory;
  events: KspEvent[];
  /** Partition label: members only hear members with the same one. */
  side: string;
  stopped: boolean;
}

export interface BusOptions {
  keys: ConnectivityKeys;
  suite: Suite;
  timers?: Partial<KspTimers>;
  /** Probability that a delivery is lost. */
  loss?: number;
  /** Extra delivery delay, uniformly up to this many ms (reorders). */
  jitterMs?: number;
  seed?: string;
}

export class KspBus {
  now = 0;
  readonly members: BusMember[] = [];
  private readonly queue: { at: number; to: BusMember; bytes: Uint8Array; route: Route }[] = [];
  private readonly rng: (n: number) => Uint8Array;
  readonly timers: KspTimers;
  /** Every message any member sent, as sent (for replay tests). */
  readonly sent: { from: string; bytes: Uint8Array; route: Route }[] = [];

  constructor(private readonly o: BusOptions) {
    this.rng = seededRandom(o.seed ?? "bus");
    this.timers = { ...KSP_TIMER_DEFAULTS, ...o.timers };
  }

  private chance(): number {
    return Buffer.from(this.rng(4)).readUInt32BE(0) / 2 ** 32;
  }

  /** Add a member (priority, member id from its name unless given); `keys` other than the group's for outsiders. */
  add(
    name: string,
    opts: {
      priority?: number;
      keys?: ConnectivityKeys;
      kns?: KnMemory;
      memberId?: Uint8Array;
      /** Hybrid mode: whether this member still follows a group master. */
      served?: () => boolean;
    } = {},
  ): BusMember {
    const keys = opts.keys ?? this.o.keys;
    const guard = new KspGuard(keys, () => this.now, { perSecond: 1000, burst: 1000, totalPerSecond: 100_000 });
    const kns = opts.kns ?? memoryKnStore();
    const memberId = opts.memberId ?? createHash("sha256").update(name).digest().subarray(0, 8);
    const address = new Uint8Array(16);
    address[0] = 0xfd;
    address[15] = this.members.length + 1;
    const participant = new KspParticipant({
      ckn: keys.ckn,
      kgk: keys.kgk,
      kek: guard.kek,
      memberId,
      priority: opts.priority ?? 16,
      suite: this.o.suite,
      timers: this.timers,
      kns,
      now: () => this.now,
      random: seededRandom(`${this.o.seed ?? "bus"}/${name}/${this.members.length}`),
      served: opts.served,
    });
    const m: BusMember = { name, memberId, address, participant, guard, kns, events: [], side: "", stopped: false };
    this.members.push(m);
    return m;
  }

  /** The member again, as after a restart: a new participant (new MI) with the same id and KN memory. */
  restart(m: BusMember): BusMember {
    m.stopped = true;
    const again = this.add(m.name, { kns: m.kns, memberId: m.memberId });
    again.side = m.side;
    return again;
  }

  /** Put raw bytes on the wire from `from` (a forged, replayed or damaged datagram). */
  inject(bytes: Uint8Array, route: Route): void {
    for (const to of this.members) if (!to.stopped) this.queue.push({ at: this.now, to, bytes, route });
  }

  private broadcast(from: BusMember, bytes: Uint8Array, route: Route): void {
    this.sent.push({ from: from.name, bytes, route });
    for (const to of this.members) {
      if (to === from || to.stopped || to.side !== from.side) continue;
      if (this.o.loss && this.chance() < this.o.loss) continue;
      const delay = this.o.jitterMs ? Math.floor(this.chance() * this.o.jitterMs) : 0;
      this.queue.push({ at: this.now + delay, to, bytes, route });
    }
  }

  /** Advance the clock by `ms` in steps of `stepMs`, delivering and ticking every member each step. */
  run(ms: number, stepMs = 50): void {
    const end = this.now + ms;
    while (this.now < end) {
      this.now += stepMs;
      this.queue.sort((a, b) => a.at - b.at);
      while (this.queue.length && this.queue[0]!.at <= this.now) {
        const d = this.queue.shift()!;
        if (d.to.stopped) continue;
        const m = d.to.guard.open(d.bytes, d.route);
        if (typeof m !== "string") d.to.participant.receive(m);
        d.to.events.push(...d.to.participant.drainEvents());
      }
      for (const m of this.members) {
        if (m.stopped) continue;
        const out = m.participant.tick();
        m.events.push(...m.participant.drainEvents());
        if (!out) continue;
        const route: Route = { src: m.address, srcPort: PORT, dst: GROUP, dstPort: PORT };
        this.broadcast(m, m.guard.sign(out, route), route);
      }
    }
  }

  running(): BusMember[] {
    return this.members.filter((m) => !m.stopped);
  }

  /** The generation every running member (of `among`) seals with, if they all seal with the same one. */
  commonSealing(among: BusMember[] = this.running()): number | undefined {
    const gens = new Set(among.map((m) => m.participant.sealing?.keyIdHex));
    if (gens.size !== 1 || gens.has(undefined)) return undefined;
    return among[0]!.participant.sealing!.generation;
  }
}
