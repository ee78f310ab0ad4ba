#!/usr/bin/env node
// Installed entry point. Runs the prebuilt bundle in dist/ (fast start), rebuilding
// it first if a source file changed (bin/bundle.mjs). If it cannot be built (no
// esbuild, read-only checkout) or PDM_NO_BUNDLE is set, runs the TypeScript sources
// through tsx instead; the behaviour is the same, only start-up is slower.
import { buildBundle, bundleIsFresh, DIST } from "./bundle.mjs";

async function loadMain() {
  if (!process.env.PDM_NO_BUNDLE) {
    try {
      if (!bundleIsFresh()) await buildBundle();
      return (await import(`${DIST}/pdm.mjs`)).main;
    } catch {
      // fall through to the sources
    }
  }
  const { register } = await import("tsx/esm/api");
  register();
  return (await import("../cli/main.ts")).main;
}

/**
 * Resolves once everything written to `stream` so far has reached the kernel. A pipe
 * whose reader is slower than us holds the rest in Node's queue, and process.exit()
 * would drop it (output cut at the pipe's 64 KiB, with exit status 0).
 */
function drained(stream) {
  return new Promise((resolve) => {
    if (stream.destroyed || !stream.writable) return resolve();
    stream.once("error", resolve); // EPIPE: the reader left, nothing more can arrive
    stream.write("", () => resolve());
  });
}

// `pdm ... | head` closes the pipe early: that is the reader's choice, not an error.
process.stdout.on("error", (e) => {
  if (e.code === "EPIPE") process.exit(0);
  throw e;
});

const main = await loadMain();
// A typed error has become a message and a code in main; anything else is a bug.
const code = await main(process.argv.slice(2)).catch((e) => {
  process.stderr.write(`pdm: internal error: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  return 70;
});
await Promise.all([drained(process.stdout), drained(process.stderr)]);
// Exit explicitly: native handles (libpcap, ring buffers) may outlive a finished command.
process.exit(code);
