// `pdm ca`, `pdm agent` and `pdm keys export` through the real binary: certificates
// written 0600, a writer pair running as two processes registering over mutual TLS,
// an analyzer exporting a key log, and config errors that name the field.

import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import {
  chmodSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
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
    for (const f of ["ca/ca.key", "ca/ca.crt", "ws.key", "ws.crt", "an.key"])
      assert.equal(statSync(join(dir, f)).mode & 0o777, 0o600, f);
    r = pdm("ca", "init", "--dir", ca);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /already exists/);
    r = pdm("ca", "issue", "--dir", ca, "--role", "reader-server", "--addr", "not-an-ip", "-o", join(dir, "x"));
    assert.equal(r.status, 2);
    assert.match(r.stderr, /--addr "not-an-ip" is not an IP address/);
  });

  it("names this host's release in a group member's certificate (--release self), and checks a given one", () => {
    const ca = join(dir, "ca");
    const release = pdm("ca", "release");
    assert.equal(release.status, 0, release.stderr);
    const digest = release.stdout.trim();
    assert.match(digest, /^[0-9a-f]{64}$/);
    let r = pdm(
      "ca",
      "issue",
      "--dir",
      ca,
      "--role",
      "group-member",
      "--addr",
      "::1",
      "-o",
      join(dir, "gm1"),
      "--release",
      "self",
    );
    assert.equal(r.status, 0, r.stderr);
    const san = new X509Certificate(readFileSync(join(dir, "gm1.crt"))).subjectAltName ?? "";
    assert.ok(san.includes(`URI:pdm:role:group-member`) && san.includes(`URI:pdm:release:${digest}`), san);
    r = pdm(
      "ca",
      "issue",
      "--dir",
      ca,
      "--role",
      "group-member",
      "--addr",
      "::1",
      "-o",
      join(dir, "gm2"),
      "--release",
      "12ab",
    );
    assert.equal(r.status, 2);
    assert.match(r.stderr, /--release must be 64 lowercase hex digits/);
    r = pdm("keys", "renew", "--agent", join(dir, "no-such.status"));
    assert.equal(r.status, 2);
    assert.match(r.stderr, /cannot read the agent status file .*ENOENT/);
  });

  it("checks --days, tightens an existing CA directory, and never writes keys through a link", () => {
    const ca = join(dir, "ca2");
    mkdirSync(ca, { mode: 0o755 });
    chmodSync(ca, 0o755);
    let r = pdm("ca", "init", "--dir", ca);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(statSync(ca).mode & 0o777, 0o700, "an existing CA directory is set to 0700");
    for (const days of ["abc", "1e9", "-1", "0", "2.5"]) {
      r = pdm(
        "ca",
        "issue",
        "--dir",
        ca,
        "--role",
        "analyzer",
        "--addr",
        "::1",
        "-o",
        join(dir, `days-${days}`),
        "--days",
        days,
      );
      assert.equal(r.status, 2, `--days ${days}: ${r.stderr}`);
      assert.match(r.stderr, /--days must be a whole number of days from 1 to 36500/);
      r = pdm("ca", "init", "--dir", join(dir, `ca-days-${days}`), "--days", days);
      assert.equal(r.status, 2, `ca init --days ${days}`);
    }
    r = pdm("ca", "issue", "--dir", ca, "--role", "analyzer", "--addr", "::1", "-o", join(dir, "a2"), "--days", "30");
    assert.equal(r.status, 0, r.stderr);
    r = pdm("ca", "issue", "--dir", ca, "--role", "analyzer", "--addr", "::1", "-o", join(dir, "a2"));
    assert.equal(r.status, 2);
    assert.match(r.stderr, /a2\.key already exists/);
    assert.equal(
      pdm("ca", "issue", "--dir", ca, "--role", "analyzer", "--addr", "::1", "-o", join(dir, "a2"), "--force").status,
      0,
    );

    const victim = join(dir, "victim2.txt");
    writeFileSync(victim, "keep\n", { mode: 0o644 });
    symlinkSync(victim, join(dir, "linked.key"));
    r = pdm("ca", "issue", "--dir", ca, "--role", "analyzer", "--addr", "::1", "-o", join(dir, "linked"), "--force");
    assert.equal(r.status, 2);
    assert.match(r.stderr, /linked\.key is a symbolic link/);
    assert.equal(readFileSync(victim, "utf8"), "keep\n");
    symlinkSync(ca, join(dir, "ca-link"));
    r = pdm("ca", "init", "--dir", join(dir, "ca-link"), "--force");
    assert.equal(r.status, 2);
    assert.match(r.stderr, /ca-link is not a directory of its own/);
  });

  it("names the field of a bad config", () => {
    const cases: [object, RegExp][] = [
      [{ roles: ["writer-server"], tls: { ca: "a", cert: "b", key: "c" } }, /listen: a writer role needs listen/],
      [{ roles: ["writer-sever"], tls: { ca: "a", cert: "b", key: "c" } }, /roles\[0\]: "writer-sever" is not one of/],
      [
        {
          roles: ["reader-server"],
          writerServer: "[::1]:1",
          tls: { ca: "a", cert: "b", key: "c" },
          rotation: { keys: 0 },
        },
        /rotation\.keys: expected an integer/,
      ],
      [
        { roles: ["reader-server"], writerServer: "::1", tls: { ca: "a", cert: "b", key: "c" } },
        /writerServer: "::1" is not HOST:PORT/,
      ],
      [
        { roles: ["reader-server"], writerServer: "[::1]:1", tls: { ca: "a", cert: "b", key: "c" }, ackTimeout: 3 },
        /ackTimeout: unknown field/,
      ],
      [{ roles: ["group-member"], tls: { ca: "a", cert: "b", key: "c" } }, /groupMaster: a group-member needs/],
      [
        { roles: ["group-master", "reader-server"], listen: "[::1]:1", tls: { ca: "a", cert: "b", key: "c" } },
        /roles: group-master stands alone/,
      ],
      [
        { roles: ["group-master"], listen: "[::1]:1", tls: { ca: "a", cert: "b", key: "c" }, group: { life: 6 } },
        /group\.life: unknown field \(known: lifeSeconds,/,
      ],
      [
        {
          roles: ["group-member"],
          tls: { ca: "a", cert: "b", key: "c" },
          distributed: { interface: "eth0", address: "fd00::1" },
        },
        /distributed\.keys: expected the connectivity key file, keysFrom \(a writer's "\[addr\]:port" that gives them\), or a groupMaster/,
      ],
      [
        {
          roles: ["group-member"],
          tls: { ca: "a", cert: "b", key: "c" },
          distributed: { keys: "k", keysFrom: "[fd00::9]:4433", interface: "eth0", address: "fd00::1" },
        },
        /distributed\.keysFrom: give the connectivity keys either as a file \(keys\) or from a writer \(keysFrom\)/,
      ],
      [
        {
          roles: ["group-member"],
          tls: { ca: "a", cert: "b", key: "c" },
          distributed: { keysFrom: "fd00::9", interface: "eth0", address: "fd00::1" },
        },
        /distributed\.keysFrom: /,
      ],
      [
        {
          roles: ["reader-server"],
          writerServer: "[fd00::9]:4433",
          tls: { ca: "a", cert: "b", key: "c" },
          connectivityKeys: "group.ksp",
        },
        /connectivityKeys: only a writer gives group members their connectivity key set/,
      ],
      [
        {
          roles: ["group-member"],
          tls: { ca: "a", cert: "b", key: "c" },
          distributed: { keys: "k", interface: "eth0", address: "fd00::1", timers: { hello: 1 } },
        },
        /distributed\.timers\.hello: unknown field \(known: helloMs, lifeMs, retireMs, minRekeyMs\)/,
      ],
      [
        {
          roles: ["group-member"],
          tls: { ca: "a", cert: "b", key: "c" },
          distributed: { keys: "k", interface: "eth0", address: "fd00::1", group: "fd00::5" },
        },
        /distributed\.group: expected a multicast address/,
      ],
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
    const ws = spawn(
      process.execPath,
      [
        bin,
        "agent",
        "-c",
        write("ws", { name: "ws", roles: ["writer-server"], tls: tlsOf("ws"), listen: `[::1]:${port}` }),
      ],
      { stdio: ["ignore", "ignore", "pipe"] },
    );
    started.push(ws);
    let wsLog = "";
    ws.stderr!.on("data", (c) => (wsLog += c));
    await until(() => wsLog.includes("listening"), "writer server listening");
    const wc = spawn(
      process.execPath,
      [
        bin,
        "agent",
        "-c",
        write("wc", {
          name: "wc",
          roles: ["writer-client"],
          tls: tlsOf("wc"),
          listen: "[::1]:0",
          writerServer: `[::1]:${port}`,
        }),
      ],
      {
        stdio: ["ignore", "ignore", "pipe"],
      },
    );
    started.push(wc);
    await until(() => wsLog.includes("registered"), "registration");

    const out = join(dir, "keys.log");
    const r = pdm(
      "keys",
      "export",
      "--writer",
      `[::1]:${port}`,
      "--ca",
      join(dir, "ca/ca.crt"),
      "--cert",
      join(dir, "an.crt"),
      "--key",
      join(dir, "an.key"),
      "-o",
      out,
    );
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /wrote 1 generation\(s\), SharedSecret/);
    assert.equal(statSync(out).mode & 0o777, 0o600);
    const entries = parseKeyLog(readFileSync(out, "utf8"));
    assert.equal(entries.length, 1);
    assert.ok(
      wsLog.includes(`keyId=${Buffer.from(entries[0]!.keyId).toString("hex")}`),
      "the exported generation is the registered one",
    );
    assert.ok(!wsLog.includes(Buffer.from(entries[0]!.secret).toString("hex")), "the secret is not in the log");

    // The key log is never written through a symbolic link, over an existing file
    // (without --force), into a missing directory or onto a directory.
    const exportTo = (target: string, ...extra: string[]) =>
      pdm(
        "keys",
        "export",
        "--writer",
        `[::1]:${port}`,
        "--ca",
        join(dir, "ca/ca.crt"),
        "--cert",
        join(dir, "an.crt"),
        "--key",
        join(dir, "an.key"),
        "-o",
        target,
        ...extra,
      );
    const victim = join(dir, "victim.txt");
    writeFileSync(victim, "someone else's file\n", { mode: 0o644 });
    const link = join(dir, "link.log");
    symlinkSync(victim, link);
    let bad = exportTo(link);
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /^pdm: .*link\.log is a symbolic link: a key log is never written through one\n/);
    bad = exportTo(link, "--force");
    assert.equal(bad.status, 2, "--force does not follow a link either");
    assert.equal(readFileSync(victim, "utf8"), "someone else's file\n");
    assert.equal(statSync(victim).mode & 0o777, 0o644, "the victim's mode is unchanged");
    bad = exportTo(out);
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /keys\.log already exists\n  Use --force/);
    assert.equal(exportTo(out, "--force").status, 0);
    for (const [target, why] of [
      [join(dir, "missing", "k.log"), /cannot write the key log .*: the directory .*missing does not exist\n/],
      [dir, /cannot write the key log .*: it is a directory\n/],
    ] as const) {
      bad = exportTo(target);
      assert.equal(bad.status, 2, bad.stderr);
      assert.match(bad.stderr, why);
      assert.doesNotMatch(bad.stderr, /\n\s+at /, "no stack trace");
    }
    assert.deepEqual(
      readdirSync(dir).filter((f) => f.endsWith(".tmp")),
      [],
      "no temporary file left behind",
    );

    // A writer client's certificate is not an analyzer's.
    const refused = pdm(
      "keys",
      "export",
      "--writer",
      `[::1]:${port}`,
      "--ca",
      join(dir, "ca/ca.crt"),
      "--cert",
      join(dir, "wc.crt"),
      "--key",
      join(dir, "wc.key"),
      "-o",
      join(dir, "no.log"),
    );
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
