// Group master mode (groups.md 1) over real TLS 1.3 on loopback, with the real scrypt:
// members admitted by certificate, each generation derived from the membership and
// recomputed by every member (same keyId), renewed on join, leave, silence, an
// operator's request and a member's; every refusal with its code, in the reply and in
// the log, and nothing provisioned to the refused; a master restart; the master's key
// log and an analyzer's export.

import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import {
  AeadId,
  deriveGroupSecretKey,
  deriveKeyId,
  groupMasterKey,
  hex,
  orderMembers,
  parseIpv6Address,
  readKeyLog,
} from "../../pdm/index.ts";
import {
  certificateSignature,
  checkMembership,
  readerStkSource,
  KRI_RUNNING_OUT,
  ReaderKeyStore,
  fetchKeyLog,
  initCa,
  type Agent,
  type Channel,
  type MessageOf,
} from "../../probes/agent/index.ts";
import { Deployment, eventually, rawConnect, type CertFiles } from "../../lab/index.ts";

const derOf = (files: CertFiles): Uint8Array => new Uint8Array(new X509Certificate(readFileSync(files.cert)).raw);

/** The refusal the master sends, past the heartbeats and generations a joined member gets first. */
async function expectRefusal(channel: Channel, code: string, detail?: RegExp): Promise<void> {
  let reply = await channel.receive(["error", "heartbeat", "group-generation"], 8000);
  while (reply.type !== "error") reply = await channel.receive(["error", "heartbeat", "group-generation"], 8000);
  assert.equal(reply.code, code, `refusal code (message: ${reply.message})`);
  if (detail) assert.match(reply.message, detail);
}

