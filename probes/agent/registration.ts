// Registration between the writer client (WC) and the writer server (WS), keys.md
// section 3, as two straight-line functions over a Channel:
//
//   WC -> WS  hello      {purpose, suites}
//   WS -> WC  hello-ack  {suite, publicKey (fresh), rotation}
//   WC -> WS  kem        {enc, salt}            WC: SetupBaseS + Export
//   WS -> WC  registered {keyId, generation, effectiveAt}   WS: SetupBaseR + Export
//   WC -> WS  confirm    {keyId}                WC checked keyId (it holds the same secret)
//   WS -> WC  ack        {keyId, generation}    WS committed
//
// `confirm` and the final `ack` are this project's addition (docs/protocol-notes.md): a
// writer commits, and provisions its readers, only once it knows the other one holds
// the same secret, so no half-finished exchange ever reaches a reader.

import { hex, deriveKeyId, type Suite } from "../../pdm/index.ts";
import type { Channel } from "./channel.ts";
import { RegistrationError } from "./errors.ts";
import { freshSalt, type Generation } from "./generation.ts";
import { chooseSuite, decapsulateSharedSecret, encapsulateSharedSecret, freshRecipientKey } from "./hpke.ts";
import type { MessageOf, RotationAttributes } from "./messages.ts";

const sameBytes = (a: Uint8Array, b: Uint8Array): boolean => Buffer.from(a).equals(Buffer.from(b));

export interface WriterServerPolicy {
  acceptedSuites: readonly Suite[];
  rotation: RotationAttributes;
  /** How far ahead of now a renewed generation becomes effective, so every reader has it. */
  provisionLeadMs: number;
  now?: () => number;
}

/** The writer server's side: one instance serves every registration of this process. */
export class RegistrationServer {
  private generationCounter = 0;
  /** Encapsulations and salts already used: a replayed `kem` is refused (bounded memory). */
  private readonly seen = new Set<string>();
  private readonly seenOrder: string[] = [];
  private hasGeneration = false;

  constructor(private readonly policy: WriterServerPolicy) {}

  /** The registration running now: the next one starts when it ends, so generations are numbered one at a time. */
  private running: Promise<unknown> = Promise.resolve();

  /**
   * Run one registration after its `hello`; resolves once the WC confirmed the keyId.
   * Registrations are served one at a time: two at once both read the same counter
   * and committed one generation number with two different keys.
   */
  serve(channel: Channel, hello: MessageOf<"hello">, admit: () => void = () => undefined): Promise<Generation> {
    // `admit` runs at the start of this registration's turn: a check that depends on
    // the registrations before it (which writer client holds the deployment) sees them all.
    const turn = this.running.then(() => {
      admit();
      return this.serveOne(channel, hello);
    });
    this.running = turn.catch(() => undefined);
    return turn;
  }

  private async serveOne(channel: Channel, hello: MessageOf<"hello">): Promise<Generation> {
    const now = this.policy.now ?? Date.now;
    const suite = chooseSuite(hello.suites, this.policy.acceptedSuites);
    if (!suite) {
      throw new RegistrationError(
        "no-common-suite",
        "none of the offered HPKE suites is accepted by this writer server",
      );
    }
    const key = await freshRecipientKey(suite);
    channel.send({ type: "hello-ack", suite, publicKey: key.publicKey, rotation: this.policy.rotation });

    const kem = await channel.receive(["kem"]);
    for (const value of [kem.enc, kem.salt]) {
      if (this.seen.has(hex(value))) {
        throw new RegistrationError(
          "replayed-registration",
          "this KEM encapsulation or salt was already used in an earlier registration",
        );
      }
    }
    this.remember(hex(kem.enc));
    this.remember(hex(kem.salt));
    const sharedSecret = await decapsulateSharedSecret(suite, key, kem.enc);
    const keyId = deriveKeyId(suite.kdf, sharedSecret, kem.salt);
    const generation = this.generationCounter + 1;
    const effectiveAt = this.hasGeneration ? now() + this.policy.provisionLeadMs : now();
    channel.send({ type: "registered", keyId, generation, effectiveAt });

    const confirm = await channel.receive(["confirm"]);
    if (!sameBytes(confirm.keyId, keyId)) {
      throw new RegistrationError(
        "key-id-mismatch",
        "the writer client confirmed a different keyId: the two writers do not hold the same secret",
      );
    }
    this.generationCounter = generation;
    this.hasGeneration = true;
    channel.send({ type: "ack", keyId, generation });
    return { keyId, generation, effectiveAt, suite, salt: kem.salt, sharedSecret, rotation: this.policy.rotation };
  }

  private remember(value: string): void {
    this.seen.add(value);
    this.seenOrder.push(value);
    if (this.seenOrder.length > 100_000) this.seen.delete(this.seenOrder.shift()!);
  }
}

/** The writer client's side: one registration (first, renewal or recovery). */
export async function register(
  channel: Channel,
  options: { purpose: "register" | "renew"; offer: readonly Suite[]; timeoutMs?: number },
): Promise<Generation> {
  channel.send({ type: "hello", purpose: options.purpose, suites: [...options.offer] });
  const ack = await channel.receive(["hello-ack"], options.timeoutMs);
  if (!chooseSuite([ack.suite], options.offer)) {
    throw new RegistrationError("no-common-suite", "the writer server chose a suite this writer client did not offer");
  }
  const { enc, sharedSecret } = await encapsulateSharedSecret(ack.suite, ack.publicKey);
  const salt = freshSalt();
  channel.send({ type: "kem", enc, salt });

  const registered = await channel.receive(["registered"], options.timeoutMs);
  const keyId = deriveKeyId(ack.suite.kdf, sharedSecret, salt);
  if (!sameBytes(registered.keyId, keyId)) {
    throw new RegistrationError(
      "key-id-mismatch",
      "the writer server's keyId differs from ours: the two writers do not hold the same secret",
    );
  }
  channel.send({ type: "confirm", keyId });
  const committed = await channel.receive(["ack"], options.timeoutMs);
  if (!sameBytes(committed.keyId, keyId) || committed.generation !== registered.generation) {
    throw new RegistrationError("unexpected-message", "the writer server acknowledged a different generation");
  }
  return {
    keyId,
    generation: registered.generation,
    effectiveAt: registered.effectiveAt,
    suite: ack.suite,
    salt,
    sharedSecret,
    rotation: ack.rotation,
  };
}
