// Attach, detach and inspect the PDM data path on one interface (datapath.md
// "Loading and lifetime").
//
// attach: load bpf/build/pdm.bpf.o with the config filled in, pin its maps and
// programs under /sys/fs/bpf/pdm/<ifname>/, attach both programs with tc clsact, make
// route MTU room, and write down everything it changed in /run/pdm/<ifname>.json.
// detach: undo exactly what that file lists, nothing more. One cleanup path serves
// a failed attach, `detach`, and a second `attach` on the same interface.

import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { execFileSync } from "node:child_process";
import { DRAFT15_DEFAULT_TYPE, PDM_OPTION_TYPE, parseIpv6Address, UsageError } from "../../pdm/index.ts";
import {
  CONFIG,
  isProtectedLayout,
  isWideLayout,
  PDM_CFG_EVENTS,
  PDM_CFG_FIRST_PSN,
  PDM_CFG_NO_STAMP,
  PDM_CFG_STRIP,
  PDM_HDR_LEN,
  PDM_LAYOUT,
  PDM_MAP,
  PDM_MAX_PORTS,
  PDM_MAX_PREFIXES,
  PDM_PIN_ROOT,
  PDM_AEAD,
  PDM_PROG,
  PREFIX,
  type KernelLayout,
} from "./abi.ts";
import { BpfError, explainNativeError } from "./errors.ts";
import { makeMtuRoom, undoMtuRoom, type RouteChange } from "./mtu-room.ts";
import { readGsoMaxSegs, readOffload, setGsoMaxSegs, setOffload } from "./offload.ts";
import { bpfObjectPath, nativeBpf } from "./native.ts";
import { currentNetns, ensureBpffs, interfaceInfo, requireRoot, type InterfaceInfo } from "./system.ts";

/** tc filter identity of our programs on both hooks. */
export const TC_HANDLE = 0x5044; // "PD"
export const TC_PRIORITY = 0x5044;

const EMPTY_PROGRAM = "pdm_empty";

/** Pinned objects in each interface's directory. */
export const PIN = {
  flows: PDM_MAP.flows,
  counters: PDM_MAP.counters,
  globalPointers: PDM_MAP.globalPointers,
  events: PDM_MAP.events,
  keys: PDM_MAP.keys,
  peerKeys: PDM_MAP.peerKeys,
  keyNeeds: PDM_MAP.keyNeeds,
  /** AES-128-GCM data paths only: the keys' AES contexts, and the program that installs one. */
  gcmKeys: PDM_MAP.gcmKeys,
  gcmInstall: PDM_PROG.gcmInstall,
  sweep: PDM_MAP.sweep,
  /** The protected layout's tail calls. Pinned because the kernel empties a program
   * array once no file descriptor or pin holds it. */
  sealCall: "pdm_seal_call",
  openCall: "pdm_open_call",
  readCall: "pdm_read_call",
  config: "pdm_config",
  egress: PDM_PROG.egress,
  ingress: PDM_PROG.ingress,
} as const;

export interface AttachOptions {
  ifname: string;
  /** The layout stamped on egress. With "v2-protected", keys come from a KeyInstaller (probes/kernel-keys/key-installer.ts). */
  layout: KernelLayout;
  /** Stamp only flows with one of these ports (either end); empty = any. */
  ports?: number[];
  /** Stamp only flows whose remote address is in one of these prefixes; empty = any. */
  prefixes?: string[];
  /** Remove the header on ingress after reading it. */
  strip?: boolean;
  /** Emit one ring-buffer record per PDM packet (needed by `capture --source ebpf`). */
  events?: boolean;
  /** Read only: do not stamp egress packets. */
  readOnly?: boolean;
  /** Rotate Kri after this many packets (v2 layouts); default the LFSR period. */
  maxPacketsPerKri?: number;
  /** Also rotate Kri once it has been in use this long, in ms (v2 layouts; the rotation policy's age). */
  maxKriAgeMs?: number;
  /** Forget a flow (and its keys) after this many seconds without a packet; 0 = never. Default 300. */
  flowTimeoutS?: number;
  /** Lower route MTUs by the header size (default true). */
  mtuRoom?: boolean;
  /** Turn GSO/TSO off for per-segment stamps (default: leave offload as it is). */
  noOffload?: boolean;
  /** Benchmarks only: attach a program that does nothing (the cost of the tc hook alone). */
  emptyProgram?: boolean;
  /** Protected layout: the deployment's AEAD (default AES-128-GCM, which needs the pdm_gcm.bpf.o build and Linux 6.10+). */
  aead?: keyof typeof PDM_AEAD;
  /** Layout E's option type, stamped and read (default 0x1E until IANA assigns one). */
  draft15Type?: number;
  /** Tests of the sequence numbers' wrap: every new flow's first PSNTP (default random). */
  firstPsn?: number;
}

