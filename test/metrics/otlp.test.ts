// The OTLP push path against a loopback receiver: the exported JSON carries the delays
// as exponential histograms named as metrics.md says, in seconds, with exact counts,
// min and max, the packets and totals, and the resource (service.name, host.name,
// OTEL_RESOURCE_ATTRIBUTES). An endpoint that refuses keeps nothing from measuring.

import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import { FleetMetrics, startOtlp } from "../../metrics/index.ts";
import { parseIpv6Address } from "../../pdm/index.ts";

interface Attribute {
  key: string;
  value: { stringValue?: string; intValue?: string | number };
}
interface ExportRequest {
  resourceMetrics: Array<{
    resource: { attributes: Attribute[] };
    scopeMetrics: Array<{ metrics: Array<Record<string, unknown> & { name: string; unit?: string }> }>;
  }>;
}

/** A collector on loopback: keeps every JSON body POSTed to /v1/metrics. */
async function receiver(status = 200): Promise<{ url: string; bodies: ExportRequest[]; server: Server }> {
  const bodies: ExportRequest[] = [];
  const server = createServer((req, res) => {
    let text = "";
    req.on("data", (d: Buffer) => (text += d.toString()));
    req.on("end", () => {
      if (req.url === "/v1/metrics" && status === 200) bodies.push(JSON.parse(text) as ExportRequest);
      res.writeHead(status, { "content-type": "application/json" });
      res.end("{}");
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { url: `http://127.0.0.1:${(server.address() as { port: number }).port}/v1/metrics`, bodies, server };
}

const attr = (list: Attribute[], key: string): string | number | undefined => {
  const v = list.find((a) => a.key === key)?.value;
  return v?.stringValue ?? (v?.intValue === undefined ? undefined : Number(v.intValue));
};

describe("OTLP export", () => {
  const servers: Server[] = [];
  after(() => servers.forEach((s) => s.close()));

  it("pushes exponential histograms in seconds with their counts, the counters, and the resource", async () => {
    const r = await receiver();
    servers.push(r.server);
    process.env.OTEL_RESOURCE_ATTRIBUTES = "deployment.environment=test";
    const fleet = new FleetMetrics({ version: "9.9.9", layout: "v2-clear" });
    const logs: string[] = [];
    const otlp = await startOtlp(fleet, { url: r.url, intervalMs: 200, version: "9.9.9", log: (l) => logs.push(l) });
    try {
      const flow = fleet.flow(parseIpv6Address("2001:db8:5::1"), 17, 7000);
      for (let i = 0; i < 40; i++) fleet.packet(flow, "rx");
      for (let i = 0; i < 25; i++) fleet.sample(flow, 2e6 + i * 1e4, 10e6, 12e6 + i * 1e4);
      fleet.setFlowsTracked(3);
      fleet.setAnomalyTotals({ auth_fail: 4 });
      const end = Date.now() + 10_000;
      let found: Record<string, unknown> | undefined;
      let request: ExportRequest | undefined;
      while (!found && Date.now() < end) {
        await new Promise((res) => setTimeout(res, 100));
        for (const body of r.bodies) {
          for (const m of body.resourceMetrics[0]!.scopeMetrics.flatMap((s) => s.metrics)) {
            const points = (m.exponentialHistogram as { dataPoints: Array<{ count: string | number }> } | undefined)
              ?.dataPoints;
            if (m.name === "pdm.server.delay" && points && Number(points[0]!.count) === 25) {
              found = m;
              request = body;
            }
          }
        }
      }
      assert.ok(
        found && request,
        `an export with the 25 samples (${r.bodies.length} exports seen; ${logs.join("; ")})`,
      );
      assert.equal(found.unit, "s");
      const point = (found.exponentialHistogram as { dataPoints: Array<Record<string, unknown>> }).dataPoints[0]!;
      assert.ok(
        Math.abs(Number(point.min) - 0.002) < 1e-12 && Math.abs(Number(point.max) - 0.00224) < 1e-12,
        "min and max",
      );
      assert.ok(Math.abs(Number(point.sum) - (25 * 0.002 + 0.01 * 0.3)) < 1e-9, `sum ${point.sum}`);
      const pointAttrs = point.attributes as Attribute[];
      assert.equal(attr(pointAttrs, "pdm.peer.prefix"), "other");
      assert.equal(attr(pointAttrs, "network.transport"), "udp");
      const names = request.resourceMetrics[0]!.scopeMetrics.flatMap((s) => s.metrics.map((m) => m.name));
      for (const n of [
        "pdm.round_trip.delay",
        "pdm.response.time",
        "pdm.packets",
        "pdm.flows.tracked",
        "pdm.anomalies",
        "pdm.events.lost",
      ])
        assert.ok(names.includes(n), `${n} is exported`);
      const resource = request.resourceMetrics[0]!.resource.attributes;
      assert.equal(attr(resource, "service.name"), "pdm");
      assert.equal(attr(resource, "service.version"), "9.9.9");
      assert.ok(attr(resource, "host.name"));
      assert.equal(attr(resource, "deployment.environment"), "test");
    } finally {
      await otlp.shutdown();
      delete process.env.OTEL_RESOURCE_ATTRIBUTES;
    }
  });

  it("an endpoint that fails does not hold up measuring, and is logged once per run of failures", async () => {
    const r = await receiver(503);
    servers.push(r.server);
    const fleet = new FleetMetrics({ version: "1", layout: "x" });
    const logs: string[] = [];
    const otlp = await startOtlp(fleet, { url: r.url, intervalMs: 100, version: "1", log: (l) => logs.push(l) });
    const flow = fleet.flow(parseIpv6Address("fd00::1"), 6, 443);
    const started = performance.now();
    for (let i = 0; i < 200_000; i++) fleet.sample(flow, 1e6, 1e6, 2e6);
    const ms = performance.now() - started;
    await new Promise((res) => setTimeout(res, 1500));
    const stop = performance.now();
    await otlp.shutdown();
    assert.ok(performance.now() - stop < 15_000, "shutdown returns");
    assert.ok(ms < 5000, `200,000 samples took ${ms.toFixed(0)} ms`);
    assert.ok(logs.filter((l) => /export failed/.test(l)).length <= 2, logs.join("\n"));
    assert.ok(
      logs.some((l) => /export failed/.test(l)),
      "the failure is logged",
    );
    assert.match(
      await fleet.render(),
      /pdm_server_delay_seconds_count\{pdm_peer_prefix="other",network_transport="tcp"\} 200000/,
    );
  });
});
