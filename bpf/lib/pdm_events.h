/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * pdm_events.h: the measurement records user space reads from pdm_events (struct
 * pdm_event, pdm_abi.h), when cfg.flags has PDM_CFG_EVENTS. A full ring loses the
 * record, never the packet: events_lost counts it.
 */
#ifndef PDM_EVENTS_H
#define PDM_EVENTS_H

#include "pdm_maps.h"

/* An event of `type` for packet `p` with an option's fields (zeros where the type
 * carries none). Scalars rather than a struct: the callers' stacks are nearly full. */
static __always_inline void pdm_event_set(struct pdm_event *e, const struct pdm_pkt *p, __u8 type, __u64 now,
					  __u32 psntp, __u32 psnlr, __u16 dtlr, __u8 stlr, __u16 dtls, __u8 stls,
					  __u32 gp, __u16 rn_f, __u32 kri, __u8 flags, __u32 ifindex)
{
	e->ktime_ns = now;
	__builtin_memcpy(e->src, &p->ip6.saddr, 16);
	__builtin_memcpy(e->dst, &p->ip6.daddr, 16);
	e->src_port = p->wire_sport;
	e->dst_port = p->wire_dport;
	e->psntp = psntp;
	e->psnlr = psnlr;
	e->delta_tlr = dtlr;
	e->delta_tls = dtls;
	e->random_f = rn_f;
	e->scale_dtlr = stlr;
	e->scale_dtls = stls;
	e->global_pointer = gp;
	e->kri = kri;
	e->ifindex = ifindex;
	e->type = type;
	e->layout = (__u8)cfg.layout;
	e->proto = p->proto;
	e->flags = flags;
}

static __always_inline void pdm_event_fill(struct pdm_event *e, const struct pdm_pkt *p, __u8 type, __u64 now,
					   const struct pdm_fields *f, __u8 flags, __u32 ifindex)
{
	pdm_event_set(e, p, type, now, f->psntp, f->psnlr, f->dtlr, f->stlr, f->dtls, f->stls, f->gp, f->rn_f, f->kri,
		      flags, ifindex);
}

static __always_inline void pdm_emit_values(struct pdm_counters *c, const struct pdm_pkt *p, __u8 type, __u64 now,
					    __u32 psntp, __u32 psnlr, __u16 dtlr, __u8 stlr, __u16 dtls, __u8 stls,
					    __u32 gp, __u16 rn_f, __u32 kri, __u8 flags, __u32 ifindex)
{
	if (!(cfg.flags & PDM_CFG_EVENTS))
		return;
	struct pdm_event *e = bpf_ringbuf_reserve(&pdm_events, sizeof(*e), 0);
	if (!e) {
		PDM_COUNT(c, events_lost);
		return;
	}
	pdm_event_set(e, p, type, now, psntp, psnlr, dtlr, stlr, dtls, stls, gp, rn_f, kri, flags, ifindex);
	bpf_ringbuf_submit(e, 0);
}

/* A packet's event (PDM_EV_STAMPED, PDM_EV_READ) with its option's fields. */
static __always_inline void pdm_emit(struct pdm_counters *c, const struct pdm_pkt *p, __u8 type, __u64 now,
				     const struct pdm_fields *f, __u8 flags, __u32 ifindex)
{
	pdm_emit_values(c, p, type, now, f->psntp, f->psnlr, f->dtlr, f->stlr, f->dtls, f->stls, f->gp, f->rn_f, f->kri,
			flags, ifindex);
}

/* A flow event (PDM_EV_NEW_FLOW, PDM_EV_ROTATED): the PSNTP, Random Number and F, Kri
 * of the packet that caused it, no delays. */
static __always_inline void pdm_emit_flow(struct pdm_counters *c, const struct pdm_pkt *p, __u8 type, __u64 now,
					  __u32 psntp, __u16 rn_f, __u32 kri, __u32 ifindex)
{
	pdm_emit_values(c, p, type, now, psntp, 0, 0, 0, 0, 0, 0, rn_f, kri, 0, ifindex);
}

#endif /* PDM_EVENTS_H */
