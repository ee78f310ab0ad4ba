// Segmentation offload (wire.md section 5): with GSO/TSO on, one stamp covers a whole
// super-packet; `attach --no-offload` makes every skb one wire segment and `detach`
// restores what was there. Turning tso/gso off with ethtool is not enough: TCP always
// builds software-GSO super-packets, which are split only after the tc egress hook;
// `gso_max_segs 1` on the device is what makes TCP send segment-sized skbs.

import { execFileSync } from "node:child_process";
import { BpfError } from "./errors.ts";
import { ip, ipJson } from "./system.ts";

/** The device's gso_max_segs (65535 when unlimited). */
export function readGsoMaxSegs(ifname: string): number | undefined {
  const [link] = ipJson<Array<{ gso_max_segs?: number }>>(["-d", "link", "show", "dev", ifname]);
  return link?.gso_max_segs;
}

export function setGsoMaxSegs(ifname: string, segs: number): void {
  ip(["link", "set", "dev", ifname, "gso_max_segs", String(segs)]);
}

export const OFFLOAD_FEATURES = ["tcp-segmentation-offload", "generic-segmentation-offload"] as const;
const SHORT: Record<(typeof OFFLOAD_FEATURES)[number], string> = {
  "tcp-segmentation-offload": "tso",
  "generic-segmentation-offload": "gso",
};

/** Current on/off of each feature, from `ethtool -k`. */
export function readOffload(ifname: string): Record<string, boolean> {
  let out: string;
  try {
    out = execFileSync("ethtool", ["-k", ifname], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  } catch (err) {
    throw new BpfError(`Cannot read offload settings of ${ifname}: install ethtool (apt-get install ethtool).`, {
      cause: err,
    });
  }
  const state: Record<string, boolean> = {};
  for (const f of OFFLOAD_FEATURES) {
    const m = new RegExp(`^${f}: (on|off)`, "m").exec(out);
    if (m) state[f] = m[1] === "on";
  }
  return state;
}

export function setOffload(ifname: string, want: Record<string, boolean>): void {
  const args = ["-K", ifname];
  for (const [f, on] of Object.entries(want)) {
    const short = SHORT[f as (typeof OFFLOAD_FEATURES)[number]];
    if (short) args.push(short, on ? "on" : "off");
  }
  if (args.length === 2) return;
  try {
    execFileSync("ethtool", args, { stdio: ["ignore", "ignore", "pipe"] });
  } catch (err) {
    throw new BpfError(
      `\`ethtool ${args.join(" ")}\` failed: ${String((err as { stderr?: Buffer }).stderr ?? err).trim()}`,
      { cause: err },
    );
  }
}
