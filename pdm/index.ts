// The PDM protocol core: everything the agent, the analyzer and the CLI share.
// Pure TypeScript on node:crypto; no native dependency. Only this file is imported
// from outside pdm/.

export * from "./errors.ts";
export * from "./time-encoding.ts";
export * from "./sequence.ts";
export * from "./rotation.ts";
export * from "./option.ts";
export * from "./dest-options.ts";
export * from "./ipv6.ts";
export * from "./address.ts";
export * from "./flow.ts";
export * from "./key-schedule.ts";
export * from "./aead.ts";
export * from "./sealer.ts";
export * from "./key-log.ts";
export * from "./secret-file.ts";
export * from "./key-ring.ts";
export * from "./opener.ts";
export * from "./record.ts";
export * from "./link-layer.ts";
export * from "./captured-packet.ts";
export * from "./hex.ts";
