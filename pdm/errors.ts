// One error base for the whole project, one subclass per failing operation.
// Hot-path decoders *return* these (see Result) instead of throwing them, so a
// bad packet becomes a counted diagnostic and the stream goes on.

export class PdmError extends Error {
  /** A one-sentence suggestion for the user, when there is one. */
  readonly hint: string | undefined;
  constructor(message: string, options?: { cause?: unknown; hint?: string }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.hint = options?.hint;
  }
}

/** Malformed bytes on the wire: names the field and the byte offset where it went wrong. */
export class WireError extends PdmError {
  constructor(
    readonly code: WireErrorCode,
    readonly field: string,
    readonly offset: number,
    readonly detail: string,
  ) {
    super(`${field} at offset ${offset}: ${detail}`);
  }

  /** The same error with its offset counted from `base` (a frame's first byte in a larger buffer). */
  relativeTo(base: number): WireError {
    return base === 0 ? this : new WireError(this.code, this.field, this.offset - base, this.detail);
  }
}

/** Why a wire decode failed, as a short stable identifier (used as a counter key). */
export type WireErrorCode =
  | "truncated" // the buffer ends before the field does
  | "bad-version" // IPv6 version nibble or PDMv2 version nibble is wrong
  | "bad-length" // a length field disagrees with the layout or the buffer
  | "reserved-set" // reserved bits are not zero
  | "unknown-layout" // PDM Opt Data Len is none of 10, 18, 34
  | "duplicate-pdm" // more than one PDM option in one packet
  | "too-many-headers"; // extension-header chain longer than we are willing to walk

/** A key, key log or key schedule input is unusable. */
export class KeyError extends PdmError {}

/** An AEAD tag did not verify. */
export class AuthError extends PdmError {}

/** A capture file is unreadable or damaged. */
export class CaptureError extends PdmError {}

/** The user asked for something that cannot be done as asked. */
export class UsageError extends PdmError {}

/** A command ran to its end and its check failed (pdm demo: a figure outside its tolerance). */
export class CheckFailed extends PdmError {}

/** A command stopped by Ctrl-C or SIGTERM, after undoing what it had made (exit status 130). */
export class Interrupted extends PdmError {}

/** Either a value or a typed error: what hot-path decoders return. */
export type Result<T, E = WireError> = { ok: true; value: T } | { ok: false; error: E };

export function ok<T>(value: T): { ok: true; value: T } {
  return { ok: true, value };
}

export function fail<E>(error: E): { ok: false; error: E } {
  return { ok: false, error };
}