/**
 * The names users give a layout (`pdm attach --layout`, the service config): short
 * ones, the analyzer's, and the later drafts' by the draft numbers that define them.
 */
export const LAYOUT_NAMES: Record<string, KernelLayout> = {
  v1: "rfc8250",
  rfc8250: "rfc8250",
  v2: "v2-clear",
  "v2-clear": "v2-clear",
  "v2-protected": "v2-protected",
  "draft-09": "v2-draft09",
  "draft-14": "v2-draft09",
  "v2-draft09": "v2-draft09",
  "draft-15": "v2-draft15",
  "v2-draft15": "v2-draft15",
  "draft-15-protected": "v2-draft15-protected",
  "v2-draft15-protected": "v2-draft15-protected",
};

/** What attach changed, so that detach can undo exactly that. */
export interface AttachState {
  version: 1;
  ifname: string;
  ifindex: number;
  netns: string;
  attachedAt: string;
  options: AttachOptions;
  createdQdisc: boolean;
  progIds: { egress: number; ingress: number };
  routes: RouteChange[];
  /** Offload settings before attach turned them off, to restore on detach. */
  offloadBefore?: Record<string, boolean>;
  gsoMaxSegsBefore?: number;
}

/** Seconds without a packet after which the kernel forgets a flow (attach --flow-timeout). */
export const DEFAULT_FLOW_TIMEOUT_S = 300;

export const stateDir = (): string => process.env.PDM_STATE_DIR ?? "/run/pdm";
export const pinDir = (ifname: string): string => join(process.env.PDM_PIN_ROOT ?? PDM_PIN_ROOT, ifname);
const statePath = (ifname: string): string => join(stateDir(), `${ifname}.json`);

export function readAttachState(ifname: string): AttachState | undefined {
  try {
    return JSON.parse(readFileSync(statePath(ifname), "utf8")) as AttachState;
  } catch {
    return undefined;
  }
}

/** Interfaces with an attach state file (any network namespace). */
export function attachedInterfaces(): string[] {
  try {
    return readdirSync(stateDir())
      .filter((f) => f.endsWith(".json"))
      .map((f) => f.slice(0, -5))
      .sort();
  } catch {
    return [];
  }
}

