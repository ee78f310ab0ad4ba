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

const main = await loadMain();
// Exit explicitly: native handles (libpcap, ring buffers) may outlive a finished
// command. stdout/stderr are synchronous for files and pipes on Linux, so no output is lost.
process.exit(await main(process.argv.slice(2)));
