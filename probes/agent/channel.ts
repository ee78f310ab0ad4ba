// A message channel: length-prefixed JSON frames (4-byte big-endian length) over a
// stream, or an in-memory pair with the same encoding for tests and benchmarks.
//
// `receive(types)` waits for the next message and accepts only the listed types: the
// exchange's state machine is written as a straight sequence of receives, and anything
// out of order becomes an `unexpected-message` refusal instead of a confused state.

import type { Duplex } from "node:stream";
import { RegistrationError } from "./errors.ts";
import { messageToJson, parseMessage, type Message, type MessageOf, type MessageType } from "./messages.ts";

/** Frames larger than this are refused: every real message is well under 8 KiB. */
export const MAX_FRAME_BYTES = 64 * 1024;
/**
 * A member reading its group master: a group generation lists every member's
 * certificate (up to MAX_GROUP_MEMBERS of at most 4 KiB, base64url).
 */
export const GROUP_FRAME_BYTES = 6 * 1024 * 1024;
export const DEFAULT_RECEIVE_TIMEOUT_MS = 10_000;
/** The protocol's limit on an error reply's message (messages.ts parses no longer one). */
const MAX_ERROR_MESSAGE = 500;

export function encodeFrame(m: Message): Buffer {
  const body = Buffer.from(JSON.stringify(messageToJson(m)), "utf8");
  const frame = Buffer.allocUnsafe(4 + body.length);
  frame.writeUInt32BE(body.length, 0);
  body.copy(frame, 4);
  return frame;
}

/** Splits a byte stream into frames; each frame is parsed and validated as a Message. */
export class FrameDecoder {
  private pending: Buffer = Buffer.alloc(0);

  constructor(private readonly maxFrameBytes = MAX_FRAME_BYTES) {}

  /** Feed bytes; returns every complete message, or throws on the first bad frame. */
  push(chunk: Buffer): Message[] {
    this.pending = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    const out: Message[] = [];
    while (this.pending.length >= 4) {
      const length = this.pending.readUInt32BE(0);
      if (length > this.maxFrameBytes) {
        throw new RegistrationError(
          "malformed-message",
          `frame of ${length} bytes is larger than the ${this.maxFrameBytes}-byte limit`,
        );
      }
      if (this.pending.length < 4 + length) break;
      const body = this.pending.subarray(4, 4 + length);
      this.pending = this.pending.subarray(4 + length);
      let json: unknown;
      try {
        json = JSON.parse(body.toString("utf8"));
      } catch {
        throw new RegistrationError("malformed-message", "frame is not valid JSON");
      }
      out.push(parseMessage(json));
    }
    return out;
  }
}

type Waiter = {
  types: readonly MessageType[];
  resolve: (m: Message) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
};

/** Message queue shared by both channel kinds: delivery, waiting, failure. */
export abstract class Channel {
  private readonly queue: Message[] = [];
  private waiter: Waiter | undefined;
  private failure: RegistrationError | undefined;
  private readonly closeHandlers: ((why: RegistrationError) => void)[] = [];

  abstract send(m: Message): void;
  protected abstract end(): void;