/** The bytes of struct pdm_config for these options. */
export function encodeConfig(options: AttachOptions, l2Len: number): Buffer {
  const b = Buffer.alloc(CONFIG.size);
  const ports = options.ports ?? [];
  const prefixes = options.prefixes ?? [];
  if (ports.length > PDM_MAX_PORTS)
    throw new UsageError(`at most ${PDM_MAX_PORTS} ports can be selected, got ${ports.length}`);
  if (prefixes.length > PDM_MAX_PREFIXES) {
    throw new UsageError(`at most ${PDM_MAX_PREFIXES} prefixes can be selected, got ${prefixes.length}`);
  }
  let flags = 0;
  if (options.strip) flags |= PDM_CFG_STRIP;
  if (options.events ?? true) flags |= PDM_CFG_EVENTS;
  if (options.readOnly) flags |= PDM_CFG_NO_STAMP;
  if (options.firstPsn !== undefined) {
    const max = isWideLayout(options.layout) ? 0xffff_ffff : 0xffff;
    if (!Number.isInteger(options.firstPsn) || options.firstPsn < 0 || options.firstPsn > max)
      throw new UsageError(`the first PSNTP must be 0..${max} for layout ${options.layout}, got ${options.firstPsn}`);
    flags |= PDM_CFG_FIRST_PSN;
    b.writeUInt32LE(options.firstPsn, CONFIG.offset("first_psn"));
  }
  const e = options.draft15Type ?? DRAFT15_DEFAULT_TYPE;
  // Types whose top bits are 00 (skip if unknown), and none that already means something here.
  if (!Number.isInteger(e) || e < 2 || e > 0x3f || e === PDM_OPTION_TYPE)
    throw new UsageError(
      `layout E's option type must be 0x02..0x3F (skipped by hosts that do not know it) and not 0x0F, got ${e}`,
    );
  b.writeUInt32LE(e, CONFIG.offset("draft15_type"));
  b.writeUInt32LE(PDM_LAYOUT[options.layout], CONFIG.offset("layout"));
  b.writeUInt32LE(flags, CONFIG.offset("flags"));
  b.writeUInt32LE(l2Len, CONFIG.offset("l2_len"));
  const perKri = options.maxPacketsPerKri ?? 0;
  if (!Number.isInteger(perKri) || perKri < 0 || perKri > 32767) {
    throw new UsageError(`packets per Kri must be 1..32767, got ${perKri}`);
  }
  b.writeUInt32LE(perKri, CONFIG.offset("max_packets_per_kri"));
  const maxAge = options.maxKriAgeMs ?? 0;
  if (!Number.isInteger(maxAge) || maxAge < 0 || maxAge > 0xffff_ffff)
    throw new UsageError(`Kri age must be a whole number of ms, got ${maxAge}`);
  b.writeUInt32LE(maxAge, CONFIG.offset("max_kri_age_ms"));
  const timeout = options.flowTimeoutS ?? DEFAULT_FLOW_TIMEOUT_S;
  if (!Number.isInteger(timeout) || timeout < 0 || timeout > 0xffff_ffff)
    throw new UsageError(`the flow timeout must be a whole number of seconds, got ${timeout}`);
  b.writeUInt32LE(timeout, CONFIG.offset("flow_timeout_s"));
  ports.forEach((p, i) => {
    if (!Number.isInteger(p) || p < 1 || p > 65535) throw new UsageError(`port must be 1..65535, got ${p}`);
    b.writeUInt16LE(p, CONFIG.offset("ports") + 2 * i);
  });
  b.writeUInt32LE(options.aead ? PDM_AEAD[options.aead] : 0, CONFIG.offset("aead"));
  b.writeUInt32LE(ports.length, CONFIG.offset("n_ports"));
  b.writeUInt32LE(prefixes.length, CONFIG.offset("n_prefixes"));
  prefixes.forEach((text, i) => {
    const [addr = "", lenText = "128"] = text.split("/");
    const bytes = parseIpv6Address(addr); // throws a UsageError naming the text
    const len = Number(lenText);
    if (!Number.isInteger(len) || len < 0 || len > 128) {
      throw new UsageError(`"${text}" is not an IPv6 prefix (for example fd00::/8)`);
    }
    const at = CONFIG.offset("prefixes") + PREFIX.size * i;
    b.set(bytes, at + PREFIX.offset("addr"));
    b.writeUInt8(len, at + PREFIX.offset("len"));
  });
  return b;
}

