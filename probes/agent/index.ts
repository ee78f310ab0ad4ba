// The registration agent's public surface (keys.md): CA and certificates, config,
// the Agent, reader key stores and the KeySink the kernel data path plugs into.

export { Agent } from "./agent.ts";
export { fetchKeyLog } from "./key-export.ts";
export type { AgentStatus, MemberStatus } from "./agent.ts";
export {
  initCa,
  issueCertificate,
  caFiles,
  certificateIdentity,
  certificateSignature,
  ROLE_URI_PREFIX,
  RELEASE_URI_PREFIX,
} from "./certs.ts";
export type { IssueOptions, CaInitOptions, CertificateIdentity } from "./certs.ts";
export { readAgentConfig, parseAgentConfig, AGENT_ROLES, CONFIG_DEFAULTS, GROUP_DEFAULTS } from "./config.ts";
export type { AgentConfig, AgentRole, Endpoint, GroupConfig } from "./config.ts";
export {
  Channel,
  StreamChannel,
  memoryChannelPair,
  encodeFrame,
  FrameDecoder,
  MAX_FRAME_BYTES,
  GROUP_FRAME_BYTES,
} from "./channel.ts";
export { GroupMaster } from "./group-master.ts";
export type { GroupMasterOptions, GroupMasterStats, GroupStatus } from "./group-master.ts";
export { followGroupMaster, checkMembership } from "./group-member.ts";
export type { GroupMemberOptions } from "./group-member.ts";
export { releaseDigest } from "./release.ts";
export { RegistrationError, ConfigError } from "./errors.ts";
export type { RefusalCode } from "./errors.ts";
export { grantFor, lifetimeMs, maxKriAgeMs, rotationFor } from "./generation.ts";
export type { Generation } from "./generation.ts";
export {
  DEFAULT_OFFER,
  encapsulateSharedSecret,
  decapsulateSharedSecret,
  freshRecipientKey,
  cipherSuite,
} from "./hpke.ts";
export { streamLogger, memoryLogger, silentLogger } from "./log.ts";
export type { Logger, LogFields } from "./log.ts";
export { parseMessage, messageToJson, ROLES, PROTOCOL_VERSION } from "./messages.ts";
export type { Message, MessageOf, Role, RotationAttributes, SecretGrant } from "./messages.ts";
export { ProvisioningService, followWriter } from "./provisioning.ts";
export type { ReaderPeer } from "./provisioning.ts";
export { ReaderKeyStore } from "./reader-keys.ts";
export type { KeySink, ReaderGeneration } from "./reader-keys.ts";
export { RegistrationServer, register } from "./registration.ts";
export { parseEndpoint, verifyPeer, loadTlsMaterial, clientOptions } from "./tls.ts";
export type { TlsFiles } from "./tls.ts";
export { readerStkSource, KRI_RUNNING_OUT } from "./kernel-keys.ts";
