// Loads the native libbpf binding (native/pdm_bpf.cc) with a typed surface.
// Built by scripts/setup.sh (make -C probes/datapath/native); a missing build is one clear error.

import { createRequire } from "node:module";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { BpfError } from "./errors.ts";
import { packageRoot } from "../../pdm/index.ts";

export interface TcAttachResult {
  createdQdisc: boolean;
  progId: number;
}

export interface MapInfo {
  name: string;
  id: number;
  type: number;
  keySize: number;
  valueSize: number;
  maxEntries: number;
}

export interface ProgInfo {
  name: string;
  id: number;
  /** Cumulative run time and count, non-zero only with kernel.bpf_stats_enabled=1. */
  runTimeNs: number;
  runCount: number;
  /** Instructions after the verifier's rewrites (what `bpftool prog dump xlated` lists). */
  instructions: number;
  /** Instructions the verifier walked to accept the program (its work, not the program's size). */
  verifiedInstructions: number;
}

export interface TestRunResult {
  retval: number;
  durationNs: number;
  data: Buffer;
}

export interface NativeRingBuffer {
  /** Delivers what is waiting now; returns the number of records. */
  consume(): number;
  close(): void;
}

export interface NativeBpf {
  libbpfVersion(): string;
  numPossibleCpus(): number;
  openObject(path: string): number;
  setInitialValue(object: number, mapName: string, data: Buffer): void;
  loadObject(object: number): void;
  programFd(object: number, name: string): number;
  mapFd(object: number, name: string): number;
  closeObject(object: number): void;
  objPin(fd: number, path: string): void;
  objGet(path: string): number;
  closeFd(fd: number): void;
  mapInfo(fd: number): MapInfo;
  progInfo(fd: number): ProgInfo;
  mapLookup(fd: number, key: Buffer, value: Buffer): boolean;
  mapUpdate(fd: number, key: Buffer, value: Buffer, flags: number): void;
  mapDelete(fd: number, key: Buffer): boolean;
  mapNextKey(fd: number, key: Buffer | null, next: Buffer): boolean;
  tcAttach(ifindex: number, ingress: boolean, progFd: number, handle: number, priority: number): TcAttachResult;
  tcDetach(ifindex: number, ingress: boolean, handle: number, priority: number): boolean;
  tcQuery(ifindex: number, ingress: boolean, handle: number, priority: number): number;
  tcDestroyQdisc(ifindex: number): void;
  progTestRun(progFd: number, data: Buffer, repeat: number, outSize: number): TestRunResult;
  /** Run a context-only program (SEC("syscall")) once; the kernel writes `ctx` back. Returns its return value. */
  progRunContext(progFd: number, ctx: Buffer): number;
  RingBuffer: new (
    mapFd: number,
    recordSize: number,
    onRecords: (records: Buffer, count: number, badSize: number) => void,
  ) => NativeRingBuffer;
}

export const NATIVE_PATH = join(packageRoot(), "probes", "datapath", "native", "build", "pdm_bpf.node");
export const BPF_OBJECT_PATH = join(packageRoot(), "bpf", "build", "pdm.bpf.o");
/** The same programs with AES-128-GCM as well (built only with clang 15 or later). */
export const BPF_GCM_OBJECT_PATH = join(packageRoot(), "bpf", "build", "pdm_gcm.bpf.o");

let cached: NativeBpf | undefined;

/** The binding, or a BpfError saying how to build it. */
export function nativeBpf(): NativeBpf {
  if (cached) return cached;
  if (!existsSync(NATIVE_PATH)) {
    throw new BpfError("The eBPF loader is not built: run `bash scripts/setup.sh` (needs libbpf-dev, g++).");
  }
  const require = createRequire(import.meta.url);
  cached = require(NATIVE_PATH) as NativeBpf;
  return cached;
}

/** The compiled programs (with `aes`: the build that also seals AES-128-GCM), or a BpfError saying how to build them. */
export function bpfObjectPath(opts: { aes?: boolean } = {}): string {
  if (!existsSync(BPF_OBJECT_PATH)) {
    throw new BpfError("The eBPF programs are not built: run `bash scripts/setup.sh` (needs clang).");
  }
  if (opts.aes && !existsSync(BPF_GCM_OBJECT_PATH)) {
    throw new BpfError(
      "The AES-128-GCM data path is not built (it needs clang 15 or later): run `bash scripts/setup.sh`, or attach with --aead chacha20-poly1305.",
    );
  }
  return opts.aes ? BPF_GCM_OBJECT_PATH : BPF_OBJECT_PATH;
}

/**
 * Why this machine cannot seal AES-128-GCM in the data path, or undefined if it can:
 * that needs the pdm_gcm.bpf.o build (clang 15+) and the kernel's BPF crypto kfuncs
 * (Linux 6.10+).
 */
export function aesDataPathUnavailable(): string | undefined {
  if (!existsSync(BPF_GCM_OBJECT_PATH))
    return "bpf/build/pdm_gcm.bpf.o is not built (it needs clang 15 or later: bash scripts/setup.sh)";
  let release = "";
  try {
    release = readFileSync("/proc/sys/kernel/osrelease", "utf8");
  } catch {
    return "cannot read the kernel's version";
  }
  const [major = 0, minor = 0] = (/^(\d+)\.(\d+)/.exec(release) ?? []).slice(1).map(Number);
  if (major < 6 || (major === 6 && minor < 10))
    return `Linux ${major}.${minor} has no BPF crypto kfuncs (6.10 or later)`;
  return undefined;
}
