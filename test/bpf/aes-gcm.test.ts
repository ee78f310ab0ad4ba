// The in-kernel AES-128-GCM (bpf/aes_gcm_test.bpf.c: the kernel's AES through the BPF
// crypto kfuncs, GHASH in BPF C in bpf/include/pdm_aes128gcm.h), run through
// BPF_PROG_TEST_RUN: byte for byte what node:crypto and @noble/ciphers produce, on the
// shared PDMv2 vectors and on random keys, nonces and texts; a flipped bit anywhere in
// the sealed data or the associated data fails the tag and releases no plaintext.
// Its cost per seal and open, from the kernel's own timing, is printed for the record.

import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { createCipheriv, randomBytes } from "node:crypto";
import { gcm } from "@noble/ciphers/aes.js";
import { nativeBpf, type NativeBpf } from "../../probes/datapath/index.ts";
import { datapathSkipReason, ROOT } from "../../lab/index.ts";

const OBJECT = join(ROOT, "bpf", "build", "aes_gcm_test.bpf.o");
const skip =
  datapathSkipReason() ??
  (existsSync(OBJECT)
    ? undefined
    : "bpf/build/aes_gcm_test.bpf.o is not built (needs clang 15 or later: scripts/setup.sh installs clang-16)") ??
  (readFileSync("/proc/kallsyms", "utf8").includes(" bpf_crypto_ctx_create")
    ? undefined
    : "this kernel has no BPF crypto kfuncs (Linux 6.10 or later)");

interface Case {
  key: Buffer;
  nonce: Buffer;
  aad: Buffer;
  plaintext: Buffer;
}

/** node:crypto's AES-128-GCM: ciphertext(14) || tag(16). */
function nodeSeal(c: Case): Buffer {
  const cipher = createCipheriv("aes-128-gcm", c.key, c.nonce, { authTagLength: 16 });
  cipher.setAAD(c.aad);
  return Buffer.concat([cipher.update(c.plaintext), cipher.final(), cipher.getAuthTag()]);
}

const randomCase = (): Case => ({
  key: randomBytes(16),
  nonce: randomBytes(12),
  aad: randomBytes(6),
  plaintext: randomBytes(14),
});

