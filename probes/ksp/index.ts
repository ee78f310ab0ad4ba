// The Key Selection Protocol (groups.md 2): members that share a connectivity key set
// agree on measurement key generations among themselves, with no server.

export {
  aesCmac,
  aesBlock,
  ieee8021xKdf,
  deriveIck,
  deriveKek,
  wrapKey,
  unwrapKey,
  sakOf,
  kspSecrets,
} from "./crypto.ts";
export {
  decodeMessage,
  encodeMessage,
  encodeUnsigned,
  pseudoHeader,
  KSP_VERSION,
  ALGORITHM_AGILITY,
  MAX_MESSAGE_BYTES,
  ICV_LENGTH,
} from "./mkpdu.ts";
export type { KspMessage, PeerEntry, KeyUse, KeyId, DecodeFailure, Decoded } from "./mkpdu.ts";
export { KspParticipant, KSP_TIMER_DEFAULTS, memoryKnStore } from "./participant.ts";
export type { KspTimers, KnMemory, KspParticipantOptions, KspGeneration, KspEvent, KspRefusal } from "./participant.ts";
export { KspGuard, DROP_REASONS, DEFAULT_RATE_LIMIT } from "./guard.ts";
export type { DropReason, Route, ConnectivityKeys, RateLimit } from "./guard.ts";
export { KspUdpTransport, KSP_PORT, KSP_GROUP } from "./transport.ts";
export type { KspTransportOptions } from "./transport.ts";
export { readConnectivityKeys, writeConnectivityKeys, fileKnMemory, KN_MEMORY_LIMIT } from "./key-files.ts";
export { KspMember } from "./member.ts";
export type { KspMemberOptions } from "./member.ts";
