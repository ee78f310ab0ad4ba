// Which peer prefixes get a label of their own (metrics.md 2): the top N by packets over
// a sliding window, with hysteresis, so that a prefix near the N-th place does not flap
// in and out (each flap would start a new series). A prefix outside the set enters only
// when its count beats the N-th member's by `margin`; a member leaves only after
// `leaveAfter` intervals in a row outside the top N. Everything else is `other`.
// Samples are routed when recorded; history is never moved between series.

export interface TopPrefixesOptions {
  /** Prefixes with a label of their own (default 10). */
  n?: number;
  /** Intervals the window spans (default 6). */
  windowIntervals?: number;
  /** A newcomer must beat the N-th member's count by this fraction (default 0.2). */
  margin?: number;
  /** Intervals in a row outside the top N before a member leaves (default 3). */
  leaveAfter?: number;
  /** Distinct prefixes counted per interval at most; the rest are not ranked (memory bound, default 10,000). */
  maxCandidates?: number;
}

export class TopPrefixes {
  private readonly n: number;
  private readonly windowIntervals: number;
  private readonly margin: number;
  private readonly leaveAfter: number;
  private readonly maxCandidates: number;
  /** Counts of the interval in progress, then of the earlier ones (newest first). */
  private current = new Map<string, number>();
  private readonly past: Array<Map<string, number>> = [];
  /** The members, each with the intervals in a row it has spent outside the top N. */
  private readonly members = new Map<string, number>();

  constructor(options: TopPrefixesOptions = {}) {
    this.n = options.n ?? 10;
    this.windowIntervals = options.windowIntervals ?? 6;
    this.margin = options.margin ?? 0.2;
    this.leaveAfter = options.leaveAfter ?? 3;
    this.maxCandidates = options.maxCandidates ?? 10_000;
  }

  /** Count `packets` for `prefix`; its label now: the prefix itself if a member, else `other`. */
  count(prefix: string, packets = 1): boolean {
    const had = this.current.get(prefix);
    if (had !== undefined || this.current.size < this.maxCandidates) this.current.set(prefix, (had ?? 0) + packets);
    return this.members.has(prefix);
  }

  isMember(prefix: string): boolean {
    return this.members.has(prefix);
  }

  get memberList(): string[] {
    return [...this.members.keys()];
  }

  /** Prefixes counted in the window (bounded by maxCandidates per interval). */
  get rankedCount(): number {
    return this.past.reduce((n, m) => n + m.size, this.current.size);
  }

  /** End an interval: rank the window, let newcomers in and leavers out. */
  endInterval(): void {
    this.past.unshift(this.current);
    this.current = new Map();
    if (this.past.length > this.windowIntervals) this.past.pop();
    const totals = new Map<string, number>();
    for (const interval of this.past) for (const [p, c] of interval) totals.set(p, (totals.get(p) ?? 0) + c);
    const ranked = [...totals].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));
    const top = new Set(ranked.slice(0, this.n).map(([p]) => p));
    // Members outside the top N age; after leaveAfter intervals they go.
    for (const [p, out] of this.members) {
      if (top.has(p)) this.members.set(p, 0);
      else if (out + 1 >= this.leaveAfter) this.members.delete(p);
      else this.members.set(p, out + 1);
    }
    // Newcomers from the top N enter while there is room, or by beating the weakest member by the margin.
    for (const [p, c] of ranked.slice(0, this.n)) {
      if (this.members.has(p)) continue;
      if (this.members.size < this.n) {
        this.members.set(p, 0);
        continue;
      }
      const weakest = [...this.members.keys()].reduce((w, m) => ((totals.get(m) ?? 0) < (totals.get(w) ?? 0) ? m : w));
      if (c > (totals.get(weakest) ?? 0) * (1 + this.margin)) {
        this.members.delete(weakest);
        this.members.set(p, 0);
      }
    }
  }
}
