// The TypeScript mirror of bpf/include/pdm_abi.h: struct layouts and constants.
//
// Layouts are described once, field by field, and their offsets are computed with
// the C rules (natural alignment, padding to the largest member). test/bpf/abi.test.ts
// compiles the C header with gcc and checks every size, offset and constant here, so
// the two cannot drift apart unnoticed.

import {
  AEAD_TAG_LEN,
  DRAFT09_OFFSET,
  DRAFT15_DEFAULT_TYPE,
  DRAFT15_SEALED_LEN,
  DRAFT_OPT_DATA_LEN,
  EPOCH_MASK,
  OPT_DATA_LEN,
  PDM_OPTION_TYPE,
  RFC8250_OFFSET,
  SEALED_PLAINTEXT_LEN,
  V2_OFFSET,
  V2_VERSION_WORD,
} from "../../pdm/index.ts";
export type Scalar = "u8" | "u16" | "u32" | "u64";
const SCALAR_SIZE: Record<Scalar, number> = { u8: 1, u16: 2, u32: 4, u64: 8 };

export interface FieldLayout {
  name: string;
  offset: number;
  /** Size of one element. */
  size: number;
  count: number;
  type: Scalar | StructLayout;
}

export class StructLayout {
  readonly fields: readonly FieldLayout[];
  readonly size: number;
  readonly align: number;
  private readonly byName: Map<string, FieldLayout>;

  constructor(
    readonly name: string,
    spec: ReadonlyArray<readonly [name: string, type: Scalar | StructLayout, count?: number]>,
  ) {
    const fields: FieldLayout[] = [];
    let offset = 0;
    let align = 1;
    for (const [fieldName, type, count = 1] of spec) {
      const size = typeof type === "string" ? SCALAR_SIZE[type] : type.size;
      const a = typeof type === "string" ? size : type.align;
      offset = Math.ceil(offset / a) * a;
      fields.push({ name: fieldName, offset, size, count, type });
      offset += size * count;
      align = Math.max(align, a);
    }
    this.size = Math.ceil(offset / align) * align;
    this.align = align;
    this.fields = fields;
    this.byName = new Map(fields.map((f) => [f.name, f]));
  }

  field(name: string): FieldLayout {
    const f = this.byName.get(name);
    if (!f) throw new Error(`${this.name} has no field ${name}`);
    return f;
  }

  offset(name: string): number {
    return this.field(name).offset;
  }
}

export const PDM_LAYOUT = {
  rfc8250: 1,
  "v2-clear": 2,
  "v2-protected": 3,
  /** C/D, drafts -09 to -14 (the current draft), 32-bit sequence numbers. */
  "v2-draft09": 4,
  /** E in the clear, the -15 text: C/D's fields under an option type of its own. */
  "v2-draft15": 5,
  /** E protected: sealed under the flow's key of the sender's key index (its low 12 bits the Epoch). */
  "v2-draft15-protected": 6,
} as const;
export type KernelLayout = keyof typeof PDM_LAYOUT;
export const PDM_HDR_LEN = {
  rfc8250: 16,
  "v2-clear": 24,
  "v2-protected": 40,
  "v2-draft09": 32,
  "v2-draft15": 32,
  "v2-draft15-protected": 48,
} as const;
/** The later drafts' layouts, whose PSNTP and PSNLR are 32 bits. */
export const isWideLayout = (layout: KernelLayout): boolean =>
  layout === "v2-draft09" || layout === "v2-draft15" || layout === "v2-draft15-protected";
/** The layouts sealed under per-flow keys that a reader agent installs. */
export const isProtectedLayout = (layout: KernelLayout): boolean =>
  layout === "v2-protected" || layout === "v2-draft15-protected";

export const PDM_CFG_STRIP = 1 << 0;
export const PDM_CFG_EVENTS = 1 << 1;
export const PDM_CFG_NO_STAMP = 1 << 2;
export const PDM_CFG_FIRST_PSN = 1 << 3;
export const PDM_MAX_PORTS = 8;
export const PDM_MAX_PREFIXES = 4;
export const PDM_FLOW_HAS_SENT = 1 << 0;
export const PDM_FLOW_HAS_RECEIVED = 1 << 1;

