// The lab: hosts in network namespaces on fd00::/8 addresses it makes and removes, the
// user-space delay bridge or impaired hub between them, and agents deployed on loopback. The demo, the
// tests and the benchmarks all run here. Only this file is imported from outside lab/.

export { Lab, listNamespaces, type LabOptions, type LabProcess, type RunResult } from "./lab.ts";
export {
  Topology,
  ROOT,
  PDM_BIN,
  datapathSkipReason,
  gcmDatapathSkipReason,
  type Host,
  type RouterOptions,
} from "./two-hosts.ts";
export { startDelayBridge, type DelayBridge, type DelayBridgeOptions } from "./delay-bridge.ts";
export {
  startImpairedHub,
  udpOffsetOf,
  fixUdpChecksum,
  type ImpairedHub,
  type ImpairedHubOptions,
  type ImpairedHubStats,
} from "./impaired-hub.ts";
export { Deployment, rawConnect, eventually, type CertFiles } from "./deployment.ts";
export { GroupLan, LAN_IF, type LanHost } from "./group-lan.ts";
export { KspBus, seededRandom, type BusMember, type BusOptions } from "./ksp-bus.ts";
