/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * pdm_read.h: what reading a PDM option changes, whatever its layout: the flow's state
 * that the next stamp needs (PSNLR, receive time, the peer's Kri), replays and GSO
 * repeats told apart, counters, events, and the optional strip of the header.
 */
#ifndef PDM_READ_H
#define PDM_READ_H

#include "pdm_maps.h"
#include "pdm_events.h"
#include "pdm_flow.h"

/* `pair` is one of the flow's recent stamps (the slots filled so far only: a zero
 * left in an unused one is no stamp, and layout E's PSNTP may well be 0). */
static __always_inline int pdm_seen_before(struct pdm_flow_state *st, __u32 pair)
{
	int hit = 0;
#pragma unroll
	for (int i = 0; i < PDM_RX_RECENT; i++)
		if ((__u32)i < st->rx_recent_next && st->rx_recent[i] == pair)
			hit = 1;
	return hit;
}

/*
 * The end of reading an option, whatever its layout: the flow's state (PSNLR, receive
 * time, the peer's Kri), counters, events, and the strip. `len` is the Destination
 * Options header's length, `only_pdm` whether it holds nothing else.
 */
static __always_inline int pdm_finish_read(struct __sk_buff *skb, struct pdm_counters *c, struct pdm_pkt *p,
					   struct pdm_fields *f, __u32 len, int only_pdm)
{
	/* The reverse of this packet's 5-tuple is the flow this host stamps. */
	struct pdm_flow_key key = {};
	pdm_flow_key_of(p, 0, &key);
	__u64 now = bpf_ktime_get_ns();
	int created;
	struct pdm_flow_state *st = pdm_flow_state(&key, now, c, &created);
	if (st) {
		int repeat = 0, replay = 0;
		const int protected = pdm_layout_is_protected(f->layout);
		/* What a protected stamp may never repeat: Kri and Random Number + F (layout A),
		 * PSNTP (layout E: +1 per packet over 32 bits, one key index at a time) */
		__u32 pair = f->layout == PDM_LAYOUT_DRAFT15_PROTECTED ? f->psntp : (f->kri << 16) | f->rn_f;
		bpf_spin_lock(&st->lock);
		/* wire.md 5: a GSO burst's segments carry one stamp; count it once */
		if ((st->flags & PDM_FLOW_HAS_RECEIVED) && st->psn_lr == f->psntp && st->peer_rn_f == f->rn_f &&
		    (!protected || st->peer_kri == f->kri))
			repeat = 1;
		else if (protected && pdm_seen_before(st, pair))
			replay = 1;
		if (!replay) {
			if (protected) {
				st->rx_recent[st->rx_recent_next % PDM_RX_RECENT] = pair;
				st->rx_recent_next++;
				if (f->kri > st->peer_kri)
					st->peer_kri = f->kri;
			} else if (f->layout == PDM_LAYOUT_V2_CLEAR && (st->flags & PDM_FLOW_HAS_RECEIVED) &&
				   ((st->peer_rn_f ^ f->rn_f) & 1)) {
				st->peer_kri++;
			}
			st->psn_lr = f->psntp;
			st->peer_rn_f = f->rn_f;
			st->last_recv_ns = now;
			st->flags |= PDM_FLOW_HAS_RECEIVED;
			st->rx_packets++;
			if (repeat)
				st->gso_repeats++;
			st->last_rx_delta_tlr = f->dtlr;
			st->last_rx_delta_tls = f->dtls;
			st->last_rx_scale_dtlr = f->stlr;
			st->last_rx_scale_dtls = f->stls;
		}
		bpf_spin_unlock(&st->lock);
		if (replay) {
			PDM_COUNT(c, replay); /* counted, its sample not taken; the packet passes */
			return TC_ACT_OK;
		}
		if (repeat)
			PDM_COUNT(c, gso_repeat);
	}
	PDM_COUNT(c, read);
	if (created)
		pdm_emit_flow(c, p, PDM_EV_NEW_FLOW, now, f->psntp, 0, 0, skb->ifindex);
	pdm_emit(c, p, PDM_EV_READ, now, f, 0, skb->ifindex);

	if ((cfg.flags & PDM_CFG_STRIP) && only_pdm) {
		/* Give the receiving stack its fast path back (datapath.md, measured findings). */
		if (bpf_skb_adjust_room(skb, -(__s32)len, BPF_ADJ_ROOM_NET, 0) == 0 &&
		    pdm_fix_ipv6_header(skb, p->l3, bpf_ntohs(p->ip6.payload_len) - len, p->proto,
					BPF_F_RECOMPUTE_CSUM) == 0)
			PDM_COUNT(c, stripped);
	}
	return TC_ACT_OK;
}

#endif /* PDM_READ_H */
