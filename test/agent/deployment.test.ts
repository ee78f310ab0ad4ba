// The registration agent over real mutual TLS 1.3 on loopback (keys.md sections 2-6):
// a writer pair and four readers register, provision, renew and export keys, and
// everything any of them derives agrees with the others and with the spec's vectors.

import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import {
  hex,
  deriveClientSecret,
  deriveKeyId,
  parseIpv6Address,
  parseKeyLog,
  type FlowTuple,
} from "../../pdm/index.ts";
import { ReaderKeyStore, fetchKeyLog, type Agent, type Generation } from "../../probes/agent/index.ts";
import { Deployment, eventually } from "../../lab/index.ts";

const bytes = (h: string): Uint8Array => new Uint8Array(Buffer.from(h, "hex"));
const RC1 = "fd00:99::11";
const RC2 = "fd00:99::12";
const SERVER = "fd00:98::1";

describe("registration agent: writer pair and readers over mutual TLS", () => {
  const d = new Deployment();
  let ws: Agent, wc: Agent, rs1: Agent, rs2: Agent, rc1: Agent, rc2: Agent;
  let first: Generation;
  const keyLogPath = () => join(d.dir, "ws-keys.log");
  // What the kernel data path would see through KeySink, the agent's one key interface.
  const sinkEvents: string[] = [];
  const sink = {
    install: (g: { keyIdHex: string }) => sinkEvents.push(`install ${g.keyIdHex}`),
    retire: (k: string) => sinkEvents.push(`retire ${k}`),
    discardAll: () => sinkEvents.push("discard"),
  };

  before(async () => {
    await d.init();
    const generation = (a: Agent) => a.nextGeneration();
    ws = await d.agent("ws", ["writer-server"], await d.issue("ws", "writer-server", ["::1"]), {
      listen: true,
      keyLog: keyLogPath(),
    });
    const firstAtWs = generation(ws);
    wc = await d.agent("wc", ["writer-client"], await d.issue("wc", "writer-client", ["::1"]), {
      listen: true,
      writerServer: ws.port,
    });
    rs1 = await d.agent("rs1", ["reader-server"], await d.issue("rs1", "reader-server", [SERVER, "::1"]), {
      writerServer: ws.port,
    });
    rs1.readerStore!.addSink(sink);
    rs2 = await d.agent("rs2", ["reader-server"], await d.issue("rs2", "reader-server", ["::1"]), {
      writerServer: ws.port,
    });
    rc1 = await d.agent("rc1", ["reader-client"], await d.issue("rc1", "reader-client", [RC1, "::1"]), {
      writerClient: wc.port,
    });
    rc2 = await d.agent("rc2", ["reader-client"], await d.issue("rc2", "reader-client", [RC2, "::1"]), {
      writerClient: wc.port,
    });
    first = await firstAtWs;
    await eventually("all readers provisioned", () => [rs1, rs2, rc1, rc2].every((r) => r.readerStore!.size >= 1));
  });
  after(() => d.cleanup());

  it("gives both writers the same SharedSecret and each reader what its role allows", () => {
    const atWc = wc.status().generations[0]!;
    assert.equal(atWc.keyId, hex(first.keyId), "writer client holds the generation the writer server committed");
    assert.equal(hex(deriveKeyId(first.suite.kdf, first.sharedSecret, first.salt)), hex(first.keyId));
    for (const rs of [rs1, rs2]) {
      const g = rs.readerStore!.openingGenerations()[0]!;
      assert.equal(g.grant.kind, "shared");
      assert.equal(hex(g.grant.secret), hex(first.sharedSecret));
      assert.equal(g.sealAllowed, true);
    }
    for (const [rc, addr] of [
      [rc1, RC1],
      [rc2, RC2],
    ] as const) {
      const g = rc.readerStore!.openingGenerations()[0]!;
      assert.equal(g.grant.kind, "client");
      if (g.grant.kind !== "client") return;
      assert.equal(
        hex(g.grant.clientAddress),
        hex(parseIpv6Address(addr)),
        "ClientSecret for the address the certificate names",
      );
      assert.equal(
        hex(g.grant.secret),
        hex(deriveClientSecret(first.suite.kdf, first.sharedSecret, first.salt, parseIpv6Address(addr))),
      );
    }
    assert.equal(first.rotation.periodMs, 1000);
    assert.equal(
      rs1.readerStore!.openingGenerations()[0]!.maxKriAgeMs,
      1000,
      "critical (5 min) shortened to the 1 s test period",
    );
  });

  it("derives the same per-flow keys at both ends of a flow, different per direction and Kri", () => {
    const g1 = rc1.readerStore!.sealingGeneration()!;
    const gs = rs1.readerStore!.openingGenerations().find((g) => g.keyIdHex === g1.keyIdHex)!;
    const up: FlowTuple = {
      src: parseIpv6Address(RC1),
      dst: parseIpv6Address(SERVER),
      sport: 40000,
      dport: 443,
      proto: 6,
    };
    const down: FlowTuple = { src: up.dst, dst: up.src, sport: 443, dport: 40000, proto: 6 };
    const client = parseIpv6Address(RC1);
    for (const kri of [0, 1, 7]) {
      assert.equal(hex(rc1.readerStore!.stk(g1, up, kri, client)), hex(rs1.readerStore!.stk(gs, up, kri, client)));
      assert.equal(hex(rc1.readerStore!.stk(g1, down, kri, client)), hex(rs1.readerStore!.stk(gs, down, kri, client)));
    }
    assert.notEqual(hex(rc1.readerStore!.stk(g1, up, 0, client)), hex(rc1.readerStore!.stk(g1, down, 0, client)));
    assert.notEqual(hex(rc1.readerStore!.stk(g1, up, 0, client)), hex(rc1.readerStore!.stk(g1, up, 1, client)));
    assert.throws(
      () => rc1.readerStore!.stk(g1, up, 0, parseIpv6Address(RC2)),
      /only holds keys for flows of fd00:99::11/,
    );
  });

  it("renews the generation before its lifetime ends, make-before-break", async () => {
    await eventually("a second generation on every reader", () =>
      [rs1, rs2, rc1, rc2].every((r) => r.readerStore!.holds().some((k) => hex(k) !== hex(first.keyId))),
    );
    const second = rs1.readerStore!.openingGenerations(Date.now() + 60_000)[0]!;
    assert.ok(second.generation > first.generation);
    assert.ok(second.effectiveAt > first.effectiveAt);
    // Before the new generation takes effect senders keep the old one; afterwards the
    // old one still opens packets for the grace period (1 s here), then is dropped.
    const before = rs1.readerStore!.sealingGeneration(second.effectiveAt - 1);
    if (before) assert.notEqual(before.keyIdHex, second.keyIdHex);
    assert.equal(rs1.readerStore!.sealingGeneration(second.effectiveAt)!.keyIdHex, second.keyIdHex);
    const opening = rs1.readerStore!.openingGenerations(second.effectiveAt + 10).map((g) => g.keyIdHex);
    assert.equal(opening[0], second.keyIdHex);
    assert.ok(opening.length >= 2, "previous generation still opens during its grace");
    assert.ok(second.effectiveAt - first.effectiveAt <= 2000 + 50, "renewed within keys x period (2 x 1 s)");
    assert.deepEqual(
      sinkEvents.slice(0, 2),
      [`install ${hex(first.keyId)}`, `install ${second.keyIdHex}`],
      "the key sink gets each generation once",
    );
    rs1.readerStore!.prune(second.effectiveAt + 1000 + 1); // past the 1 s grace
    assert.ok(sinkEvents.includes(`retire ${hex(first.keyId)}`), "and is told when the old one is dropped");
  });

  it("exports key logs to analyzers: SharedSecret from the writer server, one ClientSecret from the writer client", async () => {
    const analyst = await d.issue("analyst", "analyzer", ["::1"]);
    const shared = await fetchKeyLog({ host: "::1", port: ws.port! }, analyst);
    assert.ok(shared.length >= 1);
    assert.ok(shared.every((e) => e.kind === "shared"));
    const current = ws.status().generations.map((g) => g.keyId);
    assert.deepEqual(shared.map((e) => hex(e.keyId)).sort(), [...current].sort());

    const scoped = await fetchKeyLog({ host: "::1", port: wc.port! }, analyst, parseIpv6Address(RC1));
    assert.ok(scoped.length >= 1 && scoped.every((e) => e.kind === "client"));
    const rcGen = rc1.readerStore!.openingGenerations(Date.now() + 60_000);
    for (const e of scoped) {
      const held = rcGen.find((g) => g.keyIdHex === hex(e.keyId));
      if (held && held.grant.kind === "client") assert.equal(hex(e.secret), hex(held.grant.secret));
    }
    await assert.rejects(
      fetchKeyLog({ host: "::1", port: wc.port! }, analyst),
      /wrong-role: a writer client exports ClientSecrets only/,
    );
    const reader = await d.issue("rs-as-analyst", "reader-server", ["::1"]);
    await assert.rejects(fetchKeyLog({ host: "::1", port: ws.port! }, reader), /wrong-role/);
  });

  it("keeps the writer's key log 0600 and parseable, and never logs a secret", () => {
    assert.equal(statSync(keyLogPath()).mode & 0o777, 0o600);
    const entries = parseKeyLog(readFileSync(keyLogPath(), "utf8"));
    assert.deepEqual(
      entries.map((e) => hex(e.keyId)).sort(),
      ws
        .status()
        .generations.map((g) => g.keyId)
        .sort(),
      "the generations readers hold",
    );
    assert.ok(entries.every((e) => e.kind === "shared"));
    for (const f of ["ws.key", "wc.key", "ca/ca.key"]) assert.equal(statSync(join(d.dir, f)).mode & 0o777, 0o600, f);
    const lines = d.allLogLines().join("\n");
    assert.ok(lines.includes("reader-provisioned"), "the log is not empty");
    const secrets = [
      first.sharedSecret,
      ...[rc1, rc2].flatMap((r) => r.readerStore!.openingGenerations(Date.now() + 60_000).map((g) => g.grant.secret)),
    ];
    for (const s of secrets) {
      for (const form of [hex(s), Buffer.from(s).toString("base64url"), Buffer.from(s).toString("base64")]) {
        assert.ok(!lines.includes(form), "a secret appeared in the log");
      }
    }
  });
});

