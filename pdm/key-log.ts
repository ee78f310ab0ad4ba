// The key log an authorized analyzer gets, keys.md section 5. One secret per line:
//
//   PDMV2_SHARED <keyId> <kem>:<kdf>:<aead> <salt> <secret>
//   PDMV2_CLIENT <keyId> <kem>:<kdf>:<aead> <client-ip> <salt> <secret>
//
// keyId, salt and secret in hex; suite ids as 4 hex digits. <client-ip> is written as
// IPv6 text (RFC 5952) and read as text or as 32 hex digits. Blank lines and lines
// starting with '#' are ignored. The file is written 0600 and its contents never logged.

import { closeSync, openSync, readSync } from "node:fs";
import { formatIpv6Address, parseIpv6Address } from "./address.ts";
import { KeyError, PdmError } from "./errors.ts";
import { writeSecretFile } from "./secret-file.ts";
import {
  GROUP_SK_AES_LENGTH,
  KEY_ID_LENGTH,
  SECRET_LENGTH,
  aeadKeyLength,
  hex4,
  kdfDigest,
  type Suite,
} from "./key-schedule.ts";

export type KeyLogEntry =
  | { kind: "shared"; keyId: Uint8Array; suite: Suite; salt: Uint8Array; secret: Uint8Array }
  | {
      kind: "client";
      keyId: Uint8Array;
      suite: Suite;
      clientAddress: Uint8Array;
      salt: Uint8Array;
      secret: Uint8Array;
    };

import { hex } from "./hex.ts";

export function formatKeyLogLine(e: KeyLogEntry): string {
  const suite = `${hex4(e.suite.kem)}:${hex4(e.suite.kdf)}:${hex4(e.suite.aead)}`;
  if (e.kind === "shared") return `PDMV2_SHARED ${hex(e.keyId)} ${suite} ${hex(e.salt)} ${hex(e.secret)}`;
  return `PDMV2_CLIENT ${hex(e.keyId)} ${suite} ${formatIpv6Address(e.clientAddress)} ${hex(e.salt)} ${hex(e.secret)}`;
}

export function formatKeyLog(entries: KeyLogEntry[]): string {
  return entries.map((e) => `${formatKeyLogLine(e)}\n`).join("");
}

/**
 * Limits on a key log, which may come from anyone: a line longer than any real one
 * (a client line is about 190 characters) or more lines than any real deployment
 * keeps (one generation an hour for over a year) is refused, so that a hostile or
 * mistaken file (`-k /dev/zero`) costs bounded memory and time.
 */
export const KEY_LOG_LIMITS = { lineChars: 1024, entries: 10_000 } as const;

/**
 * Parse a whole key log. Every problem names the line and the field, never the
 * field's text: a line with its columns swapped or comma-separated would otherwise
 * put a secret into an error message, a terminal and a log.
 */
export function parseKeyLog(text: string, source = "key log"): KeyLogEntry[] {
  const entries: KeyLogEntry[] = [];
  let lineNo = 0;
  for (let at = 0; at < text.length;) {
    const newline = text.indexOf("\n", at);
    const stop = newline < 0 ? text.length : newline;
    lineNo += 1;
    if (stop - at > KEY_LOG_LIMITS.lineChars) {
      throw new KeyError(
        `${source} line ${lineNo}: longer than ${KEY_LOG_LIMITS.lineChars} characters, so not a key log line`,
        {
          hint: "A key log has one key per line, as pdm keys export writes it.",
        },
      );
    }
    const line = text.slice(at, stop).trim();
    at = stop + 1;
    if (line === "" || line.startsWith("#")) continue;
    if (entries.length === KEY_LOG_LIMITS.entries) {
      throw new KeyError(
        `${source}: more than ${KEY_LOG_LIMITS.entries} keys (line ${lineNo}); no deployment keeps that many generations`,
        {
          hint: "Give the analyzer the key log of the generations the capture covers.",
        },
      );
    }
    try {
      entries.push(parseKeyLogLine(line));
    } catch (cause) {
      const why = cause instanceof PdmError ? cause.message : "unreadable";
      throw new KeyError(`${source} line ${lineNo}: ${why}`);
    }
  }
  return entries;
}

