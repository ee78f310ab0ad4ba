// Reader agents as the key source of their hosts' data paths (protected layout, with
// the default suite's AES-128-GCM and with ChaCha20-Poly1305): a writer pair registers, a reader client (host a, fd00:77::1)
// and a reader server (host b, fd00:77::2) are provisioned, each with `datapath` in
// its config. The hosts' programs are loaded and their maps pinned where `pdm attach`
// puts them (no interface needed: packets go through BPF_PROG_TEST_RUN). The kernel
// asks, each agent derives on its own (the client from its ClientSecret, the server
// from the SharedSecret), and what a's egress seals, b's ingress opens.

import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import {
  FLOW_KEYS,
  PIN,
  ensureBpffs,
  PDM_MAP,
  PDM_PROG,
  bpfObjectPath,
  encodeConfig,
  nativeBpf,
  sumCounters,
  type NativeBpf,
} from "../../probes/datapath/index.ts";
import { encodeFlowKey } from "../../probes/kernel-keys/index.ts";
import { parseIpv6Address } from "../../pdm/index.ts";
import { datapathSkipReason, gcmDatapathSkipReason, Deployment, eventually } from "../../lab/index.ts";
import { ipv6Packet, udpHeader } from "../../fixtures/index.ts";

const skip = datapathSkipReason();
const ETH = Buffer.from([2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x86, 0xdd]);
const A = "fd00:77::1";
const B = "fd00:77::2";
const request = Buffer.concat([ETH, ipv6Packet({ src: A, dst: B, proto: 17, upper: udpHeader(40000, 7000, 20) })]);
const answer = Buffer.concat([ETH, ipv6Packet({ src: B, dst: A, proto: 17, upper: udpHeader(7000, 40000, 20) })]);

const AEADS = [
  // The default suite (X25519, HKDF-SHA256, AES-128-GCM), as agents offer it unless told otherwise.
  { name: "AES-128-GCM", aead: "aes-128-gcm" as const, suites: undefined, skip: gcmDatapathSkipReason() },
  { name: "ChaCha20-Poly1305", aead: "chacha20-poly1305" as const, suites: ["0020:0001:0003"], skip },
];

