// The in-kernel AEADs, each run through BPF_PROG_TEST_RUN by one suite written once:
// ChaCha20-Poly1305 in BPF C (bpf/include/pdm_chacha20poly1305.h, wrapped by
// bpf/tests/aead_test.bpf.c) and AES-128-GCM (the kernel's AES through the BPF crypto
// kfuncs, GHASH in BPF C in bpf/include/pdm_aes128gcm.h, wrapped by
// bpf/tests/aes_gcm_test.bpf.c). Each must be byte for byte what node:crypto and
// @noble/ciphers produce, on the shared PDMv2 vectors and on random keys, nonces and
// texts; a flipped bit anywhere in the sealed data or the associated data, or a wrong
// key, fails the tag and releases no plaintext. Its cost per seal and open, from the
// kernel's own timing, is printed for the record.

import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { createCipheriv, randomBytes } from "node:crypto";
import { chacha20poly1305 } from "@noble/ciphers/chacha.js";
import { gcm } from "@noble/ciphers/aes.js";
import { nativeBpf, type NativeBpf } from "../../probes/datapath/index.ts";
import { datapathSkipReason, ROOT } from "../../lab/index.ts";

interface Case {
  key: Buffer;
  nonce: Buffer;
  aad: Buffer;
  plaintext: Buffer;
}

interface TestRun {
  retval: number;
  data: Buffer;
  durationNs: number;
}

/** One AEAD's test object in the kernel: seal and open a case, `repeat` times. */
interface KernelAead {
  seal(c: Case, repeat?: number): TestRun;
  open(c: Case, sealed: Buffer, repeat?: number): TestRun;
  /** Where seal puts ciphertext || tag, and open the plaintext, in the returned data. */
  sealedAt: number;
  openedAt: number;
}

interface Aead {
  name: string;
  /** HPKE AEAD id, as in the shared vectors. */
  id: number;
  keyLength: number;
  nodeName: "chacha20-poly1305" | "aes-128-gcm";
  noble(c: Case): Uint8Array;
  object: string;
  skip(): string | undefined;
  load(native: NativeBpf, object: number): KernelAead;
  /** What the all-zero and all-ones cases exercise. */
  edgeNote: string;
}

const build = (name: string): string => join(ROOT, "bpf", "build", name);

const AEADS: Aead[] = [
  {
    name: "ChaCha20-Poly1305 in BPF C",
    id: 3,
    keyLength: 32,
    nodeName: "chacha20-poly1305",
    noble: (c) => chacha20poly1305(c.key, c.nonce, c.aad).encrypt(c.plaintext),
    object: build("aead_test.bpf.o"),
    skip: () => datapathSkipReason(),
    edgeNote: "carries in Poly1305",
    // aead_seal in: key(32) nonce(12) aad(6) plaintext(14), out at 64;
    // aead_open in: key nonce aad ciphertext(14) tag(16), out at 80.
    load: (native, object) => {
      const run = (prog: string, input: Buffer, repeat: number): TestRun =>
        native.progTestRun(native.programFd(object, prog), input, repeat, 256);
      return {
        seal: (c, repeat = 1) =>
          run("aead_seal", Buffer.concat([c.key, c.nonce, c.aad, c.plaintext, Buffer.alloc(30)]), repeat),
        open: (c, sealed, repeat = 1) =>
          run("aead_open", Buffer.concat([c.key, c.nonce, c.aad, sealed, Buffer.alloc(14)]), repeat),
        sealedAt: 64,
        openedAt: 80,
      };
    },
  },
  {
    name: "AES-128-GCM in the kernel (BPF crypto kfuncs + GHASH in BPF C)",
    id: 1,
    keyLength: 16,
    nodeName: "aes-128-gcm",
    noble: (c) => gcm(c.key, c.nonce, c.aad).encrypt(c.plaintext),
    object: build("aes_gcm_test.bpf.o"),
    skip: () =>
      datapathSkipReason() ??
      (existsSync(build("aes_gcm_test.bpf.o"))
        ? undefined
        : "bpf/build/aes_gcm_test.bpf.o is not built (needs clang 15 or later: scripts/setup.sh installs clang-16)") ??
      (readFileSync("/proc/kallsyms", "utf8").includes(" bpf_crypto_ctx_create")
        ? undefined
        : "this kernel has no BPF crypto kfuncs (Linux 6.10 or later)"),
    edgeNote: "every GHASH reduction path",
    // A key goes in once: gcm_setup (a syscall program) makes the kernel's AES context,
    // gcm_htable its GHASH tables. gcm_seal in: nonce(12) aad(6) plaintext(14), out at
    // 32; gcm_open in: nonce aad ciphertext(14) tag(16), out at 48.
    load: (native, object) => {
      let keyInPlace: Buffer | undefined;
      const useKey = (key: Buffer): void => {
        if (keyInPlace?.equals(key)) return;
        const args = Buffer.concat([key, Buffer.alloc(4)]);
        const r = native.progRunContext(native.programFd(object, "gcm_setup"), args);
        assert.equal(r, 0, `gcm_setup: ${r}, error ${args.readInt32LE(16)}`);
        const tables = native.progTestRun(native.programFd(object, "gcm_htable"), Buffer.alloc(64), 1, 64);
        assert.equal(tables.retval, 0, "gcm_htable");
        keyInPlace = key;
      };
      const run = (prog: string, key: Buffer, input: Buffer, repeat: number): TestRun => {
        useKey(key);
        return native.progTestRun(native.programFd(object, prog), input, repeat, 256);
      };
      return {
        seal: (c, repeat = 1) =>
          run("gcm_seal", c.key, Buffer.concat([c.nonce, c.aad, c.plaintext, Buffer.alloc(30)]), repeat),
        open: (c, sealed, repeat = 1) =>
          run("gcm_open", c.key, Buffer.concat([c.nonce, c.aad, sealed, Buffer.alloc(14)]), repeat),
        sealedAt: 32,
        openedAt: 48,
      };
    },
  },
];

