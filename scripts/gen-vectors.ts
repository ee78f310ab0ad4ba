// Writes fixtures/vectors/*.json: inputs and expected outputs for time encoding,
// sequences, key derivation, AEAD and option encoding. Inputs are fixed (no
// randomness), so rerunning reproduces the files byte for byte; the tests check
// them against this core (node:crypto) and an independent one (@noble/*), and the
// BPF program tests will check the kernel against the same files.
//
//   node --import tsx scripts/gen-vectors.ts [outDir]

import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  hex,
  AeadId,
  DEFAULT_SUITE,
  KdfId,
  KemId,
  LFSR_PERIOD,
  deriveClientSecret,
  deriveGroupSecretKey,
  deriveKeyId,
  groupMasterKey,
  deriveStk,
  encodeDeltaNs,
  encodeDestOptionsHeader,
  encodePdmOption,
  lfsrStep,
  parseIpv6Address,
  protectedNonce,
  sealProtectedOption,
  type FlowTuple,
  type Suite,
} from "../pdm/index.ts";

const outDir = process.argv[2] ?? join(import.meta.dirname, "..", "fixtures", "vectors");
if (outDir.startsWith("-")) {
  console.error("usage: node --import tsx scripts/gen-vectors.ts [OUTPUT_DIR]  (default fixtures/vectors)");
  process.exit(2);
}
/** Deterministic bytes: a counter pattern keyed by a label, so vectors need no RNG. */
const pattern = (label: number, n: number): Uint8Array =>
  Uint8Array.from({ length: n }, (_, i) => (label * 31 + i * 7) & 0xff);

function timeEncoding(): unknown {
  const ns: bigint[] = [
    0n,
    1n,
    2n,
    3n,
    7n,
    8n,
    33n,
    34n,
    999n,
    1000n,
    1001n,
    65535n,
    65536n,
    999_999n,
    1_000_000n,
    10_000_000n,
    123_456_789n,
    1_000_000_000n,
  ];
  for (let p = 0n; p <= 64n; p += 1n) {
    const v = 2n ** p;
    ns.push(v - 1n, v, v + 1n);
  }
  ns.push(3_600_000_000_000n, 86_400_000_000_000n, 2n ** 53n - 1n);
  const unique = [...new Set(ns.filter((v) => v >= 0n && v < 2n ** 64n))].sort((a, b) => (a < b ? -1 : 1));
  return {
    description: "RFC 8250 delta-time encoding: ns -> (delta, scale), value = delta x 2^scale attoseconds, truncated",
    cases: unique.map((v) => ({ ns: v.toString(), ...encodeDeltaNs(v) })),
  };
}

function sequences(): unknown {
  const starts = [1, 2, 0x4000, 0x7fff, 12345];
  return {
    description: "15-bit Galois LFSR x^15+x^14+1 (mask 0x6000): each draw steps then returns the new state",
    mask: 0x6000,
    period: LFSR_PERIOD,
    cases: starts.map((start) => {
      const values: number[] = [];
      let s = start;
      for (let i = 0; i < 16; i += 1) values.push((s = lfsrStep(s)));
      return { start, first16: values };
    }),
  };
}

const flows: FlowTuple[] = [
  { src: parseIpv6Address("fd00:1::2"), dst: parseIpv6Address("fd00:2::2"), sport: 40000, dport: 443, proto: 6 },
  { src: parseIpv6Address("fd00:2::2"), dst: parseIpv6Address("fd00:1::2"), sport: 443, dport: 40000, proto: 6 },
  { src: parseIpv6Address("fe80::1"), dst: parseIpv6Address("fe80::2"), sport: 5353, dport: 53, proto: 17 },
  {
    src: parseIpv6Address("2001:db8::a"),
    dst: parseIpv6Address("2001:db8::b"),
    sport: 0x8000,
    dport: 0x1234,
    proto: 58,
  },
];
const suites: Suite[] = [
  DEFAULT_SUITE,
  { kem: KemId.DhkemX25519HkdfSha256, kdf: KdfId.HkdfSha256, aead: AeadId.Chacha20Poly1305 },
  { kem: KemId.DhkemP256HkdfSha256, kdf: KdfId.HkdfSha384, aead: AeadId.Aes128Gcm },
];

function keySchedule(): unknown {
  return {
    description: "keys.md section 4; every value hex; flow as the sender sees it",
    cases: suites.map((suite, i) => {
      const sharedSecret = pattern(10 + i, 32);
      const salt = pattern(20 + i, 32);
      const clients = ["fd00:1::2", "fe80::1", "2001:db8::a"].map((ip) => {
        const clientAddress = parseIpv6Address(ip);
        const clientSecret = deriveClientSecret(suite.kdf, sharedSecret, salt, clientAddress);
        return {
          client: ip,
          clientSecret: hex(clientSecret),
          stks: flows.flatMap((flow) =>
            [0, 1, 2, 0xffff_ffff].map((kri) => ({
              ...flowJson(flow),
              kri,
              stk: hex(deriveStk(suite, clientSecret, salt, flow, kri)),
            })),
          ),
        };
      });
      return {
        suite,
        sharedSecret: hex(sharedSecret),
        salt: hex(salt),
        keyId: hex(deriveKeyId(suite.kdf, sharedSecret, salt)),
        clients,
      };
    }),
  };
}