export const PDM_EV = { stamped: 1, read: 2, "new-flow": 3, rotated: 4 } as const;
export const PDM_EVF_GSO = 1 << 0;
export const PDM_GP_LINK_LOCAL = 0;
export const PDM_GP_GLOBAL = 1;

export const PDM_PIN_ROOT = "/sys/fs/bpf/pdm";
export const PDM_MAP = {
  flows: "pdm_flows",
  counters: "pdm_counters",
  globalPointers: "pdm_global_ptrs",
  events: "pdm_events",
  keys: "pdm_keys",
  peerKeys: "pdm_peer_keys",
  keyNeeds: "pdm_key_needs",
  /** AES-128-GCM builds only (pdm_gcm.bpf.o): each installed key's AES context and GHASH table. */
  gcmKeys: "pdm_gcm_keys",
  /** The timer that forgets idle flows (pinned: the kernel cancels the timers of a map nobody holds). */
  sweep: "pdm_sweep",
} as const;
export const PDM_PROG = { egress: "pdm_egress", ingress: "pdm_ingress", gcmInstall: "pdm_gcm_install" } as const;
export const PDM_FLOWS_MAX = 65536;
/** A full flow table: the kernel evicts this many idle flows at once (bpf/README.md)... */
export const PDM_EVICT_TARGET = PDM_FLOWS_MAX / 8;
/** ...at most once per this gap... */
export const PDM_EVICT_GAP_NS = 100_000_000;
/** ...and never a flow this host sent on this recently. */
export const PDM_EVICT_KEEP_NS = 1_000_000_000;
export const PDM_IDLE_POWERS = 32;
export const PDM_EVENTS_BYTES = 4 << 20;

export const PREFIX = new StructLayout("pdm_prefix", [
  ["addr", "u8", 16],
  ["len", "u8"],
  ["pad", "u8", 3],
]);

export const CONFIG = new StructLayout("pdm_config", [
  ["layout", "u32"],
  ["flags", "u32"],
  ["l2_len", "u32"],
  ["max_packets_per_kri", "u32"],
  ["ports", "u16", PDM_MAX_PORTS],
  ["n_ports", "u32"],
  ["n_prefixes", "u32"],
  ["prefixes", PREFIX, PDM_MAX_PREFIXES],
  ["aead", "u32"],
  ["max_kri_age_ms", "u32"],
  ["flow_timeout_s", "u32"],
  ["draft15_type", "u32"],
  ["first_psn", "u32"],
]);

export const FLOW_KEY = new StructLayout("pdm_flow_key", [
  ["local", "u8", 16],
  ["remote", "u8", 16],
  ["local_port", "u16"],
  ["remote_port", "u16"],
  ["proto", "u8"],
  ["pad", "u8", 3],
]);

export const FLOW_STATE = new StructLayout("pdm_flow_state", [
  ["lock", "u32"],
  ["psn_next", "u32"],
  ["psn_lr", "u32"],
  ["rn_state", "u16"],
  ["flags", "u16"],
  ["rn_drawn", "u32"],
  ["kri", "u32"],
  ["peer_kri", "u32"],
  ["peer_rn_f", "u16"],
  ["last_rx_scale_dtlr", "u8"],
  ["last_rx_scale_dtls", "u8"],
  ["last_rx_delta_tlr", "u16"],
  ["last_rx_delta_tls", "u16"],
  ["first_ns", "u64"],
  ["last_send_ns", "u64"],
  ["last_recv_ns", "u64"],
  ["tx_packets", "u64"],
  ["rx_packets", "u64"],
  ["gso_repeats", "u64"],
  ["rx_recent", "u32", 8],
  ["rx_recent_next", "u32"],
  ["asked_ms", "u32"],
  ["kri_since_ns", "u64"],
]);

