// The data-path commands' refusals: each is one sentence on stderr that says what is
// missing, with exit code 1 (cannot be done here) or 2 (asked wrongly), and nothing
// is left behind.

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";

const root = join(import.meta.dirname, "..", "..");
const env = {
  ...process.env,
  PDM_STATE_DIR: `/tmp/pdm-cli-test-${process.pid}`,
  PDM_PIN_ROOT: `/sys/fs/bpf/pdm-cli-test-${process.pid}`,
};

function pdm(args: string[], as?: string): { code: number; stderr: string; stdout: string } {
  const cmd = as ? ["runuser", "-u", as, "--", process.execPath] : [process.execPath];
  const r = spawnSync(cmd[0]!, [...cmd.slice(1), join(root, "bin", "pdm.js"), ...args], {
    encoding: "utf8",
    env,
    cwd: root,
  });
  return { code: r.status ?? -1, stderr: r.stderr, stdout: r.stdout };
}

const oneSentence = (stderr: string): void => {
  const lines = stderr.trim().split("\n");
  assert.equal(lines.length, 1, `one line, got: ${stderr}`);
  assert.match(lines[0]!, /^pdm: [A-Z\-a-z].*[.\w)]$/);
};

describe("pdm attach / detach / status / capture refusals", () => {
  it("a missing interface", () => {
    const r = pdm(["attach", "-i", "nosuchif0"]);
    if (process.getuid?.() !== 0) return assert.match(r.stderr, /needs root/);
    assert.equal(r.code, 1);
    oneSentence(r.stderr);
    assert.match(r.stderr, /No network interface named nosuchif0/);
    assert.equal(existsSync(env.PDM_PIN_ROOT!), false, "no pins left");
  });

  it("detach and status when nothing is attached", () => {
    const d = pdm(["detach", "-i", "nosuchif0"]);
    assert.equal(d.code, 1);
    oneSentence(d.stderr);
    assert.match(d.stderr, /Nothing is attached to nosuchif0/);
    const s = pdm(["status", "-i", "nosuchif0"]);
    assert.equal(s.code, 1);
    assert.match(s.stderr, /Nothing is attached to nosuchif0: run `pdm attach -i nosuchif0` first/);
    const all = pdm(["status"]);
    assert.equal(all.code, 0);
    assert.match(all.stdout, /not attached to any interface/);
  });

  it("usage mistakes exit 2", () => {
    const otherAead = pdm(["attach", "-i", "nosuchif0", "--layout", "v2-protected", "--aead", "aes-256-gcm"]);
    assert.equal(otherAead.code, 2);
    assert.match(otherAead.stderr, /Allowed choices are aes-128-gcm, chacha20-poly1305/);
    const badPort = pdm(["attach", "-i", "lo", "--ports", "80,99999"]);
    assert.equal(badPort.code, 2);
    assert.match(badPort.stderr, /"99999" is not a port/);
    const ebpfWrite = pdm(["capture", "-i", "lo", "--source", "ebpf", "-w", "/tmp/never.pcap"]);
    assert.equal(ebpfWrite.code, 2);
    assert.match(ebpfWrite.stderr, /nothing to write with -w/);
  });

  it(
    "without root, attach says so in one sentence",
    {
      skip:
        process.getuid?.() !== 0 || spawnSync("runuser", ["--help"]).status !== 0
          ? "needs root to switch to an unprivileged user"
          : undefined,
    },
    () => {
      const r = pdm(["attach", "-i", "lo"], "nobody");
      assert.equal(r.code, 1);
      oneSentence(r.stderr);
      assert.match(r.stderr, /needs root \(CAP_BPF and CAP_NET_ADMIN\): run it with sudo or as root\./);
    },
  );
});
