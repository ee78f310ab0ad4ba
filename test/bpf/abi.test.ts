// The C header and its TypeScript mirror cannot drift: gcc compiles
// bpf/include/pdm_abi.h and prints every struct's size and field offsets and every
// constant; probes/datapath/abi.ts must agree. The same harness runs the C delta encoder and
// LFSR (bpf/include/pdm_codec.h, what the eBPF program runs) against pdm/.

import { describe, it, before } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ALL_CONSTANTS, ALL_STRUCTS } from "../../probes/datapath/index.ts";
import { encodeDeltaNs, lfsrStep } from "../../pdm/index.ts";

const ROOT = join(import.meta.dirname, "..", "..");
const skip = spawnSync("gcc", ["--version"]).status === 0 ? undefined : "gcc is not installed";

function cProgram(body: string): string {
  return `#include <stdio.h>
#include <stddef.h>
#include <stdlib.h>
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
    execFileSync("gcc", [
      "-O1",
      "-Wall",
      "-Werror",
      "-I",
      join(ROOT, "bpf", "include"),
      "-o",
      join(dir, name),
      join(dir, `${name}.c`),
    ]);
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
});
