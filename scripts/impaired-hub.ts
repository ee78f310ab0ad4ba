// Runs an impaired hub between interfaces until SIGINT/SIGTERM (see lab/impaired-hub.ts).
// Prints "hub ready" once its ports capture, and its counts as one JSON line at the end.
// Usage: node --import tsx scripts/impaired-hub.ts '{"ports": ["p0", "p1"], "loss": 0.1, ...}'
import { startImpairedHub, type ImpairedHubOptions } from "../lab/index.ts";

const [json] = process.argv.slice(2);
if (!json) {
  process.stderr.write("usage: impaired-hub '<options as JSON: ports, delayMs, jitterMs, loss, udpPort, ...>'\n");
  process.exit(2);
}
const hub = startImpairedHub(JSON.parse(json) as ImpairedHubOptions);
process.stdout.write("hub ready\n");
const stop = (): void => {
  hub.close();
  process.stdout.write(`${JSON.stringify(hub.stats())}\n`);
  process.exit(0);
};
process.on("SIGINT", stop);
process.on("SIGTERM", stop);
