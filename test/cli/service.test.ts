// pdm service: a bad config is refused at start with the field named; on real traffic
// between namespaces it attaches, serves the measured delays for Prometheus, reloads on
// SIGHUP (a bad config refused, the running one kept), and on SIGTERM stops cleanly,
// detaching what it attached.

import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { datapathSkipReason, PDM_BIN, ROOT, Topology } from "../../lab/index.ts";

const UDP_PEER = join(ROOT, "test", "helpers", "udp-peer.mjs");

let dir: string;
before(() => {
  dir = mkdtempSync(join(tmpdir(), "pdm-service-"));
});
after(() => rmSync(dir, { recursive: true, force: true }));

function config(name: string, body: unknown): string {
  const file = join(dir, name);
  writeFileSync(file, typeof body === "string" ? body : JSON.stringify(body));
  return file;
}

describe("pdm service", () => {
  it("refuses a bad config at start, naming the field, with exit status 2", () => {
    const cases: Array<[unknown, RegExp]> = [
      [
        { interfaces: [{ name: "eth0" }], metrics: { lisen: "[::1]:9464" } },
        /metrics\.lisen: unknown field \(known: listen,/,
      ],
      [{ interfaces: [{ name: "eth0" }], metrics: { listen: "[::1]:99999" } }, /metrics\.listen: .*not an address/],
      [
        { interfaces: [{ name: "eth0" }], metrics: { topPrefixes: 0 } },
        /metrics\.topPrefixes: expected a whole number from 1 to 1000/,
      ],
      [{ interfaces: [] }, /interfaces: expected a list of interfaces/],
      [{ interfaces: [{ name: "eth0", attach: { layout: "v3" } }] }, /interfaces\[0\]\.attach\.layout: one of/],
      ["{ not json", /not valid JSON/],
    ];
    for (const [body, message] of cases) {
      const file = config("bad.json", body);
      const r = spawnSync(process.execPath, [PDM_BIN, "service", "-c", file], { encoding: "utf8", timeout: 30_000 });
      assert.equal(r.status, 2, `${JSON.stringify(body)}: ${r.stderr}`);
      assert.match(r.stderr, message);
      assert.equal(r.stderr.split("\n").filter(Boolean).length, 1, "one sentence");
    }
  });

  it(
    "attaches, serves the delays of real traffic, reloads on SIGHUP, and detaches at SIGTERM",
    { skip: datapathSkipReason() },
    async () => {
      const topo = new Topology();
      const { a, b } = topo;
      try {
        assert.equal(topo.pdm(a, ["attach", "-i", a.ifname, "--layout", "v2"]).code, 0);
        const file = config("service.json", {
          interfaces: [{ name: b.ifname, attach: { layout: "v2" } }],
          metrics: { listen: "[::1]:0" },
        });
        const service = topo.spawn(b, [process.execPath, PDM_BIN, "service", "-c", file]);
        await service.waitFor(/metrics at http:\/\/\S+/);
        const urlOf = (text: string): string => [...text.matchAll(/metrics at (http:\/\/\S+)/g)].at(-1)![1]!;
        assert.match(service.output().stderr, new RegExp(`attached v2-clear to ${b.ifname}`));
        const scrape = (url: string): string => topo.fetchText(b, url);

        const server = topo.spawn(b, [process.execPath, UDP_PEER, "serve", "7000", "20"]);
        await server.waitFor(/ready/);
        const ask = topo.exec(a, [process.execPath, UDP_PEER, "ask", b.addr, "7000", "30", "5"]);
        assert.equal((JSON.parse(ask.stdout) as { answered: number }).answered, 30, ask.stderr);
        const first = urlOf(service.output().stderr);
        let text = "";
        for (let i = 0; i < 50 && !/pdm_server_delay_seconds_count\{[^}]*\} [2-9]\d/.test(text); i++) {
          text = scrape(first);
          await new Promise((r) => setTimeout(r, 100));
        }
        assert.match(text, /pdm_server_delay_seconds_count\{[^}]*network_transport="udp"\} [2-9]\d/);
        assert.match(text, /pdm_anomalies_total\{reason="skipped_mtu"\} 0/);
        assert.match(text, /pdm_build_info\{version="[^"]+",layout="v2-clear"\} 1/);

        // SIGHUP with a bad config: refused, the running service unchanged.
        writeFileSync(file, JSON.stringify({ interfaces: [{ name: b.ifname }], metrics: { ttl: 1 } }));
        service.child.kill("SIGHUP");
        await service.waitFor(/reload refused, the running config stays: .*metrics\.ttl: unknown field/);
        assert.match(scrape(first), /pdm_build_info/);
        // SIGHUP with a good one: a new endpoint, the attachment kept.
        writeFileSync(
          file,
          JSON.stringify({
            interfaces: [{ name: b.ifname, attach: { layout: "v2" } }],
            metrics: { listen: "[::1]:0", topPrefixes: 3 },
          }),
        );
        service.child.kill("SIGHUP");
        await service.waitFor(/reloaded/);
        const second = urlOf(service.output().stderr);
        assert.notEqual(second, first);
        assert.match(scrape(second), /pdm_build_info/);
        assert.doesNotMatch(service.output().stderr, /detached/, "a reload keeps an unchanged attachment");

        service.child.kill("SIGTERM");
        assert.equal(await service.exited(30_000), 0, service.output().stderr);
        assert.match(service.output().stderr, new RegExp(`detached from ${b.ifname}[\\s\\S]*service: stopped`));
        assert.equal(existsSync(join(topo.lab.stateDir, `${b.ifname}.json`)), false, "its attachment is gone");
        assert.ok(existsSync(join(topo.lab.stateDir, `${a.ifname}.json`)), "another's is left alone");
      } finally {
        topo.cleanup();
      }
    },
  );

  it(
    "reads every record while scraped during a flood; counts those a full ring lost while it was stopped, and goes on reading",
    { skip: datapathSkipReason() },
    async () => {
      const topo = new Topology();
      const { a, b } = topo;
      try {
        assert.equal(topo.pdm(a, ["attach", "-i", a.ifname, "--layout", "v2"]).code, 0);
        const file = config("flood.json", {
          interfaces: [{ name: b.ifname, attach: { layout: "v2" } }],
          metrics: { listen: "[::1]:0" },
        });
        const service = topo.spawn(b, [process.execPath, PDM_BIN, "service", "-c", file]);
        await service.waitFor(/metrics at http:\/\/\S+/);
        const url = /metrics at (http:\/\/\S+)/.exec(service.output().stderr)![1]!;
        const scrape = (): string => topo.fetchText(b, url);
        // Scraped every 20 ms while 20,000 pings flood in: the records are still all read.
        const scraper = topo.spawn(b, [
          process.execPath,
          "-e",
          `const go = () => fetch(${JSON.stringify(url)}).then((r) => r.text()).catch(() => "").then(() => setTimeout(go, 20)); go();`,
        ]);
        const flood = topo.exec(a, ["ping", "-6", "-f", "-q", "-c", "20000", "-s", "16", b.addr], {
          timeoutMs: 120_000,
        });
        assert.match(flood.stdout, /20000 packets transmitted/);
        scraper.child.kill("SIGKILL");
        const during = scrape();
        assert.match(during, /pdm_events_lost_total 0\n/, "no record lost while scraped during the flood");
        assert.ok(
          Number(/pdm_packets_total\{direction="rx"\} (\d+)/.exec(during)?.[1]) >= 20_000,
          "every echo request of the flood was read",
        );
        // The service stopped: nobody drains the 4 MiB ring while 40,000 pings fill it.
        process.kill(service.child.pid!, "SIGSTOP");
        try {
          const ping = topo.exec(a, ["ping", "-6", "-f", "-q", "-c", "40000", "-s", "16", b.addr], {
            timeoutMs: 120_000,
          });
          assert.match(ping.stdout, /40000 packets transmitted/);
        } finally {
          process.kill(service.child.pid!, "SIGCONT");
        }
        let text = "";
        for (let i = 0; i < 50 && !/pdm_events_lost_total [1-9]/.test(text); i++) {
          text = scrape();
          await new Promise((r) => setTimeout(r, 100));
        }
        const lost = Number(/pdm_events_lost_total (\d+)/.exec(text)?.[1]);
        assert.ok(lost > 0, `lost records counted: ${lost}`);
        // Still reading: new traffic is measured.
        const before = Number(/pdm_packets_total\{direction="rx"\} (\d+)/.exec(text)?.[1]);
        topo.exec(a, ["ping", "-6", "-c", "5", "-i", "0.05", b.addr]);
        let after = before;
        for (let i = 0; i < 50 && after <= before; i++) {
          after = Number(/pdm_packets_total\{direction="rx"\} (\d+)/.exec(scrape())?.[1]);
          await new Promise((r) => setTimeout(r, 100));
        }
        assert.ok(after > before, `rx packets ${before} -> ${after}`);
        service.child.kill("SIGTERM");
        assert.equal(await service.exited(30_000), 0, service.output().stderr);
      } finally {
        topo.cleanup();
      }
    },
  );
});
