/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * pdm_abi.h: every struct, number and pin name shared between the eBPF programs
 * (bpf/pdm.bpf.c) and user space (probes/). It is the only place these layouts are
 * written down: probes/datapath/abi.ts mirrors them and test/bpf/abi.test.ts compiles this
 * header with the host C compiler and checks every size and offset against the mirror.
 *
 * Plain C with <linux/types.h> types so both clang -target bpf and gcc accept it.
 * All multi-byte fields are host byte order unless the name ends in _be.
 */
#ifndef PDM_ABI_H
#define PDM_ABI_H

#include <linux/types.h>
#include <linux/bpf.h> /* struct bpf_spin_lock */

/* Layouts (wire.md section 2). 0 means "attached but stamping nothing". */
#define PDM_LAYOUT_RFC8250 1
#define PDM_LAYOUT_V2_CLEAR 2
#define PDM_LAYOUT_V2_PROTECTED 3
/* The later drafts' layouts (draft-layouts.md), with 32-bit PSNTP and PSNLR: */
#define PDM_LAYOUT_DRAFT09 4	       /* C/D, drafts -09 to -14 (the current draft): type 0x0F */
#define PDM_LAYOUT_DRAFT15 5	       /* E in the clear, the -15 text: a type of its own (cfg.draft15_type) */
#define PDM_LAYOUT_DRAFT15_PROTECTED 6 /* E protected: sealed under the flow's key of the sender's key index */

/* Destination Options header sizes per layout, with the PDM option and PadN. */
#define PDM_HDR_LEN_RFC8250 16
#define PDM_HDR_LEN_V2_CLEAR 24
#define PDM_HDR_LEN_V2_PROTECTED 40
#define PDM_HDR_LEN_WIDE 32		 /* C/D and E clear: the 24-byte option, then PadN over 6 bytes */
#define PDM_HDR_LEN_DRAFT15_PROTECTED 48 /* E protected: the 40-byte option, then PadN over 6 bytes */

#define PDM_OPTION_TYPE 0x0F
/* Layout E's type until IANA assigns one: RFC 4727's experimental destination option
 * type, whose top bits 00 tell a host that does not know it to skip it. */
#define PDM_DRAFT15_DEFAULT_TYPE 0x1E

/*
 * The option layouts (wire.md section 2), written once: each layout's Opt Data Len
 * (the length is what tells them apart) and where each field sits in the option data,
 * that is after Option Type and Opt Data Len. All fields big-endian. pdm/option.ts
 * writes the same layouts; test/bpf/abi.test.ts checks these numbers against it.
 */
#define PDM_ODL_RFC8250 10
#define PDM_ODL_V2_CLEAR 18
#define PDM_ODL_V2_PROTECTED 34

#define PDM_RFC8250_SCALE_DTLR 0 /* 8 bits */
#define PDM_RFC8250_SCALE_DTLS 1 /* 8 bits */
#define PDM_RFC8250_PSNTP 2
#define PDM_RFC8250_PSNLR 4
#define PDM_RFC8250_DTLR 6
#define PDM_RFC8250_DTLS 8

#define PDM_V2_VERSION 0 /* 16 bits: version 2 in the top nibble, 12 reserved bits zero */
#define PDM_V2_VERSION_WORD 0x2000
#define PDM_V2_RN_F 2	    /* Random Number (15 bits) and F, the low bit */
#define PDM_V2_SCALE_DTLR 4 /* 8 bits */
#define PDM_V2_SCALE_DTLS 5 /* 8 bits */
#define PDM_V2_GP 6	    /* Global Pointer, 32 bits */
#define PDM_V2_PSNTP 10
#define PDM_V2_PSNLR 12
#define PDM_V2_DTLR 14
#define PDM_V2_DTLS 16
/* Protected: option-data bytes 0-3 stay clear (with Type and Opt Data Len, the AEAD's
 * associated data); bytes 4-17 of the clear layout are sealed in place, the tag follows. */
#define PDM_V2_SEALED PDM_V2_SCALE_DTLR
#define PDM_V2_SEALED_LEN 14
#define PDM_V2_TAG (PDM_V2_SEALED + PDM_V2_SEALED_LEN)
#define PDM_V2_TAG_LEN 16

