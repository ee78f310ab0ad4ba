// The C header and its TypeScript mirror cannot drift: gcc compiles
// bpf/include/pdm_abi.h and prints every struct's size and field offsets and every
// constant; probes/datapath/abi.ts must agree. The same harness runs the C delta encoder and
// LFSR (bpf/include/pdm_codec.h, what the eBPF program runs) against pdm/, and the
// kernel's option writer and reader (bpf/lib/pdm_option.h) against pdm/'s codec.

import { describe, it, before } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ALL_CONSTANTS, ALL_STRUCTS } from "../../probes/datapath/index.ts";
import {
  decodeDraftOption,
  decodePdmOption,
  encodeDeltaNs,
  encodeDraftOption,
  encodePdmOption,
  lfsrStep,
} from "../../pdm/index.ts";
import type { DraftClearOption, PdmV1Option, PdmV2ClearOption } from "../../pdm/index.ts";

const ROOT = join(import.meta.dirname, "..", "..");
const skip = spawnSync("gcc", ["--version"]).status === 0 ? undefined : "gcc is not installed";

function cProgram(body: string): string {
  return `#include <stdio.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include "pdm_abi.h"
#include "pdm_codec.h"
int main(int argc, char **argv) {
${body}
  return 0;
}
`;
}

describe("pdm_abi.h and probes/datapath/abi.ts", { skip }, () => {
  let dir: string;
  const run = (name: string, source: string, input = ""): string => {
    writeFileSync(join(dir, `${name}.c`), source);
    const include = ["-I", join(ROOT, "bpf", "include"), "-I", join(ROOT, "bpf", "lib")];
    execFileSync("gcc", ["-O1", "-Wall", "-Werror", ...include, "-o", join(dir, name), join(dir, `${name}.c`)]);
    return execFileSync(join(dir, name), { input, encoding: "utf8", maxBuffer: 64 << 20 });
  };
  before(() => {
    dir = mkdtempSync(join(tmpdir(), "pdm-abi-"));
    process.on("exit", () => rmSync(dir, { recursive: true, force: true }));
  });

  it("every struct has the same size and field offsets in C and TypeScript", () => {
    const lines: string[] = [];
    for (const s of ALL_STRUCTS) {
      lines.push(`  printf("${s.name} size %zu\\n", sizeof(struct ${s.name}));`);
      for (const f of s.fields)
        lines.push(
          `  printf("${s.name}.${f.name} %zu %zu\\n", offsetof(struct ${s.name}, ${f.name}), sizeof(((struct ${s.name} *)0)->${f.name}));`,
        );
    }
    const out = run("layout", cProgram(lines.join("\n")));
    const c = new Map(
      out
        .trim()
        .split("\n")
        .map((l) => {
          const [k, ...v] = l.split(" ");
          return [k!, v.join(" ")];
        }),
    );
    for (const s of ALL_STRUCTS) {
      assert.equal(c.get(s.name), `size ${s.size}`, `sizeof(struct ${s.name})`);
      for (const f of s.fields) {
        assert.equal(
          c.get(`${s.name}.${f.name}`),
          `${f.offset} ${f.size * f.count}`,
          `${s.name}.${f.name} offset and size`,
        );
      }
    }
  });

  it("every constant has the same value", () => {
    const lines = Object.entries(ALL_CONSTANTS).map(([name, v]) =>
      typeof v === "string"
        ? `  printf("${name} %s\\n", ${name});`
        : `  printf("${name} %llu\\n", (unsigned long long)(${name}));`,
    );
    const out = run("constants", cProgram(lines.join("\n")));
    for (const line of out.trim().split("\n")) {
      const [name, value] = line.split(" ") as [string, string];
      assert.equal(value, String(ALL_CONSTANTS[name]), name);
    }
  });

  it("the C delta encoder equals pdm/ for boundary and random values up to 2^64-1 ns", () => {
    const values: bigint[] = [
      0n,
      1n,
      2n,
      999n,
      1000n,
      65535n,
      65536n,
      1_000_000n,
      10_000_000n,
      1_000_000_000n,
      3_600_000_000_000n,
      2n ** 32n - 1n,
      2n ** 32n,
      2n ** 53n,
      2n ** 63n,
      2n ** 64n - 1n,
    ];
    for (let bit = 0; bit < 64; bit++)
      values.push((1n << BigInt(bit)) - 1n, 1n << BigInt(bit), (1n << BigInt(bit)) + 1n);
    let x = 0x9e3779b97f4a7c15n;
    for (let i = 0; i < 5000; i++) {
      x ^= (x << 13n) & 0xffffffffffffffffn;
      x ^= x >> 7n;
      x ^= (x << 17n) & 0xffffffffffffffffn;
      values.push(x >> BigInt(i % 64));
    }
    const input =
      values
        .filter((v) => v < 2n ** 64n)
        .map(String)
        .join("\n") + "\n";
    const out = run(
      "encode",
      cProgram(`  unsigned long long ns;
  while (scanf("%llu", &ns) == 1) {
    __u16 d; __u8 s;
    pdm_encode_delta_ns(ns, &d, &s);
    printf("%u %u\\n", d, s);
  }`),
      input,
    );
    const got = out.trim().split("\n");
    const inputs = input.trim().split("\n");
    assert.equal(got.length, inputs.length);
    inputs.forEach((ns, i) => {
      const e = encodeDeltaNs(BigInt(ns));
      assert.equal(got[i], `${e.delta} ${e.scale}`, `${ns} ns`);
    });
  });

  it("the C LFSR walks the same 32767-state cycle as pdm/", () => {
    const out = run(
      "lfsr",
      cProgram(`  __u16 s = 1;
  for (int i = 0; i < 32767; i++) { s = pdm_lfsr_step(s); printf("%u\\n", s); }`),
    );
    let s = 1;
    const expected: number[] = [];
    for (let i = 0; i < 32767; i++) expected.push((s = lfsrStep(s)));
    assert.deepEqual(out.trim().split("\n").map(Number), expected);
    assert.equal(expected.at(-1), 1, "period 32767");
  });

  it("the kernel's option writer and reader (pdm_option.h) agree with pdm/ on 2,000 options of each clear layout (RFC 8250, -02's, C/D and E)", () => {
    // In: one option per line as pdm/ encodes it (hex). Out: the fields the kernel reads
    // from it, then the header the kernel writes from those fields (hex).
    const out = run(
      "option",
      cProgram(`  char hex[80];
  while (scanf("%79s", hex) == 1) {
    __u8 h[PDM_DEST_OPTS_MAX] = {0};
    size_t n = strlen(hex) / 2;
    for (size_t i = 0; i < n; i++) sscanf(hex + 2 * i, "%2hhx", &h[2 + i]);
    struct pdm_opt_walk w = {0};
    memcpy(w.h, h, sizeof(h));
    /* Next Header, Hdr Ext Len, the option, PadN to the 8-byte boundary, as stamped */
    w.len = (2 + n + 2 + 7) / 8 * 8;
    w.h[2 + n] = PDM_OPT_PADN;
    w.h[3 + n] = w.len - (2 + n) - 2;
    w.i = 2;
    w.only_pdm = 1;
    w.e_type = PDM_DRAFT15_DEFAULT_TYPE;
    while (!pdm_opt_walk_step(0, &w)) {}
    struct pdm_fields f = {0};
    int bad = pdm_option_read_clear(w.h, w.at + 2, w.h[w.at], w.h[w.at + 1], w.e_type, &f);
    __u8 out[PDM_HDR_LEN_V2_PROTECTED] = {0};
    pdm_option_write(out, 17, w.len, &f);
    printf("%d %d %u %u %u %u %u %u %u %u %u %u %u ", bad, pdm_opt_is_stamped_form(w.h, w.len, w.e_type), w.at, f.layout, f.stlr, f.stls, f.psntp, f.psnlr, f.dtlr, f.dtls, f.rn_f, f.gp, f.kri);
    for (size_t i = 0; i < w.len; i++) printf("%02x", out[i]);
    printf("\\n");
  }`).replace('#include "pdm_codec.h"', '#include "pdm_codec.h"\n#include "pdm_option.h"'),
      inputs(),
    );
    const lines = out.trim().split("\n");
    assert.equal(lines.length, options.length);
    options.forEach((o, i) => {
      const [bad, stamped, at, layout, stlr, stls, psntp, psnlr, dtlr, dtls, rnf, gp, epoch, written] =
        lines[i]!.split(" ");
      const v2 = o.layout === "v2-clear";
      const wide = o.layout === "v2-draft09" || o.layout === "v2-draft15";
      assert.deepEqual(
        [bad, stamped, at, layout, stlr, stls, psntp, psnlr, dtlr, dtls, rnf, gp, epoch].map(Number),
        [
          0,
          1,
          2,
          ({ rfc8250: 1, "v2-clear": 2, "v2-draft09": 4, "v2-draft15": 5 } as Record<string, number>)[o.layout],
          o.scaleDtlr,
          o.scaleDtls,
          o.psnTp,
          o.psnLr,
          o.deltaTlr,
          o.deltaTls,
          v2 ? (o.randomNumber << 1) | o.fBit : 0,
          v2 || wide ? o.globalPointer : 0,
          wide ? o.epoch : 0,
        ],
        `fields of ${JSON.stringify(o)}`,
      );
      const bytes = Buffer.from(written!, "hex");
      const encoded = encodeAny(o);
      assert.deepEqual(
        bytes.subarray(2, 2 + encoded.length),
        Buffer.from(encoded),
        "the option the kernel writes is pdm/'s",
      );
      assert.deepEqual([...bytes.subarray(0, 2)], [17, bytes.length / 8 - 1], "Next Header, Hdr Ext Len");
      assert.deepEqual(
        [...bytes.subarray(2 + encoded.length)],
        wide ? [1, 4, 0, 0, 0, 0] : [1, 0],
        "PadN to the 8-byte boundary",
      );
      if (wide) {
        const decoded = decodeDraftOption(bytes, 2, bytes.length);
        assert.ok(!(decoded instanceof Error) && decoded.layout === o.layout, "pdm/ reads what the kernel wrote");
      } else {
        assert.ok(decodePdmOption(bytes, 2, bytes.length).ok, "pdm/ reads what the kernel wrote");
      }
    });
  });
});

