// What a direction of a flow remembers of the stamps it sent, for pairing each answer
// with the packet it answers (wire.md 3).

/** Recent stamps kept per direction for pairing (indexed by PSNTP), at most. */
const HISTORY = 1024;
/** Slots a direction starts with: most flows are short, and a capture may hold millions of them. */
const FIRST_SLOTS = 8;

/**
 * The stamps one direction sent recently, by PSNTP: what a packet of the other
 * direction names in its PSNLR. One slot = (psnTp, psnLr, deltaTlrNs) side by side,
 * so that remembering or recalling a stamp touches one cache line. The ring starts
 * small and doubles instead of overwriting another stamp, up to HISTORY slots: it
 * holds exactly what a ring of HISTORY slots would, in memory that grows with the
 * flow (a fixed 24 KiB per direction took 1.2 GB for 20,000 short flows).
 */
export class StampHistory {
  private stamps = new Float64Array(FIRST_SLOTS * 3).fill(-1);
  private slotMask = FIRST_SLOTS - 1;

  remember(psnTp: number, psnLr: number, deltaTlrNs: number): void {
    let i = (psnTp & this.slotMask) * 3;
    for (
      let held = this.stamps[i]!;
      held !== psnTp && held !== -1 && this.slotMask + 1 < HISTORY;
      held = this.stamps[i]!
    ) {
      this.grow();
      i = (psnTp & this.slotMask) * 3;
    }
    this.stamps[i] = psnTp;
    this.stamps[i + 1] = psnLr;
    this.stamps[i + 2] = deltaTlrNs;
  }

  /** Where the stamp sent with `psnTp` is kept, or -1 if forgotten (no allocation: hot path). */
  recall(psnTp: number): number {
    const i = (psnTp & this.slotMask) * 3;
    return this.stamps[i] === psnTp ? i : -1;
  }
  psnLrOf(slot: number): number {
    return this.stamps[slot + 1]!;
  }
  deltaTlrNsOf(slot: number): number {
    return this.stamps[slot + 2]!;
  }

  /** Slots now (tests, memory). */
  get slots(): number {
    return this.slotMask + 1;
  }

  /** Double the ring (stamps in distinct slots stay distinct: a slot is PSNTP modulo a power of two). */
  private grow(): void {
    const old = this.stamps;
    const slots = (this.slotMask + 1) * 2;
    const stamps = new Float64Array(slots * 3).fill(-1);
    for (let i = 0; i < old.length; i += 3) {
      if (old[i] === -1) continue;
      const j = (old[i]! & (slots - 1)) * 3;
      stamps[j] = old[i]!;
      stamps[j + 1] = old[i + 1]!;
      stamps[j + 2] = old[i + 2]!;
    }
    this.stamps = stamps;
    this.slotMask = slots - 1;
  }
}
