// The layering is a tested fact: every import between folders must be an edge of the
// table below, and must go through the imported folder's index.ts (its whole public
// surface). The README's architecture picture is the same table; this test reads it
// from there, so the picture cannot drift from the code either.

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, readdirSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";

const ROOT = join(import.meta.dirname, "..");

/** Each folder with one idea, and the folders it may import from. */
const ALLOWED: Record<string, string[]> = {
  pdm: [],
  analyzer: ["pdm"],
  metrics: ["pdm"],
  "probes/datapath": ["pdm"],
  "probes/kernel-keys": ["pdm", "probes/datapath"],
  "probes/live": ["pdm", "probes/datapath"],
  "probes/ksp": ["pdm"],
  "probes/agent": ["pdm", "probes/datapath", "probes/kernel-keys", "probes/ksp"],
  fixtures: ["pdm", "analyzer"],
  lab: ["pdm", "probes/datapath", "probes/agent", "probes/ksp"],
  cli: [
    "pdm",
    "analyzer",
    "metrics",
    "probes/datapath",
    "probes/kernel-keys",
    "probes/live",
    "probes/ksp",
    "probes/agent",
    "lab",
  ],
  scripts: ["pdm", "fixtures", "lab"],
  bench: [
    "pdm",
    "analyzer",
    "metrics",
    "probes/datapath",
    "probes/kernel-keys",
    "probes/live",
    "probes/ksp",
    "probes/agent",
    "lab",
    "fixtures",
  ],
  test: [
    "pdm",
    "analyzer",
    "metrics",
    "probes/datapath",
    "probes/kernel-keys",
    "probes/live",
    "probes/ksp",
    "probes/agent",
    "lab",
    "fixtures",
    "cli",
  ],
  bin: ["cli"],
};
/** Folders with a surface of their own: imported only through index.ts. */
const WITH_SURFACE = new Set([
  "pdm",
  "analyzer",
  "metrics",
  "probes/datapath",
  "probes/kernel-keys",
  "probes/live",
  "probes/ksp",
  "probes/agent",
  "fixtures",
  "lab",
]);
/**
 * Modules of constants that may be imported past their folder's index.ts: the
 * command-line definitions name them, and the index would load heavy libraries at
 * every start (the agent's X.509 and HPKE).
 */
const LIGHT_SURFACES = new Set(["probes/agent/roles.ts"]);
/** What the CLI's entry points are (bin/ starts cli/main.ts; tests run the CLI's report renderer). */
const ENTRY_POINTS = new Set(["cli/main.ts", "cli/report-png.ts"]);

const UNITS = Object.keys(ALLOWED).sort((a, b) => b.length - a.length);
const unitOf = (path: string): string | undefined => UNITS.find((u) => path === u || path.startsWith(`${u}/`));

function sources(): string[] {
  const out: string[] = [];
  const walk = (dir: string): void => {
    for (const e of readdirSync(join(ROOT, dir))) {
      if (["node_modules", "build", "dist", "out", "captures", "vectors"].includes(e)) continue;
      const path = dir ? `${dir}/${e}` : e;
      if (statSync(join(ROOT, path)).isDirectory()) walk(path);
      else if (/\.(ts|mts|mjs|js)$/.test(e)) out.push(path);
    }
  };
  for (const u of new Set(UNITS.map((u) => u.split("/")[0]!))) walk(u);
  return out;
}

interface Import {
  from: string;
  to: string;
}

function imports(): Import[] {
  const found: Import[] = [];
  const pattern =
    /(?:^|\n)\s*(?:import|export)\b[^"';]*?\bfrom\s*["'](\.{1,2}\/[^"']+)["']|\bimport\(\s*["'](\.{1,2}\/[^"']+)["']\s*\)/g;
  for (const file of sources()) {
    const text = readFileSync(join(ROOT, file), "utf8");
    for (const m of text.matchAll(pattern)) {
      const spec = (m[1] ?? m[2])!;
      found.push({ from: file, to: relative(ROOT, resolve(ROOT, dirname(file), spec)) });
    }
  }
  return found;
}

/** The README's picture: lines "folder  -> a, b" (or "-> nothing") in the block after "## Architecture". */
function readmePicture(): Record<string, string[]> {
  const readme = readFileSync(join(ROOT, "README.md"), "utf8");
  const section = readme.split(/^## Architecture$/m)[1];
  assert.ok(section, 'README.md has a "## Architecture" section');
  const block = /```text\n([\s\S]*?)```/.exec(section);
  assert.ok(block, "with a ```text block that draws the layering");
  const picture: Record<string, string[]> = {};
  for (const line of block[1]!.split("\n")) {
    const m = /^\s*(\S+)\/?\s+->\s+(.+?)\s*$/.exec(line);
    if (!m) continue;
    picture[m[1]!.replace(/\/$/, "")] = m[2] === "nothing" ? [] : m[2]!.split(/,\s*/).map((s) => s.replace(/\/$/, ""));
  }
  return picture;
}

describe("architecture", () => {
  const all = imports();

  it("finds the imports it checks", () => {
    assert.ok(all.length > 300, `${all.length} relative imports found`);
    assert.ok(all.some((i) => i.from.startsWith("probes/agent/") && i.to === "probes/kernel-keys/index.ts"));
  });

  it("every import between folders is an edge of the table", () => {
    const bad = all.flatMap(({ from, to }) => {
      const a = unitOf(from);
      const b = unitOf(to);
      if (!a) return [`${from}: not in any folder of the table`];
      if (!b || a === b) return [];
      return ALLOWED[a]!.includes(b) ? [] : [`${from} imports ${to}: ${a} -> ${b} is not an allowed edge`];
    });
    assert.deepEqual(bad, []);
  });

  it("a folder with a surface is imported only through its index.ts", () => {
    const bad = all.flatMap(({ from, to }) => {
      const a = unitOf(from);
      const b = unitOf(to);
      if (!b || a === b || !WITH_SURFACE.has(b) || to === `${b}/index.ts` || LIGHT_SURFACES.has(to)) return [];
      return [`${from} imports ${to}, not ${b}/index.ts`];
    });
    assert.deepEqual(bad, []);
  });

  it("only the CLI's entry points are imported from outside cli/", () => {
    const bad = all
      .filter(({ from, to }) => unitOf(to) === "cli" && unitOf(from) !== "cli" && !ENTRY_POINTS.has(to))
      .map(({ from, to }) => `${from} imports ${to}`);
    assert.deepEqual(bad, []);
  });

  it("the README's architecture picture is this table", () => {
    assert.deepEqual(readmePicture(), ALLOWED);
  });
});
