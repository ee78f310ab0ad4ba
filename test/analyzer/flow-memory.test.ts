// The analyzer's memory per flow: a capture may hold millions of short flows.
// - StampHistory (the stamps a direction sent, by PSNTP, for pairing) starts small and
//   grows, yet recalls exactly what a ring of 1,024 slots would (fast-check, against
//   such a ring).
// - 20,000 flows of four request/response exchanges each take a few KiB apiece, with
//   every sample paired (a fixed history took 48 KiB a flow: 1.2 GB for 20,000).

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import v8 from "node:v8";
import vm from "node:vm";
import fc from "fast-check";
import { FlowTable, StampHistory } from "../../analyzer/index.ts";
import { type PdmRecord } from "../../pdm/index.ts";

v8.setFlagsFromString("--expose-gc");
const gc = vm.runInNewContext("gc") as () => void;

describe("StampHistory", () => {
  it("recalls exactly what a 1,024-slot ring indexed by PSNTP recalls", () => {
    // PSNTP runs mostly in sequence (a flow's own counter), with jumps (loss, a restart)
    // and look-ups near the latest (PSNLR echoes a recent one) or anywhere.
    const op = fc.oneof(
      fc.record({ kind: fc.constant("next" as const), step: fc.integer({ min: 1, max: 3 }) }),
      fc.record({ kind: fc.constant("jump" as const), to: fc.integer({ min: 0, max: 0xffff }) }),
      fc.record({ kind: fc.constant("recall-near" as const), back: fc.integer({ min: 0, max: 1100 }) }),
      fc.record({ kind: fc.constant("recall" as const), psn: fc.integer({ min: 0, max: 0xffff }) }),
    );
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0xffff }), fc.array(op, { maxLength: 3000 }), (start, ops) => {
        const history = new StampHistory();
        const ring = new Map<number, [number, number, number]>(); // slot -> (psnTp, psnLr, delta)
        let psn = start;
        let n = 0;
        const check = (want: number): void => {
          const slot = history.recall(want);
          const kept = ring.get(want % 1024);
          if (kept && kept[0] === want) {
            assert.ok(slot >= 0, `PSNTP ${want} recalled`);
            assert.deepEqual([history.psnLrOf(slot), history.deltaTlrNsOf(slot)], [kept[1], kept[2]]);
          } else {
            assert.equal(slot, -1, `PSNTP ${want} not recalled`);
          }
        };
        for (const o of ops) {
          if (o.kind === "next" || o.kind === "jump") {
            psn = o.kind === "next" ? (psn + o.step) & 0xffff : o.to;
            n += 1;
            history.remember(psn, (psn * 7) & 0xffff, n * 1000);
            ring.set(psn % 1024, [psn, (psn * 7) & 0xffff, n * 1000]);
          } else {
            check(o.kind === "recall" ? o.psn : (psn - o.back) & 0xffff);
          }
        }
        assert.ok(history.slots <= 1024);
      }),
      { numRuns: 200 },
    );
  });

  it("stays small for a short flow and reaches 1,024 slots for a long one", () => {
    const short = new StampHistory();
    for (let psn = 100; psn < 104; psn += 1) short.remember(psn, 0, 0);
    assert.ok(short.slots <= 8, `${short.slots} slots for 4 stamps`);
    const long = new StampHistory();
    for (let psn = 0; psn < 5000; psn += 1) long.remember(psn, 0, 0);
    assert.equal(long.slots, 1024);
    assert.ok(
      long.recall(4999) >= 0 && long.recall(5000 - 1024) >= 0 && long.recall(5000 - 1025) === -1,
      "the last 1,024 kept",
    );
  });
});

describe("flow table memory", () => {
  it("20,000 short flows take a few KiB each, every exchange paired", () => {
    const FLOWS = 20_000;
    const EXCHANGES = 4;
    const table = new FlowTable();
    const addresses = new Uint8Array(32);
    addresses.set([0xfd, 0, 0, 1], 0); // fd00:1::/32 clients
    addresses.set([0xfd, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1], 16); // server fd00:2::1
    const record: PdmRecord = {
      timeNs: 0,
      addresses,
      srcOffset: 0,
      dstOffset: 16,
      sport: 0,
      dport: 0,
      proto: 17,
      pdm: undefined,
      pdmError: undefined,
      number: 0,
    };
    const send = (
      client: number,
      up: boolean,
      psnTp: number,
      psnLr: number,
      deltaTlr: number,
      deltaTls: number,
    ): void => {
      // client i: fd00:1::<i>, port 40000 + i % 20000
      addresses[14] = client >> 8;
      addresses[15] = client & 0xff;
      record.srcOffset = up ? 0 : 16;
      record.dstOffset = up ? 16 : 0;
      record.sport = up ? 40000 + client : 53;
      record.dport = up ? 53 : 40000 + client;
      record.pdm = { layout: "rfc8250", scaleDtlr: 0, scaleDtls: 0, psnTp, psnLr, deltaTlr, deltaTls };
      record.timeNs += 1000;
      record.number += 1;
      table.add(record);
    };

    gc();
    const before = process.memoryUsage();
    for (let client = 0; client < FLOWS; client += 1) {
      // Request k carries PSNTP 10 + k and echoes the answer before it; the server's
      // answer k carries PSNTP 500 + k, echoes request k, and held it 300 ns.
      for (let k = 0; k < EXCHANGES; k += 1) {
        send(client, true, 10 + k, k === 0 ? 0 : 500 + k - 1, 0, k === 0 ? 0 : 2000);
        send(client, false, 500 + k, 10 + k, 300, 0);
      }
    }
    gc();
    const after = process.memoryUsage();
    const grown = after.heapUsed + after.arrayBuffers - (before.heapUsed + before.arrayBuffers);
    const perFlow = grown / FLOWS;

    assert.equal(table.conversations.length, FLOWS);
    const samples = table.conversations.reduce((n, c) => n + c.samples.length, 0);
    assert.equal(samples, FLOWS * (EXCHANGES - 1), "each request after the first pairs with the answer before it");
    assert.ok(perFlow < 6 * 1024, `${Math.round(perFlow)} bytes per flow`);
  });
});
