// The installed `pdm` program, run as a user would run it: exit codes, output
// formats, help that teaches, and one-sentence errors.

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { readFileSync } from "node:fs";

const root = join(import.meta.dirname, "..", "..");
const captures = join(root, "fixtures", "captures");

function pdm(...args: string[]): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [join(root, "bin", "pdm.js"), ...args], { encoding: "utf8", cwd: root });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

describe("pdm CLI", () => {
  it("--version prints the package version", () => {
    const r = pdm("--version");
    assert.equal(r.code, 0);
    assert.match(r.stdout.trim(), /^\d+\.\d+\.\d+$/);
  });

  it("--help lists the commands; analyze --help explains the three delays with examples", () => {
    const top = pdm("--help");
    assert.equal(top.code, 0);
    assert.match(top.stdout, /analyze/);
    assert.match(top.stdout, /demo/);
    const help = pdm("analyze", "--help");
    assert.match(help.stdout, /round-trip delay/);
    assert.match(help.stdout, /Examples:/);
  });

  it("analyze prints a table, JSON and CSV with the same figures", () => {
    const file = join(captures, "rfc8250-udp.pcap");
    const table = pdm("analyze", "-r", file);
    assert.equal(table.code, 0, table.stderr);
    assert.match(table.stdout, /udp \[fd00:1::10\]:40001 -> \[fd00:3::30\]:7/);
    assert.match(table.stdout, /packets lost before the capture point/);
    const json = JSON.parse(pdm("analyze", "-r", file, "--format", "json").stdout);
    assert.equal(json.flows.length, 2);
    assert.ok(json.flows[0].responseTimeNs.p99 >= json.flows[1].responseTimeNs.p99, "worst p99 first");
    const csv = pdm("analyze", "-r", file, "-f", "csv").stdout.trim().split("\n");
    assert.equal(csv.length, 3);
    assert.ok(csv[0]!.includes("server_delay_ns_p50"));
    const p50col = csv[0]!.split(",").indexOf("server_delay_ns_p50");
    assert.equal(Number(csv[1]!.split(",")[p50col]), Math.round(json.flows[0].serverDelayNs.p50 * 1e6) / 1e6);
  });

  it("--samples lists every sample, equal to the injected delays", () => {
    const file = join(captures, "rfc8250-udp.pcap");
    const truth = JSON.parse(readFileSync(join(captures, "rfc8250-udp.truth.json"), "utf8"));
    const injected = truth.flows.reduce((n: number, f: { samples: unknown[] }) => n + f.samples.length, 0);
    const rows = pdm("analyze", "-r", file, "-f", "csv", "--samples").stdout.trim().split("\n");
    assert.equal(rows[0], "flow,time_s,server_delay_ns,round_trip_delay_ns,response_time_ns");
    assert.equal(rows.length - 1, injected);
    const json = JSON.parse(pdm("analyze", "-r", file, "-f", "json", "--samples").stdout);
    const flow = json.flows.find(
      (f: { serverPort: number; clientPort: number }) => f.clientPort === truth.flows[0].clientPort,
    );
    const want = truth.flows[0].samples[0];
    assert.ok(Math.abs(flow.samples[0].responseTimeNs - want.responseTimeNs) <= want.responseTimeNs * 2 ** -15);
    const refused = pdm("analyze", "-r", file, "--samples");
    assert.equal(refused.code, 2);
    assert.match(refused.stderr, /--samples needs --format json or csv/);
  });

  it("analyze reads stdin with -r -", () => {
    const r = spawnSync(
      "bash",
      [
        "-c",
        `cat ${join(captures, "v2-clear-mixed.pcapng")} | ${process.execPath} ${join(root, "bin", "pdm.js")} analyze -r - -f json`,
      ],
      { encoding: "utf8" },
    );
    assert.equal(r.status, 0, r.stderr);
    assert.equal(JSON.parse(r.stdout).flows.length, 3);
  });

  it("--flow filters, and says so when nothing matches", () => {
    const r = pdm("analyze", "-r", join(captures, "v2-clear-mixed.pcapng"), "--flow", "icmpv6", "-f", "json");
    assert.equal(JSON.parse(r.stdout).flows.length, 1);
    const none = pdm("analyze", "-r", join(captures, "v2-clear-mixed.pcapng"), "--flow", "sctp");
    assert.equal(none.code, 2);
    assert.match(none.stderr, /no flow matches --flow "sctp"/);
  });

  it("one-sentence errors: missing file, a directory, not a capture, bad key log, bad option", () => {
    const missing = pdm("analyze", "-r", "/nonexistent.pcap");
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /^pdm: cannot open capture \/nonexistent.pcap/);
    const directory = pdm("analyze", "-r", captures);
    assert.equal(directory.code, 1);
    assert.match(directory.stderr, /^pdm: cannot open capture .*: it is a directory/);
    const notCapture = pdm("analyze", "-r", join(root, "package.json"));
    assert.equal(notCapture.code, 1);
    assert.match(notCapture.stderr, /not a pcap or pcapng file/);
    const badKeys = pdm("analyze", "-r", join(captures, "v2-protected.pcapng"), "-k", join(root, "package.json"));
    assert.equal(badKeys.code, 1);
    assert.match(badKeys.stderr, /package.json line 1: field 1 \(label\) is neither PDMV2_SHARED nor PDMV2_CLIENT/);
    const badFormat = pdm("analyze", "-r", "x", "-f", "xml");
    assert.notEqual(badFormat.code, 0);
    assert.match(badFormat.stderr, /Allowed choices are table, json, csv/);
    assert.doesNotMatch(
      missing.stderr + directory.stderr + notCapture.stderr + badKeys.stderr,
      /at .*\.ts:\d+/,
      "no stack traces",
    );
  });

  it("demo --offline measures the bundled protected capture and compares with the injected delays", () => {
    const r = pdm("demo", "--offline");
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /v2-protected/);
    assert.match(r.stdout, /samples 59\/59/);
    const worst = /largest relative error: ([\d.]+) %/.exec(r.stdout);
    assert.ok(worst && Number(worst[1]) < 0.0031, r.stdout);
  });
});

describe("pdm report", () => {
  it("writes the HTML (and PNG) and refuses a non-HTML output name", async () => {
    const { mkdtempSync, rmSync } = await import("node:fs");
    const { tmpdir } = await import("node:os");
    const tmp = mkdtempSync(join(tmpdir(), "pdm-cli-report-"));
    try {
      const r = pdm(
        "report",
        "-r",
        join(captures, "rfc8250-udp.pcap"),
        "-o",
        join(tmp, "r.html"),
        "--png",
        join(tmp, "r.png"),
      );
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /wrote .*r\.html \(2 flows, \d+ samples\)/);
      const html = readFileSync(join(tmp, "r.html"), "utf8");
      assert.match(html, /<canvas id="series-serverDelayNs"/);
      assert.doesNotMatch(html, /<script src=|https?:\/\/cdn/, "nothing loaded from the network");
      assert.equal(readFileSync(join(tmp, "r.png")).subarray(1, 4).toString(), "PNG");
      const bad = pdm("report", "-r", join(captures, "rfc8250-udp.pcap"), "-o", join(tmp, "r.pdf"));
      assert.equal(bad.code, 2);
      assert.match(bad.stderr, /the report is HTML/);
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  });
});
