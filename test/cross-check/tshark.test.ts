// Decoding checked against something nobody here wrote: Wireshark's PDM dissector.
// For every packet of the RFC 8250 fixture, the six PDM fields tshark prints must
// equal what pdm/ decodes.

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { join } from "node:path";
import { bufferSource, readCapture } from "../../analyzer/index.ts";
import { ipv6Offset, parseIpv6 } from "../../pdm/index.ts";
import { readFileSync } from "node:fs";

const dir = join(import.meta.dirname, "..", "..", "fixtures", "captures");
const haveTshark = spawnSync("tshark", ["--version"], { stdio: "ignore" }).status === 0;
const FIELDS = ["scale_dtlr", "scale_dtls", "psn_this_pkt", "psn_last_recv", "delta_last_recv", "delta_last_sent"];

describe(
  "tshark cross-check",
  { skip: haveTshark ? false : "tshark is not installed (scripts/setup.sh installs it)" },
  () => {
    for (const file of ["rfc8250-udp.pcap"]) {
      it(`${file}: every PDM field equals tshark's`, async () => {
        const out = execFileSync(
          "tshark",
          [
            "-r",
            join(dir, file),
            "-T",
            "fields",
            "-E",
            "separator=,",
            "-e",
            "frame.number",
            ...FIELDS.flatMap((f) => ["-e", `ipv6.opt.pdm.${f}`]),
          ],
          {
            encoding: "utf8",
            stdio: ["ignore", "pipe", "ignore"],
          },
        );
        const theirs = out
          .trim()
          .split("\n")
          .map((l) => l.split(",").map(Number));
        const ours: number[][] = [];
        await readCapture(bufferSource(readFileSync(join(dir, file))), (p) => {
          const r = parseIpv6(p.data, ipv6Offset(p.linkType, p.data, p.data.length));
          assert.ok(r.ok && r.value.pdm?.layout === "rfc8250");
          const o = r.value.pdm;
          ours.push([p.number, o.scaleDtlr, o.scaleDtls, o.psnTp, o.psnLr, o.deltaTlr, o.deltaTls]);
        });
        assert.equal(theirs.length, ours.length);
        assert.ok(ours.length > 300);
        assert.deepEqual(ours, theirs);
      });
    }
  },
);
