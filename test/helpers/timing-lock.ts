// A machine-wide lock for the tests whose assertions depend on timing (injected
// delays measured through user-space delay bridges). The test runner runs files in
// parallel; two such files at once steal each other's CPU and the bridges fall late.
// The lock is a directory (mkdir is atomic) holding the owner's PID, so a lock left
// by a killed run is taken over once its owner is gone.

import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";

const LOCK = "/run/pdm-test-timing.lock";

function ownerAlive(): boolean {
  try {
    const pid = Number(readFileSync(`${LOCK}/pid`, "utf8"));
    process.kill(pid, 0);
    return true;
  } catch (e) {
    // EPERM: alive but not ours to signal; anything else: gone or half-written
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

export async function acquireTimingLock(timeoutMs = 300_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      mkdirSync(LOCK);
      writeFileSync(`${LOCK}/pid`, String(process.pid));
      return;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
    }
    await new Promise((r) => setTimeout(r, 250));
    if (!ownerAlive()) {
      // Give a just-created lock time to get its pid file before calling it stale.
      await new Promise((r) => setTimeout(r, 500));
      if (!ownerAlive()) rmSync(LOCK, { recursive: true, force: true });
    }
    if (Date.now() > deadline) throw new Error(`timing lock ${LOCK} still held after ${timeoutMs / 1000} s`);
  }
}

export function releaseTimingLock(): void {
  try {
    if (Number(readFileSync(`${LOCK}/pid`, "utf8")) === process.pid) rmSync(LOCK, { recursive: true, force: true });
  } catch {
    // not held
  }
}
