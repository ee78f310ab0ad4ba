// The files a distributed-mode member keeps (groups.md 2), both 0600 and never read or
// written through a symbolic link: the connectivity key set it was given, and its
// memory of the KNs it accepted (with the highest generation), so that a restart never
// accepts a KN twice nor lets a generation number go back.

import { createHash } from "node:crypto";
import { lstatSync, readFileSync } from "node:fs";
import { UsageError, writeSecretFile } from "../../pdm/index.ts";
import type { ConnectivityKeys } from "./guard.ts";
import type { KnMemory } from "./participant.ts";

/** How many KNs a member remembers (the newest): a replayed key message fails liveness long before. */
export const KN_MEMORY_LIMIT = 65_536;

function readPrivate(path: string, what: string): string {
  let st;
  try {
    st = lstatSync(path);
  } catch (e) {
    throw new UsageError(`cannot read the ${what} ${path}: ${(e as NodeJS.ErrnoException).code ?? e}`);
  }
  if (st.isSymbolicLink()) throw new UsageError(`${path} is a symbolic link: the ${what} is never read through one`);
  if ((st.mode & 0o077) !== 0)
    throw new UsageError(
      `the ${what} ${path} is readable by others (mode ${(st.mode & 0o777).toString(8)}): chmod 600 it`,
    );
  return readFileSync(path, "utf8");
}

/** `{"ckn": "<hex, 1-32 bytes>", "cak": "<hex, 16 or 32 bytes>", "kgk": "<hex, 16 bytes>"}`, mode 0600. */
export function readConnectivityKeys(path: string): ConnectivityKeys {
  let json: Record<string, unknown>;
  try {
    json = JSON.parse(readPrivate(path, "connectivity key file")) as Record<string, unknown>;
  } catch (e) {
    if (e instanceof UsageError) throw e;
    throw new UsageError(`${path}: not JSON`);
  }
  const field = (name: string, lengths: number[]): Buffer => {
    const v = json[name];
    const bytes = typeof v === "string" && /^([0-9a-fA-F]{2})+$/.test(v) ? Buffer.from(v, "hex") : undefined;
    if (!bytes || !lengths.includes(bytes.length))
      throw new UsageError(`${path}: ${name}: expected ${lengths.join(" or ")} bytes in hex`);
    return bytes;
  };
  for (const k of Object.keys(json))
    if (!["ckn", "cak", "kgk"].includes(k)) throw new UsageError(`${path}: ${k}: unknown field (known: ckn, cak, kgk)`);
  return {
    ckn: field(
      "ckn",
      Array.from({ length: 32 }, (_, i) => i + 1),
    ),
    cak: field("cak", [16, 32]),
    kgk: field("kgk", [16]),
  };
}

export function writeConnectivityKeys(path: string, keys: ConnectivityKeys, replace = false): void {
  const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");
  writeSecretFile(path, `${JSON.stringify({ ckn: hex(keys.ckn), cak: hex(keys.cak), kgk: hex(keys.kgk) })}\n`, {
    replace,
    what: "connectivity key file",
  });
}

/**
 * A KN memory kept in `path` (made if missing): loaded now, rewritten on every KN
 * accepted. It belongs to one connectivity association (groups.md 2: "never accepted
 * twice per CKN"): a file of another key set (another CKN or CAK) is started afresh.
 */
export function fileKnMemory(path: string, keys: ConnectivityKeys): KnMemory {
  const association = `${Buffer.from(keys.ckn).toString("hex")}/${createHash("sha256").update(keys.cak).digest("hex").slice(0, 16)}`;
  let kns: string[] = [];
  let highest = 0;
  try {
    const saved = JSON.parse(readPrivate(path, "KN memory")) as {
      association?: unknown;
      highestGeneration?: unknown;
      kns?: unknown;
    };
    if (saved.association === association) {
      if (typeof saved.highestGeneration === "number") highest = saved.highestGeneration;
      if (Array.isArray(saved.kns)) kns = saved.kns.filter((k): k is string => typeof k === "string");
    }
  } catch (e) {
    if (!(e instanceof UsageError && /ENOENT/.test(e.message))) throw e;
  }
  const seen = new Set(kns);
  return {
    has: (k) => seen.has(k),
    add(k, generation) {
      seen.add(k);
      kns.push(k);
      if (kns.length > KN_MEMORY_LIMIT) seen.delete(kns.shift()!);
      highest = Math.max(highest, generation);
      writeSecretFile(path, JSON.stringify({ association, highestGeneration: highest, kns }), {
        replace: true,
        what: "KN memory",
      });
    },
    get highestGeneration() {
      return highest;
    },
  };
}