function flowJson(f: FlowTuple): Record<string, unknown> {
  return { src: hex(f.src), dst: hex(f.dst), sport: f.sport, dport: f.dport, proto: f.proto };
}

function aead(): unknown {
  const cases = [];
  for (const aeadId of [AeadId.Aes128Gcm, AeadId.Chacha20Poly1305]) {
    const keyLength = aeadId === AeadId.Aes128Gcm ? 16 : 32;
    for (const [i, kri] of [0, 1, 7, 0xffff_fffe].entries()) {
      const key = pattern(40 + i + aeadId, keyLength);
      const randomNumber = [1, 0x7fff, 0x2aaa, 0x1234][i]!;
      const fBit = (kri & 1) as 0 | 1;
      const fields = {
        scaleDtlr: 34,
        scaleDtls: 38,
        globalPointer: 0x0102_0304 + i,
        psnTp: 0xfff0 + i,
        psnLr: 0x1000 + i,
        deltaTlr: 58207,
        deltaTls: 36379,
      };
      const option = sealProtectedOption({ aead: aeadId, key, kri, randomNumber, fBit, fields });
      cases.push({
        aead: aeadId,
        key: hex(key),
        kri,
        randomNumber,
        fBit,
        fields,
        nonce: hex(protectedNonce(kri, randomNumber, fBit)),
        aad: hex(option.subarray(0, 6)),
        plaintext: hex(encodePdmOption({ layout: "v2-clear", randomNumber, fBit, ...fields }).subarray(6)),
        option: hex(option),
        header: hex(encodeDestOptionsHeader(6, option)),
      });
    }
  }
  return { description: "wire.md section 4: sealed option = type, len, prefix, ciphertext(14) || tag(16)", cases };
}

function options(): unknown {
  const times = { scaleDtlr: 34, scaleDtls: 38, psnTp: 0x1234, psnLr: 0xabcd, deltaTlr: 58207, deltaTls: 36379 };
  const v1 = encodePdmOption({ layout: "rfc8250", ...times });
  const v2 = encodePdmOption({
    layout: "v2-clear",
    ...times,
    randomNumber: 0x2aaa,
    fBit: 1,
    globalPointer: 0xdeadbeef,
  });
  return {
    description: "wire.md section 2: option and Destination Options header bytes (next header 17)",
    cases: [
      { layout: "rfc8250", fields: times, option: hex(v1), header: hex(encodeDestOptionsHeader(17, v1)) },
      {
        layout: "v2-clear",
        fields: { ...times, randomNumber: 0x2aaa, fBit: 1, globalPointer: 0xdeadbeef },
        option: hex(v2),
        header: hex(encodeDestOptionsHeader(17, v2)),
      },
    ],
  };
}

/** groups.md 1: master key, SK (scrypt N = 2^17) and keyId for each AEAD, three members. */
async function groupKey(): Promise<unknown> {
  const cases = [];
  for (const [label, aead] of [
    [60, AeadId.Aes128Gcm],
    [70, AeadId.Chacha20Poly1305],
  ] as const) {
    const suite = { ...DEFAULT_SUITE, aead };
    // ECDSA P-256 signature values are 70-72 bytes of DER: three lengths.
    const signatures = [70, 71, 72].map((n, i) => pattern(label + 1 + i, n));
    const inputs = {
      seed: pattern(label, 32),
      generation: 7 + label,
      timestamp: 1_765_000_000_000 + label,
      signatures,
    };
    const master = groupMasterKey(inputs);
    const salt = pattern(label + 5, 32);
    const sk = await deriveGroupSecretKey(master, salt, aead);
    cases.push({
      suite,
      seed: hex(inputs.seed),
      generation: inputs.generation,
      timestamp: inputs.timestamp,
      signatures: signatures.map(hex),
      master: hex(master),
      salt: hex(salt),
      sk: hex(sk),
      keyId: hex(deriveKeyId(suite.kdf, sk, salt)),
    });
  }
  return {
    description:
      "groups.md 1: master = SHA-256(seed || u64(g) || u64(timestamp) || signatures in order || u32(n)); SK = scrypt(master, salt, N=2^17, r=8, p=1, 16 or 32 bytes); keyId of SK as keys.md 3",
    cases,
  };
}

mkdirSync(outDir, { recursive: true });
const files: Record<string, unknown> = {
  "time-encoding.json": timeEncoding(),
  "sequence.json": sequences(),
  "key-schedule.json": keySchedule(),
  "aead.json": aead(),
  "options.json": options(),
  "group-key.json": await groupKey(),
};
for (const [name, value] of Object.entries(files)) {
  writeFileSync(join(outDir, name), `${JSON.stringify(value, null, 1)}\n`);
  console.log(`wrote ${join(outDir, name)}`);
}
