// pdm service: the measuring service of a host (cli/service/).

import { Command } from "@commander-js/extra-typings";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { packageRoot } from "../../pdm/index.ts";

/** Where the package installs the service's config (packaging/). */
const DEFAULT_SERVICE_CONFIG = "/etc/pdm/service.json";

export function serviceCommand() {
  return new Command("service")
    .summary("measure this host's PDM flows and serve them for Prometheus, as a service")
    .description(
      `Run in the foreground until SIGTERM or Ctrl-C: attach the data path on the
interfaces the config lists (unless attached already), read the kernel's
measurement records into a bounded live analysis, and serve the fleet metrics
(metrics.md) for Prometheus on the config's address, loopback by default. With
"agent" in the config it also runs the registration agent, whose key installer
the protected layout needs. SIGHUP reloads the config: a bad one is refused and
the running one kept. At stop it detaches what it attached. Logs go to stderr.

The config is JSON; every field is checked at start, an unknown one refused.
Its fields: interfaces (name, attach: layout, aead, ports, prefixes,
flowTimeoutSeconds), metrics (listen, prefixLength, prefixNames, topPrefixes,
maxLabelSets, labelTtlSeconds, serverPorts, buckets), live (idleSeconds,
maxFlows), otlp (endpoint, intervalSeconds: push to an OpenTelemetry
collector; the OTEL_EXPORTER_OTLP_* variables work too), agent. Needs root.`,
    )
    .option("-c, --config <file>", "the service's config file", DEFAULT_SERVICE_CONFIG)
    .addHelpText(
      "after",
      `
Example config (/etc/pdm/service.json):
  { "interfaces": [{ "name": "eth0", "attach": { "layout": "v2" } }],
    "metrics": { "listen": "[::1]:9464",
                 "prefixNames": { "dc1": "fd00:1::/32" } },
    "otlp": { "endpoint": "http://[::1]:4318/v1/metrics" } }

  pdm service -c /etc/pdm/service.json      # or: systemctl start pdm`,
    )
    .action(async (opts) => {
      const version = (JSON.parse(readFileSync(join(packageRoot(), "package.json"), "utf8")) as { version: string })
        .version;
      // Loaded here: prom-client and OpenTelemetry would slow every other command's start.
      const { MeasuringService } = await import("../service/service.ts");
      await new MeasuringService(opts.config, version, (line) => process.stderr.write(`${line}\n`)).run();
    });
}
