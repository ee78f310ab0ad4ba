// Everything a peer sends the agent goes through FrameDecoder and parseMessage: random
// bytes, random JSON and mutated valid messages give a message or a RegistrationError,
// never another exception; valid messages survive encode -> decode unchanged.

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  DEFAULT_OFFER,
  FrameDecoder,
  RegistrationError,
  encodeFrame,
  messageToJson,
  parseMessage,
  type Message,
} from "../../probes/agent/index.ts";

const onlyTypedErrors = (f: () => unknown): void => {
  try {
    f();
  } catch (e) {
    if (!(e instanceof RegistrationError)) throw e;
    assert.match(e.code, /^(malformed-message|unsupported-version)$/);
  }
};

const bytes = (n: number) => fc.uint8Array({ minLength: n, maxLength: n });
const messageArb: fc.Arbitrary<Message> = fc.oneof(
  fc.record({
    type: fc.constant("hello" as const),
    purpose: fc.constantFrom("register" as const, "renew" as const),
    suites: fc.constant(DEFAULT_OFFER),
  }),
  fc.record({ type: fc.constant("kem" as const), enc: bytes(32), salt: bytes(32) }),
  fc.record({
    type: fc.constant("registered" as const),
    keyId: bytes(8),
    generation: fc.integer({ min: 1, max: 2 ** 32 - 1 }),
    effectiveAt: fc.nat(),
  }),
  fc.record({ type: fc.constant("join" as const), holds: fc.array(bytes(8), { maxLength: 8 }) }),
  fc.record({ type: fc.constant("ack" as const), keyId: bytes(8), generation: fc.integer({ min: 1, max: 1000 }) }),
  fc.record({ type: fc.constant("connectivity-keys-request" as const) }),
  fc.record({
    type: fc.constant("connectivity-keys" as const),
    ckn: fc.uint8Array({ minLength: 1, maxLength: 32 }),
    cak: fc.oneof(bytes(16), bytes(32)),
    kgk: bytes(16),
  }),
  fc.record({
    type: fc.constant("error" as const),
    code: fc.string({ maxLength: 64 }),
    message: fc.string({ maxLength: 500 }),
  }),
);

describe("agent message parsing never crashes", () => {
  it("round-trips valid messages through frames", () => {
    fc.assert(
      fc.property(messageArb, (m) => {
        const [back] = new FrameDecoder().push(encodeFrame(m));
        assert.deepEqual(messageToJson(back!), messageToJson(m));
      }),
      { numRuns: 2000 },
    );
  });

  it("random bytes, split anywhere, give messages or RegistrationError", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.nat(300), (data, cut) => {
        const decoder = new FrameDecoder();
        onlyTypedErrors(() => {
          decoder.push(Buffer.from(data.subarray(0, cut)));
          decoder.push(Buffer.from(data.subarray(cut)));
        });
      }),
      { numRuns: 5000 },
    );
  });

  it("random JSON and mutated valid messages give a message or RegistrationError", () => {
    fc.assert(
      fc.property(fc.jsonValue(), (v) => onlyTypedErrors(() => parseMessage(v))),
      { numRuns: 5000 },
    );
    fc.assert(
      fc.property(messageArb, fc.string({ maxLength: 12 }), fc.jsonValue(), (m, key, value) => {
        const json = messageToJson(m);
        const keys = Object.keys(json);
        const field = keys.includes(key) ? key : keys[key.length % keys.length]!;
        onlyTypedErrors(() => parseMessage({ ...json, [field]: value }));
      }),
      { numRuns: 5000 },
    );
  });
});