/** Loads, pins and attaches. A second attach on the same interface replaces the first. */
export function attach(options: AttachOptions): AttachState {
  requireRoot("pdm attach");
  if (isProtectedLayout(options.layout)) options = { ...options, aead: options.aead ?? "aes-128-gcm" };
  const aes = isProtectedLayout(options.layout) && options.aead === "aes-128-gcm";
  ensureBpffs();
  const iface = interfaceInfo(options.ifname);
  if (readAttachState(iface.name) || existsSync(pinDir(iface.name))) detach(iface.name);

  const native = nativeBpf();
  const dir = pinDir(iface.name);
  const state: AttachState = {
    version: 1,
    ifname: iface.name,
    ifindex: iface.ifindex,
    netns: currentNetns(),
    attachedAt: new Date().toISOString(),
    options,
    createdQdisc: false,
    progIds: { egress: 0, ingress: 0 },
    routes: [],
  };
  const config = encodeConfig(options, iface.l2Len);
  let object: number | undefined;
  try {
    object = native.openObject(bpfObjectPath({ aes }));
    native.setInitialValue(object, ".rodata", config);
    try {
      native.loadObject(object);
    } catch (err) {
      const e = explainNativeError("loading the eBPF programs", err);
      if (aes && /bpf_crypto|kfunc|ksym/i.test(String((err as Error)?.message ?? err))) {
        throw new BpfError(
          `This kernel has no BPF crypto kfuncs (Linux 6.10 or later), which AES-128-GCM in the data path needs: attach with --aead chacha20-poly1305. (${e.message})`,
          { cause: err },
        );
      }
      throw e;
    }
    mkdirSync(dir, { recursive: true });
    for (const name of [
      PIN.flows,
      PIN.counters,
      PIN.globalPointers,
      PIN.events,
      PIN.keys,
      PIN.peerKeys,
      PIN.keyNeeds,
      PIN.sealCall,
      PIN.openCall,
      PIN.readCall,
      PIN.sweep,
    ]) {
      native.objPin(native.mapFd(object, name), join(dir, name));
    }
    native.objPin(native.mapFd(object, ".rodata"), join(dir, PIN.config));
    if (aes) {
      native.objPin(native.mapFd(object, PIN.gcmKeys), join(dir, PIN.gcmKeys));
      native.objPin(native.programFd(object, PIN.gcmInstall), join(dir, PIN.gcmInstall));
    }
    const egressFd = native.programFd(object, options.emptyProgram ? EMPTY_PROGRAM : PIN.egress);
    const ingressFd = native.programFd(object, options.emptyProgram ? EMPTY_PROGRAM : PIN.ingress);
    native.objPin(egressFd, join(dir, PIN.egress));
    native.objPin(ingressFd, join(dir, PIN.ingress));
    // Write the state before changing the interface, so a crash midway can be undone.
    writeState(state);
    try {
      const e = native.tcAttach(iface.ifindex, false, egressFd, TC_HANDLE, TC_PRIORITY);
      state.createdQdisc = e.createdQdisc;
      state.progIds.egress = e.progId;
      writeState(state);
      const i = native.tcAttach(iface.ifindex, true, ingressFd, TC_HANDLE, TC_PRIORITY);
      state.progIds.ingress = i.progId;
    } catch (err) {
      throw explainNativeError(`attaching to ${iface.name} with tc`, err);
    }
    writeState(state);
    if (options.mtuRoom ?? true) {
      state.routes = makeMtuRoom(iface.name, iface.mtu, PDM_HDR_LEN[options.layout]);
      writeState(state);
    }
    if (options.noOffload) {
      const before = readOffload(iface.name);
      state.offloadBefore = before;
      state.gsoMaxSegsBefore = readGsoMaxSegs(iface.name);
      writeState(state);
      setOffload(iface.name, Object.fromEntries(Object.keys(before).map((f) => [f, false])));
      setGsoMaxSegs(iface.name, 1);
    }
    return state;
  } catch (err) {
    try {
      detach(iface.name);
    } catch {
      // the original error is the one worth reporting
    }
    if (err instanceof BpfError || err instanceof UsageError) throw err;
    throw explainNativeError(`attaching to ${iface.name}`, err);
  } finally {
    if (object !== undefined) native.closeObject(object);
  }
}

