// The Prometheus pull path: GET /metrics on a configured address (loopback unless the
// user names another), answering the registry in Prometheus's text format.

import { createServer, type Server } from "node:http";
import { isIPv6 } from "node:net";
import { UsageError } from "../pdm/index.ts";
import type { FleetMetrics } from "./fleet-metrics.ts";

export interface MetricsAddress {
  host: string;
  port: number;
}

/** "[::1]:9464", "127.0.0.1:9464", or a bare port (then ::1). Port 0 picks a free one. */
export function parseMetricsAddress(text: string): MetricsAddress {
  const bare = /^\d+$/.test(text);
  const m = bare ? ["", "::1", text] : (/^\[([^\]]+)\]:(\d+)$/.exec(text) ?? /^([^:]+):(\d+)$/.exec(text));
  const port = m ? Number(m[2]) : NaN;
  if (!m || !Number.isInteger(port) || port < 0 || port > 65535 || (m[1]!.includes(":") && !isIPv6(m[1]!)))
    throw new UsageError(`"${text}" is not an address to serve metrics on (for example [::1]:9464 or 127.0.0.1:9464)`);
  return { host: m[1]!, port };
}

export interface MetricsEndpoint {
  /** Where Prometheus scrapes, e.g. http://[::1]:9464/metrics. */
  readonly url: string;
  readonly port: number;
  close(): Promise<void>;
}

export async function serveMetrics(metrics: FleetMetrics, at: MetricsAddress): Promise<MetricsEndpoint> {
  const server: Server = createServer((req, res) => {
    if (req.method !== "GET" || (req.url !== "/metrics" && !req.url?.startsWith("/metrics?"))) {
      res.writeHead(req.url === "/" ? 200 : 404, { "content-type": "text/plain" });
      res.end(req.url === "/" ? "pdm: metrics at /metrics\n" : "not found: metrics are at /metrics\n");
      return;
    }
    metrics.render().then(
      (body) => {
        res.writeHead(200, { "content-type": metrics.registry.contentType });
        res.end(body);
      },
      (e: unknown) => {
        res.writeHead(500, { "content-type": "text/plain" });
        res.end(`pdm: the metrics could not be rendered: ${(e as Error).message}\n`);
      },
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", (e: NodeJS.ErrnoException) => {
      const where = at.host.includes(":") ? `[${at.host}]:${at.port}` : `${at.host}:${at.port}`;
      if (e.code === "EADDRINUSE")
        reject(new UsageError(`${where} is already in use: choose another --metrics address`));
      else if (e.code === "EADDRNOTAVAIL")
        reject(new UsageError(`${where}: ${at.host} is not an address of this host`));
      else if (e.code === "EACCES") reject(new UsageError(`${where}: binding port ${at.port} needs privileges`));
      else reject(e);
    });
    server.listen(at.port, at.host, () => resolve());
  });
  const port = (server.address() as { port: number }).port;
  const host = at.host.includes(":") ? `[${at.host}]` : at.host;
  return {
    url: `http://${host}:${port}/metrics`,
    port,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