/** Random clear options of every layout the kernel stamps, each field over its whole range. */
const options: (PdmV1Option | PdmV2ClearOption | DraftClearOption)[] = [];
{
  let x = 0x2545f491;
  const next = (max: number): number => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) % (max + 1);
  };
  for (let i = 0; i < 2000; i++) {
    const times = {
      scaleDtlr: next(255),
      scaleDtls: next(255),
      psnTp: next(65535),
      psnLr: next(65535),
      deltaTlr: next(65535),
      deltaTls: next(65535),
    };
    options.push({ layout: "rfc8250", ...times });
    options.push({
      layout: "v2-clear",
      ...times,
      randomNumber: next(0x7fff),
      fBit: next(1) as 0 | 1,
      globalPointer: next(0xffff_ffff),
    });
    for (const layout of ["v2-draft09", "v2-draft15"] as const)
      options.push({
        layout,
        ...times,
        psnTp: next(0xffff_ffff),
        psnLr: next(0xffff_ffff),
        epoch: next(0xfff),
        globalPointer: next(0xffff_ffff),
      });
  }
}
const encodeAny = (o: (typeof options)[number]): Uint8Array =>
  "epoch" in o ? encodeDraftOption(o) : encodePdmOption(o);
function inputs(): string {
  return options.map((o) => Buffer.from(encodeAny(o)).toString("hex")).join("\n") + "\n";
}
