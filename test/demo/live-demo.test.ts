// timing-sensitive: run last and alone (scripts/test.sh), as it measures injected delays back.
// The README's main command, end to end: `pdm demo` builds its topology, deploys the
// agents and the eBPF programs, drives real traffic and checks every measured figure
// against what it injected (exit 0 only if all are within tolerance). Also: Ctrl-C in
// the middle leaves nothing behind and the next run works; without root it says so in
// one sentence and analyzes the bundled capture.

import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { copyFileSync, existsSync, mkdtempSync, readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { acquireTimingLock, releaseTimingLock } from "../helpers/timing-lock.ts";
import { datapathSkipReason, PDM_BIN, ROOT } from "../../lab/index.ts";

const skip =
  datapathSkipReason() ??
  (spawnSync("sh", ["-c", "command -v ethtool && command -v ping"]).status !== 0
    ? "ethtool or ping is missing (bash scripts/setup.sh)"
    : undefined);

function leftovers(): string[] {
  const found: string[] = [];
  if (existsSync("/run/netns")) found.push(...readdirSync("/run/netns").filter((n) => n.startsWith("pdmdemo-")));
  for (const p of ["/sys/fs/bpf/pdm-demo", "/run/pdm-demo"]) if (existsSync(p)) found.push(p);
  return found;
}

/** Runs `pdm demo ...`; resolves with its exit code and output. `interruptOn` sends SIGINT when stdout matches. */
function demo(args: string[], interruptOn?: RegExp): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [PDM_BIN, "demo", ...args], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    let interrupted = false;
    child.stdout.on("data", (d: Buffer) => {
      stdout += d.toString();
      if (interruptOn && !interrupted && interruptOn.test(stdout)) {
        interrupted = true;
        child.kill("SIGINT");
      }
    });
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill("SIGKILL"), 150_000);
    child.on("exit", (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, stdout, stderr });
    });
  });
}

describe("pdm demo (live)", { skip, concurrency: false }, () => {
  let out: string;
  before(async () => {
    await acquireTimingLock();
    out = mkdtempSync(join(tmpdir(), "pdm-demo-test-"));
  });
  after(() => {
    rmSync(out, { recursive: true, force: true });
    releaseTimingLock();
  });

  it("Ctrl-C in the middle of a run removes namespaces, pins, state and processes", async () => {
    const r = await demo(["--duration", "30", "-o", out], /eBPF attached/);
    assert.equal(r.code, 130, r.stdout + r.stderr);
    assert.match(r.stdout, /SIGINT: tearing down/);
    assert.deepEqual(leftovers(), []);
    const ours = spawnSync("pgrep", ["-f", join(ROOT, "cli", "demo", "apps.ts")], { encoding: "utf8" }).stdout.trim();
    assert.equal(ours, "", "no workload process left running");
  });

  it("deploys, measures and matches every injected delay; a second run works; nothing is left", async () => {
    const r = await demo(["--duration", "12", "-o", out]);
    assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
    assert.match(r.stdout, /4 readers provisioned/);
    assert.match(r.stdout, /eBPF attached/);
    assert.match(r.stdout, /every figure within its tolerance/);
    // 6 workload flows x 3 figures, each compared and within tolerance
    assert.equal(r.stdout.match(/ injected .* measured .* error .* ok$/gm)?.length, 18, r.stdout);
    assert.match(r.stdout, /during the run: [1-9]\d* key renewal\(s\)/);
    assert.match(r.stdout, /[1-9]\d* Kri rotations seen in the capture/);
    assert.match(r.stdout, /pdm status -i eth0 on rc1:\n.*stamped/s);
    for (const f of ["router.pcapng", "report.html", "response-time.png", "keys.log"])
      assert.ok(statSync(join(out, f)).size > 0, f);
    assert.equal(statSync(join(out, "keys.log")).mode & 0o777, 0o600);
    assert.equal(statSync(join(out, "pki", "ca.key")).mode & 0o777, 0o600);
    assert.deepEqual(leftovers(), []);
  });

  it("--group: six members of one group, one removed half-way, the group renews and measurement goes on", async () => {
    const r = await demo(["--group", "--duration", "16", "-o", out]);
    assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
    assert.match(r.stdout, /6 group members admitted by the group master/);
    assert.match(r.stdout, /group master: generation \d+ for 6 members/);
    assert.match(r.stdout, /stopping wc \(its agent\): the group master renews without it/);
    assert.match(r.stdout, /group master: generation \d+ for 5 members \(wc left\)/);
    assert.match(r.stdout, /members \(5, in membership order\):/);
    assert.match(
      r.stdout,
      /group mode: 6 flows measured; [1-9]\d* samples after wc was removed; .*measurement went on across the renewal/,
    );
    assert.equal(r.stdout.match(/ injected .* measured .* error .* ok$/gm)?.length, 18, r.stdout);
    assert.match(r.stdout, /every figure within its tolerance/);
    assert.deepEqual(leftovers(), []);
  });
  it("--distributed: the group master, the only server, stopped half-way; the members renew on their own and measurement goes on", async () => {
    const r = await demo(["--distributed", "--duration", "16", "-o", out]);
    assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
    assert.match(r.stdout, /6 members of the group master at the router, each given the connectivity key set/);
    assert.match(r.stdout, /stopping gm \(its agent\): the group master, the only server/);
    assert.match(r.stdout, /members agreed among themselves on generation \d+/);
    assert.match(
      r.stdout,
      /distributed mode: 6 flows measured; [1-9]\d* samples after gm was removed; .*measurement went on across the renewal/,
    );
    assert.equal(r.stdout.match(/ injected .* measured .* error .* ok$/gm)?.length, 18, r.stdout);
    assert.match(r.stdout, /every figure within its tolerance/);
    assert.equal(statSync(join(out, "keys.log")).mode & 0o777, 0o600);
    assert.deepEqual(leftovers(), []);
  });
});

describe("pdm demo without root", () => {
  const setpriv = spawnSync("sh", ["-c", "command -v setpriv"]).status === 0;
  it(
    "says why in one sentence and analyzes the bundled capture",
    {
      skip:
        process.getuid?.() !== 0 || !setpriv ? "needs root (to drop to an unprivileged user) and setpriv" : undefined,
    },
    () => {
      // The bundled key log is 0600 and this checkout is root's: give the user its own copy.
      const own = mkdtempSync(join(tmpdir(), "pdm-demo-nobody-"));
      try {
        for (const ext of ["pcapng", "keys", "truth.json"])
          copyFileSync(join(ROOT, "fixtures", "captures", `v2-protected.${ext}`), join(own, `v2-protected.${ext}`));
        spawnSync("chown", ["-R", "65534:65534", own]);
        const args = [
          "--reuid=65534",
          "--regid=65534",
          "--clear-groups",
          "env",
          "HOME=/tmp",
          process.execPath,
          PDM_BIN,
          "demo",
          "--capture",
          join(own, "v2-protected"),
        ];
        const r = spawnSync("setpriv", args, { cwd: ROOT, encoding: "utf8", timeout: 60_000 });
        assert.equal(r.status, 0, r.stderr);
        const [first] = r.stdout.split("\n");
        assert.equal(
          first,
          "The live demo needs root to create network namespaces and load eBPF programs; analyzing the bundled capture instead.",
        );
        assert.match(r.stdout, /largest relative error/);
      } finally {
        rmSync(own, { recursive: true, force: true });
      }
    },
  );
});