  /** Wait for the next message, which must be one of `types`. */
  receive<T extends MessageType>(types: readonly T[], timeoutMs = DEFAULT_RECEIVE_TIMEOUT_MS): Promise<MessageOf<T>> {
    if (this.waiter) return Promise.reject(new Error("Channel.receive called while another receive is waiting"));
    const queued = this.queue.shift();
    if (queued) return this.check(queued, types);
    if (this.failure) return Promise.reject(this.failure);
    return new Promise<Message>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiter = undefined;
        reject(new RegistrationError("timeout", `no ${types.join(" or ")} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiter = { types, resolve, reject, timer };
    }).then((m) => this.check(m, types));
  }

  /** Send an `error` reply naming the refusal, then close. */
  refuse(e: RegistrationError): void {
    try {
      this.send({ type: "error", code: e.code, message: e.message.slice(0, MAX_ERROR_MESSAGE) });
    } catch {
      // the peer is already gone: nothing to tell it
    }
    this.close();
  }

  close(): void {
    this.fail(new RegistrationError("closed", "the connection was closed"));
    this.end();
  }

  onClose(handler: (why: RegistrationError) => void): void {
    this.closeHandlers.push(handler);
  }

  get isOpen(): boolean {
    return this.failure === undefined;
  }

  protected deliver(m: Message): void {
    const w = this.waiter;
    if (w) {
      this.waiter = undefined;
      clearTimeout(w.timer);
      w.resolve(m);
    } else {
      this.queue.push(m);
    }
  }

  protected fail(e: RegistrationError): void {
    if (this.failure) return;
    this.failure = e;
    const w = this.waiter;
    if (w) {
      this.waiter = undefined;
      clearTimeout(w.timer);
      w.reject(e);
    }
    for (const h of this.closeHandlers) h(e);
  }

  private check<T extends MessageType>(m: Message, types: readonly T[]): Promise<MessageOf<T>> {
    if (m.type === "error" && !types.includes("error" as T)) {
      return Promise.reject(new RegistrationError("peer-error", `the peer refused: ${m.code}: ${m.message}`));
    }
    if (!types.includes(m.type as T)) {
      return Promise.reject(
        new RegistrationError("unexpected-message", `expected ${types.join(" or ")}, got ${m.type}`),
      );
    }
    return Promise.resolve(m as MessageOf<T>);
  }
}

/** A channel over a connected stream (a TLS socket in the agent). */
export class StreamChannel extends Channel {
  private readonly decoder: FrameDecoder;

  constructor(
    private readonly stream: Duplex,
    maxFrameBytes = MAX_FRAME_BYTES,
  ) {
    super();
    this.decoder = new FrameDecoder(maxFrameBytes);
    // Exchanges are several small request/reply round trips: Nagle's algorithm would
    // hold each reply for a delayed ACK (tens of ms per step).
    (stream as Duplex & { setNoDelay?: (on: boolean) => void }).setNoDelay?.(true);
    stream.on("data", (chunk: Buffer) => {
      let messages: Message[];
      try {
        messages = this.decoder.push(chunk);
      } catch (e) {
        // A bad frame ends the connection: nothing after it can be trusted. The reason
        // goes to the peer and is what a waiting receive (and so the log) sees; fail
        // first, or closing would record "closed" in its place.
        const err =
          e instanceof RegistrationError ? e : new RegistrationError("malformed-message", "frame could not be read");
        const reply = encodeFrame({ type: "error", code: err.code, message: err.message.slice(0, MAX_ERROR_MESSAGE) });
        this.fail(err);
        this.stream.write(reply);
        this.end();
        return;
      }
      for (const m of messages) this.deliver(m);
    });
    stream.on("error", (e) =>
      this.fail(new RegistrationError("closed", `connection error: ${e.message}`, { cause: e })),
    );
    stream.on("close", () => this.fail(new RegistrationError("closed", "the peer closed the connection")));
  }

  send(m: Message): void {
    if (!this.isOpen) throw new RegistrationError("closed", `cannot send ${m.type}: the connection is closed`);
    this.stream.write(encodeFrame(m));
  }

  protected end(): void {
    this.stream.end();
    // A peer that never reads must not hold the socket open forever.
    setTimeout(() => this.stream.destroy(), 1000).unref();
  }
}

/** Two connected in-memory channels; messages still go through encode and parse. */
export function memoryChannelPair(): [Channel, Channel] {
  class MemoryChannel extends Channel {
    other!: MemoryChannel;
    private readonly decoder = new FrameDecoder(GROUP_FRAME_BYTES);
    send(m: Message): void {
      if (!this.isOpen) throw new RegistrationError("closed", `cannot send ${m.type}: the channel is closed`);
      const frame = encodeFrame(m);
      queueMicrotask(() => {
        if (!this.other.isOpen) return;
        for (const msg of this.other.decoder.push(frame)) this.other.deliver(msg);
      });
    }
    protected end(): void {
      queueMicrotask(() => this.other.fail(new RegistrationError("closed", "the peer closed the channel")));
    }
  }
  const a = new MemoryChannel();
  const b = new MemoryChannel();
  a.other = b;
  b.other = a;
  return [a, b];
}
