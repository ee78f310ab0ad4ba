// The in-kernel AEADs of the protected layout (issue 6's budget: an egress program of
// at most 0.9 µs with ChaCha20-Poly1305 and 1.2 µs with AES-128-GCM), in one run:
//
//   make bench-aead                # or: node --import tsx bench/aead.bench.ts (root)
//
// Each program seals (or opens) one PDM option per run through BPF_PROG_TEST_RUN,
// 5,000 runs per call; the best of 15 calls is kept, interleaved across programs so
// that the machine's noise hits them alike. The empty tc program is the baseline: what
// BPF_PROG_TEST_RUN itself costs per run. Writes bench/out/aead.md.

import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { randomBytes, createCipheriv } from "node:crypto";
import { encodeConfig, nativeBpf, bpfObjectPath } from "../probes/index.ts";
import { datapathSkipReason, ROOT } from "../test/helpers/netns.ts";

const skip = datapathSkipReason();
if (skip) {
  process.stderr.write(`bench/aead: cannot run: ${skip}.\n`);
  process.exit(1);
}
const native = nativeBpf();
const build = join(ROOT, "bpf", "build");

const pdm = native.openObject(bpfObjectPath());
native.setInitialValue(pdm, ".rodata", encodeConfig({ ifname: "bench", layout: "rfc8250" }, 14));
native.loadObject(pdm);
const chacha = native.openObject(join(build, "aead_test.bpf.o"));
native.loadObject(chacha);

const key = randomBytes(32);
const nonce = randomBytes(12);
const aad = randomBytes(6);
const text = randomBytes(14);
const sealedWith = (cipher: "chacha20-poly1305" | "aes-128-gcm", k: Buffer): Buffer => {
  const c = createCipheriv(cipher as "aes-128-gcm", k, nonce, { authTagLength: 16 });
  c.setAAD(aad);
  return Buffer.concat([c.update(text), c.final(), c.getAuthTag()]);
};

interface Case {
  name: string;
  fd: number;
  input: Buffer;
}
const cases: Case[] = [
  { name: "empty tc program (the cost of a test run)", fd: native.programFd(pdm, "pdm_empty"), input: Buffer.alloc(64) },
  { name: "ChaCha20-Poly1305 seal", fd: native.programFd(chacha, "aead_seal"), input: Buffer.concat([key, nonce, aad, text, Buffer.alloc(30)]) },
  { name: "ChaCha20-Poly1305 open", fd: native.programFd(chacha, "aead_open"), input: Buffer.concat([key, nonce, aad, sealedWith("chacha20-poly1305", key), Buffer.alloc(14)]) },
];
const gcmObject = join(build, "aes_gcm_test.bpf.o");
let gcmNote = "";
if (existsSync(gcmObject)) {
  const gcm = native.openObject(gcmObject);
  native.loadObject(gcm);
  const aesKey = key.subarray(0, 16);
  const args = Buffer.concat([aesKey, Buffer.alloc(4)]);
  if (native.progRunContext(native.programFd(gcm, "gcm_setup"), args) !== 0) throw new Error(`gcm_setup failed: ${args.readInt32LE(16)}`);
  if (native.progTestRun(native.programFd(gcm, "gcm_htable"), Buffer.alloc(64), 1, 64).retval !== 0) throw new Error("gcm_htable failed");
  cases.push(
    { name: "AES-128-GCM seal", fd: native.programFd(gcm, "gcm_seal"), input: Buffer.concat([nonce, aad, text, Buffer.alloc(30)]) },
    { name: "AES-128-GCM open", fd: native.programFd(gcm, "gcm_open"), input: Buffer.concat([nonce, aad, sealedWith("aes-128-gcm", aesKey), Buffer.alloc(14)]) },
  );
} else {
  gcmNote = "\nAES-128-GCM not measured: bpf/build/aes_gcm_test.bpf.o is not built (needs clang 15 or later).\n";
}

const best = new Map<string, number>();
for (let round = 0; round < 15; round++) {
  for (const c of cases) {
    const r = native.progTestRun(c.fd, c.input, 5000, c.input.length + 64);
    best.set(c.name, Math.min(best.get(c.name) ?? Infinity, r.durationNs));
  }
}
const baseline = best.get(cases[0]!.name)!;
const lines = [
  `# In-kernel AEAD benchmark (${new Date().toISOString()}, best of 15 x 5,000 runs)`,
  "",
  "| program | ns per run | minus the empty program |",
  "|---|---|---|",
  ...cases.map((c) => `| ${c.name} | ${best.get(c.name)} | ${c === cases[0] ? "" : best.get(c.name)! - baseline} |`),
  gcmNote,
  "Command: `make bench-aead` (root).",
];
const out = lines.join("\n") + "\n";
process.stdout.write(out);
mkdirSync(join(ROOT, "bench", "out"), { recursive: true });
writeFileSync(join(ROOT, "bench", "out", "aead.md"), out);
for (const o of [pdm, chacha]) native.closeObject(o);
