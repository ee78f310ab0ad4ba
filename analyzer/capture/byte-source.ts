// Where capture bytes come from: a file (positional reads) or a stream such as
// stdin. Both fill a caller-owned buffer, so the reader never concatenates chunks.

import { closeSync, fstatSync, openSync, readSync } from "node:fs";
import type { Readable } from "node:stream";

export interface ByteSource {
  /** Copy up to `length` bytes into `target` at `offset`; 0 means end of input. */
  read(target: Buffer, offset: number, length: number): Promise<number>;
  /** Total size when known (files), for progress reporting. */
  readonly size: number | undefined;
  close(): Promise<void>;
}

/**
 * A regular file, read synchronously: from the page cache a read takes well under a
 * millisecond, while the thread-pool round trip of an async read left the analyzer
 * idle for a third of its time. (Pipes and stdin go through streamSource.)
 */
export async function fileSource(path: string): Promise<ByteSource> {
  const fd = openSync(path, "r");
  const stat = fstatSync(fd);
  if (stat.isDirectory()) {
    closeSync(fd);
    throw new Error("it is a directory");
  }
  // A FIFO or a device (-r /dev/stdin) cannot seek: read it where it stands.
  const seekable = stat.isFile();
  let position = 0;
  let closed = false;
  return {
    size: seekable ? stat.size : undefined,
    async read(target, offset, length) {
      const bytesRead = readSync(fd, target, offset, length, seekable ? position : null);
      position += bytesRead;
      return bytesRead;
    },
    async close() {
      if (!closed) closeSync(fd);
      closed = true;
    },
  };
}

export function streamSource(stream: Readable): ByteSource {
  const chunks = stream[Symbol.asyncIterator]() as AsyncIterator<Buffer | string>;
  let current: Buffer | undefined;
  let at = 0;
  return {
    size: undefined,
    async read(target, offset, length) {
      while (!current || at >= current.length) {
        const next = await chunks.next();
        if (next.done) return 0;
        current = typeof next.value === "string" ? Buffer.from(next.value) : next.value;
        at = 0;
      }
      const n = current.copy(target, offset, at, Math.min(current.length, at + length));
      at += n;
      return n;
    },
    async close() {
      await chunks.return?.();
    },
  };
}

/** A whole in-memory capture (tests, fuzzing). */
export function bufferSource(bytes: Uint8Array): ByteSource {
  let at = 0;
  return {
    size: bytes.length,
    async read(target, offset, length) {
      const n = Math.min(length, bytes.length - at);
      target.set(bytes.subarray(at, at + n), offset);
      at += n;
      return n;
    },
    async close() {},
  };
}
