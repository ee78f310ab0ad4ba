// The in-kernel AEADs of the protected layout (issue 6's budget: an egress program of
// at most 0.9 µs with ChaCha20-Poly1305 and 1.2 µs with AES-128-GCM), and the data
// path's programs with and without them, the later drafts' layouts next to -02's, in
// one run:
//
//   make bench-aead                # or: node --import tsx bench/aead.bench.ts (root)
//
// Each AEAD program seals (or opens) one PDM option per run through BPF_PROG_TEST_RUN,
// 5,000 runs per call. The egress and ingress programs run once per call (they change
// their packet), median of 5,000 calls; that includes the test run's own cost of a
// call, about 50 ns here. The best of 15 rounds is kept, interleaved across programs
// so that the machine's noise hits them alike. The empty tc program is the baseline
// for the first kind. Writes bench/out/aead.md.

import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { randomBytes, createCipheriv } from "node:crypto";
import { parseIpv6Address } from "../pdm/index.ts";
import {
  PDM_MAP,
  PDM_PROG,
  encodeConfig,
  nativeBpf,
  bpfObjectPath,
  aesDataPathUnavailable,
} from "../probes/datapath/index.ts";
import { installFlowKey } from "../probes/kernel-keys/index.ts";
import { ipv6Packet, udpHeader } from "../fixtures/index.ts";
import { datapathSkipReason, ROOT } from "../lab/index.ts";

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
  {
    name: "empty tc program (the cost of a test run)",
    fd: native.programFd(pdm, "pdm_empty"),
    input: Buffer.alloc(64),
  },
  {
    name: "ChaCha20-Poly1305 seal",
    fd: native.programFd(chacha, "aead_seal"),
    input: Buffer.concat([key, nonce, aad, text, Buffer.alloc(30)]),
  },
  {
    name: "ChaCha20-Poly1305 open",
    fd: native.programFd(chacha, "aead_open"),
    input: Buffer.concat([key, nonce, aad, sealedWith("chacha20-poly1305", key), Buffer.alloc(14)]),
  },
];
const gcmObject = join(build, "aes_gcm_test.bpf.o");
let gcmNote = "";
if (existsSync(gcmObject)) {
  const gcm = native.openObject(gcmObject);
  native.loadObject(gcm);
  const aesKey = key.subarray(0, 16);
  const args = Buffer.concat([aesKey, Buffer.alloc(4)]);
  if (native.progRunContext(native.programFd(gcm, "gcm_setup"), args) !== 0)
    throw new Error(`gcm_setup failed: ${args.readInt32LE(16)}`);
  if (native.progTestRun(native.programFd(gcm, "gcm_htable"), Buffer.alloc(64), 1, 64).retval !== 0)
    throw new Error("gcm_htable failed");
  cases.push(
    {
      name: "AES-128-GCM seal",
      fd: native.programFd(gcm, "gcm_seal"),
      input: Buffer.concat([nonce, aad, text, Buffer.alloc(30)]),
    },
    {
      name: "AES-128-GCM open",
      fd: native.programFd(gcm, "gcm_open"),
      input: Buffer.concat([nonce, aad, sealedWith("aes-128-gcm", aesKey), Buffer.alloc(14)]),
    },
  );
} else {
  gcmNote = "\nAES-128-GCM not measured: bpf/build/aes_gcm_test.bpf.o is not built (needs clang 15 or later).\n";
}

// The whole data path on the protected layout (ChaCha20-Poly1305, and AES-128-GCM where
// the kernel has the crypto kfuncs), one 64-byte UDP packet per run, next to PDMv2
// clear: egress stamping (the sealing program reached by tail call), and ingress
// reading what that egress sealed (opening by tail call).
const flow = {
  src: parseIpv6Address("fd00::1"),
  dst: parseIpv6Address("fd00::2"),
  sport: 40000,
  dport: 7000,
  proto: 17,
};
const frame = Buffer.concat([
  Buffer.from([2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x86, 0xdd]),
  ipv6Packet({ src: "fd00::1", dst: "fd00::2", proto: 17, upper: udpHeader(40000, 7000, 64) }),
]);
type Aead = "chacha20-poly1305" | "aes-128-gcm";
const dataPathObjects: number[] = [];
const hostFor = (
  layout: "v2-clear" | "v2-protected" | "v2-draft09" | "v2-draft15" | "v2-draft15-protected",
  aead: Aead = "chacha20-poly1305",
): number => {
  const o = native.openObject(bpfObjectPath({ aes: aead === "aes-128-gcm" }));
  native.setInitialValue(o, ".rodata", encodeConfig({ ifname: "bench", layout, aead, events: false }, 14));
  native.loadObject(o);
  dataPathObjects.push(o);
  return o;
};
const stampedBy = (o: number): Buffer =>
  native.progTestRun(native.programFd(o, PDM_PROG.egress), frame, 1, frame.length + 128).data;
