// Who may hold a connection to a listening agent before proving who it is. Anyone can
// open a TCP connection; only a peer with a certificate from the deployment's CA
// finishes the handshake. Without limits, idle or half-open connections from one
// host used up the agent's file descriptors and locked every reader out.
//
// - A connection must finish its TLS handshake within `handshakeMs` or is closed.
// - At most `maxPerSource` connections from one address may be mid-handshake; more
//   are closed on arrival. At most `maxUnauthenticated` in all: past that the oldest
//   is closed to make room (a genuine peer's handshake takes milliseconds).
// - At most `maxConnections` in all (authenticated ones included).
// - Handshake failures and refusals are logged at most `LOG_BURST` times per
//   `LOG_WINDOW_MS`, then summarized once per window with counts and top sources.

import type net from "node:net";
import type { Logger } from "./log.ts";

export interface AdmissionLimits {
  handshakeMs: number;
  maxUnauthenticated: number;
  maxPerSource: number;
  maxConnections: number;
}

/**
 * Defaults sized for a deployment of a few thousand readers reconnecting at once
 * after a writer restart (each finishes its handshake in milliseconds), and far
 * below the 20,000 descriptors an agent gets.
 */
export const DEFAULT_ADMISSION: AdmissionLimits = {
  handshakeMs: 5_000,
  maxUnauthenticated: 512,
  maxPerSource: 64,
  maxConnections: 10_000,
};

const LOG_WINDOW_MS = 10_000;
const LOG_BURST = 5;

export type RejectReason = "evicted-oldest" | "too-many-from-source" | "handshake-failed" | "handshake-timeout";

export interface AdmissionStats {
  /** Connections mid-handshake now. */
  unauthenticated: number;
  /** Connections closed on arrival or during the handshake, by reason, since start. */
  rejected: Record<RejectReason, number>;
}

export class AdmissionGate {
  private readonly pendingBySource = new Map<string, number>();
  /**
   * Connections mid-handshake, oldest first, by "address|port" (the TLS socket has the
   * same pair). A genuine peer finishes its handshake in milliseconds, so when the
   * limit is reached the oldest is the one most likely to be stalling on purpose: it
   * is closed to make room, and a flood cannot keep a genuine peer out.
   */
  private readonly pending = new Map<string, { socket: net.Socket; release: () => void }>();
  readonly rejected: Record<RejectReason, number> = {
    "evicted-oldest": 0,
    "too-many-from-source": 0,
    "handshake-failed": 0,
    "handshake-timeout": 0,
  };
  /** The current log window: lines written, and what was not written. */
  private window = { startedAt: 0, lines: 0, suppressed: 0, sources: new Map<string, number>() };
  private summaryTimer: NodeJS.Timeout | undefined;

  constructor(
    readonly limits: AdmissionLimits,
    private readonly log: Logger,
  ) {}

  /**
   * A new TCP connection (the server's `connection` event, before TLS). Returns false
   * when it was closed at once (its source has too many mid-handshake); otherwise it
   * counts as unauthenticated until `authenticated` or its close.
   */
  admit(socket: net.Socket): boolean {
    const source = socket.remoteAddress ?? "?";
    const fromSource = this.pendingBySource.get(source) ?? 0;
    if (fromSource >= this.limits.maxPerSource) {
      this.reject("too-many-from-source", source);
      socket.destroy();
      return false;
    }
    while (this.pending.size >= this.limits.maxUnauthenticated) {
      const [, oldest] = this.pending.entries().next().value!;
      oldest.release();
      this.reject("evicted-oldest", oldest.socket.remoteAddress ?? "?");
      oldest.socket.destroy();
    }
    this.pendingBySource.set(source, fromSource + 1);
    const key = connectionKey(socket);
    let counted = true;
    const release = (): void => {
      if (!counted) return;
      counted = false;
      this.pending.delete(key);
      const left = (this.pendingBySource.get(source) ?? 1) - 1;
      if (left > 0) this.pendingBySource.set(source, left);
      else this.pendingBySource.delete(source);
    };
    this.pending.set(key, { socket, release });
    socket.once("close", release);
    return true;
  }

  /** The handshake finished: the connection no longer counts against the unauthenticated limits. */
  authenticated(socket: net.Socket): void {
    this.pending.get(connectionKey(socket))?.release();
  }

  /** A handshake that failed or timed out: counted, logged within the rate limit. The caller closes it. */
  handshakeFailed(source: string | undefined, error: Error): void {
    const timeout =
      /timed? ?out/i.test(error.message) || (error as NodeJS.ErrnoException).code === "ERR_TLS_HANDSHAKE_TIMEOUT";
    this.reject(timeout ? "handshake-timeout" : "handshake-failed", source ?? "?", error.message);
  }

  stats(): AdmissionStats {
    return { unauthenticated: this.pending.size, rejected: { ...this.rejected } };
  }

  stop(): void {
    if (this.summaryTimer) clearTimeout(this.summaryTimer);
    this.summaryTimer = undefined;
    this.flushSummary();
  }

  private reject(reason: RejectReason, source: string, detail?: string): void {
    this.rejected[reason] += 1;
    const now = Date.now();
    if (now - this.window.startedAt >= LOG_WINDOW_MS) {
      this.flushSummary();
      this.window = { startedAt: now, lines: 0, suppressed: 0, sources: new Map() };
    }
    const w = this.window;
    if (w.lines < LOG_BURST) {
      w.lines += 1;
      this.log.log(
        "warn",
        reason === "handshake-failed" || reason === "handshake-timeout" ? "tls-handshake-failed" : "connection-refused",
        {
          peer: source,
          reason,
          ...(detail !== undefined && { error: detail.slice(0, 200) }),
        },
      );
      return;
    }
    w.suppressed += 1;
    if (w.sources.size < 1_000 || w.sources.has(source)) w.sources.set(source, (w.sources.get(source) ?? 0) + 1);
    // One summary when the window ends, even if nothing else arrives.
    this.summaryTimer ??= setTimeout(
      () => {
        this.summaryTimer = undefined;
        this.flushSummary();
        this.window = { startedAt: Date.now(), lines: 0, suppressed: 0, sources: new Map() };
      },
      LOG_WINDOW_MS - (now - w.startedAt),
    ).unref();
  }

  private flushSummary(): void {
    const w = this.window;
    if (w.suppressed === 0) return;
    const top = [...w.sources]
      .sort((a, b) => b[1] - a[1])
      .slice(0, 3)
      .map(([s, n]) => `${s}:${n}`);
    this.log.log("warn", "connections-refused-summary", {
      notLogged: w.suppressed,
      seconds: LOG_WINDOW_MS / 1000,
      topSources: top.join(","),
    });
    w.suppressed = 0;
    w.sources.clear();
  }
}

const connectionKey = (socket: net.Socket): string => `${socket.remoteAddress}|${socket.remotePort}`;
