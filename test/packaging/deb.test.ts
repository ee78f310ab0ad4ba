// make deb: the Debian package is built here, its contents and control files checked,
// and what it installs run from an extracted copy: pdm with the native AEAD module
// opening a protected capture, the service's help, and the systemd unit verified.

import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ROOT } from "../../lab/index.ts";

const have = (tool: string): boolean => spawnSync("sh", ["-c", `command -v ${tool}`]).status === 0;
const skip = !have("dpkg-deb")
  ? "dpkg-deb is not installed"
  : !existsSync(join(ROOT, "bpf", "build", "pdm.bpf.o"))
    ? "the eBPF programs are not built (bash scripts/setup.sh)"
    : undefined;

describe("the Debian package", { skip }, () => {
  let deb: string;
  let root: string;
  before(() => {
    deb = execFileSync("bash", [join(ROOT, "scripts", "build-deb.sh")], { encoding: "utf8", timeout: 300_000 }).trim();
    root = mkdtempSync(join(tmpdir(), "pdm-deb-"));
    execFileSync("dpkg-deb", ["-x", deb, root]);
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  it("holds pdm, its eBPF objects and native modules, the unit, the config, the dashboard and the rules", () => {
    const files = execFileSync("dpkg-deb", ["-c", deb], { encoding: "utf8", maxBuffer: 64 << 20 });
    for (const path of [
      "./usr/bin/pdm",
      "./usr/lib/pdm/dist/pdm.mjs",
      "./usr/lib/pdm/bpf/build/pdm.bpf.o",
      "./usr/lib/pdm/probes/datapath/native/build/pdm_bpf.node",
      "./usr/lib/pdm/analyzer/aead-native/native/build/pdm_aead.node",
      "./usr/lib/pdm/node_modules/prom-client/",
      "./lib/systemd/system/pdm.service",
      "./etc/pdm/service.json",
      "./usr/share/pdm/grafana/pdm-dashboard.json",
      "./usr/share/pdm/prometheus/pdm-rules.yml",
    ]) {
      assert.ok(files.includes(` ${path}`), `${path} is in the package`);
    }
    assert.doesNotMatch(files, /node_modules\/(typescript|fast-check|playwright-core|prettier)\//, "no dev packages");
    assert.doesNotMatch(
      files,
      /usr\/lib\/pdm\/(cli|pdm|analyzer|metrics|probes|lab)\/\S*\.ts\n/,
      "no sources: the bundle",
    );
    const control = execFileSync("dpkg-deb", ["-f", deb], { encoding: "utf8" });
    assert.match(control, /^Package: pdm$/m);
    assert.match(control, /^Depends: libbpf1, libpcap0\.8, iproute2, ethtool$/m);
    assert.equal(
      execFileSync("dpkg-deb", ["-I", deb, "conffiles"], { encoding: "utf8" }).trim(),
      "/etc/pdm/service.json",
    );
  });

  it("runs from where it installs: the bundle, the native AEAD module, the service command", () => {
    const pdm = (args: string[]) =>
      spawnSync(process.execPath, [join(root, "usr", "lib", "pdm", "bin", "pdm.js"), ...args], {
        encoding: "utf8",
        cwd: tmpdir(),
        env: { ...process.env, PDM_NO_BUNDLE: "" },
      });
    const version = pdm(["--version"]);
    assert.equal(
      version.stdout.trim(),
      (JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { version: string }).version,
    );
    const fixtures = join(ROOT, "fixtures", "captures");
    const analyze = pdm([
      "analyze",
      "-v",
      "-r",
      join(fixtures, "v2-protected.pcapng"),
      "-k",
      join(fixtures, "v2-protected.keys"),
    ]);
    assert.equal(analyze.status, 0, analyze.stderr);
    assert.match(analyze.stderr, /one context per key \(the native module\)/);
    assert.match(analyze.stdout, /357 with usable PDM, 3 flows/);
    assert.match(pdm(["service", "--help"]).stdout, /Usage: pdm service/);
    const wrapper = readFileSync(join(root, "usr", "bin", "pdm"), "utf8");
    assert.match(wrapper, /exec node \/usr\/lib\/pdm\/bin\/pdm\.js "\$@"/);
  });

  it(
    "ships a unit systemd accepts",
    { skip: have("systemd-analyze") ? undefined : "systemd-analyze is not installed" },
    () => {
      const r = spawnSync("systemd-analyze", ["verify", join(root, "lib", "systemd", "system", "pdm.service")], {
        encoding: "utf8",
      });
      // The package is extracted, not installed: its /usr/bin/pdm is not there yet.
      const complaints = `${r.stdout}${r.stderr}`
        .split("\n")
        .filter((l) => l.trim() && !/Command \/usr\/bin\/pdm is not executable/.test(l));
      assert.deepEqual(complaints, []);
    },
  );
});
