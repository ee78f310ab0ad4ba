// What every step of the live demo shares: the lab it builds in, where it writes, how
// it speaks (each line stamped with the seconds since the start), and the programs it
// runs in the namespaces.

import { join } from "node:path";
import { packageRoot } from "../../pdm/index.ts";
import { aesDataPathUnavailable } from "../../probes/datapath/index.ts";
import type { Lab } from "../../lab/index.ts";

const ROOT = packageRoot();
export const PDM = [process.execPath, join(ROOT, "bin", "pdm.js")];
export const APPS = [process.execPath, "--import", "tsx", join(ROOT, "cli", "demo", "apps.ts")];
export const DELAY_BRIDGE = [process.execPath, "--import", "tsx", join(ROOT, "scripts", "delay-bridge.ts")];
/** The deployment's AEAD: the default suite's AES-128-GCM where the kernel can seal it (Linux 6.10+, the pdm_gcm build). */
export const DEMO_AEAD = !aesDataPathUnavailable() ? ("aes-128-gcm" as const) : ("chacha20-poly1305" as const);

export interface DemoContext {
  lab: Lab;
  /** Where the capture, key log, report, PNG, certificates and logs go. */
  out: string;
  say(line: string): void;
  /** "  12.3 s": the time since the demo started, for the start of a line. */
  elapsed(): string;
  /** Group master mode (groups.md 1): every host a group member, the master at the router. */
  group: boolean;
  /** Distributed mode (groups.md 2): every host a member of the Key Selection Protocol, no server. */
  distributed: boolean;
}

/** Thrown when a step shows the machine cannot run the live demo at all (not a bug in a run). */
export class DemoUnavailable extends Error {}

export function indent(text: string): string {
  return text
    .split("\n")
    .map((l) => `  ${l}`)
    .join("\n");
}