/** HPKE AEAD ids (the protected layout); AES-128-GCM needs the pdm_gcm.bpf.o build. */
export const PDM_AEAD = { "aes-128-gcm": 1, "chacha20-poly1305": 3 } as const;
export const PDM_AEAD_KEY_MAX = 32;

/** Key slots per flow: the STK of Kri k sits in slot k % 3 (previous, current, next). */
export const PDM_KEY_SLOTS = 3;
export const PDM_RX_RECENT = 8;

/** One flow's keys (its own in pdm_keys, its peer's in pdm_peer_keys). */
export const FLOW_KEYS = new StructLayout("pdm_flow_keys", [
  ["kri", "u32", PDM_KEY_SLOTS],
  ["present", "u8", PDM_KEY_SLOTS],
  ["pad", "u8", 5],
  ["key", "u8", PDM_KEY_SLOTS * PDM_AEAD_KEY_MAX],
]);

/** What a pdm_key_needs record asks for (pdm_abi.h): this host's keys, or its peer's. */
export const PDM_NEED = { own: 1, peer: 2 } as const;
/** pdm_key_need.flags: the record carries an option no installed key opened. */
export const PDM_NEEDF_OPTION = 1;
export const PDM_PROTECTED_OPTION_LEN = 36;
export const PDM_KEY_NEEDS_BYTES = 256 << 10;
export const KEY_NEED = new StructLayout("pdm_key_need", [
  ["flow", FLOW_KEY],
  ["kri", "u32"],
  ["kind", "u8"],
  ["icmp_type", "u8"],
  ["flags", "u8"],
  ["pad", "u8"],
  ["option", "u8", PDM_PROTECTED_OPTION_LEN],
]);

/** Counter names in the order of struct pdm_counters. */
export const COUNTER_NAMES = [
  "stamped",
  "read",
  "skipped_exthdr",
  "skipped_mtu",
  "skipped_nokey",
  "auth_fail",
  "replay",
  "malformed",
  "gso_repeat",
  "stripped",
  "skipped_room",
  "flows_created",
  "flows_full",
  "events_lost",
  "flows_expired",
  "rx_nokey",
  "flows_evicted",
] as const;
export type CounterName = (typeof COUNTER_NAMES)[number];
export const COUNTERS = new StructLayout(
  "pdm_counters",
  COUNTER_NAMES.map((n) => [n, "u64"] as const),
);

export const EVENT = new StructLayout("pdm_event", [
  ["ktime_ns", "u64"],
  ["src", "u8", 16],
  ["dst", "u8", 16],
  ["src_port", "u16"],
  ["dst_port", "u16"],
  ["psntp", "u32"],
  ["psnlr", "u32"],
  ["delta_tlr", "u16"],
  ["delta_tls", "u16"],
  ["random_f", "u16"],
  ["scale_dtlr", "u8"],
  ["scale_dtls", "u8"],
  ["global_pointer", "u32"],
  ["kri", "u32"],
  ["ifindex", "u32"],
  ["type", "u8"],
  ["layout", "u8"],
  ["proto", "u8"],
  ["flags", "u8"],
]);

/** Where an AES-128-GCM key sits in pdm_gcm_keys: its flow, side and slot. */
export const PDM_GCM = { own: 0, peer: 1 } as const;
export const GCM_KEY_ID = new StructLayout("pdm_gcm_key_id", [
  ["flow", FLOW_KEY],
  ["side", "u8"],
  ["slot", "u8"],
  ["pad", "u8", 2],
]);
/** The context of pdm_gcm_install (a syscall program): one AES-128-GCM key to install. */
export const GCM_INSTALL_ARGS = new StructLayout("pdm_gcm_install_args", [
  ["id", GCM_KEY_ID],
  ["kri", "u32"],
  ["key", "u8", 16],
  ["h", "u8", 16],
  ["err", "u32"],
]);

/** Every struct the header defines, for the layout check. */
export const ALL_STRUCTS = [
  PREFIX,
  CONFIG,
  FLOW_KEY,
  FLOW_STATE,
  FLOW_KEYS,
  KEY_NEED,
  COUNTERS,
  EVENT,
  GCM_KEY_ID,
  GCM_INSTALL_ARGS,
];