describe("group master mode", { concurrency: false }, () => {
  const d = new Deployment();
  const RELEASE = "ab".repeat(32);
  let gm: Agent;
  let gmCert: CertFiles;
  const members = new Map<string, { agent: Agent; cert: CertFiles }>();
  const masterLog = (): string[] => d.logs.get(gm)!;
  const logHas = (code: string): boolean =>
    masterLog().some((l) => l.includes("refused") && l.includes(`code=${code}`));

  const startMaster = async (port?: number): Promise<Agent> =>
    d.agent("gm", ["group-master"], gmCert, {
      listen: port ? `[::1]:${port}` : true,
      keyLog: join(d.dir, "gm.keys"),
      extra: { group: { lifeSeconds: 2.5, leadSeconds: 0.5, ackTimeoutSeconds: 8, releases: [RELEASE] } },
    });
  const startMember = async (name: string, cert?: CertFiles): Promise<Agent> => {
    cert ??= await d.issue(name, "group-member", ["::1"], { release: RELEASE });
    const agent = await d.agent(name, ["group-member"], cert, {
      keyLog: join(d.dir, `${name}.keys`),
      extra: { groupMaster: `[::1]:${gm.port}`, group: { lifeSeconds: 2.5 } },
    });
    members.set(name, { agent, cert });
    return agent;
  };
  const generationOf = (a: Agent): number | undefined => a.status().member?.generation;
  const masterGeneration = (): number => gm.status().group?.generation ?? 0;

  /** Every named member holds the master's newest generation, and the master lists exactly them. */
  const settled = (names: string[]) => (): boolean => {
    const g = gm.status().group!;
    return (
      g.generation !== undefined &&
      g.members.length === names.length &&
      names.every((n) => generationOf(members.get(n)!.agent) === g.generation) &&
      g.members.every((m) => names.includes(m.name))
    );
  };

  before(async () => {
    await d.init();
    d.timing = { ...d.timing, criticality: "critical", periodSeconds: 300 }; // no rotation during the tests
    gmCert = await d.issue("gm", "group-master", ["::1"]);
    gm = await startMaster();
  });
  after(() => {
    if (process.env.PDM_TEST_DUMP) console.log(masterLog().join("\n"));
    return d.cleanup();
  });

  it("three members join: each recomputes the master's generation, members listed by SHA-256 of their DER", async () => {
    for (const n of ["m1", "m2", "m3"]) await startMember(n);
    await eventually("three members on one generation", settled(["m1", "m2", "m3"]), 30_000);
    const status = gm.status().group!;
    const expectedOrder = orderMembers(["m1", "m2", "m3"].map((n) => ({ n, der: derOf(members.get(n)!.cert) })));
    assert.deepEqual(
      status.members.map((m) => m.name),
      expectedOrder.map((x) => x.n),
    );
    for (const n of ["m1", "m2", "m3"]) {
      assert.equal(members.get(n)!.agent.status().member!.generation, status.generation);
    }
    // The master's key log holds that generation; recomputing it from the members' certificates gives its keyId.
    const log = readKeyLog(join(d.dir, "gm.keys"));
    assert.equal(statSync(join(d.dir, "gm.keys")).mode & 0o777, 0o600);
    assert.equal(hex(log[log.length - 1]!.keyId), status.keyId);
    assert.equal(log[log.length - 1]!.secret.length, 16, "AES-128-GCM: SK of 16 bytes");
    const memberLog = readKeyLog(join(d.dir, "m1.keys"));
    assert.equal(hex(memberLog[memberLog.length - 1]!.keyId), status.keyId);
    assert.ok(!masterLog().join("\n").includes(hex(log[0]!.secret)), "no secret in the master's log");
  });

  it("a member leaves: the others renew without it, and it never receives the next generation", async () => {
    const before = masterGeneration();
    const m3 = members.get("m3")!.agent;
    const m3Generation = generationOf(m3);
    await m3.stop();
    members.delete("m3");
    await eventually("renewal without m3", () => masterGeneration() > before && settled(["m1", "m2"])(), 30_000);
    assert.equal(generationOf(m3), m3Generation, "the departed member got nothing after it left");
    assert.ok(masterLog().some((l) => l.includes("member-left") && l.includes("member=m3")));
  });

  it("an operator's renewal and a member's request each make a generation", async () => {
    let before = masterGeneration();
    gm.renewGroup("test operator");
    await eventually("operator renewal", () => masterGeneration() > before && settled(["m1", "m2"])(), 30_000);
    before = masterGeneration();
    // A raw member joins and asks (as a member whose flow used up its Kri would), then goes.
    const asker = await d.issue("asker", "group-member", ["::1"], { release: RELEASE });
    const { channel } = await rawConnect(gm.port!, asker);
    channel.send({ type: "member-join", holds: [], generation: 0 });
    channel.send({ type: "renew-request", reason: "kri-exhausted on a flow" });
    await eventually(
      "renewal on a member's request",
      () => masterLog().some((l) => l.includes("renewal-requested") && l.includes("kri-exhausted")),
      10_000,
    );
    channel.close();
    await eventually("m1 and m2 settled again", () => masterGeneration() > before && settled(["m1", "m2"])(), 40_000);
  });

  it("refuses another CA, an expired certificate, a wrong role, a wrong address, a release not allowed", async () => {
    const generation = masterGeneration();
    const otherCa = join(d.dir, "other-ca");
    await initCa(otherCa);
    const cases: { cert: () => Promise<CertFiles>; code: string; detail: RegExp }[] = [
      {
        cert: async () => ({
          ...(await d.issue("stranger", "group-member", ["::1"], { release: RELEASE }, otherCa)),
          ca: join(d.caDir, "ca.crt"),
        }),
        code: "wrong-ca",
        detail: /not issued by this deployment's CA/,
      },
      {
        cert: () =>
          d.issue("old", "group-member", ["::1"], {
            release: RELEASE,
            notBefore: new Date(Date.now() - 10 * 86_400_000),
            notAfter: new Date(Date.now() - 86_400_000),
          }),
        code: "cert-expired",
        detail: /validity period/,
      },
      {
        cert: () => d.issue("reader", "reader-server", ["::1"]),
        code: "wrong-role",
        detail: /only group-member or analyzer/,
      },
      {
        cert: () => d.issue("elsewhere", "group-member", ["fd00:99::7"], { release: RELEASE }),
        code: "wrong-address",
        detail: /connects from ::1/,
      },
      {
        cert: () => d.issue("unreleased", "group-member", ["::1"]),
        code: "release-not-allowed",
        detail: /names no pdm release/,
      },
      {
        cert: () => d.issue("other-release", "group-member", ["::1"], { release: "cd".repeat(32) }),
        code: "release-not-allowed",
        detail: /not in this group master's releases/,
      },
    ];
    for (const c of cases) {
      const { channel } = await rawConnect(gm.port!, await c.cert());
      if (channel.isOpen) channel.send({ type: "member-join", holds: [], generation: 0 });
      await expectRefusal(channel, c.code, c.detail);
      assert.ok(logHas(c.code), `${c.code} logged`);
    }
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(masterGeneration(), generation, "no refused peer made or received a generation");
    assert.deepEqual(
      gm
        .status()
        .group!.members.map((m) => m.name)
        .sort(),
      ["m1", "m2"],
    );
    for (const code of ["wrong-ca", "cert-expired", "wrong-role", "wrong-address", "release-not-allowed"]) {
      assert.ok((gm.status().group!.stats.refused[code] ?? 0) >= 1, `${code} counted`);
    }
  });

  it("refuses malformed and out-of-order messages, a replayed join and a keyId mismatch", async () => {
    const raw = await d.issue("raw", "group-member", ["::1"], { release: RELEASE });
    // Malformed: not a message at all.
    const a = await rawConnect(gm.port!, raw);
    a.socket.write(Buffer.from([0, 0, 0, 3, 0x7b, 0x7b, 0x7b]));
    await expectRefusal(a.channel, "malformed-message");
    // Out of order: an acknowledgement before any join, then one of a generation never sent.
    const b = await rawConnect(gm.port!, raw);
    b.channel.send({ type: "ack", keyId: new Uint8Array(8), generation: 1 });
    await expectRefusal(b.channel, "unexpected-message");
    const c = await rawConnect(gm.port!, raw);
    c.channel.send({ type: "member-join", holds: [], generation: 0 });
    c.channel.send({ type: "ack", keyId: new Uint8Array(8), generation: 0xffff_fff0 });
    await expectRefusal(c.channel, "unexpected-message", /never sent/);
    // A second member-join on one connection.
    const e = await rawConnect(gm.port!, raw);
    e.channel.send({ type: "member-join", holds: [], generation: 0 });
    e.channel.send({ type: "member-join", holds: [], generation: 0 });
    await expectRefusal(e.channel, "replayed-join");
    // A member acknowledging another keyId than the master's is dropped.
    const f = await rawConnect(gm.port!, raw);
    f.channel.send({ type: "member-join", holds: [], generation: 0 });
    // It heartbeats as a member does: the renewal's scrypts may take longer than `life`.
    const beat = setInterval(() => f.channel.isOpen && f.channel.send({ type: "heartbeat" }), 300);
    const g = await f.channel.receive(["group-generation", "heartbeat"], 10_000).then(async function next(m): Promise<
      MessageOf<"group-generation">
    > {
      return m.type === "group-generation"
        ? m
        : next(await f.channel.receive(["group-generation", "heartbeat"], 10_000));
    });
    f.channel.send({ type: "ack", keyId: new Uint8Array(8).fill(7), generation: g.generation });
    await expectRefusal(f.channel, "key-id-mismatch", /derived keyId 0707070707070707/).finally(() =>
      clearInterval(beat),
    );
    assert.ok(masterLog().some((l) => l.includes("member-dropped") && l.includes("code=key-id-mismatch")));
    await eventually("m1 and m2 settled after the raw member went", settled(["m1", "m2"]), 40_000);
  });

  it("a silent member is dropped after `life`; heartbeats go on while every scrypt runs", async () => {
    const before = gm.status().group!.stats.leaves;
    const silent = await d.issue("silent", "group-member", ["::1"], { release: RELEASE });
    const { channel } = await rawConnect(gm.port!, silent);
    channel.send({ type: "member-join", holds: [], generation: 0 });
    // It never answers; life is 2.5 s, while the renewal its join caused runs m1's, m2's and
    // the master's scrypt (about 0.7 s of a core each) in this one process.
    const reply = await (async function wait(): Promise<MessageOf<"error">> {
      const m = await channel.receive(["error", "group-generation", "heartbeat"], 10_000);
      return m.type === "error" ? m : wait();
    })();
    assert.match(reply.code, /^(heartbeat-missed|provision-unacknowledged)$/);
    assert.equal(reply.code, "heartbeat-missed", reply.message);
    await eventually("m1 and m2 settled after the silent member", settled(["m1", "m2"]), 40_000);
    assert.ok(gm.status().group!.stats.leaves > before);
    // m1 and m2 answered heartbeats throughout: neither was dropped.
    assert.ok(!masterLog().some((l) => l.includes("heartbeat-missed") && /member=m[12]\b|peer=m[12]\b/.test(l)));
  });

  it("a member that heartbeats but never acknowledges is dropped after the ack timeout", async () => {
    const lazy = await d.issue("lazy", "group-member", ["::1"], { release: RELEASE });
    const { channel } = await rawConnect(gm.port!, lazy);
    channel.send({ type: "member-join", holds: [], generation: 0 });
    const beat = setInterval(() => channel.isOpen && channel.send({ type: "heartbeat" }), 300);
    try {
      await expectRefusal(channel, "provision-unacknowledged", /no acknowledgement of generation \d+ within 8000 ms/);
    } finally {
      clearInterval(beat);
    }
    assert.ok(masterLog().some((l) => l.includes("member-dropped") && l.includes("member=lazy")));
    await eventually("m1 and m2 settled after the lazy member", settled(["m1", "m2"]), 40_000);
  });

  it("a member checks the listed certificates and recomputes the master's SK", async () => {
    const m1 = members.get("m1")!;
    const m2 = members.get("m2")!;
    const ca = new X509Certificate(readFileSync(join(d.caDir, "ca.crt")));
    const [x, y] = orderMembers([{ der: derOf(m1.cert) }, { der: derOf(m2.cert) }]);
    const signatures = checkMembership([x!.der, y!.der], { ca, own: derOf(m1.cert) });
    assert.deepEqual(
      signatures.map(hex),
      [x!.der, y!.der].map((der) => hex(certificateSignature(der))),
    );
    const seed = new Uint8Array(32).fill(1);
    const salt = new Uint8Array(32).fill(2);
    const sk = await deriveGroupSecretKey(groupMasterKey({ seed, generation: 5, timestamp: 9, signatures }), salt, 1);
    assert.equal(deriveKeyId(1, sk, salt).length, 8);
    const refuse = (list: Uint8Array[], own: Uint8Array, why: RegExp) =>
      assert.throws(
        () => checkMembership(list, { ca, own }),
        (e: Error & { code?: string }) => {
          assert.equal(e.code, "membership-invalid");
          assert.match(e.message, why);
          return true;
        },
      );
    // Checked once per certificate, but its validity against the clock every time.
    const checked = new Map();
    checkMembership([x!.der, y!.der], { ca, own: derOf(m1.cert), checked });
    assert.equal(checked.size, 2);
    assert.throws(
      () =>
        checkMembership([x!.der, y!.der], {
          ca,
          own: derOf(m1.cert),
          checked,
          now: () => Date.now() + 400 * 86_400_000,
        }),
      /outside its validity period/,
    );
    refuse([y!.der, x!.der], derOf(m1.cert), /out of order/);
    refuse([x!.der, x!.der], derOf(m1.cert), /out of order/);
    refuse([derOf(m1.cert)], derOf(m2.cert), /not in the generation/);
    refuse([derOf(gmCert)], derOf(gmCert), /not a group-member certificate/);
    const otherCa = join(d.dir, "other-ca-2");
    await initCa(otherCa);
    const foreign = derOf(await d.issue("foreign", "group-member", ["::1"], {}, otherCa));
    refuse([foreign], foreign, /not issued by our CA/);
  });

  it("two members derive the same key for a flow at its two ends; a flow near Kri's end asks for a generation", () => {
    const generation = {
      type: "provision" as const,
      keyId: new Uint8Array(8).fill(1),
      generation: 1,
      effectiveAt: 0,
      suite: { kem: 0x20, kdf: 1, aead: AeadId.Aes128Gcm },
      salt: new Uint8Array(32).fill(3),
      rotation: { criticality: "critical" as const, keys: 2, periodMs: 300_000 },
      grant: { kind: "shared" as const, secret: new Uint8Array(16).fill(4) },
      sealAllowed: true,
    };
    const asked: string[] = [];
    const sourceOf = () => {
      const store = new ReaderKeyStore({ kind: "server", graceMs: 1000 });
      store.install(generation);
      return readerStkSource(
        store,
        "group",
        undefined,
        AeadId.Aes128Gcm,
        () => {},
        (f) => asked.push(hex(f.src)),
      );
    };
    const [a, b] = [sourceOf(), sourceOf()];
    for (const [x, y] of [
      ["fd00::9", "fd00::2"],
      ["fd00::2", "fd00::9"],
    ]) {
      const flow = { src: parseIpv6Address(x!), dst: parseIpv6Address(y!), sport: 4000, dport: 7000, proto: 17 };
      // The sender seals ("own"), the receiver opens ("peer"): the same STK.
      assert.deepEqual(a(flow, 5, "own")!.key, b(flow, 5, "peer")!.key, `${x} -> ${y}`);
      assert.notDeepEqual(a(flow, 5, "own")!.key, a(flow, 6, "own")!.key);
    }
    assert.deepEqual(asked, []);
    const flow = { src: parseIpv6Address("fd00::9"), dst: parseIpv6Address("fd00::2"), sport: 1, dport: 2, proto: 17 };
    a(flow, KRI_RUNNING_OUT, "own");
    b(flow, KRI_RUNNING_OUT, "peer"); // the receiver's side is not its Kri space
    assert.equal(asked.length, 1);
  });

  it("an analyzer exports every generation the master made; a restarted master continues above them", async () => {
    const analyst = await d.issue("analyst", "analyzer", ["::1"]);
    const exported = await fetchKeyLog({ host: "::1", port: gm.port! }, analyst);
    const log = readKeyLog(join(d.dir, "gm.keys"));
    assert.deepEqual(
      exported.map((e) => hex(e.keyId)),
      log.map((e) => hex(e.keyId)),
    );
    assert.ok(exported.length >= 5, `several generations exported: ${exported.length}`);

    const last = masterGeneration();
    const port = gm.port!;
    await gm.stop();
    gm = await startMaster(port);
    await eventually("members rejoin the restarted master", settled(["m1", "m2"]), 40_000);
    assert.ok(masterGeneration() > last, `generation ${masterGeneration()} after ${last}`);
    const after = readKeyLog(join(d.dir, "gm.keys")).map((e) => hex(e.keyId));
    assert.ok(!after.some((k) => log.some((e) => hex(e.keyId) === k)), "fresh keys after the restart");
  });
});
