// The PDM protocol core: everything the agent, the analyzer and the CLI share.
// Pure TypeScript on node:crypto; no native dependency. Only this file is imported
// from outside pdm/.

export { CaptureError, CheckFailed, Interrupted, KeyError, PdmError, UsageError, WireError } from "./errors.ts";
export { decodeDeltaAttoseconds, decodeDeltaNs, encodeAttoseconds, encodeDeltaNs } from "./time-encoding.ts";
export { LFSR_PERIOD, lfsrPositions, lfsrStep, PacketSequence, RandomNumberSequence } from "./sequence.ts";
export {
  CRITICALITY_MAX_AGE_MS,
  MAX_KRI,
  PREVIOUS_KEY_GRACE_NS,
  ReceiverKriTracker,
  SenderRotation,
} from "./rotation.ts";
export {
  AEAD_TAG_LEN,
  decodePdmOption,
  decodeV2Fields,
  decodeV2FieldsInto,
  emptyV2Fields,
  encodePdmOption,
  OPT_DATA_LEN,
  PDM_OPTION_TYPE,
  RFC8250_OFFSET,
  SEALED_PLAINTEXT_LEN,
  V2_OFFSET,
  V2_VERSION_WORD,
} from "./option.ts";
export type {
  Layout,
  PdmOption,
  PdmTimes,
  PdmV1Option,
  PdmV2ClearOption,
  PdmV2Fields,
  PdmV2ProtectedOption,
} from "./option.ts";
export {
  destOptionsHeaderSize,
  encodeDestOptionsHeader,
  findPdmOption,
  NEXT_HEADER_DEST_OPTS,
} from "./dest-options.ts";
export { emptyIpv6Packet, parseIpv6, parseIpv6Into, PROTO } from "./ipv6.ts";
export type { Ipv6Packet } from "./ipv6.ts";
export { addressClass, formatIpv6Address, GlobalPointers, parseIpv6Address } from "./address.ts";
export {
  conversationPorts,
  echoAnswerType,
  echoWord,
  endpointPorts,
  flowKey,
  flowKeyPorts,
  formatFlow,
  ICMPV6_ECHO_REPLY,
  ICMPV6_ECHO_REQUEST,
  IPPROTO_ICMPV6,
  IPPROTO_TCP,
  IPPROTO_UDP,
  isEchoReply,
  isEchoType,
  reverseFlow,
  transportName,
} from "./flow.ts";
export type { FlowTuple } from "./flow.ts";
export {
  AeadId,
  aeadKeyLength,
  DEFAULT_SUITE,
  deriveClientSecret,
  deriveKeyId,
  deriveStk,
  hex4,
  kdfDigest,
  KdfId,
  KemId,
} from "./key-schedule.ts";
export type { Suite } from "./key-schedule.ts";
export { nodeCryptoAead, openProtectedOption, protectedNonce, sealProtectedOption } from "./aead.ts";
export type { AeadBackend, KeyOpener } from "./aead.ts";
export { ProtectedSealer } from "./sealer.ts";
export {
  GROUP_SCRYPT,
  GROUP_SALT_LENGTH,
  GROUP_SEED_LENGTH,
  deriveGroupSecretKey,
  groupMasterKey,
  groupSecretKeyLength,
  memberOrderKey,
  orderMembers,
} from "./group-key.ts";
export type { GroupKeyInputs } from "./group-key.ts";
export { formatKeyLog, KEY_LOG_LIMITS, parseKeyLog, readKeyLog, writeKeyLog } from "./key-log.ts";
export type { KeyLogEntry } from "./key-log.ts";
export { writeSecretFile } from "./secret-file.ts";
export { KeyRing } from "./key-ring.ts";
export { ProtectedOpener } from "./opener.ts";
export { emptyPdmRecord } from "./record.ts";
export type { PdmRecord } from "./record.ts";
export { ipv6Offset, LINKTYPE, linkTypeName, SUPPORTED_LINKTYPES } from "./link-layer.ts";
export type { CapturedPacket } from "./captured-packet.ts";
export { hex } from "./hex.ts";
export { packageRoot } from "./package-root.ts";
export {
  decodeDraftOption,
  hasWidePsn,
  DRAFT05_OFFSET,
  DRAFT09_OFFSET,
  DRAFT15_DEFAULT_TYPE,
  DRAFT15_SEALED_LEN,
  DRAFT15_TAG_LEN,
  DRAFT_OPT_DATA_LEN,
  draftLayoutOf,
  encodeDraftOption,
  EPOCH_MASK,
  keyIndexCandidates,
  openDraft15,
  sealDraft15,
} from "./draft-layouts.ts";
export type {
  AnyLayout,
  AnyPdmOption,
  DraftClearOption,
  DraftDecodeOptions,
  DraftFields,
  DraftLayout,
  Draft15ProtectedOption,
  DraftOption,
} from "./draft-layouts.ts";
export { Draft15Opener } from "./draft15-opener.ts";
export type { Draft15Outcome } from "./draft15-opener.ts";