/** Every #define the TypeScript side relies on, by its C name, for the same check. */
export const ALL_CONSTANTS: Record<string, number | string> = {
  PDM_LAYOUT_RFC8250: PDM_LAYOUT.rfc8250,
  PDM_LAYOUT_V2_CLEAR: PDM_LAYOUT["v2-clear"],
  PDM_LAYOUT_V2_PROTECTED: PDM_LAYOUT["v2-protected"],
  PDM_HDR_LEN_RFC8250: PDM_HDR_LEN.rfc8250,
  PDM_HDR_LEN_V2_CLEAR: PDM_HDR_LEN["v2-clear"],
  PDM_HDR_LEN_V2_PROTECTED: PDM_HDR_LEN["v2-protected"],
  PDM_LAYOUT_DRAFT09: PDM_LAYOUT["v2-draft09"],
  PDM_LAYOUT_DRAFT15: PDM_LAYOUT["v2-draft15"],
  PDM_LAYOUT_DRAFT15_PROTECTED: PDM_LAYOUT["v2-draft15-protected"],
  PDM_HDR_LEN_DRAFT15_PROTECTED: PDM_HDR_LEN["v2-draft15-protected"],
  PDM_E_AAD_LEN: DRAFT09_OFFSET.psnLr,
  PDM_E_SEALED: DRAFT09_OFFSET.psnLr,
  PDM_E_SEALED_LEN: DRAFT15_SEALED_LEN,
  PDM_E_TAG: DRAFT09_OFFSET.psnLr + DRAFT15_SEALED_LEN,
  PDM_E_OPTION_LEN: 2 + DRAFT_OPT_DATA_LEN["v2-draft15-protected"],
  PDM_EPOCH_MASK: EPOCH_MASK,
  PDM_HDR_LEN_WIDE: PDM_HDR_LEN["v2-draft09"],
  PDM_DRAFT15_DEFAULT_TYPE: DRAFT15_DEFAULT_TYPE,
  PDM_ODL_WIDE: DRAFT_OPT_DATA_LEN["v2-draft09"],
  PDM_ODL_DRAFT15_PROTECTED: DRAFT_OPT_DATA_LEN["v2-draft15-protected"],
  // Offsets in option data: pdm/ counts them from the Option Type byte, two before.
  PDM_WIDE_VER_EPOCH: DRAFT09_OFFSET.versionEpoch - 2,
  PDM_WIDE_PSNTP: DRAFT09_OFFSET.psnTp - 2,
  PDM_WIDE_PSNLR: DRAFT09_OFFSET.psnLr - 2,
  PDM_WIDE_GP: DRAFT09_OFFSET.globalPointer - 2,
  PDM_WIDE_SCALE_DTLR: DRAFT09_OFFSET.scaleDtlr - 2,
  PDM_WIDE_SCALE_DTLS: DRAFT09_OFFSET.scaleDtls - 2,
  PDM_WIDE_RESERVED: DRAFT09_OFFSET.reserved - 2,
  PDM_WIDE_DTLR: DRAFT09_OFFSET.deltaTlr - 2,
  PDM_WIDE_DTLS: DRAFT09_OFFSET.deltaTls - 2,
  PDM_CFG_FIRST_PSN,
  // The option layouts, as pdm/ writes and reads them.
  PDM_OPTION_TYPE,
  PDM_ODL_RFC8250: OPT_DATA_LEN.rfc8250,
  PDM_ODL_V2_CLEAR: OPT_DATA_LEN["v2-clear"],
  PDM_ODL_V2_PROTECTED: OPT_DATA_LEN["v2-protected"],
  PDM_RFC8250_SCALE_DTLR: RFC8250_OFFSET.scaleDtlr,
  PDM_RFC8250_SCALE_DTLS: RFC8250_OFFSET.scaleDtls,
  PDM_RFC8250_PSNTP: RFC8250_OFFSET.psnTp,
  PDM_RFC8250_PSNLR: RFC8250_OFFSET.psnLr,
  PDM_RFC8250_DTLR: RFC8250_OFFSET.deltaTlr,
  PDM_RFC8250_DTLS: RFC8250_OFFSET.deltaTls,
  PDM_V2_VERSION: V2_OFFSET.version,
  PDM_V2_VERSION_WORD: V2_VERSION_WORD,
  PDM_V2_RN_F: V2_OFFSET.randomNumberF,
  PDM_V2_SCALE_DTLR: V2_OFFSET.scaleDtlr,
  PDM_V2_SCALE_DTLS: V2_OFFSET.scaleDtls,
  PDM_V2_GP: V2_OFFSET.globalPointer,
  PDM_V2_PSNTP: V2_OFFSET.psnTp,
  PDM_V2_PSNLR: V2_OFFSET.psnLr,
  PDM_V2_DTLR: V2_OFFSET.deltaTlr,
  PDM_V2_DTLS: V2_OFFSET.deltaTls,
  PDM_V2_SEALED: V2_OFFSET.sealed,
  PDM_V2_SEALED_LEN: SEALED_PLAINTEXT_LEN,
  PDM_V2_TAG: V2_OFFSET.tag,
  PDM_V2_TAG_LEN: AEAD_TAG_LEN,
  PDM_CFG_STRIP,
  PDM_CFG_EVENTS,
  PDM_CFG_NO_STAMP,
  PDM_MAX_PORTS,
  PDM_MAX_PREFIXES,
  PDM_FLOW_HAS_SENT,
  PDM_FLOW_HAS_RECEIVED,
  PDM_EV_STAMPED: PDM_EV.stamped,
  PDM_EV_READ: PDM_EV.read,
  PDM_EV_NEW_FLOW: PDM_EV["new-flow"],
  PDM_EV_ROTATED: PDM_EV.rotated,
  PDM_EVF_GSO,
  PDM_GP_LINK_LOCAL,
  PDM_GP_GLOBAL,
  PDM_PIN_ROOT,
  PDM_MAP_FLOWS: PDM_MAP.flows,
  PDM_MAP_COUNTERS: PDM_MAP.counters,
  PDM_MAP_GLOBAL_PTRS: PDM_MAP.globalPointers,
  PDM_MAP_EVENTS: PDM_MAP.events,
  PDM_MAP_KEYS: PDM_MAP.keys,
  PDM_MAP_PEER_KEYS: PDM_MAP.peerKeys,
  PDM_MAP_KEY_NEEDS: PDM_MAP.keyNeeds,
  PDM_NEED_OWN: PDM_NEED.own,
  PDM_NEED_PEER: PDM_NEED.peer,
  PDM_NEEDF_OPTION,
  PDM_PROTECTED_OPTION_LEN,
  PDM_KEY_NEEDS_BYTES,
  PDM_KEY_SLOTS,
  PDM_RX_RECENT,
  PDM_AEAD_AES128GCM: PDM_AEAD["aes-128-gcm"],
  PDM_AEAD_CHACHA20POLY1305: PDM_AEAD["chacha20-poly1305"],
  PDM_AEAD_KEY_MAX,
  PDM_PROG_EGRESS: PDM_PROG.egress,
  PDM_PROG_INGRESS: PDM_PROG.ingress,
  PDM_MAP_GCM_KEYS: PDM_MAP.gcmKeys,
  PDM_MAP_SWEEP: PDM_MAP.sweep,
  PDM_PROG_GCM_INSTALL: PDM_PROG.gcmInstall,
  PDM_GCM_OWN: PDM_GCM.own,
  PDM_GCM_PEER: PDM_GCM.peer,
  PDM_FLOWS_MAX,
  PDM_EVICT_TARGET,
  PDM_EVICT_GAP_NS,
  PDM_EVICT_KEEP_NS,
  PDM_IDLE_POWERS,
  PDM_EVENTS_BYTES,
};
