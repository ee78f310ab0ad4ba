// The agent's connections to its writer or master come back by themselves: an attempt
// that ends, well or badly, is made again after a wait that doubles from 200 ms to 5 s,
// and starts over at 200 ms once an attempt got somewhere (keys installed, registered).

export const RECONNECT_MIN_MS = 200;
export const RECONNECT_MAX_MS = 5_000;

export interface RetryLoop {
  stopped: () => boolean;
  /** Waits between attempts; stop() cuts it short. */
  pause: (ms: number) => Promise<void>;
  /** One connection's life. `succeeded` resets the wait; `retryMs` says what it is now. */
  attempt: (succeeded: () => void, retryMs: () => number) => Promise<void>;
  /** An attempt threw (never called once stopped). */
  failed: (error: unknown, retryMs: number) => void;
}

export async function retryForever(loop: RetryLoop): Promise<void> {
  let backoff = RECONNECT_MIN_MS;
  while (!loop.stopped()) {
    try {
      await loop.attempt(
        () => (backoff = RECONNECT_MIN_MS),
        () => backoff,
      );
    } catch (e) {
      if (loop.stopped()) return;
      loop.failed(e, backoff);
    }
    await loop.pause(backoff);
    backoff = Math.min(backoff * 2, RECONNECT_MAX_MS);
  }
}