function writeState(state: AttachState): void {
  mkdirSync(stateDir(), { recursive: true });
  writeFileSync(statePath(state.ifname), JSON.stringify(state, null, 2) + "\n");
}

export interface DetachReport {
  ifname: string;
  filtersRemoved: number;
  qdiscRemoved: boolean;
  routesRestored: number;
  offloadRestored: boolean;
  pinsRemoved: boolean;
  problems: string[];
}

/**
 * Undoes an attach: tc filters (only if they still run our programs), the clsact
 * qdisc (only if attach created it and nothing else uses it), route MTUs, pins, state.
 * `force` also cleans up after an attach made in a network namespace that is gone.
 */
export function detach(ifname: string, opts: { force?: boolean } = {}): DetachReport {
  requireRoot("pdm detach");
  const state = readAttachState(ifname);
  const report: DetachReport = {
    ifname,
    filtersRemoved: 0,
    qdiscRemoved: false,
    routesRestored: 0,
    offloadRestored: false,
    pinsRemoved: false,
    problems: [],
  };
  const netns = currentNetns();
  if (state && state.netns !== netns && !opts.force) {
    throw new BpfError(
      `${ifname} was attached in another network namespace (${state.netns}, this is ${netns}): detach it there, or use --force if that namespace is gone.`,
    );
  }
  const dir = pinDir(ifname);
  if (!state && !existsSync(dir)) {
    throw new BpfError(`Nothing is attached to ${ifname} (no ${statePath(ifname)} and no ${dir}).`);
  }
  let iface: InterfaceInfo | undefined;
  try {
    iface = interfaceInfo(ifname);
  } catch {
    report.problems.push(`interface ${ifname} is gone; its tc filters went with it`);
  }
  if (iface && (!state || state.netns === netns)) {
    const native = nativeBpf();
    for (const ingress of [false, true]) {
      const attachedId = native.tcQuery(iface.ifindex, ingress, TC_HANDLE, TC_PRIORITY);
      const ours = state ? (ingress ? state.progIds.ingress : state.progIds.egress) : attachedId;
      if (attachedId && (attachedId === ours || opts.force)) {
        if (native.tcDetach(iface.ifindex, ingress, TC_HANDLE, TC_PRIORITY)) report.filtersRemoved += 1;
      } else if (attachedId) {
        report.problems.push(
          `the ${ingress ? "ingress" : "egress"} filter at our handle runs another program (id ${attachedId}): left alone`,
        );
      }
    }
    if (state?.createdQdisc && !otherFilters(ifname)) {
      native.tcDestroyQdisc(iface.ifindex);
      report.qdiscRemoved = true;
    }
    if (state?.routes.length) {
      const failures = undoMtuRoom(state.routes);
      report.routesRestored = state.routes.length - failures.length;
      report.problems.push(...failures);
    }
    if (state?.offloadBefore) {
      try {
        if (state.gsoMaxSegsBefore !== undefined) setGsoMaxSegs(ifname, state.gsoMaxSegsBefore);
        setOffload(ifname, state.offloadBefore);
        report.offloadRestored = true;
      } catch (err) {
        report.problems.push((err as Error).message);
      }
    }
  }
  if (existsSync(dir)) {
    rmSync(dir, { recursive: true, force: true });
    report.pinsRemoved = true;
  }
  rmSync(statePath(ifname), { force: true });
  return report;
}

/** True if someone else's tc filters sit on the clsact qdisc, which then must stay. */
function otherFilters(ifname: string): boolean {
  for (const hook of ["ingress", "egress"]) {
    try {
      const out = execFileSync("tc", ["-j", "filter", "show", "dev", ifname, hook], {
        encoding: "utf8",
        stdio: ["ignore", "pipe", "ignore"],
      });
      const filters = JSON.parse(out.trim() || "[]") as unknown[];
      if (filters.length > 0) return true;
    } catch {
      return true; // cannot tell: keep the qdisc
    }
  }
  return false;
}
