// The CLI's dist/ bundle (bin/bundle.mjs): same behaviour as the TypeScript sources,
// rebuilt when a source changes, and the fallback to tsx when it cannot be used.

import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { cpSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const root = join(import.meta.dirname, "..", "..");
const fixture = join(root, "fixtures", "captures", "v2-protected.pcapng");
const keys = join(root, "fixtures", "captures", "v2-protected.keys");

/** The packages a bundle entry loads before it runs: its static imports, through its chunks. */
function staticPackages(dist: string, entry: string): string[] {
  const packages = new Set<string>();
  const seen = new Set<string>();
  const queue = [entry];
  // `import ... from "x"` and `import "x"` statements; not import("x"), which loads when called.
  const statement = /(?:^|\n)\s*import\s*(?:[^;"']*?\sfrom\s*)?["']([^"']+)["']/g;
  for (let file = queue.pop(); file !== undefined; file = queue.pop()) {
    if (seen.has(file)) continue;
    seen.add(file);
    for (const [, spec] of readFileSync(join(dist, file), "utf8").matchAll(statement)) {
      if (spec!.startsWith("./")) queue.push(spec!.slice(2));
      else if (!spec!.startsWith("node:")) packages.add(spec!);
    }
  }
  return [...packages].sort();
}

function pdm(bin: string, args: string[], env: Record<string, string> = {}) {
  return spawnSync(process.execPath, [bin, ...args], { encoding: "utf8", env: { ...process.env, ...env } });
}

describe("dist bundle", () => {
  it("gives the same output as the sources run through tsx", () => {
    const args = ["analyze", "-r", fixture, "-k", keys, "-f", "json"];
    const bundled = pdm(join(root, "bin", "pdm.js"), args);
    const sources = pdm(join(root, "bin", "pdm.js"), args, { PDM_NO_BUNDLE: "1" });
    assert.equal(bundled.status, 0, bundled.stderr);
    assert.equal(sources.status, 0, sources.stderr);
    assert.equal(bundled.stdout, sources.stdout);
    assert.ok(JSON.parse(bundled.stdout).flows.length > 0);
  });

  describe("in a copy of the checkout", () => {
    let copy: string;
    before(() => {
      copy = mkdtempSync(join(tmpdir(), "pdm-bundle-"));
      for (const d of ["bin", "cli", "pdm", "analyzer", "metrics", "probes", "lab", "package.json"]) {
        cpSync(join(root, d), join(copy, d), {
          recursive: true,
          filter: (src) => !src.includes(`${join("probes", "datapath", "native", "build")}`),
        });
      }
      symlinkSync(join(root, "node_modules"), join(copy, "node_modules"));
    });
    after(() => rmSync(copy, { recursive: true, force: true }));

    it("builds dist/ on first use, and rebuilds only after a source file changes", async () => {
      const bin = join(copy, "bin", "pdm.js");
      const first = pdm(bin, ["--version"]);
      assert.equal(first.status, 0, first.stderr);
      const entry = join(copy, "dist", "pdm.mjs");
      const built = statSync(entry).mtimeMs;
      assert.equal(pdm(bin, ["--version"]).status, 0);
      assert.equal(statSync(entry).mtimeMs, built, "fresh bundle: not rebuilt");
      const later = new Date(Date.now() + 5_000);
      utimesSync(join(copy, "analyzer", "stats.ts"), later, later);
      const after = pdm(bin, ["--version"]);
      assert.equal(after.status, 0, after.stderr);
      assert.ok(statSync(entry).mtimeMs > built, "an edited source triggers a rebuild");
    });

    it("starts loading only commander: other libraries load with the commands that use them", () => {
      assert.equal(pdm(join(copy, "bin", "pdm.js"), ["--version"]).status, 0);
      // X.509 and HPKE (agent, ca, keys), prom-client and OpenTelemetry (service,
      // capture --metrics), the chart renderer (report) cost 0.3 s a start together.
      assert.deepEqual(staticPackages(join(copy, "dist"), "pdm.mjs"), ["@commander-js/extra-typings"]);
      assert.deepEqual(staticPackages(join(copy, "dist"), "shard-worker.mjs"), []);
    });

    it("falls back to the sources when dist/ cannot be written", () => {
      rmSync(join(copy, "dist"), { recursive: true, force: true });
      writeFileSync(join(copy, "dist"), "not a directory"); // the build fails on mkdir/write
      const r = pdm(join(copy, "bin", "pdm.js"), ["analyze", "-r", fixture, "-k", keys, "-f", "csv"]);
      assert.equal(r.status, 0, r.stderr);
      assert.match(r.stdout, /^flow,/m);
    });
  });
});
