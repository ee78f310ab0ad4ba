// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * pdm.bpf.c: the PDM data path on tc clsact (datapath.md).
 *
 *   pdm_egress   inserts a Destination Options header carrying a PDM option (RFC 8250,
 *                PDMv2 clear or protected, or a later draft's clear layout: C/D of
 *                drafts -09 to -14, E of -15) right after the fixed IPv6 header of
 *                each selected TCP, UDP or ICMPv6 echo packet, filled from the flow's
 *                state. For the protected layout it hands over to pdm_egress_seal
 *                (tail call), which seals the option under the flow's key (pdm_keys).
 *   pdm_ingress  reads the PDM option of each arriving packet, updates the state the
 *                next egress packet needs (PSNLR, receive time), counts what it saw,
 *                and optionally removes the header. A protected option goes to
 *                pdm_ingress_open (tail call), which verifies it under the peer's keys
 *                (pdm_peer_keys), then to pdm_ingress_read for the same bookkeeping.
 *
 * The protected layout seals with ChaCha20-Poly1305 in BPF C (pdm.bpf.o). Built with
 * PDM_WITH_GCM (pdm_gcm.bpf.o: clang 15+, Linux 6.10+), it also seals with AES-128-GCM:
 * the kernel's AES through the BPF crypto kfuncs, GHASH in BPF C, each key's context
 * and table installed by user space through pdm_gcm_install (a syscall program).
 *
 * The ideas they are made of are in lib/ (maps, packet parsing, policy, flow state and
 * expiry, keys, events, the option's bytes, the nonce, sealing and opening, reading);
 * what they share with user space is in include/pdm_abi.h.
 *
 * Rule for both: measurement never breaks traffic. Anything this program cannot or
 * should not stamp is counted and passed on unchanged (TC_ACT_OK), never dropped.
 * Layout, policy and flags come from `cfg`, a const volatile global user space fills
 * before load (include/pdm_abi.h), so the verifier prunes what the layout does not use.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ipv6.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "include/pdm_abi.h"
#include "include/pdm_codec.h"
#include "lib/pdm_maps.h"
#include "lib/pdm_parse.h"
#include "lib/pdm_policy.h"
#include "lib/pdm_option.h"
#include "lib/pdm_events.h"
#include "lib/pdm_flow.h"
#include "lib/pdm_keys.h"
#include "lib/pdm_protect.h"
#include "lib/pdm_read.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#ifdef PDM_WITH_GCM
/*
 * Install one AES-128-GCM key (run by user space through BPF_PROG_TEST_RUN, one at a
 * time): the kernel's AES context for it and the GHASH table of H, into pdm_gcm_keys
 * at the key's flow, side and slot, replacing (and releasing) what the slot held.
 * Returns 0, or 1 when the kernel refused the key (args->err), 2 when the map is full.
 */
SEC("syscall")
int pdm_gcm_install(struct pdm_gcm_install_args *args)
{
	__builtin_memcpy(pdm_gcm_params.key, args->key, 16);
	int err = 0;
	struct bpf_crypto_ctx *ctx = bpf_crypto_ctx_create(&pdm_gcm_params, sizeof(pdm_gcm_params), &err);
	__builtin_memset(pdm_gcm_params.key, 0, 16); /* the key stays in the kernel's context only */
	args->err = err;
	if (!ctx)
		return 1;
	/* A fresh entry (the slot's previous key, if any, is released with its entry),
	 * its tables made in place, its context set last: until then packets find no
	 * context and treat the slot as keyless. */
	struct pdm_gcm_key_id id = args->id;
	struct pdm_gcm_htable h1;
	if (bpf_map_update_elem(&pdm_gcm_keys, &id, pdm_gcm_zero_key, BPF_ANY)) {
		bpf_crypto_ctx_release(ctx);
		return 2;
	}
	struct pdm_gcm_key *v = bpf_map_lookup_elem(&pdm_gcm_keys, &id);
	if (!v) {
		bpf_crypto_ctx_release(ctx);
		return 2;
	}
	__u8 h[16];
	__builtin_memcpy(h, args->h, 16); /* the tables read it at computed offsets, which a context may not have */
	pdm_gcm_key_init(&v->tables, &h1, h);
	v->kri = args->kri;
	ctx = bpf_kptr_xchg(&v->ctx, ctx);
	if (ctx)
		bpf_crypto_ctx_release(ctx);
	return 0;
}

#endif

/* The Destination Options header this host's layout writes: 16, 24, 32, 40 or 48 bytes. */
static __always_inline __u32 pdm_hdr_len(void)
{
	if (cfg.layout == PDM_LAYOUT_RFC8250)
		return PDM_HDR_LEN_RFC8250;
	if (cfg.layout == PDM_LAYOUT_V2_CLEAR)
		return PDM_HDR_LEN_V2_CLEAR;
	if (cfg.layout == PDM_LAYOUT_DRAFT15_PROTECTED)
		return PDM_HDR_LEN_DRAFT15_PROTECTED;
	return pdm_layout_is_wide(cfg.layout) ? PDM_HDR_LEN_WIDE : PDM_HDR_LEN_V2_PROTECTED;
}

/*
 * The packet still fits its link with `hdr_len` more bytes. The MTU check is needed
 * only by a packet that could outgrow its link: not a GSO packet (adjust_room lowers its
 * gso_size by the header, and bpf_check_mtu passes any GSO packet), nor one of at most
 * 1280 bytes with the header (IPv6's minimum link MTU). Skipping the helper for the
 * others saves it on nearly every packet.
 */
static __always_inline int pdm_fits_mtu(struct __sk_buff *skb, const struct pdm_pkt *p, __u32 hdr_len)
{
	if (skb->gso_size || skb->len - p->l3 + hdr_len <= PDM_IPV6_MIN_MTU)
		return 1;
	__u32 mtu_len = 0;
	return bpf_check_mtu(skb, 0, &mtu_len, hdr_len, 0) == 0;
}

/* The next Global Pointer of the packet's source class (PDMv2). */
static __always_inline __u32 pdm_next_global_pointer(const struct pdm_pkt *p)
{
	__u32 cls = pdm_is_link_local(&p->ip6.saddr) ? PDM_GP_LINK_LOCAL : PDM_GP_GLOBAL;
	__u32 *ctr = bpf_map_lookup_elem(&pdm_global_ptrs, &cls);
	return ctr ? __sync_fetch_and_add(ctr, 1) + 1 : 0;
}

/* The protected layout's second half of egress: seal, make room, write the header. */
SEC("tc")
int pdm_egress_seal(struct __sk_buff *skb)
{
	struct pdm_counters *c = pdm_counters_here();
	struct pdm_seal_work *w = pdm_seal_work_here();
	if (!w)
		return TC_ACT_OK;
	if (pdm_seal(w)) {
		PDM_COUNT(
			c,
			skipped_nokey); /* the key was replaced between egress and here: no PDM rather than PDM in the clear */
		return TC_ACT_OK;
	}
	const __u32 hdr_len = pdm_hdr_len();
	if (bpf_skb_adjust_room(skb, hdr_len, BPF_ADJ_ROOM_NET, 0)) {
		PDM_COUNT(c, skipped_room);
		return TC_ACT_OK;
	}
	if (bpf_skb_store_bytes(skb, w->l3 + 4, w->out, PDM_IPV6_HLEN - 4 + hdr_len, 0)) {
		PDM_COUNT(c, skipped_room);
		return TC_ACT_OK;
	}
	PDM_COUNT(c, stamped);
	if (w->send_event && bpf_ringbuf_output(&pdm_events, &w->event, sizeof(w->event), 0))
		PDM_COUNT(c, events_lost);
	return TC_ACT_OK;
}

/*
 * Protected layout: hand the packet to pdm_egress_seal with everything it needs: the
 * IPv6 header bytes 4-39 as they must end up, the new header with its clear fields,
 * and the STAMPED event, which it sends once the packet is stamped.
 */
static __always_inline int pdm_hand_to_seal(struct __sk_buff *skb, struct pdm_counters *c, const struct pdm_pkt *p,
					    const __u8 *h, const struct pdm_fields *f, __u64 now)
{
	struct pdm_seal_work *w = pdm_seal_work_here();
	if (!w)
		return TC_ACT_OK;
	w->kri = f->kri;
	w->l3 = p->l3;
	__builtin_memcpy(w->out, (__u8 *)&p->ip6 + 4, PDM_IPV6_HLEN - 4);
	pdm_put16(w->out, 0, bpf_ntohs(p->ip6.payload_len) + pdm_hdr_len());
	w->out[2] = PDM_NEXTHDR_DEST;
	__builtin_memcpy(w->out + PDM_IPV6_HLEN - 4, h, PDM_HDR_LEN_DRAFT15_PROTECTED); /* A's is the first 40 */
	w->send_event = (cfg.flags & PDM_CFG_EVENTS) != 0;
	if (w->send_event)
		pdm_event_fill(&w->event, p, PDM_EV_STAMPED, now, f, skb->gso_segs > 1 ? PDM_EVF_GSO : 0, skb->ifindex);
	bpf_tail_call(skb, &pdm_seal_call, 0);
	PDM_COUNT(c, skipped_nokey); /* only if the sealing program is missing: never stamp in the clear */
	return TC_ACT_OK;
}

/* Clear layouts: insert the header `h` of `hdr_len` bytes after the fixed IPv6 header. */
static __always_inline int pdm_insert_header(struct __sk_buff *skb, struct pdm_counters *c, const struct pdm_pkt *p,
					     const __u8 *h, __u32 hdr_len)
{
	if (bpf_skb_adjust_room(skb, hdr_len, BPF_ADJ_ROOM_NET, 0)) {
		PDM_COUNT(c, skipped_room);
		return -1;
	}
	/* One store from the payload length on: payload_len grows by the header, next
	 * header becomes Destination Options, the addresses are written back as they
	 * were, and the new header follows (one helper call instead of two). */
	struct {
		__u8 fixed[PDM_IPV6_HLEN - 4];
		__u8 h[PDM_HDR_LEN_WIDE]; /* the clear layouts only: the protected one is sealed first */
	} out;
	__builtin_memcpy(out.fixed, (__u8 *)&p->ip6 + 4, PDM_IPV6_HLEN - 4);
	pdm_put16(out.fixed, 0, bpf_ntohs(p->ip6.payload_len) + hdr_len);
	out.fixed[2] = PDM_NEXTHDR_DEST;
	__builtin_memcpy(out.h, h, PDM_HDR_LEN_WIDE);
	if (bpf_skb_store_bytes(skb, p->l3 + 4, &out, PDM_IPV6_HLEN - 4 + hdr_len, 0)) {
		/* Cannot happen after a successful adjust_room; counted should it ever. */
		PDM_COUNT(c, skipped_room);
		return -1;
	}
	return 0;
}

SEC("tc")
int pdm_egress(struct __sk_buff *skb)
{
	if (pdm_layout_is_protected(cfg.layout) && !pdm_aead_supported())
		return TC_ACT_OK; /* user space refuses this at attach; never stamp in the clear */
	if ((cfg.flags & PDM_CFG_NO_STAMP) || skb->protocol != bpf_htons(ETH_P_IPV6))
		return TC_ACT_OK;

	struct pdm_pkt p = {};
	p.l3 = cfg.l2_len;
	if (pdm_load_fixed(skb, p.l3, &p.ip6, PDM_IPV6_HLEN))
		return TC_ACT_OK;
	if (p.ip6.version != 6 || pdm_is_multicast(&p.ip6.daddr))
		return TC_ACT_OK; /* not IPv6, or multicast: never stamped */

	struct pdm_counters *c = pdm_counters_here();
	p.proto = p.ip6.nexthdr;
	if (pdm_is_extension_header(p.proto)) {
		/* wire.md 1: the header goes right after the fixed header or not at all.
		 * Its ports sit behind the other header, so only the prefixes can select it. */
		if (pdm_prefix_selects(&p.ip6.daddr))
			PDM_COUNT(c, skipped_exthdr);
		return TC_ACT_OK;
	}
	p.l4 = p.l3 + PDM_IPV6_HLEN;
	if (!pdm_load_ports(skb, &p) || !pdm_selects(&p.ip6.daddr, &p))
		return TC_ACT_OK;
	const __u32 hdr_len = pdm_hdr_len();
	if (!pdm_fits_mtu(skb, &p, hdr_len)) {
		PDM_COUNT(c, skipped_mtu);
		return TC_ACT_OK;
	}

	struct pdm_flow_key key = {};
	pdm_flow_key_of(&p, 1, &key);
	__u64 now = bpf_ktime_get_ns();
	int created;
	struct pdm_flow_state *st = pdm_flow_state(&key, now, c, &created);
	if (!st)
		return TC_ACT_OK;
	/* -02's PDMv2 layouts carry a Random Number and rotate their Kri; the later drafts'
	 * (`wide`) carry 32-bit sequence numbers and an Epoch, 0 in the clear. */
	const int v2 = cfg.layout == PDM_LAYOUT_V2_CLEAR || cfg.layout == PDM_LAYOUT_V2_PROTECTED;
	const int wide = pdm_layout_is_wide(cfg.layout);
	const int protect = pdm_layout_is_protected(cfg.layout);
	/* Kri (layout E: the key index) moves on with -02's layouts and with any protected one */
	const int rotates = v2 || protect;
	__u16 reseed = rotates ? pdm_lfsr_seed(bpf_get_prandom_u32()) : 0;
	const __u32 per_kri = pdm_per_kri();
	struct pdm_stamp s = {};
	pdm_flow_take_stamp(st, now, rotates, reseed, per_kri, &s);

	struct pdm_fields f = {.layout = cfg.layout, .psntp = s.psntp, .psnlr = s.psnlr};
	pdm_encode_delta_ns(s.tlr_ns, &f.dtlr, &f.stlr);
	pdm_encode_delta_ns(s.tls_ns, &f.dtls, &f.stls);
	if (protect && !pdm_egress_key(skb, c, &p, &key, st, now, created, &s, reseed, per_kri)) {
		/* Checked before the Global Pointer, which counts PDM packets only. */
		PDM_COUNT(c, skipped_nokey);
		return TC_ACT_OK;
	}
	if (wide) {
		f.gp = pdm_next_global_pointer(&p);
		f.type = cfg.layout == PDM_LAYOUT_DRAFT09 ? PDM_OPTION_TYPE : cfg.draft15_type;
		f.kri = s.kri; /* the Epoch is its low 12 bits; 0 in the clear layouts, which never rotate */
	}
	if (v2) {
		f.gp = pdm_next_global_pointer(&p);
		f.rn_f = (__u16)(s.rn << 1) | (s.kri & 1);
		f.kri = s.kri;
	}
	__u8 h[PDM_HDR_LEN_DRAFT15_PROTECTED] = {};
	pdm_option_write(h, p.proto, hdr_len, &f);
	if (protect)
		return pdm_hand_to_seal(skb, c, &p, h, &f, now);

	if (pdm_insert_header(skb, c, &p, h, hdr_len))
		return TC_ACT_OK;
	PDM_COUNT(c, stamped);
	if (created)
		pdm_emit_flow(c, &p, PDM_EV_NEW_FLOW, now, s.psntp, 0, 0, skb->ifindex);
	if (s.rotated)
		pdm_emit_flow(c, &p, PDM_EV_ROTATED, now, s.psntp, f.rn_f, s.kri, skb->ifindex);
	pdm_emit(c, &p, PDM_EV_STAMPED, now, &f, skb->gso_segs > 1 ? PDM_EVF_GSO : 0, skb->ifindex);
	return TC_ACT_OK;
}

/*
 * Verify and open a protected option with the peer's keys (pdm_peer_keys). What
 * follows, opened or not, is pdm_ingress_read's (a tail call): this program's stack is
 * the AEAD's.
 */
SEC("tc")
int pdm_ingress_open(struct __sk_buff *skb)
{
	struct pdm_counters *c = pdm_counters_here();
	struct pdm_open_work *w = pdm_open_work_here();
	if (!w)
		return TC_ACT_OK;
	struct pdm_flow_key key = {};
	pdm_flow_key_of(&w->p, 0, &key);
	struct pdm_flow_keys *keys = bpf_map_lookup_elem(&pdm_peer_keys, &key);
	const int e = cfg.layout == PDM_LAYOUT_DRAFT15_PROTECTED;
	/* layout A: Random Number and F; layout E: Ver + Epoch */
	__u16 rn_f = pdm_be16(w->option + (e ? 2 : PDM_PROT_RN_F));
	__u32 kri = 0;
	w->failed = 0;
	if (!keys || pdm_open_with_peer_keys(w, &key, keys, rn_f, &kri)) {
		w->failed = keys ? PDM_OPEN_AUTH_FAIL : PDM_OPEN_NO_KEY;
		w->highest = 0;
		if (keys)
			for (int slot = 0; slot < PDM_KEY_SLOTS; slot++)
				if (keys->present[slot] && keys->kri[slot] > w->highest)
					w->highest = keys->kri[slot];
		bpf_tail_call(skb, &pdm_read_call, 0);
		return TC_ACT_OK;
	}
	/* The peer reached the last Kri installed: the next one, before it is needed. */
	if (!pdm_has_peer_key(keys, kri + 1))
		pdm_need_keys(c, &key, kri + 1, PDM_NEED_PEER, pdm_icmp_type(&w->p), NULL);
	if (e) {
		if (pdm_option_read_opened_e(w->option, w->pt, kri, &w->fields)) {
			PDM_COUNT(c, malformed); /* authentic, with reserved bits set */
			return TC_ACT_OK;
		}
	} else {
		pdm_option_read_opened(w->pt, rn_f, kri, &w->fields);
	}
	bpf_tail_call(skb, &pdm_read_call, 0);
	return TC_ACT_OK;
}

/* A protected option after pdm_ingress_open: once opened, the flow's state, counters,
 * events, strip; not opened, the counters and a word to the agent. */
SEC("tc")
int pdm_ingress_read(struct __sk_buff *skb)
{
	struct pdm_open_work *w = pdm_open_work_here();
	if (!w)
		return TC_ACT_OK;
	struct pdm_counters *c = pdm_counters_here();
	struct pdm_pkt p = w->p;
	if (w->failed) {
		/* No keys at all for this flow: not an authentication failure but a flow the
		 * agent has not keyed yet, which learns of it here. With keys, a failure is a
		 * forgery, or a peer that resumed the flow at a Kri these keys do not reach
		 * (this host forgot it, or the peer did). Either way the agent is shown the
		 * option, paced: it finds the Kri that opens it, if any. Layout E's option does
		 * not fit a key need's 36 bytes: the agent is asked for the next keys without it
		 * (a peer that resumed far ahead is not found). */
		if (w->failed == PDM_OPEN_NO_KEY)
			PDM_COUNT(c, rx_nokey);
		else
			PDM_COUNT(c, auth_fail);
		struct pdm_flow_key key = {};
		pdm_flow_key_of(&p, 0, &key);
		const __u8 *option = cfg.layout == PDM_LAYOUT_DRAFT15_PROTECTED ? NULL : w->option;
		pdm_ask_for_keys(skb, c, &p, &key, w->highest, PDM_NEED_PEER, pdm_icmp_type(&p), option);
		return TC_ACT_OK;
	}
	struct pdm_fields f = w->fields;
	return pdm_finish_read(skb, c, &p, &f, w->len, w->only_pdm);
}

SEC("tc")
int pdm_ingress(struct __sk_buff *skb)
{
	if (skb->protocol != bpf_htons(ETH_P_IPV6))
		return TC_ACT_OK;
	struct pdm_pkt p = {};
	p.l3 = cfg.l2_len;
	if (pdm_load_fixed(skb, p.l3, &p.ip6, PDM_IPV6_HLEN))
		return TC_ACT_OK;
	if (p.ip6.version != 6)
		return TC_ACT_OK;
	if (p.ip6.nexthdr != PDM_NEXTHDR_DEST) {
		if (pdm_layout_is_protected(cfg.layout) && pdm_aead_supported())
			pdm_ask_keys_for_answers(skb, &p);
		return TC_ACT_OK;
	}

	struct pdm_counters *c = pdm_counters_here();
	struct pdm_opt_walk w = {};
	if (pdm_load_fixed(skb, p.l3 + PDM_IPV6_HLEN, w.h, 2))
		return TC_ACT_OK;
	__u32 len = ((__u32)w.h[1] + 1) * 8;
	if (len > PDM_DEST_OPTS_MAX)
		return TC_ACT_OK; /* longer than any header a PDM stamper writes: not ours */
	/* Keeps the bound just checked on the register the helper gets: without it clang
	 * compares a derived value and the verifier loses the bound. */
	asm volatile("" : "+r"(len));
	/* The two sizes PDM stampers write are read in place; others through the helper. */
	int short_read =
		len == PDM_HDR_LEN_RFC8250    ? pdm_load_fixed(skb, p.l3 + PDM_IPV6_HLEN, w.h, PDM_HDR_LEN_RFC8250)
		: len == PDM_HDR_LEN_V2_CLEAR ? pdm_load_fixed(skb, p.l3 + PDM_IPV6_HLEN, w.h, PDM_HDR_LEN_V2_CLEAR)
		: len == PDM_HDR_LEN_WIDE     ? pdm_load_fixed(skb, p.l3 + PDM_IPV6_HLEN, w.h, PDM_HDR_LEN_WIDE)
					      : bpf_skb_load_bytes(skb, p.l3 + PDM_IPV6_HLEN, w.h, len);
	if (short_read) {
		PDM_COUNT(c, malformed); /* Hdr Ext Len points past the packet */
		return TC_ACT_OK;
	}
	w.len = len;
	w.only_pdm = 1;
	w.e_type = cfg.draft15_type;
	if (pdm_opt_is_stamped_form(w.h, len, w.e_type)) {
		w.at = 2; /* fast path: the header as PDM stampers write it */
	} else {
		w.i = 2;
		bpf_loop(PDM_DEST_OPTS_MAX / 2, pdm_opt_walk_step, &w, 0);
		if (w.i != len) { /* the options overrun or do not fill the header */
			if (w.at)
				PDM_COUNT(c, malformed);
			return TC_ACT_OK;
		}
	}
	if (!w.at)
		return TC_ACT_OK; /* a Destination Options header without PDM: not ours */
	__u32 o = w.at + 2;	  /* option data */
	__u8 type = pdm_opt_get8(w.h, w.at);
	__u8 olen = pdm_opt_get8(w.h, w.at + 1);

	const int e_sealed = type == w.e_type && olen == PDM_ODL_DRAFT15_PROTECTED;
	if (e_sealed || (type == PDM_OPTION_TYPE && olen == PDM_ODL_V2_PROTECTED)) {
		/* Opened by pdm_ingress_open when this host reads that layout (A or E) with an
		 * AEAD this build has; otherwise left as it is. */
		if (cfg.layout != (e_sealed ? PDM_LAYOUT_DRAFT15_PROTECTED : PDM_LAYOUT_V2_PROTECTED) ||
		    !pdm_aead_supported())
			return TC_ACT_OK;
		if (e_sealed ? (pdm_opt_get16(w.h, o) & 0xf000) != PDM_V2_VERSION_WORD
			     : !pdm_v2_version_ok(w.h, o)) { /* malformed, as in the clear */
			PDM_COUNT(c, malformed);
			return TC_ACT_OK;
		}
		/* To pdm_ingress_open (tail call), with the packet's facts and the option. */
		struct pdm_open_work *ow = pdm_open_work_here();
		if (!ow)
			return TC_ACT_OK;
		p.proto = w.h[0];
		p.l4 = p.l3 + PDM_IPV6_HLEN + len;
		if (!pdm_load_ports(skb, &p))
			return TC_ACT_OK;
		ow->p = p;
		ow->len = len;
		ow->only_pdm = w.only_pdm;
#pragma unroll
		for (int i = 0; i < PDM_E_OPTION_LEN; i++) /* A's is the first 36 bytes */
			ow->option[i] = pdm_opt_get8(w.h, w.at + i);
		bpf_tail_call(skb, &pdm_open_call, 0);
		return TC_ACT_OK;
	}
	struct pdm_fields f = {};
	if (pdm_option_read_clear(w.h, o, type, olen, w.e_type, &f)) {
		PDM_COUNT(c, malformed);
		return TC_ACT_OK;
	}
	p.proto = w.h[0];
	p.l4 = p.l3 + PDM_IPV6_HLEN + len;
	if (!pdm_load_ports(skb, &p))
		return TC_ACT_OK; /* PDM ahead of something other than TCP/UDP/echo */
	return pdm_finish_read(skb, c, &p, &f, len, w.only_pdm);
}

/* Does nothing: the fair baseline for benchmarks (the cost of the tc hook alone). */
SEC("tc")
int pdm_empty(struct __sk_buff *skb)
{
	return TC_ACT_OK;
}
