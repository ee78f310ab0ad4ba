// The native AEAD backend (native/pdm_aead.cc): one OpenSSL context per key, kept for
// as long as the key's opener is (FlowKeyContext caches it with its flow), only the
// nonce set per packet. Used when it is built; node:crypto otherwise, or when
// PDM_NO_NATIVE=1, with identical results (test/analyzer/aead-native.test.ts).

import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import {
  aeadKeyLength,
  decodeV2FieldsInto,
  emptyV2Fields,
  KeyError,
  nodeCryptoAead,
  packageRoot,
  type AeadBackend,
} from "../../pdm/index.ts";

/** What the addon exports. */
interface NativeAeadModule {
  AeadContext: new (aead: number, key: Uint8Array) => NativeAeadContext;
  /** The buffer openAt reads options from, and the one it writes the opened bytes to (this thread's). */
  setInput(bytes: Uint8Array): void;
  setOutput(out: Uint8Array): void;
  openssl: string;
}

/** One key's contexts in the addon. */
export interface NativeAeadContext {
  /** The 36-byte option at bytes[at]: 1 and the 14 opened bytes in `out`; 0 for a tag that does not verify; -1 out of bounds. */
  open(bytes: Uint8Array, at: number, kri: number, out: Uint8Array): number;
  /** open() of the option at `at` in the buffer last given to setInput, into the one given to setOutput. */
  openAt(at: number, kri: number): number;
  /** nonce 12, aad 6, text 14 in; ciphertext || tag (30 bytes) into `out`. */
  seal(nonce: Uint8Array, aad: Uint8Array, text: Uint8Array, out: Uint8Array): void;
}

export const NATIVE_AEAD_PATH = join(packageRoot(), "analyzer", "aead-native", "native", "build", "pdm_aead.node");

let loaded: { module: NativeAeadModule } | { why: string } | undefined;

function load(): { module: NativeAeadModule } | { why: string } {
  if (loaded) return loaded;
  if (process.env.PDM_NO_NATIVE === "1") return (loaded = { why: "PDM_NO_NATIVE=1" });
  if (!existsSync(NATIVE_AEAD_PATH))
    return (loaded = { why: "the native AEAD module is not built (bash scripts/setup.sh)" });
  try {
    return (loaded = { module: createRequire(import.meta.url)(NATIVE_AEAD_PATH) as NativeAeadModule });
  } catch (e) {
    return (loaded = { why: `the native AEAD module does not load: ${(e as Error).message.split("\n")[0]}` });
  }
}

/** A key's native context, or undefined when the module is not there. The key's length is checked first. */
export function nativeAeadContext(aead: number, key: Uint8Array): NativeAeadContext | undefined {
  const l = load();
  if (!("module" in l)) return undefined;
  if (key.length !== aeadKeyLength(aead))
    throw new KeyError(`"key" expected ${aeadKeyLength(aead)} bytes, got ${key.length}`);
  return new l.module.AeadContext(aead, key);
}

/** Where the 14 opened bytes land; decoded at once, so one buffer serves every context. */
const opened = new Uint8Array(14);
/** What they are decoded into, for every context alike (KeyOpener: read before the next open). */
const fields = emptyV2Fields();
/** The buffer the addon reads options from: the reader's, which changes only when it grows. */
let input: Uint8Array | undefined;

/**
 * The backend protected options are opened with: the native module when it loads,
 * node:crypto otherwise, and why (`note` is what a verbose line says).
 */
export function aeadBackend(): { backend: AeadBackend; note: string } {
  const l = load();
  if (!("module" in l)) return { backend: nodeCryptoAead, note: `opened with node:crypto: ${l.why}` };
  const module = l.module;
  module.setOutput(opened);
  const backend: AeadBackend = {
    name: `native (${module.openssl})`,
    opener(aead, key) {
      const ctx = nativeAeadContext(aead, key)!;
      return {
        open(option, kri) {
          if (option.bytes !== input) module.setInput((input = option.bytes));
          return ctx.openAt(option.at, kri) === 1
            ? decodeV2FieldsInto(fields, option.randomNumber, option.fBit, opened, 0)
            : undefined;
        },
      };
    },
  };
  return { backend, note: `opened with ${l.module.openssl}, one context per key (the native module)` };
}