// PDMv2 clear (-02's layout A) and the later drafts' clear layouts (C/D, E) side by side.
for (const [layout, name] of [
  ["v2-clear", "PDMv2 clear"],
  ["v2-draft09", "draft-14 (C/D)"],
  ["v2-draft15", "draft-15 (E clear)"],
] as const) {
  const clear = { sender: hostFor(layout), receiver: hostFor(layout) };
  cases.push(
    { name: `egress program, ${name}`, fd: native.programFd(clear.sender, PDM_PROG.egress), input: frame },
    {
      name: `ingress program, ${name}`,
      fd: native.programFd(clear.receiver, PDM_PROG.ingress),
      input: stampedBy(clear.sender),
    },
  );
}
const noAes = aesDataPathUnavailable();
for (const [aead, name, keyLength] of [
  ["chacha20-poly1305", "ChaCha20-Poly1305", 32],
  ["aes-128-gcm", "AES-128-GCM", 16],
] as const) {
  if (aead === "aes-128-gcm" && noAes) {
    gcmNote += `\nThe data path with AES-128-GCM not measured: ${noAes}.\n`;
    continue;
  }
  // -02's protected layout (A) and the -15 text's (E), each on its own pair of hosts.
  for (const [layout, label] of [
    ["v2-protected", "PDMv2 protected"],
    ["v2-draft15-protected", "draft-15 protected (E)"],
  ] as const) {
    const sender = hostFor(layout, aead);
    const receiver = hostFor(layout, aead);
    const gcm = (o: number): number | undefined =>
      aead === "aes-128-gcm" ? native.programFd(o, PDM_PROG.gcmInstall) : undefined;
    const stk = randomBytes(keyLength);
    // 75,000 packets on one flow run through Kri 0, 1 and 2 (32,767 each): keys for all three.
    for (const kri of [0, 1, 2]) {
      installFlowKey(native, native.mapFd(sender, PDM_MAP.keys), flow, kri, stk, "sender", gcm(sender));
      installFlowKey(native, native.mapFd(receiver, PDM_MAP.peerKeys), flow, kri, stk, "receiver", gcm(receiver));
    }
    cases.push(
      { name: `egress program, ${label} (${name})`, fd: native.programFd(sender, PDM_PROG.egress), input: frame },
      {
        name: `ingress program, ${label} (${name})`,
        fd: native.programFd(receiver, PDM_PROG.ingress),
        input: stampedBy(sender),
      },
    );
  }
}

const best = new Map<string, number>();
const isDataPath = (c: Case): boolean => c.name.includes(" program,");
/** ns per run: 5,000 runs in one call; the data-path programs change their packet, so one run per call and the median of 5,000 calls. */
function measure(c: Case): number {
  if (!isDataPath(c)) return native.progTestRun(c.fd, c.input, 5000, c.input.length + 64).durationNs;
  const runs: number[] = [];
  for (let i = 0; i < 5000; i++) runs.push(native.progTestRun(c.fd, c.input, 1, c.input.length + 128).durationNs);
  return runs.sort((x, y) => x - y)[2500]!;
}
for (let round = 0; round < 15; round++) {
  for (const c of cases) best.set(c.name, Math.min(best.get(c.name) ?? Infinity, measure(c)));
}
const baseline = best.get(cases[0]!.name)!;
const lines = [
  `# In-kernel AEAD benchmark (${new Date().toISOString()}, best of 15 x 5,000 runs)`,
  "",
  "| program | ns per run | minus the empty program |",
  "|---|---|---|",
  ...cases.map(
    (c) =>
      `| ${c.name} | ${best.get(c.name)} | ${c === cases[0] || isDataPath(c) ? "" : best.get(c.name)! - baseline} |`,
  ),
  gcmNote,
  "Command: `make bench-aead` (root).",
];
const out = lines.join("\n") + "\n";
process.stdout.write(out);
mkdirSync(join(ROOT, "bench", "out"), { recursive: true });
writeFileSync(join(ROOT, "bench", "out", "aead.md"), out);
for (const o of [pdm, chacha, ...dataPathObjects]) native.closeObject(o);
