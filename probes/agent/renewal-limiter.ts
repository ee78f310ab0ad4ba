// Renewals a peer may cause. A reader that lost its keys (restarted) makes the
// writers renew the deployment's generation, so that it has keys to seal with again
// (keys.md section 7). One reader-server certificate reconnecting as if restarted,
// again and again, forced 20 renewals in 9 s: every other reader was reprovisioned
// each time. So a peer causes at most one renewal per interval; its restarts within
// the interval are served by one renewal at the interval's end (the peer only waits
// longer for keys it may seal with, and opens with the old ones meanwhile).

export interface RenewalLimiterStats {
  /** Renewals asked for at once. */
  renewalsRequested: number;
  /** Restarts whose renewal waited for the peer's interval to end (several share one). */
  renewalsDeferred: number;
}

export class RenewalLimiter {
  private readonly lastRenewal = new Map<string, number>();
  private deferred: { timer: NodeJS.Timeout; peers: Set<string> } | undefined;
  readonly stats: RenewalLimiterStats = { renewalsRequested: 0, renewalsDeferred: 0 };

  constructor(
    private readonly intervalMs: number,
    private readonly renew: (reason: string) => void,
    private readonly now: () => number = Date.now,
  ) {}

  /** `peer` (a certificate fingerprint) needs a fresh generation. */
  request(peer: string, reason: string): "now" | "deferred" {
    const now = this.now();
    this.forgetBefore(now - this.intervalMs);
    const last = this.lastRenewal.get(peer);
    const waiting = this.deferred?.peers.has(peer) ?? false;
    if (!waiting && (last === undefined || now - last >= this.intervalMs)) {
      this.lastRenewal.set(peer, now);
      this.stats.renewalsRequested += 1;
      this.renew(reason);
      return "now";
    }
    this.stats.renewalsDeferred += 1;
    if (!this.deferred) {
      const timer = setTimeout(() => this.fireDeferred(reason), Math.max(0, (last ?? now) + this.intervalMs - now));
      timer.unref();
      this.deferred = { timer, peers: new Set() };
    }
    this.deferred.peers.add(peer);
    return "deferred";
  }

  stop(): void {
    if (this.deferred) clearTimeout(this.deferred.timer);
    this.deferred = undefined;
  }

  private fireDeferred(reason: string): void {
    const peers = this.deferred?.peers ?? new Set<string>();
    this.deferred = undefined;
    const now = this.now();
    for (const p of peers) this.lastRenewal.set(p, now);
    this.stats.renewalsRequested += 1;
    this.renew(
      `${reason} (deferred: ${peers.size} peer(s) restarted within ${this.intervalMs / 1000} s of their last renewal)`,
    );
  }

  /** Peers whose last renewal is older than the interval need no memory (bounded by the peers active in one interval). */
  private forgetBefore(cutoff: number): void {
    if (this.lastRenewal.size < 1_024) return;
    for (const [peer, at] of this.lastRenewal)
      if (at < cutoff && !this.deferred?.peers.has(peer)) this.lastRenewal.delete(peer);
  }
}
