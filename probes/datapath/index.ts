// The kernel data path, controlled from user space: the libbpf loader, the C/TS ABI
// mirror, attach and detach (with the MTU room and offload settings they make), the
// status of an attached interface. Only this file is imported from outside datapath/.

export {
  ALL_CONSTANTS,
  ALL_STRUCTS,
  EVENT,
  FLOW_KEY,
  FLOW_KEYS,
  FLOW_STATE,
  GCM_INSTALL_ARGS,
  GCM_KEY_ID,
  KEY_NEED,
  PDM_AEAD_KEY_MAX,
  PDM_EV,
  PDM_EVF_GSO,
  PDM_EVICT_TARGET,
  PDM_FLOW_HAS_RECEIVED,
  PDM_FLOW_HAS_SENT,
  PDM_FLOWS_MAX,
  PDM_GCM,
  PDM_KEY_SLOTS,
  PDM_LAYOUT,
  isWideLayout,
  isProtectedLayout,
  PDM_MAP,
  PDM_NEED,
  PDM_NEEDF_OPTION,
  PDM_PROG,
  PDM_PROTECTED_OPTION_LEN,
} from "./abi.ts";
export type { CounterName, KernelLayout } from "./abi.ts";
export { BpfError, explainNativeError } from "./errors.ts";
export {
  attach,
  detach,
  attachedInterfaces,
  readAttachState,
  encodeConfig,
  pinDir,
  stateDir,
  TC_HANDLE,
  TC_PRIORITY,
  PIN,
  LAYOUT_NAMES,
} from "./attach.ts";
export type { AttachOptions, AttachState, DetachReport } from "./attach.ts";
export { readStatus, readCounters, readFlows, sumCounters } from "./status.ts";
export type { FlowStatus, InterfaceStatus } from "./status.ts";
export {
  nativeBpf,
  bpfObjectPath,
  aesDataPathUnavailable,
  NATIVE_PATH,
  BPF_OBJECT_PATH,
  BPF_GCM_OBJECT_PATH,
} from "./native.ts";
export type { NativeBpf, NativeRingBuffer } from "./native.ts";
export { interfaceInfo, currentNetns, isBpffs, ensureBpffs } from "./system.ts";
