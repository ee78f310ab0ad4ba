// timing-sensitive: run last and alone (scripts/test.sh), as it measures injected delays back.
// The fleet end to end: two hosts in namespaces behind a router that delays every frame
// 5 ms each way, `pdm service` on each (it attaches the data path itself), and a
// Prometheus in the client's namespace scraping both services every second. A UDP
// service on the server holds each request 20 ms. Through Prometheus's API: each
// host's server delay and round-trip delay for the other's prefix, as injected
// (tolerances as in e2e.test.ts: the stacks add up to 1.5 ms to the hold and up to
// 2 ms to the round trip).

import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { acquireTimingLock, releaseTimingLock } from "../helpers/timing-lock.ts";
import { datapathSkipReason, PDM_BIN, ROOT, Topology } from "../../lab/index.ts";

const UDP_PEER = join(ROOT, "test", "helpers", "udp-peer.mjs");
const skip =
  datapathSkipReason() ??
  (spawnSync("sh", ["-c", "command -v prometheus"]).status === 0
    ? undefined
    : "prometheus is not installed (bash scripts/setup.sh)");
const METRICS_PORT = 19464;
const PROMETHEUS_PORT = 19090;

describe("pdm service on two hosts, scraped by Prometheus", { skip }, () => {
  let dir: string;
  before(async () => {
    await acquireTimingLock();
    dir = mkdtempSync(join(tmpdir(), "pdm-fleet-"));
  });
  after(() => {
    rmSync(dir, { recursive: true, force: true });
    releaseTimingLock();
  });

  it("shows each host's measured server and round-trip delays per peer prefix", async () => {
    const topo = new Topology({ router: { delayMs: 5 } });
    const { a, b } = topo;
    try {
      await topo.start();
      // Each service attaches its interface; b listens on its own address, for a's Prometheus.
      const services = [
        { host: a, listen: `[::1]:${METRICS_PORT}` },
        { host: b, listen: `[${b.addr}]:${METRICS_PORT}` },
      ].map(({ host, listen }) => {
        const file = join(dir, `${host.name}.json`);
        writeFileSync(
          file,
          JSON.stringify({ interfaces: [{ name: host.ifname, attach: { layout: "v2" } }], metrics: { listen } }),
        );
        return topo.spawn(host, [process.execPath, PDM_BIN, "service", "-c", file]);
      });
      for (const s of services) await s.waitFor(/metrics at http/, 30_000);
      writeFileSync(
        join(dir, "prometheus.yml"),
        `global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: pdm\n    static_configs:\n      - targets: ["[::1]:${METRICS_PORT}", "[${b.addr}]:${METRICS_PORT}"]\n`,
      );
      topo.spawn(a, [
        "prometheus",
        `--config.file=${join(dir, "prometheus.yml")}`,
        `--storage.tsdb.path=${join(dir, "data")}`,
        `--web.listen-address=127.0.0.1:${PROMETHEUS_PORT}`,
      ]);
      const api = `http://127.0.0.1:${PROMETHEUS_PORT}/api/v1`;
      /** An instant query in a's namespace: each series' labels and value. */
      const query = (promql: string): Array<{ metric: Record<string, string>; value: number }> => {
        const text = topo.fetchText(a, `${api}/query?query=${encodeURIComponent(promql)}`);
        const body = JSON.parse(text || '{"data":{"result":[]}}') as {
          data: { result: Array<{ metric: Record<string, string>; value: [number, string] }> };
        };
        return body.data.result.map((s) => ({ metric: s.metric, value: Number(s.value[1]) }));
      };
      const until = async (what: string, ms: number, ok: () => boolean): Promise<void> => {
        const end = Date.now() + ms;
        while (!ok()) {
          if (Date.now() > end) throw new Error(`gave up waiting for ${what}`);
          await new Promise((r) => setTimeout(r, 250));
        }
      };
      await until("both targets up", 40_000, () => query("up").filter((s) => s.value === 1).length === 2);

      // 15 s of requests: the busiest prefix gets its own label after the first 10 s interval.
      const server = topo.spawn(b, [process.execPath, UDP_PEER, "serve", "7000", "20"]);
      await server.waitFor(/ready/);
      const ask = topo.spawn(a, [process.execPath, UDP_PEER, "ask", b.addr, "7000", "300", "50"]);
      assert.equal(await ask.exited(60_000), 0, ask.output().stderr);
      const prefixOf = (addr: string): string => `${addr.split("::")[0]}::/48`;
      const mean = (metric: string, prefix: string): Map<string, number> => {
        const rows = query(
          `sum by (instance) (${metric}_sum{pdm_peer_prefix="${prefix}"}) / sum by (instance) (${metric}_count{pdm_peer_prefix="${prefix}"})`,
        );
        return new Map(rows.map((r) => [r.metric.instance!, r.value]));
      };
      // Both hosts see each other in the same /48 (the test's subnet): one prefix label.
      const prefix = prefixOf(a.addr);
      await until(
        `samples labelled ${prefix} from both hosts`,
        30_000,
        () => mean("pdm_server_delay_seconds", prefix).size === 2,
      );
      const server_ = mean("pdm_server_delay_seconds", prefix);
      const roundTrip = mean("pdm_round_trip_delay_seconds", prefix);
      const at = (m: Map<string, number>, host: "a" | "b"): number =>
        m.get(host === "a" ? `[::1]:${METRICS_PORT}` : `[${b.addr}]:${METRICS_PORT}`)!;
      // a is the client: its server delay is b's hold; b, seeing a's requests, measures a's
      // (near zero) think time between answers and requests as "server delay" of a.
      assert.ok(at(server_, "a") >= 0.0195 && at(server_, "a") <= 0.0215, `a: server delay ${at(server_, "a")}`);
      assert.ok(at(roundTrip, "a") >= 0.0099 && at(roundTrip, "a") <= 0.012, `a: round trip ${at(roundTrip, "a")}`);
      assert.ok(at(roundTrip, "b") >= 0.0099 && at(roundTrip, "b") <= 0.012, `b: round trip ${at(roundTrip, "b")}`);
      const packets = query("sum by (instance, direction) (pdm_packets_total)");
      assert.equal(packets.filter((p) => p.value > 250).length, 4, "tx and rx on both hosts");

      for (const s of services) s.child.kill("SIGTERM");
      for (const s of services) assert.equal(await s.exited(30_000), 0, s.output().stderr);
    } finally {
      topo.cleanup();
    }
  });
});
