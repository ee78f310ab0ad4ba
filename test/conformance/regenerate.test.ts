// The checked-in vectors and fixture captures are exactly what the generators in
// the repo produce: rerun both into a temporary folder and compare byte for byte.

import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const root = join(import.meta.dirname, "..", "..");
let tmp: string;
before(() => {
  tmp = mkdtempSync(join(tmpdir(), "pdm-regen-"));
});
after(() => rmSync(tmp, { recursive: true, force: true }));

function sameFiles(checkedIn: string, generated: string): void {
  const names = readdirSync(generated).sort();
  assert.ok(names.length > 3);
  for (const name of names) {
    assert.ok(
      readFileSync(join(generated, name)).equals(readFileSync(join(checkedIn, name))),
      `${name} differs from the generator's output`,
    );
  }
}

describe("generators reproduce the checked-in files", () => {
  it("fixtures/vectors/*.json", () => {
    execFileSync(process.execPath, ["--import", "tsx", join(root, "scripts", "gen-vectors.ts"), join(tmp, "vectors")], {
      stdio: "ignore",
    });
    sameFiles(join(root, "fixtures", "vectors"), join(tmp, "vectors"));
  });
  it("fixtures/captures/*", () => {
    execFileSync(
      process.execPath,
      ["--import", "tsx", join(root, "scripts", "gen-fixtures.ts"), "--out", join(tmp, "captures")],
      { stdio: "ignore" },
    );
    sameFiles(join(root, "fixtures", "captures"), join(tmp, "captures"));
  });
});