describe("reader key store against the spec's key-schedule vectors", () => {
  const vectors = JSON.parse(
    readFileSync(join(import.meta.dirname, "..", "..", "fixtures", "vectors", "key-schedule.json"), "utf8"),
  ) as {
    cases: {
      suite: { kem: number; kdf: number; aead: number };
      sharedSecret: string;
      salt: string;
      keyId: string;
      clients: {
        client: string;
        clientSecret: string;
        stks: { src: string; dst: string; sport: number; dport: number; proto: number; kri: number; stk: string }[];
      }[];
    }[];
  };
  const rotation = { criticality: "important" as const, keys: 4, periodMs: 600_000 };

  it("a reader server (SharedSecret) and a reader client (ClientSecret) derive every vector STK", () => {
    let checked = 0;
    for (const c of vectors.cases) {
      const server = new ReaderKeyStore({ kind: "server", graceMs: 0 });
      const base = {
        type: "provision" as const,
        keyId: bytes(c.keyId),
        generation: 1,
        effectiveAt: 0,
        suite: c.suite,
        salt: bytes(c.salt),
        rotation,
        sealAllowed: true,
      };
      const gs = server.install({ ...base, grant: { kind: "shared", secret: bytes(c.sharedSecret) } });
      for (const cl of c.clients) {
        const address = parseIpv6Address(cl.client);
        const client = new ReaderKeyStore({ kind: "client", ownAddress: address, graceMs: 0 });
        const gc = client.install({
          ...base,
          grant: { kind: "client", clientAddress: address, secret: bytes(cl.clientSecret) },
        });
        for (const v of cl.stks) {
          const flow: FlowTuple = {
            src: bytes(v.src),
            dst: bytes(v.dst),
            sport: v.sport,
            dport: v.dport,
            proto: v.proto,
          };
          assert.equal(hex(server.stk(gs, flow, v.kri, address)), v.stk);
          assert.equal(hex(client.stk(gc, flow, v.kri, address)), v.stk);
          checked += 1;
        }
      }
    }
    assert.ok(checked >= 4, `checked ${checked} vectors`);
  });

  it("refuses a grant of the wrong kind or for another client's address, and keeps nothing", () => {
    const c = vectors.cases[0]!;
    const base = {
      type: "provision" as const,
      keyId: bytes(c.keyId),
      generation: 1,
      effectiveAt: 0,
      suite: c.suite,
      salt: bytes(c.salt),
      rotation,
      sealAllowed: true,
    };
    const client = new ReaderKeyStore({ kind: "client", ownAddress: parseIpv6Address("fd00::1"), graceMs: 0 });
    assert.throws(
      () => client.install({ ...base, grant: { kind: "shared", secret: bytes(c.sharedSecret) } }),
      /expects a client secret/,
    );
    assert.throws(
      () =>
        client.install({
          ...base,
          grant: { kind: "client", clientAddress: parseIpv6Address("fd00::2"), secret: bytes(c.sharedSecret) },
        }),
      /not for this reader's address/,
    );
    assert.equal(client.size, 0);
  });
});

