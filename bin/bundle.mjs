// The CLI's prebuilt bundle: dist/*.mjs, made from the TypeScript sources by esbuild.
//
// Why: running the .ts sources through tsx costs about 0.4 s per command (the
// loader, and compiling every module on each start). The bundle starts in about a
// third of that. `bin/pdm.js` rebuilds it whenever a source file is newer (about
// 0.2 s, once), so an edited checkout never runs stale code, and it falls back to
// tsx when dist/ cannot be written.
//
// Entries are split into chunks, so a command loads only what it uses (the agent's
// X.509 stack, for one, is not loaded by `pdm analyze`). Chunk names carry their
// content hash and entries are written last by rename: two processes building at
// once each leave a complete, consistent bundle.

import { existsSync, mkdirSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { basename, dirname, join, relative } from "node:path";

export const ROOT = join(import.meta.dirname, "..");
export const DIST = join(ROOT, "dist");
export const SOURCE_DIRS = ["cli", "pdm", "analyzer", "metrics", "probes", "lab"];
/** Entry points: file in the tree -> bundle name in dist/. */
export const ENTRIES = { pdm: "cli/main.ts", "shard-worker": "analyzer/parallel/shard-worker.ts" };
const STAMP = join(DIST, "pdm.mjs"); // written last: its mtime is the bundle's
/** Chunks of earlier builds are removed after this long (a running command may still import one). */
const OLD_CHUNK_MS = 60 * 60 * 1000;

function newestSource() {
  let newest = statSync(join(ROOT, "package.json")).mtimeMs;
  const walk = (dir) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      if (e.isDirectory()) {
        if (e.name !== "build" && e.name !== "node_modules") walk(join(dir, e.name));
      } else if (e.name.endsWith(".ts")) {
        newest = Math.max(newest, statSync(join(dir, e.name)).mtimeMs);
      }
    }
  };
  // An installed package carries the bundle without the sources: nothing to compare.
  for (const d of SOURCE_DIRS) if (existsSync(join(ROOT, d))) walk(join(ROOT, d));
  return newest;
}

/** True when dist/ holds a bundle at least as new as every source file. */
export function bundleIsFresh() {
  if (!existsSync(STAMP)) return false;
  return statSync(STAMP).mtimeMs >= newestSource();
}

/** Build dist/ (throws if esbuild is missing or the sources do not compile). */
export async function buildBundle() {
  const esbuild = await import("esbuild");
  const result = await esbuild.build({
    absWorkingDir: ROOT,
    entryPoints: Object.entries(ENTRIES).map(([out, src]) => ({ out, in: src })),
    bundle: true,
    splitting: true,
    format: "esm",
    platform: "node",
    target: "node20",
    packages: "external",
    outdir: DIST,
    outExtension: { ".js": ".mjs" },
    chunkNames: "chunk-[hash]",
    write: false,
    logLevel: "silent",
  });
  mkdirSync(DIST, { recursive: true });
  const entryFiles = new Set(Object.keys(ENTRIES).map((name) => join(DIST, `${name}.mjs`)));
  const ordered = [...result.outputFiles].sort(
    (a, b) =>
      Number(entryFiles.has(a.path)) - Number(entryFiles.has(b.path)) || (a.path === STAMP) - (b.path === STAMP),
  );
  for (const file of ordered) {
    if (relative(DIST, file.path).startsWith("..")) throw new Error(`esbuild wrote outside dist/: ${file.path}`);
    const tmp = join(dirname(file.path), `.${basename(file.path)}.${process.pid}.tmp`);
    writeFileSync(tmp, file.contents);
    renameSync(tmp, file.path);
  }
  const current = new Set(result.outputFiles.map((f) => basename(f.path)));
  for (const name of readdirSync(DIST)) {
    const path = join(DIST, name);
    if (name.startsWith("chunk-") && !current.has(name) && Date.now() - statSync(path).mtimeMs > OLD_CHUNK_MS)
      rmSync(path, { force: true });
  }
}