/* C/D and E clear (Opt Data Len 22): Ver + Epoch, then 32-bit sequence numbers first. */
#define PDM_ODL_WIDE 22
#define PDM_ODL_DRAFT15_PROTECTED 38
/*
 * E protected, offsets from the Option Type byte: o0-7 in the clear and the AEAD's
 * associated data (type, length, Ver + Epoch, PSNTP), o8-23 the clear form's o8-23
 * sealed in place, o24-39 the tag. The Epoch is the low 12 bits of the sender's key
 * index (the Kri's place in keys.md 4); the nonce is six zero bytes and o2-7.
 */
#define PDM_E_AAD_LEN 8
#define PDM_E_SEALED 8
#define PDM_E_SEALED_LEN 16
#define PDM_E_TAG 24
#define PDM_E_OPTION_LEN 40
#define PDM_EPOCH_MASK 0xfff
#define PDM_WIDE_VER_EPOCH 0 /* 16 bits: version 2 in the top nibble, the Epoch in the low 12 */
#define PDM_WIDE_PSNTP 2     /* 32 bits */
#define PDM_WIDE_PSNLR 6     /* 32 bits */
#define PDM_WIDE_GP 10	     /* 32 bits */
#define PDM_WIDE_SCALE_DTLR 14
#define PDM_WIDE_SCALE_DTLS 15
#define PDM_WIDE_RESERVED 16 /* 16 bits, zero */
#define PDM_WIDE_DTLR 18
#define PDM_WIDE_DTLS 20

/* pdm_config.flags */
#define PDM_CFG_STRIP (1u << 0)	    /* ingress removes the header after reading it */
#define PDM_CFG_EVENTS (1u << 1)    /* one ring-buffer record per PDM packet stamped or read */
#define PDM_CFG_NO_STAMP (1u << 2)  /* egress does nothing (reader only) */
#define PDM_CFG_FIRST_PSN (1u << 3) /* new flows start at cfg.first_psn, not at random (tests of the wrap) */

#define PDM_MAX_PORTS 8
#define PDM_MAX_PREFIXES 4
#define PDM_LFSR_PERIOD 32767

struct pdm_prefix {
	__u8 addr[16];
	__u8 len; /* prefix length in bits, 0..128 */
	__u8 pad[3];
};

/*
 * Policy and layout, fixed at attach time: the programs read it as a
 * `const volatile` global (the .rodata map), so the verifier sees constants.
 */
struct pdm_config {
	__u32 layout;
	__u32 flags;
	__u32 l2_len;		    /* bytes before the IPv6 header: 14 (Ethernet) or 0 */
	__u32 max_packets_per_kri;  /* 0 means the LFSR period, 32767 */
	__u16 ports[PDM_MAX_PORTS]; /* a flow matches if either port is listed; none = any */
	__u32 n_ports;
	__u32 n_prefixes;
	struct pdm_prefix prefixes[PDM_MAX_PREFIXES]; /* match the remote address; none = any */
	__u32 aead;	      /* protected layout: the HPKE AEAD id (AES-128-GCM needs pdm_gcm.bpf.o) */
	__u32 max_kri_age_ms; /* v2: also rotate a Kri in use this long; 0 means no age limit */
	__u32 flow_timeout_s; /* forget a flow (and its keys) idle this long; 0 means never */
	__u32 draft15_type;   /* layout E's option type, stamped and read (PDM_DRAFT15_DEFAULT_TYPE) */
	__u32 first_psn;      /* with PDM_CFG_FIRST_PSN: every new flow's first PSNTP */
};

/* A flow as seen from this host. ICMPv6 echo uses the identifier as both ports. */
struct pdm_flow_key {
	__u8 local[16];
	__u8 remote[16];
	__u16 local_port;
	__u16 remote_port;
	__u8 proto;
	__u8 pad[3];
};

/* How many recent protected stamps a flow remembers to tell a replay (wire.md 4). */
#define PDM_RX_RECENT 8

/* pdm_flow_state.flags */
#define PDM_FLOW_HAS_SENT (1u << 0)
#define PDM_FLOW_HAS_RECEIVED (1u << 1)

