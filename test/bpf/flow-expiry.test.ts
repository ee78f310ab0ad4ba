// Idle flows are forgotten (attach --flow-timeout): the kernel's sweeping timer deletes
// a flow with no packet either way for that long, with its keys (both AEADs: for
// AES-128-GCM the kernel's AES contexts too), and counts it (flows_expired); a flow
// still sending stays. Programs run through BPF_PROG_TEST_RUN, with a 1 s timeout; the
// timer is the kernel's own.
//
// A forgotten protected flow that starts again starts at Kri 0 with a fresh random
// sequence: under the keys it had, a nonce could repeat. The key installer never gives
// those keys back; it gives the keys of a Kri never used, and egress moves the flow
// there. A reader that cannot tell that Kri from F shows its installer the option,
// which finds the Kri by trying keys. A reader that forgot a flow is given its peer's
// keys again (opening repeats no nonce), so it reads the flow again.

import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import {
  AeadId,
  decodePdmOption,
  encodeDestOptionsHeader,
  formatFlow,
  openProtectedOption,
  parseIpv6Address,
  sealProtectedOption,
  type FlowTuple,
  type PdmV2ProtectedOption,
} from "../../pdm/index.ts";
import {
  FLOW_KEY,
  FLOW_KEYS,
  FLOW_STATE,
  PDM_MAP,
  PDM_PROG,
  PIN,
  bpfObjectPath,
  encodeConfig,
  nativeBpf,
  sumCounters,
  type NativeBpf,
} from "../../probes/datapath/index.ts";
import { KeyInstaller, encodeFlowKey, oneGeneration } from "../../probes/kernel-keys/index.ts";
import { datapathSkipReason, gcmDatapathSkipReason } from "../../lab/index.ts";
import { ipv6Packet, udpHeader } from "../../fixtures/index.ts";

const ETH = Buffer.from([2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x86, 0xdd]);
const packet = (sport: number): Buffer =>
  Buffer.concat([ETH, ipv6Packet({ src: "fd00::1", dst: "fd00::2", proto: 17, upper: udpHeader(sport, 7000, 20) })]);
const tuple = (sport: number): FlowTuple => ({
  src: parseIpv6Address("fd00::1"),
  dst: parseIpv6Address("fd00::2"),
  sport,
  dport: 7000,
  proto: 17,
});

