// pdm capture --metrics on real traffic: two namespaces stamp PDMv2 in the kernel, a UDP
// server holds each request 20 ms, and the capture of the kernel's records on the
// server serves the delays for Prometheus: the held time comes back as the server
// delay's mean, and packets count both ways. A taken port or a bad address is one
// sentence and exit status 2.

import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { createServer, type Server } from "node:net";
import { join } from "node:path";
import { datapathSkipReason, PDM_BIN, ROOT, Topology } from "../../lab/index.ts";

const UDP_PEER = join(ROOT, "test", "helpers", "udp-peer.mjs");

/** The sum over every label set of one metric in an exposition. */
function total(text: string, metric: string): number {
  let sum = 0;
  for (const line of text.split("\n")) {
    if (line.startsWith(`${metric}{`) || line.startsWith(`${metric} `))
      sum += Number(line.slice(line.lastIndexOf(" ") + 1));
  }
  return sum;
}

describe("pdm capture --metrics", () => {
  it(
    "serves the server delay a held UDP service shows, from the kernel's records",
    { skip: datapathSkipReason() },
    async () => {
      const topo = new Topology();
      const { a, b } = topo;
      try {
        for (const h of [a, b]) assert.equal(topo.pdm(h, ["attach", "-i", h.ifname, "--layout", "v2"]).code, 0);
        const capture = topo.spawn(b, [
          process.execPath,
          PDM_BIN,
          "capture",
          "-i",
          b.ifname,
          "--source",
          "ebpf",
          "-q",
          "--metrics",
          "[::1]:0",
        ]);
        await capture.waitFor(/metrics at http:\/\/\S+/);
        const url = /metrics at (http:\/\/\S+)/.exec(capture.output().stderr)![1]!;
        const server = topo.spawn(b, [process.execPath, UDP_PEER, "serve", "7000", "20"]);
        await server.waitFor(/ready/);
        const ask = topo.exec(a, [process.execPath, UDP_PEER, "ask", b.addr, "7000", "40", "5"]);
        assert.equal((JSON.parse(ask.stdout) as { answered: number }).answered, 40, ask.stderr);
        // Scraped from inside b's namespace: the endpoint listens on its loopback.
        let text = "";
        for (let i = 0; i < 50 && total(text, "pdm_server_delay_seconds_count") < 30; i++) {
          text = topo.fetchText(b, url);
          if (total(text, "pdm_server_delay_seconds_count") < 30) await new Promise((r) => setTimeout(r, 100));
        }
        const count = total(text, "pdm_server_delay_seconds_count");
        const mean = total(text, "pdm_server_delay_seconds_sum") / count;
        assert.ok(count >= 30, `${count} server delay samples`);
        assert.ok(mean >= 0.0195 && mean < 0.03, `mean server delay ${mean} s for a 20 ms hold`);
        assert.match(text, /pdm_packets_total\{direction="tx"\} [1-9]/);
        assert.match(text, /pdm_packets_total\{direction="rx"\} [1-9]/);
        assert.match(text, /pdm_flows_tracked [1-9]/);
        assert.match(text, /network_transport="udp"/);
        assert.ok(!text.includes(a.addr), "never a peer's full address");
        capture.child.kill("SIGINT");
        assert.equal(await capture.exited(30_000), 0, capture.output().stderr);
      } finally {
        topo.cleanup();
      }
    },
  );

  describe("refusals", () => {
    let held: Server;
    let port: number;
    before(async () => {
      held = createServer();
      await new Promise<void>((resolve) => held.listen(0, "::1", resolve));
      port = (held.address() as { port: number }).port;
    });
    after(() => held.close());

    it("a port already in use, and an address that is none, are one sentence and exit 2", () => {
      const run = (addr: string) =>
        spawnSync(process.execPath, [PDM_BIN, "capture", "-i", "lo", "-q", "--metrics", addr], {
          encoding: "utf8",
          timeout: 30_000,
        });
      const taken = run(`[::1]:${port}`);
      assert.equal(taken.status, 2, taken.stderr);
      assert.equal(taken.stderr, `pdm: [::1]:${port} is already in use: choose another --metrics address\n`);
      const bad = run("[::1]:99999");
      assert.equal(bad.status, 2);
      assert.match(bad.stderr, /^pdm: "\[::1\]:99999" is not an address to serve metrics on/);
    });
  });
});
