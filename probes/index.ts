// The host agent's public surface: load/attach/detach the eBPF data path, read its
// maps and events. Nothing else in probes/ is imported from outside.

export * from "./abi.ts";
export { BpfError } from "./errors.ts";
export { attach, detach, attachedInterfaces, readAttachState, encodeConfig, pinDir, stateDir, TC_HANDLE, TC_PRIORITY, PIN } from "./datapath.ts";
export type { AttachOptions, AttachState, DetachReport } from "./datapath.ts";
export { readStatus, readCounters, readFlows, sumCounters } from "./status.ts";
export type { FlowStatus, InterfaceStatus } from "./status.ts";
export { decodeEvent, eventOption, eventToRecord, eventKtimeNs, openEventStream } from "./events.ts";
export type { KernelEvent, EventStream } from "./events.ts";
export { nativeBpf, bpfObjectPath, aesDataPathUnavailable, NATIVE_PATH, BPF_OBJECT_PATH, BPF_GCM_OBJECT_PATH } from "./native.ts";
export type { NativeBpf } from "./native.ts";
export { interfaceInfo, currentNetns, isBpffs, ensureBpffs } from "./system.ts";
export { openLiveCapture } from "./pcap-source.ts";
export type { LiveCapture, LiveCaptureOptions } from "./pcap-source.ts";
export { packageRoot } from "./package-root.ts";
export { encodeFlowKey, installFlowKey } from "./flow-keys.ts";
export { KeyInstaller, oneGeneration, type KeyInstallerMaps, type KeyInstallerStats, type Stk, type StkSource } from "./key-installer.ts";
export { FingerprintSet, SealingKeyMemory, LIVE_GENERATIONS } from "./sealing-key-memory.ts";
