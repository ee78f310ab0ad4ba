// Every byte a command prints arrives, whatever stdout is: a pipe whose reader is
// slower than pdm (the kernel's pipe holds 64 KiB; the rest waits in Node's queue
// and must not be dropped at exit), or a file.

import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { writeSimulatedCapture, largeScenario } from "../../fixtures/index.ts";

const root = join(import.meta.dirname, "..", "..");
const pdm = join(root, "bin", "pdm.js");

/** Run `pdm args | (sleep; cat)` in a shell: the reader starts late, so the pipe fills. */
function throughSlowPipe(args: string[]): { code: number; stdout: string; stderr: string } {
  const quoted = args.map((a) => `'${a}'`).join(" ");
  const r = spawnSync("bash", ["-c", `set -o pipefail; '${process.execPath}' '${pdm}' ${quoted} | (sleep 0.3; cat)`], {
    encoding: "utf8",
    maxBuffer: 64 * 1024 * 1024,
  });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

describe("command output arrives whole", () => {
  const dir = mkdtempSync(join(tmpdir(), "pdm-output-"));
  let capture: string;
  before(() => {
    // 3,000 flows: several megabytes of JSON, far beyond a pipe's 64 KiB.
    capture = writeSimulatedCapture(join(dir, "many"), "pcapng", largeScenario("rfc8250", 30_000, 3_000, 128)).capture;
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("JSON through a slow pipe parses and lists every flow", () => {
    const r = throughSlowPipe(["analyze", "-r", capture, "-f", "json"]);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(r.stdout.length > 2 * 1024 * 1024, `only ${r.stdout.length} bytes arrived`);
    const json = JSON.parse(r.stdout) as { flows: unknown[] };
    assert.equal(json.flows.length, 3_000);
  });

  it("CSV and the table through a slow pipe end with their last flow", () => {
    const csv = throughSlowPipe(["analyze", "-r", capture, "-f", "csv"]);
    assert.equal(csv.code, 0, csv.stderr);
    assert.equal(csv.stdout.trim().split("\n").length, 3_001, "header and one row per flow");
    const table = throughSlowPipe(["analyze", "-r", capture]);
    assert.equal(table.code, 0, table.stderr);
    assert.ok(table.stdout.length > 256 * 1024, `only ${table.stdout.length} bytes of table arrived`);
    assert.ok(table.stdout.endsWith("\n"), "the table ends with a whole line");
  });

  it("a file gets the same bytes as the pipe", () => {
    const out = join(dir, "out.json");
    const r = spawnSync("bash", ["-c", `'${process.execPath}' '${pdm}' analyze -r '${capture}' -f json > '${out}'`]);
    assert.equal(r.status, 0, String(r.stderr));
    const piped = throughSlowPipe(["analyze", "-r", capture, "-f", "json"]).stdout;
    assert.equal(readFileSync(out, "utf8"), piped);
  });
});
