// A distributed-mode member running (groups.md 2): the participant's state machine on
// a real clock, its messages over UDP through the guard. Its events (a generation
// installed, sealing, retired; peers; elections) go to whoever holds the keys: the
// agent's key store, and from there the kernel.

import { randomBytes } from "node:crypto";
import type { Suite } from "../../pdm/index.ts";
import { KspGuard, type ConnectivityKeys, type DropReason, type Route } from "./guard.ts";
import { KspParticipant, type KnMemory, type KspEvent, type KspTimers } from "./participant.ts";
import { KspUdpTransport, type KspTransportOptions } from "./transport.ts";

export interface KspMemberOptions {
  keys: ConnectivityKeys;
  memberId: Uint8Array;
  priority: number;
  suite: Suite;
  timers: KspTimers;
  kns: KnMemory;
  transport: KspTransportOptions;
  onEvent: (e: KspEvent) => void;
  /** A dropped or refused datagram (rate-limited in the log by the caller). */
  onDrop?: (reason: DropReason | string) => void;
  /** Hybrid mode: this member still follows a group master. */
  served?: () => boolean;
  /** Hybrid mode: the master's highest generation, which this protocol's numbers continue above. */
  generationFloor?: () => number;
}

/** How often the state machine looks at its timers. */
const TICK_MS = 100;

export class KspMember {
  private timer: NodeJS.Timeout | undefined;

  private constructor(
    readonly participant: KspParticipant,
    readonly guard: KspGuard,
    private readonly transport: KspUdpTransport,
    private readonly o: KspMemberOptions,
  ) {}

  static async start(o: KspMemberOptions): Promise<KspMember> {
    const guard = new KspGuard(o.keys);
    const participant = new KspParticipant({
      ckn: o.keys.ckn,
      kgk: o.keys.kgk,
      kek: guard.kek,
      memberId: o.memberId,
      priority: o.priority,
      suite: o.suite,
      timers: o.timers,
      kns: o.kns,
      now: Date.now,
      random: (n) => new Uint8Array(randomBytes(n)),
      served: o.served,
      generationFloor: o.generationFloor,
    });
    let member: KspMember | undefined;
    const transport = await KspUdpTransport.open(o.transport, (bytes: Buffer, route: Route) =>
      member?.deliver(bytes, route),
    );
    member = new KspMember(participant, guard, transport, o);
    member.timer = setInterval(() => member!.tick(), TICK_MS);
    member.tick();
    return member;
  }

  private deliver(bytes: Buffer, route: Route): void {
    const m = this.guard.open(bytes, route);
    if (typeof m === "string") {
      this.o.onDrop?.(m);
      return;
    }
    const refused = this.participant.receive(m);
    if (refused) this.o.onDrop?.(refused);
    this.flush();
    // Answer at once when something changed (a new peer, a key): the next tick would be 100 ms away.
    this.tick();
  }

  private tick(): void {
    const out = this.participant.tick();
    this.flush();
    if (out) this.transport.send(out, this.guard);
  }

  private flush(): void {
    for (const e of this.participant.drainEvents()) this.o.onEvent(e);
  }

  status() {
    return { ...this.participant.status(), dropped: { ...this.guard.dropped } };
  }

  stop(): void {
    clearInterval(this.timer);
    this.transport.close();
  }
}