struct pdm_flow_state {
	struct bpf_spin_lock lock; /* zero when read from user space */
	__u32 psn_next;		   /* PSNTP of the next stamped packet (the 16-bit layouts send its low 16 bits) */
	__u32 psn_lr;		   /* PSNTP of the last packet received on the reverse 5-tuple */
	__u16 rn_state;		   /* LFSR state: the last Random Number sent */
	__u16 flags;
	__u32 rn_drawn;	 /* Random Numbers drawn under the current Kri */
	__u32 kri;	 /* own Key Rotation Index */
	__u32 peer_kri;	 /* peer's Kri as followed from its F bit */
	__u16 peer_rn_f; /* last Random Number + F word received */
	__u8 last_rx_scale_dtlr;
	__u8 last_rx_scale_dtls;
	__u16 last_rx_delta_tlr; /* the peer's last DeltaTLR / DeltaTLS, for `pdm status` */
	__u16 last_rx_delta_tls;
	__u64 first_ns;
	__u64 last_send_ns;
	__u64 last_recv_ns;
	__u64 tx_packets;
	__u64 rx_packets;
	__u64 gso_repeats;
	/* Protected layout: the peer's recent (Kri << 16 | Random Number and F), for replays */
	__u32 rx_recent[PDM_RX_RECENT];
	__u32 rx_recent_next;
	__u32 asked_ms;	    /* when this flow last asked for keys (ms of the monotonic clock, low 32 bits; 0: never) */
	__u64 kri_since_ns; /* when the own Kri began (the age limit) */
};

/* HPKE AEAD ids (keys.md): the protected layout's AEAD. */
#define PDM_AEAD_AES128GCM 1
#define PDM_AEAD_CHACHA20POLY1305 3
#define PDM_AEAD_KEY_MAX 32

/*
 * Keys of one flow (protected layout), installed by user space: in pdm_keys the
 * flow's own STKs (for sealing), in pdm_peer_keys its peer's (for opening). The STK
 * of Kri k sits in slot k % 3, so the previous, current and next Kri can all have
 * their key: the next is in place before a rotation needs it, the previous stays for
 * late packets. A packet whose Kri has no key is sent without PDM and counted
 * (skipped_nokey), never stamped in the clear.
 */
#define PDM_KEY_SLOTS 3
struct pdm_flow_keys {
	__u32 kri[PDM_KEY_SLOTS];
	__u8 present[PDM_KEY_SLOTS];
	__u8 pad[5];
	__u8 key[PDM_KEY_SLOTS][PDM_AEAD_KEY_MAX];
};

/*
 * AES-128-GCM keys (the data path built with PDM_WITH_GCM, pdm_gcm.bpf.o). The kernel
 * keeps, per installed key, its AES context and the GHASH table of H in pdm_gcm_keys,
 * keyed by flow, side and slot; pdm_keys / pdm_peer_keys still say which Kri each slot
 * holds (their key bytes stay zero: the AES key lives in the kernel's context only).
 * User space installs a key by running the syscall program pdm_gcm_install with
 * struct pdm_gcm_install_args, H = E(K, 0^128) computed beforehand.
 */
#define PDM_GCM_OWN 0
#define PDM_GCM_PEER 1
struct pdm_gcm_key_id {
	struct pdm_flow_key flow;
	__u8 side; /* PDM_GCM_OWN: a key of pdm_keys; PDM_GCM_PEER: of pdm_peer_keys */
	__u8 slot; /* kri % PDM_KEY_SLOTS */
	__u8 pad[2];
};
struct pdm_gcm_install_args {
	struct pdm_gcm_key_id id;
	__u32 kri;
	__u8 key[16];
	__u8 h[16];
	__s32 err; /* out: the kernel's error when it refused the key */
};

/* Per-CPU counters (datapath.md "counters"); user space sums the CPUs. */
struct pdm_counters {
	__u64 stamped;
	__u64 read;
	__u64 skipped_exthdr;
	__u64 skipped_mtu;
	__u64 skipped_nokey;
	__u64 auth_fail;
	__u64 replay;
	__u64 malformed;
	__u64 gso_repeat;
	__u64 stripped;
	__u64 skipped_room; /* bpf_skb_adjust_room refused the packet */
	__u64 flows_created;
	__u64 flows_full;    /* the flow table refused a new flow */
	__u64 events_lost;   /* ring buffer full */
	__u64 flows_expired; /* flows forgotten after flow_timeout_s without a packet */
	__u64 rx_nokey;	     /* protected options received while no key of the flow's peer was installed */
	__u64 flows_evicted; /* idle flows deleted to make room when the table was full */
};

/* Event types on the ring buffer. */
#define PDM_EV_STAMPED 1 /* this host sent a PDM packet */
#define PDM_EV_READ 2	 /* this host received a PDM packet */
#define PDM_EV_NEW_FLOW 3
#define PDM_EV_ROTATED 4 /* own Kri advanced */

