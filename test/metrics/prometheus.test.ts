// The metrics against a real Prometheus (Debian's prometheus, started here on loopback,
// scraping every second): promtool accepts the exposition; known delays fed in come
// back through /api/v1/query with exact counts and sums and quantiles within their
// bucket; the prefixes outside the top N, and the label sets past the cap, land in
// `other`; a label set idle past its TTL goes from Prometheus too. The shipped rules
// pass promtool's checks and unit tests, and every expression of the rules and of the
// Grafana dashboard runs against this Prometheus, the core panels with data.

import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FleetMetrics, serveMetrics, type MetricsEndpoint } from "../../metrics/index.ts";
import { parseIpv6Address } from "../../pdm/index.ts";
import { ROOT } from "../../lab/index.ts";

const PACKAGING = join(ROOT, "packaging");

const have = (tool: string): boolean => spawnSync("sh", ["-c", `command -v ${tool}`]).status === 0;
const skip =
  have("prometheus") && have("promtool")
    ? undefined
    : "prometheus and promtool are not installed (bash scripts/setup.sh installs Debian's prometheus)";

/** A free loopback port (bound and released: Prometheus takes it right after). */
async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((resolve) => s.listen(0, "127.0.0.1", resolve));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

/** Polls `check` every 100 ms until it returns a value (not undefined), or fails after `ms`. */
async function until<T>(what: string, ms: number, check: () => Promise<T | undefined>): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await check().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`gave up waiting for ${what} after ${ms / 1000} s`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe("metrics scraped by Prometheus", { skip }, () => {
  let dir: string;
  let prometheus: ChildProcess | undefined;
  let api: string;
  let endpoint: MetricsEndpoint;
  let metrics: FleetMetrics;
  let clock: NodeJS.Timeout;

  /** The value of an instant query with one series, or undefined when there is none. */
  const query = async (promql: string): Promise<number | undefined> => {
    const r = await fetch(`${api}/api/v1/query?query=${encodeURIComponent(promql)}`);
    const body = (await r.json()) as { status: string; data: { result: Array<{ value: [number, string] }> } };
    if (body.status !== "success") throw new Error(`query failed: ${promql}`);
    return body.data.result.length ? Number(body.data.result[0]!.value[1]) : undefined;
  };
  /** Waits until the query returns `expected` (a scrape has happened since the change). */
  const eventually = (promql: string, expected: number | undefined): Promise<true> =>
    until(`${promql} = ${expected}`, 15_000, async () => ((await query(promql)) === expected ? true : undefined));

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "pdm-prometheus-"));
    const t0 = Date.now();
    metrics = new FleetMetrics(
      // Every tick ends a top-N interval, and the window keeps them all: the ranking is
      // by every packet counted so far.
      {
        version: "test",
        layout: "v2-clear",
        intervalMs: 1,
        topPrefixes: { n: 1, windowIntervals: 100_000 },
        maxLabelSets: 3,
        ttlMs: 5000,
      },
      t0,
    );
    endpoint = await serveMetrics(metrics, { host: "::1", port: 0 });
    const port = await freePort();
    api = `http://127.0.0.1:${port}`;
    writeFileSync(
      join(dir, "prometheus.yml"),
      `global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: pdm\n    static_configs:\n      - targets: ["[::1]:${endpoint.port}"]\n`,
    );
    prometheus = spawn(
      "prometheus",
      [
        `--config.file=${join(dir, "prometheus.yml")}`,
        `--storage.tsdb.path=${join(dir, "data")}`,
        `--web.listen-address=127.0.0.1:${port}`,
      ],
      { stdio: ["ignore", "ignore", "pipe"] },
    );
    let log = "";
    prometheus.stderr!.on("data", (d: Buffer) => (log = (log + d.toString()).slice(-4000)));
    await until("Prometheus to be ready", 30_000, async () =>
      (await fetch(`${api}/-/ready`)).ok ? true : undefined,
    ).catch((e: Error) => {
      throw new Error(`${e.message}; its log: ${log}`);
    });
    await until("the pdm target to be up", 20_000, async () => {
      const r = (await (await fetch(`${api}/api/v1/targets`)).json()) as {
        data: { activeTargets: Array<{ health: string }> };
      };
      return r.data.activeTargets[0]?.health === "up" ? true : undefined;
    });
    // The host's clock runs with the wall clock: the TTL below is real time.
    clock = setInterval(() => metrics.tick(Date.now()), 200);
  });

  after(async () => {
    clearInterval(clock);
    if (prometheus?.pid) process.kill(prometheus.pid, "SIGTERM");
    await endpoint?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("promtool accepts the exposition", async () => {
    const text = await (await fetch(endpoint.url)).text();
    const r = spawnSync("promtool", ["check", "metrics"], { input: text, encoding: "utf8" });
    assert.equal(r.status, 0, `${r.stdout}${r.stderr}`);
    assert.match(text, /# TYPE pdm_server_delay_seconds histogram/);
  });

  it("gives back known delays: exact counts and sums, quantiles within their bucket; other and overflow as specified", async () => {
    const a = metrics.flow(parseIpv6Address("2001:db8:1::10"), 17, 7000);
    const b = metrics.flow(parseIpv6Address("2001:db8:2::20"), 6, 443);
    const c = metrics.flow(parseIpv6Address("2001:db8:1::11"), 6, 8080); // same prefix as a, TCP
    // Prefix 1 is the busiest: it gets a label of its own when the interval ends.
    for (let i = 0; i < 100; i++) metrics.packet(a, "rx");
    for (let i = 0; i < 40; i++) metrics.packet(b, "tx");
    metrics.tick(Date.now()); // end the top-N interval now
    let sum = 0;
    for (let i = 0; i < 100; i++) {
      metrics.sample(a, 2e6, 10e6, 12e6); // 2 ms server delay, 10 ms round trip
      sum += 0.002;
    }
    for (let i = 0; i < 50; i++) metrics.sample(b, 30e6, 20e6, 50e6); // prefix 2 is not in the top 1
    // A third label set would pass the cap of 3 (a, other/tcp are two): c's prefix is a
    // member, so its TCP set is new: within the cap once, then a fourth overflows.
    metrics.sample(c, 1e6, 1e6, 2e6);
    metrics.sample(metrics.flow(parseIpv6Address("2001:db8:1::12"), 58, 0), 1e6, 1e6, 2e6);

    const sel = '{pdm_peer_prefix="2001:db8:1::/48",network_transport="udp"}';
    await eventually(`pdm_server_delay_seconds_count${sel}`, 100);
    assert.ok(Math.abs((await query(`pdm_server_delay_seconds_sum${sel}`))! - sum) < 1e-12, "sum");
    assert.equal(await query(`pdm_round_trip_delay_seconds_count${sel}`), 100);
    const p50 = await query(`histogram_quantile(0.5, sum by (le) (pdm_server_delay_seconds_bucket${sel}))`);
    assert.ok(p50! > 0.001 && p50! <= 0.0025, `p50 ${p50} in the bucket of 2 ms (1 ms, 2.5 ms]`);
    const rtt = await query(`histogram_quantile(0.99, sum by (le) (pdm_round_trip_delay_seconds_bucket${sel}))`);
    assert.ok(rtt! > 0.005 && rtt! <= 0.01, `p99 round trip ${rtt} in the bucket of 10 ms (5 ms, 10 ms]`);
    assert.equal(await query('pdm_server_delay_seconds_count{pdm_peer_prefix="other",network_transport="tcp"}'), 50);
    assert.equal(
      await query('pdm_server_delay_seconds_count{pdm_peer_prefix="2001:db8:1::/48",network_transport="tcp"}'),
      1,
    );
    assert.equal(await query('pdm_server_delay_seconds_count{pdm_peer_prefix="other",network_transport="icmp"}'), 1);
    assert.equal(await query('pdm_series_overflow_total{metric="pdm_server_delay_seconds"}'), 1);
    assert.equal(await query('pdm_packets_total{direction="rx"}'), 100);
    assert.equal(await query('pdm_packets_total{direction="tx"}'), 40);
    assert.equal(await query("count(pdm_server_delay_seconds_count)"), 4, "4 label sets, the cap of 3 and a fold");
  });

  it("removes a label set idle past its TTL, in Prometheus as well", async () => {
    const sel = 'pdm_server_delay_seconds_count{pdm_peer_prefix="other",network_transport="tcp"}';
    await eventually(sel, 50);
    // No sample since: after 5 s the host drops it, and the next scrape marks it stale.
    const started = Date.now();
    await until("the idle series to go", 20_000, async () => ((await query(sel)) === undefined ? true : undefined));
    assert.ok(Date.now() - started >= 3000, "not before its TTL");
  });

  it("ships rules that promtool checks and unit-tests", () => {
    const rules = join(PACKAGING, "prometheus");
    const check = spawnSync("promtool", ["check", "rules", "pdm-rules.yml"], { cwd: rules, encoding: "utf8" });
    assert.equal(check.status, 0, check.stdout + check.stderr);
    const test = spawnSync("promtool", ["test", "rules", "pdm-rules.test.yml"], { cwd: rules, encoding: "utf8" });
    assert.equal(test.status, 0, test.stdout + test.stderr);
  });

  it("runs every expression of the rules and of the dashboard; the core panels have data", async () => {
    const dashboard = JSON.parse(readFileSync(join(PACKAGING, "grafana", "pdm-dashboard.json"), "utf8")) as {
      panels: Array<{ title: string; targets: Array<{ expr: string }> }>;
      templating: { list: Array<{ type: string; datasource?: unknown }> };
    };
    assert.ok(
      dashboard.templating.list.some((v) => v.type === "datasource"),
      "the datasource is a variable, not a fixed uid",
    );
    // Grafana's variables, as "All" and a rate window this test's scrapes fill.
    const grafana = (expr: string): string =>
      expr.replaceAll("$__rate_interval", "1m").replaceAll(/\$(instance|prefix|job)/g, ".*");
    const ruleExprs = [
      ...readFileSync(join(PACKAGING, "prometheus", "pdm-rules.yml"), "utf8").matchAll(/expr: (.+)/g),
    ].map((m) => m[1]!);
    const results = new Map<string, number>();
    for (const expr of [...dashboard.panels.flatMap((p) => p.targets.map((t) => grafana(t.expr))), ...ruleExprs]) {
      const r = await fetch(`${api}/api/v1/query?query=${encodeURIComponent(expr)}`);
      const body = (await r.json()) as { status: string; error?: string; data?: { result: unknown[] } };
      assert.equal(body.status, "success", `${expr}: ${body.error}`);
      results.set(expr, body.data!.result.length);
    }
    for (const title of ["Server delay: p50, p95, p99", "PDM packets per second", "Flows tracked", "Hosts up"]) {
      const panel = dashboard.panels.find((p) => p.title === title)!;
      assert.ok(results.get(grafana(panel.targets[0]!.expr))! > 0, `${title} has data`);
    }
  });
});
