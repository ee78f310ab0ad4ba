// Regenerates the bundled fixture captures in fixtures/captures/ (deterministic:
// same bytes every run), or writes one large capture for benchmarks:
//
//   node --import tsx scripts/gen-fixtures.ts [--out DIR]        # the bundled set
//   node --import tsx scripts/gen-fixtures.ts --large rfc8250 1000000 out/big [payloadBytes [flows]]
//   (flows: 64 unless told; at most 35,000, each with its own client port)

import { mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { FIXTURES, largeScenario, writeSimulatedCapture } from "../fixtures/index.ts";
import type { AnyLayout } from "../pdm/index.ts";

const args = process.argv.slice(2);
if (args[0] === "--large") {
  const layout = (args[1] ?? "rfc8250") as AnyLayout;
  const packets = Number(args[2] ?? 1_000_000);
  const base = args[3] ?? join("out", `large-${layout}-${packets}`);
  mkdirSync(dirname(base), { recursive: true });
  const started = Date.now();
  const payload = Number(args[4] ?? 512);
  const flows = Number(args[5] ?? 64);
  if (!Number.isInteger(flows) || flows < 1 || flows > 35_000)
    throw new Error(`flows must be 1 to 35,000 (one client port each), not ${args[5]}`);
  const w = writeSimulatedCapture(base, "pcapng", largeScenario(layout, packets, flows, payload));
  console.log(`wrote ${w.capture} (${w.packets} packets) in ${((Date.now() - started) / 1000).toFixed(1)} s`);
} else {
  const outAt = args.indexOf("--out");
  const dir = outAt >= 0 ? args[outAt + 1]! : join(import.meta.dirname, "..", "fixtures", "captures");
  mkdirSync(dir, { recursive: true });
  for (const f of FIXTURES) {
    const w = writeSimulatedCapture(join(dir, f.name), f.format, f.scenario, f.description);
    console.log(`wrote ${w.capture} (${w.packets} packets)${w.keys ? ` and ${w.keys}` : ""}`);
  }
}