describe("registration agent: a restarted reader (keys.md section 7)", () => {
  const d = new Deployment();
  after(() => d.cleanup());

  it("gets old generations open-only and triggers a fresh generation it may seal with", async () => {
    await d.init();
    d.timing = { ...d.timing, periodSeconds: 300 }; // no scheduled renewal during the test
    const ws = await d.agent("ws", ["writer-server", "reader-server"], await d.issue("ws", "writer-server", ["::1"]), {
      listen: true,
    });
    const firstGen = ws.nextGeneration();
    const wc = await d.agent("wc", ["writer-client"], await d.issue("wc", "writer-client", ["::1"]), {
      listen: true,
      writerServer: ws.port,
    });
    const rsCert = await d.issue("rs", "reader-server", ["::1"]);
    const rs = await d.agent("rs", ["reader-server"], rsCert, { writerServer: ws.port });
    const first = await firstGen;
    await eventually("rs provisioned", () => rs.readerStore!.size === 1);
    assert.equal(ws.readerStore!.size, 1, "the writer server's own reader role is provisioned in-process");
    assert.equal(rs.readerStore!.sealingGeneration()!.keyIdHex, hex(first.keyId));

    await rs.stop(); // all keys and Kri state gone
    const renewed = ws.nextGeneration();
    const rs2 = await d.agent("rs-again", ["reader-server"], rsCert, { writerServer: ws.port });
    const second = await renewed;
    await eventually("restarted reader holds both generations", () => rs2.readerStore!.size === 2);
    const store = rs2.readerStore!;
    const old = store.openingGenerations(second.effectiveAt - 1).find((g) => g.keyIdHex === hex(first.keyId))!;
    assert.equal(old.sealAllowed, false, "the old generation opens but never seals again");
    assert.equal(
      store.sealingGeneration(second.effectiveAt - 1),
      undefined,
      "nothing to seal with until the new generation",
    );
    const fresh = store.sealingGeneration(second.effectiveAt)!;
    assert.equal(fresh.keyIdHex, hex(second.keyId));
    assert.equal(fresh.sealAllowed, true);
    assert.equal(ws.status().provisioning!.restartedReaders, 1);
    assert.ok(
      wc.status().generations.some((g) => g.keyId === hex(second.keyId)),
      "the writer client renewed on request",
    );
  });
});
