// `pdm ca`, `pdm agent` and `pdm keys export` through the real binary: certificates
// written 0600, a writer pair running as two processes registering over mutual TLS,
// an analyzer exporting a key log, and config errors that name the field.

import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseKeyLog } from "../../pdm/index.ts";

const root = join(import.meta.dirname, "..", "..");
const bin = join(root, "bin", "pdm.js");
const pdm = (...args: string[]) => spawnSync(process.execPath, [bin, ...args], { encoding: "utf8", cwd: root });

describe("pdm ca, agent and keys export", () => {
  const dir = mkdtempSync(join(tmpdir(), "pdm-agent-cli-"));
  const started: ChildProcess[] = [];
  after(() => {
    for (const p of started) if (p.exitCode === null) p.kill("SIGTERM");
    rmSync(dir, { recursive: true, force: true });
  });

  it("makes a CA and role certificates, all files 0600, and refuses to overwrite the CA", () => {
    const ca = join(dir, "ca");
    let r = pdm("ca", "init", "--dir", ca);
    assert.equal(r.status, 0, r.stderr);
    for (const [role, name] of [
      ["writer-server", "ws"],
      ["writer-client", "wc"],
      ["analyzer", "an"],
    ]) {
      r = pdm("ca", "issue", "--dir", ca, "--role", role!, "--addr", "::1", "-o", join(dir, name!));
      assert.equal(r.status, 0, r.stderr);
    }
    for (const f of ["ca/ca.key", "ca/ca.crt", "ws.key", "ws.crt", "an.key"]) assert.equal(statSync(join(dir, f)).mode & 0o777, 0o600, f);
    r = pdm("ca", "init", "--dir", ca);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /already exists/);
    r = pdm("ca", "issue", "--dir", ca, "--role", "reader-server", "--addr", "not-an-ip", "-o", join(dir, "x"));
    assert.equal(r.status, 2);
    assert.match(r.stderr, /--addr "not-an-ip" is not an IP address/);
  });

  it("names the field of a bad config", () => {
    const cases: [object, RegExp][] = [
      [{ roles: ["writer-server"], tls: { ca: "a", cert: "b", key: "c" } }, /listen: a writer role needs listen/],
      [{ roles: ["writer-sever"], tls: { ca: "a", cert: "b", key: "c" } }, /roles\[0\]: "writer-sever" is not one of/],
      [{ roles: ["reader-server"], writerServer: "[::1]:1", tls: { ca: "a", cert: "b", key: "c" }, rotation: { keys: 0 } }, /rotation\.keys: expected an integer/],
      [{ roles: ["reader-server"], writerServer: "::1", tls: { ca: "a", cert: "b", key: "c" } }, /writerServer: "::1" is not HOST:PORT/],
      [{ roles: ["reader-server"], writerServer: "[::1]:1", tls: { ca: "a", cert: "b", key: "c" }, ackTimeout: 3 }, /ackTimeout: unknown field/],
    ];
    for (const [config, want] of cases) {
      const file = join(dir, "bad.json");
      writeFileSync(file, JSON.stringify(config));
      const r = pdm("agent", "-c", file);
      assert.equal(r.status, 2, r.stderr);
      assert.match(r.stderr, want);
    }
  });

  it("runs a writer pair as two processes and exports a key log to an analyzer", async () => {
    const write = (name: string, config: object): string => {
      const file = join(dir, `${name}.json`);
      writeFileSync(file, JSON.stringify(config));
      return file;
    };
    const tlsOf = (n: string) => ({ ca: "ca/ca.crt", cert: `${n}.crt`, key: `${n}.key` });
    const port = 20000 + (process.pid % 20000);
    const ws = spawn(process.execPath, [bin, "agent", "-c", write("ws", { name: "ws", roles: ["writer-server"], tls: tlsOf("ws"), listen: `[::1]:${port}` })], { stdio: ["ignore", "ignore", "pipe"] });
    started.push(ws);
    let wsLog = "";
    ws.stderr!.on("data", (c) => (wsLog += c));
    await until(() => wsLog.includes("listening"), "writer server listening");
    const wc = spawn(process.execPath, [bin, "agent", "-c", write("wc", { name: "wc", roles: ["writer-client"], tls: tlsOf("wc"), listen: "[::1]:0", writerServer: `[::1]:${port}` })], {
      stdio: ["ignore", "ignore", "pipe"],
    });
    started.push(wc);
    await until(() => wsLog.includes("registered"), "registration");

    const out = join(dir, "keys.log");
    const r = pdm("keys", "export", "--writer", `[::1]:${port}`, "--ca", join(dir, "ca/ca.crt"), "--cert", join(dir, "an.crt"), "--key", join(dir, "an.key"), "-o", out);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /wrote 1 generation\(s\), SharedSecret/);
    assert.equal(statSync(out).mode & 0o777, 0o600);
    const entries = parseKeyLog(readFileSync(out, "utf8"));
    assert.equal(entries.length, 1);
    assert.ok(wsLog.includes(`keyId=${Buffer.from(entries[0]!.keyId).toString("hex")}`), "the exported generation is the registered one");
    assert.ok(!wsLog.includes(Buffer.from(entries[0]!.secret).toString("hex")), "the secret is not in the log");

    // A writer client's certificate is not an analyzer's.
    const refused = pdm("keys", "export", "--writer", `[::1]:${port}`, "--ca", join(dir, "ca/ca.crt"), "--cert", join(dir, "wc.crt"), "--key", join(dir, "wc.key"), "-o", join(dir, "no.log"));
    assert.equal(refused.status, 1);
    assert.match(refused.stderr, /the peer refused: wrong-role/);

    ws.kill("SIGTERM");
    wc.kill("SIGTERM");
    const code = await new Promise((resolve) => ws.once("exit", resolve));
    assert.equal(code, 0, "the agent stops cleanly on SIGTERM");
    assert.match(wsLog, /agent-stop/);
  });
});

async function until(check: () => boolean, what: string, timeoutMs = 15_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
