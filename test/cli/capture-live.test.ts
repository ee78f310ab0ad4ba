// `pdm capture` over time, on real bytes: PDM-stamped UDP frames injected on the
// loopback interface (libpcap), captured by a separate `pdm capture` process with a
// 1-second idle timeout and a one-flow list. Three flows come one after the other, 3 s
// apart: the first two end idle, the list keeps the worse of them, the third is still
// tracked at the end, and every packet is in the totals.

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { createRequire } from "node:module";
import { join } from "node:path";
import { encodeDeltaNs, encodeDestOptionsHeader, encodePdmOption, NEXT_HEADER_DEST_OPTS } from "../../pdm/index.ts";
import { ipv6Packet, udpHeader } from "../../fixtures/index.ts";

const root = join(import.meta.dirname, "..", "..");
const PORT = 45353;
// (A port filter would not see through the Destination Options header: the capture
// filters on the test's own prefix, which nothing else on this host uses.)
const FILTER = "ip6 net fd00:7::/64";
const MS = 1e6;

/** Send frames on lo, from a helper process (node_pcap would keep this one running). */
function inject(frames: Buffer[]): void {
  const r = spawnSync(process.execPath, [join(root, "test", "helpers", "inject-frames.mjs"), "lo"], {
    input: frames.map((f) => f.toString("hex")).join("\n"),
    encoding: "utf8",
  });
  assert.equal(r.stdout.trim(), `${frames.length} injected`, r.stderr);
}

function skipReason(): string | undefined {
  if (process.getuid?.() !== 0) return "needs root to capture and inject on lo";
  try {
    createRequire(import.meta.url)("pcap");
  } catch {
    return "the pcap package is not built (bash scripts/setup.sh)";
  }
  return undefined;
}

/** An Ethernet frame on lo (zero MACs) carrying `packet`. */
const onLoopback = (packet: Uint8Array): Buffer =>
  Buffer.concat([Buffer.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x86, 0xdd]), packet]);

/** UDP fd00:7::<client>.40000 <-> fd00:7::100.PORT with a PDM (RFC 8250) option. */
function frame(
  client: number,
  up: boolean,
  psnTp: number,
  psnLr: number,
  deltaTlrNs: number,
  deltaTlsNs: number,
): Buffer {
  const tlr = encodeDeltaNs(deltaTlrNs);
  const tls = encodeDeltaNs(deltaTlsNs);
  const option = encodePdmOption({
    layout: "rfc8250",
    psnTp,
    psnLr,
    deltaTlr: tlr.delta,
    scaleDtlr: tlr.scale,
    deltaTls: tls.delta,
    scaleDtls: tls.scale,
  });
  const [a, b] = [`fd00:7::${client}`, "fd00:7::100"];
  return onLoopback(
    ipv6Packet({
      src: up ? a : b,
      dst: up ? b : a,
      ext: [[NEXT_HEADER_DEST_OPTS, encodeDestOptionsHeader(17, option)]],
      proto: 17,
      upper: up ? udpHeader(40000, PORT) : udpHeader(PORT, 40000),
    }),
  );
}

/** Five request/answer exchanges (four samples: each request names the answer before it). */
function exchanges(client: number, serverNs: number): void {
  const frames: Buffer[] = [];
  for (let k = 0; k < 5; k += 1) {
    frames.push(frame(client, true, 10 + k, k === 0 ? 0 : 500 + k - 1, 0, k === 0 ? 0 : serverNs + 2 * MS));
    frames.push(frame(client, false, 500 + k, 10 + k, serverNs, 0));
  }
  inject(frames);
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

interface LiveJson {
  counters: { pdmPackets: number };
  flows: Array<{
    client: string;
    serverDelayNs?: { p50: number; count: number };
    responseTimeNs?: { count: number };
    packets: { clientToServer: number };
  }>;
  live: {
    trackedFlows: number;
    endedIdle: number;
    endedEarly: number;
    notListed: number;
    percentileAccuracy: number;
    limits: { idleSec: number };
  };
}

describe("pdm capture over time", { skip: skipReason() }, () => {
  it("ends idle flows, lists the worst, keeps every packet in the totals", async () => {
    const capture = spawn(
      process.execPath,
      [
        join(root, "bin", "pdm.js"),
        "capture",
        "-i",
        "lo",
        "-f",
        "json",
        "--idle-timeout",
        "1",
        "--max-listed",
        "1",
        FILTER,
      ],
      {
        cwd: root,
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    let stdout = "";
    let stderr = "";
    capture.stdout.on("data", (d: Buffer) => (stdout += d));
    capture.stderr.on("data", (d: Buffer) => (stderr += d));
    const exited = new Promise<number | null>((r) => capture.on("exit", (code) => r(code)));
    try {
      for (let waited = 0; !/capturing on lo/.test(stderr); waited += 100) {
        assert.ok(waited < 20_000, `capture did not start: ${stderr}`);
        await sleep(100);
      }
      await sleep(500); // the filter is in place
      exchanges(1, 50 * MS); // the slow server: kept in the list
      await sleep(3000);
      exchanges(2, 1 * MS); // ends idle, then is dropped from the one-flow list
      await sleep(3000);
      exchanges(3, 10 * MS); // still tracked when the capture stops
      await sleep(500);
    } finally {
      capture.kill("SIGINT");
    }
    assert.equal(await exited, 0, stderr);
    const result = JSON.parse(stdout) as LiveJson;

    assert.equal(result.counters.pdmPackets, 30, "every packet in the totals");
    assert.deepEqual(
      {
        idle: result.live.limits.idleSec,
        endedIdle: result.live.endedIdle,
        tracked: result.live.trackedFlows,
        notListed: result.live.notListed,
        early: result.live.endedEarly,
      },
      { idle: 1, endedIdle: 2, tracked: 1, notListed: 1, early: 0 },
    );
    assert.deepEqual(
      result.flows.map((f) => f.client).sort(),
      ["fd00:7::1", "fd00:7::3"],
      "the worse ended flow and the tracked one",
    );
    const slow = result.flows.find((f) => f.client === "fd00:7::1")!;
    assert.equal(slow.packets.clientToServer, 5);
    assert.equal(slow.responseTimeNs!.count, 4);
    assert.ok(
      Math.abs(slow.serverDelayNs!.p50 - 50 * MS) <= result.live.percentileAccuracy * 50 * MS,
      `server delay ${slow.serverDelayNs!.p50}`,
    );
    assert.match(stderr, /30 packets captured/);
  });
});