function mapKeys(native: NativeBpf, fd: number, keySize: number): Buffer[] {
  const keys: Buffer[] = [];
  let prev: Buffer | null = null;
  for (;;) {
    const next = Buffer.alloc(keySize);
    if (!native.mapNextKey(fd, prev, next)) return keys;
    keys.push(next);
    prev = next;
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const CASES = [
  { name: "PDMv2 clear", layout: "v2-clear" as const, aead: undefined, keyLength: 0, skip: datapathSkipReason() },
  {
    name: "protected, ChaCha20-Poly1305",
    layout: "v2-protected" as const,
    aead: "chacha20-poly1305" as const,
    keyLength: 32,
    skip: datapathSkipReason(),
  },
  {
    name: "protected, AES-128-GCM",
    layout: "v2-protected" as const,
    aead: "aes-128-gcm" as const,
    keyLength: 16,
    skip: gcmDatapathSkipReason(),
  },
];

for (const k of CASES) {
  describe(`idle flows are forgotten (${k.name})`, { skip: k.skip, concurrency: false }, () => {
    let native: NativeBpf;
    let object: number;
    const problems: string[] = [];
    let installer: KeyInstaller | undefined;
    const stk = (sender: FlowTuple, kri: number): Uint8Array =>
      createHash("sha256")
        .update(`${formatFlow(sender)} ${kri}`)
        .digest()
        .subarray(0, k.keyLength);
    const send = (sport: number): Buffer =>
      native.progTestRun(native.programFd(object, PDM_PROG.egress), packet(sport), 1, 256).data;
    const counters = () => sumCounters(native, native.mapFd(object, PIN.counters));
    /** The maps a key installer serves in this data path. */
    const keyMaps = () => ({
      keys: native.mapFd(object, PDM_MAP.keys),
      peerKeys: native.mapFd(object, PDM_MAP.peerKeys),
      keyNeeds: native.mapFd(object, PDM_MAP.keyNeeds),
      gcmInstall: k.aead === "aes-128-gcm" ? native.programFd(object, PDM_PROG.gcmInstall) : undefined,
    });
    /** A UDP packet from `peer` (fd00::2 to this host, fd00::1) whose option the peer sealed under `kri`. */
    const sealedBy = (peer: FlowTuple, kri: number, rn: number): Buffer => {
      const option = sealProtectedOption({
        aead: k.aead === "aes-128-gcm" ? AeadId.Aes128Gcm : AeadId.Chacha20Poly1305,
        key: stk(peer, kri),
        kri,
        randomNumber: rn,
        fBit: (kri & 1) as 0 | 1,
        fields: { scaleDtlr: 0, scaleDtls: 0, globalPointer: rn, psnTp: rn, psnLr: 0, deltaTlr: 0, deltaTls: 0 },
      });
      const udp = udpHeader(peer.sport, peer.dport, 20);
      return Buffer.concat([
        ETH,
        ipv6Packet({
          src: "fd00::2",
          dst: "fd00::1",
          ext: [[60, encodeDestOptionsHeader(17, option)]],
          proto: 17,
          upper: udp,
        }),
      ]);
    };

    before(() => {
      native = nativeBpf();
      object = native.openObject(bpfObjectPath({ aes: k.aead === "aes-128-gcm" }));
      native.setInitialValue(
        object,
        ".rodata",
        encodeConfig({ ifname: "test", layout: k.layout, aead: k.aead, events: false, flowTimeoutS: 1 }, 14),
      );
      native.loadObject(object);
      if (k.aead) {
        installer = new KeyInstaller(native, keyMaps(), oneGeneration(stk), (m) => problems.push(m));
      }
    });
    after(() => {
      installer?.close();
      native?.closeObject(object);
    });

    it("a flow idle for the timeout goes, with its keys; a busy one stays; a forgotten protected flow resumes under keys never used", async () => {
      const idle = 40000;
      const busy = 40001;
      for (const sport of [idle, busy]) {
        send(sport);
        installer?.consume();
      }
      const stamped = send(idle); // with its key now, where there is one
      assert.equal(stamped.length, packet(idle).length + (k.layout === "v2-clear" ? 24 : 40), "stamped");
      const flows = native.mapFd(object, PIN.flows);
      assert.equal(mapKeys(native, flows, FLOW_KEY.size).length, 2);
      if (k.aead)
        assert.equal(
          mapKeys(native, native.mapFd(object, PDM_MAP.keys), FLOW_KEY.size).length,
          2,
          "both flows have keys",
        );

      // The busy flow sends every 200 ms; the idle one nothing. Sweeps run each second.
      const deadline = Date.now() + 4000;
      while (Date.now() < deadline && counters().flows_expired === 0) {
        send(busy);
        await sleep(200);
      }
      const left = mapKeys(native, flows, FLOW_KEY.size);
      assert.equal(counters().flows_expired, 1, "the idle flow expired");
      assert.deepEqual(left, [encodeFlowKey(tuple(busy))], "the busy flow stays");
      if (k.aead) {
        assert.deepEqual(
          mapKeys(native, native.mapFd(object, PDM_MAP.keys), FLOW_KEY.size),
          [encodeFlowKey(tuple(busy))],
          "the idle flow's keys went with it",
        );
      }
      if (k.aead === "aes-128-gcm") {
        // 2 keys (Kri 0 and 1) of the busy flow remain; the idle flow's contexts were released with their entries.
        const gcmKeys = mapKeys(native, native.mapFd(object, PDM_MAP.gcmKeys), FLOW_KEY.size + 4);
        assert.ok(
          gcmKeys.every((key) => key.subarray(0, FLOW_KEY.size).equals(encodeFlowKey(tuple(busy)))),
          "only the busy flow's AES contexts remain",
        );
        assert.ok(gcmKeys.length >= 2);
      }

      // The idle flow starts again: a new flow to the kernel, at Kri 0.
      const again = send(idle);
      installer?.consume();
      const then = send(idle);
      assert.equal(counters().flows_created, 3);
      if (k.aead) {
        assert.deepEqual(again, packet(idle), "its first packet asks, and leaves without PDM");
        // Kri 0 and 1 were given before the flow was forgotten: it resumes at Kri 2.
        assert.deepEqual(
          { resumed: installer!.stats.resumed, refused: installer!.stats.refused },
          { resumed: 1, refused: 0 },
        );
        assert.equal(problems.filter((m) => /resumed at Kri 2,/.test(m)).length, 1, "said once");
        assert.equal(then.length, packet(idle).length + 40, "sealed again");
        const aead = k.aead === "aes-128-gcm" ? AeadId.Aes128Gcm : AeadId.Chacha20Poly1305;
        const option = decodePdmOption(then, 14 + 40 + 2);
        assert.ok(option.ok && option.value.layout === "v2-protected");
        const opensUnder = [0, 1, 2, 3].filter(
          (kri) => openProtectedOption(aead, stk(tuple(idle), kri), kri, option.value as PdmV2ProtectedOption).ok,
        );
        assert.deepEqual(opensUnder, [2], "sealed under Kri 2, whose key had never been used");
        const flowState = Buffer.alloc(FLOW_STATE.size);
        assert.ok(native.mapLookup(native.mapFd(object, PIN.flows), encodeFlowKey(tuple(idle)), flowState));
        assert.equal(flowState.readUInt32LE(FLOW_STATE.offset("kri")), 2, "the kernel's flow is at Kri 2");

        // Its reader, which never had the flow (this host's ingress, as the other end):
        // asks with the option, and its installer finds Kri 2 by trying keys.
        const reader = (pkt: Buffer) =>
          native.progTestRun(native.programFd(object, PDM_PROG.ingress), pkt, 1, pkt.length + 64);
        const before = counters();
        reader(then);
        installer!.consume();
        reader(send(idle));
        const after = counters();
        assert.deepEqual(
          {
            rx_nokey: after.rx_nokey - before.rx_nokey,
            read: after.read - before.read,
            auth_fail: after.auth_fail - before.auth_fail,
            found: installer!.stats.found,
          },
          { rx_nokey: 1, read: 1, auth_fail: 0, found: 1 },
          "the first counted as unkeyed; the next read under the Kri found",
        );
      } else {
        assert.equal(then.length, packet(idle).length + 24, "the clear layout just starts over");
      }
    });

    it(
      "a reader that forgot a flow is given its peer's keys again and reads it again",
      { skip: k.aead ? undefined : "protected layout only" },
      async () => {
        // Packets from fd00::2:7000 to this host's port 41000, sealed by the peer under its Kri 0.
        const peer: FlowTuple = {
          src: parseIpv6Address("fd00::2"),
          dst: parseIpv6Address("fd00::1"),
          sport: 7000,
          dport: 41000,
          proto: 17,
        };
        let rn = 1;
        const fromPeer = (): Buffer => sealedBy(peer, 0, rn++);
        const receive = (): void => {
          const pkt = fromPeer();
          native.progTestRun(native.programFd(object, PDM_PROG.ingress), pkt, 1, pkt.length + 64);
          installer!.consume();
        };
        const before = counters();
        receive(); // no keys yet: counted as such (not as an auth failure), and asks for them
        receive();
        assert.deepEqual(
          [
            counters().rx_nokey - before.rx_nokey,
            counters().read - before.read,
            counters().auth_fail - before.auth_fail,
          ],
          [1, 1, 0],
          "read once its keys are in",
        );
        // Nothing sends now, so every flow goes idle; wait until the table is empty.
        const flows = native.mapFd(object, PIN.flows);
        const deadline = Date.now() + 5000;
        while (Date.now() < deadline && mapKeys(native, flows, FLOW_KEY.size).length > 0) await sleep(200);
        assert.equal(mapKeys(native, flows, FLOW_KEY.size).length, 0, "the flow expired");
        assert.equal(
          mapKeys(native, native.mapFd(object, PDM_MAP.peerKeys), FLOW_KEY.size).length,
          0,
          "with its peer's keys",
        );
        receive(); // the flow again: no keys, asks again
        receive();
        assert.deepEqual(
          [
            counters().rx_nokey - before.rx_nokey,
            counters().read - before.read,
            counters().auth_fail - before.auth_fail,
          ],
          [2, 2, 0],
          "read again once its keys are back",
        );
      },
    );

    it(
      "a reader finds a resumed peer's Kri from its option; a forged option finds none and moves no key",
      { skip: k.aead ? undefined : "protected layout only" },
      async () => {
        const peer: FlowTuple = {
          src: parseIpv6Address("fd00::2"),
          dst: parseIpv6Address("fd00::1"),
          sport: 7001,
          dport: 41001,
          proto: 17,
        };
        const sealed = (kri: number, rn: number): Buffer => sealedBy(peer, kri, rn);
        const receive = (pkt: Buffer): void => {
          native.progTestRun(native.programFd(object, PDM_PROG.ingress), pkt, 1, pkt.length + 64);
          installer!.consume();
        };
        const peerKris = (): number[] => {
          const value = Buffer.alloc(FLOW_KEYS.size);
          assert.ok(native.mapLookup(native.mapFd(object, PDM_MAP.peerKeys), encodeFlowKey(peer, "receiver"), value));
          return [0, 1, 2]
            .filter((slot) => value[FLOW_KEYS.offset("present") + slot] === 1)
            .map((slot) => value.readUInt32LE(FLOW_KEYS.offset("kri") + 4 * slot))
            .sort((a, b) => a - b);
        };
        const delta = (from: ReturnType<typeof counters>) => {
          const now = counters();
          return {
            rx_nokey: now.rx_nokey - from.rx_nokey,
            read: now.read - from.read,
            auth_fail: now.auth_fail - from.auth_fail,
          };
        };
        const found = installer!.stats.found;
        let at = counters();
        receive(sealed(0, 1)); // no keys: asks; its installer tries Kri 0 first
        receive(sealed(0, 2));
        assert.deepEqual(delta(at), { rx_nokey: 1, read: 1, auth_fail: 0 });
        assert.deepEqual(peerKris(), [0, 1]);

        // The peer's kernel forgot the flow and its agent resumed it at Kri 41 (odd, like
        // Kri 1, whose key is in place): no installed key opens it.
        await sleep(11); // a flow asks at most every 10 ms
        at = counters();
        receive(sealed(41, 3));
        receive(sealed(41, 4));
        assert.deepEqual(
          delta(at),
          { rx_nokey: 0, read: 1, auth_fail: 1 },
          "one auth failure, then read under the Kri found",
        );
        assert.equal(installer!.stats.found, found + 2);
        assert.deepEqual(peerKris(), [1, 41, 42], "Kri 41 and the next installed");

        // A forged option (a tag bit flipped): no Kri opens it; the keys stay.
        const unopened = installer!.stats.unopened;
        const forged = sealed(41, 5);
        forged[14 + 40 + 2 + 36 - 1]! ^= 0x01;
        await sleep(11);
        at = counters();
        receive(forged);
        assert.equal(installer!.stats.unopened, unopened + 1);
        assert.deepEqual(peerKris(), [1, 41, 42], "a forgery moves no key");
        const needs = installer!.stats.needs;
        const forged2 = sealed(41, 6);
        forged2[14 + 40 + 2 + 36 - 1]! ^= 0x01;
        receive(forged2); // the kernel asks at most every 10 ms, the installer searches a flow at most once a second
        assert.ok(
          installer!.stats.needs === needs || installer!.stats.unopened === unopened + 1,
          "not searched again at once",
        );
        receive(sealed(41, 7));
        assert.deepEqual(delta(at), { rx_nokey: 0, read: 1, auth_fail: 2 }, "exactly the forgeries are auth failures");
        assert.equal(installer!.stats.found, found + 2);
      },
    );

    it(
      "a forgotten flow with no Kri left to resume at is refused its old keys",
      { skip: k.aead ? undefined : "protected layout only" },
      () => {
        // A key source that gives one key for every Kri: every Kri's key was "given" once
        // the first was, so there is nowhere to resume (as at the 32-bit end of Kri).
        const messages: string[] = [];
        const one = stk(tuple(40200), 0);
        const maps = keyMaps();
        installer!.close(); // one reader of the needs at a time
        const lone = new KeyInstaller(
          native,
          maps,
          oneGeneration(() => one),
          (m) => messages.push(m),
        );
        try {
          send(40200);
          lone.consume();
          assert.equal(send(40200).length, packet(40200).length + 40, "sealed under its first key");
          // The kernel forgets the flow (as the sweep would).
          native.mapDelete(native.mapFd(object, PIN.flows), encodeFlowKey(tuple(40200)));
          native.mapDelete(maps.keys, encodeFlowKey(tuple(40200)));
          send(40200);
          lone.consume();
          assert.deepEqual(send(40200), packet(40200), "without PDM rather than under a key used before");
          assert.deepEqual({ resumed: lone.stats.resumed, refused: lone.stats.refused }, { resumed: 0, refused: 1 });
          assert.equal(messages.filter((m) => /no later Kri to resume at/.test(m)).length, 1);
        } finally {
          lone.close();
          installer!.start();
        }
      },
    );

    it(
      "sealing keys are remembered for the last two generations; a key of an older one is refused",
      { skip: k.aead ? undefined : "protected layout only" },
      () => {
        // Keys that differ per generation, as a renewal's do.
        let generation = "g1";
        const source = (sender: FlowTuple, kri: number) => ({
          key: createHash("sha256")
            .update(`${generation} ${formatFlow(sender)} ${kri}`)
            .digest()
            .subarray(0, k.keyLength),
          generation,
        });
        const messages: string[] = [];
        const maps = keyMaps();
        installer!.consume(); // the earlier tests' flows' needs, so that only these flows' reach the new one
        installer!.close(); // one reader of the needs at a time
        const lone = new KeyInstaller(native, maps, source, (m) => messages.push(m));
        const start = (sport: number): void => {
          send(sport);
          lone.consume();
          assert.equal(send(sport).length, packet(sport).length + 40, `flow ${sport} sealed under ${generation}`);
        };
        try {
          start(40300);
          generation = "g2";
          start(40301);
          assert.deepEqual(
            [lone.stats.sealingKeysRemembered, lone.stats.generationsRetired],
            [4, 0],
            "Kri 0 and 1 of each flow",
          );
          generation = "g3";
          start(40302);
          assert.deepEqual(
            [lone.stats.sealingKeysRemembered, lone.stats.generationsRetired],
            [4, 1],
            "g1's keys forgotten, g2's and g3's kept",
          );
          assert.ok(lone.stats.sealingKeysBytes > 0);

          // A source gone back to g1 (it must not; a clock stepped back could): the kernel
          // forgets the first flow, asks again, and is refused rather than given a g1 key
          // nothing proves unused.
          generation = "g1";
          native.mapDelete(native.mapFd(object, PIN.flows), encodeFlowKey(tuple(40300)));
          native.mapDelete(maps.keys, encodeFlowKey(tuple(40300)));
          send(40300);
          lone.consume();
          assert.deepEqual(send(40300), packet(40300), "without PDM rather than under a key of a retired generation");
          assert.deepEqual({ resumed: lone.stats.resumed, refused: lone.stats.refused }, { resumed: 0, refused: 1 });
          assert.equal(messages.filter((m) => /generation retired since/.test(m)).length, 1);
        } finally {
          lone.close();
          installer!.start();
        }
      },
    );
  });
}
