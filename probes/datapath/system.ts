// Facts about the host the data path needs, read the way that is right inside any
// network namespace: interfaces through `ip -j` (netlink, not /sys, which shows the
// namespace that mounted it), the bpffs mount, root, the current netns identity.

import { execFileSync } from "node:child_process";
import { mkdirSync, readlinkSync, statfsSync } from "node:fs";
import { BpfError } from "./errors.ts";

const BPF_FS_MAGIC = 0xcafe4a11;

export interface InterfaceInfo {
  name: string;
  ifindex: number;
  mtu: number;
  /** "ether", "loopback", "none" (tun, ip6tnl), ... */
  linkType: string;
  /** Bytes before the IPv6 header in a tc program: 14 on Ethernet and loopback, else 0. */
  l2Len: number;
}

/** Runs `ip` with JSON output; errors become a BpfError naming the command. */
export function ipJson<T>(args: string[]): T {
  try {
    const out = execFileSync("ip", ["-j", ...args], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
    return JSON.parse(out.trim() || "[]") as T;
  } catch (err) {
    const stderr = (err as { stderr?: string }).stderr?.trim();
    throw new BpfError(`\`ip ${args.join(" ")}\` failed: ${stderr || String(err)}`, { cause: err });
  }
}

/** Runs `ip` for its effect. */
export function ip(args: string[]): void {
  try {
    execFileSync("ip", args, { stdio: ["ignore", "ignore", "pipe"] });
  } catch (err) {
    const stderr = (err as { stderr?: Buffer }).stderr?.toString().trim();
    throw new BpfError(`\`ip ${args.join(" ")}\` failed: ${stderr || String(err)}`, { cause: err });
  }
}

export function interfaceInfo(name: string): InterfaceInfo {
  if (!/^[A-Za-z0-9_.:@-]{1,15}$/.test(name)) {
    throw new BpfError(`"${name}" is not a valid interface name (1-15 letters, digits, . _ - :).`);
  }
  let links: Array<{ ifindex: number; ifname: string; mtu: number; link_type: string }>;
  try {
    links = JSON.parse(
      execFileSync("ip", ["-j", "link", "show", "dev", name], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] }),
    );
  } catch {
    throw new BpfError(`No network interface named ${name} in this network namespace (see \`ip link\`).`);
  }
  const link = links[0];
  if (!link) throw new BpfError(`No network interface named ${name} in this network namespace (see \`ip link\`).`);
  const l2Len = link.link_type === "ether" || link.link_type === "loopback" ? 14 : 0;
  return { name: link.ifname, ifindex: link.ifindex, mtu: link.mtu, linkType: link.link_type, l2Len };
}

export function requireRoot(what: string): void {
  if (typeof process.getuid === "function" && process.getuid() !== 0) {
    throw new BpfError(`${what} needs root (CAP_BPF and CAP_NET_ADMIN): run it with sudo or as root.`);
  }
}

/** Makes sure a BPF filesystem is mounted at /sys/fs/bpf, mounting one if not (as tc does). */
export function ensureBpffs(root = "/sys/fs/bpf"): void {
  if (isBpffs(root)) return;
  try {
    mkdirSync(root, { recursive: true });
    execFileSync("mount", ["-t", "bpf", "bpf", root], { stdio: ["ignore", "ignore", "pipe"] });
  } catch (err) {
    throw new BpfError(
      `No BPF filesystem at ${root} and mounting one failed: run \`mount -t bpf bpf ${root}\` as root.`,
      { cause: err },
    );
  }
  if (!isBpffs(root)) throw new BpfError(`${root} is not a BPF filesystem: run \`mount -t bpf bpf ${root}\`.`);
}

export function isBpffs(path: string): boolean {
  try {
    return statfsSync(path).type === BPF_FS_MAGIC;
  } catch {
    return false;
  }
}

/** "net:[4026531840]": tells network namespaces apart. */
export function currentNetns(): string {
  return readlinkSync("/proc/self/ns/net");
}
