// Keys into the kernel (protected layout): per-flow keys in the data path's maps, the
// installer that answers the kernel's key requests from a key source, and its memory of
// the sealing keys it gave (so that no nonce repeats). Only this file is imported from
// outside kernel-keys/.

export { encodeFlowKey, installFlowKey } from "./flow-keys.ts";
export {
  KeyInstaller,
  oneGeneration,
  type KeyInstallerMaps,
  type KeyInstallerStats,
  type Stk,
  type StkSource,
} from "./key-installer.ts";
export { FingerprintSet, SealingKeyMemory, LIVE_GENERATIONS } from "./sealing-key-memory.ts";