for (const aead of AEADS) {
  /** node:crypto's seal: ciphertext(14) || tag(16). */
  const nodeSeal = (c: Case): Buffer => {
    const options = { authTagLength: 16 } as const;
    let cipher;
    if (aead.nodeName === "chacha20-poly1305") {
      cipher = createCipheriv("chacha20-poly1305", c.key, c.nonce, options);
      cipher.setAAD(c.aad, { plaintextLength: c.plaintext.length }); // node:crypto wants the length here
    } else {
      cipher = createCipheriv("aes-128-gcm", c.key, c.nonce, options);
      cipher.setAAD(c.aad);
    }
    return Buffer.concat([cipher.update(c.plaintext), cipher.final(), cipher.getAuthTag()]);
  };
  const randomCase = (): Case => ({
    key: randomBytes(aead.keyLength),
    nonce: randomBytes(12),
    aad: randomBytes(6),
    plaintext: randomBytes(14),
  });

  describe(aead.name, { skip: aead.skip() }, () => {
    let native: NativeBpf;
    let object: number;
    let kernel: KernelAead;
    const kernelSeal = (c: Case): Buffer => {
      const r = kernel.seal(c);
      assert.equal(r.retval, 0);
      return r.data.subarray(kernel.sealedAt, kernel.sealedAt + 30);
    };
    const kernelOpen = (c: Case, sealed: Buffer): { ok: boolean; plaintext: Buffer } => {
      const r = kernel.open(c, sealed);
      assert.ok(r.retval === 1 || r.retval === 2, `retval ${r.retval}`);
      return { ok: r.retval === 1, plaintext: r.data.subarray(kernel.openedAt, kernel.openedAt + 14) };
    };

    before(() => {
      native = nativeBpf();
      object = native.openObject(aead.object);
      native.loadObject(object); // the verifier accepts every program of the object
      kernel = aead.load(native, object);
    });
    after(() => native?.closeObject(object));

    it(`reproduces the shared PDMv2 vectors (AEAD id ${aead.id})`, () => {
      const vectors = JSON.parse(readFileSync(join(ROOT, "fixtures", "vectors", "aead.json"), "utf8")) as {
        cases: Array<{ aead: number; key: string; nonce: string; aad: string; plaintext: string; option: string }>;
      };
      const cases = vectors.cases.filter((v) => v.aead === aead.id);
      assert.ok(cases.length >= 2, `the vectors include cases of AEAD ${aead.id}`);
      for (const v of cases) {
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
        assert.equal(sealed.toString("hex"), Buffer.from(aead.noble(c)).toString("hex"));
        const opened = kernelOpen(c, sealed);
        assert.ok(opened.ok);
        assert.deepEqual(opened.plaintext, c.plaintext);
      }
    });

    it(`edge values: all-zero and all-ones keys, nonces and texts (${aead.edgeNote})`, () => {
      for (const fill of [0x00, 0xff]) {
        for (const keyFill of [0x00, 0xff]) {
          const c: Case = {
            key: Buffer.alloc(aead.keyLength, keyFill),
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
      assert.equal(kernelOpen({ ...c, key: randomBytes(aead.keyLength) }, sealed).ok, false, "wrong key");
    });

    it("reports its cost per call (kernel timing, 20,000 runs)", () => {
      const c = randomCase();
      const seal = kernel.seal(c, 20_000);
      const open = kernel.open(c, nodeSeal(c), 20_000);
      console.log(
        `# in-kernel ${aead.name}: seal ${seal.durationNs} ns, open ${open.durationNs} ns per run (BPF_PROG_TEST_RUN, including the skb copy in and out)`,
      );
      assert.ok(seal.durationNs > 0 && open.durationNs > 0);
      assert.equal(open.retval, 1, "the timed opens verified");
    });
  });
}