function parseKeyLogLine(line: string): KeyLogEntry {
  const parts = line.split(/\s+/);
  const label = parts[0];
  const want = label === "PDMV2_SHARED" ? 5 : label === "PDMV2_CLIENT" ? 6 : 0;
  if (want === 0) {
    const commas = line.includes(",") ? "; fields are separated by spaces, not commas" : "";
    throw new KeyError(`field 1 (label) is neither PDMV2_SHARED nor PDMV2_CLIENT${commas}`);
  }
  if (parts.length !== want) throw new KeyError(`${label} needs ${want - 1} fields, found ${parts.length - 1}`);
  const keyId = hexField(2, "keyId", parts[1]!, KEY_ID_LENGTH);
  const suite = parseSuite(parts[2]!);
  if (label === "PDMV2_SHARED") {
    return {
      kind: "shared",
      keyId,
      suite,
      salt: hexField(4, "salt", parts[3]!, 32),
      // 16 bytes: a group master's SharedSecret for AES-128-GCM (groups.md 1, SK of Nk bytes).
      secret: hexField(
        5,
        "secret",
        parts[4]!,
        parts[4]!.length === GROUP_SK_AES_LENGTH * 2 ? GROUP_SK_AES_LENGTH : SECRET_LENGTH,
      ),
    };
  }
  const ip = parts[3]!;
  let clientAddress: Uint8Array;
  if (/^[0-9a-fA-F]{32}$/.test(ip)) clientAddress = hexField(4, "client-ip", ip, 16);
  else {
    try {
      clientAddress = parseIpv6Address(ip);
    } catch {
      throw new KeyError("field 4 (client-ip) is not an IPv6 address");
    }
  }
  return {
    kind: "client",
    keyId,
    suite,
    clientAddress,
    salt: hexField(5, "salt", parts[4]!, 32),
    secret: hexField(6, "secret", parts[5]!, SECRET_LENGTH),
  };
}

function parseSuite(text: string): Suite {
  const m = /^([0-9a-fA-F]{4}):([0-9a-fA-F]{4}):([0-9a-fA-F]{4})$/.exec(text);
  if (!m) throw new KeyError("field 3 (suite) is not <kem>:<kdf>:<aead> as 4 hex digits each");
  const suite = { kem: parseInt(m[1]!, 16), kdf: parseInt(m[2]!, 16), aead: parseInt(m[3]!, 16) };
  kdfDigest(suite.kdf); // throws a KeyError naming the unsupported id (4 hex digits, no secret)
  aeadKeyLength(suite.aead);
  return suite;
}

function hexField(position: number, name: string, text: string, length: number): Uint8Array {
  if (text.length !== length * 2 || !/^[0-9a-fA-F]*$/.test(text)) {
    throw new KeyError(`field ${position} (${name}) must be ${length * 2} hex digits (got ${text.length} characters)`);
  }
  return new Uint8Array(Buffer.from(text, "hex"));
}

/** The most bytes a key log within KEY_LOG_LIMITS can have. */
const MAX_KEY_LOG_BYTES = KEY_LOG_LIMITS.entries * (KEY_LOG_LIMITS.lineChars + 1) * 2;

/** Read and parse a key log file; reads at most what the limits allow (a device or a huge file is refused). */
export function readKeyLog(path: string): KeyLogEntry[] {
  let text: string;
  let fd: number | undefined;
  try {
    fd = openSync(path, "r");
    const chunks: Buffer[] = [];
    let total = 0;
    for (;;) {
      const chunk = Buffer.allocUnsafe(64 * 1024);
      const got = readSync(fd, chunk, 0, chunk.length, null);
      if (got === 0) break;
      chunks.push(chunk.subarray(0, got));
      total += got;
      // Checked as it is read, so `-k /dev/zero` stops at once rather than at the byte limit.
      if (chunks.length === 1 && chunk.subarray(0, got).indexOf(10) < 0 && got > KEY_LOG_LIMITS.lineChars) {
        throw new KeyError(`${path} line 1: longer than ${KEY_LOG_LIMITS.lineChars} characters, so not a key log line`);
      }
      if (total > MAX_KEY_LOG_BYTES) {
        throw new KeyError(`${path}: larger than ${MAX_KEY_LOG_BYTES} bytes, so not a key log`, {
          hint: "Give the analyzer the key log of the generations the capture covers.",
        });
      }
    }
    text = Buffer.concat(chunks, total).toString("utf8");
  } catch (cause) {
    if (cause instanceof KeyError) throw cause;
    const code = (cause as NodeJS.ErrnoException).code;
    const why =
      code === "EISDIR" ? "it is a directory" : code === "ENOENT" ? "no such file" : (code ?? (cause as Error).message);
    throw new KeyError(`cannot read key log ${path}: ${why}`, { cause });
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
  return parseKeyLog(text, path);
}

/**
 * Write a key log readable by its owner only (0600), never through a symbolic link
 * (secret-file.ts). An existing file is replaced only with `replace`.
 */
export function writeKeyLog(path: string, entries: KeyLogEntry[], options: { replace?: boolean } = {}): void {
  writeSecretFile(path, formatKeyLog(entries), { replace: options.replace, what: "key log" });
}