/* pdm_event.flags */
#define PDM_EVF_GSO (1u << 0) /* one stamp on a GSO super-packet */

/*
 * One compact record per PDM packet stamped or read. Addresses and ports are as on
 * the wire (src -> dst); for ICMPv6 the ports are type<<8|code and the identifier.
 */
struct pdm_event {
	__u64 ktime_ns;
	__u8 src[16];
	__u8 dst[16];
	__u16 src_port;
	__u16 dst_port;
	__u32 psntp;
	__u32 psnlr;
	__u16 delta_tlr;
	__u16 delta_tls;
	__u16 random_f;
	__u8 scale_dtlr;
	__u8 scale_dtls;
	__u32 global_pointer;
	__u32 kri;
	__u32 ifindex;
	__u8 type;
	__u8 layout;
	__u8 proto;
	__u8 flags;
};

/*
 * Protected layout: a flow needs keys (pdm_key_needs ring buffer, read by the agent).
 * The flow is given as this host sees it (pdm_flow_key). PDM_NEED_OWN: install this
 * host's STKs for `kri` and `kri + 1` (a new flow, a rotation, or a packet that left
 * without PDM for want of its key). PDM_NEED_PEER: install the peer's STK for `kri`
 * (the peer has reached the last Kri installed; kri 0 when the flow has no keys yet).
 * With PDM_NEEDF_OPTION the record also carries an option no installed key opened:
 * the agent finds the peer's Kri by trying keys on it (a peer that resumed a flow
 * this host forgot, at a Kri its F bit alone cannot tell), `kri` being the highest
 * the flow had installed.
 *
 * A sender whose kernel forgot a flow must not start it over under keys it used (the
 * nonces would repeat). The agent instead installs keys of Kri values never used, and
 * egress, finding no key for its Kri but one for a later Kri, moves the flow there.
 */
#define PDM_NEED_OWN 1
#define PDM_NEED_PEER 2
#define PDM_NEEDF_OPTION (1u << 0)
#define PDM_PROTECTED_OPTION_LEN 36 /* Option Type, Opt Data Len, 34 bytes of option data */
struct pdm_key_need {
	struct pdm_flow_key flow;
	__u32 kri;
	__u8 kind;
	__u8 icmp_type; /* ICMPv6 echo: the type the sender sends (128 or 129), which its 5-tuple carries */
	__u8 flags;	/* PDM_NEEDF_* */
	__u8 pad;
	__u8 option[PDM_PROTECTED_OPTION_LEN]; /* PDM_NEEDF_OPTION: the option as received */
};
#define PDM_KEY_NEEDS_BYTES (256u << 10)

/* Global Pointer classes (wire.md section 3). */
#define PDM_GP_LINK_LOCAL 0
#define PDM_GP_GLOBAL 1

/* Map names as in the object; pinned under /sys/fs/bpf/pdm/<ifname>/<name>. */
#define PDM_PIN_ROOT "/sys/fs/bpf/pdm"
#define PDM_MAP_FLOWS "pdm_flows"
#define PDM_MAP_COUNTERS "pdm_counters"
#define PDM_MAP_GLOBAL_PTRS "pdm_global_ptrs"
#define PDM_MAP_EVENTS "pdm_events"
#define PDM_MAP_KEYS "pdm_keys"
#define PDM_MAP_PEER_KEYS "pdm_peer_keys"
#define PDM_MAP_KEY_NEEDS "pdm_key_needs"
#define PDM_MAP_GCM_KEYS "pdm_gcm_keys"
#define PDM_MAP_SWEEP "pdm_sweep"
#define PDM_PROG_GCM_INSTALL "pdm_gcm_install"
#define PDM_PROG_EGRESS "pdm_egress"
#define PDM_PROG_INGRESS "pdm_ingress"

#define PDM_FLOWS_MAX 65536
/* A full flow table: entries freed by one eviction, at most one eviction per gap, and
 * how recently a flow this host sends on keeps it from eviction (bpf/pdm.bpf.c). */
#define PDM_EVICT_TARGET (PDM_FLOWS_MAX / 8)
#define PDM_EVICT_GAP_NS 100000000ULL
#define PDM_EVICT_KEEP_NS 1000000000ULL
#define PDM_IDLE_POWERS 32
#define PDM_EVENTS_BYTES (4u << 20)

#endif /* PDM_ABI_H */