for (const k of AEADS) {
  describe(`reader agents install the data path's keys (${k.name})`, { skip: k.skip, concurrency: false }, () => {
    const pinRoot = `/sys/fs/bpf/pdm-agent-keys-${process.pid}-${k.aead}`;
    const previousPinRoot = process.env.PDM_PIN_ROOT;
    let native: NativeBpf;
    const objects: number[] = [];
    let d: Deployment;

    /** A host's programs, loaded and pinned as `pdm attach -i IFNAME --layout v2-protected` would. */
    const host = (ifname: string): number => {
      const aes = k.aead === "aes-128-gcm";
      const o = native.openObject(bpfObjectPath({ aes }));
      native.setInitialValue(
        o,
        ".rodata",
        encodeConfig({ ifname, layout: "v2-protected", aead: k.aead, maxPacketsPerKri: 3, events: false }, 14),
      );
      native.loadObject(o);
      const dir = join(pinRoot, ifname);
      mkdirSync(dir, { recursive: true });
      for (const name of [PDM_MAP.keys, PDM_MAP.peerKeys, PDM_MAP.keyNeeds])
        native.objPin(native.mapFd(o, name), join(dir, name));
      if (aes) native.objPin(native.programFd(o, PDM_PROG.gcmInstall), join(dir, PIN.gcmInstall));
      objects.push(o);
      return o;
    };

    before(async () => {
      process.env.PDM_PIN_ROOT = pinRoot;
      // The pins go on bpffs, which `pdm attach` mounts if need be; this test pins without
      // attaching, and a recursive mkdir under an unmounted /sys/fs/bpf never returns.
      ensureBpffs();
      native = nativeBpf();
      d = await new Deployment().init();
      d.timing = { ...d.timing, keys: 4, periodSeconds: 60 }; // no renewal during the test
    });
    after(async () => {
      await d?.cleanup();
      for (const o of objects) native.closeObject(o);
      rmSync(pinRoot, { recursive: true, force: true });
      if (previousPinRoot === undefined) delete process.env.PDM_PIN_ROOT;
      else process.env.PDM_PIN_ROOT = previousPinRoot;
    });

    it("a reader client's egress seals what a reader server's ingress opens, across rotations", async () => {
      const hostA = host("rc0");
      const hostB = host("rs0");
      const suites = k.suites;
      const ws = await d.agent("ws", ["writer-server"], await d.issue("ws", "writer-server", ["::1"]), {
        listen: true,
        suites,
      });
      const wc = await d.agent("wc", ["writer-client"], await d.issue("wc", "writer-client", ["::1"]), {
        listen: true,
        writerServer: ws.port,
        suites,
      });
      const rs = await d.agent("rs", ["reader-server"], await d.issue("rs", "reader-server", [B, "::1"]), {
        writerServer: ws.port,
        datapath: "rs0",
      });
      const rc = await d.agent("rc", ["reader-client"], await d.issue("rc", "reader-client", [A, "::1"]), {
        writerClient: wc.port,
        datapath: "rc0",
      });
      await eventually("both readers provisioned", () => rs.readerStore!.size > 0 && rc.readerStore!.size > 0, 15_000);

      const run = (o: number, prog: string, pkt: Buffer): Buffer =>
        native.progTestRun(native.programFd(o, prog), pkt, 1, pkt.length + 128).data;
      const counters = (o: number) => sumCounters(native, native.mapFd(o, PIN.counters));
      /** Let the agents' ring-buffer readers (uv_poll) answer the kernel. */
      const settle = () => new Promise((r) => setTimeout(r, 50));

      // a's first request leaves without PDM and asks for its keys; the agent installs them.
      assert.deepEqual(run(hostA, PIN.egress, request), request);
      assert.equal(counters(hostA).skipped_nokey, 1);
      const flowKey = encodeFlowKey({
        src: parseIpv6Address(A),
        dst: parseIpv6Address(B),
        sport: 40000,
        dport: 7000,
        proto: 17,
      });
      const keys = Buffer.alloc(FLOW_KEYS.size);
      await eventually(
        "the reader client installed a's keys",
        () => native.mapLookup(native.mapFd(hostA, PDM_MAP.keys), flowKey, keys),
        5000,
      );
      const sealed: Buffer[] = [];
      for (let i = 0; i < 10; i++) {
        sealed.push(run(hostA, PIN.egress, request));
        await settle();
      }
      assert.ok(
        sealed.every((p) => p.length === request.length + 40),
        "every later request sealed (40-byte header), across Kri 0 to 3",
      );

      // b opens them with keys its own agent derived from the SharedSecret.
      for (const p of sealed) {
        run(hostB, PIN.ingress, p);
        await settle();
      }
      const cb = counters(hostB);
      assert.equal(cb.read + cb.rx_nokey, sealed.length);
      assert.equal(cb.auth_fail, 0, "an option that arrives before its keys is not an auth failure");
      assert.ok(cb.rx_nokey <= 1, `at most the first, before b's agent had the keys: ${cb.rx_nokey}`);
      assert.ok(cb.read >= sealed.length - 1, `read ${cb.read} of ${sealed.length}, across Kri 0 to 3`);

      // And b's answers, sealed with the server's keys, are its own flow's: b's egress asks, b's agent answers.
      run(hostB, PIN.egress, answer);
      await settle();
      assert.equal(run(hostB, PIN.egress, answer).length, answer.length + 40, "b's answers sealed too");
      assert.ok(!d.allLogLines().some((l) => /kernel-key-missing/.test(l)), "no key the agents could not derive");

      // a's interface is attached again: new maps behind the same pins. The agent follows.
      rmSync(join(pinRoot, "rc0"), { recursive: true, force: true });
      const hostA2 = host("rc0");
      await eventually(
        "a's agent serves the new data path",
        () => d.allLogLines().some((l) => /kernel-keys-reattached/.test(l)),
        10_000,
      );
      // The same flow starts over at Kri 0 there, whose keys it had: its agent resumes it
      // at a Kri never given instead (under the old keys a nonce could repeat).
      const readBefore = counters(hostB).read;
      const failBefore = counters(hostB).auth_fail;
      assert.deepEqual(
        run(hostA2, PIN.egress, request),
        request,
        "its first packet, before the agent answers, leaves without PDM",
      );
      await eventually(
        "the resume is said",
        () => d.allLogLines().some((l) => /kernel-flow-resumed.*resumed at Kri \d+/.test(l)),
        5000,
      );
      const resumedAt = Number(
        /resumed at Kri (\d+)/.exec(d.allLogLines().find((l) => /resumed at Kri \d+/.test(l))!)![1],
      );
      assert.ok(resumedAt > 3, `resumed beyond the Kri values used (0 to 3) and the next given: ${resumedAt}`);
      assert.ok(!d.allLogLines().some((l) => /started over under keys it used before/.test(l)), "nothing refused");
      const resumed: Buffer[] = [];
      for (let i = 0; i < 4; i++) {
        resumed.push(run(hostA2, PIN.egress, request));
        await settle();
      }
      assert.ok(
        resumed.every((p) => p.length === request.length + 40),
        "sealed again from the next packet on",
      );
      // Its first packets carry the resumed Kri's F (the policy here rotates every few packets).
      assert.equal(resumed[0]![14 + 40 + 7]! & 1, resumedAt & 1, "F says the resumed Kri");
      // b still holds the flow at Kri 3: the option shows its agent the Kri to install.
      for (const p of resumed) {
        run(hostB, PIN.ingress, p);
        await settle();
      }
      const cb2 = counters(hostB);
      assert.ok(
        cb2.read - readBefore >= resumed.length - 1,
        `b reads the resumed flow: ${cb2.read - readBefore} of ${resumed.length}`,
      );
      assert.ok(
        cb2.auth_fail - failBefore <= 1,
        `at most the first, before b's agent found the Kri: ${cb2.auth_fail - failBefore}`,
      );
      assert.deepEqual(
        { resumed: rc.status().kernelKeys!.resumed, refused: rc.status().kernelKeys!.refused },
        { resumed: 1, refused: 0 },
        "a's agent resumed the flow once",
      );
      assert.ok(rs.status().kernelKeys!.found >= 1, "b's agent found the resumed Kri from an option");
      // A new flow gets its keys as before.
      const other = Buffer.concat([ETH, ipv6Packet({ src: A, dst: B, proto: 17, upper: udpHeader(40001, 7000, 20) })]);
      run(hostA2, PIN.egress, other);
      await eventually(
        "a new flow is sealed on the new data path",
        () => run(hostA2, PIN.egress, other).length === other.length + 40,
        5000,
      );
    });
  });
}