describe("AES-128-GCM in the kernel (BPF crypto kfuncs + GHASH in BPF C)", { skip }, () => {
  let native: NativeBpf;
  let object: number;
  let keyInPlace: Buffer | undefined;
  const run = (
    prog: "gcm_seal" | "gcm_open",
    input: Buffer,
    repeat = 1,
  ): { retval: number; data: Buffer; durationNs: number } =>
    native.progTestRun(native.programFd(object, prog), input, repeat, 256);
  /** Make the kernel's AES context for `key` (a syscall program) and its GHASH table, unless it is the current one. */
  const useKey = (key: Buffer): void => {
    if (keyInPlace?.equals(key)) return;
    const args = Buffer.concat([key, Buffer.alloc(4)]);
    const r = native.progRunContext(native.programFd(object, "gcm_setup"), args);
    assert.equal(r, 0, `gcm_setup: ${r}, error ${args.readInt32LE(16)}`);
    assert.equal(
      native.progTestRun(native.programFd(object, "gcm_htable"), Buffer.alloc(64), 1, 64).retval,
      0,
      "gcm_htable",
    );
    keyInPlace = key;
  };
  const kernelSeal = (c: Case): Buffer => {
    useKey(c.key);
    const r = run("gcm_seal", Buffer.concat([c.nonce, c.aad, c.plaintext, Buffer.alloc(30)]));
    assert.equal(r.retval, 0);
    return r.data.subarray(32, 62);
  };
  const kernelOpen = (c: Case, sealed: Buffer): { ok: boolean; plaintext: Buffer } => {
    useKey(c.key);
    const r = run("gcm_open", Buffer.concat([c.nonce, c.aad, sealed, Buffer.alloc(14)]));
    assert.ok(r.retval === 1 || r.retval === 2, `retval ${r.retval}`);
    return { ok: r.retval === 1, plaintext: r.data.subarray(48, 62) };
  };

  before(() => {
    native = nativeBpf();
    object = native.openObject(OBJECT);
    native.loadObject(object); // the verifier accepts all four programs
  });
  after(() => native?.closeObject(object));

  it("reproduces the shared PDMv2 vectors (AEAD id 1)", () => {
    const vectors = JSON.parse(readFileSync(join(ROOT, "fixtures", "vectors", "aead.json"), "utf8")) as {
      cases: Array<{ aead: number; key: string; nonce: string; aad: string; plaintext: string; option: string }>;
    };
    const aes = vectors.cases.filter((v) => v.aead === 1);
    assert.ok(aes.length >= 2, "the vectors include AES-128-GCM cases");
    for (const v of aes) {
      const c: Case = {
        key: Buffer.from(v.key, "hex"),
        nonce: Buffer.from(v.nonce, "hex"),
        aad: Buffer.from(v.aad, "hex"),
        plaintext: Buffer.from(v.plaintext, "hex"),
      };
      // option = aad(6) || ciphertext(14) || tag(16)
      const expected = Buffer.from(v.option, "hex").subarray(6);
      assert.equal(kernelSeal(c).toString("hex"), expected.toString("hex"));
      const opened = kernelOpen(c, expected);
      assert.ok(opened.ok);
      assert.equal(opened.plaintext.toString("hex"), v.plaintext);
    }
  });

  it("equals node:crypto and @noble/ciphers on 300 random cases, and opens what it sealed", () => {
    for (let i = 0; i < 300; i++) {
      const c = randomCase();
      const sealed = kernelSeal(c);
      assert.equal(sealed.toString("hex"), nodeSeal(c).toString("hex"), `case ${i}`);
      assert.equal(
        sealed.toString("hex"),
        Buffer.from(gcm(c.key, c.nonce, c.aad).encrypt(c.plaintext)).toString("hex"),
      );
      const opened = kernelOpen(c, sealed);
      assert.ok(opened.ok);
      assert.deepEqual(opened.plaintext, c.plaintext);
    }
  });

  it("edge values: all-zero and all-ones keys, nonces and texts (every GHASH reduction path)", () => {
    for (const fill of [0x00, 0xff]) {
      for (const keyFill of [0x00, 0xff]) {
        const c: Case = {
          key: Buffer.alloc(16, keyFill),
          nonce: Buffer.alloc(12, fill),
          aad: Buffer.alloc(6, fill),
          plaintext: Buffer.alloc(14, fill),
        };
        assert.equal(kernelSeal(c).toString("hex"), nodeSeal(c).toString("hex"), `key ${keyFill} fill ${fill}`);
      }
    }
  });

  it("refuses every single-bit change in the associated data, ciphertext or tag, and a wrong key", () => {
    const c = randomCase();
    const sealed = kernelSeal(c);
    for (let bit = 0; bit < sealed.length * 8; bit++) {
      const bad = Buffer.from(sealed);
      bad[bit >> 3]! ^= 1 << (bit & 7);
      const opened = kernelOpen(c, bad);
      assert.equal(opened.ok, false, `bit ${bit} of the sealed data`);
      assert.ok(opened.plaintext.equals(Buffer.alloc(14)), "no plaintext released");
    }
    for (let bit = 0; bit < 48; bit++) {
      const aad = Buffer.from(c.aad);
      aad[bit >> 3]! ^= 1 << (bit & 7);
      assert.equal(kernelOpen({ ...c, aad }, sealed).ok, false, `bit ${bit} of the associated data`);
    }
    assert.equal(kernelOpen({ ...c, key: randomBytes(16) }, sealed).ok, false, "wrong key");
  });

  it("reports its cost per call (kernel timing, 20,000 runs)", () => {
    const c = randomCase();
    useKey(c.key);
    const seal = run("gcm_seal", Buffer.concat([c.nonce, c.aad, c.plaintext, Buffer.alloc(30)]), 20_000);
    const open = run("gcm_open", Buffer.concat([c.nonce, c.aad, nodeSeal(c), Buffer.alloc(14)]), 20_000);
    console.log(
      `# in-kernel AES-128-GCM: seal ${seal.durationNs} ns, open ${open.durationNs} ns per run (BPF_PROG_TEST_RUN, including the skb copy in and out)`,
    );
    assert.ok(seal.durationNs > 0 && open.durationNs > 0);
  });
});
