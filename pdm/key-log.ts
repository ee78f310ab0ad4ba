// The key log an authorized analyzer gets, keys.md section 5. One secret per line:
//
//   PDMV2_SHARED <keyId> <kem>:<kdf>:<aead> <salt> <secret>
//   PDMV2_CLIENT <keyId> <kem>:<kdf>:<aead> <client-ip> <salt> <secret>
//
// keyId, salt and secret in hex; suite ids as 4 hex digits. <client-ip> is written as
// IPv6 text (RFC 5952) and read as text or as 32 hex digits. Blank lines and lines
// starting with '#' are ignored. The file is written 0600 and its contents never logged.

import { closeSync, fchmodSync, ftruncateSync, openSync, readFileSync, writeSync } from "node:fs";
import { formatIpv6Address, parseIpv6Address } from "./address.ts";
import { KeyError, PdmError } from "./errors.ts";
import { KEY_ID_LENGTH, SECRET_LENGTH, aeadKeyLength, hex4, kdfDigest, type Suite } from "./key-schedule.ts";

export type KeyLogEntry =
  | { kind: "shared"; keyId: Uint8Array; suite: Suite; salt: Uint8Array; secret: Uint8Array }
  | { kind: "client"; keyId: Uint8Array; suite: Suite; clientAddress: Uint8Array; salt: Uint8Array; secret: Uint8Array };

const hex = (b: Uint8Array): string => Buffer.from(b).toString("hex");

export function formatKeyLogLine(e: KeyLogEntry): string {
  const suite = `${hex4(e.suite.kem)}:${hex4(e.suite.kdf)}:${hex4(e.suite.aead)}`;
  if (e.kind === "shared") return `PDMV2_SHARED ${hex(e.keyId)} ${suite} ${hex(e.salt)} ${hex(e.secret)}`;
  return `PDMV2_CLIENT ${hex(e.keyId)} ${suite} ${formatIpv6Address(e.clientAddress)} ${hex(e.salt)} ${hex(e.secret)}`;
}

export function formatKeyLog(entries: KeyLogEntry[]): string {
  return entries.map((e) => `${formatKeyLogLine(e)}\n`).join("");
}

/** Parse a whole key log. Every problem names the line; a bad line fails the whole log. */
export function parseKeyLog(text: string, source = "key log"): KeyLogEntry[] {
  const entries: KeyLogEntry[] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) return;
    try {
      entries.push(parseKeyLogLine(line));
    } catch (cause) {
      const why = cause instanceof PdmError ? cause.message : String(cause);
      throw new KeyError(`${source} line ${i + 1}: ${why}`, { cause });
    }
  });
  return entries;
}

function parseKeyLogLine(line: string): KeyLogEntry {
  const parts = line.split(/\s+/);
  const label = parts[0];
  const want = label === "PDMV2_SHARED" ? 5 : label === "PDMV2_CLIENT" ? 6 : 0;
  if (want === 0) throw new KeyError(`unknown label "${label}" (expected PDMV2_SHARED or PDMV2_CLIENT)`);
  if (parts.length !== want) throw new KeyError(`${label} needs ${want - 1} fields, found ${parts.length - 1}`);
  const keyId = hexField("keyId", parts[1]!, KEY_ID_LENGTH);
  const suite = parseSuite(parts[2]!);
  if (label === "PDMV2_SHARED") {
    return { kind: "shared", keyId, suite, salt: hexField("salt", parts[3]!, 32), secret: hexField("secret", parts[4]!, SECRET_LENGTH) };
  }
  const ip = parts[3]!;
  const clientAddress = /^[0-9a-fA-F]{32}$/.test(ip) ? hexField("client-ip", ip, 16) : parseIpv6Address(ip);
  return { kind: "client", keyId, suite, clientAddress, salt: hexField("salt", parts[4]!, 32), secret: hexField("secret", parts[5]!, SECRET_LENGTH) };
}

function parseSuite(text: string): Suite {
  const m = /^([0-9a-fA-F]{4}):([0-9a-fA-F]{4}):([0-9a-fA-F]{4})$/.exec(text);
  if (!m) throw new KeyError(`suite "${text}" is not <kem>:<kdf>:<aead> as 4 hex digits each`);
  const suite = { kem: parseInt(m[1]!, 16), kdf: parseInt(m[2]!, 16), aead: parseInt(m[3]!, 16) };
  kdfDigest(suite.kdf); // throws a KeyError naming an unsupported id
  aeadKeyLength(suite.aead);
  return suite;
}

function hexField(name: string, text: string, length: number): Uint8Array {
  if (text.length !== length * 2 || !/^[0-9a-fA-F]*$/.test(text)) {
    throw new KeyError(`${name} must be ${length * 2} hex digits (got ${text.length} characters)`);
  }
  return new Uint8Array(Buffer.from(text, "hex"));
}

export function readKeyLog(path: string): KeyLogEntry[] {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (cause) {
    throw new KeyError(`cannot read key log ${path}: ${(cause as Error).message}`, { cause });
  }
  return parseKeyLog(text, path);
}

/** Write a key log readable by its owner only (0600), also when the file already existed. */
export function writeKeyLog(path: string, entries: KeyLogEntry[]): void {
  // Tighten the mode before a single secret byte is written, even if the file existed.
  const fd = openSync(path, "w", 0o600);
  try {
    fchmodSync(fd, 0o600);
    ftruncateSync(fd, 0);
    writeSync(fd, formatKeyLog(entries));
  } finally {
    closeSync(fd);
  }
}
